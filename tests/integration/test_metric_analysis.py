# -*- coding: utf-8 -*-
"""metric_analysis on a real host against the demo app's /stats.

The demo app runs as a transient unit on the first host; the module runs there and reads
http://127.0.0.1:<port>/stats. The app's own request counter shows what the module sent.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import testlib

APPS = {  # unit name -> (port inside the host, build fault)
    'hsmetric-ok': (9701, ''),
    'hsmetric-err': (9702, 'errors'),
}


def start_app(host, unit, port, fault):
    binary = testlib.build_app('7.1.0', fault=fault)
    target = '/opt/%s/hotswap-demo' % unit
    testlib.host_sh(host, 'mkdir -p /opt/%s' % unit)
    subprocess.run(['podman', 'cp', binary, '%s:%s' % (host['container'], target)], check=True)
    testlib.host_sh(host, 'systemd-run --unit=%s --collect %s --listen 127.0.0.1:%d' % (unit, target, port))
    for _attempt in range(100):
        if testlib.host_sh(host, 'curl -fsS --max-time 2 -o /dev/null http://127.0.0.1:%d/healthz && echo up'
                           % port, check=False).strip() == 'up':
            return
        time.sleep(0.1)
    raise AssertionError('%s did not answer on port %d: %s' % (
        unit, port, testlib.host_sh(host, 'journalctl -u %s --no-pager | tail -20' % unit, check=False)))


@pytest.fixture(scope='module')
def apps(fleet):
    """The demo app (healthy, and built with the errors fault) on the first host; yields the host."""
    host = fleet.hosts[0]
    try:
        for unit, (port, fault) in APPS.items():
            start_app(host, unit, port, fault)
        yield host
    finally:
        for unit in APPS:
            testlib.host_sh(host, 'systemctl stop %s; rm -rf /opt/%s' % (unit, unit), check=False)


def stats(host, port):
    return json.loads(testlib.host_sh(host, 'curl -fsS --max-time 3 http://127.0.0.1:%d/stats' % port))


def user_traffic(host, port, n):
    testlib.host_sh(host, 'for i in $(seq %d); do curl -sS -o /dev/null --max-time 3 http://127.0.0.1:%d/; done'
                    % (n, port))


def analyse(fleet, host, check=False, **args):
    """Run the module on ``host``; return (Result, the module's JSON result)."""
    r = testlib.adhoc(fleet.inventory, host['name'], 'hotswap.deploy.metric_analysis', args, check=check)
    head, sep, tail = r.out.partition(' => ')
    assert sep, r
    result, _end = json.JSONDecoder().raw_decode(tail)
    return r, result


def test_pass_on_real_stats_and_probes_are_not_counted(fleet, apps):
    port = APPS['hsmetric-ok'][0]
    user_traffic(apps, port, 5)
    before = stats(apps, port)
    assert (before['requests'], before['errors'], before['error_rate']) == (5, 0, 0)
    r, res = analyse(fleet, apps, url='http://127.0.0.1:%d/stats' % port, query='error_rate',
                     threshold='0.01', count=3, interval=0.2)
    assert r.rc == 0, r
    assert res['verdict'] == 'pass' and res['changed'] is False, res
    assert [(m['value'], m['outcome'], m['error']) for m in res['measurements']] == [(0, 'pass', None)] * 3
    assert res['measurements'][0]['at'].endswith('Z')
    assert (res['failures'], res['errors'], res['threshold'], res['comparison']) == (0, 0, 0.01, '<=')
    # Reading /stats is not user traffic.
    assert stats(apps, port)['requests'] == 5


def test_errors_fault_passes_health_but_fails_analysis(fleet, apps):
    port = APPS['hsmetric-err'][0]
    assert testlib.host_sh(apps, 'curl -fsS http://127.0.0.1:%d/healthz' % port).startswith('{"status":"ok"')
    user_traffic(apps, port, 4)
    r, res = analyse(fleet, apps, url='http://127.0.0.1:%d/stats' % port, query='error_rate',
                     threshold=0.01, count=3, interval=0)
    assert r.rc != 0, r
    assert res['verdict'] == 'fail' and len(res['measurements']) == 1, res
    assert res['measurements'][0]['value'] == 1
    assert 'error_rate <= 0.01: fail, 1 measurement(s) failed, more than failure_limit 0' in res['msg'], res


def test_check_mode_sends_no_request(fleet, apps):
    port = APPS['hsmetric-ok'][0]
    # Aimed at / (which the app counts) so that a request would show in /stats.
    counted = dict(url='http://127.0.0.1:%d/' % port, query='error_rate', threshold=0.01, count=2, interval=0)
    before = stats(apps, port)['requests']
    r, res = analyse(fleet, apps, check=True, **counted)
    assert r.rc == 0, r
    assert res['verdict'] == 'skipped' and res['measurements'] == [] and res['changed'] is False, res
    assert stats(apps, port)['requests'] == before
    # The same call outside check mode is seen by the counter (and / is not JSON: measurement errors).
    r, res = analyse(fleet, apps, fail_on='never', **counted)
    assert r.rc == 0, r
    assert res['verdict'] == 'inconclusive' and res['errors'] == 2, res
    assert res['measurements'][0]['error'].startswith('body is not JSON'), res
    assert stats(apps, port)['requests'] == before + 2


@pytest.mark.parametrize('check', [False, True])
@pytest.mark.parametrize('args, words', [
    (dict(query='error_rate <', threshold=0.01),
     ["query 'error_rate <' is not a valid JMESPath expression", 'Fix the expression']),
    (dict(query='error_rate', threshold='abc'),
     ["threshold must be a number, got 'abc'", 'Give a finite number such as 0.05']),
])
def test_bad_query_or_threshold_is_refused_before_any_request(fleet, apps, args, words, check):
    port = APPS['hsmetric-ok'][0]
    before = stats(apps, port)['requests']
    r, res = analyse(fleet, apps, check=check, url='http://127.0.0.1:%d/' % port, **args)
    assert r.rc != 0 and ' | FAILED! => ' in r.out, r
    for word in words:
        assert word in res['msg'], (word, res)
    assert 'verdict' not in res, res
    assert stats(apps, port)['requests'] == before
