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

    RELEASE_ID = r'''
options:
  release_id:
    description:
      - Name of the release directory under C(<base_dir>/releases/).
      - Computed once on the controller (for example C(<version>-<first 12 hex of sha256>)) so
        every host and every batch gets the same id.
      - Must be non-empty, must not contain C(/) or C(..), must not start with C(.), and may only
        use letters, digits, C(.), C(_), C(+) and C(-).
    type: str
    required: true
'''
