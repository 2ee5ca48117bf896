# -*- coding: utf-8 -*-
"""graceful_restart refuses bad input on a real host with a clear message and touches nothing."""

from __future__ import annotations

import json

import pytest

import testlib

UNIT = 'hsbadin'


@pytest.fixture(scope='module')
def running(fleet):
    """A real running service (a transient unit) on the first host; yields (host, main pid)."""
    host = fleet.hosts[0]
    testlib.host_sh(host, 'systemd-run --unit=%s --property=Type=simple sleep 100000' % UNIT)
    pid = testlib.host_sh(host, 'systemctl show -p MainPID --value %s' % UNIT).strip()
    yield host, pid
    testlib.host_sh(host, 'systemctl stop %s; rm -f /tmp/%s.pid' % (UNIT, UNIT), check=False)


def restart(fleet, host, **args):
    r = testlib.adhoc(fleet.inventory, host['name'], 'hotswap.deploy.graceful_restart', args)
    out = r.out
    return r, out


def state(host):
    return testlib.host_sh(host, 'systemctl show -p MainPID -p ActiveState -p NRestarts %s' % UNIT)


@pytest.mark.parametrize('args, words', [
    (dict(strategy='rolling'), ['strategy', 'must be one of', 'systemd_socket']),
    (dict(strategy='signal_reexec'), ['pid_file']),
    (dict(strategy='restart', ready_timeout=0), ['ready_timeout must be more than 0']),
    (dict(strategy='restart', drain_timeout=-5), ['drain_timeout must be more than 0']),
    (dict(strategy='systemd_socket'), ['%s.socket does not exist' % UNIT]),
    (dict(strategy='restart', service='nosuchapp'), ['nosuchapp.service does not exist']),
    (dict(strategy='notify_reload'), ['systemd 252', '253']),
    (dict(strategy='signal_reexec', signal='SIGFOO', pid_file='/tmp/%s.pid' % UNIT), ['not a signal']),
])
def test_bad_input_is_refused_and_nothing_changes(fleet, running, args, words):
    host, pid = running
    before = state(host)
    call = dict(service=UNIT)
    call.update(args)
    r, out = restart(fleet, host, **call)
    assert r.rc != 0, out
    for word in words:
        assert word in out, (word, out)
    assert state(host) == before
    assert 'MainPID=%s' % pid in before


@pytest.mark.parametrize('pid_text, words', [
    ('999999', ['names process 999999, which is not running']),
    ('$(pgrep -o sshd)', ['which is not part of %s.service' % UNIT]),
    ('garbage', ['is not a process id']),
])
def test_pid_file_naming_a_dead_or_foreign_process_is_refused(fleet, running, pid_text, words):
    host, pid = running
    testlib.host_sh(host, 'echo "%s" > /tmp/%s.pid' % (pid_text, UNIT))
    before = state(host)
    r, out = restart(fleet, host, service=UNIT, strategy='signal_reexec', pid_file='/tmp/%s.pid' % UNIT)
    assert r.rc != 0, out
    for word in words:
        assert word in out, (word, out)
    assert '"stage": "check"' in out or "'stage': 'check'" in out or json.dumps('check') in out, out
    assert state(host) == before
    # sshd (another program) was not signalled: the host is still reachable.
    assert testlib.adhoc(fleet.inventory, host['name'], 'ansible.builtin.ping', {'data': 'pong'}).rc == 0
