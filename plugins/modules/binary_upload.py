#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: binary_upload
short_description: Stage a checksummed service binary as an immutable release
description:
  - Puts one binary at C(<base_dir>/releases/<release_id>/<name>) without ever exposing a
    partial or unverified file at that path.
  - The data is written to a hidden temporary file in the release directory, its sha256 is
    compared with O(checksum), its executable header (ELF, PE or Mach-O) is compared with the
    host's OS and architecture, mode and owner are set, the file is fsynced and only then
    moved to its final name. On any failure the temporary file, and any directory this task
    created, are removed.
  - Releases are immutable. If the final path already holds the same sha256 nothing is
    transferred and the task reports C(changed=false) (mode, owner and the ledger entry are
    still corrected). If it holds a different sha256 the task fails; pick another O(release_id).
  - With O(files), O(environment), O(environment_secret) or an archive, the release is built in a hidden
    C(releases/.staging-<release_id>-*) directory and renamed to C(releases/<release_id>) only when complete; an
    existing release is never written into. O(release_id) must end in the digest of that content (take it from
    M(hotswap.deploy.release_plan)). When another release on the host holds the same artifact (a config-only
    change), its binary is copied from there on the host instead of transferred.
  - Push mode (O(src)) - the action plugin checks the file on the controller (sha256 against
    O(checksum), executable header), asks the host whether the release is already staged and
    what platform it is, refuses an artifact built for another OS/architecture before
    transferring anything, and only then copies the file to the host.
  - Pull mode (O(url)) - the host downloads the file itself, streaming it into the temporary
    file with the same checks. Useful when the controller-to-host link is slow.
  - Verify-only mode (neither O(src) nor O(url)) - succeeds when the release is already staged
    with this sha256, and fails with RV(reason=not_staged) otherwise (without changing anything).
  - The release is recorded in C(<base_dir>/.hotswap/ledger.json) with state C(staged).
  - Creates O(base_dir) and C(<base_dir>/releases) if they do not exist.
  - Refuses, before writing anything, a C(releases/) or C(releases/<release_id>) that is a symlink (the
    binary would be written wherever it points). O(base_dir) itself may be a symlink.
version_added: 0.1.0
author:
  - hotswap.deploy developers (@hotswap-deploy)
options:
  src:
    description:
      - Path of the binary on the controller. The action plugin looks it up like
        M(ansible.builtin.copy) does (a relative path is searched in the role or playbook
        C(files/) directory) and copies it to a temporary path on the host.
      - Mutually exclusive with O(url).
    type: path
  move_src:
    description:
      - The file at O(src) on the host is a temporary copy made for this upload (the action plugin sets this for
        the file it pushed), so it is renamed into the release instead of copied when it is on the same
        filesystem, and its digest is read once, in the release directory, before the release is published.
    type: bool
    default: false
    version_added: 0.7.0
  name:
    description:
      - File name of the binary inside the release directory, for example C(myapp).
      - A plain file name - no C(/) and no leading C(.).
    type: str
    required: true
  mode:
    description:
      - Permissions of the staged binary, as in M(ansible.builtin.file) (quote octal modes,
        for example V('0755'), or use a symbolic mode such as V(u=rwx,g=rx,o=)).
    type: raw
    default: '0755'
  owner:
    description:
      - Owner of the staged binary. Default is the user the module runs as.
    type: str
  group:
    description:
      - Group of the staged binary. Default is the primary group of the user the module runs as.
    type: str
  url_timeout:
    description:
      - Timeout in seconds for connecting to and reading from O(url).
    type: int
    default: 30
  url_headers:
    description:
      - HTTP headers sent with the download from O(url), for example an C(Authorization) or a C(PRIVATE-TOKEN)
        header an artifact server requires. Never logged or returned, also when the dictionary is given as a
        JSON string.
      - Sent only to the origin (scheme, host and port) of O(url). Redirects are followed (at most 10), but a
        redirect to another origin - the signed storage URL an artifact server hands out, or any https to http
        step - gets none of these headers and no basic auth, as curl and Python requests do.
    type: dict
    default: {}
  url_username:
    description:
      - User name for HTTP basic authentication to O(url) (sent with the first request, and never to another
        origin after a redirect).
    type: str
  url_password:
    description:
      - Password for O(url_username). Never logged or returned.
    type: str
  format:
    description:
      - What the artifact is. V(auto) decides from the file name of O(src) or O(url) - C(.tar.gz)/C(.tgz) and C(.zip)
        are archives, anything else a binary.
      - An archive (goreleaser's layout) is checked - its checksum first, then every member (no absolute path, no
        C(..), no link pointing outside, no device file, nothing above O(max_size)) - before anything is written,
        and extracted into the staged release only. O(name) names the executable inside it, whose header is
        checked as for a binary; the other files (licence, docs, default config) stay beside it.
    type: str
    choices: [auto, binary, tar.gz, zip]
    default: auto
  strip_components:
    description:
      - Leading path components removed from every archive member, as C(tar --strip-components) does, for an
        archive that wraps its files in one directory.
    type: int
    default: 0
  max_size:
    description:
      - Largest artifact in bytes - the download from O(url) and the total size of an archive's extracted members.
      - A download stops as soon as it exceeds this (or at once when the server announces a bigger
        C(Content-Length)); the partial file is removed and the task fails, so a wrong URL cannot fill the disk.
        A bigger archive is refused before extraction.
    type: int
    default: 1073741824
extends_documentation_fragment:
  - hotswap.deploy.release
  - hotswap.deploy.release.release_id
  - hotswap.deploy.release.artifact
  - hotswap.deploy.release.content
  - hotswap.deploy.release.lock_owner
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details:
      - Checks the controller-side artifact and the host platform, and reports whether the
        release would be staged; nothing is transferred or written.
      - In pull mode the URL is opened (and closed after the headers) to prove it is reachable; nothing is downloaded.
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
  safe_file_operations:
    description: Writes a temporary file next to the final path, verifies it, and renames it into place.
    support: full
  vault:
    description: Can automatically decrypt Ansible vaulted files.
    support: full
    details:
      - A vault-encrypted O(src) is decrypted on the controller; O(checksum) is the digest of the
        decrypted file.
notes:
  - A password in O(url) and the values of its query parameters whose names look like credentials (signature, sig,
    token, key, pass, pwd, secret, auth, credential, session - for example a pre-signed C(X-Amz-Signature)) are
    used for the download but replaced by C(********) in every message, result and log line.
  - Takes no lock itself. When several plays may deploy to the same O(base_dir) at once, hold the
    deploy lock around it and pass its owner as O(lock_owner), as the roles of this collection do; while
    anyone else holds the lock nothing is written.
  - Linux ELF binaries usually carry the SYSV OS ABI; every ELF with the SYSV or GNU ABI is taken
    to be a Linux binary.
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.get_url
'''

EXAMPLES = r'''
- name: Push a Go binary from the controller
  hotswap.deploy.binary_upload:
    src: dist/myapp-linux-amd64
    checksum: "sha256:{{ myapp_sha256 }}"
    name: myapp
    version: "{{ myapp_version }}"
    base_dir: /opt/myapp
    release_id: "{{ myapp_version }}-{{ myapp_sha256[:12] }}"
    lock_owner: "{{ hotswap_deploy_id }}"
    owner: root
    group: myapp
    mode: '0750'

- name: Let the hosts download it themselves
  hotswap.deploy.binary_upload:
    url: "https://artifacts.example.com/myapp/{{ myapp_version }}/myapp-linux-{{ goarch }}"
    checksum: "sha256:{{ myapp_sha256 }}"
    name: myapp
    version: "{{ myapp_version }}"
    base_dir: /opt/myapp
    release_id: "{{ myapp_version }}-{{ myapp_sha256[:12] }}"

- name: Only check that the release is already staged
  hotswap.deploy.binary_upload:
    checksum: "sha256:{{ myapp_sha256 }}"
    name: myapp
    base_dir: /opt/myapp
    release_id: "{{ release_id }}"
  register: staged_check
  failed_when: staged_check.failed and staged_check.reason | default('') != 'not_staged'
'''

RETURN = r'''
path:
  description: Final path of the binary.
  returned: always
  type: str
  sample: /opt/myapp/releases/1.4.2-0123456789ab/myapp
release_dir:
  description: The release directory.
  returned: always
  type: str
  sample: /opt/myapp/releases/1.4.2-0123456789ab
release_id:
  description: The release id.
  returned: always
  type: str
  sample: 1.4.2-0123456789ab
sha256:
  description: The sha256 the binary has (lower-case hex, from O(checksum)).
  returned: always
  type: str
  sample: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
transferred:
  description:
    - Whether data was copied to the host (push) or downloaded by it (pull) in this run.
    - Always V(false) in check mode and when the release was already staged.
  returned: always
  type: bool
  sample: true
staged:
  description:
    - Whether the binary is at RV(path) with this sha256 at the end of the task.
    - V(false) in check mode when it would be staged, and with RV(reason=not_staged).
  returned: always
  type: bool
  sample: true
ledger_updated:
  description: Whether the ledger entry was (or in check mode would be) written.
  returned: always
  type: bool
  sample: true
host_platform:
  description: OS and CPU architecture of the host, as compared with the binary's header.
  returned: always
  type: dict
  contains:
    os:
      description: C(linux), C(darwin), C(freebsd), ...
      type: str
    arch:
      description: C(x86_64), C(aarch64), C(i386), C(arm), ...
      type: str
  sample: {"os": "linux", "arch": "x86_64"}
executable:
  description: The binary's header as read on the controller (push mode only).
  returned: when src is given and the header was read
  type: dict
  sample: {"format": "elf", "os": "linux", "arch": "x86_64", "bits": 64}
files:
  description: The O(files) destinations staged with the release (never their content).
  returned: when O(files), O(environment) or an archive is given
  type: list
  elements: str
  sample: [config/app.yml]
artifact:
  description: What the artifact was taken for, C(binary), C(tar.gz) or C(zip).
  returned: when O(files), O(environment) or an archive is given
  type: str
  sample: tar.gz
copied_from:
  description: The release whose identical artifact was copied on the host instead of transferred, or null.
  returned: when the release was staged with O(files), O(environment) or an archive
  type: str
  sample: 1.4.2-0123456789ab
reason:
  description:
    - Machine-readable failure reason. V(not_staged) means verify-only mode found no staged
      release (nothing was changed); other failures have no reason.
  returned: when verify-only mode finds no staged release
  type: str
  sample: not_staged
'''

from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import UPLOAD_MUTUALLY_EXCLUSIVE, UPLOAD_SPEC, run_upload
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.redact import RedactingModule


def main():
    module = RedactingModule(argument_spec=UPLOAD_SPEC, secret_dicts=['url_headers'],
                             mutually_exclusive=UPLOAD_MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    try:
        result = run_upload(module, module.params, module.check_mode)
    except HotswapError as e:
        module.fail_json(msg=e.msg, **e.details)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
