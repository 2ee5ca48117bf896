#!/usr/bin/env bash
# The unit tests and ansible-test sanity on each ansible-core minor release meta/runtime.yml claims, other than
# the dev venv's own (make test runs those already): one venv per release, build/core-<X.Y>.
#   scripts/core-matrix.sh [--venvs|--unit|--sanity] [2.16 2.17 2.18]
# --venvs: only make the venvs (make test makes them before pytest: test_oldest_core deploys with 2.16's).
# --unit, --sanity: only the unit tests, or only sanity (make test runs them in two lanes at once).
set -euo pipefail
cd "$(dirname "$0")/.."
unit=1 sanity=1
case "${1:-}" in
  --venvs) unit='' sanity=''; shift ;;
  --unit) sanity=''; shift ;;
  --sanity) unit=''; shift ;;
esac
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(2.16 2.17 2.18)
for v in "${versions[@]}"; do
  venv="build/core-$v"
  if [ ! -e "$venv/.installed" ] || [ requirements-matrix.txt -nt "$venv/.installed" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "ansible-core==$v.*" -r requirements-matrix.txt
    touch "$venv/.installed"
  fi
  if [ -n "$unit" ]; then
    echo "== ansible-core $("$venv/bin/python" -c 'import ansible; print(ansible.__version__)'): unit tests"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider -n 2 tests/unit
  fi
  if [ -n "$sanity" ]; then
    echo "== ansible-core $v: sanity"
    # Before 2.19, validate-modules needs pwsh (not on Debian) to read a PowerShell module's spec; make sanity
    # checks it on 2.19, tests/unit/test_powershell.py parses it.
    SANITY_VENV="$venv" scripts/sanity.sh --exclude plugins/modules/win_binary_swap.ps1
  fi
done
