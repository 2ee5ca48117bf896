#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: release_cutover
short_description: Stage a pushed release, install the units, switch current and restart, in one module run
version_added: 0.7.0
description:
  - Runs, in one process on the host, what M(hotswap.deploy.binary_upload), M(hotswap.deploy.service_units),
    M(hotswap.deploy.release_activate) and M(hotswap.deploy.graceful_restart) do one after the other, with the
    same arguments, code and results, and stops at the first step that fails (RV(failed_step)).
    M(hotswap.deploy.host_deploy) runs it after the lock run and the transfer of the file; each remote module
    run costs a Python start on the host and a round trip, so a deploy takes three module runs instead of six.
  - Every step's arguments are checked before the first step runs, so bad input changes nothing.
  - The restart follows the units - when O(units) changed a unit file, systemd reloads its units and the
    service is restarted whatever binary it runs (the O(restart) keys C(daemon_reload) and C(executable)
    are overridden); otherwise the restart step is exactly O(restart).
  - Nothing is switched back here - on a failed restart C(current) already names the new release, and the
    caller decides (M(hotswap.deploy.host_deploy) switches back to the C(previous_release) of RV(activate)).
  - Runs under the deploy lock its caller holds (the C(lock_owner) key of O(upload) and O(activate)); it takes
    no lock and releases none, so a controller killed during the run leaves the lock held.
options:
  upload:
    description:
      - The arguments of M(hotswap.deploy.binary_upload) (C(src) with C(move_src), or C(url); C(checksum),
        C(base_dir), C(release_id), C(name), C(version), C(files), C(environment), C(lock_owner), ...). Its
        C(no_log) arguments stay out of every output here too.
      - C(src) is a file on the host (the copy its caller pushed); the action plugin of M(hotswap.deploy.binary_upload)
        is what finds and checks a file on the controller.
      - Leave it out when the release is staged already.
    type: dict
  units:
    description:
      - The arguments of M(hotswap.deploy.service_units) with O(hotswap.deploy.service_units#module:state=present)
        (C(app), C(strategy), C(service_unit), C(socket_unit), C(adopt), C(base_dir)).
      - Leave it out when the units are in place already.
    type: dict
  activate:
    description:
      - The arguments of M(hotswap.deploy.release_activate) but C(take_lock) (C(base_dir), C(release_id),
        C(previous_state), C(activated_by), C(keep), C(lock_owner)).
      - Leave it out to install the units only.
    type: dict
  restart:
    description:
      - The arguments of M(hotswap.deploy.graceful_restart) (C(service), C(strategy), C(url),
        C(expected_version), C(executable), ...). Needs O(activate).
      - Leave it out to install the units and switch only.
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Each step runs in check mode. A release that is not staged yet cannot be activated, even in check mode.
  diff_mode:
    support: full
    details: The units' diff and the switch of C(current), as a list.
  platform:
    platforms: posix
seealso:
  - module: hotswap.deploy.binary_upload
  - module: hotswap.deploy.service_units
  - module: hotswap.deploy.release_activate
  - module: hotswap.deploy.graceful_restart
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Units, switch and restart of a staged release, under the lock the deploy holds
  hotswap.deploy.release_cutover:
    units:
      app: myapp
      strategy: systemd_socket
      service_unit: "{{ lookup('ansible.builtin.template', 'app.service.j2') }}"
      socket_unit: "{{ lookup('ansible.builtin.template', 'app.socket.j2') }}"
    activate:
      base_dir: /opt/myapp
      release_id: 1.4.0-3f2a9c1d0b7e
      keep: 5
      lock_owner: myapp deploy 1.4.0-3f2a9c1d0b7e (ops@ctl)
    restart:
      service: myapp
      strategy: systemd_socket
      url: http://127.0.0.1:8080/healthz
      expected_version: 1.4.0
      executable: /opt/myapp/current/myapp
  register: cutover

- name: The pushed copy into its release, then the switch (units and restart as above)
  hotswap.deploy.release_cutover:
    upload:
      src: /home/deploy/.ansible/tmp/ansible-tmp-1796548800.1-42/hotswap-upload-myapp
      move_src: true
      checksum: sha256:3f2a9c1d0b7e4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5
      base_dir: /opt/myapp
      release_id: 1.4.0-3f2a9c1d0b7e
      name: myapp
      version: 1.4.0
      lock_owner: myapp deploy 1.4.0-3f2a9c1d0b7e (ops@ctl)
    activate:
      base_dir: /opt/myapp
      release_id: 1.4.0-3f2a9c1d0b7e
      lock_owner: myapp deploy 1.4.0-3f2a9c1d0b7e (ops@ctl)
'''

RETURN = r'''
failed_step:
  description: The step that failed - V(upload), V(units), V(activate) or V(restart); the steps before it ran.
  returned: failure
  type: str
  sample: restart
stage:
  description: With RV(failed_step=restart), the restart's own stage (see M(hotswap.deploy.graceful_restart)).
  returned: failure of the restart step
  type: str
  sample: ready
upload:
  description: What M(hotswap.deploy.binary_upload) returns (C(staged), C(transferred), C(path), C(sha256), ...); on
    its failure its failure keys, C(msg) and C(failed) among them.
  returned: when O(upload) was given and ran
  type: dict
  sample: {"changed": true, "transferred": true, "release_id": "1.4.0-3f2a9c1d0b7e"}
units:
  description: What M(hotswap.deploy.service_units) returns (C(units_changed), C(installed), C(adopted), ...).
  returned: when O(units) was given and ran
  type: dict
  sample: {"changed": false, "units_changed": false, "adopted": []}
activate:
  description: What M(hotswap.deploy.release_activate) returns (C(switched), C(previous_release),
    C(current_release), C(pruned), ...).
  returned: when O(activate) was given and ran
  type: dict
  sample: {"changed": true, "switched": true, "previous_release": "1.3.0-aa11", "current_release": "1.4.0-3f2a"}
restart:
  description: What M(hotswap.deploy.graceful_restart) returns; on its failure its failure keys, C(msg) and
    C(failed) among them.
  returned: when O(restart) was given and ran
  type: dict
  sample: {"changed": true, "new_pid": 4242, "timings": {"ready": 0.4}}
restart_started:
  description: When the restart step started, in seconds since the epoch on the host's clock.
  returned: when O(restart) ran
  type: float
  sample: 1796548800.12
restart_ended:
  description: When the restart step ended, in seconds since the epoch on the host's clock.
  returned: when O(restart) ran
  type: float
  sample: 1796548801.02
'''

from ansible_collections.hotswap.deploy.plugins.module_utils.artifact import UPLOAD_SPEC
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.cutover import STEPS, StepFailed, check_steps, run_cutover
from ansible_collections.hotswap.deploy.plugins.module_utils.redact import RedactingModule


def main():
    module = RedactingModule(argument_spec=dict((step, dict(type='dict')) for step in STEPS),
                             secret_specs=dict(upload=UPLOAD_SPEC), supports_check_mode=True)
    try:
        steps = check_steps(module.params)
    except HotswapError as e:
        module.fail_json(msg=e.msg)
    try:
        result = run_cutover(steps, module.run_command, check_mode=module.check_mode, move=module.atomic_move,
                             module=module)
    except StepFailed as e:
        module.fail_json(msg=e.msg, failed_step=e.step, **e.details)
    diff = result.pop('diff')
    if module._diff and diff:  # pylint: disable=protected-access
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
