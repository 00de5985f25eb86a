#!/bin/sh
# tests/install/dist.sh TARBALL [SRCDIR] - the release tarball holds every
# file of the source tree and nothing else but the generated build system
# (TAP).  Needs the source tree as a git checkout.
set -u

tarball=${1:?usage: dist.sh TARBALL [SRCDIR]}
srcdir=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
if ! command -v git >/dev/null || ! git -C "$srcdir" rev-parse --git-dir >/dev/null 2>&1; then
    echo "1..0 # SKIP $srcdir is not a git checkout"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/surplus-dist.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

n=0
failed=0
ok() {
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
    return "$1"
}

tar -tf "$tarball" >"$tmp/raw" 2>"$tmp/tar.err"
ok $? "$(basename "$tarball") can be listed" || sed 's/^/#   /' "$tmp/tar.err"
top=$(head -n 1 "$tmp/raw" | cut -d/ -f1)
test "$top" = "$(basename "$tarball" | sed 's/\.tar\..*$//')" &&
    ! grep -qv "^$top/" "$tmp/raw"
ok $? "everything in it is under $top/"
sed "s|^$top/||; /\/$/d; /^$/d" "$tmp/raw" | sort >"$tmp/dist"
# Tracked files that exist (the working tree may have removals not yet
# committed), as the tarball should have them.
(cd "$srcdir" && git ls-files --cached --others --exclude-standard |
    while IFS= read -r f; do [ -e "$f" ] && echo "$f"; done) | sort >"$tmp/tree"

# Only git's own files and the placeholders that keep two directories in
# git stay out of the tarball.
comm -13 "$tmp/dist" "$tmp/tree" |
    grep -vxE '\.gitignore|build-aux/\.keep|m4/\.keep' >"$tmp/missing"
test ! -s "$tmp/missing"
ok $? "every file of the source tree is in the tarball" ||
    sed 's/^/#   missing: /' "$tmp/missing"

# Beyond the source tree, only what autoreconf generates.
comm -23 "$tmp/dist" "$tmp/tree" |
    grep -vxE '(.*/)?Makefile\.in|aclocal\.m4|configure|config\.h\.in|build-aux/[^/]+|m4/(libtool|ltoptions|ltsugar|ltversion|lt~obsolete)\.m4' \
        >"$tmp/stray"
test ! -s "$tmp/stray"
ok $? "the tarball holds nothing else but the generated build system" ||
    sed 's/^/#   stray: /' "$tmp/stray"

echo "1..$n"
[ "$failed" -eq 0 ]
