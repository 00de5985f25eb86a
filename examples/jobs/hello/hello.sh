#!/bin/sh
# Runs inside the sandbox: its own uid, a read-only host, a private /tmp.
set -eu
echo "$GREETING, $1! This is job $SURPLUS_JOB_ID ($SURPLUS_JOB_NAME)."
echo "running as uid $(id -u) on $(hostname), in $(pwd)"
echo "devices leased: ${SURPLUS_GPUS:-none} (${SURPLUS_ACCELERATOR:-no accelerator})"
mkdir -p out
echo "$GREETING, $1!" > out/greeting.txt
env | sort > out/environment.txt
printf 'job=%s\ngpus=%s\nuid=%s\n' "$SURPLUS_JOB_ID" "${SURPLUS_GPUS:-}" \
    "$(id -u)" > summary.txt
echo "wrote out/greeting.txt, out/environment.txt and summary.txt"
