# The scheduler: which queued jobs start now, and on which devices.  Not
# named sched.h: core/lib is on the include path, and a sched.h there would
# stand in for the C library's <sched.h> (which <pthread.h> and <spawn.h>
# include).
core_lib_libsurplus_la_SOURCES += core/lib/scheduler.c core/lib/scheduler.h

UNIT_TESTS += tests/unit/test_sched
check_PROGRAMS += tests/unit/test_sched
tests_unit_test_sched_SOURCES = tests/unit/test_sched.c
tests_unit_test_sched_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sched_LDADD = $(UNIT_LDADD)
