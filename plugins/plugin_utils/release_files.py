# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Controller side of release files: ``src`` read on the controller, sent as base64 content.

Used by release_plan (the release id covers the bytes) and binary_upload (the host writes
them): both must see the same bytes, so both read them here.
"""

from __future__ import annotations

import base64

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.release_content import MAX_FILE_BYTES


def _read_src(action, src, dest):
    try:
        found = action._find_needle('files', src)
    except AnsibleError:
        raise HotswapError('reading release file %s: src %s was not found on the controller. Give an absolute path, '
                           'or one relative to a role or playbook files/ directory.' % (dest, src))
    try:
        real = action._loader.get_real_file(found, decrypt=True)
    except AnsibleError as e:
        raise HotswapError('reading release file %s: cannot read %s on the controller (%s). Check the file and, if '
                           'it is vault-encrypted, the vault password.' % (dest, found, to_text(e)))
    try:
        with open(real, 'rb') as f:
            data = f.read(MAX_FILE_BYTES + 1)
    finally:
        action._loader.cleanup_tmp_file(real)
    return data


def resolve_release_files(action, files):
    """``files`` with every ``src`` replaced by base64 ``content``; other entries unchanged."""
    if not isinstance(files, list):
        return files
    out = []
    for entry in files:
        if not isinstance(entry, dict) or not entry.get('src'):
            out.append(entry)
            continue
        dest = entry.get('dest') or entry['src']
        if entry.get('content') is not None:
            raise HotswapError('checking release file %s: give src or content, not both.' % dest)
        resolved = dict((k, v) for k, v in entry.items() if k != 'src')
        resolved.update(content=base64.b64encode(_read_src(action, entry['src'], dest)).decode('ascii'),
                        content_encoding='base64')
        out.append(resolved)
    return out
