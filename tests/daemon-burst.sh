#!/bin/sh
# Many jobs started at once on one node all run: job children that start
# side by side (each leaving root, entering its own user namespace and
# writing its id maps while sharing the runner's memory) never fail one
# another's set-up.
. "$top_srcdir/tests/lib.sh"

need_daemon
sock="$tmp/surplus.sock"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
jobs=${BURST_JOBS:-240}
# Eight simulated devices: eight jobs run at once whatever the CPU count.
# The per-job file system is left out so that starts follow each other
# as closely as the runner allows.
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 8; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 344000; kill_grace = "1s"; limits = "best-effort"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; max_queued = $jobs; } );
CONF
SURPLUS_NO_JOBFS=1; export SURPLUS_NO_JOBFS
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
mkdir -p "$tmp/j"
printf 'echo ran as $(id -u)\n' > "$tmp/j/run.sh"
printf 'api = 1;\nname = "burst";\ncommand = ["/bin/sh", "run.sh"];\n' > "$tmp/j/job.conf"
C bundle create "$tmp/j" -o "$tmp/j.tar.zst" > /dev/null 2>&1

start_daemon
ok $? "surplusd starts"

# Four clients submit at once so that the queue never runs dry.
clients=
for c in 1 2 3 4; do
    ( for i in $(seq 1 $((jobs / 4))); do A submit "$tmp/j.tar.zst" || echo FAIL; done ) \
        > "$tmp/ids.$c" 2>&1 &
    clients="$clients $!"
done
wait $clients
cat "$tmp/ids."* > "$tmp/ids"
[ "$(grep -c . "$tmp/ids")" -eq "$jobs" ] && ! grep -q FAIL "$tmp/ids"
ok $? "$jobs submissions from four clients at once are accepted"

for i in $(seq 1 1200); do
    A --json list > "$tmp/list.json" 2>/dev/null &&
        python3 - "$tmp/list.json" <<'PY' && break
import json, sys
jobs = json.load(open(sys.argv[1]))
jobs = jobs.get("jobs", jobs) if isinstance(jobs, dict) else jobs
sys.exit(0 if all(j["state"] not in ("queued", "running") for j in jobs) else 1)
PY
    sleep 0.1
done
python3 - "$tmp/list.json" > "$tmp/states" <<'PY'
import json, sys
jobs = json.load(open(sys.argv[1]))
jobs = jobs.get("jobs", jobs) if isinstance(jobs, dict) else jobs
from collections import Counter
print(" ".join("%s=%d" % kv for kv in sorted(Counter(j["state"] for j in jobs).items())))
PY
# What went wrong with the jobs that did not succeed, in the result line
# itself so that a failure elsewhere can be read from the summary.
bad=$(python3 - "$tmp/list.json" <<'PY'
import json, sys
jobs = json.load(open(sys.argv[1]))
jobs = jobs.get("jobs", jobs) if isinstance(jobs, dict) else jobs
print(" ".join(j["id"] for j in jobs if j["state"] != "succeeded")[:400])
PY
)
why=
for id in $bad; do
    why="$why; $id: $(A status "$id" 2>&1 | grep -E '^ *(state|reason|exit)' | tr -s ' \n' ' ')"
done
[ "$(cat "$tmp/states")" = "succeeded=$jobs" ]
ok $? "all $jobs jobs succeed ($(cat "$tmp/states")$why)"
[ -z "$bad" ] || grep -E "$(echo $bad | tr ' ' '|')" "$tmp/daemon.log" 2>/dev/null | tail -n 20 | sed 's/^/# /'

kill -TERM $daemon; wait $daemon
done_testing
