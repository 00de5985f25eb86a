# tests/lib.sh - TAP helpers for shell tests.  Source it; call ok/skip and
# finish with `done_testing`.
n=0
failed=0
ok() { # ok CONDITION-EXIT-STATUS DESCRIPTION
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
diag() { echo "# $*"; }
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
done_testing() { echo "1..$n"; [ "$failed" -eq 0 ]; }
# Runs a built program, under valgrind in `make check-valgrind`.
run() { ${SURPLUS_VALGRIND} "$@"; }
SURPLUS="$top_builddir/surplus"
CHECKER="$top_builddir/surplus-plugin-check"
PLUGINS="$SURPLUS_PLUGIN_PATH"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/surplus-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# need_daemon: skips the whole test unless surplusd can run here (root,
# namespaces, curl to talk to it); sets SURPLUSD.
need_daemon() {
    [ "$(id -u)" -eq 0 ] || skip_all "surplusd needs root (namespaces, job uids)"
    unshare -mpinu --fork true 2>/dev/null ||
        skip_all "this host cannot create namespaces"
    command -v curl > /dev/null || skip_all "no curl"
    SURPLUSD="$top_builddir/surplusd"
}

# start_daemon: surplusd on "$tmp/d.conf" in the background ($daemon), its
# log appended to "$tmp/surplusd.log"; returns once it answers on "$sock".
# $drain_timeout (default 1s) is its --drain-timeout.
start_daemon() {
    "$SURPLUSD" -c "$tmp/d.conf" --foreground --drain-timeout "${drain_timeout:-1s}" \
        >> "$tmp/surplusd.log" 2>&1 &
    daemon=$!
    for i in $(seq 1 100); do
        curl -s --unix-socket "$sock" http://x/healthz > /dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}
