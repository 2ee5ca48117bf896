# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""deploy.yml's checks of its inputs before any host is touched (playbooks/tasks/check_inputs.yml), in one task:
the extra vars and the rollout, the hosts the pattern matches, the service settings - in that order, the first
problem found is the message.
"""

from __future__ import annotations

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils import service

ROLLOUTS = ('canary', 'blue_green')

MISSING_VARS_MSG = (
    'deploy.yml needs extra vars app, version, checksum (sha256:<hex>) and artifact (a path on the controller) or '
    'artifact_url, e.g. -e app=myapp -e version=1.2.3 -e artifact=dist/myapp -e checksum=sha256:<hex> (Windows '
    'hosts: win_checksum and win_artifact or win_artifact_url); rollout is canary (the default) or blue_green, got '
    'rollout=%s. To switch a blue-green app back: -e rollout=blue_green -e blue_green_action=switch_back '
    '-e app=myapp')

NO_HOSTS_MSG = ("deploy.yml deploys %(app)s only to the hosts that ask for it: -e deploy_hosts=<host pattern>, or an "
                "inventory group named '%(app)s'. %(why)s Nothing was changed.")


def _defined(variables, name):
    return name in variables


def _given(variables, name):
    """A variable defined with a value that is not empty."""
    return _defined(variables, name) and len(str(variables[name])) > 0


def _get(variables, name, default):
    return variables[name] if _defined(variables, name) else default


def missing_vars_problem(variables):
    """The extra vars: app, a known rollout, and what to deploy (Linux or Windows artifact) unless a blue-green
    app is switched back."""
    rollout = _get(variables, 'rollout', 'canary')
    switch_back = rollout == 'blue_green' and _get(variables, 'blue_green_action', 'deploy') == 'switch_back'
    linux = _given(variables, 'checksum') and (_defined(variables, 'artifact') or _defined(variables, 'artifact_url'))
    windows = _given(variables, 'win_checksum') and (_defined(variables, 'win_artifact')
                                                     or _defined(variables, 'win_artifact_url'))
    what = _given(variables, 'version') and (linux or windows)
    if _given(variables, 'app') and rollout in ROLLOUTS and (switch_back or what):
        return ''
    return MISSING_VARS_MSG % rollout


def no_hosts_problem(variables, hosts):
    """Only the hosts that asked for the app: an explicit pattern, or the group named after the app."""
    if hosts:
        return ''
    app = variables['app']
    if _defined(variables, 'deploy_hosts'):
        why = 'The pattern %s matches no host of the inventory.' % variables['deploy_hosts']
    else:
        why = 'The inventory has no group %s (or it is empty).' % app
    return NO_HOSTS_MSG % dict(app=app, why=why)


def service_settings_problem(variables):
    """The service settings as deploy.yml completes them (hotswap_service) - checked before any host is touched."""
    try:
        service.service_settings(variables, variables['app'], _get(variables, 'listen_port', 8080))
    except HotswapError as exc:
        return exc.msg
    return ''


def deploy_input_problem(variables, hosts):
    """The first problem of deploy.yml's inputs (``variables``: the run's variables, ``hosts``: the hosts the deploy
    pattern matches), or ''."""
    return (missing_vars_problem(variables) or no_hosts_problem(variables, hosts)
            or service_settings_problem(variables))


class FilterModule(object):
    def filters(self):
        return {'deploy_input_problem': deploy_input_problem}
