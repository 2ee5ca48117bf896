# -*- coding: utf-8 -*-
"""Real test hosts for the integration tests: podman containers with systemd and sshd."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'hosts'))

import testhosts  # noqa: E402
import testlib  # noqa: E402

# Two hosts prove every per-host step and every disagreement between hosts; a third only costs time.
HOST_COUNT = 2


def _fleet(prefix, variant=None, count=HOST_COUNT):
    assert os.path.exists(os.path.join(testlib.INSTALLED, 'MANIFEST.json')), \
        'the built collection is not installed under build/collections: run `make collection`'
    hosts = testhosts.up(prefix, count, variant=variant)
    # The hosts take ssh and paramiko_ssh in turn, so every run of the suite proves both plugins.
    testhosts.mix_connections(prefix, hosts)
    try:
        yield Fleet(prefix, hosts, testhosts.inventory_path(prefix))
    finally:
        testhosts.down(prefix)


@pytest.fixture(scope='session')
def fleet():
    """Two hosts (ssh, paramiko_ssh) for the whole session; each test uses its own app name so they don't interfere."""
    yield from _fleet('hs-it-%d' % os.getpid())


@pytest.fixture(scope='session')
def fleet254():
    """Two hosts with systemd 254 (Type=notify-reload needs >= 253), started only when a test asks."""
    yield from _fleet('hs-it254-%d' % os.getpid(), variant='systemd254')


@pytest.fixture(scope='session')
def fleet5():
    """Five hosts for canary batches of 1, 25% and 100%, started only when a test asks."""
    yield from _fleet('hs-it5-%d' % os.getpid(), count=5)


class Fleet(object):
    def __init__(self, prefix, hosts, inventory):
        self.prefix = prefix
        self.hosts = hosts
        self.inventory = inventory

    def __iter__(self):
        return iter(self.hosts)


_APP_COUNTER = [0]


@pytest.fixture
def app_name():
    """A fresh app (base_dir, unit, port) per test, so tests share hosts without sharing state."""
    _APP_COUNTER[0] += 1
    return 'app%02d' % _APP_COUNTER[0]


@pytest.fixture
def app_port(app_name):
    return 9000 + _APP_COUNTER[0]


# The longest test scopes first (CI durations, docs/development.md): pytest-xdist's loadscope hands
# scopes out in collection order, so a long class started last would run alone at the end.
LONG_FIRST = ('test_restart_strategies.py::TestUnderLoad', 'test_blue_green.py', 'test_load_balancer.py', 'test_prometheus_canary.py',
              'test_molecule.py',
              'test_faults_controller.py', 'test_faults_host.py', 'test_rollback.py', 'test_deploy.py',
              'test_release_config.py', 'test_release_reload.py', 'test_real_services.py', 'test_canary.py',
              'test_restart_strategies.py', 'test_awx_runner.py', 'test_windows_controller.py', 'test_upgrade.py')


def _rank(item):
    for i, prefix in enumerate(LONG_FIRST):
        if prefix in item.nodeid:
            return i
    return len(LONG_FIRST) + (0 if '/integration/' in item.nodeid else 1)


def pytest_configure(config):
    """A new build/test-results/runs.jsonl per pytest run (the xdist controller clears it; workers append)."""
    if not hasattr(config, 'workerinput'):
        try:
            os.remove(os.path.join(testlib.RESULTS, 'runs.jsonl'))
        except FileNotFoundError:
            pass


def pytest_collection_modifyitems(session, config, items):  # pylint: disable=unused-argument
    items.sort(key=_rank)   # stable: the order within a scope stays as written
