# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""hotswap.deploy.release_plan: the release id of an artifact + files + environment, on the controller."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import parse_checksum, validate_binary_name
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.release_content import content_manifest, make_release_id
from ansible_collections.hotswap.deploy.plugins.plugin_utils.release_files import resolve_release_files

ARGS = ('version', 'checksum', 'binary', 'files', 'environment', 'environment_secret')


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGS)
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        try:
            validate_binary_name(args.get('binary'))
            sha = parse_checksum(args.get('checksum'))
            files = resolve_release_files(self, args.get('files') or [])
            manifest = content_manifest(args['binary'], files, args.get('environment'), args.get('environment_secret'))
            rid = make_release_id(args.get('version'), sha, manifest)
        except HotswapError as e:
            result.update(failed=True, changed=False, msg=e.msg)
            return result
        result.update(changed=False, release_id=rid, sha256=sha, files=manifest['files'],
                      environment=manifest['environment'])
        return result
