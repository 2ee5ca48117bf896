# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Config reload without a restart, for apps that re-read their config on a signal or a command.

A release that differs from the one the service runs **only** in its release files (same
artifact, same environment, same units) can be applied by switching ``current`` and asking the
running process to reload, then verifying health, version and an optional config probe. The
process keeps running the binary of the previous release (an identical copy), so a marker
``<base_dir>/.hotswap/reloaded.json`` records which process reloaded into which release: the
live checks accept that process as running ``current``.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
import time

from ansible_collections.hotswap.deploy.plugins.module_utils import health
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError, unlink_quietly
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import Ledger
from ansible_collections.hotswap.deploy.plugins.module_utils.release import STATE_DIR, read_current
from ansible_collections.hotswap.deploy.plugins.module_utils.version import build_version_source

MARKER = 'reloaded.json'
SIGNALS = ('SIGHUP', 'SIGUSR1', 'SIGUSR2')


def check_spec(spec):
    """``{'signal': 'SIGHUP'}`` or ``{'command': '...'}``; returns it normalised, or None when empty."""
    if not spec:
        return None
    if not isinstance(spec, dict) or sorted(k for k in spec if spec[k]) not in (['signal'], ['command']):
        raise HotswapError('checking config_reload: give exactly one of signal (%s) or command (a command run on '
                           'the host that makes the app re-read its config), got %r.' % (', '.join(SIGNALS), spec))
    if spec.get('signal'):
        name = str(spec['signal']).upper()
        name = name if name.startswith('SIG') else 'SIG' + name
        if name not in SIGNALS:
            raise HotswapError('checking config_reload: signal %s is not one an app reloads on here. Use one of %s.'
                               % (spec['signal'], ', '.join(SIGNALS)))
        return dict(signal=name)
    return dict(command=str(spec['command']))


def reload_decision(base_dir, previous, release, units_changed=False):
    """(True, why) when going from ``previous`` to ``release`` changes release files only."""
    if units_changed:
        return False, 'the unit files changed'
    if not previous or previous == release:
        return False, 'the service does not run another release of the same binary'
    ledger = Ledger.load(base_dir)
    old, new = ledger.release(previous), ledger.release(release)
    if not old or not new:
        return False, 'the ledger does not record both %s and %s' % (previous, release)
    if (old.get('sha256'), old.get('binary')) != (new.get('sha256'), new.get('binary')):
        return False, 'the binary differs'
    if (old.get('environment') or {}).get('digest') != (new.get('environment') or {}).get('digest'):
        return False, 'the environment differs (environment changes always need a restart)'
    return True, 'only release files differ'


def marker_path(base_dir):
    return os.path.join(base_dir, STATE_DIR, MARKER)


def write_marker(base_dir, pid, release):
    """Record that process ``pid`` reloaded into ``release`` (temp file + rename)."""
    path = marker_path(base_dir)
    fd, tmp = tempfile.mkstemp(prefix='.reloaded.tmp-', dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(dict(pid=pid, release_id=release, at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())), f)
        os.rename(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise


def reloaded_into_current(executable, pid):
    """Whether process ``pid`` reloaded into the release ``executable`` (``<base>/current/<binary>``) names."""
    base_dir = os.path.dirname(os.path.dirname(executable))
    try:
        with open(marker_path(base_dir)) as f:
            marker = json.load(f)
        return marker.get('pid') == pid and marker.get('release_id') == read_current(base_dir)
    except (OSError, ValueError, HotswapError, AttributeError):
        return False


def config_probe(spec, validate_certs=True, timeout=3):
    """A probe whose "version" is the JMESPath ``query`` over ``url``'s JSON, expected to be ``expected``."""
    if not spec:
        return None
    unknown = sorted(set(spec) - {'url', 'query', 'expected', 'timeout'})
    if unknown:
        raise HotswapError('checking config_probe: unknown key(s) %s. It takes url, query, expected and timeout.'
                           % ', '.join(unknown))
    missing = [k for k in ('url', 'query', 'expected') if spec.get(k) in (None, '')]
    if missing:
        raise HotswapError('checking config_probe: it needs url, query (JMESPath over the JSON answer) and '
                           'expected (the value the new config makes it show); %s missing.' % ', '.join(missing))
    return health.build_probe('http', spec['url'], expected_version=str(spec['expected']), validate_certs=validate_certs,
                              timeout=timeout, version_source=build_version_source(version_query=spec['query']))


def trigger(systemd, unit, spec, run_command):
    """Send the reload signal to the main process, or run the reload command."""
    if spec.get('signal'):
        rc, out, err = systemd.run('kill', '--kill-whom=main', '--signal=%s' % spec['signal'], unit)
        what = 'systemctl kill --signal=%s %s' % (spec['signal'], unit)
    else:
        rc, out, err = run_command(shlex.split(spec['command']))
        what = spec['command']
    if rc != 0:
        raise HotswapError('reloading the config of %s: `%s` failed (rc %d): %s. Check the reload command and that the '
                           'service runs.' % (unit, what, rc, (err or out).strip()))


def wait_for(probes, deadline, run_command, sleep=time.sleep, clock=time.monotonic):
    """Poll every probe until all pass; returns None, or the last failing observation's reason."""
    last = None
    while True:
        last = None
        for probe in probes:
            seen = health.observe(probe, probe.timeout, run_command=run_command)
            if seen.outcome != health.PASS:
                last = '%s: %s' % (probe.describe(), seen.reason)
                break
        if last is None or clock() >= deadline:
            return last
        sleep(0.3)


def reload_service(systemd, service, spec, probes, ready_timeout, base_dir, release, run_command, check_mode=False,
                   clock=time.monotonic, sleep=time.sleep):
    """Trigger the reload and wait for every probe; the result dict of graceful_restart. Raises HotswapError."""
    from ansible_collections.hotswap.deploy.plugins.module_utils.restart import unit_state
    unit = '%s.service' % service
    state = unit_state(systemd, unit)
    old_pid = state['MainPID']
    result = dict(strategy='config_reload', service=service, unit=unit, stage='reload', old_pid=old_pid or None,
                  new_pid=None, reloaded=False, changed=True)
    if state.get('ActiveState') != 'active' or not old_pid:
        raise HotswapError('reloading the config of %s: the service is not running (%s), so there is nothing to '
                           'reload. Restart it instead (drop config_reload for this deploy).'
                           % (unit, state.get('ActiveState') or 'unknown'), **result)
    if check_mode:
        return result
    started = clock()
    trigger(systemd, unit, spec, run_command)
    sleep(0.2)
    failing = wait_for(probes, started + ready_timeout, run_command, sleep=sleep, clock=clock)
    result['new_pid'] = unit_state(systemd, unit)['MainPID'] or None
    result['elapsed'] = round(clock() - started, 3)
    if failing:
        raise HotswapError('reloading the config of %s into release %s: after %.0f s the check still fails (%s). The '
                           'app did not take the new config: fix it, or drop config_reload to restart instead.'
                           % (unit, release, ready_timeout, failing), **result)
    write_marker(base_dir, result['new_pid'], release)
    result.update(reloaded=True, same_process=result['new_pid'] == old_pid)
    return result
