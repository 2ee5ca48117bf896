# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: appends one JSON line per graceful_restart run (wall-clock start and
end, and the module's own result) to the file named by HOTSWAP_BENCH_EVENTS.

Wall-clock times let run.py place each host's restart on the load probe's timeline.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r'''
name: bench_events
type: aggregate
short_description: Record graceful_restart timings for the zero-downtime benchmark
description: Writes one JSON line per graceful_restart result to the file named by HOTSWAP_BENCH_EVENTS.
'''

KEYS = ('stage', 'strategy', 'timings', 'elapsed', 'transition', 'old_pid', 'new_pid', 'old_version',
        'new_version', 'msg')


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_events'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.path = os.environ.get('HOTSWAP_BENCH_EVENTS')
        self.started = {}

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
        if self._wanted(task):
            self.started[host.get_name()] = time.time()

    def _end(self, result, status):
        if not self._wanted(result._task):
            return
        host = result._host.get_name()
        res = result._result
        self._write({'event': 'restart', 'host': host, 'status': status, 'start': self.started.pop(host, None),
                     'end': time.time(), 'result': dict((k, res.get(k)) for k in KEYS if k in res)})

    def v2_runner_on_ok(self, result):
        self._end(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._end(result, 'failed')

    def v2_runner_on_skipped(self, result):
        self._end(result, 'skipped')
