#!/bin/sh
# Hostile bundles, generated here (tests/bundles/mkhostile.py): each must be
# refused by `surplus bundle check` (exit 65, a message naming the entry or
# the manifest field) and by bundle_extract, which must leave no target
# behind and change nothing outside it: a sentinel tree around the target,
# which absolute names and symlinks aim at, is compared before and after.
# Extraction is run twice: with openat2, and with the component-by-component
# walk that kernels without openat2 get (extract-test-walk).  Then what must
# be accepted but not restored: setuid bits, owners; and tar metadata
# headers that must not count as unknown entry types.
. "$top_srcdir/tests/lib.sh"

command -v python3 > /dev/null || skip_all "python3 generates the bundles"
EXTRACT="$top_builddir/tests/bundles/extract-test"
EXTRACT_WALK="$top_builddir/tests/bundles/extract-test-walk"
cases="$tmp/cases"
world="$tmp/world"
sentinel="$world/sentinel"
dest="$world/jail/dest"
mkdir -p "$cases" "$sentinel/etc" "$world/jail" "$tmp/empty"
echo secret > "$sentinel/secret"
echo 'root:x:0:0:root:/root:/bin/sh' > "$sentinel/passwd"
echo keep > "$world/jail/keep"
cat > "$tmp/test.conf" <<CONF
state_dir = "$tmp/state";
limits = { max_bundle_bytes = "8M"; max_unpacked_bytes = "64M"; max_entries = 100; };
CONF

if ! python3 "$top_srcdir/tests/bundles/mkhostile.py" "$cases" "$sentinel"; then
    echo "Bail out! tests/bundles/mkhostile.py failed"
    exit 1
fi

# Everything around the target: names, types, modes, sizes, link targets
# and contents.
snapshot() {
    find "$world" -path "$dest" -prune -o -printf '%y %m %s %p -> %l\n' | LC_ALL=C sort
    find "$world" -path "$dest" -prune -o -type f -exec cksum {} + | LC_ALL=C sort
}
snapshot > "$tmp/before"

count=$(wc -l < "$cases/cases")
[ "$count" -ge 30 ]
ok $? "at least 30 hostile bundles are generated ($count)"

while IFS='	' read -r file expect desc; do
    (cd "$tmp/empty" && run "$SURPLUS" --config "$tmp/test.conf" bundle check "$cases/$file") \
        < /dev/null > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ $rc -eq 65 ] && [ ! -s "$tmp/out" ] &&
        grep -qF "surplus: $cases/$file: " "$tmp/err" &&
        grep -qF -- "$expect" "$tmp/err"
    ok $? "check refuses $desc ($file, exit $rc): $(head -c 300 "$tmp/err")"

    for how in openat2 walk; do
        prog=$EXTRACT; [ $how = walk ] && prog=$EXTRACT_WALK
        run "$prog" "$tmp/test.conf" "$cases/$file" "$dest" \
            < /dev/null > "$tmp/out" 2> "$tmp/xerr"
        rc=$?
        snapshot > "$tmp/after"
        [ $rc -eq 65 ] && grep -qF -- "$expect" "$tmp/xerr"
        ok $? "extraction ($how) refuses $desc with the same message (exit $rc)"
        [ ! -e "$dest" ] && [ ! -L "$dest" ]
        ok $? "extraction ($how) of $file leaves no target behind"
        cmp -s "$tmp/before" "$tmp/after"
        if ! ok $? "extraction ($how) of $file changes nothing outside the target"; then
            diff "$tmp/before" "$tmp/after" | sed 's/^/# /'
            exit 1
        fi
        rm -rf "$dest"
    done
done < "$cases/cases"

ls "$tmp/empty" | grep -q .
[ $? -ne 0 ]; ok $? "check wrote nothing in its working directory"

# --- accepted, but not restored -------------------------------------------------
run "$SURPLUS" --config "$tmp/test.conf" bundle check "$cases/setuid.tar" > "$tmp/out" 2>&1
ok $? "setuid, setgid, sticky and 0666 files pass check: $(cat "$tmp/out")"
run "$EXTRACT" "$tmp/test.conf" "$cases/setuid.tar" "$dest" > "$tmp/out" 2>&1
ok $? "and are extracted: $(cat "$tmp/out")"
modes=$(cd "$dest" && stat -c '%n %a' suid sticky plain tmp . | tr '\n' ' ')
[ "$modes" = "suid 755 sticky 755 plain 644 tmp 755 . 700 " ]
ok $? "without setuid/setgid/sticky bits or write for others: $modes"
rm -rf "$dest"

run "$EXTRACT" "$tmp/test.conf" "$cases/owners.tar" "$dest" > "$tmp/out" 2>&1
ok $? "files owned by root and by uid 4242 in the archive are extracted"
owners=$(stat -c '%u:%g' "$dest/rootfile" "$dest/other" | sort -u | tr '\n' ' ')
[ "$owners" = "$(id -u):$(id -g) " ]
ok $? "owned by the extracting user, not as archived: $owners"
rm -rf "$dest"
if [ "$(id -u)" = 0 ]; then
    run "$EXTRACT" "$tmp/test.conf" "$cases/owners.tar" "$dest" 4321 4322 > "$tmp/out" 2>&1
    owners=$(stat -c '%u:%g' "$dest" "$dest/rootfile" "$dest/other" "$dest/job.conf" | sort -u | tr '\n' ' ')
    [ "$owners" = "4321:4322 " ]
    ok $? "with a job uid:gid, everything is owned by it: $owners"
    rm -rf "$dest"
else
    skip "ownership given to a job uid" "needs root"
fi

run "$EXTRACT" "$tmp/test.conf" "$cases/sparse-ok.tar" "$dest" > "$tmp/out" 2>&1
ok $? "a sparse file within the limits is extracted: $(cat "$tmp/out")"
[ "$(stat -c %s "$dest/holes")" = 10485760 ] &&
    [ "$(od -An -c -j 5242880 -N 2 "$dest/holes" | tr -d ' ')" = ss ] &&
    [ "$(od -An -c -j 5242878 -N 2 "$dest/holes" | tr -d ' ')" = '\0\0' ]
ok $? "with its full size and its data at the right offsets"
[ "$(du -k "$dest/holes" | cut -f1)" -lt 1024 ]
ok $? "and its holes left as holes ($(du -k "$dest/holes" | cut -f1) KiB used)"
rm -rf "$dest"

for how in openat2 walk; do
    prog=$EXTRACT; [ $how = walk ] && prog=$EXTRACT_WALK
    run "$prog" "$tmp/test.conf" "$cases/links-ok.tar.xz" "$dest" > "$tmp/out" 2>&1
    ok $? "symlinks and hard links inside the bundle are extracted ($how): $(cat "$tmp/out")"
    [ "$(readlink "$dest/lib/a.so")" = a.so.1 ] &&
        [ "$(readlink "$dest/top")" = lib/../lib/a.so ] &&
        [ "$(stat -c %i "$dest/lib/copy")" = "$(stat -c %i "$dest/lib/a.so.1")" ] &&
        [ "$(cat "$dest/x/y/z")" = "implied dirs" ]
    ok $? "as links, with implied directories created ($how)"
    rm -rf "$dest"
done

# Symlinks that lead outside the bundle (absolute, "..", through other
# links, loops) are accepted and extracted as they are: never followed,
# so nothing outside the target changes.
run "$SURPLUS" --config "$tmp/test.conf" bundle check "$cases/links-outside-ok.tar" > "$tmp/out" 2>&1
ok $? "symlinks leading outside the bundle pass check: $(cat "$tmp/out")"
for how in openat2 walk; do
    prog=$EXTRACT; [ $how = walk ] && prog=$EXTRACT_WALK
    run "$prog" "$tmp/test.conf" "$cases/links-outside-ok.tar" "$dest" > "$tmp/out" 2>&1
    ok $? "and are extracted ($how): $(cat "$tmp/out")"
    links=$(cd "$dest" && for l in evil abs etc d/l m n d/x loop venv/bin/python3 venv/bin/python; do
        [ -L "$l" ] && printf '%s>%s ' "$l" "$(readlink "$l")"; done)
    [ "$links" = "evil>../../sentinel/secret abs>$sentinel etc>/etc d/l>.. m>d/l/.. n>d/x/.. d/x>.. loop>loop venv/bin/python3>/usr/bin/python3 venv/bin/python>python3 " ]
    ok $? "as links with their targets as archived ($how): $links"
    snapshot > "$tmp/after"
    cmp -s "$tmp/before" "$tmp/after"
    ok $? "and nothing outside the target changes ($how)"
    rm -rf "$dest"
done

# Long names and link targets come in pax 'x' headers (after a global 'g'
# header) or GNU 'L' and 'K' headers: metadata, not entries of an unknown
# type.
long_dir=$(printf '%120s' '' | tr ' ' d)
long_file="$long_dir/$(printf '%130s' '' | tr ' ' f)"
long_link=$(printf '%110s' '' | tr ' ' l)
for bundle in pax-long-ok.tar gnu-long-ok.tar.gz; do
    run "$SURPLUS" --config "$tmp/test.conf" bundle check "$cases/$bundle" > "$tmp/out" 2>&1
    ok $? "long names through ${bundle%%-*} headers pass check: $(cat "$tmp/out")"
    for how in openat2 walk; do
        prog=$EXTRACT; [ $how = walk ] && prog=$EXTRACT_WALK
        run "$prog" "$tmp/test.conf" "$cases/$bundle" "$dest" > "$tmp/out" 2>&1
        ok $? "and are extracted from $bundle ($how): $(cat "$tmp/out")"
        [ "$(cat "$dest/$long_file")" = "long name" ] &&
            [ "$(readlink "$dest/$long_link")" = "$long_file" ]
        ok $? "under their long names, with the long link target ($how)"
        rm -rf "$dest"
    done
done

mkdir "$dest"
echo mine > "$dest/file"
run "$EXTRACT" "$tmp/test.conf" "$cases/links-ok.tar.xz" "$dest" > "$tmp/out" 2> "$tmp/err"
rc=$?
[ $rc -ne 0 ] && grep -q "already exists" "$tmp/err" && [ "$(cat "$dest/file")" = mine ] &&
    [ "$(ls "$dest")" = file ]
ok $? "an existing target is refused and left alone (exit $rc): $(cat "$tmp/err")"
rm -rf "$dest"
done_testing
