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
