/*
 * surplus/storage.h - operations of a storage plugin (kind "storage").
 *
 * Storage keeps job inputs, logs and outputs as objects named by keys.
 *
 * KEYS are 1 to 1024 bytes of '/'-separated components; each component is
 * 1 to 255 bytes of [A-Za-z0-9._-], and is neither "." nor "..".  A plugin
 * refuses any other key with -EINVAL before touching its backend, so no key
 * can name anything outside the store (surplus-plugin-check tries "",
 * "/", "../x", "a//b", "a/", "a/./b", "a/..", keys with spaces, tabs,
 * newlines, backslashes or invalid UTF-8, and a key of 1025 bytes).
 * surplus_key_valid() below is the reference check.
 *
 * CONTRACT
 *   put     reads `fd` (a pipe, perhaps: never seek it) to end of file and
 *           stores it under `key`.  Atomic: a
 *           concurrent reader sees the old object or the new one, complete,
 *           never a mix or a prefix.  Durable: when put returns 0 the object
 *           survives a crash or power loss.  Streams: memory use does not
 *           grow with the object's size.  Replaces an existing object.
 *   get     writes the whole object to `fd`; -ENOENT if absent.  After a
 *           failure part of the object may have been written; the caller
 *           discards it.  A reader of `fd` that goes away is -EPIPE (the
 *           plugin must not let SIGPIPE kill the process).
 *   stat    fills *ret (the size, and a modification time above 0);
 *           -ENOENT if absent.
 *   remove  deletes the object; -ENOENT if absent.
 *   list    calls `fn` for each object whose key starts with `prefix`
 *           ("" for all), in any order; a non-zero return from `fn` stops
 *           the walk and is returned.  `key` and `info` are valid only
 *           during the call; `fn` must not change the store.
 *
 * Operations on one instance are called from one thread at a time (the
 * core holds a lock per instance around each, callbacks included), unless
 * the descriptor sets SURPLUS_PLUGIN_THREAD_SAFE (surplus/plugin.h).  Several
 * instances configured alike (in one process, or in several processes)
 * share one store: what one puts, another gets, with the atomicity above.
 *
 * This header is C99 and C++ compatible.
 */
#ifndef SURPLUS_STORAGE_H
#define SURPLUS_STORAGE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <surplus/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SURPLUS_KEY_MAX 1024
#define SURPLUS_KEY_COMPONENT_MAX 255

struct surplus_object_info {
    uint64_t size;     /* bytes */
    int64_t mtime_us;  /* last put, microseconds since the Unix epoch */
};

typedef int (*surplus_object_fn)(void *arg, const char *key,
                                 const struct surplus_object_info *info);

struct surplus_storage_ops {
    /* ABI 1.0 */
    int (*put)(void *state, const char *key, int fd);
    int (*get)(void *state, const char *key, int fd);
    int (*stat)(void *state, const char *key,
                struct surplus_object_info *ret);
    int (*remove)(void *state, const char *key);
    int (*list)(void *state, const char *prefix, surplus_object_fn fn,
                void *arg);
};

/* Returns 1 if `key` is a valid storage key (see above), 0 otherwise. */
static inline int surplus_key_valid(const char *key)
{
    size_t len, comp = 0, i;

    if (key == NULL)
        return 0;
    len = strlen(key);
    if (len == 0 || len > SURPLUS_KEY_MAX)
        return 0;
    for (i = 0; i <= len; i++) {
        char c = key[i];
        if (c == '/' || c == '\0') {
            if (comp == 0 || comp > SURPLUS_KEY_COMPONENT_MAX)
                return 0;
            if (key[i - comp] == '.' &&
                (comp == 1 || (comp == 2 && key[i - 1] == '.')))
                return 0;
            comp = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
        comp++;
    }
    return 1;
}

#ifdef __cplusplus
}
#endif

#endif /* SURPLUS_STORAGE_H */
