#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: release_switch
short_description: Switch one Linux host to a release it has - lock, switch, restart, verify, switch back on failure
description:
  - The per-host step of the R(hotswap.deploy.rollback, ansible_collections.hotswap.deploy.rollback_role) role (and so
    of the canary's switch back of a failed batch)
    as one task, an action plugin. It takes the deploy lock and switches C(current) to O(settings.target) in one
    module run (M(hotswap.deploy.release_activate) with its C(take_lock) option), restarts the service with the strategy in force
    (M(hotswap.deploy.graceful_restart)), verifies health and version (M(hotswap.deploy.health_check)) and
    releases the lock.
  - When a step fails after the switch, C(current) goes back to the release the host came from (when
    O(settings.restore_on_failure) and that release is on the host), the service is restarted and probed there -
    the switch-back path a failed M(hotswap.deploy.host_deploy) takes too - and the task fails with a summary.
  - Use it through the R(hotswap.deploy.rollback, ansible_collections.hotswap.deploy.rollback_role) role, which reads
    the host and builds O(settings).
version_added: 0.7.0
author:
  - hotswap.deploy developers (@hotswap-deploy)
options:
  settings:
    description:
      - What to switch to and how; the rollback role's C(rollback__switch_settings) builds it.
    type: dict
    required: true
    suboptions:
      app:
        description:
        - Name of the service (its systemd unit).
        type: str
        required: true
      base_dir:
        description:
        - Directory holding C(releases/), C(current) and C(.hotswap/).
        type: str
        required: true
      target:
        description:
        - The release to switch to; it must be on the host.
        type: str
        required: true
      version:
        description:
        - Version of the target (from the ledger), checked against what the service reports; null skips the check.
        type: str
      strategy:
        description:
        - The restart strategy the units are installed for (M(hotswap.deploy.graceful_restart) I(strategy)).
        type: str
        required: true
        choices: [systemd_socket, signal_reexec, notify_reload, reuseport, restart]
      executable:
        description:
        - 'C(<base_dir>/current/<binary>): a service already running the target''s binary is not restarted.'
        type: str
        required: true
      restart_signal:
        description:
        - Signal of the C(signal_reexec) strategy.
        type: str
        default: SIGHUP
      pid_file:
        description:
        - PID file of the C(signal_reexec) strategy.
        type: str
        default: ''
      service:
        description:
        - The completed service settings (filter P(hotswap.deploy.service_settings#filter)).
        type: dict
        required: true
      health_retries:
        description:
        - Probes of the target after the restart.
        type: int
        default: 20
      health_interval:
        description:
        - Seconds between two probes.
        type: float
        default: 1
      health_successes:
        description:
        - Passing probes in a row needed.
        type: int
        default: 2
      health_timeout:
        description:
        - Seconds of one probe.
        type: float
        default: 3
      ready_timeout:
        description:
        - Seconds the new process has to become ready.
        type: float
        default: 60
      drain_timeout:
        description:
        - Seconds the old process has to finish its requests.
        type: float
        default: 60
      owner:
        description:
        - Lock holder and C(activated_by) (filter P(hotswap.deploy.lock_owner#filter)).
        type: str
        required: true
      reclaim_key:
        description:
        - The lock of a killed run of the same rollback with this key is taken back.
        type: str
        required: true
      lock_stale_after:
        description:
        - Take over a lock older than this many seconds (0 never).
        type: int
        default: 0
      previous_state:
        description:
        - What the release switched away from becomes in the ledger (C(retired) or C(failed)).
        type: str
        default: retired
      restore_on_failure:
        description:
        - Switch back to the release the host came from when the target fails.
        type: bool
        default: true
      current:
        description:
        - The release current pointed at when the host was read.
        type: str
      present:
        description:
        - Ids of the releases on the host (a switch back goes only to one of them).
        type: list
        default: []
        elements: str
      releases:
        description:
        - The ledger entries (C(release_id), C(version)) as M(hotswap.deploy.release_info) returns them.
        type: list
        default: []
        elements: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details: The switch is reported, not made; no restart or probe follows it.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
seealso:
  - module: hotswap.deploy.host_deploy
  - module: hotswap.deploy.release_activate
'''

EXAMPLES = r'''
# Through the role (it reads the host and builds the settings):
- name: Roll myapp back to its previous good release
  ansible.builtin.include_role:
    name: hotswap.deploy.rollback
  vars:
    rollback_app: myapp
'''

RETURN = r'''
result:
  description:
    - The per-host result the role publishes as C(rollback_result) - C(host), C(app), C(previous_release),
      C(release), C(version), C(changed), C(verdict), C(seconds); after a failure C(switched_back_to) and
      C(switched_back_health).
  returned: always
  type: dict
failure:
  description: Where and why the switch failed, C({stage, reason}).
  returned: failure
  type: dict
'''
