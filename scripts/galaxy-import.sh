#!/usr/bin/env bash
# galaxy-importer - what Galaxy runs on an uploaded collection - on the built tarball, offline (make galaxy-import),
# from its own venv build/importer-venv: the metadata of galaxy.yml, MANIFEST.json and meta/runtime.yml, ansible-doc
# on every module, plugin and role, the changelog, and ansible-lint with Galaxy's options (--offline). Not
# ansible-test: Galaxy runs that in a container, and `make sanity` runs ansible-test sanity on the same tarball.
# Fails when the importer fails or logs an ERROR; its WARNINGs are shown and counted.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=$repo/build/importer-venv
[ -x "$venv/bin/python" ] || { echo "galaxy-import: no $venv: run 'make galaxy-import'" >&2; exit 1; }

work="$(mktemp -d /tmp/hotswap-galaxy-import.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# The importer's own ansible-doc and ansible-lint, and not this checkout's ansible.cfg or installed collections.
export PATH="$venv/bin:$PATH"
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH
cat >"$work/galaxy-importer.cfg" <<EOF
[galaxy-importer]
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_DOC = True
RUN_ANSIBLE_LINT = True
OFFLINE_ANSIBLE_LINT = True
CHECK_CHANGELOG = True
ANSIBLE_LOCAL_TMP = $work/ansible-tmp
TMP_ROOT_DIR = $work
EOF
export GALAXY_IMPORTER_CONFIG="$work/galaxy-importer.cfg"

"$venv/bin/ansible-galaxy" collection build --output-path "$work/dist" . >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; exit 1; }
tarball="$(ls "$work"/dist/hotswap-deploy-*.tar.gz)"

# Galaxy refuses a collection whose galaxy.yml has no `repository` (the URL of its source). Until galaxy.yml has
# one, the rest is checked on a copy of the tarball whose MANIFEST.json has a stand-in value, and this says so.
if ! grep -q '^repository:' galaxy.yml; then
    echo "galaxy-import: WARNING: galaxy.yml has no 'repository': Galaxy would refuse this tarball;" \
         "the other checks run on a copy with a stand-in value" >&2
    mkdir "$work/checked"
    "$venv/bin/python" - "$tarball" "$work/checked/$(basename "$tarball")" <<'EOF'
import io, json, sys, tarfile
src, dst = sys.argv[1:]
with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
    for member in tin.getmembers():
        data = tin.extractfile(member).read() if member.isfile() else None
        if member.name == "MANIFEST.json":  # FILES.json has no checksum of MANIFEST.json
            manifest = json.loads(data)
            manifest["collection_info"]["repository"] = "stand-in-for-galaxy-import"
            data = json.dumps(manifest, indent=4).encode()
            member.size = len(data)
        tout.addfile(member, io.BytesIO(data) if data is not None else None)
EOF
    tarball="$work/checked/$(basename "$tarball")"
fi

cd "$work"  # the importer writes importer_result.json into the current directory
rc=0
"$venv/bin/python" -m galaxy_importer.main "$tarball" >"$work/importer.log" 2>&1 || rc=$?
# One "Loading <type> <name>" line per plugin; cryptography's deprecation notice when ansible is imported.
grep -vE '^Loading |CryptographyDeprecationWarning|^  from cryptography' "$work/importer.log" || true
errors="$(grep -c '^ERROR' "$work/importer.log" || true)"
warnings="$(grep -c '^WARNING' "$work/importer.log" || true)"
if [ "$rc" -ne 0 ] || [ "$errors" -ne 0 ]; then
    echo "galaxy-import: FAILED (exit $rc, $errors errors, $warnings warnings)" >&2
    exit 1
fi
echo "galaxy-import: ok ($warnings warnings)"
