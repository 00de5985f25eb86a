/*
 * service.h - what surplusd does, behind its HTTP API: accepts bundles,
 * keeps jobs in the job store, schedules and runs them through the runner,
 * and answers queries.  One instance per daemon; every function is safe to
 * call from the HTTP server's threads.
 */
#ifndef SURPLUS_SERVICE_H
#define SURPLUS_SERVICE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

struct service;

/* Who is asking: root on the Unix socket is the admin, who sees every
 * tenant's jobs and may act for one; anyone else is a tenant. */
struct caller {
    bool admin;
    const char *tenant; /* the tenant acted as; NULL for the admin alone */
    bool metrics;       /* api.metrics_token_sha256's token: GET /metrics
                           and nothing else */
};

/* Errors map onto HTTP statuses (api.c):
 *   -EINVAL 400, -EACCES 401, -EPERM 403, -ENOENT 404, -EALREADY 409, -EFBIG 413,
 *   -EBADMSG 422, -EDQUOT 429, -ENOSPC 507 (a tenant's storage_quota),
 *   -ESHUTDOWN 503, others 500. */

int service_open(const struct config *cf, struct service **ret,
                 struct err *e);
/* Starts the scheduler; jobs found queued (or running, after a crash:
 * reconciled first) are picked up. */
int service_start(struct service *s, struct err *e);
/* Stops accepting jobs, waits up to `grace_ms` for running ones, then
 * stops them and puts them back in the queue. */
void service_drain(struct service *s, uint64_t grace_ms);
void service_close(struct service *s);
/* SIGHUP: tenants and limits from a fresh read of the configuration. */
int service_reload(struct service *s, const struct config *cf,
                   struct err *e);

/* The tenant whose token this is, or NULL. */
const char *service_tenant_for_token(struct service *s, const char *token);
/* For a token that matched no tenant: whether a tenant's token_sha256 is
 * the hash of this token followed by a newline (or CR LF), the mark of
 * `echo TOKEN | sha256sum` or of a hashed token file; that tenant's name
 * goes to `name`. */
bool service_token_hashed_with_newline(struct service *s, const char *token,
                                       char *name, size_t len);
/* Whether this is api.metrics_token_sha256's token. */
bool service_metrics_token(struct service *s, const char *token);
bool service_tenant_exists(struct service *s, const char *name);
uint64_t service_max_bundle_bytes(struct service *s);
const char *service_spool_dir(struct service *s);

/* What a submission carries besides its bundle. */
struct submit_opts {
    /* The Idempotency-Key header (jobstore_key_valid), or NULL. */
    const char *idempotency_key;
    /* With a key: the SHA-256 of the request, that is of the bundle's
     * bytes (POST /v1/jobs has no parameter that changes the job). */
    char request_sha256[65];
};

/*
 * A submission with an idempotency key claims the key of the caller's
 * tenant from its headers until it has been answered: -EALREADY while
 * another request holds it.  Each successful claim is released once.
 */
int service_key_claim(struct service *s, const struct caller *c,
                      const char *key, struct err *e);
void service_key_release(struct service *s, const struct caller *c,
                         const char *key);

/*
 * Takes over `fd`, a complete bundle of `bytes` bytes; *ret is the job.
 * With an idempotency key (`o` may be NULL; the caller holds its claim),
 * the key is stored with the job, in the same transaction, for the
 * caller's tenant; and if that tenant's key is stored already, no job is
 * made and nothing is stored: the same request gets the job the key
 * stands for (*ret_replayed true), another is -EBADMSG.  A key lasts as
 * long as its job's files (see retention.h).  Refused with -ENOSPC when
 * the bundle does not fit in the tenant's storage_quota: *ret then says
 * what the tenant holds (the JSON error's details) and nothing was
 * stored.
 */
int service_submit(struct service *s, const struct caller *c, int fd,
                   uint64_t bytes, const struct submit_opts *o, json_t **ret,
                   bool *ret_replayed, struct err *e);
int service_job(struct service *s, const struct caller *c, const char *id,
                json_t **ret, struct err *e);
/* GET /v1/jobs's filters. */
struct jobs_query {
    unsigned states;    /* JOB_STATE_BIT() mask; 0: every state */
    int64_t since_us;   /* submitted at or after; INT64_MIN: any time */
    const char *tenant; /* NULL: the caller's jobs (every tenant's for the
                           admin); another tenant's is -EPERM but for the
                           admin */
};

/* The caller's jobs (every job for the admin) that pass `q` (may be
 * NULL) as a JSON array, in submission order; *ret is malloc'd text of
 * *ret_len bytes.  A queued job says why it waits (reason, reason_code). */
int service_jobs(struct service *s, const struct caller *c,
                 const struct jobs_query *q, char **ret, size_t *ret_len,
                 struct err *e);
int service_cancel(struct service *s, const struct caller *c,
                   const char *id, json_t **ret, struct err *e);
/* The job's log so far: an fd to read from (a snapshot), and whether the
 * job is over (no more will come). */
int service_log(struct service *s, const struct caller *c, const char *id,
                int *ret_fd, bool *ret_done, struct err *e);
int service_outputs(struct service *s, const struct caller *c,
                    const char *id, json_t **ret, struct err *e);
/* One output file: an fd to read it from. */
int service_output(struct service *s, const struct caller *c, const char *id,
                   const char *path, int *ret_fd, struct err *e);
/* Every device; which job holds a leased one only to its tenant and the
 * admin. */
int service_devices(struct service *s, const struct caller *c, json_t **ret,
                    struct err *e);
int service_usage(struct service *s, const struct caller *c, int64_t since_us,
                  int64_t until_us, json_t **ret, struct err *e);
/* Prometheus text exposition; the caller frees it.  The per-tenant
 * storage gauges name the caller's own tenant only, every tenant for the
 * admin acting as itself. */
char *service_metrics(struct service *s, const struct caller *c);

/* GET /v1/quota: for each tenant the caller may see (its own; every one
 * for the admin acting as itself), what it holds in storage and its
 * storage_quota, its queued jobs and its max_queued. */
int service_quota(struct service *s, const struct caller *c, json_t **ret,
                  struct err *e);

/* Whether a bundle of `bytes` would fit in the caller's storage_quota
 * now: 0, or -ENOSPC (507) with *ret_detail (may be NULL) saying what
 * the tenant holds, for the JSON error.  Nothing is held: service_submit
 * checks again. */
int service_storage_check(struct service *s, const struct caller *c,
                          uint64_t bytes, json_t **ret_detail,
                          struct err *e);
bool service_draining(struct service *s);

#endif
