/*
 * accelerator/sim - simulated accelerator devices.
 *
 * Stands in for GPUs in tests and on machines that have none.  It keeps the
 * same lease bookkeeping a real backend keeps, and its scrub really
 * overwrites and verifies a host-memory shadow of each device, so that scrub
 * timing is real work and the drain paths (a failed scrub, an unhealthy
 * device) can be exercised on demand.  Everything it reports says
 * "simulated", so that nobody mistakes it for hardware.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <surplus/accelerator.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

#define SIM_COUNT_MAX 64
#define SIM_DEFAULT_MEMORY (UINT64_C(80) << 30)
#define SIM_DEFAULT_SHADOW (UINT64_C(1) << 20)

/* Stands for the tenant data a job leaves in device memory. */
#define SIM_TENANT_BYTE 0xa5

#define SIM_REASON_SETTING "simulated fault (unhealthy setting)"
#define SIM_REASON_SCRUB "scrub verification failed (simulated)"
#define SIM_REASON_HEALTH "health check failed before a lease (simulated)"

struct sim_device {
    char id[16];            /* "sim-N" */
    char *holder;           /* lease id, NULL while free */
    bool healthy;
    const char *reason;     /* static text, NULL while healthy */
    unsigned char *shadow;  /* what scrub overwrites and verifies */
};

struct sim {
    const struct surplus_host *host;
    struct surplus_ctx *ctx;
    const char *model;      /* owned by the core until fini */
    uint64_t memory;
    size_t shadow_bytes;
    int64_t fail_scrub;     /* device index, or -1 */
    int64_t fail_health;    /* device index, or -1 */
    struct sim_device *devices;
    size_t n_devices;
};

static void sim_fini(void *state)
{
    struct sim *s = state;

    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_devices; i++) {
        free(s->devices[i].holder);
        free(s->devices[i].shadow);
    }
    free(s->devices);
    free(s);
}

/* An index setting names one device, or none with -1. */
static int sim_check_index(struct sim *s, const char *key, int64_t v,
                           int64_t count)
{
    if (v < -1 || v >= count)
        return s->host->error(s->ctx, -EINVAL,
                              "%s = %" PRId64 ": no such simulated device "
                              "(count = %" PRId64 ", -1 for none)",
                              key, v, count);
    return 0;
}

static int sim_init(const struct surplus_host *host, struct surplus_ctx *ctx,
                    void **ret_state)
{
    int64_t count, fail_scrub, fail_health, unhealthy;
    uint64_t memory, shadow;
    const char *model;
    struct sim *s;
    int r;

    /* Every setting is read before any is judged, and before anything is
     * allocated: the core reports keys never asked for as unknown. */
    r = host->config_int(ctx, "count", 2, &count);
    if (r < 0)
        return r;
    r = host->config_string(ctx, "model", "SIM-80G", &model);
    if (r < 0)
        return r;
    r = host->config_size(ctx, "memory", SIM_DEFAULT_MEMORY, &memory);
    if (r < 0)
        return r;
    r = host->config_int(ctx, "fail_scrub", -1, &fail_scrub);
    if (r < 0)
        return r;
    r = host->config_size(ctx, "shadow", SIM_DEFAULT_SHADOW, &shadow);
    if (r < 0)
        return r;
    r = host->config_int(ctx, "unhealthy", -1, &unhealthy);
    if (r < 0)
        return r;
    r = host->config_int(ctx, "fail_health", -1, &fail_health);
    if (r < 0)
        return r;

    if (count < 0 || count > SIM_COUNT_MAX)
        return host->error(ctx, -EINVAL,
                           "count = %" PRId64 " is out of range (0..%d "
                           "simulated devices)", count, SIM_COUNT_MAX);
    if (model == NULL || model[0] == '\0')
        return host->error(ctx, -EINVAL,
                           "model of the simulated devices is empty");
    if (memory == 0)
        return host->error(ctx, -EINVAL,
                           "memory of the simulated devices is 0");
    /* The shadow stands for device memory, so a scrub report can never
     * claim more bytes than the device has. */
    if (shadow == 0 || shadow > memory || shadow > SIZE_MAX)
        return host->error(ctx, -EINVAL,
                           "shadow = %" PRIu64 " bytes: must be at least 1 "
                           "and at most memory (%" PRIu64 " bytes) of a "
                           "simulated device", shadow, memory);

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return host->error(ctx, -ENOMEM, "out of memory");
    s->host = host;
    s->ctx = ctx;
    s->model = model;
    s->memory = memory;
    s->shadow_bytes = (size_t)shadow;
    s->fail_scrub = fail_scrub;
    s->fail_health = fail_health;

    r = sim_check_index(s, "fail_scrub", fail_scrub, count);
    if (r == 0)
        r = sim_check_index(s, "unhealthy", unhealthy, count);
    if (r == 0)
        r = sim_check_index(s, "fail_health", fail_health, count);
    if (r < 0) {
        sim_fini(s);
        return r;
    }

    if (count > 0) {
        s->devices = calloc((size_t)count, sizeof(*s->devices));
        if (s->devices == NULL) {
            sim_fini(s);
            return host->error(ctx, -ENOMEM, "out of memory");
        }
    }
    for (unsigned i = 0; i < (unsigned)count; i++) {
        struct sim_device *d = &s->devices[i];

        /* Counted as it goes, so that fini frees exactly what exists. */
        s->n_devices++;
        snprintf(d->id, sizeof(d->id), "sim-%u", i);
        d->healthy = (int64_t)i != unhealthy;
        d->reason = d->healthy ? NULL : SIM_REASON_SETTING;
        d->shadow = malloc(s->shadow_bytes);
        if (d->shadow == NULL) {
            sim_fini(s);
            return host->error(ctx, -ENOMEM,
                               "cannot allocate the %" PRIu64 "-byte shadow "
                               "of simulated device sim-%u", shadow, i);
        }
    }

    *ret_state = s;
    return 0;
}

static struct sim_device *sim_find(struct sim *s, const char *id)
{
    if (id == NULL)
        return NULL;
    for (size_t i = 0; i < s->n_devices; i++)
        if (strcmp(s->devices[i].id, id) == 0)
            return &s->devices[i];
    return NULL;
}

static int sim_discover(void *state, surplus_device_fn fn, void *arg)
{
    struct sim *s = state;

    if (fn == NULL)
        return s->host->error(s->ctx, -EINVAL,
                              "discover of simulated devices: no callback");
    if (s->n_devices == 0)
        return s->host->error(s->ctx, -ENODEV,
                              "no simulated devices configured (count = 0)");
    for (size_t i = 0; i < s->n_devices; i++) {
        const struct sim_device *d = &s->devices[i];
        const struct surplus_device dev = {
            .id = d->id,
            .model = s->model,
            .memory_bytes = s->memory,
            .healthy = d->healthy,
            .reason = d->reason,
            .pci_bus_id = NULL,
            .node = NULL,
            .detail = "simulated device",
        };
        int r = fn(arg, &dev);

        if (r != 0)
            return r;
    }
    return 0;
}

static int sim_check_lease(struct sim *s, const struct surplus_lease *lease,
                           const char *what)
{
    if (lease == NULL || lease->lease_id == NULL || lease->lease_id[0] == '\0')
        return s->host->error(s->ctx, -EINVAL,
                              "%s of simulated devices: lease has no id", what);
    if (lease->n_devices > 0 && lease->device_ids == NULL)
        return s->host->error(s->ctx, -EINVAL,
                              "%s of simulated devices: lease '%s' has no "
                              "device list", what, lease->lease_id);
    return 0;
}

static int sim_prepare(void *state, const struct surplus_lease *lease)
{
    struct sim *s = state;
    bool seen[SIM_COUNT_MAX] = {false};
    char *holders[SIM_COUNT_MAX] = {NULL};
    char *gpus = NULL, *p;
    size_t len = 1;
    int r;

    r = sim_check_lease(s, lease, "prepare");
    if (r < 0)
        return r;
    if (lease->n_devices == 0 || lease->out == NULL)
        return s->host->error(s->ctx, -EINVAL,
                              "lease '%s' %s", lease->lease_id,
                              lease->out == NULL
                                  ? "has nowhere to describe the job's view"
                                  : "names no simulated devices");

    /* Everything is checked before anything is claimed, so that a refused
     * lease leaves no device half-taken. */
    for (size_t i = 0; i < lease->n_devices; i++) {
        const char *id = lease->device_ids[i];
        struct sim_device *d = sim_find(s, id);
        size_t index;

        if (d == NULL)
            return s->host->error(s->ctx, -ENODEV,
                                  "no device '%s' among the %zu simulated "
                                  "devices", id ? id : "(null)",
                                  s->n_devices);
        index = (size_t)(d - s->devices);
        if (seen[index])
            return s->host->error(s->ctx, -EINVAL,
                                  "simulated device '%s' appears twice in "
                                  "lease '%s'", id, lease->lease_id);
        seen[index] = true;
        if (d->holder != NULL && strcmp(d->holder, lease->lease_id) != 0)
            return s->host->error(s->ctx, -EBUSY,
                                  "simulated device '%s' is held by lease "
                                  "'%s'", id, d->holder);
        /* fail_health: the device looks healthy until its first
         * pre-lease check, which finds it faulty from then on. */
        if (d->healthy && (int64_t)index == s->fail_health) {
            d->healthy = false;
            d->reason = SIM_REASON_HEALTH;
        }
        if (!d->healthy)
            return s->host->error(s->ctx, -EIO,
                                  "simulated device '%s' is unhealthy: %s",
                                  id, d->reason);
        len += strlen(d->id) + 1;
    }
    gpus = malloc(len);
    if (gpus == NULL) {
        r = s->host->error(s->ctx, -ENOMEM, "out of memory");
        goto fail;
    }
    p = gpus;
    for (size_t i = 0; i < lease->n_devices; i++) {
        struct sim_device *d = sim_find(s, lease->device_ids[i]);
        size_t index = (size_t)(d - s->devices);

        p += sprintf(p, "%s%s", i > 0 ? "," : "", d->id);
        if (d->holder == NULL) {
            holders[index] = strdup(lease->lease_id);
            if (holders[index] == NULL) {
                r = s->host->error(s->ctx, -ENOMEM, "out of memory");
                goto fail;
            }
        }
    }

    /* No CUDA_VISIBLE_DEVICES: there is no CUDA behind these devices, and a
     * job must not be led to believe otherwise. */
    r = s->host->lease_setenv(lease->out, "SURPLUS_GPUS", gpus);
    if (r == 0)
        r = s->host->lease_setenv(lease->out, "SURPLUS_ACCELERATOR",
                                  "sim (simulated)");
    if (r < 0) {
        r = s->host->error(s->ctx, r,
                           "cannot set the environment of lease '%s' on "
                           "simulated devices: %s", lease->lease_id,
                           strerror(-r));
        goto fail;
    }

    /* Nothing can fail from here on. */
    for (size_t i = 0; i < s->n_devices; i++) {
        struct sim_device *d = &s->devices[i];

        if (!seen[i])
            continue;
        if (holders[i] != NULL) {
            d->holder = holders[i];
            holders[i] = NULL;
        }
        memset(d->shadow, SIM_TENANT_BYTE, s->shadow_bytes);
    }
    free(gpus);
    return 0;

fail:
    for (size_t i = 0; i < SIM_COUNT_MAX; i++)
        free(holders[i]);
    free(gpus);
    return r;
}

static uint64_t sim_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* Offset of the first non-zero byte, or len when all are zero. */
static size_t sim_first_nonzero(const unsigned char *p, size_t len)
{
    /* p[0] == 0 and p[i] == p[i + 1] for all i means all zero; memcmp
     * checks that at memory speed. */
    if (len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0))
        return len;
    for (size_t i = 0; i < len; i++)
        if (p[i] != 0)
            return i;
    return len;
}

/* Overwrites and verifies the shadow of device `index`.  Returns 0, or
 * -EIO with the offset of the byte that did not verify. */
static int sim_scrub(struct sim *s, size_t index, uint64_t *ret_ns,
                     size_t *ret_bad)
{
    unsigned char *p = s->devices[index].shadow;
    uint64_t start = sim_now_ns();
    size_t bad;

    memset(p, 0, s->shadow_bytes);
    /* The verification below would otherwise be provably redundant after
     * the memset, and the compiler could drop the very work whose time the
     * report is meant to show. */
    __asm__ __volatile__("" : : "r"(p) : "memory");
    bad = sim_first_nonzero(p, s->shadow_bytes);
    if ((int64_t)index == s->fail_scrub && bad == s->shadow_bytes)
        bad = s->shadow_bytes / 2;
    *ret_ns = sim_now_ns() - start;
    if (bad < s->shadow_bytes) {
        *ret_bad = bad;
        return -EIO;
    }
    return 0;
}

/* Release goes on past a device it cannot scrub, so it may meet several
 * errors; it returns the most serious: a failed scrub before a device held
 * elsewhere before an unknown device. */
static int sim_error_rank(int err)
{
    switch (err) {
    case 0:
        return 0;
    case -ENODEV:
        return 1;
    case -EBUSY:
        return 2;
    default:
        return 3;
    }
}

static int sim_release(void *state, const struct surplus_lease *lease,
                       struct surplus_scrub_report *ret)
{
    struct sim *s = state;
    uint64_t bytes = 0, duration_ns = 0;
    int r;

    r = sim_check_lease(s, lease, "release");
    if (r < 0)
        return r;

    for (size_t i = 0; i < lease->n_devices; i++) {
        const char *id = lease->device_ids[i];
        struct sim_device *d = sim_find(s, id);
        uint64_t ns = 0;
        size_t bad = 0;

        if (d == NULL) {
            if (sim_error_rank(-ENODEV) > sim_error_rank(r))
                r = s->host->error(s->ctx, -ENODEV,
                                   "no device '%s' among the %zu simulated "
                                   "devices", id ? id : "(null)",
                                   s->n_devices);
            continue;
        }
        /* The lease may be long gone and the device handed to someone
         * else since: scrubbing it now would wipe the new tenant's data. */
        if (d->holder != NULL && strcmp(d->holder, lease->lease_id) != 0) {
            if (sim_error_rank(-EBUSY) > sim_error_rank(r))
                r = s->host->error(s->ctx, -EBUSY,
                                   "simulated device '%s' is held by lease "
                                   "'%s', not '%s'; left alone", id,
                                   d->holder, lease->lease_id);
            continue;
        }

        if (sim_scrub(s, (size_t)(d - s->devices), &ns, &bad) < 0) {
            /* Whatever was left may belong to the last tenant: the device
             * is never leased again. */
            d->healthy = false;
            d->reason = SIM_REASON_SCRUB;
            if (sim_error_rank(-EIO) > sim_error_rank(r))
                r = s->host->error(s->ctx, -EIO,
                                   "scrub of simulated device '%s' failed: "
                                   "non-zero byte at offset %zu of its "
                                   "%zu-byte shadow after zeroing; marked "
                                   "unhealthy", id, bad, s->shadow_bytes);
        } else {
            bytes += s->shadow_bytes;
        }
        duration_ns += ns;
        free(d->holder);
        d->holder = NULL;
    }

    if (r < 0)
        return r;
    if (ret != NULL) {
        ret->bytes = bytes;
        ret->duration_ns = duration_ns;
    }
    return 0;
}

static const struct surplus_accelerator_ops sim_ops = {
    .discover = sim_discover,
    .prepare = sim_prepare,
    .release = sim_release,
};

static const struct surplus_plugin sim_plugin = {
    SURPLUS_PLUGIN_HEADER(SURPLUS_KIND_ACCELERATOR),
    .name = "sim",
    .version = PACKAGE_VERSION,
    .description = "simulated accelerator devices, for tests and machines "
                   "without GPUs",
    .init = sim_init,
    .fini = sim_fini,
    .ops = &sim_ops,
};

SURPLUS_PLUGIN_EXPORT(sim_plugin)
