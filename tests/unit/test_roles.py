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


# Role variables replaced by the service settings (hotswap_service, plugins/module_utils/service.py).
REMOVED_VARIABLES = (
    'deploy_host_service_args', 'deploy_host_service_user', 'deploy_host_health_url', 'deploy_host_check_version',
    'canary_health_url', 'rollback_health_url', 'rollback_check_version', 'blue_green_service_args',
    'blue_green_service_user', 'blue_green_health_path', 'blue_green_check_version',
)
# What runs the roles or the playbooks (docs and the changelog may name the old variables).
USERS_OF_THE_ROLES = ('roles', 'playbooks', 'molecule', 'benchmarks', 'scripts', os.path.join('tests', 'integration'))


def role_text(role):
    """Everything of a role the variables are read in: tasks, handlers, templates, defaults, vars."""
    texts = []
    for sub in ('tasks', 'handlers', 'templates', 'defaults', 'vars'):
        for dirpath, _dirs, files in os.walk(os.path.join(REPO, 'roles', role, sub)):
            for name in files:
                with open(os.path.join(dirpath, name)) as f:
                    texts.append(f.read())
    return '\n'.join(texts)


@pytest.mark.parametrize('role', ROLES)
def test_argument_specs_document_only_variables_the_role_reads(role):
    """An option no file of the role reads (a removed variable) would be accepted and silently ignored."""
    text = role_text(role)
    for entry, spec in load('roles', role, 'meta', 'argument_specs.yml')['argument_specs'].items():
        unread = sorted(name for name in spec.get('options', {}) if not re.search(r'\b%s\b' % re.escape(name), text))
        assert unread == [], (role, entry, unread)


@pytest.mark.parametrize('role', ROLES)
def test_entry_points_document_hotswap_service(role):
    """Every entry point of a role that reads the service settings documents hotswap_service."""
    specs = load('roles', role, 'meta', 'argument_specs.yml')['argument_specs']
    assert 'hotswap_service' in role_text(role), role
    for entry, spec in specs.items():
        option = spec.get('options', {}).get('hotswap_service')
        assert option, (role, entry)
        assert option['type'] == 'dict' and not option.get('required', False), (role, entry, option)
        assert 'docs/service-settings.md' in ' '.join(option['description']), (role, entry, option)


def test_no_removed_variable_is_used():
    found = []
    for top in USERS_OF_THE_ROLES:
        for dirpath, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = [d for d in dirs if d not in ('__pycache__', 'results')]
            for name in files:
                if not name.endswith(('.py', '.yml', '.yaml', '.j2', '.md', '.sh')):
                    continue
                path = os.path.join(dirpath, name)
                with open(path) as f:
                    text = f.read()
                found += ['%s: %s' % (os.path.relpath(path, REPO), v) for v in REMOVED_VARIABLES
                          if re.search(r'\b%s\b' % v, text)]
    assert found == []


# The modules that write a host's release tree: each refuses a lock held by anyone but its lock_owner.
TREE_WRITERS = ('hotswap.deploy.binary_upload', 'hotswap.deploy.release_activate', 'hotswap.deploy.release_prune')


def role_task_files():
    for role in ROLES:
        tasks_dir = os.path.join(REPO, 'roles', role, 'tasks')
        for name in sorted(os.listdir(tasks_dir)):
            if name.endswith('.yml'):
                yield os.path.join('roles', role, 'tasks', name)


def in_order(tasks):
    """Every task of a task list as it runs: a block, then its block, rescue and always tasks."""
    for task in tasks or []:
        yield task
        for key in ('block', 'rescue', 'always'):
            yield from in_order(task.get(key))


def module_of(task):
    return next((m for m in TREE_WRITERS + ('hotswap.deploy.deploy_lock',) if m in task), None)


@pytest.mark.parametrize('path', list(role_task_files()))
def test_the_roles_write_the_release_tree_as_their_lock_owner(path):
    """Every writing task names the role's lock owner, so a foreign (or reclaimed) lock stops it."""
    for task in in_order(load(path)):
        module = module_of(task)
        if module in TREE_WRITERS and task.get('check_mode') is not True:
            assert re.match(r'\{\{ \w+__owner \}\}$', task[module].get('lock_owner', '')), (path, task['name'])
        if module == 'hotswap.deploy.deploy_lock' and task[module].get('state', 'present') == 'present':
            assert 'reclaim_key' in task[module], (path, task['name'])


@pytest.mark.parametrize('path', list(role_task_files()))
def test_nothing_is_written_after_the_lock_is_released(path):
    released = None
    for task in in_order(load(path)):
        module = module_of(task)
        if module == 'hotswap.deploy.deploy_lock' and task[module].get('state') == 'absent':
            released = task['name']
        elif module in TREE_WRITERS:
            assert released is None, (path, task['name'], 'runs after', released)
