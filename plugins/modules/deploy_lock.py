#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: deploy_lock
short_description: Take or release the per-host deploy lock of an application
version_added: 0.1.0
description:
  - The lock is the file C(<base_dir>/.hotswap/lock), created exclusively (C(O_CREAT|O_EXCL)) and
    holding JSON with the I(owner), when it was taken and the host name. It outlives this task; take
    it at the start of a deploy and release it at the end (also in C(always:)).
  - Taking a lock already held by the same I(owner) changes nothing, so a deploy can re-run its lock
    task. A lock held by another owner fails the task with the holder and its age, unless it is
    older than I(stale_after) seconds, in which case it is taken over (RV(taken_over)).
  - Releasing a lock held by another owner needs I(force). Releasing a missing lock changes nothing.
  - Creates I(base_dir) (mode 0755) and C(.hotswap/) (mode 0750) when taking the lock, and removes
    them again on release when they are still empty (a refused first deploy leaves no trace).
  - Taking the lock also returns the releases as M(hotswap.deploy.release_info) reads them
    (RV(releases_state)), read once the lock is held, so a deploy needs no second round trip.
  - With I(unless_live), the lock is taken only when the release described there is not live as a
    deploy leaves it (M(hotswap.deploy.release_status)); a re-run of the same deploy then costs this
    one module run and takes no lock.
extends_documentation_fragment:
  - hotswap.deploy.release
  - ansible.builtin.action_common_attributes
options:
  state:
    description:
      - C(present) takes the lock, C(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  owner:
    description:
      - Deploy id that holds the lock, for example C(<user>@<controller>:<play id>). Compute it once
        on the controller (for example in a C(run_once) C(set_fact)) so that it is the same on every
        host and every batch of one deploy.
      - Required when I(state=present). With I(state=absent) and no I(owner), only I(force) removes a
        held lock.
    type: str
  force:
    description:
      - With I(state=absent), remove the lock even when another owner holds it. Only for a deploy
        that is known to be dead.
    type: bool
    default: false
  stale_after:
    description:
      - With I(state=present), take over a lock held by another owner when it is older than this many
        seconds. C(0) never takes over.
    type: int
    default: 0
  unless_live:
    description:
      - With I(state=present), first check whether a release is live as a deploy leaves it, with the
        options of M(hotswap.deploy.release_status) (without I(base_dir)) - C(release_id), C(binary),
        C(checksum), C(app), C(strategy), C(service_unit) required; C(socket_unit), C(url),
        C(expected_version), C(keep), C(timeout), C(validate_certs), the version options and C(content)
        (release files and environment by digest) optional (empty values count as not given).
      - When it is live, no lock is taken and RV(live) is true; otherwise the lock is taken as usual.
    type: dict
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: hotswap.deploy.release_activate
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Take the deploy lock
  hotswap.deploy.deploy_lock:
    base_dir: /opt/myapp
    owner: "{{ hotswap_deploy_id }}"
    stale_after: 3600

- name: Take the lock unless 1.4.2 is live already (then there is nothing to deploy)
  hotswap.deploy.deploy_lock:
    base_dir: /opt/myapp
    owner: "{{ hotswap_deploy_id }}"
    unless_live:
      release_id: 1.4.2-3a7bd3e2360a
      binary: myapp
      checksum: "sha256:3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b"
      app: myapp
      strategy: restart
      service_unit: "{{ lookup('ansible.builtin.template', 'app.service.j2') }}"
      url: http://127.0.0.1:8080/healthz
  register: lock

- name: Release it
  hotswap.deploy.deploy_lock:
    base_dir: /opt/myapp
    owner: "{{ hotswap_deploy_id }}"
    state: absent

- name: Remove the lock of a deploy that died
  hotswap.deploy.deploy_lock:
    base_dir: /opt/myapp
    state: absent
    force: true
'''

RETURN = r'''
holder:
  description: The lock after the task (would be, in check mode); null when it is free.
  returned: success
  type: dict
  contains:
    owner:
      description: Deploy id holding the lock (null if the lock file is corrupt).
      type: str
    acquired_at:
      description: When it was taken (UTC ISO8601, C(Z) suffix).
      type: str
    acquired_epoch:
      description: The same as seconds since the epoch.
      type: int
    host:
      description: Host name of the target when the lock was taken.
      type: str
    created:
      description: Directories the lock created (removed on release when still empty).
      type: list
      elements: str
    age:
      description: Seconds since it was taken (absent on a lock just taken).
      type: int
  sample:
    owner: deploy@ctl:42
    acquired_at: "2024-05-01T12:00:00Z"
    acquired_epoch: 1714564800
    host: web1
taken_over:
  description: With I(state=present), the stale lock that was replaced, else null. Same keys as RV(holder).
  returned: success
  type: dict
released:
  description: With I(state=absent), the lock that was removed, else null. Same keys as RV(holder).
  returned: success
  type: dict
live:
  description: With I(unless_live), whether the release was live (then no lock was taken); else false.
  returned: success
  type: bool
  sample: false
live_reason:
  description: With I(unless_live), what M(hotswap.deploy.release_status) found (its C(reason)); else null.
  returned: success
  type: str
  sample: current is 1.4.1-9f86d081884c, not 1.4.2-3a7bd3e2360a
releases_state:
  description:
    - With I(state=present), what M(hotswap.deploy.release_info) returns (C(current), C(previous_good),
      C(releases), C(ledger_path), C(current_blocked), C(problems)), read under the lock. Null with
      I(state=absent).
  returned: success
  type: dict
  sample:
    current: 1.4.2-3a7bd3e2360a
    previous_good: 1.4.1-9c0ffee12345
    releases: []
    ledger_path: /opt/myapp/.hotswap/ledger.json
    current_blocked: false
    problems: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils.common import BASE_DIR_SPEC, HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils import lock
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import info
from ansible_collections.hotswap.deploy.plugins.module_utils.status import live_check


def main():
    argument_spec = dict(
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        owner=dict(type='str'),
        force=dict(type='bool', default=False),
        stale_after=dict(type='int', default=0),
        unless_live=dict(type='dict'),
    )
    argument_spec.update(BASE_DIR_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('state', 'present', ['owner'])])
    p = module.params
    status = dict(live=False, live_reason=None)
    try:
        if p['state'] == 'present' and p['unless_live'] is not None:
            checked = live_check(p['base_dir'], p['unless_live'], run_command=module.run_command)
            status = dict(live=checked['live'], live_reason=checked['reason'])
        if status['live']:
            result = dict(changed=False, holder=None, taken_over=None, released=None, releases_state=None)
        elif p['state'] == 'present':
            result = lock.acquire(p['base_dir'], p['owner'], stale_after=p['stale_after'],
                                  check_mode=module.check_mode)
            result['released'] = None
            result['releases_state'] = info(p['base_dir'])
        else:
            result = lock.release(p['base_dir'], p['owner'], force=p['force'], check_mode=module.check_mode)
            result['taken_over'] = None
            result['releases_state'] = None
    except HotswapError as e:
        module.fail_json(msg=e.msg)
    except OSError as e:
        module.fail_json(msg='%s the deploy lock in %s: %s. Check permissions (use become).'
                             % ('taking' if p['state'] == 'present' else 'releasing', p['base_dir'], e))
    result.update(status)
    for problem in (result['releases_state'] or {}).get('problems', []):
        module.warn(problem)
    if result.get('taken_over'):
        module.warn('took over the stale deploy lock of %r taken at %s'
                    % (result['taken_over'].get('owner'), result['taken_over'].get('acquired_at')))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
