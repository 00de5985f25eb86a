# Every plugin lands in plugins/ of the build tree, so that
# SURPLUS_PLUGIN_PATH=$(abs_builddir)/plugins/.libs runs them uninstalled.
pkglib_LTLIBRARIES += plugins/storage_local.la
plugins_storage_local_la_SOURCES = plugins/storage/local/local.c
plugins_storage_local_la_CFLAGS = $(PLUGIN_CFLAGS)
plugins_storage_local_la_LDFLAGS = $(PLUGIN_LDFLAGS)

pkglib_LTLIBRARIES += plugins/accounting_sqlite.la
plugins_accounting_sqlite_la_SOURCES = plugins/accounting/sqlite/sqlite.c
plugins_accounting_sqlite_la_CFLAGS = $(PLUGIN_CFLAGS) $(SQLITE_CFLAGS) $(JANSSON_CFLAGS)
plugins_accounting_sqlite_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_accounting_sqlite_la_LIBADD = $(SQLITE_LIBS) $(JANSSON_LIBS)

pkglib_LTLIBRARIES += plugins/accelerator_sim.la
plugins_accelerator_sim_la_SOURCES = plugins/accelerator/sim/sim.c
plugins_accelerator_sim_la_CFLAGS = $(PLUGIN_CFLAGS)
plugins_accelerator_sim_la_LDFLAGS = $(PLUGIN_LDFLAGS)

# CUDA stays inside this one plugin's build: the runtime is linked
# statically, so the plugin needs only the driver (libcuda.so) at run time
# and loads, reporting zero devices, where there is none.
if HAVE_CUDA
pkglib_LTLIBRARIES += plugins/accelerator_cuda.la
endif
EXTRA_DIST += plugins/accelerator/cuda/cuda.c
plugins_accelerator_cuda_la_SOURCES = plugins/accelerator/cuda/cuda.c
plugins_accelerator_cuda_la_CPPFLAGS = $(AM_CPPFLAGS) $(CUDA_CPPFLAGS)
plugins_accelerator_cuda_la_CFLAGS = $(PLUGIN_CFLAGS)
plugins_accelerator_cuda_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_accelerator_cuda_la_LIBADD = $(CUDA_LIBS) -ldl -lpthread
