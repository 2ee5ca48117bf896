# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Deploy time vs hosts, both tools: plot.py RESULTS.json OUT.png

Every run as a dot, the median as a line; deploy.yml's default canary steps and the scale model's
line when the results have them. Run with build/bench-venv/bin/python (matplotlib).
"""

from __future__ import annotations

import json
import statistics
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

SERIES = (
    ('ours', 'deploy', 'deploy.yml (canary one batch, systemd_socket, verified)', 'tab:blue', 'o'),
    ('baseline', 'deploy', 'baseline (copy, link, restart)', 'tab:orange', 's'),
    ('ours', 'default_steps', 'deploy.yml, default steps [1, 25%, 100%], bake 0', 'tab:green', '^'),
    ('ours', 'noop', 'deploy.yml no-op re-run', 'tab:gray', 'x'),
    ('floor', 'ping', 'floor: one ping per host (floor.yml)', 'black', '.'),
)


def main(src, dest):
    with open(src) as f:
        data = json.load(f)
    runs = data.get('deploy_runs', [])
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for tool, kind, label, color, marker in SERIES:
        pts = [(r['n'], r['seconds']) for r in runs if r['tool'] == tool and r['kind'] == kind and r['rc'] == 0]
        if not pts:
            continue
        ns = sorted(set(p[0] for p in pts))
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=color, marker=marker, s=18, alpha=0.5)
        ax.plot(ns, [statistics.median([t for n2, t in pts if n2 == n]) for n in ns], color=color, label=label)
    for tool, color in (('ours', 'tab:blue'), ('baseline', 'tab:orange')):
        model = data.get('scale', {}).get(tool, {}).get('model')
        if model and runs:
            ns = list(range(1, max(r['n'] for r in runs) + 1))
            # One batch of <= forks hosts: a single wave.
            ax.plot(ns, [model['a'] + model['p'] + model['b'] * n for n in ns], color=color, ls=':', lw=0.8,
                    label='%s model, one batch' % tool)
    if runs:
        ax.set_xticks(sorted(set(r['n'] for r in runs)))
    ax.set_xlabel('hosts (forks %s)' % data.get('forks', 20))
    ax.set_ylabel('seconds (ansible-playbook wall clock)')
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title('Deploy of a 20 MB binary: median of %d runs per point' % data.get('reps', 1), fontsize=10)
    fig.tight_layout()
    fig.savefig(dest, dpi=90)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
