#!/bin/sh
# Each installed SDK header compiles on its own, as C99 with -pedantic and
# as C++, with warnings as errors.
. "$top_srcdir/tests/lib.sh"
for h in "$top_srcdir"/sdk/include/surplus/*.h; do
    name=surplus/$(basename "$h")
    printf '#include <%s>\n' "$name" > "$tmp/t.c"
    ${CC:-cc} -std=c99 -pedantic -Wall -Wextra -Werror -I"$top_srcdir/sdk/include" \
        -c "$tmp/t.c" -o "$tmp/t.o" 2>"$tmp/err"
    ok $? "$name compiles alone as C99 -pedantic"; cat "$tmp/err" | sed 's/^/# /'
    cp "$tmp/t.c" "$tmp/t.cc"
    ${CXX:-c++} -std=c++11 -pedantic -Wall -Wextra -Werror -I"$top_srcdir/sdk/include" \
        -c "$tmp/t.cc" -o "$tmp/t.o" 2>"$tmp/err"
    ok $? "$name compiles alone as C++"; cat "$tmp/err" | sed 's/^/# /'
done
# A plugin written in C++ against the SDK exports the descriptor unmangled.
cat > "$tmp/p.cc" <<'CC'
#include <surplus/surplus.h>
static int i(const surplus_host *, surplus_ctx *, void **) { return 0; }
static void f(void *) {}
static int d(void *, surplus_device_fn, void *) { return 0; }
static int p(void *, const surplus_lease *) { return 0; }
static int r(void *, const surplus_lease *, surplus_scrub_report *) { return 0; }
static const surplus_accelerator_ops ops = { d, p, r };
static const surplus_plugin desc = { SURPLUS_PLUGIN_HEADER(SURPLUS_KIND_ACCELERATOR),
    "cxx", "1", "C++ plugin", i, f, &ops, 0 };
SURPLUS_PLUGIN_EXPORT(desc)
CC
${CXX:-c++} -std=c++11 -pedantic -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
    -I"$top_srcdir/sdk/include" "$tmp/p.cc" -o "$tmp/accelerator_cxx.so" 2>"$tmp/err"
ok $? "a C++ plugin builds against the SDK"; sed 's/^/# /' "$tmp/err"
nm -D --defined-only "$tmp/accelerator_cxx.so" 2>/dev/null | grep -q ' surplus_plugin_descriptor$'
ok $? "the C++ plugin exports surplus_plugin_descriptor unmangled"
done_testing
