# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""hotswap.deploy.linear: ansible.builtin.linear with the objects loaded before each batch frozen (gc.freeze)."""

from __future__ import annotations

import gc
import os
import re

import pytest
import yaml

from core_compat import import_controller

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


@pytest.fixture(scope='module')
def strategy():
    return import_controller('ansible_collections.hotswap.deploy.plugins.strategy.linear')


def test_it_is_the_builtin_linear_strategy(strategy):
    builtin = import_controller('ansible.plugins.strategy.linear')
    assert issubclass(strategy.StrategyModule, builtin.StrategyModule)
    # Only run is its own: batches, run_once, failures and handlers are linear's.
    dunder = {'__module__', '__doc__', '__qualname__', '__firstlineno__', '__static_attributes__'}
    own = set(vars(strategy.StrategyModule)) - dunder
    assert own == {'run'}


def test_the_loaded_objects_are_frozen_once(strategy):
    kept = [object() for i in range(10)]
    try:
        gc.unfreeze()
        strategy.freeze_loaded_objects()
        frozen = gc.get_freeze_count()
        assert frozen > len(kept)
        # Later batches leave it as it is: objects made since are collected as usual.
        later = [object() for i in range(1000)]
        strategy.freeze_loaded_objects()
        assert gc.get_freeze_count() == frozen and later
    finally:
        gc.unfreeze()


def test_each_batch_freezes_before_linear_runs_it(strategy, monkeypatch):
    builtin = import_controller('ansible.plugins.strategy.linear')
    seen = []
    monkeypatch.setattr(builtin.StrategyModule, 'run', lambda self, iterator, play_context: seen.append(
        (gc.get_freeze_count() > 0, iterator, play_context)) or 'result')
    try:
        gc.unfreeze()
        plugin = strategy.StrategyModule.__new__(strategy.StrategyModule)
        assert plugin.run('it', 'pc') == 'result'
        assert seen == [(True, 'it', 'pc')]
    finally:
        gc.unfreeze()


@pytest.mark.parametrize('playbook', ['deploy.yml', 'rollback.yml'])
def test_every_play_of_the_playbooks_uses_it_unless_another_strategy_is_configured(playbook):
    with open(os.path.join(REPO, 'playbooks', playbook)) as f:
        plays = yaml.safe_load(f)
    strategies = set(play.get('strategy') for play in plays)
    assert len(strategies) == 1, strategies
    expr = strategies.pop()
    assert "lookup('ansible.builtin.config', 'DEFAULT_STRATEGY')" in expr and 'hotswap.deploy.linear' in expr


@pytest.mark.parametrize('configured,used', [
    ('linear', 'hotswap.deploy.linear'),
    ('ansible.builtin.linear', 'hotswap.deploy.linear'),
    ('ansible.legacy.linear', 'hotswap.deploy.linear'),
    ('mitogen_linear', 'mitogen_linear'),
    ('free', 'free'),
    ('my.own.linear', 'my.own.linear'),
])
def test_the_strategy_a_play_gets(configured, used):
    with open(os.path.join(REPO, 'playbooks', 'deploy.yml')) as f:
        expr = yaml.safe_load(f)[0]['strategy']
    # regex_replace is re.sub (ansible.builtin.regex_replace).
    pattern, replacement = re.search(r"regex_replace\('([^']+)', '([^']+)'\)", expr).groups()
    assert re.sub(pattern, replacement, configured) == used
