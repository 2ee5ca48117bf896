#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)

# Documentation only: the module is win_binary_swap.ps1 (logic in module_utils/WinBinarySwap.psm1),
# the controller side that pushes src is plugins/action/win_binary_swap.py.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: win_binary_swap
short_description: Replace the exe of a Windows service with a verified new binary, put the old one back on failure, roll back
version_added: 0.1.0
description:
  - Windows refuses to overwrite or delete the exe of a running process but allows renaming it within the
    same volume. This module uses that to swap the binary of a Windows service with a short stop/start and
    an automatic restore.
  - Validates everything first and changes nothing on bad input - the service exists (C(Get-Service)) and is
    not disabled, O(keep) and the timeouts are in range, O(url) and O(health_url) are http/https, O(checksum)
    is C(sha256:<64 hex>), O(release_id) follows the release id rules, O(staging_dir) exists and is on the
    volume of O(path).
  - Stages the new binary as C(<staging_dir>\<exe name>.new) - copied from O(src) or downloaded from O(url) -
    and checks its sha256 (C(Get-FileHash)) against O(checksum) and its PE header (C(MZ), C(e_lfanew),
    C(PE\0\0), COFF machine) against the architecture of the Windows OS. The machine must match the OS
    architecture exactly; an x86 exe on x64 Windows and an x86 or x64 exe on ARM64 Windows are refused (no
    reliance on WOW64 or emulation). A DLL is refused. On a failure here the staged copy is removed and
    nothing else was touched.
  - When the live exe at O(path) already has the sha256 of O(checksum) nothing is staged, stopped or renamed
    (RV(swapped=false)); only the ledger is corrected if it does not record O(release_id) as the active
    release (then the task reports C(changed)).
  - The swap - stop the service (wait up to O(stop_timeout) seconds for C(Stopped)), rename O(path) to
    C(<path>.old-<id of the release it holds>), rename the staged file to O(path), start the service (wait up
    to O(start_timeout) seconds for C(Running)), and probe O(health_url) if given.
  - On any failure after the live exe was renamed, the module stops the service, renames the new binary to
    C(<path>.failed-<release_id>), renames the old copy back to O(path), starts the service again and fails
    with RV(failed_step) and a message that says whether the old binary was restored and whether the
    service started with it.
  - Old and failed copies are named after the release they hold (a C(~2), C(~3) ... suffix when the name is
    taken). A live exe that is not in the ledger (installed by hand) is kept as
    C(<path>.old-unknown-<first 12 hex of its sha256>) and never pruned.
  - Records the releases in C(<directory of path>\.hotswap\ledger.json), in the same format as the Linux
    modules (states C(staged), C(active), C(retired), C(failed), and an activation history). After a
    successful swap, copies beyond O(keep) are deleted - failed copies first, then the oldest by the ledger's
    C(staged_at), never by file times - and ledger entries of releases that are neither live nor kept as a
    copy are dropped.
  - Holds the lock C(<directory of path>\.hotswap\lock), created exclusively, while it changes anything; a
    lock held by another run makes the task fail naming the holder.
  - Verify-only mode (neither O(src) nor O(url)) - succeeds when the live exe already has the sha256, and
    fails with RV(reason=not_staged) and RV(host_arch) otherwise, changing nothing. The action plugin uses
    this as a probe before it pushes O(src).
  - O(operation=rollback) puts back the copy C(<path>.old-<release_id>) an earlier swap kept - the same checks,
    stop, renames, start, health probe and restore as a swap, with the kept copy renamed into place instead of a
    staged C(<exe>.new). The sha256 comes from the ledger entry of O(release_id); the copy must have it and fit
    the OS architecture, or nothing is changed. The live exe is kept as C(<path>.old-<its release id>) and
    gets O(previous_state) in the ledger. If the restarted service fails, the target is renamed to
    C(<path>.failed-<release_id>) and marked C(failed), and the exe that was live is renamed back and started.
    Nothing is pruned.
  - O(operation=query) only reads - the release the live exe holds (by sha256), the previous good release, every
    release in the ledger with its kept copy, the lock holder and problems that need a human. The
    M(hotswap.deploy.release_info) of Windows hosts; the rollback role uses it to plan.
options:
  operation:
    description:
      - V(swap) - install the binary from O(src) or O(url) (or, with neither, only verify that it is live).
        Needs O(checksum), O(service) and O(release_id).
      - V(rollback) - make O(release_id) live again from the copy C(<path>.old-<release_id>) (or
        C(<path>.failed-<release_id>)) kept beside O(path). Needs O(service) and O(release_id); O(checksum) is
        optional (the ledger's sha256 is used; a given one must equal it). O(src), O(url) are refused and O(keep)
        is not used.
      - V(query) - read-only, see RV(releases). O(service), when given, is checked to exist and not to be
        disabled (reported in RV(problems)). O(src), O(url) and O(checksum) are refused.
    type: str
    choices: [swap, rollback, query]
    default: swap
  release_id:
    required: false
  checksum:
    required: false
  previous_state:
    description:
      - Ledger state given to the release that was live before a successful swap or rollback.
      - V(failed) when rolling back from a release that misbehaves, so that it is never chosen as previous good
        release again (as M(hotswap.deploy.release_activate) does on Linux).
    type: str
    choices: [retired, failed]
    default: retired
  activated_by:
    description:
      - Who or what activated the release, stored in the ledger (C(activated_by) and the history entry's C(by)).
    type: str
    default: ansible
  path:
    description:
      - Absolute path of the live exe the service runs, for example C(C:\hotswap\myapp\myapp.exe).
      - Its directory must exist. The ledger and the lock live in C(.hotswap\) next to it, and the old and
        failed copies are kept beside it.
      - If O(path) does not exist yet, the new binary is simply renamed into place (nothing to restore on
        failure). If it does not exist but old copies do, an earlier swap was interrupted and the module
        refuses to guess which binary is right.
    type: path
    required: true
  src:
    description:
      - The new binary.
      - With O(remote_src=false) a path on the controller. The action plugin finds it like
        M(ansible.windows.win_copy) does (a relative path is searched in the role or playbook C(files/)
        directory), checks its sha256 and PE header on the controller, asks the host whether it is live
        already and what architecture the host has, pushes it over WinRM into the remote temporary
        directory and runs the module with O(src) set to that copy and O(remote_src=true).
      - With O(remote_src=true) a path on the Windows host. It is copied, not moved.
      - Mutually exclusive with O(url).
    type: str
  remote_src:
    description:
      - Whether O(src) is a path on the Windows host (V(true)) or on the controller (V(false)).
    type: bool
    default: false
  service:
    description:
      - Name of the Windows service that runs O(path) (the service name, not its display name).
      - It must exist and must not be disabled. A warning is returned when its image path is not O(path).
      - Required with O(operation=swap) and O(operation=rollback).
    type: str
  staging_dir:
    description:
      - Directory where C(<exe name>.new) is staged.
      - Default is the directory of O(path).
      - Must exist and must be on the same volume as O(path), because the staged file is renamed into place
        and Windows renames files only within a volume; otherwise the task fails and nothing is changed.
    type: path
  keep:
    description:
      - How many old and failed copies (C(<path>.old-*), C(<path>.failed-*)) to keep after a successful swap.
      - Must be at least 1. The copy this run made (the one to go back to) is always kept.
      - Copies of releases the ledger does not know (for example C(.old-unknown-*)) are never deleted and do
        not count.
    type: int
    default: 3
  stop_timeout:
    description:
      - Seconds to wait for the service to reach C(Stopped).
    type: int
    default: 60
  start_timeout:
    description:
      - Seconds to wait for the service to reach C(Running), after the swap and after a restore.
    type: int
    default: 60
  health_url:
    description:
      - C(http://) or C(https://) URL the host probes with C(Invoke-WebRequest -UseBasicParsing) after the
        service is running, typically a local one such as C(http://127.0.0.1:8080/healthz).
      - An attempt passes on a 2xx answer (and, with O(expected_version), the right version). Each attempt
        times out after 10 seconds.
      - Its TLS certificate is validated unless O(validate_certs=false).
      - Without it, a service that reaches C(Running) counts as healthy (RV(health=skipped)).
    type: str
  expected_version:
    description:
      - Version the health answer must report, compared exactly with the C(version) field of a JSON object
        body, or with the whole body (whitespace trimmed) when the body is not a JSON object.
      - Needs O(health_url).
    type: str
  health_retries:
    description:
      - How many times to retry the health probe after the first attempt (so at most O(health_retries) + 1
        attempts) until one passes.
    type: int
    default: 20
  health_interval:
    description:
      - Seconds to wait between two health attempts.
    type: int
    default: 1
extends_documentation_fragment:
  - hotswap.deploy.release.release_id
  - hotswap.deploy.release.artifact
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details:
      - Validates the options, the service, the volumes and (for a host-side O(src), or the kept copy of a
        rollback) the binary, and that no other run holds the lock, and reports RV(would_swap) and the RV(steps)
        that would run; nothing is staged, stopped, renamed or written.
      - O(operation=query) never changes anything, in check mode or not.
      - O(url) is not contacted in check mode.
  diff_mode:
    support: none
  platform:
    platforms: windows
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
notes:
  - This module has NOT been run on a real Windows host yet. No Windows host and no PowerShell runtime were
    available while it was written; its PowerShell is only checked to parse (tree-sitter-powershell), and its
    logic is covered by Pester tests that have not been run either. See C(docs/windows.md) of the collection
    before relying on it.
  - The service is down between the stop and the start (a few seconds for a typical Go service); Windows
    services have no equivalent of a systemd socket handing over the listening socket. Use several hosts
    behind a load balancer (or the canary role's batches) for zero downtime.
  - The service is started after the swap, and after a restore, even if it was stopped before.
  - Dependent services that were running are stopped with the service and started again after it.
  - Without O(health_url), a service that reaches C(Running) and crashes a moment later is not noticed.
  - Pull mode (O(url)) downloads with C(Invoke-WebRequest) and is recommended for large binaries - pushing
    over WinRM is slow. There is no overall download time limit; Windows PowerShell 5.1 gives up when no
    response headers arrive within 100 seconds or no data within 300 seconds (the .NET defaults).
  - The ledger and lock use the formats of the Linux modules, but the Linux modules (release_info,
    release_prune, deploy_lock) do not manage Windows hosts.
seealso:
  - module: hotswap.deploy.binary_upload
  - module: ansible.windows.win_service
  - module: ansible.windows.win_get_url
author:
  - hotswap.deploy developers (@hotswap-deploy)
'''

EXAMPLES = r'''
- name: Push the new exe from the controller and swap it under the service
  hotswap.deploy.win_binary_swap:
    path: C:\hotswap\myapp\myapp.exe
    src: dist/myapp-windows-amd64.exe
    checksum: "sha256:{{ myapp_sha256 }}"
    service: myapp
    release_id: "{{ myapp_version }}-{{ myapp_sha256[:12] }}"
    version: "{{ myapp_version }}"
    health_url: http://127.0.0.1:8080/healthz
    expected_version: "{{ myapp_version }}"

- name: Let the host download it (recommended for large binaries)
  hotswap.deploy.win_binary_swap:
    path: C:\hotswap\myapp\myapp.exe
    url: "https://artifacts.example.com/myapp/{{ myapp_version }}/myapp-windows-amd64.exe"
    checksum: "sha256:{{ myapp_sha256 }}"
    service: myapp
    release_id: "{{ myapp_version }}-{{ myapp_sha256[:12] }}"
    version: "{{ myapp_version }}"
    keep: 2
  register: swap

- name: Tell what happened
  ansible.builtin.debug:
    msg: "{{ swap.previous_release }} -> {{ swap.current_release }}, old exe kept at {{ swap.backup_path }}"
  when: swap.swapped

- name: Read what the host has (release_info for Windows)
  hotswap.deploy.win_binary_swap:
    path: C:\hotswap\myapp\myapp.exe
    service: myapp
    operation: query
  register: releases

- name: Go back to the previous good release, from the copy the last swap kept
  hotswap.deploy.win_binary_swap:
    path: C:\hotswap\myapp\myapp.exe
    service: myapp
    operation: rollback
    release_id: "{{ releases.previous_good }}"
    previous_state: failed
    health_url: http://127.0.0.1:8080/healthz
    expected_version: >-
      {{ (releases.releases | selectattr('release_id', 'equalto', releases.previous_good) | first).version }}
  when: releases.previous_good is not none

- name: Only check that the release is live already
  hotswap.deploy.win_binary_swap:
    path: C:\hotswap\myapp\myapp.exe
    checksum: "sha256:{{ myapp_sha256 }}"
    service: myapp
    release_id: "{{ release_id }}"
  register: live_check
  failed_when: live_check.failed and live_check.reason | default('') != 'not_staged'
'''

RETURN = r'''
swapped:
  description: Whether the binary was swapped (the new one is live and the service running and healthy).
  returned: unless O(operation=query)
  type: bool
  sample: true
previous_release:
  description:
    - Ledger id of the release that was live before the task; null when the live exe was not in the ledger
      or did not exist.
    - Equal to RV(current_release) when the release was live already.
  returned: unless O(operation=query)
  type: str
  sample: 1.4.1-9f86d081884c
current_release:
  description:
    - Release live at O(path) after the task (in check mode - that would be live).
    - After a failed swap whose restore worked, the previous release again.
  returned: unless O(operation=query)
  type: str
  sample: 1.4.2-3a7bd3e2360a
release_id:
  description: The release id of the task.
  returned: unless O(operation=query)
  type: str
  sample: 1.4.2-3a7bd3e2360a
sha256:
  description:
    - The sha256 from O(checksum), lower-case hex.
    - With O(operation=rollback), the one the ledger records for O(release_id).
  returned: when the checksum option is valid, or with O(operation=rollback) when the ledger has the release
  type: str
  sample: 3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b
backup_path:
  description:
    - Where the previous exe was (or in check mode would be) kept, C(<path>.old-<release id>).
    - Null when nothing was swapped, when O(path) did not exist, and after a restore (the copy is back at
      O(path)).
  returned: unless O(operation=query)
  type: str
  sample: C:\hotswap\myapp\myapp.exe.old-1.4.1-9f86d081884c
staged_path:
  description:
    - Where the new binary was (or in check mode would be) staged, C(<staging_dir>\<exe name>.new).
    - With O(operation=rollback), the kept copy that is (or would be) renamed into place.
  returned: unless O(operation=query)
  type: str
  sample: C:\hotswap\myapp\myapp.exe.new
health:
  description:
    - Verdict of the health probe - V(pass), V(fail) (the service answered wrongly), V(inconclusive)
      (nothing could be measured - connection refused, timeout, TLS error), or V(skipped) (no O(health_url),
      or the swap did not get that far).
    - Anything but V(pass) after a started swap makes the module restore the old binary.
  returned: unless O(operation=query)
  type: str
  sample: pass
host_arch:
  description:
    - Architecture of the Windows OS, named like the PE machines of the collection's other modules -
      V(x86_64), V(aarch64), V(i386), V(arm).
  returned: when the checks got that far (always with RV(reason=not_staged))
  type: str
  sample: x86_64
failed_step:
  description:
    - The step that failed - V(stage) (copy or download), V(verify) (sha256 or PE header), V(stop),
      V(rename), V(start) or V(health).
    - Not set for failures of the input checks (nothing was changed).
  returned: on failure of a step
  type: str
  sample: health
restored:
  description: Whether the old binary was renamed back to O(path) after a failure after the first rename.
  returned: on failure after the live exe was renamed
  type: bool
  sample: true
failed_path:
  description: Where the new binary was moved after a failure, C(<path>.failed-<release_id>).
  returned: on failure after the live exe was renamed
  type: str
  sample: C:\hotswap\myapp\myapp.exe.failed-1.4.2-3a7bd3e2360a
current:
  description: Release the live exe holds (found in the ledger by its sha256); null when there is none or it is not in the ledger.
  returned: with O(operation=query)
  type: str
  sample: 1.4.2-3a7bd3e2360a
previous_good:
  description:
    - Release to roll back to from RV(current), or null - the newest activation in the ledger's history whose release
      is not the current one, is not C(failed) and has a kept copy (the Linux rule, with the copy for the release
      directory).
  returned: with O(operation=query)
  type: str
  sample: 1.4.1-9f86d081884c
releases:
  description:
    - Releases in the ledger, oldest C(staged_at) first, then kept copies whose release the ledger does not know
      (state C(unknown)).
  returned: with O(operation=query)
  type: list
  elements: dict
  contains:
    release_id:
      description: Release id.
      type: str
    version:
      description: Version recorded when the release was staged; null if unknown.
      type: str
    sha256:
      description: sha256 of the exe recorded when the release was staged; null if unknown.
      type: str
    binary:
      description: File name of the exe; null if unknown.
      type: str
    state:
      description: Ledger state, or C(unknown) for a copy that is not in the ledger.
      type: str
      choices: [staged, active, retired, failed, unknown]
    staged_at:
      description: When the release was recorded as staged (UTC ISO8601, C(Z) suffix).
      type: str
    activated_at:
      description: When it was last activated.
      type: str
    activated_by:
      description: Who or what last activated it.
      type: str
    retired_at:
      description: When it was last switched away from normally.
      type: str
    failed_at:
      description: When it was last marked failed.
      type: str
    path:
      description: O(path) for the live release, else the kept copy O(operation=rollback) would use; null when none.
      type: str
    present:
      description: Whether the release is live or has a kept copy (whether O(operation=rollback) can go to it).
      type: bool
  sample:
    - release_id: 1.4.1-9f86d081884c
      version: 1.4.1
      sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      binary: myapp.exe
      state: retired
      staged_at: "2024-05-01T12:00:00Z"
      activated_at: "2024-05-01T12:01:10Z"
      activated_by: deploy@ctl:myapp-1.4.1-9f86d081884c
      retired_at: "2024-05-02T09:00:03Z"
      failed_at: null
      path: C:\hotswap\myapp\myapp.exe.old-1.4.1-9f86d081884c
      present: true
ledger_path:
  description: Path of the ledger file (it may not exist yet).
  returned: with O(operation=query)
  type: str
  sample: C:\hotswap\myapp\.hotswap\ledger.json
live_sha256:
  description: sha256 of the live exe; null when there is none.
  returned: with O(operation=query)
  type: str
  sample: 3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b
lock:
  description: Holder of the lock (C(owner), C(acquired_at), C(acquired_epoch), C(host), C(age) in seconds), or null when free.
  returned: with O(operation=query)
  type: dict
  sample: null
problems:
  description:
    - What stops a rollback on this host and needs a human - a missing or disabled O(service), an interrupted swap
      (no live exe, but copies). Empty when there is none.
  returned: with O(operation=query)
  type: list
  elements: str
  sample: []
reason:
  description:
    - Machine-readable failure reason. V(not_staged) means verify-only mode found another (or no) binary at
      O(path); nothing was changed.
  returned: when verify-only mode finds the release not live
  type: str
  sample: not_staged
pruned:
  description: Old and failed copies deleted after the swap.
  returned: when the swap succeeded
  type: list
  elements: str
  sample: [C:\hotswap\myapp\myapp.exe.old-1.3.0-0d2f6c7a1b3e]
would_swap:
  description: Whether the binary would be swapped.
  returned: in check mode, unless an input check failed
  type: bool
  sample: true
steps:
  description: What the task would do, in order (empty when the release is live and recorded already).
  returned: in check mode, unless an input check failed
  type: list
  elements: str
  sample:
    - download https://artifacts.example.com/myapp/1.4.2/myapp.exe to C:\hotswap\myapp\myapp.exe.new (not contacted in check mode)
    - verify sha256 3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b and the PE machine (x86_64)
    - stop service 'myapp' (wait up to 60 s)
    - rename C:\hotswap\myapp\myapp.exe to C:\hotswap\myapp\myapp.exe.old-1.4.1-9f86d081884c
    - rename C:\hotswap\myapp\myapp.exe.new to C:\hotswap\myapp\myapp.exe
    - start service 'myapp' (wait up to 60 s for Running)
    - record release 1.4.2-3a7bd3e2360a as active in C:\hotswap\myapp\.hotswap\ledger.json
'''
