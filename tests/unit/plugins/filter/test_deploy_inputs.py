# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""deploy.yml's input checks (filter deploy_input_problem): extra vars and rollout, then hosts, then service
settings; the first problem is the message."""

from __future__ import annotations

import pytest

from core_compat import import_controller

GOOD = dict(app='myapp', version='1.2.3', checksum='sha256:' + 'a' * 64, artifact='dist/myapp')


@pytest.fixture(scope='module')
def problem():
    return import_controller('ansible_collections.hotswap.deploy.plugins.filter.deploy_inputs').deploy_input_problem


def test_good_inputs_have_no_problem(problem):
    assert problem(GOOD, ['web1']) == ''
    assert problem(dict(GOOD, artifact_url='http://127.0.0.1:9/x', rollout='blue_green'), ['web1']) == ''


@pytest.mark.parametrize('drop', ['app', 'version', 'checksum', 'artifact'])
def test_each_required_extra_var(problem, drop):
    given = dict((k, v) for k, v in GOOD.items() if k != drop)
    msg = problem(given, ['web1'])
    assert msg.startswith('deploy.yml needs extra vars app, version, checksum (sha256:<hex>)')
    assert 'got rollout=canary.' in msg and 'blue_green_action=switch_back' in msg


@pytest.mark.parametrize('empty', ['app', 'version', 'checksum'])
def test_an_empty_value_is_missing(problem, empty):
    assert 'needs extra vars' in problem(dict(GOOD, **{empty: ''}), ['web1'])


def test_windows_artifact_is_enough(problem):
    given = dict(app='myapp', version='1', win_checksum='sha256:' + 'b' * 64, win_artifact_url='http://127.0.0.1:9/a.exe')
    assert problem(given, ['win1']) == ''
    assert 'needs extra vars' in problem(dict(given, win_checksum=''), ['win1'])


def test_unknown_rollout(problem):
    assert 'got rollout=rolling.' in problem(dict(GOOD, rollout='rolling'), ['web1'])


def test_blue_green_switch_back_needs_only_the_app(problem):
    assert problem(dict(app='myapp', rollout='blue_green', blue_green_action='switch_back'), ['web1']) == ''
    # Only blue-green switches back without a release.
    assert 'needs extra vars' in problem(dict(app='myapp', blue_green_action='switch_back'), ['web1'])


def test_the_extra_vars_come_before_the_hosts(problem):
    assert 'needs extra vars' in problem(dict(app='myapp'), [])


def test_no_host_for_the_group_named_after_the_app(problem):
    msg = problem(GOOD, [])
    assert msg == ("deploy.yml deploys myapp only to the hosts that ask for it: -e deploy_hosts=<host pattern>, or an "
                   "inventory group named 'myapp'. The inventory has no group myapp (or it is empty). Nothing was "
                   "changed.")


def test_no_host_for_the_pattern(problem):
    msg = problem(dict(GOOD, deploy_hosts='nosuchgroup'), [])
    assert 'The pattern nosuchgroup matches no host of the inventory. Nothing was changed.' in msg


def test_service_settings_come_last(problem):
    bad = dict(GOOD, unit_directives=['ExecStart=/bin/sh -c true'])
    assert 'ExecStart' in problem(bad, ['web1']) and 'Remove it' in problem(bad, ['web1'])
    assert 'deploys myapp only' in problem(bad, [])


def test_service_settings_take_the_listen_port(problem):
    assert problem(dict(GOOD, listen_port=9090), ['web1']) == ''
