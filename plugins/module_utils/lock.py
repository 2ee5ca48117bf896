# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-host deploy lock ``<base_dir>/.hotswap/lock``, held for a whole deploy.

The lock is a file created with O_CREAT|O_EXCL holding JSON
``{"owner", "acquired_at", "acquired_epoch", "host"}``. ``owner`` is a deploy id chosen
by the controller (e.g. ``"<user>@<controller>:<play id>"``); taking the lock again with the
same owner is a no-op, so a deploy can re-run its lock task. The lock outlives the module
process on purpose: it is released by a later task (``state=absent``), by hand with
``force``, or taken over when older than ``stale_after`` seconds.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import socket
import time

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.release import ensure_state_dir, fsync_dir, paths

LOCK_MODE = 0o640
BASE_DIR_MODE = 0o755


def _iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def lock_content(owner, now=None):
    """The JSON object written to a new lock."""
    now = time.time() if now is None else now
    return {'owner': owner, 'acquired_at': _iso(now), 'acquired_epoch': int(now), 'host': socket.gethostname()}


def read_lock(base_dir):
    """The holder of the lock (dict as written, plus ``age`` in seconds), or None when free.

    An empty or unreadable lock (a crash while it was written) is reported with owner None,
    its age taken from the file's mtime.
    """
    path = paths(base_dir).lock
    try:
        with open(path, 'rb') as f:
            raw = f.read()
            mtime = os.fstat(f.fileno()).st_mtime
    except FileNotFoundError:
        return None
    except OSError as e:
        raise HotswapError('reading the deploy lock %s: %s. Check permissions (use become).' % (path, e))
    return _parse_lock(raw, mtime)


def _parse_lock(raw, mtime, now=None):
    try:
        holder = json.loads(raw.decode('utf-8'))
        if not isinstance(holder, dict):
            raise ValueError('not an object')
    except ValueError:
        holder = {'owner': None, 'acquired_at': _iso(mtime), 'acquired_epoch': int(mtime), 'host': None,
                  'corrupt': True}
    epoch = holder.get('acquired_epoch')
    if not isinstance(epoch, (int, float)) or isinstance(epoch, bool):
        epoch = mtime
    now = time.time() if now is None else now
    holder['age'] = max(0, int(now - epoch))
    holder['_raw'] = raw
    return holder


def public_holder(holder):
    """The holder without private fields, for module results."""
    if holder is None:
        return None
    return dict((k, v) for k, v in holder.items() if not k.startswith('_'))


def describe_holder(holder):
    who = repr(holder.get('owner')) if holder.get('owner') else 'an unknown owner (the lock file is empty or corrupt)'
    where = ' on %s' % holder['host'] if holder.get('host') else ''
    return '%s%s since %s (%d s ago)' % (who, where, holder.get('acquired_at'), holder.get('age', 0))


def acquire(base_dir, owner, stale_after=0, check_mode=False):
    """Take the deploy lock of ``base_dir`` for ``owner``.

    Returns dict(changed, holder, taken_over): ``holder`` is the lock as it is (or would be)
    after the call, ``taken_over`` the stale holder replaced, if any. Held by the same owner:
    changed=False. Held by another owner: HotswapError naming the holder, unless
    ``stale_after`` > 0 and the lock is older than that many seconds. Creates base_dir
    (mode 0755) and ``.hotswap/`` (0750) when missing, and notes them in the lock (``created``)
    so that ``release`` removes them again when nothing else was put there.
    """
    p = paths(base_dir)
    _check_owner(owner, 'acquiring the deploy lock %s' % p.lock)
    if isinstance(stale_after, bool) or not isinstance(stale_after, int) or stale_after < 0:
        raise HotswapError('acquiring the deploy lock %s: stale_after must be an integer >= 0 (seconds; '
                           '0 = never take over), not %r.' % (p.lock, stale_after))
    holder = read_lock(p.base_dir)
    taken_over = None
    if holder is not None:
        if holder.get('owner') == owner:
            return dict(changed=False, holder=public_holder(holder), taken_over=None)
        if not (stale_after > 0 and holder['age'] > stale_after):
            raise _held_error(p.lock, owner, holder, stale_after)
        taken_over = holder
    new = lock_content(owner)
    if check_mode:
        return dict(changed=True, holder=new, taken_over=public_holder(taken_over))
    try:
        new['created'] = dirs_to_create(p)
        if not os.path.isdir(p.base_dir):
            os.makedirs(p.base_dir, BASE_DIR_MODE)
            os.chmod(p.base_dir, BASE_DIR_MODE)  # makedirs' mode is filtered by the umask
        ensure_state_dir(p.base_dir)
    except OSError as e:
        raise HotswapError('acquiring the deploy lock %s: creating %s failed: %s. Check permissions '
                           '(use become).' % (p.lock, p.state_dir, e))
    if taken_over is not None:
        _remove_stale(p.lock, owner, taken_over)
    try:
        _create_exclusive(p.lock, new)
    except FileExistsError:
        # Someone else got there between our read and our create.
        holder = read_lock(p.base_dir)
        if holder is not None and holder.get('owner') == owner:
            return dict(changed=False, holder=public_holder(holder), taken_over=None)
        raise _held_error(p.lock, owner, holder or {'owner': None, 'acquired_at': None, 'age': 0}, stale_after)
    except OSError as e:
        raise HotswapError('acquiring the deploy lock %s: %s. Check permissions and free space.' % (p.lock, e))
    fsync_dir(p.state_dir)
    return dict(changed=True, holder=new, taken_over=public_holder(taken_over))


def release(base_dir, owner=None, force=False, check_mode=False):
    """Remove the deploy lock of ``base_dir``.

    Returns dict(changed, holder=None, released): ``released`` is the holder removed, if any.
    A lock held by another owner (or any lock when ``owner`` is None) is only removed with
    ``force``; a missing lock is not an error (changed=False).
    """
    p = paths(base_dir)
    if owner is not None:
        _check_owner(owner, 'releasing the deploy lock %s' % p.lock)
    holder = read_lock(p.base_dir) if os.path.isdir(p.base_dir) else None
    if holder is None:
        return dict(changed=False, holder=None, released=None)
    if holder.get('owner') != owner and not force:
        if owner is None:
            raise HotswapError('releasing the deploy lock %s: it is held by %s and no owner was given. Give '
                               'the owner that took it, or force=true if that deploy is dead.'
                               % (p.lock, describe_holder(holder)))
        raise HotswapError('releasing the deploy lock %s for %r: it is held by %s. Leave it to that deploy, '
                           'or pass force=true if that deploy is dead.' % (p.lock, owner, describe_holder(holder)))
    if not check_mode:
        try:
            os.unlink(p.lock)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise HotswapError('releasing the deploy lock %s: %s. Check permissions (use become).' % (p.lock, e))
        fsync_dir(p.state_dir)
        remove_if_empty(holder.get('created'))
    return dict(changed=True, holder=None, released=public_holder(holder))


def dirs_to_create(p):
    """The directories acquire is about to create (base_dir and up, then .hotswap), deepest last."""
    missing = []
    path = p.base_dir
    while path and path != os.path.dirname(path) and not os.path.isdir(path):
        missing.insert(0, path)
        path = os.path.dirname(path)
    if not os.path.isdir(p.state_dir):
        missing.append(p.state_dir)
    return missing


def remove_if_empty(created):
    """Remove the directories a lock created, deepest first, while they are empty.

    A refused first deploy then leaves no trace on the host; a directory that got anything
    (a release, a ledger) stays.
    """
    if not isinstance(created, list):
        return []
    removed = []
    for path in reversed(created):
        if not isinstance(path, str) or not os.path.isabs(path):
            break
        try:
            os.rmdir(path)
        except OSError:
            break
        removed.append(path)
    return removed


def _check_owner(owner, doing):
    if not isinstance(owner, str) or not owner.strip():
        raise HotswapError('%s: owner is empty. Give a deploy id such as "<user>@<controller>:<play id>".' % doing)


def _held_error(path, owner, holder, stale_after):
    stale_hint = '' if stale_after else ', or set stale_after to take over locks older than that many seconds'
    return HotswapError(
        'acquiring the deploy lock %s for %r: it is held by %s. Wait for that deploy to finish and retry; '
        'if it is dead, remove the lock with hotswap.deploy.deploy_lock state=absent force=true%s.'
        % (path, owner, describe_holder(holder), stale_hint))


def _create_exclusive(path, content):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, LOCK_MODE)
    try:
        os.fchmod(fd, LOCK_MODE)
        os.write(fd, (json.dumps(content, sort_keys=True) + '\n').encode('utf-8'))
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale(path, owner, stale):
    """Move the stale lock aside and delete it, unless it changed since we judged it stale."""
    aside = '%s.stale-%s' % (path, secrets.token_hex(4))
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # already gone: the exclusive create decides
    try:
        with open(aside, 'rb') as f:
            moved = f.read()
        if moved != stale['_raw']:
            # Another deploy replaced the stale lock in between: put its lock back.
            try:
                os.link(aside, path)
            except OSError:
                pass
            raise HotswapError('acquiring the deploy lock %s for %r: the stale lock was replaced by another deploy '
                               'while taking it over. Retry.' % (path, owner))
    finally:
        try:
            os.unlink(aside)
        except OSError:
            pass
