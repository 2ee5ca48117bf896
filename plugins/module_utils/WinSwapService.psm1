# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinSwapCommon

# The Windows service operations: the defaults of the GetServiceInfo, StopService and
# StartService scriptblock parameters of Invoke-BinarySwap (the Pester tests pass fakes).
#
# Part of the Windows binary swap of hotswap.deploy.win_binary_swap; WinBinarySwap.psm1 describes
# the swap and says which file holds what. PowerShell 5.1 compatible. Not yet run on a real
# Windows host (docs/windows.md).

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

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

Export-ModuleMember -Function @(
    'Get-SwapServiceInfo'
    'Start-ServiceAndWait'
    'Stop-ServiceAndWait'
    'Test-ServiceRunsPath'
)
