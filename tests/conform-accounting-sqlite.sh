#!/bin/sh
# The shipped accounting/sqlite plugin passes the conformance checker.
. "$top_srcdir/tests/lib.sh"
exec ${SURPLUS_VALGRIND} "$CHECKER" ${SURPLUS_CHECK_LARGE_SIZE:+--large-size $SURPLUS_CHECK_LARGE_SIZE} "$PLUGINS/accounting_sqlite.so"
