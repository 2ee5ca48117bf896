# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""tests/thirdparty/fetch.py, the parts without apt or the network: other_build, the cache
layout, the description of an unpacked tree and the cache hit."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess

import pytest

FETCH_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'thirdparty', 'fetch.py')


def _load():
    spec = importlib.util.spec_from_file_location('hotswap_thirdparty_fetch', FETCH_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fetch = _load()


def _sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_marker_is_64_fixed_bytes():
    assert len(fetch.MARKER) == 64
    assert fetch.MARKER == _load().MARKER


def test_other_build_same_program_other_sha(tmp_path):
    src = tmp_path / 'prog'
    src.write_bytes(b'\x7fELF not really, but bytes\n' * 10)
    os.chmod(str(src), 0o755)
    dest = tmp_path / 'v2' / 'prog'
    assert fetch.other_build(str(src), str(dest)) == str(dest)
    data = dest.read_bytes()
    assert data == src.read_bytes() + fetch.MARKER
    assert _sha(str(dest)) != _sha(str(src))
    assert os.stat(str(dest)).st_mode & 0o777 == 0o755
    # again: the same result (the marker is fixed), not a marker appended twice
    fetch.other_build(str(src), str(dest))
    assert dest.read_bytes() == data
    assert not os.path.exists(str(dest) + '.tmp')


def test_other_build_refuses_itself(tmp_path):
    src = tmp_path / 'prog'
    src.write_bytes(b'x')
    with pytest.raises(fetch.FetchError):
        fetch.other_build(str(src), str(src))
    assert src.read_bytes() == b'x'


def test_other_build_of_a_real_binary_still_runs(tmp_path):
    true = shutil.which('true')
    if not true or not os.path.realpath(true).startswith(('/usr/bin/', '/bin/')):
        pytest.skip('no /usr/bin/true')
    copy = fetch.other_build(true, str(tmp_path / 'true'))
    orig = subprocess.run([true, '--version'], stdout=subprocess.PIPE, universal_newlines=True, check=True)
    again = subprocess.run([copy, '--version'], stdout=subprocess.PIPE, universal_newlines=True, check=True)
    assert again.stdout == orig.stdout
    assert _sha(copy) != _sha(true)


def test_cache_layout(tmp_path):
    cache = str(tmp_path)
    assert fetch.package_root('prometheus-node-exporter', '1.5.0-1+b6', cache) == os.path.join(
        cache, 'prometheus-node-exporter', '1.5.0-1+b6', 'root')
    # an epoch's colon is written as in apt's .deb file names
    assert fetch.package_root('foo', '1:2.0-3', cache) == os.path.join(cache, 'foo', '1%3a2.0-3', 'root')


def test_cache_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv(fetch.CACHE_ENV, raising=False)
    assert fetch.cache_dir() == os.path.join(fetch.REPO_ROOT, 'build', 'thirdparty')
    monkeypatch.setenv(fetch.CACHE_ENV, str(tmp_path))
    assert fetch.cache_dir() == str(tmp_path)


def _fake_tree(root):
    for rel in ('usr/bin/exporter', 'usr/sbin/exporterd', 'lib/systemd/system/exporter.service',
                'usr/lib/systemd/system/exporter.socket', 'lib/systemd/system/exporter.conf',
                'usr/share/doc/exporter/README'):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, 'w') as f:
            f.write(rel)
    os.makedirs(os.path.join(root, 'lib/systemd/system/exporter.service.d'))


def test_describe(tmp_path):
    root = str(tmp_path / 'root')
    _fake_tree(root)
    info = fetch.describe('exporter', '1.0-1', root)
    assert info == {
        'package': 'exporter',
        'version': '1.0-1',
        'root': root,
        'binaries': [os.path.join(root, 'usr/bin/exporter'), os.path.join(root, 'usr/sbin/exporterd')],
        'units': [os.path.join(root, 'lib/systemd/system/exporter.service'),
                  os.path.join(root, 'usr/lib/systemd/system/exporter.socket')],
    }


def test_cache_hit_runs_no_apt_get(monkeypatch, tmp_path):
    cache = str(tmp_path)
    root = fetch.package_root('exporter', '1.0-1', cache)
    _fake_tree(root)
    monkeypatch.setattr(fetch, 'candidate_version', lambda package: '1.0-1')

    def no_download(*args, **kwargs):
        raise AssertionError('downloaded although cached: %r' % (args,))
    monkeypatch.setattr(fetch, '_download', no_download)
    info = fetch.fetch('exporter', cache)
    assert info['root'] == root and info['version'] == '1.0-1'
    assert info['binaries'] == [os.path.join(root, 'usr/bin/exporter'), os.path.join(root, 'usr/sbin/exporterd')]


@pytest.mark.parametrize('name', ['', 'Foo', '../x', 'a b', '-x', 'x;rm'])
def test_bad_package_names(name, tmp_path):
    with pytest.raises(fetch.FetchError):
        fetch.fetch(name, str(tmp_path))
