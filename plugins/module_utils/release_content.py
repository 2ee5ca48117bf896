# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""What a release is made of: the artifact, the files kept with it and its environment.

A release id is ``<version>-<12 hex>``; the hex is a digest over the artifact's sha256, every
release file (path, content, owner, group, mode) and the environment, so a change to any of
them is a new release, staged beside the live one. A release of a binary alone keeps the id
``<version>-<sha256[:12]>`` of earlier versions.

Secret content (``secret: true`` files, ``environment_secret``) enters every digest through a
salted PBKDF2 rather than a plain sha256, so neither the release id nor the ledger lets anyone
test guesses of a secret cheaply. The same code runs on the controller (the release plan)
and on the host (staging, the live check).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import posixpath
import re
import stat

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

# Inside the release dir; the unit reads it through current (EnvironmentFile=-<base>/current/...).
ENV_FILE = '.hotswap-environment'
ENV_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
FILE_MODE_RE = re.compile(r'^0?[0-7]{3,4}$')
SECRET_SALT = b'hotswap.deploy release content v1'
SECRET_ROUNDS = 100000
DEFAULT_MODE = '0644'
DEFAULT_SECRET_MODE = '0600'
MAX_FILE_BYTES = 16 * 1024 * 1024
FILE_KEYS = ('dest', 'src', 'content', 'content_encoding', 'owner', 'group', 'mode', 'secret')
ENCODINGS = ('text', 'base64')


def content_digest(data, secret=False):
    """``sha256:<hex>`` of ``data``, or ``pbkdf2-sha256:<hex>`` for secret data."""
    if secret:
        return 'pbkdf2-sha256:' + hashlib.pbkdf2_hmac('sha256', data, SECRET_SALT, SECRET_ROUNDS).hex()
    return 'sha256:' + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------
# release files


def normalize_mode(mode, dest, secret=False):
    """An octal mode string '0640'; ints are taken as YAML 1.1 octals already converted."""
    if mode is None or mode == '':
        return DEFAULT_SECRET_MODE if secret else DEFAULT_MODE
    if isinstance(mode, int) and not isinstance(mode, bool):
        if 0 <= mode <= 0o7777:
            return '%04o' % mode
    elif isinstance(mode, str) and FILE_MODE_RE.match(mode.strip()):
        return '%04o' % int(mode.strip(), 8)
    raise HotswapError("checking release file %s: mode %r is not an octal mode. Give it quoted, as '0640' "
                       "(symbolic modes cannot be part of a release id)." % (dest, mode))


def check_dest(dest, binary):
    """A normalised relative path inside the release dir, or HotswapError."""
    if not isinstance(dest, str) or not dest.strip():
        raise HotswapError('checking release files: an entry has no dest. Give each file a dest, a path inside '
                           'the release directory such as config/app.yml.')
    norm = posixpath.normpath(dest.strip())
    if dest.startswith('/') or norm.startswith('../') or norm == '..' or '/../' in '/%s/' % dest or '\x00' in dest:
        raise HotswapError('checking release file %s: dest must be a relative path inside the release directory '
                           '(no leading /, no ..). Write it relative to the release, as config/app.yml.' % dest)
    if norm in ('.', '') or norm == binary or norm == ENV_FILE or norm.split('/')[0] in (ENV_FILE,):
        raise HotswapError('checking release file %s: that path is the release itself, its binary %s or the '
                           'environment file %s. Choose another dest.' % (dest, binary, ENV_FILE))
    return norm


def _file_content(entry, dest):
    """The bytes of a release file entry whose ``src`` was already read into ``content``."""
    content = entry.get('content')
    if content is None:
        raise HotswapError('checking release file %s: it needs content (or src on the controller). Give one '
                           'of them.' % dest)
    encoding = entry.get('content_encoding') or 'text'
    if encoding not in ENCODINGS:
        raise HotswapError('checking release file %s: content_encoding %r is not one of %s.'
                           % (dest, encoding, ', '.join(ENCODINGS)))
    if encoding == 'base64':
        try:
            data = base64.b64decode(content, validate=True)
        except (ValueError, TypeError):
            raise HotswapError('checking release file %s: content is not valid base64. Encode it with '
                               'b64encode, or give it as text.' % dest)
    else:
        data = content.encode('utf-8') if isinstance(content, str) else str(content).encode('utf-8')
    if len(data) > MAX_FILE_BYTES:
        raise HotswapError('checking release file %s: it is %d bytes; release files are for config (at most '
                           '%d). Ship large files in the artifact (an archive).' % (dest, len(data), MAX_FILE_BYTES))
    return data


def normalize_files(files, binary):
    """Release files as a sorted list of dicts: dest, data (bytes), owner, group, mode, secret.

    Every entry needs ``content`` (the action plugin turns ``src`` into content first).
    """
    if files in (None, ''):
        return []
    if not isinstance(files, list):
        raise HotswapError('checking release files: they must be a list of {dest, content or src, owner, group, '
                           'mode, secret}, not %s.' % type(files).__name__)
    out, seen = [], {}
    for entry in files:
        if not isinstance(entry, dict):
            raise HotswapError('checking release files: each entry must be a dict with dest and content or src, '
                               'not %r.' % (entry,))
        unknown = sorted(set(entry) - set(FILE_KEYS))
        dest = check_dest(entry.get('dest'), binary)
        if unknown:
            raise HotswapError('checking release file %s: unknown key(s) %s. Known: %s.'
                               % (dest, ', '.join(unknown), ', '.join(FILE_KEYS)))
        if dest in seen:
            raise HotswapError('checking release files: two entries write %s. Give each file its own dest.' % dest)
        seen[dest] = True
        secret = bool(entry.get('secret'))
        out.append(dict(dest=dest, data=_file_content(entry, dest), secret=secret,
                        owner=str(entry.get('owner') or ''), group=str(entry.get('group') or ''),
                        mode=normalize_mode(entry.get('mode'), dest, secret)))
    nested = [f['dest'] for f in out if any(f['dest'].startswith(g['dest'] + '/') for g in out)]
    if nested:
        raise HotswapError('checking release files: %s is both a file and a directory of another file. '
                           'Choose distinct paths.' % nested[0])
    return sorted(out, key=lambda f: f['dest'])


def file_manifest(files):
    """What the ledger and the release id record of each file: no content, its digest."""
    return [dict(dest=f['dest'], digest=content_digest(f['data'], f['secret']), owner=f['owner'],
                 group=f['group'], mode=f['mode'], secret=f['secret']) for f in files]


# ---------------------------------------------------------------------------
# environment


def check_environment(values, what='environment'):
    """A dict of NAME -> one line of text."""
    if values in (None, ''):
        return {}
    if not isinstance(values, dict):
        raise HotswapError('checking %s: it must be a dict of NAME: value, not %s.' % (what, type(values).__name__))
    bad = sorted(str(k) for k in values if not ENV_NAME_RE.match(str(k)))
    if bad:
        raise HotswapError('checking %s: %s %s not valid variable names. Use letters, digits and _, not starting '
                           'with a digit (for example GOMAXPROCS).'
                           % (what, ', '.join(repr(b) for b in bad), 'is' if len(bad) == 1 else 'are'))
    out = {}
    for key, value in values.items():
        text = '' if value is None else str(value)
        if isinstance(value, (dict, list)) or '\n' in text or '\r' in text or '\x00' in text:
            # the value itself may be secret: name the key only
            raise HotswapError('checking %s: the value of %s is not one line of text. Give a string without '
                               'line breaks.' % (what, key))
        out[str(key)] = text
    return out


def _quote(value):
    return '"%s"' % value.replace('\\', '\\\\').replace('"', '\\"').replace('$', '\\$').replace('`', '\\`')


def render_environment(environment, environment_secret):
    """The env file of a release (systemd EnvironmentFile syntax), or b'' when there is none."""
    env = check_environment(environment)
    secret = check_environment(environment_secret, 'environment_secret')
    both = sorted(set(env) & set(secret))
    if both:
        raise HotswapError('checking the environment: %s %s in both environment and environment_secret. Keep '
                           'each name in one of them.' % (', '.join(both), 'is' if len(both) == 1 else 'are'))
    merged = dict(env, **secret)
    if not merged:
        return b''
    lines = ['# Written by hotswap.deploy: the environment of this release.']
    lines += ['%s=%s' % (k, _quote(merged[k])) for k in sorted(merged)]
    return ('\n'.join(lines) + '\n').encode('utf-8')


def environment_manifest(environment, environment_secret):
    """Names and digest of the environment (never a value), or None when there is none."""
    data = render_environment(environment, environment_secret)
    if not data:
        return None
    return dict(names=sorted(set(check_environment(environment)) | set(check_environment(environment_secret))),
                digest=content_digest(data, secret=bool(environment_secret)))


# ---------------------------------------------------------------------------
# the release id


def release_digest(artifact_sha256, files, environment):
    """12 hex over the artifact, the file manifest and the environment manifest."""
    if not files and not environment:
        return artifact_sha256[:12]
    doc = dict(artifact=artifact_sha256, environment=environment['digest'] if environment else None,
               files=[[f['dest'], f['digest'], f['owner'], f['group'], f['mode']] for f in files])
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(',', ':')).encode('utf-8')).hexdigest()[:12]


def content_manifest(binary, files=None, environment=None, environment_secret=None):
    """dict(files, environment) of a release: what its id covers besides the artifact."""
    return dict(files=file_manifest(normalize_files(files, binary)),
                environment=environment_manifest(environment, environment_secret))


def make_release_id(version, artifact_sha256, manifest):
    version = '' if version is None else str(version).strip()
    if not version:
        raise HotswapError('making the release id: version is empty. Give the version of the release.')
    return '%s-%s' % (version, release_digest(artifact_sha256.lower(), manifest['files'], manifest['environment']))


def check_release_id_matches(release_id, artifact_sha256, manifest):
    """Refuse a release id that does not name this content (only when files or environment are given)."""
    if not manifest['files'] and not manifest['environment']:
        return
    digest = release_digest(artifact_sha256.lower(), manifest['files'], manifest['environment'])
    if not release_id.endswith('-' + digest):
        raise HotswapError('staging release %s: with release files or an environment the id must end in -%s, the '
                           'digest of its content. Take the id from hotswap.deploy.release_plan.'
                           % (release_id, digest))


# ---------------------------------------------------------------------------
# on the host


def file_differences(release_dir, manifest, lookup_owner=None):
    """What on disk differs from the manifest's files and environment: a list of short reasons."""
    problems = []
    for f in manifest.get('files') or []:
        problems += _one_file_differences(os.path.join(release_dir, f['dest']), f, lookup_owner)
    env = manifest.get('environment')
    env_path = os.path.join(release_dir, ENV_FILE)
    if env:
        problems += _one_file_differences(env_path, dict(dest=ENV_FILE, digest=env['digest'], secret=True,
                                                         owner='', group='', mode=''), lookup_owner)
    elif os.path.lexists(env_path):
        problems.append('%s is there but the release has no environment' % ENV_FILE)
    return problems


def _one_file_differences(path, f, lookup_owner):
    try:
        st = os.lstat(path)
    except OSError:
        return ['%s is missing' % f['dest']]
    if not stat.S_ISREG(st.st_mode):
        return ['%s is not a regular file' % f['dest']]
    with open(path, 'rb') as fh:
        data = fh.read()
    secret = f['digest'].startswith('pbkdf2-')
    if content_digest(data, secret) != f['digest']:
        return ['%s has other content' % f['dest']]
    problems = []
    if f.get('mode') and '%04o' % stat.S_IMODE(st.st_mode) != f['mode']:
        problems.append('%s has mode %04o, not %s' % (f['dest'], stat.S_IMODE(st.st_mode), f['mode']))
    if lookup_owner and (f.get('owner') or f.get('group')):
        owner, group = lookup_owner(st)
        if f.get('owner') and f['owner'] not in (owner, str(st.st_uid)):
            problems.append('%s is owned by %s, not %s' % (f['dest'], owner, f['owner']))
        if f.get('group') and f['group'] not in (group, str(st.st_gid)):
            problems.append('%s has group %s, not %s' % (f['dest'], group, f['group']))
    return problems


def owner_names(st):
    """(user, group) names of a stat result, numeric when unknown."""
    import grp
    import pwd
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return owner, group
