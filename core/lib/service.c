/*
 * service.c - surplusd's jobs: submission, the queue, the scheduler
 * thread, one thread per running job (each calls runner_run), cancel,
 * drain and queries.
 *
 * The job store is the truth: every state change is written there before
 * it is acted on.  In memory are only what the scheduler needs between
 * rounds (the queue in submission order, the running jobs and the device
 * inventory), rebuilt from the store at start.
 */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <surplus/surplus.h>

#include "bundle.h"
#include "calls.h"
#include "jobstore.h"
#include "log.h"
#include "node.h"
#include "quota.h"
#include "recovery.h"
#include "retention.h"
#include "runner.h"
#include "scheduler.h"
#include "sha256.h"
#include "units.h"

#define LATENCY_BUCKETS 12
static const double latency_le[LATENCY_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30};

struct dev {
    int group;          /* index of the accelerator plugin */
    char *id, *model;
    uint64_t memory;
    bool healthy;
    char *reason;
    char *holder;       /* job id while leased */
};

struct active {
    struct active *next;
    struct service *s;
    char id[JOBSTORE_ID_LEN + 1];
    char record_id[64];  /* <id>-<start time>: one record per attempt */
    char *tenant;
    uint32_t gpus;
    uint64_t end_ms;
    int64_t submitted_us, started_us;
    int cancel_fd;
    bool requeue;       /* stopped by a drain: back to the queue */
    bool completing;    /* its outcome is persisted (job_ended) */
    int group;
    char **dev_ids;
    size_t n_dev;
    char *dev_text;     /* its devices as the store keeps them, written
                           with its start */
    uint64_t held;      /* its outputs and log, admitted under its tenant's
                           storage_quota and not yet counted by the store */
    pthread_t thread;
};

struct qjob {
    char id[JOBSTORE_ID_LEN + 1];
    char *tenant, *model;
    uint32_t gpus;
    uint64_t gpu_memory, walltime_ms;
    int64_t submitted_us;
    /* Why it waits, from the last scheduling pass (none before the
     * first): the job JSON's reason and reason_code while queued. */
    enum sched_wait_code wait;
    char *wait_reason;
    bool head;          /* it holds the reservation */
};

struct tenant {
    char *name;
    char token[65];     /* token_sha256, or "" */
    uint32_t max_gpus;
    uint32_t max_running;
    bool has_retention;
    uint64_t retention_ms;
    uint64_t max_queued;
    uint64_t pending;   /* submissions past the max_queued check, not
                           yet in the queue (or refused) */
};

/* A submission with an idempotency key, from its start until its job is
 * in the store (or it failed). */
struct keyed {
    struct keyed *next;
    char *tenant, *key;
};

struct service {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct config *cf;       /* a private copy of what is used */
    const struct config *cf_in;
    struct node *node;
    struct jobstore *js;
    struct quota *quota;     /* tenants' storage_quota */
    char spool[4200];
    char pending[4200];  /* state_dir/pending: bundles put, jobs not yet in */
    struct dev *devs;
    size_t n_devs;
    struct qjob *queue;
    size_t n_queue;
    struct active *running;
    size_t n_running;
    struct tenant *tenants;
    size_t n_tenants;
    struct keyed *keyed;     /* submissions with a key, under way */
    char metrics_token[65];  /* api.metrics_token_sha256, or "" */
    bool draining, stopping, started;
    uint64_t wake_gen;
    int64_t head_at_us;  /* when the head is expected to start; 0: not
                            known */
    pthread_t sched;
    /* The retention sweeper: its own condition, so that waking it never
     * takes a wake-up meant for the scheduler. */
    pthread_t sweeper;
    pthread_cond_t sweep_cv;
    bool sweep_due;
    uint64_t retention_ms;   /* the default; tenants may have their own */
    /* metrics */
    uint64_t bundle_bytes, submitted, replayed, finished[JOB_STATE_COUNT];
    uint64_t lat_count, lat_bucket[LATENCY_BUCKETS];
    double lat_sum, scrub_seconds;
};

static int64_t wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- tenants ------------------------------------------------------------- */

static void tenants_free(struct tenant *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i].name);
    free(t);
}

static struct tenant *tenant_find(struct service *s, const char *name);

static int tenants_load(struct service *s, const struct config *cf)
{
    struct tenant *t = calloc(cf->n_tenants + 1, sizeof *t);

    if (t == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < cf->n_tenants; i++) {
        t[i].name = strdup(cf->tenants[i].name);
        if (cf->tenants[i].token_sha256)
            snprintf(t[i].token, sizeof t[i].token, "%s",
                     cf->tenants[i].token_sha256);
        t[i].max_gpus = (uint32_t)cf->tenants[i].max_gpus;
        t[i].max_queued = (uint64_t)cf->tenants[i].max_queued;
        t[i].max_running = (uint32_t)cf->tenants[i].max_running;
        t[i].has_retention = cf->tenants[i].has_retention;
        t[i].retention_ms = cf->tenants[i].retention_ms;
    }
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < cf->n_tenants; i++) {
        const struct tenant *old = tenant_find(s, t[i].name);
        t[i].pending = old ? old->pending : 0;
    }
    tenants_free(s->tenants, s->n_tenants);
    snprintf(s->metrics_token, sizeof s->metrics_token, "%s",
             cf->api.metrics_token_sha256 ? cf->api.metrics_token_sha256
                                          : "");
    s->tenants = t;
    s->n_tenants = cf->n_tenants;
    s->cf->limits = cf->limits;
    s->retention_ms = cf->retention_ms;
    pthread_mutex_unlock(&s->mu);
    return quota_load(s->quota, cf);
}

static uint64_t retention_locked(struct service *s, const char *tenant)
{
    const struct tenant *t = tenant ? tenant_find(s, tenant) : NULL;

    return t && t->has_retention ? t->retention_ms : s->retention_ms;
}

static uint64_t retention_of(void *arg, const char *tenant)
{
    struct service *s = arg;
    uint64_t ms;

    pthread_mutex_lock(&s->mu);
    ms = retention_locked(s, tenant);
    pthread_mutex_unlock(&s->mu);
    return ms;
}

static struct tenant *tenant_find(struct service *s, const char *name)
{
    for (size_t i = 0; name && i < s->n_tenants; i++)
        if (strcmp(s->tenants[i].name, name) == 0)
            return &s->tenants[i];
    return NULL;
}

/* Returns a pointer into the tenant table, stable until a reload; the
 * caller copies it. */
const char *service_tenant_for_token(struct service *s, const char *token)
{
    char hex[65];
    const char *found = NULL;

    sha256_hex(token, strlen(token), hex);
    pthread_mutex_lock(&s->mu);
    /* Every tenant is compared, each in constant time. */
    for (size_t i = 0; i < s->n_tenants; i++)
        if (s->tenants[i].token[0] &&
            const_time_eq(s->tenants[i].token, hex, 64))
            found = s->tenants[i].name;
    pthread_mutex_unlock(&s->mu);
    return found;
}

/* sha256(token + ending) against every tenant's token_sha256, in
 * constant time like service_tenant_for_token. */
static bool token_hash_with(struct service *s, const char *token,
                            const char *ending, char *name, size_t len)
{
    struct sha256_ctx c;
    char hex[65];
    bool found = false;

    sha256_init(&c);
    sha256_update(&c, token, strlen(token));
    sha256_update(&c, ending, strlen(ending));
    sha256_final_hex(&c, hex);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_tenants; i++)
        if (s->tenants[i].token[0] &&
            const_time_eq(s->tenants[i].token, hex, 64) && !found) {
            snprintf(name, len, "%s", s->tenants[i].name);
            found = true;
        }
    pthread_mutex_unlock(&s->mu);
    return found;
}

bool service_token_hashed_with_newline(struct service *s, const char *token,
                                       char *name, size_t len)
{
    return token_hash_with(s, token, "\n", name, len) ||
           token_hash_with(s, token, "\r\n", name, len);
}

bool service_metrics_token(struct service *s, const char *token)
{
    char hex[65];
    bool r;

    sha256_hex(token, strlen(token), hex);
    pthread_mutex_lock(&s->mu);
    r = s->metrics_token[0] && const_time_eq(s->metrics_token, hex, 64);
    pthread_mutex_unlock(&s->mu);
    return r;
}

bool service_tenant_exists(struct service *s, const char *name)
{
    bool r;

    pthread_mutex_lock(&s->mu);
    r = tenant_find(s, name) != NULL;
    pthread_mutex_unlock(&s->mu);
    return r;
}

uint64_t service_max_bundle_bytes(struct service *s)
{
    return s->cf->limits.max_bundle_bytes;
}

const char *service_spool_dir(struct service *s)
{
    return s->spool;
}

bool service_draining(struct service *s)
{
    return __atomic_load_n(&s->draining, __ATOMIC_RELAXED);
}

/* ---- devices --------------------------------------------------------------- */

struct disc {
    struct service *s;
    int group;
};

static int on_device(void *arg, const struct surplus_device *d)
{
    struct disc *w = arg;
    struct service *s = w->s;
    struct dev *n = realloc(s->devs, (s->n_devs + 1) * sizeof *n);

    if (n == NULL)
        return -ENOMEM;
    s->devs = n;
    n = &s->devs[s->n_devs++];
    memset(n, 0, sizeof *n);
    n->group = w->group;
    n->id = node_device_id(s->node, (size_t)w->group, d->id ? d->id : "?");
    n->model = strdup(d->model ? d->model : "?");
    n->memory = d->memory_bytes;
    n->healthy = d->healthy;
    n->reason = d->reason ? strdup(d->reason) : NULL;
    return n->id && n->model ? 0 : -ENOMEM;
}

/* The devices of every accelerator group.  Their ids are the node's
 * (node_device_id): two groups that report one id refuse the start, since
 * leases, drain files and the job store name a device by it. */
static int inventory(struct service *s, struct err *e)
{
    for (size_t i = 0; i < s->node->n_accelerators; i++) {
        struct plugin *p = s->node->accelerators[i];
        struct disc w = {s, (int)i};
        struct err pe = {0};
        int r = accelerator_discover(p, on_device, &w, &pe);

        if (r == -ENOMEM)
            return err_set(e, r, "out of memory");
        if (r < 0) {
            plugin_error(p, r, &pe, "discover");
            log_msg(SURPLUS_LOG_WARNING, "%s", pe.msg);
        }
    }
    for (size_t i = 0; i < s->n_devs; i++)
        for (size_t k = i + 1; k < s->n_devs; k++)
            if (strcmp(s->devs[i].id, s->devs[k].id) == 0) {
                const struct plugin_conf *a =
                    &s->cf->accelerators[s->devs[i].group];
                const struct plugin_conf *b =
                    &s->cf->accelerators[s->devs[k].group];

                return err_set(e, -EINVAL,
                               "%s: accelerators[%d] (%s) and %s: "
                               "accelerators[%d] (%s) both have a device "
                               "'%s'; device ids must be unique on the node: "
                               "give one of the groups a 'name'",
                               a->settings.where ? a->settings.where : "?",
                               s->devs[i].group, a->plugin,
                               b->settings.where ? b->settings.where : "?",
                               s->devs[k].group, b->plugin, s->devs[i].id);
            }
    log_msg(SURPLUS_LOG_INFO, "%zu device(s) from %zu accelerator plugin(s)",
            s->n_devs, s->node->n_accelerators);
    return 0;
}

/* A device that failed its scrub or health check (the runner marks it). */
static bool drained(struct service *s, const struct dev *d, char *why,
                    size_t len)
{
    return runner_device_drained(
        s->cf, node_plugin_label(s->node->accelerators[d->group]), d->id, why,
        len);
}

/* With the lock held: whether the caller may see which job holds a
 * device (its own, or any for the admin acting as itself); job ids of
 * other tenants are theirs to know. */
static bool holder_visible(struct service *s, const struct caller *c,
                           const char *job)
{
    if (c->admin && c->tenant == NULL)
        return true;
    for (struct active *a = s->running; a; a = a->next)
        if (strcmp(a->id, job) == 0)
            return strcmp(a->tenant, c->tenant ? c->tenant : "local") == 0;
    return false;
}

int service_devices(struct service *s, const struct caller *c, json_t **ret,
                    struct err *e)
{
    json_t *a = json_array();
    char why[512];

    (void)e;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_devs; i++) {
        struct dev *d = &s->devs[i];
        const char *holder = d->holder && holder_visible(s, c, d->holder)
                                 ? d->holder
                                 : NULL;
        bool dr = drained(s, d, why, sizeof why);
        const char *state = dr            ? "drained"
                            : !d->healthy ? "unhealthy"
                            : d->holder   ? "leased"
                                          : "free";

        json_array_append_new(
            a, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s?, s:s?}", "id", d->id,
                         "plugin",
                         node_plugin_label(s->node->accelerators[d->group]),
                         "model", d->model, "memory_bytes",
                         (json_int_t)d->memory, "state", state, "job",
                         holder, "reason",
                         dr ? why : (d->healthy ? NULL : d->reason)));
    }
    pthread_mutex_unlock(&s->mu);
    *ret = a;
    return 0;
}

/* ---- jobs as JSON ---------------------------------------------------------- */

static void time_text(int64_t us, char *buf, size_t len)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;

    gmtime_r(&t, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(us % 1000000));
}

static json_t *time_json(int64_t us)
{
    char buf[64];

    if (us <= 0)
        return json_null();
    time_text(us, buf, sizeof buf);
    return json_string(buf);
}

/* ---- why a queued job waits ------------------------------------------------ */

struct wait_note {
    char id[JOBSTORE_ID_LEN + 1];
    const char *code;   /* static */
    char *reason;
};

/* With the lock held: why queued job `q` waits, or false when no pass
 * has looked at it yet.  The head's expected start is added to its
 * reason, and to the reason of jobs that would delay it. */
static bool wait_of(struct service *s, const struct qjob *q,
                    struct wait_note *ret)
{
    char at[64] = "", *text;

    memcpy(ret->id, q->id, sizeof ret->id);
    if (s->draining) {
        ret->code = "draining";
        ret->reason = strdup("the node is draining: no job starts until "
                             "surplusd is started again");
        return ret->reason != NULL;
    }
    if (q->wait == SCHED_WAIT_NONE || q->wait_reason == NULL)
        return false;
    ret->code = sched_wait_code_name(q->wait);
    if (s->head_at_us > 0 &&
        ((q->head && q->wait == SCHED_WAIT_RESOURCES) ||
         q->wait == SCHED_WAIT_RESERVATION)) {
        time_text(s->head_at_us, at, sizeof at);
        if (asprintf(&text, "%s (%s %s)", q->wait_reason,
                     q->head ? "expected free at" : "the reservation starts at",
                     at) < 0)
            text = NULL;
    } else {
        text = strdup(q->wait_reason);
    }
    ret->reason = text;
    return text != NULL;
}

static void wait_json(json_t *j, const struct wait_note *w)
{
    json_object_set_new(j, "reason", json_string(w->reason));
    json_object_set_new(j, "reason_code", json_string(w->code));
}

static int by_wait_id(const void *a, const void *b)
{
    return strcmp(((const struct wait_note *)a)->id,
                  ((const struct wait_note *)b)->id);
}

static json_t *job_json(const struct job_row *r)
{
    json_t *devs = json_loads(r->devices ? r->devices : "[]", 0, NULL);

    return json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:s?, s:i, s:I, "
        "s:{s:i, s:s, s:I, s:I}, s:b, s:s?}",
        "id", r->id, "tenant", r->tenant, "name", r->name, "state",
        job_state_name(r->state), "exit_status",
        r->exit_status >= 0 ? json_integer(r->exit_status) : json_null(),
        "submitted_at", time_json(r->submitted_us), "started_at",
        time_json(r->started_us), "ended_at", time_json(r->ended_us),
        "devices", devs ? devs : json_array(), "reason", r->reason, "seq",
        (int)r->seq, "bundle_bytes", (json_int_t)r->bundle_bytes,
        "resources", "gpus", (int)r->gpus, "model",
        r->model ? r->model : "*", "gpu_memory_bytes",
        (json_int_t)r->gpu_memory, "walltime_ms",
        (json_int_t)r->walltime_ms, "requeue", r->requeue,
        /* Machine-readable for `submit --wait` (exit 69): failed without
         * ever starting because no device here can serve it. */
        "reason_code",
        r->state != JOB_FAILED || r->started_us > 0 ? NULL
        : sched_reason_no_device(r->reason)         ? "no_device"
        : sched_reason_over_max_gpus(r->reason)     ? "exceeds_max_gpus"
                                                    : NULL);
}

/* The job, if the caller may see it: -ENOENT otherwise, as if absent. */
static int job_visible(struct service *s, const struct caller *c,
                       const char *id, struct job_row *row, struct err *e)
{
    int r = jobstore_get(s->js, id, row, e);

    if (r == -ENOENT || (r == 0 && c->tenant && !c->admin &&
                         strcmp(row->tenant, c->tenant) != 0) ||
        (r == 0 && c->admin && c->tenant &&
         strcmp(row->tenant, c->tenant) != 0)) {
        if (r == 0)
            job_row_free(row);
        return err_set(e, -ENOENT, "no job %s", id);
    }
    return r;
}

static int on_transition(void *arg, const struct job_transition *t)
{
    json_t *o = arg;

    if (t->to == JOB_RUNNING)
        json_object_set_new(o, "attempts",
                            json_integer(json_integer_value(
                                             json_object_get(o, "attempts")) +
                                         1));
    json_array_append_new(json_object_get(o, "history"),
                          json_pack("{s:s, s:o, s:s?}", "state",
                                    job_state_name(t->to), "at",
                                    time_json(t->time_us), "reason",
                                    t->reason));
    return 0;
}

/* One job, with its history: how many times it started (a requeue after a
 * drain or a restart runs it again) and each state it went through. */
int service_job(struct service *s, const struct caller *c, const char *id,
                json_t **ret, struct err *e)
{
    struct job_row row = {0};
    json_t *j;
    int r = job_visible(s, c, id, &row, e);

    if (r < 0)
        return r;
    j = job_json(&row);
    if (row.state == JOB_QUEUED) {
        struct wait_note w = {0};

        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < s->n_queue; i++)
            if (strcmp(s->queue[i].id, row.id) == 0) {
                if (wait_of(s, &s->queue[i], &w))
                    wait_json(j, &w);
                break;
            }
        pthread_mutex_unlock(&s->mu);
        free(w.reason);
    }
    json_object_set_new(j, "files_removed",
                        json_boolean(retention_expired(
                            retention_of(s, row.tenant), &row, wall_us())));
    /* What it holds in storage, which its tenant's storage_quota counts;
     * null while not known. */
    json_object_set_new(j, "stored_bytes",
                        row.stored_bytes >= 0
                            ? json_integer((json_int_t)row.stored_bytes)
                            : json_null());
    job_row_free(&row);
    json_object_set_new(j, "attempts", json_integer(0));
    json_object_set_new(j, "history", json_array());
    if ((r = jobstore_transitions(s->js, id, on_transition, j, e)) < 0) {
        json_decref(j);
        return r;
    }
    *ret = j;
    return 0;
}

/* The list is written out row by row: a node keeps thousands of jobs,
 * and a JSON tree of all of them would cost several times the text. */
struct list_out {
    FILE *f;
    size_t n;
    int64_t since_us;
    struct wait_note *waits;  /* the queued jobs', by id */
    size_t n_waits;
};

static int on_row(void *arg, const struct job_row *row)
{
    struct list_out *o = arg;
    json_t *j;
    int r;

    if (row->submitted_us < o->since_us)
        return 0;
    if ((j = job_json(row)) == NULL)
        return -ENOMEM;
    if (row->state == JOB_QUEUED && o->n_waits > 0) {
        struct wait_note key = {0}, *w;

        memcpy(key.id, row->id, sizeof key.id);
        w = bsearch(&key, o->waits, o->n_waits, sizeof *o->waits, by_wait_id);
        if (w != NULL)
            wait_json(j, w);
    }
    if (o->n++ > 0)
        fputc(',', o->f);
    r = json_dumpf(j, o->f, JSON_COMPACT);
    json_decref(j);
    return r < 0 ? -ENOMEM : 0;
}

int service_jobs(struct service *s, const struct caller *c,
                 const struct jobs_query *q, char **ret, size_t *ret_len,
                 struct err *e)
{
    struct job_filter f = {.tenant = c->tenant};
    struct list_out o = {.since_us = INT64_MIN};
    char *buf = NULL, name[96];
    size_t len = 0;
    int r;

    if (q != NULL) {
        if (q->tenant != NULL && c->tenant != NULL &&
            strcmp(q->tenant, c->tenant) != 0)
            return err_set(e, -EPERM, "tenant '%s' may list only its own "
                                      "jobs (asked for tenant '%s')",
                           c->tenant, err_escape(q->tenant, name,
                                                 sizeof name));
        if (q->tenant != NULL && c->tenant == NULL && !c->admin)
            return err_set(e, -EPERM, "only root may list another "
                                      "tenant's jobs");
        if (q->tenant != NULL)
            f.tenant = q->tenant;
        f.states = q->states;
        o.since_us = q->since_us;
    }
    /* Why each queued job waits, read once under the lock. */
    pthread_mutex_lock(&s->mu);
    if ((f.states == 0 || (f.states & JOB_STATE_BIT(JOB_QUEUED))) &&
        s->n_queue > 0 &&
        (o.waits = calloc(s->n_queue, sizeof *o.waits)) != NULL)
        for (size_t i = 0; i < s->n_queue; i++)
            if (wait_of(s, &s->queue[i], &o.waits[o.n_waits]))
                o.n_waits++;
    pthread_mutex_unlock(&s->mu);
    if (o.n_waits > 1)
        qsort(o.waits, o.n_waits, sizeof *o.waits, by_wait_id);
    if ((o.f = open_memstream(&buf, &len)) == NULL) {
        r = err_set(e, -ENOMEM, "out of memory");
        goto out;
    }
    fputc('[', o.f);
    r = jobstore_list(s->js, &f, on_row, &o, e);
    fputc(']', o.f);
    if (fclose(o.f) != 0 && r >= 0)
        r = -ENOMEM;
    if (r < 0) {
        if (r == -ENOMEM)
            err_set(e, r, "out of memory");
        free(buf);
        goto out;
    }
    *ret = buf;
    *ret_len = len;
out:
    for (size_t i = 0; i < o.n_waits; i++)
        free(o.waits[i].reason);
    free(o.waits);
    return r < 0 ? r : 0;
}

/* ---- submit ----------------------------------------------------------------- */

/* With the lock held.  The generation lets the scheduler see a wake that
 * came while it had the lock dropped. */
static void wake(struct service *s)
{
    s->wake_gen++;
    pthread_cond_broadcast(&s->cv);
    /* A job may have ended: its bundle can go. */
    s->sweep_due = true;
    pthread_cond_signal(&s->sweep_cv);
}

/* With the lock held: gives back a submission's place under max_queued,
 * once (it is in the queue now, or was refused). */
static void unreserve(struct service *s, const char *tenant, bool *reserved)
{
    struct tenant *t = tenant_find(s, tenant);

    if (*reserved && t != NULL && t->pending > 0)
        t->pending--;
    *reserved = false;
}

/*
 * A bundle is put into storage before its job goes into the store, and a
 * daemon killed between the two would leave an object that no job refers
 * to, for ever.  So each submission first writes state_dir/pending/<id>
 * (synced), and removes it once the job is in the store or the object is
 * gone again; at start, the bundle of each pending id that has no job is
 * removed.  Listing the storage for objects without a job instead would
 * also take those of `surplus run` and of other daemons that share the
 * store, which have no job here.
 */
static int pending_add(struct service *s, const char *id)
{
    char path[4300];
    int fd, dfd, r = 0;

    snprintf(path, sizeof path, "%s/%s", s->pending, id);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        r = -errno;
    close(fd);
    dfd = open(s->pending, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r == 0 && (dfd < 0 || fsync(dfd) < 0))
        r = -errno;
    if (dfd >= 0)
        close(dfd);
    if (r < 0)
        unlink(path);
    return r;
}

/* A leftover (this fails, or the daemon dies first) is only looked at
 * again at the next start. */
static void pending_done(struct service *s, const char *id)
{
    char path[4300];

    snprintf(path, sizeof path, "%s/%s", s->pending, id);
    if (unlink(path) < 0 && errno != ENOENT)
        log_msg(SURPLUS_LOG_WARNING, "%s: %s", path, strerror(errno));
}

/* At start, before any submission: the bundles of submissions that did
 * not get their job into the store are removed. */
static void pending_sweep(struct service *s)
{
    DIR *d = opendir(s->pending);
    struct dirent *de;
    uint64_t removed = 0;

    if (d == NULL) {
        log_msg(SURPLUS_LOG_WARNING, "%s: %s", s->pending, strerror(errno));
        return;
    }
    while ((de = readdir(d)) != NULL) {
        struct job_row row;
        struct err e = {0};
        char key[64];
        int r;

        if (de->d_name[0] == '.')
            continue;
        if (!jobstore_id_valid(de->d_name)) {
            log_msg(SURPLUS_LOG_WARNING, "%s/%s: not a job id; left alone",
                    s->pending, de->d_name);
            continue;
        }
        r = jobstore_get(s->js, de->d_name, &row, &e);
        if (r == 0) {
            job_row_free(&row);
        } else if (r == -ENOENT) {
            snprintf(key, sizeof key, "jobs/%.16s/bundle", de->d_name);
            r = storage_remove(s->node->storage, key, &e);
            if (r < 0 && r != -ENOENT) {
                plugin_error(s->node->storage, r, &e, "remove");
                log_msg(SURPLUS_LOG_WARNING, "bundle of a submission cut "
                        "short not removed (tried again at the next "
                        "start): %s", e.msg);
                continue;
            }
            if (r == 0)
                removed++;
        } else {
            log_msg(SURPLUS_LOG_WARNING, "%s", e.msg);
            continue;
        }
        pending_done(s, de->d_name);
    }
    closedir(d);
    if (removed)
        log_msg(SURPLUS_LOG_WARNING, "after a restart: %llu bundle(s) of "
                "submissions cut short removed from storage",
                (unsigned long long)removed);
}

/* ---- storage quota ---------------------------------------------------------- */

/* What `tenant` holds in storage and may hold, as GET /v1/quota and a 507
 * say it. */
static json_t *quota_json(const char *tenant, const struct quota_use *u)
{
    uint64_t used = u->stored + u->held;

    return json_pack("{s:s, s:I, s:o, s:o}", "tenant", tenant,
                     "storage_bytes", (json_int_t)used,
                     "storage_quota_bytes",
                     u->quota ? json_integer((json_int_t)u->quota)
                              : json_null(),
                     "storage_available_bytes",
                     u->quota ? json_integer((json_int_t)(used < u->quota
                                                              ? u->quota - used
                                                              : 0))
                              : json_null());
}

/* A bundle of `bytes` that does not fit: the message says so, and
 * *ret_detail (for the JSON error) what the tenant holds. */
static int bundle_over_quota(const char *tenant, uint64_t bytes,
                             const struct quota_use *u, json_t **ret_detail,
                             struct err *e)
{
    char size[32], why[sizeof e->msg];

    if (ret_detail != NULL &&
        (*ret_detail = quota_json(tenant, u)) != NULL)
        json_object_set_new(*ret_detail, "bundle_bytes",
                            json_integer((json_int_t)bytes));
    snprintf(why, sizeof why, "%s", e->msg);
    return err_set(e, -ENOSPC, "%s; a bundle of %s (%llu bytes) does not "
                               "fit",
                   why, units_format_size(bytes, size, sizeof size),
                   (unsigned long long)bytes);
}

int service_storage_check(struct service *s, const struct caller *c,
                          uint64_t bytes, json_t **ret_detail,
                          struct err *e)
{
    const char *tenant = c->tenant ? c->tenant : "local";
    struct quota_use u;
    int r = quota_check(s->quota, tenant, bytes, &u, e);

    if (r == -ENOSPC)
        return bundle_over_quota(tenant, bytes, &u, ret_detail, e);
    return r;
}

/* runner_opts.store_admit: a job's outputs and log count against its
 * tenant's storage_quota from before they are stored until the store
 * counts them, at the job's end (job_thread). */
static int job_store_admit(void *arg, uint64_t bytes, bool must, char *why,
                           size_t len)
{
    struct active *a = arg;
    struct err e = {0};
    int r = quota_admit(a->s->quota, a->tenant, bytes, must, NULL, &e);

    if (r == -ENOSPC) {
        snprintf(why, len, "%s", e.msg);
        return r;
    }
    if (r < 0) {
        /* What the tenant holds could not be read: the output is not
         * lost for that. */
        log_msg(SURPLUS_LOG_WARNING, "job %s: storage quota not checked: %s",
                a->id, e.msg);
        return 0;
    }
    a->held += bytes;
    return 0;
}

/* What job `a` holds in storage now that its runner is done: counted
 * from storage, into *u for the transition that ends (or requeues) it. */
static void count_stored(struct service *s, const struct active *a,
                         struct job_update *u)
{
    struct err e = {0};
    uint64_t n;

    if (quota_count_job(s->node->storage, a->id, &n, &e) < 0) {
        log_msg(SURPLUS_LOG_WARNING, "job %s: its outputs and log are not "
                                     "counted against its tenant's "
                                     "storage_quota: %s",
                a->id, e.msg);
        return;
    }
    u->set |= JOB_UPDATE_STORED_BYTES;
    u->stored_bytes = n;
}

/* The tenant a submission's job is for: root alone submits as "local". */
static const char *submit_tenant(const struct caller *c)
{
    return c->tenant ? c->tenant : "local";
}

/*
 * Idempotency keys.  The store's UNIQUE (tenant, key) alone would let two
 * requests with one key both upload and store their bundle, and the
 * second find out only at its insert; so a request with a key claims it
 * as soon as its headers are in, for as long as it runs, and a second
 * one meanwhile is told that the first is under way (409).  Claimed
 * first, then looked up (service_submit): a request that finished before
 * the claim has its key in the store by then.
 */
int service_key_claim(struct service *s, const struct caller *c,
                      const char *key, struct err *e)
{
    const char *tenant = submit_tenant(c);
    struct keyed *k;
    int r = 0;

    pthread_mutex_lock(&s->mu);
    for (k = s->keyed; k != NULL; k = k->next)
        if (strcmp(k->tenant, tenant) == 0 && strcmp(k->key, key) == 0)
            break;
    if (k != NULL) {
        r = err_set(e, -EALREADY, "a request with this Idempotency-Key is "
                                  "in progress; try again once it has been "
                                  "answered");
    } else if ((k = calloc(1, sizeof *k)) == NULL ||
               (k->tenant = strdup(tenant)) == NULL ||
               (k->key = strdup(key)) == NULL) {
        if (k != NULL)
            free(k->tenant);
        free(k);
        r = err_set(e, -ENOMEM, "out of memory");
    } else {
        k->next = s->keyed;
        s->keyed = k;
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

void service_key_release(struct service *s, const struct caller *c,
                         const char *key)
{
    const char *tenant = submit_tenant(c);

    pthread_mutex_lock(&s->mu);
    for (struct keyed **p = &s->keyed; *p != NULL; p = &(*p)->next) {
        struct keyed *k = *p;

        if (strcmp(k->tenant, tenant) == 0 && strcmp(k->key, key) == 0) {
            *p = k->next;
            free(k->tenant);
            free(k->key);
            free(k);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* The answer to a request whose key the store has: the job the key stands
 * for, if the request is the one that made it.  -ENOENT when the store
 * does not have the key. */
static int key_replay(struct service *s, const char *tenant,
                      const struct submit_opts *o, json_t **ret,
                      struct err *e)
{
    char id[JOBSTORE_ID_LEN + 1], was[65];
    int r = jobstore_key_find(s->js, tenant, o->idempotency_key, id, was, e);

    if (r < 0)
        return r;
    if (!const_time_eq(was, o->request_sha256, 64))
        return err_set(e, -EBADMSG, "Idempotency-Key reused with a "
                                    "different request: it stands for job "
                                    "%s, submitted with another bundle",
                       id);
    r = service_job(s, &(struct caller){.admin = true}, id, ret, e);
    if (r == 0) {
        pthread_mutex_lock(&s->mu);
        s->replayed++;
        pthread_mutex_unlock(&s->mu);
    }
    return r;
}

int service_submit(struct service *s, const struct caller *c, int fd,
                   uint64_t bytes, const struct submit_opts *o, json_t **ret,
                   bool *ret_replayed, struct err *e)
{
    const char *key = o ? o->idempotency_key : NULL;
    const char *tenant = submit_tenant(c);
    struct bundle_summary sum = {0};
    struct job_row row = {0};
    char path[64], bundle_key[64];
    struct tenant *t;
    uint64_t queued = 0;
    uint32_t max_gpus = 0;
    bool reserved = false, pending = false;
    struct quota_use use;
    uint64_t held = 0;
    int r;

    *ret_replayed = false;
    if (service_draining(s)) {
        close(fd);
        return err_set(e, -ESHUTDOWN, "the node is draining");
    }
    /* A retry of a submission that made its job gets that job, before
     * any quota is counted: it adds nothing.  Its upload is dropped with
     * fd (an unnamed file in the spool); storage never sees it. */
    if (key != NULL) {
        r = key_replay(s, tenant, o, ret, e);
        if (r == 0)
            *ret_replayed = true;
        if (r != -ENOENT)
            goto out;
        err_clear(e);
    }
    /* Counted and reserved in one step: submissions that pass the check
     * together must not overshoot max_queued between it and the insert. */
    pthread_mutex_lock(&s->mu);
    if ((t = tenant_find(s, tenant)) != NULL) {
        max_gpus = t->max_gpus;
        queued = t->pending;
        for (size_t i = 0; i < s->n_queue; i++)
            if (strcmp(s->queue[i].tenant, tenant) == 0)
                queued++;
        if (queued < t->max_queued) {
            t->pending++;
            reserved = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (t != NULL && !reserved) {
        r = err_set(e, -EDQUOT, "tenant '%s' has %llu job(s) queued, "
                                "its max_queued",
                    tenant, (unsigned long long)queued);
        goto out;
    }
    /* Held from here until the job's row counts the bundle (or it is
     * refused): submissions at once cannot share the same room. */
    if ((r = quota_admit(s->quota, tenant, bytes, false, &use, e)) < 0) {
        if (r == -ENOSPC)
            r = bundle_over_quota(tenant, bytes, &use, ret, e);
        goto out;
    }
    held = bytes;
    /* Checked from the spooled copy: every rule of surplus-bundle(5). */
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if ((r = bundle_check(path, s->cf, &sum, e)) < 0) {
        if (r != -ENOMEM && r != -EIO)
            r = -EBADMSG;
        goto out;
    }
    /* Never satisfiable, unlike a full queue: not "try again later". */
    if (reserved && sum.spec->resources.gpus > max_gpus) {
        r = err_set(e, -ERANGE, "job '%s' asks for %u GPU(s); tenant '%s' "
                                "may lease at most %u at once (the "
                                "tenant's max_gpus = %u), so it can never "
                                "run",
                    sum.spec->name, sum.spec->resources.gpus, tenant,
                    max_gpus, max_gpus);
        *ret = json_pack("{s:s, s:i, s:i}", "reason_code",
                         "exceeds_max_gpus", "max_gpus", (int)max_gpus,
                         "gpus", (int)sum.spec->resources.gpus);
        goto out;
    }
    runner_new_id(row.id);
    snprintf(bundle_key, sizeof bundle_key, "jobs/%s/bundle", row.id);
    if ((r = pending_add(s, row.id)) < 0) {
        r = err_set(e, r, "%s/%s: %s", s->pending, row.id, strerror(-r));
        goto out;
    }
    pending = true;
    if (lseek(fd, 0, SEEK_SET) < 0)
        r = err_set(e, -errno, "%s", strerror(errno));
    else
        r = storage_put(s->node->storage, bundle_key, fd, e);
    if (r < 0) {
        r = plugin_error(s->node->storage, r, e, "put the bundle");
        goto out;
    }
    row.tenant = (char *)tenant;
    row.name = sum.spec->name;
    row.state = JOB_QUEUED;
    row.exit_status = -1;
    row.submitted_us = wall_us();
    row.devices = (char *)"[]";
    row.bundle_key = bundle_key;
    row.bundle_bytes = bytes;
    row.gpus = sum.spec->resources.gpus;
    row.model = sum.spec->resources.model;
    row.gpu_memory = sum.spec->resources.gpu_memory;
    row.cpus = sum.spec->resources.cpus;
    row.memory = sum.spec->resources.memory;
    row.walltime_ms = sum.spec->resources.walltime_ms;
    row.requeue = sum.spec->requeue;
    if ((r = jobstore_insert_keyed(s->js, &row, key,
                                   key ? o->request_sha256 : NULL, e)) < 0) {
        struct err re = {0};
        int rr = storage_remove(s->node->storage, bundle_key, &re);

        /* Left pending: the next start removes it. */
        if (rr < 0 && rr != -ENOENT)
            pending = false;
        /* The claim keeps this daemon's requests with one key apart, so
         * the store has the key only if something else wrote it there;
         * its UNIQUE (tenant, key) still makes that one job, and this
         * request gets it. */
        if (r == -EEXIST && key != NULL) {
            err_clear(e);
            if ((r = key_replay(s, tenant, o, ret, e)) == 0)
                *ret_replayed = true;
        }
        goto out;
    }
    pending_done(s, row.id);
    pending = false;
    quota_release(s->quota, tenant, held);
    held = 0;

    pthread_mutex_lock(&s->mu);
    unreserve(s, tenant, &reserved);
    struct qjob *q = realloc(s->queue, (s->n_queue + 1) * sizeof *q);
    if (q != NULL) {
        s->queue = q;
        q = &s->queue[s->n_queue++];
        memset(q, 0, sizeof *q);
        memcpy(q->id, row.id, sizeof q->id);
        q->tenant = strdup(tenant);
        q->model = strdup(row.model ? row.model : "*");
        q->gpus = row.gpus;
        q->gpu_memory = row.gpu_memory;
        q->walltime_ms = row.walltime_ms;
        q->submitted_us = row.submitted_us;
    }
    s->bundle_bytes += bytes;
    s->submitted++;
    wake(s);
    pthread_mutex_unlock(&s->mu);
    r = service_job(s, &(struct caller){.admin = true}, row.id, ret, e);
out:
    if (pending)
        pending_done(s, row.id);
    quota_release(s->quota, tenant, held);
    if (reserved) {
        pthread_mutex_lock(&s->mu);
        unreserve(s, tenant, &reserved);
        pthread_mutex_unlock(&s->mu);
    }
    close(fd);
    bundle_summary_free(&sum);
    return r;
}

/* ---- running a job ------------------------------------------------------------- */

/* With the lock held: the devices `job` holds are free again. */
static void free_devices(struct service *s, const char *job)
{
    for (size_t i = 0; i < s->n_devs; i++)
        if (s->devs[i].holder && strcmp(s->devs[i].holder, job) == 0) {
            free(s->devs[i].holder);
            s->devs[i].holder = NULL;
        }
}

static void active_free(struct active *a)
{
    close(a->cancel_fd);
    for (size_t i = 0; i < a->n_dev; i++)
        free(a->dev_ids[i]);
    free(a->dev_ids);
    free(a->dev_text);
    free(a->tenant);
    free(a);
}

static enum job_state final_state(const char *state)
{
    return strcmp(state, "succeeded") == 0   ? JOB_SUCCEEDED
           : strcmp(state, "timeout") == 0   ? JOB_TIMEOUT
           : strcmp(state, "cancelled") == 0 ? JOB_CANCELLED
                                             : JOB_FAILED;
}

static const char *final_reason(enum job_state final)
{
    return final == JOB_TIMEOUT     ? "walltime exceeded"
           : final == JOB_CANCELLED ? "cancelled"
                                    : NULL;
}

/* The devices of a result, as the store keeps them; free() it. */
static char *devices_text(const struct runner_result *res)
{
    json_t *devs = json_array();
    char *text;

    for (size_t i = 0; i < res->n_devices; i++)
        json_array_append_new(devs, json_pack("{s:s, s:s, s:s}", "id",
                                              res->devices[i].id, "model",
                                              res->devices[i].model, "plugin",
                                              res->devices[i].plugin));
    text = json_dumps(devs, JSON_COMPACT);
    json_decref(devs);
    return text;
}

/* runner_opts.ended: the command has ended and nothing is billed yet.
 * running -> completing, with what the job ends as and the id of its
 * usage record, is committed first, so that a daemon killed after the
 * record finishes the job from here (recovery_finish) instead of running
 * it again or failing it. */
static int job_ended(void *arg, const struct runner_result *res)
{
    struct active *a = arg;
    enum job_state final = final_state(res->state);
    struct job_update u = {.set = JOB_UPDATE_EXIT_STATUS |
                                  JOB_UPDATE_ENDED_US | JOB_UPDATE_DEVICES |
                                  JOB_UPDATE_REASON | JOB_UPDATE_OUTCOME |
                                  JOB_UPDATE_RECORD_ID,
                           .exit_status = res->exit_status,
                           .ended_us = res->end_us,
                           .reason = final_reason(final),
                           .outcome = final,
                           .record_id = a->record_id};
    struct err e = {0};
    int r;

    if (a->requeue && final == JOB_CANCELLED)
        return 0; /* stopped by a drain: job_thread requeues it */
    if ((u.devices = devices_text(res)) == NULL)
        return -ENOMEM;
    r = jobstore_transition(a->s->js, a->id, JOB_RUNNING, JOB_COMPLETING, &u,
                            &e);
    free((char *)u.devices);
    if (r < 0) {
        log_msg(SURPLUS_LOG_ERR, "job %s: %s", a->id, e.msg);
        return r;
    }
    a->completing = true;
    return 0;
}

static void *job_thread(void *arg)
{
    struct active *a = arg;
    struct service *s = a->s;
    struct runner_opts o = {.tenant = a->tenant, .out_dir = "",
                            .echo_fd = -1, .cancel_fd = a->cancel_fd,
                            .job_id = a->id, .record_id = a->record_id,
                            .ended = job_ended, .ended_arg = a,
                            .store_admit = job_store_admit, .store_arg = a};
    struct runner_result res = {0};
    struct job_update u = {0};
    struct err e = {0};
    char key[64], bundle[64], why[1200];
    enum job_state final;
    int fd, r;

    /* The bundle comes back from storage into an unnamed file. */
    snprintf(key, sizeof key, "jobs/%s/bundle", a->id);
    fd = open(s->spool, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    r = fd < 0 ? err_set(&e, -errno, "%s", strerror(errno))
               : storage_get(s->node->storage, key, fd, &e);
    if (r < 0) {
        plugin_error(s->node->storage, r, &e, "get the bundle");
    } else {
        snprintf(bundle, sizeof bundle, "/proc/self/fd/%d", fd);
        o.bundle = bundle;
        if (a->n_dev) {
            o.accelerator = s->node->accelerators[a->group];
            o.device_ids = (const char *const *)a->dev_ids;
            o.n_device_ids = a->n_dev;
        }
        r = runner_run(s->node, &o, &res, &e);
    }
    if (fd >= 0)
        close(fd);

    u.set = JOB_UPDATE_ENDED_US | JOB_UPDATE_REASON;
    u.ended_us = wall_us();
    count_stored(s, a, &u);
    if (r < 0) {
        final = r == -ECANCELED ? JOB_CANCELLED : JOB_FAILED;
        u.reason = e.msg;
    } else {
        char *devtext = devices_text(&res);

        final = final_state(res.state);
        u.set |= JOB_UPDATE_EXIT_STATUS | JOB_UPDATE_DEVICES |
                 JOB_UPDATE_RECORDED;
        u.exit_status = res.exit_status;
        u.devices = devtext;
        u.recorded = res.recorded;
        u.reason = final_reason(final);
        /* The log or an output was not stored: that is the reason, also
         * for a job that ran out of time or was cancelled. */
        if (res.reason != NULL) {
            if (u.reason != NULL)
                snprintf(why, sizeof why, "%s; %s", u.reason, res.reason);
            else
                snprintf(why, sizeof why, "%s", res.reason);
            u.reason = why;
        }
        if (a->requeue && final == JOB_CANCELLED) {
            /* Stopped by a drain: back in the queue for the next start
             * (this attempt is billed under its own record id). */
            struct job_update q = {.set = JOB_UPDATE_STARTED_US |
                                          JOB_UPDATE_REASON |
                                          JOB_UPDATE_DEVICES |
                                          (u.set & JOB_UPDATE_STORED_BYTES),
                                   .started_us = 0,
                                   .devices = "[]",
                                   .reason = "requeued: the node was "
                                             "draining",
                                   .stored_bytes = u.stored_bytes};
            if (jobstore_transition(s->js, a->id, JOB_RUNNING, JOB_QUEUED, &q,
                                    &e) < 0)
                log_msg(SURPLUS_LOG_ERR, "job %s: %s", a->id, e.msg);
            free(devtext);
            final = JOB_QUEUED;
            goto done;
        }
        if (a->completing) {
            /* Its end time is the command's, persisted by job_ended. */
            u.set &= ~JOB_UPDATE_ENDED_US;
            if (jobstore_transition(s->js, a->id, JOB_COMPLETING, final, &u,
                                    &e) < 0)
                log_msg(SURPLUS_LOG_ERR, "job %s: %s", a->id, e.msg);
            free(devtext);
            goto done;
        }
        /* job_ended could not persist completing, so the runner did not
         * record: both steps go to the store in one commit. */
        struct job_step steps[2] = {
            {.id = a->id, .from = JOB_RUNNING, .to = JOB_COMPLETING},
            {.id = a->id, .from = JOB_COMPLETING, .to = final, .u = &u}};
        jobstore_transitions_apply(s->js, steps, 2, &e);
        for (int k = 0; k < 2; k++)
            if (steps[k].result < 0)
                log_msg(SURPLUS_LOG_ERR, "job %s: %s", a->id, steps[k].msg);
        free(devtext);
        goto done;
    }
    if (jobstore_transition(s->js, a->id, JOB_RUNNING, final, &u, &e) < 0)
        log_msg(SURPLUS_LOG_ERR, "job %s: %s", a->id, e.msg);
done:
    /* The store counts its outputs and log now. */
    quota_release(s->quota, a->tenant, a->held);
    log_msg(SURPLUS_LOG_INFO, "job %s (%s) %s", a->id, a->tenant,
            job_state_name(final));
    pthread_mutex_lock(&s->mu);
    if (final != JOB_QUEUED)
        s->finished[final]++;
    s->scrub_seconds += (double)res.scrub_ns / 1e9;
    s->n_running--;
    for (struct active **pp = &s->running; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    free_devices(s, a->id);
    wake(s);
    pthread_mutex_unlock(&s->mu);
    runner_result_free(&res);
    active_free(a);
    return NULL;
}

/* Called with the lock held: takes queue[qi] out of the queue and gives
 * it `devs`.  The job is in the running list (so cancel and drain find it)
 * but has no thread yet: launch_jobs() writes its start to the store
 * first. */
static struct active *claim_job(struct service *s, size_t qi,
                                const size_t *devs, size_t n)
{
    struct qjob q = s->queue[qi];
    struct active *a = calloc(1, sizeof *a);
    double lat;

    memmove(&s->queue[qi], &s->queue[qi + 1],
            (s->n_queue - qi - 1) * sizeof *s->queue);
    s->n_queue--;
    if (a == NULL) {
        log_msg(SURPLUS_LOG_ERR, "job %s: not started: out of memory",
                q.id);
        goto out;
    }
    a->started_us = wall_us();
    a->s = s;
    memcpy(a->id, q.id, sizeof a->id);
    snprintf(a->record_id, sizeof a->record_id, "%s-%lld", q.id,
             (long long)a->started_us);
    a->tenant = q.tenant;
    q.tenant = NULL;
    a->gpus = q.gpus;
    a->end_ms = mono_ms() + q.walltime_ms;
    a->submitted_us = q.submitted_us;
    a->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    a->group = n ? s->devs[devs[0]].group : 0;
    a->dev_ids = calloc(n + 1, sizeof *a->dev_ids);
    json_t *dj = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct dev *d = &s->devs[devs[i]];

        a->dev_ids[i] = strdup(d->id);
        s->devs[devs[i]].holder = strdup(q.id);
        json_array_append_new(
            dj, json_pack("{s:s, s:s, s:s}", "id", d->id, "model", d->model,
                          "plugin",
                          node_plugin_label(s->node->accelerators[d->group])));
    }
    a->dev_text = json_dumps(dj, JSON_COMPACT);
    json_decref(dj);
    a->n_dev = n;
    lat = (double)(a->started_us - q.submitted_us) / 1e6;
    s->lat_count++;
    s->lat_sum += lat;
    for (int b = 0; b < LATENCY_BUCKETS; b++)
        if (lat <= latency_le[b])
            s->lat_bucket[b]++;
    a->next = s->running;
    s->running = a;
    s->n_running++;
out:
    free(q.tenant);
    free(q.model);
    free(q.wait_reason);
    return a;
}

static int queue_add(struct service *s, const struct job_row *row);

/* With the lock held: forgets a claimed job that did not start, giving
 * back its devices.  If the store still has it queued (its start could not
 * be written), it goes back to the queue in submission order, for the
 * next round to try again. */
static void unclaim_job(struct service *s, struct active *a)
{
    struct job_row row = {0};
    struct err e = {0};

    if (jobstore_get(s->js, a->id, &row, &e) == 0 &&
        row.state == JOB_QUEUED && queue_add(s, &row) == 0) {
        struct qjob q = s->queue[s->n_queue - 1];
        size_t at = s->n_queue - 1;

        while (at > 0 && s->queue[at - 1].submitted_us > q.submitted_us)
            at--;
        memmove(&s->queue[at + 1], &s->queue[at],
                (s->n_queue - 1 - at) * sizeof *s->queue);
        s->queue[at] = q;
    }
    job_row_free(&row);
    for (struct active **pp = &s->running; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            s->n_running--;
            break;
        }
    free_devices(s, a->id);
    active_free(a);
}

/*
 * Called with the lock held, which it drops while the store writes: every
 * claimed job's queued -> running goes to the store in one commit (one
 * fsync for the whole round, and none under the lock); then each job whose
 * start was written gets its thread.  A job cancelled meanwhile is no
 * longer queued in the store and is dropped here.
 */
static size_t launch_jobs(struct service *s, struct active **claimed,
                          size_t n)
{
    size_t dropped = 0;
    struct job_step *steps = calloc(n + 1, sizeof *steps);
    struct job_update *u = calloc(n + 1, sizeof *u);
    struct err e = {0};
    pthread_attr_t attr;

    if (steps == NULL || u == NULL) {
        for (size_t i = 0; i < n; i++) {
            log_msg(SURPLUS_LOG_ERR, "job %s: not started: out of memory",
                    claimed[i]->id);
            unclaim_job(s, claimed[i]);
        }
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        /* Its devices are part of its state from the moment they are
         * leased: listed while it runs, not only once it has ended. */
        u[i] = (struct job_update){.set = JOB_UPDATE_STARTED_US,
                                   .started_us = claimed[i]->started_us};
        if (claimed[i]->dev_text != NULL) {
            u[i].set |= JOB_UPDATE_DEVICES;
            u[i].devices = claimed[i]->dev_text;
        }
        steps[i] = (struct job_step){.id = claimed[i]->id,
                                     .from = JOB_QUEUED, .to = JOB_RUNNING,
                                     .u = &u[i]};
    }
    pthread_mutex_unlock(&s->mu);
    jobstore_transitions_apply(s->js, steps, n, &e);
    pthread_mutex_lock(&s->mu);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (size_t i = 0; i < n; i++) {
        struct active *a = claimed[i];

        if (steps[i].result == -ESTALE || steps[i].result == -ENOENT) {
            /* Cancelled while its start was being written. */
            log_msg(SURPLUS_LOG_INFO, "job %s: not started: %s", a->id,
                    steps[i].msg);
            unclaim_job(s, a);
            dropped++;
        } else if (steps[i].result < 0) {
            log_msg(SURPLUS_LOG_ERR, "job %s: not started: %s", a->id,
                    steps[i].msg);
            unclaim_job(s, a);
        } else if (pthread_create(&a->thread, &attr, job_thread, a) != 0) {
            struct job_update f = {.set = JOB_UPDATE_REASON |
                                          JOB_UPDATE_ENDED_US,
                                   .reason = "the daemon could not start a "
                                             "thread for it",
                                   .ended_us = wall_us()};
            log_msg(SURPLUS_LOG_ERR, "job %s: cannot start a thread", a->id);
            if (jobstore_transition(s->js, a->id, JOB_RUNNING, JOB_FAILED,
                                    &f, &e) < 0)
                log_msg(SURPLUS_LOG_ERR, "job %s: %s", a->id, e.msg);
            s->finished[JOB_FAILED]++;
            unclaim_job(s, a);
        }
    }
    pthread_attr_destroy(&attr);
out:
    free(steps);
    free(u);
    return dropped;
}

static void fail_queued(struct service *s, size_t qi, const char *why)
{
    struct job_update u = {.set = JOB_UPDATE_REASON | JOB_UPDATE_ENDED_US,
                           .reason = why, .ended_us = wall_us()};
    struct err e = {0};

    if (jobstore_transition(s->js, s->queue[qi].id, JOB_QUEUED, JOB_FAILED,
                            &u, &e) < 0)
        log_msg(SURPLUS_LOG_ERR, "job %s: %s", s->queue[qi].id, e.msg);
    s->finished[JOB_FAILED]++;
    free(s->queue[qi].tenant);
    free(s->queue[qi].model);
    free(s->queue[qi].wait_reason);
    memmove(&s->queue[qi], &s->queue[qi + 1],
            (s->n_queue - qi - 1) * sizeof *s->queue);
    s->n_queue--;
}

/* With the lock held, before the plan is applied (queue indexes are the
 * plan's): why each queued job waits, kept for the job JSON.  A reason
 * is copied only when it changed. */
static void note_waits(struct service *s, const struct sched_input *in,
                       const struct sched_result *res)
{
    for (size_t i = 0; i < s->n_queue; i++) {
        struct qjob *q = &s->queue[i];
        const struct sched_wait *w = &res->waits[i];

        q->head = res->has_head && res->head == i;
        q->wait = w->code;
        if (w->reason == NULL) {
            free(q->wait_reason);
            q->wait_reason = NULL;
        } else if (q->wait_reason == NULL ||
                   strcmp(q->wait_reason, w->reason) != 0) {
            char *r = strdup(w->reason);

            if (r == NULL)
                continue; /* the old one stays: stale, not wrong */
            free(q->wait_reason);
            q->wait_reason = r;
        }
    }
    s->head_at_us = 0;
    if (res->has_head && res->head_start_ms != SCHED_NEVER)
        s->head_at_us =
            wall_us() + (int64_t)(res->head_start_ms > in->now_ms
                                      ? res->head_start_ms - in->now_ms
                                      : 0) * 1000;
}

/* One scheduling round, with the lock held (dropped while starts are
 * written).  Returns how many planned starts fell through because their
 * job was cancelled meanwhile: their devices are free again. */
static size_t schedule(struct service *s)
{
    size_t dropped = 0;
    struct sched_device *dv = calloc(s->n_devs + 1, sizeof *dv);
    struct sched_running *rn = calloc(s->n_running + 1, sizeof *rn);
    struct sched_job *qj = calloc(s->n_queue + 1, sizeof *qj);
    struct sched_tenant *tn = calloc(s->n_tenants + 1, sizeof *tn);
    struct sched_input in = {.now_ms = mono_ms()};
    struct sched_result *res = NULL;
    char why[256];
    size_t i = 0;

    if (!dv || !rn || !qj || !tn)
        goto out;
    for (i = 0; i < s->n_devs; i++)
        dv[i] = (struct sched_device){
            .id = s->devs[i].id, .model = s->devs[i].model,
            .memory = s->devs[i].memory, .group = s->devs[i].group,
            .drained = !s->devs[i].healthy ||
                       drained(s, &s->devs[i], why, sizeof why),
            .busy = s->devs[i].holder != NULL,
            .holder = s->devs[i].holder};
    i = 0;
    for (struct active *a = s->running; a; a = a->next, i++)
        rn[i] = (struct sched_running){.id = a->id, .tenant = a->tenant,
                                       .gpus = a->gpus, .end_ms = a->end_ms};
    for (i = 0; i < s->n_queue; i++)
        qj[i] = (struct sched_job){.id = s->queue[i].id,
                                   .tenant = s->queue[i].tenant,
                                   .gpus = s->queue[i].gpus,
                                   .model = s->queue[i].model,
                                   .gpu_memory = s->queue[i].gpu_memory,
                                   .walltime_ms = s->queue[i].walltime_ms};
    for (i = 0; i < s->n_tenants; i++)
        tn[i] = (struct sched_tenant){.name = s->tenants[i].name,
                                      .max_gpus = s->tenants[i].max_gpus,
                                      .max_running =
                                          s->tenants[i].max_running};
    in.devices = dv;
    in.n_devices = s->n_devs;
    in.running = rn;
    in.n_running = s->n_running;
    in.queued = qj;
    in.n_queued = s->n_queue;
    in.tenants = tn;
    in.n_tenants = s->n_tenants;
    /* Jobs without devices are bounded by the CPUs: one each at least. */
    in.max_running = (uint32_t)(sysconf(_SC_NPROCESSORS_ONLN) > 0
                                    ? sysconf(_SC_NPROCESSORS_ONLN)
                                    : 1);
    if (in.max_running < s->n_devs)
        in.max_running = (uint32_t)s->n_devs;
    if (sched_plan(&in, &res) < 0 || res == NULL)
        goto out;
    note_waits(s, &in, res);
    /* Queue indexes shift as jobs leave: apply from the back. */
    {
        size_t n = res->n_starts + res->n_impossible, k = 0;
        struct act { size_t job; int kind; size_t idx; } *acts =
            calloc(n + 1, sizeof *acts);

        for (i = 0; acts && i < res->n_starts; i++)
            acts[k++] = (struct act){res->starts[i].job, 0, i};
        for (i = 0; acts && i < res->n_impossible; i++)
            acts[k++] = (struct act){res->impossible[i].job, 1, i};
        for (size_t a = 0; acts && a < k; a++)
            for (size_t b = a + 1; b < k; b++)
                if (acts[b].job > acts[a].job) {
                    struct act t = acts[a];
                    acts[a] = acts[b];
                    acts[b] = t;
                }
        struct active **claimed = calloc(res->n_starts + 1,
                                         sizeof *claimed);
        size_t n_claimed = 0;

        for (i = 0; acts && claimed && i < k; i++) {
            if (acts[i].kind == 0) {
                struct active *a =
                    claim_job(s, acts[i].job,
                              res->starts[acts[i].idx].devices,
                              res->starts[acts[i].idx].n_devices);
                if (a != NULL)
                    claimed[n_claimed++] = a;
            } else {
                fail_queued(s, acts[i].job,
                            res->impossible[acts[i].idx].reason);
            }
        }
        free(acts);
        if (n_claimed > 0)
            dropped = launch_jobs(s, claimed, n_claimed);
        free(claimed);
    }
out:
    sched_result_free(res);
    free(dv);
    free(rn);
    free(qj);
    free(tn);
    return dropped;
}

static void *sched_thread(void *arg)
{
    struct service *s = arg;

    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        uint64_t gen = s->wake_gen;

        if (!s->draining && schedule(s) > 0)
            continue;
        if (s->wake_gen != gen)
            continue;
        /* Woken by submit, job end, cancel and reload; the timeout only
         * re-reads drained devices. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- cancel, log, outputs, usage ------------------------------------------------ */

int service_cancel(struct service *s, const struct caller *c, const char *id,
                   json_t **ret, struct err *e)
{
    struct job_row row = {0};
    int r = job_visible(s, c, id, &row, e);

    if (r < 0)
        return r;
    if (job_state_terminal(row.state)) {
        r = err_set(e, -EALREADY, "job %s is already %s", id,
                    job_state_name(row.state));
        job_row_free(&row);
        return r;
    }
    job_row_free(&row);
    jobstore_set_flag(s->js, id, "cancel_requested", true, e);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_queue; i++)
        if (strcmp(s->queue[i].id, id) == 0) {
            struct job_update u = {.set = JOB_UPDATE_REASON |
                                          JOB_UPDATE_ENDED_US,
                                   .reason = "cancelled while queued",
                                   .ended_us = wall_us()};
            r = jobstore_transition(s->js, id, JOB_QUEUED, JOB_CANCELLED, &u,
                                    e);
            if (r == 0) {
                s->finished[JOB_CANCELLED]++;
                free(s->queue[i].tenant);
                free(s->queue[i].model);
                free(s->queue[i].wait_reason);
                memmove(&s->queue[i], &s->queue[i + 1],
                        (s->n_queue - i - 1) * sizeof *s->queue);
                s->n_queue--;
            }
            break;
        }
    for (struct active *a = s->running; a; a = a->next)
        if (strcmp(a->id, id) == 0) {
            uint64_t one = 1;
            ssize_t w = write(a->cancel_fd, &one, sizeof one);
            (void)w;
        }
    wake(s);
    pthread_mutex_unlock(&s->mu);
    if (r < 0)
        return r;
    return service_job(s, c, id, ret, e);
}

int service_log(struct service *s, const struct caller *c, const char *id,
                int *ret_fd, bool *ret_done, struct err *e)
{
    struct job_row row = {0};
    char path[4200], key[64];
    int r = job_visible(s, c, id, &row, e), fd;

    if (r < 0)
        return r;
    *ret_done = job_state_terminal(row.state);
    if (retention_expired(retention_of(s, row.tenant), &row, wall_us())) {
        job_row_free(&row);
        return err_set(e, -ENOENT,
                       "job %s ended more than its retention ago: its log "
                       "and outputs were removed",
                       id);
    }
    job_row_free(&row);
    if (!*ret_done) {
        /* While it runs the log is the runner's file. */
        snprintf(path, sizeof path, "%s/jobs/%s/log", s->cf->state_dir, id);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
            *ret_fd = fd;
            return 0;
        }
    }
    snprintf(key, sizeof key, "jobs/%s/log", id);
    fd = open(s->spool, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(e, -errno, "spool: %s", strerror(errno));
    r = storage_get(s->node->storage, key, fd, e);
    if (r == -ENOENT) {
        err_clear(e);
        r = 0; /* not started yet, or nothing written */
    } else if (r < 0) {
        close(fd);
        return plugin_error(s->node->storage, r, e, "get the log");
    }
    *ret_fd = fd;
    return 0;
}

struct out_walk {
    json_t *a;
    size_t prefix;
};

static int on_object(void *arg, const char *key,
                     const struct surplus_object_info *info)
{
    struct out_walk *w = arg;

    json_array_append_new(w->a, json_pack("{s:s, s:I}", "path",
                                          key + w->prefix, "bytes",
                                          (json_int_t)info->size));
    return 0;
}

int service_outputs(struct service *s, const struct caller *c,
                    const char *id, json_t **ret, struct err *e)
{
    struct job_row row = {0};
    char prefix[64];
    struct out_walk w = {json_array(), 0};
    int r = job_visible(s, c, id, &row, e);

    if (r < 0) {
        json_decref(w.a);
        return r;
    }
    job_row_free(&row);
    snprintf(prefix, sizeof prefix, "jobs/%s/outputs/", id);
    w.prefix = strlen(prefix);
    r = storage_list(s->node->storage, prefix, on_object, &w, e);
    if (r < 0 && r != -ENOENT) {
        json_decref(w.a);
        return plugin_error(s->node->storage, r, e, "list the outputs");
    }
    *ret = w.a;
    return 0;
}

int service_output(struct service *s, const struct caller *c, const char *id,
                   const char *path, int *ret_fd, struct err *e)
{
    struct job_row row = {0};
    char key[SURPLUS_KEY_MAX + 64];
    int r = job_visible(s, c, id, &row, e), fd;

    if (r < 0)
        return r;
    job_row_free(&row);
    snprintf(key, sizeof key, "jobs/%s/outputs/%s", id, path);
    if (!surplus_key_valid(key))
        return err_set(e, -ENOENT, "job %s has no output '%.200s'", id, path);
    fd = open(s->spool, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(e, -errno, "spool: %s", strerror(errno));
    r = storage_get(s->node->storage, key, fd, e);
    if (r < 0) {
        close(fd);
        if (r == -ENOENT)
            return err_set(e, -ENOENT, "job %s has no output '%.200s'", id,
                           path);
        return plugin_error(s->node->storage, r, e, "get an output");
    }
    *ret_fd = fd;
    return 0;
}

/* A figure for JSON: NaN (a plugin's "not known", surplus-plugin(7)) has
 * no JSON form, and json_real refuses it, which would drop the whole
 * record from the answer: null instead. */
static json_t *number_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static int on_record(void *arg, const struct surplus_usage_record *rec)
{
    json_t *devs = json_array();

    for (size_t i = 0; i < rec->n_devices; i++)
        json_array_append_new(devs, json_pack("{s:s, s:s}", "id",
                                              rec->devices[i].id, "model",
                                              rec->devices[i].model));
    json_array_append_new(
        arg,
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:o, s:o, "
                  "s:I, s:i, s:s, s:I, s:I, s:I, s:s}",
                  "record_id", rec->record_id, "job_id", rec->job_id,
                  "tenant", rec->tenant, "job_name", rec->job_name, "node",
                  rec->node, "devices", devs, "start_us",
                  (json_int_t)rec->start_us, "end_us",
                  (json_int_t)rec->end_us, "duration_us",
                  (json_int_t)rec->duration_us, "device_seconds",
                  number_or_null(rec->device_seconds), "cpu_seconds",
                  number_or_null(rec->cpu_seconds), "max_rss_bytes",
                  (json_int_t)rec->max_rss_bytes,
                  "exit_status", rec->exit_status, "state", rec->state,
                  "bytes_in", (json_int_t)rec->bytes_in, "bytes_out",
                  (json_int_t)rec->bytes_out, "cost_micros",
                  (json_int_t)rec->cost_micros, "currency",
                  rec->currency ? rec->currency : ""));
    return 0;
}

int service_usage(struct service *s, const struct caller *c, int64_t since_us,
                  int64_t until_us, json_t **ret, struct err *e)
{
    struct surplus_usage_query q = {.tenant = c->tenant, .since_us = since_us,
                                    .until_us = until_us};
    struct plugin *a = s->node->accounting;
    json_t *arr = json_array();
    int r;

    pthread_mutex_lock(&s->mu);
    r = accounting_query(a, &q, on_record, arr, e);
    pthread_mutex_unlock(&s->mu);
    if (r < 0) {
        json_decref(arr);
        return plugin_error(a, r, e, "query");
    }
    *ret = arr;
    return 0;
}

/* The tenants whose quota the caller may see: its own, or for the admin
 * acting as itself every configured tenant and every other that holds
 * something in storage (root's own "local" among them). */
struct names {
    char **v;
    size_t n;
};

static void names_free(struct names *nm)
{
    for (size_t i = 0; i < nm->n; i++)
        free(nm->v[i]);
    free(nm->v);
    nm->v = NULL;
    nm->n = 0;
}

static int names_add(struct names *nm, const char *name)
{
    char **v;

    for (size_t i = 0; i < nm->n; i++)
        if (strcmp(nm->v[i], name) == 0)
            return 0;
    if ((v = realloc(nm->v, (nm->n + 1) * sizeof *v)) == NULL)
        return -ENOMEM;
    nm->v = v;
    if ((v[nm->n] = strdup(name)) == NULL)
        return -ENOMEM;
    nm->n++;
    return 0;
}

static int on_stored_tenant(void *arg, const char *tenant, uint64_t bytes)
{
    (void)bytes;
    return names_add(arg, tenant);
}

static int quota_tenants(struct service *s, const struct caller *c,
                         struct names *nm, struct err *e)
{
    int r = 0;

    if (!c->admin || c->tenant != NULL) {
        if (names_add(nm, c->tenant ? c->tenant : "local") < 0)
            return err_set(e, -ENOMEM, "out of memory");
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; r == 0 && i < s->n_tenants; i++)
        r = names_add(nm, s->tenants[i].name);
    pthread_mutex_unlock(&s->mu);
    if (r == 0)
        r = jobstore_stored_by_tenant(s->js, on_stored_tenant, nm, e);
    if (r == -ENOMEM)
        err_set(e, r, "out of memory");
    if (r < 0)
        names_free(nm);
    return r;
}

int service_quota(struct service *s, const struct caller *c, json_t **ret,
                  struct err *e)
{
    struct names nm = {0};
    json_t *arr;
    int r = quota_tenants(s, c, &nm, e);

    if (r < 0)
        return r;
    if ((arr = json_array()) == NULL) {
        names_free(&nm);
        return err_set(e, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; r == 0 && i < nm.n; i++) {
        const struct tenant *t;
        struct quota_use u;
        uint64_t queued = 0;
        json_t *j;

        if ((r = quota_use(s->quota, nm.v[i], &u, e)) < 0)
            break;
        j = quota_json(nm.v[i], &u);
        pthread_mutex_lock(&s->mu);
        for (size_t k = 0; k < s->n_queue; k++)
            queued += strcmp(s->queue[k].tenant, nm.v[i]) == 0;
        t = tenant_find(s, nm.v[i]);
        json_object_set_new(j, "jobs_queued",
                            json_integer((json_int_t)queued));
        json_object_set_new(j, "max_queued",
                            t ? json_integer((json_int_t)t->max_queued)
                              : json_null());
        pthread_mutex_unlock(&s->mu);
        json_array_append_new(arr, j);
    }
    names_free(&nm);
    if (r < 0) {
        json_decref(arr);
        return r;
    }
    *ret = arr;
    return 0;
}

/* The per-tenant storage gauges of /metrics, for the tenants the caller
 * may see. */
static void metrics_storage(struct service *s, const struct caller *c,
                            FILE *f)
{
    struct names nm = {0};
    struct quota_use *u;
    struct err e = {0};

    if (quota_tenants(s, c, &nm, &e) < 0 ||
        (u = calloc(nm.n + 1, sizeof *u)) == NULL) {
        names_free(&nm);
        return;
    }
    for (size_t i = 0; i < nm.n; i++)
        if (quota_use(s->quota, nm.v[i], &u[i], &e) < 0)
            u[i] = (struct quota_use){0};
    fprintf(f, "# HELP surplus_tenant_storage_bytes Bytes a tenant holds in "
               "storage: bundles, logs and outputs.\n"
               "# TYPE surplus_tenant_storage_bytes gauge\n");
    for (size_t i = 0; i < nm.n; i++)
        fprintf(f, "surplus_tenant_storage_bytes{tenant=\"%s\"} %llu\n",
                nm.v[i], (unsigned long long)(u[i].stored + u[i].held));
    fprintf(f, "# HELP surplus_tenant_storage_quota_bytes A tenant's "
               "storage_quota (tenants that have one).\n"
               "# TYPE surplus_tenant_storage_quota_bytes gauge\n");
    for (size_t i = 0; i < nm.n; i++)
        if (u[i].quota)
            fprintf(f, "surplus_tenant_storage_quota_bytes{tenant=\"%s\"} "
                       "%llu\n",
                    nm.v[i], (unsigned long long)u[i].quota);
    free(u);
    names_free(&nm);
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void label_value(FILE *f, const char *v)
{
    for (; *v; v++)
        if (*v == '\\' || *v == '"')
            fprintf(f, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
}

char *service_metrics(struct service *s, const struct caller *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    size_t leased = 0, drained_n = 0, freed = 0;
    char why[256], *storage = NULL;
    size_t storage_len = 0;
    FILE *sf;

    if (f == NULL)
        return NULL;
    /* Before the lock: it reads the job store. */
    if ((sf = open_memstream(&storage, &storage_len)) != NULL) {
        metrics_storage(s, c, sf);
        fclose(sf);
    }
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_devs; i++) {
        if (!s->devs[i].healthy || drained(s, &s->devs[i], why, sizeof why))
            drained_n++;
        else if (s->devs[i].holder)
            leased++;
        else
            freed++;
    }
    fprintf(f, "# HELP surplus_jobs Jobs by state: queued and running now, "
               "the others finished since the daemon started.\n"
               "# TYPE surplus_jobs gauge\n");
    fprintf(f, "surplus_jobs{state=\"queued\"} %zu\n", s->n_queue);
    fprintf(f, "surplus_jobs{state=\"running\"} %zu\n", s->n_running);
    for (int st = JOB_SUCCEEDED; st < JOB_STATE_COUNT; st++)
        fprintf(f, "surplus_jobs{state=\"%s\"} %llu\n", job_state_name(st),
                (unsigned long long)s->finished[st]);
    fprintf(f, "# HELP surplus_queue_length Jobs waiting to start.\n"
               "# TYPE surplus_queue_length gauge\n"
               "surplus_queue_length %zu\n",
            s->n_queue);
    fprintf(f, "# HELP surplus_devices Accelerator devices by state.\n"
               "# TYPE surplus_devices gauge\n"
               "surplus_devices{state=\"leased\"} %zu\n"
               "surplus_devices{state=\"free\"} %zu\n"
               "surplus_devices{state=\"drained\"} %zu\n",
            leased, freed, drained_n);
    /* Per device, for an alert that names it: unhealthy as its plugin
     * reports it, or drained after a failed scrub or health check. */
    fprintf(f, "# HELP surplus_device_unhealthy 1 for a device that is "
               "unhealthy or drained (never leased until an operator acts), "
               "0 otherwise.\n# TYPE surplus_device_unhealthy gauge\n");
    for (size_t i = 0; i < s->n_devs; i++) {
        const struct dev *d = &s->devs[i];

        fputs("surplus_device_unhealthy{device=\"", f);
        label_value(f, d->id);
        fputs("\",plugin=\"", f);
        label_value(f, node_plugin_label(s->node->accelerators[d->group]));
        fputs("\",model=\"", f);
        label_value(f, d->model);
        fprintf(f, "\"} %d\n",
                !d->healthy || drained(s, d, why, sizeof why) ? 1 : 0);
    }
    fprintf(f, "# HELP surplus_submit_to_start_seconds From submission to "
               "start.\n# TYPE surplus_submit_to_start_seconds histogram\n");
    for (int b = 0; b < LATENCY_BUCKETS; b++)
        fprintf(f, "surplus_submit_to_start_seconds_bucket{le=\"%g\"} %llu\n",
                latency_le[b], (unsigned long long)s->lat_bucket[b]);
    fprintf(f,
            "surplus_submit_to_start_seconds_bucket{le=\"+Inf\"} %llu\n"
            "surplus_submit_to_start_seconds_sum %.6f\n"
            "surplus_submit_to_start_seconds_count %llu\n",
            (unsigned long long)s->lat_count, s->lat_sum,
            (unsigned long long)s->lat_count);
    fprintf(f, "# HELP surplus_bundle_bytes_received_total Bytes of accepted "
               "bundles.\n# TYPE surplus_bundle_bytes_received_total counter\n"
               "surplus_bundle_bytes_received_total %llu\n",
            (unsigned long long)s->bundle_bytes);
    fprintf(f, "# HELP surplus_jobs_submitted_total Jobs accepted.\n"
               "# TYPE surplus_jobs_submitted_total counter\n"
               "surplus_jobs_submitted_total %llu\n",
            (unsigned long long)s->submitted);
    fprintf(f, "# HELP surplus_jobs_replayed_total Submissions answered "
               "with the job their Idempotency-Key already stood for.\n"
               "# TYPE surplus_jobs_replayed_total counter\n"
               "surplus_jobs_replayed_total %llu\n",
            (unsigned long long)s->replayed);
    fprintf(f, "# HELP surplus_scrub_seconds_total Time spent scrubbing "
               "devices.\n# TYPE surplus_scrub_seconds_total counter\n"
               "surplus_scrub_seconds_total %.6f\n",
            s->scrub_seconds);
    pthread_mutex_unlock(&s->mu);
    if (storage != NULL)
        fputs(storage, f);
    free(storage);
    fclose(f);
    return buf;
}

/* ---- life cycle ----------------------------------------------------------------- */

static int queue_add(struct service *s, const struct job_row *row)
{
    struct qjob *q;

    if ((q = realloc(s->queue, (s->n_queue + 1) * sizeof *q)) == NULL)
        return -ENOMEM;
    s->queue = q;
    q = &s->queue[s->n_queue++];
    memset(q, 0, sizeof *q);
    memcpy(q->id, row->id, sizeof q->id);
    q->tenant = strdup(row->tenant);
    q->model = strdup(row->model ? row->model : "*");
    q->gpus = row->gpus;
    q->gpu_memory = row->gpu_memory;
    q->walltime_ms = row->walltime_ms;
    q->submitted_us = row->submitted_us;
    return 0;
}

struct ledger_find {
    const char *record_id;
    bool found;
};

static int on_ledger_record(void *arg, const struct surplus_usage_record *rec)
{
    struct ledger_find *f = arg;

    if (rec->record_id && strcmp(rec->record_id, f->record_id) == 0) {
        f->found = true;
        return 1;
    }
    return 0;
}

/* recovery_finish's record: the ledger is asked for the persisted record
 * id (its end time is the job's ended_us); when the daemon died before
 * writing it, it is written from what the store holds: the job's
 * resource use died with the daemon, so it bills device time only. */
static int record_again(void *arg, const struct job_row *row)
{
    struct service *s = arg;
    struct plugin *a = s->node->accounting;
    struct surplus_usage_query q = {.tenant = row->tenant,
                                    .since_us = row->ended_us,
                                    .until_us = row->ended_us + 1};
    struct ledger_find f = {.record_id = row->record_id};
    struct err pe = {0};
    struct surplus_usage_record rec = {0};
    struct surplus_usage_device *devs = NULL;
    const char **models = NULL;
    json_t *dj = NULL, *d;
    size_t i, n;
    int r;

    if (row->record_id == NULL)
        return -ENOENT;
    r = accounting_query(a, &q, on_ledger_record, &f, &pe);
    if (f.found)
        return 0;
    if (r < 0)
        return r;
    dj = json_loads(row->devices, 0, NULL);
    n = json_array_size(dj);
    if ((devs = calloc(n + 1, sizeof *devs)) == NULL ||
        (models = calloc(n + 1, sizeof *models)) == NULL) {
        free(devs);
        json_decref(dj);
        return -ENOMEM;
    }
    rec.duration_us = row->ended_us > row->started_us
                          ? (uint64_t)(row->ended_us - row->started_us)
                          : 0;
    json_array_foreach(dj, i, d) {
        devs[i].id = json_string_value(json_object_get(d, "id"));
        devs[i].model = models[i] =
            json_string_value(json_object_get(d, "model"));
    }
    rec.record_id = row->record_id;
    rec.job_id = row->id;
    rec.tenant = row->tenant;
    rec.job_name = row->name;
    rec.node = s->node->hostname;
    rec.devices = devs;
    rec.n_devices = n;
    rec.start_us = row->started_us;
    rec.end_us = row->ended_us;
    rec.device_seconds = (double)rec.n_devices * (double)rec.duration_us / 1e6;
    rec.exit_status = row->exit_status;
    rec.state = job_state_name(row->outcome);
    rec.bytes_in = row->bundle_bytes;
    /* The CPU time is not in the store: not known (NaN, as
     * surplus-plugin(7) has it), and device time only is billed. */
    rec.cpu_seconds = NAN;
    rec.cost_micros =
        runner_cost_micros(s->cf, 0, rec.duration_us, models, n);
    rec.currency = s->cf->pricing.currency ? s->cf->pricing.currency : "USD";
    r = accounting_record(a, &rec, &pe);
    if (r == 0)
        r = accounting_flush(a, &pe);
    free(devs);
    free(models);
    json_decref(dj);
    return r;
}

/* At start: each job the store has queued. */
static int on_queued(void *arg, const struct job_row *row)
{
    struct service *s = arg;

    if (recovery_give_up(s->js, row, wall_us())) {
        s->finished[JOB_FAILED]++;
        return 0;
    }
    return queue_add(s, row);
}

int service_open(const struct config *cf, struct service **ret,
                 struct err *e)
{
    struct service *s = calloc(1, sizeof *s);
    char path[4200];
    int r;

    if (s == NULL || (s->cf = calloc(1, sizeof *s->cf)) == NULL) {
        free(s);
        return err_set(e, -ENOMEM, "out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->sweep_cv, NULL);
    *s->cf = *cf; /* shallow: strings stay the caller's, limits are ours */
    s->cf_in = cf;
    if ((r = node_open(cf, &s->node, e)) < 0)
        goto fail;
    snprintf(s->spool, sizeof s->spool, "%s/spool", cf->state_dir);
    if ((r = node_mkdirs(s->spool, 0700)) < 0) {
        err_set(e, r, "%s: %s", s->spool, strerror(-r));
        goto fail;
    }
    snprintf(s->pending, sizeof s->pending, "%s/pending", cf->state_dir);
    if ((r = node_mkdirs(s->pending, 0700)) < 0) {
        err_set(e, r, "%s: %s", s->pending, strerror(-r));
        goto fail;
    }
    snprintf(path, sizeof path, "%s/jobs.db", cf->state_dir);
    if ((r = jobstore_open(path, &s->js, e)) < 0 ||
        (r = quota_new(s->js, &s->quota, e)) < 0)
        goto fail;
    if ((r = tenants_load(s, cf)) < 0) {
        err_set(e, r, "out of memory");
        goto fail;
    }
    if ((r = inventory(s, e)) < 0)
        goto fail;
    *ret = s;
    return 0;
fail:
    service_close(s);
    return r;
}

/* Between two sweeps when nothing wakes the sweeper; a short retention
 * is swept within half of it. */
#define SWEEP_INTERVAL_MS (60 * 1000)
/* Sweeps at most this often: a job's end wakes it. */
#define SWEEP_MIN_GAP_MS 2000
/* How far back a sweep looks past the one before it, for jobs that ended
 * while that one read the store. */
#define SWEEP_OVERLAP_US (INT64_C(600) * 1000000)

static uint64_t sweep_wait_ms(struct service *s)
{
    uint64_t ms = SWEEP_INTERVAL_MS;

    if (s->retention_ms && s->retention_ms / 2 < ms)
        ms = s->retention_ms / 2;
    for (size_t i = 0; i < s->n_tenants; i++)
        if (s->tenants[i].has_retention && s->tenants[i].retention_ms &&
            s->tenants[i].retention_ms / 2 < ms)
            ms = s->tenants[i].retention_ms / 2;
    return ms < SWEEP_MIN_GAP_MS ? SWEEP_MIN_GAP_MS : ms;
}

static void *sweep_thread(void *arg)
{
    struct service *s = arg;
    int64_t since = 0;

    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        struct retention_stats st = {0};
        struct err e = {0};
        int64_t now = wall_us();
        struct timespec ts;
        uint64_t ms;

        s->sweep_due = false;
        pthread_mutex_unlock(&s->mu);
        if (retention_sweep(s->js, s->node->storage, retention_of, s, now,
                            since, &st, &e) < 0)
            log_msg(SURPLUS_LOG_ERR, "retention: %s", e.msg);
        else
            since = now - SWEEP_OVERLAP_US;
        if (st.expired)
            log_msg(SURPLUS_LOG_INFO, "retention: the logs and outputs of "
                                      "%llu job(s) removed",
                    (unsigned long long)st.expired);
        pthread_mutex_lock(&s->mu);
        /* No more often than SWEEP_MIN_GAP_MS, however many jobs end. */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += SWEEP_MIN_GAP_MS / 1000;
        while (!s->stopping &&
               pthread_cond_timedwait(&s->sweep_cv, &s->mu, &ts) == 0)
            ;
        ms = sweep_wait_ms(s) - SWEEP_MIN_GAP_MS;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)(ms / 1000);
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!s->stopping && !s->sweep_due &&
               pthread_cond_timedwait(&s->sweep_cv, &s->mu, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int service_start(struct service *s, struct err *e)
{
    struct job_filter f = {.states = JOB_STATE_BIT(JOB_QUEUED)};
    uint64_t requeued = 0, failed = 0, finished = 0, counted = 0;
    struct err qe = {0};
    int r;

    /* What jobs stored while the daemon died under them is not known to
     * the store: counted again below, once they are settled. */
    if ((r = jobstore_stored_forget(s->js,
                                    JOB_STATE_BIT(JOB_RUNNING) |
                                        JOB_STATE_BIT(JOB_COMPLETING),
                                    e)) < 0)
        return r;
    /* Jobs that were running when the daemon stopped have no process any
     * more (each died with its init when its runner did). */
    if ((r = recovery_reconcile(s->js, s->cf->state_dir, wall_us(),
                                &requeued, &failed, e)) < 0)
        return r;
    if (requeued || failed)
        log_msg(SURPLUS_LOG_WARNING, "after a restart: %llu job(s) requeued, "
                                     "%llu failed (node restarted)",
                (unsigned long long)requeued, (unsigned long long)failed);
    if ((r = recovery_finish(s->js, wall_us(), record_again, s, &finished,
                             e)) < 0)
        return r;
    if (finished)
        log_msg(SURPLUS_LOG_WARNING, "after a restart: %llu job(s) that had "
                                     "ended finished, not run again",
                (unsigned long long)finished);
    pending_sweep(s);
    /* Before the API answers: a tenant's storage_quota sums these. */
    if (quota_count_unknown(s->js, s->node->storage, &counted, &qe) < 0)
        log_msg(SURPLUS_LOG_WARNING, "storage quotas: what some jobs hold "
                                     "in storage is not counted: %s",
                qe.msg);
    else if (counted)
        log_msg(SURPLUS_LOG_INFO, "storage quotas: what %llu job(s) hold "
                                  "counted from storage",
                (unsigned long long)counted);
    if ((r = jobstore_list(s->js, &f, on_queued, s, e)) < 0)
        return r;
    if (s->n_queue)
        log_msg(SURPLUS_LOG_INFO, "%zu queued job(s) picked up", s->n_queue);
    if (pthread_create(&s->sched, NULL, sched_thread, s) != 0)
        return err_set(e, -EAGAIN, "cannot start the scheduler thread");
    if (pthread_create(&s->sweeper, NULL, sweep_thread, s) != 0) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        wake(s);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->sched, NULL);
        return err_set(e, -EAGAIN, "cannot start the retention thread");
    }
    s->started = true;
    return 0;
}

void service_drain(struct service *s, uint64_t grace_ms)
{
    uint64_t until = mono_ms() + grace_ms;

    __atomic_store_n(&s->draining, true, __ATOMIC_RELAXED);
    pthread_mutex_lock(&s->mu);
    log_msg(SURPLUS_LOG_INFO, "draining: %zu job(s) running, %zu queued",
            s->n_running, s->n_queue);
    while (s->n_running > 0 && mono_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    /* Past the grace period the rest are stopped; they end cancelled with
     * a reason saying why. */
    for (struct active *a = s->running; a; a = a->next) {
        uint64_t one = 1;
        ssize_t w = write(a->cancel_fd, &one, sizeof one);
        (void)w;
        a->requeue = true;
    }
    while (s->n_running > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    s->stopping = true;
    wake(s);
    pthread_mutex_unlock(&s->mu);
}

int service_reload(struct service *s, const struct config *cf, struct err *e)
{
    int r = tenants_load(s, cf);

    if (r < 0)
        return err_set(e, r, "out of memory");
    pthread_mutex_lock(&s->mu);
    wake(s);
    pthread_mutex_unlock(&s->mu);
    log_msg(SURPLUS_LOG_INFO, "reloaded: %zu tenant(s)", cf->n_tenants);
    return 0;
}

void service_close(struct service *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        wake(s);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->sched, NULL);
        pthread_join(s->sweeper, NULL);
    }
    for (size_t i = 0; i < s->n_queue; i++) {
        free(s->queue[i].tenant);
        free(s->queue[i].model);
        free(s->queue[i].wait_reason);
    }
    free(s->queue);
    for (size_t i = 0; i < s->n_devs; i++) {
        free(s->devs[i].id);
        free(s->devs[i].model);
        free(s->devs[i].reason);
        free(s->devs[i].holder);
    }
    free(s->devs);
    tenants_free(s->tenants, s->n_tenants);
    quota_free(s->quota);
    while (s->keyed != NULL) {
        struct keyed *k = s->keyed;

        s->keyed = k->next;
        free(k->tenant);
        free(k->key);
        free(k);
    }
    jobstore_close(s->js);
    node_close(s->node);
    free(s->cf);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->sweep_cv);
    free(s);
}
