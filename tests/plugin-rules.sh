#!/bin/sh
# surplus-plugin(7) and the SDK headers state every rule surplus-plugin-check
# enforces: the CONFORMANCE section has one item per check the checker runs
# on each shipped plugin, every errno a check demands is named in that
# section and in the kind's header, and the conventions a vendor cannot
# guess (NaN for an unknown value, the default path) are written down.
. "$top_srcdir/tests/lib.sh"

man="$top_srcdir/docs/surplus-plugin.7"
inc="$top_srcdir/sdk/include/surplus"

# The items of one subsection (.SS TITLE) of CONFORMANCE, one per line.
items() {
    awk -v want="$1" '
        /^\.SH / { in_c = ($2 == "CONFORMANCE") }
        /^\.SS / { sect = substr($0, 5) }
        in_c && sect == want && /^\.IP \\\(bu/ { n++ }
        in_c && sect == want { print }
        END { printf "%d\n", n > "/dev/stderr" }' "$man"
}
items "Every plugin" > /dev/null 2> "$tmp/n-every"
every=$(cat "$tmp/n-every")

for p in storage:storage_local accounting:accounting_sqlite accelerator:accelerator_sim; do
    kind=${p%%:*}; file=${p#*:}
    title=$(printf '%s' "$kind" | sed 's/^./\U&/')
    "$CHECKER" --large-size 1M "$PLUGINS/$file.so" > "$tmp/$kind.tap" 2>&1
    ok $? "surplus-plugin-check passes $file"
    checks=$(grep -Ec "^(not )?ok [0-9]+ - $kind: " "$tmp/$kind.tap")
    skips=$(grep -c '# SKIP' "$tmp/$kind.tap")
    items "$title" > "$tmp/$kind.man" 2> "$tmp/n-$kind"
    documented=$(cat "$tmp/n-$kind")
    [ "$skips" -eq 0 ] && [ "$checks" -gt 0 ] && [ "$checks" -eq "$documented" ] &&
        [ "$(grep -Ec '^(not )?ok ' "$tmp/$kind.tap")" -eq $((checks + every)) ]
    ok $? "surplus-plugin(7) lists each of the $checks $kind checks and the $every common ones (lists $documented and $every)"
    missing=
    for errno in $(grep -E "^(not )?ok [0-9]+ - $kind: " "$tmp/$kind.tap" |
                   grep -oE -- '-E[A-Z]+' | sort -u); do
        grep -qF -- "\\$errno" "$tmp/$kind.man" && grep -qF -- "$errno" "$inc/$kind.h" ||
            missing="$missing $errno"
    done
    [ -z "$missing" ]
    ok $? "every errno the $kind checks demand is in surplus-plugin(7) and surplus/$kind.h${missing:+ (missing:$missing)}"
done

grep -q 'record without a record id is refused with -EINVAL' "$tmp/accounting.tap" &&
    grep -q 'record_id is' "$inc/accounting.h" && grep -A2 'record_id is' "$inc/accounting.h" | grep -q -- '-EINVAL'
ok $? "a record without a record id: -EINVAL, checked and stated in surplus/accounting.h"
grep -q 'cpu_seconds (NaN) reads back as NaN' "$tmp/accounting.tap" &&
    grep -q 'UNKNOWN VALUES: .* is NaN' "$inc/accounting.h" &&
    grep -q 'value that is not known is NaN' "$man"
ok $? "unknown values are NaN: checked, and stated in surplus/accounting.h and surplus-plugin(7)"
grep -q 'state_dir>/KIND-NAME' "$inc/host.h" &&
    grep -q '<state_dir>/store and' "$inc/host.h" &&
    grep -q '^\.IR state_dir / KIND \\- NAME$' "$man"
ok $? "the default path a storage or accounting plugin is given is stated in surplus/host.h and surplus-plugin(7)"
done_testing
