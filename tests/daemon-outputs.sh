#!/bin/sh
# surplusd and what a hostile job leaves: output trees 60 and 300 levels
# deep (with mode-000 directories) do not crash the daemon nor disturb
# another tenant's job, are collected up to the limit job.log names, billed
# from the job itself and removed from the host; a bundle stored by a daemon
# killed before its job was inserted is removed at the next start; and a job
# whose output the storage could not take is failed, with the reason.
. "$top_srcdir/tests/lib.sh"

need_daemon
chmod 711 "$tmp"
sock="$tmp/surplus.sock"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
beta_sha=$(printf beta-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
printf beta-token > "$tmp/beta.tok"
tenants="tenants = ( { name = \"acme\"; token_sha256 = \"$acme_sha\"; },
            { name = \"beta\"; token_sha256 = \"$beta_sha\"; } );"
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
sandbox = { uid_base = 334000; kill_grace = "1s"; };
api = { socket = "$sock"; };
$tenants
CONF
stop_daemon() { kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null; }
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
B() { C --token-file "$tmp/beta.tok" "$@"; }
state_of() { C status "$1" 2>/dev/null | sed -n 's/^state: *//p'; }
alive() { kill -0 $daemon 2>/dev/null &&
    curl -s --unix-socket "$sock" http://x/healthz > /dev/null 2>&1; }

mkjob() { # mkjob NAME SCRIPT [MANIFEST-LINES]
    mkdir -p "$tmp/$1"
    printf '%s\n' "$2" > "$tmp/$1/run.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "run.sh"];\n%s\n' "$1" "${3:-}" > "$tmp/$1/job.conf"
    C bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2>&1
}
# out/ as a chain of $1 directories "d", a file in each, a mode-000
# directory at level 5 and (for long chains) at level 150.
chain() {
    cat <<SH
mkdir out && cd out
i=0
while [ \$i -lt $1 ]; do
    echo "level \$i" > f
    mkdir d && cd d
    i=\$((i + 1))
done
echo bottom > f
cd "\$HOME/out"
mkdir -p d/d/d/d/locked && echo hidden > d/d/d/d/locked/f && chmod 000 d/d/d/d/locked
[ $1 -gt 150 ] && chmod 000 \$(i=0; while [ \$i -lt 150 ]; do printf d/; i=\$((i + 1)); done)
echo built
SH
}
mkjob deep60 "$(chain 60)" 'outputs = ["out/"];'
mkjob deep300 "$(chain 300)" 'outputs = ["out/"];'
mkjob other 'echo other-started; sleep 3; echo other-done > done.txt' 'outputs = ["done.txt"];'
mkjob quick 'echo quick' 'outputs = ["run.sh"];'

start_daemon
ok $? "surplusd starts"

# --- deep output trees, with another tenant's job running meanwhile ------------
id_b=$(B submit "$tmp/other.tar.zst" 2>/dev/null)
for i in $(seq 1 100); do B logs "$id_b" 2>/dev/null | grep -q other-started && break; sleep 0.1; done
id60=$(A submit --wait "$tmp/deep60.tar.zst" 2>/dev/null)
rc60=$?
ok $(( rc60 != 0 )) "acme's job with a 60-level output tree ends, exit 0 (got $rc60)"
alive
ok $? "... and surplusd is still there"
id300=$(A submit --wait "$tmp/deep300.tar.zst" 2>/dev/null)
rc300=$?
ok $(( rc300 != 0 )) "acme's job with a 300-level tree with mode-000 directories ends, exit 0 (got $rc300)"
alive
ok $? "... and surplusd is still there"
[ "$(state_of "$id60")" = succeeded ] && [ "$(state_of "$id300")" = succeeded ]
ok $? "both are succeeded ($(state_of "$id60"), $(state_of "$id300"))"
for i in $(seq 1 200); do [ "$(state_of "$id_b")" = succeeded ] && break; sleep 0.1; done
[ "$(state_of "$id_b")" = succeeded ] && ! C status "$id_b" | grep -q "node restarted"
ok $? "beta's job, running meanwhile, succeeded undisturbed ($(state_of "$id_b"))"
B logs "$id_b" 2>/dev/null | grep -q other-started
ok $? "... with its log"

curl -s --unix-socket "$sock" -H 'Authorization: Bearer acme-token' \
    "http://x/v1/jobs/$id60/outputs" > "$tmp/outs60"
bottom=out/$(i=0; while [ $i -lt 60 ]; do printf d/; i=$((i + 1)); done)f
grep -q "\"$bottom\"" "$tmp/outs60" && grep -q '"out/d/d/d/d/locked/f"' "$tmp/outs60"
ok $? "the 60-level tree is collected whole, mode-000 directory included"
A logs "$id300" > "$tmp/log300" 2>/dev/null
grep -q "^outputs: 'out/\(d/\)*[df]' and what lies below it not collected: deeper than 64 path components (the limit for outputs, as for bundles)" "$tmp/log300"
ok $? "the 300-level job's log says which limit stopped collection"
C usage --format json > "$tmp/usage.json"
python3 - "$tmp/usage.json" "$id60" "$id300" <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
for job in sys.argv[2:]:
    mine = [r for r in recs if r["job_id"] == job]
    assert len(mine) == 1, (job, mine)
    r = mine[0]
    # written by the runner at the job's end, not rebuilt at a restart
    # (which has no CPU time): the usage is the job's own
    assert r["state"] == "succeeded" and r["exit_status"] == 0, r
    assert r["cpu_seconds"] > 0 and r["duration_us"] > 0, r
    assert r["bytes_out"] > 0, r
PY
ok $? "each is billed once, from its own usage (CPU time, duration, bytes out)"
[ -z "$(ls -A "$tmp/state/jobs" 2>/dev/null)" ]
ok $? "no job directory is left on the host: $(ls "$tmp/state/jobs" 2>/dev/null | head -3)"
! grep -q "not removed" "$tmp/surplusd.log"
ok $? "surplusd's log has no 'not removed' warning"

# --- a kill between storing a bundle and inserting its job ---------------------
# The bundles in storage, one path a line.  Ended jobs' bundles go at the
# retention sweep, so the one in question is told by its name.
bundles() { find "$tmp/state/store/objects/jobs" -name bundle 2>/dev/null | sort; }
if command -v gdb > /dev/null 2>&1; then
    bundles > "$tmp/bundles.before"
    # gdb stops surplusd where the job would go into the store, and kills it.
    gdb -q -batch -p $daemon -ex 'set pagination off' -ex 'break jobstore_insert_keyed' \
        -ex 'continue' -ex 'kill' > "$tmp/gdb.out" 2>&1 &
    gdbpid=$!
    # Once the breakpoint is set, a submission either waits for gdb to let
    # surplusd go on or stops there.
    for i in $(seq 1 600); do grep -q "^Breakpoint 1 at" "$tmp/gdb.out" && break; sleep 0.1; done
    if ! grep -q "^Breakpoint 1 at" "$tmp/gdb.out"; then
        # No ptrace here (a container's policy, say): nothing to kill with.
        kill $gdbpid 2>/dev/null
        wait $gdbpid
        diag "gdb: $(cat "$tmp/gdb.out")"
        skip "a bundle without a job is removed at start" "gdb cannot stop surplusd here"
        kill -0 $daemon 2>/dev/null || start_daemon
        after_kill=skipped
    else
        A submit "$tmp/quick.tar.zst" > /dev/null 2>&1
        # Bounded: a breakpoint never reached must not hold the suite.
        for i in $(seq 1 300); do kill -0 $gdbpid 2>/dev/null || break; sleep 0.1; done
        kill $gdbpid 2>/dev/null
        wait $gdbpid
        kill -0 $daemon 2>/dev/null || wait $daemon 2>/dev/null
        bundles > "$tmp/bundles.after"
        orphan=$(comm -13 "$tmp/bundles.before" "$tmp/bundles.after")
        after_kill=$(printf '%s' "$orphan" | grep -c .)
    fi
    if [ "$after_kill" = skipped ]; then
        :
    elif [ "$after_kill" -eq 1 ]; then
        ok 0 "a daemon killed after the put, before the insert, leaves a bundle without a job"
        start_daemon
        ok $? "surplusd starts again"
        [ ! -e "$orphan" ]
        ok $? "the bundle without a job is removed at start ($orphan)"
        [ -z "$(ls -A "$tmp/state/pending" 2>/dev/null)" ]
        ok $? "... and nothing is left pending"
        grep -q "after a restart: 1 bundle(s) of submissions cut short removed from storage" "$tmp/surplusd.log"
        ok $? "... and surplusd's log says so"
        id_q=$(A submit --wait "$tmp/quick.tar.zst" 2>/dev/null)
        ok $? "jobs are submitted and run as before ($id_q)"
    else
        diag "new bundles after the kill: $after_kill; gdb: $(tail -n 3 "$tmp/gdb.out")"
        ok 1 "a daemon killed after the put, before the insert, leaves a bundle without a job"
        kill -9 $daemon 2>/dev/null
        start_daemon
    fi
else
    skip "a bundle without a job is removed at start" "no gdb"
fi
stop_daemon

# --- storage that fails: the job is failed, with the reason -------------------
# The store is a 1 MiB tmpfs in a mount namespace of surplusd's own: the
# bundle fits, the job's output does not.
sed "s|^state_dir.*|&\nstorage = { plugin = \"local\"; path = \"$tmp/smallstore\"; };|" \
    "$tmp/d.conf" > "$tmp/small.conf"
mkdir -p "$tmp/smallstore"
mkjob bigout 'head -c 2000000 /dev/zero > big.bin; echo small > small.txt; echo done' \
    'outputs = ["small.txt", "big.bin"];'
unshare -m sh -c 'mount --make-rprivate / && mount -t tmpfs -o size=1m surplus-test "$0" &&
    exec "$1" -c "$2" --foreground --drain-timeout 1s' \
    "$tmp/smallstore" "$SURPLUSD" "$tmp/small.conf" >> "$tmp/surplusd.log" 2>&1 &
daemon=$!
for i in $(seq 1 100); do alive && break; sleep 0.05; done
alive
ok $? "surplusd starts with a store of 1 MiB"
id_big=$(A submit --wait "$tmp/bigout.tar.zst" 2>/dev/null)
rc=$?
ok $(( rc != 70 )) "submit --wait of a job that exits 0 but whose output was not stored exits 70 (got $rc)"
A --json status "$id_big" > "$tmp/big.json" 2>/dev/null
python3 - "$tmp/big.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["state"] == "failed" and j["exit_status"] == 0, j
assert j["reason"].startswith("output 'big.bin' not stored: "), j
assert "No space left on device" in j["reason"], j
PY
ok $? "it is failed, its exit status 0 kept, with the reason: $(sed -n 's/^reason: *//p' "$tmp/big.json"; A status "$id_big" 2>/dev/null | sed -n 's/^reason: *//p')"
A logs "$id_big" 2>/dev/null | grep -q "output 'big.bin' not stored"
ok $? "its log, stored, says so too"
C usage --format json | python3 -c '
import json, sys
recs = [r for r in json.load(sys.stdin) if r["job_id"] == sys.argv[1]]
assert len(recs) == 1 and recs[0]["state"] == "failed" and recs[0]["cpu_seconds"] > 0, recs
' "$id_big"
ok $? "... and it is billed (it ran)"
stop_daemon

done_testing
