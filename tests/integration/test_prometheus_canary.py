# -*- coding: utf-8 -*-
"""Canary analysis against a real Prometheus (Debian's) that scrapes the demo app on five hosts.

The Prometheus host shares the machine's network namespace (tests/integration/promlib.py): it scrapes
each app host's published 127.0.0.1 port every second, with the label host=<inventory name>, and the
canary queries it from the controller. Load goes to every host during each rollout, so the demo app's
/metrics (requests by code and version, a latency histogram) has something to count.
"""

from __future__ import annotations

import os
import re

import pytest

import promlib
import testhosts
import testlib

PORT = 8080
# The batch's (or the baseline's) error ratio per host, over 5 s. A host with no 5xx at all has no 5xx series:
# "or ... * 0" gives it a ratio of 0 instead of no data.
ERROR_RATIO = (
    '(sum by (host) (rate(hotswap_http_requests_total{host=~"$hosts",code=~"5.."}[5s]))'
    ' or sum by (host) (rate(hotswap_http_requests_total{host=~"$hosts"}[5s])) * 0)'
    ' / sum by (host) (rate(hotswap_http_requests_total{host=~"$hosts"}[5s]))')
P99 = ('histogram_quantile(0.99, sum by (le, host) '
       '(rate(hotswap_http_request_duration_seconds_bucket{host=~"$hosts"}[5s])))')
QUICK = dict(ready_timeout=10, drain_timeout=10, listen_port=PORT, service_type='notify',
             canary_prometheus_label='host', canary_prometheus_instance='{{ inventory_hostname }}')


@pytest.fixture(scope='module')
def prom(fleet5):
    prefix = 'hs-itprom-%d' % os.getpid()
    try:
        host = promlib.start(prefix)
        url = promlib.configure(host, dict((h['name'], '127.0.0.1:%d' % h['ports'][PORT]) for h in fleet5),
                                wait_up=False)
        yield url
    finally:
        promlib.stop(prefix)


@pytest.fixture(scope='module')
def prom_app(fleet5, prom):
    """One app for the tests below; what one test leaves, the next may start from (first_release)."""
    yield fleet5, 'pmapp', prom
    testlib.remove_app(fleet5, 'pmapp')


def metric(name, query, address, **extra):
    m = dict(name=name, address=address, query=query, count=2, interval=1)
    m.update(extra)
    return m


def deploy(hosts, app, version, fault='', tmp_path=None, inventory=None, **extra):
    artifact = testlib.build_app(version, fault=fault)
    v = dict(QUICK, app=app, version=version, artifact=artifact, checksum=testlib.sha256(artifact))
    v.update(extra)
    return testlib.playbook(inventory or hosts.inventory, 'deploy', v, tmp_path=tmp_path)


def first_release(hosts, app, tmp_path):
    """1.0.0 on every host. The test before may have left exactly that (the tests are in that order, and each
    ends on 1.0.0 everywhere but the last two): then it is not deployed again; else the app goes and 1.0.0 is
    deployed."""
    if not testlib.serves_release(hosts, app, PORT, '1.0.0', testlib.build_app('1.0.0')):
        testlib.remove_app(hosts, app)
        r = deploy(hosts, app, '1.0.0', tmp_path=tmp_path, canary_steps=['100%'], canary_bake_time=0)
        assert r.rc == 0, r


def start_load(hosts, rate=100, path='/'):
    return testlib.start_load(hosts, PORT, rate, keepalive=True, path=path)


def versions(hosts):
    return [testlib.served_version(h, PORT) for h in hosts]


def keep_summary(name, *results):
    """The rollouts' metric lines in build/test-results/<name>.txt: what each metric measured, to read after a run."""
    lines = []
    for r in results:
        lines += [line.strip() for line in r.out.splitlines() if 'Metrics:' in line or '"msg": "Batch ' in line]
    os.makedirs(testlib.RESULTS, exist_ok=True)
    with open(os.path.join(testlib.RESULTS, '%s.txt' % name), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def measured(out, name):
    """The measurements of metric `name` in the rollout's summary line: ``name verdict [m1, m2]``."""
    found = re.findall(r'%s (pass|fail|inconclusive|skipped) \[([^\]]*)\]' % re.escape(name), out)
    assert found, (name, out[-3000:])
    return found[-1][0], [m.strip() for m in found[-1][1].split(',') if m.strip()]


def test_error_ratio_and_p99_stop_a_bad_release_at_batch_1(prom_app, tmp_path):
    """Two metrics; the batch passes only when both do. Errors are caught by the error ratio while the bake has
    barely begun (background analysis), a slower release by the p99 after its bake."""
    hosts, app, address = prom_app
    first_release(hosts, app, tmp_path)
    metrics = [metric('error-ratio', ERROR_RATIO, address, threshold=0.05, background=True),
               metric('p99', P99, address, threshold=0.2)]
    probe = start_load(hosts)
    try:
        # A 60 s bake: the background error ratio stops it at its first failing measurement.
        r = deploy(hosts, app, '2.0.0', fault='errors', tmp_path=tmp_path, canary_steps=[1, '100%'],
                   canary_bake_time=60, canary_metrics=metrics)
        keep_summary('prom-errors-release', r)
        errors_out = r.out
        assert r.rc != 0, r
        assert 'stopped at batch 1 (%s)' % hosts.hosts[0]['name'] in r.out, r
        assert 'metric error-ratio fail' in r.out, r
        verdict, taken = measured(r.out, 'error-ratio')
        assert verdict == 'fail' and len(taken) < 20, taken     # every second for 60 s would be about 60
        assert versions(hosts) == ['1.0.0'] * 5

        # Healthy and error-free, only slower: the p99 fails after a 6 s bake, the error ratio passes.
        r = deploy(hosts, app, '3.0.0', fault='slow', tmp_path=tmp_path, canary_steps=[1, '100%'],
                   canary_bake_time=6, canary_metrics=metrics)
    finally:
        s = testlib.brief(testlib.finish_load(probe, 'prom-bad-release'))
    keep_summary('prom-bad-release', r)
    assert r.rc != 0, r
    assert 'metric p99 fail' in r.out, r
    assert measured(r.out, 'error-ratio')[0] == 'pass', r
    verdict, taken = measured(r.out, 'p99')
    assert verdict == 'fail' and float(taken[0].split()[0]) > 0.2, taken
    assert versions(hosts) == ['1.0.0'] * 5
    assert s['sent'] > 500, s
    assert 'stopped at batch 1' in errors_out


def test_a_metric_that_cannot_be_measured_is_inconclusive_and_stops_the_batch(prom_app, tmp_path):
    """Prometheus unreachable, a query with a syntax error, a query with no series: each is inconclusive with
    its reason (never a pass), and an inconclusive batch is switched back when no manual gate waits."""
    hosts, app, address = prom_app
    first_release(hosts, app, tmp_path)
    closed = 'http://127.0.0.1:%d' % testhosts._free_port()
    metrics = [metric('unreachable', ERROR_RATIO, closed, threshold=0.05, consecutive_error_limit=1, interval=0.5),
               metric('syntax', 'sum(rate(hotswap_http_requests_total{host=~"$hosts"}[5s])', address, threshold=1),
               metric('no-series', 'hotswap_no_such_metric{host=~"$hosts"}', address, threshold=1, interval=0.5)]
    probe = start_load(hosts)
    try:
        r = deploy(hosts, app, '2.0.0', tmp_path=tmp_path, canary_steps=[1, '100%'], canary_bake_time=2,
                   canary_metrics=metrics)
    finally:
        testlib.finish_load(probe, 'prom-inconclusive')
    keep_summary('prom-inconclusive', r)
    assert r.rc != 0, r
    assert 'stopped at batch 1' in r.out, r
    assert 'metric unreachable inconclusive' in r.out and 'connection refused' in r.out, r
    assert 'metric syntax inconclusive' in r.out and 'bad_data' in r.out, r
    # One measurement: a syntax error does not go away by asking again.
    assert measured(r.out, 'syntax') == ('inconclusive', ['error']), r
    assert 'metric no-series inconclusive' in r.out and 'no data for the batch' in r.out, r
    assert versions(hosts) == ['1.0.0'] * 5


def test_fleet_wide_incident_passes_the_baseline_metric_and_fails_a_fixed_threshold(prom_app, tmp_path):
    """40 % of the load goes to /fail (503 on every host and release: a dependency down for the whole fleet)
    while a good release rolls out. The canary's error ratio is the baseline's, so the metric against the
    baseline passes; a fixed 5 % threshold fails the same healthy canary."""
    hosts, app, address = prom_app
    first_release(hosts, app, tmp_path)
    against_baseline = metric('vs-baseline', ERROR_RATIO, address, baseline={'factor': 1.5, 'offset': 0.01})
    fixed = metric('fixed', ERROR_RATIO, address, threshold=0.05)
    good, bad = start_load(hosts, rate=60), start_load(hosts, rate=40, path='/fail')
    try:
        r = deploy(hosts, app, '2.0.0', tmp_path=tmp_path, canary_steps=[1, '100%'], canary_bake_time=6,
                   canary_metrics=[against_baseline, fixed])
        both = r
        # Against the baseline only: batch 1 passes; batch 2 has no host left on 1.0.0 to compare with and no
        # threshold, so that metric is not measured there.
        r = deploy(hosts, app, '3.0.0', tmp_path=tmp_path, canary_steps=[1, '100%'], canary_bake_time=6,
                   canary_metrics=[against_baseline])
    finally:
        testlib.finish_load(good, 'prom-incident-good')
        s = testlib.brief(testlib.finish_load(bad, 'prom-incident-fail'))
    keep_summary('prom-incident', both, r)
    assert s['sent'] > 200, s
    assert both.rc != 0, both
    assert 'metric fixed fail' in both.out, both
    verdict, taken = measured(both.out, 'vs-baseline')
    assert verdict == 'pass' and all('vs limit' in m for m in taken), taken
    assert measured(both.out, 'fixed')[0] == 'fail', both

    assert r.rc == 0, r
    assert versions(hosts) == ['3.0.0'] * 5
    assert 'vs-baseline pass' in r.out and 'vs-baseline skipped' in r.out, r


def with_fault_on(hosts, names, path, fault):
    """The fleet's inventory with HOTSWAP_FAULT=<fault> in the service environment of `names`: a release
    that misbehaves only on some hosts (their own configuration)."""
    with open(hosts.inventory) as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        out.append(line)
        if line.strip().rstrip(':') in names and line.startswith('        ') and not line.startswith('         '):
            out.append('          environment: {HOTSWAP_FAULT: %s}' % fault)
    with open(path, 'w') as f:
        f.write('\n'.join(out) + '\n')
    return path


def test_third_batch_fails_rollout_sends_every_host_back_batch_only_the_third(prom_app, tmp_path):
    hosts, app, address = prom_app
    first_release(hosts, app, tmp_path)
    names = [h['name'] for h in hosts]
    # Steps 1, 1, rest: the third batch (hosts 3-5) is where the release is slow.
    inventory = with_fault_on(hosts, names[2:], str(tmp_path / 'inventory.yml'), 'slow')
    common = dict(canary_steps=[1, 1, '100%'], canary_bake_time=5, inventory=inventory,
                  canary_metrics=[metric('p99', P99, address, threshold=0.2)])
    probe = start_load(hosts)
    try:
        rollout = deploy(hosts, app, '2.0.0', tmp_path=tmp_path, **common)
        after_rollout = versions(hosts)
        batch = deploy(hosts, app, '3.0.0', tmp_path=tmp_path, canary_abort='batch', **common)
        after_batch = versions(hosts)
    finally:
        s = testlib.brief(testlib.finish_load(probe, 'prom-third-batch'))
    keep_summary('prom-third-batch', rollout, batch)
    assert s['sent'] > 1000 and s['failed'] == 0, s

    assert rollout.rc != 0, rollout
    assert 'stopped at batch 3 (%s)' % ', '.join(names[2:]) in rollout.out, rollout
    assert 'canary_abort is rollout' in rollout.out, rollout
    assert 'Batch 3 switched back to the previous release: %s.' % ', '.join(names[2:]) in rollout.out, rollout
    assert 'Earlier batches switched back: %s.' % ', '.join(names[:2]) in rollout.out, rollout
    assert after_rollout == ['1.0.0'] * 5

    assert batch.rc != 0, batch
    assert 'stopped at batch 3' in batch.out, batch
    assert 'Earlier batches keep 3.0.0: %s.' % ', '.join(names[:2]) in batch.out, batch
    assert after_batch == ['3.0.0'] * 2 + ['1.0.0'] * 3
