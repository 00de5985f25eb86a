/*
 * surplus/host.h - services the surplus core offers to every plugin.
 *
 * A plugin receives a `const struct surplus_host *` and an opaque
 * `struct surplus_ctx *` in its init function.  It keeps both and passes the
 * context back on every host call: the context identifies the plugin
 * instance (for log prefixes and error messages) and carries its settings,
 * the configuration group it was loaded from (for example
 * `storage = { plugin = "local"; path = "/srv/store"; }`).
 *
 * Plugins never see libconfig types and never call core symbols directly:
 * everything goes through this table.
 *
 * The `path` setting: a storage or accounting plugin whose group sets no
 * `path` is given one by the core, as an implicit setting (one the plugin
 * may ignore without it being reported as unknown): <state_dir>/KIND-NAME,
 * for example /var/lib/surplus/storage-s3 or
 * /var/lib/surplus/accounting-postgres, a name of its own so that switching
 * plugins never hands a new plugin the old one's files.  storage/local and
 * accounting/sqlite keep the names they always had, <state_dir>/store and
 * <state_dir>/ledger.db.  What the path is (a file, a directory, a prefix)
 * is the plugin's to decide; surplus-plugin-check passes a scratch path
 * when none is set.  Accelerator plugins are given no default path.
 *
 * Error convention: every function that can fail returns 0 on success or a
 * negative errno value.  The human-readable message is recorded with
 * host->error() and reported once, by the caller.
 *
 * This header is C99 and C++ compatible.
 */
#ifndef SURPLUS_HOST_H
#define SURPLUS_HOST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SURPLUS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SURPLUS_PRINTF(fmt, args)
#endif

/* Opaque per-instance handle owned by the core. */
struct surplus_ctx;

/* Opaque sink that collects what an accelerator lease exposes to a job. */
struct surplus_lease_out;

/* Log levels, ordered by severity (syslog's numbering). */
enum surplus_log_level {
    SURPLUS_LOG_ERR = 3,
    SURPLUS_LOG_WARNING = 4,
    SURPLUS_LOG_NOTICE = 5,
    SURPLUS_LOG_INFO = 6,
    SURPLUS_LOG_DEBUG = 7
};

struct surplus_host {
    /* Version of the host table; same rule as the plugin descriptor:
     * functions are only ever appended, with a minor bump. */
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t size; /* sizeof(struct surplus_host) in the core */

    /* Writes one log line, prefixed with the plugin's kind and name. */
    void (*log)(struct surplus_ctx *ctx, int level, const char *fmt, ...)
        SURPLUS_PRINTF(3, 4);

    /* Records the message for the error the plugin is about to return, and
     * returns `err` unchanged so that a plugin can write
     *     return host->error(ctx, -EINVAL, "bad key '%s'", key);
     * A later call replaces the message.  The message belongs to the
     * operation in progress: call it on the thread that called the
     * operation, before returning. */
    int (*error)(struct surplus_ctx *ctx, int err, const char *fmt, ...)
        SURPLUS_PRINTF(3, 4);

    /*
     * Typed settings from the plugin's configuration group.  Each getter
     * stores `def` in *ret when the key is absent and returns 0; it returns
     * -EINVAL, with a message naming the key and its file:line, when the
     * value has the wrong type or is out of range.  Every key of the group
     * that the plugin never asks for is reported by the core as unknown, so
     * plugins should read all of their settings in init.
     *
     * Strings stay valid until fini.  Sizes accept an integer number of
     * bytes or a string such as "512K", "16G", "1.5T" (binary multiples).
     * Durations accept an integer number of seconds or a string such as
     * "500ms", "90s", "10m", "1h30m", "2d" or "HH:MM:SS"; the result is in
     * milliseconds.
     */
    int (*config_string)(struct surplus_ctx *ctx, const char *key,
                         const char *def, const char **ret);
    int (*config_int)(struct surplus_ctx *ctx, const char *key, int64_t def,
                      int64_t *ret);
    int (*config_bool)(struct surplus_ctx *ctx, const char *key, int def,
                       int *ret);
    int (*config_size)(struct surplus_ctx *ctx, const char *key, uint64_t def,
                       uint64_t *ret);
    int (*config_duration)(struct surplus_ctx *ctx, const char *key,
                           uint64_t def_ms, uint64_t *ret_ms);

    /* Used by accelerator plugins while preparing a lease: an environment
     * variable for the job, and a device node (absolute path under /dev)
     * that the sandbox must expose.  Both copy their arguments. */
    int (*lease_setenv)(struct surplus_lease_out *out, const char *name,
                        const char *value);
    int (*lease_add_device)(struct surplus_lease_out *out, const char *path);
};

#ifdef __cplusplus
}
#endif

#endif /* SURPLUS_HOST_H */
