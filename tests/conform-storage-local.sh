#!/bin/sh
# The shipped storage/local plugin passes the conformance checker.
. "$top_srcdir/tests/lib.sh"
exec ${SURPLUS_VALGRIND} "$CHECKER" ${SURPLUS_CHECK_LARGE_SIZE:+--large-size $SURPLUS_CHECK_LARGE_SIZE} "$PLUGINS/storage_local.so"
