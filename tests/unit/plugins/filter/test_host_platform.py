# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

import pytest

from ansible_collections.hotswap.deploy.plugins.filter.host_platform import FilterModule, host_platform


@pytest.mark.parametrize('args,expected', [
    (('winrm',), 'windows'),
    (('ansible.builtin.psrp',), 'windows'),
    (('ssh', 'powershell'), 'windows'),
    (('ssh', 'sh', 'Windows'), 'windows'),
    (('ssh', 'sh', 'Debian'), 'linux'),
    (('paramiko_ssh',), 'linux'),
    (('',), 'linux'),
    ((None, None, None), 'linux'),
])
def test_host_platform(args, expected):
    assert host_platform(*args) == expected


def test_filter_is_registered():
    assert FilterModule().filters()['host_platform'] is host_platform
