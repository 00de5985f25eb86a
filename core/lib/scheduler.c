/*
 * scheduler.c - FIFO with EASY backfill over one node's devices (see
 * scheduler.h for the policy).  No I/O: everything here reads the input and
 * builds the result.
 */
#include "scheduler.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "units.h"

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static const char *glob_of(const struct sched_job *job)
{
    return job->model != NULL ? job->model : "*";
}

bool sched_device_fits(const struct sched_job *job,
                       const struct sched_device *dev)
{
    /* A device that reports no model can still be asked for by "*". */
    const char *model = dev->model != NULL ? dev->model : "";

    return dev->memory >= job->gpu_memory &&
           fnmatch(glob_of(job), model, 0) == 0;
}

/* --- a string-keyed hash map ---------------------------------------------
 * Open addressing over (string, integer) keys: tenant names, running job
 * ids, and job shapes (model glob, gpu_memory).  It starts small and
 * doubles, because a planning pass must not pay for zeroing a table sized
 * for the whole queue when the queue holds a handful of shapes. */

struct smap_slot {
    const char *s;  /* NULL: empty */
    uint64_t x;
    uint64_t hash;
    size_t v;
};

struct smap {
    struct smap_slot *slot;
    size_t cap;  /* a power of two */
    size_t n;
};

static uint64_t smap_hash(const char *s, uint64_t x)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);  /* FNV-1a */

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
    h ^= x + UINT64_C(0x9e3779b97f4a7c15) + (h << 6) + (h >> 2);
    return h;
}

static struct smap_slot *smap_probe(const struct smap *m, const char *s,
                                    uint64_t x, uint64_t h)
{
    size_t i = (size_t)h & (m->cap - 1);

    for (;; i = (i + 1) & (m->cap - 1)) {
        struct smap_slot *e = &m->slot[i];

        /* Callers often pass the same string object (a tenant name from
         * the configuration): compare pointers before bytes. */
        if (e->s == NULL || (e->hash == h && e->x == x &&
                             (e->s == s || strcmp(e->s, s) == 0)))
            return e;
    }
}

/* The value stored under (s, x), or NULL. */
static const size_t *smap_get(const struct smap *m, const char *s, uint64_t x)
{
    const struct smap_slot *e;

    if (m->cap == 0)
        return NULL;
    e = smap_probe(m, s, x, smap_hash(s, x));
    return e->s != NULL ? &e->v : NULL;
}

static int smap_grow(struct smap *m)
{
    size_t cap = m->cap != 0 ? m->cap * 2 : 16;
    struct smap old = *m;

    m->slot = calloc(cap, sizeof *m->slot);
    if (m->slot == NULL) {
        m->slot = old.slot;
        return -ENOMEM;
    }
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slot[i].s != NULL)
            *smap_probe(m, old.slot[i].s, old.slot[i].x, old.slot[i].hash) =
                old.slot[i];
    free(old.slot);
    return 0;
}

/* Stores v under (s, x) unless the key is there already (first one wins). */
static int smap_add(struct smap *m, const char *s, uint64_t x, size_t v)
{
    struct smap_slot *e;
    uint64_t h = smap_hash(s, x);
    int r;

    /* At most half full keeps probe sequences short. */
    if ((m->n + 1) * 2 > m->cap && (r = smap_grow(m)) < 0)
        return r;
    e = smap_probe(m, s, x, h);
    if (e->s == NULL) {
        *e = (struct smap_slot){.s = s, .x = x, .hash = h, .v = v};
        m->n++;
    }
    return 0;
}

/* --- planning state ------------------------------------------------------ */

/* The result, the reasons and the device lists it points into, freed
 * together. */
struct result_block {
    struct sched_result r;
    char **reasons;  /* each distinct reason once */
    size_t n_reasons;
    size_t pool[];   /* 2*D: start device lists, then the head's */
};

/* What jobs with one (model glob, gpu_memory) have in common.  Computing
 * it once per shape keeps fnmatch(3) off the per-job path. */
struct shape {
    const char *model;
    uint64_t gpu_memory;
    size_t fit;             /* offset in plan.fitbuf: D flags, 1 = the
                               device fits and is not drained */
    uint32_t best_group;    /* most such devices in one group */
    uint32_t drained_fit;   /* devices that fit but are drained */
    /* Free devices only disappear during a pass (jobs start, none end),
     * and the reservation is made once, so a width that failed to fit
     * fails again: the smallest failed width, per mode, answers later
     * jobs of the same shape in O(1).  UINT32_MAX: none failed yet. */
    uint32_t fail_any;      /* any free device */
    uint32_t fail_unres;    /* free devices not reserved for the head */
};

struct tenant_state {
    uint32_t max_gpus;
    uint32_t max_running;   /* 0: only the fair share bounds it */
    uint64_t used;          /* GPUs held by its running and started jobs */
    uint64_t running;       /* its running and started jobs */
    bool blocked;           /* a GPU job waits for quota: later ones too */
    bool waiting;           /* it has queued jobs */
};

/* A device's sort key: devices are visited group by group. */
struct dkey {
    int group;
    uint64_t free_at;
    uint64_t memory;
    size_t idx;
};

struct plan {
    const struct sched_input *in;
    struct sched_result *res;
    size_t cap_starts, cap_impossible;

    uint8_t *avail;         /* per device: free now, not drained, not
                               taken by this pass */
    uint8_t *reserved;      /* per device: in the head's reservation */
    uint64_t *free_at;      /* per device: when free, SCHED_NEVER unknown */
    size_t n_avail, n_avail_unres;
    struct dkey *order;     /* non-drained devices by group, memory, index */
    size_t n_order;
    struct result_block *rb;
    size_t cap_reasons;
    /* A queue often holds many copies of one job: a reason is formatted
     * once per (shape, width) or (tenant, width), then shared. */
    struct smap reason_ix;
    size_t *pool;           /* the result block's */
    size_t pool_used;
    size_t *pick;           /* D: scratch for one job's devices */

    struct smap tenant_ix;
    struct tenant_state *tenants;
    struct smap running_ix;

    struct smap shape_ix;
    struct shape *shapes;
    size_t n_shapes, cap_shapes;
    uint8_t *fitbuf;
    size_t cap_fitbuf;

    uint64_t running;       /* jobs running, this pass's starts included */
    bool full;              /* max_running reached */

    /* Fair share of the running slots while several tenants wait: in the
     * first walk a tenant holding `share` slots or more is passed over
     * (its jobs marked in `deferred`); the second walk offers what is
     * left to them, so no slot stays idle for fairness' sake. */
    uint64_t share;         /* 0: no fair share (one tenant waits, or no
                               slot limit) */
    bool second_walk;
    uint8_t *deferred;      /* by queued index */

    /* The head, once there is one. */
    uint32_t head_gpus;
    struct tenant_state *head_tenant;
    uint64_t shadow;
    uint64_t head_tenant_at_shadow;  /* its tenant's GPUs held then */
};

static int by_group_memory(const void *a, const void *b)
{
    const struct dkey *x = a, *y = b;

    if (x->group != y->group)
        return x->group < y->group ? -1 : 1;
    if (x->memory != y->memory)
        return x->memory < y->memory ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int by_group_free_at(const void *a, const void *b)
{
    const struct dkey *x = a, *y = b;

    if (x->group != y->group)
        return x->group < y->group ? -1 : 1;
    if (x->free_at != y->free_at)
        return x->free_at < y->free_at ? -1 : 1;
    if (x->memory != y->memory)
        return x->memory < y->memory ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int by_job(const void *a, const void *b)
{
    const struct sched_start *x = a, *y = b;

    return x->job < y->job ? -1 : x->job > y->job;
}

static int by_index(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;

    return x < y ? -1 : x > y;
}

static struct tenant_state *tenant_of(const struct plan *p, const char *name)
{
    const size_t *v = name != NULL ? smap_get(&p->tenant_ix, name, 0) : NULL;

    return v != NULL ? &p->tenants[*v] : NULL;
}

static int setup_tenants(struct plan *p)
{
    const struct sched_input *in = p->in;
    int r;

    p->tenants = calloc(in->n_tenants + 1, sizeof *p->tenants);
    if (p->tenants == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < in->n_tenants; i++) {
        if (in->tenants[i].name == NULL)
            continue;
        p->tenants[i].max_gpus = in->tenants[i].max_gpus;
        p->tenants[i].max_running = in->tenants[i].max_running;
        if ((r = smap_add(&p->tenant_ix, in->tenants[i].name, 0, i)) < 0)
            return r;
    }
    for (size_t i = 0; i < in->n_running; i++) {
        const struct sched_running *rj = &in->running[i];
        struct tenant_state *t = tenant_of(p, rj->tenant);

        if (t != NULL) {
            t->used += rj->gpus;
            t->running++;
        }
        if (rj->id != NULL && (r = smap_add(&p->running_ix, rj->id, 0, i)) < 0)
            return r;
    }
    if (in->max_running != 0) {
        uint64_t waiting = 0;

        for (size_t i = 0; i < in->n_queued; i++) {
            struct tenant_state *t = tenant_of(p, in->queued[i].tenant);

            if (t != NULL && !t->waiting) {
                t->waiting = true;
                waiting++;
            }
        }
        if (waiting > 1) {
            p->share = (in->max_running + waiting - 1) / waiting;
            if ((p->deferred = calloc(in->n_queued, 1)) == NULL)
                return -ENOMEM;
        }
    }
    return 0;
}

static uint64_t running_end(const struct plan *p,
                            const struct sched_running *rj)
{
    /* Past its end it is being killed: its devices come back any moment. */
    return rj->end_ms > p->in->now_ms ? rj->end_ms : p->in->now_ms;
}

static int setup_devices(struct plan *p)
{
    const struct sched_input *in = p->in;
    size_t nd = in->n_devices;

    p->avail = calloc(nd + 1, 1);
    p->reserved = calloc(nd + 1, 1);
    p->free_at = calloc(nd + 1, sizeof *p->free_at);
    p->order = calloc(nd + 1, sizeof *p->order);
    p->pick = calloc(nd + 1, sizeof *p->pick);
    if (!p->avail || !p->reserved || !p->free_at || !p->order || !p->pick)
        return -ENOMEM;
    for (size_t d = 0; d < nd; d++) {
        const struct sched_device *dev = &in->devices[d];

        if (dev->drained)
            continue;
        if (!dev->busy) {
            p->free_at[d] = in->now_ms;
            p->avail[d] = 1;
            p->n_avail++;
        } else {
            const size_t *v =
                dev->holder != NULL ? smap_get(&p->running_ix, dev->holder, 0)
                                    : NULL;

            p->free_at[d] =
                v != NULL ? running_end(p, &in->running[*v]) : SCHED_NEVER;
        }
        p->order[p->n_order++] = (struct dkey){
            .group = dev->group, .memory = dev->memory, .idx = d};
    }
    p->n_avail_unres = p->n_avail;
    qsort(p->order, p->n_order, sizeof *p->order, by_group_memory);
    return 0;
}

/* The shape of a GPU job, made on first sight. */
static struct shape *shape_of(struct plan *p, const struct sched_job *job)
{
    const struct sched_input *in = p->in;
    const char *glob = glob_of(job);
    const size_t *v = smap_get(&p->shape_ix, glob, job->gpu_memory);
    struct shape *s;
    uint32_t in_group = 0;
    int group = 0;

    if (v != NULL)
        return &p->shapes[*v];
    if (p->n_shapes == p->cap_shapes) {
        size_t cap = p->cap_shapes ? 2 * p->cap_shapes : 8;
        struct shape *ns = realloc(p->shapes, cap * sizeof *ns);

        if (ns == NULL)
            return NULL;
        p->shapes = ns;
        p->cap_shapes = cap;
    }
    /* Allocated even with no devices: memset() wants a real pointer. */
    if (p->fitbuf == NULL ||
        (p->n_shapes + 1) * in->n_devices > p->cap_fitbuf) {
        size_t cap = 2 * (p->n_shapes + 1) * in->n_devices + 1;
        uint8_t *nb = realloc(p->fitbuf, cap);

        if (nb == NULL)
            return NULL;
        p->fitbuf = nb;
        p->cap_fitbuf = cap;
    }
    if (smap_add(&p->shape_ix, glob, job->gpu_memory, p->n_shapes) < 0)
        return NULL;
    s = &p->shapes[p->n_shapes];
    *s = (struct shape){.model = glob, .gpu_memory = job->gpu_memory,
                        .fit = p->n_shapes * in->n_devices,
                        .fail_any = UINT32_MAX, .fail_unres = UINT32_MAX};
    p->n_shapes++;
    memset(p->fitbuf + s->fit, 0, in->n_devices);
    for (size_t d = 0; d < in->n_devices; d++)
        if (in->devices[d].drained && sched_device_fits(job, &in->devices[d]))
            s->drained_fit++;
    /* p->order holds the non-drained devices, group by group. */
    for (size_t k = 0; k < p->n_order; k++) {
        const struct dkey *o = &p->order[k];

        if (k == 0 || o->group != group) {
            group = o->group;
            in_group = 0;
        }
        if (sched_device_fits(job, &in->devices[o->idx])) {
            p->fitbuf[s->fit + o->idx] = 1;
            if (++in_group > s->best_group)
                s->best_group = in_group;
        }
    }
    return s;
}

/* Is candidate (n_res, mem, low) better than the best so far? */
static bool better(size_t n_res, uint64_t mem, size_t low, size_t b_res,
                   uint64_t b_mem, size_t b_low)
{
    if (n_res != b_res)
        return n_res < b_res;
    if (mem != b_mem)
        return mem < b_mem;
    return low < b_low;
}

/*
 * Walks the free fitting devices of one group, order[b..e), and takes
 * `unres` of those not reserved for the head and `res` of those reserved,
 * each kind smallest memory first (the order is by memory).  Writes them to
 * out[] unless out is NULL; *mem and *low get their total memory and lowest
 * index, the tie-breaks between groups.
 */
static void take_in_group(const struct plan *p, const uint8_t *fit, size_t b,
                          size_t e, size_t unres, size_t res, size_t *out,
                          uint64_t *mem, size_t *low)
{
    size_t n = 0;

    *mem = 0;
    *low = SIZE_MAX;
    for (size_t k = b; k < e && (unres > 0 || res > 0); k++) {
        size_t d = p->order[k].idx;
        size_t *left = p->reserved[d] ? &res : &unres;

        if (!p->avail[d] || !fit[d] || *left == 0)
            continue;
        --*left;
        *mem = add_sat(*mem, p->order[k].memory);
        if (d < *low)
            *low = d;
        if (out != NULL)
            out[n++] = d;
    }
}

/*
 * Chooses `gpus` free devices for a job of shape `s` in one group, into
 * p->pick (ascending).  `may_use_reserved`: the job ends by the shadow
 * time, so the head's devices may be lent to it; they are still taken
 * last, so that the head can start early when the jobs it waits for end
 * before their walltime.
 */
static bool pick_now(struct plan *p, struct shape *s, uint32_t gpus,
                     bool may_use_reserved)
{
    const uint8_t *fit = p->fitbuf + s->fit;
    uint32_t *fail = may_use_reserved ? &s->fail_any : &s->fail_unres;
    size_t best_b = 0, best_e = 0, b_res = SIZE_MAX, b_low = SIZE_MAX;
    uint64_t b_mem = UINT64_MAX;

    if (gpus >= *fail ||
        gpus > (may_use_reserved ? p->n_avail : p->n_avail_unres))
        goto none;
    for (size_t b = 0, e; b < p->n_order; b = e) {
        size_t n_unres = 0, n_res = 0, low;
        uint64_t mem;

        for (e = b; e < p->n_order && p->order[e].group == p->order[b].group;
             e++) {
            size_t d = p->order[e].idx;

            if (p->avail[d] && fit[d])
                ++*(p->reserved[d] ? &n_res : &n_unres);
        }
        if (n_unres + (may_use_reserved ? n_res : 0) < gpus)
            continue;
        n_res = gpus > n_unres ? gpus - n_unres : 0;
        take_in_group(p, fit, b, e, gpus - n_res, n_res, NULL, &mem, &low);
        if (better(n_res, mem, low, b_res, b_mem, b_low)) {
            best_b = b;
            best_e = e;
            b_res = n_res;
            b_mem = mem;
            b_low = low;
        }
    }
    if (b_res == SIZE_MAX)
        goto none;
    take_in_group(p, fit, best_b, best_e, gpus - b_res, b_res, p->pick,
                  &b_mem, &b_low);
    qsort(p->pick, gpus, sizeof *p->pick, by_index);
    return true;

none:
    if (gpus < *fail)
        *fail = gpus;
    return false;
}

static int add_start(struct plan *p, size_t job, uint32_t gpus)
{
    struct sched_result *res = p->res;
    struct sched_start *st;

    if (res->n_starts == p->cap_starts) {
        size_t cap = p->cap_starts ? 2 * p->cap_starts : 16;
        struct sched_start *ns = realloc(res->starts, cap * sizeof *ns);

        if (ns == NULL)
            return -ENOMEM;
        res->starts = ns;
        p->cap_starts = cap;
    }
    st = &res->starts[res->n_starts++];
    st->job = job;
    st->devices = p->pool + p->pool_used;
    st->n_devices = gpus;
    memcpy(p->pool + p->pool_used, p->pick, gpus * sizeof *p->pick);
    p->pool_used += gpus;
    return 0;
}

static int add_impossible(struct plan *p, size_t job, const char *reason)
{
    struct sched_result *res = p->res;

    if (res->n_impossible == p->cap_impossible) {
        size_t cap = p->cap_impossible ? 2 * p->cap_impossible : 8;
        struct sched_impossible *ni =
            realloc(res->impossible, cap * sizeof *ni);

        if (ni == NULL)
            return -ENOMEM;
        res->impossible = ni;
        p->cap_impossible = cap;
    }
    res->impossible[res->n_impossible++] =
        (struct sched_impossible){.job = job, .reason = reason};
    return 0;
}

/* The reason filed under (key, x), or NULL. */
static const char *known_reason(const struct plan *p, const char *key,
                                uint64_t x)
{
    const size_t *v = smap_get(&p->reason_ix, key, x);

    return v != NULL ? p->rb->reasons[*v] : NULL;
}

/* Formats a reason, hands it to the result and files it under (key, x);
 * returns it, or NULL when out of memory. */
static const char *new_reason(struct plan *p, const char *key, uint64_t x,
                              const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static const char *new_reason(struct plan *p, const char *key, uint64_t x,
                              const char *fmt, ...)
{
    struct result_block *rb = p->rb;
    char buf[256], *reason;
    va_list ap;

    if (rb->n_reasons == p->cap_reasons) {
        size_t cap = p->cap_reasons ? 2 * p->cap_reasons : 8;
        char **nr = realloc(rb->reasons, cap * sizeof *nr);

        if (nr == NULL)
            return NULL;
        rb->reasons = nr;
        p->cap_reasons = cap;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if ((reason = strdup(buf)) == NULL)
        return NULL;
    /* The result owns it from here, even if filing it fails. */
    rb->reasons[rb->n_reasons++] = reason;
    if (smap_add(&p->reason_ix, key, x, rb->n_reasons - 1) < 0)
        return NULL;
    return reason;
}

static const char *plural(uint32_t n)
{
    return n == 1 ? "" : "s";
}

/* Reasons are filed by (glob, shape index and width) for device refusals
 * and (tenant, top bit and width) for quota ones: distinct keys. */
#define QUOTA_KEY (UINT64_C(1) << 63)

static int no_devices(struct plan *p, size_t i, const struct shape *s)
{
    uint32_t gpus = p->in->queued[i].gpus;
    uint64_t key = (uint64_t)(s - p->shapes) << 32 | gpus;
    const char *reason = known_reason(p, s->model, key);
    char model[96], mem[32], with[64] = "", drained[48] = "";

    if (reason != NULL)
        return add_impossible(p, i, reason);
    err_escape(s->model, model, sizeof model);
    if (s->gpu_memory > 0)
        snprintf(with, sizeof with, " with at least %s",
                 units_format_size(s->gpu_memory, mem, sizeof mem));
    if (s->drained_fit > 0)
        snprintf(drained, sizeof drained, ", not counting %u drained",
                 (unsigned)s->drained_fit);
    if (s->best_group == 0)
        reason = new_reason(p, s->model, key, "asks for %u GPU%s, but no "
                            "device matches model '%s'%s%s", (unsigned)gpus,
                            plural(gpus), model, with, drained);
    else
        reason = new_reason(p, s->model, key, "asks for %u GPUs, but only %u "
                            "device%s in one group match%s model '%s'%s%s",
                            (unsigned)gpus, (unsigned)s->best_group,
                            plural(s->best_group),
                            s->best_group == 1 ? "es" : "", model, with,
                            drained);
    return reason != NULL ? add_impossible(p, i, reason) : -ENOMEM;
}

/* After "asks for N GPU[s], but ", what the reason goes on with; NULL
 * when it does not start so. */
static const char *reason_tail(const char *reason)
{
    const char *p = reason;

    if (p == NULL || strncmp(p, "asks for ", 9) != 0)
        return NULL;
    p += 9;
    if (*p < '0' || *p > '9')
        return NULL;
    while (*p >= '0' && *p <= '9')
        p++;
    if (strncmp(p, " GPU", 4) != 0)
        return NULL;
    p += 4;
    if (*p == 's')
        p++;
    if (strncmp(p, ", but ", 6) != 0)
        return NULL;
    return p + 6;
}

/* The wording is no_devices()'s: "asks for N GPU[s], but " followed by
 * "no device" or "only"; over_quota() goes on with "tenant". */
bool sched_reason_no_device(const char *reason)
{
    const char *p = reason_tail(reason);

    return p != NULL &&
           (strncmp(p, "no device ", 10) == 0 || strncmp(p, "only ", 5) == 0);
}

bool sched_reason_over_max_gpus(const char *reason)
{
    const char *p = reason_tail(reason);

    return p != NULL && strncmp(p, "tenant ", 7) == 0;
}

static int over_quota(struct plan *p, size_t i, const struct tenant_state *t)
{
    const struct sched_job *job = &p->in->queued[i];
    const char *reason = known_reason(p, job->tenant, QUOTA_KEY | job->gpus);
    char name[96];

    if (reason == NULL)
        reason = new_reason(p, job->tenant, QUOTA_KEY | job->gpus,
                            "asks for %u GPU%s, but tenant '%s' may lease at "
                            "most %u at once", (unsigned)job->gpus,
                            plural(job->gpus),
                            err_escape(job->tenant, name, sizeof name),
                            (unsigned)t->max_gpus);
    return reason != NULL ? add_impossible(p, i, reason) : -ENOMEM;
}

/* --- why a job waits -------------------------------------------------- */

/* Wait reasons are filed apart from refusals: bit 62 and the code. */
#define WAIT_KEY(code) (UINT64_C(1) << 62 | (uint64_t)(code) << 56)

const char *sched_wait_code_name(enum sched_wait_code c)
{
    static const char *const names[SCHED_WAIT_COUNT] = {
        NULL, "resources", "reservation", "tenant_max_gpus",
        "tenant_max_running", "fair_share", "node_max_running"};

    return (unsigned)c < SCHED_WAIT_COUNT ? names[c] : NULL;
}

static void set_wait(struct plan *p, size_t i, enum sched_wait_code code,
                     const char *reason)
{
    p->res->waits[i] = (struct sched_wait){.code = reason ? code : 0,
                                           .reason = reason};
}

/* The node-wide reasons, filed under "". */
static const char *new_or_known(struct plan *p, const char *key, uint64_t x,
                                uint64_t n)
{
    const char *reason = known_reason(p, key, x);

    if (reason != NULL)
        return reason;
    if (x == WAIT_KEY(SCHED_WAIT_RESERVATION))
        return new_reason(p, key, x, "starting it now would delay the "
                                     "reservation of an earlier job");
    return new_reason(p, key, x, "the node runs %llu jobs at once, its "
                                 "maximum", (unsigned long long)n);
}

/* Waiting for devices that fit: how many, of which model. */
static const char *wait_devices(struct plan *p, const struct sched_job *job,
                                const struct shape *s)
{
    uint64_t key = WAIT_KEY(SCHED_WAIT_RESOURCES) |
                   (uint64_t)(s - p->shapes) << 32 | job->gpus;
    const char *reason = known_reason(p, s->model, key);
    char model[96], mem[32], with[64] = "";

    if (reason != NULL)
        return reason;
    if (s->gpu_memory > 0)
        snprintf(with, sizeof with, " with at least %s",
                 units_format_size(s->gpu_memory, mem, sizeof mem));
    if (strcmp(s->model, "*") == 0)
        return new_reason(p, s->model, key, "waiting for %u GPU%s%s",
                          (unsigned)job->gpus, plural(job->gpus), with);
    return new_reason(p, s->model, key, "waiting for %u GPU%s of model '%s'%s",
                      (unsigned)job->gpus, plural(job->gpus),
                      err_escape(s->model, model, sizeof model), with);
}

/* A reason about the job's tenant, filed under (tenant, code, x); `fmt`
 * takes the tenant's name and two numbers. */
static const char *wait_tenant(struct plan *p, const struct sched_job *job,
                               enum sched_wait_code code, uint64_t x,
                               const char *fmt, uint64_t a, uint64_t b)
    __attribute__((format(printf, 5, 0)));

static const char *wait_tenant(struct plan *p, const struct sched_job *job,
                               enum sched_wait_code code, uint64_t x,
                               const char *fmt, uint64_t a, uint64_t b)
{
    uint64_t key = WAIT_KEY(code) | x;
    const char *reason = known_reason(p, job->tenant, key);
    char name[96];

    if (reason != NULL)
        return reason;
    err_escape(job->tenant, name, sizeof name);
    return new_reason(p, job->tenant, key, fmt, name, (unsigned long long)a,
                      (unsigned long long)b);
}

/*
 * queued[i] fits nowhere now: reserve for it the devices, in one group,
 * that are free soonest, and remember what the node looks like at that
 * (shadow) time so that backfill cannot push it back.
 */
static void make_head(struct plan *p, size_t i, const struct shape *s)
{
    const struct sched_input *in = p->in;
    const struct sched_job *job = &in->queued[i];
    const uint8_t *fit = p->fitbuf + s->fit;
    struct sched_result *res = p->res;
    struct dkey *keys = p->order;  /* re-sorted here, restored below */
    size_t best_b = 0, b_low = SIZE_MAX;
    uint64_t b_shadow = UINT64_MAX, b_mem = UINT64_MAX;
    bool found = false;
    size_t *head = p->pool + in->n_devices;

    for (size_t k = 0; k < p->n_order; k++)
        keys[k].free_at = p->free_at[keys[k].idx];
    qsort(keys, p->n_order, sizeof *keys, by_group_free_at);
    for (size_t b = 0, e; b < p->n_order; b = e) {
        uint64_t shadow = 0, mem = 0;
        size_t low = SIZE_MAX, n = 0;

        for (e = b; e < p->n_order && keys[e].group == keys[b].group; e++) {
            if (n == job->gpus || !fit[keys[e].idx])
                continue;
            n++;
            shadow = keys[e].free_at;  /* ascending: the last one taken */
            mem = add_sat(mem, keys[e].memory);
            if (keys[e].idx < low)
                low = keys[e].idx;
        }
        if (n < job->gpus)
            continue;
        if (!found || shadow < b_shadow ||
            (shadow == b_shadow && better(0, mem, low, 0, b_mem, b_low))) {
            found = true;
            best_b = b;
            b_shadow = shadow;
            b_mem = mem;
            b_low = low;
        }
    }
    /* Not impossible, so some group has enough fitting devices. */
    if (!found)
        return;
    res->has_head = true;
    res->head = i;
    res->head_start_ms = b_shadow;
    res->head_devices = head;
    for (size_t k = best_b; k < p->n_order && res->n_head_devices < job->gpus;
         k++) {
        size_t d = keys[k].idx;

        if (!fit[d])
            continue;
        head[res->n_head_devices++] = d;
        p->reserved[d] = 1;
        if (p->avail[d])
            p->n_avail_unres--;
    }
    qsort(head, res->n_head_devices, sizeof *head, by_index);
    qsort(keys, p->n_order, sizeof *keys, by_group_memory);

    p->shadow = b_shadow;
    p->head_gpus = job->gpus;
    p->head_tenant = tenant_of(p, job->tenant);
    if (p->head_tenant == NULL)
        return;
    /* What its tenant still holds at the shadow time: the input's running
     * jobs and this pass's starts that end after it. */
    for (size_t k = 0; k < in->n_running; k++) {
        const struct sched_running *rj = &in->running[k];

        if (running_end(p, rj) > p->shadow &&
            tenant_of(p, rj->tenant) == p->head_tenant)
            p->head_tenant_at_shadow += rj->gpus;
    }
    for (size_t k = 0; k < res->n_starts; k++) {
        const struct sched_job *sj = &in->queued[res->starts[k].job];

        if (add_sat(in->now_ms, sj->walltime_ms) > p->shadow &&
            tenant_of(p, sj->tenant) == p->head_tenant)
            p->head_tenant_at_shadow += sj->gpus;
    }
}

/*
 * Whether a job that would still run at the shadow time leaves the head
 * its tenant's quota then.  Devices are handled by pick_now().  A running
 * slot (max_running) needs no check: the job that frees the head's last
 * device ends by the shadow time and so frees a slot too, and every job
 * started now is counted against max_running already.
 */
static bool leaves_head_quota(const struct plan *p,
                              const struct sched_job *job,
                              const struct tenant_state *t)
{
    return job->gpus == 0 || t == NULL || t != p->head_tenant ||
           p->head_tenant_at_shadow + job->gpus + p->head_gpus <= t->max_gpus;
}

static void took(struct plan *p, size_t i, struct tenant_state *t,
                 bool outlasts)
{
    const struct sched_job *job = &p->in->queued[i];
    uint64_t end = add_sat(p->in->now_ms, job->walltime_ms);

    for (uint32_t k = 0; k < job->gpus; k++) {
        size_t d = p->pick[k];

        p->avail[d] = 0;
        p->free_at[d] = end;
        p->n_avail--;
        if (!p->reserved[d])
            p->n_avail_unres--;
    }
    if (t != NULL) {
        t->used += job->gpus;
        t->running++;
    }
    p->running++;
    if (p->in->max_running != 0 && p->running >= p->in->max_running)
        p->full = true;
    if (outlasts && t != NULL && t == p->head_tenant)
        p->head_tenant_at_shadow += job->gpus;
}

/* One queued job: impossible, skipped, started, or made the head.  A job
 * that waits is told why (p->res->waits). */
static int consider(struct plan *p, size_t i)
{
    const struct sched_job *job = &p->in->queued[i];
    struct sched_result *res = p->res;
    struct shape *s = NULL;
    struct tenant_state *t = tenant_of(p, job->tenant);
    bool outlasts;

    if (job->gpus > 0) {
        if ((s = shape_of(p, job)) == NULL)
            return -ENOMEM;
        if (t != NULL && job->gpus > t->max_gpus)
            return over_quota(p, i, t);
        if (job->gpus > s->best_group)
            return no_devices(p, i, s);
    }
    /* Past here only impossible jobs are still reported. */
    if (p->full) {
        /* A job passed over for fairness keeps that reason. */
        if (res->waits[i].code != SCHED_WAIT_FAIR_SHARE)
            set_wait(p, i, SCHED_WAIT_NODE_MAX_RUNNING,
                     new_or_known(p, "", WAIT_KEY(SCHED_WAIT_NODE_MAX_RUNNING),
                                  p->in->max_running));
        return res->waits[i].reason != NULL ? 0 : -ENOMEM;
    }
    if (t != NULL && t->max_running != 0 && t->running >= t->max_running) {
        set_wait(p, i, SCHED_WAIT_TENANT_MAX_RUNNING,
                 wait_tenant(p, job, SCHED_WAIT_TENANT_MAX_RUNNING, 0,
                             "tenant '%s' runs %llu job(s), its max_running "
                             "of %llu", t->running, t->max_running));
        return res->waits[i].reason != NULL ? 0 : -ENOMEM;
    }
    if (t != NULL && p->share != 0 && !p->second_walk &&
        t->running >= p->share) {
        p->deferred[i] = 1;
        set_wait(p, i, SCHED_WAIT_FAIR_SHARE,
                 wait_tenant(p, job, SCHED_WAIT_FAIR_SHARE, 0,
                             "other tenants' jobs go first: tenant '%s' runs "
                             "%llu job(s), its fair share of the node's %llu "
                             "job slots", t->running, p->in->max_running));
        return res->waits[i].reason != NULL ? 0 : -ENOMEM;
    }
    if (t != NULL && job->gpus > 0) {
        if (t->blocked) {
            set_wait(p, i, SCHED_WAIT_TENANT_MAX_GPUS,
                     wait_tenant(p, job, SCHED_WAIT_TENANT_MAX_GPUS, 1,
                                 "tenant '%s' holds %llu GPU(s) of its "
                                 "max_gpus of %llu, and an earlier job of it "
                                 "waits first", t->used, t->max_gpus));
            return res->waits[i].reason != NULL ? 0 : -ENOMEM;
        }
        if (t->used + job->gpus > t->max_gpus) {
            t->blocked = true;
            set_wait(p, i, SCHED_WAIT_TENANT_MAX_GPUS,
                     wait_tenant(p, job, SCHED_WAIT_TENANT_MAX_GPUS, 2,
                                 "tenant '%s' holds %llu GPU(s) of its "
                                 "max_gpus of %llu", t->used, t->max_gpus));
            return res->waits[i].reason != NULL ? 0 : -ENOMEM;
        }
    }
    outlasts = res->has_head &&
               add_sat(p->in->now_ms, job->walltime_ms) > p->shadow;
    if (outlasts && !leaves_head_quota(p, job, t))
        goto reservation;
    if (job->gpus > 0 && !pick_now(p, s, job->gpus, !outlasts)) {
        if (!res->has_head) {
            make_head(p, i, s);
        } else if (outlasts && pick_now(p, s, job->gpus, true)) {
            /* It would fit on devices kept for the head. */
            goto reservation;
        }
        set_wait(p, i, SCHED_WAIT_RESOURCES, wait_devices(p, job, s));
        return res->waits[i].reason != NULL ? 0 : -ENOMEM;
    }
    set_wait(p, i, SCHED_WAIT_NONE, NULL);
    took(p, i, t, outlasts);
    return add_start(p, i, job->gpus);

reservation:
    set_wait(p, i, SCHED_WAIT_RESERVATION,
             new_or_known(p, "", WAIT_KEY(SCHED_WAIT_RESERVATION), 0));
    return res->waits[i].reason != NULL ? 0 : -ENOMEM;
}

static void plan_free(struct plan *p)
{
    free(p->avail);
    free(p->reserved);
    free(p->free_at);
    free(p->order);
    free(p->pick);
    free(p->tenant_ix.slot);
    free(p->tenants);
    free(p->running_ix.slot);
    free(p->shape_ix.slot);
    free(p->reason_ix.slot);
    free(p->shapes);
    free(p->fitbuf);
    free(p->deferred);
}

void sched_result_free(struct sched_result *r)
{
    /* r is the first member of its result_block. */
    struct result_block *rb = (struct result_block *)r;

    if (r == NULL)
        return;
    free(r->starts);
    free(r->impossible);
    free(r->waits);
    for (size_t i = 0; i < rb->n_reasons; i++)
        free(rb->reasons[i]);
    free(rb->reasons);
    free(rb);
}

int sched_plan(const struct sched_input *in, struct sched_result **ret_result)
{
    struct plan p = {.in = in};
    struct result_block *rb;
    int r;

    if (in == NULL || ret_result == NULL ||
        (in->n_devices > 0 && in->devices == NULL) ||
        (in->n_running > 0 && in->running == NULL) ||
        (in->n_queued > 0 && in->queued == NULL) ||
        (in->n_tenants > 0 && in->tenants == NULL))
        return -EINVAL;
    if (in->n_devices > (SIZE_MAX - sizeof *rb) / (2 * sizeof(size_t)))
        return -ENOMEM;
    rb = calloc(1, sizeof *rb + 2 * in->n_devices * sizeof(size_t));
    if (rb == NULL)
        return -ENOMEM;
    p.rb = rb;
    p.res = &rb->r;
    if ((rb->r.waits = calloc(in->n_queued + 1, sizeof *rb->r.waits)) ==
        NULL) {
        free(rb);
        return -ENOMEM;
    }
    p.pool = rb->pool;
    p.running = in->n_running;
    p.full = in->max_running != 0 && p.running >= in->max_running;
    if ((r = setup_tenants(&p)) < 0 || (r = setup_devices(&p)) < 0)
        goto out;
    for (size_t i = 0; i < in->n_queued; i++)
        if ((r = consider(&p, i)) < 0)
            goto out;
    if (p.deferred != NULL) {
        size_t first = p.res->n_starts;

        p.second_walk = true;
        for (size_t i = 0; i < in->n_queued && !p.full; i++)
            if (p.deferred[i] && (r = consider(&p, i)) < 0)
                goto out;
        /* Starts are applied in queue order, as without fair share. */
        if (p.res->n_starts > first)
            qsort(p.res->starts, p.res->n_starts, sizeof *p.res->starts,
                  by_job);
    }
    *ret_result = p.res;
    p.res = NULL;
out:
    sched_result_free(p.res);
    plan_free(&p);
    return r;
}
