#!/bin/sh
# A tenant's storage_quota: bundles, logs and outputs it holds in storage.
# Submissions past it are answered 507 with a JSON error naming what the
# tenant uses, its quota and the bundle's size, and store nothing; other
# tenants and a tenant's own override are unaffected; a job whose outputs
# do not fit ends failed saying so; what retention removes is room again;
# the count survives a restart; surplus quota and /metrics show it.
. "$top_srcdir/tests/lib.sh"

need_daemon
chmod 711 "$tmp"
sock="$tmp/surplus.sock"
for t in acme beta gamma delta; do
    printf '%s-token' $t > "$tmp/$t.tok"
    eval "${t}_sha=\$(printf %s-token $t | sha256sum | cut -d' ' -f1)"
done
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
storage = { plugin = "local"; path = "$tmp/store"; };
storage_quota = "64K";
accelerators = ( { plugin = "sim"; count = 1; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 358000; kill_grace = "1s"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; retention = "20s"; },
            { name = "beta"; token_sha256 = "$beta_sha"; storage_quota = "256K"; },
            { name = "gamma"; token_sha256 = "$gamma_sha"; },
            { name = "delta"; token_sha256 = "$delta_sha"; storage_quota = 0; } );
CONF
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
B() { C --token-file "$tmp/beta.tok" "$@"; }
G() { C --token-file "$tmp/gamma.tok" "$@"; }
D() { C --token-file "$tmp/delta.tok" "$@"; }
state() { C status "$1" | sed -n 's/^state: *//p'; }
# post TOKEN FILE [CURL-ARGS...]: POST /v1/jobs; the status on stdout,
# the body in $tmp/body
post() {
    tok=$1 file=$2; shift 2
    curl -s -o "$tmp/body" -w '%{http_code}' --unix-socket "$sock" \
        -H "Authorization: Bearer $tok" "$@" --data-binary @"$file" http://x/v1/jobs
}
json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($1)" "$2"; }
used() { # used TENANT-FN: storage_bytes from surplus quota --json
    "$1" --json quota | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["storage_bytes"])'
}
bundles() { find "$tmp/store" -type f -name bundle | wc -l; }
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
mkjob hold 'sleep 60' 'resources = { gpus = 1; };'
# 16 KiB that do not compress: a bundle of about 17 KiB, 3 of which fit
# in 64K.  It waits for the one device, so its bundle stays stored.
mkjob blob 'true' 'resources = { gpus = 1; };'
head -c 16384 /dev/urandom > "$tmp/blob/data"
C bundle create "$tmp/blob" -o "$tmp/blob.tar.zst" > /dev/null 2>&1
bsize=$(stat -c %s "$tmp/blob.tar.zst")
fit=$((65536 / bsize))
mkjob fat 'mkdir out; head -c 102400 /dev/urandom > out/big; echo wrote' 'outputs = ["out/"];'
mkjob half 'mkdir out; head -c 49152 /dev/urandom > out/half; echo wrote' 'outputs = ["out/"];'

# --- configuration --------------------------------------------------------------
sed 's/^storage_quota = .*/storage_quota = "lots";/' "$tmp/d.conf" > "$tmp/bad.conf"
"$SURPLUSD" -c "$tmp/bad.conf" --check-config > "$tmp/err" 2>&1
rc=$?
[ $rc -eq 78 ] && grep -q "bad.conf:3:.*storage_quota.*'lots' is not a size" "$tmp/err"
ok $? "storage_quota = \"lots\" is refused, exit 78 naming file:line and the setting (exit $rc: $(cat "$tmp/err"))"
sed 's/storage_quota = "256K"/storage_quota = -5/' "$tmp/d.conf" > "$tmp/bad.conf"
"$SURPLUSD" -c "$tmp/bad.conf" --check-config > "$tmp/err" 2>&1
rc=$?
line=$(grep -n 'storage_quota = -5' "$tmp/bad.conf" | cut -d: -f1)
[ $rc -eq 78 ] && grep -q "bad.conf:$line: tenants\[1\].storage_quota: .*negative" "$tmp/err"
ok $? "... and a tenant's storage_quota = -5 (exit $rc: $(cat "$tmp/err"))"

start_daemon
ok $? "surplusd starts with storage_quota = 64K (a bundle is $bsize bytes: $fit fit)"

# --- submissions up to the quota, then 507 ---------------------------------------------
h=$(D submit "$tmp/hold.tar.zst")
wait_for 5 sh -c "[ \"\$($SURPLUS --config $tmp/d.conf status $h | sed -n 's/^state: *//p')\" = running ]"
ok $? "another tenant's job holds the device: acme's jobs wait, their bundles stored"
k=0 ids=""
for i in $(seq 1 $((fit + 2))); do
    id=$(A submit "$tmp/blob.tar.zst" 2> "$tmp/err") || break
    k=$((k + 1)) ids="$ids $id"
done
[ $k -eq $fit ]
ok $? "acme's submissions are taken until its storage reaches the quota ($k of $fit)"
[ "$(used A)" -eq $((fit * bsize)) ]
ok $? "surplus quota counts their bundles ($(used A) bytes)"
st=$(post acme-token "$tmp/blob.tar.zst" -H 'Expect:' -H 'Transfer-Encoding: chunked')
[ "$st" = 507 ] && python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
used, size = int(sys.argv[2]), int(sys.argv[3])
assert j["status"] == 507, j
assert j["storage_bytes"] == used and j["storage_quota_bytes"] == 65536, j
assert j["bundle_bytes"] == size and j["tenant"] == "acme", j
e = j["error"]
assert e.startswith("storage quota exceeded:") and "storage_quota" in e, e
assert str(used) in e and "65536" in e and str(size) in e, e' "$tmp/body" $((fit * bsize)) "$bsize"
ok $? "the next is 507, its JSON naming use, quota and bundle size (got $st: $(cat "$tmp/body"))"
st=$(post acme-token "$tmp/blob.tar.zst" -H 'Expect: 100-continue')
[ "$st" = 507 ] && [ "$(json 'j["bundle_bytes"]' "$tmp/body")" = "$bsize" ]
ok $? "... refused from its Content-Length before the body, with Expect: 100-continue (got $st)"
st=$(post acme-token "$tmp/blob.tar.zst" -H 'Expect:')
[ "$st" = 507 ]
ok $? "... and without it (got $st: $(cat "$tmp/body"))"
A submit "$tmp/blob.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 75 ] && grep -q 'storage quota exceeded' "$tmp/err" && grep -q 'HTTP 507' "$tmp/err"
ok $? "surplus submit says why and exits 75, try later (exit $rc: $(cat "$tmp/err"))"
[ "$(bundles)" -eq $((fit + 1)) ] &&
    [ -z "$(find "$tmp/state/spool" "$tmp/state/pending" -type f)" ] &&
    [ "$(C list | grep -c ' blob ')" -eq $fit ]
ok $? "storage holds no object for the refused ones, no job was made ($(bundles) bundles)"

# --- other tenants ---------------------------------------------------------------------
g=$(G submit "$tmp/blob.tar.zst" 2> "$tmp/err")
ok $? "gamma, under the same default quota, still submits ($(cat "$tmp/err"))"
k=0
for i in $(seq 1 $((fit + 1))); do B submit "$tmp/blob.tar.zst" > /dev/null 2>&1 && k=$((k + 1)); done
[ $k -eq $((fit + 1)) ] && [ "$(used B)" -gt 65536 ]
ok $? "beta's own storage_quota (256K) takes more than 64K ($k bundles, $(used B) bytes)"
D submit "$tmp/fat.tar.zst" > /dev/null && [ "$(D --json quota | json 'j[0]["storage_quota_bytes"]' /dev/stdin)" = None ]
ok $? "delta's storage_quota = 0 lifts the quota"

A quota > "$tmp/out"
grep -Eq "^acme +$(awk "BEGIN{printf \"%.1f\", $fit * $bsize / 1024}") KiB +64.0 KiB +" "$tmp/out" && [ "$(wc -l < "$tmp/out")" -eq 2 ]
ok $? "surplus quota shows acme its use and quota, and no one else's: $(tail -n 1 "$tmp/out")"
C quota > "$tmp/out"
grep -q '^beta ' "$tmp/out" && grep -q '^gamma ' "$tmp/out" && grep -Eq '^delta .* - +- ' "$tmp/out"
ok $? "root sees every tenant's"
curl -s --unix-socket "$sock" http://x/metrics > "$tmp/m"
grep -q "^surplus_tenant_storage_bytes{tenant=\"acme\"} $((fit * bsize))\$" "$tmp/m" &&
    grep -q '^surplus_tenant_storage_quota_bytes{tenant="acme"} 65536$' "$tmp/m" &&
    grep -q 'surplus_tenant_storage_bytes{tenant="beta"}' "$tmp/m"
ok $? "/metrics, read by root, has every tenant's storage gauges: $(grep tenant= "$tmp/m" | tr '\n' ' ')"

# --- restart ---------------------------------------------------------------------------
# More jobs than surplusd lists one by one when it counts from storage.
for i in $(seq 1 30); do G submit "$tmp/hold.tar.zst" > /dev/null || break; done
gbefore=$(used G)
before=$(used A)
kill -TERM $daemon; wait $daemon
start_daemon && [ "$(used A)" -eq "$before" ] &&
    [ "$(post acme-token "$tmp/blob.tar.zst" -H 'Expect:')" = 507 ]
ok $? "after a restart acme still uses $(used A) bytes ($before before) and is refused"
# A job store from before the count (or a daemon killed while jobs ran)
# knows nothing of it: counted from storage at start.
kill -TERM $daemon; wait $daemon
python3 -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute("UPDATE jobs SET stored_bytes = NULL"); db.commit()' "$tmp/state/jobs.db"
start_daemon && [ "$(used A)" -eq "$before" ] && [ "$(used G)" -eq "$gbefore" ] &&
    grep -q 'job(s) hold counted from storage' "$tmp/surplusd.log"
ok $? "... and when the store did not know it, it is counted from storage at start ($(used A) bytes)"

# --- retention gives room back ------------------------------------------------------------
for id in $ids; do A cancel "$id" > /dev/null; done
empty() { [ "$(used A)" -eq 0 ]; }
wait_for 8 empty && a=$(A submit "$tmp/blob.tar.zst") && A cancel "$a" > /dev/null
ok $? "once the cancelled jobs' bundles are removed acme submits again ($(used A) bytes)"
C cancel "$h" > /dev/null; C cancel "$g" > /dev/null
wait_for 8 empty

# --- outputs -------------------------------------------------------------------------------
f=$(A submit --wait "$tmp/fat.tar.zst" 2>/dev/null)
A --json status "$f" > "$tmp/st"
[ "$(json 'j["state"]' "$tmp/st")" = failed ] &&
    json 'j["reason"]' "$tmp/st" | grep -q "^storage quota exceeded: tenant 'acme' uses .* of its storage_quota of 64.0 KiB (65536 bytes): output 'out/big' (102400 bytes) not stored"
ok $? "a job whose outputs do not fit ends failed, saying why: $(json 'j["reason"]' "$tmp/st")"
A logs "$f" > "$tmp/log"
grep -q '^wrote$' "$tmp/log" && grep -q "storage quota exceeded: .*out/big" "$tmp/log" &&
    [ -z "$(find "$tmp/store" -path "*$f/outputs*" -type f)" ]
ok $? "its log says so too, and storage holds none of its outputs"
w=$(A submit --wait "$tmp/half.tar.zst" 2>/dev/null)
settled() { [ -z "$(find "$tmp/store" -path "*$w/bundle")" ]; }
wait_for 5 settled
[ "$(state "$w")" = succeeded ] && [ "$(used A)" -gt 49152 ] &&
    A status "$w" | grep -q '^stored: *48\.[0-9] KiB' &&
    [ "$(post acme-token "$tmp/blob.tar.zst" -H 'Expect:')" = 507 ]
ok $? "outputs that fit are stored and counted: $(used A) bytes, the next bundle is refused"
wait_for 40 empty && A submit "$tmp/blob.tar.zst" > /dev/null
ok $? "once acme's retention (20s) removed them, it submits again ($(used A) bytes)"

kill -TERM $daemon; wait $daemon
done_testing
