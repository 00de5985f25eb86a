/*
 * retention.c - removes what ended jobs no longer need from storage: the
 * bundle at once, the log and outputs once the tenant's retention ran out,
 * and with them the job's idempotency key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <surplus/storage.h>

#include "retention.h"

#include "calls.h"

/* When the job's log and outputs expire; INT64_MAX: never. */
static int64_t expires_us(uint64_t ms, const struct job_row *row)
{
    if (ms == 0 || ms > (uint64_t)(INT64_MAX - row->ended_us) / 1000)
        return INT64_MAX;
    return row->ended_us + (int64_t)(ms * 1000);
}

bool retention_expired(uint64_t retention_ms, const struct job_row *row,
                       int64_t now_us)
{
    return job_state_terminal(row->state) && row->ended_us > 0 &&
           expires_us(retention_ms, row) <= now_us;
}

struct keys {
    char **v;
    size_t n, cap;
    uint64_t bytes;
};

static int on_key(void *arg, const char *key,
                  const struct surplus_object_info *info)
{
    struct keys *k = arg;

    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 16;
        char **v = realloc(k->v, cap * sizeof *v);

        if (v == NULL)
            return -ENOMEM;
        k->v = v;
        k->cap = cap;
    }
    if ((k->v[k->n] = strdup(key)) == NULL)
        return -ENOMEM;
    k->n++;
    k->bytes += info ? info->size : 0;
    return 0;
}

static void keys_free(struct keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
}

struct sweep {
    struct jobstore *js;
    struct plugin *storage;
    retention_fn retention;
    void *arg;
    int64_t now_us, since_us;
    struct retention_stats *stats;
    struct err *e;
};

/* Removes one object; a missing one is not an error. */
static int remove_key(struct sweep *w, const char *key, uint64_t size)
{
    int r = storage_remove(w->storage, key, w->e);

    if (r == -ENOENT) {
        err_clear(w->e);
        return 0;
    }
    if (r < 0)
        return plugin_error(w->storage, r, w->e, "remove");
    w->stats->objects++;
    w->stats->bytes += size;
    return 1;
}

static int expire(struct sweep *w, const struct job_row *row)
{
    char prefix[64];
    struct keys k = {0};
    int r;

    /* Its key goes with its files (a retry that late is a new job):
     * forgotten first, so that once the files are gone, so is the key. */
    r = jobstore_key_forget(w->js, row->id, w->e);
    if (r < 0)
        return r;
    /* Listed first and removed after: a store need not allow removal
     * during its own listing. */
    snprintf(prefix, sizeof prefix, "jobs/%s/", row->id);
    r = storage_list(w->storage, prefix, on_key, &k, w->e);
    if (r < 0 && r != -ENOENT) {
        keys_free(&k);
        return r == -ENOMEM ? err_set(w->e, r, "out of memory")
                            : plugin_error(w->storage, r, w->e, "list");
    }
    if (r == -ENOENT)
        err_clear(w->e);
    for (size_t i = 0; i < k.n && r >= 0; i++)
        r = remove_key(w, k.v[i], 0);
    if (r >= 0) {
        w->stats->bytes += k.bytes;
        if (k.n > 0)
            w->stats->expired++;
        r = 0;
    }
    keys_free(&k);
    /* Its tenant's storage no longer counts any of it. */
    if (r >= 0 && (row->stored_bytes != 0 || row->bundle_key != NULL))
        r = jobstore_files_removed(w->js, row->id, JOBSTORE_ALL_REMOVED,
                                   w->e);
    return r;
}

static int on_ended(void *arg, const struct job_row *row)
{
    struct sweep *w = arg;
    int64_t exp;
    int r;

    if (row->ended_us <= 0)
        return 0;
    exp = expires_us(w->retention(w->arg, row->tenant), row);
    if (exp <= w->now_us) {
        if (exp < w->since_us)
            return 0; /* expired at an earlier sweep */
        return expire(w, row);
    }
    if (row->ended_us < w->since_us || row->bundle_key == NULL)
        return 0;
    r = remove_key(w, row->bundle_key, row->bundle_bytes);
    if (r > 0)
        w->stats->bundles++;
    if (r >= 0)
        r = jobstore_files_removed(w->js, row->id,
                                   r > 0 ? JOBSTORE_BUNDLE_REMOVED
                                         : JOBSTORE_BUNDLE_MISSING,
                                   w->e);
    return r < 0 ? r : 0;
}

int retention_sweep(struct jobstore *js, struct plugin *storage,
                    retention_fn retention, void *arg, int64_t now_us,
                    int64_t since_us, struct retention_stats *stats,
                    struct err *e)
{
    struct job_filter f = {.states = JOB_STATES_TERMINAL};
    struct sweep w = {.js = js, .storage = storage, .retention = retention,
                      .arg = arg, .now_us = now_us, .since_us = since_us,
                      .stats = stats, .e = e};

    return jobstore_list(js, &f, on_ended, &w, e);
}
