#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: release_info
short_description: Report the releases of an application, the current one and the previous good one
version_added: 0.1.0
description:
  - Reads C(readlink <base_dir>/current), the ledger C(<base_dir>/.hotswap/ledger.json) and the
    directories under C(<base_dir>/releases/). Never changes anything.
  - Release directories that are not in the ledger (deployed by hand, or staged by a run that died
    before recording them) are reported with state C(unknown).
  - The previous good release (the rollback target) comes from the ledger's activation history,
    never from file times.
  - A missing I(base_dir) gives an empty result, not an error. A corrupt ledger is an error.
    A C(current) that is a real directory, or points outside C(releases/) or at a missing
    directory, is reported in RV(problems) (with a warning) and RV(current) is null.
  - With I(slots), I(lb_config) and I(stat) it reads a blue-green app's state in the same run, as the
    C(hotswap.deploy.blue_green) role does - the slot links, the nginx config that says which slot is
    live, and whether some paths exist.
options:
  slots:
    description:
      - Slot links to read under C(<base_dir>/slots/), for example C([blue, green]); each is reported in
        RV(slots).
    type: list
    elements: str
    default: []
  lb_config:
    description:
      - A load balancer config file to read, for example the blue_green role's
        C(/etc/nginx/conf.d/hotswap-<app>.conf). Its text is RV(lb_config) (null when the file does not
        exist); the slots its C(hotswap-blue-green live=<slot> backup=<slot>) marker names are
        RV(live_slot) and RV(backup_slot).
    type: path
  stat:
    description:
      - Paths to look at (without following a last symlink); each is reported in RV(stat).
    type: list
    elements: path
    default: []
  release_id:
    description:
      - Also report whether C(<base_dir>/releases/<release_id>) exists (RV(release_present)) and the host's
        platform (RV(host_platform)), as M(hotswap.deploy.deploy_lock) does, so a read-only check of an
        artifact against the host (a check-mode M(hotswap.deploy.binary_upload)) needs no probe of its own.
    type: str
    version_added: 0.7.0
extends_documentation_fragment:
  - hotswap.deploy.release
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: hotswap.deploy.release_activate
  - module: hotswap.deploy.release_prune
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Read the release state
  hotswap.deploy.release_info:
    base_dir: /opt/myapp
  register: info

- name: Read a blue-green app - its releases, slot links and nginx config - in one run
  hotswap.deploy.release_info:
    base_dir: /opt/myapp
    slots: [blue, green]
    lb_config: /etc/nginx/conf.d/hotswap-myapp.conf
  register: bg

- name: Roll back to the previous good release
  hotswap.deploy.release_activate:
    base_dir: /opt/myapp
    release_id: "{{ info.previous_good }}"
    previous_state: failed
  when: info.previous_good is not none
'''

RETURN = r'''
release_present:
  description: Whether the directory of I(release_id) exists; null without I(release_id).
  returned: always
  type: bool
host_platform:
  description: The host's C(os) and C(arch) (as M(hotswap.deploy.binary_upload) reports them); null without I(release_id).
  returned: always
  type: dict
current:
  description: Release C(current) points at; null when there is no usable C(current).
  returned: always
  type: str
  sample: 1.4.2-3a7bd3e2360a
previous_good:
  description:
    - Release to roll back to from RV(current), or null. The newest activation in the ledger's
      history whose release is not the current one, is not C(failed) and is still on disk.
  returned: always
  type: str
  sample: 1.4.1-9f86d081884c
releases:
  description:
    - Releases in the ledger, oldest C(staged_at) first, then release directories that are not in the
      ledger (state C(unknown)), by name.
  returned: always
  type: list
  elements: dict
  contains:
    release_id:
      description: Release id (directory name under C(releases/)).
      type: str
    version:
      description: Version recorded when the release was staged; null if unknown.
      type: str
    sha256:
      description: sha256 of the binary recorded when the release was staged; null if unknown.
      type: str
    binary:
      description: File name of the binary in the release directory; null if unknown.
      type: str
    state:
      description: Ledger state, or C(unknown) for a directory that is not in the ledger.
      type: str
      choices: [staged, active, retired, failed, unknown]
    staged_at:
      description: When the release was recorded as staged (UTC ISO8601, C(Z) suffix).
      type: str
    activated_at:
      description: When it was last activated.
      type: str
    activated_by:
      description: Who or what last activated it.
      type: str
    retired_at:
      description: When it was last switched away from normally.
      type: str
    failed_at:
      description: When it was last marked failed.
      type: str
    files:
      description:
        - The release files staged with it - C(dest), C(digest) (C(sha256:<hex>), C(pbkdf2-sha256:<hex>) for a secret
          one), C(owner), C(group), C(mode), C(secret); never their content. Null for a release of a binary alone
          staged before 0.6.0.
      type: list
      elements: dict
    environment:
      description: Names and digest of its environment (never a value), or null.
      type: dict
    artifact:
      description: What the artifact was - C(binary), C(tar.gz) or C(zip); null for releases staged before 0.6.0.
      type: str
    path:
      description: Absolute path of the release directory.
      type: str
    present:
      description: Whether the release directory exists.
      type: bool
  sample:
    - release_id: 1.4.2-3a7bd3e2360a
      version: 1.4.2
      sha256: 3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b
      binary: myapp
      state: active
      staged_at: "2024-05-01T12:00:00Z"
      activated_at: "2024-05-01T12:01:10Z"
      activated_by: deploy@ctl:42
      retired_at: null
      failed_at: null
      path: /opt/myapp/releases/1.4.2-3a7bd3e2360a
      present: true
ledger_path:
  description: Path of the ledger file (it may not exist yet).
  returned: always
  type: str
  sample: /opt/myapp/.hotswap/ledger.json
current_blocked:
  description:
    - True when C(current) is a real file or directory, so no release can be activated until it is
      moved away (hotswap.deploy never deletes it).
  returned: always
  type: bool
  sample: false
problems:
  description: Problems with C(current) that need a human (each also emitted as a warning).
  returned: always
  type: list
  elements: str
  sample: []
slots:
  description:
    - Each slot of I(slots) - C(path) of its link, whether it C(exists), whether it is a link (C(islink)),
      and the C(release) it points at (the name of the link's target directory; null when it is no link).
  returned: always
  type: dict
  sample:
    blue: {path: /opt/myapp/slots/blue, exists: true, islink: true, release: 1.4.2-3a7bd3e2360a}
    green: {path: /opt/myapp/slots/green, exists: false, islink: false, release: null}
lb_config:
  description: The text of I(lb_config); null when the file does not exist.
  returned: when I(lb_config) is given
  type: str
live_slot:
  description: The live slot the marker in I(lb_config) names; empty when there is none.
  returned: when I(lb_config) is given
  type: str
  sample: blue
backup_slot:
  description: The backup slot the marker in I(lb_config) names; empty when there is none.
  returned: when I(lb_config) is given
  type: str
  sample: green
stat:
  description: Each path of I(stat) - whether it C(exists) and whether it is a symlink (C(islnk)).
  returned: always
  type: dict
  sample:
    /etc/nginx/sites-enabled/default: {exists: true, islnk: true}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils.common import BASE_DIR_SPEC, HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import info
from ansible_collections.hotswap.deploy.plugins.module_utils.lock import release_presence
from ansible_collections.hotswap.deploy.plugins.module_utils.slots import read_state


def main():
    argument_spec = dict(BASE_DIR_SPEC, slots=dict(type='list', elements='str', default=[]),
                         lb_config=dict(type='path'), stat=dict(type='list', elements='path', default=[]),
                         release_id=dict(type='str'))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    try:
        result = info(p['base_dir'])
        result.update(read_state(p['base_dir'], p['slots'], p['lb_config'], p['stat']))
        result.update(release_presence(p['base_dir'], p['release_id']))
    except HotswapError as e:
        module.fail_json(msg=e.msg)
    except OSError as e:
        module.fail_json(msg='reading releases in %s: %s. Check permissions (use become).'
                             % (module.params['base_dir'], e))
    for problem in result['problems']:
        module.warn(problem)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
