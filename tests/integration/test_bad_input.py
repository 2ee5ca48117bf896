# -*- coding: utf-8 -*-
"""Bad input: a clear error that says what was wrong, and nothing changed on the host."""

from __future__ import annotations

import json
import os
import time

import pytest
import yaml

import faultlib
import testlib

APP = 'badinput'
PORT = 9500
BASE = '/opt/' + APP


@pytest.fixture(scope='module')
def deployed(fleet, tmp_path_factory):
    """v1 of one app deployed on every host; each test checks it is left exactly as it was."""
    tmp = tmp_path_factory.mktemp('badinput')
    v1 = testlib.build_app('1.0.0')
    r = testlib.playbook(fleet.inventory, 'deploy', dict(testlib.ONE_BATCH, app=APP, version='1.0.0', artifact=v1,
                                                         checksum=testlib.sha256(v1), listen_port=PORT),
                         tmp_path=tmp)
    assert r.rc == 0, r
    return fleet


@pytest.fixture
def unchanged(deployed):
    """Snapshot every host before the test and assert nothing moved after it."""
    before = {h['name']: testlib.tree_state(h, BASE, APP) for h in deployed}
    yield deployed
    for h in deployed:
        assert testlib.tree_state(h, BASE, APP) == before[h['name']], 'host %s changed' % h['name']
        assert testlib.served_version(h, PORT) == '1.0.0'


def deploy(fleet, tmp_path, limit=None, **overrides):
    v2 = testlib.build_app('2.0.0')
    extra = dict(testlib.ONE_BATCH, app=APP, version='2.0.0', artifact=v2, checksum=testlib.sha256(v2), listen_port=PORT)
    extra.update(overrides)
    return testlib.playbook(fleet.inventory, 'deploy', extra, tmp_path=tmp_path, limit=limit)


def assert_refused(r, *words):
    assert r.rc != 0, r
    text = r.out.lower()
    for w in words:
        assert w.lower() in text, ('%r not in output' % w, r)
    case = os.environ.get('PYTEST_CURRENT_TEST', '').split('::')[-1].split(' ')[0]
    faultlib.record('bad_input', case.replace('test_', '', 1).replace('_', ' '), 'bad input to deploy.yml',
                    faultlib.what_the_user_saw(r), 'nothing: tree, ledger, units and the served version compared before '
                    'and after', converged=None)


def test_wrong_checksum(unchanged, tmp_path):
    r = deploy(unchanged, tmp_path, checksum='sha256:' + '0' * 64)
    assert_refused(r, 'checksum', '0' * 64)


def test_malformed_checksum(unchanged, tmp_path):
    r = deploy(unchanged, tmp_path, checksum='md5:abc')
    assert_refused(r, 'sha256:')


def test_missing_artifact(unchanged, tmp_path):
    missing = str(tmp_path / 'no-such-binary')
    r = deploy(unchanged, tmp_path, artifact=missing)
    assert_refused(r, missing)


@pytest.mark.parametrize('goos,goarch,word', [('windows', 'amd64', 'windows'), ('linux', 'arm64', 'aarch64')])
def test_artifact_for_another_platform(unchanged, tmp_path, goos, goarch, word):
    other = testlib.build_app('2.0.0', goos=goos, goarch=goarch)
    r = deploy(unchanged, tmp_path, artifact=other, checksum=testlib.sha256(other))
    assert_refused(r, word, 'x86_64')


def test_not_an_executable(unchanged, tmp_path):
    text = tmp_path / 'README.txt'
    text.write_text('not a program\n' * 100)
    r = deploy(unchanged, tmp_path, artifact=str(text), checksum=testlib.sha256(str(text)))
    assert_refused(r, 'not an executable')


@pytest.mark.parametrize('release_id', ['', 'a/b', '..', '../../etc'])
@pytest.mark.parametrize('module', ['hotswap.deploy.release_activate', 'hotswap.deploy.binary_upload'])
def test_bad_release_id(unchanged, release_id, module):
    args = dict(base_dir=BASE, release_id=release_id)
    if module.endswith('binary_upload'):
        args.update(name=APP, checksum='sha256:' + 'a' * 64)
    r = testlib.adhoc(unchanged.inventory, 'all', module, args)
    assert_refused(r, 'release_id')


def test_bad_version_makes_bad_release_id(unchanged, tmp_path):
    r = deploy(unchanged, tmp_path, version='../../etc')
    assert_refused(r, 'release_id')


def test_relative_base_dir(unchanged, tmp_path):
    r = deploy(unchanged, tmp_path, base_dir='opt/' + APP)
    assert_refused(r, 'absolute')


def test_current_is_a_real_directory(deployed, tmp_path):
    app = 'realdir'
    host = deployed.hosts[0]
    testlib.host_sh(host, 'mkdir -p /opt/%s/current && echo keep > /opt/%s/current/data' % (app, app))
    before = testlib.tree_state(host, '/opt/' + app, app)
    v1 = testlib.build_app('1.0.0')
    r = testlib.playbook(deployed.inventory, 'deploy', dict(testlib.ONE_BATCH, app=app, version='1.0.0', artifact=v1,
                                                            checksum=testlib.sha256(v1), listen_port=PORT + 1),
                         limit=host['name'], tmp_path=tmp_path)
    assert_refused(r, 'current', 'directory')
    # The directory is still there, with its data: never deleted to make room for a link.
    assert testlib.host_sh(host, 'cat /opt/%s/current/data' % app).strip() == 'keep'
    after = testlib.tree_state(host, '/opt/' + app, app)
    assert '/opt/%s/current d' % app in after
    # Refused before anything was staged or installed; only the lock's own dir may appear.
    assert [ln for ln in after.splitlines() if '.hotswap' not in ln] == \
        [ln for ln in before.splitlines() if '.hotswap' not in ln], after


def test_unknown_probe_type(unchanged):
    r = testlib.adhoc(unchanged.inventory, 'all', 'hotswap.deploy.health_check', dict(grpc='127.0.0.1:%d' % PORT))
    assert_refused(r, 'grpc')


def test_health_url_not_http(unchanged):
    r = testlib.adhoc(unchanged.inventory, 'all', 'hotswap.deploy.health_check', dict(url='ftp://127.0.0.1/x'))
    assert_refused(r, 'http')


def test_keep_below_one(unchanged):
    r = testlib.adhoc(unchanged.inventory, 'all', 'hotswap.deploy.release_prune', dict(base_dir=BASE, keep=0))
    assert_refused(r, 'keep')


def test_artifact_url_unreachable(unchanged, tmp_path):
    v2 = testlib.build_app('2.0.0')
    url = 'http://127.0.0.1:9/hotswap-demo'
    r = deploy(unchanged, tmp_path, artifact='', artifact_url=url, checksum=testlib.sha256(v2))
    assert_refused(r, url)


def test_missing_extra_vars(unchanged, tmp_path):
    r = testlib.playbook(unchanged.inventory, 'deploy', dict(app=APP), tmp_path=tmp_path)
    assert_refused(r, 'version', 'checksum')


@pytest.mark.parametrize('bad,words', [
    (dict(checksum=''), ['needs extra vars', 'checksum']),
    (dict(canary_bake_time='abc'), ['canary_bake_time', 'convert to int']),
    (dict(canary_abort='never'), ['canary_abort', 'batch, rollout']),
    (dict(unit_directives=['Type=forking']), ['Type', 'the restart strategy']),
], ids=['extra-vars', 'canary-option-type', 'canary-option-choice', 'service-settings'])
def test_limit_still_checks_the_inputs_first(unchanged, tmp_path, bad, words):
    """--limit leaves localhost, and so deploy.yml's first play, out: the rollout play checks the inputs once before
    its first batch changes anything, and a failed check stops every host of the batch."""
    r = deploy(unchanged, tmp_path, limit=','.join(h['name'] for h in unchanged), **bad)
    assert_refused(r, *words)
    assert 'PLAY [Check the deploy inputs before any host is touched]' in r.out and 'skipping: no hosts matched' in r.out, r
    assert 'Deploy the release' not in r.out, r


@pytest.mark.parametrize('bad,words', [
    (dict(checksum=''), ['needs extra vars', 'checksum']),
    (dict(unit_directives=['Type=forking']), ['Type', 'the restart strategy']),
], ids=['extra-vars', 'service-settings'])
def test_limit_still_checks_the_inputs_first_blue_green(unchanged, tmp_path, bad, words):
    """The blue-green play runs the same check once before its first batch when --limit left the first play out."""
    r = deploy(unchanged, tmp_path, limit=','.join(h['name'] for h in unchanged), rollout='blue_green', **bad)
    assert_refused(r, *words)
    assert 'PLAY [Check the deploy inputs before any host is touched]' in r.out and 'skipping: no hosts matched' in r.out, r
    assert 'PLAY [Deploy a service binary with hotswap.deploy, blue-green]' in r.out, r
    assert 'TASK [Roll out blue-green]' not in r.out, r


def test_artifact_and_url_both_given(unchanged, tmp_path):
    r = deploy(unchanged, tmp_path, artifact_url='http://127.0.0.1:9/x')
    assert_refused(r, 'exactly one')


def playbook_without_host_pattern(inventory, playbook_name, extra, tmp_path):
    """A collection playbook with these extra vars only: no deploy_hosts/rollback_hosts (testlib.playbook adds one)."""
    vars_file = os.path.join(str(tmp_path), 'no-pattern-%d.json' % time.monotonic_ns())
    with open(vars_file, 'w') as f:
        json.dump(extra, f)
    return testlib.run([os.path.join(testlib.VENV_BIN, 'ansible-playbook'), '-i', inventory, '-c', 'ssh',
                        'hotswap.deploy.%s' % playbook_name, '-e', '@' + vars_file])


def v1_vars():
    v1 = testlib.build_app('1.0.0')
    return dict(testlib.ONE_BATCH, app=APP, version='1.0.0', artifact=v1, checksum=testlib.sha256(v1), listen_port=PORT,
                service_args=testlib.demo_service_args())


def test_deploy_never_falls_back_to_all_hosts(unchanged, tmp_path):
    """No deploy_hosts and no inventory group named after the app: refused on the controller."""
    r = playbook_without_host_pattern(unchanged.inventory, 'deploy', v1_vars(), tmp_path)
    assert_refused(r, "an inventory group named '%s'" % APP, 'The inventory has no group %s' % APP,
                   'Nothing was changed')
    assert set(r.recap) == {'localhost'}, r


def test_deploy_host_pattern_matching_no_host(unchanged, tmp_path):
    r = testlib.playbook(unchanged.inventory, 'deploy', dict(v1_vars(), deploy_hosts='nosuchgroup'), tmp_path=tmp_path)
    assert_refused(r, 'The pattern nosuchgroup matches no host of the inventory', 'Nothing was changed')
    assert set(r.recap) == {'localhost'}, r


def test_deploy_defaults_to_the_group_named_after_the_app(unchanged, tmp_path):
    """Without deploy_hosts, deploy.yml goes to the inventory group named after the app, and only to it."""
    with open(unchanged.inventory) as f:
        inv = yaml.safe_load(f)
    first = unchanged.hosts[0]['name']
    inv['all']['children'][APP] = {'hosts': {first: None}}
    inventory = tmp_path / 'app-group.yml'
    inventory.write_text(yaml.safe_dump(inv, default_flow_style=False))
    # v1 again, as the fixture deployed it: the release is live, nothing changes.
    r = playbook_without_host_pattern(str(inventory), 'deploy', v1_vars(), tmp_path)
    assert r.rc == 0, r
    assert set(r.hosts_recap) == {first}, r
    assert r.changed() == 0, r


def test_rollback_never_falls_back_to_all_hosts(unchanged, tmp_path):
    r = playbook_without_host_pattern(unchanged.inventory, 'rollback', dict(app=APP, listen_port=PORT), tmp_path)
    assert_refused(r, 'or an inventory group named after the app', 'The inventory has no group %s' % APP,
                   'Nothing was changed')
    assert set(r.recap) == {'localhost'}, r


def test_rollback_without_app(unchanged, tmp_path):
    r = testlib.playbook(unchanged.inventory, 'rollback', dict(listen_port=PORT), tmp_path=tmp_path)
    assert_refused(r, 'rollback.yml needs -e app=<app>', 'Nothing was changed')
    assert set(r.recap) == {'localhost'}, r


def test_demo_binary_exists_for_os_checks():
    # Guard for the platform tests above: the cross builds really are what they claim.
    exe = testlib.build_app('2.0.0', goos='windows', goarch='amd64')
    with open(exe, 'rb') as f:
        assert f.read(2) == b'MZ'
    assert os.path.getsize(exe) > 100000


@pytest.mark.parametrize('settings,words', [
    (dict(version_query='data.version', version_regex='version="([^"]+)"'), ['version_query and version_regex']),
    (dict(version_regex='version=\\S+'), ['no capture group']),
    (dict(version_query='data.[version'), ['not a valid JMESPath expression']),
    ({'environment': {'MY-VAR': 'x'}}, ["'MY-VAR'", 'not valid variable names']),
    (dict(unit_directives=['ExecStart=/bin/sh -c true']), ['ExecStart', 'Remove it']),
    (dict(unit_directives=['Type=forking']), ['Type', 'the restart strategy']),
], ids=['query-and-regex', 'regex-without-group', 'bad-jmespath', 'bad-env-name', 'execstart', 'type'])
def test_bad_service_settings(unchanged, tmp_path, settings, words):
    r = deploy(unchanged, tmp_path, **settings)
    assert_refused(r, *words)
    # Refused on the controller, in the play that checks the inputs: no host was contacted.
    assert not r.hosts_recap, r


def test_missing_service_user_without_create_user(unchanged, tmp_path):
    r = deploy(unchanged, tmp_path, service_user='nosuchuser', create_user=False)
    assert_refused(r, "service user 'nosuchuser' does not exist", 'create_user', 'Nothing was changed')
    for host in unchanged:
        assert testlib.host_sh(host, 'getent passwd nosuchuser || echo absent').strip() == 'absent'


@pytest.mark.parametrize('files,words', [
    ([{'dest': '../escape.conf', 'content': 'x'}], ['../escape.conf', 'relative path inside the release']),
    ([{'dest': APP, 'content': 'x'}], ['its binary %s' % APP]),
    ([{'dest': 'a.conf', 'content': 'x'}, {'dest': './a.conf', 'content': 'y'}], ['two entries write a.conf']),
], ids=['escapes', 'binary-name', 'duplicate'])
def test_bad_release_files(unchanged, tmp_path, files, words):
    r = deploy(unchanged, tmp_path, release_files=files)
    assert_refused(r, *words)


def test_bad_environment_secret_name(unchanged, tmp_path):
    r = deploy(unchanged, tmp_path, environment_secret={'BAD-NAME': 'hs-not-shown-1234'})
    assert_refused(r, "'BAD-NAME'", 'not valid variable names')
    assert 'hs-not-shown-1234' not in r.out


def archive_of(tmp_path, name, extra_members, with_binary=True):
    v2 = testlib.build_app('2.0.0')
    with open(v2, 'rb') as f:
        members = [(APP, f.read())] if with_binary else []
    members += [('LICENSE', b'MIT\n')] + extra_members
    return testlib.make_archive(str(tmp_path / name), members)


@pytest.mark.parametrize('name,members,with_binary,words', [
    ('dotdot.tar.gz', [('../evil', b'x')], True, ["'..'"]),
    ('absolute.tar.gz', [('/etc/evil', b'x')], True, ['absolute']),
    ('link.tar.gz', [('etc', 'symlink', '/etc')], True, ["'etc' is a symlink to '/etc'"]),
    ('nobinary.tar.gz', [('README.md', b'x')], False, ['LICENSE', APP]),
    ('dotdot.zip', [('../evil', b'x')], True, ["'..'"]),
], ids=['dotdot', 'absolute', 'symlink-to-etc', 'no-binary', 'zip-dotdot'])
def test_bad_archive_is_refused_before_anything_is_written(unchanged, tmp_path, name, members, with_binary, words):
    archive = archive_of(tmp_path, name, members, with_binary)
    r = deploy(unchanged, tmp_path, artifact=archive, checksum=testlib.sha256(archive))
    assert_refused(r, *words)


def test_archive_bigger_than_max_size(unchanged, tmp_path):
    archive = archive_of(tmp_path, 'big.tar.gz', [])
    r = deploy(unchanged, tmp_path, artifact=archive, checksum=testlib.sha256(archive),
               deploy_host_artifact_max_size=1000)
    assert_refused(r, 'max_size')
