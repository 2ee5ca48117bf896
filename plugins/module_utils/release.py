# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The release tree on a host: names, paths, the ``current`` link and how it is switched.

Layout (ARCHITECTURE.md section 2)::

    <base_dir>/releases/<release_id>/<binary>
    <base_dir>/current -> releases/<release_id>      (relative link)
    <base_dir>/.hotswap/ledger.json
    <base_dir>/.hotswap/lock

Nothing here decides *which* release to use; that is the ledger's business.

base_dir may itself be a symlink (``/opt/app -> /data/app``): the operator chose it. Below it no
link is followed but ``current``: ``releases/``, ``releases/<id>`` and ``.hotswap`` must be real
directories, so that nothing is staged, activated or pruned outside base_dir.
"""

from __future__ import annotations

import collections
import errno
import os
import re
import secrets
import shutil
import stat
import time

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError, listdir_or_empty, unlink_quietly

RELEASES_DIR = 'releases'
CURRENT_LINK = 'current'
STATE_DIR = '.hotswap'
LEDGER_FILE = 'ledger.json'
LOCK_FILE = 'lock'
TEMP_LINK_PREFIX = '.current.tmp-'
PRUNING_PREFIX = '.pruning-'
# binary_upload stages into releases/<id>/.<name>.partial-<random> (see artifact.partial_file).
PARTIAL_INFIX = '.partial-'
# A release with files, environment or an archive is built in releases/.staging-<id>-<random>/.
STAGING_PREFIX = '.staging-'
# Leftovers younger than this may belong to a run still going; older ones are from a killed run.
LEFTOVER_MIN_AGE = 3600
RELEASE_ID_MAX_LEN = 128
STATE_DIR_MODE = 0o750

_RELEASE_ID_RE = re.compile(r'^[A-Za-z0-9._+-]+$')

ReleasePaths = collections.namedtuple(
    'ReleasePaths',
    ['base_dir', 'releases_dir', 'release_dir', 'current', 'state_dir', 'ledger', 'lock'],
)


def validate_release_id(rid):
    """Return ``rid`` if it is a safe release directory name, else raise HotswapError."""
    fix = ('Use a name made of letters, digits, ".", "_", "+" and "-" (at most %d characters), '
           'for example "<version>-<first 12 hex of sha256>".' % RELEASE_ID_MAX_LEN)
    if not isinstance(rid, str) or not rid:
        raise HotswapError('checking release_id: it is empty. %s' % fix)
    if len(rid) > RELEASE_ID_MAX_LEN:
        raise HotswapError('checking release_id %r: it is %d characters long. %s' % (rid, len(rid), fix))
    if '/' in rid or '..' in rid:
        raise HotswapError('checking release_id %r: it contains "/" or "..". %s' % (rid, fix))
    if rid.startswith('.'):
        raise HotswapError('checking release_id %r: it starts with "." (reserved for temporary entries). %s'
                           % (rid, fix))
    if not _RELEASE_ID_RE.match(rid):
        raise HotswapError('checking release_id %r: it contains characters other than letters, digits, '
                           '".", "_", "+" and "-". %s' % (rid, fix))
    return rid


def validate_base_dir(path):
    """Return ``path`` normalized (no trailing or doubled slashes) if it is a usable base_dir.

    Refuses relative paths, ``..`` components and ``/`` itself.
    """
    fix = 'Give an absolute path without ".." such as "/opt/myapp".'
    if not isinstance(path, str) or not path:
        raise HotswapError('checking base_dir: it is empty. %s' % fix)
    if not os.path.isabs(path):
        raise HotswapError('checking base_dir %r: it is not an absolute path. %s' % (path, fix))
    if '..' in path.split('/'):
        raise HotswapError('checking base_dir %r: it contains a ".." component. %s' % (path, fix))
    normalized = '/' + os.path.normpath(path).lstrip('/')
    if normalized == '/':
        raise HotswapError('checking base_dir %r: it is the root directory. %s' % (path, fix))
    return normalized


def paths(base_dir, rid=None):
    """All paths of the release tree under ``base_dir`` (``release_dir`` is None without ``rid``)."""
    base_dir = validate_base_dir(base_dir)
    releases_dir = os.path.join(base_dir, RELEASES_DIR)
    state_dir = os.path.join(base_dir, STATE_DIR)
    release_dir = None
    if rid is not None:
        release_dir = os.path.join(releases_dir, validate_release_id(rid))
    return ReleasePaths(
        base_dir=base_dir,
        releases_dir=releases_dir,
        release_dir=release_dir,
        current=os.path.join(base_dir, CURRENT_LINK),
        state_dir=state_dir,
        ledger=os.path.join(state_dir, LEDGER_FILE),
        lock=os.path.join(state_dir, LOCK_FILE),
    )


def link_target(rid):
    """The relative target ``current`` gets for release ``rid``: ``releases/<rid>``."""
    return RELEASES_DIR + '/' + validate_release_id(rid)


def fsync_dir(path):
    """Flush a directory's entries (renames, new links) to disk.

    Filesystems that cannot fsync a directory (EINVAL) are tolerated.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def read_current(base_dir):
    """Release id ``current`` points to, or None when there is no ``current``.

    Raises HotswapError when ``current`` is a real file/directory or a link that does not point
    at ``releases/<valid id>`` (absolute links into this base_dir's releases/ are accepted).
    The release directory itself need not exist (see ``current_is_dangling``).
    """
    p = paths(base_dir)
    if not os.path.lexists(p.current):
        return None
    if not os.path.islink(p.current):
        kind = 'directory' if os.path.isdir(p.current) else 'file'
        raise HotswapError(
            'reading %s: it is a real %s, not a symlink. Move it away (for example into '
            '%s/<some id>/) so hotswap.deploy can manage it as a link; it is never deleted automatically.'
            % (p.current, kind, p.releases_dir))
    target = os.readlink(p.current)
    if os.path.isabs(target):
        rel = os.path.relpath(os.path.normpath(target), p.base_dir)
    else:
        rel = os.path.normpath(target)
    parts = rel.split('/')
    if len(parts) == 2 and parts[0] == RELEASES_DIR:
        try:
            return validate_release_id(parts[1])
        except HotswapError:
            pass
    raise HotswapError(
        'reading %s: it points to %r, outside %s/. Point it at a release with '
        '"ln -sfn releases/<release_id> %s" or remove the link.'
        % (p.current, target, p.releases_dir, p.current))


def current_is_dangling(base_dir):
    """True when ``current`` is a link whose release directory does not exist."""
    p = paths(base_dir)
    return os.path.islink(p.current) and not os.path.exists(p.current)


def ensure_state_dir(base_dir):
    """Create ``<base_dir>/.hotswap`` (mode 0750) if needed; base_dir itself must exist."""
    p = paths(base_dir)
    try:
        os.mkdir(p.state_dir, STATE_DIR_MODE)
    except FileExistsError:
        if os.path.islink(p.state_dir):
            raise HotswapError('writing the ledger or the deploy lock into %s: it is a symlink (to %s), and they are '
                               'kept only in a real directory inside base_dir. Replace the link with a real directory '
                               '(copy the ledger.json of its target into it).'
                               % (p.state_dir, _readlink_or_unknown(p.state_dir)))
        if not os.path.isdir(p.state_dir):
            raise HotswapError('creating %s: a file with that name exists. Move it away.' % p.state_dir)
        return p.state_dir
    os.chmod(p.state_dir, STATE_DIR_MODE)  # mkdir's mode is filtered by the umask
    return p.state_dir


def list_release_dirs(base_dir):
    """Sorted names of the release directories on disk.

    Hidden entries (temporary upload or pruning directories) and names that are not valid
    release ids are ignored. A missing ``releases/`` gives an empty list.
    """
    p = paths(base_dir)
    found = []
    for name in listdir_or_empty(p.releases_dir):
        if name.startswith('.'):
            continue
        try:
            validate_release_id(name)
        except HotswapError:
            continue
        full = os.path.join(p.releases_dir, name)
        if os.path.isdir(full) and not os.path.islink(full):
            found.append(name)
    return found


def _readlink_or_unknown(path):
    try:
        return os.readlink(path)
    except OSError:
        return 'an unknown target'


def _check_real_dir(path, doing, link_fix, file_fix):
    """Refuse ``path`` when it is a symlink or not a directory; a missing path is fine."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISLNK(st.st_mode):
        raise HotswapError('%s: %s is a symlink (to %s); hotswap.deploy follows no link below base_dir but '
                           'current, so nothing is written or run outside base_dir. %s'
                           % (doing, path, _readlink_or_unknown(path), link_fix))
    if not stat.S_ISDIR(st.st_mode):
        raise HotswapError('%s: %s is not a directory. %s' % (doing, path, file_fix))


def check_release_tree(base_dir, rid=None, doing=None):
    """Refuse a ``releases/`` (or ``releases/<rid>``) that is a symlink or a file; missing ones are fine.

    base_dir itself may be a link. Returns ``paths(base_dir, rid)``.
    """
    p = paths(base_dir, rid)
    doing = doing or 'checking the release tree of %s' % p.base_dir
    _check_real_dir(p.releases_dir, doing,
                    'Make it a real directory (move the releases of its target into it), or make base_dir '
                    'itself the link, for example /opt/app -> /data/app.',
                    'Move it away; hotswap.deploy creates the directory.')
    if rid is not None:
        fix = ('Remove it (rm %s; a link\'s target is left alone) and stage the release again with '
               'hotswap.deploy.binary_upload.' % p.release_dir)
        _check_real_dir(p.release_dir, doing, fix, fix)
    return p


def check_release_dir(base_dir, rid):
    """Raise HotswapError unless ``releases/<rid>`` is a non-empty real directory. Returns its path."""
    p = check_release_tree(base_dir, rid, 'activating release %s' % rid)
    if not os.path.isdir(p.release_dir):
        raise HotswapError(
            'activating release %s: %s does not exist. Stage it first (hotswap.deploy.binary_upload), '
            'or check release_id against hotswap.deploy.release_info.' % (rid, p.release_dir))
    if not os.listdir(p.release_dir):
        raise HotswapError(
            'activating release %s: %s is empty. Stage the release again (hotswap.deploy.binary_upload) '
            'before activating it.' % (rid, p.release_dir))
    return p.release_dir


def check_release_binary(base_dir, rid, binary=None, sha256=None):
    """Refuse to activate ``releases/<rid>`` unless its binary is complete. Returns the binary's path.

    With ``sha256`` (what the ledger recorded at staging) the binary must be a regular file with
    that digest. Without it (a ledger older than digests) the named binary must be an executable
    regular file; with no name either (a release put there by hand, not in the ledger) some
    executable regular file that is not hidden must be at the top of the release directory.
    Partial uploads (``.<name>.partial-*``) never count.
    """
    p = paths(base_dir, rid)
    doing = 'activating release %s' % rid
    partials = [n for n in listdir_or_empty(p.release_dir) if n.startswith('.') and PARTIAL_INFIX in n]
    left = (' (only %s is there: an upload was interrupted)' % ', '.join(partials)) if partials else ''
    restage = ('Stage the release again with hotswap.deploy.binary_upload (same version and checksum), then '
               'activate it; or activate another release.')
    replace = ('Releases are immutable: remove %s (switch current away first if it points there) and stage the '
               'release again with hotswap.deploy.binary_upload, or activate another release.' % p.release_dir)
    if not binary:
        for name in listdir_or_empty(p.release_dir):
            path = os.path.join(p.release_dir, name)
            if not name.startswith('.') and _is_executable_file(path):
                return path
        raise HotswapError('%s: %s holds no executable file%s, and the ledger does not name its binary (the '
                           'release is not in the ledger). Put the binary there as an executable file (mode 0755), '
                           'or stage the release with hotswap.deploy.binary_upload.' % (doing, p.release_dir, left))
    path = os.path.join(p.release_dir, binary)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise HotswapError('%s: its binary %s is missing%s. %s' % (doing, path, left, restage))
    except OSError as e:
        raise HotswapError('%s: cannot check its binary %s (%s). Run with become as the user that deploys.'
                           % (doing, path, e.strerror or e))
    if not stat.S_ISREG(st.st_mode):
        kind = 'symlink' if stat.S_ISLNK(st.st_mode) else 'directory' if stat.S_ISDIR(st.st_mode) else 'special file'
        raise HotswapError('%s: its binary %s is a %s, not a regular file. %s' % (doing, path, kind, replace))
    if not sha256:
        if not st.st_mode & 0o111:
            raise HotswapError('%s: its binary %s is not executable (mode %04o) and the ledger has no digest to '
                               'verify it by. If it is the right binary, make it executable (chmod 0755 %s); or '
                               'stage the release with hotswap.deploy.binary_upload.'
                               % (doing, path, stat.S_IMODE(st.st_mode), path))
        return path
    # Imported here: artifact imports this module.
    from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import sha256_file
    try:
        digest = sha256_file(path)
    except OSError as e:
        raise HotswapError('%s: cannot read its binary %s (%s). Run with become as the user that deploys.'
                           % (doing, path, e.strerror or e))
    if digest != sha256.lower():
        raise HotswapError('%s: its binary %s has sha256 %s, but the ledger recorded %s when it was staged: the file '
                           'was changed or damaged since. %s' % (doing, path, digest, sha256.lower(), replace))
    return path


def _is_executable_file(path):
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def switch_current(base_dir, rid):
    """Point ``current`` at ``releases/<rid>`` atomically; return the previous release id (or None).

    A temporary relative link ``.current.tmp-<random>`` is created in base_dir, renamed over
    ``current`` (rename(2) is atomic) and base_dir is fsynced. Nothing is changed when
    ``current`` is a real file/directory or the release directory is missing or empty; the
    temporary link is removed on any error.
    """
    p = paths(base_dir, rid)
    previous = read_current(p.base_dir)  # raises for a real file/dir or a foreign link
    check_release_dir(p.base_dir, rid)
    tmp = os.path.join(p.base_dir, TEMP_LINK_PREFIX + secrets.token_hex(8))
    try:
        os.symlink(link_target(rid), tmp)
        # A real directory could have appeared since read_current(); rename() would then
        # fail with EISDIR/ENOTEMPTY/ENOTDIR rather than replace it.
        os.rename(tmp, p.current)
        fsync_dir(p.base_dir)
    except OSError as e:
        unlink_quietly(tmp)
        raise HotswapError('activating release %s: switching %s failed: %s. Nothing was switched '
                           'unless %s now points to releases/%s; fix the cause and rerun.'
                           % (rid, p.current, e, p.current, rid))
    except BaseException:
        unlink_quietly(tmp)
        raise
    return previous


def remove_release_dir(base_dir, rid):
    """Delete ``releases/<rid>``, first renaming it to a hidden ``.pruning-*`` name.

    The rename means a half-deleted release is never visible under its own name. Refuses
    to delete the release ``current`` points to.
    """
    p = paths(base_dir, rid)
    if read_current(p.base_dir) == rid:
        raise HotswapError('pruning release %s: it is the current release. Activate another release '
                           'first.' % rid)
    if not os.path.lexists(p.release_dir):
        return False
    if os.path.islink(p.release_dir) or not os.path.isdir(p.release_dir):
        os.unlink(p.release_dir)
        return True
    doomed = os.path.join(p.releases_dir, PRUNING_PREFIX + rid + '-' + secrets.token_hex(4))
    os.rename(p.release_dir, doomed)
    fsync_dir(p.releases_dir)
    shutil.rmtree(doomed)
    return True


def remove_leftover_pruning_dirs(base_dir):
    """Delete ``releases/.pruning-*`` directories left by an interrupted prune; return their names."""
    p = paths(base_dir)
    removed = []
    for name in listdir_or_empty(p.releases_dir):
        if name.startswith(PRUNING_PREFIX):
            full = os.path.join(p.releases_dir, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.unlink(full)
            removed.append(name)
    return removed


def find_leftovers(base_dir, min_age=LEFTOVER_MIN_AGE, now=None):
    """Temp files a killed run left behind, older than ``min_age`` seconds.

    Partial uploads (``releases/<id>/.<name>.partial-*``, ``releases/.artifact.partial-*``), staging
    directories (``releases/.staging-*``) and temp links beside ``current`` (``.current.tmp-*``).
    Returns their paths; never anything else.
    """
    p = paths(base_dir)
    now = time.time() if now is None else now
    candidates = [os.path.join(p.base_dir, n) for n in listdir_or_empty(p.base_dir) if n.startswith(TEMP_LINK_PREFIX)]
    for rid in list_release_dirs(p.base_dir):
        rdir = os.path.join(p.releases_dir, rid)
        candidates.extend(os.path.join(rdir, n) for n in listdir_or_empty(rdir)
                          if n.startswith('.') and PARTIAL_INFIX in n)
    staging = [os.path.join(p.releases_dir, n) for n in listdir_or_empty(p.releases_dir)
               if n.startswith(STAGING_PREFIX) or (n.startswith('.') and PARTIAL_INFIX in n)]
    found = [path for path in staging if _older_than(path, now, min_age)]
    for path in candidates:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if now - st.st_mtime >= min_age and not stat.S_ISDIR(st.st_mode):
            found.append(path)
    return sorted(found)


def _older_than(path, now, min_age):
    try:
        return now - os.lstat(path).st_mtime >= min_age
    except FileNotFoundError:
        return False


def remove_leftover(path):
    """Delete one leftover of find_leftovers (a staging directory is deleted with its content)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        unlink_quietly(path)
