# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

import json
import os

from ansible_collections.hotswap.deploy.plugins.modules import deploy_lock as MODULE


def test_take_twice_release_twice(tmp_path, run_module):
    base = str(tmp_path / 'app')
    res = run_module(MODULE, base_dir=base, owner='me@ctl:1')
    assert res['changed'] is True and res['holder']['owner'] == 'me@ctl:1'
    res = run_module(MODULE, base_dir=base, owner='me@ctl:1')
    assert res['changed'] is False and res['holder']['owner'] == 'me@ctl:1'
    res = run_module(MODULE, base_dir=base, owner='me@ctl:1', state='absent')
    assert res['changed'] is True and res['holder'] is None and res['released']['owner'] == 'me@ctl:1'
    res = run_module(MODULE, base_dir=base, owner='me@ctl:1', state='absent')
    assert res['changed'] is False


def test_other_owner_and_force(tmp_path, run_module):
    base = str(tmp_path)
    run_module(MODULE, base_dir=base, owner='alice')
    res = run_module(MODULE, base_dir=base, owner='bob')
    assert res['failed'] is True and "'alice'" in res['msg']
    res = run_module(MODULE, base_dir=base, owner='bob', state='absent')
    assert res['failed'] is True and 'force=true' in res['msg']
    res = run_module(MODULE, base_dir=base, state='absent', force=True, _ansible_check_mode=True)
    assert res['changed'] is True and os.path.exists(os.path.join(base, '.hotswap', 'lock'))
    res = run_module(MODULE, base_dir=base, state='absent', force=True)
    assert res['changed'] is True and res['released']['owner'] == 'alice'
    assert not os.path.exists(os.path.join(base, '.hotswap', 'lock'))


def test_stale_takeover_warns(tmp_path, run_module):
    base = str(tmp_path)
    run_module(MODULE, base_dir=base, owner='alice')
    path = tmp_path / '.hotswap' / 'lock'
    data = json.loads(path.read_text())
    data['acquired_epoch'] -= 1000
    path.write_text(json.dumps(data))
    res = run_module(MODULE, base_dir=base, owner='bob', stale_after=60)
    assert res['changed'] is True and res['taken_over']['owner'] == 'alice'
    assert 'took over the stale deploy lock' in json.dumps(res.get('warnings'))


def test_check_mode_does_not_create(tmp_path, run_module):
    base = tmp_path / 'app'
    res = run_module(MODULE, base_dir=str(base), owner='me', _ansible_check_mode=True)
    assert res['changed'] is True and not base.exists()


def test_owner_required_when_present(tmp_path, run_module):
    res = run_module(MODULE, base_dir=str(tmp_path))
    assert res['failed'] is True and 'owner' in res['msg']


def test_relaunch_reclaims_and_warns(tmp_path, run_module):
    base = str(tmp_path)
    key = 'myapp deploy 1.4.2-3a7bd3e2360a'
    run_module(MODULE, base_dir=base, owner=key + ' (AWX job 41)', reclaim_key=key)
    res = run_module(MODULE, base_dir=base, owner=key + ' (AWX job 42)', reclaim_key=key)
    assert res['changed'] is True and res['reclaimed'] is True
    assert res['taken_over']['owner'] == key + ' (AWX job 41)' and res['holder']['reclaim_key'] == key
    assert 'took back the deploy lock' in json.dumps(res.get('warnings'))
    res = run_module(MODULE, base_dir=base, owner='myapp deploy 1.4.3-0123456789ab (AWX job 43)',
                     reclaim_key='myapp deploy 1.4.3-0123456789ab')
    assert res['failed'] is True and "holds the deploy lock: 'myapp deploy 1.4.2-3a7bd3e2360a (AWX job 42)'" in res['msg']


def test_the_lock_run_reports_the_service_user_and_the_release_directory(tmp_path, run_module):
    import getpass
    import platform
    base = tmp_path / 'app'
    me = getpass.getuser()
    res = run_module(MODULE, base_dir=str(base), owner='me', service_user=me, release_id='1.0.0-aaaaaaaaaaaa')
    assert res['service_user']['exists'] is True and res['service_user']['group']
    assert res['release_present'] is False and res['host_platform']['os'] == platform.system().lower()
    (base / 'releases' / '1.0.0-aaaaaaaaaaaa').mkdir(parents=True)
    res = run_module(MODULE, base_dir=str(base), owner='me', service_user='no-such-user-hs', release_id='1.0.0-aaaaaaaaaaaa')
    assert res['release_present'] is True
    assert res['service_user'] == dict(exists=False, group=None, home=None, shell=None)
    res = run_module(MODULE, base_dir=str(base), owner='me', state='absent')
    assert res['service_user'] is None and res['release_present'] is None
