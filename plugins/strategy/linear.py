# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
name: linear
short_description: ansible.builtin.linear, with less of the controller's work per task and host
version_added: 0.7.0
description:
  - Runs a play exactly as P(ansible.builtin.linear#strategy) does - the same batches, task order,
    C(run_once), failures and handlers; it is that strategy.
  - At the first batch it runs, it collects once and moves every object the controller holds into Python's
    permanent generation (C(gc.freeze())), for the rest of the run. The playbook, the inventory and the
    variables Ansible has loaded by then are not scanned again by each full garbage
    collection, and the worker forked for each task and host does not copy the memory pages such a scan would
    touch. Objects made later are collected as usual.
  - Why (docs/benchmarks.md, findings of 2026-12-07, afternoon) - with the default collector a deploy of 5
    hosts spent about a quarter of its time in full collections of the controller's process; every task after
    the first large ones paid for them, whatever it did.
  - A task whose action only works on the controller's own data - C(set_fact), C(assert), C(fail), C(debug),
    C(validate_argument_spec), C(include_tasks), C(include_role) - runs in the controller's main process, as
    linear's worker process would run it (the same task executor, result and callbacks), instead of in a
    worker forked for that task and host. Not when it is delegated, asynchronous, has a C(timeout), an
    C(until) or a loop pause (those wait, and would hold up every host), nor on an ansible-core whose task
    executor this plugin does not know; those tasks get their worker as before.
  - Why (docs/benchmarks.md, findings of 2026-12-07, evening) - Ansible forks one worker per task and host, about
    8 ms of the main process whatever the task does; most tasks of a deploy's canary batch only compute a
    value on the controller.
  - C(playbooks/deploy.yml) and C(playbooks/rollback.yml) run their plays with it when Ansible's configured
    strategy is C(linear) (the default); any other configured strategy (for example mitogen's) is used as
    configured. To run them with Ansible's own linear strategy, configure it by its full name,
    C(strategy = ansible.builtin.linear) in C(ansible.cfg) or C(ANSIBLE_STRATEGY=ansible.builtin.linear).
notes:
  - "Use it in your own plays with C(strategy: hotswap.deploy.linear), or for every play with
    C(strategy = hotswap.deploy.linear) in the C([defaults]) section of C(ansible.cfg)."
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

import gc
import inspect

from ansible.executor.task_executor import TaskExecutor
from ansible.plugins import loader as plugin_loader
from ansible.plugins.strategy.linear import StrategyModule as LinearStrategy
from ansible.utils.fqcn import add_internal_fqcns

try:  # ansible-core 2.19 and later
    from ansible._internal._task import TaskContext
    from ansible.executor.task_result import _RawTaskResult
except ImportError:
    TaskContext = _RawTaskResult = None

# Actions that read and write only the controller's data: their worker would connect nowhere.
CONTROLLER_ONLY_ACTIONS = frozenset(add_internal_fqcns(
    ('set_fact', 'assert', 'fail', 'debug', 'validate_argument_spec', 'include_tasks', 'include_role')))

# TaskExecutor's parameters in the ansible-core versions whose worker run_in_main_process repeats.
_EXECUTOR_PARAMS = {
    ('host', 'task', 'job_vars', 'play_context', 'loader', 'shared_loader_obj', 'final_q',
     'variable_manager'): 'raw_result',
    ('host', 'task', 'job_vars', 'play_context', 'new_stdin', 'loader', 'shared_loader_obj', 'final_q',
     'variable_manager'): 'task_result',
}


def freeze_loaded_objects():
    """Once per process: collect, then keep every object tracked so far out of later collections."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def executor_kind(executor=TaskExecutor):
    """Which worker this ansible-core has ('raw_result': 2.19 on, 'task_result': 2.16-2.18), or None."""
    kind = _EXECUTOR_PARAMS.get(tuple(inspect.signature(executor.__init__).parameters)[1:])
    if kind == 'raw_result' and _RawTaskResult is None:
        return None
    return kind


EXECUTOR_KIND = executor_kind()


def runs_in_main_process(task):
    """True for a task a worker would only spend a fork on: a controller-only action that does not wait."""
    loop_pause = getattr(task.loop_control, 'pause', 0) if task.loop_control else 0
    return bool(EXECUTOR_KIND and task.action in CONTROLLER_ONLY_ACTIONS and not task.delegate_to
                and not task.async_val and not task.timeout and not task.until and not loop_pause)


def run_in_main_process(strategy, host, task, task_vars, play_context):
    """What linear's worker does for one task and host (executor, result onto the results queue), unforked.

    The executor templates the task in place and adds to its variables (a forked worker changes its own copies
    of both): it gets a copy of the task (with its parents, without their task lists) and of the variables."""
    own, task_vars = task.copy(exclude_tasks=True), task_vars.copy()
    if EXECUTOR_KIND == 'raw_result':
        with TaskContext(own):
            result = TaskExecutor(host, own, task_vars, play_context, strategy._loader,
                                  plugin_loader.get_plugin_loader_namespace(), strategy._final_q,
                                  strategy._variable_manager).run()
    else:
        result = TaskExecutor(host, own, task_vars, play_context, None, strategy._loader, plugin_loader,
                              strategy._final_q, strategy._variable_manager).run()
    try:
        send_result(strategy._final_q, host, own, result, own.dump_attrs())
    except Exception as e:  # pylint: disable=broad-except
        # The queue pickles the result as it takes it; as in linear's worker, one it cannot take fails the task,
        # not the run.
        send_result(strategy._final_q, host, own, {'failed': True, 'changed': False, 'msg': (
            'Task result omitted due to queue send failure: %s' % e)}, {})


def send_result(final_q, host, task, result, task_fields):
    """Put one task result on the results queue, in the form this ansible-core's worker does."""
    if EXECUTOR_KIND == 'raw_result':
        final_q.send_task_result(_RawTaskResult(host=host, task=task, return_data=result, task_fields=task_fields))
    else:
        final_q.send_task_result(host.name, task._uuid, result, task_fields=task_fields)


class StrategyModule(LinearStrategy):

    def run(self, iterator, play_context):
        freeze_loaded_objects()
        return super(StrategyModule, self).run(iterator, play_context)

    def _queue_task(self, host, task, task_vars, play_context):
        if not runs_in_main_process(task):
            return super(StrategyModule, self)._queue_task(host, task, task_vars, play_context)
        # As linear's _queue_task: the cache its result handling reads, the start callback, one pending result.
        self._queued_task_cache[(host.name, task._uuid)] = {
            'host': host, 'task': task, 'task_vars': task_vars, 'play_context': play_context}
        self._tqm.send_callback('v2_runner_on_start', host, task)
        run_in_main_process(self, host, task, task_vars, play_context)
        self._pending_results += 1
        return None
