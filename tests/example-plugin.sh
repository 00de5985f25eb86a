#!/bin/sh
# A vendor's path: install surplus, build examples/plugins against the
# installed SDK with pkg-config only, and run the installed checker on it.
. "$top_srcdir/tests/lib.sh"
command -v pkg-config >/dev/null 2>&1 || skip_all "pkg-config not installed"
dest="$tmp/dest"
${MAKE:-make} -s -C "$top_builddir" install DESTDIR="$dest" > "$tmp/install.log" 2>&1
status=$?
ok $status "make install DESTDIR=... succeeds"
[ $status -eq 0 ] || { sed 's/^/# /' "$tmp/install.log"; done_testing; exit 1; }

PKG_CONFIG_PATH="$dest$pkgconfigdir"; export PKG_CONFIG_PATH
PKG_CONFIG_SYSROOT_DIR="$dest"; export PKG_CONFIG_SYSROOT_DIR
pkg-config --exists surplus-plugin
ok $? "pkg-config finds the installed surplus-plugin.pc"
[ "$(pkg-config --variable=abi surplus-plugin)" = "1.1" ]
ok $? "surplus-plugin.pc states the plugin ABI"

cp -R "$dest$docdir/examples/plugins" "$tmp/example"
ok $? "the example plugin's source is installed with the docs"
# Only the installed SDK: no -I into the source tree.
${MAKE:-make} -C "$tmp/example" CC="${CC:-cc}" CFLAGS="-O2 -Wall -Wextra -Werror" > "$tmp/build.log" 2>&1
status=$?
ok $status "the example plugin builds with its own Makefile and pkg-config"
[ $status -eq 0 ] || sed 's/^/# /' "$tmp/build.log"
pkg-config --cflags surplus-plugin | grep -q -- "-I$dest"
ok $? "the compiler flags pkg-config gives point into the installed SDK"
grep -q -- "-I$top_srcdir" "$tmp/build.log"; [ $? -ne 0 ]
ok $? "nothing in the build points into the source tree"

"$dest$bindir/surplus-plugin-check" "$tmp/example/accounting_spool.so" > "$tmp/check" 2>&1
status=$?
sed 's/^/# /' "$tmp/check"
ok $status "the installed surplus-plugin-check passes the example plugin"
done_testing
