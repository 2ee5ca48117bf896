# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The hotswap.deploy.rollout callback on a real two-batch canary rollout: the progress lines while it runs, the
table at the end, and the HTML report rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import re

import pytest

import reportlib
import testlib

APP = 'reported'
PORT = 8088


@pytest.fixture
def hosts(fleet):
    yield fleet
    testlib.remove_app(fleet.hosts, APP)


def test_progress_lines_table_and_html_report_of_a_rollout(hosts, tmp_path):
    if reportlib.browser() is None:
        pytest.fail('no Chromium: scripts/install-deps.sh installs Debian\'s chromium (make test does)')
    names = sorted(h['name'] for h in hosts)
    artifact = testlib.build_app('1.0.0')
    argv = testlib.playbook_argv(hosts.inventory, 'deploy', dict(
        app=APP, listen_port=PORT, version='1.0.0', artifact=artifact, checksum=testlib.sha256(artifact),
        canary_steps=[1, '100%'], canary_bake_time=0), tmp_path=tmp_path)
    env = testlib.ansible_env('ssh')
    env.update(ANSIBLE_CALLBACKS_ENABLED='hotswap.deploy.rollout', HOTSWAP_REPORT_DIR=str(tmp_path / 'report'))
    r = testlib.run_env(argv, env)
    assert r.rc == 0, r

    # While it ran: each batch, each host's verdict, the batch's time.
    assert re.search(r'^Batch 1/2 \(hosts: %s\): deploying$' % names[0], r.out, re.M), r
    assert re.search(r'^Batch 2/2 \(hosts: %s\): deploying$' % names[1], r.out, re.M), r
    for name in names:
        assert re.search(r'^%s: deployed 1\.0\.0 \([\d.]+ s, verdict pass\)$' % name, r.out, re.M), r
    assert len(re.findall(r'^Batch [12] passed in [\d.]+ s$', r.out, re.M)) == 2, r
    # At the end, one row per host.
    table = r.out[r.out.index('Rollout summary'):]
    assert all(re.search(r'^\s*%s\s' % name, table, re.M) for name in names), r

    # The report, as a browser shows it: every batch and host with its verdict, bars on the timeline, nothing
    # loaded from elsewhere.
    html = re.search(r'^Rollout report: (\S+\.html)$', r.out, re.M).group(1)
    with open(html[:-len('.html')] + '.json') as f:
        data = json.load(f)
    assert [b['verdict'] for b in data['batches']] == ['pass', 'pass'], data
    assert sorted(h['host'] for h in data['hosts']) == names, data
    dom = reportlib.chromium_dom(html)
    assert reportlib.report_problems(dom, data) == [], dom[:2000]
    assert os.path.dirname(html) == str(tmp_path / 'report')
