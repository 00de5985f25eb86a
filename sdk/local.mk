# The plugin SDK: the only installed headers, a pkg-config file and the
# conformance checker.
surplusincludedir = $(includedir)/surplus
surplusinclude_HEADERS = \
	sdk/include/surplus/surplus.h \
	sdk/include/surplus/plugin.h \
	sdk/include/surplus/host.h \
	sdk/include/surplus/storage.h \
	sdk/include/surplus/accounting.h \
	sdk/include/surplus/accelerator.h

pkgconfig_DATA = sdk/surplus-plugin.pc
EXTRA_DIST += sdk/surplus-plugin.pc.in

bin_PROGRAMS += surplus-plugin-check
surplus_plugin_check_SOURCES = sdk/surplus-plugin-check.c
surplus_plugin_check_CFLAGS = $(AM_CFLAGS) $(LIBCONFIG_CFLAGS)
surplus_plugin_check_LDADD = core/lib/libsurplus.la
