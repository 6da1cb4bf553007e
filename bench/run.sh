#!/bin/sh
# Cost of `imafs run` against the same container without measuring (`mount-helper exec`):
# start-up of a container that runs `true`, and reading a tree of files (tcb policy: every
# file read by root is hashed once). Prints milliseconds and ratios.
# Usage: bench/run.sh [TREE (default /usr/lib/x86_64-linux-gnu)] [RUNS (default 20)]
set -eu
cd "$(dirname "$0")/.."
tree=${1:-/usr/lib/x86_64-linux-gnu}
runs=${2:-20}
# IMAFS=PATH (and MOUNT_HELPER=PATH): those binaries instead of building target/release's.
[ -n "${IMAFS:-}" ] || cargo build -q --release --workspace
imafs=${IMAFS:-target/release/imafs}
helper=${MOUNT_HELPER:-target/release/mount-helper}
now_ms() { date +%s%3N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

start=$(now_ms)
i=0; while [ $i -lt "$runs" ]; do "$helper" exec --root / -- true; i=$((i + 1)); done
plain=$(( ($(now_ms) - start) / runs ))
start=$(now_ms)
i=0; while [ $i -lt "$runs" ]; do "$imafs" run -- true; i=$((i + 1)); done
measured=$(( ($(now_ms) - start) / runs ))
echo "start-up (true): mount-helper exec ${plain} ms, imafs run ${measured} ms, ratio $(ratio "$measured" "$plain")"

files=$(find "$tree" -type f | wc -l)
read_all="find $tree -type f -exec cat {} + > /dev/null"
# Warm the page cache so both runs read from memory.
sh -c "$read_all"
start=$(now_ms)
"$helper" exec --root / -- sh -c "$read_all"
plain=$(( $(now_ms) - start ))
start=$(now_ms)
"$imafs" run -- sh -c "$read_all"
cold=$(( $(now_ms) - start ))
start=$(now_ms)
"$imafs" run -- sh -c "$read_all; $read_all"
twice=$(( $(now_ms) - start ))
echo "read $files files of $tree: mount-helper exec ${plain} ms, imafs run ${cold} ms (ratio $(ratio "$cold" "$plain")), read twice in one run ${twice} ms"
