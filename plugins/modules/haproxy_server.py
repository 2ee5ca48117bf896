#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: haproxy_server
short_description: Drain a server behind HAProxy, put it in maintenance or bring it back, through HAProxy's runtime API
version_added: 0.6.0
description:
  - Talks to HAProxy's runtime API on its admin socket (the config line
    C(stats socket /run/haproxy/admin.sock mode 660 level admin)), one connection per command. Run it on the
    load balancer host (C(delegate_to)), with become. Written for HAProxy 2.6 (Debian bookworm).
  - O(state=maint) first drains the server (no new sessions), waits until its current sessions reach 0 or
    O(drain_timeout) seconds pass, then puts it in maintenance, and stores O(reason) in a small marker file
    on the load balancer host (under O(marker_dir)).
  - O(state=drain) drains the server and waits the same way, without maintenance.
  - O(state=ready) takes the server out of maintenance or drain, removes the marker, and waits until
    HAProxy itself sends it traffic - up, and its own health check passed since (HAProxy marks a server
    leaving maintenance up at once, before any check ran). When that does not happen within
    O(ready_timeout) seconds, the server is put back in maintenance with the reason
    C(HAProxy's check did not pass after ready) and the module fails.
  - O(state=present) changes nothing but O(weight); it reports the server's state and the stored reason.
  - The marker is removed when the server leaves maintenance through this module (O(state=ready) or O(state=drain)).
  - A server already in the asked state is left alone (C(changed=false)); for O(state=maint) there is no
    drain wait then. A server already ready or draining is still watched (ready - until HAProxy's check
    passes, drain - until its sessions reach 0), read only.
  - Backend and server names, O(drain_timeout) and O(weight) are checked before anything is sent.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  socket:
    description: The path of HAProxy's admin socket (its C(stats socket) line, with C(level admin)).
    type: path
    default: /run/haproxy/admin.sock
  backend:
    description: The HAProxy backend the server is in.
    type: str
    required: true
  server:
    description:
      - The server's name in the backend (its C(server) line), for example the inventory variable
        C(lb_server), which defaults to the inventory host name.
    type: str
    required: true
  state:
    description:
      - V(present) - change nothing but O(weight), report the state.
      - V(ready) - take new sessions again, and wait until HAProxy's check passes (O(ready_timeout)).
      - V(drain) - no new sessions (but persistent ones), wait until the current sessions end (O(drain_timeout)).
      - V(maint) - drain first (O(drain_timeout)), then no traffic at all, not even health checks.
    type: str
    choices: [present, ready, drain, maint]
    default: present
  drain_timeout:
    description:
      - Seconds to wait for the server's current sessions (HAProxy's C(scur)) to reach 0, with O(state=maint)
        before maintenance and with O(state=drain).
      - When they do not, maintenance follows anyway (RV(drain.result=timed_out)) and cuts the sessions left.
      - V(0) puts the server in maintenance at once.
    type: int
    default: 60
  ready_timeout:
    description:
      - With O(state=ready), seconds to wait for HAProxy to see the server up with a passed health check.
      - V(0) does not wait.
    type: int
    default: 30
  reason:
    description:
      - Why the server goes to maintenance, stored with O(state=maint) in the marker file and returned as
        RV(reason) by every later run until the server is ready again.
      - Given for a server already in maintenance, it replaces the stored reason when there is a marker (hotswap
        put the server there). A maintenance set by someone else (no marker) gets none - nothing claims it.
    type: str
    default: ''
  weight:
    description:
      - The server's weight, an integer V(0) to V(256), or a percentage of its initial (config) weight
        such as V(50%). Set with or without a O(state).
    type: str
  marker_dir:
    description: The directory on the load balancer host of the marker files (one JSON file per server).
    type: path
    default: /var/lib/hotswap-deploy/haproxy
attributes:
  check_mode:
    support: full
    details: Reads the server's state only and reports what would change; no drain or ready wait.
  diff_mode:
    support: full
    details: Shows the server's admin state and weight before and after.
  platform:
    platforms: posix
notes:
  - Needs access to the admin socket - run with become (the socket is C(mode 660), owned by haproxy).
  - The drain wait polls HAProxy every half second.
seealso:
  - module: hotswap.deploy.haproxy_weight
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Take the host out of HAProxy, letting its sessions end first
  hotswap.deploy.haproxy_server:
    backend: web
    server: "{{ lb_server | default(inventory_hostname) }}"
    state: maint
    drain_timeout: 30
    reason: "deploying {{ release_id }}"
  delegate_to: "{{ groups['lb'][0] }}"
  become: true
  register: out

- name: Bring it back once deployed; fails (and puts it back in maint) when HAProxy's check does not pass
  hotswap.deploy.haproxy_server:
    backend: web
    server: "{{ lb_server | default(inventory_hostname) }}"
    state: ready
    ready_timeout: 60
  delegate_to: "{{ groups['lb'][0] }}"
  become: true

- name: Half the traffic it would get
  hotswap.deploy.haproxy_server:
    backend: web
    server: web1
    weight: 50%
  delegate_to: lb1
  become: true
'''

RETURN = r'''
backend:
  description: The backend.
  returned: always
  type: str
  sample: web
server:
  description: The server.
  returned: always
  type: str
  sample: web1
address:
  description: The server's address and port in HAProxy.
  returned: success
  type: str
  sample: 10.0.0.11:8080
before:
  description: The server as HAProxy showed it before this run.
  returned: success
  type: dict
  contains:
    backend:
      description: The backend.
      type: str
    server:
      description: The server.
      type: str
    address:
      description: Address and port.
      type: str
    admin_state:
      description: V(ready), V(drain) or V(maint) (maintenance wins over drain).
      type: str
    admin_bits:
      description: HAProxy's C(srv_admin_state) bit field.
      type: int
    admin_flags:
      description: The names of the set bits, for example C(FMAINT), C(FDRAIN), C(CMAINT).
      type: list
      elements: str
    operational:
      description: V(up), V(down), V(starting) or V(stopping).
      type: str
    checked:
      description: Whether HAProxy health-checks the server (checks configured and enabled).
      type: bool
    check_passed:
      description: Whether the last health check passed; null without checks.
      type: bool
    check_status:
      description: HAProxy's C(srv_check_status) number.
      type: int
    check_status_name:
      description: Its name as C(show stat) gives it, for example C(L7OK), C(L4CON).
      type: str
    check_result:
      description: HAProxy's C(srv_check_result) (0 unknown, 1 neutral, 2 failed, 3 passed, 4 conditionally passed).
      type: int
    check_state:
      description: HAProxy's C(srv_check_state) bit field.
      type: int
    check_health:
      description: HAProxy's check health counter.
      type: int
    check_rise:
      description: The check's C(rise) (null when C(show stat) does not give it).
      type: int
    check_fall:
      description: The check's C(fall) (null when C(show stat) does not give it).
      type: int
    last_check:
      description: HAProxy's text of the last check.
      type: str
    status:
      description: The status text of C(show stat), for example C(UP), C(DOWN), C(MAINT), C(DRAIN), C(UP 1/2).
      type: str
    sessions:
      description: Current sessions (C(scur)).
      type: int
    weight:
      description: The current weight.
      type: int
    initial_weight:
      description: The weight of the config.
      type: int
    reason:
      description:
        - The reason in the server's marker before this run, or null without a marker - a server in maintenance
          without one was put there by someone else.
      type: str
after:
  description:
    - The server as HAProxy showed it after this run (in check mode, as it would be); the keys of RV(before),
      RV(before.reason) the marker's reason after this run.
  returned: success
  type: dict
admin_state:
  description: The server's admin state after this run, V(ready), V(drain) or V(maint).
  returned: success
  type: str
  sample: maint
operational:
  description: The server's operational state after this run, V(up), V(down), V(starting) or V(stopping).
  returned: success
  type: str
  sample: down
sessions:
  description: The server's current sessions after this run.
  returned: success
  type: int
  sample: 0
drain:
  description: The drain wait, with O(state=maint) or O(state=drain); null when there was none.
  returned: success
  type: dict
  contains:
    result:
      description: V(drained) (sessions reached 0) or V(timed_out).
      type: str
    seconds:
      description: How long the wait took.
      type: float
    sessions_left:
      description: Sessions when the wait ended.
      type: int
    sessions_at_start:
      description: Sessions when the wait began.
      type: int
  sample: {result: drained, seconds: 2.5, sessions_left: 0, sessions_at_start: 4}
ready_seconds:
  description: With O(state=ready), the seconds until HAProxy's check passed; null when there was no wait.
  returned: success
  type: float
  sample: 4.02
reason:
  description: The reason stored in the server's marker (why hotswap put it in maintenance), or null without one.
  returned: success
  type: str
  sample: deploying 20240101-1
back_to_maint:
  description: On a failure after O(state=ready), whether the server was put back in maintenance.
  returned: failure
  type: bool
  sample: true
status:
  description: On a failure after O(state=ready), the server as HAProxy last showed it (the keys of RV(before)).
  returned: failure
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError, exit_with_diff
from ansible_collections.hotswap.deploy.plugins.module_utils.haproxy import (
    DEFAULT_SOCKET, MARKER_DIR, STATES, RuntimeApi, converge_server,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            socket=dict(type='path', default=DEFAULT_SOCKET),
            backend=dict(type='str', required=True),
            server=dict(type='str', required=True),
            state=dict(type='str', choices=list(STATES), default='present'),
            drain_timeout=dict(type='int', default=60),
            ready_timeout=dict(type='int', default=30),
            reason=dict(type='str', default=''),
            weight=dict(type='str'),
            marker_dir=dict(type='path', default=MARKER_DIR),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = converge_server(RuntimeApi(p['socket']), p['backend'], p['server'], state=p['state'],
                                 weight=p['weight'], drain_timeout=p['drain_timeout'],
                                 ready_timeout=p['ready_timeout'], reason=p['reason'], marker_dir=p['marker_dir'],
                                 check_mode=module.check_mode, move=module.atomic_move)
    except HotswapError as e:
        module.fail_json(msg=e.msg, backend=p['backend'], server=p['server'], **e.details)
    exit_with_diff(module, result)


if __name__ == '__main__':
    main()
