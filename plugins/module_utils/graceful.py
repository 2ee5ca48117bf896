# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""What the graceful_restart module does with its parameters, so release_cutover runs the same restart.

A config reload when only release files changed and ``config_reload`` allows it, else a restart with the
strategy (module_utils/restart.py). The spec is here for both modules.
"""

from __future__ import annotations

from ansible_collections.hotswap.deploy.plugins.module_utils import config_reload, health
from ansible_collections.hotswap.deploy.plugins.module_utils.common import STRATEGIES, HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.restart import (
    Options, RestartFailed, Systemd, restart, unit_state,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.version import (
    VERSION_SPEC, build_version_source, version_params,
)

RESTART_SPEC = dict(
    service=dict(type='str', required=True),
    strategy=dict(type='str', choices=list(STRATEGIES), default='systemd_socket'),
    signal=dict(type='str', default='SIGHUP'),
    pid_file=dict(type='path'),
    executable=dict(type='path'),
    url=dict(type='str'),
    expected_version=dict(type='str'),
    validate_certs=dict(type='bool', default=True),
    health_timeout=dict(type='float', default=3),
    ready_timeout=dict(type='float', default=60),
    drain_timeout=dict(type='float', default=60),
    daemon_reload=dict(type='bool', default=False),
    enabled=dict(type='bool', default=True),
    config_reload=dict(type='dict'),
    config_probe=dict(type='dict'),
    base_dir=dict(type='path'),
    release_id=dict(type='str'),
    previous_release=dict(type='str'),
)
RESTART_SPEC.update(VERSION_SPEC)
RESTART_REQUIRED_IF = [('strategy', 'signal_reexec', ['pid_file'])]


def run_restart(p, run_command, check_mode=False):
    """graceful_restart with the validated parameters ``p``: the result dict. Raises RestartFailed or
    HotswapError (see ``failure_details``)."""
    version_source = build_version_source(**version_params(p))
    reload_spec = config_reload.check_spec(p['config_reload'])
    skipped = None
    if reload_spec:
        ok, why = reload_if_only_files_changed(p, reload_spec, version_source, run_command, check_mode)
        if ok:
            return why
        skipped = why
    options = Options(
        p['service'], strategy=p['strategy'], url=p['url'], expected_version=p['expected_version'],
        signal=p['signal'], pid_file=p['pid_file'], executable=p['executable'],
        ready_timeout=p['ready_timeout'], drain_timeout=p['drain_timeout'],
        health_timeout=p['health_timeout'], validate_certs=p['validate_certs'],
        daemon_reload=p['daemon_reload'], enable=p['enabled'], version_source=version_source,
    )
    result = restart(options, run_command, check_mode=check_mode)
    if skipped:
        result['reload_skipped'] = skipped
    result.setdefault('changed', False)
    return result


def failure_details(exc):
    """fail_json's message and keys for a failed restart: its ``stage``, and ``changed`` unless it was refused
    at the check stage (nothing touched)."""
    details = dict(exc.details)
    if isinstance(exc, RestartFailed):
        details.setdefault('stage', exc.stage)
        details['changed'] = exc.stage != 'check'
    else:
        details.setdefault('stage', 'check')
        details.setdefault('changed', False)
    return exc.msg, details


def reload_if_only_files_changed(p, spec, version_source, run_command, check_mode):
    """(True, result) after a config reload, or (False, why a restart is needed instead)."""
    if not p['base_dir'] or not p['release_id']:
        raise HotswapError('checking config_reload: it needs base_dir and release_id (the release switched to) to '
                           'tell whether only release files changed.')
    ok, why = config_reload.reload_decision(p['base_dir'], p['previous_release'], p['release_id'],
                                            units_changed=p['daemon_reload'])
    systemd = Systemd(run_command)
    if ok and unit_state(systemd, '%s.service' % p['service']).get('ActiveState') != 'active':
        ok, why = False, 'the service is not running'
    if not ok:
        return False, why
    probes = []
    if p['url']:
        probes.append(health.build_probe('http', p['url'], expected_version=p['expected_version'] or None,
                                         validate_certs=p['validate_certs'], timeout=p['health_timeout'],
                                         version_source=version_source))
    probe = config_reload.config_probe(p['config_probe'], p['validate_certs'], p['health_timeout'])
    if probe:
        probes.append(probe)
    wait = float((p['config_probe'] or {}).get('timeout') or p['ready_timeout'])
    result = config_reload.reload_service(systemd, p['service'], spec, probes, wait,
                                          p['base_dir'], p['release_id'], run_command,
                                          check_mode=check_mode)
    result['reload_reason'] = why
    return True, result
