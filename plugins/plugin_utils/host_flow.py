# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The decisions of one Linux host's deploy (action hotswap.deploy.host_deploy), without any I/O.

The action runs the remote steps; everything it decides - the arguments of each module run, which
steps run, whether and how the host is switched back, the per-host result and the failure summary -
is a function here, unit-tested without hosts (tests/unit/plugins/plugin_utils/test_host_flow.py).
"""

from __future__ import annotations

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

HOOK_NAMES = ('before_upload', 'after_upload', 'before_activate', 'after_activate', 'after_verify')

# The stage names a failure reports (and the canary's summary quotes); they were the task names of the
# YAML flow this replaces, so messages and the documents that quote them stay as they were.
STAGE_ARTIFACT = 'Check the artifact source'
STAGE_HOOKS = 'Check the hooks'
STAGE_PLAN = 'Compute the release id'
STAGE_LOCK = 'Take the deploy lock unless the release is live already'
STAGE_CURRENT = 'Refuse a current that is not a symlink'
STAGE_USER_CHECK = 'Refuse a service user that does not exist'
STAGE_USER_FIRST = 'Create the service user before the release files that name it'
STAGE_UPLOAD = 'Upload the release'
STAGE_USER = 'Create the service user and its state directories'
STAGE_UNITS = 'Install the systemd units of the restart strategy'
STAGE_ACTIVATE = 'Activate the release'
STAGE_RESTART = 'Restart the service on the new release'
STAGE_VERIFY = 'Verify the release the service already ran'
STAGE_UNLOCK = 'Release the deploy lock'

# The phases a hooked deploy runs one by one, a hook between two (roles/deploy_host/tasks/linux_phases.yml);
# 'all' runs them in one go, 'abort' switches back after a failed hook.
PHASES = ('begin', 'upload', 'install', 'activate', 'verify', 'finish')
PHASE_CHOICES = PHASES + ('all', 'abort')
# After 'begin', 'all' runs install and activate as one module run (release_cutover): nothing runs between them.
# Outside check mode that run also moves the pushed copy into its release (one_run_steps).
ALL_PHASES = ('upload', 'install_and_activate', 'verify', 'finish')


class StepFailed(Exception):
    """A step of the deploy failed: ``stage`` names it, ``reason`` says why."""

    def __init__(self, stage, reason, result=None):
        super(StepFailed, self).__init__(reason)
        self.stage = stage
        self.reason = reason
        self.result = result or {}


def failure_of(stage, result):
    """``{'stage', 'reason'}`` of a failed module result; a module's own stage is added in brackets."""
    if result.get('stage'):
        stage = '%s (stage %s)' % (stage, result['stage'])
    reason = result.get('msg') or result.get('reason') or 'no message'
    return {'stage': stage, 'reason': str(reason)}


def check_inputs(s):
    """Refuse an artifact source or hook keys that cannot work, before anything is asked of the host."""
    if bool(s['artifact']) == bool(s['artifact_url']):
        raise StepFailed(STAGE_ARTIFACT, 'Deploying %s: give exactly one of artifact (a file on the controller) or '
                         "artifact_url (the hosts download it); got artifact='%s' artifact_url='%s'."
                         % (s['app'], s['artifact'], s['artifact_url']))
    unknown = sorted(set(s['hooks']) - set(HOOK_NAMES))
    if unknown:
        raise StepFailed(STAGE_HOOKS, 'Deploying %s: deploy_host_hooks takes only the keys %s; got %s.'
                         % (s['app'], ', '.join(HOOK_NAMES), sorted(s['hooks'])))


def _version_args(service):
    return dict((k, service[k]) for k in ('version_query', 'version_regex', 'version_header', 'version_command'))


def expected_version(s):
    return s['version'] if s['service']['check_version'] else None


def _without_none(args):
    return dict((k, v) for k, v in args.items() if v is not None)


def lock_args(s, st):
    """deploy_lock: take the lock unless the release is live as a deploy leaves it (not with hooks: their
    effect cannot be checked)."""
    args = dict(base_dir=s['base_dir'], owner=st['owner'], reclaim_key=st['reclaim_key'],
                stale_after=s['lock_stale_after'], service_user=s['service']['service_user'],
                release_id=st['release_id'])
    if not s['hooks']:
        live = dict(release_id=st['release_id'], binary=s['binary'], checksum=s['checksum'], app=s['app'],
                    strategy=s['restart_strategy'], service_unit=s['service_unit'], socket_unit=s['socket_unit'],
                    url=s['service']['health_url'], expected_version=expected_version(s) or '',
                    keep=s['keep'], timeout=s['health_timeout'], content=st['content'])
        live.update(_version_args(s['service']))
        args['unless_live'] = live
    return args


def upload_args(s, st):
    args = dict(src=s['artifact'] or None, url=s['artifact_url'] or None, url_headers=s['artifact_headers'],
                url_username=s['artifact_username'] or None, url_password=s['artifact_password'] or None,
                format=s['artifact_format'], strip_components=s['artifact_strip_components'],
                max_size=s['artifact_max_size'], checksum=s['checksum'], base_dir=s['base_dir'],
                release_id=st['release_id'], name=s['binary'], version=s['version'], files=s['release_files'],
                environment=s['service']['environment'], environment_secret=s['environment_secret'],
                lock_owner=st['owner'])
    return _without_none(args)


def known_probe(st):
    """What binary_upload's probe would answer, from the lock run: a release directory that does not exist yet
    is not staged, and the host's platform is known. None (probe as usual) when the directory exists."""
    if st.get('release_present') is False and st.get('host_platform'):
        return dict(failed=True, reason='not_staged', staged=False, host_platform=st['host_platform'],
                    msg='release %s is not staged' % st['release_id'])
    return None


def user_is_ready(s, user):
    """Whether the service user exists as ansible.builtin.user would leave it (then that run would change nothing)."""
    svc = s['service']
    return bool(user and user.get('exists') and user.get('group') == svc['service_group']
                and user.get('home') == '/nonexistent' and user.get('shell') == '/usr/sbin/nologin')


def user_args(s):
    svc = s['service']
    args = dict(name=svc['service_user'], system=True, create_home=False, home='/nonexistent',
                shell='/usr/sbin/nologin')
    if svc['service_group'] != svc['service_user']:
        args['group'] = svc['service_group']
    return args


def state_dir_args(s, path):
    svc = s['service']
    return dict(path=path, state='directory', owner=svc['service_user'], group=svc['service_group'], mode='0750')


def user_first(st):
    """Release files that name an owner or group need the service user before they are staged."""
    return any(f.get('owner') or f.get('group') for f in st['content']['files'] or [])


def missing_user_msg(s, host):
    return ("Deploying %s on %s: the service user '%s' does not exist and create_user is false, so the unit could "
            'not start. Create the user first, or set create_user: true (a system user is then created), or name '
            'an existing user in service_user. Nothing was changed.' % (s['app'], host, s['service']['service_user']))


def units_args(s):
    args = dict(app=s['app'], strategy=s['restart_strategy'], service_unit=s['service_unit'],
                adopt=s['service']['adopt_unit'], base_dir=s['base_dir'])
    if s['restart_strategy'] == 'systemd_socket':
        args['socket_unit'] = s['socket_unit']
    return args


def activate_args(s, st):
    return dict(base_dir=s['base_dir'], release_id=st['release_id'], activated_by=st['owner'],
                lock_owner=st['owner'], keep=s['keep'])


CUTOVER_STAGES = (('upload', STAGE_UPLOAD), ('units', STAGE_UNITS), ('activate', STAGE_ACTIVATE),
                  ('restart', STAGE_RESTART))


def cutover_args(s, st, units, switch):
    """release_cutover: the units (``units``), then the switch and the restart (``switch``)."""
    args = {}
    if units:
        args['units'] = units_args(s)
    if switch:
        args.update(activate=activate_args(s, st), restart=restart_args(s, st))
    return args


def one_run_steps(args, deferred_upload):
    """release_cutover's arguments ``args`` with what a deploy without hooks also runs in that module run: the
    pushed copy moved into its release first (``deferred_upload``: binary_upload's arguments, None when nothing
    was pushed). The lock is released in a run of its own, so a controller killed during this one leaves it held."""
    return dict(args, upload=deferred_upload) if deferred_upload else args


def cutover_stage(args):
    """The progress line of a release_cutover run: the stages it runs, in order."""
    return ', then '.join(stage for step, stage in CUTOVER_STAGES if step in args)


def cutover_failed_stage(result):
    """The stage a failed release_cutover names: its failed step's (all of them when it failed before one ran)."""
    stages = dict(CUTOVER_STAGES)
    return stages.get(result.get('failed_step')) or cutover_stage(stages)


RESTART_KEYS = ('new_pid', 'no_restart_reason', 'reloaded', 'service')


def cutover_facts(st, result):
    """What the host's state ``st`` learns from a release_cutover run (failed or not): whether units changed or
    were adopted, whether current switched, what the restart did and when."""
    facts = {}
    if 'upload' in result and not result.get('failed_step') == 'upload':
        facts['upload_changed'] = bool(result['upload'].get('changed'))
    if 'units' in result:
        facts.update(units_changed=bool(result['units'].get('units_changed')),
                     adopted=result['units'].get('adopted') or [])
    if 'activate' in result:
        facts['switched'] = bool(result['activate'].get('switched'))
    restart = result.get('restart')
    if restart is not None:
        failed = result.get('failed_step') == 'restart'
        facts['restart_event'] = restart_event(result.get('restart_started'), result.get('restart_ended'), restart,
                                               failed=failed)
        if not failed:
            facts['restart'] = dict((k, restart.get(k)) for k in RESTART_KEYS)
    return facts


def _restart_base(s, strategy):
    """graceful_restart's arguments every restart shares, from either action's settings."""
    args = dict(service=s['app'], strategy=strategy, signal=s['restart_signal'], url=s['service']['health_url'],
                health_timeout=s['health_timeout'], ready_timeout=s['ready_timeout'], drain_timeout=s['drain_timeout'])
    if strategy == 'signal_reexec':
        args['pid_file'] = s['pid_file']
    args.update(_version_args(s['service']))
    return args


def _restart_common(s):
    args = _restart_base(s, s['restart_strategy'])
    args.update(config_reload=s['config_reload'] or None, base_dir=s['base_dir'])
    return args


def current_executable(s):
    return '%s/current/%s' % (s['base_dir'], s['binary'])


def restart_args(s, st):
    """graceful_restart onto the new release. Unchanged units: restart only when the service does not run the
    binary of current yet (each release has its own copy, so a config-only release restarts too). Units
    installed in the same release_cutover run are not known yet: that module reloads and restarts when they
    changed."""
    units_changed = st.get('units_changed', False)
    args = _restart_common(s)
    args.update(expected_version=expected_version(s), daemon_reload=units_changed,
                executable=None if units_changed else current_executable(s),
                config_probe=s['config_probe'] or None, release_id=st['release_id'],
                previous_release=st['previous'] or None)
    return _without_none(args)


def health_args(s, expected, fail_on=None, successes=True):
    """health_check's arguments, from either action's settings; ``successes=False`` leaves the module's default."""
    args = dict(url=s['service']['health_url'], expected_version=expected, retries=s['health_retries'],
                interval=s['health_interval'], successes=s['health_successes'] if successes else None,
                timeout=s['health_timeout'], fail_on=fail_on)
    args.update(_version_args(s['service']))
    return _without_none(args)


def needs_verify(st, check_mode):
    """graceful_restart verified a process it started; only a service it left alone is probed again."""
    return not check_mode and st.get('restart') is not None and st['restart'].get('no_restart_reason') is not None


def verdict(st, check_mode):
    if st.get('health_outcome'):
        return st['health_outcome']
    if (st.get('restart') or {}).get('new_pid') and not check_mode:
        return 'pass'
    return 'skipped'


def hook_context(s, st, host):
    """``hotswap_hook``: the one dict every hook reads, whichever role runs it (docs/hooks.md); the blue-green
    role fills the same keys and its slot keys."""
    return dict(rollout='canary' if s['batch'] else 'deploy_host', action='deploy', host=host, app=s['app'],
                base_dir=s['base_dir'], release=st['release_id'], version=s['version'],
                release_dir='%s/releases/%s' % (s['base_dir'], st['release_id']),
                previous_release=st['previous'], batch=s['batch'], target_slot=None, target_port=None,
                target_url=None, public_url=None, live_slot=None, live_release=st['previous'])


def hook_facts(s, st, host):
    """What a hook reads of the release being deployed: ``hotswap_hook``, and the older deploy_host_release_*."""
    return dict(hotswap_hook=hook_context(s, st, host), deploy_host_release_id=st['release_id'],
                deploy_host_release_dir='%s/releases/%s' % (s['base_dir'], st['release_id']),
                deploy_host_previous_release=st['previous'])


def base_result(s, st, host, seconds):
    return dict(host=host, app=s['app'], previous_release=st['previous'], release=st['release_id'],
                version=s['version'], previous_version=release_version(st.get('releases'), st['previous']),
                seconds=round(seconds, 1))


def live_result(s, st, host, seconds):
    result = base_result(s, st, host, seconds)
    # release_status probed health and version just now.
    result.update(previous_release=st['release_id'], changed=False, live=True, verdict='pass')
    return result


def done_result(s, st, host, seconds, check_mode):
    result = base_result(s, st, host, seconds)
    result.update(changed=bool(st.get('switched')), verdict=verdict(st, check_mode))
    return result


# -- switch back ------------------------------------------------------------------------------------

def switch_back_plan(st):
    """What undoing a failed deploy takes: ``revert`` (current back to the previous release) and/or
    ``unadopt`` (a first release over a unit it adopted: that unit comes back)."""
    return dict(revert=bool(st.get('switched') and st.get('previous')), unadopt=bool(st.get('adopted')))


def revert_activate_args(s, st):
    return dict(base_dir=s['base_dir'], release_id=st['previous'], previous_state='failed',
                activated_by='%s (automatic rollback)' % st['owner'], lock_owner=st['owner'])


def unadopt_args(s):
    return dict(app=s['app'], state='adopted_restored', base_dir=s['base_dir'])


def unadopt_restart_args(s):
    return dict(service=s['app'], strategy='restart', daemon_reload=True, url=s['service']['health_url'],
                health_timeout=s['health_timeout'], ready_timeout=s['ready_timeout'],
                drain_timeout=s['drain_timeout'])


def revert_restart_args(s, st):
    """Gracefully again; with executable set, a strategy that kept the old process serving restarts nothing.
    A config reload that failed is undone the same way: the old files, reloaded again."""
    args = _restart_common(s)
    args.update(executable=current_executable(s), release_id=st['previous'], previous_release=st['release_id'])
    return _without_none(args)


def release_version(releases, release_id):
    """The version the ledger entries ``releases`` record for ``release_id`` (None when unknown)."""
    for entry in releases or []:
        if entry.get('release_id') == release_id:
            return entry.get('version') or None
    return None


def previous_version(s, st):
    return release_version(st.get('releases'), st['previous']) if s['service']['check_version'] else None


def _reason(failure):
    """The failure's reason as a sentence part: no surrounding space, no final full stop."""
    reason = failure['reason'].strip()
    return reason[:-1] if reason.endswith('.') else reason


RESTART_EVENT_KEYS = ('stage', 'strategy', 'timings', 'elapsed', 'transition', 'old_pid', 'new_pid', 'old_version',
                      'new_version', 'msg')


def restart_event(start, end, restart, failed=False):
    """The restart's wall-clock start and end and its module's own timings (the zero-downtime bench places
    each host's restart on the load probe's timeline with it)."""
    event = dict(start=start, end=end, failed=failed)
    event.update((k, (restart or {}).get(k)) for k in RESTART_EVENT_KEYS if k in (restart or {}))
    return event


def serves_after_failure(st, back):
    """Whether a host whose deploy failed serves a verified release again (a load balancer may send it
    requests): current never switched (its old release runs on), or switched back and verified there, or
    its adopted unit back and restarted. A first deploy that failed after the switch serves nothing."""
    if back.get('reverted'):
        return back.get('health') == 'pass'
    if back.get('unadopted'):
        return not (back.get('restart') or {}).get('failed')
    return bool(st.get('previous')) and not st.get('switched') and not back.get('revert_error')


def failed_result(s, st, host, failure, back):
    result = dict(host=host, app=s['app'], previous_release=st.get('previous'), release=st['release_id'],
                  version=s['version'], changed=bool(back.get('reverted') or back.get('unadopted')),
                  verdict="failed at '%s'" % failure['stage'],
                  rolled_back_to=st.get('previous') if back.get('reverted') else None,
                  rollback_health=back.get('health') or 'not run',
                  serving=serves_after_failure(st, back))
    return result


def _restart_outcome(s, restart):
    if restart.get('failed'):
        return 'restarting on it failed: %s;' % restart.get('msg')
    if restart.get('no_restart_reason') is not None:
        return 'the old process kept serving, no restart needed;'
    if restart.get('reloaded'):
        return 'reloaded its config (%s kept running);' % restart.get('service')
    return 'restarted (%s);' % s['restart_strategy']


def failure_summary(s, st, host, failure, back):
    """The message a host fails with: what failed where, and what was done about it."""
    head = ("Deploy of %s %s (release %s) failed on %s at '%s': %s."
            % (s['app'], s['version'], st['release_id'], host, failure['stage'], _reason(failure)))
    if back.get('revert_error'):
        tail = 'Switching back to %s failed: %s' % (st['previous'], back['revert_error'])
    elif back.get('reverted'):
        tail = 'Switched back to %s; %s its health check: %s.' % (
            st['previous'], _restart_outcome(s, back.get('restart') or {}), back.get('health') or 'not run')
    elif back.get('unadopted'):
        restart = back.get('restart') or {}
        outcome = restart.get('msg') or 'ok' if restart.get('failed') else 'ok'
        tail = ('Put back the unit(s) it had adopted (%s) and restarted the service under them: %s.'
                % (', '.join(st.get('adopted') or []), outcome))
    elif st.get('switched'):
        tail = 'No previous release to switch back to: this was the first deploy.'
    else:
        tail = 'current was not changed.'
    return '%s %s' % (head, tail)


def check_settings(s):
    """Settings the role computes (service, units) must be complete: a missing key is a bug, said plainly."""
    for key in ('health_url', 'check_version', 'service_user', 'service_group', 'create_user', 'state_dirs',
                'adopt_unit', 'environment', 'version_query', 'version_regex', 'version_header', 'version_command'):
        if key not in s['service']:
            raise HotswapError('host_deploy: settings.service lacks %r; pass the completed service settings '
                               '(the hotswap.deploy.service_settings filter).' % key)


# -- rollback: one host switched to a release it has (action release_switch) ------------------------------

STAGE_RB_LOCK = 'Take the deploy lock'
STAGE_RB_SWITCH = 'Switch current to the target release'
STAGE_RB_RESTART = 'Restart the service on the target release'
STAGE_RB_VERIFY = 'Verify the target release serves'


def rollback_expected(r, version):
    return version if r['service']['check_version'] and version else None


def _rollback_restart(r):
    args = _restart_base(r, r['strategy'])
    args['executable'] = r['executable']
    return args


def rollback_activate_args(r):
    """The switch, with the deploy lock taken in the same module run (release_activate take_lock)."""
    return dict(base_dir=r['base_dir'], release_id=r['target'], previous_state=r['previous_state'],
                activated_by=r['owner'], lock_owner=r['owner'],
                take_lock=dict(reclaim_key=r['reclaim_key'], stale_after=r['lock_stale_after']))


def rollback_restart_args(r):
    """With executable set, a service already running the target's binary is not restarted."""
    args = _rollback_restart(r)
    args['expected_version'] = rollback_expected(r, r['version'])
    return _without_none(args)


def rollback_health_args(r, version, fail_on=None, successes=True):
    return health_args(r, rollback_expected(r, version), fail_on=fail_on, successes=successes)


def rollback_from(r, st):
    return st.get('from') or r['current']


def rollback_can_switch_back(r, st):
    """Back to the release the host came from only when it is there (never to a missing one) and wanted."""
    origin = rollback_from(r, st)
    return bool(r['restore_on_failure'] and st.get('switched') and origin and origin in r['present'])


def rollback_revert_args(r, st, failure):
    # A restart refused at its check stage never ran the target: that is not held against the release.
    state = 'retired' if failure.get('restart_stage') == 'check' else 'failed'
    return dict(base_dir=r['base_dir'], release_id=rollback_from(r, st), previous_state=state,
                activated_by='%s (rollback failed, switched back)' % r['owner'], lock_owner=r['owner'])


def rollback_revert_restart_args(r):
    return _without_none(_rollback_restart(r))


def rollback_verdict(r, st, check_mode):
    if check_mode and st.get('switched'):
        return 'check mode: would switch %s -> %s' % (st.get('from') or 'none', r['target'])
    return st.get('health_outcome') or 'skipped'


def rollback_done_result(r, st, host, seconds, check_mode):
    return dict(host=host, app=r['app'], previous_release=rollback_from(r, st), release=r['target'],
                version=r['version'], changed=bool(st.get('switched') or st.get('restart_changed')),
                verdict=rollback_verdict(r, st, check_mode), seconds=round(seconds, 1))


def rollback_serves_after_failure(r, st, back):
    """Whether a host whose rollback failed serves a verified release: it is back on (or never left) the
    release it came from, verified, and that release was not a failed one (a stopped canary's)."""
    if r.get('previous_state') == 'failed':
        return False
    if back.get('reverted'):
        return back.get('health') == 'pass'
    return not st.get('switched') and not back.get('revert_error')


def rollback_failed_result(r, st, host, seconds, failure, back):
    reverted = bool(back.get('reverted'))
    return dict(host=host, app=r['app'], previous_release=rollback_from(r, st), release=r['target'],
                version=r['version'], changed=bool(st.get('switched')) and not reverted,
                verdict="failed at '%s'" % failure['stage'],
                switched_back_to=rollback_from(r, st) if reverted else None,
                switched_back_health=back.get('health') or 'not run', seconds=round(seconds, 1),
                serving=rollback_serves_after_failure(r, st, back))


def rollback_failure_summary(r, st, host, failure, back):
    origin = rollback_from(r, st)
    head = "Rollback of %s to %s failed on %s at '%s': %s." % (
        r['app'], r['target'], host, failure['stage'], _reason(failure))
    if back.get('revert_error'):
        tail = 'Switching current back to %s failed: %s' % (origin, back['revert_error'].strip())
        if not tail.endswith('.'):
            tail += '.'
        tail += ' current still points at %s: repair the service by hand.' % r['target']
    elif back.get('reverted'):
        marked = '' if failure.get('restart_stage') == 'check' else ' and marked %s failed' % r['target']
        restart = back.get('restart') or {}
        failed = 'restarting on it failed: %s; ' % restart.get('msg', '') if restart.get('failed') else ''
        tail = 'Switched current back to %s%s; %shealth of %s: %s.' % (
            origin, marked, failed, origin, back.get('health') or 'not run')
    elif st.get('switched'):
        why = ('restore_on_failure is off' if not r['restore_on_failure']
               else 'the release it came from, %s, is not on the host' % (origin or 'none'))
        tail = 'current still points at %s (%s): repair the service by hand.' % (r['target'], why)
    else:
        tail = 'current was not switched (%s).' % (origin or 'none')
    return '%s %s Fix the cause and run the rollback again, or name another release (release_id).' % (head, tail)
