#!/bin/sh
# `surplus run` end to end as a tenant sees it: exit statuses (the job's
# own, 128+N for a signal, 124 for walltime, 127 for a missing command),
# outputs and job.log in the output directory, the lease environment from
# accelerator/sim, refusals with their exit codes, and nothing left behind.
. "$top_srcdir/tests/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "surplus run needs root (namespaces, job uids)"
unshare -mpinu --fork true 2>/dev/null ||
    skip_all "this host cannot create namespaces"

uid_base=310000
cat > "$tmp/test.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 2; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = $uid_base; kill_grace = "1s"; };
pricing = { currency = "EUR"; cpu_hour = 36.0;
            gpu = ( { model = "SIM*"; hour = 3.6; } ); };
CONF
S() { run "$SURPLUS" --config "$tmp/test.conf" "$@"; }

# mkjob NAME COMMAND-ARRAY [EXTRA-MANIFEST-LINES]: a bundle in $tmp/NAME.tar.zst
# from the files already in $tmp/NAME/.
mkjob() {
    mkdir -p "$tmp/$1"
    printf 'api = 1;\nname = "%s";\ncommand = %s;\n%s\n' "$1" "$2" "${3:-}" \
        > "$tmp/$1/job.conf"
    S bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2> "$tmp/err" ||
        { cat "$tmp/err"; return 1; }
}

# --- the example ---------------------------------------------------------------
S bundle create "$top_srcdir/examples/jobs/hello" -o "$tmp/hello.tar.zst" > /dev/null
(cd "$tmp" && S run -o "$tmp/out-hello" hello.tar.zst) > "$tmp/stdout" 2> "$tmp/stderr"
ok $? "examples/jobs/hello runs and exits 0"
grep -q '^Hello, world! This is job [0-9a-f]\{16\} (hello)\.$' "$tmp/stdout"
ok $? "the job's output is shown as it runs"
[ "$(cat "$tmp/out-hello/out/greeting.txt" 2>/dev/null)" = "Hello, world!" ] &&
    [ -f "$tmp/out-hello/out/environment.txt" ] && [ -f "$tmp/out-hello/summary.txt" ]
ok $? "declared outputs (a directory and a file) are in the output directory"
grep -q '^Hello, world!' "$tmp/out-hello/job.log"
ok $? "job.log holds the job's output"
grep -q "^surplus: job [0-9a-f]\{16\} 'hello' succeeded (exit 0)" "$tmp/stderr" &&
    grep -q "^surplus: outputs: $tmp/out-hello/ (3 output file(s) and job.log)" "$tmp/stderr" &&
    grep -q "^surplus: usage: record [0-9a-f]\{16\}: 1 device(s), " "$tmp/stderr"
ok $? "the summary names the state, where outputs went and the usage line"
grep -q '^SURPLUS_GPUS=sim-[01]$' "$tmp/out-hello/out/environment.txt" &&
    grep -q '^SURPLUS_ACCELERATOR=sim (simulated)$' "$tmp/out-hello/out/environment.txt"
ok $? "a gpus=1 job on accelerator/sim receives the lease environment"
hello_uid=$(sed -n 's/^uid=//p' "$tmp/out-hello/summary.txt")
[ -n "$hello_uid" ] && [ "$hello_uid" -ge "$uid_base" ] &&
    [ "$hello_uid" -lt $((uid_base + 65536)) ]
ok $? "the job ran as uid_base + slot ($hello_uid), not root"
[ -z "$(ls "$tmp/state/jobs")" ]
ok $? "the job directory is removed after collection"

# the default output directory is ./<name>-<id>
(cd "$tmp" && S run hello.tar.zst > /dev/null 2>&1)
ls -d "$tmp"/hello-????????????????/out > /dev/null 2>&1
ok $? "without -o the outputs go to ./<name>-<id>/"

# --- exit statuses ---------------------------------------------------------------
mkjob exit3 '["/bin/sh", "-c", "echo failing; exit 3"]'
S run -o "$tmp/o-exit3" "$tmp/exit3.tar.zst" > /dev/null 2> "$tmp/err"
ok $(( $? != 3 )) "a job exiting 3 makes surplus run exit 3"
grep -q "'exit3' failed (exit 3)" "$tmp/err"
ok $? "... and is reported failed"

mkjob segv '["/bin/sh", "-c", "kill -SEGV $$"]'
S run -o "$tmp/o-segv" "$tmp/segv.tar.zst" > /dev/null 2>&1
ok $(( $? != 139 )) "a job killed by SIGSEGV exits 128+11"

mkjob missing '["./no-such-program"]'
S run -o "$tmp/o-missing" "$tmp/missing.tar.zst" > /dev/null 2> "$tmp/err"
ok $(( $? != 127 )) "a command that does not exist exits 127"
grep -q "cannot execute './no-such-program'" "$tmp/o-missing/job.log"
ok $? "... and job.log says why"

# --- walltime: TERM ignored, a setsid child, nothing survives ---------------------
mkdir -p "$tmp/stubborn"
cat > "$tmp/stubborn/run.sh" <<'SH'
trap '' TERM
setsid sh -c 'trap "" TERM; while :; do sleep 1; done' &
echo "started as $(id -u)"
while :; do sleep 1; done
SH
mkjob stubborn '["/bin/sh", "run.sh"]' 'resources = { walltime = "2s"; };'
start=$(date +%s)
S run -o "$tmp/o-stubborn" "$tmp/stubborn.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
took=$(( $(date +%s) - start ))
ok $(( rc != 124 )) "walltime exceeded exits 124 (got $rc)"
[ "$took" -le 10 ]
ok $? "the job was stopped after walltime + grace ($took s)"
grep -q "walltime of 2000 ms exceeded" "$tmp/o-stubborn/job.log" &&
    grep -q "SIGKILL sent" "$tmp/o-stubborn/job.log"
ok $? "job.log records the TERM and the KILL"
grep -q "'stubborn' timeout (exit 124)" "$tmp/err"
ok $? "the state is timeout"
sleep 0.2
job_uid=$(sed -n 's/^started as //p' "$tmp/o-stubborn/job.log")
[ -n "$job_uid" ] && [ -z "$(ps -o pid= -u "$job_uid" 2>/dev/null)" ]
ok $? "no process of the job's uid ($job_uid) survives (setsid child included)"

# --- outputs never follow a symlink out of the job directory ----------------------
mkdir -p "$tmp/links"
cat > "$tmp/links/run.sh" <<'SH'
mkdir -p out
echo mine > out/mine.txt
ln -s /etc/passwd out/passwd
ln -s /etc/hostname hostname-link
ln -s mine.txt out/inner-link
mkfifo out/fifo
echo top > top.txt
SH
mkjob links '["/bin/sh", "run.sh"]' 'outputs = ["out/", "hostname-link", "top.txt", "absent.txt"];'
S run -o "$tmp/o-links" "$tmp/links.tar.zst" > /dev/null 2>&1
ok $? "a job with hostile outputs still succeeds"
[ "$(cat "$tmp/o-links/out/mine.txt")" = mine ] && [ -f "$tmp/o-links/top.txt" ]
ok $? "its real outputs are collected"
[ ! -e "$tmp/o-links/out/passwd" ] && [ ! -e "$tmp/o-links/hostname-link" ] &&
    [ ! -e "$tmp/o-links/out/inner-link" ] && [ ! -e "$tmp/o-links/out/fifo" ]
ok $? "symlinks (out of the directory or not) and fifos are not collected"
! grep -rq "root:" "$tmp/o-links"
ok $? "nothing of /etc/passwd reached the output directory"
grep -q "output 'out/passwd' not collected: a symlink is never followed" "$tmp/o-links/job.log" &&
    grep -q "output 'absent.txt' not found" "$tmp/o-links/job.log"
ok $? "job.log says what was skipped and why"

# --- output size limit ----------------------------------------------------------
cat > "$tmp/small.conf" <<CONF
state_dir = "$tmp/state";
sandbox = { uid_base = $uid_base; };
limits = { max_output_bytes = "1M"; };
CONF
mkjob big '["/bin/sh", "-c", "head -c 700000 /dev/zero > a; head -c 700000 /dev/zero > b"]' 'outputs = ["a", "b"];'
run "$SURPLUS" --config "$tmp/small.conf" run -o "$tmp/o-big" "$tmp/big.tar.zst" > /dev/null 2>&1
[ -f "$tmp/o-big/a" ] && [ ! -e "$tmp/o-big/b" ] &&
    grep -q "output 'b' not collected: the outputs exceed limits.max_output_bytes" "$tmp/o-big/job.log"
ok $? "outputs past limits.max_output_bytes are not collected"

# --- refusals ---------------------------------------------------------------------
mkjob three '["/bin/true"]' 'resources = { gpus = 3; };'
S run -o "$tmp/o-three" "$tmp/three.tar.zst" > /dev/null 2> "$tmp/err"
ok $(( $? != 69 )) "gpus = 3 with two devices exits 69"
grep -q "job 'three' needs 3 GPU(s) of model '\*'; none can serve it; accelerator/sim: this node has 2 devices$" "$tmp/err"
ok $? "... naming what was asked and what the node has: $(cat "$tmp/err")"
mkjob model '["/bin/true"]' 'resources = { gpus = 1; model = "H100*"; };'
S run -o "$tmp/o-model" "$tmp/model.tar.zst" > /dev/null 2> "$tmp/err"
ok $(( $? != 69 )) "a model no device has exits 69"
grep -q "sim-0: model 'SIM-80G' does not match 'H100\*'" "$tmp/err"
ok $? "... saying which device does not match"
printf 'garbage' > "$tmp/garbage.tar.gz"
S run "$tmp/garbage.tar.gz" > /dev/null 2> "$tmp/err"
ok $(( $? != 65 )) "an invalid bundle exits 65"
S run > /dev/null 2>&1
ok $(( $? != 64 )) "a missing argument exits 64"
if command -v setpriv > /dev/null; then
    setpriv --reuid=65534 --regid=65534 --clear-groups "$SURPLUS" --config "$tmp/test.conf" \
        run "$tmp/exit3.tar.zst" > /dev/null 2> "$tmp/err"
    ok $(( $? != 77 )) "a user other than root gets exit 77: $(cat "$tmp/err")"
else
    skip "a user other than root gets exit 77" "no setpriv"
fi
printf 'state_dir = 3;\n' > "$tmp/bad.conf"
run "$SURPLUS" --config "$tmp/bad.conf" run "$tmp/exit3.tar.zst" > /dev/null 2>&1
ok $(( $? != 78 )) "a bad configuration exits 78"
[ -z "$(ls "$tmp/state/jobs")" ]
ok $? "refused and finished jobs leave no job directory"

# --- a device that fails its scrub is drained ---------------------------------------
cat > "$tmp/scrub.conf" <<CONF
state_dir = "$tmp/scrubstate";
accelerators = ( { plugin = "sim"; count = 1; model = "SIM-80G"; memory = "1M"; fail_scrub = 0; } );
sandbox = { uid_base = $uid_base; };
CONF
mkjob onegpu '["/bin/true"]' 'resources = { gpus = 1; };'
run "$SURPLUS" --config "$tmp/scrub.conf" run -o "$tmp/o-scrub1" "$tmp/onegpu.tar.zst" > /dev/null 2> "$tmp/err"
ok $? "a job whose device then fails its scrub still reports its own status (0)"
grep -q "drained after a failed scrub: sim-0 (" "$tmp/o-scrub1/job.log" &&
    [ -f "$tmp/scrubstate/drained/accelerator_sim-sim-0" ]
ok $? "the device is drained (state_dir/drained/accelerator_sim-sim-0) and job.log says so"
run "$SURPLUS" --config "$tmp/scrub.conf" run --no-wait -o "$tmp/o-scrub2" "$tmp/onegpu.tar.zst" > /dev/null 2> "$tmp/err"
ok $(( $? != 69 )) "the drained device is never leased again: exit 69"
grep -q "sim-0: drained (" "$tmp/err"
ok $? "... and the refusal says it is drained: $(cat "$tmp/err")"

# --- --json -------------------------------------------------------------------------
S --json run -o "$tmp/o-json" "$tmp/exit3.tar.zst" > "$tmp/json" 2> /dev/null
python3 - "$tmp/json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["name"] == "exit3" and d["state"] == "failed" and d["exit_status"] == 3, d
assert len(d["id"]) == 16 and d["recorded"] is True, d
assert d["bytes_in"] > 0 and d["bytes_out"] > 0 and d["end_us"] >= d["start_us"], d
assert set(d["stage_seconds"]) >= {"extract", "lease", "start", "run", "collect", "release", "record"}, d
PY
ok $? "--json prints the result as one JSON document"

# --- cancel: SIGTERM to surplus run stops the whole job --------------------------
mkdir -p "$tmp/cancel"
cat > "$tmp/cancel/run.sh" <<'SH'
setsid sh -c 'while :; do sleep 1; done' &
echo "started as $(id -u)"
while :; do sleep 1; done
SH
mkjob cancel '["/bin/sh", "run.sh"]'
${SURPLUS_VALGRIND} "$SURPLUS" --config "$tmp/test.conf" run -o "$tmp/o-cancel" \
    "$tmp/cancel.tar.zst" > "$tmp/cancel.out" 2> "$tmp/cancel.err" &
runner=$!
for i in $(seq 1 100); do grep -q started "$tmp/cancel.out" 2>/dev/null && break; sleep 0.1; done
kill -TERM $runner
wait $runner
rc=$?
ok $(( rc != 143 )) "SIGTERM to surplus run cancels the job: exit 128+15 (got $rc)"
grep -q "'cancel' cancelled" "$tmp/cancel.err"
ok $? "... its state is cancelled"
sleep 0.2
job_uid=$(sed -n 's/^started as //p' "$tmp/cancel.out")
[ -n "$job_uid" ] && [ -z "$(ps -o pid= -u "$job_uid" 2>/dev/null)" ]
ok $? "... and none of its processes (uid $job_uid) survive"

# --- cleanup never follows the job's symlinks ----------------------------------------
mkdir -p "$tmp/victim/dir" && echo keep > "$tmp/victim/file" && echo keep > "$tmp/victim/dir/inner"
mkdir -p "$tmp/trap"
cat > "$tmp/trap/run.sh" <<SH
ln -s $tmp/victim dirlink
ln -s $tmp/victim/file filelink
mkdir -p sub && ln -s $tmp/victim/dir sub/deeper
SH
mkjob trap '["/bin/sh", "run.sh"]' 'outputs = ["dirlink/", "sub/"];'
S run -o "$tmp/o-trap" "$tmp/trap.tar.zst" > /dev/null 2>&1
[ "$(cat "$tmp/victim/file")" = keep ] && [ "$(cat "$tmp/victim/dir/inner")" = keep ]
ok $? "removing the job directory leaves what its symlinks point to alone"
[ ! -e "$tmp/o-trap/dirlink" ] && [ ! -e "$tmp/o-trap/sub/deeper/inner" ]
ok $? "... and outputs through them are not collected"

# --- the usage record --------------------------------------------------------------
id=0123456789abcdef
S --json run --id $id -o "$tmp/o-rec" "$tmp/hello.tar.zst" > "$tmp/rec-run.json" 2> /dev/null
ok $? "a job run with --id $id succeeds"
S --json run --id $id -o "$tmp/o-rec2" "$tmp/hello.tar.zst" > /dev/null 2>&1
S usage --format json > "$tmp/usage.json"
ok $? "surplus usage --format json reads the ledger back"
python3 - "$tmp/usage.json" "$tmp/rec-run.json" "$id" "$(hostname)" <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
run = json.load(open(sys.argv[2]))
mine = [r for r in recs if r["job_id"] == sys.argv[3]]
assert len(mine) == 1, "record written twice: %r" % mine
r = mine[0]
assert r["record_id"] == sys.argv[3] and r["tenant"] == "local", r
assert r["job_name"] == "hello" and r["node"] == sys.argv[4], r
assert len(r["devices"]) == 1 and r["devices"][0]["id"] in ("sim-0", "sim-1"), r
assert r["devices"][0]["model"] == "SIM-80G", r
assert r["state"] == "succeeded" and r["exit_status"] == 0, r
assert 0 < r["duration_us"] < 60e6 and r["end_us"] >= r["start_us"], r
assert abs(r["device_seconds"] - r["duration_us"] / 1e6) < 1e-3, r
assert r["cpu_seconds"] > 0 and r["max_rss_bytes"] > 100 * 1024, r
assert r["bytes_in"] > 0 and r["bytes_out"] > 0, r
# pricing: 36 EUR per cpu-hour, 3.6 EUR per SIM* device-hour
want = 36.0 * r["cpu_seconds"] / 3600 + 3.6 * r["duration_us"] / 3600e6
assert r["currency"] == "EUR" and abs(r["cost_micros"] - want * 1e6) <= 2, (r, want)
PY
ok $? "the record carries every field, priced, and a re-run of the same id is billed once"

done_testing
