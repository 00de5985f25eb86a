/*
 * quota.h - each tenant's storage_quota: the bytes of bundles, logs and
 * outputs it may hold in storage.
 *
 * What a tenant holds is what the job store counts for its jobs
 * (jobstore_stored_bytes: each job's stored_bytes) plus what is on its way
 * into storage and not yet counted there: bundles being submitted and the
 * outputs and logs of jobs being collected.  The latter are "held" here,
 * in memory, from the moment they are admitted until the store counts
 * them (or they are dropped); a check reads both under one lock, so two
 * submissions, or a submission and a job's outputs, cannot both fit into
 * the same room.
 *
 * Every function is safe to call from any thread.  Errors are a negative
 * errno with one line in *e; -ENOSPC is "over the quota" (HTTP 507).
 */
#ifndef SURPLUS_QUOTA_H
#define SURPLUS_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "jobstore.h"
#include "loader.h"

struct quota;

/* What a tenant holds, and may hold. */
struct quota_use {
    uint64_t stored;  /* counted by the job store */
    uint64_t held;    /* admitted, on its way into storage */
    uint64_t quota;   /* 0: no quota */
};

int quota_new(struct jobstore *js, struct quota **ret, struct err *e);
void quota_free(struct quota *q);

/* Each tenant's quota from `cf` (tenants[].storage_quota, else the
 * top-level storage_quota); what is held is kept.  Tenants that are not
 * in `cf` (root's own jobs, tenant "local") have none. */
int quota_load(struct quota *q, const struct config *cf);

/*
 * Admits `bytes` more of `tenant`'s into storage and holds them, or
 * refuses with -ENOSPC when they would take it past its quota ("storage
 * quota exceeded: tenant ... uses ... of its storage_quota of ...").
 * With `must` they are held whatever the quota says (a log is stored in
 * any case).  *ret_use (may be NULL) says what the tenant held before;
 * the store is read (ret_use->stored) only to check a tenant that has a
 * quota.
 */
int quota_admit(struct quota *q, const char *tenant, uint64_t bytes,
                bool must, struct quota_use *ret_use, struct err *e);

/* quota_admit's check alone: nothing is held. */
int quota_check(struct quota *q, const char *tenant, uint64_t bytes,
                struct quota_use *ret_use, struct err *e);

/* Lets go of `bytes` held for `tenant`: the store counts them now, or
 * they were never stored. */
void quota_release(struct quota *q, const char *tenant, uint64_t bytes);

/* What `tenant` holds now. */
int quota_use(struct quota *q, const char *tenant, struct quota_use *ret,
              struct err *e);

/* The bytes of job `id`'s objects in `storage` (keys "jobs/<id>/..."). */
int quota_count_job(struct plugin *storage, const char *id, uint64_t *ret,
                    struct err *e);

/*
 * Counts, from `storage`, the stored_bytes of every job in `js` whose
 * count is not known (the store predates it, or a daemon died while the
 * job ran) and writes them in one transaction.  For the start of the
 * daemon, before anything else stores or removes.  *ret_n: how many.
 */
int quota_count_unknown(struct jobstore *js, struct plugin *storage,
                        uint64_t *ret_n, struct err *e);

#endif
