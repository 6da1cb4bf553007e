#!/bin/sh
# Policy matching cost (ns per event) for the tcb policy and a 1,000-rule policy.
set -e
cd "$(dirname "$0")/.."
exec cargo run --quiet --release --example bench_policy
