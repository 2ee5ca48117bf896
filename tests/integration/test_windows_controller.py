# -*- coding: utf-8 -*-
"""Windows support, controller side only: there is no Windows host and no PowerShell here.

A mixed inventory (the real Linux test hosts plus one Windows host entry whose WinRM port is a
reserved, closed loopback port) proves that deploy.yml deploys the Linux hosts as before and
sends the Windows host down the WinRM path: it ends UNREACHABLE at the Windows branch's first
task that connects, with a winrm/https error. The same for the rollback role: rollback.yml's
plan reads the Windows host the Windows way (and, as it cannot, refuses every host with nothing
changed), and the role's host entry point - what the canary uses to roll back a failed batch -
rolls the Linux hosts back while the Windows host takes the Windows path. The canary analysis of
a Windows host measures the metric delegated to the controller, and refuses run_on=host. Bad
Windows input is refused on the controller, before any connection is tried. What the PowerShell
module does on a host is not tested here (see docs/windows.md).
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import socket
import subprocess
import threading

import pytest
import yaml

import testlib

APP = 'winmix'
PORT = 9600
WIN_HOST = 'win-1'
WIN_CHECK_TASK = 'hotswap.deploy.deploy_host : Check the Windows artifact against the host'
# deploy.yml and rollback.yml go only to the hosts named (deploy_hosts, rollback_hosts): the Linux
# test hosts' group and the group 'windows' of write_inventory, or that group alone.
MIXED_HOSTS = '%s:windows' % testlib.TEST_GROUP
WINDOWS_HOSTS = 'windows'
EXAMPLE_INVENTORY = os.path.join(testlib.REPO, 'docs', 'examples', 'inventory-mixed.yml')


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on, reserved for the test.

    The socket is bound but never listens: connecting to it is refused at once, and no other
    process can take the port while the test runs.
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def windows_group(port):
    return {
        'hosts': {WIN_HOST: {'ansible_host': '127.0.0.1', 'ansible_port': port}},
        'vars': {
            'ansible_connection': 'winrm',
            'ansible_winrm_scheme': 'https',
            'ansible_winrm_transport': 'ntlm',
            'ansible_winrm_server_cert_validation': 'validate',
            'ansible_user': 'deploy',
            'ansible_password': 'unused-nothing-listens',
        },
    }


def write_inventory(path, linux_inventory, port):
    """The Linux test hosts' inventory (if any) plus a group 'windows' with WIN_HOST."""
    if linux_inventory:
        with open(linux_inventory) as f:
            inv = yaml.safe_load(f)
    else:
        inv = {'all': {'children': {}}}
    inv['all']['children']['windows'] = windows_group(port)
    with open(path, 'w') as f:
        yaml.safe_dump(inv, f, default_flow_style=False)
    return str(path)


def role_task_names(tasks_file, role='deploy_host'):
    """Names of every task in a tasks file of an installed role, blocks included."""
    with open(os.path.join(testlib.INSTALLED, 'roles', role, 'tasks', tasks_file)) as f:
        todo = list(yaml.safe_load(f))
    names = []
    while todo:
        t = todo.pop(0)
        for key in ('block', 'rescue', 'always'):
            todo.extend(t.get(key) or [])
        if 'block' not in t:
            names.append(t['name'])
    return names


def task_sections(out):
    """[(task name, text printed under it)] in the order of the run."""
    parts = re.split(r'^TASK \[(.*?)\] \**$', out, flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def tasks_mentioning(out, host):
    """Tasks that ran for (or skipped, or included a file for) ``host``."""
    h = re.escape(host)
    pattern = re.compile(r'\[%s\]|^included: \S+ for (?:.*, )?%s(?:,|$)' % (h, h), re.M)
    return [name for name, text in task_sections(out) if pattern.search(text)]


def unreachable_at(out, host):
    return [(name, text) for name, text in task_sections(out) if 'fatal: [%s]: UNREACHABLE!' % host in text]


def test_windows_mixed_fleet_linux_deploys_windows_goes_over_winrm(fleet, closed_port, tmp_path):
    linux_bin = testlib.build_app('1.0.0')
    win_exe = testlib.build_app('1.0.0', goos='windows', goarch='amd64')
    inventory = write_inventory(tmp_path / 'mixed.yml', fleet.inventory, closed_port)
    # The Linux hosts in one batch, the Windows host (last in the inventory) in the next.
    extra = dict(testlib.ONE_BATCH, canary_steps=[len(fleet.hosts), '100%'], app=APP, version='1.0.0', listen_port=PORT,
                 artifact=linux_bin, checksum=testlib.sha256(linux_bin),
                 win_artifact=win_exe, win_checksum=testlib.sha256(win_exe), deploy_hosts=MIXED_HOSTS)
    # -c ssh on the command line, as every other test: the inventory's ansible_connection wins.
    r = testlib.playbook(inventory, 'deploy', extra, connection='ssh', tmp_path=tmp_path)

    linux_names = [h['name'] for h in fleet]
    assert set(r.hosts_recap) == set(linux_names) | {WIN_HOST}, r
    assert r.rc == 4, r          # some host unreachable, none failed
    for name in linux_names:
        assert r.recap[name]['failed'] == 0 and r.recap[name]['unreachable'] == 0, r
    assert r.recap[WIN_HOST]['unreachable'] == 1 and r.recap[WIN_HOST]['failed'] == 0, r

    # The Linux hosts deployed exactly as without the Windows host.
    rid = '1.0.0-' + testlib.sha256(linux_bin)[7:19]
    for host in fleet:
        assert testlib.served_version(host, PORT) == '1.0.0'
        assert testlib.host_sh(host, 'readlink /opt/%s/current' % APP).strip() == 'releases/' + rid

    # Each host went down its own branch.
    assert re.search(r'^included: \S+/windows\.yml for %s$' % WIN_HOST, r.out, re.M), r
    linux_include = re.search(r'^included: \S+/linux\.yml for (.*)$', r.out, re.M)
    assert linux_include and set(linux_include.group(1).split(', ')) == set(linux_names), r

    # The Windows host was unreachable at the first task of the Windows branch that connects,
    # through the winrm connection plugin (https, the reserved port, /wsman) ...
    fatal = unreachable_at(r.out, WIN_HOST)
    assert [f[0] for f in fatal] == [WIN_CHECK_TASK], r
    text = fatal[0][1]
    assert 'ntlm: HTTPSConnectionPool' in text and "port=%d" % closed_port in text and '/wsman' in text, r
    # ... after the controller-only steps of that branch, and never in a Linux step.
    seen = tasks_mentioning(r.out, WIN_HOST)
    assert seen[-1] == WIN_CHECK_TASK, r
    assert seen.index('hotswap.deploy.deploy_host : Choose the steps for the platform of this host') \
        < seen.index("hotswap.deploy.deploy_host : Run the deploy steps of this host's platform") \
        < seen.index('hotswap.deploy.deploy_host : Compute the release id') \
        < seen.index('hotswap.deploy.deploy_host : Fix the release id for this run') \
        < seen.index('hotswap.deploy.deploy_host : Check the Windows artifact source'), r
    linux_only = set(role_task_names('linux.yml') + role_task_names('linux_phases.yml')) \
        - set(role_task_names('windows.yml'))
    linux_steps = {'hotswap.deploy.deploy_host : ' + n for n in linux_only}
    assert 'hotswap.deploy.deploy_host : Deploy the release' in linux_steps
    assert 'hotswap.deploy.deploy_host : Activate the release and restart the service' in linux_steps
    assert not linux_steps & set(seen), r
    for name, text in task_sections(r.out):
        if 'Windows' in name:   # Linux hosts only skip the Windows steps
            ran = [ln for ln in text.splitlines() if any(n in ln for n in linux_names) and not ln.startswith('skipping:')
                   and not testlib.RECAP_RE.match(ln)]
            assert not ran, (name, ran, r)


def run_windows_only(tmp_path, port, **overrides):
    win_exe = testlib.build_app('1.0.0', goos='windows', goarch='amd64')
    inventory = write_inventory(tmp_path / 'windows.yml', None, port)
    extra = dict(testlib.ONE_BATCH, app=APP, version='1.0.0', listen_port=PORT, win_artifact=win_exe,
                 win_checksum=testlib.sha256(win_exe), deploy_hosts=WINDOWS_HOSTS)
    extra.update(overrides)
    return testlib.playbook(inventory, 'deploy', extra, connection='ssh', tmp_path=tmp_path)


def test_windows_only_fleet_needs_no_linux_artifact(closed_port, tmp_path):
    r = run_windows_only(tmp_path, closed_port)
    assert r.recap[WIN_HOST]['unreachable'] == 1 and r.recap[WIN_HOST]['failed'] == 0, r
    assert [f[0] for f in unreachable_at(r.out, WIN_HOST)] == [WIN_CHECK_TASK], r


@pytest.mark.parametrize('case', ['elf', 'checksum', 'missing', 'no-source'])
def test_windows_bad_input_refused_before_connecting(closed_port, tmp_path, case):
    """Refused on the controller: the host is FAILED (not unreachable), so nothing tried WinRM."""
    linux_bin = testlib.build_app('1.0.0')
    overrides, words, task = {
        'elf': (dict(win_artifact=linux_bin, win_checksum=testlib.sha256(linux_bin)),
                ['linux/x86_64 ELF executable but the host runs Windows', 'GOOS=windows'], WIN_CHECK_TASK),
        'checksum': (dict(win_checksum='sha256:' + '0' * 64), ['but checksum says ' + '0' * 64], WIN_CHECK_TASK),
        'missing': (dict(win_artifact=str(tmp_path / 'nope.exe')), ['nope.exe was not found on the controller'],
                    WIN_CHECK_TASK),
        'no-source': (dict(win_artifact=''), ['give exactly one of', 'win_artifact'],
                      'hotswap.deploy.deploy_host : Check the Windows artifact source'),
    }[case]
    r = run_windows_only(tmp_path, closed_port, **overrides)
    assert r.recap[WIN_HOST]['failed'] == 1 and r.recap[WIN_HOST]['unreachable'] == 0, r
    failed = [name for name, text in task_sections(r.out) if 'fatal: [%s]: FAILED!' % WIN_HOST in text]
    # deploy_host's outer rescue notes the failure and fails again with the same message; the canary keeps the
    # host in the play until the batch is judged, then stops the rollout with its summary.
    assert failed == [task, 'hotswap.deploy.deploy_host : Fail as the step did',
                      'hotswap.deploy.canary : Stop the rollout with a summary'], r
    for w in words:
        assert w in r.out, (w, r)
    assert 'wsman' not in r.out and 'HTTPSConnectionPool' not in r.out, r


def test_windows_example_inventory_uses_winrm_over_https_with_cert_validation():
    proc = subprocess.run([os.path.join(testlib.VENV_BIN, 'ansible-inventory'), '-i', EXAMPLE_INVENTORY, '--list'],
                          env=testlib.ansible_env(), cwd=testlib.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    assert proc.returncode == 0 and 'WARNING' not in proc.stderr, proc.stderr
    inv = json.loads(proc.stdout)
    hostvars = inv['_meta']['hostvars']
    windows = inv['windows']['hosts']
    linux = inv['linux']['hosts']
    assert windows and linux
    for h in windows:
        v = hostvars[h]
        assert v['ansible_connection'] == 'winrm'
        assert v['ansible_port'] == 5986 and v['ansible_winrm_scheme'] == 'https'
        assert v['ansible_winrm_transport'] in ('ntlm', 'kerberos')
        assert v['ansible_winrm_server_cert_validation'] == 'validate'
    for h in linux:
        assert hostvars[h]['ansible_connection'] == 'ssh'
    with open(EXAMPLE_INVENTORY) as f:
        text = f.read()
    assert 'validation: ignore' not in text
    assert 'pywinrm[kerberos]' in text


# ---------------------------------------------------------------------------
# rollback and canary


RB_APP = 'winrb'
RB_PORT = 9601
WIN_READ_TASK = 'hotswap.deploy.rollback : Read the ledger and the kept copies of the Windows host'
WIN_INPUT_TASK = 'hotswap.deploy.rollback : Check the Windows rollback input'


# host.yml's Linux switch (release_switch) and its result.
LINUX_SWITCH_TASKS = ('Switch a Linux host to the target release, restart and verify', 'Record the result of the Linux host')


def rollback_linux_only_steps():
    """Rollback tasks a Windows host must never run (Linux read, and the switch with its switch back)."""
    names = set(role_task_names('read_linux.yml', 'rollback') + list(LINUX_SWITCH_TASKS))
    names -= set(role_task_names('read_windows.yml', 'rollback') + role_task_names('host_windows.yml', 'rollback'))
    return {'hotswap.deploy.rollback : ' + n for n in names}


def assert_windows_path_only(r, task):
    """WIN_HOST was UNREACHABLE (over winrm/https) at ``task`` and ran no Linux rollback step."""
    fatal = unreachable_at(r.out, WIN_HOST)
    assert [f[0] for f in fatal] == [task], r
    assert 'HTTPSConnectionPool' in fatal[0][1] and '/wsman' in fatal[0][1], r
    seen = tasks_mentioning(r.out, WIN_HOST)
    assert seen[-1] == task, r
    linux_steps = rollback_linux_only_steps()
    assert 'hotswap.deploy.rollback : Read the release ledger' in linux_steps
    assert 'hotswap.deploy.rollback : Switch a Linux host to the target release, restart and verify' in linux_steps
    assert not linux_steps & set(seen), r
    assert re.search(r'^included: \S+/read_windows\.yml for %s$' % WIN_HOST, r.out, re.M), r


@pytest.fixture
def rb_fleet(fleet):
    """The Linux hosts with RB_APP deployed twice (1.0.0, then 2.0.0); its units and tree are removed afterwards."""
    yield fleet
    for host in fleet:
        testlib.host_sh(host, (
            'systemctl disable --now {a}.socket {a}.service >/dev/null 2>&1; '
            'rm -f /etc/systemd/system/{a}.socket /etc/systemd/system/{a}.service /etc/systemd/system/.hotswap-{a}.*; '
            'systemctl daemon-reload; systemctl reset-failed; rm -rf /opt/{a}').format(a=RB_APP), check=False)


def test_windows_rollback_mixed_fleet(rb_fleet, closed_port, tmp_path):
    fleet = rb_fleet
    rids = {}
    for version in ('1.0.0', '2.0.0'):
        linux_bin = testlib.build_app(version)
        rids[version] = '%s-%s' % (version, testlib.sha256(linux_bin)[7:19])
        r = testlib.playbook(fleet.inventory, 'deploy', dict(testlib.ONE_BATCH, app=RB_APP, version=version,
                             listen_port=RB_PORT, artifact=linux_bin, checksum=testlib.sha256(linux_bin)),
                             tmp_path=tmp_path)
        assert r.rc == 0, r
    inventory = write_inventory(tmp_path / 'mixed.yml', fleet.inventory, closed_port)
    linux_names = [h['name'] for h in fleet]

    # 1. rollback.yml: the plan reads the Windows host with the Windows query; it cannot, so the
    # plan refuses every host (the hosts must agree) and nothing changes on the Linux hosts.
    r = testlib.playbook(inventory, 'rollback', dict(app=RB_APP, listen_port=RB_PORT, rollback_hosts=MIXED_HOSTS),
                         tmp_path=tmp_path)
    assert r.rc != 0 and r.recap[WIN_HOST]['unreachable'] == 1, r
    assert_windows_path_only(r, WIN_READ_TASK)
    linux_read = re.search(r'^included: \S+/read_linux\.yml for (.*)$', r.out, re.M)
    assert linux_read and set(linux_read.group(1).split(', ')) == set(linux_names), r
    assert 'hotswap.deploy.rollback : Switch current to the target release' not in dict(task_sections(r.out)), r
    for host in fleet:
        assert testlib.host_sh(host, 'readlink /opt/%s/current' % RB_APP).strip() == 'releases/' + rids['2.0.0']
        assert testlib.served_version(host, RB_PORT) == '2.0.0'

    # 2. The host entry point, as the canary's abort includes it for each host of a failed batch:
    # the Linux hosts go back to 1.0.0, the Windows host takes the Windows path in the same run.
    play = tmp_path / 'rollback-host.yml'
    play.write_text(yaml.safe_dump([{
        'name': 'Roll each host back on its own', 'hosts': 'all', 'gather_facts': False,
        'tasks': [{'name': 'Roll this host back', 'ansible.builtin.include_role': {
            'name': 'hotswap.deploy.rollback', 'tasks_from': 'host'},
            'vars': {'rollback_app': RB_APP, 'rollback_release_id': rids['1.0.0'], 'rollback_listen_port': RB_PORT}}],
    }]))
    proc = testlib.run([os.path.join(testlib.VENV_BIN, 'ansible-playbook'), '-i', inventory, '-c', 'ssh', str(play)],
                       'ssh')
    assert proc.rc == 4, proc   # unreachable, no failure
    for name in linux_names:
        assert proc.recap[name]['failed'] == 0 and proc.recap[name]['unreachable'] == 0, proc
    assert proc.recap[WIN_HOST]['unreachable'] == 1 and proc.recap[WIN_HOST]['failed'] == 0, proc
    assert_windows_path_only(proc, WIN_READ_TASK)
    switched = dict(task_sections(proc.out))['hotswap.deploy.rollback : ' + LINUX_SWITCH_TASKS[0]]
    for name in linux_names:
        assert re.search(r'^changed: \[%s\]' % re.escape(name), switched, re.M), proc
    for host in fleet:
        assert testlib.host_sh(host, 'readlink /opt/%s/current' % RB_APP).strip() == 'releases/' + rids['1.0.0']
        assert testlib.served_version(host, RB_PORT) == '1.0.0'


@pytest.mark.parametrize('case', ['path', 'release_id'])
def test_windows_rollback_bad_input_refused_before_connecting(closed_port, tmp_path, case):
    inventory = write_inventory(tmp_path / 'windows.yml', None, closed_port)
    extra, word = {
        'path': (dict(rollback_win_path='winrb.exe'), "got 'winrb.exe'"),
        'release_id': (dict(release_id='../1.0.0'), "got '../1.0.0'"),
    }[case]
    r = testlib.playbook(inventory, 'rollback', dict(app=RB_APP, rollback_hosts=WINDOWS_HOSTS, **extra),
                         tmp_path=tmp_path)
    assert r.recap[WIN_HOST]['failed'] == 1 and r.recap[WIN_HOST]['unreachable'] == 0, r
    failed = [name for name, text in task_sections(r.out) if 'fatal: [%s]: FAILED!' % WIN_HOST in text]
    assert failed == [WIN_INPUT_TASK], r
    assert 'nothing was changed' in r.out and word in r.out, r
    assert 'wsman' not in r.out and 'HTTPSConnectionPool' not in r.out, r


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({'error_rate': 0.01}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def metrics_url():
    """A metrics endpoint on 127.0.0.1 (the controller) answering {"error_rate": 0.01}."""
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d/metrics' % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_windows_canary_analysis_metric_on_controller_only(closed_port, metrics_url, tmp_path):
    """The canary's analysis of Windows batch hosts (as after their swap): no Linux health probe,
    the metric delegated to the controller with run_on=controller, and run_on=host refused."""
    metric = {'url': metrics_url, 'query': 'error_rate', 'threshold': 0.05, 'count': 1, 'interval': 0}
    inv = {'all': {'children': {'windows': windows_group(closed_port)}}}
    group = inv['all']['children']['windows']
    group['hosts'] = {
        'win-ctl': dict(group['hosts'][WIN_HOST], canary_metrics=dict(metric, run_on='controller')),
        'win-host': dict(group['hosts'][WIN_HOST], canary_metrics=dict(metric, run_on='host')),
    }
    inventory = tmp_path / 'windows.yml'
    inventory.write_text(yaml.safe_dump(inv))
    play = tmp_path / 'analyse.yml'
    play.write_text(yaml.safe_dump([{
        'name': 'Analyse a batch of Windows hosts', 'hosts': 'windows', 'gather_facts': False,
        'tasks': [
            # What deploy_host and the canary's main.yml leave behind for a deployed batch.
            {'name': 'Be a deployed Windows batch', 'ansible.builtin.set_fact': {
                'deploy_host_platform': 'windows', 'canary__batch_number': 1, 'canary__batch': '{{ ansible_play_batch }}'}},
            {'name': 'Analyse', 'ansible.builtin.include_role': {'name': 'hotswap.deploy.canary', 'tasks_from': 'analyse'},
             'vars': {'canary_app': APP, 'canary_version': '1.0.0'}},
            {'name': 'Show the verdicts', 'ansible.builtin.debug': {
                'msg': 'VERDICT {{ inventory_hostname }} '
                       '{{ {"host": canary__host, "batch": canary__verdict} | to_json | b64encode }}'}},
        ],
    }]))
    proc = testlib.run([os.path.join(testlib.VENV_BIN, 'ansible-playbook'), '-i', str(inventory), '-c', 'ssh',
                        str(play)], 'ssh')
    assert proc.rc == 0, proc
    for host in ('win-ctl', 'win-host'):
        assert proc.recap[host]['unreachable'] == 0 and proc.recap[host]['failed'] == 0, proc
    sections = dict(task_sections(proc.out))
    health = sections['hotswap.deploy.canary : Probe the health of the batch host']
    assert 'skipping: [win-ctl]' in health and 'skipping: [win-host]' in health, proc
    on_host = sections['hotswap.deploy.canary : Measure the metrics of the batch host']
    assert 'skipping: [win-ctl]' in on_host and 'skipping: [win-host]' in on_host, proc
    measured = sections['hotswap.deploy.canary : Measure the metrics of the batch host from the controller']
    assert re.search(r'^ok: \[win-ctl -> localhost\]', measured, re.M), proc
    assert 'win-host' not in measured or 'skipping: [win-host]' in measured, proc
    verdicts = dict((host, json.loads(base64.b64decode(data)))
                    for host, data in re.findall(r'VERDICT (\S+) ([A-Za-z0-9+/=]+)', sections['Show the verdicts']))
    assert verdicts['win-ctl']['host']['analysis'] == 'pass', verdicts
    assert 'metric passed' in verdicts['win-ctl']['host']['analysis_reason'], verdicts
    assert verdicts['win-host']['host']['analysis'] == 'fail', verdicts
    assert 'set canary_metrics.run_on: controller' in verdicts['win-host']['host']['analysis_reason'], verdicts
    assert verdicts['win-ctl']['batch']['result'] == 'fail', verdicts
    assert 'win-host: analysis fail' in verdicts['win-ctl']['batch']['reasons'], verdicts


def test_windows_metric_on_the_host_refused_before_the_first_batch(closed_port, metrics_url, tmp_path):
    """deploy.yml's first play (on the controller) refuses run_on=host for a Windows host: nothing connects."""
    metric = {'url': metrics_url, 'query': 'error_rate', 'threshold': 0.05}
    r = run_windows_only(tmp_path, closed_port, canary_metrics=metric)
    assert r.rc != 0, r
    assert WIN_HOST not in r.recap, r
    assert 'canary_metrics.run_on is host, but %s is a Windows host' % WIN_HOST in r.out, r
    assert 'Set canary_metrics.run_on: controller' in r.out, r
    assert 'wsman' not in r.out and 'HTTPSConnectionPool' not in r.out, r
