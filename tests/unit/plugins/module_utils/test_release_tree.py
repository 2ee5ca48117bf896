# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Integrity of the release tree (issue 14): symlinks below base_dir, incomplete releases, malformed ledgers."""

from __future__ import annotations

import hashlib
import json
import os
import struct

import pytest

from ansible.module_utils.basic import AnsibleModule
from core_compat import patch_module_args

from ansible_collections.hotswap.deploy.plugins.module_utils import ledger as L
from ansible_collections.hotswap.deploy.plugins.module_utils import release_content as rc
from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import release_content, upload
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import Ledger

HOST = {'os': 'linux', 'arch': 'x86_64'}


def elf():
    """Header of a linux/x86_64 ELF executable: enough for binary_upload's checks."""
    ident = b'\x7fELF' + bytes([2, 1, 1, 0]) + b'\0' * 8
    return ident + struct.pack('<HHI', 2, 62, 1) + b'\0' * 40


ELF_SHA = hashlib.sha256(elf()).hexdigest()


@pytest.fixture
def module():
    with patch_module_args({}):
        return AnsibleModule(argument_spec={}, supports_check_mode=True)


@pytest.fixture
def src(tmp_path):
    path = tmp_path / 'artifact'
    path.write_bytes(elf())
    return str(path)


def stage(base, rid, data=None, record=True, mode=0o755):
    """releases/<rid>/app holding ``data`` (default: rid), recorded in the ledger with its real digest."""
    data = rid.encode() if data is None else data
    d = base / 'releases' / rid
    d.mkdir(parents=True)
    (d / 'app').write_bytes(data)
    os.chmod(str(d / 'app'), mode)
    if record:
        led = Ledger.load(str(base))
        led.record_staged(rid, '1.0', hashlib.sha256(data).hexdigest(), 'app')
        led.save()
    return d


def snapshot(*dirs):
    """Every path below ``dirs`` with its link target or content: to show nothing changed."""
    seen = {}
    for top in dirs:
        for root, subdirs, files in os.walk(str(top)):
            for name in subdirs + files:
                path = os.path.join(root, name)
                if os.path.islink(path):
                    seen[path] = 'link:' + os.readlink(path)
                elif os.path.isfile(path):
                    with open(path, 'rb') as f:
                        seen[path] = f.read()
                else:
                    seen[path] = 'dir'
    return seen


def ledger_file(base):
    return base / '.hotswap' / 'ledger.json'


# -- 1. symlinks in the release tree -------------------------------------------------------------

def test_upload_refuses_a_release_dir_that_is_a_symlink_and_writes_nothing_through_it(tmp_path, module, src):
    base = tmp_path / 'app'
    (base / 'releases').mkdir(parents=True)
    outside = tmp_path / 'outside'
    outside.mkdir()
    os.symlink(str(outside), str(base / 'releases' / '1.0-abc'))
    with pytest.raises(HotswapError) as e:
        upload(module, str(base), '1.0-abc', 'app', 'sha256:' + ELF_SHA, src=src, version='1.0', host=HOST)
    msg = e.value.msg
    assert msg.startswith('staging release 1.0-abc: ') and 'is a symlink (to %s)' % outside in msg
    assert 'binary_upload' in msg
    assert os.listdir(str(outside)) == []
    assert not ledger_file(base).exists()


@pytest.mark.parametrize('with_files', [False, True])
def test_upload_refuses_a_releases_dir_that_is_a_symlink(tmp_path, module, src, with_files):
    base = tmp_path / 'app'
    base.mkdir()
    outside = tmp_path / 'outside'
    outside.mkdir()
    os.symlink(str(outside), str(base / 'releases'))
    files = [{'dest': 'conf/app.conf', 'content': 'x = 1\n'}] if with_files else None
    content = release_content('app', files)
    rid = rc.make_release_id('1.0', ELF_SHA, content.manifest)
    with pytest.raises(HotswapError) as e:
        upload(module, str(base), rid, 'app', 'sha256:' + ELF_SHA, src=src, version='1.0', host=HOST,
               content=content)
    assert '%s is a symlink' % (base / 'releases') in e.value.msg
    assert 'make base_dir itself the link' in e.value.msg
    assert os.listdir(str(outside)) == []


def test_a_base_dir_that_is_a_symlink_is_followed(tmp_path, module, src):
    real = tmp_path / 'data' / 'app'
    real.mkdir(parents=True)
    base = tmp_path / 'app'
    os.symlink(str(real), str(base))
    r = upload(module, str(base), '1.0-abc', 'app', 'sha256:' + ELF_SHA, src=src, version='1.0', host=HOST)
    assert r['staged'] and r['path'] == str(base / 'releases' / '1.0-abc' / 'app')
    assert (real / 'releases' / '1.0-abc' / 'app').read_bytes() == elf()
    res = L.activate(str(base), '1.0-abc')
    assert res['switched'] and os.readlink(str(real / 'current')) == 'releases/1.0-abc'
    assert L.prune(str(base), 1)['kept'] == ['1.0-abc']


@pytest.mark.parametrize('linked', ['release', 'releases'])
@pytest.mark.parametrize('check_mode', [False, True])
def test_activate_refuses_a_linked_release_and_changes_nothing(tmp_path, linked, check_mode):
    base = tmp_path / 'app'
    stage(base, 'r1')
    L.activate(str(base), 'r1')
    outside = tmp_path / 'outside'
    if linked == 'release':
        (outside / 'r2').mkdir(parents=True)
        (outside / 'r2' / 'app').write_bytes(b'x')
        os.chmod(str(outside / 'r2' / 'app'), 0o755)
        os.symlink(str(outside / 'r2'), str(base / 'releases' / 'r2'))
        path = base / 'releases' / 'r2'
    else:
        os.rename(str(base / 'releases'), str(outside))
        (outside / 'r2').mkdir()
        (outside / 'r2' / 'app').write_bytes(b'x')
        os.chmod(str(outside / 'r2' / 'app'), 0o755)
        os.symlink(str(outside), str(base / 'releases'))
        path = base / 'releases'
    before = snapshot(base, outside)
    with pytest.raises(HotswapError) as e:
        L.activate(str(base), 'r2', check_mode=check_mode)
    assert e.value.msg.startswith('activating release r2: %s is a symlink' % path)
    assert snapshot(base, outside) == before


def test_a_linked_release_dir_is_not_a_release_and_its_target_is_never_pruned(tmp_path):
    base = tmp_path / 'app'
    for rid in ('r1', 'r2'):
        stage(base, rid)
        L.activate(str(base), rid)
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'keep-me').write_text('x')
    os.symlink(str(outside), str(base / 'releases' / 'r0'))
    led = Ledger.load(str(base))
    led.record_staged('r0', '0.1', '0' * 64, 'app', at='2000-01-01T00:00:00Z')
    led.save()
    L.prune(str(base), 1)
    assert (outside / 'keep-me').read_text() == 'x'


def test_prune_and_info_refuse_a_linked_releases_dir(tmp_path):
    base = tmp_path / 'app'
    for rid in ('r1', 'r2', 'r3'):
        stage(base, rid)
        L.activate(str(base), rid)
    outside = tmp_path / 'outside'
    os.rename(str(base / 'releases'), str(outside))
    os.symlink(str(outside), str(base / 'releases'))
    before = snapshot(base, outside)
    with pytest.raises(HotswapError) as e:
        L.prune(str(base), 1)
    assert e.value.msg.startswith('pruning releases in %s: %s is a symlink' % (base, base / 'releases'))
    assert snapshot(base, outside) == before
    assert any('is a symlink' in p for p in L.info(str(base))['problems'])


def test_ledger_is_never_saved_through_a_linked_state_dir(tmp_path):
    base = tmp_path / 'app'
    base.mkdir()
    outside = tmp_path / 'outside'
    outside.mkdir()
    os.symlink(str(outside), str(base / '.hotswap'))
    led = Ledger.load(str(base))
    led.record_staged('r1', '1.0', '1' * 64, 'app')
    with pytest.raises(HotswapError) as e:
        led.save()
    assert 'is a symlink' in e.value.msg and 'real directory' in e.value.msg
    assert os.listdir(str(outside)) == []


# -- 2. activation needs the complete binary -----------------------------------------------------

def partial_only(base, rid='r2', record=True):
    """What a killed upload leaves: only the hidden partial file in the release dir."""
    d = base / 'releases' / rid
    d.mkdir(parents=True)
    (d / '.app.partial-k1ll3d').write_bytes(b'half')
    if record:
        led = Ledger.load(str(base))
        led.record_staged(rid, '2.0', hashlib.sha256(b'whole').hexdigest(), 'app')
        led.save()
    return d


@pytest.mark.parametrize('record', [True, False])
@pytest.mark.parametrize('check_mode', [False, True])
def test_activate_refuses_a_release_left_by_a_killed_upload(tmp_path, record, check_mode):
    base = tmp_path / 'app'
    stage(base, 'r1')
    L.activate(str(base), 'r1')
    partial_only(base, record=record)
    before = snapshot(base)
    with pytest.raises(HotswapError) as e:
        L.activate(str(base), 'r2', check_mode=check_mode)
    msg = e.value.msg
    assert msg.startswith('activating release r2: ')
    assert '.app.partial-k1ll3d' in msg and 'interrupted' in msg and 'binary_upload' in msg
    assert ('is missing' if record else 'holds no executable file') in msg
    assert snapshot(base) == before
    assert os.readlink(str(base / 'current')) == 'releases/r1'


def test_activate_refuses_a_binary_whose_digest_differs_from_the_ledger(tmp_path):
    base = tmp_path / 'app'
    stage(base, 'r1')
    stage(base, 'r2')
    L.activate(str(base), 'r1')
    (base / 'releases' / 'r2' / 'app').write_bytes(b'tampered')
    before = snapshot(base)
    with pytest.raises(HotswapError) as e:
        L.activate(str(base), 'r2')
    msg = e.value.msg
    assert 'has sha256 %s' % hashlib.sha256(b'tampered').hexdigest() in msg
    assert 'the ledger recorded %s' % hashlib.sha256(b'r2').hexdigest() in msg
    assert 'stage the release again' in msg
    assert snapshot(base) == before


def test_activate_refuses_a_binary_that_is_a_symlink(tmp_path):
    base = tmp_path / 'app'
    stage(base, 'r1')
    d = stage(base, 'r2')
    os.rename(str(d / 'app'), str(tmp_path / 'elsewhere'))
    os.symlink(str(tmp_path / 'elsewhere'), str(d / 'app'))
    with pytest.raises(HotswapError) as e:
        L.activate(str(base), 'r2')
    assert 'is a symlink, not a regular file' in e.value.msg
    assert not os.path.lexists(str(base / 'current'))


def test_the_current_release_is_not_recorded_active_when_its_binary_is_gone(tmp_path):
    base = tmp_path / 'app'
    stage(base, 'r1')
    stage(base, 'r2')
    L.activate(str(base), 'r1')
    os.unlink(str(base / 'current'))
    os.symlink('releases/r2', str(base / 'current'))   # switched by hand
    os.unlink(str(base / 'releases' / 'r2' / 'app'))
    (base / 'releases' / 'r2' / 'app.conf').write_text('x = 1\n')
    with pytest.raises(HotswapError) as e:
        L.activate(str(base), 'r2')
    assert 'is missing' in e.value.msg
    assert Ledger.load(str(base)).release('r2')['state'] == 'staged'


def test_a_release_put_there_by_hand_is_activated_when_it_holds_an_executable(tmp_path):
    base = tmp_path / 'app'
    stage(base, 'r1')
    L.activate(str(base), 'r1')
    stage(base, '4.0.0-bad', record=False, mode=0o644)
    with pytest.raises(HotswapError) as e:
        L.activate(str(base), '4.0.0-bad')
    assert 'holds no executable file' in e.value.msg and 'not in the ledger' in e.value.msg
    os.chmod(str(base / 'releases' / '4.0.0-bad' / 'app'), 0o755)
    assert L.activate(str(base), '4.0.0-bad', previous_state='retired')['switched']
    assert Ledger.load(str(base)).release('4.0.0-bad')['state'] == 'active'


def test_a_ledger_entry_without_a_digest_needs_its_named_binary_executable(tmp_path):
    base = tmp_path / 'app'
    d = stage(base, 'r1', record=False, mode=0o644)
    (d / 'other').write_bytes(b'#!/bin/sh\n')
    os.chmod(str(d / 'other'), 0o755)
    data = {'format': 1, 'history': [], 'releases': {'r1': {
        'release_id': 'r1', 'version': '1.0', 'sha256': None, 'binary': 'app', 'state': 'staged',
        'staged_at': '2024-01-01T00:00:00Z'}}}
    ledger_file(base).parent.mkdir()
    ledger_file(base).write_text(json.dumps(data))
    with pytest.raises(HotswapError) as e:
        L.activate(str(base), 'r1')
    assert 'is not executable (mode 0644)' in e.value.msg and 'chmod 0755' in e.value.msg
    os.chmod(str(d / 'app'), 0o755)
    assert L.activate(str(base), 'r1')['switched']


def test_an_archive_release_is_verified_by_its_binary_digest(tmp_path):
    base = tmp_path / 'app'
    d = stage(base, 'r1', record=False)
    led = Ledger.load(str(base))
    led.record_staged('r1', '1.0', hashlib.sha256(b'the archive').hexdigest(), 'app',
                      content=dict(artifact='tar.gz', binary_sha256=hashlib.sha256(b'r1').hexdigest(),
                                   members=['app'], files=[], environment=None))
    led.save()
    assert L.activate(str(base), 'r1')['switched']
    (d / 'app').write_bytes(b'changed')
    with pytest.raises(HotswapError) as e:
        L.activate(str(base), 'r1')
    assert 'the ledger recorded %s' % hashlib.sha256(b'r1').hexdigest() in e.value.msg


# -- 3. a malformed ledger fails on load, naming the entry and the field --------------------------

DROP = object()  # entry(field=DROP) leaves the field out


def entry(**fields):
    e = {'release_id': 'r1', 'version': '1.0', 'sha256': 'a' * 64, 'binary': 'app', 'state': 'staged',
         'staged_at': '2024-01-01T00:00:00Z', 'activated_at': None, 'retired_at': None, 'failed_at': None,
         'activated_by': None}
    e.update(fields)
    return dict((k, v) for k, v in e.items() if v is not DROP)


@pytest.mark.parametrize('releases,history,words', [
    ({'r1': entry(release_id=DROP)}, [], 'releases["r1"] has no field "release_id"'),
    ({'r1': entry(state=DROP)}, [], 'releases["r1"] has no field "state"'),
    ({'r1': entry(release_id=['r1'])}, [], 'releases["r1"] field "release_id" is a list (["r1"]), not a string'),
    ({'r1': entry(release_id=7)}, [], 'releases["r1"] field "release_id" is a number (7), not a string'),
    ({'r1': entry(release_id='r2')}, [], 'releases["r1"] field "release_id" is "r2", not its key'),
    ({'r1': entry(version=1.2)}, [], 'releases["r1"] field "version" is a number (1.2), not a string or null'),
    ({'r1': entry(sha256=['a'])}, [], 'releases["r1"] field "sha256" is a list'),
    ({'r1': entry(staged_at=20240101)}, [], 'releases["r1"] field "staged_at" is a number'),
    ({'r1': entry(binary='../../usr/bin/x')}, [],
     'releases["r1"] field "binary" is "../../usr/bin/x", not a file name'),
    ({'r1': entry(files={'dest': 'x'})}, [], 'releases["r1"] field "files" is an object'),
    ({'r1': entry(members='app')}, [], 'releases["r1"] field "members" is a string'),
    ({'r1': 'staged'}, [], 'releases["r1"] is a string, not an object'),
    ({'../x': entry(release_id='../x')}, [], 'releases["../x"]: the key is not a valid release id'),
    ({'r1': entry()}, [{'at': '2024-01-01T00:00:00Z'}], 'history[0] has no field "release_id"'),
    ({'r1': entry()}, [{'release_id': ['r1']}], 'history[0] field "release_id" is a list'),
    ({'r1': entry()}, [{'release_id': 'r1', 'from': 3}], 'history[0] field "from" is a number'),
])
def test_load_names_the_malformed_entry_and_field(tmp_path, releases, history, words):
    ledger_file(tmp_path).parent.mkdir()
    ledger_file(tmp_path).write_text(json.dumps({'format': 1, 'releases': releases, 'history': history}))
    with pytest.raises(HotswapError) as e:
        Ledger.load(str(tmp_path))
    msg = e.value.msg
    assert msg.startswith('reading the release ledger %s: ' % ledger_file(tmp_path))
    assert words in msg
    assert 'Correct that field in the file by hand' in msg and '%s.bak' % ledger_file(tmp_path) in msg
    assert 'move it away' in msg


@pytest.mark.parametrize('operation', ['activate', 'prune', 'info', 'upload'])
def test_every_operation_reports_a_malformed_ledger_instead_of_crashing(tmp_path, module, src, operation):
    base = tmp_path / 'app'
    stage(base, 'r1')
    L.activate(str(base), 'r1')
    data = json.loads(ledger_file(base).read_text())
    data['history'].append({'release_id': ['r1'], 'from': None, 'at': '2024-01-01T00:00:00Z', 'by': 'x'})
    ledger_file(base).write_text(json.dumps(data))
    run = {
        'activate': lambda: L.activate(str(base), 'r1'),
        'prune': lambda: L.prune(str(base), 1),
        'info': lambda: L.info(str(base)),
        'upload': lambda: upload(module, str(base), '1.0-abc', 'app', 'sha256:' + ELF_SHA, src=src, host=HOST),
    }[operation]
    with pytest.raises(HotswapError) as e:
        run()
    assert 'history[1] field "release_id" is a list' in e.value.msg


def test_unknown_fields_and_nulls_still_load(tmp_path):
    ledger_file(tmp_path).parent.mkdir()
    data = {'format': 1, 'releases': {'r1': entry(note={'any': 'thing'}, environment=None, files=None)},
            'history': [{'release_id': 'r1', 'from': None, 'at': None, 'by': None, 'extra': 1}]}
    ledger_file(tmp_path).write_text(json.dumps(data))
    assert Ledger.load(str(tmp_path)).release('r1')['note'] == {'any': 'thing'}
