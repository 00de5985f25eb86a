#!/bin/sh
# surplusd's answers that have to reach the client whole: an upload over
# limits.max_bundle_bytes is a 413 with a JSON error (with and without a
# Content-Length, with and without "Expect: 100-continue"), and a
# followed log (GET /v1/jobs/ID/log?follow=1, surplus logs -f) streams
# what a running job writes as it writes it and ends when the job does.
. "$top_srcdir/tests/lib.sh"

need_daemon
chmod 711 "$tmp"
sock="$tmp/surplus.sock"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
beta_sha=$(printf beta-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
printf beta-token > "$tmp/beta.tok"
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 1; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 340000; kill_grace = "1s"; };
limits = { max_bundle_bytes = "64K"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; max_gpus = 1; max_queued = 100; },
            { name = "beta"; token_sha256 = "$beta_sha"; max_gpus = 1; max_queued = 100; } );
CONF
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
B() { C --token-file "$tmp/beta.tok" "$@"; }
# api ARGS...: the HTTP status on stdout, the body in $tmp/body
api() { curl -s -o "$tmp/body" -w '%{http_code}' --unix-socket "$sock" "$@"; }
now_ms() { date +%s%3N; }

mkjob() { # mkjob NAME SCRIPT
    mkdir -p "$tmp/$1"
    printf '%s\n' "$2" > "$tmp/$1/run.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "run.sh"];\n' "$1" > "$tmp/$1/job.conf"
    C bundle create "$tmp/$1" -o "$tmp/$1.tar" > /dev/null 2>&1
}
mkjob quick 'echo quick-output'
mkjob lines 'for i in 1 2 3 4; do echo line$i; sleep 0.5; done'
# Over the limit: 200 KiB of incompressible data in an uncompressed tar.
mkdir -p "$tmp/big"
head -c 204800 /dev/urandom > "$tmp/big/blob"
printf 'api = 1;\nname = "big";\ncommand = ["/bin/true"];\n' > "$tmp/big/job.conf"
tar -C "$tmp/big" -cf "$tmp/big.tar" job.conf blob

start_daemon
ok $? "surplusd starts with limits.max_bundle_bytes = 64K"

# --- 413 ------------------------------------------------------------------------------
tooBig() { # tooBig STATUS: a 413 whose JSON error names the limit
    [ "$1" = 413 ] && python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["status"] == 413 and "limits.max_bundle_bytes" in j["error"], j' "$tmp/body"
}
st=$(api -H 'Authorization: Bearer acme-token' -H 'Expect:' --data-binary @"$tmp/big.tar" http://x/v1/jobs)
tooBig "$st"
ok $? "an over-limit upload with a Content-Length gets 413 naming limits.max_bundle_bytes (got $st: $(cat "$tmp/body"))"
st=$(api -H 'Authorization: Bearer acme-token' -H 'Expect: 100-continue' --data-binary @"$tmp/big.tar" http://x/v1/jobs)
tooBig "$st"
ok $? "... and with Expect: 100-continue (got $st)"
st=$(api -H 'Authorization: Bearer acme-token' -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/big.tar" http://x/v1/jobs)
tooBig "$st"
ok $? "... and chunked, with no Content-Length (got $st: $(cat "$tmp/body"))"
[ -z "$(ls "$tmp/state/spool" 2>/dev/null)" ]
ok $? "nothing of them is left in the spool"
A submit "$tmp/big.tar" > /dev/null 2> "$tmp/err"
rc=$?
[ "$rc" -eq 65 ] && grep -q 'limits.max_bundle_bytes' "$tmp/err"
ok $? "surplus submit of an over-limit bundle exits 65 (got $rc): $(cat "$tmp/err")"
id=$(A submit --wait "$tmp/quick.tar" 2>/dev/null) && A logs "$id" | grep -q '^quick-output$'
ok $? "the daemon still takes a bundle under the limit afterwards"
st=$(api -H 'Authorization: Bearer acme-token' -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/quick.tar" http://x/v1/jobs)
[ "$st" = 201 ]
ok $? "... chunked too (got $st: $(cat "$tmp/body"))"

# --- follow -----------------------------------------------------------------------------
# A job that writes a line every half second for two seconds.
id=$(A submit "$tmp/lines.tar" 2> "$tmp/err")
ok $? "a job writing four lines over 2 s is submitted ($id) $(cat "$tmp/err")"
curl -sN --unix-socket "$sock" -H 'Authorization: Bearer acme-token' \
    "http://x/v1/jobs/$id/log?follow=1" 2> /dev/null |
    while IFS= read -r line; do echo "$(now_ms) $line"; done > "$tmp/curl-follow" &
curl_pid=$!
A logs -f "$id" > "$tmp/cli-follow" 2> "$tmp/cli-err" &
cli_pid=$!
B logs -f "$id" > /dev/null 2> "$tmp/beta-err"
rc=$?
[ "$rc" -eq 64 ] && grep -q 'HTTP 404' "$tmp/beta-err"
ok $? "another tenant following the log gets 404 (exit $rc): $(cat "$tmp/beta-err")"
[ "$(api -H 'Authorization: Bearer beta-token' "http://x/v1/jobs/$id/log?follow=1")" = 404 ]
ok $? "... over HTTP too"
wait $curl_pid
end=$(now_ms)
first=$(sed -n 's/^\([0-9]*\) line1$/\1/p' "$tmp/curl-follow")
diag "line1 at $first, the stream ended at $end"
[ -n "$first" ] && [ $((end - first)) -ge 1000 ]
ok $? "GET /v1/jobs/ID/log?follow=1 sends line1 while the job still runs"
[ "$(cut -d' ' -f2 "$tmp/curl-follow" | tr '\n' ' ')" = "line1 line2 line3 line4 " ]
ok $? "... then every line, once, and ends when the job does: $(cut -d' ' -f2 "$tmp/curl-follow" | tr '\n' ' ')"
st=$(A status "$id" | sed -n 's/^state: *//p')
[ "$st" = succeeded ]
ok $? "... by which time the job is over (state $st)"
wait $cli_pid
rc=$?
[ "$rc" -eq 0 ] && [ "$(tr '\n' ' ' < "$tmp/cli-follow")" = "line1 line2 line3 line4 " ]
ok $? "surplus logs -f prints every line and exits 0 when the job ends (exit $rc): $(tr '\n' ' ' < "$tmp/cli-follow") $(cat "$tmp/cli-err")"
[ "$(api -H 'Authorization: Bearer acme-token' "http://x/v1/jobs/$id/log?follow=1&offset=6")" = 200 ] &&
    [ "$(tr '\n' ' ' < "$tmp/body")" = "line2 line3 line4 " ]
ok $? "follow of an ended job with offset=6 sends the rest and ends: $(tr '\n' ' ' < "$tmp/body")"

# A follower that hangs up is let go: the daemon keeps serving.
slow=$(A submit "$tmp/lines.tar" 2>/dev/null)
timeout 0.3 curl -sN --unix-socket "$sock" -H 'Authorization: Bearer acme-token' \
    "http://x/v1/jobs/$slow/log?follow=1" > /dev/null 2>&1
[ "$(api http://x/healthz)" = 200 ]
ok $? "a follower that hangs up mid-stream leaves the daemon healthy"

kill -TERM $daemon; wait $daemon
ok $? "surplusd stops cleanly"

done_testing
