#!/usr/bin/env bash
# ansible-test sanity on exactly what the built tarball holds, with the venv's Python.
# ansible-test lists files through git, so the tarball is unpacked into a scratch git repo.
# SANITY_VENV=build/core-2.16 runs another ansible-core release's ansible-test (scripts/core-matrix.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
venv="${SANITY_VENV:-build/venv}"
# A scratch tree per venv, so two releases can be checked at once.
scratch="build/sanity-$(basename "$venv")"
rm -rf "$scratch-dist"
build/venv/bin/ansible-galaxy collection build --force --output-path "$scratch-dist" . >/dev/null
tarball="$(ls "$scratch-dist"/hotswap-deploy-*.tar.gz)"
py="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# ansible-test makes its sanity venvs under ~/.ansible/test/venv on first use, and two releases may want the same
# one (a venv without its marker is taken for half-made and removed): a home of its own per release, so make test
# can run two releases at once.
home="${XDG_CACHE_HOME:-$HOME/.cache}/hotswap-deploy/ansible-test-$(basename "$venv")"
mkdir -p "$home"
export HOME="$home"

# ansible-test bootstraps pip in its sanity venvs with a get-pip.py fetched from
# outside the package registries; put our ensurepip-based one where it looks first.
pip_ver="$("$venv/bin/python" -c 'import ansible_test._internal.python_requirements as r, inspect, re; print(re.search(r"pip=.([0-9.]+)", inspect.getsource(r.get_venv_packages)).group(1))')"
mkdir -p "$HOME/.ansible/test/cache"
cp scripts/offline_get_pip.py "$HOME/.ansible/test/cache/get_pip_${pip_ver//./_}.py"

work="$root/$scratch/ansible_collections/hotswap/deploy"
rm -rf "${root:?}/${scratch:?}"
mkdir -p "$work"
tar -xzf "$tarball" -C "$work"
rm -f "$work/MANIFEST.json" "$work/FILES.json"
# galaxy.yml gives ansible-test the collection version for its version checks.
cp galaxy.yml "$work/"
cd "$work"
git init -q && git add -A
exec "$root/$venv/bin/ansible-test" sanity --color no --python "$py" --requirements "$@"
