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


# ---------------------------------------------------------------------------
# Several metrics, a failed deploy, the batch's own (Prometheus) metrics

FAILURE = {'stage': ' Upload the release ', 'reason': 'no space. '}


def test_a_failed_deploy_fails_the_host_whatever_its_probes_say():
    v = canary_host_verdict({'outcome': 'pass'}, {'verdict': 'pass', 'reason': 'ok'}, False, 'web1', '3',
                            {'failure': FAILURE, 'rolled_back_to': '1.0.0-aaaaaaaaaaaa'})
    assert v == dict(batch=3, analysis='fail', analysis_reason='deploy failed at Upload the release - no space.',
                     deploy_failed=True)


@pytest.mark.parametrize('deploy_result', [None, SKIPPED, {'failure': None}, {'release': '2.0.0-b'}, 'not a dict'])
def test_a_deploy_without_failure_leaves_the_verdict_to_the_probes(deploy_result):
    v = canary_host_verdict({'outcome': 'pass'}, SKIPPED, False, 'web1', 1, deploy_result)
    assert v == dict(batch=1, analysis='pass', analysis_reason='health passed')


def test_the_worst_of_several_metrics_wins_with_its_reason():
    metrics = [{'verdict': 'fail', 'reason': ' p99 0.9 > 0.5 '}, {'verdict': 'pass', 'reason': 'errors 0 < 1'}]
    v = canary_host_verdict({'outcome': 'pass'}, metrics, False, 'web1', 1)
    assert v == dict(batch=1, analysis='fail', analysis_reason='metric fail: p99 0.9 > 0.5')
    assert canary_host_verdict({'outcome': 'pass'}, list(reversed(metrics)), False, 'web1', 1) == v


def test_a_failed_metric_outweighs_an_inconclusive_one():
    metrics = [{'verdict': 'inconclusive', 'reason': 'no data'}, {'verdict': 'fail', 'reason': 'too slow'}]
    v = canary_host_verdict({'outcome': 'pass'}, metrics, False, 'web1', 1)
    assert v['analysis'] == 'fail' and v['analysis_reason'] == 'metric fail: too slow'


def test_the_reasons_of_every_metric_with_the_worst_verdict_are_joined():
    metrics = [{'verdict': 'inconclusive', 'reason': 'no data'}, {'verdict': 'inconclusive', 'reason': 'timeout'}]
    v = canary_host_verdict({'outcome': 'pass'}, metrics, False, 'web1', 1)
    assert v == dict(batch=1, analysis='inconclusive', analysis_reason='metric inconclusive: no data; timeout')


def test_skipped_metric_tasks_and_skipped_verdicts_count_as_passed():
    metrics = [{'skipped': True}, {'verdict': 'skipped', 'reason': 'check mode'}]
    v = canary_host_verdict({'outcome': 'pass'}, metrics, False, 'web1', 1)
    assert v['analysis'] == 'pass' and v['analysis_reason'].startswith('health passed')
    assert canary_host_verdict(SKIPPED, [SKIPPED, SKIPPED], False, 'web1', 1) == dict(
        batch=1, analysis='pass', analysis_reason='health passed')


def test_a_skipped_metric_beside_a_passed_one_is_a_pass():
    metrics = [{'verdict': 'skipped', 'reason': 'check mode'}, {'verdict': 'pass', 'reason': '0.1 < 1'}]
    v = canary_host_verdict({'outcome': 'pass'}, metrics, False, 'web1', 1)
    assert v == dict(batch=1, analysis='pass', analysis_reason='health passed and metric passed: 0.1 < 1')


def test_a_failed_health_probe_is_the_reason_before_a_failed_metric():
    v = canary_host_verdict({'outcome': 'fail', 'reason': 'version 1.0'}, [{'verdict': 'fail', 'reason': 'x'}],
                            False, 'web1', 1)
    assert v['analysis'] == 'fail' and v['analysis_reason'] == 'health fail: version 1.0'


def test_the_windows_flag_still_wins_over_passed_metrics():
    v = canary_host_verdict({'outcome': 'pass'}, [SKIPPED, {'verdict': 'pass', 'reason': 'ok'}], True, 'win1', 1)
    assert v['analysis'] == 'fail' and 'win1 is a Windows host' in v['analysis_reason']


def test_a_failed_deploy_outranks_the_windows_flag():
    v = canary_host_verdict({'outcome': 'pass'}, SKIPPED, True, 'win1', 1, {'failure': FAILURE})
    assert v['deploy_failed'] is True and v['analysis_reason'].startswith('deploy failed at')


BATCH_FAIL = {'verdict': 'fail', 'summary': 'p99 fail [0.9]; err pass [0.0]',
              'metrics': [{'name': 'p99', 'verdict': 'fail', 'reason': ' 0.9 > 0.5 '},
                          {'name': 'err', 'verdict': 'pass', 'reason': '0.0 <= 0.01'}]}
BATCH_INCONCLUSIVE = {'verdict': 'inconclusive', 'summary': 'p99 inconclusive [no data]',
                      'metrics': [{'name': 'p99', 'verdict': 'inconclusive', 'reason': 'no data for web1:8080'}]}
BATCH_PASS = {'verdict': 'pass', 'summary': 'p99 pass [0.1]',
              'metrics': [{'name': 'p99', 'verdict': 'pass', 'reason': '0.1 <= 0.5'}]}


def test_a_failed_batch_metric_fails_the_batch_and_skipped_tasks_are_ignored():
    hv = {'a': judged('pass'), 'b': judged('pass')}
    v = canary_batch_verdict(['a', 'b'], ['a', 'b'], hv, [SKIPPED, BATCH_FAIL])
    assert v == dict(result='fail', reasons='metric p99 fail - 0.9 > 0.5', metrics=BATCH_FAIL['summary'])


def test_an_inconclusive_batch_metric_makes_a_passing_batch_inconclusive():
    hv = {'a': judged('pass'), 'b': judged('pass')}
    v = canary_batch_verdict(['a', 'b'], ['a', 'b'], hv, [BATCH_INCONCLUSIVE, SKIPPED])
    assert v == dict(result='inconclusive', reasons='metric p99 inconclusive - no data for web1:8080',
                     metrics='p99 inconclusive [no data]')


def test_passed_batch_metrics_pass_the_batch_and_give_their_summaries():
    hv = {'a': judged('pass')}
    v = canary_batch_verdict(['a'], ['a'], hv, [BATCH_PASS, dict(BATCH_PASS, summary='bg pass [1]')])
    assert v == dict(result='pass', reasons='', metrics='p99 pass [0.1]; bg pass [1]')


@pytest.mark.parametrize('batch_metrics', [None, [], [SKIPPED, SKIPPED], [None]])
def test_no_batch_metrics_leave_the_verdict_to_the_hosts(batch_metrics):
    hv = {'a': judged('pass')}
    assert canary_batch_verdict(['a'], ['a'], hv, batch_metrics) == dict(result='pass', reasons='', metrics='')


def test_host_reasons_come_before_batch_metric_reasons():
    hv = {'a': judged('inconclusive', 'no answer'), 'b': judged('pass')}
    v = canary_batch_verdict(['a', 'b'], ['a', 'b'], hv, [BATCH_FAIL])
    assert v['result'] == 'fail'
    assert v['reasons'] == 'a: analysis inconclusive - no answer; metric p99 fail - 0.9 > 0.5'


def test_a_standing_host_whose_deploy_failed_is_named_once_with_its_deploy_failure():
    host = canary_host_verdict({'outcome': 'pass'}, SKIPPED, False, 'a', 1, {'failure': FAILURE})
    hv = {'a': {'canary__host': host}, 'b': judged('pass')}
    v = canary_batch_verdict(['a', 'b'], ['a', 'b'], hv)
    assert v == dict(result='fail', reasons='a: deploy failed at Upload the release - no space.', metrics='')
    assert 'analysis fail' not in v['reasons']


def test_rolled_back_counts_rolled_back_to_on_a_standing_host_without_a_rollback_result():
    from ansible_collections.hotswap.deploy.plugins.filter.canary_verdict import canary_rolled_back
    hv = {'a': {'deploy_host_result': {'rolled_back_to': '1.0.0-aaaaaaaaaaaa'}},
          'b': {'deploy_host_result': {'rolled_back_to': '1.0.0-aaaaaaaaaaaa'}, 'rollback_result': {'changed': False}},
          'c': {'deploy_host_result': {'rolled_back_to': ''}, 'rollback_result': {'changed': True}},
          'd': {'deploy_host_result': {}, 'rollback_result': SKIPPED}}
    assert canary_rolled_back(['a', 'b', 'c', 'd'], ['a', 'b', 'c', 'd'], hv) == ['a', 'b', 'c']


def test_rolled_back_ignores_the_rollback_result_of_a_host_that_left_the_play():
    from ansible_collections.hotswap.deploy.plugins.filter.canary_verdict import canary_rolled_back
    hv = {'a': {'rollback_result': {'changed': True}}, 'b': {'rollback_result': {'changed': True},
                                                             'deploy_host_result': {'rolled_back_to': 'r1'}}}
    assert canary_rolled_back(['a', 'b', 'gone'], [], hv) == ['b']


def test_filters_are_exposed():
    from ansible_collections.hotswap.deploy.plugins.filter.canary_verdict import FilterModule
    assert set(FilterModule().filters()) == {'canary_host_verdict', 'canary_batch_verdict', 'canary_rolled_back',
                                             'canary_changed', 'canary_stats', 'canary_batch_number'}


def test_changed_hosts_are_those_moved_and_left_on_the_new_release():
    from ansible_collections.hotswap.deploy.plugins.filter.canary_verdict import canary_changed
    hv = {'a': {'deploy_host_result': {'changed': True}},
          'b': {'deploy_host_result': {'changed': False}},
          'c': {'deploy_host_result': {'changed': True, 'failure': {'stage': 'x', 'reason': 'y'}}},
          'd': {}}
    assert canary_changed(['a', 'b', 'c', 'd', 'e'], hv) == ['a']
    assert canary_changed([], hv) == [] and canary_changed(None, hv) == []


def test_stats_report_each_judged_host_with_its_result_and_verdict():
    from ansible_collections.hotswap.deploy.plugins.filter.canary_verdict import canary_stats
    hv = {'a': {'deploy_host_result': {'changed': True, 'verdict': 'pass', 'release': 'r2'},
                'canary__host': {'batch': 1, 'analysis': 'pass'}},
          'b': {'deploy_host_result': {'changed': True}},
          'c': {'canary__host': {'batch': 1, 'analysis': 'inconclusive'}}}
    assert canary_stats(['a', 'b', 'c', 'gone'], hv) == {
        'a': {'changed': True, 'verdict': 'pass', 'release': 'r2', 'batch': 1, 'analysis': 'pass'},
        'c': {'batch': 1, 'analysis': 'inconclusive'}}
    assert canary_stats([], hv) == {} and canary_stats(None, hv) == {}


def test_canary_batch_number_counts_from_the_earlier_batches():
    from ansible_collections.hotswap.deploy.plugins.filter.canary_verdict import canary_batch_number
    hosts = ['a', 'b', 'c', 'd', 'e']
    assert canary_batch_number(['a'], hosts, {}) == 1
    # b and c are batch 2 after a; a host of an earlier batch that failed keeps its number.
    hostvars = {'a': {'canary__batch_number': 1}, 'b': {}, 'c': {}}
    assert canary_batch_number(['b', 'c'], hosts, hostvars) == 2
    hostvars = {'a': {'canary__batch_number': 1}, 'b': {'canary__batch_number': '2'}, 'c': {'canary__batch_number': 2}}
    assert canary_batch_number(['d', 'e'], hosts, hostvars) == 3
