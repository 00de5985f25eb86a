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

# Half random, half repetitive data: compresses about 2:1, like real jobs.
mkdata() { # mkdata DIR NFILES
    dir=$1; n=$2; each=$((size_mib * 1024 * 1024 / n))
    mkdir -p "$dir"
    printf 'api = 1;\nname = "bench";\ncommand = ["./run"];\n' > "$dir/job.conf"
    head -c $((each / 2)) /dev/urandom > "$work/rand"
    yes "surplus benchmark line of text 0123456789" | head -c $((each - each / 2)) > "$work/text"
    i=0
    while [ $i -lt "$n" ]; do
        d="$dir/d$((i / 256))"; [ -d "$d" ] || mkdir "$d"
        cat "$work/rand" "$work/text" > "$d/f$i"
        i=$((i + 1))
    done
}

best() { sort -n | head -n 1; }

time_tar() { # time_tar ARCHIVE FLAG
    for _ in $(seq "$runs"); do
        rm -rf "$work/x"; mkdir "$work/x"; sync
        s=$(date +%s.%N); tar -C "$work/x" $2 -xf "$1"; e=$(date +%s.%N)
        awk "BEGIN { print $e - $s }"
    done | best
}

time_surplus() { # time_surplus ARCHIVE
    for _ in $(seq "$runs"); do
        rm -rf "$work/x"; sync
        "$unpack" "$work/bench.conf" "$1" "$work/x" | cut -d' ' -f1
    done | best
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
        t=$(time_tar "$work/$name.tar.$fmt" "$flag")
        s=$(time_surplus "$work/$name.tar.$fmt")
        printf '%-22s %8d %10.3f %10.3f %8.0f %8.0f %6.2fx\n' "$name files, tar.$fmt" "$n" "$t" "$s" \
            "$(awk "BEGIN { print $size_mib * 1.048576 / $t }")" \
            "$(awk "BEGIN { print $size_mib * 1.048576 / $s }")" \
            "$(awk "BEGIN { print $t / $s }")"
    done
done
echo "($(nproc) cores, $(uname -m), $(df -T "$work" | awk 'NR==2{print $2}') at $work; ratio = GNU tar time / surplus time, best of $runs)"
