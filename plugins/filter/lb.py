# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The load balancer decisions of the rollout roles (roles/lb): whether a host that was taken out of
rotation goes back, and what the per-host summary says about it; which HAProxy servers a batch is."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

DEFAULT_REASON = 'hotswap.deploy: this host failed and does not serve a verified release'


def _drained(drain_result):
    """True when the drain task ran (not skipped, not absent)."""
    return bool(drain_result) and not drain_result.get('skipped') and 'before' in drain_result


def _operator_maint(drain_result):
    """The server was in maint before we touched it, and not by us (no reason of ours recorded)."""
    before = drain_result.get('before') or {}
    return before.get('admin_state') == 'maint' and not before.get('reason')


def lb_after_change(drain_result, serving, failure_reason=''):
    """``{state, reason}`` for a host after its change: ``none`` (it was never taken out), ``ready`` (it
    serves a verified release), or ``maint`` with the reason (it failed; or an operator had it in maint
    before, reason empty: left as it was)."""
    drain_result = drain_result or {}
    if not _drained(drain_result):
        return {'state': 'none', 'reason': ''}
    if _operator_maint(drain_result):
        return {'state': 'maint', 'reason': ''}
    if boolean(serving, strict=False):
        return {'state': 'ready', 'reason': ''}
    reason = (failure_reason or '').strip() or DEFAULT_REASON
    return {'state': 'maint', 'reason': reason}


def lb_summary(drain_result, ready_result, decision):
    """What the load balancer did for one host, for its result: server, drain outcome, final state."""
    drain_result, ready_result, decision = drain_result or {}, ready_result or {}, decision or {}
    if not _drained(drain_result):
        return {}
    drain = drain_result.get('drain') or {}
    out = {
        'backend': drain_result.get('backend'),
        'server': drain_result.get('server'),
        'drain': drain.get('result'),
        'drain_seconds': drain.get('seconds'),
        'sessions_left': drain.get('sessions_left'),
        'state': decision.get('state'),
        'reason': decision.get('reason') or None,
    }
    if decision.get('state') == 'maint' and not decision.get('reason'):
        out['reason'] = 'in maint before this run: left in maint'
    if ready_result and not ready_result.get('skipped'):
        out['ready_seconds'] = ready_result.get('ready_seconds')
    return out


def lb_servers(hosts, hostvars):
    """The HAProxy server of each host: its ``lb_server`` host var, else its inventory name."""
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError('lb_servers: expected a list of host names, got %r' % (hosts,))
    out = []
    for host in hosts:
        try:
            server = hostvars[host].get('lb_server')
        except (KeyError, AttributeError):
            server = None
        out.append(str(server) if server else host)
    return out


class FilterModule(object):
    def filters(self):
        return {'lb_after_change': lb_after_change, 'lb_summary': lb_summary, 'lb_servers': lb_servers}
