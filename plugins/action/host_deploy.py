# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""hotswap.deploy.host_deploy: one Linux host's deploy as one task.

Why an action plugin (docs/development.md): each task costs the controller about as much as a module run,
and the YAML flow took some 50 tasks per host, most of them set_fact and Jinja deciding what to do next.
Here the controller runs the remote modules one after the other - the lock run, the transfer of the file, one
release_cutover run that moves it into its release, installs the units, switches and restarts, then the unlock:
three module runs, one on a re-run of the live release (with hooks, or in check mode, the upload is a run of
its own) - and every decision is a tested function of plugins/plugin_utils/host_flow.py.
"""

from __future__ import annotations

import time

from ansible_collections.hotswap.deploy.plugins.filter.lock_owner import lock_owner
from ansible_collections.hotswap.deploy.plugins.module_utils.common import STRATEGIES, HotswapError
from ansible_collections.hotswap.deploy.plugins.plugin_utils import host_flow as flow
from ansible_collections.hotswap.deploy.plugins.plugin_utils.host_steps import SHARED_SETTINGS_SPEC, HostStepsAction

MODULE = 'hotswap.deploy.host_deploy'

SETTINGS_SPEC = dict(
    app=dict(type='str', required=True),
    version=dict(type='str', required=True),
    checksum=dict(type='str', default=''),
    binary=dict(type='str', required=True),
    artifact=dict(type='str', default=''),
    artifact_url=dict(type='str', default=''),
    artifact_headers=dict(type='dict', default={}, no_log=True),
    artifact_username=dict(type='str', default=''),
    artifact_password=dict(type='str', default='', no_log=True),
    artifact_format=dict(type='str', default='auto'),
    artifact_strip_components=dict(type='int', default=0),
    artifact_max_size=dict(type='int', default=1024 ** 3),
    base_dir=dict(type='str', required=True),
    restart_strategy=dict(type='str', required=True, choices=list(STRATEGIES)),
    keep=dict(type='int', default=5),
    deploy_id=dict(type='str', default=''),
    job_id=dict(type='str', default=''),
    release_files=dict(type='list', elements='dict', default=[]),
    environment_secret=dict(type='dict', default={}, no_log=True),
    config_reload=dict(type='dict', default={}),
    config_probe=dict(type='dict', default={}),
    hooks=dict(type='dict', default={}),
    service_unit=dict(type='str', required=True),
    socket_unit=dict(type='str', default=''),
    batch=dict(type='int'),
)
SETTINGS_SPEC.update(SHARED_SETTINGS_SPEC)

ARGS_SPEC = dict(
    settings=dict(type='dict', required=True, options=SETTINGS_SPEC),
    phase=dict(type='str', default='all', choices=list(flow.PHASE_CHOICES)),
    state=dict(type='dict'),
    failed_task=dict(type='str'),
    failed_result=dict(type='dict'),
)


class ActionModule(HostStepsAction):

    _VALID_ARGS = frozenset(ARGS_SPEC)
    ARGS_SPEC = ARGS_SPEC
    SETTINGS_VAR = 'deploy_host__settings'

    def run_steps(self, args):
        self._s = args['settings']
        return self._run_phase(args)

    # -- phases --------------------------------------------------------------------------------------

    def _run_phase(self, args):
        phase = args['phase']
        # Nothing runs between the steps of 'all' (no hooks): the push's module run and the cutover are one
        # release_cutover run. Check mode cannot switch to a release it has not staged.
        self._one_run = phase == 'all' and not self._check
        if phase in ('all', 'begin'):
            st = {'started': time.time()}
            try:
                self._begin(st)
            except flow.StepFailed as e:
                return self._failed_before_lock(e) if not st.get('locked') else self._fail(st, e)
            if st.get('live'):
                return self._finished(st, flow.live_result(self._s, st, self._host, time.time() - st['started']))
            if phase == 'begin':
                return self._state_result(st)
            phases = flow.ALL_PHASES
        else:
            st = dict(args['state'] or {})
            if phase == 'abort':
                return self._abort(st, args)
            phases = (phase,)
        try:
            for name in phases:
                getattr(self, '_' + name)(st)
        except flow.StepFailed as e:
            return self._fail(st, e)
        if 'finish' in phases:
            return self._finished(st, flow.done_result(self._s, st, self._host, time.time() - st['started'],
                                                       self._check))
        return self._state_result(st)

    def _begin(self, st):
        s = self._s
        flow.check_inputs(s)
        self._plan(st)
        lock = self._module(flow.STAGE_LOCK, 'hotswap.deploy.deploy_lock', flow.lock_args(s, st))
        if lock.get('live'):
            st.update(live=True, previous=st['release_id'])
            return
        before = lock.get('releases_state') or {}
        st.update(locked=True, previous=before.get('current'),
                  releases=[dict(release_id=r.get('release_id'), version=r.get('version'))
                            for r in before.get('releases') or []],
                  user=lock.get('service_user') or {}, release_present=lock.get('release_present'),
                  host_platform=lock.get('host_platform'))
        if before.get('current_blocked'):
            raise flow.StepFailed(flow.STAGE_CURRENT, 'Deploying %s on %s: %s' % (
                s['app'], self._host, ' '.join(before.get('problems') or [])))
        if not s['service']['create_user'] and not st['user'].get('exists'):
            raise flow.StepFailed(flow.STAGE_USER_CHECK, flow.missing_user_msg(s, self._host))

    def _plan(self, st):
        s = self._s
        try:
            flow.check_settings(s)
            release_id, manifest = self._release_plan(s)
            holder = lock_owner(s['app'], 'deploy ' + release_id, s['job_id'], s['deploy_id'])
        except HotswapError as e:
            raise flow.StepFailed(flow.STAGE_PLAN, e.msg)
        st.update(release_id=release_id, owner=holder['owner'], reclaim_key=holder['reclaim_key'],
                  content=dict(files=manifest['files'], environment=manifest['environment']))

    def _upload(self, st):
        if self._s['service']['create_user'] and flow.user_first(st):
            self._ensure_user(st, flow.STAGE_USER_FIRST, dirs=False)
        self._push(st, flow.upload_args(self._s, st), flow.known_probe(st))

    def _install(self, st):
        self._ensure_service_user(st)
        self._cutover(st, units=True, switch=False)

    def _activate(self, st):
        self._cutover(st, units=False, switch=True)

    def _install_and_activate(self, st):
        """Without a hook between them, the units, the switch and the restart are one module run."""
        self._ensure_service_user(st)
        self._cutover(st, units=True, switch=True)

    def _cutover(self, st, units, switch):
        # Check mode cannot switch to a release it has not staged.
        switch = switch and not (self._check and st.get('upload_changed'))
        if not units and not switch:
            return
        args = flow.cutover_args(self._s, st, units, switch)
        if self._one_run:
            args = flow.one_run_steps(args, self._deferred_upload)
        res = self._call(flow.cutover_stage(args), 'hotswap.deploy.release_cutover', args)
        st.update(flow.cutover_facts(st, res))
        if res.get('failed') or res.get('unreachable'):
            failure = flow.failure_of(flow.cutover_failed_stage(res), res)
            raise flow.StepFailed(failure['stage'], failure['reason'], res)

    def _verify(self, st):
        if not flow.needs_verify(st, self._check):
            return
        health = self._module(flow.STAGE_VERIFY, 'hotswap.deploy.health_check',
                              flow.health_args(self._s, flow.expected_version(self._s)))
        st['health_outcome'] = health.get('outcome')

    def _finish(self, st):
        self._unlock(st, self._s['base_dir'])

    # -- steps ---------------------------------------------------------------------------------------

    def _ensure_service_user(self, st):
        # Created before the upload already when release files name it.
        self._ensure_user(st, flow.STAGE_USER, dirs=True,
                          user=self._s['service']['create_user'] and not flow.user_first(st))

    def _ensure_user(self, st, stage, dirs, user=True):
        s = self._s
        if user and s['service']['create_user'] and not flow.user_is_ready(s, st.get('user')):
            self._module(stage, 'ansible.builtin.user', flow.user_args(s))
            st['user'] = dict(exists=True, group=s['service']['service_group'], home='/nonexistent',
                              shell='/usr/sbin/nologin')
        for path in (s['service']['state_dirs'] if dirs else []):
            self._module(stage, 'ansible.builtin.file', flow.state_dir_args(s, path))

    def _undo(self, st):
        """Undo what the failed deploy changed: current back (the one switch-back path), or an adopted unit."""
        s = self._s
        plan = flow.switch_back_plan(st)
        back = {}
        if plan['revert']:
            back = self._switch_back(flow.revert_activate_args(s, st), flow.revert_restart_args(s, st),
                                     flow.health_args(s, flow.previous_version(s, st), fail_on='never'))
        if plan['unadopt'] and not back.get('reverted'):
            unadopt = self._call('Put back the units this deploy adopted', 'hotswap.deploy.service_units',
                                 flow.unadopt_args(s))
            if unadopt.get('units_changed'):
                back['unadopted'] = True
                back['restart'] = self._call('Restart the service under its own unit again',
                                             'hotswap.deploy.graceful_restart', flow.unadopt_restart_args(s))
        return back

    def _fail(self, st, err):
        """A step failed after the lock was taken: switch back, release the lock, fail with a summary."""
        failure = {'stage': err.stage, 'reason': err.reason}
        back = self._undo(st)
        try:
            self._unlock(st, self._s['base_dir'])
        except flow.StepFailed as e:
            self._warnings.append('releasing the deploy lock after the failure: %s' % e.reason)
        out = flow.failed_result(self._s, st, self._host, failure, back)
        res = dict(failed=True, changed=out['changed'], msg=flow.failure_summary(self._s, st, self._host, failure, back),
                   failure=failure, result=out, hotswap_handled=True)
        if st.get('restart_event'):
            res['restart_event'] = st['restart_event']
        return res

    def _failed_before_lock(self, err):
        # Nothing on the host was changed: the message is the step's own (the role's 'Fail as the step did').
        return dict(failed=True, changed=False, msg=err.reason, failure={'stage': err.stage, 'reason': err.reason},
                    hotswap_handled=True)

    def _abort(self, st, args):
        failed = args['failed_result'] or {}
        if failed.get('hotswap_handled'):
            return dict((k, failed.get(k)) for k in ('failed', 'changed', 'msg', 'failure', 'result', 'hotswap_handled'))
        failure = flow.failure_of(args['failed_task'] or 'unknown', failed)
        return self._fail(st, flow.StepFailed(failure['stage'], failure['reason']))

    def _finished(self, st, out):
        res = dict(changed=self._changed, result=out, facts=flow.hook_facts(self._s, st, self._host))
        if st.get('restart_event'):
            res['restart_event'] = st['restart_event']
        return res

    def _state_result(self, st):
        return dict(changed=self._changed, state=st, facts=flow.hook_facts(self._s, st, self._host))
