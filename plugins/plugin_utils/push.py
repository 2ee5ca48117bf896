# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Controller side shared by the actions that push an artifact: binary_upload, win_binary_swap.

Both follow the same protocol (subclasses fill in the module specific parts):

1. find ``src`` on the controller (role/playbook ``files/``, vault decrypted), check its
   sha256 against ``checksum`` and that it is an executable (for the OS the module manages,
   when it manages only one) -- all before touching the host;
2. ask the host whether the artifact may be there already. A subclass may answer from one
   shell command (``quick_probe``: binary_upload asks for the release directory, the ledger's
   mention of the release or digest, and ``uname``; nothing there means not staged, with the
   host's platform). Otherwise, and in check mode, the module runs once without ``src``/``url``
   as a probe: it either succeeds (the artifact is already in place: return that, nothing
   transferred) or fails with ``reason: not_staged`` and the host's platform; any other
   failure is returned as is;
3. compare the executable header with the host's platform and refuse a mismatch;
4. in check mode stop here (changed=true);
5. copy the file into a new remote temp dir, run the module on that copy, remove the temp dir. Where the
   connection takes data on a command's stdin (ssh, local: the plugins that can pipeline modules) and the file
   is not too big to hold in memory, one shell command makes the dir and writes the file from its stdin
   (``stream_command``); otherwise Ansible's own steps do it (expand ``~``, make the dir, sftp/scp the file, fix
   its permissions): two commands and a transfer session more per push.

Everything else (``url``, verify-only, host-side ``src``) goes straight to the module.
"""

from __future__ import annotations

import os
import shlex

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import (
    NOT_STAGED,
    check_fits_host,
    check_local_artifact,
    describe_format,
    parse_checksum,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

# Keys of the failed probe that must not leak into a check-mode result.
PROBE_ONLY_KEYS = ('failed', 'msg', 'reason', 'exception')

# The largest file sent on a command's stdin: the connection plugin takes it as one bytes object, so each
# worker holds the whole file while it sends it (forks x this, at most). Bigger files go by Ansible's transfer.
STREAM_MAX_BYTES = 128 * 1024 ** 2


def shell_family(connection):
    """'sh' or 'powershell': the family of the shell Ansible uses on this host."""
    return getattr(connection._shell, 'SHELL_FAMILY', 'sh')


def check_executable_os(fmt, os_name, what):
    """Refuse, before asking the host anything, an executable built for another OS than ``os_name``.

    For modules that manage only one OS (win_binary_swap: windows); the CPU architecture is
    checked later against what the host reports.
    """
    if fmt is not None and fmt.get('os') != os_name:
        raise HotswapError(
            "uploading %s: it is a %s but the host runs %s. Build for GOOS=%s or pick the right artifact."
            % (what, describe_format(fmt), os_name.capitalize(), os_name))


def stream_command(remote_tmp, basefile, name):
    """One sh command that makes a new private dir ``<remote_tmp>/<basefile>`` (as Ansible's own temp dirs are
    made: ``remote_tmp`` expanded by the host's shell, mode 0700) and writes its stdin to ``<dir>/<name>``;
    it prints ``<basefile>=<dir>``, and removes the dir when the write fails."""
    q = shlex.quote
    return ('( umask 77 && mkdir -p `echo %s` && d=`echo %s/%s` && mkdir "$d" && '
            '{ cat > "$d"/%s || { rm -rf "$d"; exit 1; }; } && echo %s="$d" )'
            % (remote_tmp, remote_tmp, basefile, q(name), basefile))


def streamed_dir(res, basefile):
    """The dir stream_command made, from its result; None when it failed."""
    if res.get('rc') != 0:
        return None
    for line in (res.get('stdout') or '').splitlines():
        key, sep, path = line.partition('=')
        if key == basefile and sep and path not in ('', '/'):
            return path
    return None


class PushActionBase(ActionBase):
    """ActionBase for a module that takes ``src`` (pushed from the controller) or ``url``.

    Subclasses set MODULE, HOST_SHELL (the shell family of the hosts the module manages)
    and implement the hooks below.
    """

    TRANSFERS_FILES = False   # the remote temp dir is made only when there is something to push
    MODULE = None
    HOST_SHELL = 'sh'
    EXECUTABLE_OS = None      # set when the module manages one OS only: refuse others before the probe
    known_probe = None        # the probe's answer, when the caller knows it (not staged, and the host platform)
    # Set by a caller that runs the module itself, in its own module run (host_deploy: release_cutover's upload
    # step): the push stops after the transfer and returns the module's arguments as ``deferred``, the pushed
    # copy left in the remote temp dir for that run (the caller removes the dir).
    defer_module = False

    # -- hooks ------------------------------------------------------------------------

    def describe(self, args):
        """What the artifact is called in messages."""
        raise NotImplementedError

    def wrong_shell_msg(self, args):
        raise NotImplementedError

    def wants_push(self, args):
        """True when ``src`` is a file on the controller to be pushed."""
        return bool(args.get('src'))

    def validate_push_args(self, args):
        """Module specific checks of the arguments before the file is looked at; raise HotswapError."""

    def prepare_args(self, args):
        """The module's arguments with what only the controller can fill in; raise HotswapError."""
        return args

    def check_artifact(self, local, sha, args, what):
        """Digest and executable header of the controller's file; returns the header (or None)."""
        return check_local_artifact(local, sha, host=None, what=what)

    def quick_probe(self, args, sha):
        """The probe's answer from one shell command when the artifact (digest ``sha``) is surely not on the
        host, else None (the module probe decides)."""
        return None

    def probe_args(self, args):
        return dict((k, v) for k, v in args.items() if k not in ('src', 'url'))

    def host_platform(self, probe):
        """``{'os': ..., 'arch': ...}`` of the host, from the failed (not_staged) probe."""
        raise NotImplementedError

    def mismatch_details(self, probe, host):
        """Extra result keys when the artifact does not fit the host."""
        return dict(host_platform=host)

    def remote_name(self, args):
        """File name of the pushed copy inside the remote temp dir."""
        raise NotImplementedError

    def push_args(self, args, remote_src):
        push = dict(args)
        push.pop('url', None)
        push['src'] = remote_src
        return push

    def already_there(self, probe, fmt):
        """The successful probe: the artifact is in place already, nothing was transferred."""
        probe.update(transferred=False, executable=fmt)
        return probe

    def check_mode_result(self, probe, fmt):
        """What check mode reports once every check passed (nothing transferred)."""
        result = dict((k, v) for k, v in probe.items() if k not in PROBE_ONLY_KEYS)
        result.update(changed=True, executable=fmt)
        return result

    def pushed(self, result, fmt):
        result['executable'] = fmt
        return result

    # -- protocol ---------------------------------------------------------------------

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(PushActionBase, self).run(tmp, task_vars)
        del tmp
        try:
            result.update(self._run(task_vars))
        finally:
            if not result.get('deferred'):
                self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _fail(self, msg, **extra):
        extra.update(failed=True, changed=False, msg=msg)
        return extra

    def _module(self, module_args, task_vars):
        return self._execute_module(module_name=self.MODULE, module_args=module_args, task_vars=task_vars)

    def _run(self, task_vars):
        args = self._task.args.copy()
        what = self.describe(args)
        try:
            args = self.prepare_args(args)
        except HotswapError as e:
            return self._fail(e.msg)
        if args.get('src') and args.get('url'):
            return self._fail('uploading %s: src and url are mutually exclusive. Give src to push the file from '
                              'the controller, or url for the host to download it.' % what)
        if shell_family(self._connection) != self.HOST_SHELL:
            return self._fail(self.wrong_shell_msg(args))
        if not self.wants_push(args):
            # pull (url), verify-only, or a file already on the host: everything happens on the host
            return self._module(args, task_vars)

        try:
            self.validate_push_args(args)
            sha = parse_checksum(args.get('checksum'))
        except HotswapError as e:
            return self._fail(e.msg)

        src = args['src']
        try:
            found = self._find_needle('files', src)
        except AnsibleError:
            searched = ', '.join(to_text(p) for p in self._task.get_search_path())
            return self._fail('uploading %s: src %s was not found on the controller (searched the files/ '
                              'directories under: %s). Fix src: an absolute path, or a path relative to a '
                              'role or playbook files/ directory.' % (what, src, searched or 'the playbook directory'))
        try:
            local = self._loader.get_real_file(found, decrypt=True)
        except AnsibleError as e:
            return self._fail('uploading %s: cannot read %s on the controller (%s). Check the file and, '
                              'if it is vault-encrypted, the vault password.' % (what, found, to_text(e)))
        try:
            return self._push(args, what, sha, local, task_vars)
        finally:
            self._loader.cleanup_tmp_file(local)

    def _push(self, args, what, sha, local, task_vars):
        try:
            fmt = self.check_artifact(local, sha, args, what)
            if self.EXECUTABLE_OS:
                check_executable_os(fmt, self.EXECUTABLE_OS, what)
        except HotswapError as e:
            return self._fail(e.msg)

        # A caller that has just read the host (host_deploy: the lock run) passes what the probe would say.
        probe = self.known_probe or (None if self._task.check_mode else self.quick_probe(args, sha)) \
            or self._module(self.probe_args(args), task_vars)
        if not probe.get('failed'):
            return self.already_there(probe, fmt)
        if probe.get('reason') != NOT_STAGED:
            return probe

        try:
            host = self.host_platform(probe)
        except HotswapError as e:
            return self._fail(e.msg, executable=fmt)
        try:
            check_fits_host(fmt, host, what)
        except HotswapError as e:
            return self._fail(e.msg, executable=fmt, **self.mismatch_details(probe, host))

        if self._task.check_mode:
            return self.check_mode_result(probe, fmt)

        remote_src = self._send(local, self.remote_name(args), what)
        if self.defer_module:
            return dict(changed=True, deferred=self.push_args(args, remote_src), executable=fmt)
        return self.pushed(self._module(self.push_args(args, remote_src), task_vars), fmt)

    # -- the transfer -----------------------------------------------------------------------------

    def _send(self, local, name, what):
        """Put the controller's file ``local`` into a new remote temp dir as ``name``; its path there."""
        shell = self._connection._shell
        if shell.tmpdir is None and self._can_stream(local):
            return self._stream(local, name, what)
        if shell.tmpdir is None:
            self._make_tmp_path()
        remote_src = shell.join_path(shell.tmpdir, name)
        self._transfer_file(local, remote_src)
        self._fixup_perms2((shell.tmpdir, remote_src))
        return remote_src

    def _can_stream(self, local):
        """The file can go on a command's stdin: a POSIX shell, a connection that takes data (it can pipeline),
        a temp dir the connection user may hand on (no become to a second unprivileged user), a file of at
        most STREAM_MAX_BYTES."""
        return (shell_family(self._connection) == 'sh' and getattr(self._connection, 'has_pipelining', False)
                and not getattr(self._connection, '_remote_is_local', False)
                and not self._is_become_unprivileged() and os.path.getsize(local) <= STREAM_MAX_BYTES)

    def _stream(self, local, name, what):
        shell = self._connection._shell
        basefile = shell._generate_temp_dir_name()
        remote_tmp = self.get_shell_option('remote_tmp', default='~/.ansible/tmp')
        with open(local, 'rb') as f:
            data = f.read()
        res = self._low_level_execute_command(stream_command(remote_tmp, basefile, name), in_data=data,
                                              sudoable=False)
        tmpdir = streamed_dir(res, basefile)
        if tmpdir is None:
            # As a failed transfer: a failed task (an ssh failure raised AnsibleConnectionFailure already).
            raise AnsibleError(
                'uploading %s: writing it into a new temporary directory on the host failed (rc %s: %s). Check the '
                'free space and permissions of remote_tmp (%s) on the host.' % (
                    what, res.get('rc'), (res.get('stderr') or res.get('stdout') or 'no output').strip()[-300:],
                    remote_tmp))
        # Ansible's temp dir from here on: module runs use it, the run removes it at its end.
        shell.tmpdir = tmpdir
        self._cleanup_remote_tmp = True
        return shell.join_path(tmpdir, name)
