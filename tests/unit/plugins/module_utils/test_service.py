# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""module_utils/service.py: the service settings every role reads, defaulted and checked once."""

from __future__ import annotations

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.service import (
    DEFAULTS, exec_args, pick, service_directives, service_settings,
)


def test_defaults_are_not_the_demo_app_and_not_root():
    s = service_settings({}, 'pushgw', listen_port=9091)
    assert s['health_url'] == 'http://127.0.0.1:9091/healthz'
    assert s['service_args'] == ''
    assert s['service_user'] == 'pushgw' and s['service_group'] == 'pushgw' and s['create_user']
    assert s['check_version'] and not s['adopt_unit']
    assert s['hardening'] == dict(no_new_privileges=True, protect_system='strict', protect_home=True,
                                  private_tmp=True)


def test_normalising_twice_gives_the_same_settings():
    once = service_settings({'environment': {'GOMAXPROCS': 2}, 'check_version': 'false'}, 'app')
    assert service_settings(once, 'app', strict=True) == once
    assert once['check_version'] is False and once['environment'] == {'GOMAXPROCS': '2'}


def test_pick_takes_only_known_names_from_a_hosts_variables():
    host_vars = {'health_url': 'http://127.0.0.1:1/x', 'ansible_user': 'deploy', 'canary_steps': [1]}
    assert pick(host_vars) == {'health_url': 'http://127.0.0.1:1/x'}
    with pytest.raises(HotswapError) as err:
        pick({'helth_url': 'x'}, strict=True)
    assert 'helth_url' in err.value.msg and 'health_url' in err.value.msg


def test_directives_carry_user_limits_hardening_and_extra_lines():
    s = service_settings({'environment': {'B': 'two words', 'A': 'say "hi" 100%'}, 'environment_file': '-/etc/default/app',
                          'limit_nofile': '65536', 'state_dirs': ['/var/lib/app'],
                          'unit_directives': ['MemoryMax=512M'], 'service_user': 'svc'}, 'app')
    lines = service_directives(s).splitlines()
    assert lines[:2] == ['User=svc', 'Group=svc']
    # the environment goes into the release (release_content.py), not the unit: it rolls back with it
    assert not [line for line in lines if line.startswith('Environment=')]
    for line in ('EnvironmentFile=-/etc/default/app', 'LimitNOFILE=65536', 'NoNewPrivileges=yes',
                 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/app', 'ProtectHome=yes', 'PrivateTmp=yes'):
        assert line in lines
    assert lines[-1] == 'MemoryMax=512M'


def test_each_hardening_setting_can_be_switched_off():
    s = service_settings({'hardening': {'protect_system': 'false', 'private_tmp': False}}, 'app')
    lines = service_directives(s).splitlines()
    assert 'NoNewPrivileges=yes' in lines and 'ProtectHome=yes' in lines
    assert not [line for line in lines if line.startswith(('ProtectSystem', 'PrivateTmp'))]
    off = service_directives(service_settings({'hardening': False}, 'app')).splitlines()
    assert off == ['User=app', 'Group=app']


def test_exec_args_fill_the_placeholders():
    s = service_settings({'service_args': '--listen {address}:{port} --pid-file {pid_file}'}, 'app')
    assert exec_args(s, address='0.0.0.0', port=8080, pid_file='/run/app/app.pid') == \
        '--listen 0.0.0.0:8080 --pid-file /run/app/app.pid'


@pytest.mark.parametrize('given,words', [
    ({'version_query': 'a.b', 'version_regex': 'v=(.*)'}, ['both set']),
    ({'version_regex': 'version=\\S+'}, ['no capture group']),
    ({'version_query': 'data.[x'}, ['not a valid JMESPath']),
    ({'environment': {'1BAD': 'x'}}, ["'1BAD'", 'not valid variable names']),
    ({'environment': {'A-B': 'x'}}, ["'A-B'"]),
    ({'unit_directives': ['ExecStart=/bin/sh']}, ['ExecStart', 'Remove it']),
    ({'unit_directives': ['Type=forking']}, ['Type', 'the restart strategy']),
    ({'unit_directives': ['User=root']}, ['set service_user instead']),
    ({'unit_directives': ['not a directive']}, ['not "Key=value"']),
    ({'service_user': 'Root User'}, ['not a valid user']),
    ({'hardening': {'protect_everything': True}}, ['unknown hardening']),
    ({'hardening': {'protect_system': 'maybe'}}, ['protect_system must be one of']),
    ({'limit_nofile': 'many'}, ['limit_nofile must be a whole number']),
    ({'state_dirs': ['var/lib/app']}, ['absolute paths']),
    ({'environment_file': 'etc/default/app'}, ['must be an absolute path']),
    ({'check_version': 'perhaps'}, ['check_version must be true or false']),
])
def test_bad_settings_are_refused_with_what_to_do(given, words):
    with pytest.raises(HotswapError) as err:
        service_settings(given, 'app')
    for word in words:
        assert word in err.value.msg


def test_every_setting_has_a_default():
    assert set(service_settings({}, 'app')) == set(DEFAULTS)
