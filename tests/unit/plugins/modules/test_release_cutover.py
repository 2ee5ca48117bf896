# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""release_cutover: units, switch and restart in one run, stopping at the first failed step.

The switch is real (a release tree under tmp_path); the units and the restart, which need systemd, are the
functions of their own modules replaced by recorders.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import cutover
from ansible_collections.hotswap.deploy.plugins.module_utils.restart import RestartFailed
from ansible_collections.hotswap.deploy.plugins.modules import release_cutover as MODULE

UNITS = dict(app='demo', strategy='systemd_socket', service_unit='[Service]\n', socket_unit='[Socket]\n')
RESTART = dict(service='demo', strategy='systemd_socket', url='http://127.0.0.1:8080/healthz',
               executable='/opt/demo/current/demo', expected_version='2.0.0')


class Steps(object):
    """Records the units and restart steps and answers them from a script."""

    def __init__(self, monkeypatch, units_changed=True, restart_error=None):
        self.calls = []
        self.units_changed = units_changed
        self.restart_error = restart_error
        monkeypatch.setattr(cutover, 'install', self.install)
        monkeypatch.setattr(cutover, 'run_restart', self.restart)

    def install(self, app, strategy, service_unit, socket_unit, **kw):
        self.calls.append(('units', dict(app=app, strategy=strategy, check_mode=kw['check_mode'])))
        return dict(changed=self.units_changed, units_changed=self.units_changed, adopted=[],
                    diff=dict(before='', after='[Service]\n'))

    def restart(self, p, run_command, check_mode=False):
        self.calls.append(('restart', dict(p)))
        if self.restart_error:
            raise self.restart_error
        return dict(changed=True, new_pid=42)

    def names(self):
        return [name for name, _args in self.calls]


def activate_args(base, rid='r2'):
    return dict(base_dir=str(base), release_id=rid, keep=5)


def current(base):
    return os.readlink(str(base / 'current')) if os.path.islink(str(base / 'current')) else None


@pytest.fixture
def tree(tmp_path, stage, run_module):
    stage(tmp_path, 'r1')
    stage(tmp_path, 'r2')
    run_module(MODULE, activate=dict(base_dir=str(tmp_path), release_id='r1'))
    return tmp_path


def test_units_switch_and_restart_in_order(tree, run_module, monkeypatch):
    steps = Steps(monkeypatch, units_changed=False)
    res = run_module(MODULE, units=UNITS, activate=activate_args(tree), restart=RESTART)
    assert not res.get('failed'), res
    assert steps.names() == ['units', 'restart'] and current(tree) == 'releases/r2'
    assert res['activate']['switched'] is True and res['activate']['previous_release'] == 'r1'
    assert res['restart']['new_pid'] == 42 and res['changed'] is True
    assert res['restart_started'] <= res['restart_ended']
    # Unchanged units: the restart is exactly as asked (skipped when the service runs current's binary).
    restart = steps.calls[1][1]
    assert restart['executable'] == '/opt/demo/current/demo' and restart['daemon_reload'] is False


def test_changed_units_reload_systemd_and_restart_whatever_runs(tree, run_module, monkeypatch):
    steps = Steps(monkeypatch, units_changed=True)
    run_module(MODULE, units=UNITS, activate=activate_args(tree), restart=RESTART)
    restart = steps.calls[1][1]
    assert restart['daemon_reload'] is True and restart['executable'] is None


def test_a_failed_restart_leaves_current_switched_and_says_where(tree, run_module, monkeypatch):
    steps = Steps(monkeypatch, restart_error=RestartFailed('ready', 'demo: not ready after 60 s.', new_pid=43))
    res = run_module(MODULE, units=UNITS, activate=activate_args(tree), restart=RESTART)
    assert res['failed'] is True and res['failed_step'] == 'restart' and res['stage'] == 'ready'
    assert res['msg'] == 'demo: not ready after 60 s.' and res['changed'] is True
    # The caller switches back: it needs what was switched from, and what the restart saw.
    assert res['activate']['previous_release'] == 'r1' and current(tree) == 'releases/r2'
    assert res['restart']['failed'] is True and res['restart']['new_pid'] == 43 and res['restart']['stage'] == 'ready'
    assert steps.names() == ['units', 'restart']


def test_a_failed_switch_stops_before_the_restart(tree, run_module, monkeypatch):
    steps = Steps(monkeypatch)
    res = run_module(MODULE, units=UNITS, activate=activate_args(tree, 'r9'), restart=RESTART)
    assert res['failed'] is True and res['failed_step'] == 'activate' and 'stage' not in res
    assert 'r9' in res['msg'] and steps.names() == ['units'] and current(tree) == 'releases/r1'
    assert res['units']['units_changed'] is True


@pytest.mark.parametrize('args,error', [
    (dict(units=dict(app='demo', strategy='systemd_socket', service_unit='x')), 'units: '),
    (dict(units=UNITS, activate=dict(release_id='r2')), 'activate: '),
    (dict(units=UNITS, activate=dict(base_dir='/tmp/x', release_id='r2'), restart=dict(strategy='restart')),
     'restart: '),
    (dict(units=UNITS, restart=RESTART), 'restart needs activate'),
])
def test_bad_step_arguments_change_nothing(tree, run_module, monkeypatch, args, error):
    steps = Steps(monkeypatch)
    res = run_module(MODULE, **args)
    assert res['failed'] is True and error in res['msg'] and 'Nothing was changed.' in res['msg']
    assert steps.names() == [] and current(tree) == 'releases/r1'


def test_check_mode_changes_nothing_and_shows_both_diffs(tree, run_module, monkeypatch):
    steps = Steps(monkeypatch)
    res = run_module(MODULE, units=UNITS, activate=activate_args(tree), restart=RESTART, _ansible_check_mode=True,
                     _ansible_diff=True)
    assert res['changed'] is True and current(tree) == 'releases/r1'
    assert all(kw['check_mode'] if name == 'units' else True for name, kw in steps.calls)
    assert res['diff'] == [dict(before='', after='[Service]\n'),
                           dict(before='current -> releases/r1\n', after='current -> releases/r2\n')]


def test_units_only(tree, run_module, monkeypatch):
    steps = Steps(monkeypatch)
    res = run_module(MODULE, units=UNITS)
    assert steps.names() == ['units'] and set(res) >= {'units'} and 'activate' not in res
    assert current(tree) == 'releases/r1'


def test_documented_options_are_the_argument_spec(doc_spec_mismatches):
    assert doc_spec_mismatches(MODULE) == []


def test_every_result_is_documented(tree, run_module, monkeypatch, doc_section):
    returned = doc_section(MODULE, 'RETURN')
    common = {'changed', 'invocation', 'diff', 'warnings', 'failed', 'msg'}
    Steps(monkeypatch)
    ok = run_module(MODULE, units=UNITS, activate=activate_args(tree), restart=RESTART)
    Steps(monkeypatch, restart_error=RestartFailed('version', 'reports 1.9.9'))
    failed = run_module(MODULE, units=UNITS, activate=activate_args(tree, 'r1'), restart=RESTART)
    for res in (ok, failed):
        assert set(res) - common <= set(returned), sorted(set(res) - common - set(returned))


OWNER = 'demo deploy r3 (ops@ctl)'


def pushed_copy(tmp_path):
    """A copy of this Python's own executable: an ELF binary of this host's platform, as a push leaves it."""
    import shutil
    import sys
    src = tmp_path / 'push' / 'hotswap-upload-app'
    src.parent.mkdir()
    shutil.copy(os.path.realpath(sys.executable), str(src))
    return src


def upload_args(tree, src, checksum=None):
    from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import sha256_file
    return dict(src=str(src), move_src=True, checksum=checksum or 'sha256:' + sha256_file(str(src)),
                base_dir=str(tree), release_id='r3', name='app', version='3.0.0', lock_owner=OWNER)


def locked(tree):
    from ansible_collections.hotswap.deploy.plugins.module_utils.lock import read_lock
    holder = read_lock(str(tree))
    return holder and holder['owner']


def test_a_pushed_copy_goes_into_its_release_before_the_cutover_and_the_lock_stays(tree, run_module, monkeypatch):
    from ansible_collections.hotswap.deploy.plugins.module_utils.lock import acquire
    acquire(str(tree), OWNER)
    steps = Steps(monkeypatch, units_changed=False)
    src = pushed_copy(tree)
    res = run_module(MODULE, upload=upload_args(tree, src), units=UNITS,
                     activate=dict(activate_args(tree, 'r3'), lock_owner=OWNER),
                     restart=RESTART)
    assert not res.get('failed'), res
    assert res['upload']['transferred'] is True and res['upload']['release_id'] == 'r3'
    # Moved, not copied: the pushed copy is gone, the release holds it.
    assert not src.exists() and os.access(str(tree / 'releases' / 'r3' / 'app'), os.X_OK)
    assert current(tree) == 'releases/r3' and steps.names() == ['units', 'restart']
    # The caller releases the lock in a run of its own: a controller killed during this one leaves it held.
    assert locked(tree) == OWNER


def test_an_upload_that_fails_stops_before_the_units_and_keeps_the_lock(tree, run_module, monkeypatch):
    from ansible_collections.hotswap.deploy.plugins.module_utils.lock import acquire
    acquire(str(tree), OWNER)
    steps = Steps(monkeypatch)
    src = pushed_copy(tree)
    res = run_module(MODULE, upload=upload_args(tree, src, checksum='sha256:' + 'c' * 64), units=UNITS,
                     activate=activate_args(tree, 'r3'), restart=RESTART)
    assert res['failed'] is True and res['failed_step'] == 'upload' and res['upload']['failed'] is True
    assert 'sha256' in res['msg'] and res['changed'] is False
    assert steps.names() == [] and current(tree) == 'releases/r1' and locked(tree) == OWNER
    assert not (tree / 'releases' / 'r3').exists()


def test_the_upload_steps_secrets_stay_out_of_the_result_and_the_log(tree, run_module, monkeypatch,
                                                                     assert_no_secret):
    Steps(monkeypatch)
    upload = dict(url='http://127.0.0.1:9/app', url_password='pw-s3cret', url_headers={'X-Token': 'tok-123456'},
                  environment_secret={'DB_PASSWORD': 'hunter22'}, files=[dict(dest='key.pem', content='PEMSECRET')],
                  checksum='sha256:' + 'c' * 64, base_dir=str(tree), release_id='r3', name='app')
    res = run_module(MODULE, upload=upload, activate=activate_args(tree, 'r3'))
    assert res['failed'] is True and res['failed_step'] == 'upload'
    assert_no_secret(res, ['pw-s3cret', 'tok-123456', 'hunter22', 'PEMSECRET'])


def test_the_upload_step_takes_binary_uploads_arguments(tree, run_module, monkeypatch):
    steps = Steps(monkeypatch)
    res = run_module(MODULE, upload=dict(src='/tmp/x', url='http://127.0.0.1/x', checksum='sha256:' + 'c' * 64,
                                         base_dir=str(tree), release_id='r3', name='app'), units=UNITS)
    assert res['failed'] is True and 'upload: ' in res['msg'] and 'mutually exclusive' in res['msg']
    assert 'hotswap.deploy.binary_upload' in res['msg'] and steps.names() == []
