# Tests: automake's parallel harness.  C unit tests and shell tests speak
# TAP; GPU tests (*.gpu) use the plain driver so that exit 77 is a skip.
TEST_EXTENSIONS = .sh .gpu
LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
SH_LOG_DRIVER = $(LOG_DRIVER)
GPU_LOG_DRIVER = $(SHELL) $(top_srcdir)/build-aux/test-driver
LOG_COMPILER = $(top_srcdir)/tests/run-test
SH_LOG_COMPILER = $(SHELL)
GPU_LOG_COMPILER = $(SHELL)

# What the tests need to find the build tree, uninstalled.
AM_TESTS_ENVIRONMENT = \
	top_srcdir='$(abs_top_srcdir)'; export top_srcdir; \
	top_builddir='$(abs_top_builddir)'; export top_builddir; \
	SURPLUS_PLUGIN_PATH='$(abs_top_builddir)/plugins/.libs'; \
	export SURPLUS_PLUGIN_PATH; \
	SURPLUS_SANDBOX_INIT='$(abs_top_builddir)/surplus-sandbox-init'; \
	export SURPLUS_SANDBOX_INIT; \
	SURPLUS_FIXTURE_DIR='$(abs_top_builddir)/tests/plugins/.libs'; \
	export SURPLUS_FIXTURE_DIR; \
	SURPLUS_HAVE_CUDA='$(HAVE_CUDA_VALUE)'; export SURPLUS_HAVE_CUDA; \
	SURPLUS_NVCC='$(NVCC)'; export SURPLUS_NVCC; \
	CC='$(CC)'; export CC; CXX='$(CXX)'; export CXX; \
	MAKE='$(MAKE)'; export MAKE; \
	SURPLUS_VALGRIND="$(SURPLUS_VALGRIND)"; export SURPLUS_VALGRIND; \
	SURPLUS_CHECK_LARGE_SIZE="$(SURPLUS_CHECK_LARGE_SIZE)"; export SURPLUS_CHECK_LARGE_SIZE; \
	SURPLUS_NO_DLCLOSE="$(SURPLUS_NO_DLCLOSE)"; export SURPLUS_NO_DLCLOSE; \
	pkgconfigdir='$(pkgconfigdir)'; export pkgconfigdir; \
	docdir='$(docdir)'; export docdir; bindir='$(bindir)'; export bindir; \
	TMPDIR="$${TMPDIR:-/tmp}"; export TMPDIR;

EXTRA_DIST += tests/run-test tests/tap.h tests/lib.sh tests/api-flood.py \
	tests/lose-answer.py

# --- unit tests (C) ----------------------------------------------------------
UNIT_LDADD = core/lib/libsurplus.la
UNIT_CFLAGS = $(AM_CFLAGS) $(LIBCONFIG_CFLAGS) -I$(top_srcdir)/tests

UNIT_TESTS += tests/unit/test_units tests/unit/test_config \
	tests/unit/test_loader tests/unit/test_recovery tests/unit/test_fsafe \
	tests/unit/test_sha256 tests/unit/test_cgroup tests/unit/test_calls
check_PROGRAMS += $(UNIT_TESTS)
tests_unit_test_units_SOURCES = tests/unit/test_units.c
tests_unit_test_units_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_units_LDADD = $(UNIT_LDADD)
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_config_LDADD = $(UNIT_LDADD)
tests_unit_test_loader_SOURCES = tests/unit/test_loader.c
tests_unit_test_loader_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_loader_LDADD = $(UNIT_LDADD)
tests_unit_test_recovery_SOURCES = tests/unit/test_recovery.c
tests_unit_test_recovery_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_recovery_LDADD = $(UNIT_LDADD)
tests_unit_test_fsafe_SOURCES = tests/unit/test_fsafe.c
tests_unit_test_fsafe_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_fsafe_LDADD = $(UNIT_LDADD)
tests_unit_test_cgroup_SOURCES = tests/unit/test_cgroup.c
tests_unit_test_cgroup_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_cgroup_LDADD = $(UNIT_LDADD)
tests_unit_test_calls_SOURCES = tests/unit/test_calls.c
tests_unit_test_calls_CFLAGS = $(UNIT_CFLAGS) -pthread
tests_unit_test_calls_LDADD = $(UNIT_LDADD)
tests_unit_test_sha256_SOURCES = tests/unit/test_sha256.c
tests_unit_test_sha256_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sha256_LDADD = $(UNIT_LDADD)
TESTS += $(UNIT_TESTS)

# --- fixture plugins for the loader tests -------------------------------------
# check_LTLIBRARIES are not installed; -rpath makes libtool build them
# shared anyway.
FIXTURE_LDFLAGS = $(PLUGIN_LDFLAGS) -rpath /nowhere
FIXTURE_SRC = tests/plugins/fixture.c
check_LTLIBRARIES += \
	tests/plugins/storage_good.la \
	tests/plugins/storage_wrongmajor.la \
	tests/plugins/storage_newminor.la \
	tests/plugins/accounting_wrongkind.la \
	tests/plugins/storage_misnamed.la \
	tests/plugins/storage_nosymbol.la \
	tests/plugins/storage_initfail.la \
	tests/plugins/storage_badsetting.la \
	tests/plugins/storage_shortdesc.la \
	tests/plugins/storage_listfail.la \
	tests/plugins/storage_threadsafe.la \
	tests/plugins/storage_oldabi.la \
	tests/plugins/storage_badflags.la \
	tests/plugins/storage_shortflags.la
tests_plugins_storage_good_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_good_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_GOOD
tests_plugins_storage_good_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_good_la_LDFLAGS = $(FIXTURE_LDFLAGS)
tests_plugins_storage_wrongmajor_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_wrongmajor_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_WRONGMAJOR
tests_plugins_storage_wrongmajor_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_wrongmajor_la_LDFLAGS = $(FIXTURE_LDFLAGS)
tests_plugins_storage_newminor_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_newminor_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_NEWMINOR
tests_plugins_storage_newminor_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_newminor_la_LDFLAGS = $(FIXTURE_LDFLAGS)
tests_plugins_accounting_wrongkind_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_accounting_wrongkind_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_WRONGKIND
tests_plugins_accounting_wrongkind_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_accounting_wrongkind_la_LDFLAGS = $(FIXTURE_LDFLAGS)
tests_plugins_storage_misnamed_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_misnamed_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_MISNAMED
tests_plugins_storage_misnamed_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_misnamed_la_LDFLAGS = $(FIXTURE_LDFLAGS)
tests_plugins_storage_nosymbol_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_nosymbol_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_NOSYMBOL
tests_plugins_storage_nosymbol_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_nosymbol_la_LDFLAGS = $(PLUGIN_LDFLAGS:-export-symbols-regex%=) -rpath /nowhere
tests_plugins_storage_initfail_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_initfail_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_INITFAIL
tests_plugins_storage_initfail_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_initfail_la_LDFLAGS = $(FIXTURE_LDFLAGS)
tests_plugins_storage_badsetting_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_badsetting_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_BADSETTING
tests_plugins_storage_badsetting_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_badsetting_la_LDFLAGS = $(FIXTURE_LDFLAGS)
tests_plugins_storage_shortdesc_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_shortdesc_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_SHORTDESC
tests_plugins_storage_shortdesc_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_shortdesc_la_LDFLAGS = $(FIXTURE_LDFLAGS)
tests_plugins_storage_listfail_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_listfail_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_LISTFAIL
tests_plugins_storage_listfail_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_listfail_la_LDFLAGS = $(FIXTURE_LDFLAGS)
tests_plugins_storage_threadsafe_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_threadsafe_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_THREADSAFE
tests_plugins_storage_threadsafe_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_threadsafe_la_LDFLAGS = $(FIXTURE_LDFLAGS)
tests_plugins_storage_oldabi_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_oldabi_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_OLDABI
tests_plugins_storage_oldabi_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_oldabi_la_LDFLAGS = $(FIXTURE_LDFLAGS)
tests_plugins_storage_badflags_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_badflags_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_BADFLAGS
tests_plugins_storage_badflags_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_badflags_la_LDFLAGS = $(FIXTURE_LDFLAGS)
tests_plugins_storage_shortflags_la_SOURCES = $(FIXTURE_SRC)
tests_plugins_storage_shortflags_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_SHORTFLAGS
tests_plugins_storage_shortflags_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_shortflags_la_LDFLAGS = $(FIXTURE_LDFLAGS)

# --- shell tests ----------------------------------------------------------------
SH_TESTS = \
	tests/headers.sh \
	tests/conform-storage-local.sh \
	tests/conform-accounting-sqlite.sh \
	tests/conform-accelerator-sim.sh \
	tests/conform-accelerator-cuda.sh \
	tests/plugin-symbols.sh \
	tests/cli-plugins.sh \
	tests/check-config.sh \
	tests/cli-options.sh \
	tests/cli-jobs.sh \
	tests/plugin-rules.sh \
	tests/example-plugin.sh
TESTS += $(SH_TESTS)
EXTRA_DIST += $(SH_TESTS)

# The cuda plugin's check that no process holds a device before its scrub
# needs neither a GPU nor CUDA: it runs everywhere.
UNIT_TESTS += tests/unit/test_cuda_holders
check_PROGRAMS += tests/unit/test_cuda_holders
tests_unit_test_cuda_holders_SOURCES = tests/unit/test_cuda_holders.c \
	plugins/accelerator/cuda/holders.c plugins/accelerator/cuda/holders.h
tests_unit_test_cuda_holders_CPPFLAGS = $(AM_CPPFLAGS) \
	-I$(top_srcdir)/plugins/accelerator/cuda
tests_unit_test_cuda_holders_CFLAGS = $(UNIT_CFLAGS)

# The scrub's logic against a simulated CUDA runtime (it needs the CUDA
# headers, not a GPU, and links no CUDA library).
if HAVE_CUDA
UNIT_TESTS += tests/unit/test_cuda_scrub
check_PROGRAMS += tests/unit/test_cuda_scrub
endif
tests_unit_test_cuda_scrub_SOURCES = tests/unit/test_cuda_scrub.c \
	plugins/accelerator/cuda/scrub.c plugins/accelerator/cuda/scrub.h
tests_unit_test_cuda_scrub_CPPFLAGS = $(AM_CPPFLAGS) $(CUDA_CPPFLAGS) \
	-DSURPLUS_SCRUB_KERNELS=1 -I$(top_srcdir)/plugins/accelerator/cuda
tests_unit_test_cuda_scrub_CFLAGS = $(UNIT_CFLAGS)

# GPU tests: real jobs on real devices through `surplus run`; each exits 77
# (skipped) without a GPU, root, or nvcc for its test programs.
GPU_TESTS = tests/gpu/discover.gpu tests/gpu/lease-env.gpu \
	tests/gpu/isolation.gpu tests/gpu/scrub.gpu tests/gpu/saxpy.gpu
TESTS += $(GPU_TESTS)
EXTRA_DIST += $(GPU_TESTS) tests/gpu/lib.sh tests/gpu/probe.cu

# make check-valgrind: the same suite, every C program under valgrind.
VALGRIND_FLAGS = --quiet --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
	--track-fds=no --suppressions=$(abs_top_srcdir)/tests/valgrind.supp
EXTRA_DIST += tests/valgrind.supp
check-valgrind:
	$(MAKE) $(AM_MAKEFLAGS) check \
		SURPLUS_VALGRIND="$(VALGRIND_PROG) $(VALGRIND_FLAGS)" \
		SURPLUS_CHECK_LARGE_SIZE=64M SURPLUS_NO_DLCLOSE=1
.PHONY: check-valgrind

# A plugin the checker must fail: tests/checker-catches.sh.
check_LTLIBRARIES += tests/plugins/storage_naive.la
tests_plugins_storage_naive_la_SOURCES = tests/plugins/naive.c
tests_plugins_storage_naive_la_CFLAGS = $(PLUGIN_CFLAGS)
tests_plugins_storage_naive_la_LDFLAGS = $(FIXTURE_LDFLAGS)
TESTS += tests/checker-catches.sh
EXTRA_DIST += tests/checker-catches.sh

# Benchmarks (not part of make check): `make bench`.
check_PROGRAMS += tests/bench/unpack
tests_bench_unpack_SOURCES = tests/bench/unpack.c
tests_bench_unpack_CFLAGS = $(UNIT_CFLAGS)
tests_bench_unpack_LDADD = $(UNIT_LDADD)
EXTRA_DIST += tests/bench/unpack.sh tests/bench/followers.sh \
	tests/fuzz/run.sh tests/fuzz/seed-bundles.sh tests/fuzz/lsan.supp \
	tests/fuzz/fuzz_manifest.c tests/fuzz/fuzz_bundle.c \
	tests/fuzz/corpus/manifest/example.conf tests/fuzz/corpus/manifest/minimal.conf \
	tests/fuzz/corpus/manifest/include.conf tests/fuzz/corpus/manifest/clock.conf \
	tests/fuzz/corpus/manifest/requeue.conf
bench: tests/bench/unpack$(EXEEXT) tests/bench/launch$(EXEEXT) surplus$(EXEEXT)
	$(SHELL) $(srcdir)/tests/bench/unpack.sh $(builddir)
	$(SHELL) $(srcdir)/tests/bench/launch.sh $(builddir)
.PHONY: bench

check_PROGRAMS += tests/bench/launch
tests_bench_launch_SOURCES = tests/bench/launch.c
tests_bench_launch_CFLAGS = $(UNIT_CFLAGS)
tests_bench_launch_LDADD = $(UNIT_LDADD)
EXTRA_DIST += tests/bench/launch.sh tests/bench/throughput.sh
bench-launch: tests/bench/launch$(EXEEXT) surplus$(EXEEXT)
	$(SHELL) $(srcdir)/tests/bench/launch.sh $(builddir)
.PHONY: bench-launch
bench-throughput: surplus$(EXEEXT) surplusd$(EXEEXT) surplus-sandbox-init$(EXEEXT) \
		tests/bench/launch$(EXEEXT)
	$(SHELL) $(srcdir)/tests/bench/throughput.sh $(builddir)
.PHONY: bench-throughput

# The scrub between tenants on a CUDA device: `make bench-scrub` (a GPU
# machine; says so and succeeds where there is none).
if HAVE_CUDA
check_PROGRAMS += tests/bench/scrub
endif
tests_bench_scrub_SOURCES = tests/bench/scrub.c \
	plugins/accelerator/cuda/scrub.c plugins/accelerator/cuda/scrub.h
tests_bench_scrub_CPPFLAGS = $(AM_CPPFLAGS) $(CUDA_CPPFLAGS) \
	$(CUDA_SCRUB_CPPFLAGS) -I$(top_srcdir)/plugins/accelerator/cuda
tests_bench_scrub_LDADD = $(CUDA_KERNELS_LO) $(CUDA_LIBS) -ldl -lpthread
EXTRA_DIST += tests/bench/scrub.sh
if HAVE_CUDA
BENCH_SCRUB_PROGRAM = tests/bench/scrub$(EXEEXT)
endif
bench-scrub: $(BENCH_SCRUB_PROGRAM)
	$(SHELL) $(srcdir)/tests/bench/scrub.sh $(builddir) || test $$? -eq 77
.PHONY: bench-scrub
