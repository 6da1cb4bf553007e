#!/bin/sh
# Per-event cost of the engine's file hook (process_file + file_closed) on small files.
# Usage: bench/runtime-events.sh [FILES] [SIZE_BYTES]
set -eu
cd "$(dirname "$0")/.."
cargo run -q --release --example runtime_events -- "${1:-2000}" "${2:-4096}"
