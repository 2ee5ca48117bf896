# -*- coding: utf-8 -*-
"""Socket-preserving restarts under real load: deploy.yml on two hosts (ssh, paramiko_ssh) per strategy.

Each test runs its own app on container port 8080 (published on 127.0.0.1, so the load probe
on the controller reaches every host) and removes it at the end. notify_reload needs systemd
>= 253 and runs on hosts of the systemd254 image variant.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

import faultlib
import testlib


PORT = 8080
GRACEFUL = ('systemd_socket', 'signal_reexec', 'notify_reload', 'reuseport')
# Strategies whose old process serves until the new one is verified (or hands over gracefully).
KEEPS_OLD_SERVING = ('signal_reexec', 'notify_reload', 'reuseport')
FAULTS = (('exit-at-start', 'ready'), ('never-ready', 'ready'), ('wrong-version', 'version'))
RESULTS = testlib.RESULTS


@pytest.fixture
def zd(request, fleet):
    """(fleet, app) for the strategy under test; the app's units and tree are removed afterwards."""
    strategy = request.cls.strategy
    hosts = request.getfixturevalue('fleet254') if strategy == 'notify_reload' else fleet
    app = 'zd' + strategy.replace('_', '')[:10]
    yield hosts, app
    testlib.remove_app(hosts, app)


def deploy(hosts, app, strategy, version, fault='', tmp_path=None, verbosity=0, **extra):
    artifact = testlib.build_app(version, fault=fault)
    v = dict(testlib.ONE_BATCH, app=app, version=version, artifact=artifact, checksum=testlib.sha256(artifact), listen_port=PORT,
             restart_strategy=strategy, service_type='notify', ready_timeout=15, drain_timeout=20)
    v.update(extra)
    return testlib.playbook(hosts.inventory, 'deploy', v, tmp_path=tmp_path, verbosity=verbosity)


class StrategyUnderLoad(object):
    """One class per strategy (below), so pytest-xdist's loadscope runs the strategies on different workers."""
    strategy = None

    def test_deploys_under_load_drop_nothing_and_faults_leave_the_old_version(self, zd, tmp_path):
        deploys_under_load(self.strategy, zd, tmp_path)


for _s in GRACEFUL:
    _cls = 'TestUnderLoad' + ''.join(p.capitalize() for p in _s.split('_'))
    globals()[_cls] = type(_cls, (StrategyUnderLoad,), {'strategy': _s})


def start_load(hosts, keepalive, rate):
    return testlib.start_load(hosts, PORT, rate, keepalive=keepalive)


finish_load, brief = testlib.finish_load, testlib.brief


def deploys_under_load(strategy, zd, tmp_path):
    hosts, app = zd
    r = deploy(hosts, app, strategy, '1.0.0', tmp_path=tmp_path)
    assert r.rc == 0, r
    for host in hosts:
        assert testlib.served_version(host, PORT) == '1.0.0'

    loads = {'keepalive': start_load(hosts, True, 120), 'close': start_load(hosts, False, 80)}
    time.sleep(1)
    for version in ('2.0.0', '2.1.0'):
        # -v: host_deploy prints each stage it runs (hotswap.deploy <host>: <stage>).
        r = deploy(hosts, app, strategy, version, tmp_path=tmp_path, verbosity=1)
        assert r.rc == 0, r
        assert 'Restart the service on the new release' in r.out
    time.sleep(1)
    for kind, probe in loads.items():
        s = finish_load(probe, 'zero-downtime-%s-%s' % (strategy, kind))
        assert s['sent'] > 500, brief(s)
        assert s['failed'] == 0, brief(s)
        # Every host served the three versions, in order, and now serves the last one.
        for target, seen in s['versions'].items():
            assert {'1.0.0', '2.0.0', '2.1.0'} <= set(seen), (target, brief(s))
    for host in hosts:
        assert testlib.served_version(host, PORT) == '2.1.0'

    # Nothing new: no restart, nothing changed.
    r = deploy(hosts, app, strategy, '2.1.0', tmp_path=tmp_path)
    assert r.rc == 0, r
    for host, counts in r.recap.items():
        assert counts['changed'] == 0, (host, r)

    # Broken releases fail at their stage, switch back, and the old version serves again.
    for fault, stage in FAULTS:
        probe = start_load(hosts, True, 100)
        r = deploy(hosts, app, strategy, '3.0.0', fault=fault, tmp_path=tmp_path, ready_timeout=10)
        time.sleep(1)
        s = finish_load(probe, 'fault-%s-%s' % (strategy, fault))
        assert r.rc != 0, r
        assert "(stage %s)" % stage in r.out, (fault, r)
        assert 'Switched back to 2.1.0-' in r.out, (fault, r)
        for host in hosts:
            assert testlib.served_version(host, PORT) == '2.1.0', (fault, host['name'])
        if strategy in KEEPS_OLD_SERVING:
            assert s['failed'] == 0, (fault, brief(s))
        faultlib.record('restart_strategies', 'new release %s (%s)' % (fault, strategy), 'a demo-app build with the '
                        '%s fault' % fault, faultlib.what_the_user_saw(r),
                        {h['name']: faultlib.leftovers(h, app) for h in hosts}, requests=faultlib.load_brief(s))


def test_killed_controller_mid_restart_rerun_converges(fleet, tmp_path):
    """The controller dies while the hosts restart; the same deploy run again finishes the job."""
    hosts, app, strategy = fleet, 'zdkill', 'signal_reexec'
    try:
        r = deploy(hosts, app, strategy, '1.0.0', tmp_path=tmp_path)
        assert r.rc == 0, r
        artifact = testlib.build_app('2.0.0')
        vars_file = os.path.join(str(tmp_path), 'kill-vars.json')
        with open(vars_file, 'w') as f:
            # The test hosts' group and the demo app's flags for the strategy, as testlib.playbook passes them.
            json.dump(testlib.with_test_defaults('deploy', dict(
                testlib.ONE_BATCH, app=app, version='2.0.0', artifact=artifact, checksum=testlib.sha256(artifact),
                listen_port=PORT, restart_strategy=strategy, service_type='notify', ready_timeout=15)), f)
        # -v: host_deploy's progress lines name the stage it starts.
        argv = [os.path.join(testlib.VENV_BIN, 'ansible-playbook'), '-i', hosts.inventory, '-v',
                'hotswap.deploy.deploy', '-e', '@' + vars_file]
        proc = subprocess.Popen(argv, env=testlib.ansible_env('ssh'), cwd=testlib.REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, universal_newlines=True, start_new_session=True)
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if 'Restart the service on the new release' in line:
                time.sleep(0.3)
                os.killpg(proc.pid, signal.SIGKILL)      # ansible-playbook and its ssh connections
                break
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, ''.join(seen)
        # The lock of the killed run is still there on every host.
        for host in hosts:
            assert testlib.host_sh(host, 'test -e /opt/%s/.hotswap/lock && echo held' % app).strip() == 'held'

        r = deploy(hosts, app, strategy, '2.0.0', tmp_path=tmp_path)
        assert r.rc == 0, r
        for host in hosts:
            assert testlib.served_version(host, PORT) == '2.0.0'
            assert testlib.host_sh(host, 'test ! -e /opt/%s/.hotswap/lock && echo free' % app).strip() == 'free'
            pids = testlib.host_sh(host, 'pgrep -fc "^/opt/%s/current/%s " || true' % (app, app)).strip()
            assert pids == '1', (host['name'], pids)
        r = deploy(hosts, app, strategy, '2.0.0', tmp_path=tmp_path)
        assert r.rc == 0 and all(c['changed'] == 0 for c in r.recap.values()), r
    finally:
        for host in hosts:
            testlib.host_sh(host, 'systemctl disable --now {a}.service >/dev/null 2>&1; rm -f '
                                  '/etc/systemd/system/{a}.service /etc/systemd/system/.hotswap-{a}.*; '
                                  'rm -rf /opt/{a}'.format(a=app), check=False)


def test_changing_strategy_on_a_running_service(fleet, tmp_path):
    """Each change of strategy stops the old units once and serves the new version under the new ones."""
    hosts, app = fleet, 'zdchange'
    steps = (('restart', '1.0.0'), ('systemd_socket', '2.0.0'), ('signal_reexec', '2.1.0'),
             ('reuseport', '2.2.0'), ('systemd_socket', '2.3.0'))
    try:
        for strategy, version in steps:
            r = deploy(hosts, app, strategy, version, tmp_path=tmp_path)
            assert r.rc == 0, (strategy, r)
            for host in hosts:
                assert testlib.served_version(host, PORT) == version, (strategy, host['name'])
                units = testlib.host_sh(host, 'ls -A /etc/systemd/system | grep -F %s || true' % app).split()
                marker = '.hotswap-%s.%s' % (app, strategy)
                expected = {'systemd_socket': {app + '.service', app + '.socket', marker},
                            'reuseport': {app + '@.service', marker}}.get(strategy, {app + '.service', marker})
                assert set(units) == expected, (strategy, units)
    finally:
        for host in hosts:
            testlib.host_sh(host, (
                'systemctl disable --now {a}.socket {a}.service {a}@a.service {a}@b.service >/dev/null 2>&1; '
                'rm -f /etc/systemd/system/{a}* /etc/systemd/system/.hotswap-{a}.*; systemctl daemon-reload; '
                'rm -rf /opt/{a}').format(a=app), check=False)
