# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""hotswap.deploy.host_deploy: which module runs one host's deploy makes, with what, and what it reports.

The host is a fake at the ActionBase boundary (_execute_module, and the binary_upload action): each test
scripts the answers and checks the runs in order, as a reader of roles/deploy_host would expect them.
"""

from __future__ import annotations

import copy

import pytest

MODULE = 'hotswap.deploy.host_deploy'
SHELL = 'sh'
TMPDIR = '/tmp/ansible-tmp-hd'

PREV = '1.0.0-aaaaaaaaaaaa'
SHA = 'sha256:' + 'b' * 64

SERVICE = dict(health_url='http://127.0.0.1:8080/healthz', check_version=True, service_user='demo',
               service_group='demo', create_user=True, state_dirs=[], adopt_unit=False, environment={},
               version_query=None, version_regex=None, version_header=None, version_command=None)


def settings(**kw):
    s = dict(app='demo', version='2.0.0', checksum=SHA, binary='demo', artifact='/dist/demo', artifact_url='',
             base_dir='/opt/demo', restart_strategy='systemd_socket', pid_file='/run/demo/demo.pid',
             service=copy.deepcopy(SERVICE), service_unit='[Service]\n', socket_unit='[Socket]\n')
    s.update(kw)
    return s


CUTOVER_STEPS = (('upload', 'binary_upload'), ('units', 'service_units'), ('activate', 'release_activate'),
                 ('restart', 'graceful_restart'))
PUSHED = TMPDIR + '/hotswap-upload-demo'

READY_USER = dict(exists=True, group='demo', home='/nonexistent', shell='/usr/sbin/nologin')


class Host(object):
    """Answers module runs from a script: {module short name: [answers in order]} (the last one repeats)."""

    def __init__(self, **answers):
        self.answers = answers
        self.runs = []
        self.transfers = []
        self.known_probes = []

    def execute_module(self, module_name=None, module_args=None, task_vars=None, **kw):
        short = module_name.rsplit('.', 1)[1]
        self.runs.append((short, dict(module_args)))
        if short == 'release_cutover':
            return self.cutover(module_args)
        return self.answer(short, module_args)

    def answer(self, short, args):
        queue = self.answers.get(short) or [{}]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return copy.deepcopy(answer(args) if callable(answer) else answer)

    def push(self, args, defer_module=False):
        """The binary_upload action: its module run, or with ``defer_module`` a pushed copy whose module run is
        release_cutover's upload step (a release staged already is answered by the probe, as the module would)."""
        if not defer_module:
            return self.execute_module(module_name='hotswap.deploy.binary_upload', module_args=args)
        answer = self.answer('binary_upload', args)
        if answer.get('failed') or not answer.get('changed'):
            self.runs.append(('binary_upload', dict(args)))
            return answer
        self.transfers.append(PUSHED)
        return dict(changed=True, deferred=dict(args, src=PUSHED, move_src=True), executable='elf')

    def cutover(self, args):
        """release_cutover as the modules it runs would answer, stopping at the first that fails."""
        result = dict(changed=False)
        for step, short in CUTOVER_STEPS:
            if step not in args:
                continue
            if step == 'restart':
                result['restart_started'] = 100.0
            answer = self.answer(short, args[step])
            if step == 'restart':
                result['restart_ended'] = 101.5
            result[step] = answer
            result['changed'] |= bool(answer.get('changed'))
            if answer.get('failed'):
                result.update(failed=True, msg=answer.get('msg'), failed_step=step)
                if step == 'restart' and answer.get('stage'):
                    result['stage'] = answer['stage']
                return result
        return result

    def names(self):
        """The module runs in order; a release_cutover run is named with its steps (release_cutover:units+...)."""
        out = []
        for name, args in self.runs:
            if name == 'deploy_lock':
                name += ':' + args.get('state', 'present')
            elif name == 'release_cutover':
                name += ':' + '+'.join(step for step, _short in CUTOVER_STEPS if step in args)
            out.append(name)
        return out

    def step_args(self, short):
        """The arguments each run of module ``short`` got, as its own run or as a release_cutover step."""
        step = dict((m, st) for st, m in CUTOVER_STEPS).get(short)
        own = [a for n, a in self.runs if n == short]
        return own + [a[step] for n, a in self.runs if n == 'release_cutover' and step in a]


def lock_answer(args):
    if args.get('state') == 'absent':
        return dict(changed=False, released=True)
    return dict(changed=False, live=False, service_user=READY_USER, release_present=False,
                host_platform=dict(os='linux', arch='x86_64'),
                releases_state=dict(current=PREV, current_blocked=False, problems=[],
                                    releases=[dict(release_id=PREV, version='1.0.0')]))


def run(make_action, host, args, check_mode=False):
    action = make_action(args, host, check_mode=check_mode)

    def run_action(name, a, **attrs):
        assert name == 'hotswap.deploy.binary_upload'
        host.known_probes.append(attrs.get('known_probe'))
        return host.push(a, attrs.get('defer_module'))
    action._run_action = run_action
    return action.run(task_vars={'inventory_hostname': 'web1'})


def good_host(**over):
    answers = dict(deploy_lock=[lock_answer], binary_upload=[dict(changed=True)],
                   service_units=[dict(changed=True, units_changed=True, adopted=[])],
                   release_activate=[dict(changed=True, switched=True)],
                   graceful_restart=[dict(changed=True, new_pid=42)],
                   health_check=[dict(outcome='pass')])
    answers.update(over)
    return Host(**answers)


def test_a_deploy_is_three_module_runs_and_passes(make_action):
    host = good_host()
    r = run(make_action, host, dict(settings=settings()))
    assert not r.get('failed'), r
    # The pushed copy into its release, units, switch and restart are one release_cutover run; the unlock is
    # a run of its own, so a controller killed during the cutover leaves the lock held.
    assert host.names() == ['deploy_lock:present', 'release_cutover:upload+units+activate+restart',
                            'deploy_lock:absent']
    upload = host.step_args('binary_upload')[0]
    assert upload['src'] == PUSHED and upload['move_src'] is True and upload['lock_owner'] == host.runs[0][1]['owner']
    assert host.transfers == [PUSHED]
    assert r['result']['verdict'] == 'pass' and r['result']['changed'] is True
    assert r['result']['previous_release'] == PREV and r['result']['release'].startswith('2.0.0-')
    assert r['facts']['deploy_host_release_dir'] == '/opt/demo/releases/' + r['result']['release']
    lock = host.runs[0][1]
    assert lock['unless_live']['release_id'] == r['result']['release'] and lock['service_user'] == 'demo'
    # The units of the same run are not known yet: release_cutover reloads and restarts when they changed.
    restart = host.step_args('graceful_restart')[0]
    assert restart['daemon_reload'] is False and restart['executable'] == '/opt/demo/current/demo'
    assert restart['expected_version'] == '2.0.0' and restart['previous_release'] == PREV
    # The restart's own wall-clock span on the host, for the zero-downtime bench's timeline.
    event = r['restart_event']
    assert (event['start'], event['end'], event['failed']) == (100.0, 101.5, False)


def test_the_live_release_costs_one_module_run(make_action):
    host = good_host(deploy_lock=[dict(changed=False, live=True)])
    r = run(make_action, host, dict(settings=settings()))
    assert host.names() == ['deploy_lock:present'] and 'restart_event' not in r
    assert r['result']['live'] is True and r['result']['verdict'] == 'pass' and r['changed'] is False
    nothing = good_host(binary_upload=[dict(changed=False)], service_units=[dict(units_changed=False)],
                        release_activate=[dict(switched=False)],
                        graceful_restart=[dict(no_restart_reason='runs the binary of current')])
    r = run(make_action, nothing, dict(settings=settings(hooks={'after_verify': 'h.yml'}), phase='begin'))
    assert r['changed'] is False    # taking the lock is no change


def test_unchanged_units_restart_only_when_the_service_runs_another_binary(make_action):
    host = good_host(service_units=[dict(units_changed=False)],
                     graceful_restart=[dict(no_restart_reason='runs the binary of current')])
    r = run(make_action, host, dict(settings=settings()))
    restart = host.step_args('graceful_restart')[0]
    assert restart['executable'] == '/opt/demo/current/demo' and restart['daemon_reload'] is False
    # graceful_restart left the service alone: it is probed instead.
    assert host.names() == ['deploy_lock:present', 'release_cutover:upload+units+activate+restart',
                            'health_check', 'deploy_lock:absent']
    assert r['result']['verdict'] == 'pass'


def test_a_release_staged_already_is_not_pushed(make_action):
    host = good_host(binary_upload=[dict(changed=False, staged=True)])
    r = run(make_action, host, dict(settings=settings()))
    assert not r.get('failed') and host.transfers == []
    assert host.names() == ['deploy_lock:present', 'binary_upload', 'release_cutover:units+activate+restart',
                            'deploy_lock:absent']


def test_an_upload_step_that_fails_is_the_upload_stage_and_nothing_switched(make_action):
    host = good_host(binary_upload=[dict(changed=True), dict(failed=True, msg='the copy on the host has sha256 x.')])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] and r['failure'] == {'stage': 'Upload the release', 'reason': 'the copy on the host has sha256 x.'}
    # Failed before the units: nothing to switch back.
    assert host.names() == ['deploy_lock:present', 'release_cutover:upload+units+activate+restart',
                            'deploy_lock:absent']
    assert r['msg'].endswith("at 'Upload the release': the copy on the host has sha256 x. current was not changed.")


def test_a_failed_restart_switches_back_restarts_verifies_and_unlocks(make_action):
    host = good_host(graceful_restart=[dict(failed=True, stage='ready', msg='not ready after 60 s.'),
                                       dict(changed=True, new_pid=7)],
                     release_activate=[dict(changed=True, switched=True), dict(changed=True, switched=True)],
                     health_check=[dict(outcome='pass')])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] is True
    assert host.names() == ['deploy_lock:present', 'release_cutover:upload+units+activate+restart',
                            'release_activate', 'graceful_restart', 'health_check', 'deploy_lock:absent']
    revert = host.runs[2][1]
    assert revert['release_id'] == PREV and revert['previous_state'] == 'failed'
    assert host.runs[4][1]['expected_version'] == '1.0.0' and host.runs[4][1]['fail_on'] == 'never'
    assert r['failure']['stage'] == 'Restart the service on the new release (stage ready)'
    assert ("failed on web1 at 'Restart the service on the new release (stage ready)': not ready after 60 s. "
            'Switched back to %s; restarted (systemd_socket); its health check: pass.' % PREV) in r['msg']
    assert r['result']['rolled_back_to'] == PREV and r['result']['rollback_health'] == 'pass'
    assert r['result']['verdict'] == "failed at 'Restart the service on the new release (stage ready)'"
    # Switched back and verified: a load balancer may send it requests again.
    assert r['result']['serving'] is True
    assert r['restart_event']['failed'] is True and r['restart_event']['stage'] == 'ready'


def test_a_first_deploy_that_fails_has_nothing_to_switch_back_to(make_action):
    first = dict(changed=False, live=False, service_user=READY_USER,
                 releases_state=dict(current=None, current_blocked=False, problems=[], releases=[]))
    host = good_host(deploy_lock=[first, dict(released=True)],
                     graceful_restart=[dict(failed=True, stage='version', msg='reports 1.9.9')])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] and 'No previous release to switch back to: this was the first deploy.' in r['msg']
    assert host.names()[-1] == 'deploy_lock:absent' and 'release_activate' not in host.names()
    # Nothing verified serves: behind a load balancer this host stays in maint.
    assert r['result']['serving'] is False


def test_a_refused_lock_changes_nothing_and_releases_nothing(make_action):
    host = good_host(deploy_lock=[dict(failed=True, msg='the deploy lock is held by other.')])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] and r['msg'] == 'the deploy lock is held by other.'
    assert host.names() == ['deploy_lock:present'] and 'result' not in r
    assert r['failure']['stage'] == 'Take the deploy lock unless the release is live already'


def test_bad_input_is_refused_before_the_host_is_asked(make_action):
    host = good_host()
    r = run(make_action, host, dict(settings=settings(artifact_url='http://127.0.0.1/x')))
    assert r['failed'] and 'give exactly one of artifact' in r['msg'] and host.runs == []
    r = run(make_action, host, dict(settings=settings(hooks={'after_switch': 'x.yml'})))
    assert r['failed'] and 'takes only the keys before_upload' in r['msg'] and host.runs == []
    r = run(make_action, host, dict(settings=settings(checksum='md5:1')))
    assert r['failed'] and r['failure']['stage'] == 'Compute the release id' and host.runs == []


def test_a_missing_user_with_create_user_off_is_refused_under_the_lock_and_unlocked(make_action):
    s = settings()
    s['service']['create_user'] = False

    def lock(args):
        out = lock_answer(args)
        if args.get('state') != 'absent':
            out['service_user'] = dict(exists=False)
        return out
    host = good_host(deploy_lock=[lock])
    r = run(make_action, host, dict(settings=s))
    assert r['failed'] and "the service user 'demo' does not exist and create_user is false" in r['msg']
    assert host.names() == ['deploy_lock:present', 'deploy_lock:absent'] and 'current was not changed.' in r['msg']


def test_the_user_is_created_only_when_it_is_not_as_the_deploy_leaves_it(make_action):
    def lock(args):
        out = lock_answer(args)
        out['service_user'] = dict(exists=False)
        return out
    host = good_host(deploy_lock=[lock])
    run(make_action, host, dict(settings=settings()))
    assert host.names() == ['deploy_lock:present', 'user', 'release_cutover:upload+units+activate+restart',
                            'deploy_lock:absent']
    assert dict(host.runs)['user'] == dict(name='demo', system=True, create_home=False, home='/nonexistent',
                                           shell='/usr/sbin/nologin')


def test_check_mode_does_not_activate_a_release_it_would_upload(make_action):
    host = good_host()
    r = run(make_action, host, dict(settings=settings()), check_mode=True)
    assert host.names() == ['deploy_lock:present', 'binary_upload', 'release_cutover:units', 'deploy_lock:absent']
    assert r['result']['verdict'] == 'skipped' and r['result']['changed'] is False
    # The task says what it would do: upload and units would change (the lock is no change).
    assert r['changed'] is True


def test_phases_carry_the_state_and_a_failed_hook_is_switched_back(make_action):
    host = good_host(release_activate=[dict(switched=True), dict(switched=True)])
    begin = run(make_action, host, dict(settings=settings(hooks={'after_activate': 'h.yml'}), phase='begin'))
    assert 'unless_live' not in host.runs[0][1] and begin['state']['previous'] == PREV
    hook = begin['facts']['hotswap_hook']
    assert hook['rollout'] == 'deploy_host' and hook['previous_release'] == PREV and hook['host'] == 'web1'
    assert hook['release_dir'] == '/opt/demo/releases/' + hook['release'] and hook['target_slot'] is None
    state = begin['state']
    for phase in ('upload', 'install', 'activate'):
        state = run(make_action, host, dict(settings=settings(), phase=phase, state=state))['state']
    assert state['switched'] is True
    r = run(make_action, host, dict(settings=settings(), phase='abort', state=state,
                                    failed_task='Warm the cache', failed_result=dict(failed=True, msg='cache cold')))
    assert r['failed'] and r['failure'] == {'stage': 'Warm the cache', 'reason': 'cache cold'}
    assert host.names()[-4:] == ['release_activate', 'graceful_restart', 'health_check', 'deploy_lock:absent']
    # A phase that failed has switched back itself: abort passes its result on and runs nothing.
    runs = len(host.runs)
    again = run(make_action, host, dict(settings=settings(), phase='abort', state={}, failed_task='x',
                                        failed_result=dict(r, hotswap_handled=True)))
    assert again['msg'] == r['msg'] and len(host.runs) == runs


def test_settings_are_validated(make_action):
    r = run(make_action, Host(), dict(settings=dict(app='demo')))
    assert r['failed'] and 'missing required arguments' in r['msg'] and 'deploy_host__settings' in r['msg']


@pytest.mark.parametrize('strategy,socket', [('systemd_socket', True), ('restart', False)])
def test_the_socket_unit_goes_only_to_systemd_socket(make_action, strategy, socket):
    host = good_host()
    run(make_action, host, dict(settings=settings(restart_strategy=strategy)))
    assert ('socket_unit' in host.step_args('service_units')[0]) is socket


def test_the_lock_run_answers_the_upload_probe_for_a_new_release(make_action):
    host = good_host()
    r = run(make_action, host, dict(settings=settings()))
    assert host.runs[0][1]['release_id'] == r['result']['release']
    probe = host.known_probes[0]
    assert probe['reason'] == 'not_staged' and probe['host_platform'] == dict(os='linux', arch='x86_64')

    def present(args):
        out = lock_answer(args)
        out['release_present'] = True
        return out
    host = good_host(deploy_lock=[present])
    run(make_action, host, dict(settings=settings()))
    assert host.known_probes == [None]


def test_a_worker_whose_controller_died_stops_before_the_next_step(make_action, monkeypatch):
    import os
    from ansible.errors import AnsibleError
    host = good_host()
    action = make_action(dict(settings=settings()), host)
    parent = os.getppid()
    calls = []

    def run_action(name, a, **attrs):
        calls.append(name)
        monkeypatch.setattr(os, 'getppid', lambda: parent + 1)   # ansible-playbook killed during the upload
        return host.push(a, attrs.get('defer_module'))
    action._run_action = run_action
    with pytest.raises(AnsibleError) as e:
        action.run(task_vars={'inventory_hostname': 'web1'})
    assert 'ansible-playbook is gone' in str(e.value)
    # No units, no switch, no switch back and no unlock: the lock stays, as a killed run of tasks leaves it.
    assert host.names() == ['deploy_lock:present'] and host.transfers == [PUSHED]
