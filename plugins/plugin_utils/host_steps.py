# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""What the actions that drive one Linux host share (host_deploy, release_switch): running the remote steps
with a progress line each, and the one switch-back path - current back to the release the host came from,
the service restarted and verified on it - that a failed deploy, a failed canary host and a failed rollback
all take."""

from __future__ import annotations

import os

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import parse_checksum, validate_binary_name
from ansible_collections.hotswap.deploy.plugins.module_utils.release_content import content_manifest, make_release_id
from ansible_collections.hotswap.deploy.plugins.plugin_utils import host_flow as flow
from ansible_collections.hotswap.deploy.plugins.plugin_utils.release_files import resolve_release_files

display = Display()


class ControllerGone(AnsibleError):
    """ansible-playbook died while this worker ran the steps: stop at once, as a killed run of tasks would."""


# The settings every host action takes the same way: how the service is waited for and probed, the lock.
PROBE_SETTINGS_SPEC = dict(
    ready_timeout=dict(type='float', default=60),
    drain_timeout=dict(type='float', default=60),
    health_retries=dict(type='int', default=20),
    health_interval=dict(type='float', default=1),
    health_successes=dict(type='int', default=2),
    health_timeout=dict(type='float', default=3),
    lock_stale_after=dict(type='int', default=0),
    service=dict(type='dict', required=True),
)
# host_deploy and release_switch restart the one service of the app: how, too.
SHARED_SETTINGS_SPEC = dict(PROBE_SETTINGS_SPEC, restart_signal=dict(type='str', default='SIGHUP'),
                            pid_file=dict(type='str', default=''))


class HostStepsAction(ActionBase):
    """ActionBase for one host's steps. Subclasses set ARGS_SPEC and implement run_steps(args)."""

    TRANSFERS_FILES = False
    ARGS_SPEC = {}
    # The role variable that builds the settings, named in the error on bad arguments.
    SETTINGS_VAR = 'the settings variable of the role'

    def run(self, tmp=None, task_vars=None):
        result = super(HostStepsAction, self).run(tmp, task_vars)
        self._vars = task_vars or {}
        self._warnings = []
        # Whether a step changed the host, as the tasks of the steps would have reported it (the lock is
        # only held for the run: not a change).
        self._changed = False
        # Workers run in their own session: a killed ansible-playbook does not take this one with it.
        self._controller = os.getppid()
        checked = ArgumentSpecValidator(self.ARGS_SPEC).validate(self._task.args)
        if checked.error_messages:
            result.update(failed=True, msg='%s: %s. Pass the settings the role builds (%s).' % (
                self._task.action, '; '.join(checked.error_messages), self.SETTINGS_VAR))
            return result
        self._host = self._vars.get('inventory_hostname', self._task.get_name())
        self._check = bool(self._task.check_mode)
        # Set by the subclass for its phase; _push fills _deferred_upload.
        self._one_run = False
        self._deferred_upload = None
        try:
            result.update(self.run_steps(checked.validated_parameters))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        if self._warnings:
            result['warnings'] = result.get('warnings', []) + self._warnings
        return result

    # -- the release ---------------------------------------------------------------------------------

    def _release_plan(self, s):
        """``(release id, content manifest)`` of the settings' artifact, release files and environment, as
        release_plan computes them; raises HotswapError on a bad binary name, checksum or release file."""
        validate_binary_name(s['binary'])
        sha = parse_checksum(s['checksum'])
        files = resolve_release_files(self, s['release_files'])
        manifest = content_manifest(s['binary'], files, s['service']['environment'], s['environment_secret'])
        return make_release_id(s['version'], sha, manifest), manifest

    # -- remote calls --------------------------------------------------------------------------------

    def _stage(self, stage):
        display.v('hotswap.deploy %s: %s' % (self._host, stage))

    def _check_controller(self):
        """A worker whose ansible-playbook was killed makes no further change: nobody would see or stop it,
        and a relaunch of the same run (same lock holder) could have its lock released under it."""
        if os.getppid() != self._controller:
            raise ControllerGone('%s on %s: ansible-playbook is gone; stopping before the next step.'
                                 % (self._task.action, self._host))

    def _call(self, stage, module, args):
        """One module run; its result as it is (failed or not)."""
        self._check_controller()
        self._stage(stage)
        try:
            res = self._execute_module(module_name=module, module_args=args, task_vars=self._vars)
        except (AnsibleConnectionFailure, ControllerGone):
            raise
        except AnsibleError as e:
            # Not a module result (e.g. no such module): failed like one, so the step's failure path still runs.
            res = dict(failed=True, msg='running %s: %s' % (module, e))
        self._warnings.extend(res.get('warnings') or [])
        self._changed |= bool(res.get('changed')) and module != 'hotswap.deploy.deploy_lock'
        return res

    def _module(self, stage, module, args):
        """One module run that must succeed: a failure raises StepFailed naming the stage."""
        return self._ok(stage, self._call(stage, module, args))

    @staticmethod
    def _ok(stage, res):
        """``res``, the result of a step that must succeed; a failure raises StepFailed naming the stage."""
        if res.get('failed') or res.get('unreachable'):
            failure = flow.failure_of(stage, res)
            raise flow.StepFailed(failure['stage'], failure['reason'], res)
        return res

    def _run_action(self, name, args, check_mode=None, **attrs):
        """Another action plugin of the collection (binary_upload: the push) on this host, as a task would;
        ``attrs`` are set on it first (known_probe); ``check_mode=True`` runs it as a check-mode task."""
        self._check_controller()
        task = self._task.copy()
        task.args = args
        if check_mode is not None:
            task.check_mode = check_mode
        action = self._shared_loader_obj.action_loader.get(
            name, task=task, connection=self._connection, play_context=self._play_context, loader=self._loader,
            templar=self._templar, shared_loader_obj=self._shared_loader_obj)
        if action is None:
            return dict(failed=True, msg='running %s: Ansible finds no such action plugin. Install the collection '
                                         'that provides it.' % name)
        for key, value in attrs.items():
            setattr(action, key, value)
        try:
            res = action.run(task_vars=self._vars)
        except (AnsibleConnectionFailure, ControllerGone):
            raise
        except AnsibleError as e:
            res = dict(failed=True, msg='running %s: %s' % (name, e))
        finally:
            # A temp dir it made and left (a deferred push) is this task's to remove at its end.
            self._cleanup_remote_tmp |= action._cleanup_remote_tmp
        self._warnings.extend(res.get('warnings') or [])
        # A check run forced on a real task (a read-only pre-check) changes nothing.
        self._changed |= bool(res.get('changed')) and not (task.check_mode and not self._task.check_mode)
        return res

    def _push(self, st, args, known_probe):
        """The binary_upload action. In one run (``self._one_run``: no hook before the cutover, not check mode) it
        stops after the transfer and ``self._deferred_upload`` holds the module's arguments for the cutover run's
        upload step (they hold secrets: kept out of ``st``, which the phases return)."""
        self._stage(flow.STAGE_UPLOAD)
        upload = self._run_action('hotswap.deploy.binary_upload', args, known_probe=known_probe,
                                  defer_module=self._one_run)
        self._uploaded(st, upload)
        self._deferred_upload = upload.get('deferred')

    def _uploaded(self, st, res):
        """The upload's result, from its own run or from the cutover run's upload step."""
        self._ok(flow.STAGE_UPLOAD, res)
        st['upload_changed'] = bool(res.get('changed'))

    def _unlock(self, st, base_dir):
        if st.pop('locked', False):
            self._module(flow.STAGE_UNLOCK, 'hotswap.deploy.deploy_lock',
                         dict(base_dir=base_dir, owner=st['owner'], state='absent'))

    # -- the one switch-back path ----------------------------------------------------------------------

    def _switch_back(self, activate_args, restart_args, health_args, traffic_back=None, verify_unmoved=False):
        """The switch back of every rollout (deploy, canary abort, rollback, blue-green); nothing raises, every
        outcome is returned for the summary (``reverted``, ``revert_error``, ``restart``, ``health``, and what
        ``traffic_back`` returned).

        1. ``traffic_back()``: where a load balancer was moved to the new release (blue-green's nginx and
           slots), put it back first, so requests reach the previous release at once;
        2. current back to ``activate_args['release_id']``, the failed release marked failed (None: current
           never moved);
        3. the service restarted there (``restart_args``; None where the previous release never stopped);
        4. the previous release verified (``health_args``), when current moved back, or always with
           ``verify_unmoved`` (blue-green: the old slot, through the load balancer)."""
        back = dict(traffic_back() or {}) if traffic_back else {}
        if activate_args:
            revert = self._call('Switch current back to the previous release', 'hotswap.deploy.release_activate',
                                activate_args)
            if revert.get('failed'):
                back['revert_error'] = revert.get('msg') or 'no message'
            elif revert.get('switched'):
                back['reverted'] = True
        if back.get('reverted') and restart_args:
            back['restart'] = self._call('Restart the service on the previous release',
                                         'hotswap.deploy.graceful_restart', restart_args)
        if health_args and (back.get('reverted') or verify_unmoved):
            health = self._call('Verify the previous release serves again', 'hotswap.deploy.health_check',
                                health_args)
            back['health'] = health.get('outcome')
        return back
