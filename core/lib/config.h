/*
 * config.h - surplus.conf(5): the node's configuration, parsed with
 * libconfig into typed settings with defaults.  Unknown keys and bad values
 * are errors naming file:line.  Relative paths are taken relative to the
 * directory of the configuration file.
 */
#ifndef SURPLUS_CONFIG_H
#define SURPLUS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "settings.h"

struct plugin_conf {
    char *plugin;              /* plugin name, e.g. "local" */
    struct settings settings;  /* the group's other keys */
    /* Accelerator groups: the group's name (its `name`, or the plugin's
     * name for the first group of a plugin and <plugin><k> for its k-th),
     * and whether the node's ids of its devices are "<name>:<plugin's
     * id>" (every group but the first unnamed one of each plugin), so
     * that two groups of one plugin never give the same id. */
    char *name;
    bool qualified;
};

struct tenant_conf {
    char *name;
    char *token_sha256;  /* 64 lower-case hex digits, or NULL: socket only */
    int64_t max_gpus;
    int64_t max_queued;
    int64_t max_running;  /* jobs running at once; 0: the fair share only */
    bool has_retention;   /* retention_ms set for this tenant */
    uint64_t retention_ms;
    bool has_storage_quota; /* storage_quota set for this tenant */
    uint64_t storage_quota;
};

struct gpu_price {
    char *model;  /* glob matched against a device's model */
    double hour;
};

struct config {
    char *path;        /* the file read, or NULL for built-in defaults */
    char *state_dir;
    char *plugin_dir;
    int log_level;
    struct plugin_conf storage;
    struct plugin_conf accounting;
    struct plugin_conf *accelerators;
    size_t n_accelerators;
    struct {
        uint64_t max_bundle_bytes;
        uint64_t max_unpacked_bytes;
        uint64_t max_entries;
        uint64_t max_walltime_ms;
        uint64_t max_output_bytes;  /* declared outputs of one job */
        uint64_t max_log_bytes;     /* stdout + stderr kept per job */
    } limits;
    struct {
        bool network_host;    /* network = "host" (default "none") */
        uint32_t uid_base;
        uint64_t kill_grace_ms;
        uint64_t pids;        /* processes per job */
        bool seccomp_off;     /* seccomp = "none" (default "default") */
        unsigned seccomp_allow; /* SB_ALLOW_ groups (seccomp.h) */
        bool best_effort;     /* limits = "best-effort": run jobs whose
                                 memory, cpus or disk this host cannot
                                 enforce (default "enforce": refuse) */
    } sandbox;
    struct {
        char *socket;
        char *listen;         /* "" when TCP is off */
        char *tls_cert;
        char *tls_key;
        /* Connections at once from one uid (Unix socket, root exempt) or
         * one address (TCP). */
        uint32_t max_connections_per_client;
        uint32_t max_connections;     /* all listeners; 0: from the fd limit */
        uint64_t idle_timeout_ms;     /* a connection with nothing moving */
        uint32_t max_followers_per_tenant; /* log?follow=1 streams open */
        uint32_t max_downloads_per_tenant; /* output downloads at once */
        /* sha256 of the token that may read GET /metrics (and nothing
         * else), 64 lower-case hex digits; NULL: root on the socket only */
        char *metrics_token_sha256;
    } api;
    struct tenant_conf *tenants;
    size_t n_tenants;
    /* How long ended jobs' logs and outputs stay in storage; 0: for
     * ever (retention.h). */
    uint64_t retention_ms;
    /* Bytes of bundles, logs and outputs one tenant may hold in storage;
     * 0: no quota.  Tenants may have their own. */
    uint64_t storage_quota;
    struct {
        char *currency;
        double cpu_hour;
        struct gpu_price *gpu;
        size_t n_gpu;
    } pricing;
};

/* The default configuration file (SYSCONFDIR/surplus/surplus.conf). */
const char *config_default_path(void);

/*
 * Reads `path`; with `path` NULL, reads the default file if it exists and
 * otherwise uses the built-in defaults.  Returns -EINVAL for a bad file
 * (message "file:line: ..."), -ENOENT when an explicitly named file is
 * missing.
 */
int config_load(const char *path, struct config **ret, struct err *e);
void config_free(struct config *c);

/* 0 when `name` may name a tenant in surplus.conf, else -EINVAL with the
 * reason in *e (not valid, or reserved by surplus). */
int config_tenant_name_check(const char *name, struct err *e);

#endif
