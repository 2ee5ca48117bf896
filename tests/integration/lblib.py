# -*- coding: utf-8 -*-
"""A real HAProxy (Debian's) on a test host in front of the app hosts: for tests and benchmarks.

The HAProxy host shares the machine's network namespace (testhosts.up(..., network='host')), so its
backends are the app hosts' published 127.0.0.1 ports, and its frontend listens on 127.0.0.1 too.
"""

from __future__ import annotations

import time

import testhosts
import testlib

SOCKET = '/run/haproxy/admin.sock'
MARKERS = '/var/lib/hotswap-deploy/haproxy'

HAPROXY_CFG = """global
    stats socket {socket} mode 660 level admin
    stats timeout 30s
    maxconn 4000
    user haproxy
    group haproxy

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend fe
    bind 127.0.0.1:{port}
    default_backend {backend}

backend {backend}
    balance roundrobin
    option httpchk GET {check_path}
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
{servers}
"""


class LbFleet(object):
    def __init__(self, apps, lb, inventory):
        self.hosts, self.lb, self.inventory = apps, lb, inventory

    def __iter__(self):
        return iter(self.hosts)

    @property
    def frontend_port(self):
        return self.lb['ports'][80]


def write_inventory(path, app_prefix, lb):
    """The app hosts' inventory plus a `loadbalancers` group with the HAProxy host."""
    with open(testhosts.inventory_path(app_prefix)) as f:
        text = f.read()
    text += ('    loadbalancers:\n      vars:\n        ansible_user: root\n'
             "        ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
             '        ansible_host_key_checking: false\n        ansible_paramiko_host_key_checking: false\n'
             '        ansible_python_interpreter: /usr/bin/python3\n      hosts:\n'
             '        %s:\n          ansible_host: 127.0.0.1\n          ansible_port: %d\n'
             '          ansible_ssh_private_key_file: "%s"\n'
             % (lb['name'], lb['ssh_port'], lb['ssh_key']))
    with open(path, 'w') as f:
        f.write(text)
    return path


def start(prefix, count, inventory, variant=None):
    """`count` app hosts (ssh and paramiko_ssh in turn) and one HAProxy host `<prefix>b-1`: an LbFleet."""
    apps = testhosts.up(prefix, count, variant=variant)
    testhosts.mix_connections(prefix, apps)
    lb = testhosts.up(prefix + 'b', 1, variant='haproxy', network='host')[0]
    return LbFleet(apps, lb, write_inventory(inventory, prefix, lb))


def stop(prefix):
    testhosts.down(prefix)
    testhosts.down(prefix + 'b')


def configure_haproxy(fleet, backend, port=8080, check_path='/healthz'):
    """One frontend on the LB host's reserved port, one backend of every app host's `port`; HAProxy restarted."""
    servers = '\n'.join('    server %s 127.0.0.1:%d check' % (h['name'], h['ports'][port]) for h in fleet.hosts)
    cfg = HAPROXY_CFG.format(socket=SOCKET, port=fleet.frontend_port, backend=backend, servers=servers,
                             check_path=check_path)
    testlib.host_sh(fleet.lb, "cat > /etc/haproxy/haproxy.cfg <<'EOF'\n%sEOF\nhaproxy -c -q -f /etc/haproxy/haproxy.cfg "
                    "&& systemctl restart haproxy && rm -rf %s" % (cfg, MARKERS))


def runtime(fleet, command):
    """One HAProxy runtime API command on the LB host (python3 there: no socat in the image)."""
    script = ('import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(%r)\ns.sendall(sys.argv[1].encode()+b"\\n")\n'
              'd=b""\nwhile True:\n    x=s.recv(65536)\n    if not x: break\n    d+=x\nprint(d.decode())' % SOCKET)
    return testlib.host_sh(fleet.lb, "python3 -c '%s' '%s'" % (script.replace("'", "'\\''"), command))


def server_states(fleet, backend):
    """{server: (admin state bits, operational state, weight)} from `show servers state`."""
    lines = runtime(fleet, 'show servers state %s' % backend).strip().splitlines()
    head = lines[1].lstrip('# ').split()
    out = {}
    for line in lines[2:]:
        row = dict(zip(head, line.split()))
        out[row['srv_name']] = (int(row['srv_admin_state']), int(row['srv_op_state']), int(row['srv_uweight']))
    return out


def wait_all_up(fleet, backend, timeout=20, context=None):
    """Every server ready (no admin flag) and up (its check passes); the states. context: shown on failure."""
    deadline = time.time() + timeout
    while True:
        states = server_states(fleet, backend)
        if all(admin == 0 and op == 2 for admin, op, _w in states.values()):
            return states
        if time.time() > deadline:
            raise AssertionError('HAProxy servers not all ready and up: %s\n%r' % (states, context))
        time.sleep(0.3)


def markers(fleet):
    """The reasons hotswap.deploy keeps on the LB host for servers it left in maint."""
    return testlib.host_sh(fleet.lb, 'cat %s/* 2>/dev/null || true' % MARKERS)
