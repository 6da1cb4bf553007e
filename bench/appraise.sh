#!/bin/sh
# Appraisal latency through `imafs run` (release build, run as root): the container (the
# host's root under the overlay) opens and reads N 4 KiB files signed with `evmctl ima_sign`
# by an RSA-2048 key, then N signed by a P-256 key, under
#   appraise func=FILE_CHECK fowner=1234 appraise_type=imasig   (--appraise enforce)
# and prints p50/p99 in µs of open+read+close for the first open of each file (hash +
# signature check) and for a re-open (cached verdict), with --appraise off as the baseline.
# Prints numbers only; no pass/fail.
set -eu
N=${N:-300}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# IMAFS=PATH: that binary instead of building target/release/imafs.
if [ -z "${IMAFS:-}" ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    IMAFS="$ROOT/target/release/imafs"
fi
WORK=$(mktemp -d /var/tmp/imafs-bench-appraise.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM
chmod 755 "$WORK"
mkdir "$WORK/certs"
for k in rsa p256; do
    case $k in
        rsa) newkey="-newkey rsa:2048" ;;
        p256) newkey="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1" ;;
    esac
    # shellcheck disable=SC2086
    openssl req -x509 -nodes -days 1 -subj "/CN=bench $k" $newkey \
        -keyout "$WORK/$k.key" -out "$WORK/$k.crt" 2>/dev/null
    cat "$WORK/$k.key" "$WORK/$k.crt" > "$WORK/$k.pem"
    openssl x509 -outform DER -in "$WORK/$k.crt" -out "$WORK/certs/$k.der"
    mkdir "$WORK/$k"
    i=0
    while [ $i -lt "$N" ]; do
        head -c 4096 /dev/urandom > "$WORK/$k/f$i"
        i=$((i + 1))
    done
    evmctl ima_sign -r -a sha256 --key "$WORK/$k.pem" "$WORK/$k" > /dev/null 2>&1
    chown -R 1234:1234 "$WORK/$k"
done
echo "appraise func=FILE_CHECK fowner=1234 appraise_type=imasig" > "$WORK/policy"

cat > "$WORK/opens.py" <<'PY'
import os, sys, time
def timed(path):
    t = time.perf_counter_ns()
    fd = os.open(path, os.O_RDONLY)
    os.read(fd, 4096)
    os.close(fd)
    return (time.perf_counter_ns() - t) / 1000
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))]
mode, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for key in ("rsa", "p256"):
    files = [f"{work}/{key}/f{i}" for i in range(n)]
    first = [timed(f) for f in files]
    again = [timed(f) for f in files]
    for name, v in (("first open", first), ("re-open", again)):
        print(f"{mode:8} {key:5} {name:11} p50 {pct(v, 50):8.1f} us  p99 {pct(v, 99):8.1f} us")
PY

for mode in off enforce; do
    # Fresh page cache state per run is not needed: the lower files were just written.
    "$IMAFS" run --appraise "$mode" --keys "$WORK/certs" --policy "$WORK/policy" \
        -- python3 "$WORK/opens.py" "$mode" "$WORK" "$N"
done
