# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Helpers shared by the benchmarks (zero_downtime/run.py, deploy/run.py).

Importing this puts tests/hosts, tests/integration and tests/load on sys.path, so a benchmark
can `import testhosts, testlib, loadprobe` after it.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for _sub in ('tests/hosts', 'tests/integration', 'tests/load'):
    if os.path.join(REPO, _sub) not in sys.path:
        sys.path.insert(0, os.path.join(REPO, _sub))

import testhosts  # noqa: E402
import testlib  # noqa: E402

CALLBACKS = os.path.join(HERE, 'callback_plugins')
PLOT_PY = os.path.join(REPO, 'build', 'bench-venv', 'bin', 'python')


def sh(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          check=False, **kw).stdout.strip()


def install_collection(dist, dest):
    """Our own tarball and install: `make collection` run by others at the same time is left alone."""
    galaxy = os.path.join(testlib.VENV_BIN, 'ansible-galaxy')
    shutil.rmtree(dist, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run([galaxy, 'collection', 'build', '--force', '--output-path', dist, REPO], check=True,
                   stdout=subprocess.DEVNULL, cwd=REPO)
    subprocess.run([galaxy, 'collection', 'install', '--force', '-p', dest] +
                   glob.glob(os.path.join(dist, 'hotswap-deploy-*.tar.gz')), check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=dest))


def ansible_env(collections, events=None, all_tasks=False, control_path_dir=None):
    """testlib's environment with our collection copy; events: the bench_events callback writes there
    (all_tasks: one line per task and host, not only graceful_restart); control_path_dir: ssh masters
    of this run only, so no run reuses a connection another one opened."""
    env = testlib.ansible_env()
    env['ANSIBLE_COLLECTIONS_PATH'] = collections
    if events:
        env.update(ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED='bench_events',
                   HOTSWAP_BENCH_EVENTS=events)
        if all_tasks:
            env['HOTSWAP_BENCH_ALL_TASKS'] = '1'
    if control_path_dir:
        env['ANSIBLE_SSH_CONTROL_PATH_DIR'] = control_path_dir
    return env


def read_events(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def close_masters(control_path_dir):
    """Ends the ssh ControlMaster processes a run left behind (ControlPersist) in its own dir."""
    for sock in glob.glob(os.path.join(control_path_dir, '*')):
        subprocess.run(['ssh', '-o', 'ControlPath=%s' % sock, '-O', 'exit', 'bench-master'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=10)
    shutil.rmtree(control_path_dir, ignore_errors=True)


def load_avg():
    with open('/proc/loadavg') as f:
        return [float(x) for x in f.read().split()[:3]]


def start_hosts(prefix, count, variant=None, attempts=3):
    """testhosts.up, tried again: a parallel `up` elsewhere can take a port it picked as free."""
    for attempt in range(attempts):
        try:
            return testhosts.up(prefix, count, variant=variant, replace=True)
        except testhosts.TestHostError as exc:
            if attempt == attempts - 1:
                raise
            print('starting hosts failed, again: %s' % exc, flush=True)
    return None


def machine(hosts):
    first = hosts[0]['container']
    with open('/proc/meminfo') as f:
        mem_kb = int(f.readline().split()[1])
    return dict(cpus=os.cpu_count(), memory_gb=round(mem_kb / 1024.0 / 1024.0, 1), kernel=platform.release(),
                podman=sh(['podman', '--version']),
                # The first line that names ansible-core: a library warning may come before it.
                ansible=[ln for ln in sh([os.path.join(testlib.VENV_BIN, 'ansible'), '--version']).splitlines()
                         if ln.startswith('ansible ')][0],
                host_systemd=dict((h['name'], sh(['podman', 'exec', h['container'], 'systemctl', '--version'])
                                   .splitlines()[0]) for h in hosts),
                host_image=sh(['podman', 'inspect', '-f', '{{.ImageName}}', first]),
                other_containers=[n for n in sh(['podman', 'ps', '--format', '{{.Names}}']).split()
                                  if not n.startswith(hosts[0]['prefix'] + '-')],
                load_avg=load_avg(), date=time.strftime('%Y-%m-%d %H:%M:%S %Z'))


def commit():
    """The work tree the collection under test was built from."""
    return sh(['git', '-C', REPO, 'describe', '--always', '--dirty'])


def median(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 2) if xs else None


def ratio(a, b):
    if a is None or b is None:
        return 'n/a'
    if b == 0:
        return '0' if a == 0 else 'inf'
    return '%.2f' % (a / b)


def plot(script, *args):
    """Runs a plot script with the bench venv's matplotlib (make bench* creates it)."""
    if not os.path.exists(PLOT_PY):
        print('no %s: skipped the plot (make bench / make bench-zero-downtime create it)' % PLOT_PY)
        return False
    subprocess.run([PLOT_PY, script] + list(args), check=True)
    return True
