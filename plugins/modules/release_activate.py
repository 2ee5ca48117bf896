#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: release_activate
short_description: Atomically point C(current) at a staged release and record it in the ledger
version_added: 0.1.0
description:
  - Switches C(<base_dir>/current) to the relative link C(releases/<release_id>) with a temporary
    link renamed over C(current) (C(rename(2)) is atomic), then fsyncs I(base_dir). There is no
    moment without a C(current).
  - Records the switch in the ledger C(<base_dir>/.hotswap/ledger.json); the new release becomes
    C(active), the release switched away from becomes I(previous_state), and a history entry is
    appended.
  - Refuses, changing nothing, when C(current) is a real file or directory (it is never deleted),
    when C(current) points outside C(releases/), or when the release directory is missing or empty.
  - Refuses, changing nothing, a C(releases/) or C(releases/<release_id>) that is a symlink (I(base_dir)
    itself may be one), and a release whose binary is incomplete. The binary the ledger records must be
    a regular file with the sha256 recorded at staging (a killed upload leaves only a hidden
    C(.<binary>.partial-*) file). A release the ledger has no digest for (an older ledger) needs its named
    binary to be an executable regular file; a release not in the ledger at all (put in C(releases/) by
    hand) needs at least one executable regular file, not a hidden one, at the top of its directory.
  - When C(current) already points at I(release_id) nothing is switched. If the ledger does not say
    so (a previous run died between the switch and the ledger write, or the link was switched by
    hand) the ledger is brought in line; that reports C(changed=true) with C(switched=false).
    Restart services on C(switched), not on C(changed).
  - Does not restart anything; the restart and health modules do that.
  - Refuses, changing nothing, while the deploy lock is held by anyone but I(lock_owner).
extends_documentation_fragment:
  - hotswap.deploy.release
  - hotswap.deploy.release.release_id
  - hotswap.deploy.release.lock_owner
  - ansible.builtin.action_common_attributes
options:
  previous_state:
    description:
      - Ledger state given to the release C(current) pointed at before the switch.
      - Use C(failed) when rolling back from a release that failed verification, so that it is never
        chosen as previous good release and is pruned first.
    type: str
    choices: [retired, failed]
    default: retired
  activated_by:
    description:
      - Who or what activated the release, stored in the ledger (C(activated_by)) and its history,
        for example a deploy id C(<user>@<controller>:<play id>).
    type: str
    default: ansible
  keep:
    description:
      - After the switch, prune old releases so that this many remain, as M(hotswap.deploy.release_prune)
        does with I(keep) (the current and the previous good release are never removed). One module run
        instead of two.
      - Not given, nothing is pruned.
    type: int
  take_lock:
    description:
      - Take the deploy lock for I(lock_owner) first, in the same module run, as M(hotswap.deploy.deploy_lock)
        O(hotswap.deploy.deploy_lock#module:state=present) would, warnings included - one round trip less before
        the switch (M(hotswap.deploy.release_switch), the rollback's switch to its target). The lock stays held;
        release it with M(hotswap.deploy.deploy_lock).
      - Needs I(lock_owner). A lock held by another owner fails the task with RV(lock_failed=true) and nothing
        written; a failed switch after the lock was taken returns RV(locked=true).
    type: dict
    suboptions:
      reclaim_key:
        description: As O(hotswap.deploy.deploy_lock#module:reclaim_key).
        type: str
      stale_after:
        description: As O(hotswap.deploy.deploy_lock#module:stale_after).
        type: int
        default: 0
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - Hold the deploy lock (M(hotswap.deploy.deploy_lock)) around a deploy and pass its owner as I(lock_owner);
    the ledger update is not safe against a concurrent writer.
seealso:
  - module: hotswap.deploy.release_info
  - module: hotswap.deploy.release_prune
  - module: hotswap.deploy.deploy_lock
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Switch to the staged release
  hotswap.deploy.release_activate:
    base_dir: /opt/myapp
    release_id: "{{ hotswap_release_id }}"
    activated_by: "{{ hotswap_deploy_id }}"
    lock_owner: "{{ hotswap_deploy_id }}"
  register: activation

- name: Restart only when current really moved
  ansible.builtin.debug:
    msg: "switched from {{ activation.previous_release }} to {{ activation.current_release }}"
  when: activation.switched

- name: Roll back from a release that failed verification
  hotswap.deploy.release_activate:
    base_dir: /opt/myapp
    release_id: "{{ info.previous_good }}"
    previous_state: failed

- name: Switch and keep the five newest releases
  hotswap.deploy.release_activate:
    base_dir: /opt/myapp
    release_id: "{{ hotswap_release_id }}"
    keep: 5
'''

RETURN = r'''
previous_release:
  description:
    - Release C(current) pointed at before this task; null when there was no C(current).
    - Equal to RV(current_release) when nothing was switched.
  returned: success
  type: str
  sample: 1.4.1-9f86d081884c
current_release:
  description: Release C(current) points at after this task (would point at, in check mode).
  returned: success
  type: str
  sample: 1.4.2-3a7bd3e2360a
switched:
  description: Whether C(current) was (or in check mode would be) switched.
  returned: success
  type: bool
  sample: true
ledger_updated:
  description: Whether the ledger was (or in check mode would be) written.
  returned: success
  type: bool
  sample: true
pruned:
  description:
    - With I(keep), what M(hotswap.deploy.release_prune) returns (C(removed), C(kept), C(unknown),
      C(forgotten), C(cleaned), C(changed)); null without I(keep).
  returned: success
  type: dict
  sample:
    removed: [1.4.0-0b1e2c3d4e5f]
    kept: [1.4.1-9f86d081884c, 1.4.2-3a7bd3e2360a]
    unknown: []
    forgotten: []
    cleaned: []
    changed: true
lock:
  description:
    - With I(take_lock), the lock taken before the switch - C(taken_over), the lock it replaced (stale, or
      ours by C(reclaim_key)), or null; C(reclaimed), whether it was replaced by the reclaim key.
  returned: success, with I(take_lock)
  type: dict
  sample: {"taken_over": null, "reclaimed": false}
lock_failed:
  description: With I(take_lock), the lock could not be taken (held by another owner); nothing was written.
  returned: failure
  type: bool
  sample: true
locked:
  description: With I(take_lock), the lock was taken before the switch failed - release it.
  returned: failure
  type: bool
  sample: true
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils import lock
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import ACTIVATE_SPEC, activate_diff, activate_release


def main():
    argument_spec = dict(ACTIVATE_SPEC)
    argument_spec['take_lock'] = dict(type='dict', options=dict(reclaim_key=dict(type='str', no_log=False),
                                                                stale_after=dict(type='int', default=0)))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_by={'take_lock': 'lock_owner'})
    p = module.params
    locked = None
    if p['take_lock'] is not None:
        try:
            locked = lock.acquire(p['base_dir'], p['lock_owner'], stale_after=p['take_lock']['stale_after'],
                                  check_mode=module.check_mode, reclaim_key=p['take_lock']['reclaim_key'])
        except HotswapError as e:
            module.fail_json(msg=e.msg, lock_failed=True)
    try:
        result = activate_release(p, check_mode=module.check_mode)
    except HotswapError as e:
        module.fail_json(msg=e.msg, locked=locked is not None)
    if locked is not None:
        result['lock'] = dict(taken_over=locked.get('taken_over'), reclaimed=locked.get('reclaimed'))
        if lock.takeover_warning(locked):
            module.warn(lock.takeover_warning(locked))
    if module._diff:
        result['diff'] = activate_diff(result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
