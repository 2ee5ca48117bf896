# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""module_utils/redact.py: what counts as a secret in a URL, and masking before cutting."""

from __future__ import annotations

import json
import socket

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import analysis, artifact, health
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.redact import (
    MASK,
    excerpt,
    mask_text,
    mask_url,
    param_secrets,
    url_secrets,
)

SIGNATURE = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9'
SIGNED = ('http://127.0.0.1:%d/bucket/app.tar.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256'
          '&X-Amz-Credential=AKIDEXAMPLE%%2F20260101%%2Fus-east-1%%2Fs3%%2Faws4_request'
          '&X-Amz-Date=20260101T000000Z&X-Amz-Expires=300&X-Amz-Signature=' + SIGNATURE)
SECRETS = (SIGNATURE, 'AKIDEXAMPLE')


def closed_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def assert_clean(text):
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize('url, expected', [
    ('http://user:pw-s3cr3t@127.0.0.1:8080/x', 'http://user:%s@127.0.0.1:8080/x' % MASK),
    ('http://user:p@ss@127.0.0.1/x', 'http://user:%s@127.0.0.1/x' % MASK),
    ('https://ghp-token-only@127.0.0.1/x', 'https://%s@127.0.0.1/x' % MASK),
    ('http://127.0.0.1/x?a=1&api_key=k-123&sig=s-456;token=t-789#access_token=f-000',
     'http://127.0.0.1/x?a=1&api_key=%s&sig=%s;token=%s#access_token=%s' % (MASK, MASK, MASK, MASK)),
    ('http://127.0.0.1:9090/api/v1/query?query=job:errors:ratio5m', 'http://127.0.0.1:9090/api/v1/query?query=job:errors:ratio5m'),
    ('http://127.0.0.1/healthz', 'http://127.0.0.1/healthz'),
])
def test_mask_url(url, expected):
    assert mask_url(url) == expected
    assert mask_text('GET %s failed' % url) == 'GET %s failed' % expected


def test_mask_url_signed_query():
    masked = mask_url(SIGNED % 9000)
    assert_clean(masked)
    assert 'X-Amz-Signature=' + MASK in masked and 'X-Amz-Credential=' + MASK in masked
    assert 'X-Amz-Date=20260101T000000Z' in masked        # not a credential: kept for diagnosis


def test_mask_text_leaves_ordinary_words_alone():
    text = "restarting myapp with signal=SIGHUP; json_query 'key == `1`'"
    assert mask_text(text) == text


def test_mask_text_masks_given_secrets_longest_first():
    assert mask_text('a-abc-ab', ['ab', 'abc']) == 'a-%s-%s' % (MASK, MASK)
    assert mask_text(None, ['x']) is None


def test_excerpt_masks_before_it_cuts():
    # The secret straddles the cut: cutting first would leave its first half in the excerpt.
    secret = 'straddling-s3cr3t-value'
    text = 'x' * 30 + secret + 'y' * 30
    cut = excerpt(text, 40, [secret])
    assert 'straddling' not in cut and 's3cr3t' not in cut
    assert cut.startswith('x' * 30 + '*')
    assert len(cut) <= 40


def test_url_secrets_as_written_and_decoded():
    found = url_secrets('see ' + SIGNED % 9000 + ' and http://u:p%40w@127.0.0.1/')
    assert SIGNATURE in found
    assert 'AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request' in found
    assert 'AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request' in found
    assert 'p%40w' in found and 'p@w' in found
    assert '20260101T000000Z' not in found


def test_param_secrets_from_nested_options_and_header_maps():
    params = {'url': 'http://127.0.0.1/x', 'headers': {'Authorization': 'Bearer abc', 'X-Short': 'ab'},
              'config_probe': {'url': 'http://127.0.0.1/q?token=nested-token'}, 'count': 3}
    assert param_secrets(params, ['headers']) == {'Bearer abc', 'nested-token'}


# --------------------------------------------------------------------------- messages of the callers

def test_health_probe_error_and_describe_hide_a_signed_url():
    probe = health.build_probe('http', SIGNED % closed_port(), timeout=2)
    assert_clean(probe.describe())
    result = health.run_health_check(probe, interval=0)
    assert result['outcome'] == health.INCONCLUSIVE
    assert_clean(json.dumps(result))


def test_health_validation_error_hides_a_signed_url():
    with pytest.raises(HotswapError) as err:
        health.validate_url((SIGNED % 1).replace('http://', 'ftp://'))
    assert_clean(err.value.msg)


def test_health_version_reason_masks_before_it_cuts():
    secret = 'Bearer straddling-s3cr3t-header-value'
    probe = health.build_probe('http', 'http://127.0.0.1:1/', headers={'Authorization': secret}, expected_version='1')
    # The reported version is cut to 80 characters; the secret sits across that cut.
    problems, version = health.check_body(probe, json.dumps({'version': 'v' * 62 + secret}))
    assert problems and 'straddl' not in ' '.join(problems)
    assert 'straddl' not in version


def test_metric_analysis_body_start_is_masked_before_it_is_cut():
    secret = 'metric-s3cr3t-token-value'
    job = analysis.build_analysis('http://127.0.0.1:1/stats', 'error_rate', 1, headers={'X-Token': secret})
    _value, error = analysis.value_from_body(job, ('<html>' + 'x' * 20 + secret).encode())
    assert 'metric-s3' not in error and 's3cr3t' not in error


def test_metric_analysis_error_hides_a_signed_url():
    job = analysis.build_analysis(SIGNED % closed_port(), 'error_rate', 1, timeout=2, count=1)
    result = analysis.run_analysis(job)
    assert result['verdict'] == analysis.INCONCLUSIVE
    assert_clean(json.dumps(result) + job.describe())


def test_artifact_messages_hide_a_signed_url():
    with pytest.raises(HotswapError) as err:
        artifact.check_url_reachable(SIGNED % closed_port(), timeout=2)
    assert_clean(err.value.msg)
    assert 'X-Amz-Signature=' + MASK in err.value.msg
    with pytest.raises(HotswapError) as err:
        artifact.validate_url((SIGNED % 1).replace('http://', 'ftp://'))
    assert_clean(err.value.msg)


def test_results_are_plain_containers_for_every_ansible_core():
    # ansible-core < 2.19 rebuilds a result's containers by type to mask secrets: health.Observation could not be.
    from ansible_collections.hotswap.deploy.plugins.module_utils.health import Observation
    from ansible_collections.hotswap.deploy.plugins.module_utils.redact import plain
    out = plain({'observations': [Observation('pass', 'ok')], 'pair': ('a', {'b': 1})})
    observation = out['observations'][0]
    assert not isinstance(observation, Observation) and observation == dict(Observation('pass', 'ok'))
    assert out['pair'] == ['a', {'b': 1}]


def test_the_no_log_values_of_a_step_given_as_a_plain_dict():
    from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import UPLOAD_SPEC
    from ansible_collections.hotswap.deploy.plugins.module_utils.redact import spec_secrets
    upload = dict(url_password='pw-s3cret', url_headers={'X-Token': 'tok-123456'}, name='app', version='1.0',
                  environment_secret={'DB_PASSWORD': 'hunter22', 'N': 'ab'},
                  files=[dict(dest='a.pem', content='PEMSECRET'), dict(dest='b.txt', src='/x')])
    # Too short to register ('ab'): it would mask that text everywhere.
    assert spec_secrets(UPLOAD_SPEC, upload) == {'pw-s3cret', 'tok-123456', 'hunter22', 'PEMSECRET'}
    assert spec_secrets(UPLOAD_SPEC, None) == set()
    # A malformed value is left to the step's validation.
    assert spec_secrets(UPLOAD_SPEC, dict(files=['not a dict'], url_password='pw-s3cret')) == {'pw-s3cret'}
