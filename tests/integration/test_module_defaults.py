# -*- coding: utf-8 -*-
"""module_defaults with the action groups of meta/runtime.yml, in a real run on the controller (no test hosts).

group/hotswap.deploy.release sets base_dir and group/hotswap.deploy.lock_owner sets lock_owner once: no task of
tests/integration/playbooks/module_defaults.yml gives them, but the one that overrides base_dir.
"""

from __future__ import annotations

import json
import os
import shutil

import testlib

PLAYBOOK = os.path.join(testlib.REPO, 'tests', 'integration', 'playbooks', 'module_defaults.yml')
RELEASE_ID = '1.0.0-test'


def test_module_defaults_set_base_dir_and_lock_owner_once(tmp_path):
    assert os.path.exists(os.path.join(testlib.INSTALLED, 'MANIFEST.json')), \
        'the built collection is not installed under build/collections: run `make collection`'
    src = tmp_path / 'demo'
    shutil.copy('/bin/true', str(src))   # an executable for this host's OS and architecture
    base_dir, other_base_dir = tmp_path / 'opt' / 'demo', tmp_path / 'opt' / 'other'
    extra = {'md_base_dir': str(base_dir), 'md_other_base_dir': str(other_base_dir), 'md_src': str(src),
             'md_checksum': testlib.sha256(str(src)), 'md_release_id': RELEASE_ID}
    vars_file = tmp_path / 'vars.json'
    vars_file.write_text(json.dumps(extra))

    r = testlib.run([os.path.join(testlib.VENV_BIN, 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                     PLAYBOOK, '-e', '@%s' % vars_file], timeout=120)

    assert r.rc == 0, r
    assert r.recap['localhost']['failed'] == 0, r
    assert os.readlink(str(base_dir / 'current')) == 'releases/' + RELEASE_ID
    for tree in (base_dir, other_base_dir):
        binary = tree / 'releases' / RELEASE_ID / 'demo'
        assert binary.read_bytes() == src.read_bytes() and os.access(str(binary), os.X_OK), binary
    assert not os.path.lexists(str(other_base_dir / 'current'))
    assert not os.path.lexists(str(base_dir / '.hotswap' / 'lock'))
