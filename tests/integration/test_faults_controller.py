# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The controller SIGKILLed at each stage of a deploy under load (ansible-playbook and its ssh connections).

After each kill: every host has a working `current` and serves the old or the new version, no request
failed (systemd_socket), the lock of the killed run is still there and the same deploy run again takes
it back (same app and release), converges, and once more changes nothing; no lock or partial is left.
Each case is recorded for docs/reliability.md (faultlib.record).
"""

from __future__ import annotations

import time

import pytest

import faultlib
import testlib

APP = 'fltctl'
PORT = faultlib.PORT
MODULE = 'faults_controller'

# (stage, the line that starts it, seconds after that line, the version deployed then, the lock left). Within a
# host's deploy the lines are host_deploy's progress lines (-v); the canary's probe runs after the lock is released.
# With no bake the canary does not probe again what the deploy verified: that case bakes 1 s.
STAGES = (
    ('after the upload', 'Install the systemd units of the restart strategy', 0, '2.0.0', 'held', {}),
    ('after the switch', 'Restart the service on the new release', 0, '2.1.0', 'held', {}),
    ('during the restart', 'Restart the service on the new release', 0.45, '2.2.0', 'held', {}),
    ('during verification', 'Probe the health of the batch host', 0.2, '2.3.0', 'free', {'canary_bake_time': 1}),
)


@pytest.fixture(scope='module')
def hosts(fleet):
    yield fleet
    testlib.remove_app(fleet.hosts, APP)


def live_version(hosts):
    return {testlib.served_version(h, PORT) for h in hosts}


@pytest.mark.parametrize('stage', STAGES, ids=[s[0].replace(' ', '-') for s in STAGES])
def test_controller_killed(hosts, stage, tmp_path):
    name, marker, delay, version, lock, extra = stage
    if live_version(hosts) == {None}:
        v1 = testlib.build_app('1.0.0')
        r = testlib.playbook(hosts.inventory, 'deploy', faultlib.deploy_vars(APP, '1.0.0', v1), tmp_path=tmp_path)
        assert r.rc == 0, r
    old = live_version(hosts)
    assert len(old) == 1 and None not in old, old
    vars_ = faultlib.deploy_vars(APP, version, testlib.build_app(version), **extra)

    def kill(proc):
        time.sleep(delay)
        faultlib.kill_controller(proc)

    load = testlib.start_load(hosts.hosts, PORT, rate=60, keepalive=True, duration=120)
    try:
        r = testlib.playbook_interrupted(hosts.inventory, 'deploy', vars_, tmp_path, marker, kill, verbosity=1)
        faultlib.assert_working(hosts.hosts, APP, old | {version})
        left = {h['name']: faultlib.leftovers(h, APP) for h in hosts}
        # The killed run's lock stays (nobody released it); the next run of the same deploy takes it back.
        assert all(v['lock'] == lock for v in left.values()), left
        faultlib.converge(hosts.inventory, vars_, tmp_path, hosts.hosts, APP, version)
    finally:
        summary = testlib.finish_load(load, 'fault-controller-%s' % name.replace(' ', '-'))
    assert r.fired and r.rc == -9, r
    assert summary['failed'] == 0, testlib.brief(summary)
    faultlib.record(MODULE, 'controller SIGKILLed %s' % name, 'kill -9 of ansible-playbook and its ssh connections '
                    '%.1f s after "%s"' % (delay, marker), faultlib.what_the_user_saw(r, killed=True), left,
                    requests=faultlib.load_brief(summary))
