# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Benchmark-only callback: appends one JSON line per graceful_restart run (wall-clock start and
end, and the module's own result; host_deploy's restart from its ``restart_event``) to the file named by
HOTSWAP_BENCH_EVENTS; with
HOTSWAP_BENCH_ALL_TASKS=1 also one line per task and host (name, action, status, start, end).

Wall-clock times let the benchmarks place each host's restart on the load probe's timeline
(zero_downtime), time one task (deploy: upload) and find the moment a verdict failed (deploy:
rollback latency). Each line is written and closed at once, so a reader can follow the file.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r'''
name: bench_events
type: aggregate
short_description: Record task timings for the benchmarks
description:
  - Writes one JSON line per graceful_restart result to the file named by HOTSWAP_BENCH_EVENTS.
  - With HOTSWAP_BENCH_ALL_TASKS=1, also one line per task and host.
'''

KEYS = ('stage', 'strategy', 'timings', 'elapsed', 'transition', 'old_pid', 'new_pid', 'old_version',
        'new_version', 'msg')
# Of any task (all-tasks mode): what says whether a check passed.
TASK_KEYS = ('outcome', 'verdict', 'reason', 'transferred', 'skip_reason')


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_events'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.path = os.environ.get('HOTSWAP_BENCH_EVENTS')
        self.all_tasks = os.environ.get('HOTSWAP_BENCH_ALL_TASKS') == '1'
        self.started = {}
        self.task_started = {}

    @staticmethod
    def _wanted(task):
        return (task.action or '').endswith('graceful_restart')

    def _write(self, event):
        if self.path:
            with open(self.path, 'a') as f:
                f.write(json.dumps(event, default=str) + '\n')

    def v2_playbook_on_start(self, playbook):
        self._write({'event': 'playbook_start', 'wall': time.time()})

    def v2_playbook_on_stats(self, stats):
        self._write({'event': 'playbook_end', 'wall': time.time()})

    def v2_runner_on_start(self, host, task):
        now = time.time()
        if self._wanted(task):
            self.started[host.get_name()] = now
        if self.all_tasks:
            self.task_started[(host.get_name(), task._uuid)] = now

    def _end(self, result, status, task_status=None):
        if self.all_tasks:
            self._task(result, task_status or status)
        host = result._host.get_name()
        res = result._result
        # hotswap.deploy.host_deploy restarts inside its one task: it reports the restart's own times.
        event = res.get('restart_event') or (res.get('state') or {}).get('restart_event')
        if event and (result._task.action or '').endswith('host_deploy'):
            self._write({'event': 'restart', 'host': host, 'status': 'failed' if event.get('failed') else 'ok',
                         'start': event.get('start'), 'end': event.get('end'),
                         'result': dict((k, event.get(k)) for k in KEYS if k in event)})
            return
        if not self._wanted(result._task):
            return
        self._write({'event': 'restart', 'host': host, 'status': status, 'start': self.started.pop(host, None),
                     'end': time.time(), 'result': dict((k, res.get(k)) for k in KEYS if k in res)})

    def _task(self, result, status):
        task, res = result._task, result._result
        host = result._host.get_name()
        self._write({'event': 'task', 'host': host, 'task': task.get_name(), 'action': task.action,
                     'status': status, 'changed': bool(res.get('changed')),
                     'start': self.task_started.pop((host, task._uuid), None), 'end': time.time(),
                     'result': dict((k, res.get(k)) for k in TASK_KEYS if k in res)})

    def v2_runner_on_unreachable(self, result):
        if self.all_tasks:
            self._task(result, 'unreachable')

    def v2_runner_on_ok(self, result):
        self._end(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        # A failure the play ignores is no verdict: told apart in the task line.
        self._end(result, 'failed', 'ignored' if ignore_errors else 'failed')

    def v2_runner_on_skipped(self, result):
        self._end(result, 'skipped')
