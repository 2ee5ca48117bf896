# -*- coding: utf-8 -*-
"""AWX job slicing: two slices of deploy.yml run at the same time under ansible-runner, each with its part
of the inventory and the extra vars AWX gives a slice (docs/awx.md, "Job slicing").

AWX runs a sliced job template as a workflow job named after the template, whose jobs are the slices:
each gets the inventory's hosts sorted by name, every <count>-th from its own (slice k of n: hosts[k-1::n])
and the meta extra vars of a job a workflow launched - no slice number or count. The canary refuses both
slices before any host changes; with canary_allow_job_slicing each slice deploys its own hosts."""

from __future__ import annotations

import json
import os

import ansible_runner
import pytest
import yaml

import testlib

DEPLOY_YML = os.path.join(testlib.INSTALLED, 'playbooks', 'deploy.yml')
SLICES = 2
TEMPLATE = 'deploy sliced'


def awx_slice_vars(number):
    """The meta extra vars AWX gives slice `number` (awx_meta_vars of awx/main/models/unified_jobs.py and
    jobs.py): launched by the workflow job AWX made for the sliced template, which has the template's name."""
    meta = dict(job_id=500 + number, job_launch_type='workflow', workflow_job_id=500,
                workflow_job_name=TEMPLATE, workflow_job_launch_type='manual', job_template_id=7,
                job_template_name=TEMPLATE, inventory_id=3, inventory_name='fleet', user_id=1, user_name='admin',
                project_revision='0' * 40, project_scm_branch='main', execution_node='node-%d' % number)
    return dict(('%s_%s' % (prefix, k), v) for prefix in ('awx', 'tower') for k, v in meta.items())


def slice_inventories(fleet, tmp_path):
    """The inventory of each slice as AWX cuts it: hosts sorted by name, slice k gets hosts[k-1::n]."""
    with open(fleet.inventory) as f:
        inventory = yaml.safe_load(f)
    group = inventory['all']['children'][testlib.TEST_GROUP]
    names = sorted(group['hosts'])
    out = []
    for k in range(1, SLICES + 1):
        part = names[k - 1::SLICES]
        sliced = dict(inventory, all=dict(inventory['all'], children={
            testlib.TEST_GROUP: dict(group, hosts=dict((n, group['hosts'][n]) for n in part))}))
        path = tmp_path / ('slice-%d.yml' % k)
        path.write_text(yaml.safe_dump(sliced, default_flow_style=False))
        out.append((part, str(path)))
    return out


def run_slices(tmp_path, name, inventories, extra):
    """Both slices at once (ansible_runner.run_async), as AWX starts a sliced job's jobs; their runners."""
    started = []
    for k, (_hosts, inventory) in enumerate(inventories, 1):
        private = tmp_path / ('%s-%d' % (name, k))
        private.mkdir()
        thread, runner = ansible_runner.run_async(
            private_data_dir=str(private),
            ident='slice-%d' % k,
            playbook=DEPLOY_YML,
            inventory=inventory,
            extravars=dict(extra, **awx_slice_vars(k)),
            envvars=testlib.runner_env(),
            passwords={},
            timeout=300,
            quiet=True,
        )
        started.append((thread, runner))
    for thread, _runner in started:
        thread.join(360)
    return [runner for _thread, runner in started]


def hosts_in_events(runner):
    return set(e['event_data']['host'] for e in runner.events
               if e.get('event', '').startswith('runner_on_') and e.get('event_data', {}).get('host'))


def ran_at_once(runners):
    """The slices overlapped: each started before the other ended (event times)."""
    spans = []
    for r in runners:
        times = sorted(e['created'] for e in r.events if e.get('created'))
        spans.append((times[0], times[-1]))
    return max(s for s, _e in spans) < min(e for _s, e in spans)


def summary(runner):
    stats = [e for e in runner.events if e.get('event') == 'playbook_on_stats']
    return stats[0]['event_data'].get('artifact_data', {}).get('hotswap_deploy', {}) if stats else {}


@pytest.fixture
def sliced_app(fleet, app_name):
    yield fleet, app_name
    testlib.remove_app(fleet, app_name)


def test_two_slices_refuse_at_once_and_deploy_their_parts_when_allowed(sliced_app, app_port, tmp_path, monkeypatch):
    fleet, app = sliced_app
    monkeypatch.delenv('ANSIBLE_CONFIG', raising=False)      # no checkout ansible.cfg in an AWX job
    inventories = slice_inventories(fleet, tmp_path)
    assert sorted(sum((h for h, _i in inventories), [])) == sorted(h['name'] for h in fleet.hosts)
    artifact = testlib.build_app('1.0.0')
    deploy = testlib.with_test_defaults('deploy', dict(app=app, version='1.0.0', artifact=artifact,
                                                       checksum=testlib.sha256(artifact), listen_port=app_port))
    before = dict((h['name'], testlib.tree_state(h, '/opt/' + app, app)) for h in fleet.hosts)

    # The default canary (steps [1, "25%", "100%"]) in each slice: refused before any host is touched.
    refused = run_slices(tmp_path, 'refused', inventories, deploy)
    for k, r in enumerate(refused, 1):
        out = r.stdout.read()
        assert (r.status, r.rc) != ('successful', 0), out[-4000:]
        assert ("Canary of %s refused: this AWX job is one slice of the sliced job template '%s' (it was launched "
                'by workflow job 500' % (app, TEMPLATE)) in out, out[-4000:]
        assert 'the first batch no longer gates the fleet' in out and 'canary_stop_after: 1' in out, out[-4000:]
        assert hosts_in_events(r) == {'localhost'}, (k, hosts_in_events(r))
    assert ran_at_once(refused)
    for host in fleet.hosts:
        assert testlib.tree_state(host, '/opt/' + app, app) == before[host['name']], host['name']
        assert testlib.served_version(host, app_port) is None

    # canary_allow_job_slicing: each slice is an independent rollout of its own host, at the same time.
    allowed = run_slices(tmp_path, 'allowed', inventories,
                         dict(deploy, canary_allow_job_slicing=True, canary_steps=['100%'], canary_bake_time=0))
    release = '1.0.0-%s' % testlib.sha256(artifact)[len('sha256:'):][:12]
    for (part, _inventory), r in zip(inventories, allowed):
        out = r.stdout.read()
        assert (r.status, r.rc) == ('successful', 0), out[-6000:]
        assert ('canary_allow_job_slicing is true, so this slice rolls out its own hosts as an independent '
                'canary') in out, out[-4000:]
        assert hosts_in_events(r) == set(part) | {'localhost'}, hosts_in_events(r)
        s = summary(r)
        assert sorted(s) == sorted(part), json.dumps(s)
        for name in part:
            assert (s[name]['release'], s[name]['verdict'], s[name]['analysis'], s[name]['batch']) == \
                (release, 'pass', 'pass', 1), s[name]
    assert ran_at_once(allowed)
    for host in fleet.hosts:
        assert testlib.served_version(host, app_port) == '1.0.0', host['name']
