#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: graceful_restart
short_description: Put a systemd service on its new binary without refusing connections, and verify it
version_added: 0.2.0
description:
  - Restarts a systemd service with one of five strategies, then verifies a new live main process, readiness,
    the expected version and that the old process is gone. See C(docs/app-contract.md) for what the app and
    the units need for each strategy.
  - V(systemd_socket) - C(<service>.socket) holds the listener and only C(<service>.service) is restarted, so
    connections wait in the socket's backlog instead of being refused. The socket is never restarted. When
    the socket is not active yet it is started first; if the service held the port itself, that costs one
    plain restart (RV(transition)).
  - V(signal_reexec) - sends O(signal) to the PID in O(pid_file). The app starts the binary that C(current)
    names now, hands its listener to it, the child writes O(pid_file) once ready and the old process drains
    and exits. systemd must follow the new main PID (C(NotifyAccess=all) and C(MAINPID=)); this is checked.
  - V(notify_reload) - C(systemctl reload) of a C(Type=notify-reload) unit, which waits until the app reports
    C(READY=1) again. Needs systemd 253 or newer; an older host is refused before anything changes.
  - V(reuseport) - the template unit C(<service>@.service) runs as two slots, C(<service>@a) and
    C(<service>@b), on the same port with C(SO_REUSEPORT). The idle slot is started and verified while the
    old one still serves, then the old one is stopped and drains. Needs C(net.ipv4.tcp_migrate_req=1) so
    connections queued on the old socket move to the new one.
  - V(restart) - plain C(systemctl restart), the baseline. It refuses connections while no process listens.
  - Stages of every restart, named in a failure (RV(stage)) - V(check) (inputs and host; nothing changed),
    V(trigger), V(ready) (a new live main process, identified by PID and start time so a reused PID is not
    mistaken for it, and O(url) answering), V(version) (O(url) reports O(expected_version)) and V(drain)
    (the old process has exited within O(drain_timeout)).
  - On a failure the old process keeps serving where the strategy allows it - V(signal_reexec) and
    V(notify_reload) before the new process is ready, V(reuseport) always (the new slot is stopped). With
    V(systemd_socket) and V(restart) the old process is already gone; switch C(current) back and restart again
    (C(playbooks/deploy.yml) does that).
  - With O(executable) the module is idempotent - it restarts only when the main process runs another file
    than the one O(executable) resolves to now.
extends_documentation_fragment:
  - hotswap.deploy.version
  - ansible.builtin.action_common_attributes
options:
  service:
    description:
      - Name of the service without C(.service), for example C(myapp). With V(reuseport) the name of the
        template, C(<service>@.service).
    type: str
    required: true
  strategy:
    description:
      - How to put the new binary in place. See the description.
    type: str
    choices: [systemd_socket, signal_reexec, notify_reload, reuseport, restart]
    default: systemd_socket
  signal:
    description:
      - Signal sent to the main process with V(signal_reexec), by name (C(SIGHUP), C(HUP)) or number.
    type: str
    default: SIGHUP
  pid_file:
    description:
      - PID file the app writes atomically once ready. Required with V(signal_reexec); the process it names
        must be alive and part of the service, or nothing is signalled.
    type: path
  executable:
    description:
      - The binary the service should run, for example C(/opt/myapp/current/myapp).
      - When the main process already runs the file this path resolves to, nothing is restarted and
        C(changed=false) is reported. Without it the service is always restarted.
    type: path
  url:
    description:
      - Readiness URL on the host, for example C(http://127.0.0.1:8080/healthz). It must answer 2xx after the
        switch within O(ready_timeout). Read before the switch too, for RV(old_version).
      - Without it, readiness is what systemd says (unit active with a new main PID).
      - Redirects are followed as by M(hotswap.deploy.health_check). A password or credential-like query parameter
        in it is replaced by C(********) in everything returned or logged.
    type: str
  expected_version:
    description:
      - Version the new process must report at O(url) (the C(version) field of a JSON body, or the body).
      - With V(reuseport) some answers still come from the old slot; one answer with this version passes.
    type: str
  validate_certs:
    description:
      - Verify the TLS certificate of an C(https://) O(url).
    type: bool
    default: true
  health_timeout:
    description:
      - Seconds one readiness request may take.
    type: float
    default: 3
  ready_timeout:
    description:
      - Seconds the new process has, from the trigger, to be running, ready and answering. More than 0.
    type: float
    default: 60
  drain_timeout:
    description:
      - Seconds the old process has to finish in-flight requests and exit after the switch. More than 0.
      - Keep C(TimeoutStopSec=) of the unit at least this long.
    type: float
    default: 60
  daemon_reload:
    description:
      - Run C(systemctl daemon-reload) first, after the unit files changed.
    type: bool
    default: false
  config_reload:
    description:
      - "For an app that re-reads its config on a signal or a command - C({signal: SIGHUP}) (or C(SIGUSR1),
        C(SIGUSR2)), sent to the main process, or C({command: ...}), run on the host."
      - Used instead of a restart only when the service goes from O(previous_release) to O(release_id) and the
        two differ in release files only - same binary, same environment, unchanged units (O(daemon_reload=false));
        otherwise the service is restarted with O(strategy) and RV(reload_skipped) says why. An environment change
        always needs a restart.
      - After the reload every probe must pass within O(ready_timeout) - O(url) (with O(expected_version)) and
        O(config_probe). The reload is recorded in C(<base_dir>/.hotswap/reloaded.json), so the process that
        reloaded counts as running C(current).
    type: dict
  config_probe:
    description:
      - After a config reload, C(url) must answer JSON whose JMESPath C(query) gives C(expected) - the value the
        new config makes the app show - within C(timeout) seconds (default O(ready_timeout)).
    type: dict
  base_dir:
    description: The deploy root, for O(config_reload) (the ledger says what differs between the releases).
    type: path
  release_id:
    description: The release C(current) now points at, for O(config_reload).
    type: str
  previous_release:
    description: The release the service ran before the switch, for O(config_reload).
    type: str
  enabled:
    description:
      - Enable the units that serve after the restart (C(systemctl enable)) so they start at boot - the socket
        and the service with V(systemd_socket), the serving slot with V(reuseport) (the other slot is disabled).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: Validates the inputs and the host (units, PID file, systemd version) and reports whether a restart
      would happen, without triggering it.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it as root (C(become)) or as the user that owns the service; it signals processes and reads C(/proc).
seealso:
  - module: hotswap.deploy.health_check
  - module: hotswap.deploy.release_activate
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Restart behind the socket unit, verify version 2.0.0
  hotswap.deploy.graceful_restart:
    service: myapp
    strategy: systemd_socket
    executable: /opt/myapp/current/myapp
    url: http://127.0.0.1:8080/healthz
    expected_version: 2.0.0

- name: Upgrade in place with SIGHUP (tableflip style)
  hotswap.deploy.graceful_restart:
    service: myapp
    strategy: signal_reexec
    pid_file: /run/myapp/myapp.pid
    url: http://127.0.0.1:8080/healthz
    expected_version: 2.0.0
    drain_timeout: 120

- name: Second instance on the same port, then retire the old one
  hotswap.deploy.graceful_restart:
    service: myapp
    strategy: reuseport
    url: http://127.0.0.1:8080/healthz
    expected_version: 2.0.0
'''

RETURN = r'''
stage:
  description: V(done) after a verified restart (or when none was needed); in a failure the stage that failed -
    V(check), V(trigger), V(ready), V(version) or V(drain).
  returned: always
  type: str
  sample: done
strategy:
  description: The strategy used.
  returned: always
  type: str
  sample: systemd_socket
service:
  description: The service name given.
  returned: always
  type: str
  sample: myapp
unit:
  description: The unit or units restarted (a list for V(systemd_socket) and V(reuseport)).
  returned: always
  type: raw
  sample: [myapp.socket, myapp.service]
old_pid:
  description: Main PID before the restart, or null when the service was not running.
  returned: always
  type: int
  sample: 4242
old_start_time:
  description: Start time of the old main process (clock ticks since boot, from C(/proc/<pid>/stat)).
  returned: when the service was running
  type: int
  sample: 1234567
new_pid:
  description: Main PID after the restart.
  returned: always
  type: int
  sample: 4313
old_version:
  description: Version O(url) reported before the restart.
  returned: always
  type: str
  sample: 1.0.0
new_version:
  description: Version O(url) reported after the restart.
  returned: always
  type: str
  sample: 2.0.0
timings:
  description: Seconds per stage - V(trigger) (the trigger command), V(ready) (trigger to ready), V(version)
    and V(drain).
  returned: always
  type: dict
  sample: {trigger: 0.02, ready: 0.41, version: 0.01, drain: 0.0}
elapsed:
  description: Seconds the whole module took.
  returned: always
  type: float
  sample: 0.52
transition:
  description: Whether the units had to be brought into shape first (socket started, a stray second slot
    stopped, a first start) - such a step is not free of gaps.
  returned: always
  type: bool
  sample: false
no_restart_reason:
  description: Why nothing was restarted (the main process already runs O(executable)).
  returned: when nothing was restarted
  type: str
  sample: the main process already runs /opt/myapp/current/myapp
old_unit:
  description: With V(reuseport), the slot that served before.
  returned: with reuseport
  type: str
  sample: myapp@a.service
new_unit:
  description: With V(reuseport), the slot that serves now.
  returned: with reuseport
  type: str
  sample: myapp@b.service
systemd_main_pid:
  description: With V(signal_reexec), the main PID systemd tracks after the hand-over (equal to RV(new_pid)).
  returned: with signal_reexec
  type: int
  sample: 4313
enabled:
  description: Units enabled at boot by this run (or that would be, in check mode).
  returned: when O(enabled) is true
  type: list
  elements: str
  sample: [myapp.socket]
reloaded:
  description: Whether the config was reloaded in the running process instead of a restart.
  returned: with O(config_reload), when only release files changed
  type: bool
  sample: true
reload_skipped:
  description: Why a restart was done although O(config_reload) was given.
  returned: with O(config_reload), when the service was restarted
  type: str
  sample: the environment differs (environment changes always need a restart)
systemd_version:
  description: With V(notify_reload), the systemd version of the host.
  returned: with notify_reload
  type: int
  sample: 254
'''

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.graceful import (
    RESTART_REQUIRED_IF, RESTART_SPEC, failure_details, run_restart,
)
from ansible_collections.hotswap.deploy.plugins.module_utils.redact import RedactingModule
from ansible_collections.hotswap.deploy.plugins.module_utils.restart import RestartFailed

ARGUMENT_SPEC = RESTART_SPEC


def main():
    module = RedactingModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, required_if=RESTART_REQUIRED_IF)
    try:
        result = run_restart(module.params, module.run_command, check_mode=module.check_mode)
    except (RestartFailed, HotswapError) as exc:
        msg, details = failure_details(exc)
        module.fail_json(msg=msg, **details)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
