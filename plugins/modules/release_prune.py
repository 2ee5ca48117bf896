#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: release_prune
short_description: Delete old release directories, never the current or the previous good one
version_added: 0.1.0
description:
  - Deletes release directories under C(<base_dir>/releases/) until I(keep) releases known to the
    ledger remain.
  - Never deletes the release C(current) points at, nor the previous good release (the rollback
    target, see M(hotswap.deploy.release_info)); these count toward I(keep), so more than I(keep)
    releases may remain.
  - Never deletes the releases named in I(protect), for example the ones the two slots of a blue-green
    deploy (role C(hotswap.deploy.blue_green)) still run; these count toward I(keep) too.
  - C(failed) releases are deleted first, then the oldest by the ledger's C(staged_at). File times
    (mtime, ctime) are never used.
  - Directories that are not in the ledger (state C(unknown)) are never deleted and do not count
    toward I(keep); they are returned in RV(unknown).
  - A directory is first renamed to a hidden C(releases/.pruning-*) name, then deleted, so a
    half-deleted release is never visible under its id; leftovers of an interrupted run are deleted
    by the next run.
  - Deleted releases are dropped from the ledger, as are ledger entries whose directory is already
    gone (RV(forgotten)); the activation history is kept (its last 200 entries).
  - Refuses, deleting nothing, when C(releases/) is a symlink. A symlink inside C(releases/) is not a
    release; it is neither followed nor deleted.
  - Refuses, deleting nothing, while the deploy lock is held by anyone but I(lock_owner).
extends_documentation_fragment:
  - hotswap.deploy.release
  - hotswap.deploy.release.lock_owner
  - ansible.builtin.action_common_attributes
options:
  keep:
    description:
      - How many releases known to the ledger to keep, at least 1.
    type: int
    default: 5
  protect:
    description:
      - Release ids that must not be deleted, besides the current and the previous good release.
      - Ids not on the host are ignored; a value that is not a valid release id is an error.
    type: list
    elements: str
    default: []
    version_added: 0.3.0
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it under the deploy lock (M(hotswap.deploy.deploy_lock)), with its owner as I(lock_owner), and after the
    new release is activated; a release staged but not yet activated is an ordinary candidate.
seealso:
  - module: hotswap.deploy.release_info
  - module: hotswap.deploy.deploy_lock
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Keep the three newest releases (plus current and previous good)
  hotswap.deploy.release_prune:
    base_dir: /opt/myapp
    keep: 3
  register: pruned

- name: Keep the releases both blue-green slots run, whatever their age
  hotswap.deploy.release_prune:
    base_dir: /opt/myapp
    keep: 3
    protect: [1.4.1-9f86d081884c, 1.4.2-3a7bd3e2360a]
    lock_owner: "{{ hotswap_deploy_id }}"
'''

RETURN = r'''
removed:
  description: Release ids deleted (to be deleted, in check mode), in deletion order.
  returned: success
  type: list
  elements: str
  sample: [1.3.0-0b1c2d3e4f50]
cleaned:
  description:
    - Temp files that killed runs left behind and that are over an hour old (partial uploads
      C(releases/<id>/.<name>.partial-*), temp links C(.current.tmp-*)), deleted (to be deleted, in check mode).
  returned: success
  type: list
  elements: str
  sample: [/opt/myapp/releases/1.4.0-0b1c2d3e4f50/.myapp.partial-k2j3h4]
kept:
  description: Release ids known to the ledger that remain, oldest C(staged_at) first.
  returned: success
  type: list
  elements: str
  sample: [1.4.1-9f86d081884c, 1.4.2-3a7bd3e2360a]
unknown:
  description: Release directories not in the ledger; never deleted.
  returned: success
  type: list
  elements: str
  sample: [handmade]
forgotten:
  description: Ledger entries dropped because their directory no longer exists.
  returned: success
  type: list
  elements: str
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils.common import BASE_DIR_SPEC, LOCK_OWNER_SPEC, HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import prune


def main():
    argument_spec = dict(keep=dict(type='int', default=5), protect=dict(type='list', elements='str', default=[]))
    argument_spec.update(BASE_DIR_SPEC)
    argument_spec.update(LOCK_OWNER_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        result = prune(module.params['base_dir'], module.params['keep'], check_mode=module.check_mode,
                       protect=module.params['protect'], lock_owner=module.params['lock_owner'])
    except HotswapError as e:
        module.fail_json(msg=e.msg)
    except OSError as e:
        module.fail_json(msg='pruning releases in %s: %s. Check permissions (use become).'
                             % (module.params['base_dir'], e))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
