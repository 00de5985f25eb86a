#!/bin/sh
# What a job can and cannot reach from inside the sandbox: its identity and
# privileges, the host's files, /tmp and state directory, the network, the
# devices, other processes, the environment and its limits.  Each refusal
# has a positive control, so a broken probe cannot pass for isolation.
. "$top_srcdir/tests/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "surplus run needs root (namespaces, job uids)"
unshare -mpinu --fork true 2>/dev/null ||
    skip_all "this host cannot create namespaces"

uid_base=320000
conf() { # conf FILE EXTRA-SANDBOX-KEYS
    cat > "$1" <<CONF
state_dir = "$tmp/state";
sandbox = { uid_base = $uid_base; kill_grace = "1s"; $2 };
CONF
}
conf "$tmp/test.conf" ""
S() { run "$SURPLUS" --config "$tmp/test.conf" "$@"; }

# probe NAME SCRIPT [MANIFEST-LINES]: runs SCRIPT in a job; its output is in
# $tmp/NAME.out (stdout and stderr of the job).
probe() {
    mkdir -p "$tmp/$1"
    printf '%s\n' "$2" > "$tmp/$1/probe.sh"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "probe.sh"];\n%s\n' \
        "$1" "${3:-}" > "$tmp/$1/job.conf"
    S bundle create "$tmp/$1" -o "$tmp/$1.tar.zst" > /dev/null 2>&1 &&
        S run -o "$tmp/o-$1" "$tmp/$1.tar.zst" > "$tmp/$1.out" 2> "$tmp/$1.err"
}
has() { grep -qx -- "$2" "$tmp/$1.out"; }

# --- identity and privileges --------------------------------------------------------
probe ident 'id -u; id -g; id -G
grep -E "^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs):" /proc/self/status'
job_uid=$(sed -n 1p "$tmp/ident.out")
[ "$job_uid" -ge "$uid_base" ] && [ "$job_uid" -lt $((uid_base + 65536)) ] &&
    [ "$(sed -n 2p "$tmp/ident.out")" = "$job_uid" ]
ok $? "the job runs as uid and gid $job_uid (uid_base + slot), not root"
[ "$(sed -n 3p "$tmp/ident.out")" = "$job_uid" ]
ok $? "with no supplementary groups"
has ident "CapEff:	0000000000000000" && has ident "CapPrm:	0000000000000000" &&
    has ident "CapBnd:	0000000000000000" && has ident "CapAmb:	0000000000000000"
ok $? "with no capabilities, bounding set included"
has ident "NoNewPrivs:	1"
ok $? "with no_new_privs"

# --- files ------------------------------------------------------------------------------
touch /tmp/surplus-host-marker.$$ "$tmp/state/host-secret" 2>/dev/null ||
    { mkdir -p "$tmp/state"; touch "$tmp/state/host-secret"; }
probe files "test -e /tmp/surplus-host-marker.$$ && echo host-tmp-visible
test -e $tmp/state/host-secret && echo state-visible
ls $tmp/state/jobs | wc -l
touch /etc/surplus-probe 2>/dev/null && echo etc-writable
touch /usr/surplus-probe 2>/dev/null && echo usr-writable
echo x > /tmp/mine && echo tmp-writable
echo x > \$HOME/mine && echo home-writable
test \"\$(pwd)\" = \"\$HOME\" && echo cwd-is-job-dir
test -r /etc/passwd && echo etc-readable
mount -t tmpfs none /tmp 2>/dev/null && echo mount-allowed
cat /proc/mounts | grep -c ' /tmp ' "
rm -f /tmp/surplus-host-marker.$$
! has files host-tmp-visible && has files tmp-writable
ok $? "the host's /tmp is not visible; the job's own /tmp is writable"
! has files state-visible && has files 1
ok $? "the state directory shows only the job's own directory"
! has files etc-writable && ! has files usr-writable && has files etc-readable
ok $? "the host file system is readable and read-only"
has files home-writable && has files cwd-is-job-dir
ok $? "the job directory is writable, HOME and the cwd"
! has files mount-allowed
ok $? "the job cannot mount"

# --- processes, host name -----------------------------------------------------------------
sleep 300 &
host_sleep=$!
probe procs "ls /proc | grep -c '^[0-9]'
echo pid=\$\$
kill -0 $host_sleep 2>/dev/null && echo host-process-visible
test -e /proc/$host_sleep && echo host-proc-visible
hostname"
kill $host_sleep 2>/dev/null
! has procs host-process-visible && ! has procs host-proc-visible
ok $? "host processes are neither visible nor signalable"
n_procs=$(sed -n 1p "$tmp/procs.out")
[ "$n_procs" -le 4 ]
ok $? "the job's /proc shows only its own processes ($n_procs)"
grep -q '^surplus-[0-9a-f]\{16\}$' "$tmp/procs.out"
ok $? "it has its own host name"

# --- network ---------------------------------------------------------------------------------
port_file="$tmp/port"
python3 - "$port_file" <<'PY' &
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(60)
try:
    while True:
        c, _ = s.accept(); c.sendall(b"host-secret\n"); c.close()
except Exception:
    pass
PY
listener=$!
for i in $(seq 1 50); do [ -s "$port_file" ] && break; sleep 0.1; done
port=$(cat "$port_file")
netprobe="python3 -c '
import socket
try:
    s = socket.create_connection((\"127.0.0.1\", $port), timeout=2)
    print(\"reached:\", s.recv(64).decode().strip())
except OSError as e:
    print(\"refused:\", e)
'
cat /proc/net/dev | grep -c ':'"
python3 -c "import socket; print(socket.create_connection(('127.0.0.1', $port)).recv(64).decode().strip())" > "$tmp/control" 2>&1
[ "$(cat "$tmp/control")" = host-secret ]
ok $? "control: the host reaches its own loopback listener on port $port"
probe net "$netprobe"
grep -q '^refused:' "$tmp/net.out" && ! grep -q host-secret "$tmp/net.out"
ok $? "network none: the job cannot reach a port on the host's loopback"
has net 1
ok $? "network none: the job has only its own loopback interface"
conf "$tmp/host.conf" 'network = "host";'
S() { run "$SURPLUS" --config "$tmp/host.conf" "$@"; }
probe nethost "$netprobe"
S() { run "$SURPLUS" --config "$tmp/test.conf" "$@"; }
grep -q '^reached: host-secret$' "$tmp/nethost.out"
ok $? "control: with network = \"host\" the same probe reaches it"
kill $listener 2>/dev/null

# --- devices ----------------------------------------------------------------------------------
host_devs=$(find /dev -maxdepth 1 \( -type c -o -type b \) -printf '%f\n' |
    grep -vxE 'null|zero|full|random|urandom|tty|ptmx' | head -40 | tr '\n' ' ')
probe devs "ls /dev | tr '\n' ' '; echo
for d in $host_devs; do test -e /dev/\$d && echo \"visible: \$d\"; done
for d in mem kmsg port; do cat /dev/\$d > /dev/null 2>&1 && echo \"opened: \$d\"; done
echo x > /dev/null && echo null-ok
head -c 4 /dev/urandom | wc -c
mknod /tmp/n c 1 1 2>/dev/null && echo mknod-allowed"
diag "job's /dev: $(sed -n 1p "$tmp/devs.out")"
diag "host devices probed: $(echo "$host_devs" | wc -w)"
! grep -q '^visible:' "$tmp/devs.out" && ! grep -q '^opened:' "$tmp/devs.out"
ok $? "no host device outside the standard set is visible or can be opened"
has devs null-ok && has devs 4
ok $? "control: /dev/null and /dev/urandom work"
! has devs mknod-allowed
ok $? "the job cannot create device nodes"

# --- environment ------------------------------------------------------------------------------
SURPLUS_HOST_SECRET=leak AWS_SECRET_ACCESS_KEY=leak probe env 'env | cut -d= -f1 | sort | tr "\n" " "' 'env = { MINE = "1"; };'
diag "environment: $(cat "$tmp/env.out")"
[ "$(cat "$tmp/env.out")" = "HOME LANG MINE PATH PWD SURPLUS_GPUS SURPLUS_JOB_ID SURPLUS_JOB_NAME TMPDIR " ]
ok $? "the environment is minimal: nothing of the runner's leaks in"

# --- limits -----------------------------------------------------------------------------------
probe mem "python3 -c 'bytearray(512 << 20)' 2>/dev/null && echo allocated-512M
python3 -c 'bytearray(16 << 20)' && echo allocated-16M" 'resources = { memory = "128M"; };'
if [ -n "${SURPLUS_VALGRIND:-}" ]; then
    # valgrind keeps RLIMIT_DATA to itself instead of setting it
    skip "memory = 128M: 512 MiB cannot be allocated, 16 MiB can" "under valgrind"
else
    ! has mem allocated-512M && has mem allocated-16M
    ok $? "memory = 128M: 512 MiB cannot be allocated, 16 MiB can"
fi
conf "$tmp/pids.conf" 'pids = 20;'
S() { run "$SURPLUS" --config "$tmp/pids.conf" "$@"; }
probe pids "python3 -c '
import subprocess
procs = []
for i in range(40):
    try:
        procs.append(subprocess.Popen([\"sleep\", \"5\"]))
    except OSError:
        break
print(\"started\", len(procs))
for p in procs:
    p.kill()
'"
S() { run "$SURPLUS" --config "$tmp/test.conf" "$@"; }
npids=$(sed -n 's/^started //p' "$tmp/pids.out")
[ -n "$npids" ] && [ "$npids" -ge 5 ] && [ "$npids" -lt 20 ]
ok $? "sandbox.pids = 20 caps the job's processes (started ${npids:-none} of 40 children)"
probe cpus 'grep Cpus_allowed_list /proc/self/status' 'resources = { cpus = 1; };'
if [ "$(nproc)" -gt 1 ]; then
    grep -Eq 'Cpus_allowed_list:[[:space:]]+[0-9]+$' "$tmp/cpus.out"
    ok $? "cpus = 1 pins the job to one CPU ($(cat "$tmp/cpus.out"))"
else
    skip "cpus = 1 pins the job to one CPU" "one CPU on this host"
fi
grep -q 'limits: memory, processes and cpus held by \(cgroup v2\|cgroup v1\)' "$tmp/mem.err"
ok $? "the runner says what holds the job's limits: $(grep 'limits:' "$tmp/mem.err")"

# The job's init forwards signals to "every process": outside its own pid
# namespace that would be the whole host, so it refuses to start there.
rm -f "$tmp/init-ran"
"$SURPLUS_SANDBOX_INIT" -- /bin/touch "$tmp/init-ran" 2> "$tmp/init.err"
rc=$?
[ "$rc" -eq 64 ] && [ ! -e "$tmp/init-ran" ] &&
    grep -q 'as pid 1 of a job' "$tmp/init.err"
ok $? "surplus-sandbox-init refuses to run outside a job's pid namespace (exit $rc)"
unshare -pf "$SURPLUS_SANDBOX_INIT" -- /bin/touch "$tmp/init-ran" 3> /dev/null
rc=$?
[ "$rc" -eq 0 ] && [ -e "$tmp/init-ran" ]
ok $? "control: as pid 1 of a new pid namespace it runs the command (exit $rc)"

done_testing
