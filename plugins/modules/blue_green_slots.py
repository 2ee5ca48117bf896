#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: blue_green_slots
short_description: Change the two slots of a blue-green app in one module run
version_added: 0.9.0
description:
  - The host-side steps of the C(hotswap.deploy.blue_green) role (run by its action M(hotswap.deploy.blue_green_deploy)),
    each optional, in this order - cancel a pending scale-down timer, write the slot units and reload
    systemd when one changed, remove nginx's default site link, stop a slot, point a slot link at a release,
    write the state file, stop the old slot now or schedule its stop, prune old releases and release the
    deploy lock.
  - I(prune) and I(unlock) are what a rollout that went through ends with; the lock is released even when the
    prune fails (RV(failed_step)), so a failed prune never leaves the app locked.
  - One module run for what took a task each, since every remote module run costs a round trip per host.
  - Check mode reports what would change and changes nothing; diff mode shows the unit files and the state file.
options:
  app:
    description: Application name; the slots run as C(<app>-<slot>.service), the scale-down as C(<app>-scale-down.timer).
    type: str
    required: true
  base_dir:
    description: Deploy root of the app; the slot links are C(<base_dir>/slots/<slot>).
    type: path
    required: true
  expect_lb_config:
    description:
      - Change nothing and return RV(lb_config_moved=true) when the nginx config at I(path) no longer holds
        I(content) (empty - no file); another deploy switched since the caller read it.
    type: dict
    suboptions:
      path:
        description: The nginx config of the app.
        type: path
        required: true
      content:
        description: What it held when the caller read it.
        type: str
        default: ''
  cancel_scale_down:
    description: Stop a pending C(<app>-scale-down.timer) (it would stop the slot about to be used).
    type: bool
    default: false
  units:
    description: Content of each slot's unit file by slot name; a file is written only when it differs.
    type: dict
    default: {}
  remove_default_site:
    description: Remove the C(/etc/nginx/sites-enabled/default) link (its C(sites-available) file stays).
    type: bool
    default: false
  stop_slot:
    description: Stop and disable this slot's unit now.
    type: str
  link:
    description: Point C(<base_dir>/slots/<slot>) at C(../releases/<release_id>); an empty I(release_id) removes the link.
    type: dict
    suboptions:
      slot:
        description: The slot.
        type: str
        required: true
      release_id:
        description: The release, or empty for no link.
        type: str
        default: ''
  state:
    description: What C(<base_dir>/.hotswap/blue_green.json) records (live slot, release per slot, ports).
    type: dict
  scale_down:
    description:
      - Stop the old slot, at once after nginx's old workers finished (I(delay=0), waiting at most
        I(drain_timeout) seconds), or by a transient systemd timer after I(delay) seconds.
    type: dict
    suboptions:
      slot:
        description: The slot to stop.
        type: str
        required: true
      delay:
        description: Seconds before the stop.
        type: int
        default: 0
      drain_timeout:
        description: Seconds to wait for nginx's old workers with I(delay=0).
        type: int
        default: 60
  prune:
    description:
      - Delete old releases as M(hotswap.deploy.release_prune) does, with its arguments but I(base_dir).
    type: dict
    suboptions:
      keep:
        description: Releases to keep in the ledger.
        type: int
        default: 5
      protect:
        description: Releases never deleted (the ones the slots hold).
        type: list
        elements: str
        default: []
      lock_owner:
        description: The deploy lock's owner this run holds it as; refused while anyone else holds it.
        type: str
  unlock:
    description: Release the deploy lock as M(hotswap.deploy.deploy_lock) with I(state=absent) does, last.
    type: dict
    suboptions:
      owner:
        description: The owner the lock was taken as.
        type: str
        required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Point the green slot at a release, after cancelling a pending scale-down
  hotswap.deploy.blue_green_slots:
    app: myapp
    base_dir: /opt/myapp
    cancel_scale_down: true
    link:
      slot: green
      release_id: 1.4.0-3f2a9c1d
'''

RETURN = r'''
lb_config_moved:
  description: Whether the nginx config differs from I(expect_lb_config) (then nothing was changed).
  returned: when I(expect_lb_config) is given
  type: bool
cancelled:
  description: Whether a pending scale-down timer was stopped.
  returned: always
  type: bool
units_changed:
  description: The slots whose unit file was (or in check mode would be) written.
  returned: always
  type: list
  elements: str
link_changed:
  description: Whether the slot link was (or would be) changed.
  returned: always
  type: bool
link_previous:
  description: The release the slot link pointed at before (null when none).
  returned: when I(link) is given
  type: str
scale_down:
  description: What happens to the old slot, for example C(blue stops in 300 s (myapp-scale-down.timer)).
  returned: when I(scale_down) is given
  type: str
pruned:
  description: What the prune did, as M(hotswap.deploy.release_prune) returns it (C(removed), C(kept), ...).
  returned: when I(prune) is given and it succeeded
  type: dict
unlocked:
  description: Whether the deploy lock is no longer held by I(unlock.owner) (released, or already gone).
  returned: when I(unlock) is given
  type: bool
failed_step:
  description: The step that failed, C(prune) or C(unlock) (the lock is released after a failed prune).
  returned: when I(prune) or I(unlock) failed
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.slots import SLOTS_SPEC, run_slots


def main():
    module = AnsibleModule(argument_spec=SLOTS_SPEC, supports_check_mode=True)
    try:
        result = run_slots(module.params, module.run_command, module.check_mode)
    except HotswapError as e:
        module.fail_json(msg=e.msg)
    except OSError as e:
        module.fail_json(msg='changing the slots of %s in %s: %s. Check permissions (use become).'
                             % (module.params['app'], module.params['base_dir'], e))
    if not module._diff:
        result.pop('diff')
    if result.get('failed_step'):
        module.fail_json(msg=result.pop('step_error'), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
