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
outdir=$(dirname "$output")
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
output="$outdir/$(basename "$output")"

go=${GO:-}
if [[ -z $go ]]; then
  if command -v go >/dev/null 2>&1; then go=go
  elif [[ -x /usr/lib/go/bin/go ]]; then go=/usr/lib/go/bin/go
  elif [[ -x /usr/local/go/bin/go ]]; then go=/usr/local/go/bin/go
  else die "no go toolchain found (set GO=/path/to/go)"
  fi
fi

if [[ -z ${HOME:-} || ! -d ${HOME:-/nonexistent} || ! -w ${HOME:-/nonexistent} ]]; then
  export GOCACHE="${GOCACHE:-$outdir/.gocache}"
  export GOPATH="${GOPATH:-$outdir/.gopath}"
fi
# Standard library only: never reach for a module proxy or a newer toolchain.
export GOPROXY="${GOPROXY:-off}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="${GOFLAGS:--mod=mod}"

tmp=$(mktemp "$outdir/.$(basename "$output").tmp-XXXXXX")
trap 'rm -f "$tmp"' EXIT

(
  cd "$src"
  CGO_ENABLED=0 "$go" build -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp" .
)
chmod 0755 "$tmp"
mv -f "$tmp" "$output"
trap - EXIT
echo "$output"
