# -*- coding: utf-8 -*-
"""Make ``ansible_collections.hotswap.deploy`` importable from this checkout; read a module's docs and argument spec."""

from __future__ import annotations

import ast
import os
import re
import socket
import sys

import pytest
import yaml
from ansible.module_utils.basic import AnsibleModule

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLL_ROOT = os.path.join(REPO_ROOT, 'build', 'unit-collections')
LINK = os.path.join(COLL_ROOT, 'ansible_collections', 'hotswap', 'deploy')

if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    try:
        os.symlink(REPO_ROOT, LINK)
    except FileExistsError:
        pass

if COLL_ROOT not in sys.path:
    sys.path.insert(0, COLL_ROOT)
# core_compat: what differs between the ansible-core releases the unit tests run on.
UNIT_DIR = os.path.dirname(os.path.abspath(__file__))
if UNIT_DIR not in sys.path:
    sys.path.insert(0, UNIT_DIR)


@pytest.fixture
def closed_port():
    """A 127.0.0.1 port nothing listens on: bound, never listened, closed. Connects are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


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


def _documented_options(module):
    """{name: doc} of every option of a module: its DOCUMENTATION's and its collection doc fragments'."""
    doc = _doc_section(module, 'DOCUMENTATION')
    documented = dict(doc.get('options') or {})
    for fragment in doc.get('extends_documentation_fragment') or []:
        documented.update(_fragment_options(fragment))
    return documented


@pytest.fixture
def documented_options():
    """Return options(module): {name: doc} of its documented options, doc fragments included."""
    return _documented_options


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
        return _compare(_documented_options(module), argument_spec_of(module), 'options')
    return check
