# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Is this run one slice of an AWX/Automation Controller sliced job, and may the canary run in it?

AWX's job slicing runs a job template as a workflow of independent jobs, one per part of the inventory,
at the same time. Each slice would run a canary of its own: the first batch no longer gates the fleet.

AWX tells a slice's playbook neither its slice number nor the slice count: those are fields of the job
(``job_slice_number``, ``job_slice_count``, in the API), not extra vars. What a slice does get are the meta
extra vars of every job launched by a workflow: ``awx_job_launch_type`` is ``workflow``, and the workflow
job AWX creates for a sliced job template carries the template's name, so ``awx_workflow_job_name`` equals
``awx_job_template_name`` (``tower_*`` the same). Hence two ways to recognise a slice, in this order:

- ``awx_job_slice_number`` / ``awx_job_slice_count`` (or ``tower_*``), when a launcher passes them: exact.
- The signature above: a slice of an unknown count (> 1: AWX slices only then).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

PREFIXES = ('awx', 'tower')
DOCS = 'docs/awx.md, "Job slicing"'


def _get(variables, name):
    try:
        value = variables.get(name)
    except (AttributeError, KeyError):
        return None
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def _first(variables, suffix):
    """``(name, value)`` of the first of awx_<suffix>, tower_<suffix> that is set."""
    for prefix in PREFIXES:
        name = '%s_%s' % (prefix, suffix)
        value = _get(variables, name)
        if value is not None:
            return name, value
    return None, None


def _whole(name, value):
    try:
        number = int(str(value).strip())
    except ValueError:
        number = -1
    if number < 0:
        raise AnsibleFilterError('checking for AWX job slicing: %s must be a whole number >= 0, got %r. '
                                 'Pass the slice number and count as AWX numbers them (1..count), or '
                                 'neither.' % (name, value))
    return number


def _explicit(variables):
    """``(number, count)`` from awx_job_slice_number/count (tower_*), or None when no count is given."""
    count_name, count = _first(variables, 'job_slice_count')
    if count_name is None:
        return None
    count = _whole(count_name, count)
    number_name, number = _first(variables, 'job_slice_number')
    number = _whole(number_name, number) if number_name else None
    if number is not None and count > 1 and not 1 <= number <= count:
        raise AnsibleFilterError('checking for AWX job slicing: %s is %d but %s is %d; a slice number runs from 1 '
                                 'to the count.' % (number_name, number, count_name, count))
    return number, count


def _signature(variables):
    """``{template, workflow_job}`` when the AWX meta vars say: launched by the workflow of a sliced job template."""
    for prefix in PREFIXES:
        launch = _get(variables, prefix + '_job_launch_type')
        workflow = _get(variables, prefix + '_workflow_job_name')
        template = _get(variables, prefix + '_job_template_name')
        if launch is None and workflow is None and template is None:
            continue
        if str(launch) == 'workflow' and workflow is not None and template is not None and \
                str(workflow) == str(template):
            return dict(template=str(template), workflow_job=_get(variables, prefix + '_workflow_job_id'))
        return None
    return None


def _refusal(app, found):
    return (
        'Canary of %(app)s refused: %(found)s. Job slicing runs every slice as a job of its own, on its own part '
        'of the inventory, at the same time, so each slice would run its own canary: the first batch no longer '
        'gates the fleet (every slice deploys its first batch at once, and no slice waits for another\'s '
        'verdict). Nothing was changed. Use a workflow instead (%(docs)s): 1. the deploy job template with '
        'job slicing off (slice count 1) and the extra var canary_stop_after: 1 - the first batch, baked and '
        'analysed; 2. an approval node; 3. the sliced job template for the rest, with the extra vars '
        'canary_allow_job_slicing: true and canary_steps: ["100%%"] (hosts already on the release are '
        'no-ops). Or set canary_allow_job_slicing: true on this template to accept every slice as an '
        'independent rollout of its own hosts, with no gate between the slices.'
    ) % dict(app=app, found=found, docs=DOCS)


def canary_job_slice(variables, app='', allow=False):
    """``{sliced, number, count, template, workflow_job, allowed, refuse, message}`` of this run.

    ``variables``: the run's variables (``hostvars[inventory_hostname]``: extra vars included).
    ``allow``: canary_allow_job_slicing - every slice is accepted as an independent rollout.
    ``number`` and ``count`` are None when AWX did not say (the signature of a slice, no slice variables).
    """
    app = str(app or '').strip() or 'the app'
    allowed = boolean(allow if allow is not None else False, strict=False)
    out = dict(sliced=False, number=None, count=None, template=None, workflow_job=None, allowed=allowed,
               refuse=False, message='')
    explicit = _explicit(variables)
    signature = _signature(variables)
    if explicit is not None:
        number, count = explicit
        if count <= 1:
            return out   # said so: no slice (a job that is no slice has slice count 1 in AWX)
        out.update(sliced=True, number=number, count=count)
        what = 'this job is slice %s of %d of a sliced job' % (number if number is not None else '?', count)
        found = what + (" (job template '%s')" % signature['template'] if signature else '')
        out.update(signature or {})
    elif signature is not None:
        out.update(signature, sliced=True)
        what = "this AWX job is one slice of the sliced job template '%s'" % signature['template']
        found = what + (" (it was launched by workflow job %s, which AWX names after a sliced job template; AWX "
                        "passes no slice number or count. If that workflow is one of yours that only has the job "
                        "template's name, rename one of them)"
                        % (signature['workflow_job'] if signature['workflow_job'] is not None else '?'))
    else:
        return out
    if allowed:
        out['message'] = ('Canary of %s: %s; canary_allow_job_slicing is true, so this slice rolls out its own '
                          'hosts as an independent canary, with no gate between the slices.' % (app, what))
    else:
        out.update(refuse=True, message=_refusal(app, found))
    return out


class FilterModule(object):
    def filters(self):
        return {'canary_job_slice': canary_job_slice}
