#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: metric_analysis
short_description: Measure metrics (an HTTP JSON endpoint or Prometheus) several times and judge them
version_added: 0.3.0
description:
  - Analysis of one metric with the semantics of an Argo Rollouts AnalysisRun. Takes O(count) measurements,
    O(interval) seconds apart. A measurement C(GET)s O(url), parses the body as JSON, evaluates the JMESPath
    O(query) on it and compares the number it selects with O(threshold) - V(value <comparison> threshold).
  - Every measurement has one of three outcomes.
    V(pass) - the value was measured and the comparison holds.
    V(fail) - the value was measured and the comparison is false.
    V(error) - no value could be measured - connection refused, timeout, DNS or TLS failure, an HTTP status
    outside 2xx, a body that is not JSON, a query result that is missing, V(null), not a number, V(NaN) or
    infinite. Errors are counted apart from failures, as in Argo Rollouts.
  - The verdict (RV(verdict)) is V(fail) as soon as more than O(failure_limit) measurements failed, and
    V(inconclusive) as soon as more than O(consecutive_error_limit) measurements in a row were errors; in both
    cases no further measurement is taken. After the last measurement it is V(inconclusive) when not a single
    value could be measured, else V(pass).
  - In check mode every option is validated (URL, JMESPath O(query), O(threshold), limits) and the verdict is
    V(skipped) - no request is sent. The C(hotswap.deploy.canary) role runs this module once in check
    mode before the rollout, so a bad query or threshold fails the play before any host changes.
  - O(metrics) judges several metrics at once, each on its own schedule, from a JSON endpoint or a
    Prometheus server (V(provider=prometheus) - a PromQL instant query, C(/api/v1/query)). The verdict is
    V(fail) when any metric fails (the others stop measuring then), V(inconclusive) when any could not be
    measured, else V(pass); RV(metrics) has each metric's own result.
  - A PromQL query is a template. V($hosts) is O(hosts) and V($baseline_hosts) is O(baseline_hosts), each
    as a regular expression matching exactly those names, for C(label=~"$hosts"); V($version),
    V($previous_version), V($app) and the keys of O(query_vars) are put in as given. V($$) is a literal
    V($). An unknown variable fails the task before any request.
  - Each series of a vector result is judged - every one must pass - and named after its O(host_label).
    A query that gives no series, or a value that is V(NaN) (no traffic in the window), or no series for one of
    O(hosts) when the series carry O(host_label), is a measurement V(error) - no data is never a pass. A query
    Prometheus refuses as C(bad_data) (a syntax error) makes the metric V(inconclusive) at once.
  - A metric with C(baseline) is judged against the hosts still on the previous release over the same instant
    and window - the same query with V($hosts) set to O(baseline_hosts) - and passes while
    V(value <comparison> baseline * factor + offset). A fleet-wide incident raises both, a canary-only
    regression only the canary. With no O(baseline_hosts) (the last batch) it is judged against its
    C(threshold), or not measured (V(skipped)) when it has none.
  - The module only reads. It never reports C(changed).
  - Runs where the task runs. On the target host it sees local ports (for example
    C(http://127.0.0.1:8080/stats)); with C(delegate_to) set to C(localhost) it queries from the controller
    (for example a Prometheus server).
author:
  - hotswap.deploy developers (@hotswap-deploy)
options:
  url:
    description:
      - An C(http://) or C(https://) URL to C(GET) for each measurement.
      - Redirects are followed (at most 10). A redirect to another origin (another scheme, host or port, and
        always https to http) is followed without O(headers) - the behaviour of curl and Python requests.
      - A password in the URL and the values of query parameters whose names look like credentials
        (signature, sig, token, key, pass, pwd, secret, auth, credential, session) are sent but replaced by
        C(********) in everything returned or logged.
      - One metric given by the top-level options; use O(metrics) for several, or for Prometheus.
      - Mutually exclusive with O(metrics); one of the two is required.
    type: str
  headers:
    description:
      - HTTP request headers to send, for example C(Authorization).
      - The values are treated as secrets - never logged and never returned, also when the dictionary is
        given as a JSON string; any occurrence in a returned error text is replaced by C(********).
      - Sent only to the origin of O(url); a redirect to another origin gets none of them.
    type: dict
  validate_certs:
    description:
      - Verify the server's TLS certificate for C(https://) URLs.
      - Set to V(false) only for a self-signed certificate you trust; a verification failure is a measurement
        V(error).
    type: bool
    default: true
  timeout:
    description:
      - Seconds one request may take (connect and each read). Must be greater than 0.
    type: float
    default: 5
  query:
    description:
      - A JMESPath expression evaluated on the JSON body that selects the number to compare, for example
        V(error_rate) or, for a Prometheus instant query, V(data.result[0].value[1]).
      - The result must be a number or a string holding one (Prometheus returns V("0.013")). V(true) and
        V(false) are not numbers. Anything else makes the measurement an V(error).
      - An invalid expression fails the task before any request.
      - Needs the C(jmespath) Python library where the module runs.
      - Required with O(url).
    type: str
  threshold:
    description:
      - The number the measured value is compared with - a number, or a string holding one (V("0.05")).
        Anything else fails the task before any request.
      - Required with O(url).
    type: raw
  comparison:
    description:
      - How the value is compared with O(threshold); a measurement passes when V(value <comparison> threshold)
        holds. The default V(<=) suits error rates and latencies.
    type: str
    choices: ['<', '<=', '>', '>=', '==', '!=']
    default: '<='
  count:
    description:
      - How many measurements to take (at most; a limit exceeded stops earlier). At least 1.
    type: int
    default: 3
  interval:
    description:
      - Seconds to wait after a measurement before taking the next one. V(0) or more.
    type: float
    default: 10
  failure_limit:
    description:
      - How many failed measurements are tolerated. One more makes the verdict V(fail) at once.
        V(0) (the default, as in Argo Rollouts) means the first failure fails the analysis.
    type: int
    default: 0
  consecutive_error_limit:
    description:
      - How many measurement errors in a row are tolerated. One more makes the verdict V(inconclusive) at once.
        Errors that are not consecutive never trip it.
    type: int
    default: 4
  metrics:
    description:
      - Several metrics judged at once (each in its own thread, on its own O(metrics[].count) and
        O(metrics[].interval)); the first failure stops the others.
      - Mutually exclusive with O(url).
    type: list
    elements: dict
    suboptions:
      name:
        description: The metric's name in results and messages; must be unique.
        type: str
        required: true
      provider:
        description:
          - V(json) - C(GET) O(metrics[].url) and select the number with the JMESPath O(metrics[].query), as the
            top-level options do. V(prometheus) - the PromQL O(metrics[].query) against O(metrics[].address).
          - Default V(prometheus) when O(metrics[].address) is given, else V(json).
        type: str
        choices: [json, prometheus]
      url:
        description: V(json) - the URL, as O(url).
        type: str
      address:
        description: V(prometheus) - the server's base URL, for example C(http://127.0.0.1:9090).
        type: str
      query:
        description: The JMESPath expression (V(json)) or the PromQL template (V(prometheus)).
        type: str
        required: true
      threshold:
        description:
          - The fixed limit, as O(threshold). Required unless O(metrics[].baseline) is given; with it, the limit
            for a batch that has no baseline hosts.
        type: raw
      comparison:
        description: As O(comparison).
        type: str
        choices: ['<', '<=', '>', '>=', '==', '!=']
        default: '<='
      baseline:
        description:
          - Judge against the baseline hosts (O(baseline_hosts)) instead of a fixed limit - V(prometheus) only.
            Their value is the same query with V($hosts) set to O(baseline_hosts), at the same instant (the mean
            when it gives several series).
        type: dict
        suboptions:
          factor:
            description: The baseline's value is multiplied by this.
            type: float
            default: 1
          offset:
            description: Then this is added - a floor for a baseline of 0.
            type: float
            default: 0
      count:
        description: As O(count).
        type: int
        default: 3
      interval:
        description: As O(interval).
        type: float
        default: 10
      failure_limit:
        description: As O(failure_limit).
        type: int
        default: 0
      consecutive_error_limit:
        description: As O(consecutive_error_limit).
        type: int
        default: 4
      timeout:
        description: As O(timeout).
        type: float
        default: 5
      headers:
        description: As O(headers) - secrets, never logged or returned.
        type: dict
      validate_certs:
        description: As O(validate_certs).
        type: bool
        default: true
      background:
        description:
          - Marks a metric for the C(hotswap.deploy.canary) role's background analysis (measured from the
            batch's start, during the bake) - V(prometheus) only. The module itself does not read it; O(duration)
            sets how long to measure.
        type: bool
        default: false
  hosts:
    description: The batch's hosts, as named by O(host_label) - V($hosts) in a PromQL query.
    type: list
    elements: str
    default: []
  baseline_hosts:
    description: The hosts still on the previous release - V($baseline_hosts), and the baseline of O(metrics[].baseline).
    type: list
    elements: str
    default: []
  host_label:
    description:
      - The Prometheus label that names a host in the series (its value is compared with O(hosts)), for
        example V(instance) or a label your relabelling sets.
    type: str
    default: instance
  query_vars:
    description:
      - More variables for PromQL templates (V($name)); V(version), V(previous_version) and V(app) are the usual ones.
    type: dict
    default: {}
  duration:
    description:
      - Measure every interval for this many seconds instead of O(count) times (background analysis; at
        least one measurement). A failure still stops at once.
    type: float
extends_documentation_fragment:
  - hotswap.deploy.verdict
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Validates every option and returns RV(verdict=skipped) without sending any request.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - jmespath (on the host where the module runs)
notes:
  - Proxies from the environment (C(http_proxy), C(https_proxy), C(no_proxy)) are honoured as by
    M(ansible.builtin.uri); set C(no_proxy) for local addresses if a proxy is configured.
  - Each measurement reads at most 1 MiB of the body.
seealso:
  - module: hotswap.deploy.health_check
'''

EXAMPLES = r'''
- name: Error rate of the new release, measured on the host (the demo app's /stats)
  hotswap.deploy.metric_analysis:
    url: http://127.0.0.1:8080/stats
    query: error_rate
    threshold: 0.01
    count: 5
    interval: 10

- name: Check the query and threshold before touching any host (no request in check mode)
  hotswap.deploy.metric_analysis:
    url: http://127.0.0.1:9090/api/v1/query?query=job:errors:ratio5m
    query: data.result[0].value[1]
    threshold: "0.05"
  check_mode: true
  run_once: true
  delegate_to: localhost

- name: Prometheus from the controller, tolerate one bad sample, decide about inconclusive in the play
  hotswap.deploy.metric_analysis:
    url: http://127.0.0.1:9090/api/v1/query?query=job:errors:ratio5m
    headers:
      Authorization: "Bearer {{ prometheus_token }}"
    query: data.result[0].value[1]
    threshold: 0.05
    count: 6
    interval: 30
    failure_limit: 1
    fail_on: fail
  delegate_to: localhost
  register: analysis

- name: Stop for a human when the metric could not be measured
  ansible.builtin.pause:
    prompt: "Analysis inconclusive: {{ analysis.reason }}"
    minutes: 30
  when: analysis.verdict == 'inconclusive'

- name: Two Prometheus metrics for the batch, one against the hosts still on the old release
  hotswap.deploy.metric_analysis:
    metrics:
      - name: error-ratio
        address: http://127.0.0.1:9090
        query: >-
          sum(rate(http_requests_total{host=~"$hosts",code=~"5.."}[1m]))
          / sum(rate(http_requests_total{host=~"$hosts"}[1m]))
        baseline: {factor: 1.5, offset: 0.001}
        threshold: 0.01
        count: 5
        interval: 10
      - name: p99
        address: http://127.0.0.1:9090
        query: >-
          histogram_quantile(0.99, sum by (le, host)
          (rate(http_request_duration_seconds_bucket{host=~"$hosts"}[1m])))
        threshold: 0.25
        count: 5
        interval: 10
    hosts: "{{ ansible_play_batch }}"
    baseline_hosts: "{{ ansible_play_hosts_all | difference(ansible_play_batch) }}"
    host_label: host
  delegate_to: localhost
  run_once: true

- name: Throughput must stay above a floor
  hotswap.deploy.metric_analysis:
    url: http://127.0.0.1:8080/stats
    query: requests
    comparison: '>='
    threshold: 100
    count: 1
'''

RETURN = r'''
verdict:
  description: V(pass), V(fail), V(inconclusive), or V(skipped) in check mode (see the description for the rules).
  returned: always
  type: str
  sample: pass
reason:
  description: Why, in one sentence.
  returned: always
  type: str
  sample: "3 of 3 measurement(s) passed (value <= 0.01), 0 failure(s) within failure_limit 0, 0 error(s); last value 0."
measurements:
  description: One entry per measurement taken, oldest first (empty in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    at:
      description: When the measurement started, UTC, ISO 8601 with a C(Z) suffix.
      type: str
    value:
      description: The number measured, or V(null) for an V(error).
      type: float
    outcome:
      description: V(pass), V(fail) or V(error).
      type: str
    error:
      description: Why no value could be measured, or V(null).
      type: str
  sample:
    - {"at": "2026-11-21T14:30:05.123Z", "value": null, "outcome": "error",
       "error": "connection refused (nothing is listening there yet)"}
    - {"at": "2026-11-21T14:30:15.130Z", "value": 0.002, "outcome": "pass", "error": null}
failures:
  description: Number of measurements that failed the comparison.
  returned: always
  type: int
  sample: 0
errors:
  description: Number of measurements that could not be taken.
  returned: always
  type: int
  sample: 1
max_consecutive_errors:
  description: The longest run of consecutive errors.
  returned: always
  type: int
  sample: 1
url:
  description: O(url) with any password and credential-like query parameter value replaced by C(********).
  returned: always
  type: str
  sample: http://127.0.0.1:8080/stats
query:
  description: O(query) as given.
  returned: always
  type: str
  sample: error_rate
threshold:
  description: O(threshold) as a number.
  returned: always
  type: float
  sample: 0.01
comparison:
  description: O(comparison).
  returned: always
  type: str
  sample: '<='
metrics:
  description:
    - With O(metrics) - one result per metric, in the order given, each with the keys above (RV(verdict),
      RV(reason), RV(measurements), RV(failures), RV(errors), ...) and C(name), C(provider), C(baseline),
      C(background); for V(prometheus) C(promql) (the query as sent for O(hosts)) and, judged against the
      baseline, C(baseline_promql).
    - A Prometheus measurement also has C(values) (each series' number), C(series) (the one that decided)
      and, against the baseline, C(baseline) and C(limit).
  returned: when O(metrics) is given
  type: list
  elements: dict
  sample:
    - name: error-ratio
      verdict: fail
      reason: "1 measurement(s) failed, more than failure_limit 0 ..."
      provider: prometheus
      promql: sum(rate(x{host=~"web1"}[1m]))
      measurements:
        - {"at": "2026-12-06T10:00:00.000Z", "value": 0.2, "outcome": "fail", "error": null,
           "values": {"web1": 0.2}, "series": "web1", "baseline": 0.0, "limit": 0.001}
summary:
  description: With O(metrics) - each metric's name, verdict and measurements in one line.
  returned: when O(metrics) is given
  type: str
  sample: "error-ratio fail [0.51 (web1) vs limit 0.031]; p99 pass [0.021 (web1), 0.02 (web1)]"
'''

from ansible_collections.hotswap.deploy.plugins.module_utils.analysis import (
    COMPARISON_CHOICES,
    FAIL_ON_CHOICES,
    PROVIDERS,
    build_analysis,
    build_metrics,
    combined_result,
    run_analysis,
    run_metrics,
    should_fail,
    skipped_result,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.redact import RedactingModule

# How one metric is measured and judged: the top-level options (one JSON metric) and each of metrics.
MEASURE_SPEC = dict(
    url=dict(type='str'),
    query=dict(type='str'),
    threshold=dict(type='raw'),
    comparison=dict(type='str', choices=list(COMPARISON_CHOICES), default='<='),
    count=dict(type='int', default=3),
    interval=dict(type='float', default=10),
    failure_limit=dict(type='int', default=0),
    consecutive_error_limit=dict(type='int', default=4),
    timeout=dict(type='float', default=5),
    headers=dict(type='dict', no_log=True),
    validate_certs=dict(type='bool', default=True),
)

METRIC_SPEC = dict(
    MEASURE_SPEC,
    name=dict(type='str', required=True),
    provider=dict(type='str', choices=list(PROVIDERS)),
    address=dict(type='str'),
    query=dict(type='str', required=True),
    baseline=dict(type='dict', options=dict(factor=dict(type='float', default=1), offset=dict(type='float', default=0))),
    background=dict(type='bool', default=False),
)

ARGUMENT_SPEC = dict(
    MEASURE_SPEC,
    metrics=dict(type='list', elements='dict', options=METRIC_SPEC),
    hosts=dict(type='list', elements='str', default=[]),
    baseline_hosts=dict(type='list', elements='str', default=[]),
    host_label=dict(type='str', default='instance'),
    query_vars=dict(type='dict', default={}),
    duration=dict(type='float'),
    fail_on=dict(type='str', choices=list(FAIL_ON_CHOICES), default='fail_or_inconclusive'),
)


def single_metric(module):
    p = module.params
    return build_analysis(
        p['url'], p['query'], p['threshold'], comparison=p['comparison'], headers=p['headers'],
        validate_certs=p['validate_certs'], timeout=p['timeout'], count=p['count'], interval=p['interval'],
        failure_limit=p['failure_limit'], consecutive_error_limit=p['consecutive_error_limit'],
    )


def query_context(params):
    return dict(hosts=params['hosts'], baseline_hosts=params['baseline_hosts'], host_label=params['host_label'],
                extra=params['query_vars'])


def main():
    module = RedactingModule(argument_spec=ARGUMENT_SPEC, secret_dicts=['headers', 'metrics.headers'],
                             supports_check_mode=True, mutually_exclusive=[('url', 'metrics')],
                             required_one_of=[('url', 'metrics')], required_by={'url': ('query', 'threshold')})
    params = module.params
    try:
        if params['metrics']:
            analyses = build_metrics(params['metrics'], query_context(params))
        else:
            analyses = [single_metric(module)]
        if params['duration'] is not None and params['duration'] < 0:
            raise HotswapError('configuring the metric analysis: duration is %r; give 0 or more seconds.'
                               % params['duration'])
    except HotswapError as exc:
        module.fail_json(msg=exc.msg, **exc.details)

    if params['metrics']:
        if module.check_mode:
            result = combined_result([skipped_result(a) for a in analyses])
        else:
            result = run_metrics(analyses, duration=params['duration'])
        what = 'metrics %s' % ', '.join(a.name for a in analyses)
    else:
        analysis = analyses[0]
        result = skipped_result(analysis) if module.check_mode else run_analysis(analysis, duration=params['duration'])
        what = analysis.describe()
    result['changed'] = False
    if should_fail(result['verdict'], params['fail_on']):
        module.fail_json(msg='metric analysis of %s: %s, %s Look at measurements for each value; set fail_on to '
                             'change when this task fails.' % (what, result['verdict'], result['reason']),
                         **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
