#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: deploy_lock
short_description: Take or release the per-host deploy lock of an application
version_added: 0.1.0
description:
  - The lock is the file C(<base_dir>/.hotswap/lock) holding JSON with the I(owner), the I(reclaim_key),
    when it was taken and the host name. It is written complete to a temporary file and hard-linked
    into place, which fails when a lock exists; a lock file is never empty or half written, even on a
    full disk or when the task is killed. It outlives this task; take it at the start of a deploy and
    release it at the end (also in C(always:)).
  - Taking a lock already held by the same I(owner) changes nothing, so a deploy can re-run its lock
    task. A lock held by another owner fails the task with the holder, its age and the fix, unless it
    has the same I(reclaim_key) (a relaunch of the same deploy, RV(reclaimed)) or is older than
    I(stale_after) seconds; then it is taken over (RV(taken_over)). Of several tasks taking over the
    same lock at once exactly one gets it; the old lock is renamed aside, checked, and the new one linked.
  - The modules that write the release tree (M(hotswap.deploy.binary_upload), M(hotswap.deploy.release_activate),
    M(hotswap.deploy.release_prune)) refuse while anyone but their I(lock_owner) holds the lock, so a run
    whose lock was taken over can write no more.
  - A lock file that is not JSON with an owner (left by an older version whose write failed) and a lock dated
    in the future are reported as such; I(force) removes them.
  - Releasing a lock held by another owner needs I(force). Releasing a missing lock changes nothing.
  - Creates I(base_dir) (mode 0755) and C(.hotswap/) (mode 0750) when taking the lock, and removes
    them again on release when they are still empty (a refused first deploy leaves no trace). Nothing
    outside I(base_dir) is ever removed, whatever the lock file lists.
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
      - Id of this run of a deploy, for example C(myapp deploy 1.4.2-3a7bd3e2360a (AWX job 42)); the filter
        P(hotswap.deploy.lock_owner#filter) computes it as the roles do. It must be the same on every host and
        every batch of one run, and differ between runs that must not write at the same time.
      - Pass it as I(lock_owner) to the modules that write under the lock.
      - Required when I(state=present). With I(state=absent) and no I(owner), only I(force) removes a
        held lock.
    type: str
  reclaim_key:
    description:
      - With I(state=present), the deploy without the run, for example C(myapp deploy 1.4.2-3a7bd3e2360a). A
        lock held by another owner with the same key is taken over (RV(reclaimed)), whatever its age - a
        relaunched AWX job takes back the lock of the cancelled one, whose later writes are then refused.
      - Not given, only the same I(owner) takes its lock back.
    type: str
    version_added: 0.6.0
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
  release_id:
    description:
      - With I(state=present), also report whether C(<base_dir>/releases/<release_id>) exists (RV(release_present))
        and the host's platform (RV(host_platform)), so a deploy that pushes a new release needs no separate probe.
    type: str
    version_added: 0.7.0
  service_user:
    description:
      - With I(state=present), also report whether this user exists and how (RV(service_user)), so a deploy
        needs no separate run to check or create the user its service runs as.
    type: str
    version_added: 0.7.0
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
- name: Name this run of the deploy (app, release, and the AWX job when there is one)
  ansible.builtin.set_fact:
    hotswap_lock: "{{ 'myapp' | hotswap.deploy.lock_owner('deploy 1.4.2-3a7bd3e2360a', awx_job_id | default('')) }}"

- name: Take the deploy lock; a relaunch of the same deploy takes it back
  hotswap.deploy.deploy_lock:
    base_dir: /opt/myapp
    owner: "{{ hotswap_lock.owner }}"
    reclaim_key: "{{ hotswap_lock.reclaim_key }}"

- name: Take the deploy lock, taking over one older than an hour
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
release_present:
  description: Whether the directory of I(release_id) exists; null without I(release_id) or when the release was live.
  returned: success
  type: bool
host_platform:
  description: The host's C(os) and C(arch) (as M(hotswap.deploy.binary_upload) reports them), with I(release_id).
  returned: success
  type: dict
service_user:
  description:
    - The user named in I(service_user) as the host has it; null without I(service_user) or when the release
      was live.
  returned: success
  type: dict
  contains:
    exists:
      description: Whether the user exists.
      type: bool
    group:
      description: Name of its primary group (null when it does not exist).
      type: str
    home:
      description: Its home directory.
      type: str
    shell:
      description: Its login shell.
      type: str
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
    reclaim_key:
      description: The deploy without the run (I(reclaim_key)); null when none was given.
      type: str
    created:
      description: Directories the lock created (removed on release when still empty).
      type: list
      elements: str
    corrupt:
      description: Present and true when the lock file is not JSON with an owner (I(owner) is then null).
      type: bool
    future:
      description: Present and true when the lock is dated in the future on the host (its age is then 0).
      type: bool
    age:
      description: Seconds since it was taken (absent on a lock just taken).
      type: int
  sample:
    owner: myapp deploy 1.4.2-3a7bd3e2360a (AWX job 42)
    reclaim_key: myapp deploy 1.4.2-3a7bd3e2360a
    acquired_at: "2024-05-01T12:00:00Z"
    acquired_epoch: 1714564800
    host: web1
taken_over:
  description:
    - With I(state=present), the lock that was replaced (stale, or reclaimed), else null. Same keys as RV(holder).
  returned: success
  type: dict
reclaimed:
  description: With I(state=present), whether RV(taken_over) was taken over for its I(reclaim_key) (else it was stale).
  returned: success
  type: bool
  sample: false
  version_added: 0.6.0
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


from ansible_collections.hotswap.deploy.plugins.module_utils.redact import RedactingModule
from ansible_collections.hotswap.deploy.plugins.module_utils.common import BASE_DIR_SPEC, HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils import lock
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import info


def main():
    argument_spec = dict(
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        owner=dict(type='str'),
        reclaim_key=dict(type='str', no_log=False),
        force=dict(type='bool', default=False),
        stale_after=dict(type='int', default=0),
        unless_live=dict(type='dict'),
        service_user=dict(type='str'),
        release_id=dict(type='str'),
    )
    argument_spec.update(BASE_DIR_SPEC)
    module = RedactingModule(argument_spec=argument_spec, supports_check_mode=True,
                             required_if=[('state', 'present', ['owner'])])
    p = module.params
    status = dict(live=False, live_reason=None)
    try:
        if p['state'] == 'present' and p['unless_live'] is not None:
            # Imported here: the unlock run does not compile the live check's health, unit and restart code.
            from ansible_collections.hotswap.deploy.plugins.module_utils.status import live_check
            checked = live_check(p['base_dir'], p['unless_live'], run_command=module.run_command)
            status = dict(live=checked['live'], live_reason=checked['reason'])
        if status['live']:
            result = dict(changed=False, holder=None, taken_over=None, reclaimed=False, released=None,
                          releases_state=None, service_user=None, release_present=None, host_platform=None)
        elif p['state'] == 'present':
            result = lock.acquire(p['base_dir'], p['owner'], stale_after=p['stale_after'],
                                  check_mode=module.check_mode, reclaim_key=p['reclaim_key'])
            result['released'] = None
            result['releases_state'] = info(p['base_dir'])
            result['service_user'] = lock.user_state(p['service_user']) if p['service_user'] else None
            result.update(lock.release_presence(p['base_dir'], p['release_id']))
        else:
            result = lock.release(p['base_dir'], p['owner'], force=p['force'], check_mode=module.check_mode)
            result['taken_over'] = None
            result['reclaimed'] = False
            result['releases_state'] = None
            result.update(service_user=None, release_present=None, host_platform=None)
    except HotswapError as e:
        module.fail_json(msg=e.msg)
    except OSError as e:
        module.fail_json(msg='%s the deploy lock in %s: %s. Check permissions (use become).'
                             % ('taking' if p['state'] == 'present' else 'releasing', p['base_dir'], e))
    result.update(status)
    for problem in (result['releases_state'] or {}).get('problems', []):
        module.warn(problem)
    if lock.takeover_warning(result):
        module.warn(lock.takeover_warning(result))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
