# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The release_cutover module: the pushed copy into its release, then units, switch and restart, in one module run.

Each module run costs the host a Python start and the imports of its module_utils, and the controller a
round trip; a deploy ran binary_upload, service_units, release_activate and graceful_restart one after the
other. Here the steps run in one process, each with the same arguments, the same code and the same result as
its own module, stopping at the first that fails. The arguments of all of them are checked before the first
runs. The lock's release stays a run of its own: a controller killed during this run leaves the lock held (the
module cannot tell: an ssh control master keeps its session open after the controller died).
"""

from __future__ import annotations

import time

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import UPLOAD_MUTUALLY_EXCLUSIVE, UPLOAD_SPEC, run_upload
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.graceful import (
    RESTART_REQUIRED_IF, RESTART_SPEC, failure_details, run_restart,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import ACTIVATE_SPEC, activate_diff, activate_release
from ansible_collections.hotswap.deploy.plugins.module_utils.units import UNITS_SPEC, install

STEPS = ('upload', 'units', 'activate', 'restart')

# service_units with state=present.
UNITS_STEP_SPEC = dict(UNITS_SPEC, adopt=dict(type='bool', default=False), base_dir=dict(type='path'))
UNITS_STEP_REQUIRED_IF = [('strategy', 'systemd_socket', ['socket_unit'])]

# Each step's spec, and the checks beyond it (ArgumentSpecValidator's keywords).
STEP_SPECS = dict(upload=(UPLOAD_SPEC, dict(mutually_exclusive=UPLOAD_MUTUALLY_EXCLUSIVE)),
                  units=(UNITS_STEP_SPEC, dict(required_if=UNITS_STEP_REQUIRED_IF)), activate=(ACTIVATE_SPEC, {}),
                  restart=(RESTART_SPEC, dict(required_if=RESTART_REQUIRED_IF)))
STEP_MODULES = dict(upload='hotswap.deploy.binary_upload', units='hotswap.deploy.service_units',
                    activate='hotswap.deploy.release_activate', restart='hotswap.deploy.graceful_restart')


class StepFailed(HotswapError):
    """Step ``step`` failed; ``details`` are the keys its own module would have failed with."""

    def __init__(self, step, msg, **details):
        super(StepFailed, self).__init__(msg, **details)
        self.step = step


def validate_steps(params, steps, specs, modules, what):
    """The validated arguments of each of ``steps`` in ``params`` (a step not given is None), each checked against
    the spec of its own module (``specs``: (spec, validator keywords); ``modules``: the module names). Raises
    HotswapError naming every bad argument, before any step runs."""
    checked, errors = {}, []
    for step in steps:
        if params.get(step) is None:
            checked[step] = None
            continue
        spec, checks = specs[step]
        result = ArgumentSpecValidator(spec, **checks).validate(params[step])
        errors += ['%s: %s' % (step, e) for e in result.error_messages]
        checked[step] = result.validated_parameters
    if errors:
        raise HotswapError('%s: bad step arguments - %s. Each step takes the arguments of its own module (%s). '
                           'Nothing was changed.' % (what, '; '.join(errors),
                                                     ', '.join('%s: %s' % (s, modules[s]) for s in steps)))
    return checked


def check_steps(params):
    """The validated arguments of each step given (a missing step is None). Raises HotswapError naming every
    bad argument, before any step runs."""
    checked = validate_steps(params, STEPS, STEP_SPECS, STEP_MODULES, 'release_cutover')
    if checked['restart'] is not None and checked['activate'] is None:
        raise HotswapError('release_cutover: restart needs activate: it restarts the service on the release '
                           'activate switches to. Give activate, or run hotswap.deploy.graceful_restart on its own. '
                           'Nothing was changed.')
    return checked


def restart_after_units(restart, units_changed):
    """The restart step's arguments once the units are in place: changed units are reloaded by systemd and the
    service restarted whatever binary it runs (``executable`` would skip a service already on it)."""
    restart = dict(restart)
    if units_changed:
        restart.update(daemon_reload=True, executable=None)
    return restart


def _units(p, run_command, check_mode, move):
    return install(p['app'], p['strategy'], p['service_unit'], p['socket_unit'], run_command=run_command,
                   check_mode=check_mode, move=move, adopt=p['adopt'], base_dir=p['base_dir'])


def run_cutover(steps, run_command, check_mode=False, move=None, clock=time.time, module=None):
    """Run the checked ``steps`` (``check_steps``) in order. Returns ``results``: each step's result under its
    name, ``diff`` (the units' and the switch's, when they changed anything) and the restart's wall-clock
    ``restart_started``/``restart_ended``. A failed step raises StepFailed carrying the results so far. The
    upload step needs the AnsibleModule (``module``)."""
    results = dict(changed=False, diff=[])

    def failed(step, exc, **details):
        details.update((k, v) for k, v in results.items() if k != 'diff')
        details['changed'] = bool(results['changed'] or details.get('changed'))
        return StepFailed(step, exc.msg, **details)

    if steps['upload'] is not None:
        try:
            upload = run_upload(module, steps['upload'], check_mode)
        except HotswapError as e:
            raise failed('upload', e, upload=dict(e.details, msg=e.msg, failed=True))
        results.update(upload=upload, changed=upload['changed'])
    if steps['units'] is not None:
        try:
            units = _units(steps['units'], run_command, check_mode, move)
        except HotswapError as e:
            raise failed('units', e)
        diff = units.pop('diff', None)
        if units['changed'] and diff:
            results['diff'].append(diff)
        results.update(units=units, changed=results['changed'] or units['changed'])
    units_changed = bool((results.get('units') or {}).get('units_changed'))
    if steps['activate'] is not None:
        try:
            activate = activate_release(steps['activate'], check_mode)
        except HotswapError as e:
            raise failed('activate', e)
        if activate['switched']:
            results['diff'].append(activate_diff(activate))
        results.update(activate=activate, changed=results['changed'] or activate['changed'])
    if steps['restart'] is not None:
        results['restart_started'] = clock()
        try:
            restart = run_restart(restart_after_units(steps['restart'], units_changed), run_command, check_mode)
        except HotswapError as e:
            results['restart_ended'] = clock()
            msg, details = failure_details(e)
            error = failed('restart', e, changed=details['changed'], restart=dict(details, msg=msg, failed=True))
            error.details['stage'] = details['stage']
            raise error
        results['restart_ended'] = clock()
        results.update(restart=restart, changed=results['changed'] or restart['changed'])
    return results
