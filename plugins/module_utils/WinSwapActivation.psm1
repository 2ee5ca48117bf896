# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapCommon
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapHttp
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapLedger
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapPath
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapService

# Staging the new binary, the swap under the stopped service (stop, rename, rename, start,
# health) and the restore of the old binary when any of that fails.
#
# Part of the Windows binary swap of hotswap.deploy.win_binary_swap; WinBinarySwap.psm1 describes
# the swap and says which file holds what. PowerShell 5.1 compatible. Not yet run on a real
# Windows host (docs/windows.md).

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

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
        $failure = @{
            Result = $Result; Options = $o; Paths = $Paths; Ledger = $Ledger; BackupPath = $BackupPath
            Previous = $Previous; What = $What; Step = $step; Cause = (Get-ErrorText $_); Dependents = $dependents
        }
        if (-not $renamedLive) {
            Resume-SwapServiceAfterFailure -Failure $failure -Stopped $stopped -WasRunning $wasRunning   # throws
        }
        Restore-SwapAfterFailure -Failure $failure   # throws
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

Function Resume-SwapServiceAfterFailure {
    <#
    .SYNOPSIS
    After a failure before anything was renamed (the old binary is in place): starts the service
    again if it ran and was stopped, then throws New-SwapError with failed_step.
    .DESCRIPTION
    Failure (from Invoke-SwapUnderService): Result, Options, Paths, Ledger, BackupPath, Previous,
    What, Step, Cause, Dependents.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Failure,
        [bool]$Stopped,
        [bool]$WasRunning
    )
    $service = [string]$Failure.Options.Service
    $Failure.Result.current_release = $Failure.Previous
    $state = 'left as it was'
    if ($Stopped -or $Failure.Step -eq 'stop') {
        $state = 'not running'
        if ($WasRunning) {
            try {
                $Failure.Result.warnings += @(& $Failure.Options.StartService $service $Failure.Options.StartTimeout `
                        $Failure.Dependents | Where-Object { $_ })
                $state = 'started again'
                $Failure.Result.changed = $true
            }
            catch {
                $state = "not started again ($(Get-ErrorText $_))"
                $Failure.Result.changed = $true
            }
        }
    }
    throw (New-SwapError -FailedStep $Failure.Step -Message ("$($Failure.What): $($Failure.Step) failed: " +
            "$($Failure.Cause). Nothing was renamed: $($Failure.Paths.Path) still holds the previous binary; the " +
            "service '$service' is $state. The new binary stays at $($Failure.Paths.Staged). Fix the cause and rerun."))
}

Function Restore-SwapAfterFailure {
    <#
    .SYNOPSIS
    After a failure once the live exe was renamed: puts the old binary back (Restore-Binary),
    records the release as failed, then throws New-SwapError with failed_step.
    .DESCRIPTION
    Failure: as for Resume-SwapServiceAfterFailure.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Failure
    )
    $Result = $Failure.Result
    $o = $Failure.Options
    $rid = [string]$o.ReleaseId
    $Result.changed = $true
    $restore = Restore-Binary -Path $Failure.Paths.Path -BackupPath $Failure.BackupPath `
        -FailedPath (Get-CopyPath -Path $Failure.Paths.Path -Kind failed -ReleaseId $rid) -Service ([string]$o.Service) `
        -Start $true -StopTimeout $o.StopTimeout -StartTimeout $o.StartTimeout -Dependents $Failure.Dependents `
        -StopService $o.StopService -StartService $o.StartService
    $Result.warnings += @($restore.warnings)
    $Result['restored'] = $restore.restored
    $Result['failed_path'] = $restore.failed_path
    $null = Set-SwapLedgerState -Ledger $Failure.Ledger -ReleaseId $rid -State failed
    try {
        Write-SwapLedger -Path $Failure.Paths.Ledger -Ledger $Failure.Ledger
    }
    catch {
        $Result.warnings += "recording release $rid as failed in the ledger failed: $(Get-ErrorText $_)"
    }
    if ($restore.restored) {
        $Result.current_release = $Failure.Previous
        $Result.backup_path = $null
    }
    else {
        $Result.current_release = $null
    }
    throw (New-SwapError -FailedStep $Failure.Step -Message (Get-SwapRestoreMessage -Failure $Failure -Restore $restore))
}

Function Get-SwapRestoreMessage {
    <#
    .SYNOPSIS
    The message of a swap that failed after the live exe was renamed, from the Restore-Binary
    outcome (Restore): what the live exe holds now and what is left to do.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Failure,
        [Parameter(Mandatory = $true)][object]$Restore
    )
    $path = $Failure.Paths.Path
    $service = [string]$Failure.Options.Service
    $failed = "$($Failure.What): $($Failure.Step) failed: $($Failure.Cause)."
    $kept = ''
    if ($Restore.failed_path) {
        $kept = " The new binary was moved to $($Restore.failed_path) for inspection."
    }
    if ($Restore.restored) {
        $running = "the service '$service' was started again with it"
        if (-not $Restore.started) {
            $running = "but the service '$service' did NOT start again: $($Restore.problems -join '; ') - look at it now"
        }
        return ("$failed The previous binary was restored to $path and " +
            "$running.$kept Look at the service's event log (Get-WinEvent -LogName System / Application), fix the " +
            "release and deploy it under a new release_id.")
    }
    if (-not $Failure.BackupPath) {
        return ("$failed There was no previous binary to restore ($path did not exist " +
            "before);$kept the service '$service' is not running. $($Restore.problems -join '; ')")
    }
    return ("$failed RESTORING FAILED: $($Restore.problems -join '; '). The " +
        "previous binary is at $($Failure.BackupPath): rename it to $path by hand and start the service '$service'.")
}

Export-ModuleMember -Function @(
    'Invoke-SwapUnderService'
    'Remove-FileQuietly'
    'Restore-Binary'
    'Save-StagedBinary'
)
