# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

import json
import os

from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import activate
from ansible_collections.hotswap.deploy.plugins.modules import release_info as MODULE


def test_missing_base_dir_is_empty(tmp_path, run_module):
    res = run_module(MODULE, base_dir=str(tmp_path / 'nope'))
    assert res['changed'] is False and res['current'] is None and res['releases'] == []
    assert not (tmp_path / 'nope').exists()


def test_reports_releases_and_unknown(tmp_path, run_module, stage):
    stage(tmp_path, 'r1')
    stage(tmp_path, 'r2')
    stage(tmp_path, 'hand')
    (tmp_path / '.hotswap').mkdir()
    activate(str(tmp_path), 'r1')
    activate(str(tmp_path), 'r2')
    before = sorted(os.listdir(str(tmp_path)))
    res = run_module(MODULE, base_dir=str(tmp_path), _ansible_check_mode=True)
    assert res['changed'] is False
    assert res['current'] == 'r2' and res['previous_good'] == 'r1'
    assert [(r['release_id'], r['state']) for r in res['releases']] == [('r1', 'retired'), ('r2', 'active'),
                                                                        ('hand', 'unknown')]
    assert res['ledger_path'] == str(tmp_path / '.hotswap' / 'ledger.json')
    assert sorted(os.listdir(str(tmp_path))) == before


def test_current_real_dir_is_a_warning(tmp_path, run_module):
    (tmp_path / 'current').mkdir()
    res = run_module(MODULE, base_dir=str(tmp_path))
    assert res['current'] is None and 'real directory' in res['problems'][0]
    assert 'real directory' in json.dumps(res.get('warnings'))


def test_corrupt_ledger_fails(tmp_path, run_module):
    (tmp_path / '.hotswap').mkdir()
    (tmp_path / '.hotswap' / 'ledger.json').write_text('{')
    res = run_module(MODULE, base_dir=str(tmp_path))
    assert res['failed'] is True and 'not valid JSON' in res['msg']


def test_blue_green_state_in_the_same_run(tmp_path, run_module, stage):
    """slots, lb_config and stat: what the blue_green role reads before the lock, in one module run."""
    stage(tmp_path, 'r1')
    (tmp_path / 'slots').mkdir()
    os.symlink('../releases/r1', str(tmp_path / 'slots' / 'blue'))
    conf = tmp_path / 'hotswap-app.conf'
    conf.write_text('# hotswap-blue-green live=blue backup=green\nupstream app {}\n')
    site = tmp_path / 'default'
    os.symlink(str(tmp_path / 'nowhere'), str(site))
    res = run_module(MODULE, base_dir=str(tmp_path), slots=['blue', 'green'], lb_config=str(conf),
                     stat=[str(site), str(tmp_path / 'nginx')], _ansible_check_mode=True)
    assert res['changed'] is False, res
    assert res['slots'] == {
        'blue': {'path': str(tmp_path / 'slots' / 'blue'), 'exists': True, 'islink': True, 'release': 'r1'},
        'green': {'path': str(tmp_path / 'slots' / 'green'), 'exists': False, 'islink': False, 'release': None}}
    assert res['lb_config'].startswith('# hotswap-blue-green live=blue')
    assert (res['live_slot'], res['backup_slot']) == ('blue', 'green')
    # A dangling link exists (as a link): the role removes the default site's link, never its target.
    assert res['stat'] == {str(site): {'exists': True, 'islnk': True},
                           str(tmp_path / 'nginx'): {'exists': False, 'islnk': False}}


def test_missing_config_and_base_dir_read_as_nothing_there(tmp_path, run_module):
    res = run_module(MODULE, base_dir=str(tmp_path / 'nope'), slots=['blue'], lb_config=str(tmp_path / 'none.conf'))
    assert res['lb_config'] is None and (res['live_slot'], res['backup_slot']) == ('', '')
    assert res['slots']['blue']['exists'] is False and res['slots']['blue']['release'] is None
    assert res['stat'] == {}


def test_a_slot_that_is_a_real_directory_is_reported_not_followed(tmp_path, run_module):
    (tmp_path / 'slots' / 'green').mkdir(parents=True)
    res = run_module(MODULE, base_dir=str(tmp_path), slots=['green'])
    assert res['slots']['green'] == {'path': str(tmp_path / 'slots' / 'green'), 'exists': True, 'islink': False,
                                     'release': None}
    assert 'lb_config' not in res


def test_a_config_written_by_someone_else_names_no_slot(tmp_path, run_module):
    conf = tmp_path / 'other.conf'
    conf.write_text('server { listen 80; }\n')
    res = run_module(MODULE, base_dir=str(tmp_path), lb_config=str(conf))
    assert res['lb_config'] == 'server { listen 80; }\n' and res['live_slot'] == '' and res['backup_slot'] == ''


def test_a_bad_slot_name_fails_with_the_fix(tmp_path, run_module):
    res = run_module(MODULE, base_dir=str(tmp_path), slots=['../etc'])
    assert res['failed'] is True and 'a slot name is letters' in res['msg'] and 'Fix slots' in res['msg']


def test_an_unreadable_config_fails_with_the_fix(tmp_path, run_module):
    res = run_module(MODULE, base_dir=str(tmp_path), lb_config=str(tmp_path))  # a directory: EISDIR
    assert res['failed'] is True and 'reading the nginx config' in res['msg'] and 'run with become' in res['msg']


def test_release_id_reports_whether_it_is_staged_and_the_host_platform(tmp_path, run_module, stage):
    """What a check-mode push would probe for, in the read: the release directory and the host's os/arch."""
    from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import host_platform
    stage(tmp_path, '1.0.0-aaaaaaaaaaaa')
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='1.0.0-aaaaaaaaaaaa')
    assert res['release_present'] is True and res['host_platform'] == host_platform()
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='2.0.0-bbbbbbbbbbbb')
    assert res['release_present'] is False and res['host_platform'] == host_platform()
    res = run_module(MODULE, base_dir=str(tmp_path))
    assert res['release_present'] is None and res['host_platform'] is None
    res = run_module(MODULE, base_dir=str(tmp_path), release_id='../etc')
    assert res['failed'] is True and 'release' in res['msg']
