# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""hotswap.deploy.linear: ansible.builtin.linear with the objects loaded before the first batch frozen (gc.freeze),
and the tasks that only compute on the controller run in its main process instead of a forked worker."""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import yaml

from core_compat import import_controller

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


@pytest.fixture(scope='module')
def strategy():
    return import_controller('ansible_collections.hotswap.deploy.plugins.strategy.linear')


def test_it_is_the_builtin_linear_strategy(strategy):
    builtin = import_controller('ansible.plugins.strategy.linear')
    assert issubclass(strategy.StrategyModule, builtin.StrategyModule)
    # Only run and queueing a task are its own: batches, run_once, results, failures and handlers are linear's.
    dunder = {'__module__', '__doc__', '__qualname__', '__firstlineno__', '__static_attributes__'}
    own = set(vars(strategy.StrategyModule)) - dunder
    assert own == {'run', '_queue_task'}


def test_the_loaded_objects_are_frozen_once(strategy):
    kept = [object() for i in range(10)]
    try:
        gc.unfreeze()
        strategy.freeze_loaded_objects()
        frozen = gc.get_freeze_count()
        assert frozen > len(kept)
        # Later batches leave it as it is: objects made since are collected as usual.
        later = [object() for i in range(1000)]
        strategy.freeze_loaded_objects()
        assert gc.get_freeze_count() == frozen and later
    finally:
        gc.unfreeze()


def test_each_batch_freezes_before_linear_runs_it(strategy, monkeypatch):
    builtin = import_controller('ansible.plugins.strategy.linear')
    seen = []
    monkeypatch.setattr(builtin.StrategyModule, 'run', lambda self, iterator, play_context: seen.append(
        (gc.get_freeze_count() > 0, iterator, play_context)) or 'result')
    try:
        gc.unfreeze()
        plugin = strategy.StrategyModule.__new__(strategy.StrategyModule)
        assert plugin.run('it', 'pc') == 'result'
        assert seen == [(True, 'it', 'pc')]
    finally:
        gc.unfreeze()


@pytest.mark.parametrize('playbook', ['deploy.yml', 'rollback.yml'])
def test_every_play_of_the_playbooks_uses_it_unless_another_strategy_is_configured(playbook):
    with open(os.path.join(REPO, 'playbooks', playbook)) as f:
        plays = yaml.safe_load(f)
    strategies = set(play.get('strategy') for play in plays)
    assert len(strategies) == 1, strategies
    expr = strategies.pop()
    assert "lookup('ansible.builtin.config', 'DEFAULT_STRATEGY')" in expr and 'hotswap.deploy.linear' in expr


@pytest.mark.parametrize('configured,used', [
    ('linear', 'hotswap.deploy.linear'),
    # Spelled out, Ansible's own: the way to run the playbooks without this strategy.
    ('ansible.builtin.linear', 'ansible.builtin.linear'),
    ('ansible.legacy.linear', 'ansible.legacy.linear'),
    ('mitogen_linear', 'mitogen_linear'),
    ('free', 'free'),
    ('my.own.linear', 'my.own.linear'),
])
def test_the_strategy_a_play_gets(configured, used):
    with open(os.path.join(REPO, 'playbooks', 'deploy.yml')) as f:
        expr = yaml.safe_load(f)[0]['strategy']
    # regex_replace is re.sub (ansible.builtin.regex_replace).
    pattern, replacement = re.search(r"regex_replace\('([^']+)', '([^']+)'\)", expr).groups()
    assert re.sub(pattern, replacement, configured) == used


def test_it_knows_the_task_executor_of_this_ansible_core(strategy):
    # Every release the collection claims (scripts/core-matrix.sh runs this file on each).
    assert strategy.EXECUTOR_KIND in ('raw_result', 'task_result')

    class Unknown(object):
        def __init__(self, host, task, job_vars, play_context, something_new):
            pass
    assert strategy.executor_kind(Unknown) is None


def _task(action, **fields):
    """A task as the play loader leaves it: ``action`` resolved, the other fields set (or their defaults)."""
    task = import_controller('ansible.playbook.task').Task()
    task.action = action
    for name, value in fields.items():
        if name == 'loop_control':
            control = import_controller('ansible.playbook.loop_control').LoopControl()
            control.pause = value['pause']
            value = control
        setattr(task, name, value)
    return task


@pytest.mark.parametrize('action,fields,in_main', [
    ('ansible.builtin.set_fact', {}, True),
    ('set_fact', {}, True),
    ('ansible.legacy.assert', {}, True),
    ('ansible.builtin.fail', {}, True),
    ('ansible.builtin.debug', {}, True),
    ('ansible.builtin.validate_argument_spec', {}, True),
    ('ansible.builtin.include_tasks', {}, True),
    ('ansible.builtin.include_role', {}, True),
    ('ansible.builtin.set_fact', {'loop': [1, 2]}, True),
    # A worker of their own: they wait (and would hold up every host), or run for another host.
    ('ansible.builtin.set_fact', {'delegate_to': 'other'}, False),
    ('ansible.builtin.set_fact', {'until': ['a'], 'retries': 2}, False),
    ('ansible.builtin.debug', {'timeout': 5}, False),
    ('ansible.builtin.debug', {'async_val': 5}, False),
    ('ansible.builtin.debug', {'loop': [1], 'loop_control': {'pause': 1}}, False),
    # Everything else: a module, or an action that may connect or wait.
    ('ansible.builtin.command', {}, False),
    ('ansible.builtin.pause', {}, False),
    ('hotswap.deploy.host_deploy', {}, False),
])
def test_which_tasks_run_in_the_main_process(strategy, action, fields, in_main):
    assert strategy.runs_in_main_process(_task(action, **fields)) is in_main


def test_an_unknown_task_executor_keeps_every_task_in_its_worker(strategy, monkeypatch):
    monkeypatch.setattr(strategy, 'EXECUTOR_KIND', None)
    assert strategy.runs_in_main_process(_task('ansible.builtin.set_fact')) is False


PLAY = textwrap.dedent("""\
    - name: Controller-only tasks, in the main process or a worker
      hosts: all
      gather_facts: false
      strategy: "{{ strategy }}"
      tasks:
        - name: Template a value where the task runs
          ansible.builtin.set_fact:
            main_pid: "{{ lookup('ansible.builtin.pipe', 'echo $PPID') }}"
            doubled: "{{ n | int * 2 }}"

        - name: Template it in a worker (until waits, so it keeps its worker)
          ansible.builtin.set_fact:
            worker_pid: "{{ lookup('ansible.builtin.pipe', 'echo $PPID') }}"
          until: true
          retries: 1

        - name: Include a file per item
          ansible.builtin.include_tasks: add.yml
          loop: [1, 2]

        - name: Check a value
          ansible.builtin.assert:
            that: doubled | int == n * 2
            quiet: true

        - name: Fail one host and rescue it
          block:
            - name: Fail the second host
              ansible.builtin.fail:
                msg: "failed on {{ inventory_hostname }}"
              when: inventory_hostname == 'h2'
          rescue:
            - name: Note the failure
              ansible.builtin.set_fact:
                rescued: "{{ ansible_failed_result.msg }}"

        - name: Include a role whose spec the second host fails
          block:
            - name: Include the role
              ansible.builtin.include_role:
                name: checked
              vars:
                checked_count: "{{ 'many' if inventory_hostname == 'h2' else n }}"
          rescue:
            - name: Note the refusal
              ansible.builtin.set_fact:
                refused: "{{ ansible_failed_result.msg is search('checked_count') }}"

        - name: Show a value
          ansible.builtin.debug:
            msg: "{{ inventory_hostname }} doubled {{ doubled }}"

        - name: Write what this host saw
          ansible.builtin.copy:
            content: "{{ {'main_pid': main_pid | string, 'worker_pid': worker_pid | string, 'doubled': doubled | int,
                          'sum': sum | int,
                          'rescued': rescued | default(''), 'refused': refused | default(false),
                          'role_ran': role_ran | default(false)} | to_json }}"
            dest: "{{ out }}/{{ inventory_hostname }}.json"
            mode: "0600"
    """)

ROLE_SPEC = textwrap.dedent("""\
    argument_specs:
      main:
        short_description: A role with one checked option
        options:
          checked_count:
            type: int
            required: true
            description: A number.
    """)


def _run_play(tmp_path, strategy_name):
    work = tmp_path / strategy_name.replace('.', '-')
    (work / 'roles' / 'checked' / 'meta').mkdir(parents=True)
    (work / 'roles' / 'checked' / 'tasks').mkdir()
    (work / 'roles' / 'checked' / 'meta' / 'argument_specs.yml').write_text(ROLE_SPEC)
    (work / 'roles' / 'checked' / 'tasks' / 'main.yml').write_text(
        '- name: Note the role ran\n  ansible.builtin.set_fact:\n    role_ran: true\n')
    (work / 'add.yml').write_text(
        '- name: Add the item\n  ansible.builtin.set_fact:\n    sum: "{{ sum | default(0) | int + item }}"\n')
    (work / 'play.yml').write_text(PLAY)
    (work / 'out').mkdir()
    (work / 'ansible.cfg').write_text('[defaults]\n')
    (work / 'inventory').write_text('h1 n=1\nh2 n=2\n\n[all:vars]\nansible_connection=local\n'
                                    'ansible_python_interpreter=%s\n' % sys.executable)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, 'build', 'unit-collections'),
               ANSIBLE_ROLES_PATH=str(work / 'roles'), ANSIBLE_NOCOLOR='1', ANSIBLE_CONFIG=str(work / 'ansible.cfg'))
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'),
                             '-i', str(work / 'inventory'), str(work / 'play.yml'),
                             '-e', 'strategy=%s out=%s' % (strategy_name, work / 'out')],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, output
    seen = dict((host, json.loads((work / 'out' / ('%s.json' % host)).read_text())) for host in ('h1', 'h2'))
    return proc.pid, seen, output


def test_a_play_runs_as_with_linear_and_its_controller_tasks_fork_no_worker(tmp_path):
    pid, seen, output = _run_play(tmp_path, 'hotswap.deploy.linear')
    linear_pid, linear_seen, linear_output = _run_play(tmp_path, 'ansible.builtin.linear')
    for host in ('h1', 'h2'):
        # The set_fact was templated by ansible-playbook itself; the one with until by a worker it forked.
        assert seen[host].pop('main_pid') == str(pid)
        assert seen[host].pop('worker_pid') != str(pid)
        assert linear_seen[host].pop('main_pid') != str(linear_pid)
        linear_seen[host].pop('worker_pid')
    # The same values, failures, rescues and argument checks as linear's.
    assert seen == linear_seen
    assert seen['h1'] == dict(doubled=2, sum=3, rescued='', refused=False, role_ran=True)
    assert seen['h2'] == dict(doubled=4, sum=3, rescued='failed on h2', refused=True, role_ran=False)
    recap = [line for line in output.splitlines() if line.startswith(('h1 ', 'h2 '))]
    assert recap == [line for line in linear_output.splitlines() if line.startswith(('h1 ', 'h2 '))]


class _Executor(object):
    """Stands in for ansible-core's TaskExecutor: records what it was given, changes it as the real one does."""
    seen = {}

    def __init__(self, host, task, job_vars, *rest):
        self.seen.update(task=task, job_vars=job_vars)

    def run(self):
        self.seen['job_vars']['ansible_search_path'] = ['x']
        self.seen['task'].name = 'templated'
        return {'changed': False, 'ansible_facts': {'a': 1}}


class _Queue(object):
    """The results queue; ``refuse`` results it cannot take (as a pickling error would)."""

    def __init__(self, refuse=0):
        self.refuse, self.sent = refuse, []

    def send_task_result(self, *args, **kwargs):
        if self.refuse:
            self.refuse -= 1
            raise TypeError("cannot pickle 'generator' object")
        result = args[0]._return_data if hasattr(args[0], '_return_data') else args[2]
        self.sent.append(result)


class _Host(object):
    name = 'h1'


def _run_in_main_process(strategy, monkeypatch, queue, task, task_vars):
    _Executor.seen.clear()
    monkeypatch.setattr(strategy, 'TaskExecutor', _Executor)
    monkeypatch.setattr(strategy, 'plugin_loader', type('Loader', (), {'get_plugin_loader_namespace': staticmethod(
        lambda: None)}))
    plugin = type('Strategy', (), {'_loader': None, '_final_q': queue, '_variable_manager': None})()
    strategy.run_in_main_process(plugin, _Host(), task, task_vars, None)
    return _Executor.seen


def test_the_executor_gets_its_own_copies_of_the_task_and_the_variables(strategy, monkeypatch):
    # As in a forked worker: what the executor changes (the task it templates, the variables it adds to) stays its own.
    queue, task, task_vars = _Queue(), _task('ansible.builtin.set_fact', name='Set it'), {'n': 1}
    seen = _run_in_main_process(strategy, monkeypatch, queue, task, task_vars)
    assert task_vars == {'n': 1} and task.name == 'Set it'
    assert seen['task'] is not task and seen['task']._uuid == task._uuid and seen['task'].name == 'templated'
    assert queue.sent == [{'changed': False, 'ansible_facts': {'a': 1}}]


def test_a_result_the_queue_cannot_take_fails_the_task_not_the_run(strategy, monkeypatch):
    queue = _Queue(refuse=1)
    _run_in_main_process(strategy, monkeypatch, queue, _task('ansible.builtin.set_fact'), {})
    assert len(queue.sent) == 1 and queue.sent[0]['failed'] is True
    assert queue.sent[0]['msg'] == "Task result omitted due to queue send failure: cannot pickle 'generator' object"
