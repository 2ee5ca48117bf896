# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""scripts/docs_guides.py: which links of a guide it finds and how it rewrites them for the site."""

from __future__ import annotations

import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load():
    spec = importlib.util.spec_from_file_location('hotswap_docs_guides', os.path.join(REPO, 'scripts', 'docs_guides.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


guides = _load()


def _targets(text):
    return [(text[offset + m.start():offset + m.end()], m.group('target')) for offset, m in guides.links(text)]


def test_a_code_span_over_a_line_break_does_not_hide_the_link_after_it():
    # The stop-30 CI failure: the span of line 1 ends on line 2, so a per-line scan took the
    # backtick after it for the start of a span and skipped the link.
    text = 'Run `make bench BENCH_ARGS="--sections deploy\n--out x.json"` ([`results/a.md`](../r/a.md); one\n'
    assert _targets(text) == [('[`results/a.md`](../r/a.md)', '../r/a.md')]


def test_links_inside_code_spans_and_fences_are_left_alone():
    text = ('a `[no](n.md)` [yes](y.md)\n\n```\n[fenced](f.md)\n```\n'
            'b `span\n[still code](c.md)` [after](a.md)\n')
    assert [t for dummy, t in _targets(text)] == ['y.md', 'a.md']


def test_a_span_does_not_run_over_a_paragraph_break():
    text = 'one ` unclosed\n\n[two](t.md)\n'
    assert [t for dummy, t in _targets(text)] == ['t.md']


def test_rewrite_points_at_the_site_and_makes_other_files_plain_text():
    plain = []
    text = 'see [bench](../benchmarks/deploy/results/fifty-hosts.md) and [play](../playbooks/deploy.yml)\n'
    out = guides.rewrite('docs/benchmarks.md', text, {'benchmarks/deploy/results/fifty-hosts.md'}, plain)
    assert out == 'see [bench](../project/benchmarks/deploy/results/fifty-hosts.md) and play\n'
    assert plain == ['docs/benchmarks.md: ../playbooks/deploy.yml']


def test_every_guide_link_the_site_builds_from_is_found():
    # Every Markdown link to a results file in docs/benchmarks.md is rewritten (none left for
    # Sphinx to refuse).
    with open(os.path.join(REPO, 'docs', 'benchmarks.md'), encoding='utf-8') as f:
        text = f.read()
    found = {t for dummy, t in _targets(text)}
    assert '../benchmarks/deploy/results/fifty-hosts.md' in found
    assert '../benchmarks/deploy/results/latest.md' in found
