# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of hotswap.deploy.binary_upload.

Push mode (``src``):

1. find ``src`` on the controller (role/playbook ``files/``, vault decrypted), check its
   sha256 against ``checksum`` and that it is an executable -- all before touching the host;
2. run the module once in verify-only mode (no src, no url) as a probe: it either succeeds
   (already staged: return that, nothing transferred) or fails with ``reason: not_staged``
   and the host's ``host_platform``; any other failure (bad release_id/base_dir, a different
   binary already under that release id, broken ledger) is returned as is;
3. compare the executable header with ``host_platform`` and refuse a mismatch;
4. in check mode stop here (changed=true);
5. copy the file into the remote temp dir, run the module with ``src=<remote temp path>``,
   remove the temp dir.

``url`` mode and verify-only mode go straight to the module.
"""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import (
    NOT_STAGED,
    check_fits_host,
    check_local_artifact,
    parse_checksum,
    validate_binary_name,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

MODULE = 'hotswap.deploy.binary_upload'
_PROBE_ONLY_KEYS = ('failed', 'msg', 'reason', 'exception')


class ActionModule(ActionBase):

    TRANSFERS_FILES = False   # the remote temp dir is made only when there is something to push

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        try:
            result.update(self._run(task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _fail(self, msg, **extra):
        extra.update(failed=True, changed=False, msg=msg)
        return extra

    def _run(self, task_vars):
        args = self._task.args.copy()
        src = args.get('src')
        if src and args.get('url'):
            return self._fail('uploading %s: src and url are mutually exclusive. Give src to push the file from '
                              'the controller, or url for the host to download it.' % args.get('name'))
        if getattr(self._connection._shell, 'SHELL_FAMILY', 'sh') == 'powershell':
            return self._fail('uploading %s: hotswap.deploy.binary_upload manages POSIX hosts; this host uses '
                              'PowerShell. Use the Windows modules of hotswap.deploy for Windows hosts.'
                              % args.get('name'))
        if not src:
            # pull (url) or verify-only: everything happens on the host
            return self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)

        name = args.get('name')
        try:
            validate_binary_name(name)
            sha = parse_checksum(args.get('checksum'))
        except HotswapError as e:
            return self._fail(e.msg)

        try:
            found = self._find_needle('files', src)
        except AnsibleError:
            searched = ', '.join(to_text(p) for p in self._task.get_search_path())
            return self._fail('uploading %s: src %s was not found on the controller (searched the files/ '
                              'directories under: %s). Fix src: an absolute path, or a path relative to a '
                              'role or playbook files/ directory.' % (name, src, searched or 'the playbook directory'))
        try:
            local = self._loader.get_real_file(found, decrypt=True)
        except AnsibleError as e:
            return self._fail('uploading %s: cannot read %s on the controller (%s). Check the file and, '
                              'if it is vault-encrypted, the vault password.' % (name, found, to_text(e)))
        try:
            return self._push(args, name, sha, local, task_vars)
        finally:
            self._loader.cleanup_tmp_file(local)

    def _push(self, args, name, sha, local, task_vars):
        try:
            fmt = check_local_artifact(local, sha, host=None, what=name)
        except HotswapError as e:
            return self._fail(e.msg)

        probe_args = dict((k, v) for k, v in args.items() if k not in ('src', 'url'))
        probe = self._execute_module(module_name=MODULE, module_args=probe_args, task_vars=task_vars)
        if not probe.get('failed'):
            probe['transferred'] = False
            probe['executable'] = fmt
            return probe
        if probe.get('reason') != NOT_STAGED:
            return probe

        host = probe.get('host_platform') or {}
        try:
            check_fits_host(fmt, host, name)
        except HotswapError as e:
            return self._fail(e.msg, host_platform=host, executable=fmt)

        if self._task.check_mode:
            result = dict((k, v) for k, v in probe.items() if k not in _PROBE_ONLY_KEYS)
            result.update(changed=True, transferred=False, staged=False, ledger_updated=True,
                          executable=fmt)
            return result

        shell = self._connection._shell
        if shell.tmpdir is None:
            self._make_tmp_path()
        remote_src = shell.join_path(shell.tmpdir, 'hotswap-upload-%s' % name)
        self._transfer_file(local, remote_src)
        self._fixup_perms2((shell.tmpdir, remote_src))

        push_args = dict(args)
        push_args.pop('url', None)
        push_args['src'] = remote_src
        result = self._execute_module(module_name=MODULE, module_args=push_args, task_vars=task_vars)
        result['executable'] = fmt
        return result
