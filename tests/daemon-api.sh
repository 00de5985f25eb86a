#!/bin/sh
# surplusd's API under a hostile tenant: followers of a log do not hold
# the API's threads and are capped per tenant (429); a flood of idle
# connections from one unprivileged uid, or of bare TCP connects on HTTPS,
# leaves root and other clients served; under a low open-file limit the
# flood cannot take the descriptors a running job needs; replies to
# invalid UTF-8 are JSON errors; a tenant sees only its own job ids on
# leased devices; output downloads at once are capped per tenant.
. "$top_srcdir/tests/lib.sh"

need_daemon
command -v python3 > /dev/null || skip_all "no python3"
command -v setpriv > /dev/null || skip_all "no setpriv"
command -v prlimit > /dev/null || skip_all "no prlimit"

sock="$tmp/surplus.sock"
chmod 711 "$tmp" # the socket lives here; nobody may connect
mkdir -m 1777 "$tmp/nobody" # and says there what it saw
flood="$top_srcdir/tests/api-flood.py"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
beta_sha=$(printf beta-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
printf beta-token > "$tmp/beta.tok"
conf() { # conf API-GROUP-EXTRA
    cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 2; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 366000; kill_grace = "1s"; };
api = { socket = "$sock"; ${1:-} };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; max_gpus = 2; max_queued = 100; },
            { name = "beta"; token_sha256 = "$beta_sha"; max_gpus = 2; max_queued = 100; } );
CONF
}
pids=
stop_daemon() { kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null; }
unflood() { for p in $pids; do kill $p 2>/dev/null; wait $p 2>/dev/null; done; pids=; }
trap 'unflood; kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
B() { C --token-file "$tmp/beta.tok" "$@"; }
api() { curl -s -o "$tmp/body" -w '%{http_code}' --max-time 30 --unix-socket "$sock" "$@"; }
# secs CURL-ARGS...: how long a request took, "fail" if it did not answer
secs() {
    curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 30 \
        --unix-socket "$sock" "$@" > "$tmp/t" 2>/dev/null
    read -r code t < "$tmp/t"
    case "$code" in 2*) echo "$t" ;; *) echo fail ;; esac
}
fast() { [ "$1" != fail ] && awk -v t="$1" 'BEGIN { exit !(t < 2) }'; }
# start_flood READY ARGS...: api-flood.py in the background; waits for it
start_flood() {
    ready=$1
    shift
    rm -f "$ready"
    # its own pid (exec), and not holding the test's output open
    "$@" > /dev/null 2>> "$tmp/flood.err" &
    pids="$pids $!"
    for i in $(seq 1 600); do [ -s "$ready" ] && return 0; sleep 0.1; done
    return 1
}
count() { awk -v k="$1" '$1 == k { print $2 }' "$2" | grep . || echo 0; }
as_nobody() { exec prlimit --nofile=4096 setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
# nobody's own copy of the flood, and a python3 it may run
cp "$flood" "$tmp/nobody/api-flood.py"
nobody_py=
for p in "$(command -v python3)" /usr/bin/python3 /usr/local/bin/python3; do
    (as_nobody "$p" -c '') 2>/dev/null && { nobody_py=$p; break; }
done
[ -n "$nobody_py" ] || skip_all "no python3 that the user nobody may run"

mkjob() { # mkjob NAME SCRIPT [MANIFEST-LINES]
    mkdir -p "$tmp/$1"
    printf '%s\n' "$2" > "$tmp/$1/run.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "run.sh"];\n%s\n' "$1" "${3:-}" > "$tmp/$1/job.conf"
    C bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2>&1
}
conf
mkjob ticker 'while :; do echo tick; sleep 0.02; done' 'resources = { gpus = 1; };'
mkjob big 'head -c 8000000 /dev/zero > out.bin; echo made' 'outputs = ["out.bin"];'
mkjob writer 'for i in $(seq 1 30); do echo "line $i"; sleep 0.1; done; echo result > out.txt' 'outputs = ["out.txt"];'
running() { # running JOB: waits until its log has started
    for i in $(seq 1 100); do A logs "$1" 2>/dev/null | grep -q . && return 0; sleep 0.1; done
    return 1
}

# --- followers: defaults (16 per tenant) ------------------------------------
start_daemon
ok $? "surplusd starts with the default api limits"
job=$(A submit "$tmp/ticker.tar.zst" 2>/dev/null)
running "$job"
ok $? "acme runs a job that logs all the time ($job)"
start_flood "$tmp/f1" python3 "$flood" follow "$sock" acme-token "$job" 200 "$tmp/f1"
diag "200 followers of acme's job got: $(tr '\n' ' ' < "$tmp/f1")"
[ "$(count 200 "$tmp/f1")" -eq 16 ] && [ "$(count 429 "$tmp/f1")" -eq 184 ]
ok $? "16 followers of one tenant are served, the other 184 get 429"
api -H 'Authorization: Bearer acme-token' "http://x/v1/jobs/$job/log?follow=1" > "$tmp/code"
[ "$(cat "$tmp/code")" = 429 ] &&
    grep -q '"error":"tenant .acme. follows 16 logs, its most (api.max_followers_per_tenant)"' "$tmp/body"
ok $? "the 17th follower's 429 says why, in JSON"
t=$(secs -H 'Authorization: Bearer beta-token' http://x/v1/jobs)
fast "$t"
ok $? "beta's GET /v1/jobs answers quickly meanwhile (${t}s)"
[ "$(curl -s --max-time 10 --unix-socket "$sock" -H 'Authorization: Bearer beta-token' \
    "http://x/v1/jobs/$job/log?follow=1" -o /dev/null -w '%{http_code}')" = 404 ]
ok $? "beta cannot follow acme's job (404), and its own quota is untouched"
unflood
stop_daemon

# --- followers: 200 allowed -------------------------------------------------
conf 'max_followers_per_tenant = 256;'
start_daemon
ok $? "surplusd starts with api.max_followers_per_tenant = 256"
job=$(A submit "$tmp/ticker.tar.zst" 2>/dev/null)
running "$job"
start_flood "$tmp/f2" python3 "$flood" follow "$sock" acme-token "$job" 200 "$tmp/f2"
[ "$(count 200 "$tmp/f2")" -eq 200 ]
ok $? "200 followers of one job are all served ($(tr '\n' ' ' < "$tmp/f2"))"
t1=$(secs -H 'Authorization: Bearer beta-token' http://x/v1/jobs)
t2=$(secs http://x/healthz)
t3=$(secs http://x/v1/jobs)
fast "$t1" && fast "$t2" && fast "$t3"
ok $? "with 200 followers, beta's GET /v1/jobs (${t1}s), /healthz (${t2}s) and root's list (${t3}s) answer in under 2 s"
A logs -f "$job" > "$tmp/followed" 2>&1 &
lf=$!
sleep 1
A cancel "$job" > /dev/null 2>&1
for i in $(seq 1 100); do kill -0 $lf 2>/dev/null || break; sleep 0.1; done
! kill -0 $lf 2>/dev/null && grep -q tick "$tmp/followed"
ok $? "surplus logs -f streams the log and ends when the job ends"
kill $lf 2>/dev/null
unflood

# --- idle connections from an unprivileged uid -----------------------------
start_flood "$tmp/nobody/i1" as_nobody "$nobody_py" "$tmp/nobody/api-flood.py" idle "$sock" 1100 "$tmp/nobody/i1"
diag "1100 idle connections from nobody: $(tr '\n' ' ' < "$tmp/nobody/i1")"
[ "$(count open "$tmp/nobody/i1")" -le 32 ] && [ "$(count 429 "$tmp/nobody/i1")" -ge 1000 ]
ok $? "nobody keeps at most 32 connections; the rest are told 429 and closed"
t=$(secs http://x/v1/jobs)
fast "$t"
ok $? "root is still served during the flood (${t}s)"
t=$(secs -H 'Authorization: Bearer beta-token' http://x/v1/jobs)
fast "$t"
ok $? "a tenant presenting its token from root is still served (${t}s)"
unflood

# --- weak spots -------------------------------------------------------------
code=$(api -H "X-Surplus-Tenant: $(printf 'ac\377me')" http://x/v1/jobs)
[ "$code" = 404 ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/body"
ok $? "invalid UTF-8 in X-Surplus-Tenant gets a JSON 404 ($code)"
code=$(api -H 'Authorization: Bearer acme-token' "http://x/v1/jobs/$job/outputs/%ff%fe")
[ "$code" = 404 ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/body"
ok $? "invalid UTF-8 in an output path gets a JSON 404 ($code)"

gjob=$(A submit "$tmp/ticker.tar.zst" 2>/dev/null)
running "$gjob"
api -H 'Authorization: Bearer beta-token' http://x/v1/devices > /dev/null
! grep -q "$gjob" "$tmp/body" && grep -q '"state":"leased"' "$tmp/body"
ok $? "beta sees acme's device as leased, without acme's job id"
api -H 'Authorization: Bearer acme-token' http://x/v1/devices > /dev/null
grep -q "\"job\":\"$gjob\"" "$tmp/body"
ok $? "acme sees its own job id on the device"
api http://x/v1/devices > /dev/null
grep -q "\"job\":\"$gjob\"" "$tmp/body"
ok $? "root sees it too"
B devices | grep -q "$gjob"
[ $? -ne 0 ]
ok $? "surplus devices as beta does not show acme's job id"
A cancel "$gjob" > /dev/null 2>&1

bjob=$(A submit --wait "$tmp/big.tar.zst" 2>/dev/null)
ok $? "acme's job makes an 8 MB output ($bjob)"
start_flood "$tmp/g1" python3 "$flood" get "$sock" acme-token "/v1/jobs/$bjob/outputs/out.bin" 12 "$tmp/g1"
diag "12 stalled downloads: $(tr '\n' ' ' < "$tmp/g1")"
[ "$(count 200 "$tmp/g1")" -eq 8 ] && [ "$(count 429 "$tmp/g1")" -eq 4 ]
ok $? "8 downloads of one tenant at once are served, 4 more get 429"
B list > /dev/null 2>&1
ok $? "beta is served meanwhile"
unflood
stop_daemon

# --- a low open-file limit, a flood, and a job ------------------------------
conf
"$SURPLUSD" -c "$tmp/d.conf" --foreground --drain-timeout 1s >> "$tmp/surplusd.log" 2>&1 &
daemon=$!
prlimit --pid $daemon --nofile=256:256
for i in $(seq 1 100); do
    curl -s --unix-socket "$sock" http://x/healthz > /dev/null 2>&1 && break
    sleep 0.05
done
ok $? "surplusd runs with 256 open files at most"
wjob=$(A submit "$tmp/writer.tar.zst" 2>/dev/null)
start_flood "$tmp/nobody/i2" as_nobody "$nobody_py" "$tmp/nobody/api-flood.py" idle "$sock" 1100 "$tmp/nobody/i2"
diag "1100 idle connections from nobody at 256 files: $(tr '\n' ' ' < "$tmp/nobody/i2")"
for i in $(seq 1 200); do
    st=$(A status "$wjob" 2>/dev/null | sed -n 's/^state: *//p')
    case "$st" in succeeded|failed|timeout|cancelled|rejected) break ;; esac
    sleep 0.1
done
[ "$st" = succeeded ]
ok $? "acme's job succeeds during the flood ($st)"
[ "$(A logs "$wjob" 2>/dev/null | grep -c '^line ')" -eq 30 ]
ok $? "and keeps its whole log"
A fetch "$wjob" -o "$tmp/wout" > /dev/null 2>&1 && [ "$(cat "$tmp/wout/out.txt" 2>/dev/null)" = result ]
ok $? "and its output"
! grep -q "Too many open files" "$tmp/surplusd.log"
ok $? "surplusd never ran out of descriptors"
unflood
stop_daemon
done_testing
