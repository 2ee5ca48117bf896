# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The canary's verdicts: one host from its probe and metric, a batch from its hosts."""

from __future__ import annotations

import pytest

from ansible_collections.hotswap.deploy.plugins.filter.canary_verdict import canary_batch_verdict, canary_host_verdict

SKIPPED = {'changed': False, 'skipped': True, 'skip_reason': 'Conditional result was False'}


@pytest.mark.parametrize('health,metric,analysis,reason', [
    (SKIPPED, SKIPPED, 'pass', 'health passed'),
    ({'outcome': 'pass'}, {'verdict': 'pass', 'reason': '0.1 < 1'}, 'pass', 'health passed and metric passed: 0.1 < 1'),
    ({'outcome': 'fail', 'reason': 'version 1.0 wanted 2.0'}, SKIPPED, 'fail', 'health fail: version 1.0 wanted 2.0'),
    ({'outcome': 'pass'}, {'verdict': 'fail', 'reason': '3 of 5 failed'}, 'fail', 'metric fail: 3 of 5 failed'),
    ({'outcome': 'inconclusive', 'reason': 'no answer'}, SKIPPED, 'inconclusive', 'health inconclusive: no answer'),
    ({'outcome': 'pass'}, {'verdict': 'inconclusive', 'reason': 'errors'}, 'inconclusive', 'metric inconclusive: errors'),
])
def test_host_verdict(health, metric, analysis, reason):
    expected = dict(batch=2, analysis=analysis, analysis_reason=reason)
    assert canary_host_verdict(health, metric, False, 'web1', '2') == expected


@pytest.mark.parametrize('flag', [True, 'True', 'true'])
def test_a_metric_asked_on_a_windows_host_fails_it_with_the_fix(flag):
    v = canary_host_verdict({'outcome': 'pass'}, SKIPPED, flag, 'win1', 1)
    assert v['analysis'] == 'fail' and 'win1 is a Windows host' in v['analysis_reason']
    assert 'run_on: controller' in v['analysis_reason']
    assert canary_host_verdict({'outcome': 'pass'}, SKIPPED, 'False', 'win1', 1)['analysis'] == 'pass'


def judged(analysis, reason='r'):
    return {'canary__host': {'analysis': analysis, 'analysis_reason': reason}}


def test_batch_passes_when_every_host_passed():
    hv = {'a': judged('pass'), 'b': judged('pass')}
    assert canary_batch_verdict(['a', 'b'], ['a', 'b'], hv) == dict(result='pass', reasons='', metrics='')


def test_a_failed_deploy_fails_the_batch_and_is_named_first_in_batch_order():
    hv = {'a': {'deploy_host_result': {'failure': {'stage': ' Upload the release ', 'reason': 'no space. '}}},
          'b': judged('inconclusive', 'no answer')}
    v = canary_batch_verdict(['a', 'b'], ['b'], hv)
    reasons = 'a: deploy failed at Upload the release - no space.; b: analysis inconclusive - no answer'
    assert v == dict(result='fail', reasons=reasons, metrics='')


def test_an_unreachable_host_makes_the_batch_inconclusive():
    v = canary_batch_verdict(['a', 'b'], ['a'], {'a': judged('pass'), 'b': {'deploy_host_result': {'verdict': 'pass'}}})
    assert v['result'] == 'inconclusive' and v['reasons'] == 'b: unreachable (its state is as the connection left it)'


def test_a_failed_analysis_outweighs_an_inconclusive_one():
    hv = {'a': judged('inconclusive'), 'b': judged('fail', 'metric fail: x')}
    assert canary_batch_verdict(['a', 'b'], ['a', 'b'], hv)['result'] == 'fail'


def test_rolled_back_names_hosts_switched_by_the_rollback_or_by_their_own_deploy():
    from ansible_collections.hotswap.deploy.plugins.filter.canary_verdict import canary_rolled_back
    hv = {'a': {'rollback_result': {'changed': True}}, 'b': {'rollback_result': {'changed': False}},
          'c': {'deploy_host_result': {'rolled_back_to': '1.0.0-aaaaaaaaaaaa'}},
          'd': {'deploy_host_result': {'rolled_back_to': None}}, 'e': {}}
    assert canary_rolled_back(['a', 'b', 'c', 'd', 'e'], ['a', 'b', 'e'], hv) == ['a', 'c']
