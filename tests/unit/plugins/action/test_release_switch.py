# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""hotswap.deploy.release_switch: the rollback of one host - its module runs, and the switch back when the
target fails (the path a failed deploy takes too)."""

from __future__ import annotations

import copy

from test_host_deploy import SERVICE, Host

MODULE = 'hotswap.deploy.release_switch'
SHELL = 'sh'
TMPDIR = '/tmp/ansible-tmp-rs'

TARGET = '1.0.0-aaaaaaaaaaaa'
FROM = '2.0.0-bbbbbbbbbbbb'


def settings(**kw):
    s = dict(app='demo', base_dir='/opt/demo', target=TARGET, version='1.0.0', strategy='systemd_socket',
             executable='/opt/demo/current/demo', service=copy.deepcopy(SERVICE), owner='demo rollback to ' + TARGET,
             reclaim_key='demo rollback to ' + TARGET, previous_state='failed', current=FROM,
             present=[TARGET, FROM], releases=[dict(release_id=TARGET, version='1.0.0'),
                                               dict(release_id=FROM, version='2.0.0')])
    s.update(kw)
    return s


def run(make_action, host, s, check_mode=False):
    action = make_action(dict(settings=s), host, check_mode=check_mode)
    return action.run(task_vars={'inventory_hostname': 'web1'})


def switching_host(**over):
    answers = dict(deploy_lock=[dict(changed=False)],
                   release_activate=[dict(changed=True, switched=True, previous_release=FROM,
                                          lock=dict(taken_over=None, reclaimed=False))],
                   graceful_restart=[dict(changed=True, new_pid=9)], health_check=[dict(outcome='pass')])
    answers.update(over)
    return Host(**answers)


OWNER = 'demo rollback to ' + TARGET
UNLOCK = dict(base_dir='/opt/demo', owner=OWNER, state='absent')


def test_a_rollback_is_lock_switch_restart_verify_unlock(make_action):
    host = switching_host()
    r = run(make_action, host, settings(lock_stale_after=600))
    assert not r.get('failed'), r
    # The lock is taken by the switch itself (release_activate take_lock): one round trip less.
    assert host.names() == ['release_activate', 'graceful_restart', 'health_check', 'deploy_lock:absent']
    assert dict(host.runs)['release_activate'] == dict(base_dir='/opt/demo', release_id=TARGET, previous_state='failed',
                                                       activated_by=OWNER, lock_owner=OWNER,
                                                       take_lock=dict(reclaim_key=OWNER, stale_after=600))
    restart = dict(host.runs)['graceful_restart']
    assert restart['executable'] == '/opt/demo/current/demo' and restart['expected_version'] == '1.0.0'
    assert host.runs[-1][1] == UNLOCK
    assert r['result'] == dict(host='web1', app='demo', previous_release=FROM, release=TARGET, version='1.0.0',
                               changed=True, verdict='pass', seconds=r['result']['seconds'])


def test_the_lock_is_taken_with_the_default_stale_after(make_action):
    host = switching_host()
    run(make_action, host, settings())
    assert dict(host.runs)['release_activate']['take_lock'] == dict(reclaim_key=OWNER, stale_after=0)


def test_a_target_that_fails_is_switched_back_to_where_the_host_came_from(make_action):
    host = switching_host(release_activate=[dict(switched=True, previous_release=FROM), dict(switched=True)],
                          graceful_restart=[dict(failed=True, stage='ready', msg='not ready.'), dict(changed=True)],
                          health_check=[dict(outcome='pass')])
    r = run(make_action, host, settings())
    assert r['failed']
    assert host.names() == ['release_activate', 'graceful_restart', 'release_activate',
                            'graceful_restart', 'health_check', 'deploy_lock:absent']
    revert = host.runs[2][1]
    assert revert['release_id'] == FROM and revert['previous_state'] == 'failed'
    assert revert['activated_by'].endswith('(rollback failed, switched back)')
    # The switch back runs under the lock the switch took.
    assert revert['lock_owner'] == OWNER and 'take_lock' not in revert
    assert host.runs[4][1]['expected_version'] == '2.0.0' and host.runs[4][1]['fail_on'] == 'never'
    assert ("Rollback of demo to %s failed on web1 at 'Restart the service on the target release (stage ready)': "
            'not ready. Switched current back to %s and marked %s failed; health of %s: pass.'
            % (TARGET, FROM, TARGET, FROM)) in r['msg']
    assert r['result']['switched_back_to'] == FROM and r['result']['changed'] is False
    assert host.runs[-1][1] == UNLOCK


def test_a_restart_refused_at_its_check_retires_instead_of_failing_the_target(make_action):
    host = switching_host(release_activate=[dict(switched=True, previous_release=FROM), dict(switched=True)],
                          graceful_restart=[dict(failed=True, stage='check', msg='no unit.'), dict(changed=True)])
    r = run(make_action, host, settings())
    assert host.names()[2] == 'release_activate'
    assert host.runs[2][1]['previous_state'] == 'retired' and 'and marked' not in r['msg']


def test_no_switch_back_when_it_is_off_or_the_origin_is_gone(make_action):
    for s in (settings(restore_on_failure=False), settings(present=[TARGET])):
        host = switching_host(health_check=[dict(failed=True, msg='version 2.0.0, want 1.0.0')])
        r = run(make_action, host, s)
        assert r['failed'] and host.names().count('release_activate') == 1
        assert 'current still points at %s' % TARGET in r['msg'] and 'repair the service by hand' in r['msg']
        assert r['result']['changed'] is True and host.names()[-1] == 'deploy_lock:absent'


def test_a_lock_held_by_another_run_switches_nothing(make_action):
    host = switching_host(release_activate=[dict(failed=True, msg='held by x.', lock_failed=True)])
    r = run(make_action, host, settings())
    # The lock it never took is not released (that would be another run's lock).
    assert host.names() == ['release_activate']
    assert r['failed'] and r['failure'] == dict(stage='Take the deploy lock', reason='held by x.')
    assert "at 'Take the deploy lock': held by x. current was not switched (%s)." % FROM in r['msg']
    assert r['result']['changed'] is False and r['result']['switched_back_to'] is None


def test_a_switch_that_fails_after_taking_the_lock_releases_it(make_action):
    host = switching_host(release_activate=[dict(failed=True, msg='release dir missing.', locked=True)])
    r = run(make_action, host, settings())
    assert host.names() == ['release_activate', 'deploy_lock:absent']
    assert host.runs[-1][1] == UNLOCK
    assert r['failed'] and r['failure'] == dict(stage='Switch current to the target release',
                                                reason='release dir missing.')
    assert ("at 'Switch current to the target release': release dir missing. current was not switched (%s)."
            % FROM) in r['msg']
    assert r['result']['changed'] is False and r['result']['switched_back_to'] is None
    assert not r.get('warnings')


def test_a_switch_that_fails_without_the_lock_releases_nothing(make_action):
    host = switching_host(release_activate=[dict(failed=True, msg='release dir missing.', locked=False)])
    r = run(make_action, host, settings())
    assert host.names() == ['release_activate']
    assert r['failure']['stage'] == 'Switch current to the target release'


def test_a_failed_unlock_after_a_failed_switch_is_a_warning(make_action):
    host = switching_host(release_activate=[dict(failed=True, msg='release dir missing.', locked=True)],
                          deploy_lock=[dict(failed=True, msg='permission denied.')])
    r = run(make_action, host, settings())
    assert host.names() == ['release_activate', 'deploy_lock:absent']
    assert r['failure']['stage'] == 'Switch current to the target release'
    assert any('releasing the deploy lock after the failure: permission denied.' in w for w in r['warnings'])


def test_check_mode_reports_the_switch_and_runs_no_restart(make_action):
    host = switching_host()
    r = run(make_action, host, settings(), check_mode=True)
    assert host.names() == ['release_activate', 'deploy_lock:absent']
    assert dict(host.runs)['release_activate']['take_lock'] == dict(reclaim_key=OWNER, stale_after=0)
    assert r['result']['verdict'] == 'check mode: would switch %s -> %s' % (FROM, TARGET)
    assert not r.get('failed') and r['result']['changed'] is True


def test_check_mode_with_a_lock_held_by_another_run_fails_at_the_lock(make_action):
    host = switching_host(release_activate=[dict(failed=True, msg='held by x.', lock_failed=True)])
    r = run(make_action, host, settings(), check_mode=True)
    assert host.names() == ['release_activate']
    assert r['failed'] and r['failure']['stage'] == 'Take the deploy lock'
