# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""module_utils/units.py on a unit directory and a /proc made under tmp_path; systemctl and
sysctl go to a recording double."""

from __future__ import annotations

import os

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import units as U
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

SERVICE = '[Service]\nExecStart=/opt/web/current/web\n'
SOCKET = '[Socket]\nListenStream=127.0.0.1:8080\n'


class Commands(object):
    """Records argv; answers with the rc/out/err queued for a verb, else success."""

    def __init__(self):
        self.calls = []
        self.answers = {}

    def __call__(self, argv):
        self.calls.append(list(argv))
        return self.answers.get(argv[1] if argv[0] == 'systemctl' else argv[0], (0, '', ''))


@pytest.fixture
def env(tmp_path):
    unit_dir = tmp_path / 'system'
    unit_dir.mkdir()
    proc = tmp_path / 'proc'
    (proc / 'sys' / 'net' / 'ipv4').mkdir(parents=True)
    (proc / 'sys' / 'net' / 'ipv4' / 'tcp_migrate_req').write_text('0\n')
    (tmp_path / 'sysctl.d').mkdir()
    cmds = Commands()

    def install(strategy, service=SERVICE, socket=SOCKET, check_mode=False):
        return U.install('web', strategy, service, socket, run_command=cmds, check_mode=check_mode,
                         unit_dir=str(unit_dir), sysctl_file=str(tmp_path / 'sysctl.d' / 'hs.conf'),
                         proc_root=str(proc))
    return unit_dir, cmds, install


def listing(unit_dir):
    return sorted(os.listdir(str(unit_dir)))


def test_wanted_files_per_strategy():
    assert sorted(U.wanted_files('web', 'systemd_socket', 'S', 'K')) == [
        '.hotswap-web.systemd_socket', 'web.service', 'web.socket']
    assert sorted(U.wanted_files('web', 'reuseport', 'S')) == ['.hotswap-web.reuseport', 'web@.service']
    assert sorted(U.wanted_files('web', 'restart', 'S', 'ignored')) == ['.hotswap-web.restart', 'web.service']


@pytest.mark.parametrize('args,words', [
    (('nope', 'S', None), 'unknown restart strategy'),
    (('restart', '', None), 'service_unit is empty'),
    (('systemd_socket', 'S', ''), 'socket_unit is empty'),
])
def test_wanted_files_refuses_bad_input(args, words):
    with pytest.raises(HotswapError, match=words):
        U.wanted_files('web', *args)


def test_units_to_stop_expands_template_and_skips_markers():
    assert U.units_to_stop(['.hotswap-web.reuseport', 'web@.service', 'web.socket']) == [
        'web@a.service', 'web@b.service', 'web.socket']


def test_first_install_writes_every_file_then_is_idempotent(env):
    unit_dir, cmds, install = env
    res = install('systemd_socket')
    assert res['changed'] and res['units_changed'] and res['stopped'] == [] and res['removed'] == []
    assert listing(unit_dir) == ['.hotswap-web.systemd_socket', 'web.service', 'web.socket']
    assert (unit_dir / 'web.service').read_text() == SERVICE
    assert oct(os.stat(str(unit_dir / 'web.socket')).st_mode & 0o777) == '0o644'
    assert cmds.calls == []
    again = install('systemd_socket')
    assert again['changed'] is False and again['units_changed'] is False and again['written'] == []


def test_a_changed_unit_is_rewritten_and_shown_in_the_diff(env):
    unit_dir, _cmds, install = env
    install('restart')
    res = install('restart', service=SERVICE + 'Restart=always\n')
    assert res['written'] == ['web.service'] and res['units_changed']
    assert 'Restart=always' in res['diff']['after'] and 'Restart=always' not in res['diff']['before']


def test_changing_strategy_stops_the_old_units_once_and_removes_their_files(env):
    unit_dir, cmds, install = env
    install('systemd_socket')
    res = install('restart')
    assert res['removed'] == ['.hotswap-web.systemd_socket', 'web.socket']
    assert res['stopped'] == ['web.service', 'web.socket']
    assert cmds.calls == [['systemctl', 'stop', 'web.service', 'web.socket'],
                          ['systemctl', 'disable', 'web.service', 'web.socket']]
    assert listing(unit_dir) == ['.hotswap-web.restart', 'web.service']


def test_change_between_strategies_sharing_the_service_unit_is_seen_by_the_marker(env):
    unit_dir, cmds, install = env
    install('signal_reexec')
    res = install('restart')
    assert res['removed'] == ['.hotswap-web.signal_reexec'] and res['stopped'] == ['web.service']
    assert res['units_changed']


def test_reuseport_sets_the_sysctl_and_stops_template_instances_on_leaving(env, tmp_path):
    unit_dir, cmds, install = env
    res = install('reuseport')
    assert res['sysctl_set'] and ['sysctl', '-q', '-w', 'net.ipv4.tcp_migrate_req=1'] in cmds.calls
    assert 'tcp_migrate_req = 1' in (tmp_path / 'sysctl.d' / 'hs.conf').read_text()
    cmds.calls[:] = []
    res = install('systemd_socket')
    assert res['stopped'] == ['web@a.service', 'web@b.service']
    assert 'web@.service' in res['removed']


def test_check_mode_reports_and_changes_nothing(env):
    unit_dir, cmds, install = env
    install('systemd_socket')
    res = install('reuseport', check_mode=True)
    assert res['changed'] and res['stopped'] == ['web.service', 'web.socket'] and res['sysctl_set']
    assert listing(unit_dir) == ['.hotswap-web.systemd_socket', 'web.service', 'web.socket']
    assert cmds.calls == []


def test_unknown_units_are_no_error_but_a_real_stop_failure_is(env):
    unit_dir, cmds, install = env
    install('systemd_socket')
    cmds.answers['stop'] = (5, '', 'Failed to stop web.socket: Unit web.socket not loaded.\n')
    assert install('restart')['stopped'] == ['web.service', 'web.socket']
    install('systemd_socket')
    cmds.answers['stop'] = (1, '', 'Job for web.service canceled.\n')
    with pytest.raises(HotswapError, match='stopping web.service, web.socket .*canceled.*by hand'):
        install('restart')


def test_missing_unit_dir_is_a_clear_error(tmp_path):
    with pytest.raises(HotswapError, match='does not exist. Is systemd installed'):
        U.install('web', 'restart', SERVICE, unit_dir=str(tmp_path / 'none'), run_command=Commands())


HAND_WRITTEN = '[Service]\nExecStart=/usr/local/bin/web --listen :8080\n'
OURS_SERVICE = '# hotswap.deploy\n[Service]\nExecStart=/opt/web/current/web\n'


@pytest.fixture
def adopt_env(tmp_path):
    unit_dir = tmp_path / 'system'
    unit_dir.mkdir()
    vendor = tmp_path / 'lib-system'
    vendor.mkdir()
    base = tmp_path / 'opt-web'
    base.mkdir()
    cmds = Commands()

    def install(adopt=False):
        return U.install('web', 'systemd_socket', OURS_SERVICE, SOCKET, run_command=cmds, unit_dir=str(unit_dir),
                         adopt=adopt, base_dir=str(base), vendor_dirs=(str(vendor),))
    return unit_dir, vendor, base, cmds, install


def test_a_hand_written_unit_is_refused_and_left_alone(adopt_env):
    unit_dir, _vendor, base, _cmds, install = adopt_env
    (unit_dir / 'web.service').write_text(HAND_WRITTEN)
    with pytest.raises(HotswapError) as err:
        install()
    assert 'not installed by hotswap.deploy' in err.value.msg and 'adopt_unit: true' in err.value.msg
    assert listing(unit_dir) == ['web.service'] and (unit_dir / 'web.service').read_text() == HAND_WRITTEN
    assert not (base / '.hotswap').exists()


def test_a_package_unit_ours_would_shadow_is_refused(adopt_env):
    unit_dir, vendor, _base, _cmds, install = adopt_env
    (vendor / 'web.service').write_text(HAND_WRITTEN)
    with pytest.raises(HotswapError) as err:
        install()
    assert str(vendor / 'web.service') in err.value.msg
    assert listing(unit_dir) == []


def test_adopting_keeps_the_first_copy_and_restoring_puts_it_back(adopt_env):
    unit_dir, _vendor, base, cmds, install = adopt_env
    (unit_dir / 'web.service').write_text(HAND_WRITTEN)
    res = install(adopt=True)
    assert res['adopted'] == [str(unit_dir / 'web.service')] and res['units_changed']
    assert (unit_dir / 'web.service').read_text() == OURS_SERVICE
    assert U.read_adopted(str(base)) == {str(unit_dir / 'web.service'): HAND_WRITTEN}
    # Installed by us now (the marker says so): a later deploy is not an adoption.
    again = install()
    assert again['adopted'] == [] and not again['changed']

    restored = U.restore_adopted('web', str(base), run_command=cmds, unit_dir=str(unit_dir))
    assert restored['restored'] == [str(unit_dir / 'web.service')] and restored['marked'] is None
    assert sorted(restored['removed']) == ['.hotswap-web.systemd_socket', 'web.socket']
    assert listing(unit_dir) == ['web.service'] and (unit_dir / 'web.service').read_text() == HAND_WRITTEN
    # Our socket held the port: it is stopped, not left listening for a unit that no longer exists.
    assert ['systemctl', 'stop', 'web.socket'] in cmds.calls
    # A second adoption after the restore keeps the copy it has.
    install(adopt=True)
    assert U.read_adopted(str(base)) == {str(unit_dir / 'web.service'): HAND_WRITTEN}


def test_restoring_without_an_adopted_copy_says_how_one_is_kept(adopt_env):
    unit_dir, _vendor, base, cmds, _install = adopt_env
    with pytest.raises(HotswapError) as err:
        U.restore_adopted('web', str(base), run_command=cmds, unit_dir=str(unit_dir))
    assert 'adopt_unit: true' in err.value.msg


def test_restoring_marks_the_release_that_no_longer_runs(adopt_env, tmp_path):
    """A first release over an adopted unit that failed must not become a rollback's previous good."""
    from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import Ledger
    unit_dir, _vendor, base, cmds, install = adopt_env
    (unit_dir / 'web.service').write_text(HAND_WRITTEN)
    install(adopt=True)
    (base / 'releases' / '1.0.0-aaaaaaaaaaaa').mkdir(parents=True)
    (base / 'current').symlink_to('releases/1.0.0-aaaaaaaaaaaa')
    ledger = Ledger.load(str(base))
    ledger.record_staged('1.0.0-aaaaaaaaaaaa', version='1.0.0', sha256='a' * 64, binary='web')
    ledger.save()
    restored = U.restore_adopted('web', str(base), run_command=cmds, unit_dir=str(unit_dir))
    assert restored['marked'] == '1.0.0-aaaaaaaaaaaa'
    assert Ledger.load(str(base)).release('1.0.0-aaaaaaaaaaaa')['state'] == 'failed'


# -- app names (issue 14): a unit file is never written outside the unit directory ----------------

@pytest.mark.parametrize('app', ['../evil', '../../etc/cron.d/x', 'a/b', 'web/', '..', '.hidden', 'a..b', '-web',
                                 'web@1', 'web\\x2d', 'my app', 'web;rm', '', None, 'w' * 201])
def test_a_bad_app_name_is_refused_before_anything_is_written(tmp_path, app):
    unit_dir = tmp_path / 'etc' / 'systemd' / 'system'
    unit_dir.mkdir(parents=True)
    base = tmp_path / 'opt-web'
    base.mkdir()
    cmds = Commands()
    with pytest.raises(HotswapError) as err:
        U.install(app, 'systemd_socket', SERVICE, SOCKET, run_command=cmds, unit_dir=str(unit_dir), adopt=True,
                  base_dir=str(base), sysctl_file=str(tmp_path / 'hs.conf'), proc_root=str(tmp_path / 'proc'))
    assert err.value.msg.startswith('checking app')
    assert 'for example myapp' in err.value.msg
    with pytest.raises(HotswapError) as err:
        U.restore_adopted(app, str(base), run_command=cmds, unit_dir=str(unit_dir))
    assert err.value.msg.startswith('checking app')
    with pytest.raises(HotswapError):
        U.wanted_files(app, 'restart', SERVICE)
    assert [os.path.join(root, f) for root, _dirs, files in os.walk(str(tmp_path)) for f in files] == []
    assert cmds.calls == []


def test_an_app_with_dot_dot_slash_says_why(tmp_path):
    with pytest.raises(HotswapError) as err:
        U.install('../evil', 'restart', SERVICE, unit_dir=str(tmp_path))
    assert 'contains "/" or ".."' in err.value.msg and 'outside the unit directory' in err.value.msg
    assert os.listdir(str(tmp_path)) == [] and not os.path.exists(str(tmp_path.parent / 'evil.service'))


@pytest.mark.parametrize('app', ['web', 'my-app_2', 'api.v2', 'svc:blue', '_x', 'W' * 200])
def test_good_app_names_are_accepted(env, app):
    unit_dir, _cmds, _install = env
    res = U.install(app, 'restart', SERVICE, unit_dir=str(unit_dir), run_command=Commands())
    assert '%s.service' % app in res['installed'] and os.path.isfile(str(unit_dir / ('%s.service' % app)))
