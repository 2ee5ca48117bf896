# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""hotswap.deploy.blue_green_deploy: one host's blue-green rollout as one task.

Why an action plugin (docs/development.md): the YAML flow took some 68 task executions per host, most of them
set_fact and Jinja deciding what to do next, and each costs the controller about as much as a module run.
Here the controller runs the remote modules one after the other and every decision is a tested function of
plugins/plugin_utils/blue_green_flow.py. With hooks the same steps run as phases, a hook between two
(roles/blue_green/tasks/phases.yml).
"""

from __future__ import annotations

import time

from ansible import constants as C
from ansible_collections.hotswap.deploy.plugins.filter.host_platform import host_platform
from ansible_collections.hotswap.deploy.plugins.filter.lock_owner import lock_owner
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.plugin_utils import blue_green_flow as flow
from ansible_collections.hotswap.deploy.plugins.plugin_utils.host_flow import STAGE_PLAN, StepFailed, failure_of, \
    known_probe, missing_user_msg, release_version, state_dir_args, user_args, user_is_ready
from ansible_collections.hotswap.deploy.plugins.plugin_utils.host_steps import PROBE_SETTINGS_SPEC, HostStepsAction

MODULE = 'hotswap.deploy.blue_green_deploy'

SETTINGS_SPEC = dict(
    app=dict(type='str', required=True),
    action=dict(type='str', default='deploy', choices=['deploy', 'switch_back']),
    version=dict(type='str', default=''),
    checksum=dict(type='str', default=''),
    artifact=dict(type='str', default=''),
    artifact_url=dict(type='str', default=''),
    release_id=dict(type='str', default=''),
    base_dir=dict(type='str', required=True),
    binary=dict(type='str', required=True),
    release_files=dict(type='list', elements='dict', default=[]),
    environment_secret=dict(type='dict', default={}, no_log=True),
    artifact_format=dict(type='str', default='auto'),
    artifact_strip_components=dict(type='int', default=0),
    ports=dict(type='dict', required=True),
    listen_address=dict(type='str', default='127.0.0.1'),
    service_type=dict(type='str', default='simple'),
    public_port=dict(type='raw', default=80),
    nginx_package=dict(type='str', default='nginx'),
    disable_default_site=dict(type='bool', default=True),
    upstream_keepalive=dict(type='int', default=32),
    upstream_keepalive_timeout=dict(type='int', default=30),
    proxy_read_timeout=dict(type='int', default=60),
    scale_down_delay=dict(type='int', default=300),
    keep=dict(type='int', default=5),
    deploy_id=dict(type='str', default=''),
    job_id=dict(type='str', default=''),
    hooks=dict(type='dict', default={}),
)
SETTINGS_SPEC.update(PROBE_SETTINGS_SPEC)

ARGS_SPEC = dict(
    settings=dict(type='dict', required=True, options=SETTINGS_SPEC),
    phase=dict(type='str', default='all', choices=list(flow.PHASE_CHOICES)),
    state=dict(type='dict'),
    failed_task=dict(type='str'),
    failed_result=dict(type='dict'),
)


SLOTS = 'hotswap.deploy.blue_green_slots'
RESTART = 'hotswap.deploy.graceful_restart'
HEALTH = 'hotswap.deploy.health_check'
ACTIVATE = 'hotswap.deploy.release_activate'


class ActionModule(HostStepsAction):

    _VALID_ARGS = frozenset(ARGS_SPEC)
    ARGS_SPEC = ARGS_SPEC
    SETTINGS_VAR = 'blue_green__settings'

    def run_steps(self, args):
        self._s = args['settings']
        phase = args['phase']
        # In one run, the pushed copy's move into its release is the cutover's first step (_push defers it).
        self._one_run = phase == 'all' and not self._check
        if phase in ('all', 'begin'):
            st = {'started': time.time()}
            try:
                self._check_and_read(st)
            except StepFailed as e:
                # Nothing was changed: the message is the check's own (hotswap_handled: the abort phase passes it on).
                return dict(failed=True, changed=False, msg=e.reason, failure={'stage': e.stage, 'reason': e.reason},
                            hotswap_handled=True)
            phases = flow.PHASES if phase == 'all' else ('begin',)
            if self._one_run:
                phases = flow.PHASES_IN_ONE_RUN
        else:
            st = dict(args['state'] or {})
            if phase == 'abort':
                return self._abort(st, args)
            phases = (phase,)
        try:
            for name in phases:
                getattr(self, '_' + name)(st)
        except StepFailed as e:
            return self._fail(st, e)
        if 'finish' in phases or 'cutover' in phases:
            return self._finished(st)
        return self._state_result(st)

    # -- before the lock: read-only -------------------------------------------------------------------------

    def _check_and_read(self, st):
        s, v = self._s, self._vars
        flow.check_inputs(s, self._host, host_platform(v.get('ansible_connection', ''), v.get('ansible_shell_type', ''),
                                                       v.get('ansible_os_family', '')))
        release_id = s['release_id']
        if flow.uploads(s):
            try:
                release_id = self._release_plan(s)[0]
            except HotswapError as e:
                raise StepFailed(STAGE_PLAN, e.msg)
        read = dict(base_dir=s['base_dir'], slots=list(flow.SLOTS), lb_config=flow.conf_path(s),
                    stat=[flow.DEFAULT_SITE, flow.NGINX_BINARY])
        if flow.uploads(s):
            read['release_id'] = release_id
        info = self._module(flow.STAGE_READ, 'hotswap.deploy.release_info', read)
        if flow.uploads(s):
            # A wrong checksum, a missing artifact or a binary for another OS/arch, before anything changes; the
            # read tells the check what its probe would (a release not staged yet, the host's platform).
            check = self._run_action('hotswap.deploy.binary_upload', flow.upload_args(s, dict(release_id=release_id),
                                                                                      check=True), check_mode=True,
                                     known_probe=known_probe(dict(info, release_id=release_id)))
            if check.get('failed'):
                raise StepFailed(flow.STAGE_CHECK, failure_of(flow.STAGE_CHECK, check)['reason'])
        refused = flow.refusal(s, info, self._host)
        if refused:
            raise StepFailed('Refuse what the role must not touch', refused)
        st.update(flow.plan(s, info, release_id))
        st.update(upload=flow.uploads(s), releases=[dict(release_id=r.get('release_id'), version=r.get('version'))
                                                    for r in info.get('releases') or []],
                  nginx_missing=flow.nginx_missing(info), remove_default_site=s['disable_default_site']
                  and flow.default_site_in_the_way(s, info))
        missing = flow.missing_release(s, st, info, self._host)
        if missing:
            raise StepFailed('Check that the release is there', missing)
        holder = lock_owner(s['app'], flow.lock_action(s, st['release_id']), s['job_id'], s['deploy_id'])
        st.update(owner=holder['owner'], reclaim_key=holder['reclaim_key'])

    # -- phases under the lock ------------------------------------------------------------------------------

    def _begin(self, st):
        """Take the lock, then set up the service user, nginx and the slot units; nothing of the release runs."""
        s = self._s
        lock = self._module(flow.STAGE_LOCK, 'hotswap.deploy.deploy_lock', flow.lock_args(s, st))
        st.update(locked=True, release_present=lock.get('release_present'), host_platform=lock.get('host_platform'))
        # Before anything is written: a missing user (create_user false) changes nothing.
        self._ensure_user(lock.get('service_user') or {})
        if st['nginx_missing']:
            self._stage(flow.STAGE_NGINX)
            res = self._run_action('ansible.builtin.package', dict(name=s['nginx_package'], state='present'))
            if res.get('failed'):
                raise StepFailed(**dict(failure_of(flow.STAGE_NGINX, res), result=res))
        # A deploy that finished between the first read and the lock would have moved nginx: checked here,
        # before anything is written.
        setup = self._module(flow.STAGE_UNITS, SLOTS, dict(
            app=s['app'], base_dir=s['base_dir'], units=dict((slot, flow.slot_unit(s, slot, self._managed())) for slot in flow.SLOTS),
            remove_default_site=st['remove_default_site'],
            expect_lb_config=dict(path=flow.conf_path(s), content=st['conf_orig'])))
        if setup.get('lb_config_moved'):
            raise StepFailed(flow.STAGE_CONCURRENT, flow.concurrent_switch_msg(s, self._host))
        st['units_changed'] = setup.get('units_changed') or []
        if flow.unit_changed_on_live(st, st['units_changed']):
            st.update(switch=True, target=flow.OTHER[st['live']])

    def _managed(self):
        return C.config.get_config_value('DEFAULT_MANAGED_STR', variables=self._vars) or 'Ansible managed'

    def _ensure_user(self, user):
        s = self._s
        if not s['service']['create_user']:
            if not user.get('exists'):
                raise StepFailed(flow.STAGE_USER_CHECK, missing_user_msg(s, self._host))
        elif not user_is_ready(s, user):
            self._module(flow.STAGE_USER, 'ansible.builtin.user', user_args(s))
        for path in s['service']['state_dirs']:
            self._module(flow.STAGE_STATE_DIRS, 'ansible.builtin.file', state_dir_args(s, path))

    def _upload(self, st):
        if not st['upload']:
            return
        self._push(st, flow.upload_args(self._s, st), known_probe(st))

    # Each step after the upload runs as its own module run (with hooks between the phases, or in check mode)
    # or within one blue_green_cutover run (_cutover); either way its result is read by the same method.

    def _start(self, st):
        """Point the target slot at the release, start it there and verify it directly (on a switch users do
        not reach that slot yet)."""
        s = self._s
        self._linked(st, self._call(flow.STAGE_LINK, SLOTS, flow.link_args(s, st)))
        if not (self._check and (st['link_changed'] or st['units_changed'])):
            self._started(st, self._call(flow.STAGE_START, RESTART, flow.restart_args(s, st)))
        if st['switch'] and not self._check:
            self._ok(flow.STAGE_DIRECT, self._call(flow.STAGE_DIRECT, HEALTH, flow.direct_check_args(s, st)))

    def _switch(self, st):
        """nginx to the target slot, then current to the release."""
        s = self._s
        content = flow.switch_config(s, st)
        t0 = time.time()
        self._point_nginx(st, content, st['target'])
        st['switch_seconds'] = round(time.time() - t0, 3)
        if not (self._check and st.get('upload_changed')):
            self._activated(st, self._call(flow.STAGE_ACTIVATE, ACTIVATE, flow.activate_args(s, st)))

    def _point_nginx(self, st, content, primary):
        """One nginx_switch run: a config nginx -t rejects is replaced by the previous one at once (no reload)."""
        previous = st.get('conf_text', st['conf_orig'])
        # Noted before the write: if the run dies half-way, the switch back puts the original back.
        st['conf_text'] = content
        self._nginx_pointed(st, self._call(flow.STAGE_SWITCH, 'hotswap.deploy.nginx_switch',
                                           dict(path=flow.conf_path(self._s), content=content)), previous, primary)

    def _verify(self, st):
        if not self._check:
            self._verified(st, self._call(flow.STAGE_PUBLIC, HEALTH, flow.public_check_args(self._s, st)))

    def _finish(self, st):
        """Record the live slot, scale the old one down, prune and release the lock, in one run."""
        self._recorded(st, self._call(flow.STAGE_RECORD, SLOTS, flow.finish_args(self._s, st, self._check)))

    def _cutover(self, st):
        """start, switch, verify and finish in one module run. Each step's result is read in order as its own
        run's would be, so a failure stops the reading where the run stopped, with the same stage and reason."""
        steps = flow.cutover_steps(self._s, st)
        if self._deferred_upload:
            steps['upload'] = self._deferred_upload
        res = self._call(flow.STAGE_START, 'hotswap.deploy.blue_green_cutover', steps)
        done = res.get('steps') or {}
        if not done:
            # The run died or refused its arguments: what it changed is not known, so the switch back undoes
            # all it could have (each undo step changes nothing where nothing was changed).
            st.update(conf_text=steps['switch']['content'], link_changed=True, restart_changed=True, switched=True)
            self._ok(flow.STAGE_START, dict(res, failed=True))
        if 'upload' in done:
            self._uploaded(st, done['upload'])
        self._linked(st, done['slots'])
        if 'restart' in done:
            self._started(st, done['restart'])
        if 'direct_check' in done:
            self._ok(flow.STAGE_DIRECT, done['direct_check'])
        if 'switch' in done:
            st['conf_text'] = steps['switch']['content']
            st['switch_seconds'] = done['switch'].get('seconds')
            self._nginx_pointed(st, done['switch'], st['conf_orig'], st['target'])
        if 'activate' in done:
            self._activated(st, done['activate'])
        if 'public_check' in done:
            self._verified(st, done['public_check'])
        if 'finish' in done:
            self._recorded(st, done['finish'])

    # -- what each step's result means ----------------------------------------------------------------------

    def _linked(self, st, res):
        self._ok(flow.STAGE_LINK, res)
        st.update(cancelled=bool(res.get('cancelled')), link_changed=bool(res.get('link_changed')))

    def _started(self, st, res):
        self._ok(flow.STAGE_START, res)
        st['restart_changed'] = bool(res.get('changed'))

    def _nginx_pointed(self, st, res, previous, primary):
        if res.get('rejected'):
            st['conf_text'] = previous
            raise StepFailed(flow.STAGE_REJECTED, flow.rejected_msg(self._s, self._host, primary, res))
        self._ok(flow.STAGE_SWITCH, res)

    def _activated(self, st, res):
        self._ok(flow.STAGE_ACTIVATE, res)
        st['switched'] = bool(res.get('switched'))

    def _verified(self, st, res):
        self._ok(flow.STAGE_PUBLIC, res)
        st['public_outcome'] = res.get('outcome')

    def _recorded(self, st, res):
        """A failure to record switches back (the rollout did not go through); a failed prune or unlock does
        not (the finishing run releases the lock after a failed prune)."""
        if res.get('unlocked'):
            st.pop('locked', None)
        if res.get('failed') or res.get('unreachable'):
            stage = flow.finish_stage(res)
            st['rolled_out'] = stage != flow.STAGE_RECORD
            self._ok(stage, res)
        st.update(scale_down=res.get('scale_down'), rolled_out=True)

    # -- a failure under the lock: the one switch-back path of the blue-green role -----------------------------

    def _restore(self, st, err):
        """Blue-green's part of the one switch back (``HostStepsAction._switch_back``): nginx back to the config it
        had (the old slot was never stopped, so nothing restarts), the failed slot stopped and pointed back at what
        it held; then current back with the new release marked failed, and the old slot checked through nginx."""
        s = self._s
        plan = flow.restore_plan(st)

        def traffic_back():
            done = {}
            if plan['lb']:
                res = self._call('Put the previous load balancer config back', 'hotswap.deploy.nginx_switch',
                                 dict(path=flow.conf_path(s), content=st['conf_orig']))
                if res.get('failed'):
                    done['lb_error'] = res.get('msg') or 'unknown error'
            args = flow.slot_restore_args(s, st, plan)
            if args:
                res = self._call('Stop the failed slot and point it back', SLOTS, args)
                if not res.get('failed'):
                    done['scale_down'] = res.get('scale_down')
            return done

        verify = bool(st['live']) and not self._check
        health = None
        if verify:
            version = release_version(st.get('releases'), st['live_release'])
            health = flow.health_args(s, flow.public_url(s), version, fail_on='never', successes=False)
        back = self._switch_back(flow.revert_activate_args(s, st) if plan['current'] else None, None, health,
                                 traffic_back=traffic_back, verify_unmoved=verify)
        back.update(stage=err.stage, reason=err.reason)
        return plan, back

    def _fail(self, st, err):
        if not st.get('locked') and not st.get('rolled_out'):
            # The lock itself failed: nothing was changed.
            return dict(failed=True, changed=False, msg=err.reason, failure={'stage': err.stage, 'reason': err.reason},
                        hotswap_handled=True)
        if st.get('rolled_out'):
            # After a rollout that went through (a failed prune): no switch back, the lock is released already.
            failure = {'stage': err.stage, 'reason': err.reason}
            return dict(failed=True, changed=self._changed, msg=err.reason, failure=failure,
                        result=dict(flow.done_result(self._s, st, self._host, time.time() - st['started']),
                                    failure=failure))
        plan, back = self._restore(st, err)
        try:
            self._unlock(st, self._s['base_dir'])
        except StepFailed as e:
            self._warnings.append('releasing the deploy lock after the failure: %s' % e.reason)
        out = flow.failed_result(self._s, st, self._host, time.time() - st['started'], plan, back)
        out['failure'] = {'stage': err.stage, 'reason': err.reason}
        msg = flow.failure_summary(self._s, st, self._host, plan, back)
        return dict(failed=True, changed=bool(out['changed']), msg=msg, failure=out['failure'], result=out,
                    hotswap_handled=True)

    def _abort(self, st, args):
        failed = args['failed_result'] or {}
        if failed.get('hotswap_handled'):
            return dict((k, failed.get(k)) for k in ('failed', 'changed', 'msg', 'failure', 'result', 'hotswap_handled'))
        if not st.get('locked'):
            return dict(failed=True, changed=False, msg=failed.get('msg') or 'the rollout failed',
                        failure=failure_of(args['failed_task'] or 'unknown', failed))
        failure = failure_of(args['failed_task'] or 'unknown', failed)
        return self._fail(st, StepFailed(failure['stage'], failure['reason']))

    # -- results ----------------------------------------------------------------------------------------

    def _finished(self, st):
        return dict(changed=self._changed, result=flow.done_result(self._s, st, self._host, time.time() - st['started']),
                    facts=flow.hook_facts(self._s, st, self._host))

    def _state_result(self, st):
        return dict(changed=self._changed, state=st, facts=flow.hook_facts(self._s, st, self._host))
