#!/bin/sh
# Running slots are shared between tenants: one tenant's CPU-only jobs,
# queued first, do not hold every slot while another tenant waits; a
# tenant's max_running caps it.
. "$top_srcdir/tests/lib.sh"

need_daemon
sock="$tmp/surplus.sock"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
beta_sha=$(printf beta-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
printf beta-token > "$tmp/beta.tok"
# Two simulated devices: the node runs max(CPUs, devices) jobs at once.
slots=$(nproc); [ "$slots" -ge 2 ] || slots=2
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 2; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 340000; kill_grace = "1s"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; max_queued = 100; },
            { name = "beta"; token_sha256 = "$beta_sha"; max_queued = 100; max_running = 1; } );
CONF
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
B() { C --token-file "$tmp/beta.tok" "$@"; }
started() { # started ID: the job's start time (RFC 3339, sorts as text)
    C --json status "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["started_at"] or "")'
}
mkjob() { # mkjob NAME SCRIPT
    mkdir -p "$tmp/$1"
    printf '%s\n' "$2" > "$tmp/$1/run.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "run.sh"];\n' "$1" > "$tmp/$1/job.conf"
    C bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2>&1
}
mkjob cpu 'sleep 2'
mkjob long 'sleep 5'
mkjob quick 'echo quick'

start_daemon
ok $? "surplusd starts"

# acme fills every slot and queues one more; then beta submits one job.
# acme's first job ends first: the slot it frees is the one in question.
ids=$(A submit "$tmp/cpu.tar.zst")
for i in $(seq 1 "$slots"); do ids="$ids $(A submit "$tmp/long.tar.zst")"; done
for i in $(seq 1 50); do
    [ "$(A list | grep -c running)" -ge "$slots" ] && break; sleep 0.1
done
b=$(B submit "$tmp/quick.tar.zst")
last=$(echo $ids | awk '{print $NF}')
for id in $ids $b; do C status "$id" > /dev/null; done
for i in $(seq 1 400); do
    [ "$(C status "$last" | sed -n 's/^state: *//p')" = succeeded ] &&
        [ "$(C status "$b" | sed -n 's/^state: *//p')" = succeeded ] && break
    sleep 0.1
done
sb=$(started "$b"); sl=$(started "$last")
[ -n "$sb" ] && [ -n "$sl" ] && [ "$sb" \< "$sl" ]
ok $? "beta's job, submitted after acme's $((slots + 1)) jobs, starts before acme's last one (beta $sb, acme's last $sl)"

# beta's own max_running = 1: its second job waits for its first.
mkjob cpu1 'sleep 1.5'
b1=$(B submit "$tmp/cpu1.tar.zst"); b2=$(B submit "$tmp/cpu1.tar.zst")
for i in $(seq 1 100); do
    [ "$(C status "$b2" | sed -n 's/^state: *//p')" = succeeded ] && break; sleep 0.1
done
e1=$(C --json status "$b1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ended_at"] or "")')
s2=$(started "$b2")
[ -n "$e1" ] && [ -n "$s2" ] && ! [ "$s2" \< "$e1" ]
ok $? "max_running = 1: beta's second job starts once its first has ended ($e1 <= $s2)"

kill -TERM $daemon; wait $daemon
done_testing
