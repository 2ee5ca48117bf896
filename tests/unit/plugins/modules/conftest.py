# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Fixtures shared by the module tests: run a module's main() and stage releases on disk.

The fixtures reading a module's docs and argument spec (doc_section, documented_options, argument_spec_of,
doc_spec_mismatches) are in tests/unit/conftest.py."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.basic import AnsibleModule
from core_compat import patch_module_args, run_as_module


@pytest.fixture
def run_module(capsys, monkeypatch):
    """Return run(module, **args): run module.main() with args and return its JSON result.

    args may include _ansible_check_mode and _ansible_diff.
    """
    # Once a test in this process imported controller code (ansible.errors, a filter plugin), ansible-core
    # sends module warnings to the controller's display instead of the result; a module on a host never does.
    run_as_module(monkeypatch)

    def run(module, **args):
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                module.main()
        return json.loads(capsys.readouterr().out)
    return run


@pytest.fixture
def logged(monkeypatch):
    """Every line the modules send to the host's log (syslog/journal)."""
    lines = []

    def log(_module, msg, log_args=None):
        lines.append(json.dumps([msg, log_args]))
    monkeypatch.setattr(AnsibleModule, 'log', log)
    return lines


@pytest.fixture
def assert_no_secret(logged):
    """Return check(result, secrets): none of secrets is in the module's result or in what it logged."""
    def check(result, secrets):
        text = json.dumps(result) + '\n'.join(logged)
        for secret in secrets:
            assert secret not in text, secret
        assert 'invocation' in result
    return check


@pytest.fixture
def stage():
    """Return stage(base, rid): create base/releases/<rid>/app (holding rid, executable) and return the release dir.

    The release is not in the ledger, like one put there by hand: activating it needs an executable file.
    """
    def stage_release(base, rid):
        release_dir = base / 'releases' / rid
        release_dir.mkdir(parents=True)
        (release_dir / 'app').write_text(rid)
        (release_dir / 'app').chmod(0o755)
        return release_dir
    return stage_release
