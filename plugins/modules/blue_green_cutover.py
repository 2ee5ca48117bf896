#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: blue_green_cutover
short_description: Stage, start, switch, verify and finish a blue-green rollout in one module run
version_added: 0.9.0
description:
  - Runs, in one process on the host, what these modules do one after the other, each with its own arguments,
    code and result, and stops at the first step that fails (RV(failed_step)) -
    M(hotswap.deploy.binary_upload) (O(upload) - the pushed copy into its release),
    M(hotswap.deploy.blue_green_slots) (O(slots) - point the target slot at the release),
    M(hotswap.deploy.graceful_restart) (O(restart) - start the slot there),
    M(hotswap.deploy.health_check) (O(direct_check) - the slot on its own port),
    M(hotswap.deploy.nginx_switch) (O(switch) - nginx to the slot),
    M(hotswap.deploy.release_activate) (O(activate) - C(current) to the release),
    M(hotswap.deploy.health_check) (O(public_check) - through nginx), and
    M(hotswap.deploy.blue_green_slots) (O(finish) - record the live slot, scale the old one down, prune,
    release the lock).
  - M(hotswap.deploy.blue_green_deploy) runs it after the transfer of the file when no hook runs between those
    steps; each remote module run costs a Python start on the host and a round trip, so a rollout of a new
    release takes four module runs instead of fourteen.
  - Every step's arguments are checked before the first step runs, so bad input changes nothing.
  - Nothing is switched back here; RV(steps) says what each step that ran changed, and the caller undoes it
    (M(hotswap.deploy.blue_green_deploy) puts nginx, the slot and C(current) back).
  - Runs under the deploy lock its caller holds (the C(lock_owner) of O(upload), O(activate) and O(finish)); it
    takes no lock.
options:
  upload:
    description:
      - The arguments of M(hotswap.deploy.binary_upload) (C(src) - the copy its caller pushed to the host - with
        C(move_src), C(checksum), C(base_dir), C(release_id), C(name), C(files), C(environment), ...). Its
        C(no_log) arguments stay out of every output here too.
      - Leave it out when the release is staged already.
    type: dict
  slots:
    description: The arguments of M(hotswap.deploy.blue_green_slots) for the target slot (C(app), C(base_dir),
      C(link), C(cancel_scale_down), ...).
    type: dict
  restart:
    description: The arguments of M(hotswap.deploy.graceful_restart) (C(service), C(strategy), C(url), ...).
    type: dict
  direct_check:
    description: The arguments of M(hotswap.deploy.health_check) for the slot's own port.
    type: dict
  switch:
    description: The arguments of M(hotswap.deploy.nginx_switch) (C(path), C(content), C(service)).
    type: dict
  activate:
    description: The arguments of M(hotswap.deploy.release_activate) but C(take_lock) (C(base_dir),
      C(release_id), C(previous_state), C(activated_by), C(lock_owner), ...).
    type: dict
  public_check:
    description: The arguments of M(hotswap.deploy.health_check) for the public port.
    type: dict
  finish:
    description: The arguments of M(hotswap.deploy.blue_green_slots) that end the rollout (C(state),
      C(scale_down), C(prune), C(unlock)).
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Each step runs in check mode as its own module does (the health checks probe, which changes nothing).
  diff_mode:
    support: full
    details: The diffs of the steps that show one (the state file, the nginx config), as a list.
  platform:
    platforms: posix
seealso:
  - module: hotswap.deploy.blue_green_slots
  - module: hotswap.deploy.nginx_switch
  - module: hotswap.deploy.release_cutover
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: The green slot takes over from blue, under the lock the deploy holds
  hotswap.deploy.blue_green_cutover:
    slots:
      app: myapp
      base_dir: /opt/myapp
      cancel_scale_down: true
      link: {slot: green, release_id: 1.4.0-3f2a9c1d0b7e}
    restart:
      service: myapp-green
      strategy: restart
      url: http://127.0.0.1:8082/healthz
      expected_version: 1.4.0
    direct_check: {url: "http://127.0.0.1:8082/healthz", expected_version: 1.4.0, retries: 20, successes: 2}
    switch: {path: /etc/nginx/conf.d/hotswap-myapp.conf, content: "{{ nginx_config }}"}
    activate:
      base_dir: /opt/myapp
      release_id: 1.4.0-3f2a9c1d0b7e
      lock_owner: myapp deploy 1.4.0-3f2a9c1d0b7e (ops@ctl)
    public_check: {url: "http://127.0.0.1:80/healthz", expected_version: 1.4.0, retries: 20}
    finish:
      app: myapp
      base_dir: /opt/myapp
      state: {live: green, blue: 1.3.0-aa11bb22cc33, green: 1.4.0-3f2a9c1d0b7e}
      scale_down: {slot: blue, delay: 300}
      prune: {keep: 5, protect: [1.4.0-3f2a9c1d0b7e, 1.3.0-aa11bb22cc33],
              lock_owner: myapp deploy 1.4.0-3f2a9c1d0b7e (ops@ctl)}
      unlock: {owner: myapp deploy 1.4.0-3f2a9c1d0b7e (ops@ctl)}
  register: cutover
'''

RETURN = r'''
failed_step:
  description: The step that failed (an option name); the steps before it ran, the ones after it did not.
  returned: failure
  type: str
  sample: public_check
steps:
  description:
    - What each step that ran returned, by step name, as its own module returns it (on its failure C(failed),
      C(msg) and the keys its module fails with, for example the restart's C(stage) or nginx's C(rejected)),
      with the step's C(seconds).
  returned: always
  type: dict
  sample: {"slots": {"changed": true, "link_changed": true, "seconds": 0.01},
           "switch": {"changed": true, "reloaded": true, "seconds": 0.12}}
'''

from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import UPLOAD_SPEC
from ansible_collections.hotswap.deploy.plugins.module_utils.blue_green import STEPS, changed, check_steps, run_cutover
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.redact import RedactingModule


def main():
    module = RedactingModule(argument_spec=dict((step, dict(type='dict')) for step in STEPS),
                             secret_specs=dict(upload=UPLOAD_SPEC), supports_check_mode=True)
    try:
        steps = check_steps(module.params)
    except HotswapError as e:
        module.fail_json(msg=e.msg, steps={})
    tools = dict(run_command=module.run_command, move=module.atomic_move, nginx=module.get_bin_path('nginx'),
                 systemctl=module.get_bin_path('systemctl', required=True), module=module)
    results, failed_step = run_cutover(steps, tools, check_mode=module.check_mode)
    diffs = []
    for result in results.values():
        diff = _as_list(result.pop('diff', None))
        if result.get('changed'):
            diffs.extend(diff)
    out = dict(changed=changed(results), steps=results)
    if module._diff and diffs:  # pylint: disable=protected-access
        out['diff'] = diffs
    if failed_step:
        module.fail_json(msg=results[failed_step]['msg'], failed_step=failed_step, **out)
    module.exit_json(**out)


def _as_list(diff):
    if not diff:
        return []
    return diff if isinstance(diff, list) else [diff]


if __name__ == '__main__':
    main()
