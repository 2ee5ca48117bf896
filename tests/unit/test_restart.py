# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Tests for module_utils/restart.py without real hosts.

systemd is a recording double behind the real ``Systemd`` class (so ``show`` parsing and the
``timeout`` wrapper run for real), /proc is a directory made under tmp_path, the clock only moves
when the code sleeps, and signals and PID-file reads go to doubles. The only network use is an
http.server on 127.0.0.1 for the tests of the ``url`` / ``expected_version`` probes.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import restart as rs
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.restart import (
    Options,
    ProcessRef,
    Restart,
    RestartFailed,
    Systemd,
    in_control_group,
    parse_pid,
    parse_show,
    parse_stat_start_time,
    parse_systemd_version,
    process_cgroups,
    read_stat,
    same_file,
    signal_number,
    unit_slots,
)

SERVICE = 'myapp'
UNIT = 'myapp.service'
SOCKET = 'myapp.socket'
SLOT_A, SLOT_B = 'myapp@a.service', 'myapp@b.service'
CGROUP = '/system.slice/myapp.service'
PID_FILE = '/run/myapp/myapp.pid'
OLD_PID, NEW_PID = 100, 200
OLD_START, NEW_START = 5000, 6000
# Every systemctl verb that changes the host; check mode and 'check' failures must issue none.
MUTATING = {'start', 'stop', 'restart', 'reload', 'try-restart', 'reload-or-restart', 'enable', 'disable',
            'kill', 'reset-failed', 'daemon-reload', 'mask', 'unmask', 'isolate'}


# --------------------------------------------------------------------------- doubles

def stat_text(pid, comm='myapp', state='S', start=OLD_START):
    """A /proc/<pid>/stat line: fields 4-21 are filler, field 22 is the start time."""
    fields = [state] + [str(n) for n in range(4, 22)] + [str(start)] + ['0'] * 30
    return '%d (%s) %s\n' % (pid, comm, ' '.join(fields))


class FakeProc(object):
    """A /proc look-alike: <root>/<pid>/{stat,cgroup,exe}."""

    def __init__(self, root):
        self.root = root
        root.mkdir()

    def spawn(self, pid, start, state='S', comm='myapp', cgroup='0::%s\n' % CGROUP, exe=None):
        piddir = self.root / str(pid)
        if piddir.exists():
            shutil.rmtree(str(piddir))
        piddir.mkdir()
        (piddir / 'stat').write_text(stat_text(pid, comm, state, start))
        (piddir / 'cgroup').write_text(cgroup)
        if exe is not None:
            os.symlink(exe, str(piddir / 'exe'))
        return pid

    def exit(self, pid):
        shutil.rmtree(str(self.root / str(pid)))

    def running(self, pid):
        return (self.root / str(pid)).is_dir()


class FakeSystemd(Systemd):
    """The real Systemd class over a scripted run_command that records every systemctl call.

    ``units`` holds each unit's properties (what ``systemctl show`` prints), ``rc`` the exit code per
    "verb unit" (options such as --no-block left out), ``hooks`` what a command does to the units.
    """

    def __init__(self):
        super(FakeSystemd, self).__init__(self._run_command)
        self.units = {}
        self.calls = []
        self.timeouts = []
        self.rc = {}
        self.hooks = {}
        self.boot = {}
        self.version_text = 'systemd 254 (254.5-1~bpo12+3)\n+PAM +AUDIT +SELINUX\n'

    def unit(self, name, **props):
        state = dict(LoadState='loaded', ActiveState='active', SubState='running', MainPID=0,
                     ControlGroup='/system.slice/%s' % name, Type='notify', Result='success')
        state.update(props)
        self.units[name] = state
        return state

    def set(self, name, **props):
        self.units[name].update(props)

    def _run_command(self, argv):
        timeout = None
        if argv[0] == 'timeout':
            timeout, argv = argv[1], argv[2:]
        assert argv[0] == 'systemctl', argv
        args = tuple(argv[1:])
        self.calls.append(args)
        self.timeouts.append(timeout)
        verb = args[0]
        if verb == 'show':
            state = self.units.get(args[1], dict(LoadState='not-found', ActiveState='inactive', MainPID=0))
            return 0, ''.join('%s=%s\n' % (p, state.get(p, '')) for p in args[3::2]), ''
        if verb == '--version':
            return 0, self.version_text, ''
        if verb == 'is-enabled':
            answer = self.boot.get(args[1], 'enabled')
            return (0 if answer == 'enabled' else 1), answer + '\n', ''
        key = ' '.join((verb,) + tuple(a for a in args[1:] if not a.startswith('-')))
        rc = self.rc.get(key, 0)
        if rc == 0 and key in self.hooks:
            self.hooks[key]()
        return rc, '', ('Job for %s failed.' % key if rc else '')

    def mutating(self):
        return [call for call in self.calls if call[0] in MUTATING]

    def issued(self, *args):
        return args in self.calls


class FakeClock(object):
    """Time moves only in sleep(); callbacks scheduled with later() run once their time has come."""

    def __init__(self):
        self.now = 1000.0
        self.slept = 0.0
        self.pending = []

    def __call__(self):
        return self.now

    def later(self, delay, callback):
        self.pending.append((self.now + delay, callback))

    def sleep(self, seconds):
        assert seconds > 0
        self.now += seconds
        self.slept += seconds
        if self.slept > 3600:
            raise AssertionError('a polling loop ran past an hour of fake time')
        due = [item for item in self.pending if item[0] <= self.now + 1e-9]
        self.pending = [item for item in self.pending if item[0] > self.now + 1e-9]
        for _when, callback in sorted(due, key=lambda item: item[0]):
            callback()


class Env(object):
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.proc = FakeProc(tmp_path / 'proc')
        self.proc_root = str(self.proc.root)
        self.systemd = FakeSystemd()
        self.clock = FakeClock()
        self.kills = []
        self.on_kill = None
        self.files = {}
        self.reads = []

    def kill(self, pid, sig):
        self.kills.append((pid, sig))
        if self.on_kill is not None:
            self.on_kill(pid, sig)

    def read_file(self, path):
        self.reads.append(path)
        if path not in self.files:
            raise FileNotFoundError(2, 'No such file or directory', path)
        return self.files[path]

    def restart(self, check_mode=False, **options):
        return Restart(Options(SERVICE, **options), self.systemd, check_mode=check_mode, proc_root=self.proc_root,
                       clock=self.clock, sleep=self.clock.sleep, kill=self.kill, read_file=self.read_file)

    def run(self, check_mode=False, **options):
        return self.restart(check_mode=check_mode, **options).run()

    def fails(self, check_mode=False, **options):
        with pytest.raises(RestartFailed) as info:
            self.run(check_mode=check_mode, **options)
        return info.value

    @property
    def migrate_req_path(self):
        return os.path.join(self.proc_root, 'sys/net/ipv4/tcp_migrate_req')

    # ---- host layouts

    def main_swap(self, unit, old_pid, new_pid, new_start=NEW_START, exit_old=True, **props):
        """A hook: the old main process exits, the new one is unit's main PID."""
        def hook():
            if exit_old and old_pid and self.proc.running(old_pid):
                self.proc.exit(old_pid)
            self.proc.spawn(new_pid, new_start)
            self.systemd.set(unit, ActiveState='active', SubState='running', MainPID=new_pid, **props)
        return hook

    def socket_layout(self, socket_active=True, service_active=True):
        self.systemd.unit(SOCKET, ActiveState='active' if socket_active else 'inactive',
                          SubState='listening' if socket_active else 'dead', Type='', ControlGroup='')
        if service_active:
            self.systemd.unit(UNIT, MainPID=OLD_PID, ControlGroup=CGROUP)
            self.proc.spawn(OLD_PID, OLD_START)
        else:
            self.systemd.unit(UNIT, ActiveState='inactive', SubState='dead', ControlGroup='')
        self.systemd.hooks['restart ' + UNIT] = self.main_swap(UNIT, OLD_PID, NEW_PID)
        self.systemd.hooks['start ' + UNIT] = self.main_swap(UNIT, 0, NEW_PID)

    def reexec_layout(self, service_active=True):
        if service_active:
            self.systemd.unit(UNIT, MainPID=OLD_PID, ControlGroup=CGROUP)
            self.proc.spawn(OLD_PID, OLD_START)
            self.files[PID_FILE] = '%d\n' % OLD_PID
        else:
            self.systemd.unit(UNIT, ActiveState='inactive', SubState='dead', ControlGroup='')
        self.systemd.hooks['start ' + UNIT] = self.main_swap(UNIT, 0, NEW_PID)

    def hand_over(self, ready_after=0.6, old_exits_after=1.0, systemd_follows=True):
        """What a signal_reexec app does on the signal: the child writes the PID file, the parent drains."""
        def on_kill(pid, sig):
            def child_ready():
                self.proc.spawn(NEW_PID, NEW_START)
                self.files[PID_FILE] = '%d\n' % NEW_PID
                if systemd_follows:
                    self.systemd.set(UNIT, MainPID=NEW_PID)
            self.clock.later(ready_after, child_ready)
            if old_exits_after is not None:
                self.clock.later(old_exits_after, lambda: self.proc.exit(OLD_PID))
        self.on_kill = on_kill

    def reload_layout(self, unit_type='notify-reload', version=254, service_active=True):
        self.systemd.version_text = 'systemd %d (%d.1-1)\n+PAM\n' % (version, version)
        if service_active:
            self.systemd.unit(UNIT, MainPID=OLD_PID, ControlGroup=CGROUP, Type=unit_type)
            self.proc.spawn(OLD_PID, OLD_START)
        else:
            self.systemd.unit(UNIT, ActiveState='inactive', SubState='dead', ControlGroup='', Type=unit_type)
        self.systemd.hooks['start ' + UNIT] = self.main_swap(UNIT, 0, NEW_PID)

        def reloaded():
            # the old process hands over and drains a little later
            self.proc.spawn(NEW_PID, NEW_START)
            self.systemd.set(UNIT, MainPID=NEW_PID)
            self.clock.later(0.5, lambda: self.proc.exit(OLD_PID))
        self.systemd.hooks['reload ' + UNIT] = reloaded

    def reuseport_layout(self, running=('a',), migrate_req='1\n'):
        for slot, pid, start in (('a', OLD_PID, OLD_START), ('b', 300, OLD_START + 500)):
            unit = 'myapp@%s.service' % slot
            if slot in running:
                self.systemd.unit(unit, MainPID=pid)
                self.proc.spawn(pid, start, cgroup='0::/system.slice/system-myapp.slice/%s\n' % unit)
            else:
                self.systemd.unit(unit, ActiveState='inactive', SubState='dead', ControlGroup='')

            def stopped(unit=unit, pid=pid):
                if self.proc.running(pid):
                    self.proc.exit(pid)
                self.systemd.set(unit, ActiveState='inactive', SubState='dead', MainPID=0)
            self.systemd.hooks['stop ' + unit] = stopped
        if migrate_req is not None:
            self.files[self.migrate_req_path] = migrate_req

    def binaries(self):
        """releases/1/myapp and releases/2/myapp, current -> releases/1; returns (rel1, rel2, current/myapp)."""
        for rid in ('1', '2'):
            (self.tmp_path / 'releases' / rid).mkdir(parents=True)
            (self.tmp_path / 'releases' / rid / 'myapp').write_text('binary %s' % rid)
        os.symlink(str(self.tmp_path / 'releases' / '1'), str(self.tmp_path / 'current'))
        return (str(self.tmp_path / 'releases' / '1' / 'myapp'), str(self.tmp_path / 'releases' / '2' / 'myapp'),
                str(self.tmp_path / 'current' / 'myapp'))


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


# --------------------------------------------------------------------------- parsing

@pytest.mark.parametrize('text, expected', [
    ('systemd 252 (252.30-1~deb12u2)', 252),
    ('  systemd 256 (256.7-1)\n+PAM +AUDIT', 256),
    ('systemd 219\n', 219),
])
def test_parse_systemd_version_reads_the_major(text, expected):
    assert parse_systemd_version(text) == expected


@pytest.mark.parametrize('text', ['', None, 'bash: systemctl: command not found',
                                  'System has not been booted with systemd as init system (PID 1).',
                                  'systemd abc (1)', 'version 252'])
def test_parse_systemd_version_refuses_junk(text):
    with pytest.raises(HotswapError) as info:
        parse_systemd_version(text)
    assert 'Check that systemd runs on this host' in info.value.msg
    assert 'systemctl --version' in info.value.msg


def test_systemd_version_reads_the_first_line_and_fails_on_rc():
    fake = FakeSystemd()
    fake.version_text = 'systemd 253 (253.1)\nsystemd 999 is not this line\n'
    assert fake.version() == 253
    failing = Systemd(lambda argv: (127, '', 'systemctl: not found'))
    with pytest.raises(HotswapError) as info:
        failing.version()
    assert 'rc 127' in info.value.msg and 'systemctl: not found' in info.value.msg


def test_parse_show_keeps_equal_signs_in_values_and_skips_junk_lines():
    text = ('MainPID=4242\nActiveState=active\n'
            'ExecStart={ path=/opt/myapp/current/myapp ; argv[]=/opt/myapp/current/myapp --port=8080 }\n'
            'ControlGroup=\nnot a property line\n  Type = notify \n')
    props = parse_show(text)
    assert props == {
        'MainPID': '4242',
        'ActiveState': 'active',
        'ExecStart': '{ path=/opt/myapp/current/myapp ; argv[]=/opt/myapp/current/myapp --port=8080 }',
        'ControlGroup': '',
        'Type': 'notify',
    }
    assert parse_show('') == {} and parse_show(None) == {}


def test_systemd_show_asks_for_each_property_and_fails_on_rc():
    fake = FakeSystemd()
    fake.unit(UNIT, MainPID=77)
    assert fake.show(UNIT, 'MainPID', 'Type') == {'MainPID': '77', 'Type': 'notify'}
    assert fake.calls == [('show', UNIT, '-p', 'MainPID', '-p', 'Type')]
    failing = Systemd(lambda argv: (1, '', 'Failed to connect to bus: No such file or directory'))
    with pytest.raises(HotswapError) as info:
        failing.show(UNIT, 'MainPID')
    assert 'Failed to connect to bus' in info.value.msg and UNIT in info.value.msg


@pytest.mark.parametrize('timeout, wrapper', [(None, None), (0, None), (60, '60s'), (2.2, '3s'), (0.3, '1s')])
def test_systemd_run_wraps_a_timeout_with_coreutils_timeout(timeout, wrapper):
    seen = []
    Systemd(lambda argv: seen.append(argv) or (0, None, None)).run('restart', UNIT, timeout=timeout)
    expected = ['systemctl', 'restart', UNIT]
    assert seen == [expected if wrapper is None else ['timeout', wrapper] + expected]


def polled(t, cap=rs.POLL_INTERVAL):
    """When a wait loop that starts at 0 first sees what happened at ``t``."""
    at, delays = 0.0, rs.poll_delays(cap)
    while at < t - 1e-9:
        at += next(delays)
    return at


def test_poll_delays_start_quick_and_back_off_to_the_cap():
    delays = rs.poll_delays(0.2)
    assert [round(d, 3) for d in itertools.islice(delays, 7)] == [0.02, 0.04, 0.08, 0.16, 0.2, 0.2, 0.2]
    assert next(rs.poll_delays(0.01)) == 0.01


def test_parse_stat_start_time_with_spaces_and_parentheses_in_the_command_name():
    assert parse_stat_start_time(stat_text(4242, comm='my app (worker) )', state='R', start=987654)) == (987654, 'R')
    assert parse_stat_start_time(stat_text(7, comm=') S 1 2 3', state='S', start=11)) == (11, 'S')


def test_parse_stat_start_time_on_a_truncated_line_raises():
    with pytest.raises((ValueError, IndexError)):
        parse_stat_start_time('4242 (myapp) S 1 2 3')
    with pytest.raises(ValueError):
        parse_stat_start_time('no parenthesis here')


def test_parse_pid_reads_a_pid():
    assert parse_pid('4242\n', PID_FILE) == 4242
    assert parse_pid('  2  ', PID_FILE) == 2


@pytest.mark.parametrize('text', ['', None, 'abc', '-5', '12 13', '4.2', '0', '1', '0x10', '4242\n4243'])
def test_parse_pid_refuses_junk_and_pids_0_and_1(text):
    with pytest.raises(HotswapError) as info:
        parse_pid(text, PID_FILE)
    assert PID_FILE in info.value.msg
    assert 'is not a process id' in info.value.msg


@pytest.mark.parametrize('name, number', [
    ('SIGHUP', 1), ('HUP', 1), ('hup', 1), (' sighup ', 1), ('1', 1), (1, 1),
    ('SIGUSR2', int(signal.SIGUSR2)), ('USR1', int(signal.SIGUSR1)), ('15', 15), ('64', 64),
])
def test_signal_number_accepts_names_and_numbers(name, number):
    assert signal_number(name) == number


@pytest.mark.parametrize('name', ['SIGFOO', 'FOO', '', '0', '65', '-1', 'HUPX', None, 'SIG'])
def test_signal_number_refuses_what_is_not_a_signal(name):
    with pytest.raises(HotswapError) as info:
        signal_number(name)
    assert 'is not a signal' in info.value.msg and 'SIGHUP' in info.value.msg


@pytest.mark.parametrize('name', ['SIG_DFL', 'SIG_IGN', '_SETMASK'])
def test_signal_number_refuses_handler_and_mask_constants(name):
    with pytest.raises(HotswapError):
        signal_number(name)


def test_unit_slots():
    assert unit_slots('myapp') == [SLOT_A, SLOT_B]


# --------------------------------------------------------------------------- processes

def test_process_ref_of_a_live_process(env):
    env.proc.spawn(OLD_PID, OLD_START, comm='my app (x)')
    proc = ProcessRef.of(OLD_PID, env.proc_root)
    assert proc == ProcessRef(OLD_PID, OLD_START)
    assert proc.as_dict() == {'pid': OLD_PID, 'start_time': OLD_START}
    assert proc.alive()
    assert read_stat(OLD_PID, env.proc_root) == (OLD_START, 'S')


@pytest.mark.parametrize('pid', [0, None, 4321])
def test_process_ref_of_nothing_is_none(env, pid):
    assert ProcessRef.of(pid, env.proc_root) is None


def test_process_ref_of_garbage_stat_is_none(env):
    (env.proc.root / '55').mkdir()
    (env.proc.root / '55' / 'stat').write_text('55 (broken')
    assert ProcessRef.of(55, env.proc_root) is None


def test_process_that_exits_is_not_alive(env):
    env.proc.spawn(OLD_PID, OLD_START)
    proc = ProcessRef.of(OLD_PID, env.proc_root)
    env.proc.exit(OLD_PID)
    assert not proc.alive()


@pytest.mark.parametrize('state', ['Z', 'X', 'x'])
def test_zombie_or_dead_process_counts_as_gone(env, state):
    env.proc.spawn(OLD_PID, OLD_START)
    proc = ProcessRef.of(OLD_PID, env.proc_root)
    env.proc.spawn(OLD_PID, OLD_START, state=state)
    assert not proc.alive()
    assert ProcessRef.of(OLD_PID, env.proc_root) is None


def test_reused_pid_with_another_start_time_is_not_alive(env):
    env.proc.spawn(OLD_PID, OLD_START)
    proc = ProcessRef.of(OLD_PID, env.proc_root)
    env.proc.spawn(OLD_PID, OLD_START + 1)   # same PID, another process
    assert not proc.alive()
    assert ProcessRef.of(OLD_PID, env.proc_root) != proc
    assert hash(ProcessRef(1, 2)) == hash(ProcessRef(1, 2)) and ProcessRef(1, 2) != ProcessRef(1, 3)
    assert ProcessRef(1, 2) != (1, 2)


def test_process_executable_reads_the_exe_link(env):
    env.proc.spawn(OLD_PID, OLD_START, exe='/opt/myapp/releases/1/myapp (deleted)')
    env.proc.spawn(NEW_PID, NEW_START)
    assert ProcessRef.of(OLD_PID, env.proc_root).executable() == '/opt/myapp/releases/1/myapp (deleted)'
    assert ProcessRef.of(NEW_PID, env.proc_root).executable() is None


def test_in_control_group_hybrid_mode_uses_the_name_systemd_line(env):
    # cgroup v1 + v2 hybrid inside a container: the unified line shows only the container root.
    hybrid = '12:memory:/docker/abc\n1:name=systemd:/system.slice/myapp.service\n0::/\n'
    env.proc.spawn(OLD_PID, OLD_START, cgroup=hybrid)
    assert process_cgroups(OLD_PID, env.proc_root) == [CGROUP, '/']
    assert in_control_group(OLD_PID, CGROUP, env.proc_root) is True
    assert in_control_group(OLD_PID, '/system.slice/other.service', env.proc_root) is False


def test_in_control_group_unified_only(env):
    env.proc.spawn(1, 1, cgroup='0::/system.slice/myapp.service\n')
    env.proc.spawn(2, 1, cgroup='0::/system.slice/myapp.service/worker\n')
    env.proc.spawn(3, 1, cgroup='0::/system.slice/myapp.service2\n')
    env.proc.spawn(4, 1, cgroup='0::/user.slice/user-1000.slice/session-2.scope\n')
    env.proc.spawn(5, 1, cgroup='4:memory:/system.slice/myapp.service\n')  # a v1 controller line does not count
    assert in_control_group(1, CGROUP, env.proc_root) is True
    assert in_control_group(2, CGROUP, env.proc_root) is True
    assert in_control_group(3, CGROUP, env.proc_root) is False
    assert in_control_group(4, CGROUP, env.proc_root) is False
    assert in_control_group(5, CGROUP, env.proc_root) is False
    assert in_control_group(1, '', env.proc_root) is False
    assert in_control_group(1, None, env.proc_root) is False
    assert in_control_group(999, CGROUP, env.proc_root) is False


def test_same_file(env):
    rel1, rel2, current = env.binaries()
    assert same_file(rel1, current) is True
    assert same_file(rel2, current) is False
    assert same_file(rel1 + ' (deleted)', current) is False      # replaced binary: never "the same"
    assert same_file(str(env.tmp_path / 'gone'), current) is False
    assert same_file(rel1, str(env.tmp_path / 'missing' / 'myapp')) is False
    assert same_file(None, current) is False
    assert same_file('', current) is False


# --------------------------------------------------------------------------- options

def check_failure(info, *fragments):
    assert isinstance(info.value, RestartFailed)
    assert info.value.stage == 'check'
    for fragment in fragments:
        assert fragment in info.value.msg


def test_options_unknown_strategy():
    with pytest.raises(RestartFailed) as info:
        Options(SERVICE, strategy='blue_green')
    check_failure(info, "unknown strategy 'blue_green'", 'Use one of:', 'systemd_socket', 'reuseport')


@pytest.mark.parametrize('service', ['', None, 'myapp.service', 'myapp.socket', 'my@app', 'my app', 'a/b'])
def test_options_refuses_what_is_not_a_service_name(service):
    with pytest.raises(RestartFailed) as info:
        Options(service)
    check_failure(info, 'not a service name', 'without .service')


def test_options_signal_reexec_needs_pid_file():
    with pytest.raises(RestartFailed) as info:
        Options(SERVICE, strategy='signal_reexec')
    check_failure(info, 'pid_file is required', 'Give the path', '/run/myapp/myapp.pid')


@pytest.mark.parametrize('name', ['ready_timeout', 'drain_timeout', 'health_timeout'])
@pytest.mark.parametrize('value', [0, -1, -0.5, None])
def test_options_timeouts_must_be_positive(name, value):
    with pytest.raises(RestartFailed) as info:
        Options(SERVICE, **{name: value})
    check_failure(info, name, 'must be more than 0 seconds', 'Give the number of seconds')


def test_options_expected_version_needs_url():
    with pytest.raises(RestartFailed) as info:
        Options(SERVICE, expected_version='2.0.0')
    check_failure(info, 'expected_version needs url', 'Give url')


def test_options_bad_url_is_a_check_failure():
    with pytest.raises(RestartFailed) as info:
        Options(SERVICE, url='ftp://127.0.0.1/healthz')
    check_failure(info, 'restarting myapp:', "scheme 'ftp'")


def test_options_bad_signal_only_matters_for_signal_reexec():
    with pytest.raises(HotswapError) as info:
        Options(SERVICE, strategy='signal_reexec', pid_file=PID_FILE, signal='SIGBOGUS')
    assert 'is not a signal' in info.value.msg
    assert Options(SERVICE, signal='SIGBOGUS').signal is None
    assert Options(SERVICE, strategy='signal_reexec', pid_file=PID_FILE, signal='USR2').signal == signal.SIGUSR2


def test_options_build_probes_from_url():
    options = Options(SERVICE, url='http://127.0.0.1:8080/healthz', expected_version='2.0.0', health_timeout=2,
                      ready_timeout='30', validate_certs=False)
    assert options.unit == UNIT
    assert options.ready_timeout == 30.0 and options.drain_timeout == 60.0
    assert options.ready_probe.target == 'http://127.0.0.1:8080/healthz'
    assert options.ready_probe.expected_version is None and options.ready_probe.timeout == 2.0
    assert options.version_probe.expected_version == '2.0.0'
    assert options.version_probe.validate_certs is False
    plain = Options(SERVICE)
    assert plain.ready_probe is None and plain.version_probe is None


# --------------------------------------------------------------------------- systemd_socket

def test_socket_not_loaded_fails_check_and_changes_nothing(env):
    env.socket_layout()
    env.systemd.set(SOCKET, LoadState='not-found', ActiveState='inactive')
    exc = env.fails(daemon_reload=False)
    assert exc.stage == 'check'
    assert 'myapp.socket does not exist (LoadState=not-found)' in exc.msg
    assert 'ListenStream=' in exc.msg
    assert env.systemd.mutating() == []
    assert env.proc.running(OLD_PID)


def test_socket_happy_path(env):
    env.socket_layout()
    # systemctl restart returns once the new process is ready; let systemd report it a few polls later
    swap = env.main_swap(UNIT, OLD_PID, NEW_PID)

    def restart_hook():
        env.proc.exit(OLD_PID)
        env.systemd.set(UNIT, ActiveState='activating', SubState='start', MainPID=0)
        env.clock.later(0.4, swap)
    env.systemd.hooks['restart ' + UNIT] = restart_hook
    result = env.run()
    assert result['stage'] == 'done'
    assert result['changed'] is True
    assert result['old_pid'] == OLD_PID and result['old_start_time'] == OLD_START
    assert result['new_pid'] == NEW_PID
    assert result['unit'] == [SOCKET, UNIT]
    assert result['transition'] is False
    assert set(result['timings']) == {'trigger', 'ready', 'drain'}
    assert result['timings']['ready'] == pytest.approx(polled(0.4))
    assert result['elapsed'] == pytest.approx(polled(0.4))
    assert result['enabled'] == []
    assert env.systemd.mutating() == [('reset-failed', UNIT), ('restart', UNIT)]
    assert env.systemd.timeouts[env.systemd.calls.index(('restart', UNIT))] == '60s'
    assert env.systemd.issued('is-enabled', SOCKET) and env.systemd.issued('is-enabled', UNIT)


def test_socket_new_process_exits_is_a_ready_failure(env):
    env.socket_layout()

    def crashed():
        env.proc.exit(OLD_PID)
        env.systemd.set(UNIT, ActiveState='activating', SubState='auto-restart', MainPID=0, Result='exit-code')
    env.systemd.hooks['restart ' + UNIT] = crashed
    exc = env.fails(ready_timeout=30)
    assert exc.stage == 'ready'
    assert 'exited (Result=exit-code)' in exc.msg and 'journalctl -u myapp.service' in exc.msg
    assert 'roll the binary back' in exc.msg
    assert exc.details['old_pid'] == OLD_PID and exc.details['new_pid'] is None
    assert env.clock.slept == 0    # no waiting into the start limit
    assert not env.systemd.issued('stop', SOCKET)


def test_socket_inactive_is_started_first(env):
    env.socket_layout(socket_active=False)

    def stop_service():
        env.proc.exit(OLD_PID)
        env.systemd.set(UNIT, ActiveState='inactive', SubState='dead', MainPID=0)
    env.systemd.hooks['stop ' + UNIT] = stop_service
    env.systemd.hooks['start ' + SOCKET] = lambda: env.systemd.set(SOCKET, ActiveState='active')
    result = env.run()
    assert result['stage'] == 'done' and result['transition'] is True
    assert result['old_pid'] == OLD_PID and result['new_pid'] == NEW_PID
    assert env.systemd.mutating() == [('stop', UNIT), ('start', SOCKET), ('reset-failed', UNIT), ('start', UNIT)]


def test_socket_start_failure_is_a_trigger_failure(env):
    env.socket_layout(socket_active=False, service_active=False)
    env.systemd.rc['start ' + SOCKET] = 1
    exc = env.fails()
    assert exc.stage == 'trigger'
    assert 'starting myapp.socket failed (rc 1)' in exc.msg
    assert not env.systemd.issued('start', UNIT)


@pytest.mark.parametrize('rc, stage, fragment', [(124, 'ready', 'did not finish within ready_timeout 5s'),
                                                 (1, 'trigger', '`systemctl restart myapp.service` failed (rc 1)')])
def test_socket_restart_command_failures(env, rc, stage, fragment):
    env.socket_layout()
    env.systemd.rc['restart ' + UNIT] = rc
    exc = env.fails(ready_timeout=5)
    assert exc.stage == stage and fragment in exc.msg


def test_socket_old_process_that_never_exits_is_a_drain_failure(env):
    env.socket_layout()
    env.systemd.hooks['restart ' + UNIT] = env.main_swap(UNIT, OLD_PID, NEW_PID, exit_old=False)
    exc = env.fails(drain_timeout=3)
    assert exc.stage == 'drain'
    assert 'the old process 100 still runs 3s after the switch' in exc.msg and 'KillMode=' in exc.msg
    assert exc.details['new_pid'] == NEW_PID
    assert env.clock.slept >= 3


def test_daemon_reload_runs_first_and_its_failure_is_a_check_failure(env):
    env.socket_layout()
    assert env.run(daemon_reload=True)['stage'] == 'done'
    assert env.systemd.mutating()[0] == ('daemon-reload',)

    (env.tmp_path / 'second').mkdir()
    other = Env(env.tmp_path / 'second')
    other.socket_layout()
    other.systemd.rc['daemon-reload'] = 1
    exc = other.fails(daemon_reload=True)
    assert exc.stage == 'check' and 'systemd-analyze verify' in exc.msg
    assert other.systemd.mutating() == [('daemon-reload',)]


def test_enable_at_boot_enables_what_is_not_and_reports_a_failure(env):
    env.socket_layout()
    env.systemd.boot[SOCKET] = 'disabled'
    env.systemd.boot[UNIT] = 'static'
    result = env.run()
    assert result['enabled'] == [SOCKET]
    assert env.systemd.issued('enable', SOCKET) and not env.systemd.issued('enable', UNIT)

    env.systemd.rc['enable ' + SOCKET] = 1
    env.systemd.units[UNIT]['MainPID'] = NEW_PID
    env.systemd.hooks['restart ' + UNIT] = env.main_swap(UNIT, NEW_PID, 201)
    exc = env.fails()
    assert exc.stage == 'enable' and '[Install]' in exc.msg


# --------------------------------------------------------------------------- signal_reexec

REEXEC = dict(strategy='signal_reexec', pid_file=PID_FILE)


def test_reexec_stale_pid_file_fails_check_without_a_signal(env):
    env.reexec_layout()
    env.files[PID_FILE] = '4321\n'
    exc = env.fails(**REEXEC)
    assert exc.stage == 'check'
    assert 'names process 4321, which is not running (a stale PID file)' in exc.msg
    assert env.kills == [] and env.systemd.mutating() == []


def test_reexec_foreign_process_fails_check_without_a_signal(env):
    env.reexec_layout()
    env.proc.spawn(OLD_PID, OLD_START, cgroup='0::/user.slice/user-1000.slice/session-2.scope\n')
    exc = env.fails(**REEXEC)
    assert exc.stage == 'check'
    assert 'not part of myapp.service' in exc.msg and 'session-2.scope' in exc.msg and 'check pid_file' in exc.msg
    assert env.kills == [] and env.systemd.mutating() == []


def test_reexec_hybrid_cgroup_process_is_signalled(env):
    env.reexec_layout()
    env.proc.spawn(OLD_PID, OLD_START, cgroup='1:name=systemd:%s\n0::/\n' % CGROUP)
    env.hand_over()
    assert env.run(**REEXEC)['stage'] == 'done'
    assert env.kills == [(OLD_PID, signal.SIGHUP)]


@pytest.mark.parametrize('content, fragment', [(None, 'cannot read the PID file'), ('junk', 'is not a process id')])
def test_reexec_unreadable_pid_file_fails_check(env, content, fragment):
    env.reexec_layout()
    if content is None:
        del env.files[PID_FILE]
    else:
        env.files[PID_FILE] = content
    exc = env.fails(**REEXEC)
    assert exc.stage == 'check' and fragment in exc.msg and PID_FILE in exc.msg
    assert env.kills == []


def test_reexec_pid_file_never_changes_is_a_ready_failure_and_the_old_process_serves(env):
    env.reexec_layout()
    exc = env.fails(ready_timeout=2, **REEXEC)
    assert exc.stage == 'ready'
    assert 'still names 100 2s after the signal' in exc.msg and 'The old process still runs' in exc.msg
    assert env.kills == [(OLD_PID, signal.SIGHUP)]
    assert env.proc.running(OLD_PID) and ProcessRef(OLD_PID, OLD_START, env.proc_root).alive()
    assert env.clock.slept == pytest.approx(polled(2.0))
    assert env.systemd.mutating() == []


def test_reexec_happy_path(env):
    env.reexec_layout()
    env.hand_over(ready_after=0.6, old_exits_after=1.0)
    result = env.run(signal='SIGUSR2', **REEXEC)
    assert result['stage'] == 'done' and result['changed'] is True
    assert result['old_pid'] == OLD_PID and result['new_pid'] == NEW_PID
    assert result['systemd_main_pid'] == NEW_PID
    assert env.kills == [(OLD_PID, signal.SIGUSR2)]
    assert set(result['timings']) == {'trigger', 'ready', 'drain'}
    assert result['timings']['ready'] == pytest.approx(polled(0.6))
    assert result['timings']['drain'] == pytest.approx(polled(1.0 - polled(0.6)))   # the old one leaves at 1.0
    assert env.systemd.mutating() == []
    assert not env.proc.running(OLD_PID)


def test_reexec_systemd_not_following_is_a_drain_failure(env):
    env.reexec_layout()
    env.hand_over(systemd_follows=False)
    exc = env.fails(**REEXEC)
    assert exc.stage == 'drain'
    assert 'systemd does not track the new process 200 (MainPID=100' in exc.msg and 'NotifyAccess=all' in exc.msg
    assert exc.details['systemd_main_pid'] == OLD_PID and exc.details['new_pid'] == NEW_PID


def test_reexec_signal_refused_is_a_trigger_failure(env):
    env.reexec_layout()

    def refuse(pid, sig):
        raise PermissionError(1, 'Operation not permitted')
    env.on_kill = refuse
    exc = env.fails(**REEXEC)
    assert exc.stage == 'trigger' and 'Operation not permitted' in exc.msg and "service's user or root" in exc.msg


def test_reexec_inactive_unit_is_started_plainly(env):
    env.reexec_layout(service_active=False)
    result = env.run(**REEXEC)
    assert result['stage'] == 'done' and result['transition'] is True and result['new_pid'] == NEW_PID
    assert env.kills == [] and env.reads == []
    assert env.systemd.mutating() == [('reset-failed', UNIT), ('start', UNIT)]


# --------------------------------------------------------------------------- notify_reload

NOTIFY = dict(strategy='notify_reload')


def test_notify_reload_on_systemd_252_fails_check(env):
    env.reload_layout(version=252)
    exc = env.fails(**NOTIFY)
    assert exc.stage == 'check'
    assert 'systemd 252' in exc.msg and '253 or newer' in exc.msg and 'signal_reexec' in exc.msg
    assert exc.details['systemd_version'] == 252
    assert env.systemd.mutating() == []


def test_notify_reload_wrong_unit_type_fails_check(env):
    env.reload_layout(unit_type='notify')
    exc = env.fails(**NOTIFY)
    assert exc.stage == 'check'
    assert 'has Type=notify;' in exc.msg and 'Type=notify-reload' in exc.msg
    assert env.systemd.mutating() == []


def test_notify_reload_happy_path(env):
    env.reload_layout()
    result = env.run(**NOTIFY)
    assert result['stage'] == 'done' and result['systemd_version'] == 254
    assert result['old_pid'] == OLD_PID and result['new_pid'] == NEW_PID
    assert env.systemd.mutating() == [('reload', UNIT)]
    assert env.systemd.timeouts[env.systemd.calls.index(('reload', UNIT))] == '60s'
    assert result['timings']['drain'] == pytest.approx(polled(0.5))   # polls until the old one left at 0.5


def test_notify_reload_that_keeps_the_old_process_is_a_ready_failure(env):
    env.reload_layout()
    env.systemd.hooks['reload ' + UNIT] = lambda: None
    exc = env.fails(**NOTIFY)
    assert exc.stage == 'ready' and 'the main process is still 100' in exc.msg
    assert env.proc.running(OLD_PID)


# --------------------------------------------------------------------------- reuseport

REUSEPORT = dict(strategy='reuseport')


@pytest.mark.parametrize('running, new_slot, old_slot, old_pid', [('a', 'b', 'a', OLD_PID), ('b', 'a', 'b', 300)])
def test_reuseport_starts_the_idle_slot_and_stops_the_old(env, running, new_slot, old_slot, old_pid):
    env.reuseport_layout(running=(running,))
    new_unit, old_unit = 'myapp@%s.service' % new_slot, 'myapp@%s.service' % old_slot
    env.systemd.boot[new_unit] = 'disabled'

    def started():
        env.systemd.set(new_unit, ActiveState='activating', SubState='start')
        env.clock.later(0.4, env.main_swap(new_unit, 0, NEW_PID))
    env.systemd.hooks['start ' + new_unit] = started
    result = env.run(**REUSEPORT)
    assert result['stage'] == 'done'
    assert result['old_unit'] == old_unit and result['new_unit'] == new_unit
    assert result['old_pid'] == old_pid and result['new_pid'] == NEW_PID
    assert result['unit'] == [SLOT_A, SLOT_B]
    assert result['tcp_migrate_req'] == '1'
    assert result['enabled'] == [new_unit]
    assert env.systemd.mutating() == [('start', '--no-block', new_unit), ('stop', '--no-block', old_unit),
                                      ('disable', old_unit), ('enable', new_unit)]
    assert not env.proc.running(old_pid)


@pytest.mark.parametrize('how', ['failed', 'never ready'])
def test_reuseport_stops_the_new_slot_when_it_is_not_ready(env, how):
    env.reuseport_layout(running=('a',))
    if how == 'failed':
        env.systemd.hooks['start ' + SLOT_B] = lambda: env.systemd.set(
            SLOT_B, ActiveState='failed', SubState='failed', Result='exit-code')
    else:
        env.systemd.hooks['start ' + SLOT_B] = lambda: env.systemd.set(
            SLOT_B, ActiveState='activating', SubState='start')
    exc = env.fails(ready_timeout=2, **REUSEPORT)
    assert exc.stage == 'ready'
    assert 'myapp@b.service' in exc.msg and 'the old instance was not touched' in exc.msg
    assert env.systemd.mutating() == [('start', '--no-block', SLOT_B), ('stop', SLOT_B), ('reset-failed', SLOT_B)]
    assert not any(SLOT_A in call for call in env.systemd.mutating())
    assert env.proc.running(OLD_PID)


@pytest.mark.parametrize('value, shown', [('0\n', 'is 0 on this host'), (None, 'is missing (Linux older than 5.14)')])
def test_reuseport_without_tcp_migrate_req_fails_check_before_starting(env, value, shown):
    env.reuseport_layout(running=('a',), migrate_req=value)
    exc = env.fails(**REUSEPORT)
    assert exc.stage == 'check'
    assert 'net.ipv4.tcp_migrate_req ' + shown in exc.msg and 'sysctl -w net.ipv4.tcp_migrate_req=1' in exc.msg
    assert env.systemd.mutating() == []
    assert env.reads == [env.migrate_req_path]


def test_reuseport_first_start_uses_slot_a_and_needs_no_migrate_req(env):
    env.reuseport_layout(running=(), migrate_req=None)
    env.systemd.hooks['start ' + SLOT_A] = env.main_swap(SLOT_A, 0, NEW_PID)
    result = env.run(**REUSEPORT)
    assert result['stage'] == 'done' and result['old_unit'] is None and result['new_unit'] == SLOT_A
    assert result['old_pid'] is None and result['new_pid'] == NEW_PID
    assert env.systemd.mutating() == [('start', '--no-block', SLOT_A)]


def test_reuseport_template_missing_fails_check(env):
    exc = env.fails(**REUSEPORT)
    assert exc.stage == 'check' and 'myapp@a.service does not exist' in exc.msg and 'myapp@.service' in exc.msg
    assert env.systemd.mutating() == []


def test_reuseport_two_slots_running_keeps_the_older(env):
    env.reuseport_layout(running=('a', 'b'))
    env.systemd.hooks['start ' + SLOT_B] = env.main_swap(SLOT_B, 0, NEW_PID)
    result = env.run(**REUSEPORT)
    assert result['transition'] is True
    assert result['old_unit'] == SLOT_A and result['new_unit'] == SLOT_B and result['new_pid'] == NEW_PID
    assert env.systemd.mutating() == [('stop', SLOT_B), ('disable', SLOT_B), ('start', '--no-block', SLOT_B),
                                      ('stop', '--no-block', SLOT_A), ('disable', SLOT_A)]


def test_reuseport_settling_two_slots_onto_the_current_one_is_a_change(env):
    rel1, _rel2, current = env.binaries()
    env.reuseport_layout(running=('a', 'b'))
    env.proc.spawn(300, OLD_START + 500, exe=rel1)   # slot b already runs the current binary
    env.systemd.boot[SLOT_B] = 'disabled'
    result = env.run(executable=current, **REUSEPORT)
    assert env.systemd.issued('stop', SLOT_A)
    assert result['changed'] is True
    assert env.systemd.issued('enable', SLOT_B)


def test_reuseport_nothing_to_do_still_enables_the_serving_slot(env):
    rel1, _rel2, current = env.binaries()
    env.reuseport_layout(running=('b',))
    env.proc.spawn(300, OLD_START + 500, exe=rel1)
    env.systemd.boot[SLOT_B] = 'disabled'
    result = env.run(executable=current, **REUSEPORT)
    assert result['enabled'] == [SLOT_B]


# --------------------------------------------------------------------------- nothing to do / check mode

def setup_strategy(env, strategy, exe=None):
    """A running service (old PID 100 unless reuseport slot a) with /proc/<pid>/exe -> exe."""
    if strategy in ('systemd_socket', 'restart'):
        env.socket_layout()
    elif strategy == 'signal_reexec':
        env.reexec_layout()
    elif strategy == 'notify_reload':
        env.reload_layout()
    else:
        env.reuseport_layout(running=('a',))
    if exe is not None:
        env.proc.spawn(OLD_PID, OLD_START, exe=exe, cgroup='0::%s\n' % (
            CGROUP if strategy != 'reuseport' else '/system.slice/system-myapp.slice/%s' % SLOT_A))
    return dict(strategy=strategy, pid_file=PID_FILE if strategy == 'signal_reexec' else None)


@pytest.mark.parametrize('strategy', rs.STRATEGIES)
def test_current_executable_means_no_restart(env, strategy):
    rel1, _rel2, current = env.binaries()
    options = setup_strategy(env, strategy, exe=rel1)
    result = env.run(executable=current, **options)
    assert result['changed'] is False and result['stage'] == 'done'
    assert result['old_pid'] == OLD_PID and result['new_pid'] == OLD_PID
    assert result['no_restart_reason'] == 'the main process already runs %s' % current
    assert env.systemd.mutating() == [] and env.kills == []
    assert env.proc.running(OLD_PID)


def test_deleted_executable_is_restarted(env):
    rel1, _rel2, current = env.binaries()
    setup_strategy(env, 'systemd_socket', exe=rel1 + ' (deleted)')
    result = env.run(executable=current)
    assert result['changed'] is True and result['new_pid'] == NEW_PID
    assert env.systemd.issued('restart', UNIT)


def test_other_release_executable_is_restarted(env):
    _rel1, rel2, current = env.binaries()
    setup_strategy(env, 'restart', exe=rel2)
    result = env.run(executable=current, strategy='restart')
    assert result['changed'] is True and result['unit'] == UNIT
    assert env.systemd.mutating() == [('reset-failed', UNIT), ('restart', UNIT)]


CHECK_MODE_CASES = [
    ('systemd_socket', 'running'), ('systemd_socket', 'socket inactive'), ('systemd_socket', 'stopped'),
    ('restart', 'running'), ('restart', 'stopped'),
    ('signal_reexec', 'running'), ('signal_reexec', 'stopped'),
    ('notify_reload', 'running'), ('notify_reload', 'stopped'),
    ('reuseport', 'running'), ('reuseport', 'two slots'), ('reuseport', 'stopped'),
]


@pytest.mark.parametrize('strategy, situation', CHECK_MODE_CASES)
def test_check_mode_changes_nothing(env, strategy, situation):
    if strategy in ('systemd_socket', 'restart'):
        env.socket_layout(socket_active=situation != 'socket inactive', service_active=situation != 'stopped')
    elif strategy == 'signal_reexec':
        env.reexec_layout(service_active=situation != 'stopped')
    elif strategy == 'notify_reload':
        env.reload_layout(service_active=situation != 'stopped')
    else:
        env.reuseport_layout(running={'running': ('a',), 'two slots': ('a', 'b'), 'stopped': ()}[situation],
                             migrate_req='0\n')
    for unit in env.systemd.units:
        env.systemd.boot[unit] = 'disabled'
    options = dict(strategy=strategy, daemon_reload=True)
    if strategy == 'signal_reexec':
        options['pid_file'] = PID_FILE
    result = env.run(check_mode=True, **options)
    assert result['stage'] == 'done' and result['changed'] is True
    would_enable = {'systemd_socket': [SOCKET, UNIT],
                    'reuseport': [SLOT_A if situation == 'stopped' else SLOT_B]}.get(strategy, [UNIT])
    assert result['enabled'] == would_enable   # reported, never issued
    assert env.systemd.mutating() == []
    assert env.kills == []
    assert result['new_pid'] is None
    if situation in ('running', 'two slots', 'socket inactive'):
        assert env.proc.running(OLD_PID)


# --------------------------------------------------------------------------- url / expected_version (loopback)

class VersionHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.hits += 1
        data = json.dumps({'status': 'ok', 'version': self.server.version}).encode('utf-8')
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class VersionServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super(VersionServer, self).__init__(('127.0.0.1', 0), VersionHandler)
        self.version = '1.0.0'
        self.hits = 0

    def handle_error(self, request, client_address):
        pass

    @property
    def url(self):
        return 'http://127.0.0.1:%d/healthz' % self.server_address[1]


@pytest.fixture(scope='module')
def version_server():
    server = VersionServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05})
    thread.daemon = True
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def web(version_server, monkeypatch):
    for name in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(name, raising=False)
    version_server.version = '1.0.0'
    version_server.hits = 0
    return version_server


def test_socket_restart_verifies_the_expected_version(env, web):
    env.socket_layout()
    swap = env.main_swap(UNIT, OLD_PID, NEW_PID)

    def restarted():
        swap()
        web.version = '2.0.0'
    env.systemd.hooks['restart ' + UNIT] = restarted
    result = env.run(url=web.url, expected_version='2.0.0', health_timeout=2)
    assert result['stage'] == 'done'
    assert result['old_version'] == '1.0.0' and result['new_version'] == '2.0.0'
    assert set(result['timings']) == {'trigger', 'ready', 'version', 'drain'}


def test_socket_restart_with_url_only_reports_the_new_version(env, web):
    env.socket_layout()
    swap = env.main_swap(UNIT, OLD_PID, NEW_PID)

    def restarted():
        swap()
        web.version = '1.1.0'
    env.systemd.hooks['restart ' + UNIT] = restarted
    result = env.run(url=web.url, health_timeout=2)
    assert result['old_version'] == '1.0.0' and result['new_version'] == '1.1.0'
    assert 'version' not in result['timings']


def test_wrong_version_fails_at_once_when_only_the_new_process_answers(env, web):
    env.socket_layout()
    exc = env.fails(url=web.url, expected_version='2.0.0', health_timeout=2, ready_timeout=30)
    assert exc.stage == 'version'
    assert "version is '1.0.0', expected '2.0.0'" in exc.msg
    assert env.clock.slept == 0    # stop_on_fail: no waiting out ready_timeout


def test_reuseport_version_probe_waits_while_the_old_slot_answers(env, web):
    env.reuseport_layout(running=('a',))

    def started():
        env.main_swap(SLOT_B, 0, NEW_PID)()
        env.clock.later(0.5, lambda: setattr(web, 'version', '2.0.0'))   # the old slot answered until then
    env.systemd.hooks['start ' + SLOT_B] = started
    result = env.run(url=web.url, expected_version='2.0.0', health_timeout=2, **REUSEPORT)
    assert result['stage'] == 'done'
    assert result['old_version'] == '1.0.0' and result['new_version'] == '2.0.0'
    assert result['timings']['version'] == pytest.approx(polled(0.5, 0.25))
    assert env.systemd.issued('stop', '--no-block', SLOT_A)


def socket_transition_on_current_binary(env, check_mode):
    rel1, _rel2, current = env.binaries()
    setup_strategy(env, 'systemd_socket', exe=rel1)
    env.systemd.set(SOCKET, ActiveState='inactive', SubState='dead')

    def stop_service():
        env.proc.exit(OLD_PID)
        env.systemd.set(UNIT, ActiveState='inactive', SubState='dead', MainPID=0)
    env.systemd.hooks['stop ' + UNIT] = stop_service
    env.systemd.hooks['start ' + SOCKET] = lambda: env.systemd.set(SOCKET, ActiveState='active')
    return env.run(check_mode=check_mode, executable=current)


def test_socket_transition_on_the_current_binary_restarts_once(env):
    result = socket_transition_on_current_binary(env, check_mode=False)
    assert result['transition'] is True and result['changed'] is True
    assert env.systemd.mutating() == [('stop', UNIT), ('start', SOCKET), ('reset-failed', UNIT), ('start', UNIT)]


def test_socket_transition_on_the_current_binary_is_a_change_in_check_mode(env):
    result = socket_transition_on_current_binary(env, check_mode=True)
    assert env.systemd.mutating() == []
    assert result['changed'] is True
