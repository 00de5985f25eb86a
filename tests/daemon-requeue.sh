#!/bin/sh
# `requeue = true;` in job.conf: a job that was running when surplusd was
# killed runs again after the restart (and is billed once, for the attempt
# that ran to its end), while one without it fails with "node restarted";
# a job that keeps taking its node down is requeued at most 3 times; and a
# requeue that is not true or false is refused with the file, line and key.
. "$top_srcdir/tests/lib.sh"

need_daemon
sock="$tmp/surplus.sock"
uid_base=353000
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 2; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = $uid_base; kill_grace = "1s"; };
api = { socket = "$sock"; };
accounting = { plugin = "sqlite"; busy_timeout = "30s"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; } );
CONF
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
# The one-shot checks run under valgrind in `make check-valgrind`.
V() { run "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
state() { A status "$1" | sed -n 's/^state: *//p'; }
reason() { A status "$1" | sed -n 's/^reason: *//p'; }
started() { # waits until job $1 has written "started" $2 times (default 1)
    for i in $(seq 1 200); do
        if [ "$(A logs "$1" 2>/dev/null | grep -c '^started$')" -ge "${2:-1}" ]; then
            # the uid it runs as (each run may get another), for
            # no_job_processes
            stat -c %u "$tmp/state/jobs/$1/disk/work" "$tmp/state/jobs/$1/work" 2>/dev/null | head -n 1 >> "$tmp/uids"
            return 0
        fi
        sleep 0.05
    done
    return 1
}
wait_state() { # wait_state ID STATE
    for i in $(seq 1 300); do [ "$(state "$1")" = "$2" ] && return 0; sleep 0.1; done
    return 1
}
no_job_processes() {
    uids=$(sort -u "$tmp/uids" | paste -sd, -)
    [ -n "$uids" ] && [ -z "$(ps -o stat= -u "$uids" 2>/dev/null | grep -v '^Z')" ]
}
kill9() { kill -9 $daemon; wait $daemon 2>/dev/null; sleep 0.3; }
# python3 over `surplus --json status ID` on stdin
jq_() { A --json status "$1" | python3 -c "import json, sys; j = json.load(sys.stdin); $2"; }

mkjob() { # mkjob NAME SCRIPT [MANIFEST-LINES]
    mkdir -p "$tmp/$1"
    printf '%s\n' "$2" > "$tmp/$1/run.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "run.sh"];\nresources = { gpus = 1; };\n%s\n' "$1" "${3:-}" > "$tmp/$1/job.conf"
    C bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2>&1
}
# "again" must still be running at the kill: it is started last, and the
# kill follows as soon as its log says it started.
mkjob again 'echo started; sleep 5; echo done' 'requeue = true;'
ok $? "a bundle with requeue = true is created"
mkjob once 'echo started; sleep 30' 'requeue = false;'
mkjob crashy 'echo started; sleep 30' 'requeue = true;'

# --- refused: requeue that is not a boolean -------------------------------------
mkdir -p "$tmp/bad"
printf 'api = 1;\nname = "bad";\ncommand = ["/bin/true"];\nrequeue = "yes";\n' > "$tmp/bad/job.conf"
tar -C "$tmp/bad" -cf "$tmp/bad.tar" job.conf
V bundle check "$tmp/bad.tar" > /dev/null 2> "$tmp/err"
[ $? -eq 65 ] && grep -q 'job.conf:4: requeue: expected true or false' "$tmp/err"
ok $? "bundle check refuses requeue = \"yes\" with exit 65, naming file, line and key: $(cat "$tmp/err")"

start_daemon
ok $? "surplusd starts"
V --token-file "$tmp/acme.tok" submit "$tmp/bad.tar" > /dev/null 2> "$tmp/err"
[ $? -eq 65 ] && grep -q 'job.conf:4: requeue: expected true or false (HTTP 422)' "$tmp/err"
ok $? "surplusd refuses it with 422 and surplus exits 65: $(cat "$tmp/err")"

# --- kill -9 while two jobs run -----------------------------------------------------
once=$(A submit "$tmp/once.tar.zst")
started "$once"
ok $? "a job with requeue = false runs"
jq_ "$once" 'assert j["requeue"] is False and j["attempts"] == 1, j'
ok $? "the API shows its requeue and its attempts so far"
[ -d "$tmp/state/jobs/$once" ]
ok $? "it has its directory under state_dir/jobs"
again=$(A submit "$tmp/again.tar.zst") && started "$again"
ok $? "a job with requeue = true runs"
kill9
no_job_processes
ok $? "kill -9 of surplusd takes the jobs' processes down with it"
start_daemon
ok $? "surplusd restarts"
[ "$(state "$once")" = failed ] && [ "$(reason "$once")" = "node restarted" ]
ok $? "the job without requeue is failed, reason 'node restarted' ($(state "$once"), $(reason "$once"))"
[ ! -e "$tmp/state/jobs/$once" ]
ok $? "the directory its killed attempt left is removed"
grep -q 'after a restart: 1 job(s) requeued, 1 failed' "$tmp/surplusd.log"
ok $? "surplusd logs what it requeued and failed: $(grep 'after a restart' "$tmp/surplusd.log")"
wait_state "$again" succeeded
ok $? "the job with requeue = true runs again and succeeds ($(state "$again"))"
jq_ "$again" '
states = [h["state"] for h in j["history"]]
assert states == ["queued", "running", "queued", "running", "completing",
                  "succeeded"], states
assert j["history"][2]["reason"] == "node restarted; requeued", j["history"]
assert j["attempts"] == 2, j["attempts"]' > "$tmp/py" 2>&1
ok $? "its history shows the requeue and its attempts are 2 $(cat "$tmp/py")"
V --token-file "$tmp/acme.tok" status "$again" > "$tmp/out"
grep -q '^attempts: *2 (requeued if the node restarts)$' "$tmp/out" &&
    grep -q 'queued (node restarted; requeued)$' "$tmp/out"
ok $? "surplus status shows the attempts and the history"
sed 's/^/# /' "$tmp/out"
[ "$(A logs "$again" | tr '\n' ' ')" = "started done " ]
ok $? "its log is the second attempt's, from a fresh start: $(A logs "$again" | tr '\n' ' ')"

V usage --format json > "$tmp/usage.json"
python3 - "$tmp/usage.json" "$again" "$once" > "$tmp/py" 2>&1 <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
ids = [r["record_id"] for r in recs]
assert len(ids) == len(set(ids)), ids
again = [r for r in recs if r["job_id"] == sys.argv[2]]
assert len(again) == 1, again
assert again[0]["state"] == "succeeded", again[0]
assert not [r for r in recs if r["job_id"] == sys.argv[3]], recs
PY
ok $? "one usage record for the requeued job (the attempt that ran to its end), none for the failed one, no id twice $(cat "$tmp/py")"

# --- kill -9 after the usage record, before the final state ---------------------------
# The ledger is held until the job's end is in the job store (so its record
# waits), then the job store (so its final state waits), then the ledger is
# let go: the record is written, and surplusd is killed before its final state.
mkjob ends 'echo started; sleep 2; echo done' 'requeue = true;'
mkfifo "$tmp/ledger.fifo" "$tmp/jobs.fifo"
ends=$(A submit "$tmp/ends.tar.zst") && started "$ends"
ok $? "a job with requeue = true runs (to be killed after its usage record)"
sqlite3 "$tmp/state/ledger.db" < "$tmp/ledger.fifo" > /dev/null & ledger_lock=$!
exec 3> "$tmp/ledger.fifo"
printf '.timeout 10000\nBEGIN IMMEDIATE;\n' >&3
for i in $(seq 1 30); do
    [ "$(sqlite3 "$tmp/state/jobs.db" "SELECT state FROM jobs WHERE id = '$ends'")" = completing ] && break
    sleep 0.1
done
sqlite3 "$tmp/state/jobs.db" < "$tmp/jobs.fifo" > /dev/null 3>&- & jobs_lock=$!
exec 4> "$tmp/jobs.fifo"
printf '.timeout 10000\nBEGIN IMMEDIATE;\nSELECT 1;\n' >&4
sleep 0.5
exec 3>&-; wait $ledger_lock
for i in $(seq 1 100); do
    [ "$(sqlite3 "$tmp/state/ledger.db" "SELECT count(*) FROM usage WHERE job_id = '$ends'")" -ge 1 ] && break
    sleep 0.1
done
[ "$(sqlite3 "$tmp/state/ledger.db" "SELECT count(*) FROM usage WHERE job_id = '$ends'")" -ge 1 ]
ok $? "its usage record is written while its final state cannot be"
kill9
exec 4>&-; wait $jobs_lock
start_daemon
ok $? "surplusd restarts"
wait_state "$ends" succeeded
jq_ "$ends" '
states = [h["state"] for h in j["history"]]
assert states == ["queued", "running", "completing", "succeeded"], states
assert j["state"] == "succeeded" and j["exit_status"] == 0, j
assert j["attempts"] == 1, j["attempts"]' > "$tmp/py" 2>&1
ok $? "the job that had ended is succeeded, not run again nor failed $(cat "$tmp/py")"
V usage --format json > "$tmp/usage.json"
python3 - "$tmp/usage.json" "$ends" > "$tmp/py" 2>&1 <<'PY'
import json, sys
recs = [r for r in json.load(open(sys.argv[1])) if r["job_id"] == sys.argv[2]]
assert len(recs) == 1, recs
assert recs[0]["state"] == "succeeded", recs[0]
PY
ok $? "it is billed once (one usage record by job id) $(cat "$tmp/py")"
grep -q 'after a restart: 1 job(s) that had ended finished, not run again' "$tmp/surplusd.log"
ok $? "surplusd logs that it finished it"

# --- kill -9 before the usage record: the record written at restart -------------------
# The ledger is held until the job is completing (its record waits), and
# surplusd is killed: at restart the record is written from the job store,
# which has no CPU time: the ledger says "not known" (NaN), and the API,
# which has no JSON for NaN, still lists the record, with null.
mkjob rebuilt 'echo started; sleep 1; echo done'
rebuilt=$(A submit "$tmp/rebuilt.tar.zst") && started "$rebuilt"
ok $? "a job runs (to be killed before its usage record)"
rm -f "$tmp/ledger.fifo"; mkfifo "$tmp/ledger.fifo"
sqlite3 "$tmp/state/ledger.db" < "$tmp/ledger.fifo" > /dev/null & ledger_lock=$!
exec 3> "$tmp/ledger.fifo"
printf '.timeout 10000\nBEGIN IMMEDIATE;\n' >&3
for i in $(seq 1 100); do
    [ "$(sqlite3 "$tmp/state/jobs.db" "SELECT state FROM jobs WHERE id = '$rebuilt'")" = completing ] && break
    sleep 0.1
done
[ "$(sqlite3 "$tmp/state/jobs.db" "SELECT state FROM jobs WHERE id = '$rebuilt'")" = completing ]
ok $? "it is completing while the ledger is held"
kill9
exec 3>&-; wait $ledger_lock
start_daemon
ok $? "surplusd restarts"
wait_state "$rebuilt" succeeded
curl -s --unix-socket "$sock" "http://x/v1/usage" > "$tmp/usage-api.json"
python3 - "$tmp/usage-api.json" "$rebuilt" > "$tmp/py" 2>&1 <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
recs = j.get("records", j) if isinstance(j, dict) else j
mine = [r for r in recs if r["job_id"] == sys.argv[2]]
assert len(mine) == 1, (len(recs), mine)
assert mine[0]["cpu_seconds"] is None, mine[0]
assert mine[0]["device_seconds"] is not None and mine[0]["duration_us"] > 0, mine[0]
PY
ok $? "GET /v1/usage lists the record written at restart, its CPU time null (not known) $(cat "$tmp/py")"

# --- a job that keeps taking the node down ---------------------------------------------
crashy=$(A submit "$tmp/crashy.tar.zst")
for kill_n in 1 2 3 4; do
    if ! started "$crashy"; then
        ok 1 "crashy job started before kill $kill_n ($(state "$crashy"))"
        break
    fi
    kill9
    start_daemon
done
[ "$(state "$crashy")" = failed ] &&
    [ "$(reason "$crashy")" = "node restarted while it ran, 4 times; requeued at most 3" ]
ok $? "after the 4th restart a job with requeue = true is failed instead ($(state "$crashy"): $(reason "$crashy"))"
jq_ "$crashy" 'assert j["attempts"] == 4, j["attempts"]' > "$tmp/py" 2>&1
ok $? "it ran 4 times $(cat "$tmp/py")"
[ ! -e "$tmp/state/jobs/$crashy" ] && no_job_processes
ok $? "and nothing of it is left"

kill -TERM $daemon; wait $daemon
ok $? "surplusd drains and exits 0"
done_testing
