#!/bin/sh
# surplus-plugin-check fails a plugin that breaks the contract, naming the
# broken checks: a storage plugin that writes in place and trusts keys.
. "$top_srcdir/tests/lib.sh"
"$CHECKER" --large-size 4M "$SURPLUS_FIXTURE_DIR/storage_naive.so" > "$tmp/out" 2>&1
status=$?
sed 's/^/# /' "$tmp/out"
[ $status -eq 1 ]; ok $? "the checker exits 1 on a non-conforming plugin (got $status)"
grep -q '^not ok .* storage: hostile keys refused' "$tmp/out"
ok $? "it reports the keys that escape the store"
grep -q '^not ok .* storage: overwrite is atomic for a concurrent reader' "$tmp/out"
ok $? "it reports the torn reads of a non-atomic put"
grep -q '^ok .* storage: get returns exactly what was put' "$tmp/out"
ok $? "and still passes what the plugin does right"
grep -q '^# storage/naive does not set SURPLUS_PLUGIN_THREAD_SAFE' "$tmp/out" &&
    ! grep -q 'thread-safe: .* threads at once' "$tmp/out"
ok $? "a plugin that does not declare itself thread-safe is called from one thread"
"$CHECKER" --large-size 4M "$SURPLUS_FIXTURE_DIR/storage_threadsafe.so" > "$tmp/out3" 2>&1
status=$?
sed 's/^/# /' "$tmp/out3"
[ $status -eq 1 ] &&
    grep -q '^not ok .* storage: thread-safe: 8 threads at once on one instance, [0-9]* calls, [1-9][0-9]* failed' "$tmp/out3" &&
    grep -q '^# thread [0-9]: put: .*fixture stores nothing' "$tmp/out3"
ok $? "one that declares itself thread-safe is called from 8 threads at once, and its failures are reported"
"$CHECKER" "$SURPLUS_FIXTURE_DIR/storage_wrongmajor.so" > "$tmp/out2" 2>&1
[ $? -eq 1 ] && grep -q 'plugin ABI 2.0, core ABI 1.1' "$tmp/out2"
ok $? "a plugin the loader refuses fails the check with the loader's reason"
"$CHECKER" > /dev/null 2>&1
[ $? -eq 64 ]; ok $? "no plugin named is a usage error (64)"
done_testing
