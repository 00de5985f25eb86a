#!/bin/sh
# Benchmark: bundle extraction throughput against GNU tar on the same files.
# Two 1 GiB data sets (many small files; a few large files), each packed as
# tar.gz and tar.zst; each extraction is timed BENCH_RUNS times (default 3)
# and the best run kept.  Prints one table row per case.
#   tests/bench/unpack.sh [BUILD_DIR]      (run from the source tree)
set -eu
build=${1:-.}
unpack="$build/tests/bench/unpack"
runs=${BENCH_RUNS:-3}
size_mib=${BENCH_MIB:-1024}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/surplus-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
[ -x "$unpack" ] || { echo "build $unpack first (make -C $build tests/bench/unpack)" >&2; exit 1; }

printf 'limits = { max_bundle_bytes = "8G"; max_unpacked_bytes = "8G"; max_entries = 1000000; };\n' > "$work/bench.conf"

# Every file distinct (half random bytes, half text), so the archives
# compress about 2:1 and no compressor can deduplicate across files.
mkdata() { # mkdata DIR NFILES
    python3 - "$1" "$2" "$size_mib" <<'PY'
import os, sys
d, n, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
each = mib * 1024 * 1024 // n
os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "job.conf"), "w") as f:
    f.write('api = 1;\nname = "bench";\ncommand = ["./run"];\n')
line = b"surplus benchmark line of text 0123456789\n"
text = (line * (each // len(line) + 1))[: each - each // 2]
for i in range(n):
    sub = os.path.join(d, "d%d" % (i // 256))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%d" % i), "wb") as f:
        f.write(os.urandom(each // 2))
        f.write(text)
PY
}

best() { sort -n | head -n 1; }

# Each run starts from a removed tree, flushed to disk, with the page cache
# dropped when we may; tar and surplus runs alternate so that background
# write-back of one run burdens both alike.
settle() {
    rm -rf "$work/x"; sync
    [ -w /proc/sys/vm/drop_caches ] && echo 3 > /proc/sys/vm/drop_caches || true
}

run_tar() { # run_tar ARCHIVE FLAG
    settle; mkdir "$work/x"
    s=$(date +%s.%N); tar -C "$work/x" $2 -xf "$1"; e=$(date +%s.%N)
    awk "BEGIN { print $e - $s }"
}

run_surplus() { # run_surplus ARCHIVE
    settle
    "$unpack" "$work/bench.conf" "$1" "$work/x" | cut -d' ' -f1
}

printf '%-22s %8s %10s %10s %8s %8s %7s\n' case files "tar s" "surplus s" "tar MB/s" "ours MB/s" ratio
for set in small:65536 large:4; do
    name=${set%%:*}; n=${set#*:}
    rm -rf "$work/src"; mkdata "$work/src" "$n"
    (cd "$work/src" && tar -cf - . | gzip -1 > "$work/$name.tar.gz")
    (cd "$work/src" && tar -cf - . | zstd -q -3 -T0 > "$work/$name.tar.zst")
    rm -rf "$work/src"
    for fmt in gz zst; do
        flag=-z; [ $fmt = zst ] && flag=--zstd
        : > "$work/t"; : > "$work/s"
        for _ in $(seq "$runs"); do
            run_tar "$work/$name.tar.$fmt" "$flag" >> "$work/t"
            run_surplus "$work/$name.tar.$fmt" >> "$work/s"
        done
        t=$(best < "$work/t"); s=$(best < "$work/s")
        printf '%-22s %8d %10.3f %10.3f %8.0f %8.0f %6.2fx\n' "$name files, tar.$fmt" "$n" "$t" "$s" \
            "$(awk "BEGIN { print $size_mib * 1.048576 / $t }")" \
            "$(awk "BEGIN { print $size_mib * 1.048576 / $s }")" \
            "$(awk "BEGIN { print $t / $s }")"
    done
done
echo "($(nproc) cores, $(uname -m), $(df -T "$work" | awk 'NR==2{print $2}') at $work; ratio = GNU tar time / surplus time, best of $runs)"
