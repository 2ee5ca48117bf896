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


def _metric_result(metric):
    """One metric_analysis result from a result or a list of them (measured on the host and from the
    controller): the worst verdict, the reasons of those that did not pass."""
    if not isinstance(metric, list):
        return metric or {}
    ran = [m for m in metric if (m or {}).get('verdict')]
    for verdict in ('fail', 'inconclusive', 'pass', 'skipped'):
        those = [m for m in ran if m.get('verdict') == verdict]
        if those:
            return dict(verdict=verdict, reason='; '.join(str(m.get('reason', '')).strip() for m in those))
    return {}


def _deploy_failure_reason(failure):
    return 'deploy failed at %s - %s' % (str(failure.get('stage', '')).strip(), str(failure.get('reason', '')).strip())


def canary_host_verdict(health, metric, windows_metric=False, host='', batch=None, deploy_result=None):
    """``{batch, analysis, analysis_reason}`` of one batch host from its health probe and metric results
    (``metric``: one metric_analysis result, or a list of them); a host whose deploy failed (``failure`` in
    ``deploy_result``, its deploy_host_result) fails."""
    failure = (deploy_result or {}).get('failure') if isinstance(deploy_result, dict) else None
    if failure:
        return dict(batch=int(batch) if batch is not None else None, analysis='fail',
                    analysis_reason=_deploy_failure_reason(failure), deploy_failed=True)
    health, metric = health or {}, _metric_result(metric)
    windows_metric = boolean(windows_metric or False, strict=False)
    h, m = _outcome(health, 'outcome'), _outcome(metric, 'verdict')
    if m == 'skipped':
        m = 'pass'
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


def canary_batch_number(batch, play_hosts, hostvars):
    """The number of the batch ``batch`` (ansible_play_batch) of the play's hosts ``play_hosts``
    (ansible_play_hosts_all): one more than the highest number a host outside it was given (the hosts of later
    batches have none yet)."""
    numbers = [int(_get(hostvars, host, 'canary__batch_number') or 0) for host in play_hosts if host not in batch]
    return max(numbers or [0]) + 1


def canary_batch_verdict(batch, play_batch, hostvars, batch_metrics=None):
    """``{result, reasons}`` of a batch: fail when a host failed its deploy or its analysis, or a metric of
    the whole batch (Prometheus, ``batch_metrics``: metric_analysis results) failed; inconclusive when one
    could not be measured (inconclusive analysis, or unreachable: it left the play without a failure in its
    deploy_host_result); else pass. ``reasons`` names each host that did not pass, in batch order, then
    each batch metric that did not pass; ``metrics`` gives every batch metric's verdict and measurements."""
    standing = set(play_batch)
    failed = inconclusive = False
    reasons = []
    batch_reasons = []
    summaries = []
    for result in batch_metrics or []:
        if (result or {}).get('summary'):
            summaries.append(str(result['summary']))
        for metric in (result or {}).get('metrics') or []:
            verdict = metric.get('verdict')
            if verdict == 'fail':
                failed = True
            elif verdict == 'inconclusive':
                inconclusive = True
            if verdict in ('fail', 'inconclusive'):
                reason = str(metric.get('reason', '')).strip().rstrip('.')
                batch_reasons.append('metric %s %s - %s' % (metric.get('name'), verdict, reason))
    for host in batch:
        if host not in standing:
            failure = (_get(hostvars, host, 'deploy_host_result') or {}).get('failure')
            if failure:
                failed = True
                reasons.append('%s: %s' % (host, _deploy_failure_reason(failure)))
            else:
                inconclusive = True
                reasons.append('%s: unreachable (its state is as the connection left it)' % host)
            continue
        verdict = _get(hostvars, host, 'canary__host') or {}
        analysis = verdict.get('analysis')
        if verdict.get('deploy_failed'):
            failed = True
            reasons.append('%s: %s' % (host, verdict['analysis_reason']))
            continue
        if analysis == 'fail':
            failed = True
        elif analysis == 'inconclusive':
            inconclusive = True
        if analysis != 'pass':
            reasons.append('%s: analysis %s - %s' % (host, analysis, str(verdict.get('analysis_reason', '')).strip()))
    result = 'fail' if failed else 'inconclusive' if inconclusive else 'pass'
    return dict(result=result, reasons='; '.join(reasons + batch_reasons), metrics='; '.join(summaries))


def canary_rolled_back(batch, play_batch, hostvars):
    """The hosts of a stopped batch that are back on their previous release: switched back by their own
    deploy's switch back (``rolled_back_to``), or by the canary's rollback (``rollback_result.changed``)."""
    standing = set(play_batch)
    out = []
    for host in batch:
        back = (_get(hostvars, host, 'deploy_host_result') or {}).get('rolled_back_to')
        if host in standing and not back:
            back = (_get(hostvars, host, 'rollback_result') or {}).get('changed')
        if back:
            out.append(host)
    return out


def canary_changed(hosts, hostvars):
    """The hosts this rollout moved to the new release and left there: their deploy changed them and did not
    fail (a failed deploy switched itself back)."""
    out = []
    for host in hosts or []:
        result = _get(hostvars, host, 'deploy_host_result') or {}
        if result.get('changed') and not result.get('failure'):
            out.append(host)
    return out


def canary_stats(hosts, hostvars):
    """``{host: deploy_host_result + canary__host}`` of the judged hosts among ``hosts``: what a batch reports to
    AWX/Tower (set_stats hotswap_deploy), in one task for the batch."""
    out = {}
    for host in hosts or []:
        verdict = _get(hostvars, host, 'canary__host')
        if verdict is not None:
            out[host] = dict(_get(hostvars, host, 'deploy_host_result') or {}, **verdict)
    return out


class FilterModule(object):
    def filters(self):
        return {'canary_host_verdict': canary_host_verdict, 'canary_batch_verdict': canary_batch_verdict,
                'canary_batch_number': canary_batch_number,
                'canary_rolled_back': canary_rolled_back, 'canary_changed': canary_changed,
                'canary_stats': canary_stats}
