#!/bin/sh
# Benchmark: one trivial job (/bin/true) end to end through the runner, with
# the full sandbox (mount, pid, ipc, uts and network namespaces, pivot_root,
# private /dev, /tmp and /proc, a job uid, no capabilities), its log stored
# and its usage record written.  BENCH_LAUNCH_RUNS runs (default 200) after
# 10 warm-up runs; prints the median, p90 and the median of each stage.
#   tests/bench/launch.sh [BUILD_DIR]      (run from the source tree, as root)
set -eu
build=${1:-.}
launch="$build/tests/bench/launch"
surplus="$build/surplus"
runs=${BENCH_LAUNCH_RUNS:-200}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/surplus-launch.XXXXXX")
trap 'rm -rf "$work"' EXIT
[ -x "$launch" ] || { echo "build $launch first (make -C $build tests/bench/launch)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "launch: needs root (namespaces, job uids)" >&2; exit 77; }
: "${SURPLUS_PLUGIN_PATH:=$build/plugins/.libs}"
: "${SURPLUS_SANDBOX_INIT:=$build/surplus-sandbox-init}"
export SURPLUS_PLUGIN_PATH SURPLUS_SANDBOX_INIT

printf 'state_dir = "%s/state";\n' "$work" > "$work/bench.conf"
mkdir "$work/job"
printf 'api = 1;\nname = "true";\ncommand = ["/bin/true"];\n' > "$work/job/job.conf"
"$surplus" --config "$work/bench.conf" bundle create "$work/job" -o "$work/true.tar.zst" > /dev/null
"$launch" "$work/bench.conf" "$work/true.tar.zst" 10 > /dev/null 2>&1
echo "# $(nproc) CPUs, $(uname -sr), $runs runs of /bin/true"
"$launch" "$work/bench.conf" "$work/true.tar.zst" "$runs" 2>&1 |
    grep -v 'warning: no cgroup v2 limits'

# The same machine's floor and a peer, for scale: /bin/true alone, and
# bubblewrap with a comparable sandbox (when installed).
echo "# for comparison, posix_spawn + wait on this machine:"
printf 'plain /bin/true: '
"$launch" --spawn "$runs" /bin/true
if command -v bwrap > /dev/null; then
    printf 'bwrap --unshare-all, ro /, private /dev /proc /tmp, uid 200000: '
    "$launch" --spawn "$runs" bwrap --unshare-all --die-with-parent \
        --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp \
        --uid 200000 --gid 200000 /bin/true
fi
if command -v unshare > /dev/null; then
    printf 'unshare -mpinuf /bin/true: '
    "$launch" --spawn "$runs" unshare -mpinuf /bin/true
fi
