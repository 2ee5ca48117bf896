# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""plugin_utils.host_steps: how HostStepsAction runs another action plugin (_run_action) and one module (_call)
on the host, and what each run counts towards the change the host action reports.

The action is hotswap.deploy.host_deploy, built as test_host_deploy builds it, with a real ansible Task (its
copy() is what _run_action hands the other action) and the attributes run() sets before the steps; the fakes
are only what the two methods call: the action loader's plugin and _execute_module.
"""

from __future__ import annotations

import os
import types

import pytest

from core_compat import import_controller

MODULE = 'hotswap.deploy.host_deploy'
SHELL = 'sh'
TMPDIR = '/tmp/ansible-tmp-hs'

errors = import_controller('ansible.errors')
Task = import_controller('ansible.playbook.task').Task
ControllerGone = import_controller('ansible_collections.hotswap.deploy.plugins.plugin_utils.host_steps').ControllerGone

UPLOAD = 'hotswap.deploy.binary_upload'
LOCK = 'hotswap.deploy.deploy_lock'


class NoHost(object):
    """No module run is scripted: a test that needs one sets _execute_module itself."""

    transfers = []

    def execute_module(self, **kw):
        raise AssertionError('unexpected module run: %r' % (kw,))


class FakeAction(object):
    """The plugin the action loader returns: run(task_vars) answers ``answer`` (a dict) or raises it."""

    def __init__(self, answer):
        self.answer = answer
        self.runs = []
        self._cleanup_remote_tmp = False     # ActionBase's: True once it made Ansible's temp dir on the host

    def run(self, tmp=None, task_vars=None):
        self.runs.append(task_vars)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return dict(self.answer)


class FakeActionLoader(object):
    """action_loader.get(name, **kw): the fake plugin, each call recorded as (name, kw)."""

    def __init__(self, plugin):
        self.plugin = plugin
        self.calls = []

    def get(self, name, *args, **kw):
        assert not args, args
        self.calls.append((name, kw))
        return self.plugin


@pytest.fixture
def action(make_action):
    """Return build(check_mode=False, answer=None): the host_deploy action as run() leaves it before run_steps,
    its task a real Task in check mode or not, its action loader answering ``answer`` from the plugin's run."""
    def build(check_mode=False, answer=None):
        a = make_action(dict(settings={}), NoHost())
        a._task = Task.load(dict(action=MODULE, args=dict(settings=dict(app='demo'))))
        a._task.check_mode = check_mode
        a._vars = {'inventory_hostname': 'web1', 'some_var': 1}
        a._warnings = []
        a._changed = False
        a._controller = os.getppid()
        a._host = 'web1'
        a._check = check_mode
        plugin = FakeAction(dict(changed=False) if answer is None else answer)
        # ActionBase.__init__ of ansible-core 2.19 ignores the shared_loader_obj it is given: set it afterwards.
        a._shared_loader_obj = types.SimpleNamespace(action_loader=FakeActionLoader(plugin))
        return a
    return build


def loaded(a):
    """The one action_loader.get call: (name, its keyword arguments)."""
    calls = a._shared_loader_obj.action_loader.calls
    assert len(calls) == 1, calls
    return calls[0]


def runs(a):
    return a._shared_loader_obj.action_loader.plugin.runs


# -- _run_action ---------------------------------------------------------------------------------------------

def test_run_action_runs_a_copy_of_the_task_with_the_args_and_counts_its_change(action):
    a = action(answer=dict(changed=True, warnings=['slow disk']))
    res = a._run_action(UPLOAD, dict(src='/dist/demo', dest='/opt/demo'))
    assert res == dict(changed=True, warnings=['slow disk'])
    assert a._changed is True
    name, kw = loaded(a)
    assert name == UPLOAD
    task = kw['task']
    assert task is not a._task and task.args == dict(src='/dist/demo', dest='/opt/demo')
    assert not task.check_mode
    # The host action's own task is left as it was.
    assert a._task.args == dict(settings=dict(app='demo'))
    # The rest of the host action's context goes to the other action as it is.
    assert kw['connection'] is a._connection and kw['play_context'] is a._play_context
    assert kw['loader'] is a._loader and kw['templar'] is a._templar
    assert kw['shared_loader_obj'] is a._shared_loader_obj
    assert runs(a) == [a._vars]
    assert a._warnings == ['slow disk']


def test_run_action_that_changes_nothing_leaves_the_change_alone(action):
    a = action(answer=dict(changed=False))
    a._run_action(UPLOAD, dict(src='/dist/demo'))
    assert a._changed is False
    # A change counted before stays counted.
    a._changed = True
    a._run_action(UPLOAD, dict(src='/dist/demo'))
    assert a._changed is True


@pytest.mark.parametrize('made', [True, False])
def test_a_temp_dir_the_other_action_made_is_this_tasks_to_remove(action, made):
    """A deferred push leaves its temp dir on the connection for the cutover run: removed at this task's end."""
    a = action(answer=dict(changed=True, deferred={'src': '/home/u/.ansible/tmp/ansible-tmp-1/app'}))
    a._shared_loader_obj.action_loader.plugin._cleanup_remote_tmp = made
    a._cleanup_remote_tmp = False
    a._run_action('hotswap.deploy.binary_upload', {})
    assert a._cleanup_remote_tmp is made


def test_run_action_sets_the_attrs_on_the_other_action(action):
    a = action(answer=dict(changed=False))
    a._run_action(UPLOAD, dict(src='/dist/demo'), known_probe=dict(present=True))
    assert a._shared_loader_obj.action_loader.plugin.known_probe == dict(present=True)


def test_a_forced_check_run_on_a_real_task_is_a_read_only_pre_check(action):
    a = action(answer=dict(changed=True))
    res = a._run_action(UPLOAD, dict(src='/dist/demo'), check_mode=True)
    assert res['changed'] is True
    _name, kw = loaded(a)
    assert kw['task'].check_mode is True and kw['task'].args == dict(src='/dist/demo')
    # Only the copy runs in check mode; what it would change is not a change of this run.
    assert not a._task.check_mode
    assert a._changed is False


def test_a_check_run_of_a_check_mode_task_reports_what_it_would_change(action):
    for forced in (None, True):
        a = action(check_mode=True, answer=dict(changed=True))
        kw = dict(check_mode=forced) if forced is not None else {}
        a._run_action(UPLOAD, dict(src='/dist/demo'), **kw)
        # A --check deploy reports what it would change.
        assert loaded(a)[1]['task'].check_mode is True
        assert a._changed is True, forced


def test_an_ansible_error_of_the_other_action_is_a_failed_result(action):
    a = action(answer=errors.AnsibleError('boom'))
    res = a._run_action(UPLOAD, dict(src='/dist/demo'))
    assert res['failed'] is True
    assert UPLOAD in res['msg'] and 'boom' in res['msg']
    assert res['msg'].startswith('running %s: ' % UPLOAD)
    assert a._changed is False and a._warnings == []


@pytest.mark.parametrize('error', [errors.AnsibleConnectionFailure('host went away'), ControllerGone('gone')],
                         ids=['connection', 'controller'])
def test_a_lost_connection_or_controller_in_the_other_action_propagates(action, error):
    a = action(answer=error)
    with pytest.raises(type(error)) as e:
        a._run_action(UPLOAD, dict(src='/dist/demo'))
    assert e.value is error
    assert a._changed is False


def test_run_action_stops_before_loading_when_the_controller_is_gone(action, monkeypatch):
    a = action(answer=dict(changed=True))
    monkeypatch.setattr(os, 'getppid', lambda: a._controller + 1)
    with pytest.raises(ControllerGone) as e:
        a._run_action(UPLOAD, dict(src='/dist/demo'))
    assert 'ansible-playbook is gone' in str(e.value) and 'web1' in str(e.value)
    assert a._shared_loader_obj.action_loader.calls == []


# -- _call ---------------------------------------------------------------------------------------------------

def execute(a, answer):
    """_execute_module answers ``answer`` (a dict) or raises it; the runs are recorded."""
    calls = []

    def fake(module_name=None, module_args=None, task_vars=None, **kw):
        calls.append((module_name, module_args, task_vars))
        if isinstance(answer, BaseException):
            raise answer
        return dict(answer)
    a._execute_module = fake
    return calls


def test_call_runs_the_module_with_the_args_and_the_task_vars(action):
    a = action()
    calls = execute(a, dict(changed=False, outcome='pass', warnings=['retried once']))
    res = a._call('Verify the service', 'hotswap.deploy.health_check', dict(url='http://127.0.0.1/healthz'))
    assert res == dict(changed=False, outcome='pass', warnings=['retried once'])
    assert calls == [('hotswap.deploy.health_check', dict(url='http://127.0.0.1/healthz'), a._vars)]
    assert a._warnings == ['retried once'] and a._changed is False


def test_call_of_a_module_that_cannot_run_is_a_failed_result(action):
    a = action()
    execute(a, errors.AnsibleError('no module'))
    res = a._call('Lock', 'hotswap.deploy.nosuch', {})
    assert res['failed'] is True
    assert res['msg'].startswith('running hotswap.deploy.nosuch: ') and 'no module' in res['msg']
    assert a._changed is False


@pytest.mark.parametrize('error', [errors.AnsibleConnectionFailure('host went away'), ControllerGone('gone')],
                         ids=['connection', 'controller'])
def test_call_lets_a_lost_connection_or_controller_through(action, error):
    a = action()
    execute(a, error)
    with pytest.raises(type(error)) as e:
        a._call('Restart', 'hotswap.deploy.graceful_restart', {})
    assert e.value is error


def test_the_lock_is_not_a_change_another_module_is(action):
    a = action()
    execute(a, dict(changed=True))
    a._call('Lock', LOCK, dict(state='present'))
    assert a._changed is False
    a._call('Switch', 'hotswap.deploy.release_activate', dict(release_id='2.0.0'))
    assert a._changed is True
    # A later unchanged run does not take the change back.
    execute(a, dict(changed=False))
    a._call('Unlock', LOCK, dict(state='absent'))
    assert a._changed is True


def test_call_stops_before_the_module_when_the_controller_is_gone(action, monkeypatch):
    a = action()
    calls = execute(a, dict(changed=True))
    monkeypatch.setattr(os, 'getppid', lambda: a._controller + 1)
    with pytest.raises(ControllerGone):
        a._call('Switch', 'hotswap.deploy.release_activate', {})
    assert calls == [] and a._changed is False


def test_an_unknown_action_is_a_failed_step(action):
    a = action()
    a._shared_loader_obj.action_loader.get = lambda name, **kw: None
    res = a._run_action('hotswap.deploy.no_such_action', {})
    assert res['failed'] and 'running hotswap.deploy.no_such_action' in res['msg'] and 'no such action' in res['msg']


# -- _switch_back: the one switch-back path of every rollout -----------------------------------------------------

ACTIVATE = 'hotswap.deploy.release_activate'
RESTART = 'hotswap.deploy.graceful_restart'
HEALTH = 'hotswap.deploy.health_check'


def scripted(a, answers):
    """_execute_module answers by module name (a dict each); the runs are recorded in order."""
    calls = []

    def fake(module_name=None, module_args=None, task_vars=None, **kw):
        calls.append((module_name, module_args))
        return dict(answers[module_name])
    a._execute_module = fake
    return calls


def test_switch_back_moves_current_restarts_and_verifies(action):
    a = action()
    calls = scripted(a, {ACTIVATE: dict(changed=True, switched=True), RESTART: dict(changed=True, strategy='signal'),
                         HEALTH: dict(changed=False, outcome='pass')})
    back = a._switch_back(dict(release_id='1.0.0'), dict(name='demo'), dict(url='http://127.0.0.1:8080/healthz'))
    assert [c[0] for c in calls] == [ACTIVATE, RESTART, HEALTH]
    assert calls[0][1] == dict(release_id='1.0.0')
    assert back == dict(reverted=True, restart=dict(changed=True, strategy='signal'), health='pass')


def test_switch_back_when_current_did_not_move_runs_nothing_more(action):
    a = action()
    calls = scripted(a, {ACTIVATE: dict(changed=False, switched=False)})
    assert a._switch_back(dict(release_id='1.0.0'), dict(name='demo'), dict(url='u')) == {}
    assert [c[0] for c in calls] == [ACTIVATE]


def test_switch_back_that_fails_to_move_current_reports_it_and_verifies_nothing(action):
    a = action()
    calls = scripted(a, {ACTIVATE: dict(failed=True, msg='disk full')})
    assert a._switch_back(dict(release_id='1.0.0'), dict(name='demo'), dict(url='u')) == dict(revert_error='disk full')
    assert [c[0] for c in calls] == [ACTIVATE]


def test_switch_back_puts_traffic_back_first_and_verifies_an_unmoved_current(action):
    # Blue-green: nginx and the slot first; nothing to restart (the old slot never stopped); the old slot is
    # checked even when current never moved, and even when moving it back failed.
    a = action()
    order = []
    calls = scripted(a, {ACTIVATE: dict(failed=True, msg='no such release'), HEALTH: dict(outcome='pass')})

    def traffic_back():
        order.append('traffic')
        assert calls == []
        return dict(scale_down='stops in 60 s')
    back = a._switch_back(dict(release_id='1.0.0'), None, dict(url='http://127.0.0.1/healthz'),
                          traffic_back=traffic_back, verify_unmoved=True)
    assert order == ['traffic'] and [c[0] for c in calls] == [ACTIVATE, HEALTH]
    assert back == dict(scale_down='stops in 60 s', revert_error='no such release', health='pass')

    calls = scripted(a, {HEALTH: dict(outcome='fail')})
    back = a._switch_back(None, None, dict(url='u'), traffic_back=dict, verify_unmoved=True)
    assert [c[0] for c in calls] == [HEALTH] and back == dict(health='fail')
