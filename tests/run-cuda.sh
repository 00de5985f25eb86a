#!/bin/sh
# `surplus run` with the cuda plugin where CUDA finds no device (no GPU or
# no driver, as on CI): a gpus=1 job is refused with exit 69 and the CUDA
# error as the reason, and a gpus=0 job still runs.  With a GPU present,
# tests/gpu/ covers the rest.
. "$top_srcdir/tests/lib.sh"

[ "$SURPLUS_HAVE_CUDA" = 1 ] || skip_all "built without CUDA (configure --with-cuda)"
[ "$(id -u)" -eq 0 ] || skip_all "surplus run needs root (namespaces, job uids)"
unshare -mpinu --fork true 2>/dev/null ||
    skip_all "this host cannot create namespaces"
ls /dev/nvidia[0-9]* > /dev/null 2>&1 && skip_all "a GPU is here: see tests/gpu/"
"$CHECKER" "$PLUGINS/accelerator_cuda.so" > "$tmp/check" 2>&1
grep -q 'no devices, and the plugin says why: CUDA: cuda' "$tmp/check" ||
    skip_all "CUDA finds a device here: see tests/gpu/"

cat > "$tmp/test.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "cuda"; } );
sandbox = { uid_base = 340000; };
CONF
S() { run "$SURPLUS" --config "$tmp/test.conf" "$@"; }
mkjob() {
    mkdir -p "$tmp/$1"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "-c", "echo ran"];\nresources = { gpus = %s; };\n' \
        "$1" "$2" > "$tmp/$1/job.conf"
    S bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null
}

mkjob one 1
S run -o "$tmp/o-one" "$tmp/one.tar.zst" > "$tmp/out" 2> "$tmp/err"
ok $(( $? != 69 )) "a gpus=1 job on accelerator/cuda without a GPU exits 69"
grep -q "job 'one' needs 1 GPU(s) of model '\*'; none can serve it; accelerator/cuda discover: CUDA: cuda[A-Za-z]*: " "$tmp/err"
ok $? "... and the reason is CUDA's own error: $(cat "$tmp/err")"
! grep -q '^ran$' "$tmp/out"
ok $? "... and the job's command never ran"

mkjob none 0
S run -o "$tmp/o-none" "$tmp/none.tar.zst" > "$tmp/out" 2> "$tmp/err"
ok $? "a gpus=0 job runs with the cuda plugin configured"
grep -q '^ran$' "$tmp/out"
ok $? "... and its command ran"
done_testing
