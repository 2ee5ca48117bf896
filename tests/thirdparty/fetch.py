#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Third-party services from Debian's archive, for deploy tests with programs we did not write.

Command line::

    fetch.py PACKAGE...            # print one JSON object per package
    fetch.py --check PACKAGE...    # also run every binary and an other_build copy of it with --version

Importable::

    import fetch
    info = fetch.fetch('prometheus-node-exporter')
    # {'package': ..., 'version': '1.5.0-1+b6', 'root': '.../root',
    #  'binaries': ['.../root/usr/bin/prometheus-node-exporter'], 'units': [...]}
    fetch.other_build(info['binaries'][0], '/tmp/x/prometheus-node-exporter')

`apt-get download` (in a temporary directory, as root) then `dpkg -x` into
build/thirdparty/<package>/<version>/root/; skipped when that directory exists.
Updating apt's lists is the caller's business, except once: when apt-get finds
no such package (lists missing), `apt-get update -qq` runs and the download is
tried again. Standard library only.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CACHE = os.path.join(REPO_ROOT, 'build', 'thirdparty')
CACHE_ENV = 'HOTSWAP_THIRDPARTY_DIR'

BIN_DIRS = ('usr/bin', 'usr/sbin')
UNIT_DIRS = ('lib/systemd/system', 'usr/lib/systemd/system')
UNIT_SUFFIXES = ('.service', '.socket', '.timer', '.path', '.target', '.mount')

# Appended by other_build: 64 bytes, so the program stays the same and only its sha256 changes
# (ELF loaders ignore data after the last section).
MARKER = b'HOTSWAP-OTHER-BUILD'.ljust(64, b'.')

# apt-get's words when it knows no such package, which is what missing lists look like.
_NO_LISTS = re.compile(r"Unable to locate package|has no installation candidate|"
                       r"Can't select candidate version|No packages found", re.I)
_PACKAGE_RE = re.compile(r'^[a-z0-9][a-z0-9+.-]+$')


class FetchError(Exception):
    """What failed, why, and what to do."""


def _env():
    env = dict(os.environ, LC_ALL='C', LANG='C', DEBIAN_FRONTEND='noninteractive')
    return env


def _run(cmd, cwd=None, check=True):
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise FetchError('running %s: exit %d: %s' % (' '.join(cmd), proc.returncode, detail))
    return proc


def cache_dir(path=None):
    return os.path.abspath(path or os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def version_dirname(version):
    """A version as a directory name: an epoch's ':' becomes '%3a', as in apt's .deb names."""
    return version.replace(':', '%3a')


def package_root(package, version, cache=None):
    """build/thirdparty/<package>/<version>/root"""
    return os.path.join(cache_dir(cache), package, version_dirname(version), 'root')


def _files_under(root, rels, suffixes=None):
    found = []
    for rel in rels:
        d = os.path.join(root, rel)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.isdir(p) and not os.path.islink(p):
                continue
            if suffixes and not name.endswith(suffixes):
                continue
            found.append(p)
    return found


def describe(package, version, root):
    """The dict fetch() returns, for an extracted package tree."""
    return {
        'package': package,
        'version': version,
        'root': root,
        'binaries': _files_under(root, BIN_DIRS),
        'units': _files_under(root, UNIT_DIRS, UNIT_SUFFIXES),
    }


def candidate_version(package):
    """The version apt-get download would fetch, or None when apt knows no candidate."""
    out = _run(['apt-cache', 'policy', package], check=False).stdout
    m = re.search(r'^\s*Candidate:\s*(\S+)', out, re.M)
    if not m or m.group(1) == '(none)':
        return None
    return m.group(1)


def _download(package, workdir):
    """apt-get download into workdir (update apt's lists once if it knows no such package)."""
    for attempt in (1, 2):
        proc = _run(['apt-get', 'download', '-q', package], cwd=workdir, check=False)
        debs = glob.glob(os.path.join(workdir, '*.deb'))
        if proc.returncode == 0 and len(debs) == 1:
            return debs[0]
        text = (proc.stderr or '') + (proc.stdout or '')
        if attempt == 1 and _NO_LISTS.search(text):
            _run(['apt-get', 'update', '-qq'])
            continue
        raise FetchError('downloading %s: apt-get download exit %d, %d .deb file(s): %s. Check the '
                         'package name and apt sources (apt-get update).'
                         % (package, proc.returncode, len(debs), text.strip()[-2000:]))
    raise AssertionError('not reached')


def fetch(package, cache=None):
    """Download and unpack one Debian package (cached); see the module docstring."""
    if not _PACKAGE_RE.match(package or ''):
        raise FetchError('fetching %r: not a Debian package name.' % (package,))
    version = candidate_version(package)
    if version and os.path.isdir(package_root(package, version, cache)):
        return describe(package, version, package_root(package, version, cache))
    if os.geteuid() != 0:
        raise FetchError('fetching %s: apt-get download and dpkg -x run as root here. Run as root.'
                         % package)
    tmp = tempfile.mkdtemp(prefix='hotswap-thirdparty-')
    try:
        deb = _download(package, tmp)
        version = _run(['dpkg-deb', '-f', deb, 'Version']).stdout.strip()
        name = _run(['dpkg-deb', '-f', deb, 'Package']).stdout.strip()
        if name != package:
            raise FetchError('fetching %s: apt-get download gave %s (package %s); ask for the real '
                             'package, not a virtual one.' % (package, os.path.basename(deb), name))
        root = package_root(package, version, cache)
        if os.path.isdir(root):          # the candidate was unknown before apt-get update
            return describe(package, version, root)
        vdir = os.path.dirname(root)
        os.makedirs(vdir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix='.root-', dir=vdir)
        try:
            _run(['dpkg', '-x', deb, staging])
            with open(deb, 'rb') as f:
                sha = hashlib.sha256(f.read()).hexdigest()
            with open(os.path.join(vdir, 'deb.json'), 'w') as f:
                json.dump({'package': package, 'version': version, 'deb': os.path.basename(deb),
                           'sha256': sha}, f, indent=2, sort_keys=True)
                f.write('\n')
            os.rename(staging, root)     # complete or absent: a half-unpacked tree is never cached
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return describe(package, version, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def other_build(binary, dest, marker=MARKER):
    """Copy `binary` to `dest` and append `marker` (64 bytes by default): the same program, a
    different sha256, like a rebuild of the same version. Returns dest."""
    if os.path.realpath(binary) == os.path.realpath(dest):
        raise FetchError('other_build %s: source and destination are the same file.' % binary)
    d = os.path.dirname(os.path.abspath(dest))
    os.makedirs(d, exist_ok=True)
    tmp = dest + '.tmp'
    shutil.copyfile(binary, tmp)
    with open(tmp, 'ab') as f:
        f.write(marker)
    shutil.copymode(binary, tmp)
    os.replace(tmp, dest)
    return dest


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _version_output(path):
    proc = subprocess.run([path, '--version'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=30, check=False)
    lines = proc.stdout.strip().splitlines()
    return proc.returncode, lines[0] if lines else ''


def check(info):
    """Run each binary and an other_build copy of it with --version; both must exit 0."""
    results = []
    tmp = tempfile.mkdtemp(prefix='hotswap-thirdparty-check-')
    try:
        for binary in info['binaries']:
            copy = other_build(binary, os.path.join(tmp, os.path.basename(binary)))
            rc, line = _version_output(binary)
            rc2, line2 = _version_output(copy)
            results.append({'binary': binary, 'rc': rc, 'version_line': line,
                            'sha256': sha256(binary), 'other_build_rc': rc2,
                            'other_build_version_line': line2, 'other_build_sha256': sha256(copy)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    ap.add_argument('packages', nargs='+', metavar='PACKAGE')
    ap.add_argument('--cache', default=None,
                    help='cache dir (default: $%s or %s)' % (CACHE_ENV, DEFAULT_CACHE))
    ap.add_argument('--check', action='store_true',
                    help='run each binary and an other_build copy with --version')
    args = ap.parse_args(argv)
    failed = False
    for package in args.packages:
        try:
            info = fetch(package, args.cache)
            if args.check:
                info['check'] = check(info)
                failed = failed or any(r['rc'] != 0 or r['other_build_rc'] != 0 for r in info['check'])
        except FetchError as e:
            sys.stderr.write('fetch.py: error: %s\n' % e)
            failed = True
            continue
        print(json.dumps(info, indent=2, sort_keys=True))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
