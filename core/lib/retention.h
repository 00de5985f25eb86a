/*
 * retention.h - what surplusd keeps in storage for ended jobs, and for how
 * long.
 *
 * A job's bundle is needed only until the job ends: it is removed at the
 * first sweep after that (so a loop of submissions cancelled before they
 * run leaves nothing behind).  Its log and outputs are kept for the
 * retention of its tenant (tenants[].retention, else the top-level
 * retention; 0 keeps them for ever) after the job ended, then removed.
 * The job's row stays in the job store, so `surplus status` still answers
 * and says its files are gone; what was removed is taken off the bytes
 * the store counts for the job (jobstore_files_removed), which its
 * tenant's storage_quota sums;
 * its idempotency key, if it had one, is forgotten then, so that the
 * key may make a new job.
 */
#ifndef SURPLUS_RETENTION_H
#define SURPLUS_RETENTION_H

#include <stdint.h>

#include "err.h"
#include "jobstore.h"
#include "loader.h"

struct retention_stats {
    uint64_t bundles;     /* bundles removed */
    uint64_t expired;     /* jobs whose log and outputs were removed */
    uint64_t objects;     /* storage objects removed in all */
    uint64_t bytes;       /* ... and their size */
};

/* The retention of `tenant`'s jobs in milliseconds; 0: for ever.  Called
 * from the sweep, once a job, with no lock of the sweep's held. */
typedef uint64_t (*retention_fn)(void *arg, const char *tenant);

/*
 * One sweep at `now_us`: every ended job's bundle, and every object of each
 * ended job whose retention ran out, are removed from `storage`, and the
 * idempotency keys of the latter from `js`.  Jobs whose ends were dealt
 * with by the sweep at `since_us` (0: none, a full sweep) are skipped:
 * those that ended, or expired, before then.  Removal errors
 * other than a missing object stop the sweep with the error set; what was
 * removed is counted in *stats either way.
 */
int retention_sweep(struct jobstore *js, struct plugin *storage,
                    retention_fn retention, void *arg, int64_t now_us,
                    int64_t since_us, struct retention_stats *stats,
                    struct err *e);

/* Whether job `row`'s log and outputs are gone after `retention_ms` (0:
 * kept for ever) at `now_us`: what to tell a tenant who asks for them. */
bool retention_expired(uint64_t retention_ms, const struct job_row *row,
                       int64_t now_us);

#endif
