#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: blue_green_deploy
short_description: Roll one Linux host out blue-green - two systemd slots behind nginx, switched in one task
description:
  - The per-host rollout of the R(hotswap.deploy.blue_green, ansible_collections.hotswap.deploy.blue_green_role) role as
    one task (an action plugin). It runs on the controller and drives the remote modules one after the other.
  - Before anything changes it checks the input (ports, app name, timings, what to deploy, the checksum, the hooks;
    Linux hosts only), checks the artifact against the host (M(hotswap.deploy.binary_upload) in check mode) and reads
    the releases, the slot links and the nginx config in one M(hotswap.deploy.release_info) run. It refuses a slot
    path that is no link, a blocked C(current), an nginx config it did not write and nginx's default site on the
    public port; a refusal changes nothing and takes no lock.
  - The nginx config says which slot is live. A new release goes to the idle slot (C(blue) on a first deploy); a
    re-run of the live release only repairs drift and does not switch; O(settings.action=switch_back) switches to the
    release the idle slot holds.
  - Then, under the deploy lock (M(hotswap.deploy.deploy_lock)) - the service user and state directories, nginx from
    the distribution when it is missing, the units of both slots (M(hotswap.deploy.blue_green_slots)), the upload of
    the release, the idle slot pointed at it, started (M(hotswap.deploy.graceful_restart)) and verified directly
    (M(hotswap.deploy.health_check)), nginx switched to it (M(hotswap.deploy.nginx_switch) - nginx -t, then a graceful
    reload), the release recorded as C(current) (M(hotswap.deploy.release_activate)), the check through the public
    port, C(.hotswap/blue_green.json) recorded, the old slot scaled down (at once or by a systemd timer after
    O(settings.scale_down_delay) seconds), old releases pruned (M(hotswap.deploy.release_prune); never the releases
    the slots hold), and the lock released.
  - A step that fails under the lock switches back - nginx to the config it had (the old slot was never stopped), the
    failed slot stopped and pointed back at what it held, C(current) back with the new release marked failed, the old
    slot checked through the public port - releases the lock and fails the task with a summary; RV(failure) names
    the stage, RV(result) is the per-host result.
  - With hooks the role runs the same steps as phases (O(phase)), a hook task file between two, passing RV(state)
    from one phase to the next; O(phase=abort) switches back after a failed hook.
  - Use it through the R(hotswap.deploy.blue_green, ansible_collections.hotswap.deploy.blue_green_role) role, which
    builds O(settings) from its variables.
version_added: 0.9.0
author:
  - hotswap.deploy developers (@hotswap-deploy)
options:
  settings:
    description:
      - What to deploy and how; the role variable C(blue_green__settings) builds it from the C(blue_green_*)
        variables.
    type: dict
    required: true
    suboptions:
      app:
        description:
          - Name of the app; the slots run as C(<app>-blue.service) and C(<app>-green.service), the nginx config is
            C(/etc/nginx/conf.d/hotswap-<app>.conf).
        type: str
        required: true
      action:
        description:
          - C(deploy) a release, or C(switch_back) to the release the idle slot holds.
        type: str
        default: deploy
        choices: [deploy, switch_back]
      version:
        description:
          - Version of the release, the first part of the release id (required with an artifact).
        type: str
        default: ''
      checksum:
        description:
          - C(sha256:<hex>) of the artifact (required with an artifact).
        type: str
        default: ''
      artifact:
        description:
          - Path of the artifact on the controller (one of I(artifact), I(artifact_url) or I(release_id)).
        type: str
        default: ''
      artifact_url:
        description:
          - URL the host downloads the artifact from.
        type: str
        default: ''
      release_id:
        description:
          - A release already on the host, deployed without an upload.
        type: str
        default: ''
      base_dir:
        description:
          - Directory holding C(releases/), C(slots/), C(current) and C(.hotswap/).
        type: str
        required: true
      binary:
        description:
          - File name of the binary inside the release.
        type: str
        required: true
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
      ports:
        description:
          - 'The port of each slot, C({blue: 8081, green: 8082}): two different ports, neither the public one.'
        type: dict
        required: true
      listen_address:
        description:
          - Address the slots listen on; nginx and the direct check reach a wildcard address on C(127.0.0.1).
        type: str
        default: 127.0.0.1
      service_type:
        description:
          - C(Type=) of the slot units (C(notify) adds C(NotifyAccess=all)).
        type: str
        default: simple
      ready_timeout:
        description:
          - Seconds a slot has to become ready.
        type: float
        default: 60
      drain_timeout:
        description:
          - Seconds a stopping slot has to finish its requests.
        type: float
        default: 60
      public_port:
        description:
          - The port nginx serves the app on.
        type: raw
        default: 80
      nginx_package:
        description:
          - The package installed when nginx is missing.
        type: str
        default: nginx
      disable_default_site:
        description:
          - Remove the link of nginx's default site when it is the default server on the public port 80.
        type: bool
        default: true
      upstream_keepalive:
        description:
          - Idle keep-alive connections nginx keeps to the slot.
        type: int
        default: 32
      upstream_keepalive_timeout:
        description:
          - Seconds an idle keep-alive connection to the slot stays open.
        type: int
        default: 30
      proxy_read_timeout:
        description:
          - Seconds nginx waits for a response of the slot.
        type: int
        default: 60
      scale_down_delay:
        description:
          - Seconds the old slot keeps running after the switch (0 stops it once nginx's old workers are done).
        type: int
        default: 300
      health_retries:
        description:
          - Probes of a check.
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
      hooks:
        description:
          - Hook task files by hook point (docs/hooks.md); they run only when the rollout switches slots.
        type: dict
        default: {}
      service:
        description:
          - The completed service settings (filter P(hotswap.deploy.service_settings#filter)).
        type: dict
        required: true
  phase:
    description:
      - C(all) runs every step. C(begin) (checks, plan, lock, service user, nginx, slot units), C(upload), C(start)
        (point, start and verify the idle slot), C(switch) (nginx and C(current)), C(verify) (through the public
        port) and C(finish) (record, scale down, prune, release the lock, the result) run one part each, for a
        rollout with hooks between them.
      - C(abort) switches back what O(state) says was changed and fails with the summary of O(failed_result).
    type: str
    default: all
    choices: [begin, upload, start, switch, verify, finish, all, abort]
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
    details: Every module runs in check mode and reports what it would change; the probes of a slot that would
      only start on a real run are skipped.
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
  - module: hotswap.deploy.blue_green_slots
  - module: hotswap.deploy.nginx_switch
  - module: hotswap.deploy.deploy_lock
'''

EXAMPLES = r'''
# Through the role (it builds the settings):
- name: Deploy myapp blue-green
  ansible.builtin.include_role:
    name: hotswap.deploy.blue_green
  vars:
    blue_green_app: myapp
    blue_green_version: 1.4.2
    blue_green_artifact: dist/myapp
    blue_green_checksum: "sha256:{{ myapp_sha256 }}"
    blue_green_binary: myapp
    blue_green_base_dir: /opt/myapp
    blue_green_ports: {blue: 8081, green: 8082}

- name: Switch myapp back to the release of the idle slot
  ansible.builtin.include_role:
    name: hotswap.deploy.blue_green
  vars:
    blue_green_app: myapp
    blue_green_action: switch_back
    blue_green_binary: myapp
    blue_green_base_dir: /opt/myapp
    blue_green_ports: {blue: 8081, green: 8082}
'''

RETURN = r'''
result:
  description:
    - The per-host result the role publishes as C(blue_green_result) - C(host), C(app), C(previous_release),
      C(release), C(version), C(slot), C(seconds), C(changed) (whether nginx switched slots), C(verdict) (the
      outcome of the check through the public port), C(switch_seconds) and C(scale_down) (what happens to the old
      slot); after a failure C(verdict) names the stage and C(rolled_back_to), C(rollback_health) and C(failure)
      are added.
  returned: with phase all or finish, and on failure after the lock was taken
  type: dict
failure:
  description: Where and why the rollout failed, C({stage, reason}).
  returned: failure
  type: dict
state:
  description: What the next phase needs (the plan, the lock holder, what was changed so far).
  returned: with phases begin, upload, start, switch and verify
  type: dict
facts:
  description: The facts hooks read - C(hotswap_hook) (docs/hooks.md) and its older name C(blue_green_context).
  returned: success
  type: dict
msg:
  description: On failure, the summary - what failed where, and what was switched back.
  returned: failure
  type: str
'''
