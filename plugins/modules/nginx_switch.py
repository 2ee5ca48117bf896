#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: nginx_switch
short_description: Switch nginx to a new config file, tested by nginx -t and reloaded gracefully, in one module run
version_added: 0.6.0
description:
  - Writes O(content) to O(path) through a temporary file in the same directory and a rename, only when
    the file differs. Temporary files have hidden names without C(.conf), so nginx's C(include conf.d/*.conf)
    never reads them.
  - Then runs C(nginx -t). When nginx rejects the configuration, the previous file is put back at once
    (renamed back from a copy kept beside it, or removed when there was none), nothing is reloaded,
    and the module fails with nginx's message and RV(rejected=true).
  - Else enables the O(service) when it is not, and reloads it gracefully (C(systemctl reload) - new
    workers take new connections, the old ones finish their requests and exit) when the config
    changed or the service was just enabled. An nginx that does not run is started instead (when a
    config is there).
  - An empty O(content) removes O(path), under the same test and reload.
  - Unchanged config, enabled and running nginx - nothing is written or reloaded, C(changed=false).
  - Check mode compares only - it writes nothing, not even a temporary file, and reports what would change.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  path:
    description:
      - Absolute path of the config file, in a directory nginx includes, for example C(/etc/nginx/conf.d/myapp.conf).
      - The directory must exist (the nginx package creates C(/etc/nginx/conf.d)).
    type: path
    required: true
  content:
    description:
      - The whole text the config file must hold, for example rendered on the controller with
        C(lookup('ansible.builtin.template', 'nginx.conf.j2')).
      - An empty string removes the file.
    type: str
    required: true
  service:
    description: The systemd unit of nginx, enabled, reloaded or started by C(systemctl).
    type: str
    default: nginx
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the config file's text before and after.
  platform:
    platforms: posix
notes:
  - Needs systemd and an C(nginx) binary (in C(PATH) or C(/usr/sbin)) on the host; run it with become.
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Point nginx at the green slot
  hotswap.deploy.nginx_switch:
    path: /etc/nginx/conf.d/myapp.conf
    content: "{{ lookup('ansible.builtin.template', 'nginx.conf.j2') }}"
  become: true
  register: switch

- name: Remove the config again
  hotswap.deploy.nginx_switch:
    path: /etc/nginx/conf.d/myapp.conf
    content: ''
  become: true
'''

RETURN = r'''
path:
  description: The config file.
  returned: success
  type: str
  sample: /etc/nginx/conf.d/myapp.conf
config_changed:
  description: Whether the config file was (or would be) written or removed, because it differed.
  returned: success
  type: bool
  sample: true
enabled:
  description: Whether O(service) was (or would be) enabled by this run, because it was not.
  returned: success
  type: bool
  sample: false
reloaded:
  description: Whether the running nginx was (or would be) reloaded gracefully.
  returned: success
  type: bool
  sample: true
started:
  description: Whether nginx was (or would be) started, because it did not run.
  returned: success
  type: bool
  sample: false
rejected:
  description:
    - On a failure, whether it was C(nginx -t) rejecting the configuration. The previous config is
      then back in place and nothing was reloaded.
  returned: failure
  type: bool
  sample: true
test_output:
  description: What C(nginx -t) said when it rejected the configuration.
  returned: failure and rejected
  type: str
  sample: |-
    nginx: [emerg] a duplicate default server for 0.0.0.0:80 in /etc/nginx/conf.d/myapp.conf:2
    nginx: configuration file /etc/nginx/nginx.conf test failed
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError, exit_with_diff
from ansible_collections.hotswap.deploy.plugins.module_utils.nginx import SWITCH_SPEC, switch


def main():
    module = AnsibleModule(argument_spec=SWITCH_SPEC, supports_check_mode=True)
    p = module.params
    try:
        result = switch(p['path'], p['content'], run_command=module.run_command, check_mode=module.check_mode,
                        move=module.atomic_move, service=p['service'], nginx=module.get_bin_path('nginx'),
                        systemctl=module.get_bin_path('systemctl', required=True))
    except HotswapError as e:
        details = dict(rejected=False)
        details.update(e.details)
        module.fail_json(msg=e.msg, **details)
    exit_with_diff(module, result, changed_key='config_changed')


if __name__ == '__main__':
    main()
