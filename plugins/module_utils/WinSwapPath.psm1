# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapCommon

# The paths of a swap (<exe>.new, .hotswap\ledger.json, .hotswap\lock), the names of the kept
# copies (<exe>.old-<id>, <exe>.failed-<id>) and the volume checks a rename needs.
#
# Part of the Windows binary swap of hotswap.deploy.win_binary_swap; WinBinarySwap.psm1 describes
# the swap and says which file holds what. PowerShell 5.1 compatible. Not yet run on a real
# Windows host (docs/windows.md).

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$script:StateDirName = '.hotswap'
$script:LedgerFileName = 'ledger.json'
$script:LockFileName = 'lock'
$script:CopySuffixSeparator = '~'   # not allowed in release ids, so '<id>~2' is unambiguous

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

Export-ModuleMember -Function @(
    'Get-BinaryCopy'
    'Get-CopyPath'
    'Get-SwapPaths'
    'Get-UniquePath'
    'Get-VolumeRoot'
    'Test-SameVolume'
)
