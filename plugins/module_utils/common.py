# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Argument specs shared by several modules (one concept, one place)."""

from __future__ import annotations

import os

BASE_DIR_SPEC = dict(base_dir=dict(type='path', required=True))
RELEASE_ID_SPEC = dict(release_id=dict(type='str', required=True))
# The deploy lock a writing module runs under (doc fragment hotswap.deploy.release.lock_owner, lock.check_holder).
LOCK_OWNER_SPEC = dict(lock_owner=dict(type='str'))
# The restart strategies (module_utils/restart.py runs them, module_utils/units.py installs their units), the
# one list: graceful_restart, service_units and release_status take their choices from it; tests/unit/test_roles.py
# checks the modules' DOCUMENTATION, the roles' argument specs, playbooks/deploy.yml and the docs against it.
STRATEGIES = ('systemd_socket', 'signal_reexec', 'notify_reload', 'reuseport', 'restart')
# What a release holds besides its artifact (doc fragment hotswap.deploy.release.content).
CONTENT_SPEC = dict(
    files=dict(type='list', elements='dict', default=[], options=dict(
        dest=dict(type='str', required=True),
        src=dict(type='path'),
        content=dict(type='str', no_log=True),
        content_encoding=dict(type='str', default='text', choices=['text', 'base64']),
        owner=dict(type='str'),
        group=dict(type='str'),
        mode=dict(type='raw'),
        secret=dict(type='bool', default=False),
    )),
    environment=dict(type='dict', default={}),
    environment_secret=dict(type='dict', default={}, no_log=True),
)


class HotswapError(Exception):
    """A failure to report to the user.

    The message says what was being done, then the cause, then the fix:
    "activating release X: <base_dir>/current is a real directory; move it away ...".
    """

    def __init__(self, msg, **details):
        super(HotswapError, self).__init__(msg)
        self.msg = msg
        self.details = details


def unlink_quietly(path):
    """Remove a temp file if it is there; clean-up must not hide the error that caused it."""
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


def listdir_or_empty(path):
    """Sorted names in ``path``; a missing directory has none."""
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def exit_with_diff(module, result, changed_key='changed'):
    """exit_json with the result's ``diff`` (before/after) only in diff mode and when ``changed_key`` is true."""
    diff = result.pop('diff')
    if module._diff and result[changed_key]:  # pylint: disable=protected-access
        result['diff'] = diff
    module.exit_json(**result)
