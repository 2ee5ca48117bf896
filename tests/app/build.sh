#!/usr/bin/env bash
# Build the hotswap demo service as a static binary, offline.
#
#   build.sh VERSION OUTPUT [FAULT] [GOOS] [GOARCH]
#
#   VERSION  reported by --version, /healthz and /        e.g. 1.2.3
#   OUTPUT   path of the binary (give windows builds a .exe name)
#   FAULT    "" (none), exit-at-start, never-ready, unhealthy, wrong-version
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
  ""|exit-at-start|never-ready|unhealthy|wrong-version) ;;
  *) die "FAULT '$fault': want one of exit-at-start never-ready unhealthy wrong-version (or empty)" ;;
esac
[[ -n $output && ${output: -1} != / ]] || die "OUTPUT must be a file path"

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=$(dirname "$output")
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
output="$outdir/$(basename "$output")"

if [[ $goos == windows && $output != *.exe ]]; then
  echo "build.sh: warning: windows binary without .exe suffix: $output" >&2
fi

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
export GOPROXY="${GOPROXY:-off}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

tmp=$(mktemp "$outdir/.$(basename "$output").tmp-XXXXXX")
trap 'rm -f "$tmp"' EXIT

(
  cd "$src"
  CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch "$go" build \
    -trimpath -buildvcs=false \
    -ldflags "-s -w -X main.version=$version -X main.fault=$fault" \
    -o "$tmp" .
)
chmod 0755 "$tmp"
mv -f "$tmp" "$output"
trap - EXIT
echo "$output"
