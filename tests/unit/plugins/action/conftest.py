# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Fixtures shared by the action plugin tests: the controller side, imported late, and an
ActionModule wired to a fake host at the ActionBase boundary (_execute_module, _transfer_file,
_make_tmp_path).

A test module here defines:

- ``MODULE``: the module its action plugin runs, ``hotswap.deploy.<name>``; the action plugin
  has the same name;
- ``SHELL``: the SHELL_FAMILY of the fake connection (``sh`` or ``powershell``);
- ``TMPDIR``: the remote temporary directory the fake _make_tmp_path creates.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import struct
import types
from unittest import mock

import pytest

from core_compat import controller_code


@pytest.fixture(scope='module', autouse=True)
def controller(request):
    """Import the controller side lazily and undo its process-wide switch afterwards.

    Yields the controller classes the tests need (ActionModule of the test module's MODULE,
    AnsibleFileNotFound).

    Importing ansible's controller code sets ansible.module_utils._internal.is_controller,
    which makes module-side warn() go to the controller display instead of the module
    result; module tests that run later in the same session would then lose their warnings.
    """
    module = request.module.MODULE
    with controller_code():
        from ansible.errors import AnsibleFileNotFound
        plugin = importlib.import_module(
            'ansible_collections.hotswap.deploy.plugins.action.' + module.rsplit('.', 1)[1])
        assert plugin.MODULE == module
        yield types.SimpleNamespace(ActionModule=plugin.ActionModule, AnsibleFileNotFound=AnsibleFileNotFound)


@pytest.fixture
def make_action(request, controller):
    """Return make_action(args, host, check_mode=False, found=None, shell=SHELL): an ActionModule on the fake host.

    host.execute_module(module_name, module_args, task_vars) answers for the module and records
    the runs; host.transfers collects (local, remote) of every file transfer. found is what the
    lookup of src returns (None: not found on the controller).
    """
    return functools.partial(build_action, controller, request.module.TMPDIR, shell=request.module.SHELL)


def build_action(controller, tmpdir, args, host, check_mode=False, found=None, shell='sh'):
    task = mock.MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.async_val = 0
    task.get_search_path.return_value = ['/playbooks']
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    connection._shell.SHELL_FAMILY = shell
    # Ansible's transfer (make the dir, put the file) unless a test streams: see test_binary_upload.py.
    connection.has_pipelining = False
    connection._remote_is_local = False
    separator = '\\' if shell == 'powershell' else '/'
    connection._shell.join_path.side_effect = lambda *p: separator.join(p)
    loader = mock.MagicMock()
    loader.get_real_file.side_effect = lambda path, decrypt=True: path
    action = controller.ActionModule(task, connection, mock.MagicMock(), loader, mock.MagicMock(), mock.MagicMock())

    def find_needle(dirname, needle):
        if found is None:
            raise controller.AnsibleFileNotFound(file_name=needle)
        return found
    action._find_needle = find_needle
    action._execute_module = host.execute_module
    # A host without low_level answers no shell command (the module probe decides).
    action._low_level_execute_command = getattr(host, 'low_level', None) or mock.MagicMock(
        return_value=dict(rc=127, stdout='', stderr='not faked'))

    def make_tmp_path(*a, **kw):
        connection._shell.tmpdir = tmpdir
        return tmpdir
    action._make_tmp_path = mock.MagicMock(side_effect=make_tmp_path)
    action._transfer_file = mock.MagicMock(side_effect=lambda local, remote: host.transfers.append((local, remote)))
    action._fixup_perms2 = mock.MagicMock()
    action._remove_tmp_path = mock.MagicMock()
    return action


@pytest.fixture
def write_artifact(tmp_path):
    """Return write(name, data): write data to tmp_path/name and return (path, sha256 hex)."""
    def write(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        return str(p), hashlib.sha256(data).hexdigest()
    return write


@pytest.fixture
def linux_elf():
    """The start of a linux/x86_64 ELF executable: enough for the controller's header check."""
    ident = b'\x7fELF' + bytes([2, 1, 1, 0]) + b'\0' * 8
    return ident + struct.pack('<HHI', 2, 62, 1) + b'\0' * 200
