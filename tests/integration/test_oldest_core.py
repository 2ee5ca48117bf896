# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""A real deploy and rollback with the oldest ansible-core meta/runtime.yml claims (the rest of the suite runs
the newest, the dev venv's). make test makes its venv before pytest (scripts/core-matrix.sh --venvs)."""

from __future__ import annotations

import os

import pytest
import yaml

import testlib

APP = 'oldcore'
PORT = 8087


def oldest_claimed():
    with open(os.path.join(testlib.REPO, 'meta', 'runtime.yml')) as f:
        claim = yaml.safe_load(f)['requires_ansible']
    oldest = claim.split(',')[0]
    assert oldest.startswith('>='), claim
    return '.'.join(oldest[2:].split('.')[:2])


@pytest.fixture
def oldest_bin():
    version = oldest_claimed()
    bin_dir = os.path.join(testlib.REPO, 'build', 'core-%s' % version, 'bin')
    if not os.path.exists(os.path.join(bin_dir, 'ansible-playbook')):
        why = 'no venv for ansible-core %s: run scripts/core-matrix.sh --venvs %s (make test does)' % (version, version)
        if os.environ.get('CI'):
            pytest.fail(why)    # make test makes the venvs before pytest: in CI a missing one is a fault
        pytest.skip(why)
    return version, bin_dir


@pytest.fixture
def hosts(fleet):
    yield fleet
    testlib.remove_app(fleet.hosts, APP)


def run_oldest(bin_dir, hosts, name, extra, tmp_path):
    argv = testlib.playbook_argv(hosts.inventory, name, extra, tmp_path=tmp_path)
    argv[0] = os.path.join(bin_dir, 'ansible-playbook')
    env = testlib.ansible_env('ssh')
    env['PATH'] = bin_dir + os.pathsep + env['PATH']
    return testlib.run_env(argv, env)


def test_deploy_and_rollback_on_the_oldest_claimed_ansible_core(oldest_bin, hosts, tmp_path):
    version, bin_dir = oldest_bin
    r = testlib.run_env([os.path.join(bin_dir, 'ansible-playbook'), '--version'], testlib.ansible_env())
    assert r.out.splitlines()[0].startswith('ansible-playbook [core %s.' % version), r
    base = dict(testlib.ONE_BATCH, app=APP, listen_port=PORT)
    for v in ('1.0.0', '2.0.0'):
        artifact = testlib.build_app(v)
        extra = dict(base, version=v, artifact=artifact, checksum=testlib.sha256(artifact))
        r = run_oldest(bin_dir, hosts, 'deploy', extra, tmp_path)
        assert r.rc == 0, r
        assert {testlib.served_version(h, PORT) for h in hosts} == {v}, r
    r = run_oldest(bin_dir, hosts, 'rollback', dict(app=APP, listen_port=PORT), tmp_path)
    assert r.rc == 0, r
    assert {testlib.served_version(h, PORT) for h in hosts} == {'1.0.0'}, r
