# -*- coding: utf-8 -*-
"""A bounded, fixed-rate HTTP load probe for loopback targets.

Every request is recorded: when it was sent, how long it took, which version
answered (the body of GET / is the version), or why it failed. It refuses any
target that is not a loopback address and stops by itself after --duration
seconds or --max-requests requests, whichever comes first.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import ipaddress
import json
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

MAX_DURATION = 600
MAX_REQUESTS = 2000000


def require_loopback(url):
    parts = urlsplit(url)
    if parts.scheme != 'http':
        raise ValueError('load probe: only http:// targets are supported, got %s' % url)
    host = parts.hostname or ''
    addr = '127.0.0.1' if host == 'localhost' else host
    try:
        ok = ipaddress.ip_address(addr).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError('load probe: refusing %s: targets must be loopback addresses (127.0.0.0/8, ::1)' % url)
    return parts


class Probe(object):
    """Sends `rate` requests/s spread over `targets` from `workers` threads."""

    def __init__(self, targets, rate=200, duration=10.0, max_requests=None, keepalive=True,
                 timeout=5.0, workers=None):
        if not targets:
            raise ValueError('load probe: no targets')
        self.targets = [require_loopback(t) for t in targets]
        self.rate = float(rate)
        self.duration = min(float(duration), MAX_DURATION)
        self.max_requests = min(int(max_requests or self.rate * self.duration), MAX_REQUESTS)
        self.keepalive = keepalive
        self.timeout = timeout
        self.workers = workers or max(4, min(64, int(self.rate / 25) + 1))
        self.records = []
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self.started = None

    def _claim(self):
        """Next request number and the moment it is due, or None when done."""
        with self._lock:
            n = self._next
            if n >= self.max_requests:
                return None
            self._next += 1
        due = self.started + n / self.rate
        if due - self.started > self.duration:
            return None
        return n, due

    def _worker(self):
        conns = {}
        while not self._stop.is_set():
            claim = self._claim()
            if claim is None:
                break
            n, due = claim
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            target = self.targets[n % len(self.targets)]
            key = target.netloc
            rec = {'n': n, 'target': key, 't': time.monotonic() - self.started}
            conn = conns.get(key) if self.keepalive else None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=self.timeout)
                headers = {} if self.keepalive else {'Connection': 'close'}
                conn.request('GET', target.path or '/', headers=headers)
                resp = conn.getresponse()
                body = resp.read().decode('utf-8', 'replace').strip()
                rec['status'] = resp.status
                rec['version'] = body[:64]
                rec['ok'] = resp.status == 200
                if not rec['ok']:
                    rec['error'] = 'HTTP %d' % resp.status
                if self.keepalive and not resp.will_close:
                    conns[key] = conn
                else:
                    conn.close()
                    conns.pop(key, None)
            except (OSError, http.client.HTTPException) as e:
                rec['ok'] = False
                rec['error'] = '%s: %s' % (type(e).__name__, e)
                conns.pop(key, None)
                try:
                    conn.close()
                except Exception:  # closing a broken connection may fail too; nothing to do
                    pass
            rec['latency_ms'] = (time.monotonic() - self.started - rec['t']) * 1000.0
            with self._lock:
                self.records.append(rec)
        for c in conns.values():
            c.close()

    def run(self):
        self.started = time.monotonic()
        threads = [threading.Thread(target=self._worker, name='loadprobe-%d' % number, daemon=True)
                   for number in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.duration + self.timeout + 30)
        return self.summary()

    def start_background(self):
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(self.timeout + 30)
        return self.summary()

    def summary(self):
        with self._lock:
            recs = sorted(self.records, key=lambda r: r['n'])
        failed = [r for r in recs if not r['ok']]
        lat = sorted(r['latency_ms'] for r in recs if r['ok'])

        def pct(p):
            return round(lat[min(len(lat) - 1, int(len(lat) * p))], 2) if lat else None

        versions = collections.defaultdict(collections.Counter)
        for r in recs:
            if r['ok']:
                versions[r['target']][r['version']] += 1
        causes = collections.Counter(r['error'].split(':')[0] for r in failed)
        return {
            'sent': len(recs), 'failed': len(failed), 'ok': len(recs) - len(failed),
            'elapsed_s': round(recs[-1]['t'], 2) if recs else 0.0,
            'achieved_rate': round(len(recs) / recs[-1]['t'], 1) if recs and recs[-1]['t'] > 0 else 0.0,
            'latency_ms': {'p50': pct(0.50), 'p99': pct(0.99), 'max': round(lat[-1], 2) if lat else None},
            'versions': {k: dict(v) for k, v in versions.items()},
            'failure_causes': dict(causes),
            'failures': failed[:200],
            'keepalive': self.keepalive,
        }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('targets', nargs='+', help='http://127.0.0.1:PORT/ URLs (loopback only)')
    p.add_argument('--rate', type=float, default=200, help='requests per second over all targets')
    p.add_argument('--duration', type=float, default=10, help='seconds (max %d)' % MAX_DURATION)
    p.add_argument('--max-requests', type=int, default=None)
    p.add_argument('--no-keepalive', action='store_true', help='new connection per request')
    p.add_argument('--timeout', type=float, default=5)
    p.add_argument('--json', action='store_true', help='print the summary as JSON')
    a = p.parse_args(argv)
    try:
        probe = Probe(a.targets, rate=a.rate, duration=a.duration, max_requests=a.max_requests,
                      keepalive=not a.no_keepalive, timeout=a.timeout)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    s = probe.run()
    if a.json:
        print(json.dumps(s, indent=2))
    else:
        print('sent=%(sent)d ok=%(ok)d failed=%(failed)d rate=%(achieved_rate)s/s' % s,
              'p50=%(p50)sms p99=%(p99)sms max=%(max)sms' % s['latency_ms'])
        for cause, n in s['failure_causes'].items():
            print('  %6d  %s' % (n, cause))
    return 0 if s['failed'] == 0 else 1


if __name__ == '__main__':
    socket.setdefaulttimeout(30)
    sys.exit(main())
