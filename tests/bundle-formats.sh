#!/bin/sh
# Tarballs as tenants' own tools write them, made here with those tools:
# git archive (a pax global header with the commit), GNU tar's long names
# (--format=gnu, ././@LongLink), sparse files (--sparse, GNU and pax),
# extended attributes in pax headers (--xattrs, SCHILY.xattr.*), bzip2, xz
# and zstd, and the AppleDouble ._NAME files macOS tar adds beside each
# file.  Each must pass `surplus bundle check` and run with `surplus run`
# (or, without root, extract), its files where the job expects them.
. "$top_srcdir/tests/lib.sh"

EXTRACT="$top_builddir/tests/bundles/extract-test"
uid_base=389000
cat > "$tmp/test.conf" <<CONF
state_dir = "$tmp/state";
sandbox = { uid_base = $uid_base; kill_grace = "1s"; };
CONF
S() { run "$SURPLUS" --config "$tmp/test.conf" "$@"; }
can_run=yes
[ "$(id -u)" -eq 0 ] && unshare -mpinu --fork true 2>/dev/null || can_run=

# The job lists the files it was given, with their sizes, as its output.
job="$tmp/job"
mkdir -p "$job/data"
cat > "$job/job.conf" <<'CONF'
api = 1;
name = "formats";
command = ["/bin/sh", "run.sh"];
outputs = ["files.txt"];
CONF
cat > "$job/run.sh" <<'SH'
find . -type f ! -name files.txt -exec stat -c '%n %s' {} + | LC_ALL=C sort > files.txt
SH
echo data > "$job/data/input.txt"
run_sh="./run.sh $(stat -c %s "$job/run.sh")"

# accept DESCRIPTION BUNDLE FILTER EXPECTED-LINE: checked, then run (or
# extracted), and the job saw EXPECTED-LINE ("./PATH SIZE").
accept() {
    S bundle check "$2" > "$tmp/out" 2>&1
    rc=$?
    grep -q "ok: .* ($3); job 'formats'" "$tmp/out"
    ok $((rc + $?)) "$1 passes check (exit $rc): $(cat "$tmp/out")"
    rm -rf "$tmp/o" "$tmp/x"
    if [ -n "$can_run" ]; then
        S run -o "$tmp/o" "$2" > /dev/null 2> "$tmp/err"
        rc=$?
        grep -qxF -- "$4" "$tmp/o/files.txt" 2>/dev/null &&
            grep -qxF "./data/input.txt 5" "$tmp/o/files.txt"
        ok $((rc + $?)) "and runs, the job finding '$4' (exit $rc): $(tail -n 2 "$tmp/err")"
    else
        run "$EXTRACT" "$tmp/test.conf" "$2" "$tmp/x" > "$tmp/out" 2>&1
        rc=$?
        f=${4% *}; size=${4##* }
        [ "$(stat -c %s "$tmp/x/$f" 2>/dev/null)" = "$size" ]
        ok $((rc + $?)) "and extracts, with $f of $size bytes (exit $rc; no root to run it): $(cat "$tmp/out")"
    fi
}

# --- git archive ------------------------------------------------------------------
if command -v git > /dev/null; then
    git init -q "$tmp/repo" && cp -R "$job/." "$tmp/repo/" &&
        git -C "$tmp/repo" add -A &&
        git -C "$tmp/repo" -c user.name=t -c user.email=t@example.org \
            commit -q -m job
    git -C "$tmp/repo" archive --format=tar.gz -o "$tmp/git.tar.gz" HEAD
    zcat "$tmp/git.tar.gz" | head -c 512 | grep -q pax_global_header
    ok $? "git archive writes a pax global header (the commit id)"
    accept "a git archive tarball" "$tmp/git.tar.gz" gzip "./data/input.txt 5"
    git -C "$tmp/repo" archive --format=tar HEAD | xz > "$tmp/git.tar.xz"
    accept "git archive piped to xz" "$tmp/git.tar.xz" xz "$run_sh"
else
    skip "git archive" "no git"; skip "git archive" "no git"; skip "git archive" "no git"
    skip "git archive | xz" "no git"; skip "git archive | xz" "no git"
fi

# --- GNU long names -------------------------------------------------------------
long="$job/$(printf 'd%.0s' $(seq 1 120))/$(printf 'f%.0s' $(seq 1 140)).txt"
mkdir -p "${long%/*}"
echo long > "$long"
ln -s "../data/input.txt" "${long%/*}/$(printf 'l%.0s' $(seq 1 110))"
tar -C "$job" --format=gnu -czf "$tmp/gnu-long.tar.gz" .
tar -tvzf "$tmp/gnu-long.tar.gz" > /dev/null && zcat "$tmp/gnu-long.tar.gz" | grep -qa '././@LongLink'
ok $? "GNU tar --format=gnu writes ././@LongLink entries for the long names"
accept "GNU long names and a long link" "$tmp/gnu-long.tar.gz" gzip "./${long#"$job/"} 5"
rm -rf "${long%/*}"

# --- sparse files ---------------------------------------------------------------
truncate -s 64M "$job/sparse.bin"
printf 'middle' | dd of="$job/sparse.bin" bs=1 seek=33554432 conv=notrunc 2> /dev/null
printf 'end' | dd of="$job/sparse.bin" bs=1 seek=67108861 conv=notrunc 2> /dev/null
for fmt in gnu pax; do
    tar -C "$job" --sparse --format=$fmt -cf - . | bzip2 > "$tmp/sparse-$fmt.tar.bz2"
    [ "$(stat -c %s "$tmp/sparse-$fmt.tar.bz2")" -lt 65536 ]
    ok $? "tar --sparse --format=$fmt stores 64 MiB as holes ($(stat -c %s "$tmp/sparse-$fmt.tar.bz2") bytes, bzip2)"
    accept "a sparse file (--format=$fmt, bzip2)" "$tmp/sparse-$fmt.tar.bz2" bzip2 "./sparse.bin 67108864"
done
rm -f "$job/sparse.bin"

# --- extended attributes in pax headers -----------------------------------------
if python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.origin", b"laptop")' \
        "$job/data/input.txt" 2> /dev/null; then
    tar -C "$job" --xattrs --format=pax -cf - . | zstd -q > "$tmp/xattrs.tar.zst"
    zstd -dc "$tmp/xattrs.tar.zst" | grep -qa 'SCHILY.xattr.user.origin=laptop'
    ok $? "tar --xattrs writes the attribute in a pax header"
    accept "extended attributes in pax headers (zstd)" "$tmp/xattrs.tar.zst" zstd "$run_sh"
    python3 -c 'import os, sys; os.removexattr(sys.argv[1], "user.origin")' "$job/data/input.txt"
else
    for i in 1 2 3; do skip "xattrs in pax headers" "this file system has no user xattrs"; done
fi

# --- AppleDouble ._NAME files (macOS tar) ---------------------------------------
# What macOS bsdtar writes before each file that has extended attributes:
# ./._NAME, an AppleDouble header with a Finder-info and an attributes entry.
python3 - "$job" <<'PY'
import os, struct, sys
root = sys.argv[1]
for name in ("job.conf", "run.sh", "data/input.txt"):
    d, base = os.path.split(name)
    finder = bytes(32)
    attrs = b"ATTR" + bytes(30) + b"com.apple.quarantine\0"
    head = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 2)
    off = len(head) + 2 * 12
    entries = struct.pack(">III", 9, off, len(finder)) + \
        struct.pack(">III", 2, off + len(finder), len(attrs))
    with open(os.path.join(root, d, "._" + base), "wb") as f:
        f.write(head + entries + finder + attrs)
PY
(cd "$job" && tar --format=ustar -cf - ./._job.conf ./job.conf ./._run.sh ./run.sh \
    ./data/._input.txt ./data/input.txt) | xz > "$tmp/macos.tar.xz"
xz -dc "$tmp/macos.tar.xz" | tar -tf - | grep -qx './._job.conf'
ok $? "the tarball holds ./._NAME beside each file, as macOS tar writes it"
accept "AppleDouble ._NAME files" "$tmp/macos.tar.xz" xz \
    "./data/._input.txt $(stat -c %s "$job/data/._input.txt")"
done_testing
