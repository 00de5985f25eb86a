#!/bin/sh
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for
# FUZZ_SECONDS (default 60) from its seed corpus.  Exits non-zero on any
# crash, leak, sanitizer report or escape (the targets abort on those).
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_OUT:-$src/_build/fuzz}
seconds=${FUZZ_SECONDS:-60}
mkdir -p "$out"
cat > "$out/fuzz-config.h" <<H
#define _GNU_SOURCE 1
#define PACKAGE_VERSION "fuzz"
H
cflags="-g -O1 -std=gnu11 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
 -include $out/fuzz-config.h -I$src/sdk/include -I$src/core/lib \
 $(pkg-config --cflags libconfig libarchive jansson)"
libs="$(pkg-config --libs libconfig libarchive jansson)"
core="err log units settings config seccomp manifest fsafe bundle"
objs=""
for f in $core; do
    clang $cflags -c "$src/core/lib/$f.c" -o "$out/$f.o"
    objs="$objs $out/$f.o"
done
status=0
for t in manifest bundle; do
    clang $cflags -fsanitize=fuzzer "$src/tests/fuzz/fuzz_$t.c" $objs $libs -o "$out/fuzz_$t"
    mkdir -p "$out/corpus-$t"
    cp "$src/tests/fuzz/corpus/$t/"* "$out/corpus-$t/" 2>/dev/null || true
    [ "$t" = bundle ] && [ -x "$src/tests/fuzz/seed-bundles.sh" ] && sh "$src/tests/fuzz/seed-bundles.sh" "$out/corpus-$t"
    echo "fuzzing $t for ${seconds}s"
    LSAN_OPTIONS="suppressions=$src/tests/fuzz/lsan.supp:print_suppressions=0"; export LSAN_OPTIONS
    if ! "$out/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
            -timeout=10 -print_final_stats=1 -artifact_prefix="$out/crash-$t-" \
            "$out/corpus-$t" > "$out/fuzz_$t.log" 2>&1; then
        echo "fuzz_$t FAILED:"; tail -n 40 "$out/fuzz_$t.log"; status=1
    else
        grep -E 'stat::number_of_executed_units|Done' "$out/fuzz_$t.log" | tail -n 2
    fi
done
exit $status
