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
 * Writes the usage record of job `row`, found completing after a restart
 * with its outcome and record id persisted, unless the ledger holds that
 * record already.  0 or a negative errno.
 */
typedef int (*recovery_record_fn)(void *arg, const struct job_row *row);

/*
 * After recovery_reconcile(): each job left completing with a persisted
 * outcome ends in that outcome, at `now_us` (0: now), and is never run
 * again; its usage record is written first through `record` (NULL: not
 * written) unless the store says it was.  A record that cannot be written
 * is logged and the job still ends, unrecorded.  *ret_finished (may be
 * NULL) says how many jobs were finished.
 */
int recovery_finish(struct jobstore *js, int64_t now_us,
                    recovery_record_fn record, void *arg,
                    uint64_t *ret_finished, struct err *e);

/*
 * For a queued job read at start: true when a restart requeued it (its
 * reason says so) more than RECOVERY_MAX_REQUEUES times in all; it has then
 * been moved to failed, with a reason that says why, and must not be
 * queued.  Errors are logged; the job then stays queued.
 */
bool recovery_give_up(struct jobstore *js, const struct job_row *row,
                      int64_t now_us /* 0: now */);

#endif
