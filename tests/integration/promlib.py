# -*- coding: utf-8 -*-
"""A real Prometheus (Debian's) on a test host scraping the app hosts: for tests of Prometheus-based canary analysis.

The Prometheus host shares the machine's network namespace (testhosts.up(..., network='host')), so its
targets are the app hosts' published 127.0.0.1 ports, and it listens on 127.0.0.1:<a free port> (never the
machine's :9090, which may be taken; the image leaves prometheus.service disabled until configure() starts it).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import testhosts

CONFIG = '/etc/prometheus/prometheus.yml'
DEFAULTS = '/etc/default/prometheus'      # Debian's unit: EnvironmentFile=, ExecStart=/usr/bin/prometheus $ARGS
DATA = '/var/lib/prometheus/metrics2'     # Debian's default --storage.tsdb.path (owned by user prometheus)
RETENTION = '1h'

# JSON strings are valid YAML scalars: names and addresses need no escaping of their own.
PROMETHEUS_YML = """# written by tests/integration/promlib.py
global:
  scrape_interval: {interval}
  evaluation_interval: {interval}
  scrape_timeout: {timeout}

scrape_configs:
  - job_name: app
    metrics_path: /metrics
    static_configs:
{static_configs}
"""

# Direct connections only: an http_proxy in the environment must not see 127.0.0.1 requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_DURATION_PART = re.compile(r'(\d+)(ms|s|m|h|d)')
_UNIT_MS = {'ms': 1, 's': 1000, 'm': 60000, 'h': 3600000, 'd': 86400000}


def _duration_ms(text):
    """A Prometheus duration ('1s', '500ms', '1m30s') in milliseconds."""
    parts = _DURATION_PART.findall(text)
    if not parts or ''.join(n + u for n, u in parts) != text:
        raise ValueError('not a Prometheus duration: %r (e.g. 1s, 500ms, 1m30s)' % (text,))
    return sum(int(n) * _UNIT_MS[u] for n, u in parts)


def start(prefix):
    """One Prometheus host `<prefix>-1` on the machine's network: its host dict."""
    return testhosts.up(prefix, 1, variant='prometheus', network='host')[0]


def stop(prefix):
    testhosts.down(prefix)


class PromError(AssertionError):
    """An HTTP error answer of Prometheus (its JSON body says why: bad PromQL is 400, not ready 503)."""

    def __init__(self, url, code, body):
        AssertionError.__init__(self, 'GET %s: HTTP %d: %s' % (url, code, body.strip()[:2000]))
        self.code = code


def _get_json(url, timeout=5):
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            return json.loads(resp.read().decode('utf-8'))
    except urllib.error.HTTPError as e:
        raise PromError(url, e.code, e.read().decode('utf-8', 'replace'))


def _journal(prom_host):
    return testhosts.ssh_run(prom_host, 'systemctl status --no-pager prometheus; '
                             'journalctl --no-pager -u prometheus -n 30', check=False).stdout


def configure(prom_host, targets, scrape_interval='1s', port=None, wait_up=True, timeout=60, keep_data=False):
    """Scrape `targets` ({inventory host name: '127.0.0.1:<published port>'}) as job `app`, each target
    labelled `host: <name>`; Prometheus (re)started listening on 127.0.0.1:`port` (a free one when None).
    Its TSDB is emptied first unless keep_data: series of an earlier configure() would otherwise stay
    visible to instant queries for the 5 min lookback (a restart writes no staleness markers).
    New targets are scraped only after Prometheus's 5 s target-update tick: count ~6 s per call.

    Waits (at most `timeout` s) until every target is listed by /api/v1/targets with health "up"; with
    wait_up=False, until every target has been scraped once, up or not. Returns the base URL.
    """
    interval_ms = _duration_ms(scrape_interval)
    scrape_timeout = '%dms' % max(1, interval_ms * 8 // 10)
    static_configs = '\n'.join(
        '      - targets: [%s]\n        labels:\n          host: %s' % (json.dumps(addr), json.dumps(name))
        for name, addr in sorted(targets.items()))
    cfg = PROMETHEUS_YML.format(interval=scrape_interval, timeout=scrape_timeout,
                                static_configs=static_configs or '      []')
    deadline = time.time() + timeout
    for attempt in range(3):
        listen_port = port or testhosts._free_port()
        args = ('--config.file=%s --web.listen-address=127.0.0.1:%d --storage.tsdb.path=%s '
                '--storage.tsdb.retention.time=%s' % (CONFIG, listen_port, DATA, RETENTION))
        testhosts.ssh_run(prom_host, "set -e\ncat > %s <<'PROMLIB_EOF'\n%sPROMLIB_EOF\n"
                          "printf 'ARGS=\"%%s\"\\n' '%s' > %s\n"
                          "promtool check config --syntax-only %s >/dev/null\n"
                          "systemctl stop prometheus\n%s"
                          "systemctl reset-failed prometheus 2>/dev/null || true\nsystemctl start prometheus"
                          % (CONFIG, cfg, args, DEFAULTS, CONFIG,
                             '' if keep_data else 'rm -rf %s/*\n' % DATA))
        base_url = 'http://127.0.0.1:%d' % listen_port
        if _wait_ready(prom_host, base_url, deadline):
            break
        journal = _journal(prom_host)
        # another run took the free port between our choice and Prometheus's bind: choose again
        if port is None and 'address already in use' in journal and attempt < 2:
            continue
        raise AssertionError('Prometheus on %s did not become ready at %s:\n%s'
                             % (prom_host['name'], base_url, journal))
    wanted = set(targets)
    while True:
        active = _get_json(base_url + '/api/v1/targets?state=active')['data']['activeTargets']
        health = {t['labels'].get('host'): t['health'] for t in active if t['labels'].get('job') == 'app'}
        if set(health) >= wanted and all(health[h] == 'up' if wait_up else health[h] != 'unknown' for h in wanted):
            return base_url
        if time.time() > deadline:
            raise AssertionError('Prometheus targets not %s after %d s: %s\n%s' % (
                'all up' if wait_up else 'all scraped', timeout,
                json.dumps([{k: t.get(k) for k in ('labels', 'health', 'lastError', 'scrapeUrl')} for t in active],
                           indent=1), _journal(prom_host)))
        time.sleep(0.3)


def _wait_ready(prom_host, base_url, deadline):
    """True once /-/ready answers 200; False when the unit failed or the deadline passed."""
    while time.time() < deadline:
        try:
            with _OPENER.open(base_url + '/-/ready', timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        state = testhosts.ssh_run(prom_host, 'systemctl show -p ActiveState,SubState --value prometheus',
                                  check=False).stdout.split()
        if state and (state[0] == 'failed' or 'auto-restart' in state):
            return False
        time.sleep(0.3)
    return False


def query(base_url, promql):
    """The parsed JSON of GET /api/v1/query?query=<promql> (an instant query, now)."""
    return _get_json(base_url + '/api/v1/query?' + urllib.parse.urlencode({'query': promql}))


def wait_for(base_url, promql, predicate, timeout=30):
    """Poll `promql` until predicate(data.result) is true; that result (a list of {metric, value})."""
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            last = query(base_url, promql)['data']['result']
            if predicate(last):
                return last
        except PromError as e:
            if e.code != 503:                            # bad PromQL: no point in polling
                raise
            last = e
        except (urllib.error.URLError, OSError) as e:    # restarting: keep polling
            last = e
        if time.time() > deadline:
            raise AssertionError('waiting %d s for %s: last result %r' % (timeout, promql, last))
        time.sleep(0.5)
