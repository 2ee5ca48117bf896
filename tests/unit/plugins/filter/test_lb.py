# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.hotswap.deploy.plugins.filter.lb import lb_after_change, lb_servers, lb_summary, DEFAULT_REASON

DRAINED = {'backend': 'app', 'server': 'web1', 'before': {'admin_state': 'ready', 'reason': None},
           'drain': {'result': 'drained', 'seconds': 0.4, 'sessions_left': 0, 'sessions_at_start': 3}}


def test_a_host_never_taken_out_needs_nothing():
    assert lb_after_change({}, True)['state'] == 'none'
    assert lb_after_change(None, False)['state'] == 'none'
    assert lb_after_change({'skipped': True, 'changed': False}, True)['state'] == 'none'


def test_a_serving_host_goes_back():
    assert lb_after_change(DRAINED, True) == {'state': 'ready', 'reason': ''}
    assert lb_after_change(DRAINED, 'yes')['state'] == 'ready'


def test_a_failed_host_stays_in_maint_with_its_reason():
    assert lb_after_change(DRAINED, False, ' Deploy failed at verify. ') == {
        'state': 'maint', 'reason': 'Deploy failed at verify.'}
    assert lb_after_change(DRAINED, 'false')['reason'] == DEFAULT_REASON


def test_an_operators_maint_is_left_alone_even_when_serving():
    before_maint = dict(DRAINED, before={'admin_state': 'maint', 'reason': None})
    assert lb_after_change(before_maint, True) == {'state': 'maint', 'reason': ''}
    ours = dict(DRAINED, before={'admin_state': 'maint', 'reason': 'hotswap.deploy: deploying x'})
    assert lb_after_change(ours, True)['state'] == 'ready'


def test_summary():
    out = lb_summary(DRAINED, {'ready_seconds': 1.2, 'changed': True}, {'state': 'ready', 'reason': ''})
    assert out == {'backend': 'app', 'server': 'web1', 'drain': 'drained', 'drain_seconds': 0.4, 'sessions_left': 0,
                   'state': 'ready', 'reason': None, 'ready_seconds': 1.2}
    assert lb_summary({'skipped': True}, {}, {'state': 'none'}) == {}
    kept = lb_summary(DRAINED, {'skipped': True}, {'state': 'maint', 'reason': ''})
    assert kept['reason'] == 'in maint before this run: left in maint' and 'ready_seconds' not in kept


def test_servers_default_to_the_inventory_name():
    hostvars = {'a': {'lb_server': 'web-a'}, 'b': {}, 'c': {'lb_server': ''}}
    assert lb_servers(['a', 'b', 'c'], hostvars) == ['web-a', 'b', 'c']
    with pytest.raises(AnsibleFilterError):
        lb_servers('a', hostvars)


def test_host_flow_says_when_a_failed_host_serves_again():
    from ansible_collections.hotswap.deploy.plugins.plugin_utils import host_flow as flow
    assert flow.serves_after_failure({'previous': 'r1', 'switched': True}, {'reverted': True, 'health': 'pass'})
    assert not flow.serves_after_failure({'previous': 'r1', 'switched': True}, {'reverted': True, 'health': 'fail'})
    assert flow.serves_after_failure({'previous': 'r1'}, {})            # never switched: the old release runs on
    assert not flow.serves_after_failure({'previous': None, 'switched': True}, {})   # a first deploy
    assert not flow.serves_after_failure({'previous': 'r1', 'switched': True}, {'revert_error': 'x'})
    assert flow.serves_after_failure({'adopted': ['u']}, {'unadopted': True, 'restart': {}})
    r = {'previous_state': 'retired'}
    assert flow.rollback_serves_after_failure(r, {'switched': True}, {'reverted': True, 'health': 'pass'})
    assert flow.rollback_serves_after_failure(r, {}, {})
    assert not flow.rollback_serves_after_failure({'previous_state': 'failed'}, {}, {})
