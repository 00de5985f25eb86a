#!/bin/sh
# Benchmark: BENCH_JOBS trivial jobs (default 2000; /bin/true on one
# simulated device) through surplusd, submitted over its Unix socket by 4
# clients at once.  Prints jobs/s from the first submission to the last
# job's end, p50 and p99 of submit-to-start and submit-to-done (from the
# job records), and the daemon's peak RSS.  BENCH_RATE=N paces the clients
# to N submissions per second in all (default: as fast as they can), to
# measure submit-to-start on a node that is not saturated.
#   tests/bench/throughput.sh [BUILD_DIR]      (run from the source tree, as root)
set -eu
build=${1:-.}
jobs=${BENCH_JOBS:-2000}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/surplus-throughput.XXXXXX")
[ "$(id -u)" -eq 0 ] || { echo "throughput: needs root" >&2; exit 77; }
: "${SURPLUS_PLUGIN_PATH:=$build/plugins/.libs}"
: "${SURPLUS_SANDBOX_INIT:=$build/surplus-sandbox-init}"
export SURPLUS_PLUGIN_PATH SURPLUS_SANDBOX_INIT
sock="$work/surplus.sock"
cat > "$work/bench.conf" <<CONF
state_dir = "$work/state";
accelerators = ( { plugin = "sim"; count = 8; model = "SIM-80G"; memory = "1M"; } );
api = { socket = "$sock"; };
tenants = ( { name = "bench"; max_gpus = 8; max_queued = 1000000; } );
CONF
mkdir "$work/job"
printf 'api = 1;\nname = "true";\ncommand = ["/bin/true"];\nresources = { gpus = 1; walltime = "1m"; };\n' > "$work/job/job.conf"
"$build/surplus" --config "$work/bench.conf" bundle create "$work/job" -o "$work/true.tar.zst" > /dev/null
"$build/surplusd" -c "$work/bench.conf" --foreground 2> "$work/surplusd.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null || true; wait $daemon 2>/dev/null || true; rm -rf "$work"' EXIT
for i in $(seq 1 100); do curl -s --unix-socket "$sock" http://x/healthz > /dev/null && break; sleep 0.05; done

python3 - "$sock" "$work/true.tar.zst" "$jobs" "$daemon" "${BENCH_RATE:-0}" <<'PY'
import json, os, socket, sys, threading, time, datetime, http.client

sock, bundle, n, pid = sys.argv[1], open(sys.argv[2], "rb").read(), int(sys.argv[3]), sys.argv[4]
rate = float(sys.argv[5])

class UnixHTTP(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(sock)

def call(conn, method, path, body=None):
    hdr = {"X-Surplus-Tenant": "bench"}
    conn.request(method, path, body=body, headers=hdr)
    r = conn.getresponse()
    data = r.read()
    return r.status, data

ids, lock = [], threading.Lock()
def client(k, count):
    conn = UnixHTTP("localhost")
    for i in range(count):
        if rate > 0:
            # Client k submits its i-th job at (4i + k) / rate seconds.
            delay = t0 + (4 * i + k) / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        st, data = call(conn, "POST", "/v1/jobs", bundle)
        if st != 201:
            raise SystemExit("submit failed: %d %s" % (st, data[:200]))
        with lock:
            ids.append(json.loads(data)["id"])

t0 = time.time()
threads = [threading.Thread(target=client, args=(i, n // 4 + (1 if i < n % 4 else 0))) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
t_submitted = time.time()
# Wait on the daemon's counters (cheap), then read every job once: listing
# thousands of jobs over and over would load the machine being measured.
conn = UnixHTTP("localhost")
while True:
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    text = r.read().decode()
    ended = sum(int(l.split()[-1]) for l in text.splitlines()
                if l.startswith("surplus_jobs{") and
                not any(s in l for s in ('"queued"', '"running"', '"completing"')))
    if ended >= n:
        break
    time.sleep(0.05)
t_done = time.time()
def hwm_kib():
    return int([l for l in open("/proc/%s/status" % pid)
                if l.startswith("VmHWM")][0].split()[1])
hwm_run = hwm_kib()
st, data = call(conn, "GET", "/v1/jobs")
jobs = json.loads(data)
def ts(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
ok = [j for j in jobs if j["state"] == "succeeded"]
start = sorted(ts(j["started_at"]) - ts(j["submitted_at"]) for j in ok)
done = sorted(ts(j["ended_at"]) - ts(j["submitted_at"]) for j in ok)
first = min(ts(j["submitted_at"]) for j in jobs); last = max(ts(j["ended_at"]) for j in ok)
def p(v, q): return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))] * 1e3
hwm = hwm_kib()
# utime, stime, and those of reaped children (each job's sandbox), in ticks
stat = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
cpu = sum(int(x) for x in stat[11:15]) / os.sysconf("SC_CLK_TCK")
print("jobs %d, succeeded %d" % (len(jobs), len(ok)))
for j in jobs:
    if j["state"] != "succeeded":
        print("  not succeeded: %s %s exit %s: %s" % (j["id"], j["state"], j["exit_status"], j["reason"]))
print("submission: %.1f jobs/s accepted (%.2f s for all%s)" % (n / (t_submitted - t0), t_submitted - t0,
      ", paced at %g/s" % rate if rate > 0 else ""))
print("throughput: %.1f jobs/s (first submit to last end, %.2f s)" % (len(ok) / (last - first), last - first))
print("submit-to-start ms: p50 %.1f  p99 %.1f" % (p(start, .5), p(start, .99)))
print("submit-to-done  ms: p50 %.1f  p99 %.1f" % (p(done, .5), p(done, .99)))
print("surplusd peak RSS: %.1f MiB while running the jobs, %.1f MiB after listing all %d"
      % (hwm_run / 1024, hwm / 1024, len(jobs)))
print("CPU time per job: %.2f ms (surplusd and the jobs' sandboxes; %d CPUs)" %
      (cpu * 1e3 / max(len(jobs), 1), os.cpu_count()))
PY

# The ceiling on this machine without the daemon: the same job through the
# runner alone (tests/bench/launch), 4 runners side by side, no HTTP, no
# job store, no scheduler.
launch="$build/tests/bench/launch"
if [ -x "$launch" ]; then
    kill $daemon 2>/dev/null; wait $daemon 2>/dev/null || true
    runs=${BENCH_CEILING_RUNS:-150}
    for k in 1 2 3 4; do
        mkdir -p "$work/ceiling$k"
        printf 'state_dir = "%s/ceiling%d/state";\nsandbox = { uid_base = %d; };\n' \
            "$work" "$k" $((500000 + k * 1000)) > "$work/ceiling$k/b.conf"
    done
    mkdir -p "$work/cjob"
    printf 'api = 1;\nname = "true";\ncommand = ["/bin/true"];\n' > "$work/cjob/job.conf"
    "$build/surplus" --config "$work/ceiling1/b.conf" bundle create "$work/cjob" -o "$work/c.tar.zst" > /dev/null
    t0=$(date +%s%N)
    for k in 1 2 3 4; do
        "$launch" "$work/ceiling$k/b.conf" "$work/c.tar.zst" "$runs" > "$work/ceiling$k/out" 2>&1 &
    done
    wait
    t1=$(date +%s%N)
    echo "runner alone, 4 side by side: $(( 4 * runs * 1000000000 / (t1 - t0) )) jobs/s," \
        "$(cat "$work"/ceiling?/out | awk '/^cpu_ms_per_run/ { s += $2; n++ } END { printf "%.2f", s / n }') ms CPU per job"

    # The floor under that ceiling: creating a process and nothing else
    # (posix_spawn + wait of /bin/true, no sandbox), one at a time and two
    # side by side, since side by side is how the jobs run.
    runs=${BENCH_SPAWN_RUNS:-500}
    "$launch" --spawn "$runs" /bin/true > "$work/spawn0"
    t0=$(date +%s%N)
    for k in 1 2; do "$launch" --spawn "$runs" /bin/true > "$work/spawn$k" & done
    wait
    t1=$(date +%s%N)
    echo "posix_spawn + wait of /bin/true, no sandbox: alone" \
        "$(awk '{ printf "%.0f/s at %.2f ms CPU each", $6, $4 }' "$work/spawn0");" \
        "2 side by side $(( 2 * runs * 1000000000 / (t1 - t0) ))/s in all at" \
        "$(cat "$work/spawn1" "$work/spawn2" | awk '{ s += $4 } END { printf "%.2f", s / 2 }') ms CPU each"
fi
exit 0
