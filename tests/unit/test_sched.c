/*
 * test_sched.c - the scheduler on hand-built nodes: which jobs start now,
 * on which devices, which one holds the reservation and until when, and
 * which are refused for good.
 *
 * Every scenario is checked twice: against the exact decisions written
 * out by hand, and against invariants any plan must keep (a device is
 * leased once, fits, is neither drained nor busy, groups are not mixed,
 * quotas and max_running hold, nothing that outlasts the shadow time
 * takes a reserved device).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scheduler.h"
#include "tap.h"

#define GiB (UINT64_C(1) << 30)
#define NOW UINT64_C(1000)
#define N(a) (sizeof(a) / sizeof((a)[0]))

#define FREE(m, gb, grp) {.model = (m), .memory = (gb) * GiB, .group = (grp)}
#define HELD(m, gb, grp, who)                                              \
    {.model = (m), .memory = (gb) * GiB, .group = (grp), .busy = true,     \
     .holder = (who)}
#define DRAINED(m, gb, grp)                                                \
    {.model = (m), .memory = (gb) * GiB, .group = (grp), .drained = true}
/* A job of `gpus` devices matching `model` with `gb` GiB, for `wall` ms. */
#define JOB(id, tenant, gpus, model, gb, wall)                             \
    {(id), (tenant), (gpus), (model), (gb) * GiB, (wall)}
#define RUN(id, tenant, gpus, ends_in) {(id), (tenant), (gpus), NOW + (ends_in)}

struct scenario {
    const struct sched_device *dev;
    size_t n_dev;
    const struct sched_running *run;
    size_t n_run;
    const struct sched_job *job;
    size_t n_job;
    const struct sched_tenant *ten;
    size_t n_ten;
    uint32_t max_running;
};

static struct sched_input input_of(const struct scenario *s)
{
    return (struct sched_input){
        .now_ms = NOW,
        .devices = s->dev, .n_devices = s->n_dev,
        .running = s->run, .n_running = s->n_run,
        .queued = s->job, .n_queued = s->n_job,
        .tenants = s->ten, .n_tenants = s->n_ten,
        .max_running = s->max_running,
    };
}

/* --- the plan as one line ------------------------------------------------
 * "A[0,1] B[] | head C@1100[0,3] | impossible X Y": starts in order with
 * their device indexes, the head with its shadow time ("never" when it
 * cannot be predicted) and reserved devices, the refused jobs.  "-" when
 * nothing starts. */

static void put(char *buf, size_t len, size_t *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t len, size_t *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*o >= len)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *o, len - *o, fmt, ap);
    va_end(ap);
    *o = n < 0 ? len : *o + (size_t)n;
}

static void put_devices(char *buf, size_t len, size_t *o, const size_t *d,
                        size_t n)
{
    put(buf, len, o, "[");
    for (size_t k = 0; k < n; k++)
        put(buf, len, o, "%s%zu", k ? "," : "", d[k]);
    put(buf, len, o, "]");
}

static const char *render(const struct sched_input *in,
                          const struct sched_result *r, char *buf,
                          size_t len)
{
    size_t o = 0;

    buf[0] = '\0';
    if (r->n_starts == 0)
        put(buf, len, &o, "-");
    for (size_t i = 0; i < r->n_starts; i++) {
        put(buf, len, &o, "%s%s", i ? " " : "",
            in->queued[r->starts[i].job].id);
        put_devices(buf, len, &o, r->starts[i].devices, r->starts[i].n_devices);
    }
    if (r->has_head) {
        put(buf, len, &o, " | head %s@", in->queued[r->head].id);
        if (r->head_start_ms == SCHED_NEVER)
            put(buf, len, &o, "never");
        else
            put(buf, len, &o, "%" PRIu64, r->head_start_ms);
        put_devices(buf, len, &o, r->head_devices, r->n_head_devices);
    }
    if (r->n_impossible > 0)
        put(buf, len, &o, " | impossible");
    for (size_t i = 0; i < r->n_impossible; i++)
        put(buf, len, &o, " %s", in->queued[r->impossible[i].job].id);
    return buf;
}

/* --- invariants every plan keeps ------------------------------------------ */

static uint32_t quota_of(const struct sched_input *in, const char *tenant)
{
    for (size_t i = 0; tenant != NULL && i < in->n_tenants; i++)
        if (strcmp(in->tenants[i].name, tenant) == 0)
            return in->tenants[i].max_gpus;
    return UINT32_MAX;
}

static bool same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* GPUs held by `tenant` at time `at` (0: now, counting every start). */
static uint64_t held_by(const struct sched_input *in,
                        const struct sched_result *r, const char *tenant,
                        uint64_t at)
{
    uint64_t n = 0;

    for (size_t i = 0; i < in->n_running; i++)
        if (same(in->running[i].tenant, tenant) &&
            (at == 0 || in->running[i].end_ms > at))
            n += in->running[i].gpus;
    for (size_t i = 0; i < r->n_starts; i++) {
        const struct sched_job *j = &in->queued[r->starts[i].job];

        if (same(j->tenant, tenant) &&
            (at == 0 || in->now_ms + j->walltime_ms > at))
            n += j->gpus;
    }
    return n;
}

static bool fit_set(const struct sched_input *in, const struct sched_job *j,
                    const size_t *d, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (d[k] >= in->n_devices || in->devices[d[k]].drained ||
            !sched_device_fits(j, &in->devices[d[k]]) ||
            in->devices[d[k]].group != in->devices[d[0]].group ||
            (k > 0 && d[k] <= d[k - 1]))
            return false;
    }
    return n == j->gpus;
}

/* NULL, or the first broken rule. */
static const char *broken(const struct sched_input *in,
                          const struct sched_result *r)
{
    static char why[160];
    uint8_t *used = calloc(in->n_devices + 1, 1);
    uint8_t *seen = calloc(in->n_queued + 1, 1);
    const char *bad = NULL;

    if (used == NULL || seen == NULL) {
        bad = "out of memory";
        goto out;
    }
    for (size_t i = 0; i < r->n_impossible && !bad; i++) {
        if (r->impossible[i].job >= in->n_queued ||
            (i > 0 && r->impossible[i].job <= r->impossible[i - 1].job))
            bad = "impossible jobs not in queue order";
        else
            seen[r->impossible[i].job] = 1;
    }
    for (size_t i = 0; i < r->n_starts && !bad; i++) {
        const struct sched_start *st = &r->starts[i];
        const struct sched_job *j = &in->queued[st->job];

        if (st->job >= in->n_queued || seen[st->job] ||
            (i > 0 && st->job <= r->starts[i - 1].job)) {
            bad = "starts not in queue order, or refused and started";
            break;
        }
        seen[st->job] = 1;
        if (!fit_set(in, j, st->devices, st->n_devices)) {
            snprintf(why, sizeof why, "%s: devices do not fit", j->id);
            bad = why;
            break;
        }
        for (size_t k = 0; k < st->n_devices && !bad; k++) {
            const struct sched_device *d = &in->devices[st->devices[k]];

            if (d->busy || used[st->devices[k]]++) {
                snprintf(why, sizeof why, "%s: device %zu not free", j->id,
                         st->devices[k]);
                bad = why;
            }
        }
        if (!bad && held_by(in, r, j->tenant, 0) > quota_of(in, j->tenant)) {
            snprintf(why, sizeof why, "%s: tenant over quota", j->id);
            bad = why;
        }
    }
    if (!bad && in->max_running != 0 &&
        r->n_starts > 0 && in->n_running + r->n_starts > in->max_running)
        bad = "max_running exceeded";
    if (!bad && r->has_head) {
        const struct sched_job *h = &in->queued[r->head];

        if (seen[r->head])
            bad = "head started or refused";
        else if (!fit_set(in, h, r->head_devices, r->n_head_devices))
            bad = "reservation does not fit the head";
        for (size_t i = 0; i < r->n_starts && !bad; i++) {
            const struct sched_start *st = &r->starts[i];
            uint64_t end = in->now_ms + in->queued[st->job].walltime_ms;

            if (st->job < r->head || end <= r->head_start_ms)
                continue;
            for (size_t k = 0; k < st->n_devices; k++)
                for (size_t m = 0; m < r->n_head_devices; m++)
                    if (st->devices[k] == r->head_devices[m])
                        bad = "a job outlasting the shadow time took a "
                              "reserved device";
        }
        if (!bad && r->head_start_ms != SCHED_NEVER &&
            held_by(in, r, h->tenant, r->head_start_ms) + h->gpus >
                quota_of(in, h->tenant))
            bad = "backfill took the quota the head needs at its shadow time";
    }
out:
    free(used);
    free(seen);
    return bad;
}

/* Plans `s` and checks the decisions against `want` and the invariants.
 * Returns the result for further checks; the caller frees it. */
static struct sched_result *expect(const char *what, const struct scenario *s,
                                   const char *want)
{
    struct sched_input in = input_of(s);
    struct sched_result *r = NULL;
    char buf[1024], label[256];
    const char *bad;
    int rc = sched_plan(&in, &r);

    if (!tap_ok(rc == 0 && r != NULL, "%s: plans (rc %d)", what, rc))
        return NULL;
    tap_is_str(render(&in, r, buf, sizeof buf), want, what);
    bad = broken(&in, r);
    snprintf(label, sizeof label, "%s: invariants hold", what);
    tap_ok(bad == NULL, "%s%s%s", label, bad ? ": " : "", bad ? bad : "");
    return r;
}

static void check(const char *what, const struct scenario *s, const char *want)
{
    sched_result_free(expect(what, s, want));
}

/* --- scenarios ------------------------------------------------------------ */

static void test_fits(void)
{
    struct sched_device h100 = FREE("H100-80G", 80, 0);
    struct sched_device nomodel = {.model = NULL, .memory = GiB};
    struct sched_job any = JOB("a", NULL, 1, NULL, 0, 1);
    struct sched_job h = JOB("h", NULL, 1, "H100*", 80, 1);
    struct sched_job big = JOB("b", NULL, 1, "H100*", 81, 1);
    struct sched_job a100 = JOB("c", NULL, 1, "A100*", 0, 1);
    struct sched_job star = JOB("s", NULL, 1, "*", 0, 1);

    tap_ok(sched_device_fits(&any, &h100), "fits: no model means any model");
    tap_ok(sched_device_fits(&h, &h100), "fits: glob, memory exactly enough");
    tap_ok(!sched_device_fits(&big, &h100), "fits: one GiB short is no fit");
    tap_ok(!sched_device_fits(&a100, &h100), "fits: other model is no fit");
    tap_ok(sched_device_fits(&star, &nomodel),
           "fits: '*' takes a device with no model");
    tap_ok(!sched_device_fits(&a100, &nomodel), "fits: a named model does not");
}

static void test_bad_input(void)
{
    struct sched_input in = {.now_ms = NOW, .n_devices = 2};
    struct sched_result *r = (struct sched_result *)&in;

    tap_is_int(sched_plan(&in, &r), -EINVAL, "NULL devices with a count");
    tap_ok(r == (struct sched_result *)&in, "result untouched on failure");
    tap_is_int(sched_plan(NULL, &r), -EINVAL, "NULL input");
    in.n_devices = 0;
    tap_is_int(sched_plan(&in, NULL), -EINVAL, "NULL result pointer");
    r = NULL;
    tap_ok(sched_plan(&in, &r) == 0 && r != NULL && r->n_starts == 0 &&
               !r->has_head && r->n_impossible == 0,
           "empty node, empty queue: nothing to do");
    sched_result_free(r);
    sched_result_free(NULL);
}

static void test_fifo(void)
{
    struct sched_device dev[] = {FREE("H100", 80, 0), FREE("H100", 80, 0),
                                 FREE("H100", 80, 0), FREE("H100", 80, 0)};
    struct sched_job all_fit[] = {JOB("A", NULL, 2, "*", 0, 100),
                                  JOB("B", NULL, 1, "*", 0, 100),
                                  JOB("C", NULL, 1, "*", 0, 100)};
    struct sched_job blocked[] = {JOB("A", NULL, 2, "*", 0, 100),
                                  JOB("B", NULL, 1, "*", 0, 100),
                                  JOB("C", NULL, 2, "*", 0, 100),
                                  JOB("D", NULL, 1, "*", 0, 200)};
    struct scenario s = {dev, N(dev), NULL, 0, all_fit, N(all_fit), NULL, 0, 0};

    check("fifo: everything fits, started in queue order", &s,
          "A[0,1] B[2] C[3]");
    /* C needs two and one is left: C waits with a reservation of the
     * free device and the first busy one that ends; D fits on the free
     * one but would still run when C could start, so it waits too. */
    s.job = blocked;
    s.n_job = N(blocked);
    check("fifo: a later job that fits does not pass a blocked one", &s,
          "A[0,1] B[2] | head C@1100[0,3]");
}

static void test_model_and_memory(void)
{
    struct sched_device dev[] = {FREE("A100-40G", 40, 0),
                                 FREE("H100-80G", 80, 0),
                                 FREE("L4", 24, 0)};
    struct sched_job by_model[] = {JOB("h", NULL, 1, "H100*", 0, 10),
                                   JOB("a", NULL, 1, "A100-*", 0, 10),
                                   JOB("l", NULL, 1, "L[0-9]", 0, 10)};
    struct sched_device same[] = {FREE("X", 80, 0), FREE("X", 40, 0),
                                  FREE("X", 24, 0)};
    /* Lowest index first would give "any" the 80G device and leave the
     * 60G job nothing; best fit starts all three. */
    struct sched_job by_memory[] = {JOB("any", NULL, 1, "*", 0, 10),
                                    JOB("30G", NULL, 1, "*", 30, 10),
                                    JOB("60G", NULL, 1, "*", 60, 10)};
    struct sched_job by_count[] = {JOB("two60G", NULL, 2, "*", 60, 10),
                                   JOB("two30G", NULL, 2, "*", 30, 10),
                                   JOB("one", NULL, 1, "*", 0, 10)};
    struct scenario s = {dev, N(dev), NULL, 0, by_model, N(by_model),
                         NULL, 0, 0};

    check("fit: model glob picks the matching device", &s, "h[1] a[0] l[2]");
    s.dev = same;
    s.n_dev = N(same);
    s.job = by_memory;
    s.n_job = N(by_memory);
    check("fit: memory minimum, smallest sufficient device first", &s,
          "any[2] 30G[1] 60G[0]");
    s.job = by_count;
    s.n_job = N(by_count);
    check("fit: count of devices with enough memory", &s,
          "two30G[0,1] one[2] | impossible two60G");
}

static void test_groups(void)
{
    struct sched_device dev[] = {FREE("H100", 80, 0), HELD("H100", 80, 0, "r0"),
                                 FREE("H100", 80, 1), FREE("H100", 80, 1)};
    struct sched_device split[] = {FREE("H100", 80, 0),
                                   HELD("H100", 80, 0, "r0"),
                                   FREE("H100", 80, 1),
                                   HELD("H100", 80, 1, "r1")};
    struct sched_running run[] = {RUN("r0", NULL, 1, 300),
                                  RUN("r1", NULL, 1, 200)};
    struct sched_job two[] = {JOB("two", NULL, 2, "*", 0, 10)};
    struct sched_job three[] = {JOB("three", NULL, 3, "*", 0, 10),
                                JOB("one", NULL, 1, "*", 0, 10)};
    struct scenario s = {dev, N(dev), run, 1, two, N(two), NULL, 0, 0};

    check("groups: two devices from the group that has two free", &s,
          "two[2,3]");
    /* Two free devices, one per group: not a fit.  Group 1's busy device
     * is free first, so the reservation is there. */
    s.dev = split;
    s.n_dev = N(split);
    s.n_run = 2;
    check("groups: never mixed, reservation in the group free first", &s,
          "- | head two@1200[2,3]");
    s.job = three;
    s.n_job = N(three);
    check("groups: wider than any group is impossible, blocks nothing", &s,
          "one[0] | impossible three");
}

static void test_drained(void)
{
    struct sched_device dev[] = {DRAINED("H100", 80, 0), FREE("H100", 80, 0),
                                 HELD("H100", 80, 0, "r0"),
                                 DRAINED("H100", 80, 0)};
    struct sched_running run[] = {RUN("r0", NULL, 1, 50)};
    struct sched_job job[] = {JOB("one", NULL, 1, "*", 0, 10),
                              JOB("three", NULL, 3, "*", 0, 10),
                              JOB("two", NULL, 2, "*", 0, 10),
                              JOB("short", NULL, 1, "*", 0, 10)};
    struct scenario s = {dev, N(dev), run, N(run), job, N(job), NULL, 0, 0};
    struct sched_result *r;

    /* Device 0 is free and lowest, but drained; "two" can only ever use
     * devices 1 and 2, so its reservation is those. */
    r = expect("drained: never leased, never reserved, counted as absent",
               &s, "one[1] | head two@1050[1,2] | impossible three");
    if (r != NULL)
        tap_is_str(r->n_impossible ? r->impossible[0].reason : NULL,
                   "asks for 3 GPUs, but only 2 devices in one group match "
                   "model '*', not counting 2 drained",
                   "drained: the reason says drained devices were not counted");
    sched_result_free(r);
}

static void test_cpu_only(void)
{
    struct sched_device dev[] = {HELD("H100", 80, 0, "r0")};
    struct sched_running run[] = {RUN("r0", NULL, 1, 100)};
    struct sched_tenant ten[] = {{"t", 0, 0}};
    struct sched_job job[] = {JOB("gpu", NULL, 1, "*", 0, 10),
                              JOB("cpu", "t", 0, NULL, 0, 100000),
                              JOB("cpu2", NULL, 0, "no-such-model", 999, 5)};
    struct sched_job gpu_for_t[] = {JOB("tgpu", "t", 1, "*", 0, 10),
                                    JOB("tcpu", "t", 0, NULL, 0, 10)};
    struct scenario s = {dev, N(dev), run, N(run), job, N(job), ten, N(ten), 0};

    /* A CPU-only job needs no device: neither the busy device, the head's
     * reservation, a model nor a tenant without GPUs stops it. */
    check("cpu-only: starts with no device past a blocked GPU job", &s,
          "cpu[] cpu2[] | head gpu@1100[0]");
    s.dev = NULL;
    s.n_dev = 0;
    s.run = NULL;
    s.n_run = 0;
    s.job = gpu_for_t;
    s.n_job = N(gpu_for_t);
    check("cpu-only: runs on a node with no devices", &s,
          "tcpu[] | impossible tgpu");
}

static void test_quota(void)
{
    struct sched_device dev[] = {HELD("H100", 80, 0, "ra"), FREE("H100", 80, 0),
                                 FREE("H100", 80, 0), FREE("H100", 80, 0),
                                 FREE("H100", 80, 0), FREE("H100", 80, 0)};
    struct sched_running run[] = {RUN("ra", "a", 1, 100)};
    struct sched_tenant ten[] = {{"a", 2, 0}, {"b", 3, 0}};
    /* a holds 1 of its 2.  a1 waits for a's quota without a reservation
     * (b may go ahead); a2 would fit the quota but waits behind a1 (a
     * tenant's own queue stays FIFO); a3 needs no GPU; c has no quota;
     * b's second job would take b over 3. */
    struct sched_job job[] = {JOB("a1", "a", 2, "*", 0, 10),
                              JOB("b1", "b", 2, "*", 0, 10),
                              JOB("a2", "a", 1, "*", 0, 10),
                              JOB("a3", "a", 0, NULL, 0, 10),
                              JOB("b2", "b", 2, "*", 0, 10),
                              JOB("c1", "c", 2, "*", 0, 10)};
    struct scenario s = {dev, N(dev), run, N(run), job, N(job), ten, N(ten), 0};

    check("quota: blocks one tenant, not the others, no reservation", &s,
          "b1[1,2] a3[] c1[3,4]");
}

static void test_impossible(void)
{
    struct sched_device dev[] = {FREE("H100-80G", 80, 0),
                                 FREE("H100-80G", 80, 0),
                                 FREE("H100-80G", 80, 0),
                                 FREE("H100-80G", 80, 0)};
    struct sched_tenant ten[] = {{"a", 2, 0}, {"b\nx", 1, 0}};
    struct sched_job job[] = {JOB("quota", "a", 3, "*", 0, 10),
                              JOB("wide", "z", 5, "*", 0, 10),
                              JOB("model", "z", 1, "V100*\x1b[2J", 0, 10),
                              JOB("memory", "z", 1, "H100*", 96, 10),
                              JOB("hostile", "b\nx", 2, "*", 0, 10),
                              JOB("ok", "z", 4, "*", 0, 10)};
    struct scenario s = {dev, N(dev), NULL, 0, job, N(job), ten, N(ten), 0};
    static const char *const want[] = {
        "asks for 3 GPUs, but tenant 'a' may lease at most 2 at once",
        "asks for 5 GPUs, but only 4 devices in one group match model '*'",
        "asks for 1 GPU, but no device matches model 'V100*\\x1b[2J'",
        ("asks for 1 GPU, but no device matches model 'H100*' with at least "
         "96.0 GiB"),
        "asks for 2 GPUs, but tenant 'b\\x0ax' may lease at most 1 at once",
    };
    struct sched_result *r;

    r = expect("impossible: refused with a reason, the queue goes on", &s,
               "ok[0,1,2,3] | impossible quota wide model memory hostile");
    for (size_t i = 0; r != NULL && i < N(want); i++)
        tap_is_str(i < r->n_impossible ? r->impossible[i].reason : NULL,
                   want[i], "impossible: reason, tenant text escaped");
    sched_result_free(r);
}

/* r0 holds devices 0 and 1 until 1100, r1 device 2 until 1050; device 3
 * is free.  The head needs all four: shadow 1100. */
static void test_backfill(void)
{
    struct sched_device dev[] = {HELD("H100", 80, 0, "r0"),
                                 HELD("H100", 80, 0, "r0"),
                                 HELD("H100", 80, 0, "r1"),
                                 FREE("H100", 80, 0)};
    struct sched_running run[] = {RUN("r0", NULL, 2, 100),
                                  RUN("r1", NULL, 1, 50)};
    struct sched_job shortj[] = {JOB("H", NULL, 4, "*", 0, 500),
                                 JOB("S", NULL, 1, "*", 0, 100)};
    struct sched_job longj[] = {JOB("H", NULL, 4, "*", 0, 500),
                                JOB("L", NULL, 1, "*", 0, 101)};
    struct scenario s = {dev, N(dev), run, N(run), shortj, N(shortj),
                         NULL, 0, 0};

    check("backfill: a short job ending by the shadow time jumps ahead", &s,
          "S[3] | head H@1100[0,1,2,3]");
    s.job = longj;
    check("backfill: a job 1 ms too long would delay the head: it waits", &s,
          "- | head H@1100[0,1,2,3]");
}

static void test_backfill_unreserved(void)
{
    /* The head wants four H100s; the L4 in group 1 is not for it. */
    struct sched_device dev[] = {HELD("H100", 80, 0, "r0"),
                                 HELD("H100", 80, 0, "r0"),
                                 HELD("H100", 80, 0, "r0"), FREE("H100", 80, 0),
                                 FREE("L4", 24, 1)};
    struct sched_running run[] = {RUN("r0", NULL, 3, 100)};
    struct sched_job job[] = {JOB("H", NULL, 4, "H100*", 0, 500),
                              JOB("L1", NULL, 1, "*", 0, 9999),
                              JOB("L2", NULL, 1, "H100*", 0, 9999),
                              JOB("S", NULL, 1, "H100*", 0, 50)};
    /* A short job is lent a reserved device only when no other fits: S2
     * takes the L4 and so L3 finds nothing it may use. */
    struct sched_job prefer[] = {JOB("H", NULL, 4, "H100*", 0, 500),
                                 JOB("S2", NULL, 1, "*", 0, 50),
                                 JOB("L3", NULL, 1, "*", 0, 9999)};
    /* Two L4s now: a job too wide for them must not stop a narrower one
     * of the same kind, long or short. */
    struct sched_device two_l4[] = {HELD("H100", 80, 0, "r0"),
                                    HELD("H100", 80, 0, "r0"),
                                    HELD("H100", 80, 0, "r0"),
                                    FREE("H100", 80, 0), FREE("L4", 24, 1),
                                    FREE("L4", 24, 1)};
    struct sched_job widths[] = {JOB("H", NULL, 4, "H100*", 0, 500),
                                 JOB("L3", NULL, 3, "*", 0, 9999),
                                 JOB("L2", NULL, 2, "*", 0, 9999),
                                 JOB("S2", NULL, 2, "*", 0, 50),
                                 JOB("S1", NULL, 1, "*", 0, 50)};
    struct scenario s = {dev, N(dev), run, N(run), job, N(job), NULL, 0, 0};

    check("backfill: a long job on a device not reserved for the head jumps",
          &s, "L1[4] S[3] | head H@1100[0,1,2,3]");
    s.job = prefer;
    s.n_job = N(prefer);
    check("backfill: short jobs take unreserved devices first", &s,
          "S2[4] | head H@1100[0,1,2,3]");
    s.dev = two_l4;
    s.n_dev = N(two_l4);
    s.job = widths;
    s.n_job = N(widths);
    check("backfill: a job too wide to fit does not stop narrower ones", &s,
          "L2[4,5] S1[3] | head H@1100[0,1,2,3]");
}

static void test_head_quota(void)
{
    /* Tenant a may hold 4 and holds 1 (ra, until long after); its head
     * takes 3 more at 1100.  Another job of a that would still run then
     * would leave the head over quota; one that ends by then would not. */
    struct sched_device dev[] = {HELD("H100", 80, 0, "rz"),
                                 HELD("H100", 80, 0, "rz"),
                                 HELD("H100", 80, 0, "rz"),
                                 HELD("H100", 80, 0, "rz"),
                                 FREE("L4", 24, 0), FREE("L4", 24, 0),
                                 HELD("L4", 24, 0, "ra")};
    struct sched_running run[] = {RUN("rz", "z", 4, 100),
                                  RUN("ra", "a", 1, 5000)};
    struct sched_tenant ten[] = {{"a", 4, 0}, {"b", 4, 0}};
    struct sched_job job[] = {JOB("H", "a", 3, "H100*", 0, 500),
                              JOB("a-long", "a", 1, "*", 0, 9999),
                              JOB("b-long", "b", 1, "*", 0, 9999),
                              JOB("a-short", "a", 1, "*", 0, 100)};
    struct scenario s = {dev, N(dev), run, N(run), job, N(job), ten, N(ten), 0};

    /* What a holds at 1100 counts jobs started before the head in this
     * pass (A0) and backfilled after it (a-long1, a-long2): with H's 2
     * that is a's 5, and a-long3 would make 6. */
    struct sched_device l4s[] = {HELD("H100", 80, 0, "rz"),
                                 HELD("H100", 80, 0, "rz"),
                                 HELD("H100", 80, 0, "rz"),
                                 HELD("H100", 80, 0, "rz"),
                                 FREE("L4", 24, 0), FREE("L4", 24, 0),
                                 FREE("L4", 24, 0), FREE("L4", 24, 0)};
    struct sched_tenant five[] = {{"a", 5, 0}};
    struct sched_job stream[] = {JOB("A0", "a", 1, "L4", 0, 9999),
                                 JOB("H", "a", 2, "H100*", 0, 500),
                                 JOB("a-long1", "a", 1, "*", 0, 9999),
                                 JOB("a-long2", "a", 1, "*", 0, 9999),
                                 JOB("a-long3", "a", 1, "*", 0, 9999)};

    check("backfill: the head's quota at its shadow time is kept", &s,
          "b-long[4] a-short[5] | head H@1100[0,1,2]");
    s = (struct scenario){l4s, N(l4s), run, 1, stream, N(stream), five,
                          N(five), 0};
    check("backfill: the head's quota counts every job still running then",
          &s, "A0[4] a-long1[5] a-long2[6] | head H@1100[0,1]");
}

static void test_unknown_holder(void)
{
    /* Device 1 is held by a job the input does not list: when it comes
     * back cannot be known, so nothing can be protected and any job that
     * fits starts. */
    struct sched_device dev[] = {FREE("H100", 80, 0),
                                 HELD("H100", 80, 0, "ghost"),
                                 FREE("H100", 80, 0),
                                 HELD("H100", 80, 0, NULL)};
    struct sched_job job[] = {JOB("H", NULL, 3, "*", 0, 10),
                              JOB("L", NULL, 1, "*", 0, 99999)};
    /* r0 is past its walltime and being killed: its device is due now,
     * not in the past. */
    struct sched_device late[] = {HELD("H100", 80, 0, "r0"), FREE("L4", 24, 0)};
    struct sched_running overdue[] = {{"r0", NULL, 1, NOW - 50}};
    struct sched_job after[] = {JOB("H", NULL, 1, "H100*", 0, 10),
                                JOB("S", NULL, 1, "*", 0, 5)};
    struct scenario s = {dev, N(dev), NULL, 0, job, N(job), NULL, 0, 0};

    check("reservation: a holder not listed gives no shadow time", &s,
          "L[0] | head H@never[0,1,2]");
    s = (struct scenario){late, N(late), overdue, N(overdue), after, N(after),
                          NULL, 0, 0};
    check("reservation: a job past its end frees its devices now", &s,
          "S[1] | head H@1000[0]");
}

static void test_max_running(void)
{
    struct sched_device dev[] = {FREE("H100", 80, 0), FREE("H100", 80, 0)};
    struct sched_running run[] = {RUN("r0", NULL, 0, 100)};
    struct sched_job job[] = {JOB("c1", NULL, 0, NULL, 0, 10),
                              JOB("g1", NULL, 1, "*", 0, 10),
                              JOB("c2", NULL, 0, NULL, 0, 10),
                              JOB("huge", NULL, 9, "*", 0, 10)};
    struct scenario s = {dev, N(dev), run, N(run), job, N(job), NULL, 0, 2};

    check("max_running: one slot left, one job starts; refusals still made",
          &s, "c1[] | impossible huge");
    s.max_running = 1;
    check("max_running: already full, nothing starts", &s,
          "- | impossible huge");
    s.max_running = 0;
    check("max_running: 0 is unlimited", &s,
          "c1[] g1[0] c2[] | impossible huge");
}

static void test_fair_share(void)
{
    struct sched_running run[] = {RUN("ra1", "a", 0, 100), RUN("ra2", "a", 0, 100),
                                  RUN("ra3", "a", 0, 100)};
    struct sched_tenant ten[] = {{"a", 0, 0}, {"b", 0, 0}, {"c", 0, 1}};
    struct sched_job job[] = {JOB("a5", "a", 0, NULL, 0, 10),
                              JOB("a6", "a", 0, NULL, 0, 10),
                              JOB("b1", "b", 0, NULL, 0, 10)};
    struct sched_job alone[] = {JOB("a5", "a", 0, NULL, 0, 10),
                                JOB("a6", "a", 0, NULL, 0, 10)};
    struct sched_job spare[] = {JOB("a5", "a", 0, NULL, 0, 10),
                                JOB("a6", "a", 0, NULL, 0, 10),
                                JOB("a7", "a", 0, NULL, 0, 10),
                                JOB("b1", "b", 0, NULL, 0, 10)};
    struct sched_running crun[] = {RUN("rc1", "c", 0, 100)};
    struct sched_job cjob[] = {JOB("c2", "c", 0, NULL, 0, 10),
                               JOB("b1", "b", 0, NULL, 0, 10)};
    struct scenario s = {NULL, 0, run, N(run), job, N(job), ten, N(ten), 4};

    /* a holds 3 of 4 slots and queued first; b waits too: the share is
     * 2 each, so the free slot goes to b, not to a's next job. */
    check("fair share: the last slot goes to the tenant under its share",
          &s, "b1[]");
    s.job = alone;
    s.n_job = N(alone);
    check("fair share: a tenant waiting alone takes every free slot", &s,
          "a5[]");
    s.run = run + 2;
    s.n_run = 1;
    s.job = spare;
    s.n_job = N(spare);
    check("fair share: slots the others cannot use go back to the tenant "
          "passed over, in queue order",
          &s, "a5[] a6[] b1[]");
    s.run = crun;
    s.n_run = N(crun);
    s.job = cjob;
    s.n_job = N(cjob);
    check("max_running of a tenant: its jobs wait, the others' start", &s,
          "b1[]");
}

/* --- starvation: a wide job against an endless stream of narrow ones ------ */

#define SIM_JOBS 128
#define SIM_DEVS 4

struct sim {
    char id[SIM_JOBS][24];
    struct sched_job job[SIM_JOBS];
    size_t n_jobs;
    size_t queue[SIM_JOBS], n_queue;
    struct { size_t job; uint64_t end; } run[SIM_DEVS + 8];
    size_t n_run;
    int held_by[SIM_DEVS];  /* job index, or -1 */
};

static size_t sim_submit(struct sim *s, uint32_t gpus, uint64_t wall)
{
    size_t j = s->n_jobs++;

    snprintf(s->id[j], sizeof s->id[j], "%c%zu", gpus > 1 ? 'W' : 's', j);
    s->job[j] = (struct sched_job){s->id[j], "t", gpus, "*", 0, wall};
    s->queue[s->n_queue++] = j;
    return j;
}

static void sim_run(struct sim *s, size_t j, const size_t *devs, size_t n,
                    uint64_t end)
{
    s->run[s->n_run].job = j;
    s->run[s->n_run++].end = end;
    for (size_t k = 0; k < n; k++)
        s->held_by[devs[k]] = (int)j;
}

static void test_starvation(void)
{
    struct sim *s = calloc(1, sizeof *s);
    struct sched_device dev[SIM_DEVS];
    struct sched_running run[SIM_DEVS + 8];
    struct sched_job q[SIM_JOBS];
    uint64_t first_shadow = 0, worst_shadow = 0, started = UINT64_MAX;
    size_t wide, backfilled = 0, d0 = 0, d1 = 1, d2 = 2;
    bool ok = true;

    if (s == NULL)
        return;
    for (size_t d = 0; d < SIM_DEVS; d++)
        s->held_by[d] = -1;
    /* At 0: three devices busy until 30, 60 and 90; the fourth free. */
    sim_run(s, sim_submit(s, 1, 30), &d0, 1, 30);
    sim_run(s, sim_submit(s, 1, 60), &d1, 1, 60);
    sim_run(s, sim_submit(s, 1, 90), &d2, 1, 90);
    s->n_queue = 0;
    wide = sim_submit(s, SIM_DEVS, 100);

    /* A pass every 10 ms; two narrow 25 ms jobs arrive before each. */
    for (uint64_t now = 0; now <= 300 && started == UINT64_MAX; now += 10) {
        struct sched_input in = {.now_ms = now, .devices = dev,
                                 .n_devices = SIM_DEVS, .running = run,
                                 .queued = q};
        struct sched_result *r = NULL;
        size_t keep = 0;

        for (size_t i = 0; i < s->n_run; i++) {
            if (s->run[i].end <= now) {
                for (size_t d = 0; d < SIM_DEVS; d++)
                    if (s->held_by[d] == (int)s->run[i].job)
                        s->held_by[d] = -1;
            } else {
                s->run[keep++] = s->run[i];
            }
        }
        s->n_run = keep;
        for (int k = 0; k < 2 && s->n_jobs < SIM_JOBS; k++)
            sim_submit(s, 1, 25);

        for (size_t d = 0; d < SIM_DEVS; d++)
            dev[d] = (struct sched_device){
                .model = "H100", .memory = 80 * GiB,
                .busy = s->held_by[d] >= 0,
                .holder = s->held_by[d] >= 0 ? s->id[s->held_by[d]] : NULL};
        for (size_t i = 0; i < s->n_run; i++)
            run[i] = (struct sched_running){s->id[s->run[i].job], "t",
                                            s->job[s->run[i].job].gpus,
                                            s->run[i].end};
        in.n_running = s->n_run;
        for (size_t i = 0; i < s->n_queue; i++)
            q[i] = s->job[s->queue[i]];
        in.n_queued = s->n_queue;
        if (sched_plan(&in, &r) < 0 || broken(&in, r) != NULL) {
            ok = false;
            sched_result_free(r);
            break;
        }
        if (r->has_head && s->queue[r->head] == wide) {
            if (first_shadow == 0)
                first_shadow = r->head_start_ms;
            if (r->head_start_ms > worst_shadow)
                worst_shadow = r->head_start_ms;
        }
        /* Apply the starts; the queue keeps the others in order. */
        for (size_t i = 0; i < r->n_starts; i++) {
            size_t j = s->queue[r->starts[i].job];

            sim_run(s, j, r->starts[i].devices, r->starts[i].n_devices,
                    now + s->job[j].walltime_ms);
            s->queue[r->starts[i].job] = SIZE_MAX;
            if (j == wide)
                started = now;
            else if (started == UINT64_MAX)
                backfilled++;
        }
        keep = 0;
        for (size_t i = 0; i < s->n_queue; i++)
            if (s->queue[i] != SIZE_MAX)
                s->queue[keep++] = s->queue[i];
        s->n_queue = keep;
        sched_result_free(r);
    }
    tap_ok(ok, "starvation: every pass plans and keeps the invariants");
    tap_is_int(first_shadow, 90,
               "starvation: the wide job's first shadow time");
    tap_is_int(worst_shadow, 90, "starvation: backfill never pushed it later");
    tap_ok(started <= first_shadow,
           "starvation: the wide job starts by its shadow time (at %" PRIu64
           ")", started);
    tap_ok(backfilled >= 4,
           "starvation: narrow jobs still ran before it (%zu)", backfilled);
    free(s);
}

/* --- generated queues: determinism and time ------------------------------- */

struct gen {
    struct sched_device *dev;
    struct sched_running *run;
    struct sched_job *job;
    char (*ids)[24];
    char (*models)[16];   /* each job its own copy, as the daemon has */
    struct sched_tenant ten[10];
    char ten_names[10][8];
    size_t n_dev, n_run, n_job;
};

static uint32_t lcg(uint64_t *x)
{
    *x = *x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return (uint32_t)(*x >> 33);
}

static bool gen_make(struct gen *g, size_t n_job, size_t n_free, uint64_t seed)
{
    static const uint32_t widths[] = {0, 1, 1, 1, 2, 2, 4, 8};
    static const char *const globs[] = {"H100*", "*", "H100-80G", "A100*"};
    static const uint64_t mems[] = {0, 0, 40, 80};

    memset(g, 0, sizeof *g);
    g->n_dev = 8;
    g->dev = calloc(g->n_dev, sizeof *g->dev);
    g->run = calloc(g->n_dev, sizeof *g->run);
    g->job = calloc(n_job, sizeof *g->job);
    g->ids = calloc(n_job + g->n_dev, sizeof *g->ids);
    g->models = calloc(n_job, sizeof *g->models);
    if (!g->dev || !g->run || !g->job || !g->ids || !g->models)
        return false;
    for (size_t t = 0; t < 10; t++) {
        snprintf(g->ten_names[t], sizeof g->ten_names[t], "t%zu", t);
        g->ten[t] = (struct sched_tenant){g->ten_names[t], t < 5 ? 8 : 4, 0};
    }
    /* One H100 per running job on the busy devices. */
    for (size_t d = 0; d < g->n_dev; d++) {
        g->dev[d] = (struct sched_device){.model = "H100-80G",
                                          .memory = 80 * GiB};
        if (d < g->n_dev - n_free) {
            char *id = g->ids[n_job + d];

            snprintf(id, sizeof g->ids[0], "r%zu", d);
            g->run[g->n_run++] = (struct sched_running){
                id, g->ten_names[d % 10], 1,
                NOW + 1000 * (1 + lcg(&seed) % 600)};
            g->dev[d].busy = true;
            g->dev[d].holder = id;
        }
    }
    for (size_t i = 0; i < n_job; i++) {
        snprintf(g->ids[i], sizeof g->ids[0], "j%zu", i);
        snprintf(g->models[i], sizeof g->models[0], "%s",
                 globs[lcg(&seed) % N(globs)]);
        g->job[i] = (struct sched_job){
            g->ids[i], g->ten_names[lcg(&seed) % 10],
            widths[lcg(&seed) % N(widths)], g->models[i],
            mems[lcg(&seed) % N(mems)] * GiB,
            60000 * (1 + lcg(&seed) % 600)};
    }
    g->n_job = n_job;
    return true;
}

static void gen_free(struct gen *g)
{
    free(g->dev);
    free(g->run);
    free(g->job);
    free(g->ids);
    free(g->models);
}

static struct sched_input gen_input(const struct gen *g, uint32_t max_running)
{
    return (struct sched_input){
        .now_ms = NOW, .devices = g->dev, .n_devices = g->n_dev,
        .running = g->run, .n_running = g->n_run, .queued = g->job,
        .n_queued = g->n_job, .tenants = g->ten, .n_tenants = 10,
        .max_running = max_running};
}

static void test_determinism(void)
{
    struct gen a = {0}, b = {0};
    struct sched_result *r1 = NULL, *r2 = NULL, *r3 = NULL;
    struct sched_input in1, in2;
    char *s1 = malloc(65536), *s2 = malloc(65536), *s3 = malloc(65536);

    /* b is a separate copy of the same queue: other addresses, same text. */
    if (s1 && s2 && s3 && gen_make(&a, 500, 3, 42) &&
        gen_make(&b, 500, 3, 42)) {
        in1 = gen_input(&a, 40);
        in2 = gen_input(&b, 40);
        if (sched_plan(&in1, &r1) == 0 && sched_plan(&in1, &r2) == 0 &&
            sched_plan(&in2, &r3) == 0) {
            render(&in1, r1, s1, 65536);
            render(&in1, r2, s2, 65536);
            render(&in2, r3, s3, 65536);
            tap_ok(strcmp(s1, s2) == 0 && strcmp(s1, s3) == 0,
                   "determinism: same input, same plan, also from a copy");
            tap_ok(r1->n_starts > 3 && r1->has_head && r1->n_impossible > 0,
                   "determinism: the generated queue has starts (%zu), a "
                   "head and refusals (%zu)", r1->n_starts, r1->n_impossible);
            tap_ok(broken(&in1, r1) == NULL, "determinism: invariants hold");
        } else {
            tap_ok(0, "determinism: plans");
        }
    } else {
        tap_ok(0, "determinism: out of memory");
    }
    sched_result_free(r1);
    sched_result_free(r2);
    sched_result_free(r3);
    gen_free(&a);
    gen_free(&b);
    free(s1);
    free(s2);
    free(s3);
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
           (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void time_plan(const char *what, size_t n_free)
{
    struct gen g;
    struct sched_input in;
    double best = 1e9;
    size_t starts = 0;
    bool ok = gen_make(&g, 10000, n_free, 7);

    in = gen_input(&g, 0);
    for (int rep = 0; ok && rep < 5; rep++) {
        struct sched_result *r = NULL;
        struct timespec t0;
        double ms;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        ok = sched_plan(&in, &r) == 0;
        ms = ms_since(&t0);
        if (ms < best)
            best = ms;
        if (ok) {
            starts = r->n_starts;
            if (rep == 0)
                ok = broken(&in, r) == NULL;
        }
        sched_result_free(r);
    }
    tap_ok(ok, "10,000 queued jobs, %s: plans, invariants hold", what);
    tap_diag("10,000 queued jobs on 8 devices, %s: %.3f ms per plan (best "
             "of 5), %zu starts", what, best, starts);
    gen_free(&g);
}

/* Why each queued job waits: code and reason, "-" for none. */
static void expect_waits(const char *what, const struct scenario *s,
                         const char *const *want)
{
    struct sched_input in = input_of(s);
    struct sched_result *r = NULL;

    if (!tap_ok(sched_plan(&in, &r) == 0 && r != NULL && r->waits != NULL,
                "%s: plans, with waits", what))
        return;
    for (size_t i = 0; i < s->n_job; i++) {
        char got[512];
        const struct sched_wait *w = &r->waits[i];

        snprintf(got, sizeof got, "%s: %s",
                 w->code ? sched_wait_code_name(w->code) : "-",
                 w->reason ? w->reason : "-");
        char label[256];

        snprintf(label, sizeof label, "%s: %s", what, s->job[i].id);
        tap_is_str(got, want[i], label);
    }
    sched_result_free(r);
}

static void test_waits(void)
{
    struct sched_device qdev[] = {HELD("H100", 80, 0, "ra"),
                                  FREE("H100", 80, 0), FREE("H100", 80, 0),
                                  FREE("H100", 80, 0), FREE("H100", 80, 0),
                                  FREE("H100", 80, 0)};
    struct sched_running qrun[] = {RUN("ra", "a", 1, 100)};
    struct sched_tenant qten[] = {{"a", 2, 0}, {"b", 3, 0}};
    struct sched_job qjob[] = {JOB("a1", "a", 2, "*", 0, 10),
                               JOB("b1", "b", 2, "*", 0, 10),
                               JOB("a2", "a", 1, "*", 0, 10),
                               JOB("b2", "b", 2, "*", 0, 10),
                               JOB("x", "z", 9, "*", 0, 10)};
    struct scenario q = {qdev, N(qdev), qrun, N(qrun), qjob, N(qjob), qten,
                         N(qten), 0};
    static const char *const qwant[] = {
        "tenant_max_gpus: tenant 'a' holds 1 GPU(s) of its max_gpus of 2",
        "-: -",
        ("tenant_max_gpus: tenant 'a' holds 1 GPU(s) of its max_gpus of 2, "
         "and an earlier job of it waits first"),
        "tenant_max_gpus: tenant 'b' holds 2 GPU(s) of its max_gpus of 3",
        "-: -"};
    /* Backfill: H is the head; L would outlast the shadow time on the
     * device kept for H; W needs two H100s with 96 GiB that are busy. */
    struct sched_device bdev[] = {HELD("H100", 80, 0, "r0"),
                                  HELD("H100", 80, 0, "r0"),
                                  HELD("H100", 80, 0, "r1"),
                                  FREE("H100", 80, 0),
                                  HELD("H100", 96, 1, "r1"),
                                  HELD("H100", 96, 1, "r1")};
    struct sched_running brun[] = {RUN("r0", NULL, 2, 100),
                                   RUN("r1", NULL, 3, 50)};
    struct sched_job bjob[] = {JOB("H", NULL, 4, "H100*", 0, 500),
                               JOB("L", NULL, 1, "*", 0, 101),
                               JOB("W", NULL, 2, "H100", 96, 10)};
    struct scenario b = {bdev, N(bdev), brun, N(brun), bjob, N(bjob), NULL, 0,
                         0};
    static const char *const bwant[] = {
        "resources: waiting for 4 GPUs of model 'H100*'",
        ("reservation: starting it now would delay the reservation of an "
         "earlier job"),
        "resources: waiting for 2 GPUs of model 'H100' with at least 96.0 GiB"};
    /* Slots: the node runs 2; c's max_running is 1; with two tenants
     * waiting, d's share of 2 slots is 1. */
    struct sched_running srun[] = {RUN("rc", "c", 0, 100)};
    struct sched_tenant sten[] = {{"c", 0, 1}, {"d", 0, 0}};
    struct sched_job sjob[] = {JOB("c1", "c", 0, NULL, 0, 10),
                               JOB("d1", "d", 0, NULL, 0, 10),
                               JOB("d2", "d", 0, NULL, 0, 10),
                               JOB("d3", "d", 0, NULL, 0, 10)};
    struct scenario sl = {NULL, 0, srun, N(srun), sjob, N(sjob), sten,
                          N(sten), 3};
    static const char *const swant[] = {
        "tenant_max_running: tenant 'c' runs 1 job(s), its max_running of 1",
        "-: -",
        "-: -",
        "node_max_running: the node runs 3 jobs at once, its maximum"};
    /* Four slots, c at its cap and d waiting: d's share is 2.  d3 is
     * passed over in the first walk and gets the slot left in the second;
     * d4 is still passed over when the node is full. */
    struct sched_job fjob[] = {JOB("c1", "c", 0, NULL, 0, 10),
                               JOB("d1", "d", 0, NULL, 0, 10),
                               JOB("d2", "d", 0, NULL, 0, 10),
                               JOB("d3", "d", 0, NULL, 0, 10),
                               JOB("d4", "d", 0, NULL, 0, 10)};
    struct scenario fs = {NULL, 0, srun, N(srun), fjob, N(fjob), sten,
                          N(sten), 4};
    static const char *const fwant[] = {
        "tenant_max_running: tenant 'c' runs 1 job(s), its max_running of 1",
        "-: -", "-: -", "-: -",
        ("fair_share: other tenants' jobs go first: tenant 'd' runs 2 job(s), "
         "its fair share of the node's 4 job slots")};

    expect_waits("waits: quota", &q, qwant);
    expect_waits("waits: backfill", &b, bwant);
    expect_waits("waits: slots", &sl, swant);
    expect_waits("waits: fair share", &fs, fwant);
}

int main(void)
{
    test_fits();
    test_bad_input();
    test_fifo();
    test_model_and_memory();
    test_groups();
    test_drained();
    test_cpu_only();
    test_quota();
    test_impossible();
    test_backfill();
    test_backfill_unreserved();
    test_head_quota();
    test_unknown_holder();
    test_max_running();
    test_fair_share();
    test_starvation();
    test_determinism();
    test_waits();
    time_plan("all devices busy", 0);
    time_plan("4 devices free", 4);
    return tap_done();
}
