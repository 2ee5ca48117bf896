# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import threading
import time

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import lock
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.release import paths


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


def test_empty_lock_body_is_reported_as_unreadable_with_the_fix(tmp_path):
    # What an older version left when its write failed (disk full, killed between create and write).
    (tmp_path / '.hotswap').mkdir()
    lock_path(tmp_path).write_text('')
    with pytest.raises(HotswapError) as e:
        lock.acquire(str(tmp_path), 'bob')
    msg = e.value.msg
    assert 'unreadable' in msg and 'a lock write that failed' in msg
    assert 'No deploy can hold an unreadable lock' in msg and 'state=absent force=true' in msg
    with pytest.raises(HotswapError) as e:
        lock.check_holder(str(tmp_path), 'bob', 'activating release r1')
    assert 'unreadable' in e.value.msg and 'Nothing was written' in e.value.msg
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
            real_acquire(str(tmp_path), 'winner')
            return None
        return real_read(base_dir)
    real_acquire = lock.acquire
    monkeypatch.setattr(lock, 'read_lock', read_then_race)
    with pytest.raises(HotswapError) as e:
        lock.acquire(str(tmp_path), 'loser')
    assert "'winner'" in e.value.msg
    assert json.loads(lock_path(tmp_path).read_text())['owner'] == 'winner'


def test_takeover_refused_if_lock_replaced_meanwhile(tmp_path):
    lock.acquire(str(tmp_path), 'alice')
    backdate(tmp_path, 500)
    stale = lock.read_lock(str(tmp_path))
    # someone else took it over already
    os.unlink(str(lock_path(tmp_path)))
    lock.acquire(str(tmp_path), 'carol')
    p = paths(str(tmp_path))
    with pytest.raises(HotswapError) as e:
        lock._move_aside(p, 'bob', stale, 100)
    assert "another deploy holds the deploy lock: 'carol'" in e.value.msg
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
    assert lock.public_holder(holder).keys() == {'owner', 'reclaim_key', 'acquired_at', 'acquired_epoch', 'host',
                                                 'age', 'created'}


def test_release_removes_the_dirs_the_lock_created_while_empty(tmp_path):
    base = tmp_path / 'opt' / 'app'
    taken = lock.acquire(str(base), 'me')
    # Parents of base_dir are created but never noted: only base_dir and what is inside it is removed.
    assert taken['holder']['created'] == [str(base), str(base / '.hotswap')]
    lock.release(str(base), 'me')
    assert not base.exists() and (tmp_path / 'opt').is_dir()


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


def test_remove_if_empty_ignores_junk(tmp_path):
    assert lock.remove_if_empty(str(tmp_path), None) == []
    assert lock.remove_if_empty(str(tmp_path), ['relative/path', 42]) == []


def write_lock(base, **content):
    (base / '.hotswap').mkdir(parents=True, exist_ok=True)
    lock_path(base).write_text(json.dumps(content))


def test_failed_lock_write_leaves_no_lock(tmp_path, monkeypatch):
    """Disk full while the lock is written: nothing is left that would block the next deploy."""
    def no_space(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')
    with monkeypatch.context() as m:
        m.setattr(lock.os, 'fsync', no_space)
        with pytest.raises(HotswapError) as e:
            lock.acquire(str(tmp_path), 'alice')
    assert 'No space left on device' in e.value.msg and 'free space' in e.value.msg
    assert not lock_path(tmp_path).exists()
    assert lock.acquire(str(tmp_path), 'bob')['holder']['owner'] == 'bob'
    assert os.listdir(str(tmp_path / '.hotswap')) == ['lock']


def test_lock_is_linked_complete_never_created_empty(tmp_path, monkeypatch):
    seen = []
    real_link = os.link

    def spy(src, dst):
        with open(src) as f:
            seen.append(json.load(f)['owner'])  # complete before it has the lock's name
        return real_link(src, dst)
    monkeypatch.setattr(lock.os, 'link', spy)
    lock.acquire(str(tmp_path), 'alice')
    assert seen == ['alice']


def test_future_dated_lock_is_reported_with_the_fix(tmp_path):
    write_lock(tmp_path, owner='alice', acquired_at='2999-01-01T00:00:00Z', acquired_epoch=int(time.time()) + 3600,
               host='web1')
    holder = lock.read_lock(str(tmp_path))
    assert holder['future'] is True and holder['age'] == 0
    # stale_after cannot judge it: refused, saying why and what to do.
    with pytest.raises(HotswapError) as e:
        lock.acquire(str(tmp_path), 'bob', stale_after=10)
    msg = e.value.msg
    assert "'alice'" in msg and 'in the future' in msg and 'clock' in msg and 'force=true' in msg
    with pytest.raises(HotswapError) as e:
        lock.check_holder(str(tmp_path), 'bob', 'pruning releases')
    assert 'in the future' in e.value.msg
    assert lock.release(str(tmp_path), force=True)['released']['future'] is True


@pytest.mark.parametrize('outside', ['sibling', 'dotdot', 'symlink'])
def test_created_entries_outside_base_dir_are_never_removed(tmp_path, outside):
    base = tmp_path / 'app'
    victim = tmp_path / 'victim'
    victim.mkdir()
    base.mkdir()
    entry = {'sibling': str(victim), 'dotdot': str(base / '..' / 'victim'), 'symlink': str(base / 'link')}[outside]
    if outside == 'symlink':
        (base / 'link').symlink_to(victim)
    write_lock(base, owner='me', acquired_at='2024-05-01T12:00:00Z', acquired_epoch=int(time.time()), host='h',
               created=[entry, str(base / '.hotswap')])
    lock.release(str(base), 'me')
    assert victim.is_dir()
    assert not (base / '.hotswap').exists()


def test_a_relaunch_reclaims_the_lock_and_the_old_run_can_write_no_more(tmp_path):
    key = 'myapp deploy 1.4.2-3a7bd3e2360a'
    first = lock.acquire(str(tmp_path), key + ' (AWX job 41)', reclaim_key=key)
    assert first['holder']['reclaim_key'] == key and first['reclaimed'] is False
    again = lock.acquire(str(tmp_path), key + ' (AWX job 42)', reclaim_key=key)
    assert again['changed'] and again['reclaimed'] is True
    assert again['taken_over']['owner'] == key + ' (AWX job 41)'
    assert lock.read_lock(str(tmp_path))['owner'] == key + ' (AWX job 42)'
    with pytest.raises(HotswapError) as e:
        lock.check_holder(str(tmp_path), key + ' (AWX job 41)', 'activating release 1.4.2-3a7bd3e2360a')
    assert "held by 'myapp deploy 1.4.2-3a7bd3e2360a (AWX job 42)'" in e.value.msg
    assert lock.check_holder(str(tmp_path), key + ' (AWX job 42)', 'activating')['owner'] == key + ' (AWX job 42)'


def test_another_deploy_is_refused_with_the_holder_and_the_fix(tmp_path):
    key = 'myapp deploy 1.4.2-3a7bd3e2360a'
    lock.acquire(str(tmp_path), key + ' (AWX job 41)', reclaim_key=key)
    with pytest.raises(HotswapError) as e:
        lock.acquire(str(tmp_path), 'myapp deploy 1.4.3-0123456789ab (AWX job 43)',
                     reclaim_key='myapp deploy 1.4.3-0123456789ab')
    msg = e.value.msg
    assert "another deploy holds the deploy lock: 'myapp deploy 1.4.2-3a7bd3e2360a (AWX job 41)'" in msg
    assert "relaunch that same deploy ('myapp deploy 1.4.2-3a7bd3e2360a' takes its lock back)" in msg
    assert 'state=absent force=true' in msg
    # An unreadable lock is never reclaimed: nobody's key is in it.
    lock_path(tmp_path).write_text('{')
    with pytest.raises(HotswapError):
        lock.acquire(str(tmp_path), key + ' (AWX job 44)', reclaim_key=key)


def test_check_holder_without_a_lock(tmp_path):
    # Standalone, no lock: as before the option existed.
    assert lock.check_holder(str(tmp_path), None, 'pruning') is None
    assert lock.check_holder(str(tmp_path / 'missing'), None, 'pruning') is None
    # A run that holds the lock finds it gone: someone forced it away.
    with pytest.raises(HotswapError) as e:
        lock.check_holder(str(tmp_path), 'me', 'pruning')
    assert 'is not there' in e.value.msg and 'leave out lock_owner' in e.value.msg
    assert lock.check_holder(str(tmp_path), 'me', 'pruning', check_mode=True) is None


def test_check_holder_names_the_owner_to_pass(tmp_path):
    lock.acquire(str(tmp_path), 'alice')
    with pytest.raises(HotswapError) as e:
        lock.check_holder(str(tmp_path), None, 'pruning releases')
    assert "pass lock_owner: 'alice'" in e.value.msg and 'Nothing was written' in e.value.msg
    # Check mode writes nothing: not refused.
    assert lock.check_holder(str(tmp_path), None, 'pruning releases', check_mode=True) is None


def _race(base, name, start, results):
    start.wait()
    try:
        lock.acquire(base, name, stale_after=10)
        results.put((name, 'won'))
    except HotswapError as e:
        results.put((name, e.msg))


def test_three_racing_processes_take_over_a_stale_lock_once(tmp_path):
    ctx = multiprocessing.get_context('fork')
    for round_ in range(15):
        base = tmp_path / ('r%d' % round_)
        lock.acquire(str(base), 'dead')
        backdate(base, 500)
        start, results = ctx.Event(), ctx.Queue()
        racers = [ctx.Process(target=_race, args=(str(base), 'racer-%d' % i, start, results)) for i in range(3)]
        for proc in racers:
            proc.start()
        start.set()
        outcome = dict(results.get(timeout=30) for _racer in racers)
        for proc in racers:
            proc.join(timeout=30)
        winners = [name for name, got in outcome.items() if got == 'won']
        assert len(winners) == 1, outcome
        assert json.loads(lock_path(base).read_text())['owner'] == winners[0]
        for name, got in outcome.items():
            if name != winners[0]:
                assert "holds the deploy lock: %r" % winners[0] in got, outcome
        assert os.listdir(str(base / '.hotswap')) == ['lock']


class _RenameHook(object):
    """os for lock.py, with a hook run right after a rename by one thread."""

    def __init__(self, thread_name, hook):
        self.thread_name, self.hook, self.fired = thread_name, hook, False

    def __getattr__(self, name):
        return getattr(os, name)

    def rename(self, src, dst):
        os.rename(src, dst)
        if threading.current_thread().name == self.thread_name and not self.fired:
            self.fired = True
            self.hook()


def test_three_racers_a_late_taker_over_cannot_make_two_holders(tmp_path, monkeypatch):
    """A and C judge the same lock stale; A takes it over first; C, late, must not free the lock for B."""
    base = str(tmp_path)
    lock.acquire(base, 'dead')
    backdate(tmp_path, 500)
    won, lost = [], []
    c_read, c_go = threading.Event(), threading.Event()
    real_read = lock.read_lock

    def read(base_dir):
        holder = real_read(base_dir)
        if threading.current_thread().name == 'C' and not c_read.is_set():
            c_read.set()      # C has judged the stale lock ...
            c_go.wait(10)     # ... and is held up until A has taken it over
        return holder

    def racer(name):
        try:
            lock.acquire(base, name, stale_after=10)
            won.append(name)
        except HotswapError as e:
            lost.append((name, e.msg))

    def run_b():
        b = threading.Thread(target=racer, args=('B',), name='B')
        b.start()
        b.join(lock.GUARD_WAIT + 5)
    monkeypatch.setattr(lock, 'read_lock', read)
    monkeypatch.setattr(lock, 'os', _RenameHook('C', run_b))
    c = threading.Thread(target=racer, args=('C',), name='C')
    c.start()
    assert c_read.wait(10)
    racer('A')
    c_go.set()
    c.join(30)
    if not any(name == 'B' for name in won + [n for n, _msg in lost]):
        racer('B')
    assert won == ['A'], (won, lost)
    assert json.loads(lock_path(tmp_path).read_text())['owner'] == 'A'
    assert sorted(name for name, _msg in lost) == ['B', 'C']
    assert all("holds the deploy lock: 'A'" in msg for _name, msg in lost), lost


def test_a_reclaimed_first_deploy_still_leaves_no_trace(tmp_path):
    base = tmp_path / 'app'
    lock.acquire(str(base), 'myapp deploy r1 (AWX job 1)', reclaim_key='myapp deploy r1')
    taken = lock.acquire(str(base), 'myapp deploy r1 (AWX job 2)', reclaim_key='myapp deploy r1')
    assert taken['holder']['created'] == [str(base), str(base / '.hotswap')]
    lock.release(str(base), 'myapp deploy r1 (AWX job 2)')
    assert not base.exists()
