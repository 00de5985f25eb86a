#!/bin/sh
# What one tenant's job cannot leave for, or take from, another's: secrets
# in kernel keyrings, a uid shared with another job, kernel interfaces
# behind the system call filter, and surplus's own files (configuration,
# TLS key) outside the state directory.  Each refusal has a positive
# control, so a broken probe cannot pass for isolation.
. "$top_srcdir/tests/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "surplus run needs root (namespaces, job uids)"
unshare -mpinu --fork true 2>/dev/null ||
    skip_all "this host cannot create namespaces"
command -v python3 > /dev/null || skip_all "no python3 for the probes"

uid_base=360000
conf() { # conf FILE STATE-DIR EXTRA-SANDBOX-KEYS
    cat > "$1" <<CONF
state_dir = "$2";
sandbox = { uid_base = $uid_base; kill_grace = "1s"; $3 };
CONF
}
conf "$tmp/default.conf" "$tmp/state" ""
conf "$tmp/none.conf" "$tmp/state" 'seccomp = "none";'
conf "$tmp/uring.conf" "$tmp/state" 'seccomp_allow = ["io_uring"];'

# probe CONF NAME SCRIPT: runs SCRIPT (sh) in a job; its output is in
# $tmp/NAME.out (stdout and stderr of the job).
probe() {
    mkdir -p "$tmp/$2"
    printf '%s\n' "$3" > "$tmp/$2/probe.sh"
    cp "$tmp/sys.py" "$tmp/$2/sys.py"
    printf 'api = 1;\nname = "%s";\ncommand = ["/bin/sh", "probe.sh"];\n' \
        "$2" > "$tmp/$2/job.conf"
    run "$SURPLUS" --config "$1" bundle create "$tmp/$2" -o "$tmp/$2.tar.zst" \
        > /dev/null 2>&1 &&
        run "$SURPLUS" --config "$1" run -o "$tmp/o-$2" "$tmp/$2.tar.zst" \
            > "$tmp/$2.out" 2> "$tmp/$2.err"
}
has() { grep -qx -- "$2" "$tmp/$1.out"; }

# The system calls, through ctypes (keyutils is not needed): each command
# prints "ok ..." or "failed: <errno name>".
cat > "$tmp/sys.py" <<'PY'
import ctypes, errno, os, platform, sys
NR = {"x86_64": {"add_key": 248, "keyctl": 250, "io_uring_setup": 425},
      "aarch64": {"add_key": 217, "keyctl": 219, "io_uring_setup": 425}}
nr = NR[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
L = ctypes.c_long
KEY_SPEC_USER_KEYRING = -4
KEYCTL_SEARCH, KEYCTL_READ = 10, 11
def call(*args):
    r = libc.syscall(*[a if isinstance(a, bytes) else L(a) for a in args])
    return r, errno.errorcode.get(ctypes.get_errno(), "?")
what = sys.argv[1]
if what == "plant":
    r, e = call(nr["add_key"], b"user", b"surplus-probe", b"tenant-secret",
                13, KEY_SPEC_USER_KEYRING)
    print("ok planted" if r > 0 else "failed: " + e)
elif what == "look":
    r, e = call(nr["keyctl"], KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, b"user",
                b"surplus-probe", 0)
    if r < 0:
        print("failed: " + e)
    else:
        buf = ctypes.create_string_buffer(64)
        n, e = call(nr["keyctl"], KEYCTL_READ, r, ctypes.addressof(buf), 64)
        print("ok found " + buf.raw[:max(n, 0)].decode())
elif what == "io_uring":
    params = ctypes.create_string_buffer(120)
    r, e = call(nr["io_uring_setup"], 4, ctypes.addressof(params))
    print("ok io_uring" if r >= 0 else "failed: " + e)
elif what == "mount":
    # A new user and mount namespace, then a tmpfs: what `unshare -Urm
    # mount` does.
    CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        print("failed: unshare " + errno.errorcode[ctypes.get_errno()])
    elif libc.mount(b"none", b"/tmp", b"tmpfs", L(0), None) != 0:
        print("failed: mount " + errno.errorcode[ctypes.get_errno()])
    else:
        print("ok mounted")
PY

# --- keyrings and uids: one job's secret is not the next job's ---------------
# Without the filter the key can be planted; the job's own user namespace
# must keep it from the next job.
probe "$tmp/none.conf" plant 'id -u; python3 sys.py plant'
probe "$tmp/none.conf" look 'id -u; python3 sys.py look'
diag "planted as uid $(sed -n 1p "$tmp/plant.out"): $(sed -n 2p "$tmp/plant.out")"
diag "looked as uid $(sed -n 1p "$tmp/look.out"): $(sed -n 2p "$tmp/look.out")"
has plant "ok planted"
ok $? "control: with sandbox.seccomp = \"none\" a job adds a key to its user keyring"
! grep -q 'tenant-secret' "$tmp/look.out" && grep -q '^failed: ENOKEY' "$tmp/look.out"
ok $? "the next job does not find the key"
[ "$(sed -n 1p "$tmp/plant.out")" != "$(sed -n 1p "$tmp/look.out")" ]
ok $? "consecutive jobs run as different uids"
probe "$tmp/default.conf" plant2 'python3 sys.py plant; python3 sys.py look'
has plant2 "failed: EPERM"
ok $? "under the default filter add_key and keyctl fail with EPERM"

# Two surplusd with different state directories share the host's uids.
conf "$tmp/other.conf" "$tmp/other-state" ""
mkdir -p "$tmp/long"
printf 'id -u > uid; sleep 30\n' > "$tmp/long/probe.sh"
printf 'api = 1;\nname = "long";\ncommand = ["/bin/sh", "probe.sh"];\n' \
    > "$tmp/long/job.conf"
run "$SURPLUS" --config "$tmp/other.conf" bundle create "$tmp/long" \
    -o "$tmp/long.tar.zst" > /dev/null 2>&1
run "$SURPLUS" --config "$tmp/other.conf" run -o "$tmp/o-long" \
    "$tmp/long.tar.zst" > /dev/null 2>&1 &
long=$!
long_uid=
for i in $(seq 1 300); do
    long_uid=$(cat "$tmp"/other-state/jobs/*/disk/work/uid "$tmp"/other-state/jobs/*/work/uid 2>/dev/null | head -n 1)
    [ -n "$long_uid" ] && break
    sleep 0.1
done
probe "$tmp/default.conf" beside 'id -u'
kill "$long" 2>/dev/null
wait "$long" 2>/dev/null
diag "a job of another state_dir runs as uid ${long_uid:-?}, this one as $(cat "$tmp/beside.out")"
[ -n "$long_uid" ] && [ "$long_uid" != "$(cat "$tmp/beside.out")" ]
ok $? "jobs of two state directories running at once get different uids"

# --- the job's identity: its own user namespace, no way to make another -----
probe "$tmp/default.conf" ident 'cat /proc/self/uid_map /proc/self/gid_map | tr -s " " | sed "s/^ //"
grep -E "^(CapEff|CapPrm|CapBnd):" /proc/self/status
unshare -Ur true 2>/dev/null && echo unshare-allowed
python3 sys.py mount
python3 sys.py io_uring'
grep -q '^\([0-9]*\) \1 1$' "$tmp/ident.out" &&
    [ "$(grep -c '^\([0-9]*\) \1 1$' "$tmp/ident.out")" -eq 2 ]
ok $? "the job's user namespace maps only its own uid and gid ($(head -1 "$tmp/ident.out"))"
has ident "CapEff:	0000000000000000" && has ident "CapPrm:	0000000000000000" &&
    has ident "CapBnd:	0000000000000000"
ok $? "it has no capabilities in it, bounding set included"
! has ident unshare-allowed && has ident "failed: unshare EPERM"
ok $? "unshare -Ur and a new user namespace fail"
! has ident "ok mounted"
ok $? "so a tmpfs cannot be mounted"
has ident "failed: EPERM"
ok $? "io_uring_setup fails with EPERM"

# The opt-outs give back what the host allows.
probe "$tmp/none.conf" ident-none 'unshare -Ur true && echo unshare-allowed
python3 sys.py mount
python3 sys.py io_uring'
if unshare -Ur true 2>/dev/null; then
    has ident-none unshare-allowed && has ident-none "ok mounted"
    ok $? "with sandbox.seccomp = \"none\" unshare -Ur and the tmpfs mount work"
else
    skip "with sandbox.seccomp = \"none\" unshare -Ur works" "the host forbids user namespaces"
fi
probe "$tmp/uring.conf" ident-uring 'python3 sys.py io_uring; python3 sys.py plant'
if [ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" = 0 ]; then
    has ident-none "ok io_uring" && has ident-uring "ok io_uring" &&
        has ident-uring "failed: EPERM"
    ok $? "seccomp = \"none\" and seccomp_allow = [\"io_uring\"] allow io_uring_setup (the latter still denies add_key)"
else
    skip "seccomp_allow = [\"io_uring\"] allows io_uring_setup" "kernel.io_uring_disabled is set"
fi

# --- surplus's own files, outside the state directory ------------------------
# Somewhere a job would see: not below /tmp, /var/tmp or /run (a job has
# its own, empty ones), and where any uid can reach: the build tree if it
# is such a place, else /var/lib.
base=
for parent in "$top_builddir/tests" /var/lib; do
    case "$(cd "$parent" && pwd -P)/" in /tmp/* | /var/tmp/* | /run/*) continue ;; esac
    base=$(mktemp -d "$parent/surplus-hide.XXXXXX") || continue
    chmod 755 "$base"
    echo x > "$base/probe"
    chmod 644 "$base/probe"
    setpriv --reuid=65534 --regid=65534 --clear-groups cat "$base/probe" \
        > /dev/null 2>&1 && break
    rm -rf "$base"
    base=
done
if [ -z "$base" ]; then
    skip "surplus's own files are hidden" "no directory outside /tmp that every uid can reach"
    done_testing
    exit
fi
trap 'rm -rf "$tmp" "$base"' EXIT
mkdir "$base/etc" "$base/tls"
echo 'tls-key-secret' > "$base/tls/key.pem"
echo 'public' > "$base/tls/public.txt"
echo 'in-config-dir' > "$base/etc/other.txt"
# The state directory (with the default storage and ledger in it) beside
# the configuration's, as on an installed node.
conf "$base/etc/surplus.conf" "$base/state" ""
printf 'api = { tls_cert = "%s"; tls_key = "%s"; };\n' "$base/tls/public.txt" \
    "$base/tls/key.pem" >> "$base/etc/surplus.conf"
chmod 644 "$base/etc/surplus.conf" "$base/tls/key.pem" "$base/tls/public.txt" \
    "$base/etc/other.txt"
echo 'tls-cert' > "$base/tls/cert.pem"
probe "$base/etc/surplus.conf" hidden "cat $base/etc/surplus.conf 2>/dev/null | grep -q state_dir && echo config-readable
cat $base/etc/other.txt 2>/dev/null
cat $base/tls/key.pem 2>/dev/null
cat $base/tls/public.txt 2>/dev/null
cat $base/tls/cert.pem 2>/dev/null
test -e $base/etc && echo config-dir-exists"
has hidden tls-cert
ok $? "control: a file beside the TLS key is readable from the job"
! has hidden config-readable && ! has hidden in-config-dir
ok $? "the configuration file and its directory are hidden"
! has hidden tls-key-secret && ! has hidden public
ok $? "the TLS key and certificate are hidden"
! grep -q 'is shown to jobs' "$tmp/hidden.err"
ok $? "with the storage and ledger in the state directory nothing needs a warning"

done_testing
