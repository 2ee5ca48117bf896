#!/usr/bin/env bash
# Builds the demo service (tests/app) as v1 and v2 for the molecule scenarios and prints
# `export` lines for their converge/verify playbooks:
#
#   eval "$(molecule/shared/artifacts.sh [OUTDIR])"     # default OUTDIR: build/molecule/app
#
# Exports HOTSWAP_MOLECULE_VERSION_V1/_V2, HOTSWAP_MOLECULE_ARTIFACT_V1/_V2 (absolute paths)
# and HOTSWAP_MOLECULE_CHECKSUM_V1/_V2 (sha256:<hex>). Versions can be preset in the environment.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$repo/build/molecule/app}
v1=${HOTSWAP_MOLECULE_VERSION_V1:-1.0.0}
v2=${HOTSWAP_MOLECULE_VERSION_V2:-2.0.0}

for n in 1 2; do
  if [[ $n == 1 ]]; then version=$v1; else version=$v2; fi
  bin="$out/$version/hotswap-demo"
  # build.sh prints the path: keep stdout for the export lines only.
  "$repo/tests/app/build.sh" "$version" "$bin" >/dev/null
  bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
  sum=$(sha256sum "$bin" | cut -d' ' -f1)
  printf 'export HOTSWAP_MOLECULE_VERSION_V%d=%q\n' "$n" "$version"
  printf 'export HOTSWAP_MOLECULE_ARTIFACT_V%d=%q\n' "$n" "$bin"
  printf 'export HOTSWAP_MOLECULE_CHECKSUM_V%d=%q\n' "$n" "sha256:$sum"
done
