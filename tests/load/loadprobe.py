# -*- coding: utf-8 -*-
"""A bounded, fixed-rate HTTP load probe for loopback targets.

Every request is recorded: when it was sent, how long it took, which version
answered (the X-Hotswap-Version header, else the body of the response), or why
it failed. It refuses any target that is not a loopback address and stops by
itself after --duration seconds or --max-requests requests, whichever comes
first.

The engine is a Go program (probe/, built on first use by build.sh into
build/loadprobe/ under the repository); this module starts it and reads its
JSON summary.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import ipaddress
import json
import os
import signal
import subprocess
import sys
from urllib.parse import urlsplit

MAX_DURATION = 600
MAX_REQUESTS = 2000000
MAX_WORKERS = 4096

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SOURCE_DIR = os.path.join(HERE, 'probe')
BINARY = os.path.join(REPO, 'build', 'loadprobe', 'loadprobe')
READY = b'loadprobe: started'


def require_loopback(url):
    parts = urlsplit(url)
    if parts.scheme != 'http':
        raise ValueError('load probe: only http:// targets are supported, got %s' % url)
    try:
        host, _port = parts.hostname or '', parts.port  # a bad port raises ValueError
    except ValueError:
        raise ValueError('load probe: refusing %s: not a valid URL' % url) from None
    addr = '127.0.0.1' if host == 'localhost' else host
    try:
        ok = ipaddress.ip_address(addr).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError('load probe: refusing %s: targets must be loopback addresses (127.0.0.0/8, ::1)' % url)
    return parts


def _sources():
    return glob.glob(os.path.join(SOURCE_DIR, '*.go')) + [os.path.join(SOURCE_DIR, 'go.mod')]


def _stale(sources):
    try:
        built = os.stat(BINARY).st_mtime
    except FileNotFoundError:
        return True
    return any(os.stat(s).st_mtime > built for s in sources if os.path.exists(s))


def binary():
    """Path of the Go probe, built first when missing or older than its sources."""
    sources = _sources()
    if not any(os.path.exists(s) for s in sources):
        if os.path.exists(BINARY):
            return BINARY
        raise RuntimeError('load probe: neither %s nor its sources in %s exist' % (BINARY, SOURCE_DIR))
    if not _stale(sources):
        return BINARY
    os.makedirs(os.path.dirname(BINARY), exist_ok=True)
    # Parallel test workers: one builds, the others wait and then find it fresh.
    with open(os.path.join(os.path.dirname(BINARY), '.build.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stale(sources):
            proc = subprocess.run(['bash', os.path.join(HERE, 'build.sh'), BINARY], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, universal_newlines=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError('load probe: building %s failed:\n%s' % (BINARY, proc.stdout))
    return BINARY


class Probe(object):
    """Sends `rate` requests/s spread round-robin over `targets`, with at most `workers` in flight."""

    def __init__(self, targets, rate=200, duration=10.0, max_requests=None, keepalive=True,
                 timeout=5.0, workers=None):
        if not targets:
            raise ValueError('load probe: no targets')
        self.targets = list(targets)
        for t in self.targets:
            require_loopback(t)
        self.rate = float(rate)
        if not 0 < self.rate <= 1000000:
            raise ValueError('load probe: rate %r: want more than 0 and at most 1000000' % rate)
        self.duration = min(float(duration), MAX_DURATION)
        if not self.duration > 0:
            raise ValueError('load probe: duration %r: want more than 0' % duration)
        self.max_requests = min(int(max_requests or self.rate * self.duration), MAX_REQUESTS)
        if self.max_requests < 1:
            raise ValueError('load probe: max_requests %r: want at least 1' % max_requests)
        self.keepalive = keepalive
        self.timeout = float(timeout)
        if not 0 < self.timeout <= MAX_DURATION:
            raise ValueError('load probe: timeout %r: want more than 0 and at most %d' % (timeout, MAX_DURATION))
        self.workers = workers
        if workers is not None and not 1 <= int(workers) <= MAX_WORKERS:
            raise ValueError('load probe: workers %r: want 1 to %d' % (workers, MAX_WORKERS))
        self._proc = None
        self._stdin = None
        self._summary = None

    def argv(self):
        argv = [binary(), '--rate', repr(self.rate), '--duration', repr(self.duration),
                '--max-requests', str(self.max_requests), '--timeout', repr(self.timeout), '--watch-stdin']
        if not self.keepalive:
            argv.append('--no-keepalive')
        if self.workers is not None:
            argv += ['--workers', str(int(self.workers))]
        return argv + ['--'] + self.targets

    def start_background(self):
        if self._proc is not None:
            raise RuntimeError('load probe: already started')
        argv = self.argv()
        # The probe stops when this pipe closes, so it never outlives this process.
        read_end, write_end = os.pipe()
        self._stdin = os.fdopen(write_end, 'wb')
        try:
            self._proc = subprocess.Popen(argv, stdin=read_end, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          bufsize=0)
        finally:
            os.close(read_end)
        # Unbuffered: reads exactly the ready line; communicate() gets the rest.
        line = self._proc.stderr.readline()
        if not line.startswith(READY):
            self._proc.wait()
            rest = line + self._proc.stderr.read()
            self._close_stdin()
            raise RuntimeError('load probe: %s exited with %s: %s' % (
                argv[0], self._proc.returncode, rest.decode('utf-8', 'replace').strip()))
        return self

    def run(self):
        self.start_background()
        try:
            return self.summary()
        except KeyboardInterrupt:
            return self.stop()

    def stop(self):
        """Ends the run early (SIGINT: requests in flight finish) and returns the summary."""
        if self._proc is None:
            raise RuntimeError('load probe: not started')
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
        return self.summary()

    def summary(self):
        """Waits for the probe to end and returns its summary (a dict)."""
        if self._summary is not None:
            return self._summary
        if self._proc is None:
            raise RuntimeError('load probe: not started')
        try:
            out, err = self._proc.communicate(timeout=self.duration + self.timeout + 60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            out, err = self._proc.communicate()
        finally:
            if self._proc.returncode is not None:
                self._close_stdin()
        if self._proc.returncode not in (0, 1):
            raise RuntimeError('load probe: exited with %s: %s' % (
                self._proc.returncode, err.decode('utf-8', 'replace').strip()))
        self._summary = json.loads(out.decode('utf-8'))
        return self._summary

    def _close_stdin(self):
        if self._stdin is not None:
            self._stdin.close()
            self._stdin = None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('targets', nargs='+', help='http://127.0.0.1:PORT/ URLs (loopback only)')
    p.add_argument('--rate', type=float, default=200, help='requests per second over all targets')
    p.add_argument('--duration', type=float, default=10, help='seconds (max %d)' % MAX_DURATION)
    p.add_argument('--max-requests', type=int, default=None)
    p.add_argument('--no-keepalive', action='store_true', help='new connection per request')
    p.add_argument('--timeout', type=float, default=5)
    p.add_argument('--workers', type=int, default=None,
                   help='most requests in flight (default: rate x timeout, at least 512, at most 4096)')
    p.add_argument('--json', action='store_true', help='print the summary as JSON')
    a = p.parse_args(argv)
    try:
        probe = Probe(a.targets, rate=a.rate, duration=a.duration, max_requests=a.max_requests,
                      keepalive=not a.no_keepalive, timeout=a.timeout, workers=a.workers)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    s = probe.run()
    if a.json:
        print(json.dumps(s, indent=2))
    else:
        print('sent=%(sent)d ok=%(ok)d failed=%(failed)d retried=%(retried)d rate=%(achieved_rate)s/s' % s,
              'p50=%(p50)sms p99=%(p99)sms max=%(max)sms' % s['latency_ms'])
        for cause, n in s['failure_causes'].items():
            print('  %6d  %s' % (n, cause))
    return 0 if s['failed'] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
