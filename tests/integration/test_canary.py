# -*- coding: utf-8 -*-
"""Canary rollouts of deploy.yml over five real hosts: batches, analysis, gate, automatic rollback.

Each test uses its own app (own base_dir, units and port 8080 inside the hosts, published on
127.0.0.1) and removes it at the end.
"""

from __future__ import annotations

import json
import os
import time

import pytest

import testlib


PORT = 8080
RESULTS = testlib.RESULTS
# Per request: 1 s bake, short readiness so a broken release fails fast.
QUICK = dict(canary_bake_time=1, ready_timeout=10, drain_timeout=10, listen_port=PORT, service_type='notify')


@pytest.fixture
def canary_app(request, fleet5):
    app = 'cn' + request.node.name.split('[')[0].replace('test_', '').replace('_', '')[:10]
    yield fleet5, app
    testlib.remove_app(fleet5, app)


def deploy(hosts, app, version, fault='', tmp_path=None, **extra):
    artifact = testlib.build_app(version, fault=fault)
    v = dict(QUICK, app=app, version=version, artifact=artifact, checksum=testlib.sha256(artifact))
    v.update(extra)
    return testlib.playbook(hosts.inventory, 'deploy', v, tmp_path=tmp_path)


def release_dirs(host, app):
    return sorted(testlib.host_sh(host, 'ls /opt/%s/releases 2>/dev/null || true' % app, check=False).split())


def ledger_states(host, app):
    out = testlib.host_sh(host, 'cat /opt/%s/.hotswap/ledger.json' % app, check=False)
    return dict((rid, e['state']) for rid, e in json.loads(out)['releases'].items())


def start_load(hosts, rate=150):
    return testlib.start_load(hosts, PORT, rate, keepalive=False)


def finish_load(probe, name):
    return testlib.brief(testlib.finish_load(probe, name))


def test_unhealthy_release_touches_only_the_first_batch(canary_app, tmp_path):
    hosts, app = canary_app
    r = deploy(hosts, app, '1.0.0', tmp_path=tmp_path, canary_steps=['100%'])
    assert r.rc == 0, r
    before = dict((h['name'], testlib.tree_state(h, '/opt/' + app, app)) for h in hosts)

    probe = start_load(hosts)
    time.sleep(1)
    r = deploy(hosts, app, '3.0.0', fault='unhealthy', tmp_path=tmp_path)  # default steps [1, 25%, 100%]
    time.sleep(1)
    s = finish_load(probe, 'canary-unhealthy')

    assert r.rc != 0, r
    assert s['sent'] > 500 and s['failed'] == 0, s
    first, rest = hosts.hosts[0], hosts.hosts[1:]
    assert "failed on %s at 'Restart the service on the new release (stage ready)'" % first['name'] in r.out, r
    assert 'Switched back to 1.0.0-' in r.out, r
    # Only the first batch ran: the other hosts were never in a batch.
    assert set(r.recap) == {first['name'], 'localhost'}, r.recap
    assert testlib.served_version(first, PORT) == '1.0.0'
    states = ledger_states(first, app)
    assert sorted(states.values()) == ['active', 'failed'], states
    for host in rest:
        assert testlib.tree_state(host, '/opt/' + app, app) == before[host['name']], host['name']
        assert testlib.served_version(host, PORT) == '1.0.0'


def test_metric_analysis_failure_rolls_the_batch_back(canary_app, tmp_path):
    """A release that passes its health checks but serves errors: the metric catches it."""
    hosts, app = canary_app
    r = deploy(hosts, app, '1.0.0', tmp_path=tmp_path, canary_steps=['100%'])
    assert r.rc == 0, r
    metrics = dict(url='http://127.0.0.1:%d/stats' % PORT, query='error_rate', threshold=0.05, comparison='<=',
                   count=3, interval=1)
    # Traffic during the bake gives the new process something to count.
    probe = start_load(hosts, rate=100)
    r = deploy(hosts, app, '4.0.0', fault='errors', tmp_path=tmp_path, canary_steps=[2, '100%'],
               canary_bake_time=3, canary_metrics=metrics)
    finish_load(probe, 'canary-metric-errors')
    assert r.rc != 0, r
    batch, rest = hosts.hosts[:2], hosts.hosts[2:]
    assert 'stopped at batch 1 (%s)' % ', '.join(h['name'] for h in batch) in r.out, r
    assert 'analysis fail - metric fail' in r.out, r
    assert 'Not touched: %s' % ', '.join(h['name'] for h in rest) in r.out, r
    for host in batch:
        assert testlib.served_version(host, PORT) == '1.0.0', host['name']
        states = ledger_states(host, app)
        assert [rid for rid, st in states.items() if st == 'failed'] == [next(x for x in states if x.startswith('4.0.0'))]
    for host in rest:
        assert release_dirs(host, app) == [next(x for x in release_dirs(hosts.hosts[0], app) if x.startswith('1.0.0'))]


def test_gate_approve_goes_on_abort_rolls_back_and_stop_after_ends_early(canary_app, tmp_path):
    hosts, app = canary_app
    gate = str(tmp_path / 'gate')
    common = dict(canary_steps=[1, '100%'], canary_manual_gate=True, canary_gate_file=gate, canary_gate_timeout=60)
    # stop_after 1: only the first host, play succeeds.
    r = deploy(hosts, app, '1.0.0', tmp_path=tmp_path, canary_stop_after=1,
               **common)
    assert r.rc == 0, r
    assert [testlib.served_version(h, PORT) for h in hosts] == ['1.0.0'] + [None] * 4

    # Approved in advance: the gate takes the answer and removes it.
    with open(gate, 'w') as f:
        f.write('approve\n')
    r = deploy(hosts, app, '1.0.0', tmp_path=tmp_path, **common)
    assert r.rc == 0, r
    assert not os.path.exists(gate)
    assert [testlib.served_version(h, PORT) for h in hosts] == ['1.0.0'] * 5

    with open(gate, 'w') as f:
        f.write('abort\n')
    r = deploy(hosts, app, '2.0.0', tmp_path=tmp_path, **common)
    assert r.rc != 0, r
    assert 'manual gate: aborted' in r.out, r
    assert [testlib.served_version(h, PORT) for h in hosts] == ['1.0.0'] * 5


@pytest.mark.parametrize('bad, says', [
    (dict(canary_steps=[]), 'canary_steps must be a non-empty list'),
    (dict(canary_steps=[1, 0]), 'canary_steps must be a non-empty list'),
    (dict(canary_steps=[-1]), 'canary_steps must be a non-empty list'),
    (dict(canary_steps=['0%']), 'canary_steps must be a non-empty list'),
    (dict(canary_metrics=dict(url='http://127.0.0.1:8080/stats', query='error_rate[', threshold=0.1)), 'JMESPath'),
    (dict(canary_metrics=dict(url='http://127.0.0.1:8080/stats', query='error_rate', threshold='abc')),
     'threshold must be a number'),
    (dict(rollout='rainbow'), 'rollout is canary (the default) or blue_green, got rollout=rainbow'),
])
def test_bad_input_fails_before_any_host_changes(bad, says, canary_app, tmp_path):
    hosts, app = canary_app
    before = [testlib.tree_state(h, '/opt/' + app, app) for h in hosts]
    r = deploy(hosts, app, '1.0.0', tmp_path=tmp_path, **bad)
    assert r.rc != 0, r
    assert says in r.out, r
    assert set(r.recap) == {'localhost'}, r.recap
    assert [testlib.tree_state(h, '/opt/' + app, app) for h in hosts] == before
