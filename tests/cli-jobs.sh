#!/bin/sh
# What the job verbs print and how they exit, against a real surplusd:
# job ids by unique prefix, cancel showing the state after, fetch (only of
# an ended job, with job.log, into ./NAME-ID/), the end of submit --wait,
# an unreachable socket named by its path, list's filters as query
# parameters, and bash completion of job ids.
. "$top_srcdir/tests/lib.sh"

need_daemon
chmod 711 "$tmp"
sock="$tmp/surplus.sock"
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 2; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 342000; kill_grace = "1s"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; max_gpus = 1; max_queued = 100; } );
CONF
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
A() { run "$SURPLUS" --config "$tmp/d.conf" --token-file "$tmp/acme.tok" "$@"; }
mkjob() { # mkjob NAME SCRIPT [MANIFEST-LINES]
    mkdir -p "$tmp/$1"
    printf '%s\n' "$2" > "$tmp/$1/run.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "run.sh"];\n%s\n' "$1" "${3:-}" > "$tmp/$1/job.conf"
    "$SURPLUS" --config "$tmp/d.conf" bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2>&1
}
mkjob quick 'echo quick-output; echo result > res.txt' 'outputs = ["res.txt"];'
mkjob slow 'echo started; sleep 60'
mkjob fail3 'echo failing; exit 3'
mkjob two 'true' 'resources = { gpus = 2; };'

# ---- an unreachable daemon is named by its socket -----------------------------
A list > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 75 ] && grep -q "^surplus: cannot reach surplusd at socket $sock: No such file or directory (is surplusd running?" "$tmp/err" &&
    ! grep -q "localhost port 80" "$tmp/err"
ok $? "with no daemon, surplus names the socket and exits 75 ($rc): $(cat "$tmp/err")"

start_daemon
ok $? "surplusd starts"

# ---- submit --wait ends with the status, the reason and where outputs are -----
A submit --wait "$tmp/quick.tar.zst" > "$tmp/out" 2> "$tmp/err"
rc=$?
q=$(head -n 1 "$tmp/out")
[ $rc -eq 0 ] && grep -q "^surplus: job $q 'quick' succeeded (exit 0)$" "$tmp/err" &&
    grep -q "^surplus: outputs: kept by surplusd; surplus fetch $q writes them and job.log to ./quick-$q/$" "$tmp/err"
ok $? "submit --wait ends with the exit status and where the outputs are ($rc): $(cat "$tmp/err")"
A submit --wait "$tmp/fail3.tar.zst" > "$tmp/out" 2> "$tmp/err"
rc=$?
f=$(head -n 1 "$tmp/out")
[ $rc -eq 3 ] && grep -q "^surplus: job $f 'fail3' failed (exit 3)$" "$tmp/err"
ok $? "... a failed job: its status, exit 3 ($rc): $(cat "$tmp/err")"

# ---- more GPUs than the tenant's max_gpus: never, so 69 -------------------------
A submit "$tmp/two.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 69 ] && grep -q "max_gpus = 1" "$tmp/err"
ok $? "a job over max_gpus exits 69 and says the tenant's max_gpus ($rc): $(cat "$tmp/err")"
A submit --wait "$tmp/two.tar.zst" > /dev/null 2> "$tmp/err"
ok $(( $? != 69 )) "... with --wait too"

# ---- job ids by unique prefix -----------------------------------------------------
p=$(printf %.6s "$q")
A status "$p" > "$tmp/out" 2> "$tmp/err" && grep -q "^job: *$q$" "$tmp/out"
ok $? "status takes a unique prefix of a job id ($p): $(cat "$tmp/err")"
A logs "$p" > "$tmp/out" 2> "$tmp/err" && grep -q "^quick-output$" "$tmp/out"
ok $? "... so does logs"
# 16 hex digits, 17 jobs: two share a first digit.
for i in $(seq 1 15); do A submit "$tmp/quick.tar.zst" > /dev/null 2>&1; done
amb=$(A list | awk 'NR > 1 { print substr($1, 1, 1) }' | sort | uniq -d | head -n 1)
A status "$amb" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 64 ] && grep -q "^surplus: job id prefix '$amb' is ambiguous: [0-9]* jobs match: $amb" "$tmp/err"
ok $? "an ambiguous prefix exits 64 naming the candidates ($rc): $(cat "$tmp/err")"
A status abcdef0 > /dev/null 2> "$tmp/err"
rc=$?
A list | grep -q '^abcdef0' || { [ $rc -eq 64 ] && grep -q "no job of yours has an id starting with 'abcdef0'" "$tmp/err"; }
ok $? "a prefix of no job exits 64 and says so ($rc): $(cat "$tmp/err")"

# ---- fetch -----------------------------------------------------------------------
mkdir -p "$tmp/cwd"
(cd "$tmp/cwd" && A fetch "$p") > /dev/null 2> "$tmp/err" &&
    [ "$(cat "$tmp/cwd/quick-$q/res.txt")" = result ] &&
    grep -q "^quick-output$" "$tmp/cwd/quick-$q/job.log" &&
    grep -q "^surplus: 1 output file(s) and job.log in quick-$q/$" "$tmp/err"
ok $? "fetch writes the outputs and job.log to ./NAME-ID/, as run does: $(cat "$tmp/err") $(ls "$tmp/cwd")"
A submit "$tmp/slow.tar.zst" > "$tmp/s" 2> /dev/null
s=$(cat "$tmp/s")
for i in $(seq 1 600); do A logs "$s" 2>/dev/null | grep -q started && break; sleep 0.1; done
A fetch "$s" -o "$tmp/slow-out" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 75 ] && grep -q "job $s is running: its outputs and log are collected when it ends" "$tmp/err" &&
    [ ! -e "$tmp/slow-out" ]
ok $? "fetch of a job still running says so, writes nothing and exits 75 ($rc): $(cat "$tmp/err")"

# ---- cancel prints the state after ------------------------------------------------
A cancel "$s" > "$tmp/out" 2> "$tmp/err"
rc=$?
[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "$s cancelled" ]
ok $? "cancel of a running job prints the state after: cancelled ($rc): $(cat "$tmp/out" "$tmp/err")"

# ---- list filters go to the server as query parameters --------------------------
A list --state running --state queued,failed --since 2026-11-23T12:00:00+01:00 > /dev/null 2> "$tmp/err"
diag "list with filters: exit $? $(cat "$tmp/err")"
python3 - "$tmp/fake.sock" "$tmp/paths" <<'PY' &
import http.server, socketserver, sys, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        open(sys.argv[2], "a").write(self.path + "\n")
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
    def address_string(self): return "unix"
class S(socketserver.UnixStreamServer):
    pass
srv = S(sys.argv[1], H)
srv.timeout = 60
srv.handle_request()
PY
fake=$!
for i in $(seq 1 100); do [ -S "$tmp/fake.sock" ] && break; sleep 0.1; done
run "$SURPLUS" list --socket "$tmp/fake.sock" --state running --state queued,failed \
    --since 2026-11-23T12:00:00+01:00 --tenant acme > /dev/null 2> "$tmp/err"
wait $fake
[ "$(cat "$tmp/paths")" = "/v1/jobs?state=running&state=queued,failed&since=2026-11-23T12%3A00%3A00%2B01%3A00&tenant=acme" ]
ok $? "list --state/--since/--tenant send state=, since= and tenant= as given: $(cat "$tmp/paths" "$tmp/err")"

# ---- bash completion of job ids ----------------------------------------------------
comp() {
    SURPLUS="$SURPLUS" bash -c '
        . "$1/core/cli/completion/surplus"
        shift
        COMP_WORDS=("$SURPLUS" "$@"); COMP_CWORD=$#
        _surplus
        printf "%s\n" "${COMPREPLY[@]}"' bash "$top_srcdir" "$@"
}
[ "$(comp --config "$tmp/d.conf" --token-file "$tmp/acme.tok" status "$p")" = "$q" ]
ok $? "bash completes a job id from its prefix, asking surplusd: $(comp --config "$tmp/d.conf" --token-file "$tmp/acme.tok" status "$p" | tr '\n' ' ')"
[ "$(comp --config "$tmp/d.conf" --token-file "$tmp/acme.tok" logs "" | wc -l)" -eq "$(A list | tail -n +2 | wc -l)" ]
ok $? "... and offers every job of the tenant"

kill -TERM $daemon; wait $daemon
ok $? "surplusd drains and exits 0"
done_testing
