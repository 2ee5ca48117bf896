# -*- coding: utf-8 -*-
"""The module_defaults groups of meta/runtime.yml (action_groups) hold the modules that share their options.

Ansible gives a group's defaults to every module in it, and a module fails on an option it does not have:
a group member without the shared option breaks every play that sets the group, a module with the option
but outside the group silently misses the default.
"""

from __future__ import annotations

import glob
import importlib
import os

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, 'plugins', 'modules', '*.py')))

with open(os.path.join(REPO, 'meta', 'runtime.yml')) as f:
    ACTION_GROUPS = yaml.safe_load(f).get('action_groups') or {}

# The options each group sets once: every member has all of them, every module with all of them is a member.
SHARED = {
    'release': ('base_dir',),
    'lock_owner': ('lock_owner',),
    'haproxy': ('socket', 'backend'),
}

# Modules whose docs name a group's option but that do not have it as an option of their own - module_defaults
# sets top-level options only. Out of the group, with the reason.
EXCLUDED = {
    'release': {
        'host_deploy': 'base_dir is a key of settings, which the deploy_host role builds',
        'release_switch': 'base_dir is a key of settings, which the rollback role builds',
        'release_cutover': 'base_dir is a key of its units and activate dicts',
        'blue_green_deploy': 'base_dir is a key of settings, which the blue_green role builds',
        'blue_green_cutover': 'base_dir is a key of its step dicts',
    },
    'lock_owner': {
        'deploy_lock': 'it takes or releases the lock: its option is owner',
        'release_switch': 'the lock owner is a key of settings, which the rollback role builds',
        'release_cutover': 'lock_owner is a key of its activate dict',
        'blue_green_slots': 'lock_owner is a key of its prune dict',
        'blue_green_cutover': 'lock_owner is a key of its activate and finish dicts',
    },
}


def module(name):
    return importlib.import_module('ansible_collections.hotswap.deploy.plugins.modules.%s' % name)


def own_documentation(name):
    """The DOCUMENTATION text of the module file itself, doc fragments not included."""
    with open(os.path.join(REPO, 'plugins', 'modules', name + '.py')) as f:
        text = f.read()
    return text[text.index('DOCUMENTATION'):text.index('EXAMPLES')]


def test_the_groups_are_the_known_ones():
    assert sorted(ACTION_GROUPS) == sorted(SHARED)


@pytest.mark.parametrize('group', sorted(ACTION_GROUPS))
def test_every_name_is_a_module_of_the_collection(group):
    """Short names (Ansible qualifies them with the collection), each once, each a module."""
    members = ACTION_GROUPS[group]
    assert all(isinstance(name, str) for name in members), members
    assert len(set(members)) == len(members), members
    assert sorted(set(members) - set(MODULES)) == []


@pytest.mark.parametrize('group', sorted(SHARED))
def test_every_member_has_the_shared_options(group, documented_options, argument_spec_of):
    for name in ACTION_GROUPS[group]:
        documented = documented_options(module(name))
        spec = argument_spec_of(module(name))
        for option in SHARED[group]:
            assert option in documented, (group, name, option)
            assert option in spec, (group, name, option)
            assert documented[option].get('type') == spec[option].get('type'), (group, name, option)


@pytest.mark.parametrize('group', sorted(SHARED))
def test_every_module_with_the_shared_options_is_in_the_group(group, documented_options):
    having = [name for name in MODULES if all(o in documented_options(module(name)) for o in SHARED[group])]
    assert sorted(ACTION_GROUPS[group]) == having


@pytest.mark.parametrize('group', sorted(EXCLUDED))
def test_every_module_naming_the_option_is_in_the_group_or_excluded(group, documented_options):
    """A module whose docs speak of base_dir (lock_owner) works on the release tree (under the lock)."""
    (option,) = SHARED[group]
    naming = [name for name in MODULES if option in own_documentation(name)]
    assert sorted(set(naming) - set(ACTION_GROUPS[group]) - set(EXCLUDED[group])) == []
    for name, reason in EXCLUDED[group].items():
        assert reason and name not in ACTION_GROUPS[group], (group, name)
        # Still true: once the module has the option of its own, it belongs in the group.
        assert option not in documented_options(module(name)), (group, name)
