#!/usr/bin/env bash
# Build the hotswap demo service as a static binary, offline.
#
#   build.sh VERSION OUTPUT [FAULT] [GOOS] [GOARCH]
#
#   VERSION  reported by --version, /healthz and /        e.g. 1.2.3
#   OUTPUT   path of the binary (give windows builds a .exe name)
#   FAULT    "" (none), exit-at-start, never-ready, unhealthy, wrong-version, errors,
#            exit-on-term, slow
#   GOOS     default linux;  GOARCH default amd64
#
# Works from any directory. GOCACHE/GOPATH/GOFLAGS from the environment are
# respected; when they are unset and $HOME is not writable, they go under
# OUTPUT's directory. The binary appears at OUTPUT only once complete.
set -euo pipefail

die() { echo "build.sh: $*" >&2; exit 2; }

[[ $# -ge 2 && $# -le 5 ]] || die "usage: build.sh VERSION OUTPUT [FAULT] [GOOS] [GOARCH]"
version=$1
output=$2
fault=${3:-}
goos=${4:-linux}
goarch=${5:-amd64}

[[ $version =~ ^[A-Za-z0-9][A-Za-z0-9._+~-]*$ ]] || die "VERSION '$version': use letters, digits and . _ + ~ -"
case $fault in
  ""|exit-at-start|never-ready|unhealthy|wrong-version|errors|exit-on-term|slow) ;;
  *) die "FAULT '$fault': want one of exit-at-start never-ready unhealthy wrong-version errors exit-on-term slow (or empty)" ;;
esac
[[ -n $output && ${output: -1} != / ]] || die "OUTPUT must be a file path"

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=/dev/null
. "$src/../../scripts/go-build.sh"

if [[ $goos == windows && $output != *.exe ]]; then
  echo "build.sh: warning: windows binary without .exe suffix: $output" >&2
fi
GOOS=$goos GOARCH=$goarch go_build_static "$src" "$output" \
  -ldflags "-s -w -X main.version=$version -X main.fault=$fault"
