# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The canary's input checks (filter canary_input_problem): an AWX slice it refuses, then the steps and their
options, then Windows hosts for a metric that runs on the hosts."""

from __future__ import annotations

import pytest

from core_compat import import_controller

GOOD = dict(app='myapp', steps=[1, '25%', '100%'], weights=[], bake_time=30, stop_after=0, abort='rollout', lb='')


@pytest.fixture(scope='module')
def problem():
    return import_controller('ansible_collections.hotswap.deploy.plugins.filter.canary_inputs').canary_input_problem


@pytest.mark.parametrize('change', [
    {}, dict(steps=['100%']), dict(steps=5), dict(steps='50%'), dict(steps=[2, '1%', '100%']), dict(abort='batch'),
    dict(bake_time='0', stop_after='2'), dict(weights=[10, None, 100], lb='haproxy'), dict(weights=[None, None]),
])
def test_good_settings(problem, change):
    assert problem(dict(GOOD, **change)) == ''


@pytest.mark.parametrize('change', [
    dict(steps=[]), dict(steps=[0]), dict(steps=['0%']), dict(steps=['101%']), dict(steps=['abc']), dict(steps=[-1]),
    dict(steps=['01']), dict(bake_time=-1), dict(stop_after=-5), dict(abort='never'), dict(weights=[101], lb='haproxy'),
    dict(weights=['x'], lb='haproxy'), dict(weights=[50]), dict(weights='50'),
])
def test_bad_settings(problem, change):
    msg = problem(dict(GOOD, **change))
    assert msg.startswith('Canary of myapp: canary_steps must be a non-empty list of batch sizes')
    assert 'got %s;' % (dict(GOOD, **change)['steps'],) in msg
    assert 'canary_abort must be rollout' in msg and 'needs a load balancer' in msg


def test_the_message_shows_the_values_as_given(problem):
    msg = problem(dict(GOOD, steps=[1, '0%'], abort='never', weights=[7]))
    assert "got [1, '0%']; " in msg and 'got never; ' in msg and 'got [7].' in msg
    assert '"1%".."100%" (e.g. [1, "25%", "100%"])' in msg


def test_a_refused_slice_comes_first(problem):
    job_slice = dict(sliced=True, refuse=True, message='Canary of myapp refused: one slice of a sliced job.')
    assert problem(dict(GOOD, steps=[]), job_slice, ['win1']) == job_slice['message']


def test_an_accepted_slice_is_no_problem(problem):
    assert problem(GOOD, dict(sliced=True, refuse=False, message='rolls out on its own')) == ''


@pytest.mark.parametrize('hosts,words', [
    (['win1'], 'but win1 is a Windows host, where'),
    (['win1', 'win2'], 'but win1, win2 are Windows hosts, where'),
])
def test_windows_hosts_for_a_metric_on_the_hosts(problem, hosts, words):
    msg = problem(GOOD, dict(sliced=False, refuse=False, message=''), hosts)
    assert words in msg and 'Set canary_metrics.run_on: controller. Nothing was changed.' in msg


def test_the_steps_come_before_the_windows_hosts(problem):
    assert 'canary_steps must be' in problem(dict(GOOD, abort='x'), None, ['win1'])
