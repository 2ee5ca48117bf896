# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""module_utils/nginx.py on a conf.d made under tmp_path; systemctl and nginx -t go to a recording
double (no nginx binary on the test machines)."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import nginx as N
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

OLD = 'upstream web { server 127.0.0.1:8081; }\n'
NEW = 'upstream web { server 127.0.0.1:8082; }\n'
REJECTED = ('nginx: [emerg] a duplicate default server for 0.0.0.0:80 in /etc/nginx/conf.d/web.conf:2\n'
            'nginx: configuration file /etc/nginx/nginx.conf test failed\n')


class Host(object):
    """systemctl and nginx as a host has them: records every argv, answers from its state."""

    def __init__(self, active=True, enabled=True, test_rc=0, test_err='', fail=None):
        self.active, self.enabled = active, enabled
        self.test_rc, self.test_err = test_rc, test_err
        self.fail = fail or {}
        self.calls = []
        self.seen_at_test = None

    def __call__(self, argv):
        self.calls.append(list(argv))
        if argv[0] == 'nginx':
            return self.test_rc, '', self.test_err or 'nginx: the configuration file syntax is ok\n'
        verb = argv[1]
        if verb in self.fail:
            return 1, '', self.fail[verb]
        if verb == 'is-active':
            return (0 if self.active else 3), '', ''
        if verb == 'is-enabled':
            return (0 if self.enabled else 1), '', ''
        if verb == 'enable':
            self.enabled = True
        if verb == 'start':
            self.active = True
        return 0, '', ''

    def verbs(self):
        return [c[1] if c[0] == 'systemctl' else ' '.join(c) for c in self.calls]


@pytest.fixture
def conf_d(tmp_path):
    d = tmp_path / 'conf.d'
    d.mkdir()
    return d


def switch(conf_d, content, host, check_mode=False, **kw):
    return N.switch(str(conf_d / 'web.conf'), content, run_command=host, check_mode=check_mode, **kw)


def listing(conf_d):
    return sorted(os.listdir(str(conf_d)))


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def test_first_switch_writes_enables_and_starts(conf_d):
    host = Host(active=False, enabled=False)
    res = switch(conf_d, NEW, host)
    assert (conf_d / 'web.conf').read_text() == NEW and mode(conf_d / 'web.conf') == 0o644
    assert listing(conf_d) == ['web.conf']
    assert host.verbs() == ['is-active', 'is-enabled', 'nginx -t', 'enable', 'start']
    assert host.calls[3] == ['systemctl', 'enable', '--quiet', 'nginx']
    assert {k: res[k] for k in ('changed', 'config_changed', 'enabled', 'reloaded', 'started')} == dict(
        changed=True, config_changed=True, enabled=True, reloaded=False, started=True)
    assert res['diff'] == dict(before='', after=NEW, before_header=res['path'], after_header=res['path'])


def test_a_changed_config_is_tested_then_reloaded(conf_d):
    (conf_d / 'web.conf').write_text(OLD)
    host = Host()
    res = switch(conf_d, NEW, host)
    assert (conf_d / 'web.conf').read_text() == NEW
    assert host.verbs() == ['is-active', 'is-enabled', 'nginx -t', 'reload']
    assert res['changed'] and res['config_changed'] and res['reloaded'] and not res['started'] and not res['enabled']
    assert res['diff']['before'] == OLD and res['diff']['after'] == NEW
    assert listing(conf_d) == ['web.conf']


def test_unchanged_config_and_running_nginx_change_nothing(conf_d):
    (conf_d / 'web.conf').write_text(NEW)
    host = Host()
    res = switch(conf_d, NEW, host)
    assert res['changed'] is False and not any(res[k] for k in ('config_changed', 'enabled', 'reloaded', 'started'))
    # Only read: no test, no reload, no file written.
    assert host.verbs() == ['is-active', 'is-enabled']
    assert listing(conf_d) == ['web.conf']


def test_unchanged_config_with_nginx_stopped_starts_it(conf_d):
    (conf_d / 'web.conf').write_text(NEW)
    host = Host(active=False)
    res = switch(conf_d, NEW, host)
    assert host.verbs() == ['is-active', 'is-enabled', 'start']
    assert res['changed'] and res['started'] and not res['config_changed']


def test_a_disabled_nginx_is_enabled_and_reloaded(conf_d):
    (conf_d / 'web.conf').write_text(NEW)
    host = Host(enabled=False)
    res = switch(conf_d, NEW, host)
    assert host.verbs() == ['is-active', 'is-enabled', 'enable', 'reload']
    assert res['changed'] and res['enabled'] and res['reloaded']


def test_a_rejected_config_puts_the_previous_back_and_reloads_nothing(conf_d):
    conf = conf_d / 'web.conf'
    conf.write_text(OLD)
    conf.chmod(0o640)
    os.utime(str(conf), (1000000000, 1000000000))
    host = Host(enabled=False, test_rc=1, test_err=REJECTED)
    with pytest.raises(N.NginxRejected) as e:
        switch(conf_d, NEW, host)
    assert conf.read_text() == OLD and mode(conf) == 0o640 and os.stat(str(conf)).st_mtime == 1000000000
    assert listing(conf_d) == ['web.conf']
    assert host.verbs() == ['is-active', 'is-enabled', 'nginx -t']
    assert e.value.details == dict(rejected=True, test_output=REJECTED.strip())
    msg = e.value.msg
    assert msg.startswith('switching nginx to the new config %s: nginx -t rejected the configuration: ' % conf)
    assert 'a duplicate default server for 0.0.0.0:80' in msg and 'test failed' not in msg
    assert 'nginx was not reloaded and the previous %s is back in place' % conf in msg
    assert msg.endswith('Fix the configuration nginx names and rerun.')


def test_a_rejected_first_config_is_removed_again(conf_d):
    host = Host(active=False, test_rc=1, test_err=REJECTED)
    with pytest.raises(N.NginxRejected) as e:
        switch(conf_d, NEW, host)
    assert listing(conf_d) == []
    assert 'start' not in host.verbs()
    assert 'web.conf was removed again (there was none before)' in e.value.msg


def test_empty_content_removes_the_config_and_reloads(conf_d):
    (conf_d / 'web.conf').write_text(OLD)
    host = Host()
    res = switch(conf_d, '', host)
    assert listing(conf_d) == []
    # Enabling is not asked about when no config stays.
    assert host.verbs() == ['is-active', 'nginx -t', 'reload']
    assert res['config_changed'] and res['reloaded'] and not res['enabled']
    assert res['diff']['before'] == OLD and res['diff']['after'] == ''


def test_empty_content_leaves_a_stopped_nginx_stopped(conf_d):
    (conf_d / 'web.conf').write_text(OLD)
    host = Host(active=False)
    res = switch(conf_d, '', host)
    assert listing(conf_d) == [] and host.verbs() == ['is-active', 'nginx -t']
    assert res['changed'] and not res['started'] and not res['reloaded']


def test_empty_content_without_a_config_changes_nothing(conf_d):
    host = Host(active=False)
    res = switch(conf_d, '', host)
    assert res['changed'] is False and host.verbs() == ['is-active']


def test_a_removal_nginx_rejects_puts_the_config_back(conf_d):
    (conf_d / 'web.conf').write_text(OLD)
    host = Host(test_rc=1, test_err='nginx: [emerg] host not found in upstream "web" in /etc/nginx/sites/x:3\n')
    with pytest.raises(N.NginxRejected) as e:
        switch(conf_d, '', host)
    assert (conf_d / 'web.conf').read_text() == OLD and listing(conf_d) == ['web.conf']
    assert 'reload' not in host.verbs()
    assert e.value.msg.startswith('removing the nginx config %s: ' % (conf_d / 'web.conf'))


@pytest.mark.parametrize('existing,content,active,enabled,expected', [
    (None, NEW, False, False, dict(changed=True, config_changed=True, enabled=True, reloaded=False, started=True)),
    (OLD, NEW, True, True, dict(changed=True, config_changed=True, enabled=False, reloaded=True, started=False)),
    (NEW, NEW, True, True, dict(changed=False, config_changed=False, enabled=False, reloaded=False, started=False)),
    (NEW, NEW, False, True, dict(changed=True, config_changed=False, enabled=False, reloaded=False, started=True)),
    (OLD, '', True, True, dict(changed=True, config_changed=True, enabled=False, reloaded=True, started=False)),
    (None, '', False, False, dict(changed=False, config_changed=False, enabled=False, reloaded=False, started=False)),
])
def test_check_mode_reports_and_writes_nothing(conf_d, existing, content, active, enabled, expected):
    if existing is not None:
        (conf_d / 'web.conf').write_text(existing)
    before = listing(conf_d)
    host = Host(active=active, enabled=enabled)
    res = switch(conf_d, content, host, check_mode=True)
    assert {k: res[k] for k in expected} == expected
    assert listing(conf_d) == before
    if existing is not None:
        assert (conf_d / 'web.conf').read_text() == existing
    # Only questions: no nginx -t, nothing enabled, reloaded or started.
    assert set(host.verbs()) <= {'is-active', 'is-enabled'}


def test_check_mode_without_the_config_directory(tmp_path):
    host = Host(active=False, enabled=False)
    res = N.switch(str(tmp_path / 'missing' / 'web.conf'), NEW, run_command=host, check_mode=True)
    assert res['changed'] and res['config_changed'] and res['started']
    assert not (tmp_path / 'missing').exists()


def test_a_copy_left_by_a_run_that_died_is_replaced_and_removed(conf_d):
    (conf_d / 'web.conf').write_text(OLD)
    (conf_d / '.hotswap-old.web.conf').write_text('stale')
    switch(conf_d, NEW, Host())
    assert listing(conf_d) == ['web.conf']


def test_temp_files_are_hidden_and_not_conf(conf_d):
    seen = []

    def move(src, dst):
        seen.append((os.path.basename(src), os.path.dirname(src)))
        os.replace(src, dst)
    switch(conf_d, NEW, Host(), move=move)
    name, directory = seen[0]
    assert name.startswith('.hotswap-new.') and not name.endswith('.conf') and directory == str(conf_d)


def test_a_failed_write_leaves_the_previous_config_and_no_temp_file(conf_d):
    (conf_d / 'web.conf').write_text(OLD)
    host = Host()

    def move(src, dst):
        raise OSError(28, 'No space left on device')
    with pytest.raises(HotswapError) as e:
        switch(conf_d, NEW, host, move=move)
    assert not isinstance(e.value, N.NginxRejected)
    assert (conf_d / 'web.conf').read_text() == OLD and listing(conf_d) == ['web.conf']
    assert 'No space left on device' in e.value.msg and 'previous config is unchanged' in e.value.msg
    assert 'nginx -t' not in host.verbs()


def test_missing_nginx_binary_writes_nothing(conf_d):
    (conf_d / 'web.conf').write_text(OLD)
    with pytest.raises(HotswapError) as e:
        switch(conf_d, NEW, Host(), nginx=None)
    assert 'nginx is not installed' in e.value.msg and e.value.details == {}
    assert (conf_d / 'web.conf').read_text() == OLD and listing(conf_d) == ['web.conf']


def test_missing_config_directory_is_refused(tmp_path):
    with pytest.raises(HotswapError) as e:
        N.switch(str(tmp_path / 'missing' / 'web.conf'), NEW, run_command=Host())
    assert 'does not exist' in e.value.msg and 'Install nginx' in e.value.msg


def test_relative_path_is_refused():
    with pytest.raises(HotswapError) as e:
        N.switch('conf.d/web.conf', NEW, run_command=Host())
    assert 'relative' in e.value.msg


def test_a_failed_reload_names_the_command_and_its_output(conf_d):
    (conf_d / 'web.conf').write_text(OLD)
    host = Host(fail={'reload': 'Job for nginx.service failed.'})
    with pytest.raises(HotswapError) as e:
        switch(conf_d, NEW, host)
    assert not isinstance(e.value, N.NginxRejected)
    assert 'systemctl reload nginx failed (rc 1): Job for nginx.service failed.' in e.value.msg
    assert 'journalctl -u nginx' in e.value.msg
    assert (conf_d / 'web.conf').read_text() == NEW


def test_another_service_name(conf_d):
    host = Host(active=True, enabled=True)
    switch(conf_d, NEW, host, service='nginx-edge', systemctl='/bin/systemctl', nginx='/usr/sbin/nginx')
    assert host.calls[0] == ['/bin/systemctl', 'is-active', '--quiet', 'nginx-edge']
    assert host.calls[-1] == ['/bin/systemctl', 'reload', 'nginx-edge']


def test_a_config_that_is_a_directory_is_refused(conf_d):
    (conf_d / 'web.conf').mkdir()
    with pytest.raises(HotswapError) as e:
        switch(conf_d, NEW, Host())
    assert e.value.msg.startswith('reading the nginx config')


@pytest.mark.parametrize('output,cause', [
    (REJECTED, 'nginx: [emerg] a duplicate default server for 0.0.0.0:80 in /etc/nginx/conf.d/web.conf:2'),
    ('nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\nnginx: [warn] x\n'
     'nginx: configuration file /etc/nginx/nginx.conf test failed', 'nginx: [warn] x'),
    ('', 'no message'),
])
def test_rejection_cause_keeps_the_lines_that_say_why(output, cause):
    assert N.rejection_cause(output) == cause


def test_content_is_compared_byte_for_byte(conf_d):
    (conf_d / 'web.conf').write_text(NEW.rstrip('\n'))
    res = switch(conf_d, NEW, Host(), check_mode=True)
    assert res['config_changed'] is True
    (conf_d / 'web.conf').write_bytes('# café\n'.encode('utf-8'))
    assert switch(conf_d, '# café\n', Host(), check_mode=True)['changed'] is False
