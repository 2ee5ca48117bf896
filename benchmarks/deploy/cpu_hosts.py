# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Controller and hosts apart: the CPU of one deploy with --limit, as `make bench` runs it (docs/benchmarks.md).

For N test hosts and several installed copies of the collection, interleaved, REPS times: a one-batch deploy.yml of
a new 20 MB release with each copy, its re-run, and the bare playbook (benchmarks/baseline/deploy.yml). Each line
gives the medians of the wall clock, the controller's CPU (getrusage of the children: ansible-playbook, its
workers, ssh), the hosts' (the cpuacct cgroups of their containers) and the whole machine's (/proc/stat).
  build/venv/bin/python tests/hosts/testhosts.py up --prefix hs-dbg --count 20
  build/venv/bin/python benchmarks/deploy/cpu_hosts.py hs-dbg 20 3 before=/path/to/collections after=build/collections
With --bare-frozen, the bare playbook also runs with this collection's strategy (hotswap.deploy.linear).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(REPO, 'tests', 'integration'), os.path.join(REPO, 'tests', 'hosts'),
                os.path.join(REPO, 'benchmarks')]
import common  # noqa: E402
import testhosts  # noqa: E402
import testlib  # noqa: E402

MB = 1024 * 1024
PORT = 18080


def cgroup_usage_file(container):
    cid = subprocess.run(['podman', 'inspect', container, '--format', '{{.Id}}'], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout.strip()
    return '/sys/fs/cgroup/cpuacct/libpod_parent/libpod-%s/cpuacct.usage' % cid


def busy():
    with open('/proc/stat') as f:
        fields = f.readline().split()
    return sum(int(x) for x in (fields[1], fields[2], fields[3], fields[6], fields[7], fields[8])) / \
        os.sysconf('SC_CLK_TCK')


class Bench(object):
    def __init__(self, prefix, count):
        self.inventory = testhosts.inventory_path(prefix)
        self.names = ['%s-%d' % (prefix, i) for i in range(1, count + 1)]
        self.usage = [cgroup_usage_file(name) for name in self.names]
        self.work = tempfile.mkdtemp(prefix='cpu-hosts-')
        self.seq = 0

    def hosts_cpu(self):
        total = 0
        for path in self.usage:
            with open(path) as f:
                total += int(f.read())
        return total / 1e9

    def artifact(self):
        """A new version of the demo app, padded to 20 MB; its file name is the bare playbook's binary name."""
        self.seq += 1
        version = '1.9.%d' % self.seq
        path = os.path.join(self.work, version, 'app')
        os.makedirs(os.path.dirname(path))
        shutil.copy(testlib.build_app(version), path)
        with open(path, 'ab') as f:
            f.write(os.urandom(20 * MB - os.path.getsize(path)))
        return dict(path=path, version=version, checksum=testlib.sha256(path))

    def run(self, collections, playbook, extra, strategy=None, env_extra=None):
        vars_file = os.path.join(self.work, 'vars.json')
        with open(vars_file, 'w') as f:
            json.dump(extra, f)
        control = os.path.join(self.work, 'cp')
        os.makedirs(control, exist_ok=True)
        env = common.ansible_env(collections, control_path_dir=control)
        if strategy:
            env['ANSIBLE_STRATEGY'] = strategy
        env.update(env_extra or {})
        argv = [os.path.join(testlib.VENV_BIN, 'ansible-playbook'), '-i', self.inventory, '-f', '20', playbook,
                '-e', '@' + vars_file, '--limit', ','.join(self.names)]
        r0, h0, b0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), self.hosts_cpu(), busy(), time.time()
        res = testlib.run_env(argv, env, timeout=900)
        t1, r1, h1, b1 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN), self.hosts_cpu(), busy()
        common.close_masters(control)
        if res.rc:
            raise SystemExit(res.out[-3000:])
        return dict(wall=t1 - t0, controller=r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime,
                    hosts=h1 - h0, machine=b1 - b0)

    def ours(self, collections, art, env_extra=None):
        return self.run(collections, 'hotswap.deploy.deploy', env_extra=env_extra, extra=dict(
            app='hsdemo', version=art['version'], artifact=art['path'], checksum=art['checksum'], listen_port=PORT,
            restart_strategy='systemd_socket', canary_steps=['100%'], canary_bake_time=0, deploy_hosts='testhosts',
            service_args=testlib.demo_service_args('systemd_socket')))

    def bare(self, art, strategy=None):
        return self.run(os.path.join(REPO, 'build', 'collections'),
                        os.path.join(REPO, 'benchmarks', 'baseline', 'deploy.yml'),
                        dict(version=art['version'], artifact=art['path']), strategy=strategy)


def main():
    prefix, count, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # --bare-frozen: the bare playbook a second time, with this collection's strategy (plugins/strategy/linear.py).
    frozen = '--bare-frozen' in sys.argv
    colls = [a.split('=', 1) for a in sys.argv[4:] if a != '--bare-frozen']
    bench = Bench(prefix, count)
    bench.run(os.path.join(REPO, "build", "collections"), os.path.join(REPO, "benchmarks", "baseline", "setup.yml"),
              {})
    art = bench.artifact()
    bench.bare(art)
    for _name, coll in colls:
        bench.ours(coll, art)
    rows = {}
    for _rep in range(reps):
        for name, coll in colls:
            art = bench.artifact()
            rows.setdefault(name, []).append(bench.ours(coll, art))
            rows.setdefault(name + ' re-run', []).append(bench.ours(coll, art))
        rows.setdefault('bare', []).append(bench.bare(art))
        if frozen:
            rows.setdefault('bare frozen', []).append(bench.bare(bench.artifact(), strategy='hotswap.deploy.linear'))
    for name, runs in rows.items():
        print('%-16s %s' % (name, '  '.join('%s %.2f' % (k, statistics.median(r[k] for r in runs))
                                            for k in ('wall', 'controller', 'hosts', 'machine'))))
    shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == '__main__':
    main()
