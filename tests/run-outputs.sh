#!/bin/sh
# `surplus run` with outputs a hostile job shapes: trees too deep for a
# recursion (60 levels) and for the removal that stopped at 258 (300
# levels, with mode-000 directories) are collected up to the limits that
# job.log names, billed as usual, and removed from the host; and a job whose
# log or outputs the node could not store is failed, not succeeded.
. "$top_srcdir/tests/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "surplus run needs root (namespaces, job uids)"
unshare -mpinu --fork true 2>/dev/null ||
    skip_all "this host cannot create namespaces"

uid_base=312000
cat > "$tmp/test.conf" <<CONF
state_dir = "$tmp/state";
sandbox = { uid_base = $uid_base; kill_grace = "1s"; };
CONF
S() { run "$SURPLUS" --config "$tmp/test.conf" "$@"; }

mkjob() { # mkjob NAME SCRIPT [MANIFEST-LINES]
    mkdir -p "$tmp/$1"
    printf '%s\n' "$2" > "$tmp/$1/run.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "run.sh"];\n%s\n' "$1" "${3:-}" \
        > "$tmp/$1/job.conf"
    S bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2> "$tmp/err" ||
        { cat "$tmp/err"; return 1; }
}
# A job script that builds out/ as a chain of $1 directories "d" with a
# file at each level, and a directory it makes mode 000 at level 5 (with
# a file in it) and, when the chain is long enough, at level 150.
chain() {
    cat <<SH
mkdir out && cd out
i=0
while [ \$i -lt $1 ]; do
    echo "level \$i" > f
    mkdir d && cd d
    i=\$((i + 1))
done
echo bottom > f
cd "\$HOME/out"
mkdir -p d/d/d/d/locked && echo hidden > d/d/d/d/locked/f && chmod 000 d/d/d/d/locked
[ $1 -gt 150 ] && chmod 000 \$(i=0; while [ \$i -lt 150 ]; do printf d/; i=\$((i + 1)); done)
echo built
SH
}
# 'out/d/d/.../d/f' with $1 directories d
deep_file() {
    printf 'out/'
    i=0
    while [ $i -lt "$1" ]; do printf 'd/'; i=$((i + 1)); done
    printf 'f'
}

# --- 60 levels: deeper than a recursion on a job thread's stack could go -------
mkjob deep60 "$(chain 60)" 'outputs = ["out/"];'
S run -o "$tmp/o60" "$tmp/deep60.tar.zst" > "$tmp/out60" 2> "$tmp/err60"
ok $? "a job whose output is a tree 60 levels deep succeeds"
[ "$(cat "$tmp/o60/$(deep_file 60)" 2>/dev/null)" = bottom ] &&
    [ "$(cat "$tmp/o60/out/d/d/d/d/locked/f" 2>/dev/null)" = hidden ]
ok $? "... and all of it is collected, the bottom file and the mode-000 directory's too"
grep -q "^surplus: usage: record [0-9a-f]\{16\}: 0 device(s)" "$tmp/err60"
ok $? "... and it is billed as usual: $(grep usage: "$tmp/err60")"
[ -z "$(ls -A "$tmp/state/jobs")" ]
ok $? "... and its job directory is removed from the host"

# --- 300 levels, mode-000 directories: the depth limit, named in job.log -------
mkjob deep300 "$(chain 300)" 'outputs = ["out/"];'
S run -o "$tmp/o300" "$tmp/deep300.tar.zst" > "$tmp/out300" 2> "$tmp/err300"
ok $? "a job whose output is a tree 300 levels deep succeeds"
grep -q "^built" "$tmp/out300"
ok $? "... (the job built it)"
[ "$(cat "$tmp/o300/$(deep_file 62)" 2>/dev/null)" = "level 62" ] &&
    [ ! -e "$tmp/o300/$(deep_file 63)" ]
ok $? "... collected down to 64 path components, no further"
grep -q "^outputs: 'out/\(d/\)*[df]' and what lies below it not collected: deeper than 64 path components (the limit for outputs, as for bundles)" "$tmp/o300/job.log"
ok $? "... and job.log says which limit stopped it: $(grep '^outputs:' "$tmp/o300/job.log")"
[ "$(grep -c 'deeper than' "$tmp/o300/job.log")" -eq 1 ]
ok $? "... once"
grep -q "^surplus: usage: record [0-9a-f]\{16\}: 0 device(s)" "$tmp/err300" &&
    ! grep -q "NOT recorded" "$tmp/err300"
ok $? "... and it is billed as usual"
[ -z "$(ls -A "$tmp/state/jobs")" ]
ok $? "its job directory (300 levels, mode-000 directories) is removed from the host"

# --- storage that fails: the job fails, saying what was not stored -------------
# The store is a tmpfs of 256 KiB in a mount namespace of the test's own.
mkdir -p "$tmp/smallstore"
cat > "$tmp/full.conf" <<CONF
state_dir = "$tmp/state";
storage = { plugin = "local"; path = "$tmp/smallstore"; };
sandbox = { uid_base = $uid_base; };
CONF
in_small_store() { # in_small_store FILL-KIB COMMAND...: COMMAND with the store full but FILL-KIB
    fill=$1
    shift
    unshare -m sh -c 'mount --make-rprivate / && mount -t tmpfs -o size=256k surplus-test "$0" &&
        mkdir "$0/objects" "$0/tmp" && head -c $(( (256 - $1) * 1024 )) /dev/zero > "$0/filler" 2>/dev/null;
        shift 2; exec "$@"' "$tmp/smallstore" "$fill" -- "$@"
}
mkjob bigout 'head -c 400000 /dev/zero > big.bin; echo small > small.txt; echo done' \
    'outputs = ["small.txt", "big.bin"];'
in_small_store 200 "$SURPLUS" --config "$tmp/full.conf" run -o "$tmp/o-bigout" \
    "$tmp/bigout.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
ok $(( rc != 70 )) "a job that exits 0 but whose output could not be stored exits 70 (got $rc)"
grep -q "^surplus: job [0-9a-f]\{16\} 'bigout' failed (exit 0)" "$tmp/err" &&
    grep -q "^surplus: reason: output 'big.bin' not stored: .*No space left on device" "$tmp/err"
ok $? "... it is failed, its exit status kept, and the reason names the output: $(grep reason: "$tmp/err")"
grep -q "output 'big.bin' not stored: " "$tmp/o-bigout/job.log"
ok $? "... job.log says so too"
grep -q "^surplus: usage: record [0-9a-f]\{16\}: 0 device(s)" "$tmp/err" &&
    ! grep -q "NOT recorded" "$tmp/err"
ok $? "... and it is billed (it ran)"

mkjob logonly 'echo this-log-matters'
in_small_store 0 "$SURPLUS" --config "$tmp/full.conf" --json run -o "$tmp/o-logonly" \
    "$tmp/logonly.tar.zst" > "$tmp/json" 2> /dev/null
rc=$?
ok $(( rc != 70 )) "a job whose log could not be stored exits 70 (got $rc)"
python3 - "$tmp/json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["state"] == "failed" and d["exit_status"] == 0, d
assert d["reason"].startswith("log not stored: "), d
assert "No space left on device" in d["reason"], d
assert d["recorded"] is True, d
PY
ok $? "... it is failed with the reason 'log not stored: ...', exit status 0, recorded"
[ -z "$(ls -A "$tmp/state/jobs")" ]
ok $? "no job directory is left behind"

done_testing
