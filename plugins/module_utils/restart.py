# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Restart a systemd service on a new binary without refusing connections.

Strategies (ARCHITECTURE.md section 3, docs/app-contract.md):

``systemd_socket``  ``<svc>.socket`` holds the listener; only ``<svc>.service`` is restarted, so
                    connections queue in the socket's backlog instead of being refused.
``signal_reexec``   a signal (SIGHUP) to the main PID; the app re-executes ``current``, hands the
                    listener over, the child writes the PID file once ready, the parent drains.
``notify_reload``   ``Type=notify-reload`` unit, ``systemctl reload`` (synchronous, systemd >= 253).
``reuseport``       template unit ``<svc>@.service`` run as two slots (``a`` and ``b``) on one port
                    with SO_REUSEPORT: start the idle slot, verify it, stop the old one (it drains).
``restart``         plain ``systemctl restart``: the baseline, it refuses connections.

Every restart goes through the same stages: ``check`` (inputs and host, nothing changed yet),
``trigger``, ``ready`` (a new live main PID, systemd active, the readiness probe passes),
``version`` (the expected version answers) and ``drain`` (the old PID is gone). A failure raises
RestartFailed naming the stage; where the strategy allows, the old process is left serving.
"""

from __future__ import annotations

import os
import re
import signal as signals
import time

from ansible_collections.hotswap.deploy.plugins.module_utils.common import STRATEGIES, HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils import health

STAGES = ('check', 'trigger', 'ready', 'version', 'drain', 'enable')
REUSEPORT_SLOTS = ('a', 'b')
NOTIFY_RELOAD_MIN_SYSTEMD = 253
POLL_INTERVAL = 0.2
# The first polls come quickly (a Go service is often ready within 50 ms), then back off to POLL_INTERVAL.
FIRST_POLL = 0.02
UNIT_NAME_RE = re.compile(r'^[A-Za-z0-9:_.\\-]+$')


class RestartFailed(HotswapError):
    """A restart that failed at ``stage``; ``details`` carries what was seen so far."""

    def __init__(self, stage, msg, **details):
        super(RestartFailed, self).__init__(msg, **details)
        self.stage = stage


# --------------------------------------------------------------------------- parsing

def parse_systemd_version(text):
    """The major version from ``systemctl --version`` ("systemd 252 (252.30-1~deb12u2)")."""
    match = re.match(r'\s*systemd\s+(\d+)', text or '')
    if not match:
        raise HotswapError('reading the systemd version: `systemctl --version` printed %r, not '
                           '"systemd <number> ...". Check that systemd runs on this host.'
                           % (text or '')[:200])
    return int(match.group(1))


def parse_show(text):
    """``systemctl show -p A -p B`` output as a dict."""
    props = {}
    for line in (text or '').splitlines():
        key, sep, value = line.partition('=')
        if sep:
            props[key.strip()] = value.strip()
    return props


def parse_stat_start_time(stat_text):
    """Field 22 (start time in clock ticks since boot) and the state letter of /proc/<pid>/stat.

    The command name (field 2) may hold spaces and parentheses, so split after the last ')'.
    """
    rest = stat_text[stat_text.rindex(')') + 2:].split()
    return int(rest[19]), rest[0]


def parse_pid(text, source):
    """A PID from a PID file's text; raises HotswapError naming ``source``."""
    value = (text or '').strip()
    if not re.match(r'^[0-9]+$', value) or int(value) < 2:
        raise HotswapError('reading the main PID from %s: %r is not a process id. Check that the app '
                           'writes only its PID there.' % (source, value[:40]))
    return int(value)


def signal_number(name):
    """``SIGHUP``, ``HUP`` or ``1`` -> the signal number; HotswapError for anything else."""
    text = str(name).strip().upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < 65:
            return number
    else:
        if not text.startswith('SIG'):
            text = 'SIG' + text
        try:
            return int(signals.Signals[text])
        except KeyError:
            pass
    raise HotswapError('restarting with signal_reexec: %r is not a signal. Give a name such as SIGHUP '
                       'or SIGUSR2.' % (name,))


def unit_slots(service):
    """The two reuseport instance names of ``service``."""
    return ['%s@%s.service' % (service, slot) for slot in REUSEPORT_SLOTS]


# --------------------------------------------------------------------------- processes

class ProcessRef(object):
    """A PID plus its start time, so a reused PID is not mistaken for the process we saw."""

    def __init__(self, pid, start_time, proc_root='/proc'):
        self.pid = pid
        self.start_time = start_time
        self.proc_root = proc_root

    @classmethod
    def of(cls, pid, proc_root='/proc'):
        """The live process ``pid`` or None (gone, zombie, or pid 0)."""
        if not pid:
            return None
        seen = read_stat(pid, proc_root)
        if seen is None:
            return None
        return cls(pid, seen[0], proc_root)

    def alive(self):
        seen = read_stat(self.pid, self.proc_root)
        return seen is not None and seen[0] == self.start_time

    def executable(self):
        """Where /proc/<pid>/exe points (' (deleted)' kept), or None when it cannot be read."""
        try:
            return os.readlink(os.path.join(self.proc_root, str(self.pid), 'exe'))
        except OSError:
            return None

    def as_dict(self):
        return dict(pid=self.pid, start_time=self.start_time)

    def __eq__(self, other):
        return isinstance(other, ProcessRef) and (self.pid, self.start_time) == (other.pid, other.start_time)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((self.pid, self.start_time))

    def __repr__(self):
        return 'ProcessRef(%d, %d)' % (self.pid, self.start_time)


def read_stat(pid, proc_root='/proc'):
    """(start_time, state) of a live process, None when it is gone or a zombie."""
    try:
        with open(os.path.join(proc_root, str(pid), 'stat')) as handle:
            start, state = parse_stat_start_time(handle.read())
    except (OSError, ValueError, IndexError):
        return None
    if state in ('Z', 'X', 'x'):
        return None
    return start, state


def process_cgroups(pid, proc_root='/proc'):
    """The cgroup paths of a process in systemd's hierarchies (unified and name=systemd)."""
    try:
        with open(os.path.join(proc_root, str(pid), 'cgroup')) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    paths = []
    for line in lines:
        parts = line.split(':', 2)
        if len(parts) == 3 and parts[1] in ('', 'name=systemd'):
            paths.append(parts[2])
    return paths


def in_control_group(pid, control_group, proc_root='/proc'):
    """Whether ``pid`` runs in the unit's control group (or below it).

    In hybrid mode systemd tracks units in the name=systemd hierarchy while the unified one may show
    only the container's root, so either hierarchy may carry the unit's path.
    """
    if not control_group:
        return False
    below = control_group.rstrip('/') + '/'
    return any(path == control_group or path.startswith(below) for path in process_cgroups(pid, proc_root))


def same_file(executable, binary):
    """Whether a /proc/<pid>/exe target is the file ``binary`` resolves to now."""
    if not executable or executable.endswith(' (deleted)'):
        return False
    try:
        return os.path.samefile(executable, binary)
    except OSError:
        return False


def runs_current(proc, executable):
    """Whether ``proc`` runs the release ``executable`` (``<base>/current/<binary>``) names: its binary, or a
    config reload into it (config_reload.py)."""
    from ansible_collections.hotswap.deploy.plugins.module_utils.config_reload import reloaded_into_current
    return same_file(proc.executable(), executable) or reloaded_into_current(executable, proc.pid)


# --------------------------------------------------------------------------- systemd

class Systemd(object):
    """systemctl through ``run_command`` (module.run_command or a test double)."""

    def __init__(self, run_command):
        self._run = run_command

    @property
    def run_command(self):
        """The runner, for a version_command read while verifying."""
        return self._run

    def run(self, *args, **kwargs):
        timeout = kwargs.get('timeout')
        argv = ['systemctl'] + list(args)
        if timeout:
            # run_command has no timeout: coreutils `timeout` ends the client, the job goes on.
            argv = ['timeout', '%ds' % max(1, int(timeout + 0.999))] + argv
        rc, out, err = self._run(argv)
        return rc, out or '', err or ''

    def show(self, unit, *props):
        args = ['show', unit]
        for prop in props:
            args += ['-p', prop]
        rc, out, err = self.run(*args)
        if rc != 0:
            raise HotswapError('reading the state of %s: systemctl show failed (rc %d): %s. Check that '
                               'systemd runs on this host.' % (unit, rc, (err or out).strip()))
        return parse_show(out)

    def version(self):
        rc, out, err = self.run('--version')
        if rc != 0:
            raise HotswapError('reading the systemd version: systemctl --version failed (rc %d): %s. '
                               'Check that systemd runs on this host.' % (rc, (err or out).strip()))
        return parse_systemd_version(out.splitlines()[0] if out else '')


UNIT_PROPS = ('LoadState', 'ActiveState', 'SubState', 'MainPID', 'ControlGroup', 'Type', 'Result')


def unit_state(systemd, unit):
    state = systemd.show(unit, *UNIT_PROPS)
    state['MainPID'] = int(state.get('MainPID') or 0)
    return state


def require_loaded(systemd, unit, strategy, fix):
    state = unit_state(systemd, unit)
    if state.get('LoadState') != 'loaded':
        raise RestartFailed('check', 'restarting with %s: the unit %s does not exist (LoadState=%s). %s'
                            % (strategy, unit, state.get('LoadState') or 'unknown', fix))
    return state


# --------------------------------------------------------------------------- the restart

class Options(object):
    """Validated inputs of one restart."""

    def __init__(self, service, strategy='systemd_socket', url=None, expected_version=None,
                 signal='SIGHUP', pid_file=None, executable=None, ready_timeout=60, drain_timeout=60,
                 health_timeout=3, validate_certs=True, daemon_reload=False, enable=True, version_source=None):
        if strategy not in STRATEGIES:
            raise RestartFailed('check', 'restarting %s: unknown strategy %r. Use one of: %s.'
                                % (service, strategy, ', '.join(STRATEGIES)))
        if not service or not UNIT_NAME_RE.match(service) or service.endswith(('.service', '.socket')) \
                or '@' in service:
            raise RestartFailed('check', 'restarting %r: not a service name. Give the unit name without '
                                '.service and without @ (for example myapp).' % (service,))
        for name, value, default in (('ready_timeout', ready_timeout, 60), ('drain_timeout', drain_timeout, 60),
                                     ('health_timeout', health_timeout, 3)):
            if value is None or float(value) <= 0:
                raise RestartFailed('check', 'restarting %s: %s must be more than 0 seconds, got %r. Give '
                                    'the number of seconds to wait (the default is %d).'
                                    % (service, name, value, default))
        if strategy == 'signal_reexec' and not pid_file:
            raise RestartFailed('check', 'restarting %s with signal_reexec: pid_file is required; it is how '
                                'the new process is found. Give the path the app writes its PID to once '
                                'ready (for example /run/%s/%s.pid).' % (service, service, service))
        self.service = service
        self.strategy = strategy
        self.signal = signal_number(signal) if strategy == 'signal_reexec' else None
        self.signal_name = signal
        self.pid_file = pid_file
        self.executable = executable
        self.ready_timeout = float(ready_timeout)
        self.drain_timeout = float(drain_timeout)
        self.daemon_reload = daemon_reload
        self.enable = enable
        self.expected_version = expected_version
        self.ready_probe = None
        self.version_probe = None
        try:
            if url:
                self.ready_probe = health.build_probe('http', url, validate_certs=validate_certs,
                                                      timeout=health_timeout, version_source=version_source)
                if expected_version:
                    self.version_probe = health.build_probe('http', url, expected_version=expected_version,
                                                            validate_certs=validate_certs,
                                                            timeout=health_timeout, version_source=version_source)
        except HotswapError as exc:
            raise RestartFailed('check', 'restarting %s: %s' % (service, exc.msg))
        if expected_version and not url:
            raise RestartFailed('check', 'restarting %s: expected_version needs url, the readiness URL that '
                                'reports the version. Give url or remove expected_version.' % service)

    @property
    def unit(self):
        return '%s.service' % self.service


def poll_delays(cap=POLL_INTERVAL, first=FIRST_POLL):
    """The pauses of one wait loop: ``first``, doubling up to ``cap``, then ``cap`` for ever."""
    delay = min(first, cap)
    while True:
        yield delay
        delay = min(delay * 2, cap)


class Restart(object):
    """One restart of one service. ``run()`` returns the result dict or raises RestartFailed."""

    def __init__(self, options, systemd, check_mode=False, proc_root='/proc', clock=time.monotonic,
                 sleep=time.sleep, kill=os.kill, read_file=None):
        self.o = options
        self.systemd = systemd
        self.check_mode = check_mode
        self.proc_root = proc_root
        self.clock = clock
        self.sleep = sleep
        self.kill = kill
        self.read_file = read_file or _read_text
        self.timings = {}
        self.result = dict(strategy=options.strategy, service=options.service, stage='check',
                           old_pid=None, new_pid=None, old_version=None, new_version=None,
                           unit=options.unit, transition=False, timings=self.timings)
        self._started = clock()

    # ----------------------------------------------------------------- helpers

    def fail(self, stage, msg):
        self.result['stage'] = stage
        self.result['elapsed'] = round(self.clock() - self._started, 3)
        details = dict((k, v) for k, v in self.result.items() if k != 'stage')
        raise RestartFailed(stage, msg, **details)

    def _mark(self, stage, since):
        self.timings[stage] = round(self.clock() - since, 3)

    def _what(self):
        return 'restarting %s with %s' % (self.o.service, self.o.strategy)

    def current_version(self):
        """The version the service answers with now (None without a probe or an answer)."""
        if not self.o.ready_probe:
            return None
        seen = health.observe(self.o.ready_probe, self.o.ready_probe.timeout, run_command=self.systemd.run_command)
        return seen.get('version')

    def main_process(self, unit):
        state = unit_state(self.systemd, unit)
        return state, ProcessRef.of(state['MainPID'], self.proc_root)

    def is_current(self, proc):
        return bool(self.o.executable) and proc is not None and runs_current(proc, self.o.executable)

    # ----------------------------------------------------------------- entry

    def run(self):
        if self.o.daemon_reload and not self.check_mode:
            rc, out, err = self.systemd.run('daemon-reload')
            if rc != 0:
                self.fail('check', '%s: systemctl daemon-reload failed (rc %d): %s. Fix the unit files '
                                   '(systemd-analyze verify) and retry.' % (self._what(), rc, (err or out).strip()))
        method = getattr(self, 'run_' + self.o.strategy)
        try:
            method()
        except RestartFailed:
            raise
        except HotswapError as exc:
            # systemctl itself failed: report the stage it happened in, not 'check'.
            self.fail(self.result['stage'], exc.msg)
        if self.o.enable:
            self.enable_at_boot()
        self.result['elapsed'] = round(self.clock() - self._started, 3)
        return self.result

    def boot_units(self):
        if self.o.strategy == 'systemd_socket':
            return ['%s.socket' % self.o.service, self.o.unit]
        if self.o.strategy == 'reuseport':
            return [self.result['new_unit']] if self.result.get('new_unit') else []
        return [self.o.unit]

    def enable_at_boot(self):
        """Enable the units that serve now, so a reboot starts them; a change only when one was not."""
        enabled = []
        for unit in self.boot_units():
            rc, out, _err = self.systemd.run('is-enabled', unit)
            if out.strip() in ('enabled', 'static', 'alias', 'indirect', 'generated'):
                continue
            enabled.append(unit)
            if not self.check_mode:
                rc, out, err = self.systemd.run('enable', unit)
                if rc != 0:
                    self.fail('enable', '%s: the restart worked but `systemctl enable %s` failed (rc %d): %s. '
                                        'Check the [Install] section of the unit.'
                              % (self._what(), unit, rc, (err or out).strip()))
        self.result['enabled'] = enabled
        if enabled:
            self.result['changed'] = True

    # ----------------------------------------------------------------- stages shared by strategies

    def wait_new_main_pid(self, unit, old, deadline, why_failed):
        """Wait until ``unit`` is active with a live main PID other than ``old``; return it."""
        state = {}
        delays = poll_delays(POLL_INTERVAL)
        while True:
            state, proc = self.main_process(unit)
            if state.get('ActiveState') == 'active' and proc is not None and proc != old:
                return proc
            # auto-restart: the new process already exited; waiting would only run into the start limit,
            # which for a socket-activated service takes the socket (and its listener) down too.
            if state.get('ActiveState') == 'failed' or state.get('SubState') == 'auto-restart':
                self.fail('ready', '%s: the new process of %s exited (Result=%s) instead of becoming ready. '
                                   'See `journalctl -u %s`. %s'
                          % (self._what(), unit, state.get('Result'), unit, why_failed))
            if self.clock() >= deadline:
                self.fail('ready', '%s: no new ready main process of %s within ready_timeout %gs '
                                   '(ActiveState=%s SubState=%s MainPID=%s). %s'
                          % (self._what(), unit, self.o.ready_timeout, state.get('ActiveState'),
                             state.get('SubState'), state.get('MainPID'), why_failed))
            self.sleep(next(delays))

    def probe_until(self, probe, deadline, stage, why_failed, stop_on_fail=lambda seen: False):
        """Probe until a pass or ``deadline``; a wrong answer ``stop_on_fail`` accepts ends it at once."""
        delays = poll_delays(0.25)
        while True:
            left = deadline - self.clock()
            seen = health.observe(probe, max(min(probe.timeout, left), health.MIN_ATTEMPT_TIMEOUT),
                                  run_command=self.systemd.run_command)
            if seen.outcome == health.PASS:
                return seen
            if (seen.outcome == health.FAIL and stop_on_fail(seen)) or self.clock() >= deadline:
                self.fail(stage, '%s: %s did not pass (%s: %s). %s'
                          % (self._what(), probe.describe(), seen.outcome, seen.reason, why_failed))
            self.sleep(next(delays))

    def verify_ready_and_version(self, started, why_not_ready, why_wrong_version):
        deadline = started + self.o.ready_timeout
        if self.o.ready_probe:
            self.probe_until(self.o.ready_probe, deadline, 'ready', why_not_ready)
        self._mark('ready', started)
        if self.o.version_probe:
            since = self.clock()
            seen = self.probe_until(self.o.version_probe, since + self.o.ready_timeout, 'version',
                                    why_wrong_version, stop_on_fail=self.from_new_process)
            self.result['new_version'] = seen.get('version')
            self._mark('version', since)
        elif self.o.ready_probe:
            self.result['new_version'] = self.current_version()

    def from_new_process(self, seen):
        """Whether an answer surely came from the new process (reuseport: the old slot answers too)."""
        if self.o.strategy != 'reuseport':
            return True
        return seen.get('version') is not None and seen.get('version') != self.result.get('old_version')

    def wait_gone(self, old, why):
        """Wait until the old process has exited (drain)."""
        since = self.clock()
        if old is not None:
            deadline = since + self.o.drain_timeout
            delays = poll_delays(POLL_INTERVAL)
            while old.alive():
                if self.clock() >= deadline:
                    self.fail('drain', '%s: the old process %d still runs %gs after the switch (drain_timeout). %s'
                              % (self._what(), old.pid, self.o.drain_timeout, why))
                self.sleep(next(delays))
        self._mark('drain', since)

    def record_before(self, proc):
        self.result['old_pid'] = proc.pid if proc else None
        self.result['old_start_time'] = proc.start_time if proc else None
        self.result['old_version'] = self.current_version() if proc else None

    def proceed(self, old):
        """False when there is nothing to restart (``old`` already runs the binary) or only to report (check mode)."""
        if old is not None and self.is_current(old):
            self.nothing_to_do(old, 'the main process already runs %s' % self.o.executable)
            return False
        self.result['changed'] = True
        if self.check_mode:
            self.result['stage'] = 'done'
            return False
        return True

    def nothing_to_do(self, proc, why):
        self.result.update(changed=bool(self.result.get('transition')), stage='done', new_pid=proc.pid,
                           no_restart_reason=why)
        self.result['old_pid'] = proc.pid

    def trigger(self, *args):
        since = self.clock()
        self.result['stage'] = 'trigger'
        rc, out, err = self.systemd.run(*args, timeout=self.o.ready_timeout)
        self._mark('trigger', since)
        if rc == 124:
            self.fail('ready', '%s: `systemctl %s` did not finish within ready_timeout %gs. The new process '
                               'never said it was ready; see `journalctl -u %s`.'
                      % (self._what(), ' '.join(args), self.o.ready_timeout, self.o.service))
        if rc != 0:
            # A synchronous start fails when the new process dies: that is readiness, not the trigger.
            ran = self.systemd.show(args[-1], 'ExecMainPID', 'ExecMainStatus', 'Result')
            new_pid = int(ran.get('ExecMainPID') or 0)
            if new_pid and new_pid != (self.result.get('old_pid') or 0):
                self.fail('ready', '%s: the new process %d exited before it was ready (status %s, Result=%s). '
                                   'See `journalctl -u %s`.'
                          % (self._what(), new_pid, ran.get('ExecMainStatus'), ran.get('Result'), self.o.service))
            self.fail('trigger', '%s: `systemctl %s` failed (rc %d): %s. See `systemctl status %s` and '
                                 '`journalctl -u %s`.'
                      % (self._what(), ' '.join(args), rc, (err or out).strip(), self.o.service, self.o.service))
        return since

    # ----------------------------------------------------------------- restart / systemd_socket

    def run_restart(self):
        self._restart_unit(self.o.unit, 'A plain restart does not keep the old process; roll the binary back '
                                        'and restart again.')

    def run_systemd_socket(self):
        socket_unit = '%s.socket' % self.o.service
        fix = ('Install %s.socket (ListenStream= the port) and %s.service (Requires=%s), or let deploy.yml do '
               'it with restart_strategy=systemd_socket.' % (self.o.service, self.o.service, socket_unit))
        require_loaded(self.systemd, socket_unit, 'systemd_socket', fix)
        require_loaded(self.systemd, self.o.unit, 'systemd_socket', fix)
        self.result['unit'] = [socket_unit, self.o.unit]
        sock = unit_state(self.systemd, socket_unit)
        if sock.get('ActiveState') != 'active':
            self._start_socket(socket_unit)
        self._restart_unit(self.o.unit, 'The socket still holds the listener; roll the binary back and restart '
                                        'the service again.')

    def _start_socket(self, socket_unit):
        # The socket must own the port first; a service still bound to it must stop (one gap, once).
        self.result['transition'] = True
        if self.check_mode:
            return
        state, proc = self.main_process(self.o.unit)
        if proc is not None:
            self.record_before(proc)
            self.systemd.run('stop', self.o.unit, timeout=self.o.drain_timeout)
        rc, out, err = self.systemd.run('start', socket_unit, timeout=self.o.ready_timeout)
        if rc != 0:
            self.fail('trigger', '%s: starting %s failed (rc %d): %s. Is the port used by another process? '
                                 'See `systemctl status %s`.'
                      % (self._what(), socket_unit, rc, (err or out).strip(), socket_unit))

    def _restart_unit(self, unit, why_failed):
        state = require_loaded(self.systemd, unit, self.o.strategy,
                               'Install the unit first (deploy.yml does it).')
        old = ProcessRef.of(state['MainPID'], self.proc_root) if state.get('ActiveState') == 'active' else None
        if old is not None and self.result['old_pid'] is None:
            self.record_before(old)
        if not self.proceed(old):
            return None
        # A unit in a crash loop counts toward its start limit; clear it so this restart is not refused.
        self.systemd.run('reset-failed', unit)
        started = self.trigger('restart' if old is not None else 'start', unit)
        new = self.wait_new_main_pid(unit, old, started + self.o.ready_timeout, why_failed)
        self.result['new_pid'] = new.pid
        self.verify_ready_and_version(started, why_failed, why_failed)
        self.wait_gone(old, 'systemd stops the old process before starting the new one; check KillMode=.')
        self.result['stage'] = 'done'
        return None

    # ----------------------------------------------------------------- signal_reexec

    def read_pid_file(self):
        try:
            text = self.read_file(self.o.pid_file)
        except (IOError, OSError) as exc:
            self.fail('check', '%s: cannot read the PID file %s: %s. Start the service first, and check '
                               'that the app writes its PID there (pid_file).'
                      % (self._what(), self.o.pid_file, exc))
        try:
            return parse_pid(text, self.o.pid_file)
        except HotswapError as exc:
            self.fail('check', '%s: %s' % (self._what(), exc.msg))

    def run_signal_reexec(self):
        state = require_loaded(self.systemd, self.o.unit, 'signal_reexec',
                               'Install the unit first (deploy.yml does it with restart_strategy=signal_reexec).')
        if state.get('ActiveState') != 'active':
            # Nothing runs yet: there is nothing to hand over, a plain start is all there is.
            self.result['transition'] = True
            return self._restart_unit(self.o.unit, 'The service did not start.')
        pid = self.read_pid_file()
        old = ProcessRef.of(pid, self.proc_root)
        if old is None:
            self.fail('check', '%s: the PID file %s names process %d, which is not running (a stale PID '
                               'file). Remove it and restart %s once with systemctl, or fix the app so it '
                               'removes its PID file on exit.'
                      % (self._what(), self.o.pid_file, pid, self.o.unit))
        if not in_control_group(pid, state.get('ControlGroup'), self.proc_root):
            self.fail('check', '%s: the PID file %s names process %d, which is not part of %s (its cgroup is '
                               '%s, the unit\'s is %s). Signalling it would hit another program; check '
                               'pid_file.' % (self._what(), self.o.pid_file, pid, self.o.unit,
                                              ', '.join(process_cgroups(pid, self.proc_root)), state.get('ControlGroup')))
        self.record_before(old)
        if not self.proceed(old):
            return None
        since = self.clock()
        self.result['stage'] = 'trigger'
        try:
            self.kill(pid, self.o.signal)
        except OSError as exc:
            self.fail('trigger', '%s: sending signal %s to %d failed: %s. Run the module as the service\'s '
                                 'user or root.' % (self._what(), self.o.signal_name, pid, exc))
        self._mark('trigger', since)
        new = self._wait_pid_file_change(old, since + self.o.ready_timeout)
        self.result['new_pid'] = new.pid
        self.verify_ready_and_version(since, 'The old process keeps serving if the new one never became ready.',
                                      'The old process has handed over; roll the binary back and signal again.')
        self.wait_gone(old, 'The old process should stop accepting and drain once the new one is ready.')
        self._check_systemd_follows(new)
        self.result['stage'] = 'done'
        return None

    def _wait_pid_file_change(self, old, deadline):
        delays = poll_delays(POLL_INTERVAL)
        while True:
            try:
                pid = parse_pid(self.read_file(self.o.pid_file), self.o.pid_file)
            except (IOError, OSError, HotswapError):
                pid = None
            proc = ProcessRef.of(pid, self.proc_root) if pid else None
            if proc is not None and proc != old:
                return proc
            if self.clock() >= deadline:
                serving = 'still runs' if old.alive() else 'has exited'
                self.fail('ready', '%s: the PID file %s still names %d %gs after the signal (ready_timeout): no '
                                   'new process became ready. The old process %s. See `journalctl -u %s`.'
                          % (self._what(), self.o.pid_file, old.pid, self.o.ready_timeout, serving,
                             self.o.service))
            self.sleep(next(delays))

    def _check_systemd_follows(self, new):
        state = unit_state(self.systemd, self.o.unit)
        self.result['systemd_main_pid'] = state['MainPID']
        if state.get('ActiveState') != 'active' or state['MainPID'] != new.pid:
            self.fail('drain', '%s: systemd does not track the new process %d (MainPID=%s, %s). Set '
                               'NotifyAccess=all and have the app send MAINPID=, or use Type=forking with '
                               'PIDFile=.' % (self._what(), new.pid, state['MainPID'], state.get('ActiveState')))

    # ----------------------------------------------------------------- notify_reload

    def run_notify_reload(self):
        have = self.systemd.version()
        self.result['systemd_version'] = have
        if have < NOTIFY_RELOAD_MIN_SYSTEMD:
            self.fail('check', '%s: this host runs systemd %d; Type=notify-reload needs systemd %d or newer. '
                               'Use signal_reexec (the same app, Type=notify with ExecReload=) or '
                               'systemd_socket here.' % (self._what(), have, NOTIFY_RELOAD_MIN_SYSTEMD))
        state = require_loaded(self.systemd, self.o.unit, 'notify_reload',
                               'Install the unit first (deploy.yml does it with restart_strategy=notify_reload).')
        unit_type = self.systemd.show(self.o.unit, 'Type').get('Type')
        if unit_type != 'notify-reload':
            self.fail('check', '%s: %s has Type=%s; systemctl reload only waits for the new process with '
                               'Type=notify-reload. Set it in the unit.' % (self._what(), self.o.unit, unit_type))
        if state.get('ActiveState') != 'active':
            self.result['transition'] = True
            return self._restart_unit(self.o.unit, 'The service did not start.')
        old = ProcessRef.of(state['MainPID'], self.proc_root)
        self.record_before(old)
        if not self.proceed(old):
            return None
        since = self.trigger('reload', self.o.unit)
        state, proc = self.main_process(self.o.unit)
        if proc is None or proc == old:
            self.fail('ready', '%s: systemctl reload finished but the main process is still %s: the new process '
                               'did not become ready and systemd kept the old one, which still serves. See '
                               '`journalctl -u %s`.' % (self._what(), state['MainPID'], self.o.service))
        self.result['new_pid'] = proc.pid
        self.verify_ready_and_version(since, 'The old process may still serve; see journalctl.',
                                      'The old process has handed over; roll the binary back and reload again.')
        self.wait_gone(old, 'The old process should drain and exit once the new one is ready.')
        self.result['stage'] = 'done'
        return None

    # ----------------------------------------------------------------- reuseport

    def run_reuseport(self):
        slots = unit_slots(self.o.service)
        require_loaded(self.systemd, slots[0], 'reuseport',
                       'Install the template unit %s@.service (deploy.yml does it with restart_strategy=reuseport).'
                       % self.o.service)
        self.result['unit'] = slots
        running = []
        for unit in slots:
            state, proc = self.main_process(unit)
            if state.get('ActiveState') == 'active' and proc is not None:
                running.append((unit, proc))
        if len(running) == 2:
            running = self._settle_two_slots(running)
        if running:
            old_unit, old = running[0]
            self.record_before(old)
            if self.is_current(old):
                self.result['old_unit'] = self.result['new_unit'] = old_unit
                return self.nothing_to_do(old, 'the main process already runs %s' % self.o.executable)
        else:
            old_unit, old = None, None
        new_unit = slots[1] if old_unit == slots[0] else slots[0]
        self.result['old_unit'] = old_unit
        self.result['new_unit'] = new_unit
        self.result['changed'] = True
        if self.check_mode:
            self.result['stage'] = 'done'
            return None
        if old is not None:
            self._require_migrate_req()
        since = self.clock()
        self.result['stage'] = 'trigger'
        rc, out, err = self.systemd.run('start', '--no-block', new_unit)
        self._mark('trigger', since)
        if rc != 0:
            self.fail('trigger', '%s: starting %s failed (rc %d): %s. The old instance is untouched.'
                      % (self._what(), new_unit, rc, (err or out).strip()))
        try:
            new = self.wait_new_main_pid(new_unit, None, since + self.o.ready_timeout,
                                         'Stopped it; the old instance was not touched.')
            self.result['new_pid'] = new.pid
            self.verify_ready_and_version(since, 'Stopped it; the old instance was not touched.',
                                          'Stopped it; the old instance was not touched.')
        except RestartFailed:
            self.systemd.run('stop', new_unit, timeout=self.o.drain_timeout)
            self.systemd.run('reset-failed', new_unit)
            raise
        if old_unit:
            # systemd sends SIGTERM: the old instance closes its listener (its queue migrates to the
            # new one, tcp_migrate_req) and drains in-flight requests.
            rc, out, err = self.systemd.run('stop', '--no-block', old_unit)
            if rc != 0:
                self.fail('drain', '%s: stopping the old instance %s failed (rc %d): %s.'
                          % (self._what(), old_unit, rc, (err or out).strip()))
            self.systemd.run('disable', old_unit)
        self.wait_gone(old, 'Check the app drains on SIGTERM and TimeoutStopSec= of %s.' % old_unit)
        self.result['stage'] = 'done'
        return None

    def _settle_two_slots(self, running):
        """Both slots run (an earlier run was cut off): keep the one on the current binary, else the older."""
        keep = [item for item in running if self.is_current(item[1])]
        if len(keep) != 1:
            keep = [min(running, key=lambda item: item[1].start_time)]
        self.result['transition'] = True
        if not self.check_mode:
            for unit, proc in running:
                if (unit, proc) not in keep:
                    self.systemd.run('stop', unit, timeout=self.o.drain_timeout)
                    self.systemd.run('disable', unit)
        return keep

    def _require_migrate_req(self):
        try:
            value = self.read_file(os.path.join(self.proc_root, 'sys/net/ipv4/tcp_migrate_req')).strip()
        except (IOError, OSError):
            value = None
        self.result['tcp_migrate_req'] = value
        if value != '1':
            self.fail('check', '%s: net.ipv4.tcp_migrate_req is %s on this host, so connections queued on the '
                               'old instance\'s socket would be reset when it closes. Set it to 1 (sysctl -w '
                               'net.ipv4.tcp_migrate_req=1, Linux 5.14 or newer; deploy.yml does it for '
                               'restart_strategy=reuseport) and retry.'
                      % (self._what(), value if value is not None else 'missing (Linux older than 5.14)'))


def _read_text(path):
    with open(path) as handle:
        return handle.read()


def restart(options, run_command, check_mode=False, **kwargs):
    """Restart per ``options``; returns the result dict, raises RestartFailed naming the stage."""
    return Restart(options, Systemd(run_command), check_mode=check_mode, **kwargs).run()
