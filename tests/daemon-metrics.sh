#!/bin/sh
# GET /metrics is the operator's: root on the Unix socket and the token of
# api.metrics_token_sha256 read it; a tenant's token gets 403 with a JSON
# error, and the metrics token reads nothing else.  Each device has a
# surplus_device_unhealthy gauge.  A metrics token that is not a sha256,
# or that is a tenant's, is refused at load with file:line.
. "$top_srcdir/tests/lib.sh"

need_daemon
sock="$tmp/surplus.sock"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
mon_sha=$(printf monitor-token | sha256sum | cut -d' ' -f1)
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 2; model = "SIM-80G"; memory = "1M"; unhealthy = 1; } );
sandbox = { uid_base = 387000; };
api = { socket = "$sock"; metrics_token_sha256 = "$mon_sha"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; } );
CONF
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
# api [CURL-ARGS...] URL: the status code; the body in $tmp/body
api() { curl -s -o "$tmp/body" -w '%{http_code}' --unix-socket "$sock" "$@"; }

start_daemon
ok $? "surplusd starts with a metrics token"

st=$(api http://x/metrics)
[ "$st" = 200 ] && grep -q '^surplus_queue_length 0$' "$tmp/body"
ok $? "root on the socket reads /metrics ($st)"

grep -q '^# TYPE surplus_device_unhealthy gauge$' "$tmp/body" &&
    grep -q '^surplus_device_unhealthy{device="sim-0",plugin="accelerator/sim",model="SIM-80G"} 0$' "$tmp/body" &&
    grep -q '^surplus_device_unhealthy{device="sim-1",plugin="accelerator/sim",model="SIM-80G"} 1$' "$tmp/body"
ok $? "surplus_device_unhealthy is 0 for the healthy device and 1 for the unhealthy one: $(grep '^surplus_device_unhealthy' "$tmp/body" | tr '\n' ' ')"

st=$(api -H 'Authorization: Bearer acme-token' http://x/metrics)
[ "$st" = 403 ] && python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["status"] == 403 and "operator" in j["error"], j' "$tmp/body"
ok $? "a tenant's token gets 403 with a JSON error ($st: $(cat "$tmp/body"))"
! grep -q surplus_ "$tmp/body"
ok $? "and no figures"

st=$(api -H 'Authorization: Bearer monitor-token' http://x/metrics)
[ "$st" = 200 ] && grep -q '^surplus_devices{state="free"} 1$' "$tmp/body"
ok $? "the metrics token reads /metrics ($st)"

st=$(api -H 'Authorization: Bearer monitor-token' http://x/v1/jobs)
st2=$(api -H 'Authorization: Bearer monitor-token' -X POST --data-binary @/dev/null http://x/v1/jobs)
st3=$(api -H 'Authorization: Bearer monitor-token' http://x/v1/devices)
[ "$st" = 403 ] && [ "$st2" = 403 ] && [ "$st3" = 403 ]
ok $? "the metrics token reads nothing else: GET /v1/jobs $st, POST /v1/jobs $st2, GET /v1/devices $st3"

st=$(api -H 'Authorization: Bearer wrong-token' http://x/metrics)
[ "$st" = 401 ]
ok $? "a token that is no one's is still 401 ($st)"
kill -TERM $daemon; wait $daemon

# Bad metrics tokens are refused at load, with file:line.
sed "s/metrics_token_sha256 = \"$mon_sha\"/metrics_token_sha256 = \"monitor-token\"/" "$tmp/d.conf" > "$tmp/bad.conf"
run "$SURPLUSD" -c "$tmp/bad.conf" --check-config > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 78 ] && grep -q "bad.conf:4: api.metrics_token_sha256: expected 64 lower-case hex digits" "$tmp/out"
ok $? "a metrics token that is not a sha256 is refused (exit $rc: $(cat "$tmp/out"))"
sed "s/metrics_token_sha256 = \"$mon_sha\"/metrics_token_sha256 = \"$acme_sha\"/" "$tmp/d.conf" > "$tmp/bad.conf"
run "$SURPLUSD" -c "$tmp/bad.conf" --check-config > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 78 ] && grep -q "bad.conf:5: .*tenant 'acme' has the same token as api.metrics_token_sha256" "$tmp/out"
ok $? "a metrics token that is a tenant's is refused (exit $rc: $(cat "$tmp/out"))"
done_testing
