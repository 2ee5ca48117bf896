# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations


class ModuleDocFragment(object):
    # fail_on of the modules that return a pass / fail / inconclusive verdict (health_check,
    # metric_analysis); its choices are health.FAIL_ON_CHOICES.
    DOCUMENTATION = r'''
options:
  fail_on:
    description:
      - Which verdicts make the task fail. The result is returned either way.
      - V(fail_or_inconclusive) - the task fails unless the verdict is V(pass). A V(skipped) verdict (check mode of
        M(hotswap.deploy.metric_analysis)) never fails.
      - V(fail) - the task fails only on a V(fail) verdict (the service answered wrongly, or the metric was
        measured out of bounds); an V(inconclusive) verdict is returned for the play to decide, for
        example to pause for a human or to count it against an error budget.
      - V(never) - the task never fails on the verdict; C(register) the result and decide with C(when) or
        C(failed_when). Invalid options still fail the task.
    type: str
    choices: [fail, fail_or_inconclusive, never]
    default: fail_or_inconclusive
'''
