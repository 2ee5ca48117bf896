# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""hotswap.deploy.release_switch: one Linux host switched to a release it already has, as one task.

The rollback role's per-host step (and so the canary's switch back of a failed batch): lock, switch
current, restart with the strategy in force, verify, unlock; when that fails, the host goes back to the
release it came from by the same switch-back path a failed deploy takes (plugin_utils/host_steps.py).
Decisions: plugins/plugin_utils/host_flow.py (rollback_*).
"""

from __future__ import annotations

import time

from ansible_collections.hotswap.deploy.plugins.module_utils.common import STRATEGIES
from ansible_collections.hotswap.deploy.plugins.plugin_utils import host_flow as flow
from ansible_collections.hotswap.deploy.plugins.plugin_utils.host_steps import SHARED_SETTINGS_SPEC, HostStepsAction

MODULE = 'hotswap.deploy.release_switch'

SETTINGS_SPEC = dict(
    app=dict(type='str', required=True),
    base_dir=dict(type='str', required=True),
    target=dict(type='str', required=True),
    version=dict(type='str'),
    strategy=dict(type='str', required=True, choices=list(STRATEGIES)),
    executable=dict(type='str', required=True),
    owner=dict(type='str', required=True),
    reclaim_key=dict(type='str', required=True, no_log=False),
    previous_state=dict(type='str', default='retired'),
    restore_on_failure=dict(type='bool', default=True),
    current=dict(type='str'),
    present=dict(type='list', elements='str', default=[]),
    releases=dict(type='list', elements='dict', default=[]),
)
SETTINGS_SPEC.update(SHARED_SETTINGS_SPEC)

ARGS_SPEC = dict(settings=dict(type='dict', required=True, options=SETTINGS_SPEC))


class ActionModule(HostStepsAction):

    _VALID_ARGS = frozenset(ARGS_SPEC)
    ARGS_SPEC = ARGS_SPEC
    SETTINGS_VAR = 'rollback__switch_settings'

    def run_steps(self, args):
        r = self._r = args['settings']
        st = {}
        started = time.time()
        try:
            self._switch(st)
        except flow.StepFailed as e:
            return self._fail(st, e, started)
        self._unlock(st, r['base_dir'])
        out = flow.rollback_done_result(r, st, self._host, time.time() - started, self._check)
        return dict(changed=out['changed'], result=out)

    def _switch(self, st):
        r = self._r
        # The lock and the switch in one module run: the target answers one round trip sooner.
        activate = self._call(flow.STAGE_RB_SWITCH, 'hotswap.deploy.release_activate', flow.rollback_activate_args(r))
        # Released at the end unless the module says it was not taken (a crash after taking it says nothing).
        if activate.get('locked', True) and not activate.get('lock_failed') and not activate.get('unreachable'):
            st.update(locked=True, owner=r['owner'])
        if activate.get('failed') or activate.get('unreachable'):
            failure = flow.failure_of(flow.STAGE_RB_LOCK if activate.get('lock_failed') else flow.STAGE_RB_SWITCH,
                                      activate)
            raise flow.StepFailed(failure['stage'], failure['reason'], activate)
        st.update(switched=bool(activate.get('switched')), **{'from': activate.get('previous_release')})
        # In check mode current did not move, so the restart could not judge it.
        if self._check and st['switched']:
            return
        restart = self._module(flow.STAGE_RB_RESTART, 'hotswap.deploy.graceful_restart',
                               flow.rollback_restart_args(r))
        st['restart_changed'] = bool(restart.get('changed'))
        health = self._module(flow.STAGE_RB_VERIFY, 'hotswap.deploy.health_check',
                              flow.rollback_health_args(r, r['version']))
        st['health_outcome'] = health.get('outcome')

    def _fail(self, st, err, started):
        r = self._r
        failure = {'stage': err.stage, 'reason': err.reason, 'restart_stage': err.result.get('stage') or ''}
        back = {}
        if flow.rollback_can_switch_back(r, st):
            origin = flow.rollback_from(r, st)
            back = self._switch_back(flow.rollback_revert_args(r, st, failure), flow.rollback_revert_restart_args(r),
                                     flow.rollback_health_args(r, flow.release_version(r['releases'], origin), fail_on='never',
                                                               successes=False))
        try:
            self._unlock(st, r['base_dir'])
        except flow.StepFailed as e:
            self._warnings.append('releasing the deploy lock after the failure: %s' % e.reason)
        out = flow.rollback_failed_result(r, st, self._host, time.time() - started, failure, back)
        return dict(failed=True, changed=out['changed'], result=out,
                    failure={'stage': failure['stage'], 'reason': failure['reason']},
                    msg=flow.rollback_failure_summary(r, st, self._host, failure, back))
