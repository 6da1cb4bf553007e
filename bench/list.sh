#!/usr/bin/env bash
# Measurement-list throughput and memory: append 1M ima-ng records (sha1+sha256 banks,
# template digests included), resident bytes per record, 64 KiB read throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --quiet --example bench_list -- "${1:-1000000}"
