# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
name: linear
short_description: ansible.builtin.linear, with Python's garbage collector kept off what the play has loaded
version_added: 0.7.0
description:
  - Runs a play exactly as P(ansible.builtin.linear#strategy) does - the same batches, task order,
    C(run_once), failures and handlers; it is that strategy.
  - At the first batch it runs, it collects once and moves every object the controller holds into Python's
    permanent generation (C(gc.freeze())), for the rest of the run. The playbook, the inventory and the
    variables Ansible has loaded by then are not scanned again by each full garbage
    collection, and the worker forked for each task and host does not copy the memory pages such a scan would
    touch. Objects made later are collected as usual.
  - Why (docs/benchmarks.md, findings of 2026-12-07, afternoon) - with the default collector a deploy of 5
    hosts spent about a quarter of its time in full collections of the controller's process; every task after
    the first large ones paid for them, whatever it did.
  - C(playbooks/deploy.yml) and C(playbooks/rollback.yml) run their plays with it when Ansible's configured
    strategy is C(linear) (the default); any other configured strategy (for example mitogen's) is used as
    configured.
notes:
  - "Use it in your own plays with C(strategy: hotswap.deploy.linear), or for every play with
    C(strategy = hotswap.deploy.linear) in the C([defaults]) section of C(ansible.cfg)."
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

import gc

from ansible.plugins.strategy.linear import StrategyModule as LinearStrategy


def freeze_loaded_objects():
    """Once per process: collect, then keep every object tracked so far out of later collections."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


class StrategyModule(LinearStrategy):

    def run(self, iterator, play_context):
        freeze_loaded_objects()
        return super(StrategyModule, self).run(iterator, play_context)
