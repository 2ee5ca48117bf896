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
  - A unit named C(<app>.service) or C(<app>.socket) that this collection did not install (hand-written in
    C(/etc/systemd/system), or a package's in C(/lib/systemd/system), which ours would shadow) is refused,
    unless O(adopt=true), which keeps a copy of each once in C(<base_dir>/.hotswap/adopted/units.json)
    and RV(adopted) names them; O(state=adopted_restored) puts them back (rollback.yml does).
extends_documentation_fragment:
  - hotswap.deploy.units
  - ansible.builtin.action_common_attributes
options:
  strategy:
    description: Restart strategy the units are for (see M(hotswap.deploy.graceful_restart)). Required with O(state=present).
    type: str
    required: false
    choices: [systemd_socket, signal_reexec, notify_reload, reuseport, restart]
  service_unit:
    description:
      - Content of the service unit (or template unit for C(reuseport)). Required with O(state=present).
    type: str
    required: false
  adopt:
    description:
      - Take over a unit of the same name that this collection did not install, keeping a copy of it.
      - Without it such a unit makes the module fail, changing nothing.
    type: bool
    default: false
  base_dir:
    description: Deploy root of the app; adopted units are kept under C(<base_dir>/.hotswap/adopted/).
    type: path
  previous_state:
    description:
      - With O(state=adopted_restored), the ledger state of the release C(current) points at, which no
        longer runs - V(failed) (a rollback never picks it as the previous good release) or V(retired).
    type: str
    choices: [failed, retired]
    default: failed
  state:
    description:
      - V(present) installs the units of O(strategy).
      - V(adopted_restored) removes ours and writes back the units kept when they were adopted.
    type: str
    choices: [present, adopted_restored]
    default: present
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
adopted:
  description: Units this run took over (their copies kept for a restore); empty when none.
  returned: state=present
  type: list
  elements: str
  sample: [/etc/systemd/system/myapp.service]
restored:
  description: Units written back from their adopted copies.
  returned: state=adopted_restored
  type: list
  elements: str
  sample: [/etc/systemd/system/myapp.service]
marked:
  description: With O(state=adopted_restored), the release C(current) points at, now marked O(previous_state).
  returned: state=adopted_restored
  type: str
  sample: 1.5.1-9a28ed081679
sysctl_set:
  description: With C(reuseport), whether C(net.ipv4.tcp_migrate_req) was (or would be) set to 1 now.
  returned: success
  type: bool
  sample: false
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError, STRATEGIES, exit_with_diff
from ansible_collections.hotswap.deploy.plugins.module_utils.units import UNITS_SPEC, install, restore_adopted


def main():
    module = AnsibleModule(
        # strategy and service_unit are needed to install, not to restore adopted units.
        argument_spec=dict(UNITS_SPEC, strategy=dict(type='str', choices=list(STRATEGIES)),
                           service_unit=dict(type='str'), adopt=dict(type='bool', default=False),
                           base_dir=dict(type='path'),
                           previous_state=dict(type='str', choices=['failed', 'retired'], default='failed'),
                           state=dict(type='str', choices=['present', 'adopted_restored'], default='present')),
        required_if=[('state', 'present', ['strategy', 'service_unit']),
                     ('strategy', 'systemd_socket', ['socket_unit']),
                     ('state', 'adopted_restored', ['base_dir'])],
        supports_check_mode=True,
    )
    p = module.params
    try:
        if p['state'] == 'adopted_restored':
            result = restore_adopted(p['app'], p['base_dir'], run_command=module.run_command,
                                     check_mode=module.check_mode, move=module.atomic_move,
                                     previous_state=p['previous_state'])
        else:
            result = install(p['app'], p['strategy'], p['service_unit'], p['socket_unit'],
                             run_command=module.run_command, check_mode=module.check_mode,
                             move=module.atomic_move, adopt=p['adopt'], base_dir=p['base_dir'])
    except HotswapError as e:
        module.fail_json(msg=e.msg)
    exit_with_diff(module, result)


if __name__ == '__main__':
    main()
