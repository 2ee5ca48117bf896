# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The canary's verdicts, as Argo Rollouts judges: pass, fail, inconclusive (could not measure).

One host's from its health probe and its metric; the batch's from its hosts, those whose deploy failed
and those that became unreachable: a host whose deploy failed has ``failure`` in its deploy_host_result
(roles/canary/tasks/analyse.yml).
"""

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean

WINDOWS_METRIC_REASON = ('metric not measured: canary_metrics.run_on is host, but %s is a Windows host and '
                         'hotswap.deploy.metric_analysis needs Python there; set canary_metrics.run_on: controller')


def _outcome(result, key):
    """A skipped probe (no outcome) counts as passed: nothing was there to measure against."""
    return (result or {}).get(key) or 'pass'


def canary_host_verdict(health, metric, windows_metric=False, host='', batch=None):
    """``{batch, analysis, analysis_reason}`` of one batch host from its health probe and metric results."""
    health, metric = health or {}, metric or {}
    windows_metric = boolean(windows_metric or False, strict=False)
    h, m = _outcome(health, 'outcome'), _outcome(metric, 'verdict')
    if windows_metric or 'fail' in (h, m):
        analysis = 'fail'
    elif 'inconclusive' in (h, m):
        analysis = 'inconclusive'
    else:
        analysis = 'pass'
    if windows_metric:
        reason = WINDOWS_METRIC_REASON % host
    elif h != 'pass':
        reason = 'health %s: %s' % (h, health.get('reason'))
    elif m != 'pass':
        reason = 'metric %s: %s' % (m, metric.get('reason'))
    else:
        reason = 'health passed' + (' and metric passed: %s' % metric.get('reason') if metric.get('verdict') else '')
    return dict(batch=int(batch) if batch is not None else None, analysis=analysis, analysis_reason=reason)


def _get(hostvars, host, key):
    try:
        return hostvars[host].get(key)
    except (KeyError, AttributeError):
        return None


def canary_batch_verdict(batch, play_batch, hostvars):
    """``{result, reasons}`` of a batch: fail when a host failed its deploy or its analysis; inconclusive when
    one could not be measured (inconclusive analysis, or unreachable: it left the play without a failure
    in its deploy_host_result); else pass. ``reasons`` names each host that did not pass, in batch order."""
    standing = set(play_batch)
    failed = inconclusive = False
    reasons = []
    for host in batch:
        if host not in standing:
            failure = (_get(hostvars, host, 'deploy_host_result') or {}).get('failure')
            if failure:
                failed = True
                reasons.append('%s: deploy failed at %s - %s' % (host, str(failure.get('stage', '')).strip(),
                                                                 str(failure.get('reason', '')).strip()))
            else:
                inconclusive = True
                reasons.append('%s: unreachable (its state is as the connection left it)' % host)
            continue
        verdict = _get(hostvars, host, 'canary__host') or {}
        analysis = verdict.get('analysis')
        if analysis == 'fail':
            failed = True
        elif analysis == 'inconclusive':
            inconclusive = True
        if analysis != 'pass':
            reasons.append('%s: analysis %s - %s' % (host, analysis, str(verdict.get('analysis_reason', '')).strip()))
    result = 'fail' if failed else 'inconclusive' if inconclusive else 'pass'
    return dict(result=result, reasons='; '.join(reasons))


def canary_rolled_back(batch, play_batch, hostvars):
    """The hosts of a stopped batch that are back on their previous release: switched back by the canary's
    rollback (``rollback_result.changed``), or by their own deploy's switch back (``rolled_back_to``)."""
    standing = set(play_batch)
    out = []
    for host in batch:
        if host in standing:
            back = (_get(hostvars, host, 'rollback_result') or {}).get('changed')
        else:
            back = (_get(hostvars, host, 'deploy_host_result') or {}).get('rolled_back_to')
        if back:
            out.append(host)
    return out


class FilterModule(object):
    def filters(self):
        return {'canary_host_verdict': canary_host_verdict, 'canary_batch_verdict': canary_batch_verdict,
                'canary_rolled_back': canary_rolled_back}
