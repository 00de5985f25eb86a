# job.conf: the manifest parser.
core_lib_libsurplus_la_SOURCES += core/lib/manifest.c core/lib/manifest.h

UNIT_TESTS += tests/unit/test_manifest
check_PROGRAMS += tests/unit/test_manifest
tests_unit_test_manifest_SOURCES = tests/unit/test_manifest.c
tests_unit_test_manifest_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_manifest_LDADD = $(UNIT_LDADD)
