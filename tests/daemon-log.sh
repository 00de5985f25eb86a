#!/bin/sh
# surplusd's log lines: each names the daemon and, for warnings and
# errors, the level; when standard error is the journal (systemd's
# JOURNAL_STREAM names it) each line also starts with its syslog priority
# as "<N>", so `journalctl -p err` finds the errors.
. "$top_srcdir/tests/lib.sh"

need_daemon
sock="$tmp/surplus.sock"
printf 'state_dir = 5;\n' > "$tmp/bad.conf"
stream() { stat -c '%d:%i' "$1"; }

: > "$tmp/plain"
"$SURPLUSD" -c "$tmp/bad.conf" --foreground 2>> "$tmp/plain"
ok $(( $? == 78 ? 0 : 1 )) "a bad config exits 78"
grep -q "^surplusd: error: $tmp/bad.conf:1: state_dir: " "$tmp/plain"
ok $? "on a terminal or file: 'surplusd: error: FILE:LINE: KEY: ...'"
! grep -q '^<' "$tmp/plain"
ok $? "... with no priority prefix"

: > "$tmp/journal"
JOURNAL_STREAM=$(stream "$tmp/journal") \
    "$SURPLUSD" -c "$tmp/bad.conf" --foreground 2>> "$tmp/journal"
grep -q "^<3>surplusd: error: $tmp/bad.conf:1: state_dir: " "$tmp/journal"
ok $? "to the journal the error carries priority <3>"

: > "$tmp/other"
JOURNAL_STREAM=$(stream "$tmp/plain") \
    "$SURPLUSD" -c "$tmp/bad.conf" --foreground 2>> "$tmp/other"
grep -q "^surplusd: error: " "$tmp/other"
ok $? "a JOURNAL_STREAM naming another file (inherited, stderr redirected) adds no prefix"

cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 1; } );
sandbox = { uid_base = 354000; };
api = { socket = "$sock"; };
CONF
: > "$tmp/surplusd.log"
export JOURNAL_STREAM="$(stream "$tmp/surplusd.log")"
start_daemon
ok $? "surplusd starts with the journal as its stderr"
unset JOURNAL_STREAM
kill -TERM $daemon
wait $daemon
ok $? "and stops on SIGTERM with status 0"
grep -q "^<6>surplusd: serving on $sock" "$tmp/surplusd.log"
ok $? "its informational lines carry priority <6>"
! grep -v '^<[0-7]>surplusd: ' "$tmp/surplusd.log" | grep -q .
ok $? "every line it wrote has a priority"
done_testing
