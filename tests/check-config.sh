#!/bin/sh
# surplusd --check-config: checks a configuration the way a start would,
# plugins included (found, loaded with their ABI checked, started with
# their settings), without serving and without leaving anything behind: no
# state directory, no store, no ledger, no socket, no scratch files.  Exit
# 0 with a one-line summary, or 78 naming file:line or the plugin.  A
# running daemon on the same configuration is not disturbed.
. "$top_srcdir/tests/lib.sh"

SURPLUSD="$top_builddir/surplusd"
sock="$tmp/surplus.sock"
scratch="$tmp/scratch" # TMPDIR for the checks: must stay empty
mkdir "$scratch"
tok_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
cat > "$tmp/good.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 2; model = "SIM-80G"; memory = "1M"; } );
sandbox = { uid_base = 392000; kill_grace = "1s"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$tok_sha"; } );
CONF
# check [ARGS...]: surplusd --check-config ARGS, stdout in $tmp/out and
# stderr in $tmp/err; its exit status.
check() {
    TMPDIR="$scratch" run "$SURPLUSD" "$@" > "$tmp/out" 2> "$tmp/err"
}
left() { # what a check left behind, if anything
    ls -A "$scratch"
    ls -d "$tmp/state" "$sock" 2> /dev/null
}

check --check-config -c "$tmp/good.conf"
rc=$?
[ $rc -eq 0 ] && [ "$(wc -l < "$tmp/out")" -eq 1 ] &&
    grep -q "^$tmp/good.conf: configuration OK: storage/local, accounting/sqlite, 1 accelerator plugin(s), 1 tenant(s) (1 with a token), socket $sock\$" "$tmp/out"
ok $? "a good configuration: exit $rc and one line: $(cat "$tmp/out" "$tmp/err")"
[ -z "$(left)" ]
ok $? "it leaves nothing: no state_dir, store, ledger, socket or scratch files $(left)"
check -c "$tmp/good.conf" --check-config && check --config="$tmp/good.conf" --check-config &&
    check --check-config --config "$tmp/good.conf"
ok $? "-c/--config FILE are taken before or after --check-config $(cat "$tmp/err")"

# bad CONF-BODY: a configuration with the good one's basics and more.
bad() {
    cat > "$tmp/bad.conf" <<CONF
state_dir = "$tmp/state";
api = { socket = "$sock"; };
$1
CONF
    check --check-config -c "$tmp/bad.conf"
}
refused() { # refused DESCRIPTION PATTERN: exit 78, stderr matching
    [ $rc -eq 78 ] && grep -q -- "$2" "$tmp/err" && [ ! -s "$tmp/out" ] && [ -z "$(left)" ]
    ok $? "$1: exit $rc, $(cat "$tmp/err" "$tmp/out") $(left)"
}

bad 'accelerators = ( { plugin = "sim"; },
                 { plugin = "nosuch"; } );'
rc=$?
refused "a missing plugin is named with where it is asked for" \
    "^surplusd: accelerators\[1\] ($tmp/bad.conf:4): no plugin accelerator_nosuch.so in "
bad 'colour = "blue";'
rc=$?
refused "an unknown key is named with file:line" "^surplusd: $tmp/bad.conf:3: colour: unknown key"
bad 'accelerators = ( { plugin = "sim"; memory = "lots"; } );'
rc=$?
refused "a setting the plugin refuses is named with the plugin and file:line" \
    "^surplusd: accelerator/sim: $tmp/bad.conf:3: accelerators\[0\].memory: expected a size"
bad 'storage = { plugin = "local"; colour = "blue"; };'
rc=$?
refused "a key the plugin does not use is named" \
    "^surplusd: $tmp/bad.conf:3: unknown key 'colour' in storage (the plugin does not use it)"
bad 'accounting = { plugin = "sqlite"; path = ""; };'
rc=$?
refused "an empty path is the plugin's to refuse" "accounting/sqlite.*path is required"
printf 'state_dir = "%s";\n' "$tmp/good.conf" > "$tmp/bad.conf"
check --check-config -c "$tmp/bad.conf"
rc=$?
refused "a state_dir that is a file" "state_dir $tmp/good.conf: not a directory"

# Fixture plugins: the ABI checks, and a plugin's own check of a setting.
if [ -n "$SURPLUS_FIXTURE_DIR" ] && [ -e "$SURPLUS_FIXTURE_DIR/storage_wrongmajor.so" ]; then
    plugins=$SURPLUS_PLUGIN_PATH
    SURPLUS_PLUGIN_PATH="$SURPLUS_FIXTURE_DIR:$plugins"
    bad 'storage = { plugin = "wrongmajor"; };'
    rc=$?
    refused "a plugin built for another ABI is refused before it runs" \
        "storage_wrongmajor.so.*ABI"
    bad 'storage = { plugin = "badsetting"; count = 3; };'
    rc=$?
    refused "a plugin's own refusal of a setting" "storage/badsetting.*count must not be positive"
    SURPLUS_PLUGIN_PATH=$plugins
else
    skip "ABI checks" "no fixture plugins"
    skip "a plugin's own check" "no fixture plugins"
fi

check --check-config --no-such-option
[ $? -eq 64 ]
ok $? "an unknown option is a usage error (64)"

# --- beside a running daemon ---------------------------------------------------
if [ "$(id -u)" -ne 0 ] || ! unshare -mpinu --fork true 2>/dev/null ||
    ! command -v curl > /dev/null; then
    skip "beside a running surplusd" "needs root, namespaces and curl"
    done_testing
    exit
fi
cp "$tmp/good.conf" "$tmp/d.conf"
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$tmp"' EXIT
start_daemon
ok $? "surplusd serves the same configuration"
ino=$(stat -c %i "$sock")
touch "$tmp/mark"
find "$tmp/state" > "$tmp/state.before"
check --check-config -c "$tmp/d.conf"
rc=$?
[ $rc -eq 0 ] && [ "$(stat -c %i "$sock")" = "$ino" ] &&
    curl -s --max-time 30 --unix-socket "$sock" http://x/healthz > /dev/null
ok $? "a check beside it exits $rc and leaves its socket in place and answering"
find "$tmp/state" > "$tmp/state.after"
changed=$(find "$tmp/state" -newer "$tmp/mark")
cmp -s "$tmp/state.before" "$tmp/state.after" && [ -z "$changed" ] && [ -z "$(ls -A "$scratch")" ]
ok $? "and touches nothing in its state_dir $changed"
kill -TERM $daemon
wait $daemon
ok $? "surplusd stops cleanly afterwards"
[ $failed -eq 0 ] || sed 's/^/# log: /' "$tmp/surplusd.log"
done_testing
