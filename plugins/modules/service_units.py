#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: service_units
short_description: Install the systemd units of a restart strategy in one module run
version_added: 0.4.0
description:
  - Writes the unit files a restart strategy of M(hotswap.deploy.graceful_restart) needs, in
    C(/etc/systemd/system), each through a temporary file and a rename, only when its content differs.
  - C(systemd_socket) gets C(<app>.service) and C(<app>.socket); C(signal_reexec), C(notify_reload) and
    C(restart) get C(<app>.service); C(reuseport) gets the template C(<app>@.service) and the sysctl
    C(net.ipv4.tcp_migrate_req=1) (file in C(/etc/sysctl.d) and the running value).
  - A marker file C(.hotswap-<app>.<strategy>) (systemd ignores dot files) names the strategy the
    service runs under. When the strategy changes, every unit of the app that runs now is stopped
    and disabled once, and the files only the old strategy used are removed; the next restart then
    starts the service under the new units (one plain restart).
  - Does not reload systemd or start anything; pass RV(units_changed) to the I(daemon_reload) option
    of M(hotswap.deploy.graceful_restart).
  - One module run instead of a C(find), a C(template) per unit and a C(copy), since each remote module
    run costs a round trip per host.
extends_documentation_fragment:
  - hotswap.deploy.units
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
seealso:
  - module: hotswap.deploy.graceful_restart
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Install the units of the systemd_socket strategy
  hotswap.deploy.service_units:
    app: myapp
    strategy: systemd_socket
    service_unit: "{{ lookup('ansible.builtin.template', 'app.service.j2') }}"
    socket_unit: "{{ lookup('ansible.builtin.template', 'app.socket.j2') }}"
  register: units

- name: Restart, reloading systemd only when a unit changed
  hotswap.deploy.graceful_restart:
    service: myapp
    strategy: systemd_socket
    daemon_reload: "{{ units.units_changed }}"
'''

RETURN = r'''
units_changed:
  description: Whether a unit file was (or would be) written or removed; systemd must then reload its units.
  returned: success
  type: bool
  sample: true
installed:
  description: The files of the strategy in C(/etc/systemd/system), marker included.
  returned: success
  type: list
  elements: str
  sample: [.hotswap-myapp.systemd_socket, myapp.service, myapp.socket]
written:
  description: Files written (or that would be), because they were missing or differed.
  returned: success
  type: list
  elements: str
  sample: [myapp.service]
removed:
  description: Files of another strategy removed (or that would be).
  returned: success
  type: list
  elements: str
  sample: [.hotswap-myapp.restart]
stopped:
  description: Units stopped and disabled because the strategy changed (or that would be).
  returned: success
  type: list
  elements: str
  sample: [myapp.service]
sysctl_set:
  description: With C(reuseport), whether C(net.ipv4.tcp_migrate_req) was (or would be) set to 1 now.
  returned: success
  type: bool
  sample: false
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.units import UNITS_SPEC, install


def main():
    module = AnsibleModule(
        argument_spec=dict(UNITS_SPEC),
        required_if=[('strategy', 'systemd_socket', ['socket_unit'])],
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = install(p['app'], p['strategy'], p['service_unit'], p['socket_unit'],
                         run_command=module.run_command, check_mode=module.check_mode,
                         move=module.atomic_move)
    except HotswapError as e:
        module.fail_json(msg=e.msg)
    diff = result.pop('diff')
    if module._diff and result['changed']:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
