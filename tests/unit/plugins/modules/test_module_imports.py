# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""A module that sends no HTTP request does not import ``ansible.module_utils.urls`` (module_utils/request.py imports
it on the first request): the import costs every such module run about 0.1 s of CPU on the host."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
COLL_ROOT = os.path.join(REPO, 'build', 'unit-collections')   # tests/unit/conftest.py links the checkout there
OURS = 'ansible_collections.hotswap.deploy.plugins.modules.'
# Every module that only reads and writes the release tree, and those that send requests (only when they probe).
NO_REQUEST_AT_START = ('binary_upload', 'deploy_lock', 'release_activate', 'release_info', 'release_prune',
                       'release_status', 'service_units', 'health_check', 'graceful_restart', 'release_cutover')


def imports_urls(module):
    """Whether importing ``module`` in a fresh interpreter imports ansible.module_utils.urls."""
    code = ('import sys; sys.path.insert(0, %r); import %s; print("ansible.module_utils.urls" in sys.modules)'
            % (COLL_ROOT, module))
    out = subprocess.run([sys.executable, '-c', code], check=True, stdout=subprocess.PIPE, universal_newlines=True)
    return out.stdout.strip() == 'True'


@pytest.mark.parametrize('module', NO_REQUEST_AT_START)
def test_starting_a_module_does_not_import_urls(module):
    assert not imports_urls(OURS + module)


def test_the_check_sees_a_module_that_does():
    assert imports_urls('ansible.modules.uri')
