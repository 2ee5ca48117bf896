# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapCommon

# The new binary as an artifact: its sha256, its PE header (machine, executable or DLL) and the
# architecture of the Windows OS it must match.
#
# Part of the Windows binary swap of hotswap.deploy.win_binary_swap; WinBinarySwap.psm1 describes
# the swap and says which file holds what. PowerShell 5.1 compatible. Not yet run on a real
# Windows host (docs/windows.md).

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

# PE COFF machine values -> the architecture names used by plugins/module_utils/artifact.py
$script:PeMachines = @{
    0x014C = 'i386'
    0x01C0 = 'arm'
    0x01C4 = 'arm'
    0x8664 = 'x86_64'
    0xAA64 = 'aarch64'
}
$script:GoArch = @{
    'x86_64' = 'amd64'
    'aarch64' = 'arm64'
    'i386' = '386'
    'arm' = 'arm'
}

# ---------------------------------------------------------------------------------------------
# PE header and host architecture

Function ConvertTo-ArchitectureName {
    <#
    .SYNOPSIS
    Normalizes an architecture name (RuntimeInformation, PROCESSOR_ARCHITECTURE, Go) to the names
    of plugins/module_utils/artifact.py: x86_64, aarch64, i386, arm.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [AllowEmptyString()][AllowNull()][string]$Name
    )
    $n = "$Name".Trim().ToLowerInvariant()
    switch ($n) {
        { $_ -in @('x64', 'amd64', 'x86_64', 'em64t') } { return 'x86_64' }
        { $_ -in @('arm64', 'aarch64') } { return 'aarch64' }
        { $_ -in @('x86', 'i386', 'i686', '386') } { return 'i386' }
        { $_ -in @('arm', 'armv7', 'armv7l') } { return 'arm' }
        '' { return 'unknown' }
    }
    $n
}

Function Get-HostArchitecture {
    <#
    .SYNOPSIS
    The architecture of the Windows OS (not of this PowerShell process): x86_64, aarch64, i386, ...
    .DESCRIPTION
    [System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture where the type exists
    (.NET Framework 4.7.1+), else PROCESSOR_ARCHITEW6432 (set in a 32-bit process on a 64-bit OS)
    and PROCESSOR_ARCHITECTURE. An x64-emulated process on ARM64 Windows can see x64 in both; the
    system-wide PROCESSOR_IDENTIFIER ('ARMv8 ...') corrects that. Not verified on ARM64 hardware.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param ()
    $name = $null
    try {
        $type = 'System.Runtime.InteropServices.RuntimeInformation' -as [type]
        if ($null -eq $type) {
            Add-Type -AssemblyName 'System.Runtime.InteropServices.RuntimeInformation' -ErrorAction Stop
            $type = 'System.Runtime.InteropServices.RuntimeInformation' -as [type]
        }
        if ($null -ne $type) {
            $name = [string]$type::OSArchitecture
        }
    }
    catch {
        $name = $null
    }
    if (-not $name) {
        $name = $env:PROCESSOR_ARCHITEW6432
    }
    if (-not $name) {
        $name = $env:PROCESSOR_ARCHITECTURE
    }
    $arch = ConvertTo-ArchitectureName -Name $name
    if ($arch -eq 'x86_64' -and "$env:PROCESSOR_IDENTIFIER" -match '^ARM') {
        $arch = 'aarch64'
    }
    $arch
}

Function Read-BytesAt {
    [CmdletBinding()]
    [OutputType([byte[]])]
    param (
        [Parameter(Mandatory = $true)][System.IO.Stream]$Stream,
        [Parameter(Mandatory = $true)][long]$Offset,
        [Parameter(Mandatory = $true)][int]$Count
    )
    if ($Offset -lt 0 -or $Offset -ge $Stream.Length) {
        return , (New-Object -TypeName byte[] -ArgumentList 0)
    }
    $null = $Stream.Seek($Offset, [System.IO.SeekOrigin]::Begin)
    $buffer = New-Object -TypeName byte[] -ArgumentList $Count
    $total = 0
    while ($total -lt $Count) {
        $n = $Stream.Read($buffer, $total, $Count - $total)
        if ($n -le 0) {
            break
        }
        $total += $n
    }
    if ($total -lt $Count) {
        $short = New-Object -TypeName byte[] -ArgumentList $total
        [Array]::Copy($buffer, $short, $total)
        $buffer = $short
    }
    return , $buffer
}

Function Get-PeMachine {
    <#
    .SYNOPSIS
    Reads the PE header of a file (or of bytes): MZ, e_lfanew, 'PE\0\0', COFF Machine and
    Characteristics.
    .OUTPUTS
    PSCustomObject: IsPe, Machine (int, e.g. 0x8664), Arch (x86_64|aarch64|i386|arm|pe-machine-0x....),
    IsExecutable (IMAGE_FILE_EXECUTABLE_IMAGE), IsDll (IMAGE_FILE_DLL), Problem (why it is not a
    PE executable, or $null).
    #>
    [CmdletBinding(DefaultParameterSetName = 'Path')]
    param (
        [Parameter(Mandatory = $true, ParameterSetName = 'Path')][string]$Path,
        [Parameter(Mandatory = $true, ParameterSetName = 'Bytes')][AllowEmptyCollection()][byte[]]$Bytes
    )
    if ($PSCmdlet.ParameterSetName -eq 'Path') {
        $stream = [System.IO.File]::Open($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read,
            ([System.IO.FileShare]::ReadWrite -bor [System.IO.FileShare]::Delete))
    }
    else {
        $stream = New-Object -TypeName System.IO.MemoryStream -ArgumentList @(, $Bytes)
    }
    try {
        $result = [ordered]@{
            IsPe = $false
            Machine = $null
            Arch = $null
            IsExecutable = $false
            IsDll = $false
            Problem = $null
        }
        # Windows and every architecture it runs on are little-endian, as is the PE format, so
        # BitConverter reads the fields as they are stored.
        $dos = Read-BytesAt -Stream $stream -Offset 0 -Count 64
        if ($dos.Length -lt 64) {
            $result.Problem = "it is $($stream.Length) bytes long, shorter than a DOS header"
            return [PSCustomObject]$result
        }
        if ($dos[0] -ne 0x4D -or $dos[1] -ne 0x5A) {
            $result.Problem = "it does not start with 'MZ'"
            return [PSCustomObject]$result
        }
        $lfanew = [long][BitConverter]::ToUInt32($dos, 0x3C)
        $pe = Read-BytesAt -Stream $stream -Offset $lfanew -Count 24
        if ($pe.Length -lt 24) {
            $result.Problem = "its e_lfanew ($lfanew) points past the end of the file"
            return [PSCustomObject]$result
        }
        if ($pe[0] -ne 0x50 -or $pe[1] -ne 0x45 -or $pe[2] -ne 0 -or $pe[3] -ne 0) {
            $result.Problem = "there is no 'PE\0\0' signature at e_lfanew ($lfanew): a DOS program, not a PE image"
            return [PSCustomObject]$result
        }
        $machine = [int][BitConverter]::ToUInt16($pe, 4)
        $characteristics = [int][BitConverter]::ToUInt16($pe, 22)
        $result.IsPe = $true
        $result.Machine = $machine
        if ($script:PeMachines.ContainsKey($machine)) {
            $result.Arch = $script:PeMachines[$machine]
        }
        else {
            $result.Arch = 'pe-machine-0x{0:x4}' -f $machine
        }
        $result.IsExecutable = [bool]($characteristics -band 0x0002)
        $result.IsDll = [bool]($characteristics -band 0x2000)
        if ($result.IsDll) {
            $result.Problem = 'it is a DLL, not an executable'
        }
        elseif (-not $result.IsExecutable) {
            $result.Problem = 'it is not marked as an executable image (an object file?)'
        }
        return [PSCustomObject]$result
    }
    finally {
        $stream.Dispose()
    }
}

Function Test-PeFitsHost {
    <#
    .SYNOPSIS
    True when the PE (a Get-PeMachine result) is an executable (not a DLL) for exactly HostArch.
    .DESCRIPTION
    No emulation is relied on: a 32-bit x86 exe is refused on x64 and on ARM64 hosts, an x64 exe
    on ARM64 hosts.
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param (
        [Parameter(Mandatory = $true)][object]$Pe,
        [Parameter(Mandatory = $true)][string]$HostArch
    )
    [bool]($Pe.IsPe -and $Pe.IsExecutable -and -not $Pe.IsDll -and $Pe.Arch -eq $HostArch)
}

Function Get-FileSha256 {
    <#
    .SYNOPSIS
    Lower-case hex sha256 of a file (Get-FileHash), or $null when there is no such file.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][string]$Path
    )
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
        return $null
    }
    (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant()
}

Function Assert-StagedBinary {
    <#
    .SYNOPSIS
    Throws (failed_step verify) unless the file has the sha256 and is a PE executable for HostArch.
    Returns the Get-PeMachine result.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$Digest,
        [Parameter(Mandatory = $true)][string]$HostArch,
        [Parameter(Mandatory = $true)][string]$What,
        [string]$Outcome = 'nothing was changed'
    )
    $actual = Get-FileSha256 -Path $Path
    if ($actual -ne $Digest) {
        throw (New-SwapError -FailedStep 'verify' -Message ("verifying $($What): its sha256 is $actual but " +
                "checksum says $Digest. Fix the checksum option or the artifact; $Outcome."))
    }
    $pe = Get-PeMachine -Path $Path
    $goArch = $HostArch
    if ($script:GoArch.ContainsKey($HostArch)) {
        $goArch = $script:GoArch[$HostArch]
    }
    $hint = "Build with GOOS=windows GOARCH=$goArch or pick the right artifact; $Outcome."
    if ($pe.Problem) {
        throw (New-SwapError -FailedStep 'verify' -Message ("verifying $($What): it is not a Windows " +
                "executable ($($pe.Problem)). $hint"))
    }
    if (-not (Test-PeFitsHost -Pe $pe -HostArch $HostArch)) {
        throw (New-SwapError -FailedStep 'verify' -Message ("verifying $($What): it is a windows/$($pe.Arch) " +
                "PE executable but the host is windows/$HostArch. The executable must match the OS " +
                "architecture exactly (x86 on x64 and x86/x64 emulation on ARM64 are refused). $hint"))
    }
    $pe
}

Export-ModuleMember -Function @(
    'Assert-StagedBinary'
    'ConvertTo-ArchitectureName'
    'Get-FileSha256'
    'Get-HostArchitecture'
    'Get-PeMachine'
    'Test-PeFitsHost'
)
