#!/bin/sh
# Device ids are unique on the node: two accelerator groups of one plugin
# (two models of simulated devices, each with its own "sim-0") run a job
# each at once, `surplus devices` tells their devices apart, and a drain
# file names one device only.  A running job shows its devices (status,
# list's GPUS column, GET /v1/jobs) from the moment they are leased, not
# only once it has ended.  Two groups given one name are refused with the
# file and line.
. "$top_srcdir/tests/lib.sh"

need_daemon
sock="$tmp/surplus.sock"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 1; model = "SIM-A"; memory = "1M"; },
                 { plugin = "sim"; count = 1; model = "SIM-B"; memory = "1M"; } );
sandbox = { uid_base = 386000; kill_grace = "1s"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; } );
CONF
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
get() { curl -s --unix-socket "$sock" "http://x$1"; }
# py PATH EXPR: python3 over the JSON of GET PATH (as root), in `j`
py() { get "$1" | python3 -c "import json, sys; j = json.load(sys.stdin); $2"; }
mkjob() { # mkjob NAME MODEL
    mkdir -p "$tmp/$1"
    printf 'sleep 120\n' > "$tmp/$1/run.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "run.sh"];\nresources = { gpus = 1; model = "%s"; walltime = "5m"; };\n' "$1" "$2" > "$tmp/$1/job.conf"
    C bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2>&1
}
mkjob on-a SIM-A
mkjob on-b SIM-B

start_daemon
ok $? "surplusd starts with two groups of the sim plugin"

ids=$(py /v1/devices 'print(" ".join(sorted(d["id"] for d in j)))')
[ "$ids" = "sim-0 sim2:sim-0" ]
ok $? "the second group's device ids are qualified by its name: $ids"

a=$(A submit "$tmp/on-a.tar.zst"); b=$(A submit "$tmp/on-b.tar.zst")
# Both run at once, each with its device in its state while it runs.
both=""
for i in $(seq 1 300); do
    both=$(py /v1/jobs "print(' '.join(sorted(x['state'] + '=' + ','.join(d['id'] for d in x['devices']) for x in j)))")
    [ "$both" = "running=sim-0 running=sim2:sim-0" ] && break
    sleep 0.1
done
[ "$both" = "running=sim-0 running=sim2:sim-0" ]
ok $? "a job on each group runs at the same time, each with its own device ($both)"

dev=$(py "/v1/jobs/$b" 'print(j["state"], [d["id"] for d in j["devices"]])')
[ "$dev" = "running ['sim2:sim-0']" ]
ok $? "GET /v1/jobs/ID of a running job lists its device ($dev)"

out=$(run "$SURPLUS" --config "$tmp/d.conf" --token-file "$tmp/acme.tok" status "$b")
echo "$out" | grep -q '^device: *sim2:sim-0 (SIM-B, accelerator/sim)'
ok $? "surplus status of a running job shows its device"

gpus=$(A list | awk -v id="$a" '$1 == id { print $NF }')
[ "$gpus" = 1 ]
ok $? "surplus list shows GPUS 1 for a running job (got '$gpus')"

devs=$(C devices)
echo "$devs" | grep -q '^sim-0 .*leased' && echo "$devs" | grep -q '^sim2:sim-0 .*leased'
ok $? "surplus devices shows both devices leased under distinct ids"
[ $? -eq 0 ] || diag "$devs"
plug=$(C --json plugins | python3 -c 'import json,sys; print(" ".join(sorted(d["id"] for d in json.load(sys.stdin)["devices"])))')
[ "$plug" = "sim-0 sim2:sim-0" ]
ok $? "surplus plugins gives the devices the same node ids (got '$plug')"

A cancel "$a" > /dev/null; A cancel "$b" > /dev/null
for i in $(seq 1 300); do
    st=$(py /v1/jobs "print(' '.join(sorted(x['state'] for x in j)))")
    [ "$st" = "cancelled cancelled" ] && break
    sleep 0.1
done
[ "$st" = "cancelled cancelled" ]
ok $? "both jobs end as cancelled, neither failed for a device leased to the other ($st)"
reasons=$(py /v1/jobs "print(' | '.join(x['reason'] or '' for x in j))")
! echo "$reasons" | grep -q 'leased to another job'
ok $? "no job says its device was leased to another job ($reasons)"

# A drain file names one device of one group.
kill -TERM $daemon; wait $daemon
mkdir -p "$tmp/state/drained"
echo "failed its scrub (test)" > "$tmp/state/drained/accelerator_sim-sim2_sim-0"
start_daemon
st=$(py /v1/devices 'print(" ".join(d["id"] + "=" + d["state"] for d in sorted(j, key=lambda d: d["id"])))')
[ "$st" = "sim-0=free sim2:sim-0=drained" ]
ok $? "a drain file keyed by the qualified id drains that device only ($st)"
kill -TERM $daemon; wait $daemon

# Two groups with one name: refused at load, with the file and line.
cat > "$tmp/bad.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; name = "gpu"; model = "SIM-A"; },
                 { plugin = "sim"; name = "gpu"; model = "SIM-B"; } );
CONF
run "$SURPLUSD" -c "$tmp/bad.conf" --check-config > "$tmp/bad.out" 2>&1
rc=$?
[ $rc -eq 78 ] && grep -q "bad.conf:3: .*accelerators\[0\] and accelerators\[1\] are both named 'gpu'" "$tmp/bad.out"
ok $? "two groups named alike are refused with file:line (exit $rc: $(cat "$tmp/bad.out"))"

sed -i 's/name = "gpu"; model = "SIM-B"/name = "Gpu"; model = "SIM-B"/' "$tmp/bad.conf"
run "$SURPLUSD" -c "$tmp/bad.conf" --check-config > "$tmp/bad.out" 2>&1
rc=$?
[ $rc -eq 78 ] && grep -q "bad.conf:3: .*name 'Gpu' is not valid" "$tmp/bad.out"
ok $? "a group name that is not lower-case letters, digits and '-' is refused (exit $rc)"
done_testing
