#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Real test hosts for hotswap.deploy: podman containers running systemd as
PID 1 with sshd, reachable only through ports published on 127.0.0.1.

Command line (see tests/hosts/README.md)::

    testhosts.py image [--force] [--variant systemd254]
    testhosts.py up --prefix NAME --count N [--app-port-count K | --ports 22,8080,...]
                    [--variant systemd254]
    testhosts.py down --prefix NAME | --all-mine
    testhosts.py ssh HOST --prefix NAME -- CMD...
    testhosts.py list

Importable (pytest fixtures)::

    import testhosts
    testhosts.ensure_image()
    hosts = testhosts.up('it-abc123', 3)       # list of host dicts
    hosts = testhosts.up('it-def456', 1, variant='systemd254')
    inv = testhosts.inventory_path('it-abc123')
    testhosts.ssh_run(hosts[0], 'systemctl is-system-running')
    testhosts.down('it-abc123')

Standard library only. Must run as root (rootful podman, debootstrap).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_STATE_DIR = os.path.join(REPO_ROOT, 'build', 'testhosts')
STATE_DIR_ENV = 'HOTSWAP_TESTHOSTS_DIR'

IMAGE_REPO = 'localhost/hotswap-testhost'
LABEL = 'hotswap.testhosts'            # value: the prefix
LABEL_STATE = 'hotswap.testhosts.state-dir'   # value: the state dir (for --all-mine)
LOCK_DIR = '/var/tmp'
IMAGE_LOCK = os.path.join(LOCK_DIR, 'hotswap-testhost-image.lock')
# The inotify limit is the user's, whichever checkout starts the hosts.
START_LOCK = os.path.join(LOCK_DIR, 'hotswap-testhost-start-%d.lock' % os.getuid())
# .deb cache shared by builds (used under IMAGE_LOCK): a recipe change does
# not download everything again.
DEB_CACHE = os.path.join(LOCK_DIR, 'hotswap-testhost-debcache')
# apt's archive cache for variant builds (also used under IMAGE_LOCK).
VARIANT_DEB_CACHE = os.path.join(LOCK_DIR, 'hotswap-testhost-debcache-apt')

SUITE = 'bookworm'
VARIANT = 'minbase'
PACKAGES = (
    'python3', 'python3-jmespath', 'systemd', 'systemd-sysv', 'dbus',
    'openssh-server', 'iproute2', 'procps', 'curl', 'ca-certificates',
    'nginx-light', 'sudo',
)
# Installed but not started at boot (port 80 stays free unless a role
# enables them). Disabled, not masked: roles must be able to enable them.
DISABLED_UNITS = ('nginx.service',)

# Images derived from the base one: apt-get install -t SUITE PACKAGES in a
# container, then podman commit. Tag: <hash of base tag + recipe>-<variant>.
VARIANTS = {
    # Type=notify-reload needs systemd >= 253; bookworm has 252.
    'systemd254': {
        'suite': 'bookworm-backports',
        'packages': ('systemd', 'systemd-sysv', 'libsystemd0', 'libsystemd-shared'),
        'min_systemd': 253,
    },
    # A load-balancer host (tests of lb: haproxy): the distribution's HAProxy, its
    # runtime API on /run/haproxy/admin.sock (the package's default config).
    'haproxy': {
        'suite': 'bookworm',
        'packages': ('haproxy',),
        'version_command': 'haproxy -v | head -n 1',
    },
    # A metrics host (tests of Prometheus-based canary analysis, tests/integration/promlib.py): the
    # distribution's Prometheus, without its recommended node exporter (the base image sets
    # APT::Install-Recommends "0"). Disabled in the image: run with network='host', it would
    # otherwise take the machine's :9090 at boot; promlib.configure() picks a free port, starts it.
    'prometheus': {
        'suite': 'bookworm',
        'packages': ('prometheus',),
        'version_command': 'prometheus --version 2>&1 | head -n 1',
        'disabled_units': ('prometheus.service',),
    },
}

SSH_PORT = 22
APP_PORT_BASE = 8080
DEFAULT_APP_PORT_COUNT = 3             # 8080, 8081, 8082
EXTRA_PORTS = (80,)                    # the load balancer port (blue-green)
DEFAULT_PORTS = (SSH_PORT,) + tuple(APP_PORT_BASE + i for i in range(DEFAULT_APP_PORT_COUNT)) + EXTRA_PORTS

# Build containers need them too: podman's default nofile exceeds the hard
# limit here, and runc then fails to start anything.
ULIMIT_FLAGS = ('--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=4000:4000')
RUN_FLAGS = ('--runtime', 'runc', '--systemd=always') + ULIMIT_FLAGS + (
    # SO_REUSEPORT hand-over: a closing listener's queued connections move
    # to the remaining one (kernel >= 5.14; per network namespace).
    '--sysctl', 'net.ipv4.tcp_migrate_req=1',
    # mount namespaces for units: without it ProtectSystem= etc. are silently skipped, DynamicUser= fails 226/NAMESPACE
    '--cap-add', 'SYS_ADMIN',
    # root reads /proc/<pid>/exe of a service running as its own user (is it on the new binary?),
    # as root on a real host can; without it a re-run of a live release is never seen as live
    '--cap-add', 'SYS_PTRACE',
)

SSH_OPTS = (
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes',
    '-o', 'LogLevel=ERROR',
    '-o', 'ConnectTimeout=5',
    '-o', 'IdentitiesOnly=yes',
)

PREFIX_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$')

# Units that fail or make no sense in a container, or that would reach the
# network by themselves (apt timers). Masked (-> /dev/null) in the image.
MASKED_UNITS = (
    # consoles: no tty in a detached container
    'getty.target', 'getty@.service', 'serial-getty@.service',
    'console-getty.service', 'container-getty@.service',
    # hardware / kernel / host things
    'systemd-udevd.service', 'systemd-udevd-control.socket', 'systemd-udevd-kernel.socket',
    'systemd-udev-trigger.service', 'systemd-udev-settle.service',
    'systemd-remount-fs.service', 'systemd-modules-load.service',
    'sys-kernel-config.mount', 'sys-kernel-debug.mount', 'sys-kernel-tracing.mount',
    'sys-fs-fuse-connections.mount', 'dev-hugepages.mount', 'dev-mqueue.mount',
    'systemd-sysctl.service', 'systemd-firstboot.service',
    'systemd-hwdb-update.service', 'systemd-binfmt.service',
    'proc-sys-fs-binfmt_misc.automount', 'proc-sys-fs-binfmt_misc.mount',
    'systemd-pstore.service', 'systemd-random-seed.service',
    'systemd-resolved.service', 'systemd-timesyncd.service',
    'systemd-networkd.service', 'systemd-networkd-wait-online.service',
    # periodic jobs: apt timers would contact the network; the rest is noise
    'apt-daily.timer', 'apt-daily-upgrade.timer', 'apt-daily.service',
    'apt-daily-upgrade.service', 'fstrim.timer', 'e2scrub_all.timer',
    'e2scrub_reap.service', 'dpkg-db-backup.timer', 'man-db.timer',
    # nobody answers a password prompt here, and each path unit holds an inotify instance of the machine's
    # per-user limit (INOTIFY_PER_HOST)
    'systemd-ask-password-console.path', 'systemd-ask-password-wall.path',
)

# A non-root login for tests that deploy with become (-e ansible_user=deploy
# -e ansible_become=true): passwordless sudo, root's SSH key (copied at boot
# by hotswap-deploy-key.service, since the key is bind-mounted by `up`).
DEPLOY_USER = 'deploy'
DEPLOY_HOME = '/home/deploy'

# Files written into the root file system (path relative to it -> content).
CONFIG_FILES = {
    'etc/ssh/sshd_config.d/10-hotswap-testhost.conf': (
        '# hotswap.deploy test host\n'
        'HostKey /etc/ssh/ssh_host_ed25519_key\n'
        'PermitRootLogin prohibit-password\n'
        'PubkeyAuthentication yes\n'
        'PasswordAuthentication no\n'
        'KbdInteractiveAuthentication no\n'
        'UseDNS no\n'
        'StrictModes yes\n'
        'MaxStartups 200:30:400\n'
        'MaxSessions 64\n'
        'PrintMotd no\n'
    ),
    # Host keys: not baked into the image; every container makes its own on
    # first start (ed25519 only: fast).
    'etc/systemd/system/ssh.service.d/10-hotswap-hostkey.conf': (
        '[Service]\n'
        'ExecStartPre=\n'
        "ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || "
        "ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key'\n"
        'ExecStartPre=/usr/sbin/sshd -t\n'
    ),
    'etc/systemd/journald.conf.d/10-hotswap-testhost.conf': (
        '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n'
    ),
    'etc/systemd/system.conf.d/10-hotswap-testhost.conf': (
        '[Manager]\nDefaultTimeoutStopSec=10s\nShowStatus=no\n'
    ),
    'etc/hosts': '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n',
    'etc/apt/apt.conf.d/99-hotswap-testhost': (
        'APT::Periodic::Enable "0";\nAPT::Install-Recommends "0";\n'
    ),
    # pam_env reads it at every ssh login (and logs a warning when missing).
    'etc/default/locale': 'LANG=C.UTF-8\n',
    'etc/sudoers.d/deploy': 'deploy ALL=(ALL) NOPASSWD:ALL\n',
    # Pulled in by ssh.service (link made by configure_rootfs), runs before
    # sshd on every (re)start: the deploy user gets root's authorized_keys,
    # owned by deploy, mode 600 (sshd StrictModes).
    'etc/systemd/system/hotswap-deploy-key.service': (
        '[Unit]\n'
        'Description=hotswap test host: root\'s authorized_keys for the deploy user\n'
        'Before=ssh.service\n'
        'ConditionPathExists=/root/.ssh/authorized_keys\n'
        '\n'
        '[Service]\n'
        'Type=oneshot\n'
        'ExecStart=/usr/bin/install -o deploy -g deploy -m 600 /root/.ssh/authorized_keys '
        '/home/deploy/.ssh/authorized_keys\n'
    ),
}
# Modes of CONFIG_FILES other than 0644.
CONFIG_FILE_MODES = {
    'etc/sudoers.d/deploy': 0o440,
}
# Units enabled in the image: unit -> the unit whose .wants/ links to it.
ENABLED_UNITS = {
    'hotswap-deploy-key.service': 'ssh.service',
}

# Bump when the build steps below change in a way CONFIG_FILES/MASKED_UNITS
# do not show.
RECIPE_VERSION = 5


def log(msg):
    sys.stderr.write('[testhosts] %s\n' % msg)
    sys.stderr.flush()


class TestHostError(Exception):
    """A failure to report: what was being done, the cause, the fix."""


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def _run(cmd, check=True, capture=True, stdin_text=None, timeout=None):
    proc = subprocess.run(
        cmd, input=stdin_text, timeout=timeout,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        universal_newlines=True, check=False)
    if check and proc.returncode != 0:
        raise TestHostError('running %s: exit %d: %s' % (
            ' '.join(shlex.quote(c) for c in cmd), proc.returncode,
            (proc.stderr or proc.stdout or '').strip()[-2000:]))
    return proc


def state_dir(path=None):
    return os.path.abspath(path or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def prefix_dir(prefix, sdir=None):
    return os.path.join(state_dir(sdir), prefix)


def inventory_path(prefix, sdir=None):
    return os.path.join(prefix_dir(prefix, sdir), 'inventory.yml')


def hosts_json_path(prefix, sdir=None):
    return os.path.join(prefix_dir(prefix, sdir), 'hosts.json')


def check_prefix(prefix):
    if not PREFIX_RE.match(prefix or ''):
        raise TestHostError(
            'checking prefix %r: must match %s. Use letters, digits, '
            '"-", "_" or "." (a unique name per test run).' % (prefix, PREFIX_RE.pattern))


@contextlib.contextmanager
def _flock(path, holder='another run is building'):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log('waiting for lock %s (%s)' % (path, holder))
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# Image
# --------------------------------------------------------------------------

def recipe():
    """Everything that determines the image content."""
    return {
        'recipe_version': RECIPE_VERSION,
        'suite': SUITE,
        'variant': VARIANT,
        'packages': sorted(PACKAGES),
        'masked_units': sorted(MASKED_UNITS),
        'disabled_units': sorted(DISABLED_UNITS),
        'config_files': CONFIG_FILES,
        'config_file_modes': CONFIG_FILE_MODES,
        'enabled_units': ENABLED_UNITS,
        'deploy_user': [DEPLOY_USER, DEPLOY_HOME],
    }


def _check_variant(variant):
    if variant is not None and variant not in VARIANTS:
        raise TestHostError('choosing image variant %r: unknown. Known: %s (or none for the '
                            'base image).' % (variant, ', '.join(sorted(VARIANTS))))


def image_tag(variant=None):
    blob = json.dumps(recipe(), sort_keys=True).encode('utf-8')
    tag = hashlib.sha256(blob).hexdigest()[:12]
    if variant is None:
        return tag
    _check_variant(variant)
    # The base tag is hashed in: a base recipe change gives a new variant tag.
    blob = json.dumps({'base': tag, 'variant': variant, 'recipe': VARIANTS[variant]},
                      sort_keys=True).encode('utf-8')
    return '%s-%s' % (hashlib.sha256(blob).hexdigest()[:12], variant)


def image_name(variant=None):
    return '%s:%s' % (IMAGE_REPO, image_tag(variant))


def current_image_names():
    """The base image and every variant of the current recipe."""
    return [image_name(v) for v in (None,) + tuple(sorted(VARIANTS))]


def image_exists(name=None):
    return _run(['podman', 'image', 'exists', name or image_name()], check=False).returncode == 0


def debian_mirror():
    """The Debian mirror this machine's apt uses (never hard-coded)."""
    override = os.environ.get('HOTSWAP_TESTHOSTS_MIRROR')
    if override:
        return override
    deb822 = '/etc/apt/sources.list.d/debian.sources'
    if os.path.exists(deb822):
        with open(deb822) as f:
            stanzas = re.split(r'\n\s*\n', f.read())
        first = None
        for stanza in stanzas:
            fields = {}
            for line in stanza.splitlines():
                m = re.match(r'^([A-Za-z-]+):\s*(.*)$', line)
                if m:
                    fields[m.group(1).lower()] = m.group(2).split()
            uris = fields.get('uris')
            if not uris:
                continue
            first = first or uris[0]
            if SUITE in fields.get('suites', []):
                return uris[0]
        if first:
            return first
    legacy = '/etc/apt/sources.list'
    if os.path.exists(legacy):
        with open(legacy) as f:
            for line in f:
                parts = line.split('#', 1)[0].split()
                if len(parts) >= 3 and parts[0] == 'deb':
                    # skip option blocks like [arch=amd64]
                    rest = [p for p in parts[1:] if not p.startswith('[') and not p.endswith(']')]
                    if len(rest) >= 2 and rest[1] == SUITE:
                        return rest[0]
    raise TestHostError(
        'finding the Debian mirror: no URIs: line in %s and no "deb ... %s" line in %s. '
        'Configure apt or set HOTSWAP_TESTHOSTS_MIRROR.' % (deb822, SUITE, legacy))


def _mounts_under(path):
    path = os.path.realpath(path)
    found = []
    with open('/proc/self/mounts') as f:
        for line in f:
            mnt = line.split()[1].replace('\\040', ' ')
            if mnt == path or mnt.startswith(path + '/'):
                found.append(mnt)
    return sorted(found, key=len, reverse=True)


def _remove_tree(path):
    """rm -rf that never crosses into a mount left behind by debootstrap."""
    for mnt in _mounts_under(path):
        _run(['umount', '-l', mnt], check=False)
    _run(['rm', '-rf', '--one-file-system', path], check=False)


def _write(root, rel, content, mode=0o644):
    dest = os.path.join(root, rel)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.islink(dest):
        os.unlink(dest)
    with open(dest, 'w') as f:
        f.write(content)
    os.chmod(dest, mode)


def _mask(root, unit):
    dest = os.path.join(root, 'etc/systemd/system', unit)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.lexists(dest):
        if os.path.isdir(dest) and not os.path.islink(dest):
            shutil.rmtree(dest)
        else:
            os.unlink(dest)
    os.symlink('/dev/null', dest)


def _disable(root, unit):
    """What `systemctl disable` does: drop the unit's .wants/.requires links
    (and deb-systemd-helper's record of them, so upgrades keep it disabled)."""
    for base in ('etc/systemd/system', 'var/lib/systemd/deb-systemd-helper-enabled'):
        d = os.path.join(root, base)
        if not os.path.isdir(d):
            continue
        for sub in os.listdir(d):
            link = os.path.join(d, sub, unit)
            if sub.endswith(('.wants', '.requires')) and os.path.lexists(link):
                os.unlink(link)


def _add_deploy_user(root):
    """The non-root deploy user (see DEPLOY_USER); its authorized_keys is
    filled at boot by hotswap-deploy-key.service."""
    _run(['useradd', '--root', root, '--create-home', '--home-dir', DEPLOY_HOME,
          '--shell', '/bin/bash', '--user-group', DEPLOY_USER])
    # numeric ids as inside the root file system (the build host may differ)
    uid = gid = None
    with open(os.path.join(root, 'etc/passwd')) as f:
        for line in f:
            fields = line.rstrip('\n').split(':')
            if fields[0] == DEPLOY_USER:
                uid, gid = int(fields[2]), int(fields[3])
    if uid is None:
        raise TestHostError('adding user %s: not in %s/etc/passwd after useradd.' % (DEPLOY_USER, root))
    home = os.path.join(root, DEPLOY_HOME.lstrip('/'))
    sshdir = os.path.join(home, '.ssh')
    os.makedirs(sshdir, exist_ok=True)
    os.chmod(sshdir, 0o700)
    os.chown(home, uid, gid)
    os.chown(sshdir, uid, gid)


def configure_rootfs(root):
    """Turn a debootstrapped tree into a container test host."""
    for rel, content in CONFIG_FILES.items():
        _write(root, rel, content, CONFIG_FILE_MODES.get(rel, 0o644))
    for unit in MASKED_UNITS:
        _mask(root, unit)
    for unit in DISABLED_UNITS:
        _disable(root, unit)
    for unit, wanted_by in ENABLED_UNITS.items():
        link = os.path.join(root, 'etc/systemd/system', wanted_by + '.wants', unit)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink('/etc/systemd/system/' + unit, link)
    _add_deploy_user(root)
    # No host keys in the image: each container generates its own.
    sshdir = os.path.join(root, 'etc/ssh')
    for name in os.listdir(sshdir):
        if name.startswith('ssh_host_'):
            os.unlink(os.path.join(sshdir, name))
    # authorized_keys is bind-mounted by `up`; the directory must satisfy
    # sshd StrictModes (owned by root, not group/world writable).
    os.makedirs(os.path.join(root, 'root/.ssh'), exist_ok=True)
    os.chmod(os.path.join(root, 'root/.ssh'), 0o700)
    os.chmod(os.path.join(root, 'root'), 0o700)
    # pam_loginuid cannot write /proc/self/loginuid in a container and would
    # refuse the session: make it optional.
    pam_sshd = os.path.join(root, 'etc/pam.d/sshd')
    with open(pam_sshd) as f:
        text = f.read()
    text = re.sub(r'^session\s+required\s+pam_loginuid\.so',
                  'session    optional     pam_loginuid.so', text, flags=re.M)
    with open(pam_sshd, 'w') as f:
        f.write(text)
    # machine-id: empty file => systemd makes a transient one per boot
    # (each container gets its own); no dbus copy.
    _write(root, 'etc/machine-id', '', 0o444)
    dbus_id = os.path.join(root, 'var/lib/dbus/machine-id')
    if os.path.lexists(dbus_id):
        os.unlink(dbus_id)
    # The hostname comes from podman (--hostname).
    for rel in ('etc/hostname',):
        p = os.path.join(root, rel)
        if os.path.lexists(p):
            os.unlink(p)
    # Boot to multi-user, not graphical.
    default = os.path.join(root, 'etc/systemd/system/default.target')
    if os.path.lexists(default):
        os.unlink(default)
    os.symlink('/lib/systemd/system/multi-user.target', default)
    # Trim: apt lists/caches, docs, man pages, locales (not needed on a host).
    for rel in ('var/lib/apt/lists', 'var/cache/apt', 'usr/share/doc',
                'usr/share/man', 'usr/share/info', 'usr/share/locale'):
        p = os.path.join(root, rel)
        if os.path.isdir(p):
            for name in os.listdir(p):
                if name in ('lock', 'partial', 'archives'):
                    continue
                q = os.path.join(p, name)
                if os.path.isdir(q) and not os.path.islink(q):
                    shutil.rmtree(q)
                else:
                    os.unlink(q)
    for p in ('var/cache/apt/archives',):
        d = os.path.join(root, p)
        if os.path.isdir(d):
            for name in os.listdir(d):
                if name.endswith('.deb'):
                    os.unlink(os.path.join(d, name))
    for p in ('var/log/bootstrap.log', 'var/log/dpkg.log', 'var/log/apt/term.log',
              'var/log/apt/history.log', 'var/log/alternatives.log'):
        q = os.path.join(root, p)
        if os.path.exists(q):
            os.unlink(q)


def _image_id(name):
    return _run(['podman', 'image', 'inspect', '--format', '{{.Id}}', name]).stdout.strip()


def ensure_image(variant=None, force=False):
    """Build the base test host image, or `variant` (a key of VARIANTS; the
    base is built first if needed), unless it exists; return its name.
    force rebuilds only the image asked for."""
    _check_variant(variant)
    name = image_name(variant)
    if not force and image_exists(name):
        return name
    if os.geteuid() != 0:
        raise TestHostError('building %s: needs root (debootstrap, rootful podman). '
                            'Run as root.' % name)
    for tool in ('debootstrap', 'podman', 'tar'):
        if not shutil.which(tool):
            raise TestHostError('building %s: %s not found. Install it '
                                '(apt-get install -y podman runc debootstrap).' % (name, tool))
    if variant is not None:
        base = ensure_image()           # takes IMAGE_LOCK itself (flock is not reentrant)
        with _flock(IMAGE_LOCK):
            if not force and image_exists(name):      # built while we waited
                return name
            if not image_exists(base):
                raise TestHostError('building %s: base image %s vanished meanwhile. Retry.'
                                    % (name, base))
            old_id = _image_id(name) if image_exists(name) else None
            _build_variant(variant, base, name)
            if old_id and _image_id(name) != old_id:
                _run(['podman', 'rmi', old_id], check=False)   # still in use: keep it
            prune_old_images()
        return name
    with _flock(IMAGE_LOCK):
        if not force and image_exists(name):      # built while we waited
            return name
        old_id = _image_id(name) if image_exists(name) else None
        mirror = debian_mirror()
        t0 = time.time()
        tmp = tempfile.mkdtemp(prefix='hotswap-testhost-', dir='/var/tmp')
        root = os.path.join(tmp, 'rootfs')
        try:
            log('debootstrap %s (%s) from the mirror in apt sources into %s' % (SUITE, VARIANT, root))
            os.makedirs(DEB_CACHE, exist_ok=True)
            proc = _run(['debootstrap', '--variant=' + VARIANT, '--cache-dir=' + DEB_CACHE,
                         '--include=' + ','.join(PACKAGES), SUITE, root, mirror],
                        check=False)
            if proc.returncode != 0:
                tail = (proc.stdout + proc.stderr).strip()[-3000:]
                blog = os.path.join(root, 'debootstrap/debootstrap.log')
                if os.path.exists(blog):
                    with open(blog) as f:
                        tail += '\n--- debootstrap.log ---\n' + f.read()[-3000:]
                raise TestHostError('building %s: debootstrap failed (exit %d): %s'
                                    % (name, proc.returncode, tail))
            t1 = time.time()
            log('debootstrap took %.1f s' % (t1 - t0))
            configure_rootfs(root)
            tar = subprocess.Popen(['tar', '--numeric-owner', '--xattrs', '-C', root, '-c', '.'],
                                   stdout=subprocess.PIPE)
            imp = subprocess.run(
                ['podman', 'import',
                 '--change', 'CMD ["/sbin/init"]',
                 '--change', 'STOPSIGNAL SIGRTMIN+3',
                 '--change', 'ENV container=podman',
                 '--change', 'LABEL %s.recipe=%s' % (LABEL, image_tag()),
                 '-', name],
                stdin=tar.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                universal_newlines=True, check=False)
            tar.stdout.close()
            tar_rc = tar.wait()
            if tar_rc != 0 or imp.returncode != 0:
                raise TestHostError('building %s: tar exit %d, podman import exit %d: %s'
                                    % (name, tar_rc, imp.returncode, imp.stderr.strip()))
            t2 = time.time()
            log('import took %.1f s; image %s built in %.1f s' % (t2 - t1, name, t2 - t0))
        finally:
            _remove_tree(tmp)
        if old_id and _image_id(name) != old_id:
            # Variants of this tag sit on the old base: drop them so they
            # get rebuilt (those in use stay, and so does the old base).
            for v in sorted(VARIANTS):
                if image_exists(image_name(v)):
                    _run(['podman', 'rmi', image_name(v)], check=False)
            _run(['podman', 'rmi', old_id], check=False)   # still in use: keep it
        prune_old_images(keep=name)
    return name


# Runs in a container from the base image:
# sh -c SCRIPT sh MIRROR SUITE VERSION_COMMAND DISABLED_UNITS PKG... (DISABLED_UNITS: space-separated)
_VARIANT_SCRIPT = r"""
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mirror=$1 suite=$2 version_command=$3 disabled_units=$4
shift 4
export DEBIAN_FRONTEND=noninteractive
src=/etc/apt/sources.list.d/hotswap-variant.list
echo "deb $mirror $suite main" >"$src"
apt-get -q -o Acquire::Retries=3 update
apt-get -q -y -o Acquire::Retries=3 install -t "$suite" "$@"
# systemd is not running here: systemctl only removes the links the packages made
for unit in $disabled_units; do systemctl disable "$unit"; done
rm -f "$src"
rm -rf /var/lib/apt/lists/*_* /var/cache/apt/*.bin
rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/*
rm -f /var/log/dpkg.log /var/log/alternatives.log /var/log/apt/*.log /var/log/apt/eipp.log.xz
# same per-container identity rules as the base image (see configure_rootfs)
: >/etc/machine-id
rm -f /var/lib/dbus/machine-id /etc/ssh/ssh_host_*
echo "HOTSWAP-SYSTEMD-VERSION: $(systemctl --version | head -n 1)"
echo "HOTSWAP-VARIANT-VERSION: $(sh -c "$version_command" 2>&1)"
"""


def _build_variant(variant, base, name):
    """apt-get install the variant's packages in a container from `base`,
    then podman commit it as `name`. Called under IMAGE_LOCK."""
    spec = VARIANTS[variant]
    cname = 'hotswap-testhost-build-%s' % variant
    mirror = debian_mirror()
    t0 = time.time()
    # A leftover of an interrupted build (the name is ours; we hold the lock).
    if _run(['podman', 'container', 'exists', cname], check=False).returncode == 0:
        _run(['podman', 'rm', '-f', '-t', '0', cname], check=False)
    os.makedirs(VARIANT_DEB_CACHE, exist_ok=True)
    log('building %s: %s from %s in a container from %s'
        % (name, ' '.join(spec['packages']), spec['suite'], base))
    try:
        # Host network: the same access to the mirror as debootstrap has.
        # --unsetenv-all: commit would keep podman's PATH/TERM in the image.
        proc = _run(['podman', 'run', '--name', cname, '--runtime', 'runc', '--network', 'host',
                     '--unsetenv-all'] + list(ULIMIT_FLAGS)
                    + ['-v', '%s:/var/cache/apt/archives' % VARIANT_DEB_CACHE, base,
                       '/bin/sh', '-c', _VARIANT_SCRIPT, 'sh', mirror, spec['suite'],
                       spec.get('version_command', 'true'), ' '.join(spec.get('disabled_units', ()))]
                    + list(spec['packages']), check=False)
        out = (proc.stdout or '') + (proc.stderr or '')
        if proc.returncode != 0:
            raise TestHostError('building %s: apt-get in container %s failed (exit %d): %s'
                                % (name, cname, proc.returncode, out.strip()[-3000:]))
        m = re.search(r'^HOTSWAP-SYSTEMD-VERSION: systemd (\d+)', out, re.M)
        if not m or int(m.group(1)) < spec.get('min_systemd', 0):
            raise TestHostError('building %s: systemd %s after installing from %s; need >= %d. '
                                'Check that the mirror has %s.'
                                % (name, m.group(1) if m else '(unknown)', spec['suite'],
                                   spec['min_systemd'], spec['suite']))
        t1 = time.time()
        v = re.search(r'^HOTSWAP-VARIANT-VERSION: (.*)$', out, re.M)
        log('apt-get took %.1f s (systemd %s; %s)' % (t1 - t0, m.group(1), v.group(1) if v else ''))
        # The container ran /bin/sh: restore the base image's settings.
        _run(['podman', 'commit', '-q',
              '--change', 'CMD ["/sbin/init"]',
              '--change', 'STOPSIGNAL SIGRTMIN+3',
              '--change', 'ENV container=podman',
              '--change', 'LABEL %s.recipe=%s' % (LABEL, image_tag(variant)),
              '--change', 'LABEL %s.variant=%s' % (LABEL, variant),
              cname, name])
        t2 = time.time()
        log('commit took %.1f s; image %s built in %.1f s' % (t2 - t1, name, t2 - t0))
    finally:
        _run(['podman', 'rm', '-f', '-t', '0', cname], check=False)


def prune_old_images(keep=None):
    """Remove images of older recipes (ours only; those in use stay). The
    current base and variant images are always kept."""
    keeps = set(current_image_names())
    if keep:
        keeps.add(keep)
    out = _run(['podman', 'images', '--filter', 'reference=%s' % IMAGE_REPO,
                '--format', '{{.Repository}}:{{.Tag}}'], check=False).stdout
    # variants ("<hash>-<variant>") first: a base with child images cannot go
    for ref in sorted(set(out.split()), key=lambda r: ('-' not in r.rsplit(':', 1)[-1], r)):
        if ref not in keeps and ref.startswith(IMAGE_REPO + ':'):
            if _run(['podman', 'rmi', ref], check=False).returncode == 0:
                log('removed old image %s' % ref)
    # untagged leftovers of `image --force` (recognised by our image label)
    out = _run(['podman', 'images', '-q', '--filter', 'dangling=true',
                '--filter', 'label=%s.recipe' % LABEL], check=False).stdout
    for iid in sorted(set(out.split())):
        if _run(['podman', 'rmi', iid], check=False).returncode == 0:
            log('removed old untagged image %s' % iid)


# --------------------------------------------------------------------------
# SSH key
# --------------------------------------------------------------------------

def ensure_key(sdir=None):
    """ed25519 key pair in the state dir (generated once). Returns the private key path."""
    d = state_dir(sdir)
    os.makedirs(d, exist_ok=True)
    key = os.path.join(d, 'id_ed25519')
    with _flock(os.path.join(d, '.key.lock')):
        if not (os.path.exists(key) and os.path.exists(key + '.pub')):
            for p in (key, key + '.pub'):
                if os.path.exists(p):
                    os.unlink(p)
            _run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'hotswap-testhosts',
                  '-f', key])
    os.chmod(key, 0o600)
    # Bind-mounted as /root/.ssh/authorized_keys: must not be group/world
    # writable (sshd StrictModes); root-owned is fine.
    os.chmod(key + '.pub', 0o644)
    return key


# --------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------

def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _free_ports(n):
    """n distinct free ports on 127.0.0.1 (held until all are chosen)."""
    socks = []
    try:
        for dummy in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(('127.0.0.1', 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def container_names(prefix=None, sdir=None):
    """Names of containers this tool created: for one prefix, or (prefix None)
    all those started with state dir `sdir`."""
    if prefix:
        flt = ['--filter', 'label=%s=%s' % (LABEL, prefix)]
    else:
        flt = ['--filter', 'label=%s' % LABEL,
               '--filter', 'label=%s=%s' % (LABEL_STATE, state_dir(sdir))]
    out = _run(['podman', 'ps', '-a'] + flt + ['--format', '{{.Names}}']).stdout
    return [n for n in out.split() if n]


def _rm_if_ours(name, prefix):
    """podman rm -f NAME, only when NAME carries our label for `prefix`."""
    proc = _run(['podman', 'container', 'inspect', '--format',
                 '{{index .Config.Labels "%s"}}' % LABEL, name], check=False)
    if proc.returncode == 0 and proc.stdout.strip() == prefix:
        _run(['podman', 'rm', '-f', '-t', '0', name], check=False)


_PORT_IN_USE = re.compile(r'address already in use|port is already allocated|bind: ', re.I)


def _run_flags(network):
    """podman run flags; a host-network container shares the machine's sysctls (none set)."""
    if network != 'host':
        return list(RUN_FLAGS)
    flags = list(RUN_FLAGS)
    i = flags.index('--sysctl')
    del flags[i:i + 2]
    return flags + ['--network', 'host']


def _start_container(name, prefix, image, pubkey, ports, sdir=None, attempts=8, network=None):
    """podman run with fresh free ports; retry on port collisions.

    network='host': the container shares the machine's network namespace (a load
    balancer reaching the other hosts' published 127.0.0.1 ports); its sshd listens on
    127.0.0.1:<free port>, and every other port of `ports` maps to a free port the
    test binds itself (e.g. HAProxy's frontend)."""
    last = ''
    for attempt in range(attempts):
        host_ports = _free_ports(len(ports))
        mapping = dict(zip(ports, host_ports))
        cmd = ['podman', 'run', '-d', '--name', name, '--hostname', name,
               '--label', '%s=%s' % (LABEL, prefix),
               '--label', '%s=%s' % (LABEL_STATE, state_dir(sdir))]
        cmd += _run_flags(network)
        cmd += ['-v', '%s:/root/.ssh/authorized_keys:ro' % pubkey]
        if network == 'host':
            listen = os.path.join(prefix_dir(prefix, sdir), '%s-sshd.conf' % name)
            with open(listen, 'w') as f:
                f.write('Port %d\nListenAddress 127.0.0.1\n' % mapping[SSH_PORT])
            cmd += ['-v', '%s:/etc/ssh/sshd_config.d/20-hotswap-listen.conf:ro' % listen]
        else:
            for cport, hport in mapping.items():
                cmd += ['-p', '127.0.0.1:%d:%d' % (hport, cport)]
        cmd += [image, '/sbin/init']
        proc = _run(cmd, check=False)
        if proc.returncode == 0:
            return {'name': name, 'ports': mapping, 'attempts': attempt + 1}
        last = (proc.stderr or proc.stdout).strip()
        # a half-created container keeps the name: remove it (if ours)
        _rm_if_ours(name, prefix)
        if not _PORT_IN_USE.search(last):
            break
        log('%s: port collision, retrying (%s)' % (name, last.splitlines()[-1] if last else ''))
        time.sleep(0.1 * (attempt + 1))
    raise TestHostError('starting container %s: %s. Check `podman ps -a` and free ports, '
                        'then retry.' % (name, last))


def ssh_cmd(host, command=None, tty=False):
    """argv for a real ssh to a host dict (from up() or hosts.json)."""
    cmd = ['ssh', '-i', host['ssh_key'], '-p', str(host['ssh_port'])] + list(SSH_OPTS)
    if tty:
        cmd.append('-t')
    cmd.append('%s@%s' % (host.get('user', 'root'), host.get('address', '127.0.0.1')))
    if command is not None:
        cmd += ['--', command] if isinstance(command, str) else ['--'] + list(command)
    return cmd


def ssh_run(host, command, check=True, timeout=120):
    """Run a shell command on a host over ssh. Returns CompletedProcess (text)."""
    if not isinstance(command, str):
        command = ' '.join(shlex.quote(c) for c in command)
    proc = subprocess.run(ssh_cmd(host, command), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise TestHostError('running %r on %s over ssh: exit %d: %s' % (
            command, host['name'], proc.returncode, (proc.stderr or proc.stdout).strip()))
    return proc


INOTIFY_INSTANCES = '/proc/sys/fs/inotify/max_user_instances'
# Inotify instances per test host: systemd 3 (its cgroups, /etc/localtime, one more), logind 1, dbus 1, with the
# ask-password path units masked (they took 2 more: 350 were open with 50 hosts).
INOTIFY_PER_HOST = 5


def _open_inotify_instances():
    count = 0
    for fd_dir in glob.glob('/proc/[0-9]*/fd'):
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            try:
                count += os.readlink(os.path.join(fd_dir, name)) == 'anon_inode:inotify'
            except OSError:
                pass
    return count


def _inotify_limit():
    try:
        with open(INOTIFY_INSTANCES) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def inotify_room(limit, open_now, count):
    """Whether `count` more hosts' systemd fit under the per-user inotify limit (no limit read: assume they do)."""
    return not limit or open_now + count * INOTIFY_PER_HOST <= limit


# How long up() waits for other runs' hosts to go when the inotify limit has no room for its own (pytest-xdist
# workers start hosts at once; each worker's session hosts stay until it ends).
INOTIFY_WAIT_ENV = 'TESTHOSTS_INOTIFY_WAIT'
INOTIFY_WAIT_S = 900


@contextlib.contextmanager
def inotify_room_held(count, wait=None, lock=None):
    """Wait until `count` more hosts fit under the inotify limit, then hold the machine's host-start lock while
    they start, so two runs do not both count the same free instances. A container whose systemd gets no
    instance exits at once (code 255, no log)."""
    wait = float(os.environ.get(INOTIFY_WAIT_ENV, INOTIFY_WAIT_S) if wait is None else wait)
    limit = _inotify_limit()
    if limit and count * INOTIFY_PER_HOST > limit:
        raise TestHostError(
            'starting %d hosts: their systemd need about %d inotify instances and the kernel allows %d per user '
            '(%s). Start fewer hosts, or raise the limit (as root: sysctl -w fs.inotify.max_user_instances=%d).'
            % (count, count * INOTIFY_PER_HOST, limit, INOTIFY_INSTANCES, max(512, 2 * count * INOTIFY_PER_HOST)))
    deadline = time.time() + wait
    waited = False
    while True:
        with _flock(lock or START_LOCK, 'another run is starting hosts'):
            open_now = _open_inotify_instances()
            if inotify_room(limit, open_now, count):
                if waited:
                    log('inotify: room for %d host(s) now (%d of %d instances open)' % (count, open_now, limit))
                yield
                return
        if time.time() >= deadline:
            raise TestHostError(
                'starting %d hosts: waited %d s for room under the kernel\'s inotify limit (%d per user, %s; %d '
                'open, about %d per host). Stop other test hosts (`testhosts.py list`), or raise the limit (as '
                'root: sysctl -w fs.inotify.max_user_instances=512).'
                % (count, wait, limit, INOTIFY_INSTANCES, open_now, INOTIFY_PER_HOST))
        if not waited:
            log('inotify: %d of %d instances open, %d host(s) need about %d more: waiting up to %d s for other '
                'hosts to go' % (open_now, limit, count, count * INOTIFY_PER_HOST, wait))
            waited = True
        time.sleep(2)


def exited_before_ssh_msg(name, status, code, limit, open_now):
    """Why a host whose container exited before sshd answered is lost, and what to do; systemd (PID 1) exits at
    once when it cannot get an inotify instance, which many hosts on one machine run out of."""
    msg = ('container %s %s (exit code %s) before sshd answered: systemd, its PID 1, did not start. '
           % (name, status, code))
    if not inotify_room(limit, open_now, 1):
        msg += ('The likely cause: the kernel allows %d inotify instances per user (%s) and %d are open; each test '
                'host\'s systemd takes about %d. Start fewer hosts, or raise the limit (as root: sysctl -w '
                'fs.inotify.max_user_instances=%d).' % (limit, INOTIFY_INSTANCES, open_now, INOTIFY_PER_HOST,
                                                        max(512, 2 * limit)))
    else:
        msg += 'See `podman logs %s`.' % name
    return msg


def _exited_before_ssh(host):
    """None while the host's container runs; else what exited_before_ssh_msg says."""
    proc = _run(['podman', 'inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', host['container']],
                check=False)
    status, code = (proc.stdout.strip().split(' ', 1) + [''])[:2]
    if proc.returncode != 0 or status in ('running', 'created', 'configured', ''):
        return None
    return exited_before_ssh_msg(host['container'], status, code, _inotify_limit(), _open_inotify_instances())


def _wait_ready(host, deadline, accept_degraded=True):
    """Wait for sshd to answer, then for systemd to finish booting."""
    last = ''
    tries = 0
    while True:
        try:
            proc = subprocess.run(ssh_cmd(host, 'true'), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, universal_newlines=True,
                                  timeout=max(1.0, min(10.0, deadline - time.time())), check=False)
            if proc.returncode == 0:
                break
            last = proc.stderr.strip()
        except subprocess.TimeoutExpired:
            last = 'ssh timed out'
        tries += 1
        # A container that has exited never answers: say why now rather than at the deadline.
        if tries % 10 == 0:
            gone = _exited_before_ssh(host)
            if gone:
                raise TestHostError('waiting for sshd on %s (127.0.0.1:%d): %s' % (host['name'], host['ssh_port'], gone))
        if time.time() >= deadline:
            raise TestHostError('waiting for sshd on %s (127.0.0.1:%d): %s. See `podman logs %s`.'
                                % (host['name'], host['ssh_port'], last, host['container']))
        time.sleep(0.2)
    host['ssh_ready_s'] = round(time.time() - host['_t0'], 2)
    remaining = max(1, int(deadline - time.time()))
    proc = subprocess.run(
        ssh_cmd(host, 'timeout %d systemctl is-system-running --wait' % remaining),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
        timeout=remaining + 10, check=False)
    state = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else 'unknown'
    host['system_state'] = state
    host['ready_s'] = round(time.time() - host['_t0'], 2)
    if state == 'running' or (state == 'degraded' and accept_degraded):
        if state == 'degraded':
            failed = ssh_run(host, 'systemctl --failed --no-legend --plain', check=False).stdout
            log('%s is degraded; failed units: %s' % (host['name'], failed.strip()))
        return host
    failed = ssh_run(host, 'systemctl --failed --no-legend --plain', check=False).stdout
    raise TestHostError('waiting for systemd on %s: state %r; failed units: %s. '
                        'See `podman logs %s`.' % (host['name'], state, failed.strip(),
                                                   host['container']))


def _start_and_wait(prefix, names, image, key, ports, sdir, network, variant, timeout, accept_degraded):
    """Start the containers, then wait for each host's sshd and systemd; the host dicts of hosts.json."""
    t0 = time.time()
    workers = min(8, len(names))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        started = list(ex.map(
            lambda n: _start_container(n, prefix, image, key + '.pub', ports, sdir, network=network), names))
    t_started = time.time()
    hosts = [{
        'name': s['name'],
        'container': s['name'],
        'prefix': prefix,
        'address': '127.0.0.1',
        'user': 'root',
        'ssh_port': s['ports'][SSH_PORT],
        'ssh_key': key,
        'ports': s['ports'],
        'image': image,
        'variant': variant,
        'network': network or 'own',
        '_t0': t0,
    } for s in started]
    deadline = time.time() + timeout
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(lambda h: _wait_ready(h, deadline, accept_degraded), hosts))
    for h in hosts:
        h.pop('_t0', None)
    log('%d host(s) %s-1..%d: containers started in %.1f s, ready (ssh + systemd) in %.1f s; inotify instances '
        'open: %d of %d' % (len(names), prefix, len(names), t_started - t0, time.time() - t0,
                            _open_inotify_instances(), _inotify_limit()))
    return hosts


def up(prefix, count, ports=None, app_port_count=None, sdir=None, timeout=120,
       replace=False, accept_degraded=True, keep_on_failure=False, variant=None, network=None):
    """Start `count` hosts `<prefix>-1..N`; write inventory.yml and hosts.json.

    variant: None for the base image, or a key of VARIANTS (e.g. 'systemd254').
    network: None (a network namespace of its own, ports published on 127.0.0.1) or
    'host' (the machine's: for a load balancer in front of the other hosts).

    ports: container ports to publish on 127.0.0.1 (default 22, 8080-8082, 80;
    or 22 + 8080..8080+app_port_count-1 + 80 when app_port_count is given).
    Returns a list of host dicts (see hosts.json).
    """
    check_prefix(prefix)
    _check_variant(variant)
    if network not in (None, 'host'):
        raise TestHostError('starting hosts: network must be None or "host", got %r.' % (network,))
    if count < 1:
        raise TestHostError('starting hosts: --count must be >= 1.')
    if ports is None:
        if app_port_count is not None:
            ports = (SSH_PORT,) + tuple(APP_PORT_BASE + i for i in range(app_port_count)) + EXTRA_PORTS
        else:
            ports = DEFAULT_PORTS
    ports = [int(p) for p in ports]
    if SSH_PORT not in ports:
        ports.insert(0, SSH_PORT)
    ports = list(dict.fromkeys(ports))         # dedupe, keep order

    existing = container_names(prefix)
    if existing:
        if not replace:
            raise TestHostError('starting hosts %s-*: containers already exist (%s). Run '
                                '`testhosts.py down --prefix %s` or pass replace=True/--replace.'
                                % (prefix, ', '.join(existing), prefix))
        down(prefix, sdir=sdir)

    image = ensure_image(variant=variant)
    key = ensure_key(sdir)
    pdir = prefix_dir(prefix, sdir)
    os.makedirs(pdir, exist_ok=True)

    names = ['%s-%d' % (prefix, i) for i in range(1, count + 1)]
    try:
        with inotify_room_held(count):
            hosts = _start_and_wait(prefix, names, image, key, ports, sdir, network, variant, timeout,
                                    accept_degraded)
    except BaseException:
        if not keep_on_failure:
            for n in names:
                _rm_if_ours(n, prefix)
            _remove_tree(pdir)
        raise
    write_inventory(prefix, hosts, sdir=sdir)
    return hosts


def _yaml_str(s):
    return json.dumps(str(s))            # a JSON string is a valid YAML scalar


def write_inventory(prefix, hosts, sdir=None, path=None):
    """Write <state>/<prefix>/inventory.yml and hosts.json; return the inventory path."""
    pdir = prefix_dir(prefix, sdir)
    os.makedirs(pdir, exist_ok=True)
    path = path or inventory_path(prefix, sdir)
    lines = [
        '# Generated by tests/hosts/testhosts.py; removed by `testhosts.py down --prefix %s`.' % prefix,
        '# Host key checking is off for ssh (common args) and paramiko',
        '# (ansible_host_key_checking); ANSIBLE_HOST_KEY_CHECKING=False does the same.',
        'all:',
        '  children:',
        '    testhosts:',
        '      vars:',
        '        ansible_user: root',
        "        ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
        '        ansible_host_key_checking: false',
        '        ansible_paramiko_host_key_checking: false',
        '        ansible_python_interpreter: /usr/bin/python3',
        '        test_prefix: %s' % _yaml_str(prefix),
        '      hosts:',
    ]
    for h in hosts:
        lines += [
            '        %s:' % h['name'],
            '          ansible_host: 127.0.0.1',
            '          ansible_port: %d' % h['ssh_port'],
            '          ansible_ssh_private_key_file: %s' % _yaml_str(h['ssh_key']),
            '          test_container: %s' % _yaml_str(h['container']),
        ] + (['          ansible_connection: %s' % h['connection']] if h.get('connection') else []) + [
            '          test_image: %s' % _yaml_str(h.get('image', '')),
            '          test_image_variant: %s' % _yaml_str(h.get('variant') or ''),
            '          test_published_ports:',
        ]
        for cport, hport in sorted(h['ports'].items(), key=lambda kv: int(kv[0])):
            lines.append('            %d: %d' % (int(cport), int(hport)))
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.replace(tmp, path)

    data = {'prefix': prefix, 'inventory': path, 'hosts': [
        dict(h, ports={str(k): v for k, v in h['ports'].items()}) for h in hosts]}
    jpath = hosts_json_path(prefix, sdir)
    with open(jpath + '.tmp', 'w') as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write('\n')
    os.replace(jpath + '.tmp', jpath)
    return path


def mix_connections(prefix, hosts, plugins=('ssh', 'paramiko_ssh'), sdir=None):
    """Give the hosts the connection plugins in turn (an inventory host var, which `-c` does not override)."""
    for i, h in enumerate(hosts):
        h['connection'] = plugins[i % len(plugins)]
    write_inventory(prefix, hosts, sdir=sdir)
    return hosts


def load_hosts(prefix, sdir=None):
    """Host dicts from hosts.json (ports keys back to int)."""
    p = hosts_json_path(prefix, sdir)
    if not os.path.exists(p):
        raise TestHostError('reading %s: no such file. Run `testhosts.py up --prefix %s` first.'
                            % (p, prefix))
    with open(p) as f:
        data = json.load(f)
    for h in data['hosts']:
        h['ports'] = {int(k): v for k, v in h['ports'].items()}
    return data['hosts']


def down(prefix=None, sdir=None, all_mine=False):
    """Remove this tool's containers for `prefix` and its state dir; with
    all_mine, every container started with this state dir (all prefixes)."""
    if all_mine:
        names = container_names(None, sdir)
    else:
        check_prefix(prefix)
        names = container_names(prefix)
    if names:
        _run(['podman', 'rm', '-f', '-t', '0'] + names, check=False)
    left = container_names(None, sdir) if all_mine else container_names(prefix)
    if left:
        raise TestHostError('removing containers: still present: %s. Try `podman rm -f NAME`.'
                            % ', '.join(left))
    if all_mine:
        prune_old_images()
        sd = state_dir(sdir)
        if os.path.isdir(sd):
            for name in os.listdir(sd):
                p = os.path.join(sd, name)
                if os.path.isfile(os.path.join(p, 'hosts.json')):
                    _remove_tree(p)
    else:
        pdir = prefix_dir(prefix, sdir)
        if os.path.isdir(pdir):
            _remove_tree(pdir)
    return names


def list_hosts():
    """[{name, prefix, state, ports}] for every container this tool created."""
    out = _run(['podman', 'ps', '-a', '--filter', 'label=%s' % LABEL, '--format', 'json']).stdout
    rows = []
    for c in json.loads(out or '[]'):
        names = c.get('Names') or []
        rows.append({
            'name': names[0] if names else c.get('Id', '')[:12],
            'prefix': (c.get('Labels') or {}).get(LABEL, ''),
            'state_dir': (c.get('Labels') or {}).get(LABEL_STATE, ''),
            'state': c.get('State', ''),
            'status': c.get('Status', ''),
            'image': c.get('Image', ''),
            'ports': ', '.join('%s:%s->%s' % (p.get('host_ip') or '', p.get('host_port'),
                                              p.get('container_port'))
                               for p in (c.get('Ports') or [])),
        })
    return sorted(rows, key=lambda r: r['name'])


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def _cmd_image(args):
    name = image_name(args.variant)
    if image_exists(name) and not args.force:
        prune_old_images(keep=name)
        print('%s (exists)' % name)
        return 0
    t0 = time.time()
    ensure_image(variant=args.variant, force=args.force)
    print('%s (built in %.1f s)' % (name, time.time() - t0))
    return 0


def _cmd_up(args):
    ports = None
    if args.ports:
        ports = [int(p) for p in args.ports.split(',') if p.strip()]
    t0 = time.time()
    hosts = up(args.prefix, args.count, ports=ports, app_port_count=args.app_port_count,
               sdir=args.state_dir, timeout=args.timeout, replace=args.replace,
               accept_degraded=not args.strict, keep_on_failure=args.keep_on_failure,
               variant=args.variant, network=args.network)
    for h in hosts:
        print('%-24s ssh 127.0.0.1:%-5d %-8s ports %s' % (
            h['name'], h['ssh_port'], h['system_state'],
            ' '.join('%d->%d' % (c, p) for c, p in sorted(h['ports'].items()))))
    print('inventory: %s' % inventory_path(args.prefix, args.state_dir))
    print('hosts.json: %s' % hosts_json_path(args.prefix, args.state_dir))
    print('up took %.1f s' % (time.time() - t0))
    return 0


def _cmd_down(args):
    if not args.all_mine and not args.prefix:
        raise TestHostError('down: give --prefix NAME or --all-mine.')
    names = down(args.prefix, sdir=args.state_dir, all_mine=args.all_mine)
    print('removed: %s' % (' '.join(names) if names else '(none)'))
    return 0


def _cmd_ssh(args):
    hosts = {h['name']: h for h in load_hosts(args.prefix, args.state_dir)}
    name = args.host
    if name not in hosts and '%s-%s' % (args.prefix, name) in hosts:
        name = '%s-%s' % (args.prefix, name)        # allow "1" for "<prefix>-1"
    if name not in hosts:
        raise TestHostError('ssh: no host %r in prefix %s (have: %s).'
                            % (args.host, args.prefix, ', '.join(sorted(hosts))))
    command = args.command
    # One word: a shell command line as is ("systemctl status x; ls").
    # Several words: an argv, quoted for the remote shell.
    if len(command) == 1:
        remote = command[0]
    elif command:
        remote = ' '.join(shlex.quote(c) for c in command)
    else:
        remote = None
    argv = ssh_cmd(hosts[name], remote, tty=remote is None and sys.stdin.isatty())
    return subprocess.call(argv)


def _cmd_list(args):
    rows = list_hosts()
    if not rows:
        print('(no test hosts)')
    mine = state_dir(args.state_dir)
    for r in rows:
        other = '' if r['state_dir'] in ('', mine) else '  [state dir %s]' % r['state_dir']
        print('%-24s %-16s %-8s %s%s' % (r['name'], r['prefix'], r['state'], r['ports'], other))
    for name in current_image_names():
        print('image: %s (%s)' % (name, 'present' if image_exists(name) else 'absent'))
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = None
    if '--' in argv:                    # everything after -- is the remote command
        i = argv.index('--')
        argv, rest = argv[:i], argv[i + 1:]
    sd_help = 'state dir (default: $%s or %s)' % (STATE_DIR_ENV, DEFAULT_STATE_DIR)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--state-dir', default=argparse.SUPPRESS, help=sd_help)
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--state-dir', default=None, help=sd_help)
    sub = ap.add_subparsers(dest='cmd', metavar='COMMAND')
    sub.required = True

    p = sub.add_parser('image', parents=[common], help='build the image if absent (%s:<recipe hash>)' % IMAGE_REPO)
    p.add_argument('--force', action='store_true', help='rebuild even if present')
    p.add_argument('--variant', choices=sorted(VARIANTS), default=None,
                   help='build a variant derived from the base image (built first if absent)')
    p.set_defaults(func=_cmd_image)

    p = sub.add_parser('up', parents=[common], help='start N hosts and write the inventory')
    p.add_argument('--prefix', required=True)
    p.add_argument('--count', type=int, default=1)
    g = p.add_mutually_exclusive_group()
    g.add_argument('--app-port-count', type=int, default=None,
                   help='publish 8080..8080+K-1 (plus 22 and 80); default K=%d'
                        % DEFAULT_APP_PORT_COUNT)
    g.add_argument('--ports', default=None,
                   help='comma-separated container ports to publish (22 is always added); '
                        'default %s' % ','.join(str(x) for x in DEFAULT_PORTS))
    p.add_argument('--timeout', type=float, default=120, help='readiness deadline, seconds')
    p.add_argument('--replace', action='store_true', help='down the prefix first if it exists')
    p.add_argument('--strict', action='store_true', help='fail when systemd is degraded')
    p.add_argument('--keep-on-failure', action='store_true',
                   help='leave containers for debugging when startup fails')
    p.add_argument('--variant', choices=sorted(VARIANTS), default=None,
                   help='start the hosts from this image variant (default: the base image)')
    p.add_argument('--network', choices=['host'], default=None,
                   help="host: share the machine's network namespace (a load balancer host; "
                        'sshd on 127.0.0.1:<free port>)')
    p.set_defaults(func=_cmd_up)

    p = sub.add_parser('down', parents=[common], help='remove the hosts of a prefix (or all of ours)')
    p.add_argument('--prefix')
    p.add_argument('--all-mine', action='store_true',
                   help='remove every container started with this state dir '
                        '(all prefixes; label %s)' % LABEL_STATE)
    p.set_defaults(func=_cmd_down)

    p = sub.add_parser('ssh', parents=[common], help='run a command on one host over real ssh')
    p.add_argument('host', help='host name (<prefix>-<i>, or just <i>)')
    p.add_argument('--prefix', required=True)
    p.add_argument('command', nargs='*', help='command (put it after --)')
    p.set_defaults(func=_cmd_ssh)

    p = sub.add_parser('list', parents=[common], help='list our containers')
    p.set_defaults(func=_cmd_list)

    args, extra = ap.parse_known_args(argv)
    if extra:
        if args.cmd != 'ssh':
            ap.error('unrecognized arguments: %s' % ' '.join(extra))
        args.command = list(args.command) + extra   # `ssh H --prefix P cmd args`
    if rest is not None:
        if args.cmd != 'ssh':
            ap.error('"--" is only used with the ssh command')
        args.command = list(args.command) + rest
    try:
        return args.func(args)
    except TestHostError as e:
        sys.stderr.write('testhosts: error: %s\n' % e)
        return 1


if __name__ == '__main__':
    sys.exit(main())
