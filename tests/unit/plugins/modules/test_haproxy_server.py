# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""The haproxy_server and haproxy_weight modules end to end against a fake HAProxy runtime API: a thread serving a
unix socket that keeps server states and answers like HAProxy 2.6 (no haproxy on the test machines)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socketserver
import tempfile
import threading

import pytest


from ansible_collections.hotswap.deploy.plugins.module_utils import haproxy as H
from ansible_collections.hotswap.deploy.plugins.modules import haproxy_server, haproxy_weight

STATE_FIELDS = ('be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight '
                'srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state '
                'srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl '
                'srv_check_port srv_check_addr srv_agent_addr srv_agent_port').split()
STAT_FIELDS = ('pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,'
               'weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,'
               'rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,'
               'hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,'
               'comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,'
               'agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,'
               'agent_health,addr,cookie,mode,algo').split(',')
RISE, FALL = 2, 3
FMAINT, CMAINT, FDRAIN = 0x01, 0x04, 0x08
MAINT, DRAIN = 0x23, 0x18


class Server(object):
    """A server line of the fake HAProxy: ``check`` 'pass', 'fail' or None (no checks); ``drop``: sessions that
    end at each "show servers state" while it drains or is in maintenance."""

    def __init__(self, name, sid, weight=1, check='pass', scur=0, drop=1, admin=0, backup=False):
        self.name, self.sid, self.check, self.scur, self.drop, self.backup = name, sid, check, scur, drop, backup
        self.uweight = self.iweight = weight
        self.admin = admin
        in_maint = bool(admin & MAINT)
        self.op = 0 if in_maint else 2
        self.health = 0 if in_maint else RISE + FALL - 1
        self.result, self.status = (0, 0) if in_maint or not check else (3, 15)

    def check_state(self):
        if not self.check:
            return 0
        return 0x02 | 0x04 | (0x08 if self.admin & MAINT else 0)

    def leave_maint(self):
        # HAProxy: "start OK but check immediately" - up at once, the health at rise.
        self.op = 2
        if self.check:
            self.health = RISE

    def run_check(self):
        if not self.check or self.admin & MAINT:
            return
        if self.check == 'pass':
            self.health, self.result, self.status = min(RISE + FALL - 1, self.health + 1), 3, 15
            if self.health >= RISE:
                self.op = 2
        else:
            self.health, self.result, self.status = max(0, self.health - 1), 2, 17
            if self.health < RISE:
                self.op = 0

    def status_text(self):
        if self.admin & MAINT:
            return 'MAINT'
        if self.op == 0:
            return 'DOWN'
        if self.admin & DRAIN:
            return 'DRAIN'
        return 'UP' if self.check else 'no check'


class FakeHaproxy(object):
    """HAProxy's runtime API in non-interactive mode: one command per connection, the answer, then close.

    Backends hold Servers. Every "show servers state" is a tick of time: draining servers lose sessions and
    checks run. ``sent`` records every command line.
    """

    def __init__(self):
        self.backends = {}
        self.static = set()
        self.sent = []
        self.lock = threading.Lock()

    def add(self, backend, *servers):
        self.backends[backend] = (len(self.backends) + 3, dict((s.name, s) for s in servers))

    def server(self, backend, name):
        return self.backends[backend][1][name]

    def sets(self):
        return [line for line in self.sent if line.startswith('set ')]

    def answer(self, line):
        with self.lock:
            self.sent.append(line)
            words = line.split()
            try:
                if words[:3] == ['show', 'servers', 'state'] and len(words) == 4:
                    return self.show_servers_state(words[3])
                if words[:2] == ['show', 'stat']:
                    return self.show_stat(*[int(w) for w in words[2:5]] if len(words) == 5 else (-1, -1, -1))
                if words[:2] == ['set', 'server'] and len(words) == 5 and words[3] == 'state':
                    return self.set_state(words[2], words[4])
                if words[:2] == ['set', 'weight'] and len(words) == 4:
                    return self.set_weight(words[2], words[3])
                if words[:2] == ['get', 'weight'] and len(words) == 3:
                    srv = self.lookup(words[2])
                    return srv if isinstance(srv, str) else '%d (initial %d)\n' % (srv.uweight, srv.iweight)
            except ValueError:
                pass
            return 'Unknown command. Please enter one of the following commands only :\n  help\n'

    def lookup(self, target):
        backend, _slash, name = target.partition('/')
        if backend not in self.backends:
            return 'No such backend.\n'
        if name not in self.backends[backend][1]:
            return 'No such server.\n'
        return self.backends[backend][1][name]

    def show_servers_state(self, backend):
        if backend not in self.backends:
            return "Can't find backend.\n"
        be_id, servers = self.backends[backend]
        lines = ['1', '# ' + ' '.join(STATE_FIELDS)]
        for s in servers.values():
            if s.admin & (MAINT | DRAIN):
                s.scur = max(0, s.scur - s.drop)
            s.run_check()
            lines.append(' '.join(str(v) for v in (
                be_id, backend, s.sid, s.name, '10.0.0.%d' % (10 + s.sid), s.op, s.admin, s.uweight, s.iweight, 60,
                s.status, s.result, s.health, s.check_state(), 0, 0, 0, '-', 8080, '-', 0, 0, '-', '-', 0)))
        return '\n'.join(lines) + '\n\n'

    def show_stat(self, iid, kinds, sid):
        rows = [dict(pxname='fe_http', svname='FRONTEND', iid=2, sid=0, type=0, status='OPEN', scur=1)]
        for backend, (be_id, servers) in sorted(self.backends.items()):
            for s in servers.values():
                rows.append(dict(pxname=backend, svname=s.name, iid=be_id, sid=s.sid, type=2, scur=s.scur,
                                 status=s.status_text(), weight=s.uweight, bck=int(s.backup),
                                 check_status=H.check_status_name(s.status) if s.check else '',
                                 last_chk='Layer7 wrong status' if s.result == 2 else '',
                                 check_rise=RISE if s.check else '', check_fall=FALL if s.check else '',
                                 check_health=s.health if s.check else ''))
            rows.append(dict(pxname=backend, svname='BACKEND', iid=be_id, sid=0, type=1, status='UP',
                             scur=sum(s.scur for s in servers.values())))
        bits = {0: 1, 1: 2, 2: 4}
        rows = [r for r in rows if (iid == -1 or r['iid'] == iid) and (kinds == -1 or kinds & bits[r['type']])
                and (sid == -1 or r['sid'] == sid)]
        lines = ['# ' + ','.join(STAT_FIELDS) + ',']
        lines += [','.join(str(r.get(f, '')) for f in STAT_FIELDS) + ',' for r in rows]
        return '\n'.join(lines) + '\n\n'

    def set_state(self, target, state):
        srv = self.lookup(target)
        if isinstance(srv, str):
            return srv
        was_maint = srv.admin & MAINT
        if state == 'maint':
            srv.admin |= FMAINT
            srv.op, srv.health = 0, 0
        elif state == 'drain':
            srv.admin = (srv.admin | FDRAIN) & ~FMAINT
        elif state == 'ready':
            srv.admin &= ~(FMAINT | FDRAIN)  # CMAINT, the mark of "disabled" in the config, stays
        else:
            return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n"
        if was_maint and not srv.admin & MAINT:
            srv.leave_maint()
        return '\n'

    def set_weight(self, target, text):
        srv = self.lookup(target)
        if isinstance(srv, str):
            return srv
        match = re.match(r'^(\d+)(%?)$', text)
        if not match:
            return 'Trailing garbage in weight string.\n'
        weight = int(match.group(1))
        if match.group(2):
            weight = min(256, srv.iweight * weight // 100)
        elif weight > 256:
            return 'Absolute weight can only be between 0 and 256 inclusive.\n'
        if target.partition('/')[0] in self.static and weight not in (0, srv.iweight):
            return "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n"
        srv.uweight = weight
        return '\n'


@pytest.fixture
def haproxy():
    """A FakeHaproxy serving a unix socket (short path: at most 107 bytes) with backends web (web1-web3) and api."""
    fake = FakeHaproxy()
    fake.add('web', Server('web1', 1, scur=2), Server('web2', 2), Server('web3', 3, check=None))
    fake.add('api', Server('api1', 1))

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline().decode('utf-8').rstrip('\n')
            self.wfile.write(fake.answer(line).encode('utf-8'))

    directory = tempfile.mkdtemp(prefix='hx')
    fake.path = os.path.join(directory, 'admin.sock')
    server = socketserver.UnixStreamServer(fake.path, Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)
    shutil.rmtree(directory)


@pytest.fixture
def run(run_module, haproxy, tmp_path):
    """run(module, **args) with the fake's socket and a marker_dir under tmp_path (haproxy_server only)."""
    def run_it(module, **args):
        args.setdefault('socket', haproxy.path)
        if module is haproxy_server:
            args.setdefault('marker_dir', str(tmp_path / 'markers'))
        return run_module(module, **args)
    return run_it


def marker(tmp_path, backend='web', server='web1'):
    path = tmp_path / 'markers' / H.marker_name(backend, server)
    return json.loads(path.read_text()) if path.exists() else None


# --------------------------------------------------------------------------- haproxy_server

def test_present_reports_the_server_and_changes_nothing(run, haproxy):
    res = run(haproxy_server, backend='web', server='web1')
    assert res['changed'] is False and res['reason'] is None and res['drain'] is None
    assert (res['address'], res['admin_state'], res['operational']) == ('10.0.0.11:8080', 'ready', 'up')
    assert res['before']['checked'] is True and res['before']['check_passed'] is True
    assert res['before']['check_status_name'] == 'L7OK' and res['before']['weight'] == 1
    assert haproxy.sets() == []


def test_maint_drains_first_then_rerun_is_unchanged(run, haproxy, tmp_path):
    res = run(haproxy_server, backend='web', server='web1', state='maint', reason='deploying r2', _ansible_diff=True)
    assert res['changed'] is True and res['admin_state'] == 'maint' and res['operational'] == 'down'
    assert res['drain']['result'] == 'drained' and res['drain']['sessions_left'] == 0
    assert res['drain']['sessions_at_start'] == 1 and res['sessions'] == 0
    assert haproxy.sets() == ['set server web/web1 state drain', 'set server web/web1 state maint']
    assert res['reason'] == 'deploying r2' and marker(tmp_path)['reason'] == 'deploying r2'
    assert res['diff'] == dict(before='admin_state: ready\nweight: 1\n', after='admin_state: maint\nweight: 1\n',
                               before_header='web/web1', after_header='web/web1')
    del haproxy.sent[:]
    res = run(haproxy_server, backend='web', server='web1', state='maint', _ansible_diff=True)
    assert res['changed'] is False and res['drain'] is None and 'diff' not in res and haproxy.sets() == []
    res = run(haproxy_server, backend='web', server='web1')
    assert res['reason'] == 'deploying r2' and res['admin_state'] == 'maint'


def test_an_operators_maint_gets_no_marker_ours_gets_the_new_reason(run, haproxy, tmp_path):
    haproxy.server('web', 'web2').admin = FMAINT
    res = run(haproxy_server, backend='web', server='web2', state='maint', reason='hotswap.deploy is changing web2')
    assert res['changed'] is False and res['before']['reason'] is None and res['reason'] is None
    assert marker(tmp_path, server='web2') is None and haproxy.sets() == []
    run(haproxy_server, backend='web', server='web1', state='maint', reason='deploying r2', drain_timeout=0)
    res = run(haproxy_server, backend='web', server='web1', state='maint', reason='failed on web1: verify')
    assert res['changed'] is True and res['before']['reason'] == 'deploying r2'
    assert res['reason'] == res['after']['reason'] == 'failed on web1: verify'
    assert marker(tmp_path)['reason'] == 'failed on web1: verify'
    assert run(haproxy_server, backend='web', server='web1', state='maint')['changed'] is False


def test_maint_after_a_drain_that_timed_out(run, haproxy):
    haproxy.server('web', 'web1').scur, haproxy.server('web', 'web1').drop = 7, 0
    res = run(haproxy_server, backend='web', server='web1', state='maint', drain_timeout=1)
    assert res['drain']['result'] == 'timed_out' and res['drain']['sessions_left'] == 7
    assert 1 <= res['drain']['seconds'] < 3 and res['admin_state'] == 'maint'
    assert haproxy.sets()[-1] == 'set server web/web1 state maint'


def test_drain_timeout_zero_is_maint_at_once(run, haproxy):
    res = run(haproxy_server, backend='web', server='web1', state='maint', drain_timeout=0)
    assert res['drain'] is None and haproxy.sets() == ['set server web/web1 state maint']


def test_drain_waits_for_the_sessions(run, haproxy):
    res = run(haproxy_server, backend='web', server='web1', state='drain', drain_timeout=10)
    assert res['changed'] is True and res['admin_state'] == 'drain' and res['drain']['result'] == 'drained'
    assert haproxy.sets() == ['set server web/web1 state drain']


def test_check_mode_reads_only(run, haproxy, tmp_path):
    res = run(haproxy_server, backend='web', server='web1', state='maint', weight='0', reason='r',
              _ansible_check_mode=True, _ansible_diff=True)
    assert res['changed'] is True and res['after']['admin_state'] == 'maint' and res['after']['weight'] == 0
    assert res['admin_state'] == 'maint' and res['drain'] is None and res['reason'] == 'r'
    assert res['diff']['after'] == 'admin_state: maint\nweight: 0\n'
    assert haproxy.sets() == [] and not (tmp_path / 'markers').exists()
    assert all(line.startswith('show ') for line in haproxy.sent)


def test_ready_after_maint_waits_for_the_check_and_removes_the_marker(run, haproxy, tmp_path):
    run(haproxy_server, backend='web', server='web2', state='maint', reason='deploying r2', drain_timeout=0)
    assert marker(tmp_path, server='web2')['reason'] == 'deploying r2'
    res = run(haproxy_server, backend='web', server='web2', state='ready')
    assert res['changed'] is True and res['admin_state'] == 'ready' and res['operational'] == 'up'
    assert isinstance(res['ready_seconds'], float) and res['reason'] is None
    assert marker(tmp_path, server='web2') is None and os.listdir(str(tmp_path / 'markers')) == []
    res = run(haproxy_server, backend='web', server='web2', state='ready')
    assert res['changed'] is False and res['ready_seconds'] is not None


def test_ready_that_never_passes_goes_back_to_maint_and_fails(run, haproxy, tmp_path):
    run(haproxy_server, backend='web', server='web2', state='maint', drain_timeout=0)
    haproxy.server('web', 'web2').check = 'fail'
    res = run(haproxy_server, backend='web', server='web2', state='ready', ready_timeout=1)
    assert res['failed'] is True and res['back_to_maint'] is True and res['status']['status'] == 'DOWN'
    assert "HAProxy's own check did not pass within 1 s; it last showed DOWN" in res['msg']
    assert "The server is back in maint (reason: HAProxy's check did not pass after ready)." in res['msg']
    assert haproxy.server('web', 'web2').admin & FMAINT
    assert marker(tmp_path, server='web2')['reason'] == "HAProxy's check did not pass after ready"
    res = run(haproxy_server, backend='web', server='web2')
    assert res['reason'] == "HAProxy's check did not pass after ready" and res['admin_state'] == 'maint'


def test_ready_without_checks_is_up_at_once(run, haproxy):
    run(haproxy_server, backend='web', server='web3', state='maint', drain_timeout=0)
    res = run(haproxy_server, backend='web', server='web3', state='ready')
    assert res['changed'] is True and res['after']['checked'] is False and res['after']['check_passed'] is None
    assert res['ready_seconds'] < 1


def test_config_disabled_server_set_ready_counts_as_ready(run, haproxy):
    """A server "disabled" in the config has FMAINT|CMAINT; ready clears FMAINT only, and it serves."""
    haproxy.add('cfg', Server('c1', 1, admin=FMAINT | CMAINT, check=None))
    res = run(haproxy_server, backend='cfg', server='c1', state='ready')
    assert res['before']['admin_flags'] == ['FMAINT', 'CMAINT'] and res['before']['admin_state'] == 'maint'
    assert res['after']['admin_flags'] == ['CMAINT'] and res['admin_state'] == 'ready' and res['operational'] == 'up'
    assert run(haproxy_server, backend='cfg', server='c1', state='ready')['changed'] is False


def test_weight_with_and_without_a_state(run, haproxy):
    haproxy.server('web', 'web2').uweight = haproxy.server('web', 'web2').iweight = 10
    res = run(haproxy_server, backend='web', server='web2', weight='50%', _ansible_diff=True)
    assert res['changed'] is True and res['after']['weight'] == 5 and res['after']['initial_weight'] == 10
    assert res['diff']['after'] == 'admin_state: ready\nweight: 5\n'
    assert haproxy.sets() == ['set weight web/web2 5']
    res = run(haproxy_server, backend='web', server='web2', weight='5')
    assert res['changed'] is False
    res = run(haproxy_server, backend='web', server='web2', weight='100%', state='drain', drain_timeout=0)
    assert res['after']['weight'] == 10 and res['admin_state'] == 'drain'


@pytest.mark.parametrize('args, text', [
    (dict(weight='300'), 'HAProxy weights are 0-256'),
    (dict(weight='1/2'), 'not a weight. Give an integer 0-256 or a percentage of the initial weight'),
    (dict(state='maint', drain_timeout=-1), 'checking drain_timeout -1: a timeout is seconds, 0 or more.'),
    (dict(server='web1;disable frontend fe_http'), 'HAProxy names are letters, digits and "-_.:" only. Fix `server`.'),
])
def test_bad_arguments_fail_before_anything_is_sent(run, haproxy, args, text):
    call = dict(backend='web', server='web1')
    call.update(args)
    res = run(haproxy_server, **call)
    assert res['failed'] is True and text in res['msg'] and haproxy.sent == []


def test_unknown_backend_lists_the_backends(run, haproxy):
    res = run(haproxy_server, backend='wbe', server='web1', state='maint')
    assert res['failed'] is True
    assert res['msg'] == ('reading backend wbe from HAProxy: HAProxy has no backend wbe; its backends are: api, web. '
                          'Fix `backend`.')
    assert haproxy.sets() == []


def test_unknown_server_lists_the_servers(run, haproxy):
    res = run(haproxy_server, backend='web', server='web9', state='maint')
    assert res['failed'] is True and 'its servers are: web1, web2, web3' in res['msg']
    assert 'lb_server in the inventory' in res['msg'] and haproxy.sets() == []


def test_missing_socket(run, tmp_path):
    path = str(tmp_path / 'admin.sock')
    res = run(haproxy_server, socket=path, backend='web', server='web1')
    assert res['failed'] is True and 'the socket does not exist' in res['msg']
    assert '"stats socket %s level admin"' % path in res['msg'] and 'set the socket option' in res['msg']


# --------------------------------------------------------------------------- haproxy_weight

def weights_of(haproxy, backend='web'):
    return dict((name, s.uweight) for name, s in haproxy.backends[backend][1].items())


def test_canary_share_then_rerun_then_reset(run, haproxy):
    res = run(haproxy_weight, backend='web', canary=['web1'], share=10, _ansible_diff=True)
    assert res['changed'] is True and res['share_asked'] == 10 and abs(res['share'] - 10) <= 0.5
    assert weights_of(haproxy) == dict(web1=2, web2=9, web3=9)
    assert res['weights'] == dict(web1=dict(before=1, after=2), web2=dict(before=1, after=9),
                                  web3=dict(before=1, after=9))
    assert res['diff']['before'] == 'web1: 1\nweb2: 1\nweb3: 1\n' and res['diff']['after'] == 'web1: 2\nweb2: 9\nweb3: 9\n'
    del haproxy.sent[:]
    res = run(haproxy_weight, backend='web', canary=['web1'], share=10)
    assert res['changed'] is False and haproxy.sets() == []
    res = run(haproxy_weight, backend='web', reset=True)
    assert res['changed'] is True and res['share'] is None and res['share_asked'] is None
    assert weights_of(haproxy) == dict(web1=1, web2=1, web3=1)


def test_weight_check_mode_sets_nothing(run, haproxy):
    res = run(haproxy_weight, backend='web', canary=['web1'], share=100, _ansible_check_mode=True)
    assert res['changed'] is True and res['share'] == 100.0
    assert res['weights']['web2'] == dict(before=1, after=0) and haproxy.sets() == []


def test_only_differing_weights_are_set(run, haproxy):
    res = run(haproxy_weight, backend='web', canary=['web1'], share=0)
    assert res['changed'] is True and haproxy.sets() == ['set weight web/web1 0'] and res['share'] == 0.0


@pytest.mark.parametrize('args, text', [
    (dict(canary=['web1'], share=10, reset=True), 'mutually exclusive'),
    (dict(share=10), 'missing parameter(s) required by \'share\': canary'),
    (dict(canary=['web1']), 'neither share nor reset given. Give either share (with canary) or reset: true.'),
    (dict(canary=['web1'], reset=False), 'neither share nor reset given'),
    (dict(canary=['web7'], share=10), 'web7 not in the backend, whose servers are: web1, web2, web3. Fix `canary`.'),
    (dict(canary=['web1'], share=120), 'share 120 is not a percentage'),
])
def test_weight_argument_errors(run, haproxy, args, text):
    res = run(haproxy_weight, backend='web', **args)
    assert res['failed'] is True and text in res['msg'] and haproxy.sets() == []


def test_static_algorithm_refusal_is_reported(run, haproxy):
    haproxy.static.add('web')
    res = run(haproxy_weight, backend='web', canary=['web1'], share=10)
    assert res['failed'] is True and 'static LB algorithm' in res['msg'] and 'dynamic "balance"' in res['msg']
    assert res['msg'].endswith('Weights set before the error: none.') and weights_of(haproxy)['web1'] == 1


# --------------------------------------------------------------------------- docs

@pytest.mark.parametrize('module', [haproxy_server, haproxy_weight])
def test_documented_options_are_the_argument_spec(module, argument_spec_of, doc_section):
    seen = argument_spec_of(module)
    options = doc_section(module, 'DOCUMENTATION')['options']
    assert sorted(options) == sorted(seen)
    for name, spec in seen.items():
        assert options[name]['type'] == spec['type'] and options[name].get('default') == spec.get('default'), name
        assert options[name].get('choices') == spec.get('choices'), name
        assert options[name].get('elements') == spec.get('elements'), name


def test_results_are_documented(run, haproxy, doc_section):
    """Every key of a result is in RETURN (ansible adds changed, invocation, warnings and deprecations)."""
    for module, args in ((haproxy_server, dict(backend='web', server='web1', state='maint')),
                         (haproxy_weight, dict(backend='web', canary=['web1'], share=50))):
        res = run(module, **args)
        documented = set(doc_section(module, 'RETURN'))
        assert set(res) - {'changed', 'invocation', 'warnings', 'deprecations'} <= documented, module.__name__
        if module is haproxy_server:
            assert set(res['before']) == set(doc_section(module, 'RETURN')['before']['contains'])
            assert set(res['drain']) == set(doc_section(module, 'RETURN')['drain']['contains'])
