/*
 * host.h - the core's side of struct surplus_host: one context per plugin
 * instance, and the sink that collects what a lease exposes.
 */
#ifndef SURPLUS_CORE_HOST_H
#define SURPLUS_CORE_HOST_H

#include <stddef.h>

#include <surplus/host.h>

#include "err.h"
#include "settings.h"

struct surplus_ctx {
    char label[128];           /* "storage/local", for log lines */
    struct settings settings;  /* owned */
    struct err *config_err;    /* where getters report, during init */
    struct err last;           /* the plugin's last host->error() */
};

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
