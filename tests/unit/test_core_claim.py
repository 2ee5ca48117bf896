# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""meta/runtime.yml claims exactly the ansible-core releases make test runs: the matrix's (scripts/core-matrix.sh)
and the dev venv's (requirements-dev.txt)."""

from __future__ import annotations

import os
import re

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


def minors(low, high):
    """The minor releases from ``low`` (inclusive) to ``high`` (exclusive), as '2.16', ..."""
    (major, lo), (_major, hi) = [tuple(int(p) for p in v.split('.')[:2]) for v in (low, high)]
    return ['%d.%d' % (major, m) for m in range(lo, hi)]


def claimed():
    claim = yaml.safe_load(read('meta', 'runtime.yml'))['requires_ansible']
    m = re.fullmatch(r'>=(\d+\.\d+)\.0,<(\d+\.\d+)\.0', claim)
    assert m, 'requires_ansible should be ">=X.Y.0,<X.Z.0", a range of minor releases: %r' % claim
    return minors(m.group(1), m.group(2))


def matrix():
    return re.search(r'versions=\(([\d. ]+)\)', read('scripts', 'core-matrix.sh')).group(1).split()


def dev_venv():
    m = re.search(r'^ansible-core>=(\d+\.\d+),<(\d+\.\d+)$', read('requirements-dev.txt'), re.M)
    return minors(m.group(1), m.group(2))


def test_the_claim_is_what_make_test_runs():
    assert sorted(matrix() + dev_venv(), key=lambda v: tuple(map(int, v.split('.')))) == claimed()
    assert claimed()[0] == '2.16' and dev_venv() == [claimed()[-1]]


def make_var(makefile, name):
    """A simple make variable's words, one level of $(VAR) references expanded."""
    words = re.search(r'^%s\s*:=(.*)$' % name, makefile, re.M).group(1).split()
    return sum((make_var(makefile, w[2:-1]) if w.startswith('$(') else [w] for w in words), [])


def test_make_test_runs_the_matrix():
    makefile = read('Makefile')
    test_target = re.search(r'^test:.*?(?=^\S)', makefile, re.M | re.S).group(0)
    assert 'static-checks' in test_target
    assert re.search(r'^static-checks: lane-1 lane-2$', makefile, re.M)
    assert re.search(r'^core-matrix: core-unit core-sanity$', makefile, re.M)
    lanes = make_var(makefile, 'LANE_1') + make_var(makefile, 'LANE_2')
    assert sorted(make_var(makefile, 'STATIC_CHECKS')) == sorted(lanes)
    assert {'core-unit', 'sanity'} <= set(lanes)
    assert sorted(c for c in lanes if c.startswith('core-sanity-')) == ['core-sanity-' + v for v in matrix()]
    # The set-up makes every release's venv (test_oldest_core deploys with the oldest).
    venvs = re.search(r'^core-venvs:(.*)$', makefile, re.M).group(1).split()
    assert venvs == ['core-venv-' + v for v in matrix()] and 'core-venvs' in test_target
