# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapActivation
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapArtifact
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapCommon
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapHttp
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapLedger
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapPath
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapRollback
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapService

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
#
# The module util is split by what the functions deal with; each file names the others it calls
# in #AnsibleRequires (Ansible loads them all; the Pester tests import them all):
#
#   WinBinarySwap.psm1      Invoke-BinarySwap (what the module calls) and the steps of a swap,
#                           a rollback and a query
#   WinSwapCommon.psm1      errors (New-SwapError), small helpers, checks of release_id, checksum, URLs
#   WinSwapArtifact.psm1    sha256, PE header, host architecture
#   WinSwapPath.psm1        the paths of a swap, kept copies, volumes
#   WinSwapLedger.psm1      the release ledger and the deploy lock
#   WinSwapService.psm1     the Windows service operations
#   WinSwapHttp.psm1        download and health probe
#   WinSwapRollback.psm1    operation=query and the kept copy a rollback goes back to
#   WinSwapActivation.psm1  staging, the swap under the stopped service, the restore
#
# Not yet run on a real Windows host (docs/windows.md).

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$script:UnknownPrefix = 'unknown-'

# ---------------------------------------------------------------------------------------------
# the swap: Invoke-BinarySwap and its steps

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
        return (Invoke-SwapQuery -Path $Path -Src $Src -Url $Url -Checksum $Checksum -Service $Service `
                -GetServiceInfo $GetServiceInfo)
    }
    $result = New-SwapResult -ReleaseId $ReleaseId
    $options = @{
        Path = $Path; Src = $Src; Url = $Url; Checksum = $Checksum; Service = $Service; ReleaseId = $ReleaseId
        Version = $Version; StagingDir = $StagingDir; Keep = $Keep; StopTimeout = $StopTimeout
        StartTimeout = $StartTimeout; HealthUrl = $HealthUrl; ExpectedVersion = $ExpectedVersion
        HealthRetries = $HealthRetries; HealthInterval = $HealthInterval; ValidateCerts = $ValidateCerts
        CheckMode = [bool]$CheckMode; Operation = $Operation; PreviousState = $PreviousState; ActivatedBy = $ActivatedBy
        HostArch = $HostArch; MountPoints = $MountPoints
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

Function Invoke-SwapQuery {
    <#
    .SYNOPSIS
    operation=query of Invoke-BinarySwap: the Get-SwapReleaseInfo result, or a failed result
    (changed, failed, msg) for a handled error.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][AllowEmptyString()][string]$Path,
        [AllowNull()][AllowEmptyString()][string]$Src,
        [AllowNull()][AllowEmptyString()][string]$Url,
        [AllowNull()][AllowEmptyString()][string]$Checksum,
        [AllowNull()][AllowEmptyString()][string]$Service,
        [scriptblock]$GetServiceInfo
    )
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

Function New-SwapResult {
    <#
    .SYNOPSIS
    The result of operation=swap or rollback before the first step (Invoke-BinarySwap).
    #>
    [CmdletBinding()]
    param (
        [AllowNull()][AllowEmptyString()][string]$ReleaseId
    )
    [ordered]@{
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
}

Function Invoke-SwapSteps {
    <#
    .SYNOPSIS
    The body of Invoke-BinarySwap: fills Result and throws New-SwapError on a handled failure.
    .DESCRIPTION
    Checks everything and reads what the host has, changing nothing; then either the release is
    live already (at most the ledger is corrected), or check mode says what would happen, or the
    swap runs under the deploy lock. The steps share one run state (New-SwapRun).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result,
        [Parameter(Mandatory = $true)][hashtable]$Options
    )
    $run = New-SwapRun -Options $Options

    # -- validate everything; nothing is changed before this section is through ------------------
    Assert-SwapRequest -Run $run -Result $Result
    Assert-SwapOption -Run $run
    Assert-SwapService -Run $run -Result $Result
    if (-not $run.HostArch) {
        $run.HostArch = Get-HostArchitecture
    }
    $Result.host_arch = $run.HostArch
    Read-SwapHostState -Run $run -Result $Result

    # -- already live: nothing to swap (verify-only probe or a rerun) ----------------------------------
    if ($run.LiveSha -eq $run.Sha) {
        Complete-SwapAlreadyLive -Run $run -Result $Result
        return
    }
    Assert-SwapBinaryAvailable -Run $run -Result $Result
    Resolve-SwapFile -Run $run -Result $Result

    # -- check mode: say what would happen ---------------------------------------------------------
    if ($run.CheckMode) {
        Complete-SwapCheckMode -Run $run -Result $Result
        return
    }

    # -- the swap -------------------------------------------------------------------------------------
    Invoke-SwapUnderLock -Run $run -Result $Result
}

Function New-SwapRun {
    <#
    .SYNOPSIS
    The state the steps of Invoke-SwapSteps share, as a hashtable: a copy of Options (and Options
    itself, for Invoke-SwapUnderService), Rollback, What (for messages), and what the steps find
    out: Sha, Paths, Info, HostArch, Ledger, LiveExists, LiveSha, Copies, KeptCopy, Previous,
    BackupPath, SwapPaths, Source.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Options
    )
    $run = @{} + $Options
    $run.Options = $Options
    $run.CheckMode = [bool]$Options.CheckMode
    $run.Path = [string]$Options.Path
    $run.ReleaseId = [string]$Options.ReleaseId
    $run.Service = [string]$Options.Service
    $run.HostArch = [string]$Options.HostArch
    $run.Rollback = ($Options.Operation -eq 'rollback')
    $run.What = "swapping $($run.Path) to release $($run.ReleaseId)"
    if ($run.Rollback) {
        $run.What = "rolling $($run.Path) back to release $($run.ReleaseId)"
    }
    foreach ($finding in @('Sha', 'Paths', 'Info', 'Ledger', 'LiveSha', 'KeptCopy', 'Previous', 'BackupPath', 'SwapPaths',
            'Source')) {
        $run[$finding] = $null
    }
    $run.LiveExists = $false
    $run.Copies = @()
    $run
}

Function Assert-SwapRequest {
    <#
    .SYNOPSIS
    The first checks of a swap or rollback: release_id, service, src/url with a rollback, the
    checksum (sets Run.Sha and Result.sha256) and path (sets Run.Paths). Throws New-SwapError.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result
    )
    Assert-ReleaseId -ReleaseId $Run.ReleaseId
    if (-not $Run.Service) {
        throw (New-SwapError -Message ("$($Run.What): the service option is empty. Give the name of the Windows " +
                "service that runs $($Run.Path)."))
    }
    if ($Run.Rollback -and ($Run.Src -or $Run.Url)) {
        throw (New-SwapError -Message ("$($Run.What): src and url are not used by operation=rollback, which puts " +
                "back the copy $($Run.Path).old-$($Run.ReleaseId) kept by an earlier swap. Leave them out, or use " +
                "operation=swap to install a binary from src or url."))
    }
    if (-not $Run.Rollback -or $Run.Checksum) {
        # A rollback takes the digest from the ledger; a checksum given with it must agree (below).
        $Run.Sha = ConvertFrom-Checksum -Checksum $Run.Checksum
    }
    $Result.sha256 = $Run.Sha
    $path = $Run.Path
    if (-not $path -or -not [System.IO.Path]::IsPathRooted($path) -or -not [System.IO.Path]::GetFileName($path)) {
        throw (New-SwapError -Message ("checking the path option: '$path' is not the absolute path of a file. Give " +
                "the full path of the service's exe, for example C:\hotswap\myapp\myapp.exe."))
    }
    $Run.Paths = Get-SwapPaths -Path $path -StagingDir $Run.StagingDir
    if (-not [System.IO.Directory]::Exists($Run.Paths.Directory)) {
        throw (New-SwapError -Message ("checking the path option: the directory $($Run.Paths.Directory) does not " +
                "exist. Install the service first (its exe directory must exist), or fix path."))
    }
    if ([System.IO.Directory]::Exists($path)) {
        throw (New-SwapError -Message "checking the path option: $path is a directory. Give the path of the exe itself.")
    }
}

Function Assert-SwapOption {
    <#
    .SYNOPSIS
    The checks of the other options of a swap or rollback: src and url, the URLs, the integer
    options, staging_dir (exists, on the volume of path) and src on the host. Throws New-SwapError.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run
    )
    if ($Run.Src -and $Run.Url) {
        throw (New-SwapError -Message ("$($Run.What): src and url are mutually exclusive. Give src to copy the " +
                "binary, or url for the host to download it."))
    }
    if ($Run.Url) {
        Assert-HttpUrl -Url $Run.Url -Option 'url' -Fix 'Serve the artifact over HTTP(S), or push it from the controller with src.'
    }
    if ($Run.HealthUrl) {
        Assert-HttpUrl -Url $Run.HealthUrl -Option 'health_url' -Fix 'Give the http(s) URL of the service health endpoint.'
    }
    elseif ($Run.ExpectedVersion) {
        throw (New-SwapError -Message ("checking expected_version: it needs health_url (the version is read from " +
                "the health answer). Give health_url or drop expected_version."))
    }
    foreach ($check in @(@('keep', $Run.Keep, 1), @('stop_timeout', $Run.StopTimeout, 1),
            @('start_timeout', $Run.StartTimeout, 1), @('health_retries', $Run.HealthRetries, 0),
            @('health_interval', $Run.HealthInterval, 0))) {
        if ([int]$check[1] -lt [int]$check[2]) {
            throw (New-SwapError -Message ("checking the $($check[0]) option: it must be an integer >= $($check[2]), " +
                    "not $($check[1]). Fix the option."))
        }
    }
    $staging = $Run.Paths.StagingDir
    if (-not [System.IO.Directory]::Exists($staging)) {
        throw (New-SwapError -Message ("checking staging_dir: $staging does not exist. Create it first " +
                "(on the volume of $($Run.Path)), or leave staging_dir out to stage next to the exe."))
    }
    if (-not (Test-SameVolume -Path $staging -OtherPath $Run.Paths.Directory -MountPoints $Run.MountPoints)) {
        throw (New-SwapError -Message ("checking staging_dir: $staging is on another volume than " +
                "$($Run.Paths.Directory), and Windows renames files only within a volume. Choose a staging_dir on the " +
                "same volume, or leave it out to stage next to the exe."))
    }
    if ($Run.Src -and -not [System.IO.File]::Exists($Run.Src)) {
        throw (New-SwapError -Message ("$($Run.What): src $($Run.Src) does not exist on the host. With " +
                "remote_src=true src must be a file on the Windows host; to push a file from the controller, set " +
                "remote_src=false."))
    }
}

Function Assert-SwapService {
    <#
    .SYNOPSIS
    Checks the service of a swap or rollback (GetServiceInfo): it exists and is not disabled; a
    warning when it runs another exe than path. Sets Run.Info. Throws New-SwapError.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result
    )
    $service = $Run.Service
    $info = & $Run.GetServiceInfo $service
    if ($null -eq $info) {
        throw (New-SwapError -Message ("$($Run.What): there is no Windows service named '$service' (Get-Service). " +
                "Install and register the service first, or fix the service option (the service name, not its " +
                "display name)."))
    }
    $Run.Info = $info
    $startMode = [string](Get-PropertyValue -InputObject $info -Name 'StartMode')
    $binaryPath = [string](Get-PropertyValue -InputObject $info -Name 'BinaryPath')
    if ($startMode -eq 'Disabled') {
        throw (New-SwapError -Message ("$($Run.What): the service '$service' is disabled, so it could not be " +
                "started after the swap. Set its start type to Automatic or Manual (Set-Service -StartupType) first."))
    }
    if ($binaryPath -and -not (Test-ServiceRunsPath -BinaryPath $binaryPath -Path $Run.Path)) {
        $Result.warnings += ("the service '$service' runs $binaryPath, not $($Run.Path); the swap replaces " +
            "$($Run.Path) and restarts the service, which only helps if the service starts that file.")
    }
}

Function Read-SwapHostState {
    <#
    .SYNOPSIS
    Reads what the host has for a swap or rollback: the ledger, the live exe, its kept copies and,
    for a rollback, the copy to go back to. Sets Run.Ledger, LiveExists, LiveSha, Copies, KeptCopy,
    Previous (and Sha for a rollback). Throws New-SwapError when a human must look first.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result
    )
    $Run.Ledger = Read-SwapLedger -Path $Run.Paths.Ledger
    $entry = $null
    if ($Run.Ledger['releases'].Contains($Run.ReleaseId)) {
        $entry = $Run.Ledger['releases'][$Run.ReleaseId]
    }
    if ($null -ne $entry -and $entry['sha256'] -and $entry['sha256'] -ne $Run.Sha) {
        throw (New-SwapError -Message ("$($Run.What): the ledger $($Run.Paths.Ledger) already has release " +
                "$($Run.ReleaseId) with sha256 $($entry['sha256']), not $($Run.Sha). Release ids must be derived " +
                "from the artifact (version + sha256); use a new release_id for a different binary."))
    }
    Read-SwapLiveBinary -Run $Run
    if ($Run.Rollback) {
        $target = Resolve-RollbackTarget -Ledger $Run.Ledger -Copies $Run.Copies -ReleaseId $Run.ReleaseId `
            -Digest $Run.Sha -LedgerPath $Run.Paths.Ledger -Path $Run.Path -What $Run.What
        $Run.Sha = $target.Digest
        $Run.KeptCopy = $target.Copy
        $Result.sha256 = $Run.Sha
        if ($null -ne $Run.KeptCopy) {
            $Result.staged_path = $Run.KeptCopy.Path
        }
    }
    $Run.Previous = Find-SwapLedgerRelease -Ledger $Run.Ledger -Digest $Run.LiveSha
    $Result.previous_release = $Run.Previous
}

Function Read-SwapLiveBinary {
    <#
    .SYNOPSIS
    The sha256 of the live exe (Run.LiveExists, Run.LiveSha) and its kept copies (Run.Copies);
    throws New-SwapError when the exe cannot be read or is missing while copies exist.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run
    )
    $path = $Run.Path
    $Run.LiveExists = [System.IO.File]::Exists($path)
    if ($Run.LiveExists) {
        try {
            $Run.LiveSha = Get-FileSha256 -Path $path
        }
        catch {
            throw (New-SwapError -Message ("$($Run.What): cannot read the live exe $path ($(Get-ErrorText $_)). " +
                    "Check that the account Ansible connects as may read it."))
        }
    }
    $Run.Copies = @(Get-BinaryCopy -Path $path)
    if (-not $Run.LiveExists -and $Run.Copies.Count -gt 0) {
        throw (New-SwapError -Message ("$($Run.What): $path does not exist but old copies do " +
                "($((@($Run.Copies | ForEach-Object { $_.Name })) -join ', ')), so an earlier swap may have been " +
                "interrupted. Rename the right copy back to $path (the ledger $($Run.Paths.Ledger) says which " +
                "release was active) and rerun."))
    }
}

Function Complete-SwapAlreadyLive {
    <#
    .SYNOPSIS
    The live exe has the release's sha256 already: nothing is swapped; the ledger is corrected
    (under the lock) when it does not say that this release is the active one.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result
    )
    $rid = $Run.ReleaseId
    $Result.previous_release = $rid
    $Result.current_release = $rid
    $needsRecord = (Add-SwapLedgerStaged -Ledger $Run.Ledger -ReleaseId $rid -Version $Run.Version -Digest $Run.Sha `
            -Binary $Run.Paths.Name)
    $needsRecord = (Test-SwapLedgerNeedsActivation -Ledger $Run.Ledger -ReleaseId $rid) -or $needsRecord
    if ($Run.CheckMode) {
        $Result['would_swap'] = $false
        $Result['steps'] = @()
        if ($needsRecord) {
            $Result['steps'] = @("record release $rid as active in $($Run.Paths.Ledger) ($($Run.Path) has its sha256 already)")
        }
    }
    if ($needsRecord) {
        $Result.changed = $true
        if (-not $Run.CheckMode) {
            Write-SwapLiveRelease -Run $Run
        }
    }
}

Function Write-SwapLiveRelease {
    <#
    .SYNOPSIS
    Records under the lock that the release the live exe holds is the active one (the ledger is
    read again under the lock).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run
    )
    $rid = $Run.ReleaseId
    $owner = Get-SwapLockOwner -ReleaseId $rid
    Enter-SwapLock -Path $Run.Paths.Lock -Owner $owner -What $Run.What
    try {
        $ledger = Read-SwapLedger -Path $Run.Paths.Ledger
        $null = Add-SwapLedgerStaged -Ledger $ledger -ReleaseId $rid -Version $Run.Version -Digest $Run.Sha `
            -Binary $Run.Paths.Name
        if (Test-SwapLedgerNeedsActivation -Ledger $ledger -ReleaseId $rid) {
            $others = @(Get-SwapLedgerActive -Ledger $ledger | Where-Object { $_ -cne $rid })
            $from = $null
            if ($others.Count -gt 0) {
                $from = $others[0]
            }
            Add-SwapLedgerActivation -Ledger $ledger -ReleaseId $rid -PreviousReleaseId $from -By $Run.ActivatedBy
        }
        Write-SwapLedger -Path $Run.Paths.Ledger -Ledger $ledger
    }
    finally {
        Exit-SwapLock -Path $Run.Paths.Lock -Owner $owner
    }
}

Function Get-SwapLockOwner {
    <#
    .SYNOPSIS
    The owner this run writes into the deploy lock.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param (
        [AllowEmptyString()][string]$ReleaseId
    )
    "hotswap.deploy.win_binary_swap release $ReleaseId (pid $PID)"
}

Function Assert-SwapBinaryAvailable {
    <#
    .SYNOPSIS
    Throws New-SwapError when there is nothing to rename into place: a rollback without a kept
    copy, or a swap without src and url (reason not_staged: a verify-only probe).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result
    )
    $path = $Run.Path
    if ($Run.Rollback -and $null -eq $Run.KeptCopy) {
        # Resolve-RollbackTarget allows a missing copy only when the target is live already.
        $there = 'none'
        if ($Run.Copies.Count -gt 0) {
            $there = (@($Run.Copies | ForEach-Object { $_.Name })) -join ', '
        }
        throw (New-SwapError -Message ("$($Run.What): there is no kept copy of release $($Run.ReleaseId) " +
                "($path.old-$($Run.ReleaseId)) beside $path (copies there: $there). Pick a release that has one " +
                "(operation=query lists them), or deploy it again with operation=swap. Nothing was changed."))
    }
    if (-not $Run.Rollback -and -not $Run.Src -and -not $Run.Url) {
        $Result.current_release = $Run.Previous
        $state = "$path does not exist"
        if ($Run.LiveExists) {
            $state = "$path has sha256 $($Run.LiveSha), not $($Run.Sha)"
        }
        throw (New-SwapError -Reason 'not_staged' -Message ("$($Run.What): $state, and neither src nor url was " +
                "given. Give src (a file on the controller) or url (for the host to download)."))
    }
}

Function Resolve-SwapFile {
    <#
    .SYNOPSIS
    The files of the renames: the name the live exe is kept under (Run.BackupPath, unique; an exe
    the ledger does not know is kept as unknown-<sha256 prefix>) and the file renamed into place
    (Run.SwapPaths.Staged: <exe>.new, or the kept copy for a rollback), described by Run.Source.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result
    )
    $path = $Run.Path
    $backupId = $Run.Previous
    if ($Run.LiveExists -and -not $backupId) {
        $backupId = $script:UnknownPrefix + $Run.LiveSha.Substring(0, 12)
        $Result.warnings += ("the live binary $path (sha256 $($Run.LiveSha)) is not in the ledger; it is kept as " +
            "$(Get-CopyPath -Path $path -Kind old -ReleaseId $backupId), which is never pruned automatically.")
    }
    if ($Run.LiveExists) {
        $Run.BackupPath = Get-UniquePath -Path (Get-CopyPath -Path $path -Kind old -ReleaseId $backupId)
    }
    $Result.backup_path = $Run.BackupPath
    # The file renamed into place: <exe>.new for a swap, the kept copy itself for a rollback.
    $Run.SwapPaths = $Run.Paths
    $Run.Source = "the download of $(Hide-UrlCredential -Url $Run.Url)"
    if ($Run.Src) {
        $Run.Source = "src $($Run.Src)"
    }
    if ($Run.Rollback) {
        $Run.SwapPaths = $Run.Paths.PSObject.Copy()
        $Run.SwapPaths.Staged = $Run.KeptCopy.Path
        $Run.Source = "the kept copy $($Run.KeptCopy.Path)"
    }
    $Result.staged_path = $Run.SwapPaths.Staged
}

Function Complete-SwapCheckMode {
    <#
    .SYNOPSIS
    Check mode: verifies what can be verified without changing anything (the lock is free, the
    kept copy or src) and reports would_swap and the steps a real run would take.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result
    )
    # A run that changes something takes the lock; say now that it would be refused.
    Assert-SwapLockFree -Path $Run.Paths.Lock -What $Run.What
    if ($Run.Rollback) {
        $null = Assert-KeptCopy -Path $Run.KeptCopy.Path -ReleaseId $Run.ReleaseId -Digest $Run.Sha `
            -HostArch $Run.HostArch -LedgerPath $Run.Paths.Ledger -What $Run.What
    }
    elseif ($Run.Src) {
        $null = Assert-StagedBinary -Path $Run.Src -Digest $Run.Sha -HostArch $Run.HostArch -What $Run.Source
    }
    $steps = New-Object -TypeName System.Collections.ArrayList
    Add-SwapPlanStep -Run $Run -Steps $steps
    if (-not $Run.Rollback) {
        Add-SwapPlanPruneStep -Run $Run -Steps $steps
    }
    $Result.changed = $true
    $Result.current_release = $Run.ReleaseId
    $Result['would_swap'] = $true
    $Result['steps'] = $steps.ToArray()
}

Function Add-SwapPlanStep {
    <#
    .SYNOPSIS
    Adds to Steps (check mode) what a real run would do, from staging to the ledger record.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run,
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][System.Collections.ArrayList]$Steps
    )
    $staged = $Run.Paths.Staged
    $arch = "the PE machine ($($Run.HostArch))"
    $said = @()
    if ($Run.Rollback) {
        $said += "verify that $($Run.KeptCopy.Path) has sha256 $($Run.Sha) (the ledger's) and $arch"
    }
    elseif ($Run.Src) {
        $said += @("copy $($Run.Src) to $staged", "verify sha256 $($Run.Sha) and $arch")
    }
    else {
        $said += @("download $(Hide-UrlCredential -Url $Run.Url) to $staged (not contacted in check mode)",
            "verify sha256 $($Run.Sha) and $arch")
    }
    $said += "stop service '$($Run.Service)' (wait up to $($Run.StopTimeout) s)"
    if ($Run.BackupPath) {
        $said += "rename $($Run.Path) to $($Run.BackupPath)"
    }
    $said += "rename $($Run.SwapPaths.Staged) to $($Run.Path)"
    $said += "start service '$($Run.Service)' (wait up to $($Run.StartTimeout) s for Running)"
    if ($Run.HealthUrl) {
        $said += ("probe $(Hide-UrlCredential -Url $Run.HealthUrl) (up to $([int]$Run.HealthRetries + 1) attempts, " +
            "$($Run.HealthInterval) s apart)")
    }
    $said += "record release $($Run.ReleaseId) as active in $($Run.Paths.Ledger)"
    if ($Run.Previous -and $Run.Previous -cne $Run.ReleaseId -and $Run.PreviousState -eq 'failed') {
        $said += "mark release $($Run.Previous) failed in the ledger"
    }
    $Steps.AddRange($said)
}

Function Add-SwapPlanPruneStep {
    <#
    .SYNOPSIS
    Adds to Steps (check mode) the old copies a real swap would remove, found on a copy of the
    ledger with the release recorded as staged.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run,
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][System.Collections.ArrayList]$Steps
    )
    $simulated = New-SwapLedger
    foreach ($id in @($Run.Ledger['releases'].Keys)) {
        $simulated['releases'][$id] = $Run.Ledger['releases'][$id]
    }
    $null = Add-SwapLedgerStaged -Ledger $simulated -ReleaseId $Run.ReleaseId -Version $Run.Version -Digest $Run.Sha `
        -Binary $Run.Paths.Name
    $backupPath = $Run.BackupPath
    $withBackup = @($Run.Copies)
    if ($backupPath -and $Run.Previous) {
        $withBackup += [PSCustomObject]@{ Path = $backupPath; Name = [System.IO.Path]::GetFileName($backupPath)
            Kind = 'old'; ReleaseId = $Run.Previous; Sequence = 1
        }
    }
    $prune = @(Select-OldCopiesToPrune -Copies $withBackup -Ledger $simulated -Keep $Run.Keep -Protect @($backupPath))
    if ($prune.Count -gt 0) {
        $null = $Steps.Add("remove old copies beyond keep=$($Run.Keep): $((@($prune | ForEach-Object { $_.Name })) -join ', ')")
    }
}

Function Invoke-SwapUnderLock {
    <#
    .SYNOPSIS
    The swap or rollback itself, holding the deploy lock: stage and verify (or verify the kept
    copy), swap under the stopped service, then prune old copies.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result
    )
    $owner = Get-SwapLockOwner -ReleaseId $Run.ReleaseId
    Enter-SwapLock -Path $Run.Paths.Lock -Owner $owner -What $Run.What
    try {
        if ($Run.Rollback) {
            Invoke-SwapRollbackCopy -Run $Run -Result $Result
            return
        }
        Invoke-SwapStaging -Run $Run
        $Result.changed = $true   # the verified <exe>.new is on disk from here on
        if (Add-SwapLedgerStaged -Ledger $Run.Ledger -ReleaseId $Run.ReleaseId -Version $Run.Version -Digest $Run.Sha `
                -Binary $Run.Paths.Name) {
            Write-SwapLedger -Path $Run.Paths.Ledger -Ledger $Run.Ledger
        }

        Invoke-SwapUnderService -Result $Result -Options $Run.Options -Paths $Run.Paths -Ledger $Run.Ledger `
            -Info $Run.Info -BackupPath $Run.BackupPath -Previous $Run.Previous -What $Run.What

        Remove-SwapOldCopy -Run $Run -Result $Result
    }
    finally {
        Exit-SwapLock -Path $Run.Paths.Lock -Owner $owner
    }
}

Function Invoke-SwapRollbackCopy {
    <#
    .SYNOPSIS
    A rollback under the lock: verifies the kept copy again and renames it into place under the
    stopped service. Nothing is staged or pruned.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result
    )
    # Checked again under the lock: the copy is renamed into place as it is, nothing is staged.
    try {
        $null = Assert-KeptCopy -Path $Run.KeptCopy.Path -ReleaseId $Run.ReleaseId -Digest $Run.Sha `
            -HostArch $Run.HostArch -LedgerPath $Run.Paths.Ledger -What $Run.What
    }
    catch {
        if ($null -ne (Get-SwapErrorDetail -Exception $_.Exception)) {
            throw
        }
        throw (New-SwapError -FailedStep 'verify' -Message ("$($Run.What): verifying $($Run.KeptCopy.Path) failed: " +
                "$(Get-ErrorText $_). Nothing was changed."))
    }
    Invoke-SwapUnderService -Result $Result -Options $Run.Options -Paths $Run.SwapPaths -Ledger $Run.Ledger `
        -Info $Run.Info -BackupPath $Run.BackupPath -Previous $Run.Previous -What $Run.What
    # No pruning: a rollback removes nothing (the release rolled back from is kept as a copy).
    $Result['pruned'] = @()
}

Function Invoke-SwapStaging {
    <#
    .SYNOPSIS
    Stages <exe>.new (copy of src or download of url) and verifies it; on failure it is removed
    and New-SwapError (failed_step stage or verify) is thrown.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run
    )
    $staged = $Run.Paths.Staged
    try {
        Save-StagedBinary -Destination $staged -Src $Run.Src -Url $Run.Url -ValidateCerts $Run.ValidateCerts `
            -Downloader $Run.Downloader
    }
    catch {
        $cause = Get-ErrorText $_
        Remove-FileQuietly -Path $staged
        $fix = 'Check free space and permissions.'
        if ($Run.Url) {
            $fix = 'Check that the URL is right and reachable from the host, or push the file from the controller with src.'
        }
        throw (New-SwapError -FailedStep 'stage' -Message ("$($Run.What): staging $($Run.Source) as $staged " +
                "failed: $cause. $fix Nothing was changed."))
    }
    try {
        $null = Assert-StagedBinary -Path $staged -Digest $Run.Sha -HostArch $Run.HostArch -What $Run.Source `
            -Outcome 'nothing was changed (the staged copy was removed)'
    }
    catch {
        Remove-FileQuietly -Path $staged
        if ($null -ne (Get-SwapErrorDetail -Exception $_.Exception)) {
            throw
        }
        throw (New-SwapError -FailedStep 'verify' -Message ("$($Run.What): verifying $staged failed: " +
                "$(Get-ErrorText $_). Nothing was changed (the staged copy was removed)."))
    }
}

Function Remove-SwapOldCopy {
    <#
    .SYNOPSIS
    After a successful swap: removes the old copies beyond keep (Result.pruned) and drops from the
    ledger the releases left without a copy. Problems here are warnings (the swap succeeded).
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory = $true)][hashtable]$Run,
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result
    )
    $pruned = @()
    try {
        $copies = @(Get-BinaryCopy -Path $Run.Path)
        $doomed = @(Select-OldCopiesToPrune -Copies $copies -Ledger $Run.Ledger -Keep $Run.Keep -Protect @($Run.BackupPath))
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
        $remaining = @(Get-BinaryCopy -Path $Run.Path | ForEach-Object { $_.ReleaseId })
        $releases = $Run.Ledger['releases']
        $forgot = $false
        foreach ($id in @($releases.Keys)) {
            if ($id -cne $Run.ReleaseId -and $remaining -cnotcontains $id -and $releases[$id]['state'] -ne 'active') {
                $releases.Remove($id)
                $forgot = $true
            }
        }
        if ($forgot) {
            Write-SwapLedger -Path $Run.Paths.Ledger -Ledger $Run.Ledger
        }
    }
    catch {
        $Result.warnings += "pruning old copies of $($Run.Path) failed: $(Get-ErrorText $_); the swap itself succeeded."
    }
    $Result['pruned'] = $pruned
}

Export-ModuleMember -Function @(
    'Invoke-BinarySwap'
)
