# -*- coding: utf-8 -*-
"""Helpers for integration tests: run ansible against real test hosts and look at them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, 'build', 'venv', 'bin')
# HOTSWAP_TEST_COLLECTIONS: another installed copy (a developer's own, while make collection runs).
COLLECTIONS = os.environ.get('HOTSWAP_TEST_COLLECTIONS') or os.path.join(REPO, 'build', 'collections')
INSTALLED = os.path.join(COLLECTIONS, 'ansible_collections', 'hotswap', 'deploy')
APP_BUILD = os.path.join(REPO, 'tests', 'app', 'build.sh')
APP_CACHE = os.path.join(REPO, 'build', 'test-app')
RESULTS = os.path.join(REPO, 'build', 'test-results')
RUN_LOGS = os.path.join(RESULTS, 'failed-runs')

# deploy.yml extra vars for tests of the per-host steps: every host in one batch, no bake.
ONE_BATCH = {'canary_steps': ['100%'], 'canary_bake_time': 0}
# The inventory group of every test host (tests/hosts/testhosts.py); deploy.yml has no default of all.
TEST_GROUP = 'testhosts'

# The demo app's own flags (tests/app), per restart strategy: the collection passes none by default.
# {port}, {address}, {pid_file}, {ready_timeout} are filled in by the roles (service_args).
DEMO_FLAGS = {
    'systemd_socket': '',
    'restart': '--listen {address}:{port}',
    'notify_reload': '--listen {address}:{port} --upgrade-timeout {ready_timeout}s',
    'signal_reexec': '--listen {address}:{port} --pid-file {pid_file} --upgrade-timeout {ready_timeout}s',
    'reuseport': '--listen {address}:{port} --reuseport',
}


def demo_service_args(strategy='systemd_socket'):
    return DEMO_FLAGS[strategy]


def with_test_defaults(playbook_name, extra_vars):
    """Extra vars as the tests run the demo app: the test hosts' group and the demo app's flags."""
    extra = dict(extra_vars)
    if playbook_name == 'deploy':
        extra.setdefault('deploy_hosts', TEST_GROUP)
    if playbook_name == 'rollback':
        extra.setdefault('rollback_hosts', TEST_GROUP)
    if 'service_args' not in extra:
        extra['service_args'] = demo_service_args(extra.get('restart_strategy', 'systemd_socket'))
        if extra.get('rollout') == 'blue_green':
            extra['service_args'] = '--listen {address}:{port}'
    return extra


RECAP_RE = re.compile(
    r'^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)'
    r'\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)',
    re.M)


def runner_env():
    """ansible-runner's envvars for a job as AWX runs it: the installed collection and the venv's ansible-playbook
    (an execution environment has its own)."""
    return {'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS, 'ANSIBLE_HOST_KEY_CHECKING': 'False',
            'PATH': VENV_BIN + os.pathsep + os.environ.get('PATH', '')}


def ansible_env(connection=None):
    env = dict(os.environ)
    env.update({
        'ANSIBLE_CONFIG': os.path.join(REPO, 'ansible.cfg'),
        'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS,
        'ANSIBLE_HOST_KEY_CHECKING': 'False',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_DEPRECATION_WARNINGS': 'False',
        'PATH': VENV_BIN + os.pathsep + env.get('PATH', ''),
    })
    # Each connection keeps its own persistent sockets; no cross-talk between runs.
    env.pop('ANSIBLE_STDOUT_CALLBACK', None)
    return env


class Result(object):
    def __init__(self, argv, proc, seconds):
        self.argv = argv
        self.rc = proc.returncode
        self.out = proc.stdout
        self.seconds = seconds
        self.recap = {m.group('host'): {k: int(v) for k, v in m.groupdict().items() if k != 'host'}
                      for m in RECAP_RE.finditer(self.out)}
        # Without localhost: deploy.yml checks its inputs in a play on the controller.
        self.hosts_recap = dict((h, c) for h, c in self.recap.items() if h != 'localhost')

    def changed(self):
        return sum(r['changed'] for r in self.recap.values())

    def __repr__(self):
        # The whole output goes to a file: an assertion message shows only its end.
        os.makedirs(RUN_LOGS, exist_ok=True)
        path = os.path.join(RUN_LOGS, '%d-%d.log' % (time.time_ns(), os.getpid()))
        with open(path, 'w') as f:
            f.write(self.out)
        return 'Result(rc=%s, whole output in %s)\n$ %s\n%s' % (
            self.rc, path, ' '.join(shlex.quote(a) for a in self.argv), self.out[-6000:])


def run(argv, connection=None, timeout=600):
    return run_env(argv, ansible_env(connection), timeout)


def run_env(argv, env, timeout=600):
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=timeout, check=False)
    result = Result(argv, proc, time.monotonic() - start)
    record_run(result)
    return result


def record_run(result):
    """One line per command in build/test-results/runs.jsonl: which test ran what, for how long (the suite's
    time is mostly these runs; docs/development.md)."""
    os.makedirs(RESULTS, exist_ok=True)
    names = [os.path.basename(a) for a in result.argv[:4]]
    with open(os.path.join(RESULTS, 'runs.jsonl'), 'a') as f:
        f.write(json.dumps({'test': os.environ.get('PYTEST_CURRENT_TEST', '').rsplit(' ', 1)[0], 'argv': names,
                            'rc': result.rc, 'seconds': round(result.seconds, 2)}) + '\n')


def playbook_argv(inventory, playbook_name, extra_vars, connection='ssh', limit=None, check=False, diff=False,
                  tmp_path=None, verbosity=0):
    """The ansible-playbook command line of a collection playbook, its extra vars in a file under tmp_path."""
    vars_file = os.path.join(str(tmp_path), 'extra-vars-%d.json' % time.monotonic_ns())
    with open(vars_file, 'w') as f:
        json.dump(with_test_defaults(playbook_name, extra_vars), f)
    argv = [os.path.join(VENV_BIN, 'ansible-playbook'), '-i', inventory, '-c', connection,
            'hotswap.deploy.%s' % playbook_name, '-e', '@' + vars_file]
    if limit:
        argv += ['--limit', limit]
    if check:
        argv.append('--check')
    if diff:
        argv.append('--diff')
    if verbosity:
        argv.append('-' + 'v' * verbosity)
    return argv


def playbook(inventory, playbook_name, extra_vars, connection='ssh', tmp_path=None, **kwargs):
    """Run a collection playbook (hotswap.deploy.<name>) from the installed collection."""
    return run(playbook_argv(inventory, playbook_name, extra_vars, connection=connection, tmp_path=tmp_path, **kwargs),
               connection)


class _Proc(object):
    def __init__(self, returncode, stdout):
        self.returncode, self.stdout = returncode, stdout


def playbook_interrupted(inventory, playbook_name, extra_vars, tmp_path, marker, action, timeout=600, **kwargs):
    """Run a playbook and call action(proc) once, when a line of its output contains marker.

    The run is its own process group (action may SIGKILL it with its ssh connections); returns its Result.
    """
    argv = playbook_argv(inventory, playbook_name, extra_vars, tmp_path=tmp_path, **kwargs)
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=ansible_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, start_new_session=True)
    seen, fired = [], False
    try:
        for line in proc.stdout:
            seen.append(line)
            if not fired and marker in line:
                fired = True
                seen.append('### fault injected at: %s' % line)
                action(proc)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    result = Result(argv, _Proc(proc.returncode, ''.join(seen)), time.monotonic() - start)
    result.fired = fired
    record_run(result)
    return result


def adhoc(inventory, pattern, module, args, connection='ssh', check=False):
    argv = [os.path.join(VENV_BIN, 'ansible'), '-i', inventory, '-c', connection, pattern,
            '-m', module, '-a', json.dumps(args)]
    if check:
        argv.append('--check')
    return run(argv, connection)


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return 'sha256:' + h.hexdigest()


def release_content():
    """The collection's own release_content module (release ids are computed the same way as the roles do)."""
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    from ansible_collections.hotswap.deploy.plugins.module_utils import release_content as rc
    return rc


def release_id(version, artifact, files=None, environment=None, environment_secret=None, binary='app'):
    """<version>-<12 hex>: the id deploy.yml gives this artifact with these files and environment."""
    rc = release_content()
    manifest = rc.content_manifest(binary, files, environment, environment_secret)
    return rc.make_release_id(version, sha256(artifact)[len('sha256:'):], manifest)


def make_archive(path, members):
    """A .tar.gz or .zip (by path) of members: (name, data bytes), (name, 'symlink', target) or (name, 'dir')."""
    import io
    import tarfile
    import zipfile
    if path.endswith('.zip'):
        with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
            for m in members:
                info = zipfile.ZipInfo(m[0])
                info.external_attr = (0o755 if m[0].split('/')[-1] in ('app',) or len(m) == 3 else 0o644) << 16
                z.writestr(info, m[1] if isinstance(m[1], bytes) else b'')
        return path
    with tarfile.open(path, 'w:gz') as t:
        for m in members:
            info = tarfile.TarInfo(m[0])
            if len(m) == 3 and m[1] == 'symlink':
                info.type, info.linkname = tarfile.SYMTYPE, m[2]
                t.addfile(info)
            elif m[1] == 'dir':
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                data = m[1]
                info.size = len(data)
                info.mode = 0o755 if data[:4] == b'\x7fELF' else 0o644
                t.addfile(info, io.BytesIO(data))
    return path


def app_source_digest():
    """12 hex over the demo app's sources: a changed app is built again, never taken from the cache."""
    app_dir = os.path.dirname(APP_BUILD)
    h = hashlib.sha256()
    for name in sorted(os.listdir(app_dir)):
        if name.endswith(('.go', '.mod', '.sh')) and not name.endswith('_test.go'):
            with open(os.path.join(app_dir, name), 'rb') as f:
                h.update(name.encode() + b'\0' + f.read())
    return h.hexdigest()[:12]


def build_app(version, fault='', goos='linux', goarch='amd64'):
    """Build the demo service once per (version, fault, os, arch); returns the binary path."""
    name = 'hotswap-demo' + ('.exe' if goos == 'windows' else '')
    out = os.path.join(APP_CACHE, app_source_digest(), '%s-%s-%s-%s' % (version, fault or 'ok', goos, goarch), name)
    if not os.path.exists(out):
        subprocess.run([APP_BUILD, version, out, fault, goos, goarch], check=True)
    return out


def host_sh(host, command, check=True):
    """Run a shell command inside a test host (for looking, not for deploying)."""
    proc = subprocess.run(['podman', 'exec', host['container'], 'sh', '-c', command],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError('on %s: %s -> rc=%s %s' % (host['name'], command, proc.returncode, proc.stderr))
    return proc.stdout


def ansible_temp_dirs(host):
    """Ansible's temp dirs in root's remote_tmp on a test host (the fleets connect as root): a deploy leaves none."""
    return set(host_sh(host, 'ls -d ~/.ansible/tmp/ansible-tmp-* 2>/dev/null; true').split())


def served_version(host, port):
    """Ask the service inside the host what version it runs (None when it does not answer)."""
    out = host_sh(host, 'curl -fsS --max-time 3 http://127.0.0.1:%d/healthz || true' % port, check=False)
    try:
        return json.loads(out)['version']
    except (ValueError, KeyError):
        return None


def tree_state(host, base_dir, app):
    """Everything a deploy may change on a host, as text: compare before/after bad input."""
    return host_sh(host, (
        "find %(b)s -printf '%%p %%y %%l %%s\\n' 2>/dev/null | sort; "
        "cat %(b)s/.hotswap/ledger.json 2>/dev/null; "
        "ls -l /etc/systemd/system/%(a)s.* 2>/dev/null; true") % {'b': shlex.quote(base_dir), 'a': app},
        check=False)


def remove_app(hosts, app):
    """Stop and remove an app's units and tree, so the next test can take its port."""
    for host in hosts:
        host_sh(host, (
            'systemctl disable --now {a}.socket {a}.service {a}@a.service {a}@b.service >/dev/null 2>&1; '
            'rm -f /etc/systemd/system/{a}.socket /etc/systemd/system/{a}.service '
            '/etc/systemd/system/{a}@.service /etc/systemd/system/.hotswap-{a}.*; systemctl daemon-reload; '
            'systemctl reset-failed; rm -rf /opt/{a}').format(a=app), check=False)


def serves_release(hosts, app, port, version, artifact):
    """Every host's `current` is this build's release (no files, no environment), its lock free, and it serves
    `version` on `port`: what a test that starts from that release may take as it is instead of deploying it."""
    want = 'releases/' + release_id(version, artifact)
    for host in hosts:
        seen = host_sh(host, 'readlink /opt/{a}/current; test -e /opt/{a}/.hotswap/lock && echo lock held'.format(
            a=app), check=False).split()
        if seen != [want] or served_version(host, port) != version:
            return False
    return True


def http_get(url, timeout=3):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def start_load(hosts, port, rate, keepalive=True, duration=300, path='/'):
    """A load probe in the background against `path` on `port` of every host (its published 127.0.0.1 port)."""
    sys.path.insert(0, os.path.join(REPO, 'tests', 'load'))
    import loadprobe  # pylint: disable=import-outside-toplevel
    targets = ['http://127.0.0.1:%d%s' % (h['ports'][port], path) for h in hosts]
    probe = loadprobe.Probe(targets, rate=rate, duration=duration, keepalive=keepalive, timeout=10)
    probe.start_background()
    return probe


def finish_load(probe, name):
    """Stop the probe, keep its summary in build/test-results/<name>.json, return it."""
    probe.stop()
    summary = probe.summary()
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, '%s.json' % name), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary


def brief(summary):
    """The parts of a probe summary worth showing in an assertion message."""
    return dict((k, summary.get(k)) for k in ('sent', 'failed', 'retried', 'failure_causes', 'versions', 'failures'))
