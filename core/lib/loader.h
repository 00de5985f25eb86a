/*
 * loader.h - finding, checking and starting plugins.
 *
 * A plugin file is <kind>_<name>.so.  plugin_open() dlopens it and checks
 * the descriptor (ABI major and minor, size, kind, name, required
 * functions) against the core and the file name before any plugin function
 * other than the descriptor function runs; plugin_start() then calls init
 * with the instance's settings.
 */
#ifndef SURPLUS_LOADER_H
#define SURPLUS_LOADER_H

#include <pthread.h>
#include <stdbool.h>

#include <surplus/surplus.h>

#include "err.h"
#include "host.h"
#include "settings.h"

struct plugin {
    char *path;
    void *dl;
    const struct surplus_plugin *desc;
    enum surplus_plugin_kind kind;
    struct surplus_ctx ctx;
    void *state;
    bool started;
    /* The descriptor sets SURPLUS_PLUGIN_THREAD_SAFE (ABI 1.1). */
    bool thread_safe;
    /* Held for writing around each operation (calls.h), since the SDK
     * promises a plugin one thread at a time per instance; for reading
     * only, when the plugin is thread-safe; for writing by plugin_stop. */
    pthread_rwlock_t lock;
};

const char *plugin_kind_name(enum surplus_plugin_kind kind);
int plugin_kind_from_name(const char *name); /* -EINVAL if unknown */

/* Searches each directory of $SURPLUS_PLUGIN_PATH (':'-separated), then
 * `plugin_dir`, for <kind>_<name>.so.  -ENOENT names every place looked. */
int plugin_find(const char *kind, const char *name, const char *plugin_dir,
                char **ret_path, struct err *e);

/* Loads and checks; runs no plugin code but the descriptor function. */
int plugin_open(const char *path, struct plugin **ret, struct err *e);

/* Calls init with `settings` (taken over, even on failure), then refuses
 * settings the plugin never read. */
int plugin_start(struct plugin *p, struct settings *settings, struct err *e);

/* Stops the instance (fini) but keeps the object loaded. */
void plugin_stop(struct plugin *p);

/* plugin_stop + dlclose + free; accepts NULL. */
void plugin_close(struct plugin *p);

/* Prefixes the message of a failed operation, which calls.h left in *e
 * (or strerror(-r) when there is none), with the instance and `what`:
 * "storage/local get the log: no object 'x'".  Returns r. */
int plugin_error(struct plugin *p, int r, struct err *e, const char *what);

#endif
