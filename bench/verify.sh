#!/usr/bin/env bash
# `imafs verify` on a large ASCII list: N ima-ng entries (default 200,000) with correct
# template digests made by python3, replayed against the matching PCR, without and with a
# sha256sum allowlist of every path. Prints entries per second and peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-200000}"
# IMAFS=PATH: that binary instead of building target/release/imafs.
imafs="${IMAFS:-target/release/imafs}"
[ -n "${IMAFS:-}" ] || cargo build --release --quiet
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
python3 - "$n" "$dir" <<'PY'
import hashlib, struct, sys
n, d = int(sys.argv[1]), sys.argv[2]
pcr = b"\0" * 32
with open(f"{d}/list", "w") as out, open(f"{d}/sums", "w") as sums:
    for i in range(n):
        path = f"/usr/lib/file{i}.so".encode()
        digest = hashlib.sha256(path).digest()
        dng = b"sha256:\0" + digest
        data = struct.pack("<I", len(dng)) + dng + struct.pack("<I", len(path) + 1) + path + b"\0"
        pcr = hashlib.sha256(pcr + hashlib.sha256(data).digest()).digest()
        out.write(f"10 {hashlib.sha1(data).hexdigest()} ima-ng sha256:{digest.hex()} {path.decode()}\n")
        sums.write(f"{digest.hex()}  {path.decode()}\n")
with open(f"{d}/pcrs", "w") as f:
    f.write(f"PCR-10 sha256 {pcr.hex()}\n")
PY
size=$(stat -c %s "$dir/list")
for allow in "" "--allowlist $dir/sums"; do
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e %M" -o "$dir/time" "$imafs" verify --quiet \
        --ascii "$dir/list" --pcrs "$dir/pcrs" $allow > "$dir/out"
    grep -q "result: PASS" "$dir/out"
    read -r secs kib < "$dir/time"
    awk -v n="$n" -v s="$secs" -v k="$kib" -v b="$size" -v a="${allow:+with a $n-path allowlist}" \
        'BEGIN { printf "verify %d entries (%.1f MB) %s: %.2f s, %.0f entries/s, peak RSS %.0f MB\n", n, b/1e6, (a == "" ? "replay only" : a), s, n/(s > 0 ? s : 0.01), k/1024 }'
done
