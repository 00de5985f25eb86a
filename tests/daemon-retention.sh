#!/bin/sh
# What surplusd keeps in storage for ended jobs: the bundle goes when the
# job ends (a loop of submissions cancelled before they run leaves
# nothing), the log and outputs after the tenant's retention.
. "$top_srcdir/tests/lib.sh"

need_daemon
sock="$tmp/surplus.sock"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
beta_sha=$(printf beta-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
printf beta-token > "$tmp/beta.tok"
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
storage = { plugin = "local"; path = "$tmp/store"; };
retention = "4s";
accelerators = ( { plugin = "sim"; count = 1; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 350000; kill_grace = "1s"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; max_queued = 1000; },
            { name = "beta"; token_sha256 = "$beta_sha"; retention = 0; } );
CONF
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
B() { C --token-file "$tmp/beta.tok" "$@"; }
state() { C status "$1" | sed -n 's/^state: *//p'; }
objects() { find "$tmp/store" -type f -path "*$1*" | wc -l; }
wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds
    t=$1; shift
    for i in $(seq 1 $((t * 10))); do "$@" && return 0; sleep 0.1; done
    "$@"
}
mkjob() { # mkjob NAME SCRIPT [MANIFEST-LINES]
    mkdir -p "$tmp/$1"
    printf '%s\n' "$2" > "$tmp/$1/run.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "run.sh"];\n%s\n' "$1" "${3:-}" > "$tmp/$1/job.conf"
    C bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2>&1
}
mkjob out 'mkdir -p out; echo result > out/r.txt; echo done' 'outputs = ["out/"];'
mkjob hold 'sleep 30' 'resources = { gpus = 1; };'

start_daemon
ok $? "surplusd starts with retention 4s"

a=$(A submit --wait "$tmp/out.tar.zst" 2>/dev/null)
b=$(B submit --wait "$tmp/out.tar.zst" 2>/dev/null)
[ "$(state "$a")" = succeeded ] && [ "$(state "$b")" = succeeded ] &&
    A logs "$a" | grep -q done && [ "$(objects "$a")" -ge 2 ]
ok $? "two jobs end; acme's log and outputs are in storage ($(objects "$a") objects)"
gone_bundle() { [ "$(find "$tmp/store" -type f -path "*$a*" -name '*bundle*' | wc -l)" -eq 0 ]; }
wait_for 5 gone_bundle
ok $? "the ended job's bundle is removed from storage: $(find "$tmp/store" -type f -path "*$a*" | sed "s|$tmp/store/||" | tr '\n' ' ')"
gone_all() { [ "$(objects "$a")" -eq 0 ]; }
wait_for 12 gone_all
ok $? "after acme's retention (4s) its log and outputs are removed too ($(objects "$a") left)"
A logs "$a" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -ne 0 ] && grep -q "retention" "$tmp/err" &&
    [ "$(A --json status "$a" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files_removed"])')" = True ]
ok $? "surplus logs says why (exit $rc: $(cat "$tmp/err")), status shows files_removed"
B logs "$b" | grep -q done && [ "$(objects "$b")" -ge 2 ]
ok $? "beta's retention = 0 keeps its log and outputs"

# Submit and cancel in a loop: nothing stays in storage.
h=$(A submit "$tmp/hold.tar.zst")
wait_for 5 sh -c "[ \"\$($SURPLUS --config $tmp/d.conf status $h | sed -n 's/^state: *//p')\" = running ]"
ids=""
for i in $(seq 1 20); do
    id=$(A submit "$tmp/hold.tar.zst") && A cancel "$id" > /dev/null && ids="$ids $id"
done
A cancel "$h" > /dev/null
left() { n=0; for id in $ids $h; do n=$((n + $(objects "$id"))); done; echo $n; }
no_bundles() { [ "$(for id in $ids $h; do find "$tmp/store" -type f -path "*$id*" -name '*bundle*'; done | wc -l)" -eq 0 ]; }
wait_for 8 no_bundles
ok $? "21 jobs submitted and cancelled leave no bundle in storage"

kill -TERM $daemon; wait $daemon
done_testing
