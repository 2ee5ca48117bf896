# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Controller side of hotswap.deploy.win_binary_swap (the module itself is PowerShell).

Push mode (``src`` on the controller, ``remote_src: false``), with the protocol shared with
binary_upload (``plugins/plugin_utils/push.py``):

1. find ``src`` on the controller (role/playbook ``files/``, vault decrypted), check the
   ``checksum`` syntax, the file's sha256 and that it is a Windows PE executable -- all
   before touching the host;
2. run the module once without src/url as a probe: it succeeds when the live exe already has
   this digest (return that, nothing transferred), or fails with ``reason: not_staged`` and
   ``host_arch``; any other failure is returned as is;
3. compare the PE machine with ``host_arch`` and refuse a mismatch;
4. in check mode stop here (changed=true);
5. copy the file into the remote temp dir, run the module with ``src=<remote temp path>`` and
   ``remote_src: true`` (it stages ``<exe>.new``, verifies it again and swaps), remove the
   temp dir.

``url``, ``remote_src: true``, the verify-only probe and ``operation`` rollback and query (which
never take a file from the controller) go straight to the module.
"""

from __future__ import annotations

import ntpath

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import normalize_arch
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.plugin_utils.push import PushActionBase

MODULE = 'hotswap.deploy.win_binary_swap'


class ActionModule(PushActionBase):

    MODULE = MODULE
    HOST_SHELL = 'powershell'
    EXECUTABLE_OS = 'windows'

    def _exe_name(self, args):
        path = args.get('path')
        return ntpath.basename(path) if isinstance(path, str) and path else None

    def describe(self, args):
        return self._exe_name(args) or args.get('service') or 'the artifact'

    def wrong_shell_msg(self, args):
        return ('swapping %s: hotswap.deploy.win_binary_swap manages Windows hosts (ansible_connection winrm or '
                'psrp, or ssh with ansible_shell_type powershell); this host uses a POSIX shell. Deploy to it '
                'with hotswap.deploy.binary_upload (the Linux steps of the deploy_host role), or fix its '
                'connection variables in the inventory.' % self.describe(args))

    def wants_push(self, args):
        # rollback and query refuse src in the module, with a message saying why.
        return (args.get('operation') in (None, 'swap') and bool(args.get('src'))
                and not boolean(args.get('remote_src', False), strict=False))

    def probe_args(self, args):
        return dict((k, v) for k, v in args.items() if k not in ('src', 'url', 'remote_src'))

    def host_platform(self, probe):
        arch = probe.get('host_arch')
        if not arch:
            raise HotswapError(
                "checking the artifact against the host: the module's probe did not report host_arch, so "
                "the architecture cannot be compared before the transfer. The action plugin and the module "
                "come from different versions of hotswap.deploy; reinstall the collection.")
        return dict(os='windows', arch=normalize_arch(arch))

    def mismatch_details(self, probe, host):
        return dict(host_arch=probe.get('host_arch'), host_platform=host)

    def remote_name(self, args):
        return 'hotswap-upload-%s' % (self._exe_name(args) or 'artifact.exe')

    def push_args(self, args, remote_src):
        push = super(ActionModule, self).push_args(args, remote_src)
        push['remote_src'] = True
        return push

    def check_mode_result(self, probe, fmt):
        result = super(ActionModule, self).check_mode_result(probe, fmt)
        result.update(swapped=False, transferred=False)
        return result

    def pushed(self, result, fmt):
        result.update(transferred=True, executable=fmt)
        return result
