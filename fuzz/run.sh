#!/usr/bin/env bash
# Fuzz every target for SECONDS (default 120) each, from its seeds plus the corpus kept in
# corpus/<target>, and print one line per target: executions, coverage, corpus size.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); nightly is not needed: RUSTC_BOOTSTRAP=1
# lets the stable toolchain build the sanitizer-instrumented targets.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-120}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(policy_parse ascii_list journal_scan ima_xattr x509 binary_list child_config)
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O >/dev/null
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    extra=()
    [ "$t" = policy_parse ] && extra=(-dict=policy.dict)
    cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- "${extra[@]}" \
        -max_total_time="$secs" -print_final_stats=1 >"logs/$t.log" 2>&1 || {
        echo "$t: FAILED, see fuzz/logs/$t.log and fuzz/artifacts/$t/"
        continue
    }
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "logs/$t.log" | tail -1 | grep -o '[0-9]*')
    echo "$t: ${execs:-?} executions in ${secs}s, cov ${cov:-?}, corpus $(ls "corpus/$t" | wc -l) inputs"
done
