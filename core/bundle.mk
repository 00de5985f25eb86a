# Bundles: check, extract, create.
core_lib_libsurplus_la_SOURCES += core/lib/bundle.c core/lib/bundle.h \
	core/lib/fsafe.c core/lib/fsafe.h
core_lib_libsurplus_la_CFLAGS += $(LIBARCHIVE_CFLAGS)
core_lib_libsurplus_la_LIBADD += $(LIBARCHIVE_LIBS)
surplus_SOURCES += core/cli/cmd_bundle.c

# extract-test: bundle_extract for the hostile suite, with no CLI verb;
# extract-test-walk: the same on the path taken by kernels without openat2.
check_PROGRAMS += tests/bundles/extract-test tests/bundles/extract-test-walk
tests_bundles_extract_test_SOURCES = tests/bundles/extract-test.c
tests_bundles_extract_test_CFLAGS = $(AM_CFLAGS) $(LIBCONFIG_CFLAGS)
tests_bundles_extract_test_LDADD = core/lib/libsurplus.la
tests_bundles_extract_test_walk_SOURCES = tests/bundles/extract-test.c core/lib/fsafe.c \
	core/lib/bundle.c
tests_bundles_extract_test_walk_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFSAFE_TEST_NO_OPENAT2
tests_bundles_extract_test_walk_CFLAGS = $(AM_CFLAGS) $(LIBCONFIG_CFLAGS) \
	$(LIBARCHIVE_CFLAGS)
tests_bundles_extract_test_walk_LDADD = core/lib/libsurplus.la \
	$(LIBARCHIVE_LIBS)

BUNDLE_TESTS = tests/bundle-hostile.sh tests/bundle-cli.sh tests/bundle-formats.sh
TESTS += $(BUNDLE_TESTS)
EXTRA_DIST += $(BUNDLE_TESTS) tests/bundles/mkhostile.py
