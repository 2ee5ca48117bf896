# -*- coding: utf-8 -*-
"""ansible-doc shows every module of the installed collection; deploy.yml --check changes nothing."""

from __future__ import annotations

import os

import pytest

import testlib

MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(testlib.INSTALLED, 'plugins', 'modules'))
                 if f.endswith('.py') and not f.startswith('_'))


def test_every_module_is_installed():
    assert set(MODULES) >= {'binary_upload', 'release_activate', 'release_info', 'release_prune',
                            'health_check', 'deploy_lock'}


@pytest.mark.parametrize('module', MODULES)
def test_ansible_doc_shows_module(module):
    r = testlib.run([os.path.join(testlib.VENV_BIN, 'ansible-doc'), 'hotswap.deploy.' + module])
    assert r.rc == 0, r
    assert 'hotswap.deploy.%s' % module in r.out.replace('\n', ' ') or module in r.out, r
    assert 'OPTIONS' in r.out and 'RETURN VALUES' in r.out and 'EXAMPLES' in r.out, r
    assert 'ERROR' not in r.out, r


def test_check_mode_changes_nothing(fleet, app_name, app_port, tmp_path):
    v1 = testlib.build_app('1.0.0')
    v2 = testlib.build_app('2.0.0')
    base = '/opt/' + app_name
    common = dict(testlib.ONE_BATCH, app=app_name, listen_port=app_port)
    first = dict(common, version='1.0.0', artifact=v1, checksum=testlib.sha256(v1))
    r = testlib.playbook(fleet.inventory, 'deploy', first, tmp_path=tmp_path)
    assert r.rc == 0, r
    before = {h['name']: testlib.tree_state(h, base, app_name) for h in fleet}
    second = dict(common, version='2.0.0', artifact=v2, checksum=testlib.sha256(v2))
    r = testlib.playbook(fleet.inventory, 'deploy', second, check=True, diff=True, tmp_path=tmp_path)
    assert r.rc == 0, r
    # It says what it would do ...
    assert all(c['changed'] > 0 for c in r.hosts_recap.values()), r
    # ... and does none of it.
    for h in fleet:
        assert testlib.tree_state(h, base, app_name) == before[h['name']]
        assert testlib.served_version(h, app_port) == '1.0.0'
