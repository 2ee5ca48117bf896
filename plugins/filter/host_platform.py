# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Which deploy path a host takes: the roles ask this one place."""

from __future__ import annotations

WINDOWS_CONNECTIONS = ('winrm', 'psrp')


def host_platform(connection, shell_type='', os_family=''):
    """'windows' for a host reached over WinRM/PSRP, with a PowerShell shell, or with Windows facts; else 'linux'.

    ``connection`` may be fully qualified (ansible.builtin.winrm) or a templated value.
    """
    name = str(connection or '').rsplit('.', maxsplit=1)[-1]
    if name in WINDOWS_CONNECTIONS or str(shell_type or '') == 'powershell' or str(os_family or '') == 'Windows':
        return 'windows'
    return 'linux'


class FilterModule(object):
    def filters(self):
        return {'host_platform': host_platform}
