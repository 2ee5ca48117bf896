# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""PromQL instant queries against a Prometheus server's HTTP API (``/api/v1/query``).

A query is a template: ``$hosts`` (or ``${hosts}``) becomes the batch's hosts and ``$baseline_hosts``
the hosts still on the previous release, each as a regular expression that matches exactly those
names (``web\\\\.1|web\\\\.2``, escaped for a double-quoted PromQL string, for ``host=~"$hosts"``);
``$version``, ``$previous_version``, ``$app`` and any other variable given are put in as they are.
An unknown ``$name`` is an error before any request, so a typo cannot become a query that matches
nothing.

A result becomes ``{series name: number}``: a scalar is one series named ``scalar``; each vector
element is named after its ``host_label`` when it has one, else after its label set. A range vector
(matrix) is refused with how to fix the query. An empty vector is ``no data``: an error of the
measurement, never a pass.
"""

from __future__ import annotations

import json
import re
import string
from urllib.parse import urlencode

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

QUERY_PATH = '/api/v1/query'
HOST_VARIABLES = ('hosts', 'baseline_hosts')
# Any regular expression metacharacter, escaped for RE2; then every backslash doubled for the
# double-quoted PromQL string it is put into.
_RE_META = re.compile(r'([.^$*+?()\[\]{}|\\])')
_PROMQL_STRING = re.compile(r'(["\\])')
NOTHING = '^$'                        # the regex for an empty host list: matches no series that has the label


class QueryError(Exception):
    """A query Prometheus refused or answered with something that is not a usable result.

    ``permanent``: asking again will not help (a syntax error, a range vector); the analysis stops.
    """

    def __init__(self, msg, permanent=False):
        super(QueryError, self).__init__(msg)
        self.msg = msg
        self.permanent = permanent


def hosts_regex(hosts):
    """The names as one anchored-by-Prometheus alternation, for ``label=~"..."`` in a PromQL string."""
    names = [str(h) for h in hosts or [] if str(h)]
    if not names:
        return NOTHING
    # RE2 first (a backslash before each metacharacter), then the PromQL string (\\ and \" escaped).
    return '|'.join(_PROMQL_STRING.sub(r'\\\1', _RE_META.sub(r'\\\1', name)) for name in names)


class _Template(string.Template):
    # ${name} and $name with the usual identifier rule; $$ is a literal $.
    idpattern = r'[a-z_][a-z0-9_]*'
    flags = re.IGNORECASE


def template_names(template):
    """The variable names a query template uses."""
    names = set()
    for match in _Template.pattern.finditer(template):
        name = match.group('named') or match.group('braced')
        if name:
            names.add(name)
    return names


def check_template(template, known, what):
    """Refuse an unknown ``$name`` or a lone ``$`` before any request."""
    unknown = sorted(template_names(template) - set(known))
    if unknown:
        raise HotswapError('%s: the query uses $%s, which is not a query variable. Known: %s. Write $$ for a literal $.'
                           % (what, ', $'.join(unknown), ', '.join('$' + k for k in sorted(known))))
    try:
        _Template(template).substitute(dict((k, '') for k in known))
    except ValueError as exc:
        raise HotswapError('%s: the query has a "$" that starts no variable (%s). Write $$ for a literal $, or use one '
                           'of %s.' % (what, exc, ', '.join('$' + k for k in sorted(known))))


def render_query(template, variables):
    """The PromQL text: host lists as regexes, other variables as given."""
    values = {}
    for name, value in variables.items():
        values[name] = hosts_regex(value) if name in HOST_VARIABLES else ('' if value is None else str(value))
    return _Template(template).substitute(values)


def query_url(address, promql, at=None):
    params = [('query', promql)]
    if at is not None:
        params.append(('time', '%.3f' % at))
    return '%s%s?%s' % (address.rstrip('/'), QUERY_PATH, urlencode(params))


def _label_set(metric):
    return '{%s}' % ','.join('%s="%s"' % (k, v) for k, v in sorted((metric or {}).items()))


def _series_name(metric, host_label):
    metric = metric or {}
    if host_label and host_label in metric:
        return str(metric[host_label])
    return _label_set(metric)


def series_host(name):
    """The host a series name stands for: ``web1`` of ``web1`` and of ``web1 {code="500",host="web1"}``."""
    return name.split(' {', 1)[0]


def parse_reply(status, body, host_label=None):
    """``(status, body)`` of /api/v1/query -> ``{series: value string}``; QueryError otherwise."""
    text = body.decode('utf-8', errors='replace') if isinstance(body, bytes) else (body or '')
    try:
        doc = json.loads(text)
    except ValueError:
        raise QueryError('Prometheus answered HTTP %d with a body that is not its JSON API (starts with %s); is the '
                         'address the Prometheus server itself (http://<host>:9090)?' % (status, json.dumps(text[:40])))
    if not isinstance(doc, dict):
        raise QueryError('Prometheus answered HTTP %d with JSON that is not its API reply' % status)
    if doc.get('status') != 'success':
        kind, error = doc.get('errorType') or 'error', doc.get('error') or 'no error text'
        # bad_data: the query does not parse or cannot be evaluated; asking again gives the same answer.
        raise QueryError('Prometheus refused the query (HTTP %d, %s): %s' % (status, kind, error),
                         permanent=kind == 'bad_data')
    if not 200 <= status < 300:
        raise QueryError('Prometheus answered HTTP %d' % status)
    data = doc.get('data') or {}
    kind, result = data.get('resultType'), data.get('result')
    if kind == 'scalar':
        return {'scalar': result[1]}
    if kind == 'vector':
        elements = [(_series_name(e.get('metric'), host_label), e.get('metric'), (e.get('value') or [None, None])[1])
                    for e in result or []]
        names = [name for name, _metric, _value in elements]
        values = {}
        for name, metric, value in elements:
            # Several series of one host (a query not summed by host): each is judged, none hides another.
            if names.count(name) > 1:
                name = '%s %s' % (name, _label_set(metric))
            values[name] = value
        return values
    if kind == 'matrix':
        raise QueryError('the query gives a range vector (matrix); an analysis needs one number per series: wrap the '
                         'range in a function, e.g. rate(x[1m]) or avg_over_time(x[1m])', permanent=True)
    raise QueryError('the query gives a %s, not a number; it must give a scalar or an instant vector' % kind,
                     permanent=True)


def fetch_query(fetch, address, promql, headers, timeout, validate_certs, host_label=None, at=None):
    """Evaluate ``promql`` once -> ``{series: value string}``.

    Connection problems raise what ``fetch`` raises; Prometheus' own refusals raise QueryError.
    """
    status, body = fetch(query_url(address, promql, at), headers, timeout, validate_certs)
    return parse_reply(status, body, host_label)
