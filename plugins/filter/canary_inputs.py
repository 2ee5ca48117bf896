# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The canary's checks before its first batch changes anything (roles/canary/tasks/validate.yml), in one task:
an AWX slice it refuses, the steps and their options, a metric asked to run on Windows hosts - in that order,
the first problem found is the message."""

from __future__ import annotations

import re

# A batch size: a whole number > 0, or a percentage 1%..100%.
STEP_RE = re.compile(r'^([1-9][0-9]*|([1-9]|[1-9][0-9]|100)%)$')
WEIGHT_RE = re.compile(r'^([0-9]|[1-9][0-9]|100)$')
ABORTS = ('rollout', 'batch')

STEPS_MSG = (
    'Canary of %(app)s: canary_steps must be a non-empty list of batch sizes, each a whole number > 0 or a percentage '
    '"1%%".."100%%" (e.g. [1, "25%%", "100%%"]), got %(steps)s; canary_bake_time and canary_stop_after must be >= 0; '
    'canary_abort must be rollout (every host this rollout changed goes back) or batch (only the failed batch), got '
    '%(abort)s; canary_weights must be a list of percents 0-100 (or null), one per step, and needs a load balancer '
    '(-e lb=haproxy -e lb_host=... -e lb_backend=...), got %(weights)s.')

WINDOWS_MSG = ('Canary of %s: canary_metrics.run_on is host, but %s %s, where hotswap.deploy.metric_analysis (Python) '
               'cannot run. Set canary_metrics.run_on: controller. Nothing was changed.')


def _is_list(value):
    return isinstance(value, (list, tuple))


def _whole(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def steps_ok(settings):
    """canary_steps, canary_weights (and the load balancer they need), bake time, stop after and abort."""
    steps = settings.get('steps')
    steps = list(steps) if _is_list(steps) else [steps]
    weights = settings.get('weights')
    if not _is_list(weights):
        return False
    weights = [w for w in weights if w is not None]
    return (all(WEIGHT_RE.match(str(w)) for w in weights)
            and (not weights or len(str(settings.get('lb') or '')) > 0)
            and len(steps) > 0 and all(STEP_RE.match(str(s)) for s in steps)
            and _whole(settings.get('bake_time')) >= 0 and _whole(settings.get('stop_after')) >= 0
            and settings.get('abort') in ABORTS)


def canary_input_problem(settings, job_slice=None, windows_hosts=None):
    """The first problem of a canary's inputs, or ''. ``settings``: app, steps, weights, bake_time, stop_after,
    abort, lb; ``job_slice``: filter canary_job_slice's result; ``windows_hosts``: the Windows hosts a metric with
    run_on host would run on."""
    if (job_slice or {}).get('refuse'):
        return job_slice['message']
    if not steps_ok(settings):
        return STEPS_MSG % dict(app=settings.get('app'), steps=settings.get('steps'), abort=settings.get('abort'),
                                weights=settings.get('weights'))
    if windows_hosts:
        return WINDOWS_MSG % (settings.get('app'), ', '.join(windows_hosts),
                              'is a Windows host' if len(windows_hosts) == 1 else 'are Windows hosts')
    return ''


class FilterModule(object):
    def filters(self):
        return {'canary_input_problem': canary_input_problem}
