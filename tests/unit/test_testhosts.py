# -*- coding: utf-8 -*-
"""tests/hosts/testhosts.py: what a host that never answered ssh is told to do."""

from __future__ import annotations

import os
import sys

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
