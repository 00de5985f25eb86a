# The example plugin is built by its own Makefile against the installed
# SDK (see tests/example-plugin.sh); it is shipped as source.
examplepluginsdir = $(docdir)/examples/plugins
dist_exampleplugins_DATA = \
	examples/plugins/spool.c \
	examples/plugins/Makefile \
	examples/plugins/README.md
EXTRA_DIST += examples/sim.conf
