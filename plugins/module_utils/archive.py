# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Release artifacts that are archives: goreleaser-style ``.tar.gz``/``.tgz`` and ``.zip``.

Runs on the managed host (extraction) and on the controller (checks only). Python >= 3.9,
stdlib and ansible.module_utils only.

Rule: the whole member list is checked before one byte is written (check_archive), and
extraction writes every member itself - never ``extractall``, never through a symlink, never
outside the destination - while counting the bytes it really writes.

Member names are compared the way staging.member_head finds the binary: split on ``/``,
empty and ``.`` components dropped, then ``strip_components`` leading components removed.
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
import zipfile
import zlib

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

FORMATS = ('binary', 'tar.gz', 'zip')
FORMAT_CHOICES = ('auto',) + FORMATS
CHUNK = 1024 * 1024
# Group/other write and setuid/setgid/sticky never come from an archive: the files are created
# by root before the caller chowns them, so a setuid bit would briefly make a setuid-root file.
FILE_MODE_MASK = 0o777 & ~0o022
DIR_MODE = 0o755
ZIP_DEFAULT_MODE = 0o644
MAX_LINK_TARGET = 4096
MAX_LINK_DEPTH = 40
LISTED_FILES = 10
REBUILD = 'Rebuild the archive with relative paths (goreleaser does this by default).'

# Errors of a damaged or truncated archive, as the stdlib raises them while reading.
READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error,
               gzip.BadGzipFile, NotImplementedError)

# ---------------------------------------------------------------------------
# format


def archive_format(name, explicit='auto'):
    """'binary', 'tar.gz' or 'zip': ``explicit`` unless 'auto', else from the name's ending."""
    choice = (explicit or 'auto').strip().lower()
    if choice not in FORMAT_CHOICES:
        raise HotswapError("checking the format option: %r is not one of %s. Use auto to decide from the "
                           "artifact's file name." % (explicit, ', '.join(FORMAT_CHOICES)))
    if choice != 'auto':
        return choice
    base = _path_part(name or '').rstrip('/').rsplit('/', 1)[-1].lower()
    if base.endswith('.tar.gz') or base.endswith('.tgz'):
        return 'tar.gz'
    if base.endswith('.zip'):
        return 'zip'
    return 'binary'


def _path_part(name):
    """The path of a URL (its query string and fragment say nothing about the format); a file name as is."""
    if '://' not in name:
        return name
    from urllib.parse import urlsplit
    try:
        return urlsplit(name).path
    except ValueError:
        return name.split('?', 1)[0].split('#', 1)[0]


def sniff_format(path):
    """'tar.gz' or 'zip' from the file's magic bytes, None for anything else."""
    with open(path, 'rb') as f:
        head = f.read(4)
    if head[:2] == b'\x1f\x8b':
        return 'tar.gz'
    if head in (b'PK\x03\x04', b'PK\x05\x06'):   # a zip, or an empty one
        return 'zip'
    return None


# ---------------------------------------------------------------------------
# members


class Member(object):
    """One archive member as it would be extracted.

    ``name`` is relative to the extraction root (after strip_components), ``kind`` one of
    file, dir, symlink, hardlink; ``target`` the link target (a hardlink's is a member name);
    ``original`` the name in the archive.
    """

    __slots__ = ('name', 'kind', 'size', 'mode', 'target', 'original', 'info')

    def __init__(self, name, kind, size=0, mode=0o644, target=None, original=None, info=None):
        self.name = name
        self.kind = kind
        self.size = size
        self.mode = mode
        self.target = target
        self.original = original if original is not None else name
        self.info = info

    def as_dict(self):
        return dict(name=self.name, kind=self.kind, size=self.size, mode=self.mode, target=self.target)

    def __repr__(self):
        return 'Member(%r, %r, size=%d, mode=0o%o, target=%r)' % (
            self.name, self.kind, self.size, self.mode, self.target)


class _Checker(object):
    """Checks members one by one as they are read, then the links between them."""

    def __init__(self, what, strip, max_size):
        self.what = what
        self.strip = int(strip or 0)
        self.max_size = max_size
        self.members = []
        self.by_name = {}
        self.total = 0

    def fail(self, original, problem, fix):
        raise HotswapError("checking the archive %s: member %r %s. %s" % (self.what, original, problem, fix))

    def relative_name(self, original):
        """The name after stripping, or '' when it vanishes; refuses absolute and '..' names."""
        if not original or '\x00' in original:
            self.fail(original, 'has an empty name or one with a NUL byte', REBUILD)
        if original.startswith('/'):
            self.fail(original, 'has an absolute path; archives are extracted only inside the release directory',
                      REBUILD)
        parts = [p for p in original.split('/') if p not in ('', '.')]
        if '..' in parts:
            self.fail(original, "has a '..' component; archives are extracted only inside the release directory",
                      REBUILD)
        return '/'.join(parts[self.strip:])

    def add(self, member):
        """Record one member (name not yet stripped); directories that strip to nothing are skipped."""
        member.name = self.relative_name(member.original)
        if not member.name:
            if member.kind == 'dir':
                return
            self.fail(member.original, 'would vanish with strip_components=%d (it has no path left)' % self.strip,
                      'Lower strip_components to the number of directories that wrap every file.')
        self._check_duplicate(member)
        if member.kind == 'hardlink':
            self._check_hardlink(member)
        if member.kind == 'file':
            self._count(member)
        if member.name not in self.by_name:
            self.members.append(member)
            self.by_name[member.name] = member

    def _check_duplicate(self, member):
        seen = self.by_name.get(member.name)
        if seen is None or (seen.kind == 'dir' and member.kind == 'dir'):   # a repeated dir changes nothing
            return
        same = '' if seen.original == member.original else ' (as %r)' % seen.original
        self.fail(member.original, 'is in the archive twice%s after strip_components=%d' % (same, self.strip),
                  'Rebuild the archive with each path once; one copy would silently replace the other.')

    def _check_hardlink(self, member):
        parts = [p for p in member.target.split('/') if p not in ('', '.')]
        if member.target.startswith('/') or '..' in parts or '\x00' in member.target:
            self.fail(member.original, 'is a hard link to %r, outside the archive' % member.target, REBUILD)
        target = '/'.join(parts[self.strip:])
        earlier = self.by_name.get(target)
        if earlier is None or earlier.kind != 'file':
            self.fail(member.original, 'is a hard link to %r, which is not a regular file earlier in the archive'
                      % member.target, 'Rebuild the archive without hard links (or with links to files it holds).')
        member.target = target

    def _count(self, member):
        self.total += member.size
        if self.max_size is not None and self.total > self.max_size:
            self.fail(member.original, 'brings the uncompressed size to more than max_size (%d bytes)' % self.max_size,
                      'Raise max_size if the archive is really that large; otherwise it is not the right artifact.')

    def check_links(self):
        """After all members are known: every parent is a directory, every symlink stays inside."""
        for member in self.members:
            self._check_parents(member)
            if member.kind == 'symlink':
                self._check_symlink(member)

    def _check_parents(self, member):
        parts = member.name.split('/')
        for i in range(1, len(parts)):
            parent = self.by_name.get('/'.join(parts[:i]))
            if parent is not None and parent.kind != 'dir':
                self.fail(member.original, 'is inside %r, which is a %s in the archive' % (parent.name, parent.kind),
                          'Rebuild the archive so that only directories hold other members.')

    def _check_symlink(self, member):
        target = member.target
        if not target or '\x00' in target or target.startswith('/'):
            self.fail(member.original, 'is a symlink to %r; only relative links inside the archive are extracted'
                      % target, 'Rebuild the archive with a relative link target (for example myapp, not '
                      '/usr/bin/myapp).')
        if self._resolve(member, member.name.split('/')[:-1], target, 0) is None:
            self.fail(member.original, 'is a symlink to %r, which points outside the release directory' % target,
                      'Rebuild the archive with links that stay inside it.')

    def _resolve(self, member, base, target, depth):
        """Components of ``target`` resolved from dir ``base`` through the archive's own symlinks; None if outside.

        Resolved like the kernel would after extraction, not just lexically: 'x -> ../up/..'
        with 'up -> .' leaves the root although its text looks harmless.
        """
        if depth > MAX_LINK_DEPTH:
            self.fail(member.original, 'is a symlink to %r, which ends in a loop of links' % member.target,
                      'Rebuild the archive with links that point to files or directories it holds.')
        path = list(base)
        for part in target.split('/'):
            if part in ('', '.'):
                continue
            if part == '..':
                if not path:
                    return None
                path.pop()
                continue
            path.append(part)
            link = self.by_name.get('/'.join(path))
            if link is not None and link.kind == 'symlink':
                if link.target.startswith('/'):
                    return None
                path = self._resolve(member, path[:-1], link.target, depth + 1)
                if path is None:
                    return None
        return path

    def check_binary(self, binary):
        wanted = '/'.join(p for p in (binary or '').split('/') if p not in ('', '.'))
        member = self.by_name.get(wanted)
        if member is None:
            raise HotswapError(self._missing_binary_message(binary))
        if member.kind != 'file':
            shown = ' to %r' % member.target if member.target else ''
            raise HotswapError("checking the archive %s: the binary %r is a %s%s, not a regular file. Name the "
                               "executable file itself as the binary." % (self.what, binary, member.kind, shown))
        return member

    def _missing_binary_message(self, binary):
        files = [m.name for m in self.members if m.kind == 'file']
        listed = ', '.join(files[:LISTED_FILES]) or 'none'
        if len(files) > LISTED_FILES:
            listed += ' (and %d more)' % (len(files) - LISTED_FILES)
        hint = ''
        deeper = [f for f in files if f.endswith('/' + binary)]
        if deeper:
            hint = ' %r is there: set strip_components to %d.' % (deeper[0], self.strip + deeper[0].count('/'))
        return ("checking the archive %s: it has no file %r (after strip_components=%d). Its files are: %s.%s "
                "Give the executable's path inside the archive as the binary, or fix strip_components."
                % (self.what, binary, self.strip, listed, hint))


# ---------------------------------------------------------------------------
# reading the member lists


def _tar_members(tar, checker):
    for info in tar:     # one at a time: a huge declared size is refused before its data is read
        checker.add(_tar_member(info, checker))


def _tar_member(info, checker):
    mode = info.mode & 0o7777
    if info.isreg():
        return Member(None, 'file', info.size, mode, original=info.name, info=info)
    if info.isdir():
        return Member(None, 'dir', 0, mode, original=info.name, info=info)
    if info.issym():
        return Member(None, 'symlink', 0, mode, target=info.linkname, original=info.name, info=info)
    if info.islnk():
        return Member(None, 'hardlink', 0, mode, target=info.linkname, original=info.name, info=info)
    checker.fail(info.name, 'is a %s' % _tar_kind(info),
                 'Release archives hold only files, directories and links; rebuild it without it.')


def _tar_kind(info):
    if info.ischr() or info.isblk():
        return 'device file'
    if info.isfifo():
        return 'fifo'
    return 'special member (tar type %r)' % info.type


def _zip_members(z, checker):
    infos = z.infolist()
    for info in infos:     # the central directory is already read: refuse a bomb before any data
        if info.flag_bits & 0x1:
            checker.fail(info.orig_filename, 'is encrypted', 'Release archives must not be encrypted.')
        if '\x00' in info.orig_filename or '\\' in info.orig_filename:
            checker.fail(info.orig_filename, 'has a NUL byte or a backslash in its name',
                         'Rebuild the archive with / as the path separator.')
        checker.add(_zip_member(z, info, checker))


def _zip_member(z, info, checker):
    unix = info.external_attr >> 16
    perms = (unix & 0o7777) or (DIR_MODE if info.is_dir() else ZIP_DEFAULT_MODE)
    ftype = stat.S_IFMT(unix)
    if info.is_dir() or ftype == stat.S_IFDIR:
        return Member(None, 'dir', 0, perms, original=info.filename, info=info)
    if ftype == stat.S_IFLNK:
        return Member(None, 'symlink', 0, perms, target=_zip_link_target(z, info, checker),
                      original=info.filename, info=info)
    if ftype in (0, stat.S_IFREG):     # no type bits: written on a system without Unix modes
        return Member(None, 'file', info.file_size, perms, original=info.filename, info=info)
    checker.fail(info.filename, 'is a device file, fifo or socket',
                 'Release archives hold only files, directories and links; rebuild it without it.')


def _zip_link_target(z, info, checker):
    """A zip symlink keeps its target as the member's data."""
    if info.file_size > MAX_LINK_TARGET:
        checker.fail(info.filename, 'is a symlink with a %d-byte target' % info.file_size, REBUILD)
    return z.read(info).decode('utf-8', 'surrogateescape')


def _read_members(path, fmt, strip, max_size, what):
    """A _Checker holding the checked members (the binary is not checked here)."""
    checker = _Checker(what or os.path.basename(path), strip, max_size)
    if fmt not in ('tar.gz', 'zip'):
        raise HotswapError("checking the archive %s: format %r is not an archive format. Use tar.gz or zip."
                           % (checker.what, fmt))
    try:
        if fmt == 'zip':
            with zipfile.ZipFile(path) as z:
                _zip_members(z, checker)
        else:
            with tarfile.open(path, 'r:gz') as tar:
                _tar_members(tar, checker)
    except READ_ERRORS as e:
        raise HotswapError("checking the archive %s: it cannot be read as a %s (%s). Check the artifact, its "
                           "checksum and the format option." % (checker.what, fmt, e))
    checker.check_links()
    return checker


def check_archive(path, fmt, binary, strip_components=0, max_size=None, what=None):
    """Every member of the archive checked without extracting anything; returns its Members.

    Raises HotswapError naming the member for anything that could write outside the
    extraction root or that is not a file, directory or link, for duplicates, for a total
    declared size above ``max_size`` bytes, and when ``binary`` is not a regular file in it.
    ``what`` names the archive in messages (default: the file name of ``path``).
    """
    checker = _read_members(path, fmt, strip_components, max_size, what)
    checker.check_binary(binary)
    return checker.members


# ---------------------------------------------------------------------------
# extraction


def extract_archive(path, fmt, dest_dir, strip_components=0, max_size=None, what=None, binary=None):
    """Extract the archive into the existing, empty ``dest_dir``; returns the relative paths written.

    Nothing is written unless every member passes check_archive (``binary`` is checked only when
    given). On a failure during writing, what was written stays: the caller removes dest_dir.
    Owners are not changed (the caller sets them).
    """
    what = what or os.path.basename(path)
    checker = _read_members(path, fmt, strip_components, max_size, what)
    if binary is not None:
        checker.check_binary(binary)
    writer = _Writer(dest_dir, what, max_size)
    try:
        if fmt == 'zip':
            with zipfile.ZipFile(path) as z:
                writer.write_all(checker.members, z.open)
        else:
            with tarfile.open(path, 'r:gz') as tar:
                writer.write_all(checker.members, tar.extractfile)
    except READ_ERRORS as e:
        raise HotswapError("extracting the archive %s: it cannot be read (%s). Check the artifact and its checksum."
                           % (what, e))
    return writer.written


class _Writer(object):
    """Writes checked members below ``dest_dir``, re-checking every parent with lstat."""

    def __init__(self, dest_dir, what, max_size):
        self.dest_dir = dest_dir
        self.what = what
        self.max_size = max_size
        self.total = 0
        self.written = []

    def write_all(self, members, open_data):
        # Symlinks last: no file is ever written after a link that could redirect it.
        for member in members:
            if member.kind == 'dir':
                self.make_dir(member.name)
            elif member.kind == 'file':
                with open_data(member.info) as data:
                    self.write_file(member, data)
            elif member.kind == 'hardlink':
                self.link(member)
            else:
                continue
            self.written.append(member.name)
        for member in members:
            if member.kind == 'symlink':
                os.symlink(member.target, self.parent_path(member.name))
                self.written.append(member.name)

    def fail(self, name, problem, fix='Nothing outside the release directory was touched; fix the archive and '
             'deploy again.'):
        raise HotswapError("extracting the archive %s: %s %s. %s" % (self.what, name, problem, fix))

    def parent_path(self, name):
        """Absolute path of ``name``, after making sure each parent is a real directory (creating it)."""
        parts = name.split('/')
        current = self.dest_dir
        for part in parts[:-1]:
            current = os.path.join(current, part)
            self._ensure_dir(current, name)
        return os.path.join(current, parts[-1])

    def _ensure_dir(self, path, name):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, DIR_MODE)
            os.chmod(path, DIR_MODE)    # mkdir's mode is reduced by the umask
            return
        if not stat.S_ISDIR(st.st_mode):
            self.fail(name, 'cannot be written: %s is in the way and is not a directory' % path,
                      'Nothing was written through it; something else writes into the staging directory - run one '
                      'deploy at a time and deploy again.')

    def make_dir(self, name):
        self._ensure_dir(self.parent_path(name), name)

    def write_file(self, member, data):
        path = self.parent_path(member.name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, 'wb') as out:
            self.copy_data(member, data, out)
            os.fchmod(out.fileno(), member.mode & FILE_MODE_MASK)

    def copy_data(self, member, data, out):
        """Stream the data, counting what really comes out: declared sizes may lie."""
        written = 0
        while True:
            block = data.read(CHUNK)
            if not block:
                return written
            written += len(block)
            self.total += len(block)
            if written > member.size:
                self.fail(member.name, 'holds more data than its declared %d bytes' % member.size)
            if self.max_size is not None and self.total > self.max_size:
                self.fail(member.name, 'brings the extracted size above max_size (%d bytes)' % self.max_size)
            out.write(block)

    def link(self, member):
        # The target is an earlier regular file written by this extraction (check_archive made sure).
        source = os.path.join(self.dest_dir, *member.target.split('/'))
        if not stat.S_ISREG(os.lstat(source).st_mode):
            self.fail(member.name, 'is a hard link to %s, which is not a regular file' % member.target)
        os.link(source, self.parent_path(member.name), follow_symlinks=False)
