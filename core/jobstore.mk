# The daemon's persistent job store (SQLite).
core_lib_libsurplus_la_SOURCES += core/lib/jobstore.c core/lib/jobstore.h
core_lib_libsurplus_la_CFLAGS += $(SQLITE_CFLAGS)
core_lib_libsurplus_la_LIBADD += $(SQLITE_LIBS)

# The test forks and kills writers, races threads and sets the schema
# version behind the store's back, hence SQLite and -pthread of its own.
UNIT_TESTS += tests/unit/test_jobstore
check_PROGRAMS += tests/unit/test_jobstore
tests_unit_test_jobstore_SOURCES = tests/unit/test_jobstore.c
tests_unit_test_jobstore_CFLAGS = $(UNIT_CFLAGS) $(SQLITE_CFLAGS) -pthread
tests_unit_test_jobstore_LDADD = $(UNIT_LDADD) $(SQLITE_LIBS)
tests_unit_test_jobstore_LDFLAGS = -pthread
