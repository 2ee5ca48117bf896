# -*- coding: utf-8 -*-
"""hotswap.deploy.blue_green on two real hosts (one over ssh, one over paramiko_ssh), with real nginx and real load.

The load probe runs on the controller against each host's published port 80 (nginx, the public
port of the role). Each test runs its own app and removes it afterwards, so the next one gets
port 80. HOTSWAP_TEST_COLLECTIONS points the runs at another installed copy of the collection
(default build/collections, as `make collection` installs it).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

import pytest

import testlib

sys.path.insert(0, os.path.join(testlib.REPO, 'tests', 'hosts'))
sys.path.insert(0, os.path.join(testlib.REPO, 'tests', 'thirdparty'))
import fetch  # noqa: E402  pylint: disable=wrong-import-position
import testhosts  # noqa: E402

PUBLIC = 80
PLAYBOOK = os.path.join(testlib.REPO, 'tests', 'integration', 'playbooks', 'blue_green.yml')
# after_activate hook: the new slot dies right after nginx switched to it, as a crashing release would.
# It reads hotswap_hook, the dict every hook reads (docs/hooks.md), and writes it down for the test.
CRASH_HOOK = '''---
- name: Note what the hook reads
  ansible.builtin.copy:
    content: "{{ hotswap_hook | to_json }}"
    dest: /run/hs-bg-hook.json
    mode: "0644"
- name: Stop the slot nginx has just switched to
  ansible.builtin.systemd_service:
    name: "{{ hotswap_hook.app }}-{{ hotswap_hook.target_slot }}.service"
    state: stopped
'''
RESULTS = testlib.RESULTS
RESULT_RE = re.compile(r'BLUE_GREEN_RESULT (\{.*\})"?\s*$', re.M)


@pytest.fixture(scope='module')
def bg_fleet():
    installed = os.path.join(testlib.COLLECTIONS, 'ansible_collections', 'hotswap', 'deploy', 'MANIFEST.json')
    assert os.path.exists(installed), 'the built collection is not installed: run `make collection`'
    prefix = 'hs-bg-%d' % os.getpid()
    hosts = testhosts.mix_connections(prefix, testhosts.up(prefix, 2))
    try:
        yield hosts, testhosts.inventory_path(prefix)
    finally:
        testhosts.down(prefix)


def cleanup(hosts, app):
    """Remove the app's slots, timer, nginx config and tree, so the next test gets port 80."""
    for host in hosts:
        testlib.host_sh(host, (
            'systemctl stop {a}-scale-down.timer {a}-scale-down.service >/dev/null 2>&1; '
            'systemctl disable --now {a}-blue.service {a}-green.service >/dev/null 2>&1; '
            'rm -f /etc/systemd/system/{a}-blue.service /etc/systemd/system/{a}-green.service '
            '/etc/nginx/conf.d/hotswap-{a}.conf; systemctl daemon-reload; systemctl reset-failed; '
            'systemctl reload nginx >/dev/null 2>&1; rm -rf /opt/{a}').format(a=app), check=False)


@pytest.fixture
def app(request, bg_fleet):
    name = 'bg' + re.sub('[^a-z]', '', request.node.name.split('[')[-1].rstrip(']'))[:6]
    yield name
    cleanup(bg_fleet[0], name)


def rid(version, artifact):
    return '%s-%s' % (version, testlib.sha256(artifact)[7:19])


def run(inventory, tmp_path, check=False, **extra):
    vars_file = os.path.join(str(tmp_path), 'bg-vars-%d.json' % time.monotonic_ns())
    v = dict(FAST_CHECKS, hotswap_service=SERVICE)
    v.update(extra)
    with open(vars_file, 'w') as f:
        json.dump(v, f)
    argv = [os.path.join(testlib.VENV_BIN, 'ansible-playbook'), '-i', inventory, PLAYBOOK,
            '-e', '@' + vars_file]
    if check:
        argv.append('--check')
    r = testlib.run(argv)
    r.results = {d['host']: d for d in (json.loads(m.replace('\\"', '"')) for m in RESULT_RE.findall(r.out))}
    return r


def deploy(inventory, tmp_path, app, version, fault='', **extra):
    artifact = testlib.build_app(version, fault=fault)
    v = dict(blue_green_app=app, blue_green_version=version, blue_green_artifact=artifact,
             blue_green_checksum=testlib.sha256(artifact), blue_green_ready_timeout=15)
    v.update(extra)
    return run(inventory, tmp_path, **v)


# Two passing probes 0.3 s apart instead of 1 s: the checks stay real, the runs get shorter.
FAST_CHECKS = dict(blue_green_health_interval=0.3)
# The service settings the role reads (hotswap_service): the demo app's flags for a slot (the
# collection passes none by default); {address} and {port} become the slot's.
SERVICE = dict(service_args='--listen {address}:{port}')


def start_load(hosts, keepalive, rate):
    return testlib.start_load(hosts, PUBLIC, rate, keepalive=keepalive, duration=240)


def finish_load(probe, name):
    time.sleep(1)
    return testlib.finish_load(probe, name)


brief = testlib.brief


def slot_state(host, app):
    """What a deploy may change on a host (tree, ledger, units, nginx, processes), as text."""
    return testlib.host_sh(host, (
        "find /opt/{a} /etc/nginx/conf.d /etc/nginx/sites-enabled /etc/systemd/system -maxdepth 3 "
        "-printf '%p %y %l %s %T@\\n' 2>/dev/null | sort; cat /opt/{a}/.hotswap/*.json 2>/dev/null; "
        "for u in {a}-blue {a}-green nginx; do systemctl show -p ActiveState,MainPID,UnitFileState $u; done; "
        "systemctl is-active {a}-scale-down.timer; true").format(a=app), check=False)


def is_active(host, unit):
    return testlib.host_sh(host, 'systemctl is-active %s || true' % unit, check=False).strip()


def assert_runs_as_app_user(host, unit, app):
    """The slot runs as the app's own system user (service_user's default), hardened by default."""
    shown = testlib.host_sh(host, 'systemctl show -p User -p Group -p NoNewPrivileges -p ProtectSystem '
                                  '-p ProtectHome -p PrivateTmp -p MainPID %s' % unit).split()
    props = dict(line.split('=', 1) for line in shown)
    assert dict((k, v) for k, v in props.items() if k != 'MainPID') == dict(
        User=app, Group=app, NoNewPrivileges='yes', ProtectSystem='strict', ProtectHome='yes', PrivateTmp='yes'), \
        (host['name'], unit, props)
    uid = testlib.host_sh(host, 'id -u %s' % app).strip()
    assert testlib.host_sh(host, 'ps -o uid= -p %s' % props['MainPID']).strip() == uid, (host['name'], unit, props)


def test_switch_and_switch_back_under_load(bg_fleet, app, tmp_path):
    hosts, inventory = bg_fleet
    v1, v2 = testlib.build_app('1.0.0'), testlib.build_app('2.0.0')
    r = deploy(inventory, tmp_path, app, '1.0.0', blue_green_scale_down_delay=120)
    assert r.rc == 0, r
    for host in hosts:
        assert testlib.served_version(host, PUBLIC) == '1.0.0'
        assert r.results[host['name']]['slot'] == 'blue'
        assert_runs_as_app_user(host, '%s-blue.service' % app, app)

    # v2 into green under load, with and without keep-alive: nothing fails, nginx ends on v2.
    loads = {'keepalive': start_load(hosts, True, 60), 'close': start_load(hosts, False, 30)}
    time.sleep(1)
    r = deploy(inventory, tmp_path, app, '2.0.0', blue_green_scale_down_delay=120)
    assert r.rc == 0, r
    for kind, probe in loads.items():
        s = finish_load(probe, 'blue-green-switch-%s' % kind)
        assert s['sent'] > 100 and s['failed'] == 0, brief(s)
        for target, seen in s['versions'].items():
            assert {'1.0.0', '2.0.0'} <= set(seen), (target, brief(s))
    for host in hosts:
        res = r.results[host['name']]
        assert (res['slot'], res['previous_release'], res['release'], res['verdict'], res['changed']) == \
            ('green', rid('1.0.0', v1), rid('2.0.0', v2), 'pass', True), res
        assert testlib.served_version(host, PUBLIC) == '2.0.0'
        # The old slot still runs (instant switch back) until its scale-down timer fires.
        assert is_active(host, '%s-blue' % app) == 'active'
        assert is_active(host, '%s-scale-down.timer' % app) == 'active'
        assert testlib.host_sh(host, 'readlink /opt/%s/current' % app).strip() == 'releases/' + rid('2.0.0', v2)
        state = json.loads(testlib.host_sh(host, 'cat /opt/%s/.hotswap/blue_green.json' % app))
        assert (state['live'], state['blue'], state['green']) == ('green', rid('1.0.0', v1), rid('2.0.0', v2))

    # The same release again: nothing changes.
    r = deploy(inventory, tmp_path, app, '2.0.0', blue_green_scale_down_delay=120)
    assert r.rc == 0, r
    for host, counts in r.recap.items():
        assert counts['changed'] == 0, (host, r)

    # Switch back under load: nginx goes back to the still-running blue slot; keep=1 must not prune
    # the release the green slot holds (neither current nor a good release any more).
    loads = {'keepalive': start_load(hosts, True, 60), 'close': start_load(hosts, False, 30)}
    time.sleep(1)
    r = run(inventory, tmp_path, blue_green_app=app, blue_green_action='switch_back', blue_green_keep=1)
    assert r.rc == 0, r
    for kind, probe in loads.items():
        s = finish_load(probe, 'blue-green-switch-back-%s' % kind)
        assert s['sent'] > 100 and s['failed'] == 0, brief(s)
        for target, seen in s['versions'].items():
            assert '1.0.0' in seen, (target, brief(s))
    times = {}
    for host in hosts:
        res = r.results[host['name']]
        assert (res['slot'], res['release'], res['verdict']) == ('blue', rid('1.0.0', v1), 'pass'), res
        assert testlib.served_version(host, PUBLIC) == '1.0.0'
        ledger = json.loads(testlib.host_sh(host, 'cat /opt/%s/.hotswap/ledger.json' % app))
        assert ledger['releases'][rid('2.0.0', v2)]['state'] == 'failed'
        assert testlib.host_sh(host, 'test -d /opt/%s/slots/green/ && echo kept' % app).strip() == 'kept'
        times[host['name']] = res['switch_seconds']
    # The switch (config write, nginx -t, graceful reload) as the role measured it on each host.
    print('switch back (nginx switch task) seconds per host: %s; whole play %.1f s' % (times, r.seconds))
    with open(os.path.join(RESULTS, 'blue-green-switch-back-times.json'), 'w') as f:
        json.dump({'switch_seconds': times, 'play_seconds': round(r.seconds, 1)}, f, indent=2)
    assert all(isinstance(t, (int, float)) and t > 0 for t in times.values()), times


def test_failed_releases_leave_the_old_one_serving(bg_fleet, app, tmp_path):
    hosts, inventory = bg_fleet
    temp_dirs_before = dict((host['name'], testlib.ansible_temp_dirs(host)) for host in hosts)
    v1 = testlib.build_app('1.0.0')
    r = deploy(inventory, tmp_path, app, '1.0.0', blue_green_scale_down_delay=0)
    assert r.rc == 0, r

    # Reports the wrong version: the direct check on the idle slot fails; nginx never moves.
    probe = start_load(hosts, True, 60)
    r = deploy(inventory, tmp_path, app, '3.0.0', fault='wrong-version', blue_green_ready_timeout=5)
    s = finish_load(probe, 'blue-green-fault-wrong-version')
    assert r.rc != 0, r
    assert "at 'Start the release in the idle slot (stage version)'" in r.out, r
    assert 'it was not switched' in r.out, r
    assert s['failed'] == 0 and set().union(*s['versions'].values()) == {'1.0.0'}, brief(s)
    for host in hosts:
        assert testlib.served_version(host, PUBLIC) == '1.0.0'
        assert is_active(host, '%s-green' % app) == 'inactive'
        assert testlib.host_sh(host, 'test -e /opt/%s/slots/green || echo none' % app).strip() == 'none'

    # Passes the direct check, then dies right after nginx switched to it (an after_activate hook
    # stops it, as a crash would): the check through nginx fails and nginx goes back to blue. The
    # old slot is nginx's backup meanwhile, so no request fails.
    hook = tmp_path / 'crash.yml'
    hook.write_text(CRASH_HOOK)
    probe = start_load(hosts, True, 60)
    r = deploy(inventory, tmp_path, app, '3.1.0', blue_green_health_retries=3,
               blue_green_hooks={'after_activate': str(hook)})
    s = finish_load(probe, 'blue-green-fault-crash-after-switch')
    assert r.rc != 0, r
    assert "at 'Verify through the load balancer'" in r.out, r
    assert 'nginx was switched back to the blue slot' in r.out and 'its check through port 80: pass' in r.out, r
    assert s['failed'] == 0, brief(s)
    rid31 = rid('3.1.0', testlib.build_app('3.1.0'))
    for host in hosts:
        hooked = json.loads(testlib.host_sh(host, 'cat /run/hs-bg-hook.json'))
        assert hooked['rollout'] == 'blue_green' and hooked['action'] == 'deploy' and hooked['batch'] is None, hooked
        assert hooked['release'] == rid31 and hooked['previous_release'] == rid('1.0.0', v1), hooked
        assert (hooked['target_slot'], hooked['live_slot']) == ('green', 'blue') and hooked['app'] == app, hooked
        assert hooked['release_dir'] == '/opt/%s/releases/%s' % (app, rid31) and hooked['host'] == host['name'], hooked
        assert testlib.served_version(host, PUBLIC) == '1.0.0'
        assert testlib.host_sh(host, 'readlink /opt/%s/current' % app).strip() == 'releases/' + rid('1.0.0', v1)
        ledger = json.loads(testlib.host_sh(host, 'cat /opt/%s/.hotswap/ledger.json' % app))
        assert ledger['releases'][rid31]['state'] == 'failed'
        assert json.loads(testlib.host_sh(host, 'cat /opt/%s/.hotswap/blue_green.json' % app))['live'] == 'blue'

    # Bad input (both slots on one port) and a check-mode run change nothing on any host.
    before = {h['name']: slot_state(h, app) for h in hosts}
    r = deploy(inventory, tmp_path, app, '2.0.0', blue_green_ports={'blue': 8081, 'green': 8081})
    assert r.rc != 0, r
    assert 'blue slot 8081, green slot 8081' in r.out and 'Each slot needs its own port' in r.out, r
    assert all(c['failed'] == 1 and c['changed'] == 0 for c in r.recap.values()), r
    assert {h['name']: slot_state(h, app) for h in hosts} == before
    r = deploy(inventory, tmp_path, app, '2.0.0', check=True)
    assert r.rc == 0, r
    assert all(res['slot'] == 'green' and res['changed'] for res in r.results.values()), r.results
    assert {h['name']: slot_state(h, app) for h in hosts} == before
    for host in hosts:
        assert testlib.served_version(host, PUBLIC) == '1.0.0'
        # No temp dir of a push left by the deploys, failed or not.
        assert testlib.ansible_temp_dirs(host) == temp_dirs_before[host['name']], host['name']


def test_deploy_playbook_rolls_out_blue_green_and_switches_back(bg_fleet, app, tmp_path):
    """deploy.yml -e rollout=blue_green, as users run it; switch back needs only the app."""
    hosts, inventory = bg_fleet
    common = dict(FAST_CHECKS, app=app, rollout='blue_green', blue_green_scale_down_delay=60)
    for version in ('1.0.0', '2.0.0'):
        artifact = testlib.build_app(version)
        r = testlib.playbook(inventory, 'deploy', dict(common, version=version, artifact=artifact,
                                                       checksum=testlib.sha256(artifact)), tmp_path=tmp_path)
        assert r.rc == 0, r
        assert [testlib.served_version(h, PUBLIC) for h in hosts] == [version] * len(hosts)
    assert ' -> %s; pass;' % rid('2.0.0', testlib.build_app('2.0.0')) in r.out, r
    r = testlib.playbook(inventory, 'deploy', dict(common, blue_green_action='switch_back'), tmp_path=tmp_path)
    assert r.rc == 0, r
    assert [testlib.served_version(h, PUBLIC) for h in hosts] == ['1.0.0'] * len(hosts)


def test_deploy_yml_gives_blue_green_the_release_files(bg_fleet, app, tmp_path):
    """deploy.yml -e rollout=blue_green takes release_files and environment like the canary: the config
    comes with its release into the slot, and switching back brings the old one back."""
    hosts, inventory = bg_fleet
    artifact = testlib.build_app('1.0.0')

    def deploy_vars(greeting, **extra):
        v = dict(app=app, version='1.0.0', artifact=artifact, checksum=testlib.sha256(artifact), rollout='blue_green',
                 release_files=[{'dest': 'conf/app.conf', 'content': 'greeting = %s\n' % greeting}],
                 environment={'HOTSWAP_MESSAGE': 'bg'}, blue_green_health_interval=0.3,
                 service_args='--listen {address}:{port} --config /opt/%s/slots/{slot}/conf/app.conf' % app)
        v.update(extra)
        return v

    def served():
        return [json.loads(testlib.http_get('http://127.0.0.1:%d/healthz' % h['ports'][PUBLIC])) for h in hosts]

    r = testlib.playbook(inventory, 'deploy', deploy_vars('one'), tmp_path=tmp_path)
    assert r.rc == 0, r
    assert [(h.get('greeting'), h.get('message')) for h in served()] == [('one', 'bg')] * len(hosts)

    r = testlib.playbook(inventory, 'deploy', deploy_vars('two'), tmp_path=tmp_path)
    assert r.rc == 0, r
    assert [h.get('greeting') for h in served()] == ['two'] * len(hosts)
    one = testlib.release_id('1.0.0', artifact, files=[{'dest': 'conf/app.conf', 'content': 'greeting = one\n'}],
                             environment={'HOTSWAP_MESSAGE': 'bg'}, binary=app)
    assert 'conf/app.conf' in testlib.host_sh(hosts[0], 'cd /opt/%s/releases/%s && find conf -type f' % (app, one))

    # The same service settings (the slot units stay as they are), no artifact: the idle slot's release.
    back = dict((k, v) for k, v in deploy_vars('one').items() if k in ('app', 'rollout', 'environment', 'service_args'))
    r = testlib.playbook(inventory, 'deploy', dict(back, blue_green_action='switch_back'), tmp_path=tmp_path)
    assert r.rc == 0, r
    assert [h.get('greeting') for h in served()] == ['one'] * len(hosts)


def test_a_service_nobody_here_wrote_rolls_out_blue_green(bg_fleet, app, tmp_path):
    """Debian's prometheus-pushgateway through deploy.yml -e rollout=blue_green, as the non-root user
    `deploy` with become: its own flags, its own user and state directory, its version in JSON. Two
    builds of the same version (other bytes: another release) switched under load, a re-run, a build
    promised as another version (refused before nginx moves), a switch back."""
    hosts, inventory = bg_fleet
    info = fetch.fetch('prometheus-pushgateway')
    first = info['binaries'][0]
    second = fetch.other_build(first, str(tmp_path / 'pushgateway-other'))
    version = info['version'].split(':')[-1].rsplit('-', 1)[0]  # 1.5.0-1+b6 -> 1.5.0, what it reports
    state_dir = '/var/lib/%s' % app

    def deploy_vars(artifact, **extra):
        v = dict(FAST_CHECKS, app=app, rollout='blue_green', version=version, artifact=artifact,
                 checksum=testlib.sha256(artifact), ansible_user='deploy', ansible_become=True,
                 service_args='--web.listen-address={address}:{port} --persistence.file=%s/metrics.store' % state_dir,
                 state_dirs=[state_dir], health_url='http://127.0.0.1:8081/api/v1/status',
                 version_query='data.build_information.version', blue_green_scale_down_delay=60)
        v.update(extra)
        return v

    def live(host):
        """The live slot, and the release its process runs (from the binary the kernel ran)."""
        slot = json.loads(testlib.host_sh(host, 'cat /opt/%s/.hotswap/blue_green.json' % app))['live']
        pid = testlib.host_sh(host, 'systemctl show -P MainPID %s-%s.service' % (app, slot)).strip()
        exe = testlib.host_sh(host, 'readlink /proc/%s/exe' % pid).strip()
        return slot, exe.split('/releases/')[1].split('/')[0]

    def served(host):
        status = json.loads(testlib.http_get('http://127.0.0.1:%d/api/v1/status' % host['ports'][PUBLIC]))
        return status['data']['build_information']['version']

    try:
        r = testlib.playbook(inventory, 'deploy', deploy_vars(first), tmp_path=tmp_path)
        assert r.rc == 0, r
        for host in hosts:
            assert live(host) == ('blue', rid(version, first)) and served(host) == version
            assert_runs_as_app_user(host, '%s-blue.service' % app, app)
            assert testlib.host_sh(host, 'stat -c %%U %s' % state_dir).strip() == app
            assert 'ReadWritePaths=%s' % state_dir in testlib.host_sh(
                host, 'cat /etc/systemd/system/%s-blue.service' % app)

        # The other build into green under load through nginx: the old slot serves until nginx moved.
        probe = testlib.start_load(hosts, PUBLIC, 60, keepalive=True, duration=240, path='/-/ready')
        time.sleep(1)
        r = testlib.playbook(inventory, 'deploy', deploy_vars(second), tmp_path=tmp_path)
        s = finish_load(probe, 'blue-green-pushgateway-switch')
        assert r.rc == 0, r
        assert ' -> %s; pass;' % rid(version, second) in r.out, r
        assert s['sent'] > 100 and s['failed'] == 0, brief(s)
        for host in hosts:
            assert live(host) == ('green', rid(version, second)) and served(host) == version
            assert is_active(host, '%s-blue' % app) == 'active'  # until the scale-down timer

        r = testlib.playbook(inventory, 'deploy', deploy_vars(second), tmp_path=tmp_path)
        assert r.rc == 0, r
        assert all(c['changed'] == 0 for c in r.recap.values()), r

        # Promised as another version than it reports: the direct check of the idle slot refuses it.
        r = testlib.playbook(inventory, 'deploy', deploy_vars(first, version=version + '.99'), tmp_path=tmp_path)
        assert r.rc != 0, r
        assert "expected '%s.99'" % version in r.out and 'it was not switched' in r.out, r
        for host in hosts:
            assert live(host) == ('green', rid(version, second))

        back = dict((k, v) for k, v in deploy_vars(second).items() if k not in ('version', 'artifact', 'checksum'))
        r = testlib.playbook(inventory, 'deploy', dict(back, blue_green_action='switch_back'), tmp_path=tmp_path)
        assert r.rc == 0, r
        for host in hosts:
            assert live(host) == ('blue', rid(version, first)) and served(host) == version
    finally:
        for host in hosts:
            testlib.host_sh(host, 'rm -rf %s' % state_dir, check=False)
