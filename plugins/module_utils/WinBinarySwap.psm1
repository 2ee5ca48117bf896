# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The Windows binary swap of hotswap.deploy.win_binary_swap (ARCHITECTURE.md section 6).
#
# Windows refuses to overwrite or delete the .exe of a running process, but renaming it within
# the same volume is allowed. The swap therefore is:
#
#   stage   <staging_dir>\<exe>.new     copied from src or downloaded from url
#   verify  sha256 (Get-FileHash) and the PE header (machine == OS architecture)
#   stop    the service (wait up to stop_timeout)
#   rename  <exe>  -> <exe>.old-<previous release id>
#   rename  <exe>.new -> <exe>
#   start   the service (wait up to start_timeout for Running)
#   health  optional HTTP(S) probe, optional expected version
#
# On any failure after the first rename the new binary is renamed to <exe>.failed-<release id>,
# the old copy is renamed back and the service is started again (restore).
#
# Every copy is named after the release it holds: <exe>.old-<id> and <exe>.failed-<id> hold the
# binary whose ledger entry is <id> (same sha256). A live binary that is not in the ledger (a
# hand-installed one) is kept as <exe>.old-unknown-<first 12 hex of its sha256> and never pruned.
#
# The ledger <dir of path>\.hotswap\ledger.json has the format of the Linux modules
# (docs/development.md); the lock <dir of path>\.hotswap\lock is created exclusively and held for
# the duration of one module run.
#
# Every service and network operation is a scriptblock parameter with a default that uses the
# real cmdlets, so the Pester tests (tests/windows/pester) exercise the swap and the restore on
# plain files with fake services.
#
# PowerShell 5.1 compatible: no ternary/null-coalescing operators, no -AsHashtable, no
# ::new() on generic types that 5.1 lacks, arrays returned with the unary comma.

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$script:LedgerFormat = 1
$script:LedgerStates = @('staged', 'active', 'retired', 'failed')
$script:LedgerStateTimestamp = @{
    staged = 'staged_at'
    active = 'activated_at'
    retired = 'retired_at'
    failed = 'failed_at'
}
$script:HistoryLimit = 200
$script:ReleaseIdMaxLength = 128
$script:StateDirName = '.hotswap'
$script:LedgerFileName = 'ledger.json'
$script:LockFileName = 'lock'
$script:UnknownPrefix = 'unknown-'
$script:CopySuffixSeparator = '~'   # not allowed in release ids, so '<id>~2' is unambiguous
$script:HealthRequestTimeoutSeconds = 10

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
# errors and small helpers

Function New-SwapError {
    <#
    .SYNOPSIS
    An exception carrying the message for the user and the machine-readable failure details.
    .DESCRIPTION
    Message reads "<what was being done>: <cause>. <fix>." FailedStep (stage|verify|stop|rename|
    start|health) and Reason (not_staged) end up in the module result.
    #>
    [CmdletBinding()]
    [OutputType([System.Exception])]
    param (
        [Parameter(Mandatory = $true)][string]$Message,
        [string]$FailedStep,
        [string]$Reason
    )
    $exception = New-Object -TypeName System.InvalidOperationException -ArgumentList $Message
    $exception.Data['hotswap'] = $true
    if ($FailedStep) {
        $exception.Data['hotswap_failed_step'] = $FailedStep
    }
    if ($Reason) {
        $exception.Data['hotswap_reason'] = $Reason
    }
    $exception
}

Function Get-SwapErrorDetail {
    <#
    .SYNOPSIS
    The New-SwapError details of an exception (or of one it wraps), or $null for any other error.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][System.Exception]$Exception
    )
    $e = $Exception
    while ($null -ne $e) {
        if ($e.Data.Contains('hotswap')) {
            return @{
                Message = $e.Message
                FailedStep = $e.Data['hotswap_failed_step']
                Reason = $e.Data['hotswap_reason']
            }
        }
        $e = $e.InnerException
    }
    return $null
}

Function Get-UtcTimestamp {
    <#
    .SYNOPSIS
    Now as UTC ISO 8601 to the second, the ledger's timestamp format: 2024-05-01T12:00:00Z.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param ()
    [DateTime]::UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

Function Get-UnixEpoch {
    [CmdletBinding()]
    [OutputType([long])]
    param ()
    $epoch = New-Object -TypeName DateTime -ArgumentList 1970, 1, 1, 0, 0, 0, ([DateTimeKind]::Utc)
    [long][Math]::Floor(([DateTime]::UtcNow - $epoch).TotalSeconds)
}

Function Get-ErrorText {
    <#
    .SYNOPSIS
    The innermost useful message of an error record or exception (MethodInvocationException and
    friends wrap the real cause).
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][object]$ErrorObject
    )
    $e = $ErrorObject
    if ($e -is [System.Management.Automation.ErrorRecord]) {
        $e = $e.Exception
    }
    # Unwrap what PowerShell wraps around a .NET exception (a method call, a rethrow).
    while ($null -ne $e.InnerException -and -not $e.Data.Contains('hotswap') -and
        ($e -is [System.Management.Automation.MethodInvocationException] -or
            $e.GetType() -eq [System.Management.Automation.RuntimeException])) {
        $e = $e.InnerException
    }
    $text = "$($e.Message)".Trim()
    if ($null -ne $e.InnerException -and $e.InnerException.Message -and
        -not $text.Contains($e.InnerException.Message.Trim())) {
        # e.g. "Unable to connect to the remote server (No connection could be made ...)"
        $text = $text.TrimEnd('.') + ' (' + $e.InnerException.Message.Trim().TrimEnd('.') + ')'
    }
    if ($text.EndsWith('.')) {
        $text = $text.Substring(0, $text.Length - 1)
    }
    $text
}

Function Get-PropertyValue {
    <#
    .SYNOPSIS
    A property of an object or a key of a dictionary, $null when there is none (strict mode safe).
    #>
    [CmdletBinding()]
    param (
        [AllowNull()][object]$InputObject,
        [Parameter(Mandatory = $true)][string]$Name
    )
    if ($null -eq $InputObject) {
        return $null
    }
    if ($InputObject -is [System.Collections.IDictionary]) {
        return $InputObject[$Name]
    }
    $property = $InputObject.PSObject.Properties[$Name]
    if ($null -eq $property) {
        return $null
    }
    $property.Value
}

Function Hide-UrlCredential {
    <#
    .SYNOPSIS
    The URL with any user:password@ replaced by user:********@, for messages.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [AllowEmptyString()][AllowNull()][string]$Url
    )
    if (-not $Url) {
        return ''
    }
    $Url -replace '//([^/@:]*):[^/@]*@', '//$1:********@'
}

# ---------------------------------------------------------------------------------------------
# input checks

Function Assert-ReleaseId {
    <#
    .SYNOPSIS
    Throws unless ReleaseId is a safe name: non-empty, at most 128 characters, no '/', '\' or '..',
    not starting with '.', only letters, digits, '.', '_', '+' and '-'. Same rules as Linux.
    #>
    [CmdletBinding()]
    param (
        [AllowEmptyString()][AllowNull()][string]$ReleaseId
    )
    $fix = "Use a name made of letters, digits, '.', '_', '+' and '-' (at most $script:ReleaseIdMaxLength " +
    "characters), for example '<version>-<first 12 hex of sha256>'."
    if (-not $ReleaseId) {
        throw (New-SwapError -Message "checking release_id: it is empty. $fix")
    }
    if ($ReleaseId.Length -gt $script:ReleaseIdMaxLength) {
        throw (New-SwapError -Message "checking release_id '$ReleaseId': it is $($ReleaseId.Length) characters long. $fix")
    }
    if ($ReleaseId.Contains('/') -or $ReleaseId.Contains('\') -or $ReleaseId.Contains('..')) {
        throw (New-SwapError -Message "checking release_id '$ReleaseId': it contains '/', '\' or '..'. $fix")
    }
    if ($ReleaseId.StartsWith('.')) {
        throw (New-SwapError -Message ("checking release_id '$ReleaseId': it starts with '.' (reserved for " +
                "temporary entries). $fix"))
    }
    if ($ReleaseId -cnotmatch '^[A-Za-z0-9._+-]+$') {
        throw (New-SwapError -Message ("checking release_id '$ReleaseId': it contains characters other than " +
                "letters, digits, '.', '_', '+' and '-'. $fix"))
    }
}

Function Test-ReleaseId {
    <#
    .SYNOPSIS
    True when ReleaseId follows the release id rules (see Assert-ReleaseId).
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param (
        [AllowEmptyString()][AllowNull()][string]$ReleaseId
    )
    try {
        Assert-ReleaseId -ReleaseId $ReleaseId
        return $true
    }
    catch {
        return $false
    }
}

Function ConvertFrom-Checksum {
    <#
    .SYNOPSIS
    The lower-case hex digest of a 'sha256:<64 hex>' checksum; throws for anything else.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [AllowEmptyString()][AllowNull()][string]$Checksum
    )
    if (-not $Checksum -or -not $Checksum.Trim()) {
        throw (New-SwapError -Message ("checking the checksum option: it is empty. Give it as sha256:<64 hex " +
                "digits>, for example the output of (Get-FileHash <file>).Hash or sha256sum <file>."))
    }
    $value = $Checksum.Trim()
    if ($value -match '^[0-9a-fA-F]{64}$') {
        throw (New-SwapError -Message ("checking the checksum option: '$value' has no algorithm prefix. " +
                "Write it as sha256:$($value.ToLowerInvariant())."))
    }
    if (-not ($value -match '^([A-Za-z0-9_-]+):(.*)$')) {
        throw (New-SwapError -Message ("checking the checksum option: '$value' is not of the form " +
                "<algorithm>:<hex digest>. Give it as sha256:<64 hex digits>."))
    }
    $algorithm = $Matches[1].ToLowerInvariant()
    $digest = $Matches[2].Trim()
    if ($algorithm -ne 'sha256') {
        throw (New-SwapError -Message ("checking the checksum option: algorithm '$algorithm' is not supported. " +
                "Only sha256 is accepted; compute it with (Get-FileHash -Algorithm SHA256 <file>).Hash and " +
                "pass sha256:<hex>."))
    }
    if ($digest -notmatch '^[0-9a-fA-F]{64}$') {
        throw (New-SwapError -Message ("checking the checksum option: '$digest' is not a sha256 digest " +
                "(expected 64 hex digits, got $($digest.Length) characters). Copy the full digest."))
    }
    $digest.ToLowerInvariant()
}

Function Assert-HttpUrl {
    <#
    .SYNOPSIS
    Throws unless Url is an absolute http:// or https:// URL with a host.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Url,
        [Parameter(Mandatory = $true)][string]$Option,
        [string]$Fix = 'Give an http:// or https:// URL.'
    )
    $uri = $null
    $ok = [System.Uri]::TryCreate($Url, [System.UriKind]::Absolute, [ref]$uri)
    if (-not $ok -or ($uri.Scheme -ne 'http' -and $uri.Scheme -ne 'https') -or -not $uri.Host) {
        throw (New-SwapError -Message ("checking the $Option option: $(Hide-UrlCredential -Url $Url) is not an " +
                "http:// or https:// URL. $Fix"))
    }
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

# ---------------------------------------------------------------------------------------------
# paths and volumes

Function Get-VolumeMountPoint {
    <#
    .SYNOPSIS
    Mount points of the local volumes ('C:\', 'D:\data\mnt\', ...), from Win32_Volume; empty
    when CIM is not available.
    #>
    [CmdletBinding()]
    [OutputType([string[]])]
    param ()
    try {
        $volumes = @(Get-CimInstance -ClassName Win32_Volume -Property Name -ErrorAction Stop)
    }
    catch {
        return   # no CIM: Get-VolumeRoot falls back to the path root
    }
    foreach ($volume in $volumes) {
        $name = [string]$volume.Name
        if ($name -and -not $name.StartsWith('\\?\')) {
            $name
        }
    }
}

Function Get-VolumeRoot {
    <#
    .SYNOPSIS
    The mount point of the volume that holds Path: the longest of MountPoints that contains it,
    else the path root ('C:\', '\\server\share').
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [AllowEmptyCollection()][string[]]$MountPoints = @()
    )
    $sep = [string][System.IO.Path]::DirectorySeparatorChar
    $full = [System.IO.Path]::GetFullPath($Path)
    if (-not $full.EndsWith($sep)) {
        $full += $sep
    }
    $best = $null
    foreach ($mp in @($MountPoints)) {
        if (-not $mp) {
            continue
        }
        $m = [System.IO.Path]::GetFullPath($mp)
        if (-not $m.EndsWith($sep)) {
            $m += $sep
        }
        if ($full.StartsWith($m, [System.StringComparison]::OrdinalIgnoreCase)) {
            if ($null -eq $best -or $m.Length -gt $best.Length) {
                $best = $m
            }
        }
    }
    if ($null -eq $best) {
        $best = [System.IO.Path]::GetPathRoot($full)
    }
    $best
}

Function Test-SameVolume {
    <#
    .SYNOPSIS
    True when both paths are on the same volume (a rename between them is possible).
    .DESCRIPTION
    Volume mount points in folders are honoured when MountPoints is given (the default asks
    Win32_Volume); symbolic links and junctions inside the paths are not followed.
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$OtherPath,
        [AllowEmptyCollection()][AllowNull()][string[]]$MountPoints = $null
    )
    if ($null -eq $MountPoints) {
        $MountPoints = @(Get-VolumeMountPoint)
    }
    $a = Get-VolumeRoot -Path $Path -MountPoints $MountPoints
    $b = Get-VolumeRoot -Path $OtherPath -MountPoints $MountPoints
    [string]::Equals($a, $b, [System.StringComparison]::OrdinalIgnoreCase)
}

Function Get-UniquePath {
    <#
    .SYNOPSIS
    Path itself when nothing is there, else the first free Path~2, Path~3, ... ('~' cannot occur
    in a release id, so the suffix is never mistaken for part of one).
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][string]$Path
    )
    if (-not (Test-Path -LiteralPath $Path)) {
        return $Path
    }
    $n = 2
    while (Test-Path -LiteralPath ('{0}{1}{2}' -f $Path, $script:CopySuffixSeparator, $n)) {
        $n++
    }
    '{0}{1}{2}' -f $Path, $script:CopySuffixSeparator, $n
}

Function Get-SwapPaths {
    <#
    .SYNOPSIS
    Every path the swap uses, from the live exe path and the staging directory.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [AllowEmptyString()][AllowNull()][string]$StagingDir
    )
    $dir = [System.IO.Path]::GetDirectoryName($Path)
    $name = [System.IO.Path]::GetFileName($Path)
    if (-not $StagingDir) {
        $StagingDir = $dir
    }
    $stateDir = [System.IO.Path]::Combine($dir, $script:StateDirName)
    [PSCustomObject]@{
        Path = $Path
        Directory = $dir
        Name = $name
        StagingDir = $StagingDir
        Staged = [System.IO.Path]::Combine($StagingDir, "$name.new")
        StateDir = $stateDir
        Ledger = [System.IO.Path]::Combine($stateDir, $script:LedgerFileName)
        Lock = [System.IO.Path]::Combine($stateDir, $script:LockFileName)
    }
}

Function Get-CopyPath {
    <#
    .SYNOPSIS
    '<path>.old-<id>' or '<path>.failed-<id>' (not made unique; see Get-UniquePath).
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][ValidateSet('old', 'failed')][string]$Kind,
        [Parameter(Mandatory = $true)][string]$ReleaseId
    )
    '{0}.{1}-{2}' -f $Path, $Kind, $ReleaseId
}

Function Get-BinaryCopy {
    <#
    .SYNOPSIS
    The old and failed copies of an exe in its directory: '<exe>.old-<id>[~n]' and
    '<exe>.failed-<id>[~n]'.
    .OUTPUTS
    PSCustomObject per copy: Path, Name, Kind (old|failed), ReleaseId, Sequence (1, or n of '~n').
    Names that do not parse (an invalid id, a bad suffix) are left out: they are never touched.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Path
    )
    $dir = [System.IO.Path]::GetDirectoryName($Path)
    $exe = [System.IO.Path]::GetFileName($Path)
    if (-not [System.IO.Directory]::Exists($dir)) {
        return
    }
    foreach ($file in [System.IO.Directory]::GetFiles($dir)) {
        $name = [System.IO.Path]::GetFileName($file)
        foreach ($kind in @('old', 'failed')) {
            $prefix = "$exe.$kind-"
            if (-not $name.StartsWith($prefix, [System.StringComparison]::OrdinalIgnoreCase)) {
                continue
            }
            $rest = $name.Substring($prefix.Length)
            $sequence = 1
            $cut = $rest.IndexOf($script:CopySuffixSeparator, [System.StringComparison]::Ordinal)
            if ($cut -ge 0) {
                $suffix = $rest.Substring($cut + 1)
                $rest = $rest.Substring(0, $cut)
                if ($suffix -notmatch '^[0-9]{1,6}$' -or [int]$suffix -lt 2) {
                    continue
                }
                $sequence = [int]$suffix
            }
            if (-not (Test-ReleaseId -ReleaseId $rest)) {
                continue
            }
            [PSCustomObject]@{
                Path = $file
                Name = $name
                Kind = $kind
                ReleaseId = $rest
                Sequence = $sequence
            }
        }
    }
}

# ---------------------------------------------------------------------------------------------
# ledger (same JSON as the Linux modules: docs/development.md)

Function New-SwapLedger {
    <#
    .SYNOPSIS
    An empty ledger: ordered dictionary with format, releases (ordered) and history (ArrayList).
    #>
    [CmdletBinding()]
    param ()
    [ordered]@{
        format = $script:LedgerFormat
        releases = [ordered]@{}
        history = (New-Object -TypeName System.Collections.ArrayList)
    }
}

Function ConvertTo-LedgerValue {
    <#
    .SYNOPSIS
    ConvertFrom-Json output -> ordered dictionaries and ArrayLists. DateTime values (PowerShell 7
    turns ISO 8601 strings into DateTime) go back to the ledger's string format.
    #>
    [CmdletBinding()]
    param (
        [AllowNull()][object]$Value
    )
    if ($null -eq $Value) {
        return $null
    }
    if ($Value -is [System.Management.Automation.PSCustomObject]) {
        $dict = [ordered]@{}
        foreach ($property in $Value.PSObject.Properties) {
            $dict[$property.Name] = ConvertTo-LedgerValue -Value $property.Value
        }
        return $dict
    }
    if ($Value -is [System.Collections.IDictionary]) {
        $dict = [ordered]@{}
        foreach ($key in $Value.Keys) {
            $dict[[string]$key] = ConvertTo-LedgerValue -Value $Value[$key]
        }
        return $dict
    }
    if ($Value -is [DateTime]) {
        return $Value.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'",
            [System.Globalization.CultureInfo]::InvariantCulture)
    }
    if ($Value -is [string]) {
        return $Value
    }
    if ($Value -is [System.Collections.IEnumerable]) {
        $list = New-Object -TypeName System.Collections.ArrayList
        foreach ($item in $Value) {
            $null = $list.Add((ConvertTo-LedgerValue -Value $item))
        }
        return , $list
    }
    $Value
}

Function Read-SwapLedger {
    <#
    .SYNOPSIS
    Reads the ledger at Path; a missing file gives an empty ledger. Throws for a malformed one.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Path
    )
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
        return New-SwapLedger
    }
    $fix = ("Restore it from a backup, or move it away to start an empty ledger (the old copies then " +
        "count as unknown and are never pruned).")
    try {
        $text = [System.IO.File]::ReadAllText($Path, [System.Text.Encoding]::UTF8)
    }
    catch {
        throw (New-SwapError -Message ("reading the release ledger $($Path): $(Get-ErrorText $_). Check the " +
                "permissions of the account Ansible connects as."))
    }
    try {
        $parsed = ConvertFrom-Json -InputObject $text
    }
    catch {
        throw (New-SwapError -Message "reading the release ledger $($Path): it is not valid JSON ($(Get-ErrorText $_)). $fix")
    }
    $data = ConvertTo-LedgerValue -Value $parsed
    $shapeError = "reading the release ledger $($Path): it does not have the expected {`"format`", `"releases`", `"history`"} structure. $fix"
    if ($data -isnot [System.Collections.IDictionary]) {
        throw (New-SwapError -Message $shapeError)
    }
    if (-not $data.Contains('releases')) {
        $data['releases'] = [ordered]@{}
    }
    if (-not $data.Contains('history')) {
        $data['history'] = New-Object -TypeName System.Collections.ArrayList
    }
    if ($data['releases'] -isnot [System.Collections.IDictionary] -or
        $data['history'] -isnot [System.Collections.IList]) {
        throw (New-SwapError -Message $shapeError)
    }
    $format = $data['format']
    if ($null -eq $format -or $format -isnot [ValueType] -or [string]$format -ne [string]$script:LedgerFormat) {
        throw (New-SwapError -Message ("reading the release ledger $($Path): format '$format' is not supported " +
                "(expected $script:LedgerFormat). Use the hotswap.deploy version that wrote it, or " +
                $fix.Substring(0, 1).ToLowerInvariant() + $fix.Substring(1)))
    }
    foreach ($entry in $data['history']) {
        if ($entry -isnot [System.Collections.IDictionary]) {
            throw (New-SwapError -Message "reading the release ledger $($Path): a history entry is not an object. $fix")
        }
    }
    foreach ($rid in @($data['releases'].Keys)) {
        $entry = $data['releases'][$rid]
        if ($entry -isnot [System.Collections.IDictionary] -or $script:LedgerStates -notcontains $entry['state']) {
            throw (New-SwapError -Message "reading the release ledger $($Path): the entry for '$rid' is malformed. $fix")
        }
    }
    $ledger = New-SwapLedger
    $ledger['releases'] = $data['releases']
    $ledger['history'] = $data['history']
    $ledger
}

Function Write-SwapLedger {
    <#
    .SYNOPSIS
    Writes the ledger atomically: a temporary file in the same directory, flushed to disk, then
    [System.IO.File]::Replace over the ledger (or a move when there is none yet).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger
    )
    $dir = [System.IO.Path]::GetDirectoryName($Path)
    $ordered = [ordered]@{
        format = $script:LedgerFormat
        releases = $Ledger['releases']
        history = $Ledger['history']
    }
    $json = ConvertTo-Json -InputObject $ordered -Depth 10
    $tmp = [System.IO.Path]::Combine($dir, ('.ledger.json.tmp-' + [Guid]::NewGuid().ToString('N')))
    try {
        if (-not [System.IO.Directory]::Exists($dir)) {
            $null = [System.IO.Directory]::CreateDirectory($dir)
        }
        $bytes = (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false).GetBytes($json + "`n")
        $stream = [System.IO.File]::Open($tmp, [System.IO.FileMode]::CreateNew, [System.IO.FileAccess]::Write,
            [System.IO.FileShare]::None)
        try {
            $stream.Write($bytes, 0, $bytes.Length)
            $stream.Flush($true)
        }
        finally {
            $stream.Dispose()
        }
        if ([System.IO.File]::Exists($Path)) {
            [System.IO.File]::Replace($tmp, $Path, $null)
        }
        else {
            [System.IO.File]::Move($tmp, $Path)
        }
    }
    catch {
        $cause = Get-ErrorText $_
        if ([System.IO.File]::Exists($tmp)) {
            try {
                [System.IO.File]::Delete($tmp)
            }
            catch {
                $null = $_   # best effort: the message below is what matters
            }
        }
        throw (New-SwapError -Message ("saving the release ledger $($Path): $cause. The previous ledger is " +
                "unchanged; check permissions and free space."))
    }
}

Function New-SwapLedgerEntry {
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$ReleaseId,
        [AllowNull()][AllowEmptyString()][string]$Version,
        [AllowNull()][AllowEmptyString()][string]$Digest,
        [AllowNull()][AllowEmptyString()][string]$Binary,
        [string]$At
    )
    if (-not $At) {
        $At = Get-UtcTimestamp
    }
    [ordered]@{
        release_id = $ReleaseId
        version = $(if ($Version) { $Version } else { $null })
        sha256 = $(if ($Digest) { $Digest } else { $null })
        binary = $(if ($Binary) { $Binary } else { $null })
        state = 'staged'
        staged_at = $At
        activated_at = $null
        retired_at = $null
        failed_at = $null
        activated_by = $null
    }
}

Function Add-SwapLedgerStaged {
    <#
    .SYNOPSIS
    Records that ReleaseId was staged (like Ledger.record_staged); returns $true when the ledger
    changed. The same sha256 again is a no-op (the state is kept); another sha256 throws.
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger,
        [Parameter(Mandatory = $true)][string]$ReleaseId,
        [AllowNull()][AllowEmptyString()][string]$Version,
        [Parameter(Mandatory = $true)][string]$Digest,
        [Parameter(Mandatory = $true)][string]$Binary,
        [string]$At
    )
    $releases = $Ledger['releases']
    if ($releases.Contains($ReleaseId)) {
        $entry = $releases[$ReleaseId]
        if ($entry['sha256'] -and $entry['sha256'] -ne $Digest) {
            throw (New-SwapError -Message ("recording staged release $($ReleaseId): the ledger already has it " +
                    "with sha256 $($entry['sha256']), not $Digest. Release ids must be derived from the artifact " +
                    "(version + sha256); use a new release_id for a different binary."))
        }
        $changed = $false
        foreach ($pair in @(@('version', $Version), @('sha256', $Digest), @('binary', $Binary))) {
            if ($null -eq $entry[$pair[0]] -and $pair[1]) {
                $entry[$pair[0]] = $pair[1]
                $changed = $true
            }
        }
        return $changed
    }
    $releases[$ReleaseId] = New-SwapLedgerEntry -ReleaseId $ReleaseId -Version $Version -Digest $Digest `
        -Binary $Binary -At $At
    return $true
}

Function Add-SwapLedgerActivation {
    <#
    .SYNOPSIS
    Records that ReleaseId is live now (like Ledger.record_activated): it becomes active,
    PreviousReleaseId becomes retired, any other active release is retired, a history entry
    {release_id, from, at, by} is appended (history capped at 200 entries).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger,
        [Parameter(Mandatory = $true)][string]$ReleaseId,
        [AllowNull()][AllowEmptyString()][string]$PreviousReleaseId,
        [string]$By = 'ansible',
        [string]$At
    )
    if (-not $At) {
        $At = Get-UtcTimestamp
    }
    $releases = $Ledger['releases']
    if (-not $releases.Contains($ReleaseId)) {
        $releases[$ReleaseId] = New-SwapLedgerEntry -ReleaseId $ReleaseId -At $At
    }
    $entry = $releases[$ReleaseId]
    $entry['state'] = 'active'
    $entry['activated_at'] = $At
    $entry['activated_by'] = $By
    foreach ($rid in @($releases.Keys)) {
        if ($rid -ceq $ReleaseId) {
            continue
        }
        $other = $releases[$rid]
        if ($other['state'] -eq 'active') {
            $other['state'] = 'retired'
            $other['retired_at'] = $At
        }
    }
    $from = $null
    if ($PreviousReleaseId -and $PreviousReleaseId -cne $ReleaseId) {
        $from = $PreviousReleaseId
    }
    $history = $Ledger['history']
    $null = $history.Add([ordered]@{
            release_id = $ReleaseId
            from = $from
            at = $At
            by = $By
        })
    while ($history.Count -gt $script:HistoryLimit) {
        $history.RemoveAt(0)
    }
}

Function Set-SwapLedgerState {
    <#
    .SYNOPSIS
    Sets the state of ReleaseId (and its <state>_at); returns $true when it changed.
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger,
        [Parameter(Mandatory = $true)][string]$ReleaseId,
        [Parameter(Mandatory = $true)][ValidateSet('staged', 'active', 'retired', 'failed')][string]$State,
        [string]$At
    )
    $releases = $Ledger['releases']
    if (-not $releases.Contains($ReleaseId)) {
        return $false
    }
    $entry = $releases[$ReleaseId]
    if ($entry['state'] -eq $State) {
        return $false
    }
    if (-not $At) {
        $At = Get-UtcTimestamp
    }
    $entry['state'] = $State
    $entry[$script:LedgerStateTimestamp[$State]] = $At
    return $true
}

Function Get-SwapLedgerActive {
    <#
    .SYNOPSIS
    Ids of the releases the ledger marks active (normally one).
    #>
    [CmdletBinding()]
    [OutputType([string[]])]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger
    )
    foreach ($rid in @($Ledger['releases'].Keys)) {
        if ($Ledger['releases'][$rid]['state'] -eq 'active') {
            [string]$rid
        }
    }
}

Function Test-SwapLedgerNeedsActivation {
    <#
    .SYNOPSIS
    True unless the ledger already says ReleaseId is the one and only active release.
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger,
        [Parameter(Mandatory = $true)][string]$ReleaseId
    )
    $active = @(Get-SwapLedgerActive -Ledger $Ledger)
    -not ($active.Count -eq 1 -and $active[0] -ceq $ReleaseId)
}

Function Find-SwapLedgerRelease {
    <#
    .SYNOPSIS
    The id of the ledger release with this sha256 (an active one first, else the most recently
    activated, else the most recently staged), or $null.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger,
        [AllowNull()][AllowEmptyString()][string]$Digest
    )
    if (-not $Digest) {
        return $null
    }
    $releases = $Ledger['releases']
    $matching = @(@($releases.Keys) | Where-Object { $releases[$_]['sha256'] -eq $Digest })
    if ($matching.Count -eq 0) {
        return $null
    }
    foreach ($rid in $matching) {
        if ($releases[$rid]['state'] -eq 'active') {
            return [string]$rid
        }
    }
    $history = $Ledger['history']
    for ($i = $history.Count - 1; $i -ge 0; $i--) {
        $hid = $history[$i]['release_id']
        if ($matching -ccontains $hid) {
            return [string]$hid
        }
    }
    [string]$matching[$matching.Count - 1]
}

Function Select-OldCopiesToPrune {
    <#
    .SYNOPSIS
    The copies (Get-BinaryCopy objects) to delete so that at most Keep copies remain, in deletion
    order.
    .DESCRIPTION
    Mirrors select_prunable of the Linux ledger: only copies whose release is in the ledger count
    (unknown ones are never selected and do not count); failed copies go first, then the oldest by
    the ledger's staged_at (ties: the ledger's order, then the ~n suffix) - never file times.
    Copies whose path is in Protect (the backup this run made) are never selected but count.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][object[]]$Copies,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger,
        [Parameter(Mandatory = $true)][int]$Keep,
        [AllowEmptyCollection()][string[]]$Protect = @()
    )
    if ($Keep -lt 1) {
        throw (New-SwapError -Message ("selecting old copies to prune: keep must be an integer >= 1, not $Keep. " +
                "The live binary and the copy this run made are always kept."))
    }
    $releases = $Ledger['releases']
    $order = @{}
    $i = 0
    foreach ($rid in @($releases.Keys)) {
        $order[[string]$rid] = $i
        $i++
    }
    $known = @($Copies | Where-Object { $null -ne $_ -and $releases.Contains($_.ReleaseId) })
    $excess = $known.Count - $Keep
    if ($excess -le 0) {
        return
    }
    $sorted = @($known | Sort-Object -Property @(
            @{ Expression = { if ($_.Kind -eq 'failed') { 0 } else { 1 } } },
            @{ Expression = { [string]$releases[$_.ReleaseId]['staged_at'] } },
            @{ Expression = { $order[$_.ReleaseId] } },
            @{ Expression = { $_.Sequence } }
        ))
    $sorted | Where-Object { $Protect -notcontains $_.Path } | Select-Object -First $excess
}

# ---------------------------------------------------------------------------------------------
# lock

Function Read-SwapLock {
    <#
    .SYNOPSIS
    The holder of the lock (owner, acquired_at, acquired_epoch, host, age), or $null when free.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Path
    )
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
        return $null
    }
    $holder = [ordered]@{ owner = $null; acquired_at = $null; acquired_epoch = $null; host = $null; age = 0 }
    try {
        $parsed = ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($Path, [System.Text.Encoding]::UTF8))
        $value = ConvertTo-LedgerValue -Value $parsed
        if ($value -is [System.Collections.IDictionary]) {
            foreach ($key in @('owner', 'acquired_at', 'acquired_epoch', 'host')) {
                if ($value.Contains($key)) {
                    $holder[$key] = $value[$key]
                }
            }
        }
    }
    catch {
        $holder['owner'] = $null   # empty or corrupt: reported as an unknown owner
    }
    if ($holder['acquired_epoch'] -is [ValueType]) {
        $holder['age'] = [Math]::Max([long]0, [long](Get-UnixEpoch) - [long]$holder['acquired_epoch'])
    }
    $holder
}

Function Enter-SwapLock {
    <#
    .SYNOPSIS
    Creates the lock file exclusively ([System.IO.File]::Open with FileMode.CreateNew) with
    {owner, acquired_at, acquired_epoch, host}; throws naming the holder when it exists.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$Owner,
        [string]$What = 'swapping the binary'
    )
    $dir = [System.IO.Path]::GetDirectoryName($Path)
    try {
        if (-not [System.IO.Directory]::Exists($dir)) {
            $null = [System.IO.Directory]::CreateDirectory($dir)
        }
        $stream = [System.IO.File]::Open($Path, [System.IO.FileMode]::CreateNew, [System.IO.FileAccess]::Write,
            [System.IO.FileShare]::Read)
    }
    catch {
        $cause = Get-ErrorText $_
        if (Test-Path -LiteralPath $Path -PathType Leaf) {
            $holder = Read-SwapLock -Path $Path
            $who = 'an unknown owner (the lock file is empty or corrupt)'
            if ($null -ne $holder -and $holder['owner']) {
                $who = "'$($holder['owner'])'"
                if ($holder['host']) {
                    $who += " on $($holder['host'])"
                }
                if ($holder['acquired_at']) {
                    $who += " since $($holder['acquired_at']) ($($holder['age']) s ago)"
                }
            }
            throw (New-SwapError -Message ("$($What): the deploy lock $Path is held by $who. Wait for that deploy " +
                    "to finish and retry; if it is dead (no such PowerShell process on the host), delete $Path."))
        }
        throw (New-SwapError -Message "$($What): creating the deploy lock $Path failed: $cause. Check permissions.")
    }
    try {
        $content = [ordered]@{
            owner = $Owner
            acquired_at = Get-UtcTimestamp
            acquired_epoch = Get-UnixEpoch
            host = [Environment]::MachineName
        }
        $json = ConvertTo-Json -InputObject $content -Compress
        $bytes = (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false).GetBytes($json + "`n")
        $stream.Write($bytes, 0, $bytes.Length)
        $stream.Flush($true)
    }
    finally {
        $stream.Dispose()
    }
}

Function Exit-SwapLock {
    <#
    .SYNOPSIS
    Removes the lock file if Owner holds it (another owner's lock is left alone).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$Owner
    )
    $holder = Read-SwapLock -Path $Path
    if ($null -ne $holder -and $holder['owner'] -ceq $Owner) {
        [System.IO.File]::Delete($Path)
    }
}

# ---------------------------------------------------------------------------------------------
# services (the defaults of the scriptblock parameters of Invoke-BinarySwap)

Function Get-SwapServiceInfo {
    <#
    .SYNOPSIS
    Status, start mode and image path of a service, or $null when there is no such service.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Name
    )
    $service = @(Get-Service -Name $Name -ErrorAction SilentlyContinue | Where-Object { $_.Name -eq $Name })
    if ($service.Count -eq 0) {
        return $null
    }
    $startMode = $null
    $binaryPath = $null
    try {
        $escaped = $Name.Replace('\', '\\').Replace("'", "\'")
        $cim = Get-CimInstance -ClassName Win32_Service -Filter "Name='$escaped'" -ErrorAction Stop
        if ($null -ne $cim) {
            $startMode = [string]$cim.StartMode
            $binaryPath = [string]$cim.PathName
        }
    }
    catch {
        $startMode = $null   # CIM unavailable: the checks that need it are skipped
    }
    [PSCustomObject]@{
        Name = $service[0].Name
        Status = [string]$service[0].Status
        StartMode = $startMode
        BinaryPath = $binaryPath
    }
}

Function Test-ServiceRunsPath {
    <#
    .SYNOPSIS
    True when a service image path (Win32_Service.PathName: maybe quoted, maybe with arguments)
    starts the exe at Path.
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param (
        [AllowNull()][AllowEmptyString()][string]$BinaryPath,
        [Parameter(Mandatory = $true)][string]$Path
    )
    if (-not $BinaryPath) {
        return $true   # unknown: do not complain
    }
    $image = $BinaryPath.Trim()
    if ($image.StartsWith('"')) {
        $end = $image.IndexOf([char]'"', 1)
        if ($end -gt 0) {
            $image = $image.Substring(1, $end - 1)
        }
    }
    elseif (-not $image.StartsWith($Path, [System.StringComparison]::OrdinalIgnoreCase)) {
        $space = $image.IndexOf([char]' ')
        if ($space -gt 0) {
            $image = $image.Substring(0, $space)
        }
    }
    else {
        $image = $image.Substring(0, $Path.Length)
    }
    [string]::Equals([System.Environment]::ExpandEnvironmentVariables($image), $Path,
        [System.StringComparison]::OrdinalIgnoreCase)
}

Function Stop-ServiceAndWait {
    <#
    .SYNOPSIS
    Stops a service and waits up to TimeoutSeconds for Stopped. Outputs the names of the dependent
    services that were running (ServiceController.Stop stops them too) so they can be started again.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][string]$Name,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds
    )
    # Get-Service returns a System.ServiceProcess.ServiceController; statuses are compared as
    # strings so that the type never has to be named (its assembly may not be loaded yet).
    $service = Get-Service -Name $Name -ErrorAction Stop
    try {
        $service.Refresh()
        if ([string]$service.Status -eq 'Stopped') {
            return
        }
        $dependents = @($service.DependentServices |
                Where-Object { [string]$_.Status -eq 'Running' } |
                ForEach-Object { [string]$_.ServiceName })
        if ([string]$service.Status -ne 'StopPending') {
            $service.Stop()
        }
        try {
            $service.WaitForStatus('Stopped', [TimeSpan]::FromSeconds($TimeoutSeconds))
        }
        catch {
            $service.Refresh()
            throw "service '$Name' did not stop within $TimeoutSeconds s (status: $($service.Status))"
        }
        $dependents
    }
    finally {
        $service.Dispose()
    }
}

Function Start-ServiceAndWait {
    <#
    .SYNOPSIS
    Starts a service and waits up to TimeoutSeconds for Running, then starts the dependent services
    Stop-ServiceAndWait stopped. Outputs warnings (strings) about dependents that did not start.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][string]$Name,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        [AllowNull()][AllowEmptyCollection()][string[]]$Dependents = @()
    )
    $service = Get-Service -Name $Name -ErrorAction Stop
    try {
        $service.Refresh()
        if ([string]$service.Status -ne 'Running') {
            if ([string]$service.Status -ne 'StartPending') {
                $service.Start()
            }
            try {
                $service.WaitForStatus('Running', [TimeSpan]::FromSeconds($TimeoutSeconds))
            }
            catch {
                $service.Refresh()
                throw "service '$Name' did not reach Running within $TimeoutSeconds s (status: $($service.Status))"
            }
        }
    }
    finally {
        $service.Dispose()
    }
    foreach ($dependent in @($Dependents)) {
        if (-not $dependent) {
            continue
        }
        try {
            Start-Service -Name $dependent -ErrorAction Stop
        }
        catch {
            "the dependent service '$dependent' was stopped with '$Name' and did not start again: $(Get-ErrorText $_)"
        }
    }
}

# ---------------------------------------------------------------------------------------------
# HTTP: download and health probe

Function Invoke-WebRequestWithPolicy {
    <#
    .SYNOPSIS
    Invoke-WebRequest -UseBasicParsing with TLS 1.2 enabled, no progress bar, and certificate
    validation switched off only when ValidateCerts is false (and only for this call).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Parameters,
        [bool]$ValidateCerts = $true
    )
    $ProgressPreference = 'SilentlyContinue'   # the progress bar makes 5.1 downloads very slow
    $protocols = [System.Net.ServicePointManager]::SecurityProtocol
    foreach ($name in @('Tls12', 'Tls13')) {
        if ([System.Net.SecurityProtocolType].GetMember($name).Count -gt 0) {
            $protocols = $protocols -bor [System.Net.SecurityProtocolType]::$name
        }
    }
    [System.Net.ServicePointManager]::SecurityProtocol = $protocols
    $request = @{} + $Parameters
    $request['UseBasicParsing'] = $true
    $request['ErrorAction'] = 'Stop'
    $previousCallback = [System.Net.ServicePointManager]::ServerCertificateValidationCallback
    $restoreCallback = $false
    if (-not $ValidateCerts) {
        if ((Get-Command -Name Invoke-WebRequest).Parameters.ContainsKey('SkipCertificateCheck')) {
            $request['SkipCertificateCheck'] = $true   # PowerShell 6+
        }
        else {
            # Windows PowerShell 5.1: the synchronous request runs the callback on this thread.
            [System.Net.ServicePointManager]::ServerCertificateValidationCallback = { $true }
            $restoreCallback = $true
        }
    }
    try {
        Invoke-WebRequest @request
    }
    finally {
        if ($restoreCallback) {
            [System.Net.ServicePointManager]::ServerCertificateValidationCallback = $previousCallback
        }
    }
}

Function Save-UrlToFile {
    <#
    .SYNOPSIS
    Downloads Url to OutFile (the default downloader of Invoke-BinarySwap).
    .DESCRIPTION
    No overall time limit is set: a large binary may take long. Windows PowerShell 5.1 gives up
    when no response headers arrive within 100 s or no data within 300 s (.NET defaults).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Url,
        [Parameter(Mandatory = $true)][string]$OutFile,
        [bool]$ValidateCerts = $true
    )
    $null = Invoke-WebRequestWithPolicy -ValidateCerts $ValidateCerts -Parameters @{
        Uri = $Url
        OutFile = $OutFile
        Method = 'Get'
    }
}

Function Invoke-HealthRequest {
    <#
    .SYNOPSIS
    One GET of the health URL (the default request of Invoke-HealthProbe).
    .OUTPUTS
    @{ StatusCode = <int>; Body = <string> }; throws when nothing answered or (5.1) for a
    non-2xx status.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Url,
        [bool]$ValidateCerts = $true,
        [int]$TimeoutSeconds = 10
    )
    $response = Invoke-WebRequestWithPolicy -ValidateCerts $ValidateCerts -Parameters @{
        Uri = $Url
        Method = 'Get'
        TimeoutSec = $TimeoutSeconds
    }
    $content = $response.Content
    if ($content -is [byte[]]) {
        $content = [System.Text.Encoding]::UTF8.GetString($content)
    }
    @{ StatusCode = [int]$response.StatusCode; Body = [string]$content }
}

Function Get-HealthBodyVersion {
    <#
    .SYNOPSIS
    The version a health body reports: the 'version' field of a JSON object, or the trimmed body
    when it is not a JSON object. $null for a JSON object without a version.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [AllowNull()][AllowEmptyString()][string]$Body
    )
    $trimmed = "$Body".Trim()
    if ($trimmed.StartsWith('{')) {
        $parsed = $null
        try {
            $parsed = ConvertFrom-Json -InputObject $trimmed
        }
        catch {
            $parsed = $null
        }
        if ($parsed -is [System.Management.Automation.PSCustomObject]) {
            $property = $parsed.PSObject.Properties['version']
            if ($null -ne $property -and $null -ne $property.Value) {
                return [string]$property.Value
            }
            return $null
        }
    }
    $trimmed
}

Function Get-HttpStatusFromError {
    <#
    .SYNOPSIS
    The HTTP status code carried by a web request error (the server answered), or $null (it did not).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][object]$ErrorRecord
    )
    $e = $ErrorRecord
    if ($e -is [System.Management.Automation.ErrorRecord]) {
        $e = $e.Exception
    }
    while ($null -ne $e) {
        $responseProperty = $e.PSObject.Properties['Response']
        if ($null -ne $responseProperty -and $null -ne $responseProperty.Value) {
            $statusProperty = $responseProperty.Value.PSObject.Properties['StatusCode']
            if ($null -ne $statusProperty -and $null -ne $statusProperty.Value) {
                return [int]$statusProperty.Value
            }
        }
        $e = $e.InnerException
    }
    return $null
}

Function Invoke-HealthProbe {
    <#
    .SYNOPSIS
    Probes Url up to Retries + 1 times, Interval seconds apart, until one attempt passes.
    .DESCRIPTION
    An attempt passes on a 2xx answer whose version (Get-HealthBodyVersion) equals ExpectedVersion
    when that is given. It fails when the server answered wrongly (other status, other or no
    version) and is inconclusive when nothing could be measured (refused, timeout, TLS error).
    The verdict is pass, or the outcome of the last attempt.
    .OUTPUTS
    PSCustomObject: Verdict (pass|fail|inconclusive), Attempts, Reason, Version.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Url,
        [AllowNull()][AllowEmptyString()][string]$ExpectedVersion,
        [int]$Retries = 20,
        [int]$Interval = 1,
        [bool]$ValidateCerts = $true,
        [int]$TimeoutSeconds = $script:HealthRequestTimeoutSeconds,
        [scriptblock]$Request = {
            param ($Url, $ValidateCerts, $TimeoutSeconds)
            Invoke-HealthRequest -Url $Url -ValidateCerts $ValidateCerts -TimeoutSeconds $TimeoutSeconds
        },
        [scriptblock]$Sleep = { param ($Seconds) Start-Sleep -Seconds $Seconds }
    )
    $shown = Hide-UrlCredential -Url $Url
    $outcome = 'inconclusive'
    $reason = 'no attempt was made'
    $version = $null
    $attempts = 0
    for ($i = 0; $i -le [Math]::Max(0, $Retries); $i++) {
        if ($i -gt 0 -and $Interval -gt 0) {
            $null = & $Sleep $Interval
        }
        $attempts++
        $version = $null
        try {
            $answer = & $Request $Url $ValidateCerts $TimeoutSeconds
        }
        catch {
            $status = Get-HttpStatusFromError -ErrorRecord $_
            if ($null -ne $status) {
                $outcome = 'fail'
                $reason = "$shown answered HTTP $status"
            }
            else {
                $outcome = 'inconclusive'
                $reason = "$shown could not be reached: $(Get-ErrorText $_)"
            }
            continue
        }
        if ($answer -isnot [System.Collections.IDictionary]) {
            $outcome = 'inconclusive'
            $reason = "$shown gave no answer"
            continue
        }
        $code = [int]$answer['StatusCode']
        if ($code -lt 200 -or $code -gt 299) {
            $outcome = 'fail'
            $reason = "$shown answered HTTP $code"
            continue
        }
        if ($ExpectedVersion) {
            $version = Get-HealthBodyVersion -Body ([string]$answer['Body'])
            if ($null -eq $version) {
                $outcome = 'fail'
                $reason = "$shown answered a JSON object without a 'version' field (expected version $ExpectedVersion)"
                continue
            }
            if ($version -cne $ExpectedVersion) {
                $outcome = 'fail'
                $reason = "$shown reports version '$version', expected '$ExpectedVersion'"
                continue
            }
        }
        $outcome = 'pass'
        $reason = "$shown answered HTTP $code"
        if ($ExpectedVersion) {
            $reason += " with version '$version'"
        }
        break
    }
    [PSCustomObject]@{
        Verdict = $outcome
        Attempts = $attempts
        Reason = $reason
        Version = $version
    }
}

# ---------------------------------------------------------------------------------------------
# rollback: what the host has (operation=query) and the kept copy to go back to

Function Select-KeptCopy {
    <#
    .SYNOPSIS
    The copy (a Get-BinaryCopy object) that holds ReleaseId: an .old-<id> copy before a
    .failed-<id> one, then the lowest ~n; $null when there is none.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][object[]]$Copies,
        [Parameter(Mandatory = $true)][string]$ReleaseId
    )
    $mine = @($Copies | Where-Object { $null -ne $_ -and [string]$_.ReleaseId -ceq $ReleaseId })
    if ($mine.Count -eq 0) {
        return $null
    }
    @($mine | Sort-Object -Property @(
            @{ Expression = { if ($_.Kind -eq 'old') { 0 } else { 1 } } },
            @{ Expression = { $_.Sequence } }
        ))[0]
}

Function Select-PreviousGoodRelease {
    <#
    .SYNOPSIS
    The release to roll back to from CurrentReleaseId, or $null: the newest activation in the
    ledger's history whose release is not the current one, is still in the ledger, is not failed
    and has a kept copy (its id is in Present). The rule of the Linux ledger's previous_good,
    with "its release directory exists" read as "a copy of its exe is kept".
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger,
        [AllowNull()][AllowEmptyString()][string]$CurrentReleaseId,
        [AllowEmptyCollection()][string[]]$Present = @()
    )
    $releases = $Ledger['releases']
    $history = $Ledger['history']
    for ($i = $history.Count - 1; $i -ge 0; $i--) {
        $hid = [string]$history[$i]['release_id']
        if (-not $hid -or $hid -ceq $CurrentReleaseId -or @($Present) -cnotcontains $hid) {
            continue
        }
        if (-not $releases.Contains($hid) -or $releases[$hid]['state'] -eq 'failed') {
            continue
        }
        return $hid
    }
    return $null
}

Function Assert-SwapLockFree {
    <#
    .SYNOPSIS
    Throws, naming the holder, when the lock file exists (check mode: a real run would be refused).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$What
    )
    $holder = Read-SwapLock -Path $Path
    if ($null -eq $holder) {
        return
    }
    $who = 'an unknown owner (the lock file is empty or corrupt)'
    if ($holder['owner']) {
        $who = "'$($holder['owner'])'"
        if ($holder['acquired_at']) {
            $who += " since $($holder['acquired_at']) ($($holder['age']) s ago)"
        }
    }
    throw (New-SwapError -Message ("$($What): the deploy lock $Path is held by $who. Wait for that deploy to " +
            "finish and retry; if it is dead (no such PowerShell process on the host), delete $Path."))
}

Function Resolve-RollbackTarget {
    <#
    .SYNOPSIS
    The digest (from the ledger) and the kept copy of the release a rollback goes back to.
    Throws when the ledger does not know the release, records no sha256 for it, or records
    another sha256 than Digest (the checksum option, when given).
    .OUTPUTS
    PSCustomObject: Digest, Copy (Select-KeptCopy result or $null: the caller refuses unless the
    release is live already), Version.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger,
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][object[]]$Copies,
        [Parameter(Mandatory = $true)][string]$ReleaseId,
        [AllowNull()][AllowEmptyString()][string]$Digest,
        [Parameter(Mandatory = $true)][string]$LedgerPath,
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$What
    )
    $releases = $Ledger['releases']
    if (-not $releases.Contains($ReleaseId)) {
        $known = @($releases.Keys)
        $has = 'no releases'
        if ($known.Count -gt 0) {
            $has = $known -join ', '
        }
        throw (New-SwapError -Message ("$($What): the ledger $LedgerPath has no release $ReleaseId (it has $has). " +
                "Pick one of those (operation=query lists them with their kept copies), or deploy that version " +
                "again with operation=swap. Nothing was changed."))
    }
    $entry = $releases[$ReleaseId]
    $recorded = [string]$entry['sha256']
    if (-not $recorded) {
        throw (New-SwapError -Message ("$($What): the ledger $LedgerPath records no sha256 for release $ReleaseId, " +
                "so a kept copy cannot be verified. Deploy that version again with operation=swap (src or url " +
                "and checksum). Nothing was changed."))
    }
    if ($Digest -and $Digest -ne $recorded) {
        throw (New-SwapError -Message ("$($What): checksum says $Digest but the ledger $LedgerPath records " +
                "$recorded for release $ReleaseId. Leave checksum out (the ledger's digest is used) or fix it. " +
                "Nothing was changed."))
    }
    $copy = Select-KeptCopy -Copies $Copies -ReleaseId $ReleaseId
    [PSCustomObject]@{
        Digest = $recorded
        Copy = $copy
        Version = [string]$entry['version']
    }
}

Function Assert-KeptCopy {
    <#
    .SYNOPSIS
    Throws (failed_step verify) unless the kept copy at Path has the sha256 the ledger records
    for ReleaseId and is a PE executable for HostArch. Returns the Get-PeMachine result.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$ReleaseId,
        [Parameter(Mandatory = $true)][string]$Digest,
        [Parameter(Mandatory = $true)][string]$HostArch,
        [Parameter(Mandatory = $true)][string]$LedgerPath,
        [Parameter(Mandatory = $true)][string]$What
    )
    $actual = Get-FileSha256 -Path $Path
    if ($actual -ne $Digest) {
        throw (New-SwapError -FailedStep 'verify' -Message ("$($What): the kept copy $Path has sha256 $actual, but " +
                "the ledger $LedgerPath records $Digest for release $($ReleaseId): the copy was changed or " +
                "replaced. Nothing was changed. Deploy that version again with operation=swap, or pick another " +
                "release."))
    }
    Assert-StagedBinary -Path $Path -Digest $Digest -HostArch $HostArch -What "the kept copy $Path" `
        -Outcome 'nothing was changed'
}

Function Get-SwapReleaseInfo {
    <#
    .SYNOPSIS
    What operation=query returns, read-only: the live release, the previous good one, every
    release of the ledger with its kept copy, the lock holder and problems that need a human.
    .DESCRIPTION
    A missing exe directory is not an error: nothing is deployed there (no releases). Copies
    whose release the ledger does not know are listed with state 'unknown'. When Service is
    given, a missing or disabled service is reported in problems.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][AllowEmptyString()][string]$Path,
        [AllowNull()][AllowEmptyString()][string]$Service,
        [scriptblock]$GetServiceInfo = { param ($Name) Get-SwapServiceInfo -Name $Name }
    )
    if (-not $Path -or -not [System.IO.Path]::IsPathRooted($Path) -or -not [System.IO.Path]::GetFileName($Path)) {
        throw (New-SwapError -Message ("checking the path option: '$Path' is not the absolute path of a file. Give " +
                "the full path of the service's exe, for example C:\hotswap\myapp\myapp.exe."))
    }
    if ([System.IO.Directory]::Exists($Path)) {
        throw (New-SwapError -Message "checking the path option: $Path is a directory. Give the path of the exe itself.")
    }
    $paths = Get-SwapPaths -Path $Path -StagingDir $null
    $info = [ordered]@{
        changed = $false
        current = $null
        previous_good = $null
        releases = @()
        ledger_path = $paths.Ledger
        live_sha256 = $null
        lock = $null
        problems = @()
    }
    if ($Service) {
        $svc = & $GetServiceInfo $Service
        if ($null -eq $svc) {
            $info.problems += ("there is no Windows service named '$Service' (Get-Service): install and register " +
                "it, or fix the service name")
        }
        elseif ([string](Get-PropertyValue -InputObject $svc -Name 'StartMode') -eq 'Disabled') {
            $info.problems += ("the service '$Service' is disabled, so it could not be started on the release " +
                "rolled back to: set its start type to Automatic or Manual (Set-Service -StartupType)")
        }
    }
    if (-not [System.IO.Directory]::Exists($paths.Directory)) {
        return $info
    }
    $ledger = Read-SwapLedger -Path $paths.Ledger
    $info.lock = Read-SwapLock -Path $paths.Lock
    $liveExists = [System.IO.File]::Exists($Path)
    if ($liveExists) {
        $info.live_sha256 = Get-FileSha256 -Path $Path
    }
    $copies = @(Get-BinaryCopy -Path $Path)
    if (-not $liveExists -and $copies.Count -gt 0) {
        $info.problems += ("$Path does not exist but old copies do ($((@($copies | ForEach-Object { $_.Name })) -join ', ')), " +
            "so an earlier swap may have been interrupted: rename the right copy back to $Path (the ledger " +
            "$($paths.Ledger) says which release was active)")
    }
    $current = Find-SwapLedgerRelease -Ledger $ledger -Digest $info.live_sha256
    $info.current = $current
    $kept = @($copies | ForEach-Object { [string]$_.ReleaseId } | Select-Object -Unique)
    $info.previous_good = Select-PreviousGoodRelease -Ledger $ledger -CurrentReleaseId $current -Present $kept

    $releases = $ledger['releases']
    $order = @{}
    $i = 0
    foreach ($id in @($releases.Keys)) {
        $order[[string]$id] = $i
        $i++
    }
    $sorted = @(@($releases.Keys) | Sort-Object -Property @(
            @{ Expression = { [string]$releases[$_]['staged_at'] } },
            @{ Expression = { $order[[string]$_] } }
        ))
    $items = New-Object -TypeName System.Collections.ArrayList
    foreach ($id in $sorted) {
        $entry = $releases[$id]
        $item = [ordered]@{}
        foreach ($field in @('release_id', 'version', 'sha256', 'binary', 'state', 'staged_at', 'activated_at',
                'activated_by', 'retired_at', 'failed_at')) {
            $item[$field] = $entry[$field]
        }
        $item['release_id'] = [string]$id
        $copy = Select-KeptCopy -Copies $copies -ReleaseId ([string]$id)
        $item['path'] = $null
        $item['present'] = $false
        if ($current -and [string]$id -ceq $current) {
            $item['path'] = $Path
            $item['present'] = $true
        }
        elseif ($null -ne $copy) {
            $item['path'] = $copy.Path
            $item['present'] = $true
        }
        $null = $items.Add($item)
    }
    foreach ($id in $kept) {
        if (-not $releases.Contains($id)) {
            $copy = Select-KeptCopy -Copies $copies -ReleaseId $id
            $null = $items.Add([ordered]@{
                    release_id = $id; version = $null; sha256 = $null; binary = $null; state = 'unknown'
                    staged_at = $null; activated_at = $null; activated_by = $null; retired_at = $null; failed_at = $null
                    path = $copy.Path; present = $true
                })
        }
    }
    $info.releases = $items.ToArray()
    $info
}

# ---------------------------------------------------------------------------------------------
# staging, restore and the swap

Function Save-StagedBinary {
    <#
    .SYNOPSIS
    Puts the new binary at Destination (<exe>.new): a copy of Src (a path on the host) or a
    download of Url. A leftover Destination from an earlier attempt is replaced.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Destination,
        [AllowNull()][AllowEmptyString()][string]$Src,
        [AllowNull()][AllowEmptyString()][string]$Url,
        [bool]$ValidateCerts = $true,
        [scriptblock]$Downloader = {
            param ($Url, $OutFile, $ValidateCerts)
            Save-UrlToFile -Url $Url -OutFile $OutFile -ValidateCerts $ValidateCerts
        }
    )
    if ([System.IO.File]::Exists($Destination)) {
        [System.IO.File]::Delete($Destination)
    }
    if ($Src) {
        [System.IO.File]::Copy($Src, $Destination, $false)
    }
    else {
        $null = & $Downloader $Url $Destination $ValidateCerts
    }
    if (-not [System.IO.File]::Exists($Destination)) {
        throw "nothing was written to $Destination"
    }
}

Function Remove-FileQuietly {
    [CmdletBinding()]
    param (
        [AllowNull()][AllowEmptyString()][string]$Path
    )
    if ($Path -and [System.IO.File]::Exists($Path)) {
        try {
            [System.IO.File]::Delete($Path)
        }
        catch {
            $null = $_   # best effort
        }
    }
}

Function Restore-Binary {
    <#
    .SYNOPSIS
    Undoes a swap that failed after the live exe was renamed: stops the service, renames the (bad)
    live exe to FailedPath (made unique), renames BackupPath back to Path and, with -Start, starts
    the service again.
    .OUTPUTS
    Ordered dictionary: restored (old binary back at Path), started, failed_path, problems (strings),
    warnings (strings).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [AllowNull()][AllowEmptyString()][string]$BackupPath,
        [Parameter(Mandatory = $true)][string]$FailedPath,
        [Parameter(Mandatory = $true)][string]$Service,
        [bool]$Start = $true,
        [int]$StopTimeout = 60,
        [int]$StartTimeout = 60,
        [AllowNull()][AllowEmptyCollection()][string[]]$Dependents = @(),
        [scriptblock]$StopService = {
            param ($Name, $TimeoutSeconds)
            Stop-ServiceAndWait -Name $Name -TimeoutSeconds $TimeoutSeconds
        },
        [scriptblock]$StartService = {
            param ($Name, $TimeoutSeconds, $Dependents)
            Start-ServiceAndWait -Name $Name -TimeoutSeconds $TimeoutSeconds -Dependents $Dependents
        }
    )
    $outcome = [ordered]@{
        restored = $false
        started = $false
        failed_path = $null
        problems = @()
        warnings = @()
    }
    try {
        $null = & $StopService $Service $StopTimeout
    }
    catch {
        # Renaming works on a running exe, so go on; starting below tells whether it recovered.
        $outcome.problems += "stopping the service again failed: $(Get-ErrorText $_)"
    }
    if ([System.IO.File]::Exists($Path)) {
        $target = Get-UniquePath -Path $FailedPath
        try {
            [System.IO.File]::Move($Path, $target)
            $outcome.failed_path = $target
        }
        catch {
            $outcome.problems += "renaming $Path to $target failed: $(Get-ErrorText $_)"
            return $outcome
        }
    }
    if ($BackupPath) {
        try {
            [System.IO.File]::Move($BackupPath, $Path)
            $outcome.restored = $true
        }
        catch {
            $outcome.problems += "renaming $BackupPath back to $Path failed: $(Get-ErrorText $_)"
            return $outcome
        }
    }
    if ($Start -and $outcome.restored) {
        try {
            $outcome.warnings += @(& $StartService $Service $StartTimeout $Dependents | Where-Object { $_ })
            $outcome.started = $true
        }
        catch {
            $outcome.problems += "starting the service with the old binary failed: $(Get-ErrorText $_)"
        }
    }
    $outcome
}

Function Invoke-BinarySwap {
    <#
    .SYNOPSIS
    What the win_binary_swap module does; see its documentation. Returns the module result as an
    ordered dictionary; on a handled failure it has failed=$true and msg (and failed_step/reason).
    Unexpected errors (bugs) are thrown.
    .DESCRIPTION
    Operation: swap (install src or url), rollback (rename the kept copy <exe>.old-<ReleaseId>
    back into place; the digest comes from the ledger) or query (Get-SwapReleaseInfo, read-only).
    The service, health and download operations are scriptblocks (called with positional
    arguments) so tests can run everything on plain files:
      GetServiceInfo  ($Name)                              -> $null or object with Status, StartMode, BinaryPath
      StopService     ($Name, $TimeoutSeconds)              -> names of stopped dependents (optional)
      StartService    ($Name, $TimeoutSeconds, $Dependents) -> warnings (optional); throws when not Running
      HealthRequest   ($Url, $ValidateCerts, $TimeoutSeconds) -> @{StatusCode; Body}
      Downloader      ($Url, $OutFile, $ValidateCerts)
      Sleep           ($Seconds)
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [AllowNull()][AllowEmptyString()][string]$Src,
        [AllowNull()][AllowEmptyString()][string]$Url,
        [AllowNull()][AllowEmptyString()][string]$Checksum,
        [AllowNull()][AllowEmptyString()][string]$Service,
        [AllowNull()][AllowEmptyString()][string]$ReleaseId,
        [AllowNull()][AllowEmptyString()][string]$Version,
        [AllowNull()][AllowEmptyString()][string]$StagingDir,
        [int]$Keep = 3,
        [int]$StopTimeout = 60,
        [int]$StartTimeout = 60,
        [AllowNull()][AllowEmptyString()][string]$HealthUrl,
        [AllowNull()][AllowEmptyString()][string]$ExpectedVersion,
        [int]$HealthRetries = 20,
        [int]$HealthInterval = 1,
        [bool]$ValidateCerts = $true,
        [switch]$CheckMode,
        [ValidateSet('swap', 'rollback', 'query')][string]$Operation = 'swap',
        [ValidateSet('retired', 'failed')][string]$PreviousState = 'retired',
        [string]$ActivatedBy = 'ansible',
        [AllowNull()][AllowEmptyString()][string]$HostArch,
        [AllowNull()][AllowEmptyCollection()][string[]]$MountPoints = $null,
        [scriptblock]$GetServiceInfo = { param ($Name) Get-SwapServiceInfo -Name $Name },
        [scriptblock]$StopService = {
            param ($Name, $TimeoutSeconds)
            Stop-ServiceAndWait -Name $Name -TimeoutSeconds $TimeoutSeconds
        },
        [scriptblock]$StartService = {
            param ($Name, $TimeoutSeconds, $Dependents)
            Start-ServiceAndWait -Name $Name -TimeoutSeconds $TimeoutSeconds -Dependents $Dependents
        },
        [scriptblock]$HealthRequest = {
            param ($Url, $ValidateCerts, $TimeoutSeconds)
            Invoke-HealthRequest -Url $Url -ValidateCerts $ValidateCerts -TimeoutSeconds $TimeoutSeconds
        },
        [scriptblock]$Downloader = {
            param ($Url, $OutFile, $ValidateCerts)
            Save-UrlToFile -Url $Url -OutFile $OutFile -ValidateCerts $ValidateCerts
        },
        [scriptblock]$Sleep = { param ($Seconds) Start-Sleep -Seconds $Seconds }
    )
    if ($Operation -eq 'query') {
        try {
            if ($Src -or $Url -or $Checksum) {
                throw (New-SwapError -Message ("querying $($Path): src, url and checksum are not used by " +
                        "operation=query, which only reads the ledger and the kept copies. Leave them out."))
            }
            return (Get-SwapReleaseInfo -Path $Path -Service $Service -GetServiceInfo $GetServiceInfo)
        }
        catch {
            $detail = Get-SwapErrorDetail -Exception $_.Exception
            if ($null -eq $detail) {
                throw
            }
            return [ordered]@{ changed = $false; failed = $true; msg = $detail.Message }
        }
    }
    $result = [ordered]@{
        changed = $false
        swapped = $false
        previous_release = $null
        current_release = $null
        release_id = $ReleaseId
        sha256 = $null
        backup_path = $null
        staged_path = $null
        health = 'skipped'
        host_arch = $null
        warnings = @()
    }
    $options = @{
        Path = $Path; Src = $Src; Url = $Url; Checksum = $Checksum; Service = $Service; ReleaseId = $ReleaseId
        Version = $Version; StagingDir = $StagingDir; Keep = $Keep; StopTimeout = $StopTimeout
        StartTimeout = $StartTimeout; HealthUrl = $HealthUrl; ExpectedVersion = $ExpectedVersion
        HealthRetries = $HealthRetries; HealthInterval = $HealthInterval; ValidateCerts = $ValidateCerts
        CheckMode = [bool]$CheckMode; Operation = $Operation; PreviousState = $PreviousState; ActivatedBy = $ActivatedBy; HostArch = $HostArch; MountPoints = $MountPoints
        GetServiceInfo = $GetServiceInfo; StopService = $StopService; StartService = $StartService
        HealthRequest = $HealthRequest; Downloader = $Downloader; Sleep = $Sleep
    }
    try {
        Invoke-SwapSteps -Result $result -Options $options
    }
    catch {
        $detail = Get-SwapErrorDetail -Exception $_.Exception
        if ($null -eq $detail) {
            throw
        }
        $result['failed'] = $true
        $result['msg'] = $detail.Message
        if ($detail.FailedStep) {
            $result['failed_step'] = $detail.FailedStep
        }
        if ($detail.Reason) {
            $result['reason'] = $detail.Reason
        }
    }
    $result
}

Function Invoke-SwapSteps {
    <#
    .SYNOPSIS
    The body of Invoke-BinarySwap: fills Result and throws New-SwapError on a handled failure.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result,
        [Parameter(Mandatory = $true)][hashtable]$Options
    )
    $o = $Options
    $checkMode = [bool]$o.CheckMode
    $path = [string]$o.Path
    $rid = [string]$o.ReleaseId
    $service = [string]$o.Service
    $rollback = ($o.Operation -eq 'rollback')
    $what = "swapping $path to release $rid"
    if ($rollback) {
        $what = "rolling $path back to release $rid"
    }

    # -- validate everything; nothing is changed before this section is through ------------------
    Assert-ReleaseId -ReleaseId $rid
    if (-not $service) {
        throw (New-SwapError -Message ("$($what): the service option is empty. Give the name of the Windows service " +
                "that runs $path."))
    }
    if ($rollback -and ($o.Src -or $o.Url)) {
        throw (New-SwapError -Message ("$($what): src and url are not used by operation=rollback, which puts back " +
                "the copy $path.old-$rid kept by an earlier swap. Leave them out, or use operation=swap to install " +
                "a binary from src or url."))
    }
    $sha = $null
    if (-not $rollback -or $o.Checksum) {
        # A rollback takes the digest from the ledger; a checksum given with it must agree (below).
        $sha = ConvertFrom-Checksum -Checksum $o.Checksum
    }
    $Result.sha256 = $sha
    if (-not $path -or -not [System.IO.Path]::IsPathRooted($path) -or -not [System.IO.Path]::GetFileName($path)) {
        throw (New-SwapError -Message ("checking the path option: '$path' is not the absolute path of a file. Give " +
                "the full path of the service's exe, for example C:\hotswap\myapp\myapp.exe."))
    }
    $paths = Get-SwapPaths -Path $path -StagingDir $o.StagingDir
    if (-not [System.IO.Directory]::Exists($paths.Directory)) {
        throw (New-SwapError -Message ("checking the path option: the directory $($paths.Directory) does not exist. " +
                "Install the service first (its exe directory must exist), or fix path."))
    }
    if ([System.IO.Directory]::Exists($path)) {
        throw (New-SwapError -Message "checking the path option: $path is a directory. Give the path of the exe itself.")
    }
    if ($o.Src -and $o.Url) {
        throw (New-SwapError -Message ("$($what): src and url are mutually exclusive. Give src to copy the binary, or " +
                "url for the host to download it."))
    }
    if ($o.Url) {
        Assert-HttpUrl -Url $o.Url -Option 'url' -Fix 'Serve the artifact over HTTP(S), or push it from the controller with src.'
    }
    if ($o.HealthUrl) {
        Assert-HttpUrl -Url $o.HealthUrl -Option 'health_url' -Fix 'Give the http(s) URL of the service health endpoint.'
    }
    elseif ($o.ExpectedVersion) {
        throw (New-SwapError -Message ("checking expected_version: it needs health_url (the version is read from " +
                "the health answer). Give health_url or drop expected_version."))
    }
    foreach ($check in @(@('keep', $o.Keep, 1), @('stop_timeout', $o.StopTimeout, 1), @('start_timeout', $o.StartTimeout, 1),
            @('health_retries', $o.HealthRetries, 0), @('health_interval', $o.HealthInterval, 0))) {
        if ([int]$check[1] -lt [int]$check[2]) {
            throw (New-SwapError -Message ("checking the $($check[0]) option: it must be an integer >= $($check[2]), " +
                    "not $($check[1]). Fix the option."))
        }
    }
    if (-not [System.IO.Directory]::Exists($paths.StagingDir)) {
        throw (New-SwapError -Message ("checking staging_dir: $($paths.StagingDir) does not exist. Create it first " +
                "(on the volume of $path), or leave staging_dir out to stage next to the exe."))
    }
    if (-not (Test-SameVolume -Path $paths.StagingDir -OtherPath $paths.Directory -MountPoints $o.MountPoints)) {
        throw (New-SwapError -Message ("checking staging_dir: $($paths.StagingDir) is on another volume than " +
                "$($paths.Directory), and Windows renames files only within a volume. Choose a staging_dir on the " +
                "same volume, or leave it out to stage next to the exe."))
    }
    if ($o.Src) {
        if (-not [System.IO.File]::Exists($o.Src)) {
            throw (New-SwapError -Message ("$($what): src $($o.Src) does not exist on the host. With remote_src=true " +
                    "src must be a file on the Windows host; to push a file from the controller, set remote_src=false."))
        }
    }
    $info = & $o.GetServiceInfo $service
    if ($null -eq $info) {
        throw (New-SwapError -Message ("$($what): there is no Windows service named '$service' (Get-Service). Install " +
                "and register the service first, or fix the service option (the service name, not its display name)."))
    }
    $startMode = [string](Get-PropertyValue -InputObject $info -Name 'StartMode')
    $binaryPath = [string](Get-PropertyValue -InputObject $info -Name 'BinaryPath')
    if ($startMode -eq 'Disabled') {
        throw (New-SwapError -Message ("$($what): the service '$service' is disabled, so it could not be started " +
                "after the swap. Set its start type to Automatic or Manual (Set-Service -StartupType) first."))
    }
    if ($binaryPath -and -not (Test-ServiceRunsPath -BinaryPath $binaryPath -Path $path)) {
        $Result.warnings += ("the service '$service' runs $binaryPath, not $path; the swap replaces $path " +
            "and restarts the service, which only helps if the service starts that file.")
    }
    $hostArch = [string]$o.HostArch
    if (-not $hostArch) {
        $hostArch = Get-HostArchitecture
    }
    $Result.host_arch = $hostArch

    $ledger = Read-SwapLedger -Path $paths.Ledger
    $entry = $null
    if ($ledger['releases'].Contains($rid)) {
        $entry = $ledger['releases'][$rid]
    }
    if ($null -ne $entry -and $entry['sha256'] -and $entry['sha256'] -ne $sha) {
        throw (New-SwapError -Message ("$($what): the ledger $($paths.Ledger) already has release $rid with sha256 " +
                "$($entry['sha256']), not $sha. Release ids must be derived from the artifact (version + sha256); " +
                "use a new release_id for a different binary."))
    }

    $liveExists = [System.IO.File]::Exists($path)
    $liveSha = $null
    if ($liveExists) {
        try {
            $liveSha = Get-FileSha256 -Path $path
        }
        catch {
            throw (New-SwapError -Message ("$($what): cannot read the live exe $path ($(Get-ErrorText $_)). Check " +
                    "that the account Ansible connects as may read it."))
        }
    }
    $copies = @(Get-BinaryCopy -Path $path)
    if (-not $liveExists -and $copies.Count -gt 0) {
        throw (New-SwapError -Message ("$($what): $path does not exist but old copies do ($((@($copies | ForEach-Object { $_.Name })) -join ', ')), " +
                "so an earlier swap may have been interrupted. Rename the right copy back to $path (the ledger " +
                "$($paths.Ledger) says which release was active) and rerun."))
    }
    $keptCopy = $null
    if ($rollback) {
        $target = Resolve-RollbackTarget -Ledger $ledger -Copies $copies -ReleaseId $rid -Digest $sha `
            -LedgerPath $paths.Ledger -Path $path -What $what
        $sha = $target.Digest
        $keptCopy = $target.Copy
        $Result.sha256 = $sha
        if ($null -ne $keptCopy) {
            $Result.staged_path = $keptCopy.Path
        }
    }
    $previous = Find-SwapLedgerRelease -Ledger $ledger -Digest $liveSha
    $Result.previous_release = $previous

    # -- already live: nothing to swap (verify-only probe or a rerun) ----------------------------------
    if ($liveSha -eq $sha) {
        $Result.previous_release = $rid
        $Result.current_release = $rid
        $needsRecord = (Add-SwapLedgerStaged -Ledger $ledger -ReleaseId $rid -Version $o.Version -Digest $sha `
                -Binary $paths.Name)
        $needsRecord = (Test-SwapLedgerNeedsActivation -Ledger $ledger -ReleaseId $rid) -or $needsRecord
        if ($checkMode) {
            $Result['would_swap'] = $false
            $Result['steps'] = @()
            if ($needsRecord) {
                $Result['steps'] = @("record release $rid as active in $($paths.Ledger) ($path has its sha256 already)")
            }
        }
        if ($needsRecord) {
            $Result.changed = $true
            if (-not $checkMode) {
                $owner = "hotswap.deploy.win_binary_swap release $rid (pid $PID)"
                Enter-SwapLock -Path $paths.Lock -Owner $owner -What $what
                try {
                    $ledger = Read-SwapLedger -Path $paths.Ledger
                    $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId $rid -Version $o.Version -Digest $sha `
                        -Binary $paths.Name
                    if (Test-SwapLedgerNeedsActivation -Ledger $ledger -ReleaseId $rid) {
                        $others = @(Get-SwapLedgerActive -Ledger $ledger | Where-Object { $_ -cne $rid })
                        $from = $null
                        if ($others.Count -gt 0) {
                            $from = $others[0]
                        }
                        Add-SwapLedgerActivation -Ledger $ledger -ReleaseId $rid -PreviousReleaseId $from -By $o.ActivatedBy
                    }
                    Write-SwapLedger -Path $paths.Ledger -Ledger $ledger
                }
                finally {
                    Exit-SwapLock -Path $paths.Lock -Owner $owner
                }
            }
        }
        return
    }

    if ($rollback -and $null -eq $keptCopy) {
        # Resolve-RollbackTarget allows a missing copy only when the target is live already.
        $there = 'none'
        if ($copies.Count -gt 0) {
            $there = (@($copies | ForEach-Object { $_.Name })) -join ', '
        }
        throw (New-SwapError -Message ("$($what): there is no kept copy of release $rid ($path.old-$rid) beside " +
                "$path (copies there: $there). Pick a release that has one (operation=query lists them), or " +
                "deploy it again with operation=swap. Nothing was changed."))
    }
    if (-not $rollback -and -not $o.Src -and -not $o.Url) {
        $Result.current_release = $previous
        $state = "$path does not exist"
        if ($liveExists) {
            $state = "$path has sha256 $liveSha, not $sha"
        }
        throw (New-SwapError -Reason 'not_staged' -Message ("$($what): $state, and neither src nor url was given. " +
                "Give src (a file on the controller) or url (for the host to download)."))
    }

    $backupId = $previous
    if ($liveExists -and -not $backupId) {
        $backupId = $script:UnknownPrefix + $liveSha.Substring(0, 12)
        $Result.warnings += ("the live binary $path (sha256 $liveSha) is not in the ledger; it is kept as " +
            "$(Get-CopyPath -Path $path -Kind old -ReleaseId $backupId), which is never pruned automatically.")
    }
    $backupPath = $null
    if ($liveExists) {
        $backupPath = Get-UniquePath -Path (Get-CopyPath -Path $path -Kind old -ReleaseId $backupId)
    }
    $Result.backup_path = $backupPath
    # The file renamed into place: <exe>.new for a swap, the kept copy itself for a rollback.
    $swapPaths = $paths
    $source = "the download of $(Hide-UrlCredential -Url $o.Url)"
    if ($o.Src) {
        $source = "src $($o.Src)"
    }
    if ($rollback) {
        $swapPaths = $paths.PSObject.Copy()
        $swapPaths.Staged = $keptCopy.Path
        $source = "the kept copy $($keptCopy.Path)"
    }
    $Result.staged_path = $swapPaths.Staged

    # -- check mode: say what would happen ---------------------------------------------------------
    if ($checkMode) {
        # A run that changes something takes the lock; say now that it would be refused.
        Assert-SwapLockFree -Path $paths.Lock -What $what
        if ($rollback) {
            $null = Assert-KeptCopy -Path $keptCopy.Path -ReleaseId $rid -Digest $sha -HostArch $hostArch `
                -LedgerPath $paths.Ledger -What $what
        }
        elseif ($o.Src) {
            $null = Assert-StagedBinary -Path $o.Src -Digest $sha -HostArch $hostArch -What $source
        }
        $steps = New-Object -TypeName System.Collections.ArrayList
        if ($rollback) {
            $null = $steps.Add("verify that $($keptCopy.Path) has sha256 $sha (the ledger's) and the PE machine ($hostArch)")
        }
        else {
            if ($o.Src) {
                $null = $steps.Add("copy $($o.Src) to $($paths.Staged)")
            }
            else {
                $null = $steps.Add("download $(Hide-UrlCredential -Url $o.Url) to $($paths.Staged) (not contacted in check mode)")
            }
            $null = $steps.Add("verify sha256 $sha and the PE machine ($hostArch)")
        }
        $null = $steps.Add("stop service '$service' (wait up to $($o.StopTimeout) s)")
        if ($backupPath) {
            $null = $steps.Add("rename $path to $backupPath")
        }
        $null = $steps.Add("rename $($swapPaths.Staged) to $path")
        $null = $steps.Add("start service '$service' (wait up to $($o.StartTimeout) s for Running)")
        if ($o.HealthUrl) {
            $null = $steps.Add("probe $(Hide-UrlCredential -Url $o.HealthUrl) (up to $([int]$o.HealthRetries + 1) attempts, $($o.HealthInterval) s apart)")
        }
        $null = $steps.Add("record release $rid as active in $($paths.Ledger)")
        if ($previous -and $previous -cne $rid -and $o.PreviousState -eq 'failed') {
            $null = $steps.Add("mark release $previous failed in the ledger")
        }
        if ($rollback) {
            $Result.changed = $true
            $Result.current_release = $rid
            $Result['would_swap'] = $true
            $Result['steps'] = $steps.ToArray()
            return
        }
        $simulated = New-SwapLedger
        foreach ($id in @($ledger['releases'].Keys)) {
            $simulated['releases'][$id] = $ledger['releases'][$id]
        }
        $null = Add-SwapLedgerStaged -Ledger $simulated -ReleaseId $rid -Version $o.Version -Digest $sha -Binary $paths.Name
        $withBackup = @($copies)
        if ($backupPath -and $previous) {
            $withBackup += [PSCustomObject]@{ Path = $backupPath; Name = [System.IO.Path]::GetFileName($backupPath)
                Kind = 'old'; ReleaseId = $previous; Sequence = 1
            }
        }
        $prune = @(Select-OldCopiesToPrune -Copies $withBackup -Ledger $simulated -Keep $o.Keep -Protect @($backupPath))
        if ($prune.Count -gt 0) {
            $null = $steps.Add("remove old copies beyond keep=$($o.Keep): $((@($prune | ForEach-Object { $_.Name })) -join ', ')")
        }
        $Result.changed = $true
        $Result.current_release = $rid
        $Result['would_swap'] = $true
        $Result['steps'] = $steps.ToArray()
        return
    }

    # -- the swap -------------------------------------------------------------------------------------
    $owner = "hotswap.deploy.win_binary_swap release $rid (pid $PID)"
    Enter-SwapLock -Path $paths.Lock -Owner $owner -What $what
    try {
        if ($rollback) {
            # Checked again under the lock: the copy is renamed into place as it is, nothing is staged.
            try {
                $null = Assert-KeptCopy -Path $keptCopy.Path -ReleaseId $rid -Digest $sha -HostArch $hostArch `
                    -LedgerPath $paths.Ledger -What $what
            }
            catch {
                if ($null -ne (Get-SwapErrorDetail -Exception $_.Exception)) {
                    throw
                }
                throw (New-SwapError -FailedStep 'verify' -Message ("$($what): verifying $($keptCopy.Path) failed: " +
                        "$(Get-ErrorText $_). Nothing was changed."))
            }
            Invoke-SwapUnderService -Result $Result -Options $o -Paths $swapPaths -Ledger $ledger -Info $info `
                -BackupPath $backupPath -Previous $previous -What $what
            # No pruning: a rollback removes nothing (the release rolled back from is kept as a copy).
            $Result['pruned'] = @()
            return
        }
        try {
            Save-StagedBinary -Destination $paths.Staged -Src $o.Src -Url $o.Url -ValidateCerts $o.ValidateCerts `
                -Downloader $o.Downloader
        }
        catch {
            $cause = Get-ErrorText $_
            Remove-FileQuietly -Path $paths.Staged
            $fix = 'Check free space and permissions.'
            if ($o.Url) {
                $fix = 'Check that the URL is right and reachable from the host, or push the file from the controller with src.'
            }
            throw (New-SwapError -FailedStep 'stage' -Message ("$($what): staging $source as $($paths.Staged) failed: " +
                    "$cause. $fix Nothing was changed."))
        }
        try {
            $null = Assert-StagedBinary -Path $paths.Staged -Digest $sha -HostArch $hostArch -What $source `
                -Outcome 'nothing was changed (the staged copy was removed)'
        }
        catch {
            Remove-FileQuietly -Path $paths.Staged
            if ($null -ne (Get-SwapErrorDetail -Exception $_.Exception)) {
                throw
            }
            throw (New-SwapError -FailedStep 'verify' -Message ("$($what): verifying $($paths.Staged) failed: " +
                    "$(Get-ErrorText $_). Nothing was changed (the staged copy was removed)."))
        }
        $Result.changed = $true   # the verified <exe>.new is on disk from here on
        if (Add-SwapLedgerStaged -Ledger $ledger -ReleaseId $rid -Version $o.Version -Digest $sha -Binary $paths.Name) {
            Write-SwapLedger -Path $paths.Ledger -Ledger $ledger
        }

        Invoke-SwapUnderService -Result $Result -Options $o -Paths $paths -Ledger $ledger -Info $info `
            -BackupPath $backupPath -Previous $previous -What $what

        # -- prune old copies (the swap succeeded; problems here are warnings) ------------------------
        $pruned = @()
        try {
            $copies = @(Get-BinaryCopy -Path $path)
            $doomed = @(Select-OldCopiesToPrune -Copies $copies -Ledger $ledger -Keep $o.Keep -Protect @($backupPath))
            foreach ($copy in $doomed) {
                try {
                    [System.IO.File]::Delete($copy.Path)
                    $pruned += $copy.Path
                }
                catch {
                    $Result.warnings += "removing the old copy $($copy.Path) failed: $(Get-ErrorText $_); it is retried on the next swap."
                }
            }
            # A release whose last copy is gone and that is not live is dropped from the ledger,
            # as release_prune does on Linux (history is kept).
            $remaining = @(Get-BinaryCopy -Path $path | ForEach-Object { $_.ReleaseId })
            $forgot = $false
            foreach ($id in @($ledger['releases'].Keys)) {
                if ($id -cne $rid -and $remaining -cnotcontains $id -and $ledger['releases'][$id]['state'] -ne 'active') {
                    $ledger['releases'].Remove($id)
                    $forgot = $true
                }
            }
            if ($forgot) {
                Write-SwapLedger -Path $paths.Ledger -Ledger $ledger
            }
        }
        catch {
            $Result.warnings += "pruning old copies of $path failed: $(Get-ErrorText $_); the swap itself succeeded."
        }
        $Result['pruned'] = $pruned
    }
    finally {
        Exit-SwapLock -Path $paths.Lock -Owner $owner
    }
}

Function Invoke-SwapUnderService {
    <#
    .SYNOPSIS
    Stop, rename, rename, start, health; restores the old binary on any failure after the first
    rename. Fills Result; throws New-SwapError with failed_step on failure.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result,
        [Parameter(Mandatory = $true)][hashtable]$Options,
        [Parameter(Mandatory = $true)][object]$Paths,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger,
        [Parameter(Mandatory = $true)][object]$Info,
        [AllowNull()][AllowEmptyString()][string]$BackupPath,
        [AllowNull()][AllowEmptyString()][string]$Previous,
        [Parameter(Mandatory = $true)][string]$What
    )
    $o = $Options
    $path = $Paths.Path
    $rid = [string]$o.ReleaseId
    $service = [string]$o.Service
    $wasRunning = ([string](Get-PropertyValue -InputObject $Info -Name 'Status') -eq 'Running')
    $dependents = @()
    $step = 'stop'
    $renamedLive = $false
    $stopped = $false
    try {
        $dependents = @(& $o.StopService $service $o.StopTimeout | Where-Object { $_ })
        $stopped = $true
        $step = 'rename'
        if ($BackupPath) {
            [System.IO.File]::Move($path, $BackupPath)
            $renamedLive = $true
        }
        [System.IO.File]::Move($Paths.Staged, $path)
        $renamedLive = $true   # from here on the live path holds the new binary (or nothing)
        $step = 'start'
        $Result.warnings += @(& $o.StartService $service $o.StartTimeout $dependents | Where-Object { $_ })
        $step = 'health'
        if ($o.HealthUrl) {
            $probe = Invoke-HealthProbe -Url $o.HealthUrl -ExpectedVersion $o.ExpectedVersion -Retries $o.HealthRetries `
                -Interval $o.HealthInterval -ValidateCerts $o.ValidateCerts -Request $o.HealthRequest -Sleep $o.Sleep
            $Result.health = $probe.Verdict
            if ($probe.Verdict -ne 'pass') {
                throw "the health probe was $($probe.Verdict) after $($probe.Attempts) attempt(s): $($probe.Reason)"
            }
        }
    }
    catch {
        $cause = Get-ErrorText $_
        if (-not $renamedLive) {
            # Nothing was renamed: the old binary is in place; bring the service back if it ran.
            $Result.current_release = $Previous
            $state = 'left as it was'
            if ($stopped -or $step -eq 'stop') {
                $state = 'not running'
                if ($wasRunning) {
                    try {
                        $Result.warnings += @(& $o.StartService $service $o.StartTimeout $dependents | Where-Object { $_ })
                        $state = 'started again'
                        $Result.changed = $true
                    }
                    catch {
                        $state = "not started again ($(Get-ErrorText $_))"
                        $Result.changed = $true
                    }
                }
            }
            throw (New-SwapError -FailedStep $step -Message ("$($What): $step failed: $cause. Nothing was renamed: " +
                    "$path still holds the previous binary; the service '$service' is $state. The new binary stays " +
                    "at $($Paths.Staged). Fix the cause and rerun."))
        }
        $Result.changed = $true
        $restore = Restore-Binary -Path $path -BackupPath $BackupPath `
            -FailedPath (Get-CopyPath -Path $path -Kind failed -ReleaseId $rid) -Service $service -Start $true `
            -StopTimeout $o.StopTimeout -StartTimeout $o.StartTimeout -Dependents $dependents `
            -StopService $o.StopService -StartService $o.StartService
        $Result.warnings += @($restore.warnings)
        $Result['restored'] = $restore.restored
        $Result['failed_path'] = $restore.failed_path
        $null = Set-SwapLedgerState -Ledger $Ledger -ReleaseId $rid -State failed
        try {
            Write-SwapLedger -Path $Paths.Ledger -Ledger $Ledger
        }
        catch {
            $Result.warnings += "recording release $rid as failed in the ledger failed: $(Get-ErrorText $_)"
        }
        $kept = ''
        if ($restore.failed_path) {
            $kept = " The new binary was moved to $($restore.failed_path) for inspection."
        }
        if ($restore.restored) {
            $Result.current_release = $Previous
            $Result.backup_path = $null
            $running = "the service '$service' was started again with it"
            if (-not $restore.started) {
                $running = "but the service '$service' did NOT start again: $($restore.problems -join '; ') - look at it now"
            }
            $message = ("$($What): $step failed: $cause. The previous binary was restored to $path and " +
                "$running.$kept Look at the service's event log (Get-WinEvent -LogName System / Application), fix the " +
                "release and deploy it under a new release_id.")
        }
        elseif (-not $BackupPath) {
            $Result.current_release = $null
            $message = ("$($What): $step failed: $cause. There was no previous binary to restore ($path did not exist " +
                "before);$kept the service '$service' is not running. $($restore.problems -join '; ')")
        }
        else {
            $Result.current_release = $null
            $message = ("$($What): $step failed: $cause. RESTORING FAILED: $($restore.problems -join '; '). The " +
                "previous binary is at $($BackupPath): rename it to $path by hand and start the service '$service'.")
        }
        throw (New-SwapError -FailedStep $step -Message $message)
    }

    # -- success --------------------------------------------------------------------------------------
    $Result.changed = $true
    $Result.swapped = $true
    $Result.current_release = $rid
    Add-SwapLedgerActivation -Ledger $Ledger -ReleaseId $rid -PreviousReleaseId $Previous -By $o.ActivatedBy
    if ($o.PreviousState -eq 'failed' -and $Previous -and $Previous -cne $rid) {
        # As release_activate on Linux: a release left as failed is never "previous good" again.
        $null = Set-SwapLedgerState -Ledger $Ledger -ReleaseId $Previous -State failed
    }
    try {
        Write-SwapLedger -Path $Paths.Ledger -Ledger $Ledger
    }
    catch {
        throw (New-SwapError -Message ("$($What): the new binary is live and healthy, but recording it in the ledger " +
                "failed: $(Get-ErrorText $_). Rerun the task to record it (it will not swap again)."))
    }
}

Export-ModuleMember -Function @(
    'Add-SwapLedgerActivation'
    'Add-SwapLedgerStaged'
    'Assert-HttpUrl'
    'Assert-ReleaseId'
    'Assert-KeptCopy'
    'Assert-StagedBinary'
    'Assert-SwapLockFree'
    'ConvertFrom-Checksum'
    'ConvertTo-ArchitectureName'
    'Enter-SwapLock'
    'Exit-SwapLock'
    'Find-SwapLedgerRelease'
    'Get-BinaryCopy'
    'Get-FileSha256'
    'Get-HealthBodyVersion'
    'Get-HostArchitecture'
    'Get-PeMachine'
    'Get-SwapErrorDetail'
    'Get-SwapLedgerActive'
    'Get-SwapPaths'
    'Get-SwapReleaseInfo'
    'Get-SwapServiceInfo'
    'Get-UniquePath'
    'Get-UtcTimestamp'
    'Get-VolumeRoot'
    'Hide-UrlCredential'
    'Invoke-BinarySwap'
    'Invoke-HealthProbe'
    'New-SwapError'
    'New-SwapLedger'
    'Read-SwapLedger'
    'Read-SwapLock'
    'Resolve-RollbackTarget'
    'Restore-Binary'
    'Select-KeptCopy'
    'Select-OldCopiesToPrune'
    'Select-PreviousGoodRelease'
    'Set-SwapLedgerState'
    'Start-ServiceAndWait'
    'Stop-ServiceAndWait'
    'Test-PeFitsHost'
    'Test-ReleaseId'
    'Test-SameVolume'
    'Test-ServiceRunsPath'
    'Test-SwapLedgerNeedsActivation'
    'Write-SwapLedger'
)
