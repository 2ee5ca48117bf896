# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The rollback role's decisions about a host: its check (Linux, Windows), its target, the unfit restarts."""

from __future__ import annotations

import pytest

from ansible_collections.hotswap.deploy.plugins.filter.rollback_check import (
    FilterModule, rollback_check_from_deploy, rollback_linux_check, rollback_restart_refused, rollback_target_problems,
    rollback_windows_check)

ADOPTED = 'units-before-hotswap'
SKIPPED = {'changed': False, 'skipped': True, 'skip_reason': 'Conditional result was False'}
R1, R2, R3 = '1.0.0-aaaaaaaaaaaa', '2.0.0-bbbbbbbbbbbb', '3.0.0-cccccccccccc'
MARKER = '/etc/systemd/system/.hotswap-myapp.%s'
BLUE_GREEN = '/opt/myapp/.hotswap/blue_green.json'
ADOPTED_UNITS = '/opt/myapp/.hotswap/adopted/units.json'


def found(*paths, missing=()):
    """release_info's stat of the paths read_linux.yml looks at: those given exist, those missing do not."""
    stat = {p: {'exists': True, 'islnk': False} for p in paths}
    stat.update({p: {'exists': False, 'islnk': False} for p in missing})
    return {'changed': False, 'stat': stat}


def release(rid, present=True, **more):
    return dict(release_id=rid, present=present, version=rid.split('-')[0], binary='myapp', **more)


def info(current=R2, previous_good=R1, releases=None, problems=None):
    return {'changed': False, 'current': current, 'previous_good': previous_good,
            'releases': [release(R1), release(R2)] if releases is None else releases,
            'problems': problems or []}


def linux(find=None, ledger=None, release_id='', strategy=''):
    find = found(MARKER % 'restart') if find is None else find
    ledger = info() if ledger is None else ledger
    return rollback_linux_check(find, ledger, 'web1', 'myapp', '/opt/myapp', release_id, strategy, ADOPTED)


def test_filters_are_exposed():
    assert set(FilterModule().filters()) == {'rollback_linux_check', 'rollback_windows_check',
                                             'rollback_target_problems', 'rollback_restart_refused',
                                             'rollback_check_from_deploy'}


# ---------------------------------------------------------------------------
# Linux


def test_a_healthy_host_goes_back_to_its_previous_good_release():
    assert linux() == dict(
        host='web1', platform='linux', current=R2, previous_good=R1, target=R1, present=[R1, R2],
        releases=[release(R1), release(R2)], markers=['restart'], blue_green=None, strategy='restart',
        target_entry=release(R1), problems=[], problem_text='')


def test_the_keys_come_in_the_order_later_tasks_and_messages_see_them():
    assert list(linux()) == ['host', 'platform', 'current', 'previous_good', 'target', 'present', 'releases', 'markers',
                             'blue_green', 'strategy', 'target_entry', 'problems', 'problem_text']


def test_a_named_release_is_the_target_even_with_a_previous_good_one():
    check = linux(release_id=R2)
    assert check['target'] == R2 and check['target_entry'] == release(R2)


def test_a_named_release_the_ledger_does_not_know_has_an_absent_entry():
    check = linux(release_id='9.9.9-ffffffffffff')
    assert check['target'] == '9.9.9-ffffffffffff' and check['target_entry'] == {'present': False}
    assert check['problems'] == []   # judged by plan.yml for the fleet, by rollback_target_problems for one host


def test_a_release_whose_directory_is_gone_is_not_present():
    check = linux(ledger=info(releases=[release(R1, present=False), release(R2)]))
    assert check['present'] == [R2]
    assert check['target'] == R1 and check['target_entry'] == release(R1, present=False)


def test_without_previous_good_the_adopted_units_are_the_target():
    check = linux(find=found(MARKER % 'restart', ADOPTED_UNITS), ledger=info(current=R1, previous_good=None,
                                                                             releases=[release(R1)]))
    assert check['target'] == ADOPTED and check['target_entry'] == {'present': False}
    assert check['markers'] == ['restart'] and check['blue_green'] is None


def test_the_adopted_units_do_not_outrank_a_previous_good_release():
    assert linux(find=found(MARKER % 'restart', ADOPTED_UNITS))['target'] == R1


def test_without_previous_good_or_adopted_units_there_is_no_target():
    check = linux(ledger=info(current=R1, previous_good=None, releases=[release(R1)]))
    assert check['target'] is None and check['target_entry'] == {'present': False}
    assert check['problems'] == []


def test_a_units_json_elsewhere_is_not_the_adopted_units():
    check = linux(find=found(MARKER % 'restart', '/opt/myapp/.hotswap/units.json'),
                  ledger=info(previous_good=None))
    assert check['target'] is None


@pytest.mark.parametrize('strategy', ['restart', 'signal_reexec', 'reuseport'])
def test_one_marker_is_the_strategy(strategy):
    check = linux(find=found(MARKER % strategy))
    assert check['markers'] == [strategy] and check['strategy'] == strategy and check['problems'] == []


def test_no_marker_is_refused_unless_a_strategy_is_given():
    check = linux(find=found())
    assert check['markers'] == [] and check['strategy'] == ''
    assert check['problems'] == [
        'no restart strategy marker /etc/systemd/system/.hotswap-myapp.<strategy> (units not installed by'
        ' hotswap.deploy?): pass restart_strategy (rollback_restart_strategy)']
    given = linux(find=found(), strategy='signal_reexec')
    assert given['strategy'] == 'signal_reexec' and given['problems'] == []


def test_several_markers_are_refused_unless_a_strategy_is_given():
    check = linux(find=found(MARKER % 'restart', BLUE_GREEN.replace('blue_green', 'x'), MARKER % 'reuseport'))
    assert check['markers'] == ['restart', 'reuseport'] and check['strategy'] == ''
    assert check['problems'] == [
        'several restart strategy markers (restart, reuseport) in /etc/systemd/system: redeploy to settle the units,'
        ' or pass restart_strategy']
    assert check['problem_text'] == check['problems'][0]
    given = linux(find=found(MARKER % 'restart', MARKER % 'reuseport'), strategy='reuseport')
    assert given['strategy'] == 'reuseport' and given['problems'] == []


def test_a_strategy_other_than_the_units_is_refused():
    check = linux(strategy='reuseport')
    assert check['strategy'] == 'reuseport'
    assert check['problems'] == [
        'restart_strategy reuseport was given, but the units are installed for restart and a rollback does not change'
        ' units: pass restart or leave restart_strategy out']
    assert linux(strategy='restart')['problems'] == []


def test_the_marker_of_another_app_keeps_its_name():
    """find looks only for this app's markers; the prefix of another (never found) would stay, as in the role."""
    check = linux(find=found('/etc/systemd/system/.hotswap-my.app.restart', '/etc/systemd/system/.hotswap-myapp.x.y'))
    assert check['markers'] == ['.hotswap-my.app.restart', 'x.y']


def test_an_app_name_is_matched_literally_in_the_marker():
    check = rollback_linux_check(found('/etc/systemd/system/.hotswap-my.app.restart'), info(), 'web1', 'my.app',
                                 '/opt/my.app', '', '', ADOPTED)
    assert check['markers'] == ['restart'] and check['problems'] == []


def test_a_blue_green_host_is_refused():
    check = linux(find=found(BLUE_GREEN, MARKER % 'restart'))
    assert check['blue_green'] == BLUE_GREEN and check['markers'] == ['restart']
    assert check['problems'] == [
        BLUE_GREEN + ' exists: this is a blue-green host; switch it back with the blue_green role'
        ' (blue_green_action=switch_back), not with rollback']


def test_nothing_deployed_is_refused_and_a_missing_marker_is_not_reported_then():
    check = linux(find=found(), ledger=info(current=None, previous_good=None, releases=[]))
    assert check['present'] == [] and check['releases'] == [] and check['target'] is None
    assert check['problems'] == ['nothing of myapp is deployed under /opt/myapp (no releases): check app and base_dir']


def test_the_ledger_problems_count_when_current_is_not_a_release():
    problems = ['current points to releases/x, which is missing.', 'Repair it by hand.']
    check = linux(ledger=info(current=None, problems=problems))
    assert check['problems'] == ['current points to releases/x, which is missing. Repair it by hand.']
    assert linux(ledger=info(problems=problems))['problems'] == []


def test_every_problem_at_once_in_order_joined_for_the_plan():
    check = linux(find=found(BLUE_GREEN, MARKER % 'restart', MARKER % 'reuseport'),
                  ledger=info(current=None, previous_good=None, releases=[], problems=['no current.']))
    assert check['problems'] == [
        BLUE_GREEN + ' exists: this is a blue-green host; switch it back with the blue_green role'
        ' (blue_green_action=switch_back), not with rollback',
        'nothing of myapp is deployed under /opt/myapp (no releases): check app and base_dir',
        'no current.',
        'several restart strategy markers (restart, reuseport) in /etc/systemd/system: redeploy to settle the units,'
        ' or pass restart_strategy']
    assert check['problem_text'] == '; '.join(check['problems'])


def test_missing_keys_of_the_registered_results_count_as_empty():
    check = rollback_linux_check(SKIPPED, SKIPPED, 'web1', 'myapp', '/opt/myapp', None, None, ADOPTED)
    assert check['current'] is None and check['target'] is None and check['markers'] == []
    assert check['problems'] == ['nothing of myapp is deployed under /opt/myapp (no releases): check app and base_dir']
    assert rollback_linux_check(None, None, 'web1', 'myapp', '/opt/myapp', '', '', ADOPTED)['releases'] == []


# ---------------------------------------------------------------------------
# Windows

WIN_PATH = 'C:\\hotswap\\myapp\\myapp.exe'
LEDGER = 'C:\\hotswap\\myapp\\.hotswap\\ledger.json'
SHA = '3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b'


def query(**more):
    result = dict(info(), ledger_path=LEDGER, live_sha256=SHA, lock=None)
    result.update(more)
    return result


def windows(result=None, release_id=''):
    return rollback_windows_check(query() if result is None else result, 'win1', 'myapp', WIN_PATH, release_id)


def test_a_windows_host_has_the_linux_shape_and_its_lock():
    assert windows() == dict(
        host='win1', platform='windows', current=R2, previous_good=R1, target=R1, present=[R1, R2],
        releases=[release(R1), release(R2)], markers=[], blue_green=None, strategy='', lock=None,
        target_entry=release(R1), problems=[], problem_text='')
    assert list(windows()) == ['host', 'platform', 'current', 'previous_good', 'target', 'present', 'releases',
                               'markers', 'blue_green', 'strategy', 'lock', 'target_entry', 'problems', 'problem_text']


def test_a_windows_host_goes_to_the_named_release_or_none():
    assert windows(release_id=R2)['target'] == R2
    check = windows(query(previous_good=None))
    assert check['target'] is None and check['target_entry'] == {'present': False} and check['problems'] == []


def test_the_query_problems_come_first():
    check = windows(query(problems=['the service myapp is disabled']))
    assert check['problems'] == ['the service myapp is disabled']


def test_nothing_deployed_on_windows_is_refused():
    check = windows(query(current=None, previous_good=None, releases=[]))
    assert check['problems'] == ['nothing of myapp is deployed at %s (no releases in %s): check app, win_path and'
                                 ' win_service' % (WIN_PATH, LEDGER)]


@pytest.mark.parametrize('lock,holder', [
    ({'owner': 'other-deploy', 'acquired_at': '2024-05-01T12:00:00Z'}, 'other-deploy since 2024-05-01T12:00:00Z'),
    ({'owner': '', 'acquired_at': None}, 'unknown owner since ?'),
    ({'age': 3}, 'unknown owner since ?'),
])
def test_a_held_lock_is_refused_naming_its_holder(lock, holder):
    check = windows(query(lock=lock))
    assert check['lock'] == lock
    assert check['problems'] == ['another deploy holds the lock beside %s (%s): let it finish, then run the rollback'
                                 ' again' % (LEDGER, holder)]


def test_a_live_exe_the_ledger_does_not_know_is_refused_unless_a_release_is_named():
    check = windows(query(current=None))
    assert check['problems'] == ['the live exe %s (sha256 3a7bd3e2360a...) is not a release in the ledger (replaced by'
                                 ' hand?): name the release to go back to (rollback_release_id)' % WIN_PATH]
    assert windows(query(current=None), release_id=R1)['problems'] == []
    assert windows(query(current=None, live_sha256=None))['problems'] == []


def test_every_windows_problem_at_once_in_order():
    check = windows(query(current=None, problems=['interrupted swap'], lock={'owner': 'x', 'acquired_at': 't'}))
    assert [p.split(' ')[0] for p in check['problems']] == ['interrupted', 'another', 'the']
    assert check['problem_text'] == '; '.join(check['problems'])


def test_the_query_result_is_not_changed():
    result = query(problems=['p'], lock={'owner': 'x'})
    windows(result)
    assert result['problems'] == ['p']


# ---------------------------------------------------------------------------
# host.yml: the target of one host

WHERE = 'app and base_dir'


def test_a_target_on_the_host_stops_nothing():
    assert rollback_target_problems(linux(), WHERE, ADOPTED) == []
    assert rollback_target_problems(linux(release_id=R2), WHERE, ADOPTED) == []


def test_no_target_names_current_and_the_releases():
    check = linux(ledger=info(current=R1, previous_good=None, releases=[release(R1)]))
    assert rollback_target_problems(check, WHERE, ADOPTED) == [
        'no previous good release in the ledger (current %s, releases %s): check app and base_dir, or name a release'
        ' (rollback_release_id)' % (R1, R1)]


def test_no_target_and_nothing_there_says_none():
    check = windows(query(current=None, previous_good=None, releases=[]))
    where = 'app, win_path (%s) and win_service' % WIN_PATH
    assert rollback_target_problems(check, where, ADOPTED) == [
        'no previous good release in the ledger (current none, releases none): check %s, or name a release'
        ' (rollback_release_id)' % where]


def test_a_named_release_not_on_the_host_names_what_it_has():
    assert rollback_target_problems(linux(release_id=R3), WHERE, ADOPTED) == [
        'release %s is not on this host (it has %s, %s): pick a release it has, or deploy that version again'
        % (R3, R1, R2)]
    gone = linux(release_id=R1, ledger=info(releases=[release(R1, present=False)]))
    assert rollback_target_problems(gone, WHERE, ADOPTED) == [
        'release %s is not on this host (it has no releases): pick a release it has, or deploy that version again'
        % R1]


def test_the_adopted_units_are_a_target_without_a_release():
    check = linux(find=found(MARKER % 'restart', ADOPTED_UNITS), ledger=info(current=R1, previous_good=None,
                                                                             releases=[release(R1)]))
    assert rollback_target_problems(check, WHERE, ADOPTED) == []


def test_a_check_without_target_entry_counts_as_absent():
    assert rollback_target_problems({'target': R1, 'present': [R1]}, WHERE, ADOPTED) == [
        'release %s is not on this host (it has %s): pick a release it has, or deploy that version again' % (R1, R1)]
    assert rollback_target_problems({'target': R1, 'target_entry': {'present': None}}, WHERE, ADOPTED)


# ---------------------------------------------------------------------------
# plan.yml: the check-mode restart of each host


def test_hosts_whose_restart_would_be_refused_without_a_stage_first():
    hostvars = {
        'ok': {'rollback__preflight': {'changed': False, 'stage': 'done'}},
        'units': {'rollback__preflight': {'failed': True, 'stage': 'check', 'msg': 'no unit'}},
        'crashed': {'rollback__preflight': {'failed': True, 'msg': 'MODULE FAILURE'}},
        'windows': {'rollback__preflight': SKIPPED},
        'unread': {},
    }
    hosts = ['ok', 'units', 'windows', 'crashed', 'unread', 'gone']
    assert rollback_restart_refused(hosts, hostvars) == ['crashed', 'units']
    assert rollback_restart_refused(['ok', 'windows'], hostvars) == []


def test_a_skipped_result_with_a_stage_is_judged_by_its_stage():
    hostvars = {'a': {'rollback__preflight': {'skipped': True, 'stage': 'check'}}}
    assert rollback_restart_refused(['a'], hostvars) == ['a']


# ---------------------------------------------------------------------------
# The canary's switch back: the check from what the deploy just read


def deployed(**more):
    result = {'changed': True, 'previous_release': R1, 'previous_version': '1.0.0', 'release': R2, 'version': '2.0.0',
              'rolled_back_to': None}
    result.update(more)
    return result


def test_a_deploy_gives_the_shape_of_a_linux_check():
    check = rollback_check_from_deploy(deployed(), 'web1', 'systemd_socket')
    assert list(check) == list(linux())
    previous = dict(release_id=R1, version='1.0.0', present=True)
    current = dict(release_id=R2, version='2.0.0', present=True)
    assert check == dict(
        host='web1', platform='linux', current=R2, previous_good=R1, target=R1, present=[R1, R2],
        releases=[previous, current], markers=[], blue_green=None, strategy='systemd_socket',
        target_entry=previous, problems=[], problem_text='')


def test_the_deploy_check_goes_back_to_the_replaced_release_and_nothing_stops_it():
    check = rollback_check_from_deploy(deployed(), 'web1', 'restart')
    assert check['target'] == R1 and check['target_entry']['version'] == '1.0.0'
    assert check['target_entry']['present'] is True and R1 in check['present'] and R2 in check['present']
    assert check['problems'] == [] and check['problem_text'] == ''
    assert rollback_target_problems(check, 'web1', ADOPTED) == []


@pytest.mark.parametrize('strategy', ['restart', 'systemd_socket', 'signal_reexec'])
def test_the_strategy_is_passed_through(strategy):
    assert rollback_check_from_deploy(deployed(), 'web1', strategy)['strategy'] == strategy


def test_a_missing_strategy_is_empty():
    assert rollback_check_from_deploy(deployed(), 'web1', None)['strategy'] == ''


@pytest.mark.parametrize('current', [None, ''])
def test_a_deploy_without_release_has_only_the_previous_entry(current):
    result = deployed(release=current)
    check = rollback_check_from_deploy(result, 'web1', 'restart')
    assert check['current'] is None and check['present'] == [R1]
    assert check['releases'] == [dict(release_id=R1, version='1.0.0', present=True)]
    assert check['target'] == R1 and check['target_entry'] == check['releases'][0]
    result.pop('release')
    assert rollback_check_from_deploy(result, 'web1', 'restart') == check


def test_the_deploy_result_is_not_changed():
    result = deployed()
    rollback_check_from_deploy(result, 'web1', 'restart')
    assert result == deployed()


def test_a_deploy_result_that_is_not_a_dict_gives_no_target():
    check = rollback_check_from_deploy(SKIPPED, 'web1', 'restart')
    assert list(check) == list(linux()) and not check['target'] and check['current'] is None
    assert rollback_check_from_deploy(None, 'web1', 'restart')['target'] == ''


def test_stat_paths_that_do_not_exist_count_as_absent():
    """read_linux.yml stats every strategy's marker and both state files; only those that exist count."""
    missing = [MARKER % s for s in ('systemd_socket', 'signal_reexec', 'notify_reload', 'reuseport')] + [ADOPTED_UNITS]
    check = linux(find=found(MARKER % 'restart', missing=missing + [BLUE_GREEN]))
    assert check == linux(find=found(MARKER % 'restart'))
    assert check['markers'] == ['restart'] and check['strategy'] == 'restart' and check['problems'] == []
    blue_green = linux(find=found(BLUE_GREEN, missing=missing))
    assert blue_green['blue_green'] == BLUE_GREEN and 'blue-green host' in blue_green['problem_text']
    assert 'no restart strategy marker' in blue_green['problem_text']
    nothing = info(current=None, previous_good=None, releases=[])
    adopted = linux(find=found(MARKER % 'restart', ADOPTED_UNITS), ledger=nothing)
    assert adopted['target'] == ADOPTED
