# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import lock
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


# -- take_lock: the deploy lock and the switch in one module run (the rollback's switch) -------------

OWNER = 'demo rollback to r1'
KEY = 'demo rollback to r1 (key)'


def lock_file(base):
    return base / '.hotswap' / 'lock'


def read_lock(base):
    return json.loads(lock_file(base).read_text())


def hold(base, owner, reclaim_key=None, age=0):
    """Put a lock of ``owner`` on base, ``age`` seconds old."""
    lock.acquire(str(base), owner, reclaim_key=reclaim_key)
    if age:
        data = read_lock(base)
        data['acquired_epoch'] -= age
        lock_file(base).write_text(json.dumps(data))
    return lock_file(base).read_bytes()


def current(base):
    path = str(base / 'current')
    return os.readlink(path) if os.path.lexists(path) else None


def test_take_lock_takes_a_free_lock_and_switches_in_one_run(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', lock_owner=OWNER,
                     take_lock=dict(reclaim_key=KEY))
    assert not res.get('failed'), res
    assert res['switched'] is True and res['current_release'] == 'r1' and current(tmp_path) == 'releases/r1'
    assert res['lock'] == dict(taken_over=None, reclaimed=False)
    held = read_lock(tmp_path)
    assert held['owner'] == OWNER and held['reclaim_key'] == KEY
    # Switched again under the lock it holds: the lock is no change, the switch is none either.
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', lock_owner=OWNER, take_lock={})
    assert res['changed'] is False and res['switched'] is False
    assert res['lock'] == dict(taken_over=None, reclaimed=False) and read_lock(tmp_path)['owner'] == OWNER


def test_take_lock_is_not_counted_in_changed(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    run_module(MODULE, base_dir=str(tmp_path), release_id='r1')
    assert not lock_file(tmp_path).exists()
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', lock_owner=OWNER, take_lock={})
    assert res['changed'] is False and res['switched'] is False
    assert read_lock(tmp_path)['owner'] == OWNER


def test_without_take_lock_no_lock_is_taken_or_returned(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1')
    assert res['switched'] is True and 'lock' not in res and not lock_file(tmp_path).exists()


def test_take_lock_held_by_another_owner_fails_and_writes_nothing(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    stage(tmp_path, 'r2')
    run_module(MODULE, base_dir=str(tmp_path), release_id='r2')
    ledger = (tmp_path / '.hotswap' / 'ledger.json').read_bytes()
    before = hold(tmp_path, 'demo deploy 2 (AWX job 7)', reclaim_key='demo deploy 2')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', lock_owner=OWNER,
                     take_lock=dict(reclaim_key=KEY))
    assert res['failed'] is True and res['lock_failed'] is True and 'locked' not in res
    assert "'demo deploy 2 (AWX job 7)'" in res['msg'] and 'lock' not in res
    assert current(tmp_path) == 'releases/r2'
    assert lock_file(tmp_path).read_bytes() == before
    assert (tmp_path / '.hotswap' / 'ledger.json').read_bytes() == ledger


def test_take_lock_held_by_another_owner_fails_in_check_mode_too(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    before = hold(tmp_path, 'someone else')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', lock_owner=OWNER, take_lock={},
                     _ansible_check_mode=True)
    assert res['failed'] is True and res['lock_failed'] is True
    assert lock_file(tmp_path).read_bytes() == before and current(tmp_path) is None


def test_take_lock_takes_over_a_stale_lock_with_stale_after(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    before = hold(tmp_path, 'dead deploy', age=1000)
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', lock_owner=OWNER,
                     take_lock=dict(stale_after=3600))
    assert res['failed'] is True and res['lock_failed'] is True and "'dead deploy'" in res['msg']
    assert lock_file(tmp_path).read_bytes() == before and current(tmp_path) is None
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', lock_owner=OWNER,
                     take_lock=dict(stale_after=60))
    assert not res.get('failed'), res
    assert res['switched'] is True and current(tmp_path) == 'releases/r1'
    assert res['lock']['reclaimed'] is False and res['lock']['taken_over']['owner'] == 'dead deploy'
    assert read_lock(tmp_path)['owner'] == OWNER
    assert [n for n in os.listdir(str(tmp_path / '.hotswap')) if n.startswith('lock.')] == []


def test_take_lock_reclaims_the_lock_of_the_same_deploy_by_its_reclaim_key(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    hold(tmp_path, KEY + ' (AWX job 41)', reclaim_key=KEY)
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', lock_owner=OWNER,
                     take_lock=dict(reclaim_key=KEY))
    assert not res.get('failed'), res
    assert res['lock']['reclaimed'] is True and res['lock']['taken_over']['owner'] == KEY + ' (AWX job 41)'
    assert res['switched'] is True and current(tmp_path) == 'releases/r1'
    held = read_lock(tmp_path)
    assert held['owner'] == OWNER and held['reclaim_key'] == KEY


def test_take_lock_without_lock_owner_is_refused(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', take_lock=dict(reclaim_key=KEY))
    assert res['failed'] is True and 'take_lock' in res['msg'] and 'lock_owner' in res['msg']
    assert sorted(os.listdir(str(tmp_path))) == ['releases']


def test_take_lock_stale_after_must_be_an_integer(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', lock_owner=OWNER,
                     take_lock=dict(stale_after='soon'))
    assert res['failed'] is True and 'stale_after' in res['msg']
    assert sorted(os.listdir(str(tmp_path))) == ['releases']


def test_take_lock_in_check_mode_writes_nothing(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', lock_owner=OWNER,
                     take_lock=dict(reclaim_key=KEY), _ansible_check_mode=True)
    assert not res.get('failed'), res
    assert res['changed'] is True and res['switched'] is True and res['lock'] == dict(taken_over=None, reclaimed=False)
    assert sorted(os.listdir(str(tmp_path))) == ['releases']
    # On a missing base_dir neither the lock nor its directories are made.
    base = tmp_path / 'nothing'
    res = run_module(MODULE, base_dir=str(base), release_id='r1', lock_owner=OWNER, take_lock={},
                     _ansible_check_mode=True)
    assert res['failed'] is True and 'does not exist' in res['msg'] and not base.exists()


def test_a_switch_refused_after_taking_the_lock_fails_with_locked(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    run_module(MODULE, base_dir=str(tmp_path), release_id='r1')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r9', lock_owner=OWNER,
                     take_lock=dict(reclaim_key=KEY))
    assert res['failed'] is True and res['locked'] is True and 'does not exist' in res['msg']
    assert 'lock_failed' not in res
    assert read_lock(tmp_path)['owner'] == OWNER and current(tmp_path) == 'releases/r1'


def test_a_switch_refused_without_take_lock_is_not_locked(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='r9')
    assert res['failed'] is True and res['locked'] is False and not lock_file(tmp_path).exists()


# -- the docs ------------------------------------------------------------------------------------------

def test_documented_options_are_the_argument_spec(argument_spec_of, doc_section, doc_spec_mismatches):
    doc = doc_section(MODULE, 'DOCUMENTATION')
    fragments = [f for f in doc['extends_documentation_fragment'] if f.startswith('hotswap.deploy.release')]
    assert fragments == ['hotswap.deploy.release', 'hotswap.deploy.release.release_id',
                         'hotswap.deploy.release.lock_owner']
    assert doc_spec_mismatches(MODULE) == []
    assert 'take_lock' in argument_spec_of(MODULE)


def test_every_result_is_documented(tmp_path, run_module, stage, doc_section):
    returned = doc_section(MODULE, 'RETURN')
    common = {'changed', 'invocation', 'diff', 'warnings', 'failed', 'msg'}
    stage(tmp_path, 'r1')
    ok = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', lock_owner=OWNER, take_lock={}, keep=3)
    assert set(ok) - common <= set(returned), sorted(set(ok) - common - set(returned))
    assert sorted(ok['lock']) == sorted(returned['lock']['sample'])
    refused = run_module(MODULE, base_dir=str(tmp_path), release_id='r9', lock_owner=OWNER, take_lock={})
    held = run_module(MODULE, base_dir=str(tmp_path), release_id='r1', lock_owner='another', take_lock={})
    for res in (refused, held):
        assert res['failed'] is True
        assert set(res) - common <= set(returned), sorted(set(res) - common - set(returned))
    assert returned['lock_failed']['type'] == 'bool' and returned['locked']['type'] == 'bool'
