# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Tests for module_utils/analysis.py and the metric_analysis module.

The logic runs with an injected fetch, clock and sleep (no network, no sleeping); the real
fetch path and the module run against a local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from core_compat import patch_module_args

from ansible_collections.hotswap.deploy.plugins.module_utils import analysis as A
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.modules import metric_analysis as MODULE

URL = 'http://127.0.0.1:9/stats'
SECRET = 'Bearer an4lys1s-t0ken'
START = datetime.datetime(2026, 11, 21, 14, 30, 0, tzinfo=datetime.timezone.utc)


# --------------------------------------------------------------------------- fakes

class Script(object):
    """A fetch that answers from a list of replies, one per call; records each call.

    A reply is an exception to raise, a (status, body) pair, or a plain object that is sent as a
    200 JSON body.
    """

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = []

    def __call__(self, url, headers, timeout, validate_certs):
        self.calls.append(dict(url=url, headers=headers, timeout=timeout, validate_certs=validate_certs))
        reply = self.replies[len(self.calls) - 1]
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, tuple):
            return reply
        return 200, json.dumps(reply).encode()


class Clock(object):
    """now() advances one second per call; sleep() records and advances without sleeping."""

    def __init__(self):
        self.moment = START
        self.slept = []

    def now(self):
        moment = self.moment
        self.moment += datetime.timedelta(seconds=1)
        return moment

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.moment += datetime.timedelta(seconds=seconds)


# user:password, joined into loopback URLs by the tests (never written as one URL).
CREDS = ':'.join(('user', 'hunter2'))


def rate(value):
    return {'version': '1.0.0', 'requests': 100, 'errors': 0, 'error_rate': value}


def analyse(replies, **options):
    """Run an analysis of error_rate <= 0.05 (unless overridden) against scripted replies."""
    settings = dict(url=URL, query='error_rate', threshold=0.05, interval=10)
    settings.update(options)
    fetch, clock = Script(replies), Clock()
    result = A.run_analysis(A.build_analysis(**settings), fetch=fetch, sleep=clock.sleep, now=clock.now)
    return result, fetch, clock


def outcomes(result):
    return [item['outcome'] for item in result['measurements']]


# --------------------------------------------------------------------------- options

def test_defaults_match_the_argument_spec():
    built = A.build_analysis(URL, 'error_rate', 0.05)
    spec = MODULE.ARGUMENT_SPEC
    assert built.comparison == spec['comparison']['default'] == '<='
    assert built.count == spec['count']['default'] == 3
    assert built.interval == spec['interval']['default'] == 10
    assert built.timeout == spec['timeout']['default'] == 5
    assert built.failure_limit == spec['failure_limit']['default'] == 0
    assert built.consecutive_error_limit == spec['consecutive_error_limit']['default'] == 4
    assert built.validate_certs is spec['validate_certs']['default'] is True
    assert set(spec['comparison']['choices']) == {'<', '<=', '>', '>=', '==', '!='}
    assert tuple(spec['fail_on']['choices']) == A.FAIL_ON_CHOICES
    assert spec['headers']['no_log'] is True


@pytest.mark.parametrize('given, expected', [
    (0.05, 0.05), (3, 3), (0, 0), (-1.5, -1.5), ('0.013', 0.013), (' 7 ', 7.0), ('1e-3', 0.001),
])
def test_threshold_accepts_numbers_and_numeric_strings(given, expected):
    assert A.build_analysis(URL, 'error_rate', given).threshold == expected


@pytest.mark.parametrize('given', ['abc', '', True, False, None, [1], {'a': 1}, 'NaN', 'inf', float('nan')])
def test_threshold_that_is_not_a_finite_number_is_refused(given):
    with pytest.raises(HotswapError) as err:
        A.build_analysis(URL, 'error_rate', given)
    assert 'threshold must be a number, got %r' % (given,) in err.value.msg
    assert err.value.msg.startswith('configuring the metric analysis: ')
    assert 'Give a finite number such as 0.05' in err.value.msg


def test_threshold_message_names_the_bad_value():
    with pytest.raises(HotswapError) as err:
        A.build_analysis(URL, 'error_rate', 'abc')
    assert "threshold must be a number, got 'abc' (str)" in err.value.msg


@pytest.mark.parametrize('query', ['error_rate ==', '[?', 'a.[', '`unterminated'])
def test_invalid_jmespath_is_refused(query):
    with pytest.raises(HotswapError) as err:
        A.build_analysis(URL, query, 1)
    msg = err.value.msg
    assert msg.startswith('configuring the metric analysis: query %r is not a valid JMESPath expression (' % query)
    assert 'Fix the expression' in msg


@pytest.mark.parametrize('query', ['', '   ', None])
def test_empty_query_is_refused(query):
    with pytest.raises(HotswapError, match='query is empty. Give a JMESPath expression'):
        A.build_analysis(URL, query, 1)


@pytest.mark.parametrize('url, cause', [
    ('', 'the URL is empty'),
    ('ftp://127.0.0.1/stats', "has scheme 'ftp'"),
    ('http:///stats', 'has no host'),
    ('http://127.0.0.1:99999/stats', 'cannot parse URL'),
    ('127.0.0.1:8080/stats', 'has scheme'),
])
def test_bad_url_is_refused(url, cause):
    with pytest.raises(HotswapError) as err:
        A.build_analysis(url, 'error_rate', 1)
    assert err.value.msg.startswith('configuring the metric analysis: ')
    assert cause in err.value.msg and 'Use an absolute http:// or https:// URL' in err.value.msg


def test_password_in_url_is_redacted_in_messages_and_results():
    url = 'http://' + CREDS + '@127.0.0.1:9/stats'
    with pytest.raises(HotswapError) as err:
        A.build_analysis('ftp://' + CREDS + '@127.0.0.1:9/stats', 'error_rate', 1)
    assert 'hunter2' not in err.value.msg and '********' in err.value.msg
    result, fetch, _clock = analyse([rate(0)], url=url, count=1)
    assert fetch.calls[0]['url'] == url                       # sent as given
    assert result['url'] == 'http://' + CREDS.replace('hunter2', '********') + '@127.0.0.1:9/stats'
    assert 'hunter2' not in json.dumps(result)


@pytest.mark.parametrize('headers, cause', [
    ('Authorization: x', 'headers must be a dictionary'),
    ({'Bad:Name': 'x'}, "header name 'Bad:Name' is not valid"),
    ({'X-Token': 'a\nb'}, 'contains a line break'),
    ({'X-Token': None}, 'is not a string'),
])
def test_bad_headers_are_refused(headers, cause):
    with pytest.raises(HotswapError, match=re.escape(cause)):
        A.build_analysis(URL, 'error_rate', 1, headers=headers)


@pytest.mark.parametrize('option, value, cause', [
    ('comparison', '=<', "comparison '=<' is not one of < <= > >= == !="),
    ('comparison', 'lt', "comparison 'lt' is not one of"),
    ('count', 0, 'count is 0; it must be a whole number >= 1'),
    ('count', 2.5, 'count is 2.5; it must be a whole number >= 1'),
    ('count', True, 'count is True'),
    ('failure_limit', -1, 'failure_limit is -1; it must be a whole number >= 0'),
    ('consecutive_error_limit', -2, 'consecutive_error_limit is -2; it must be a whole number >= 0'),
    ('interval', -0.5, 'interval is -0.5; it must be a number of seconds >= 0'),
    ('timeout', 0, 'timeout is 0; it must be a number of seconds > 0'),
    ('timeout', 'soon', "timeout is 'soon'"),
])
def test_bad_numbers_and_choices_are_refused(option, value, cause):
    with pytest.raises(HotswapError) as err:
        A.build_analysis(URL, 'error_rate', 1, **{option: value})
    assert cause in err.value.msg
    assert err.value.msg.startswith('configuring the metric analysis: ')


def test_zero_limits_and_interval_are_valid():
    built = A.build_analysis(URL, 'error_rate', 1, count=1, interval=0, failure_limit=0, consecutive_error_limit=0)
    assert (built.count, built.interval, built.failure_limit, built.consecutive_error_limit) == (1, 0.0, 0, 0)


def test_fail_on():
    assert A.should_fail(A.FAIL, 'fail') is True
    assert A.should_fail(A.INCONCLUSIVE, 'fail') is False
    assert A.should_fail(A.INCONCLUSIVE, 'fail_or_inconclusive') is True
    assert A.should_fail(A.FAIL, 'never') is False
    assert A.should_fail(A.PASS, 'fail_or_inconclusive') is False
    assert A.should_fail(A.SKIPPED, 'fail_or_inconclusive') is False
    with pytest.raises(HotswapError, match="fail_on 'always' is not one of"):
        A.should_fail(A.PASS, 'always')


# --------------------------------------------------------------------------- numbers

@pytest.mark.parametrize('value, expected', [
    (0, 0), (0.013, 0.013), (-4, -4), ('0.013', 0.013), ('12', 12.0), (' 3.5\n', 3.5), ('1e2', 100.0),
])
def test_as_number_accepts(value, expected):
    assert A.as_number(value) == expected


@pytest.mark.parametrize('value', [True, False, None, 'abc', '', 'NaN', '+Inf', '-inf', float('nan'),
                                   float('inf'), [0.1], {'v': 1}])
def test_as_number_refuses(value):
    assert A.as_number(value) is None


# --------------------------------------------------------------------------- one measurement

@pytest.mark.parametrize('comparison, value, threshold, outcome', [
    ('<=', 0.05, 0.05, 'pass'), ('<=', 0.051, 0.05, 'fail'),
    ('<', 0.05, 0.05, 'fail'), ('<', 0.049, 0.05, 'pass'),
    ('>', 10, 9, 'pass'), ('>', 9, 9, 'fail'),
    ('>=', 9, 9, 'pass'), ('>=', 8.99, 9, 'fail'),
    ('==', 3, '3', 'pass'), ('==', 3.5, 3, 'fail'),
    ('!=', 0, 1, 'pass'), ('!=', 1, 1, 'fail'),
])
def test_comparison_decides_pass_or_fail(comparison, value, threshold, outcome):
    result, _fetch, _clock = analyse([rate(value)], comparison=comparison, threshold=threshold, count=1)
    assert result['measurements'] == [dict(at='2026-11-21T14:30:00.000Z', value=value, outcome=outcome, error=None)]


def test_numeric_string_from_the_body_is_a_number():
    body = {'status': 'success', 'data': {'result': [{'metric': {}, 'value': [1700000000.1, '0.013']}]}}
    result, _fetch, _clock = analyse([body], query='data.result[0].value[1]', count=1)
    assert result['measurements'][0]['value'] == 0.013 and result['verdict'] == 'pass'


@pytest.mark.parametrize('reply, error', [
    (ConnectionRefusedError(111, 'Connection refused'), 'connection refused (nothing is listening there yet)'),
    (socket.timeout('timed out'), 'timed out after 5s'),
    ((503, b'{"error_rate": 0}'), 'HTTP 503, expected a 2xx reply'),
    ((404, b'not found'), 'HTTP 404, expected a 2xx reply'),
    ((200, b'<html>oops</html>'), 'body is not JSON (starts with "<html>oops</html>")'),
    ({'requests': 3}, "query 'error_rate' found nothing (null) in the body"),
    ({'error_rate': None}, "query 'error_rate' found nothing (null) in the body"),
    ({'error_rate': 'high'}, "query 'error_rate' gave \"high\", which is not a finite number"),
    ({'error_rate': True}, "query 'error_rate' gave true, which is not a finite number"),
    ({'error_rate': 'NaN'}, "query 'error_rate' gave \"NaN\", which is not a finite number"),
    ({'error_rate': [0.1, 0.2]}, 'which is not a finite number; select one element, for example with [0]'),
    ({'error_rate': {'v': 1}}, "gave {\"v\": 1}, which is not a finite number"),
])
def test_errors_are_measurements_that_could_not_be_taken(reply, error):
    result, _fetch, _clock = analyse([reply], count=1)
    item = result['measurements'][0]
    assert item['outcome'] == 'error' and item['value'] is None
    assert error in item['error']
    assert result['errors'] == 1 and result['failures'] == 0


def test_query_that_cannot_be_evaluated_is_an_error():
    # Valid syntax, but abs() of a string is a run-time type error.
    result, _fetch, _clock = analyse([{'error_rate': 'x'}], query='abs(error_rate)', count=1)
    assert "query 'abs(error_rate)' could not be evaluated on the body" in result['measurements'][0]['error']


def test_header_values_are_sent_but_masked_in_errors():
    leak = (200, ('not json, echoing %s' % SECRET).encode())
    result, fetch, _clock = analyse([leak], headers={'Authorization': SECRET}, count=1)
    assert fetch.calls[0]['headers'] == {'Authorization': SECRET}
    assert SECRET not in json.dumps(result)
    assert '********' in result['measurements'][0]['error']


def test_request_settings_are_passed_to_fetch():
    _result, fetch, _clock = analyse([rate(0)], count=1, timeout=2.5, validate_certs=False)
    assert fetch.calls == [dict(url=URL, headers={}, timeout=2.5, validate_certs=False)]


# --------------------------------------------------------------------------- the run

def test_all_pass_takes_count_measurements_interval_apart():
    result, fetch, clock = analyse([rate(0), rate(0.01), rate(0.02)], count=3, interval=7)
    assert result['verdict'] == 'pass'
    assert outcomes(result) == ['pass', 'pass', 'pass']
    assert len(fetch.calls) == 3 and clock.slept == [7, 7]     # no sleep after the last one
    assert [item['at'] for item in result['measurements']] == [
        '2026-11-21T14:30:00.000Z', '2026-11-21T14:30:08.000Z', '2026-11-21T14:30:16.000Z']
    assert result['reason'] == ('3 of 3 measurement(s) passed (value <= 0.05), 0 failure(s) within failure_limit 0, '
                                '0 error(s); last value 0.02.')
    assert (result['failures'], result['errors'], result['max_consecutive_errors']) == (0, 0, 0)
    assert (result['url'], result['query'], result['threshold'], result['comparison']) == (URL, 'error_rate', 0.05, '<=')


def test_interval_zero_never_sleeps():
    _result, _fetch, clock = analyse([rate(0)] * 3, interval=0)
    assert clock.slept == []


def test_first_failure_stops_with_the_default_failure_limit():
    result, fetch, _clock = analyse([rate(0), rate(0.3), rate(0)], count=3)
    assert result['verdict'] == 'fail'
    assert len(fetch.calls) == 2 and outcomes(result) == ['pass', 'fail']
    assert result['failures'] == 1
    assert result['reason'] == ('1 measurement(s) failed, more than failure_limit 0 (stopped after measurement 2 of 3); '
                                'last value 0.3 is not <= 0.05.')


def test_failures_up_to_the_limit_still_pass():
    result, fetch, _clock = analyse([rate(0.3), rate(0), rate(0.4), rate(0)], count=4, failure_limit=2)
    assert result['verdict'] == 'pass' and len(fetch.calls) == 4
    assert result['failures'] == 2
    assert '2 failure(s) within failure_limit 2' in result['reason']


def test_one_failure_over_the_limit_stops_early():
    result, fetch, _clock = analyse([rate(0.3), rate(0.3), rate(0), rate(0)], count=4, failure_limit=1)
    assert result['verdict'] == 'fail' and len(fetch.calls) == 2 and result['failures'] == 2


def test_errors_do_not_count_as_failures():
    refused = ConnectionRefusedError(111, 'Connection refused')
    result, _fetch, _clock = analyse([refused, rate(0), refused], count=3)
    assert result['verdict'] == 'pass'
    assert (result['failures'], result['errors'], result['max_consecutive_errors']) == (0, 2, 1)
    assert '2 error(s)' in result['reason']


def test_consecutive_errors_over_the_limit_are_inconclusive_and_stop():
    refused = ConnectionRefusedError(111, 'Connection refused')
    replies = [rate(0), refused, refused, refused, rate(0), rate(0)]
    result, fetch, _clock = analyse(replies, count=6, consecutive_error_limit=2)
    assert result['verdict'] == 'inconclusive'
    assert len(fetch.calls) == 4 and outcomes(result) == ['pass', 'error', 'error', 'error']
    assert result['max_consecutive_errors'] == 3 and result['errors'] == 3
    assert result['reason'] == ('3 consecutive measurement(s) could not be taken, more than consecutive_error_limit 2 '
                                '(stopped after measurement 4 of 6); last error: connection refused (nothing is '
                                'listening there yet).')


def test_errors_that_are_not_consecutive_do_not_trip_the_limit():
    refused = ConnectionRefusedError(111, 'Connection refused')
    replies = [refused, refused, rate(0), refused, refused, rate(0), refused, refused]
    result, fetch, _clock = analyse(replies, count=8, consecutive_error_limit=2)
    assert result['verdict'] == 'pass' and len(fetch.calls) == 8
    assert result['errors'] == 6 and result['max_consecutive_errors'] == 2


def test_consecutive_error_limit_zero_stops_at_the_first_error():
    result, fetch, _clock = analyse([rate(0), (500, b'boom'), rate(0)], count=3, consecutive_error_limit=0)
    assert result['verdict'] == 'inconclusive' and len(fetch.calls) == 2


def test_all_errors_within_the_limit_are_inconclusive():
    result, fetch, _clock = analyse([(503, b'')] * 3, count=3, consecutive_error_limit=4)
    assert result['verdict'] == 'inconclusive' and len(fetch.calls) == 3
    assert result['reason'] == 'none of the 3 measurement(s) could be taken; last error: HTTP 503, expected a 2xx reply.'


def test_failure_is_reported_even_after_errors():
    refused = ConnectionRefusedError(111, 'Connection refused')
    result, _fetch, _clock = analyse([refused, refused, rate(0.9)], count=3)
    assert result['verdict'] == 'fail' and result['errors'] == 2 and result['failures'] == 1


def test_check_mode_result_is_skipped_without_measurements():
    built = A.build_analysis(URL, 'error_rate', '0.05')
    result = A.skipped_result(built)
    assert result['verdict'] == 'skipped' and result['measurements'] == []
    assert (result['failures'], result['errors'], result['max_consecutive_errors']) == (0, 0, 0)
    assert result['threshold'] == 0.05


def test_iso_utc_converts_to_utc():
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    moment = datetime.datetime(2026, 11, 21, 16, 30, 5, 123456, tzinfo=plus_two)
    assert A.iso_utc(moment) == '2026-11-21T14:30:05.123Z'


# --------------------------------------------------------------------------- a real server

class StatsHandler(BaseHTTPRequestHandler):
    """/stats answers the server's current JSON document; every request is counted."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        with self.server.lock:
            self.server.requests.append((self.path, self.headers.get('Authorization')))
            status, body = self.server.reply
        data = body.encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that gave up (the timeout tests) has closed before the answer: not a failure here.
        pass


@pytest.fixture
def server():
    srv = QuietServer(('127.0.0.1', 0), StatsHandler)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.requests = []
    srv.reply = (200, json.dumps(rate(0.01)))
    srv.base = 'http://127.0.0.1:%d' % srv.server_address[1]
    thread = threading.Thread(target=srv.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_real_fetch_path(server):
    built = A.build_analysis(server.base + '/stats', 'error_rate', 0.05, count=2, interval=0,
                             headers={'Authorization': SECRET}, timeout=3)
    result = A.run_analysis(built)
    assert result['verdict'] == 'pass' and [m['value'] for m in result['measurements']] == [0.01, 0.01]
    assert server.requests == [('/stats', SECRET)] * 2
    assert re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$', result['measurements'][0]['at'])


def test_real_fetch_status_and_refused(server):
    server.reply = (500, '{"error_rate": 0}')
    status, body = A.fetch_url(server.base + '/stats', {}, 3, True)
    assert (status, body) == (500, b'{"error_rate": 0}')
    with socket.socket() as sock:                     # a port nobody listens on
        sock.bind(('127.0.0.1', 0))
        closed = 'http://127.0.0.1:%d/stats' % sock.getsockname()[1]
    result = A.run_analysis(A.build_analysis(closed, 'error_rate', 1, count=1, timeout=3))
    assert result['verdict'] == 'inconclusive'
    assert result['measurements'][0]['error'] == 'connection refused (nothing is listening there yet)'


# --------------------------------------------------------------------------- the module

def run_module(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            MODULE.main()
    return json.loads(capsys.readouterr().out)


def test_module_pass(server, capsys):
    res = run_module(capsys, url=server.base + '/stats', query='error_rate', threshold='0.05', interval=0)
    assert res['changed'] is False and res['verdict'] == 'pass' and len(res['measurements']) == 3
    assert 'failed' not in res or res['failed'] is False


def test_module_fails_on_fail_and_returns_the_result(server, capsys):
    server.reply = (200, json.dumps(rate(0.5)))
    res = run_module(capsys, url=server.base + '/stats', query='error_rate', threshold=0.05, interval=0)
    assert res['failed'] is True and res['verdict'] == 'fail' and len(res['measurements']) == 1
    assert res['msg'].startswith('metric analysis of %s/stats: error_rate <= 0.05: fail, 1 measurement(s) failed'
                                 % server.base)
    assert 'set fail_on to change when this task fails' in res['msg']


def test_module_fail_on_never_returns_inconclusive(server, capsys):
    server.reply = (503, '{}')
    res = run_module(capsys, url=server.base + '/stats', query='error_rate', threshold=0.05, interval=0,
                     fail_on='never')
    assert 'failed' not in res and res['verdict'] == 'inconclusive' and res['errors'] == 3


def test_module_check_mode_sends_nothing(server, capsys):
    res = run_module(capsys, url=server.base + '/stats', query='error_rate', threshold=0.05,
                     _ansible_check_mode=True)
    assert res['verdict'] == 'skipped' and res['changed'] is False and 'failed' not in res
    assert server.requests == []


@pytest.mark.parametrize('args, cause', [
    (dict(query='error_rate ==', threshold=0.05), "query 'error_rate ==' is not a valid JMESPath expression"),
    (dict(query='error_rate', threshold='abc'), "threshold must be a number, got 'abc'"),
    (dict(query='error_rate', threshold=0.05, count=0), 'count is 0'),
])
def test_module_bad_input_fails_before_any_request_even_in_check_mode(server, capsys, args, cause):
    for check in (False, True):
        res = run_module(capsys, url=server.base + '/stats', _ansible_check_mode=check, **args)
        assert res['failed'] is True and cause in res['msg']
        assert 'verdict' not in res
    assert server.requests == []
