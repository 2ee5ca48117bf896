# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""No secret in any result, message, invocation or log line of the modules that take URLs or headers.

The secrets: a URL password, a pre-signed query string (X-Amz-Signature, X-Amz-Credential) and
header values given as a JSON string (so Ansible's no_log only knows the whole string).
``invocation`` is always in the module's output; ansible-playbook shows it at -vvv.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest


from ansible_collections.hotswap.deploy.plugins.modules import (
    binary_upload,
    graceful_restart,
    health_check,
    metric_analysis,
    release_status,
)

PASSWORD = 'userinfo-pw-s3cr3t'
SIGNATURE = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00'
CREDENTIAL = 'AKIDSECRETEXAMPLE'
HEADER = 'Bearer json-string-header-s3cr3t'
SECRETS = (PASSWORD, SIGNATURE, CREDENTIAL, HEADER, 'json-string-header', 's3cr3t')
HEADERS_AS_STRING = json.dumps({'Authorization': HEADER, 'X-Api-Token': 'json-string-header-tok3n'})


def closed_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def signed_url(path='/healthz'):
    return ('http://deployer:%s@127.0.0.1:%d%s?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s%%2F20260101'
            '&X-Amz-Date=20260101T000000Z&X-Amz-Signature=%s' % (PASSWORD, closed_port(), path, CREDENTIAL, SIGNATURE))


def test_health_check(run_module, logged, assert_no_secret):
    result = run_module(health_check, url=signed_url(), headers=HEADERS_AS_STRING, timeout=1)
    assert result['failed'] and result['outcome'] == 'inconclusive'
    assert 'X-Amz-Signature=********' in result['msg']
    assert logged
    assert_no_secret(result, SECRETS)


def test_health_check_validation_failure(run_module, assert_no_secret):
    # Ansible itself fails (two probe kinds), before the module's code runs.
    result = run_module(health_check, url=signed_url(), tcp='127.0.0.1:1', headers=HEADERS_AS_STRING)
    assert result['failed'] and 'mutually exclusive' in result['msg']
    assert_no_secret(result, SECRETS)


def test_metric_analysis(run_module, assert_no_secret):
    result = run_module(metric_analysis, url=signed_url('/stats'), headers=HEADERS_AS_STRING, query='error_rate',
                        threshold=1, count=1, timeout=1)
    assert result['failed'] and result['verdict'] == 'inconclusive'
    assert_no_secret(result, SECRETS)


def test_binary_upload(run_module, assert_no_secret, tmp_path):
    result = run_module(binary_upload, url=signed_url('/app'), url_headers=HEADERS_AS_STRING, url_username='deployer',
                        url_password='basic-' + PASSWORD, checksum='sha256:' + 'ab' * 32, name='app',
                        base_dir=str(tmp_path / 'base'), release_id='r1', url_timeout=2)
    assert result['failed'] and 'downloading app from' in result['msg']
    assert 'X-Amz-Signature=********' in result['msg']
    assert_no_secret(result, SECRETS)


def test_graceful_restart(run_module, assert_no_secret):
    # Fails before touching systemd: expected_version without a version source it can use is fine, a
    # missing pid_file for signal_reexec is an Ansible validation failure.
    result = run_module(graceful_restart, service='myapp', strategy='signal_reexec', url=signed_url(),
                        config_probe={'url': signed_url('/config'), 'query': 'x', 'expected': 'y'})
    assert result['failed']
    assert_no_secret(result, SECRETS)


def test_release_status(run_module, assert_no_secret, tmp_path):
    result = run_module(release_status, base_dir=str(tmp_path), release_id='r1', binary='app',
                        checksum='sha256:' + 'ab' * 32, app='myapp', strategy='restart', service_unit='myapp.service',
                        url=signed_url())
    assert_no_secret(result, SECRETS)


PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'build',
                                           'unit-collections'))


@pytest.mark.skipif(not os.path.exists(PLAYBOOK), reason='ansible-playbook not installed next to this python')
def test_health_check_at_the_highest_verbosity_end_to_end(tmp_path):
    # One real ansible-playbook run at -vvvvv: what an operator sees, invocation included. The secrets
    # come from variables, as in a real play (an ad-hoc -a string is echoed by ansible itself on failure).
    (tmp_path / 'vars.yml').write_text(json.dumps({'probe_url': signed_url(), 'probe_headers': HEADERS_AS_STRING}))
    (tmp_path / 'play.yml').write_text(
        '- hosts: localhost\n  gather_facts: false\n  vars_files: [vars.yml]\n  tasks:\n'
        '    - hotswap.deploy.health_check:\n        url: "{{ probe_url }}"\n'
        '        headers: "{{ probe_headers }}"\n        timeout: 1\n')
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0',
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    proc = subprocess.run([PLAYBOOK, '-c', 'local', '-i', 'localhost,', str(tmp_path / 'play.yml'), '-vvvvv'],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and '"invocation"' in proc.stdout, output
    for secret in SECRETS:
        assert secret not in output, secret
    assert 'X-Amz-Signature=********' in proc.stdout
