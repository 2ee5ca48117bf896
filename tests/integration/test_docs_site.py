# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The HTML docs site (`make docs`, scripts/build-docs.sh), built once for this module from the collection
installed in build/collections (needs no test host):

- every module, filter, callback and role has its page, and headless Chromium renders it: the DOM has the
  page's title and its content - an anchor per documented option, and for a role each entry point's section
  with its options;
- every guide of docs/ has its page;
- every internal link of every page (href and src) resolves to a file of the site, and its #fragment to an
  element of that page;
- no page links to another host, and none loads anything from one (nor does a stylesheet).
"""

from __future__ import annotations

import ast
import concurrent.futures
import glob
import html.parser
import os
import re
import subprocess
import urllib.parse

import pytest
import yaml

import reportlib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SITE = os.path.join(REPO, 'build', 'docsite', 'html')
PAGES = os.path.join(SITE, 'collections', 'hotswap', 'deploy')
SCHEME = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')


@pytest.fixture(scope='module')
def site():
    if reportlib.browser() is None:
        pytest.fail('no Chromium: scripts/install-deps.sh installs Debian\'s chromium (make test does)')
    assert os.path.exists(os.path.join(REPO, 'build', 'collections', 'ansible_collections', 'hotswap', 'deploy',
                                       'MANIFEST.json')), 'run `make collection`'
    if not os.path.exists(os.path.join(REPO, 'build', 'docs-venv', '.installed')):
        subprocess.run(['make', '--no-print-directory', 'docs-venv'], cwd=REPO, check=True)
    r = subprocess.run([os.path.join(REPO, 'scripts', 'build-docs.sh')], cwd=REPO, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=900, check=False)
    assert r.returncode == 0, r.stdout[-20000:]
    return SITE


def _doc_yaml(path):
    """The DOCUMENTATION of a plugin: a Python file's string, or a filter's .yml."""
    if path.endswith('.yml'):
        with open(path) as f:
            return yaml.safe_load(f)['DOCUMENTATION']
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == 'DOCUMENTATION':
            return yaml.safe_load(node.value.value)
    raise AssertionError('%s has no DOCUMENTATION' % path)


def _plugins():
    """(page, name, options) of every module, filter and callback."""
    out = []
    for kind, pattern in (('module', 'modules/*.py'), ('filter', 'filter/*.yml'), ('callback', 'callback/*.py')):
        for path in sorted(glob.glob(os.path.join(REPO, 'plugins', pattern))):
            doc = _doc_yaml(path)
            name = doc.get('module') or doc.get('name') or os.path.basename(path).rsplit('.', 1)[0]
            out.append(('%s_%s.html' % (name, kind), 'hotswap.deploy.%s %s' % (name, kind),
                        sorted(doc.get('options') or {})))
    return out


def _roles():
    """(page, name, {entry point: options}) of every role with argument specs."""
    out = []
    for path in sorted(glob.glob(os.path.join(REPO, 'roles', '*', 'meta', 'argument_specs.yml'))):
        role = path.split(os.sep)[-3]
        with open(path) as f:
            specs = yaml.safe_load(f)['argument_specs']
        out.append(('%s_role.html' % role, 'hotswap.deploy.%s role' % role,
                    {e: sorted(s.get('options') or {}) for e, s in specs.items()}))
    return out


class _Page(html.parser.HTMLParser):
    """Ids, links (tag, attribute, value) and the text of h1/h2 of one HTML page."""

    def __init__(self):
        super(_Page, self).__init__(convert_charrefs=True)
        self.ids, self.links, self.headings = set(), [], {'h1': [], 'h2': []}
        self._heading = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get('id'):
            self.ids.add(attrs['id'])
        if tag == 'a' and attrs.get('name'):
            self.ids.add(attrs['name'])
        for attr, value in attrs.items():
            # href and src; any other attribute only when it holds a URL (itemtype, action, ...).
            if value is not None and (attr in ('href', 'src') or re.match(r'^(https?:)?//', value)):
                self.links.append((tag, attr, value))
        if tag in self.headings:
            self._heading = tag
            self.headings[tag].append('')

    def handle_endtag(self, tag):
        if tag == self._heading:
            self._heading = None

    def handle_data(self, data):
        if self._heading:
            self.headings[self._heading][-1] += data


def _parse(text):
    page = _Page()
    page.feed(text)
    page.close()
    return page


def _render_problems(page_file, title, options):
    """What is missing in the DOM Chromium made of a module/plugin/role page ([] when nothing)."""
    if not os.path.exists(page_file):
        return ['%s: no such page' % os.path.relpath(page_file, SITE)]
    dom = _parse(reportlib.chromium_dom(page_file))
    where, problems = os.path.relpath(page_file, SITE), []
    if not any(h.startswith(title) for h in dom.headings['h1']):
        problems.append('%s: no h1 "%s ..." (h1: %r)' % (where, title, dom.headings['h1']))
    if isinstance(options, dict):  # a role: each entry point's section, heading and options
        for entry, opts in options.items():
            role = title.split()[0].split('.')[-1]
            if 'ansible-collections-hotswap-deploy-%s-role-entrypoint-%s' % (role.replace('_', '-'), entry) \
                    not in dom.ids:
                problems.append('%s: no anchor of entry point %s' % (where, entry))
            if not any(re.match(r'Entry point %s\b' % re.escape(entry), h) for h in dom.headings['h2']):
                problems.append('%s: no heading "Entry point %s"' % (where, entry))
            problems += ['%s: entry point %s: option %s not shown' % (where, entry, o)
                         for o in opts if 'parameter-%s--%s' % (entry, o) not in dom.ids]
    else:
        problems += ['%s: option %s not shown' % (where, o) for o in options if 'parameter-%s' % o not in dom.ids]
    return problems


def test_every_module_plugin_and_role_page_renders(site):
    pages = [(os.path.join(PAGES, page), title, options) for page, title, options in _plugins() + _roles()]
    assert len(pages) > 40, pages
    # Two at a time: each is a Chromium of its own (about a second), the machine has two cores.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        problems = [p for ps in pool.map(lambda a: _render_problems(*a), pages) for p in ps]
    assert not problems, '%d problems:\n%s' % (len(problems), '\n'.join(problems))


def test_every_guide_has_its_page(site):
    missing = []
    for md in sorted(glob.glob(os.path.join(REPO, 'docs', '*.md'))):
        name = os.path.basename(md)[:-len('.md')]
        page = os.path.join(site, 'guides', 'index.html' if name == 'README' else name + '.html')
        if not os.path.exists(page):
            missing.append(os.path.relpath(page, site))
    assert not missing, missing
    # The top page links the guides and the collection's index.
    top = _parse(open(os.path.join(site, 'index.html'), encoding='utf-8').read())
    hrefs = {v for t, a, v in top.links if a == 'href'}
    assert {'guides/index.html', 'collections/hotswap/deploy/index.html'} <= hrefs, sorted(hrefs)


def _site_pages(site):
    pages = {}
    for root, dummy, files in os.walk(site):
        for name in files:
            if name.endswith('.html'):
                path = os.path.join(root, name)
                with open(path, encoding='utf-8') as f:
                    pages[path] = _parse(f.read())
    return pages


def test_every_internal_link_resolves_and_nothing_is_from_another_host(site):
    pages = _site_pages(site)
    assert len(pages) > 60, len(pages)
    problems, checked = [], 0
    for path, page in sorted(pages.items()):
        where = os.path.relpath(path, site)
        for tag, attr, value in page.links:
            url = urllib.parse.urlsplit(value)
            if value.startswith('//') or (SCHEME.match(value) and url.scheme not in ('file', 'data', 'mailto')):
                # http(s) and the like: another host. A src loads it, an href (or another attribute) only points
                # at it; neither is wanted.
                problems.append('%s: <%s %s="%s"> %s another host' % (
                    where, tag, attr, value, 'loads from' if attr == 'src' else 'links to'))
                continue
            if url.scheme in ('data', 'mailto') or attr not in ('href', 'src'):
                continue
            if url.scheme == 'file':
                target = urllib.parse.unquote(url.path)
            elif url.path:
                target = os.path.normpath(os.path.join(os.path.dirname(path), urllib.parse.unquote(url.path)))
            else:
                target = path
            if os.path.isdir(target):
                target = os.path.join(target, 'index.html')
            checked += 1
            if not target.startswith(site + os.sep):
                problems.append('%s: <%s %s="%s"> points outside the site' % (where, tag, attr, value))
            elif not os.path.isfile(target):
                problems.append('%s: <%s %s="%s">: no such file' % (where, tag, attr, value))
            elif url.fragment and target in pages and urllib.parse.unquote(url.fragment) not in pages[target].ids:
                problems.append('%s: <%s %s="%s">: no #%s in %s' % (
                    where, tag, attr, value, url.fragment, os.path.relpath(target, site)))
    # Stylesheets load fonts and images too.
    for css in glob.glob(os.path.join(site, '_static', '**', '*.css'), recursive=True):
        with open(css, encoding='utf-8', errors='replace') as f:
            text = f.read()
        for m in re.finditer(r'(?:url\(\s*["\']?|@import\s+["\'])((?:https?:)?//[^"\')\s]+)', text):
            problems.append('%s loads from another host: %s' % (os.path.relpath(css, site), m.group(1)))
    assert checked > 1000, checked
    assert not problems, '%d problems:\n%s' % (len(problems), '\n'.join(problems))
