#!/usr/bin/env bash
# ansible-test sanity on the collection as built (the installed tarball), with the
# venv's Python. Requirements of the individual sanity tests are installed by
# ansible-test itself (--requirements) into that venv.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
coll="$root/build/collections/ansible_collections/hotswap/deploy"
[ -f "$coll/MANIFEST.json" ] || { echo "sanity: collection not installed; run make collection" >&2; exit 1; }
py="$(build/venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
cd "$coll"
# ansible-test wants to be the only thing in its output dir; start clean every time.
rm -rf tests/output
exec "$root/build/venv/bin/ansible-test" sanity --color no --python "$py" --requirements "$@"
