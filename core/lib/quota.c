/*
 * quota.c - tenants' storage quotas: the store's count of each tenant's
 * bytes plus what is held on its way there, checked and taken under one
 * lock.
 */
#include "quota.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <surplus/storage.h>

#include "calls.h"
#include "units.h"

struct quota_tenant {
    char *name;
    uint64_t quota;  /* 0: none */
    uint64_t held;
};

struct quota {
    pthread_mutex_t mu;
    struct jobstore *js;
    struct quota_tenant *t;
    size_t n;
};

int quota_new(struct jobstore *js, struct quota **ret, struct err *e)
{
    struct quota *q = calloc(1, sizeof *q);

    if (q == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    pthread_mutex_init(&q->mu, NULL);
    q->js = js;
    *ret = q;
    return 0;
}

void quota_free(struct quota *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->n; i++)
        free(q->t[i].name);
    free(q->t);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* With q->mu held: the entry of `name`, made on first use (NULL: out of
 * memory). */
static struct quota_tenant *tenant_of(struct quota *q, const char *name)
{
    struct quota_tenant *t;

    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->t[i].name, name) == 0)
            return &q->t[i];
    if ((t = realloc(q->t, (q->n + 1) * sizeof *t)) == NULL)
        return NULL;
    q->t = t;
    t = &q->t[q->n];
    *t = (struct quota_tenant){.name = strdup(name)};
    if (t->name == NULL)
        return NULL;
    q->n++;
    return t;
}

int quota_load(struct quota *q, const struct config *cf)
{
    int r = 0;

    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < q->n; i++)
        q->t[i].quota = 0;
    for (size_t i = 0; i < cf->n_tenants; i++) {
        const struct tenant_conf *tc = &cf->tenants[i];
        struct quota_tenant *t = tenant_of(q, tc->name);

        if (t == NULL) {
            r = -ENOMEM;
            break;
        }
        t->quota = tc->has_storage_quota ? tc->storage_quota
                                         : cf->storage_quota;
    }
    pthread_mutex_unlock(&q->mu);
    return r;
}

/* With q->mu held.  The store is read only when `check`ing a tenant with
 * a quota, or `always`. */
static int use_locked(struct quota *q, const char *tenant, bool check,
                      bool always, struct quota_use *u, struct err *e)
{
    struct quota_tenant *t = tenant_of(q, tenant);

    *u = (struct quota_use){0};
    if (t == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    u->held = t->held;
    u->quota = t->quota;
    if (!always && !(check && u->quota != 0))
        return 0;
    return jobstore_stored_bytes(q->js, tenant, &u->stored, e);
}

static int over(const char *tenant, const struct quota_use *u,
                struct err *e)
{
    char used[32], most[32];

    return err_set(e, -ENOSPC,
                   "storage quota exceeded: tenant '%s' uses %s (%llu "
                   "bytes) of its storage_quota of %s (%llu bytes)",
                   tenant,
                   units_format_size(u->stored + u->held, used, sizeof used),
                   (unsigned long long)(u->stored + u->held),
                   units_format_size(u->quota, most, sizeof most),
                   (unsigned long long)u->quota);
}

static int take(struct quota *q, const char *tenant, uint64_t bytes,
                bool must, bool hold, struct quota_use *ret_use,
                struct err *e)
{
    struct quota_use u;
    int r;

    pthread_mutex_lock(&q->mu);
    r = use_locked(q, tenant, !must, false, &u, e);
    if (r == 0 && !must && u.quota != 0 &&
        (bytes > u.quota || u.stored + u.held > u.quota - bytes))
        r = over(tenant, &u, e);
    if (r == 0 && hold)
        tenant_of(q, tenant)->held += bytes;
    pthread_mutex_unlock(&q->mu);
    if (ret_use != NULL)
        *ret_use = u;
    return r;
}

int quota_admit(struct quota *q, const char *tenant, uint64_t bytes,
                bool must, struct quota_use *ret_use, struct err *e)
{
    return take(q, tenant, bytes, must, true, ret_use, e);
}

int quota_check(struct quota *q, const char *tenant, uint64_t bytes,
                struct quota_use *ret_use, struct err *e)
{
    return take(q, tenant, bytes, false, false, ret_use, e);
}

void quota_release(struct quota *q, const char *tenant, uint64_t bytes)
{
    struct quota_tenant *t;

    if (bytes == 0)
        return;
    pthread_mutex_lock(&q->mu);
    if ((t = tenant_of(q, tenant)) != NULL)
        t->held -= bytes < t->held ? bytes : t->held;
    pthread_mutex_unlock(&q->mu);
}

int quota_use(struct quota *q, const char *tenant, struct quota_use *ret,
              struct err *e)
{
    int r;

    pthread_mutex_lock(&q->mu);
    r = use_locked(q, tenant, false, true, ret, e);
    pthread_mutex_unlock(&q->mu);
    return r;
}

/* ---- counting from storage ---------------------------------------------- */

static int add_size(void *arg, const char *key,
                    const struct surplus_object_info *info)
{
    (void)key;
    *(uint64_t *)arg += info ? info->size : 0;
    return 0;
}

int quota_count_job(struct plugin *storage, const char *id, uint64_t *ret,
                    struct err *e)
{
    char prefix[64];
    uint64_t n = 0;
    int r;

    snprintf(prefix, sizeof prefix, "jobs/%s/", id);
    r = storage_list(storage, prefix, add_size, &n, e);
    if (r < 0 && r != -ENOENT)
        return plugin_error(storage, r, e, "list");
    err_clear(e);
    *ret = n;
    return 0;
}

struct unknown {
    char (*ids)[JOBSTORE_ID_LEN + 1];
    uint64_t *bytes;
    size_t n, cap;
};

static int on_unknown(void *arg, const char *id)
{
    struct unknown *u = arg;

    if (u->n == u->cap) {
        size_t cap = u->cap ? 2 * u->cap : 64;
        char (*ids)[JOBSTORE_ID_LEN + 1] = realloc(u->ids,
                                                   cap * sizeof *ids);

        if (ids == NULL)
            return -ENOMEM;
        u->ids = ids;
        u->cap = cap;
    }
    memcpy(u->ids[u->n++], id, JOBSTORE_ID_LEN + 1);
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, JOBSTORE_ID_LEN);
}

/* One walk of the whole store: "jobs/<id>/..." adds to <id>'s bytes. */
static int on_object(void *arg, const char *key,
                     const struct surplus_object_info *info)
{
    struct unknown *u = arg;
    const char (*hit)[JOBSTORE_ID_LEN + 1];

    if (strlen(key) < 5 + JOBSTORE_ID_LEN + 1 ||
        key[5 + JOBSTORE_ID_LEN] != '/')
        return 0;
    hit = bsearch(key + 5, u->ids, u->n, sizeof *u->ids, cmp_id);
    if (hit != NULL && info != NULL)
        u->bytes[hit - u->ids] += info->size;
    return 0;
}

/* Past this many jobs, one walk of "jobs/" costs less than a listing per
 * job (a listing may read the whole store to find one prefix). */
#define COUNT_ONE_BY_ONE_MAX 32

int quota_count_unknown(struct jobstore *js, struct plugin *storage,
                        uint64_t *ret_n, struct err *e)
{
    struct unknown u = {0};
    const char **ids = NULL;
    int r;

    *ret_n = 0;
    r = jobstore_stored_unknown(js, on_unknown, &u, e);
    if (r == -ENOMEM)
        err_set(e, r, "out of memory");
    if (r < 0 || u.n == 0)
        goto out;
    if ((u.bytes = calloc(u.n, sizeof *u.bytes)) == NULL ||
        (ids = calloc(u.n, sizeof *ids)) == NULL) {
        r = err_set(e, -ENOMEM, "out of memory");
        goto out;
    }
    qsort(u.ids, u.n, sizeof *u.ids, cmp_id);
    if (u.n <= COUNT_ONE_BY_ONE_MAX) {
        for (size_t i = 0; r == 0 && i < u.n; i++)
            r = quota_count_job(storage, u.ids[i], &u.bytes[i], e);
    } else {
        r = storage_list(storage, "jobs/", on_object, &u, e);
        if (r == -ENOENT) {
            err_clear(e);
            r = 0;
        }
        else if (r < 0)
            r = plugin_error(storage, r, e, "list");
    }
    for (size_t i = 0; i < u.n; i++)
        ids[i] = u.ids[i];
    if (r == 0)
        r = jobstore_stored_set(js, ids, u.bytes, u.n, e);
    if (r == 0)
        *ret_n = u.n;
out:
    free(ids);
    free(u.ids);
    free(u.bytes);
    return r;
}
