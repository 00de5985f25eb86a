/*
 * runner.h - one job from bundle to usage record, without a daemon.
 *
 * runner_run() validates and unpacks the bundle, leases devices, runs the
 * command in the sandbox under the walltime, collects the declared outputs
 * and the log into storage (and a directory), releases (scrubs) the
 * devices and writes the usage record.  `surplus run` and surplusd both
 * call it.
 */
#ifndef SURPLUS_RUNNER_H
#define SURPLUS_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "node.h"

#define RUNNER_ID_LEN 16  /* hex digits of a job id */

enum runner_stage {
    STAGE_EXTRACT,   /* check and unpack the bundle */
    STAGE_LEASE,     /* find, lock and prepare devices */
    STAGE_START,     /* namespaces, mounts, exec */
    STAGE_RUN,       /* the command itself */
    STAGE_COLLECT,   /* outputs and log into storage and the out dir */
    STAGE_RELEASE,   /* scrub and unlock the devices */
    STAGE_RECORD,    /* the usage record */
    STAGE_CLEANUP,   /* the job directory removed */
    STAGE_COUNT
};

const char *runner_stage_name(enum runner_stage s);

struct runner_result;

struct runner_opts {
    const char *bundle;    /* path of the bundle file */
    const char *job_id;    /* NULL: a fresh random one */
    const char *tenant;    /* "local" for surplus run */
    const char *record_id; /* of the usage record; NULL: the job id (a
                              daemon names each attempt of a job) */
    const char *out_dir;   /* outputs and the log are copied here; NULL:
                              ./<name>-<id>; "" : not copied */
    int echo_fd;           /* the log is also copied here live; -1: not */
    int cancel_fd;         /* readable: cancel the job; -1: none */
    bool wait_for_devices; /* devices that fit but are leased by someone
                              else are waited for (else -EBUSY) */
    bool quiet_no_cgroup;  /* the warning that limits are best-effort on a
                              host without cgroups was given before: do
                              not repeat it */
    /* A scheduler's choice: lease exactly these devices of this plugin
     * (n_device_ids must equal the manifest's gpus). */
    struct plugin *accelerator;
    const char *const *device_ids;
    size_t n_device_ids;
    /* Called at each state change ("leased", "running", ...), for
     * progress lines; may be NULL. */
    void (*note)(void *arg, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
    void *note_arg;
    /* Called once the command has ended, when *res says how (state,
     * exit_status, end_us, devices), before outputs are collected and the
     * usage record written: a daemon persists the job's outcome here, so
     * that a crash after the record cannot run or bill it again.  A
     * negative return leaves the usage record unwritten (and noted).  May
     * be NULL. */
    int (*ended)(void *arg, const struct runner_result *res);
    void *ended_arg;
    /* Called before each output is put into storage, with its size, and
     * before the log is (with `must`: the log is stored whatever the
     * answer, bounded by limits.max_log_bytes, and only counted).  A
     * daemon holds its tenant's storage_quota here.  A negative return
     * with a message in `why` keeps the output out of storage, and those
     * after it: the job fails with that message as its reason.  May be
     * NULL (surplus run: no quota). */
    int (*store_admit)(void *arg, uint64_t bytes, bool must, char *why,
                       size_t len);
    void *store_arg;
};

struct runner_device {
    char *plugin;  /* "accelerator/sim" */
    char *id;
    char *model;
};

struct runner_result {
    char job_id[RUNNER_ID_LEN + 1];
    char *name;            /* the manifest's name */
    char *state;           /* succeeded, failed, timeout, cancelled */
    char *reason;          /* why, when the job's log or an output could
                              not be stored (the job is then not
                              succeeded); NULL otherwise */
    int exit_status;       /* as a shell reports it; 124 after walltime */
    char *out_dir;         /* where outputs were copied, or NULL */
    char **outputs;        /* what was collected, relative paths */
    size_t n_outputs;
    char *notes;           /* what the runner said about the job (skipped
                              outputs, failed scrubs); may be NULL */
    struct runner_device *devices;
    size_t n_devices;
    int64_t start_us, end_us;   /* wall clock */
    uint64_t duration_us;       /* monotonic, of the command */
    double cpu_seconds;
    uint64_t max_rss_bytes;
    uint64_t bytes_in, bytes_out;
    double device_seconds;
    int64_t cost_micros;
    char currency[8];
    bool recorded;         /* the usage record was written */
    uint64_t scrub_bytes;  /* device memory scrubbed after the job */
    uint64_t scrub_ns;     /* and the time it took */
    uint64_t stage_ns[STAGE_COUNT];
    enum runner_stage failed_stage;  /* where runner_run failed */
};

/* Returns 0 when the job ran (whatever its status: see result), or a
 * negative errno when it could not: -EBADMSG/-EFBIG/-EINVAL the bundle or
 * manifest, -ENODEV no device can satisfy the request, -EBUSY devices
 * busy, -EPERM not permitted, -ECANCELED cancelled before it started,
 * anything else an internal failure; the message is in *e. */
int runner_run(struct node *node, const struct runner_opts *o,
               struct runner_result *res, struct err *e);

void runner_result_free(struct runner_result *res);

/* One line saying what holds a job's memory, cpus, processes and disk on
 * this host (surplusd's start-up log). */
void runner_limits_describe(const struct config *cf, char *buf, size_t len);

/* Whether device `id` of accelerator `plugin` ("accelerator/sim") was
 * drained after a failed scrub or health check
 * (state_dir/drained/<plugin>-<id>), and why. */
bool runner_device_drained(const struct config *cf, const char *plugin,
                           const char *id, char *why, size_t len);

/* A fresh random job id (RUNNER_ID_LEN hex digits). */
void runner_new_id(char buf[RUNNER_ID_LEN + 1]);

/* The cost of a run under cf's pricing, in millionths of
 * pricing.currency: cpu_hour per CPU hour, plus, for each device, the
 * hourly rate of the first pricing.gpu entry whose model pattern matches
 * its model, for the run's duration. */
int64_t runner_cost_micros(const struct config *cf, double cpu_seconds,
                           uint64_t duration_us, const char *const *models,
                           size_t n);

#endif
