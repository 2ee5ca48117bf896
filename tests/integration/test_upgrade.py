# -*- coding: utf-8 -*-
"""Upgrade of the collection from 0.4.0: the first deploy moves a running service to the new unit.

0.4.0 ran the service as root with the demo app's flags in every unit. The first deploy with this
version rewrites the unit (service user, hardening, no default flags) and restarts the service once
with its strategy; under systemd_socket the socket is not restarted and no request fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

import testlib

# The last commit of 0.4.0 (galaxy.yml version 0.4.0), built into its own collections path.
OLD_COMMIT = '58ccbe772b4ebe01ff98671aa17f89ccd9d6188d'
OLD_DIR = os.path.join(testlib.REPO, 'build', 'collection-0.4.0')
APP = 'upgraded'
PORT = 8080


def old_collection():
    """build/collection-0.4.0/collections with 0.4.0 installed (built once from git)."""
    collections = os.path.join(OLD_DIR, 'collections')
    if os.path.exists(os.path.join(collections, 'ansible_collections', 'hotswap', 'deploy', 'MANIFEST.json')):
        return collections
    if subprocess.run(['git', 'cat-file', '-e', OLD_COMMIT + '^{commit}'], cwd=testlib.REPO, check=False).returncode:
        pytest.skip('commit %s (0.4.0) is not in this clone: a shallow clone cannot build 0.4.0' % OLD_COMMIT)
    src = os.path.join(OLD_DIR, 'src')
    os.makedirs(src, exist_ok=True)
    archive = subprocess.run(['git', 'archive', OLD_COMMIT], cwd=testlib.REPO, stdout=subprocess.PIPE, check=True)
    subprocess.run(['tar', '-x', '-C', src], input=archive.stdout, check=True)
    galaxy = os.path.join(testlib.VENV_BIN, 'ansible-galaxy')
    dist = os.path.join(OLD_DIR, 'dist')
    subprocess.run([galaxy, 'collection', 'build', '--force', '--output-path', dist, src], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([galaxy, 'collection', 'install', '--force', '-p', collections,
                    os.path.join(dist, 'hotswap-deploy-0.4.0.tar.gz')], check=True, stdout=subprocess.DEVNULL)
    return collections


@pytest.fixture
def upgraded(fleet):
    """The hosts are shared with other test modules: port 8080 is given back afterwards."""
    yield fleet
    testlib.remove_app(fleet.hosts, APP)


def test_first_deploy_after_upgrade_from_0_4_0_under_load(upgraded, tmp_path):
    fleet = upgraded
    collections = old_collection()
    v1, v2 = testlib.build_app('1.0.0'), testlib.build_app('2.0.0')
    base = dict(testlib.ONE_BATCH, app=APP, listen_port=PORT, restart_strategy='systemd_socket', service_type='notify')

    # 0.4.0, as its users ran it: its own deploy.yml (every host of the inventory), its defaults.
    env = dict(testlib.ansible_env(), ANSIBLE_COLLECTIONS_PATH=collections)
    old_vars = dict(base, version='1.0.0', artifact=v1, checksum=testlib.sha256(v1))
    vars_file = tmp_path / 'old-vars.json'
    vars_file.write_text(json.dumps(old_vars))
    r = testlib.run_env([os.path.join(testlib.VENV_BIN, 'ansible-playbook'), '-i', fleet.inventory,
                         'hotswap.deploy.deploy', '-e', '@%s' % vars_file], env)
    assert r.rc == 0, r
    for host in fleet:
        assert 'User=root' in testlib.host_sh(host, 'cat /etc/systemd/system/%s.service' % APP)
        assert testlib.served_version(host, PORT) == '1.0.0'
    socket_started = 'systemctl show -P ActiveEnterTimestampMonotonic %s.socket' % APP
    socket_since = dict((h['name'], testlib.host_sh(h, socket_started).strip()) for h in fleet)
    since = int(time.time())

    # This version, under load: the unit is rewritten and the service restarted once, socket kept.
    probe = testlib.start_load(fleet.hosts, PORT, rate=100, keepalive=False, duration=240)
    try:
        r = testlib.playbook(fleet.inventory, 'deploy', dict(base, version='2.0.0', artifact=v2,
                                                             checksum=testlib.sha256(v2)), tmp_path=tmp_path)
    finally:
        summary = testlib.finish_load(probe, 'upgrade-from-0.4.0')
    assert r.rc == 0, r
    assert summary['sent'] > 100 and summary['failed'] == 0, testlib.brief(summary)
    for host in fleet:
        unit = testlib.host_sh(host, 'cat /etc/systemd/system/%s.service' % APP)
        assert 'User=%s' % APP in unit and 'ProtectSystem=strict' in unit and '--listen' not in unit, unit
        assert testlib.served_version(host, PORT) == '2.0.0'
        assert testlib.host_sh(host, 'ps -o user= -p $(systemctl show -P MainPID %s.service)' % APP).strip() == APP
        assert testlib.host_sh(host, socket_started).strip() == socket_since[host['name']]
        starts = testlib.host_sh(host, "journalctl --no-pager -o cat --since @%d -u %s.service | grep -c '^Started'"
                                 % (since, APP), check=False).strip()
        assert starts == '1', (host['name'], starts)
