#!/bin/sh
# `surplus usage` as a tenant or operator reads the ledger: the table, the
# time range (since inclusive, until exclusive) in every accepted spelling,
# --tenant, CSV and JSON with every field, and the errors scripts rely on.
. "$top_srcdir/tests/lib.sh"

SEED="$top_builddir/tests/usage-seed"

mkdir -p "$tmp/state"
cat > "$tmp/usage.conf" <<CONF
state_dir = "$tmp/state";
CONF

usage() { run "$SURPLUS" --config "$tmp/usage.conf" usage "$@"; }
# The JOB column of a table, one line: "j-1 j-2 ".
jobs() { awk 'NR > 1 { printf "%s ", $2 }' "$1"; }

# In the past whatever the clock says, since --until defaults to now:
# 2025-11-23T10:00:00Z = 1763892000, 12:00Z = 1763899200,
# 14:00Z = 1763906400.
esc=$(printf '\033')
run "$SEED" "$tmp/usage.conf" \
    record_id=r1 job_id=j-1 tenant=acme job_name=train node=gpu-1 \
    device=sim-0=SIM-40G start_us=1763891400000000 end_us=1763892000000000 \
    duration_us=600000000 device_seconds=600 cpu_seconds=590.4 \
    max_rss_bytes=1610612736 exit_status=0 state=succeeded bytes_in=1024 \
    bytes_out=2048 cost_micros=350000 currency=USD -- \
    record_id=r2 job_id=j-2 tenant=beta 'job_name=eval, "final"' \
    device=sim-0=SIM-40G device=sim-1=SIM-40G end_us=1763899200000000 \
    duration_us=90061000000 device_seconds=180122 cpu_seconds=12.6 \
    max_rss_bytes=4096 exit_status=1 state=failed cost_micros=2100000 -- \
    record_id=r3 job_id=j-3 tenant=acme "job_name=esc${esc}[31mred" \
    end_us=1763906400250000 duration_us=1500000 device_seconds=nan \
    cpu_seconds=1 exit_status=124 state=timeout cost_micros=5833 \
    > "$tmp/seed" 2>&1
ok $? "three records for two tenants are seeded: $(cat "$tmp/seed")"

# ---- table ----------------------------------------------------------------
usage > "$tmp/out" 2> "$tmp/err"
ok $? "surplus usage exits 0"
sed 's/^/# /' "$tmp/out" "$tmp/err"
head -n 1 "$tmp/out" | grep -Eq '^END +JOB +TENANT +NAME +STATE +EXIT +DURATION +DEVICES +DEV-S +CPU-S +MAXRSS +COST$'
ok $? "the table has a header line"
[ "$(jobs "$tmp/out")" = "j-1 j-2 j-3 " ]
ok $? "it lists the three records by end time: $(jobs "$tmp/out")"
grep -Eq '^2025-11-23T10:00:00Z +j-1 +acme +train +succeeded +0 +00:10:00 +1 +600 +590 +1\.5 GiB +0\.35 USD$' "$tmp/out"
ok $? "a row shows end (UTC), job, tenant, name, state, exit, duration, devices, device and CPU seconds, max RSS, cost"
grep -Eq '^2025-11-23T12:00:00Z +j-2 +beta +eval, "final" +failed +1 +1-01:01:01 +2 +180122 +13 +4\.0 KiB +2\.10 USD$' "$tmp/out"
ok $? "durations over a day read D-HH:MM:SS and devices are counted"
grep -Eq '^2025-11-23T14:00:00Z +j-3 +acme +esc\\x1b\[31mred +timeout +124 +00:00:01 +0 +- +1 +0 B +0\.005833 USD$' "$tmp/out"
ok $? "control characters in names are escaped, unknown device seconds show as -"
grep -q "$esc" "$tmp/out"; [ $? -ne 0 ]
ok $? "no escape character reaches the terminal"
diag "widest row: $(awk '{ print length($0) }' "$tmp/out" | sort -n | tail -n 1) columns"

# ---- the table fits the terminal -------------------------------------------------
# On a terminal (a pty from script(1), its size set with stty) the table
# fits the width: less wanted columns are left out, names cut; piped it
# has every column whatever $COLUMNS says.
if command -v script > /dev/null 2>&1; then
    mkdir -p "$tmp/wide"
    printf 'state_dir = "%s";\n' "$tmp/wide" > "$tmp/wide.conf"
    run "$SEED" "$tmp/wide.conf" \
        record_id=c0b707aab5e2a3da-1763891400000000 job_id=c0b707aab5e2a3da \
        tenant=research-lab-eu job_name=llama-finetune-v2-large node=gpu-1 \
        device=sim-0=SIM-80G start_us=1763891400000000 end_us=1763892000000000 \
        duration_us=600000000 device_seconds=600 cpu_seconds=590.4 \
        max_rss_bytes=1610612736 exit_status=0 state=succeeded \
        cost_micros=123456789 currency=USD -- \
        record_id=5e2a3dac0b707aab-1763899000000000 job_id=5e2a3dac0b707aab \
        tenant=acme job_name=eval end_us=1763899200000000 duration_us=90061000000 \
        device_seconds=180122 cpu_seconds=12.6 max_rss_bytes=4096 exit_status=1 \
        state=failed cost_micros=2100000 currency=USD > "$tmp/seed" 2>&1
    ok $? "two records with full-length job ids are seeded: $(cat "$tmp/seed")"
    cat > "$tmp/tty-usage" <<SH
stty cols "\$1" rows 24 && shift && exec ${SURPLUS_VALGRIND} "$SURPLUS" --config "$tmp/wide.conf" usage "\$@"
SH
    on_tty() { # on_tty COLS [ARGS]: surplus usage on a terminal COLS wide
        script -qec "sh '$tmp/tty-usage' $*" /dev/null < /dev/null | tr -d '\r'
    }
    widest() { awk '{ if (length($0) > w) w = length($0) } END { print w + 0 }' "$1"; }
    full_header='^END +JOB +TENANT +NAME +STATE +EXIT +DURATION +DEVICES +DEV-S +CPU-S +MAXRSS +COST$'

    run "$SURPLUS" --config "$tmp/wide.conf" usage > "$tmp/piped"
    COLUMNS=40 run "$SURPLUS" --config "$tmp/wide.conf" usage > "$tmp/piped40"
    head -n 1 "$tmp/piped" | grep -Eq "$full_header" && cmp -s "$tmp/piped" "$tmp/piped40" &&
        [ "$(widest "$tmp/piped")" -gt 120 ]
    ok $? "piped, the table has every column ($(widest "$tmp/piped") wide), whatever \$COLUMNS says"

    on_tty 80 > "$tmp/tty80"
    sed 's/^/# /' "$tmp/tty80"
    [ "$(widest "$tmp/tty80")" -le 80 ] && [ "$(wc -l < "$tmp/tty80")" -eq 3 ]
    ok $? "on an 80-column terminal every line fits in 80 columns (widest $(widest "$tmp/tty80"))"
    head -n 1 "$tmp/tty80" | grep -Eq '^END +JOB +TENANT +NAME +STATE +COST$'
    ok $? "... keeping END, JOB, TENANT, NAME, STATE and COST: $(head -n 1 "$tmp/tty80")"
    grep -Eq '^2025-11-23T10:00:00Z c0b707aab5e2a3da researc\+ llama-f\+ succeeded 123\.456789 USD$' "$tmp/tty80" &&
        grep -Eq '^2025-11-23T12:00:00Z 5e2a3dac0b707aab acme +eval +failed +2\.10 USD$' "$tmp/tty80"
    ok $? "... job ids whole, long tenant and job names cut with a '+', the cost in full"

    on_tty 200 > "$tmp/tty200"
    cmp -s "$tmp/tty200" "$tmp/piped"
    ok $? "on a 200-column terminal the table has every column, as piped: $(head -n 1 "$tmp/tty200")"

    on_tty 56 > "$tmp/tty56"
    [ "$(widest "$tmp/tty56")" -le 56 ] && head -n 1 "$tmp/tty56" | grep -Eq '^JOB +TENANT +STATE +COST$' &&
        grep -Eq '^c0b707aab5e2a3da research-la\+ succeeded 123\.456789 USD$' "$tmp/tty56"
    ok $? "on 56 columns: job, tenant, state and cost ($(head -n 1 "$tmp/tty56"))"

    COLUMNS=70 on_tty 0 > "$tmp/tty0"
    [ "$(widest "$tmp/tty0")" -le 70 ] && [ "$(widest "$tmp/tty0")" -gt 56 ] &&
        grep -q c0b707aab5e2a3da "$tmp/tty0" && head -n 1 "$tmp/tty0" | grep -Eq 'TENANT .*COST$'
    ok $? "a terminal that does not tell its width: \$COLUMNS=70 is used (widest $(widest "$tmp/tty0"))"
    (unset COLUMNS; on_tty 0) > "$tmp/tty0"
    [ "$(widest "$tmp/tty0")" -eq 80 ]
    ok $? "... and without \$COLUMNS, 80 (widest $(widest "$tmp/tty0"))"

    on_tty 80 --format csv > "$tmp/ttycsv"
    [ "$(head -n 1 "$tmp/ttycsv")" = "$(run "$SURPLUS" --config "$tmp/wide.conf" usage --format csv | head -n 1)" ] &&
        grep -q '^c0b707aab5e2a3da-1763891400000000,c0b707aab5e2a3da,research-lab-eu,llama-finetune-v2-large,' "$tmp/ttycsv"
    ok $? "--format csv on a narrow terminal still has every field, uncut"
else
    skip "the table fits the terminal" "no script(1) to make a terminal"
fi

# ---- --tenant ----------------------------------------------------------------
usage --tenant acme > "$tmp/out"
ok $? "--tenant exits 0"
[ "$(jobs "$tmp/out")" = "j-1 j-3 " ]
ok $? "--tenant acme shows only acme's records: $(jobs "$tmp/out")"
usage --tenant=beta > "$tmp/out" && [ "$(jobs "$tmp/out")" = "j-2 " ]
ok $? "--tenant=beta shows only beta's: $(jobs "$tmp/out")"

# ---- the time range -----------------------------------------------------------
range() { # EXPECTED DESCRIPTION ARGS...
    want=$1; what=$2; shift 2
    usage "$@" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    got=$(jobs "$tmp/out")
    [ $rc -eq 0 ] && [ "$got" = "$want" ]
    ok $? "$what: '$got' $(cat "$tmp/err")"
}
range "j-2 j-3 " "--since is inclusive" --since 2025-11-23T12:00:00Z
range "j-1 " "--until is exclusive" --until 2025-11-23T12:00:00Z
range "j-2 " "--since and --until together" \
    --since 2025-11-23T11:00:00Z --until 2025-11-23T14:00:00Z
range "j-2 j-3 " "an offset +01:00 is honoured" --since 2025-11-23T13:00:00+01:00
range "j-1 j-2 " "an offset -0530, and fractions" --until 2025-11-23T08:30:00.25-0530
range "j-2 j-3 " "lower-case t and z are RFC 3339 too" --since 2025-11-23t12:00:00z
range "j-3 " "@UNIXSECONDS" --since @1763906400
range "j-1 j-2 " "@UNIXSECONDS.fraction, until exclusive to the microsecond" \
    --until @1763906400.25
range "j-1 j-2 j-3 " "--until now" --until now
(TZ=HST10; export TZ; usage --until 2025-11-23T02:00:00) > "$tmp/out"
[ "$(jobs "$tmp/out")" = "j-1 " ]
ok $? "a date-time without zone is local time (TZ=HST10): $(jobs "$tmp/out")"
(TZ=HST10; export TZ; usage --since 2025-11-23 --until 2025-11-24) > "$tmp/out"
[ "$(jobs "$tmp/out")" = "j-1 j-2 j-3 " ]
ok $? "a date is local midnight: $(jobs "$tmp/out")"
(TZ=UTC0; export TZ; usage --since 2025-11-23T12:30) > "$tmp/out"
[ "$(jobs "$tmp/out")" = "j-3 " ]
ok $? "seconds may be left out: $(jobs "$tmp/out")"

# ---- empty results ----------------------------------------------------------
usage --since 2020-01-01T00:00:00Z --until 2020-01-02T00:00:00Z > "$tmp/out" 2> "$tmp/err"
ok $? "an empty range exits 0"
[ "$(cat "$tmp/out")" = "no usage records between 2020-01-01T00:00:00Z and 2020-01-02T00:00:00Z" ] &&
    [ ! -s "$tmp/err" ]
ok $? "and says so on stdout: $(cat "$tmp/out")"
usage --tenant nobody > "$tmp/out"
grep -Eq '^no usage records between the beginning and [0-9T:.-]+Z for tenant nobody$' "$tmp/out"
ok $? "by default from the beginning until now, with the tenant: $(cat "$tmp/out")"
usage --format csv --tenant nobody > "$tmp/out"
[ $? -eq 0 ] && [ "$(wc -l < "$tmp/out")" -eq 1 ] && head -n 1 "$tmp/out" | grep -q '^record_id,'
ok $? "empty CSV is the header alone"
usage --format json --tenant nobody > "$tmp/out"
[ $? -eq 0 ] && [ "$(cat "$tmp/out")" = "[]" ]
ok $? "empty JSON is []"

# ---- CSV ------------------------------------------------------------------------
usage --format csv > "$tmp/csv"
ok $? "--format csv exits 0"
sed 's/^/# /' "$tmp/csv"
[ "$(head -n 1 "$tmp/csv")" = "record_id,job_id,tenant,job_name,node,devices,start,end,duration_us,device_seconds,cpu_seconds,max_rss_bytes,exit_status,state,bytes_in,bytes_out,cost_micros,currency" ]
ok $? "the CSV header names every field"
grep -qx 'r1,j-1,acme,train,gpu-1,sim-0=SIM-40G,2025-11-23T09:50:00Z,2025-11-23T10:00:00Z,600000000,600,590.4,1610612736,0,succeeded,1024,2048,350000,USD' "$tmp/csv"
ok $? "a CSV row has every field, numbers unformatted, times RFC 3339 UTC"
grep -q '^r2,j-2,beta,"eval, ""final""",node-1,sim-0=SIM-40G;sim-1=SIM-40G,' "$tmp/csv"
ok $? "a name with a comma and a quote is quoted, quotes doubled; devices id=model;id=model"
grep -q '^r3,.*,2025-11-23T14:00:00.250000Z,1500000,,1,' "$tmp/csv"
ok $? "microseconds are kept and an unknown number is an empty field"
python3 - "$tmp/csv" > "$tmp/py" 2>&1 <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert [r["record_id"] for r in rows] == ["r1", "r2", "r3"], rows
assert rows[1]["job_name"] == 'eval, "final"', rows[1]
assert rows[2]["job_name"] == "esc\x1b[31mred", rows[2]
assert rows[1]["cost_micros"] == "2100000" and rows[1]["currency"] == "USD"
PY
ok $? "a CSV reader gets the fields back as recorded $(cat "$tmp/py")"

# ---- JSON -------------------------------------------------------------------------
usage --format json > "$tmp/json"
ok $? "--format json exits 0"
python3 - "$tmp/json" > "$tmp/py" 2>&1 <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
assert [r["record_id"] for r in recs] == ["r1", "r2", "r3"], recs
want = {
    "record_id": "r1", "job_id": "j-1", "tenant": "acme", "job_name": "train",
    "node": "gpu-1", "devices": [{"id": "sim-0", "model": "SIM-40G"}],
    "start": "2025-11-23T09:50:00Z", "start_us": 1763891400000000,
    "end": "2025-11-23T10:00:00Z", "end_us": 1763892000000000,
    "duration_us": 600000000, "device_seconds": 600.0, "cpu_seconds": 590.4,
    "max_rss_bytes": 1610612736, "exit_status": 0, "state": "succeeded",
    "bytes_in": 1024, "bytes_out": 2048, "cost_micros": 350000,
    "currency": "USD",
}
assert recs[0] == want, recs[0]
assert recs[1]["job_name"] == 'eval, "final"' and len(recs[1]["devices"]) == 2
assert recs[2]["job_name"] == "esc\x1b[31mred", recs[2]
assert recs[2]["device_seconds"] is None, recs[2]
assert recs[2]["end"] == "2025-11-23T14:00:00.250000Z", recs[2]
assert recs[2]["end_us"] == 1763906400250000, recs[2]
PY
ok $? "the JSON parses and has every field with its value $(cat "$tmp/py")"
run "$SURPLUS" --config "$tmp/usage.conf" --json usage > "$tmp/json2"
ok $? "surplus --json usage exits 0"
cmp -s "$tmp/json" "$tmp/json2"
ok $? "and prints the same as --format json"
run "$SURPLUS" --config "$tmp/usage.conf" --json usage --format csv | head -n 1 | grep -q '^record_id,'
ok $? "an explicit --format wins over --json"

# ---- idempotence ------------------------------------------------------------------
run "$SEED" "$tmp/usage.conf" record_id=r1 job_id=j-1 tenant=acme \
    job_name=retrained end_us=1763892000000000 > /dev/null 2>&1
ok $? "recording r1 again succeeds"
usage --format csv > "$tmp/csv"
[ "$(grep -c '^r1,' "$tmp/csv")" -eq 1 ] && grep -q '^r1,j-1,acme,train,' "$tmp/csv"
ok $? "a record written twice appears once, as first written"

# ---- relative times -------------------------------------------------------------
mkdir -p "$tmp/rel"
printf 'state_dir = "%s";\n' "$tmp/rel" > "$tmp/rel.conf"
hour_ago=$(( ($(date +%s) - 3600) * 1000000 ))
run "$SEED" "$tmp/rel.conf" record_id=recent tenant=acme end_us=$hour_ago > /dev/null 2>&1
ok $? "a record that ended an hour ago is seeded"
relative() { # EXPECTED DESCRIPTION ARGS...
    want=$1; what=$2; shift 2
    run "$SURPLUS" --config "$tmp/rel.conf" usage "$@" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    got=$(jobs "$tmp/out")
    [ $rc -eq 0 ] && [ "$got" = "$want" ]
    ok $? "$what: '$got' $(cat "$tmp/err")"
}
relative "recent " "a record written just now shows by default"
relative "recent " "--since -2h includes it" --since -2h
relative "" "--since -30m leaves it out" --since -30m
relative "recent " "--since -90m --until now" --since -90m --until now
relative "" "--until -2h leaves it out" --until -2h
relative "recent " "--since -7d" --since -7d
relative "recent " "--since -1h30m" --since -1h30m

# ---- errors ---------------------------------------------------------------------------
bad() { # OPTION VALUE
    usage "$1" "$2" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ $rc -eq 64 ] && grep -q -- "$1 '$2'" "$tmp/err" && [ ! -s "$tmp/out" ]
    ok $? "$1 '$2' exits 64 ($rc) naming the option and value: $(cat "$tmp/err")"
}
bad --since yesterday
bad --since 2026-13-01
bad --since 2026-02-29
bad --since 2025-11-23T24:00:00Z
bad --since 2025-11-23T12:00:00Zjunk
bad --since 2025-11-23T12:00:00+1
bad --since -2x
bad --since +2h
bad --since @12ab
bad --until ''
bad --until 26-11-23
usage --since 2025-11-24T00:00:00Z --until 2025-11-23T00:00:00Z > /dev/null 2> "$tmp/err"
[ $? -eq 64 ] && grep -q 'since .* is after --until' "$tmp/err"
ok $? "--since after --until exits 64: $(cat "$tmp/err")"
usage --format xml > /dev/null 2> "$tmp/err"
[ $? -eq 64 ] && grep -q "format 'xml'" "$tmp/err"
ok $? "an unknown --format exits 64: $(cat "$tmp/err")"
usage extra > /dev/null 2>&1
[ $? -eq 64 ]; ok $? "an unexpected argument exits 64"

printf 'state_dir = "%s";\naccounting = { plugin = "nonesuch"; };\n' "$tmp/state" > "$tmp/missing.conf"
run "$SURPLUS" --config "$tmp/missing.conf" usage > /dev/null 2> "$tmp/err"
[ $? -eq 78 ] && grep -q "no plugin accounting_nonesuch.so in" "$tmp/err"
ok $? "an accounting plugin that cannot be found exits 78: $(cat "$tmp/err")"
printf 'accounting = { plugin = "sqlite"; path = "%s/no/such/dir/ledger.db"; };\n' "$tmp" > "$tmp/nodir.conf"
run "$SURPLUS" --config "$tmp/nodir.conf" usage > /dev/null 2> "$tmp/err"
[ $? -eq 78 ] && grep -q "accounting/sqlite.*cannot open database" "$tmp/err"
ok $? "a ledger that cannot be opened exits 78 with the plugin's message: $(cat "$tmp/err")"

if python3 -c 'import sqlite3' 2> /dev/null; then
    cp "$tmp/state/ledger.db" "$tmp/rel/ledger.db" &&
        rm -f "$tmp/rel/ledger.db-wal" "$tmp/rel/ledger.db-shm" &&
        python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE usage SET devices = ? WHERE record_id = ?", ("garbage", "r2"))
db.commit()' "$tmp/rel/ledger.db"
    run "$SURPLUS" --config "$tmp/rel.conf" usage > /dev/null 2> "$tmp/err"
    [ $? -eq 70 ] && grep -q "query failed: .*malformed devices column" "$tmp/err"
    ok $? "a query the plugin fails exits 70 with its message: $(cat "$tmp/err")"
else
    skip "a query the plugin fails exits 70" "python3 has no sqlite3 module"
fi
done_testing
