# -*- coding: utf-8 -*-
"""deploy.yml run the way AWX/Tower runs a job template: unmodified, under ansible-runner, with
extra vars only and nobody at a terminal; the per-host summary read from the job's artifacts."""

from __future__ import annotations

import glob
import json
import os
import time

import ansible_runner
import pytest

import testhosts
import testlib

APP = 'awxdemo'
PORT = 8080
DEPLOY_YML = os.path.join(testlib.INSTALLED, 'playbooks', 'deploy.yml')
# Events that mean Ansible asked someone something (AWX has no one to answer).
PROMPT_EVENTS = ('playbook_on_vars_prompt',)
PROMPT_TEXT = ('Press enter', 'Press \'C\'', 'stdin is not interactive', '[y/N]', 'password:')


@pytest.fixture(scope='module')
def awx_fleet():
    assert os.path.exists(os.path.join(testlib.INSTALLED, 'MANIFEST.json')), \
        'the built collection is not installed under %s: run `make collection`' % testlib.COLLECTIONS
    prefix = 'hs-awx-%d' % os.getpid()
    hosts = testhosts.up(prefix, 2)
    try:
        yield hosts, testhosts.inventory_path(prefix)
    finally:
        testhosts.down(prefix)


SECRET = 'hs-awx-secret-90d1e'


def release_id(version, artifact):
    return '%s-%s' % (version, testlib.sha256(artifact)[len('sha256:'):][:12])


def stats_events(artifact_dir):
    """playbook_on_stats events as ansible-runner wrote them into the job's artifacts (AWX reads these)."""
    events = []
    for path in glob.glob(os.path.join(artifact_dir, 'job_events', '*.json')):
        with open(path) as f:
            event = json.load(f)
        if event.get('event') == 'playbook_on_stats':
            events.append(event)
    return events


def test_deploy_under_ansible_runner_reports_set_stats(awx_fleet, tmp_path, monkeypatch):
    hosts, inventory = awx_fleet
    v1, v2 = testlib.build_app('1.0.0'), testlib.build_app('2.0.0')
    # v2 carries a secret in its environment and in a release file: it must show nowhere in the job's artifacts.
    secret_files = [{'dest': 'token', 'content': SECRET, 'secret': True}]
    v1_id = release_id('1.0.0', v1)
    v2_id = testlib.release_id('2.0.0', v2, files=secret_files, environment_secret={'HOTSWAP_TOKEN': SECRET}, binary=APP)

    # v1 first (quickly, with ansible-playbook), so the job below has a previous release to report.
    r = testlib.playbook(inventory, 'deploy', dict(app=APP, version='1.0.0', artifact=v1, checksum=testlib.sha256(v1),
                                                   canary_bake_time=0), tmp_path=tmp_path)
    assert r.rc == 0, r

    # The job: deploy.yml as installed, every input an extra var, rollout settings left at their
    # defaults (canary). ansible-runner starts ansible-playbook on a pseudo-terminal nobody types
    # into, as AWX does; a prompt would block until the timeout.
    monkeypatch.delenv('ANSIBLE_CONFIG', raising=False)       # no checkout ansible.cfg in an AWX job
    private = tmp_path / 'runner'
    private.mkdir()
    started = time.monotonic()
    runner = ansible_runner.run(
        private_data_dir=str(private),
        ident='deploy-v2',
        playbook=DEPLOY_YML,
        inventory=inventory,
        # The test hosts' group (deploy_hosts) and the demo app's flags (service_args) are extra vars too.
        extravars=testlib.with_test_defaults('deploy', dict(app=APP, version='2.0.0', artifact=v2,
                                                            checksum=testlib.sha256(v2), release_files=secret_files,
                                                            environment_secret={'HOTSWAP_TOKEN': SECRET})),
        envvars=testlib.runner_env(),
        passwords={},
        timeout=900,
        quiet=True,
    )
    wall = time.monotonic() - started
    stdout = runner.stdout.read()
    assert (runner.status, runner.rc) == ('successful', 0), stdout[-6000:]

    # Nobody was asked anything.
    events = list(runner.events)
    assert not [e for e in events if e.get('event') in PROMPT_EVENTS], stdout[-3000:]
    assert not [t for t in PROMPT_TEXT if t in stdout], stdout[-3000:]

    # The set_stats summary: in the playbook_on_stats event of the job's artifacts (AWX keeps it as
    # the job's artifacts and hands it to later workflow nodes as extra vars).
    artifact_dir = os.path.join(str(private), 'artifacts', 'deploy-v2')
    on_disk = stats_events(artifact_dir)
    assert len(on_disk) == 1, 'one playbook_on_stats event expected in %s' % artifact_dir
    assert [e for e in events if e.get('event') == 'playbook_on_stats'][0]['event_data']['artifact_data'] == \
        on_disk[0]['event_data']['artifact_data']
    summary = on_disk[0]['event_data']['artifact_data']['hotswap_deploy']
    names = [h['name'] for h in hosts]
    assert sorted(summary) == sorted(names), summary

    batches = []
    for name in names:
        s = summary[name]
        assert s['previous_release'] == v1_id, s
        assert s['release'] == v2_id, s
        assert s['version'] == '2.0.0', s
        assert s['verdict'] == 'pass', s
        assert s['analysis'] == 'pass', s
        assert s['changed'] is True, s
        # Seconds on the host, from lock to result: more than nothing, less than the whole job.
        assert 0 < float(s['seconds']) < wall, (s, wall)
        batches.append(int(s['batch']))
    # The default steps [1, "25%", "100%"] over two hosts: one host, then the other.
    assert sorted(batches) == [1, 2], summary
    assert runner.stats['failures'] == {} and runner.stats['dark'] == {}, runner.stats

    for host in hosts:
        assert testlib.served_version(host, PORT) == '2.0.0'

    # No secret in what AWX keeps of the job: stdout, every job event (set_stats included), the status files.
    for root, _dirs, names in os.walk(artifact_dir):
        for name in names:
            with open(os.path.join(root, name), errors='replace') as f:
                assert SECRET not in f.read(), os.path.join(root, name)
    assert SECRET not in stdout
