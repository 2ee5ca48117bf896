# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapCommon

# The release ledger .hotswap\ledger.json (the JSON of the Linux modules: docs/development.md)
# and the deploy lock .hotswap\lock held during one module run.
#
# Part of the Windows binary swap of hotswap.deploy.win_binary_swap; WinBinarySwap.psm1 describes
# the swap and says which file holds what. PowerShell 5.1 compatible. Not yet run on a real
# Windows host (docs/windows.md).

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

Export-ModuleMember -Function @(
    'Add-SwapLedgerActivation'
    'Add-SwapLedgerStaged'
    'Enter-SwapLock'
    'Exit-SwapLock'
    'Find-SwapLedgerRelease'
    'Get-SwapLedgerActive'
    'New-SwapLedger'
    'Read-SwapLedger'
    'Read-SwapLock'
    'Select-OldCopiesToPrune'
    'Set-SwapLedgerState'
    'Test-SwapLedgerNeedsActivation'
    'Write-SwapLedger'
)
