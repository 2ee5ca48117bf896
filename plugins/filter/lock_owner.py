# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Who holds the deploy lock: one name for the run of a deploy, one for the deploy (lock.py reclaim_key)."""

from __future__ import annotations

import getpass
import os
import socket

from ansible.errors import AnsibleFilterError


def _controller_user():
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        return os.environ.get('USER') or 'ansible'


def lock_owner(app, action, job_id='', deploy_id=''):
    """``{'owner', 'reclaim_key'}`` for one run of ``action`` (e.g. ``deploy <release id>``) of ``app``.

    The key names the deploy: app and action. The owner adds the run: the AWX job id when there
    is one - every job, relaunches too, gets its own, while the controller host name changes with
    every job's pod - else controller user and host, the same for every re-run from that shell. A
    relaunch reclaims its predecessor's lock by the key, and the predecessor, no longer the owner,
    can write no more. ``deploy_id`` set by the user is both.
    """
    deploy_id = str(deploy_id or '').strip()
    if deploy_id:
        return {'owner': deploy_id, 'reclaim_key': deploy_id}
    app = str(app or '').strip()
    action = str(action or '').strip()
    if not app or not action:
        raise AnsibleFilterError('naming the deploy lock holder: app (%r) and action (%r) must not be empty. '
                                 'Pass the application name and what the run does, for example '
                                 "'myapp' | hotswap.deploy.lock_owner('deploy 1.4.2-3a7bd3e2360a').")
    key = '%s %s' % (app, action)
    job = str(job_id if job_id is not None else '').strip()
    run = 'AWX job %s' % job if job else '%s@%s' % (_controller_user(), socket.gethostname())
    return {'owner': '%s (%s)' % (key, run), 'reclaim_key': key}


class FilterModule(object):
    def filters(self):
        return {'lock_owner': lock_owner}
