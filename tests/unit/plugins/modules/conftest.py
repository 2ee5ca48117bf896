# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Fixtures shared by the module tests: run a module's main() and stage releases on disk."""

from __future__ import annotations

import ast
import json
import re

import pytest
import yaml
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils import _internal
from ansible.module_utils.testing import patch_module_args


@pytest.fixture
def run_module(capsys, monkeypatch):
    """Return run(module, **args): run module.main() with args and return its JSON result.

    args may include _ansible_check_mode and _ansible_diff.
    """
    # Once a test in this process imported controller code (ansible.errors, a filter plugin), ansible-core
    # sends module warnings to the controller's display instead of the result; a module on a host never does.
    monkeypatch.setattr(_internal, 'is_controller', False)

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


def _doc_section(module, name):
    with open(module.__file__) as f:
        return yaml.safe_load(ast.literal_eval(re.search(r"%s = (r'''.*?''')" % name, f.read(), re.S).group(1)))


@pytest.fixture
def doc_section():
    """Return doc(module, name): DOCUMENTATION, EXAMPLES or RETURN of a module file, parsed."""
    return _doc_section


@pytest.fixture
def argument_spec_of(monkeypatch):
    """Return spec(module): the argument_spec its main() gives AnsibleModule (main() stops there)."""
    return lambda module: _argument_spec(module, monkeypatch)


def _argument_spec(module, monkeypatch):
    seen = {}

    class Stop(Exception):
        pass

    def capture(self, argument_spec, **kw):
        seen.update(argument_spec)
        raise Stop()
    monkeypatch.setattr(AnsibleModule, '__init__', capture)
    with pytest.raises(Stop):
        module.main()
    return seen


def _fragment_options(name):
    """The options of a collection doc fragment (hotswap.deploy.<file>[.<section>]); none for another's."""
    parts = name.split('.')
    if parts[:2] != ['hotswap', 'deploy']:
        return {}
    module = __import__('ansible_collections.hotswap.deploy.plugins.doc_fragments.%s' % parts[2],
                        fromlist=['ModuleDocFragment'])
    section = parts[3].upper() if len(parts) == 4 else 'DOCUMENTATION'
    return yaml.safe_load(getattr(module.ModuleDocFragment, section)).get('options') or {}


def _compare(documented, spec, where):
    """Mismatches between documented options and an argument spec, recursing into suboptions."""
    problems = []
    if sorted(documented) != sorted(spec):
        problems.append('%s: documented %s, spec %s' % (where, sorted(documented), sorted(spec)))
    for name in sorted(set(documented) & set(spec)):
        doc, arg = documented[name], spec[name]
        for key, default in (('type', 'str'), ('default', None), ('choices', None), ('elements', None),
                             ('required', False)):
            if doc.get(key, default) != arg.get(key, default):
                problems.append('%s.%s %s: documented %r, spec %r' % (where, name, key, doc.get(key, default),
                                                                      arg.get(key, default)))
        if 'suboptions' in doc or 'options' in arg:
            problems.extend(_compare(doc.get('suboptions') or {}, arg.get('options') or {}, '%s.%s' % (where, name)))
    return problems


@pytest.fixture
def doc_spec_mismatches(argument_spec_of):
    """Return check(module): where its DOCUMENTATION (doc fragments included) and its argument spec disagree -
    option names, type, default, choices, elements, required, suboptions."""
    def check(module):
        doc = _doc_section(module, 'DOCUMENTATION')
        documented = dict(doc['options'])
        for fragment in doc.get('extends_documentation_fragment') or []:
            documented.update(_fragment_options(fragment))
        return _compare(documented, argument_spec_of(module), 'options')
    return check
