# The example plugin is built by its own Makefile against the installed
# SDK (see tests/example-plugin.sh); it is shipped as source.
examplepluginsdir = $(docdir)/examples/plugins
dist_exampleplugins_DATA = \
	examples/plugins/spool.c \
	examples/plugins/Makefile \
	examples/plugins/README.md
EXTRA_DIST += examples/sim.conf

# Job bundles a tenant starts from, installed as documentation.
examplejobshellodir = $(docdir)/examples/jobs/hello
dist_examplejobshello_DATA = \
	examples/jobs/hello/job.conf \
	examples/jobs/hello/hello.sh

# CUDA C, with the Makefile that builds it with nvcc and packs the bundle;
# tests/gpu/saxpy.gpu runs it on a GPU.
examplejobssaxpycudadir = $(docdir)/examples/jobs/saxpy-cuda
dist_examplejobssaxpycuda_DATA = \
	examples/jobs/saxpy-cuda/job.conf \
	examples/jobs/saxpy-cuda/saxpy.cu \
	examples/jobs/saxpy-cuda/Makefile
