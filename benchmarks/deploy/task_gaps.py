# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""What each task of a deploy costs the controller: the time from a task's start to the next one's, for all hosts.

For N test hosts and one installed copy of the collection, REPS times: a one-batch deploy.yml of a new 20 MB
release with --limit, as `make bench` runs it, and its re-run; per task, the median time from its first host's start
to the next task's (the bench_events callback's lines). With --no-gc, ansible-playbook runs with Python's garbage
collector disabled (a sitecustomize on PYTHONPATH), to tell its cost apart (docs/benchmarks.md, findings of
2026-12-07, afternoon).
  build/venv/bin/python tests/hosts/testhosts.py up --prefix hs-dbg --count 5
  build/venv/bin/python benchmarks/deploy/task_gaps.py hs-dbg 5 3 build/collections [--no-gc]
"""

from __future__ import annotations

import collections
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cpu_hosts  # noqa: E402
from cpu_hosts import common  # noqa: E402


def gaps(events):
    """``[(task, seconds)]`` in run order: from each task's first start to the next task's first start."""
    first = collections.OrderedDict()
    for event in sorted((e for e in events if e.get('event') == 'task' and e.get('start')), key=lambda e: e['start']):
        first.setdefault('%s (%s)' % (event['task'], event['action']), event['start'])
    starts = list(first.items())
    return [(task, nxt[1] - start) for (task, start), nxt in zip(starts, starts[1:])]


def run(bench, collections_path, art, no_gc):
    work = tempfile.mkdtemp(prefix='task-gaps-', dir=bench.work)
    events = os.path.join(work, 'events.jsonl')
    env_extra = dict(ANSIBLE_CALLBACK_PLUGINS=common.CALLBACKS, ANSIBLE_CALLBACKS_ENABLED='bench_events',
                     HOTSWAP_BENCH_EVENTS=events, HOTSWAP_BENCH_ALL_TASKS='1')
    if no_gc:
        with open(os.path.join(work, 'sitecustomize.py'), 'w') as f:
            f.write('import gc\ngc.disable()\n')
        env_extra['PYTHONPATH'] = work
    res = bench.ours(collections_path, art, env_extra=env_extra)
    return res['wall'], gaps(common.read_events(events))


def main():
    prefix, count, reps, collections_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    no_gc = '--no-gc' in sys.argv
    bench = cpu_hosts.Bench(prefix, count)
    rows = dict(deploy=collections.OrderedDict(), rerun=collections.OrderedDict())
    walls = dict(deploy=[], rerun=[])
    for _rep in range(reps):
        art = bench.artifact()
        for kind in ('deploy', 'rerun'):
            wall, task_gaps = run(bench, collections_path, art, no_gc)
            walls[kind].append(wall)
            for task, seconds in task_gaps:
                rows[kind].setdefault(task, []).append(seconds)
    for kind in ('deploy', 'rerun'):
        off = ', garbage collector off' if no_gc else ''
        print('== %s: wall %.2f s (median of %d)%s' % (kind, statistics.median(walls[kind]), reps, off))
        for task, seconds in rows[kind].items():
            print('%7.3f  %s' % (statistics.median(seconds), task[:110]))


if __name__ == '__main__':
    main()
