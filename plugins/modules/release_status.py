#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations

DOCUMENTATION = r'''
module: release_status
short_description: Tell in one read-only module run whether a release is live exactly as a deploy leaves it
version_added: 0.4.0
description:
  - Checks, in this order, stopping at the first difference, everything a deploy of I(release_id)
    would otherwise change. The deploy lock is free. C(current) points at I(release_id), whose
    binary has the digest of I(checksum). The ledger records it as the active release. The unit
    files equal the rendered ones (as M(hotswap.deploy.service_units) would leave them). A running
    main process of the service (either slot for C(reuseport)) runs C(<base_dir>/current/<binary>).
    The units are enabled at boot (and the socket is active for C(systemd_socket)). Nothing is due
    for pruning with I(keep). One probe of I(url) passes, reporting I(expected_version).
  - RV(live) is true when a deploy would change nothing; else RV(reason) names the first
    difference. Never changes anything, so it always reports C(changed=false), in check mode too.
  - A re-run of the same deploy then costs one module run per host instead of eight, and no lock.
extends_documentation_fragment:
  - hotswap.deploy.release
  - hotswap.deploy.release.release_id
  - hotswap.deploy.units
  - hotswap.deploy.version
  - ansible.builtin.action_common_attributes
options:
  binary:
    description: File name of the binary in the release directory.
    type: str
    required: true
  checksum:
    description: Digest the binary must have, as C(sha256:<64 hex digits>).
    type: str
    required: true
  url:
    description:
      - Health URL probed once; it must answer 200 (and report I(expected_version)).
      - A password or credential-like query parameter in it is replaced by C(********) in everything returned or logged.
    type: str
  expected_version:
    description: Version the health endpoint must report.
    type: str
  keep:
    description: Releases a deploy keeps; older ones due for pruning make the release not live.
    type: int
  timeout:
    description: Seconds the health probe may take.
    type: float
    default: 3
  validate_certs:
    description: Validate the TLS certificate of an C(https://) I(url).
    type: bool
    default: true
  content:
    description:
      - What the release holds besides its binary, as M(hotswap.deploy.release_plan) returns it - C(files) (each
        with C(dest), C(digest), C(owner), C(group), C(mode)) and C(environment) (C(names), C(digest)). Every file
        and the environment file must be in the release with that digest, mode and owner. Digests only, never content.
      - For an archive release, the binary's digest is the one the ledger recorded when it was extracted.
    type: dict
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: hotswap.deploy.service_units
  - module: hotswap.deploy.release_info
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Is 1.4.2 live already?
  hotswap.deploy.release_status:
    base_dir: /opt/myapp
    release_id: 1.4.2-3a7bd3e2360a
    binary: myapp
    checksum: "sha256:3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b"
    app: myapp
    strategy: systemd_socket
    service_unit: "{{ lookup('ansible.builtin.template', 'app.service.j2') }}"
    socket_unit: "{{ lookup('ansible.builtin.template', 'app.socket.j2') }}"
    url: http://127.0.0.1:8080/healthz
    expected_version: 1.4.2
    keep: 5
  register: status

- name: Deploy only where it is not
  ansible.builtin.debug:
    msg: "{{ status.reason }}"
  when: not status.live
'''

RETURN = r'''
live:
  description: Whether a deploy of I(release_id) would change nothing on this host.
  returned: success
  type: bool
  sample: false
reason:
  description: The first difference found, or what was checked when RV(live) is true.
  returned: success
  type: str
  sample: current is 1.4.1-9f86d081884c, not 1.4.2-3a7bd3e2360a
'''

from ansible_collections.hotswap.deploy.plugins.module_utils.common import BASE_DIR_SPEC, RELEASE_ID_SPEC, HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.redact import RedactingModule
from ansible_collections.hotswap.deploy.plugins.module_utils.status import release_status
from ansible_collections.hotswap.deploy.plugins.module_utils.units import UNITS_SPEC
from ansible_collections.hotswap.deploy.plugins.module_utils.version import VERSION_SPEC, version_params


def main():
    argument_spec = dict(
        binary=dict(type='str', required=True),
        checksum=dict(type='str', required=True),
        url=dict(type='str'),
        expected_version=dict(type='str'),
        keep=dict(type='int'),
        timeout=dict(type='float', default=3),
        validate_certs=dict(type='bool', default=True),
        content=dict(type='dict'),
    )
    argument_spec.update(BASE_DIR_SPEC)
    argument_spec.update(RELEASE_ID_SPEC)
    argument_spec.update(UNITS_SPEC)
    argument_spec.update(VERSION_SPEC)
    module = RedactingModule(argument_spec=argument_spec, supports_check_mode=True,
                             required_if=[('strategy', 'systemd_socket', ['socket_unit'])])
    p = module.params
    try:
        result = release_status(p['base_dir'], p['release_id'], p['binary'], p['checksum'], p['app'], p['strategy'],
                                p['service_unit'], p['socket_unit'], url=p['url'],
                                expected_version=p['expected_version'], keep=p['keep'], health_timeout=p['timeout'],
                                validate_certs=p['validate_certs'], run_command=module.run_command,
                                version=version_params(p), content=p['content'])
    except HotswapError as e:
        module.fail_json(msg='checking whether release %s is live: %s' % (p['release_id'], e.msg))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
