#!/usr/bin/env bash
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
# Where the CPU of one deploy goes: the controller (ansible-playbook, its workers and ssh clients, by
# /usr/bin/time) against the whole machine (/proc/stat), for test hosts on this machine's cores.
#   benchmarks/deploy/cpu_split.sh <inventory> <extra-vars.json>      (docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
inventory=$1 vars=$2
export PATH=$PWD/build/venv/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$PWD/build/collections ANSIBLE_CONFIG=$PWD/ansible.cfg
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
log=$(mktemp) times=$(mktemp)
trap 'rm -f "$log" "$times"' EXIT
b0=$(busy) t0=$(date +%s.%N)
/usr/bin/time -f '%U %S' -o "$times" ansible-playbook -i "$inventory" playbooks/deploy.yml -e "@$vars" > "$log" 2>&1 \
  || { tail -20 "$log"; exit 1; }
t1=$(date +%s.%N) b1=$(busy)
read -r user sys < "$times"
hz=$(getconf CLK_TCK)
awk -v w="$(echo "$t1 - $t0" | bc)" -v u="$user" -v s="$sys" -v m="$(( b1 - b0 ))" -v hz="$hz" -v n="$(nproc)" 'BEGIN {
  printf "wall %.1f s; controller %.1f CPU-s (user %.1f, sys %.1f); machine %.1f CPU-s of %.1f available\n",
         w, u + s, u, s, m / hz, w * n }'
