#!/bin/sh
# Hashing throughput of the engine's file hasher (page-cache hot file), in GiB/s.
# Usage: bench/hash-throughput.sh [SIZE_MIB]
set -eu
cd "$(dirname "$0")/.."
size=${1:-512}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c "$((size * 1024 * 1024))" /dev/urandom >"$tmp/blob"
cargo run -q --release --example hash_throughput -- "$tmp/blob" 3
