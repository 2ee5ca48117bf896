# -*- coding: utf-8 -*-
"""Release config on two real hosts, part two: config reload without a restart, and a goreleaser-style
archive from an artifact server that wants basic auth. The helpers are test_release_config's; a module
of its own so the two parts run on separate workers.
"""

from __future__ import annotations

import os

import pytest

import testlib
from test_release_config import APP, BASE, PORT, assert_serving, current, deploy_vars, health, rid


@pytest.fixture(scope='module', autouse=True)
def free_port_afterwards(fleet):
    yield
    testlib.remove_app(fleet.hosts, APP)


def test_config_reload_without_restart(fleet, tmp_path):
    testlib.remove_app(fleet.hosts, APP)
    artifact = testlib.build_app('1.0.0')
    reload_args = dict(service_args='--config %s/current/conf/app.conf --hup reload' % BASE,
                       config_reload={'signal': 'SIGHUP'})

    def probe_for(greeting):
        return {'url': 'http://127.0.0.1:%d/healthz' % PORT, 'query': 'greeting', 'expected': greeting}

    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(artifact, 'one', **reload_args), tmp_path=tmp_path)
    assert r.rc == 0, r
    pids = {h['name']: health(h)['pid'] for h in fleet}

    load = testlib.start_load(fleet.hosts, PORT, rate=60, keepalive=True, duration=240)
    try:
        r = testlib.playbook(fleet.inventory, 'deploy',
                             deploy_vars(artifact, 'two', config_probe=probe_for('two'), **reload_args),
                             tmp_path=tmp_path)
        assert r.rc == 0, r
        assert_serving(fleet, rid(artifact, 'two'), 'two')
        # the same process took the new config
        assert {h['name']: health(h)['pid'] for h in fleet} == pids

        # A reload the probe rejects (it expects a value the new config does not give): switched back, reloaded.
        r = testlib.playbook(fleet.inventory, 'deploy',
                             deploy_vars(artifact, 'three', config_probe=dict(probe_for('four'), timeout=8),
                                         **reload_args),
                             tmp_path=tmp_path)
        assert r.rc != 0, r
        assert 'Switched back to %s' % rid(artifact, 'two') in r.out and 'reloaded its config' in r.out, r
        assert_serving(fleet, rid(artifact, 'two'), 'two')
        assert {h['name']: health(h)['pid'] for h in fleet} == pids
    finally:
        summary = testlib.finish_load(load, 'release-config-reload')
    assert summary['sent'] > 100 and summary['failed'] == 0, testlib.brief(summary)

    # The reloaded process counts as running current: a re-run changes nothing.
    r = testlib.playbook(fleet.inventory, 'deploy',
                         deploy_vars(artifact, 'two', config_probe=probe_for('two'), **reload_args),
                         tmp_path=tmp_path)
    assert r.rc == 0 and all(c['changed'] == 0 for c in r.hosts_recap.values()), r

    # An environment change needs a restart, config_reload or not.
    r = testlib.playbook(fleet.inventory, 'deploy', deploy_vars(artifact, 'two', message='m3', **reload_args),
                         tmp_path=tmp_path)
    assert r.rc == 0, r
    assert all(health(h)['pid'] != pids[h['name']] for h in fleet)
    assert_serving(fleet, rid(artifact, 'two', 'm3'), 'two', 'm3')


# A file server on each host that wants basic auth, as artifact servers do (Python's, on the host).
ARTIFACT_SERVER = r'''
import base64, functools, http.server, sys
WANTED = 'Basic ' + base64.b64encode(sys.argv[2].encode()).decode()
class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get('Authorization') != WANTED:
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="artifacts"')
            self.end_headers()
            return
        super().do_GET()
handler = functools.partial(Handler, directory='/srv/hs-artifacts')
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), handler).serve_forever()
'''
ARTIFACT_PORT = 8099
PASSWORD = 'hs-artifact-pw-51c2'


@pytest.fixture
def artifact_server(fleet, tmp_path):
    script = tmp_path / 'artifact_server.py'
    script.write_text(ARTIFACT_SERVER)
    r = testlib.adhoc(fleet.inventory, testlib.TEST_GROUP, 'ansible.builtin.copy',
                      dict(src=str(script), dest='/srv/hs-artifact-server.py', mode='0644'))
    assert r.rc == 0, r
    for host in fleet:
        testlib.host_sh(host, 'mkdir -p /srv/hs-artifacts && systemd-run --unit hs-artifacts --quiet python3 '
                              '/srv/hs-artifact-server.py %d ci:%s' % (ARTIFACT_PORT, PASSWORD))
    yield '/srv/hs-artifacts'
    for host in fleet:
        testlib.host_sh(host, 'systemctl stop hs-artifacts; rm -rf /srv/hs-artifacts /srv/hs-artifact-server.py',
                        check=False)


def test_goreleaser_archive_from_an_authenticated_url(fleet, tmp_path, artifact_server):
    testlib.remove_app(fleet.hosts, APP)
    binary = testlib.build_app('1.0.0')
    with open(binary, 'rb') as f:
        data = f.read()
    # goreleaser's layout: the binary, the licence and docs beside it, a default config.
    archive = testlib.make_archive(str(tmp_path / 'relcfg_1.0.0_linux_amd64.tar.gz'), [
        (APP, data), ('LICENSE', b'Apache-2.0\n'), ('README.md', b'# relcfg\n'),
        ('config', 'dir'), ('config/default.conf', b'greeting = from-the-archive\n')])
    r = testlib.adhoc(fleet.inventory, testlib.TEST_GROUP, 'ansible.builtin.copy',
                      dict(src=archive, dest=artifact_server + '/', mode='0644'))
    assert r.rc == 0, r
    url = 'http://127.0.0.1:%d/%s' % (ARTIFACT_PORT, os.path.basename(archive))
    v = deploy_vars(archive, 'unused', artifact_url=url, release_files=[],
                    service_args='--config %s/current/config/default.conf' % BASE, environment={},
                    environment_secret={})
    v['artifact'] = ''

    # Without credentials the server says 401: refused with the cause, the password nowhere.
    r = testlib.playbook(fleet.inventory, 'deploy', v, tmp_path=tmp_path)
    assert r.rc != 0 and '401' in r.out, r

    v.update(artifact_username='ci', artifact_password=PASSWORD)
    r = testlib.playbook(fleet.inventory, 'deploy', v, tmp_path=tmp_path, verbosity=3)
    assert r.rc == 0, r
    assert PASSWORD not in r.out
    release = testlib.release_id('1.0.0', archive, binary=APP)
    for host in fleet:
        assert current(host) == 'releases/' + release
        assert health(host).get('greeting') == 'from-the-archive'
        listing = testlib.host_sh(host, 'cd %s/current && ls -A && stat -c %%a %s' % (BASE, APP)).split()
        assert set(listing) >= {APP, 'LICENSE', 'README.md', 'config', '755'}, listing
