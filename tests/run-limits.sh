#!/bin/sh
# The manifest's disk, memory and cpus hold against a job that tries to
# exceed them: disk is the job's own filesystem (its directory and its
# /tmp, /var/tmp and /dev/shm, bytes and files), memory and cpus are
# cgroups (v2, or the v1 controllers); where the host has no mechanism a
# job is refused unless sandbox.limits = "best-effort".
. "$top_srcdir/tests/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "surplus run needs root (namespaces, job uids)"
unshare -mpinu --fork true 2>/dev/null ||
    skip_all "this host cannot create namespaces"
[ -e /dev/loop-control ] || skip_all "no loop devices on this host"

uid_base=361000
conf() { # conf FILE EXTRA-SANDBOX-KEYS
    cat > "$1" <<CONF
state_dir = "$tmp/state";
sandbox = { uid_base = $uid_base; kill_grace = "1s"; $2 };
CONF
}
conf "$tmp/test.conf" ""
conf "$tmp/loose.conf" 'limits = "best-effort";'
CONF_FILE="$tmp/test.conf"
S() { run "$SURPLUS" --config "$CONF_FILE" "$@"; }

# probe NAME SCRIPT [MANIFEST-LINES]: runs SCRIPT in a job; its output is
# in $tmp/NAME.out, surplus's messages in $tmp/NAME.err.
probe() {
    mkdir -p "$tmp/$1"
    printf '%s\n' "$2" > "$tmp/$1/probe.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "probe.sh"];\n%s\n' \
        "$1" "${3:-}" > "$tmp/$1/job.conf"
    S bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2>&1 &&
        S run -o "$tmp/o-$1" "$tmp/$1.tar.zst" > "$tmp/$1.out" 2> "$tmp/$1.err"
}
has() { grep -q -- "$2" "$tmp/$1.out"; }
no_leftovers() {
    [ -z "$(ls -A "$tmp/state/jobs" 2>/dev/null)" ] &&
        ! grep -q " $tmp/state" /proc/mounts
}

# --- disk -------------------------------------------------------------------------------
# The job writes 200 MiB into its directory; while it holds what it wrote,
# the host's state directory is measured from outside.
probe disk "head -c 200000000 /dev/zero 2>&1 > big; echo \"rc=\$?\"
echo \"written \$((\$(stat -c %s big) / 1048576))\"
touch written; sleep 2" 'resources = { disk = "64M"; };' &
pid=$!
for i in $(seq 1 200); do
    ls "$tmp"/state/jobs/*/disk/work/written > /dev/null 2>&1 && break
    sleep 0.05
done
used=$(du -skx "$tmp/state" | cut -f1)
wait $pid
diag "disk: $(tr '\n' ' ' < "$tmp/disk.out"); state_dir held $used KiB"
has disk 'No space left on device' && ! has disk 'rc=0'
ok $? "disk = 64M: writing 200 MiB into the job directory fails with ENOSPC"
written=$(sed -n 's/^written //p' "$tmp/disk.out")
[ -n "$written" ] && [ "$written" -ge 48 ] && [ "$written" -le 72 ]
ok $? "about the limit was written (${written:-?} MiB)"
[ -n "$used" ] && [ "$used" -le $((80 * 1024)) ]
ok $? "the state directory held no more than about the limit ($used KiB)"
no_leftovers
ok $? "the job's filesystem and image are gone after the job"

probe files 'python3 -c "
import os
n = 0
try:
    for n in range(20000):
        open(\"f%d\" % n, \"w\").close()
    print(\"created all\")
except OSError as e:
    print(\"stopped at\", n, os.strerror(e.errno))
"' 'resources = { disk = "64M"; };'
diag "files: $(cat "$tmp/files.out")"
has files 'stopped at .* No space left on device' && ! has files 'created all'
ok $? "disk = 64M: 20,000 files do not fit (the files are limited too)"

probe scratch 'for d in /tmp /var/tmp /dev/shm; do
    head -c 30000000 /dev/zero > $d/fill 2>/dev/null; echo "$d $(stat -c %s $d/fill)"
done
df -k /tmp /var/tmp /dev/shm . | awk "NR > 1 { print \$1 }" | sort -u | wc -l' \
    'resources = { disk = "64M"; };'
total=$(awk '$1 ~ /^\// { s += $2 } END { print int(s / 1048576) }' "$tmp/scratch.out")
diag "scratch: $(tr '\n' ' ' < "$tmp/scratch.out")"
[ "$total" -le 72 ] && [ "$(tail -n1 "$tmp/scratch.out")" = 1 ]
ok $? "/tmp, /var/tmp and /dev/shm count against the same 64 MiB ($total MiB fit of 90)"
no_leftovers
ok $? "and are gone with it"

# --- memory -----------------------------------------------------------------------------
probe mem "python3 -c '
import mmap
m = mmap.mmap(-1, 1 << 30, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
for i in range(0, 1 << 30, 4096):
    m[i] = 1
print(\"touched 1G\")
'" 'resources = { memory = "64M"; };'
rc=$?
diag "memory: exit $rc, $(grep -i 'memory\|failed' "$tmp/mem.err" | tr '\n' ' ')"
[ "$rc" -ne 0 ] && ! has mem 'touched 1G'
ok $? "memory = 64M: a job touching a 1 GiB shared mapping does not get it (exit $rc)"
grep -q 'out of memory' "$tmp/mem.err"
ok $? "and is reported as out of memory"

# --- cpus -------------------------------------------------------------------------------
probe cpus 'grep Cpus_allowed_list /proc/self/status
taskset -p -c 0-1023 $$ > /dev/null 2>&1
python3 -c "import os; os.sched_setaffinity(0, range(os.cpu_count()))" 2>/dev/null
grep Cpus_allowed_list /proc/self/status' 'resources = { cpus = 1; };'
if [ "$(nproc)" -gt 1 ]; then
    [ "$(sed -n 1p "$tmp/cpus.out")" = "$(sed -n 2p "$tmp/cpus.out")" ] &&
        grep -Eq 'Cpus_allowed_list:[[:space:]]+[0-9]+$' "$tmp/cpus.out"
    ok $? "cpus = 1: widening the affinity with taskset has no effect ($(tr '\n' ' ' < "$tmp/cpus.out"))"
else
    skip "cpus = 1: widening the affinity with taskset has no effect" "one CPU on this host"
fi
grep -q 'limits: memory, processes and cpus held by cgroup' "$tmp/cpus.err"
ok $? "surplus run says what holds the limits: $(grep 'limits:' "$tmp/cpus.err")"

# --- no mechanism: refused unless best-effort -------------------------------------------
SURPLUS_NO_CGROUP=1 probe nocg 'echo ran'
rc=$?
[ "$rc" -ne 0 ] && ! has nocg ran &&
    grep -q 'cannot be enforced.*sandbox.limits = "best-effort"' "$tmp/nocg.err"
ok $? "without cgroups a job is refused (exit $rc): $(grep 'enforced' "$tmp/nocg.err")"
CONF_FILE="$tmp/loose.conf" SURPLUS_NO_CGROUP=1 probe nocg2 'echo ran'
has nocg2 ran && grep -q 'limits are best-effort' "$tmp/nocg2.err"
ok $? "with sandbox.limits = \"best-effort\" it runs, with a warning"
SURPLUS_NO_JOBFS=1 probe nofs 'echo ran'
rc=$?
[ "$rc" -ne 0 ] && ! has nofs ran &&
    grep -q 'disk = .* cannot be enforced on this host' "$tmp/nofs.err"
ok $? "without a filesystem of its own a job is refused (exit $rc)"
CONF_FILE="$tmp/loose.conf" SURPLUS_NO_JOBFS=1 probe nofs2 'echo ran'
has nofs2 ran && grep -q 'not enforced (sandbox.limits = best-effort)' "$tmp/nofs2.err"
ok $? "with sandbox.limits = \"best-effort\" it runs, with a note"
no_leftovers
ok $? "nothing is left in the state directory or mounted"

done_testing
