# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import ledger as L
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import Ledger, select_prunable


def stage(base, rid, at=None, record=True, sha=None):
    d = base / 'releases' / rid
    d.mkdir(parents=True)
    (d / 'app').write_bytes(rid.encode())
    os.chmod(str(d / 'app'), 0o755)
    if record:
        led = Ledger.load(str(base))
        led.record_staged(rid, rid.split('-')[0], sha or hashlib.sha256(rid.encode()).hexdigest(), 'app', at=at)
        led.save()
    return d


def rec(rid, state='retired', staged_at='2024-01-01T00:00:00Z', activated_at=None):
    return {'release_id': rid, 'state': state, 'staged_at': staged_at, 'activated_at': activated_at}


# -- load/save -----------------------------------------------------------------------------------

def test_load_missing_is_empty(tmp_path):
    led = Ledger.load(str(tmp_path))
    assert led.releases() == []
    assert led.history() == []
    assert led.path == str(tmp_path / '.hotswap' / 'ledger.json')


def test_save_round_trip_and_modes(tmp_path):
    led = Ledger.load(str(tmp_path))
    assert led.record_staged('r1', '1.0', 'a' * 64, 'app', at='2024-01-01T00:00:00Z') is True
    led.save()
    assert os.stat(str(tmp_path / '.hotswap')).st_mode & 0o777 == 0o750
    assert os.stat(led.path).st_mode & 0o777 == 0o640
    data = json.loads((tmp_path / '.hotswap' / 'ledger.json').read_text())
    assert data['format'] == 1
    assert data['releases']['r1'] == {
        'release_id': 'r1', 'version': '1.0', 'sha256': 'a' * 64, 'binary': 'app', 'state': 'staged',
        'staged_at': '2024-01-01T00:00:00Z', 'activated_at': None, 'retired_at': None,
        'failed_at': None, 'activated_by': None}
    assert data['history'] == []
    assert Ledger.load(str(tmp_path)).release('r1') == data['releases']['r1']
    assert [n for n in os.listdir(str(tmp_path / '.hotswap')) if n != 'ledger.json'] == []


def test_save_is_atomic_when_write_fails(tmp_path, monkeypatch):
    led = Ledger.load(str(tmp_path))
    led.record_staged('r1', '1.0', 'a' * 64, 'app')
    led.save()
    before = (tmp_path / '.hotswap' / 'ledger.json').read_bytes()
    led.record_staged('r2', '2.0', 'b' * 64, 'app')

    def boom(src, dst):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(L.os, 'rename', boom)
    with pytest.raises(HotswapError) as e:
        led.save()
    assert 'No space left' in e.value.msg and 'unchanged' in e.value.msg
    assert (tmp_path / '.hotswap' / 'ledger.json').read_bytes() == before
    assert os.listdir(str(tmp_path / '.hotswap')) == ['ledger.json']


def test_save_without_base_dir(tmp_path):
    led = Ledger.load(str(tmp_path / 'missing'))
    with pytest.raises(HotswapError) as e:
        led.save()
    assert 'does not exist' in e.value.msg
    assert not (tmp_path / 'missing').exists()


@pytest.mark.parametrize('content,words', [
    ('{not json', 'not valid JSON'),
    ('[]', 'expected'),
    ('{"format": 1, "releases": []}', 'expected'),
    ('{"format": 2, "releases": {}, "history": []}', 'format 2'),
    ('{"format": 1, "releases": {"r1": {"release_id": "r1", "state": "weird"}}, "history": []}',
     'releases["r1"] field "state" is a string ("weird"), not one of staged'),
    ('{"format": 1, "releases": {}, "history": [1]}', 'history[0] is a number'),
])
def test_load_corrupt(tmp_path, content, words):
    (tmp_path / '.hotswap').mkdir()
    (tmp_path / '.hotswap' / 'ledger.json').write_text(content)
    with pytest.raises(HotswapError) as e:
        Ledger.load(str(tmp_path))
    assert words in e.value.msg
    assert 'move it away' in e.value.msg.lower()


def test_timestamps_are_utc_z():
    assert re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', L.utc_now())


# -- record_staged -------------------------------------------------------------------------------

def test_record_staged_idempotent_and_sha_conflict(tmp_path):
    led = Ledger.load(str(tmp_path))
    assert led.record_staged('r1', '1.0', 'A' * 64, 'app') is True
    assert led.record_staged('r1', '1.0', 'a' * 64, 'app') is False
    with pytest.raises(HotswapError) as e:
        led.record_staged('r1', '1.0', 'b' * 64, 'app')
    assert 'new release_id' in e.value.msg
    with pytest.raises(HotswapError):
        led.record_staged('../r', '1', 'a' * 64, 'app')


def test_record_staged_keeps_state_of_existing_release(tmp_path):
    led = Ledger.load(str(tmp_path))
    led.record_staged('r1', '1.0', 'a' * 64, 'app')
    led.record_activated('r1', None, 'me')
    assert led.record_staged('r1', '1.0', 'a' * 64, 'app') is False
    assert led.release('r1')['state'] == 'active'


def test_record_staged_fills_adopted_entry(tmp_path):
    led = Ledger.load(str(tmp_path))
    led.record_activated('hand', None, 'me')  # adopted: no version/sha
    assert led.release('hand')['sha256'] is None
    assert led.record_staged('hand', '1.0', 'a' * 64, 'app') is True
    assert led.release('hand')['sha256'] == 'a' * 64


# -- record_activated / mark ---------------------------------------------------------------------

def test_record_activated_transitions_and_history(tmp_path):
    led = Ledger.load(str(tmp_path))
    led.record_staged('r1', '1', 'a' * 64, 'app', at='2024-01-01T00:00:00Z')
    led.record_staged('r2', '2', 'b' * 64, 'app', at='2024-01-02T00:00:00Z')
    led.record_activated('r1', None, 'me', at='2024-01-01T01:00:00Z')
    led.record_activated('r2', 'r1', 'you', at='2024-01-02T01:00:00Z')
    r1, r2 = led.release('r1'), led.release('r2')
    assert r1['state'] == 'retired' and r1['retired_at'] == '2024-01-02T01:00:00Z'
    assert r2['state'] == 'active' and r2['activated_at'] == '2024-01-02T01:00:00Z' and r2['activated_by'] == 'you'
    assert led.history() == [
        {'release_id': 'r1', 'from': None, 'at': '2024-01-01T01:00:00Z', 'by': 'me'},
        {'release_id': 'r2', 'from': 'r1', 'at': '2024-01-02T01:00:00Z', 'by': 'you'},
    ]


def test_record_activated_previous_failed(tmp_path):
    led = Ledger.load(str(tmp_path))
    led.record_activated('r1', None, 'me')
    led.record_activated('r2', 'r1', 'me')
    led.record_activated('r1', 'r2', 'rollback', previous_state='failed', at='2024-01-03T00:00:00Z')
    assert led.release('r2')['state'] == 'failed'
    assert led.release('r2')['failed_at'] == '2024-01-03T00:00:00Z'
    assert led.release('r1')['state'] == 'active'
    with pytest.raises(HotswapError):
        led.record_activated('r2', 'r1', 'me', previous_state='staged')


def test_record_activated_retires_stray_active(tmp_path):
    led = Ledger.load(str(tmp_path))
    led.record_activated('a', None, 'me')
    led.record_activated('b', None, 'me')  # ledger thought 'a' active, current was something else
    assert led.active_releases() == ['b']
    assert led.release('a')['state'] == 'retired'


def test_history_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(L, 'HISTORY_LIMIT', 3)
    led = Ledger.load(str(tmp_path))
    for i in range(5):
        led.record_activated('r%d' % i, 'r%d' % (i - 1) if i else None, 'me')
    assert [h['release_id'] for h in led.history()] == ['r2', 'r3', 'r4']


def test_mark(tmp_path):
    led = Ledger.load(str(tmp_path))
    led.record_staged('r1', '1', 'a' * 64, 'app')
    assert led.mark('r1', 'failed', at='2024-01-01T00:00:00Z') is True
    assert led.release('r1')['failed_at'] == '2024-01-01T00:00:00Z'
    assert led.mark('r1', 'failed') is False
    with pytest.raises(HotswapError):
        led.mark('r1', 'pruned')
    with pytest.raises(HotswapError) as e:
        led.mark('nope', 'failed')
    assert 'not in the ledger' in e.value.msg


def test_release_returns_copy_and_releases_sorted_by_staged_at(tmp_path):
    led = Ledger.load(str(tmp_path))
    led.record_staged('late', '2', 'a' * 64, 'app', at='2024-02-01T00:00:00Z')
    led.record_staged('early', '1', 'b' * 64, 'app', at='2024-01-01T00:00:00Z')
    led.record_staged('tie', '3', 'c' * 64, 'app', at='2024-02-01T00:00:00Z')
    assert [r['release_id'] for r in led.releases()] == ['early', 'late', 'tie']
    led.release('early')['state'] = 'failed'
    assert led.release('early')['state'] == 'staged'
    assert led.release('missing') is None


# -- previous_good -------------------------------------------------------------------------------

def test_previous_good(tmp_path):
    base = str(tmp_path)
    for rid in ('r1', 'r2', 'r3'):
        stage(tmp_path, rid)
    led = Ledger.load(base)
    assert led.previous_good(None) is None
    led.record_activated('r1', None, 'me')
    assert led.previous_good('r1') is None
    led.record_activated('r2', 'r1', 'me')
    assert led.previous_good('r2') == 'r1'
    led.record_activated('r3', 'r2', 'me')
    assert led.previous_good('r3') == 'r2'
    # r3 fails verification: roll back to r2, r3 marked failed
    led.record_activated('r2', 'r3', 'me', previous_state='failed')
    assert led.previous_good('r2') == 'r1'  # r3 failed, r2 is current
    # a second rollback goes further back, not back and forth
    led.record_activated('r1', 'r2', 'me', previous_state='failed')
    assert led.previous_good('r1') is None


def test_previous_good_skips_missing_dirs_and_forgotten(tmp_path):
    for rid in ('r1', 'r2', 'r3'):
        stage(tmp_path, rid)
    led = Ledger.load(str(tmp_path))
    for prev, rid in ((None, 'r1'), ('r1', 'r2'), ('r2', 'r3')):
        led.record_activated(rid, prev, 'me')
    import shutil
    shutil.rmtree(str(tmp_path / 'releases' / 'r2'))
    assert led.previous_good('r3') == 'r1'
    led.forget('r1')
    assert led.previous_good('r3') is None


# -- to_info -------------------------------------------------------------------------------------

def test_to_info_reports_unknown_dirs(tmp_path):
    stage(tmp_path, 'r1', at='2024-01-01T00:00:00Z')
    stage(tmp_path, 'zz-hand', record=False)
    stage(tmp_path, 'aa-hand', record=False)
    led = Ledger.load(str(tmp_path))
    led.record_staged('gone', '0', 'f' * 64, 'app', at='2023-01-01T00:00:00Z')
    info = led.to_info('r1')
    assert info['current'] == 'r1'
    assert info['ledger_path'] == str(tmp_path / '.hotswap' / 'ledger.json')
    ids = [(r['release_id'], r['state'], r['present']) for r in info['releases']]
    assert ids == [('gone', 'staged', False), ('r1', 'staged', True), ('aa-hand', 'unknown', True),
                   ('zz-hand', 'unknown', True)]
    r1 = info['releases'][1]
    assert r1['path'] == str(tmp_path / 'releases' / 'r1')
    assert set(r1) == set(L.INFO_FIELDS) | {'path', 'present'}
    assert info['releases'][2]['version'] is None


# -- select_prunable (pure) ----------------------------------------------------------------------

def day(n, hour=0):
    return '2024-01-%02dT%02d:00:00Z' % (n, hour)


def test_select_prunable_keeps_current_and_previous_good_oldest_first():
    rels = [rec('r%d' % i, 'retired', day(i), day(i, 1)) for i in range(1, 7)]
    rels[-1]['state'] = 'active'
    # previous good = r5 (latest activated non-current)
    assert select_prunable(rels, 'r6', 3) == ['r1', 'r2', 'r3']
    assert select_prunable(rels, 'r6', 6) == []
    assert select_prunable(rels, 'r6', 10) == []
    assert select_prunable(rels, 'r6', 1) == ['r1', 'r2', 'r3', 'r4']


def test_select_prunable_failed_first():
    rels = [rec('r1', 'retired', day(1), day(1)), rec('r2', 'retired', day(2), day(2)),
            rec('bad', 'failed', day(5), day(5)), rec('r3', 'active', day(3), day(3))]
    assert select_prunable(rels, 'r3', 3) == ['bad']
    assert select_prunable(rels, 'r3', 2) == ['bad', 'r1']


def test_select_prunable_uses_ledger_order_not_given_order():
    rels = [rec('new', 'retired', day(9), day(9)), rec('old', 'retired', day(1), day(1)),
            rec('cur', 'active', day(10), day(10)), rec('mid', 'retired', day(5), day(5))]
    # previous good = 'new'
    assert select_prunable(rels, 'cur', 2) == ['old', 'mid']


def test_select_prunable_after_repeated_failures_never_deletes_live():
    # ansistrano's bug family: many failed deploys must not push the live release out.
    rels = [rec('live', 'active', day(1), day(1)), rec('good', 'retired', day(2), day(2))]
    rels[1]['activated_at'] = day(1, 0)
    rels[0]['activated_at'] = day(1, 5)
    rels += [rec('f%d' % i, 'failed', day(10 + i), day(10 + i)) for i in range(5)]
    out = select_prunable(rels, 'live', 1)
    assert 'live' not in out and 'good' not in out
    assert out == ['f0', 'f1', 'f2', 'f3', 'f4']


def test_select_prunable_explicit_previous_good_and_unknown():
    rels = [rec('r1', 'retired', day(1), day(1)), rec('r2', 'retired', day(2), day(2)),
            rec('r3', 'active', day(3), day(3)), rec('hand', 'unknown', None, None)]
    assert select_prunable(rels, 'r3', 1, previous_good='r1') == ['r2']
    assert select_prunable(rels, 'r3', 1, previous_good=None) == ['r1', 'r2']
    assert 'hand' not in select_prunable(rels, None, 1, previous_good=None)


def test_select_prunable_staged_never_activated():
    rels = [rec('s1', 'staged', day(1)), rec('s2', 'staged', day(2)), rec('s3', 'staged', day(3))]
    assert select_prunable(rels, None, 1) == ['s1', 's2']


def test_select_prunable_protect():
    rels = [rec('r%d' % i, 'retired', day(i), day(i)) for i in range(1, 6)]
    rels[-1]['state'] = 'active'
    # r4 is the previous good one; r1 (a blue-green slot) and the failed-first order still apply.
    assert select_prunable(rels, 'r5', 1) == ['r1', 'r2', 'r3']
    assert select_prunable(rels, 'r5', 1, protect=['r1', 'gone']) == ['r2', 'r3']
    assert select_prunable(rels, 'r5', 3, protect=('r1', 'r2')) == ['r3']
    assert select_prunable(rels, 'r5', 2, protect=('r1', 'r2', 'r3')) == []
    assert select_prunable(rels, 'r5', 1, protect=None) == ['r1', 'r2', 'r3']


@pytest.mark.parametrize('keep', [0, -1, '3', True, None])
def test_select_prunable_bad_keep(keep):
    with pytest.raises(HotswapError) as e:
        select_prunable([], None, keep)
    assert 'keep' in e.value.msg


# -- activate ------------------------------------------------------------------------------------

def test_activate_first_then_idempotent(tmp_path):
    base = str(tmp_path)
    stage(tmp_path, 'r1')
    res = L.activate(base, 'r1', by='me')
    assert res == dict(previous_release=None, current_release='r1', switched=True, ledger_updated=True,
                       changed=True)
    assert os.readlink(str(tmp_path / 'current')) == 'releases/r1'
    assert Ledger.load(base).release('r1')['state'] == 'active'
    res = L.activate(base, 'r1', by='me')
    assert res == dict(previous_release='r1', current_release='r1', switched=False, ledger_updated=False,
                       changed=False)
    assert len(Ledger.load(base).history()) == 1


def test_activate_switch_and_rollback_marks_failed(tmp_path):
    base = str(tmp_path)
    stage(tmp_path, 'r1')
    stage(tmp_path, 'r2')
    L.activate(base, 'r1')
    res = L.activate(base, 'r2')
    assert res['previous_release'] == 'r1' and res['switched']
    res = L.activate(base, 'r1', previous_state='failed')
    led = Ledger.load(base)
    assert led.release('r2')['state'] == 'failed'
    assert led.release('r1')['state'] == 'active'


def test_activate_check_mode_changes_nothing(tmp_path):
    base = str(tmp_path)
    stage(tmp_path, 'r1')
    stage(tmp_path, 'r2')
    L.activate(base, 'r1')
    before = (tmp_path / '.hotswap' / 'ledger.json').read_bytes()
    res = L.activate(base, 'r2', check_mode=True)
    assert res['changed'] and res['switched'] and res['previous_release'] == 'r1'
    assert os.readlink(str(tmp_path / 'current')) == 'releases/r1'
    assert (tmp_path / '.hotswap' / 'ledger.json').read_bytes() == before


def test_activate_repairs_ledger_when_already_current(tmp_path):
    base = str(tmp_path)
    stage(tmp_path, 'r1')
    stage(tmp_path, 'hand', record=False)
    L.activate(base, 'r1')
    os.unlink(str(tmp_path / 'current'))
    os.symlink('releases/hand', str(tmp_path / 'current'))  # switched by hand
    res = L.activate(base, 'hand', check_mode=True)
    assert res == dict(previous_release='hand', current_release='hand', switched=False, ledger_updated=True,
                       changed=True)
    assert Ledger.load(base).release('hand') is None
    res = L.activate(base, 'hand')
    assert res['ledger_updated'] and not res['switched']
    led = Ledger.load(base)
    assert led.release('hand')['state'] == 'active'
    assert led.release('r1')['state'] == 'retired'
    assert L.activate(base, 'hand')['changed'] is False


@pytest.mark.parametrize('setup,words', [
    ('realdir', 'real directory'),
    ('missing', 'does not exist'),
    ('badid', 'release_id'),
    ('relative', 'absolute'),
    ('badstate', 'previous_state'),
])
def test_activate_errors_change_nothing(tmp_path, setup, words):
    base, rid, state = str(tmp_path), 'r1', 'retired'
    stage(tmp_path, 'r1')
    if setup == 'realdir':
        (tmp_path / 'current').mkdir()
    elif setup == 'missing':
        rid = 'r9'
    elif setup == 'badid':
        rid = '../r1'
    elif setup == 'relative':
        base = 'relative/dir'
    elif setup == 'badstate':
        state = 'staged'
    before = sorted(os.listdir(str(tmp_path)))
    with pytest.raises(HotswapError) as e:
        L.activate(base, rid, previous_state=state)
    assert words in e.value.msg
    assert sorted(os.listdir(str(tmp_path))) == before


def test_activate_ledger_failure_after_switch_says_rerun(tmp_path, monkeypatch):
    base = str(tmp_path)
    stage(tmp_path, 'r1')

    def boom(self):
        raise HotswapError('saving the release ledger x: disk full.')
    monkeypatch.setattr(Ledger, 'save', boom)
    with pytest.raises(HotswapError) as e:
        L.activate(base, 'r1')
    assert 'rerun' in e.value.msg
    monkeypatch.undo()
    res = L.activate(base, 'r1')
    assert res['ledger_updated'] and not res['switched']
    assert Ledger.load(base).release('r1')['state'] == 'active'


def test_activate_ledger_failure_after_switch_puts_current_back(tmp_path, monkeypatch):
    """A full disk at the ledger write: current goes back to the release it pointed at (found by the fault suite)."""
    base = str(tmp_path)
    stage(tmp_path, 'r1')
    L.activate(base, 'r1')
    stage(tmp_path, 'r2')
    before = open(os.path.join(base, ".hotswap", "ledger.json")).read()

    def boom(self):
        raise HotswapError('saving the release ledger x: No space left on device.')
    monkeypatch.setattr(Ledger, 'save', boom)
    with pytest.raises(HotswapError) as e:
        L.activate(base, 'r2')
    assert 'switched back to releases/r1' in e.value.msg and 'No space left' in e.value.msg, e.value.msg
    assert os.readlink(os.path.join(base, 'current')) == 'releases/r1'
    monkeypatch.undo()
    assert open(os.path.join(base, ".hotswap", "ledger.json")).read() == before


# -- info ----------------------------------------------------------------------------------------

def test_info_missing_base_dir(tmp_path):
    res = L.info(str(tmp_path / 'nope'))
    assert res == {'current': None, 'previous_good': None, 'releases': [],
                   'ledger_path': str(tmp_path / 'nope' / '.hotswap' / 'ledger.json'), 'problems': [],
                   'current_blocked': False}


def test_info_full(tmp_path):
    base = str(tmp_path)
    stage(tmp_path, 'r1')
    stage(tmp_path, 'r2')
    L.activate(base, 'r1')
    L.activate(base, 'r2')
    res = L.info(base)
    assert res['current'] == 'r2' and res['previous_good'] == 'r1' and res['problems'] == []
    assert [r['state'] for r in res['releases']] == ['retired', 'active']


def test_info_reports_problems(tmp_path):
    (tmp_path / 'current').mkdir()
    res = L.info(str(tmp_path))
    assert res['current'] is None and 'real directory' in res['problems'][0]
    assert res['current_blocked'] is True
    (tmp_path / 'current').rmdir()
    os.symlink('releases/gone', str(tmp_path / 'current'))
    res = L.info(str(tmp_path))
    assert res['current'] == 'gone' and 'does not exist' in res['problems'][0]
    # A dangling link is a problem, but a switch can still replace it.
    assert res['current_blocked'] is False


# -- prune ---------------------------------------------------------------------------------------

def deploy_series(tmp_path, n):
    base = str(tmp_path)
    for i in range(1, n + 1):
        stage(tmp_path, 'r%d' % i, at=day(i))
        L.activate(base, 'r%d' % i)
    return base


def test_prune_keeps_n_and_updates_ledger(tmp_path):
    base = deploy_series(tmp_path, 6)
    res = L.prune(base, 3, check_mode=True)
    assert res == dict(removed=['r1', 'r2', 'r3'], kept=['r4', 'r5', 'r6'], unknown=[], forgotten=[], cleaned=[],
                       changed=True)
    assert len(os.listdir(str(tmp_path / 'releases'))) == 6
    res = L.prune(base, 3)
    assert res['removed'] == ['r1', 'r2', 'r3'] and res['changed']
    assert sorted(os.listdir(str(tmp_path / 'releases'))) == ['r4', 'r5', 'r6']
    led = Ledger.load(base)
    assert [r['release_id'] for r in led.releases()] == ['r4', 'r5', 'r6']
    assert len(led.history()) == 6
    assert L.prune(base, 3) == dict(removed=[], kept=['r4', 'r5', 'r6'], unknown=[], forgotten=[], cleaned=[],
                                    changed=False)


def test_prune_keep_one_keeps_current_and_previous_good(tmp_path):
    base = deploy_series(tmp_path, 4)
    res = L.prune(base, 1)
    assert res['removed'] == ['r1', 'r2'] and res['kept'] == ['r3', 'r4']
    assert L.info(base)['previous_good'] == 'r3'


def test_prune_ignores_mtime(tmp_path):
    base = deploy_series(tmp_path, 4)
    # Make the oldest release look newest on disk: must not matter.
    os.utime(str(tmp_path / 'releases' / 'r1'), (4e9, 4e9))
    os.utime(str(tmp_path / 'releases' / 'r4'), (1, 1))
    assert L.prune(base, 3)['removed'] == ['r1']


def test_prune_unknown_never_deleted_forgotten_dropped(tmp_path):
    base = deploy_series(tmp_path, 3)
    stage(tmp_path, 'hand', record=False)
    import shutil
    shutil.rmtree(str(tmp_path / 'releases' / 'r1'))
    (tmp_path / 'releases' / '.pruning-old-1234').mkdir()
    res = L.prune(base, 1)
    assert res == dict(removed=[], kept=['r2', 'r3'], unknown=['hand'], forgotten=['r1'], cleaned=[], changed=True)
    assert sorted(os.listdir(str(tmp_path / 'releases'))) == ['hand', 'r2', 'r3']
    assert Ledger.load(base).release('r1') is None


def test_prune_after_failed_deploys_keeps_live(tmp_path):
    base = deploy_series(tmp_path, 2)  # r2 live, r1 previous good
    for i in range(3, 7):
        rid = 'r%d' % i
        stage(tmp_path, rid, at=day(i))
        L.activate(base, rid)
        L.activate(base, 'r2', previous_state='failed')  # verification failed, rolled back
    res = L.prune(base, 2)
    assert res['removed'] == ['r3', 'r4', 'r5', 'r6']
    assert sorted(os.listdir(str(tmp_path / 'releases'))) == ['r1', 'r2']
    assert os.readlink(str(tmp_path / 'current')) == 'releases/r2'


def test_prune_protect_keeps_a_slot_release(tmp_path):
    # Blue-green: the idle slot still runs r1 although r1 is neither current nor previous good.
    base = deploy_series(tmp_path, 4)
    res = L.prune(base, 1, check_mode=True, protect=['r1'])
    assert res['removed'] == ['r2'] and res['kept'] == ['r1', 'r3', 'r4']
    res = L.prune(base, 1, protect=['r1', 'not-here'])
    assert res['removed'] == ['r2']
    assert sorted(os.listdir(str(tmp_path / 'releases'))) == ['r1', 'r3', 'r4']


@pytest.mark.parametrize('bad', ['../etc', '', '.hidden'])
def test_prune_protect_refuses_a_bad_id_before_deleting(tmp_path, bad):
    base = deploy_series(tmp_path, 4)
    with pytest.raises(HotswapError) as e:
        L.prune(base, 1, protect=['r1', bad])
    assert 'protect' in e.value.msg
    assert len(os.listdir(str(tmp_path / 'releases'))) == 4


def test_prune_missing_base_dir_and_bad_keep(tmp_path):
    assert L.prune(str(tmp_path / 'nope'), 5)['changed'] is False
    with pytest.raises(HotswapError):
        L.prune(str(tmp_path), 0)


def test_prune_refuses_when_current_is_real_dir(tmp_path):
    base = deploy_series(tmp_path, 3)
    os.unlink(str(tmp_path / 'current'))
    (tmp_path / 'current').mkdir()
    with pytest.raises(HotswapError):
        L.prune(base, 1)
    assert len(os.listdir(str(tmp_path / 'releases'))) == 3


# -- leftovers of killed runs --------------------------------------------------------------------

def make_leftovers(tmp_path, age):
    """A partial upload and a temp link as a killed run leaves them, ``age`` seconds old."""
    base = deploy_series(tmp_path, 2)
    partial = tmp_path / 'releases' / 'r2' / '.app.partial-x1y2'
    partial.write_bytes(b'half a binary')
    link = tmp_path / '.current.tmp-abcd'
    os.symlink('releases/r1', str(link))
    then = os.path.getmtime(str(partial)) - age
    os.utime(str(partial), (then, then))
    os.utime(str(link), (then, then), follow_symlinks=False)
    return base, partial, link


def test_prune_cleans_old_leftovers_only(tmp_path):
    base, partial, link = make_leftovers(tmp_path, age=2 * 3600)
    res = L.prune(base, keep=5, check_mode=True)
    assert res['cleaned'] == sorted([str(link), str(partial)]) and res['changed']
    assert partial.exists() and os.path.lexists(str(link))
    res = L.prune(base, keep=5)
    assert res['cleaned'] == sorted([str(link), str(partial)])
    assert not partial.exists() and not os.path.lexists(str(link))
    # The releases and current are untouched; a second run has nothing to do.
    assert (tmp_path / 'releases' / 'r2' / 'app').exists() and os.readlink(str(tmp_path / 'current')) == 'releases/r2'
    assert L.prune(base, keep=5)['changed'] is False


def test_prune_leaves_young_leftovers_of_a_running_upload(tmp_path):
    base, partial, link = make_leftovers(tmp_path, age=60)
    res = L.prune(base, keep=5)
    assert res['cleaned'] == [] and res['changed'] is False
    assert partial.exists() and os.path.lexists(str(link))


# -- activate_and_prune (release_activate with keep) ---------------------------------------------

def test_activate_and_prune_switches_then_prunes_keeping_the_one_switched_from(tmp_path):
    base = deploy_series(tmp_path, 4)
    stage(tmp_path, 'r5')
    res = L.activate_and_prune(base, 'r5', keep=2)
    assert res['switched'] and res['previous_release'] == 'r4'
    assert res['pruned']['removed'] == ['r1', 'r2', 'r3'] and res['changed']
    assert sorted(os.listdir(str(tmp_path / 'releases'))) == ['r4', 'r5']
    assert L.info(base)['previous_good'] == 'r4'


def test_activate_and_prune_without_keep_prunes_nothing(tmp_path):
    base = deploy_series(tmp_path, 4)
    res = L.activate_and_prune(base, 'r2')
    assert res['pruned'] is None and res['switched']
    assert len(os.listdir(str(tmp_path / 'releases'))) == 4


def test_activate_and_prune_unchanged_when_current_and_nothing_to_prune(tmp_path):
    base = deploy_series(tmp_path, 2)
    res = L.activate_and_prune(base, 'r2', keep=5)
    assert res['changed'] is False and res['pruned']['removed'] == []


def test_activate_and_prune_check_mode_changes_nothing(tmp_path):
    base = deploy_series(tmp_path, 4)
    before = sorted(os.listdir(str(tmp_path / 'releases'))), os.readlink(str(tmp_path / 'current'))
    res = L.activate_and_prune(base, 'r3', keep=1, check_mode=True)
    assert res['changed'] and res['switched'] and res['pruned']['removed']
    assert (sorted(os.listdir(str(tmp_path / 'releases'))), os.readlink(str(tmp_path / 'current'))) == before


@pytest.mark.parametrize('keep', [0, -1, True])
def test_activate_and_prune_bad_keep_switches_nothing(tmp_path, keep):
    base = deploy_series(tmp_path, 3)
    with pytest.raises(HotswapError, match='keep must be an integer >= 1'):
        L.activate_and_prune(base, 'r1', keep=keep)
    assert os.readlink(str(tmp_path / 'current')) == 'releases/r3'


def test_switching_away_from_a_failed_release_keeps_it_failed(tmp_path):
    """A first release that failed (current left on it) must not turn into a previous good release."""
    from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import Ledger
    led = Ledger.load(str(tmp_path))
    led.record_staged('1.0.0-aaaaaaaaaaaa', version='1.0.0', sha256='a' * 64, binary='web')
    led.record_activated('1.0.0-aaaaaaaaaaaa', None, by='t')
    led.mark('1.0.0-aaaaaaaaaaaa', 'failed')
    led.record_staged('1.0.1-bbbbbbbbbbbb', version='1.0.1', sha256='b' * 64, binary='web')
    led.record_activated('1.0.1-bbbbbbbbbbbb', '1.0.0-aaaaaaaaaaaa', by='t')
    assert led.release('1.0.0-aaaaaaaaaaaa')['state'] == 'failed'
    assert led.previous_good('1.0.1-bbbbbbbbbbbb') is None
