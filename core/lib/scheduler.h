/*
 * scheduler.h - the daemon's scheduler: which queued jobs start now, and on
 * which devices.
 *
 * A pure function of its input (no I/O, no clock, no globals, no
 * randomness): the daemon describes the node as it is at `now_ms` and gets
 * back decisions to apply in order.  The same input always gives the same
 * output, so every policy question can be answered with a hand-built
 * scenario in a unit test, and a decision the daemon logs can be replayed.
 *
 * Policy: FIFO with EASY backfill (Lifka 1995; Slurm's sched/backfill is
 * the same idea with more knobs).
 *
 *   - Queued jobs are walked in submission order.  While jobs fit, they
 *     start, in that order.
 *   - A job that can never run on this node is reported in `impossible`
 *     with a reason, so the daemon can fail it; it blocks nothing.  "Never"
 *     means: it asks for more GPUs than its tenant's max_gpus, or no
 *     accelerator group has that many devices matching its model and
 *     gpu_memory, drained devices counted as absent (a drained device failed
 *     health or scrub and is never leased again).
 *   - The first job that fits nowhere right now becomes the head.  It gets
 *     the one reservation: the devices it will take (in one group, those
 *     free soonest by the running jobs' expected ends) and the shadow time
 *     when the last of them is free.
 *   - Every later job is a backfill candidate: it starts now only if it fits
 *     now and cannot delay the head, that is, it ends (now + walltime) no
 *     later than the shadow time, or it leaves the head's devices and the
 *     head tenant's quota free at the shadow time.  (A running slot under
 *     max_running is always left: the job that frees the head's last device
 *     frees one.)  Walltime is enforced by the runner, so "ends by" is a
 *     promise, not an estimate.
 *   - Only the head is protected.  Its reservation is recomputed on every
 *     pass from the jobs running then; backfill never pushes it later.  A
 *     device held by a job the input does not list has no known end: a
 *     reservation that needs it has shadow time SCHED_NEVER, and protects
 *     nothing until the device comes back.
 *   - Once max_running jobs run, nothing more starts in the pass, but
 *     impossible jobs are still reported.  A CPU-only job (gpus 0) needs
 *     only a slot, so it is never the head.
 *
 * Tenant quotas: max_gpus bounds the devices leased at once by a tenant's
 * running jobs (their `gpus`, plus this pass's starts).  A job that would
 * exceed it only because of what the tenant holds now is skipped without a
 * reservation: a tenant at its quota holds up no one else.  Its later GPU
 * jobs also wait for the rest of the pass, so that a tenant's wide job is
 * not starved by the same tenant's narrow ones (FIFO within a tenant).  Its
 * CPU-only jobs still run: they take no quota.  A tenant that is not listed
 * has no quota.
 *
 * Running slots are shared fairly: while more than one listed tenant has
 * queued jobs, a tenant already running its share (max_running divided
 * by the number of tenants with queued jobs, rounded up) is passed over
 * until the other tenants' jobs have been considered; a second walk then
 * offers the slots still free to the jobs passed over, in queue order, so
 * fairness never leaves a slot idle.  Without this, one tenant's
 * thousand CPU-only jobs, queued first, would hold every slot until the
 * last of them ended.  A tenant's own max_running is a hard cap: its jobs
 * beyond it wait, holding up no one.
 *
 * Device choice, among free devices that fit, in one group: first those not
 * reserved for the head, then the smallest memory (best fit: large devices
 * stay free for jobs that need them), then the lowest index.  When several
 * groups can take the job, the one that takes the fewest reserved devices,
 * then the least memory in total, then the lowest device index wins.
 *
 * Cost: O(D log D + R + T + G*D + Q*D) time with D devices, R running jobs,
 * T tenants, Q queued jobs and G distinct (model, gpu_memory) pairs among
 * them; fnmatch(3) runs G*D times, not Q*D.  Per job it is two hash
 * lookups (shape and tenant) and, unless a job of the same shape and no
 * more GPUs already failed to fit in this pass, one O(D) look at the free
 * devices; refusal and wait reasons are formatted once per distinct
 * reason, and a waiting job costs one more hash lookup for its reason.  A
 * queue of 10,000 jobs on 8 devices plans in well under a millisecond
 * (tests/unit/test_sched.c prints the time).  Memory is O(Q + D*G + R + T).
 *
 * Every queued job that neither starts nor is impossible is told why it
 * waits (sched_result.waits, squeue's REASON): devices (resources), the
 * head's reservation, its tenant's max_gpus or max_running, the fair
 * share, or the node's max_running.
 */
#ifndef SURPLUS_SCHEDULER_H
#define SURPLUS_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Means "not known": a device held by a job the input does not list, and
 * so a shadow time that cannot be predicted. */
#define SCHED_NEVER UINT64_MAX

struct sched_device {
    const char *id;        /* the caller's; not read here */
    const char *model;     /* matched against a job's model glob */
    uint64_t memory;       /* bytes */
    int group;             /* the accelerator plugin instance it belongs to:
                              a job's devices all come from one group */
    bool drained;          /* failed health or scrub: never leased again */
    bool busy;             /* leased by a running job */
    const char *holder;    /* busy: the id of the running job holding it */
};

struct sched_running {
    const char *id;
    const char *tenant;    /* NULL: counts against no quota */
    uint32_t gpus;         /* devices it holds, for its tenant's quota */
    uint64_t end_ms;       /* start + walltime: when its devices are free
                              at the latest; in the past while it is being
                              killed, treated as "now" */
};

struct sched_job {
    const char *id;
    const char *tenant;    /* NULL: no quota */
    uint32_t gpus;         /* 0: CPU only, needs no device */
    const char *model;     /* fnmatch(3) glob on the device model; NULL = "*" */
    uint64_t gpu_memory;   /* minimum bytes per device; 0 = any */
    uint64_t walltime_ms;
};

struct sched_tenant {
    const char *name;
    uint32_t max_gpus;     /* devices leased at once; 0: CPU-only jobs */
    uint32_t max_running;  /* jobs running at once; 0: no cap of its own */
};

struct sched_input {
    uint64_t now_ms;                    /* monotonic, same clock as end_ms */
    const struct sched_device *devices; /* indexes used in the output */
    size_t n_devices;
    const struct sched_running *running;
    size_t n_running;
    const struct sched_job *queued;     /* FIFO: submission order */
    size_t n_queued;
    const struct sched_tenant *tenants; /* names unique */
    size_t n_tenants;
    uint32_t max_running;               /* running jobs node-wide, CPU-only
                                           ones included; 0: unlimited */
};

/* Start queued[job] now on devices[devices[0..n_devices-1]]. */
struct sched_start {
    size_t job;          /* index into sched_input.queued */
    const size_t *devices;  /* ascending; n_devices == that job's gpus */
    size_t n_devices;
};

/* queued[job] can never run on this node: fail it with `reason`. */
struct sched_impossible {
    size_t job;
    const char *reason;  /* one line, tenant text in it escaped; owned by
                            the result, shared by jobs refused alike */
};

/* Why a queued job did not start in this pass (squeue's REASON). */
enum sched_wait_code {
    SCHED_WAIT_NONE = 0,          /* started, or impossible */
    SCHED_WAIT_RESOURCES,         /* not enough free devices that fit */
    SCHED_WAIT_RESERVATION,       /* would delay the head's reservation */
    SCHED_WAIT_TENANT_MAX_GPUS,   /* its tenant holds its max_gpus */
    SCHED_WAIT_TENANT_MAX_RUNNING,/* its tenant runs its max_running */
    SCHED_WAIT_FAIR_SHARE,        /* its tenant runs its share of the slots
                                     while others wait */
    SCHED_WAIT_NODE_MAX_RUNNING,  /* the node runs max_running jobs */
    SCHED_WAIT_COUNT
};

/* "resources", "reservation", "tenant_max_gpus", "tenant_max_running",
 * "fair_share", "node_max_running"; NULL for SCHED_WAIT_NONE: the job
 * JSON's reason_code. */
const char *sched_wait_code_name(enum sched_wait_code c);

struct sched_wait {
    enum sched_wait_code code;
    const char *reason;  /* one line, tenant text escaped, no time in it
                            (the daemon adds the head's expected start);
                            owned by the result, shared; NULL with NONE */
};

struct sched_result {
    struct sched_start *starts;  /* in the order to apply them */
    size_t n_starts;
    struct sched_impossible *impossible;  /* in queue order */
    size_t n_impossible;
    /* By index into sched_input.queued: why each job that neither
     * starts nor is impossible waits.  The head waits for RESOURCES. */
    struct sched_wait *waits;
    /* The head's reservation, for status output ("expected to start at")
     * and tests; the daemon need not act on it. */
    bool has_head;
    size_t head;                 /* index into sched_input.queued */
    uint64_t head_start_ms;      /* the shadow time, or SCHED_NEVER */
    const size_t *head_devices;  /* ascending, n_head_devices == its gpus */
    size_t n_head_devices;
};

/*
 * Plans one pass.  Returns 0 with *ret_result set (free it with
 * sched_result_free), -EINVAL when an array is NULL with a non-zero count,
 * or -ENOMEM; *ret_result is untouched on failure.  The input is only read
 * and may be freed once this returns; the result refers to it by index.
 */
int sched_plan(const struct sched_input *in, struct sched_result **ret_result);

/* Accepts NULL. */
void sched_result_free(struct sched_result *r);

/* Whether `reason` (of a struct sched_impossible) says no device of this
 * node can serve the job, as opposed to its tenant's quota; accepts NULL. */
bool sched_reason_no_device(const char *reason);
/* Whether it says the job asks for more GPUs than its tenant's max_gpus;
 * accepts NULL. */
bool sched_reason_over_max_gpus(const char *reason);

/*
 * Whether `dev` can serve `job` by its model and memory: the job's model
 * glob matches the device model and the device has at least gpu_memory.
 * Capability only: drained and busy are availability, judged by sched_plan.
 */
bool sched_device_fits(const struct sched_job *job,
                       const struct sched_device *dev);

#endif
