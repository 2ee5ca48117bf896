# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Health probes: one attempt gives an Observation, a bounded loop gives a verdict.

Probe kinds (ARCHITECTURE.md section 4):

``http``     GET an ``http://`` or ``https://`` URL with ``open_url``; the reply is checked
             against the conditions (status codes, body regex, JMESPath query, expected version).
``tcp``      ``host:port`` (``[v6addr]:port`` for IPv6); a completed TCP connect passes.
``command``  an argv list (or a string split shell-style, no shell) run with
             ``module.run_command``; exit code 0 passes. The optional body conditions
             (``body_regex``, ``json_query``, ``expected_version``) are checked against stdout.

Three outcomes per attempt, as in Argo Rollouts:

``pass``          the target answered and every condition holds.
``fail``          the target answered and the answer is wrong: an HTTP status not in
                  ``status_codes``, a body that does not match, a false ``json_query``, a body
                  that is not JSON when ``json_query`` needs JSON, another version; a command
                  that exited non-zero (or whose stdout breaks a condition).
``inconclusive``  nothing could be measured: connection refused (nothing listening yet),
                  timeout, DNS failure, TLS handshake or certificate failure, connection reset
                  or closed without a reply, a command that could not be started or was killed
                  at the timeout. A ``tcp`` probe is therefore only ever ``pass`` or
                  ``inconclusive``.

The loop (``run_checks``): at most ``retries + 1`` attempts, ``interval`` seconds of sleep
between two attempts, stop as soon as ``successes`` consecutive attempts passed. With a
``deadline`` (seconds since the first attempt started) no attempt starts when it could not
begin before the deadline, and each attempt's timeout is cut to the time left. The first
attempt always runs. The verdict:

- ``pass`` when ``successes`` consecutive passes were seen;
- otherwise the outcome of the last attempt when it did not pass: ``fail`` when the app
  answered wrongly, ``inconclusive`` when it could not be measured;
- ``inconclusive`` when the last attempt passed but the run of passes was too short when the
  attempts (or the deadline) ran out.

Header values are secrets: they are sent but never returned. Every string returned (reasons,
body excerpts, versions) has each header value, URL password and credential-like URL parameter
replaced by ``********`` (module_utils/redact.py), before it is cut to an excerpt.

Redirects are followed (module_utils/request.py); a redirect to another origin (scheme, host or
port) gets none of the headers.
"""

from __future__ import annotations

import http.client
import json
import re
import shlex
import socket
import ssl
import threading
import time
import traceback
import urllib.error
from urllib.parse import urlsplit

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.hotswap.deploy.plugins.module_utils import redact
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.request import RedirectError, open_url_same_origin, request_errors
from ansible_collections.hotswap.deploy.plugins.module_utils.version import (
    VERSION_SPEC, VersionSource, build_version_source, version_params,
)

try:
    import jmespath
    import jmespath.exceptions
except ImportError:
    jmespath = None
    JMESPATH_IMPORT_ERROR = traceback.format_exc()
else:
    JMESPATH_IMPORT_ERROR = None

PASS = 'pass'
FAIL = 'fail'
INCONCLUSIVE = 'inconclusive'
OUTCOMES = (PASS, FAIL, INCONCLUSIVE)

PROBE_KINDS = ('http', 'tcp', 'command')
FAIL_ON_CHOICES = ('fail', 'fail_or_inconclusive', 'never')

BODY_EXCERPT_MAX = 512          # characters of body/stdout kept in an observation
BODY_READ_MAX = 1024 * 1024     # bytes of a reply read for the conditions
OBSERVATIONS_KEPT = 50          # the most recent observations returned
MASK = redact.MASK
HTTP_AGENT = 'hotswap.deploy-health_check'
DEFAULT_STATUS_CODES = (200,)
MIN_ATTEMPT_TIMEOUT = 0.05      # seconds; an attempt squeezed by the deadline still gets this

_WHAT = 'configuring the health probe'


# --------------------------------------------------------------------------- observations

class Observation(dict):
    """One attempt: a plain dict (JSON-ready) with attribute shortcuts.

    Keys: ``attempt``, ``outcome``, ``reason``, ``status`` (HTTP status or None),
    ``version`` (version seen or None), ``elapsed_ms``, ``body`` (excerpt, at most
    BODY_EXCERPT_MAX characters, or None).
    """

    def __init__(self, outcome, reason, status=None, version=None, elapsed_ms=0, body=None, attempt=None):
        if outcome not in OUTCOMES:
            raise ValueError('outcome must be one of %s, not %r' % (', '.join(OUTCOMES), outcome))
        super(Observation, self).__init__(
            attempt=attempt, outcome=outcome, reason=reason, status=status, version=version,
            elapsed_ms=int(elapsed_ms), body=body,
        )

    @property
    def outcome(self):
        return self['outcome']

    @property
    def reason(self):
        return self['reason']


def excerpt(text, limit=BODY_EXCERPT_MAX, secrets=()):
    """At most ``limit`` characters of ``text``, secrets masked first (None stays None); a cut ends in '...'."""
    return redact.excerpt(text, limit, secrets)


def mask_secrets(text, secrets):
    """``text`` with every value of ``secrets``, URL password and credential-like URL parameter masked."""
    return redact.mask_text(text, secrets)


def masked(observation, secrets):
    """``observation`` with every secret removed from its strings (in place, returned)."""
    for key in ('reason', 'body', 'version'):
        observation[key] = mask_secrets(observation[key], secrets)
    if observation['body'] is not None:
        observation['body'] = excerpt(observation['body'])
    return observation


def redact_url(url):
    """``url`` without its password or credential-like parameters, for messages."""
    return redact.mask_url(url)


# --------------------------------------------------------------------------- validation

def require_jmespath(option='json_query', what=_WHAT):
    """Return the jmespath module or raise HotswapError saying how to get it."""
    if jmespath is None:
        raise HotswapError(
            '%s: %s needs the jmespath library where the module runs. %s Or run the task on the controller '
            'with delegate_to: localhost.' % (what, option, missing_required_lib('jmespath', reason='for %s' % option)),
            exception=JMESPATH_IMPORT_ERROR,
        )
    return jmespath


def compile_json_query(expression, option='json_query', what=_WHAT,
                       example='"status == \'ok\'", or leave json_query out'):
    """Compile a JMESPath expression; an empty or invalid one is a HotswapError naming ``option``."""
    if not isinstance(expression, str) or not expression.strip():
        raise HotswapError('%s: %s is empty. Give a JMESPath expression such as %s.' % (what, option, example))
    lib = require_jmespath(option, what)
    try:
        return lib.compile(expression)
    except lib.exceptions.JMESPathError as exc:
        raise HotswapError('%s: %s %r is not a valid JMESPath expression (%s). Fix the expression (the '
                           'JMESPath specification has the grammar).'
                           % (what, option, expression, ' '.join(str(exc).split())))


def compile_body_regex(pattern):
    """Compile ``body_regex`` (Python ``re`` syntax, used with ``search``)."""
    try:
        return re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise HotswapError('%s: body_regex %r is not a valid regular expression (%s). Fix it '
                           '(Python re syntax; it is searched anywhere in the body).' % (_WHAT, pattern, exc))


def validate_url(url, what=_WHAT, other_protocols=' For other protocols use a tcp or command probe.'):
    """Return ``url`` if it is an absolute http(s) URL with a host; ``what`` says who is asking."""
    fix = 'Use an absolute http:// or https:// URL such as http://127.0.0.1:8080/healthz.'
    if not isinstance(url, str) or not url:
        raise HotswapError('%s: the URL is empty. %s' % (what, fix))
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise HotswapError('%s: cannot parse URL %r (%s). %s' % (what, redact_url(url), exc, fix))
    if parts.scheme.lower() not in ('http', 'https'):
        raise HotswapError('%s: URL %r has scheme %r. %s%s'
                           % (what, redact_url(url), parts.scheme, fix, other_protocols))
    if not parts.hostname:
        raise HotswapError('%s: URL %r has no host. %s' % (what, redact_url(url), fix))
    return url


def parse_tcp_target(target):
    """``'host:port'`` or ``'[v6addr]:port'`` -> ``(host, port)``."""
    fix = 'Write the tcp target as host:port, for example 127.0.0.1:8080 or [::1]:8080.'
    if not isinstance(target, str) or ':' not in target:
        raise HotswapError('%s: tcp target %r is not host:port. %s' % (_WHAT, target, fix))
    host, _sep, port_text = target.rpartition(':')
    if host.startswith('[') and host.endswith(']'):
        host = host[1:-1]
    elif ':' in host:
        raise HotswapError('%s: tcp target %r is ambiguous (an IPv6 address needs brackets). %s'
                           % (_WHAT, target, fix))
    if not host:
        raise HotswapError('%s: tcp target %r has no host. %s' % (_WHAT, target, fix))
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise HotswapError('%s: tcp target %r has no valid port (1-65535). %s' % (_WHAT, target, fix))
    return host, int(port_text)


def parse_command(command):
    """An argv list, or a string split shell-style (no shell), -> a non-empty list of str."""
    fix = ('Give the command as a list such as ["/usr/local/bin/myapp", "--check"], or a string '
           'without shell syntax; for pipes or redirections use ["/bin/sh", "-c", "..."].')
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise HotswapError('%s: cannot split command %r (%s). %s' % (_WHAT, command, exc, fix))
    elif isinstance(command, (list, tuple)):
        if any(isinstance(arg, (list, tuple, dict)) or arg is None for arg in command):
            raise HotswapError('%s: command %r has an element that is not a string. %s' % (_WHAT, command, fix))
        argv = [str(arg) for arg in command]
    else:
        raise HotswapError('%s: command must be a list or a string, not %s. %s'
                           % (_WHAT, type(command).__name__, fix))
    if not argv or not argv[0]:
        raise HotswapError('%s: the command is empty. %s' % (_WHAT, fix))
    return argv


def validate_status_codes(codes):
    """A non-empty list of HTTP status codes (100-599) -> tuple of int."""
    fix = 'Give status_code as a list of HTTP status codes, for example [200] or [200, 204].'
    if codes is None:
        return DEFAULT_STATUS_CODES
    if isinstance(codes, (int, str)):
        codes = [codes]
    try:
        result = tuple(int(code) for code in codes)
    except (TypeError, ValueError):
        raise HotswapError('%s: status_code %r is not a list of integers. %s' % (_WHAT, codes, fix))
    if not result or any(not 100 <= code <= 599 for code in result):
        raise HotswapError('%s: status_code %r must hold codes between 100 and 599. %s' % (_WHAT, codes, fix))
    return result


def validate_headers(headers, what=_WHAT):
    """``headers`` (dict or None) -> dict of str to str. Messages name keys, never values."""
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise HotswapError('%s: headers must be a dictionary of header names to values, not %s. '
                           'Write headers: {Authorization: "Bearer ..."}.' % (what, type(headers).__name__))
    result = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not name.strip() or any(c in name for c in ':\r\n'):
            raise HotswapError('%s: header name %r is not valid. Use a plain header name such as '
                               'Authorization.' % (what, name))
        if value is None or isinstance(value, (dict, list)):
            raise HotswapError('%s: the value of header %r is not a string. Give a string value.' % (what, name))
        value = str(value)
        if '\r' in value or '\n' in value:
            raise HotswapError('%s: the value of header %r contains a line break. Remove it.' % (what, name))
        result[name] = value
    return result


def _number(name, value, minimum, inclusive, fix):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HotswapError('%s: %s must be a number, not %r. %s' % (_WHAT, name, value, fix))
    if value < minimum or (not inclusive and value == minimum):
        raise HotswapError('%s: %s is %r; it must be %s %s. %s'
                           % (_WHAT, name, value, '>=' if inclusive else '>', minimum, fix))
    return value


def validate_schedule(timeout, retries, interval, successes, deadline):
    """Check the loop settings; return them normalised as a dict."""
    _number('timeout', timeout, 0, False, 'Give the per-attempt timeout in seconds, for example 5.')
    _number('retries', retries, 0, True, 'Give the number of attempts after the first (0 = one attempt).')
    if int(retries) != retries:
        raise HotswapError('%s: retries must be a whole number, not %r. Use for example 10.' % (_WHAT, retries))
    _number('interval', interval, 0, True, 'Give the pause between attempts in seconds (0 or more).')
    _number('successes', successes, 1, True, 'Give how many consecutive passes are required (1 or more).')
    if int(successes) != successes:
        raise HotswapError('%s: successes must be a whole number, not %r. Use for example 3.' % (_WHAT, successes))
    if deadline is not None:
        _number('deadline', deadline, 0, False, 'Give the overall time limit in seconds, or leave it out.')
    if int(retries) + 1 < int(successes):
        raise HotswapError('%s: successes is %d but only %d attempt(s) are allowed (retries + 1), so the probe '
                           'could never pass. Set retries to at least %d.'
                           % (_WHAT, successes, int(retries) + 1, int(successes) - 1))
    return dict(timeout=float(timeout), retries=int(retries), interval=float(interval),
                successes=int(successes), deadline=None if deadline is None else float(deadline))


class Probe(object):
    """A validated probe: what to measure and the conditions a reply must meet."""

    def __init__(self, kind, target, status_codes, body_regex, json_query, json_query_text,
                 expected_version, headers, validate_certs, timeout, host=None, port=None, argv=None,
                 version_source=None):
        self.kind = kind
        self.target = target
        self.status_codes = status_codes
        self.body_regex = body_regex
        self.json_query = json_query
        self.json_query_text = json_query_text
        self.expected_version = expected_version
        self.headers = headers
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.host = host
        self.port = port
        self.argv = argv
        self.version_source = version_source or VersionSource()

    @property
    def secrets(self):
        return [value for value in self.headers.values() if value]

    @property
    def has_body_conditions(self):
        return bool(self.body_regex is not None or self.json_query is not None or self.expected_version is not None
                    or not self.version_source.is_default)

    def describe(self):
        """The target for messages (no password, no header values)."""
        if self.kind == 'http':
            return redact_url(self.target)
        if self.kind == 'tcp':
            return 'tcp %s' % self.target
        return 'command %s' % ' '.join(shlex.quote(arg) for arg in self.argv)


def build_probe(kind, target, status_code=None, body_regex=None, json_query=None, expected_version=None,
                headers=None, validate_certs=True, timeout=5, version_source=None):
    """Validate a probe definition and return a Probe; raise HotswapError on any mistake.

    ``status_code`` and ``validate_certs`` only matter for http; ``headers`` is refused for the
    other kinds. ``body_regex``, ``json_query`` and ``expected_version`` apply to an HTTP body or
    a command's stdout and are refused for tcp. ``version_source`` (module_utils/version.py) says
    where the reply holds the version.
    """
    if kind not in PROBE_KINDS:
        raise HotswapError('%s: unknown probe type %r. Use one of: %s (url, tcp or command in the '
                           'health_check module).' % (_WHAT, kind, ', '.join(PROBE_KINDS)))
    _number('timeout', timeout, 0, False, 'Give the per-attempt timeout in seconds, for example 5.')
    header_map = validate_headers(headers)
    if header_map and kind != 'http':
        raise HotswapError('%s: headers only apply to url probes, not to a %s probe. Remove headers.'
                           % (_WHAT, kind))
    if kind == 'tcp':
        given = [name for name, value in (('body_regex', body_regex), ('json_query', json_query),
                                          ('expected_version', expected_version)) if value is not None]
        if given:
            raise HotswapError('%s: %s cannot be checked by a tcp probe (it reads no reply). Use a url or '
                               'command probe, or remove %s.' % (_WHAT, ', '.join(given), ', '.join(given)))
    probe = Probe(
        kind=kind, target=target,
        status_codes=validate_status_codes(status_code) if kind == 'http' else None,
        body_regex=compile_body_regex(body_regex) if body_regex is not None else None,
        json_query=compile_json_query(json_query) if json_query is not None else None,
        json_query_text=json_query,
        expected_version=None if expected_version is None else str(expected_version).strip(),
        headers=header_map, validate_certs=bool(validate_certs), timeout=float(timeout),
        version_source=version_source,
    )
    if kind == 'http':
        validate_url(target)
    elif kind == 'tcp':
        probe.host, probe.port = parse_tcp_target(target)
    else:
        probe.argv = parse_command(target)
        probe.target = probe.argv
    return probe


# --------------------------------------------------------------------------- evaluating a reply

def jmespath_truthy(value):
    """JMESPath truthiness: false, null, "", [] and {} are false; everything else (0 too) is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)) and not value:
        return False
    return True


def parse_json(text):
    """``(True, document)`` when ``text`` is JSON, else ``(False, None)``."""
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


def check_body(probe, text, headers=None, run_command=None):
    """Body conditions -> ``(problems, version_seen)``; an empty list of problems means they hold."""
    problems = []
    is_json, document = parse_json(text)
    if probe.body_regex is not None and not probe.body_regex.search(text):
        problems.append('body does not match body_regex %r' % probe.body_regex.pattern)
    if probe.json_query is not None:
        if not is_json:
            problems.append('body is not JSON, so json_query %r cannot hold' % probe.json_query_text)
        else:
            try:
                result = probe.json_query.search(document)
            except jmespath.exceptions.JMESPathError as exc:
                problems.append('json_query %r could not be evaluated on the body (%s)'
                                % (probe.json_query_text, ' '.join(str(exc).split())))
            else:
                if not jmespath_truthy(result):
                    problems.append('json_query %r is false (result: %s)'
                                    % (probe.json_query_text, excerpt(json.dumps(result), 80, probe.secrets)))
    source = probe.version_source
    # The default source reads a version only when one is expected or the body is a JSON object.
    if probe.expected_version is None and source.is_default and not (is_json and isinstance(document, dict)):
        return problems, None
    version, problem = source.read(text, headers=headers, run_command=run_command)
    if probe.expected_version is not None:
        if version is None:
            problems.append('expected version %r but %s' % (probe.expected_version, problem))
        elif version != probe.expected_version:
            problems.append('version is %r, expected %r%s'
                            % (excerpt(version, 80, probe.secrets), probe.expected_version,
                               '' if source.is_default else ' (read from %s)' % source.describe()))
    return problems, (excerpt(version, secrets=probe.secrets) if version else None)


def check_reply(probe, status, text, headers=None, run_command=None):
    """HTTP reply -> ``(outcome, reason, version_seen)`` (pass or fail: a reply was measured)."""
    problems = []
    if status not in probe.status_codes:
        problems.append('status %d is not one of %s' % (status, list(probe.status_codes)))
    body_problems, version = check_body(probe, text, headers=headers, run_command=run_command)
    problems.extend(body_problems)
    if problems:
        return FAIL, 'HTTP %d: %s' % (status, '; '.join(problems)), version
    return PASS, 'HTTP %d%s' % (status, ', version %s' % version if version else ''), version


def describe_error(exc, timeout):
    """Why a measurement could not be made, as a short sentence (the outcome is inconclusive)."""
    if isinstance(exc, RedirectError):
        return str(exc.reason)
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        if isinstance(exc.reason, BaseException):
            exc = exc.reason
        else:
            return 'could not connect: %s' % exc.reason
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ('TLS certificate verification failed (%s); for a self-signed certificate set '
                'validate_certs: false, or install its CA on the probing host'
                % (exc.verify_message or exc.reason or exc))
    if isinstance(exc, ssl.SSLError):
        return 'TLS handshake failed (%s)' % (exc.reason or exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return 'timed out after %gs' % timeout
    if isinstance(exc, ConnectionRefusedError):
        return 'connection refused (nothing is listening there yet)'
    if isinstance(exc, socket.gaierror):
        return 'cannot resolve the host name (%s)' % (exc.strerror or exc)
    if isinstance(exc, http.client.RemoteDisconnected):
        return 'the server closed the connection without a reply'
    if isinstance(exc, ConnectionResetError):
        return 'connection reset by the server'
    if isinstance(exc, http.client.HTTPException):
        return 'invalid HTTP reply (%s: %s)' % (type(exc).__name__, exc)
    if isinstance(exc, OSError):
        return 'network error (%s)' % (exc.strerror or exc)
    return 'could not measure (%s: %s)' % (type(exc).__name__, exc)


# --------------------------------------------------------------------------- one attempt

def _elapsed_ms(started, clock):
    return (clock() - started) * 1000.0


def _decode(data):
    return data.decode('utf-8', errors='replace') if isinstance(data, bytes) else (data or '')


def observe_http(probe, timeout, clock=time.monotonic, run_command=None):
    """One GET of ``probe.target`` -> Observation (``run_command`` runs a version_command)."""
    started = clock()
    status = None
    try:
        try:
            response = open_url_same_origin(probe.target, headers=probe.headers, timeout=timeout,
                                            validate_certs=probe.validate_certs, http_agent=HTTP_AGENT)
        except urllib.error.HTTPError as err:
            # A 4xx/5xx is still a reply: the conditions decide (status_code may list it).
            response = err
        try:
            status = response.getcode()
            reply_headers = dict(response.headers.items()) if response.headers is not None else {}
            data = response.read(BODY_READ_MAX)
        finally:
            response.close()
    except request_errors() as exc:
        return Observation(INCONCLUSIVE, describe_error(exc, timeout), status=status,
                           elapsed_ms=_elapsed_ms(started, clock))
    text = _decode(data)
    outcome, reason, version = check_reply(probe, status, text, headers=reply_headers, run_command=run_command)
    return Observation(outcome, reason, status=status, version=version,
                       elapsed_ms=_elapsed_ms(started, clock), body=excerpt(text, secrets=probe.secrets))


def observe_tcp(probe, timeout, clock=time.monotonic):
    """One TCP connect to ``probe.host:probe.port`` -> Observation (pass or inconclusive)."""
    started = clock()
    try:
        sock = socket.create_connection((probe.host, probe.port), timeout=timeout)
    except (OSError, ValueError) as exc:
        return Observation(INCONCLUSIVE, describe_error(exc, timeout), elapsed_ms=_elapsed_ms(started, clock))
    sock.close()
    return Observation(PASS, 'connected to %s' % probe.target, elapsed_ms=_elapsed_ms(started, clock))


def observe_command(probe, timeout, run_command, clock=time.monotonic):
    """One run of ``probe.argv`` via ``run_command`` (AnsibleModule.run_command) -> Observation.

    The process is killed (SIGKILL) when it outlives ``timeout``; that attempt is inconclusive.
    """
    started = clock()
    state = {'timer': None, 'killed': False}

    def kill(proc):
        if proc.poll() is None:
            state['killed'] = True
            try:
                proc.kill()
            except OSError:
                pass

    def arm(proc):
        timer = threading.Timer(timeout, kill, [proc])
        timer.daemon = True
        state['timer'] = timer
        timer.start()

    try:
        rc, out, err = run_command(probe.argv, before_communicate_callback=arm, handle_exceptions=False)
    except OSError as exc:
        return Observation(INCONCLUSIVE, 'could not run the command (%s)' % (exc.strerror or exc),
                           elapsed_ms=_elapsed_ms(started, clock))
    finally:
        if state['timer'] is not None:
            state['timer'].cancel()
    out, err = _decode(out), _decode(err)
    elapsed = _elapsed_ms(started, clock)
    if state['killed']:
        return Observation(INCONCLUSIVE, 'command timed out after %gs and was killed' % timeout,
                           elapsed_ms=elapsed, body=excerpt(out or err, secrets=probe.secrets) or None)
    if rc != 0:
        last = (err.strip() or out.strip()).splitlines()
        detail = ': %s' % excerpt(last[-1], 200, probe.secrets) if last else ''
        return Observation(FAIL, 'command exited with rc %d%s' % (rc, detail), elapsed_ms=elapsed,
                           body=excerpt(out or err, secrets=probe.secrets) or None)
    problems, version = (check_body(probe, out, run_command=run_command) if probe.has_body_conditions
                         else ([], None))
    if problems:
        return Observation(FAIL, 'command exited with rc 0 but %s' % '; '.join(problems), version=version,
                           elapsed_ms=elapsed, body=excerpt(out, secrets=probe.secrets))
    return Observation(PASS, 'command exited with rc 0%s' % (', version %s' % version if version else ''),
                       version=version, elapsed_ms=elapsed, body=excerpt(out, secrets=probe.secrets) or None)


def observe(probe, timeout, run_command=None, clock=time.monotonic):
    """One attempt of any kind, with header values masked out of the result."""
    if probe.kind == 'http':
        observation = observe_http(probe, timeout, clock=clock, run_command=run_command)
    elif probe.kind == 'tcp':
        observation = observe_tcp(probe, timeout, clock=clock)
    else:
        if run_command is None:
            raise HotswapError('%s: a command probe needs a run_command function. Pass '
                               'module.run_command.' % _WHAT)
        observation = observe_command(probe, timeout, run_command, clock=clock)
    return masked(observation, probe.secrets)


# --------------------------------------------------------------------------- the loop

def run_checks(attempt, timeout=5, retries=0, interval=1, successes=1, deadline=None,
               sleep=time.sleep, clock=time.monotonic):
    """Call ``attempt(timeout) -> Observation`` until a verdict; return the result dict.

    Keys: ``outcome``, ``reason``, ``attempts`` (attempts made), ``observations`` (the last
    OBSERVATIONS_KEPT), ``counts`` (attempts per outcome), ``version`` and ``status`` (from the
    most recent attempt that saw one), ``elapsed`` (seconds, float).
    """
    schedule = validate_schedule(timeout, retries, interval, successes, deadline)
    timeout, interval, deadline = schedule['timeout'], schedule['interval'], schedule['deadline']
    successes, total = schedule['successes'], schedule['retries'] + 1
    started = clock()
    observations = []
    streak = 0
    deadline_hit = False
    for number in range(1, total + 1):
        if number > 1:
            if deadline is not None and clock() - started + interval >= deadline:
                deadline_hit = True
                break
            if interval:
                sleep(interval)
        budget = timeout
        if deadline is not None:
            budget = max(min(timeout, deadline - (clock() - started)), MIN_ATTEMPT_TIMEOUT)
        observation = attempt(budget)
        observation['attempt'] = number
        observations.append(observation)
        if observation['outcome'] == PASS:
            streak += 1
            if streak >= successes:
                break
        else:
            streak = 0
    elapsed = clock() - started
    outcome, reason = verdict(observations, streak, successes, total, deadline if deadline_hit else None)
    counts = dict((name, sum(1 for obs in observations if obs['outcome'] == name)) for name in OUTCOMES)
    return dict(
        outcome=outcome,
        reason=reason,
        attempts=len(observations),
        observations=observations[-OBSERVATIONS_KEPT:],
        counts=counts,
        version=_last_seen(observations, 'version'),
        status=_last_seen(observations, 'status'),
        elapsed=round(elapsed, 3),
    )


def _last_seen(observations, key):
    for observation in reversed(observations):
        if observation.get(key) is not None:
            return observation[key]
    return None


def verdict(observations, streak, successes, total, deadline_hit=None):
    """``(outcome, reason)`` for a finished loop (see the module docstring for the rules)."""
    made = len(observations)
    last = observations[-1]
    if streak >= successes:
        if successes == 1:
            return PASS, 'passed on attempt %d of %d: %s' % (made, total, last['reason'])
        return PASS, '%d consecutive passes by attempt %d of %d: %s' % (successes, made, total, last['reason'])
    why = ('deadline of %gs reached' % deadline_hit) if deadline_hit is not None else (
        'no attempts left (%d of %d made)' % (made, total))
    if last['outcome'] == PASS:
        return INCONCLUSIVE, ('only %d of %d required consecutive passes when the probe stopped (%s); last: %s'
                              % (streak, successes, why, last['reason']))
    return last['outcome'], '%s; attempt %d: %s' % (why, made, last['reason'])


def run_health_check(probe, retries=0, interval=1, successes=1, deadline=None, run_command=None,
                     sleep=time.sleep, clock=time.monotonic):
    """Run ``probe`` under the loop rules; return the result dict of run_checks."""
    return run_checks(lambda budget: observe(probe, budget, run_command=run_command, clock=clock),
                      timeout=probe.timeout, retries=retries, interval=interval, successes=successes,
                      deadline=deadline, sleep=sleep, clock=clock)


def should_fail(outcome, fail_on):
    """Whether the task fails for ``outcome`` under ``fail_on`` (fail / fail_or_inconclusive / never)."""
    if fail_on not in FAIL_ON_CHOICES:
        raise HotswapError('%s: fail_on %r is not one of %s. Pick one of them.'
                           % (_WHAT, fail_on, ', '.join(FAIL_ON_CHOICES)))
    if outcome == PASS or fail_on == 'never':
        return False
    if fail_on == 'fail':
        return outcome == FAIL
    return True


# health_check's arguments (also a step of blue_green_cutover); exactly one of PROBE_OPTIONS.
HEALTH_SPEC = dict(
    url=dict(type='str'),
    tcp=dict(type='str'),
    command=dict(type='raw'),
    status_code=dict(type='list', elements='int', default=[200]),
    body_regex=dict(type='str'),
    json_query=dict(type='str'),
    expected_version=dict(type='str'),
    headers=dict(type='dict', no_log=True),
    validate_certs=dict(type='bool', default=True),
    timeout=dict(type='float', default=5),
    retries=dict(type='int', default=0),
    interval=dict(type='float', default=1),
    successes=dict(type='int', default=1),
    deadline=dict(type='float'),
    fail_on=dict(type='str', choices=list(FAIL_ON_CHOICES), default='fail_or_inconclusive'),
)
HEALTH_SPEC.update(VERSION_SPEC)
PROBE_OPTIONS = (('url', 'http'), ('tcp', 'tcp'), ('command', 'command'))


def check_health(params, run_command=None):
    """What health_check does with its checked arguments ``params`` (HEALTH_SPEC): the result, or HotswapError
    when fail_on says the outcome fails the task (its details: the result, with each attempt's observation)."""
    option, kind = [(name, kind) for name, kind in PROBE_OPTIONS if params.get(name) is not None][0]
    probe = build_probe(
        kind, params[option],
        status_code=params['status_code'], body_regex=params['body_regex'],
        json_query=params['json_query'], expected_version=params['expected_version'],
        headers=params['headers'], validate_certs=params['validate_certs'], timeout=params['timeout'],
        version_source=build_version_source(**version_params(params)),
    )
    result = run_health_check(probe, retries=params['retries'], interval=params['interval'],
                              successes=params['successes'], deadline=params['deadline'], run_command=run_command)
    result['changed'] = False
    if should_fail(result['outcome'], params['fail_on']):
        raise HotswapError('health check of %s: %s, %s. Look at observations for each attempt; set fail_on to change '
                           'when this task fails.' % (probe.describe(), result['outcome'], result['reason']), **result)
    return result
