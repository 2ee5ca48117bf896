# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

from __future__ import annotations


class ModuleDocFragment(object):
    # Where the service reports its version (argument spec: module_utils/version.py VERSION_SPEC).
    DOCUMENTATION = r'''
options:
  version_query:
    description:
      - JMESPath expression that gives the version from a JSON reply, for example
        C(data.build_information.version) (Prometheus' C(/api/v1/status)).
      - Cannot be combined with O(version_regex) or O(version_header).
      - None of the version options given - the version is the top-level C(version) field of a JSON
        reply, or the whole reply when it is short plain text.
    type: str
  version_regex:
    description:
      - Python regular expression searched in the reply (or in the output of O(version_command));
        its first capture group is the version, for example
        C(node_exporter_build_info\{[^}]*version="([^"]+)") on C(/metrics).
      - Must have a capture group. Cannot be combined with O(version_query) or O(version_header).
    type: str
  version_header:
    description:
      - Name of a response header that holds the version, for example C(X-App-Version).
      - Cannot be combined with the other version options.
    type: str
  version_command:
    description:
      - Command run on the host (no shell) whose output holds the version, for example
        C(/opt/myapp/current/myapp --version); stdout is read, or stderr when stdout is empty.
        O(version_regex) or O(version_query) then pick the version out of it; without them the whole
        output is the version.
      - It reads the binary on disk, not the running process; prefer a reply of the service where
        it has one.
    type: str
'''
