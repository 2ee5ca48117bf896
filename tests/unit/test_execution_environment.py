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
# The dev venv's tools (ansible-builder, ansible-galaxy), also when the unit tests run on another ansible-core
# (scripts/core-matrix.sh).
VENV_BIN = os.path.join(REPO, 'build', 'venv', 'bin')
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


# --- ansible-builder create: the build context the EE file gives, checked without building an image ---------------

# Every system package the collection needs in the EE, per package family (bindep platform). The ssh client
# for the ssh connection plugin; hostname, which minimal bases lack (meta/ee/bindep.txt says why).
SYSTEM_PACKAGES = {
    'rpm': {'openssh-clients', 'hostname'},
    'dpkg': {'openssh-client', 'hostname'},
}


def bindep_packages(path, platform):
    """Package names of a bindep file that a `platform:<platform>` base installs (no profile: every base)."""
    names = set()
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            name, _sep, selector = line.partition('[')
            profiles = selector.rstrip(']').split()
            wanted = [p for p in profiles if p.startswith('platform:')]
            excluded = [p[1:] for p in profiles if p.startswith('!platform:')]
            if ('platform:' + platform) in excluded:
                continue
            if not wanted or ('platform:' + platform) in wanted:
                names.add(name.strip().lower())
    return names


def offline():
    """A command prefix that runs the command with no network (a new user and network namespace), when this
    machine allows it; else none (the command runs as is)."""
    unshare = shutil.which('unshare')
    if unshare and subprocess.run([unshare, '-rn', 'true'], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, check=False).returncode == 0:
        return [unshare, '-rn']
    return []


@pytest.fixture(scope='module')
def build_context(tmp_path_factory):
    """`ansible-builder create` of a copy of the EE file and meta/ee/ (with the collection tarball it copies
    built fresh): the Containerfile and the requirement files it generates. No image, no registry, no network."""
    builder = os.path.join(VENV_BIN, 'ansible-builder')
    if not os.path.exists(builder):
        builder = shutil.which('ansible-builder')
    assert builder, 'ansible-builder not found: run `make venv` (requirements-dev.txt)'
    galaxy = os.path.join(VENV_BIN, 'ansible-galaxy')
    if not os.path.exists(galaxy):
        galaxy = shutil.which('ansible-galaxy')
    root = tmp_path_factory.mktemp('ee')
    shutil.copy(EE_FILE, str(root / 'execution-environment.yml'))
    shutil.copytree(os.path.join(REPO, 'meta', 'ee'), str(root / 'meta' / 'ee'))
    (root / 'build' / 'dist').mkdir(parents=True)
    subprocess.run([galaxy, 'collection', 'build', '--force', '--output-path', str(root / 'build' / 'dist'), REPO],
                   check=True, stdout=subprocess.DEVNULL)
    prefix = offline()
    proc = subprocess.run(prefix + [builder, 'create', '-f', 'execution-environment.yml', '-c', 'context',
                                    '--output-filename', 'Containerfile', '-v', '1'],
                          cwd=str(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          check=False)
    assert proc.returncode == 0, '%s: %s' % (' '.join(prefix) or 'with network', proc.stdout)
    return root / 'context'


def test_builder_create_writes_a_containerfile_that_installs_the_bindep_file(build_context):
    containerfile = (build_context / 'Containerfile').read_text()
    # The builder stage collects the system requirements (bindep) and the final stage installs them.
    assert re.search(r'^COPY _build/bindep\.txt \S+$', containerfile, re.M), containerfile
    assert re.search(r'^RUN /output/scripts/assemble$', containerfile, re.M), containerfile
    assert re.search(r'^RUN /output/scripts/install-from-bindep', containerfile, re.M), containerfile
    # The placeholder base image is an ARG default a build can override; nothing else is pulled by name.
    assert 'ARG EE_BASE_IMAGE="localhost/hotswap-ee-base:latest"' in containerfile, containerfile


@pytest.mark.parametrize('platform', sorted(SYSTEM_PACKAGES))
def test_builder_context_has_every_system_package(build_context, platform):
    generated = bindep_packages(str(build_context / '_build' / 'bindep.txt'), platform)
    assert SYSTEM_PACKAGES[platform] <= generated, (platform, sorted(SYSTEM_PACKAGES[platform] - generated))


def test_builder_context_has_the_python_and_galaxy_requirements(build_context, ee):
    assert set(requirement_names(str(build_context / '_build' / 'requirements.txt'))) >= \
        set(requirement_names(dep_path(ee, 'python')))
    assert load(str(build_context / '_build' / 'requirements.yml')) == load(dep_path(ee, 'galaxy'))
    version = load(os.path.join(REPO, 'galaxy.yml'))['version']
    assert (build_context / '_build' / 'collections' / ('hotswap-deploy-%s.tar.gz' % version)).is_file()


@pytest.mark.parametrize('platform', sorted(SYSTEM_PACKAGES))
def test_the_image_build_installs_every_system_package(build_context, platform, tmp_path):
    """What the image build's builder stage does with the context: the collection installed from it (galaxy
    stage), then the context's own introspect.py combines the EE's bindep file with the collections' into the
    list `assemble` installs. Every system package the collection needs is in it."""
    galaxy = os.path.join(VENV_BIN, 'ansible-galaxy')
    if not os.path.exists(galaxy):
        galaxy = shutil.which('ansible-galaxy')
    build = build_context / '_build'
    env = dict(os.environ, ANSIBLE_GALAXY_DISABLE_GPG_VERIFY='1', ANSIBLE_COLLECTIONS_PATH=str(tmp_path / 'ansible'))
    subprocess.run([galaxy, 'collection', 'install', '-r', 'requirements.yml', '--collections-path',
                    str(tmp_path / 'ansible')], cwd=str(build), env=env, check=True, stdout=subprocess.DEVNULL)
    written = tmp_path / 'bindep.txt'
    subprocess.run([sys.executable, str(build / 'scripts' / 'introspect.py'), 'introspect',
                    '--user-pip', str(build / 'requirements.txt'), '--user-bindep', str(build / 'bindep.txt'),
                    '--write-bindep', str(written), '--write-pip', str(tmp_path / 'requirements.txt'),
                    str(tmp_path / 'ansible')], check=True, stdout=subprocess.DEVNULL)
    installed = bindep_packages(str(written), platform)
    assert SYSTEM_PACKAGES[platform] <= installed, (platform, sorted(SYSTEM_PACKAGES[platform] - installed))
