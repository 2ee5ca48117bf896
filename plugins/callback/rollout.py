# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
name: rollout
type: aggregate
short_description: Follow a rollout batch by batch, with a summary table and an HTML report
version_added: 0.7.0
description:
  - Shows, beside the stdout callback, which batch of a rollout is deploying, each host's outcome (release,
    seconds, verdict, or the stage it failed at and whether it was switched back), each batch's verdict and
    time, and at the end one table with a row per host.
  - Follows the roles of this collection - C(canary) (and so C(playbooks/deploy.yml)), C(deploy_host),
    C(blue_green) and C(rollback) - from the facts they set (C(canary__batch), C(deploy_host_result),
    C(canary__host), C(canary__verdict), C(blue_green_result), C(rollback_result)); other plays are not shown.
  - Reads only the keys it shows of those results, never a whole result or a task's arguments.
  - With O(report_dir), writes C(rollout-<UTC time>.html) there, a self-contained page (inline CSS and SVG,
    no script, no link) with a timeline of the batches and hosts - deploy, restart, bake, analysis and
    switch back, coloured by verdict - and the tables of batches and hosts; and the same data as
    C(rollout-<UTC time>.json) beside it.
  - It adds to the stdout callback, it does not replace it. Enable it with C(callbacks_enabled =
    hotswap.deploy.rollout) in the C([defaults]) section of C(ansible.cfg), or
    E(ANSIBLE_CALLBACKS_ENABLED=hotswap.deploy.rollout).
requirements:
  - enabled in C(callbacks_enabled) (C(ansible.cfg)) or E(ANSIBLE_CALLBACKS_ENABLED)
options:
  report_dir:
    description:
      - The directory to write the HTML report and its JSON data into, created when missing.
      - Not set, no report is written.
    type: path
    env:
      - name: HOTSWAP_REPORT_DIR
    ini:
      - section: callback_hotswap_rollout
        key: report_dir
'''

import os
import time

from ansible.plugins.callback import CallbackBase

from ansible_collections.hotswap.deploy.plugins.plugin_utils import rollout_report as report


def _task(task):
    role = getattr(task, '_role', None)
    return report.Task(uuid=getattr(task, '_uuid', None) or id(task), name=task.name or task.get_name(),
                       action=task.action, role=role.get_name() if role else None,
                       run_once=bool(getattr(task, 'run_once', False)))


def _serial(play):
    """The hosts of this serial batch of the play and how many batches it has; (None, None) when unknown."""
    try:
        inventory = play.get_variable_manager()._inventory
        batch = [h.get_name() for h in inventory.get_hosts(play.hosts, order=play.order)]
        every = inventory.get_hosts(play.hosts, ignore_restrictions=True, order=play.order)
        return batch, report.batch_count(play.serial, len(every))
    except Exception:  # only the headers lose their host list and batch count
        return None, None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'hotswap.deploy.rollout'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display=display)
        self.rollout = report.Rollout()

    def _show(self, lines):
        for line in lines:
            self._display.display(line)

    def v2_playbook_on_play_start(self, play):
        hosts, total = _serial(play)
        self._show(self.rollout.play_start(time.time(), hosts, total))

    def v2_runner_on_start(self, host, task):
        self._show(self.rollout.task_start(time.time(), host.get_name(), _task(task)))

    def _end(self, result, status):
        self._show(self.rollout.task_end(time.time(), result._host.get_name(), _task(result._task), status,
                                         result._result))

    def v2_runner_on_ok(self, result):
        self._end(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._end(result, 'ignored' if ignore_errors else 'failed')

    def v2_runner_on_unreachable(self, result):
        self._end(result, 'unreachable')

    def v2_runner_on_skipped(self, result):
        self._end(result, 'skipped')

    def v2_playbook_on_stats(self, stats):
        self._show(self.rollout.finish(time.time()))
        if not self.rollout.batches:
            return
        data = self.rollout.to_dict()
        self._show(report.summary_lines(data))
        try:
            directory = self.get_option('report_dir')
        except KeyError:
            directory = None
        if directory:
            self._write(directory, data)

    def _write(self, directory, data):
        base = os.path.join(directory, time.strftime('rollout-%Y%m%dT%H%M%SZ', time.gmtime()))
        try:
            os.makedirs(directory, exist_ok=True)
            with open(base + '.json', 'w') as f:
                f.write(report.render_json(data))
            with open(base + '.html', 'w') as f:
                f.write(report.render_html(data))
        except OSError as e:
            self._display.warning('hotswap.deploy.rollout: could not write the report to %s: %s' % (directory, e))
            return
        self._display.display('Rollout report: %s.html' % base)
