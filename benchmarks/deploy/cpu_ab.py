# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The CPU of one deploy, side by side for several installed copies of the collection (docs/benchmarks.md).

A 2-host, one-batch deploy.yml of the demo app (the other of two releases the hosts hold, the same release again,
and a release the hosts do not have yet) with each copy in turn, interleaved, REPS times: the controller's CPU
(getrusage of the children: ansible-playbook, its workers, ssh) and the whole machine's (/proc/stat, test hosts
included). Wall-clock ratios hide a few per cent of controller CPU on a 2-core machine that also runs the hosts;
this shows them. Hosts first:
  build/venv/bin/python tests/hosts/testhosts.py up --prefix hs-cpu --count 2
  build/venv/bin/python benchmarks/deploy/cpu_ab.py hs-cpu 5 before=/path/to/collections after=build/collections
--rollout blue_green (after the repetitions) deploys with `-e rollout=blue_green` instead (nginx on the hosts'
port 80, the slots on 8081/8082; the old slot scales down after 60 s). Each line also gives the module runs of
a host (the journal's "Invoked with" lines of the first host, counted around the run).
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(REPO, 'tests', 'integration'), os.path.join(REPO, 'tests', 'hosts')]
import testhosts  # noqa: E402
import testlib  # noqa: E402

prefix = sys.argv[1]
inv = testhosts.inventory_path(prefix)
tmp = tempfile.mkdtemp(prefix='cpu-ab-')


def busy():
    with open('/proc/stat') as f:
        f = f.readline().split()
    return sum(int(x) for x in (f[1], f[2], f[3], f[6], f[7], f[8])) / os.sysconf('SC_CLK_TCK')


reps = int(sys.argv[2])
args = sys.argv[3:]
rollout = 'canary'
if '--rollout' in args:
    i = args.index('--rollout')
    rollout = args[i + 1]
    del args[i:i + 2]
colls = [a.split('=', 1) for a in args]
# 1.0.0 and 2.0.0 take turns; each "new" deploy gets a version of its own (built here, before any timing).
new_versions = ['3.%d.0' % n for n in range(reps * len(colls))]
arts = {v: testlib.build_app(v) for v in ['1.0.0', '2.0.0'] + new_versions}
fresh = iter(new_versions)
res = {}


def module_runs():
    """Module runs so far on the first host: Ansible's modules log each run to the journal ("Invoked with")."""
    out = testlib.run(['podman', 'exec', '%s-1' % prefix, 'sh', '-c',
                       'journalctl -q -o cat --no-pager | grep -c "Invoked with" || true']).out
    return int(out.strip().splitlines()[-1] or 0)


def one(coll, ver):
    art = arts[ver]
    if rollout == 'blue_green':
        v = dict(app='abbg', version=ver, artifact=art, checksum=testlib.sha256(art), rollout='blue_green',
                 service_args='--listen {address}:{port}', blue_green_scale_down_delay=60,
                 blue_green_health_interval=0.3, blue_green_ready_timeout=15)
    else:
        v = dict(testlib.ONE_BATCH, app='abapp', version=ver, artifact=art, checksum=testlib.sha256(art),
                 listen_port=8080, restart_strategy='systemd_socket', service_type='notify', ready_timeout=15)
    argv = testlib.playbook_argv(inv, 'deploy', v, tmp_path=tmp)
    env = testlib.ansible_env()
    env['ANSIBLE_COLLECTIONS_PATH'] = os.path.abspath(coll)
    m0 = module_runs()
    r0, b0 = resource.getrusage(resource.RUSAGE_CHILDREN), busy()
    r = testlib.run_env(argv, env)
    r1, b1 = resource.getrusage(resource.RUSAGE_CHILDREN), busy()
    assert r.rc == 0, r.out[-3000:]
    return r.seconds, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, b1 - b0, module_runs() - m0


one(colls[-1][1], '1.0.0')
i = 0
for rep in range(reps):
    order = colls if rep % 2 == 0 else colls[::-1]
    for name, coll in order:
        ver = ('2.0.0', '1.0.0')[i % 2]
        i += 1
        res.setdefault((name, 'change'), []).append(one(coll, ver))
        res.setdefault((name, 'rerun'), []).append(one(coll, ver))
        res.setdefault((name, 'new'), []).append(one(coll, next(fresh)))
        # Back to a release both hosts hold, so the next "change" is one again.
        one(coll, ver)
for kind in ('change', 'rerun', 'new'):
    for name, _ in colls:
        rows = res[(name, kind)]
        print('%-8s %-7s wall %.2f  controller %.2f  machine %.2f CPU-s  module runs %s  (medians of %d; '
              'controller min %.2f)' % (
                  name, kind, statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows),
                  statistics.median(r[2] for r in rows), '/'.join(sorted(set(str(r[3]) for r in rows))), len(rows),
                  min(r[1] for r in rows)))
