# The runner: surplus run end to end and the sandbox it builds.
# One a line, so that additions merge.
RUNNER_TESTS = tests/run-job.sh
RUNNER_TESTS += tests/run-sandbox.sh
RUNNER_TESTS += tests/run-tenants.sh
RUNNER_TESTS += tests/run-cuda.sh
RUNNER_TESTS += tests/daemon.sh
RUNNER_TESTS += tests/daemon-tls.sh
RUNNER_TESTS += tests/daemon-limits.sh
RUNNER_TESTS += tests/daemon-requeue.sh
RUNNER_TESTS += tests/daemon-log.sh
RUNNER_TESTS += tests/daemon-fair.sh
RUNNER_TESTS += tests/daemon-retention.sh
RUNNER_TESTS += tests/daemon-burst.sh
RUNNER_TESTS += tests/daemon-quota.sh
RUNNER_TESTS += tests/run-outputs.sh
RUNNER_TESTS += tests/daemon-outputs.sh
RUNNER_TESTS += tests/run-limits.sh
RUNNER_TESTS += tests/daemon-jobfs.sh
RUNNER_TESTS += tests/daemon-api.sh
RUNNER_TESTS += tests/daemon-idempotency.sh
RUNNER_TESTS += tests/daemon-token.sh
RUNNER_TESTS += tests/run-symlinks.sh
RUNNER_TESTS += tests/daemon-devices.sh
RUNNER_TESTS += tests/daemon-metrics.sh
RUNNER_TESTS += tests/daemon-queue.sh
TESTS += $(RUNNER_TESTS)
EXTRA_DIST += $(RUNNER_TESTS)
