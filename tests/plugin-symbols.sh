#!/bin/sh
# Every shipped plugin exports exactly one symbol, its descriptor function
# (like Linux-PAM's per-module dlopen tests, done on the built files).
. "$top_srcdir/tests/lib.sh"
command -v nm >/dev/null 2>&1 || skip_all "nm not installed"
for so in "$PLUGINS"/*.so; do
    syms=$(nm -D --defined-only "$so" | awk '{print $3}' | tr '\n' ' ')
    [ "$syms" = "surplus_plugin_descriptor " ]
    ok $? "$(basename "$so") exports only surplus_plugin_descriptor (got: $syms)"
done
done_testing
