# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Unit tests for module_utils/config_reload.py: when a reload may replace a restart (no hosts)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import config_reload as cr
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import Ledger
from ansible_collections.hotswap.deploy.plugins.module_utils.release import switch_current


def ledger_with(tmp_path, **releases):
    base = tmp_path / 'base'
    (base / 'releases').mkdir(parents=True)
    ledger = Ledger.load(str(base))
    for rid, fields in releases.items():
        (base / 'releases' / rid).mkdir()
        (base / 'releases' / rid / 'app').write_text('x')
        content = dict((k, v) for k, v in fields.items() if k not in ('sha',))
        ledger.record_staged(rid, '1', fields.get('sha', 'a' * 64), 'app', content=content)
    ledger.save()
    return str(base)


@pytest.mark.parametrize('new, units_changed, ok, why', [
    (dict(files=[{'dest': 'c', 'digest': 'sha256:2'}]), False, True, 'only release files differ'),
    (dict(files=[], sha='b' * 64), False, False, 'the binary differs'),
    (dict(files=[], environment={'names': ['A'], 'digest': 'sha256:9'}), False, False, 'environment differs'),
    (dict(files=[]), True, False, 'unit files changed'),
])
def test_reload_only_when_release_files_alone_changed(tmp_path, new, units_changed, ok, why):
    base = ledger_with(tmp_path, old=dict(files=[{'dest': 'c', 'digest': 'sha256:1'}]), new=new)
    decided, reason = cr.reload_decision(base, 'old', 'new', units_changed)
    assert decided is ok and why in reason


def test_no_previous_release_means_restart(tmp_path):
    base = ledger_with(tmp_path, new=dict(files=[]))
    assert cr.reload_decision(base, None, 'new')[0] is False
    assert cr.reload_decision(base, 'new', 'new')[0] is False


@pytest.mark.parametrize('spec, expected', [
    ({'signal': 'SIGHUP'}, {'signal': 'SIGHUP'}),
    ({'signal': 'usr1'}, {'signal': 'SIGUSR1'}),
    ({'command': '/usr/bin/app-ctl reload'}, {'command': '/usr/bin/app-ctl reload'}),
    ({}, None),
])
def test_spec(spec, expected):
    assert cr.check_spec(spec) == expected


@pytest.mark.parametrize('spec', [{'signal': 'SIGKILL'}, {'signal': 'SIGHUP', 'command': 'x'}, {'sig': 'HUP'}])
def test_bad_spec_is_refused(spec):
    with pytest.raises(HotswapError, match='config_reload'):
        cr.check_spec(spec)


def test_config_probe_needs_url_query_and_expected():
    with pytest.raises(HotswapError, match='expected'):
        cr.config_probe({'url': 'http://127.0.0.1:1/h', 'query': 'greeting'})
    assert cr.config_probe({'url': 'http://127.0.0.1:1/h', 'query': 'greeting', 'expected': 'x'}) is not None


def test_marker_names_the_process_that_reloaded_into_current(tmp_path):
    base = ledger_with(tmp_path, one=dict(files=[]), two=dict(files=[]))
    switch_current(base, 'two')
    executable = os.path.join(base, 'current', 'app')
    assert not cr.reloaded_into_current(executable, 42)
    cr.write_marker(base, 42, 'two')
    assert cr.reloaded_into_current(executable, 42)
    assert not cr.reloaded_into_current(executable, 43)
    switch_current(base, 'one')
    assert not cr.reloaded_into_current(executable, 42)
