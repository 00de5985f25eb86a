# surplus usage: the verb's test, and the helper that seeds a ledger for it
# (nothing else writes usage records without running a job).
check_PROGRAMS += tests/usage-seed
tests_usage_seed_SOURCES = tests/usage-seed.c
tests_usage_seed_CFLAGS = $(AM_CFLAGS) $(LIBCONFIG_CFLAGS)
tests_usage_seed_LDADD = core/lib/libsurplus.la

TESTS += tests/cli-usage.sh
EXTRA_DIST += tests/cli-usage.sh
