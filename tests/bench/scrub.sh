#!/bin/sh
# Benchmark: the scrub that runs between tenants on a CUDA device (all free
# memory allocated, zeroed, verified on the device and freed), as a fraction
# of the device's peak memory bandwidth, and the time it takes for the
# whole device.  Target: both passes together at 85% of peak or more.
#   tests/bench/scrub.sh [BUILD_DIR]
# BENCH_SCRUB_DEVICES (CUDA ordinals, default "0"), BENCH_SCRUB_RUNS
# (default 5, after one warm-up), BENCH_SCRUB_HOST=1 to also time the
# slow path through the host.  Exit 77 without a GPU or a CUDA build;
# exit 1 when a device misses the target.
set -eu
build=${1:-.}
bench="$build/tests/bench/scrub"
runs=${BENCH_SCRUB_RUNS:-5}
target=0.85
[ -x "$bench" ] || {
    echo "scrub: $bench is not built (a build without the CUDA toolkit?)"
    exit 77
}
missed=0
for d in ${BENCH_SCRUB_DEVICES:-0}; do
    out=$("$bench" -d "$d" -n "$runs") || {
        rc=$?
        echo "$out"
        exit $rc
    }
    echo "$out"
    median=$(echo "$out" | sed -n 's/^median: //p')
    frac=$(echo "$median" | sed -n 's/.* pass_frac=\([0-9.]*\).*/\1/p')
    ms=$(echo "$median" | sed -n 's/.* scrub_ms=\([0-9.]*\).*/\1/p')
    if awk -v f="$frac" -v t="$target" 'BEGIN { exit !(f >= t) }'; then
        verdict="target met"
    else
        verdict="TARGET MISSED"
        missed=1
    fi
    echo "# device $d: zero + verify at $(awk -v f="$frac" 'BEGIN { printf "%.1f", f * 100 }')% of peak" \
        "($verdict: $(awk -v t="$target" 'BEGIN { print t * 100 }')%), whole device in $ms ms"
    echo "# for comparison, zeroing with cudaMemsetAsync instead of the kernel:"
    "$bench" -d "$d" -n "$runs" -m memset | sed -n 's/^median: /# /p'
    if [ "${BENCH_SCRUB_HOST:-0}" = 1 ]; then
        echo "# and verifying through the host (the path without kernels):"
        "$bench" -d "$d" -n 1 -m host | sed -n 's/^median: /# /p'
    fi
done
exit $missed
