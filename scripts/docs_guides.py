# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Copy the Markdown guides of docs/ into the docs site's source tree (scripts/build-docs.sh).

docs/ is written to be read on a Git forge, with relative links between the guides and to files
elsewhere in the repository (../roles/canary/README.md, ../benchmarks/...). For the site:

- docs/*.md go to guides/; docs/README.md (the reading order) becomes guides/index.md, with a
  hidden toctree of every page here in that order;
- every other Markdown file a page here links to (transitively: the project README, the roles'
  READMEs, benchmark results) goes to project/<its path in the repository>;
- images linked from these pages, and any other file under docs/ they link to (docs/examples/),
  are copied beside them;
- every relative link is rewritten to where its target is in the site; a link to a file that is
  not part of the site (a playbook, a directory, a test) becomes its plain text.

docs/ itself is not changed. Prints one line per link made plain text.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import re
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_EXT = ('.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp')

# [text](target) or ![alt](target "title"); the text may hold code spans and escaped brackets.
LINK = re.compile(r'(?P<bang>!?)\[(?P<text>(?:[^\[\]\\]|\\.|\[[^\[\]]*\])*)\]\((?P<target>[^)\s]+)(?P<title>\s+"[^"]*")?\)')
FENCE = re.compile(r'^\s*(```+|~~~+)')
CODE_SPAN = re.compile(r'(`+)(?:(?!\1)[\s\S])+?\1')
SCHEME = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')


def site_path(repo_path):
    """Where a repository file goes in the site's source tree (POSIX paths)."""
    if repo_path == 'docs/README.md':
        return 'guides/index.md'
    if repo_path.startswith('docs/'):
        return 'guides/' + repo_path[len('docs/'):]
    return 'project/' + repo_path


def links(text):
    """Yield (match, repo-relative target) of every link outside code in a Markdown text.

    Code spans may run over a line break inside a paragraph, so they are found per paragraph."""
    in_fence = None
    offset = 0
    block, block_start = '', 0
    for line in text.splitlines(keepends=True):
        fence = FENCE.match(line)
        if in_fence:
            if fence and fence.group(1)[0] == in_fence[0] and len(fence.group(1)) >= len(in_fence):
                in_fence = None
        elif fence or not line.strip():
            for m in _links_outside_code(block):
                yield block_start, m
            block, block_start = '', offset + len(line)
            if fence:
                in_fence = fence.group(1)
        else:
            if not block:
                block_start = offset
            block += line
        offset += len(line)
    for m in _links_outside_code(block):
        yield block_start, m


def _links_outside_code(block):
    code = [m.span() for m in CODE_SPAN.finditer(block)]
    for m in LINK.finditer(block):
        if not any(a <= m.start() < b for a, b in code):
            yield m


def split_target(target):
    path, dummy, frag = target.partition('#')
    return path, frag


def resolve(src_repo_path, path):
    """The repository path a relative link from src_repo_path points to, or None if outside."""
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(src_repo_path), path))
    if joined.startswith('../') or joined == '..':
        return None
    return joined


def collect(start):
    """Markdown pages reachable from start (in order of first link), and the other files to copy."""
    pages, files = list(start), []
    i = 0
    while i < len(pages):
        src = pages[i]
        i += 1
        with open(os.path.join(REPO, src), encoding='utf-8') as f:
            text = f.read()
        for dummy, m in links(text):
            path = split_target(m.group('target'))[0]
            if not path or SCHEME.match(path):
                continue
            dest = resolve(src, path)
            if dest is None or not os.path.isfile(os.path.join(REPO, dest)):
                continue
            if dest.endswith('.md'):
                if dest not in pages:
                    pages.append(dest)
            elif (dest.lower().endswith(IMAGE_EXT) or dest.startswith('docs/')) and dest not in files:
                files.append(dest)
    return pages, files


def rewrite(src, text, included, plain):
    """text with each relative link pointing at its target in the site (or made plain text)."""
    out, last = [], 0
    here = posixpath.dirname(site_path(src))
    for offset, m in links(text):
        target = m.group('target')
        path, frag = split_target(target)
        if not path or SCHEME.match(path):
            continue
        dest = resolve(src, path)
        start, end = offset + m.start(), offset + m.end()
        out.append(text[last:start])
        if dest is not None and dest in included:
            new = posixpath.relpath(site_path(dest), here) + ('#' + frag if frag else '')
            out.append('%s[%s](%s%s)' % (m.group('bang'), m.group('text'), new, m.group('title') or ''))
        else:
            plain.append('%s: %s' % (src, target))
            out.append(m.group('text'))
        last = end
    out.append(text[last:])
    return ''.join(out)


def toctree(pages):
    entries = ''.join('%s\n' % posixpath.relpath(site_path(p), 'guides')[:-len('.md')] for p in pages)
    return '\n\n```{toctree}\n:hidden:\n:caption: Guides\n\n%s```\n' % entries


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('dest', help="the site's source directory (guides/ and project/ are made anew in it)")
    args = parser.parse_args()

    guides = sorted('docs/' + n for n in os.listdir(os.path.join(REPO, 'docs'))
                    if n.endswith('.md') and os.path.isfile(os.path.join(REPO, 'docs', n)))
    pages, files = collect(['docs/README.md'] + [g for g in guides if g != 'docs/README.md'])
    # The reading order first: the pages docs/README.md links to under its headings, in its order; then the rest.
    with open(os.path.join(REPO, 'docs', 'README.md'), encoding='utf-8') as f:
        sections = f.read().split('\n## ', 1)[-1]
    order = []
    for dummy, m in links(sections):
        dest = resolve('docs/README.md', split_target(m.group('target'))[0])
        if dest in pages and dest not in order:
            order.append(dest)
    order += [p for p in pages if p not in order and p != 'docs/README.md']
    included = set(pages) | set(files)

    for sub in ('guides', 'project'):
        shutil.rmtree(os.path.join(args.dest, sub), ignore_errors=True)
    plain = []
    for src in pages:
        with open(os.path.join(REPO, src), encoding='utf-8') as f:
            text = rewrite(src, f.read(), included, plain)
        if src == 'docs/README.md':
            text = re.sub(r'\A# .*', '# Guides', text, count=1) + toctree(order)
        out = os.path.join(args.dest, site_path(src))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, 'w', encoding='utf-8') as f:
            f.write(text)
    for src in files:
        out = os.path.join(args.dest, site_path(src))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copyfile(os.path.join(REPO, src), out)
    for line in plain:
        print('docs-guides: not in the site, made plain text: %s' % line)
    print('docs-guides: %d pages, %d other files, %d links made plain text' % (len(pages), len(files), len(plain)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
