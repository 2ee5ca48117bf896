# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The per-host deploy lock ``<base_dir>/.hotswap/lock``, held for a whole deploy.

The lock holds JSON ``{"owner", "reclaim_key", "acquired_at", "acquired_epoch", "host", "created"}``.
It is written complete to a temp file and linked into place (``link(2)`` fails when a lock
exists), so a lock file is never empty or half written, whatever happens to the writer.

``owner`` names one run of a deploy (the roles: app, release and AWX job, see the filter
``hotswap.deploy.lock_owner``); taking the lock again with the same owner is a no-op.
``reclaim_key`` names the deploy without the run: a lock with the same key is taken over, so a
relaunched AWX job takes back the lock of the cancelled one, whose later writes are then refused.
A takeover (reclaim, or a lock older than ``stale_after``) renames the old lock aside - only one
racer's rename can succeed - checks it moved the lock it judged, then links the new one. Every
change of the lock file also holds ``flock`` on ``.hotswap/`` where the filesystem has it, so
racers judge and change the lock one after the other.

The lock outlives the module process on purpose: it is released by a later task
(``state=absent``), by hand with ``force``, or taken over as above. Modules that write the
release tree call ``check_holder`` first and refuse while anyone else holds the lock.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import grp
import json
import os
import pwd
import secrets
import socket
import tempfile
import time

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError, unlink_quietly
from ansible_collections.hotswap.deploy.plugins.module_utils.release import ensure_state_dir, fsync_dir, paths

LOCK_MODE = 0o640
BASE_DIR_MODE = 0o755
# A lock dated further ahead of this host's clock than this was not written by a sane clock.
CLOCK_SLACK = 60
# Seconds to wait for another process that is changing the lock file (a few syscalls normally).
GUARD_WAIT = 10
# errnos of flock on a filesystem without it (some NFS and FUSE mounts): the link/rename protocol alone decides.
NO_FLOCK = frozenset((errno.EBADF, errno.EINVAL, errno.ENOLCK, errno.EOPNOTSUPP, getattr(errno, 'ENOTSUP', -1)))
FORCE_HINT = 'hotswap.deploy.deploy_lock state=absent force=true'


def _iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def lock_content(owner, now=None, reclaim_key=None):
    """The JSON object written to a new lock."""
    now = time.time() if now is None else now
    return {'owner': owner, 'reclaim_key': reclaim_key, 'acquired_at': _iso(now), 'acquired_epoch': int(now),
            'host': socket.gethostname()}


def read_lock(base_dir):
    """The holder of the lock (dict as written, plus ``age`` in seconds), or None when free.

    A lock that is not JSON with an owner is reported with ``corrupt: true``, owner None and its
    age taken from the file's mtime; one dated in the future with ``future: true`` and age 0.
    """
    path = paths(base_dir).lock
    try:
        with open(path, 'rb') as f:
            raw = f.read()
            mtime = os.fstat(f.fileno()).st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise HotswapError('reading the deploy lock %s: %s. Check permissions (use become).' % (path, e))
    return _parse_lock(raw, mtime)


def _is_name(value):
    return isinstance(value, str) and bool(value.strip())


def _parse_lock(raw, mtime, now=None):
    try:
        holder = json.loads(raw.decode('utf-8'))
        if not isinstance(holder, dict) or not _is_name(holder.get('owner')):
            raise ValueError('no owner')
    except ValueError:  # also bad UTF-8
        holder = {'owner': None, 'reclaim_key': None, 'acquired_at': _iso(mtime), 'acquired_epoch': int(mtime),
                  'host': None, 'corrupt': True}
    epoch = holder.get('acquired_epoch')
    if not isinstance(epoch, (int, float)) or isinstance(epoch, bool):
        epoch = mtime
    now = time.time() if now is None else now
    if epoch > now + CLOCK_SLACK:
        holder['future'] = True
    holder['age'] = max(0, int(now - epoch))
    holder['_raw'] = raw
    return holder


def public_holder(holder):
    """The holder without private fields, for module results."""
    if holder is None:
        return None
    return dict((k, v) for k, v in holder.items() if not k.startswith('_'))


def describe_holder(holder):
    """Who holds the lock, for messages: "held by <this>"."""
    if holder.get('corrupt'):
        return ('no one known: the lock file is unreadable (empty, or not JSON with an owner - a lock write that failed, '
                'for example on a full disk, or a damaged file; last written %s, %d s ago)'
                % (holder.get('acquired_at'), holder.get('age', 0)))
    where = ' on %s' % holder['host'] if holder.get('host') else ''
    if holder.get('future'):
        return ('%r%s since %s, a date in the future on this host (its clock was set back since, or the file was '
                'edited)' % (holder.get('owner'), where, holder.get('acquired_at')))
    return '%r%s since %s (%d s ago)' % (holder.get('owner'), where, holder.get('acquired_at'), holder.get('age', 0))


def lock_fix(holder, stale_after=0):
    """What to do about a lock someone else holds: the end of every refusal."""
    if holder.get('corrupt'):
        return ('No deploy can hold an unreadable lock: make sure no deploy of this app is running on the host, then '
                'remove it with %s.' % FORCE_HINT)
    if holder.get('future'):
        return ('Its age cannot be judged, so stale_after never takes it over. Check the host clock; if that deploy is '
                'dead, remove the lock with %s.' % FORCE_HINT)
    if holder.get('reclaim_key'):
        again = 'relaunch that same deploy (%r takes its lock back)' % holder['reclaim_key']
    else:
        again = 'rerun it with the same owner (it takes its lock back)'
    stale_hint = '' if stale_after else ', or set stale_after to take over locks older than that many seconds'
    return ('Wait for that deploy to finish and retry. If it is dead, %s or remove the lock with %s%s.'
            % (again, FORCE_HINT, stale_hint))


def check_holder(base_dir, lock_owner=None, doing=None, check_mode=False):
    """Refuse to write into ``base_dir``'s release tree while anyone but ``lock_owner`` holds its lock.

    The modules that write (binary_upload, release_activate, release_prune) call this first.
    Without ``lock_owner`` the write goes ahead only when no lock is there (a standalone run);
    with it, only when that owner holds the lock (missing means it was removed under the deploy).
    Check mode writes nothing and is not refused. Returns the holder (or None).
    """
    p = paths(base_dir)
    doing = doing or 'writing to %s' % p.base_dir
    if lock_owner is not None:
        _check_owner(lock_owner, doing, 'lock_owner')
    if check_mode:
        return None
    holder = read_lock(p.base_dir)
    if holder is None:
        if lock_owner is None:
            return None
        raise HotswapError(
            '%s as %r: the deploy lock %s is not there, so this deploy does not hold it (someone removed it with '
            'force=true, or it was never taken). Nothing was written. Make sure no other deploy is running on the '
            'host, take the lock with hotswap.deploy.deploy_lock and rerun; or leave out lock_owner to write '
            'without a lock.' % (doing, lock_owner, p.lock))
    if lock_owner is not None and _is_mine(holder, lock_owner):
        return holder
    if lock_owner is None:
        fix = lock_fix(holder)
        if not holder.get('corrupt'):
            fix = ('If this task is part of that deploy, pass lock_owner: %r (the owner given to '
                   'hotswap.deploy.deploy_lock). Otherwise %s' % (holder['owner'], fix[0].lower() + fix[1:]))
        raise HotswapError('%s: the deploy lock %s is held by %s, and this task gave no lock_owner. Nothing was '
                           'written. %s' % (doing, p.lock, describe_holder(holder), fix))
    raise HotswapError('%s as %r: the deploy lock %s is held by %s. Nothing was written. %s'
                       % (doing, lock_owner, p.lock, describe_holder(holder), lock_fix(holder)))


def acquire(base_dir, owner, stale_after=0, check_mode=False, reclaim_key=None):
    """Take the deploy lock of ``base_dir`` for ``owner``.

    Returns dict(changed, holder, taken_over, reclaimed): ``holder`` is the lock as it is (or would
    be) after the call, ``taken_over`` the lock replaced, if any, ``reclaimed`` whether it was
    replaced because its ``reclaim_key`` is ours (else it was stale). Held by the same owner:
    changed=False. Held by another owner: HotswapError naming the holder, unless the lock has our
    ``reclaim_key``, or ``stale_after`` > 0 and the lock is older than that many seconds. Creates
    base_dir (mode 0755) and ``.hotswap/`` (0750) when missing, and notes them in the lock
    (``created``) so that ``release`` removes them again when nothing else was put there.
    """
    p = paths(base_dir)
    doing = 'acquiring the deploy lock %s' % p.lock
    _check_owner(owner, doing)
    if reclaim_key is not None:
        _check_owner(reclaim_key, doing, 'reclaim_key')
    if isinstance(stale_after, bool) or not isinstance(stale_after, int) or stale_after < 0:
        raise HotswapError('%s: stale_after must be an integer >= 0 (seconds; 0 = never take over), not %r.'
                           % (doing, stale_after))
    holder = read_lock(p.base_dir)
    if _is_mine(holder, owner):
        return _unchanged(holder)
    taken_over = _judge(p, owner, reclaim_key, holder, stale_after)
    new = lock_content(owner, reclaim_key=reclaim_key)
    if check_mode:
        return _taken(new, taken_over, reclaim_key)
    for _attempt in range(3):
        new['created'] = created = _make_dirs(p)
        try:
            with _guard(p.state_dir):
                # Judged again under the guard: what counts is the lock as it is now.
                holder = read_lock(p.base_dir)
                if _is_mine(holder, owner):
                    return _unchanged(holder)
                taken_over = _judge(p, owner, reclaim_key, holder, stale_after)
                if taken_over is not None and not created and isinstance(taken_over.get('created'), list):
                    # What the dead run's lock created is still to be removed when it stays empty.
                    new['created'] = [d for d in taken_over['created'] if isinstance(d, str)]
                _put(p, owner, new, taken_over, stale_after)
                return _taken(new, taken_over, reclaim_key)
        except _Gone:
            continue  # a release removed the .hotswap/ it had created while we waited: make it again
        except HotswapError:
            remove_if_empty(p.base_dir, created)
            raise
    raise HotswapError('%s: %s was removed three times while the lock was being taken (other deploys releasing '
                       'theirs). Retry.' % (doing, p.state_dir))


def takeover_warning(result):
    """What a module warns when it took a lock over (stale) or back (our reclaim key), else None."""
    taken_over = result.get('taken_over') or {}
    if result.get('reclaimed'):
        return ('took back the deploy lock of %r taken at %s (the same deploy %r, relaunched); that run can write no '
                'more' % (taken_over.get('owner'), taken_over.get('acquired_at'), taken_over.get('reclaim_key')))
    if taken_over:
        return 'took over the stale deploy lock of %r taken at %s' % (
            taken_over.get('owner'), taken_over.get('acquired_at'))
    return None


def release(base_dir, owner=None, force=False, check_mode=False):
    """Remove the deploy lock of ``base_dir``.

    Returns dict(changed, holder=None, released): ``released`` is the holder removed, if any.
    A lock held by another owner (or any lock when ``owner`` is None) is only removed with
    ``force``; a missing lock is not an error (changed=False).
    """
    p = paths(base_dir)
    if owner is not None:
        _check_owner(owner, 'releasing the deploy lock %s' % p.lock)
    holder = read_lock(p.base_dir)
    if holder is None:
        return dict(changed=False, holder=None, released=None)
    _check_release(p, holder, owner, force)
    if check_mode:
        return dict(changed=True, holder=None, released=public_holder(holder))
    try:
        with _guard(p.state_dir):
            holder = read_lock(p.base_dir)
            if holder is None:
                return dict(changed=False, holder=None, released=None)
            _check_release(p, holder, owner, force)
            try:
                os.unlink(p.lock)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise HotswapError('releasing the deploy lock %s: %s. Check permissions (use become).' % (p.lock, e))
            fsync_dir(p.state_dir)
            remove_if_empty(p.base_dir, holder.get('created'))
    except _Gone:
        return dict(changed=False, holder=None, released=None)  # .hotswap/ went, the lock with it
    return dict(changed=True, holder=None, released=public_holder(holder))


def dirs_to_create(p):
    """The directories acquire creates and may remove again: base_dir and .hotswap, when missing.

    Missing parents of base_dir are created too, but never noted: only what is inside base_dir
    is ever removed.
    """
    return [d for d in (p.base_dir, p.state_dir) if not os.path.isdir(d)]


def remove_if_empty(base_dir, created):
    """Remove the directories a lock created, deepest first, while they are empty.

    A refused first deploy then leaves no trace on the host; a directory that got anything
    (a release, a ledger) stays. ``created`` comes from the lock file, which anyone may have
    written: an entry that is not base_dir or inside it (after resolving links) is skipped.
    """
    if not isinstance(created, list):
        return []
    base = os.path.realpath(base_dir)
    removed = []
    for path in reversed(created):
        if not _inside(base, path):
            continue
        try:
            os.rmdir(path)
        except OSError:
            break
        removed.append(path)
    return removed


def _inside(base_real, path):
    if not isinstance(path, str) or not os.path.isabs(path) or os.path.islink(path):
        return False
    real = os.path.realpath(path)
    return real == base_real or real.startswith(base_real.rstrip(os.sep) + os.sep)


def _check_owner(owner, doing, what='owner'):
    if not _is_name(owner):
        raise HotswapError('%s: %s is empty. Give a deploy id such as "myapp deploy 1.4.2 (AWX job 42)" '
                           '(filter hotswap.deploy.lock_owner).' % (doing, what))


def _is_mine(holder, owner):
    return holder is not None and not holder.get('corrupt') and holder.get('owner') == owner


def _unchanged(holder):
    return dict(changed=False, holder=public_holder(holder), taken_over=None, reclaimed=False)


def _reclaims(holder, reclaim_key):
    return bool(reclaim_key) and not holder.get('corrupt') and holder.get('reclaim_key') == reclaim_key


def _taken(new, taken_over, reclaim_key):
    return dict(changed=True, holder=new, taken_over=public_holder(taken_over),
                reclaimed=taken_over is not None and _reclaims(taken_over, reclaim_key))


def _judge(p, owner, reclaim_key, holder, stale_after):
    """None when the lock is free, the holder when it may be taken over; else HotswapError."""
    if holder is None:
        return None
    if _reclaims(holder, reclaim_key):
        return holder
    if stale_after > 0 and not holder.get('future') and holder['age'] > stale_after:
        return holder
    raise _held_error(p.lock, owner, holder, stale_after)


def _held_error(path, owner, holder, stale_after):
    who = 'it is held by' if holder.get('corrupt') else 'another deploy holds the deploy lock:'
    return HotswapError('acquiring the deploy lock %s for %r: %s %s. %s'
                        % (path, owner, who, describe_holder(holder), lock_fix(holder, stale_after)))


def _check_release(p, holder, owner, force):
    if force or (owner is not None and _is_mine(holder, owner)):
        return
    if holder.get('corrupt') or holder.get('future'):
        raise HotswapError('releasing the deploy lock %s: it is held by %s. %s'
                           % (p.lock, describe_holder(holder), lock_fix(holder)))
    if owner is None:
        raise HotswapError('releasing the deploy lock %s: it is held by %s and no owner was given. Give '
                           'the owner that took it, or force=true if that deploy is dead.'
                           % (p.lock, describe_holder(holder)))
    raise HotswapError('releasing the deploy lock %s for %r: it is held by %s. Leave it to that deploy, '
                       'or pass force=true if that deploy is dead.' % (p.lock, owner, describe_holder(holder)))


def _make_dirs(p):
    created = dirs_to_create(p)
    try:
        if not os.path.isdir(p.base_dir):
            os.makedirs(p.base_dir, BASE_DIR_MODE, exist_ok=True)
            os.chmod(p.base_dir, BASE_DIR_MODE)  # makedirs' mode is filtered by the umask
        ensure_state_dir(p.base_dir)
    except OSError as e:
        raise HotswapError('acquiring the deploy lock %s: creating %s failed: %s. Check permissions '
                           '(use become).' % (p.lock, p.state_dir, e))
    return created


class _Gone(Exception):
    """.hotswap/ was removed while waiting for the guard."""


@contextlib.contextmanager
def _guard(state_dir):
    """Hold flock on ``.hotswap/`` while the lock file is read, judged and changed."""
    try:
        fd = os.open(state_dir, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    except FileNotFoundError:
        raise _Gone()
    try:
        _flock(fd, state_dir)
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(state_dir))
        except FileNotFoundError:
            same = False
        if not same:
            raise _Gone()
        yield
    finally:
        os.close(fd)  # drops the flock


def _flock(fd, state_dir):
    deadline = time.monotonic() + GUARD_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise HotswapError('changing the deploy lock in %s: another process has held %s locked (flock) for '
                                   '%d s. Retry; if it persists, look for a hung process that has it open (fuser -v %s).'
                                   % (state_dir, state_dir, GUARD_WAIT, state_dir))
            time.sleep(0.01)
        except OSError as e:
            if e.errno in NO_FLOCK:
                return
            raise


def _put(p, owner, new, taken_over, stale_after):
    """Link a complete temp file to the lock path; a lock taken over is renamed aside first."""
    data = (json.dumps(new, sort_keys=True) + '\n').encode('utf-8')
    tmp = _write_temp(p, data)
    aside = None
    try:
        if taken_over is not None:
            aside = _move_aside(p, owner, taken_over, stale_after)
        try:
            os.link(tmp, p.lock)
        except FileExistsError:
            raise _lost(p, owner, stale_after)  # a lock appeared while the stale one was aside
        except OSError as e:
            if aside is not None:
                _put_back(aside, p.lock)
            raise HotswapError('acquiring the deploy lock %s: linking it into place failed: %s. base_dir must be on a '
                               'filesystem with hard links; check permissions (use become).' % (p.lock, e))
        if _read_raw(p.lock) != data:
            raise _lost(p, owner, stale_after)
        fsync_dir(p.state_dir)
    finally:
        unlink_quietly(tmp)
        unlink_quietly(aside)


def _write_temp(p, data):
    try:
        fd, tmp = tempfile.mkstemp(prefix='lock.new-', dir=p.state_dir)
    except OSError as e:
        raise HotswapError('acquiring the deploy lock %s: creating a temp file in %s failed: %s. Check permissions '
                           '(use become) and free space.' % (p.lock, p.state_dir, e))
    try:
        with os.fdopen(fd, 'wb') as f:
            os.fchmod(f.fileno(), LOCK_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        unlink_quietly(tmp)
        raise HotswapError('acquiring the deploy lock %s: writing it failed: %s. The lock was not taken and nothing '
                           'was left behind; free space on the host (df %s) and retry.' % (p.lock, e, p.base_dir))
    return tmp


def _move_aside(p, owner, stale, stale_after):
    """Rename the lock judged ``stale`` aside; only one racer's rename of it can succeed."""
    aside = '%s.taken-over-%s' % (p.lock, secrets.token_hex(6))
    try:
        os.rename(p.lock, aside)
    except FileNotFoundError:
        raise _lost(p, owner, stale_after)  # another racer moved it, or its owner released it
    if _read_raw(aside) != stale['_raw']:
        # Not the lock judged stale: another deploy's newer lock. Back it goes (link: never over a newer one).
        _put_back(aside, p.lock)
        unlink_quietly(aside)
        raise _lost(p, owner, stale_after)
    return aside


def _put_back(aside, path):
    try:
        os.link(aside, path)
    except OSError:
        pass


def _read_raw(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:
        return None


def _lost(p, owner, stale_after):
    """The error of a racer that lost: the holder as it is now."""
    holder = read_lock(p.base_dir)
    if holder is not None:
        return _held_error(p.lock, owner, holder, stale_after)
    return HotswapError('acquiring the deploy lock %s for %r: the lock changed while it was being taken over (another '
                        'deploy took it, or released it). Retry.' % (p.lock, owner))


def user_state(name):
    """``{exists, group, home, shell}`` of a local user: what the deploy needs to know to leave it alone."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return dict(exists=False, group=None, home=None, shell=None)
    try:
        group = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        group = str(entry.pw_gid)
    return dict(exists=True, group=group, home=entry.pw_dir, shell=entry.pw_shell)


def release_presence(base_dir, release_id):
    """``{release_present, host_platform}``: what a push needs to know before it transfers (nothing without an id)."""
    if not release_id:
        return dict(release_present=None, host_platform=None)
    from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import host_platform
    from ansible_collections.hotswap.deploy.plugins.module_utils.release import validate_release_id
    rid = validate_release_id(release_id)
    present = os.path.lexists(os.path.join(base_dir, 'releases', rid))
    return dict(release_present=present, host_platform=host_platform())
