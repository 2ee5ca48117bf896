# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Controller side of hotswap.deploy.binary_upload.

Push mode (``src``), with the protocol shared with win_binary_swap
(``plugins/plugin_utils/push.py``):

1. find ``src`` on the controller (role/playbook ``files/``, vault decrypted), check its
   sha256 against ``checksum`` and that it is an executable -- all before touching the host;
2. one shell command asks the host for the release directory, a mention of the release id or
   the digest in the ledger, and ``uname``: when there is none, the release is not staged and
   nothing on the host can be reused (no sibling release with this binary), so the push goes on
   with that platform and the module, run once on the pushed copy, checks the rest (the lock, the
   ledger). Otherwise, and in check mode, the module runs once in verify-only mode (no src, no
   url) as a probe: it either succeeds (already staged: return that, nothing transferred) or
   fails with ``reason: not_staged`` and the host's ``host_platform``; any other failure (bad
   release_id/base_dir, a different binary already under that release id, broken ledger) is
   returned as is;
3. compare the executable header with ``host_platform`` and refuse a mismatch;
4. in check mode stop here (changed=true);
5. copy the file into the remote temp dir, run the module with ``src=<remote temp path>``,
   remove the temp dir.

``url`` mode and verify-only mode go straight to the module.
"""

from __future__ import annotations

import os
import shlex

from ansible_collections.hotswap.deploy.plugins.module_utils.archive import archive_format
from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import (
    NOT_STAGED,
    check_artifact_file,
    normalize_arch,
    normalize_os,
    validate_binary_name,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.release import paths as release_paths
from ansible_collections.hotswap.deploy.plugins.plugin_utils.push import PushActionBase
from ansible_collections.hotswap.deploy.plugins.plugin_utils.release_files import resolve_release_files

MODULE = 'hotswap.deploy.binary_upload'


class ActionModule(PushActionBase):

    MODULE = MODULE
    HOST_SHELL = 'sh'

    def describe(self, args):
        return args.get('name')

    def wrong_shell_msg(self, args):
        return ('uploading %s: hotswap.deploy.binary_upload manages POSIX hosts; this host uses '
                'PowerShell. Use the Windows modules of hotswap.deploy for Windows hosts.' % args.get('name'))

    def validate_push_args(self, args):
        validate_binary_name(args.get('name'))

    def host_platform(self, probe):
        return probe.get('host_platform') or {}

    def quick_probe(self, args, sha):
        """Not staged, and the host's platform, from one shell command; None when the module should look."""
        try:
            p = release_paths(args.get('base_dir') or '', args.get('release_id') or '')
        except HotswapError:
            return None     # the module probe says what is wrong, before anything is transferred
        res = self._low_level_execute_command(quick_probe_command(p.release_dir, p.ledger, args['release_id'], sha),
                                              sudoable=True)
        return parse_quick_probe(res)

    def remote_name(self, args):
        return 'hotswap-upload-%s' % args.get('name')

    def check_mode_result(self, probe, fmt):
        result = super(ActionModule, self).check_mode_result(probe, fmt)
        result.update(transferred=False, staged=False, ledger_updated=True)
        return result

    def prepare_args(self, args):
        # The pushed copy loses its name: decide the format from the controller's file name.
        args['format'] = archive_format(args.get('src') or args.get('url') or args.get('name'),
                                        args.get('format') or 'auto')
        if args.get('files'):
            args['files'] = resolve_release_files(self, args['files'])
        return args

    def push_args(self, args, remote_src):
        # The pushed copy is ours: the module moves it into the release instead of copying it.
        push = super(ActionModule, self).push_args(args, remote_src)
        push['move_src'] = True
        return push

    def check_artifact(self, local, sha, args, what):
        # Only the artifact here: the files and the environment are checked once, by release_plan and the module.
        return check_artifact_file(local, sha, args.get('name'), args['format'], args.get('strip_components') or 0,
                                   args.get('max_size') or 1024 ** 3, what=os.path.basename(args.get('src')))


def quick_probe_command(release_dir, ledger, release_id, sha):
    """A release directory, or the ledger naming the release or the digest, means the module must look."""
    q = shlex.quote
    return ('uname -sm; if [ -e %s ] || grep -qsF -e %s -e %s %s; then echo hotswap:look; fi'
            % (q(release_dir), q(release_id), q(sha), q(ledger)))


def parse_quick_probe(res):
    """The probe result of a push onto a host that has nothing of the release, or None (ask the module)."""
    lines = (res.get('stdout') or '').strip().splitlines()
    if res.get('rc') != 0 or len(lines) != 1 or len(lines[0].split()) != 2:
        return None
    system, machine = lines[0].split()
    return dict(failed=True, changed=False, reason=NOT_STAGED, staged=False,
                host_platform=dict(os=normalize_os(system), arch=normalize_arch(machine)))
