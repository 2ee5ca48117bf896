# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""What the rollback role decides about a host: its ``rollback__check`` and what stops a rollback there.

One host's check from what its read tasks registered (roles/rollback/tasks/read_linux.yml: ``release_info``
with ``stat``; read_windows.yml: ``win_binary_swap`` with ``operation: query``); what stops host.yml
(no target, a target the host does not have); which hosts plan.yml's check-mode restart found unfit.
Nothing here fails for a problem of the user's: each problem is a sentence in ``problems`` that says what
is wrong and what to do, and the role fails with them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

# adopt_unit keeps the units it replaced here (under <base_dir>): the target of a host whose first
# release adopted them.
ADOPTED_UNITS_RE = re.compile(r'.*/[.]hotswap/adopted/units[.]json$')
BLUE_GREEN_RE = re.compile(r'.*/\.hotswap/blue_green\.json$')
# deploy_host marks the units it installs with /etc/systemd/system/.hotswap-<app>.<strategy>.
MARKER_DIR_RE = re.compile(r'/etc/systemd/system/')


def _text(value):
    """A string variable as Jinja's ``~`` shows it; None (unset) is empty."""
    return '' if value is None else str(value)


def _join(items, sep=', '):
    """Jinja's join: each item as a string."""
    return sep.join(str(i) for i in items)


def _result(registered):
    """A registered result; a skipped or missing one has none of its keys."""
    return registered if isinstance(registered, Mapping) else {}


def _present(releases):
    """Ids of the releases that are on the host (a ledger entry whose directory or copy is gone is not)."""
    return [r.get('release_id') for r in releases if r.get('present')]


def _entry(releases, release_id):
    """The ledger entry of ``release_id``; ``{'present': False}`` when the ledger does not know it."""
    return next((r for r in releases if r.get('release_id') == release_id), {'present': False})


def _found_paths(found):
    """The paths that exist, from release_info's ``stat``, in the order they were looked for."""
    stat = _result(found).get('stat')
    return [_text(p) for p, st in stat.items() if isinstance(st, Mapping) and st.get('exists')] \
        if isinstance(stat, Mapping) else []


def _markers(paths, app):
    """The strategies of the units' markers found, in the order they were looked for."""
    prefix = re.compile(r'^\.hotswap-' + re.escape(_text(app)) + r'\.')
    return [prefix.sub('', os.path.basename(p)) for p in paths if MARKER_DIR_RE.match(p)]


def _strategy(markers, restart_strategy):
    """The strategy given, else the one marker's; empty when there is none or several."""
    if restart_strategy:
        return restart_strategy
    return markers[0] if len(markers) == 1 else ''


def linux_problems(info, blue_green, markers, app, base_dir, restart_strategy):
    """What stops a rollback on a Linux host other than the choice of its target (plan.yml judges that for
    the fleet, host.yml for one host)."""
    releases = info.get('releases') or []
    problems = []
    if blue_green:
        problems.append(blue_green + ' exists: this is a blue-green host; switch it back with the blue_green role'
                        ' (blue_green_action=switch_back), not with rollback')
    if not releases:
        problems.append('nothing of %s is deployed under %s (no releases): check app and base_dir' % (app, base_dir))
    if info.get('current') is None and info.get('problems'):
        problems.append(_join(info['problems'], ' '))
    if not markers and not restart_strategy and releases:
        problems.append('no restart strategy marker /etc/systemd/system/.hotswap-%s.<strategy> (units not installed by'
                        ' hotswap.deploy?): pass restart_strategy (rollback_restart_strategy)' % app)
    if len(markers) > 1 and not restart_strategy:
        problems.append('several restart strategy markers (%s) in /etc/systemd/system: redeploy to settle the units,'
                        ' or pass restart_strategy' % _join(markers))
    if restart_strategy and len(markers) == 1 and markers[0] != restart_strategy:
        problems.append('restart_strategy %s was given, but the units are installed for %s and a rollback does not'
                        ' change units: pass %s or leave restart_strategy out' % (restart_strategy, markers[0],
                                                                                  markers[0]))
    return problems


def rollback_linux_check(found, release_info_result, host, app, base_dir, release_id, restart_strategy,
                         adopted_units):
    """``rollback__check`` of a Linux host from what read_linux.yml registered.

    ``found``: which of the restart strategy markers in /etc/systemd/system and of ``<base_dir>/.hotswap``'s
    blue_green.json and adopted/units.json exist - release_info's ``stat`` of them;
    ``release_info_result``: release_info of ``base_dir`` (read_linux.yml registers both in one run). The target
    is ``release_id`` when given, else the previous good release, else the units adopted before the first
    release (``adopted_units``) when adopt_unit kept them, else None.
    """
    info = _result(release_info_result)
    paths = _found_paths(found)
    release_id, restart_strategy = _text(release_id), _text(restart_strategy)
    releases = info.get('releases') or []
    previous_good = info.get('previous_good')
    if release_id:
        target = release_id
    elif previous_good:
        target = previous_good
    elif any(ADOPTED_UNITS_RE.match(p) for p in paths):
        target = adopted_units
    else:
        target = None
    markers = _markers(paths, app)
    blue_green = next((p for p in paths if BLUE_GREEN_RE.match(p)), None)
    problems = linux_problems(info, blue_green, markers, app, base_dir, restart_strategy)
    return dict(
        host=host,
        platform='linux',
        current=info.get('current'),
        previous_good=previous_good,
        target=target,
        present=_present(releases),
        releases=releases,
        markers=markers,
        blue_green=blue_green,
        strategy=_strategy(markers, restart_strategy),
        target_entry=_entry(releases, target),
        problems=problems,
        problem_text='; '.join(problems),
    )


def windows_problems(info, app, win_path, release_id):
    """What stops a rollback on a Windows host other than the choice of its target: the query's own problems,
    no releases, the lock held by another run, a live exe the ledger does not know."""
    releases = info.get('releases') or []
    ledger_path = info.get('ledger_path', '')
    lock = info.get('lock')
    problems = list(info.get('problems') or [])
    if not releases:
        problems.append('nothing of %s is deployed at %s (no releases in %s): check app, win_path and win_service'
                        % (app, win_path, ledger_path))
    if lock:
        lock = lock if isinstance(lock, Mapping) else {}
        problems.append('another deploy holds the lock beside %s (%s since %s): let it finish, then run the rollback'
                        ' again' % (ledger_path, lock.get('owner') or 'unknown owner', lock.get('acquired_at') or '?'))
    live_sha256 = info.get('live_sha256')
    if info.get('current') is None and live_sha256 and not release_id and releases:
        problems.append('the live exe %s (sha256 %s...) is not a release in the ledger (replaced by hand?): name the'
                        ' release to go back to (rollback_release_id)' % (win_path, _text(live_sha256)[:12]))
    return problems


def rollback_windows_check(query_result, host, app, win_path, release_id):
    """``rollback__check`` of a Windows host from win_binary_swap's query (read_windows.yml), in the shape of
    a Linux host's: no markers, no blue-green state, no strategy; and the lock the query found.

    The target is ``release_id`` when given, else the previous good release (None when there is none).
    """
    info = _result(query_result)
    release_id = _text(release_id)
    releases = info.get('releases') or []
    target = release_id if release_id else info.get('previous_good')
    problems = windows_problems(info, app, win_path, release_id)
    return dict(
        host=host,
        platform='windows',
        current=info.get('current'),
        previous_good=info.get('previous_good'),
        target=target,
        present=_present(releases),
        releases=releases,
        markers=[],
        blue_green=None,
        strategy='',
        lock=info.get('lock'),
        target_entry=_entry(releases, target),
        problems=problems,
        problem_text='; '.join(problems),
    )


def rollback_target_problems(check, where, adopted_units):
    """What stops host.yml on one host besides ``check['problems']``: no target (no previous good release and
    none named), or a named target the host does not have. ``where`` names what to check (rollback__where)."""
    check = _result(check)
    target = check.get('target')
    present = check.get('present') or []
    if not target:
        return ['no previous good release in the ledger (current %s, releases %s): check %s, or name a release'
                ' (rollback_release_id)' % (check.get('current') or 'none', _join(present) if present else 'none',
                                            where)]
    if target != adopted_units and not _result(check.get('target_entry')).get('present', False):
        return ['release %s is not on this host (it has %s): pick a release it has, or deploy that version again'
                % (target, _join(present) if present else 'no releases')]
    return []


def _hostvar(hostvars, host, name):
    """``hostvars[host][name]``; None when the host or the variable is not there."""
    if host not in hostvars:
        return None
    try:
        return hostvars[host].get(name)
    except (KeyError, AttributeError):
        return None


def rollback_restart_refused(hosts, hostvars):
    """The hosts of ``hosts`` whose check-mode restart (plan.yml's ``rollback__preflight``) would be refused:
    first those where graceful_restart ran but reported no stage (it failed before its checks), then those
    whose stage is not ``done``. A host that did not run it (Windows, skipped) is not one of them."""
    results = [(h, _hostvar(hostvars, h, 'rollback__preflight')) for h in hosts]
    ran = [(h, r) for h, r in results if isinstance(r, Mapping)]
    no_stage = [h for h, r in ran if 'skipped' not in r and 'stage' not in r]
    not_done = [h for h, r in ran if 'stage' in r and r['stage'] != 'done']
    return no_stage + not_done


def rollback_check_from_deploy(deploy_result, host, restart_strategy):
    """``rollback__check`` of a Linux host whose deploy just ran (the canary's switch back of a failed batch):
    the deploy read the ledger and the strategy under the lock a moment ago, so the switch back needs no
    second read of the host. The target is the release the deploy replaced."""
    result = deploy_result if isinstance(deploy_result, Mapping) else {}
    previous, current = _text(result.get('previous_release')), _text(result.get('release'))
    releases = [dict(release_id=previous, version=result.get('previous_version'), present=True)]
    if current:
        releases.append(dict(release_id=current, version=result.get('version'), present=True))
    return dict(host=host, platform='linux', current=current or None, previous_good=previous, target=previous,
                present=_present(releases), releases=releases, markers=[], blue_green=None,
                strategy=_text(restart_strategy), target_entry=releases[0], problems=[], problem_text='')


class FilterModule(object):
    def filters(self):
        return {
            'rollback_linux_check': rollback_linux_check,
            'rollback_windows_check': rollback_windows_check,
            'rollback_target_problems': rollback_target_problems,
            'rollback_restart_refused': rollback_restart_refused,
            'rollback_check_from_deploy': rollback_check_from_deploy,
        }
