# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Zero-downtime benchmark: each restart strategy during a rolling deploy under fixed-rate load.

    build/venv/bin/python benchmarks/zero_downtime/run.py [--quick] [--rate 1000] [--duration 55]
        [--strategies restart,systemd_socket,...] [--keepalive on|off|both] [--hosts 3] [--lb off|on|both]

--lb on|both: the load goes through a real HAProxy (Debian's, on a host of its own) to the app hosts; `on`
deploys with lb=haproxy (each host drained before it changes), `both` also without (the same path, no drain),
side by side per strategy. Results: results/lb[-fault-<fault>].json.

Needs the venv and the test host image (`make bench-zero-downtime` does both). Builds and installs
its own copy of the collection (build/bench-collections), starts its own hosts (systemd254 image
for every strategy, so all runs face identical hosts) and removes them at the end. A full run writes
results/latest.json and docs/zero-downtime.png; --quick writes under build/bench-zero-downtime/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import common  # noqa: E402  (puts tests/hosts, tests/integration, tests/load on sys.path)
from common import REPO, load_avg, median, ratio  # noqa: E402
import lblib  # noqa: E402
import loadprobe  # noqa: E402
import testhosts  # noqa: E402
import testlib  # noqa: E402

STRATEGIES = ('restart', 'systemd_socket', 'signal_reexec', 'notify_reload', 'reuseport')
SHORT = {'restart': 'rs', 'systemd_socket': 'ss', 'signal_reexec': 'sr', 'notify_reload': 'nr', 'reuseport': 'rp'}
VARIANT = 'systemd254'          # notify_reload needs systemd >= 253; every run uses it so hosts are identical
PORT = 8080
V1, V2 = '1.0.0', '2.0.0'
DIST = os.path.join(REPO, 'build', 'bench-dist')
COLLECTIONS = os.path.join(REPO, 'build', 'bench-collections')
WORK = os.path.join(REPO, 'build', 'bench-zero-downtime')


def playbook(inventory, extra, events=None):
    """ansible-playbook hotswap.deploy.deploy with our collection copy; events: graceful_restart timings file."""
    vars_file = os.path.join(WORK, 'vars-%d.json' % time.monotonic_ns())
    with open(vars_file, 'w') as f:
        json.dump(extra, f)
    env = common.ansible_env(COLLECTIONS, events=events)
    argv = [os.path.join(testlib.VENV_BIN, 'ansible-playbook'), '-i', inventory, 'hotswap.deploy.deploy',
            '-e', '@' + vars_file]
    start = time.time()
    try:
        proc = subprocess.run(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=900, check=False)
    finally:
        os.unlink(vars_file)
    return proc.returncode, proc.stdout, time.time() - start


def deploy_vars(app, strategy, version, artifact, serial, lb_host=None):
    # deploy_hosts: the test hosts' group (deploy.yml has no default of all hosts); service_args: the
    # demo app's flags for the strategy (the collection passes none by default).
    extra = dict(app=app, version=version, artifact=artifact, checksum=testlib.sha256(artifact), listen_port=PORT,
                 restart_strategy=strategy, service_type='notify', ready_timeout=15, drain_timeout=20,
                 canary_steps=[serial], canary_bake_time=0, deploy_hosts=testlib.TEST_GROUP,
                 service_args=testlib.demo_service_args(strategy))
    if lb_host:
        extra.update(lb='haproxy', lb_host=lb_host, lb_backend=app)
    return extra


def journal(hosts, app, since):
    """The app's journal on every host since `since` (epoch s): evidence when a graceful run failed."""
    out = {}
    for host in hosts:
        out[host['name']] = testlib.host_sh(host, "journalctl --no-pager -o short-precise --since @%d -u '%s*'"
                                            % (int(since), app), check=False)[-20000:]
    return out


def one_run(hosts, inventory, strategy, keepalive, args, artifacts, lb=None):
    """lb: None (the probe hits every host), or (fleet, drain): through HAProxy, deployed with lb=haproxy or not."""
    app = 'hb%s%s%s' % (SHORT[strategy], 'k' if keepalive else 'c', '' if lb is None else 'd' if lb[1] else 'n')
    run = dict(strategy=strategy, keepalive=keepalive, app=app, load_before=load_avg(),
               targets=dict((h['name'], '127.0.0.1:%d' % h['ports'][PORT]) for h in hosts))
    lb_host = None
    if lb is not None:
        fleet, drain = lb
        lblib.configure_haproxy(fleet, app, PORT)
        run.update(lb='haproxy' if drain else 'through haproxy, no drain',
                   frontend='127.0.0.1:%d' % fleet.frontend_port)
        lb_host = fleet.lb['name'] if drain else None
    rc, out = playbook(inventory, deploy_vars(app, strategy, V1, artifacts[V1], '100%'))[:2]
    if rc != 0:
        run['error'] = 'deploy of %s failed:\n%s' % (V1, out[-4000:])
        return run
    events = os.path.join(WORK, '%s-events.jsonl' % app)
    if os.path.exists(events):
        os.unlink(events)
    # Open-ended duration: stopped below, once the deploy is done and the wanted time has passed.
    if lb is not None:
        lblib.wait_all_up(lb[0], app)
    urls = ['http://%s%s' % (run['frontend'], args.path)] if lb is not None else \
        ['http://%s%s' % (t, args.path) for t in run['targets'].values()]
    probe = loadprobe.Probe(urls, rate=args.rate,
                            duration=args.duration + 300, keepalive=keepalive, timeout=args.timeout,
                            workers=args.workers)
    probe.start_background()
    t0 = time.time()
    try:
        time.sleep(args.warmup)
        rc, out, seconds = playbook(inventory, deploy_vars(app, strategy, V2, artifacts[V2], 1, lb_host),
                                    events=events)
        # Steady state after the deploy: to --duration, and at least --tail seconds.
        stop_at = max(args.duration, time.time() - t0 + args.tail)
        time.sleep(max(0.0, stop_at - (time.time() - t0)))
    finally:
        summary = probe.stop()
    run.update(deploy_rc=rc, deploy_seconds=round(seconds, 1), t0=t0, load_after=load_avg())
    if rc != 0:
        run['deploy_output'] = out[-6000:]
    run['events'] = []
    if os.path.exists(events):
        with open(events) as f:
            run['events'] = [json.loads(line) for line in f if line.strip()]
    if summary['failed'] or rc != 0:
        run['journal'] = journal(hosts, app, t0 - 5)
    run['probe'] = dict((k, summary[k]) for k in ('sent', 'ok', 'failed', 'retried', 'elapsed_s', 'achieved_rate',
                                                  'workers', 'stopped', 'latency_ms', 'versions', 'version_switch',
                                                  'failure_causes', 'timeline', 'failures'))
    run.update(analyse(run))
    return run


def analyse(run):
    """Figures of one run from its probe summary and events (also for --report on saved results).

    Switch window of a host: its restart task (start to end) and its first answer from V2, widened
    by 1 s. The probe gives a p99 per second, so window p99s are per-second p99s: `switch_p99` is the
    worst second in a window, compared with the median second outside (steady: `idle` before and
    after the playbook, `busy` while it works on other hosts).
    """
    s, t0 = run['probe'], run['t0']
    windows, per_host, playbook_span = [], {}, []
    for ev in run['events']:
        if ev['event'] in ('playbook_start', 'playbook_end'):
            playbook_span.append(ev['wall'] - t0)
        if ev['event'] != 'restart':
            continue
        flip = s['version_switch'].get(run['targets'][ev['host']], {}).get(V2)
        start = None if ev['start'] is None else round(ev['start'] - t0, 2)
        points = [x for x in (start, ev['end'] - t0, flip) if x is not None]
        windows.append((min(points) - 1, max(points) + 1))
        res = ev['result']
        per_host[ev['host']] = dict(task_start=start, task_end=round(ev['end'] - t0, 2), version_flip=flip,
                                    elapsed=res.get('elapsed'), timings=res.get('timings'),
                                    transition=res.get('transition'), stage=res.get('stage'))
    pb_start, pb_end = (playbook_span + [0, 1e9])[:2]
    last = len(s['timeline']) - 1
    switch, idle, busy = [], [], []
    for sec in s['timeline']:
        t = sec['t']
        if sec['p99_ms'] is None:
            continue
        if any(a < t + 1 and t < b for a, b in windows):
            switch.append(sec['p99_ms'])
        elif 0 < t < last:       # first and last second: connection set-up, partial second
            (busy if pb_start < t + 1 and t < pb_end else idle).append(sec['p99_ms'])
    steady = idle + busy
    # The probe sends late slots in a burst: a short second means the client itself was starved of CPU.
    rate = s['achieved_rate'] or 0
    client_stalls = [sec['t'] for sec in s['timeline'][1:-1] if sec['sent'] < 0.9 * rate]
    switch_p99, steady_p99 = (max(switch) if switch else None), median(steady)
    elapsed = [h['elapsed'] for h in per_host.values() if h['elapsed'] is not None]
    return dict(sent=s['sent'], failed=s['failed'], retried=s['retried'], failure_causes=s['failure_causes'],
                failures_in_switch_windows=sum(1 for f in s['failures'] if any(a <= f['t'] <= b for a, b in windows)),
                failures_listed=len(s['failures']), achieved_rate=s['achieved_rate'],
                p50=s['latency_ms']['p50'], p99=s['latency_ms']['p99'], max=s['latency_ms']['max'],
                switch_p99=switch_p99, switch_p99_median=median(switch), steady_p99=steady_p99,
                steady_worst_p99=max(steady) if steady else None, idle_p99=median(idle), busy_p99=median(busy),
                busy_worst_p99=max(busy) if busy else None,
                switch_ratio=round(switch_p99 / steady_p99, 2) if switch_p99 and steady_p99 else None,
                switch_busy_ratio=round(median(switch) / median(busy), 2) if switch and busy else None,
                switch_windows=[(round(a, 2), round(b, 2)) for a, b in windows], hosts=per_host,
                switch_s_median=median(elapsed), switch_s_max=max(elapsed) if elapsed else None,
                client_stall_seconds=client_stalls)


def table(runs):
    """Markdown: one row per strategy x keep-alive, ratios to `restart` with the same keep-alive."""
    base = dict(((r['keepalive'], r.get('lb')), r) for r in runs if r['strategy'] == 'restart' and 'error' not in r)
    rows = ['| strategy | keep-alive | load balancer | sent | failed (causes) | retried | p50 ms | p99 ms | max ms '
            '| switch p99 / steady p99 ms (ratio) | switch s per host (median / max) | deploy s '
            '| failed ÷ restart | p99 ÷ restart |', '|' + '---|' * 14]
    detail = ['| strategy | keep-alive | switch seconds: worst / median | steady seconds: median idle / busy / all '
              '| steady worst second | median switch ÷ median busy | seconds the client itself lagged |',
              '|' + '---|' * 7]
    for r in runs:
        ka = 'on' if r['keepalive'] else 'off'
        lbcol = r.get('lb') or 'none'
        if 'error' in r:
            rows.append('| %s | %s | %s | %s |' % (r['strategy'], ka, lbcol, r['error'].splitlines()[0]) + ' |' * 10)
            continue
        causes = ', '.join('%s %d' % kv for kv in sorted(r['failure_causes'].items()))
        b = base.get((r['keepalive'], r.get('lb')), {})
        rows.append('| %s | %s | %s | %d | %d%s | %d | %s | %s | %s | %s / %s (%s) | %s / %s | %s%s | %s | %s |' % (
            r['strategy'], ka, lbcol, r['sent'], r['failed'], ' (%s)' % causes if causes else '', r['retried'],
            r['p50'], r['p99'], r['max'], r['switch_p99'], r['steady_p99'], r['switch_ratio'],
            r['switch_s_median'], r['switch_s_max'], r['deploy_seconds'],
            '' if r['deploy_rc'] == 0 else ' (rc %d)' % r['deploy_rc'],
            ratio(r['failed'], b.get('failed')), ratio(r['p99'], b.get('p99'))))
        detail.append('| %s | %s | %s / %s | %s / %s / %s | %s | %s | %s |' % (
            r['strategy'], ka, r['switch_p99'], r['switch_p99_median'], r['idle_p99'], r['busy_p99'],
            r['steady_p99'], r['steady_worst_p99'], r['switch_busy_ratio'],
            ', '.join(str(t) for t in r['client_stall_seconds']) or 'none'))
    return '\n'.join(rows) + '\n\nPer-second p99 in ms:\n\n' + '\n'.join(detail)


def report(result, out, png):
    """latest.md (machine, command, tables) beside the JSON, and the figure."""
    m = result.get('machine', {})
    md = ['Command: `%s` (collection from work tree %s)' % (result['command'], result.get('commit', '?')),
          'Machine: %s CPUs, kernel %s, %s, %s; hosts: %s (%s); other containers running at start: %s; '
          'load average at start %s.' % (m.get('cpus'), m.get('kernel'), m.get('podman'), m.get('ansible'),
                                         ', '.join(sorted(set(m.get('host_systemd', {}).values()))),
                                         m.get('host_image'), len(m.get('other_containers', [])), m.get('load_avg')),
          '%g req/s over %d hosts, >= %g s per run, %s, whole benchmark %s s.' % (
              result['rate'], result['hosts'], result['duration'], m.get('date'), result.get('wall_seconds')),
          '', table(result['runs'])]
    with open(os.path.splitext(out)[0] + '.md', 'w') as f:
        f.write('\n'.join(md) + '\n')
    print('\n'.join(md))
    common.plot(os.path.join(HERE, 'plot.py'), out, png)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rate', type=float, default=None, help='requests/s over all hosts (default 1000; quick 200)')
    p.add_argument('--duration', type=float, default=None, help='seconds of load per run (default 55; quick 15)')
    p.add_argument('--strategies', default=None, help='comma-separated; default all: %s' % ','.join(STRATEGIES))
    p.add_argument('--keepalive', choices=('on', 'off', 'both'), default=None, help='default both; quick on')
    p.add_argument('--hosts', type=int, default=3)
    p.add_argument('--quick', action='store_true', help='smoke test: 200 req/s, 15 s, systemd_socket, keep-alive on')
    p.add_argument('--warmup', type=float, default=3, help='seconds of load before the deploy starts')
    p.add_argument('--tail', type=float, default=5, help='least seconds of load after the deploy ends')
    p.add_argument('--timeout', type=float, default=10, help='seconds allowed per request')
    # A 1 s stall at 1000 req/s needs ~1000 requests in flight; fewer workers turn it into client_overload.
    p.add_argument('--workers', type=int, default=2048, help='most requests in flight')
    p.add_argument('--out', default=None, help='results JSON (default results/latest.json; quick: under build/)')
    p.add_argument('--fault', default='', help='demo app fault of both builds, e.g. exit-on-term (an app that '
                   'exits at once on SIGTERM, as many do); png and default out under build/')
    p.add_argument('--report', metavar='JSON', help='no run: figures, tables and plot again from saved results')
    p.add_argument('--lb', choices=('off', 'on', 'both'), default='off',
                   help='load through a real HAProxy: on = deployed with lb=haproxy (drain), both = with and without')
    p.add_argument('--path', default='/', help='request path, e.g. /slow?ms=40 (requests in flight at each restart)')
    a = p.parse_args(argv)
    a.rate = a.rate or (200 if a.quick else 1000)
    a.duration = a.duration or (15 if a.quick else 55)
    a.strategies = a.strategies.split(',') if a.strategies else (['systemd_socket'] if a.quick else list(STRATEGIES))
    bad = [s for s in a.strategies if s not in STRATEGIES]
    if bad:
        p.error('unknown strategies %s; known: %s' % (', '.join(bad), ', '.join(STRATEGIES)))
    a.keepalive = a.keepalive or ('on' if a.quick else 'both')
    out_dir = WORK if a.quick else os.path.join(HERE, 'results')
    name = 'quick' if a.quick else ('fault-' + a.fault) if a.fault else 'latest'
    if a.lb != 'off' and not a.quick:
        name = 'lb' + ('-fault-' + a.fault if a.fault else '')
    a.out = a.out or a.report or os.path.join(out_dir, name + '.json')
    # The plot in docs/ is the full run of the contract-following app only.
    a.png = os.path.join(REPO, 'docs', 'zero-downtime.png') if name == 'latest' else os.path.join(WORK, name + '.png')
    return a


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(WORK, exist_ok=True)
    if args.report:
        with open(args.report) as f:
            result = json.load(f)
        for run in result['runs']:
            if 'probe' in run:
                run.update(analyse(run))
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
        report(result, args.out, args.png)
        return 0
    command = 'build/venv/bin/python benchmarks/zero_downtime/run.py ' + ' '.join(argv if argv is not None
                                                                                  else sys.argv[1:])
    # The collection under test is the work tree as it is now: say which.
    commit = common.commit()
    common.install_collection(DIST, COLLECTIONS)
    artifacts = dict((v, testlib.build_app(v, fault=args.fault)) for v in (V1, V2))
    prefix = 'hs-bench-%d' % os.getpid()
    kas = {'on': [True], 'off': [False], 'both': [True, False]}[args.keepalive]
    result = dict(command=command.strip(), commit=commit, fault=args.fault, lb=args.lb, path=args.path, rate=args.rate,
                  duration=args.duration, hosts=args.hosts,
                  variant=VARIANT, warmup=args.warmup, tail=args.tail, timeout=args.timeout, workers=args.workers,
                  runs=[])
    started, done = time.time(), False
    try:
        if args.lb == 'off':
            hosts = common.start_hosts(prefix, args.hosts, variant=VARIANT)
            inventory = testhosts.inventory_path(prefix)
            drains = [None]
        else:
            fleet = lblib.start(prefix, args.hosts, os.path.join(WORK, 'lb-inventory.yml'), variant=VARIANT)
            hosts, inventory = fleet.hosts, fleet.inventory
            drains = [(fleet, True)] if args.lb == 'on' else [(fleet, False), (fleet, True)]
        result['machine'] = common.machine(hosts)
        # Interleaved: every strategy meets the same machine state, keep-alive on then off.
        for keepalive in kas:
            for strategy in args.strategies:
                for lb in drains:
                    print('== %s keep-alive %s%s' % (strategy, 'on' if keepalive else 'off',
                                                     '' if lb is None else ' lb ' + ('on' if lb[1] else 'off')), flush=True)
                    run = one_run(hosts, inventory, strategy, keepalive, args, artifacts, lb)
                    testlib.remove_app(hosts, run['app'])
                    result['runs'].append(run)
                    print('   ' + ('error: ' + run['error'][:300] if 'error' in run else
                                   'sent %(sent)d failed %(failed)d retried %(retried)d p99 %(p99)s switch/steady '
                                   '%(switch_p99)s/%(steady_p99)s deploy %(deploy_seconds)ss' % run), flush=True)
        done = True
    finally:
        testhosts.down(prefix)
        testhosts.down(prefix + 'b')
        result['wall_seconds'] = round(time.time() - started, 1)
        if not done:        # keep the last complete results; what there is goes under build/
            args.out = os.path.join(WORK, 'interrupted.json')
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
    report(result, args.out, args.png)
    print('results: %s (%.0f s)' % (args.out, result['wall_seconds']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
