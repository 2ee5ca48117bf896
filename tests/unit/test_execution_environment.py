# -*- coding: utf-8 -*-
"""execution-environment.yml (ansible-builder 3) parses, names what the collection needs, and its
galaxy requirements install the collection from the tarball it copies into the build context.
No image is built here (that needs a registry)."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EE_FILE = os.path.join(REPO, 'execution-environment.yml')
VENV_BIN = os.path.dirname(sys.executable)
# Top-level keys of the version 3 schema.
V3_KEYS = {'version', 'images', 'dependencies', 'additional_build_files', 'additional_build_steps',
           'build_arg_defaults', 'options'}


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope='module')
def ee():
    return load(EE_FILE)


def dep_path(ee, kind):
    return os.path.join(REPO, ee['dependencies'][kind])


def requirement_names(path):
    names = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                names.append(re.split(r'[<>=!~\[; ]', line, maxsplit=1)[0].lower())
    return names


def test_version_3_with_known_sections(ee):
    assert ee['version'] == 3
    assert set(ee) <= V3_KEYS, set(ee) - V3_KEYS
    for kind in ('python', 'system', 'galaxy'):
        assert os.path.isfile(dep_path(ee, kind)), ee['dependencies'][kind]


def test_base_image_names_no_registry_host(ee):
    # The user picks the base image (--build-arg EE_BASE_IMAGE=... or a local tag): the file
    # only holds a local placeholder, which ansible-builder 3 wants with a tag.
    name = ee['images']['base_image']['name']
    assert name.startswith('localhost/') and ':' in name.split('/')[-1], name


def test_ansible_core_matches_requires_ansible(ee):
    requires = load(os.path.join(REPO, 'meta', 'runtime.yml'))['requires_ansible']
    assert ee['dependencies']['ansible_core']['package_pip'] == 'ansible-core' + requires
    assert ee['dependencies']['ansible_runner']['package_pip'].startswith('ansible-runner')


def test_python_requirements(ee):
    assert set(requirement_names(dep_path(ee, 'python'))) >= {'jmespath', 'pywinrm', 'paramiko'}


def test_system_requirements_have_the_ssh_client_for_both_package_families(ee):
    entries = requirement_names(dep_path(ee, 'system'))
    with open(dep_path(ee, 'system')) as f:
        text = f.read()
    assert {'openssh-clients', 'openssh-client'} <= set(entries)
    assert re.search(r'^openssh-clients \[platform:rpm\]$', text, re.M)
    assert re.search(r'^openssh-client \[platform:dpkg\]$', text, re.M)


def test_galaxy_requirements_name_the_tarball_of_this_version(ee):
    version = load(os.path.join(REPO, 'galaxy.yml'))['version']
    reqs = load(dep_path(ee, 'galaxy'))['collections']
    tarball = 'hotswap-deploy-%s.tar.gz' % version
    assert {'name': 'collections/' + tarball, 'type': 'file'} in reqs, reqs
    # The build file entry that puts the tarball at that place in the build context.
    copies = [f for f in ee['additional_build_files'] if f['dest'] == 'collections']
    assert len(copies) == 1 and fnmatch.fnmatch('build/dist/' + tarball, copies[0]['src']), copies


def test_galaxy_requirements_install_offline(ee, tmp_path):
    """What the EE's galaxy stage runs, in a copy of its /build directory."""
    galaxy = os.path.join(VENV_BIN, 'ansible-galaxy')
    if not os.path.exists(galaxy):
        galaxy = shutil.which('ansible-galaxy')
    assert galaxy, 'ansible-galaxy not found: run `make venv`'
    context = tmp_path / 'build'
    (context / 'collections').mkdir(parents=True)
    subprocess.run([galaxy, 'collection', 'build', '--force', '--output-path', str(context / 'collections'), REPO],
                   check=True, stdout=subprocess.DEVNULL)
    shutil.copy(dep_path(ee, 'galaxy'), str(context / 'requirements.yml'))
    # Only the target path: a collection installed elsewhere (make test's build/collections) would be skipped.
    env = dict(os.environ, ANSIBLE_GALAXY_DISABLE_GPG_VERIFY='1', ANSIBLE_COLLECTIONS_PATH=str(tmp_path / 'installed'))
    subprocess.run([galaxy, 'collection', 'install', '-r', 'requirements.yml', '--collections-path',
                    str(tmp_path / 'installed')], cwd=str(context), env=env, check=True,
                   stdout=subprocess.DEVNULL)
    manifest = tmp_path / 'installed' / 'ansible_collections' / 'hotswap' / 'deploy' / 'MANIFEST.json'
    assert manifest.is_file()
