# tests/gpu/lib.sh - what the GPU tests share.  Source it from a *.gpu
# test; each need_* exits 77 (skipped) when its condition is not met, and
# the test ends with `done_testing; exit $?` (exit 1 when a check failed).
. "$top_srcdir/tests/lib.sh"

skip77() { echo "skipped: $*"; exit 77; }

# A CUDA build of the plugin, and a GPU with its driver on this host.
need_gpu() {
    [ "$SURPLUS_HAVE_CUDA" = 1 ] || skip77 "built without CUDA (configure --with-cuda)"
    ls /dev/nvidia[0-9]* > /dev/null 2>&1 ||
        skip77 "no /dev/nvidiaN: no NVIDIA GPU or driver here"
    [ -d /proc/driver/nvidia/gpus ] ||
        skip77 "no /proc/driver/nvidia/gpus: the NVIDIA driver is not loaded"
    gpu_lock
}

# One test at a time on the GPUs (make check runs tests in parallel): two
# at once would lease the same device from two state directories, and
# each would see the other's processes holding it.  The lock is held until
# the test exits.
gpu_lock() {
    command -v flock > /dev/null 2>&1 || return 0
    exec 8> "${TMPDIR:-/tmp}/surplus-gpu-tests.lock"
    flock 8
}

# surplus run: root, namespaces.
need_root() {
    [ "$(id -u)" -eq 0 ] || skip77 "surplus run needs root (namespaces, job uids)"
    unshare -mpinu --fork true 2> /dev/null || skip77 "this host cannot create namespaces"
}

# nvcc for the test programs (SURPLUS_NVCC comes from configure).
need_nvcc() {
    NVCC=${SURPLUS_NVCC:-}
    [ -n "$NVCC" ] && [ -x "$NVCC" ] || NVCC=$(command -v nvcc 2> /dev/null) ||
        NVCC=/usr/local/cuda/bin/nvcc
    [ -x "$NVCC" ] || skip77 "no nvcc to build the test programs"
}

# build_probe DIR: tests/gpu/probe.cu built into DIR/probe, for the GPU of
# this machine, with the CUDA runtime linked in (a job brings its own).
build_probe() {
    mkdir -p "$1"
    "$NVCC" -O2 -arch=native -cudart static -o "$1/probe" \
        "$top_srcdir/tests/gpu/probe.cu" > "$tmp/nvcc.log" 2>&1 || {
        cat "$tmp/nvcc.log"
        echo "FAIL: nvcc could not build tests/gpu/probe.cu"
        exit 1
    }
}

# gpu_conf UID_BASE [EXTRA-CUDA-SETTINGS]: $tmp/gpu.conf, with the cuda
# plugin; each test has its own range of job uids.
gpu_conf() {
    cat > "$tmp/gpu.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "cuda"; ${2:-} } );
sandbox = { uid_base = $1; kill_grace = "2s"; };
CONF
}
S() { run "$SURPLUS" --config "$tmp/gpu.conf" "$@"; }

# mkjob NAME COMMAND-ARRAY [EXTRA-MANIFEST-LINES]: $tmp/NAME.tar.zst from
# the files already in $tmp/NAME/.
mkjob() {
    mkdir -p "$tmp/$1"
    printf 'api = 1;\nname = "%s";\ncommand = %s;\n%s\n' "$1" "$2" "${3:-}" \
        > "$tmp/$1/job.conf"
    S bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2> "$tmp/err" ||
        { cat "$tmp/err"; return 1; }
}

# The device node the driver gave the GPU at PCI bus id $1, from its
# /proc/driver/nvidia/gpus/<bus id>/information (domain spelt 4 or 8 digits,
# either case).
node_of_pci() {
    want=$(echo "$1" | tr 'A-F' 'a-f' | sed 's/^0*\([0-9a-f]\{4\}:\)/\1/')
    for d in /proc/driver/nvidia/gpus/*; do
        got=$(basename "$d" | tr 'A-F' 'a-f' | sed 's/^0*\([0-9a-f]\{4\}:\)/\1/')
        [ "$got" = "$want" ] || continue
        minor=$(sed -n 's/^Device Minor:[[:space:]]*\([0-9]*\).*/\1/p' "$d/information")
        [ -n "$minor" ] && echo "/dev/nvidia$minor"
        return
    done
}

# The checker's view of the devices: lines "UUID|MODEL|PCI|NODE".
plugin_devices() {
    "$CHECKER" "$PLUGINS/accelerator_cuda.so" > "$tmp/check.out" 2>&1 || {
        cat "$tmp/check.out" >&2
        echo "FAIL: surplus-plugin-check fails on accelerator_cuda.so" >&2
        exit 1
    }
    sed -n 's/^# device \(GPU-[^:]*\): \([^,]*\), .*, pci \([^,]*\), node \([^,]*\),.*/\1|\2|\3|\4/p' \
        "$tmp/check.out"
}
