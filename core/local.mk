# core/lib: the internal library every program links statically.
noinst_LTLIBRARIES += core/lib/libsurplus.la
core_lib_libsurplus_la_SOURCES = \
	core/lib/err.c core/lib/err.h \
	core/lib/log.c core/lib/log.h \
	core/lib/units.c core/lib/units.h \
	core/lib/settings.c core/lib/settings.h \
	core/lib/config.c core/lib/config.h \
	core/lib/host.c core/lib/host.h \
	core/lib/loader.c core/lib/loader.h \
	core/lib/conform.c core/lib/conform.h \
	core/lib/node.c core/lib/node.h \
	core/lib/sandbox.c core/lib/sandbox.h core/lib/sandbox-proto.h \
	core/lib/runner.c core/lib/runner.h
core_lib_libsurplus_la_CFLAGS = $(AM_CFLAGS) $(LIBCONFIG_CFLAGS) -pthread
core_lib_libsurplus_la_LIBADD = $(LIBCONFIG_LIBS) -lm
core_lib_libsurplus_la_LDFLAGS = -pthread

# surplus: the CLI, one file per verb.
bin_PROGRAMS += surplus
surplus_SOURCES = \
	core/cli/main.c core/cli/cli.h \
	core/cli/cmd_plugins.c \
	core/cli/cmd_usage.c \
	core/cli/cmd_version.c \
	core/cli/cmd_run.c
surplus_CFLAGS = $(AM_CFLAGS) $(LIBCONFIG_CFLAGS) $(JANSSON_CFLAGS)
surplus_LDADD = core/lib/libsurplus.la $(JANSSON_LIBS)

# surplus-sandbox-init: pid 1 of every job.  Small and, where the C library
# allows, static, so that executing it costs little.
pkglibexec_PROGRAMS = surplus-sandbox-init
surplus_sandbox_init_SOURCES = core/lib/sandbox-init.c core/lib/sandbox-proto.h
surplus_sandbox_init_CFLAGS = -std=gnu11 $(WARN_CFLAGS)
surplus_sandbox_init_LDFLAGS = $(INIT_LDFLAGS)
