# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""What the unit tests need from ansible-core, the same on every release meta/runtime.yml claims (2.16-2.19);
scripts/core-matrix.sh runs them on each."""

from __future__ import annotations

import contextlib
import importlib
import json

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

try:
    from ansible.module_utils import _internal
except ImportError:  # ansible-core < 2.19
    _internal = None

try:
    from ansible.module_utils.testing import patch_module_args  # pylint: disable=unused-import
except ImportError:  # ansible-core < 2.19: a module reads its arguments from basic._ANSIBLE_ARGS
    @contextlib.contextmanager
    def patch_module_args(args=None):
        before = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': args or {}}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = before


def run_as_module(monkeypatch):
    """Modules run in this process behave as on a host: ansible-core 2.19, once controller code was imported
    here, sends module warnings to the controller's display instead of the result."""
    if _internal is not None:
        monkeypatch.setattr(_internal, 'is_controller', False)


@contextlib.contextmanager
def controller_code():
    """Import controller code (ansible.errors, a plugin) inside; ansible-core 2.19's process-wide switch to
    controller behaviour is undone on leaving, so module tests that run later keep their warnings."""
    before = getattr(_internal, 'is_controller', None)
    try:
        yield
    finally:
        if _internal is not None:
            _internal.is_controller = before


def import_controller(name):
    """Import the controller-side module ``name`` (see controller_code)."""
    with controller_code():
        return importlib.import_module(name)
