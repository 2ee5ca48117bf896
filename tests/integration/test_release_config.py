# -*- coding: utf-8 -*-
"""A release is the binary and its config: release files and environment on two real hosts.

One app on port 8080 (published, so the load probe reaches it), deployed with deploy.yml as a
non-root user with become. The demo app reads --config (a file kept in the release) at start and
reports its greeting and $HOTSWAP_MESSAGE in /healthz. Under load: a config-only change is a new
release beside the live one and rollback.yml brings the old file back byte for byte; a re-run
(upper-case checksum) changes nothing; a config the service cannot start with is switched back;
an environment change is a new release and its secret shows nowhere, at -vvv either.
"""

from __future__ import annotations

import json

import pytest

import testlib

APP = 'relcfg'
PORT = 8080
BASE = '/opt/' + APP
SECRET = 'hs-secret-7f3a9c'
AS_DEPLOY_USER = {'ansible_user': 'deploy', 'ansible_become': True}


@pytest.fixture(scope='module', autouse=True)
def free_port_afterwards(fleet):
    yield
    testlib.remove_app(fleet.hosts, APP)


def files(greeting):
    # The service user's group (the app's name) reads it; the role creates that user before staging the file.
    return [{'dest': 'conf/app.conf', 'content': '# demo\ngreeting = %s\n' % greeting, 'group': APP, 'mode': '0640'}]


def deploy_vars(artifact, greeting, message='m1', **extra):
    v = dict(app=APP, version='1.0.0', artifact=artifact, checksum=testlib.sha256(artifact), listen_port=PORT,
             restart_strategy='systemd_socket', service_args='--config %s/current/conf/app.conf' % BASE,
             environment={'HOTSWAP_MESSAGE': message}, environment_secret={'HOTSWAP_TOKEN': SECRET},
             release_files=files(greeting), canary_steps=['100%'], canary_bake_time=0)
    v.update(AS_DEPLOY_USER)
    v.update(extra)
    return v


def rid(artifact, greeting, message='m1'):
    return testlib.release_id('1.0.0', artifact, files=files(greeting), environment={'HOTSWAP_MESSAGE': message},
                              environment_secret={'HOTSWAP_TOKEN': SECRET}, binary=APP)


def health(host):
    return json.loads(testlib.http_get('http://127.0.0.1:%d/healthz' % host['ports'][PORT]))


def current(host):
    return testlib.host_sh(host, 'readlink %s/current' % BASE).strip()


def assert_serving(fleet, release, greeting, message='m1'):
    for host in fleet:
        assert current(host) == 'releases/' + release, host['name']
        h = health(host)
        assert (h.get('greeting'), h.get('message')) == (greeting, message), (host['name'], h)


def test_config_is_part_of_the_release(fleet, tmp_path):
    artifact = testlib.build_app('1.0.0')
    one, two = rid(artifact, 'one'), rid(artifact, 'two')
    assert one != two

    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(artifact, 'one'), tmp_path=tmp_path)
    assert r.rc == 0, r
    assert_serving(fleet, one, 'one')
    first = fleet.hosts[0]
    original = testlib.host_sh(first, 'sha256sum %s/releases/%s/conf/app.conf' % (BASE, one))
    assert testlib.host_sh(first, 'stat -c "%%a %%U %%G" %s/releases/%s/conf/app.conf' % (BASE, one)).split() == \
        ['640', 'root', APP]
    assert testlib.host_sh(first, 'stat -c %%a %s/releases/%s/.hotswap-environment' % (BASE, one)).strip() == '600'

    # Config-only change and rollback under load: a new release beside the live one, then back.
    probe = testlib.start_load(fleet.hosts, PORT, rate=60, keepalive=True, duration=240)
    try:
        r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(artifact, 'two'), tmp_path=tmp_path)
        assert r.rc == 0, r
        assert_serving(fleet, two, 'two')
        # the old release was not written into
        assert testlib.host_sh(first, 'sha256sum %s/releases/%s/conf/app.conf' % (BASE, one)) == original
        rb = testlib.playbook(fleet.inventory, 'rollback', dict(app=APP, listen_port=PORT, **AS_DEPLOY_USER),
                              tmp_path=tmp_path)
        assert rb.rc == 0, rb
        assert_serving(fleet, one, 'one')
    finally:
        summary = testlib.finish_load(probe, 'release-config-change-and-rollback')
    assert summary['sent'] > 100 and summary['failed'] == 0, testlib.brief(summary)
    for host in fleet:
        served = testlib.host_sh(host, 'sha256sum %s/current/conf/app.conf' % BASE)
        assert served.split()[0] == original.split()[0], host['name']
    ledger = json.loads(testlib.host_sh(first, 'cat %s/.hotswap/ledger.json' % BASE))
    assert [f['dest'] for f in ledger['releases'][two]['files']] == ['conf/app.conf']
    assert ledger['releases'][two]['files'][0]['digest'].startswith('sha256:')

    # Identical means identical: the same content (checksum in upper case) changes nothing.
    v = deploy_vars(artifact, 'one', checksum='sha256:' + testlib.sha256(artifact)[7:].upper())
    r = testlib.playbook(fleet.inventory, 'deploy', v, tmp_path=tmp_path)
    assert r.rc == 0 and all(c['changed'] == 0 for c in r.hosts_recap.values()), r
    assert sorted(testlib.host_sh(first, 'ls %s/releases' % BASE).split()) == sorted([one, two])

    # A config the service cannot start with: switched back to the previous release and its config.
    bad = [{'dest': 'conf/app.conf', 'content': 'greeting = three\nno_such_key = 1\n', 'group': APP, 'mode': '0640'}]
    # ready_timeout: how long the failing start may try (systemd restarts it) before the switch back.
    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(artifact, 'three', release_files=bad, ready_timeout=10),
                         tmp_path=tmp_path)
    assert r.rc != 0, r
    assert 'Switched back to %s' % one in r.out and "failed on" in r.out, r
    assert_serving(fleet, one, 'one')


def test_environment_is_part_of_the_release_and_its_secret_shows_nowhere(fleet, tmp_path):
    artifact = testlib.build_app('1.0.0')
    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(artifact, 'one', message='m2'), tmp_path=tmp_path,
                         verbosity=3)
    assert r.rc == 0, r
    assert_serving(fleet, rid(artifact, 'one', 'm2'), 'one', 'm2')
    assert SECRET not in r.out
    first = fleet.hosts[0]
    # On the host the secret is only in the environment files (0600), never in the ledger or a unit.
    holders = testlib.host_sh(first, 'grep -rl %s %s /etc/systemd/system; true' % (SECRET, BASE)).split()
    assert holders and all(p.endswith('/.hotswap-environment') for p in holders), holders
    # The running service got it.
    pid = testlib.host_sh(first, 'systemctl show -P MainPID %s.service' % APP).strip()
    assert ('HOTSWAP_TOKEN=' + SECRET) in testlib.host_sh(first, 'tr "\\0" "\\n" < /proc/%s/environ' % pid)
