# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The blue-green state of an app on a host, read with its releases in one module run (release_info's
slots, lb_config and stat): which release each slot link points at, the load balancer config that says
which slot is live, and whether some paths exist (never changing anything); and the changes module
blue_green_slots makes to them (``run_slots``): the slot units and links, the state file, the scale-down of
the old slot, and the prune and unlock a rollout ends with."""

from __future__ import annotations

import json
import os
import re
import time

from ansible_collections.hotswap.deploy.plugins.module_utils import nginx
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import prune as ledger_prune
from ansible_collections.hotswap.deploy.plugins.module_utils.lock import release as release_lock
from ansible_collections.hotswap.deploy.plugins.module_utils.units import read_text, write_file

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


# -- changing the slots (module blue_green_slots) ----------------------------------------------------------

UNIT_DIR = '/etc/systemd/system'
DEFAULT_SITE = '/etc/nginx/sites-enabled/default'
STATE_FILE = os.path.join('.hotswap', 'blue_green.json')


def config_text(path):
    """The nginx config as nginx_switch and release_info read it ('' when there is none)."""
    return nginx.as_text(nginx.read_config(path))


def slot_unit_name(app, slot):
    return '%s-%s.service' % (app, slot)


def scale_down_unit(app):
    return '%s-scale-down' % app


def units_to_write(app, units, unit_dir=UNIT_DIR):
    """The slots whose unit file differs from ``units[slot]`` (the content the role renders)."""
    return [slot for slot in sorted(units or {})
            if read_text(os.path.join(unit_dir, slot_unit_name(app, slot))) != units[slot]]


def link_target(release_id):
    """What a slot link points at: the release directory, relative so the tree can move."""
    return '../releases/%s' % release_id if release_id else None


def link_change(base_dir, slot, release_id):
    """``(changed, previous release)`` of pointing ``slot`` at ``release_id`` ('' removes the link)."""
    current = read_slot(base_dir, slot)
    if current['exists'] and not current['islink']:
        raise HotswapError('pointing the %s slot at %s: %s is a real file or directory, not a slot link. Move it '
                           'away and rerun.' % (slot, release_id or 'nothing', current['path']))
    wanted = link_target(release_id)
    now = os.readlink(current['path']) if current['islink'] else None
    return now != wanted, current['release']


def point_slot(base_dir, slot, release_id):
    """Point the slot link at the release (a new link renamed over the old one: never a moment without it)."""
    path = os.path.join(base_dir, SLOTS_DIR, slot)
    if not release_id:
        if os.path.lexists(path):
            os.unlink(path)
        return
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = '%s.hotswap-new' % path
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(link_target(release_id), tmp)
    os.replace(tmp, path)


def state_text(state):
    return json.dumps(state, indent=4, sort_keys=True) + '\n'


def scale_down_note(slot, delay, unit):
    return '%s stopped' % slot if not delay else '%s stops in %d s (%s.timer)' % (slot, delay, unit)


def scale_down_command(app, slot, delay):
    """systemd-run of a transient timer that stops (and disables) the old slot after ``delay`` seconds."""
    return ['systemd-run', '--unit=%s' % scale_down_unit(app), '--on-active=%ds' % delay,
            '--timer-property=AccuracySec=1s', '--timer-property=RemainAfterElapse=no',
            '--description=hotswap.deploy scale-down of the %s slot of %s' % (slot, app),
            'systemctl', 'disable', '--now', slot_unit_name(app, slot)]


def nginx_draining(proc='/proc'):
    """Whether an old nginx worker is still finishing requests after a reload (it may use the old slot)."""
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            with open(os.path.join(proc, pid, 'cmdline'), 'rb') as f:
                if b'worker process is shutting down' in f.read():
                    return True
        except OSError:
            continue
    return False


def write_text(path, text, mode):
    """units.write_file (a temp file in the same directory, then a rename), into a directory made if missing."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_file(path, text, mode=mode)


# blue_green_slots' arguments (also the first and last steps of blue_green_cutover).
SLOTS_SPEC = dict(
    app=dict(type='str', required=True),
    base_dir=dict(type='path', required=True),
    expect_lb_config=dict(type='dict', options=dict(path=dict(type='path', required=True),
                                                    content=dict(type='str', default=''))),
    cancel_scale_down=dict(type='bool', default=False),
    units=dict(type='dict', default={}),
    remove_default_site=dict(type='bool', default=False),
    stop_slot=dict(type='str'),
    link=dict(type='dict', options=dict(slot=dict(type='str', required=True),
                                        release_id=dict(type='str', default=''))),
    state=dict(type='dict'),
    scale_down=dict(type='dict', options=dict(slot=dict(type='str', required=True),
                                              delay=dict(type='int', default=0),
                                              drain_timeout=dict(type='int', default=60))),
    prune=dict(type='dict', options=dict(keep=dict(type='int', default=5),
                                         protect=dict(type='list', elements='str', default=[]),
                                         lock_owner=dict(type='str'))),
    unlock=dict(type='dict', options=dict(owner=dict(type='str', required=True))),
)


def _systemctl(run_command, *args):
    rc, out, err = run_command(['systemctl'] + list(args))
    if rc != 0:
        raise HotswapError('running systemctl %s: %s. Check the unit with systemctl status.'
                           % (' '.join(args), (err or out).strip()))


def _cancel(p, result, run_command, check_mode):
    timer = scale_down_unit(p['app'])
    rc, _out, _err = run_command(['systemctl', 'is-active', '--quiet', timer + '.timer'])
    result['cancelled'] = rc == 0
    if not check_mode:
        run_command(['systemctl', 'stop', timer + '.timer'])
        run_command(['systemctl', 'reset-failed', timer + '.timer', timer + '.service'])


def _units(p, result, run_command, check_mode):
    result['units_changed'] = units_to_write(p['app'], p['units'], UNIT_DIR)
    for slot in result['units_changed']:
        path = os.path.join(UNIT_DIR, slot_unit_name(p['app'], slot))
        result['diff'].append(dict(before_header=path, after_header=path, before=read_text(path) or '',
                                   after=p['units'][slot]))
        if not check_mode:
            write_text(path, p['units'][slot], 0o644)
    if result['units_changed'] and not check_mode:
        _systemctl(run_command, 'daemon-reload')


def _link(p, result, check_mode):
    link = p['link']
    result['link_changed'], result['link_previous'] = link_change(p['base_dir'], link['slot'], link['release_id'])
    if result['link_changed'] and not check_mode:
        point_slot(p['base_dir'], link['slot'], link['release_id'])


def _state(p, result, check_mode):
    path = os.path.join(p['base_dir'], STATE_FILE)
    text = state_text(p['state'])
    before = read_text(path)
    if before != text:
        result['state_changed'] = True
        result['diff'].append(dict(before_header=path, after_header=path, before=before or '', after=text))
        if not check_mode:
            write_text(path, text, 0o640)


def _scale_down(p, result, run_command, check_mode):
    sd = p['scale_down']
    unit = scale_down_unit(p['app'])
    result['scale_down'] = scale_down_note(sd['slot'], sd['delay'], unit)
    if check_mode:
        return
    if sd['delay'] > 0:
        rc, out, err = run_command(scale_down_command(p['app'], sd['slot'], sd['delay']))
        if rc != 0:
            raise HotswapError('scheduling the stop of the %s slot: %s. Stop it by hand (systemctl disable --now %s).'
                               % (sd['slot'], (err or out).strip(), slot_unit_name(p['app'], sd['slot'])))
        return
    deadline = time.monotonic() + sd['drain_timeout']
    while time.monotonic() < deadline and nginx_draining():
        time.sleep(1)
    _systemctl(run_command, 'disable', '--now', '--quiet', slot_unit_name(p['app'], sd['slot']))


def _error_text(what, e, base_dir):
    if isinstance(e, HotswapError):
        return e.msg
    return '%s in %s: %s. Check permissions (use become).' % (what, base_dir, e)


def _prune_and_unlock(p, result, check_mode):
    """The end of a rollout that went through: prune, then release the lock whatever the prune did. A failure
    is returned in the result (failed_step, step_error), the lock's state with it."""
    errors = []
    if p['prune']:
        pr = p['prune']
        try:
            result['pruned'] = ledger_prune(p['base_dir'], pr['keep'], check_mode=check_mode,
                                            protect=pr['protect'], lock_owner=pr['lock_owner'])
        except (HotswapError, OSError) as e:
            errors.append(('prune', _error_text('pruning releases', e, p['base_dir'])))
    if p['unlock']:
        try:
            release_lock(p['base_dir'], p['unlock']['owner'], check_mode=check_mode)
            result['unlocked'] = True
        except (HotswapError, OSError) as e:
            result['unlocked'] = False
            errors.append(('unlock', _error_text('releasing the deploy lock', e, p['base_dir'])))
    if errors:
        result['failed_step'] = errors[0][0]
        result['step_error'] = ' '.join(msg for dummy, msg in errors)


def run_slots(p, run_command, check_mode=False):
    """What blue_green_slots does with its checked arguments ``p`` (SLOTS_SPEC): the result. A failed prune or
    unlock is in the result (``failed_step``, ``step_error``); any other failure raises HotswapError or OSError."""
    result = dict(changed=False, cancelled=False, units_changed=[], link_changed=False, diff=[])
    expect = p['expect_lb_config']
    if expect:
        result['lb_config_moved'] = config_text(expect['path']) != (expect['content'] or '')
        if result['lb_config_moved']:
            return result
    if p['cancel_scale_down']:
        _cancel(p, result, run_command, check_mode)
    if p['units']:
        _units(p, result, run_command, check_mode)
    if p['remove_default_site'] and os.path.lexists(DEFAULT_SITE):
        result['default_site_removed'] = True
        if not check_mode:
            os.unlink(DEFAULT_SITE)
    if p['stop_slot']:
        result['stopped'] = True
        if not check_mode:
            _systemctl(run_command, 'disable', '--now', '--quiet', slot_unit_name(p['app'], p['stop_slot']))
    if p['link']:
        _link(p, result, check_mode)
    if p['state'] is not None:
        _state(p, result, check_mode)
    if p['scale_down']:
        _scale_down(p, result, run_command, check_mode)
    _prune_and_unlock(p, result, check_mode)
    result['changed'] = bool(result['cancelled'] or result['units_changed'] or result['link_changed']
                             or result.get('default_site_removed') or result.get('stopped')
                             or result.get('state_changed') or result.get('scale_down')
                             or (result.get('pruned') or {}).get('changed'))
    return result
