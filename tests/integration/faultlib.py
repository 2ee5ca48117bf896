# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Faults injected into a running deploy on real hosts, what is left afterwards, and the record of both.

Each fault case writes one JSON line to build/test-results/reliability/<module>.jsonl (the fault,
what the user saw, what was left on each host, whether a re-run converged);
scripts/reliability_table.py turns those lines into docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import testlib

RECORDS = os.path.join(testlib.RESULTS, 'reliability')
PORT = 8082


def deploy_vars(app, version, artifact, **extra):
    v = dict(testlib.ONE_BATCH, app=app, version=version, artifact=artifact, checksum=testlib.sha256(artifact),
             listen_port=PORT, ready_timeout=10, drain_timeout=10)
    v.update(extra)
    return v


def hook_file(tmp_path, name, tasks):
    """A hook task file (docs/hooks.md) under tmp_path; tasks is YAML text."""
    path = os.path.join(str(tmp_path), '%s.yml' % name)
    with open(path, 'w') as f:
        f.write('---\n' + tasks)
    return path


def fill_disk_hook(tmp_path, name, host_name, base_dir):
    """A hook that fills the file system of base_dir on one host (a tmpfs the test mounted there)."""
    return hook_file(tmp_path, name, (
        '- name: Fill the disk of the base dir (fault injected by the test)\n'
        '  ansible.builtin.shell: fallocate -l $(( $(stat -f -c %%a*%%S %(b)s) )) %(b)s/.filler\n'
        '  args:\n'
        '    creates: %(b)s/.filler\n'
        '  when: inventory_hostname == "%(h)s"\n') % {'b': base_dir, 'h': host_name})


def mount_small_disk(host, base_dir, megabytes):
    """base_dir on a tmpfs of its own inside the host, empty, so a test can fill it."""
    testlib.host_sh(host, 'mkdir -p {b} && (mountpoint -q {b} || mount -t tmpfs -o size={m}m,mode=0755 tmpfs {b})'.format(
        b=base_dir, m=megabytes))


def unmount_small_disk(host, base_dir):
    testlib.host_sh(host, 'umount -l {b} 2>/dev/null; true'.format(b=base_dir), check=False)


def free_disk(host, base_dir):
    testlib.host_sh(host, 'rm -f %s/.filler' % base_dir)


def ssh_session_pids(host):
    """The host's sshd session processes (not the listener): killing them cuts the controller's connections."""
    out = testlib.host_sh(host, 'cat /run/sshd.pid 2>/dev/null; echo; ps -eo pid=,args=', check=False)
    lines = out.splitlines()
    listener = lines[0].strip() if lines else ''
    pids = []
    for line in lines[1:]:
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[1].startswith('sshd') and parts[0] != listener and '-D' not in parts[1] \
                and 'listener' not in parts[1]:
            pids.append(parts[0])
    return pids


def cut_ssh(host):
    """SIGKILL the host-side ssh sessions, as a network cut or a rebooted bastion does."""
    pids = ssh_session_pids(host)
    if pids:
        testlib.host_sh(host, 'kill -9 %s' % ' '.join(pids), check=False)
    return pids


def kill_controller(proc):
    """SIGKILL ansible-playbook and its ssh connections (its own process group)."""
    os.killpg(proc.pid, signal.SIGKILL)


def leftovers(host, app):
    """What a fault left in the app's tree on a host."""
    out = testlib.host_sh(host, (
        'cd /opt/{a} 2>/dev/null || exit 0; echo "current=$(readlink current)"; '
        'test -x current/{a} && echo "binary=ok" || echo "binary=missing"; '
        'test -e .hotswap/lock && echo lock=held || echo lock=free; '
        'echo "partial=$(ls -a releases 2>/dev/null | grep -c -E "^\\.staging-" ; '
        'find releases -name ".*partial*" 2>/dev/null | wc -l)"').format(a=app), check=False)
    left = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)
    left['partial'] = sum(int(n) for n in left.get('partial', '0').split() if n.isdigit())
    return left


def assert_working(hosts, app, versions):
    """Every host has a `current` with its binary, and the service answers with one of versions."""
    for host in hosts:
        left = leftovers(host, app)
        assert left['current'].startswith('releases/') and left['binary'] == 'ok', (host['name'], left)
        served = None
        for _attempt in range(20):                      # a restart the fault interrupted may still be settling
            served = testlib.served_version(host, PORT)
            if served in versions:
                break
            time.sleep(0.5)
        assert served in versions, (host['name'], served, versions, left)


def converge(inventory, vars_, tmp_path, hosts, app, version):
    """The same deploy again finishes the job; once more changes nothing; no lock or partial is left."""
    r = testlib.playbook(inventory, 'deploy', vars_, tmp_path=tmp_path)
    assert r.rc == 0, r
    for host in hosts:
        assert testlib.served_version(host, PORT) == version, host['name']
    again = testlib.playbook(inventory, 'deploy', vars_, tmp_path=tmp_path)
    assert again.rc == 0 and again.changed() == 0, again
    for host in hosts:
        left = leftovers(host, app)
        assert left['lock'] == 'free' and left['partial'] == 0, (host['name'], left)
    return r


USER_SEES_RE = re.compile(r'(deploy failed at .*|UNREACHABLE!.*|Another deploy holds the lock.*|stopped at batch.*|'
                          r'fatal: \[[^\]]+\]: FAILED! => .*"msg": "[^"]*")')


def what_the_user_saw(result, killed=False):
    """The lines of a run's output that tell the user what happened (none when the controller was killed)."""
    if killed:
        return 'nothing more: ansible-playbook was killed (no recap); the next run says what it takes over'
    seen = []
    for m in USER_SEES_RE.finditer(result.out):
        line = re.sub(r'\s+', ' ', m.group(1))[:220]
        if line not in seen:
            seen.append(line)
    return ' | '.join(seen[:3]) or ('rc=%d' % result.rc)


def record(module, case, fault, user_saw, left, converged=True, requests=None):
    os.makedirs(RECORDS, exist_ok=True)
    entry = dict(case=case, fault=fault, user_saw=user_saw, left=left, converged=converged, requests=requests)
    with open(os.path.join(RECORDS, '%s.jsonl' % module), 'a') as f:
        f.write(json.dumps(entry, sort_keys=True) + '\n')


def load_brief(summary):
    return None if summary is None else dict(sent=summary.get('sent'), failed=summary.get('failed'))
