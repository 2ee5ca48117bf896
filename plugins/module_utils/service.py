# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Service settings: how the user's service runs and reports itself, defaulted in this one place.

Every role and both playbooks read the same settings (``hotswap_service``): the playbooks build
it from extra vars of the same names, the roles complete it with ``service_settings`` (the
filter of the same name). docs/service-settings.md documents each one.

Units are rendered from them by ``service_directives``: the lines of ``[Service]`` that are the
user's (user, environment, limits, hardening, extra directives). The lines a restart strategy
needs (Type, ExecReload, ...) stay in the unit templates, and ``unit_directives`` may not set them.
"""

from __future__ import annotations

import copy
import re

from ansible_collections.hotswap.deploy.plugins.module_utils import release_content
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.version import VERSION_OPTIONS, build_version_source

HARDENING_DEFAULTS = dict(
    no_new_privileges=True,      # NoNewPrivileges=yes
    protect_system='strict',     # ProtectSystem=strict (the OS read-only; state_dirs writable)
    protect_home=True,           # ProtectHome=yes
    private_tmp=True,            # PrivateTmp=yes
)
PROTECT_SYSTEM_CHOICES = ('strict', 'full', 'true', 'false')

# None: derived from other settings (health_url from the port, service_user from the app).
DEFAULTS = dict(
    health_url=None,
    check_version=True,
    version_query=None,
    version_regex=None,
    version_header=None,
    version_command=None,
    service_args='',
    service_user=None,
    service_group=None,
    create_user=True,
    environment={},
    environment_file='',
    limit_nofile=None,
    unit_directives=[],
    hardening={},
    state_dirs=[],
    adopt_unit=False,
)
NAMES = tuple(DEFAULTS)

# [Service] keys a strategy or another setting owns: unit_directives may not set them.
OWNED_KEYS = {
    'ExecStart': 'the binary of current and service_args',
    'Type': 'the restart strategy',
    'NotifyAccess': 'the restart strategy',
    'ExecReload': 'the restart strategy',
    'ReloadSignal': 'the restart strategy',
    'PIDFile': 'the restart strategy',
    'RuntimeDirectory': 'the restart strategy',
    'User': 'service_user',
    'Group': 'service_group',
    'Environment': 'environment',
    'EnvironmentFile': 'environment_file',
    'LimitNOFILE': 'limit_nofile',
    'NoNewPrivileges': 'hardening.no_new_privileges',
    'ProtectSystem': 'hardening.protect_system',
    'ProtectHome': 'hardening.protect_home',
    'PrivateTmp': 'hardening.private_tmp',
    'ReadWritePaths': 'state_dirs',
}
USER_RE = re.compile(r'^[a-z_][a-z0-9_-]{0,31}$')
DIRECTIVE_RE = re.compile(r'^([A-Za-z][A-Za-z0-9]*)=(.*)$')
_WHAT = 'reading the service settings'


def _bool(name, value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('true', 'yes', 'on', '1'):
        return True
    if text in ('false', 'no', 'off', '0'):
        return False
    raise HotswapError('%s: %s must be true or false, not %r.' % (_WHAT, name, value))


def _empty(value):
    return value is None or (isinstance(value, str) and value.strip() == '')


def pick(source, strict=False):
    """The settings given in ``source`` (a dict, or a host's variables): known names only.

    ``strict`` refuses unknown keys (a dict meant as settings, where a typo would be ignored).
    """
    if source is None:
        return {}
    if not hasattr(source, 'keys'):
        raise HotswapError('%s: the settings must be a dict (hotswap_service), not %r.' % (_WHAT, source))
    if strict:
        unknown = sorted(str(k) for k in source.keys() if k not in DEFAULTS)
        if unknown:
            raise HotswapError('%s: unknown setting(s) %s. Known: %s.' % (_WHAT, ', '.join(unknown), ', '.join(NAMES)))
    return dict((name, source[name]) for name in NAMES if name in source)


def check_environment(environment):
    # One rule for variable names and values: the release's environment file (release_content.py).
    return release_content.check_environment(environment, 'the service settings: environment')


def check_directives(lines):
    if isinstance(lines, str):
        lines = [line for line in lines.splitlines() if line.strip()]
    if not isinstance(lines, list):
        raise HotswapError('%s: unit_directives must be a list of "Key=value" lines, not %r.' % (_WHAT, lines))
    out = []
    for line in lines:
        match = DIRECTIVE_RE.match(str(line).strip())
        if not match:
            raise HotswapError('%s: unit_directives line %r is not "Key=value". Give [Service] lines such as '
                               'MemoryMax=512M.' % (_WHAT, line))
        key = match.group(1)
        if key in OWNED_KEYS:
            raise HotswapError('%s: unit_directives line %r sets %s, which %s decides. Remove it%s.'
                               % (_WHAT, line, key, OWNED_KEYS[key],
                                  '' if OWNED_KEYS[key] == 'the restart strategy' or key == 'ExecStart'
                                  else ' and set %s instead' % OWNED_KEYS[key]))
        out.append(str(line).strip())
    return out


def check_hardening(hardening):
    if isinstance(hardening, bool):
        hardening = {} if hardening else dict((k, False) for k in HARDENING_DEFAULTS)
    if not isinstance(hardening, dict):
        raise HotswapError('%s: hardening must be a dict (%s) or false, not %r.'
                           % (_WHAT, ', '.join(HARDENING_DEFAULTS), hardening))
    unknown = sorted(set(hardening) - set(HARDENING_DEFAULTS))
    if unknown:
        raise HotswapError('%s: unknown hardening setting(s) %s. Known: %s.'
                           % (_WHAT, ', '.join(unknown), ', '.join(HARDENING_DEFAULTS)))
    out = dict(HARDENING_DEFAULTS)
    for key, value in hardening.items():
        if key == 'protect_system':
            text = str(value).lower()
            if text not in PROTECT_SYSTEM_CHOICES:
                raise HotswapError('%s: hardening.protect_system must be one of %s, not %r.'
                                   % (_WHAT, ', '.join(PROTECT_SYSTEM_CHOICES), value))
            out[key] = text
        else:
            out[key] = _bool('hardening.%s' % key, value)
    return out


def check_user(name, value):
    if not USER_RE.match(value):
        raise HotswapError('%s: %s %r is not a valid user or group name (lower-case letters, digits, _ and -, '
                           'at most 32).' % (_WHAT, name, value))
    return value


def check_state_dirs(dirs):
    if isinstance(dirs, str):
        dirs = [dirs]
    if not isinstance(dirs, list) or not all(isinstance(d, str) and d.startswith('/') for d in dirs):
        raise HotswapError('%s: state_dirs must be a list of absolute paths the service writes to, not %r.'
                           % (_WHAT, dirs))
    return list(dirs)


def service_settings(given, app, listen_port=8080, strict=False):
    """Every setting, validated, with its default where not given; raise HotswapError on bad input."""
    if not app:
        raise HotswapError('%s: the app name is empty. Give app.' % _WHAT)
    settings = copy.deepcopy(DEFAULTS)
    settings.update(dict((k, v) for k, v in pick(given, strict).items() if not _empty(v) or k == 'service_args'))
    if _empty(settings['health_url']):
        settings['health_url'] = 'http://127.0.0.1:%s/healthz' % listen_port
    settings['check_version'] = _bool('check_version', settings['check_version'])
    settings['create_user'] = _bool('create_user', settings['create_user'])
    settings['adopt_unit'] = _bool('adopt_unit', settings['adopt_unit'])
    build_version_source(**dict((k, settings[k]) for k in VERSION_OPTIONS))
    settings['service_args'] = '' if settings['service_args'] is None else str(settings['service_args']).strip()
    settings['service_user'] = check_user('service_user', str(settings['service_user'] or app))
    settings['service_group'] = check_user('service_group', str(settings['service_group'] or settings['service_user']))
    settings['environment'] = check_environment(settings['environment'] or {})
    settings['environment_file'] = str(settings['environment_file'] or '')
    if settings['environment_file'] and not settings['environment_file'].lstrip('-').startswith('/'):
        raise HotswapError('%s: environment_file %r must be an absolute path (a leading - makes it optional).'
                           % (_WHAT, settings['environment_file']))
    if not _empty(settings['limit_nofile']):
        try:
            settings['limit_nofile'] = int(settings['limit_nofile'])
        except (TypeError, ValueError):
            raise HotswapError('%s: limit_nofile must be a whole number of open files, not %r.'
                               % (_WHAT, settings['limit_nofile']))
    else:
        settings['limit_nofile'] = None
    settings['unit_directives'] = check_directives(settings['unit_directives'] or [])
    settings['hardening'] = check_hardening(settings['hardening'] if settings['hardening'] is not None else {})
    settings['state_dirs'] = check_state_dirs(settings['state_dirs'] or [])
    for name in VERSION_OPTIONS:
        settings[name] = None if _empty(settings[name]) else str(settings[name])
    return settings


def service_directives(settings):
    """The user's [Service] lines of a unit: user, environment, limits, hardening, extra directives."""
    lines = ['User=%s' % settings['service_user'], 'Group=%s' % settings['service_group']]
    if settings['environment_file']:
        lines.append('EnvironmentFile=%s' % settings['environment_file'])
    if settings['limit_nofile']:
        lines.append('LimitNOFILE=%d' % settings['limit_nofile'])
    hardening = settings['hardening']
    if hardening['no_new_privileges']:
        lines.append('NoNewPrivileges=yes')
    if hardening['protect_system'] != 'false':
        lines.append('ProtectSystem=%s' % ('yes' if hardening['protect_system'] == 'true' else hardening['protect_system']))
        if settings['state_dirs']:
            lines.append('ReadWritePaths=%s' % ' '.join(settings['state_dirs']))
    if hardening['protect_home']:
        lines.append('ProtectHome=yes')
    if hardening['private_tmp']:
        lines.append('PrivateTmp=yes')
    lines += settings['unit_directives']
    return '\n'.join(lines)


def exec_args(settings, **values):
    """service_args with {port}, {address}, {pid_file}, {slot}, {ready_timeout} replaced."""
    args = settings['service_args']
    for key, value in values.items():
        args = args.replace('{%s}' % key, str(value))
    return args
