# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Artifacts: checksums, executable headers and atomic staging into a release dir.

Everything here runs on the managed host (module side) and on the controller
(action plugin side, header and checksum checks only). Python >= 3.9, stdlib and
ansible.module_utils only.

Staging rule (ARCHITECTURE.md section 2): data is written to a hidden temp file
``.<name>.partial-<random>`` inside the release dir (same filesystem), its sha256
and executable header are verified, mode/owner are set, it is fsynced, then it is
linked/renamed to ``<release_dir>/<name>`` and the directory is fsynced. A
half-written or unverified binary is never at its final path. On failure the temp
file is removed, and so is every directory this call created.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import platform
import re
import stat
import struct
import tempfile

from ansible_collections.hotswap.deploy.plugins.module_utils import redact
from ansible_collections.hotswap.deploy.plugins.module_utils.common import (
    BASE_DIR_SPEC,
    CONTENT_SPEC,
    LOCK_OWNER_SPEC,
    RELEASE_ID_SPEC,
    HotswapError,
    unlink_quietly,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import Ledger
from ansible_collections.hotswap.deploy.plugins.module_utils.lock import check_holder
from ansible_collections.hotswap.deploy.plugins.module_utils.release import (
    PARTIAL_INFIX,
    check_release_tree,
    fsync_dir,
    validate_release_id,
)

CHUNK = 1024 * 1024
DOWNLOAD_SCHEMES = ('http', 'https')

_CHECKSUM_RE = re.compile(r'^([A-Za-z0-9_-]+):(.*)$')
_HEX64_RE = re.compile(r'^[0-9a-fA-F]{64}$')

# ---------------------------------------------------------------------------
# checksums


def parse_checksum(checksum):
    """Return the lower-case hex digest of a ``sha256:<64 hex>`` checksum string."""
    if not isinstance(checksum, str) or not checksum.strip():
        raise HotswapError(
            "checking the checksum option: it is empty. "
            "Give it as sha256:<64 hex digits>, for example the output of `sha256sum <file>`.")
    value = checksum.strip()
    m = _CHECKSUM_RE.match(value)
    if not m:
        if _HEX64_RE.match(value):
            raise HotswapError(
                "checking the checksum option: %r has no algorithm prefix. "
                "Write it as sha256:%s." % (value, value.lower()))
        raise HotswapError(
            "checking the checksum option: %r is not of the form <algorithm>:<hex digest>. "
            "Give it as sha256:<64 hex digits>." % value)
    algo, digest = m.group(1).lower(), m.group(2).strip()
    if algo != 'sha256':
        raise HotswapError(
            "checking the checksum option: algorithm %r is not supported. "
            "Only sha256 is accepted; compute it with `sha256sum <file>` and pass sha256:<hex>." % algo)
    if not _HEX64_RE.match(digest):
        raise HotswapError(
            "checking the checksum option: %r is not a sha256 digest (expected 64 hex digits, got %d characters). "
            "Copy the full digest from `sha256sum <file>`." % (digest, len(digest)))
    return digest.lower()


def sha256_file(path):
    """Streaming sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# executable headers

ELF_MACHINES = {
    3: 'i386',
    8: 'mips',
    20: 'ppc',
    21: 'ppc64',
    22: 's390x',
    40: 'arm',
    62: 'x86_64',
    183: 'aarch64',
    243: 'riscv64',
    258: 'loongarch64',
}

# EI_OSABI. Linux Go binaries (and most Linux binaries) carry SYSV (0).
ELF_OSABI = {
    0: 'linux',
    3: 'linux',
    2: 'netbsd',
    6: 'solaris',
    9: 'freebsd',
    12: 'openbsd',
}

PE_MACHINES = {
    0x014c: 'i386',
    0x01c0: 'arm',
    0x01c4: 'arm',
    0x8664: 'x86_64',
    0xaa64: 'aarch64',
}

MACHO_CPU = {
    7: 'i386',
    0x01000007: 'x86_64',
    12: 'arm',
    0x0100000c: 'aarch64',
    18: 'ppc',
    0x01000012: 'ppc64',
}

# Go's names, for the "Build for GOOS=... GOARCH=..." hint.
GOARCH = {
    'x86_64': 'amd64',
    'aarch64': 'arm64',
    'i386': '386',
    'arm': 'arm',
    'ppc64le': 'ppc64le',
    'ppc64': 'ppc64',
    's390x': 's390x',
    'riscv64': 'riscv64',
    'mips': 'mips',
    'mipsle': 'mipsle',
    'mips64': 'mips64',
    'mips64le': 'mips64le',
    'loongarch64': 'loong64',
}

_MACHINE_ALIASES = {
    'x86_64': 'x86_64', 'amd64': 'x86_64', 'x64': 'x86_64',
    'aarch64': 'aarch64', 'arm64': 'aarch64', 'aarch64_be': 'aarch64',
    'i386': 'i386', 'i486': 'i386', 'i586': 'i386', 'i686': 'i386', 'x86': 'i386', '386': 'i386',
    'ppc64le': 'ppc64le', 'ppc64': 'ppc64', 'ppc': 'ppc',
    's390x': 's390x', 'riscv64': 'riscv64', 'loongarch64': 'loongarch64',
    'mips': 'mips', 'mipsel': 'mipsle', 'mipsle': 'mipsle', 'mips64': 'mips64', 'mips64el': 'mips64le',
}

_HEADER_READ = 4096


def _read_at(f, offset, size):
    f.seek(offset)
    data = f.read(size)
    return data if len(data) == size else None


def _parse_elf(f, head):
    if len(head) < 20:
        return None
    ei_class, ei_data, osabi = head[4], head[5], head[7]
    if ei_class not in (1, 2) or ei_data not in (1, 2):
        return None
    end = '<' if ei_data == 1 else '>'
    e_type, e_machine = struct.unpack(end + 'HH', head[16:20])
    if e_type not in (2, 3):        # ET_EXEC, ET_DYN (PIE); not .o files or core dumps
        return None
    arch = ELF_MACHINES.get(e_machine, 'elf-machine-%d' % e_machine)
    if arch == 'ppc64' and ei_data == 1:
        arch = 'ppc64le'
    elif arch == 'mips':
        arch = ('mips64' if ei_class == 2 else 'mips') + ('le' if ei_data == 1 else '')
    os_name = ELF_OSABI.get(osabi, 'elf-osabi-%d' % osabi)
    return dict(format='elf', os=os_name, arch=arch, bits=64 if ei_class == 2 else 32)


def _parse_pe(f, head):
    if len(head) < 0x40:
        return None
    e_lfanew = struct.unpack('<I', head[0x3c:0x40])[0]
    if e_lfanew + 24 <= len(head):
        pe = head[e_lfanew:e_lfanew + 24]
    else:
        pe = _read_at(f, e_lfanew, 24)
    if not pe or pe[:4] != b'PE\0\0':
        return None          # a DOS program, not a PE executable
    machine, = struct.unpack('<H', pe[4:6])
    characteristics, = struct.unpack('<H', pe[22:24])
    if not characteristics & 0x0002 or characteristics & 0x2000:   # not EXECUTABLE_IMAGE, or a DLL
        return None
    return dict(format='pe', os='windows', arch=PE_MACHINES.get(machine, 'pe-machine-0x%04x' % machine),
                bits=64 if machine in (0x8664, 0xaa64) else 32)


def _parse_macho_thin(head, end):
    if len(head) < 16:
        return None
    cputype, _sub, filetype = struct.unpack(end + 'iII', head[4:16])
    if filetype != 2:     # MH_EXECUTE
        return None
    cputype &= 0xffffffff
    return dict(format='macho', os='darwin', arch=MACHO_CPU.get(cputype, 'macho-cpu-0x%x' % cputype),
                bits=64 if cputype & 0x01000000 else 32)


def _parse_macho_fat(f, head):
    # 0xcafebabe is also the Java class file magic; a fat header has a small arch count.
    nfat = struct.unpack('>I', head[4:8])[0]
    if nfat == 0 or nfat > 32:
        return None
    arches = []
    for i in range(nfat):
        entry = head[8 + i * 20:8 + i * 20 + 20]
        if len(entry) < 20:
            return None
        cputype = struct.unpack('>I', entry[:4])[0]
        arches.append(MACHO_CPU.get(cputype, 'macho-cpu-0x%x' % cputype))
    return dict(format='macho', os='darwin', arch='universal', arches=sorted(set(arches)), bits=64)


def read_executable_format(path_or_bytes):
    """Identify an executable from its header.

    Returns ``{'format': 'elf'|'pe'|'macho', 'os': ..., 'arch': ..., 'bits': 32|64}``
    (Mach-O universal binaries: ``arch='universal'`` and ``arches=[...]``), or None
    when the data is not an executable we recognise (text, archive, object file,
    DLL, empty file ...).
    """
    if isinstance(path_or_bytes, (bytes, bytearray)):
        f = io.BytesIO(bytes(path_or_bytes))
        close = False
    else:
        f = open(path_or_bytes, 'rb')
        close = True
    try:
        head = f.read(_HEADER_READ)
        if head[:4] == b'\x7fELF':
            return _parse_elf(f, head)
        if head[:2] == b'MZ':
            return _parse_pe(f, head)
        if head[:4] in (b'\xcf\xfa\xed\xfe', b'\xce\xfa\xed\xfe'):
            return _parse_macho_thin(head, '<')
        if head[:4] in (b'\xfe\xed\xfa\xcf', b'\xfe\xed\xfa\xce'):
            return _parse_macho_thin(head, '>')
        if head[:4] == b'\xca\xfe\xba\xbe':
            return _parse_macho_fat(f, head)
        return None
    finally:
        if close:
            f.close()


def normalize_arch(machine):
    m = (machine or '').strip().lower()
    if m in _MACHINE_ALIASES:
        return _MACHINE_ALIASES[m]
    if m.startswith('armv8') or m.startswith('arm64'):
        return 'aarch64'
    if m.startswith('arm'):
        return 'arm'
    return m or 'unknown'


def normalize_os(system):
    s = (system or '').strip().lower()
    if s.startswith('cygwin') or s.startswith('msys') or s.startswith('mingw') or s == 'windows':
        return 'windows'
    if s == 'sunos':
        return 'solaris'
    return s or 'unknown'


def host_platform():
    """The platform of the machine this runs on: ``{'os': 'linux', 'arch': 'x86_64'}``."""
    return dict(os=normalize_os(platform.system()), arch=normalize_arch(platform.machine()))


def describe_format(fmt):
    kind = {'elf': 'ELF', 'pe': 'PE', 'macho': 'Mach-O'}.get(fmt.get('format'), str(fmt.get('format')))
    arch = fmt.get('arch')
    if arch == 'universal':
        arch = 'universal(%s)' % ','.join(fmt.get('arches') or [])
    return '%s/%s %s executable' % (fmt.get('os'), arch, kind)


def _build_hint(host):
    goarch = GOARCH.get(host.get('arch'), host.get('arch'))
    return 'Build for GOOS=%s GOARCH=%s or pick the right artifact.' % (host.get('os'), goarch)


def fits_host(fmt, host):
    if not fmt or fmt.get('os') != host.get('os'):
        return False
    if fmt.get('arch') == 'universal':
        return host.get('arch') in (fmt.get('arches') or [])
    return fmt.get('arch') == host.get('arch')


def check_fits_host(fmt, host, what='the artifact'):
    """Raise HotswapError unless the executable described by ``fmt`` runs on ``host``.

    ``fmt`` is a read_executable_format() result (None = not an executable);
    ``host`` a host_platform() result; ``what`` names the artifact in the message.
    """
    if fmt is None:
        raise HotswapError(
            "uploading %s: it is not an executable for any platform (no ELF, PE or Mach-O executable header). "
            "%s" % (what, _build_hint(host)))
    if not fits_host(fmt, host):
        raise HotswapError(
            "uploading %s: it is a %s but the host is %s/%s. %s"
            % (what, describe_format(fmt), host.get('os'), host.get('arch'), _build_hint(host)))


# ---------------------------------------------------------------------------
# names and paths

_NAME_BAD = re.compile(r'[/\\\x00]')


def validate_binary_name(name):
    """The binary's file name inside the release dir: one plain path component."""
    if not isinstance(name, str) or not name:
        raise HotswapError("checking the name option: it is empty. Give the binary's file name, for example myapp.")
    if _NAME_BAD.search(name) or name in ('.', '..') or name.startswith('.'):
        raise HotswapError(
            "checking the name option: %r is not a plain file name (no '/', '\\\\', NUL, and no leading '.'). "
            "Give only the binary's file name, for example myapp; the directory comes from base_dir and release_id."
            % name)
    return name


def validate_url(url):
    """Only http(s) URLs with a host part are accepted for pull mode."""
    from urllib.parse import urlsplit
    try:
        parts = urlsplit(url or '')
    except ValueError as e:
        raise HotswapError("checking the url option: %s cannot be parsed (%s). Give an http:// or https:// URL."
                           % (mask_url(url), e))
    if parts.scheme.lower() not in DOWNLOAD_SCHEMES or not parts.netloc:
        raise HotswapError(
            "checking the url option: %s is not an http:// or https:// URL. "
            "Serve the artifact over HTTP(S), or push it from the controller with src." % mask_url(url))
    return url


def mask_url(url):
    """The URL without its password or credential-like parameters (a signed URL's signature), for messages."""
    return redact.mask_url(url or '')


def already_staged(final_path, sha256):
    """True if ``final_path`` is a regular file with this sha256, False if absent.

    Raises HotswapError if something else is there (another digest, a directory,
    a symlink): releases are immutable, so it must not be replaced.
    """
    try:
        st = os.lstat(final_path)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise HotswapError("checking %s: %s. Fix the permissions or the path." % (final_path, e.strerror))
    if not stat.S_ISREG(st.st_mode):
        raise HotswapError(
            "checking %s: it exists but is not a regular file. Releases are immutable, so it will not be replaced; "
            "remove it by hand or choose another release_id." % final_path)
    try:
        digest = sha256_file(final_path)
    except OSError as e:
        raise HotswapError("checking %s: cannot read it (%s). Run with become as a user that can read the "
                           "release directory." % (final_path, e.strerror))
    if digest != sha256:
        raise HotswapError(
            "staging %s: it already exists with sha256 %s, not the requested %s. Releases are immutable; "
            "choose another release_id (derive it from version and sha256) or fix the checksum."
            % (final_path, digest, sha256))
    return True


# ---------------------------------------------------------------------------
# staging


def make_dirs(path, mode=0o755):
    """Create ``path`` and missing parents; return the list of dirs created (outermost first)."""
    path = os.path.abspath(path)
    missing = []
    p = path
    while not os.path.isdir(p):
        if os.path.lexists(p):
            raise HotswapError(
                "creating %s: %s exists and is not a directory. Move it away or choose another base_dir." % (path, p))
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    created = []
    try:
        for d in reversed(missing):
            try:
                os.mkdir(d, mode)
            except FileExistsError:
                if not os.path.isdir(d):
                    raise
                continue
            created.append(d)
    except OSError as e:
        remove_created_dirs(created)
        raise HotswapError("creating %s: %s. Check base_dir and the permissions of its parents." % (path, e.strerror or e))
    if created:
        fsync_dir(os.path.dirname(created[0]))
    return created


def remove_created_dirs(created):
    """Remove (innermost first) directories we created, if they are empty."""
    for d in reversed(created or []):
        try:
            os.rmdir(d)
        except OSError:
            break


def partial_file(release_dir, name):
    """Open a new hidden temp file next to the final path: returns (file object, path)."""
    fd, path = tempfile.mkstemp(prefix='.%s%s' % (name, PARTIAL_INFIX), dir=release_dir)
    return os.fdopen(fd, 'wb'), path


def _apply_attrs(module, path, mode, owner, group):
    changed = False
    if mode is None:
        mode = '0755'
    changed = module.set_mode_if_different(path, mode, changed)
    if owner is not None:
        changed = module.set_owner_if_different(path, owner, changed)
    if group is not None:
        changed = module.set_group_if_different(path, group, changed)
    return changed


def fix_attrs(module, path, mode, owner, group):
    """Set mode/owner/group of an already staged file; returns True if anything changed
    (in check mode: would change)."""
    return _apply_attrs(module, path, mode, owner, group)


def _publish(partial, final_path):
    """Move the verified partial to the final path without ever replacing an existing file.

    link(2) fails if the final path exists (so a concurrent stager cannot be
    overwritten); fall back to rename(2) on filesystems without hard links.
    """
    try:
        os.link(partial, final_path)
    except OSError as e:
        if e.errno == errno.EEXIST:
            return False
        if e.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS):
            if os.path.lexists(final_path):
                return False
            os.rename(partial, final_path)
            return True
        raise
    os.unlink(partial)
    return True


def finish_partial(module, partial, final_path, sha256, mode=None, owner=None, group=None, host=None, what=None):
    """Verify a fully written partial file, set attributes, fsync, move it into place.

    The caller removes ``partial`` on failure. ``host`` (a host_platform() dict,
    default: this machine) is checked against the executable header.
    """
    what = what or os.path.basename(final_path)
    digest = sha256_file(partial)
    if digest != sha256:
        raise HotswapError(
            "staging %s: sha256 of the data is %s but checksum says %s. "
            "Fix the checksum option or the artifact; nothing was staged." % (what, digest, sha256))
    check_fits_host(read_executable_format(partial), host or host_platform(), what)
    os.chmod(partial, 0o755)   # mkstemp made it 0600; symbolic modes apply on top of 0755
    _apply_attrs(module, partial, mode, owner, group)
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    release_dir = os.path.dirname(final_path)
    if not _publish(partial, final_path):
        # someone staged it meanwhile: fine if it is the same digest, an error otherwise
        already_staged(final_path, sha256)
        unlink_quietly(partial)
    fsync_dir(release_dir)
    return final_path


def _staging(release_dir, name, writer, module, sha256, mode, owner, group, host, what, fill=None):
    """writer(f) writes the partial file; or fill(path) puts it in place of the empty partial (a move)."""
    created = make_dirs(release_dir)
    final_path = os.path.join(release_dir, name)
    partial = None
    try:
        f, partial = partial_file(release_dir, name)
        try:
            if fill is None:
                writer(f)
                f.flush()
        finally:
            f.close()
        if fill is not None:
            fill(partial)
        finish_partial(module, partial, final_path, sha256, mode, owner, group, host, what)
        partial = None
        return final_path
    except BaseException as e:
        unlink_quietly(partial)
        remove_created_dirs(created)
        if isinstance(e, (OSError, IOError)) and not isinstance(e, HotswapError):
            raise HotswapError("staging %s into %s: %s. Check free space and permissions; nothing was staged."
                               % (what, release_dir, getattr(e, 'strerror', None) or e))
        raise


def stage_file(module, src_path, release_dir, name, sha256, mode=None, owner=None, group=None, host=None,
               move=False):
    """Copy ``src_path`` to ``<release_dir>/<name>`` atomically after verifying it.

    With ``move`` (``src_path`` is a temporary copy pushed for this upload) it is renamed into place instead
    when it is on the same filesystem: no second copy, and its digest is read once. Creates ``release_dir``
    (and missing parents) if needed and removes what it created if anything fails. Returns the final path.
    """
    validate_binary_name(name)
    what = name
    try:
        src = open(src_path, 'rb')
    except OSError as e:
        raise HotswapError("uploading %s: cannot read the source %s (%s). "
                           "Check the src path on the host." % (what, src_path, e.strerror))

    def writer(f):
        with src:
            while True:
                block = src.read(CHUNK)
                if not block:
                    break
                f.write(block)

    def fill(partial):
        try:
            os.rename(src_path, partial)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            with open(partial, 'wb') as f:
                writer(f)
            return
        # The pushed copy belongs to the connection user; what is staged belongs to the user staging it.
        if os.geteuid() == 0:
            os.chown(partial, 0, os.getegid())

    try:
        return _staging(release_dir, name, writer, module, sha256, mode, owner, group, host, what,
                        fill=fill if move else None)
    finally:
        src.close()


def download_to_release(module, url, release_dir, name, sha256, mode=None, owner=None, group=None,
                        timeout=30, validate_certs=True, host=None, opener=None, max_size=None):
    """Download ``url`` straight into a partial file in ``release_dir`` (hashing it),
    verify, and move it into place like stage_file(). Returns the final path.

    ``opener(url, timeout, validate_certs)`` returns a file-like response; the
    default is _open_url. More than ``max_size`` bytes fail the download.
    """
    validate_binary_name(name)
    validate_url(url)
    shown = mask_url(url)
    what = name
    writer = url_writer(url, what, shown, timeout, validate_certs, opener, max_size)
    return _staging(release_dir, name, writer, module, sha256, mode, owner, group, host,
                    '%s from %s' % (what, shown))


def _too_big(what, shown, max_size, size=None):
    # The caller removes the partial file; say so, and how to tell a wrong URL from a big artifact.
    cause = ('the server announced %d bytes' % size) if size is not None else 'the server sent more'
    return HotswapError("downloading %s from %s: %s, more than max_size (%d bytes); the download was stopped and "
                        "the partial file removed. Check that the URL points at the artifact, or raise max_size if "
                        "it really is that big." % (what, shown, cause, max_size))


def _announced_size(resp):
    try:
        return int(resp.headers.get('Content-Length'))
    except (AttributeError, TypeError, ValueError):
        return None


def url_writer(url, what, shown, timeout, validate_certs, opener, max_size=None):
    """A writer(f) streaming ``url`` into f, with messages that never show a password.

    More than ``max_size`` bytes (when given) fail with HotswapError after at most
    ``max_size + 1`` bytes were read: a wrong URL cannot fill the disk.
    """

    def writer(f):
        try:
            resp = (opener or _open_url)(url, timeout, validate_certs)
        except HotswapError:
            raise
        except Exception as e:
            raise HotswapError("downloading %s from %s: %s. Check that the URL is right and reachable from the host "
                               "(or push the artifact from the controller with src)." % (what, shown, _url_error(e)))
        try:
            announced = _announced_size(resp)
            if max_size is not None and announced is not None and announced > max_size:
                raise _too_big(what, shown, max_size, announced)
            total = 0
            while True:
                want = CHUNK if max_size is None else min(CHUNK, max_size + 1 - total)
                try:
                    block = resp.read(want)
                except Exception as e:
                    raise HotswapError("downloading %s from %s: the transfer broke off (%s). Retry, or check the "
                                       "server and network." % (what, shown, _url_error(e)))
                if not block:
                    break
                total += len(block)
                if max_size is not None and total > max_size:
                    raise _too_big(what, shown, max_size)
                f.write(block)
        finally:
            try:
                resp.close()
            except Exception:
                pass
    return writer


def _open_url(url, timeout, validate_certs, auth=None):
    # Redirects are followed, but headers and basic auth go to the URL's own origin only.
    from ansible_collections.hotswap.deploy.plugins.module_utils.request import open_url_same_origin
    auth = auth or {}
    return open_url_same_origin(url, timeout=timeout, validate_certs=validate_certs,
                                http_agent='hotswap.deploy-binary_upload', headers=auth.get('headers') or None,
                                url_username=auth.get('username') or None, url_password=auth.get('password') or None,
                                force_basic_auth=bool(auth.get('username')))


def authenticated_opener(auth):
    """An opener sending ``auth`` (headers, username, password) with every request, or None."""
    if not auth or not any(auth.values()):
        return None

    def opener(url, timeout, validate_certs):
        return _open_url(url, timeout, validate_certs, auth)
    return opener


def check_url_reachable(url, timeout=30, validate_certs=True, opener=None):
    """Open ``url`` and close it after the headers: check mode's proof the download can start."""
    shown = mask_url(url)
    try:
        resp = (opener or _open_url)(url, timeout, validate_certs)
    except Exception as e:  # urllib, socket and TLS errors all mean "cannot download"
        raise HotswapError("checking the artifact url %s: it cannot be opened (%s). Check that the URL is "
                           "right and reachable from the host." % (shown, _url_error(e)))
    try:
        resp.close()
    except Exception:  # the answer was seen; a failing close does not matter here
        pass


def _url_error(e):
    # Error texts may quote the URL (a redirect target, a signed URL): masked like any message.
    code = getattr(e, 'code', None)
    if code is not None and hasattr(e, 'reason'):
        return redact.mask_text('HTTP %s %s' % (code, e.reason))
    reason = getattr(e, 'reason', None)
    if reason is not None:
        return redact.mask_text(str(reason))
    return redact.mask_text('%s: %s' % (type(e).__name__, e) if str(e) else type(e).__name__)


# ---------------------------------------------------------------------------
# what the binary_upload module does

NOT_STAGED = 'not_staged'


def check_digest(path, sha256, what):
    """Refuse a file whose sha256 is not the checksum's."""
    try:
        digest = sha256_file(path)
    except OSError as e:
        raise HotswapError("uploading %s: cannot read %s (%s). Check the src path." % (what, path, e.strerror))
    if digest != sha256:
        raise HotswapError(
            "uploading %s: its sha256 is %s but checksum says %s. Fix the checksum option "
            "(sha256sum %s) or pick the right artifact; nothing was changed on the host."
            % (what, digest, sha256, path))


def check_local_artifact(path, sha256, host=None, what=None):
    """Verify an artifact file before staging it: digest, and header against ``host`` (if given).

    Returns the read_executable_format() result. Used on the host (src mode) and on
    the controller (action plugin, before anything is transferred).
    """
    what = what or os.path.basename(path)
    check_digest(path, sha256, what)
    fmt = read_executable_format(path)
    if host is not None:
        check_fits_host(fmt, host, what)
    elif fmt is None:
        raise HotswapError(
            "uploading %s: it is not an executable (no ELF, PE or Mach-O executable header). "
            "Pick the built binary, not an archive or script." % what)
    return fmt


def release_content(name, files=None, environment=None, environment_secret=None, fmt='binary',
                    strip_components=0, max_size=None):
    """The checked Content of a release (files, environment, artifact format)."""
    from ansible_collections.hotswap.deploy.plugins.module_utils import release_content as rc
    from ansible_collections.hotswap.deploy.plugins.module_utils.staging import Content
    normalized = rc.normalize_files(files, name)
    env_bytes = rc.render_environment(environment, environment_secret)
    manifest = dict(files=rc.file_manifest(normalized),
                    environment=rc.environment_manifest(environment, environment_secret))
    return Content(normalized, env_bytes, manifest, fmt, int(strip_components or 0), max_size)


def upload(module, base_dir, release_id, name, checksum, src=None, url=None, version=None, mode='0755',
           owner=None, group=None, url_timeout=30, validate_certs=True, check_mode=False, host=None,
           opener=None, content=None, lock_owner=None, move_src=False):
    """Stage one release as ``<base_dir>/releases/<release_id>/``; see the binary_upload docs.

    Refused while anyone but ``lock_owner`` holds the deploy lock (``lock.check_holder``).

    ``content`` (release_content()) adds release files, an environment or an archive format;
    without it the release is the binary alone. Returns the module result. Raises HotswapError;
    for the verify-only case (no src, no url, not staged) its details carry
    ``reason='not_staged'``, ``staged=False`` and ``host_platform`` so the action plugin can
    decide to transfer.
    """
    rid = validate_release_id(release_id)
    # A linked releases/ or releases/<id> would have the binary written wherever it points.
    p = check_release_tree(base_dir, rid, 'staging release %s' % rid)
    sha = parse_checksum(checksum)
    validate_binary_name(name)
    if src and url:
        raise HotswapError("uploading %s: src and url are mutually exclusive. Give one of them." % name)
    if url:
        validate_url(url)
    check_holder(p.base_dir, lock_owner, 'staging release %s' % rid, check_mode)
    content = content or release_content(name)
    if not content.plain:
        from ansible_collections.hotswap.deploy.plugins.module_utils.release_content import check_release_id_matches
        check_release_id_matches(rid, sha, content.manifest)
        return upload_release(module, p, rid, name, sha, content, src=src, url=url, version=version, mode=mode,
                              owner=owner, group=group, url_timeout=url_timeout, validate_certs=validate_certs,
                              check_mode=check_mode, host=host, opener=opener, move_src=move_src)
    host = host or host_platform()
    final = os.path.join(p.release_dir, name)
    result = dict(changed=False, transferred=False, staged=False, path=final, release_dir=p.release_dir,
                  release_id=rid, sha256=sha, host_platform=host, ledger_updated=False)

    ledger = Ledger.load(p.base_dir)
    if already_staged(final, sha):
        changed = fix_attrs(module, final, mode, owner, group)
        if ledger.record_staged(rid, version, sha, name):
            result['ledger_updated'] = True
            changed = True
            if not check_mode:
                ledger.save()
        result.update(staged=True, changed=changed)
        return result

    if not src and not url:
        details = dict(result)
        details.update(reason=NOT_STAGED)
        raise HotswapError("release %s is not staged at %s and neither src nor url was given. "
                           "Give src (a file on the controller) or url (for the host to download)."
                           % (rid, final), **details)

    # Conflicting ledger entry (same id, other digest): refuse before writing anything.
    ledger.record_staged(rid, version, sha, name)

    if src and move_src:
        # The header before creating any directory; the digest once, in the release dir, before it goes live.
        check_fits_host(read_executable_format(src), host, name)
    elif src:
        # Verify the source before creating any directory; stage_file verifies the copy again.
        check_local_artifact(src, sha, host, what=name)
    elif check_mode:
        check_url_reachable(url, url_timeout, validate_certs, opener)
    if check_mode:
        result.update(changed=True, ledger_updated=True)
        return result

    if src:
        stage_file(module, src, p.release_dir, name, sha, mode, owner, group, host, move=move_src)
    else:
        download_to_release(module, url, p.release_dir, name, sha, mode, owner, group,
                            timeout=url_timeout, validate_certs=validate_certs, host=host, opener=opener,
                            max_size=content.max_size)
    _save_staged(ledger, rid, final)
    result.update(changed=True, transferred=True, staged=True, ledger_updated=True)
    return result


def _save_staged(ledger, rid, final):
    try:
        ledger.save()
    except HotswapError as e:
        raise HotswapError("staging release %s: %s is in place but recording it in the ledger failed: %s "
                           "Rerun the task to record it." % (rid, final, e.msg))


def upload_release(module, p, rid, name, sha, content, src=None, url=None, version=None, mode='0755', owner=None,
                   group=None, url_timeout=30, validate_certs=True, check_mode=False, host=None, opener=None,
                   move_src=False):
    """Stage a release with files, an environment or an archive: built aside, renamed into place."""
    from ansible_collections.hotswap.deploy.plugins.module_utils import staging
    from ansible_collections.hotswap.deploy.plugins.module_utils.release_content import owner_names
    host = host or host_platform()
    final = os.path.join(p.release_dir, name)
    result = dict(changed=False, transferred=False, staged=False, path=final, release_dir=p.release_dir,
                  release_id=rid, sha256=sha, host_platform=host, ledger_updated=False,
                  files=[f['dest'] for f in content.files], artifact=content.fmt)
    staging.check_owners_exist(content.files)
    ledger = Ledger.load(p.base_dir)
    entry = ledger.release(rid) or {}
    binary_sha = entry.get('binary_sha256') or (sha if content.fmt == 'binary' else None)

    if os.path.lexists(p.release_dir):
        problems = staging.incomplete_release_problems(p.release_dir, name, binary_sha, content, owner_names)
        if not problems:
            changed = fix_attrs(module, final, mode, owner, group)
            if ledger.record_staged(rid, version, sha, name, content=content.ledger_fields(
                    binary_sha, entry.get('members'))):
                result['ledger_updated'] = changed = True
                if not check_mode:
                    ledger.save()
            result.update(staged=True, changed=changed)
            return result
        if not check_mode:
            staging.replace_broken_release(p.base_dir, p.release_dir, rid, problems)

    # Conflicting ledger entry (same id, other digest): refuse before writing anything.
    ledger.record_staged(rid, version, sha, name)
    sibling, sibling_entry = staging.sibling_release(ledger, p.releases_dir, rid, sha, content.fmt, name)
    if sibling is None and not src and not url:
        details = dict(result)
        details.update(reason=NOT_STAGED)
        raise HotswapError("release %s is not staged at %s and neither src nor url was given. "
                           "Give src (a file on the controller) or url (for the host to download)."
                           % (rid, p.release_dir), **details)
    if sibling is None and src:
        check_artifact_file(src, sha, name, content.fmt, content.strip_components, content.max_size, host)
    elif sibling is None and check_mode:
        check_url_reachable(url, url_timeout, validate_certs, opener)
    if check_mode:
        result.update(changed=True, ledger_updated=True)
        return result

    created = make_dirs(p.releases_dir)
    tmp = staging.new_staging_dir(p.releases_dir, rid)
    try:
        if sibling is not None:
            binary_sha = staging.copy_from_sibling(sibling, sibling_entry, tmp, name)
            members = sibling_entry.get('members')
        elif content.fmt == 'binary':
            if src:
                stage_file(module, src, tmp, name, sha, mode, owner, group, host, move=move_src)
            else:
                download_to_release(module, url, tmp, name, sha, mode, owner, group, timeout=url_timeout,
                                    validate_certs=validate_certs, host=host, opener=opener, max_size=content.max_size)
            binary_sha, members = sha, None
        else:
            binary_sha, members = _unpack_archive(module, p, tmp, name, sha, content, src, url, mode, owner, group,
                                                  url_timeout, validate_certs, host, opener)
        for f in content.files:
            staging.write_release_file(module, tmp, f)
        staging.write_environment(tmp, content.env_bytes)
        staging.publish_release(tmp, p.release_dir)
        tmp = None
    except BaseException as e:
        staging.remove_tree_quietly(tmp)
        remove_created_dirs(created)
        if isinstance(e, OSError):
            raise HotswapError("staging release %s into %s: %s. Check free space and permissions; nothing was staged."
                               % (rid, p.releases_dir, getattr(e, 'strerror', None) or e))
        raise
    ledger.record_staged(rid, version, sha, name, content=content.ledger_fields(binary_sha, members))
    _save_staged(ledger, rid, final)
    result.update(changed=True, transferred=sibling is None, staged=True, ledger_updated=True,
                  copied_from=os.path.basename(sibling) if sibling else None)
    return result


def check_artifact_file(path, sha, name, fmt='binary', strip_components=0, max_size=None, host=None, what=None):
    """Digest and executable header of an artifact file (a binary, or an archive of ``fmt`` holding ``name``)."""
    if fmt == 'binary':
        return check_local_artifact(path, sha, host, what=what or name)
    from ansible_collections.hotswap.deploy.plugins.module_utils.staging import check_archive_artifact
    what = what or os.path.basename(path)
    check_digest(path, sha, what)
    fmt = check_archive_artifact(path, fmt, name, strip_components, max_size, what)
    if host is not None:
        check_fits_host(fmt, host, '%s in %s' % (name, what))
    elif fmt is None:
        raise HotswapError("uploading %s: %s inside it is not an executable (no ELF, PE or Mach-O header). Name the "
                           "executable of the archive in binary." % (what, name))
    return fmt


def _unpack_archive(module, p, tmp, name, sha, content, src, url, mode, owner, group, url_timeout, validate_certs,
                    host, opener):
    """Verify the archive's checksum, then extract it into the staging dir: (binary sha256, members)."""
    from ansible_collections.hotswap.deploy.plugins.module_utils import archive as archives
    path = src
    downloaded = None
    try:
        if url:
            f, downloaded = partial_file(p.releases_dir, 'artifact')
            with f:
                url_writer(url, name, mask_url(url), url_timeout, validate_certs, opener, content.max_size)(f)
            path = downloaded
        check_artifact_file(path, sha, name, content.fmt, content.strip_components, content.max_size, host,
                            what=os.path.basename(url or src))
        members = archives.extract_archive(path, content.fmt, tmp, content.strip_components, content.max_size)
    finally:
        unlink_quietly(downloaded)
    binary = os.path.join(tmp, name)
    _apply_attrs(module, binary, mode, owner, group)
    return sha256_file(binary), sorted(members)


# binary_upload's options; release_cutover's upload step takes the same.
UPLOAD_SPEC = dict(
    src=dict(type='path'),
    move_src=dict(type='bool', default=False),
    url=dict(type='str'),
    checksum=dict(type='str', required=True),
    name=dict(type='str', required=True),
    version=dict(type='str'),
    mode=dict(type='raw', default='0755'),
    owner=dict(type='str'),
    group=dict(type='str'),
    url_timeout=dict(type='int', default=30),
    url_headers=dict(type='dict', default={}, no_log=True),
    url_username=dict(type='str'),
    url_password=dict(type='str', no_log=True),
    format=dict(type='str', default='auto', choices=['auto', 'binary', 'tar.gz', 'zip']),
    strip_components=dict(type='int', default=0),
    max_size=dict(type='int', default=1024 ** 3),
    validate_certs=dict(type='bool', default=True),
)
UPLOAD_SPEC.update(CONTENT_SPEC)
UPLOAD_SPEC.update(BASE_DIR_SPEC)
UPLOAD_SPEC.update(RELEASE_ID_SPEC)
UPLOAD_SPEC.update(LOCK_OWNER_SPEC)
UPLOAD_MUTUALLY_EXCLUSIVE = [('src', 'url')]


def run_upload(module, p, check_mode):
    """binary_upload with its checked options ``p`` (UPLOAD_SPEC): the module result. Raises HotswapError."""
    from ansible_collections.hotswap.deploy.plugins.module_utils.archive import archive_format
    fmt = archive_format(p['src'] or p['url'] or p['name'], p['format'])
    content = release_content(p['name'], p['files'], p['environment'], p['environment_secret'], fmt,
                              p['strip_components'], p['max_size'])
    opener = authenticated_opener(dict(headers=p['url_headers'], username=p['url_username'],
                                       password=p['url_password']))
    return upload(module, p['base_dir'], p['release_id'], p['name'], p['checksum'], src=p['src'], url=p['url'],
                  version=p['version'], mode=p['mode'], owner=p['owner'], group=p['group'],
                  url_timeout=p['url_timeout'], validate_certs=p['validate_certs'], check_mode=check_mode,
                  opener=opener, content=content, lock_owner=p['lock_owner'], move_src=p['move_src'])
