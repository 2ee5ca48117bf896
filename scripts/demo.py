# -*- coding: utf-8 -*-
"""make demo: three local test hosts; v1, then v2 as a canary under load, then an unhealthy v3 that the
canary stops and rolls back at its first batch; says what happened."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'hosts'))
sys.path.insert(0, os.path.join(REPO, 'tests', 'load'))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))

import loadprobe  # noqa: E402
import testhosts  # noqa: E402
import testlib  # noqa: E402

APP = 'hotswap-demo'
REPORT_DIR = os.path.join(REPO, 'build', 'demo-report')
PORT = 8080


def say(msg):
    print('\n==> %s' % msg, flush=True)


# The hotswap.deploy.rollout callback's lines while the rollout runs, and its report's path.
ROLLOUT_LINE = re.compile(r'^(Batch \d|\S+: (deployed|already|failed at|analysis|switched back|unreachable))')


def rollout_lines(out):
    """The callback's progress lines, then its summary table and report path (from 'Rollout summary' to the
    next empty line), each once."""
    lines = [line for line in out.splitlines() if ROLLOUT_LINE.match(line)]
    if 'Rollout summary' in out:
        lines += out[out.index('Rollout summary'):].split('\n\n', 1)[0].splitlines()
    return lines


def play_recap(out):
    """Ansible's PLAY RECAP block (the callback's summary that follows it is printed by rollout_lines)."""
    return out[out.rfind('PLAY RECAP'):].split('\n\n', 1)[0].strip()


def deploy(inventory, version, binary, strategy, expect_failure=False, **more):
    # deploy.yml goes only to the hosts named (the test hosts' group); the demo app's flags for the
    # strategy are service settings (the collection passes none by default).
    extra = dict(app=APP, version=version, artifact=binary, checksum=testlib.sha256(binary), listen_port=PORT,
                 restart_strategy=strategy, service_type='notify', deploy_hosts=testlib.TEST_GROUP,
                 service_args=testlib.demo_service_args(strategy), **more)
    vars_file = os.path.join(REPO, 'build', 'demo-vars-%s.json' % version)
    with open(vars_file, 'w') as f:
        json.dump(extra, f)
    argv = ['ansible-playbook', '-i', inventory, os.path.join(REPO, 'playbooks', 'deploy.yml'), '-e', '@' + vars_file]
    print('$ ' + ' '.join(argv), flush=True)
    start = time.monotonic()
    # The rollout's progress lines and, in build/demo-report/, its HTML report (hotswap.deploy.rollout).
    env = testlib.ansible_env()
    env.update(ANSIBLE_CALLBACKS_ENABLED='hotswap.deploy.rollout', HOTSWAP_REPORT_DIR=REPORT_DIR)
    proc = subprocess.run(argv, env=env, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    took = time.monotonic() - start
    print('\n'.join(rollout_lines(proc.stdout)))
    verdicts = dict(re.findall(r'"msg": "(\S+): \S+ -> \S+; (\S+?);', proc.stdout))
    print(play_recap(proc.stdout))
    if expect_failure:
        if proc.returncode == 0:
            raise SystemExit('demo: the deploy of the unhealthy %s succeeded; it should have been stopped' % version)
        summary = re.findall(r'"msg": "(Deploy of .*?failed on .*?)"', proc.stdout)
        return summary, took
    if proc.returncode != 0:
        print(proc.stdout[-4000:])
        raise SystemExit('demo: the deploy of %s failed (rc=%d)' % (version, proc.returncode))
    return verdicts, took


def public_version(port):
    try:
        return json.loads(testlib.http_get('http://127.0.0.1:%d/healthz' % port))['version']
    except Exception as e:  # report, don't crash: the table shows what users would see
        return 'down (%s)' % type(e).__name__


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--keep', action='store_true', help='leave the hosts running afterwards')
    p.add_argument('--rate', type=float, default=300, help='requests/s of the load during the v2 deploy')
    p.add_argument('--strategy', default='systemd_socket',
                   choices=['systemd_socket', 'signal_reexec', 'reuseport', 'restart'],
                   help='restart_strategy of deploy.yml (notify_reload needs systemd >= 253; the hosts have 252)')
    args = p.parse_args()

    say('building the demo service v1.0.0 and v2.0.0 (Go, standard library only)')
    v1 = testlib.build_app('1.0.0')
    v2 = testlib.build_app('2.0.0')
    v3 = testlib.build_app('3.0.0', fault='unhealthy')

    say('starting 3 test hosts (podman: systemd + sshd, reached on 127.0.0.1 ports)')
    testhosts.ensure_image()
    prefix = 'hs-demo'
    testhosts.down(prefix)
    hosts = testhosts.up(prefix, 3)
    inventory = testhosts.inventory_path(prefix)
    try:
        ports = {h['name']: h['ports'][8080] for h in hosts}
        for h in hosts:
            print('  %-12s ssh 127.0.0.1:%d  app 127.0.0.1:%d' % (h['name'], h['ports'][22], ports[h['name']]))

        say('deploying v1.0.0 to all hosts (restart_strategy=%s)' % args.strategy)
        deploy(inventory, '1.0.0', v1, args.strategy, canary_steps=['100%'], canary_bake_time=0)
        before = {name: public_version(port) for name, port in ports.items()}

        say('deploying v2.0.0 as a canary (batches of 1, 25%%, 100%%; 5 s bake and health analysis after each)\n'
            '    while a load of %d requests/s runs against all hosts' % args.rate)
        probe = loadprobe.Probe(['http://127.0.0.1:%d/' % port for port in ports.values()],
                                rate=args.rate, duration=300).start_background()
        verdicts, took = deploy(inventory, '2.0.0', v2, args.strategy, canary_bake_time=5)
        time.sleep(1)
        load = probe.stop()
        after = {name: public_version(port) for name, port in ports.items()}

        say('what happened')
        print('  %-12s %-10s    %-10s %s' % ('host', 'before', 'after', 'health verdict'))
        for name in sorted(ports):
            print('  %-12s %-10s -> %-10s %s' % (name, before[name], after[name], verdicts.get(name, '?')))
        print('\n  deploy of v2.0.0 took %.1f s' % took)
        print('  load during it: %(sent)d requests, %(failed)d failed (%(retried)s retried by the client on a '
              'closed keep-alive connection), p50 %(p50)s ms, p99 %(p99)s ms'
              % dict(load, retried=load.get('retried', 0), **load['latency_ms']))
        for cause, n in load['failure_causes'].items():
            print('    %5d failed: %s' % (n, cause))
        for target, versions in sorted(load['versions'].items()):
            print('    %s served %s' % (target, ', '.join('%s x%d' % kv for kv in sorted(versions.items()))))
        if load['failed'] and args.strategy == 'restart':
            print('  (a plain `systemctl restart` refuses connections while the process is replaced;\n'
                  '   the socket-preserving strategies remove that: docs/app-contract.md)')
        elif load['failed']:
            print('  requests failed with a socket-preserving strategy: that is a bug, please report it')
        ok = all(v == '2.0.0' for v in after.values()) and (not load['failed'] or args.strategy == 'restart')

        say('deploying v3.0.0, built to answer its health check with 503: the canary stops at the first batch')
        probe = loadprobe.Probe(['http://127.0.0.1:%d/' % port for port in ports.values()],
                                rate=args.rate, duration=300).start_background()
        summary, took = deploy(inventory, '3.0.0', v3, args.strategy, expect_failure=True, canary_bake_time=5,
                               ready_timeout=10)
        time.sleep(1)
        load = probe.stop()
        final = {name: public_version(port) for name, port in ports.items()}
        for line in summary:
            print('  ' + line.replace('\\n', ' '))
        print('  after %.1f s every host serves: %s' % (took, ', '.join('%s %s' % kv for kv in sorted(final.items()))))
        print('  load during it: %(sent)d requests, %(failed)d failed' % load)
        ok = ok and all(v == '2.0.0' for v in final.values()) and (not load['failed'] or args.strategy == 'restart')
        return 0 if ok else 1
    finally:
        if args.keep:
            print('\nhosts left running; inventory: %s; remove with: make hosts-down PREFIX=%s' % (inventory, prefix))
        else:
            testhosts.down(prefix)


if __name__ == '__main__':
    sys.exit(main())
