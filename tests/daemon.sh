#!/bin/sh
# surplusd end to end over its Unix socket with two tenants and simulated
# devices: authentication, tenant isolation, quotas, concurrent
# submissions, cancel, logs, kill -9 and restart, and draining on SIGTERM.
. "$top_srcdir/tests/lib.sh"

need_daemon
chmod 711 "$tmp" # the socket lives here; others may connect (with a token)
sock="$tmp/surplus.sock"
# tokens: acme -> "acme-token", beta -> "beta-token"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
beta_sha=$(printf beta-token | sha256sum | cut -d' ' -f1)
delta_sha=$(printf delta-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
printf beta-token > "$tmp/beta.tok"
printf wrong-token > "$tmp/wrong.tok"
printf delta-token > "$tmp/delta.tok"
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 2; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 330000; kill_grace = "1s"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; max_gpus = 2; max_queued = 100; },
            { name = "beta"; token_sha256 = "$beta_sha"; max_gpus = 1; max_queued = 1; },
            { name = "delta"; token_sha256 = "$delta_sha"; max_gpus = 1; max_queued = 3; } );
CONF
stop_daemon() { kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null; }
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
B() { C --token-file "$tmp/beta.tok" "$@"; }
api() { curl -s -o "$tmp/body" -w '%{http_code}' --unix-socket "$sock" "$@"; }

mkjob() { # mkjob NAME SCRIPT [MANIFEST-LINES]
    mkdir -p "$tmp/$1"
    printf '%s\n' "$2" > "$tmp/$1/run.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "run.sh"];\n%s\n' "$1" "${3:-}" > "$tmp/$1/job.conf"
    C bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2>&1
}
mkjob quick 'echo quick-output' 'outputs = ["run.sh"];'
mkjob gpu 'echo "gpus=$SURPLUS_GPUS"' 'resources = { gpus = 1; };'
mkjob slow 'echo started; sleep 30' 'resources = { gpus = 1; };'
mkjob slowcpu 'echo started; sleep 30'
mkjob fail3 'exit 3'

start_daemon
ok $? "surplusd starts and answers /healthz"

# --- authentication and isolation ---------------------------------------------
[ "$(api http://x/v1/jobs -H 'Authorization: Bearer nope')" = 401 ] &&
    grep -q '"error":"the bearer token is not valid"' "$tmp/body"
ok $? "a wrong token gets 401 with a JSON error"
C --token-file "$tmp/wrong.tok" list > /dev/null 2>&1
ok $(( $? != 77 )) "... and surplus exits 77"
[ "$(setpriv --reuid=65534 --regid=65534 --clear-groups curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" http://x/v1/jobs)" = 401 ]
ok $? "a non-root user on the socket without a token gets 401"

id_a=$(A submit --wait "$tmp/gpu.tar.zst" 2>/dev/null)
[ -n "$id_a" ] && [ "$(A status "$id_a" | sed -n 's/^state: *//p')" = succeeded ]
ok $? "tenant acme submits a job and it succeeds ($id_a)"
A logs "$id_a" | grep -q '^gpus=sim-[01]$'
ok $? "its log shows the leased simulated device"
B status "$id_a" > /dev/null 2> "$tmp/err"
ok $(( $? != 64 )) "tenant beta cannot see acme's job: $(cat "$tmp/err")"
grep -q "no job $id_a (HTTP 404)" "$tmp/err"
ok $? "... it is a 404, as if it did not exist"
[ "$(api -X DELETE http://x/v1/jobs/$id_a -H 'Authorization: Bearer beta-token')" = 404 ]
ok $? "nor cancel it (404)"
[ -z "$(B --json list | python3 -c 'import json,sys; print("".join(j["id"] for j in json.load(sys.stdin)))')" ]
ok $? "beta's list does not show acme's jobs"
C list | grep -q "$id_a"
ok $? "root on the socket (the admin) sees every job"

# --- quota -------------------------------------------------------------------------------
# beta may hold 1 GPU and queue 1 job: the first runs, the second waits
# for beta's quota, the third is refused.
B submit "$tmp/slow.tar.zst" > "$tmp/b1" 2>/dev/null
for i in $(seq 1 100); do B logs "$(cat "$tmp/b1")" 2>/dev/null | grep -q started && break; sleep 0.1; done
B submit "$tmp/slow.tar.zst" > "$tmp/b2" 2>/dev/null
B submit "$tmp/slow.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
ok $(( rc != 75 )) "past max_queued a submission gets 429 and exit 75 (got $rc): $(cat "$tmp/err")"
[ "$(B status "$(cat "$tmp/b2")" | sed -n 's/^state: *//p')" = queued ]
ok $? "a job over its tenant's max_gpus waits in the queue though a device is free"
B cancel "$(cat "$tmp/b2")" > /dev/null 2>&1
[ "$(B status "$(cat "$tmp/b2")" | sed -n 's/^state: *//p')" = cancelled ]
ok $? "a queued job is cancelled"
B cancel "$(cat "$tmp/b1")" > /dev/null 2>&1
mkjob two 'true' 'resources = { gpus = 2; };'
B submit "$tmp/two.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 69 ] && grep -q "(the tenant's max_gpus = 1), so it can never run (HTTP 422)" "$tmp/err"
ok $? "a job asking for more GPUs than max_gpus can never run: 422 and exit 69, not 75 ($rc): $(cat "$tmp/err")"
[ "$(api -H 'Authorization: Bearer beta-token' -X POST --data-binary @"$tmp/two.tar.zst" http://x/v1/jobs)" = 422 ] &&
    grep -q '"reason_code":"exceeds_max_gpus"' "$tmp/body" && grep -q '"max_gpus":1' "$tmp/body"
ok $? "... the API says reason_code exceeds_max_gpus: $(cat "$tmp/body")"

# delta may queue 3: with its one GPU taken, 16 submissions at once (each
# bundle slow to check, to widen any gap between counting and queueing)
# get exactly 3 places.
mkdir -p "$tmp/big"
for i in $(seq 1 400); do echo "$i" > "$tmp/big/f$i"; done
printf 'echo started; sleep 30\n' > "$tmp/big/run.sh"
printf 'api = 1;\nname = "big";\ncommand = ["/bin/sh", "run.sh"];\nresources = { gpus = 1; };\n' > "$tmp/big/job.conf"
C bundle create "$tmp/big" -o "$tmp/big.tar.zst" > /dev/null 2>&1
D() { curl -s -o /dev/null -w '%{http_code}\n' --unix-socket "$sock" -H 'Authorization: Bearer delta-token' "$@"; }
dr=$(C --token-file "$tmp/delta.tok" submit "$tmp/slow.tar.zst")
for i in $(seq 1 100); do C --token-file "$tmp/delta.tok" logs "$dr" 2>/dev/null | grep -q started && break; sleep 0.1; done
pids=
for i in $(seq 1 16); do
    D --data-binary @"$tmp/big.tar.zst" -H 'Content-Type: application/octet-stream' http://x/v1/jobs > "$tmp/code.$i" &
    pids="$pids $!"
done
wait $pids
n201=$(cat "$tmp"/code.* | grep -c '^201$'); n429=$(cat "$tmp"/code.* | grep -c '^429$')
nq=$(C --token-file "$tmp/delta.tok" --json list | python3 -c 'import json,sys; print(sum(1 for j in json.load(sys.stdin) if j["state"]=="queued"))')
[ "$n201" -eq 3 ] && [ "$n429" -eq 13 ] && [ "$nq" -eq 3 ]
ok $? "16 concurrent submissions against max_queued = 3: 3 accepted, 13 refused with 429, 3 queued ($n201, $n429, $nq)"
for j in $(C --token-file "$tmp/delta.tok" --json list | python3 -c 'import json,sys; print(" ".join(j["id"] for j in json.load(sys.stdin) if j["state"] in ("queued","running")))'); do
    C --token-file "$tmp/delta.tok" cancel "$j" > /dev/null 2>&1
done

# --- cancel ---------------------------------------------------------------------------------
running=$(A submit "$tmp/slow.tar.zst")
for i in $(seq 1 100); do A logs "$running" 2>/dev/null | grep -q started && break; sleep 0.1; done
A logs "$running" | grep -q started
ok $? "logs of a running job show what it wrote so far"
A logs -f "$running" > "$tmp/follow" 2>&1 &
follower=$!
sleep 0.5
A cancel "$running" > /dev/null
for i in $(seq 1 100); do
    st=$(A status "$running" | sed -n 's/^state: *//p'); [ "$st" = cancelled ] && break; sleep 0.1
done
ok $([ "$st" = cancelled ]; echo $?) "a running job is cancelled (state $st)"
sleep 0.3
[ -z "$(ps -o stat= -u 330000 -u 330001 2>/dev/null | grep -v "^Z")" ]
ok $? "... and none of its processes are left"
A cancel "$running" > /dev/null 2>&1
ok $(( $? != 64 )) "cancelling a finished job is 409 (exit 64)"
for i in $(seq 1 50); do kill -0 $follower 2>/dev/null || break; sleep 0.1; done
! kill -0 $follower 2>/dev/null && grep -q '^started$' "$tmp/follow"
ok $? "logs -f follows a running job's log and returns when it ends"

# --- concurrency: 60 submissions from 4 clients --------------------------------------------
pids=
for c in 1 2 3 4; do
    ( for i in $(seq 1 15); do A submit "$tmp/quick.tar.zst" || echo FAIL; done > "$tmp/ids.$c" 2>&1 ) &
    pids="$pids $!"
done
wait $pids
cat "$tmp"/ids.? > "$tmp/ids"
[ "$(grep -c '^[0-9a-f]\{16\}$' "$tmp/ids")" -eq 60 ] && ! grep -q FAIL "$tmp/ids" &&
    [ "$(sort -u "$tmp/ids" | wc -l)" -eq 60 ]
ok $? "60 concurrent submissions from 4 clients are all accepted, each with its own id"
for i in $(seq 1 300); do
    left=$(A --json list | python3 -c 'import json,sys; print(sum(1 for j in json.load(sys.stdin) if j["state"] in ("queued","running")))')
    [ "$left" -eq 0 ] && break; sleep 0.1
done
n_ok=$(A --json list | python3 -c 'import json,sys; print(sum(1 for j in json.load(sys.stdin) if j["name"]=="quick" and j["state"]=="succeeded"))')
[ "$n_ok" -eq 60 ]
ok $? "... and all 60 run and succeed ($n_ok)"
if command -v script > /dev/null 2>&1; then
    for cols in 80 132; do
        script -qec "stty cols $cols rows 24; '$SURPLUS' --config '$tmp/d.conf' --token-file '$tmp/acme.tok' list" /dev/null \
            < /dev/null | tr -d '\r' > "$tmp/list.$cols"
    done
    long=$(awk '{ if (length($0) > max) max = length($0) } END { print max + 0 }' "$tmp/list.80")
    [ "$long" -le 80 ] && [ "$(grep -c ' succeeded ' "$tmp/list.80")" -ge 60 ] &&
        grep -q 'SUBMITTED (UTC)' "$tmp/list.132" && ! grep -q 'SUBMITTED (UTC)' "$tmp/list.80"
    ok $? "surplus list fits an 80-column terminal (longest line $long) and uses more on a wide one"
else
    skip "surplus list fits the terminal" "no script(1) to make a terminal"
fi
q=$(head -1 "$tmp/ids")
A fetch "$q" -o "$tmp/fetched" > /dev/null 2>&1 && cmp -s "$tmp/fetched/run.sh" "$tmp/quick/run.sh"
ok $? "fetch downloads a job's outputs"

# --- every route documented in docs/openapi.yaml answers ---------------------------------
missing=
for route in $(sed -n 's/^  \(\/[^:]*\):$/\1/p' "$top_srcdir/docs/openapi.yaml"); do
    url=$(printf '%s' "$route" | sed "s/{id}/$q/; s/{path}/run.sh/")
    code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" "http://x$url")
    case "$code" in 2??) ;; *) missing="$missing $route=$code" ;; esac
done
n_routes=$(grep -c '^  /' "$top_srcdir/docs/openapi.yaml")
[ -z "$missing" ] && [ "$n_routes" -ge 9 ]
ok $? "each of the $n_routes routes in docs/openapi.yaml answers 2xx${missing:+ (failed:$missing)}"

# --- kill -9 and restart: nothing lost ---------------------------------------------------------
long=$(A submit "$tmp/slow.tar.zst")
for i in $(seq 1 100); do A logs "$long" 2>/dev/null | grep -q started && break; sleep 0.1; done
queued1=$(A submit "$tmp/quick.tar.zst"); queued2=$(A submit "$tmp/gpu.tar.zst")
before=$(C --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
kill -9 $daemon; wait $daemon 2>/dev/null
sleep 0.5
[ -z "$(ps -o stat= -u 330000 -u 330001 2>/dev/null | grep -v "^Z")" ]
ok $? "kill -9 of surplusd takes its jobs' processes down with it"
start_daemon
ok $? "surplusd restarts"
after=$(C --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$before" -eq "$after" ]
ok $? "every accepted job is still there ($before before, $after after)"
[ "$(A status "$long" | sed -n 's/^state: *//p')" = failed ] &&
    A status "$long" | grep -q "reason: *node restarted"
ok $? "the job that was running is failed with reason 'node restarted'"
for i in $(seq 1 100); do
    s1=$(A status "$queued1" | sed -n 's/^state: *//p'); s2=$(A status "$queued2" | sed -n 's/^state: *//p')
    [ "$s1" = succeeded ] && [ "$s2" = succeeded ] && break; sleep 0.1
done
[ "$s1" = succeeded ] && [ "$s2" = succeeded ]
ok $? "jobs accepted before the kill run after the restart ($s1, $s2)"
# The ledger keeps one record per record id whatever is sent to it, so
# count per job: a job that ran once is billed once.
dups=$(C usage --format json | python3 -c '
import json,sys, collections
c = collections.Counter(r["job_id"] for r in json.load(sys.stdin))
print(" ".join(k for k, v in c.items() if v > 1))')
[ -z "$dups" ]
ok $? "no job is billed twice${dups:+ (billed twice: $dups)}"

# --- metrics, routes -----------------------------------------------------------------------------
[ "$(api http://x/metrics)" = 200 ] && grep -q '^surplus_queue_length ' "$tmp/body" &&
    grep -q '^surplus_devices{state="free"} ' "$tmp/body" &&
    grep -q '^surplus_submit_to_start_seconds_bucket{le="+Inf"} ' "$tmp/body"
ok $? "GET /metrics answers in Prometheus text format"
[ "$(api http://x/v1/nothing)" = 404 ] && [ "$(api -X PUT http://x/v1/jobs)" = 405 ]
ok $? "unknown routes are 404, wrong methods 405"

# --- SIGHUP reloads tenants ----------------------------------------------------------------------
gamma_sha=$(printf gamma-token | sha256sum | cut -d' ' -f1)
printf gamma-token > "$tmp/gamma.tok"
C --token-file "$tmp/gamma.tok" list > /dev/null 2>&1
ok $(( $? != 77 )) "an unknown tenant's token is refused (77)"
sed -i "s|^tenants = ( |tenants = ( { name = \"gamma\"; token_sha256 = \"$gamma_sha\"; max_gpus = 1; max_queued = 5; },\n            |" "$tmp/d.conf"
kill -HUP $daemon
for i in $(seq 1 50); do C --token-file "$tmp/gamma.tok" list > /dev/null 2>&1 && break; sleep 0.1; done
C --token-file "$tmp/gamma.tok" list > /dev/null 2>&1
ok $? "after SIGHUP the tenant added to the configuration is accepted"
cp "$tmp/d.conf" "$tmp/d.conf.good"
printf 'tenants = 3;\n' >> "$tmp/d.conf"
kill -HUP $daemon
sleep 0.3
"$SURPLUS" --socket "$sock" --token-file "$tmp/gamma.tok" list > /dev/null 2>&1 &&
    grep -q "reload refused" "$tmp/surplusd.log"
ok $? "a configuration with an error is refused on SIGHUP and the old tenants stay"
cp "$tmp/d.conf.good" "$tmp/d.conf"
# A second tenant holding acme's token would take acme's jobs and bills.
sed "s|{ name = \"gamma\"; token_sha256 = \"$gamma_sha\"|{ name = \"gamma\"; token_sha256 = \"$acme_sha\"|" \
    "$tmp/d.conf.good" > "$tmp/dup.conf"
out=$("$SURPLUSD" -c "$tmp/dup.conf" --check-config 2>&1)
[ $? -eq 78 ] && echo "$out" | grep -q "tenant 'acme' has the same token as tenant 'gamma'"
ok $? "two tenants with one token: --check-config exits 78 naming both ($out)"
cp "$tmp/dup.conf" "$tmp/d.conf"
kill -HUP $daemon
sleep 0.3
cp "$tmp/d.conf.good" "$tmp/d.conf" # the CLI reads it too
[ "$(grep -c 'reload refused.*same token' "$tmp/surplusd.log")" -eq 1 ] &&
    A status "$id_a" > /dev/null 2>&1
ok $? "... and on SIGHUP the reload is refused; acme's token still acts as acme"
printf 'tenants = ( { name = "local"; } );\n' > "$tmp/local.conf"
out=$("$SURPLUSD" -c "$tmp/local.conf" --check-config 2>&1)
[ $? -eq 78 ] && echo "$out" | grep -q "tenant name 'local' is reserved"
ok $? "a tenant named local (root's own jobs) is refused with 78 ($out)"
cp "$tmp/d.conf.good" "$tmp/d.conf"

# --- drain on SIGTERM -------------------------------------------------------------------------------
# A drain of 6 s (room for a loaded machine): one job ends within it, the other is stopped at its end.
stop_daemon
drain_timeout=6s start_daemon
drain_timeout=
mkjob short 'echo started; sleep 1.5' 'resources = { gpus = 1; };'
d=$(A submit "$tmp/slow.tar.zst"); dshort=$(A submit "$tmp/short.tar.zst")
for i in $(seq 1 100); do
    A logs "$d" 2>/dev/null | grep -q started && A logs "$dshort" 2>/dev/null | grep -q started && break; sleep 0.1
done
kill -TERM $daemon
sleep 0.3
[ "$(api http://x/healthz)" = 503 ] && grep -q '"status":"draining"' "$tmp/body"
ok $? "on SIGTERM /healthz answers 503, status draining: $(cat "$tmp/body")"
[ "$(api -X POST --data-binary @"$tmp/quick.tar.zst" -H 'Authorization: Bearer acme-token' http://x/v1/jobs)" = 503 ] &&
    python3 -c 'import json,sys; assert "draining" in json.load(open(sys.argv[1]))["error"]' "$tmp/body"
ok $? "a submission while draining gets 503 with a JSON error: $(cat "$tmp/body")"
A submit "$tmp/quick.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
ok $(( rc != 75 )) "... and surplus submit exits 75 (got $rc): $(cat "$tmp/err")"
[ "$(api -H 'Authorization: Bearer acme-token' http://x/v1/jobs/$d)" = 200 ] && grep -q '"state":"running"' "$tmp/body"
ok $? "a running job can still be read while draining"
wait $daemon
ok $? "... and exits 0 once its jobs are stopped"
start_daemon
st=$(A status "$dshort" | sed -n 's/^state: *//p')
[ "$st" = succeeded ]
ok $? "a job that ended within the drain timeout finished ($st)"
st=$(A status "$d" | sed -n 's/^state: *//p')
[ "$st" = queued ] || [ "$st" = running ]
ok $? "a job stopped by the drain is back in the queue after the restart ($st)"
stop_daemon

# sim0_drained WORD: GET /v1/devices shows sim-0 drained, WORD in its
# reason, and sim-1 free.
sim0_drained() {
    api http://x/v1/devices > /dev/null
    python3 - "$tmp/body" "$1" <<'PY'
import json, sys
devs = {d["id"]: d for d in json.load(open(sys.argv[1]))}
d0, d1 = devs["sim-0"], devs["sim-1"]
assert d0["state"] == "drained", d0
assert sys.argv[2] in (d0.get("reason") or ""), d0
assert d1["state"] == "free", d1
PY
}
# submit_until_failed BUNDLE: submits it as acme and waits (5 s at most)
# for it to fail; $st is its last state, $tmp/st.txt its `surplus status`.
submit_until_failed() {
    j=$(A submit "$1")
    for i in $(seq 1 50); do
        st=$(A status "$j" | sed -n 's/^state: *//p'); [ "$st" = failed ] && break; sleep 0.1
    done
    A status "$j" > "$tmp/st.txt"
}
one_drained_metrics() {
    api http://x/metrics > /dev/null
    grep -q '^surplus_devices{state="drained"} 1$' "$tmp/body" &&
        grep -q '^surplus_devices{state="free"} 1$' "$tmp/body"
}

# --- a device that fails its scrub is drained, and shown so -------------------------------------
# (a fresh state directory: nothing left queued from the sections above)
sed -i 's|memory = "1M"; }|memory = "1M"; fail_scrub = 0; }|; s|/state"|/state2"|' "$tmp/d.conf"
mkjob gpu2 'echo two' 'resources = { gpus = 2; };'
start_daemon
ok $? "surplusd restarts with device sim-0 set to fail its scrub"
j=$(A submit --wait "$tmp/gpu2.tar.zst" 2> "$tmp/err")
ok $? "a job on both devices still succeeds ($(A status "$j" | sed -n 's/^\(state\|reason\): *//p' | tr '\n' ' '))"
sim0_drained scrub
ok $? "GET /v1/devices shows sim-0 drained, with the failed scrub as its reason, and sim-1 free"
C devices > "$tmp/devs.txt" 2>&1
grep -q 'sim-0.*drained' "$tmp/devs.txt" && grep -q 'sim-1.*free' "$tmp/devs.txt"
ok $? "surplus devices shows the same"
one_drained_metrics
ok $? "/metrics counts one device drained, one free"
j=$(A submit --wait "$tmp/gpu.tar.zst" 2> "$tmp/err") &&
    A logs "$j" | grep -q 'gpus=sim-1'
ok $? "a one-device job runs on the device left (sim-1)"
submit_until_failed "$tmp/gpu2.tar.zst"
[ "$st" = failed ] && grep -q 'reason:.*drained' "$tmp/st.txt"
ok $? "a two-device job can no longer be placed: failed, the reason naming the drained device"
stop_daemon

# --- a device that fails its health check before a lease is drained too ------------------------
sed -i 's|fail_scrub = 0;|fail_health = 0;|; s|/state2"|/state3"|' "$tmp/d.conf"
start_daemon
ok $? "surplusd restarts with device sim-0 set to fail its next health check"
submit_until_failed "$tmp/gpu2.tar.zst"
[ "$st" = failed ] && grep -q 'reason:.*sim-0 failed its health check' "$tmp/st.txt"
ok $? "the job given the failing device fails, the reason naming it: $(sed -n 's/^reason: *//p' "$tmp/st.txt")"
sim0_drained "health check"
ok $? "GET /v1/devices shows sim-0 drained, with the failed health check as its reason"
one_drained_metrics
ok $? "/metrics counts one device drained, one free"
j=$(A submit --wait "$tmp/gpu.tar.zst" 2> "$tmp/err") &&
    A logs "$j" | grep -q 'gpus=sim-1'
ok $? "the next one-device job runs on the other device (sim-1)"
stop_daemon

grep -q 'error' "$tmp/surplusd.log" && diag "$(grep error "$tmp/surplusd.log" | head -5)"
done_testing
