# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hotswap.deploy.plugins.modules import release_activate as MODULE


def test_activate_twice_then_switch_with_diff(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    stage(tmp_path, 'r2')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', activated_by='me@ctl:1')
    assert res['changed'] is True and res['switched'] is True
    assert res['previous_release'] is None and res['current_release'] == 'r1'
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1')
    assert res['changed'] is False and res['switched'] is False and res['previous_release'] == 'r1'
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r2', _ansible_diff=True)
    assert res['changed'] is True
    assert res['diff'] == {'before': 'current -> releases/r1\n', 'after': 'current -> releases/r2\n'}
    assert os.readlink(str(tmp_path / 'current')) == 'releases/r2'


def test_check_mode_reports_without_changing(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', _ansible_check_mode=True, _ansible_diff=True)
    assert res['changed'] is True and res['switched'] is True
    assert res['diff'] == {'before': '', 'after': 'current -> releases/r1\n'}
    assert sorted(os.listdir(str(tmp_path))) == ['releases']


def test_rollback_marks_previous_failed(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    stage(tmp_path, 'r2')
    run_module(MODULE, base_dir=str(tmp_path), release_id='r1')
    run_module(MODULE, base_dir=str(tmp_path), release_id='r2')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', previous_state='failed')
    assert res['previous_release'] == 'r2'
    ledger = json.loads((tmp_path / '.hotswap' / 'ledger.json').read_text())
    assert ledger['releases']['r2']['state'] == 'failed'


@pytest.mark.parametrize('args,words', [
    (dict(release_id='r9'), 'does not exist'),
    (dict(release_id='../etc'), 'release_id'),
    (dict(release_id='r1', previous_state='bogus'), 'previous_state'),
    (dict(release_id='r1', base_dir='relative/app'), 'absolute'),
])
def test_errors(tmp_path, run_module, stage, args, words):
    stage(tmp_path, 'r1')
    args.setdefault('base_dir', str(tmp_path))
    res = run_module(MODULE, **args)
    assert res['failed'] is True and words in res['msg']
    assert not os.path.lexists(str(tmp_path / 'current'))


def test_current_real_directory_refused(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    (tmp_path / 'current').mkdir()
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1')
    assert res['failed'] is True and 'real directory' in res['msg']
    assert os.path.isdir(str(tmp_path / 'current')) and not os.path.islink(str(tmp_path / 'current'))


def test_a_release_left_by_a_killed_upload_is_refused(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    run_module(MODULE, base_dir=str(tmp_path), release_id='r1')
    (tmp_path / 'releases' / 'r2').mkdir()
    (tmp_path / 'releases' / 'r2' / '.app.partial-x1y2z3').write_text('half')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r2')
    assert res['failed'] is True
    assert res['msg'].startswith('activating release r2: ') and '.app.partial-x1y2z3' in res['msg']
    assert os.readlink(str(tmp_path / 'current')) == 'releases/r1'


def test_a_release_dir_that_is_a_symlink_is_refused(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    outside = stage(tmp_path / 'outside', 'r2')
    os.symlink(str(outside), str(tmp_path / 'releases' / 'r2'))
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r2')
    assert res['failed'] is True and 'is a symlink (to %s)' % outside in res['msg']
    assert not os.path.lexists(str(tmp_path / 'current'))
