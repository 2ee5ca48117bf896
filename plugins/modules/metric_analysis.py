#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: metric_analysis
short_description: Measure one metric from an HTTP JSON endpoint several times and compare it with a threshold
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
    type: str
    required: true
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
    type: str
    required: true
  threshold:
    description:
      - The number the measured value is compared with - a number, or a string holding one (V("0.05")).
        Anything else fails the task before any request.
    type: raw
    required: true
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
'''

from ansible_collections.hotswap.deploy.plugins.module_utils.analysis import (
    COMPARISON_CHOICES,
    FAIL_ON_CHOICES,
    build_analysis,
    run_analysis,
    should_fail,
    skipped_result,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.redact import RedactingModule

ARGUMENT_SPEC = dict(
    url=dict(type='str', required=True),
    headers=dict(type='dict', no_log=True),
    validate_certs=dict(type='bool', default=True),
    timeout=dict(type='float', default=5),
    query=dict(type='str', required=True),
    threshold=dict(type='raw', required=True),
    comparison=dict(type='str', choices=list(COMPARISON_CHOICES), default='<='),
    count=dict(type='int', default=3),
    interval=dict(type='float', default=10),
    failure_limit=dict(type='int', default=0),
    consecutive_error_limit=dict(type='int', default=4),
    fail_on=dict(type='str', choices=list(FAIL_ON_CHOICES), default='fail_or_inconclusive'),
)


def main():
    module = RedactingModule(argument_spec=ARGUMENT_SPEC, secret_dicts=['headers'], supports_check_mode=True)
    params = module.params
    try:
        analysis = build_analysis(
            params['url'], params['query'], params['threshold'], comparison=params['comparison'],
            headers=params['headers'], validate_certs=params['validate_certs'], timeout=params['timeout'],
            count=params['count'], interval=params['interval'], failure_limit=params['failure_limit'],
            consecutive_error_limit=params['consecutive_error_limit'],
        )
    except HotswapError as exc:
        module.fail_json(msg=exc.msg, **exc.details)

    result = skipped_result(analysis) if module.check_mode else run_analysis(analysis)
    result['changed'] = False
    if should_fail(result['verdict'], params['fail_on']):
        module.fail_json(msg='metric analysis of %s: %s, %s Look at measurements for each value; set fail_on to '
                             'change when this task fails.' % (analysis.describe(), result['verdict'], result['reason']),
                         **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
