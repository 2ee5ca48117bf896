# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The release ledger (``<base_dir>/.hotswap/ledger.json``) and the operations built on it.

The ledger records every release that is on disk: id, version, sha256, state and
timestamps, plus a history of activations. Rollback and pruning read the ledger and
``readlink current``; they never look at mtime/ctime. Format: docs/development.md.

Writers are expected to hold the deploy lock (``lock.py``): ``load`` + change + ``save``
is not atomic against another writer.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import tempfile

from ansible_collections.hotswap.deploy.plugins.module_utils.common import (
    BASE_DIR_SPEC, LOCK_OWNER_SPEC, RELEASE_ID_SPEC, HotswapError, listdir_or_empty, unlink_quietly,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.lock import check_holder
from ansible_collections.hotswap.deploy.plugins.module_utils.release import (
    PRUNING_PREFIX,
    check_release_binary,
    check_release_dir,
    check_release_tree,
    current_is_dangling,
    ensure_state_dir,
    find_leftovers,
    fsync_dir,
    list_release_dirs,
    paths,
    read_current,
    remove_leftover,
    remove_leftover_pruning_dirs,
    remove_release_dir,
    switch_current,
    validate_release_id,
)

FORMAT = 1
STATES = ('staged', 'active', 'retired', 'failed')
UNKNOWN = 'unknown'  # on disk, not in the ledger (reported only, never stored)
PREVIOUS_STATES = ('retired', 'failed')
HISTORY_LIMIT = 200
LEDGER_MODE = 0o640

# Timestamp field set when a release enters a state.
_STATE_TIMESTAMP = {'staged': 'staged_at', 'active': 'activated_at',
                    'retired': 'retired_at', 'failed': 'failed_at'}
INFO_FIELDS = ('release_id', 'version', 'sha256', 'binary', 'state', 'staged_at', 'activated_at',
               'activated_by', 'retired_at', 'failed_at', 'files', 'environment', 'artifact')


def utc_now():
    """Current time as UTC ISO8601 with a 'Z' suffix, to the second: 2024-05-01T12:00:00Z."""
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


# What load() accepts; everything else in an entry is kept as it is.
ENTRY_RULES = ('an entry of "releases" needs "release_id" equal to its key and "state" one of %s; its other '
               'fields are strings or null' % ', '.join(STATES))
_STRING_FIELDS = ('version', 'sha256', 'binary', 'binary_sha256', 'staged_at', 'activated_at', 'activated_by',
                  'retired_at', 'failed_at', 'artifact')
_HISTORY_STRING_FIELDS = ('from', 'at', 'by')


def _kind(value):
    if isinstance(value, bool):
        return 'true/false'
    if isinstance(value, (int, float)):
        return 'a number'
    names = {dict: 'an object', list: 'a list', str: 'a string', type(None): 'null'}
    return names.get(type(value), 'a %s' % type(value).__name__)


def _field_problem(where, field, value, wanted='a string'):
    return '%s field "%s" is %s (%s), not %s' % (where, field, _kind(value), json.dumps(value)[:60], wanted)


def _entry_problem(rid, entry):
    """What is wrong with the release entry under key ``rid``, or None."""
    where = 'releases[%s]' % json.dumps(rid)
    try:
        validate_release_id(rid)
    except HotswapError:
        return '%s: the key is not a valid release id (letters, digits, ".", "_", "+", "-")' % where
    if not isinstance(entry, dict):
        return '%s is %s, not an object' % (where, _kind(entry))
    for field in ('release_id', 'state'):
        if field not in entry:
            return '%s has no field "%s"' % (where, field)
    if not isinstance(entry['release_id'], str):
        return _field_problem(where, 'release_id', entry['release_id'])
    if entry['release_id'] != rid:
        return '%s field "release_id" is %s, not its key' % (where, json.dumps(entry['release_id']))
    if entry['state'] not in STATES:
        return _field_problem(where, 'state', entry['state'], 'one of %s' % ', '.join(STATES))
    for field in _STRING_FIELDS:
        if entry.get(field) is not None and not isinstance(entry[field], str):
            return _field_problem(where, field, entry[field], 'a string or null')
    binary = entry.get('binary')
    if binary is not None and ('/' in binary or binary in ('', '.', '..')):
        return '%s field "binary" is %s, not a file name' % (where, json.dumps(binary))
    files = entry.get('files')
    if files is not None and not (isinstance(files, list) and all(
            isinstance(f, dict) and isinstance(f.get('dest'), str) and isinstance(f.get('digest'), str)
            for f in files)):
        return _field_problem(where, 'files', files, 'a list of objects with "dest" and "digest" strings, or null')
    if entry.get('environment') is not None and not isinstance(entry['environment'], dict):
        return _field_problem(where, 'environment', entry['environment'], 'an object or null')
    members = entry.get('members')
    if members is not None and not (isinstance(members, list) and all(isinstance(m, str) for m in members)):
        return _field_problem(where, 'members', members, 'a list of strings or null')
    return None


def _history_problem(index, item):
    where = 'history[%d]' % index
    if not isinstance(item, dict):
        return '%s is %s, not an object' % (where, _kind(item))
    if 'release_id' not in item:
        return '%s has no field "release_id"' % where
    if not isinstance(item['release_id'], str):
        return _field_problem(where, 'release_id', item['release_id'])
    for field in _HISTORY_STRING_FIELDS:
        if item.get(field) is not None and not isinstance(item[field], str):
            return _field_problem(where, field, item[field], 'a string or null')
    return None


def ledger_problem(data):
    """The first thing in the ledger's releases or history the code could not work with, or None.

    Checked once on load, so that a hand-edited entry fails with its name instead of a
    TypeError or KeyError somewhere later.
    """
    for rid, entry in data.get('releases', {}).items():
        problem = _entry_problem(rid, entry)
        if problem:
            return problem
    for index, item in enumerate(data.get('history', [])):
        problem = _history_problem(index, item)
        if problem:
            return problem
    return None


def _new_entry(rid, version=None, sha256=None, binary=None, at=None):
    return {
        'release_id': rid, 'version': version, 'sha256': sha256, 'binary': binary,
        'state': 'staged', 'staged_at': at or utc_now(), 'activated_at': None,
        'retired_at': None, 'failed_at': None, 'activated_by': None,
    }


class Ledger(object):
    """In-memory ledger of one base_dir. Change it with the record_*/mark/forget methods, then save()."""

    def __init__(self, base_dir, data=None):
        self.paths = paths(base_dir)
        self.base_dir = self.paths.base_dir
        self.path = self.paths.ledger
        data = data if data is not None else {}
        self._releases = data.get('releases', {})
        self._history = data.get('history', [])

    # -- persistence ---------------------------------------------------------------------------

    @classmethod
    def load(cls, base_dir):
        """Read the ledger of ``base_dir``; a missing file gives an empty ledger."""
        p = paths(base_dir)
        try:
            with open(p.ledger, 'rb') as f:
                raw = f.read()
        except FileNotFoundError:
            return cls(p.base_dir)
        except OSError as e:
            raise HotswapError('reading the release ledger %s: %s. Check permissions (run with become '
                               'as the user that deploys).' % (p.ledger, e))
        fix = ('Restore it from a backup, or move it away to start an empty ledger (release '
               'directories on disk then show as state "unknown" and are never pruned).')
        fix_entry = ('Correct that field in the file by hand (%s), restore the file from a backup (for example '
                     '%s.bak if you keep one), or move it away to start an empty ledger (release directories on '
                     'disk then show as state "unknown" and are never pruned).' % (ENTRY_RULES, p.ledger))
        try:
            data = json.loads(raw.decode('utf-8'))
        except ValueError as e:
            raise HotswapError('reading the release ledger %s: it is not valid JSON (%s). %s' % (p.ledger, e, fix))
        if not isinstance(data, dict) or not isinstance(data.get('releases', {}), dict) \
                or not isinstance(data.get('history', []), list):
            raise HotswapError('reading the release ledger %s: it does not have the expected '
                               '{"format", "releases", "history"} structure. %s' % (p.ledger, fix))
        fmt = data.get('format')
        if fmt != FORMAT:
            raise HotswapError('reading the release ledger %s: format %r is not supported (expected %d). '
                               'Use the hotswap.deploy version that wrote it, or %s'
                               % (p.ledger, fmt, FORMAT, fix[0].lower() + fix[1:]))
        problem = ledger_problem(data)
        if problem:
            raise HotswapError('reading the release ledger %s: %s. %s' % (p.ledger, problem, fix_entry))
        return cls(p.base_dir, data)

    def to_json(self):
        return {'format': FORMAT, 'releases': self._releases, 'history': self._history}

    def save(self):
        """Write the ledger atomically: temp file in .hotswap/, fsync, rename, fsync the directory.

        Creates ``.hotswap/`` (mode 0750) but not base_dir.
        """
        state_dir = self.paths.state_dir
        if not os.path.isdir(self.base_dir):
            raise HotswapError('saving the release ledger %s: base_dir %s does not exist. Stage a release '
                               'first (it creates base_dir).' % (self.path, self.base_dir))
        try:
            ensure_state_dir(self.base_dir)
            fd, tmp = tempfile.mkstemp(prefix='.ledger.json.tmp-', dir=state_dir)
        except OSError as e:
            raise HotswapError('saving the release ledger %s: %s. Check permissions and free space.'
                               % (self.path, e))
        try:
            with os.fdopen(fd, 'w') as f:
                json.dump(self.to_json(), f, indent=2)
                f.write('\n')
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, LEDGER_MODE)
            os.rename(tmp, self.path)
            fsync_dir(state_dir)
        except OSError as e:
            unlink_quietly(tmp)
            raise HotswapError('saving the release ledger %s: %s. The previous ledger is unchanged; '
                               'check permissions and free space.' % (self.path, e))
        except BaseException:
            unlink_quietly(tmp)
            raise

    # -- queries -------------------------------------------------------------------------------

    def release(self, rid):
        """Copy of the entry for ``rid``, or None."""
        entry = self._releases.get(rid)
        return copy.deepcopy(entry) if entry is not None else None

    def releases(self):
        """Copies of all entries, oldest ``staged_at`` first (ties keep staging order)."""
        return [copy.deepcopy(e) for e in sorted(self._releases.values(), key=lambda e: e.get('staged_at') or '')]

    def history(self):
        return copy.deepcopy(self._history)

    def release_ids(self):
        return list(self._releases)

    def active_releases(self):
        return [rid for rid, e in self._releases.items() if e['state'] == 'active']

    def previous_good(self, current_rid):
        """Release to roll back to from ``current_rid``, or None.

        The newest history entry whose release is not ``current_rid``, is still in the ledger,
        is not ``failed`` and still has its directory on disk.
        """
        on_disk = set(list_release_dirs(self.base_dir))
        for entry in reversed(self._history):
            rid = entry.get('release_id')
            if rid == current_rid or rid not in on_disk:
                continue
            rel = self._releases.get(rid)
            if rel is None or rel['state'] == 'failed':
                continue
            return rid
        return None

    def needs_activation_record(self, rid):
        """True unless the ledger already says ``rid`` is the one and only active release."""
        entry = self._releases.get(rid)
        if entry is None or entry['state'] != 'active':
            return True
        return self.active_releases() != [rid]

    def to_info(self, current_rid):
        """What release_info returns: current, previous_good, releases (ledger + unknown dirs), ledger_path."""
        on_disk = list_release_dirs(self.base_dir)
        on_disk_set = set(on_disk)
        releases = []
        for entry in self.releases():
            item = dict((k, entry.get(k)) for k in INFO_FIELDS)
            item['path'] = os.path.join(self.paths.releases_dir, entry['release_id'])
            item['present'] = entry['release_id'] in on_disk_set
            releases.append(item)
        for rid in on_disk:
            if rid not in self._releases:
                item = dict((k, None) for k in INFO_FIELDS)
                item.update(release_id=rid, state=UNKNOWN, path=os.path.join(self.paths.releases_dir, rid),
                            present=True)
                releases.append(item)
        return {
            'current': current_rid,
            'previous_good': self.previous_good(current_rid),
            'releases': releases,
            'ledger_path': self.path,
        }

    # -- changes (in memory; call save()) --------------------------------------------------------

    def record_staged(self, rid, version, sha256, binary, at=None, content=None):
        """Record that ``releases/<rid>`` holds ``binary`` with this version and sha256.

        Returns True when the ledger changed. Recording the same sha256 again is a no-op (the
        state of an existing release is kept); a different sha256 under the same id is an error.
        """
        validate_release_id(rid)
        entry = self._releases.get(rid)
        if entry is not None:
            if entry.get('sha256') and sha256 and entry['sha256'].lower() != sha256.lower():
                raise HotswapError(
                    'recording staged release %s: the ledger already has it with sha256 %s, not %s. '
                    'Release ids must be derived from the artifact (version + sha256); use a new '
                    'release_id for a different binary.' % (rid, entry['sha256'], sha256))
            changed = False
            for key, value in (('version', version), ('sha256', sha256), ('binary', binary)):
                if entry.get(key) is None and value is not None:
                    entry[key] = value  # fill in what an adopted (hand-deployed) entry lacked
                    changed = True
            for key, value in (content or {}).items():
                if entry.get(key) is None and value is not None:
                    entry[key] = value
                    changed = True
            return changed
        self._releases[rid] = _new_entry(rid, version, sha256, binary, at)
        # files (dest, digest, owner, group, mode), environment (names, digest), artifact format
        self._releases[rid].update(content or {})
        return True

    def record_activated(self, rid, previous_rid, by, previous_state='retired', at=None):
        """Record that ``current`` now points at ``rid`` (switched away from ``previous_rid``).

        ``rid`` becomes ``active`` (activated_at, activated_by), ``previous_rid`` becomes
        ``previous_state`` (``retired``, or ``failed`` when rolling back from a failed
        verification; one already ``failed`` stays so), any other release still marked ``active`` becomes ``retired``, and a
        history entry is appended. Releases missing from the ledger (deployed by hand) are
        added with unknown version/sha256.
        """
        validate_release_id(rid)
        if previous_state not in PREVIOUS_STATES:
            raise HotswapError('recording activation of %s: previous_state must be one of %s, not %r.'
                               % (rid, ', '.join(PREVIOUS_STATES), previous_state))
        at = at or utc_now()
        entry = self._adopt(rid, at)
        entry['state'] = 'active'
        entry['activated_at'] = at
        entry['activated_by'] = by
        if previous_rid is not None and previous_rid != rid:
            validate_release_id(previous_rid)
            prev = self._adopt(previous_rid, at)
            # A release found failed stays failed: switching away from it later does not retire it.
            if prev['state'] != 'failed':
                prev['state'] = previous_state
                prev[_STATE_TIMESTAMP[previous_state]] = at
        for other_rid, other in self._releases.items():
            if other_rid not in (rid, previous_rid) and other['state'] == 'active':
                other['state'] = 'retired'
                other['retired_at'] = at
        self._history.append({'release_id': rid, 'from': previous_rid, 'at': at, 'by': by})
        del self._history[:-HISTORY_LIMIT]
        return True

    def mark(self, rid, state, at=None):
        """Set the state of ``rid`` (and its ``<state>_at``); True when it changed."""
        if state not in STATES:
            raise HotswapError('marking release %s: state must be one of %s, not %r.'
                               % (rid, ', '.join(STATES), state))
        entry = self._releases.get(rid)
        if entry is None:
            raise HotswapError('marking release %s as %s: it is not in the ledger %s. Check the id with '
                               'hotswap.deploy.release_info.' % (rid, state, self.path))
        if entry['state'] == state:
            return False
        entry['state'] = state
        entry[_STATE_TIMESTAMP[state]] = at or utc_now()
        return True

    def forget(self, rid):
        """Drop ``rid`` from the ledger (its directory is gone). History entries are kept."""
        return self._releases.pop(rid, None) is not None

    def _adopt(self, rid, at):
        entry = self._releases.get(rid)
        if entry is None:
            entry = self._releases[rid] = _new_entry(rid, at=at)
        return entry


# -- pure selection ----------------------------------------------------------------------------

_DERIVE = object()


def derive_previous_good(releases, current_rid):
    """previous_good from release records alone: latest ``activated_at`` that is not current/failed."""
    best = None
    for r in releases:
        if r['release_id'] == current_rid or r.get('state') in ('failed', UNKNOWN) or not r.get('activated_at'):
            continue
        if best is None or r['activated_at'] >= best['activated_at']:
            best = r
    return best['release_id'] if best else None


def select_prunable(releases, current_rid, keep, previous_good=_DERIVE, protect=()):
    """Release ids to delete so that ``keep`` ledger releases remain, in deletion order.

    ``releases``: records with release_id, state, staged_at (and activated_at), e.g.
    ``Ledger.releases()``. Never selects ``current_rid``, ``previous_good`` (derived from
    activated_at when not given), the ids in ``protect`` (e.g. releases a blue-green slot
    still runs) or ``unknown`` releases (not in the ledger; they do not count toward
    ``keep`` either). ``failed`` releases go first, then the oldest by the ledger's
    ``staged_at`` -- never by mtime. Protected releases count toward ``keep``, so more than
    ``keep`` may remain.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise HotswapError('selecting releases to prune: keep must be an integer >= 1, not %r. The current '
                           'release is always kept.' % (keep,))
    known = [r for r in releases if r.get('state') != UNKNOWN]
    if previous_good is _DERIVE:
        previous_good = derive_previous_good(known, current_rid)
    protected = (set([current_rid, previous_good]) | set(protect or ())) - set([None])
    excess = len(known) - keep
    if excess <= 0:
        return []
    by_age = sorted(known, key=lambda r: r.get('staged_at') or '')  # stable: ties keep given order
    candidates = [r for r in by_age if r.get('state') == 'failed'] + \
                 [r for r in by_age if r.get('state') != 'failed']
    return [r['release_id'] for r in candidates if r['release_id'] not in protected][:excess]


# -- operations used by the modules ------------------------------------------------------------

def staged_binary(entry):
    """(binary name, its sha256) a ledger entry records; either may be None (not in the ledger, adopted).

    An archive's ``sha256`` is the archive's: its binary's digest is ``binary_sha256``.
    """
    if not entry:
        return None, None
    digest = entry.get('binary_sha256')
    if digest is None and (entry.get('artifact') or 'binary') == 'binary':
        digest = entry.get('sha256')
    return entry.get('binary'), digest


def activate(base_dir, rid, previous_state='retired', by='ansible', check_mode=False):
    """Point ``current`` at ``rid`` and record it; what release_activate does.

    When ``current`` already points at ``rid`` nothing is switched; if the ledger does not
    say so (e.g. a run died between switch and ledger write, or the release was switched by
    hand) the ledger is brought in line and ``ledger_updated`` is True.
    The release must be a real directory holding its binary with the digest the ledger recorded
    (``check_release_binary``); otherwise nothing is changed.
    Returns dict(previous_release, current_release, switched, ledger_updated, changed).
    """
    p = paths(base_dir, rid)
    if previous_state not in PREVIOUS_STATES:
        raise HotswapError('activating release %s: previous_state must be one of %s, not %r.'
                           % (rid, ', '.join(PREVIOUS_STATES), previous_state))
    current = read_current(p.base_dir)
    check_release_dir(p.base_dir, rid)
    ledger = Ledger.load(p.base_dir)
    # Also when current already points here: the ledger is not told a broken release is active.
    check_release_binary(p.base_dir, rid, *staged_binary(ledger.release(rid)))
    result = dict(previous_release=current, current_release=rid, switched=False, ledger_updated=False)
    if current == rid:
        if ledger.needs_activation_record(rid):
            result['ledger_updated'] = True
            if not check_mode:
                others = [r for r in ledger.active_releases() if r != rid]
                ledger.record_activated(rid, others[0] if others else None, by, previous_state='retired')
                ledger.save()
    else:
        result['switched'] = True
        result['ledger_updated'] = True
        if not check_mode:
            switch_current(p.base_dir, rid)
            try:
                ledger.record_activated(rid, current, by, previous_state=previous_state)
                ledger.save()
            except HotswapError as e:
                raise HotswapError(_unrecorded_switch(p, rid, current, e.msg))
    result['changed'] = result['switched'] or result['ledger_updated']
    return result


def _unrecorded_switch(p, rid, previous, cause):
    """Put ``current`` back after its switch could not be recorded (a full disk); the message says where it points.

    A link the ledger does not know would make the next restart run a release nobody verified.
    """
    if previous is None:
        return ('activating release %s: %s points to releases/%s, but recording it failed: %s There was no '
                'earlier release to switch back to; free space (or fix the cause) and rerun.' % (rid, p.current, rid, cause))
    try:
        switch_current(p.base_dir, previous)
    except HotswapError as back:
        return ('activating release %s: recording the switch failed (%s) and switching %s back to releases/%s failed '
                'too (%s) It points to releases/%s: fix the cause and rerun.' % (rid, cause, p.current, previous,
                                                                                 back.msg, rid))
    return ('activating release %s: recording the switch failed: %s %s was switched back to releases/%s; nothing '
            'else changed. Free space (or fix the cause) and rerun.' % (rid, cause, p.current, previous))


# release_activate's arguments (release_cutover's activate step takes the same, without take_lock).
ACTIVATE_SPEC = dict(
    previous_state=dict(type='str', choices=list(PREVIOUS_STATES), default='retired'),
    activated_by=dict(type='str', default='ansible'),
    keep=dict(type='int'),
)
ACTIVATE_SPEC.update(BASE_DIR_SPEC)
ACTIVATE_SPEC.update(RELEASE_ID_SPEC)
ACTIVATE_SPEC.update(LOCK_OWNER_SPEC)


def link_text(rid):
    return 'current -> releases/%s\n' % rid if rid else ''


def activate_diff(result):
    """The switch as a diff of what current points at."""
    return dict(before=link_text(result['previous_release']), after=link_text(result['current_release']))


def activate_and_prune(base_dir, rid, previous_state='retired', by='ansible', keep=None, check_mode=False,
                       lock_owner=None):
    """``activate``, then (with ``keep``) ``prune``: what release_activate does, in one module run.

    ``keep`` is checked before anything is switched, the deploy lock (``lock.check_holder``)
    before anything is written. Returns activate's dict plus ``pruned`` (prune's dict, or None
    without ``keep``); ``changed`` covers both.
    """
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise HotswapError('activating release %s: keep must be an integer >= 1 (releases left after pruning), '
                           'not %r. Leave it out to prune nothing.' % (rid, keep))
    check_holder(base_dir, lock_owner, 'activating release %s' % rid, check_mode)
    result = activate(base_dir, rid, previous_state=previous_state, by=by, check_mode=check_mode)
    result['pruned'] = None
    if keep is not None:
        result['pruned'] = prune(base_dir, keep, check_mode=check_mode, lock_owner=lock_owner)
        result['changed'] = result['changed'] or result['pruned']['changed']
    return result


def activate_release(p, check_mode=False):
    """``activate_and_prune`` with release_activate's checked arguments ``p`` (ACTIVATE_SPEC); an OSError is
    reported as a HotswapError that says what to check."""
    try:
        return activate_and_prune(p['base_dir'], p['release_id'], previous_state=p['previous_state'],
                                  by=p['activated_by'], keep=p['keep'], check_mode=check_mode,
                                  lock_owner=p['lock_owner'])
    except OSError as e:
        raise HotswapError('activating release %s in %s: %s. Check permissions (use become) and the filesystem.'
                           % (p['release_id'], p['base_dir'], e))


def info(base_dir):
    """What release_info returns; a missing base_dir gives an empty result. Never changes anything."""
    p = paths(base_dir)
    problems = []
    if not os.path.isdir(p.base_dir):
        return {'current': None, 'previous_good': None, 'releases': [], 'ledger_path': p.ledger,
                'problems': problems, 'current_blocked': False}
    try:
        current = read_current(p.base_dir)
    except HotswapError as e:
        current = None
        problems.append(e.msg)
    try:
        check_release_tree(p.base_dir, doing='reading the releases of %s' % p.base_dir)
    except HotswapError as e:
        problems.append(e.msg)
    if current is not None and current_is_dangling(p.base_dir):
        problems.append('%s points to releases/%s, which does not exist. Activate an existing release '
                        '(see releases) or restore the directory.' % (p.current, current))
    result = Ledger.load(p.base_dir).to_info(current)
    result['problems'] = problems
    # A real file or directory at current: no switch can happen until a human moves it.
    result['current_blocked'] = os.path.lexists(p.current) and not os.path.islink(p.current)
    return result


def prune(base_dir, keep, check_mode=False, protect=(), lock_owner=None):
    """Delete old release directories so that ``keep`` ledger releases remain; what release_prune does.

    See ``select_prunable`` for what is chosen; ``protect`` names releases never deleted
    besides the current and previous good ones (they must be valid release ids, and may be
    absent). Ledger entries of removed releases, and of
    releases whose directory is already gone (``forgotten``), are dropped from the ledger
    (history is kept). Directories not in the ledger (``unknown``) are never touched.
    Temp files of killed runs older than an hour (``find_leftovers``) are deleted (``cleaned``).
    Refused while anyone but ``lock_owner`` holds the deploy lock (``lock.check_holder``).
    Returns dict(removed, kept, unknown, forgotten, cleaned, changed).
    """
    p = paths(base_dir)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise HotswapError('pruning releases in %s: keep must be an integer >= 1, not %r.' % (p.base_dir, keep))
    try:
        protect = [validate_release_id(rid) for rid in (protect or ())]
    except HotswapError as e:
        raise HotswapError('pruning releases in %s: an entry of protect is not a release id: %s'
                           % (p.base_dir, e.msg))
    result = dict(removed=[], kept=[], unknown=[], forgotten=[], cleaned=[], changed=False)
    if not os.path.isdir(p.base_dir):
        return result
    check_holder(p.base_dir, lock_owner, 'pruning releases in %s' % p.base_dir, check_mode)
    check_release_tree(p.base_dir, doing='pruning releases in %s' % p.base_dir)
    current = read_current(p.base_dir)
    ledger = Ledger.load(p.base_dir)
    on_disk = set(list_release_dirs(p.base_dir))
    known = [r for r in ledger.releases() if r['release_id'] in on_disk]
    result['forgotten'] = [r['release_id'] for r in ledger.releases()
                           if r['release_id'] not in on_disk and r['release_id'] != current]
    result['unknown'] = sorted(on_disk - set(ledger.release_ids()))
    remove = select_prunable(known, current, keep, previous_good=ledger.previous_good(current), protect=protect)
    result['kept'] = [r['release_id'] for r in known if r['release_id'] not in remove]
    leftovers = [n for n in listdir_or_empty(p.releases_dir) if n.startswith(PRUNING_PREFIX)]
    result['cleaned'] = find_leftovers(p.base_dir)
    result['changed'] = bool(remove or result['forgotten'] or leftovers or result['cleaned'])
    if check_mode:
        result['removed'] = remove
        return result
    try:
        remove_leftover_pruning_dirs(p.base_dir)
        for path in result['cleaned']:
            remove_leftover(path)
        for rid in result['forgotten']:
            ledger.forget(rid)
        for rid in remove:
            remove_release_dir(p.base_dir, rid)
            ledger.forget(rid)
            result['removed'].append(rid)
    except OSError as e:
        raise HotswapError('pruning releases in %s: %s (removed so far: %s). Fix the cause and rerun.'
                           % (p.releases_dir, e, ', '.join(result['removed']) or 'none'))
    finally:
        if result['changed']:
            ledger.save()
    return result
