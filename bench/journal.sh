#!/bin/sh
# Cost of --state per record (appends/s without a journal, with one, with --state-sync), the
# replay time of a restart, and, when swtpm is installed, the cost of --tpm (a swtpm started
# here). Usage: bench/journal.sh [N] [N_SYNC] [DIR]
# DIR decides what --state-sync costs: put it on the disk a real state directory would use.
set -eu
cd "$(dirname "$0")/.."
tpm=""
if command -v swtpm >/dev/null 2>&1; then
    tpmdir=$(mktemp -d)
    swtpm socket --tpm2 --server "type=unixio,path=$tpmdir/s" --ctrl "type=unixio,path=$tpmdir/s.ctrl" \
        --tpmstate "dir=$tpmdir" --flags startup-clear,not-need-init 2>/dev/null &
    swtpm_pid=$!
    trap 'kill $swtpm_pid 2>/dev/null; rm -rf "$tpmdir"' EXIT
    while [ ! -S "$tpmdir/s" ]; do sleep 0.05; done
    tpm="swtpm:$tpmdir/s"
fi
cargo run -q --release --example bench_journal -- "${1:-100000}" "${2:-2000}" "${3:-}" $tpm
