# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

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
