# -*- coding: utf-8 -*-
"""tests/hosts/testhosts.py: what a host that never answered ssh is told to do, and waiting for inotify room."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'hosts'))
import testhosts  # noqa: E402


def test_an_exited_container_near_the_inotify_limit_names_the_limit_and_the_fix():
    msg = testhosts.exited_before_ssh_msg('hs-26', 'exited', '255', 128, 154)
    assert 'container hs-26 exited (exit code 255) before sshd answered' in msg
    assert '128 inotify instances per user' in msg and '154 are open' in msg
    assert 'sysctl -w fs.inotify.max_user_instances=512' in msg and 'Start fewer hosts' in msg


def test_far_from_the_limit_it_points_at_the_container_log():
    msg = testhosts.exited_before_ssh_msg('hs-3', 'exited', '1', 512, 40)
    assert 'inotify' not in msg and 'See `podman logs hs-3`.' in msg
    # An unreadable limit (0) says nothing of it either.
    assert 'inotify' not in testhosts.exited_before_ssh_msg('hs-3', 'exited', '1', 0, 400)


def test_room_counts_each_host_against_the_per_user_limit():
    per = testhosts.INOTIFY_PER_HOST
    assert testhosts.inotify_room(128, 128 - 2 * per, 2)
    assert not testhosts.inotify_room(128, 128 - 2 * per + 1, 2)
    assert testhosts.inotify_room(0, 10000, 50)      # no limit read: nothing to wait for


def _limits(monkeypatch, limit, open_counts):
    counts = iter(open_counts)
    monkeypatch.setattr(testhosts, '_inotify_limit', lambda: limit)
    monkeypatch.setattr(testhosts, '_open_inotify_instances', lambda: next(counts))
    monkeypatch.setattr(testhosts.time, 'sleep', lambda s: None)


def test_hosts_start_once_other_hosts_have_gone(monkeypatch, tmp_path, capsys):
    _limits(monkeypatch, 128, [125, 126, 60])
    entered = []
    with testhosts.inotify_room_held(3, lock=str(tmp_path / 'start.lock'), wait=60):
        entered.append(True)
    assert entered == [True]
    err = capsys.readouterr().err
    assert '125 of 128 instances open, 3 host(s) need about 15 more: waiting up to 60 s' in err
    assert 'room for 3 host(s) now (60 of 128 instances open)' in err
    assert (tmp_path / 'start.lock').exists()


def test_no_room_by_the_deadline_says_what_is_open_and_what_to_do(monkeypatch, tmp_path):
    _limits(monkeypatch, 128, [126] * 5)
    with pytest.raises(testhosts.TestHostError) as e:
        with testhosts.inotify_room_held(2, lock=str(tmp_path / 'start.lock'), wait=0):
            raise AssertionError('started hosts with no room for them')
    msg = str(e.value)
    assert 'starting 2 hosts: waited 0 s for room' in msg and '126 open' in msg
    assert '`testhosts.py list`' in msg and 'sysctl -w fs.inotify.max_user_instances=512' in msg


def test_more_hosts_than_the_limit_can_ever_hold_fail_at_once(monkeypatch, tmp_path):
    _limits(monkeypatch, 128, [])                      # no count taken: nothing to wait for
    with pytest.raises(testhosts.TestHostError) as e:
        with testhosts.inotify_room_held(30, lock=str(tmp_path / 'start.lock'), wait=900):
            raise AssertionError('started hosts with no room for them')
    msg = str(e.value)
    assert 'starting 30 hosts: their systemd need about 150 inotify instances and the kernel allows 128' in msg
    assert 'sysctl -w fs.inotify.max_user_instances=512' in msg
