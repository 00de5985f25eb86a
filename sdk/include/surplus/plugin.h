/*
 * surplus/plugin.h - the surplus plugin ABI.
 *
 * A plugin is a shared object named <kind>_<name>.so (for example
 * storage_local.so) that exports exactly one symbol: the function
 * surplus_plugin_descriptor(), which returns a pointer to a static const
 * struct surplus_plugin.  Define it with SURPLUS_PLUGIN_EXPORT(); keep every
 * other symbol static (build with -fvisibility=hidden).
 *
 * VERSION RULE
 *
 *   abi_major changes when anything existing changes shape or meaning: a
 *   field moves, a type changes, a function's contract changes.  The core
 *   refuses a plugin whose abi_major differs from its own.
 *
 *   abi_minor changes when something is appended: a field at the end of a
 *   struct, a function at the end of an ops table or of struct surplus_host.
 *   The core refuses a plugin whose abi_minor is newer than its own (the
 *   plugin might rely on host functions the core lacks), and reads appended
 *   members of an older plugin's tables only when that plugin's abi_minor
 *   (and `size`) says they exist.
 *
 *   The core checks abi_major, abi_minor, size, kind and name, against its
 *   own version and against the file name, before it calls init or any
 *   other plugin function.  Nothing else in the descriptor may be moved:
 *   the version fields come first forever.
 *
 * HISTORY
 *
 *   1.0  the descriptor, the host table and the three ops tables.
 *   1.1  `flags` appended to the descriptor (SURPLUS_PLUGIN_THREAD_SAFE).
 *
 * ERRORS
 *
 *   Every plugin function returns 0 or a negative errno value, and sets the
 *   human-readable message through host->error() (see surplus/host.h).
 *
 * This header is C99 and C++ compatible.
 */
#ifndef SURPLUS_PLUGIN_H
#define SURPLUS_PLUGIN_H

#include <stdint.h>

#include <surplus/host.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SURPLUS_ABI_MAJOR 1
#define SURPLUS_ABI_MINOR 1

/* The one symbol a plugin exports. */
#define SURPLUS_PLUGIN_SYMBOL "surplus_plugin_descriptor"

enum surplus_plugin_kind {
    SURPLUS_KIND_STORAGE = 1,     /* file name prefix "storage_" */
    SURPLUS_KIND_ACCOUNTING = 2,  /* file name prefix "accounting_" */
    SURPLUS_KIND_ACCELERATOR = 3  /* file name prefix "accelerator_" */
};

struct surplus_plugin {
    /* --- fixed forever: checked before anything else is touched --- */
    uint32_t abi_major;  /* SURPLUS_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor;  /* SURPLUS_ABI_MINOR the plugin was built with */
    uint32_t size;       /* sizeof(struct surplus_plugin) as built */
    uint32_t kind;       /* enum surplus_plugin_kind */

    /* --- ABI 1.0 --- */
    const char *name;        /* [a-z0-9][a-z0-9-]*, matches the file name */
    const char *version;     /* the plugin's own version, free form */
    const char *description; /* one line for `surplus plugins` */

    /* Creates an instance: reads settings through host, returns its state in
     * *ret_state (untouched on failure).  May be called several times in one
     * process, each with its own ctx; instances must not share state. */
    int (*init)(const struct surplus_host *host, struct surplus_ctx *ctx,
                void **ret_state);
    /* Destroys an instance; accepts the state init returned. */
    void (*fini)(void *state);

    /* Points to a static const struct surplus_storage_ops,
     * surplus_accounting_ops or surplus_accelerator_ops, by kind. */
    const void *ops;

    /* --- ABI 1.1 --- */
    /* SURPLUS_PLUGIN_* bits, 0 for none; the core refuses a plugin that
     * sets a bit it does not know. */
    uint64_t flags;
};

/* flags: the operations of one instance may be called from several threads
 * at once (the plugin locks what it shares).  Without this flag the core
 * calls each instance from one thread at a time.  Either way, a message
 * given to host->error() belongs to the operation in progress on the
 * calling thread, and surplus-plugin-check calls a plugin that sets the
 * flag from several threads at once. */
#define SURPLUS_PLUGIN_THREAD_SAFE (UINT64_C(1) << 0)
#define SURPLUS_PLUGIN_FLAGS_1_1 SURPLUS_PLUGIN_THREAD_SAFE

/* Signature of the exported function. */
typedef const struct surplus_plugin *(*surplus_plugin_fn)(void);

#ifdef __cplusplus
#define SURPLUS_EXTERN_C extern "C"
#else
#define SURPLUS_EXTERN_C
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SURPLUS_VISIBLE __attribute__((visibility("default")))
#else
#define SURPLUS_VISIBLE
#endif

/* Exports `desc` (a static const struct surplus_plugin) as the plugin's
 * descriptor.  Use once per plugin, at file scope, without a semicolon. */
#define SURPLUS_PLUGIN_EXPORT(desc)                                          \
    SURPLUS_EXTERN_C SURPLUS_VISIBLE const struct surplus_plugin *           \
    surplus_plugin_descriptor(void);                                         \
    SURPLUS_EXTERN_C SURPLUS_VISIBLE const struct surplus_plugin *           \
    surplus_plugin_descriptor(void) { return &(desc); }

/* Fills the first fields of a descriptor for this header's ABI version. */
#define SURPLUS_PLUGIN_HEADER(kind_)                                         \
    SURPLUS_ABI_MAJOR, SURPLUS_ABI_MINOR,                                    \
    (uint32_t)sizeof(struct surplus_plugin), (kind_)

#ifdef __cplusplus
}
#endif

#endif /* SURPLUS_PLUGIN_H */
