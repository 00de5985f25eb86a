#!/bin/sh
# `surplus plugins` as an operator sees it: the table, --json, --check, and
# configuration mistakes reported with file:line and exit status 78.
. "$top_srcdir/tests/lib.sh"

cat > "$tmp/ok.conf" <<CONF
state_dir = "$tmp/state";
accelerators = ( { plugin = "sim"; count = 3; model = "SIM-40G"; memory = "40G"; } );
CONF
mkdir -p "$tmp/state"

run "$SURPLUS" --config "$tmp/ok.conf" plugins > "$tmp/out" 2> "$tmp/err"
ok $? "surplus plugins exits 0 with a valid configuration"
sed 's/^/# /' "$tmp/out" "$tmp/err"
grep -Eq '^storage +local +[0-9.]+ +1\.1 +/.*/storage_local\.so$' "$tmp/out"
ok $? "the table lists storage/local with version, ABI and file"
grep -Eq '^accounting +sqlite ' "$tmp/out" && grep -Eq '^accelerator +sim ' "$tmp/out"
ok $? "the table lists accounting/sqlite and accelerator/sim"
[ "$(grep -Ec '^sim-[0-9] +SIM-40G +40\.0 GiB +healthy +accelerator/sim, simulated' "$tmp/out")" = 3 ]
ok $? "three simulated devices are listed with model, memory and health"
grep -q 'storage/local: 0 objects' "$tmp/out" && grep -q 'accounting/sqlite: 0 usage records' "$tmp/out"
ok $? "storage and accounting report what they hold"

run "$SURPLUS" --config "$tmp/ok.conf" --json plugins > "$tmp/json"
ok $? "surplus --json plugins exits 0"
grep -q '"id": "sim-2"' "$tmp/json" && grep -q '"kind": "accounting"' "$tmp/json"
ok $? "the JSON lists plugins and devices"

SURPLUS_CHECK_LARGE_SIZE=${SURPLUS_CHECK_LARGE_SIZE:-64M} run "$SURPLUS" --config "$tmp/ok.conf" plugins --check > "$tmp/check" 2>&1
ok $? "surplus plugins --check passes on the shipped plugins"
grep -q '^not ok' "$tmp/check"; [ $? -ne 0 ]
ok $? "no conformance check failed"; grep '^not ok' "$tmp/check" | sed 's/^/# /'
[ ! -e "$tmp/state/store/objects/check" ]
ok $? "--check does not write into the configured store"

# A plugin that loads but whose query fails: the command fails, naming it.
printf 'state_dir = "%s";\nstorage = { plugin = "listfail"; };\n' "$tmp/state" > "$tmp/listfail.conf"
SURPLUS_PLUGIN_PATH="$SURPLUS_FIXTURE_DIR:$PLUGINS" run "$SURPLUS" --config "$tmp/listfail.conf" plugins > "$tmp/out" 2> "$tmp/err"
rc=$?
[ $rc -eq 70 ] && grep -qx "surplus: storage/listfail: query failed: backend unreachable (fixture)" "$tmp/err"
ok $? "a plugin whose query fails exits 70 and is named (exit $rc): $(cat "$tmp/err")"
grep -q '^storage/listfail: error: backend unreachable (fixture)$' "$tmp/out" &&
    ! grep -q 'storage/listfail: 0 objects' "$tmp/out" &&
    grep -q 'accounting/sqlite: 0 usage records' "$tmp/out"
ok $? "the table shows the error instead of a count, and the others' reports"

# --all: what the plugin path holds that the configuration does not use.
SURPLUS_PLUGIN_PATH="$SURPLUS_FIXTURE_DIR:$PLUGINS" run "$SURPLUS" --config "$tmp/ok.conf" plugins --all > "$tmp/out" 2> "$tmp/err"
ok $? "surplus plugins --all exits 0 (unused plugins that cannot load do not count): $(cat "$tmp/err")"
sed 's/^/# /' "$tmp/out"
sed -n '/^INSTALLED, NOT CONFIGURED$/,$p' "$tmp/out" > "$tmp/unused"
grep -Eq "^storage +good +1\.2\.3 +1\.1 +$SURPLUS_FIXTURE_DIR/storage_good\.so$" "$tmp/unused"
ok $? "--all lists an installed, unconfigured plugin with version, ABI and file"
grep -A1 -E '^storage +wrongmajor ' "$tmp/unused" | grep -q 'error: .*different ABI major version'
ok $? "and says why one cannot be loaded"
! grep -Eq '^(storage +local|accounting +sqlite|accelerator +sim) ' "$tmp/unused"
ok $? "but not the configured plugins"
run "$SURPLUS" --config "$tmp/ok.conf" plugins > "$tmp/out" 2>&1
! grep -q 'INSTALLED, NOT CONFIGURED' "$tmp/out"
ok $? "without --all, only the configured plugins are listed"
SURPLUS_PLUGIN_PATH="$SURPLUS_FIXTURE_DIR:$PLUGINS" run "$SURPLUS" --config "$tmp/ok.conf" --json plugins --all > "$tmp/json" 2>&1
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
u = {(p["kind"], p["name"]): p for p in d["unconfigured"]}
assert u[("storage", "good")]["version"] == "1.2.3", u
assert "error" in u[("storage", "wrongmajor")], u
assert ("storage", "local") not in u' "$tmp/json"
ok $? "--json --all adds the list as \"unconfigured\""

printf 'state_dir = "%s";\nlimits = { max_entires = 5; };\n' "$tmp/state" > "$tmp/bad.conf"
run "$SURPLUS" --config "$tmp/bad.conf" plugins > /dev/null 2> "$tmp/err"
[ $? -eq 78 ]; ok $? "an unknown key exits 78"
grep -q "bad.conf:2: limits.max_entires: unknown key" "$tmp/err"
ok $? "and names file:line and the key: $(cat "$tmp/err")"

printf 'state_dir = "%s";\naccelerators = ( { plugin = "nonesuch"; } );\n' "$tmp/state" > "$tmp/missing.conf"
run "$SURPLUS" --config "$tmp/missing.conf" plugins > "$tmp/out" 2> "$tmp/err"
[ $? -eq 78 ]; ok $? "a plugin that cannot be found exits 78"
grep -q "no plugin accelerator_nonesuch.so in" "$tmp/err"
ok $? "and says where it looked: $(cat "$tmp/err")"

printf 'state_dir = "%s";\naccelerators = ( { plugin = "sim";\n colour = "red"; } );\n' "$tmp/state" > "$tmp/key.conf"
run "$SURPLUS" --config "$tmp/key.conf" plugins > /dev/null 2> "$tmp/err"
[ $? -eq 78 ]; ok $? "a key the plugin does not know exits 78"
grep -q "key.conf:3: unknown key 'colour' in accelerators\[0\]" "$tmp/err"
ok $? "and names file:line: $(cat "$tmp/err")"

printf 'state_dir = "%s";\naccelerators = ( { plugin = "sim"; memory = "lots"; } );\n' "$tmp/state" > "$tmp/val.conf"
run "$SURPLUS" --config "$tmp/val.conf" plugins > /dev/null 2> "$tmp/err"
[ $? -eq 78 ]; ok $? "a bad plugin setting exits 78"
grep -q "val.conf:2: accelerators\[0\].memory: expected a size" "$tmp/err"
ok $? "and names file:line and the setting: $(cat "$tmp/err")"

run "$SURPLUS" --config "$tmp/nonexistent.conf" plugins > /dev/null 2> "$tmp/err"
[ $? -eq 78 ]; ok $? "a missing configuration file exits 78"

run "$SURPLUS" frobnicate > /dev/null 2>&1
[ $? -eq 64 ]; ok $? "an unknown verb exits 64"

run "$SURPLUS" version | grep -q "plugin ABI 1.1"
ok $? "surplus version shows the plugin ABI"
done_testing
