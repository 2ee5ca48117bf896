# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""A rollout as the hotswap.deploy.rollout callback follows it: batches, hosts, stages and verdicts, from task
events; the lines it prints while the rollout runs, the table at the end and the HTML report.

Only the keys below are read from a task result (the facts the roles set, host_deploy's restart window), so
nothing else of a result - and never a task's arguments - reaches the display or the report.
"""

from __future__ import annotations

import collections
import html
import json

from ansible.utils.helpers import pct_to_int

# The task a result belongs to, as the callback passes it.
Task = collections.namedtuple('Task', 'uuid name action role run_once')

STAGES = ('deploy', 'restart', 'bake', 'analysis', 'switch back')
# Of a host's result (deploy_host_result, blue_green_result, rollback_result).
RESULT_KEYS = ('app', 'previous_release', 'release', 'version', 'verdict', 'seconds', 'changed', 'live',
               'rolled_back_to', 'switched_back_to')
CANARY_HOST_KEYS = ('analysis', 'analysis_reason', 'verdict', 'rolled_back_to', 'deploy_failed')
CANARY_VERDICT_KEYS = ('result', 'reasons', 'metrics')
PREFIX = 'hotswap.deploy.'


def _ours(name):
    """A role or action name of this collection without its prefix; '' for another collection's."""
    name = name or ''
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    return '' if '.' in name else name


def _bool(value):
    # Facts templated by older cores come back as strings.
    return str(value).strip().lower() in ('true', 'yes', '1')


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value):
    try:
        return int(value) or None
    except (TypeError, ValueError):
        return None


def _text(value):
    return '' if value is None else str(value).strip()


def _keep(value, keys):
    return dict((k, value[k]) for k in keys if k in value) if isinstance(value, dict) else {}


def pick(res):
    """What the rollout needs of a task result ``res``, and nothing else."""
    facts = res.get('ansible_facts') or {}
    seen = {}
    if isinstance(facts.get('canary__batch'), list):
        seen['batch'] = [str(h) for h in facts['canary__batch']]
        seen['batch_number'] = _int(facts.get('canary__batch_number'))
        seen['last_batch'] = _bool(facts.get('canary__last_batch'))
    for name in ('deploy_host_result', 'blue_green_result'):
        if isinstance(facts.get(name), dict):
            seen['outcome'] = _keep(facts[name], RESULT_KEYS)
            failure = facts[name].get('failure')
            if isinstance(failure, dict):
                seen['outcome']['failure'] = dict((k, _text(failure.get(k))) for k in ('stage', 'reason'))
    if isinstance(facts.get('rollback_result'), dict):
        seen['rollback'] = _keep(facts['rollback_result'], RESULT_KEYS)
    if isinstance(facts.get('canary__host'), dict):
        seen['canary_host'] = _keep(facts['canary__host'], CANARY_HOST_KEYS)
    if isinstance(facts.get('canary__verdict'), dict):
        verdict = _keep(facts['canary__verdict'], CANARY_VERDICT_KEYS)
        seen['canary_verdict'] = dict((k, _text(v)) for k, v in verdict.items())
    # host_deploy in one task reports the restart at the top; in phases, in the state it passes on.
    state = res.get('state') if isinstance(res.get('state'), dict) else {}
    event = res.get('restart_event') or state.get('restart_event')
    if isinstance(event, dict) and _float(event.get('start')) and _float(event.get('end')):
        seen['restart'] = (_float(event['start']), _float(event['end']))
    return seen


def stage_of(task):
    """The rollout stage a task belongs to, or None (checks, load balancer weights, bookkeeping)."""
    role, action = _ours(task.role), _ours(task.action)
    if role == 'rollback':
        return 'switch back'
    if role in ('deploy_host', 'blue_green') or action in ('host_deploy', 'win_binary_swap'):
        return 'deploy'
    if role == 'canary' and (task.name or '').startswith('Bake'):
        return 'bake'
    if role == 'canary' and action in ('health_check', 'metric_analysis'):
        return 'analysis'
    return None


def batch_count(serial, hosts):
    """How many batches Ansible makes of ``hosts`` hosts with the play's ``serial`` (as its PlaybookExecutor)."""
    serial = list(serial or []) or [-1]
    count, left, i = 0, hosts, 0
    while left > 0:
        size = pct_to_int(serial[i], hosts)
        count += 1
        left = 0 if size <= 0 else left - size
        i = min(i + 1, len(serial) - 1)
    return count


def verdict_class(verdict):
    """One word for a verdict, the colour of its bars and rows: pass, fail, rolledback, inconclusive, skipped
    or unknown."""
    v = _text(verdict).lower()
    if v.startswith('rolled back'):
        return 'rolledback'
    if v in ('fail', 'failed') or v.startswith('failed') or v.startswith('switch back failed'):
        return 'fail'
    if v in ('pass', 'inconclusive', 'skipped'):
        return v
    if v.startswith('unreachable'):
        return 'inconclusive'
    if v.startswith('check mode'):
        return 'skipped'
    return 'unknown'


def _span(spans, stage, start, end):
    """Consecutive tasks of one stage make one span."""
    if spans and spans[-1]['stage'] == stage:
        spans[-1]['end'] = max(spans[-1]['end'], end)
    else:
        spans.append({'stage': stage, 'start': start, 'end': end})


class Batch(object):
    def __init__(self, number, hosts, total, start):
        self.number, self.hosts, self.total, self.start = number, list(hosts), total, start
        self.end = start
        self.verdict = None
        self.reasons = self.metrics = ''
        self.spans = []
        self.told = None


class Host(object):
    def __init__(self, name, batch):
        self.name, self.batch = name, batch
        self.result, self.canary, self.rollback = {}, {}, {}
        self.problem = None
        self.spans, self.restart = [], None
        self.told = set()

    def failure(self):
        failure = self.result.get('failure')
        if failure:
            return failure
        if _text(self.result.get('verdict')).startswith('failed'):
            return {'stage': '', 'reason': ''}
        return None

    def verdict(self):
        rollback_failed = verdict_class(self.rollback.get('verdict')) == 'fail'
        if self.failure():
            return self.result.get('verdict') or "failed at '%s'" % self.failure()['stage']
        if self.canary.get('verdict'):
            return _text(self.canary['verdict'])
        if rollback_failed:
            return 'switch back ' + _text(self.rollback['verdict'])
        if self.problem:
            return self.problem
        if self.canary.get('analysis'):
            return _text(self.canary['analysis'])
        return _text((self.result or self.rollback).get('verdict')) or 'not run'

    def switched_back(self):
        if self.result.get('rolled_back_to') or self.canary.get('rolled_back_to'):
            return True
        return _bool(self.rollback.get('changed')) and verdict_class(self.rollback.get('verdict')) != 'fail'

    def seconds(self):
        seconds = _float((self.result or self.rollback).get('seconds'))
        if seconds is None:
            deploy = [s['end'] - s['start'] for s in self.spans if s['stage'] in ('deploy', 'switch back')]
            seconds = deploy[0] if deploy else None
        return None if seconds is None else round(seconds, 1)

    def row(self):
        outcome = self.result or self.rollback
        verdict = self.verdict()
        spans = list(self.spans) + ([dict(stage='restart', start=self.restart[0], end=self.restart[1])]
                                    if self.restart else [])
        return {'host': self.name, 'batch': self.batch, 'from': _text(outcome.get('previous_release')) or None,
                'to': _text(outcome.get('release')) or None, 'version': _text(outcome.get('version')) or None,
                'verdict': verdict, 'class': verdict_class(verdict), 'seconds': self.seconds(),
                'switched_back': self.switched_back(), 'analysis': _text(self.canary.get('analysis')) or None,
                'analysis_reason': _text(self.canary.get('analysis_reason')) or None,
                'spans': sorted(spans, key=lambda s: s['start'])}


def _short(text, limit=160):
    text = ' '.join(_text(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


class Rollout(object):
    """The rollout so far. Each event method returns the lines to show for it.

    A serial batch of a play starts with ``play_start``; it becomes a batch of the rollout when the canary
    names its hosts (canary__batch) or a host starts deploying (deploy_host, blue_green, host_deploy)."""

    def __init__(self):
        self.batches, self.rows, self.hosts = [], [], {}
        self.run = None
        self.started = {}

    def play_start(self, now, hosts=None, total=None):
        lines = self._close(now)
        self.run = {'start': now, 'hosts': list(hosts or []), 'total': total, 'batch': None, 'pending': {}}
        return lines

    def task_start(self, now, host, task):
        self.started[(host, task.uuid)] = now
        # Said before the first host deploys, when no canary named the batch.
        return self._join(now, host)[1] if stage_of(task) == 'deploy' else []

    def task_end(self, now, host, task, status, res):
        start = self.started.pop((host, task.uuid), now)
        if status == 'skipped':
            return []
        seen, stage, lines = pick(res or {}), stage_of(task), []
        if 'batch' in seen:
            lines += self._open(now, seen['batch_number'], seen['batch'], seen['last_batch'])
        if stage == 'deploy' or 'outcome' in seen:
            lines += self._join(now, host)[1]
        elif 'rollback' in seen:
            lines += self._join(now, host, fresh=False, doing='switching back')[1]
        row = self.hosts.get(host)
        batch = self._run()['batch']
        if stage and task.run_once and stage in ('bake', 'analysis') and batch:
            _span(batch.spans, stage, start, now)
        elif stage and row:
            _span(row.spans, stage, start, now)
        elif stage:
            _span(self._run()['pending'].setdefault(host, []), stage, start, now)
        if batch:
            batch.end = max(batch.end, now)
        if row:
            lines += self._host_event(row, task, status, seen)
        if 'canary_verdict' in seen and batch:
            lines += self._judge(now, batch, seen['canary_verdict'])
        return lines

    def finish(self, now):
        return self._close(now)

    # -- batches -----------------------------------------------------------------------------------------------

    def _run(self):
        if self.run is None:
            self.play_start(None)
        return self.run

    def _open(self, now, number=None, hosts=(), last=False, doing='deploying'):
        run = self._run()
        batch = run['batch']
        if batch is None:
            number = number or (self.batches[-1].number + 1 if self.batches else 1)
            total = number if last else run['total']
            # Numbers go on across plays; a play's own count says nothing then.
            total = total if total and total >= number else None
            batch = Batch(number, hosts or run['hosts'], total, run['start'] if run['start'] is not None else now)
            run['batch'] = batch
            self.batches.append(batch)
            names = ', '.join(batch.hosts)
            of_total = '/%s' % total if total else ''
            hosts = ' (hosts: %s)' % names if names else ''
            lines = ['Batch %s%s%s: %s' % (number, of_total, hosts, doing)]
        else:
            lines = []
            batch.hosts += [h for h in hosts if h not in batch.hosts]
        for name in batch.hosts:
            if not (name in self.hosts and self.hosts[name].batch == batch.number):
                self._add(name, batch.number)
        return lines

    def _add(self, name, number):
        row = Host(name, number)
        for span in self._run()['pending'].pop(name, []):
            _span(row.spans, span['stage'], span['start'], span['end'])
        self.rows.append(row)
        self.hosts[name] = row
        return row

    def _join(self, now, host, fresh=True, doing='deploying'):
        """The host's row; a batch is opened for it when no canary named one (blue_green, rollback). A host
        deployed again in a later play (``fresh``: a deploy, not a switch back) gets a row of its own."""
        row, batch = self.hosts.get(host), self._run()['batch']
        if row and ((batch and row.batch == batch.number) or not fresh or not (row.result or row.rollback)):
            return row, []
        lines = self._open(now, doing=doing)
        batch = self.run['batch']
        if host not in batch.hosts:
            batch.hosts.append(host)
        if self.hosts.get(host) is row:
            self._add(host, batch.number)
        return self.hosts[host], lines

    def _judge(self, now, batch, verdict):
        lines = self._untold(batch)
        batch.verdict = verdict.get('result') or 'unknown'
        batch.reasons, batch.metrics = verdict.get('reasons', ''), verdict.get('metrics', '')
        return lines + self._batch_line(batch, now)

    def _close(self, now):
        batch = self.run and self.run['batch']
        if not batch:
            return []
        self.run['batch'] = None
        lines = self._untold(batch)
        if batch.verdict is None:
            classes = [verdict_class(self.hosts[h].verdict()) for h in batch.hosts if h in self.hosts]
            batch.verdict = ('fail' if set(classes) & {'fail', 'rolledback'} else
                             'inconclusive' if set(classes) & {'inconclusive', 'unknown'} else 'pass')
            batch.reasons = '; '.join('%s: %s' % (h, self.hosts[h].verdict()) for h in batch.hosts
                                      if verdict_class(self.hosts[h].verdict()) not in ('pass', 'skipped'))
            lines += self._batch_line(batch, batch.end)
        return lines

    def _batch_line(self, batch, now):
        told = (batch.verdict, batch.reasons)
        if batch.told == told:
            return []
        batch.told = told
        took = '%.1f s' % max(0.0, (now or batch.start) - batch.start)
        if batch.verdict == 'pass':
            return ['Batch %s passed in %s' % (batch.number, took)]
        word = 'failed' if batch.verdict == 'fail' else batch.verdict
        reasons = _short(batch.reasons, 300)
        return ['Batch %s %s%s (%s)' % (batch.number, word, ': ' + reasons if reasons else '', took)]

    def _untold(self, batch):
        """Lines for the hosts of the batch nothing was said of yet: they did not get to their result."""
        lines = []
        for name in batch.hosts:
            row = self.hosts.get(name)
            if row and not row.told & {'deploy', 'problem', 'switch back'}:
                row.problem = row.problem or 'not deployed'
                row.told.add('problem')
                lines.append('%s: %s' % (name, row.problem))
        return lines

    # -- hosts -------------------------------------------------------------------------------------------------

    def _host_event(self, row, task, status, seen):
        lines = []
        if 'restart' in seen:
            row.restart = self._clamp(row, seen['restart'])
        if status == 'unreachable' and 'problem' not in row.told and 'deploy' not in row.told:
            row.problem = "unreachable at '%s'" % task.name
            row.told.add('problem')
            lines.append('%s: %s' % (row.name, row.problem))
        elif status == 'failed' and stage_of(task) == 'deploy' and not row.result:
            row.problem = "failed at '%s'" % task.name
        if 'outcome' in seen:
            row.result.update(seen['outcome'])
            if 'deploy' not in row.told:
                row.told.add('deploy')
                lines.append(self._deploy_line(row))
        if 'canary_host' in seen:
            row.canary.update(seen['canary_host'])
            analysis = row.canary.get('analysis')
            if analysis and analysis != 'pass' and 'analysis' not in row.told and not row.failure():
                row.told.add('analysis')
                lines.append('%s: analysis %s - %s' % (row.name, analysis, _short(row.canary.get('analysis_reason'))))
        if 'rollback' in seen:
            row.rollback.update(seen['rollback'])
            if 'switch back' not in row.told:
                row.told.add('switch back')
                lines.append(self._switch_back_line(row))
        return lines

    @staticmethod
    def _clamp(row, window):
        """The restart window on the host's clock, kept within the deploy that did it as the controller saw it."""
        deploy = [s for s in row.spans if s['stage'] == 'deploy']
        start, end = window
        if deploy:
            start, end = max(start, deploy[-1]['start']), min(end, deploy[-1]['end'])
        return (start, end) if end >= start else None

    @staticmethod
    def _deploy_line(row):
        r = row.result
        what = _text(r.get('version')) or _text(r.get('release'))
        seconds = _float(r.get('seconds'))
        took = '%.1f s, ' % seconds if seconds is not None else ''
        failure = row.failure()
        if failure:
            back = r.get('rolled_back_to')
            return '%s: %s%s (%s)' % (row.name, r.get('verdict') or "failed at '%s'" % failure['stage'],
                                      ': ' + _short(failure['reason']) if failure.get('reason') else '',
                                      'switched back to %s' % back if back else 'not switched back')
        done = 'already on' if _bool(r.get('live')) else 'deployed'
        return '%s: %s %s (%sverdict %s)' % (row.name, done, what, took, _text(r.get('verdict')) or 'unknown')

    @staticmethod
    def _switch_back_line(row):
        r = row.rollback
        seconds = _float(r.get('seconds'))
        took = ' (%.1f s)' % seconds if seconds is not None else ''
        if verdict_class(r.get('verdict')) == 'fail':
            return '%s: switch back %s%s' % (row.name, _text(r.get('verdict')), took)
        if not _bool(r.get('changed')):
            return '%s: already on %s%s' % (row.name, _text(r.get('release')), took)
        return '%s: switched back to %s%s' % (row.name, _text(r.get('release')), took)

    # -- output ------------------------------------------------------------------------------------------------

    def to_dict(self):
        """Everything the report shows, as plain data (the JSON file beside the HTML)."""
        rows = [r.row() for r in self.rows]
        batches = [{'number': b.number, 'total': b.total, 'hosts': b.hosts, 'start': b.start, 'end': b.end,
                    'seconds': round(b.end - b.start, 1), 'verdict': b.verdict or 'unknown', 'reasons': b.reasons,
                    'metrics': b.metrics, 'spans': b.spans} for b in self.batches]
        times = [b['start'] for b in batches] + [b['end'] for b in batches] + \
            [s['end'] for r in rows for s in r['spans']]
        first = next((r for r in rows if r['version']), {})
        apps = [h.result.get('app') or h.rollback.get('app') for h in self.rows]
        return {'app': next((_text(a) for a in apps if a), None), 'version': first.get('version'),
                'start': min(times) if times else None, 'end': max(times) if times else None,
                'batches': batches, 'hosts': rows}


def summary_lines(data):
    """The table at the end: one row per host."""
    head = ('host', 'batch', 'from -> to', 'verdict', 'seconds', 'switched back')
    rows = [(r['host'], str(r['batch'] or '-'), '%s -> %s' % (r['from'] or 'none', r['to'] or '?'), r['verdict'],
             '-' if r['seconds'] is None else '%.1f' % r['seconds'], 'yes' if r['switched_back'] else 'no')
            for r in data['hosts']]
    widths = [max(len(c) for c in col) for col in zip(head, *rows)]
    fmt = '  '.join('%%-%ds' % w for w in widths)
    return ['Rollout summary'] + [(fmt % row).rstrip() for row in [head] + rows]


# -- HTML ------------------------------------------------------------------------------------------------------

CSS = '''
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse}th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}
.v-pass{--c:#2e9e4f}.v-fail{--c:#d13b3b}.v-rolledback{--c:#e08a1e}.v-inconclusive{--c:#8a63c9}
.v-skipped{--c:#8c8c8c}.v-unknown{--c:#b0b0b0}
td.verdict,span.verdict{color:var(--c);font-weight:600}
svg text{font-size:12px;fill:#222}svg .axis{stroke:#ccc}
.bar{fill:var(--c)}.stage-analysis,.stage-bake{opacity:.55}.stage-bake{opacity:.3}
.stage-restart{fill:#111;opacity:.55}.stage-switch-back{fill:#e08a1e}
.batch-bar{fill:var(--c);opacity:.15}
.legend span{display:inline-block;margin-right:14px}.legend i.stage-restart{background:#111}
.legend i.stage-switch-back{background:#e08a1e}.legend i{display:inline-block;width:14px;height:10px;
margin-right:4px;background:var(--c,#555)}
.metrics{font-family:ui-monospace,monospace;white-space:pre-wrap}
'''

ROW, LABEL, WIDTH = 22, 170, 980


def _e(value):
    return html.escape(_text(value), quote=True)


def _ticks(seconds):
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600) if seconds / s <= 10), 7200)
    return [step * i for i in range(int(seconds // step) + 1)]


def _timeline(data):
    t0, t1 = data['start'], data['end']
    span = max(t1 - t0, 1.0)
    scale = (WIDTH - LABEL - 20) / span

    def x(t):
        return LABEL + (t - t0) * scale

    def rect(cls, s, y, h, title):
        w = max(x(s['end']) - x(s['start']), 2)
        return ('<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s</title></rect>'
                % (cls, x(s['start']), y, w, h, _e(title)))

    out, y = [], 24
    for batch in data['batches']:
        cls = 'v-' + verdict_class(batch['verdict'])
        out.append('<g class="batch-row %s" data-batch="%s">' % (cls, _e(batch['number'])))
        title = 'batch %s: %s, %.1f s' % (batch['number'], batch['verdict'], batch['seconds'])
        out.append(rect('batch-bar', batch, y, ROW - 4, title))
        out.append('<text x="4" y="%d">Batch %s &#183; %s</text>' % (y + 13, _e(batch['number']), _e(batch['verdict'])))
        for s in batch['spans']:
            out.append(rect('bar stage-%s' % s['stage'].replace(' ', '-'), s, y + 4, ROW - 12,
                            'batch %s %s: %.1f s' % (batch['number'], s['stage'], s['end'] - s['start'])))
        out.append('</g>')
        y += ROW
        for row in (r for r in data['hosts'] if r['batch'] == batch['number']):
            out.append('<g class="host-row v-%s" data-host="%s">' % (row['class'], _e(row['host'])))
            label = (y + 13, _e(_short(row['host'], 24)), _e(row['host']))
            out.append('<text x="14" y="%d">%s<title>%s</title></text>' % label)
            for s in row['spans']:
                restart = s['stage'] == 'restart'
                title = '%s %s: %.1f s (%s)' % (row['host'], s['stage'], s['end'] - s['start'], row['verdict'])
                out.append(rect('bar stage-%s' % s['stage'].replace(' ', '-'), s, y + (8 if restart else 3),
                                ROW - (14 if restart else 6), title))
            out.append('</g>')
            y += ROW
    axis = ['<line class="axis" x1="%d" y1="16" x2="%d" y2="%d"/>' % (LABEL, WIDTH - 20, 16)]
    for t in _ticks(span):
        axis.append('<line class="axis" x1="%.1f" y1="16" x2="%.1f" y2="%d"/><text x="%.1f" y="12">%ss</text>'
                    % (x(t0 + t), x(t0 + t), y, x(t0 + t) - 6, t))
    return ('<svg id="timeline" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="rollout timeline">'
            '%s%s</svg>' % (WIDTH, y + 6, WIDTH, y + 6, ''.join(axis), ''.join(out)))


def _legend():
    stages = ''.join('<span><i class="bar stage-%s v-pass"></i>%s</span>' % (s.replace(' ', '-'), s) for s in STAGES)
    verdicts = ''.join('<span class="v-%s"><i></i>%s</span>' % (v, v)
                       for v in ('pass', 'fail', 'rolledback', 'inconclusive', 'skipped'))
    return '<p class="legend">%s</p><p class="legend">%s</p>' % (stages, verdicts)


def render_html(data):
    """A self-contained page (inline CSS and SVG, no script, no link) of the rollout ``data`` (to_dict)."""
    title = 'Rollout of %s %s' % (data.get('app') or 'the service', data.get('version') or '')
    hosts = ''.join(
        '<tr class="host v-%s" data-host="%s"><td>%s</td><td>%s</td><td>%s &#8594; %s</td><td class="verdict">%s</td>'
        '<td>%s</td><td>%s</td><td>%s</td></tr>'
        % (r['class'], _e(r['host']), _e(r['host']), _e(r['batch']), _e(r['from'] or 'none'), _e(r['to'] or '?'),
           _e(r['verdict']), '' if r['seconds'] is None else '%.1f' % r['seconds'],
           'yes' if r['switched_back'] else 'no', _e(r['analysis_reason'] or ''))
        for r in data['hosts'])
    batches = ''.join(
        '<tr class="batch v-%s" data-batch="%s"><td>%s</td><td>%s</td><td class="verdict">%s</td><td>%.1f</td>'
        '<td>%s</td><td class="metrics">%s</td></tr>'
        % (verdict_class(b['verdict']), _e(b['number']), _e(b['number']), _e(', '.join(b['hosts'])),
           _e(b['verdict']), b['seconds'], _e(b['reasons']), _e(b['metrics']))
        for b in data['batches'])
    timeline = _timeline(data) if data['batches'] and data['start'] is not None else '<p>No batch ran.</p>'
    return '\n'.join([
        '<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
        '<title>%s</title><style>%s</style></head><body>' % (_e(title), CSS),
        '<h1>%s</h1>' % _e(title),
        '<section id="timeline-section"><h2>Timeline</h2>%s%s</section>' % (timeline, _legend()),
        '<section id="batches-section"><h2>Batches</h2><table id="batches"><tr><th>batch</th><th>hosts</th>'
        '<th>verdict</th><th>seconds</th><th>reasons</th><th>metrics</th></tr>%s</table></section>' % batches,
        '<section id="hosts-section"><h2>Hosts</h2><table id="hosts"><tr><th>host</th><th>batch</th>'
        '<th>from &#8594; to</th><th>verdict</th><th>seconds</th><th>switched back</th><th>analysis</th></tr>'
        '%s</table></section>' % hosts,
        '</body></html>', ''])


def render_json(data):
    return json.dumps(data, indent=2, sort_keys=True, default=str) + '\n'
