# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The rollout model of the hotswap.deploy.rollout callback, from synthetic task events: its lines, its rows,
the summary table and the HTML report."""

from __future__ import annotations

import importlib.util
import json
import os
import re

import pytest

from ansible_collections.hotswap.deploy.plugins.plugin_utils import rollout_report as rr

SECRET = 'hunter2-secret'
ODD = 'c<&>"'


def task(name, action='ansible.builtin.set_fact', role='hotswap.deploy.canary', run_once=False):
    return rr.Task(uuid=name, name=name, action=action, role=role, run_once=run_once)


NOTE = task('Note the hosts of this batch', run_once=True)
DEPLOY = task('Deploy the release', 'hotswap.deploy.host_deploy', 'hotswap.deploy.deploy_host')
RECORD = task('Record the result of this host', role='hotswap.deploy.deploy_host')
RESCUE = task('Put the failure into the result of this host', role='hotswap.deploy.deploy_host')
BAKE = task('Bake the batch', 'ansible.builtin.pause', run_once=True)
PROBE = task('Probe the health of the batch host', 'hotswap.deploy.health_check')
JUDGE_HOST = task('Judge the batch host')
JUDGE = task('Judge the batch', run_once=True)
SWITCH = task('Switch a Linux host to the target release, restart and verify', 'hotswap.deploy.release_switch',
              'hotswap.deploy.rollback')
SWITCHED = task('Record the result of the Linux host', role='hotswap.deploy.rollback')
OUTCOME = task('Note the outcome of this host')
BG_CHECK = task('Check that blue and green have ports of their own', 'ansible.builtin.assert',
                'hotswap.deploy.blue_green')
BG_RESULT = task('Record the result of this host', role='hotswap.deploy.blue_green')


class Run(object):
    """Feeds events to a Rollout on a fake clock; collects the lines."""

    def __init__(self):
        self.rollout, self.now, self.lines = rr.Rollout(), 1000.0, []

    def play(self, hosts=None, total=None):
        self.lines += self.rollout.play_start(self.now, hosts, total)

    def task(self, t, hosts, status='ok', res=None, took=1.0):
        for host in hosts:
            self.lines += self.rollout.task_start(self.now, host, t)
        self.now += took
        for host in hosts:
            result = res(host) if callable(res) else res
            self.lines += self.rollout.task_end(self.now, host, t, status, result or {})

    def finish(self):
        self.lines += self.rollout.finish(self.now)
        return self.rollout.to_dict()


def facts(**kw):
    return {'ansible_facts': kw}


def deployed(host, verdict='pass'):
    return facts(deploy_host_result={
        'host': host, 'app': 'myapp', 'release': '2.0.0-bb', 'previous_release': '1.0.0-aa', 'version': '2.0.0',
        'verdict': verdict, 'seconds': 1.2, 'changed': True, 'environment_secret': SECRET})


def host_deploy_ok(host):
    # The restart window on the host's clock; a task's arguments never reach the callback's output.
    return {'changed': True, 'invocation': {'module_args': {'password': SECRET}},
            'restart_event': {'start': 1.0, 'end': 1.0e12, 'failed': False}}


def canary(run):
    """Two batches: a passes; b fails its analysis and c its deploy, so the batch goes back, then a."""
    run.play(['a'], 2)
    run.task(NOTE, ['a'], res=facts(canary__batch=['a'], canary__batch_number='1', canary__last_batch=False))
    run.task(DEPLOY, ['a'], res=host_deploy_ok, took=2.0)
    run.task(RECORD, ['a'], res=deployed)
    run.task(BAKE, ['a'], took=5.0)
    run.task(PROBE, ['a'])
    run.task(JUDGE_HOST, ['a'], res=facts(canary__host={'batch': 1, 'analysis': 'pass', 'analysis_reason': 'ok'}))
    run.task(JUDGE, ['a'], res=facts(canary__verdict={'result': 'pass', 'reasons': '',
                                                      'metrics': 'error_rate pass: 0.1 <= 1'}))
    run.play(['b', ODD], 2)
    run.task(NOTE, ['b'], res=facts(canary__batch=['b', ODD], canary__batch_number=2, canary__last_batch=True))
    run.task(DEPLOY, ['b'], res=host_deploy_ok)
    run.task(DEPLOY, [ODD], status='failed', res={
        'failed': True, 'msg': 'with %s' % SECRET, 'failure': {'stage': 'restart', 'reason': 'not ready'},
        'restart_event': {'start': run.now + 0.2, 'end': run.now + 0.6, 'failed': True}})
    run.task(RECORD, ['b'], res=deployed)
    run.task(RESCUE, [ODD], res=facts(deploy_host_result={
        'app': 'myapp', 'release': '2.0.0-bb', 'previous_release': '1.0.0-aa', 'version': '2.0.0',
        'verdict': "failed at 'restart'", 'rolled_back_to': '1.0.0-aa', 'changed': True,
        'failure': {'stage': 'restart', 'reason': 'the new process never became ready.', 'secret': SECRET}}))
    run.task(PROBE, ['b'])
    run.task(JUDGE_HOST, ['b'], res=facts(canary__host={'batch': 2, 'analysis': 'fail',
                                                        'analysis_reason': 'health fail: 503'}))
    run.task(JUDGE_HOST, [ODD], res=facts(canary__host={'batch': 2, 'analysis': 'fail', 'deploy_failed': True,
                                                        'analysis_reason': 'deploy failed'}))
    run.task(JUDGE, ['b'], res=facts(canary__verdict={'result': 'fail', 'reasons': 'b: analysis fail',
                                                      'metrics': 'error_rate fail: 7 > 1'}))
    rolled_back = {'release': '1.0.0-aa', 'previous_release': '2.0.0-bb', 'changed': True, 'verdict': 'pass',
                   'seconds': 0.8}
    run.task(SWITCH, ['b'])
    run.task(SWITCHED, ['b'], res=facts(rollback_result=rolled_back))
    run.task(OUTCOME, ['b', ODD], res=facts(canary__host={'verdict': 'rolled back: batch 2 failed'}))
    # canary_abort: rollout - the next play switches a back.
    run.play(['a', 'b', ODD], 1)
    run.task(SWITCH, ['a'])
    run.task(SWITCHED, ['a'], res=facts(rollback_result=rolled_back))
    run.task(OUTCOME, ['a'], res=facts(canary__host={'verdict': 'rolled back: batch 2 failed (canary_abort: rollout)',
                                                     'rolled_back_to': '1.0.0-aa'}))
    return run.finish()


@pytest.fixture
def data():
    return canary(Run())


def test_lines_of_a_canary_rollout():
    run = Run()
    canary(run)
    lines = [re.sub(r'\d+\.\d s', 'N s', line) for line in run.lines]
    assert lines == [
        'Batch 1/2 (hosts: a): deploying',
        'a: deployed 2.0.0 (N s, verdict pass)',
        'Batch 1 passed in N s',
        'Batch 2/2 (hosts: b, %s): deploying' % ODD,
        'b: deployed 2.0.0 (N s, verdict pass)',
        "%s: failed at 'restart': the new process never became ready. (switched back to 1.0.0-aa)" % ODD,
        'b: analysis fail - health fail: 503',
        'Batch 2 failed: b: analysis fail (N s)',
        'b: switched back to 1.0.0-aa (N s)',
        'a: switched back to 1.0.0-aa (N s)',
    ]
    assert run.lines[2] == 'Batch 1 passed in 12.0 s'


def test_batches_and_hosts(data):
    assert [(b['number'], b['total'], b['hosts'], b['verdict']) for b in data['batches']] == [
        (1, 2, ['a'], 'pass'), (2, 2, ['b', ODD], 'fail')]
    assert data['batches'][1]['metrics'] == 'error_rate fail: 7 > 1'
    assert [s['stage'] for s in data['batches'][0]['spans']] == ['bake']
    rows = dict((r['host'], r) for r in data['hosts'])
    assert rows['a']['verdict'] == 'rolled back: batch 2 failed (canary_abort: rollout)'
    assert rows['a']['class'] == 'rolledback' and rows['a']['switched_back']
    assert (rows['a']['from'], rows['a']['to'], rows['a']['seconds']) == ('1.0.0-aa', '2.0.0-bb', 1.2)
    assert rows[ODD]['verdict'] == "failed at 'restart'" and rows[ODD]['class'] == 'fail'
    assert rows[ODD]['switched_back']
    assert rows['b']['verdict'] == 'rolled back: batch 2 failed'
    assert data['app'] == 'myapp' and data['version'] == '2.0.0'


def test_stage_spans(data):
    a = next(r for r in data['hosts'] if r['host'] == 'a')
    stages = [s['stage'] for s in a['spans']]
    assert stages == ['deploy', 'restart', 'analysis', 'switch back']
    deploy, restart = a['spans'][0], a['spans'][1]
    # The host's clock says more than the deploy took: kept within the task that restarted.
    assert (restart['start'], restart['end']) == (deploy['start'], deploy['start'] + 2.0)
    assert deploy['end'] - deploy['start'] == 3.0  # host_deploy and the record of its result
    odd = next(r for r in data['hosts'] if r['host'] == ODD)
    restart = next(s for s in odd['spans'] if s['stage'] == 'restart')
    assert round(restart['end'] - restart['start'], 1) == 0.4


def test_no_secret_and_no_task_argument(data):
    out = rr.render_json(data) + rr.render_html(data) + '\n'.join(rr.summary_lines(data))
    assert SECRET not in out
    assert 'module_args' not in out


def test_summary_table(data):
    lines = rr.summary_lines(data)
    assert lines[0] == 'Rollout summary'
    assert lines[1].split() == ['host', 'batch', 'from', '->', 'to', 'verdict', 'seconds', 'switched', 'back']
    assert lines[2].split()[:5] == ['a', '1', '1.0.0-aa', '->', '2.0.0-bb']
    assert lines[2].endswith('1.2      yes')
    assert len(lines) == 5


def test_html_report(data):
    page = rr.render_html(data)
    for host in ('a', 'b'):
        assert 'data-host="%s"' % host in page
    assert 'c&lt;&amp;&gt;&quot;' in page and ODD not in page
    for number in (1, 2):
        assert 'class="batch-row v-%s" data-batch="%d"' % ('pass' if number == 1 else 'fail', number) in page
        assert 'class="batch v-%s" data-batch="%d"' % ('pass' if number == 1 else 'fail', number) in page
    assert 'class="host v-rolledback" data-host="a"' in page
    assert 'class="host v-fail" data-host="c&lt;&amp;&gt;&quot;"' in page
    for stage in ('deploy', 'restart', 'bake', 'analysis', 'switch-back'):
        assert 'bar stage-%s' % stage in page
    assert 'error_rate fail: 7 &gt; 1' in page
    assert '<svg id="timeline"' in page and '<table id="hosts">' in page and '<table id="batches">' in page


def test_html_is_self_contained(data):
    page = rr.render_html(data)
    assert not re.search(r'(https?:)?//[\w.-]', page)
    assert '<script' not in page and ' src=' not in page and '<link' not in page


def test_json_is_the_same_data(data):
    assert json.loads(rr.render_json(data)) == json.loads(json.dumps(data))


def test_blue_green_batch_from_the_play():
    run = Run()
    run.play(['x', 'y'], 1)
    run.task(BG_CHECK, ['x', 'y'])
    result = {'release': 'r2', 'previous_release': 'r1', 'version': '2', 'verdict': 'pass', 'seconds': '3.5',
              'changed': True}
    run.task(BG_RESULT, ['x'], res=facts(blue_green_result=result))
    run.task(BG_RESULT, ['y'], status='unreachable')
    data = run.finish()
    assert run.lines == ['Batch 1/1 (hosts: x, y): deploying', 'x: deployed 2 (3.5 s, verdict pass)',
                         "y: unreachable at 'Record the result of this host'",
                         "Batch 1 inconclusive: y: unreachable at 'Record the result of this host' (3.0 s)"]
    assert [r['class'] for r in data['hosts']] == ['pass', 'inconclusive']


def test_batch_without_known_total_or_hosts():
    run = Run()
    run.play()
    run.task(DEPLOY, ['a'], status='failed', res={'failed': True, 'msg': 'bad settings'})
    run.finish()
    assert run.lines == ['Batch 1: deploying', "a: failed at 'Deploy the release'",
                         "Batch 1 failed: a: failed at 'Deploy the release' (1.0 s)"]


def test_last_canary_batch_gives_the_total():
    run = Run()
    run.play()
    run.task(NOTE, ['a'], res=facts(canary__batch=['a', 'b'], canary__batch_number='3', canary__last_batch='True'))
    assert run.lines == ['Batch 3/3 (hosts: a, b): deploying']


def test_rollback_playbook():
    run = Run()
    run.play(['a'], 1)
    run.task(task('Read every host', role='hotswap.deploy.rollback'), ['a'])  # the check play: no batch
    run.play(['a'], 1)
    run.task(SWITCH, ['a'], took=2.0)
    run.task(SWITCHED, ['a'], res=facts(rollback_result={'release': 'r1', 'previous_release': 'r2', 'changed': True,
                                                         'verdict': 'pass', 'seconds': 1.9}))
    data = run.finish()
    assert run.lines == ['Batch 1/1 (hosts: a): switching back', 'a: switched back to r1 (1.9 s)',
                         'Batch 1 passed in 3.0 s']
    row = data['hosts'][0]
    assert (row['from'], row['to'], row['verdict'], row['switched_back']) == ('r2', 'r1', 'pass', True)
    assert [s['stage'] for s in row['spans']] == ['switch back']


def test_other_plays_make_no_batch():
    run = Run()
    run.play(['localhost'], 1)
    run.task(task('Check the deploy inputs', 'ansible.builtin.assert', None), ['localhost'])
    run.task(task('Check the load balancer', 'ansible.builtin.assert', 'hotswap.deploy.lb'), ['localhost'])
    data = run.finish()
    assert run.lines == [] and data['batches'] == [] and data['hosts'] == []
    assert '<svg' not in rr.render_html(data)


@pytest.mark.parametrize('role, action, name, stage', [
    ('hotswap.deploy.deploy_host', 'ansible.builtin.set_fact', 'x', 'deploy'),
    (None, 'hotswap.deploy.host_deploy', 'x', 'deploy'),
    ('blue_green', 'ansible.builtin.assert', 'x', 'deploy'),
    ('hotswap.deploy.rollback', 'hotswap.deploy.release_switch', 'x', 'switch back'),
    ('hotswap.deploy.canary', 'hotswap.deploy.metric_analysis', 'Bake the batch under background analysis', 'bake'),
    ('hotswap.deploy.canary', 'hotswap.deploy.metric_analysis', 'Measure the batch in Prometheus', 'analysis'),
    ('hotswap.deploy.canary', 'ansible.builtin.set_fact', 'Count the batch', None),
    ('acme.ops.rollback', 'ansible.builtin.command', 'x', None),
    (None, 'acme.ops.host_deploy', 'x', None),
])
def test_stage_of(role, action, name, stage):
    assert rr.stage_of(task(name, action, role)) == stage


@pytest.mark.parametrize('serial, hosts, count', [
    ([1, '25%', '100%'], 10, 3), ([], 5, 1), ([2], 5, 3), (['50%'], 3, 3), ([1, 2], 0, 0)])
def test_batch_count(serial, hosts, count):
    assert rr.batch_count(serial, hosts) == count


@pytest.mark.parametrize('verdict, cls', [
    ('pass', 'pass'), ('fail', 'fail'), ("failed at 'restart'", 'fail'), ('rolled back: batch 2 failed', 'rolledback'),
    ('inconclusive', 'inconclusive'), ("unreachable at 'x'", 'inconclusive'), ('skipped', 'skipped'),
    ('check mode: would switch a -> b', 'skipped'), ("switch back failed at 'restart'", 'fail'), (None, 'unknown')])
def test_verdict_class(verdict, cls):
    assert rr.verdict_class(verdict) == cls


def test_pick_keeps_only_what_it_shows():
    seen = rr.pick({'ansible_facts': {'deploy_host_result': {'release': 'r', 'token': SECRET}, 'other': SECRET},
                    'state': {'restart_event': {'start': 1.0, 'end': 2.0}, 'password': SECRET}, 'msg': SECRET})
    assert seen == {'outcome': {'release': 'r'}, 'restart': (1.0, 2.0)}


def _reportlib():
    """tests/integration/reportlib.py: what the headless Chromium test checks of the report's DOM."""
    path = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'integration', 'reportlib.py')
    spec = importlib.util.spec_from_file_location('reportlib', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_browser_check_passes_the_report(data):
    check = _reportlib().report_problems
    page = rr.render_html(data)
    assert check(page, data) == []
    broken = page.replace('class="host v-fail"', 'class="host v-pass"').replace('<svg id="timeline"', '<svg')
    assert check(broken + '<img src="x.png">', data) == [
        'no svg#timeline', 'host %s: tr.host is not v-fail' % ODD, 'the page loads something']


def test_a_host_deployed_again_by_a_later_play():
    run = Run()
    for version in ('1', '2'):
        run.play(['a'], 1)
        run.task(DEPLOY, ['a'])
        run.task(RECORD, ['a'], res=facts(deploy_host_result={'version': version, 'verdict': 'pass', 'seconds': 1}))
    data = run.finish()
    assert [(r['host'], r['batch'], r['version']) for r in data['hosts']] == [('a', 1, '1'), ('a', 2, '2')]
    assert run.lines == ['Batch 1/1 (hosts: a): deploying', 'a: deployed 1 (1.0 s, verdict pass)',
                         'Batch 1 passed in 2.0 s',
                         'Batch 2 (hosts: a): deploying', 'a: deployed 2 (1.0 s, verdict pass)',
                         'Batch 2 passed in 2.0 s']
