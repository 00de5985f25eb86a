#!/bin/sh
# tests/bench/followers.sh BUILDDIR [EXTRA-API-KEYS]: how long another
# tenant's GET /v1/jobs and /healthz take while 0, 8 and 200 clients
# follow one tenant's running job's log.  Needs root; run from the source
# tree, e.g.
#   sh tests/bench/followers.sh . 'max_followers_per_tenant = 256;'
set -e
b=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
export SURPLUS_PLUGIN_PATH="$b/plugins/.libs" SURPLUS_SANDBOX_INIT="$b/surplus-sandbox-init"
tmp=$(mktemp -d /tmp/surplus-bench.XXXXXX)
sock="$tmp/s.sock"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
beta_sha=$(printf beta-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 1; } );
sandbox = { uid_base = 361000; };
api = { socket = "$sock"; ${2:-} };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; },
            { name = "beta"; token_sha256 = "$beta_sha"; } );
CONF
mkdir "$tmp/slow"
printf 'while :; do echo tick; sleep 0.2; done\n' > "$tmp/slow/run.sh"
printf 'api = 1;\nname = "slow";\ncommand = ["/bin/sh", "run.sh"];\n' > "$tmp/slow/job.conf"
"$b/surplus" --config "$tmp/d.conf" bundle create "$tmp/slow" -o "$tmp/slow.tar.zst" > /dev/null
"$b/surplusd" -c "$tmp/d.conf" --foreground > "$tmp/d.log" 2>&1 &
d=$!
trap 'kill $f 2>/dev/null || :; kill $d || :; wait; rm -rf "$tmp"' EXIT
for i in $(seq 50); do curl -s --unix-socket "$sock" http://x/healthz > /dev/null && break; sleep 0.1; done
job=$("$b/surplus" --config "$tmp/d.conf" --token-file "$tmp/acme.tok" submit "$tmp/slow.tar.zst" | tail -1)
sleep 1; "$b/surplus" --config "$tmp/d.conf" --token-file "$tmp/acme.tok" status "$job" | grep -E "state|reason"
t() { curl -s -o /dev/null -w '%{time_total}' --max-time 60 --unix-socket "$sock" "$@"; }
for n in 0 8 200; do
    rm -f "$tmp/ready"
    f=
    if [ "$n" -gt 0 ]; then
        :
        python3 "$src/tests/api-flood.py" follow "$sock" acme-token "$job" "$n" "$tmp/ready" ${WAIT:-5} &
        f=$!
        while [ ! -s "$tmp/ready" ]; do sleep 0.1; done
    fi
    sleep 0.5
    l1=$(t -H 'Authorization: Bearer beta-token' http://x/v1/jobs)
    l2=$(t -H 'Authorization: Bearer beta-token' http://x/v1/jobs)
    l3=$(t -H 'Authorization: Bearer beta-token' http://x/v1/jobs)
    h=$(t http://x/healthz)
    echo "followers=$n GET /v1/jobs (beta): ${l1}s ${l2}s ${l3}s  /healthz: ${h}s  followers' replies: $(cat "$tmp/ready" 2>/dev/null | tr '\n' ' ')"
    [ -n "$f" ] && kill $f && wait $f 2>/dev/null || true
done
