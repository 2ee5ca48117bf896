# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Staging a whole release: artifact (a binary or an archive), release files and environment.

A new release is built in a hidden ``releases/.staging-<id>-<random>`` directory and renamed
to ``releases/<id>`` only when complete, so a release dir is never seen half-written and
nothing is ever written into a release that exists. When another release on the host holds
the same artifact (a config-only change), its binary (or archive members) are copied on the
host instead of transferred. Copied, not hard-linked: each release's binary is its own inode,
so "the service runs the binary of current" still tells releases apart.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile

from ansible_collections.hotswap.deploy.plugins.module_utils import archive as archives
from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import (
    already_staged,
    read_executable_format,
    sha256_file,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.release import (
    PRUNING_PREFIX,
    STAGING_PREFIX,
    fsync_dir,
    read_current,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.release_content import ENV_FILE, file_differences

HEAD_BYTES = 65536


class Content(object):
    """What a release holds besides the artifact bytes, checked and ready to write."""

    def __init__(self, files, env_bytes, manifest, fmt='binary', strip_components=0, max_size=None):
        self.files = files
        self.env_bytes = env_bytes
        self.manifest = manifest
        self.fmt = fmt
        self.strip_components = strip_components
        self.max_size = max_size

    @property
    def plain(self):
        """A binary alone: staged the way every earlier version did."""
        return self.fmt == 'binary' and not self.files and not self.env_bytes

    def ledger_fields(self, binary_sha256=None, members=None):
        fields = dict(files=self.manifest['files'], environment=self.manifest['environment'], artifact=self.fmt)
        if self.fmt != 'binary':
            fields.update(binary_sha256=binary_sha256, members=members)
        return fields


# ---------------------------------------------------------------------------
# archives on the controller and the host


def _original_name(name, strip):
    parts = [p for p in name.split('/') if p not in ('', '.')]
    return '/'.join(parts[strip:])


def member_head(path, fmt, binary, strip=0, size=HEAD_BYTES):
    """The first ``size`` bytes of ``binary`` inside the archive (after check_archive passed)."""
    if fmt == 'zip':
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if _original_name(info.filename, strip) == binary:
                    with z.open(info) as f:
                        return f.read(size)
    else:
        with tarfile.open(path, 'r:gz') as t:
            for info in t:
                if info.isfile() and _original_name(info.name, strip) == binary:
                    return t.extractfile(info).read(size)
    raise HotswapError('reading %s from the archive %s: it is not there. Name the executable inside the archive '
                       'in binary.' % (binary, os.path.basename(path)))


def check_archive_artifact(path, fmt, binary, strip=0, max_size=None, what=None):
    """Members checked and the binary's executable format read, before anything is written anywhere."""
    what = what or os.path.basename(path)
    sniffed = archives.sniff_format(path)
    if sniffed != fmt:
        raise HotswapError('checking the artifact %s: it was taken for a %s but its content is %s. Set format '
                           '(binary, tar.gz or zip) to what the artifact is.'
                           % (what, fmt, 'a %s archive' % sniffed if sniffed else 'not an archive'))
    try:
        archives.check_archive(path, fmt, binary, strip_components=strip, max_size=max_size)
        head = member_head(path, fmt, binary, strip)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise HotswapError('checking the archive %s: it cannot be read (%s). Check the artifact and its checksum.'
                           % (what, e))
    return read_executable_format(head)


# ---------------------------------------------------------------------------
# what is already on the host


def sibling_release(ledger, releases_dir, rid, sha, fmt, binary):
    """Another release dir holding this artifact, whose binary is intact: (dir, entry) or (None, None)."""
    for entry in ledger.releases():
        other = entry['release_id']
        if other == rid or entry.get('sha256') != sha or entry.get('binary') != binary:
            continue
        if (entry.get('artifact') or 'binary') != fmt or (fmt != 'binary' and not entry.get('members')):
            continue
        rdir = os.path.join(releases_dir, other)
        path = os.path.join(rdir, binary)
        try:
            # A linked release dir is no source: its members would come from outside base_dir.
            if os.path.isfile(path) and not os.path.islink(path) and not os.path.islink(rdir) \
                    and sha256_file(path) == (entry.get('binary_sha256') or sha):
                return rdir, entry
        except OSError:
            continue
    return None, None


def copy_from_sibling(sibling_dir, entry, dest_dir, binary):
    """Copy the artifact's files of ``sibling_dir`` into ``dest_dir``; returns the binary's digest."""
    names = entry.get('members') or [binary]
    for rel in names:
        src = os.path.join(sibling_dir, rel)
        dst = os.path.join(dest_dir, rel)
        st = os.lstat(src)
        os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
        if stat.S_ISDIR(st.st_mode):
            os.makedirs(dst, mode=0o755, exist_ok=True)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    return entry.get('binary_sha256') or entry.get('sha256')


# ---------------------------------------------------------------------------
# writing a new release


def write_release_file(module, release_dir, f):
    path = os.path.join(release_dir, f['dest'])
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600)
    with os.fdopen(fd, 'wb') as out:
        out.write(f['data'])
        out.flush()
        os.fsync(out.fileno())
    if f['owner']:
        module.set_owner_if_different(path, f['owner'], False)
    if f['group']:
        module.set_group_if_different(path, f['group'], False)
    os.chmod(path, int(f['mode'], 8))


def write_environment(release_dir, data):
    if not data:
        return
    path = os.path.join(release_dir, ENV_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600)
    with os.fdopen(fd, 'wb') as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def check_owners_exist(files):
    """Refuse, before writing, an owner or group that does not exist on the host."""
    import grp
    import pwd
    for f in files:
        for kind, name, lookup in (('owner', f['owner'], pwd.getpwnam), ('group', f['group'], grp.getgrnam)):
            if name and not name.isdigit():
                try:
                    lookup(name)
                except KeyError:
                    raise HotswapError('staging release file %s: %s %s does not exist on this host. Create it first '
                                       '(the deploy role creates the service user before staging files that name '
                                       'it), or name an existing one.' % (f['dest'], kind, name))


def new_staging_dir(releases_dir, rid):
    return tempfile.mkdtemp(prefix='%s%s-' % (STAGING_PREFIX, rid), dir=releases_dir)


def publish_release(staging_dir, release_dir):
    """Rename the complete staging dir to its release name; never over an existing release."""
    os.chmod(staging_dir, 0o755)
    fsync_dir(staging_dir)
    if os.path.lexists(release_dir):
        raise HotswapError('staging release %s: it appeared while this task staged it. Run one deploy at a time '
                           '(hold the deploy lock).' % os.path.basename(release_dir))
    os.rename(staging_dir, release_dir)
    fsync_dir(os.path.dirname(release_dir))


def remove_tree_quietly(path):
    if path and os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)


def incomplete_release_problems(release_dir, binary, binary_sha, content, lookup_owner):
    """Why an existing release dir is not this release: [] when it is. A binary with another digest raises."""
    binary_path = os.path.join(release_dir, binary)
    there = already_staged(binary_path, binary_sha) if binary_sha else os.path.isfile(binary_path)
    problems = [] if there else ['%s is missing' % binary]
    return problems + file_differences(release_dir, content.manifest, lookup_owner)


def replace_broken_release(base_dir, release_dir, rid, problems):
    """A release dir that is not live and lacks parts of its content is staged again from scratch."""
    if read_current(base_dir) == rid:
        raise HotswapError('staging release %s: it is the live release and differs from what it should hold (%s). '
                           'Releases are immutable: deploy the change as a new release, or switch to another '
                           'release, remove %s and deploy again.' % (rid, '; '.join(problems), release_dir))
    other = [p for p in problems if 'other content' in p or 'not a regular file' in p]
    if other:
        raise HotswapError('staging release %s: %s exists with other content (%s). Releases are immutable: remove '
                           'that directory (it is not live) and deploy again.' % (rid, release_dir, '; '.join(other)))
    # out of the way under a hidden name first, as pruning does: never half-deleted under its own name
    doomed = os.path.join(os.path.dirname(release_dir), '%s%s-incomplete' % (PRUNING_PREFIX, rid))
    os.rename(release_dir, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
