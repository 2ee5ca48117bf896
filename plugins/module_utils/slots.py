# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The blue-green state of an app on a host, read with its releases in one module run (release_info's
slots, lb_config and stat): which release each slot link points at, the load balancer config that says
which slot is live, and whether some paths exist. Never changes anything."""

from __future__ import annotations

import os
import re

from ansible_collections.hotswap.deploy.plugins.module_utils import nginx
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

SLOTS_DIR = 'slots'
# Slot names become file names under <base_dir>/slots/.
_SLOT_RE = re.compile(r'^[A-Za-z0-9_-]+$')
# What the blue_green role writes into its nginx config (templates/nginx.conf.j2): the live slot, and the
# slot nginx falls back to while the old one still runs.
_LIVE_RE = re.compile(r'hotswap-blue-green live=(blue|green)')
_BACKUP_RE = re.compile(r'hotswap-blue-green live=\w+ backup=(blue|green)')


def read_slot(base_dir, name):
    """``{path, exists, islink, release}`` of the slot link ``<base_dir>/slots/<name>``; release is the name
    of the directory the link points at (null when it is no link)."""
    if not _SLOT_RE.match(name or ''):
        raise HotswapError('reading the slot %r in %s: a slot name is letters, digits, "_" or "-" (for example '
                           'blue). Fix slots.' % (name, base_dir))
    path = os.path.join(base_dir, SLOTS_DIR, name)
    islink = os.path.islink(path)
    target = os.readlink(path) if islink else ''
    return dict(path=path, exists=os.path.lexists(path), islink=islink,
                release=os.path.basename(target.rstrip('/')) or None)


def live_slots(config):
    """``(live, backup)``: the slots the config's marker names ('' when it names none)."""
    live, backup = _LIVE_RE.search(config or ''), _BACKUP_RE.search(config or '')
    return (live.group(1) if live else ''), (backup.group(1) if backup else '')


def read_state(base_dir, slots=(), lb_config=None, stat=()):
    """What release_info adds to the releases for ``slots``, ``lb_config`` and ``stat``."""
    result = dict(slots={name: read_slot(base_dir, name) for name in slots or ()},
                  stat={path: dict(exists=os.path.lexists(path), islnk=os.path.islink(path)) for path in stat or ()})
    if lb_config:
        # nginx_switch's own reader: the same text it compares a new config with.
        data = nginx.read_config(lb_config)
        result['lb_config'] = None if data is None else nginx.as_text(data)
        result['live_slot'], result['backup_slot'] = live_slots(result['lb_config'])
    return result
