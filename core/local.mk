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
	core/lib/calls.c core/lib/calls.h \
	core/lib/conform.c core/lib/conform.h \
	core/lib/node.c core/lib/node.h \
	core/lib/sandbox.c core/lib/sandbox.h core/lib/sandbox-proto.h \
	core/lib/seccomp.c core/lib/seccomp.h \
	core/lib/retention.c core/lib/retention.h \
	core/lib/quota.c core/lib/quota.h \
	core/lib/cgroup.c core/lib/cgroup.h \
	core/lib/jobfs.c core/lib/jobfs.h \
	core/lib/runner.c core/lib/runner.h \
	core/lib/sha256.c core/lib/sha256.h \
	core/lib/service.c core/lib/service.h \
	core/lib/recovery.c core/lib/recovery.h \
	core/lib/api.c core/lib/api.h
core_lib_libsurplus_la_CFLAGS = $(AM_CFLAGS) $(LIBCONFIG_CFLAGS) \
	$(JANSSON_CFLAGS) $(MHD_CFLAGS) -pthread
core_lib_libsurplus_la_LIBADD = $(LIBCONFIG_LIBS) $(JANSSON_LIBS) $(MHD_LIBS) -lm
core_lib_libsurplus_la_LDFLAGS = -pthread

# surplus: the CLI, one file per verb.
bin_PROGRAMS += surplus
surplus_SOURCES = \
	core/cli/main.c core/cli/cli.h \
	core/cli/cmd_plugins.c \
	core/cli/cmd_usage.c \
	core/cli/cmd_token.c \
	core/cli/cmd_version.c \
	core/cli/cmd_run.c \
	core/cli/cmd_jobs.c \
	core/cli/client.c core/cli/client.h \
	core/cli/profile.c core/cli/complete.c

# Shell completions, asking surplus itself for the candidates.
bashcompletiondir = $(datadir)/bash-completion/completions
dist_bashcompletion_DATA = core/cli/completion/surplus
zshcompletiondir = $(datadir)/zsh/vendor-completions
dist_zshcompletion_DATA = core/cli/completion/_surplus
surplus_CFLAGS = $(AM_CFLAGS) $(LIBCONFIG_CFLAGS) $(JANSSON_CFLAGS) \
	$(LIBCURL_CFLAGS)
surplus_LDADD = core/lib/libsurplus.la $(JANSSON_LIBS) $(LIBCURL_LIBS) \
	$(LIBCONFIG_LIBS)

# surplus-sandbox-init: pid 1 of every job.  Small, static and, where it
# can be, free of the C library, so that executing it costs little.
pkglibexec_PROGRAMS = surplus-sandbox-init
surplus_sandbox_init_SOURCES = core/lib/sandbox-init.c core/lib/sandbox-proto.h
surplus_sandbox_init_CFLAGS = -std=gnu11 $(WARN_CFLAGS) $(INIT_CFLAGS)
surplus_sandbox_init_LDFLAGS = $(INIT_LDFLAGS)

# surplusd: the daemon; its service and HTTP API live in core/lib.
sbin_PROGRAMS += surplusd
surplusd_SOURCES = core/daemon/surplusd.c
surplusd_CFLAGS = $(AM_CFLAGS) $(LIBCONFIG_CFLAGS) $(JANSSON_CFLAGS) \
	$(MHD_CFLAGS)
surplusd_LDADD = core/lib/libsurplus.la $(JANSSON_LIBS) $(MHD_LIBS)
