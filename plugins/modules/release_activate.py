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
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils.common import (
    BASE_DIR_SPEC,
    LOCK_OWNER_SPEC,
    RELEASE_ID_SPEC,
    HotswapError,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import PREVIOUS_STATES, activate_and_prune


def link_text(rid):
    return 'current -> releases/%s\n' % rid if rid else ''


def main():
    argument_spec = dict(
        previous_state=dict(type='str', choices=list(PREVIOUS_STATES), default='retired'),
        activated_by=dict(type='str', default='ansible'),
        keep=dict(type='int'),
    )
    argument_spec.update(BASE_DIR_SPEC)
    argument_spec.update(RELEASE_ID_SPEC)
    argument_spec.update(LOCK_OWNER_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    try:
        result = activate_and_prune(p['base_dir'], p['release_id'], previous_state=p['previous_state'],
                                    by=p['activated_by'], keep=p['keep'], check_mode=module.check_mode,
                                    lock_owner=p['lock_owner'])
    except HotswapError as e:
        module.fail_json(msg=e.msg)
    except OSError as e:
        module.fail_json(msg='activating release %s in %s: %s. Check permissions (use become) and the '
                             'filesystem.' % (p['release_id'], p['base_dir'], e))
    if module._diff:
        result['diff'] = dict(before=link_text(result['previous_release']),
                              after=link_text(result['current_release']))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
