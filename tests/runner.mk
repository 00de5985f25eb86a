# The runner: surplus run end to end and the sandbox it builds.
RUNNER_TESTS = tests/run-job.sh tests/run-sandbox.sh tests/daemon.sh \
	tests/daemon-tls.sh tests/daemon-limits.sh tests/daemon-requeue.sh \
	tests/daemon-log.sh tests/daemon-api.sh tests/run-cuda.sh
TESTS += $(RUNNER_TESTS)
EXTRA_DIST += $(RUNNER_TESTS)
