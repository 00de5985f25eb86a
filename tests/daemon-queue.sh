#!/bin/sh
# A queued job says why it waits (reason and reason_code in the job JSON,
# `surplus status`): its tenant at max_gpus, or waiting for devices with
# the time the scheduler expects them free.  GET /v1/jobs filters by
# state (repeated or comma-separated), since (RFC 3339 or unix seconds)
# and tenant (root only; a tenant asking for another gets 403).  While
# the daemon drains, queued jobs say so.
. "$top_srcdir/tests/lib.sh"

need_daemon
sock="$tmp/surplus.sock"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
beta_sha=$(printf beta-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
printf beta-token > "$tmp/beta.tok"
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 1; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 388000; kill_grace = "1s"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; max_gpus = 1; },
            { name = "beta"; token_sha256 = "$beta_sha"; } );
CONF
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
B() { C --token-file "$tmp/beta.tok" "$@"; }
# api [CURL-ARGS...] URL: the status code; the body in $tmp/body
api() { curl -s -o "$tmp/body" -w '%{http_code}' --unix-socket "$sock" "$@"; }
# field ID EXPR: python3 over GET /v1/jobs/ID (as root), in `j`
field() { curl -s --unix-socket "$sock" "http://x/v1/jobs/$1" | python3 -c "import json, sys; j = json.load(sys.stdin); print($2)"; }
count() { python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$tmp/body"; }
mkdir -p "$tmp/hold"
printf 'sleep 120\n' > "$tmp/hold/run.sh"
printf 'api = 1;\nname = "hold";\ncommand = ["/bin/sh", "run.sh"];\nresources = { gpus = 1; walltime = "10m"; };\n' > "$tmp/hold/job.conf"
C bundle create "$tmp/hold" -o "$tmp/hold.tar.zst" > /dev/null 2>&1

start_daemon
ok $? "surplusd starts"
t0=$(date +%s)

j1=$(A submit "$tmp/hold.tar.zst")
for i in $(seq 1 300); do [ "$(field "$j1" 'j["state"]')" = running ] && break; sleep 0.1; done
[ "$(field "$j1" 'j["state"]')" = running ]
ok $? "acme's first job runs on the only device"

j2=$(A submit "$tmp/hold.tar.zst")
j3=$(B submit "$tmp/hold.tar.zst")
for i in $(seq 1 300); do
    [ "$(field "$j2" 'j.get("reason_code")')" != None ] &&
        [ "$(field "$j3" 'j.get("reason_code")')" != None ] && break
    sleep 0.1
done
r2=$(field "$j2" 'j["state"], j.get("reason_code"), j.get("reason")')
[ "$r2" = "queued tenant_max_gpus tenant 'acme' holds 1 GPU(s) of its max_gpus of 1" ]
ok $? "acme's second job waits for its tenant's max_gpus ($r2)"

r3=$(field "$j3" 'j["state"], j.get("reason_code"), j.get("reason")')
echo "$r3" | grep -Eq "^queued resources waiting for 1 GPU \(expected free at 20[0-9-]{8}T[0-9:.]{15}Z\)$"
ok $? "beta's job waits for the device, with when it is expected free ($r3)"
# It is expected when acme's job reaches its walltime, 10 minutes on.
at=$(field "$j3" 'j["reason"].split("free at ")[1].rstrip(")")')
exp=$(date -u -d "$at" +%s 2>/dev/null || echo 0)
[ "$exp" -ge $((t0 + 590)) ] && [ "$exp" -le $(($(date +%s) + 610)) ]
ok $? "the expected time is the running job's end by its walltime ($at)"

out=$(run "$SURPLUS" --config "$tmp/d.conf" --token-file "$tmp/beta.tok" status "$j3")
echo "$out" | grep -q '^reason: *waiting for 1 GPU (expected free at .*) \[resources\]$'
ok $? "surplus status shows why it waits: $(echo "$out" | grep '^reason')"

# --- filters -----------------------------------------------------------------
[ "$(api 'http://x/v1/jobs?state=queued')" = 200 ] && [ "$(count)" = 2 ]
ok $? "state=queued: the two queued jobs"
[ "$(api 'http://x/v1/jobs?state=queued,running')" = 200 ] && [ "$(count)" = 3 ] &&
    [ "$(api 'http://x/v1/jobs?state=queued&state=running')" = 200 ] && [ "$(count)" = 3 ]
ok $? "state=queued,running and state=queued&state=running: all three"
[ "$(api 'http://x/v1/jobs?state=succeeded')" = 200 ] && [ "$(count)" = 0 ]
ok $? "state=succeeded: none"
st=$(api 'http://x/v1/jobs?state=queued,bogus')
[ "$st" = 400 ] && grep -q "unknown job state 'bogus'" "$tmp/body"
ok $? "an unknown state is 400 naming it ($st: $(cat "$tmp/body"))"

[ "$(api "http://x/v1/jobs?since=$((t0 + 3600))")" = 200 ] && [ "$(count)" = 0 ] &&
    [ "$(api "http://x/v1/jobs?since=$((t0 - 60))")" = 200 ] && [ "$(count)" = 3 ]
ok $? "since=unix seconds: jobs submitted at or after"
sub3=$(field "$j3" 'j["submitted_at"]')
[ "$(api "http://x/v1/jobs?since=$sub3")" = 200 ] && [ "$(count)" = 1 ] &&
    [ "$(api "http://x/v1/jobs?since=$(date -u -d @$((t0 - 60)) +%Y-%m-%dT%H:%M:%S)%2B00:00")" = 200 ] && [ "$(count)" = 3 ]
ok $? "since=RFC 3339, with Z or an offset: jobs submitted at or after"
st=$(api 'http://x/v1/jobs?since=yesterday')
[ "$st" = 400 ] && grep -q "since: 'yesterday' is not an RFC 3339 time" "$tmp/body"
ok $? "a bad since is 400 ($st: $(cat "$tmp/body"))"

[ "$(api 'http://x/v1/jobs?tenant=beta')" = 200 ] && [ "$(count)" = 1 ]
ok $? "root: tenant=beta lists beta's job only"
st=$(api -H 'Authorization: Bearer acme-token' 'http://x/v1/jobs?tenant=beta')
[ "$st" = 403 ] && grep -q "tenant 'acme' may list only its own jobs" "$tmp/body"
ok $? "acme asking for beta's jobs gets 403 ($st: $(cat "$tmp/body"))"
[ "$(api -H 'Authorization: Bearer acme-token' 'http://x/v1/jobs?tenant=acme&state=queued')" = 200 ] && [ "$(count)" = 1 ]
ok $? "acme asking for its own queued jobs gets them"
l=$(curl -s --unix-socket "$sock" -H 'Authorization: Bearer beta-token' 'http://x/v1/jobs?state=queued' |
    python3 -c 'import json, sys; print([(j["reason_code"]) for j in json.load(sys.stdin)])')
[ "$l" = "['resources']" ]
ok $? "the list gives each queued job's reason_code too ($l)"

# --- draining: queued jobs say so ------------------------------------------------
# A restart puts acme's running job back in the queue (a drain requeues
# it); with a long drain the daemon answers while it waits for it.
kill -TERM $daemon; wait $daemon
# A loaded machine (the whole suite under valgrind beside it) may take a
# while to restart the daemon and the job: the drain below lasts only as
# long as a job runs, so the job must be running first.
drain_timeout=60s start_daemon ||
    for i in $(seq 1 600); do curl -s --unix-socket "$sock" http://x/healthz > /dev/null 2>&1 && break; sleep 0.1; done
for i in $(seq 1 1200); do [ "$(field "$j1" 'j["state"]')" = running ] && break; sleep 0.1; done
s1=$(field "$j1" 'j["state"]')
[ "$s1" = running ]
ok $? "after a restart acme's requeued job runs again ($s1)"
kill -TERM $daemon
for i in $(seq 1 300); do
    [ "$(field "$j3" 'j.get("reason_code")')" = draining ] && break; sleep 0.1
done
r3=$(field "$j3" 'j["state"], j.get("reason_code"), j.get("reason")')
[ "$r3" = "queued draining the node is draining: no job starts until surplusd is started again" ]
ok $? "while the daemon drains, a queued job says so ($r3)"
[ -n "$r3" ] || tail -n 15 "$tmp/surplusd.log" | sed 's/^/# /'
C cancel "$j1" > /dev/null
wait $daemon
done_testing
