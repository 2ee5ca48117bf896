# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Which canary metric is measured where, the names Prometheus knows the hosts by, the baseline hosts."""

from __future__ import annotations

import copy

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hotswap.deploy.plugins.filter.canary_metrics import (
    FilterModule, canary_baseline_hosts, canary_instances, canary_metric_sets)

SETS = ('host', 'controller', 'batch', 'background', 'all')
JSON = {'query': 'http://{{ inventory_hostname }}:8080/metrics', 'path': 'error_rate', 'threshold': {'max': 0.01}}
PROM = {'address': 'http://127.0.0.1:9090', 'query': 'sum(rate(errors[1m])) by (instance)',
        'threshold': {'max': 0.01}}


def test_filters_are_exposed():
    assert set(FilterModule().filters()) == {'canary_metric_sets', 'canary_instances', 'canary_baseline_hosts'}


# ---------------------------------------------------------------------------
# canary_metric_sets


@pytest.mark.parametrize('metrics', [{}, [], None, ''])
def test_no_metrics_gives_five_empty_lists(metrics):
    assert canary_metric_sets(metrics) == dict((key, []) for key in SETS)


def test_a_single_metric_is_named_metric_and_run_on_is_removed():
    legacy = dict(JSON, run_on='controller')
    sets = canary_metric_sets(legacy)
    expected = dict(JSON, name='metric')
    assert sets == dict(host=[], controller=[expected], batch=[], background=[], all=[expected])
    assert 'run_on' not in sets['controller'][0]


def test_a_single_metric_keeps_its_name_and_runs_on_the_host_by_default():
    sets = canary_metric_sets(dict(JSON, name='errors'))
    assert sets['host'] == [dict(JSON, name='errors')] and sets['all'] == sets['host']
    assert sets['controller'] == sets['batch'] == sets['background'] == []


def test_a_list_is_split_by_where_and_when_each_metric_is_measured():
    metrics = [
        dict(JSON),                                                          # 1: run_on host (default)
        dict(PROM, name='p99'),                                              # 2: address -> batch
        dict(PROM, provider='prometheus', background=True),                  # 3: background
        dict(JSON, name='ctl', run_on='controller'),                         # 4: from the controller
        dict(JSON, name='on-host', run_on='host'),                           # 5: explicitly on the host
    ]
    sets = canary_metric_sets(metrics)
    assert sets['host'] == [dict(JSON, name='metric 1'), dict(JSON, name='on-host')]
    assert sets['controller'] == [dict(JSON, name='ctl')]
    assert sets['batch'] == [dict(PROM, name='p99')]
    assert sets['background'] == [dict(PROM, provider='prometheus', background=True, name='metric 3')]
    assert [m['name'] for m in sets['all']] == ['metric 1', 'p99', 'metric 3', 'ctl', 'on-host']
    assert not any('run_on' in m for m in sets['all'])


def test_provider_prometheus_without_address_and_background_false_is_a_batch_metric():
    metric = {'name': 'q', 'provider': 'prometheus', 'query': 'up', 'threshold': {'min': 1}, 'background': False}
    sets = canary_metric_sets([metric])
    assert sets['batch'] == [metric] and sets['background'] == []


def test_a_prometheus_metric_with_run_on_controller_is_still_a_batch_metric():
    sets = canary_metric_sets([dict(PROM, name='p', run_on='controller')])
    assert sets['batch'] == [dict(PROM, name='p')] and sets['controller'] == []


def test_an_address_with_another_provider_is_not_prometheus():
    metric = dict(PROM, name='j', provider='json')
    sets = canary_metric_sets([metric])
    assert sets['host'] == [metric] and sets['batch'] == []


def test_the_input_is_not_changed():
    metrics = [dict(JSON, run_on='controller'), dict(PROM), dict(PROM, provider='prometheus', background=True)]
    before = copy.deepcopy(metrics)
    canary_metric_sets(metrics)
    assert metrics == before
    legacy = dict(JSON, run_on='controller')
    canary_metric_sets(legacy)
    assert legacy == dict(JSON, run_on='controller')


@pytest.mark.parametrize('metrics,type_name', [('http://127.0.0.1:9/metrics', 'str'), (5, 'int'), (True, 'bool')])
def test_a_string_or_a_number_is_refused_naming_its_type(metrics, type_name):
    with pytest.raises(AnsibleFilterError, match='got %s' % type_name):
        canary_metric_sets(metrics)


@pytest.mark.parametrize('element', ['errors', 3, None, ['a']])
def test_an_element_that_is_not_a_dictionary_is_refused(element):
    with pytest.raises(AnsibleFilterError, match='metric 2 is .*not a dictionary'):
        canary_metric_sets([dict(JSON), element])


def test_run_on_elsewhere_is_refused_naming_the_metric():
    with pytest.raises(AnsibleFilterError, match="metric p99 has run_on 'elsewhere'"):
        canary_metric_sets([dict(JSON, name='p99', run_on='elsewhere')])
    with pytest.raises(AnsibleFilterError, match="metric metric 2 has run_on 'elsewhere'"):
        canary_metric_sets([dict(JSON), dict(JSON, run_on='elsewhere')])


# ---------------------------------------------------------------------------
# canary_instances


def test_a_host_is_its_instance_variable_else_name_and_port():
    hv = {'web1': {'canary_prometheus_instance': '10.0.0.1:9100'}, 'web2': {'ansible_host': '10.0.0.2'}}
    assert canary_instances(['web1', 'web2'], hv, 8080) == ['10.0.0.1:9100', 'web2:8080']


@pytest.mark.parametrize('value', ['', None])
def test_an_empty_instance_variable_counts_as_not_set(value):
    assert canary_instances(['web1'], {'web1': {'canary_prometheus_instance': value}}, '8080') == ['web1:8080']


def test_a_host_missing_from_hostvars_gets_the_default():
    assert canary_instances(['web1', 'gone'], {'web1': {}}, 80) == ['web1:80', 'gone:80']


def test_no_hosts_no_instances():
    assert canary_instances([], {}, 80) == [] and canary_instances(None, {}, 80) == []


def test_a_non_string_instance_is_shown_as_text():
    assert canary_instances(['web1'], {'web1': {'canary_prometheus_instance': 42}}, 80) == ['42']


# ---------------------------------------------------------------------------
# canary_baseline_hosts

ALL = ['a', 'b', 'c', 'd', 'e']


@pytest.mark.parametrize('batch,baseline', [
    (['a'], ['b', 'c', 'd', 'e']),
    (['b', 'c'], ['d', 'e']),
    (['d', 'e'], []),
    (['e'], []),
])
def test_the_baseline_is_the_hosts_after_the_batch(batch, baseline):
    assert canary_baseline_hosts(batch, ALL) == baseline


def test_a_batch_whose_last_host_is_not_in_the_play_gives_the_others():
    assert canary_baseline_hosts(['a', 'x'], ALL) == ['b', 'c', 'd', 'e']


def test_an_empty_batch_gives_every_host():
    assert canary_baseline_hosts([], ALL) == ALL and canary_baseline_hosts(None, ALL) == ALL
    assert canary_baseline_hosts(['a'], None) == []


def test_the_inputs_are_not_changed():
    batch, hosts = ['a', 'b'], list(ALL)
    canary_baseline_hosts(batch, hosts)
    assert batch == ['a', 'b'] and hosts == ALL
