# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Redirects: followed, but the caller's headers and credentials go to their own origin only.

Real servers on 127.0.0.1 (one per origin: another port is another origin) record the headers
every request brought.
"""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import analysis, artifact, health
from ansible_collections.hotswap.deploy.plugins.module_utils.request import (
    MAX_REDIRECTS,
    RedirectError,
    open_url_same_origin,
    origin,
)

TOKEN = 'Bearer redirect-s3cr3t-token'
CUSTOM = 'custom-s3cr3t-value'
COOKIE = 'session=cookie-s3cr3t'
BODY = b'{"status": "ok", "version": "1", "error_rate": 0}'


class Recorder(BaseHTTPRequestHandler):
    """``/to?<url>`` redirects (302) to <url>; ``/loop`` redirects to itself; anything else answers BODY."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.seen.append((self.path, dict((k.lower(), v) for k, v in self.headers.items())))
        path, _sep, query = self.path.partition('?')
        if path in ('/to', '/to-301', '/to-307', '/to-308'):
            code = {'/to': 302, '/to-301': 301, '/to-307': 307, '/to-308': 308}[path]
            self.send_response(code)
            self.send_header('Location', query)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        if path == '/echo-at-cut':
            # A body that echoes the Authorization header right across the 512-character excerpt cut.
            body = ('x' * (health.BODY_EXCERPT_MAX - 10) + self.headers.get('Authorization', '') + 'tail').encode()
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if path == '/loop':
            self.send_response(302)
            self.send_header('Location', '/loop')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context=None):
        super(Server, self).__init__(('127.0.0.1', 0), Recorder)
        self.seen = []
        self.scheme = 'http'
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)
            self.scheme = 'https'

    def handle_error(self, request, client_address):
        pass

    @property
    def base(self):
        return '%s://127.0.0.1:%d' % (self.scheme, self.server_address[1])

    def headers_at(self, path):
        return [headers for seen_path, headers in self.seen if seen_path.partition('?')[0] == path]


def _start(server):
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def servers():
    """Two origins: ``a`` (where the headers are given for) and ``b`` (another port)."""
    started = [_start(Server()), _start(Server())]
    yield started[0][0], started[1][0]
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def tls_server(tmp_path):
    openssl = shutil.which('openssl')
    if openssl is None:
        pytest.skip('the openssl CLI is needed to make a self-signed certificate')
    cert, key = str(tmp_path / 'cert.pem'), str(tmp_path / 'key.pem')
    subprocess.run([openssl, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
                    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
                   check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server, thread = _start(Server(context))
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def redirect(a, target, path='/to'):
    """URL on ``a`` that redirects to ``target``."""
    return '%s%s?%s' % (a.base, path, target)


def assert_no_secret(headers):
    text = repr(headers)
    for secret in (TOKEN, CUSTOM, COOKIE, 'cookie-s3cr3t', 'redirect-s3cr3t', 'Basic '):
        assert secret not in text, headers
    assert 'authorization' not in headers and 'cookie' not in headers and 'proxy-authorization' not in headers


GIVEN = {'Authorization': TOKEN, 'X-Custom-Token': CUSTOM, 'Cookie': COOKIE, 'Proxy-Authorization': TOKEN}


# --------------------------------------------------------------------------- the loop itself

def test_origin_makes_default_ports_explicit():
    assert origin('http://127.0.0.1/x') == origin('HTTP://127.0.0.1:80/y') == ('http', '127.0.0.1', 80)
    assert origin('https://127.0.0.1/') == ('https', '127.0.0.1', 443)
    assert origin('http://127.0.0.1/') != origin('http://127.0.0.2/') != origin('http://127.0.0.2:8080/')


@pytest.mark.parametrize('path', ['/to', '/to-301', '/to-307', '/to-308'])
def test_cross_origin_redirect_drops_every_given_header(servers, path):
    a, b = servers
    response = open_url_same_origin(redirect(a, b.base + '/final', path), headers=GIVEN, timeout=5)
    assert response.getcode() == 200 and response.read() == BODY
    assert a.headers_at(path)[0]['authorization'] == TOKEN        # the origin got them
    assert a.headers_at(path)[0]['x-custom-token'] == CUSTOM
    assert_no_secret(b.headers_at('/final')[0])                   # the other origin did not


def test_same_origin_redirect_keeps_the_headers(servers):
    a, _b = servers
    response = open_url_same_origin(redirect(a, '/final'), headers=GIVEN, timeout=5)
    assert response.getcode() == 200
    final = a.headers_at('/final')[0]
    assert final['authorization'] == TOKEN and final['x-custom-token'] == CUSTOM and final['cookie'] == COOKIE


def test_cross_origin_redirect_drops_basic_auth_and_url_credentials(servers):
    a, b = servers
    open_url_same_origin(redirect(a, b.base + '/final'), url_username='deployer', url_password='pw-s3cr3t',
                         force_basic_auth=True, timeout=5).close()
    assert a.headers_at('/to')[0]['authorization'] == 'Basic ' + base64.b64encode(b'deployer:pw-s3cr3t').decode()
    assert_no_secret(b.headers_at('/final')[0])


def test_headers_stay_dropped_when_the_chain_comes_back(servers):
    a, b = servers
    # a -> b -> a again: the token left its origin once; it is not sent again.
    open_url_same_origin(redirect(a, redirect(b, a.base + '/final')), headers=GIVEN, timeout=5).close()
    assert_no_secret(b.headers_at('/to')[0])
    assert_no_secret(a.headers_at('/final')[0])


def test_https_to_http_never_carries_the_headers(tls_server, servers):
    _a, b = servers
    response = open_url_same_origin(redirect(tls_server, b.base + '/final'), headers=GIVEN, timeout=5,
                                    validate_certs=False)
    assert response.getcode() == 200
    assert tls_server.headers_at('/to')[0]['authorization'] == TOKEN
    assert_no_secret(b.headers_at('/final')[0])


def test_redirects_are_bounded(servers):
    a, _b = servers
    with pytest.raises(RedirectError) as err:
        open_url_same_origin(a.base + '/loop', timeout=5)
    assert 'more than %d redirects' % MAX_REDIRECTS in str(err.value.reason)
    assert len(a.headers_at('/loop')) == MAX_REDIRECTS + 1


def test_redirect_to_another_scheme_is_refused_with_a_masked_url(servers):
    a, _b = servers
    with pytest.raises(RedirectError) as err:
        open_url_same_origin(redirect(a, 'ftp://u:ftp-s3cr3t@127.0.0.1/x?X-Amz-Signature=abcdef0123'), timeout=5)
    reason = str(err.value.reason)
    assert 'not an http:// or https:// URL' in reason
    assert 'ftp-s3cr3t' not in reason and 'abcdef0123' not in reason


def test_a_final_error_status_is_raised_like_open_url(servers):
    a, _b = servers
    # /to without a target: Location is empty, so the 302 is the reply.
    with pytest.raises(urllib.error.HTTPError) as err:
        open_url_same_origin(a.base + '/to', timeout=5)
    assert err.value.code == 302


# --------------------------------------------------------------------------- the callers

def test_health_check_redirect_to_another_port_gets_no_headers(servers):
    a, b = servers
    probe = health.build_probe('http', redirect(a, b.base + '/healthz'), headers=GIVEN, expected_version='1',
                               timeout=5)
    result = health.run_health_check(probe, interval=0)
    assert result['outcome'] == health.PASS, result
    assert a.headers_at('/to')[0]['authorization'] == TOKEN
    assert_no_secret(b.headers_at('/healthz')[0])


def test_health_body_excerpt_masks_a_header_echoed_at_the_cut(servers):
    a, _b = servers
    result = health.run_health_check(health.build_probe('http', a.base + '/echo-at-cut', headers=GIVEN, timeout=5),
                                     interval=0)
    body = result['observations'][0]['body']
    assert len(body) <= health.BODY_EXCERPT_MAX and body.startswith('x' * 10)
    assert 'Bearer' not in body and 'redirect-s3' not in body


def test_health_check_redirect_loop_is_inconclusive_with_a_clear_reason(servers):
    a, _b = servers
    result = health.run_health_check(health.build_probe('http', a.base + '/loop', timeout=5), interval=0)
    assert result['outcome'] == health.INCONCLUSIVE
    assert 'more than %d redirects' % MAX_REDIRECTS in result['reason']


def test_metric_analysis_redirect_to_another_port_gets_no_headers(servers):
    a, b = servers
    status, data = analysis.fetch_url(redirect(a, b.base + '/stats'), GIVEN, 5, True)
    assert status == 200 and data == BODY
    assert a.headers_at('/to')[0]['authorization'] == TOKEN
    assert_no_secret(b.headers_at('/stats')[0])


def test_binary_upload_download_redirect_to_another_port_gets_no_credentials(servers):
    a, b = servers
    opener = artifact.authenticated_opener(dict(headers={'Authorization': TOKEN, 'X-Custom-Token': CUSTOM},
                                                username=None, password=None))
    opener(redirect(a, b.base + '/artifact'), 5, True).close()
    assert a.headers_at('/to')[0]['x-custom-token'] == CUSTOM
    assert_no_secret(b.headers_at('/artifact')[0])

    opener = artifact.authenticated_opener(dict(headers={}, username='deployer', password='pw-s3cr3t'))
    opener(redirect(a, b.base + '/artifact2'), 5, True).close()
    assert a.headers_at('/to')[1]['authorization'].startswith('Basic ')
    assert_no_secret(b.headers_at('/artifact2')[0])
