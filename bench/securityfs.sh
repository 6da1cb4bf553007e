#!/bin/sh
# Benchmarks of the securityfs view (`imafs serve --securityfs`), release build, run as root.
#   1. latency of reading runtime_measurements_count: `cat` per call (process start
#      included) and open+read+close in one process;
#   2. throughput of reading the ascii list of N records (default 1,000,000, restored with
#      --restore-list) through the mount with cat, busybox cat and dd bs=1M;
#   3. append-to-visibility latency: an event line written to the --events FIFO until a
#      reader holding the list open sees the new record.
# Prints numbers only; no pass/fail.
set -eu
N=${N:-1000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# IMAFS=PATH: that binary instead of building target/release/imafs.
if [ -z "${IMAFS:-}" ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    IMAFS="$ROOT/target/release/imafs"
fi
WORK=$(mktemp -d /tmp/imafs-bench-sfs.XXXXXX)
MNT="$WORK/sfs"
mkdir -p "$MNT"
PID=
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    umount -l "$MNT" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

echo "generating a $N-record binary list (ima-ng, sha1 template digests)"
python3 - "$N" "$WORK/list.bin" <<'PY'
import hashlib, struct, sys
n, out = int(sys.argv[1]), sys.argv[2]
name = b"ima-ng"
with open(out, "wb", buffering=1 << 20) as f:
    for i in range(n):
        path = b"/usr/lib/bench/file-%08d.so" % i
        digest = hashlib.sha256(path).digest()
        d = b"sha256:\0" + digest
        p = path + b"\0"
        data = struct.pack("<I", len(d)) + d + struct.pack("<I", len(p)) + p
        f.write(struct.pack("<I", 10) + hashlib.sha1(data).digest()
                + struct.pack("<I", len(name)) + name + struct.pack("<I", len(data)) + data)
PY
mkfifo "$WORK/events"
START=$(date +%s.%N)
"$IMAFS" serve --securityfs "$MNT" --restore-list "$WORK/list.bin" --events "$WORK/events" \
    > "$WORK/out" 2> "$WORK/err" &
PID=$!
exec 9> "$WORK/events"
while ! grep -q ready "$WORK/out" 2>/dev/null; do sleep 0.05; done
echo "daemon ready (restore included): $(awk "BEGIN { print $(date +%s.%N) - $START }") s"
IMA="$MNT/integrity/ima"
echo "runtime_measurements_count: $(cat "$IMA/runtime_measurements_count")"

python3 - "$IMA" "$WORK" <<'PY'
import os, subprocess, sys, time
ima, work = sys.argv[1], sys.argv[2]
count = os.path.join(ima, "runtime_measurements_count")

def per_call(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n

def read_once(path):
    fd = os.open(path, os.O_RDONLY)
    os.read(fd, 64)
    os.close(fd)

print("latency  open+read+close runtime_measurements_count: %.1f us" % (1e6 * per_call(lambda: read_once(count), 2000)))
print("latency  `cat runtime_measurements_count` (process included): %.2f ms" % (1e3 * per_call(lambda: subprocess.run(["cat", count], stdout=subprocess.DEVNULL, check=True), 200)))
print("baseline `cat /proc/self/stat` (process included): %.2f ms" % (1e3 * per_call(lambda: subprocess.run(["cat", "/proc/self/stat"], stdout=subprocess.DEVNULL, check=True), 200)))

ascii = os.path.join(ima, "ascii_runtime_measurements_sha1")
size = os.stat(ascii).st_size
for name, cmd in [("cat", ["cat", ascii]), ("busybox cat", ["busybox", "cat", ascii]),
                  ("dd bs=1M", ["dd", "if=" + ascii, "bs=1M", "status=none"])]:
    best = None
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run(cmd + [], stdout=subprocess.PIPE, check=True).stdout
        dt = time.perf_counter() - t
        assert len(out) == size, (name, len(out), size)
        best = dt if best is None or dt < best else best
    print("throughput %-12s %d MB ascii list: %.0f MB/s (best of 3, %.3f s)" % (name, size // 10**6, size / best / 1e6, best))
for bufsize in (4096, 131072, 1 << 20):
    fd = os.open(ascii, os.O_RDONLY)
    t = time.perf_counter()
    total = 0
    while True:
        b = os.read(fd, bufsize)
        if not b:
            break
        total += len(b)
    dt = time.perf_counter() - t
    os.close(fd)
    assert total == size
    print("throughput read(2) %7d-byte reads: %.0f MB/s" % (bufsize, size / dt / 1e6))

# Append-to-visibility: a reader holding the list open at its end polls with read(2).
fifo = os.open(os.path.join(work, "events"), os.O_WRONLY)
fd = os.open(ascii, os.O_RDONLY)
os.lseek(fd, 0, os.SEEK_END)
lat = []
for i in range(50):
    target = os.path.join(work, "append-%d" % i)
    with open(target, "w") as f:
        f.write("content %d\n" % i)
    t = time.perf_counter()
    os.write(fifo, ("read %s\n" % target).encode())
    got = b""
    while not got.endswith(b"\n"):
        got += os.read(fd, 65536)
    lat.append(time.perf_counter() - t)
    assert got.rstrip().endswith(target.encode()), got
lat.sort()
print("append-to-visibility (event line -> record read by an open reader): median %.0f us, p90 %.0f us, max %.0f us"
      % (1e6 * lat[len(lat) // 2], 1e6 * lat[int(len(lat) * 0.9)], 1e6 * lat[-1]))
PY
