# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Unit tests for the binary_upload action plugin: the probe protocol, with the host faked.

controller, make_action, write_artifact and linux_elf come from conftest.py."""

from __future__ import annotations

import pytest

MODULE = 'hotswap.deploy.binary_upload'
SHELL = 'sh'
TMPDIR = '/home/u/.ansible/tmp/ansible-tmp-1'
LINUX_AMD64 = {'os': 'linux', 'arch': 'x86_64'}
LINUX_ARM64 = {'os': 'linux', 'arch': 'aarch64'}


@pytest.fixture
def artifact_file(write_artifact, linux_elf):
    return write_artifact('app-linux-amd64', linux_elf)


class Host(object):
    """Records module runs and file transfers; answers like the module would."""

    UNAME = {'x86_64': 'Linux x86_64', 'aarch64': 'Linux aarch64'}

    def __init__(self, platform=None, staged=False, probe_error=None, push_error=None, known=False):
        self.platform = platform or LINUX_AMD64
        self.staged = staged
        self.probe_error = probe_error
        self.push_error = push_error    # what the module says of the pushed copy (e.g. another deploy's lock)
        self.known = known              # the ledger names the release or the digest (a sibling release)
        self.runs = []
        self.transfers = []
        self.commands = []

    def low_level(self, cmd, sudoable=True, **kw):
        """The quick probe's shell command: uname, then hotswap:look when the module must look."""
        self.commands.append(cmd)
        look = self.staged or self.known or self.probe_error
        return dict(rc=0, stdout=self.UNAME[self.platform['arch']] + '\n' + ('hotswap:look\n' if look else ''),
                    stderr='')

    def execute_module(self, module_name=None, module_args=None, task_vars=None, **kw):
        assert module_name == MODULE
        self.runs.append(dict(module_args))
        base = dict(host_platform=self.platform, path='/opt/app/releases/r1/app', release_dir='/opt/app/releases/r1',
                    sha256=module_args['checksum'].split(':')[1], release_id='r1', ledger_updated=False)
        if module_args.get('src') and self.push_error:
            return dict(base, failed=True, changed=False, msg=self.push_error)
        if module_args.get('src') or module_args.get('url'):
            self.staged = True
            return dict(base, changed=True, transferred=True, staged=True, ledger_updated=True)
        if self.probe_error:
            return dict(base, failed=True, changed=False, msg=self.probe_error)
        if self.staged:
            return dict(base, changed=False, transferred=False, staged=True)
        return dict(base, failed=True, changed=False, transferred=False, staged=False, reason='not_staged',
                    msg='release r1 is not staged at /opt/app/releases/r1/app and neither src nor url was given.')


def args_for(src, sha, **kw):
    a = dict(src=src, checksum='sha256:' + sha, name='app', base_dir='/opt/app', release_id='r1')
    a.update(kw)
    return a


def test_push_onto_a_host_without_the_release_is_one_module_run(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    action = make_action(args_for('app-linux-amd64', sha), host, found=path)
    r = action.run(task_vars={})
    assert not r.get('failed'), r
    assert r['changed'] is True and r['transferred'] is True
    assert r['executable'] == {'format': 'elf', 'os': 'linux', 'arch': 'x86_64', 'bits': 64}
    # The shell probe found nothing of the release: no module probe, the one run is on the pushed copy.
    assert host.commands == ["uname -sm; if [ -e /opt/app/releases/r1 ] || grep -qsF -e r1 -e %s "
                             "/opt/app/.hotswap/ledger.json; then echo hotswap:look; fi" % sha]
    assert len(host.runs) == 1
    assert host.transfers == [(path, TMPDIR + '/hotswap-upload-app')]
    assert host.runs[0]['src'] == TMPDIR + '/hotswap-upload-app' and host.runs[0]['move_src'] is True
    action._fixup_perms2.assert_called_once()
    action._remove_tmp_path.assert_called()


def test_push_after_the_module_probe_when_the_ledger_knows_the_digest(artifact_file, make_action):
    path, sha = artifact_file
    host = Host(known=True)
    r = make_action(args_for('app', sha), host, found=path).run(task_vars={})
    assert not r.get('failed') and r['transferred'] is True
    assert len(host.runs) == 2 and 'src' not in host.runs[0]           # the module probe, then the push
    assert host.runs[1]['src'] == TMPDIR + '/hotswap-upload-app'


def test_the_quick_probe_quotes_what_it_asks_the_shell(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    make_action(args_for('app', sha, base_dir="/opt/it's here", release_id='1.0.0+x'), host, found=path).run(
        task_vars={})
    assert host.commands[0].startswith("uname -sm; if [ -e '/opt/it'\"'\"'s here/releases/1.0.0+x' ]")


def test_a_shell_probe_that_cannot_be_read_leaves_it_to_the_module(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    host.low_level = lambda cmd, **kw: dict(rc=0, stdout='Linux\n', stderr='')
    r = make_action(args_for('app', sha), host, found=path).run(task_vars={})
    assert not r.get('failed') and len(host.runs) == 2 and 'src' not in host.runs[0]


def test_a_refusal_of_the_pushed_copy_is_returned_and_the_copy_removed(artifact_file, make_action):
    path, sha = artifact_file
    host = Host(push_error='staging release r1: another deploy holds the lock of /opt/app.')
    action = make_action(args_for('app', sha), host, found=path)
    r = action.run(task_vars={})
    assert r['failed'] is True and 'holds the lock' in r['msg']
    action._remove_tmp_path.assert_called_with(TMPDIR)


def test_already_staged_transfers_nothing(artifact_file, make_action):
    path, sha = artifact_file
    host = Host(staged=True)
    r = make_action(args_for('app', sha), host, found=path).run(task_vars={})
    assert r['changed'] is False and r['transferred'] is False and not r.get('failed')
    assert host.transfers == [] and len(host.runs) == 1


def test_wrong_checksum_fails_on_controller(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    r = make_action(args_for('app', 'a' * 64), host, found=path).run(task_vars={})
    assert r['failed'] is True
    assert 'checksum says' in r['msg']
    assert host.runs == [] and host.transfers == []


def test_bad_checksum_syntax_fails_on_controller(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    r = make_action(args_for('app', sha, checksum='md5:abc'), host, found=path).run(task_vars={})
    assert r['failed'] is True and 'Only sha256' in r['msg']
    assert host.runs == []


def test_missing_src(artifact_file, make_action):
    host = Host()
    r = make_action(args_for('nope', 'a' * 64), host, found=None).run(task_vars={})
    assert r['failed'] is True
    assert 'src nope was not found on the controller' in r['msg']
    assert host.runs == []


def test_not_an_executable_fails_on_controller(write_artifact, make_action):
    path, sha = write_artifact('app.txt', b'#!/bin/sh\n' + b'\0' * 50)
    host = Host()
    r = make_action(args_for('app.txt', sha), host, found=path).run(task_vars={})
    assert r['failed'] is True and 'not an executable' in r['msg']


def test_broken_archive_fails_on_controller(write_artifact, make_action):
    path, sha = write_artifact('app.tar.gz', b'\x1f\x8b\x08' + b'\0' * 50)
    host = Host()
    r = make_action(args_for('app.tar.gz', sha), host, found=path).run(task_vars={})
    assert r['failed'] is True and 'cannot be read as a tar.gz' in r['msg']
    assert host.runs == []


def test_wrong_arch_refused_before_transfer(artifact_file, make_action):
    path, sha = artifact_file
    host = Host(platform=LINUX_ARM64)
    r = make_action(args_for('app', sha), host, found=path).run(task_vars={})
    assert r['failed'] is True
    assert r['msg'] == ('uploading app: it is a linux/x86_64 ELF executable but the host is linux/aarch64. '
                        'Build for GOOS=linux GOARCH=arm64 or pick the right artifact.')
    assert host.runs == [] and host.transfers == []


def test_probe_error_is_returned(artifact_file, make_action):
    path, sha = artifact_file
    host = Host(probe_error="checking release_id 'a/b': it contains \"/\" or \"..\".")
    r = make_action(args_for('app', sha, release_id='a/b'), host, found=path).run(task_vars={})
    assert host.commands == []      # a release id the controller refuses is left to the module's probe
    assert r['failed'] is True and 'release_id' in r['msg']
    assert host.transfers == []


def test_check_mode_stops_after_probe(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    r = make_action(args_for('app', sha), host, check_mode=True, found=path).run(task_vars={})
    assert r['changed'] is True and r['transferred'] is False and not r.get('failed')
    assert 'reason' not in r and 'msg' not in r
    assert host.transfers == [] and len(host.runs) == 1


def test_url_passes_through(make_action):
    host = Host()
    r = make_action(dict(url='http://127.0.0.1:1/app', checksum='sha256:' + 'a' * 64, name='app',
                         base_dir='/opt/app', release_id='r1'), host).run(task_vars={})
    assert r['changed'] is True
    assert host.runs[0]['url'] == 'http://127.0.0.1:1/app' and host.transfers == []


def test_src_and_url_exclusive(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    r = make_action(args_for('app', sha, url='http://127.0.0.1:1/app'), host, found=path).run(task_vars={})
    assert r['failed'] is True and 'mutually exclusive' in r['msg']
    assert host.runs == []


def test_a_known_probe_saves_the_probe_run(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    action = make_action(args_for('app', sha), host, found=path)
    action.known_probe = dict(failed=True, reason='not_staged', staged=False, host_platform=LINUX_AMD64)
    r = action.run(task_vars={})
    assert not r.get('failed') and r['transferred'] is True
    assert len(host.runs) == 1 and host.runs[0]['src'] == TMPDIR + '/hotswap-upload-app'


def test_a_known_probe_still_refuses_the_wrong_arch(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    action = make_action(args_for('app', sha), host, found=path)
    action.known_probe = dict(failed=True, reason='not_staged', staged=False, host_platform=LINUX_ARM64)
    r = action.run(task_vars={})
    assert r['failed'] and 'the host is linux/aarch64' in r['msg'] and host.runs == [] and host.transfers == []


def test_a_deferred_push_leaves_the_module_run_and_the_copy_to_its_caller(artifact_file, make_action):
    path, sha = artifact_file
    host = Host()
    action = make_action(args_for('app', sha), host, found=path)
    action.defer_module = True      # host_deploy: release_cutover's upload step runs the module
    r = action.run(task_vars={})
    assert not r.get('failed') and r['changed'] is True and host.runs == []
    assert host.transfers == [(path, TMPDIR + '/hotswap-upload-app')]
    assert r['deferred']['src'] == TMPDIR + '/hotswap-upload-app' and r['deferred']['move_src'] is True
    assert r['deferred']['checksum'] == 'sha256:' + sha and r['executable']['format'] == 'elf'
    action._fixup_perms2.assert_called_once()
    action._remove_tmp_path.assert_not_called()
    # Nothing to push (staged already), or a refusal: as without deferring, the temp dir goes.
    host = Host(staged=True)
    action = make_action(args_for('app', sha), host, found=path)
    action.defer_module = True
    r = action.run(task_vars={})
    assert r['transferred'] is False and 'deferred' not in r and len(host.runs) == 1
    action._remove_tmp_path.assert_called()


# -- the file on a command's stdin (connections that take data: ssh, local) --------------------------------

STREAMED = '/home/u/.ansible/tmp/ansible-tmp-9-1-2'


def streaming(action, unprivileged=False):
    """The action on a connection that takes data on a command's stdin."""
    action._connection.has_pipelining = True
    action._connection._shell._generate_temp_dir_name.return_value = 'ansible-tmp-9-1-2'
    action.get_shell_option = lambda name, default=None: '~/.ansible/tmp'
    action._is_become_unprivileged = lambda: unprivileged
    return action


class StreamingHost(Host):
    """Answers the quick probe and the command that writes its stdin into a new temp dir."""

    def __init__(self, stream_rc=0, **kw):
        super(StreamingHost, self).__init__(**kw)
        self.stream_rc = stream_rc
        self.streamed = []

    def low_level(self, cmd, sudoable=True, in_data=None, **kw):
        if in_data is None:
            return super(StreamingHost, self).low_level(cmd, sudoable=sudoable)
        self.commands.append(cmd)
        self.streamed.append(dict(data=in_data, sudoable=sudoable))
        if self.stream_rc:
            return dict(rc=self.stream_rc, stdout='', stderr='cat: write error: No space left on device')
        return dict(rc=0, stdout='ansible-tmp-9-1-2=%s\n' % STREAMED, stderr='')


def test_a_connection_that_takes_data_gets_the_file_in_one_command(artifact_file, make_action):
    path, sha = artifact_file
    host = StreamingHost()
    action = streaming(make_action(args_for('app', sha), host, found=path))
    r = action.run(task_vars={})
    assert not r.get('failed') and r['transferred'] is True, r
    # The probe, then one command that makes the dir and writes the file - as the connection user, as sftp would.
    assert len(host.commands) == 2 and 'ansible-tmp-9-1-2' in host.commands[1]
    with open(path, 'rb') as f:
        assert host.streamed == [dict(data=f.read(), sudoable=False)]
    action._make_tmp_path.assert_not_called()
    action._transfer_file.assert_not_called()
    action._fixup_perms2.assert_not_called()
    assert host.runs[0]['src'] == STREAMED + '/hotswap-upload-app' and host.runs[0]['move_src'] is True
    # The dir is Ansible's temp dir from then on: removed at the end of the task.
    assert action._connection._shell.tmpdir == STREAMED
    action._remove_tmp_path.assert_called_with(STREAMED)


def test_a_write_that_fails_on_the_host_fails_the_task_and_runs_no_module(artifact_file, make_action):
    from ansible.errors import AnsibleError
    path, sha = artifact_file
    host = StreamingHost(stream_rc=1)
    action = streaming(make_action(args_for('app', sha), host, found=path))
    with pytest.raises(AnsibleError) as e:
        action.run(task_vars={})
    assert 'writing it into a new temporary directory on the host failed (rc 1: cat: write error: No space left ' \
           'on device)' in str(e.value) and 'remote_tmp (~/.ansible/tmp)' in str(e.value)
    assert host.runs == []


@pytest.mark.parametrize('why', ['too big to hold in memory', 'become to a second unprivileged user'])
def test_files_it_cannot_stream_go_by_ansibles_transfer(artifact_file, make_action, monkeypatch, why):
    from ansible_collections.hotswap.deploy.plugins.plugin_utils import push
    path, sha = artifact_file
    host = StreamingHost()
    if why.startswith('too big'):
        monkeypatch.setattr(push, 'STREAM_MAX_BYTES', 100)
    action = streaming(make_action(args_for('app', sha), host, found=path), unprivileged=why.startswith('become'))
    r = action.run(task_vars={})
    assert not r.get('failed') and host.streamed == []
    assert host.transfers == [(path, TMPDIR + '/hotswap-upload-app')]


def test_the_stream_command_makes_a_private_dir_and_cleans_up_a_failed_write(tmp_path, controller):
    """stream_command run by a real sh: the file written from stdin, the dir private; a write that fails
    leaves nothing."""
    import os
    import stat
    import subprocess
    from ansible_collections.hotswap.deploy.plugins.plugin_utils.push import stream_command, streamed_dir
    env = dict(os.environ, HOME=str(tmp_path))
    run = subprocess.run(['sh', '-c', stream_command('~/.ansible/tmp', 'ansible-tmp-1-2', "it's app")],
                         input=b'\x7fELF data', capture_output=True, env=env, check=False)
    d = streamed_dir(dict(rc=run.returncode, stdout=run.stdout.decode()), 'ansible-tmp-1-2')
    assert d == str(tmp_path / '.ansible' / 'tmp' / 'ansible-tmp-1-2')
    assert (tmp_path / '.ansible/tmp/ansible-tmp-1-2' / "it's app").read_bytes() == b'\x7fELF data'
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(d, "it's app")).st_mode) == 0o600
    # A name the write cannot create (no such subdirectory): non-zero, and the new dir is gone.
    run = subprocess.run(['sh', '-c', stream_command('~/.ansible/tmp', 'ansible-tmp-3-4', 'no/such')],
                         input=b'x', capture_output=True, env=env, check=False)
    assert run.returncode != 0
    assert streamed_dir(dict(rc=run.returncode, stdout=run.stdout.decode()), 'ansible-tmp-3-4') is None
    assert not (tmp_path / '.ansible/tmp/ansible-tmp-3-4').exists()
