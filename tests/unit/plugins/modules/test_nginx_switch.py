# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The nginx_switch module end to end on a conf.d under tmp_path; systemctl and nginx -t are
answered at AnsibleModule.run_command (no nginx on the test machines)."""

from __future__ import annotations

import os
import re

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotswap.deploy.plugins.modules import nginx_switch as MODULE

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
OLD = 'server { listen 80 default_server; location / { proxy_pass http://127.0.0.1:8081; } }\n'
NEW = 'server { listen 80 default_server; location / { proxy_pass http://127.0.0.1:8082; } }\n'
REJECTED = ('nginx: [emerg] a duplicate default server for 0.0.0.0:80 in /etc/nginx/conf.d/web.conf:1\n'
            'nginx: configuration file /etc/nginx/nginx.conf test failed')


@pytest.fixture
def host(monkeypatch):
    """The commands the module runs, and the answer nginx -t gives (state['test'])."""
    state = dict(calls=[], test=(0, '', 'nginx: the configuration file /etc/nginx/nginx.conf syntax is ok'))

    def run_command(_module, argv, **_kw):
        state['calls'].append(list(argv))
        if argv[0].endswith('nginx'):
            return state['test']
        return 0, '', ''

    def get_bin_path(_module, name, required=False, opt_dirs=None):
        return '/usr/sbin/nginx' if name == 'nginx' else '/usr/bin/%s' % name
    monkeypatch.setattr(AnsibleModule, 'run_command', run_command)
    monkeypatch.setattr(AnsibleModule, 'get_bin_path', get_bin_path)
    return state


def verbs(state):
    return [c[1] for c in state['calls']]


def test_switch_with_diff_then_rerun_is_unchanged(tmp_path, run_module, host):
    conf = tmp_path / 'web.conf'
    conf.write_text(OLD)
    res = run_module(MODULE, path=str(conf), content=NEW, _ansible_diff=True)
    assert res['changed'] is True and res['config_changed'] is True and res['reloaded'] is True
    assert res['started'] is False and res['enabled'] is False and res['path'] == str(conf)
    assert res['diff'] == dict(before=OLD, after=NEW, before_header=str(conf), after_header=str(conf))
    assert conf.read_text() == NEW and sorted(os.listdir(str(tmp_path))) == ['web.conf']
    assert verbs(host) == ['is-active', 'is-enabled', '-t', 'reload']
    host['calls'][:] = []
    res = run_module(MODULE, path=str(conf), content=NEW, _ansible_diff=True)
    assert res['changed'] is False and 'diff' not in res
    assert verbs(host) == ['is-active', 'is-enabled']


def test_check_mode_writes_nothing(tmp_path, run_module, host):
    conf = tmp_path / 'web.conf'
    conf.write_text(OLD)
    res = run_module(MODULE, path=str(conf), content=NEW, _ansible_check_mode=True, _ansible_diff=True)
    assert res['changed'] is True and res['config_changed'] is True and res['reloaded'] is True
    assert res['diff']['after'] == NEW
    assert conf.read_text() == OLD and sorted(os.listdir(str(tmp_path))) == ['web.conf']
    assert verbs(host) == ['is-active', 'is-enabled']


def test_rejected_config_fails_with_nginx_output_and_the_previous_config_back(tmp_path, run_module, host):
    conf = tmp_path / 'web.conf'
    conf.write_text(OLD)
    host['test'] = (1, '', REJECTED)
    res = run_module(MODULE, path=str(conf), content=NEW)
    assert res['failed'] is True and res['rejected'] is True and res['test_output'] == REJECTED
    assert 'nginx -t rejected the configuration: nginx: [emerg] a duplicate default server' in res['msg']
    assert 'nginx was not reloaded' in res['msg'] and 'Fix the configuration' in res['msg']
    assert conf.read_text() == OLD and sorted(os.listdir(str(tmp_path))) == ['web.conf']
    assert 'reload' not in verbs(host)


def test_other_failures_are_not_rejections(tmp_path, run_module, host):
    res = run_module(MODULE, path=str(tmp_path / 'missing' / 'web.conf'), content=NEW)
    assert res['failed'] is True and res['rejected'] is False and 'test_output' not in res
    assert 'does not exist' in res['msg']


def test_empty_content_removes_the_config(tmp_path, run_module, host):
    conf = tmp_path / 'web.conf'
    conf.write_text(OLD)
    res = run_module(MODULE, path=str(conf), content='', _ansible_diff=True)
    assert res['changed'] is True and res['diff']['after'] == '' and not conf.exists()


def test_content_is_required(tmp_path, run_module, host):
    res = run_module(MODULE, path=str(tmp_path / 'web.conf'))
    assert res['failed'] is True and 'content' in res['msg']


def test_documented_options_are_the_argument_spec(argument_spec_of, doc_section):
    seen = argument_spec_of(MODULE)
    options = doc_section(MODULE, 'DOCUMENTATION')['options']
    assert sorted(options) == sorted(seen)
    for name, spec in seen.items():
        assert options[name]['type'] == spec['type'] and options[name].get('default') == spec.get('default'), name


def test_the_role_reads_only_documented_results(doc_section):
    """The blue-green action reads nginx_switch's result: every key it reads is in RETURN."""
    with open(os.path.join(REPO, 'plugins', 'action', 'blue_green_deploy.py')) as f:
        action = f.read()
    with open(os.path.join(REPO, 'plugins', 'plugin_utils', 'blue_green_flow.py')) as f:
        flow = f.read()
    assert 'hotswap.deploy.nginx_switch' in action
    read = set(re.findall(r"res(?:ult)?\.get\('(\w+)'\)", action[action.index('def _point_nginx'):action.index('def _verify')])
               + re.findall(r"result\.get\('(\w+)'\)", flow[flow.index('def rejected_msg'):flow.index('def concurrent_switch_msg')]))
    read -= {'failed', 'unreachable', 'msg'}
    assert read and read <= set(doc_section(MODULE, 'RETURN')), read
