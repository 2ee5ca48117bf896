# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""hotswap.deploy.blue_green_deploy: which module runs one host's blue-green rollout makes, with what, and
what a failure undoes.

The host is a fake at the ActionBase boundary (_execute_module, and _run_action for the binary_upload and
package actions), the one of test_host_deploy: each test scripts the answers and checks the runs in order.
The decisions themselves are tested without hosts in tests/unit/plugins/plugin_utils/test_blue_green_flow.py.
"""

from __future__ import annotations

import copy

import pytest

from core_compat import import_controller
from test_host_deploy import Host

from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import parse_checksum
from ansible_collections.hotswap.deploy.plugins.module_utils.release_content import content_manifest, make_release_id

MODULE = 'hotswap.deploy.blue_green_deploy'
SHELL = 'sh'
TMPDIR = '/tmp/ansible-tmp-bg'

flow = import_controller('ansible_collections.hotswap.deploy.plugins.plugin_utils.blue_green_flow')
SERVICE = import_controller('ansible_collections.hotswap.deploy.plugins.filter.service').service_settings(
    {}, 'app', 8081, strict=True)

SHA = 'sha256:' + 'c' * 64
R1 = '1.0.0-111111111111'
# The id the action computes for settings(): version and artifact checksum (no release files, no environment).
RID = make_release_id('2.0.0', parse_checksum(SHA), content_manifest('app', [], {}, {}))
CONF = '/etc/nginx/conf.d/hotswap-app.conf'
DIRECT_GREEN = 'http://127.0.0.1:8082/healthz'
PUBLIC = 'http://127.0.0.1:80/healthz'

READY_USER = dict(exists=True, group='app', home='/nonexistent', shell='/usr/sbin/nologin')


MODULE = 'hotswap.deploy.blue_green_deploy'


def settings(**kw):
    s = dict(app='app', base_dir='/opt/app', binary='app', ports={'blue': 8081, 'green': 8082},
             service=copy.deepcopy(SERVICE), version='2.0.0', checksum=SHA, artifact='/dist/app')
    s.update(kw)
    return s


# The settings as the action sees them (every default filled in): what flow builds the nginx config from.
FULL = dict((k, copy.deepcopy(v.get('default'))) for k, v in import_controller(
    'ansible_collections.hotswap.deploy.plugins.action.blue_green_deploy').SETTINGS_SPEC.items())
FULL.update(settings())
CONF_BLUE = flow.nginx_config(FULL, 'blue', '')
CONF_GREEN = flow.nginx_config(FULL, 'green', 'blue')


def slot(name, release):
    return dict(path='/opt/app/slots/' + name, exists=bool(release), islink=bool(release), release=release)


def info(live='blue', backup='', blue=R1, green=None, conf=None, nginx=True, default_site=False,
         releases=((R1, '1.0.0'),), **extra):
    """What release_info answers to the action's read (every listed release is present)."""
    if conf is None and live:
        conf = flow.nginx_config(FULL, live, backup)
    return dict(releases=[dict(release_id=r, version=v, present=True) for r, v in releases],
                slots=dict(blue=slot('blue', blue), green=slot('green', green)),
                lb_config=conf, live_slot=live, backup_slot=backup, current_blocked=False, problems=[],
                stat={flow.DEFAULT_SITE: dict(exists=default_site, islnk=default_site),
                      flow.NGINX_BINARY: dict(exists=nginx, islnk=False)}, **extra)


CUTOVER = (('upload', 'binary_upload'), ('slots', 'blue_green_slots'), ('restart', 'graceful_restart'), ('direct_check', 'health_check'),
           ('switch', 'nginx_switch'), ('activate', 'release_activate'), ('public_check', 'health_check'),
           ('finish', 'blue_green_slots'))
ALL_STEPS = ['slots', 'restart', 'direct_check', 'switch', 'activate', 'public_check', 'finish']


class BGHost(Host):
    """Host of test_host_deploy, with the action runs (_run_action) recorded in order as (name, check_mode);
    the check-mode upload is named binary_upload:check among the runs."""

    def __init__(self, **answers):
        super(BGHost, self).__init__(**answers)
        self.actions = []
        self.known_probes = []
        self.cutovers = []

    def run_action(self, name, args, check_mode=None, **attrs):
        self.actions.append((name, check_mode))
        self.known_probes.append(attrs.get('known_probe'))
        if attrs.get('defer_module') and not check_mode:
            # The push stops after the transfer: blue_green_cutover's upload step is the module run.
            answer = self.answer('binary_upload', args)
            if answer.get('changed') and not answer.get('failed'):
                self.transfers.append(args['src'])
                return dict(changed=True, deferred=dict(args, src='/tmp/ansible-tmp-bg/hotswap-upload-app',
                                                        move_src=True), executable='elf')
        res = self.execute_module(module_name=name, module_args=args)
        if check_mode:
            short, a = self.runs[-1]
            self.runs[-1] = (short + ':check', a)
        return res

    def args_of(self, short):
        return [a for n, a in self.runs if n == short]

    def execute_module(self, module_name=None, module_args=None, task_vars=None, **kw):
        if module_name != 'hotswap.deploy.blue_green_cutover':
            return super(BGHost, self).execute_module(module_name=module_name, module_args=module_args, **kw)
        return self.cutover_run(module_args)

    def cutover_run(self, args):
        """blue_green_cutover as the modules it runs would answer, stopping at the first that fails. Each step is
        recorded among the runs under its own module's name (so the tests read the flow as one list); the run
        itself in ``cutovers``, as the steps it was given."""
        self.cutovers.append([step for step, _short in CUTOVER if step in args])
        steps = {}
        for step, short in CUTOVER:
            if step not in args:
                continue
            self.runs.append((short, dict(args[step])))
            answer = self.answer(short, args[step])
            steps[step] = dict(answer, seconds=0.05)
            if answer.get('failed'):
                return dict(failed=True, msg=answer.get('msg'), failed_step=step, steps=steps,
                            changed=any(r.get('changed') for r in steps.values()))
        return dict(changed=any(r.get('changed') for r in steps.values()), steps=steps)


def lock_answer(args):
    if args.get('state') == 'absent':
        return dict(changed=False, released=True)
    return dict(changed=False, service_user=READY_USER)


def slots_answer(units=None, link=None, record=None, restore=None):
    """blue_green_slots, answering by what it was asked: the units, the link, the live slot's record, a restore."""
    def answer(args):
        if 'units' in args:
            return units or dict(changed=False, units_changed=[])
        if 'stop_slot' in args or ('link' in args and 'cancel_scale_down' not in args):
            return restore or dict(changed=True)
        if 'link' in args:
            return link or dict(changed=True, link_changed=True, cancelled=False)
        # The run a rollout ends with: record, scale-down, prune, unlock.
        if record:
            return record
        done = dict(changed='state' in args, unlocked=True, pruned=dict(changed=False, removed=[]))
        if 'scale_down' in args:
            done['scale_down'] = 'app-blue stops in 300 s'
        return done
    return answer


def good_host(**over):
    answers = dict(release_info=[info()], deploy_lock=[lock_answer], blue_green_slots=[slots_answer()],
                   binary_upload=[dict(changed=True)], graceful_restart=[dict(changed=True, new_pid=42)],
                   health_check=[dict(outcome='pass')], nginx_switch=[dict(changed=True)],
                   release_activate=[dict(changed=True, switched=True)])
    answers.update(over)
    return BGHost(**answers)


def run(make_action, host, args, check_mode=False):
    action = make_action(args, host, check_mode=check_mode)
    action._run_action = host.run_action
    return action.run(task_vars={'inventory_hostname': 'web1'})


HEAD = ['release_info', 'binary_upload:check', 'deploy_lock:present', 'blue_green_slots']
RESTORE_LINK = dict(app='app', base_dir='/opt/app', stop_slot='green', link=dict(slot='green', release_id=''))


def owner_of(host):
    return host.args_of('deploy_lock')[0]['owner']


def assert_unlocked(host):
    assert host.runs[-1] == ('deploy_lock', dict(base_dir='/opt/app', owner=owner_of(host), state='absent'))


def assert_old_slot_checked(args):
    assert args['url'] == PUBLIC and args['fail_on'] == 'never' and args['expected_version'] == '1.0.0'
    assert 'successes' not in args


# -- a rollout that goes through ----------------------------------------------------------------------

def test_a_new_release_goes_to_the_idle_slot_and_nginx_switches_to_it(make_action):
    host = good_host()
    r = run(make_action, host, dict(settings=settings()))
    assert not r.get('failed'), r
    assert host.names() == HEAD + ['binary_upload', 'blue_green_slots', 'graceful_restart', 'health_check',
                                   'nginx_switch', 'release_activate', 'health_check', 'blue_green_slots']
    # After the transfer, one blue_green_cutover run moves the copy into its release and does the rest: four
    # module runs in all (the check is told what its probe would say by the read, and runs none of its own on a
    # host without the release).
    assert host.cutovers == [['upload'] + ALL_STEPS] and host.transfers == ['/dist/app']
    # The uploads are the binary_upload action: a check after the host is read, then the push under the lock.
    assert host.actions == [('hotswap.deploy.binary_upload', True), ('hotswap.deploy.binary_upload', None)]
    (check,), (upload,) = host.args_of('binary_upload:check'), host.args_of('binary_upload')
    assert check['release_id'] == upload['release_id'] == RID and check['src'] == '/dist/app'
    owner = owner_of(host)
    assert 'lock_owner' not in check and upload['lock_owner'] == owner
    assert upload['src'] == '/tmp/ansible-tmp-bg/hotswap-upload-app' and upload['move_src'] is True
    assert owner.startswith('app deploy %s (' % RID)

    read = dict(host.runs)['release_info']
    assert read == dict(base_dir='/opt/app', slots=['blue', 'green'], lb_config=CONF,
                        stat=[flow.DEFAULT_SITE, flow.NGINX_BINARY], release_id=RID)
    lock = host.args_of('deploy_lock')[0]
    assert lock['base_dir'] == '/opt/app' and lock['service_user'] == 'app' and 'state' not in lock

    units, link, record = host.args_of('blue_green_slots')
    assert sorted(units['units']) == ['blue', 'green'] and units['remove_default_site'] is False
    assert units['expect_lb_config'] == dict(path=CONF, content=CONF_BLUE)
    assert '# hotswap-blue-green live=blue backup=none' in CONF_BLUE.splitlines()
    assert link == dict(app='app', base_dir='/opt/app', cancel_scale_down=True, link=dict(slot='green', release_id=RID))

    restart = dict(host.runs)['graceful_restart']
    assert restart['service'] == 'app-green' and restart['url'] == DIRECT_GREEN
    assert restart['expected_version'] == '2.0.0' and restart['executable'] == '/opt/app/slots/green/app'
    direct, public = host.args_of('health_check')
    assert direct['url'] == DIRECT_GREEN and public['url'] == PUBLIC
    assert direct['expected_version'] == public['expected_version'] == '2.0.0' and 'fail_on' not in public

    switch = dict(host.runs)['nginx_switch']
    assert switch == dict(path=CONF, content=CONF_GREEN)
    assert '# hotswap-blue-green live=green backup=blue' in switch['content'].splitlines()
    activate = dict(host.runs)['release_activate']
    assert activate == dict(base_dir='/opt/app', release_id=RID, previous_state='retired', activated_by=owner,
                            lock_owner=owner)

    assert record['state'] == dict(live='green', ports={'blue': 8081, 'green': 8082}, public_port=80, blue=R1,
                                   green=RID)
    assert record['scale_down'] == dict(slot='blue', delay=300, drain_timeout=60)
    # The same run prunes (never what a slot holds) and releases the lock.
    assert record['prune'] == dict(keep=5, protect=[RID, R1], lock_owner=owner)
    assert record['unlock'] == dict(owner=owner) and host.runs[-1] == ('blue_green_slots', record)

    res = r['result']
    assert res['slot'] == 'green' and res['changed'] is True and res['verdict'] == 'pass'
    assert res['previous_release'] == R1 and res['release'] == RID and res['version'] == '2.0.0'
    assert res['scale_down'] == 'app-blue stops in 300 s' and res['switch_seconds'] is not None
    assert r['changed'] is True
    assert r['facts']['hotswap_hook']['target_slot'] == 'green'


def test_the_read_and_the_lock_run_tell_the_check_and_the_push_that_the_release_is_not_staged(make_action):
    """Two probes fewer: release_info and deploy_lock with the release id answer what binary_upload's probe would."""
    platform = dict(os='linux', arch='amd64')
    host = good_host(release_info=[info(release_present=False, host_platform=platform)],
                     deploy_lock=[lambda a: dict(lock_answer(a), release_present=False, host_platform=platform)
                                  if a.get('state') != 'absent' else lock_answer(a)] * 2)
    r = run(make_action, host, dict(settings=settings()))
    assert not r.get('failed'), r
    rid = r['result']['release']
    assert dict(host.runs)['release_info']['release_id'] == host.args_of('deploy_lock')[0]['release_id'] == rid
    told = dict(failed=True, reason='not_staged', staged=False, host_platform=platform,
                msg='release %s is not staged' % rid)
    assert host.known_probes == [told, told]


def test_a_staged_release_is_probed_by_the_check_as_usual(make_action):
    host = good_host(release_info=[info(release_present=True, host_platform=dict(os='linux', arch='amd64'))])
    r = run(make_action, host, dict(settings=settings()))
    assert not r.get('failed'), r
    assert host.known_probes[0] is None


def test_a_rerun_of_the_live_release_switches_nothing(make_action):
    host = good_host(
        release_info=[info('green', backup='blue', green=RID, releases=((R1, '1.0.0'), (RID, '2.0.0')))],
        blue_green_slots=[slots_answer(link=dict(changed=False, link_changed=False, cancelled=False))],
        binary_upload=[dict(changed=False)],
        graceful_restart=[dict(changed=False, no_restart_reason='runs the binary of its slot')],
        nginx_switch=[dict(changed=False)], release_activate=[dict(changed=False, switched=False)])
    r = run(make_action, host, dict(settings=settings()))
    assert not r.get('failed'), r
    # No direct check of the slot and no record or scale-down: nginx stays where it is.
    assert host.names() == HEAD + ['binary_upload', 'blue_green_slots', 'graceful_restart', 'nginx_switch',
                                   'release_activate', 'health_check', 'blue_green_slots']
    link = host.args_of('blue_green_slots')[1]
    assert link['cancel_scale_down'] is False and link['link'] == dict(slot='green', release_id=RID)
    assert dict(host.runs)['graceful_restart']['service'] == 'app-green'
    # The config is written as it is: the live slot and the backup nginx has.
    assert dict(host.runs)['nginx_switch']['content'] == CONF_GREEN
    assert [a['url'] for a in host.args_of('health_check')] == [PUBLIC]
    finish = host.args_of('blue_green_slots')[-1]
    assert finish['prune']['protect'] == [RID, R1] and 'state' not in finish and 'scale_down' not in finish
    assert r['changed'] is False and r['result']['changed'] is False
    assert r['result']['slot'] == 'green' and r['result']['verdict'] == 'pass'
    assert r['result']['switch_seconds'] is None


def test_nginx_is_installed_through_the_package_action_before_the_units(make_action):
    host = good_host(release_info=[info(live='', blue=None, conf=None, nginx=False, default_site=True,
                                        releases=())],
                     blue_green_slots=[slots_answer(units=dict(changed=True, units_changed=['blue', 'green']))],
                     package=[dict(changed=True)])
    r = run(make_action, host, dict(settings=settings()))
    assert not r.get('failed'), r
    assert host.names()[:6] == ['release_info', 'binary_upload:check', 'deploy_lock:present', 'package',
                                'blue_green_slots', 'binary_upload']
    # An action, as a task would run it, not a module run.
    assert host.actions == [('hotswap.deploy.binary_upload', True), ('ansible.builtin.package', None),
                            ('hotswap.deploy.binary_upload', None)]
    assert dict(host.runs)['package'] == dict(name='nginx', state='present')
    units = host.args_of('blue_green_slots')[0]
    assert units['remove_default_site'] is True and units['expect_lb_config'] == dict(path=CONF, content='')
    # A first deploy: the blue slot, nothing to scale down.
    record = host.args_of('blue_green_slots')[-1]
    assert record['state']['live'] == 'blue' and 'scale_down' not in record
    assert r['result']['slot'] == 'blue' and r['result']['previous_release'] is None


def test_a_failed_nginx_install_fails_before_the_units_and_unlocks(make_action):
    host = good_host(release_info=[info(live='', blue=None, conf=None, nginx=False, releases=())],
                     package=[dict(failed=True, msg='No package matching nginx')])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] and r['failure']['stage'] == 'Install nginx from the distribution'
    assert host.names() == ['release_info', 'binary_upload:check', 'deploy_lock:present', 'package',
                            'deploy_lock:absent']
    assert "at 'Install nginx from the distribution': No package matching nginx" in r['msg']
    assert 'nginx was not configured: this was the first deploy.' in r['msg']


# -- a failure under the lock --------------------------------------------------------------------------

def test_a_slot_that_fails_to_start_is_stopped_and_pointed_back_and_nginx_is_untouched(make_action):
    host = good_host(graceful_restart=[dict(failed=True, stage='version', msg='reports 1.9.9.')])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] is True and r['hotswap_handled'] is True
    assert host.names() == HEAD + ['binary_upload', 'blue_green_slots', 'graceful_restart', 'blue_green_slots',
                                   'health_check', 'deploy_lock:absent']
    # green held nothing: its link goes away again (release_id '').
    assert host.args_of('blue_green_slots')[-1] == RESTORE_LINK
    assert_old_slot_checked(host.args_of('health_check')[-1])
    assert 'nginx_switch' not in host.names() and 'release_activate' not in host.names()
    assert_unlocked(host)
    stage = 'Start the release in the idle slot (stage version)'
    assert r['failure'] == dict(stage=stage, reason='reports 1.9.9.')
    assert ("failed on web1 at 'Start the release in the idle slot (stage version)': reports 1.9.9." in r['msg'])
    assert 'nginx still sends every request to the blue slot (%s); it was not switched.' % R1 in r['msg']
    assert 'The green slot was stopped and points at nothing again.' in r['msg']
    res = r['result']
    assert res['rolled_back_to'] is None and res['rollback_health'] == 'pass'
    assert res['verdict'] == "failed at '%s'" % stage and res['changed'] is True


def test_a_slot_that_held_a_release_is_pointed_back_at_it(make_action):
    r0 = '0.9.0-000000000000'
    host = good_host(release_info=[info(green=r0, releases=((R1, '1.0.0'), (r0, '0.9.0')))],
                     graceful_restart=[dict(failed=True, stage='ready', msg='not ready.')])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed']
    assert host.args_of('blue_green_slots')[-1]['link'] == dict(slot='green', release_id=r0)
    assert 'The green slot was stopped and points at %s again.' % r0 in r['msg']


@pytest.mark.parametrize('switched', [True, False])
def test_a_failed_check_through_nginx_switches_nginx_and_current_back(make_action, switched):
    host = good_host(health_check=[dict(outcome='pass'), dict(failed=True, outcome='fail', msg='2 of 20 probes.'),
                                   dict(outcome='pass')],
                     release_activate=[dict(changed=switched, switched=switched), dict(changed=True, switched=True)])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] is True
    revert = ['release_activate'] if switched else []
    assert host.names() == HEAD + ['binary_upload', 'blue_green_slots', 'graceful_restart', 'health_check',
                                   'nginx_switch', 'release_activate', 'health_check', 'nginx_switch',
                                   'blue_green_slots'] + revert + ['health_check', 'deploy_lock:absent']
    first, back = host.args_of('nginx_switch')
    assert first['content'] == CONF_GREEN and back == dict(path=CONF, content=CONF_BLUE)
    assert host.args_of('blue_green_slots')[-1] == RESTORE_LINK
    if switched:
        owner = owner_of(host)
        assert host.args_of('release_activate')[-1] == dict(
            base_dir='/opt/app', release_id=R1, previous_state='failed',
            activated_by='%s (automatic switch back)' % owner, lock_owner=owner)
    assert_old_slot_checked(host.args_of('health_check')[-1])
    assert_unlocked(host)
    assert r['failure']['stage'] == 'Verify through the load balancer'
    assert "at 'Verify through the load balancer': 2 of 20 probes." in r['msg']
    assert 'nginx was switched back to the blue slot (%s); its check through port 80: pass.' % R1 in r['msg']
    assert ('current is back on %s; %s is marked failed.' % (R1, RID) in r['msg']) is switched
    assert r['result']['rolled_back_to'] == R1 and r['result']['rollback_health'] == 'pass'


def test_a_current_that_cannot_be_switched_back_is_reported_and_the_old_slot_still_checked(make_action):
    # The one switch-back path (HostStepsAction._switch_back): nginx goes back first, so the old slot serves
    # whatever happens to current; a failed move of current is named, and the old slot is checked anyway.
    host = good_host(health_check=[dict(outcome='pass'), dict(failed=True, outcome='fail', msg='2 of 20 probes.'),
                                   dict(outcome='pass')],
                     release_activate=[dict(changed=True, switched=True), dict(failed=True, msg='disk full')])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] is True
    assert host.names()[-5:] == ['nginx_switch', 'blue_green_slots', 'release_activate', 'health_check',
                                 'deploy_lock:absent']
    assert_old_slot_checked(host.args_of('health_check')[-1])
    assert 'nginx was switched back to the blue slot (%s); its check through port 80: pass.' % R1 in r['msg']
    assert r['msg'].endswith('Switching current back to %s FAILED: disk full' % R1)
    assert 'is marked failed' not in r['msg']


def test_a_config_nginx_rejects_is_not_switched_back(make_action):
    host = good_host(nginx_switch=[dict(failed=True, rejected=True, test_output='bad directive "x"\ntest failed')])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] and r['failure']['stage'] == 'Fail on a config nginx rejects'
    # nginx_switch put the previous config back itself: written once, and nothing moved current.
    assert host.names().count('nginx_switch') == 1 and 'release_activate' not in host.names()
    assert 'nginx -t rejected the configuration: bad directive "x".' in r['msg']
    assert r['result']['rolled_back_to'] is None
    assert_unlocked(host)


def test_an_ansible_error_in_a_step_fails_the_step_and_the_restore_and_unlock_run(make_action):
    # Run phase by phase (as with hooks): the start phase's restart raises instead of answering.
    from ansible.errors import AnsibleError

    def broken(args):
        raise AnsibleError('the module failed to execute')
    host = good_host(graceful_restart=[broken])
    state = run(make_action, host, dict(settings=settings(), phase='begin'))['state']
    state = run(make_action, host, dict(settings=settings(), phase='upload', state=state))['state']
    r = run(make_action, host, dict(settings=settings(), phase='start', state=state))
    assert r['failed'] is True
    assert host.names() == HEAD + ['binary_upload', 'blue_green_slots', 'graceful_restart', 'blue_green_slots',
                                   'health_check', 'deploy_lock:absent']
    assert host.args_of('blue_green_slots')[-1] == RESTORE_LINK
    assert_unlocked(host)
    assert r['failure']['stage'] == 'Start the release in the idle slot'
    assert ("at 'Start the release in the idle slot': running hotswap.deploy.graceful_restart: the module failed "
            'to execute' in r['msg'])


def test_a_one_run_cutover_that_dies_is_undone_as_far_as_it_could_have_gone(make_action):
    # No step result comes back: nginx, the slot and current may all have moved, so each is put back (each
    # undo changes nothing where nothing had changed), and the old slot is checked through nginx.
    from ansible.errors import AnsibleError

    def broken(args):
        raise AnsibleError('the module failed to execute')
    host = good_host(graceful_restart=[broken])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] is True and host.cutovers == [['upload'] + ALL_STEPS]
    assert host.names() == HEAD + ['binary_upload', 'blue_green_slots', 'graceful_restart', 'nginx_switch',
                                   'blue_green_slots', 'release_activate', 'health_check', 'deploy_lock:absent']
    assert host.args_of('nginx_switch')[-1] == dict(path=CONF, content=CONF_BLUE)
    assert host.args_of('blue_green_slots')[-1] == RESTORE_LINK
    assert host.args_of('release_activate')[-1]['release_id'] == R1
    assert_old_slot_checked(host.args_of('health_check')[-1])
    assert_unlocked(host)
    assert ("at 'Start the release in the idle slot': running hotswap.deploy.blue_green_cutover: the module "
            'failed to execute' in r['msg'])


def test_a_concurrent_switch_is_refused_before_anything_is_written(make_action):
    host = good_host(blue_green_slots=[slots_answer(units=dict(changed=False, lb_config_moved=True))])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] is True
    # The old slot is only checked (fail_on never): no upload, link, restart, switch or record.
    assert host.names() == HEAD + ['health_check', 'deploy_lock:absent']
    assert_old_slot_checked(host.args_of('health_check')[0])
    assert_unlocked(host)
    assert r['failure']['stage'] == 'Refuse to go on after a concurrent switch'
    assert "at 'Refuse to go on after a concurrent switch': Blue-green deploy of app on web1: another deploy" in r['msg']
    assert r['result']['changed'] is False and r['changed'] is False


def test_a_failed_lock_changes_and_releases_nothing(make_action):
    host = good_host(deploy_lock=[dict(failed=True, msg='the deploy lock is held by other.')])
    r = run(make_action, host, dict(settings=settings()))
    assert r == dict(failed=True, changed=False, msg='the deploy lock is held by other.',
                     failure=dict(stage='Take the deploy lock', reason='the deploy lock is held by other.'),
                     hotswap_handled=True)
    assert host.names() == ['release_info', 'binary_upload:check', 'deploy_lock:present']


def test_a_failed_prune_after_the_switch_does_not_switch_back(make_action):
    # The finishing run released the lock after the failed prune: nothing more runs.
    host = good_host(blue_green_slots=[slots_answer(record=dict(
        failed=True, failed_step='prune', msg='permission denied', unlocked=True, scale_down='app-blue stops'))])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] and r['failure']['stage'] == 'Prune old releases'
    assert host.names()[-2:] == ['health_check', 'blue_green_slots']
    assert host.names().count('nginx_switch') == 1 and 'hotswap_handled' not in r
    assert r['result']['slot'] == 'green' and r['result']['failure'] == r['failure']


def test_a_failed_unlock_after_the_switch_does_not_switch_back(make_action):
    host = good_host(blue_green_slots=[slots_answer(record=dict(
        failed=True, failed_step='unlock', msg='the lock is held by someone else', unlocked=False))])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] and r['failure']['stage'] == 'Release the deploy lock'
    assert host.names()[-1] == 'blue_green_slots' and host.names().count('nginx_switch') == 1


def test_a_failed_record_switches_back_and_unlocks(make_action):
    host = good_host(blue_green_slots=[slots_answer(record=dict(failed=True, msg='scheduling the stop: no systemd'))])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] and r['failure']['stage'] == 'Record which slot is live' and r['hotswap_handled']
    assert host.names()[-5:] == ['nginx_switch', 'blue_green_slots', 'release_activate', 'health_check',
                                 'deploy_lock:absent']
    assert 'nginx was switched back to the blue slot' in r['msg']
    assert_unlocked(host)


# -- before the lock ---------------------------------------------------------------------------------------

def test_clashing_ports_are_refused_before_the_host_is_asked(make_action):
    host = good_host()
    r = run(make_action, host, dict(settings=settings(ports={'blue': 8081, 'green': 8081})))
    assert r['failed'] is True and r['hotswap_handled'] is True and r['changed'] is False
    assert r['failure']['stage'] == 'Check that blue and green have ports of their own'
    assert 'the ports clash or are out of range' in r['msg'] and 'Nothing was changed.' in r['msg']
    assert host.runs == [] and host.actions == []


def test_a_failed_upload_check_is_refused_before_anything_changes(make_action):
    host = good_host(binary_upload=[dict(failed=True, msg='checksum mismatch')])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] and r['hotswap_handled'] and r['msg'] == 'checksum mismatch'
    assert r['failure']['stage'] == 'Check the artifact against the host'
    assert host.names() == ['release_info', 'binary_upload:check']


def test_a_config_someone_else_wrote_is_refused(make_action):
    host = good_host(release_info=[info(conf='server { listen 80; }\n')])
    r = run(make_action, host, dict(settings=settings()))
    assert r['failed'] and r['failure']['stage'] == 'Refuse what the role must not touch'
    assert 'was not written by hotswap.deploy' in r['msg']
    assert host.names() == ['release_info', 'binary_upload:check']


# -- check mode --------------------------------------------------------------------------------------------

def test_check_mode_starts_and_verifies_nothing_and_does_not_activate_what_it_would_upload(make_action):
    host = good_host(blue_green_slots=[slots_answer(units=dict(changed=True, units_changed=['green']))])
    r = run(make_action, host, dict(settings=settings()), check_mode=True)
    assert not r.get('failed'), r
    assert host.names() == HEAD + ['binary_upload', 'blue_green_slots', 'nginx_switch', 'blue_green_slots']
    record = host.args_of('blue_green_slots')[-1]
    assert record['state']['live'] == 'green' and record['scale_down']['slot'] == 'blue'
    assert r['result']['verdict'] == 'skipped'


def test_check_mode_asks_the_restart_when_neither_link_nor_units_change(make_action):
    host = good_host(release_info=[info(blue=R1, green=RID, releases=((R1, '1.0.0'), (RID, '2.0.0')))],
                     blue_green_slots=[slots_answer(link=dict(changed=False, link_changed=False))],
                     binary_upload=[dict(changed=False)])
    run(make_action, host, dict(settings=settings()), check_mode=True)
    # graceful_restart says in check mode whether it would restart; an unchanged upload can be activated.
    assert 'graceful_restart' in host.names() and 'release_activate' in host.names()
    assert 'health_check' not in host.names()


# -- phases (a hook between two) ---------------------------------------------------------------------------

def test_begin_takes_the_lock_and_hands_on_the_state_and_the_hook_facts(make_action):
    host = good_host()
    r = run(make_action, host, dict(settings=settings(hooks={'after_verify': 'h.yml'}), phase='begin'))
    assert not r.get('failed'), r
    assert host.names() == HEAD and r['changed'] is False
    st = r['state']
    assert st['switch'] is True and st['target'] == 'green' and st['locked'] is True
    assert st['owner'] == owner_of(host) and st['release_id'] == RID and st['live'] == 'blue'
    hook = r['facts']['hotswap_hook']
    assert hook['rollout'] == 'blue_green' and hook['batch'] is None and hook['host'] == 'web1'
    assert hook['release'] == RID and hook['previous_release'] == R1 and hook['target_slot'] == 'green'
    assert hook['target_url'] == DIRECT_GREEN and hook['release_dir'] == '/opt/app/releases/' + RID
    assert r['facts']['blue_green_context']['live_slot'] == 'blue'


def test_the_phases_one_by_one_make_the_runs_of_one_task(make_action):
    host = good_host()
    state = run(make_action, host, dict(settings=settings(), phase='begin'))['state']
    for phase in ('upload', 'start', 'switch', 'verify'):
        state = run(make_action, host, dict(settings=settings(), phase=phase, state=state))['state']
    r = run(make_action, host, dict(settings=settings(), phase='finish', state=state))
    assert not r.get('failed'), r
    assert host.names() == HEAD + ['binary_upload', 'blue_green_slots', 'graceful_restart', 'health_check',
                                   'nginx_switch', 'release_activate', 'health_check', 'blue_green_slots']
    assert r['result']['slot'] == 'green' and r['result']['verdict'] == 'pass'


def test_abort_passes_on_a_failure_a_phase_handled_itself(make_action):
    host = good_host()
    handled = dict(failed=True, changed=True, msg='failed and switched back', failure=dict(stage='x', reason='y'),
                   result=dict(slot='green'), hotswap_handled=True, other='not passed on')
    r = run(make_action, host, dict(settings=settings(), phase='abort', state=dict(locked=True),
                                    failed_task='Start the release', failed_result=handled))
    assert host.runs == []
    for key in ('failed', 'changed', 'msg', 'failure', 'result', 'hotswap_handled'):
        assert r[key] == handled[key]
    assert 'other' not in r


def test_abort_after_a_failed_hook_switches_back_and_unlocks(make_action):
    host = good_host()
    state = run(make_action, host, dict(settings=settings(), phase='begin'))['state']
    for phase in ('upload', 'start'):
        state = run(make_action, host, dict(settings=settings(), phase=phase, state=state))['state']
    before = len(host.runs)
    r = run(make_action, host, dict(settings=settings(), phase='abort', state=state, failed_task='Stop the slot',
                                    failed_result={'msg': 'boom'}))
    assert r['failed'] is True and r['hotswap_handled'] is True
    assert host.names()[before:] == ['blue_green_slots', 'health_check', 'deploy_lock:absent']
    assert host.args_of('blue_green_slots')[-1] == RESTORE_LINK
    assert_unlocked(host)
    assert r['failure'] == dict(stage='Stop the slot', reason='boom')
    assert "at 'Stop the slot': boom" in r['msg'] and 'it was not switched' in r['msg']


def test_abort_before_the_lock_runs_nothing(make_action):
    host = good_host()
    r = run(make_action, host, dict(settings=settings(), phase='abort', state={}, failed_task='Run the hook',
                                    failed_result={'msg': 'boom'}))
    assert host.runs == []
    assert r['failed'] and r['changed'] is False and r['msg'] == 'boom'
    assert r['failure'] == dict(stage='Run the hook', reason='boom')


def test_settings_are_validated(make_action):
    r = run(make_action, BGHost(), dict(settings=dict(app='app')))
    assert r['failed'] and 'missing required arguments' in r['msg'] and 'blue_green__settings' in r['msg']
