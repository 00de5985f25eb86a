#!/bin/sh
# Idempotency-Key on POST /v1/jobs: a retried submission makes one job,
# not two.  The same key and bundle get the first job back (201 and
# Idempotent-Replayed: true) without storing the bundle again; another
# bundle is 422; another tenant's equal key is its own; bad keys are 400;
# concurrent requests with one key make one job; the key survives kill -9;
# it is forgotten with the job's files.  surplus submit sends a key of its
# own, or --idempotency-key's, and retries a submission whose answer was
# lost.
. "$top_srcdir/tests/lib.sh"

need_daemon
command -v python3 > /dev/null || skip_all "no python3"

sock="$tmp/surplus.sock"
relay_sock="$tmp/relay.sock"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
beta_sha=$(printf beta-token | sha256sum | cut -d' ' -f1)
gamma_sha=$(printf gamma-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
printf gamma-token > "$tmp/gamma.tok"
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
storage = { plugin = "local"; path = "$tmp/store"; };
accelerators = ( { plugin = "sim"; count = 2; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 384000; kill_grace = "1s"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; max_queued = 100; },
            { name = "beta"; token_sha256 = "$beta_sha"; max_queued = 100; },
            { name = "gamma"; token_sha256 = "$gamma_sha"; retention = "3s"; } );
CONF
relay=
stop_daemon() { kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null; }
trap '[ -n "$relay" ] && kill $relay 2>/dev/null; kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
G() { C --token-file "$tmp/gamma.tok" "$@"; }
# post TOKEN BUNDLE [CURL-ARGS...]: POST /v1/jobs; the status on stdout,
# the body in $tmp/body, the headers in $tmp/head
post() {
    tok=$1 bundle=$2
    shift 2
    curl -s -o "$tmp/body" -D "$tmp/head" -w '%{http_code}' --max-time 30 \
        --unix-socket "$sock" -H "Authorization: Bearer $tok" \
        --data-binary @"$bundle" "$@" http://x/v1/jobs
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/body" "$1"; }
job_id() { field id; }
replayed() { grep -qi '^Idempotent-Replayed: true' "$tmp/head"; }
# jobs [TOKEN]: how many jobs the tenant (root: every tenant) has
jobs() {
    curl -s --unix-socket "$sock" ${1:+-H "Authorization: Bearer $1"} http://x/v1/jobs |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
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
mkjob hold 'echo started; sleep 60'
mkjob other 'echo other; sleep 60'
mkjob quick 'echo done'
# a bundle of about 300 KB, to upload slowly
mkjob slow 'echo slow'
head -c 300000 /dev/urandom > "$tmp/slow/noise"
C bundle create "$tmp/slow" -o "$tmp/slow.tar.zst" > /dev/null 2>&1

start_daemon
ok $? "surplusd starts"

# --- the same request twice ---------------------------------------------------
code=$(post acme-token "$tmp/hold.tar.zst" -H 'Idempotency-Key: order-1')
id1=$(job_id)
[ "$code" = 201 ] && [ -n "$id1" ] && ! replayed
ok $? "a submission with Idempotency-Key order-1 makes job $id1 (201, not replayed)"
code=$(post acme-token "$tmp/hold.tar.zst" -H 'Idempotency-Key: order-1')
[ "$code" = 201 ] && [ "$(job_id)" = "$id1" ] && replayed
ok $? "the same submission again gets job $id1 back ($code, $(grep -i '^Idempotent' "$tmp/head" | tr -d '\r'))"
[ "$(field tenant)" = acme ] && [ "$(field name)" = hold ]
ok $? "... with the job's JSON, as the first answer had"
[ "$(jobs acme-token)" -eq 1 ]
ok $? "acme has one job, not two ($(jobs acme-token))"
[ "$(bundles)" -eq 1 ] && [ -z "$(ls -A "$tmp/state/spool")" ]
ok $? "storage holds one bundle ($(bundles)) and the spool nothing"

code=$(post acme-token "$tmp/other.tar.zst" -H 'Idempotency-Key: order-1')
[ "$code" = 422 ] && grep -q '"error":"Idempotency-Key reused with a different request' "$tmp/body"
ok $? "the key with another bundle is 422: $(cat "$tmp/body")"
[ "$(jobs acme-token)" -eq 1 ] && [ "$(bundles)" -eq 1 ]
ok $? "... and makes no job and stores nothing"

code=$(post beta-token "$tmp/hold.tar.zst" -H 'Idempotency-Key: order-1')
idb=$(job_id)
[ "$code" = 201 ] && [ -n "$idb" ] && [ "$idb" != "$id1" ] && ! replayed
ok $? "tenant beta's key order-1 is its own: a new job ($idb)"

# --- keys that are not keys -----------------------------------------------------
bad_key() { # bad_key WHAT CURL-HEADER-ARGS...
    what=$1
    shift
    code=$(post acme-token "$tmp/quick.tar.zst" "$@")
    [ "$code" = 400 ] && grep -q '"error":"Idempotency-Key ' "$tmp/body"
    ok $? "$what is 400 naming the header: $(cat "$tmp/body")"
}
bad_key "an empty key" -H 'Idempotency-Key;'
bad_key "a key of 300 bytes" -H "Idempotency-Key: $(head -c 300 /dev/zero | tr '\0' k)"
bad_key "a key with a control character" -H "Idempotency-Key: $(printf 'a\001b')"
bad_key "a key with a byte past ASCII" -H "Idempotency-Key: $(printf 'a\377b')"
bad_key "two keys" -H 'Idempotency-Key: a' -H 'Idempotency-Key: b'
code=$(post acme-token "$tmp/quick.tar.zst" -H "Idempotency-Key: $(head -c 255 /dev/zero | tr '\0' k)")
[ "$code" = 201 ]
ok $? "a key of 255 bytes is taken ($code)"
[ "$(jobs acme-token)" -eq 2 ]
ok $? "the refused keys made no job ($(jobs acme-token) in all)"

# --- concurrent requests with one key -------------------------------------------
before=$(jobs acme-token)
burst=
for i in 1 2 3 4 5 6 7 8; do
    curl -s -o "$tmp/c$i" -w '%{http_code}\n' --max-time 30 --unix-socket "$sock" \
        -H 'Authorization: Bearer acme-token' -H 'Idempotency-Key: burst' \
        --data-binary @"$tmp/hold.tar.zst" http://x/v1/jobs > "$tmp/code$i" &
    burst="$burst $!"
done
wait $burst
codes=$(cat "$tmp"/code? | sort | uniq -c | tr -s ' \n' ' ')
ids=$(for i in 1 2 3 4 5 6 7 8; do
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("id", ""))' "$tmp/c$i"
done | grep . | sort -u)
[ "$(jobs acme-token)" -eq $((before + 1)) ] && [ "$(echo "$ids" | wc -l)" -eq 1 ] &&
    ! cat "$tmp"/code? | grep -qv '^\(201\|409\)$'
ok $? "8 concurrent submissions with one key make one job ($ids; answers:$codes)"

# A request with a key is under way from its headers on: a slow upload
# holds the key, and another request with it meanwhile is 409.
curl -s -o "$tmp/slow.body" -w '%{http_code}' --max-time 60 --unix-socket "$sock" \
    -H 'Authorization: Bearer acme-token' -H 'Idempotency-Key: slow-1' -H 'Expect:' \
    --limit-rate 50k --data-binary @"$tmp/slow.tar.zst" http://x/v1/jobs > "$tmp/slow.code" &
slowpid=$!
sleep 1
code=$(post acme-token "$tmp/slow.tar.zst" -H 'Idempotency-Key: slow-1')
[ "$code" = 409 ] && grep -q '"error":"a request with this Idempotency-Key is in progress' "$tmp/body"
ok $? "a second request while the first still uploads is 409: $(cat "$tmp/body")"
wait $slowpid
slow_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp/slow.body" 2>/dev/null)
code=$(post acme-token "$tmp/slow.tar.zst" -H 'Idempotency-Key: slow-1')
[ "$(cat "$tmp/slow.code")" = 201 ] && [ "$code" = 201 ] && replayed && [ "$(job_id)" = "$slow_id" ]
ok $? "the first one made its job ($slow_id), which a retry then gets"

# --- surplus submit -------------------------------------------------------------
s1=$(A submit --idempotency-key cli-1 "$tmp/hold.tar.zst" 2>/dev/null)
s2=$(A submit "$tmp/hold.tar.zst" --idempotency-key cli-1 2> "$tmp/err")
[ -n "$s1" ] && [ "$s1" = "$s2" ] && grep -q "job $s1 was made by an earlier request" "$tmp/err"
ok $? "surplus submit --idempotency-key cli-1 twice prints the same job ($s1, $s2)"
A submit --idempotency-key=cli-1 "$tmp/other.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 65 ] && grep -q "Idempotency-Key reused with a different request" "$tmp/err"
ok $? "... and with another bundle exits 65 ($rc): $(cat "$tmp/err")"
A submit --idempotency-key '' "$tmp/hold.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 64 ] && grep -q -- "--idempotency-key" "$tmp/err"
ok $? "an empty --idempotency-key is a usage error ($rc)"
n1=$(A submit "$tmp/quick.tar.zst" 2>/dev/null)
n2=$(A submit "$tmp/quick.tar.zst" 2>/dev/null)
[ -n "$n1" ] && [ -n "$n2" ] && [ "$n1" != "$n2" ]
ok $? "without --idempotency-key, two runs of surplus submit are two jobs ($n1, $n2)"

# The answer of a submission is lost after its job was made, as when
# surplusd is killed before its 201 goes out: surplus submit tries again
# with the same key and gets that job.
python3 "$top_srcdir/tests/lose-answer.py" "$relay_sock" "$sock" "$tmp/relay.log" \
    > /dev/null 2>&1 &
relay=$!
wait_for 10 grep -q ready "$tmp/relay.log"
before=$(jobs acme-token)
lost=$(C --socket "$relay_sock" --token-file "$tmp/acme.tok" submit "$tmp/hold.tar.zst" 2> "$tmp/err")
rc=$?
diag "$(tr '\n' ' ' < "$tmp/err")"
grep -q "lost: HTTP/1.1 201" "$tmp/relay.log" && [ $rc -eq 0 ] && [ -n "$lost" ]
ok $? "surplus submit whose 201 was lost tries again and prints the job ($lost, exit $rc)"
[ "$(jobs acme-token)" -eq $((before + 1)) ] &&
    curl -s --unix-socket "$sock" -H 'Authorization: Bearer acme-token' http://x/v1/jobs |
    python3 -c 'import json,sys; assert json.load(sys.stdin)[-1]["id"] == sys.argv[1]' "$lost"
ok $? "... one job was made, and it is the one printed"
kill $relay 2>/dev/null
wait $relay 2>/dev/null
relay=

# --- kill -9 and restart ------------------------------------------------------------
code=$(post acme-token "$tmp/hold.tar.zst" -H 'Idempotency-Key: crash-1')
idc=$(job_id)
[ "$code" = 201 ]
ok $? "a submission with key crash-1 makes job $idc"
kill -9 $daemon
wait $daemon 2>/dev/null
start_daemon
ok $? "surplusd is killed with SIGKILL and started again"
code=$(post acme-token "$tmp/hold.tar.zst" -H 'Idempotency-Key: crash-1')
[ "$code" = 201 ] && replayed && [ "$(job_id)" = "$idc" ]
ok $? "after the restart the key still gets job $idc ($code)"
s3=$(A submit --idempotency-key crash-1 "$tmp/hold.tar.zst" 2>/dev/null)
[ "$s3" = "$idc" ]
ok $? "... and so does surplus submit --idempotency-key crash-1 ($s3)"
curl -s --unix-socket "$sock" http://x/metrics | grep -q '^surplus_jobs_replayed_total [1-9]'
ok $? "/metrics counts the replays: $(curl -s --unix-socket "$sock" http://x/metrics | grep '^surplus_jobs_replayed_total')"

# --- the key goes with the job's files ----------------------------------------------
# acme's jobs would hold the node's slots for a minute
curl -s --unix-socket "$sock" http://x/v1/jobs |
    python3 -c 'import json,sys; print("\n".join(j["id"] for j in json.load(sys.stdin) if j["state"] in ("queued", "running")))' |
    while read -r id; do curl -s -o /dev/null -X DELETE --unix-socket "$sock" "http://x/v1/jobs/$id"; done
code=$(post gamma-token "$tmp/quick.tar.zst" -H 'Idempotency-Key: daily')
idg=$(job_id)
ended() { [ "$(G --json status "$idg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = succeeded ]; }
wait_for 10 ended
code=$(post gamma-token "$tmp/quick.tar.zst" -H 'Idempotency-Key: daily')
[ "$code" = 201 ] && replayed && [ "$(job_id)" = "$idg" ] && [ "$(field state)" = succeeded ]
ok $? "after its job ended, the key still gets it, as it is now ($idg, $(field state))"
files_gone() { [ "$(find "$tmp/store" -type f -path "*$idg*" | wc -l)" -eq 0 ]; }
wait_for 20 files_gone
ok $? "gamma's retention (3s) removes the job's files from storage"
code=$(post gamma-token "$tmp/quick.tar.zst" -H 'Idempotency-Key: daily')
[ "$code" = 201 ] && ! replayed && [ "$(job_id)" != "$idg" ]
ok $? "then the key is forgotten with them: it makes a new job ($(job_id))"

stop_daemon
done_testing
