# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Deploy benchmark: playbooks/deploy.yml against an ansistrano-style baseline (docs/benchmarks.md).

    build/venv/bin/python benchmarks/deploy/run.py [--hosts "1 5 10 20"] [--reps 3]
        [--default-steps-reps 1] [--sections deploy,roundtrips,transfer,rollback] [--out JSON]
    build/venv/bin/python benchmarks/deploy/run.py --report benchmarks/deploy/results/latest.json

`make bench` runs it (BENCH_HOSTS, BENCH_REPS). Builds and installs its own copy of the collection
(build/bench-deploy-collections), starts its own hosts (hsb-bench-1..N, N = the largest host count)
and removes them at the end. Writes results/latest.json, results/latest.md, results/deploy-time.png.
Sections, in one run: deploy time and no-op re-runs (interleaved with the baseline), round trips
(-vvv log and the host's journal), transfer (push/pull/scp), rollback latency (load probe), and the
scale model fitted to the deploy times.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import common  # noqa: E402  (puts tests/hosts, tests/integration, tests/load on sys.path)
from common import REPO, median, ratio  # noqa: E402
import loadprobe  # noqa: E402
import testhosts  # noqa: E402
import testlib  # noqa: E402

PREFIX = 'hsb-bench'
WORK = os.path.join(REPO, 'build', 'bench-deploy')
DIST = os.path.join(REPO, 'build', 'bench-deploy-dist')
COLLECTIONS = os.path.join(REPO, 'build', 'bench-deploy-collections')
RESULTS = os.path.join(HERE, 'results')
BASELINE = os.path.join(os.path.dirname(HERE), 'baseline')
UPLOAD_YML = os.path.join(HERE, 'upload.yml')
FLOOR_YML = os.path.join(BASELINE, 'floor.yml')
MB = 1 << 20
FORKS = 20
# --mitogen: every run (ours and the baseline alike) with mitogen's linear strategy (PyPI `mitogen`).
MITOGEN = {}
# Apps side by side on the same hosts; the published container ports are 8080-8082 and 80.
OURS = dict(app='hsbench', port=8080)
BASE = dict(app='hsbase', port=8081)
ROLLBACK = dict(app='hsrb', port=8082)
# Round trips run on host 1 only: not reached from outside, so unpublished ports will do.
ROUNDTRIP = {'ssh': dict(app='hsrts', port=9101), 'paramiko_ssh': dict(app='hsrtp', port=9102)}
XFER_DIR = '/opt/hsxfer'
HTTP_PORT = 18080           # inside host 1, bound to its own 127.0.0.1
ONE_BATCH = ['100%']
DEFAULT_STEPS = [1, '25%', '100%']      # roles/canary/defaults/main.yml
SIZES = (20, 100)


def log(msg):
    print('[bench] %s %s' % (time.strftime('%H:%M:%S'), msg), flush=True)


# --------------------------------------------------------------------------- artifacts

class Artifacts(object):
    """The demo app (tests/app) built per version, padded with random bytes to a size."""

    def __init__(self, work):
        self.dir = os.path.join(work, 'artifacts')
        shutil.rmtree(self.dir, ignore_errors=True)
        self.seq = 0

    def next_version(self):
        self.seq += 1
        return '1.0.%d' % self.seq

    def get(self, version, size_mb=20, fault=''):
        name = '%s-%s-%dm' % (version, fault or 'ok', size_mb)
        # The file name is the binary's name in a baseline release (setup.yml runs `app`).
        path = os.path.join(self.dir, name, 'app')
        if not os.path.exists(path):
            subprocess.run([testlib.APP_BUILD, version, path, fault], check=True, stdout=subprocess.DEVNULL)
            have = os.path.getsize(path)
            if size_mb:
                # Trailing bytes after the ELF's segments: the loader never maps them.
                with open(path, 'ab') as f:
                    f.write(os.urandom(max(0, size_mb * MB - have)))
            out = subprocess.run([path, '--version'], stdout=subprocess.PIPE, universal_newlines=True,
                                 check=False, timeout=10).stdout.strip()
            if out != version:
                raise RuntimeError('padded build %s does not run: --version printed %r, want %r' % (path, out, version))
        return dict(path=path, version=version, checksum=testlib.sha256(path), size=os.path.getsize(path),
                    fault=fault)


# --------------------------------------------------------------------------- running ansible

class Runner(object):
    def __init__(self, hosts, inventory):
        self.hosts = hosts
        self.inventory = inventory
        self.names = [h['name'] for h in hosts]
        self.count = 0
        os.makedirs(os.path.join(WORK, 'logs'), exist_ok=True)

    def run(self, tag, argv_tail, extra, limit=None, connection='ssh', verbose=False, events=False,
            background=None):
        """One ansible-playbook run with its own ssh ControlPath dir (fresh connections, like a new
        deploy), the bench_events callback (every task) when `events`; the log goes to WORK/logs."""
        self.count += 1
        tag = '%03d-%s' % (self.count, tag)
        vars_file = os.path.join(WORK, 'vars-%s.json' % tag)
        with open(vars_file, 'w') as f:
            json.dump(extra, f)
        events_file = os.path.join(WORK, 'logs', '%s.events.jsonl' % tag) if events else None
        cpdir = os.path.join(WORK, 'cp', tag)
        os.makedirs(cpdir, exist_ok=True)
        env = common.ansible_env(COLLECTIONS, events=events_file, all_tasks=True, control_path_dir=cpdir)
        env.update(MITOGEN)
        argv = [os.path.join(testlib.VENV_BIN, 'ansible-playbook'), '-i', self.inventory, '-c', connection,
                '-f', str(FORKS)] + argv_tail + ['-e', '@' + vars_file]
        if limit:
            argv += ['--limit', ','.join(limit)]
        if verbose:
            argv.append('-vvv')
        holder = {}
        load_before = common.load_avg()[0]

        def target():
            holder['result'] = testlib.run_env(argv, env, timeout=1800)
        if background:
            thread = threading.Thread(target=target)
            thread.start()
            background(events_file, thread)
            thread.join()
        else:
            target()
        res = holder['result']
        common.close_masters(cpdir)
        os.unlink(vars_file)
        logfile = os.path.join(WORK, 'logs', '%s.log' % tag)
        with open(logfile, 'w') as f:
            f.write(res.out)
        events_list = common.read_events(events_file) if events else None
        return dict(tag=tag, rc=res.rc, seconds=round(res.seconds, 2), log=os.path.relpath(logfile, REPO),
                    load1=[load_before, common.load_avg()[0]], slowest_tasks=slowest(events_list),
                    changed=sum(r['changed'] for r in res.hosts_recap.values()),
                    failed_hosts=sorted(h for h, r in res.hosts_recap.items() if r['failed'] or r['unreachable']),
                    recap=res.hosts_recap, events=events_list,
                    out_tail=None if res.rc == 0 else res.out[-3000:])

    def ours(self, tag, art, limit, steps=None, app=None, extra=None, **kw):
        steps, app = steps or ONE_BATCH, app or OURS
        # deploy_hosts: the test hosts' group (deploy.yml has no default of all hosts; --limit narrows it);
        # service_args: the demo app's flags for systemd_socket (the collection passes none by default).
        ev = dict(app=app['app'], version=art['version'], artifact=art['path'], checksum=art['checksum'],
                  listen_port=app['port'], restart_strategy='systemd_socket', canary_steps=steps,
                  canary_bake_time=0, deploy_hosts=testlib.TEST_GROUP,
                  service_args=testlib.demo_service_args('systemd_socket'))
        ev.update(extra or {})
        return self.run(tag, ['hotswap.deploy.deploy'], ev, limit=limit, **kw)

    def baseline(self, tag, art, limit, **kw):
        return self.run(tag, [os.path.join(BASELINE, 'deploy.yml')], dict(version=art['version'], artifact=art['path']),
                        limit=limit, **kw)

    def floor(self, tag, art, limit, module_run=False, **kw):
        """floor.yml: one ping per host (with module_run, a second one over the open connection)."""
        del art
        return self.run(tag, [FLOOR_YML] + (['--tags', 'module_run'] if module_run else []), {}, limit=limit, **kw)


def slowest(events, top=8):
    """Task name -> longest time on one host and hosts, from the callback's task lines: where a run's
    time went (the same view as profile_tasks, without its output)."""
    if not events:
        return None
    tasks = {}
    for ev in events:
        if ev.get('event') == 'task' and ev.get('start'):
            t = tasks.setdefault(ev['task'], dict(task=ev['task'], action=ev['action'], max_s=0.0, hosts=0))
            t['max_s'] = round(max(t['max_s'], ev['end'] - ev['start']), 2)
            t['hosts'] += 1
    return sorted(tasks.values(), key=lambda t: -t['max_s'])[:top]


def waves(n, serial, forks=FORKS):
    """Ansible's batches for `serial` (as PlaybookExecutor._get_serialized_batches: a percentage is
    of all hosts, at least 1, the last step repeats), each run in ceil(size/forks) waves of forks."""
    left, i, total = n, 0, 0
    while left > 0:
        step = serial[min(i, len(serial) - 1)]
        if isinstance(step, str) and step.endswith('%'):
            size = int(float(step[:-1]) / 100.0 * n) or 1
        else:
            size = int(step)
        size = min(size, left) if size > 0 else left
        total += int(math.ceil(size / float(forks)))
        left -= size
        i += 1
    return total


def check(run, what):
    if run['rc'] != 0:
        raise RuntimeError('%s failed (rc %s), log %s:\n%s' % (what, run['rc'], run['log'], run['out_tail']))
    return run


def slim(run):
    return dict((k, v) for k, v in run.items() if k not in ('events', 'recap'))


# --------------------------------------------------------------------------- deploy time and no-op

def section_deploy(runner, arts, args, result):
    runs = result['deploy_runs'] = []
    for n in args.hosts:
        limit = runner.names[:n]
        for rep in range(args.reps):
            art = arts.get(arts.next_version())
            # Interleaved: ours, its no-op re-run, the baseline, its re-run, the floor (one ping per host) - each
            # meets the same machine.
            for tool, kind, fn in (('ours', 'deploy', runner.ours), ('ours', 'noop', runner.ours),
                                   ('baseline', 'deploy', runner.baseline), ('baseline', 'noop', runner.baseline),
                                   ('floor', 'ping', runner.floor)):
                run = check(fn('%s-%s-n%d' % (tool, kind, n), art, limit, events=True),
                            '%s %s to %d hosts' % (tool, kind, n))
                run.update(tool=tool, kind=kind, n=n, rep=rep, version=art['version'],
                           serial=ONE_BATCH if tool == 'ours' else ['100%'])
                run['waves'] = waves(n, run['serial'])
                runs.append(slim(run))
                log('%-8s %-6s n=%-2d rep %d: %6.1f s changed %d'
                    % (tool, kind, n, rep, run['seconds'], run['changed']))
        for rep in range(args.default_steps_reps):
            art = arts.get(arts.next_version())
            run = check(runner.ours('ours-steps-n%d' % n, art, limit, steps=DEFAULT_STEPS, events=True),
                        'default steps')
            run.update(tool='ours', kind='default_steps', n=n, rep=rep, version=art['version'], serial=DEFAULT_STEPS)
            run['waves'] = waves(n, DEFAULT_STEPS)
            runs.append(slim(run))
            log('ours     steps  n=%-2d rep %d: %6.1f s (%d batches)' % (n, rep, run['seconds'], run['waves']))


def deploy_table(runs, hosts):
    def med(tool, kind, n):
        return median([r['seconds'] for r in runs if r['tool'] == tool and r['kind'] == kind and r['n'] == n])

    def changed(tool, kind, n):
        return sorted(set(r['changed'] for r in runs if r['tool'] == tool and r['kind'] == kind and r['n'] == n))
    rows = []
    for n in hosts:
        o, b = med('ours', 'deploy', n), med('baseline', 'deploy', n)
        on, bn = med('ours', 'noop', n), med('baseline', 'noop', n)
        floor = med('floor', 'ping', n)
        rows.append(dict(n=n, ours=o, baseline=b, ratio=ratio(o, b), ours_noop=on, noop_ratio=ratio(on, o),
                         floor=floor, floor_ratio=ratio(floor, o),
                         ours_noop_changed=changed('ours', 'noop', n), baseline_noop=bn,
                         baseline_noop_changed=changed('baseline', 'noop', n),
                         ours_changed=changed('ours', 'deploy', n), default_steps=med('ours', 'default_steps', n),
                         reps=len([r for r in runs if r['tool'] == 'ours' and r['kind'] == 'deploy' and r['n'] == n]),
                         load=max([r['load1'][0] for r in runs if r['n'] == n and r.get('load1')] or [None])))
    return rows


# --------------------------------------------------------------------------- round trips

TASK_RE = re.compile(r'^TASK \[(?P<task>.*)\] \*+$')
SSH_EXEC_RE = re.compile(r'^<(?P<addr>[^>]+)> SSH: EXEC (?P<prog>ssh|sftp|scp) ')
PARAMIKO_EXEC_RE = re.compile(r'^<(?P<addr>[^>]+)> EXEC (?P<cmd>.*)$')
PARAMIKO_PUT_RE = re.compile(r'^<(?P<addr>[^>]+)> PUT ')


def classify(cmd):
    if 'python' in cmd:
        return 'module'
    if 'cat > ' in cmd:
        return 'transfer'      # the push's file on the command's stdin (plugins/plugin_utils/push.py)
    for word, kind in (('echo ~', 'home_dir'), ('mkdir', 'tmp_dir'), ('chmod', 'chmod'), ('rm -f -r', 'cleanup')):
        if word in cmd:
            return kind
    return 'other_command'


def parse_vvv(text, addr='127.0.0.1'):
    """Remote actions per task from an -vvv log of a run on ONE host (every <addr> line is that host).
    ssh: each `SSH: EXEC ssh` is a command over the connection (python = a pipelined module run),
    `SSH: EXEC sftp|scp` a file transfer; paramiko: its `EXEC` and `PUT` lines."""
    paramiko = 'ESTABLISH PARAMIKO' in text
    tasks, order, task = {}, [], '(before the first task)'
    for line in text.splitlines():
        m = TASK_RE.match(line)
        if m:
            task = m.group('task')
            continue
        kind = None
        if paramiko:
            m = PARAMIKO_EXEC_RE.match(line)
            if m and m.group('addr') == addr:
                kind = classify(m.group('cmd'))
            elif PARAMIKO_PUT_RE.match(line) and line.startswith('<%s>' % addr):
                kind = 'transfer'
        else:
            m = SSH_EXEC_RE.match(line)
            if m and m.group('addr') == addr:
                kind = 'transfer' if m.group('prog') != 'ssh' else classify(line.rsplit(' %s ' % addr, 1)[-1])
        if kind is None:
            continue
        if task not in tasks:
            tasks[task] = {}
            order.append(task)
        tasks[task][kind] = tasks[task].get(kind, 0) + 1
    per_task = [dict(task=t, **tasks[t]) for t in order]
    totals = {}
    for t in per_task:
        for k, v in t.items():
            if k != 'task':
                totals[k] = totals.get(k, 0) + v
    return per_task, totals


def journal_cursor(host):
    out = testlib.host_sh(host, 'journalctl -n 0 --show-cursor --no-pager', check=False)
    m = re.search(r'-- cursor: (\S+)', out)
    return m.group(1) if m else None


def journal_counts(host, cursor):
    """What the host saw since `cursor`: sshd's connections and sessions (LogLevel VERBOSE, set by
    prepare_hosts) and each module's own `Invoked with` line (AnsibleModule logs every run)."""
    out = testlib.host_sh(host, "journalctl --no-pager -o json --after-cursor '%s'" % cursor, check=False)
    counts = dict(connections=0, exec_sessions=0, sftp_sessions=0, module_runs=0)
    modules = {}
    for line in out.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        ident, msg = rec.get('SYSLOG_IDENTIFIER', ''), rec.get('MESSAGE', '')
        if not isinstance(msg, str):
            continue
        if ident == 'sshd':
            if msg.startswith('Accepted publickey'):
                counts['connections'] += 1
            elif msg.startswith('Starting session: command'):
                counts['exec_sessions'] += 1
            elif msg.startswith("Starting session: subsystem 'sftp'"):
                counts['sftp_sessions'] += 1
        elif ident.startswith('ansible-') and msg.startswith('Invoked'):
            counts['module_runs'] += 1
            name = ident[len('ansible-'):]
            modules[name] = modules.get(name, 0) + 1
    counts['modules'] = modules
    return counts


def section_roundtrips(runner, arts, args, result):
    host = runner.hosts[0]
    out = result['roundtrips'] = []
    art_a, art_b = arts.get(arts.next_version()), arts.get(arts.next_version())
    for conn, app in ROUNDTRIP.items():
        # install: a new app on the host (units too); deploy: a new version of a running app (the plain
        # path); noop: the same artifact again.
        for kind, art in (('install', art_a), ('deploy', art_b), ('noop', art_b)):
            cursor = journal_cursor(host)
            run = check(runner.ours('rt-%s-%s' % (conn, kind), art, [host['name']], app=app, connection=conn,
                                    verbose=True), 'round trips %s %s' % (conn, kind))
            with open(os.path.join(REPO, run['log'])) as f:
                per_task, totals = parse_vvv(f.read())
            on_host = journal_counts(host, cursor)
            out.append(dict(connection=conn, kind=kind, seconds=run['seconds'], changed=run['changed'],
                            per_task=per_task, totals=totals, host=on_host, log=run['log']))
            brief = dict((k, v) for k, v in on_host.items() if k != 'modules')
            log('round trips %-12s %-7s: %s; host: %s' % (conn, kind, totals, brief))


# --------------------------------------------------------------------------- transfer

def ssh_opts(host, cpdir):
    """The options Ansible's ssh connection uses with our ansible.cfg and inventory (no -C)."""
    return ['-o', 'ControlMaster=auto', '-o', 'ControlPersist=60s', '-o', 'ControlPath=%s/%%C' % cpdir,
            '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'User=root',
            '-o', 'IdentityFile=%s' % host['ssh_key'], '-o', 'KbdInteractiveAuthentication=no',
            '-o', 'PreferredAuthentications=gssapi-with-mic,gssapi-keyex,hostbased,publickey',
            '-o', 'PasswordAuthentication=no', '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR']


def task_seconds(run, action_suffix, name=None):
    for ev in run['events'] or []:
        if ev.get('event') == 'task' and (ev.get('action') or '').endswith(action_suffix) and ev.get('start') \
                and ev.get('end') and name in (None, ev.get('task')):
            return round(ev['end'] - ev['start'], 3)
    return None


def module_run_floor(runner, host, reps):
    """floor.yml's two pings on one host: the first task opens the connection (as a push's task does), the
    second is one module run over it - the least a task that runs a module costs."""
    out = []
    for rep in range(reps):
        run = check(runner.floor('floor-module-run', None, [host['name']], module_run=True, events=True),
                    'floor.yml with a second module run')
        out.append(dict(rep=rep, first=task_seconds(run, 'ping', 'Open the connection and run one module'),
                        second=task_seconds(run, 'ping', 'Run one more module over the open connection')))
    return out


def section_transfer(runner, arts, args, result):
    host = runner.hosts[0]
    files = dict((size, arts.get(arts.next_version(), size_mb=size)) for size in SIZES)
    # Pull: the files served from inside host 1 on its own loopback (what the host downloads never
    # leaves the container; this measures the module's pull path, not a network).
    testlib.host_sh(host, 'mkdir -p /srv/hsb-http')
    for size, art in files.items():
        subprocess.run(['podman', 'cp', art['path'], '%s:/srv/hsb-http/app-%dm' % (host['container'], size)],
                       check=True)
    testlib.host_sh(host, 'systemctl stop hsb-http 2>/dev/null; systemd-run --unit hsb-http --quiet python3 -m '
                          'http.server %d --bind 127.0.0.1 --directory /srv/hsb-http' % HTTP_PORT)
    testlib.host_sh(host, 'for i in $(seq 50); do curl -fsI http://127.0.0.1:%d/ >/dev/null && exit 0; sleep 0.1; '
                          'done; exit 1' % HTTP_PORT)
    rows = result['transfer'] = []
    result['sha256_seconds'] = sha256_costs(host, files)
    result['module_run_floor'] = module_run_floor(runner, host, args.reps)
    try:
        for rep in range(args.reps):
            for size, art in files.items():
                for mode in ('push', 'scp', 'pull'):
                    testlib.host_sh(host, 'rm -rf %s; mkdir -p %s/scp' % (XFER_DIR, XFER_DIR))
                    row = dict(mode=mode, size_mb=size, rep=rep, bytes=art['size'])
                    if mode == 'scp':
                        cpdir = os.path.join(WORK, 'cp', 'scp-%d-%d' % (size, rep))
                        os.makedirs(cpdir, exist_ok=True)
                        t0 = time.monotonic()
                        proc = subprocess.run(['scp', '-q', '-P', str(host['ssh_port'])] + ssh_opts(host, cpdir) +
                                              [art['path'], '127.0.0.1:%s/scp/app' % XFER_DIR],
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                              universal_newlines=True, check=False, timeout=600)
                        row['seconds'] = round(time.monotonic() - t0, 3)
                        common.close_masters(cpdir)
                        if proc.returncode != 0:
                            raise RuntimeError('scp failed: %s' % proc.stdout)
                    else:
                        ev = dict(checksum=art['checksum'], base_dir=XFER_DIR, release_id='x%d-%d' % (size, rep),
                                  version=art['version'])
                        if mode == 'push':
                            ev['src'] = art['path']
                        else:
                            ev['url'] = 'http://127.0.0.1:%d/app-%dm' % (HTTP_PORT, size)
                        run = check(runner.run('xfer-%s-%dm' % (mode, size), [UPLOAD_YML], ev, limit=[host['name']],
                                               events=True), 'upload %s %d MB' % (mode, size))
                        row['seconds'] = task_seconds(run, 'binary_upload')
                        row['playbook_seconds'] = run['seconds']
                    row['mb_per_s'] = round(art['size'] / MB / row['seconds'], 1) if row['seconds'] else None
                    rows.append(row)
                    log('transfer %-4s %3d MB rep %d: %.2f s (%s MB/s)' % (mode, size, rep, row['seconds'],
                                                                           row['mb_per_s']))
    finally:
        testlib.host_sh(host, 'systemctl stop hsb-http; rm -rf /srv/hsb-http %s' % XFER_DIR, check=False)


def sha256_costs(host, files):
    """Hashing a file once on the controller and once on the host: part of a push (the action plugin
    checks the file, the module checks what arrived) that scp does not do."""
    out = {}
    for size, art in files.items():
        t0 = time.monotonic()
        testlib.sha256(art['path'])
        controller = round(time.monotonic() - t0, 3)
        on_host = testlib.host_sh(host, 'python3 -c "import hashlib, time; t = time.monotonic(); '
                                        "h = hashlib.sha256(open('/srv/hsb-http/app-%dm', 'rb').read()); "
                                        'print(round(time.monotonic() - t, 3))"' % size, check=False).strip()
        out['%dm' % size] = dict(controller=controller, host=float(on_host) if on_host else None)
    return out


def transfer_table(rows):
    out = []
    for size in SIZES:
        m = dict((mode, median([r['seconds'] for r in rows if r['mode'] == mode and r['size_mb'] == size]))
                 for mode in ('push', 'scp', 'pull'))
        tp = dict((k, round(size / v, 1) if v else None) for k, v in m.items())
        out.append(dict(size_mb=size, seconds=m, mb_per_s=tp, push_vs_scp=ratio(tp['push'], tp['scp']),
                        pull_vs_push=ratio(tp['pull'], tp['push'])))
    return out


# --------------------------------------------------------------------------- rollback latency

RB_CASES = (
    # name, fault, extra vars, what gives the verdict
    ('unhealthy', 'unhealthy', {}, 'the restart readiness / verification fails'),
    ('wrong-version', 'wrong-version', {}, 'the version check of the restart / verification fails'),
    # Healthy (/healthz 200, the right version), so the host's own checks and the canary's health probe
    # pass (they share one health_url); '/' answers 500, so the canary's metric (error_rate in /stats,
    # fed by the probe's requests during the bake) fails after the bake.
    ('analysis-errors', 'errors',
     {'canary_bake_time': 2,
      'canary_metrics': {'url': 'http://127.0.0.1:%d/stats' % ROLLBACK['port'], 'query': 'error_rate',
                         'threshold': 0.05, 'comparison': '<=', 'count': 1, 'interval': 0}},
     'the canary metric analysis after the bake fails'),
)


def is_verdict(ev, host):
    if ev.get('event') != 'task' or ev.get('host') != host:
        return False
    res = ev.get('result') or {}
    return ev.get('status') == 'failed' or res.get('outcome') == 'fail' or res.get('verdict') == 'fail'


def section_rollback(runner, arts, args, result):
    host = runner.hosts[0]
    url = 'http://127.0.0.1:%d/' % host['ports'][ROLLBACK['port']]
    target = '127.0.0.1:%d' % host['ports'][ROLLBACK['port']]
    good = arts.get(arts.next_version(), size_mb=0)
    check(runner.ours('rb-good', good, [host['name']], app=ROLLBACK), 'rollback: good release')
    cases = result['rollback'] = []
    for name, fault, extra, what in RB_CASES:
        bad = arts.get(arts.next_version(), size_mb=0, fault=fault)
        state = {}
        # Whole deploy, light: did the old version ever stop answering, and what answered instead.
        whole = loadprobe.Probe([url], rate=50, duration=300, keepalive=True, timeout=1.0)

        def watch(events_file, thread, state=state):  # pylint: disable=dangerous-default-value
            # Started at the failing verdict: 200 req/s, 0.2 s timeout, so a request queued during a
            # restart fails instead of being counted at its send time (error at most 0.2 s).
            while thread.is_alive() and 'verdict' not in state:
                for ev in common.read_events(events_file) if events_file else []:
                    if is_verdict(ev, host['name']):
                        state['verdict'] = ev
                        state['probe'] = loadprobe.Probe([url], rate=200, duration=15, keepalive=True, timeout=0.2)
                        state['probe'].start_background()
                        state['probe_t0'] = time.time()
                        break
                else:
                    time.sleep(0.02)
        whole.start_background()
        whole_t0 = time.time()
        try:
            run = runner.ours('rb-%s' % name, bad, [host['name']], app=ROLLBACK, events=True, background=watch,
                              extra=dict(dict(ready_timeout=10, drain_timeout=10), **extra))
        finally:
            whole_sum = whole.stop()
            verdict_sum = state['probe'].stop() if 'probe' in state else None
        row = dict(case=name, fault=fault, verdict_by=what, deploy_rc=run['rc'], deploy_seconds=run['seconds'],
                   old=good['version'], bad=bad['version'], log=run['log'])
        seen = whole_sum['versions'].get(target, {})
        row['whole_deploy'] = dict(versions=seen, failed=whole_sum['failed'], causes=whole_sum['failure_causes'])
        row['old_stopped'] = whole_sum['failed'] > 0 or any(v != good['version'] for v in seen)
        if 'verdict' in state:
            v = state['verdict']
            row.update(verdict_task=v['task'], verdict_status=v['status'], verdict_result=v.get('result'),
                       probe_start_after_verdict=round(state['probe_t0'] - v['end'], 3),
                       bad_answered_from=(round(whole_sum['version_switch'].get(target, {}).get(bad_version_label(
                           bad, fault)) + whole_t0 - v['end'], 2)
                           if bad_version_label(bad, fault) in whole_sum['version_switch'].get(target, {}) else None))
            first_old = verdict_sum['version_switch'].get(target, {}).get(good['version'])
            row['verdict_probe'] = dict(versions=verdict_sum['versions'].get(target, {}), failed=verdict_sum['failed'],
                                        causes=verdict_sum['failure_causes'])
            if not row['old_stopped']:
                row['latency_s'] = 0.0
            elif first_old is None:
                row['latency_s'] = None
            else:
                row['latency_s'] = round(state['probe_t0'] + first_old - v['end'], 3)
        else:
            row['latency_s'] = None
        if 'verdict' in state:
            # What the host did between the verdict and the old version answering (and 1 s more).
            until = state['verdict']['end'] + (row['latency_s'] or 0) + 1
            row['after_verdict'] = [dict(task=ev['task'], action=ev['action'], status=ev['status'],
                                         start=round(ev['start'] - state['verdict']['end'], 2),
                                         seconds=round(ev['end'] - ev['start'], 2))
                                    for ev in run['events'] or [] if ev.get('event') == 'task' and ev.get('start')
                                    and ev['host'] == host['name'] and state['verdict']['end'] <= ev['start'] < until]
        row['served_after'] = testlib.served_version(host, ROLLBACK['port'])
        cases.append(row)
        log('rollback %-18s: verdict %r, old version answering %s s after it (served now: %s)' % (
            name, row.get('verdict_task'), row['latency_s'], row['served_after']))


def bad_version_label(art, fault):
    return art['version'] + ('-wrong' if fault == 'wrong-version' else '')


# --------------------------------------------------------------------------- scale model

def solve(rows):
    """Least squares: rows of (x..., y); returns coefficients or None when singular."""
    k = len(rows[0]) - 1
    ata = [[sum(r[i] * r[j] for r in rows) for j in range(k)] for i in range(k)]
    aty = [sum(r[i] * r[k] for r in rows) for i in range(k)]
    m = [ata[i] + [aty[i]] for i in range(k)]
    for c in range(k):
        piv = max(range(c, k), key=lambda i: abs(m[i][c]))
        if abs(m[piv][c]) < 1e-9:
            return None
        m[c], m[piv] = m[piv], m[c]
        for i in range(k):
            if i != c:
                f = m[i][c] / m[c][c]
                m[i] = [a - f * b for a, b in zip(m[i], m[c])]
    return [m[i][k] / m[i][i] for i in range(k)]


def fit(points):
    """T = a + p*W + b*n from (n, W, T) points, each cost from the runs that show it:
    - b per host and c = a + p: least-squares line through the one-wave runs (T = c + b*n);
    - p per wave (a batch, or forks more hosts in one): the median over the runs with W > 1 of
      (T - c - b*n) / (W - 1), so one slow run on a loaded machine does not swing it;
    - a = c - p, the fixed cost (ansible-playbook start-up, the controller's input play).
    Costs are not negative: when the line has a negative slope or intercept, b is set to 0 (c: the
    median); a negative p is set to 0; both named in `dropped`, as is p when no run had W > 1 (then
    extra waves are costed at 0: a lower bound)."""
    one = [(n, t) for n, w, t in points if w == 1]
    if not one:
        return None
    dropped = []
    line = solve([(1.0, float(n), t) for n, t in one]) if len(set(x[0] for x in one)) >= 2 else None
    if line is None or line[0] < 0 or line[1] < 0:     # a negative intercept or slope: noise, not a cost
        c, b = median([x[1] for x in one]), 0.0
        dropped.append('b')
    else:
        c, b = line
    more = [(t - c - b * n) / (w - 1) for n, w, t in points if w > 1]
    p = median(more) if more else None
    if p is None or p < 0:
        dropped.append('p')
        p = 0.0
    p = min(p, c)
    return dict(a=c - p, p=p, b=b, dropped=dropped)


def predict(model, n, serial, forks=FORKS):
    return model['a'] + model['p'] * waves(n, serial, forks) + model['b'] * n


def section_scale(result, hosts):
    runs = [r for r in result.get('deploy_runs', []) if r['kind'] in ('deploy', 'default_steps')]
    out = result['scale'] = {}
    for tool in ('ours', 'baseline'):
        groups = {}
        for r in runs:
            if r['tool'] == tool:
                groups.setdefault((r['n'], r['waves'], json.dumps(r['serial'])), []).append(r['seconds'])
        points = [(n, w, median(ts)) for (n, w, _s), ts in sorted(groups.items())]
        if not points:
            continue
        model = fit(points)
        if model is None:
            continue
        top = max(hosts)
        held = [p for p in points if p[0] < top]
        check_model = fit(held) if len(set(p[0] for p in held)) >= 2 else None
        measured = median([r['seconds'] for r in runs if r['tool'] == tool and r['kind'] == 'deploy' and r['n'] == top])
        basis = check_model or model
        pred_top = predict(basis, top, ONE_BATCH)
        serials = [('100%', ONE_BATCH), ('[1, "25%", "100%"]', DEFAULT_STEPS), ('10', [10])] if tool == 'ours' \
            else [('100%', ONE_BATCH)]
        out[tool] = dict(
            points=[dict(n=n, waves=w, seconds=t) for n, w, t in points],
            model=dict((k, round(v, 3) if isinstance(v, float) else v) for k, v in model.items()),
            fitted_on='medians per host count and step list, %d points (W = 1: %d)' % (
                len(points), len([x for x in points if x[1] == 1])),
            formula='T(n) = %.2f s + %.2f s x W + %.3f s x n; W = sum over serial batches of ceil(batch size / forks)'
                    % (model['a'], model['p'], model['b']),
            check=dict(n=top, measured=measured, predicted=round(pred_top, 2),
                       error_pct=round(100.0 * (pred_top - measured) / measured, 1) if measured else None,
                       held_out=check_model is not None),
            # forks 100: the same per-host and per-wave costs, fewer waves (the per-host cost is the
            # controller's CPU, which more forks do not add).
            predictions=[dict(n=n, serial=label, forks=f, waves=waves(n, s, f), seconds=round(predict(model, n, s, f), 1))
                         for n in (100, 1000) for label, s in serials for f in (FORKS, 100)])


# --------------------------------------------------------------------------- setup and report

def prepare_hosts(runner, hosts, arts):
    """sshd at LogLevel VERBOSE (the journal then names every connection and session), the baseline's
    unit, and a first release of both tools everywhere - none of it timed."""
    for h in hosts:
        testlib.host_sh(h, 'echo "LogLevel VERBOSE" > /etc/ssh/sshd_config.d/20-hsb-bench.conf && systemctl reload ssh')
    check(runner.run('baseline-setup', [os.path.join(BASELINE, 'setup.yml')], {}), 'baseline setup')
    art = arts.get(arts.next_version())
    check(runner.ours('warmup-ours', art, None), 'first deploy (ours)')
    check(runner.baseline('warmup-baseline', art, None), 'first deploy (baseline)')
    for h in hosts:
        for app in (OURS, BASE):
            got = testlib.served_version(h, app['port'])
            if got != art['version']:
                raise RuntimeError('%s on %s serves %r after the first deploy, want %s'
                                   % (app['app'], h['name'], got, art['version']))


def fmt(x, unit=''):
    return 'n/a' if x is None else ('%s%s' % (x, unit))


def report(result, out):
    md = ['# Deploy benchmark results', '',
          'Command: `%s`; collection from work tree `%s`; %s; whole run %s s.' % (
              result['command'], result.get('commit'), result.get('machine', {}).get('date'),
              result.get('wall_seconds'))]
    m = result.get('machine')
    if m:
        md.append('Machine: %s CPUs, %s GB, kernel %s, %s, %s; host image %s; other containers at start: %d; '
                  'load average at start %s, at end %s.' % (
                      m['cpus'], m.get('memory_gb'), m['kernel'], m['podman'], m['ansible'], m['host_image'],
                      len(m['other_containers']), m['load_avg'], result.get('load_end')))
    md.append('Settings: hosts %s, %d repetitions, forks %d, 20 MB binary; ours = playbooks/deploy.yml, '
              'systemd_socket, canary_steps ["100%%"], bake 0, with verification; baseline = '
              'benchmarks/baseline/deploy.yml (copy, link, restart).' % (result['hosts'], result['reps'], FORKS))
    if result.get('error'):
        md += ['', '**Run stopped early:** `%s`' % result['error'].splitlines()[0]]
    if result.get('deploy_runs'):
        rows = deploy_table(result['deploy_runs'], result['hosts'])
        md += ['', '## Deploy time (median seconds, wall clock of ansible-playbook)', '',
               '| hosts | ours | baseline | ours ÷ baseline | ours, default steps [1, 25%%, 100%%], bake 0 '
               '| highest 1-min load at a run start (%s CPUs) |' % (m or {}).get('cpus', '?'),
               '|---|---|---|---|---|---|']
        for r in rows:
            md.append('| %d | %s | %s | %s | %s | %s |' % (
                r['n'], fmt(r['ours']), fmt(r['baseline']), r['ratio'], fmt(r['default_steps']), fmt(r['load'])))
        top = max(r['n'] for r in result['deploy_runs'])
        for tool in ('ours', 'baseline'):
            last = [r for r in result['deploy_runs'] if r['tool'] == tool and r['kind'] == 'deploy' and r['n'] == top
                    and r.get('slowest_tasks')]
            if last:
                md += ['', 'Where the time went, %s, %d hosts, last repetition (%s s, 1-min load %s -> %s): '
                       'longest task time on one host' % (tool, top, last[-1]['seconds'], last[-1]['load1'][0],
                                                          last[-1]['load1'][1]), '']
                md += ['- %s (%s): %s s' % (t['task'], t['action'], t['max_s']) for t in last[-1]['slowest_tasks']]
        md += ['', '## No-op re-run (same artifact again)', '',
               'The floor is benchmarks/baseline/floor.yml: one `ping` per host, the least any ansible-playbook '
               'run that reaches every host takes; no re-run can be faster than it.', '',
               '| hosts | first deploy s | no-op s | no-op ÷ first | no-op changed | baseline re-run s '
               '(changed) | floor s | floor ÷ first |', '|---|---|---|---|---|---|---|---|']
        for r in rows:
            md.append('| %d | %s | %s | %s | %s | %s (%s) | %s | %s |' % (
                r['n'], fmt(r['ours']), fmt(r['ours_noop']), r['noop_ratio'],
                ', '.join(str(c) for c in r['ours_noop_changed']), fmt(r['baseline_noop']),
                ', '.join(str(c) for c in r['baseline_noop_changed']), fmt(r.get('floor')), r.get('floor_ratio')))
    if result.get('transfer'):
        md += ['', '## Transfer (host 1, median seconds and MB/s)', '',
               '| size | push (binary_upload task) | scp | pull (binary_upload url=) | push ÷ scp throughput '
               '| pull ÷ push |', '|---|---|---|---|---|---|']
        for r in transfer_table(result['transfer']):
            s, t = r['seconds'], r['mb_per_s']
            md.append('| %d MB | %s s (%s MB/s) | %s s (%s MB/s) | %s s (%s MB/s) | %s | %s |' % (
                r['size_mb'], s['push'], t['push'], s['scp'], t['scp'], s['pull'], t['pull'], r['push_vs_scp'],
                r['pull_vs_push']))
    if result.get('module_run_floor'):
        fl = result['module_run_floor']
        md += ['', 'The floor of a task that runs a module (benchmarks/baseline/floor.yml on host 1, median): %s s for '
               'the first task of a run (it opens the connection, as the push task does), %s s for one more module '
               'run over the open connection. A push verifies and records what arrived in at least one module run, '
               'which scp does not do.' % (median([r['first'] for r in fl if r['first']]),
                                           median([r['second'] for r in fl if r['second']]))]
    if result.get('sha256_seconds'):
        md += ['', 'sha256 of the file (part of a push, not of scp): %s.' % '; '.join(
            '%s: controller %s s, host %s s' % (k, v['controller'], v['host'])
            for k, v in sorted(result['sha256_seconds'].items()))]
    if result.get('roundtrips'):
        md += ['', '## Round trips per host per deploy (host 1 alone, counted)', '',
               '| connection | run | module runs (-vvv) | other commands (-vvv) | file transfers (-vvv) '
               '| host: connections | host: exec sessions | host: sftp sessions | host: module runs | s |',
               '|---|---|---|---|---|---|---|---|---|---|']
        for r in result['roundtrips']:
            t, h = r['totals'], r['host']
            other = sum(v for k, v in t.items() if k not in ('module', 'transfer'))
            md.append('| %s | %s | %d | %d | %d | %d | %d | %d | %d | %s |' % (
                r['connection'], r['kind'], t.get('module', 0), other, t.get('transfer', 0), h['connections'],
                h['exec_sessions'], h['sftp_sessions'], h['module_runs'], r['seconds']))
        for r in result['roundtrips']:
            if r['connection'] != 'ssh':
                continue
            md += ['', 'Per task, %s, %s (changed %d): module runs, other commands, transfers' % (
                r['connection'], r['kind'], r['changed']), '']
            for t in r['per_task']:
                extra = ', '.join('%s %d' % (k, v) for k, v in sorted(t.items()) if k not in ('task', 'module'))
                md.append('- %s: %d module run%s%s' % (t['task'], t.get('module', 0),
                                                       '' if t.get('module', 0) == 1 else 's',
                                                       ('; ' + extra) if extra else ''))
            md.append('- modules as the host logged them: %s' % ', '.join(
                '%s %d' % kv for kv in sorted(r['host']['modules'].items())))
    if result.get('rollback'):
        md += ['', '## Rollback latency (host 1, systemd_socket)', '',
               '| case | failing verdict (task) | old version answering after the verdict | old version stopped '
               'during the deploy | seen during the deploy | deploy rc / s |', '|---|---|---|---|---|---|']
        for r in result['rollback']:
            md.append('| %s | %s | %s | %s | %s | %s / %s |' % (
                r['case'], r.get('verdict_task', 'none seen'),
                'n/a' if r['latency_s'] is None else '%.2f s' % r['latency_s'],
                'yes' if r['old_stopped'] else 'no (latency 0)',
                ', '.join('%s %d' % kv for kv in sorted(r['whole_deploy']['versions'].items())) +
                ('; failed %d' % r['whole_deploy']['failed'] if r['whole_deploy']['failed'] else ''),
                r['deploy_rc'], r['deploy_seconds']))
        for r in result['rollback']:
            if r.get('after_verdict'):
                md += ['', '%s: tasks on the host after the verdict (start after it, duration): %s' % (
                    r['case'], '; '.join('%s +%s s (%s s)' % (t['task'], t['start'], t['seconds'])
                                         for t in r['after_verdict']))]
    if result.get('scale'):
        md += ['', '## Scale model', '']
        for tool, s in result['scale'].items():
            c = s['check']
            why = dict(b='b set to 0: the line through the one-batch runs had a negative slope or intercept '
                         '(noise), c is their median',
                       p='p set to 0: no run with W > 1, or it came out below 0; predictions with W > 1 are '
                         'then a lower bound')
            md += ['%s: `%s`%s' % (tool, s['formula'], ''.join(' (%s)' % why[d] for d in s['model']['dropped'])),
                   '', 'check at %d hosts: measured %s s, predicted %s s (%s%%, %s).' % (
                       c['n'], c['measured'], c['predicted'], c['error_pct'],
                       'fitted without the %d-host runs' % c['n'] if c['held_out'] else 'in-sample'), '',
                   '| hosts | serial | forks | waves W | predicted |', '|---|---|---|---|---|']
            for p in s['predictions']:
                md.append('| %d | %s | %d | %d | %s s (%.1f min) |' % (p['n'], p['serial'], p['forks'], p['waves'],
                                                                       p['seconds'], p['seconds'] / 60.0))
            md.append('')
    with open(os.path.splitext(out)[0] + '.md', 'w') as f:
        f.write('\n'.join(md) + '\n')
    print('\n'.join(md))
    if result.get('deploy_runs'):
        common.plot(os.path.join(HERE, 'plot.py'), out, os.path.join(os.path.dirname(out), 'deploy-time.png'))


def use_mitogen():
    """The environment that makes ansible-playbook use mitogen's linear strategy."""
    import ansible_mitogen
    strategies = os.path.join(os.path.dirname(ansible_mitogen.__file__), 'plugins', 'strategy')
    return dict(ANSIBLE_STRATEGY_PLUGINS=strategies, ANSIBLE_STRATEGY='mitogen_linear')


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--hosts', default=os.environ.get('BENCH_HOSTS') or '1 5 10 20',
                   help='host counts, e.g. "1 5 10 20" (at most 50: about 60 MB of memory per host); '
                        'default $BENCH_HOSTS or that')
    p.add_argument('--reps', type=int, default=int(os.environ.get('BENCH_REPS') or 3),
                   help='repetitions per host count and tool (default $BENCH_REPS or 3)')
    p.add_argument('--default-steps-reps', type=int, default=1,
                   help='runs per host count of deploy.yml with the default canary steps (0: none)')
    p.add_argument('--sections', default='deploy,roundtrips,transfer,rollback')
    p.add_argument('--out', default=os.path.join(RESULTS, 'latest.json'))
    p.add_argument('--report', metavar='JSON', help='no run: tables, model and plot again from saved results')
    p.add_argument('--mitogen', action='store_true',
                   help="every run with mitogen's linear strategy (installed in build/venv by make venv)")
    a = p.parse_args(argv)
    a.hosts = sorted(set(int(x) for x in a.hosts.replace(',', ' ').split()))
    if not a.hosts or a.hosts[0] < 1 or a.hosts[-1] > 50:
        p.error('--hosts: host counts from 1 to 50, got %s' % a.hosts)
    if a.reps < 1:
        p.error('--reps: at least 1')
    a.sections = [s for s in a.sections.split(',') if s]
    bad = set(a.sections) - {'deploy', 'roundtrips', 'transfer', 'rollback'}
    if bad:
        p.error('--sections: unknown %s' % ', '.join(sorted(bad)))
    return a


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(WORK, exist_ok=True)
    if args.report:
        with open(args.report) as f:
            result = json.load(f)
        section_scale(result, result['hosts'])
        out = args.out if args.out != os.path.join(RESULTS, 'latest.json') else args.report
        with open(out, 'w') as f:       # the plot reads the model from the file
            json.dump(result, f, indent=1)
        report(result, out)
        return 0
    if args.mitogen:
        MITOGEN.update(use_mitogen())
    command = 'build/venv/bin/python benchmarks/deploy/run.py ' + ' '.join(
        argv if argv is not None else sys.argv[1:])
    result = dict(command=command.strip(), commit=common.commit(), hosts=args.hosts, reps=args.reps,
                  default_steps_reps=args.default_steps_reps, sections=args.sections, forks=FORKS)
    started = time.time()
    log('collection copy, artifacts, %d hosts' % args.hosts[-1])
    common.install_collection(DIST, COLLECTIONS)
    arts = Artifacts(WORK)
    shutil.rmtree(os.path.join(WORK, 'logs'), ignore_errors=True)
    shutil.rmtree(os.path.join(WORK, 'cp'), ignore_errors=True)
    try:
        hosts = common.start_hosts(PREFIX, args.hosts[-1])
        runner = Runner(hosts, testhosts.inventory_path(PREFIX))
        result['machine'] = common.machine(hosts)
        prepare_hosts(runner, hosts, arts)
        for name, fn in (('deploy', section_deploy), ('roundtrips', section_roundtrips),
                         ('transfer', section_transfer), ('rollback', section_rollback)):
            if name in args.sections:
                t0 = time.time()
                log('== %s' % name)
                fn(runner, arts, args, result)
                result.setdefault('section_seconds', {})[name] = round(time.time() - t0, 1)
    except Exception as exc:  # keep what was measured; the report says where it stopped
        result['error'] = '%s: %s' % (type(exc).__name__, exc)
        log('stopped: %s' % result['error'])
    finally:
        testhosts.down(PREFIX)
        result['wall_seconds'] = round(time.time() - started, 1)
        result['load_end'] = common.load_avg()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    try:
        section_scale(result, args.hosts)
    finally:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
    report(result, args.out)
    log('results: %s (%.0f s)' % (args.out, result['wall_seconds']))
    return 1 if result.get('error') else 0


if __name__ == '__main__':
    sys.exit(main())
