# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""result_lines: the one-line result of each host playbooks/deploy.yml shows."""

from __future__ import annotations

from ansible_collections.hotswap.deploy.plugins.filter.result_lines import FilterModule, result_lines


def test_one_line_per_host_in_the_order_given():
    hostvars = {
        'web1': {'deploy_host_result': dict(previous_release='1.0.0-aa', release='2.0.0-bb', verdict='pass', seconds=1.4)},
        'web2': {'deploy_host_result': dict(previous_release=None, release='2.0.0-bb', verdict='pass', seconds=2.0,
                                            lb=dict(drain='drained', drain_seconds=0.3, state='ready'))},
    }
    assert result_lines(['web2', 'web1'], hostvars, 'deploy_host_result') == [
        'web2: none -> 2.0.0-bb; pass; 2.0 s; load balancer: drained in 0.3 s, now ready',
        'web1: 1.0.0-aa -> 2.0.0-bb; pass; 1.4 s']


def test_a_host_without_a_result_still_has_its_line():
    assert result_lines(['web3'], {'web3': {}}, 'blue_green_result') == ['web3: none -> None; None; None s']
    assert set(FilterModule().filters()) == {'result_lines'}
