# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""module_utils/status.py: a real release tree, unit directory and /proc look-alike under tmp_path,
systemd through the recording double of test_restart, and the health probe against an
http.server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from test_restart import FakeProc, FakeSystemd

from ansible_collections.hotswap.deploy.plugins.module_utils import lock, units
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import Ledger, activate
from ansible_collections.hotswap.deploy.plugins.module_utils.status import live_check, release_status

SERVICE_UNIT = '[Service]\nExecStart=/opt/web/current/web\n'
SOCKET_UNIT = '[Socket]\nListenStream=127.0.0.1:8080\n'
PID = 300


class Health(BaseHTTPRequestHandler):
    version = '1.0.0'

    def do_GET(self):
        body = json.dumps({'status': 'ok', 'version': self.server.version}).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(('127.0.0.1', 0), Health)
    srv.version = '1.0.0'
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


class Host(object):
    """A host where web 1.0.0 (release r1) runs under systemd_socket as a deploy leaves it."""

    def __init__(self, tmp_path, server):
        self.base = tmp_path / 'opt' / 'web'
        self.unit_dir = tmp_path / 'system'
        self.unit_dir.mkdir()
        self.proc = FakeProc(tmp_path / 'proc')
        self.systemd = FakeSystemd()
        self.url = 'http://127.0.0.1:%d/healthz' % server.server_address[1]
        self.sha = self.stage('r1', b'binary 1')
        activate(str(self.base), 'r1')
        units.install('web', 'systemd_socket', SERVICE_UNIT, SOCKET_UNIT, run_command=None,
                      unit_dir=str(self.unit_dir))
        self.proc.spawn(PID, 1000, exe=str(self.base / 'releases' / 'r1' / 'web'))
        self.systemd.unit('web.service', MainPID=PID)
        self.systemd.unit('web.socket')

    def stage(self, rid, data):
        d = self.base / 'releases' / rid
        d.mkdir(parents=True)
        (d / 'web').write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        led = Ledger.load(str(self.base))
        led.record_staged(rid, '1.0.0', sha, 'web')
        led.save()
        return sha

    def status(self, **over):
        args = dict(base_dir=str(self.base), release_id='r1', binary='web', checksum='sha256:' + self.sha,
                    app='web', strategy='systemd_socket', service_unit=SERVICE_UNIT, socket_unit=SOCKET_UNIT,
                    url=self.url, expected_version='1.0.0', keep=5, run_command=self.systemd._run,
                    unit_dir=str(self.unit_dir), proc_root=str(self.proc.root))
        args.update(over)
        return release_status(**args)


@pytest.fixture
def host(tmp_path, server):
    return Host(tmp_path, server)


def test_live_when_everything_is_as_a_deploy_leaves_it(host):
    res = host.status()
    assert res['live'] is True and 'r1 is live' in res['reason'] and 'web.service' in res['reason']
    assert host.systemd.mutating() == []


def test_another_release_is_not_live(host):
    host.stage('r2', b'binary 2')
    sha2 = hashlib.sha256(b'binary 2').hexdigest()
    res = host.status(release_id='r2', checksum='sha256:' + sha2)
    assert res == dict(live=False, reason='current is r1, not r2')


def test_nothing_deployed_is_not_live(host, tmp_path):
    assert host.status(base_dir=str(tmp_path / 'none'))['reason'].startswith('nothing is deployed under')


def test_a_held_lock_is_not_live_even_for_the_same_deploy(host):
    lock.acquire(str(host.base), 'me@ctl:web-r1')
    assert 'deploy lock is held by' in host.status()['reason']


def test_a_binary_with_another_digest_is_not_live(host):
    (host.base / 'releases' / 'r1' / 'web').write_bytes(b'tampered')
    res = host.status()
    assert res['live'] is False and 'already exists with sha256' in res['reason']


def test_a_release_dir_that_is_a_symlink_is_not_live(host, tmp_path):
    real = host.base / 'releases' / 'r1'
    os.rename(str(real), str(tmp_path / 'elsewhere'))
    os.symlink(str(tmp_path / 'elsewhere'), str(real))
    res = host.status()
    assert res['live'] is False and res['reason'].startswith('checking release r1: %s is a symlink' % real)


def test_changed_units_are_not_live(host):
    res = host.status(service_unit=SERVICE_UNIT + 'Restart=always\n')
    assert res['live'] is False and 'to write: web.service' in res['reason']


def test_another_strategy_is_not_live(host):
    res = host.status(strategy='restart', socket_unit=None)
    assert res['live'] is False and 'to remove: .hotswap-web.systemd_socket, web.socket' in res['reason']


def test_a_stopped_service_or_an_old_process_is_not_live(host):
    host.systemd.set('web.service', ActiveState='inactive', MainPID=0)
    assert 'no running main process of web.service' in host.status()['reason']
    host.proc.spawn(PID, 1000, exe=str(host.base / 'releases' / 'r0-old' / 'web'))
    host.systemd.set('web.service', ActiveState='active', MainPID=PID)
    assert 'runs %s' % (host.base / 'current' / 'web') in host.status()['reason']


def test_a_stopped_socket_or_a_unit_not_enabled_is_not_live(host):
    host.systemd.set('web.socket', ActiveState='inactive')
    assert host.status()['reason'] == 'web.socket is not active'
    host.systemd.set('web.socket', ActiveState='active')
    host.systemd.boot['web.service'] = 'disabled'
    assert host.status()['reason'] == 'web.service is not enabled at boot (disabled)'


def test_reuseport_finds_the_slot_that_serves(host):
    sysctl = host.proc.root / 'sys' / 'net' / 'ipv4'
    sysctl.mkdir(parents=True)
    (sysctl / 'tcp_migrate_req').write_text('1\n')
    units.install('web', 'reuseport', SERVICE_UNIT, run_command=host.systemd._run, unit_dir=str(host.unit_dir),
                  sysctl_file=str(host.unit_dir / 'sysctl.conf'), proc_root=str(host.proc.root))
    host.systemd.unit('web@a.service', ActiveState='inactive', MainPID=0)
    host.systemd.unit('web@b.service', MainPID=PID)
    res = host.status(strategy='reuseport', socket_unit=None)
    assert res['live'] is True and 'web@b.service' in res['reason']


def test_releases_due_for_pruning_are_not_live(host):
    for i in range(2, 5):
        host.stage('r%d' % i, b'old %d' % i)
    assert host.status(keep=2)['reason'] == 'old releases are due for pruning (keep 2)'


def test_a_failing_or_wrong_version_probe_is_not_live(host, server):
    server.version = '0.9.0'
    res = host.status()
    assert res['live'] is False and 'did not pass' in res['reason'] and '0.9.0' in res['reason']
    res = host.status(url='http://127.0.0.1:9/healthz')
    assert res['live'] is False and 'did not pass' in res['reason']


@pytest.mark.parametrize('over,words', [
    (dict(checksum='md5:abc'), 'sha256'),
    (dict(release_id='../x'), 'release'),
    (dict(strategy='nope'), 'unknown restart strategy'),
    (dict(socket_unit=None), 'socket_unit is empty'),
    (dict(url='ftp://127.0.0.1/x'), 'http'),
])
def test_bad_input_is_an_error_not_a_verdict(host, over, words):
    with pytest.raises(HotswapError, match=words):
        host.status(**over)


def test_live_check_takes_a_dict_and_names_what_is_wrong(host):
    spec = dict(release_id='r1', binary='web', checksum='sha256:' + host.sha, app='web', strategy='systemd_socket',
                service_unit=SERVICE_UNIT, socket_unit=SOCKET_UNIT, url=host.url, expected_version='',
                keep='5', timeout='3')
    res = live_check(str(host.base), spec, run_command=host.systemd._run, unit_dir=str(host.unit_dir),
                     proc_root=str(host.proc.root))
    assert res['live'] is True
    with pytest.raises(HotswapError, match=r'unknown keys colour; missing binary'):
        live_check(str(host.base), dict(spec, colour='red', binary=''))
    with pytest.raises(HotswapError, match='keep must be a whole number'):
        live_check(str(host.base), dict(spec, keep='many'))
    with pytest.raises(HotswapError, match='must be a dict'):
        live_check(str(host.base), 'r1')


def test_the_check_reads_only(host):
    before = sorted(os.listdir(str(host.base))), sorted(os.listdir(str(host.unit_dir)))
    host.status()
    assert (sorted(os.listdir(str(host.base))), sorted(os.listdir(str(host.unit_dir)))) == before
    assert host.systemd.mutating() == []
