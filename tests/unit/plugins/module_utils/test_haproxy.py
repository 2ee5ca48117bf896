# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""module_utils/haproxy.py: the parsers on HAProxy 2.6's answers, the canary weights, the drain and ready waits on
a fake clock against an in-process runtime API double, the marker files and the error messages."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils import haproxy as H

STATE_HEADER = ('# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight '
                'srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state '
                'srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl '
                'srv_check_port srv_check_addr srv_agent_addr srv_agent_port')
# "show servers state web" of HAProxy 2.6: web1 up and checked (rise 2, fall 3: health 4 at most), web2 forced
# into maintenance (checks paused, 0x08), web3 draining with weight 2, web4 without checks.
SERVERS_STATE = '1\n' + STATE_HEADER + '''
3 web 1 web1 10.0.0.11 2 0 1 1 812 15 3 4 6 0 0 0 - 8080 - 0 0 - - 0
3 web 2 web2 10.0.0.12 0 1 1 1 37 15 3 0 14 0 0 0 - 8080 - 0 0 - - 0
3 web 3 web3 10.0.0.13 2 8 2 2 95 15 3 4 6 0 0 0 - 8080 - 0 0 - - 0
3 web 4 web4 10.0.0.14 2 0 1 1 812 0 0 0 0 0 0 0 - 8080 - 0 0 - - 0

'''
STAT_FIELDS = (
    'pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,'
    'bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,'
    'check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,'
    'req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,'
    'qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,'
    'check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,'
    'intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,'
    'rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,'
    'agg_server_check_status,agg_check_status').split(',')


def stat_line(**fields):
    """A "show stat" CSV line in HAProxy's column order (it ends each line with a comma)."""
    return ','.join(str(fields.get(name, '')) for name in STAT_FIELDS) + ','


STAT_HEADER = '# ' + ','.join(STAT_FIELDS) + ','
SHOW_STAT = '\n'.join([
    STAT_HEADER,
    stat_line(pxname='fe_http', svname='FRONTEND', scur=7, smax=40, slim=262120, stot=9120, status='OPEN', pid=1,
              iid=2, sid=0, type=0, mode='http'),
    stat_line(pxname='web', svname='web1', qcur=0, qmax=0, scur=3, smax=12, stot=4410, status='UP', weight=1,
              act=1, bck=0, pid=1, iid=3, sid=1, type=2, check_status='L7OK', check_code=200, check_duration=1,
              last_chk='OK', check_desc='Layer7 check passed', check_rise=2, check_fall=3, check_health=4,
              addr='10.0.0.11:8080', mode='http', uweight=1),
    stat_line(pxname='web', svname='web2', scur=0, status='MAINT', weight=1, act=1, bck=0, iid=3, sid=2, type=2,
              check_status='L7OK', last_chk='"Layer7 wrong status, code: 503"', check_rise=2, check_fall=3,
              check_health=0, uweight=1),
    stat_line(pxname='web', svname='BACKEND', scur=3, status='UP', weight=4, act=3, bck=0, iid=3, sid=0, type=1,
              algo='roundrobin', mode='http', uweight=4),
    stat_line(pxname='api', svname='BACKEND', scur=0, status='UP', iid=4, sid=0, type=1),
    stat_line(pxname='stats', svname='FRONTEND', scur=1, status='OPEN', iid=5, sid=0, type=0),
]) + '\n\n'


# --------------------------------------------------------------------------- an in-process runtime API double

class Srv(object):
    def __init__(self, name, sid, op=2, admin=0, weight=1, initial=1, checked=True, health=4, result=3, status=15,
                 scur=0, backup=False):
        self.name, self.sid, self.op, self.admin = name, sid, op, admin
        self.weight, self.initial, self.checked, self.backup = weight, initial, checked, backup
        self.health, self.result, self.status, self.scur = health, result, status, scur

    def state_line(self, backend):
        check_state = (6 | (8 if self.admin & 1 else 0)) if self.checked else 0
        return '3 %s %d %s 10.0.0.%d %d %d %d %d 10 %d %d %d %d 0 0 0 - 8080 - 0 0 - - 0' % (
            backend, self.sid, self.name, 10 + self.sid, self.op, self.admin, self.weight, self.initial,
            self.status if self.checked else 0, self.result if self.checked else 0, self.health, check_state)

    def status_text(self):
        if self.admin & H.ADMF_MAINT:
            return 'MAINT'
        if self.op == 0:
            return 'DOWN'
        if self.admin & H.ADMF_DRAIN:
            return 'DRAIN'
        return 'UP' if self.checked else 'no check'


class FakeApi(object):
    """Backend "web" (id 3) as HAProxy answers for it; ``on_poll(api)`` runs before every "show stat"."""

    def __init__(self, *servers, **kw):
        self.servers = dict((s.name, s) for s in servers)
        self.sent = []
        self.on_poll = kw.get('on_poll')

    def command(self, line):
        self.sent.append(line)
        words = line.split()
        if words[:3] == ['show', 'servers', 'state']:
            if words[3] != 'web':
                return "Can't find backend.\n"
            return '1\n%s\n%s\n\n' % (STATE_HEADER, '\n'.join(s.state_line('web') for s in self.servers.values()))
        if words[:2] == ['show', 'stat']:
            if self.on_poll:
                self.on_poll(self)
            if words[2:] == ['-1', '2', '-1']:
                return '\n'.join([STAT_HEADER, stat_line(pxname='web', svname='BACKEND'),
                                  stat_line(pxname='api', svname='BACKEND')]) + '\n\n'
            rows = [stat_line(pxname='web', svname=s.name, scur=s.scur, status=s.status_text(),
                              bck=1 if s.backup else 0, check_rise=2, check_fall=3, check_health=s.health)
                    for s in self.servers.values() if words[4] in ('-1', str(s.sid))]
            return '\n'.join([STAT_HEADER] + rows) + '\n\n'
        if words[:2] == ['set', 'server']:
            srv = self.servers[words[2].split('/')[1]]
            if words[4] == 'maint':
                srv.admin |= H.ADMF_FMAINT
                srv.op = 0
            elif words[4] == 'drain':
                srv.admin = (srv.admin | H.ADMF_FDRAIN) & ~H.ADMF_FMAINT
            else:
                if srv.admin & H.ADMF_FMAINT:
                    srv.op, srv.health = 2, 2  # up at once, health at rise: HAProxy's "start OK but check"
                srv.admin &= ~(H.ADMF_FMAINT | H.ADMF_FDRAIN)
            return '\n'
        if words[:2] == ['set', 'weight']:
            self.servers[words[2].split('/')[1]].weight = int(words[3])
            return '\n'
        return 'Unknown command.\n'

    def sets(self):
        return [line for line in self.sent if line.startswith('set ')]


class Clock(object):
    """A fake monotonic clock that sleep() advances."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


# --------------------------------------------------------------------------- parsers

def test_parse_servers_state_by_field_names():
    rows = H.parse_servers_state(SERVERS_STATE)
    assert [r['srv_name'] for r in rows] == ['web1', 'web2', 'web3', 'web4']
    assert rows[0]['be_id'] == '3' and rows[0]['srv_addr'] == '10.0.0.11' and rows[0]['srv_port'] == '8080'
    assert rows[1]['srv_admin_state'] == '1' and rows[2]['srv_uweight'] == '2' and rows[3]['srv_agent_port'] == '0'


def test_parse_servers_state_follows_the_header_not_positions():
    text = '1\n# srv_name srv_port be_name srv_addr extra_field srv_admin_state\nweb9 9090 web 10.1.1.1 x 8\n'
    row = H.parse_servers_state(text)[0]
    assert row == dict(srv_name='web9', srv_port='9090', be_name='web', srv_addr='10.1.1.1', extra_field='x',
                       srv_admin_state='8')


def test_parse_servers_state_rejects_other_answers():
    with pytest.raises(H.HaproxyError) as e:
        H.parse_servers_state('Unknown command: show servers\n')
    assert 'Unknown command: show servers' in e.value.msg and 'level admin' in e.value.msg


def test_parse_stat_csv_by_column_names():
    rows = H.parse_stat_csv(SHOW_STAT)
    assert [(r['pxname'], r['svname']) for r in rows] == [
        ('fe_http', 'FRONTEND'), ('web', 'web1'), ('web', 'web2'), ('web', 'BACKEND'), ('api', 'BACKEND'),
        ('stats', 'FRONTEND')]
    web1, web2 = rows[1], rows[2]
    assert web1['scur'] == '3' and web1['status'] == 'UP' and web1['check_status'] == 'L7OK'
    assert web1['check_rise'] == '2' and web1['uweight'] == '1' and '' not in web1
    # A quoted field holding a comma stays one field.
    assert web2['last_chk'] == 'Layer7 wrong status, code: 503' and web2['check_rise'] == '2'


def test_parse_stat_csv_rejects_other_answers():
    with pytest.raises(H.HaproxyError) as e:
        H.parse_stat_csv('Permission denied\n')
    assert 'Permission denied' in e.value.msg


def test_status_of_reads_states_checks_and_weights():
    rows = dict((r['srv_name'], r) for r in H.parse_servers_state(SERVERS_STATE))
    stats = dict((r['svname'], r) for r in H.parse_stat_csv(SHOW_STAT))
    web1 = H.status_of('web', rows['web1'], stats['web1'])
    assert web1 == dict(
        backend='web', server='web1', address='10.0.0.11:8080', admin_state='ready', admin_bits=0, admin_flags=[],
        operational='up', checked=True, check_passed=True, check_status=15, check_status_name='L7OK',
        check_result=3, check_state=6, check_health=4, check_rise=2, check_fall=3, last_check='OK', status='UP',
        sessions=3, weight=1, initial_weight=1)
    web2 = H.status_of('web', rows['web2'], stats['web2'])
    assert (web2['admin_state'], web2['admin_flags'], web2['operational'], web2['status']) == (
        'maint', ['FMAINT'], 'down', 'MAINT')
    web3 = H.status_of('web', rows['web3'], {})
    assert (web3['admin_state'], web3['weight'], web3['sessions'], web3['check_rise']) == ('drain', 2, 0, None)
    web4 = H.status_of('web', rows['web4'], {})
    assert web4['checked'] is False and web4['check_passed'] is None


@pytest.mark.parametrize('bits, state', [
    (0x00, 'ready'), (0x01, 'maint'), (0x02, 'maint'), (0x20, 'maint'), (0x08, 'drain'), (0x10, 'drain'),
    (0x09, 'maint'), (0x05, 'maint'),
    # CMAINT alone stays on a server of the config's "disabled" set ready; HMAINT notes an FQDN set at runtime.
    (0x04, 'ready'), (0x40, 'ready'), (0x0c, 'drain'),
])
def test_admin_state_maint_wins_over_drain(bits, state):
    assert H.admin_state_of(bits) == state


def test_ipv6_address_is_bracketed():
    assert H.address_of(dict(srv_addr='fd00::11', srv_port='8080')) == '[fd00::11]:8080'


# --------------------------------------------------------------------------- server_status and its errors

def servers():
    return (Srv('web1', 1, scur=2), Srv('web2', 2, op=0, admin=1, health=0), Srv('web3', 3, checked=False))


def test_server_status_reads_the_server_of_both_tables():
    api = FakeApi(*servers())
    status = H.server_status(api, 'web', 'web1')
    assert (status['address'], status['sessions'], status['admin_state'], status['operational']) == (
        '10.0.0.11:8080', 2, 'ready', 'up')
    assert api.sent == ['show servers state web', 'show stat 3 4 1']


def test_unknown_backend_lists_the_backends():
    api = FakeApi(*servers())
    with pytest.raises(H.HaproxyError) as e:
        H.server_status(api, 'wbe', 'web1')
    assert e.value.msg == ('reading backend wbe from HAProxy: HAProxy has no backend wbe; its backends are: api, web. '
                           'Fix `backend`.')


def test_unknown_server_lists_the_servers_and_names_lb_server():
    with pytest.raises(H.HaproxyError) as e:
        H.server_status(FakeApi(*servers()), 'web', 'web9')
    assert 'the backend has no server web9; its servers are: web1, web2, web3' in e.value.msg
    assert 'Fix `server` (lb_server in the inventory, which defaults to the inventory host name)' in e.value.msg


@pytest.mark.parametrize('name', ['web;shutdown sessions', '../etc', 'a b', '', 'web\n'])
def test_names_that_would_break_a_command_are_refused_before_sending(name):
    api = FakeApi(*servers())
    with pytest.raises(H.HaproxyError) as e:
        H.server_status(api, name, 'web1')
    assert 'Fix `backend`' in e.value.msg and api.sent == []


def test_set_errors_carry_haproxys_answer():
    class Refusing(object):
        def command(self, line):
            return "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n"
    with pytest.raises(H.HaproxyError) as e:
        H.set_weight(Refusing(), 'web', 'web1', 5)
    assert "HAProxy answered \"Backend is using a static LB algorithm" in e.value.msg
    assert 'dynamic "balance" algorithm' in e.value.msg
    with pytest.raises(H.HaproxyError) as e:
        H.set_admin_state(type('A', (), {'command': lambda self, line: 'No such server.\n'})(), 'web', 'x', 'drain')
    assert e.value.msg.startswith('setting web/x to drain in HAProxy: HAProxy answered "No such server."')


# --------------------------------------------------------------------------- the socket client

@pytest.fixture
def sock_dir():
    """A short directory for unix sockets (their paths are limited to 107 bytes)."""
    path = tempfile.mkdtemp(prefix='hx')
    yield path
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


def serve_once(path, answer):
    """A unix socket at ``path`` that answers one command with ``answer`` and closes; returns the received lines."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    got = []

    def run():
        conn = server.accept()[0]
        data = b''
        while not data.endswith(b'\n'):
            data += conn.recv(1024)
        got.append(data.decode())
        conn.sendall(answer.encode())
        conn.close()
        server.close()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return got, thread


def test_runtime_api_sends_one_line_and_reads_until_closed(sock_dir):
    path = os.path.join(sock_dir, 'admin.sock')
    got, thread = serve_once(path, SERVERS_STATE)
    assert H.RuntimeApi(path).command('show servers state web') == SERVERS_STATE
    thread.join(5)
    assert got == ['show servers state web\n']


def test_runtime_api_permission_denied_answer_names_level_admin(sock_dir):
    path = os.path.join(sock_dir, 'admin.sock')
    _got, thread = serve_once(path, 'Permission denied\n')
    with pytest.raises(H.HaproxyError) as e:
        H.RuntimeApi(path).command('set server web/web1 state drain')
    thread.join(5)
    assert '"Permission denied"' in e.value.msg and 'level admin' in e.value.msg


def test_missing_socket_names_the_path_and_the_fix(sock_dir):
    path = os.path.join(sock_dir, 'nope.sock')
    with pytest.raises(H.HaproxyError) as e:
        H.RuntimeApi(path).command('show stat')
    assert e.value.msg == (
        'sending "show stat" to HAProxy\'s runtime API at %s: the socket does not exist. Check that haproxy runs and '
        'its config has "stats socket %s level admin", or set the socket option to the path it has.' % (path, path))


def test_socket_nobody_listens_on_is_connection_refused(sock_dir):
    path = os.path.join(sock_dir, 'stale.sock')
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    with pytest.raises(H.HaproxyError) as e:
        H.RuntimeApi(path).command('show stat')
    assert 'connection refused' in e.value.msg and 'Start haproxy' in e.value.msg


def test_permission_and_timeout_messages():
    msg = H.socket_error_message('/run/haproxy/admin.sock', 'show stat', PermissionError(13, 'Permission denied'), 5)
    assert msg.endswith('permission denied. Run with become (the socket belongs to haproxy, mode 660).')
    msg = H.socket_error_message('/run/haproxy/admin.sock', 'show stat', socket.timeout('timed out'), 5)
    assert 'no answer within 5 s' in msg and 'systemctl status haproxy' in msg


def test_a_command_is_one_line():
    with pytest.raises(H.HaproxyError) as e:
        H.RuntimeApi('/nonexistent').command('show stat; shutdown sessions server web/web1')
    assert 'without ";"' in e.value.msg


# --------------------------------------------------------------------------- drain and ready waits

def draining(drop):
    """An on_poll that takes ``drop`` sessions off every draining server at each poll."""
    def poll(api):
        for srv in api.servers.values():
            if srv.admin & H.ADMF_DRAIN:
                srv.scur = max(0, srv.scur - drop)
    return poll


def test_drain_server_waits_until_sessions_end():
    clock = Clock()
    api = FakeApi(Srv('web1', 1, scur=3), on_poll=draining(1))
    res = H.drain_server(api, 'web', 'web1', timeout=10, clock=clock, sleep=clock.sleep)
    assert res == dict(result='drained', seconds=1.0, sessions_left=0, sessions_at_start=2)
    assert api.sets() == ['set server web/web1 state drain'] and clock.sleeps == [0.5, 0.5]


def test_drain_server_times_out_with_the_sessions_left():
    clock = Clock()
    api = FakeApi(Srv('web1', 1, scur=5), on_poll=draining(0))
    res = H.drain_server(api, 'web', 'web1', timeout=2, interval=0.75, clock=clock, sleep=clock.sleep)
    assert res == dict(result='timed_out', seconds=2.0, sessions_left=5, sessions_at_start=5)
    assert clock.sleeps == [0.75, 0.75, 0.5]


def test_drain_with_timeout_zero_reads_once():
    clock = Clock()
    res = H.drain_server(FakeApi(Srv('web1', 1, scur=5)), 'web', 'web1', timeout=0, clock=clock, sleep=clock.sleep)
    assert res['result'] == 'timed_out' and res['seconds'] == 0 and clock.sleeps == []


def checks(passing, every=2):
    """An on_poll that runs a health check every ``every`` polls: a pass raises the health, a fail lowers it."""
    count = [0]

    def poll(api):
        count[0] += 1
        if count[0] % every:
            return
        for srv in api.servers.values():
            if not srv.checked or srv.admin & H.ADMF_MAINT:
                continue
            if passing:
                srv.health, srv.result, srv.status = min(4, srv.health + 1), 3, 15
            else:
                srv.health, srv.result, srv.status = max(0, srv.health - 1), 2, 17
                srv.op = 2 if srv.health >= 2 else 0
    return poll


def test_up_right_after_maint_is_not_serving_until_a_check_passed():
    clock = Clock()
    api = FakeApi(Srv('web1', 1, op=0, admin=1, health=0), on_poll=checks(True))
    H.set_admin_state(api, 'web', 'web1', 'ready')
    status = H.server_status(api, 'web', 'web1')
    assert status['operational'] == 'up' and status['check_passed'] and not H.is_serving(status)
    seconds = H.wait_until_serving(api, 'web', 'web1', timeout=10, clock=clock, sleep=clock.sleep)
    assert seconds == 0.5


def test_wait_until_serving_times_out_with_what_haproxy_showed():
    clock = Clock()
    api = FakeApi(Srv('web1', 1, op=0, admin=1, health=0), on_poll=checks(False))
    H.set_admin_state(api, 'web', 'web1', 'ready')
    with pytest.raises(H.HaproxyError) as e:
        H.wait_until_serving(api, 'web', 'web1', timeout=5, clock=clock, sleep=clock.sleep)
    assert e.value.msg.startswith("waiting for HAProxy to send traffic to web/web1 (10.0.0.11:8080): HAProxy's own "
                                  "check did not pass within 5 s; it last showed DOWN (operational down, admin ready,"
                                  " check L7STS)")
    assert e.value.details['status']['status'] == 'DOWN' and clock.now == 105.0


@pytest.mark.parametrize('changes, serving', [
    ({}, True),
    (dict(check_health=2), False),                    # at rise: no check passed since leaving maint
    (dict(check_health=2, check_fall=1), True),       # fall 1: the health cannot tell
    (dict(check_health=2, check_rise=None), True),    # no rise/fall in show stat
    (dict(check_passed=False), False),
    (dict(operational='starting'), False),
    (dict(admin_state='drain'), False),
    (dict(checked=False, check_passed=None, check_health=0), True),
])
def test_is_serving(changes, serving):
    status = dict(operational='up', admin_state='ready', checked=True, check_passed=True, check_health=4,
                  check_rise=2, check_fall=3)
    status.update(changes)
    assert H.is_serving(status) is serving


# --------------------------------------------------------------------------- converge_server

def test_maint_drains_then_maint_and_stores_the_reason(tmp_path):
    clock = Clock()
    api = FakeApi(Srv('web1', 1, scur=2), on_poll=draining(1))
    res = H.converge_server(api, 'web', 'web1', state='maint', reason='deploying r2', marker_dir=str(tmp_path),
                            clock=clock, sleep=clock.sleep)
    assert api.sets() == ['set server web/web1 state drain', 'set server web/web1 state maint']
    assert res['changed'] is True and res['drain']['result'] == 'drained' and res['admin_state'] == 'maint'
    assert res['reason'] == 'deploying r2' and H.read_marker(str(tmp_path), 'web', 'web1')['reason'] == 'deploying r2'
    assert res['diff']['before'] == 'admin_state: ready\nweight: 1\n'
    assert res['diff']['after'] == 'admin_state: maint\nweight: 1\n'


def test_maint_again_is_unchanged_without_drain(tmp_path):
    api = FakeApi(Srv('web1', 1, op=0, admin=1))
    res = H.converge_server(api, 'web', 'web1', state='maint', marker_dir=str(tmp_path))
    assert res['changed'] is False and res['drain'] is None and api.sets() == []


def test_check_mode_only_reads(tmp_path):
    api = FakeApi(Srv('web1', 1, scur=2))
    res = H.converge_server(api, 'web', 'web1', state='maint', weight='50%', marker_dir=str(tmp_path),
                            check_mode=True)
    assert res['changed'] is True and res['after']['admin_state'] == 'maint' and res['after']['weight'] == 0
    assert api.sets() == [] and os.listdir(str(tmp_path)) == []


def test_ready_that_never_passes_goes_back_to_maint(tmp_path):
    clock = Clock()
    api = FakeApi(Srv('web1', 1, op=0, admin=1, health=0), on_poll=checks(False))
    H.write_marker(str(tmp_path), 'web', 'web1', 'deploying r2')
    with pytest.raises(H.HaproxyError) as e:
        H.converge_server(api, 'web', 'web1', state='ready', ready_timeout=3, marker_dir=str(tmp_path),
                          clock=clock, sleep=clock.sleep)
    assert e.value.msg.endswith("The server is back in maint (reason: HAProxy's check did not pass after ready).")
    assert e.value.details['back_to_maint'] is True
    assert api.sets() == ['set server web/web1 state ready', 'set server web/web1 state maint']
    assert H.read_marker(str(tmp_path), 'web', 'web1')['reason'] == H.NOT_SERVING_REASON


def test_ready_still_in_inherited_maint_says_why(tmp_path):
    api = FakeApi(Srv('web1', 1, op=0, admin=0x03))
    with pytest.raises(H.HaproxyError) as e:
        H.converge_server(api, 'web', 'web1', state='ready', marker_dir=str(tmp_path))
    assert e.value.msg == ('setting web/web1 ready in HAProxy: it is still in maintenance (inherited from the server it '
                           'tracks), which "set server ... state ready" does not clear. Fix that cause (the tracked '
                           'server, DNS) and rerun.')


@pytest.mark.parametrize('kw, text', [
    (dict(drain_timeout=-1), 'checking drain_timeout -1: a timeout is seconds, 0 or more. Fix `drain_timeout`.'),
    (dict(ready_timeout=-5), 'Fix `ready_timeout`'),
    (dict(weight='heavy'), 'Give an integer 0-256 or a percentage'),
    (dict(weight='300'), 'HAProxy weights are 0-256'),
    (dict(state='up'), 'Fix `state`'),
])
def test_arguments_are_checked_before_anything_is_sent(tmp_path, kw, text):
    api = FakeApi(Srv('web1', 1))
    args = dict(state='maint', marker_dir=str(tmp_path))
    args.update(kw)
    with pytest.raises(H.HaproxyError) as e:
        H.converge_server(api, 'web', 'web1', **args)
    assert text in e.value.msg and api.sent == []


@pytest.mark.parametrize('text, initial, weight', [
    ('0', 10, 0), ('256', 10, 256), ('50%', 10, 5), ('50 %', 3, 1), ('100%', 7, 7), ('1000%', 100, 256),
])
def test_weights(text, initial, weight):
    assert H.wanted_weight(H.parse_weight(text), initial) == weight


# --------------------------------------------------------------------------- canary weights

def share(weights, canary):
    return 100.0 * sum(weights[c] for c in canary) / sum(weights.values())


def test_canary_ten_percent_of_three_equal_servers():
    weights, actual = H.canary_weights(dict(a=1, b=1, c=1), ['a'], 10)
    assert abs(actual - 10) <= 0.5 and weights == dict(a=2, b=9, c=9) and actual == share(weights, ['a'])


def test_share_zero_and_hundred():
    assert H.canary_weights(dict(a=5, b=3, c=0), ['a'], 0) == (dict(a=0, b=3, c=0), 0.0)
    assert H.canary_weights(dict(a=5, b=3, c=0), ['a', 'c'], 100) == (dict(a=5, b=0, c=1), 100.0)


def test_ties_take_the_smaller_weights():
    assert H.canary_weights(dict(a=10, b=10), ['a'], 50) == (dict(a=1, b=1), 50.0)


@pytest.mark.parametrize('initial, canary, reach', [
    (dict(a=1, b=1, c=1), ['a'], 100),
    (dict(a=100, b=100, c=100, d=100), ['a', 'b'], 100),
    (dict(a=3, b=5, c=7, d=0), ['a'], 100),
    # Others at 256 and 255 cannot go lower in proportion: the canary's 256 is at most 33.38%.
    (dict(a=256, b=1, c=255), ['b'], 33.38),
    (dict(a=1, b=2, c=3, d=4, e=5), ['e', 'a'], 100),
])
def test_canary_weights_keep_proportions_and_range(initial, canary, reach):
    others = [s for s in initial if s not in canary and initial[s] > 0]
    for asked in range(1, 100):
        weights, actual = H.canary_weights(initial, canary, asked)
        assert set(weights) == set(initial)
        assert all(1 <= weights[s] <= 256 for s in initial if initial[s] > 0 or s in canary), (asked, weights)
        assert all(weights[s] == 0 for s in initial if initial[s] == 0 and s not in canary)
        # The others keep their proportions, the canary servers get weights proportional to their initial ones.
        for group in (others, canary):
            for s in group:
                assert weights[s] * initial[group[0]] == weights[group[0]] * initial[s], (asked, weights)
        assert actual == round(share(weights, canary), 2)
        assert abs(actual - min(asked, reach)) < 5, (asked, weights)


def test_the_closest_share_of_every_scale_wins():
    # With others fixed at 255 and 254 (no common divisor, no second scale) the canary weight alone moves.
    weights, actual = H.canary_weights(dict(a=1, b=255, c=254), ['a'], 20)
    assert weights == dict(a=127, b=255, c=254) and actual == 19.97


@pytest.mark.parametrize('args, text', [
    ((dict(a=1, b=1), [], 10), 'no canary server given. List the canary servers in `canary`.'),
    ((dict(a=1, b=1), ['z'], 10), 'z not in the backend, whose servers are: a, b. Fix `canary`.'),
    ((dict(a=1, b=1), ['a'], 101), 'share 101 is not a percentage. Give share between 0 and 100.'),
    ((dict(a=1, b=1), ['a'], -1), 'share -1 is not a percentage'),
    ((dict(a=1, b=0), ['a'], 10), 'no server besides the canary (a) has a weight above 0'),
    ((dict(a=1, b=1), ['a', 'b'], 50), 'no server besides the canary (a, b)'),
])
def test_canary_weight_errors(args, text):
    with pytest.raises(H.HaproxyError) as e:
        H.canary_weights(*args)
    assert text in e.value.msg


def test_converge_weights_sets_only_what_differs_and_leaves_backups():
    api = FakeApi(Srv('web1', 1), Srv('web2', 2, weight=9), Srv('web3', 3, weight=9), Srv('spare', 4, backup=True))
    res = H.converge_weights(api, 'web', canary=['web1'], share=10)
    assert api.sets() == ['set weight web/web1 2']
    assert res['weights'] == dict(web1=dict(before=1, after=2), web2=dict(before=9, after=9),
                                  web3=dict(before=9, after=9))
    assert (res['changed'], res['share_asked'], res['share']) == (True, 10, 10.0)
    res = H.converge_weights(api, 'web', reset=True, check_mode=True)
    assert res['changed'] is True and res['share'] is None and len(api.sets()) == 1
    with pytest.raises(H.HaproxyError) as e:
        H.converge_weights(api, 'web', canary=['spare'], share=10)
    assert 'spare is a backup server' in e.value.msg


# --------------------------------------------------------------------------- the maint marker

def test_marker_names_cannot_leave_the_directory_or_collide():
    assert H.marker_name('web', 'web1') == 'web+web1.json'
    assert H.marker_name('../etc', 'a/b') == '..%2Fetc+a%2Fb.json'
    assert H.marker_name('be:1', 'x') == 'be%3A1+x.json'
    assert H.marker_name('a+b', 'c') != H.marker_name('a', 'b+c')
    assert os.path.dirname(H.marker_path('/m', '../..', '../..')) == '/m'


def test_marker_written_atomically_read_and_removed(tmp_path):
    moves = []

    def move(src, dst):
        moves.append((os.path.basename(src), os.path.basename(dst)))
        os.replace(src, dst)
    marker_dir = str(tmp_path / 'markers')
    data = H.write_marker(marker_dir, 'web', 'web1', 'deploying r2', move=move, now=lambda: 0)
    assert data == dict(backend='web', server='web1', reason='deploying r2', since='1970-01-01T00:00:00Z')
    assert os.listdir(marker_dir) == ['web+web1.json'] and moves[0][1] == 'web+web1.json'
    assert moves[0][0].startswith('.hotswap-')
    with open(os.path.join(marker_dir, 'web+web1.json')) as f:
        assert json.load(f) == data
    assert H.read_marker(marker_dir, 'web', 'web1') == data
    assert H.remove_marker(marker_dir, 'web', 'web1') is True and H.remove_marker(marker_dir, 'web', 'web1') is False
    assert H.read_marker(marker_dir, 'web', 'web1') is None


def test_a_broken_marker_reads_as_none(tmp_path):
    (tmp_path / 'web+web1.json').write_text('{not json')
    assert H.read_marker(str(tmp_path), 'web', 'web1') is None
