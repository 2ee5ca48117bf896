# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the binary_upload action plugin: the probe protocol, with the host faked."""

from __future__ import annotations

import functools
import hashlib
import struct
import types
from unittest import mock

import pytest

MODULE = 'hotswap.deploy.binary_upload'
LINUX_AMD64 = {'os': 'linux', 'arch': 'x86_64'}
LINUX_ARM64 = {'os': 'linux', 'arch': 'aarch64'}


def elf_bytes(machine=62):
    ident = b'\x7fELF' + bytes([2, 1, 1, 0]) + b'\0' * 8
    return ident + struct.pack('<HHI', 2, machine, 1) + b'\0' * 200


@pytest.fixture(scope='module', autouse=True)
def controller():
    """Import the controller side lazily and undo its process-wide switch afterwards.

    Yields the controller classes the tests need (ActionModule, AnsibleFileNotFound).

    Importing ansible's controller code sets ansible.module_utils._internal.is_controller,
    which makes module-side warn() go to the controller display instead of the module
    result; module tests that run later in the same session would then lose their warnings.
    """
    from ansible.module_utils import _internal
    before = _internal.is_controller
    from ansible.errors import AnsibleFileNotFound
    from ansible_collections.hotswap.deploy.plugins.action import binary_upload
    assert binary_upload.MODULE == MODULE
    yield types.SimpleNamespace(ActionModule=binary_upload.ActionModule, AnsibleFileNotFound=AnsibleFileNotFound)
    _internal.is_controller = before


@pytest.fixture
def artifact_file(tmp_path):
    p = tmp_path / 'app-linux-amd64'
    p.write_bytes(elf_bytes())
    return str(p), hashlib.sha256(p.read_bytes()).hexdigest()


class Host(object):
    """Records module runs and file transfers; answers like the module would."""

    def __init__(self, platform=None, staged=False, probe_error=None):
        self.platform = platform or LINUX_AMD64
        self.staged = staged
        self.probe_error = probe_error
        self.runs = []
        self.transfers = []

    def execute_module(self, module_name=None, module_args=None, task_vars=None, **kw):
        assert module_name == MODULE
        self.runs.append(dict(module_args))
        base = dict(host_platform=self.platform, path='/opt/app/releases/r1/app', release_dir='/opt/app/releases/r1',
                    sha256=module_args['checksum'].split(':')[1], release_id='r1', ledger_updated=False)
        if module_args.get('src') or module_args.get('url'):
            self.staged = True
            return dict(base, changed=True, transferred=True, staged=True, ledger_updated=True)
        if self.probe_error:
            return dict(base, failed=True, changed=False, msg=self.probe_error)
        if self.staged:
            return dict(base, changed=False, transferred=False, staged=True)
        return dict(base, failed=True, changed=False, transferred=False, staged=False, reason='not_staged',
                    msg='release r1 is not staged at /opt/app/releases/r1/app and neither src nor url was given.')


@pytest.fixture
def make_action(controller):
    """Return make_action(args, host, check_mode=False, found=None): an ActionModule wired to the fake host."""
    return functools.partial(build_action, controller)


def build_action(controller, args, host, check_mode=False, found=None):
    task = mock.MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.async_val = 0
    task.get_search_path.return_value = ['/playbooks']
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    connection._shell.SHELL_FAMILY = 'sh'
    connection._shell.join_path.side_effect = lambda *p: '/'.join(p)
    loader = mock.MagicMock()
    loader.get_real_file.side_effect = lambda path, decrypt=True: path
    action = controller.ActionModule(task, connection, mock.MagicMock(), loader, mock.MagicMock(), mock.MagicMock())

    def find_needle(dirname, needle):
        if found is None:
            raise controller.AnsibleFileNotFound(file_name=needle)
        return found
    action._find_needle = find_needle
    action._execute_module = host.execute_module

    def make_tmp_path(*a, **kw):
        connection._shell.tmpdir = '/home/u/.ansible/tmp/ansible-tmp-1'
        return connection._shell.tmpdir
    action._make_tmp_path = mock.MagicMock(side_effect=make_tmp_path)
    action._transfer_file = mock.MagicMock(side_effect=lambda local, remote: host.transfers.append((local, remote)))
    action._fixup_perms2 = mock.MagicMock()
    action._remove_tmp_path = mock.MagicMock()
    return action


def args_for(src, sha, **kw):
    a = dict(src=src, checksum='sha256:' + sha, name='app', base_dir='/opt/app', release_id='r1')
    a.update(kw)
    return a


def test_push_transfers_after_probe(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    action = make_action(args_for('app-linux-amd64', sha), host, found=path)
    r = action.run(task_vars={})
    assert not r.get('failed'), r
    assert r['changed'] is True and r['transferred'] is True
    assert r['executable'] == {'format': 'elf', 'os': 'linux', 'arch': 'x86_64', 'bits': 64}
    assert len(host.runs) == 2
    assert 'src' not in host.runs[0]                                   # the probe
    assert host.transfers == [(path, '/home/u/.ansible/tmp/ansible-tmp-1/hotswap-upload-app')]
    assert host.runs[1]['src'] == '/home/u/.ansible/tmp/ansible-tmp-1/hotswap-upload-app'
    action._fixup_perms2.assert_called_once()
    action._remove_tmp_path.assert_called()


def test_already_staged_transfers_nothing(artifact_file, make_action):
    path, sha = artifact_file
    host = Host(staged=True)
    r = make_action(args_for('app', sha), host, found=path).run(task_vars={})
    assert r['changed'] is False and r['transferred'] is False and not r.get('failed')
    assert host.transfers == [] and len(host.runs) == 1


def test_wrong_checksum_fails_on_controller(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    r = make_action(args_for('app', 'a' * 64), host, found=path).run(task_vars={})
    assert r['failed'] is True
    assert 'checksum says' in r['msg']
    assert host.runs == [] and host.transfers == []


def test_bad_checksum_syntax_fails_on_controller(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    r = make_action(args_for('app', sha, checksum='md5:abc'), host, found=path).run(task_vars={})
    assert r['failed'] is True and 'Only sha256' in r['msg']
    assert host.runs == []


def test_missing_src(artifact_file, make_action):
    host = Host()
    r = make_action(args_for('nope', 'a' * 64), host, found=None).run(task_vars={})
    assert r['failed'] is True
    assert 'src nope was not found on the controller' in r['msg']
    assert host.runs == []


def test_not_an_executable_fails_on_controller(tmp_path, make_action):
    p = tmp_path / 'app.tar.gz'
    p.write_bytes(b'\x1f\x8b\x08' + b'\0' * 50)
    host = Host()
    r = make_action(args_for('app.tar.gz', hashlib.sha256(p.read_bytes()).hexdigest()), host,
                    found=str(p)).run(task_vars={})
    assert r['failed'] is True and 'not an executable' in r['msg']
    assert host.runs == []


def test_wrong_arch_refused_before_transfer(artifact_file, make_action):
    path, sha = artifact_file
    host = Host(platform=LINUX_ARM64)
    r = make_action(args_for('app', sha), host, found=path).run(task_vars={})
    assert r['failed'] is True
    assert r['msg'] == ('uploading app: it is a linux/x86_64 ELF executable but the host is linux/aarch64. '
                        'Build for GOOS=linux GOARCH=arm64 or pick the right artifact.')
    assert len(host.runs) == 1 and host.transfers == []


def test_probe_error_is_returned(artifact_file, make_action):
    path, sha = artifact_file
    host = Host(probe_error="checking release_id 'a/b': it contains \"/\" or \"..\".")
    r = make_action(args_for('app', sha), host, found=path).run(task_vars={})
    assert r['failed'] is True and 'release_id' in r['msg']
    assert host.transfers == []


def test_check_mode_stops_after_probe(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    r = make_action(args_for('app', sha), host, check_mode=True, found=path).run(task_vars={})
    assert r['changed'] is True and r['transferred'] is False and not r.get('failed')
    assert 'reason' not in r and 'msg' not in r
    assert host.transfers == [] and len(host.runs) == 1


def test_url_passes_through(make_action):
    host = Host()
    r = make_action(dict(url='http://127.0.0.1:1/app', checksum='sha256:' + 'a' * 64, name='app',
                         base_dir='/opt/app', release_id='r1'), host).run(task_vars={})
    assert r['changed'] is True
    assert host.runs[0]['url'] == 'http://127.0.0.1:1/app' and host.transfers == []


def test_src_and_url_exclusive(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    r = make_action(args_for('app', sha, url='http://x/app'), host, found=path).run(task_vars={})
    assert r['failed'] is True and 'mutually exclusive' in r['msg']
    assert host.runs == []
