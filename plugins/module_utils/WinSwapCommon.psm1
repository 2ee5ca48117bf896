# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

# Errors (New-SwapError: message plus failed_step/reason for the module result), small helpers
# and the checks of the options every operation shares (release id, checksum, URLs).
#
# Part of the Windows binary swap of hotswap.deploy.win_binary_swap; WinBinarySwap.psm1 describes
# the swap and says which file holds what. PowerShell 5.1 compatible. Not yet run on a real
# Windows host (docs/windows.md).

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$script:ReleaseIdMaxLength = 128

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

Export-ModuleMember -Function @(
    'Assert-HttpUrl'
    'Assert-ReleaseId'
    'ConvertFrom-Checksum'
    'Get-ErrorText'
    'Get-PropertyValue'
    'Get-SwapErrorDetail'
    'Get-UnixEpoch'
    'Get-UtcTimestamp'
    'Hide-UrlCredential'
    'New-SwapError'
    'Test-ReleaseId'
)
