# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Timeline figure of a zero-downtime benchmark run: plot.py RESULTS.json OUT.png

One panel per strategy (columns) and keep-alive setting (rows): answered and failed requests per
second, per-second p99 (right axis), and each host's switch to the new version (vertical lines).
Run with build/bench-venv/bin/python (matplotlib, benchmarks/requirements.txt).
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402


def main(src, dest):
    with open(src) as f:
        data = json.load(f)
    runs = [r for r in data['runs'] if 'probe' in r]
    strategies = list(dict.fromkeys(r['strategy'] for r in runs))
    kas = list(dict.fromkeys(r['keepalive'] for r in runs))
    fig, axes = plt.subplots(len(kas), len(strategies), figsize=(max(4.2 * len(strategies), 9), 3.2 * len(kas) + 1),
                             squeeze=False, sharey=True)
    for r in runs:
        ax = axes[kas.index(r['keepalive'])][strategies.index(r['strategy'])]
        tl = r['probe']['timeline']
        if tl and tl[-1]['sent'] < data['rate'] / 2:
            tl = tl[:-1]        # the last, partial second would look like a drop
        t = [s['t'] for s in tl]
        ax.plot(t, [s['ok'] for s in tl], color='tab:blue', lw=1, label='answered/s')
        ax.bar(t, [s['failed'] for s in tl], width=1, align='edge', color='tab:red', label='failed/s')
        for h in r['hosts'].values():
            if h['version_flip'] is not None:
                ax.axvline(h['version_flip'], color='tab:green', lw=0.8, label='host serves v2')
            if h['task_start'] is not None:
                ax.axvline(h['task_start'], color='grey', lw=0.6, ls=':', label='restart task starts')
        # symlog: a few failed requests stay visible next to 1000 answered ones.
        ax.set_yscale('symlog', linthresh=10)
        ax.set_ylim(0, 2000)
        p99 = ax.twinx()
        p99.plot(t, [s['p99_ms'] for s in tl], color='tab:orange', lw=0.7, label='p99 ms of the second (right)')
        p99.set_yscale('log')
        p99.yaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
        p99.yaxis.set_major_formatter(ticker.FormatStrFormatter('%g'))
        p99.yaxis.set_minor_formatter(ticker.NullFormatter())
        p99.tick_params(labelsize=7)
        ax.set_title('%s, keep-alive %s: %d failed' % (r['strategy'], 'on' if r['keepalive'] else 'off',
                                                       r['failed']), fontsize=9)
        ax.set_xlabel('s', fontsize=8)
        ax.tick_params(labelsize=7)
    handles = {}
    for ax in fig.axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc='lower center', ncol=len(handles), fontsize=8)
    fig.suptitle('Rolling deploy (serial 1, %d hosts) at %g req/s: requests per second (left, symlog), '
                 'p99 latency per second (right)' % (data['hosts'], data['rate']), fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    fig.savefig(dest, dpi=90)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
