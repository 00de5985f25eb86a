/*
 * surplus/accounting.h - operations of an accounting plugin
 * (kind "accounting").
 *
 * Accounting keeps the ledger of billable usage: one record per finished
 * job attempt.
 *
 * CONTRACT
 *   record  stores one usage record.  Idempotent by record_id: recording
 *           an id that is already stored returns 0 and changes nothing (the
 *           first copy wins), so a restarted core may safely record again.
 *           Durable when it returns 0, unless the plugin documents that it
 *           batches, in which case it is durable when flush returns 0.
 *   flush   makes every recorded record durable; may be NULL when record
 *           is durable by itself.
 *   query   calls `fn` for every record matching `q`, ordered by end time
 *           then record_id; a non-zero return from `fn` stops the walk and
 *           is returned.  The record passed to `fn` is valid only during
 *           the call.
 *
 * Operations on one instance are called from one thread at a time (the
 * core holds a lock per instance around each, callbacks included), unless
 * the descriptor sets SURPLUS_PLUGIN_THREAD_SAFE (surplus/plugin.h); two
 * instances configured alike share one ledger.
 *
 * Times are microseconds since the Unix epoch (wall clock); durations are
 * measured on a monotonic clock and are not end - start.
 *
 * UNKNOWN VALUES: a double field that is not known is NaN (a cpu_seconds
 * that was not measured).  A plugin stores it so that query returns NaN
 * again, never 0 (a zero would read as a measurement); SQL backends
 * typically store NULL and read NULL back as NaN.
 *
 * ERRORS (what surplus-plugin-check expects): a record whose record_id is
 * NULL or "" is refused with -EINVAL and nothing is stored.  Recording an
 * id already stored is 0, never -EEXIST.
 *
 * This header is C99 and C++ compatible.
 */
#ifndef SURPLUS_ACCOUNTING_H
#define SURPLUS_ACCOUNTING_H

#include <stddef.h>
#include <stdint.h>

#include <surplus/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

struct surplus_usage_device {
    const char *id;    /* stable device id, e.g. "GPU-8c1f..." */
    const char *model; /* e.g. "NVIDIA H100 80GB HBM3" */
};

struct surplus_usage_record {
    const char *record_id; /* unique; the idempotency key */
    const char *job_id;
    const char *tenant;
    const char *job_name;
    const char *node;      /* host name of the node that ran the job */
    const struct surplus_usage_device *devices;
    size_t n_devices;
    int64_t start_us;      /* wall clock */
    int64_t end_us;        /* wall clock */
    uint64_t duration_us;  /* monotonic */
    double device_seconds; /* leased devices x duration */
    double cpu_seconds;    /* user + system time of the job */
    uint64_t max_rss_bytes;
    int exit_status;       /* 0-255, 128+N for signal N, 124 walltime */
    const char *state;     /* final state: succeeded, failed, timeout, ... */
    uint64_t bytes_in;     /* bundle bytes received */
    uint64_t bytes_out;    /* output and log bytes stored */
    int64_t cost_micros;   /* price in millionths of `currency` */
    const char *currency;  /* ISO 4217 code, e.g. "USD" */
};

struct surplus_usage_query {
    const char *tenant; /* NULL for every tenant */
    int64_t since_us;   /* records with since_us <= end_us < until_us */
    int64_t until_us;
};

typedef int (*surplus_usage_fn)(void *arg,
                                const struct surplus_usage_record *rec);

struct surplus_accounting_ops {
    /* ABI 1.0 */
    int (*record)(void *state, const struct surplus_usage_record *rec);
    int (*flush)(void *state);
    int (*query)(void *state, const struct surplus_usage_query *q,
                 surplus_usage_fn fn, void *arg);
};

#ifdef __cplusplus
}
#endif

#endif /* SURPLUS_ACCOUNTING_H */
