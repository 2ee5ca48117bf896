# -*- coding: utf-8 -*-
"""rollback.yml on two real hosts (one over ssh, one over paramiko_ssh), with a config file kept in each release.

v1, v2, v3 deployed with deploy.yml; hosts that disagree on the previous good release, check mode, a
named release missing on one host and a deploy in progress on one (all refused with nothing changed on
any host); the rollback to the previous good release under load (systemd_socket: no failed request,
the AWX summary), a rollback to a named release, a re-run that changes nothing, and a target that
cannot start (every host switched back).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import testlib

sys.path.insert(0, os.path.join(testlib.REPO, 'tests', 'load'))
import loadprobe  # noqa: E402

# A published container port (the load probe on the controller must reach it).
PORT = 8081
CONFIG = 'app.conf'
RESULTS = testlib.RESULTS


@pytest.fixture
def rb_app(fleet):
    """(app, port) of this scenario; its units and tree are removed afterwards (the port is shared)."""
    app = 'rb'
    yield app, PORT
    for host in fleet:
        testlib.host_sh(host, (
            'systemctl disable --now {a}.socket {a}.service >/dev/null 2>&1; '
            'rm -f /etc/systemd/system/{a}.socket /etc/systemd/system/{a}.service /etc/systemd/system/.hotswap-{a}.*; '
            'systemctl daemon-reload; systemctl reset-failed; rm -rf /opt/{a}').format(a=app), check=False)


def release_files(version):
    return [{'dest': CONFIG, 'content': 'version=%s\n' % version}]


def release_id(version, artifact):
    return testlib.release_id(version, artifact, files=release_files(version), binary='rb')


def deploy(fleet, app, port, version, tmp_path, limit=None):
    """deploy.yml (one batch, no bake) with a config file kept in the release; returns the release id."""
    artifact = testlib.build_app(version)
    rid = release_id(version, artifact)
    v = dict(app=app, version=version, artifact=artifact, checksum=testlib.sha256(artifact), listen_port=port,
             canary_steps=['100%'], canary_bake_time=0,
             deploy_host_release_files=release_files(version))
    r = testlib.playbook(fleet.inventory, 'deploy', v, limit=limit, tmp_path=tmp_path)
    assert r.rc == 0, r
    return rid


def rollback(fleet, app, port, tmp_path, check=False, **extra):
    v = dict(app=app, listen_port=port)
    v.update(extra)
    return testlib.playbook(fleet.inventory, 'rollback', v, check=check, tmp_path=tmp_path)


def states(fleet, app):
    return {h['name']: testlib.tree_state(h, '/opt/' + app, app) for h in fleet}


def ledger_states(host, app):
    ledger = json.loads(testlib.host_sh(host, 'cat /opt/%s/.hotswap/ledger.json' % app))
    return {rid: entry['state'] for rid, entry in ledger['releases'].items()}


def assert_on(fleet, app, port, rid, version):
    for host in fleet:
        assert testlib.host_sh(host, 'readlink /opt/%s/current' % app).strip() == 'releases/' + rid, host['name']
        assert testlib.served_version(host, port) == version, host['name']
        # The config kept with the release came back with it.
        assert testlib.host_sh(host, 'cat /opt/%s/current/%s' % (app, CONFIG)) == 'version=%s\n' % version


def served_pids(fleet, port):
    return [json.loads(testlib.host_sh(h, 'curl -fsS --max-time 3 http://127.0.0.1:%d/healthz' % port))['pid']
            for h in fleet]


def custom_stats(out):
    """The set_stats data of a run (printed with ANSIBLE_SHOW_CUSTOM_STATS)."""
    return json.loads(out.split('CUSTOM STATS:', 1)[1].split('RUN:', 1)[1].strip().split('\n', 1)[0])


def test_rollback_previous_good_named_and_refusals(fleet, rb_app, tmp_path, monkeypatch):
    app, port = rb_app
    monkeypatch.setenv('ANSIBLE_SHOW_CUSTOM_STATS', '1')
    hosts = list(fleet)
    rid1 = deploy(fleet, app, port, '1.0.0', tmp_path)
    rid2 = deploy(fleet, app, port, '2.0.0', tmp_path)

    # v3 on the other host only: the first host's previous good is v1, the other's v2.
    rid3 = deploy(fleet, app, port, '3.0.0', tmp_path, limit=','.join(h['name'] for h in hosts[1:]))
    before = states(fleet, app)
    r = rollback(fleet, app, port, tmp_path)
    assert r.rc != 0, r
    assert 'do not agree on the previous good release' in r.out, r
    assert '%s: %s' % (hosts[0]['name'], rid1) in r.out and '%s: %s' % (hosts[1]['name'], rid2) in r.out, r
    assert '-e release_id=' in r.out, r
    assert states(fleet, app) == before

    assert deploy(fleet, app, port, '3.0.0', tmp_path, limit=hosts[0]['name']) == rid3

    # Check mode: reports the switch, changes nothing.
    before = states(fleet, app)
    r = rollback(fleet, app, port, tmp_path, check=True)
    assert r.rc == 0, r
    assert 'would switch %s -> %s' % (rid3, rid2) in r.out, r
    assert states(fleet, app) == before

    # A named release missing on one host: refused on all hosts before any changes.
    testlib.host_sh(hosts[-1], 'mv /opt/%s/releases/%s /opt/%s/.hidden-%s' % (app, rid1, app, rid1))
    before = states(fleet, app)
    r = rollback(fleet, app, port, tmp_path, release_id=rid1)
    assert r.rc != 0, r
    assert 'The release is not on %s (%s has %s, %s)' % (hosts[-1]['name'], hosts[-1]['name'], rid2, rid3) in r.out, r
    assert 'nothing was changed on any host' in r.out, r
    assert states(fleet, app) == before
    testlib.host_sh(hosts[-1], 'mv /opt/%s/.hidden-%s /opt/%s/releases/%s' % (app, rid1, app, rid1))

    # A deploy in progress on one host (its lock): refused on all hosts before any changes.
    lock = dict(owner='other-deploy:%s-9.9.9' % app, acquired_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
                acquired_epoch=int(time.time()), host='x')
    testlib.host_sh(hosts[1], "printf '%%s' '%s' > /opt/%s/.hotswap/lock" % (json.dumps(lock), app))
    before = states(fleet, app)
    r = rollback(fleet, app, port, tmp_path)
    assert r.rc != 0, r
    assert 'Another deploy holds the lock on %s' % hosts[1]['name'] in r.out and 'other-deploy:' in r.out, r
    assert states(fleet, app) == before
    testlib.host_sh(hosts[1], 'rm /opt/%s/.hotswap/lock' % app)

    # Back to the previous good release (v2) under load: no failed request, v3 marked failed.
    probe = loadprobe.Probe(['http://127.0.0.1:%d/' % h['ports'][port] for h in hosts], rate=150, duration=300,
                            timeout=10).start_background()
    try:
        r = rollback(fleet, app, port, tmp_path)
    finally:
        summary = probe.stop()
    assert r.rc == 0, r
    assert all(c['failed'] == 0 for c in r.recap.values()), r
    assert set(r.hosts_recap) == {h['name'] for h in hosts}, r
    assert '%s -> %s; changed; health pass' % (rid3, rid2) in r.out, r
    # The summary AWX/Tower workflows read.
    stats = custom_stats(r.out)['hotswap_rollback']
    assert set(stats) == {h['name'] for h in hosts}, stats
    for result in stats.values():
        assert dict(result, seconds=0) == dict(previous_release=rid3, release=rid2, changed=True, verdict='pass',
                                               seconds=0), stats
    assert_on(fleet, app, port, rid2, '2.0.0')
    for host in hosts:
        assert ledger_states(host, app)[rid3] == 'failed', host['name']
        assert testlib.host_sh(host, 'test ! -e /opt/%s/.hotswap/lock && echo free' % app).strip() == 'free'
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'rollback-under-load.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    brief = dict((k, summary.get(k)) for k in ('sent', 'failed', 'failure_causes', 'versions'))
    assert summary['failed'] == 0, brief
    assert summary['sent'] > 300, brief
    for seen in summary['versions'].values():
        assert {'3.0.0', '2.0.0'} <= set(seen), brief

    # A named release on every host: v1 everywhere, v2 (rolled back from) marked failed.
    r = rollback(fleet, app, port, tmp_path, release_id=rid1)
    assert r.rc == 0, r
    assert_on(fleet, app, port, rid1, '1.0.0')
    for host in hosts:
        assert ledger_states(host, app)[rid2] == 'failed', host['name']

    # Again: every host is already on it; nothing changes, nothing restarts.
    pids = served_pids(fleet, port)
    before = states(fleet, app)
    r = rollback(fleet, app, port, tmp_path, release_id=rid1)
    assert r.rc == 0, r
    assert r.changed() == 0, r
    assert '-> %s; unchanged; health pass' % rid1 in r.out, r
    assert served_pids(fleet, port) == pids
    assert states(fleet, app) == before

    # A target that cannot start (a release put there by hand, so the ledger has no version): every host
    # fails at the restart's ready stage, goes back to v1 and serves it; the broken release is marked failed.
    bad = testlib.build_app('4.0.0', fault='exit-at-start')
    for host in hosts:
        testlib.host_sh(host, 'mkdir -p /opt/%s/releases/4.0.0-bad' % app)
        subprocess.run(['podman', 'cp', bad, '%s:/opt/%s/releases/4.0.0-bad/%s' % (host['container'], app, app)],
                       check=True)
    r = rollback(fleet, app, port, tmp_path, release_id='4.0.0-bad', ready_timeout=10)
    assert r.rc != 0, r
    # Every host (not localhost: rollback.yml checks its inputs in a first play on the controller).
    assert all(c['failed'] == 1 for c in r.hosts_recap.values()), r
    assert set(r.hosts_recap) == {h['name'] for h in hosts}, r
    assert "at 'Restart the service on the target release (stage ready)'" in r.out, r
    assert 'Switched current back to %s and marked 4.0.0-bad failed; health of %s: pass' % (rid1, rid1) in r.out, r
    assert_on(fleet, app, port, rid1, '1.0.0')
    for host in hosts:
        assert ledger_states(host, app)['4.0.0-bad'] == 'failed', host['name']
        assert testlib.host_sh(host, 'test ! -e /opt/%s/.hotswap/lock && echo free' % app).strip() == 'free'
