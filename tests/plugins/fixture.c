/*
 * Fixture plugins for the loader tests: one source, built once per
 * FIXTURE_* macro into a plugin that is good or broken in one way.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <surplus/surplus.h>

struct state {
    const struct surplus_host *host;
    struct surplus_ctx *ctx;
    int inflight;        /* stat calls in progress */
    int max_inflight;    /* the most at once */
};

static int f_init(const struct surplus_host *host, struct surplus_ctx *ctx,
                  void **ret_state)
{
    struct state *s;
    const char *greeting;
    int64_t n;
    int r;

#ifdef FIXTURE_INITFAIL
    return host->error(ctx, -EIO, "backend unreachable (fixture)");
#endif
    r = host->config_string(ctx, "greeting", "hello", &greeting);
    if (r < 0)
        return r;
    r = host->config_int(ctx, "count", 1, &n);
    if (r < 0)
        return r;
#ifdef FIXTURE_BADSETTING
    if (n > 0)
        return host->error(ctx, -EINVAL, "count must not be positive");
#endif
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->host = host;
    s->ctx = ctx;
    *ret_state = s;
    return 0;
}

static void f_fini(void *state)
{
    free(state);
}

static int f_put(void *st, const char *key, int fd)
{
    (void)key;
    (void)fd;
    struct state *s = st;
    return s->host->error(s->ctx, -ENOSYS, "fixture stores nothing");
}
static int f_get(void *st, const char *key, int fd)
{
    (void)st;
    (void)key;
    (void)fd;
    return -ENOENT;
}
/* Counts the calls in progress at once; the object
 * "fixture/max-concurrency" has that count as its size.  Any other key is
 * missing, with a message naming it. */
static int f_stat(void *st, const char *key, struct surplus_object_info *ret)
{
    struct state *s = st;
    struct timespec pause = {0, 200 * 1000};
    int n = __atomic_add_fetch(&s->inflight, 1, __ATOMIC_SEQ_CST);
    int max = __atomic_load_n(&s->max_inflight, __ATOMIC_SEQ_CST);

    while (n > max && !__atomic_compare_exchange_n(&s->max_inflight, &max, n,
                                                  0, __ATOMIC_SEQ_CST,
                                                  __ATOMIC_SEQ_CST))
        ;
    nanosleep(&pause, NULL);
    __atomic_sub_fetch(&s->inflight, 1, __ATOMIC_SEQ_CST);
    if (strcmp(key, "fixture/max-concurrency") == 0) {
        ret->size = (uint64_t)__atomic_load_n(&s->max_inflight,
                                              __ATOMIC_SEQ_CST);
        ret->mtime_us = 1;
        return 0;
    }
    return s->host->error(s->ctx, -ENOENT, "no object '%s' (fixture)", key);
}
static int f_remove(void *st, const char *key)
{
    (void)st;
    (void)key;
    return -ENOENT;
}
static int f_list(void *st, const char *prefix, surplus_object_fn fn,
                  void *arg)
{
    (void)st;
    (void)prefix;
    (void)fn;
    (void)arg;
#ifdef FIXTURE_LISTFAIL
    struct state *s = st;
    return s->host->error(s->ctx, -EIO, "backend unreachable (fixture)");
#endif
    return 0;
}

static const struct surplus_storage_ops ops = {f_put, f_get, f_stat,
                                               f_remove, f_list};

static const struct surplus_plugin descriptor = {
#if defined(FIXTURE_WRONGMAJOR)
    SURPLUS_ABI_MAJOR + 1, 0, sizeof(struct surplus_plugin),
    SURPLUS_KIND_STORAGE,
#elif defined(FIXTURE_NEWMINOR)
    SURPLUS_ABI_MAJOR, SURPLUS_ABI_MINOR + 7, sizeof(struct surplus_plugin),
    SURPLUS_KIND_STORAGE,
#elif defined(FIXTURE_SHORTDESC)
    SURPLUS_ABI_MAJOR, SURPLUS_ABI_MINOR, 12, SURPLUS_KIND_STORAGE,
#elif defined(FIXTURE_OLDABI)
    /* built for ABI 1.0, whose descriptor ends before `flags` */
    SURPLUS_ABI_MAJOR, 0, offsetof(struct surplus_plugin, flags),
    SURPLUS_KIND_STORAGE,
#elif defined(FIXTURE_SHORTFLAGS)
    SURPLUS_ABI_MAJOR, 1, offsetof(struct surplus_plugin, flags),
    SURPLUS_KIND_STORAGE,
#else
    SURPLUS_PLUGIN_HEADER(SURPLUS_KIND_STORAGE),
#endif
#if defined(FIXTURE_MISNAMED)
    "other",
#elif defined(FIXTURE_WRONGKIND)
    "wrongkind",
#elif defined(FIXTURE_GOOD)
    "good",
#elif defined(FIXTURE_WRONGMAJOR)
    "wrongmajor",
#elif defined(FIXTURE_NEWMINOR)
    "newminor",
#elif defined(FIXTURE_NOSYMBOL)
    "nosymbol",
#elif defined(FIXTURE_INITFAIL)
    "initfail",
#elif defined(FIXTURE_BADSETTING)
    "badsetting",
#elif defined(FIXTURE_LISTFAIL)
    "listfail",
#elif defined(FIXTURE_THREADSAFE)
    "threadsafe",
#elif defined(FIXTURE_OLDABI)
    "oldabi",
#elif defined(FIXTURE_BADFLAGS)
    "badflags",
#elif defined(FIXTURE_SHORTFLAGS)
    "shortflags",
#else
    "shortdesc",
#endif
    "1.2.3",
    "loader test fixture",
    f_init,
    f_fini,
    &ops,
#if defined(FIXTURE_THREADSAFE) || defined(FIXTURE_OLDABI)
    /* for oldabi: past its declared size, so never read */
    SURPLUS_PLUGIN_THREAD_SAFE,
#elif defined(FIXTURE_BADFLAGS)
    UINT64_C(1) << 5,
#else
    0,
#endif
};

#ifdef FIXTURE_NOSYMBOL
/* Exported under the wrong name: the loader must not find a descriptor. */
SURPLUS_VISIBLE const struct surplus_plugin *surplus_plugin_descriptr(void);
SURPLUS_VISIBLE const struct surplus_plugin *surplus_plugin_descriptr(void)
{
    return &descriptor;
}
#else
SURPLUS_PLUGIN_EXPORT(descriptor)
#endif
