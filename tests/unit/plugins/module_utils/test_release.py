# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

import os

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import release
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError


def stage(base, rid, content=b'bin'):
    d = base / 'releases' / rid
    d.mkdir(parents=True)
    (d / 'app').write_bytes(content)
    return d


@pytest.mark.parametrize('rid', ['1.2.3-abcdef012345', 'a', 'v1_2+build.7', 'A' * 128, 'x-'])
def test_validate_release_id_accepts(rid):
    assert release.validate_release_id(rid) == rid


@pytest.mark.parametrize('rid', ['', None, 'a/b', '..', 'a..b', '.hidden', 'a b', 'A' * 129, 'é', 'a;b', '*', 5])
def test_validate_release_id_rejects(rid):
    with pytest.raises(HotswapError) as e:
        release.validate_release_id(rid)
    assert 'release_id' in e.value.msg


@pytest.mark.parametrize('path,expected', [
    ('/opt/app', '/opt/app'), ('/opt/app/', '/opt/app'), ('//opt//app', '/opt/app'), ('/opt/./app', '/opt/app'),
])
def test_validate_base_dir_normalizes(path, expected):
    assert release.validate_base_dir(path) == expected


@pytest.mark.parametrize('path', ['opt/app', '', '/', '/opt/../etc', 'app/..', None, '//'])
def test_validate_base_dir_rejects(path):
    with pytest.raises(HotswapError):
        release.validate_base_dir(path)


def test_paths():
    p = release.paths('/opt/app/', 'r1')
    assert p.base_dir == '/opt/app'
    assert p.releases_dir == '/opt/app/releases'
    assert p.release_dir == '/opt/app/releases/r1'
    assert p.current == '/opt/app/current'
    assert p.state_dir == '/opt/app/.hotswap'
    assert p.ledger == '/opt/app/.hotswap/ledger.json'
    assert p.lock == '/opt/app/.hotswap/lock'
    assert release.paths('/opt/app').release_dir is None
    with pytest.raises(HotswapError):
        release.paths('/opt/app', '../x')


def test_read_current_missing(tmp_path):
    assert release.read_current(str(tmp_path)) is None


def test_read_current_relative_and_absolute_link(tmp_path):
    stage(tmp_path, 'r1')
    os.symlink('releases/r1', str(tmp_path / 'current'))
    assert release.read_current(str(tmp_path)) == 'r1'
    os.unlink(str(tmp_path / 'current'))
    os.symlink(str(tmp_path / 'releases' / 'r1'), str(tmp_path / 'current'))
    assert release.read_current(str(tmp_path)) == 'r1'


def test_read_current_dangling_link_still_named(tmp_path):
    os.symlink('releases/gone', str(tmp_path / 'current'))
    assert release.read_current(str(tmp_path)) == 'gone'
    assert release.current_is_dangling(str(tmp_path))


@pytest.mark.parametrize('target', ['/etc', 'elsewhere/r1', 'releases', 'releases/r1/sub', '../x/releases/r1',
                                    'releases/.hidden'])
def test_read_current_outside_releases(tmp_path, target):
    os.symlink(target, str(tmp_path / 'current'))
    with pytest.raises(HotswapError) as e:
        release.read_current(str(tmp_path))
    assert 'outside' in e.value.msg


def test_read_current_real_dir_or_file(tmp_path):
    (tmp_path / 'current').mkdir()
    with pytest.raises(HotswapError) as e:
        release.read_current(str(tmp_path))
    assert 'real directory' in e.value.msg and 'Move it away' in e.value.msg
    (tmp_path / 'current').rmdir()
    (tmp_path / 'current').write_text('x')
    with pytest.raises(HotswapError) as e:
        release.read_current(str(tmp_path))
    assert 'real file' in e.value.msg


def leftovers(base):
    return [n for n in os.listdir(str(base)) if n.startswith('.current.tmp-')]


def test_switch_current_creates_relative_link(tmp_path):
    stage(tmp_path, 'r1')
    assert release.switch_current(str(tmp_path), 'r1') is None
    assert os.readlink(str(tmp_path / 'current')) == 'releases/r1'
    assert release.read_current(str(tmp_path)) == 'r1'
    assert leftovers(tmp_path) == []


def test_switch_current_replaces_link_and_returns_previous(tmp_path):
    stage(tmp_path, 'r1')
    stage(tmp_path, 'r2')
    release.switch_current(str(tmp_path), 'r1')
    assert release.switch_current(str(tmp_path), 'r2') == 'r1'
    assert os.readlink(str(tmp_path / 'current')) == 'releases/r2'
    assert leftovers(tmp_path) == []


def test_switch_current_refuses_real_dir_and_changes_nothing(tmp_path):
    stage(tmp_path, 'r1')
    (tmp_path / 'current').mkdir()
    (tmp_path / 'current' / 'keep').write_text('data')
    with pytest.raises(HotswapError):
        release.switch_current(str(tmp_path), 'r1')
    assert (tmp_path / 'current' / 'keep').read_text() == 'data'
    assert leftovers(tmp_path) == []


def test_switch_current_refuses_missing_or_empty_release(tmp_path):
    stage(tmp_path, 'r1')
    release.switch_current(str(tmp_path), 'r1')
    with pytest.raises(HotswapError) as e:
        release.switch_current(str(tmp_path), 'r2')
    assert 'does not exist' in e.value.msg
    (tmp_path / 'releases' / 'empty').mkdir()
    with pytest.raises(HotswapError) as e:
        release.switch_current(str(tmp_path), 'empty')
    assert 'is empty' in e.value.msg
    assert os.readlink(str(tmp_path / 'current')) == 'releases/r1'
    assert leftovers(tmp_path) == []


def test_switch_current_cleans_temp_link_when_rename_fails(tmp_path, monkeypatch):
    stage(tmp_path, 'r1')

    def boom(src, dst):
        raise OSError(5, 'Input/output error')
    monkeypatch.setattr(release.os, 'rename', boom)
    with pytest.raises(HotswapError) as e:
        release.switch_current(str(tmp_path), 'r1')
    assert 'Input/output error' in e.value.msg
    assert leftovers(tmp_path) == []
    assert not os.path.lexists(str(tmp_path / 'current'))


def test_switch_current_fsyncs_base_dir(tmp_path, monkeypatch):
    stage(tmp_path, 'r1')
    synced = []
    monkeypatch.setattr(release, 'fsync_dir', synced.append)
    release.switch_current(str(tmp_path), 'r1')
    assert synced == [str(tmp_path)]


def test_fsync_dir(tmp_path):
    release.fsync_dir(str(tmp_path))


def test_list_release_dirs(tmp_path):
    assert release.list_release_dirs(str(tmp_path)) == []
    stage(tmp_path, 'b')
    stage(tmp_path, 'a')
    (tmp_path / 'releases' / '.tmp-upload').mkdir()
    (tmp_path / 'releases' / 'file').write_text('x')
    (tmp_path / 'releases' / 'bad name').mkdir()
    os.symlink('a', str(tmp_path / 'releases' / 'alias'))
    assert release.list_release_dirs(str(tmp_path)) == ['a', 'b']


def test_ensure_state_dir(tmp_path):
    path = release.ensure_state_dir(str(tmp_path))
    assert os.stat(path).st_mode & 0o777 == 0o750
    assert release.ensure_state_dir(str(tmp_path)) == path


def test_remove_release_dir(tmp_path):
    stage(tmp_path, 'r1')
    stage(tmp_path, 'r2')
    release.switch_current(str(tmp_path), 'r2')
    assert release.remove_release_dir(str(tmp_path), 'r1') is True
    assert os.listdir(str(tmp_path / 'releases')) == ['r2']
    assert release.remove_release_dir(str(tmp_path), 'r1') is False
    with pytest.raises(HotswapError):
        release.remove_release_dir(str(tmp_path), 'r2')
    assert (tmp_path / 'releases' / 'r2' / 'app').exists()


def test_remove_leftover_pruning_dirs(tmp_path):
    stage(tmp_path, '.pruning-r1-abcd')
    stage(tmp_path, 'r2')
    assert release.remove_leftover_pruning_dirs(str(tmp_path)) == ['.pruning-r1-abcd']
    assert os.listdir(str(tmp_path / 'releases')) == ['r2']
