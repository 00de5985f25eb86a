/*
 * recovery.h - what surplusd does at start about the jobs a killed daemon
 * left running: each is requeued (its manifest says requeue = true) or
 * failed, and what its runner left on disk is removed; a job requeued
 * this way too often is failed instead.
 */
#ifndef SURPLUS_RECOVERY_H
#define SURPLUS_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "jobstore.h"

/* A job whose manifest allows requeueing runs again after at most this
 * many restarts: one that keeps taking its node down must not do so
 * forever. */
#define RECOVERY_MAX_REQUEUES 3

/*
 * jobstore_reconcile() at `now_us`, then removal of the job directories
 * (<state_dir>/jobs/<id>) of the jobs that were running or completing:
 * their processes died with the daemon, and a requeued job starts again in
 * a fresh one.  Nothing else may run jobs of this store meanwhile.
 */
int recovery_reconcile(struct jobstore *js, const char *state_dir,
                       int64_t now_us /* 0: now */, uint64_t *ret_requeued,
                       uint64_t *ret_failed, struct err *e);

/*
 * For a queued job read at start: true when a restart requeued it (its
 * reason says so) more than RECOVERY_MAX_REQUEUES times in all; it has then
 * been moved to failed, with a reason that says why, and must not be
 * queued.  Errors are logged; the job then stays queued.
 */
bool recovery_give_up(struct jobstore *js, const struct job_row *row,
                      int64_t now_us /* 0: now */);

#endif
