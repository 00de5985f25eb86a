#!/bin/sh
# Through surplusd: a job's disk is a filesystem of its own (an image in
# the job's directory, mounted there); the disk limit holds, and after a
# kill -9 of surplusd the restart unmounts and removes what the killed
# job left.  surplusd's start-up log says what holds the limits.
. "$top_srcdir/tests/lib.sh"

need_daemon
[ -e /dev/loop-control ] || skip_all "no loop devices on this host"
sock="$tmp/surplus.sock"
uid_base=371000
acme_sha=$(printf acme-token | sha256sum | cut -d' ' -f1)
printf acme-token > "$tmp/acme.tok"
cat > "$tmp/d.conf" <<CONF
state_dir = "$tmp/state";
sandbox = { uid_base = $uid_base; kill_grace = "1s"; };
api = { socket = "$sock"; };
tenants = ( { name = "acme"; token_sha256 = "$acme_sha"; } );
CONF
trap 'kill -9 $daemon 2>/dev/null; sleep 0.3; for m in $(grep -o " $tmp/state[^ ]*" /proc/mounts); do umount -l $m; done; rm -rf "$tmp"' EXIT
C() { "$SURPLUS" --config "$tmp/d.conf" "$@"; }
A() { C --token-file "$tmp/acme.tok" "$@"; }
state() { A status "$1" | sed -n 's/^state: *//p'; }
wait_state() { # wait_state ID STATE
    for i in $(seq 1 300); do [ "$(state "$1")" = "$2" ] && return 0; sleep 0.1; done
    return 1
}
mkjob() { # mkjob NAME SCRIPT [MANIFEST-LINES]
    mkdir -p "$tmp/$1"
    printf '%s\n' "$2" > "$tmp/$1/run.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "run.sh"];\n%s\n' "$1" "${3:-}" > "$tmp/$1/job.conf"
    C bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2>&1
}
mounted() { grep -q " $tmp/state" /proc/mounts; }

mkjob fill 'head -c 200000000 /dev/zero 2>&1 > big; echo "rc=$?"' \
    'resources = { disk = "64M"; };'
mkjob hold 'echo x > /tmp/x; echo started; sleep 60' 'resources = { disk = "64M"; };'

start_daemon
ok $? "surplusd starts"
grep -q 'limits: memory, processes and cpus held by cgroup\|limits: no cgroups' "$tmp/surplusd.log"
ok $? "its start-up log says what holds the limits: $(grep 'limits:' "$tmp/surplusd.log")"

fill=$(A submit "$tmp/fill.tar.zst") && wait_state "$fill" failed
A logs "$fill" > "$tmp/fill.log" 2>&1
grep -q 'No space left on device' "$tmp/fill.log"
ok $? "disk = 64M holds through surplusd: $(tr '\n' ' ' < "$tmp/fill.log")"

hold=$(A submit "$tmp/hold.tar.zst")
for i in $(seq 1 200); do
    [ "$(A logs "$hold" 2>/dev/null)" = started ] && break
    sleep 0.05
done
mounted && [ -f "$tmp/state/jobs/$hold/disk.img" ]
ok $? "a running job's filesystem is mounted, its image in the job's directory"
kill -9 $daemon; wait $daemon 2>/dev/null; sleep 0.3
mounted && [ -f "$tmp/state/jobs/$hold/disk.img" ]
ok $? "kill -9 of surplusd leaves them behind"
start_daemon
ok $? "surplusd restarts"
! mounted && [ ! -e "$tmp/state/jobs/$hold" ]
ok $? "the restart unmounts and removes the killed job's filesystem and image ($(grep " $tmp/state" /proc/mounts | wc -l) mount(s) left)"
! losetup -a 2>/dev/null | grep -q "$tmp/state"
ok $? "and its loop device is detached"

kill $daemon; wait $daemon 2>/dev/null
done_testing
