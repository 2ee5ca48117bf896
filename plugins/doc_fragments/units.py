# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations


class ModuleDocFragment(object):
    # The systemd units of a restart strategy: what service_units writes and release_status compares
    # (argument spec: module_utils/units.py UNITS_SPEC).
    DOCUMENTATION = r'''
options:
  app:
    description:
      - Name of the service (the unit is C(<app>.service), or the template C(<app>@.service) for C(reuseport)).
      - Letters, digits, C(_), C(.), C(:) and C(-), starting with a letter, digit or C(_), at most 200 characters;
        no C(/), C(..) or C(@). Any other name is refused before a file is written.
    type: str
    required: true
  strategy:
    description: Restart strategy the units are for (see M(hotswap.deploy.graceful_restart)).
    type: str
    required: true
    choices: [systemd_socket, signal_reexec, notify_reload, reuseport, restart]
  service_unit:
    description:
      - Content of the service unit (or template unit for C(reuseport)), for example rendered on the
        controller with C(lookup('ansible.builtin.template', 'app.service.j2')).
    type: str
    required: true
  socket_unit:
    description: Content of the socket unit. Required with I(strategy=systemd_socket), ignored otherwise.
    type: str
'''
