# -*- coding: utf-8 -*-
"""Static checks of the roles and playbooks: defaults, argument specs and the playbooks agree."""

from __future__ import annotations

import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(d for d in os.listdir(os.path.join(REPO, 'roles')) if not d.startswith('.'))


def load(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return yaml.safe_load(f)


def test_deploy_playbook_serial_default_is_the_canary_default():
    """deploy.yml's serial cannot see role defaults, so it repeats canary_steps' default."""
    steps = load('roles', 'canary', 'defaults', 'main.yml')['canary_steps']
    serial = load('playbooks', 'deploy.yml')[1]['serial']
    m = re.search(r"canary_steps \| default\((\[.*?\])\)", serial)
    assert m, serial
    assert yaml.safe_load(m.group(1)) == steps


@pytest.mark.parametrize('role', ROLES)
def test_every_default_is_in_the_argument_spec(role):
    defaults = load('roles', role, 'defaults', 'main.yml') or {}
    options = load('roles', role, 'meta', 'argument_specs.yml')['argument_specs']['main']['options']
    assert sorted(set(defaults) - set(options)) == []


@pytest.mark.parametrize('role', ROLES)
def test_every_role_has_a_readme_and_meta(role):
    for name in ('README.md', os.path.join('meta', 'main.yml'), os.path.join('meta', 'argument_specs.yml')):
        assert os.path.exists(os.path.join(REPO, 'roles', role, name)), (role, name)


def test_canary_metric_keys_are_the_metric_analysis_options():
    """canary_metrics is passed key by key to metric_analysis: the lists must agree."""
    keys = set(load('roles', 'canary', 'vars', 'main.yml')['canary__metric_keys']) - {'run_on'}
    import ast
    with open(os.path.join(REPO, 'plugins', 'modules', 'metric_analysis.py')) as f:
        doc = yaml.safe_load(ast.literal_eval(re.search(r"DOCUMENTATION = (r'''.*?''')", f.read(), re.S).group(1)))
    assert keys == set(doc['options']) - {'fail_on'}
