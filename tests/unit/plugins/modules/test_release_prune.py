# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import Ledger, activate
from ansible_collections.hotswap.deploy.plugins.modules import release_prune as MODULE


@pytest.fixture
def deploy(stage):
    """Return deploy(base, n): stage, record and activate releases r1..rn in turn."""
    def deploy_releases(base, n):
        for i in range(1, n + 1):
            rid = 'r%d' % i
            stage(base, rid)
            led = Ledger.load(str(base))
            led.record_staged(rid, str(i), hashlib.sha256(rid.encode()).hexdigest(), 'app',
                              at='2024-01-%02dT00:00:00Z' % i)
            led.save()
            activate(str(base), rid)
    return deploy_releases


def test_prune_check_then_real_then_idempotent(tmp_path, run_module, deploy):
    deploy(tmp_path, 7)
    res = run_module(MODULE, base_dir=str(tmp_path), _ansible_check_mode=True)
    assert res['changed'] is True and res['removed'] == ['r1', 'r2']
    assert len(os.listdir(str(tmp_path / 'releases'))) == 7
    res = run_module(MODULE, base_dir=str(tmp_path))
    assert res['removed'] == ['r1', 'r2'] and res['kept'] == ['r3', 'r4', 'r5', 'r6', 'r7']
    assert sorted(os.listdir(str(tmp_path / 'releases'))) == ['r3', 'r4', 'r5', 'r6', 'r7']
    res = run_module(MODULE, base_dir=str(tmp_path))
    assert res['changed'] is False and res['removed'] == []


def test_keep_one(tmp_path, run_module, deploy):
    deploy(tmp_path, 3)
    (tmp_path / 'releases' / 'hand').mkdir()
    res = run_module(MODULE, base_dir=str(tmp_path), keep=1)
    assert res['removed'] == ['r1'] and res['kept'] == ['r2', 'r3'] and res['unknown'] == ['hand']


@pytest.mark.parametrize('keep', [0, -3])
def test_keep_below_one_fails(tmp_path, run_module, deploy, keep):
    deploy(tmp_path, 2)
    res = run_module(MODULE, base_dir=str(tmp_path), keep=keep)
    assert res['failed'] is True and 'keep' in res['msg']
    assert len(os.listdir(str(tmp_path / 'releases'))) == 2


def test_protect(tmp_path, run_module, deploy):
    deploy(tmp_path, 4)
    res = run_module(MODULE, base_dir=str(tmp_path), keep=1, protect=['r1'])
    assert res['removed'] == ['r2'] and res['kept'] == ['r1', 'r3', 'r4']
    assert sorted(os.listdir(str(tmp_path / 'releases'))) == ['r1', 'r3', 'r4']
    res = run_module(MODULE, base_dir=str(tmp_path), keep=1, protect=['../x'])
    assert res['failed'] is True and 'protect' in res['msg']
