#!powershell

# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.hotswap.deploy.plugins.module_utils.WinBinarySwap

# Thin: the argument spec, a call into WinBinarySwap.psm1 (all the logic, with the WinSwap*.psm1
# module utils it requires; Pester tests written, not yet run), the result. Documentation:
# win_binary_swap.py. Controller side (push of src): plugins/action.

$spec = @{
    options = @{
        path = @{ type = 'path'; required = $true }
        operation = @{ type = 'str'; choices = 'swap', 'rollback', 'query'; default = 'swap' }
        src = @{ type = 'str' }
        remote_src = @{ type = 'bool'; default = $false }
        url = @{ type = 'str' }
        checksum = @{ type = 'str' }
        service = @{ type = 'str' }
        release_id = @{ type = 'str' }
        version = @{ type = 'str' }
        staging_dir = @{ type = 'path' }
        keep = @{ type = 'int'; default = 3 }
        stop_timeout = @{ type = 'int'; default = 60 }
        start_timeout = @{ type = 'int'; default = 60 }
        health_url = @{ type = 'str' }
        expected_version = @{ type = 'str' }
        health_retries = @{ type = 'int'; default = 20 }
        health_interval = @{ type = 'int'; default = 1 }
        validate_certs = @{ type = 'bool'; default = $true }
        previous_state = @{ type = 'str'; choices = 'retired', 'failed'; default = 'retired' }
        activated_by = @{ type = 'str'; default = 'ansible' }
    }
    mutually_exclusive = @(
        , @('src', 'url')
    )
    required_if = @(
        @('operation', 'swap', @('checksum', 'service', 'release_id')),
        @('operation', 'rollback', @('service', 'release_id'))
    )
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$p = $module.Params

$what = "swapping $($p.path) to release $($p.release_id)"
if ($p.operation -eq 'rollback') {
    $what = "rolling $($p.path) back to release $($p.release_id)"
}
elseif ($p.operation -eq 'query') {
    $what = "querying $($p.path)"
}
if ($p.operation -ne 'query') {
    $module.Result.swapped = $false
    $module.Result.release_id = $p.release_id
}

if ($p.operation -eq 'swap' -and $p.src -and -not $p.remote_src) {
    # The action plugin pushes a controller-side src and calls the module with remote_src=true.
    $module.FailJson(("$($what): src $($p.src) is a path on the controller (remote_src=false), but the module ran " +
            "without the hotswap.deploy.win_binary_swap action plugin that pushes it. Call the module by its full " +
            "name hotswap.deploy.win_binary_swap, or set remote_src=true when src is already on the Windows host."))
}

$swap = @{
    Path = $p.path
    Src = $p.src
    Url = $p.url
    Checksum = $p.checksum
    Service = $p.service
    ReleaseId = $p.release_id
    Version = $p.version
    StagingDir = $p.staging_dir
    Keep = $p.keep
    StopTimeout = $p.stop_timeout
    StartTimeout = $p.start_timeout
    HealthUrl = $p.health_url
    ExpectedVersion = $p.expected_version
    HealthRetries = $p.health_retries
    HealthInterval = $p.health_interval
    ValidateCerts = $p.validate_certs
    CheckMode = $module.CheckMode
    Operation = $p.operation
    PreviousState = $p.previous_state
    ActivatedBy = $p.activated_by
}

try {
    $result = Invoke-BinarySwap @swap
}
catch {
    $module.FailJson(("$($what): unexpected error: $($_.Exception.Message). Nothing is known to be changed " +
            "unless the message says so; look at $($p.path), its .old-*/.failed-* copies and the service, and " +
            "report this with -vvv output."), $_)
}

foreach ($warning in @($result['warnings'])) {
    if ($warning) {
        $module.Warn($warning)
    }
}
foreach ($key in @($result.Keys)) {
    if ($key -notin @('warnings', 'failed', 'msg')) {
        $module.Result[$key] = $result[$key]
    }
}
if ($result.Contains('failed') -and $result['failed']) {
    $module.FailJson($result['msg'])
}
$module.ExitJson()
