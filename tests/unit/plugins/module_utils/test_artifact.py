# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Unit tests for module_utils/artifact.py (no hosts; a local HTTP server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import threading

import pytest

from ansible.module_utils.basic import AnsibleModule
from core_compat import patch_module_args

from ansible_collections.hotswap.deploy.plugins.module_utils import artifact
from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import (
    already_staged,
    check_fits_host,
    download_to_release,
    host_platform,
    parse_checksum,
    read_executable_format,
    sha256_file,
    stage_file,
    upload,
    validate_binary_name,
    validate_url,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

LINUX_AMD64 = {'os': 'linux', 'arch': 'x86_64'}
LINUX_ARM64 = {'os': 'linux', 'arch': 'aarch64'}

# --------------------------------------------------------------------------------------------
# fixtures


GO_MAIN = 'package main\n\nimport "os"\n\nfunc main() { os.Stdout.WriteString("hotswap test\\n") }\n'
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))


def _go_cache():
    """A persistent build cache (cross-compiling the runtime for 9 targets is slow the first time)."""
    cache = os.environ.get('GOCACHE')
    if cache:
        return cache
    return os.path.join(REPO_ROOT, 'build', 'go-cache')


GO_TARGETS = [
    ('linux', 'amd64', {'format': 'elf', 'os': 'linux', 'arch': 'x86_64', 'bits': 64}),
    ('linux', 'arm64', {'format': 'elf', 'os': 'linux', 'arch': 'aarch64', 'bits': 64}),
    ('windows', 'amd64', {'format': 'pe', 'os': 'windows', 'arch': 'x86_64', 'bits': 64}),
    ('darwin', 'arm64', {'format': 'macho', 'os': 'darwin', 'arch': 'aarch64', 'bits': 64}),
]
# (other architectures and OS ABIs are covered by crafted headers below: cross-building the Go
# runtime for each target costs ~15 s on a cold build cache)


def _go_build(go, src, out, goos, goarch):
    env = dict(os.environ, CGO_ENABLED='0', GOOS=goos, GOARCH=goarch, GO111MODULE='off',
               GOCACHE=_go_cache(), GOFLAGS='')
    env.setdefault('HOME', os.path.dirname(str(out)))
    subprocess.run([go, 'build', '-trimpath', '-ldflags=-s -w', '-o', str(out), str(src)],
                   check=True, cwd=os.path.dirname(str(out)), env=env, capture_output=True)
    return str(out)


@pytest.fixture(scope='session')
def go_binaries(tmp_path_factory):
    """Tiny stdlib-only Go programs cross-built for several platforms: {(goos, goarch): path},
    plus 'v2': another linux/amd64 program (same platform, different digest)."""
    go = shutil.which('go') or ('/usr/bin/go' if os.path.exists('/usr/bin/go') else None)
    if not go:
        pytest.skip('go toolchain not available')
    root = tmp_path_factory.mktemp('gobin')
    src = root / 'main.go'
    src.write_text(GO_MAIN)
    built = {}
    for goos, goarch, expected in GO_TARGETS:
        out = root / ('app-%s-%s%s' % (goos, goarch, '.exe' if goos == 'windows' else ''))
        built[(goos, goarch)] = _go_build(go, src, out, goos, goarch)
    src.write_text(GO_MAIN.replace('hotswap test', 'hotswap test v2'))
    built['v2'] = _go_build(go, src, root / 'app-linux-amd64-v2', 'linux', 'amd64')
    return built


def sha(path):
    return sha256_file(str(path))


def checksum_of(path):
    return 'sha256:' + sha(path)


@pytest.fixture
def module():
    """A real AnsibleModule (for set_mode_if_different & co.)."""
    def make(check_mode=False):
        with patch_module_args({'_ansible_check_mode': check_mode}):
            return AnsibleModule(argument_spec={}, supports_check_mode=True)
    return make


def leftovers(directory):
    """Hidden partial files left in a directory."""
    if not os.path.isdir(str(directory)):
        return []
    return [n for n in os.listdir(str(directory)) if '.partial-' in n]


# --------------------------------------------------------------------------------------------
# checksums

HEX = 'ab' * 32


def test_parse_checksum_ok():
    assert parse_checksum('sha256:' + HEX) == HEX
    assert parse_checksum('SHA256:' + HEX.upper()) == HEX
    assert parse_checksum('  sha256:%s\n' % HEX) == HEX


@pytest.mark.parametrize('value, fragment', [
    ('', 'empty'),
    (None, 'empty'),
    (HEX, 'no algorithm prefix'),
    ('md5:d41d8cd98f00b204e9800998ecf8427e', 'Only sha256'),
    ('sha512:' + 'a' * 128, 'Only sha256'),
    ('sha256:' + HEX[:-1], '63 characters'),
    ('sha256:' + HEX[:-1] + 'g', 'not a sha256 digest'),
    ('sha256', 'not of the form'),
    ('sha256:', 'not a sha256 digest'),
])
def test_parse_checksum_errors(value, fragment):
    with pytest.raises(HotswapError) as e:
        parse_checksum(value)
    assert fragment in e.value.msg
    assert e.value.msg.startswith('checking the checksum option')


def test_sha256_file_streams(tmp_path):
    data = os.urandom(artifact.CHUNK * 2 + 123)
    p = tmp_path / 'blob'
    p.write_bytes(data)
    assert sha256_file(str(p)) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / 'empty'
    empty.write_bytes(b'')
    assert sha256_file(str(empty)) == hashlib.sha256(b'').hexdigest()


# --------------------------------------------------------------------------------------------
# executable headers: real Go binaries


@pytest.mark.parametrize('goos, goarch, expected', GO_TARGETS, ids=['%s-%s' % t[:2] for t in GO_TARGETS])
def test_read_executable_format_go(go_binaries, goos, goarch, expected):
    path = go_binaries[(goos, goarch)]
    assert read_executable_format(path) == expected
    with open(path, 'rb') as f:
        assert read_executable_format(f.read()) == expected


def test_go_binary_fits_only_its_platform(go_binaries):
    fmt = read_executable_format(go_binaries[('linux', 'amd64')])
    check_fits_host(fmt, LINUX_AMD64)
    with pytest.raises(HotswapError) as e:
        check_fits_host(fmt, LINUX_ARM64, 'myapp')
    assert e.value.msg == ('uploading myapp: it is a linux/x86_64 ELF executable but the host is linux/aarch64. '
                           'Build for GOOS=linux GOARCH=arm64 or pick the right artifact.')


def test_windows_exe_refused_on_linux(go_binaries):
    fmt = read_executable_format(go_binaries[('windows', 'amd64')])
    with pytest.raises(HotswapError) as e:
        check_fits_host(fmt, LINUX_ARM64, 'app.exe')
    assert e.value.msg == ('uploading app.exe: it is a windows/x86_64 PE executable but the host is '
                           'linux/aarch64. Build for GOOS=linux GOARCH=arm64 or pick the right artifact.')


def test_darwin_refused_on_linux(go_binaries):
    fmt = read_executable_format(go_binaries[('darwin', 'arm64')])
    with pytest.raises(HotswapError) as e:
        check_fits_host(fmt, LINUX_AMD64, 'app')
    assert 'darwin/aarch64 Mach-O executable' in e.value.msg
    assert 'GOOS=linux GOARCH=amd64' in e.value.msg


# --------------------------------------------------------------------------------------------
# executable headers: crafted bytes


def elf(ei_class=2, ei_data=1, osabi=0, e_type=2, machine=62):
    end = '<' if ei_data == 1 else '>'
    ident = b'\x7fELF' + bytes([ei_class, ei_data, 1, osabi]) + b'\0' * 8
    return ident + struct.pack(end + 'HHI', e_type, machine, 1) + b'\0' * 40


def pe(machine=0x8664, characteristics=0x0022, lfanew=0x80):
    dos = bytearray(lfanew)
    dos[0:2] = b'MZ'
    dos[0x3c:0x40] = struct.pack('<I', lfanew)
    coff = b'PE\0\0' + struct.pack('<HHIIIHH', machine, 3, 0, 0, 0, 0xf0, characteristics)
    return bytes(dos) + coff + b'\0' * 64


def macho(cputype, filetype=2, magic=b'\xcf\xfa\xed\xfe'):
    return magic + struct.pack('<iII', cputype, 0, filetype) + b'\0' * 32


@pytest.mark.parametrize('data, expected', [
    (elf(), {'format': 'elf', 'os': 'linux', 'arch': 'x86_64', 'bits': 64}),
    (elf(e_type=3, machine=183), {'format': 'elf', 'os': 'linux', 'arch': 'aarch64', 'bits': 64}),  # PIE
    (elf(ei_class=1, machine=3), {'format': 'elf', 'os': 'linux', 'arch': 'i386', 'bits': 32}),
    (elf(ei_class=1, machine=40), {'format': 'elf', 'os': 'linux', 'arch': 'arm', 'bits': 32}),
    (elf(osabi=3), {'format': 'elf', 'os': 'linux', 'arch': 'x86_64', 'bits': 64}),          # GNU ABI
    (elf(osabi=9), {'format': 'elf', 'os': 'freebsd', 'arch': 'x86_64', 'bits': 64}),
    (elf(machine=21), {'format': 'elf', 'os': 'linux', 'arch': 'ppc64le', 'bits': 64}),
    (elf(ei_data=2, machine=21), {'format': 'elf', 'os': 'linux', 'arch': 'ppc64', 'bits': 64}),
    (elf(ei_data=2, machine=22), {'format': 'elf', 'os': 'linux', 'arch': 's390x', 'bits': 64}),
    (elf(machine=243), {'format': 'elf', 'os': 'linux', 'arch': 'riscv64', 'bits': 64}),
    (elf(machine=0x1234), {'format': 'elf', 'os': 'linux', 'arch': 'elf-machine-4660', 'bits': 64}),
    (pe(), {'format': 'pe', 'os': 'windows', 'arch': 'x86_64', 'bits': 64}),
    (pe(machine=0xaa64), {'format': 'pe', 'os': 'windows', 'arch': 'aarch64', 'bits': 64}),
    (pe(machine=0x14c, characteristics=0x0102), {'format': 'pe', 'os': 'windows', 'arch': 'i386', 'bits': 32}),
    (pe(lfanew=8000), {'format': 'pe', 'os': 'windows', 'arch': 'x86_64', 'bits': 64}),   # beyond first read
    (macho(0x0100000c), {'format': 'macho', 'os': 'darwin', 'arch': 'aarch64', 'bits': 64}),
    (macho(0x01000007), {'format': 'macho', 'os': 'darwin', 'arch': 'x86_64', 'bits': 64}),
    (macho(7, magic=b'\xce\xfa\xed\xfe'), {'format': 'macho', 'os': 'darwin', 'arch': 'i386', 'bits': 32}),
])
def test_read_executable_format_crafted(data, expected):
    assert read_executable_format(data) == expected


def test_macho_universal():
    data = b'\xca\xfe\xba\xbe' + struct.pack('>I', 2)
    data += struct.pack('>IIIII', 0x01000007, 3, 0x1000, 100, 12)
    data += struct.pack('>IIIII', 0x0100000c, 0, 0x8000, 100, 14)
    fmt = read_executable_format(data)
    assert fmt == {'format': 'macho', 'os': 'darwin', 'arch': 'universal', 'arches': ['aarch64', 'x86_64'],
                   'bits': 64}
    check_fits_host(fmt, {'os': 'darwin', 'arch': 'aarch64'})
    with pytest.raises(HotswapError) as e:
        check_fits_host(fmt, LINUX_AMD64, 'app')
    assert 'darwin/universal(aarch64,x86_64) Mach-O executable' in e.value.msg


@pytest.mark.parametrize('data', [
    b'',
    b'#!/bin/sh\necho hi\n',
    b'PK\x03\x04' + b'\0' * 100,                                  # zip
    b'\x1f\x8b\x08' + b'\0' * 100,                                # gzip (e.g. a .tar.gz release)
    b'\xca\xfe\xba\xbe\x00\x00\x00\x34' + b'\0' * 64,             # Java class file, not fat Mach-O
    b'\x7fELF',                                                   # truncated
    elf(e_type=1),                                                # relocatable object
    elf(e_type=4),                                                # core dump
    elf(ei_class=3),                                              # bad class
    pe(characteristics=0x2022),                                   # a DLL
    pe(characteristics=0x0020),                                   # not an executable image
    b'MZ' + b'\0' * 200,                                          # DOS program, no PE header
    macho(0x0100000c, filetype=6),                                # dylib
])
def test_read_executable_format_not_executable(data):
    assert read_executable_format(data) is None


def test_not_executable_message():
    with pytest.raises(HotswapError) as e:
        check_fits_host(None, LINUX_AMD64, 'myapp.tar.gz')
    assert e.value.msg.startswith('uploading myapp.tar.gz: it is not an executable')
    assert 'GOOS=linux GOARCH=amd64' in e.value.msg


# --------------------------------------------------------------------------------------------
# host platform


@pytest.mark.parametrize('system, machine, expected', [
    ('Linux', 'x86_64', LINUX_AMD64),
    ('Linux', 'amd64', LINUX_AMD64),
    ('Linux', 'aarch64', LINUX_ARM64),
    ('Linux', 'arm64', LINUX_ARM64),
    ('Linux', 'armv7l', {'os': 'linux', 'arch': 'arm'}),
    ('Linux', 'armv6l', {'os': 'linux', 'arch': 'arm'}),
    ('Linux', 'i686', {'os': 'linux', 'arch': 'i386'}),
    ('Linux', 'ppc64le', {'os': 'linux', 'arch': 'ppc64le'}),
    ('Linux', 's390x', {'os': 'linux', 'arch': 's390x'}),
    ('Darwin', 'arm64', {'os': 'darwin', 'arch': 'aarch64'}),
    ('Windows', 'AMD64', {'os': 'windows', 'arch': 'x86_64'}),
    ('FreeBSD', 'amd64', {'os': 'freebsd', 'arch': 'x86_64'}),
])
def test_host_platform(monkeypatch, system, machine, expected):
    monkeypatch.setattr(artifact.platform, 'system', lambda: system)
    monkeypatch.setattr(artifact.platform, 'machine', lambda: machine)
    assert host_platform() == expected


def test_host_platform_real_matches_python_binary():
    # the interpreter running the tests is an executable for this very host
    import sys
    fmt = read_executable_format(os.path.realpath(sys.executable))
    if fmt is None:
        pytest.skip('sys.executable is not a binary')
    check_fits_host(fmt, host_platform())


# --------------------------------------------------------------------------------------------
# names, urls


@pytest.mark.parametrize('name', ['', '.', '..', '.hidden', 'a/b', '../x', 'a\\b', 'a\0b', None])
def test_validate_binary_name_bad(name):
    with pytest.raises(HotswapError):
        validate_binary_name(name)


def test_validate_binary_name_ok():
    assert validate_binary_name('my-app_1.2') == 'my-app_1.2'


@pytest.mark.parametrize('url', ['ftp://127.0.0.1/a', 'file:///etc/passwd', '/tmp/a', 'http://', '127.0.0.1/a',
                                 's3://bucket/a', ''])
def test_validate_url_bad(url):
    with pytest.raises(HotswapError) as e:
        validate_url(url)
    assert 'http' in e.value.msg


def test_validate_url_masks_password():
    with pytest.raises(HotswapError) as e:
        validate_url('ftp://%s@127.0.0.1/a' % 'user:secret')   # credentials on a loopback URL
    assert 'secret' not in e.value.msg


# --------------------------------------------------------------------------------------------
# already_staged


def test_already_staged(tmp_path):
    p = tmp_path / 'app'
    assert already_staged(str(p), HEX) is False
    assert already_staged(str(tmp_path / 'missing-dir' / 'app'), HEX) is False
    p.write_bytes(b'data')
    assert already_staged(str(p), hashlib.sha256(b'data').hexdigest()) is True
    with pytest.raises(HotswapError) as e:
        already_staged(str(p), HEX)
    assert 'immutable' in e.value.msg
    d = tmp_path / 'dir'
    d.mkdir()
    with pytest.raises(HotswapError):
        already_staged(str(d), HEX)
    link = tmp_path / 'link'
    link.symlink_to(p)
    with pytest.raises(HotswapError):
        already_staged(str(link), hashlib.sha256(b'data').hexdigest())


# --------------------------------------------------------------------------------------------
# stage_file


def test_stage_file_ok(tmp_path, go_binaries, module):
    src = go_binaries[('linux', 'amd64')]
    rel = tmp_path / 'base' / 'releases' / 'r1'
    final = stage_file(module(), src, str(rel), 'app', sha(src), mode='0750', host=LINUX_AMD64)
    assert final == str(rel / 'app')
    assert sha(final) == sha(src)
    assert stat.S_IMODE(os.stat(final).st_mode) == 0o750
    assert os.listdir(str(rel)) == ['app']


def test_stage_file_default_mode_is_executable(tmp_path, go_binaries, module):
    src = go_binaries[('linux', 'amd64')]
    final = stage_file(module(), src, str(tmp_path / 'r'), 'app', sha(src), mode=None, host=LINUX_AMD64)
    assert stat.S_IMODE(os.stat(final).st_mode) == 0o755
    final2 = stage_file(module(), src, str(tmp_path / 'r2'), 'app', sha(src), mode='u=rwx,g=rx,o=',
                        host=LINUX_AMD64)
    assert stat.S_IMODE(os.stat(final2).st_mode) == 0o750


def test_stage_file_checksum_mismatch_leaves_nothing(tmp_path, go_binaries, module):
    src = go_binaries[('linux', 'amd64')]
    base = tmp_path / 'base'
    rel = base / 'releases' / 'r1'
    with pytest.raises(HotswapError) as e:
        stage_file(module(), src, str(rel), 'app', HEX, host=LINUX_AMD64)
    assert 'sha256 of the data is' in e.value.msg
    assert not base.exists()             # every directory this call created is gone
    assert list(tmp_path.iterdir()) == []


def test_stage_file_moves_a_pushed_copy_and_reads_it_once(tmp_path, go_binaries, module, monkeypatch):
    pushed = tmp_path / 'tmp' / 'hotswap-upload-app'
    pushed.parent.mkdir()
    shutil.copy(go_binaries[('linux', 'amd64')], str(pushed))
    inode = os.stat(str(pushed)).st_ino
    reads = []
    real = artifact.sha256_file
    monkeypatch.setattr(artifact, 'sha256_file', lambda path: reads.append(path) or real(path))
    rel = tmp_path / 'base' / 'releases' / 'r1'
    final = stage_file(module(), str(pushed), str(rel), 'app', sha(go_binaries[('linux', 'amd64')]),
                       host=LINUX_AMD64, move=True)
    assert os.stat(final).st_ino == inode and not pushed.exists()     # renamed, not copied
    assert len(reads) == 1 and os.listdir(str(rel)) == ['app']
    assert stat.S_IMODE(os.stat(final).st_mode) == 0o755


def test_stage_file_copies_a_pushed_copy_from_another_filesystem(tmp_path, go_binaries, module, monkeypatch):
    import errno as errno_
    src = go_binaries[('linux', 'amd64')]

    def cross_device(a, b):
        raise OSError(errno_.EXDEV, 'Invalid cross-device link')
    monkeypatch.setattr(artifact.os, 'rename', cross_device)
    rel = tmp_path / 'r1'
    final = stage_file(module(), src, str(rel), 'app', sha(src), host=LINUX_AMD64, move=True)
    assert sha(final) == sha(src) and os.path.exists(src)


def test_stage_file_a_moved_copy_with_the_wrong_digest_leaves_nothing(tmp_path, go_binaries, module):
    pushed = tmp_path / 'hotswap-upload-app'
    shutil.copy(go_binaries[('linux', 'amd64')], str(pushed))
    base = tmp_path / 'base'
    with pytest.raises(HotswapError) as e:
        stage_file(module(), str(pushed), str(base / 'releases' / 'r1'), 'app', HEX, host=LINUX_AMD64, move=True)
    assert 'sha256 of the data is' in e.value.msg and not base.exists()


def test_stage_file_wrong_platform_keeps_existing_dirs(tmp_path, go_binaries, module):
    src = go_binaries[('windows', 'amd64')]
    rel = tmp_path / 'base' / 'releases' / 'r1'
    (tmp_path / 'base' / 'releases').mkdir(parents=True)
    with pytest.raises(HotswapError) as e:
        stage_file(module(), src, str(rel), 'app', sha(src), host=LINUX_AMD64)
    assert 'windows/x86_64 PE executable but the host is linux/x86_64' in e.value.msg
    assert not rel.exists()                               # created by the call: removed
    assert (tmp_path / 'base' / 'releases').is_dir()      # existed before: kept


def test_stage_file_existing_release_dir_kept(tmp_path, module):
    rel = tmp_path / 'r1'
    rel.mkdir()
    (rel / 'other').write_text('x')
    src = tmp_path / 'script'
    src.write_text('#!/bin/sh\n')
    with pytest.raises(HotswapError) as e:
        stage_file(module(), str(src), str(rel), 'app', sha(src), host=LINUX_AMD64)
    assert 'not an executable' in e.value.msg
    assert sorted(os.listdir(str(rel))) == ['other']


def test_stage_file_never_exposes_partial(tmp_path, go_binaries, module, monkeypatch):
    """While data is written and verified, the final path does not exist."""
    src = go_binaries[('linux', 'amd64')]
    rel = tmp_path / 'r1'
    seen = []
    real = artifact.sha256_file

    def spy(path):
        seen.append((os.path.basename(path), os.path.exists(str(rel / 'app'))))
        return real(path)
    monkeypatch.setattr(artifact, 'sha256_file', spy)
    stage_file(module(), src, str(rel), 'app', sha(src), host=LINUX_AMD64)
    partial_checks = [s for s in seen if s[0].startswith('.app.partial-')]
    assert partial_checks and all(exists is False for name, exists in partial_checks)
    assert os.listdir(str(rel)) == ['app']


def test_stage_file_interrupted_write_cleans_up(tmp_path, go_binaries, module, monkeypatch):
    src = go_binaries[('linux', 'amd64')]
    rel = tmp_path / 'r1'

    def boom(module_, partial, *a, **kw):
        assert os.path.exists(partial)
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(artifact, 'finish_partial', boom)
    with pytest.raises(HotswapError) as e:
        stage_file(module(), src, str(rel), 'app', sha(src), host=LINUX_AMD64)
    assert 'No space left on device' in e.value.msg
    assert not rel.exists()


def test_stage_file_does_not_replace_other_binary(tmp_path, go_binaries, module, monkeypatch):
    """A different binary appearing at the final path concurrently is not overwritten."""
    src = go_binaries[('linux', 'amd64')]
    rel = tmp_path / 'r1'
    rel.mkdir()
    real_publish = artifact._publish

    def racing(partial, final):
        with open(final, 'wb') as f:
            f.write(b'someone else')
        return real_publish(partial, final)
    monkeypatch.setattr(artifact, '_publish', racing)
    with pytest.raises(HotswapError) as e:
        stage_file(module(), src, str(rel), 'app', sha(src), host=LINUX_AMD64)
    assert 'immutable' in e.value.msg
    assert (rel / 'app').read_bytes() == b'someone else'
    assert leftovers(rel) == []


def test_stage_file_missing_source(tmp_path, module):
    with pytest.raises(HotswapError) as e:
        stage_file(module(), str(tmp_path / 'nope'), str(tmp_path / 'r1'), 'app', HEX, host=LINUX_AMD64)
    assert 'cannot read the source' in e.value.msg
    assert not (tmp_path / 'r1').exists()


# --------------------------------------------------------------------------------------------
# download


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    """Serve a directory on 127.0.0.1; yields (root_dir, base_url)."""
    root = tmp_path / 'www'
    root.mkdir()

    def handler(*a, **kw):
        return _Handler(*a, directory=str(root), **kw)
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    t = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    t.start()
    try:
        yield root, 'http://127.0.0.1:%d' % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_download_ok(tmp_path, http_root, go_binaries, module):
    root, base = http_root
    src = go_binaries[('linux', 'amd64')]
    shutil.copy(src, str(root / 'app'))
    rel = tmp_path / 'base' / 'releases' / 'r1'
    final = download_to_release(module(), base + '/app', str(rel), 'app', sha(src), host=LINUX_AMD64, timeout=10)
    assert sha(final) == sha(src)
    assert os.listdir(str(rel)) == ['app']


def test_download_404(tmp_path, http_root, module):
    root, base = http_root
    rel = tmp_path / 'base' / 'releases' / 'r1'
    with pytest.raises(HotswapError) as e:
        download_to_release(module(), base + '/missing', str(rel), 'app', HEX, host=LINUX_AMD64, timeout=10)
    assert e.value.msg.startswith('downloading app from %s/missing: HTTP 404' % base)
    assert not (tmp_path / 'base').exists()


def test_download_unreachable(tmp_path, module):
    url = 'http://127.0.0.1:%d/app' % free_port()
    rel = tmp_path / 'base' / 'releases' / 'r1'
    with pytest.raises(HotswapError) as e:
        download_to_release(module(), url, str(rel), 'app', HEX, host=LINUX_AMD64, timeout=5)
    assert url in e.value.msg
    assert 'refused' in e.value.msg.lower()
    assert not (tmp_path / 'base').exists()


def test_download_checksum_mismatch(tmp_path, http_root, go_binaries, module):
    root, base = http_root
    shutil.copy(go_binaries[('linux', 'amd64')], str(root / 'app'))
    rel = tmp_path / 'r1'
    with pytest.raises(HotswapError) as e:
        download_to_release(module(), base + '/app', str(rel), 'app', HEX, host=LINUX_AMD64, timeout=10)
    assert 'sha256 of the data is' in e.value.msg
    assert not rel.exists()


def test_download_wrong_arch(tmp_path, http_root, go_binaries, module):
    root, base = http_root
    src = go_binaries[('linux', 'arm64')]
    shutil.copy(src, str(root / 'app'))
    rel = tmp_path / 'r1'
    with pytest.raises(HotswapError) as e:
        download_to_release(module(), base + '/app', str(rel), 'app', sha(src), host=LINUX_AMD64, timeout=10)
    assert 'linux/aarch64 ELF executable but the host is linux/x86_64' in e.value.msg
    assert not rel.exists()


def test_download_broken_stream(tmp_path, module):
    class Resp(object):
        def __init__(self):
            self.n = 0

        def read(self, size):
            self.n += 1
            if self.n > 2:
                raise ConnectionResetError(104, 'Connection reset by peer')
            return b'x' * 10

        def close(self):
            pass
    rel = tmp_path / 'r1'
    with pytest.raises(HotswapError) as e:
        download_to_release(module(), 'https://127.0.0.1:1/app', str(rel), 'app', HEX, host=LINUX_AMD64,
                            opener=lambda url, timeout, vc: Resp())
    assert 'broke off' in e.value.msg
    assert not rel.exists()


def test_download_rejects_non_http(tmp_path, module):
    with pytest.raises(HotswapError):
        download_to_release(module(), 'file:///etc/passwd', str(tmp_path / 'r1'), 'app', HEX, host=LINUX_AMD64)
    assert not (tmp_path / 'r1').exists()


# --------------------------------------------------------------------------------------------
# upload(): what the module does


def ledger_of(base):
    with open(os.path.join(str(base), '.hotswap', 'ledger.json')) as f:
        return json.load(f)


def test_upload_push_then_idempotent(tmp_path, go_binaries, module):
    src = go_binaries[('linux', 'amd64')]
    base = tmp_path / 'opt' / 'app'
    kw = dict(base_dir=str(base), release_id='1.0-abc', name='app', checksum=checksum_of(src), version='1.0',
              host=LINUX_AMD64)
    r = upload(module(), src=src, **kw)
    assert r['changed'] is True and r['transferred'] is True and r['staged'] is True
    assert r['path'] == str(base / 'releases' / '1.0-abc' / 'app')
    assert r['release_dir'] == str(base / 'releases' / '1.0-abc')
    assert r['sha256'] == sha(src)
    assert r['host_platform'] == LINUX_AMD64
    entry = ledger_of(base)['releases']['1.0-abc']
    assert entry['state'] == 'staged' and entry['sha256'] == sha(src) and entry['version'] == '1.0'
    assert entry['binary'] == 'app'

    r2 = upload(module(), src=src, **kw)
    assert r2['changed'] is False and r2['transferred'] is False and r2['staged'] is True
    r3 = upload(module(), **kw)   # verify-only
    assert r3['changed'] is False and r3['staged'] is True


def test_upload_fixes_mode_when_staged(tmp_path, go_binaries, module):
    src = go_binaries[('linux', 'amd64')]
    kw = dict(base_dir=str(tmp_path / 'b'), release_id='r1', name='app', checksum=checksum_of(src),
              host=LINUX_AMD64)
    r = upload(module(), src=src, **kw)
    os.chmod(r['path'], 0o700)
    r2 = upload(module(check_mode=True), mode='0755', check_mode=True, **kw)
    assert r2['changed'] is True and stat.S_IMODE(os.stat(r['path']).st_mode) == 0o700
    r3 = upload(module(), mode='0755', **kw)
    assert r3['changed'] is True and r3['transferred'] is False
    assert stat.S_IMODE(os.stat(r['path']).st_mode) == 0o755


def test_upload_verify_only_not_staged(tmp_path, module):
    base = tmp_path / 'b'
    with pytest.raises(HotswapError) as e:
        upload(module(), base_dir=str(base), release_id='r1', name='app', checksum='sha256:' + HEX,
               host=LINUX_AMD64)
    assert e.value.msg.startswith('release r1 is not staged at %s and neither src nor url was given'
                                  % (base / 'releases' / 'r1' / 'app'))
    assert e.value.details['reason'] == 'not_staged'
    assert e.value.details['staged'] is False
    assert e.value.details['host_platform'] == LINUX_AMD64
    assert not base.exists()


def test_upload_refuses_different_digest(tmp_path, go_binaries, module):
    a, b = go_binaries[('linux', 'amd64')], go_binaries['v2']
    kw = dict(base_dir=str(tmp_path / 'b'), release_id='r1', name='app', host=LINUX_AMD64)
    upload(module(), src=a, checksum=checksum_of(a), **kw)
    with pytest.raises(HotswapError) as e:
        upload(module(), src=b, checksum=checksum_of(b), **kw)
    assert 'immutable' in e.value.msg
    assert sha(tmp_path / 'b' / 'releases' / 'r1' / 'app') == sha(a)


def test_upload_refuses_ledger_conflict_before_writing(tmp_path, go_binaries, module):
    a, b = go_binaries[('linux', 'amd64')], go_binaries['v2']
    base = tmp_path / 'b'
    kw = dict(base_dir=str(base), release_id='r1', name='app', host=LINUX_AMD64)
    r = upload(module(), src=a, checksum=checksum_of(a), **kw)
    shutil.rmtree(r['release_dir'])   # the dir is gone, the ledger still knows r1 with digest a
    with pytest.raises(HotswapError) as e:
        upload(module(), src=a, checksum='sha256:' + sha(b), **kw)
    assert 'ledger already has it' in e.value.msg
    assert not os.path.exists(r['release_dir'])


@pytest.mark.parametrize('kw, fragment', [
    (dict(release_id=''), 'empty'),
    (dict(release_id='a/b'), '"/"'),
    (dict(release_id='..'), '".."'),
    (dict(base_dir='relative/dir'), 'not an absolute path'),
    (dict(checksum='md5:abc'), 'Only sha256'),
    (dict(name='../app'), 'not a plain file name'),
    (dict(url='ftp://127.0.0.1/app'), 'not an http'),
])
def test_upload_bad_input_changes_nothing(tmp_path, go_binaries, module, kw, fragment):
    src = go_binaries[('linux', 'amd64')]
    base = tmp_path / 'b'
    args = dict(base_dir=str(base), release_id='r1', name='app', checksum=checksum_of(src), src=src,
                host=LINUX_AMD64)
    args.update(kw)
    if 'url' in kw:
        args.pop('src')
    with pytest.raises(HotswapError) as e:
        upload(module(), **args)
    assert fragment in e.value.msg
    assert not base.exists()


def test_upload_src_checksum_mismatch_creates_nothing(tmp_path, go_binaries, module):
    src = go_binaries[('linux', 'amd64')]
    base = tmp_path / 'b'
    with pytest.raises(HotswapError) as e:
        upload(module(), base_dir=str(base), release_id='r1', name='app', checksum='sha256:' + HEX, src=src,
               host=LINUX_AMD64)
    assert 'checksum says' in e.value.msg
    assert not base.exists()


def test_upload_windows_exe_refused(tmp_path, go_binaries, module):
    src = go_binaries[('windows', 'amd64')]
    base = tmp_path / 'b'
    with pytest.raises(HotswapError) as e:
        upload(module(), base_dir=str(base), release_id='r1', name='app.exe', checksum=checksum_of(src), src=src,
               host=LINUX_AMD64)
    assert 'windows/x86_64 PE executable but the host is linux/x86_64' in e.value.msg
    assert not base.exists()


def test_upload_check_mode_changes_nothing(tmp_path, http_root, go_binaries, module):
    root, base_url = http_root
    src = go_binaries[('linux', 'amd64')]
    shutil.copy(src, str(root / 'app'))
    base = tmp_path / 'b'
    r = upload(module(check_mode=True), base_dir=str(base), release_id='r1', name='app',
               checksum=checksum_of(src), src=src, check_mode=True, host=LINUX_AMD64)
    assert r['changed'] is True and r['transferred'] is False and r['staged'] is False
    assert not base.exists()
    # check mode opens a pull's URL (see test_upload_check_mode_url_unreachable_changes_nothing), so serve it
    r = upload(module(check_mode=True), base_dir=str(base), release_id='r1', name='app',
               checksum=checksum_of(src), url=base_url + '/app', check_mode=True, host=LINUX_AMD64)
    assert r['changed'] is True
    assert not base.exists()


def test_upload_pull(tmp_path, http_root, go_binaries, module):
    root, base_url = http_root
    src = go_binaries[('linux', 'amd64')]
    shutil.copy(src, str(root / 'app'))
    base = tmp_path / 'b'
    kw = dict(base_dir=str(base), release_id='r1', name='app', checksum=checksum_of(src),
              url=base_url + '/app', url_timeout=10, host=LINUX_AMD64)
    r = upload(module(), **kw)
    assert r['changed'] is True and r['transferred'] is True
    assert sha(r['path']) == sha(src)
    assert ledger_of(base)['releases']['r1']['state'] == 'staged'
    (root / 'app').unlink()       # second run must not even contact the server
    r = upload(module(), **kw)
    assert r['changed'] is False and r['transferred'] is False


def test_upload_pull_unreachable_leaves_nothing(tmp_path, module):
    base = tmp_path / 'b'
    url = 'http://127.0.0.1:%d/app' % free_port()
    with pytest.raises(HotswapError) as e:
        upload(module(), base_dir=str(base), release_id='r1', name='app', checksum='sha256:' + HEX, url=url,
               url_timeout=5, host=LINUX_AMD64)
    assert url in e.value.msg
    assert not base.exists()


def test_check_url_reachable_ok(http_root):
    root, base = http_root
    (root / 'app').write_bytes(b'x' * 10)
    artifact.check_url_reachable(base + '/app', timeout=5)


@pytest.mark.parametrize('path,word', [('/missing', 'HTTP 404'), (None, 'refused')])
def test_check_url_reachable_fails_clearly(http_root, path, word):
    root, base = http_root
    url = base + path if path else 'http://127.0.0.1:%d/app' % free_port()
    with pytest.raises(HotswapError) as e:
        artifact.check_url_reachable(url, timeout=5)
    assert e.value.msg.startswith('checking the artifact url %s: it cannot be opened' % url)
    assert word.lower() in e.value.msg.lower()


def test_upload_check_mode_url_unreachable_changes_nothing(tmp_path, module):
    url = 'http://127.0.0.1:%d/app' % free_port()
    base = tmp_path / 'base'
    with pytest.raises(HotswapError) as e:
        upload(module(), str(base), 'r1', 'app', 'sha256:' + HEX, url=url, check_mode=True, host=LINUX_AMD64)
    assert url in e.value.msg
    assert not base.exists()
