#!/bin/sh
# The CUDA plugin loads and passes the conformance checker; on a machine
# without a GPU or driver it reports zero devices with the CUDA error as
# the reason, and a lease cannot be had.
. "$top_srcdir/tests/lib.sh"
[ "$SURPLUS_HAVE_CUDA" = 1 ] || skip_all "built without CUDA (configure --with-cuda)"
# With a GPU here, the checker leases and scrubs it: one test at a time on
# the GPUs (see tests/gpu/lib.sh).
if ls /dev/nvidia[0-9]* > /dev/null 2>&1 && command -v flock > /dev/null 2>&1; then
    exec 8> "${TMPDIR:-/tmp}/surplus-gpu-tests.lock"
    flock 8
fi
# The CUDA runtime's own allocations are not ours to check under valgrind.
"$CHECKER" "$PLUGINS/accelerator_cuda.so" > "$tmp/out" 2>&1
status=$?
sed 's/^/# /' "$tmp/out"
ok $status "surplus-plugin-check passes on accelerator_cuda.so"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    grep -q 'device GPU-' "$tmp/out"
    ok $? "a GPU is present and is reported with a GPU-… UUID"
else
    grep -q 'no devices, and the plugin says why: CUDA: cuda' "$tmp/out"
    ok $? "without a GPU: zero devices, and the reason is the CUDA error"
fi
done_testing
