# shellcheck shell=bash
# Sourced by tests/app/build.sh and tests/load/build.sh: one way to build a static Go binary offline.
#
#   go_build_static SRC OUTPUT [go build flags...]
#
# Builds package SRC into OUTPUT (created only once complete) and prints OUTPUT's absolute path.
# GOOS/GOARCH/GOCACHE/GOPATH/GOFLAGS from the environment are respected; when GOCACHE/GOPATH are
# unset and $HOME is not writable, they go under OUTPUT's directory.

go_build_static() {
  local src=$1 output=$2 outdir go tmp
  shift 2
  outdir=$(dirname "$output")
  mkdir -p "$outdir"
  outdir=$(cd "$outdir" && pwd)
  output="$outdir/$(basename "$output")"

  go=${GO:-}
  if [[ -z $go ]]; then
    if command -v go >/dev/null 2>&1; then go=go
    elif [[ -x /usr/lib/go/bin/go ]]; then go=/usr/lib/go/bin/go
    elif [[ -x /usr/local/go/bin/go ]]; then go=/usr/local/go/bin/go
    else echo "build: no go toolchain found (set GO=/path/to/go)" >&2; return 2
    fi
  fi
  if [[ -z ${HOME:-} || ! -d ${HOME:-/nonexistent} || ! -w ${HOME:-/nonexistent} ]]; then
    export GOCACHE="${GOCACHE:-$outdir/.gocache}"
    export GOPATH="${GOPATH:-$outdir/.gopath}"
  fi
  # Standard library only: never reach for a module proxy or a newer toolchain.
  export GOPROXY="${GOPROXY:-off}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

  tmp=$(mktemp "$outdir/.$(basename "$output").tmp-XXXXXX")
  # shellcheck disable=SC2064  # expand now: tmp is local
  trap "rm -f '$tmp'" EXIT
  (cd "$src" && CGO_ENABLED=0 "$go" build -trimpath -buildvcs=false -o "$tmp" "$@" .)
  chmod 0755 "$tmp"
  mv -f "$tmp" "$output"
  trap - EXIT
  echo "$output"
}
