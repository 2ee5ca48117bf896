# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Unit tests for module_utils/archive.py (real archives built with tarfile/zipfile in tmp_path)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import archive
from ansible_collections.hotswap.deploy.plugins.module_utils.archive import (
    Member,
    archive_format,
    check_archive,
    extract_archive,
    sniff_format,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

BINARY = b'\x7fELF' + b'\0' * 200
LICENSE = b'MIT License\n'
CONFIG = b'listen: :8080\n'

# --------------------------------------------------------------------------------------------
# building archives


def entry(name, data=b'', mode=0o644, kind=tarfile.REGTYPE, link=''):
    return dict(name=name, data=data, mode=mode, kind=kind, link=link)


def dir_entry(name, mode=0o755):
    return entry(name, mode=mode, kind=tarfile.DIRTYPE)


def symlink(name, target):
    return entry(name, mode=0o777, kind=tarfile.SYMTYPE, link=target)


def make_tar(path, entries):
    with tarfile.open(str(path), 'w:gz') as tar:
        for e in entries:
            info = tarfile.TarInfo(e['name'])
            info.type = e['kind']
            info.mode = e['mode']
            info.linkname = e['link']
            if e['kind'] == tarfile.REGTYPE:
                info.size = len(e['data'])
                tar.addfile(info, io.BytesIO(e['data']))
            else:
                tar.addfile(info)
    return str(path)


def make_zip(path, entries):
    """Entries: (name, data, unix mode or None); a mode with S_IFLNK makes a symlink."""
    with zipfile.ZipFile(str(path), 'w', zipfile.ZIP_DEFLATED) as z:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            # None: only the DOS archive bit, as zips made on Windows have (writestr sets 0600 for 0)
            info.external_attr = 0x20 if mode is None else mode << 16
            z.writestr(info, data)
    return str(path)


GORELEASER = [
    entry('myapp', BINARY, 0o755),
    entry('LICENSE', LICENSE, 0o644),
    dir_entry('config'),
    entry('config/default.yml', CONFIG, 0o640),
]


@pytest.fixture
def dest(tmp_path):
    d = tmp_path / 'dest'
    d.mkdir()
    return str(d)


def refused(path, fmt, dest, binary='myapp', **kw):
    """The HotswapError message of check_archive and extract_archive; extract_archive wrote nothing."""
    with pytest.raises(HotswapError) as checked:
        check_archive(path, fmt, binary, **kw)
    with pytest.raises(HotswapError) as extracted:
        extract_archive(path, fmt, dest, binary=binary, **kw)
    assert extracted.value.msg == checked.value.msg
    assert os.listdir(dest) == []
    return checked.value.msg


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


# --------------------------------------------------------------------------------------------
# format detection


@pytest.mark.parametrize('name, expected', [
    ('myapp_1.2.3_linux_amd64.tar.gz', 'tar.gz'),
    ('/tmp/build/MYAPP.TGZ', 'tar.gz'),
    ('myapp_1.2.3_windows_amd64.zip', 'zip'),
    ('myapp-linux-amd64', 'binary'),
    ('myapp.gz', 'binary'),
    ('http://127.0.0.1:8000/v1/myapp_linux_amd64.tar.gz?X-Amz-Signature=abc&x=.zip', 'tar.gz'),
    ('http://127.0.0.1:8000/download?file=myapp.tar.gz', 'binary'),
    ('http://127.0.0.1:8000/v1/myapp.zip#section', 'zip'),
    ('', 'binary'),
    (None, 'binary'),
])
def test_archive_format_from_name(name, expected):
    assert archive_format(name) == expected


def test_archive_format_explicit_wins():
    assert archive_format('myapp.tar.gz', 'binary') == 'binary'
    assert archive_format('myapp', 'zip') == 'zip'
    assert archive_format('myapp', 'TAR.GZ') == 'tar.gz'


def test_archive_format_rejects_unknown_choice():
    with pytest.raises(HotswapError) as e:
        archive_format('myapp', 'rar')
    assert e.value.msg.startswith("checking the format option: 'rar' is not one of auto, binary, tar.gz, zip.")


def test_sniff_format(tmp_path):
    tgz = make_tar(tmp_path / 'a.tar.gz', GORELEASER)
    zp = make_zip(tmp_path / 'a.zip', [('myapp', BINARY, 0o100755)])
    empty_zip = make_zip(tmp_path / 'empty.zip', [])
    binary = tmp_path / 'myapp'
    binary.write_bytes(BINARY)
    short = tmp_path / 'short'
    short.write_bytes(b'P')
    assert sniff_format(tgz) == 'tar.gz'
    assert sniff_format(zp) == 'zip'
    assert sniff_format(empty_zip) == 'zip'
    assert sniff_format(str(binary)) is None
    assert sniff_format(str(short)) is None


# --------------------------------------------------------------------------------------------
# good archives


def test_goreleaser_tar_extracts_with_modes(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp_1.0_linux_amd64.tar.gz', GORELEASER)
    members = check_archive(path, 'tar.gz', 'myapp')
    assert [(m.name, m.kind, m.size, m.mode) for m in members] == [
        ('myapp', 'file', len(BINARY), 0o755),
        ('LICENSE', 'file', len(LICENSE), 0o644),
        ('config', 'dir', 0, 0o755),
        ('config/default.yml', 'file', len(CONFIG), 0o640),
    ]
    assert members[0].as_dict() == dict(name='myapp', kind='file', size=len(BINARY), mode=0o755, target=None)

    written = extract_archive(path, 'tar.gz', dest)
    assert sorted(written) == ['LICENSE', 'config', 'config/default.yml', 'myapp']
    with open(os.path.join(dest, 'myapp'), 'rb') as f:
        assert f.read() == BINARY
    with open(os.path.join(dest, 'config', 'default.yml'), 'rb') as f:
        assert f.read() == CONFIG
    assert mode_of(os.path.join(dest, 'myapp')) == 0o755
    assert mode_of(os.path.join(dest, 'LICENSE')) == 0o644
    assert mode_of(os.path.join(dest, 'config')) == 0o755
    assert mode_of(os.path.join(dest, 'config', 'default.yml')) == 0o640


def test_goreleaser_zip_extracts_with_modes(tmp_path, dest):
    path = make_zip(tmp_path / 'myapp_1.0_linux_amd64.zip', [
        ('myapp', BINARY, 0o100755),
        ('LICENSE', LICENSE, None),              # no Unix mode: 0644
        ('config/', b'', 0o40755),
        ('config/default.yml', CONFIG, 0o100600),
    ])
    names = [m.name for m in check_archive(path, 'zip', 'myapp')]
    assert names == ['myapp', 'LICENSE', 'config', 'config/default.yml']
    assert sorted(extract_archive(path, 'zip', dest)) == ['LICENSE', 'config', 'config/default.yml', 'myapp']
    assert mode_of(os.path.join(dest, 'myapp')) == 0o755
    assert mode_of(os.path.join(dest, 'LICENSE')) == 0o644
    assert mode_of(os.path.join(dest, 'config', 'default.yml')) == 0o600
    with open(os.path.join(dest, 'myapp'), 'rb') as f:
        assert f.read() == BINARY


def test_group_write_and_setuid_are_dropped(tmp_path, dest):
    path = make_tar(tmp_path / 'a.tar.gz', [entry('myapp', BINARY, 0o4777), entry('notes', b'x', 0o666)])
    extract_archive(path, 'tar.gz', dest)
    assert mode_of(os.path.join(dest, 'myapp')) == 0o755
    assert mode_of(os.path.join(dest, 'notes')) == 0o644


def test_strip_components_removes_wrapping_dir(tmp_path, dest):
    path = make_tar(tmp_path / 'a.tar.gz', [
        dir_entry('myapp_1.0_linux_amd64'),
        entry('myapp_1.0_linux_amd64/myapp', BINARY, 0o755),
        entry('myapp_1.0_linux_amd64/config/default.yml', CONFIG),
    ])
    members = check_archive(path, 'tar.gz', 'myapp', strip_components=1)
    assert [(m.name, m.original) for m in members] == [
        ('myapp', 'myapp_1.0_linux_amd64/myapp'),
        ('config/default.yml', 'myapp_1.0_linux_amd64/config/default.yml'),
    ]
    assert sorted(extract_archive(path, 'tar.gz', dest, strip_components=1)) == ['config/default.yml', 'myapp']
    assert sorted(os.listdir(dest)) == ['config', 'myapp']
    assert mode_of(os.path.join(dest, 'config')) == 0o755


def test_dot_slash_prefix_is_not_a_component(tmp_path, dest):
    # Same rule as staging.member_head, which finds the binary for the header check.
    path = make_tar(tmp_path / 'a.tar.gz', [dir_entry('.'), entry('./myapp', BINARY, 0o755)])
    assert [m.name for m in check_archive(path, 'tar.gz', 'myapp')] == ['myapp']


def test_symlink_inside_is_allowed(tmp_path, dest):
    path = make_tar(tmp_path / 'a.tar.gz', GORELEASER + [
        symlink('latest', 'myapp'),
        symlink('config/current.yml', '../config/default.yml'),
    ])
    members = check_archive(path, 'tar.gz', 'myapp')
    assert ('latest', 'symlink', 'myapp') in [(m.name, m.kind, m.target) for m in members]
    written = extract_archive(path, 'tar.gz', dest)
    assert written[-2:] == ['latest', 'config/current.yml']      # links come last
    assert os.readlink(os.path.join(dest, 'latest')) == 'myapp'
    with open(os.path.join(dest, 'config', 'current.yml'), 'rb') as f:
        assert f.read() == CONFIG


def test_hardlink_to_earlier_file_is_linked(tmp_path, dest):
    path = make_tar(tmp_path / 'a.tar.gz', [
        entry('myapp', BINARY, 0o755),
        entry('bin/myapp-server', kind=tarfile.LNKTYPE, link='myapp'),
    ])
    members = check_archive(path, 'tar.gz', 'myapp')
    assert (members[1].kind, members[1].target) == ('hardlink', 'myapp')
    extract_archive(path, 'tar.gz', dest)
    a = os.stat(os.path.join(dest, 'myapp'))
    b = os.stat(os.path.join(dest, 'bin', 'myapp-server'))
    assert a.st_ino == b.st_ino


def test_repeated_directory_is_harmless(tmp_path, dest):
    path = make_tar(tmp_path / 'a.tar.gz', [dir_entry('config'), dir_entry('config/'), entry('myapp', BINARY, 0o755)])
    assert sorted(extract_archive(path, 'tar.gz', dest)) == ['config', 'myapp']


def test_member_repr():
    assert repr(Member('a', 'file', 3, 0o644)) == "Member('a', 'file', size=3, mode=0o644, target=None)"


# --------------------------------------------------------------------------------------------
# refused archives: nothing is written


def test_dotdot_member(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [entry('../etc/passwd', b'x')])
    assert refused(path, 'tar.gz', dest) == (
        "checking the archive myapp.tar.gz: member '../etc/passwd' has a '..' component; archives are extracted "
        "only inside the release directory. Rebuild the archive with relative paths (goreleaser does this by "
        "default).")


def test_dotdot_in_the_middle(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [entry('config/../../x', b'x')])
    assert "member 'config/../../x' has a '..' component" in refused(path, 'tar.gz', dest)


def test_absolute_member(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [entry('/etc/x', b'x')])
    assert "member '/etc/x' has an absolute path" in refused(path, 'tar.gz', dest)


def test_symlink_to_absolute_path(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [symlink('etc', '/etc')])
    msg = refused(path, 'tar.gz', dest)
    assert "member 'etc' is a symlink to '/etc'; only relative links inside the archive are extracted" in msg


def test_symlink_out_of_the_root(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [symlink('config/a', '../../x')])
    assert "member 'config/a' is a symlink to '../../x', which points outside the release directory" in \
        refused(path, 'tar.gz', dest)


def test_symlink_out_of_the_root_through_another_link(tmp_path, dest):
    # 'sub/x -> ../up/..' looks harmless, but 'up -> .' makes it the parent of the root.
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [
        dir_entry('sub'), symlink('up', '.'), symlink('sub/x', '../up/..')])
    assert "member 'sub/x' is a symlink to '../up/..', which points outside" in refused(path, 'tar.gz', dest)


def test_symlink_loop(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [symlink('a', 'b/x'), symlink('b', 'a/y')])
    assert 'ends in a loop of links' in refused(path, 'tar.gz', dest)


def test_member_below_a_symlink(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [symlink('latest', 'config'),
                                                             entry('latest/x.yml', b'x')])
    assert "member 'latest/x.yml' is inside 'latest', which is a symlink in the archive" in \
        refused(path, 'tar.gz', dest)


def test_hardlink_to_a_later_or_missing_member(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', [
        entry('bin/myapp', kind=tarfile.LNKTYPE, link='myapp'),
        entry('myapp', BINARY, 0o755),
    ])
    assert "member 'bin/myapp' is a hard link to 'myapp', which is not a regular file earlier in the archive" in \
        refused(path, 'tar.gz', dest)


def test_hardlink_outside(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [entry('shadow', kind=tarfile.LNKTYPE,
                                                                   link='/etc/shadow')])
    assert "member 'shadow' is a hard link to '/etc/shadow', outside the archive" in refused(path, 'tar.gz', dest)


def test_hardlink_to_a_directory(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [entry('cfg', kind=tarfile.LNKTYPE, link='config')])
    assert 'not a regular file earlier in the archive' in refused(path, 'tar.gz', dest)


@pytest.mark.parametrize('kind, word', [
    (tarfile.CHRTYPE, 'device file'),
    (tarfile.BLKTYPE, 'device file'),
    (tarfile.FIFOTYPE, 'fifo'),
])
def test_special_files(tmp_path, dest, kind, word):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [entry('dev/thing', kind=kind)])
    assert ("member 'dev/thing' is a %s. Release archives hold only files, directories and links" % word) in \
        refused(path, 'tar.gz', dest)


def test_duplicate_member(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [entry('myapp', b'other', 0o755)])
    assert "member 'myapp' is in the archive twice after strip_components=0" in refused(path, 'tar.gz', dest)


def test_duplicate_after_stripping(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', [entry('a/myapp', BINARY, 0o755), entry('b/myapp', BINARY, 0o755)])
    assert "member 'b/myapp' is in the archive twice (as 'a/myapp') after strip_components=1" in \
        refused(path, 'tar.gz', dest, strip_components=1)


def test_file_that_vanishes_when_stripped(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', [dir_entry('pkg'), entry('pkg/myapp', BINARY, 0o755),
                                                entry('LICENSE', LICENSE)])
    assert "member 'LICENSE' would vanish with strip_components=1" in \
        refused(path, 'tar.gz', dest, strip_components=1)


def test_file_used_as_a_directory(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [entry('LICENSE/x', b'x')])
    assert "member 'LICENSE/x' is inside 'LICENSE', which is a file in the archive" in refused(path, 'tar.gz', dest)


def test_missing_binary_lists_files(tmp_path, dest):
    files = [entry('doc/page%02d.md' % i, b'x') for i in range(12)]
    path = make_tar(tmp_path / 'myapp.tar.gz', files + [dir_entry('pkg'), entry('pkg/server', BINARY, 0o755)])
    msg = refused(path, 'tar.gz', dest, binary='myapp')
    assert msg.startswith("checking the archive myapp.tar.gz: it has no file 'myapp' (after strip_components=0). "
                          "Its files are: doc/page00.md, doc/page01.md, ")
    assert 'doc/page09.md (and 3 more).' in msg
    assert 'doc/page10.md' not in msg
    assert "Give the executable's path inside the archive as the binary, or fix strip_components." in msg


def test_missing_binary_suggests_strip_components(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', [entry('myapp_1.0/myapp', BINARY, 0o755)])
    assert "'myapp_1.0/myapp' is there: set strip_components to 1." in refused(path, 'tar.gz', dest)


def test_binary_is_a_symlink(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', [entry('bin/myapp-1.0', BINARY, 0o755), symlink('myapp', 'bin/myapp-1.0')])
    assert refused(path, 'tar.gz', dest) == (
        "checking the archive myapp.tar.gz: the binary 'myapp' is a symlink to 'bin/myapp-1.0', not a regular file. "
        "Name the executable file itself as the binary.")


def test_binary_is_a_directory(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', [dir_entry('myapp'), entry('myapp/myapp', BINARY, 0o755)])
    assert "the binary 'myapp' is a dir, not a regular file" in refused(path, 'tar.gz', dest)


def test_declared_size_above_max_size(tmp_path, dest):
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER + [entry('big.dat', b'\0' * 5000)])
    assert "member 'big.dat' brings the uncompressed size to more than max_size (4096 bytes)" in \
        refused(path, 'tar.gz', dest, max_size=4096)
    # the sum counts, not one member
    small = [entry('part%d' % i, b'\0' * 1000) for i in range(5)]
    path = make_tar(tmp_path / 'parts.tar.gz', [entry('myapp', BINARY, 0o755)] + small)
    assert "member 'part3' brings the uncompressed size" in refused(path, 'tar.gz', dest, max_size=4096)


def test_zip_dotdot(tmp_path, dest):
    path = make_zip(tmp_path / 'myapp.zip', [('myapp', BINARY, 0o100755), ('../evil.sh', b'x', 0o100755)])
    assert "checking the archive myapp.zip: member '../evil.sh' has a '..' component" in refused(path, 'zip', dest)


def test_zip_backslash(tmp_path, dest):
    path = make_zip(tmp_path / 'myapp.zip', [('myapp', BINARY, 0o100755), ('..\\..\\evil.bat', b'x', None)])
    assert "member '..\\\\..\\\\evil.bat' has a NUL byte or a backslash in its name" in refused(path, 'zip', dest)


def test_zip_symlink_outside(tmp_path, dest):
    path = make_zip(tmp_path / 'myapp.zip', [('myapp', BINARY, 0o100755), ('etc', b'/etc', 0o120777)])
    assert "member 'etc' is a symlink to '/etc'" in refused(path, 'zip', dest)


def test_zip_symlink_inside(tmp_path, dest):
    path = make_zip(tmp_path / 'myapp.zip', [('myapp', BINARY, 0o100755), ('latest', b'myapp', 0o120777)])
    assert sorted(extract_archive(path, 'zip', dest)) == ['latest', 'myapp']
    assert os.readlink(os.path.join(dest, 'latest')) == 'myapp'


def test_zip_special_file(tmp_path, dest):
    path = make_zip(tmp_path / 'myapp.zip', [('myapp', BINARY, 0o100755), ('pipe', b'', stat.S_IFIFO | 0o644)])
    assert "member 'pipe' is a device file, fifo or socket" in refused(path, 'zip', dest)


def test_zip_bomb_declared_size_above_max_size(tmp_path, dest):
    # 8 MiB of zeros compresses to a few KiB: refused from the central directory, before inflating.
    path = make_zip(tmp_path / 'myapp.zip', [('myapp', BINARY, 0o100755), ('zeros', b'\0' * (8 << 20), None)])
    assert os.path.getsize(path) < 64 * 1024
    assert "member 'zeros' brings the uncompressed size to more than max_size (1048576 bytes)" in \
        refused(path, 'zip', dest, max_size=1 << 20)


def test_unreadable_archive(tmp_path, dest):
    path = tmp_path / 'myapp.tar.gz'
    path.write_bytes(b'\x1f\x8b\x08' + b'\0' * 50)
    assert refused(str(path), 'tar.gz', dest).startswith(
        'checking the archive myapp.tar.gz: it cannot be read as a tar.gz (')


def test_what_names_the_archive(tmp_path, dest):
    path = make_tar(tmp_path / '.artifact.partial-x1', [entry('../x', b'x')])
    with pytest.raises(HotswapError) as e:
        check_archive(path, 'tar.gz', 'myapp', what='myapp_1.0.tar.gz')
    assert e.value.msg.startswith('checking the archive myapp_1.0.tar.gz: ')


# --------------------------------------------------------------------------------------------
# extraction-time checks


def test_data_longer_than_declared_is_refused(tmp_path):
    writer = archive._Writer(str(tmp_path), 'myapp.zip', None)
    with pytest.raises(HotswapError) as e:
        writer.copy_data(Member('myapp', 'file', 10), io.BytesIO(b'x' * 11), io.BytesIO())
    assert e.value.msg.startswith('extracting the archive myapp.zip: myapp holds more data than its declared 10 bytes.')


def test_running_total_above_max_size_is_refused(tmp_path):
    writer = archive._Writer(str(tmp_path), 'myapp.zip', 15)
    writer.copy_data(Member('a', 'file', 10), io.BytesIO(b'x' * 10), io.BytesIO())
    with pytest.raises(HotswapError) as e:
        writer.copy_data(Member('b', 'file', 10), io.BytesIO(b'x' * 10), io.BytesIO())
    assert 'b brings the extracted size above max_size (15 bytes)' in e.value.msg


def test_never_writes_through_a_symlink_in_dest(tmp_path, dest):
    outside = tmp_path / 'outside'
    outside.mkdir()
    os.symlink(str(outside), os.path.join(dest, 'config'))
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER)
    with pytest.raises(HotswapError) as e:
        extract_archive(path, 'tar.gz', dest)
    assert 'myapp.tar.gz: config cannot be written: %s is in the way' % os.path.join(dest, 'config') in e.value.msg
    assert os.listdir(str(outside)) == []


def test_never_replaces_an_existing_file(tmp_path, dest):
    target = tmp_path / 'target'
    target.write_bytes(b'keep')
    os.symlink(str(target), os.path.join(dest, 'myapp'))
    path = make_tar(tmp_path / 'myapp.tar.gz', GORELEASER)
    with pytest.raises(FileExistsError):
        extract_archive(path, 'tar.gz', dest)
    assert target.read_bytes() == b'keep'
