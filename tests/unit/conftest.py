# -*- coding: utf-8 -*-
"""Make ``ansible_collections.hotswap.deploy`` importable from this checkout."""

from __future__ import annotations

import os
import socket
import sys

import pytest

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


@pytest.fixture
def closed_port():
    """A 127.0.0.1 port nothing listens on: bound, never listened, closed. Connects are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
