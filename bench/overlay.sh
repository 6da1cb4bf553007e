#!/usr/bin/env bash
# Overlay throughput against native, measured in the same run:
#   1 GiB sequential read (warm page cache), 20,000 x 4 KiB files read once each (warm and
#   cold: caches dropped when root), stat of all 20,000 files.
# Contenders: native lower dir, imafs overlay with kernel passthrough, imafs without
# passthrough (data through the daemon), fuse-overlayfs (when installed).
# Usage: bench/overlay.sh [SIZE_MIB] [NFILES]     (defaults 1024 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
nfiles=${2:-20000}
cargo build --release --quiet --bin imafs
bin=$PWD/target/release/imafs
work=$(mktemp -d /var/tmp/imafs-bench.XXXXXX)
mounts=()
pids=()
cleanup() {
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

lower=$work/lower
mkdir -p "$lower/small"
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$lower/big"
python3 - "$lower/small" "$nfiles" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
block = os.urandom(4096)
for i in range(n):
    sub = os.path.join(d, "%03d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%05d" % i), "wb") as f:
        f.write(block)
PY

wait_mounted() {
    for _ in $(seq 1 500); do
        if grep -q " $1 " /proc/self/mountinfo; then return 0; fi
        sleep 0.02
    done
    echo "mount of $1 did not appear" >&2
    exit 1
}

declare -A root
root[native]=$lower
mkdir -p "$work/pt" "$work/nopt"
"$bin" overlay-mount --lower "$lower" --mount "$work/pt" & pids+=($!)
mounts+=("$work/pt"); wait_mounted "$work/pt"; root[passthrough]=$work/pt
"$bin" overlay-mount --lower "$lower" --mount "$work/nopt" --no-passthrough & pids+=($!)
mounts+=("$work/nopt"); wait_mounted "$work/nopt"; root[no-passthrough]=$work/nopt
contenders=(native passthrough no-passthrough)
if command -v fuse-overlayfs >/dev/null; then
    mkdir -p "$work/fo" "$work/fo-upper" "$work/fo-work"
    fuse-overlayfs -o "lowerdir=$lower,upperdir=$work/fo-upper,workdir=$work/fo-work" "$work/fo"
    mounts+=("$work/fo"); wait_mounted "$work/fo"; root[fuse-overlayfs]=$work/fo
    contenders+=(fuse-overlayfs)
fi

can_drop=0
if [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ]; then can_drop=1; fi
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

now() { date +%s.%N; }
# Best of N runs of a command (seconds).
best() {
    local n=$1; shift
    local best=
    for _ in $(seq 1 "$n"); do
        local t0 t1 d
        t0=$(now); "$@"; t1=$(now)
        d=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$best" ] || [ "$(echo "$d < $best" | bc -l)" = 1 ]; then best=$d; fi
    done
    echo "$best"
}
read_big() { dd if="$1/big" of=/dev/null bs=1M status=none; }
read_small() { find "$1/small" -type f -print0 | xargs -0 cat > /dev/null; }
stat_small() { find "$1/small" -type f -printf '%s %i %m\n' > /dev/null; }
read_small_cold() { drop; read_small "$1"; }

declare -A res
for c in "${contenders[@]}"; do
    r=${root[$c]}
    read_big "$r"   # warm
    res[$c,big]=$(best 3 read_big "$r")
    read_small "$r"
    res[$c,small_warm]=$(best 3 read_small "$r")
    res[$c,stat]=$(best 3 stat_small "$r")
    if [ $can_drop = 1 ]; then
        res[$c,small_cold]=$(best 2 read_small_cold "$r")
    else
        res[$c,small_cold]=nan
    fi
done

echo "imafs overlay benchmark: ${size_mib} MiB file, ${nfiles} x 4 KiB files, kernel $(uname -r), $(nproc) CPUs"
printf '%-16s %12s %8s %12s %8s %12s %8s %12s %8s\n' contender "big_read_s" ratio "small_warm_s" ratio "small_cold_s" ratio "stat_s" ratio
for c in "${contenders[@]}"; do
    line=$(printf '%-16s' "$c")
    for k in big small_warm small_cold stat; do
        v=${res[$c,$k]}; n=${res[native,$k]}
        if [ "$v" = nan ]; then
            line+=$(printf ' %12s %8s' n/a n/a)
        else
            ratio=$(echo "$v / $n" | bc -l)
            line+=$(printf ' %12.3f %8.2f' "$v" "$ratio")
        fi
    done
    echo "$line"
done
mib_s() { echo "$size_mib / $1" | bc -l; }
for c in "${contenders[@]}"; do
    printf '%-16s big read %8.0f MiB/s\n' "$c" "$(mib_s "${res[$c,big]}")"
done
echo "(ratio = time / native time; lower is better; best of 3 runs, cold best of 2)"
