# -*- coding: utf-8 -*-
"""The molecule scenario of every role (molecule/<role>/), run from pytest so `make test` can
spread them over workers with the other integration tests. One class per scenario: pytest-xdist's
loadscope gives each its own worker. `make molecule` runs the same scenarios without pytest."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest

import testlib

MOLECULE_DIR = os.path.join(testlib.REPO, 'molecule')
SCENARIOS = sorted(d for d in os.listdir(MOLECULE_DIR) if os.path.exists(os.path.join(MOLECULE_DIR, d, 'molecule.yml')))


@pytest.fixture(scope='module')
def artifacts(tmp_path_factory):
    """HOTSWAP_MOLECULE_* variables from molecule/shared/artifacts.sh (demo app v1 and v2)."""
    out = subprocess.run([os.path.join(MOLECULE_DIR, 'shared', 'artifacts.sh'), str(tmp_path_factory.mktemp('app'))],
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        name, value = line[len('export '):].split('=', 1)
        env[name] = shlex.split(value)[0]
    return env


def run_scenario(name, artifacts, tmp_path):
    env = testlib.ansible_env()
    env.update(artifacts)
    env.update({'MOLECULE_EPHEMERAL_DIRECTORY': str(tmp_path / 'molecule'), 'MOLECULE_GLOB': 'molecule/*/molecule.yml',
                'NO_COLOR': '1'})
    return testlib.run_env([os.path.join(testlib.VENV_BIN, 'molecule'), 'test', '-s', name], env, timeout=1200)


class Scenario(object):
    scenario = None

    def test_create_converge_idempotence_verify_destroy(self, artifacts, tmp_path):
        r = run_scenario(self.scenario, artifacts, tmp_path)
        # molecule exits non-zero when any step fails, idempotence included (a second converge
        # with a change); the second converge's recap shows it.
        assert r.rc == 0, r
        assert 'idempotence' in r.out, r
        recaps = [m.groupdict() for m in testlib.RECAP_RE.finditer(r.out)]
        assert any(int(c['changed']) == 0 and c['host'] != 'localhost' for c in recaps), r


for _name in SCENARIOS:
    _cls = 'TestMolecule' + ''.join(p.capitalize() for p in _name.split('_'))
    globals()[_cls] = type(_cls, (Scenario,), {'scenario': _name})


# Internal roles, run by the rollout roles' scenarios; lb needs an HAProxy host: test_load_balancer.py.
INTERNAL_ROLES = ('deploy_host', 'lb')


def test_every_role_has_a_scenario():
    roles = sorted(d for d in os.listdir(os.path.join(testlib.REPO, 'roles')) if d not in INTERNAL_ROLES)
    assert roles == SCENARIOS
