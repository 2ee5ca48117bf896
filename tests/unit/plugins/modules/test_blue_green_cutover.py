# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The blue_green_cutover module and module_utils/blue_green.py: the steps after a blue-green upload in one run.

The slot and ledger steps run for real on a base_dir under tmp_path; the restart, the health checks and the
nginx switch (systemd, HTTP, nginx) answer from a script, each call recorded."""

from __future__ import annotations

import os

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.module_utils import blue_green, slots
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.graceful import RestartFailed
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import activate
from ansible_collections.hotswap.deploy.plugins.module_utils.lock import acquire
from ansible_collections.hotswap.deploy.plugins.modules import blue_green_cutover as MODULE

R1, R2 = '1.0.0-111111111111', '2.0.0-222222222222'
OWNER = 'app deploy %s (ci)' % R2
CONF = '/etc/nginx/conf.d/hotswap-app.conf'


@pytest.fixture
def host(tmp_path, monkeypatch):
    """base_dir with R1 live and R2 staged, under the lock; the restart, checks and switch recorded."""
    base = tmp_path / 'opt'
    for rid in (R1, R2):
        (base / 'releases' / rid).mkdir(parents=True)
        (base / 'releases' / rid / 'app').write_text(rid)
        (base / 'releases' / rid / 'app').chmod(0o755)
    activate(str(base), R1)
    acquire(str(base), OWNER)
    monkeypatch.setattr(slots, 'nginx_draining', lambda proc='/proc': False)
    monkeypatch.setattr(AnsibleModule, 'run_command', lambda _m, argv, **_kw: (0, '', ''))
    monkeypatch.setattr(AnsibleModule, 'get_bin_path', lambda _m, name, required=False, opt_dirs=None: '/usr/bin/' + name)
    state = dict(base=base, ran=[], answers={})

    def answer(step, p, check_mode):
        state['ran'].append((step, dict(p), check_mode))
        result = state['answers'].get(step, dict(changed=step != 'direct_check'))
        if isinstance(result, Exception):
            raise result
        return dict(result)

    def check(p, run_command=None):
        return answer('direct_check' if ':8082' in p['url'] else 'public_check', p, None)

    def switch(path, content, run_command, check_mode=False, move=None, service='nginx', nginx='nginx',
               systemctl='systemctl'):
        return answer('switch', dict(path=path, content=content, service=service, nginx=nginx), check_mode)
    # The functions the steps call (what their modules call), not the steps: their failures are reported by
    # the code under test.
    monkeypatch.setattr(blue_green, 'run_restart',
                        lambda p, run_command, check_mode=False: answer('restart', p, check_mode))
    monkeypatch.setattr(blue_green, 'check_health', check)
    monkeypatch.setattr(blue_green, 'switch', switch)
    return state


def steps(host, **over):
    base = str(host['base'])
    args = dict(
        slots=dict(app='app', base_dir=base, cancel_scale_down=True, link=dict(slot='green', release_id=R2)),
        restart=dict(service='app-green', strategy='restart', url='http://127.0.0.1:8082/healthz',
                     expected_version='2.0.0'),
        direct_check=dict(url='http://127.0.0.1:8082/healthz', expected_version='2.0.0', retries=3, successes=2),
        switch=dict(path=CONF, content='upstream hotswap_app { server 127.0.0.1:8082; }\n'),
        activate=dict(base_dir=base, release_id=R2, activated_by=OWNER, lock_owner=OWNER),
        public_check=dict(url='http://127.0.0.1:80/healthz', expected_version='2.0.0', retries=3),
        finish=dict(app='app', base_dir=base, state=dict(live='green', blue=R1, green=R2),
                    prune=dict(keep=5, protect=[R2, R1], lock_owner=OWNER), unlock=dict(owner=OWNER)))
    args.update(over)
    return dict((k, v) for k, v in args.items() if v is not None)


def lock_held(host):
    return os.path.exists(str(host['base'] / '.hotswap' / 'lock'))


def current(host):
    return os.readlink(str(host['base'] / 'current'))


def test_documented_options_are_the_argument_spec(doc_spec_mismatches):
    assert doc_spec_mismatches(MODULE) == []


def test_every_step_in_order_in_one_run(run_module, host):
    res = run_module(MODULE, **steps(host))
    assert not res.get('failed'), res
    assert res['changed'] is True and sorted(res['steps']) == sorted(set(blue_green.STEPS) - {'upload'})
    assert [s for s, _p, _c in host['ran']] == ['restart', 'direct_check', 'switch', 'public_check']
    # Each step got its own module's arguments, defaults filled in.
    restart = host['ran'][0][1]
    assert restart['service'] == 'app-green' and restart['ready_timeout'] == 60
    assert host['ran'][1][1]['successes'] == 2 and host['ran'][1][1]['fail_on'] == 'fail_or_inconclusive'
    assert host['ran'][2][1]['service'] == 'nginx' and host['ran'][2][1]['nginx'] == '/usr/bin/nginx'
    assert os.readlink(str(host['base'] / 'slots' / 'green')) == '../releases/' + R2
    assert current(host) == 'releases/' + R2 and res['steps']['activate']['switched'] is True
    assert res['steps']['finish']['unlocked'] is True and not lock_held(host)
    assert all(isinstance(r['seconds'], float) for r in res['steps'].values())


def test_bad_arguments_of_any_step_change_nothing(run_module, host):
    res = run_module(MODULE, **steps(host, restart=dict(strategy='restart'), switch=dict(path=CONF, contnt='x')))
    assert res['failed'] is True and res['steps'] == {}
    assert res['msg'].startswith('blue_green_cutover: bad step arguments - ')
    assert 'restart: missing required arguments: service' in res['msg'] and "switch: " in res['msg']
    assert 'restart: hotswap.deploy.graceful_restart' in res['msg'] and 'Nothing was changed.' in res['msg']
    assert host['ran'] == [] and current(host) == 'releases/' + R1 and lock_held(host)
    assert not os.path.lexists(str(host['base'] / 'slots' / 'green'))


def test_a_failed_restart_stops_the_run_with_its_stage(run_module, host):
    host['answers']['restart'] = RestartFailed('version', 'app-green reports 1.9.0, expected 2.0.0.')
    res = run_module(MODULE, **steps(host))
    assert res['failed'] is True and res['failed_step'] == 'restart'
    assert res['msg'] == 'app-green reports 1.9.0, expected 2.0.0.'
    assert res['steps']['restart']['stage'] == 'version' and res['steps']['restart']['changed'] is True
    assert sorted(res['steps']) == ['restart', 'slots'] and res['steps']['slots']['link_changed'] is True
    assert [s for s, _p, _c in host['ran']] == ['restart']
    # Nothing after it: current, nginx and the lock are as they were; the caller switches back.
    assert current(host) == 'releases/' + R1 and lock_held(host)


def test_a_config_nginx_rejects_is_reported_as_nginx_switch_reports_it(run_module, host):
    host['answers']['switch'] = HotswapError('switching nginx: nginx -t failed.', rejected=True,
                                             test_output='unknown directive "x"')
    res = run_module(MODULE, **steps(host))
    assert res['failed_step'] == 'switch' and res['steps']['switch']['rejected'] is True
    assert res['steps']['switch']['test_output'] == 'unknown directive "x"'
    assert 'activate' not in res['steps'] and current(host) == 'releases/' + R1


def test_a_failed_check_through_nginx_keeps_what_went_before(run_module, host):
    host['answers']['public_check'] = HotswapError('health check of http://127.0.0.1:80/healthz: fail, 2 of 3.',
                                                   outcome='fail', observations=[])
    res = run_module(MODULE, **steps(host))
    assert res['failed_step'] == 'public_check' and res['steps']['public_check']['outcome'] == 'fail'
    assert res['changed'] is True and current(host) == 'releases/' + R2
    assert 'finish' not in res['steps'] and lock_held(host)


def test_a_failed_prune_is_the_finish_step_with_the_lock_released(run_module, host):
    res = run_module(MODULE, **steps(host, finish=dict(app='app', base_dir=str(host['base']),
                                                       prune=dict(keep=5, protect=['../x'], lock_owner=OWNER),
                                                       unlock=dict(owner=OWNER))))
    assert res['failed_step'] == 'finish'
    assert res['steps']['finish']['failed_step'] == 'prune' and res['steps']['finish']['unlocked'] is True
    assert not lock_held(host)


def test_check_mode_changes_nothing(run_module, host):
    res = run_module(MODULE, _ansible_check_mode=True, **steps(host))
    assert not res.get('failed'), res
    assert all(check for s, _p, check in host['ran'] if s in ('restart', 'switch'))
    assert current(host) == 'releases/' + R1 and lock_held(host)
    assert not os.path.lexists(str(host['base'] / 'slots' / 'green'))


def test_only_the_steps_given_run(run_module, host):
    res = run_module(MODULE, **steps(host, direct_check=None, finish=None))
    assert not res.get('failed'), res
    assert [s for s, _p, _c in host['ran']] == ['restart', 'switch', 'public_check']
    assert sorted(res['steps']) == ['activate', 'public_check', 'restart', 'slots', 'switch'] and lock_held(host)


def test_a_pushed_copy_goes_into_its_release_first(run_module, host, tmp_path, assert_no_secret):
    import shutil
    import sys
    from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import sha256_file
    src = tmp_path / 'hotswap-upload-app'
    shutil.copy(os.path.realpath(sys.executable), str(src))
    r3 = '3.0.0-333333333333'
    upload = dict(src=str(src), move_src=True, checksum='sha256:' + sha256_file(str(src)), base_dir=str(host['base']),
                  release_id=r3, name='app', version='3.0.0', lock_owner=OWNER)
    res = run_module(MODULE, upload=upload, **steps(host, slots=dict(
        app='app', base_dir=str(host['base']), cancel_scale_down=True, link=dict(slot='green', release_id=r3)),
        activate=dict(base_dir=str(host['base']), release_id=r3, activated_by=OWNER, lock_owner=OWNER),
        finish=None))
    assert not res.get('failed'), res
    assert res['steps']['upload']['transferred'] is True and not src.exists()
    assert os.access(str(host['base'] / 'releases' / r3 / 'app'), os.X_OK) and current(host) == 'releases/' + r3
    # A bad copy stops the run before the slot moves; its no_log arguments stay out of the output.
    host['ran'][:] = []
    res = run_module(MODULE, upload=dict(upload, src=str(tmp_path / 'gone'), release_id='4.0.0-444444444444',
                                         url_password='pw-s3cret', environment_secret={'DB_PASSWORD': 'hunter22'}),
                     **steps(host))
    assert res['failed'] is True and res['failed_step'] == 'upload' and list(res['steps']) == ['upload']
    assert host['ran'] == [] and current(host) == 'releases/' + r3
    assert_no_secret(res, ['pw-s3cret', 'hunter22'])
