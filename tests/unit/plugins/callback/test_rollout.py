# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The hotswap.deploy.rollout callback fed objects shaped as Ansible's: a Host (get_name), a Task (name, action,
_role, run_once, _uuid) and a TaskResult (_host, _task, _result)."""

from __future__ import annotations

import glob
import json
import re
import types

import pytest
import yaml

from core_compat import controller_code

SECRET = 'hunter2-secret'


@pytest.fixture(scope='module')
def plugin():
    """The callback module, imported late: importing ansible's controller code flips is_controller for the
    module tests that run later in the same session (tests/unit/plugins/action/conftest.py)."""
    with controller_code():
        from ansible_collections.hotswap.deploy.plugins.callback import rollout
        yield rollout


class Display(object):
    verbosity = 0

    def __init__(self):
        self.lines, self.warnings = [], []

    def display(self, msg, **kw):
        self.lines.append(msg)

    def warning(self, msg, **kw):
        self.warnings.append(msg)


class Host(object):
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class Role(object):
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class Task(object):
    def __init__(self, name, action, role=None, run_once=False):
        self.name, self.action, self.run_once, self._uuid = name, action, run_once, name
        self._role = Role(role) if role else None

    def get_name(self):
        return ('%s : %s' % (self._role.get_name(), self.name)) if self._role else self.name


class Result(object):
    def __init__(self, host, task, result):
        self._host, self._task, self._result = Host(host), task, result


NOTE = Task('Note the hosts of this batch', 'ansible.builtin.set_fact', 'hotswap.deploy.canary', run_once=True)
DEPLOY = Task('Deploy the release', 'hotswap.deploy.host_deploy', 'hotswap.deploy.deploy_host')
RECORD = Task('Record the result of this host', 'ansible.builtin.set_fact', 'hotswap.deploy.deploy_host')
JUDGE = Task('Judge the batch', 'ansible.builtin.set_fact', 'hotswap.deploy.canary', run_once=True)


def play(hosts):
    """A play whose inventory holds ``hosts`` and makes batches of one."""
    inventory = types.SimpleNamespace(get_hosts=lambda pattern, order=None, ignore_restrictions=False:
                                      [Host(h) for h in (hosts if ignore_restrictions else hosts[:1])])
    return types.SimpleNamespace(hosts='web', order=None, serial=[1],
                                 get_variable_manager=lambda: types.SimpleNamespace(_inventory=inventory))


def rollout(cb):
    cb.v2_playbook_on_play_start(play(['web1', 'web2']))
    for task, status, res in [
            (NOTE, 'ok', {'ansible_facts': {'canary__batch': ['web1'], 'canary__batch_number': 1}}),
            (DEPLOY, 'ok', {'changed': True, 'invocation': {'module_args': {'settings': {'password': SECRET}}}}),
            (RECORD, 'ok', {'ansible_facts': {'deploy_host_result': {
                'app': 'myapp', 'release': '2.0.0-bb', 'previous_release': '1.0.0-aa', 'version': '2.0.0',
                'verdict': 'pass', 'seconds': 1.2, 'changed': True}}}),
            (JUDGE, 'ok', {'ansible_facts': {'canary__verdict': {'result': 'pass', 'metrics': 'm ok'}}})]:
        cb.v2_runner_on_start(Host('web1'), task)
        getattr(cb, 'v2_runner_on_' + status)(Result('web1', task, res))
    cb.v2_playbook_on_stats(None)


@pytest.fixture
def callback(plugin):
    return plugin.CallbackModule(display=Display())


def test_lines(callback):
    rollout(callback)
    lines = [re.sub(r'\d+\.\d s', 'N s', line) for line in callback._display.lines]
    assert lines[:3] == ['Batch 1/2 (hosts: web1): deploying', 'web1: deployed 2.0.0 (N s, verdict pass)',
                         'Batch 1 passed in N s']
    assert lines[3] == 'Rollout summary'
    assert lines[5].split() == ['web1', '1', '1.0.0-aa', '->', '2.0.0-bb', 'pass', '1.2', 'no']
    assert len(lines) == 6  # no report_dir: no report
    assert SECRET not in '\n'.join(lines)


def test_report(callback, tmp_path):
    callback._plugin_options['report_dir'] = str(tmp_path / 'reports')
    rollout(callback)
    html, = glob.glob(str(tmp_path / 'reports' / 'rollout-*.html'))
    assert callback._display.lines[-1] == 'Rollout report: %s' % html
    with open(html) as f:
        page = f.read()
    with open(html[:-len('.html')] + '.json') as f:
        data = json.load(f)
    assert 'data-host="web1"' in page and SECRET not in page
    assert [b['verdict'] for b in data['batches']] == ['pass'] and data['batches'][0]['metrics'] == 'm ok'


def test_unwritable_report_dir_warns(callback, tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    callback._plugin_options['report_dir'] = str(blocker / 'reports')
    rollout(callback)
    assert callback._display.warnings and 'could not write the report' in callback._display.warnings[0]


def test_a_play_without_rollout_says_nothing(callback):
    callback.v2_playbook_on_play_start(types.SimpleNamespace())  # no inventory to read: no batch count
    task = Task('Check the deploy inputs', 'ansible.builtin.assert')
    callback.v2_runner_on_start(Host('localhost'), task)
    callback.v2_runner_on_ok(Result('localhost', task, {'changed': False}))
    callback.v2_playbook_on_stats(None)
    assert callback._display.lines == []


def test_documentation(plugin):
    doc = yaml.safe_load(plugin.DOCUMENTATION)
    assert doc['name'] == 'rollout' and doc['type'] == plugin.CallbackModule.CALLBACK_TYPE == 'aggregate'
    assert plugin.CallbackModule.CALLBACK_NAME == 'hotswap.deploy.rollout'
    option = doc['options']['report_dir']
    assert option['env'] == [{'name': 'HOTSWAP_REPORT_DIR'}]
    assert option['ini'] == [{'section': 'callback_hotswap_rollout', 'key': 'report_dir'}]
