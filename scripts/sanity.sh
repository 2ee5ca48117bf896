#!/usr/bin/env bash
# ansible-test sanity on exactly what the built tarball holds, with the venv's Python.
# ansible-test lists files through git, so the tarball is unpacked into a scratch git repo.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
rm -rf build/sanity-dist
build/venv/bin/ansible-galaxy collection build --force --output-path build/sanity-dist . >/dev/null
tarball="$(ls build/sanity-dist/hotswap-deploy-*.tar.gz)"
py="$(build/venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# ansible-test bootstraps pip in its sanity venvs with a get-pip.py fetched from
# outside the package registries; put our ensurepip-based one where it looks first.
pip_ver="$(build/venv/bin/python -c 'import ansible_test._internal.python_requirements as r, inspect, re; print(re.search(r"pip=.([0-9.]+)", inspect.getsource(r.get_venv_packages)).group(1))')"
mkdir -p "$HOME/.ansible/test/cache"
cp scripts/offline_get_pip.py "$HOME/.ansible/test/cache/get_pip_${pip_ver//./_}.py"

work="$root/build/sanity/ansible_collections/hotswap/deploy"
rm -rf "$root/build/sanity"
mkdir -p "$work"
tar -xzf "$tarball" -C "$work"
rm -f "$work/MANIFEST.json" "$work/FILES.json"
# galaxy.yml gives ansible-test the collection version for its version checks.
cp galaxy.yml "$work/"
cd "$work"
git init -q && git add -A
exec "$root/build/venv/bin/ansible-test" sanity --color no --python "$py" --requirements "$@"
