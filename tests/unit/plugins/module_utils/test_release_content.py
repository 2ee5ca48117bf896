# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Unit tests for module_utils/release_content.py and the staging of a release with files (no hosts)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import struct

import pytest

from ansible.module_utils.basic import AnsibleModule
from core_compat import patch_module_args

from ansible_collections.hotswap.deploy.plugins.module_utils import release_content as rc
from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import release_content, upload
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import Ledger
from ansible_collections.hotswap.deploy.plugins.module_utils.release import switch_current

SHA = 'ab' * 32
HOST = {'os': 'linux', 'arch': 'x86_64'}


def elf():
    """A minimal linux/x86_64 ELF header: enough for the executable check."""
    ident = b'\x7fELF' + bytes([2, 1, 1, 0]) + b'\0' * 8
    return ident + struct.pack('<HHIQQQIHHHHHH', 2, 62, 1, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0) + b'\0' * 64


def manifest(files=None, env=None, secret=None, binary='app'):
    return rc.content_manifest(binary, files, env, secret)


# -- the release id --------------------------------------------------------------------------

def test_binary_alone_keeps_the_old_id():
    assert rc.make_release_id('1.0', SHA, manifest()) == '1.0-' + SHA[:12]


def test_upper_case_checksum_gives_the_same_id():
    assert rc.make_release_id('1.0', SHA.upper(), manifest([{'dest': 'a', 'content': 'x'}])) == \
        rc.make_release_id('1.0', SHA, manifest([{'dest': 'a', 'content': 'x'}]))


@pytest.mark.parametrize('change', [
    dict(files=[{'dest': 'c.yml', 'content': 'b'}]),
    dict(files=[{'dest': 'd.yml', 'content': 'a'}]),
    dict(files=[{'dest': 'c.yml', 'content': 'a', 'mode': '0640'}]),
    dict(files=[{'dest': 'c.yml', 'content': 'a', 'owner': 'app'}]),
    dict(files=[{'dest': 'c.yml', 'content': 'a', 'group': 'app'}]),
    dict(files=[{'dest': 'c.yml', 'content': 'a'}], env={'A': '1'}),
    dict(files=[{'dest': 'c.yml', 'content': 'a'}], secret={'TOKEN': 's'}),
])
def test_every_part_of_the_content_changes_the_id(change):
    base = rc.make_release_id('1.0', SHA, manifest([{'dest': 'c.yml', 'content': 'a'}]))
    other = rc.make_release_id('1.0', SHA, manifest(change['files'], change.get('env'), change.get('secret')))
    assert other != base and other.startswith('1.0-') and len(other) == len(base)


def test_file_order_does_not_change_the_id():
    a = [{'dest': 'a', 'content': '1'}, {'dest': 'b', 'content': '2'}]
    assert rc.make_release_id('1', SHA, manifest(a)) == rc.make_release_id('1', SHA, manifest(a[::-1]))


def test_src_read_as_base64_gives_the_id_of_the_same_text():
    text = manifest([{'dest': 'a', 'content': 'héllo\n'}])
    b64 = manifest([{'dest': 'a', 'content': base64.b64encode('héllo\n'.encode()).decode(),
                     'content_encoding': 'base64'}])
    assert text == b64


def test_secrets_enter_the_manifest_only_as_a_slow_digest():
    m = manifest([{'dest': 'token', 'content': 'hunter2', 'secret': True}], None, {'DB_PASSWORD': 'hunter2'})
    dumped = json.dumps(m)
    assert 'hunter2' not in dumped
    assert hashlib.sha256(b'hunter2').hexdigest() not in dumped
    assert m['files'][0]['digest'].startswith('pbkdf2-sha256:') and m['files'][0]['mode'] == '0600'
    assert m['environment']['digest'].startswith('pbkdf2-sha256:')
    assert m['environment']['names'] == ['DB_PASSWORD']


def test_release_id_must_name_its_content():
    m = manifest([{'dest': 'a', 'content': '1'}])
    rc.check_release_id_matches(rc.make_release_id('1', SHA, m), SHA, m)
    with pytest.raises(HotswapError, match='must end in'):
        rc.check_release_id_matches('1-' + SHA[:12], SHA, m)


# -- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize('files, message', [
    ([{'dest': '../etc/passwd', 'content': 'x'}], 'relative path inside the release'),
    ([{'dest': '/etc/passwd', 'content': 'x'}], 'relative path inside the release'),
    ([{'dest': 'a/../../b', 'content': 'x'}], 'relative path inside the release'),
    ([{'dest': 'app', 'content': 'x'}], 'its binary app'),
    ([{'dest': '.hotswap-environment', 'content': 'x'}], 'environment file'),
    ([{'dest': 'a', 'content': 'x'}, {'dest': './a', 'content': 'y'}], 'two entries write a'),
    ([{'dest': 'a', 'content': 'x'}, {'dest': 'a/b', 'content': 'y'}], 'both a file and a directory'),
    ([{'dest': 'a'}], 'needs content'),
    ([{'dest': 'a', 'content': 'x', 'mode': 'u=rw'}], 'not an octal mode'),
    ([{'dest': 'a', 'content': '%%%', 'content_encoding': 'base64'}], 'not valid base64'),
    ([{'content': 'x'}], 'has no dest'),
    ([{'dest': 'a', 'content': 'x', 'bogus': 1}], 'unknown key'),
    ('a', 'must be a list'),
])
def test_bad_files_are_refused(files, message):
    with pytest.raises(HotswapError, match=message):
        manifest(files)


@pytest.mark.parametrize('env, secret, message', [
    ({'1BAD': 'x'}, None, 'not valid variable names'),
    ({'A-B': 'x'}, None, 'not valid variable names'),
    ({'A': 'two\nlines'}, None, 'not one line'),
    (None, {'TOKEN': 'two\nlines'}, 'not one line'),
    ({'A': '1'}, {'A': '2'}, 'in both environment and environment_secret'),
    ('A=1', None, 'must be a dict'),
])
def test_bad_environment_is_refused(env, secret, message):
    with pytest.raises(HotswapError, match=message) as e:
        manifest(None, env, secret)
    assert 'two\nlines' not in e.value.msg


def test_environment_file_quotes_what_systemd_would_expand():
    data = rc.render_environment({'A': 'x "y" $HOME \\ `id`', 'B': ''}, {}).decode()
    assert 'A="x \\"y\\" \\$HOME \\\\ \\`id\\`"' in data and 'B=""' in data


# -- staging a release with files --------------------------------------------------------------

@pytest.fixture
def module():
    with patch_module_args({}):
        return AnsibleModule(argument_spec={}, supports_check_mode=True)


@pytest.fixture
def artifact(tmp_path):
    path = tmp_path / 'app'
    path.write_bytes(elf())
    return str(path), hashlib.sha256(elf()).hexdigest()


def stage(module, base, src, sha, files=None, env=None, secret=None, version='1.0'):
    content = release_content('app', files, env, secret)
    rid = rc.make_release_id(version, sha, content.manifest)
    return rid, upload(module, str(base), rid, 'app', 'sha256:' + sha, src=src, version=version, host=HOST,
                       content=content)


def test_config_only_change_is_a_new_release_and_the_old_one_is_untouched(module, tmp_path, artifact):
    base = tmp_path / 'base'
    src, sha = artifact
    rid1, r1 = stage(module, base, src, sha, [{'dest': 'conf/app.conf', 'content': 'greeting = one\n'}],
                     {'MESSAGE': 'hi'}, {'TOKEN': 'hunter2'})
    assert r1['changed'] and r1['transferred']
    switch_current(str(base), rid1)
    before = (base / 'releases' / rid1 / 'conf/app.conf').read_bytes()
    rid2, r2 = stage(module, base, None, sha, [{'dest': 'conf/app.conf', 'content': 'greeting = two\n'}],
                     {'MESSAGE': 'hi'}, {'TOKEN': 'hunter2'})
    assert rid2 != rid1
    # the binary came from the other release on the host: copied there, not transferred, its own inode
    assert r2['changed'] and not r2['transferred'] and r2['copied_from'] == rid1
    assert (base / 'releases' / rid1 / 'conf/app.conf').read_bytes() == before
    assert (base / 'releases' / rid2 / 'conf/app.conf').read_text() == 'greeting = two\n'
    assert os.stat(base / 'releases' / rid1 / 'app').st_ino != os.stat(base / 'releases' / rid2 / 'app').st_ino
    env = base / 'releases' / rid2 / rc.ENV_FILE
    assert stat.S_IMODE(env.stat().st_mode) == 0o600 and 'TOKEN="hunter2"' in env.read_text()
    ledger = Ledger.load(str(base)).release(rid2)
    assert [f['dest'] for f in ledger['files']] == ['conf/app.conf']
    assert ledger['environment']['names'] == ['MESSAGE', 'TOKEN']
    assert 'hunter2' not in json.dumps(Ledger.load(str(base)).to_json())
    assert not [n for n in os.listdir(base / 'releases') if n.startswith('.')]


def test_rerun_of_the_same_content_changes_nothing(module, tmp_path, artifact):
    base = tmp_path / 'base'
    src, sha = artifact
    files = [{'dest': 'a.conf', 'content': 'x', 'mode': '0640'}]
    stage(module, base, src, sha, files)
    rid, again = stage(module, base, None, sha, files)
    assert not again['changed'] and again['staged']


def test_an_existing_release_is_never_written_into(module, tmp_path, artifact):
    base = tmp_path / 'base'
    src, sha = artifact
    files = [{'dest': 'a.conf', 'content': 'x'}]
    rid = stage(module, base, src, sha, files)[0]
    switch_current(str(base), rid)
    (base / 'releases' / rid / 'a.conf').write_text('tampered')
    with pytest.raises(HotswapError, match='live release and differs'):
        stage(module, base, src, sha, files)
    assert (base / 'releases' / rid / 'a.conf').read_text() == 'tampered'


def test_a_failed_staging_leaves_no_release_dir(module, tmp_path, artifact):
    base = tmp_path / 'base'
    src, sha = artifact
    with pytest.raises(HotswapError, match='does not exist on this host'):
        stage(module, base, src, sha, [{'dest': 'a.conf', 'content': 'x', 'owner': 'no-such-user-hs'}])
    assert not (base / 'releases').exists() or not os.listdir(base / 'releases')


def test_wrong_artifact_bytes_stage_nothing(module, tmp_path, artifact):
    base = tmp_path / 'base'
    src, sha = artifact
    with pytest.raises(HotswapError, match='sha256'):
        stage(module, base, src, 'cd' * 32, [{'dest': 'a.conf', 'content': 'x'}])
    assert not (base / 'releases').exists() or not os.listdir(base / 'releases')


def test_download_sends_the_artifact_server_credentials(module, tmp_path, artifact):
    """artifact_url behind basic auth and a token header: both sent, the release staged, nothing shown."""
    import base64 as b64
    import http.server
    import threading
    from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import authenticated_opener
    src, sha = artifact
    with open(src, 'rb') as f:
        body = f.read()
    wanted = {'Authorization': 'Basic ' + b64.b64encode(b'ci:pw-1').decode(), 'X-Token': 'tok-2'}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = all(self.headers.get(k) == v for k, v in wanted.items())
            self.send_response(200 if ok else 401)
            self.end_headers()
            if ok:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = 'http://127.0.0.1:%d/app' % server.server_address[1]
    content = release_content('app', [{'dest': 'a.conf', 'content': 'x'}])
    rid = rc.make_release_id('1', sha, content.manifest)
    try:
        with pytest.raises(HotswapError, match='401') as e:
            upload(module, str(tmp_path / 'b1'), rid, 'app', 'sha256:' + sha, url=url, host=HOST, content=content,
                   opener=authenticated_opener({'headers': {'X-Token': 'tok-2'}}))
        assert 'tok-2' not in e.value.msg
        r = upload(module, str(tmp_path / 'b2'), rid, 'app', 'sha256:' + sha, url=url, host=HOST, content=content,
                   opener=authenticated_opener({'headers': {'X-Token': 'tok-2'}, 'username': 'ci', 'password': 'pw-1'}))
        assert r['staged'] and r['transferred'] and 'pw-1' not in json.dumps(r)
    finally:
        server.shutdown()


def test_prune_removes_the_staging_dir_a_killed_run_left(module, tmp_path, artifact):
    from ansible_collections.hotswap.deploy.plugins.module_utils.ledger import prune
    base = tmp_path / 'base'
    src, sha = artifact
    stage(module, base, src, sha, [{'dest': 'a.conf', 'content': 'x'}])
    old = base / 'releases' / '.staging-1.0-abc-x1y2'
    (old / 'conf').mkdir(parents=True)
    (old / 'conf' / 'a.conf').write_text('half')
    young = base / 'releases' / '.staging-1.0-abc-z3w4'
    young.mkdir()
    os.utime(old, (1, 1))
    result = prune(str(base), keep=5)
    assert result['cleaned'] == [str(old)] and not old.exists() and young.exists()
