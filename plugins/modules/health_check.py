#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: health_check
short_description: Probe a service over HTTP(S), TCP or a command and report pass, fail or inconclusive
version_added: 0.1.0
description:
  - Runs one probe (exactly one of O(url), O(tcp) or O(command)) up to O(retries) + 1 times, O(interval)
    seconds apart, until O(successes) consecutive attempts pass or the attempts or the O(deadline) run out.
  - Every attempt has one of three outcomes, as in Argo Rollouts.
    V(pass) - the target answered and every condition holds.
    V(fail) - the target answered wrongly - an HTTP status not in O(status_code), a body that does not
    match O(body_regex), a false O(json_query) or a body that is not JSON when O(json_query) is set,
    another version than O(expected_version), a command that exited non-zero.
    V(inconclusive) - nothing could be measured - connection refused, timeout, DNS failure, TLS handshake or
    certificate verification failure, connection closed without a reply, a command that could not be
    started or was killed at O(timeout).
  - The verdict (RV(outcome)) is V(pass) once O(successes) consecutive attempts passed. Otherwise it is the
    outcome of the last attempt - V(fail) when the app answered wrongly, V(inconclusive) when it could not be
    measured - or V(inconclusive) when the last attempt passed but the run of passes was shorter than
    O(successes) when the attempts ran out.
  - A V(fail) attempt does not stop the loop, so an app that answers 503 while it warms up gets the
    remaining attempts.
  - A probe only reads, so it also runs in check mode. The module never reports C(changed).
  - Runs where the task runs. On the target host it sees the local port (for example
    C(http://127.0.0.1:8080/healthz)); with C(delegate_to) set to C(localhost) it runs on the controller and sees
    what users see (the public name, the load balancer, TLS).
author:
  - hotswap.deploy developers (@hotswap-deploy)
options:
  url:
    description:
      - An C(http://) or C(https://) URL to C(GET).
      - Redirects are followed (at most 10); the status of the final reply is checked. A redirect to another
        origin (another scheme, host or port, and always https to http) is followed without O(headers) - the
        behaviour of curl and Python requests - so a token never reaches a host it was not given for.
      - A password in the URL (C(http://user:password@host/)) and the values of query parameters whose names
        look like credentials (signature, sig, token, key, pass, pwd, secret, auth, credential, session - for
        example C(X-Amz-Signature)) are sent, but replaced by C(********) in everything returned or logged.
      - Exactly one of O(url), O(tcp) and O(command) is required.
    type: str
  tcp:
    description:
      - A C(host:port) to open a TCP connection to (C([::1]:8080) for an IPv6 address).
      - A completed connect passes; anything else is V(inconclusive). A tcp probe never gives V(fail).
      - O(body_regex), O(json_query), O(expected_version) and O(headers) cannot be used with it.
      - Exactly one of O(url), O(tcp) and O(command) is required.
    type: str
  command:
    description:
      - A command to run on the host where the task runs; exit code 0 passes, any other code fails.
      - A list is the argv. A string is split like a shell would split it, but no shell runs it; for pipes
        or redirections use V([/bin/sh, -c, "..."]).
      - O(body_regex), O(json_query) and O(expected_version), when set, are checked against its stdout.
      - The command is killed when it runs longer than O(timeout); that attempt is V(inconclusive).
      - Exactly one of O(url), O(tcp) and O(command) is required.
    type: raw
  status_code:
    description:
      - HTTP status codes that count as healthy. Only used with O(url).
    type: list
    elements: int
    default: [200]
  body_regex:
    description:
      - A Python regular expression that must be found somewhere in the body (O(url)) or stdout (O(command)).
    type: str
  json_query:
    description:
      - A JMESPath expression evaluated on the JSON body (O(url)) or stdout (O(command)); the attempt passes
        only when the result is true in the JMESPath sense (V(false), V(null), empty string, empty list and
        empty object are false; any number, V(0) included, is true). Write a comparison such as
        V(status == 'ok' && checks.db == 'up').
      - A body that is not JSON fails the attempt. An invalid expression fails the task before any attempt.
      - Needs the C(jmespath) Python library where the probe runs; if the target lacks it, install it there
        or run the probe on the controller with C(delegate_to) set to C(localhost).
    type: str
  expected_version:
    description:
      - The version the service must report.
      - When the body is a JSON object, it is compared with its top-level C(version) field (as a string;
        quote versions in JSON so V(1.10) stays V(1.10)); a JSON object without that field fails.
        Any other body is compared as text, with leading and trailing whitespace removed.
    type: str
  headers:
    description:
      - HTTP request headers to send, for example C(Authorization). Only used with O(url).
      - The values are treated as secrets - never logged and never returned, also when the dictionary is
        given as a JSON string; any occurrence in a returned body excerpt, reason or version is replaced by
        C(********) before the text is cut to an excerpt.
      - Sent only to the origin of O(url); a redirect to another origin gets none of them.
    type: dict
  validate_certs:
    description:
      - Verify the server's TLS certificate for C(https://) URLs.
      - Set to V(false) only for a self-signed certificate you trust; a verification failure is
        V(inconclusive) with a reason that says so.
    type: bool
    default: true
  timeout:
    description:
      - Seconds one attempt may take (connect and each read for O(url), the connect for O(tcp), the whole
        run for O(command)). Must be greater than 0.
    type: float
    default: 5
  retries:
    description:
      - Attempts after the first one; the probe makes at most O(retries) + 1 attempts. V(0) means a single
        attempt.
      - To wait for a service for up to a time limit, set a generous O(retries) and a O(deadline).
    type: int
    default: 0
  interval:
    description:
      - Seconds to wait between two attempts.
    type: float
    default: 1
  successes:
    description:
      - Consecutive passing attempts required for RV(outcome=pass). Must be at most O(retries) + 1.
    type: int
    default: 1
  deadline:
    description:
      - Overall limit in seconds, counted from the start of the first attempt. No attempt starts that could
        not start before the deadline, and an attempt's O(timeout) is cut to the time left.
      - The first attempt always runs. Without a deadline only O(retries) limits the probe.
    type: float
extends_documentation_fragment:
  - hotswap.deploy.verdict
  - hotswap.deploy.version
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: A probe only reads, so it runs in check mode too, and the result is real.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - jmespath, only when O(json_query) is used (on the host where the probe runs)
notes:
  - For O(url), proxies from the environment (C(http_proxy), C(https_proxy), C(no_proxy)) are honoured as by
    M(ansible.builtin.uri); set C(no_proxy) for local addresses if a proxy is configured.
  - At most the last 50 observations are returned; RV(attempts) counts all of them.
seealso:
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
'''

EXAMPLES = r'''
- name: Wait (on the target) until the new release answers on its local port with the new version
  hotswap.deploy.health_check:
    url: http://127.0.0.1:8080/healthz
    expected_version: "{{ app_version }}"
    retries: 30
    interval: 2
    successes: 3
    deadline: 90

- name: Check what users see, from the controller, through the load balancer
  hotswap.deploy.health_check:
    url: "https://{{ inventory_hostname }}/healthz"
    headers:
      Authorization: "Bearer {{ health_token }}"
    json_query: "status == 'ok' && checks.db == 'up'"
    retries: 10
    interval: 3
  delegate_to: localhost

- name: Probe and decide in the play (an inconclusive verdict counts against an error budget)
  hotswap.deploy.health_check:
    url: http://127.0.0.1:8080/readyz
    status_code: [200, 204]
    body_regex: '"ready":\s*true'
    retries: 5
    fail_on: never
  register: probe

- name: Roll back when the app answered wrongly
  ansible.builtin.include_role:
    name: hotswap.deploy.rollback
  when: probe.outcome == 'fail'

- name: Is anything listening yet?
  hotswap.deploy.health_check:
    tcp: 127.0.0.1:8080
    retries: 20
    interval: 0.5

- name: Ask the binary itself
  hotswap.deploy.health_check:
    command: [/opt/myapp/current/myapp, --version]
    expected_version: "{{ app_version }}"
'''

RETURN = r'''
outcome:
  description: The verdict - V(pass), V(fail) or V(inconclusive) (see the description for the rules).
  returned: always
  type: str
  sample: pass
reason:
  description: Why, in one sentence, including the last attempt's own reason.
  returned: always
  type: str
  sample: "3 consecutive passes by attempt 5 of 31: HTTP 200, version 1.4.2"
attempts:
  description: Number of attempts made.
  returned: always
  type: int
  sample: 5
counts:
  description: Number of attempts per outcome.
  returned: always
  type: dict
  sample: {"pass": 3, "fail": 1, "inconclusive": 1}
observations:
  description: One entry per attempt, oldest first (at most the last 50).
  returned: always
  type: list
  elements: dict
  contains:
    attempt:
      description: Attempt number, from 1.
      type: int
    outcome:
      description: V(pass), V(fail) or V(inconclusive).
      type: str
    reason:
      description: "What was seen, for example C(HTTP 503: status 503 is not one of [200]) or
        C(connection refused (nothing is listening there yet))."
      type: str
    status:
      description: HTTP status of the reply, or V(null) when there was none (or the probe is not O(url)).
      type: int
    version:
      description: Version seen (JSON C(version) field, or the stripped body when compared with
        O(expected_version)), or V(null).
      type: str
    elapsed_ms:
      description: Duration of the attempt in milliseconds.
      type: int
    body:
      description: The first 512 characters of the body or stdout, with header values masked, or V(null).
      type: str
  sample:
    - {"attempt": 1, "outcome": "inconclusive", "reason": "connection refused (nothing is listening there yet)",
       "status": null, "version": null, "elapsed_ms": 1, "body": null}
    - {"attempt": 2, "outcome": "pass", "reason": "HTTP 200, version 1.4.2", "status": 200,
       "version": "1.4.2", "elapsed_ms": 3, "body": "{\"status\": \"ok\", \"version\": \"1.4.2\"}"}
version:
  description: The version seen by the most recent attempt that saw one, or V(null).
  returned: always
  type: str
  sample: 1.4.2
status:
  description: The HTTP status of the most recent attempt that got a reply, or V(null).
  returned: always
  type: int
  sample: 200
elapsed:
  description: Seconds from the start of the first attempt to the end of the last one.
  returned: always
  type: float
  sample: 4.213
'''

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.health import HEALTH_SPEC, PROBE_OPTIONS, check_health
from ansible_collections.hotswap.deploy.plugins.module_utils.redact import RedactingModule


def main():
    module = RedactingModule(
        argument_spec=HEALTH_SPEC,
        secret_dicts=['headers'],
        mutually_exclusive=[[name for name, _kind in PROBE_OPTIONS]],
        required_one_of=[[name for name, _kind in PROBE_OPTIONS]],
        supports_check_mode=True,
    )
    try:
        result = check_health(module.params, module.run_command)
    except HotswapError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
