# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Faults on the hosts mid-deploy, under load: the SSH connection cut, the disk of base_dir full, the old
process killed during a hand-over, two controllers at once and a rollback started during a deploy.

Two hosts, two faults per run where they are host-local (one host each). After every fault: each host
has a working `current` and serves the old or the new version, no request failed where the strategy
promises it (systemd_socket), the same deploy run again converges, once more changes nothing, and no
lock or partial release is left. Each case is recorded for docs/reliability.md (faultlib.record).
"""

from __future__ import annotations

import json
import time

import pytest

import faultlib
import testlib

APP = 'flthost'
BASE = '/opt/' + APP
PORT = faultlib.PORT
MODULE = 'faults_host'


@pytest.fixture(scope='module')
def hosts(fleet):
    yield fleet
    testlib.remove_app(fleet.hosts, APP)
    for host in fleet:
        faultlib.unmount_small_disk(host, BASE)


def ensure_live(fleet, version, tmp_path, **extra):
    artifact = testlib.build_app(version)
    r = testlib.playbook(fleet.inventory, 'deploy', faultlib.deploy_vars(APP, version, artifact, **extra), tmp_path=tmp_path)
    assert r.rc == 0, r
    return artifact


def test_ssh_cut_and_full_disk_during_upload(hosts, tmp_path):
    cut_host, full_host = hosts.hosts
    faultlib.mount_small_disk(full_host, BASE, 32)
    ensure_live(hosts, '1.0.0', tmp_path)
    artifact = testlib.build_app('2.0.0')
    hooks = {'before_upload': faultlib.fill_disk_hook(tmp_path, 'fill-before-upload', full_host['name'], BASE)}
    vars_ = faultlib.deploy_vars(APP, '2.0.0', artifact, hooks=hooks)
    load = testlib.start_load(hosts.hosts, PORT, rate=60, keepalive=True, duration=120)
    try:
        r = testlib.playbook_interrupted(hosts.inventory, 'deploy', vars_, tmp_path, 'Upload the release',
                                         lambda proc: faultlib.cut_ssh(cut_host))
    finally:
        summary = testlib.finish_load(load, 'fault-upload')
    assert r.fired and r.rc != 0, r
    # The full disk fails the upload: that host stays on v1, its release tree as it was.
    assert r.recap[full_host['name']]['failed'] == 1, r
    assert 'No space left on device' in r.out, r
    faultlib.assert_working(hosts.hosts, APP, {'1.0.0', '2.0.0'})
    assert testlib.served_version(full_host, PORT) == '1.0.0'
    left = {h['name']: faultlib.leftovers(h, APP) for h in hosts}
    assert left[full_host['name']]['partial'] == 0, left
    assert summary['failed'] == 0, testlib.brief(summary)
    faultlib.record(MODULE, 'ssh cut during upload (%s) + disk full during upload (%s)' % (
        cut_host['connection'], full_host['connection']), 'ssh session killed; base_dir tmpfs filled by a before_upload hook',
        faultlib.what_the_user_saw(r), left, requests=faultlib.load_brief(summary))

    faultlib.free_disk(full_host, BASE)
    faultlib.converge(hosts.inventory, dict(vars_, hooks={}), tmp_path, hosts.hosts, APP, '2.0.0')


def test_ssh_cut_during_restart_and_full_disk_at_the_ledger_write(hosts, tmp_path):
    cut_host, full_host = hosts.hosts
    faultlib.mount_small_disk(full_host, BASE, 32)
    ensure_live(hosts, '2.0.0', tmp_path)
    artifact = testlib.build_app('2.1.0')
    # After the upload nothing else is written into base_dir but the ledger (and the link): fill it then.
    hooks = {'after_upload': faultlib.fill_disk_hook(tmp_path, 'fill-after-upload', full_host['name'], BASE)}
    vars_ = faultlib.deploy_vars(APP, '2.1.0', artifact, hooks=hooks)

    def cut_mid_restart(_proc):
        time.sleep(0.5)
        faultlib.cut_ssh(cut_host)

    load = testlib.start_load(hosts.hosts, PORT, rate=60, keepalive=True, duration=120)
    try:
        r = testlib.playbook_interrupted(hosts.inventory, 'deploy', vars_, tmp_path,
                                         'Restart the service on the new release', cut_mid_restart,
                                         verbosity=1)
    finally:
        summary = testlib.finish_load(load, 'fault-restart-ledger')
    assert r.fired and r.rc != 0, r
    assert r.recap[full_host['name']]['failed'] == 1, r
    faultlib.assert_working(hosts.hosts, APP, {'2.0.0', '2.1.0'})
    # The ledger could not be written: the full host was never switched (or was switched back).
    assert testlib.served_version(full_host, PORT) == '2.0.0'
    json.loads(testlib.host_sh(full_host, 'cat %s/.hotswap/ledger.json' % BASE))     # still whole
    left = {h['name']: faultlib.leftovers(h, APP) for h in hosts}
    assert summary['failed'] == 0, testlib.brief(summary)
    faultlib.record(MODULE, 'ssh cut during restart (%s) + disk full at the ledger write (%s)' % (
        cut_host['connection'], full_host['connection']), 'ssh session killed 0.5 s into the restart; base_dir '
        'tmpfs filled by an after_upload hook', faultlib.what_the_user_saw(r), left, requests=faultlib.load_brief(summary))

    faultlib.free_disk(full_host, BASE)
    faultlib.converge(hosts.inventory, dict(vars_, hooks={}), tmp_path, hosts.hosts, APP, '2.1.0')


def test_old_process_killed_during_the_handover(hosts, tmp_path):
    """signal_reexec: the old process is SIGKILLed while it hands its socket to the new one."""
    extra = dict(restart_strategy='signal_reexec', service_type='notify',
                 service_args=testlib.demo_service_args('signal_reexec'))
    ensure_live(hosts, '2.1.0', tmp_path, **extra)
    old_pids = {h['name']: testlib.host_sh(h, 'systemctl show -P MainPID %s.service' % APP).strip() for h in hosts}
    artifact = testlib.build_app('2.2.0')
    vars_ = faultlib.deploy_vars(APP, '2.2.0', artifact, **extra)

    def kill_old(_proc):
        time.sleep(0.3)
        for h in hosts:
            testlib.host_sh(h, 'kill -9 %s' % old_pids[h['name']], check=False)

    r = testlib.playbook_interrupted(hosts.inventory, 'deploy', vars_, tmp_path,
                                     'Restart the service on the new release', kill_old,
                                     verbosity=1)
    assert r.fired, r
    faultlib.assert_working(hosts.hosts, APP, {'2.1.0', '2.2.0'})
    left = {h['name']: faultlib.leftovers(h, APP) for h in hosts}
    faultlib.record(MODULE, 'old process SIGKILLed during the hand-over (signal_reexec)',
                    'kill -9 of the old MainPID 0.3 s into the restart', faultlib.what_the_user_saw(r), left)
    faultlib.converge(hosts.inventory, vars_, tmp_path, hosts.hosts, APP, '2.2.0')


def test_two_controllers_and_a_rollback_during_a_deploy(hosts, tmp_path):
    ensure_live(hosts, '2.2.0', tmp_path)
    # The first deploy holds its lock at after_upload until the test opens a gate on each host.
    for host in hosts:
        testlib.host_sh(host, 'rm -f /run/flt-gate')
    # The hook also writes what it reads (hotswap_hook, docs/hooks.md), checked below.
    gate = faultlib.hook_file(tmp_path, 'gate', (
        '- name: Note what the hook reads\n'
        '  ansible.builtin.copy:\n'
        '    content: "{{ hotswap_hook | to_json }}"\n'
        '    dest: /run/flt-hook.json\n'
        '    mode: "0644"\n'
        '- name: Wait for the test to open the gate\n'
        '  ansible.builtin.wait_for:\n'
        '    path: /run/flt-gate\n'
        '    timeout: 300\n'))
    first = faultlib.deploy_vars(APP, '2.3.0', testlib.build_app('2.3.0'), hooks={'after_upload': gate})
    second = faultlib.deploy_vars(APP, '1.0.0', testlib.build_app('1.0.0'))
    others = {}

    def second_controller_then_a_rollback(_proc):
        others['before'] = {h['name']: testlib.tree_state(h, BASE, APP) for h in hosts}
        others['deploy'] = testlib.playbook(hosts.inventory, 'deploy', second, tmp_path=tmp_path)
        others['rollback'] = testlib.playbook(hosts.inventory, 'rollback', dict(app=APP, listen_port=PORT),
                                              tmp_path=tmp_path)
        others['after'] = {h['name']: testlib.tree_state(h, BASE, APP) for h in hosts}
        for h in hosts:
            testlib.host_sh(h, 'touch /run/flt-gate')

    r = testlib.playbook_interrupted(hosts.inventory, 'deploy', first, tmp_path, 'Wait for the test to open the gate',
                                     second_controller_then_a_rollback)
    assert r.fired and r.rc == 0, r
    for name in ('deploy', 'rollback'):
        o = others[name]
        assert o.rc != 0, (name, o)
        assert 'holds the deploy lock' in o.out or 'Another deploy holds the lock' in o.out, (name, o)
        assert 'deploy 2.3.0-' in o.out, (name, o)            # the holder is named: app and release
    # Neither wrote anything while the first deploy held the lock.
    assert others['before'] == others['after']
    for host in hosts:
        assert testlib.served_version(host, PORT) == '2.3.0'
        hook = json.loads(testlib.host_sh(host, 'cat /run/flt-hook.json'))
        assert hook['rollout'] == 'canary' and hook['action'] == 'deploy' and hook['batch'] == 1, hook
        assert hook['host'] == host['name'] and hook['app'] == APP and hook['version'] == '2.3.0', hook
        assert hook['release'].startswith('2.3.0-') and hook['previous_release'].startswith('2.2.0-'), hook
        assert hook['release_dir'] == '%s/releases/%s' % (BASE, hook['release']) and hook['target_slot'] is None, hook
    left = {h['name']: faultlib.leftovers(h, APP) for h in hosts}
    assert all(v['lock'] == 'free' for v in left.values()), left
    faultlib.record(MODULE, 'a second controller deploys the same app during a deploy', 'deploy.yml started while '
                    'another held the lock', faultlib.what_the_user_saw(others['deploy']), left, converged=None)
    faultlib.record(MODULE, 'a rollback started during a deploy', 'rollback.yml started while a deploy held the lock',
                    faultlib.what_the_user_saw(others['rollback']), left, converged=None)
    again = testlib.playbook(hosts.inventory, 'deploy', dict(first, hooks={}), tmp_path=tmp_path)
    assert again.rc == 0 and again.changed() == 0, again
