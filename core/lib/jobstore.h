/*
 * jobstore.h - the daemon's persistent job store: one SQLite database with
 * a row per job and the history of its state changes.
 *
 * The daemon persists every transition before it acts on it (see "Job
 * flow" in the architecture), so each call that changes a job is one
 * transaction, durable when it returns 0: a daemon killed at any point
 * finds, on restart, every job it was told about, each in a state its
 * history explains.
 *
 * Threads: one handle may be shared by the daemon's threads.  The
 * connection is opened with SQLITE_OPEN_FULLMUTEX and each call holds the
 * connection's mutex for the whole of its transaction, so transactions of
 * different threads never interleave.  Writers take the write lock up
 * front (BEGIN IMMEDIATE), and other handles or processes on the same file
 * wait for it for up to JOBSTORE_BUSY_TIMEOUT_MS, then fail with -EBUSY.
 *
 * Every function returns 0 or a negative errno with one line in *e.
 */
#ifndef SURPLUS_JOBSTORE_H
#define SURPLUS_JOBSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define JOBSTORE_SCHEMA_VERSION 4      /* PRAGMA user_version written */
#define JOBSTORE_BUSY_TIMEOUT_MS 5000
#define JOBSTORE_ID_LEN 16             /* lowercase hex digits of a job id */
#define JOBSTORE_KEY_MAX 255           /* bytes of an idempotency key */

/* The names (job_state_name) are what the database stores: the numbers
 * may change, the names may not. */
enum job_state {
    JOB_STATE_NONE = -1,  /* before submission: `from` of the first
                             history row; never a job's state */
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_COMPLETING,
    JOB_SUCCEEDED,
    JOB_FAILED,
    JOB_TIMEOUT,
    JOB_CANCELLED,
    JOB_REJECTED,
    JOB_STATE_COUNT
};

#define JOB_STATE_BIT(s) (1u << (unsigned)(s))
#define JOB_STATES_ALL ((1u << JOB_STATE_COUNT) - 1)
#define JOB_STATES_TERMINAL                                         \
    (JOB_STATE_BIT(JOB_SUCCEEDED) | JOB_STATE_BIT(JOB_FAILED) |     \
     JOB_STATE_BIT(JOB_TIMEOUT) | JOB_STATE_BIT(JOB_CANCELLED) |    \
     JOB_STATE_BIT(JOB_REJECTED))

/* "queued", ...; "none" for JOB_STATE_NONE and "invalid" for anything else,
 * so that the result can always be printed. */
const char *job_state_name(enum job_state s);
/* Exactly one of the eight names; -EINVAL otherwise, *ret untouched. */
int job_state_parse(const char *name, enum job_state *ret);
bool job_state_terminal(enum job_state s);
/*
 * queued     -> running | cancelled | failed | rejected
 * running    -> completing | queued (requeue) | failed | cancelled
 * completing -> succeeded | failed | timeout | cancelled
 * Nothing leaves a terminal state.
 */
bool job_transition_allowed(enum job_state from, enum job_state to);

/* A job id: JOBSTORE_ID_LEN lowercase hex digits, as runner_new_id() makes
 * them.  One spelling per id, so that "AB.." and "ab.." are not two jobs. */
bool jobstore_id_valid(const char *id);

/* An idempotency key, as a tenant sends it in the Idempotency-Key header
 * of a submission: 1 to JOBSTORE_KEY_MAX bytes, each printable ASCII
 * (space to '~').  Opaque otherwise: compared byte for byte. */
bool jobstore_key_valid(const char *key);

struct job_row {
    char id[JOBSTORE_ID_LEN + 1];
    int64_t seq;            /* submission order, from 1, assigned by the
                               store; never reused */
    char *tenant;
    char *name;
    enum job_state state;
    int exit_status;        /* -1 until known */
    int64_t submitted_us;   /* wall clock, microseconds since the epoch */
    int64_t started_us;     /* 0: not yet (again 0 after a requeue) */
    int64_t ended_us;       /* 0: not yet */
    char *devices;          /* JSON array of {"id","model","plugin"}, as
                               text; "[]" when none */
    char *reason;           /* why it ended (or was requeued); NULL */
    char *bundle_key;       /* storage key of the uploaded bundle; NULL */
    uint64_t bundle_bytes;
    /* What the scheduler needs from the manifest. */
    uint32_t gpus;
    char *model;            /* glob; "*" when NULL on insert */
    uint64_t gpu_memory;    /* bytes per GPU; 0: any */
    uint32_t cpus;
    uint64_t memory;        /* bytes */
    uint64_t walltime_ms;
    bool requeue;           /* the manifest allows a restart to requeue it */
    bool recorded;          /* its usage record has been written */
    bool cancel_requested;
    /* Set when it enters completing, before its usage record is written:
     * the final state it ends in and the id of that record.  A restart
     * finishes a completing job from these. */
    enum job_state outcome; /* JOB_STATE_NONE until then */
    char *record_id;        /* or NULL */
    /* Bytes of the job's objects in storage (bundle, log, outputs), what
     * its tenant's storage_quota counts: its bundle_bytes from submission
     * (0 without a bundle_key), counted again from storage when it stops
     * running, lowered when retention removes its files.  -1: not known
     * (it was running when a daemon died, or the store predates the
     * count); surplusd counts those from storage at start. */
    int64_t stored_bytes;
};

/* Frees the strings of *row (not row itself) and clears it. */
void job_row_free(struct job_row *row);

/* Which fields of struct job_update a transition applies. */
enum {
    JOB_UPDATE_EXIT_STATUS = 1u << 0,
    JOB_UPDATE_STARTED_US = 1u << 1,
    JOB_UPDATE_ENDED_US = 1u << 2,
    JOB_UPDATE_DEVICES = 1u << 3,
    JOB_UPDATE_REASON = 1u << 4,
    JOB_UPDATE_RECORDED = 1u << 5,
    JOB_UPDATE_OUTCOME = 1u << 6,   /* a final state */
    JOB_UPDATE_RECORD_ID = 1u << 7,
    JOB_UPDATE_STORED_BYTES = 1u << 8,
};

struct job_update {
    unsigned set;           /* JOB_UPDATE_* bits; others are left alone */
    int exit_status;
    int64_t started_us;
    int64_t ended_us;
    const char *devices;    /* JSON array; NULL means "[]" */
    const char *reason;     /* NULL clears it; also the history row's */
    bool recorded;
    enum job_state outcome;
    const char *record_id;  /* NULL clears it */
    uint64_t stored_bytes;
    int64_t time_us;        /* of the history row; 0: now */
};

/* One row of a job's history. */
struct job_transition {
    int64_t n;              /* position in the store's history, ascending */
    const char *job_id;
    enum job_state from;    /* JOB_STATE_NONE for the submission */
    enum job_state to;
    int64_t time_us;
    const char *reason;     /* or NULL */
};

struct job_filter {
    const char *tenant;     /* NULL: every tenant */
    unsigned states;        /* JOB_STATE_BIT() mask; 0: every state */
    int64_t after_seq;      /* only jobs with a larger seq: paging */
    size_t limit;           /* at most this many; 0: no limit */
};

/* Callbacks return 0 to go on; anything else stops the walk and is what
 * the walk returns.  The rows are read (one consistent snapshot) before the
 * first call and no lock is held during the calls, so a callback may call
 * any jobstore function; the row and its strings last until it returns. */
typedef int (*job_row_fn)(void *arg, const struct job_row *row);
typedef int (*job_transition_fn)(void *arg, const struct job_transition *t);

struct jobstore;

/*
 * Opens the database at `path`, creating it and its schema if needed, in
 * WAL mode with synchronous=FULL and foreign keys on.  A database whose
 * schema version is newer than JOBSTORE_SCHEMA_VERSION is refused with
 * -ENOTSUP rather than misread.
 */
int jobstore_open(const char *path, struct jobstore **ret, struct err *e);
void jobstore_close(struct jobstore *js);

/*
 * Adds a job in state queued and records its submission in the history.
 * Taken from *row: id, tenant (required), name, submitted_us (0: now),
 * devices (NULL: "[]"), bundle_key, bundle_bytes, the resources and
 * requeue.  The store sets the rest: seq, state queued, exit_status -1,
 * started_us and ended_us 0, no reason, recorded and cancel_requested
 * false.  -EEXIST if the id is taken.
 */
int jobstore_insert(struct jobstore *js, const struct job_row *row,
                    struct err *e);

/*
 * Idempotency keys.  A tenant's key stands for one job, and for the
 * request that made it, by the SHA-256 of that request (what the daemon
 * hashes is its business: 64 lowercase hex digits here).  Keys are per
 * tenant: two tenants' equal keys are two keys.  A key lasts until it is
 * forgotten (jobstore_key_forget), and then may stand for a new job.
 *
 * jobstore_insert_keyed is jobstore_insert that also records `key` of the
 * row's tenant for the new job and `request_sha256`, in the same
 * transaction: the store never has the job without its key, nor the key
 * without its job.  -EEXIST if the tenant has that key already (nothing
 * is written; jobstore_key_find says for which job) or the id is taken;
 * -EINVAL for a key that is not jobstore_key_valid.
 */
int jobstore_insert_keyed(struct jobstore *js, const struct job_row *row,
                          const char *key, const char *request_sha256,
                          struct err *e);

/* The job `tenant`'s key stands for, and the SHA-256 of the request that
 * made it.  -ENOENT if the tenant has no such key (never had, or it was
 * forgotten); the outputs are then untouched. */
int jobstore_key_find(struct jobstore *js, const char *tenant,
                      const char *key,
                      char ret_job_id[JOBSTORE_ID_LEN + 1],
                      char ret_request_sha256[65], struct err *e);

/* Forgets the key of job `id`, if it has one.  Not an error if it has
 * none. */
int jobstore_key_forget(struct jobstore *js, const char *id, struct err *e);

/*
 * Compare-and-set: moves job `id` from `from` to `to` only if its state is
 * `from` (else -ESTALE, naming the state it is in), applies the fields of
 * *u that u->set names (u may be NULL) and appends the history row, all in
 * one transaction.  -EINVAL for a transition the state machine does not
 * allow, -ENOENT for an unknown id.
 */
int jobstore_transition(struct jobstore *js, const char *id,
                        enum job_state from, enum job_state to,
                        const struct job_update *u, struct err *e);

/*
 * Several transitions in one transaction (one commit, one fsync): each step
 * is a compare-and-set as above, applied in order.  A step whose job is not
 * in its `from` state, or is unknown, gets -ESTALE / -ENOENT in its
 * `result` and is skipped (`msg` says why); the others are
 * applied.  Any other failure rolls the whole batch back, sets every
 * step's result to the error and returns it.  Returns the number of steps
 * applied.
 */
struct job_step {
    const char *id;
    enum job_state from, to;
    const struct job_update *u; /* may be NULL */
    int result;                 /* out: 0 or a negative errno */
    char msg[256];              /* out: why, when result < 0 */
};
int jobstore_transitions_apply(struct jobstore *js, struct job_step *steps,
                               size_t n, struct err *e);

/* Sets "cancel_requested" or "recorded" (-EINVAL for another name) without
 * a state change. */
int jobstore_set_flag(struct jobstore *js, const char *id, const char *flag,
                      bool value, struct err *e);

/* *out is filled (free it with job_row_free) or, on failure, left alone.
 * -ENOENT if there is no such job. */
int jobstore_get(struct jobstore *js, const char *id, struct job_row *out,
                 struct err *e);

/* The jobs that pass *f (NULL: all), in seq order. */
int jobstore_list(struct jobstore *js, const struct job_filter *f,
                  job_row_fn fn, void *arg, struct err *e);

/* How many jobs of `tenant` (NULL: all) are in one of `states` (0: any). */
int jobstore_count(struct jobstore *js, const char *tenant, unsigned states,
                   uint64_t *ret_n, struct err *e);

/* --- storage held by jobs (a tenant's storage_quota) --------------------- */

/* The bytes in storage of `tenant`'s jobs: the sum of their stored_bytes
 * (those not known count nothing). */
int jobstore_stored_bytes(struct jobstore *js, const char *tenant,
                          uint64_t *ret, struct err *e);

/* The same for every tenant that holds something, in name order. */
typedef int (*jobstore_tenant_bytes_fn)(void *arg, const char *tenant,
                                        uint64_t bytes);
int jobstore_stored_by_tenant(struct jobstore *js,
                              jobstore_tenant_bytes_fn fn, void *arg,
                              struct err *e);

/* What retention did to a job's objects in storage. */
enum jobstore_removed {
    JOBSTORE_BUNDLE_REMOVED,  /* its bundle was removed: bundle_key is
                                 cleared and bundle_bytes counted off */
    JOBSTORE_BUNDLE_MISSING,  /* its bundle was not there (an older daemon
                                 removed it): bundle_key is cleared, and
                                 nothing counted off, since a count from
                                 storage did not find it either */
    JOBSTORE_ALL_REMOVED,     /* every object: nothing is counted */
};

/* Records what retention removed of job `id`.  Doing it twice changes
 * nothing.  -ENOENT for an unknown job. */
int jobstore_files_removed(struct jobstore *js, const char *id,
                           enum jobstore_removed what, struct err *e);

/* Marks the stored_bytes of every job in one of `states` (a mask, not 0)
 * as not known, to be counted again. */
int jobstore_stored_forget(struct jobstore *js, unsigned states,
                           struct err *e);

/* The ids of the jobs whose stored_bytes is not known, in seq order, as
 * jobstore_list() calls back (no lock held during the calls). */
typedef int (*jobstore_id_fn)(void *arg, const char *id);
int jobstore_stored_unknown(struct jobstore *js, jobstore_id_fn fn,
                            void *arg, struct err *e);

/* Sets the stored_bytes of jobs ids[0..n) to bytes[0..n), in one
 * transaction; unknown ids are skipped. */
int jobstore_stored_set(struct jobstore *js, const char *const *ids,
                        const uint64_t *bytes, size_t n, struct err *e);

/* The history of job `id`, oldest first; -ENOENT if there is no such job. */
int jobstore_transitions(struct jobstore *js, const char *id,
                         job_transition_fn fn, void *arg, struct err *e);

/*
 * For the start of the daemon, before it runs anything: no job can still be
 * running after a restart.  In one transaction:
 *  - running jobs whose manifest allows it (requeue) and whose cancel was
 *    not requested go back to queued, with started_us 0, no devices and
 *    reason "node restarted; requeued";
 *  - other running jobs, and completing jobs with neither an outcome nor
 *    a written usage record (older daemons), end as failed, reason "node restarted", ended_us now_us;
 *  - completing jobs whose outcome was persisted, or whose usage record
 *    was written (recorded), are left in completing: what they end as is
 *    known, and they may be billed already.  The daemon finishes them
 *    (recovery_finish(); jobstore_count(js, NULL,
 *    JOB_STATE_BIT(JOB_COMPLETING), ...) says how many).
 * Each change has its history row, at now_us (0: now).  The counts (either
 * may be NULL) say how many jobs were requeued and failed.
 */
int jobstore_reconcile(struct jobstore *js, int64_t now_us,
                       uint64_t *ret_requeued, uint64_t *ret_failed,
                       struct err *e);

#endif
