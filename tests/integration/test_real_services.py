# -*- coding: utf-8 -*-
"""Services nobody here wrote, taken from Debian's archive, deployed as they are through deploy.yml.

prometheus-node-exporter reports its version only in /metrics (a build-info line: version_regex);
prometheus-pushgateway in /api/v1/status (JSON: version_query). Both read their listener from
systemd (--web.systemd-socket), so the systemd_socket strategy keeps the port while they restart.
Neither drains on SIGTERM (tests/thirdparty/README.md): node_exporter dies of the signal at once,
pushgateway returns from main without waiting for its in-flight requests. Requests in flight at
that moment end without a reply (eof / connection_reset); new connections queue in the socket.
Each service is deployed as the non-root user `deploy` with become (the fleet's hosts take ssh and paramiko_ssh in turn).
"""

from __future__ import annotations

import json
import os
import sys

import pytest

import testlib

sys.path.insert(0, os.path.join(testlib.REPO, 'tests', 'thirdparty'))
import fetch  # noqa: E402  pylint: disable=wrong-import-position

# What a request in flight gets from an app that exits at once on SIGTERM: the connection closes
# without a reply. Anything else (refused, timeout, HTTP errors) is not explained by it.
CLOSED_WITHOUT_REPLY = {'eof', 'connection_reset'}

SERVICES = {
    'node_exporter': dict(
        package='prometheus-node-exporter', app='nodeexp', port=8080,
        health_url='http://127.0.0.1:8080/metrics',
        version=dict(version_regex=r'node_exporter_build_info\{[^}]*version="([^"]+)"'),
        # A few cheap collectors: /metrics is the health probe, not the load.
        service_args='--web.systemd-socket --collector.disable-defaults --collector.cpu --collector.loadavg',
        load_path='/'),
    'pushgateway': dict(
        package='prometheus-pushgateway', app='pushgw', port=8081,
        health_url='http://127.0.0.1:8081/api/v1/status',
        version=dict(version_query='data.build_information.version'),
        # Its state survives restarts in a state dir, writable under ProtectSystem=strict. Its web UI
        # (/) needs templates from the package's /usr/share, not deployed here: load goes to /-/ready.
        service_args='--web.systemd-socket --persistence.file=/var/lib/pushgw/metrics.store',
        state_dirs=['/var/lib/pushgw'], load_path='/-/ready'),
}
AS_DEPLOY_USER = {'ansible_user': 'deploy', 'ansible_become': True}


@pytest.fixture(scope='module', autouse=True)
def free_ports_afterwards(fleet):
    """The hosts are shared with other test modules: give back ports 8080-8082 when done."""
    yield
    testlib.remove_app(fleet.hosts, 'nodeexp')
    testlib.remove_app(fleet.hosts, 'pushgw')
    testlib.remove_app(fleet.hosts, 'pushhand')
    for host in fleet:
        testlib.host_sh(host, 'rm -rf /var/lib/pushgw /usr/local/bin/pushhand', check=False)


def upstream_version(info):
    """Debian's version without the revision: 1.5.0-1+b6 -> 1.5.0 (what the program reports)."""
    return info['version'].split(':')[-1].rsplit('-', 1)[0]


def builds(name, tmp_dir):
    spec = SERVICES[name]
    info = fetch.fetch(spec['package'])
    binary = info['binaries'][0]
    other = fetch.other_build(binary, os.path.join(tmp_dir, '%s-other' % spec['app']))
    return info, binary, other


def deploy_vars(spec, version, artifact, **extra):
    v = dict(spec['version'], app=spec['app'], version=version, artifact=artifact, checksum=testlib.sha256(artifact),
             listen_port=spec['port'], health_url=spec['health_url'], service_args=spec['service_args'],
             state_dirs=spec.get('state_dirs', []),
             restart_strategy='systemd_socket', canary_bake_time=1, deploy_hosts=testlib.TEST_GROUP)
    v.update(AS_DEPLOY_USER)
    v.update(extra)
    return v


def current(host, app):
    return testlib.host_sh(host, 'readlink /opt/%s/current' % app).strip()


def rid(version, artifact):
    return '%s-%s' % (version, testlib.sha256(artifact)[7:19])


@pytest.mark.parametrize('name', sorted(SERVICES))
def test_real_service_rollout_under_load(fleet, name, tmp_path):
    spec = SERVICES[name]
    info, binary, other = builds(name, str(tmp_path))
    version = upstream_version(info)
    app, port = spec['app'], spec['port']

    # First deploy with the default canary steps [1, 25%, 100%]: the unit is ours, the user is not root.
    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(spec, version, binary), tmp_path=tmp_path)
    assert r.rc == 0, r
    for host in fleet:
        assert current(host, app) == 'releases/' + rid(version, binary)
        assert testlib.host_sh(host, 'ps -o user= -p $(systemctl show -P MainPID %s.service)' % app).strip() == app
        unit = testlib.host_sh(host, 'cat /etc/systemd/system/%s.service' % app)
        assert 'ProtectSystem=strict' in unit and 'NoNewPrivileges=yes' in unit, unit
        for state_dir in spec.get('state_dirs', []):
            assert 'ReadWritePaths=%s' % state_dir in unit, unit
            assert testlib.host_sh(host, 'stat -c %%U %s' % state_dir).strip() == app

    # Another build of the same program (other bytes, so another release) under load.
    probe = testlib.start_load(fleet.hosts, port, rate=60, keepalive=False, duration=240, path=spec['load_path'])
    try:
        r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(spec, version, other),
                             tmp_path=tmp_path)
    finally:
        summary = testlib.finish_load(probe, 'real-service-%s' % name)
    assert r.rc == 0, r
    for host in fleet:
        assert current(host, app) == 'releases/' + rid(version, other)
    assert summary['sent'] > 100, testlib.brief(summary)
    unexplained = set(summary['failure_causes']) - CLOSED_WITHOUT_REPLY
    assert not unexplained, testlib.brief(summary)
    # At most the requests in flight when each host's process got SIGTERM.
    assert summary['failed'] <= 3 * len(fleet.hosts), testlib.brief(summary)

    # A build promised as another version than it reports: refused after the switch, switched back.
    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(spec, version + '.99', other, canary_bake_time=0),
                         tmp_path=tmp_path)
    assert r.rc != 0, r
    assert "expected '%s.99'" % version in r.out, r
    assert 'Switched back to %s' % rid(version, other) in r.out, r
    first = fleet.hosts[0]
    assert current(first, app) == 'releases/' + rid(version, other)
    ledger = json.loads(testlib.host_sh(first, 'cat /opt/%s/.hotswap/ledger.json' % app))
    assert ledger['releases'][rid(version + '.99', other)]['state'] == 'failed'
    # The batch after the first never saw the bad build.
    for host in fleet.hosts[1:]:
        assert current(host, app) == 'releases/' + rid(version, other)


def test_hand_written_unit_refused_then_adopted_and_restored(fleet, tmp_path):
    """A service already running under a unit someone wrote by hand: refused, then adopted, then put back."""
    spec = dict(SERVICES['pushgateway'], app='pushhand', port=8082, service_args='--web.systemd-socket',
                state_dirs=[], health_url='http://127.0.0.1:8082/api/v1/status')
    info, binary, _other = builds('pushgateway', str(tmp_path))
    version = upstream_version(info)
    host = fleet.hosts[0]
    hand_unit = ('[Unit]\nDescription=Pushgateway, written by hand\n\n[Service]\n'
                 'ExecStart=/usr/local/bin/pushhand --web.listen-address=:8082\nRestart=always\n\n'
                 '[Install]\nWantedBy=multi-user.target\n')
    with open(str(tmp_path / 'pushhand.service'), 'w') as f:
        f.write(hand_unit)
    for src, dest in ((binary, '/usr/local/bin/pushhand'), (str(tmp_path / 'pushhand.service'),
                                                            '/etc/systemd/system/pushhand.service')):
        testlib.run(['podman', 'cp', src, '%s:%s' % (host['container'], dest)])
    testlib.host_sh(host, 'chmod 755 /usr/local/bin/pushhand && systemctl daemon-reload && '
                          'systemctl enable --now pushhand.service')
    assert '"version":"%s"' % version in testlib.host_sh(host, 'sleep 1; curl -fsS http://127.0.0.1:8082/api/v1/status')

    vars_ = deploy_vars(spec, version, binary, deploy_hosts=host['name'], canary_steps=['100%'], canary_bake_time=0)
    r = testlib.playbook(fleet.inventory, 'deploy', vars_, tmp_path=tmp_path)
    assert r.rc != 0, r
    assert 'not installed by hotswap.deploy' in r.out and 'adopt_unit: true' in r.out, r
    assert testlib.host_sh(host, 'cat /etc/systemd/system/pushhand.service') == hand_unit
    assert testlib.host_sh(host, 'systemctl is-active pushhand.service').strip() == 'active'

    # A first release over the adopted unit that fails (promised as another version): the unit comes back.
    r = testlib.playbook(fleet.inventory, 'deploy', dict(vars_, adopt_unit=True, version=version + '.99'),
                         tmp_path=tmp_path)
    assert r.rc != 0, r
    assert 'Put back the unit(s) it had adopted' in r.out, r
    assert testlib.host_sh(host, 'cat /etc/systemd/system/pushhand.service') == hand_unit
    assert testlib.host_sh(host, 'test -e /etc/systemd/system/pushhand.socket || echo gone').strip() == 'gone'
    assert '"version":"%s"' % version in testlib.host_sh(host, 'sleep 1; curl -fsS http://127.0.0.1:8082/api/v1/status')

    r = testlib.playbook(fleet.inventory, 'deploy', dict(vars_, adopt_unit=True), tmp_path=tmp_path)
    assert r.rc == 0, r
    assert 'hotswap.deploy' in testlib.host_sh(host, 'cat /etc/systemd/system/pushhand.service')
    assert current(host, 'pushhand') == 'releases/' + rid(version, binary)
    kept = json.loads(testlib.host_sh(host, 'cat /opt/pushhand/.hotswap/adopted/units.json'))
    assert kept == {'/etc/systemd/system/pushhand.service': hand_unit}

    # Rolling back past the first release puts the hand-written unit back and starts it.
    r = testlib.playbook(fleet.inventory, 'rollback', dict(AS_DEPLOY_USER, app='pushhand', rollback_hosts=host['name'],
                                                           listen_port=8082, health_url=spec['health_url'],
                                                           version_query='data.build_information.version',
                                                           service_args=spec['service_args']),
                         tmp_path=tmp_path)
    assert r.rc == 0, r
    assert testlib.host_sh(host, 'cat /etc/systemd/system/pushhand.service') == hand_unit
    assert testlib.host_sh(host, 'test -e /etc/systemd/system/pushhand.socket || echo gone').strip() == 'gone'
    assert '"version":"%s"' % version in testlib.host_sh(host, 'sleep 1; curl -fsS http://127.0.0.1:8082/api/v1/status')
    assert 'argv[]=/usr/local/bin/pushhand --web.listen-address=:8082 ;' in testlib.host_sh(
        host, 'systemctl show -P ExecStart pushhand.service')
