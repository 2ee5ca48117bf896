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
import json
import math
import operator
import threading
import time
import urllib.error

from ansible_collections.hotswap.deploy.plugins.module_utils import health, prometheus
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.request import open_url_same_origin, request_errors

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


PROVIDERS = ('json', 'prometheus')
METRIC_KEYS = ('name', 'provider', 'url', 'address', 'query', 'threshold', 'comparison', 'baseline', 'count',
               'interval', 'failure_limit', 'consecutive_error_limit', 'timeout', 'headers', 'validate_certs',
               'background')
HOST_VARIABLES = prometheus.HOST_VARIABLES
QUERY_VARIABLES = HOST_VARIABLES + ('version', 'previous_version', 'app')
MIN_DURATION_PAUSE = 1.0             # seconds between background measurements when interval is 0


class Analysis(object):
    """A validated metric: where and what to measure, how to judge it, and the limits.

    ``provider`` json: GET ``url``, JMESPath ``query`` on the body. prometheus: PromQL ``query`` (a
    template, module_utils/prometheus.py) against the server at ``address``. ``baseline``: None, or
    ``{'factor', 'offset'}`` - the limit is then the baseline hosts' value * factor + offset.
    """

    def __init__(self, url, query, query_text, threshold, comparison, headers, validate_certs, timeout,
                 count, interval, failure_limit, consecutive_error_limit, name=None, provider='json',
                 baseline=None, context=None, background=False):
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
        self.name = name
        self.provider = provider
        self.baseline = baseline
        self.context = context or {}
        self.background = background

    @property
    def secrets(self):
        return [value for value in self.headers.values() if value]

    @property
    def redacted_url(self):
        return health.redact_url(self.url)

    @property
    def judged_by_baseline(self):
        """Whether the limit comes from the baseline hosts (there are some to compare with)."""
        return self.baseline is not None and bool(self.context.get('baseline_hosts'))

    def limit_text(self):
        if self.judged_by_baseline:
            return 'baseline * %g + %g' % (self.baseline['factor'], self.baseline['offset'])
        return '%s' % self.threshold

    def describe(self):
        """``<url>: <query> <comparison> <limit>`` for messages (no password, no header values)."""
        return '%s: %s %s %s' % (self.redacted_url, self.query_text, self.comparison, self.limit_text())

    def promql(self, hosts_key='hosts'):
        """The query for the batch (or, hosts_key='baseline_hosts', for the baseline hosts)."""
        variables = dict(self.context)
        variables['hosts'] = self.context.get(hosts_key) or []
        return prometheus.render_query(self.query_text, variables)


def _baseline(baseline):
    if baseline is None:
        return None
    if not isinstance(baseline, dict) or set(baseline) - {'factor', 'offset'}:
        raise HotswapError('%s: baseline must be a dictionary with factor and offset, got %r. Write baseline: {factor: '
                           '1.5, offset: 0.001} to pass while value <= baseline value * 1.5 + 0.001.' % (_WHAT, baseline))
    out = {}
    for key, default in (('factor', 1), ('offset', 0)):
        number = as_number(baseline.get(key, default))
        if number is None:
            raise HotswapError('%s: baseline.%s is %r; it must be a number, e.g. factor 1.5 and offset 0.001.'
                               % (_WHAT, key, baseline.get(key)))
        out[key] = number
    return out


def build_analysis(url=None, query=None, threshold=None, comparison='<=', headers=None, validate_certs=True,
                   timeout=5, count=3, interval=10, failure_limit=0, consecutive_error_limit=4, name=None,
                   provider='json', address=None, baseline=None, context=None, background=False):
    """Validate every option and return an Analysis; raise HotswapError on the first mistake.

    The JMESPath query is compiled (the PromQL template's variables checked) here, so a bad one fails
    before any request.
    """
    what = _WHAT + (' (metric %s)' % name if name else '')
    if provider not in PROVIDERS:
        raise HotswapError('%s: provider %r is not one of %s.' % (what, provider, ', '.join(PROVIDERS)))
    if provider == 'prometheus':
        if not isinstance(query, str) or not query.strip():
            raise HotswapError('%s: query is missing. Give a PromQL query, e.g. sum(rate(errors_total{host=~"$hosts"}'
                               '[1m])) / sum(rate(requests_total{host=~"$hosts"}[1m])).' % what)
        health.validate_url(address, what=what + ' (address: the Prometheus server, e.g. http://127.0.0.1:9090)',
                            other_protocols='')
        given = set(HOST_VARIABLES) | set(k for k, v in ((context or {}).get('extra') or {}).items() if v is not None)
        prometheus.check_template(query, tuple(QUERY_VARIABLES) + tuple(sorted(given)), what)
        missing = sorted(prometheus.template_names(query) - given)
        if missing:
            raise HotswapError('%s: the query uses $%s, but no value was given for it. Give it in query_vars (the canary '
                               'role gives app, version and previous_version).' % (what, ', $'.join(missing)))
        compiled, target = None, address
    else:
        health.validate_url(url, what=what, other_protocols='')
        compiled, target = compile_query(query), url
    base = _baseline(baseline)
    if base is not None and provider != 'prometheus':
        raise HotswapError('%s: baseline needs provider prometheus (the same query over the hosts still on the previous '
                           'release). Remove baseline, or query Prometheus.' % what)
    if background and provider != 'prometheus':
        raise HotswapError('%s: background needs provider prometheus (measured once for the whole batch during the '
                           'bake). Remove background, or query Prometheus.' % what)
    header_map = health.validate_headers(headers, what=what)
    ctx = dict(context or {})
    ctx.update(ctx.pop('extra', {}))
    return Analysis(
        url=target,
        query=compiled,
        query_text=query,
        threshold=None if threshold is None and base is not None else parse_threshold(threshold),
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
        name=name, provider=provider, baseline=base, context=ctx, background=bool(background),
    )


def build_metrics(specs, context=None):
    """A list of metric dicts (METRIC_KEYS) -> Analyses, named and validated; names must be unique."""
    if not isinstance(specs, list) or not specs:
        raise HotswapError('%s: metrics must be a non-empty list of metrics, each a dictionary with name, query and '
                           'threshold (or baseline).' % _WHAT)
    out, names = [], set()
    for number, spec in enumerate(specs, 1):
        if not isinstance(spec, dict):
            raise HotswapError('%s: metric %d is %r, not a dictionary.' % (_WHAT, number, spec))
        unknown = sorted(set(spec) - set(METRIC_KEYS))
        if unknown:
            raise HotswapError('%s: metric %d has %s, which a metric does not take. A metric takes: %s.'
                               % (_WHAT, number, ', '.join(unknown), ', '.join(METRIC_KEYS)))
        name = str(spec.get('name') or 'metric %d' % number)
        if name in names:
            raise HotswapError('%s: two metrics are named %r. Give each its own name.' % (_WHAT, name))
        names.add(name)
        args = dict((k, v) for k, v in spec.items() if v is not None and k != 'name')
        args.setdefault('provider', 'prometheus' if 'address' in args else 'json')
        out.append(build_analysis(name=name, context=context, **args))
    return out


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


class MeasurementError(Exception):
    """No value could be measured; ``permanent`` when measuring again cannot help."""

    def __init__(self, msg, permanent=False):
        super(MeasurementError, self).__init__(msg)
        self.msg = msg
        self.permanent = permanent


def sample_json(analysis, fetch):
    """One value from the JSON endpoint -> ``{'value': number}``."""
    try:
        status, data = fetch(analysis.url, analysis.headers, analysis.timeout, analysis.validate_certs)
    except request_errors() as exc:
        raise MeasurementError(health.describe_error(exc, analysis.timeout))
    if not 200 <= status < 300:
        raise MeasurementError('HTTP %d, expected a 2xx reply' % status)
    value, error = value_from_body(analysis, data)
    if error is not None:
        raise MeasurementError(error)
    return {'value': value}


def _prometheus_values(analysis, fetch, hosts_key, at):
    """``{series: number}`` of the query over the hosts under ``hosts_key``; MeasurementError when there is none."""
    who = 'baseline' if hosts_key == 'baseline_hosts' else 'the batch'
    try:
        raw = prometheus.fetch_query(fetch, analysis.url, analysis.promql(hosts_key), analysis.headers,
                                     analysis.timeout, analysis.validate_certs, analysis.context.get('host_label'), at)
    except prometheus.QueryError as exc:
        raise MeasurementError(exc.msg, permanent=exc.permanent)
    except request_errors() as exc:
        raise MeasurementError('Prometheus at %s: %s' % (analysis.redacted_url, health.describe_error(exc, analysis.timeout)))
    if not raw:
        raise MeasurementError('no data for %s: the query gave no series (is every host scraped, are the labels in the '
                               'query right, has the window had traffic?)' % who)
    values, bad = {}, []
    for series, text in sorted(raw.items()):
        number = as_number(text)
        if number is None:
            bad.append('%s=%s' % (series, text))
        values[series] = number
    if bad:
        raise MeasurementError('no data for %s: %s is not a finite number (NaN is 0/0: no traffic in the window)'
                               % (who, ', '.join(bad)))
    hosts = [str(h) for h in analysis.context.get(hosts_key) or []]
    seen = set(prometheus.series_host(name) for name in values)
    if any(h in seen for h in hosts):
        missing = [h for h in hosts if h not in seen]
        if missing:
            raise MeasurementError('no data for %s: no series for %s' % (who, ', '.join(missing)))
    return values


def sample_prometheus(analysis, fetch, now):
    """The batch's series, and the baseline's value when the metric compares with it, at one instant."""
    at = now().timestamp()
    out = {'values': _prometheus_values(analysis, fetch, 'hosts', at)}
    if analysis.judged_by_baseline:
        base = _prometheus_values(analysis, fetch, 'baseline_hosts', at)
        # Several baseline series (a per-host query): their mean is the baseline.
        out['baseline'] = sum(base.values()) / len(base)
    return out


def _worst(comparison, values):
    """The series that decides: the first failing, else the one closest to the limit."""
    if comparison in ('<', '<='):
        return max(values.items(), key=lambda kv: kv[1])
    if comparison in ('>', '>='):
        return min(values.items(), key=lambda kv: kv[1])
    return sorted(values.items())[0]


def judge(analysis, sample):
    """``(value, outcome, extra)`` of one sample: every series must hold ``value <comparison> limit``."""
    compare = COMPARISONS[analysis.comparison]
    extra = {}
    if 'baseline' in sample:
        limit = sample['baseline'] * analysis.baseline['factor'] + analysis.baseline['offset']
        extra.update(baseline=sample['baseline'], limit=limit)
    else:
        limit = analysis.threshold
    if 'value' in sample:
        value = sample['value']
        return value, PASS if compare(value, limit) else FAIL, extra
    values = sample['values']
    failing = [(k, v) for k, v in sorted(values.items()) if not compare(v, limit)]
    series, value = failing[0] if failing else _worst(analysis.comparison, values)
    if len(values) > 1 or series != 'scalar':
        extra['values'] = values
        extra['series'] = series
    return value, FAIL if failing else PASS, extra


def measure(analysis, fetch=fetch_url, now=utc_now):
    """Take one measurement -> ``{'at', 'value', 'outcome', 'error'}`` (and, for Prometheus, ``values``: the
    value of each series, ``series``: the one that decided; with a baseline, ``baseline`` and ``limit``)."""
    at = iso_utc(now())
    try:
        if analysis.provider == 'prometheus':
            sample = sample_prometheus(analysis, fetch, now)
        else:
            sample = sample_json(analysis, fetch)
    except MeasurementError as exc:
        item = measurement(at, None, ERROR, exc.msg, analysis.secrets)
        if exc.permanent:
            item['permanent'] = True
        return item
    value, outcome, extra = judge(analysis, sample)
    item = measurement(at, value, outcome, None, analysis.secrets)
    item.update(extra)
    return item


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


def early_verdict(analysis, tally, last=None):
    """FAIL or INCONCLUSIVE when a limit is exceeded (stop measuring), else None.

    A permanent error (Prometheus refused the query as bad_data) stops at once: asking again gives the
    same answer.
    """
    if tally.failures > analysis.failure_limit:
        return FAIL
    if tally.consecutive_errors > analysis.consecutive_error_limit or (last or {}).get('permanent'):
        return INCONCLUSIVE
    return None


def final_verdict(analysis, measurements, tally, early, planned=None):
    """``(verdict, reason)`` once measuring stopped."""
    made = len(measurements)
    last = measurements[-1]
    planned = planned or analysis.count
    stopped = ' (stopped after measurement %d of %s)' % (made, planned) if early and made != planned else ''
    limit = analysis.limit_text()
    if early == FAIL:
        return FAIL, ('%d measurement(s) failed, more than failure_limit %d%s; last value %s is not %s %s%s.'
                      % (tally.failures, analysis.failure_limit, stopped, _last_value(measurements, FAIL),
                         analysis.comparison, limit, _limit_seen(measurements, FAIL)))
    if early == INCONCLUSIVE:
        if last.get('permanent'):
            return INCONCLUSIVE, ('the query cannot be measured%s: %s.' % (stopped, last['error']))
        return INCONCLUSIVE, ('%d consecutive measurement(s) could not be taken, more than consecutive_error_limit %d%s;'
                              ' last error: %s.' % (tally.consecutive_errors, analysis.consecutive_error_limit,
                                                    stopped, last['error']))
    if tally.errors == made:
        return INCONCLUSIVE, ('none of the %d measurement(s) could be taken; last error: %s.' % (made, last['error']))
    return PASS, ('%d of %d measurement(s) passed (value %s %s), %d failure(s) within failure_limit %d, %d error(s); '
                  'last value %s%s.' % (made - tally.failures - tally.errors, made, analysis.comparison,
                                        limit, tally.failures, analysis.failure_limit, tally.errors,
                                        _last_value(measurements), _limit_seen(measurements)))


def _limit_seen(measurements, outcome=None):
    """`` (baseline b, limit l)`` of the last such measurement judged against the baseline."""
    for item in reversed(measurements):
        if item['value'] is not None and (outcome is None or item['outcome'] == outcome):
            if 'limit' in item:
                return ' (baseline %s, limit %s)' % (_num(item['baseline']), _num(item['limit']))
            return ''
    return ''


def _num(value):
    return '%.6g' % value if isinstance(value, float) else str(value)


def _last_value(measurements, outcome=None):
    for item in reversed(measurements):
        if item['value'] is not None and (outcome is None or item['outcome'] == outcome):
            if item.get('series'):
                return '%s (%s)' % (_num(item['value']), item['series'])
            return item['value']
    return None


def result_dict(analysis, verdict, reason, measurements, tally):
    out = dict(
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
    if analysis.name is not None:
        out.update(name=analysis.name, provider=analysis.provider, baseline=analysis.baseline,
                   background=analysis.background)
        if analysis.provider == 'prometheus':
            out['promql'] = analysis.promql()
            if analysis.judged_by_baseline:
                out['baseline_promql'] = analysis.promql('baseline_hosts')
    return out


def no_baseline_result(analysis):
    """A baseline metric when no host is left on the previous release and no threshold was given."""
    return result_dict(analysis, SKIPPED, 'not measured: no host is still on the previous release to compare with '
                       '(the last batch); give the metric a threshold as well to judge such a batch.', [], Tally())


def run_analysis(analysis, fetch=fetch_url, sleep=time.sleep, now=utc_now, stop=None, duration=None,
                 clock=time.monotonic):
    """Measure until the count is reached (or, with ``duration``, every interval for that many seconds), a
    limit is exceeded, or ``stop`` (a threading.Event) is set; return the result dict."""
    if analysis.baseline is not None and not analysis.judged_by_baseline and analysis.threshold is None:
        return no_baseline_result(analysis)
    measurements = []
    tally = Tally()
    early = None
    started = clock()
    number = 0
    while True:
        item = measure(analysis, fetch=fetch, now=now)
        measurements.append(item)
        number += 1
        tally.add(item['outcome'])
        early = early_verdict(analysis, tally, item)
        if early is not None:
            break
        if duration is None:
            if number >= analysis.count:
                break
            pause = analysis.interval
        else:
            left = started + duration - clock()
            if left <= 0:
                break
            pause = min(analysis.interval or MIN_DURATION_PAUSE, left)
        if stop is not None and stop.is_set():
            break
        if pause:
            # An Event's wait ends early when another metric of the run has failed.
            if stop is not None:
                if stop.wait(pause):
                    break
            else:
                sleep(pause)
    verdict, reason = final_verdict(analysis, measurements, tally, early,
                                    planned=None if duration is None else '%g s' % duration)
    if stop is not None and stop.is_set() and early is None and (duration is not None or number < analysis.count):
        reason += ' Measuring stopped early: another metric failed.'
    return result_dict(analysis, verdict, reason, measurements, tally)


def skipped_result(analysis):
    """Check mode: the options are valid; nothing was requested."""
    return result_dict(analysis, SKIPPED, 'check mode: the options are valid; no measurement was taken.', [], Tally())


def combine_verdicts(verdicts):
    """fail if any failed; inconclusive if any was; skipped when every metric was; else pass."""
    verdicts = list(verdicts)
    if FAIL in verdicts:
        return FAIL
    if INCONCLUSIVE in verdicts:
        return INCONCLUSIVE
    if verdicts and all(v == SKIPPED for v in verdicts):
        return SKIPPED
    return PASS


def run_metrics(analyses, fetch=fetch_url, now=utc_now, duration=None, clock=time.monotonic):
    """Every metric at once, each on its own schedule; the first failure stops the others.

    Returns ``{verdict, reason, metrics: [result of each, in the order given]}``.
    """
    stop = threading.Event()
    results = [None] * len(analyses)

    def one(index, analysis):
        try:
            results[index] = run_analysis(analysis, fetch=fetch, now=now, stop=stop, duration=duration, clock=clock)
        except Exception as exc:  # pylint: disable=broad-except
            # A bug here must not hang or pass the batch: that metric is inconclusive.
            results[index] = result_dict(analysis, INCONCLUSIVE, 'the analysis stopped on an error: %s' % exc, [],
                                         Tally())
        if results[index]['verdict'] == FAIL:
            stop.set()

    threads = [threading.Thread(target=one, args=(i, a)) for i, a in enumerate(analyses)]
    for thread in threads:
        thread.daemon = True
        thread.start()
    for thread in threads:
        thread.join()
    return combined_result(results)


def measurements_text(measurements):
    """``0.0012 (web1), 0.2 vs limit 0.031, error`` - each measurement in a few characters."""
    out = []
    for item in measurements:
        if item['value'] is None:
            out.append('error')
            continue
        text = _num(item['value'])
        if item.get('series'):
            text += ' (%s)' % item['series']
        if 'limit' in item:
            text += ' vs limit %s' % _num(item['limit'])
        out.append(text)
    return ', '.join(out) or 'none'


def combined_result(results):
    """The verdict of several metrics; each result gains ``summary``: its name, verdict and measurements."""
    for r in results:
        r['summary'] = '%s %s [%s]' % (r.get('name'), r['verdict'], measurements_text(r['measurements']))
    verdict = combine_verdicts(r['verdict'] for r in results)
    reason = '; '.join('%s %s: %s' % (r.get('name'), r['verdict'], r['reason']) for r in results)
    return dict(verdict=verdict, reason=reason, metrics=results, summary='; '.join(r['summary'] for r in results))


def should_fail(verdict, fail_on):
    """Whether the task fails for ``verdict`` under ``fail_on``; a skipped run never fails."""
    validate_fail_on(fail_on)
    if verdict == SKIPPED:
        return False
    return health.should_fail(verdict, fail_on)
