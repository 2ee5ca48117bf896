# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The module_utils entry points of the modules that write the release tree refuse a foreign deploy lock."""

from __future__ import annotations

import hashlib
import os

import pytest
from ansible.module_utils.basic import AnsibleModule
from core_compat import patch_module_args

from ansible_collections.hotswap.deploy.plugins.module_utils import lock
from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import NOT_STAGED, upload
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import Ledger, activate_and_prune, prune
from ansible_collections.hotswap.deploy.plugins.module_utils.release import read_current

THEIRS = 'myapp deploy 1.0-aaaaaaaaaaaa (AWX job 41)'
OURS = 'myapp rollback to r1 (AWX job 42)'


def stage(base, rid):
    d = base / 'releases' / rid
    d.mkdir(parents=True)
    (d / 'app').write_bytes(rid.encode())
    os.chmod(str(d / 'app'), 0o755)
    led = Ledger.load(str(base))
    led.record_staged(rid, rid, hashlib.sha256(rid.encode()).hexdigest(), 'app')
    led.save()


@pytest.fixture
def tree(tmp_path):
    """r1..r3 staged, r2 current (r1 previous good), the lock held by another deploy."""
    for rid in ('r1', 'r2', 'r3'):
        stage(tmp_path, rid)
    activate_and_prune(str(tmp_path), 'r1')
    activate_and_prune(str(tmp_path), 'r2')
    lock.acquire(str(tmp_path), THEIRS)
    return tmp_path


def snapshot(base):
    return read_current(str(base)), sorted(os.listdir(str(base / 'releases'))), \
        (base / '.hotswap' / 'ledger.json').read_bytes()


def upload_verify_only(base, rid, lock_owner, check_mode=False):
    with patch_module_args({'_ansible_check_mode': check_mode}):
        module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    return upload(module, str(base), rid, 'app', 'sha256:' + hashlib.sha256(rid.encode()).hexdigest(),
                  check_mode=check_mode, host={'os': 'linux', 'arch': 'x86_64'}, lock_owner=lock_owner)


WRITERS = {
    'activate': lambda base, owner, check_mode=False: activate_and_prune(
        str(base), 'r1', previous_state='failed', keep=1, check_mode=check_mode, lock_owner=owner),
    'prune': lambda base, owner, check_mode=False: prune(str(base), 1, check_mode=check_mode, lock_owner=owner),
    'upload': lambda base, owner, check_mode=False: upload_verify_only(base, 'r3', owner, check_mode),
}


@pytest.mark.parametrize('writer', sorted(WRITERS))
@pytest.mark.parametrize('owner', [OURS, None])
def test_a_foreign_lock_is_refused_and_nothing_written(tree, writer, owner):
    before = snapshot(tree)
    with pytest.raises(HotswapError) as e:
        WRITERS[writer](tree, owner)
    msg = e.value.msg
    assert "held by %r" % THEIRS in msg and 'Nothing was written' in msg
    assert 'state=absent force=true' in msg
    if owner is None:
        assert "pass lock_owner: %r" % THEIRS in msg
    assert snapshot(tree) == before


@pytest.mark.parametrize('writer', sorted(WRITERS))
def test_the_holder_writes(tree, writer):
    lock.release(str(tree), THEIRS)
    lock.acquire(str(tree), OURS)
    WRITERS[writer](tree, OURS)


@pytest.mark.parametrize('writer', sorted(WRITERS))
def test_standalone_without_a_lock_still_writes(tree, writer):
    lock.release(str(tree), THEIRS)
    WRITERS[writer](tree, None)


@pytest.mark.parametrize('writer', sorted(WRITERS))
def test_check_mode_is_not_refused(tree, writer):
    WRITERS[writer](tree, OURS, check_mode=True)


def test_upload_verify_only_under_the_lock_reports_not_staged(tree):
    lock.release(str(tree), THEIRS)
    lock.acquire(str(tree), OURS)
    with pytest.raises(HotswapError) as e:
        upload_verify_only(tree, 'r9', OURS)
    assert e.value.details['reason'] == NOT_STAGED
