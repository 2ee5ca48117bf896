# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The metric_analysis module with ``metrics``: check mode, option rules, secrets, the docs, and a run
against a fake Prometheus server on 127.0.0.1 (answers /api/v1/query like Prometheus 2.x)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


from ansible_collections.hotswap.deploy.plugins.modules import metric_analysis as MODULE

HEADER = 'Bearer metrics-header-s3cr3t'
TOKEN = 'metrics-x-token-s3cr3t'
SECRETS = (HEADER, TOKEN, 's3cr3t')
QUERY = 'sum by (host) (rate(errors_total{host=~"$hosts"}[1m]))'
TS = 1733480000.123


def prometheus_metric(name='errors', address='http://127.0.0.1:9', **over):
    out = dict(name=name, address=address, query=QUERY, threshold=0.05, count=1, interval=0)
    out.update(over)
    return out


def json_metric(name='stats', **over):
    out = dict(name=name, url='http://127.0.0.1:9/stats', query='error_rate', threshold=0.05, count=1, interval=0)
    out.update(over)
    return out


# --------------------------------------------------------------------------- a fake Prometheus

class PromHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        params = parse_qs(parts.query)
        with self.server.lock:
            self.server.requests.append(dict(path=parts.path, query=params.get('query', [None])[0],
                                             time=params.get('time', [None])[0],
                                             authorization=self.headers.get('Authorization')))
            status, doc = self.server.reply(params.get('query', [''])[0], self.headers)
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def vector(**values):
    return 200, {'status': 'success', 'data': {'resultType': 'vector', 'result': [
        {'metric': {'host': host, 'job': 'app'}, 'value': [TS, value]} for host, value in sorted(values.items())]}}


@pytest.fixture
def prometheus():
    srv = ThreadingHTTPServer(('127.0.0.1', 0), PromHandler)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.requests = []
    srv.reply = lambda query, headers: vector(web1='0.01')
    srv.base = 'http://127.0.0.1:%d' % srv.server_address[1]
    thread = threading.Thread(target=srv.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


# --------------------------------------------------------------------------- check mode and option rules

def test_check_mode_is_skipped_with_an_entry_per_metric(run_module, prometheus):
    res = run_module(MODULE, metrics=[prometheus_metric(address=prometheus.base, baseline={'factor': 1.5}),
                                      prometheus_metric('p99', address=prometheus.base, query='p99{host=~"$hosts"}')],
                     hosts=['web.1'], baseline_hosts=['web2'], host_label='host', _ansible_check_mode=True)
    assert 'failed' not in res and res['changed'] is False
    assert res['verdict'] == 'skipped' and prometheus.requests == []
    assert [(m['name'], m['verdict'], m['provider'], m['measurements']) for m in res['metrics']] == [
        ('errors', 'skipped', 'prometheus', []), ('p99', 'skipped', 'prometheus', [])]
    assert res['metrics'][0]['promql'] == 'sum by (host) (rate(errors_total{host=~"web\\\\.1"}[1m]))'
    assert res['metrics'][0]['baseline_promql'] == 'sum by (host) (rate(errors_total{host=~"web2"}[1m]))'
    assert res['metrics'][0]['baseline'] == {'factor': 1.5, 'offset': 0.0}
    assert res['reason'].startswith('errors skipped: check mode') and '; p99 skipped: check mode' in res['reason']


def test_check_mode_json_metric_without_provider(run_module):
    # The module fills every suboption: address is None for a json metric; the provider must still be json.
    res = run_module(MODULE, metrics=[json_metric()], _ansible_check_mode=True)
    assert 'failed' not in res, res.get('msg')
    assert res['metrics'][0]['provider'] == 'json' and res['metrics'][0]['url'] == 'http://127.0.0.1:9/stats'


def test_check_mode_refuses_a_bad_template(run_module):
    res = run_module(MODULE, metrics=[prometheus_metric(query='x{host=~"$host"}')], _ansible_check_mode=True)
    assert res['failed'] is True and 'metric errors' in res['msg'] and 'the query uses $host' in res['msg']
    assert 'verdict' not in res


def test_check_mode_query_vars_are_template_variables(run_module):
    res = run_module(MODULE, metrics=[prometheus_metric(query='x{host=~"$hosts",region="$region"}')],
                     query_vars={'region': 'eu'}, hosts=['web1'], _ansible_check_mode=True)
    assert res['verdict'] == 'skipped' and res['metrics'][0]['promql'] == 'x{host=~"web1",region="eu"}'


def test_url_and_metrics_together_are_refused(run_module):
    res = run_module(MODULE, url='http://127.0.0.1:9/stats', query='error_rate', threshold=1,
                     metrics=[prometheus_metric()])
    assert res['failed'] is True and 'mutually exclusive' in res['msg'] and 'url|metrics' in res['msg']


def test_neither_url_nor_metrics_is_refused(run_module):
    res = run_module(MODULE, query='error_rate', threshold=1)
    assert res['failed'] is True and 'one of the following is required: url, metrics' in res['msg']


def test_metric_without_name_or_query_is_refused(run_module):
    res = run_module(MODULE, metrics=[dict(address='http://127.0.0.1:9', threshold=1)])
    assert res['failed'] is True and 'missing required arguments' in res['msg']
    assert 'name' in res['msg'] and 'query' in res['msg']


def test_negative_duration_is_refused(run_module):
    res = run_module(MODULE, metrics=[prometheus_metric()], duration=-1)
    assert res['failed'] is True and 'duration is -1.0; give 0 or more seconds' in res['msg']


# --------------------------------------------------------------------------- a run against a fake Prometheus

def test_run_against_prometheus_passes(run_module, prometheus):
    prometheus.reply = lambda query, headers: vector(web1='0.01', web2='0.02')
    res = run_module(MODULE, metrics=[prometheus_metric(address=prometheus.base, count=2,
                                                        headers={'Authorization': HEADER})],
                     hosts=['web1', 'web2'], host_label='host')
    assert 'failed' not in res and res['verdict'] == 'pass', res.get('msg')
    item = res['metrics'][0]['measurements'][0]
    assert item['values'] == {'web1': 0.01, 'web2': 0.02} and item['series'] == 'web2'
    assert [r['path'] for r in prometheus.requests] == ['/api/v1/query'] * 2
    assert prometheus.requests[0]['query'] == 'sum by (host) (rate(errors_total{host=~"web1|web2"}[1m]))'
    assert prometheus.requests[0]['authorization'] == HEADER and prometheus.requests[0]['time']
    assert HEADER not in json.dumps(res)


def test_run_against_prometheus_fails_against_the_baseline(run_module, prometheus):
    def reply(query, headers):
        return vector(web1='0.2') if 'web1' in query else vector(web2='0.0', web3='0.0')
    prometheus.reply = reply
    res = run_module(MODULE, metrics=[prometheus_metric(address=prometheus.base, threshold=None,
                                                        baseline={'factor': 1.5, 'offset': 0.001})],
                     hosts=['web1'], baseline_hosts=['web2', 'web3'], host_label='host')
    assert res['failed'] is True and res['verdict'] == 'fail'
    item = res['metrics'][0]['measurements'][0]
    assert (item['baseline'], item['limit'], item['series']) == (0.0, 0.001, 'web1')
    assert [r['query'] for r in prometheus.requests] == [
        'sum by (host) (rate(errors_total{host=~"web1"}[1m]))',
        'sum by (host) (rate(errors_total{host=~"web2|web3"}[1m]))']
    assert prometheus.requests[0]['time'] == prometheus.requests[1]['time']
    assert res['msg'].startswith('metric analysis of metrics errors: fail, errors fail: ')


def test_run_syntax_error_is_inconclusive_at_once(run_module, prometheus):
    prometheus.reply = lambda query, headers: (400, {'status': 'error', 'errorType': 'bad_data',
                                                     'error': '1:5: parse error: unexpected character'})
    res = run_module(MODULE, metrics=[prometheus_metric(address=prometheus.base, count=5)], hosts=['web1'],
                     host_label='host', fail_on='never')
    assert 'failed' not in res and res['verdict'] == 'inconclusive' and len(prometheus.requests) == 1


# --------------------------------------------------------------------------- secrets

@pytest.mark.parametrize('headers', [
    {'Authorization': HEADER, 'X-Token': TOKEN},
    json.dumps({'Authorization': HEADER, 'X-Token': TOKEN}),          # a JSON string: no_log knows only the whole
])
@pytest.mark.parametrize('check', [False, True])
def test_metric_header_values_never_in_the_output(run_module, assert_no_secret, closed_port, headers, check):
    metrics = [prometheus_metric(address='http://127.0.0.1:%d' % closed_port, headers=headers, timeout=1),
               json_metric(url='http://127.0.0.1:%d/stats' % closed_port, headers=headers, timeout=1)]
    res = run_module(MODULE, metrics=metrics, hosts=['web1'], _ansible_check_mode=check)
    assert 'metrics' in res, res.get('msg')
    assert res['verdict'] == ('skipped' if check else 'inconclusive')
    assert_no_secret(res, SECRETS)


def test_metric_header_echoed_by_prometheus_is_masked(run_module, assert_no_secret, prometheus):
    def reply(query, headers):
        return 400, {'status': 'error', 'errorType': 'bad_data',
                     'error': 'unexpected header %s / %s' % (headers.get('Authorization'), headers.get('X-Token'))}
    prometheus.reply = reply
    res = run_module(MODULE, metrics=[prometheus_metric(address=prometheus.base,
                                                        headers={'Authorization': HEADER, 'X-Token': TOKEN})],
                     hosts=['web1'])
    assert res['failed'] is True and res['verdict'] == 'inconclusive'
    assert prometheus.requests[0]['authorization'] == HEADER
    assert '********' in res['metrics'][0]['measurements'][0]['error']
    assert_no_secret(res, SECRETS)


def test_metric_header_in_a_validation_failure_is_masked(run_module, assert_no_secret):
    res = run_module(MODULE, metrics=[prometheus_metric(query='x{h=~"$nope"}', headers={'Authorization': HEADER})])
    assert res['failed'] is True and 'the query uses $nope' in res['msg']
    assert_no_secret(res, SECRETS)


# --------------------------------------------------------------------------- the docs

def test_documented_options_are_the_argument_spec(argument_spec_of, doc_section, doc_spec_mismatches):
    assert 'hotswap.deploy.verdict' in doc_section(MODULE, 'DOCUMENTATION')['extends_documentation_fragment']
    assert doc_spec_mismatches(MODULE) == []
    assert argument_spec_of(MODULE) == MODULE.ARGUMENT_SPEC


def test_examples_parse_and_use_documented_options(doc_section):
    options = doc_section(MODULE, 'DOCUMENTATION')['options']
    tasks = [t for t in doc_section(MODULE, 'EXAMPLES') if 'hotswap.deploy.metric_analysis' in t]
    assert any('metrics' in t['hotswap.deploy.metric_analysis'] for t in tasks)
    for task in tasks:
        args = task['hotswap.deploy.metric_analysis']
        assert set(args) <= set(options) | {'fail_on'}, task['name']
        for metric in args.get('metrics') or []:
            assert set(metric) <= set(options['metrics']['suboptions']), task['name']


def test_metrics_results_are_documented(run_module, doc_section):
    res = run_module(MODULE, metrics=[prometheus_metric()], _ansible_check_mode=True)
    documented = set(doc_section(MODULE, 'RETURN'))
    assert set(res) - {'changed', 'invocation', 'warnings', 'deprecations'} <= documented
    described = ' '.join(doc_section(MODULE, 'RETURN')['metrics']['description'])
    for key in set(res['metrics'][0]) - documented:
        assert 'C(%s)' % key in described, key
