#!/bin/sh
# Cost of --state per record (appends/s without a journal, with one, with --state-sync) and
# the replay time of a restart. Usage: bench/journal.sh [N] [N_SYNC] [DIR]
# DIR decides what --state-sync costs: put it on the disk a real state directory would use.
set -eu
cd "$(dirname "$0")/.."
cargo run -q --release --example bench_journal -- "${1:-100000}" "${2:-2000}" ${3:+"$3"}
