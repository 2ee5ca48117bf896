# -*- coding: utf-8 -*-
"""Make ``ansible_collections.hotswap.deploy`` importable from this checkout."""

from __future__ import annotations

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLL_ROOT = os.path.join(REPO_ROOT, 'build', 'unit-collections')
LINK = os.path.join(COLL_ROOT, 'ansible_collections', 'hotswap', 'deploy')

if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    try:
        os.symlink(REPO_ROOT, LINK)
    except FileExistsError:
        pass

if COLL_ROOT not in sys.path:
    sys.path.insert(0, COLL_ROOT)
