#!/bin/sh
# surplusd on TCP with TLS (api.listen, api.tls_cert, api.tls_key): a tenant
# works with --url https://... --token-file --cacert, and what must fail
# does: plain HTTP, a client that does not trust the certificate, a wrong
# or missing token (no administrator on TCP), and a daemon whose
# certificate or key is wrong, which refuses to start.
. "$top_srcdir/tests/lib.sh"

need_daemon
command -v openssl > /dev/null || skip_all "no openssl to make certificates"

sock="$tmp/surplus.sock"

# --- a throwaway CA and a certificate for 127.0.0.1 (and no name) ----------
pki() { openssl "$@" >> "$tmp/openssl.log" 2>&1; }
mkca() { # mkca NAME
    pki req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" \
        -keyout "$tmp/$1.key" -out "$tmp/$1.pem"
}
mkca test-ca && mkca other-ca &&
    pki req -newkey rsa:2048 -nodes -subj /CN=surplusd-test \
        -keyout "$tmp/server.key" -out "$tmp/server.csr" &&
    printf 'subjectAltName = IP:127.0.0.1\n' > "$tmp/server.ext" &&
    pki x509 -req -days 2 -in "$tmp/server.csr" -CA "$tmp/test-ca.pem" \
        -CAkey "$tmp/test-ca.key" -CAcreateserial -extfile "$tmp/server.ext" \
        -out "$tmp/server.pem" &&
    pki genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$tmp/stray.key"
rc=$?
ok $rc "openssl makes a CA and a server certificate for 127.0.0.1"
[ $rc -eq 0 ] || sed 's/^/# /' "$tmp/openssl.log"
chmod 600 "$tmp"/*.key

port=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="https://127.0.0.1:$port"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
beta_sha=$(printf beta-token | sha256sum | cut -d' ' -f1)
printf 'acme-token\n' > "$tmp/acme.tok"
printf beta-token > "$tmp/beta.tok"
printf wrong-token > "$tmp/wrong.tok"
conf() { # conf FILE API-GROUP-BODY
    cat > "$1" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 2; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 347000; kill_grace = "1s"; };
api = { socket = "$sock"; $2 };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; },
            { name = "beta"; token_sha256 = "$beta_sha"; } );
CONF
}
conf "$tmp/d.conf" "listen = \"127.0.0.1:$port\"; tls_cert = \"server.pem\"; tls_key = \"server.key\";"

trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
# A tenant over HTTPS; R for one who trusts only the system's CAs (both run
# under valgrind in `make check-valgrind`).
T() { run "$SURPLUS" --url "$url" --token-file "$tmp/acme.tok" --cacert "$tmp/test-ca.pem" "$@"; }
R() { run "$SURPLUS" --url "$url" --token-file "$tmp/acme.tok" "$@"; }
https() { curl -s -o "$tmp/body" -w '%{http_code}' --cacert "$tmp/test-ca.pem" "$@"; }

start_daemon
ok $? "surplusd starts with api.listen and TLS"
grep -q "serving on $sock and https://127.0.0.1:$port" "$tmp/surplusd.log"
ok $? "it says where it serves: $(grep serving "$tmp/surplusd.log")"
# /proc/net/tcp: local address 0100007F:PORT (hex) in state 0A (LISTEN).
hexport=$(printf '%04X' "$port")
listening=$(awk -v p=":$hexport" '$4 == "0A" && substr($2, length($2) - 4) == p { print $2 }' /proc/net/tcp /proc/net/tcp6)
[ "$listening" = "0100007F:$hexport" ]
ok $? "it listens on 127.0.0.1 only, as api.listen says ($listening)"

# --- a tenant over HTTPS ------------------------------------------------------
"$SURPLUS" bundle create "$top_srcdir/examples/jobs/hello" -o "$tmp/hello.tar.zst" > /dev/null 2>&1
T submit --wait "$tmp/hello.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
id=$(sed -n 's/^surplus: job \([0-9a-f]\{16\}\) submitted.*/\1/p' "$tmp/err")
[ $rc -eq 0 ] && [ -n "$id" ]
ok $? "submit --wait over HTTPS with --cacert runs the hello job to its end (exit $rc, job $id) $(cat "$tmp/err")"
T list > "$tmp/out" 2>&1 && grep -q "^$id  acme .* succeeded " "$tmp/out"
ok $? "list over HTTPS shows it succeeded: $(cat "$tmp/out")"
T status "$id" > "$tmp/out" 2>&1 && grep -q '^state: *succeeded$' "$tmp/out" &&
    grep -q '^tenant: *acme$' "$tmp/out"
ok $? "status over HTTPS"
T logs "$id" > "$tmp/out" 2>&1 && grep -q "^Hello, world! This is job $id (hello)\.$" "$tmp/out"
ok $? "logs over HTTPS: $(head -n 1 "$tmp/out")"
T fetch "$id" -o "$tmp/fetched" > /dev/null 2> "$tmp/err" &&
    grep -q "^surplus: 3 output file(s) and job.log in $tmp/fetched/$" "$tmp/err" &&
    grep -q "^Hello, world! This is job $id (hello)\.$" "$tmp/fetched/job.log" &&
    [ "$(cat "$tmp/fetched/out/greeting.txt")" = "Hello, world!" ] &&
    grep -q "^job=$id$" "$tmp/fetched/summary.txt"
ok $? "fetch over HTTPS downloads the outputs $(cat "$tmp/err")"
"$SURPLUS" --url "$url/" --token-file "$tmp/acme.tok" --cacert "$tmp/test-ca.pem" status "$id" > /dev/null 2>&1
ok $? "a --url with a trailing slash works too"
"$SURPLUS" --url "$url" --token-file "$tmp/beta.tok" --cacert "$tmp/test-ca.pem" status "$id" > /dev/null 2> "$tmp/err"
[ $? -eq 64 ] && grep -q "no job $id (HTTP 404)" "$tmp/err"
ok $? "another tenant over HTTPS does not see the job: $(cat "$tmp/err")"
[ "$(https "$url/healthz")" = 200 ]
ok $? "/healthz answers over HTTPS without a token"

# --- exit codes of submit --wait and of an unreachable daemon -------------------
mkdir -p "$tmp/three"
printf 'api = 1;\nname = "three";\ncommand = ["/bin/true"];\nresources = { gpus = 3; };\n' > "$tmp/three/job.conf"
"$SURPLUS" bundle create "$tmp/three" -o "$tmp/three.tar.zst" > /dev/null 2>&1
T submit --wait "$tmp/three.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 69 ] && grep -q "^surplus: job [0-9a-f]\{16\} 'three' failed (it did not run)$" "$tmp/err" &&
    grep -q "^surplus: reason: asks for 3 GPUs, but only 2 devices" "$tmp/err"
ok $? "submit --wait of a job no device here can serve exits 69 ($rc): $(cat "$tmp/err")"
T --json submit --wait "$tmp/three.tar.zst" 2> /dev/null |
    python3 -c 'import json,sys; j = json.load(sys.stdin); assert j["state"] == "failed" and j["reason_code"] == "no_device", j'
ok $? "... and its JSON says reason_code no_device"
"$SURPLUS" --socket "$tmp/nonesuch.sock" list > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 75 ] && grep -q "cannot reach surplusd at socket $tmp/nonesuch.sock: No such file or directory" "$tmp/err" &&
    ! grep -q "port 80" "$tmp/err"
ok $? "a socket with no daemon behind it exits 75, try later ($rc): $(cat "$tmp/err")"

# --- usage over HTTPS: a tenant sees only its own records -----------------------
B() { run "$SURPLUS" --url "$url" --token-file "$tmp/beta.tok" --cacert "$tmp/test-ca.pem" "$@"; }
id_b=$(B submit --wait "$tmp/hello.tar.zst" 2> /dev/null)
[ -n "$id_b" ]
ok $? "beta runs a job over HTTPS too ($id_b)"
B --json usage > "$tmp/usage.json" 2> "$tmp/err"
rc=$?
[ $rc -eq 0 ] && python3 - "$tmp/usage.json" "$id_b" "$id" <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
assert recs and all(r["tenant"] == "beta" for r in recs), recs
assert sys.argv[2] in [r["job_id"] for r in recs], recs
assert sys.argv[3] not in [r["job_id"] for r in recs], recs
assert all(r["start"].endswith("Z") and r["devices"] is not None for r in recs), recs
PY
ok $? "usage --json over HTTPS: beta's records only, none of acme's ($rc) $(cat "$tmp/err")"
B usage --format csv > "$tmp/usage.csv" 2> "$tmp/err" &&
    head -n 1 "$tmp/usage.csv" | grep -q '^record_id,' &&
    grep -q ",$id_b,beta," "$tmp/usage.csv" && ! grep -q "$id" "$tmp/usage.csv" &&
    ! grep -q ',acme,' "$tmp/usage.csv"
ok $? "usage --format csv over HTTPS: $(tail -n +2 "$tmp/usage.csv" | head -n 1) $(cat "$tmp/err")"
B usage > "$tmp/usage.txt" 2> "$tmp/err" && grep -q "beta" "$tmp/usage.txt" &&
    ! grep -q "acme" "$tmp/usage.txt"
ok $? "usage as a table over HTTPS shows beta's records $(cat "$tmp/err")"
B usage --tenant acme --format csv > "$tmp/usage.csv" 2> "$tmp/err" &&
    [ "$(wc -l < "$tmp/usage.csv")" -eq 1 ]
ok $? "... and --tenant acme shows beta none of acme's: $(cat "$tmp/usage.csv")"
B --token-file "$tmp/wrong.tok" usage > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 77 ] && grep -q "HTTP 401" "$tmp/err"
ok $? "usage with a wrong token exits 77 ($rc): $(cat "$tmp/err")"
grep -q "refused a bearer token from 127.0.0.1:[0-9]*: it matches no tenant's token_sha256" "$tmp/surplusd.log" &&
    ! grep -q wrong-token "$tmp/surplusd.log"
ok $? "surplusd logs the refusal with the client's address and port, not the token: $(grep refused "$tmp/surplusd.log" | head -1)"
run "$SURPLUS" --socket "$sock" --json usage > "$tmp/usage.json" 2> "$tmp/err" &&
    python3 -c 'import json,sys; t = {r["tenant"] for r in json.load(open(sys.argv[1]))}; assert t == {"acme", "beta"}, t' "$tmp/usage.json"
ok $? "usage --socket as root (the administrator) shows every tenant's records $(cat "$tmp/err")"

# --- fetch --json ------------------------------------------------------------------
T --json fetch "$id" -o "$tmp/fetched-json" > "$tmp/fetch.json" 2> "$tmp/err" &&
    python3 - "$tmp/fetch.json" "$tmp/fetched-json" "$id" <<'PY'
import json, os, sys
j = json.load(open(sys.argv[1]))
assert j["job"] == sys.argv[3] and j["directory"] == sys.argv[2], j
assert len(j["files"]) == 4, j
assert any(f["path"] == "job.log" for f in j["files"]), j
for f in j["files"]:
    assert os.path.getsize(os.path.join(sys.argv[2], f["path"])) == f["bytes"], f
assert j["total_bytes"] == sum(f["bytes"] for f in j["files"]) > 0, j
assert any(f["path"] == "out/greeting.txt" for f in j["files"]), j
PY
ok $? "fetch --json prints the directory, each file with its size, and the total: $(tr -d '\n' < "$tmp/fetch.json") $(cat "$tmp/err")"

# --- what must fail -------------------------------------------------------------
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port/healthz")
[ "$code" = 000 ]
ok $? "plain HTTP to the TLS port gets no HTTP answer (code $code)"
"$SURPLUS" --url "http://127.0.0.1:$port" --token-file "$tmp/acme.tok" list > /dev/null 2> "$tmp/err"
[ $? -eq 64 ] && grep -q "expected https://" "$tmp/err"
ok $? "surplus refuses an http:// --url rather than send the token in clear: $(cat "$tmp/err")"
R list > /dev/null 2> "$tmp/err"
[ $? -eq 78 ] && grep -q "certificate problem" "$tmp/err" && grep -q -- "--cacert" "$tmp/err"
ok $? "a client that does not trust the CA exits 78 (configuration) naming the certificate problem: $(cat "$tmp/err")"
R --cacert "$tmp/other-ca.pem" list > /dev/null 2> "$tmp/err"
[ $? -eq 78 ] && grep -q "certificate problem" "$tmp/err"
ok $? "... and so does one that trusts another CA: $(cat "$tmp/err")"
"$SURPLUS" --url "https://localhost:$port" --token-file "$tmp/acme.tok" --cacert "$tmp/test-ca.pem" list > /dev/null 2> "$tmp/err"
[ $? -eq 78 ] && grep -q "localhost" "$tmp/err"
ok $? "a host name the certificate does not name is refused: $(cat "$tmp/err")"
T --cacert "$tmp/nonexistent.pem" list > /dev/null 2> "$tmp/err"
[ $? -eq 78 ] && grep -q "nonexistent.pem" "$tmp/err"
ok $? "a --cacert that cannot be read is a configuration error (78): $(cat "$tmp/err")"
"$SURPLUS" --socket "$sock" --cacert "$tmp/test-ca.pem" list > /dev/null 2> "$tmp/err"
[ $? -eq 64 ] && grep -q "cacert goes with --url" "$tmp/err"
ok $? "--cacert without --url is a usage error: $(cat "$tmp/err")"

[ "$(https "$url/v1/jobs" -H 'Authorization: Bearer wrong-token')" = 401 ] &&
    grep -q '"error":"the bearer token is not valid"' "$tmp/body"
ok $? "a wrong token over HTTPS gets 401"
T --token-file "$tmp/wrong.tok" list > /dev/null 2> "$tmp/err"
ok $(( $? != 77 )) "... and surplus exits 77: $(cat "$tmp/err")"
[ "$(https "$url/v1/jobs")" = 401 ] && grep -q 'a bearer token is needed' "$tmp/body"
ok $? "root on TCP without a token gets 401: no administrator over TCP"
[ "$(https "$url/v1/jobs" -H 'X-Surplus-Tenant: acme')" = 401 ]
ok $? "... nor may it act for a tenant with X-Surplus-Tenant"
[ "$(https -X POST --data-binary @"$tmp/hello.tar.zst" "$url/v1/jobs")" = 401 ]
ok $? "a submission without a token over TCP gets 401"
[ "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" http://x/v1/jobs)" = 200 ]
ok $? "root on the Unix socket is still the administrator"

# --- a daemon that cannot serve TLS refuses to start --------------------------------
refused() { # refused DESCRIPTION API-GROUP-BODY PATTERN [SURPLUSD-OPTIONS]
    what=$1 body=$2 pat=$3; shift 3
    conf "$tmp/bad.conf" "$body"
    sed -i "s|$sock|$tmp/bad.sock|; s|$tmp/state|$tmp/bad-state|" "$tmp/bad.conf"
    timeout 30 "$SURPLUSD" -c "$tmp/bad.conf" "$@" > "$tmp/out" 2>&1
    rc=$?
    [ $rc -eq 78 ] && grep -q "$pat" "$tmp/out"
    ok $? "$what: exit 78 ($rc): $(grep -v 'device(s)\|stopped' "$tmp/out")"
}
refused "api.listen without tls_cert and tls_key" \
    "listen = \"127.0.0.1:1\";" \
    "bad.conf:4: api.listen: TCP listening requires tls_cert and tls_key" --foreground
refused "a tls_cert that does not exist" \
    "listen = \"127.0.0.1:1\"; tls_cert = \"missing.pem\"; tls_key = \"server.key\";" \
    "api.tls_cert '$tmp/missing.pem': No such file or directory" --foreground
refused "a tls_key that does not exist" \
    "listen = \"127.0.0.1:1\"; tls_cert = \"server.pem\"; tls_key = \"missing.key\";" \
    "api.tls_key '$tmp/missing.key': No such file or directory" --foreground
refused "a tls_cert that holds a key" \
    "listen = \"127.0.0.1:1\"; tls_cert = \"server.key\"; tls_key = \"server.key\";" \
    "api.tls_cert '$tmp/server.key': no PEM certificate" --foreground
refused "a tls_key that holds a certificate" \
    "listen = \"127.0.0.1:1\"; tls_cert = \"server.pem\"; tls_key = \"server.pem\";" \
    "api.tls_key '$tmp/server.pem': no PEM private key" --foreground
refused "a tls_key that is not the certificate's" \
    "listen = \"127.0.0.1:1\"; tls_cert = \"server.pem\"; tls_key = \"stray.key\";" \
    "api.tls_key '$tmp/stray.key' with api.tls_cert '$tmp/server.pem': .*do not match" --foreground
refused "... also when surplusd detaches (the parent exits with the child's status)" \
    "listen = \"127.0.0.1:1\"; tls_cert = \"server.pem\"; tls_key = \"stray.key\";" \
    "api.tls_key '$tmp/stray.key'"
refused "a port another process holds" \
    "listen = \"127.0.0.1:$port\"; tls_cert = \"server.pem\"; tls_key = \"server.key\";" \
    "api.listen '127.0.0.1:$port': Address already in use" --foreground

kill -TERM $daemon; wait $daemon
ok $? "surplusd drains and exits 0"
grep -q 'error' "$tmp/surplusd.log" && diag "$(grep error "$tmp/surplusd.log" | head -5)"
done_testing
