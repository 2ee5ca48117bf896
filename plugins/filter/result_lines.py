# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The one-line result of each host deploy.yml shows: where it came from, where it is, the verdict, the time and
what the load balancer did."""

from __future__ import annotations


def result_line(host, result):
    """``host: <previous> -> <release>; <verdict>; <seconds> s[; load balancer: ...]``."""
    result = result or {}
    line = '%s: %s -> %s; %s; %s s' % (host, result.get('previous_release') or 'none', result.get('release'),
                                       result.get('verdict'), result.get('seconds'))
    lb = result.get('lb') or {}
    if lb:
        line += '; load balancer: %s in %s s, now %s' % (lb.get('drain'), lb.get('drain_seconds'), lb.get('state'))
    return line


def result_lines(hosts, hostvars, key):
    """The result line of each of ``hosts`` from its variable ``key`` (deploy_host_result, blue_green_result)."""
    return [result_line(host, hostvars[host].get(key)) for host in hosts]


class FilterModule(object):
    def filters(self):
        return {'result_lines': result_lines}
