# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Keeping secrets out of results, messages and logs: the one place that decides what is masked.

Secrets a module may hold:

- the password (or a lone user name, which may be a token) in a URL's user-info part;
- the value of a query parameter (or fragment parameter) whose name looks like a credential:
  it contains signature, sig, token, key, pass, pwd, secret, auth, credential or session
  (``X-Amz-Signature``, ``X-Amz-Credential``, ``access_token``, ``api_key``, Azure's ``sig``...);
- HTTP header values the user gave (``headers``, ``url_headers``), whatever their names.

``mask_text`` replaces all of them in any text by ``MASK``. Mask before cutting a text to an
excerpt, or the cut can leave half a secret behind. ``RedactingModule`` registers the same
values with AnsibleModule's ``no_log_values``, so they are masked in ``invocation`` and in every
result, and masks its log lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

from ansible.module_utils.basic import AnsibleModule

MASK = '********'

# Lower-case fragments of parameter names that carry credentials.
CREDENTIAL_WORDS = ('signature', 'sig', 'token', 'key', 'pass', 'pwd', 'secret', 'auth', 'credential', 'session')
# Shorter values are not registered as no_log values: a one- or two-character "secret" would
# mask that text everywhere in the output. They are still masked wherever a URL is shown.
MIN_REGISTERED = 3
# Characters past an excerpt's cut that are masked with it: more than a URL's user-info may hold.
_EXCERPT_MARGIN = 8192

# Lengths are bounded so that no text makes these regular expressions slow (no quadratic backtracking).
_SCHEME = r'\b[a-z][a-z0-9+.-]{0,31}://'
_URL_RE = re.compile(r'(?i)%s[^\s\'"<>]+' % _SCHEME)
# User-info runs to the last '@' before the path: a password may hold a raw '@'.
_USERINFO_RE = re.compile(r'(?i)(%s)([^/?#\s\'"<>]{0,4096})@' % _SCHEME)
# A credential-like parameter where a query or fragment has parameters (after ? & ; #), so
# "signal=SIGHUP" in a sentence stays readable.
_NAME_CHARS = r'[A-Za-z0-9_.\-\[\]%]{0,64}'
_PARAM_RE = re.compile(r'(?i)(?<=[?&;#])(%s(?:%s)%s)=(?!=)([^&;\s#\'"<>]+)'
                       % (_NAME_CHARS, '|'.join(CREDENTIAL_WORDS), _NAME_CHARS))


def is_credential_name(name):
    """Whether a query parameter name looks like it carries a credential."""
    lowered = unquote_plus(name or '').lower()
    return any(word in lowered for word in CREDENTIAL_WORDS)


def _mask_pairs(text):
    """``a=1&X-Amz-Signature=abc`` -> ``a=1&X-Amz-Signature=********`` (the raw text kept otherwise)."""
    if not text:
        return text
    pieces = []
    for piece in re.split(r'([&;])', text):
        name, sep, value = piece.partition('=')
        if sep and value and is_credential_name(name):
            piece = '%s=%s' % (name, MASK)
        pieces.append(piece)
    return ''.join(pieces)


def _mask_userinfo(userinfo):
    user, sep, _password = userinfo.partition(':')
    if sep:
        return '%s:%s' % (user, MASK)
    return MASK if userinfo else userinfo


def mask_url(url):
    """``url`` with its user-info password and credential-like parameter values replaced by MASK."""
    if not isinstance(url, str) or not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    netloc = parts.netloc
    if '@' in netloc:
        userinfo, _at, hostport = netloc.rpartition('@')
        netloc = '%s@%s' % (_mask_userinfo(userinfo), hostport)
    return urlunsplit((parts.scheme, netloc, parts.path, _mask_pairs(parts.query), _mask_pairs(parts.fragment)))


def mask_text(text, secrets=()):
    """``text`` with every secret in ``secrets``, every URL password and every credential-like
    query or fragment parameter value replaced by MASK. Anything that is not a str is returned as it is."""
    if not isinstance(text, str) or not text:
        return text
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted((s for s in secrets or () if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _USERINFO_RE.sub(lambda m: '%s%s@' % (m.group(1), _mask_userinfo(m.group(2))), text)
    return _PARAM_RE.sub(lambda m: '%s=%s' % (m.group(1), MASK), text)


def excerpt(text, limit, secrets=()):
    """At most ``limit`` characters of ``text`` after masking (None stays None); a cut ends in '...'."""
    if text is None:
        return None
    # Only the start can be shown: mask a window that holds any secret or URL reaching into it.
    window = limit + _EXCERPT_MARGIN + max([len(s) for s in secrets or () if s] or [0])
    text = mask_text(text[:window], secrets)
    if len(text) <= limit:
        return text
    return text[:limit - 3] + '...'


def url_secrets(text):
    """The secret parts of every URL in ``text``: user-info and credential-like parameter values,
    as written and percent-decoded."""
    found = set()
    if not isinstance(text, str) or '://' not in text:
        return found
    for match in _URL_RE.finditer(text):
        try:
            parts = urlsplit(match.group(0))
        except ValueError:
            continue
        if '@' in parts.netloc:
            userinfo = parts.netloc.rpartition('@')[0]
            user, sep, password = userinfo.partition(':')
            found.add(password if sep else user)
        for part in (parts.query, parts.fragment):
            for piece in re.split(r'[&;]', part or ''):
                name, sep, value = piece.partition('=')
                if sep and is_credential_name(name):
                    found.add(value)
    decoded = set()
    for value in found:
        decoded.add(unquote(value))
        decoded.add(unquote_plus(value))
    return set(value for value in found | decoded if value)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def param_secrets(params, secret_dicts=()):
    """Secrets in module params: the values of the dict options named in ``secret_dicts`` (header
    maps) and the secret parts of every URL in any string option, nested ones included."""
    found = set()
    for name in secret_dicts:
        # 'metrics.headers': the headers of every element of the list option metrics.
        outer, _dot, inner = name.partition('.')
        values = [params.get(outer)] if not inner else [e.get(inner) for e in params.get(outer) or []
                                                        if isinstance(e, dict)]
        for value in values:
            if isinstance(value, dict):
                found.update(str(item) for item in value.values() if item is not None)
    for text in _strings(params):
        found.update(url_secrets(text))
    return set(value for value in found if len(value) >= MIN_REGISTERED)


def spec_secrets(spec, params):
    """The values of the ``no_log`` options of ``spec`` in ``params`` (a dict option's own arguments, when the module
    takes it as a plain dict), sub-options included. As ansible-core's private ``_list_no_log_values``, but it
    does not raise on a malformed value: the step's validation refuses that with a message, after this ran."""
    found = set()
    for name, opts in spec.items():
        value = (params or {}).get(name) if isinstance(params, dict) else None
        if value is None:
            continue
        if opts.get('no_log'):
            found.update(_leaves(value))
        elif opts.get('options'):
            for element in (value if isinstance(value, list) else [value]):
                found.update(spec_secrets(opts['options'], element))
    return set(value for value in found if len(value) >= MIN_REGISTERED)


def _leaves(value):
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    return [] if value is None else [str(value)]


def plain(value):
    """``value`` with every mapping a plain dict and every list or tuple a list: ansible-core before 2.19 rebuilds
    a result's containers by their type to mask the secrets, which a dict subclass with required arguments
    (health.Observation) does not survive."""
    if isinstance(value, Mapping):
        return dict((k, plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class RedactingModule(AnsibleModule):
    """AnsibleModule that keeps URL credentials and header values out of every output.

    Ansible's ``no_log`` only knows the values of ``no_log`` options as given: a header map
    given as a JSON or ``k=v`` string is registered as that one string, not as its values, and
    a signed URL is not secret as a whole. This registers the values themselves, so they are
    masked in ``invocation`` and results at any verbosity, and masks the log lines. The
    invocation line is logged, and a bad option fails, while AnsibleModule is still being
    built: hence ``log`` and ``fail_json`` register too.

    ``secret_dicts`` names the dict options whose values are secrets (headers); ``list.key`` names
    such a dict in every element of a list option (``metrics.headers``). ``secret_specs`` maps a dict option
    the module takes as is (a step of release_cutover) to the spec of its own module, whose ``no_log`` values are
    registered as well.
    """

    def __init__(self, *args, **kwargs):
        self._secret_dicts = tuple(kwargs.pop('secret_dicts', ()))
        self._secret_specs = dict(kwargs.pop('secret_specs', {}))
        super(RedactingModule, self).__init__(*args, **kwargs)
        self._register_secrets()

    def _register_secrets(self):
        params = getattr(self, 'params', None)
        if isinstance(params, dict):
            self.no_log_values.update(param_secrets(params, self._secret_dicts))
            for name, spec in self._secret_specs.items():
                self.no_log_values.update(spec_secrets(spec, params.get(name)))

    def log(self, msg, log_args=None):
        self._register_secrets()
        secrets = self.no_log_values
        if log_args:
            log_args = dict((key, mask_text(value, secrets)) for key, value in log_args.items())
        super(RedactingModule, self).log(mask_text(msg, secrets), log_args=log_args)

    def exit_json(self, **kwargs):
        self._register_secrets()
        super(RedactingModule, self).exit_json(**plain(kwargs))

    def fail_json(self, msg, **kwargs):
        self._register_secrets()
        super(RedactingModule, self).fail_json(msg, **plain(kwargs))
