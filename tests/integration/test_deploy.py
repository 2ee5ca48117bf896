# -*- coding: utf-8 -*-
"""deploy.yml end to end against two real hosts, one over ssh and one over paramiko_ssh."""

from __future__ import annotations

import json

import testlib


def deploy_vars(app, port, version, artifact, **extra):
    v = dict(testlib.ONE_BATCH, app=app, version=version, artifact=artifact, checksum=testlib.sha256(artifact), listen_port=port)
    v.update(extra)
    return v


def ledger(host, app):
    return json.loads(testlib.host_sh(host, 'cat /opt/%s/.hotswap/ledger.json' % app))


def current_target(host, app):
    return testlib.host_sh(host, 'readlink /opt/%s/current' % app).strip()


def assert_runs_as_app_user(host, app):
    """The service runs as the app's own system user (service_user's default), hardened by default."""
    shown = testlib.host_sh(host, 'systemctl show -p User -p Group -p NoNewPrivileges -p ProtectSystem '
                                  '-p ProtectHome -p PrivateTmp -p MainPID %s.service' % app).split()
    props = dict(line.split('=', 1) for line in shown)
    assert dict((k, v) for k, v in props.items() if k != 'MainPID') == dict(
        User=app, Group=app, NoNewPrivileges='yes', ProtectSystem='strict', ProtectHome='yes', PrivateTmp='yes'), \
        (host['name'], props)
    uid = testlib.host_sh(host, 'id -u %s' % app).strip()
    assert testlib.host_sh(host, 'ps -o uid= -p %s' % props['MainPID']).strip() == uid, (host['name'], props)


def test_deploy_upgrade_rerun_and_failed_upgrade(fleet, app_name, app_port, tmp_path):
    v1 = testlib.build_app('1.0.0')
    v2 = testlib.build_app('2.0.0')
    v3_bad = testlib.build_app('3.0.0', fault='unhealthy')
    temp_dirs_before = dict((host['name'], testlib.ansible_temp_dirs(host)) for host in fleet)

    # First deploy: every host serves v1 from releases/<version>-<sha12> through a relative link.
    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(app_name, app_port, '1.0.0', v1), tmp_path=tmp_path)
    assert r.rc == 0, r
    assert set(r.hosts_recap) == {h['name'] for h in fleet}, r
    rid1 = '1.0.0-' + testlib.sha256(v1)[7:19]
    for host in fleet:
        assert testlib.served_version(host, app_port) == '1.0.0'
        assert current_target(host, app_name) == 'releases/' + rid1
        assert ledger(host, app_name)['releases'][rid1]['state'] == 'active'
        assert_runs_as_app_user(host, app_name)

    # Second version: v1 retired, v2 active, previous release reported.
    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(app_name, app_port, '2.0.0', v2), tmp_path=tmp_path)
    assert r.rc == 0, r
    rid2 = '2.0.0-' + testlib.sha256(v2)[7:19]
    assert ('%s -> %s' % (rid1, rid2)) in r.out, r
    for host in fleet:
        assert testlib.served_version(host, app_port) == '2.0.0'
        assert current_target(host, app_name) == 'releases/' + rid2
        states = {k: v['state'] for k, v in ledger(host, app_name)['releases'].items()}
        assert states == {rid1: 'retired', rid2: 'active'}

    # The same version again: nothing changes anywhere.
    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(app_name, app_port, '2.0.0', v2), tmp_path=tmp_path)
    assert r.rc == 0, r
    for host, counts in r.recap.items():
        assert counts['changed'] == 0, (host, r)

    # An unhealthy v3: the play fails, every host is switched back to v2 and serves it.
    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(app_name, app_port, '3.0.0', v3_bad), tmp_path=tmp_path)
    assert r.rc != 0, r
    assert all(c['failed'] == 1 for c in r.hosts_recap.values()), r
    # The unhealthy release never becomes ready: the restart's readiness stage catches it.
    assert "failed on" in r.out and "Restart the service on the new release (stage ready)" in r.out, r
    assert 'Switched back to %s' % rid2 in r.out, r
    rid3 = '3.0.0-' + testlib.sha256(v3_bad)[7:19]
    for host in fleet:
        assert testlib.served_version(host, app_port) == '2.0.0'
        assert current_target(host, app_name) == 'releases/' + rid2
        states = {k: v['state'] for k, v in ledger(host, app_name)['releases'].items()}
        assert states[rid3] == 'failed' and states[rid2] == 'active'
        # No lock left behind by the failed run.
        assert testlib.host_sh(host, 'test ! -e /opt/%s/.hotswap/lock && echo free' % app_name).strip() == 'free'
        # Nor a temp dir of a push, by the deploys or the failed one.
        assert testlib.ansible_temp_dirs(host) == temp_dirs_before[host['name']], host['name']


def test_concurrent_deploy_is_refused(fleet, app_name, app_port, tmp_path):
    v1 = testlib.build_app('1.0.0')
    v2 = testlib.build_app('2.0.0')
    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(app_name, app_port, '1.0.0', v1), tmp_path=tmp_path)
    assert r.rc == 0, r
    host = fleet.hosts[0]
    base_dir = '/opt/%s' % app_name
    # Another deploy holds the lock on one host (as a running deploy.yml does).
    r = testlib.adhoc(fleet.inventory, host['name'], 'hotswap.deploy.deploy_lock',
                      dict(base_dir=base_dir, owner='alice@ci:run-42'))
    assert r.rc == 0, r
    before = testlib.tree_state(host, base_dir, app_name)

    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(app_name, app_port, '2.0.0', v2), tmp_path=tmp_path)
    assert r.rc != 0, r
    assert 'alice@ci:run-42' in r.out, r
    assert r.recap[host['name']]['failed'] == 1, r
    assert testlib.served_version(host, app_port) == '1.0.0'
    assert testlib.tree_state(host, base_dir, app_name) == before
    # The other hosts of the batch went ahead; the failed batch was then switched back as a whole.
    assert 'stopped at batch 1' in r.out and "deploy failed at Take the deploy lock" in r.out, r
    for other in fleet.hosts[1:]:
        assert testlib.served_version(other, app_port) == '1.0.0'

    r = testlib.adhoc(fleet.inventory, host['name'], 'hotswap.deploy.deploy_lock',
                      dict(base_dir=base_dir, owner='alice@ci:run-42', state='absent'))
    assert r.rc == 0, r
    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(app_name, app_port, '2.0.0', v2), tmp_path=tmp_path)
    assert r.rc == 0, r
    assert testlib.served_version(host, app_port) == '2.0.0'
