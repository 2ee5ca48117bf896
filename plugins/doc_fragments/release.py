# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations


class ModuleDocFragment(object):
    # Options shared by every module that works on a release tree.
    DOCUMENTATION = r'''
options:
  base_dir:
    description:
      - Absolute path of the application's deploy root on the host, for example C(/opt/myapp).
      - Holds C(releases/), the C(current) symlink and C(.hotswap/) (ledger and lock).
    type: path
    required: true
'''

    # The release id, on Linux (release tree) and Windows (win_binary_swap) alike.
    RELEASE_ID = r'''
options:
  release_id:
    description:
      - Id of the release, the key of its entry in the ledger. In a release tree it is the name of the
        release directory C(<base_dir>/releases/<release_id>); on Windows it names the copies of the exe
        kept beside the live one (C(<path>.old-<release_id>), C(<path>.failed-<release_id>)).
      - Computed once on the controller (for example C(<version>-<first 12 hex of sha256>)) so
        every host and every batch gets the same id.
      - Must be non-empty and at most 128 characters, must not contain C(/), C(\) or C(..), must not
        start with C(.), and may only use letters, digits, C(.), C(_), C(+) and C(-).
    type: str
    required: true
'''

    # The deploy lock a module that writes the release tree runs under (module_utils/lock.py check_holder).
    LOCK_OWNER = r'''
options:
  lock_owner:
    description:
      - The I(owner) of the deploy lock (M(hotswap.deploy.deploy_lock)) this task runs under. The roles of this
        collection pass theirs.
      - When C(<base_dir>/.hotswap/lock) is held by anyone else, or is unreadable, the task fails before writing
        anything, naming the holder and the fix. Given while no lock is there, it fails too - the lock was removed
        under the deploy.
      - Not given, the task runs only while no lock is held (a run without a lock, as before this option).
      - Not checked in check mode, which writes nothing.
    type: str
    version_added: 0.6.0
'''

    # The binary a module puts on a host: what it is (checksum, version) and where the host may
    # download it from itself (url, validate_certs). Every module using it also has a src option.
    ARTIFACT = r'''
options:
  checksum:
    description:
      - Expected digest of the binary, as C(sha256:<64 hex digits>) (upper- or lower-case hex, as
        C(sha256sum) or C(Get-FileHash) print it).
      - Other algorithms are refused.
      - The ledger refuses a O(release_id) it already knows with another sha256.
    type: str
    required: true
  version:
    description:
      - Version of the binary, recorded in the ledger (informational).
    type: str
  url:
    description:
      - C(http://) or C(https://) URL the host downloads the binary from (pull mode).
      - Mutually exclusive with O(src).
    type: str
  validate_certs:
    description:
      - Validate the TLS certificate of every C(https://) URL the host opens for the task, such as O(url).
      - Only set this to V(false) on networks you control.
    type: bool
    default: true
'''

    # What a release holds besides its artifact: release_plan computes the id over it, binary_upload writes it.
    CONTENT = r'''
options:
  files:
    description:
      - Files kept in the release directory beside the binary, usually its config. They are part of the
        release - its id covers them - so a change to one is a new release, and a rollback brings the old
        files back byte for byte.
      - Written once, when the release is staged; never into a release that exists already.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description:
          - Path of the file inside the release directory, for example C(config/app.yml). Relative, no C(..),
            not the binary's name and not C(.hotswap-environment). Read it through C(<base_dir>/current/<dest>).
        type: str
        required: true
      src:
        description:
          - A file on the controller (searched like M(ansible.builtin.copy) searches, vault-encrypted files
            are decrypted). Mutually exclusive with O(files[].content).
        type: path
      content:
        description:
          - The content of the file. Never shown in any output when O(files[].secret=true).
        type: str
      content_encoding:
        description:
          - V(base64) when O(files[].content) is base64 (binary data). The action plugins use it to send O(files[].src).
        type: str
        choices: [text, base64]
        default: text
      owner:
        description:
          - Owner of the file; it must exist on the host. Default the user the module runs as.
        type: str
      group:
        description:
          - Group of the file; it must exist on the host. Default the primary group of that user.
        type: str
      mode:
        description:
          - Octal mode, quoted (V('0640')). Default V('0644'), V('0600') for a secret file.
        type: raw
      secret:
        description:
          - The content is secret - it is never logged or returned, and it enters the release id and the
            ledger only through a salted PBKDF2 digest.
        type: bool
        default: false
  environment:
    description:
      - Environment variables of the service, written with O(environment_secret) to
        C(<release>/.hotswap-environment), which the unit reads through C(current)
        (C(EnvironmentFile=-<base_dir>/current/.hotswap-environment)); they switch and roll back with the release.
      - A change is a new release and always needs a restart.
    type: dict
    default: {}
  environment_secret:
    description:
      - Like O(environment), for values that must never be logged or returned (tokens, passwords).
        The environment file is mode C(0600), owned by the module's user (systemd reads it as root).
    type: dict
    default: {}
'''
