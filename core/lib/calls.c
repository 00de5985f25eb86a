/*
 * calls.c - every operation of a plugin instance, called one thread at a
 * time with its own error message (see calls.h).
 */
#include "calls.h"

#include <errno.h>
#include <string.h>

#include "host.h"

/* The ABI minor version that added each operation: one is called only
 * when the plugin's descriptor declares that minor or a later one.  Every
 * operation so far is ABI 1.0's; an operation appended to an ops table
 * later is added here with its minor. */
enum {
    SINCE_STORAGE_PUT = 0,
    SINCE_STORAGE_GET = 0,
    SINCE_STORAGE_STAT = 0,
    SINCE_STORAGE_REMOVE = 0,
    SINCE_STORAGE_LIST = 0,
    SINCE_ACCOUNTING_RECORD = 0,
    SINCE_ACCOUNTING_FLUSH = 0,
    SINCE_ACCOUNTING_QUERY = 0,
    SINCE_ACCELERATOR_DISCOVER = 0,
    SINCE_ACCELERATOR_PREPARE = 0,
    SINCE_ACCELERATOR_RELEASE = 0,
};

/* Whether the plugin was built for an ABI that has ABI 1.`since`'s
 * operations. */
static bool declares(const struct plugin *p, uint32_t since)
{
    return p->desc->abi_minor >= since;
}

struct call {
    struct plugin *p;
    struct err *e;
    struct err own; /* for a caller that passes no err */
    struct host_capture capture;
};

/* Checks that `p` can take operation `op` of `kind`, added in ABI 1.`since`,
 * then locks the instance and sends its host->error() messages to `e`. */
static int call_begin(struct call *c, struct plugin *p,
                      enum surplus_plugin_kind kind, uint32_t since,
                      const char *op, struct err *e)
{
    int r;

    if (e == NULL)
        e = &c->own;
    c->p = p;
    c->e = e;
    err_clear(e);
    if (p == NULL)
        return err_set(e, -ESRCH, "plugin %s: no plugin instance", op);
    if (p->kind != kind)
        return err_set(e, -EINVAL, "%s has no %s operation (it is of kind "
                       "%s)", p->ctx.label, op, plugin_kind_name(p->kind));
    if (!declares(p, since))
        return err_set(e, -ENOSYS, "%s has no %s operation: it was added in "
                       "plugin ABI %d.%u and the plugin is built for %u.%u",
                       p->ctx.label, op, SURPLUS_ABI_MAJOR, since,
                       p->desc->abi_major, p->desc->abi_minor);
    /* A callback calling back into its own instance would wait for
     * itself (or, in a thread-safe plugin, re-enter it). */
    if (host_capture_active(&p->ctx))
        return err_set(e, -EDEADLK, "%s %s: called from within one of its "
                       "own callbacks", p->ctx.label, op);
    r = p->thread_safe ? pthread_rwlock_rdlock(&p->lock)
                       : pthread_rwlock_wrlock(&p->lock);
    if (r != 0)
        return err_set(e, -r, "%s %s: %s", p->ctx.label, op, strerror(r));
    /* Checked under the lock: plugin_stop() takes it too. */
    if (!p->started) {
        pthread_rwlock_unlock(&p->lock);
        return err_set(e, -ESRCH, "%s %s: the plugin is not started",
                       p->ctx.label, op);
    }
    host_capture_begin(&c->capture, &p->ctx, e);
    return 0;
}

/* Unlocks; a failure keeps the message the plugin gave for it (none: an
 * empty msg).  A positive `r` is a walk's callback return. */
static int call_end(struct call *c, int r)
{
    struct err *e = c->e;

    host_capture_end(&c->capture);
    pthread_rwlock_unlock(&c->p->lock);
    if (r >= 0) {
        err_clear(e);
        return r;
    }
    e->code = r;
    return r;
}

static const struct surplus_storage_ops *storage_ops(const struct plugin *p)
{
    return p->desc->ops;
}

static const struct surplus_accounting_ops *
accounting_ops(const struct plugin *p)
{
    return p->desc->ops;
}

static const struct surplus_accelerator_ops *
accelerator_ops(const struct plugin *p)
{
    return p->desc->ops;
}

int storage_put(struct plugin *p, const char *key, int fd, struct err *e)
{
    struct call c;
    int r = call_begin(&c, p, SURPLUS_KIND_STORAGE, SINCE_STORAGE_PUT, "put",
                       e);

    if (r < 0)
        return r;
    return call_end(&c, storage_ops(p)->put(p->state, key, fd));
}

int storage_get(struct plugin *p, const char *key, int fd, struct err *e)
{
    struct call c;
    int r = call_begin(&c, p, SURPLUS_KIND_STORAGE, SINCE_STORAGE_GET, "get",
                       e);

    if (r < 0)
        return r;
    return call_end(&c, storage_ops(p)->get(p->state, key, fd));
}

int storage_stat(struct plugin *p, const char *key,
                 struct surplus_object_info *ret, struct err *e)
{
    struct call c;
    int r = call_begin(&c, p, SURPLUS_KIND_STORAGE, SINCE_STORAGE_STAT,
                       "stat", e);

    if (r < 0)
        return r;
    return call_end(&c, storage_ops(p)->stat(p->state, key, ret));
}

int storage_remove(struct plugin *p, const char *key, struct err *e)
{
    struct call c;
    int r = call_begin(&c, p, SURPLUS_KIND_STORAGE, SINCE_STORAGE_REMOVE,
                       "remove", e);

    if (r < 0)
        return r;
    return call_end(&c, storage_ops(p)->remove(p->state, key));
}

int storage_list(struct plugin *p, const char *prefix, surplus_object_fn fn,
                 void *arg, struct err *e)
{
    struct call c;
    int r = call_begin(&c, p, SURPLUS_KIND_STORAGE, SINCE_STORAGE_LIST,
                       "list", e);

    if (r < 0)
        return r;
    return call_end(&c, storage_ops(p)->list(p->state, prefix, fn, arg));
}

int accounting_record(struct plugin *p,
                      const struct surplus_usage_record *rec, struct err *e)
{
    struct call c;
    int r = call_begin(&c, p, SURPLUS_KIND_ACCOUNTING,
                       SINCE_ACCOUNTING_RECORD, "record", e);

    if (r < 0)
        return r;
    return call_end(&c, accounting_ops(p)->record(p->state, rec));
}

int accounting_flush(struct plugin *p, struct err *e)
{
    struct call c;
    int r = call_begin(&c, p, SURPLUS_KIND_ACCOUNTING,
                       SINCE_ACCOUNTING_FLUSH, "flush", e);

    if (r < 0)
        return r;
    /* flush is optional: record is durable by itself without it */
    if (accounting_ops(p)->flush == NULL)
        return call_end(&c, 0);
    return call_end(&c, accounting_ops(p)->flush(p->state));
}

bool accounting_has_flush(const struct plugin *p)
{
    return p->kind == SURPLUS_KIND_ACCOUNTING &&
           declares(p, SINCE_ACCOUNTING_FLUSH) &&
           accounting_ops(p)->flush != NULL;
}

int accounting_query(struct plugin *p, const struct surplus_usage_query *q,
                     surplus_usage_fn fn, void *arg, struct err *e)
{
    struct call c;
    int r = call_begin(&c, p, SURPLUS_KIND_ACCOUNTING,
                       SINCE_ACCOUNTING_QUERY, "query", e);

    if (r < 0)
        return r;
    return call_end(&c, accounting_ops(p)->query(p->state, q, fn, arg));
}

int accelerator_discover(struct plugin *p, surplus_device_fn fn, void *arg,
                         struct err *e)
{
    struct call c;
    int r = call_begin(&c, p, SURPLUS_KIND_ACCELERATOR,
                       SINCE_ACCELERATOR_DISCOVER, "discover", e);

    if (r < 0)
        return r;
    return call_end(&c, accelerator_ops(p)->discover(p->state, fn, arg));
}

int accelerator_prepare(struct plugin *p, const struct surplus_lease *lease,
                        struct err *e)
{
    struct call c;
    int r = call_begin(&c, p, SURPLUS_KIND_ACCELERATOR,
                       SINCE_ACCELERATOR_PREPARE, "prepare", e);

    if (r < 0)
        return r;
    return call_end(&c, accelerator_ops(p)->prepare(p->state, lease));
}

int accelerator_release(struct plugin *p, const struct surplus_lease *lease,
                        struct surplus_scrub_report *ret, struct err *e)
{
    struct call c;
    int r = call_begin(&c, p, SURPLUS_KIND_ACCELERATOR,
                       SINCE_ACCELERATOR_RELEASE, "release", e);

    if (r < 0)
        return r;
    return call_end(&c, accelerator_ops(p)->release(p->state, lease, ret));
}
