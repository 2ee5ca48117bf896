# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Where a service reports its version, and reading it from a reply.

A service nobody here wrote reports its version in its own way. The sources, at most one of
each group:

``version_query``    JMESPath on the JSON body, e.g. ``data.build_information.version``
                     (Prometheus' own ``/api/v1/status``).
``version_regex``    the first capture group of a regex searched in the body, e.g.
                     ``node_exporter_build_info\\{[^}]*version="([^"]+)"`` on ``/metrics``.
``version_header``   a response header, e.g. ``X-App-Version``.
``version_command``  a command run on the host (no shell); its stdout (stderr when stdout is
                     empty) is the text the query or regex reads, or, with neither, the version
                     itself. It reads the file on disk, not the running process.

With none of them the version is the body's top-level JSON ``version`` field, or the whole
body stripped (the demo app's ``/healthz``).
"""

from __future__ import annotations

import json
import re
import shlex

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

VERSION_SPEC = dict(
    version_query=dict(type='str'),
    version_regex=dict(type='str'),
    version_header=dict(type='str'),
    version_command=dict(type='str'),
)
VERSION_OPTIONS = tuple(VERSION_SPEC)
COMMAND_TIMEOUT = 10
_WHAT = 'reading the version the service reports'
_CANNOT_READ = ('set version_query, version_regex, version_header or version_command to where the '
                'service reports its version, or check_version: false to not compare it')


def _given(value):
    return value is not None and str(value).strip() != ''


def compile_version_regex(pattern):
    """A regex with at least one capture group; the first group is the version."""
    try:
        compiled = re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise HotswapError('%s: version_regex %r is not a valid regular expression (%s). Fix it (Python re '
                           'syntax; it is searched anywhere in the body).' % (_WHAT, pattern, exc))
    if compiled.groups < 1:
        raise HotswapError('%s: version_regex %r has no capture group, so it cannot say which part is the '
                           'version. Put the version in parentheses, e.g. version="([^"]+)".' % (_WHAT, pattern))
    return compiled


def compile_version_query(expression):
    # Imported here: health imports this module.
    from ansible_collections.hotswap.deploy.plugins.module_utils.health import compile_json_query
    return compile_json_query(expression, option='version_query', what=_WHAT,
                              example='"data.build_information.version"')


class VersionSource(object):
    """A validated version source; ``read`` gives ``(version or None, problem or None)``."""

    def __init__(self, query=None, query_text=None, regex=None, header=None, command=None):
        self.query = query
        self.query_text = query_text
        self.regex = regex
        self.header = header
        self.command = command

    @property
    def is_default(self):
        return not (self.query or self.regex or self.header or self.command)

    def describe(self):
        parts = []
        if self.command:
            parts.append('the output of %s' % ' '.join(shlex.quote(a) for a in self.command))
        if self.query:
            parts.append('JMESPath %s' % self.query_text)
        if self.regex:
            parts.append('regex %s' % self.regex.pattern)
        if self.header:
            parts.append('header %s' % self.header)
        return ', '.join(parts) or 'the top-level "version" field of a JSON body, else the whole body'

    def read(self, body, headers=None, run_command=None):
        """The version in a reply (``body`` text, ``headers`` mapping) or in the command's output."""
        if self.header:
            value = _header(headers or {}, self.header)
            if value is None:
                return None, 'the reply has no %s header (version_header)' % self.header
            return value.strip(), None
        text = body
        if self.command:
            text, problem = self._run(run_command)
            if problem:
                return None, problem
        if self.query:
            return self._query(text)
        if self.regex:
            match = self.regex.search(text or '')
            if not match or match.group(1) is None:
                return None, 'version_regex %r does not match %s' % (
                    self.regex.pattern, 'the command output' if self.command else 'the body')
            return match.group(1).strip(), None
        if self.command:
            text = (text or '').strip()
            return (text, None) if text else (None, 'version_command printed nothing')
        return default_version(body)

    def _run(self, run_command):
        if run_command is None:
            return None, 'version_command needs to run on the host, and no runner was given'
        try:
            rc, out, err = run_command(self.command)
        except OSError as exc:
            return None, 'version_command could not run (%s)' % (exc.strerror or exc)
        out = out.decode('utf-8', 'replace') if isinstance(out, bytes) else (out or '')
        err = err.decode('utf-8', 'replace') if isinstance(err, bytes) else (err or '')
        if rc != 0:
            return None, 'version_command exited with rc %d: %s' % (rc, (err or out).strip()[-200:])
        # Go's flag packages print --version to stderr or stdout depending on the library.
        return out if out.strip() else err, None

    def _query(self, text):
        try:
            document = json.loads(text or '')
        except ValueError:
            return None, 'the %s is not JSON, so version_query %r cannot be read' % (
                'command output' if self.command else 'body', self.query_text)
        value = self.query.search(document)
        if value is None or isinstance(value, (bool, dict, list)):
            return None, 'version_query %r gives %s, not a version' % (self.query_text, json.dumps(value)[:80])
        return str(value).strip(), None


def _header(headers, name):
    for key in headers:
        if key.lower() == name.lower():
            return headers[key]
    return None


def default_version(body):
    """No source given: a JSON object's top-level "version", else the whole body stripped."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        value = document.get('version')
        if value is None or isinstance(value, (bool, dict, list)):
            return None, 'the JSON body has no top-level "version" field; ' + _CANNOT_READ
        return str(value).strip(), None
    text = (body or '').strip()
    if len(text) > 80 or '\n' in text or text.startswith('<'):
        return None, 'the body is not a version (%d characters); %s' % (len(text), _CANNOT_READ)
    return text, None


def build_version_source(version_query=None, version_regex=None, version_header=None, version_command=None):
    """Validate the version options (module params or service settings) -> VersionSource."""
    given = (version_query, version_regex, version_header, version_command)
    query, regex, header, command = [value if _given(value) else None for value in given]
    if query and regex:
        raise HotswapError('%s: version_query and version_regex are both set. Give one: version_query for a '
                           'JSON reply, version_regex for text.' % _WHAT)
    if header and (query or regex or command):
        others = [n for n, v in (('version_query', query), ('version_regex', regex), ('version_command', command)) if v]
        raise HotswapError('%s: version_header reads a response header; it cannot be combined with %s. Give one '
                           'source.' % (_WHAT, ', '.join(others)))
    argv = None
    if command:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise HotswapError('%s: version_command %r cannot be split into arguments (%s). Fix its quoting.'
                               % (_WHAT, command, exc))
    if header and not re.match(r'^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$', header):
        raise HotswapError('%s: version_header %r is not a valid header name. Give the name alone, e.g. '
                           'X-App-Version.' % (_WHAT, header))
    return VersionSource(query=compile_version_query(query) if query else None, query_text=query,
                         regex=compile_version_regex(regex) if regex else None,
                         header=header, command=argv)


def version_params(params):
    """The version options of a module's params (or any mapping)."""
    return dict((name, params.get(name)) for name in VERSION_OPTIONS)
