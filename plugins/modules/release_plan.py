#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: release_plan
short_description: Compute the release id of an artifact with its files and environment
description:
  - Runs on the controller only (an action plugin); contacts no host and changes nothing.
  - Returns the release id C(<version>-<12 hex>) where the hex is a digest over the artifact's sha256,
    every release file (path, content, owner, group, mode) and the environment. A change to any of them
    gives a new id, so config is staged and switched like a new binary and rolled back with it.
  - A release of a binary alone (no files, no environment) keeps the id C(<version>-<sha256[:12]>).
  - Reads O(files[].src) on the controller, as M(hotswap.deploy.binary_upload) does; the two see the same bytes.
  - Checks the files and the environment (relative paths inside the release, no duplicate, valid variable
    names, one line per value) before anything reaches a host.
version_added: 0.6.0
author:
  - hotswap.deploy developers (@hotswap-deploy)
options:
  version:
    description:
      - Version of the release, the first part of the id.
    type: str
    required: true
  checksum:
    description:
      - Digest of the artifact (the binary or the archive), C(sha256:<64 hex digits>); upper- or lower-case
        hex give the same id.
    type: str
    required: true
  binary:
    description:
      - File name of the binary inside the release (no release file may take it).
    type: str
    required: true
extends_documentation_fragment:
  - hotswap.deploy.release.content
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details: Computes the same plan; it never changes anything.
  diff_mode:
    support: none
  platform:
    platforms: all
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
seealso:
  - module: hotswap.deploy.binary_upload
'''

EXAMPLES = r'''
- name: Compute the release id of the binary and its config
  hotswap.deploy.release_plan:
    version: "{{ myapp_version }}"
    checksum: "sha256:{{ myapp_sha256 }}"
    binary: myapp
    files:
      - dest: config/app.yml
        src: app.yml
      - dest: config/token
        content: "{{ vault_myapp_token }}"
        secret: true
        group: myapp
        mode: '0640'
    environment:
      GOMAXPROCS: "2"
    environment_secret:
      DATABASE_PASSWORD: "{{ vault_db_password }}"
  register: plan
  no_log: false   # the result holds digests and names only

- name: Stage it
  hotswap.deploy.binary_upload:
    src: dist/myapp
    checksum: "sha256:{{ myapp_sha256 }}"
    name: myapp
    version: "{{ myapp_version }}"
    base_dir: /opt/myapp
    release_id: "{{ plan.release_id }}"
    files: "{{ myapp_files }}"
'''

RETURN = r'''
release_id:
  description: The release id, C(<version>-<12 hex>).
  returned: success
  type: str
  sample: 1.4.2-5be0a1f3c2d9
sha256:
  description: The artifact's sha256, lower-case hex.
  returned: success
  type: str
files:
  description: What the id covers of each release file - never its content.
  returned: success
  type: list
  elements: dict
  contains:
    dest:
      description: Path inside the release.
      type: str
    digest:
      description: C(sha256:<hex>), or C(pbkdf2-sha256:<hex>) for a secret file.
      type: str
    owner:
      description: Owner, empty for the module's user.
      type: str
    group:
      description: Group, empty for that user's group.
      type: str
    mode:
      description: Octal mode.
      type: str
    secret:
      description: Whether the content is secret.
      type: bool
environment:
  description: Names and digest of the environment (never a value); null when there is none.
  returned: success
  type: dict
  contains:
    names:
      description: Variable names, sorted.
      type: list
      elements: str
    digest:
      description: Digest of the environment file (PBKDF2 when it holds secrets).
      type: str
'''
