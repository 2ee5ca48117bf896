# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The blue_green_slots module and its helpers in module_utils/slots.py on a base_dir, a unit directory and a
default site under tmp_path; systemctl and systemd-run are answered at AnsibleModule.run_command."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils import slots
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.modules import blue_green_slots as MODULE

R1, R2 = '1.0.0-111111111111', '2.0.0-222222222222'
UNITS = {'blue': '[Service]\nExecStart=/opt/app/slots/blue/app\n',
         'green': '[Service]\nExecStart=/opt/app/slots/green/app\n'}
CONF = '# hotswap-blue-green live=blue backup=none\nupstream hotswap_app {}\n'


def listing(root):
    """Every path under root with what it is: a file's content, a link's target, or a directory."""
    seen = {}
    for top, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(top, name)
            rel = os.path.relpath(path, str(root))
            if os.path.islink(path):
                seen[rel] = '-> ' + os.readlink(path)
            elif os.path.isdir(path):
                seen[rel] = 'dir'
            else:
                with open(path) as f:
                    seen[rel] = f.read()
    return seen


# -- module_utils/slots.py ---------------------------------------------------------------------------------

def test_units_to_write(tmp_path):
    unit_dir = str(tmp_path)
    assert slots.units_to_write('app', UNITS, unit_dir) == ['blue', 'green']
    (tmp_path / 'app-blue.service').write_text(UNITS['blue'])
    (tmp_path / 'app-green.service').write_text(UNITS['green'] + '# edited\n')
    assert slots.units_to_write('app', UNITS, unit_dir) == ['green']
    assert slots.units_to_write('app', dict(blue=UNITS['blue']), unit_dir) == []
    assert slots.units_to_write('app', {}, unit_dir) == [] and slots.units_to_write('app', None, unit_dir) == []
    assert slots.units_to_write('other', UNITS, unit_dir) == ['blue', 'green']


def test_point_a_slot_repoint_it_and_remove_it(tmp_path):
    base = str(tmp_path)
    link = tmp_path / 'slots' / 'blue'
    assert slots.link_change(base, 'blue', R1) == (True, None)
    slots.point_slot(base, 'blue', R1)
    assert os.readlink(str(link)) == '../releases/' + R1
    assert slots.link_change(base, 'blue', R1) == (False, R1)
    assert slots.link_change(base, 'blue', R2) == (True, R1)
    slots.point_slot(base, 'blue', R2)
    assert os.readlink(str(link)) == '../releases/' + R2
    assert sorted(os.listdir(str(tmp_path / 'slots'))) == ['blue']
    assert slots.link_change(base, 'blue', '') == (True, R2)
    slots.point_slot(base, 'blue', '')
    assert not os.path.lexists(str(link))
    assert slots.link_change(base, 'blue', '') == (False, None)
    slots.point_slot(base, 'blue', '')


def test_point_slot_replaces_a_leftover_temporary_link(tmp_path):
    (tmp_path / 'slots').mkdir()
    os.symlink('../releases/old', str(tmp_path / 'slots' / 'green.hotswap-new'))
    slots.point_slot(str(tmp_path), 'green', R1)
    assert listing(tmp_path / 'slots') == {'green': '-> ../releases/' + R1}


def test_an_absolute_link_is_rewritten_relative(tmp_path):
    (tmp_path / 'slots').mkdir()
    os.symlink(str(tmp_path / 'releases' / R1), str(tmp_path / 'slots' / 'blue'))
    assert slots.link_change(str(tmp_path), 'blue', R1) == (True, R1)


@pytest.mark.parametrize('release_id', [R1, ''])
def test_a_real_directory_is_not_a_slot_link(tmp_path, release_id):
    (tmp_path / 'slots' / 'green').mkdir(parents=True)
    with pytest.raises(HotswapError) as e:
        slots.link_change(str(tmp_path), 'green', release_id)
    assert '%s is a real file or directory, not a slot link' % (tmp_path / 'slots' / 'green') in e.value.msg
    assert 'pointing the green slot at %s' % (release_id or 'nothing') in e.value.msg


def test_state_text_round_trip():
    state = dict(live='green', blue=R1, green=R2, ports={'green': 8082, 'blue': 8081}, public_port=80)
    text = slots.state_text(state)
    assert json.loads(text) == state and text.endswith('}\n')
    assert text == slots.state_text(dict(reversed(list(state.items()))))
    assert text.index('"blue"') < text.index('"green"') < text.index('"live"')


def test_read_and_write_text(tmp_path):
    path = str(tmp_path / '.hotswap' / 'blue_green.json')
    assert slots.read_text(path) is None
    slots.write_text(path, 'one\n', 0o640)
    assert slots.read_text(path) == 'one\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    slots.write_text(path, 'two\n', 0o644)
    assert slots.read_text(path) == 'two\n' and stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(str(tmp_path / '.hotswap')) == ['blue_green.json']


def test_config_text(tmp_path):
    conf = tmp_path / 'hotswap-app.conf'
    assert slots.config_text(str(conf)) == ''
    conf.write_text(CONF)
    assert slots.config_text(str(conf)) == CONF


def test_names_and_scale_down():
    assert slots.slot_unit_name('app', 'blue') == 'app-blue.service'
    assert slots.scale_down_unit('app') == 'app-scale-down'
    assert slots.scale_down_note('blue', 0, 'app-scale-down') == 'blue stopped'
    assert slots.scale_down_note('blue', 300, 'app-scale-down') == 'blue stops in 300 s (app-scale-down.timer)'
    argv = slots.scale_down_command('app', 'green', 300)
    assert argv[:3] == ['systemd-run', '--unit=app-scale-down', '--on-active=300s']
    assert '--description=hotswap.deploy scale-down of the green slot of app' in argv
    assert argv[-4:] == ['systemctl', 'disable', '--now', 'app-green.service']


def test_nginx_draining(tmp_path):
    (tmp_path / 'self').mkdir()
    (tmp_path / '12').mkdir()
    (tmp_path / '12' / 'cmdline').write_bytes(b'nginx: worker process\0')
    (tmp_path / '13').mkdir()   # gone between listdir and open
    assert slots.nginx_draining(str(tmp_path)) is False
    (tmp_path / '14').mkdir()
    (tmp_path / '14' / 'cmdline').write_bytes(b'nginx: worker process is shutting down\0')
    assert slots.nginx_draining(str(tmp_path)) is True


# -- the module --------------------------------------------------------------------------------------------

@pytest.fixture
def host(tmp_path, monkeypatch):
    """A base_dir, a unit directory and nginx's default site link under tmp_path; the commands the module runs,
    and what they answer (answers[verb] = (rc, out, err))."""
    unit_dir = tmp_path / 'systemd'
    unit_dir.mkdir()
    site = tmp_path / 'sites-enabled' / 'default'
    site.parent.mkdir()
    os.symlink('../sites-available/default', str(site))
    base = tmp_path / 'opt'
    (base / 'releases' / R1).mkdir(parents=True)
    (base / 'releases' / R2).mkdir()
    monkeypatch.setattr(slots, 'UNIT_DIR', str(unit_dir))
    monkeypatch.setattr(slots, 'DEFAULT_SITE', str(site))
    monkeypatch.setattr(slots, 'nginx_draining', lambda proc='/proc': False)
    state = dict(calls=[], answers={}, base=base, unit_dir=unit_dir, site=site, conf=tmp_path / 'hotswap-app.conf')

    def run_command(_module, argv, **_kw):
        state['calls'].append(list(argv))
        verb = argv[1] if argv[0] == 'systemctl' else argv[0]
        return state['answers'].get(verb, (0, '', ''))
    monkeypatch.setattr(AnsibleModule, 'run_command', run_command)
    return state


def every_change(host, **kw):
    args = dict(app='app', base_dir=str(host['base']), cancel_scale_down=True, units=UNITS, remove_default_site=True,
                stop_slot='green', link=dict(slot='green', release_id=R2),
                state=dict(live='green', blue=R1, green=R2), scale_down=dict(slot='blue', delay=300))
    args.update(kw)
    return args


def test_documented_options_are_the_argument_spec(doc_spec_mismatches):
    assert doc_spec_mismatches(MODULE) == []


def test_check_mode_changes_nothing(tmp_path, run_module, host):
    before = listing(tmp_path)
    res = run_module(MODULE, _ansible_check_mode=True, _ansible_diff=True, **every_change(host))
    assert res['changed'] is True and res['cancelled'] is True
    assert res['units_changed'] == ['blue', 'green'] and res['default_site_removed'] is True
    assert res['stopped'] is True and res['link_changed'] is True and res['link_previous'] is None
    assert res['state_changed'] is True
    assert res['scale_down'] == 'blue stops in 300 s (app-scale-down.timer)'
    headers = [str(host['unit_dir'] / 'app-blue.service'), str(host['unit_dir'] / 'app-green.service'),
               str(host['base'] / '.hotswap' / 'blue_green.json')]
    assert [d['after_header'] for d in res['diff']] == headers
    assert res['diff'][0]['before'] == '' and res['diff'][0]['after'] == UNITS['blue']
    assert json.loads(res['diff'][2]['after']) == dict(live='green', blue=R1, green=R2)
    assert listing(tmp_path) == before
    assert host['calls'] == [['systemctl', 'is-active', '--quiet', 'app-scale-down.timer']]


def test_a_moved_nginx_config_changes_nothing(tmp_path, run_module, host):
    host['conf'].write_text(CONF.replace('live=blue', 'live=green'))
    before = listing(tmp_path)
    res = run_module(MODULE, expect_lb_config=dict(path=str(host['conf']), content=CONF), **every_change(host))
    assert res['lb_config_moved'] is True and res['changed'] is False
    assert res['units_changed'] == [] and res['link_changed'] is False and 'scale_down' not in res
    assert listing(tmp_path) == before and host['calls'] == []


def test_a_config_that_appeared_is_a_move_too(tmp_path, run_module, host):
    host['conf'].write_text(CONF)
    res = run_module(MODULE, app='app', base_dir=str(host['base']), units=UNITS,
                     expect_lb_config=dict(path=str(host['conf'])))
    assert res['lb_config_moved'] is True and res['changed'] is False
    assert os.listdir(str(host['unit_dir'])) == []


def test_every_change_then_a_rerun_is_unchanged(tmp_path, run_module, host):
    res = run_module(MODULE, expect_lb_config=dict(path=str(host['conf']), content=''), **every_change(host))
    assert res['lb_config_moved'] is False and res['changed'] is True and 'diff' not in res
    assert res['units_changed'] == ['blue', 'green'] and res['link_changed'] is True
    for slot in ('blue', 'green'):
        path = host['unit_dir'] / ('app-%s.service' % slot)
        assert path.read_text() == UNITS[slot] and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not os.path.lexists(str(host['site']))
    assert os.readlink(str(host['base'] / 'slots' / 'green')) == '../releases/' + R2
    state_file = host['base'] / '.hotswap' / 'blue_green.json'
    assert json.loads(state_file.read_text()) == dict(live='green', blue=R1, green=R2)
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o640
    assert host['calls'][:4] == [
        ['systemctl', 'is-active', '--quiet', 'app-scale-down.timer'],
        ['systemctl', 'stop', 'app-scale-down.timer'],
        ['systemctl', 'reset-failed', 'app-scale-down.timer', 'app-scale-down.service'],
        ['systemctl', 'daemon-reload']]
    assert host['calls'][4] == ['systemctl', 'disable', '--now', '--quiet', 'app-green.service']
    assert host['calls'][5] == slots.scale_down_command('app', 'blue', 300) and len(host['calls']) == 6

    host['calls'][:] = []
    host['answers']['is-active'] = (3, '', '')
    res = run_module(MODULE, app='app', base_dir=str(host['base']), cancel_scale_down=True, units=UNITS,
                     remove_default_site=True, link=dict(slot='green', release_id=R2),
                     state=dict(live='green', blue=R1, green=R2))
    assert res['changed'] is False and res['cancelled'] is False and res['units_changed'] == []
    assert res['link_changed'] is False and res['link_previous'] == R2
    assert 'state_changed' not in res and 'default_site_removed' not in res
    assert ['systemctl', 'daemon-reload'] not in host['calls']


def test_scale_down_now_stops_the_slot(run_module, host):
    res = run_module(MODULE, app='app', base_dir=str(host['base']), scale_down=dict(slot='blue'))
    assert res['changed'] is True and res['scale_down'] == 'blue stopped'
    assert host['calls'] == [['systemctl', 'disable', '--now', '--quiet', 'app-blue.service']]


def test_a_link_removed_again(run_module, host):
    (host['base'] / 'slots').mkdir()
    os.symlink('../releases/' + R1, str(host['base'] / 'slots' / 'blue'))
    res = run_module(MODULE, app='app', base_dir=str(host['base']), link=dict(slot='blue'), stop_slot='blue')
    assert res['changed'] is True and res['link_changed'] is True and res['link_previous'] == R1
    assert os.listdir(str(host['base'] / 'slots')) == []


def test_a_real_directory_in_slots_fails(run_module, host):
    (host['base'] / 'slots' / 'green').mkdir(parents=True)
    res = run_module(MODULE, app='app', base_dir=str(host['base']), link=dict(slot='green', release_id=R2))
    assert res['failed'] is True and 'is a real file or directory, not a slot link' in res['msg']
    assert os.path.isdir(str(host['base'] / 'slots' / 'green'))


def test_a_failed_systemctl_fails_with_its_output(run_module, host):
    host['answers']['daemon-reload'] = (1, '', 'Access denied\n')
    res = run_module(MODULE, app='app', base_dir=str(host['base']), units=UNITS)
    assert res['failed'] is True
    assert res['msg'] == 'running systemctl daemon-reload: Access denied. Check the unit with systemctl status.'


def test_a_failed_scale_down_timer_names_the_manual_stop(run_module, host):
    host['answers']['systemd-run'] = (1, '', 'Unit app-scale-down.timer already exists.')
    res = run_module(MODULE, app='app', base_dir=str(host['base']), scale_down=dict(slot='blue', delay=60))
    assert res['failed'] is True and 'scheduling the stop of the blue slot: Unit app-scale-down.timer' in res['msg']
    assert 'systemctl disable --now app-blue.service' in res['msg']


# -- prune and unlock: the end of a rollout that went through ---------------------------------------------------

OWNER = 'app deploy %s (ci)' % R2


def locked(host, owner=OWNER):
    from ansible_collections.hotswap.deploy.plugins.module_utils import lock
    lock.acquire(str(host['base']), owner)
    return os.path.join(str(host['base']), '.hotswap', 'lock')


def test_record_prune_and_unlock_in_one_run(run_module, host):
    from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import activate
    # Current (0.3.0) and the previous good release (0.2.0) are never pruned either.
    for rid in ('0.1.0-aaaaaaaaaaaa', '0.2.0-bbbbbbbbbbbb', '0.3.0-cccccccccccc'):
        (host['base'] / 'releases' / rid).mkdir()
        (host['base'] / 'releases' / rid / 'app').write_text(rid)
        (host['base'] / 'releases' / rid / 'app').chmod(0o755)
        activate(str(host['base']), rid)
    lock_file = locked(host)
    res = run_module(MODULE, app='app', base_dir=str(host['base']), state=dict(live='green', blue=R1, green=R2),
                     prune=dict(keep=1, protect=[R1, R2], lock_owner=OWNER), unlock=dict(owner=OWNER))
    assert not res.get('failed'), res
    assert res['changed'] is True and res['unlocked'] is True and 'failed_step' not in res
    assert res['pruned']['removed'] == ['0.1.0-aaaaaaaaaaaa']
    assert not os.path.exists(lock_file)
    assert sorted(os.listdir(str(host['base'] / 'releases'))) == sorted(
        [R1, R2, '0.2.0-bbbbbbbbbbbb', '0.3.0-cccccccccccc'])


def test_a_failed_prune_still_releases_the_lock(run_module, host):
    lock_file = locked(host)
    res = run_module(MODULE, app='app', base_dir=str(host['base']), prune=dict(keep=5, protect=['../bad']),
                     unlock=dict(owner=OWNER))
    assert res['failed'] is True and res['failed_step'] == 'prune' and res['unlocked'] is True
    assert 'bad' in res['msg']
    assert not os.path.exists(lock_file)


def test_a_lock_held_by_someone_else_is_neither_pruned_under_nor_released(run_module, host):
    lock_file = locked(host, owner='someone else (ci)')
    res = run_module(MODULE, app='app', base_dir=str(host['base']), prune=dict(keep=5, lock_owner=OWNER),
                     unlock=dict(owner=OWNER))
    assert res['failed'] is True and res['failed_step'] == 'prune' and res['unlocked'] is False
    assert 'someone else' in res['msg']
    assert os.path.exists(lock_file)


def test_check_mode_neither_prunes_nor_unlocks(tmp_path, run_module, host):
    lock_file = locked(host)
    before = listing(tmp_path)
    res = run_module(MODULE, _ansible_check_mode=True, app='app', base_dir=str(host['base']),
                     prune=dict(keep=5, lock_owner=OWNER), unlock=dict(owner=OWNER))
    assert not res.get('failed') and res['unlocked'] is True
    assert os.path.exists(lock_file) and listing(tmp_path) == before
