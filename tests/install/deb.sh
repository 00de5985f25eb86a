#!/bin/sh
# tests/install/deb.sh DEBDIR [SRCDIR] - the Debian packages, installed as an
# operator installs them (TAP).
#
# Installs the .debs in DEBDIR (surplus, surplus-plugin-dev and, when it was
# built, surplus-plugin-cuda), starts surplusd from the installed files with
# the packaged /etc/surplus/surplus.conf (through systemd when systemd runs
# this machine, directly otherwise), submits SRCDIR/examples/jobs/hello with
# the installed CLI and checks its log, outputs and usage record, builds the
# SDK's example plugin, then removes and purges the packages and checks
# that nothing of them is left but what Debian policy keeps (the system
# group "surplus").
#
# It changes the machine: run it as root on a Debian machine where surplus
# is not installed (CI, a container, a scratch VM).  The packages'
# dependencies are installed with apt-get first and stay installed.
set -u

debdir=${1:?usage: deb.sh DEBDIR [SRCDIR]}
srcdir=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
debdir=$(cd "$debdir" && pwd)

n=0
failed=0
ok() { # ok STATUS DESCRIPTION; returns STATUS
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        failed=$((failed + 1))
    fi
    return "$1"
}
diag() { echo "# $*"; }
show() { sed 's/^/#   /' "$@"; }
bail() { echo "Bail out! $*"; exit 1; }

[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (installs packages)"; exit 0; }
if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
    echo "1..0 # SKIP not a Debian system"
    exit 0
fi
# Any state but unknown to dpkg: installed, or removed with its
# configuration left.
known() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -qv 'not-installed$'; }
known surplus &&
    bail "surplus is installed here (or not purged); this test needs a machine without it"

debs=$(ls "$debdir"/surplus_*.deb "$debdir"/surplus-plugin-dev_*.deb \
    "$debdir"/surplus-plugin-cuda_*.deb 2>/dev/null)
[ -n "$debs" ] || bail "no surplus .deb files in $debdir"
echo "$debs" | grep -q '/surplus_' || bail "no surplus_*.deb in $debdir"
echo "$debs" | grep -q '/surplus-plugin-dev_' || bail "no surplus-plugin-dev_*.deb in $debdir"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/surplus-install.XXXXXX")
chmod 755 "$tmp"
daemon=
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null
    # After a bail-out or a failure, leave the machine as it was.
    if known surplus; then
        dpkg --purge surplus-plugin-cuda surplus-plugin-dev surplus >/dev/null 2>&1
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
# Nothing of a build tree may leak into the installed programs.
unset SURPLUS_PLUGIN_PATH SURPLUS_SANDBOX_INIT SURPLUS_FIXTURE_DIR

# Every path where a package could leave something, less the databases
# and caches that dpkg, apt and systemd keep changing by themselves.
snapshot() {
    find /etc /usr /var/lib /var/spool /opt /srv /lib /lib64 /bin /sbin \
        \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/lib/ucf \
        -o -path /var/lib/systemd/catalog -o -path /var/lib/man-db \
        -o -path /var/lib/systemd/timers -o -path /var/lib/systemd/random-seed \
        -o -path /etc/ld.so.cache \) -prune -o -print 2>/dev/null | sort
}

# --- install ---------------------------------------------------------------
deps=$(for d in $debs; do dpkg-deb -f "$d" Depends; done |
    tr ',' '\n' | sed 's/^ *//; /^$/d' | grep -v '^surplus[ (]' | sort -u |
    paste -sd, -)
diag "dependencies: $deps"
apt-get satisfy -y -q --no-install-recommends "$deps" >"$tmp/apt.log" 2>&1
ok $? "the packages' dependencies install from the archive" ||
    show "$tmp/apt.log"
snapshot >"$tmp/before"

# shellcheck disable=SC2086 # one word per file
dpkg -i $debs >"$tmp/dpkg-i.log" 2>&1
r=$?
ok $r "dpkg -i $(for d in $debs; do basename "$d"; done | paste -sd' ' -)"
[ $r -eq 0 ] || { show "$tmp/dpkg-i.log"; bail "the packages do not install"; }

version=$(dpkg-deb -f "$(echo "$debs" | grep '/surplus_')" Version)
surplus version >"$tmp/version" 2>&1
grep -q "^surplus ${version%-*} " "$tmp/version"
ok $? "the installed surplus reports version ${version%-*}"

dpkg-query -W -f='${Conffiles}\n' surplus | grep -q '^ /etc/surplus/surplus.conf '
ok $? "/etc/surplus/surplus.conf is a conffile (local changes survive upgrades)"

for page in man1/surplus.1 man8/surplusd.8 man5/surplus.conf.5 \
    man5/surplus-bundle.5 man7/surplus-plugin.7 man1/surplus-plugin-check.1; do
    test -s "/usr/share/man/$page.gz"
    ok $? "manual page $page is installed"
done

gid=$(getent group surplus | cut -d: -f3)
test -n "$gid"
ok $? "the system group 'surplus' exists"
test "$(stat -c '%a %U %G' /run/surplus 2>/dev/null)" = "750 root surplus"
ok $? "/run/surplus admits root and group surplus only (0750 root:surplus)"
test "$(stat -c '%a %U' /var/lib/surplus 2>/dev/null)" = "700 root"
ok $? "/var/lib/surplus is root's alone (0700)"

plugindir=$(pkg-config --variable=plugindir surplus-plugin)
unit=$(dpkg -L surplus | grep '/systemd/system/surplusd.service$')
if command -v systemd-analyze >/dev/null; then
    # It warns about unknown keys and bad values but exits 0 for them.
    systemd-analyze verify --man=no "$unit" >"$tmp/verify" 2>&1 &&
        test ! -s "$tmp/verify"
    ok $? "systemd-analyze verify accepts $unit without a warning" || show "$tmp/verify"
else
    test -s "$unit"
    ok $? "$unit is installed (no systemd-analyze to verify it)"
fi

if echo "$debs" | grep -q '/surplus-plugin-cuda_'; then
    # With or without a GPU and driver: it loads, and lists devices or
    # says why there are none.
    printf 'state_dir = "%s/cuda-state";\naccelerators = ( { plugin = "cuda"; } );\n' \
        "$tmp" >"$tmp/cuda.conf"
    surplus --config "$tmp/cuda.conf" plugins >"$tmp/cuda.log" 2>&1 &&
        grep -q "^accelerator  *cuda .* $plugindir/accelerator_cuda.so\$" "$tmp/cuda.log" &&
        grep -qE '^accelerator/cuda: no devices: |(healthy|UNHEALTHY) +accelerator/cuda' \
            "$tmp/cuda.log"
    ok $? "the packaged CUDA plugin loads and reports its devices or why it has none" ||
        show "$tmp/cuda.log"
    dpkg -L surplus-plugin-cuda | grep -q '/systemd/system/surplusd.service.d/cuda.conf$'
    ok $? "the CUDA plugin's package adds its drop-in to surplusd.service"
fi

# --- the SDK ---------------------------------------------------------------
test -f "$plugindir/storage_local.so"
ok $? "pkg-config's plugindir ($plugindir) is where the plugins are"
cp -R /usr/share/doc/surplus-plugin-dev/examples/plugins "$tmp/spool"
if command -v cc >/dev/null && command -v make >/dev/null; then
    (cd "$tmp/spool" && make) >"$tmp/spool.log" 2>&1 &&
        surplus-plugin-check "$tmp/spool/accounting_spool.so" >>"$tmp/spool.log" 2>&1
    ok $? "the example plugin builds against the installed SDK and passes surplus-plugin-check" ||
        show "$tmp/spool.log"
else
    echo "ok $((n += 1)) - the example plugin builds against the installed SDK # SKIP no C compiler"
fi

# --- the daemon with the packaged configuration -----------------------------
daemon_log() {
    if [ -n "$daemon" ]; then
        tail -n 20 "$tmp/surplusd.log" | sed 's/^/#   surplusd: /'
    else
        journalctl -u surplusd.service --no-pager 2>&1 | tail -n 20 | sed 's/^/#   /'
    fi
}
if [ -d /run/systemd/system ]; then
    diag "systemd runs this machine: surplusd is the packaged service"
    systemctl start surplusd.service
    systemctl is-active --quiet surplusd.service
    ok $? "surplusd.service is active" || daemon_log
    caps=$(systemctl show -p CapabilityBoundingSet --value surplusd.service)
    if echo "$debs" | grep -q '/surplus-plugin-cuda_'; then
        echo "$caps" | grep -qw cap_sys_ptrace
        ok $? "with the CUDA plugin's drop-in, surplusd may look for a GPU's holders (CAP_SYS_PTRACE)" ||
            diag "CapabilityBoundingSet: $caps"
    else
        echo "$caps" | grep -qw cap_sys_admin && ! echo "$caps" | grep -qw cap_sys_ptrace
        ok $? "surplusd runs with the unit's bounding set (CAP_SYS_ADMIN, no CAP_SYS_PTRACE)" ||
            diag "CapabilityBoundingSet: $caps"
    fi
else
    diag "no systemd: starting /usr/sbin/surplusd --foreground"
    /usr/sbin/surplusd --foreground 2>"$tmp/surplusd.log" &
    daemon=$!
fi
up=1
for _ in $(seq 1 100); do
    if surplus list >/dev/null 2>&1; then up=0; break; fi
    sleep 0.1
done
ok $up "surplusd answers on /run/surplus/surplus.sock with the packaged configuration"
[ $up -eq 0 ] || { daemon_log; bail "surplusd did not start"; }

surplus devices >"$tmp/devices" 2>&1
grep -q 'sim-0 .*SIMULATED' "$tmp/devices"
ok $? "the packaged configuration's one device says it is SIMULATED" || show "$tmp/devices"

surplus bundle create "$srcdir/examples/jobs/hello" -o "$tmp/hello.tar.zst" >"$tmp/bundle.log" 2>&1
ok $? "surplus bundle create packs examples/jobs/hello" || show "$tmp/bundle.log"

surplus --json submit --wait "$tmp/hello.tar.zst" >"$tmp/job.json" 2>"$tmp/submit.log"
r=$?
ok $r "surplus submit --wait runs hello to success (exit status 0)" ||
    { show "$tmp/submit.log" "$tmp/job.json"; daemon_log; }
id=$(sed -n 's/^  "id": "\([0-9a-f]*\)",*$/\1/p' "$tmp/job.json")
test -n "$id"
ok $? "the job has an id ($id)"

surplus logs "$id" >"$tmp/log" 2>&1
grep -q "^Hello, world! This is job $id (hello)\.$" "$tmp/log"
ok $? "the job's log has its greeting" || show "$tmp/log"

surplus fetch "$id" -o "$tmp/out" >"$tmp/fetch.log" 2>&1 &&
    test "$(cat "$tmp/out/out/greeting.txt" 2>/dev/null)" = "Hello, world!"
ok $? "surplus fetch brings back out/greeting.txt" || { show "$tmp/fetch.log"; ls -lR "$tmp/out" | sed 's/^/#   /'; }
uid=$(sed -n 's/^uid=//p' "$tmp/out/summary.txt" 2>/dev/null)
test "${uid:-0}" -ge 200000 2>/dev/null
ok $? "the job ran as an unprivileged uid of its own (uid ${uid:-?} >= sandbox.uid_base)"

surplus usage --format csv >"$tmp/usage.csv" 2>&1
rec=$(grep "^[^,]*,$id," "$tmp/usage.csv")
test "$(echo "$rec" | grep -c .)" = 1
ok $? "the ledger holds one usage record for the job" || show "$tmp/usage.csv"
# record_id,job_id,tenant,job_name,node,devices,start,end,duration_us,
# device_seconds,cpu_seconds,max_rss_bytes,exit_status,state,bytes_in,
# bytes_out,cost_micros,currency
field() { echo "$rec" | cut -d, -f"$1"; }
test "$(field 3)" = local && test "$(field 4)" = hello
ok $? "the record bills tenant 'local' (root on the socket) for job 'hello'"
test "$(field 6)" = sim-0=SIMULATED
ok $? "the record names the simulated device it used ($(field 6))"
test "$(field 13)" = 0 && test "$(field 14)" = succeeded
ok $? "the record has exit status 0 and state succeeded"
test "$(field 9)" -gt 0 2>/dev/null && test "$(field 16)" -gt 0 2>/dev/null
ok $? "the record has a duration ($(field 9) us) and output bytes ($(field 16))"

# The socket's directory decides who reaches the daemon at all.
if command -v setpriv >/dev/null; then
    setpriv --reuid=65534 --regid=65534 --clear-groups \
        surplus list >"$tmp/nogroup.log" 2>&1
    r=$?
    test $r -ne 0 && grep -q 'cannot reach surplusd' "$tmp/nogroup.log"
    ok $? "a user outside group surplus cannot reach the socket" || show "$tmp/nogroup.log"
    # The same user with the group gets as far as surplusd, which wants a
    # tenant's token from anyone but root.
    setpriv --reuid=65534 --regid=65534 --groups="$gid" \
        surplus list >"$tmp/group.log" 2>&1
    test $? -ne 0 && ! grep -q 'cannot reach surplusd' "$tmp/group.log" &&
        grep -qi 'token' "$tmp/group.log"
    ok $? "a member of group surplus reaches surplusd, which asks for a tenant token" ||
        show "$tmp/group.log"
fi

if [ -n "$daemon" ]; then
    kill -TERM "$daemon"
    wait "$daemon"
    r=$?
    daemon=
    ok $r "surplusd drains and exits 0 on SIGTERM" || show "$tmp/surplusd.log"
else
    systemctl stop surplusd.service
    ! systemctl is-active --quiet surplusd.service
    ok $? "systemctl stop surplusd stops it"
fi
test ! -e /run/surplus/surplus.sock
ok $? "the socket is gone once surplusd has stopped"

# --- remove, then purge -----------------------------------------------------
dpkg --remove surplus-plugin-cuda surplus-plugin-dev surplus >"$tmp/remove.log" 2>&1
ok $? "dpkg --remove succeeds" || show "$tmp/remove.log"
test ! -e /usr/sbin/surplusd && test ! -e /usr/bin/surplus &&
    test ! -e "$plugindir/storage_local.so"
ok $? "removing takes the programs and plugins away"
test -f /etc/surplus/surplus.conf && test -f /var/lib/surplus/ledger.db
ok $? "removing keeps the configuration and the ledger"

dpkg --purge surplus-plugin-cuda surplus-plugin-dev surplus >"$tmp/purge.log" 2>&1
ok $? "dpkg --purge succeeds" || show "$tmp/purge.log"
test ! -e /etc/surplus && test ! -e /var/lib/surplus && test ! -e /run/surplus
ok $? "purging removes /etc/surplus, /var/lib/surplus and /run/surplus"
snapshot >"$tmp/after"
comm -13 "$tmp/before" "$tmp/after" >"$tmp/left"
test ! -s "$tmp/left"
ok $? "nothing the packages installed or created is left" || show "$tmp/left"
comm -23 "$tmp/before" "$tmp/after" >"$tmp/lost"
test ! -s "$tmp/lost"
ok $? "purging removed nothing that was there before the packages" || show "$tmp/lost"
getent group surplus >/dev/null
ok $? "the system group surplus stays (system groups outlive a purge)"

echo "1..$n"
[ "$failed" -eq 0 ]
