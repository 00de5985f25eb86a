#!/bin/sh
# Tenant tokens, as an operator makes and configures them: `surplus token
# new` prints a fresh random token and the surplus.conf line for it (with
# no configuration and no daemon), and the line pasted into surplus.conf
# lets the token in.  When a token is refused, surplusd's log says from
# where, names the tenant whose token_sha256 was computed over the token
# with a trailing newline (`echo TOKEN | sha256sum`) and the command that
# gets it right, never shows the token or a hash of it, and a flood of bad
# tokens gives at most a line a second, the next line counting the rest.
. "$top_srcdir/tests/lib.sh"

command -v python3 > /dev/null || skip_all "no python3 to read JSON"

hex64() { printf %s "$1" | grep -qx '[0-9a-f]\{64\}'; }
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

# --- surplus token new ----------------------------------------------------------
# --config names no file: the verb must not read one.
run "$SURPLUS" --config "$tmp/none.conf" token new > "$tmp/t1" 2> "$tmp/err"
rc=$?
tok1=$(sed -n 1p "$tmp/t1")
line1=$(sed -n 2p "$tmp/t1")
[ $rc -eq 0 ] && [ "$(wc -l < "$tmp/t1")" -eq 2 ] && [ ! -s "$tmp/err" ] &&
    hex64 "$tok1"
ok $? "token new prints a token of 64 hex digits, without a configuration (exit $rc): $(cat "$tmp/t1" "$tmp/err")"
[ "$line1" = "token_sha256 = \"$(sha "$tok1")\";" ]
ok $? "and the token_sha256 line, the sha256 of the token alone: $line1"
run "$SURPLUS" token new > "$tmp/t2" 2>&1
[ "$(sed -n 1p "$tmp/t2")" != "$tok1" ] && hex64 "$(sed -n 1p "$tmp/t2")"
ok $? "a second token differs from the first"

run "$SURPLUS" token new --tenant beta > "$tmp/tb" 2> "$tmp/err"
rc=$?
beta_tok=$(sed -n 1p "$tmp/tb")
beta_line=$(sed -n 2p "$tmp/tb")
[ $rc -eq 0 ] && hex64 "$beta_tok" &&
    [ "$beta_line" = "{ name = \"beta\"; token_sha256 = \"$(sha "$beta_tok")\"; }" ]
ok $? "token new --tenant beta prints the tenant's group for tenants = ( ... ): $beta_line $(cat "$tmp/err")"

printf 'state_dir = "%s/state";\ntenants = ( %s );\n' "$tmp" "$beta_line" > "$tmp/paste.conf"
run "$top_builddir/surplusd" --check-config -c "$tmp/paste.conf" > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "1 tenant(s) (1 with a token)" "$tmp/out"
ok $? "that line pasted into tenants = ( ... ) is a valid configuration (exit $rc): $(cat "$tmp/out")"

run "$SURPLUS" --json token new --tenant gamma > "$tmp/tj" 2>&1
rc=$?
python3 - "$tmp/tj" << 'EOF'
import hashlib, json, sys
o = json.load(open(sys.argv[1]))
t = o["token"]
assert len(t) == 64 and all(c in "0123456789abcdef" for c in t), t
h = hashlib.sha256(t.encode()).hexdigest()
assert o["token_sha256"] == h, o
assert o["tenant"] == "gamma", o
assert o["config"] == '{ name = "gamma"; token_sha256 = "%s"; }' % h, o
EOF
ok $(($? + rc)) "--json gives token, token_sha256, tenant and config as fields: $(tr -d '\n' < "$tmp/tj")"

run "$SURPLUS" token new --tenant 'Bad Name' > "$tmp/out" 2> "$tmp/err"
rc=$?
[ $rc -eq 64 ] && [ ! -s "$tmp/out" ] && grep -q "tenant name 'Bad Name' is not valid" "$tmp/err"
ok $? "a tenant name surplus.conf would refuse is refused, exit 64, no token printed: $(cat "$tmp/err")"
run "$SURPLUS" token new --tenant root > "$tmp/out" 2> "$tmp/err"
[ $? -eq 64 ] && [ ! -s "$tmp/out" ] && grep -q "'root' is reserved" "$tmp/err"
ok $? "so is a reserved one: $(cat "$tmp/err")"
run "$SURPLUS" token old > "$tmp/out" 2> "$tmp/err"
[ $? -eq 64 ] && grep -q "expected new, not 'old'" "$tmp/err"
ok $? "an unknown subcommand is a usage error: $(cat "$tmp/err")"

# --- the daemon: the pasted line works; a newline-hashed one is explained -----
if [ "$(id -u)" -ne 0 ] || ! unshare -mpinu --fork true 2>/dev/null ||
    ! command -v curl > /dev/null; then
    skip "surplusd with these tokens" "needs root, namespaces and curl"
    done_testing
    exit
fi
SURPLUSD="$top_builddir/surplusd"
sock="$tmp/surplus.sock"
acme_tok=$(sed -n 1p "$tmp/t2")
# The classic mistake: echo adds a newline, and the hash is of "TOKEN\n".
acme_bad_sha=$(echo "$acme_tok" | sha256sum | cut -d' ' -f1)
acme_nl_sha=$acme_bad_sha
wrong_tok=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 1; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 388000; kill_grace = "1s"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_bad_sha"; },
            $beta_line );
CONF
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
get() { # get TOKEN: the status of GET /v1/jobs with that bearer token
    curl -s -o "$tmp/body" -w '%{http_code}' --max-time 30 --unix-socket "$sock" \
        -H "Authorization: Bearer $1" http://x/v1/jobs
}
refused() { grep -c 'refused a bearer token' "$tmp/surplusd.log"; }

start_daemon
ok $? "surplusd starts with the tenant line token new printed"
code=$(get "$beta_tok")
[ "$code" = 200 ]
ok $? "beta's token is accepted (HTTP $code)"
! grep -q refused "$tmp/surplusd.log"
ok $? "an accepted token logs no refusal"

code=$(get "$acme_tok")
[ "$code" = 401 ]
ok $? "acme's token, configured as the hash of the token and a newline, is refused (HTTP $code)"
for i in $(seq 1 100); do [ "$(refused)" -ge 1 ] && break; sleep 0.1; done
line=$(grep 'refused a bearer token' "$tmp/surplusd.log" | head -1)
printf %s "$line" | grep -q "from the Unix socket (uid 0)"
ok $? "the log says a token was refused and from where: $line"
printf %s "$line" | grep -q "token_sha256 of tenant 'acme' was computed over the token with a trailing newline: use printf %s TOKEN | sha256sum"
ok $? "and that acme's token_sha256 was hashed with a trailing newline, with the right command"

# A flood of wrong tokens: one curl, many requests.
urls=
for i in $(seq 1 60); do urls="$urls http://x/v1/jobs"; done
before=$(date +%s)
# shellcheck disable=SC2086
curl -s -o /dev/null --max-time 60 --unix-socket "$sock" \
    -H "Authorization: Bearer $wrong_tok" $urls > /dev/null
after=$(date +%s)
lines=$(refused)
[ "$lines" -le $((after - before + 2)) ]
ok $? "61 refusals within $((after - before + 1))s give at most a line a second ($lines lines)"
# Then one more, a while later, until it is logged: every refusal is
# either a line or counted in the next one.
sent=61
for i in $(seq 1 40); do
    sleep 0.3
    get "$wrong_tok" > /dev/null
    sent=$((sent + 1))
    [ "$(refused)" -gt "$lines" ] && break
done
lines=$(refused)
counted=$(grep -o 'and [0-9]* more refused since the last such line' "$tmp/surplusd.log" |
    awk '{ n += $2 } END { print n + 0 }')
[ $((lines + counted)) -eq $sent ]
ok $? "the lines ($lines) and the refusals they count as left out ($counted) add up to the $sent refused: $(grep 'more refused' "$tmp/surplusd.log" | tail -1)"
! grep 'refused a bearer token' "$tmp/surplusd.log" | grep -v "tenant 'acme'" | grep -q 'trailing newline'
ok $? "a token matching nothing gets no newline hint"

# Another scheme than Bearer: said so, once the rate allows a line.
basic=$(printf 'acme:%s' "$acme_tok" | base64 -w0)
for i in $(seq 1 40); do
    sleep 0.3
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 --unix-socket "$sock" \
        -H "Authorization: Basic $basic" http://x/v1/jobs)
    grep -q 'Authorization header is not "Bearer TOKEN"' "$tmp/surplusd.log" && break
done
[ "$code" = 401 ] &&
    grep -q 'refused a request from the Unix socket (uid 0): its Authorization header is not "Bearer TOKEN"' "$tmp/surplusd.log"
ok $? "an Authorization header of another scheme is refused (HTTP $code) and logged as such"
grep -qF "$basic" "$tmp/surplusd.log" && leaked_basic=1
[ -z "${leaked_basic:-}" ]
ok $? "without its credentials"

# Secrets: neither token, nor any hash of one, is in the log.
leaked=
for s in "$acme_tok" "$wrong_tok" "$beta_tok" "$acme_nl_sha" "$(sha "$acme_tok")" \
    "$(sha "$wrong_tok")" "$(echo "$wrong_tok" | sha256sum | cut -d' ' -f1)"; do
    grep -qF "$s" "$tmp/surplusd.log" && leaked="$leaked $s"
done
[ -z "$leaked" ]
ok $? "the log shows no token and no hash of one${leaked:+: leaked$leaked}"

kill -TERM $daemon 2>/dev/null
wait $daemon 2>/dev/null
grep -q '^' "$tmp/surplusd.log" || diag "empty log"
[ $failed -eq 0 ] || sed 's/^/# log: /' "$tmp/surplusd.log"
done_testing
