# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The systemd units a restart strategy needs, installed in one module run (service_units).

Which files belong to which strategy lives here only. A marker file (systemd ignores dot
files) names the strategy the service was started under, so a change between strategies
that share ``<app>.service`` is seen too; the units of the old strategy are stopped once
and the files it alone used are removed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

from ansible_collections.hotswap.deploy.plugins.module_utils.common import STRATEGIES, HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import PREVIOUS_STATES, Ledger
from ansible_collections.hotswap.deploy.plugins.module_utils.release import read_current

UNIT_DIR = '/etc/systemd/system'
UNIT_MODE = 0o644
# Linux >= 5.14: what is queued on a closing SO_REUSEPORT listener moves to another one.
MIGRATE_SYSCTL = 'net.ipv4.tcp_migrate_req'
MIGRATE_SYSCTL_FILE = '/etc/sysctl.d/60-hotswap-reuseport.conf'
MIGRATE_SYSCTL_CONTENT = '# hotswap.deploy: reuseport restarts (graceful_restart)\n%s = 1\n' % MIGRATE_SYSCTL
# The options service_units and release_status share (documented once: doc_fragments/units.py).
UNITS_SPEC = dict(
    app=dict(type='str', required=True),
    strategy=dict(type='str', required=True, choices=list(STRATEGIES)),
    service_unit=dict(type='str', required=True),
    socket_unit=dict(type='str'),
)
# Where a package puts its units: a unit of ours in UNIT_DIR would shadow one of these.
VENDOR_UNIT_DIRS = ('/lib/systemd/system', '/usr/lib/systemd/system')
OURS = 'hotswap.deploy'
ADOPTED_DIR = os.path.join('.hotswap', 'adopted')
ADOPTED_INDEX = 'units.json'
# Instances graceful_restart runs of a reuseport template unit.
REUSEPORT_SLOTS = ('a', 'b')


# systemd's unit name characters less "@" (we add it for templates) and "\" (escapes); a leading
# letter, digit or "_" keeps the name from being read as an option by systemctl.
_APP_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.:-]*$')
# systemd allows 255 characters in a unit name, "@.service" included.
APP_MAX_LEN = 200


def validate_app(app):
    """Return ``app`` if ``<app>.service`` names a file inside the unit directory, else raise HotswapError."""
    fix = ('Use a name of letters, digits, "_", ".", ":" and "-" that starts with a letter, digit or "_" '
           '(at most %d characters), for example myapp; the unit is <app>.service.' % APP_MAX_LEN)
    if not isinstance(app, str) or not app:
        raise HotswapError('checking app: it is empty. %s' % fix)
    if '/' in app or '..' in app:
        raise HotswapError('checking app %r: it contains "/" or "..", so its unit files would be written outside '
                           'the unit directory. %s' % (app, fix))
    if len(app) > APP_MAX_LEN or not _APP_RE.match(app):
        raise HotswapError('checking app %r: it is not a valid systemd unit name. %s' % (app, fix))
    return app


def service_name(app, strategy):
    return '%s@.service' % app if strategy == 'reuseport' else '%s.service' % app


def marker_name(app, strategy):
    return '.hotswap-%s.%s' % (app, strategy)


def marker_content(strategy):
    return '# Installed by hotswap.deploy: this service runs under restart_strategy=%s.\n' % strategy


def wanted_files(app, strategy, service_unit, socket_unit=None):
    """{file name: content} of the strategy: service (or template) unit, socket unit, marker."""
    validate_app(app)
    if strategy not in STRATEGIES:
        raise HotswapError('installing the units of %s: unknown restart strategy %r. Use one of %s.'
                           % (app, strategy, ', '.join(STRATEGIES)))
    if not service_unit:
        raise HotswapError('installing the units of %s: service_unit is empty. Give the rendered unit.' % app)
    files = {service_name(app, strategy): service_unit, marker_name(app, strategy): marker_content(strategy)}
    if strategy == 'systemd_socket':
        if not socket_unit:
            raise HotswapError('installing the units of %s for systemd_socket: socket_unit is empty. Give the '
                               'rendered socket unit (it holds the listener across restarts).' % app)
        files['%s.socket' % app] = socket_unit
    return files


def known_files(app):
    """Every unit or marker file name any strategy may have installed for ``app``."""
    names = set(['%s.socket' % app])
    for s in STRATEGIES:
        names.add(service_name(app, s))
        names.add(marker_name(app, s))
    return names


def installed_files(unit_dir, app):
    return sorted(n for n in known_files(app) if os.path.lexists(os.path.join(unit_dir, n)))


def units_to_stop(installed):
    """The units to stop when the strategy changes: all that run now (markers are not units).

    A template unit is stopped through the instances graceful_restart uses.
    """
    stop = []
    for name in installed:
        if name.startswith('.'):
            continue
        if name.endswith('@.service'):
            stop += [name.replace('@.service', '@%s.service' % slot) for slot in REUSEPORT_SLOTS]
        else:
            stop.append(name)
    return stop


def read_text(path):
    try:
        with open(path, 'r') as f:
            return f.read()
    except FileNotFoundError:
        return None


def plan(unit_dir, app, wanted):
    """What has to happen: dict(installed, remove, write, stop, changed)."""
    installed = installed_files(unit_dir, app)
    remove = [n for n in installed if n not in wanted]
    write = sorted(n for n, content in wanted.items() if read_text(os.path.join(unit_dir, n)) != content)
    stop = units_to_stop(installed) if remove else []
    return dict(installed=installed, remove=remove, write=write, stop=stop, changed=bool(remove or write))


def write_file(path, content, move=os.replace, mode=UNIT_MODE):
    """Write ``content`` to ``path`` through a temp file in the same directory and a rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        move(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def stop_units(run_command, units):
    """Stop and disable ``units`` (left by another strategy); units systemd does not know are skipped."""
    if not units:
        return
    for verb in ('stop', 'disable'):
        rc, out, err = run_command(['systemctl', verb] + list(units))
        text = (err or out or '').strip()
        if rc != 0 and not _only_unknown_units(text):
            raise HotswapError('%s %s (left by another restart strategy): systemctl %s failed (rc %d): %s. '
                               'Do it by hand and rerun.' % ('stopping' if verb == 'stop' else 'disabling',
                                                             ', '.join(units), verb, rc, text))


def _only_unknown_units(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and all('not loaded' in line or 'does not exist' in line for line in lines)


def read_sysctl(name, proc_root='/proc'):
    return read_text(os.path.join(proc_root, 'sys', *name.split('.')))


def foreign_units(app, unit_dir=UNIT_DIR, vendor_dirs=VENDOR_UNIT_DIRS):
    """{path: content} of the units named <app>.service/.socket that this collection did not install.

    A unit is ours when it names hotswap.deploy; a package's unit (vendor_dirs) is never ours. Once
    a strategy marker is there, the units were installed (or adopted) by an earlier deploy.
    """
    found = {}
    if any(os.path.lexists(os.path.join(unit_dir, marker_name(app, s))) for s in STRATEGIES):
        return found
    for name in ('%s.service' % app, '%s.socket' % app):
        path = os.path.join(unit_dir, name)
        content = read_text(path)
        if content is not None and OURS not in content:
            found[path] = content
        for vendor in vendor_dirs:
            path = os.path.join(vendor, name)
            content = read_text(path)
            if content is not None:
                found[path] = content
    return found


def adopted_index(base_dir):
    return os.path.join(base_dir, ADOPTED_DIR, ADOPTED_INDEX)


def read_adopted(base_dir):
    """{path: content} of the units kept when they were adopted (empty when none were)."""
    text = read_text(adopted_index(base_dir)) if base_dir else None
    return json.loads(text) if text else {}


def check_foreign(app, foreign, adopt, base_dir, unit_dir):
    """Refuse to shadow or overwrite a unit we did not install, unless adopting it."""
    if not foreign or adopt:
        return
    raise HotswapError(
        'installing the units of %s: %s %s not installed by hotswap.deploy (a hand-written or package unit); '
        'installing ours in %s would silently replace it. Set adopt_unit: true to take it over (a copy is kept '
        'in %s and rollback.yml puts it back), or deploy under another app name.'
        % (app, ', '.join(sorted(foreign)), 'is' if len(foreign) == 1 else 'are', unit_dir,
           os.path.join(base_dir or '<base_dir>', ADOPTED_DIR)))


def keep_adopted(base_dir, foreign, move=os.replace):
    """Keep the first copy of the adopted units (a later deploy must not replace it with ours)."""
    if read_adopted(base_dir):
        return False
    directory = os.path.join(base_dir, ADOPTED_DIR)
    os.makedirs(directory, mode=0o750, exist_ok=True)
    write_file(adopted_index(base_dir), json.dumps(foreign, indent=2, sort_keys=True) + '\n', move=move, mode=0o640)
    return True


def restore_adopted(app, base_dir, run_command=None, check_mode=False, unit_dir=UNIT_DIR, move=os.replace,
                    previous_state='failed'):
    """Put the adopted units back: ours removed, the kept copies written where they were.

    The release ``current`` points at is no longer what runs: the ledger marks it ``previous_state``
    (failed: a later rollback must not pick it as the previous good release). Returns dict(changed,
    units_changed, restored, removed, stopped, marked, diff). Starting the service again is
    graceful_restart's (with daemon_reload).
    """
    validate_app(app)
    if previous_state not in PREVIOUS_STATES:
        raise HotswapError('restoring the units of %s: previous_state must be one of %s, not %r.'
                           % (app, ', '.join(PREVIOUS_STATES), previous_state))
    kept = read_adopted(base_dir)
    if not kept:
        raise HotswapError('restoring the units %s had before hotswap.deploy: no adopted units are kept in %s. '
                           'Only a deploy with adopt_unit: true keeps them.' % (app, os.path.join(base_dir, ADOPTED_DIR)))
    installed = installed_files(unit_dir, app)
    restore = dict((path, content) for path, content in kept.items()
                   if path.startswith(unit_dir + os.sep) and read_text(path) != content)
    remove = [n for n in installed if os.path.join(unit_dir, n) not in kept]
    before = dict((n, read_text(os.path.join(unit_dir, n)) or '') for n in installed)
    after = dict((os.path.basename(p), c) for p, c in kept.items() if p.startswith(unit_dir + os.sep))
    result = dict(changed=bool(restore or remove), units_changed=bool(restore or remove),
                  restored=sorted(restore), removed=remove, stopped=[], marked=None,
                  diff=dict(before=render_files(before), after=render_files(after),
                            before_header=unit_dir, after_header=unit_dir))
    if check_mode or not result['changed']:
        return result
    # Ours that go away (the socket, template instances) stop now; the restored service restarts after.
    stop = units_to_stop([n for n in remove if n not in after])
    stop_units(run_command, stop)
    result['stopped'] = stop
    for name in remove:
        os.unlink(os.path.join(unit_dir, name))
    for path, content in restore.items():
        write_file(path, content, move=move)
    result['marked'] = mark_current(base_dir, previous_state)
    return result


def mark_current(base_dir, state):
    """Mark the release ``current`` points at with ``state``; its id, or None without one."""
    rid = read_current(base_dir)
    if rid is None:
        return None
    ledger = Ledger.load(base_dir)
    if ledger.mark(rid, state):
        ledger.save()
    return rid


def install(app, strategy, service_unit, socket_unit=None, run_command=None, check_mode=False,
            unit_dir=UNIT_DIR, sysctl_file=MIGRATE_SYSCTL_FILE, proc_root='/proc', move=os.replace,
            adopt=False, base_dir=None, vendor_dirs=VENDOR_UNIT_DIRS):
    """Bring the units of ``strategy`` in place; what the service_units module does.

    A unit named like ours that we did not install is refused, or with ``adopt`` kept (once) in
    ``<base_dir>/.hotswap/adopted`` for restore_adopted. Returns dict(changed, units_changed,
    installed, removed, written, stopped, sysctl_set, adopted, diff): ``units_changed`` says
    systemd must reload its units before the restart.
    """
    wanted = wanted_files(app, strategy, service_unit, socket_unit)
    if not os.path.isdir(unit_dir):
        raise HotswapError('installing the units of %s: %s does not exist. Is systemd installed on this host?'
                           % (app, unit_dir))
    foreign = foreign_units(app, unit_dir, vendor_dirs)
    check_foreign(app, foreign, adopt, base_dir, unit_dir)
    if foreign and not base_dir:
        raise HotswapError('adopting the units of %s: base_dir is needed to keep their copy. Give base_dir.' % app)
    p = plan(unit_dir, app, wanted)
    before = dict((n, read_text(os.path.join(unit_dir, n)) or '') for n in sorted(set(p['write']) | set(p['remove'])))
    after = dict((n, wanted.get(n, '')) for n in before)
    # Foreign units found now are taken over now (a switch-back restores them), whether or not an
    # earlier, failed first deploy already kept their copy.
    adopting = bool(foreign)
    result = dict(changed=p['changed'] or adopting, units_changed=p['changed'], installed=sorted(wanted),
                  removed=p['remove'], written=p['write'], stopped=p['stop'], sysctl_set=False,
                  adopted=sorted(foreign) if adopting else [],
                  diff=dict(before=render_files(before), after=render_files(after),
                            before_header=unit_dir, after_header=unit_dir))
    sysctl_wanted = strategy == 'reuseport'
    if sysctl_wanted:
        sysctl_file_stale = read_text(sysctl_file) != MIGRATE_SYSCTL_CONTENT
        sysctl_off = (read_sysctl(MIGRATE_SYSCTL, proc_root) or '').strip() != '1'
        result['sysctl_set'] = sysctl_off
        result['changed'] = result['changed'] or sysctl_file_stale or sysctl_off
    if check_mode:
        return result
    try:
        if adopting:
            keep_adopted(base_dir, foreign, move=move)
        stop_units(run_command, p['stop'])
        for name in p['remove']:
            os.unlink(os.path.join(unit_dir, name))
        for name in p['write']:
            write_file(os.path.join(unit_dir, name), wanted[name], move=move)
        if sysctl_wanted and sysctl_file_stale:
            write_file(sysctl_file, MIGRATE_SYSCTL_CONTENT, move=move)
        if sysctl_wanted and sysctl_off:
            set_sysctl(run_command, MIGRATE_SYSCTL)
    except OSError as e:
        raise HotswapError('installing the units of %s in %s: %s. Check permissions (use become) and free space.'
                           % (app, unit_dir, e))
    return result


def set_sysctl(run_command, name):
    rc, out, err = run_command(['sysctl', '-q', '-w', '%s=1' % name])
    if rc != 0:
        raise HotswapError('setting %s=1 for reuseport restarts: sysctl failed (rc %d): %s. It needs Linux >= 5.14 '
                           'and, in a container, the sysctl set by its runtime (--sysctl %s=1).'
                           % (name, rc, (err or out or '').strip(), name))


def render_files(files):
    return ''.join('# %s\n%s' % (n, c if c.endswith('\n') or not c else c + '\n') for n, c in sorted(files.items()))
