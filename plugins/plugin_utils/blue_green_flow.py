# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The decisions of one host's blue-green deploy (action hotswap.deploy.blue_green_deploy), without any I/O.

The action runs the remote steps; what it decides - the input checks, which slot gets which release, the
nginx config and the slot units, the arguments of each module run, what a failure undoes, the per-host
result and the failure summary - is a function here, unit-tested without hosts
(tests/unit/plugins/plugin_utils/test_blue_green_flow.py).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ansible_collections.hotswap.deploy.plugins.filter.service import service_directives, service_exec_args
from ansible_collections.hotswap.deploy.plugins.plugin_utils.host_flow import (
    HOOK_NAMES, StepFailed, _version_args, release_version)

SLOTS = ('blue', 'green')
OTHER = {'blue': 'green', 'green': 'blue'}
DEFAULT_SITE = '/etc/nginx/sites-enabled/default'
NGINX_BINARY = '/usr/sbin/nginx'
CONFIG_MARKER = 'hotswap-blue-green live='

# The stage names a failure reports: the task names of the YAML flow this replaces, so messages and the
# documents that quote them stay as they were.
STAGE_CHECK = 'Check the artifact against the host'
STAGE_READ = 'Read the releases, the slot links and the nginx config'
STAGE_LOCK = 'Take the deploy lock'
STAGE_CONCURRENT = 'Refuse to go on after a concurrent switch'
STAGE_USER_CHECK = 'Refuse a service user that does not exist'
STAGE_USER = 'Create the service user'
STAGE_STATE_DIRS = 'Create the state directories of the service'
STAGE_NGINX = 'Install nginx from the distribution'
STAGE_UNITS = 'Install the units of the two slots'
STAGE_LINK = 'Point the idle slot at the release'
STAGE_START = 'Start the release in the idle slot'
STAGE_DIRECT = 'Verify the idle slot directly'
STAGE_SWITCH = 'Write the config, test it and reload nginx gracefully'
STAGE_REJECTED = 'Fail on a config nginx rejects'
STAGE_ACTIVATE = 'Record the release nginx serves as current'
STAGE_PUBLIC = 'Verify through the load balancer'
STAGE_RECORD = 'Record which slot is live'
STAGE_PRUNE = 'Prune old releases'
STAGE_UNLOCK = 'Release the deploy lock'

# The phases a hooked rollout runs one by one, a hook between two (roles/blue_green/tasks/phases.yml).
PHASES = ('begin', 'upload', 'start', 'switch', 'verify', 'finish')
# Without hooks (phase all) and not in check mode: start to finish are one blue_green_cutover run.
PHASES_IN_ONE_RUN = ('begin', 'upload', 'cutover')
PHASE_CHOICES = PHASES + ('all', 'abort')

_APP_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
_CHECKSUM_RE = re.compile(r'^sha256:[0-9A-Fa-f]{64}$')


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- input checks (before anything connects) ---------------------------------------------------------------

def check_inputs(s, host, platform):
    """Refuse bad input with the message that says what to change; nothing on the host is asked or changed."""
    app, action = s['app'], s['action']
    blue, green, public = _int(s['ports'].get('blue')), _int(s['ports'].get('green')), _int(s['public_port'])
    ports = [blue, green, public]
    if None in ports or blue == green or public in (blue, green) or not all(1 <= p <= 65535 for p in ports):
        raise StepFailed('Check that blue and green have ports of their own', (
            'Blue-green deploy of %s on %s: the ports clash or are out of range - blue slot %s, green slot %s, public '
            '(nginx) %s. Each slot needs its own port, different from the public one, all within 1-65535; for example '
            'blue_green_ports={"blue": 8081, "green": 8082} and blue_green_public_port=80. Nothing was changed.'
            % (app, host, s['ports'].get('blue'), s['ports'].get('green'), s['public_port'])))
    if not (_APP_RE.match(app or '') and s['scale_down_delay'] >= 0 and s['keep'] >= 1 and s['ready_timeout'] > 0
            and s['drain_timeout'] > 0):
        raise StepFailed('Check the name, timings and limits', (
            "Blue-green deploy of '%s' on %s: bad input - the app name must be letters, digits, '.', '_' or '-' (it "
            'names the units %s-blue/-green.service); scale_down_delay must be >= 0 (got %s), keep >= 1 (got %s) and '
            'ready_timeout and drain_timeout > 0 (got %s, %s). Nothing was changed.'
            % (app, host, app, s['scale_down_delay'], s['keep'], _num(s['ready_timeout']), _num(s['drain_timeout']))))
    sources = [x for x in (s['artifact'], s['artifact_url'], s['release_id']) if x]
    if (action == 'deploy' and len(sources) != 1) or (action == 'switch_back' and sources):
        what = ('give exactly one of artifact (a file on the controller), artifact_url (the hosts download it) or '
                'release_id (a release already on the hosts)' if action == 'deploy' else
                'switch_back takes no artifact, artifact_url or release_id: it goes back to the release the other '
                'slot holds')
        raise StepFailed('Check what to deploy', (
            "Blue-green %s of %s on %s: %s; got artifact='%s' artifact_url='%s' release_id='%s'. Nothing was changed."
            % (action, app, host, what, s['artifact'], s['artifact_url'], s['release_id'])))
    if uploads(s) and not (str(s['version']) and _CHECKSUM_RE.match(s['checksum'] or '')):
        raise StepFailed('Check the version and checksum of the artifact', (
            "Blue-green deploy of %s on %s: an artifact needs blue_green_version (got '%s') and blue_green_checksum as "
            "sha256:<64 hex digits> (got '%s'), e.g. -e checksum=sha256:$(sha256sum dist/app | cut -d' ' -f1). "
            'Nothing was changed.' % (app, host, s['version'], s['checksum'])))
    if platform != 'linux':
        raise StepFailed('Refuse a Windows host', (
            'Blue-green deploy of %s: %s is a Windows host; the blue_green role runs two systemd slots behind nginx '
            'and supports Linux hosts only. Use deploy.yml (rollout canary) for Windows hosts. Nothing was changed.'
            % (app, host)))
    unknown = sorted(set(s['hooks']) - set(HOOK_NAMES))
    if unknown:
        raise StepFailed('Check the hooks', 'Blue-green %s of %s: blue_green_hooks takes only the keys %s; got %s. '
                         'Nothing was changed.' % (action, app, ', '.join(HOOK_NAMES), sorted(s['hooks'])))


def _num(value):
    return int(value) if float(value).is_integer() else value


def uploads(s):
    """Whether this run brings the release (artifact or artifact_url) rather than naming one on the host."""
    return bool(s['artifact'] or s['artifact_url'])


def lock_action(s, release_id):
    return 'deploy %s' % release_id if s['action'] == 'deploy' else 'switch back'


# -- names and addresses ---------------------------------------------------------------------------------

def conf_path(s):
    return '/etc/nginx/conf.d/hotswap-%s.conf' % s['app']


def upstream(s):
    return 'hotswap_%s' % re.sub(r'[^A-Za-z0-9_]', '_', s['app'])


def slot_host(s):
    """Where nginx and the direct check reach a slot: the listen address, or loopback for a wildcard."""
    return '127.0.0.1' if s['listen_address'] in ('0.0.0.0', '127.0.0.1', '', '*') else s['listen_address']


def health_path(s):
    """A slot is probed at the path (and query) of health_url, on the slot's own port."""
    url = urlsplit(s['service']['health_url'] or '')
    return (url.path or '/') + ('?' + url.query if url.query else '')


def direct_url(s, slot):
    return 'http://%s:%d%s' % (slot_host(s), _int(s['ports'][slot]), health_path(s))


def public_url(s):
    return 'http://127.0.0.1:%d%s' % (_int(s['public_port']), health_path(s))


def release_dir(s, release_id):
    return '%s/releases/%s' % (s['base_dir'], release_id)


# -- what the host holds ---------------------------------------------------------------------------------

def refusal(s, info, host):
    """Why the role must not touch this host (None when it may): a slot path that is no link, a blocked
    current, an nginx config someone else wrote, nginx's default site on the public port."""
    problems = []
    for slot in SLOTS:
        r = info['slots'][slot]
        if r['exists'] and not r['islink']:
            problems.append('%s is a real file or directory, not a slot link; move it away.' % r['path'])
    if info.get('current_blocked'):
        problems.append(' '.join(info.get('problems') or []))
    conf = info.get('lb_config') or ''
    if conf and CONFIG_MARKER not in conf:
        problems.append('%s exists but was not written by hotswap.deploy; move it away or set another blue_green_app.'
                        % conf_path(s))
    if default_site_in_the_way(s, info) and not s['disable_default_site']:
        problems.append("nginx's default site (%s) is the default server on port 80, the public port; set "
                        'blue_green_disable_default_site=true to remove its link, or choose another '
                        'blue_green_public_port.' % DEFAULT_SITE)
    if not problems:
        return None
    return ('Blue-green %s of %s on %s: refused before changing anything. %s'
            % (s['action'], s['app'], host, ' '.join(problems)))


def default_site_in_the_way(s, info):
    """nginx's default site is default_server on port 80 too; it matters only until the role's config exists."""
    return (info.get('lb_config') is None and info['stat'].get(DEFAULT_SITE, {}).get('exists', False)
            and _int(s['public_port']) == 80)


def nginx_missing(info):
    return info.get('lb_config') is None and not info['stat'].get(NGINX_BINARY, {}).get('exists', False)


def plan(s, info, release_id):
    """Which release goes to which slot: ``live`` (the slot nginx serves, '' on a first deploy), ``target``,
    ``switch`` (nginx moves), the release, its version and the slots' releases."""
    slot_release = dict((slot, info['slots'][slot]['release']) for slot in SLOTS)
    live = info.get('live_slot') or ''
    other = OTHER[live] if live else ''
    if s['action'] == 'switch_back':
        rid = slot_release.get(other) or '' if other else ''
        target = other
    else:
        rid = release_id
        target = live if live and slot_release[live] == rid else (other or 'blue')
    version = s['version'] if uploads(s) else (release_version(info.get('releases'), rid) or '')
    return dict(live=live, target=target, release_id=rid, version=version, slot_release=slot_release,
                live_release=slot_release[live] if live else None, switch=target != live,
                backup_now=info.get('backup_slot') or '', conf_orig=info.get('lb_config') or '',
                previous_state='failed' if s['action'] == 'switch_back' else 'retired')


def missing_release(s, st, info, host):
    """Why the chosen release cannot be deployed from the host (None when it can)."""
    if uploads(s):
        return None
    present = [r['release_id'] for r in info.get('releases') or [] if r.get('present')]
    if st['release_id'] and st['release_id'] in present:
        return None
    if s['action'] == 'switch_back' and not st['live']:
        why = ('nothing to switch back from: no slot is live (%s is missing); deploy a release first.'
               % conf_path(s))
    elif s['action'] == 'switch_back' and not st['release_id']:
        why = ('the %s slot holds no release, so there is nothing to switch back to; deploy the release you want '
               'instead.' % st['target'])
    else:
        why = ('release %s is not on this host (releases present: %s); deploy it with an artifact, or name one of '
               'these.' % (st['release_id'], ', '.join(present) or 'none'))
    return 'Blue-green %s of %s on %s: %s Nothing was changed.' % (s['action'], s['app'], host, why)


def unit_changed_on_live(st, units_changed):
    """A changed unit only reaches a slot when it restarts: a converge whose live slot's unit changed puts the
    live release into the idle slot instead."""
    return not st['switch'] and st['live'] in (units_changed or [])


# -- what the role writes --------------------------------------------------------------------------------

def nginx_config(s, primary, backup):
    """The nginx config that sends the public port to ``primary`` (``backup`` takes what it cannot)."""
    host = slot_host(s)
    lines = [
        '# Managed by hotswap.deploy (role blue_green) for %s: rewritten on every switch.' % s['app'],
        '# The next line tells the role which slot is live; do not edit it.',
        '# %s%s backup=%s' % (CONFIG_MARKER, primary, backup or 'none'),
        'upstream %s {' % upstream(s),
        '    server %s:%d;' % (host, _int(s['ports'][primary])),
    ]
    if backup:
        lines += [
            '    # The previous slot while it still runs: takes the requests the live slot cannot (e.g. it crashed',
            '    # right after the switch), so they do not fail while the role switches back.',
            '    server %s:%d backup;' % (host, _int(s['ports'][backup])),
        ]
    lines += [
        '    keepalive %d;' % s['upstream_keepalive'],
        '    keepalive_timeout %ds;' % s['upstream_keepalive_timeout'],
        '}',
        '',
        'server {',
        '    listen %d default_server;' % _int(s['public_port']),
        '    server_name _;',
        '',
        '    location / {',
        '        proxy_pass http://%s;' % upstream(s),
        '        # Keep-alive connections to the slot: HTTP/1.1 without "Connection: close".',
        '        proxy_http_version 1.1;',
        '        proxy_set_header Connection "";',
        '        proxy_set_header Host $host;',
        '        proxy_set_header X-Real-IP $remote_addr;',
        '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
        '        proxy_set_header X-Forwarded-Proto $scheme;',
        '        proxy_connect_timeout 5s;',
        '        proxy_read_timeout %ds;' % s['proxy_read_timeout'],
        '        proxy_next_upstream error timeout;',
        '    }',
        '}',
    ]
    return '\n'.join(lines) + '\n'


def slot_unit(s, slot, managed='Ansible managed'):
    """The systemd unit of a slot: it runs the release ``<base_dir>/slots/<slot>`` points at, on its port.
    The first line is Ansible's managed string, as the role's template wrote it: a unit that changed would
    put the live release into the other slot."""
    port = _int(s['ports'][slot])
    service = s['service']
    lines = [
        '# %s' % managed,
        '# Installed by hotswap.deploy (role blue_green): the %s slot of %s.' % (slot, s['app']),
        '# It runs the release that %s/slots/%s points at, on port' % (s['base_dir'], slot),
        '# %d; nginx sends traffic to the live slot only.' % port,
        '[Unit]',
        'Description=%s %s slot (hotswap.deploy blue_green)' % (s['app'], slot),
        'After=network-online.target',
        'Wants=network-online.target',
        '',
        '[Service]',
        'Type=%s' % s['service_type'],
    ]
    if s['service_type'] == 'notify':
        lines.append('NotifyAccess=all')
    lines += [
        '# The environment of the release this slot points at (hotswap_service environment, environment_secret).',
        'EnvironmentFile=-%s/slots/%s/.hotswap-environment' % (s['base_dir'], slot),
        service_directives(service),
        'RuntimeDirectory=%s-%s' % (s['app'], slot),
        'ExecStart=%s/slots/%s/%s %s' % (s['base_dir'], slot, s['binary'], service_exec_args(
            service, port=port, slot=slot, address=s['listen_address'], ready_timeout=_num(s['ready_timeout']))),
        'Restart=on-failure',
        'RestartSec=1',
        'KillSignal=SIGTERM',
        '# Room for the app to finish in-flight requests before systemd kills it.',
        'TimeoutStopSec=%d' % (int(s['drain_timeout']) + 5),
        'TimeoutStartSec=%d' % (int(s['ready_timeout']) + 5),
        '',
        '[Install]',
        'WantedBy=multi-user.target',
    ]
    return '\n'.join(lines) + '\n'


def state_record(s, st):
    """What .hotswap/blue_green.json says after a switch: the live slot and the release of each slot."""
    record = dict(live=st['target'], ports=dict((k, _int(v)) for k, v in s['ports'].items()),
                  public_port=_int(s['public_port']))
    for slot in SLOTS:
        record[slot] = st['release_id'] if st['target'] == slot else st['slot_release'][slot]
    return record


# -- module arguments ------------------------------------------------------------------------------------

def _without_none(args):
    return dict((k, v) for k, v in args.items() if v is not None)


def upload_args(s, st, check=False):
    args = dict(src=s['artifact'] or None, url=s['artifact_url'] or None, checksum=s['checksum'],
                base_dir=s['base_dir'], release_id=st['release_id'], name=s['binary'], version=s['version'],
                files=s['release_files'], environment=s['service']['environment'],
                environment_secret=s['environment_secret'], format=s['artifact_format'],
                strip_components=s['artifact_strip_components'], lock_owner=None if check else st['owner'])
    return _without_none(args)


def lock_args(s, st):
    """deploy_lock; with an upload it also says whether the release is staged and the host's platform, so the
    push needs no probe of its own (host_flow.known_probe)."""
    args = dict(base_dir=s['base_dir'], owner=st['owner'], reclaim_key=st['reclaim_key'],
                stale_after=s['lock_stale_after'], service_user=s['service']['service_user'])
    if st['upload']:
        args['release_id'] = st['release_id']
    return args


def expected(s, version):
    return version if s['service']['check_version'] and version else None


def restart_args(s, st):
    """graceful_restart of the target slot: only when it does not run this release's binary yet (or is
    stopped), or its unit changed (a running slot keeps the unit it was started with)."""
    slot = st['target']
    args = dict(service='%s-%s' % (s['app'], slot), strategy='restart', url=direct_url(s, slot),
                expected_version=expected(s, st['version']), health_timeout=s['health_timeout'],
                ready_timeout=s['ready_timeout'], drain_timeout=s['drain_timeout'], enabled=True,
                executable=None if slot in st.get('units_changed', []) else '%s/slots/%s/%s' % (
                    s['base_dir'], slot, s['binary']))
    args.update(_version_args(s['service']))
    return _without_none(args)


def health_args(s, url, version, fail_on=None, successes=True):
    args = dict(url=url, expected_version=expected(s, version), retries=s['health_retries'],
                interval=s['health_interval'], successes=s['health_successes'] if successes else None,
                timeout=s['health_timeout'], fail_on=fail_on)
    args.update(_version_args(s['service']))
    return _without_none(args)


def activate_args(s, st):
    return dict(base_dir=s['base_dir'], release_id=st['release_id'], previous_state=st['previous_state'],
                activated_by=st['owner'], lock_owner=st['owner'])


def revert_activate_args(s, st):
    return dict(base_dir=s['base_dir'], release_id=st['live_release'], previous_state='failed',
                activated_by='%s (automatic switch back)' % st['owner'], lock_owner=st['owner'])


def link_args(s, st):
    """Point the target slot at the release; on a switch, first stop a scale-down timer that would stop it."""
    return dict(app=s['app'], base_dir=s['base_dir'], cancel_scale_down=st['switch'],
                link=dict(slot=st['target'], release_id=st['release_id']))


def direct_check_args(s, st):
    return health_args(s, direct_url(s, st['target']), st['version'])


def public_check_args(s, st):
    return health_args(s, public_url(s), st['version'])


def switch_config(s, st):
    """The nginx config that sends requests to the target slot."""
    return nginx_config(s, st['target'], lb_backup(st))


def cutover_steps(s, st):
    """The blue_green_cutover run of a rollout without hooks, not in check mode: what start, switch, verify and
    finish run one module run each (the direct check only on a switch: users do not reach that slot yet)."""
    steps = dict(slots=link_args(s, st), restart=restart_args(s, st),
                 switch=dict(path=conf_path(s), content=switch_config(s, st)),
                 activate=activate_args(s, st), public_check=public_check_args(s, st),
                 finish=finish_args(s, st, False))
    if st['switch']:
        steps['direct_check'] = direct_check_args(s, st)
    return steps


def finish_args(s, st, check_mode):
    """The one blue_green_slots run a rollout that went through ends with: after a switch, record the live slot
    (not on a first deploy in check mode: no .hotswap/ yet to write into) and scale the old one down; then prune
    (never the releases the slots run: switch back needs the idle one) and release the lock."""
    args = dict(app=s['app'], base_dir=s['base_dir'])
    if st['switch']:
        if not (check_mode and not st['live']):
            args['state'] = state_record(s, st)
        if st['live']:
            args['scale_down'] = scale_down_args(s, st['live'])
    protect = [r for r in (st['release_id'], st['slot_release'][OTHER[st['target']]]) if r]
    args.update(prune=dict(keep=s['keep'], protect=protect, lock_owner=st['owner']), unlock=dict(owner=st['owner']))
    return args


def finish_stage(res):
    """The stage a failed finishing run failed at: a failed prune or unlock left the rollout in place, a failure
    before them (the record, the scale-down) did not."""
    return {'prune': STAGE_PRUNE, 'unlock': STAGE_UNLOCK}.get(res.get('failed_step'), STAGE_RECORD)


def lb_backup(st):
    """Converge: keep the backup nginx has. Switch: the old slot, while it still runs."""
    return st['live'] if st['switch'] else st['backup_now']


def rejected_msg(s, host, primary, result):
    said = ' '.join(line for line in (result.get('test_output') or '').splitlines()
                    if not re.search('syntax is ok|test failed', line))
    return ('Pointing nginx for %s on %s at the %s slot: nginx -t rejected the configuration: %s. The previous %s '
            'was put back and nginx was not reloaded. Fix the configuration nginx names (another server that is '
            'default_server on port %s needs blue_green_disable_default_site or another blue_green_public_port) '
            'and rerun.' % (s['app'], host, primary or 'previous', said, conf_path(s), s['public_port']))


def concurrent_switch_msg(s, host):
    return ('Blue-green %s of %s on %s: another deploy switched nginx (%s) between this run\'s first look and taking '
            'the lock. Nothing was changed; rerun to deploy from the new state.'
            % (s['action'], s['app'], host, conf_path(s)))


# -- hooks and results -----------------------------------------------------------------------------------

def hook_facts(s, st, host):
    """``hotswap_hook`` (docs/hooks.md), the dict every hook reads whichever role runs it, and
    ``blue_green_context``, its older name here."""
    slot = st['target']
    context = dict(action=s['action'], app=s['app'], base_dir=s['base_dir'], release=st['release_id'],
                   version=st['version'], release_dir=release_dir(s, st['release_id']), target_slot=slot,
                   target_port=_int(s['ports'][slot]), target_url=direct_url(s, slot), public_url=public_url(s),
                   live_slot=st['live'] or None, live_release=st['live_release'])
    hook = dict(context, rollout='blue_green', host=host, previous_release=st['live_release'], batch=None)
    return dict(hotswap_hook=hook, blue_green_context=context)


def _base_result(s, st, host, seconds):
    return dict(host=host, app=s['app'], previous_release=st.get('live_release'), release=st.get('release_id'),
                version=st.get('version'), slot=st.get('target'), seconds=round(seconds, 1))


def done_result(s, st, host, seconds):
    result = _base_result(s, st, host, seconds)
    result.update(changed=st['switch'], verdict=st.get('public_outcome') or 'skipped',
                  switch_seconds=st.get('switch_seconds') if st['switch'] else None,
                  scale_down=st.get('scale_down'))
    return result


def restore_plan(st):
    """What undoing a failed rollout takes: nginx back (it was switched), the target slot stopped (this run
    started or repointed it), its scale-down back (it already ran the release: a switch back within the
    delay), its link back, current back (it moved), and a check of the old slot through nginx."""
    touched = st['switch'] and bool(st.get('link_changed') or st.get('restart_changed'))
    return dict(
        lb=st.get('conf_text', st['conf_orig']) != st['conf_orig'],
        stop=touched,
        scale_down=st['switch'] and not touched and bool(st.get('cancelled')),
        link=bool(st.get('link_changed')),
        current=bool(st.get('switched')) and bool(st.get('live_release')),
        touched=touched,
    )


def scale_down_args(s, slot):
    """Stop ``slot`` after the scale-down delay (now with delay 0), letting it drain first."""
    return dict(slot=slot, delay=s['scale_down_delay'], drain_timeout=int(s['drain_timeout']))


def slot_restore_args(s, st, plan_):
    """The blue_green_slots run of a switch back (the failed slot stopped, or left to its scale-down timer, and
    pointed back at what it held), or None when the slot was not touched."""
    args = dict(app=s['app'], base_dir=s['base_dir'])
    if plan_['stop']:
        args['stop_slot'] = st['target']
    if plan_['scale_down']:
        args['scale_down'] = scale_down_args(s, st['target'])
    if plan_['link']:
        args['link'] = dict(slot=st['target'], release_id=st['slot_release'][st['target']] or '')
    return args if len(args) > 2 else None


def failed_result(s, st, host, seconds, plan_, back):
    result = _base_result(s, st, host, seconds)
    result.update(changed=bool(plan_['lb'] or st.get('link_changed') or st.get('restart_changed')),
                  verdict="failed at '%s'" % back['stage'],
                  rolled_back_to=st.get('live_release') if plan_['lb'] and not back.get('lb_error') else None,
                  rollback_health=back.get('health') or 'not run')
    return result


def failure_summary(s, st, host, plan_, back):
    """The message a host fails with: what failed where, and what was done about it."""
    slot = st['target']
    parts = ["Blue-green %s of %s %s (release %s, %s slot, port %s) failed on %s at '%s': %s" % (
        s['action'], s['app'], st['version'], st['release_id'], slot, s['ports'][slot], host, back['stage'],
        back['reason'].strip())]
    live = st['live']
    if back.get('lb_error'):
        parts.append('Switching nginx back FAILED: %s Repair %s by hand.' % (back['lb_error'], conf_path(s)))
    elif plan_['lb'] and live:
        parts.append('nginx was switched back to the %s slot (%s); its check through port %s: %s.' % (
            live, st['live_release'], s['public_port'], back.get('health') or 'not run'))
    elif plan_['lb']:
        parts.append('This was the first deploy: the nginx config was removed again.')
    elif live:
        parts.append('nginx still sends every request to the %s slot (%s); it was not switched.'
                     % (live, st['live_release']))
    else:
        parts.append('nginx was not configured: this was the first deploy.')
    if back.get('scale_down'):
        parts.append('The %s slot keeps running: %s.' % (slot, back['scale_down']))
    elif plan_['touched']:
        parts.append('The %s slot was stopped%s.' % (slot, ' and points at %s again' % (
            st['slot_release'][slot] or 'nothing') if plan_['link'] else ''))
    if back.get('revert_error'):
        parts.append('Switching current back to %s FAILED: %s' % (st['live_release'], back['revert_error'].strip()))
    elif back.get('reverted'):
        parts.append('current is back on %s; %s is marked failed.' % (st['live_release'], st['release_id']))
    return ' '.join(parts)
