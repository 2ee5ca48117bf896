# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Static checks of the PowerShell in this repository (no PowerShell runtime exists here).

- every ``*.ps1`` / ``*.psm1`` parses with tree-sitter-powershell: no ERROR or MISSING node;
- the options of each PowerShell module's ``$spec`` (read from the parse tree, never run)
  equal the options its ``.py`` documentation file declares (name, type, required, default,
  choices, elements, aliases, and suboptions the same way);
- every ``#AnsibleRequires -PowerShell`` / ``-CSharpUtil`` (and ``#Requires -Module``)
  names a util that exists, in this collection or in ansible-core;
- a function of another of this collection's PowerShell module utils is called only where that
  util exports it and is named in ``#AnsibleRequires``, and a ``$script:`` variable is read only
  in the file that sets it (each util is a module of its own).

This proves syntax and interface only; what the code does on Windows is tested by Pester
where PowerShell exists (docs/windows.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT_COLLECTIONS = os.path.join(REPO, 'build', 'unit-collections')   # made by tests/unit/conftest.py
SKIP_TOP = {'build', '.git', '.cache', '.pytest_cache', '.tox', 'node_modules'}
SKIP_SUB = {os.path.join('tests', 'output')}
COLLECTION = 'hotswap.deploy'

GRAMMAR_GAPS = (
    'Valid PowerShell that tree-sitter-powershell 0.26 does not parse (rewrite it; the design requires a clean '
    'parse):\n'
    '  - a command parameter name with a digit, e.g. Get-X -Sha256 $s (read as a 2> redirection: '
    "MISSING '>'): name the parameter without digits (-Digest) or splat a hashtable (@p);\n"
    '  - bare words in a comma list as a command argument: Export-ModuleMember -Function A, B -> '
    "-Function 'A', 'B';\n"
    '  - generic type names with a backtick (List`1[string] -> List[string]); nested type names '
    '([Environment+SpecialFolder]);\n'
    '  - a one-line function whose body starts with param(...): put param(...) on its own line.')


def powershell_files():
    found = []
    for top in sorted(os.listdir(REPO)):
        if top in SKIP_TOP or top.startswith('.'):
            continue
        start = os.path.join(REPO, top)
        if os.path.isfile(start):
            if top.lower().endswith(('.ps1', '.psm1')):
                found.append(top)
            continue
        for root, dirs, files in os.walk(start):
            rel_root = os.path.relpath(root, REPO)
            dirs[:] = sorted(d for d in dirs if os.path.join(rel_root, d) not in SKIP_SUB
                             and d != '__pycache__' and not d.startswith('.'))
            found.extend(os.path.join(rel_root, f) for f in sorted(files) if f.lower().endswith(('.ps1', '.psm1')))
    return found


PS_FILES = powershell_files()
PS_MODULES = [f for f in PS_FILES if os.path.dirname(f) == os.path.join('plugins', 'modules') and f.endswith('.ps1')]
NO_FILES = pytest.param(None, marks=pytest.mark.skip(
    reason='no PowerShell files in the repository yet (plugins/modules/win_binary_swap.ps1 and '
           'plugins/module_utils/WinBinarySwap.psm1 are being written)'))


@pytest.fixture(scope='module')
def parser():
    try:
        from tree_sitter import Language, Parser
        import tree_sitter_powershell
    except ImportError as e:   # a setup problem, not a reason to skip: the design requires this check
        pytest.fail('tree-sitter-powershell is not installed (%s): pip install -r requirements-dev.txt' % e)
    return Parser(Language(tree_sitter_powershell.language()))


def read(rel):
    with open(os.path.join(REPO, rel), 'rb') as f:
        return f.read()


# ---------------------------------------------------------------------------
# parse errors


def parse_problems(tree, source):
    """["line:col ERROR|MISSING <what>: <source line>"] for every broken node."""
    lines = source.decode('utf-8', 'replace').splitlines()
    problems = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_missing or node.type == 'ERROR':
            row, col = node.start_point
            what = ('MISSING %r' % node.type) if node.is_missing else 'ERROR'
            problems.append('%d:%d %s: %s' % (row + 1, col + 1, what, lines[row].strip() if row < len(lines) else ''))
            continue
        if node.has_error:
            stack.extend(reversed(node.children))
    return sorted(problems, key=lambda p: tuple(int(x) for x in p.split(' ')[0].split(':')))


def test_parser_reports_broken_code(parser):
    """Guard: the grammar does flag broken PowerShell, so a clean parse below means something."""
    src = b'function Get-X {\n    if ($a -eq 1 {\n        Write-Output "x"\n    }\n'
    assert parse_problems(parser.parse(src), src)
    ok = b'$spec = @{\n    options = @{ path = @{ type = "path"; required = $true } }\n}\n'
    assert parse_problems(parser.parse(ok), ok) == []


@pytest.mark.parametrize('rel', PS_FILES or [NO_FILES])
def test_powershell_parses(parser, rel):
    source = read(rel)
    problems = parse_problems(parser.parse(source), source)
    if problems:
        pytest.fail('%s does not parse with tree-sitter-powershell:\n  %s\n%s'
                    % (rel, '\n  '.join('%s:%s' % (rel, p) for p in problems), GRAMMAR_GAPS))


# ---------------------------------------------------------------------------
# $spec of a module vs its documentation


class Unevaluable(object):
    """A value in $spec that is not a literal (a variable, a call, an interpolated string)."""

    def __init__(self, node):
        self.text = node.text.decode('utf-8', 'replace')
        self.line = node.start_point[0] + 1

    def __eq__(self, other):
        return False

    def __ne__(self, other):
        return True

    __hash__ = object.__hash__

    def __repr__(self):
        return '<not a literal at line %d: %s>' % (self.line, self.text)


PS_CONSTANTS = {'$true': True, '$false': False, '$null': None}


def named(node):
    return [c for c in node.children if c.is_named and c.type != 'comment']


def evaluate(node):
    """The Python value of a PowerShell literal expression (hashtable, array, string, number, bool, null)."""
    t = node.type
    if t == 'hash_literal_expression':
        body = [c for c in node.children if c.type == 'hash_literal_body']
        result = {}
        for entry in (named(body[0]) if body else []):
            if entry.type != 'hash_entry':
                return Unevaluable(node)
            key_node, value_node = named(entry)[0], named(entry)[-1]
            key = evaluate(key_node)
            if not isinstance(key, str):
                return Unevaluable(key_node)
            result[key] = evaluate(value_node)
        return result
    if t == 'key_expression':
        inner = named(node)
        if len(inner) == 1 and inner[0].type == 'simple_name':
            return inner[0].text.decode()
        return evaluate(inner[0]) if len(inner) == 1 else Unevaluable(node)
    if t == 'simple_name':
        return node.text.decode()
    if t == 'array_literal_expression' and len(named(node)) > 1:
        return [evaluate(c) for c in named(node)]
    if t == 'array_expression':                      # @( ... )
        statements = named(node)
        if not statements:
            return []
        value = evaluate(statements[0])
        return value if isinstance(value, list) else [value]
    if t == 'expression_with_unary_operator':        # the unary comma: , @('a', 'b')
        if node.children and node.children[0].type == ',':
            return [evaluate(named(node)[-1])]
        return Unevaluable(node)
    if t == 'expandable_string_literal':
        text = node.text.decode()
        if '$' in text or '`' in text:
            return Unevaluable(node)
        return text[1:-1]
    if t == 'verbatim_string_characters':
        return node.text.decode()[1:-1].replace("''", "'")
    if t == 'decimal_integer_literal':
        return int(node.text.decode())
    if t == 'real_literal':
        return float(node.text.decode())
    if t == 'variable':
        text = node.text.decode().lower()
        return PS_CONSTANTS[text] if text in PS_CONSTANTS else Unevaluable(node)
    if t in ('string_literal', 'parenthesized_expression', 'statement_list', 'sub_expression') or len(named(node)) == 1:
        inner = named(node)
        if len(inner) == 1:
            return evaluate(inner[0])
    return Unevaluable(node)


def find_spec(tree):
    """The hashtable assigned to $spec at the top level of a module (node), or None."""
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == 'assignment_expression':
            parts = named(node)
            ops = [c.text.decode() for c in node.children if c.type == 'assignement_operator']
            if parts and parts[0].text.decode().strip().lower() == '$spec' and ops == ['=']:
                value = evaluate(parts[-1])
                if isinstance(value, dict):
                    return value
        if node.type in ('function_statement', 'script_block_expression'):
            continue
        stack.extend(reversed(named(node)))
    return None


def normalize_options(options, where):
    """{name: {type, required, default, choices, elements, aliases, suboptions}} with Ansible's defaults."""
    out = {}
    for name, spec in sorted((options or {}).items()):
        assert isinstance(spec, dict), '%s option %s: %r is not a hashtable/mapping' % (where, name, spec)
        sub = spec.get('options', spec.get('suboptions'))
        out[name] = dict(
            type=spec.get('type', 'str'),
            required=spec.get('required', False),
            default=spec.get('default'),
            choices=spec.get('choices'),
            elements=spec.get('elements'),
            aliases=sorted(spec.get('aliases') or []),
            suboptions=normalize_options(sub, '%s.%s' % (where, name)) if sub else None,
        )
    return out


def documented_options(module):
    """The options ansible-doc shows for hotswap.deploy.<module> (doc fragments merged)."""
    assert os.path.islink(os.path.join(UNIT_COLLECTIONS, 'ansible_collections', 'hotswap', 'deploy'))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=UNIT_COLLECTIONS, ANSIBLE_NOCOLOR='1',
               ANSIBLE_DEPRECATION_WARNINGS='False')
    env.pop('ANSIBLE_CONFIG', None)
    ansible_doc = os.path.join(os.path.dirname(sys.executable), 'ansible-doc')
    proc = subprocess.run([ansible_doc, '-t', 'module', '-j', '%s.%s' % (COLLECTION, module)],
                          cwd=UNIT_COLLECTIONS, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    assert proc.returncode == 0, 'ansible-doc %s.%s failed: %s' % (COLLECTION, module, proc.stderr)
    data = json.loads(proc.stdout)
    doc = data['%s.%s' % (COLLECTION, module)]['doc']
    return doc.get('options') or {}


@pytest.mark.parametrize('rel', PS_MODULES or [NO_FILES])
def test_module_spec_matches_its_documentation(parser, rel):
    module = os.path.splitext(os.path.basename(rel))[0]
    doc_file = os.path.join(os.path.dirname(rel), module + '.py')
    assert os.path.exists(os.path.join(REPO, doc_file)), '%s has no documentation file %s' % (rel, doc_file)
    spec = find_spec(parser.parse(read(rel)))
    assert spec is not None, '%s: no `$spec = @{ ... }` hashtable literal found at the top level' % rel
    assert isinstance(spec.get('options'), dict), '%s: $spec has no options = @{ ... } hashtable' % rel
    in_code = normalize_options(spec['options'], rel)
    in_docs = normalize_options(documented_options(module), doc_file)
    differences = []
    for name in sorted(set(in_code) | set(in_docs)):
        if name not in in_docs:
            differences.append('%s: in $spec but not documented' % name)
        elif name not in in_code:
            differences.append('%s: documented but not in $spec' % name)
        else:
            for key in in_code[name]:
                if in_code[name][key] != in_docs[name][key]:
                    differences.append('%s.%s: $spec %r, docs %r' % (name, key, in_code[name][key], in_docs[name][key]))
    assert not differences, '%s vs %s:\n  %s' % (rel, doc_file, '\n  '.join(differences))


def test_spec_reader_reads_literals(parser):
    """Guard for the reader above, on the shapes an Ansible.Basic spec uses."""
    src = (b'#!powershell\n'
           b'$spec = @{\n'
           b'    options = @{\n'
           b'        path = @{ type = "path"; required = $true }\n'
           b"        keep = @{ type = 'int'; default = 3 }\n"
           b'        remote_src = @{ type = "bool"; default = $false }\n'
           b'        mode = @{ choices = "a", "b"; default = "a" }\n'
           b"        names = @{ type = 'list'; elements = 'str'; aliases = @('name'); default = @() }\n"
           b"        'quoted' = @{ type = 'str'; default = 'it''s' }\n"
           b'        weird = @{ type = "str"; default = "$env:TEMP" }\n'
           b'    }\n'
           b'    mutually_exclusive = @(, @("src", "url"))\n'
           b'    supports_check_mode = $true\n'
           b'}\n'
           b'$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)\n')
    spec = find_spec(parser.parse(src))
    assert spec['supports_check_mode'] is True
    assert spec['mutually_exclusive'] == [['src', 'url']]
    opts = spec['options']
    assert opts['path'] == {'type': 'path', 'required': True}
    assert opts['keep'] == {'type': 'int', 'default': 3}
    assert opts['remote_src'] == {'type': 'bool', 'default': False}
    assert opts['mode'] == {'choices': ['a', 'b'], 'default': 'a'}
    assert opts['names'] == {'type': 'list', 'elements': 'str', 'aliases': ['name'], 'default': []}
    assert opts['quoted'] == {'type': 'str', 'default': "it's"}
    assert isinstance(opts['weird']['default'], Unevaluable)


# ---------------------------------------------------------------------------
# #AnsibleRequires


REQUIRES_RE = re.compile(r'^\s*#\s*(?:AnsibleRequires\s+-(?P<kind>PowerShell|CSharpUtil)|Requires\s+-Modules?)\s+(?P<name>[^\s,]+)',
                         re.I | re.M)


def ansible_core_dir():
    spec = importlib.util.find_spec('ansible')   # no import: the controller code flips a process-wide flag
    return list(spec.submodule_search_locations)[0]


def resolve_util(rel, kind, name):
    """Path of the util that ``#AnsibleRequires -<kind> <name>`` in ``rel`` refers to (may not exist)."""
    ext = '.cs' if kind.lower() == 'csharputil' else '.psm1'
    if name.startswith('.'):
        dots = len(name) - len(name.lstrip('.'))
        package = os.path.dirname(rel).split(os.sep)
        base = package[:len(package) - (dots - 1)] if dots > 1 else package
        return os.path.join(REPO, *(base + name.lstrip('.').split('.'))) + ext
    prefix = 'ansible_collections.%s.' % COLLECTION
    if name.startswith(prefix):
        return os.path.join(REPO, *name[len(prefix):].split('.')) + ext
    if name.startswith('Ansible.'):
        sub = 'csharp' if ext == '.cs' else 'powershell'
        return os.path.join(ansible_core_dir(), 'module_utils', sub, name + ext)
    return None   # another collection: hotswap.deploy depends on none (galaxy.yml)


def test_requires_resolution():
    assert resolve_util(os.path.join('plugins', 'modules', 'x.ps1'), 'PowerShell', '..module_utils.WinBinarySwap') \
        == os.path.join(REPO, 'plugins', 'module_utils', 'WinBinarySwap.psm1')
    assert resolve_util(os.path.join('plugins', 'module_utils', 'A.psm1'), 'PowerShell', '.B') \
        == os.path.join(REPO, 'plugins', 'module_utils', 'B.psm1')
    assert os.path.exists(resolve_util('x.ps1', 'CSharpUtil', 'Ansible.Basic'))
    assert os.path.exists(resolve_util('x.ps1', 'PowerShell', 'Ansible.ModuleUtils.Legacy'))
    assert resolve_util('x.ps1', 'PowerShell', 'ansible_collections.ansible.windows.plugins.module_utils.X') is None


@pytest.mark.parametrize('rel', PS_FILES or [NO_FILES])
def test_required_utils_exist(rel):
    text = read(rel).decode('utf-8', 'replace')
    missing = []
    for m in REQUIRES_RE.finditer(text):
        kind, name = m.group('kind') or 'PowerShell', m.group('name')
        path = resolve_util(rel, kind, name)
        if path is None:
            missing.append('%s: from another collection; hotswap.deploy has no collection dependencies' % m.group(0).strip())
        elif not os.path.isfile(path):
            missing.append('%s: %s does not exist' % (m.group(0).strip(), os.path.relpath(path, REPO)))
    assert not missing, '%s:\n  %s' % (rel, '\n  '.join(missing))


# ---------------------------------------------------------------------------------------------
# calls between this collection's PowerShell module utils

PS_UTILS = [f for f in PS_FILES if os.path.dirname(f) == os.path.join('plugins', 'module_utils') and f.endswith('.psm1')]
PS_PLUGINS = [f for f in PS_FILES if f.startswith('plugins' + os.sep)]
EXPORTS_RE = re.compile(r'^\s*Export-ModuleMember\s+-Function\s+@\((?P<names>.*?)\)', re.I | re.M | re.S)
SCRIPT_VAR_RE = re.compile(r'\$(?:\{)?script:(\w+)', re.I)
SCRIPT_VAR_SET_RE = re.compile(r'^\s*\$script:(\w+)\s*=', re.I | re.M)


def walk(node):
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def ps_interface(parser, rel):
    """{functions: {lower name: name}, exports: {lower names}, calls: {lower name: [lines]}, requires: {paths}}."""
    source = read(rel)
    functions, calls = {}, {}
    for node in walk(parser.parse(source).root_node):
        if node.type == 'function_statement':
            name = [c for c in node.children if c.type == 'function_name'][0].text.decode()
            functions[name.lower()] = name
        elif node.type == 'command_name':
            calls.setdefault(node.text.decode().lower(), []).append(node.start_point[0] + 1)
    text = source.decode('utf-8', 'replace')
    exports = set()
    for m in EXPORTS_RE.finditer(text):
        for single, double in re.findall(r"'([^']+)'|\"([^\"]+)\"", m.group('names')):
            exports.add((single or double).lower())
    requires = {os.path.normpath(resolve_util(rel, m.group('kind') or 'PowerShell', m.group('name')) or '')
                for m in REQUIRES_RE.finditer(text) if (m.group('kind') or 'PowerShell').lower() == 'powershell'}
    return dict(functions=functions, exports=exports, calls=calls, requires=requires, text=text)


@pytest.mark.parametrize('rel', PS_PLUGINS or [NO_FILES])
def test_calls_between_module_utils_are_required(parser, rel):
    """Ansible loads each util as a module of its own: only its exported functions are visible to others."""
    utils = {u: ps_interface(parser, u) for u in PS_UTILS}
    me = utils[rel] if rel in utils else ps_interface(parser, rel)
    problems = ['exports %s, which it does not define' % n for n in sorted(me['exports'] - set(me['functions']))]
    for name, lines in sorted(me['calls'].items()):
        if name in me['functions']:
            continue
        for util, other in sorted(utils.items()):
            if util == rel or name not in other['functions']:
                continue
            where = 'line %s calls %s of %s' % (','.join(map(str, lines)), other['functions'][name], util)
            if name not in other['exports']:
                problems.append('%s, which does not export it (Export-ModuleMember)' % where)
            if os.path.normpath(os.path.join(REPO, util)) not in me['requires']:
                problems.append('%s without #AnsibleRequires -PowerShell %s' % (where, '.'.join(
                    ['ansible_collections', 'hotswap', 'deploy'] + os.path.splitext(util)[0].split(os.sep))))
    code = '\n'.join(line for line in me['text'].splitlines() if not line.lstrip().startswith('#'))
    for var in sorted(set(SCRIPT_VAR_RE.findall(code)) - set(SCRIPT_VAR_SET_RE.findall(me['text']))):
        problems.append('reads $script:%s, which this file does not set (script scope is per module)' % var)
    assert not problems, '%s:\n  %s' % (rel, '\n  '.join(problems))


def test_util_call_check_sees_a_missing_require(parser, monkeypatch):
    """Guard for the check above: a call into another util without #AnsibleRequires is reported."""
    assert PS_UTILS, 'no PowerShell module utils found'
    name = sorted(ps_interface(parser, PS_UTILS[0])['exports'])[0]
    src = ('Function Get-Y {\n    %s -X 1\n}\n$script:A = 1\n$b = $script:B\n'
           "Export-ModuleMember -Function @(\n    'Get-Y'\n    'Get-Z'\n)\n" % name).encode()
    rel = os.path.join('plugins', 'module_utils', 'ZzCheck.psm1')
    real_read = read
    monkeypatch.setitem(globals(), 'read', lambda r: src if r == rel else real_read(r))
    with pytest.raises(AssertionError) as failed:
        test_calls_between_module_utils_are_required(parser, rel)
    message = str(failed.value)
    assert 'without #AnsibleRequires' in message
    assert 'exports get-z, which it does not define' in message
    assert '$script:B' in message and '$script:A' not in message
