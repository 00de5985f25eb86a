#!/bin/sh
# `surplus bundle create` and `surplus bundle check` as a tenant uses them:
# the summary line and --json, reproducible output, tarballs made by GNU tar
# in every supported compression, what create refuses, and exit statuses.
. "$top_srcdir/tests/lib.sh"

EXTRACT="$top_builddir/tests/bundles/extract-test"
cat > "$tmp/test.conf" <<CONF
state_dir = "$tmp/state";
limits = { max_bundle_bytes = "8M"; max_unpacked_bytes = "64M"; max_entries = 100; };
CONF
S() { run "$SURPLUS" --config "$tmp/test.conf" "$@"; }

job="$tmp/hello"
mkdir -p "$job/sub/deeper" "$job/empty"
cat > "$job/job.conf" <<'CONF'
api = 1;
name = "hello";
command = ["./run.sh"];
CONF
printf '#!/bin/sh\necho hello\n' > "$job/run.sh"
chmod 4775 "$job/run.sh"
head -c 12000 /dev/zero > "$job/sub/zeros"
echo data > "$job/sub/deeper/data.txt"
chmod 0666 "$job/sub/deeper/data.txt"
echo utf8 > "$job/données.txt"
long=$(printf 'n%.0s' $(seq 1 150))
echo long > "$job/sub/$long"
ln -s sub/deeper/data.txt "$job/link"

# --- create ----------------------------------------------------------------------
mkdir "$tmp/cwd"
(cd "$tmp/cwd" && S bundle create "$job") > "$tmp/out" 2> "$tmp/err"
ok $? "bundle create DIR exits 0: $(cat "$tmp/err")"
sed 's/^/# /' "$tmp/out"
[ "$(sed -n 1p "$tmp/out")" = hello.tar.zst ] && [ -f "$tmp/cwd/hello.tar.zst" ]
ok $? "the default output is <name>.tar.zst in the working directory"
[ "$(ls "$tmp/cwd")" = hello.tar.zst ]
ok $? "nothing else is left there (no .tmp file)"
sed -n 2p "$tmp/out" | grep -Eq "^hello\.tar\.zst: ok: 10 entries, [0-9.]+ KiB unpacked, ratio [0-9]+\.[0-9]:1 \(zstd\); job 'hello': 1 command arg\(s\), gpus 0, cpus 1, memory 1\.0 GiB, walltime 1h$"
ok $? "and the summary line is printed"

S bundle create "$job" -o "$tmp/a.tar.zst" > /dev/null 2>&1
ok $? "bundle create -o OUT exits 0"
touch -d '2001-02-03 04:05:06' "$job/run.sh" "$job/sub"
chmod 0700 "$job/sub/deeper"
if [ "$(id -u)" = 0 ]; then chown 1234:1234 "$job/sub/zeros"; fi
(umask 077 && S bundle create "$job" -o "$tmp/b.tar.zst") > /dev/null 2>&1
cmp "$tmp/a.tar.zst" "$tmp/b.tar.zst"
ok $? "two creates of the same tree are byte-identical, whatever the times, owners, umask"
cmp "$tmp/a.tar.zst" "$tmp/cwd/hello.tar.zst"
ok $? "and identical to the default output"

tar --zstd -tvf "$tmp/a.tar.zst" > "$tmp/list" 2> "$tmp/err" ||
    zstd -dc "$tmp/a.tar.zst" | tar -tvf - > "$tmp/list"
sed 's/^/# /' "$tmp/list"
tar --zstd -tf "$tmp/a.tar.zst" > "$tmp/names" 2> /dev/null ||
    zstd -dc "$tmp/a.tar.zst" | tar -tf - > "$tmp/names"
sed 's,/$,,' "$tmp/names" > "$tmp/names.plain"
LC_ALL=C sort "$tmp/names.plain" | cmp -s - "$tmp/names.plain"
ok $? "entries are sorted by name, bytewise"
! grep -v ' 0/0 ' "$tmp/list" | grep -q . &&
    [ "$(grep -c ' 1970-01-01 00:00 ' "$tmp/list")" = "$(wc -l < "$tmp/list")" ]
ok $? "every entry is owned by 0/0 with no names and dated 1970-01-01"
grep -q '^-rwxr-xr-x .* run.sh$' "$tmp/list" &&
    grep -q '^-rw-r--r-- .* sub/deeper/data.txt$' "$tmp/list" &&
    grep -q '^drwxr-xr-x .* sub/deeper/$' "$tmp/list" &&
    grep -q '^lrwxrwxrwx .* link -> sub/deeper/data.txt$' "$tmp/list"
ok $? "modes are normalized (0755 executables and dirs, 0644 files) and symlinks kept"

run "$EXTRACT" "$tmp/test.conf" "$tmp/a.tar.zst" "$tmp/x" > "$tmp/out" 2>&1
ok $? "the bundle extracts: $(cat "$tmp/out")"
diff -r --no-dereference "$job" "$tmp/x" > "$tmp/diff" 2>&1
ok $? "into the same tree"; sed 's/^/# /' "$tmp/diff"

# --- check ------------------------------------------------------------------
S --json bundle check "$tmp/a.tar.zst" > "$tmp/json" 2>&1
ok $? "bundle check --json exits 0"
grep -q '"filter": "zstd"' "$tmp/json" && grep -q '"entries": 10' "$tmp/json" &&
    grep -q '"name": "hello"' "$tmp/json" && grep -q '"unpacked_bytes": ' "$tmp/json" &&
    grep -q '"ratio": ' "$tmp/json"
ok $? "and prints the summary as JSON"

for z in gzip:z:gz xz:J:xz bzip2:j:bz2 zstd:-zstd:zst none::; do
    name=${z%%:*}; rest=${z#*:}; flag=${rest%%:*}; ext=${rest#*:}
    out="$tmp/gnu.tar${ext:+.$ext}"
    if [ -n "$flag" ] && ! command -v "$name" > /dev/null; then
        skip "a GNU tar bundle with $name" "no $name program"; continue
    fi
    tar -C "$job" -c${flag:+ -$flag} -f "$out" . 2> /dev/null
    S bundle check "$out" > "$tmp/out" 2>&1
    rc=$?
    grep -q "ok: 11 entries, .* ($name); job 'hello'" "$tmp/out"
    ok $((rc + $?)) "a bundle made by GNU tar -C DIR . ($name) passes: $(cat "$tmp/out")"
done

S bundle check "$tmp/nonexistent.tar" > /dev/null 2> "$tmp/err"
[ $? -eq 65 ] && grep -q "surplus: $tmp/nonexistent.tar: No such file or directory" "$tmp/err"
ok $? "a missing bundle exits 65 with the reason: $(cat "$tmp/err")"
S bundle check "$tmp" > /dev/null 2> "$tmp/err"
[ $? -eq 65 ]; ok $? "a directory given as a bundle exits 65: $(cat "$tmp/err")"

printf 'state_dir = "%s";\nlimits = { max_bundle_bytes = "1K"; };\n' "$tmp/state" > "$tmp/small.conf"
run "$SURPLUS" --config "$tmp/small.conf" bundle check "$tmp/gnu.tar" > /dev/null 2> "$tmp/err"
[ $? -eq 65 ] && grep -q "max_bundle_bytes" "$tmp/err"
ok $? "a bundle over max_bundle_bytes exits 65: $(cat "$tmp/err")"

# --- what create refuses ---------------------------------------------------------
refuse() { # refuse DESCRIPTION EXPECTED-TEXT DIR
    S bundle create "$3" -o "$tmp/r.tar.zst" > /dev/null 2> "$tmp/err"
    rc=$?
    [ $rc -eq 65 ] && grep -qF -- "$2" "$tmp/err" && [ ! -e "$tmp/r.tar.zst" ] &&
        [ ! -e "$tmp/r.tar.zst.tmp" ]
    ok $? "create refuses $1 (exit $rc): $(cat "$tmp/err")"
}
mkbad() { rm -rf "$tmp/bad"; cp -a "$job" "$tmp/bad"; }

mkbad; printf 'api = 1;\nname = "x";\n' > "$tmp/bad/job.conf"
refuse "a job.conf without a command" "job.conf:" "$tmp/bad"
mkbad; rm "$tmp/bad/job.conf"
refuse "a directory without job.conf" "job.conf" "$tmp/bad"
mkbad; mv "$tmp/bad/job.conf" "$tmp/bad/real.conf"; ln -s real.conf "$tmp/bad/job.conf"
refuse "job.conf as a symlink" "job.conf" "$tmp/bad"
mkbad; mkfifo "$tmp/bad/sub/pipe"
refuse "a fifo" "entry 'sub/pipe'" "$tmp/bad"
mkbad; for i in $(seq 1 100); do : > "$tmp/bad/empty/f$i"; done
refuse "more than max_entries entries" "max_entries" "$tmp/bad"

# Symlinks may lead anywhere: they are packed as links, never followed.
mkbad; ln -s ../../etc/passwd "$tmp/bad/sub/evil"; ln -s /etc "$tmp/bad/etc"
S bundle create "$tmp/bad" -o "$tmp/links.tar.zst" > /dev/null 2> "$tmp/err"
ok $? "create packs symlinks leading outside, relative and absolute: $(cat "$tmp/err")"
zstd -dc "$tmp/links.tar.zst" | tar -tvf - > "$tmp/list" 2> /dev/null
grep -q '^lrwxrwxrwx .* sub/evil -> \.\./\.\./etc/passwd$' "$tmp/list" &&
    grep -q '^lrwxrwxrwx .* etc -> /etc$' "$tmp/list" && ! grep -q ' etc/' "$tmp/list"
ok $? "as links with their targets, nothing of what they lead to"

# The commonest packing mistake: the directory instead of its contents.
for form in myjob/ ./myjob; do
    rm -rf "$tmp/pack" && mkdir -p "$tmp/pack" && cp -a "$job" "$tmp/pack/myjob"
    (cd "$tmp/pack" && tar czf job.tgz "$form")
    S bundle check "$tmp/pack/job.tgz" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ $rc -eq 65 ] && [ ! -s "$tmp/out" ] &&
        grep -qF "surplus: $tmp/pack/job.tgz: no job.conf at the root of the bundle: found myjob/job.conf: pack the directory's contents, e.g. \`surplus bundle create myjob\`" "$tmp/err"
    ok $? "tar czf job.tgz $form: check says where job.conf is and how to pack it (exit $rc): $(cat "$tmp/err")"
done

# The same mistake with create: the parent of the job's directory.
S bundle create "$tmp/pack" -o "$tmp/parent.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 65 ] && [ ! -e "$tmp/parent.tar.zst" ] &&
    grep -qF "surplus: $tmp/pack: no job.conf in the directory: found myjob/job.conf: create the bundle from that directory" "$tmp/err"
ok $? "bundle create on the job directory's parent says where job.conf is (exit $rc): $(cat "$tmp/err")"

S bundle create "$job" -o "$tmp/missing-dir/out.tar.zst" > /dev/null 2> "$tmp/err"
[ $? -eq 70 ]; ok $? "an output that cannot be written exits 70: $(cat "$tmp/err")"
S bundle create "$tmp/no-such-dir" > /dev/null 2> "$tmp/err"
[ $? -eq 65 ]; ok $? "a missing directory exits 65: $(cat "$tmp/err")"

# --- the temporary file of create, and what is not a regular file ----------
# A FILE.tmp that is someone else's (here a symlink to a file of theirs) is
# neither written through nor reused.
echo theirs > "$tmp/theirs"
ln -s "$tmp/theirs" "$tmp/taken.tar.zst.tmp"
S bundle create "$job" -o "$tmp/taken.tar.zst" > /dev/null 2> "$tmp/err"
ok $? "create -o FILE succeeds when FILE.tmp is someone else's: $(cat "$tmp/err")"
[ "$(cat "$tmp/theirs")" = theirs ] && [ -L "$tmp/taken.tar.zst.tmp" ]
ok $? "... and leaves FILE.tmp and what it points to alone"
S bundle check "$tmp/taken.tar.zst" > /dev/null 2>&1 &&
    [ -z "$(ls "$tmp" | grep 'taken\.tar\.zst\.tmp-')" ]
ok $? "... the bundle is whole and no temporary file is left"
# A FILE.tmp that is a file of someone else's is not taken over either:
# written into and renamed, it would have made FILE theirs to change.
echo theirs > "$tmp/owned.tar.zst.tmp"
chown 65534 "$tmp/owned.tar.zst.tmp" 2>/dev/null
S bundle create "$job" -o "$tmp/owned.tar.zst" > /dev/null 2>&1 &&
    [ "$(cat "$tmp/owned.tar.zst.tmp")" = theirs ] &&
    [ "$(stat -c %u "$tmp/owned.tar.zst")" = "$(id -u)" ]
ok $? "create -o FILE leaves a file FILE.tmp alone, and FILE is the caller's"
S bundle create "$job" -o "$tmp/no-such-dir/x.tar.zst" > /dev/null 2>&1
[ -z "$(ls "$tmp" | grep '\.tmp-')" ]
ok $? "a failed create leaves no temporary file"

mkfifo "$tmp/fifo.tar.zst"
timeout 20 "$SURPLUS" --config "$tmp/test.conf" bundle check "$tmp/fifo.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 65 ] && grep -q "^surplus: $tmp/fifo.tar.zst: is a fifo, not a bundle" "$tmp/err"
ok $? "bundle check of a fifo does not wait for a writer: exits 65 naming it (got $rc): $(cat "$tmp/err")"
timeout 20 "$SURPLUS" --config "$tmp/test.conf" --socket "$tmp/no.sock" submit "$tmp/fifo.tar.zst" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 65 ] && grep -q "^surplus: $tmp/fifo.tar.zst: is a fifo, not a bundle" "$tmp/err"
ok $? "nor does submit: exits 65 naming it (got $rc): $(cat "$tmp/err")"
if [ "$(id -u)" -eq 0 ]; then
    timeout 20 "$SURPLUS" --config "$tmp/test.conf" run -o "$tmp/o-fifo" "$tmp/fifo.tar.zst" > /dev/null 2> "$tmp/err"
    rc=$?
    [ $rc -eq 65 ] && grep -q "fifo.tar.zst: is a fifo, not a bundle" "$tmp/err"
    ok $? "nor does run: exits 65 naming it (got $rc): $(cat "$tmp/err")"
else
    skip "run of a fifo exits 65" "run needs root"
fi

# --- usage ------------------------------------------------------------------
S bundle > /dev/null 2>&1; [ $? -eq 64 ]; ok $? "bundle without a command exits 64"
S bundle check > /dev/null 2>&1; [ $? -eq 64 ]; ok $? "bundle check without a bundle exits 64"
S bundle frob x > /dev/null 2>&1; [ $? -eq 64 ]; ok $? "an unknown bundle command exits 64"
S bundle create > /dev/null 2>&1; [ $? -eq 64 ]; ok $? "bundle create without a directory exits 64"
run "$SURPLUS" --config "$tmp/nonexistent.conf" bundle check "$tmp/a.tar.zst" > /dev/null 2>&1
[ $? -eq 78 ]; ok $? "a missing configuration exits 78"
run "$SURPLUS" --help | grep -q '^  bundle '
ok $? "surplus --help lists the bundle verb"
done_testing
