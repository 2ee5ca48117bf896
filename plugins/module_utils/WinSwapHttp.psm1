# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapCommon

# HTTP from the host: the download of url and the health probe of health_url (the defaults of
# the Downloader and HealthRequest scriptblock parameters of Invoke-BinarySwap).
#
# Part of the Windows binary swap of hotswap.deploy.win_binary_swap; WinBinarySwap.psm1 describes
# the swap and says which file holds what. PowerShell 5.1 compatible. Not yet run on a real
# Windows host (docs/windows.md).

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$script:HealthRequestTimeoutSeconds = 10

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
        $attempt = Get-HealthAnswerOutcome -Answer $answer -Shown $shown -ExpectedVersion $ExpectedVersion
        $outcome = $attempt.Outcome
        $reason = $attempt.Reason
        $version = $attempt.Version
        if ($outcome -eq 'pass') {
            break
        }
    }
    [PSCustomObject]@{
        Verdict = $outcome
        Attempts = $attempts
        Reason = $reason
        Version = $version
    }
}

Function Get-HealthAnswerOutcome {
    <#
    .SYNOPSIS
    The outcome of one answer of the health URL (see Invoke-HealthProbe), as a hashtable: Outcome
    (pass|fail|inconclusive), Reason, and Version (read only when ExpectedVersion is given).
    #>
    [CmdletBinding()]
    param (
        [AllowNull()][object]$Answer,
        [Parameter(Mandatory = $true)][AllowEmptyString()][string]$Shown,
        [AllowNull()][AllowEmptyString()][string]$ExpectedVersion
    )
    $attempt = @{ Outcome = 'fail'; Reason = $null; Version = $null }
    if ($Answer -isnot [System.Collections.IDictionary]) {
        $attempt.Outcome = 'inconclusive'
        $attempt.Reason = "$Shown gave no answer"
        return $attempt
    }
    $code = [int]$Answer['StatusCode']
    if ($code -lt 200 -or $code -gt 299) {
        $attempt.Reason = "$Shown answered HTTP $code"
        return $attempt
    }
    if ($ExpectedVersion) {
        $version = Get-HealthBodyVersion -Body ([string]$Answer['Body'])
        $attempt.Version = $version
        if ($null -eq $version) {
            $attempt.Reason = "$Shown answered a JSON object without a 'version' field (expected version $ExpectedVersion)"
            return $attempt
        }
        if ($version -cne $ExpectedVersion) {
            $attempt.Reason = "$Shown reports version '$version', expected '$ExpectedVersion'"
            return $attempt
        }
    }
    $attempt.Outcome = 'pass'
    $attempt.Reason = "$Shown answered HTTP $code"
    if ($ExpectedVersion) {
        $attempt.Reason += " with version '$($attempt.Version)'"
    }
    $attempt
}

Export-ModuleMember -Function @(
    'Get-HealthBodyVersion'
    'Invoke-HealthProbe'
    'Invoke-HealthRequest'
    'Save-UrlToFile'
)
