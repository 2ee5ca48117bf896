# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Tests for module_utils/prometheus.py and the Prometheus / multi-metric parts of module_utils/analysis.py.

A fake fetch plays the Prometheus HTTP API: it decodes the ``query`` (and ``time``) parameters of
each URL and answers JSON as Prometheus 2.x formats it. No network, no sleeping (except the
threads of run_metrics, which wait on a real Event).
"""

from __future__ import annotations

import datetime
import json
import re
import threading
import time
import urllib.error
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import analysis as A
from ansible_collections.hotswap.deploy.plugins.module_utils import prometheus as P
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

ADDRESS = 'http://127.0.0.1:9090'
START = datetime.datetime(2026, 12, 6, 10, 0, 0, tzinfo=datetime.timezone.utc)
ERROR_RATIO = 'sum by (host) (rate(errors_total{host=~"$hosts"}[1m]))'
TS = 1733480000.123                   # the evaluation time Prometheus puts in each sample


# --------------------------------------------------------------------------- Prometheus replies

def ok(result_type, result):
    return 200, json.dumps({'status': 'success', 'data': {'resultType': result_type, 'result': result}}).encode()


def vector(*series):
    """vector(({'host': 'web1'}, '0.5'), ...) -> an instant-vector reply."""
    return ok('vector', [{'metric': labels, 'value': [TS, value]} for labels, value in series])


def by_host(**values):
    """by_host(web1='0.1', web2='0.2') -> a vector with one series per host (label ``host``)."""
    return vector(*[({'host': host.replace('_', '.')}, value) for host, value in sorted(values.items())])


def scalar(value):
    return ok('scalar', [TS, value])


def matrix():
    return ok('matrix', [{'metric': {'host': 'web1'}, 'values': [[TS - 15, '0.1'], [TS, '0.2']]}])


def error(error_type, text, status):
    return status, json.dumps({'status': 'error', 'errorType': error_type, 'error': text}).encode()


BAD_DATA = error('bad_data', '1:5: parse error: unexpected "}" in label matching, expected string', 400)
TIMEOUT = error('timeout', 'query timed out in expression evaluation', 503)


class FakeProm(object):
    """fetch(url, headers, timeout, validate_certs) -> (status, body) as Prometheus' /api/v1/query.

    ``answer(promql)`` gives the reply: a (status, body) pair, or an exception to raise. It may be
    a list (one reply per call, the last repeated) or a dict {promql: reply or list}. Thread-safe.
    """

    def __init__(self, answer):
        self.answer = answer
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, url, headers, timeout, validate_certs):
        parts = urlsplit(url)
        params = parse_qs(parts.query)
        assert parts.path == '/api/v1/query' and '%s://%s' % (parts.scheme, parts.netloc) == ADDRESS
        promql = params['query'][0]
        with self.lock:
            self.calls.append(dict(url=url, promql=promql, time=params.get('time', [None])[0], headers=headers,
                                   timeout=timeout, validate_certs=validate_certs))
            answer = self.answer
            if isinstance(answer, dict):
                answer = answer[promql]
            if isinstance(answer, list):
                made = sum(1 for c in self.calls if c['promql'] == promql)
                answer = answer[min(made, len(answer)) - 1]
        if callable(answer) and not isinstance(answer, BaseException):
            answer = answer(promql)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def queries(self):
        return [c['promql'] for c in self.calls]


class Clock(object):
    """A monotonic clock in seconds; sleep() advances it; now() is START plus the clock."""

    def __init__(self):
        self.seconds = 0.0
        self.slept = []

    def clock(self):
        return self.seconds

    def now(self):
        return START + datetime.timedelta(seconds=self.seconds)

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.seconds += seconds


def prom(query=ERROR_RATIO, hosts=('web1', 'web2'), baseline_hosts=(), host_label='host', extra=None, **options):
    settings = dict(provider='prometheus', address=ADDRESS, query=query, threshold=0.05, interval=10, name='errors',
                    context=dict(hosts=list(hosts), baseline_hosts=list(baseline_hosts), host_label=host_label,
                                 extra=dict(extra or {})))
    settings.update(options)
    return A.build_analysis(**settings)


def run(analysis, answer, duration=None):
    fetch, clock = FakeProm(answer), Clock()
    result = A.run_analysis(analysis, fetch=fetch, sleep=clock.sleep, now=clock.now, duration=duration,
                            clock=clock.clock)
    return result, fetch, clock


def outcomes(result):
    return [item['outcome'] for item in result['measurements']]


# --------------------------------------------------------------------------- 1. templates

@pytest.mark.parametrize('hosts, regex', [
    (['web1'], 'web1'),
    (['web1', 'web2'], 'web1|web2'),
    (['web.1.example.com'], r'web\\.1\\.example\\.com'),
    (['10.0.0.1:9100'], r'10\\.0\\.0\\.1:9100'),
    (['a+b', 'c*d?', '(e)', '[f]', '{g}', 'h|i', '^j$'],
     r'a\\+b|c\\*d\\?|\\(e\\)|\\[f\\]|\\{g\\}|h\\|i|\\^j\\$'),
    ([], '^$'),
    (None, '^$'),
    (['', ''], '^$'),
])
def test_hosts_regex_escapes_for_a_promql_string(hosts, regex):
    assert P.hosts_regex(hosts) == regex


def test_hosts_regex_in_a_promql_string_matches_exactly_those_names():
    # What Prometheus does with it: unquote the double-quoted string, then a fully anchored RE2 match.
    names = ['web.1', 'a+b', 'x(y)']
    unquoted = json.loads('"%s"' % P.hosts_regex(names))
    assert unquoted == r'web\.1|a\+b|x\(y\)'
    for name in names:
        assert re.fullmatch(unquoted, name)
    for other in ('webX1', 'aab', 'web.12', 'xy'):
        assert not re.fullmatch(unquoted, other)
    assert not re.fullmatch(json.loads('"%s"' % P.hosts_regex([])), 'web1')


def test_hosts_regex_backslash_in_a_name():
    # The name k<backslash>l: RE2-escaped it is k<2 backslashes>l; doubled for the PromQL string, 4.
    assert P.hosts_regex(['k\\l']) == 'k' + '\\' * 4 + 'l'
    assert json.loads('"%s"' % P.hosts_regex(['k\\l'])) == 'k\\\\l'


def test_render_query_puts_in_hosts_and_variables():
    variables = {'hosts': ['web.1', 'web2'], 'baseline_hosts': ['web3'], 'version': '1.2.3', 'app': 'shop'}
    text = P.render_query('up{host=~"$hosts",b=~"${baseline_hosts}",v="$version",a="${app}"} $$5', variables)
    assert text == r'up{host=~"web\\.1|web2",b=~"web3",v="1.2.3",a="shop"} $5'


def test_render_query_none_value_is_empty_and_no_hosts_match_nothing():
    assert P.render_query('x{h=~"$hosts",v="$version"}', {'hosts': [], 'version': None}) == 'x{h=~"^$",v=""}'


def test_template_names():
    assert P.template_names('a $hosts ${version} $$ $app_1 x') == {'hosts', 'version', 'app_1'}
    assert P.template_names('no variables $$') == set()


def test_check_template_accepts_known_names_and_literal_dollar():
    P.check_template('x{h=~"$hosts"} and ${version} $$', A.QUERY_VARIABLES, 'what')


def test_check_template_refuses_an_unknown_name_and_lists_the_known_ones():
    with pytest.raises(HotswapError) as err:
        P.check_template('x{h=~"$host"} ${verison}', A.QUERY_VARIABLES, 'metric x')
    msg = err.value.msg
    assert msg.startswith('metric x: the query uses $host, $verison, which is not a query variable.')
    assert 'Known: $app, $baseline_hosts, $hosts, $previous_version, $version.' in msg
    assert 'Write $$ for a literal $.' in msg


@pytest.mark.parametrize('template', ['x{h=~"web$"}', 'x $ y', '$1', 'x ${hosts', '$'])
def test_check_template_refuses_a_lone_dollar(template):
    with pytest.raises(HotswapError) as err:
        P.check_template(template, A.QUERY_VARIABLES, 'metric x')
    assert 'metric x: the query has a "$" that starts no variable' in err.value.msg
    assert 'Write $$ for a literal $' in err.value.msg


def test_build_analysis_checks_the_template_with_query_vars():
    with pytest.raises(HotswapError, match=r'the query uses \$region'):
        prom(query='x{r="$region"}')
    built = prom(query='x{r="$region",h=~"$hosts"}', extra={'region': 'eu'})
    assert built.promql() == 'x{r="eu",h=~"web1|web2"}'


def test_query_url():
    url = P.query_url(ADDRESS + '/', 'up{h=~"a\\\\.b"}', at=1733480000.5)
    parts = urlsplit(url)
    assert url.startswith(ADDRESS + '/api/v1/query?')
    assert parse_qs(parts.query) == {'query': ['up{h=~"a\\\\.b"}'], 'time': ['1733480000.500']}
    assert 'time=' not in P.query_url(ADDRESS, 'up')


# --------------------------------------------------------------------------- 2. parse_reply

def test_parse_scalar():
    assert P.parse_reply(*scalar('0.5')) == {'scalar': '0.5'}


def test_parse_vector_named_by_host_label():
    reply = vector(({'__name__': 'up', 'host': 'web1', 'job': 'app'}, '1'), ({'host': 'web2'}, '0'))
    assert P.parse_reply(*reply, host_label='host') == {'web1': '1', 'web2': '0'}


def test_parse_vector_without_the_host_label_is_named_by_label_set():
    reply = vector(({'job': 'node', 'instance': 'a:9100', '__name__': 'up'}, '1'), ({}, '2'))
    assert P.parse_reply(*reply, host_label='host') == {
        '{__name__="up",instance="a:9100",job="node"}': '1', '{}': '2'}
    assert P.parse_reply(*reply) == P.parse_reply(*reply, host_label='host')


def test_parse_empty_vector_is_empty():
    assert P.parse_reply(*vector(), host_label='host') == {}


def test_parse_matrix_is_a_permanent_error():
    with pytest.raises(P.QueryError) as err:
        P.parse_reply(*matrix())
    assert err.value.permanent is True
    assert 'range vector (matrix)' in err.value.msg and 'avg_over_time' in err.value.msg


def test_parse_string_result_is_permanent():
    with pytest.raises(P.QueryError) as err:
        P.parse_reply(*ok('string', [TS, 'hello']))
    assert err.value.permanent is True and 'gives a string' in err.value.msg


def test_parse_bad_data_is_permanent():
    with pytest.raises(P.QueryError) as err:
        P.parse_reply(*BAD_DATA)
    assert err.value.permanent is True
    assert err.value.msg == ('Prometheus refused the query (HTTP 400, bad_data): 1:5: parse error: unexpected "}" in '
                             'label matching, expected string')


@pytest.mark.parametrize('reply', [
    TIMEOUT,
    error('execution', 'query processing would load too many samples into memory', 422),
    error('unavailable', 'the server is shutting down', 503),
    (503, json.dumps({'status': 'error'}).encode()),
])
def test_parse_other_errors_are_not_permanent(reply):
    with pytest.raises(P.QueryError) as err:
        P.parse_reply(*reply)
    assert err.value.permanent is False
    assert err.value.msg.startswith('Prometheus refused the query (HTTP %d, ' % reply[0])


@pytest.mark.parametrize('reply, text', [
    ((200, b'<html><body>Grafana</body></html>'), 'HTTP 200 with a body that is not its JSON API (starts with "<html>'),
    ((502, b'Bad Gateway'), 'HTTP 502 with a body that is not its JSON API'),
    ((200, b''), 'HTTP 200 with a body that is not its JSON API'),
    ((200, b'[1, 2]'), 'HTTP 200 with JSON that is not its API reply'),
    ((500, json.dumps({'status': 'success', 'data': {}}).encode()), 'Prometheus answered HTTP 500'),
])
def test_parse_non_api_bodies_are_query_errors(reply, text):
    with pytest.raises(P.QueryError) as err:
        P.parse_reply(*reply)
    assert text in err.value.msg and err.value.permanent is False


def test_fetch_query_sends_the_url_and_settings():
    fetch = FakeProm(scalar('3'))
    assert P.fetch_query(fetch, ADDRESS, 'vector(3)', {'X': 'y'}, 2.5, False, at=1.0) == {'scalar': '3'}
    assert fetch.calls[0]['promql'] == 'vector(3)' and fetch.calls[0]['time'] == '1.000'
    call = fetch.calls[0]
    assert (call['headers'], call['timeout'], call['validate_certs']) == ({'X': 'y'}, 2.5, False)


# --------------------------------------------------------------------------- 3. measuring Prometheus

def test_per_host_series_all_pass():
    result, fetch, clock = run(prom(count=2), by_host(web1='0.01', web2='0.04'))
    assert result['verdict'] == 'pass' and outcomes(result) == ['pass', 'pass']
    item = result['measurements'][0]
    assert item['values'] == {'web1': 0.01, 'web2': 0.04}
    assert item['series'] == 'web2' and item['value'] == 0.04       # the closest to the limit decides
    assert item['error'] is None and 'baseline' not in item and 'limit' not in item
    assert fetch.queries() == ['sum by (host) (rate(errors_total{host=~"web1|web2"}[1m]))'] * 2
    assert clock.slept == [10]
    assert result['promql'] == fetch.queries()[0] and result['provider'] == 'prometheus'
    assert result['name'] == 'errors' and result['url'] == ADDRESS and result['query'] == ERROR_RATIO
    assert 'last value 0.04 (web2)' in result['reason']


def test_one_host_failing_fails_the_measurement_and_names_it():
    result, fetch, _clock = run(prom(count=3), by_host(web1='0.01', web2='0.3'))
    assert result['verdict'] == 'fail' and len(fetch.calls) == 1
    item = result['measurements'][0]
    assert item['outcome'] == 'fail' and item['series'] == 'web2' and item['value'] == 0.3
    assert item['values'] == {'web1': 0.01, 'web2': 0.3}
    assert 'last value 0.3 (web2) is not <= 0.05' in result['reason']


def test_greater_comparison_decides_by_the_lowest_series():
    result, _fetch, _clock = run(prom(comparison='>=', threshold=10, count=1), by_host(web1='50', web2='12'))
    assert result['verdict'] == 'pass' and result['measurements'][0]['series'] == 'web2'


def test_scalar_result_has_no_series():
    result, _fetch, _clock = run(prom(query='scalar(sum(up{host=~"$hosts"}))', comparison='>=', threshold=2, count=1),
                                 scalar('2'))
    item = result['measurements'][0]
    assert item['outcome'] == 'pass' and item['value'] == 2.0
    assert 'series' not in item and 'values' not in item


def test_empty_vector_is_an_error_no_data():
    result, _fetch, _clock = run(prom(count=1), vector())
    item = result['measurements'][0]
    assert item['outcome'] == 'error' and item['value'] is None
    assert item['error'].startswith('no data for the batch: the query gave no series')
    assert result['verdict'] == 'inconclusive'


@pytest.mark.parametrize('value', ['NaN', '+Inf', '-Inf'])
def test_nan_value_is_an_error(value):
    result, _fetch, _clock = run(prom(count=1), by_host(web1='0.01', web2=value))
    item = result['measurements'][0]
    assert item['outcome'] == 'error' and item['value'] is None
    assert item['error'].startswith('no data for the batch: web2=%s is not a finite number' % value)


def test_batch_host_missing_from_a_labelled_vector_is_an_error():
    result, _fetch, _clock = run(prom(hosts=['web1', 'web2', 'web3'], count=1), by_host(web2='0.01'))
    item = result['measurements'][0]
    assert item['outcome'] == 'error' and item['error'] == 'no data for the batch: no series for web1, web3'


def test_unlabelled_series_are_judged_without_the_host_check():
    # sum() without "by (host)": one series without the host label, named by its (empty) label set.
    result, _fetch, _clock = run(prom(query='sum(rate(errors_total{host=~"$hosts"}[1m]))', count=1),
                                 vector(({}, '0.01')))
    item = result['measurements'][0]
    assert item['outcome'] == 'pass' and item['values'] == {'{}': 0.01} and item['series'] == '{}'


def test_syntax_error_is_inconclusive_after_one_measurement():
    result, fetch, clock = run(prom(count=5, consecutive_error_limit=4), BAD_DATA)
    assert result['verdict'] == 'inconclusive' and len(fetch.calls) == 1 and clock.slept == []
    item = result['measurements'][0]
    assert item['outcome'] == 'error' and item['permanent'] is True
    assert result['reason'] == ('the query cannot be measured (stopped after measurement 1 of 5): Prometheus refused '
                                'the query (HTTP 400, bad_data): 1:5: parse error: unexpected "}" in label matching, '
                                'expected string.')


def test_matrix_is_inconclusive_after_one_measurement():
    result, fetch, _clock = run(prom(count=3), matrix())
    assert result['verdict'] == 'inconclusive' and len(fetch.calls) == 1
    assert 'range vector' in result['reason']


def test_timeout_errors_are_retried():
    result, fetch, _clock = run(prom(count=3), [TIMEOUT, by_host(web1='0', web2='0')])
    assert result['verdict'] == 'pass' and outcomes(result) == ['error', 'pass', 'pass'] and len(fetch.calls) == 3
    assert 'permanent' not in result['measurements'][0]
    assert '(HTTP 503, timeout)' in result['measurements'][0]['error']


@pytest.mark.parametrize('exc', [
    ConnectionRefusedError(111, 'Connection refused'),
    urllib.error.URLError(ConnectionRefusedError(111, 'Connection refused')),
])
def test_connection_refused_is_inconclusive_after_the_error_limit(exc):
    result, fetch, _clock = run(prom(count=5, consecutive_error_limit=2), exc)
    assert result['verdict'] == 'inconclusive' and len(fetch.calls) == 3
    assert outcomes(result) == ['error'] * 3
    assert result['measurements'][0]['error'] == ('Prometheus at %s: connection refused (nothing is listening there '
                                                  'yet)' % ADDRESS)
    assert result['reason'].startswith('3 consecutive measurement(s) could not be taken, more than '
                                       'consecutive_error_limit 2 (stopped after measurement 3 of 5)')


def test_url_error_with_a_text_reason():
    result, _fetch, _clock = run(prom(count=1), urllib.error.URLError('no route'))
    assert result['measurements'][0]['error'] == 'Prometheus at %s: could not connect: no route' % ADDRESS


def test_header_values_are_sent_and_masked_in_errors():
    secret = 'Bearer pr0m-t0ken-s3cr3t'
    echo = error('bad_data', 'cannot parse header %s' % secret, 400)
    result, fetch, _clock = run(prom(count=1, headers={'Authorization': secret}, timeout=2, validate_certs=False),
                                echo)
    assert fetch.calls[0]['headers'] == {'Authorization': secret}
    assert (fetch.calls[0]['timeout'], fetch.calls[0]['validate_certs']) == (2.0, False)
    assert secret not in json.dumps(result) and '********' in result['measurements'][0]['error']


def test_query_time_is_the_measurement_instant():
    result, fetch, _clock = run(prom(count=1), by_host(web1='0', web2='0'))
    assert fetch.calls[0]['time'] == '%.3f' % START.timestamp()
    assert result['measurements'][0]['at'] == '2026-12-06T10:00:00.000Z'


# --------------------------------------------------------------------------- 4. baseline

BASELINE = {'factor': 1.5, 'offset': 0.001}


def answer_by_hosts(batch, baseline):
    """Replies chosen by which hosts the query names: the batch (web1|web2) or the baseline (web3|web4)."""
    return {'sum by (host) (rate(errors_total{host=~"web1|web2"}[1m]))': batch,
            'sum by (host) (rate(errors_total{host=~"web3|web4"}[1m]))': baseline}


def baseline_metric(**options):
    settings = dict(baseline=BASELINE, threshold=None, baseline_hosts=['web3', 'web4'], count=1)
    settings.update(options)
    return prom(**settings)


def test_baseline_query_is_the_template_over_the_baseline_hosts_at_the_same_instant():
    built = baseline_metric()
    result, fetch, _clock = run(built, answer_by_hosts(by_host(web1='0.02', web2='0.02'),
                                                       by_host(web3='0.02', web4='0.02')))
    assert fetch.queries() == ['sum by (host) (rate(errors_total{host=~"web1|web2"}[1m]))',
                               'sum by (host) (rate(errors_total{host=~"web3|web4"}[1m]))']
    assert fetch.calls[0]['time'] is not None
    assert fetch.calls[0]['time'] == fetch.calls[1]['time']
    assert result['promql'] == fetch.queries()[0] and result['baseline_promql'] == fetch.queries()[1]
    assert result['baseline'] == BASELINE and result['threshold'] is None


def test_baseline_query_time_is_shared_even_when_the_clock_moves():
    # now() moves on every call: both queries must still carry the one instant.
    moments = iter(START + datetime.timedelta(seconds=s) for s in range(100))
    fetch = FakeProm(answer_by_hosts(by_host(web1='0', web2='0'), by_host(web3='0', web4='0')))
    A.measure(baseline_metric(), fetch=fetch, now=lambda: next(moments))
    assert fetch.calls[0]['time'] == fetch.calls[1]['time']


def test_fleet_wide_incident_passes_against_the_baseline():
    result, _fetch, _clock = run(baseline_metric(), answer_by_hosts(by_host(web1='0.02', web2='0.02'),
                                                                    by_host(web3='0.02', web4='0.02')))
    item = result['measurements'][0]
    assert result['verdict'] == 'pass' and item['outcome'] == 'pass'
    assert item['baseline'] == 0.02 and item['limit'] == pytest.approx(0.031)
    assert 'value <= baseline * 1.5 + 0.001' in result['reason']
    assert '(baseline 0.02, limit 0.031)' in result['reason']


def test_canary_only_regression_fails_against_the_baseline():
    result, _fetch, _clock = run(baseline_metric(count=3), answer_by_hosts(by_host(web1='0.2', web2='0.0'),
                                                                           by_host(web3='0.0', web4='0.0')))
    item = result['measurements'][0]
    assert result['verdict'] == 'fail' and item['outcome'] == 'fail' and item['series'] == 'web1'
    assert item['baseline'] == 0.0 and item['limit'] == pytest.approx(0.001)
    assert 'last value 0.2 (web1) is not <= baseline * 1.5 + 0.001 (baseline 0, limit 0.001)' in result['reason']


def test_several_baseline_series_give_their_mean():
    result, _fetch, _clock = run(baseline_metric(), answer_by_hosts(by_host(web1='0.02', web2='0.02'),
                                                                    by_host(web3='0.01', web4='0.03')))
    item = result['measurements'][0]
    assert item['baseline'] == pytest.approx(0.02) and item['limit'] == pytest.approx(0.031)
    assert item['outcome'] == 'pass'


def test_baseline_without_data_is_an_error():
    result, _fetch, _clock = run(baseline_metric(), answer_by_hosts(by_host(web1='0.02', web2='0.02'), vector()))
    item = result['measurements'][0]
    assert item['outcome'] == 'error' and item['error'].startswith('no data for baseline: the query gave no series')


def test_baseline_host_missing_is_an_error():
    result, _fetch, _clock = run(baseline_metric(), answer_by_hosts(by_host(web1='0', web2='0'), by_host(web3='0')))
    assert result['measurements'][0]['error'] == 'no data for baseline: no series for web4'


def test_no_baseline_hosts_and_no_threshold_is_skipped():
    result, fetch, _clock = run(baseline_metric(baseline_hosts=[]), by_host(web1='0', web2='0'))
    assert result['verdict'] == 'skipped' and result['measurements'] == [] and fetch.calls == []
    assert 'no host is still on the previous release' in result['reason']
    assert 'give the metric a threshold' in result['reason']


def test_no_baseline_hosts_with_a_threshold_is_judged_against_the_threshold():
    built = baseline_metric(baseline_hosts=[], threshold=0.05, count=2)
    result, fetch, _clock = run(built, by_host(web1='0.02', web2='0.04'))
    assert result['verdict'] == 'pass' and len(fetch.calls) == 2
    assert fetch.queries() == ['sum by (host) (rate(errors_total{host=~"web1|web2"}[1m]))'] * 2
    assert 'baseline' not in result['measurements'][0] and 'limit' not in result['measurements'][0]
    assert 'value <= 0.05' in result['reason'] and 'baseline_promql' not in result
    result, _fetch, _clock = run(built, by_host(web1='0.02', web2='0.06'))
    assert result['verdict'] == 'fail'


def test_baseline_on_json_is_refused():
    with pytest.raises(HotswapError) as err:
        A.build_analysis('http://127.0.0.1:9/stats', 'error_rate', 0.05, baseline=BASELINE, name='m')
    assert 'baseline needs provider prometheus' in err.value.msg


@pytest.mark.parametrize('baseline, text', [
    ({'factor': 'x'}, "baseline.factor is 'x'"),
    ({'scale': 2}, 'baseline must be a dictionary with factor and offset'),
    (1.5, 'baseline must be a dictionary with factor and offset'),
])
def test_bad_baseline_is_refused(baseline, text):
    with pytest.raises(HotswapError, match=text.replace('.', r'\.')):
        baseline_metric(baseline=baseline)


def test_baseline_defaults():
    assert baseline_metric(baseline={}).baseline == {'factor': 1, 'offset': 0}


# --------------------------------------------------------------------------- 5. run_metrics

def metric(name, query, **options):
    settings = dict(provider='prometheus', address=ADDRESS, query=query, threshold=0.05, name=name, count=1,
                    interval=0, context=dict(hosts=['web1'], baseline_hosts=[], host_label='host'))
    settings.update(options)
    return A.build_analysis(**settings)


def run_all(analyses, answer, duration=None):
    fetch = FakeProm(answer)
    started = time.monotonic()
    result = A.run_metrics(analyses, fetch=fetch, duration=duration)
    return result, fetch, time.monotonic() - started


def test_first_failure_stops_the_other_metrics():
    fast = metric('errors', 'errors{host=~"$hosts"}', count=1)
    slow = metric('latency', 'latency{host=~"$hosts"}', count=3, interval=30)
    answer = {'errors{host=~"web1"}': by_host(web1='0.9'), 'latency{host=~"web1"}': by_host(web1='0.01')}
    result, fetch, elapsed = run_all([fast, slow], answer)
    assert elapsed < 5
    assert result['verdict'] == 'fail'
    assert [m['name'] for m in result['metrics']] == ['errors', 'latency']
    assert result['metrics'][0]['verdict'] == 'fail'
    other = result['metrics'][1]
    assert other['verdict'] == 'pass' and len(other['measurements']) == 1
    assert other['reason'].endswith(' Measuring stopped early: another metric failed.')
    assert fetch.queries().count('latency{host=~"web1"}') == 1
    assert result['reason'].startswith('errors fail: ') and '; latency pass: ' in result['reason']


def test_first_failure_stops_a_background_metric_too():
    fast = metric('errors', 'errors{host=~"$hosts"}', interval=0.05, count=1)
    slow = metric('latency', 'latency{host=~"$hosts"}', interval=30)
    answer = {'errors{host=~"web1"}': [by_host(web1='0'), by_host(web1='0.9')],
              'latency{host=~"web1"}': by_host(web1='0.01')}
    result, _fetch, elapsed = run_all([fast, slow], answer, duration=600)
    assert elapsed < 5 and result['verdict'] == 'fail'
    assert [len(m['measurements']) for m in result['metrics']] == [2, 1]
    assert result['metrics'][1]['reason'].endswith(' Measuring stopped early: another metric failed.')


def test_all_pass():
    analyses = [metric('errors', 'errors{host=~"$hosts"}', count=2), metric('latency', 'latency{host=~"$hosts"}')]
    result, fetch, _elapsed = run_all(analyses, by_host(web1='0.01'))
    assert result['verdict'] == 'pass' and [m['verdict'] for m in result['metrics']] == ['pass', 'pass']
    assert len(fetch.calls) == 3
    assert 'stopped early' not in result['reason']
    assert result['reason'].startswith('errors pass: 2 of 2 measurement(s) passed') and '; latency pass: 1 of 1' in \
        result['reason']


def test_inconclusive_and_pass_is_inconclusive():
    analyses = [metric('errors', 'errors{host=~"$hosts"}', count=2), metric('latency', 'latency{host=~"$hosts"}')]
    answer = {'errors{host=~"web1"}': by_host(web1='0.01'), 'latency{host=~"web1"}': BAD_DATA}
    result, fetch, _elapsed = run_all(analyses, answer)
    assert result['verdict'] == 'inconclusive'
    assert [m['verdict'] for m in result['metrics']] == ['pass', 'inconclusive']
    assert len(result['metrics'][0]['measurements']) == 2             # an inconclusive metric stops no other
    assert 'latency inconclusive: the query cannot be measured' in result['reason']


def test_all_skipped_is_skipped():
    analyses = [metric(n, 'x{host=~"$hosts"}', baseline=BASELINE, threshold=None) for n in ('a', 'b')]
    result, fetch, _elapsed = run_all(analyses, by_host(web1='0'))
    assert result['verdict'] == 'skipped' and fetch.calls == []
    assert result['reason'].startswith('a skipped: not measured') and '; b skipped: not measured' in result['reason']


def test_skipped_and_pass_is_pass():
    analyses = [metric('a', 'x{host=~"$hosts"}', baseline=BASELINE, threshold=None), metric('b', 'x{host=~"$hosts"}')]
    result, _fetch, _elapsed = run_all(analyses, by_host(web1='0'))
    assert result['verdict'] == 'pass'


def test_a_crash_in_one_metric_is_inconclusive_not_a_hang():
    def boom(promql):
        raise RuntimeError('bug')
    result, _fetch, _elapsed = run_all([metric('a', 'x{host=~"$hosts"}')], boom)
    assert result['verdict'] == 'inconclusive'
    assert result['metrics'][0]['reason'] == 'the analysis stopped on an error: bug'


@pytest.mark.parametrize('verdicts, combined', [
    (['pass', 'fail', 'inconclusive'], 'fail'),
    (['pass', 'inconclusive'], 'inconclusive'),
    (['skipped', 'inconclusive'], 'inconclusive'),
    (['skipped', 'skipped'], 'skipped'),
    (['skipped', 'pass'], 'pass'),
    (['pass'], 'pass'),
])
def test_combine_verdicts(verdicts, combined):
    assert A.combine_verdicts(verdicts) == combined


def test_check_mode_result_of_metrics():
    analyses = [metric('errors', 'errors{host=~"$hosts"}'), metric('p99', 'p99{host=~"$hosts"}', baseline=BASELINE)]
    result = A.combined_result([A.skipped_result(a) for a in analyses])
    assert result['verdict'] == 'skipped'
    assert [(m['name'], m['verdict'], m['promql']) for m in result['metrics']] == [
        ('errors', 'skipped', 'errors{host=~"web1"}'), ('p99', 'skipped', 'p99{host=~"web1"}')]


# --------------------------------------------------------------------------- 6. duration

def test_duration_measures_until_it_is_over_ignoring_count():
    result, fetch, clock = run(prom(count=1, interval=10), by_host(web1='0', web2='0'), duration=25)
    assert result['verdict'] == 'pass' and len(fetch.calls) == 4
    assert clock.slept == [10, 10, 5]                  # the last pause is cut to what is left
    assert [c['time'] for c in fetch.calls] == ['%.3f' % (START.timestamp() + s) for s in (0, 10, 20, 25)]
    assert result['reason'].startswith('4 of 4 measurement(s) passed')


def test_duration_stops_at_the_first_failure():
    answers = [by_host(web1='0', web2='0'), by_host(web1='0', web2='0.5'), by_host(web1='0', web2='0')]
    result, fetch, _clock = run(prom(count=10, interval=10), answers, duration=600)
    assert result['verdict'] == 'fail' and len(fetch.calls) == 2
    assert '(stopped after measurement 2 of 600 s)' in result['reason']


def test_duration_zero_takes_one_measurement():
    result, fetch, clock = run(prom(count=5, interval=10), by_host(web1='0', web2='0'), duration=0)
    assert result['verdict'] == 'pass' and len(fetch.calls) == 1 and clock.slept == []


def test_duration_shorter_than_the_interval():
    result, fetch, clock = run(prom(count=5, interval=10), by_host(web1='0', web2='0'), duration=3)
    assert len(fetch.calls) == 2 and clock.slept == [3]
    assert result['verdict'] == 'pass'


def test_duration_counts_the_time_measuring_takes():
    # Each request takes 4 s of the clock: with interval 10 and duration 30 the measurements start at 0, 14, 28.
    clock = Clock()

    def slow(promql):
        clock.seconds += 4
        return by_host(web1='0', web2='0')
    fetch = FakeProm(slow)
    A.run_analysis(prom(count=1, interval=10), fetch=fetch, sleep=clock.sleep, now=clock.now, duration=30,
                   clock=clock.clock)
    assert len(fetch.calls) == 3 and clock.slept == [10, 10]
    assert [c['time'] for c in fetch.calls] == ['%.3f' % (START.timestamp() + s) for s in (0, 14, 28)]


# --------------------------------------------------------------------------- 7. build_metrics

def spec(**over):
    out = dict(name='errors', address=ADDRESS, query=ERROR_RATIO, threshold=0.05)
    out.update(over)
    return out


CONTEXT = dict(hosts=['web1'], baseline_hosts=['web2'], host_label='host', extra={'version': '2.0'})


def test_build_metrics():
    built = A.build_metrics([spec(), spec(name='json', address=None, url='http://127.0.0.1:9/stats',
                                          query='error_rate')], CONTEXT)
    assert [(a.name, a.provider) for a in built] == [('errors', 'prometheus'), ('json', 'json')]
    assert built[0].url == ADDRESS and built[0].context['version'] == '2.0' and 'extra' not in built[0].context
    assert built[1].url == 'http://127.0.0.1:9/stats'


def test_build_metrics_provider_inferred_from_address():
    assert A.build_metrics([spec()])[0].provider == 'prometheus'
    assert A.build_metrics([dict(name='j', url='http://127.0.0.1:9/stats', query='a', threshold=1)])[0].provider \
        == 'json'


def test_build_metrics_json_metric_with_every_key_present_as_none():
    # The module fills every suboption of metrics: a json metric arrives with address=None and provider=None.
    keys = dict((k, None) for k in A.METRIC_KEYS)
    keys.update(name='j', url='http://127.0.0.1:9/stats', query='error_rate', threshold=1)
    built = A.build_metrics([keys])
    assert built[0].provider == 'json' and built[0].url == 'http://127.0.0.1:9/stats'


def test_build_metrics_unknown_key_is_refused_with_the_list_of_keys():
    with pytest.raises(HotswapError) as err:
        A.build_metrics([spec(), spec(name='b', treshold=1, colour='red')])
    msg = err.value.msg
    assert 'metric 2 has colour, treshold, which a metric does not take.' in msg
    assert 'A metric takes: %s.' % ', '.join(A.METRIC_KEYS) in msg


def test_build_metrics_duplicate_names_are_refused():
    with pytest.raises(HotswapError, match="two metrics are named 'errors'"):
        A.build_metrics([spec(), spec(threshold=1)])


def test_build_metrics_default_names_and_not_a_dict():
    one = dict(address=ADDRESS, query='up', threshold=1)
    built = A.build_metrics([dict(one), dict(one)])
    assert [a.name for a in built] == ['metric 1', 'metric 2']
    with pytest.raises(HotswapError, match="metric 2 is 'up', not a dictionary"):
        A.build_metrics([spec(), 'up'])


@pytest.mark.parametrize('specs', [[], None, {'name': 'x'}])
def test_build_metrics_needs_a_non_empty_list(specs):
    with pytest.raises(HotswapError, match='metrics must be a non-empty list'):
        A.build_metrics(specs)


def test_build_metrics_background_on_json_is_refused():
    with pytest.raises(HotswapError) as err:
        A.build_metrics([dict(name='j', url='http://127.0.0.1:9/stats', query='a', threshold=1, background=True)])
    assert err.value.msg.startswith('configuring the metric analysis (metric j): background needs provider prometheus')
    assert A.build_metrics([spec(background=True)])[0].background is True


def test_build_metrics_names_the_metric_in_errors():
    with pytest.raises(HotswapError) as err:
        A.build_metrics([spec(), spec(name='p99', query='x{h=~"$host"}')], CONTEXT)
    assert err.value.msg.startswith('configuring the metric analysis (metric p99): the query uses $host')


@pytest.mark.parametrize('over, text', [
    (dict(query=''), 'query is missing'),
    (dict(address='prom:9090'), 'address: the Prometheus server'),
    (dict(address=None, provider='prometheus'), 'the URL is empty'),
    (dict(provider='graphite'), "provider 'graphite' is not one of json, prometheus"),
    (dict(threshold=None), 'threshold must be a number'),
])
def test_build_metrics_bad_prometheus_metric(over, text):
    with pytest.raises(HotswapError, match=text.replace('(', r'\(').replace(')', r'\)')):
        A.build_metrics([spec(**over)])


# --------------------------------------------------------------------------- known gaps

def test_known_variable_not_given_is_refused_before_any_request():
    with pytest.raises(HotswapError, match=r'uses \$version, but no value was given for it\. Give it in query_vars'):
        prom(query='x{host=~"$hosts",version="$version"}')


def test_series_with_the_same_host_are_not_lost():
    reply = vector(({'host': 'web1', 'code': '500'}, '0.9'), ({'host': 'web1', 'code': '200'}, '0.0'))
    result, _fetch, _clock = run(prom(query='rate(errors_total{host=~"$hosts"}[1m])', hosts=['web1'], count=1), reply)
    assert result['measurements'][0]['outcome'] != 'pass'
