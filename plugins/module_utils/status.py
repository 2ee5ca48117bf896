# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Is a release live on this host, exactly as a deploy would leave it? (release_status)

One read-only module run answers what a re-run of the same deploy would otherwise learn from
eight: ``current`` and the binary, the ledger, the unit files, the process systemd runs, the
units enabled at boot, nothing to prune, and a passing health probe. The first check that
fails names what a deploy would change; then the deploy runs as usual.
"""

from __future__ import annotations

import os

from ansible_collections.hotswap.deploy.plugins.module_utils import health
from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import already_staged, parse_checksum
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import Ledger, prune
from ansible_collections.hotswap.deploy.plugins.module_utils.lock import describe_holder, read_lock
from ansible_collections.hotswap.deploy.plugins.module_utils.release import (
    check_release_tree,
    read_current,
    validate_release_id,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.release_content import file_differences, owner_names
from ansible_collections.hotswap.deploy.plugins.module_utils.restart import (
    ProcessRef,
    Systemd,
    runs_current,
    unit_slots,
    unit_state,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.units import UNIT_DIR, plan, wanted_files
from ansible_collections.hotswap.deploy.plugins.module_utils.version import (
    VERSION_OPTIONS, build_version_source, version_params,
)

ENABLED_STATES = ('enabled', 'static', 'alias', 'indirect', 'generated')


class NotLive(Exception):
    """What a deploy would change; ends the checks."""


def check_release(base_dir, rid, binary, sha, content=None):
    # A linked release dir is never live: the deploy that follows refuses it and says why.
    p = check_release_tree(base_dir, rid, 'checking release %s' % rid)
    if not os.path.isdir(p.base_dir):
        raise NotLive('nothing is deployed under %s' % p.base_dir)
    holder = read_lock(p.base_dir)
    if holder is not None:
        raise NotLive('the deploy lock is held by %s' % describe_holder(holder))
    current = read_current(p.base_dir)
    if current != rid:
        raise NotLive('current is %s, not %s' % (current or 'missing', rid))
    ledger = Ledger.load(p.base_dir)
    binary_sha = (ledger.release(rid) or {}).get('binary_sha256') or sha
    if not already_staged(os.path.join(p.release_dir, binary), binary_sha):
        raise NotLive('%s is missing from release %s' % (binary, rid))
    problems = file_differences(p.release_dir, content or {}, owner_names)
    if problems:
        raise NotLive('release %s differs from what it should hold: %s' % (rid, '; '.join(problems)))
    if ledger.needs_activation_record(rid):
        raise NotLive('the ledger does not record %s as the active release' % rid)
    return os.path.join(p.current, binary)


def check_units(app, strategy, service_unit, socket_unit, unit_dir):
    todo = plan(unit_dir, app, wanted_files(app, strategy, service_unit, socket_unit))
    if todo['changed']:
        raise NotLive('the units differ from the rendered ones (to write: %s; to remove: %s)'
                      % (', '.join(todo['write']) or 'none', ', '.join(todo['remove']) or 'none'))


def serving_unit(systemd, app, strategy, executable, proc_root):
    """The unit whose main process runs ``executable``; NotLive when none does."""
    candidates = unit_slots(app) if strategy == 'reuseport' else ['%s.service' % app]
    for unit in candidates:
        state = unit_state(systemd, unit)
        proc = ProcessRef.of(state['MainPID'], proc_root)
        if state.get('ActiveState') == 'active' and proc is not None and runs_current(proc, executable):
            return unit
    raise NotLive('no running main process of %s runs %s' % (' or '.join(candidates), executable))


def check_boot(systemd, app, strategy, unit):
    units = ['%s.socket' % app, unit] if strategy == 'systemd_socket' else [unit]
    if strategy == 'systemd_socket' and unit_state(systemd, units[0]).get('ActiveState') != 'active':
        raise NotLive('%s is not active' % units[0])
    for name in units:
        _rc, out, _err = systemd.run('is-enabled', name)
        if out.strip() not in ENABLED_STATES:
            raise NotLive('%s is not enabled at boot (%s)' % (name, out.strip() or 'unknown'))


def check_prune(base_dir, keep):
    if keep is not None and prune(base_dir, keep, check_mode=True)['changed']:
        raise NotLive('old releases are due for pruning (keep %d)' % keep)


def check_health(url, expected_version, timeout, validate_certs, version_source=None, run_command=None):
    if not url:
        return
    probe = health.build_probe('http', url, expected_version=expected_version or None,
                               validate_certs=validate_certs, timeout=timeout, version_source=version_source)
    seen = health.observe(probe, timeout, run_command=run_command)
    if seen.outcome != health.PASS:
        raise NotLive('%s did not pass (%s: %s)' % (probe.describe(), seen.outcome, seen.reason))


def release_status(base_dir, release_id, binary, checksum, app, strategy, service_unit, socket_unit=None,
                   url=None, expected_version=None, keep=None, health_timeout=3, validate_certs=True,
                   run_command=None, unit_dir=UNIT_DIR, proc_root='/proc', version=None, content=None):
    """dict(live, reason): live when a deploy of ``release_id`` would change nothing.

    Bad input (release id, checksum, strategy, units, URL) raises HotswapError; what a deploy
    would change is the ``reason`` of a False ``live``. Never changes anything.
    """
    sha = parse_checksum(checksum)   # first: the release id is derived from it
    rid = validate_release_id(release_id)
    wanted_files(app, strategy, service_unit, socket_unit)   # bad input fails before any check
    if url:
        health.validate_url(url)
    version_source = build_version_source(**(version or {}))
    systemd = Systemd(run_command)
    try:
        executable = check_release(base_dir, rid, binary, sha, content)
        check_units(app, strategy, service_unit, socket_unit, unit_dir)
        unit = serving_unit(systemd, app, strategy, executable, proc_root)
        check_boot(systemd, app, strategy, unit)
        check_prune(base_dir, keep)
        check_health(url, expected_version, health_timeout, validate_certs, version_source, run_command)
    except NotLive as e:
        return dict(live=False, reason=str(e))
    except HotswapError as e:
        # e.g. current is a real directory or the staged binary has another digest: the deploy says how to fix it.
        return dict(live=False, reason=e.msg)
    return dict(live=True, reason='%s is live: current, binary, units, %s and health as a deploy leaves them'
                                  % (rid, unit))


LIVE_CHECK_KEYS = ('release_id', 'binary', 'checksum', 'app', 'strategy', 'service_unit', 'socket_unit', 'url',
                   'expected_version', 'keep', 'timeout', 'validate_certs', 'content') + VERSION_OPTIONS
LIVE_CHECK_REQUIRED = ('release_id', 'binary', 'checksum', 'app', 'strategy', 'service_unit')


def live_check(base_dir, spec, run_command=None, **kwargs):
    """release_status from a dict of its options (deploy_lock's unless_live); empty values count as not given."""
    if not isinstance(spec, dict):
        raise HotswapError('unless_live must be a dict of release_status options, not %r.' % (spec,))
    unknown = sorted(set(spec) - set(LIVE_CHECK_KEYS))
    missing = [k for k in LIVE_CHECK_REQUIRED if spec.get(k) in (None, '')]
    if unknown or missing:
        raise HotswapError('unless_live: %s. It takes the options of hotswap.deploy.release_status (%s), of which %s '
                           'are required.' % ('; '.join(filter(None, [
                               'unknown keys %s' % ', '.join(unknown) if unknown else '',
                               'missing %s' % ', '.join(missing) if missing else ''])),
                               ', '.join(LIVE_CHECK_KEYS), ', '.join(LIVE_CHECK_REQUIRED)))
    given = dict((k, v) for k, v in spec.items() if v not in (None, ''))
    number = dict((k, given[k]) for k in ('keep', 'timeout') if k in given)
    try:
        if 'keep' in number:
            number['keep'] = int(number['keep'])
        if 'timeout' in number:
            number['timeout'] = float(number['timeout'])
    except (TypeError, ValueError):
        raise HotswapError('unless_live: keep must be a whole number and timeout a number of seconds, got keep=%r '
                           'timeout=%r.' % (given.get('keep'), given.get('timeout')))
    return release_status(base_dir, given['release_id'], given['binary'], given['checksum'], given['app'],
                          given['strategy'], given['service_unit'], given.get('socket_unit'), url=given.get('url'),
                          expected_version=given.get('expected_version'), keep=number.get('keep'),
                          health_timeout=number.get('timeout', 3), validate_certs=given.get('validate_certs', True),
                          run_command=run_command, version=version_params(given), content=given.get('content'),
                          **kwargs)
