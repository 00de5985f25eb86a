/*
 * host.h - the core's side of struct surplus_host: one context per plugin
 * instance, and the sink that collects what a lease exposes.
 */
#ifndef SURPLUS_CORE_HOST_H
#define SURPLUS_CORE_HOST_H

#include <stdbool.h>
#include <stddef.h>

#include <surplus/host.h>

#include "err.h"
#include "settings.h"

struct surplus_ctx {
    char label[128];           /* "storage/local", for log lines */
    struct settings settings;  /* owned */
    struct err *config_err;    /* where getters report, during init */
    struct err last;           /* host->error() outside an operation
                                  (init, fini) */
};

/* Where host->error() writes while this thread calls an operation of the
 * instance `ctx` (calls.c pushes one around each call): the message belongs
 * to that call, whatever other threads do meanwhile. */
struct host_capture {
    const struct surplus_ctx *ctx;
    struct err *err;
    struct host_capture *outer;
};

void host_capture_begin(struct host_capture *c, const struct surplus_ctx *ctx,
                        struct err *into);
void host_capture_end(struct host_capture *c);
/* Whether this thread is inside an operation of `ctx` (in a callback). */
bool host_capture_active(const struct surplus_ctx *ctx);

struct surplus_lease_out {
    char **env;      /* "NAME=value" */
    size_t n_env;
    char **devices;  /* absolute paths under /dev */
    size_t n_devices;
    struct err err;  /* why a lease_* call was refused */
};

const struct surplus_host *host_services(void);

void lease_out_free(struct surplus_lease_out *out);
/* Value of NAME in the lease environment, or NULL. */
const char *lease_out_getenv(const struct surplus_lease_out *out,
                             const char *name);

#endif
