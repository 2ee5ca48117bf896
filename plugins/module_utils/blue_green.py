# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The blue_green_cutover module: the part of a blue-green rollout after the transfer, in one module run.

Move the pushed copy into its release, point the target slot at the release, start it and check it on its own
port, switch nginx to it, move ``current``, check through nginx, then record the live slot, scale the old one
down, prune and release the lock. Each step takes the arguments of its own module (binary_upload,
blue_green_slots, graceful_restart, health_check, nginx_switch, release_activate), runs its code and returns its
result; all are checked before the first runs, and the first that fails ends the run. What to undo then is the
caller's (blue_green_deploy's switch back): each step's result says what it changed.
"""

from __future__ import annotations

import time

from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import UPLOAD_MUTUALLY_EXCLUSIVE, UPLOAD_SPEC, run_upload
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.cutover import validate_steps
from ansible_collections.hotswap.deploy.plugins.module_utils.graceful import (
    RESTART_REQUIRED_IF, RESTART_SPEC, failure_details, run_restart,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.health import HEALTH_SPEC, PROBE_OPTIONS, check_health
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import ACTIVATE_SPEC, activate_release
from ansible_collections.hotswap.deploy.plugins.module_utils.nginx import SWITCH_SPEC, switch
from ansible_collections.hotswap.deploy.plugins.module_utils.slots import SLOTS_SPEC, run_slots

STEPS = ('upload', 'slots', 'restart', 'direct_check', 'switch', 'activate', 'public_check', 'finish')

_HEALTH_CHECKS = dict(mutually_exclusive=[[name for name, _kind in PROBE_OPTIONS]],
                      required_one_of=[[name for name, _kind in PROBE_OPTIONS]])
STEP_SPECS = dict(upload=(UPLOAD_SPEC, dict(mutually_exclusive=UPLOAD_MUTUALLY_EXCLUSIVE)),
                  slots=(SLOTS_SPEC, {}), restart=(RESTART_SPEC, dict(required_if=RESTART_REQUIRED_IF)),
                  direct_check=(HEALTH_SPEC, _HEALTH_CHECKS), switch=(SWITCH_SPEC, {}), activate=(ACTIVATE_SPEC, {}),
                  public_check=(HEALTH_SPEC, _HEALTH_CHECKS), finish=(SLOTS_SPEC, {}))
STEP_MODULES = dict(upload='hotswap.deploy.binary_upload', slots='hotswap.deploy.blue_green_slots',
                    restart='hotswap.deploy.graceful_restart', direct_check='hotswap.deploy.health_check',
                    switch='hotswap.deploy.nginx_switch', activate='hotswap.deploy.release_activate',
                    public_check='hotswap.deploy.health_check', finish='hotswap.deploy.blue_green_slots')


def check_steps(params):
    """The validated arguments of each step given (a missing step is None); HotswapError before any runs."""
    return validate_steps(params, STEPS, STEP_SPECS, STEP_MODULES, 'blue_green_cutover')


def _upload(p, tools, check_mode):
    return run_upload(tools['module'], p, check_mode)


def _slots(p, tools, check_mode):
    try:
        result = run_slots(p, tools['run_command'], check_mode)
    except OSError as e:
        raise HotswapError('changing the slots of %s in %s: %s. Check permissions (use become).'
                           % (p['app'], p['base_dir'], e))
    if result.get('failed_step'):
        raise HotswapError(result.pop('step_error'), **result)
    return result


def _restart(p, tools, check_mode):
    try:
        return run_restart(p, tools['run_command'], check_mode)
    except HotswapError as e:
        msg, details = failure_details(e)
        raise HotswapError(msg, **details)


def _check(p, tools, check_mode):
    return check_health(p, tools['run_command'])


def _switch(p, tools, check_mode):
    try:
        return switch(p['path'], p['content'], run_command=tools['run_command'], check_mode=check_mode,
                      move=tools['move'], service=p['service'], nginx=tools['nginx'], systemctl=tools['systemctl'])
    except HotswapError as e:
        details = dict(rejected=False)
        details.update(e.details)
        raise HotswapError(e.msg, **details)


def _activate(p, tools, check_mode):
    return activate_release(p, check_mode)


RUNNERS = dict(upload=_upload, slots=_slots, restart=_restart, direct_check=_check, switch=_switch,
               activate=_activate, public_check=_check, finish=_slots)


def run_cutover(steps, tools, check_mode=False, clock=time.monotonic):
    """Run the checked ``steps`` in order (``tools``: run_command, move, the nginx and systemctl binaries, and the
    AnsibleModule for the upload step).

    Returns (results, failed_step): each step that ran, by name, with what its own module would have returned
    (a failed step: ``failed``, ``msg`` and the keys its module fails with; a step's ``seconds`` too), and the
    step that failed or None. Nothing raises for a step's failure."""
    results = {}
    for step in STEPS:
        if steps[step] is None:
            continue
        started = clock()
        try:
            result = RUNNERS[step](steps[step], tools, check_mode)
        except HotswapError as e:
            results[step] = dict(e.details, failed=True, msg=e.msg, seconds=round(clock() - started, 3))
            return results, step
        result['seconds'] = round(clock() - started, 3)
        results[step] = result
    return results, None


def changed(results):
    """Whether any step changed something (the lock is not a change, as with deploy_lock)."""
    return any(bool(r.get('changed')) for r in results.values())
