#!/usr/bin/env bash
# Build the load probe (probe/, Go standard library only) as a static binary, offline.
#
#   build.sh OUTPUT
#
# Prints OUTPUT's absolute path. Works from any directory. GOCACHE/GOPATH/
# GOFLAGS from the environment are respected; when GOCACHE/GOPATH are unset and
# $HOME is not writable, they go under OUTPUT's directory. The binary appears
# at OUTPUT only once complete.
set -euo pipefail

die() { echo "build.sh: $*" >&2; exit 2; }

[[ $# -eq 1 ]] || die "usage: build.sh OUTPUT"
output=$1
[[ -n $output && ${output: -1} != / ]] || die "OUTPUT must be a file path"

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/probe" && pwd)
# shellcheck source=/dev/null
. "$src/../../../scripts/go-build.sh"
GOFLAGS="${GOFLAGS:--mod=mod}" go_build_static "$src" "$output" -ldflags "-s -w"
