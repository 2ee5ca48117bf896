# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapArtifact
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapCommon
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapLedger
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapPath
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapService

# Rollback and operation=query: what the host has (the ledger, the kept copies, the lock) and
# the kept copy a rollback renames back into place.
#
# Part of the Windows binary swap of hotswap.deploy.win_binary_swap; WinBinarySwap.psm1 describes
# the swap and says which file holds what. PowerShell 5.1 compatible. Not yet run on a real
# Windows host (docs/windows.md).

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

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
        Add-SwapServiceProblem -Info $info -Service $Service -GetServiceInfo $GetServiceInfo
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

    $items = New-Object -TypeName System.Collections.ArrayList
    Add-SwapLedgerReleaseItem -Items $items -Ledger $ledger -Copies $copies -Current $current -Path $Path
    Add-SwapUnknownReleaseItem -Items $items -Ledger $ledger -Copies $copies -Kept $kept
    $info.releases = $items.ToArray()
    $info
}

Function Add-SwapServiceProblem {
    <#
    .SYNOPSIS
    Adds to Info.problems (Get-SwapReleaseInfo) why Service could not run a rolled back release:
    it does not exist or it is disabled.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Info,
        [Parameter(Mandatory = $true)][string]$Service,
        [Parameter(Mandatory = $true)][scriptblock]$GetServiceInfo
    )
    $svc = & $GetServiceInfo $Service
    if ($null -eq $svc) {
        $Info.problems += ("there is no Windows service named '$Service' (Get-Service): install and register " +
            "it, or fix the service name")
    }
    elseif ([string](Get-PropertyValue -InputObject $svc -Name 'StartMode') -eq 'Disabled') {
        $Info.problems += ("the service '$Service' is disabled, so it could not be started on the release " +
            "rolled back to: set its start type to Automatic or Manual (Set-Service -StartupType)")
    }
}

Function Add-SwapLedgerReleaseItem {
    <#
    .SYNOPSIS
    Adds to Items (Get-SwapReleaseInfo's releases) every release of the ledger, oldest staged first,
    with its fields, path (the live exe for Current, else its kept copy) and present.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][System.Collections.ArrayList]$Items,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger,
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][object[]]$Copies,
        [AllowNull()][AllowEmptyString()][string]$Current,
        [Parameter(Mandatory = $true)][string]$Path
    )
    $releases = $Ledger['releases']
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
    foreach ($id in $sorted) {
        $entry = $releases[$id]
        $item = [ordered]@{}
        foreach ($field in @('release_id', 'version', 'sha256', 'binary', 'state', 'staged_at', 'activated_at',
                'activated_by', 'retired_at', 'failed_at')) {
            $item[$field] = $entry[$field]
        }
        $item['release_id'] = [string]$id
        $copy = Select-KeptCopy -Copies $Copies -ReleaseId ([string]$id)
        $item['path'] = $null
        $item['present'] = $false
        if ($Current -and [string]$id -ceq $Current) {
            $item['path'] = $Path
            $item['present'] = $true
        }
        elseif ($null -ne $copy) {
            $item['path'] = $copy.Path
            $item['present'] = $true
        }
        $null = $Items.Add($item)
    }
}

Function Add-SwapUnknownReleaseItem {
    <#
    .SYNOPSIS
    Adds to Items (Get-SwapReleaseInfo's releases) the kept copies whose release the ledger does
    not know, with state 'unknown'.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][System.Collections.ArrayList]$Items,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Ledger,
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][object[]]$Copies,
        [AllowEmptyCollection()][string[]]$Kept = @()
    )
    $releases = $Ledger['releases']
    foreach ($id in $Kept) {
        if (-not $releases.Contains($id)) {
            $copy = Select-KeptCopy -Copies $Copies -ReleaseId $id
            $null = $Items.Add([ordered]@{
                    release_id = $id; version = $null; sha256 = $null; binary = $null; state = 'unknown'
                    staged_at = $null; activated_at = $null; activated_by = $null; retired_at = $null; failed_at = $null
                    path = $copy.Path; present = $true
                })
        }
    }
}

Export-ModuleMember -Function @(
    'Assert-KeptCopy'
    'Assert-SwapLockFree'
    'Get-SwapReleaseInfo'
    'Resolve-RollbackTarget'
    'Select-KeptCopy'
    'Select-PreviousGoodRelease'
)
