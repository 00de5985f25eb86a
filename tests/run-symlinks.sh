#!/bin/sh
# Symlinks a bundle brings that lead outside it, run end to end with
# `surplus run`: a Python virtual environment (bin/python3 ->
# /usr/bin/python3) runs its python inside the sandbox, and a bundle whose
# declared outputs are links to /etc, /etc/shadow, the node's job
# directories or up out of its own directory gets nothing of the host back.
. "$top_srcdir/tests/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "surplus run needs root (namespaces, job uids)"
unshare -mpinu --fork true 2>/dev/null ||
    skip_all "this host cannot create namespaces"

uid_base=387000
cat > "$tmp/test.conf" <<CONF
state_dir = "$tmp/state";
sandbox = { uid_base = $uid_base; kill_grace = "1s"; };
CONF
S() { run "$SURPLUS" --config "$tmp/test.conf" "$@"; }

# mkjob NAME COMMAND-ARRAY [EXTRA-MANIFEST-LINES]: a bundle in $tmp/NAME.tar.zst
# from the files already in $tmp/NAME/.
mkjob() {
    mkdir -p "$tmp/$1"
    printf 'api = 1;\nname = "%s";\ncommand = %s;\n%s\n' "$1" "$2" "${3:-}" \
        > "$tmp/$1/job.conf"
    S bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2> "$tmp/err"
}

# --- a Python virtual environment -------------------------------------------------
# Debian's python3 (python3-venv), the one the sandbox shows under /usr.
if /usr/bin/python3 -m venv --without-pip "$tmp/venv/venv" > "$tmp/err" 2>&1; then
    [ "$(readlink "$tmp/venv/venv/bin/python3")" = /usr/bin/python3 ]
    ok $? "python3 -m venv makes bin/python3 an absolute link: $(readlink "$tmp/venv/venv/bin/python3")"
    mkjob venv '["venv/bin/python", "-c", "import sys; open(\"venv.txt\", \"w\").write(\"%s %s\\n\" % (sys.prefix != sys.base_prefix, sys.prefix))"]' \
        'outputs = ["venv.txt"];'
    ok $? "bundle create accepts the venv: $(cat "$tmp/err")"
    S bundle check "$tmp/venv.tar.zst" > "$tmp/out" 2>&1
    ok $? "bundle check accepts it: $(cat "$tmp/out")"
    S run -o "$tmp/o-venv" "$tmp/venv.tar.zst" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    ok $rc "the venv job runs and exits 0 (exit $rc): $(tail -n 3 "$tmp/err")"
    grep -q '^True /.*/venv$' "$tmp/o-venv/venv.txt" 2>/dev/null
    ok $? "its python runs inside the venv (sys.prefix): $(cat "$tmp/o-venv/venv.txt" 2>/dev/null)"
else
    for t in link create check run prefix; do
        skip "venv: $t" "/usr/bin/python3 -m venv failed (python3-venv): $(head -n 1 "$tmp/err")"
    done
fi

# --- outputs declared through links out of the bundle ------------------------------
# A stand-in for another job's directory, where the node keeps its jobs.
peer="$tmp/state/jobs/0123456789abcdef/disk/work"
mkdir -p "$peer"
echo "peer-secret-$$" > "$peer/secret.txt"
mkdir -p "$tmp/escape/real"
ln -s /etc "$tmp/escape/out"
ln -s /etc/shadow "$tmp/escape/shadow"
ln -s "$tmp/state/jobs" "$tmp/escape/peer"
ln -s "$peer/secret.txt" "$tmp/escape/peerfile"
ln -s ../.. "$tmp/escape/up"
ln -s ../../../0123456789abcdef/disk/work "$tmp/escape/real/sibling"
mkjob escape '["/bin/sh", "-c", "echo mine > real/mine.txt"]' \
    'outputs = ["out/", "out/shadow", "shadow", "peer/", "peerfile", "up/", "real/"];'
ok $? "bundle create accepts links to /etc, /etc/shadow, the jobs directory and up: $(cat "$tmp/err")"
S run -o "$tmp/o-escape" "$tmp/escape.tar.zst" > "$tmp/out" 2> "$tmp/err"
rc=$?
ok $rc "the job runs and exits 0 (exit $rc): $(tail -n 3 "$tmp/err")"
[ "$(cat "$tmp/o-escape/real/mine.txt" 2>/dev/null)" = mine ]
ok $? "its real output is collected"
found=$(cd "$tmp/o-escape" 2>/dev/null && find . ! -type d | LC_ALL=C sort | tr '\n' ' ')
[ "$found" = "./job.log ./real/mine.txt " ]
ok $? "and nothing else: no file, no link from the host ($found)"
! grep -rq "peer-secret-$$\|^root:" "$tmp/o-escape" "$tmp/state/store" 2>/dev/null
ok $? "nothing of /etc or of the other job's directory reached the outputs or the store"
for o in out out/shadow shadow peer peerfile up real/sibling; do
    grep -q "output '$o' not collected: a symlink is never followed" "$tmp/o-escape/job.log" ||
        { diag "job.log lacks '$o'"; false; } || break
done
ok $? "job.log names each output a link stood for: $(grep -c 'a symlink is never followed' "$tmp/o-escape/job.log")"
[ "$(cat "$peer/secret.txt")" = "peer-secret-$$" ] &&
    [ "$(ls "$tmp/state/jobs")" = 0123456789abcdef ]
ok $? "the other job's directory is untouched and the job's own is removed"
done_testing
