# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Tests for module_utils/health.py against real local servers (127.0.0.1 only)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import health
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.health import (
    FAIL,
    INCONCLUSIVE,
    MASK,
    PASS,
    Observation,
    build_probe,
    observe,
    parse_tcp_target,
    run_checks,
    run_health_check,
    should_fail,
)

SECRET = 'Bearer s3cr3t-token-value-42'
SLOW_SECONDS = 3


# --------------------------------------------------------------------------- servers

class Handler(BaseHTTPRequestHandler):
    """Routes by path; the server object carries a per-test flaky counter."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, code, body, ctype='application/json'):
        data = body.encode('utf-8') if isinstance(body, str) else body
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path
        if path == '/healthz':
            self._send(200, json.dumps({'status': 'ok', 'version': '1', 'checks': {'db': 'up'}}))
        elif path == '/v2':
            self._send(200, json.dumps({'status': 'ok', 'version': '2'}))
        elif path == '/numeric-version':
            self._send(200, json.dumps({'status': 'ok', 'version': 1}))
        elif path == '/down':
            self._send(503, json.dumps({'status': 'down', 'version': '1'}))
        elif path == '/degraded':
            self._send(200, json.dumps({'status': 'degraded', 'version': '1', 'checks': {'db': 'down'}}))
        elif path == '/no-version':
            self._send(200, json.dumps({'status': 'ok'}))
        elif path == '/text-version':
            self._send(200, '1\n', 'text/plain')
        elif path == '/html':
            self._send(200, '<html><body>ok</body></html>', 'text/html')
        elif path == '/big':
            self._send(200, 'x' * 5000, 'text/plain')
        elif path == '/echo-headers':
            # A misbehaving app that echoes the request headers back: the secret is in the body.
            self._send(200, json.dumps({'status': 'ok', 'version': '1',
                                        'auth': self.headers.get('Authorization', '')}))
        elif path == '/require-auth':
            if self.headers.get('Authorization') == SECRET:
                self._send(200, json.dumps({'status': 'ok', 'version': '1'}))
            else:
                self._send(401, json.dumps({'error': 'unauthorized'}))
        elif path == '/slow':
            time.sleep(SLOW_SECONDS)
            self._send(200, json.dumps({'status': 'ok', 'version': '1'}))
        elif path == '/redirect':
            self.send_response(302)
            self.send_header('Location', '/healthz')
            self.send_header('Content-Length', '0')
            self.end_headers()
        elif path == '/flaky':
            with self.server.lock:
                self.server.hits += 1
                hits = self.server.hits
            if hits <= self.server.flaky_failures:
                self._send(503, json.dumps({'status': 'starting'}))
            else:
                self._send(200, json.dumps({'status': 'ok', 'version': '1'}))
        elif path == '/hangup':
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._send(404, json.dumps({'error': 'not found'}))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ssl_context=None):
        super(Server, self).__init__(('127.0.0.1', 0), Handler)
        self.lock = threading.Lock()
        self.hits = 0
        self.flaky_failures = 0
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request, client_address):
        pass  # a client that gave up (timeout tests) is expected; keep the output clean

    @property
    def base(self):
        return '%s://127.0.0.1:%d' % ('https' if isinstance(self.socket, ssl.SSLSocket) else 'http',
                                      self.server_address[1])


def _serve(server):
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05})
    thread.daemon = True
    thread.start()
    return thread


@pytest.fixture(scope='module')
def http_server():
    server = Server()
    thread = _serve(server)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def flaky(http_server):
    http_server.hits = 0
    yield http_server
    http_server.hits = 0
    http_server.flaky_failures = 0


@pytest.fixture(scope='module')
def https_server(tmp_path_factory):
    openssl = shutil.which('openssl')
    if openssl is None:
        pytest.skip('the openssl CLI is needed to make a self-signed certificate')
    workdir = tmp_path_factory.mktemp('tls')
    cert, key = str(workdir / 'cert.pem'), str(workdir / 'key.pem')
    subprocess.run([openssl, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
                    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
                   check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Server(ssl_context=context)
    thread = _serve(server)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def tcp_listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    sock.listen(16)
    yield '127.0.0.1:%d' % sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope='module')
def run_command():
    """The real AnsibleModule.run_command (what the module passes in)."""
    from ansible.module_utils import basic
    saved = basic._ANSIBLE_ARGS, getattr(basic, '_ANSIBLE_PROFILE', None)
    basic._ANSIBLE_ARGS = json.dumps({'ANSIBLE_MODULE_ARGS': {}}).encode('utf-8')
    if hasattr(basic, '_ANSIBLE_PROFILE'):
        basic._ANSIBLE_PROFILE = 'legacy'
    try:
        module = basic.AnsibleModule(argument_spec={})
    finally:
        basic._ANSIBLE_ARGS = saved[0]
        if hasattr(basic, '_ANSIBLE_PROFILE'):
            basic._ANSIBLE_PROFILE = saved[1]
    return module.run_command


def http(server, path, **kwargs):
    kwargs.setdefault('timeout', 2)
    return build_probe('http', server.base + path, **kwargs)


def once(probe, **kwargs):
    return run_health_check(probe, interval=0, **kwargs)


def assert_secret_absent(value):
    assert SECRET not in json.dumps(value)
    assert 's3cr3t' not in json.dumps(value)


# --------------------------------------------------------------------------- HTTP: one attempt

def test_http_healthy_json_with_expected_version_passes(http_server):
    result = once(http(http_server, '/healthz', expected_version='1'))
    assert result['outcome'] == PASS
    assert result['attempts'] == 1
    assert result['status'] == 200
    assert result['version'] == '1'
    assert result['reason'].startswith('passed on attempt 1 of 1: HTTP 200, version 1')
    obs = result['observations'][0]
    assert set(obs) == {'attempt', 'outcome', 'reason', 'status', 'version', 'elapsed_ms', 'body'}
    assert obs['attempt'] == 1 and obs['elapsed_ms'] >= 0
    assert json.loads(obs['body'])['status'] == 'ok'
    json.dumps(result)  # the result is JSON-ready


def test_http_wrong_version_fails(http_server):
    result = once(http(http_server, '/v2', expected_version='1'))
    assert result['outcome'] == FAIL
    assert result['version'] == '2'
    assert "version is '2', expected '1'" in result['reason']


def test_http_numeric_json_version_compares_as_string(http_server):
    assert once(http(http_server, '/numeric-version', expected_version='1'))['outcome'] == PASS


def test_http_json_without_version_field_fails_with_clear_reason(http_server):
    result = once(http(http_server, '/no-version', expected_version='1'))
    assert result['outcome'] == FAIL
    assert 'no top-level "version" field' in result['reason']
    assert result['version'] is None


def test_http_plain_text_version_is_compared_stripped(http_server):
    result = once(http(http_server, '/text-version', expected_version=' 1 '))
    assert result['outcome'] == PASS
    assert result['version'] == '1'
    assert once(http(http_server, '/text-version', expected_version='2'))['outcome'] == FAIL


def test_http_plain_body_is_not_reported_as_version_without_expected_version(http_server):
    result = once(http(http_server, '/text-version'))
    assert result['outcome'] == PASS and result['version'] is None


def test_http_503_fails_with_status_reason(http_server):
    result = once(http(http_server, '/down'))
    assert result['outcome'] == FAIL
    assert result['status'] == 503
    assert 'HTTP 503: status 503 is not one of [200]' in result['reason']
    # the reply was read even though open_url raised HTTPError
    assert json.loads(result['observations'][0]['body'])['status'] == 'down'


def test_http_status_code_list_can_accept_other_codes(http_server):
    assert once(http(http_server, '/down', status_code=[200, 503]))['outcome'] == PASS
    result = once(http(http_server, '/healthz', status_code=[204]))
    assert result['outcome'] == FAIL and 'status 200 is not one of [204]' in result['reason']


def test_http_404_fails(http_server):
    result = once(http(http_server, '/nope'))
    assert result['outcome'] == FAIL and result['status'] == 404


def test_http_redirect_is_followed(http_server):
    result = once(http(http_server, '/redirect', expected_version='1'))
    assert result['outcome'] == PASS and result['status'] == 200


def test_http_body_regex(http_server):
    assert once(http(http_server, '/healthz', body_regex=r'"status":\s*"ok"'))['outcome'] == PASS
    result = once(http(http_server, '/degraded', body_regex=r'"status":\s*"ok"'))
    assert result['outcome'] == FAIL
    assert 'body does not match body_regex' in result['reason']


def test_http_json_query_true_and_false(http_server):
    query = "status == 'ok' && checks.db == 'up'"
    assert once(http(http_server, '/healthz', json_query=query))['outcome'] == PASS
    result = once(http(http_server, '/degraded', json_query=query))
    assert result['outcome'] == FAIL
    assert 'is false (result: false)' in result['reason']


def test_http_json_query_on_non_json_body_fails(http_server):
    result = once(http(http_server, '/html', json_query="status == 'ok'"))
    assert result['outcome'] == FAIL
    assert 'body is not JSON' in result['reason']


def test_http_several_violations_are_all_reported(http_server):
    result = once(http(http_server, '/down', expected_version='2', json_query="status == 'ok'"))
    assert result['outcome'] == FAIL
    for part in ('status 503', "json_query \"status == 'ok'\" is false", "version is '1', expected '2'"):
        assert part in result['reason']


def test_http_body_excerpt_is_truncated(http_server):
    body = once(http(http_server, '/big'))['observations'][0]['body']
    assert len(body) == health.BODY_EXCERPT_MAX and body.endswith('...')


def test_http_connection_refused_is_inconclusive(closed_port):
    result = once(build_probe('http', 'http://127.0.0.1:%d/healthz' % closed_port, timeout=2))
    assert result['outcome'] == INCONCLUSIVE
    assert 'connection refused' in result['reason']
    assert result['status'] is None


def test_http_slow_reply_times_out_inconclusive(http_server):
    started = time.monotonic()
    result = once(http(http_server, '/slow', timeout=0.3))
    assert time.monotonic() - started < SLOW_SECONDS
    assert result['outcome'] == INCONCLUSIVE
    assert 'timed out after 0.3s' in result['reason']


def test_http_connection_closed_without_reply_is_inconclusive(http_server):
    result = once(http(http_server, '/hangup'))
    assert result['outcome'] == INCONCLUSIVE
    assert 'without a reply' in result['reason'] or 'reset' in result['reason']


def test_http_unresolvable_host_is_inconclusive(monkeypatch):
    # The resolver fails here, on this machine: no lookup is sent anywhere.
    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
    monkeypatch.setattr(socket, 'getaddrinfo', no_such_name)
    result = once(build_probe('http', 'http://127.0.0.1:1/healthz', timeout=2))
    assert result['outcome'] == INCONCLUSIVE
    assert 'resolve' in result['reason'] or 'network error' in result['reason']


# --------------------------------------------------------------------------- HTTPS

def test_https_self_signed_fails_by_default(https_server):
    result = once(http(https_server, '/healthz', expected_version='1'))
    assert result['outcome'] == INCONCLUSIVE
    assert 'TLS certificate verification failed' in result['reason']
    assert 'validate_certs: false' in result['reason']
    assert should_fail(result['outcome'], 'fail_or_inconclusive')


def test_https_self_signed_passes_with_validate_certs_false(https_server):
    result = once(http(https_server, '/healthz', expected_version='1', validate_certs=False))
    assert result['outcome'] == PASS
    assert result['version'] == '1'


def test_http_client_against_https_server_is_inconclusive(https_server):
    url = 'http://127.0.0.1:%d/healthz' % https_server.server_address[1]
    result = once(build_probe('http', url, timeout=2))
    assert result['outcome'] == INCONCLUSIVE


# --------------------------------------------------------------------------- headers are secrets

def test_header_is_sent(http_server):
    assert once(http(http_server, '/require-auth'))['outcome'] == FAIL
    assert once(http(http_server, '/require-auth', headers={'Authorization': SECRET}))['outcome'] == PASS


def test_header_value_never_returned_even_when_echoed(http_server):
    result = once(http(http_server, '/echo-headers', headers={'Authorization': SECRET}, expected_version='1'))
    assert result['outcome'] == PASS
    assert MASK in result['observations'][0]['body']
    assert_secret_absent(result)


def test_header_value_masked_in_failure_reasons(http_server):
    # The secret ends up in a reason when the version is the echoed text itself.
    result = once(http(http_server, '/echo-headers', headers={'X-Token': 's3cr3t'}, body_regex='s3cr3t-nope'))
    assert result['outcome'] == FAIL
    assert_secret_absent(result)


def test_header_value_never_in_validation_errors():
    with pytest.raises(HotswapError) as err:
        build_probe('tcp', '127.0.0.1:1', headers={'Authorization': SECRET})
    assert SECRET not in err.value.msg
    with pytest.raises(HotswapError) as err:
        build_probe('http', 'http://127.0.0.1/', headers={'Authorization': SECRET + '\n'})
    assert SECRET not in err.value.msg and 'Authorization' in err.value.msg


def test_mask_secrets_longest_first():
    assert health.mask_secrets('a-abc-ab', ['ab', 'abc']) == 'a-%s-%s' % (MASK, MASK)
    assert health.mask_secrets(None, ['x']) is None


def test_redact_url_hides_password():
    with_credentials = 'http://%s@127.0.0.1:8080/x'
    assert health.redact_url(with_credentials % 'user:pw') == with_credentials % ('user:' + MASK)
    assert health.redact_url('http://127.0.0.1/x') == 'http://127.0.0.1/x'


# --------------------------------------------------------------------------- TCP

def test_tcp_listener_passes(tcp_listener):
    result = once(build_probe('tcp', tcp_listener, timeout=2))
    assert result['outcome'] == PASS
    assert result['reason'].endswith('connected to %s' % tcp_listener)
    assert result['status'] is None and result['version'] is None


def test_tcp_closed_port_is_inconclusive(closed_port):
    result = once(build_probe('tcp', '127.0.0.1:%d' % closed_port, timeout=2))
    assert result['outcome'] == INCONCLUSIVE
    assert 'connection refused' in result['reason']


def test_tcp_ipv6_literal_parses():
    assert parse_tcp_target('[::1]:8080') == ('::1', 8080)
    assert parse_tcp_target('localhost:1') == ('localhost', 1)


# --------------------------------------------------------------------------- command

def test_command_true_passes(run_command):
    result = once(build_probe('command', ['true']), run_command=run_command)
    assert result['outcome'] == PASS and result['reason'].endswith('command exited with rc 0')


def test_command_false_fails(run_command):
    result = once(build_probe('command', 'false'), run_command=run_command)
    assert result['outcome'] == FAIL and 'rc 1' in result['reason']


def test_command_stderr_tail_in_reason(run_command):
    probe = build_probe('command', ['sh', '-c', 'echo starting; echo "db down" >&2; exit 3'])
    result = once(probe, run_command=run_command)
    assert result['outcome'] == FAIL
    assert 'command exited with rc 3: db down' in result['reason']


def test_command_stdout_conditions(run_command):
    probe = build_probe('command', ['sh', '-c', 'echo \'{"version": "1", "status": "ok"}\''],
                        expected_version='1', json_query="status == 'ok'")
    result = once(probe, run_command=run_command)
    assert result['outcome'] == PASS and result['version'] == '1'
    probe = build_probe('command', 'echo 2', expected_version='1')
    result = once(probe, run_command=run_command)
    assert result['outcome'] == FAIL and "version is '2', expected '1'" in result['reason']


def test_command_timeout_kills_and_is_inconclusive(run_command):
    started = time.monotonic()
    result = once(build_probe('command', ['sleep', '30'], timeout=0.3), run_command=run_command)
    assert time.monotonic() - started < 10
    assert result['outcome'] == INCONCLUSIVE
    assert 'timed out after 0.3s and was killed' in result['reason']


def test_command_not_found_is_inconclusive(run_command):
    result = once(build_probe('command', ['/nonexistent/hotswap-probe']), run_command=run_command)
    assert result['outcome'] == INCONCLUSIVE
    assert 'could not run the command' in result['reason']


def test_command_probe_needs_run_command():
    with pytest.raises(HotswapError):
        observe(build_probe('command', ['true']), 1)


# --------------------------------------------------------------------------- the loop, for real

def test_flaky_app_passes_after_retries(flaky):
    flaky.flaky_failures = 2
    result = run_health_check(http(flaky, '/flaky'), retries=5, interval=0.01)
    assert result['outcome'] == PASS
    assert result['attempts'] == 3
    assert [o['outcome'] for o in result['observations']] == [FAIL, FAIL, PASS]
    assert result['counts'] == {'pass': 1, 'fail': 2, 'inconclusive': 0}


def test_flaky_app_fails_when_retries_run_out(flaky):
    flaky.flaky_failures = 10
    result = run_health_check(http(flaky, '/flaky'), retries=2, interval=0.01)
    assert result['outcome'] == FAIL
    assert result['attempts'] == 3  # retries + 1
    assert result['reason'].startswith('no attempts left (3 of 3 made); attempt 3: HTTP 503')


def test_consecutive_successes_required(flaky):
    flaky.flaky_failures = 1
    result = run_health_check(http(flaky, '/flaky'), retries=5, interval=0.01, successes=3)
    assert result['outcome'] == PASS
    assert result['attempts'] == 4
    assert result['reason'].startswith('3 consecutive passes by attempt 4 of 6')


def test_refused_until_the_end_is_inconclusive(closed_port):
    probe = build_probe('tcp', '127.0.0.1:%d' % closed_port, timeout=1)
    result = run_health_check(probe, retries=2, interval=0.01)
    assert result['outcome'] == INCONCLUSIVE
    assert result['attempts'] == 3
    assert result['counts']['inconclusive'] == 3


def test_real_deadline_cuts_a_slow_attempt(http_server):
    started = time.monotonic()
    result = run_health_check(http(http_server, '/slow', timeout=5), retries=10, interval=0.1, deadline=0.5)
    took = time.monotonic() - started
    assert result['outcome'] == INCONCLUSIVE
    assert took < SLOW_SECONDS - 0.5
    assert 'deadline of 0.5s reached' in result['reason']


# --------------------------------------------------------------------------- the loop, scripted

class FakeTime(object):
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(outcomes, fake=None, cost=0.0):
    """An attempt function returning the given outcomes in order; records the timeouts it got."""
    queue = list(outcomes)
    budgets = []

    def attempt(budget):
        budgets.append(budget)
        if fake is not None:
            fake.now += cost
        outcome = queue.pop(0)
        return Observation(outcome, 'scripted %s' % outcome, status=200 if outcome != INCONCLUSIVE else None,
                           version='v%d' % len(budgets) if outcome != INCONCLUSIVE else None)

    attempt.budgets = budgets
    return attempt


def loop(outcomes, **kwargs):
    fake = FakeTime()
    cost = kwargs.pop('cost', 0.0)
    attempt = scripted(outcomes, fake, cost)
    kwargs.setdefault('interval', 1)
    result = run_checks(attempt, sleep=fake.sleep, clock=fake.clock, **kwargs)
    return result, fake, attempt


def test_loop_total_attempts_is_retries_plus_one():
    result, fake, attempt = loop([FAIL] * 4, retries=3, interval=2)
    assert result['attempts'] == 4
    assert fake.sleeps == [2, 2, 2]  # no sleep before the first attempt or after the last
    assert result['outcome'] == FAIL


def test_loop_retries_zero_is_one_attempt():
    result, fake, attempt = loop([INCONCLUSIVE])
    assert result['attempts'] == 1 and fake.sleeps == []
    assert result['outcome'] == INCONCLUSIVE


def test_loop_stops_at_first_pass():
    result, fake, attempt = loop([INCONCLUSIVE, PASS, FAIL], retries=2)
    assert result['outcome'] == PASS and result['attempts'] == 2


def test_loop_streak_resets_on_non_pass():
    result, fake, attempt = loop([PASS, FAIL, PASS, PASS], retries=3, successes=2)
    assert result['outcome'] == PASS and result['attempts'] == 4


def test_loop_last_inconclusive_after_fails_is_inconclusive():
    result, fake, attempt = loop([FAIL, FAIL, INCONCLUSIVE], retries=2)
    assert result['outcome'] == INCONCLUSIVE
    assert result['counts'] == {'pass': 0, 'fail': 2, 'inconclusive': 1}


def test_loop_last_fail_after_inconclusive_is_fail():
    result, fake, attempt = loop([INCONCLUSIVE, INCONCLUSIVE, FAIL], retries=2)
    assert result['outcome'] == FAIL


def test_loop_short_streak_at_the_end_is_inconclusive():
    result, fake, attempt = loop([FAIL, PASS, PASS], retries=2, successes=3)
    assert result['outcome'] == INCONCLUSIVE
    assert result['reason'].startswith('only 2 of 3 required consecutive passes')


def test_loop_version_and_status_are_last_seen():
    result, fake, attempt = loop([FAIL, INCONCLUSIVE], retries=1)
    assert result['version'] == 'v1' and result['status'] == 200


def test_loop_deadline_stops_before_an_attempt_that_cannot_start():
    result, fake, attempt = loop([INCONCLUSIVE] * 100, retries=99, interval=1, timeout=5, deadline=3.5, cost=0.5)
    # t=0.5 after #1, sleep to 1.5, #2 ends 2.0, sleep to 3.0, #3 ends 3.5 -> 3.5 + 1 >= 3.5: stop
    assert result['attempts'] == 3
    assert 'deadline of 3.5s reached' in result['reason']
    assert attempt.budgets[0] == 3.5  # timeout cut to the time left
    assert attempt.budgets[2] == pytest.approx(0.5)


def test_loop_deadline_does_not_stop_a_passing_run():
    result, fake, attempt = loop([PASS], retries=5, deadline=0.1)
    assert result['outcome'] == PASS


def test_loop_keeps_only_recent_observations():
    result, fake, attempt = loop([FAIL] * 60, retries=59, interval=0)
    assert result['attempts'] == 60
    assert len(result['observations']) == health.OBSERVATIONS_KEPT
    assert result['observations'][0]['attempt'] == 11
    assert result['observations'][-1]['attempt'] == 60


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize('kind, target, kwargs, needle', [
    ('udp', '127.0.0.1:53', {}, "unknown probe type 'udp'"),
    ('http', 'ftp://127.0.0.1/x', {}, "has scheme 'ftp'"),
    ('http', 'file:///etc/passwd', {}, "has scheme 'file'"),
    ('http', '127.0.0.1:8080/healthz', {}, 'Use an absolute http://'),
    ('http', 'http:///healthz', {}, 'has no host'),
    ('http', 'http://127.0.0.1:99999/', {}, 'cannot parse URL'),
    ('tcp', '127.0.0.1', {}, 'is not host:port'),
    ('tcp', '127.0.0.1:http', {}, 'no valid port'),
    ('tcp', '127.0.0.1:0', {}, 'no valid port'),
    ('tcp', ':8080', {}, 'has no host'),
    ('tcp', '::1:8080', {}, 'needs brackets'),
    ('tcp', '127.0.0.1:80', {'body_regex': 'ok'}, 'cannot be checked by a tcp probe'),
    ('command', [], {}, 'the command is empty'),
    ('command', 'echo "unbalanced', {}, 'cannot split command'),
    ('command', 42, {}, 'must be a list or a string'),
    ('http', 'http://127.0.0.1/', {'timeout': 0}, 'timeout is 0'),
    ('http', 'http://127.0.0.1/', {'timeout': -1}, 'timeout is -1'),
    ('http', 'http://127.0.0.1/', {'status_code': []}, 'between 100 and 599'),
    ('http', 'http://127.0.0.1/', {'status_code': [42]}, 'between 100 and 599'),
    ('http', 'http://127.0.0.1/', {'body_regex': '('}, 'not a valid regular expression'),
    ('http', 'http://127.0.0.1/', {'json_query': 'status =='}, 'not a valid JMESPath expression'),
    ('http', 'http://127.0.0.1/', {'json_query': ' '}, 'json_query is empty'),
    ('http', 'http://127.0.0.1/', {'headers': ['Authorization']}, 'headers must be a dictionary'),
])
def test_build_probe_rejects(kind, target, kwargs, needle):
    with pytest.raises(HotswapError) as err:
        build_probe(kind, target, **kwargs)
    msg = err.value.msg
    assert msg.startswith('configuring the health probe: ')
    assert needle in msg
    assert msg.rstrip().endswith('.')


@pytest.mark.parametrize('kwargs, needle', [
    (dict(successes=0), 'successes is 0'),
    (dict(retries=-1), 'retries is -1'),
    (dict(interval=-0.5), 'interval is -0.5'),
    (dict(timeout=0), 'timeout is 0'),
    (dict(deadline=0), 'deadline is 0'),
    (dict(retries=1, successes=3), 'could never pass. Set retries to at least 2.'),
    (dict(retries=True), 'retries must be a number'),
])
def test_schedule_rejects(kwargs, needle):
    with pytest.raises(HotswapError) as err:
        run_checks(scripted([PASS]), **kwargs)
    assert needle in err.value.msg


def test_missing_jmespath_message(monkeypatch):
    monkeypatch.setattr(health, 'jmespath', None)
    with pytest.raises(HotswapError) as err:
        build_probe('http', 'http://127.0.0.1/', json_query="status == 'ok'")
    assert 'jmespath' in err.value.msg
    assert 'delegate_to: localhost' in err.value.msg
    # probes that do not use json_query still work without it
    build_probe('http', 'http://127.0.0.1/', expected_version='1')


def test_jmespath_truthiness():
    for value in (False, None, '', [], {}):
        assert not health.jmespath_truthy(value)
    for value in (True, 0, 0.0, 'x', [0], {'a': None}):
        assert health.jmespath_truthy(value)


@pytest.mark.parametrize('outcome, fail_on, expected', [
    (PASS, 'fail_or_inconclusive', False), (FAIL, 'fail_or_inconclusive', True),
    (INCONCLUSIVE, 'fail_or_inconclusive', True),
    (PASS, 'fail', False), (FAIL, 'fail', True), (INCONCLUSIVE, 'fail', False),
    (PASS, 'never', False), (FAIL, 'never', False), (INCONCLUSIVE, 'never', False),
])
def test_should_fail(outcome, fail_on, expected):
    assert should_fail(outcome, fail_on) is expected


def test_should_fail_rejects_unknown_choice():
    with pytest.raises(HotswapError):
        should_fail(PASS, 'sometimes')


def test_observation_rejects_unknown_outcome():
    with pytest.raises(ValueError):
        Observation('maybe', 'x')


# --------------------------------------------------------------------------- the module, end to end

ANSIBLE = os.path.join(os.path.dirname(sys.executable), 'ansible')
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..',
                                           'build', 'unit-collections'))


def run_module(args):
    """``ansible localhost -m hotswap.deploy.health_check``; returns (process, result dict)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0',
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    proc = subprocess.run([ANSIBLE, 'localhost', '-c', 'local', '-m', 'hotswap.deploy.health_check',
                           '-a', json.dumps(args)], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    # ad-hoc output: "localhost | SUCCESS => {...json...}"
    match = re.search(r'^localhost \| [A-Z!]+ => ', proc.stdout, re.M)
    assert match, proc.stdout + proc.stderr
    return proc, json.loads(proc.stdout[match.end():])


@pytest.mark.skipif(not os.path.exists(ANSIBLE), reason='ansible CLI not installed next to this python')
def test_module_end_to_end(http_server, closed_port):
    # A few real `ansible` runs (each takes seconds): secrets, the failure message, fail_on, validation.
    proc, res = run_module({'url': http_server.base + '/echo-headers', 'expected_version': '1',
                            'headers': {'Authorization': SECRET}})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert res['outcome'] == PASS and res['changed'] is False and res['version'] == '1'
    assert SECRET not in proc.stdout + proc.stderr

    proc, res = run_module({'url': http_server.base + '/v2', 'expected_version': '1'})
    assert proc.returncode != 0 and res['outcome'] == FAIL
    assert res['msg'].startswith('health check of %s/v2: fail, no attempts left (1 of 1 made); attempt 1: '
                                 "HTTP 200: version is '2', expected '1'" % http_server.base)

    proc, res = run_module({'tcp': '127.0.0.1:%d' % closed_port, 'fail_on': 'fail'})
    assert proc.returncode == 0 and res['outcome'] == INCONCLUSIVE

    proc, res = run_module({'url': 'ftp://127.0.0.1/'})
    assert proc.returncode != 0 and "has scheme 'ftp'" in res['msg']
