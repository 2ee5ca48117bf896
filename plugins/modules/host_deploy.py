#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: host_deploy
short_description: Deploy one release on one Linux host - lock, upload, units, switch, restart, verify
description:
  - The per-host deploy of the R(hotswap.deploy.deploy_host, ansible_collections.hotswap.deploy.deploy_host_role) role
    as one task (an action plugin). It runs on the
    controller and drives the remote modules one after the other - M(hotswap.deploy.deploy_lock),
    M(hotswap.deploy.binary_upload), M(hotswap.deploy.service_units), M(hotswap.deploy.release_activate),
    M(hotswap.deploy.graceful_restart) (and M(hotswap.deploy.health_check) for a service it did not restart),
    then releases the lock. A re-run of the live release costs one module run and takes no lock.
  - A step that fails after the lock was taken switches C(current) back to the previous release (or puts an
    adopted unit back), restarts and re-verifies the service on it, releases the lock and fails the task with a
    summary; RV(failure) names the stage, RV(result) is the per-host result.
  - With hooks the role runs the same steps as phases (O(phase)), a hook task file between two, passing
    RV(state) from one phase to the next; O(phase=abort) switches back after a failed hook.
  - Use it through the R(hotswap.deploy.deploy_host, ansible_collections.hotswap.deploy.deploy_host_role) role, which
    builds O(settings) from its variables.
version_added: 0.7.0
author:
  - hotswap.deploy developers (@hotswap-deploy)
options:
  settings:
    description:
      - What to deploy and how; the role variable C(deploy_host__settings) builds it from the C(deploy_host_*)
        variables.
    type: dict
    required: true
    suboptions:
      app:
        description:
        - Name of the service (systemd unit and default user).
        type: str
        required: true
      version:
        description:
        - Version of the release, the first part of the release id.
        type: str
        required: true
      checksum:
        description:
        - C(sha256:<hex>) of the artifact.
        type: str
        default: ''
      binary:
        description:
        - File name of the binary inside the release.
        type: str
        required: true
      artifact:
        description:
        - Path of the artifact on the controller (one of I(artifact) or I(artifact_url)).
        type: str
        default: ''
      artifact_url:
        description:
        - URL the host downloads the artifact from.
        type: str
        default: ''
      artifact_headers:
        description:
        - Headers for I(artifact_url) (never logged).
        type: dict
        default: {}
      artifact_username:
        description:
        - Basic-auth user for I(artifact_url).
        type: str
        default: ''
      artifact_password:
        description:
        - Basic-auth password for I(artifact_url) (never logged).
        type: str
        default: ''
      artifact_format:
        description:
        - C(auto), C(binary), C(tar.gz) or C(zip).
        type: str
        default: auto
      artifact_strip_components:
        description:
        - Leading directories stripped from an archive.
        type: int
        default: 0
      artifact_max_size:
        description:
        - Largest artifact (bytes), download and unpacked archive alike.
        type: int
        default: 1073741824
      base_dir:
        description:
        - Directory holding C(releases/), C(current) and C(.hotswap/).
        type: str
        required: true
      restart_strategy:
        description:
        - How the service moves to the new binary (M(hotswap.deploy.graceful_restart) I(strategy)).
        type: str
        required: true
        choices: [systemd_socket, signal_reexec, notify_reload, reuseport, restart]
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
      health_retries:
        description:
        - Probes of a service that was not restarted.
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
      keep:
        description:
        - Releases kept on the host.
        type: int
        default: 5
      lock_stale_after:
        description:
        - Take over a lock older than this many seconds (0 never).
        type: int
        default: 0
      deploy_id:
        description:
        - Lock holder; empty names the run by app, release and AWX job or controller user.
        type: str
        default: ''
      job_id:
        description:
        - The AWX/Tower job id, for the lock holder.
        type: str
        default: ''
      release_files:
        description:
        - Files of the release (as I(files) of M(hotswap.deploy.binary_upload)).
        type: list
        default: []
        elements: dict
      environment_secret:
        description:
        - Environment values never logged.
        type: dict
        default: {}
      config_reload:
        description:
        - 'C({signal}) or C({command}): apply a config-only release by a reload.'
        type: dict
        default: {}
      config_probe:
        description:
        - 'C({url, query, expected}): what shows the reloaded config.'
        type: dict
        default: {}
      hooks:
        description:
        - Hook task files by hook point; any turns off the live-release shortcut.
        type: dict
        default: {}
      service:
        description:
        - The completed service settings (filter P(hotswap.deploy.service_settings#filter)).
        type: dict
        required: true
      service_unit:
        description:
        - The rendered service unit.
        type: str
        required: true
      socket_unit:
        description:
        - The rendered socket unit (C(systemd_socket) only).
        type: str
        default: ''
      batch:
        description:
        - The canary batch number (1 for the first), for the hooks' C(hotswap_hook); null outside a canary.
        type: int

  phase:
    description:
      - C(all) runs every step. C(begin) (checks, plan, lock), C(upload), C(install) (service user, state
        directories, units), C(activate) (switch and restart), C(verify) and C(finish) (release the lock, the
        result) run one part each, for a deploy with hooks between them.
      - C(abort) switches back what O(state) says was changed and fails with the summary of O(failed_result).
    type: str
    default: all
    choices: [begin, upload, install, activate, verify, finish, all, abort]
  state:
    description:
      - RV(state) of the previous phase; required by every phase but C(all) and C(begin).
    type: dict
  failed_task:
    description:
      - With O(phase=abort), the name of the task that failed (a hook's task).
    type: str
  failed_result:
    description:
      - With O(phase=abort), the result of the task that failed. A result this action failed with itself is
        returned as it is (it has switched back already).
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details: Every module runs in check mode; a release that would be uploaded is not activated.
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
  - module: hotswap.deploy.deploy_lock
  - module: hotswap.deploy.graceful_restart
'''

EXAMPLES = r'''
# Through the role (it builds the settings):
- name: Deploy myapp
  ansible.builtin.include_role:
    name: hotswap.deploy.deploy_host
  vars:
    deploy_host_app: myapp
    deploy_host_version: 1.4.2
    deploy_host_artifact: dist/myapp
    deploy_host_checksum: "sha256:{{ myapp_sha256 }}"
'''

RETURN = r'''
result:
  description:
    - The per-host result the roles publish as C(deploy_host_result) - C(host), C(app), C(previous_release),
      C(release), C(version), C(changed), C(verdict), C(seconds); C(live) when the release was live already;
      after a failure C(rolled_back_to), C(rollback_health) and C(serving) (whether the host serves a verified
      release again - a load balancer may put it back into rotation).
  returned: with phase all or finish, and on failure after the lock was taken
  type: dict
restart_event:
  description:
    - When the service was restarted - wall-clock C(start) and C(end) (epoch seconds), C(failed), and the
      restart module's own C(stage), C(strategy), C(timings), C(elapsed), C(transition), PIDs and versions.
    - For the zero-downtime benchmark, which places each host's restart on its load timeline.
  returned: when the service was restarted on the new release
  type: dict
failure:
  description: Where and why the deploy failed, C({stage, reason}).
  returned: failure
  type: dict
state:
  description: What the next phase needs (release id, lock holder, previous release, what was changed).
  returned: with phases begin, upload, install, activate and verify
  type: dict
facts:
  description: The release facts hooks read - C(hotswap_hook) (docs/hooks.md), and the older
    C(deploy_host_release_id), C(deploy_host_release_dir), C(deploy_host_previous_release).
  returned: success
  type: dict
'''
