# -*- coding: utf-8 -*-
"""Static checks of the roles and playbooks: defaults, argument specs, the playbooks, the module docs and the docs agree."""

from __future__ import annotations

import ast
import glob
import os
import re

import pytest
import yaml

from ansible_collections.hotswap.deploy.plugins.module_utils import units
from ansible_collections.hotswap.deploy.plugins.module_utils.common import STRATEGIES
from ansible_collections.hotswap.deploy.plugins.modules import graceful_restart

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(d for d in os.listdir(os.path.join(REPO, 'roles')) if not d.startswith('.'))


def load(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return yaml.safe_load(f)


def read(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


def documentation(path):
    """{name: parsed YAML} of the documentation strings of a module (DOCUMENTATION) or a doc fragment (every one)."""
    fragment = os.path.basename(os.path.dirname(path)) == 'doc_fragments'
    docs = {}
    for node in ast.walk(ast.parse(read(path), path)):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name) and (target.id == 'DOCUMENTATION' or fragment and target.id.isupper()):
                    try:
                        docs[target.id] = yaml.safe_load(node.value.value)
                    except yaml.YAMLError as e:
                        pytest.fail('%s %s is not YAML: %s' % (path, target.id, e))
    return docs


def module_and_fragment_files():
    return sorted(os.path.relpath(p, REPO) for d in ('modules', 'doc_fragments')
                  for p in glob.glob(os.path.join(REPO, 'plugins', d, '*.py')))


def options_of(options, where=()):
    """(names, spec) of every option and sub-option: modules nest with suboptions, role specs with options."""
    for name, spec in (options or {}).items():
        yield where + (name,), spec
        yield from options_of(spec.get('suboptions') or spec.get('options'), where + (name,))


def argument_specs(role):
    return load('roles', role, 'meta', 'argument_specs.yml')['argument_specs']


def test_deploy_playbook_serial_default_is_the_canary_default():
    """deploy.yml's serial cannot see role defaults, so it repeats canary_steps' default."""
    steps = load('roles', 'canary', 'defaults', 'main.yml')['canary_steps']
    serial = [p for p in load('playbooks', 'deploy.yml') if 'serial' in p][0]['serial']
    m = re.search(r"canary_steps \| default\((\[.*?\])\)", serial)
    assert m, serial
    assert yaml.safe_load(m.group(1)) == steps


@pytest.mark.parametrize('role', ROLES)
def test_every_default_is_in_the_argument_spec(role):
    defaults = load('roles', role, 'defaults', 'main.yml') or {}
    options = argument_specs(role)['main']['options']
    assert sorted(set(defaults) - set(options)) == []


@pytest.mark.parametrize('role', ROLES)
def test_every_role_has_a_readme_and_meta(role):
    for name in ('README.md', os.path.join('meta', 'main.yml'), os.path.join('meta', 'argument_specs.yml')):
        assert os.path.exists(os.path.join(REPO, 'roles', role, name)), (role, name)


def test_canary_metric_keys_are_the_metric_analysis_options():
    """A canary metric is passed as is to metric_analysis' metrics: its keys, the module's suboptions and
    the analysis' METRIC_KEYS must agree."""
    from ansible_collections.hotswap.deploy.plugins.module_utils.analysis import METRIC_KEYS
    doc = documentation(os.path.join('plugins', 'modules', 'metric_analysis.py'))['DOCUMENTATION']
    assert set(doc['options']['metrics']['suboptions']) == set(METRIC_KEYS)


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
    for entry, spec in argument_specs(role).items():
        unread = sorted(name for name in spec.get('options', {}) if not re.search(r'\b%s\b' % re.escape(name), text))
        assert unread == [], (role, entry, unread)


# Roles that never read the service settings (the internal load-balancer role).
NO_SERVICE_ROLES = ('lb',)


@pytest.mark.parametrize('role', [r for r in ROLES if r not in NO_SERVICE_ROLES])
def test_entry_points_document_hotswap_service(role):
    """Every entry point of a role that reads the service settings documents hotswap_service."""
    specs = argument_specs(role)
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


INCLUDES = ('ansible.builtin.include_tasks', 'ansible.builtin.import_tasks')


def in_order(tasks, tasks_dir=None, seen=()):
    """Every task of a task list as it runs: a block, then its block, rescue and always tasks; with
    ``tasks_dir``, the tasks of a file of that directory it includes by name (a stage file) in its place."""
    for task in tasks or []:
        yield task
        for key in ('block', 'rescue', 'always'):
            yield from in_order(task.get(key), tasks_dir, seen)
        included = next((task[k] for k in INCLUDES if isinstance(task.get(k), str)), None)
        if tasks_dir and included and '{' not in included and included not in seen:
            path = os.path.join(tasks_dir, included)
            if os.path.exists(os.path.join(REPO, path)):
                yield from in_order(load(path), tasks_dir, seen + (included,))


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
    # The role's stage files are followed (a role may take the lock in one file and release it in another).
    for task in in_order(load(path), os.path.dirname(path)):
        module = module_of(task)
        if module == 'hotswap.deploy.deploy_lock' and task[module].get('state') == 'absent':
            released = task['name']
        elif module in TREE_WRITERS:
            assert released is None, (path, task['name'], 'runs after', released)


# --------------------------------------------------------------------------- one list of restart strategies
# module_utils/common.py STRATEGIES is the list. The modules take their choices from it; what cannot import it -
# DOCUMENTATION, the roles' argument specs and vars, playbooks/deploy.yml and the docs - is checked against it here.

def is_strategy_option(name, spec):
    return name == 'strategy' or name.endswith('_restart_strategy') or 'systemd_socket' in (spec.get('choices') or [])


def documented_strategy_choices():
    """{where: choices} of every documented option that takes a restart strategy: modules, doc fragments, roles."""
    found = {}
    for path in module_and_fragment_files():
        for doc_name, doc in documentation(path).items():
            for names, spec in options_of((doc or {}).get('options')):
                if is_strategy_option(names[-1], spec):
                    found['%s %s %s' % (path, doc_name, '.'.join(names))] = spec.get('choices')
    for role in ROLES:
        for entry, spec in argument_specs(role).items():
            for names, option in options_of(spec.get('options')):
                if is_strategy_option(names[-1], option):
                    found['roles/%s %s %s' % (role, entry, '.'.join(names))] = option.get('choices')
    return found


def test_documented_strategy_choices_are_the_one_list():
    found = documented_strategy_choices()
    assert set(found) >= {
        'plugins/modules/graceful_restart.py DOCUMENTATION strategy',
        'plugins/modules/service_units.py DOCUMENTATION strategy',
        'plugins/doc_fragments/units.py DOCUMENTATION strategy',  # release_status
        'roles/deploy_host main deploy_host_restart_strategy',
        'roles/canary main canary_restart_strategy',
        'roles/rollback main rollback_restart_strategy',
        'roles/rollback plan rollback_restart_strategy',
        'roles/rollback host rollback_restart_strategy',
    }, sorted(found)
    # "" (rollback: the strategy in force on the host) is no strategy.
    wrong = {where: choices for where, choices in found.items()
             if [c for c in choices or [] if c != ''] != list(STRATEGIES)}
    assert wrong == {}, 'choices must be %s' % list(STRATEGIES)


def test_module_argument_specs_take_the_one_list():
    assert graceful_restart.ARGUMENT_SPEC['strategy']['choices'] == list(STRATEGIES)
    assert units.UNITS_SPEC['strategy']['choices'] == list(STRATEGIES)  # release_status, service_units
    assert "strategy=dict(type='str', choices=list(STRATEGIES))" in read('plugins', 'modules', 'service_units.py')


def test_no_plugin_has_its_own_strategy_list():
    """A tuple, list or set of two or more strategy names anywhere but module_utils/common.py is a second copy."""
    copies = []
    for path in sorted(glob.glob(os.path.join(REPO, 'plugins', '**', '*.py'), recursive=True)):
        if path == os.path.join(REPO, 'plugins', 'module_utils', 'common.py'):
            continue
        for node in ast.walk(ast.parse(read(path), path)):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                names = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in STRATEGIES]
                if len(names) >= 2:
                    copies.append('%s:%d %s' % (os.path.relpath(path, REPO), node.lineno, names))
    assert copies == []


def test_rollback_strategy_markers_are_the_one_list():
    """The rollback role looks for the marker of each strategy (.hotswap-<app>.<strategy>)."""
    assert load('roles', 'rollback', 'vars', 'main.yml')['rollback__strategies'] == list(STRATEGIES)


STRATEGY_NAME = '|'.join(STRATEGIES)
# A written-out list of every strategy: "`a`, `b`, `c`, `d` or `e`", "(a, b, c, d or e)".
STRATEGY_LIST_RE = re.compile(r'`?(?:%s)`?(?:(?:,| or| and),? `?(?:%s)`?){%d}' % (STRATEGY_NAME, STRATEGY_NAME,
                                                                                  len(STRATEGIES) - 1))
# The tables with one row per strategy (the first cell names it), by the start of their header.
STRATEGY_TABLES = (
    ('README.md', '| strategy | how |'),
    ('docs/user-guide.md', '| strategy | what happens |'),
    ('docs/app-contract.md', '| | app needs |'),
    ('docs/app-contract.md', '| strategy | the app needs |'),
)


@pytest.mark.parametrize('path', ['README.md', 'playbooks/deploy.yml'])
def test_written_out_strategy_lists_are_the_one_list(path):
    lists = STRATEGY_LIST_RE.findall(read(path))
    assert lists, path
    for found in lists:
        assert re.findall(STRATEGY_NAME, found) == list(STRATEGIES), (path, found)


@pytest.mark.parametrize('path, header', STRATEGY_TABLES)
def test_strategy_tables_have_a_row_per_strategy(path, header):
    lines = read(path).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        rows.append(line.split('|')[1].replace('(default)', '').strip().strip('`'))
    assert sorted(rows) == sorted(STRATEGIES), (path, header, rows)


# --------------------------------------------------------------------------- one source of the shared defaults
# The roles repeat deploy_host's defaults (<role>_<name> = deploy_host_<name>); deploy_host's defaults/main.yml is the
# source. These differ on purpose:
OWN_DEFAULTS = {
    'canary_health_retries': 'the analysis probes hosts deploy_host already verified',
    'rollback_binary': 'empty: the name the ledger recorded for the target',
    'rollback_restart_strategy': 'empty: the strategy in force on the host',
    'rollback_win_path': "deploy_host_win_path when the play sets it",
    'rollback_win_service': "deploy_host_win_service when the play sets it",
    'blue_green_listen_address': 'the slots listen behind nginx, on the loopback',
    'lb_drain_timeout': "the playbooks' drain_timeout extra var, 60 when unset",
    'lb_ready_timeout': "HAProxy's own check after ready: a few of its intervals, not the app's start",
}
SOURCE_ROLE = 'deploy_host'


def role_defaults(role):
    return load('roles', role, 'defaults', 'main.yml') or {}


def in_role(value, role, to):
    """``value`` with the role's app variable written as ``to`` ("{{ canary_app }}" -> "{{ deploy_host_app }}")."""
    return re.sub(r'\{\{ %s_app \}\}' % role, to, value) if isinstance(value, str) else value


def shared_defaults():
    """(role, variable, value, deploy_host's variable, its value) of every default a role shares with deploy_host."""
    source = role_defaults(SOURCE_ROLE)
    for role in ROLES:
        if role == SOURCE_ROLE:
            continue
        for name, value in role_defaults(role).items():
            source_name = SOURCE_ROLE + name[len(role):]
            if source_name in source:
                yield role, name, in_role(value, role, '{{ %s_app }}' % SOURCE_ROLE), source_name, source[source_name]


def test_shared_defaults_are_deploy_host_defaults():
    shared = {name: (value, source_name, source) for _r, name, value, source_name, source in shared_defaults()}
    # What several roles repeat: if one is renamed, this test must learn it.
    for name in ('health_retries', 'health_interval', 'health_successes', 'health_timeout', 'ready_timeout',
                 'drain_timeout', 'lock_stale_after', 'deploy_id', 'base_dir'):
        assert {'rollback_' + name, 'blue_green_' + name} <= set(shared), name
    assert {'rollback_listen_port', 'canary_listen_port', 'blue_green_keep', 'canary_restart_strategy',
            'canary_health_interval', 'canary_binary', 'blue_green_binary', 'rollback_pid_file'} <= set(shared)
    differ = {name: (value, source_name, source) for name, (value, source_name, source) in shared.items()
              if value != source or type(value) is not type(source)}
    assert sorted(set(differ) - set(OWN_DEFAULTS)) == [], differ
    # An exception that no longer differs (or no longer exists) goes.
    assert sorted(set(OWN_DEFAULTS) - set(differ)) == []


@pytest.mark.parametrize('role', ROLES)
def test_argument_spec_defaults_are_the_role_defaults(role):
    """The documented default of every entry point is defaults/main.yml's ("{{ <role>_app }}" documented as <app>)."""
    defaults = role_defaults(role)
    wrong = []
    for entry, spec in argument_specs(role).items():
        for name, option in spec.get('options', {}).items():
            if name not in defaults:
                continue
            value = in_role(defaults[name], role, '<app>')
            if isinstance(value, str) and '{{' in value:
                continue  # computed: the spec describes it in words
            if option.get('default') != value or type(option.get('default')) is not type(value):
                wrong.append((entry, name, option.get('default', '(none)'), defaults[name]))
    assert wrong == []


def playbook_defaults():
    """(playbook, role variable, value) of every "<role var>: '{{ extra_var | default(<literal>) }}'" of a playbook."""
    for path in sorted(glob.glob(os.path.join(REPO, 'playbooks', '*.yml'))):
        for name, literal in re.findall(r'^\s+(\w+): (?:&\w+ )?"\{\{ \w+ \| default\((.*)\) \}\}"$', read(path), re.M):
            try:
                value = ast.literal_eval(literal)
            except (ValueError, SyntaxError):
                continue  # an expression ('/opt/' ~ app), not a default to compare
            yield os.path.relpath(path, REPO), name, value


def test_playbook_defaults_are_the_role_defaults():
    """The playbooks pass extra vars on with a default; it must be the role's own (they cannot read it)."""
    compared, wrong = set(), []
    for path, name, value in playbook_defaults():
        role = next((r for r in ROLES if name.startswith(r + '_')), None)
        defaults = role_defaults(role) if role else {}
        if name not in defaults:
            continue
        compared.add(name)
        if value != defaults[name] or type(value) is not type(defaults[name]):
            wrong.append((path, name, value, defaults[name]))
    assert wrong == []
    assert {'canary_listen_port', 'canary_restart_strategy', 'deploy_host_ready_timeout', 'deploy_host_drain_timeout',
            'rollback_listen_port', 'rollback_restart_strategy', 'rollback_ready_timeout'} <= compared, compared


def test_the_canary_validate_entry_point_checks_what_main_checks():
    """playbooks/deploy.yml checks the canary's options once (tasks_from: validate) and imports tasks_from: batch,
    which checks nothing: the two entry points must take the same options, and batch none of its own."""
    specs = load('roles', 'canary', 'meta', 'argument_specs.yml')['argument_specs']
    assert specs['validate']['options'] == specs['main']['options']
    assert 'batch' not in specs
    plays = load('playbooks', 'deploy.yml')
    canary_play = next(p for p in plays if 'canary batches' in p['name'])
    imported = [t['ansible.builtin.import_role'] for t in canary_play['tasks'] if 'ansible.builtin.import_role' in t]
    assert imported == [{'name': 'hotswap.deploy.canary', 'tasks_from': 'batch.yml'}]
    # The first play, or (under --limit, which leaves it out) each rollout play, runs the same checks.
    checks = 'tasks/check_inputs.yml'
    assert plays[0]['tasks'] == [{'name': 'Check the deploy inputs', 'ansible.builtin.import_tasks': checks}]
    for play in plays:
        if 'canary batches' in play['name'] or 'blue-green' in play['name']:
            first = play['tasks'][0]
            assert first['any_errors_fatal'] is True
            assert first['block'][0]['ansible.builtin.include_tasks'] == checks and first['block'][0]['run_once']
