# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Which metric of canary_metrics is measured where, and the hosts a Prometheus query is about.

``canary_metrics`` is one metric (a dict, measured on or for each batch host) or a list of metrics. A
metric with an ``address`` (or ``provider: prometheus``) is a PromQL query measured once per batch from
the controller; the others GET a JSON endpoint per host, from the host (``run_on: host``, the default) or
from the controller. A Prometheus metric with ``background: true`` is measured during the bake.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

RUN_ON = ('host', 'controller')
SETS = ('host', 'controller', 'batch', 'background')


def _is_prometheus(metric):
    return metric.get('provider') == 'prometheus' or (metric.get('provider') is None and 'address' in metric)


def canary_metric_sets(metrics):
    """``{host, controller, batch, background, all}``: metric_analysis ``metrics`` lists (run_on removed)."""
    if metrics in (None, '', {}, []):
        metrics = []
    elif isinstance(metrics, dict):
        metrics = [dict(metrics, name=metrics.get('name') or 'metric')]
    elif not isinstance(metrics, list):
        raise AnsibleFilterError('canary_metrics must be a metric (a dictionary) or a list of metrics, got %s. See '
                                 'roles/canary/README.md.' % type(metrics).__name__)
    out = dict((key, []) for key in SETS + ('all',))
    for number, metric in enumerate(metrics, 1):
        if not isinstance(metric, dict):
            raise AnsibleFilterError('canary_metrics: metric %d is %r, not a dictionary with name, query and threshold.'
                                     % (number, metric))
        metric = dict(metric)
        metric['name'] = metric.get('name') or 'metric %d' % number
        run_on = metric.pop('run_on', 'host')
        if run_on not in RUN_ON:
            raise AnsibleFilterError('canary_metrics: metric %s has run_on %r; it must be host or controller.'
                                     % (metric['name'], run_on))
        if _is_prometheus(metric):
            out['background' if metric.get('background') else 'batch'].append(metric)
        else:
            out[run_on].append(metric)
        out['all'].append(metric)
    return out


def canary_instances(hosts, hostvars, port):
    """Each host's name in Prometheus: its ``canary_prometheus_instance``, else ``<inventory name>:<port>``."""
    out = []
    for host in hosts or []:
        try:
            value = hostvars[host].get('canary_prometheus_instance')
        except (KeyError, AttributeError):
            value = None
        out.append(str(value) if value not in (None, '') else '%s:%s' % (host, port))
    return out


def canary_baseline_hosts(batch, play_hosts_all):
    """The rollout's hosts after this batch: still on the previous release."""
    batch = list(batch or [])
    hosts = list(play_hosts_all or [])
    if not batch or batch[-1] not in hosts:
        return [h for h in hosts if h not in batch]
    return hosts[hosts.index(batch[-1]) + 1:]


class FilterModule(object):
    def filters(self):
        return {'canary_metric_sets': canary_metric_sets, 'canary_instances': canary_instances,
                'canary_baseline_hosts': canary_baseline_hosts}
