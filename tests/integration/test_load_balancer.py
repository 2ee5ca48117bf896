# -*- coding: utf-8 -*-
"""Zero downtime for any app: drain at a real HAProxy (Debian's) in front of three app hosts.

The HAProxy host shares the machine's network namespace (tests/hosts/testhosts.py network='host'),
so its backends are the app hosts' published 127.0.0.1 ports and the load probe reaches its frontend
on 127.0.0.1 too. The load goes through HAProxy at >= 500 req/s, new connections and keep-alive, to
/slow?ms=40, so every host has requests in flight when it restarts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import lblib
import testlib
from lblib import configure_haproxy, server_states, wait_all_up

PORT = 8080
SLOW = '/slow?ms=40'
# Requests per second through HAProxy: keep-alive + a new connection per request.
RATES = {'keepalive': 300, 'close': 220}
# One host at a time: a batch of every server would leave HAProxy none to send requests to.
SERIAL = {'canary_steps': [1], 'canary_bake_time': 0}


@pytest.fixture(scope='module')
def lbfleet(tmp_path_factory):
    prefix = 'hs-itlb-%d' % os.getpid()
    try:
        yield lblib.start(prefix, 3, str(tmp_path_factory.mktemp('lb') / 'inventory.yml'))
    finally:
        lblib.stop(prefix)


def lb_vars(backend, **extra):
    v = dict(lb='haproxy', lb_host=None, lb_backend=backend, drain_timeout=20)
    v.update(extra)
    return v


def deploy(fleet, app, version, fault='', tmp_path=None, lb=True, **extra):
    artifact = testlib.build_app(version, fault=fault)
    v = dict(SERIAL, app=app, version=version, artifact=artifact, checksum=testlib.sha256(artifact),
             listen_port=PORT, restart_strategy='restart', ready_timeout=15)
    if lb:
        v.update(lb_vars(app, lb_host=fleet.lb['name']))
    v.update(extra)
    return testlib.playbook(fleet.inventory, 'deploy', v, tmp_path=tmp_path)


def first_release(fleet, app, tmp_path, fault=''):
    """1.0.0 (this build) on every host, every server ready and up at HAProxy. The test before may have left exactly
    that (the tests are in that order): then it is not deployed again; else the app goes and 1.0.0 is deployed."""
    if not testlib.serves_release(fleet.hosts, app, PORT, '1.0.0', testlib.build_app('1.0.0', fault=fault)):
        testlib.remove_app(fleet.hosts, app)
        r = deploy(fleet, app, '1.0.0', fault=fault, tmp_path=tmp_path)
        assert r.rc == 0, r
    wait_all_up(fleet, app)


def assert_serving(fleet, app, version, context=None):
    """Every server ready and up at HAProxy, every host serving `version`; the servers' states."""
    states = wait_all_up(fleet, app, context=context)
    for host in fleet.hosts:
        assert testlib.served_version(host, PORT) == version, (host['name'], context)
    return states


def start_load(fleet, path=SLOW, rates=None, duration=300):
    sys.path.insert(0, os.path.join(testlib.REPO, 'tests', 'load'))
    import loadprobe  # pylint: disable=import-outside-toplevel
    probes = {}
    for kind, rate in (rates or RATES).items():
        probes[kind] = loadprobe.Probe(['http://127.0.0.1:%d%s' % (fleet.frontend_port, path)], rate=rate,
                                       duration=duration, keepalive=kind == 'keepalive', timeout=10)
        probes[kind].start_background()
    time.sleep(1)
    return probes


def finish_load(probes, name):
    time.sleep(1)
    return {kind: testlib.finish_load(p, 'lb-%s-%s' % (name, kind)) for kind, p in probes.items()}


def failed(summaries):
    return sum(s['failed'] for s in summaries.values())


def sent(summaries):
    return sum(s['sent'] for s in summaries.values())


def rate(summaries):
    return sum(s['achieved_rate'] for s in summaries.values())


@pytest.fixture(scope='module')
def lbapp_hosts(lbfleet):
    """The app of the tests below; what one test leaves, the next may start from (first_release): the exit-on-term
    1.0.0 the first leaves is the second's, the plain 1.0.0 of the unhealthy test the weighted canary's."""
    yield lbfleet, 'lbapp'
    testlib.remove_app(lbfleet.hosts, 'lbapp')


@pytest.fixture
def lbapp(lbapp_hosts):
    fleet, app = lbapp_hosts
    configure_haproxy(fleet, app)   # a fresh HAProxy: every server at its initial weight, no reason kept
    return fleet, app


def test_failed_weighted_canary_goes_back_drained(lbapp, tmp_path):
    """The canary's automatic rollback drains too: weight 0, switched back drained, every weight restored."""
    fleet, app = lbapp
    first_release(fleet, app, tmp_path, fault='exit-on-term')
    gate = tmp_path / 'gate'
    gate.write_text('abort\n')
    probes = start_load(fleet)
    r = deploy(fleet, app, '2.0.0', fault='exit-on-term', tmp_path=tmp_path, canary_steps=[1, 2], canary_weights=[10],
               canary_manual_gate=True, canary_gate_file=str(gate), canary_gate_timeout=30)
    s = finish_load(probes, 'canary-abort')
    assert r.rc != 0, r
    assert 'stopped at batch 1' in r.out and 'manual gate: aborted' in r.out, r
    assert failed(s) == 0, {k: testlib.brief(v) for k, v in s.items()}
    states = assert_serving(fleet, app, '1.0.0', context=r)
    assert set(w for _a, _o, w in states.values()) == {1}, states
    assert not lblib.markers(fleet).strip()


def test_restart_of_an_app_that_exits_on_sigterm_drops_nothing_behind_haproxy(lbapp, tmp_path):
    """The plain restart strategy and an app that implements nothing: with lb, 0 failed; without, failures."""
    fleet, app = lbapp
    first_release(fleet, app, tmp_path, fault='exit-on-term')

    rows = {}
    for label, version, use_lb in (('without lb', '2.0.0', False), ('with lb', '3.0.0', True)):
        probes = start_load(fleet)
        r = deploy(fleet, app, version, fault='exit-on-term', tmp_path=tmp_path, lb=use_lb)
        summaries = finish_load(probes, 'exit-on-term-%s' % label.replace(' ', '-'))
        assert r.rc == 0, r
        rows[label] = summaries
        assert_serving(fleet, app, version)
    print('\nrestart strategy, app exits at once on SIGTERM, load through HAProxy (%s):' % SLOW)
    for label, s in rows.items():
        print('  %-10s sent %6d  failed %4d  %.0f req/s  causes %s' % (
            label, sent(s), failed(s), rate(s), {k: v['failure_causes'] for k, v in s.items()}))
    assert rate(rows['with lb']) >= 450, {k: testlib.brief(v) for k, v in rows['with lb'].items()}
    assert failed(rows['without lb']) > 0, {k: testlib.brief(v) for k, v in rows['without lb'].items()}
    assert failed(rows['with lb']) == 0, {k: testlib.brief(v) for k, v in rows['with lb'].items()}
    # Each host drained (its sessions ended) before maint, and is back, with no reason left behind.
    for host in fleet.hosts:
        assert '%s: ' % host['name'] in r.out and 'load balancer: drained in' in r.out, r
    assert r.out.count('load balancer: drained in') == 3 and r.out.count('now ready') == 3, r
    assert not lblib.markers(fleet).strip()

    # rollback.yml drains the same way: back to 2.0.0 under the same load, nothing dropped.
    probes = start_load(fleet)
    r = testlib.playbook(fleet.inventory, 'rollback', dict(
        lb_vars(app, lb_host=fleet.lb['name']), app=app, rollback_serial=1, listen_port=PORT,
        service_args=testlib.demo_service_args('restart')), tmp_path=tmp_path)
    s = finish_load(probes, 'exit-on-term-rollback')
    assert r.rc == 0, r
    assert failed(s) == 0, {k: testlib.brief(v) for k, v in s.items()}
    assert_serving(fleet, app, '2.0.0')


def test_unhealthy_release_stays_out_of_rotation_and_its_host_comes_back(lbapp, tmp_path):
    fleet, app = lbapp
    first_release(fleet, app, tmp_path)
    probes = start_load(fleet)
    r = deploy(fleet, app, '2.0.0', fault='unhealthy', tmp_path=tmp_path, ready_timeout=8)
    s = finish_load(probes, 'unhealthy')
    assert r.rc != 0, r
    assert 'Switched back to 1.0.0-' in r.out, r
    assert 'Load balancer: %s/%s back in rotation' % (app, fleet.hosts[0]['name']) in r.out, r
    assert failed(s) == 0, {k: testlib.brief(v) for k, v in s.items()}
    # Not one request reached the bad release through HAProxy.
    for summary in s.values():
        for seen in summary['versions'].values():
            assert '2.0.0' not in seen, testlib.brief(summary)
    states = assert_serving(fleet, app, '1.0.0')
    assert all(w > 0 for _a, _o, w in states.values()), states

    # A host with nothing to switch back to (its first release is bad) stays in maint with the reason.
    first = fleet.hosts[0]['name']
    testlib.remove_app(fleet.hosts[:1], app)
    r = deploy(fleet, app, '2.0.0', fault='unhealthy', tmp_path=tmp_path, ready_timeout=8, deploy_hosts=first)
    assert r.rc != 0, r
    admin, _op, _w = server_states(fleet, app)[first]
    assert admin & 0x01, server_states(fleet, app)
    reason = lblib.markers(fleet)
    assert 'failed on %s' % first in reason, reason
    assert 'Load balancer: %s/%s kept in maint' % (app, first) in r.out, r
    # The next good deploy puts it back into rotation (the reason was ours).
    r = deploy(fleet, app, '1.0.0', tmp_path=tmp_path, deploy_hosts=first)
    assert r.rc == 0, r
    wait_all_up(fleet, app, context=r)
    assert not lblib.markers(fleet).strip()


def test_weighted_canary_step_then_promotion(lbapp, tmp_path):
    fleet, app = lbapp
    first_release(fleet, app, tmp_path)
    canary = fleet.hosts[0]['name']
    artifact = testlib.build_app('2.0.0')
    v = dict(app=app, version='2.0.0', artifact=artifact, checksum=testlib.sha256(artifact), listen_port=PORT,
             restart_strategy='restart', canary_steps=[1, 2], canary_weights=[10], canary_bake_time=12,
             **lb_vars(app, lb_host=fleet.lb['name']))
    argv = testlib.playbook_argv(fleet.inventory, 'deploy', v, tmp_path=tmp_path)
    proc = subprocess.Popen(argv, env=testlib.ansible_env('ssh'), cwd=testlib.REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    try:
        # Wait until the canary is back in rotation on 2.0.0 with its share, then measure for 5 s.
        deadline = time.time() + 120
        while True:
            states = server_states(fleet, app)
            admin, op, weight = states[canary]
            if admin == 0 and op == 2 and weight != 1 and testlib.served_version(fleet.hosts[0], PORT) == '2.0.0':
                break
            assert time.time() < deadline and proc.poll() is None, (states, proc.poll())
            time.sleep(0.3)
        weights = dict((n, w) for n, (_a, _o, w) in states.items())
        probes = start_load(fleet, path='/', rates={'keepalive': 500}, duration=5)
        s = probes['keepalive'].summary()
    finally:
        out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-6000:]
    seen = list(s['versions'].values())[0]
    share = 100.0 * seen.get('2.0.0', 0) / max(1, sum(seen.values()))
    print('\nweighted canary step 10%%: weights %s; the canary served %.1f%% of %d requests' % (
        weights, share, s['sent']))
    assert 4 <= share <= 20, (weights, seen)
    assert s['failed'] == 0, testlib.brief(s)
    # Promotion: every host on 2.0.0, every server back to its initial weight.
    states = assert_serving(fleet, app, '2.0.0')
    assert set(w for _a, _o, w in states.values()) == {1}, states


def test_bad_load_balancer_settings_change_nothing(lbapp, tmp_path):
    fleet, app = lbapp
    first_release(fleet, app, tmp_path)
    before = {h['name']: testlib.tree_state(h, '/opt/' + app, app) for h in fleet.hosts}
    cases = {
        'socket': (dict(lb_socket='/run/haproxy/nope.sock'), '/run/haproxy/nope.sock'),
        'backend': (dict(lb_backend='nope'), 'nope'),
        'server': (dict(lb_server='nope'), 'nope'),
        'host': (dict(lb_host='no-such-host'), 'no-such-host'),
    }
    for case, (extra, named) in cases.items():
        r = deploy(fleet, app, '2.0.0', tmp_path=tmp_path, **extra)
        assert r.rc != 0, (case, r)
        assert named in r.out, (case, r)
        assert "Run the deploy steps of this host's platform" not in r.out, (case, r)
        for h in fleet.hosts:
            assert testlib.tree_state(h, '/opt/' + app, app) == before[h['name']], (case, h['name'])
        wait_all_up(fleet, app, timeout=5)

    # A drain that times out (a request longer than drain_timeout) is reported, and the deploy goes on.
    # Until stopped after the deploy: on a loaded machine the first drain can come later than any fixed duration.
    slow = start_load(fleet, path='/slow?ms=6000', rates={'keepalive': 3}, duration=180)
    r = deploy(fleet, app, '2.0.0', tmp_path=tmp_path, drain_timeout=1)
    slow['keepalive'].stop()
    assert r.rc == 0, r
    assert 'timed_out' in r.out, r
    assert_serving(fleet, app, '2.0.0')


def test_windows_host_behind_haproxy_is_checked_and_never_drained_when_unreachable(lbfleet, tmp_path):
    """Controller side only (no Windows host here): the preflight reads the Windows host's server at HAProxy,
    and the drain comes after the first task that reaches the host, so an unreachable host leaves its
    server as it was."""
    fleet = lbfleet
    import socket  # pylint: disable=import-outside-toplevel
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(('127.0.0.1', 0))
    try:
        port = closed.getsockname()[1]
        win = {'name': 'win-1', 'ports': {PORT: port}}
        lblib.configure_haproxy(lblib.LbFleet([win], fleet.lb, None), 'lbwin')
        inventory = str(tmp_path / 'inventory.yml')
        with open(fleet.inventory) as f:
            text = f.read()
        with open(inventory, 'w') as f:
            f.write(text + ('    windows:\n      hosts:\n        win-1:\n          ansible_host: 127.0.0.1\n'
                            '          ansible_port: %d\n      vars:\n        ansible_connection: winrm\n'
                            '        ansible_winrm_scheme: https\n        ansible_winrm_transport: ntlm\n'
                            '        ansible_user: deploy\n        ansible_password: unused-nothing-listens\n' % port))
        exe = testlib.build_app('1.0.0', goos='windows')
        r = testlib.playbook(inventory, 'deploy', dict(
            SERIAL, app='lbwin', version='1.0.0', deploy_hosts='win-1', win_artifact=exe,
            win_checksum=testlib.sha256(exe), **lb_vars('lbwin', lb_host=fleet.lb['name'])), tmp_path=tmp_path)
        assert r.rc != 0, r
        assert 'Check the load balancer of this host' in r.out, r
        assert 'hotswap.deploy.lb : Check that HAProxy serves this host' in r.out, r
        assert 'UNREACHABLE' in r.out and 'Take this host out of the load balancer' not in r.out, r
        admin, _op, weight = server_states(fleet, 'lbwin')['win-1']
        assert admin == 0 and weight == 1
        assert not lblib.markers(fleet).strip()
    finally:
        closed.close()


def test_a_service_nobody_here_wrote_behind_haproxy(lbfleet, tmp_path):
    """Debian's prometheus-pushgateway (returns from main without waiting for its in-flight requests), its own
    health path as HAProxy's check: a new build deployed with lb under load through HAProxy drops nothing."""
    sys.path.insert(0, os.path.join(testlib.REPO, 'tests', 'thirdparty'))
    import fetch  # pylint: disable=import-outside-toplevel
    fleet, app, port = lbfleet, 'pushlb', 8081
    info = fetch.fetch('prometheus-pushgateway')
    binary = info['binaries'][0]
    other = fetch.other_build(binary, str(tmp_path / 'pushgateway-other'))
    version = info['version'].split(':')[-1].rsplit('-', 1)[0]
    configure_haproxy(fleet, app, port, check_path='/-/ready')

    def push_deploy(artifact):
        v = dict(SERIAL, app=app, version=version, artifact=artifact, checksum=testlib.sha256(artifact),
                 listen_port=port, health_url='http://127.0.0.1:%d/api/v1/status' % port,
                 version_query='data.build_information.version', restart_strategy='restart',
                 service_args='--web.listen-address=:%d --persistence.file=/var/lib/pushlb/metrics.store' % port,
                 state_dirs=['/var/lib/pushlb'], **lb_vars(app, lb_host=fleet.lb['name']))
        return testlib.playbook(fleet.inventory, 'deploy', v, tmp_path=tmp_path)

    try:
        r = push_deploy(binary)
        assert r.rc == 0, r
        wait_all_up(fleet, app, context=r)
        probes = start_load(fleet, path='/-/ready', rates={'keepalive': 250, 'close': 250})
        r = push_deploy(other)
        s = finish_load(probes, 'pushgateway')
        assert r.rc == 0, r
        assert r.out.count('load balancer: drained in') == 3 and r.out.count('now ready') == 3, r
        assert rate(s) >= 450 and failed(s) == 0, {k: testlib.brief(v) for k, v in s.items()}
        wait_all_up(fleet, app, context=r)
    finally:
        testlib.remove_app(fleet.hosts, app)
        for host in fleet:
            testlib.host_sh(host, 'rm -rf /var/lib/pushlb', check=False)
