# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Unit tests for the win_binary_swap action plugin: its controller-side checks and the probe
protocol, with the Windows host faked at the ActionBase boundary (_execute_module,
_transfer_file, _make_tmp_path). Nothing here runs PowerShell or pretends to.

controller, make_action, write_artifact and linux_elf come from conftest.py."""

from __future__ import annotations

import struct

import pytest

MODULE = 'hotswap.deploy.win_binary_swap'
SHELL = 'powershell'
EXE_PATH = 'C:\\hotswap\\app\\app.exe'
TMPDIR = 'C:\\Users\\deploy\\AppData\\Local\\Temp\\ansible-tmp-1'


def pe_bytes(machine=0x8664, characteristics=0x0022):
    """A minimal PE image header: MZ stub, e_lfanew at 0x3c, 'PE\\0\\0', COFF header."""
    head = bytearray(b'MZ' + b'\0' * 0x3e)
    struct.pack_into('<I', head, 0x3c, 0x40)
    coff = struct.pack('<HHIIIHH', machine, 3, 0, 0, 0, 0xf0, characteristics)
    return bytes(head) + b'PE\0\0' + coff + b'\0' * 200


@pytest.fixture
def exe_file(write_artifact):
    return write_artifact('app-windows-amd64.exe', pe_bytes())


class WinHost(object):
    """Answers like the module's contract says; records module runs and file transfers."""

    def __init__(self, arch='x86_64', live_sha=None, probe_error=None, report_arch=True):
        self.arch = arch
        self.live_sha = live_sha
        self.probe_error = probe_error
        self.report_arch = report_arch
        self.runs = []
        self.transfers = []

    def execute_module(self, module_name=None, module_args=None, task_vars=None, **kw):
        assert module_name == MODULE
        self.runs.append(dict(module_args))
        sha = module_args['checksum'].split(':')[1]
        base = dict(changed=False, swapped=False, previous_release='1.0.0-aaaaaaaaaaaa', current_release=None,
                    release_id=module_args['release_id'], sha256=sha, backup_path=None, staged_path=None,
                    failed_step=None, health=None)
        if self.report_arch:
            base['host_arch'] = self.arch
        if module_args.get('src') or module_args.get('url'):
            assert module_args.get('src') is None or module_args.get('remote_src') in (True, 'yes')
            self.live_sha = sha
            return dict(base, changed=True, swapped=True, current_release=module_args['release_id'],
                        backup_path=module_args['path'] + '.old-1.0.0-aaaaaaaaaaaa',
                        staged_path=module_args['path'] + '.new', health='pass')
        if self.probe_error:
            return dict(base, failed=True, msg=self.probe_error)
        if self.live_sha == sha:
            return dict(base, current_release=module_args['release_id'])
        return dict(base, failed=True, reason='not_staged', current_release='1.0.0-aaaaaaaaaaaa',
                    msg='%s does not have sha256 %s and neither src nor url was given.' % (module_args['path'], sha))


def args_for(src, sha, **kw):
    a = dict(src=src, checksum='sha256:' + sha, path=EXE_PATH, service='app', release_id='2.0.0-bbbbbbbbbbbb',
             version='2.0.0')
    a.update(kw)
    return a


def test_push_probes_then_transfers_and_swaps(exe_file, make_action):
    path, sha = exe_file
    host = WinHost()
    action = make_action(args_for('app.exe', sha), host, found=path)
    r = action.run(task_vars={})
    assert not r.get('failed'), r
    assert r['changed'] is True and r['swapped'] is True and r['transferred'] is True
    assert r['executable'] == {'format': 'pe', 'os': 'windows', 'arch': 'x86_64', 'bits': 64}
    assert len(host.runs) == 2
    probe, push = host.runs
    assert 'src' not in probe and 'url' not in probe and 'remote_src' not in probe
    assert probe['path'] == EXE_PATH and probe['service'] == 'app'
    remote = TMPDIR + '\\hotswap-upload-app.exe'
    assert host.transfers == [(path, remote)]
    assert push['src'] == remote and push['remote_src'] is True
    assert push['path'] == EXE_PATH and push['checksum'] == 'sha256:' + sha
    action._remove_tmp_path.assert_called_with(TMPDIR)


def test_already_live_transfers_nothing(exe_file, make_action):
    path, sha = exe_file
    host = WinHost(live_sha=exe_file[1])
    r = make_action(args_for('app.exe', sha), host, found=path).run(task_vars={})
    assert not r.get('failed'), r
    assert r['changed'] is False and r['transferred'] is False
    assert len(host.runs) == 1 and host.transfers == []


def test_missing_src_fails_on_controller(make_action):
    host = WinHost()
    r = make_action(args_for('nope.exe', 'a' * 64), host, found=None).run(task_vars={})
    assert r['failed'] is True
    assert 'src nope.exe was not found on the controller' in r['msg'] and '/playbooks' in r['msg']
    assert host.runs == [] and host.transfers == []


def test_checksum_mismatch_fails_before_the_host(exe_file, make_action):
    path, sha = exe_file
    host = WinHost()
    r = make_action(args_for('app.exe', 'b' * 64), host, found=path).run(task_vars={})
    assert r['failed'] is True
    assert 'its sha256 is %s but checksum says %s' % (sha, 'b' * 64) in r['msg']
    assert host.runs == [] and host.transfers == []


@pytest.mark.parametrize('checksum, words', [
    ('md5:abc', 'Only sha256'),
    ('a' * 64, 'no algorithm prefix'),
    ('sha256:abc', 'not a sha256 digest'),
    ('', 'it is empty'),
])
def test_bad_checksum_syntax_fails_before_the_host(exe_file, make_action, checksum, words):
    path, sha = exe_file
    host = WinHost()
    r = make_action(args_for('app.exe', sha, checksum=checksum), host, found=path).run(task_vars={})
    assert r['failed'] is True and words in r['msg'], r
    assert host.runs == []


def test_elf_refused_before_the_host(write_artifact, linux_elf, make_action):
    path, sha = write_artifact('app-linux-amd64', linux_elf)
    host = WinHost()
    r = make_action(args_for('app-linux-amd64', sha), host, found=path).run(task_vars={})
    assert r['failed'] is True
    assert r['msg'] == ('uploading app.exe: it is a linux/x86_64 ELF executable but the host runs Windows. '
                        'Build for GOOS=windows or pick the right artifact.')
    assert host.runs == [] and host.transfers == []


@pytest.mark.parametrize('data', [
    b'\x1f\x8b\x08' + b'\0' * 50,                 # a tarball
    b'MZ' + b'\0' * 100,                          # a DOS stub without a PE header
    pe_bytes(characteristics=0x2022),             # a DLL
], ids=['gzip', 'dos-stub', 'dll'])
def test_not_a_pe_executable_refused_before_the_host(write_artifact, make_action, data):
    path, sha = write_artifact('app.bin', data)
    host = WinHost()
    r = make_action(args_for('app.bin', sha), host, found=path).run(task_vars={})
    assert r['failed'] is True and 'not an executable' in r['msg'], r
    assert host.runs == []


def test_arch_mismatch_with_probe_refused_before_transfer(exe_file, make_action):
    path, sha = exe_file
    host = WinHost(arch='aarch64')
    r = make_action(args_for('app.exe', sha), host, found=path).run(task_vars={})
    assert r['failed'] is True
    assert r['msg'] == ('uploading app.exe: it is a windows/x86_64 PE executable but the host is windows/aarch64. '
                        'Build for GOOS=windows GOARCH=arm64 or pick the right artifact.')
    assert r['host_arch'] == 'aarch64'
    assert len(host.runs) == 1 and host.transfers == []
    assert not r.get('reason')


def test_arm64_exe_fits_arm64_host(write_artifact, make_action):
    path, sha = write_artifact('app-arm64.exe', pe_bytes(machine=0xaa64))
    host = WinHost(arch='aarch64')
    r = make_action(args_for('app-arm64.exe', sha), host, found=path).run(task_vars={})
    assert not r.get('failed'), r
    assert len(host.transfers) == 1


def test_probe_without_host_arch_is_refused(exe_file, make_action):
    path, sha = exe_file
    host = WinHost(report_arch=False)
    r = make_action(args_for('app.exe', sha), host, found=path).run(task_vars={})
    assert r['failed'] is True and 'did not report host_arch' in r['msg']
    assert host.transfers == []


def test_probe_error_is_returned_as_is(exe_file, make_action):
    path, sha = exe_file
    host = WinHost(probe_error="service 'app' does not exist on this host")
    r = make_action(args_for('app.exe', sha), host, found=path).run(task_vars={})
    assert r['failed'] is True and r['msg'] == "service 'app' does not exist on this host"
    assert host.transfers == []


def test_check_mode_stops_before_transfer(exe_file, make_action):
    path, sha = exe_file
    host = WinHost()
    action = make_action(args_for('app.exe', sha), host, check_mode=True, found=path)
    r = action.run(task_vars={})
    assert not r.get('failed'), r
    assert r['changed'] is True and r['swapped'] is False and r['transferred'] is False
    assert 'reason' not in r and 'msg' not in r
    assert r['host_arch'] == 'x86_64'
    assert len(host.runs) == 1 and host.transfers == []
    action._make_tmp_path.assert_not_called()


@pytest.mark.parametrize('extra', [
    dict(src=None, url='https://127.0.0.1:1/app.exe'),
    dict(src='D:\\drop\\app.exe', remote_src=True),
    dict(src='D:\\drop\\app.exe', remote_src='yes'),
    dict(src=None),
], ids=['url', 'remote-src', 'remote-src-string', 'verify-only'])
def test_host_side_sources_pass_through(make_action, extra):
    host = WinHost()
    args = args_for(None, 'c' * 64)
    args.update(extra)
    args = dict((k, v) for k, v in args.items() if v is not None)
    action = make_action(args, host, found=None)
    action.run(task_vars={})
    assert host.runs == [args] and host.transfers == []
    action._make_tmp_path.assert_not_called()


def test_src_and_url_exclusive(exe_file, make_action):
    path, sha = exe_file
    host = WinHost()
    r = make_action(args_for('app.exe', sha, url='https://127.0.0.1:1/app.exe'), host, found=path).run(task_vars={})
    assert r['failed'] is True and 'mutually exclusive' in r['msg']
    assert host.runs == []


def test_posix_host_refused(exe_file, make_action):
    path, sha = exe_file
    host = WinHost()
    r = make_action(args_for('app.exe', sha), host, found=path, shell='sh').run(task_vars={})
    assert r['failed'] is True
    assert 'manages Windows hosts' in r['msg'] and 'binary_upload' in r['msg']
    assert host.runs == []
