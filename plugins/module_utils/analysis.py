# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Metric analysis of one number, as an Argo Rollouts AnalysisRun does it.

``count`` measurements, ``interval`` seconds apart. A measurement GETs an HTTP(S) URL, parses the
body as JSON, evaluates a JMESPath ``query`` on it and compares the number it gives with
``threshold``: ``value <comparison> threshold``.

Each measurement is one of:

``pass``   the value was measured and the comparison holds.
``fail``   the value was measured and the comparison is false.
``error``  no value could be measured: connection error, timeout, TLS failure, a status outside
           2xx, a body that is not JSON, a query result that is missing, null or not a finite
           number. Errors are counted apart from failures.

The verdict:

- ``fail`` as soon as failures > ``failure_limit`` (no further measurement is taken);
- ``inconclusive`` as soon as consecutive errors > ``consecutive_error_limit`` (no further
  measurement), or at the end when no measurement could be taken at all;
- ``pass`` otherwise;
- ``skipped`` in check mode: the options were validated and nothing was requested.

Header values are secrets: they are sent, never returned; any of them found in a returned error
text is replaced by ``********``, as are URL passwords and credential-like URL parameters
(module_utils/redact.py), before any text is cut. Redirects are followed; a redirect to another
origin (scheme, host or port) gets none of the headers (module_utils/request.py).
"""

from __future__ import annotations

import datetime
import http.client
import json
import math
import operator
import time
import urllib.error

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError

from ansible_collections.hotswap.deploy.plugins.module_utils import health
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.request import open_url_same_origin

PASS = health.PASS
FAIL = health.FAIL
INCONCLUSIVE = health.INCONCLUSIVE
SKIPPED = 'skipped'
ERROR = 'error'                      # a measurement that could not be taken
MEASUREMENT_OUTCOMES = (PASS, FAIL, ERROR)
VERDICTS = (PASS, FAIL, INCONCLUSIVE, SKIPPED)

COMPARISONS = {
    '<': operator.lt,
    '<=': operator.le,
    '>': operator.gt,
    '>=': operator.ge,
    '==': operator.eq,
    '!=': operator.ne,
}
COMPARISON_CHOICES = tuple(COMPARISONS)
FAIL_ON_CHOICES = health.FAIL_ON_CHOICES

HTTP_AGENT = 'hotswap.deploy-metric_analysis'
BODY_READ_MAX = health.BODY_READ_MAX
ERROR_EXCERPT_MAX = 80              # characters of a body or result quoted in an error

_WHAT = 'configuring the metric analysis'


# --------------------------------------------------------------------------- numbers

def as_number(value):
    """``value`` as an int or float, or None when it is not a finite number.

    int and float are numbers; so is a string that parses as one (Prometheus returns
    ``"0.013"``). bool is not a number, although Python treats it as an int. NaN and the
    infinities are not finite numbers (Prometheus gives ``"NaN"`` for 0/0).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def parse_threshold(threshold):
    """The threshold as a number; anything else is a HotswapError."""
    number = as_number(threshold)
    if number is None:
        raise HotswapError('%s: threshold must be a number, got %r (%s). Give a finite number such as 0.05, or a '
                           'numeric string such as "0.05".' % (_WHAT, threshold, type(threshold).__name__))
    return number


# --------------------------------------------------------------------------- validation

def compile_query(expression):
    """Compile the JMESPath ``query``; an empty or invalid expression is a HotswapError."""
    return health.compile_json_query(expression, option='query', what=_WHAT,
                                     example='"error_rate" or "data.result[0].value[1]" (it must select a number)')


def validate_comparison(comparison):
    if comparison not in COMPARISONS:
        raise HotswapError('%s: comparison %r is not one of %s. Pick one; a measurement passes when '
                           '"value <comparison> threshold" holds.' % (_WHAT, comparison, ' '.join(COMPARISON_CHOICES)))
    return comparison


def _whole_number(name, value, minimum, fix):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise HotswapError('%s: %s is %r; it must be a whole number >= %d. %s' % (_WHAT, name, value, minimum, fix))
    return value


def _seconds(name, value, minimum, inclusive, fix):
    number = None if isinstance(value, str) else as_number(value)
    if number is None or number < minimum or (not inclusive and number == minimum):
        raise HotswapError('%s: %s is %r; it must be a number of seconds %s %g. %s'
                           % (_WHAT, name, value, '>=' if inclusive else '>', minimum, fix))
    return float(number)


def validate_fail_on(fail_on):
    if fail_on not in FAIL_ON_CHOICES:
        raise HotswapError('%s: fail_on %r is not one of %s. Pick one of them.'
                           % (_WHAT, fail_on, ', '.join(FAIL_ON_CHOICES)))
    return fail_on


class Analysis(object):
    """A validated analysis: where and what to measure, and the limits."""

    def __init__(self, url, query, query_text, threshold, comparison, headers, validate_certs, timeout,
                 count, interval, failure_limit, consecutive_error_limit):
        self.url = url
        self.query = query
        self.query_text = query_text
        self.threshold = threshold
        self.comparison = comparison
        self.headers = headers
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.count = count
        self.interval = interval
        self.failure_limit = failure_limit
        self.consecutive_error_limit = consecutive_error_limit

    @property
    def secrets(self):
        return [value for value in self.headers.values() if value]

    @property
    def redacted_url(self):
        return health.redact_url(self.url)

    def describe(self):
        """``<url>: <query> <comparison> <threshold>`` for messages (no password, no header values)."""
        return '%s: %s %s %s' % (self.redacted_url, self.query_text, self.comparison, self.threshold)


def build_analysis(url, query, threshold, comparison='<=', headers=None, validate_certs=True, timeout=5,
                   count=3, interval=10, failure_limit=0, consecutive_error_limit=4):
    """Validate every option and return an Analysis; raise HotswapError on the first mistake.

    The JMESPath query is compiled here, so a bad one fails before any request.
    """
    health.validate_url(url, what=_WHAT, other_protocols='')
    header_map = health.validate_headers(headers, what=_WHAT)
    return Analysis(
        url=url,
        query=compile_query(query),
        query_text=query,
        threshold=parse_threshold(threshold),
        comparison=validate_comparison(comparison),
        headers=header_map,
        validate_certs=bool(validate_certs),
        timeout=_seconds('timeout', timeout, 0, False, 'Give the per-request timeout in seconds, for example 5.'),
        count=_whole_number('count', count, 1, 'Give how many measurements to take, for example 3.'),
        interval=_seconds('interval', interval, 0, True, 'Give the pause between measurements in seconds (0 or more).'),
        failure_limit=_whole_number('failure_limit', failure_limit, 0,
                                    'Give how many failed measurements are tolerated (0 = none).'),
        consecutive_error_limit=_whole_number('consecutive_error_limit', consecutive_error_limit, 0,
                                              'Give how many consecutive errors are tolerated (0 = none).'),
    )


# --------------------------------------------------------------------------- one measurement

def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso_utc(moment):
    """``2026-11-21T14:30:05.123Z``: UTC, millisecond precision."""
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (moment.microsecond // 1000)


def fetch_url(url, headers, timeout, validate_certs):
    """GET ``url`` -> ``(status, body bytes)``; a 4xx/5xx reply is returned, not raised.

    Connection problems raise (OSError, http.client.HTTPException, urls.ConnectionError, ValueError).
    """
    try:
        response = open_url_same_origin(url, headers=headers, timeout=timeout, validate_certs=validate_certs,
                                        http_agent=HTTP_AGENT)
    except urllib.error.HTTPError as err:
        response = err
    try:
        return response.getcode(), response.read(BODY_READ_MAX)
    finally:
        response.close()


def _quote(value, secrets=(), limit=ERROR_EXCERPT_MAX):
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return health.excerpt(text, limit, secrets)


def value_from_body(analysis, data):
    """The number ``analysis.query`` selects in the JSON ``data`` -> ``(number, None)`` or ``(None, error)``."""
    text = data.decode('utf-8', errors='replace') if isinstance(data, bytes) else (data or '')
    is_json, document = health.parse_json(text)
    if not is_json:
        # Masked before it is cut, so no half secret is left at the cut.
        start = health.excerpt(text.strip(), 40, analysis.secrets)
        return None, 'body is not JSON (starts with %s)' % _quote(start, analysis.secrets)
    try:
        result = analysis.query.search(document)
    except health.jmespath.exceptions.JMESPathError as exc:
        return None, 'query %r could not be evaluated on the body (%s)' % (analysis.query_text, ' '.join(str(exc).split()))
    if result is None:
        return None, 'query %r found nothing (null) in the body' % analysis.query_text
    number = as_number(result)
    if number is None:
        hint = '; select one element, for example with [0]' if isinstance(result, list) else ''
        return None, ('query %r gave %s, which is not a finite number%s'
                      % (analysis.query_text, _quote(result, analysis.secrets), hint))
    return number, None


def measure(analysis, fetch=fetch_url, now=utc_now):
    """Take one measurement -> ``{'at', 'value', 'outcome', 'error'}``."""
    at = iso_utc(now())
    try:
        status, data = fetch(analysis.url, analysis.headers, analysis.timeout, analysis.validate_certs)
    except (OSError, http.client.HTTPException, UrlsConnectionError, ValueError) as exc:
        return measurement(at, None, ERROR, health.describe_error(exc, analysis.timeout), analysis.secrets)
    if not 200 <= status < 300:
        return measurement(at, None, ERROR, 'HTTP %d, expected a 2xx reply' % status, analysis.secrets)
    value, error = value_from_body(analysis, data)
    if error is not None:
        return measurement(at, None, ERROR, error, analysis.secrets)
    passed = COMPARISONS[analysis.comparison](value, analysis.threshold)
    return measurement(at, value, PASS if passed else FAIL, None, analysis.secrets)


def measurement(at, value, outcome, error, secrets=()):
    if outcome not in MEASUREMENT_OUTCOMES:
        raise ValueError('outcome must be one of %s, not %r' % (', '.join(MEASUREMENT_OUTCOMES), outcome))
    return dict(at=at, value=value, outcome=outcome, error=health.mask_secrets(error, list(secrets)))


# --------------------------------------------------------------------------- the run

class Tally(object):
    """Counts over the measurements so far."""

    def __init__(self):
        self.failures = 0
        self.errors = 0
        self.consecutive_errors = 0
        self.max_consecutive_errors = 0

    def add(self, outcome):
        if outcome == ERROR:
            self.errors += 1
            self.consecutive_errors += 1
            self.max_consecutive_errors = max(self.max_consecutive_errors, self.consecutive_errors)
        else:
            self.consecutive_errors = 0
            if outcome == FAIL:
                self.failures += 1


def early_verdict(analysis, tally):
    """FAIL or INCONCLUSIVE when a limit is exceeded (stop measuring), else None."""
    if tally.failures > analysis.failure_limit:
        return FAIL
    if tally.consecutive_errors > analysis.consecutive_error_limit:
        return INCONCLUSIVE
    return None


def final_verdict(analysis, measurements, tally, early):
    """``(verdict, reason)`` once measuring stopped."""
    made = len(measurements)
    last = measurements[-1]
    stopped = ' (stopped after measurement %d of %d)' % (made, analysis.count) if made < analysis.count else ''
    if early == FAIL:
        return FAIL, ('%d measurement(s) failed, more than failure_limit %d%s; last value %s is not %s %s.'
                      % (tally.failures, analysis.failure_limit, stopped, _last_value(measurements, FAIL),
                         analysis.comparison, analysis.threshold))
    if early == INCONCLUSIVE:
        return INCONCLUSIVE, ('%d consecutive measurement(s) could not be taken, more than consecutive_error_limit %d%s;'
                              ' last error: %s.' % (tally.consecutive_errors, analysis.consecutive_error_limit,
                                                    stopped, last['error']))
    if tally.errors == made:
        return INCONCLUSIVE, ('none of the %d measurement(s) could be taken; last error: %s.' % (made, last['error']))
    return PASS, ('%d of %d measurement(s) passed (value %s %s), %d failure(s) within failure_limit %d, %d error(s); '
                  'last value %s.' % (made - tally.failures - tally.errors, made, analysis.comparison,
                                      analysis.threshold, tally.failures, analysis.failure_limit, tally.errors,
                                      _last_value(measurements)))


def _last_value(measurements, outcome=None):
    for item in reversed(measurements):
        if item['value'] is not None and (outcome is None or item['outcome'] == outcome):
            return item['value']
    return None


def result_dict(analysis, verdict, reason, measurements, tally):
    return dict(
        verdict=verdict,
        reason=reason,
        measurements=measurements,
        failures=tally.failures,
        errors=tally.errors,
        max_consecutive_errors=tally.max_consecutive_errors,
        url=analysis.redacted_url,
        query=analysis.query_text,
        threshold=analysis.threshold,
        comparison=analysis.comparison,
    )


def run_analysis(analysis, fetch=fetch_url, sleep=time.sleep, now=utc_now):
    """Measure until the count is reached or a limit is exceeded; return the result dict."""
    measurements = []
    tally = Tally()
    early = None
    for number in range(analysis.count):
        if number and analysis.interval:
            sleep(analysis.interval)
        item = measure(analysis, fetch=fetch, now=now)
        measurements.append(item)
        tally.add(item['outcome'])
        early = early_verdict(analysis, tally)
        if early is not None:
            break
    verdict, reason = final_verdict(analysis, measurements, tally, early)
    return result_dict(analysis, verdict, reason, measurements, tally)


def skipped_result(analysis):
    """Check mode: the options are valid; nothing was requested."""
    return result_dict(analysis, SKIPPED, 'check mode: the options are valid; no measurement was taken.', [], Tally())


def should_fail(verdict, fail_on):
    """Whether the task fails for ``verdict`` under ``fail_on``; a skipped run never fails."""
    validate_fail_on(fail_on)
    if verdict == SKIPPED:
        return False
    return health.should_fail(verdict, fail_on)
