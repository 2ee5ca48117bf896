# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Switch nginx to a new config file in one module run (nginx_switch).

The new config is renamed into place, ``nginx -t`` checks it, a rejected config is replaced by
the previous one at once (nothing is reloaded), else nginx reloads gracefully: new workers take
new connections while the old ones finish their requests. An nginx that does not run is started
instead. An empty content removes the config file, under the same test.

Temporary files sit in the config's directory (same filesystem, so a rename is atomic) under
hidden names without ``.conf``: nginx's ``include conf.d/*.conf`` never reads them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError, unlink_quietly

CONFIG_MODE = 0o644
PREVIOUS_PREFIX = '.hotswap-old.'
NEW_PREFIX = '.hotswap-new.'
# Lines of nginx -t's output that say only that it passed or failed, not why.
_VERDICT_LINE = re.compile(r'syntax is ok|test failed')


class NginxRejected(HotswapError):
    """nginx -t rejected the new config; the previous one is back and nothing was reloaded."""


def encode_content(content):
    """The bytes the config file must hold, or None when ``content`` is empty (no file)."""
    if not content:
        return None
    return content.encode('utf-8') if isinstance(content, str) else bytes(content)


def read_config(path):
    """The bytes of the config file, or None when there is none."""
    try:
        with open(path, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise HotswapError('reading the nginx config %s: %s. Give the path of a file (the directory must exist) and '
                           'run with become when it is not readable.' % (path, e))


def as_text(data):
    return '' if data is None else data.decode('utf-8', errors='replace')


def config_diff(path, current, wanted):
    return dict(before=as_text(current), after=as_text(wanted), before_header=path, after_header=path)


def service_is(run_command, systemctl, state, service):
    """Whether ``systemctl is-<state> --quiet <service>`` says so (any other answer is no)."""
    rc, _out, _err = run_command([systemctl, 'is-%s' % state, '--quiet', service])
    return rc == 0


def plan_switch(current, wanted, active, enabled):
    """What the switch does: dict(config_changed, enabled, reloaded, started), each a bool.

    The argument ``enabled`` says whether the service is enabled now (it matters only when a config
    is wanted); the ``enabled`` returned, whether this run enables it.
    A changed config or a newly enabled service is reloaded into a running nginx; an nginx that
    does not run is started when a config is there (and left stopped when there is none).
    """
    config_changed = current != wanted
    enable = wanted is not None and not enabled
    return dict(config_changed=config_changed, enabled=enable,
                reloaded=active and (config_changed or enable),
                started=not active and wanted is not None)


def previous_copy_path(path):
    return os.path.join(os.path.dirname(path), PREVIOUS_PREFIX + os.path.basename(path))


def keep_previous(path):
    """Copy the config (mode, times, owner) beside it so a rejected one is replaced by a rename.

    A copy left by a run that died is replaced. Returns the copy's path, or None without a config.
    """
    copy = previous_copy_path(path)
    unlink_quietly(copy)
    if not os.path.exists(path):
        return None
    shutil.copy2(path, copy)
    st = os.stat(path)
    try:
        os.chown(copy, st.st_uid, st.st_gid)
    except PermissionError:
        pass
    return copy


def write_config(path, data, move=os.replace):
    """Write ``data`` to ``path`` through a hidden temp file in the same directory and a rename; mode 0644."""
    fd, tmp = tempfile.mkstemp(prefix=NEW_PREFIX, dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, CONFIG_MODE)
        move(tmp, path)
        # atomic_move keeps the mode of the file it replaces; the config is always 0644.
        os.chmod(path, CONFIG_MODE)
    finally:
        unlink_quietly(tmp)


def remove_config(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def put_previous_back(path, copy):
    """The config as it was: the kept copy renamed back, or no file when there was none."""
    if copy:
        os.replace(copy, path)
    else:
        remove_config(path)


def nginx_accepts(run_command, nginx):
    """(passed, output) of ``nginx -t`` (it reports on stderr)."""
    rc, out, err = run_command([nginx, '-t'])
    output = '\n'.join(part.strip() for part in (err, out) if part and part.strip())
    return rc == 0, output


def rejection_cause(output):
    """The lines of nginx -t's output that say why, on one line."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and not _VERDICT_LINE.search(line)]
    return ' '.join(lines) or 'no message'


def doing(path, wanted):
    return ('removing the nginx config %s' % path if wanted is None
            else 'switching nginx to the new config %s' % path)


def replace_config(path, wanted, run_command, nginx, move=os.replace):
    """Put ``wanted`` (None: no file) in place and have nginx -t check it.

    On a rejection the previous config is back (or no file, when there was none) and NginxRejected
    says why; nothing is reloaded.
    """
    what = doing(path, wanted)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise HotswapError('%s: the directory %s does not exist. Install nginx first (its package creates it) '
                           'or give a path in an existing directory nginx includes.' % (what, directory))
    if not nginx:
        raise HotswapError('%s: nginx is not installed (no nginx in PATH, /sbin, /usr/sbin or /usr/local/sbin), so '
                           'the config cannot be tested before a reload; nothing was written. Install nginx and rerun.'
                           % what)
    copy = None
    try:
        copy = keep_previous(path)
        if wanted is None:
            remove_config(path)
        else:
            write_config(path, wanted, move)
    except Exception as e:
        unlink_quietly(copy)
        raise HotswapError('%s: %s. The previous config is unchanged. Check permissions (use become) and free space '
                           'in %s, and rerun.' % (what, e, directory))
    passed, output = nginx_accepts(run_command, nginx)
    if not passed:
        put_previous_back(path, copy)
        back = ('the previous %s is back in place' % path if copy
                else '%s was removed again (there was none before)' % path)
        raise NginxRejected('%s: nginx -t rejected the configuration: %s. nginx was not reloaded and %s. '
                            'Fix the configuration nginx names and rerun.' % (what, rejection_cause(output), back),
                            rejected=True, test_output=output)
    unlink_quietly(copy)


def run_systemctl(run_command, systemctl, verb, service, what):
    argv = [systemctl, verb, service] if verb != 'enable' else [systemctl, 'enable', '--quiet', service]
    rc, out, err = run_command(argv)
    if rc != 0:
        raise HotswapError('%s: systemctl %s %s failed (rc %d): %s. The config in place is the one nginx -t '
                           'accepted; see "journalctl -u %s", fix the cause and rerun.'
                           % (what, verb, service, rc, (err or out or '').strip() or 'no message', service))


# nginx_switch's arguments (also a step of blue_green_cutover).
SWITCH_SPEC = dict(
    path=dict(type='path', required=True),
    content=dict(type='str', required=True),
    service=dict(type='str', default='nginx'),
)


def switch(path, content, run_command, check_mode=False, move=os.replace, service='nginx', nginx='nginx',
           systemctl='systemctl'):
    """Bring nginx to ``content`` at ``path`` ('' removes the file); what the nginx_switch module does.

    Returns dict(changed, path, config_changed, enabled, reloaded, started, diff); in check mode
    what would happen, with nothing written. Raises NginxRejected when nginx -t rejects the result
    (the previous config is back, nothing reloaded), HotswapError on any other failure.
    """
    if not os.path.isabs(path):
        raise HotswapError('switching nginx to %s: the path is relative. Give the absolute path of the config file, '
                           'for example /etc/nginx/conf.d/myapp.conf.' % path)
    wanted = encode_content(content)
    current = read_config(path)
    active = service_is(run_command, systemctl, 'active', service)
    # Enabling matters only when a config stays.
    enabled = service_is(run_command, systemctl, 'enabled', service) if wanted is not None else True
    plan = plan_switch(current, wanted, active, enabled)
    result = dict(plan, changed=any(plan.values()), path=path, diff=config_diff(path, current, wanted))
    if check_mode:
        return result
    what = doing(path, wanted)
    if plan['config_changed']:
        replace_config(path, wanted, run_command, nginx, move)
    if plan['enabled']:
        run_systemctl(run_command, systemctl, 'enable', service, what)
    if plan['reloaded']:
        # Graceful: new workers take new connections, old ones finish their requests and exit.
        run_systemctl(run_command, systemctl, 'reload', service, what)
    elif plan['started']:
        run_systemctl(run_command, systemctl, 'start', service, what)
    return result
