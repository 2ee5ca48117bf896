#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: haproxy_weight
short_description: Give canary servers a share of an HAProxy backend's weight, or reset the weights, by the runtime API
version_added: 0.6.0
description:
  - Talks to HAProxy's runtime API on its admin socket (the config line
    C(stats socket /run/haproxy/admin.sock mode 660 level admin)). Run it on the load balancer host
    (C(delegate_to)), with become. Written for HAProxy 2.6 (Debian bookworm).
  - Reads the weights of the backend's servers once, computes new ones and sets only those that differ.
  - O(share) - the O(canary) servers get that percentage of the backend's total weight. V(0) gives them
    weight 0 and the others their initial (config) weight; V(100) gives the others 0 and the canary their
    initial weight (at least 1). In between, the other servers keep their proportions and the canary servers
    get weights proportional to their initial ones (a canary with initial weight 0 counts as 1); of every
    integer scaling (weights 1 to 256), the one whose share is closest to O(share) is used (RV(share)).
    Servers with initial weight 0 that are not canary keep 0.
  - O(reset=true) - every server of the backend back to its initial weight.
  - Backup servers are neither counted nor changed. The share is of the weight, not of the traffic - servers
    that are down or in maintenance still count.
  - The backend needs a dynamic C(balance) algorithm (roundrobin, leastconn, random); HAProxy refuses other
    weights than 0 and the initial one with static ones, and the module then fails with HAProxy's answer.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  socket:
    description: The path of HAProxy's admin socket (its C(stats socket) line, with C(level admin)).
    type: path
    default: /run/haproxy/admin.sock
  backend:
    description: The HAProxy backend.
    type: str
    required: true
  canary:
    description:
      - The names of the canary servers in the backend (their C(server) lines). Required with O(share).
      - With O(reset), used only to report RV(share).
    type: list
    elements: str
  share:
    description:
      - The percentage, V(0) to V(100), of the backend's total weight the O(canary) servers get.
      - One of O(share) and O(reset) is required.
    type: int
  reset:
    description: Set every server of the backend back to its initial weight. Cannot go with O(share).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Reads the weights only and reports what would be set.
  diff_mode:
    support: full
    details: Shows every server's weight before and after.
  platform:
    platforms: posix
notes:
  - Needs access to the admin socket - run with become (the socket is C(mode 660), owned by haproxy).
  - Weights are set one server after the other; a failure names the ones already set.
seealso:
  - module: hotswap.deploy.haproxy_server
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Send about 10% of the traffic to the canary
  hotswap.deploy.haproxy_weight:
    backend: web
    canary: [web1]
    share: 10
  delegate_to: "{{ groups['lb'][0] }}"
  become: true
  register: weights

- name: Every server back to its config weight
  hotswap.deploy.haproxy_weight:
    backend: web
    reset: true
  delegate_to: "{{ groups['lb'][0] }}"
  become: true
'''

RETURN = r'''
backend:
  description: The backend.
  returned: always
  type: str
  sample: web
weights:
  description: Every active server's weight before and after this run (in check mode, as it would be).
  returned: success
  type: dict
  sample: {web1: {before: 1, after: 2}, web2: {before: 1, after: 9}, web3: {before: 1, after: 9}}
share_asked:
  description: O(share) as given; null with O(reset).
  returned: success
  type: int
  sample: 10
share:
  description:
    - The percentage of the total weight the O(canary) servers get with the weights set, the closest to
      O(share) integer weights allow; null without O(canary) or when every weight is 0.
  returned: success
  type: float
  sample: 10.0
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError, exit_with_diff
from ansible_collections.hotswap.deploy.plugins.module_utils.haproxy import (
    DEFAULT_SOCKET, RuntimeApi, converge_weights,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            socket=dict(type='path', default=DEFAULT_SOCKET),
            backend=dict(type='str', required=True),
            canary=dict(type='list', elements='str'),
            share=dict(type='int'),
            reset=dict(type='bool', default=False),
        ),
        # required_one_of would count reset's default; converge_weights says when neither is given.
        mutually_exclusive=[('share', 'reset')],
        required_by=dict(share='canary'),
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = converge_weights(RuntimeApi(p['socket']), p['backend'], canary=p['canary'], share=p['share'],
                                  reset=p['reset'], check_mode=module.check_mode)
    except HotswapError as e:
        module.fail_json(msg=e.msg, backend=p['backend'], **e.details)
    exit_with_diff(module, result)


if __name__ == '__main__':
    main()
