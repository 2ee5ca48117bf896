# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
import time

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import lock
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError


def lock_path(base):
    return base / '.hotswap' / 'lock'


def backdate(base, seconds):
    path = lock_path(base)
    data = json.loads(path.read_text())
    data['acquired_epoch'] -= seconds
    path.write_text(json.dumps(data))


def test_acquire_creates_dirs_and_lock(tmp_path):
    base = tmp_path / 'app'
    old_umask = os.umask(0o077)
    try:
        res = lock.acquire(str(base), 'me@ctl:1')
    finally:
        os.umask(old_umask)
    assert res['changed'] is True and res['taken_over'] is None
    assert res['holder']['owner'] == 'me@ctl:1'
    assert res['holder']['acquired_at'].endswith('Z')
    assert os.stat(str(base)).st_mode & 0o777 == 0o755
    assert os.stat(str(base / '.hotswap')).st_mode & 0o777 == 0o750
    assert os.stat(str(lock_path(base))).st_mode & 0o777 == 0o640
    data = json.loads(lock_path(base).read_text())
    assert data['owner'] == 'me@ctl:1' and isinstance(data['acquired_epoch'], int) and data['host']


def test_acquire_same_owner_is_idempotent(tmp_path):
    lock.acquire(str(tmp_path), 'me')
    before = lock_path(tmp_path).read_bytes()
    res = lock.acquire(str(tmp_path), 'me')
    assert res['changed'] is False and res['holder']['owner'] == 'me'
    assert 'age' in res['holder'] and '_raw' not in res['holder']
    assert lock_path(tmp_path).read_bytes() == before


def test_acquire_held_by_other_names_holder_and_fix(tmp_path):
    lock.acquire(str(tmp_path), 'alice@ctl:1')
    with pytest.raises(HotswapError) as e:
        lock.acquire(str(tmp_path), 'bob@ctl:2')
    msg = e.value.msg
    assert "'alice@ctl:1'" in msg and 'since 20' in msg and 'force=true' in msg and 'stale_after' in msg
    assert json.loads(lock_path(tmp_path).read_text())['owner'] == 'alice@ctl:1'


def test_acquire_not_stale_yet(tmp_path):
    lock.acquire(str(tmp_path), 'alice')
    backdate(tmp_path, 50)
    with pytest.raises(HotswapError):
        lock.acquire(str(tmp_path), 'bob', stale_after=100)


def test_acquire_takes_over_stale_lock(tmp_path):
    lock.acquire(str(tmp_path), 'alice')
    backdate(tmp_path, 500)
    res = lock.acquire(str(tmp_path), 'bob', stale_after=100)
    assert res['changed'] and res['holder']['owner'] == 'bob'
    assert res['taken_over']['owner'] == 'alice' and res['taken_over']['age'] >= 500
    assert json.loads(lock_path(tmp_path).read_text())['owner'] == 'bob'
    assert os.listdir(str(tmp_path / '.hotswap')) == ['lock']


def test_acquire_corrupt_lock_is_held_by_unknown(tmp_path):
    (tmp_path / '.hotswap').mkdir()
    lock_path(tmp_path).write_text('')
    with pytest.raises(HotswapError) as e:
        lock.acquire(str(tmp_path), 'bob')
    assert 'unknown owner' in e.value.msg
    old = time.time() - 1000
    os.utime(str(lock_path(tmp_path)), (old, old))
    res = lock.acquire(str(tmp_path), 'bob', stale_after=10)
    assert res['taken_over']['corrupt'] is True and res['holder']['owner'] == 'bob'


def test_acquire_check_mode(tmp_path):
    base = tmp_path / 'app'
    res = lock.acquire(str(base), 'me', check_mode=True)
    assert res['changed'] and res['holder']['owner'] == 'me'
    assert not base.exists()
    lock.acquire(str(base), 'alice')
    with pytest.raises(HotswapError):
        lock.acquire(str(base), 'me', check_mode=True)
    backdate(base, 500)
    res = lock.acquire(str(base), 'me', stale_after=10, check_mode=True)
    assert res['taken_over']['owner'] == 'alice'
    assert json.loads(lock_path(base).read_text())['owner'] == 'alice'


@pytest.mark.parametrize('owner,stale', [('', 0), ('  ', 0), (None, 0), ('me', -1), ('me', '5'), ('me', True)])
def test_acquire_bad_input(tmp_path, owner, stale):
    with pytest.raises(HotswapError):
        lock.acquire(str(tmp_path), owner, stale_after=stale)
    assert not (tmp_path / '.hotswap').exists()


def test_acquire_race_lost_between_read_and_create(tmp_path, monkeypatch):
    real_read = lock.read_lock
    calls = []

    def read_then_race(base_dir):
        calls.append(1)
        if len(calls) == 1:
            lock._create_exclusive(str(lock_path(tmp_path)), lock.lock_content('winner'))
            return None
        return real_read(base_dir)
    (tmp_path / '.hotswap').mkdir()
    monkeypatch.setattr(lock, 'read_lock', read_then_race)
    with pytest.raises(HotswapError) as e:
        lock.acquire(str(tmp_path), 'loser')
    assert "'winner'" in e.value.msg


def test_takeover_refused_if_lock_replaced_meanwhile(tmp_path):
    lock.acquire(str(tmp_path), 'alice')
    backdate(tmp_path, 500)
    stale = lock.read_lock(str(tmp_path))
    # someone else took it over already
    os.unlink(str(lock_path(tmp_path)))
    lock.acquire(str(tmp_path), 'carol')
    with pytest.raises(HotswapError) as e:
        lock._remove_stale(str(lock_path(tmp_path)), 'bob', stale)
    assert 'replaced' in e.value.msg
    assert json.loads(lock_path(tmp_path).read_text())['owner'] == 'carol'
    assert os.listdir(str(tmp_path / '.hotswap')) == ['lock']


def test_release_own_lock(tmp_path):
    lock.acquire(str(tmp_path), 'me')
    res = lock.release(str(tmp_path), 'me', check_mode=True)
    assert res['changed'] and res['released']['owner'] == 'me'
    assert lock_path(tmp_path).exists()
    res = lock.release(str(tmp_path), 'me')
    assert res == dict(changed=True, holder=None, released=res['released'])
    assert not lock_path(tmp_path).exists()
    assert lock.release(str(tmp_path), 'me') == dict(changed=False, holder=None, released=None)


def test_release_missing_base_dir(tmp_path):
    assert lock.release(str(tmp_path / 'nope'), 'me')['changed'] is False


def test_release_other_owner_needs_force(tmp_path):
    lock.acquire(str(tmp_path), 'alice')
    with pytest.raises(HotswapError) as e:
        lock.release(str(tmp_path), 'bob')
    assert "'alice'" in e.value.msg and 'force=true' in e.value.msg
    with pytest.raises(HotswapError) as e:
        lock.release(str(tmp_path))
    assert 'no owner was given' in e.value.msg
    assert lock_path(tmp_path).exists()
    res = lock.release(str(tmp_path), force=True)
    assert res['changed'] and res['released']['owner'] == 'alice'
    assert not lock_path(tmp_path).exists()


def test_read_lock(tmp_path):
    assert lock.read_lock(str(tmp_path)) is None
    lock.acquire(str(tmp_path), 'me')
    holder = lock.read_lock(str(tmp_path))
    assert holder['owner'] == 'me' and holder['age'] <= 2
    assert lock.public_holder(holder).keys() == {'owner', 'acquired_at', 'acquired_epoch', 'host', 'age', 'created'}


def test_release_removes_the_dirs_the_lock_created_while_empty(tmp_path):
    base = tmp_path / 'opt' / 'app'
    taken = lock.acquire(str(base), 'me')
    assert taken['holder']['created'] == [str(tmp_path / 'opt'), str(base), str(base / '.hotswap')]
    lock.release(str(base), 'me')
    assert not (tmp_path / 'opt').exists()


def test_release_keeps_created_dirs_that_got_something(tmp_path):
    base = tmp_path / 'app'
    lock.acquire(str(base), 'me')
    (base / 'releases').mkdir()
    (base / '.hotswap' / 'ledger.json').write_text('{}')
    lock.release(str(base), 'me')
    assert (base / 'releases').is_dir() and (base / '.hotswap' / 'ledger.json').is_file()
    assert not lock_path(base).exists()


def test_release_never_removes_dirs_that_were_there(tmp_path):
    base = tmp_path / 'app'
    base.mkdir()
    taken = lock.acquire(str(base), 'me')
    assert taken['holder']['created'] == [str(base / '.hotswap')]
    lock.release(str(base), 'me')
    assert base.is_dir() and not (base / '.hotswap').exists()


def test_remove_if_empty_ignores_junk():
    assert lock.remove_if_empty(None) == []
    assert lock.remove_if_empty(['relative/path']) == []
