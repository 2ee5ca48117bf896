# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The decisions of hotswap.deploy.blue_green_deploy (plugins/plugin_utils/blue_green_flow.py), without hosts:
the input checks, the plan, the refusals, what the role writes (nginx config, slot units, state file), what a
failure undoes and the texts and results it reports."""

from __future__ import annotations

import copy

import pytest

from core_compat import import_controller

from ansible_collections.hotswap.deploy.plugins.module_utils.slots import live_slots

flow = import_controller('ansible_collections.hotswap.deploy.plugins.plugin_utils.blue_green_flow')
ACTION = import_controller('ansible_collections.hotswap.deploy.plugins.action.blue_green_deploy')
SERVICE = import_controller('ansible_collections.hotswap.deploy.plugins.filter.service').service_settings(
    {}, 'app', 8081, strict=True)
StepFailed = flow.StepFailed

HOST = 'h1'
SHA = 'sha256:' + 'a' * 64
R0, R1, R2 = '0.9.0-000000000000', '1.0.0-111111111111', '2.0.0-222222222222'
CONF = '/etc/nginx/conf.d/hotswap-app.conf'


def settings(**kw):
    """Every key of the action's SETTINGS_SPEC, at its default, with the required ones filled in."""
    s = dict((k, copy.deepcopy(v.get('default'))) for k, v in ACTION.SETTINGS_SPEC.items())
    s.update(app='app', base_dir='/opt/app', binary='app', ports={'blue': 8081, 'green': 8082},
             service=copy.deepcopy(SERVICE), version='2.0.0', checksum=SHA, artifact='/dist/app')
    s.update(kw)
    return s


def test_the_helper_has_every_setting():
    assert set(settings()) == set(ACTION.SETTINGS_SPEC)


def slot(name, release=None, real=False):
    path = '/opt/app/slots/%s' % name
    return dict(path=path, exists=bool(release) or real, islink=bool(release) and not real, release=release)


def info(live='', backup='', blue=None, green=None, releases=(), conf=None, default_site=False, nginx=True, **kw):
    """What release_info returns for the blue_green role's read (releases are (id, version, present))."""
    if conf is None and live:
        conf = flow.nginx_config(settings(), live, backup)
    result = dict(
        releases=[dict(release_id=r, version=v, present=p) for r, v, p in releases],
        slots=dict(blue=slot('blue', blue), green=slot('green', green)),
        lb_config=conf, live_slot=live, backup_slot=backup, current_blocked=False, problems=[],
        stat={flow.DEFAULT_SITE: dict(exists=default_site, islnk=default_site),
              flow.NGINX_BINARY: dict(exists=nginx, islnk=False)})
    result.update(kw)
    return result


def refused(s, platform='linux'):
    with pytest.raises(StepFailed) as e:
        flow.check_inputs(s, HOST, platform)
    return e.value


# -- check_inputs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('kw', [
    dict(artifact='/dist/app'),
    dict(artifact='', artifact_url='https://example.com/app'),
    dict(artifact='', release_id=R1, checksum='', version=''),
    dict(action='switch_back', artifact='', checksum='', version=''),
    dict(hooks={'before_upload': 'a.yml', 'after_verify': 'b.yml'}),
    dict(ports={'blue': '8081', 'green': '8082'}, public_port='8080'),
    dict(scale_down_delay=0),
])
def test_good_input_passes(kw):
    assert flow.check_inputs(settings(**kw), HOST, 'linux') is None


def test_ports_that_clash_are_refused():
    e = refused(settings(ports={'blue': 8081, 'green': 8081}))
    assert e.stage == 'Check that blue and green have ports of their own'
    assert 'blue slot 8081, green slot 8081, public (nginx) 80' in e.reason
    assert 'Each slot needs its own port' in e.reason and e.reason.endswith('Nothing was changed.')
    assert 'Blue-green deploy of app on h1' in e.reason


@pytest.mark.parametrize('ports, public', [
    ({'blue': 8081, 'green': 8082}, 8082),
    ({'blue': 8081, 'green': 70000}, 80),
    ({'blue': 0, 'green': 8082}, 80),
    ({'blue': 'x', 'green': 8082}, 80),
    ({'blue': 8081}, 80),
    ({'blue': 8081, 'green': 8082}, None),
])
def test_ports_out_of_range_or_missing_are_refused(ports, public):
    assert 'Each slot needs its own port' in refused(settings(ports=ports, public_port=public)).reason


@pytest.mark.parametrize('kw', [
    dict(app='my app'), dict(app=''), dict(app='-app'), dict(scale_down_delay=-1), dict(keep=0),
    dict(ready_timeout=0), dict(drain_timeout=-1.5),
])
def test_a_bad_name_timing_or_limit_is_refused(kw):
    e = refused(settings(**kw))
    assert e.stage == 'Check the name, timings and limits'
    assert "the app name must be letters, digits, '.', '_' or '-'" in e.reason
    assert 'Nothing was changed.' in e.reason


def test_the_timings_are_shown_as_given():
    e = refused(settings(keep=0, ready_timeout=30.0, drain_timeout=2.5))
    assert 'keep >= 1 (got 0)' in e.reason and '(got 30, 2.5)' in e.reason


@pytest.mark.parametrize('kw', [
    dict(release_id=R1),
    dict(artifact_url='https://example.com/app'),
    dict(artifact=''),
])
def test_a_deploy_needs_exactly_one_source(kw):
    e = refused(settings(**kw))
    assert e.stage == 'Check what to deploy'
    assert 'give exactly one of artifact' in e.reason and 'Nothing was changed.' in e.reason


def test_switch_back_takes_no_artifact():
    e = refused(settings(action='switch_back'))
    assert e.stage == 'Check what to deploy'
    assert 'Blue-green switch_back of app on h1: switch_back takes no artifact' in e.reason
    assert "artifact='/dist/app'" in e.reason


@pytest.mark.parametrize('kw', [
    dict(checksum='sha256:abc'), dict(checksum='a' * 64), dict(checksum=''), dict(version=''),
    dict(artifact='', artifact_url='https://example.com/app', checksum='md5:' + 'a' * 32),
])
def test_an_artifact_needs_a_version_and_a_sha256(kw):
    e = refused(settings(**kw))
    assert e.stage == 'Check the version and checksum of the artifact'
    assert 'an artifact needs blue_green_version' in e.reason and 'sha256:<64 hex digits>' in e.reason


def test_a_windows_host_is_refused():
    e = refused(settings(), platform='windows')
    assert e.stage == 'Refuse a Windows host'
    assert 'h1 is a Windows host' in e.reason and 'supports Linux hosts only' in e.reason
    assert 'Nothing was changed.' in e.reason


def test_an_unknown_hook_is_refused():
    e = refused(settings(hooks={'before_upload': 'a.yml', 'before_switch': 'b.yml'}))
    assert e.stage == 'Check the hooks'
    assert 'blue_green_hooks takes only the keys before_upload, after_upload' in e.reason
    assert "'before_switch'" in e.reason and 'Nothing was changed.' in e.reason


def test_the_checks_come_in_order():
    """Ports first: a run with everything wrong is told about the ports."""
    s = settings(ports={'blue': 1, 'green': 1}, app='bad name', artifact='', hooks={'x': 1})
    assert refused(s, 'windows').stage == 'Check that blue and green have ports of their own'


def test_uploads_and_lock_action():
    assert flow.uploads(settings()) and flow.uploads(settings(artifact='', artifact_url='u'))
    assert not flow.uploads(settings(artifact='', release_id=R1))
    assert flow.lock_action(settings(), R2) == 'deploy %s' % R2
    assert flow.lock_action(settings(action='switch_back'), R1) == 'switch back'


# -- names and addresses -----------------------------------------------------------------------------------

def test_names():
    s = settings(app='my-app.v2')
    assert flow.conf_path(s) == '/etc/nginx/conf.d/hotswap-my-app.v2.conf'
    assert flow.upstream(s) == 'hotswap_my_app_v2'
    assert flow.release_dir(s, R1) == '/opt/app/releases/' + R1


@pytest.mark.parametrize('address, host', [('0.0.0.0', '127.0.0.1'), ('*', '127.0.0.1'), ('', '127.0.0.1'),
                                           ('127.0.0.1', '127.0.0.1'), ('127.0.0.2', '127.0.0.2')])
def test_slot_host(address, host):
    assert flow.slot_host(settings(listen_address=address)) == host


@pytest.mark.parametrize('url, path', [
    ('http://127.0.0.1:8081/healthz', '/healthz'),
    ('http://127.0.0.1:8081/healthz?full=1&x=2', '/healthz?full=1&x=2'),
    ('http://127.0.0.1:8081', '/'),
    ('http://127.0.0.1:8081?ready', '/?ready'),
    ('', '/'),
    (None, '/'),
])
def test_health_path_keeps_the_query(url, path):
    s = settings()
    s['service']['health_url'] = url
    assert flow.health_path(s) == path


def test_direct_and_public_url_use_the_health_path():
    s = settings(public_port='8080', listen_address='127.0.0.2')
    s['service']['health_url'] = 'http://127.0.0.1:9999/ready?deep=1'
    assert flow.direct_url(s, 'green') == 'http://127.0.0.2:8082/ready?deep=1'
    assert flow.public_url(s) == 'http://127.0.0.1:8080/ready?deep=1'


# -- refusal -----------------------------------------------------------------------------------------------

def test_a_clean_host_is_not_refused():
    assert flow.refusal(settings(), info(), HOST) is None
    assert flow.refusal(settings(), info('blue', blue=R1, green=R0), HOST) is None


def test_a_real_directory_in_slots_is_refused():
    i = info()
    i['slots']['green'] = slot('green', real=True)
    msg = flow.refusal(settings(), i, HOST)
    assert msg.startswith('Blue-green deploy of app on h1: refused before changing anything.')
    assert '/opt/app/slots/green is a real file or directory, not a slot link; move it away.' in msg
    assert 'blue is' not in msg


def test_a_foreign_nginx_config_is_refused():
    msg = flow.refusal(settings(), info(conf='server { listen 80; }\n'), HOST)
    assert '%s exists but was not written by hotswap.deploy' % CONF in msg
    assert 'set another blue_green_app' in msg


def test_a_blocked_current_is_refused():
    msg = flow.refusal(settings(), info(current_blocked=True, problems=['/opt/app/current is a real directory.']),
                       HOST)
    assert 'refused before changing anything. /opt/app/current is a real directory.' in msg


def test_the_default_site_on_port_80_is_refused_unless_disabled():
    i = info(default_site=True)
    msg = flow.refusal(settings(disable_default_site=False), i, HOST)
    assert "nginx's default site (/etc/nginx/sites-enabled/default) is the default server on port 80" in msg
    assert 'blue_green_disable_default_site=true' in msg
    assert flow.refusal(settings(disable_default_site=True), i, HOST) is None
    assert flow.default_site_in_the_way(settings(), i)
    # Another public port, or the role's config is there already (the site was seen to then).
    assert flow.refusal(settings(disable_default_site=False, public_port=8080), i, HOST) is None
    assert not flow.default_site_in_the_way(settings(public_port='8080'), i)
    ours = info('blue', blue=R1, default_site=True)
    assert flow.refusal(settings(disable_default_site=False), ours, HOST) is None
    assert not flow.default_site_in_the_way(settings(), ours)


def test_every_problem_is_named_at_once():
    i = info(conf='# someone else\n', default_site=True)
    i['slots']['blue'] = slot('blue', real=True)
    msg = flow.refusal(settings(action='switch_back', disable_default_site=False), i, HOST)
    assert msg.startswith('Blue-green switch_back of app on h1')
    assert 'slots/blue is a real' in msg and 'not written by hotswap.deploy' in msg
    # The config exists (someone else's): the default site is no longer the role's business.
    assert "default site" not in msg


def test_nginx_missing():
    assert flow.nginx_missing(info(nginx=False))
    assert not flow.nginx_missing(info(nginx=True))
    assert not flow.nginx_missing(info('blue', blue=R1, nginx=False))


# -- plan --------------------------------------------------------------------------------------------------

def test_first_deploy_goes_to_blue_and_switches():
    st = flow.plan(settings(), info(), R2)
    assert st['live'] == '' and st['target'] == 'blue' and st['switch'] is True
    assert st['release_id'] == R2 and st['version'] == '2.0.0' and st['live_release'] is None
    assert st['slot_release'] == {'blue': None, 'green': None}
    assert st['conf_orig'] == '' and st['backup_now'] == '' and st['previous_state'] == 'retired'


def test_re_deploy_of_the_live_release_converges_without_a_switch():
    i = info('blue', blue=R2, green=R1)
    st = flow.plan(settings(), i, R2)
    assert st['target'] == 'blue' and st['live'] == 'blue' and st['switch'] is False
    assert st['live_release'] == R2 and st['conf_orig'] == i['lb_config']


def test_a_new_release_goes_to_the_idle_slot():
    st = flow.plan(settings(), info('blue', 'green', blue=R1, green=R0), R2)
    assert st['live'] == 'blue' and st['target'] == 'green' and st['switch'] is True
    assert st['live_release'] == R1 and st['backup_now'] == 'green' and st['previous_state'] == 'retired'
    st = flow.plan(settings(), info('green', blue=R0, green=R1), R2)
    assert st['target'] == 'blue' and st['live_release'] == R1


def test_a_release_on_the_host_takes_its_version_from_the_ledger():
    s = settings(artifact='', checksum='', version='', release_id=R0)
    i = info('blue', blue=R1, releases=[(R0, '0.9.0', True), (R1, '1.0.0', True)])
    st = flow.plan(s, i, R0)
    assert st['target'] == 'green' and st['version'] == '0.9.0'
    assert flow.plan(s, info('blue', blue=R1), R0)['version'] == ''


def test_switch_back_goes_to_the_other_slot_and_its_release():
    s = settings(action='switch_back', artifact='', checksum='', version='')
    i = info('green', 'blue', blue=R1, green=R2, releases=[(R1, '1.0.0', True), (R2, '2.0.0', True)])
    st = flow.plan(s, i, '')
    assert st['live'] == 'green' and st['target'] == 'blue' and st['switch'] is True
    assert st['release_id'] == R1 and st['version'] == '1.0.0' and st['live_release'] == R2
    assert st['previous_state'] == 'failed'


def test_switch_back_without_a_live_slot_or_a_release_plans_nothing():
    s = settings(action='switch_back', artifact='', checksum='', version='')
    st = flow.plan(s, info(), '')
    assert st['target'] == '' and st['release_id'] == '' and st['switch'] is False
    st = flow.plan(s, info('blue', blue=R1), '')
    assert st['target'] == 'green' and st['release_id'] == ''


# -- missing_release ---------------------------------------------------------------------------------------

def test_an_upload_or_a_present_release_is_not_missing():
    assert flow.missing_release(settings(), dict(release_id=R2, live='', target='blue'), info(), HOST) is None
    s = settings(artifact='', release_id=R1)
    i = info(releases=[(R1, '1.0.0', True)])
    assert flow.missing_release(s, flow.plan(s, i, R1), i, HOST) is None


def test_switch_back_with_nothing_live():
    s = settings(action='switch_back', artifact='', checksum='', version='')
    i = info()
    msg = flow.missing_release(s, flow.plan(s, i, ''), i, HOST)
    assert msg == ('Blue-green switch_back of app on h1: nothing to switch back from: no slot is live (%s is '
                   'missing); deploy a release first. Nothing was changed.' % CONF)


def test_switch_back_to_an_empty_slot():
    s = settings(action='switch_back', artifact='', checksum='', version='')
    i = info('blue', blue=R1, releases=[(R1, '1.0.0', True)])
    msg = flow.missing_release(s, flow.plan(s, i, ''), i, HOST)
    assert 'the green slot holds no release, so there is nothing to switch back to' in msg
    assert msg.endswith('Nothing was changed.')


def test_a_release_that_is_not_on_the_host():
    s = settings(artifact='', release_id=R2)
    i = info('blue', blue=R1, releases=[(R0, '0.9.0', False), (R1, '1.0.0', True)])
    msg = flow.missing_release(s, flow.plan(s, i, R2), i, HOST)
    assert ('Blue-green deploy of app on h1: release %s is not on this host (releases present: %s); deploy it with '
            'an artifact, or name one of these. Nothing was changed.' % (R2, R1)) == msg
    assert '(releases present: none)' in flow.missing_release(s, flow.plan(s, info(), R2), info(), HOST)


def test_switch_back_to_a_pruned_release():
    s = settings(action='switch_back', artifact='', checksum='', version='')
    i = info('blue', blue=R1, green=R0, releases=[(R1, '1.0.0', True)])
    assert 'release %s is not on this host' % R0 in flow.missing_release(s, flow.plan(s, i, ''), i, HOST)


# -- what the role writes ------------------------------------------------------------------------------------

def test_nginx_config_with_a_backup():
    conf = flow.nginx_config(settings(), 'green', 'blue')
    lines = conf.splitlines()
    assert '# hotswap-blue-green live=green backup=blue' in lines
    assert lines[3:5] == ['upstream hotswap_app {', '    server 127.0.0.1:8082;']
    assert '    server 127.0.0.1:8081 backup;' in lines
    assert '    listen 80 default_server;' in lines and '        proxy_pass http://%s;' % flow.upstream(settings()) in lines
    assert '    keepalive 32;' in lines and '    keepalive_timeout 30s;' in lines
    assert '        proxy_read_timeout 60s;' in lines
    assert conf.endswith('}\n')
    assert live_slots(conf) == ('green', 'blue')
    assert flow.CONFIG_MARKER in conf


def test_nginx_config_without_a_backup():
    conf = flow.nginx_config(settings(public_port='8080', listen_address='127.0.0.2'), 'blue', '')
    assert '# hotswap-blue-green live=blue backup=none' in conf.splitlines()
    assert ' backup;' not in conf and '8082' not in conf
    assert '    server 127.0.0.2:8081;' in conf and '    listen 8080 default_server;' in conf
    assert live_slots(conf) == ('blue', '')


def test_slot_unit():
    unit = flow.slot_unit(settings(), 'green')
    lines = unit.splitlines()
    assert 'ExecStart=/opt/app/slots/green/app ' in lines
    assert 'Type=simple' in lines and not any(line.startswith('NotifyAccess') for line in lines)
    assert 'TimeoutStopSec=65' in lines and 'TimeoutStartSec=65' in lines
    assert 'EnvironmentFile=-/opt/app/slots/green/.hotswap-environment' in lines
    assert 'RuntimeDirectory=app-green' in lines and 'User=app' in lines and 'Group=app' in lines
    assert 'Description=app green slot (hotswap.deploy blue_green)' in lines
    assert '# 8082; nginx sends traffic to the live slot only.' in lines
    assert lines[-2:] == ['[Install]', 'WantedBy=multi-user.target'] and unit.endswith('\n')


def test_slot_unit_of_a_notify_service_with_args():
    s = settings(service_type='notify', drain_timeout=10.5, ready_timeout=30.0, listen_address='0.0.0.0')
    s['service']['service_args'] = '--listen {address}:{port} --slot {slot} --ready {ready_timeout}'
    lines = flow.slot_unit(s, 'blue').splitlines()
    assert lines[lines.index('Type=notify') + 1] == 'NotifyAccess=all'
    assert 'TimeoutStopSec=15' in lines and 'TimeoutStartSec=35' in lines
    assert 'ExecStart=/opt/app/slots/blue/app --listen 0.0.0.0:8081 --slot blue --ready 30' in lines


def test_state_record():
    s = settings(ports={'blue': '8081', 'green': 8082}, public_port='80')
    st = flow.plan(s, info('blue', blue=R1, green=R0), R2)
    assert flow.state_record(s, st) == dict(live='green', blue=R1, green=R2, ports={'blue': 8081, 'green': 8082},
                                            public_port=80)
    st = flow.plan(s, info(), R2)
    assert flow.state_record(s, st) == dict(live='blue', blue=R2, green=None, ports={'blue': 8081, 'green': 8082},
                                            public_port=80)


# -- module arguments ----------------------------------------------------------------------------------------

def planned(s=None, i=None, rid=R2, **kw):
    s = s or settings()
    st = flow.plan(s, i or info('blue', blue=R1, green=R0), rid)
    st.update(owner='app deploy %s by me' % rid, reclaim_key='k', units_changed=[])
    st.update(kw)
    return st


def test_upload_args():
    s = settings()
    st = planned(s)
    args = flow.upload_args(s, st)
    assert args['src'] == '/dist/app' and 'url' not in args and args['lock_owner'] == st['owner']
    assert args['release_id'] == R2 and args['name'] == 'app' and args['checksum'] == SHA
    assert 'lock_owner' not in flow.upload_args(s, dict(release_id=R2), check=True)


def test_restart_args_name_the_slot_and_its_binary():
    s = settings()
    args = flow.restart_args(s, planned(s))
    assert args['service'] == 'app-green' and args['url'] == 'http://127.0.0.1:8082/healthz'
    assert args['executable'] == '/opt/app/slots/green/app' and args['expected_version'] == '2.0.0'
    assert args['enabled'] is True and args['strategy'] == 'restart'
    # A changed unit: a restart whatever the slot runs.
    assert 'executable' not in flow.restart_args(s, planned(s, units_changed=['green']))
    s['service']['check_version'] = False
    assert 'expected_version' not in flow.restart_args(s, planned(s))


def test_health_args():
    s = settings()
    args = flow.health_args(s, 'http://127.0.0.1:8082/', '2.0.0')
    assert args == dict(url='http://127.0.0.1:8082/', expected_version='2.0.0', retries=20, interval=1, successes=2, timeout=3)
    args = flow.health_args(s, 'http://127.0.0.1:8082/', None, fail_on='never', successes=False)
    assert args == dict(url='http://127.0.0.1:8082/', retries=20, interval=1, timeout=3, fail_on='never')


def test_activate_and_revert_args():
    s = settings()
    st = planned(s)
    assert flow.activate_args(s, st) == dict(base_dir='/opt/app', release_id=R2, previous_state='retired',
                                             activated_by=st['owner'], lock_owner=st['owner'])
    revert = flow.revert_activate_args(s, st)
    assert revert['release_id'] == R1 and revert['previous_state'] == 'failed'
    assert revert['activated_by'].endswith('(automatic switch back)')


def test_finish_records_scales_down_prunes_protecting_both_slots_and_unlocks():
    s = settings(keep=3)
    st = planned(s)
    owner = st['owner']
    assert flow.finish_args(s, st, False) == dict(
        app='app', base_dir='/opt/app', state=flow.state_record(s, st), scale_down=flow.scale_down_args(s, 'blue'),
        prune=dict(keep=3, protect=[R2, R1], lock_owner=owner), unlock=dict(owner=owner))
    # A first deploy: nothing to scale down, and in check mode no .hotswap/ to record into.
    first = planned(s, info())
    assert flow.finish_args(s, first, False)['prune']['protect'] == [R2] and 'scale_down' not in flow.finish_args(
        s, first, False)
    assert 'state' in flow.finish_args(s, first, False) and 'state' not in flow.finish_args(s, first, True)
    # No switch (a re-run of the live release): only the prune and the unlock.
    converge = planned(s, info('green', 'blue', blue=R1, green=R2))
    assert converge['switch'] is False
    assert sorted(flow.finish_args(s, converge, False)) == ['app', 'base_dir', 'prune', 'unlock']


def test_finish_stage():
    assert flow.finish_stage(dict(failed=True, failed_step='prune')) == flow.STAGE_PRUNE
    assert flow.finish_stage(dict(failed=True, failed_step='unlock')) == flow.STAGE_UNLOCK
    assert flow.finish_stage(dict(failed=True, msg='scheduling the stop')) == flow.STAGE_RECORD


def test_lb_backup_and_unit_changed_on_live():
    switch = planned()
    assert flow.lb_backup(switch) == 'blue'
    converge = planned(i=info('blue', 'green', blue=R2, green=R1))
    assert converge['switch'] is False and flow.lb_backup(converge) == 'green'
    assert flow.lb_backup(planned(i=info())) == ''
    assert flow.unit_changed_on_live(converge, ['blue']) and not flow.unit_changed_on_live(converge, ['green'])
    assert not flow.unit_changed_on_live(switch, ['blue', 'green'])


def test_rejected_and_concurrent_messages():
    out = ('nginx: [emerg] a duplicate default server for 0.0.0.0:80\n'
           'nginx: configuration file /etc/nginx/nginx.conf test failed')
    msg = flow.rejected_msg(settings(), HOST, 'green', dict(test_output=out))
    assert 'at the green slot: nginx -t rejected the configuration: nginx: [emerg] a duplicate default' in msg
    assert 'test failed' not in msg and 'The previous %s was put back' % CONF in msg
    assert 'another switched nginx' not in flow.concurrent_switch_msg(settings(), HOST)
    assert 'another deploy switched nginx (%s)' % CONF in flow.concurrent_switch_msg(settings(), HOST)


# -- hooks and results ---------------------------------------------------------------------------------------

def test_hook_facts():
    facts = flow.hook_facts(settings(), planned(), HOST)
    hook, context = facts['hotswap_hook'], facts['blue_green_context']
    assert hook['rollout'] == 'blue_green' and hook['batch'] is None and hook['host'] == HOST
    assert hook['target_slot'] == 'green' and hook['live_slot'] == 'blue' and hook['target_port'] == 8082
    assert hook['release_dir'] == '/opt/app/releases/' + R2 and hook['release'] == R2
    assert hook['previous_release'] == R1 and hook['live_release'] == R1 and hook['version'] == '2.0.0'
    assert hook['target_url'] == 'http://127.0.0.1:8082/healthz' and hook['public_url'] == 'http://127.0.0.1:80/healthz'
    assert set(hook) - set(context) == {'rollout', 'host', 'previous_release', 'batch'}
    assert all(hook[k] == v for k, v in context.items())
    first = flow.hook_facts(settings(), planned(i=info()), HOST)['hotswap_hook']
    assert first['live_slot'] is None and first['previous_release'] is None and first['target_slot'] == 'blue'


RESULT_KEYS = {'host', 'app', 'previous_release', 'release', 'version', 'slot', 'seconds', 'changed', 'verdict'}


def test_done_result():
    st = planned(public_outcome='pass', switch_seconds=0.25, scale_down='blue stops in 300 s (app-scale-down.timer)')
    result = flow.done_result(settings(), st, HOST, 12.345)
    assert set(result) == RESULT_KEYS | {'switch_seconds', 'scale_down'}
    assert result['changed'] is True and result['verdict'] == 'pass' and result['seconds'] == 12.3
    assert result['slot'] == 'green' and result['release'] == R2 and result['previous_release'] == R1
    assert result['switch_seconds'] == 0.25 and result['scale_down'].startswith('blue stops')
    converge = flow.done_result(settings(), planned(i=info('blue', blue=R2), switch_seconds=0.1), HOST, 1)
    assert converge['changed'] is False and converge['verdict'] == 'skipped' and converge['switch_seconds'] is None


def test_restore_plan():
    st = planned()
    assert flow.restore_plan(st) == dict(lb=False, stop=False, scale_down=False, link=False, current=False,
                                         touched=False)
    st.update(link_changed=True, conf_text='new config')
    assert flow.restore_plan(st) == dict(lb=True, stop=True, scale_down=False, link=True, current=False, touched=True)
    st.update(link_changed=False, restart_changed=True, switched=True)
    plan = flow.restore_plan(st)
    assert plan['stop'] and plan['touched'] and not plan['link'] and plan['current']
    # The target ran the release already (a switch back within the delay): its scale-down goes back.
    st = planned(cancelled=True, conf_text=planned()['conf_orig'])
    assert flow.restore_plan(st) == dict(lb=False, stop=False, scale_down=True, link=False, current=False,
                                         touched=False)
    # A converge is never stopped; a first deploy has no current to go back to.
    converge = planned(i=info('blue', blue=R2), link_changed=True, restart_changed=True, cancelled=True)
    plan = flow.restore_plan(converge)
    assert not plan['stop'] and not plan['touched'] and not plan['scale_down'] and plan['link']
    first = planned(i=info(), switched=True, link_changed=True, conf_text='x')
    assert flow.restore_plan(first)['current'] is False and flow.restore_plan(first)['lb'] is True


def test_failed_result():
    st = planned(link_changed=True, conf_text='new')
    plan = flow.restore_plan(st)
    back = dict(stage=flow.STAGE_PUBLIC, reason='boom', health='pass')
    result = flow.failed_result(settings(), st, HOST, 3.0, plan, back)
    assert set(result) == RESULT_KEYS | {'rolled_back_to', 'rollback_health'}
    assert result['changed'] is True and result['verdict'] == "failed at 'Verify through the load balancer'"
    assert result['rolled_back_to'] == R1 and result['rollback_health'] == 'pass'
    result = flow.failed_result(settings(), st, HOST, 3.0, plan, dict(back, lb_error='no', health=None))
    assert result['rolled_back_to'] is None and result['rollback_health'] == 'not run'
    st = planned()
    result = flow.failed_result(settings(), st, HOST, 3.0, flow.restore_plan(st), dict(stage='x', reason='y'))
    assert result['changed'] is False and result['rolled_back_to'] is None


def summary(st, **back):
    back.setdefault('stage', flow.STAGE_PUBLIC)
    back.setdefault('reason', 'the check failed \n')
    return flow.failure_summary(settings(), st, HOST, flow.restore_plan(st), back)


def test_failure_summary_names_the_release_slot_and_stage():
    msg = summary(planned())
    assert msg.startswith("Blue-green deploy of app 2.0.0 (release %s, green slot, port 8082) failed on h1 at "
                          "'Verify through the load balancer': the check failed nginx" % R2)


def test_failure_summary_before_the_switch():
    msg = summary(planned(), stage=flow.STAGE_DIRECT)
    assert 'nginx still sends every request to the blue slot (%s); it was not switched.' % R1 in msg
    assert 'stopped' not in msg and 'current' not in msg


def test_failure_summary_after_the_switch():
    st = planned(conf_text='new', link_changed=True, restart_changed=True, switched=True)
    msg = summary(st, health='pass', reverted=True)
    assert 'nginx was switched back to the blue slot (%s); its check through port 80: pass.' % R1 in msg
    assert 'The green slot was stopped and points at %s again.' % R0 in msg
    assert msg.endswith('current is back on %s; %s is marked failed.' % (R1, R2))
    assert 'its check through port 80: not run.' in summary(st)


def test_failure_summary_of_a_first_deploy():
    first = planned(i=info(), link_changed=True, restart_changed=True)
    msg = summary(first)
    assert 'nginx was not configured: this was the first deploy.' in msg
    assert 'The blue slot was stopped and points at nothing again.' in msg
    msg = summary(planned(i=info(), conf_text='new', restart_changed=True))
    assert 'This was the first deploy: the nginx config was removed again.' in msg
    assert msg.endswith('The blue slot was stopped.')


def test_failure_summary_when_nginx_could_not_be_switched_back():
    msg = summary(planned(conf_text='new'), lb_error='nginx -t failed.')
    assert 'Switching nginx back FAILED: nginx -t failed. Repair %s by hand.' % CONF in msg
    assert 'switched back to' not in msg


def test_failure_summary_of_a_rescheduled_scale_down():
    st = planned(cancelled=True)
    msg = summary(st, scale_down='green stops in 300 s (app-scale-down.timer)')
    assert msg.endswith('The green slot keeps running: green stops in 300 s (app-scale-down.timer).')


def test_failure_summary_when_current_could_not_be_switched_back():
    st = planned(conf_text='new', link_changed=True, restart_changed=True, switched=True)
    msg = summary(st, health='pass', revert_error='release_activate: no space left on device \n')
    assert msg.endswith('Switching current back to %s FAILED: release_activate: no space left on device' % R1)
    assert 'is marked failed' not in msg


def test_slot_restore_args():
    s = settings(scale_down_delay=300, drain_timeout=20)
    assert flow.slot_restore_args(s, planned(), flow.restore_plan(planned())) is None
    st = planned(conf_text='new', link_changed=True, restart_changed=True)
    assert flow.slot_restore_args(s, st, flow.restore_plan(st)) == dict(
        app='app', base_dir='/opt/app', stop_slot='green', link=dict(slot='green', release_id=R0))
    # A switch back within the delay: the target keeps running until its scale-down timer, as before the run.
    st = planned(cancelled=True)
    assert flow.slot_restore_args(s, st, flow.restore_plan(st)) == dict(
        app='app', base_dir='/opt/app', scale_down=dict(slot='green', delay=300, drain_timeout=20))
    first = planned(i=info(), link_changed=True)
    assert flow.slot_restore_args(s, first, flow.restore_plan(first))['link'] == dict(slot='blue', release_id='')


def test_scale_down_args():
    assert flow.scale_down_args(settings(scale_down_delay=0, drain_timeout='15'), 'blue') == dict(
        slot='blue', delay=0, drain_timeout=15)


def test_cutover_steps_are_the_per_step_runs_in_one():
    s = settings()
    st = dict(planned(s), units_changed=[])
    steps = flow.cutover_steps(s, st)
    assert list(steps) == ['slots', 'restart', 'switch', 'activate', 'public_check', 'finish', 'direct_check']
    assert steps['slots'] == flow.link_args(s, st) and steps['slots']['cancel_scale_down'] is True
    assert steps['restart'] == flow.restart_args(s, st) and steps['activate'] == flow.activate_args(s, st)
    assert steps['switch'] == dict(path=CONF, content=flow.nginx_config(s, 'green', 'blue'))
    assert steps['direct_check']['url'] == 'http://127.0.0.1:8082/healthz'
    assert steps['public_check']['url'] == 'http://127.0.0.1:80/healthz'
    assert steps['finish'] == flow.finish_args(s, st, False)
    # A re-run of the live release: no direct check (users reach that slot already), no scale-down timer cancelled.
    converge = dict(planned(s, info('green', 'blue', blue=R1, green=R2)), units_changed=[])
    steps = flow.cutover_steps(s, converge)
    assert 'direct_check' not in steps and steps['slots']['cancel_scale_down'] is False
