# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The HTML report of the hotswap.deploy.rollout callback as a browser renders it: the DOM headless Chromium
dumps, and what a test checks of it against the JSON data beside the report."""

from __future__ import annotations

import html.parser
import shutil
import subprocess

BROWSERS = ('chromium', 'chromium-browser', 'google-chrome', 'headless_shell')


def browser():
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def chromium_dom(path, timeout=60):
    """The DOM of the report file at ``path`` after headless Chromium loaded it, serialised. No network: the
    report needs none, and a request it made would fail the page."""
    argv = [browser(), '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
            '--proxy-server=127.0.0.1:9', '--proxy-bypass-list=<-loopback>', '--dump-dom', 'file://' + path]
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout,
                          universal_newlines=True).stdout


class _Elements(html.parser.HTMLParser):
    def __init__(self):
        super(_Elements, self).__init__()
        self.elements = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def _find(elements, tag, cls=None, **attrs):
    return [a for t, a in elements if t == tag and (cls is None or cls in (a.get('class') or '').split())
            and all(a.get(k.replace('_', '-')) == str(v) for k, v in attrs.items())]


def report_problems(dom, data):
    """What is wrong with the report ``dom`` (HTML text) for its ``data`` (the JSON file): [] when every batch
    and host has its timeline row and table row with its verdict class, the timeline draws bars, and the page
    loads nothing from elsewhere.

    Looked for: svg#timeline; per batch g.batch-row[data-batch] and tr.batch[data-batch] with class
    v-<verdict>; per host g.host-row[data-host] and tr.host[data-host] with class v-<class>; rect.bar with a
    width; tables #batches and #hosts; no script, link, iframe or img, no src or href."""
    parser = _Elements()
    parser.feed(dom)
    els, problems = parser.elements, []
    if not _find(els, 'svg', id='timeline'):
        problems.append('no svg#timeline')
    for table in ('batches', 'hosts'):
        if not _find(els, 'table', id=table):
            problems.append('no table#%s' % table)
    for batch in data['batches']:
        cls = 'v-' + _verdict_class(batch['verdict'])
        for tag, kind in (('g', 'batch-row'), ('tr', 'batch')):
            if not _find(els, tag, kind, data_batch=batch['number']):
                problems.append('batch %s: no %s.%s' % (batch['number'], tag, kind))
            elif not _find(els, tag, cls, data_batch=batch['number']):
                problems.append('batch %s: %s.%s is not %s' % (batch['number'], tag, kind, cls))
    for host in data['hosts']:
        cls = 'v-' + host['class']
        for tag, kind in (('g', 'host-row'), ('tr', 'host')):
            if not _find(els, tag, kind, data_host=host['host']):
                problems.append('host %s: no %s.%s' % (host['host'], tag, kind))
            elif not _find(els, tag, cls, data_host=host['host']):
                problems.append('host %s: %s.%s is not %s' % (host['host'], tag, kind, cls))
    bars = _find(els, 'rect', 'bar')
    if data['hosts'] and not any(float(b.get('width') or 0) > 0 for b in bars):
        problems.append('the timeline draws no bar')
    if any(t in ('script', 'link', 'iframe', 'img') or 'src' in a or 'href' in a for t, a in els):
        problems.append('the page loads something')
    return problems


def _verdict_class(verdict):
    # The batch verdicts are the canary's words, or the callback's for a batch no canary judged.
    return verdict if verdict in ('pass', 'fail', 'inconclusive', 'skipped') else 'unknown'
