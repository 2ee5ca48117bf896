# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

import importlib
import socket

import pytest

from core_compat import controller_code


@pytest.fixture(scope='module', autouse=True)
def plugin():
    """Import the filter (controller code) late, and undo its process-wide switch afterwards.

    Importing ansible.errors sets ansible.module_utils._internal.is_controller, after which module
    tests in the same session would lose their warnings (see tests/unit/plugins/action/conftest.py).
    """
    with controller_code():
        yield importlib.import_module('ansible_collections.hotswap.deploy.plugins.filter.lock_owner')


@pytest.fixture
def lock_owner(plugin):
    return plugin.lock_owner


def test_an_awx_job_is_named_by_its_id_not_its_pod(lock_owner):
    got = lock_owner('myapp', 'deploy 1.4.2-3a7bd3e2360a', 41)
    assert got == {'owner': 'myapp deploy 1.4.2-3a7bd3e2360a (AWX job 41)',
                   'reclaim_key': 'myapp deploy 1.4.2-3a7bd3e2360a'}
    assert socket.gethostname() not in got['owner']


def test_a_relaunch_has_another_owner_and_the_same_key(lock_owner):
    first = lock_owner('myapp', 'deploy 1.4.2-3a7bd3e2360a', '41')
    relaunch = lock_owner('myapp', 'deploy 1.4.2-3a7bd3e2360a', '42')
    other = lock_owner('myapp', 'deploy 1.4.3-0123456789ab', '43')
    assert first['owner'] != relaunch['owner'] and first['reclaim_key'] == relaunch['reclaim_key']
    assert other['reclaim_key'] != first['reclaim_key']


def test_outside_awx_the_controller_user_and_host_name_the_run(lock_owner):
    got = lock_owner('myapp', 'rollback to 1.4.1-9f86d081884c')
    assert got['owner'].startswith('myapp rollback to 1.4.1-9f86d081884c (')
    assert got['owner'].endswith('@%s)' % socket.gethostname())
    assert got == lock_owner('myapp', 'rollback to 1.4.1-9f86d081884c', '')


def test_a_deploy_id_is_owner_and_key(lock_owner):
    expected = {'owner': 'release-train-7', 'reclaim_key': 'release-train-7'}
    assert lock_owner('myapp', 'deploy r1', '41', 'release-train-7') == expected


@pytest.mark.parametrize('app,action', [('', 'deploy r1'), ('myapp', ''), (None, 'deploy r1')])
def test_empty_names_are_refused(plugin, app, action):
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError):
        plugin.lock_owner(app, action)


def test_registered(plugin):
    assert plugin.FilterModule().filters()['lock_owner'] is plugin.lock_owner
