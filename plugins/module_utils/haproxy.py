# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Drain, stop and bring back servers behind HAProxy through its runtime API (haproxy_server, haproxy_weight).

The runtime API is the admin socket of the config line ``stats socket /run/haproxy/admin.sock mode 660 level
admin``: one connection per command, the command line ends with a newline and HAProxy answers, then closes
(non-interactive mode). Written against HAProxy 2.6 (Debian bookworm); the commands used:

- ``show servers state <backend>``: "1" (format version), a "# be_id be_name ..." header, one line per server.
- ``show stat <be_id> 4 <srv_id>``: the CSV statistics of servers ("# pxname,svname,qcur,...,scur,...").
- ``set server <backend>/<server> state ready|drain|maint`` and ``set weight <backend>/<server> <0-256>``:
  an empty answer on success, else the error text.

Both tables are read by their header's field names, never by positions. HAProxy's own rules decide the states:
maintenance is the mask SRV_ADMF_MAINT (0x23: forced, inherited, DNS resolution), drain the mask 0x18. The
config bit CMAINT (0x04) only records that a forced maintenance came from the config (``disabled``) and may stay
set on a running server after ``set server ... state ready``; HMAINT (0x40) records an FQDN set through the socket.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import re
import socket
import tempfile
import time
from fractions import Fraction

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError, unlink_quietly

DEFAULT_SOCKET = '/run/haproxy/admin.sock'
MARKER_DIR = '/var/lib/hotswap-deploy/haproxy'
STATES = ('present', 'ready', 'drain', 'maint')
# The reason stored when a server that was set ready does not pass HAProxy's check and goes back to maint.
NOT_SERVING_REASON = "HAProxy's check did not pass after ready"
MAX_WEIGHT = 256
# HAProxy's proxy and server names: letters, digits and "-_.:" (anything else would also split a CLI command).
_NAME = re.compile(r'[A-Za-z0-9_.:-]+')
_MARKER_SAFE = re.compile(r'[A-Za-z0-9_.-]')
_WEIGHT = re.compile(r'\s*(\d+)\s*(%?)\s*')

# srv_admin_state bits (server-t.h SRV_ADMF_*).
ADMIN_FLAGS = (
    (0x01, 'FMAINT', 'forced'),
    (0x02, 'IMAINT', 'inherited from the server it tracks'),
    (0x04, 'CMAINT', 'disabled in the config'),
    (0x08, 'FDRAIN', 'drain forced'),
    (0x10, 'IDRAIN', 'drain inherited from the server it tracks'),
    (0x20, 'RMAINT', 'its address did not resolve (DNS)'),
    (0x40, 'HMAINT', 'FQDN set through the runtime API'),
)
ADMF_FMAINT = 0x01
ADMF_FDRAIN = 0x08
ADMF_MAINT = 0x23
ADMF_DRAIN = 0x18
# srv_op_state (SRV_ST_*).
OPERATIONAL = {0: 'down', 1: 'starting', 2: 'up', 3: 'stopping'}
# srv_check_state bits (check-t.h CHK_ST_*): checks run when configured and enabled.
CHK_ST_CONFIGURED = 0x02
CHK_ST_ENABLED = 0x04
# srv_check_result (CHK_RES_*): HAProxy counts PASSED (3) and CONDPASS (4) as success.
CHK_RES_PASSED = 3
# srv_check_status (HCHK_STATUS_*), by number, as "show stat" names them.
CHECK_STATUS_NAMES = ('UNK', 'INI', 'START', 'CHECKED', 'HANA', 'SOCKERR', 'L4OK', 'L4TOUT', 'L4CON', 'L6OK',
                      'L6TOUT', 'L6RSP', 'L7TOUT', 'L7RSP', 'L57DATA', 'L7OK', 'L7OKC', 'L7STS', 'PROCERR',
                      'PROCTOUT', 'PROCOK')


class HaproxyError(HotswapError):
    """A failure talking to HAProxy or of what it was asked; the message says what, why and the fix."""


# --------------------------------------------------------------------------- the runtime API client

class RuntimeApi(object):
    """HAProxy's runtime API on a unix socket: ``command(line)`` opens a connection, sends the line, reads the answer."""

    def __init__(self, socket_path, timeout=5):
        self.socket_path = socket_path
        self.timeout = timeout

    def command(self, line):
        """HAProxy's answer (text) to one command line; HaproxyError when the socket cannot be used."""
        if '\n' in line or ';' in line:
            raise HaproxyError('sending %r to HAProxy: a command is one line without ";" (which would start a second '
                               'command). Give backend and server names of letters, digits and "-_.:".' % line)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
            sock.sendall(line.encode('utf-8') + b'\n')
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except OSError as e:  # socket.timeout too
            raise HaproxyError(socket_error_message(self.socket_path, line, e, self.timeout))
        finally:
            sock.close()
        answer = b''.join(chunks).decode('utf-8', errors='replace')
        if answer.strip() == 'Permission denied':
            raise HaproxyError('sending "%s" to HAProxy at %s: HAProxy answered "Permission denied": the stats socket '
                               'has a level below admin. Give it "level admin" (stats socket %s mode 660 level admin) '
                               'and reload haproxy.' % (line, self.socket_path, self.socket_path))
        return answer


def socket_error_message(path, line, exc, timeout):
    """The message for an error talking to the socket: what was sent, the cause and the fix."""
    doing = 'sending "%s" to HAProxy\'s runtime API at %s' % (line, path)
    code = getattr(exc, 'errno', None)
    if isinstance(exc, FileNotFoundError) or code == errno.ENOENT:
        return ('%s: the socket does not exist. Check that haproxy runs and its config has "stats socket %s level '
                'admin", or set the socket option to the path it has.' % (doing, path))
    if isinstance(exc, PermissionError) or code in (errno.EACCES, errno.EPERM):
        return ('%s: permission denied. Run with become (the socket belongs to haproxy, mode 660).' % doing)
    if isinstance(exc, ConnectionRefusedError) or code == errno.ECONNREFUSED:
        return ('%s: connection refused - nothing listens on it (haproxy stopped or restarting, or the path is not '
                'its socket). Start haproxy (systemctl status haproxy), or set the socket option to the path of its '
                '"stats socket" line.' % doing)
    if isinstance(exc, socket.timeout) or code == errno.ETIMEDOUT:
        return ('%s: no answer within %s s. Check that haproxy is not stuck (systemctl status haproxy, its log) and '
                'rerun.' % (doing, timeout))
    return '%s: %s. Check that haproxy runs and the socket option is the path of its "stats socket" line.' % (doing, exc)


def check_name(what, name):
    """Reject a backend or server name HAProxy cannot have (and that would break a CLI command)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise HaproxyError('checking the %s name %r: HAProxy names are letters, digits and "-_.:" only. Fix `%s`.'
                           % (what, name, what))


def set_command_failed(answer):
    """A ``set`` command answers nothing on success: any text is HAProxy's error."""
    return answer.strip() != ''


# --------------------------------------------------------------------------- parsing

def is_unknown_backend_answer(text):
    return "can't find backend" in text.lower()


def parse_servers_state(text):
    """The rows of ``show servers state``: a list of dicts {field name: text} in HAProxy's order.

    The first line is the format version ("1"), the second the "# be_id be_name ..." header naming the fields.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].isdigit() or not lines[1].startswith('#'):
        raise HaproxyError('reading "show servers state": HAProxy answered %r instead of a version line and a "# be_id '
                           'be_name ..." header. Use HAProxy 1.8 or later and a socket with "level admin".'
                           % first_line(text))
    names = lines[1].lstrip('#').split()
    rows = []
    for line in lines[2:]:
        values = line.split()
        rows.append(dict(zip(names, values)))
    return rows


def parse_stat_csv(text):
    """The rows of ``show stat``: a list of dicts {column name: text}; the header line starts with "# pxname"."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith('# '):
        raise HaproxyError('reading "show stat": HAProxy answered %r instead of CSV starting with "# pxname,svname". '
                           'Check that the socket option is the path of HAProxy\'s stats socket.' % first_line(text))
    reader = csv.reader([lines[0][2:]] + lines[1:])
    names = next(reader)
    rows = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        rows.append({name: value for name, value in zip(names, values) if name})
    return rows


def first_line(text):
    lines = [line for line in (text or '').splitlines() if line.strip()]
    return lines[0].strip() if lines else ''


def to_int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def admin_state_of(bits):
    """'maint', 'drain' or 'ready' from srv_admin_state: maintenance wins over drain (HAProxy's rule)."""
    if bits & ADMF_MAINT:
        return 'maint'
    if bits & ADMF_DRAIN:
        return 'drain'
    return 'ready'


def admin_flag_names(bits):
    return [name for bit, name, _text in ADMIN_FLAGS if bits & bit]


def check_status_name(number):
    return CHECK_STATUS_NAMES[number] if 0 <= number < len(CHECK_STATUS_NAMES) else str(number)


def address_of(row):
    addr, port = row.get('srv_addr', '-'), row.get('srv_port', '0')
    if ':' in addr:
        addr = '[%s]' % addr
    return '%s:%s' % (addr, port)


def status_of(backend, row, stat):
    """The status dict of a server from its ``show servers state`` row and its ``show stat`` row ({} if none)."""
    bits = to_int(row.get('srv_admin_state'))
    check_state = to_int(row.get('srv_check_state'))
    checked = bool(check_state & CHK_ST_CONFIGURED) and bool(check_state & CHK_ST_ENABLED)
    result = to_int(row.get('srv_check_result'))
    check_status = to_int(row.get('srv_check_status'))
    return dict(
        backend=backend,
        server=row.get('srv_name'),
        address=address_of(row),
        admin_state=admin_state_of(bits),
        admin_bits=bits,
        admin_flags=admin_flag_names(bits),
        operational=OPERATIONAL.get(to_int(row.get('srv_op_state'), -1), 'unknown'),
        checked=checked,
        check_passed=(result >= CHK_RES_PASSED) if checked else None,
        check_status=check_status,
        check_status_name=check_status_name(check_status),
        check_result=result,
        check_state=check_state,
        check_health=to_int(row.get('srv_check_health')),
        check_rise=to_int(stat.get('check_rise'), None),
        check_fall=to_int(stat.get('check_fall'), None),
        last_check=stat.get('last_chk', ''),
        status=stat.get('status', ''),
        sessions=to_int(stat.get('scur')),
        weight=to_int(row.get('srv_uweight')),
        initial_weight=to_int(row.get('srv_iweight')),
    )


# --------------------------------------------------------------------------- reading a backend and a server

def backend_names(api):
    """The backends HAProxy has: the proxies of ``show stat`` with a BACKEND row."""
    rows = parse_stat_csv(api.command('show stat -1 2 -1'))
    return sorted(set(r.get('pxname') for r in rows if r.get('svname') == 'BACKEND'))


def backend_servers(api, backend):
    """The ``show servers state`` rows of ``backend``; HaproxyError listing the backends when it has none by that name."""
    check_name('backend', backend)
    answer = api.command('show servers state %s' % backend)
    if is_unknown_backend_answer(answer):
        names = backend_names(api)
        raise HaproxyError('reading backend %s from HAProxy: HAProxy has no backend %s; its backends are: %s. Fix '
                           '`backend`.' % (backend, backend, ', '.join(names) or 'none'))
    return [r for r in parse_servers_state(answer) if r.get('be_name') == backend]


def find_server(rows, backend, server):
    check_name('server', server)
    for row in rows:
        if row.get('srv_name') == server:
            return row
    names = [r.get('srv_name') for r in rows]
    raise HaproxyError('finding server %s in HAProxy backend %s: the backend has no server %s; its servers are: %s. '
                       'Fix `server` (lb_server in the inventory, which defaults to the inventory host name).'
                       % (server, backend, server, ', '.join(names) or 'none'))


def stat_rows(api, be_id, srv_id=-1):
    """``show stat`` rows of the servers of proxy ``be_id`` (one server with ``srv_id``)."""
    return parse_stat_csv(api.command('show stat %s 4 %s' % (be_id, srv_id)))


def server_status(api, backend, server):
    """The status dict of ``backend/server``: states, checks, current sessions (scur) and weights."""
    row = find_server(backend_servers(api, backend), backend, server)
    stats = [r for r in stat_rows(api, row.get('be_id'), row.get('srv_id'))
             if r.get('pxname') == backend and r.get('svname') == server]
    return status_of(backend, row, stats[0] if stats else {})


def describe(status):
    """What HAProxy shows of a server, in a few words, for messages."""
    text = '%s (operational %s, admin %s' % (status.get('status') or '?', status['operational'], status['admin_state'])
    if status['checked']:
        text += ', check %s' % status['check_status_name']
        if status.get('last_check'):
            text += ': %s' % status['last_check']
    return text + ')'


# --------------------------------------------------------------------------- changing a server

def set_admin_state(api, backend, server, state):
    line = 'set server %s/%s state %s' % (backend, server, state)
    answer = api.command(line)
    if set_command_failed(answer):
        raise HaproxyError('setting %s/%s to %s in HAProxy: HAProxy answered "%s". Check the backend and server '
                           'names and the socket\'s level (admin).' % (backend, server, state, answer.strip()))


def set_weight(api, backend, server, weight):
    line = 'set weight %s/%s %s' % (backend, server, weight)
    answer = api.command(line)
    if set_command_failed(answer):
        text = answer.strip()
        fix = ('Use a dynamic "balance" algorithm (roundrobin, leastconn, random) in the backend for weights other '
               'than 0 and the initial one.' if 'static' in text.lower() else
               'Check the backend and server names and the socket\'s level (admin).')
        raise HaproxyError('setting the weight of %s/%s to %s in HAProxy: HAProxy answered "%s". %s'
                           % (backend, server, weight, text, fix))


def wait_until_drained(api, backend, server, timeout, interval=0.5, clock=time.monotonic, sleep=time.sleep):
    """Poll the server's current sessions (scur) until 0 or ``timeout`` seconds.

    Returns dict(result='drained'|'timed_out', seconds, sessions_left, sessions_at_start).
    """
    started = clock()
    status = server_status(api, backend, server)
    at_start = status['sessions']
    while status['sessions'] > 0:
        left = timeout - (clock() - started)
        if left <= 0:
            break
        sleep(min(interval, left))
        status = server_status(api, backend, server)
    return dict(result='drained' if status['sessions'] == 0 else 'timed_out',
                seconds=round(clock() - started, 3), sessions_left=status['sessions'], sessions_at_start=at_start)


def drain_server(api, backend, server, timeout, interval=0.5, clock=time.monotonic, sleep=time.sleep):
    """Set the server to drain (no new sessions) and wait until its sessions reach 0 or ``timeout`` seconds pass."""
    set_admin_state(api, backend, server, 'drain')
    return wait_until_drained(api, backend, server, timeout, interval=interval, clock=clock, sleep=sleep)


def is_serving(status):
    """Whether HAProxy sends the server traffic on its own check's word.

    A server leaving maintenance is UP at once with the check health at ``rise`` ("start OK but check
    immediately"), before any check ran: only a check passed since raises the health above ``rise``. With
    ``fall 1`` (or no rise/fall in ``show stat``) the health cannot tell, and UP with a passed check is taken.
    """
    if status['operational'] != 'up' or status['admin_state'] != 'ready':
        return False
    if not status['checked']:
        return True
    if not status['check_passed']:
        return False
    rise, fall = status.get('check_rise'), status.get('check_fall')
    if rise is None or fall is None or fall <= 1:
        return True
    return status['check_health'] > rise


def wait_until_serving(api, backend, server, timeout, interval=0.5, clock=time.monotonic, sleep=time.sleep):
    """Poll until HAProxy sees the server up and, when it checks it, its check passed; returns the seconds.

    On a timeout HaproxyError says what HAProxy last showed (details: status).
    """
    started = clock()
    while True:
        status = server_status(api, backend, server)
        if is_serving(status):
            return round(clock() - started, 3)
        left = timeout - (clock() - started)
        if left <= 0:
            break
        sleep(min(interval, left))
    raise HaproxyError('waiting for HAProxy to send traffic to %s/%s (%s): HAProxy\'s own check did not pass within '
                       '%s s; it last showed %s. Check the service on that host and what HAProxy\'s check asks of '
                       'it, fix it and rerun, or raise ready_timeout.'
                       % (backend, server, status['address'], timeout, describe(status)), status=status)


# --------------------------------------------------------------------------- canary weights

def _gcd_all(values):
    g = 0
    for v in values:
        g = math.gcd(g, v)
    return g or 1


def canary_weights(initial_weights, canary, share):
    """Weights that give the ``canary`` servers ``share`` percent of the backend's total weight.

    ``initial_weights``: {server: initial weight 0..256}. Returns (weights {server: 0..256}, actual share in
    percent). Share 0: canary 0, the others their initial weight. Share 100: the others 0, the canary their
    initial weight (at least 1). Between: the others keep their proportions (their initial weights divided by
    their greatest common divisor, times an integer unit), the canary servers get weights proportional to their
    initial ones (a canary with initial weight 0 counts as 1); every scale of both is tried and the one whose share
    is closest to ``share`` wins (ties: the smaller weights). Others with initial weight 0 keep 0.
    """
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 100:
        raise HaproxyError('computing canary weights: share %r is not a percentage. Give share between 0 and 100.'
                           % (share,))
    canary = list(dict.fromkeys(canary or []))
    if not canary:
        raise HaproxyError('computing canary weights: no canary server given. List the canary servers in `canary`.')
    unknown = [c for c in canary if c not in initial_weights]
    if unknown:
        raise HaproxyError('computing canary weights: %s not in the backend, whose servers are: %s. Fix `canary`.'
                           % (', '.join(unknown), ', '.join(sorted(initial_weights)) or 'none'))
    others = [s for s in initial_weights if s not in canary]
    live_others = [s for s in others if initial_weights[s] > 0]
    if share < 100 and not live_others:
        raise HaproxyError('computing canary weights for a %s%% share: no server besides the canary (%s) has a weight '
                           'above 0, so nothing could take the rest of the traffic. Add servers to the backend or '
                           'ask for share 100.' % (share, ', '.join(canary)))
    weights = dict((s, initial_weights[s]) for s in others)
    if share == 0:
        weights.update((c, 0) for c in canary)
        return weights, 0.0
    canary_base = dict((c, max(initial_weights[c], 1)) for c in canary)
    if share == 100:
        weights.update((s, 0) for s in others)
        weights.update(canary_base)
        return weights, 100.0
    c_unit = _gcd_all(canary_base.values())
    c_base = dict((c, w // c_unit) for c, w in canary_base.items())
    o_unit = _gcd_all(initial_weights[s] for s in live_others)
    o_base = dict((s, initial_weights[s] // o_unit) for s in live_others)
    c_sum, o_sum = sum(c_base.values()), sum(o_base.values())
    target = Fraction(share) / 100
    best = None
    for m in range(1, MAX_WEIGHT // max(c_base.values()) + 1):
        k_max = MAX_WEIGHT // max(o_base.values())
        # For a canary scale m the share falls as the others' scale k grows: the best k is next to the ideal one.
        ideal = Fraction(m * c_sum) * (1 - target) / (target * o_sum)
        for k in sorted(set((min(max(math.floor(ideal), 1), k_max), min(max(math.ceil(ideal), 1), k_max)))):
            actual = Fraction(m * c_sum, m * c_sum + k * o_sum)
            key = (abs(actual - target), m * c_sum + k * o_sum, m)
            if best is None or key < best[0]:
                best = (key, m, k, actual)
    _key, m, k, actual = best
    weights.update((c, w * m) for c, w in c_base.items())
    weights.update((s, w * k) for s, w in o_base.items())
    return weights, round(float(actual * 100), 2)


def share_of(weights, canary):
    """The canary servers' percentage of the total weight (None when the total is 0)."""
    total = sum(weights.values())
    if not total:
        return None
    return round(100.0 * sum(weights.get(c, 0) for c in canary) / total, 2)


# --------------------------------------------------------------------------- the maint marker

def marker_name(backend, server):
    """The marker's file name: the names with anything but [A-Za-z0-9_.-] as %XX, joined by "+" (never in a name)."""
    def encode(name):
        return ''.join(ch if _MARKER_SAFE.match(ch) else ''.join('%%%02X' % b for b in ch.encode('utf-8'))
                       for ch in name)
    return '%s+%s.json' % (encode(backend), encode(server))


def marker_path(marker_dir, backend, server):
    return os.path.join(marker_dir, marker_name(backend, server))


def read_marker(marker_dir, backend, server):
    """The stored marker {backend, server, reason, since}, or None when there is none (or it is not JSON)."""
    path = marker_path(marker_dir, backend, server)
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except ValueError:
        return None
    except OSError as e:
        raise HaproxyError('reading the maint marker %s: %s. Run with become.' % (path, e))
    return data if isinstance(data, dict) else None


def write_marker(marker_dir, backend, server, reason, move=os.replace, now=time.time):
    """Store why hotswap put the server in maint: JSON through a temp file in the same directory and ``move``."""
    path = marker_path(marker_dir, backend, server)
    data = dict(backend=backend, server=server, reason=reason,
                since=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now())))
    tmp = None
    try:
        os.makedirs(marker_dir, mode=0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.hotswap-', suffix='.tmp', dir=marker_dir)
        with os.fdopen(fd, 'w') as f:
            json.dump(data, f, sort_keys=True)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        move(tmp, path)
    except OSError as e:
        raise HaproxyError('storing why %s/%s is in maint in %s: %s. The server is in maint; run with become, or set '
                           'marker_dir to a writable directory.' % (backend, server, path, e))
    finally:
        unlink_quietly(tmp)
    return data


def remove_marker(marker_dir, backend, server):
    """Remove the marker; True when there was one."""
    path = marker_path(marker_dir, backend, server)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise HaproxyError('removing the maint marker %s: %s. Run with become.' % (path, e))
    return True


# --------------------------------------------------------------------------- haproxy_server

def parse_weight(text):
    """('absolute', n) for "0".."256", ('percent', n) for "N%" (of the initial weight); HaproxyError otherwise."""
    match = _WEIGHT.fullmatch(str(text))
    if not match:
        raise HaproxyError('checking weight %r: not a weight. Give an integer 0-256 or a percentage of the initial '
                           'weight such as "50%%".' % (text,))
    number, percent = int(match.group(1)), match.group(2)
    if percent:
        return 'percent', number
    if number > MAX_WEIGHT:
        raise HaproxyError('checking weight %r: HAProxy weights are 0-256. Give an integer 0-256 or a percentage of '
                           'the initial weight such as "50%%".' % (text,))
    return 'absolute', number


def wanted_weight(parsed, initial):
    """The weight HAProxy gives for a parsed weight: N% is N percent of the initial weight, at most 256."""
    kind, number = parsed
    if kind == 'percent':
        return min(MAX_WEIGHT, initial * number // 100)
    return number


def check_server_args(state, drain_timeout, ready_timeout, weight):
    """Validate the arguments before anything is sent; returns the parsed weight (or None)."""
    if state not in STATES:
        raise HaproxyError('checking state %r: not one of %s. Fix `state`.' % (state, ', '.join(STATES)))
    for name, value in (('drain_timeout', drain_timeout), ('ready_timeout', ready_timeout)):
        if value is None or value < 0:
            raise HaproxyError('checking %s %r: a timeout is seconds, 0 or more. Fix `%s`.' % (name, value, name))
    return None if weight in (None, '') else parse_weight(weight)


def state_text(admin_state, weight):
    return 'admin_state: %s\nweight: %s\n' % (admin_state, weight)


def predicted(before, state, weight, reason):
    """The status a check-mode run reports as after: the asked admin state, weight and reason, the rest as before."""
    after = dict(before, reason=reason)
    if state != 'present':
        after['admin_state'] = state
    after['weight'] = weight
    return after


def leave_maint_blockers(status):
    """Why a server set ready is still in maint (the bits ``set server ... state ready`` does not clear)."""
    return [text for bit, _name, text in ADMIN_FLAGS if status['admin_bits'] & bit & ADMF_MAINT & ~ADMF_FMAINT]


def converge_server(api, backend, server, state='present', weight=None, drain_timeout=60, ready_timeout=30,
                    reason='', marker_dir=MARKER_DIR, check_mode=False, move=os.replace, interval=0.5,
                    clock=time.monotonic, sleep=time.sleep):
    """Bring ``backend/server`` to ``state`` (and ``weight``); what the haproxy_server module does.

    maint: drain first (until no sessions or ``drain_timeout``), then maint, and store ``reason`` in the marker.
    drain: drain and wait the same way. ready: ready, remove the marker, wait until HAProxy's check passes
    (``ready_timeout``); when it does not, the server goes back to maint with NOT_SERVING_REASON and this fails.
    present: nothing but ``weight``. A server already in ``state`` is left alone (changed=false).
    Returns dict(changed, backend, server, address, before, after, admin_state, operational, sessions, drain,
    ready_seconds, reason, diff); before and after are server_status dicts with the marker's reason added.
    """
    parsed = check_server_args(state, drain_timeout, ready_timeout, weight)
    check_name('backend', backend)
    check_name('server', server)
    marker = read_marker(marker_dir, backend, server)
    stored = marker.get('reason') if marker else None
    before = dict(server_status(api, backend, server), reason=stored)
    target_weight = before['weight'] if parsed is None else wanted_weight(parsed, before['initial_weight'])
    moves = state != 'present' and before['admin_state'] != state
    weight_changes = target_weight != before['weight']
    drain = ready_seconds = None
    marker_changes = False
    if state == 'maint':
        # A server already in maint gets a new reason only when the marker says hotswap put it there: a
        # maintenance someone else set stays without a marker (nothing claims it as ours).
        marker_changes = moves or (marker is not None and bool(reason) and reason != stored)
        if marker_changes:
            stored = reason
    elif state in ('ready', 'drain'):
        marker_changes = marker is not None
        stored = None
    changed = moves or weight_changes or marker_changes
    result = dict(changed=changed, backend=backend, server=server, address=before['address'], before=before,
                  drain=None, ready_seconds=None, reason=stored)
    if check_mode:
        after = predicted(before, state, target_weight, stored)
    else:
        if weight_changes:
            set_weight(api, backend, server, target_weight)
        if state == 'maint':
            if moves:
                if drain_timeout > 0 and before['admin_state'] == 'ready':
                    drain = drain_server(api, backend, server, drain_timeout, interval=interval, clock=clock,
                                         sleep=sleep)
                elif drain_timeout > 0:  # already draining: wait for what is left
                    drain = wait_until_drained(api, backend, server, drain_timeout, interval=interval, clock=clock,
                                               sleep=sleep)
                set_admin_state(api, backend, server, 'maint')
            if marker_changes:
                write_marker(marker_dir, backend, server, reason, move=move)
        elif state == 'drain':
            if moves:
                set_admin_state(api, backend, server, 'drain')
            drain = wait_until_drained(api, backend, server, drain_timeout, interval=interval, clock=clock,
                                       sleep=sleep)
        elif state == 'ready':
            if moves:
                set_admin_state(api, backend, server, 'ready')
            if marker_changes:
                remove_marker(marker_dir, backend, server)
            ready_seconds = make_serving(api, backend, server, ready_timeout, moves, marker_dir, move, interval,
                                         clock, sleep)
        after = dict(server_status(api, backend, server), reason=stored)
    result.update(drain=drain, ready_seconds=ready_seconds, after=after, admin_state=after['admin_state'],
                  operational=after['operational'], sessions=after['sessions'],
                  diff=dict(before=state_text(before['admin_state'], before['weight']),
                            after=state_text(after['admin_state'], after['weight']),
                            before_header='%s/%s' % (backend, server), after_header='%s/%s' % (backend, server)))
    return result


def make_serving(api, backend, server, ready_timeout, was_set_ready, marker_dir, move, interval, clock, sleep):
    """After ``state ready``: the seconds until HAProxy sends the server traffic on its own check's word.

    A server this run set ready that does not pass in ``ready_timeout`` goes back to maint with the reason
    NOT_SERVING_REASON in its marker, and HaproxyError says so. ``ready_timeout`` 0 does not wait.
    """
    status = server_status(api, backend, server)
    if status['admin_state'] == 'maint':
        raise HaproxyError('setting %s/%s ready in HAProxy: it is still in maintenance (%s), which "set server ... '
                           'state ready" does not clear. Fix that cause (the tracked server, DNS) and rerun.'
                           % (backend, server, ', '.join(leave_maint_blockers(status)) or
                              'admin bits %#x' % status['admin_bits']), status=status)
    if ready_timeout == 0:
        return None
    try:
        return wait_until_serving(api, backend, server, ready_timeout, interval=interval, clock=clock, sleep=sleep)
    except HaproxyError as e:
        if not was_set_ready:
            raise HaproxyError(e.msg + ' The server was ready before this run and is left as it is.',
                               back_to_maint=False, **e.details)
        set_admin_state(api, backend, server, 'maint')
        write_marker(marker_dir, backend, server, NOT_SERVING_REASON, move=move)
        raise HaproxyError(e.msg + ' The server is back in maint (reason: %s).' % NOT_SERVING_REASON,
                           back_to_maint=True, **e.details)


# --------------------------------------------------------------------------- haproxy_weight

def backend_weights(api, backend):
    """{server: (weight, initial weight)} of the active servers of ``backend`` and the names of its backup servers."""
    rows = backend_servers(api, backend)
    if not rows:
        raise HaproxyError('reading backend %s from HAProxy: it has no servers. Add servers to it, or fix `backend`.'
                           % backend)
    backups = set(r.get('svname') for r in stat_rows(api, rows[0].get('be_id'))
                  if r.get('pxname') == backend and r.get('bck') == '1')
    weights = dict((r['srv_name'], (to_int(r.get('srv_uweight')), to_int(r.get('srv_iweight'))))
                   for r in rows if r.get('srv_name') not in backups)
    return weights, sorted(backups)


def converge_weights(api, backend, canary=None, share=None, reset=False, check_mode=False):
    """Set the weights of ``backend`` for the canary share (or back to the initial ones with ``reset``).

    Only the weights that differ are set. Backup servers are neither counted nor changed (a canary may not be one).
    Returns dict(changed, backend, weights {server: {before, after}}, share_asked, share, diff).
    """
    check_name('backend', backend)
    canary = list(dict.fromkeys(canary or []))
    for name in canary:
        check_name('server', name)
    if reset == (share is not None):
        raise HaproxyError('setting the weights of backend %s: %s. Give either share (with canary) or reset: true.'
                           % (backend, 'both share and reset given' if reset else 'neither share nor reset given'))
    current, backups = backend_weights(api, backend)
    if reset:
        wanted = dict((s, initial) for s, (_w, initial) in current.items())
    else:
        bad = [c for c in canary if c in backups]
        if bad:
            raise HaproxyError('setting the canary weights of backend %s: %s %s backup server(s), which take traffic '
                               'only when every active server is down. Fix `canary`.'
                               % (backend, ', '.join(bad), 'is a' if len(bad) == 1 else 'are'))
        wanted, _actual = canary_weights(dict((s, initial) for s, (_w, initial) in current.items()), canary, share)
    weights = dict((s, dict(before=current[s][0], after=wanted[s])) for s in sorted(current))
    to_set = [s for s in sorted(current) if wanted[s] != current[s][0]]
    done = []
    if not check_mode:
        for name in to_set:
            try:
                set_weight(api, backend, name, wanted[name])
            except HaproxyError as e:
                raise HaproxyError(e.msg + ' Weights set before the error: %s.'
                                   % (', '.join('%s=%s' % (s, wanted[s]) for s in done) or 'none'), weights=weights)
            done.append(name)
    return dict(changed=bool(to_set), backend=backend, weights=weights, share_asked=None if reset else share,
                share=share_of(wanted, canary) if canary else None,
                diff=dict(before=''.join('%s: %s\n' % (s, w['before']) for s, w in sorted(weights.items())),
                          after=''.join('%s: %s\n' % (s, w['after']) for s, w in sorted(weights.items())),
                          before_header=backend, after_header=backend))
