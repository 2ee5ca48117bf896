# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""AWX job slicing and the canary: a slice is recognised and refused, with the workflow to use instead,
unless canary_allow_job_slicing accepts it."""

from __future__ import annotations

import pytest

from core_compat import import_controller


@pytest.fixture(scope='module', autouse=True)
def plugin():
    """Import the filter (controller code) late, and undo its process-wide switch afterwards
    (tests/unit/core_compat.py)."""
    yield import_controller('ansible_collections.hotswap.deploy.plugins.filter.canary_job_slice')


@pytest.fixture
def job_slice(plugin):
    return plugin.canary_job_slice


def awx_vars(template='Deploy myapp', workflow='Deploy myapp', launch_type='workflow', job_id=413, prefix='awx'):
    """The meta extra vars AWX gives a job that a workflow launched (awx/main/models/unified_jobs.py and
    jobs.py, awx_meta_vars); a sliced job template's workflow job carries the template's name."""
    v = {'job_id': job_id, 'job_launch_type': launch_type, 'workflow_job_id': 412, 'workflow_job_name': workflow,
         'workflow_job_launch_type': 'manual', 'job_template_id': 7, 'job_template_name': template,
         'inventory_id': 3, 'inventory_name': 'fleet'}
    return {'%s_%s' % (prefix, k): val for k, val in v.items()}


def test_a_run_outside_awx_is_no_slice(job_slice):
    s = job_slice({'app': 'myapp', 'canary_steps': [1, '100%']}, 'myapp')
    assert s == dict(sliced=False, number=None, count=None, template=None, workflow_job=None, allowed=False,
                     refuse=False, message='')


@pytest.mark.parametrize('variables', [
    awx_vars(launch_type='manual', workflow=None),                    # launched by hand
    awx_vars(launch_type='scheduled', workflow=None),
    awx_vars(workflow='Release train'),                               # a node of a workflow of one's own
    {k: v for k, v in awx_vars().items() if k != 'awx_workflow_job_name'},
])
def test_an_awx_job_that_is_no_slice_runs(job_slice, variables):
    s = job_slice(variables, 'myapp')
    assert (s['sliced'], s['refuse'], s['message']) == (False, False, '')


@pytest.mark.parametrize('prefix', ['awx', 'tower'])
def test_a_slice_is_refused_with_what_was_found_why_and_the_workflow(job_slice, prefix):
    s = job_slice(awx_vars(prefix=prefix), 'myapp')
    assert s['sliced'] and s['refuse'] and not s['allowed']
    assert (s['number'], s['count'], s['template'], s['workflow_job']) == (None, None, 'Deploy myapp', 412)
    m = s['message']
    assert m.startswith("Canary of myapp refused: this AWX job is one slice of the sliced job template 'Deploy myapp'")
    assert 'workflow job 412' in m and 'AWX passes no slice number or count' in m
    # Why: each slice is its own canary, the first batch gates nothing. Nothing changed.
    assert 'each slice would run its own canary: the first batch no longer gates the fleet' in m
    assert 'Nothing was changed.' in m
    # What to do: the workflow, with the role's real variable names, or the opt-in.
    for part in ('slice count 1', 'canary_stop_after: 1', 'an approval node',
                 'canary_allow_job_slicing: true and canary_steps: ["100%"]', 'docs/awx.md, "Job slicing"'):
        assert part in m, part


def test_slice_variables_give_number_and_count(job_slice):
    variables = dict(awx_vars(), awx_job_slice_number='2', awx_job_slice_count=3)
    s = job_slice(variables, 'myapp')
    assert (s['sliced'], s['refuse'], s['number'], s['count']) == (True, True, 2, 3)
    assert "refused: this job is slice 2 of 3 of a sliced job (job template 'Deploy myapp')." in s['message']
    s = job_slice({'tower_job_slice_number': 1, 'tower_job_slice_count': 2}, 'myapp')
    assert (s['sliced'], s['number'], s['count']) == (True, 1, 2)
    assert 'this job is slice 1 of 2 of a sliced job.' in s['message']


@pytest.mark.parametrize('count', [1, '1', 0])
def test_a_slice_count_of_one_is_no_slice(job_slice, count):
    s = job_slice(dict(awx_vars(), awx_job_slice_number=1, awx_job_slice_count=count), 'myapp')
    assert (s['sliced'], s['refuse']) == (False, False)


@pytest.mark.parametrize('variables,error', [
    ({'awx_job_slice_count': 'two'}, "awx_job_slice_count must be a whole number >= 0, got 'two'"),
    ({'awx_job_slice_count': 2, 'awx_job_slice_number': 3}, 'awx_job_slice_number is 3 but awx_job_slice_count is 2'),
    ({'awx_job_slice_count': 2, 'awx_job_slice_number': 0}, 'awx_job_slice_number is 0 but awx_job_slice_count is 2'),
])
def test_bad_slice_variables_are_an_error(job_slice, variables, error):
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError) as e:
        job_slice(variables, 'myapp')
    assert error in str(e.value)


@pytest.mark.parametrize('allow', [True, 'true', 'yes'])
def test_canary_allow_job_slicing_accepts_a_slice_as_an_independent_rollout(job_slice, allow):
    s = job_slice(awx_vars(), 'myapp', allow)
    assert (s['sliced'], s['allowed'], s['refuse']) == (True, True, False)
    assert s['message'] == ("Canary of myapp: this AWX job is one slice of the sliced job template 'Deploy myapp'; "
                            'canary_allow_job_slicing is true, so this slice rolls out its own hosts as an '
                            'independent canary, with no gate between the slices.')


@pytest.mark.parametrize('allow', [False, 'false', None, ''])
def test_not_allowed_unless_true(job_slice, allow):
    assert job_slice(awx_vars(), 'myapp', allow)['refuse'] is True


def test_empty_awx_values_are_not_set(job_slice):
    s = job_slice(dict(awx_vars(), awx_workflow_job_name='', awx_job_template_name=''), 'myapp')
    assert s['sliced'] is False
