/*
 * api.c - the HTTP side of surplusd: routing, identity, uploads, JSON
 * errors.  Everything else is the service's (service.h).
 */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "jobstore.h"
#include "log.h"
#include "node.h"
#include "sha256.h"

/* Threads serving each listener.  A submission waits on the disk (the
 * bundle and the job's row are made durable before the reply), so more
 * threads than CPUs keep several clients' submissions in flight. */
#define API_THREADS 4u

#define JOB_ID_LEN 16

struct endpoint {
    struct api *a;
    bool unix_socket;
};

/* Open streams of one tenant ("" for root acting as itself). */
struct tally {
    struct tally *next;
    unsigned followers, downloads;
    char tenant[];
};

/* Connections of one uid on the Unix socket. */
struct uid_count {
    uid_t uid;
    unsigned n;
};

struct log_stream;

struct api {
    struct service *svc;
    struct endpoint on_unix, on_tcp;
    struct MHD_Daemon *unix_d;
    struct MHD_Daemon *tcp_d;
    int unix_fd, tcp_fd;
    char *socket_path;
    char *tls_cert, *tls_key;
    /* While the HTTPS server starts, its first message is kept for the
     * error rather than logged (the TLS library's reason for refusing the
     * certificate or key). */
    pthread_mutex_t tls_mu;
    bool tls_starting;
    char tls_msg[256];
    /* Limits (api group of surplus.conf), fixed at start. */
    unsigned per_client, max_followers, max_downloads, followers_total;
    /* Followers, tallies and the Unix socket's uids; one lock. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct log_stream *streams;  /* every followed log stream */
    unsigned n_followers;
    struct tally *tallies;
    struct uid_count *uids;
    size_t n_uids;
    bool stopping;
    bool watching;
    pthread_t watcher;
};

/* One request's state across the handler's calls. */
struct req {
    bool unix_socket;
    bool authed;
    struct caller caller;
    char tenant[128];
    /* POST /v1/jobs */
    int fd;
    uint64_t bytes;
    bool over;        /* past limits.max_bundle_bytes: the rest is dropped */
    int spool_errno;  /* a write to the spool failed: the rest is dropped */
    /* Its Content-Length does not fit in the tenant's storage_quota: the
     * body is dropped and this is the answer (507). */
    bool no_room;
    char no_room_msg[sizeof ((struct err *)0)->msg];
    json_t *no_room_detail;
    bool answered;
    /* Refused before the body (a bad Idempotency-Key, or one another
     * request is using), answered after it: the body is dropped. */
    int refused;
    char refused_msg[160];
    /* Idempotency-Key, and the SHA-256 of the body as it comes; claimed
     * until answered (service_key_claim). */
    bool keyed, claimed;
    char key[JOBSTORE_KEY_MAX + 1];
    struct sha256_ctx sha;
};

/* ---- responses ---------------------------------------------------------- */

/* Sends `body`, taking it over (it must come from malloc). */
static enum MHD_Result send_owned(struct MHD_Connection *c, unsigned status,
                                  const char *type, char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status,
                                 const char *type, const char *body,
                                 size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status,
                                 json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    if (s == NULL)
        return MHD_NO;
    return send_owned(c, status, "application/json", s, strlen(s));
}

/* The 201 of POST /v1/jobs; a replay says so in a header. */
static enum MHD_Result send_created(struct MHD_Connection *c, json_t *j,
                                    bool replayed)
{
    char *s = json_dumps(j, JSON_COMPACT);
    struct MHD_Response *r;
    enum MHD_Result ret;

    json_decref(j);
    if (s == NULL)
        return MHD_NO;
    r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    if (replayed)
        MHD_add_response_header(r, "Idempotent-Replayed", "true");
    ret = MHD_queue_response(c, MHD_HTTP_CREATED, r);
    MHD_destroy_response(r);
    return ret;
}

static unsigned status_for(int r)
{
    switch (r) {
    case -EINVAL:
        return MHD_HTTP_BAD_REQUEST;
    case -EACCES:
        return MHD_HTTP_UNAUTHORIZED;
    case -EPERM:
        return MHD_HTTP_FORBIDDEN;
    case -ENOENT:
        return MHD_HTTP_NOT_FOUND;
    case -EALREADY:
        return MHD_HTTP_CONFLICT;
    case -EFBIG:
        return MHD_HTTP_CONTENT_TOO_LARGE;
    case -EBADMSG:
    case -ERANGE: /* asks for more than the tenant may ever have */
        return MHD_HTTP_UNPROCESSABLE_CONTENT;
    case -EDQUOT:
    case -EUSERS:
        return MHD_HTTP_TOO_MANY_REQUESTS;
    case -ESHUTDOWN:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    case -ENOSPC:
        return MHD_HTTP_INSUFFICIENT_STORAGE;
    case -ENOSYS:
        return MHD_HTTP_METHOD_NOT_ALLOWED;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

/* An error message may quote what the client sent (a tenant name, a
 * path), and JSON strings must be UTF-8: anything but printable ASCII is
 * shown as '?', so that a hostile byte still gets its JSON answer.  The
 * members of `detail` (taken over; may be NULL) go beside "error" and
 * "status". */
static enum MHD_Result send_error_detail(struct MHD_Connection *c, int r,
                                         const char *msg, json_t *detail)
{
    unsigned st = status_for(r);
    char clean[512];
    json_t *j;
    size_t i;

    for (i = 0; msg[i] && i < sizeof clean - 1; i++)
        clean[i] = msg[i] >= 0x20 && msg[i] < 0x7f ? msg[i] : '?';
    clean[i] = '\0';
    j = json_is_object(detail) ? json_incref(detail) : json_object();
    json_decref(detail);
    json_object_set_new(j, "error", json_string(clean));
    json_object_set_new(j, "status", json_integer((json_int_t)st));
    return send_json(c, st, j);
}

static enum MHD_Result send_error(struct MHD_Connection *c, int r,
                                  const char *msg)
{
    return send_error_detail(c, r, msg, NULL);
}

static enum MHD_Result send_result(struct MHD_Connection *c, int r,
                                   unsigned ok, json_t *j, struct err *e)
{
    if (r < 0)
        return send_error(c, r, e->msg[0] ? e->msg : strerror(-r));
    return send_json(c, ok, j);
}

/* ---- identity ------------------------------------------------------------ */

static int peer_uid(struct MHD_Connection *c, uid_t *uid)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct ucred cred;
    socklen_t len = sizeof cred;

    if (ci == NULL ||
        getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -errno;
    *uid = cred.uid;
    return 0;
}

/* Who sent a request, for the log: "127.0.0.1:40312", "[::1]:40312", or
 * "the Unix socket (uid 1000)". */
static void peer_describe(struct MHD_Connection *c, bool unix_socket,
                          char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    uid_t uid;

    if (unix_socket) {
        if (peer_uid(c, &uid) == 0)
            snprintf(buf, len, "the Unix socket (uid %u)", (unsigned)uid);
        else
            snprintf(buf, len, "the Unix socket");
        return;
    }
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL ||
        getnameinfo(ci->client_addr,
                    ci->client_addr->sa_family == AF_INET6
                        ? sizeof(struct sockaddr_in6)
                        : sizeof(struct sockaddr_in),
                    host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(buf, len, "an unknown address");
        return;
    }
    if (strchr(host, ':') != NULL)
        snprintf(buf, len, "[%s]:%s", host, serv);
    else
        snprintf(buf, len, "%s:%s", host, serv);
}

/* Refused credentials are logged at most once a second, so that a flood
 * of bad tokens cannot fill the journal; the next line counts the ones
 * left out.  Neither the token nor its hash is ever logged. */
static pthread_mutex_t refused_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t refused_last_ms;
static unsigned long refused_unlogged;

static void log_refused(struct api *a, struct MHD_Connection *c,
                        bool unix_socket, const char *auth)
{
    char peer[NI_MAXHOST + NI_MAXSERV + 32], tenant[128], more[96] = "";
    struct timespec ts;
    uint64_t now;
    bool bearer = strncasecmp(auth, "Bearer ", 7) == 0;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    pthread_mutex_lock(&refused_mu);
    if (refused_last_ms != 0 && now - refused_last_ms < 1000) {
        refused_unlogged++;
        pthread_mutex_unlock(&refused_mu);
        return;
    }
    if (refused_unlogged > 0)
        snprintf(more, sizeof more, " (and %lu more refused since the "
                                    "last such line, not logged)",
                 refused_unlogged);
    refused_last_ms = now;
    refused_unlogged = 0;
    pthread_mutex_unlock(&refused_mu);

    peer_describe(c, unix_socket, peer, sizeof peer);
    if (!bearer)
        log_msg(SURPLUS_LOG_WARNING, "refused a request from %s: its "
                                     "Authorization header is not "
                                     "\"Bearer TOKEN\"%s",
                peer, more);
    else if (service_token_hashed_with_newline(a->svc, auth + 7, tenant,
                                               sizeof tenant))
        log_msg(SURPLUS_LOG_WARNING, "refused a bearer token from %s: it "
                                     "matches no tenant's token_sha256; the "
                                     "configured token_sha256 of tenant '%s' "
                                     "was computed over the token with a "
                                     "trailing newline: use printf %%s TOKEN "
                                     "| sha256sum (or surplus token new)%s",
                peer, tenant, more);
    else
        log_msg(SURPLUS_LOG_WARNING, "refused a bearer token from %s: it "
                                     "matches no tenant's token_sha256%s",
                peer, more);
}

/* Sets rq->caller from the socket's peer and the Authorization header;
 * -EACCES (401) when neither says who this is. */
static int authenticate(struct api *a, struct MHD_Connection *c,
                        struct req *rq, struct err *e)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_AUTHORIZATION);
    const char *as = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 "X-Surplus-Tenant");
    uid_t uid = (uid_t)-1;

    /* A token names its tenant, whoever presents it. */
    if (auth != NULL) {
        const char *t = strncasecmp(auth, "Bearer ", 7) == 0
                            ? service_tenant_for_token(a->svc, auth + 7)
                            : NULL;

        if (t == NULL && strncasecmp(auth, "Bearer ", 7) == 0 &&
            service_metrics_token(a->svc, auth + 7)) {
            rq->caller.admin = false;
            rq->caller.tenant = NULL;
            rq->caller.metrics = true;
            return 0;
        }
        if (t == NULL) {
            log_refused(a, c, rq->unix_socket, auth);
            return err_set(e, -EACCES, "the bearer token is not valid");
        }
        snprintf(rq->tenant, sizeof rq->tenant, "%s", t);
        rq->caller.admin = false;
        rq->caller.tenant = rq->tenant;
        return 0;
    }
    if (rq->unix_socket && peer_uid(c, &uid) == 0 && uid == 0) {
        rq->caller.admin = true;
        rq->caller.tenant = NULL;
        if (as != NULL && *as) {
            if (!service_tenant_exists(a->svc, as))
                return err_set(e, -ENOENT, "no tenant '%.64s'", as);
            snprintf(rq->tenant, sizeof rq->tenant, "%s", as);
            rq->caller.tenant = rq->tenant;
        }
        return 0;
    }
    return err_set(e, -EACCES, "a bearer token is needed (Authorization: "
                               "Bearer TOKEN)");
}

/* ---- routes ------------------------------------------------------------- */

/* "/v1/jobs/<id>[/<rest>]": copies the id and points *rest past it. */
static bool job_path(const char *url, char id[JOB_ID_LEN + 1],
                     const char **rest)
{
    const char *p = url + strlen("/v1/jobs/");
    size_t n = strcspn(p, "/");

    if (strncmp(url, "/v1/jobs/", 9) != 0 || n != JOB_ID_LEN ||
        strspn(p, "0123456789abcdef") < JOB_ID_LEN)
        return false;
    memcpy(id, p, JOB_ID_LEN);
    id[JOB_ID_LEN] = '\0';
    *rest = p + n;
    return true;
}

static int64_t query_time(struct MHD_Connection *c, const char *key,
                          int64_t def, bool *bad)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    char *end;
    long long x;

    if (v == NULL || *v == '\0')
        return def;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno || *end != '\0') {
        *bad = true;
        return def;
    }
    return (int64_t)x;
}

/* ---- GET /v1/jobs's filters ------------------------------------------- */

struct jobs_args {
    struct jobs_query q;
    char tenant[128];
    int bad;            /* -EINVAL once an argument is refused */
    char why[256];
};

/* "2026-03-01T12:00:00Z", with optional fraction and a numeric offset
 * instead of Z (RFC 3339; 't', 'z' and a space for 'T' as it allows), or
 * unix seconds.  Microseconds since the epoch in *ret. */
static bool parse_since(const char *v, int64_t *ret)
{
    struct tm tm = {0};
    const char *p;
    char *end;
    int64_t frac = 0, scale = 100000, off = 0;
    long long x;

    if (*v != '\0' && strspn(v, "0123456789") == strlen(v)) {
        errno = 0;
        x = strtoll(v, &end, 10);
        if (errno || x > INT64_MAX / 1000000)
            return false;
        *ret = (int64_t)x * 1000000;
        return true;
    }
    if ((p = strptime(v, "%Y-%m-%d", &tm)) == NULL ||
        (*p != 'T' && *p != 't' && *p != ' ') ||
        (p = strptime(p + 1, "%H:%M:%S", &tm)) == NULL)
        return false;
    if (*p == '.') {
        if (p[1] < '0' || p[1] > '9')
            return false;
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += scale > 0 ? (*p - '0') * scale : 0;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        off = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 &&
               p[1] >= '0' && p[1] <= '2' && p[2] >= '0' && p[2] <= '9' &&
               p[3] == ':' && p[4] >= '0' && p[4] <= '5' && p[5] >= '0' &&
               p[5] <= '9') {
        off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
              ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
        if (*p == '-')
            off = -off;
    } else {
        return false;
    }
    *ret = ((int64_t)timegm(&tm) - off) * 1000000 + frac;
    return true;
}

static enum MHD_Result on_jobs_arg(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value)
{
    struct jobs_args *a = cls;
    char buf[128], name[64];

    (void)kind;
    if (a->bad || key == NULL)
        return MHD_YES;
    if (value == NULL)
        value = "";
    if (strcmp(key, "state") == 0) {
        /* Repeated, or a comma-separated list, or both. */
        for (const char *p = value;; p += strcspn(p, ",") + 1) {
            size_t n = strcspn(p, ",");
            enum job_state st;

            snprintf(buf, sizeof buf, "%.*s", (int)(n < 100 ? n : 100), p);
            if (job_state_parse(buf, &st) < 0) {
                a->bad = -EINVAL;
                snprintf(a->why, sizeof a->why,
                         "state: unknown job state '%s' (queued, running, "
                         "completing, succeeded, failed, timeout, "
                         "cancelled, rejected)",
                         err_escape(buf, name, sizeof name));
                return MHD_YES;
            }
            a->q.states |= JOB_STATE_BIT(st);
            if (p[n] == '\0')
                break;
        }
    } else if (strcmp(key, "since") == 0) {
        if (!parse_since(value, &a->q.since_us)) {
            a->bad = -EINVAL;
            snprintf(a->why, sizeof a->why,
                     "since: '%s' is not an RFC 3339 time "
                     "(2026-03-01T12:00:00Z) or unix seconds",
                     err_escape(value, name, sizeof name));
        }
    } else if (strcmp(key, "tenant") == 0) {
        if (*value == '\0' || strlen(value) >= sizeof a->tenant) {
            a->bad = -EINVAL;
            snprintf(a->why, sizeof a->why, "tenant: expected a tenant name");
            return MHD_YES;
        }
        snprintf(a->tenant, sizeof a->tenant, "%s", value);
        a->q.tenant = a->tenant;
    }
    return MHD_YES;
}

/* ---- per-tenant stream caps ------------------------------------------- */

/* With a->mu held: the tally of the caller's tenant, made on first use. */
static struct tally *tally_of(struct api *a, const struct caller *who)
{
    const char *name = who->tenant ? who->tenant : "";
    struct tally *t;

    for (t = a->tallies; t; t = t->next)
        if (strcmp(t->tenant, name) == 0)
            return t;
    if ((t = calloc(1, sizeof *t + strlen(name) + 1)) == NULL)
        return NULL;
    strcpy(t->tenant, name);
    t->next = a->tallies;
    a->tallies = t;
    return t;
}

/* Takes one of the caller's `which` streams (followers or downloads), or
 * says why not: -EUSERS (429) past the tenant's cap or the node's. */
static int stream_take(struct api *a, const struct caller *who, bool follower,
                       struct err *e)
{
    const char *name = who->tenant ? who->tenant : "root";
    struct tally *t;
    int r = 0;

    pthread_mutex_lock(&a->mu);
    if ((t = tally_of(a, who)) == NULL) {
        r = err_set(e, -ENOMEM, "out of memory");
    } else if (follower) {
        if (a->n_followers >= a->followers_total)
            r = err_set(e, -EUSERS, "this node follows %u logs, its most; "
                                    "try again later",
                        a->n_followers);
        else if (!who->admin && t->followers >= a->max_followers)
            r = err_set(e, -EUSERS, "tenant '%s' follows %u logs, its most "
                                    "(api.max_followers_per_tenant)",
                        name, t->followers);
        else {
            t->followers++;
            a->n_followers++;
        }
    } else if (!who->admin && t->downloads >= a->max_downloads) {
        r = err_set(e, -EUSERS, "tenant '%s' downloads %u outputs, its most "
                                "(api.max_downloads_per_tenant)",
                    name, t->downloads);
    } else {
        t->downloads++;
    }
    pthread_mutex_unlock(&a->mu);
    return r;
}

static void stream_give(struct api *a, const struct caller *who,
                        bool follower)
{
    struct tally *t;

    pthread_mutex_lock(&a->mu);
    if ((t = tally_of(a, who)) != NULL) {
        if (follower && t->followers > 0) {
            t->followers--;
            a->n_followers--;
        } else if (!follower && t->downloads > 0) {
            t->downloads--;
        }
    }
    pthread_mutex_unlock(&a->mu);
}

/* ---- outputs -------------------------------------------------------------- */

struct download {
    struct api *a;
    struct caller caller;
    char tenant[128];
    int fd;
};

static ssize_t download_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct download *d = cls;
    ssize_t n = pread(d->fd, buf, max, (off_t)pos);

    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
}

static void download_free(void *cls)
{
    struct download *d = cls;

    close(d->fd);
    stream_give(d->a, &d->caller, false);
    free(d);
}

/* Each download holds a copy of the output in the spool until it ends,
 * so a tenant may run only so many at once. */
static enum MHD_Result get_output(struct api *a, struct MHD_Connection *c,
                                  struct req *rq, const char *id,
                                  const char *output)
{
    struct err e = {0};
    struct MHD_Response *resp;
    struct download *d;
    enum MHD_Result ret;
    int r;

    if ((d = calloc(1, sizeof *d)) == NULL)
        return send_error(c, -ENOMEM, "out of memory");
    d->a = a;
    d->caller.admin = rq->caller.admin;
    if (rq->caller.tenant != NULL) {
        snprintf(d->tenant, sizeof d->tenant, "%s", rq->caller.tenant);
        d->caller.tenant = d->tenant;
    }
    if ((r = stream_take(a, &d->caller, false, &e)) < 0) {
        free(d);
        return send_error(c, r, e.msg);
    }
    r = service_output(a->svc, &rq->caller, id, output, &d->fd, &e);
    if (r < 0) {
        stream_give(a, &d->caller, false);
        free(d);
        return send_error(c, r, e.msg);
    }
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
                                             download_read, d, download_free);
    if (resp == NULL) {
        download_free(d);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/octet-stream");
    ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* GET /v1/jobs/{id}/log[?follow=1][&offset=N]: the log from byte N on.
 *
 * Followed, the response stays open while the job runs.  Caught up with
 * the log, the reader suspends its connection instead of waiting in it:
 * the API's few threads serve everyone, and one waiting reader would hold
 * one of them.  The watcher thread resumes a follower when its file has
 * grown, when its client has gone, and every FOLLOW_RECHECK_MS anyway so
 * that it asks the service again whether the job is over. */
#define FOLLOW_TICK_MS 100
#define FOLLOW_RECHECK_MS 1000

struct log_stream {
    struct log_stream *next, *prev; /* a->streams, when followed */
    struct api *a;
    struct MHD_Connection *conn;
    struct caller caller;
    char tenant[128];
    char id[JOB_ID_LEN + 1];
    int fd;          /* the log as service_log gave it last */
    bool done;       /* ... and it is the whole of it */
    bool follow;
    bool suspended;  /* by the reader, until the watcher resumes it */
    uint64_t offset;
    uint64_t sent;   /* bytes of the log given to libmicrohttpd */
    uint64_t suspended_ms;
    int conn_fd;     /* the client's socket, to notice it leaving */
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void log_stream_free(void *cls)
{
    struct log_stream *ls = cls;
    struct api *a = ls->a;

    if (ls->follow) {
        pthread_mutex_lock(&a->mu);
        if (ls->prev)
            ls->prev->next = ls->next;
        else
            a->streams = ls->next;
        if (ls->next)
            ls->next->prev = ls->prev;
        pthread_mutex_unlock(&a->mu);
        stream_give(a, &ls->caller, true);
    }
    if (ls->fd >= 0)
        close(ls->fd);
    free(ls);
}

/* Whether the client hung up (a follower may wait long between bytes). */
static bool client_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};

    return fd >= 0 && poll(&p, 1, 0) > 0 &&
           (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* The log again from the service: the runner's file grows in place while
 * the job runs; once the job is over, the stored log is the whole. */
static int log_stream_refresh(struct log_stream *ls)
{
    struct err e = {0};
    bool done = false;
    int fd, r;

    r = service_log(ls->a->svc, &ls->caller, ls->id, &fd, &done, &e);
    if (r < 0)
        return r;
    close(ls->fd);
    ls->fd = fd;
    ls->done = done;
    return 0;
}

static ssize_t log_stream_pread(struct log_stream *ls, char *buf, size_t max,
                                uint64_t pos)
{
    ssize_t n = pread(ls->fd, buf, max, (off_t)(ls->offset + pos));

    if (n > 0)
        ls->sent = pos + (uint64_t)n;
    return n;
}

static ssize_t log_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct log_stream *ls = cls;
    struct api *a = ls->a;
    ssize_t n = log_stream_pread(ls, buf, max, pos);
    bool stopping;

    if (n != 0)
        return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
    if (!ls->follow || ls->done)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (client_gone(ls->conn_fd) || log_stream_refresh(ls) < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    n = log_stream_pread(ls, buf, max, pos);
    if (n != 0)
        return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
    if (ls->done)
        return MHD_CONTENT_READER_END_OF_STREAM;
    /* Nothing new yet: the watcher resumes the connection, and
     * libmicrohttpd then asks again.  Its calls are made outside our lock
     * (it takes locks of its own, and may free a stream meanwhile).  A
     * stop that began meanwhile resumes nothing more, so the reader
     * resumes itself and ends on its next call. */
    pthread_mutex_lock(&a->mu);
    stopping = a->stopping;
    pthread_mutex_unlock(&a->mu);
    if (stopping)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    MHD_suspend_connection(ls->conn);
    pthread_mutex_lock(&a->mu);
    stopping = a->stopping;
    ls->suspended = !stopping;
    ls->suspended_ms = now_ms();
    pthread_mutex_unlock(&a->mu);
    if (stopping)
        MHD_resume_connection(ls->conn);
    return 0;
}

/* With a->mu held: whether a suspended follower has something to do. */
static bool follower_due(const struct log_stream *ls, uint64_t now)
{
    struct stat st;

    return now - ls->suspended_ms >= FOLLOW_RECHECK_MS ||
           (fstat(ls->fd, &st) == 0 &&
            (uint64_t)st.st_size > ls->offset + ls->sent) ||
           client_gone(ls->conn_fd);
}

static void *follow_watcher(void *arg)
{
    struct api *a = arg;
    struct MHD_Connection **due = NULL;
    size_t cap = 0;

    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        struct timespec ts;
        uint64_t now = now_ms();
        size_t n = 0;

        for (struct log_stream *ls = a->streams; ls; ls = ls->next) {
            if (!ls->suspended || !follower_due(ls, now))
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                struct MHD_Connection **m =
                    realloc(due, ncap * sizeof *due);
                if (m == NULL)
                    break; /* the rest on the next tick */
                due = m;
                cap = ncap;
            }
            ls->suspended = false;
            due[n++] = ls->conn;
        }
        /* Resumed outside the lock: libmicrohttpd takes its own, and a
         * connection stays ours until resumed (it cannot close while
         * suspended), so the pointers stay good. */
        pthread_mutex_unlock(&a->mu);
        for (size_t i = 0; i < n; i++)
            MHD_resume_connection(due[i]);
        pthread_mutex_lock(&a->mu);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += FOLLOW_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!a->stopping)
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    }
    pthread_mutex_unlock(&a->mu);
    free(due);
    return NULL;
}

static enum MHD_Result get_log(struct api *a, struct MHD_Connection *c,
                               struct req *rq, const char *id)
{
    const char *follow = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                     "follow");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct MHD_Response *resp;
    struct log_stream *ls;
    struct err e = {0};
    enum MHD_Result ret;
    bool bad = false;
    int64_t offset = query_time(c, "offset", 0, &bad);
    int r;

    if (bad || offset < 0)
        return send_error(c, -EINVAL, "offset is a byte count (0 or more)");
    if (follow != NULL && strcmp(follow, "0") != 0 && strcmp(follow, "1") != 0)
        return send_error(c, -EINVAL, "follow is 0 or 1");
    if ((ls = calloc(1, sizeof *ls)) == NULL)
        return send_error(c, -ENOMEM, "out of memory");
    ls->a = a;
    ls->conn = c;
    ls->caller.admin = rq->caller.admin;
    if (rq->caller.tenant != NULL) {
        snprintf(ls->tenant, sizeof ls->tenant, "%s", rq->caller.tenant);
        ls->caller.tenant = ls->tenant;
    }
    snprintf(ls->id, sizeof ls->id, "%s", id);
    ls->offset = (uint64_t)offset;
    ls->conn_fd = ci ? ci->connect_fd : -1;
    r = service_log(a->svc, &ls->caller, id, &ls->fd, &ls->done, &e);
    if (r < 0) {
        free(ls);
        return send_error(c, r, e.msg);
    }
    /* A finished job's log is sent whole; only a live one is followed
     * (and counted against the caps). */
    if (follow != NULL && strcmp(follow, "1") == 0 && !ls->done) {
        if ((r = stream_take(a, &ls->caller, true, &e)) < 0) {
            close(ls->fd);
            free(ls);
            return send_error(c, r, e.msg);
        }
        ls->follow = true;
        pthread_mutex_lock(&a->mu);
        ls->next = a->streams;
        if (a->streams)
            a->streams->prev = ls;
        a->streams = ls;
        pthread_mutex_unlock(&a->mu);
    }
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
                                             log_stream_read, ls,
                                             log_stream_free);
    if (resp == NULL) {
        log_stream_free(ls);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; charset=utf-8");
    MHD_add_response_header(resp, "X-Surplus-Job-Done",
                            ls->done ? "1" : "0");
    ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result route(struct api *a, struct MHD_Connection *c,
                             struct req *rq, const char *url,
                             const char *method)
{
    struct err e = {0};
    json_t *j = NULL;
    char id[JOB_ID_LEN + 1];
    const char *rest;
    bool get = strcmp(method, "GET") == 0;
    int r;

    if (strcmp(url, "/v1/jobs") == 0 && get) {
        char *text = NULL;
        size_t len = 0;

        struct jobs_args ja = {.q = {.since_us = INT64_MIN}};

        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, on_jobs_arg, &ja);
        if (ja.bad)
            return send_error(c, ja.bad, ja.why);
        r = service_jobs(a->svc, &rq->caller, &ja.q, &text, &len, &e);
        if (r < 0)
            return send_error(c, r, e.msg[0] ? e.msg : strerror(-r));
        return send_owned(c, MHD_HTTP_OK, "application/json", text, len);
    }
    if (strcmp(url, "/v1/devices") == 0 && get) {
        r = service_devices(a->svc, &rq->caller, &j, &e);
        return send_result(c, r, MHD_HTTP_OK, j, &e);
    }
    if (strcmp(url, "/v1/usage") == 0 && get) {
        bool bad = false;
        int64_t since = query_time(c, "since", INT64_MIN, &bad);
        int64_t until = query_time(c, "until", INT64_MAX, &bad);

        if (bad)
            return send_error(c, -EINVAL, "since and until are "
                                          "microseconds since the epoch");
        r = service_usage(a->svc, &rq->caller, since, until, &j, &e);
        return send_result(c, r, MHD_HTTP_OK, j, &e);
    }
    if (strcmp(url, "/v1/quota") == 0 && get) {
        r = service_quota(a->svc, &rq->caller, &j, &e);
        return send_result(c, r, MHD_HTTP_OK, j, &e);
    }
    if (strcmp(url, "/metrics") == 0 && get) {
        char *m;
        enum MHD_Result ret;

        /* The node's figures are the operator's: other tenants' jobs,
         * devices and storage show in them. */
        if (!rq->caller.admin && !rq->caller.metrics)
            return send_error(c, -EPERM, "GET /metrics is for the operator: "
                                         "root on the Unix socket, or the "
                                         "token of api.metrics_token_sha256");
        m = service_metrics(a->svc, &(struct caller){.admin = true});
        if (m == NULL)
            return send_error(c, -ENOMEM, "out of memory");
        ret = send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4", m,
                        strlen(m));
        free(m);
        return ret;
    }
    if (job_path(url, id, &rest)) {
        if (*rest == '\0' && get) {
            r = service_job(a->svc, &rq->caller, id, &j, &e);
            return send_result(c, r, MHD_HTTP_OK, j, &e);
        }
        if (*rest == '\0' && strcmp(method, "DELETE") == 0) {
            r = service_cancel(a->svc, &rq->caller, id, &j, &e);
            return send_result(c, r, MHD_HTTP_OK, j, &e);
        }
        if (strcmp(rest, "/log") == 0 && get)
            return get_log(a, c, rq, id);
        if (strncmp(rest, "/outputs/", 9) == 0 && rest[9] && get)
            return get_output(a, c, rq, id, rest + 9);
        if (strcmp(rest, "/outputs") == 0 && get) {
            r = service_outputs(a->svc, &rq->caller, id, &j, &e);
            return send_result(c, r, MHD_HTTP_OK, j, &e);
        }
    }
    /* A known path with another method is 405; anything else 404. */
    if (strcmp(url, "/v1/jobs") == 0 || strcmp(url, "/v1/devices") == 0 ||
        strcmp(url, "/v1/usage") == 0 || strcmp(url, "/v1/quota") == 0 ||
        strcmp(url, "/metrics") == 0 ||
        (job_path(url, id, &rest) &&
         (*rest == '\0' || strcmp(rest, "/log") == 0 ||
          strcmp(rest, "/outputs") == 0)))
        return send_error(c, -ENOSYS, "method not allowed");
    return send_error(c, -ENOENT, "no such route");
}

static void bundle_too_big(struct api *a, char *msg, size_t len)
{
    snprintf(msg, len, "the bundle exceeds limits.max_bundle_bytes (%llu "
                       "bytes)",
             (unsigned long long)service_max_bundle_bytes(a->svc));
}

/* What an upload over the limit may still send, read and dropped, so that
 * its 413 reaches the client (below). */
#define UPLOAD_DISCARD_MAX (64ULL << 20)

#define KEY_HEADER "Idempotency-Key"

static enum MHD_Result count_key(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value)
{
    unsigned *n = cls;

    (void)kind;
    (void)value;
    if (strcasecmp(key, KEY_HEADER) == 0)
        (*n)++;
    return MHD_YES;
}

/* The request's Idempotency-Key into rq, if it has one: 0, or -EINVAL
 * with what is wrong with it in msg. */
static int read_key(struct MHD_Connection *c, struct req *rq, char *msg,
                    size_t len)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                KEY_HEADER);
    static const char rule[] = "1 to 255 printable ASCII characters";
    unsigned n = 0;
    size_t i;

    if (v == NULL)
        return 0;
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_key, &n);
    if (n > 1) {
        snprintf(msg, len, KEY_HEADER " is given %u times: give it once", n);
        return -EINVAL;
    }
    for (i = 0; v[i] && i <= JOBSTORE_KEY_MAX; i++)
        if (v[i] < 0x20 || v[i] > 0x7e) {
            snprintf(msg, len, KEY_HEADER " has byte 0x%02x at position "
                     "%zu: it must be %s", (unsigned char)v[i], i + 1,
                     rule);
            return -EINVAL;
        }
    if (i == 0 || i > JOBSTORE_KEY_MAX) {
        snprintf(msg, len, KEY_HEADER " is %s: it must be %s",
                 i == 0 ? "empty" : "longer than 255 bytes", rule);
        return -EINVAL;
    }
    memcpy(rq->key, v, i + 1);
    rq->keyed = true;
    sha256_init(&rq->sha);
    return 0;
}

/* POST /v1/jobs, first call (headers only): what can be refused before
 * the body is read is refused now.  libmicrohttpd takes a response only
 * here or after the whole body.  A bad or busy Idempotency-Key, or a
 * Content-Length over the limit, is answered now when the client waits
 * for "100 Continue" (it then sends none of the body) or (the limit) when
 * the body is huge; otherwise the body is read and dropped first:
 * answering while a client is still sending makes the connection close
 * under it, and the client sees a broken pipe instead of the 400, 409
 * or 413. */
static enum MHD_Result upload_begin(struct api *a, struct MHD_Connection *c,
                                    struct req *rq)
{
    const char *cl = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *expect = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    bool waits = expect != NULL && strcasecmp(expect, "100-continue") == 0;
    char msg[160];
    int r;

    if (service_draining(a->svc)) {
        rq->answered = true;
        return send_error(c, -ESHUTDOWN, "the node is draining");
    }
    if ((r = read_key(c, rq, msg, sizeof msg)) == 0 && rq->keyed) {
        struct err e = {0};

        if ((r = service_key_claim(a->svc, &rq->caller, rq->key, &e)) == 0)
            rq->claimed = true;
        else
            snprintf(msg, sizeof msg, "%.159s", e.msg);
    }
    if (r < 0) {
        if (waits) {
            rq->answered = true;
            return send_error(c, r, msg);
        }
        rq->refused = r;
        snprintf(rq->refused_msg, sizeof rq->refused_msg, "%s", msg);
        return MHD_YES;
    }
    if (cl != NULL &&
        strtoull(cl, NULL, 10) > service_max_bundle_bytes(a->svc)) {
        if (waits ||
            strtoull(cl, NULL, 10) - service_max_bundle_bytes(a->svc) >
                UPLOAD_DISCARD_MAX) {
            rq->answered = true;
            bundle_too_big(a, msg, sizeof msg);
            return send_error(c, -EFBIG, msg);
        }
        rq->over = true;
        return MHD_YES;
    }
    /* A bundle that cannot fit in the tenant's storage_quota is not
     * spooled at all, answered as early as an over-limit one. */
    if (cl != NULL) {
        uint64_t len = strtoull(cl, NULL, 10);
        json_t *detail = NULL;
        struct err e = {0};

        if (service_storage_check(a->svc, &rq->caller, len, &detail, &e) ==
            -ENOSPC) {
            if (waits || len > UPLOAD_DISCARD_MAX) {
                rq->answered = true;
                return send_error_detail(c, -ENOSPC, e.msg, detail);
            }
            rq->no_room = true;
            snprintf(rq->no_room_msg, sizeof rq->no_room_msg, "%s", e.msg);
            rq->no_room_detail = detail;
            return MHD_YES;
        }
        json_decref(detail);
    }
    rq->fd = open(service_spool_dir(a->svc), O_TMPFILE | O_RDWR | O_CLOEXEC,
                  0600);
    if (rq->fd < 0) {
        rq->answered = true;
        return send_error(c, -EIO, "cannot spool the upload");
    }
    return MHD_YES;
}

/* POST /v1/jobs, the body: it streams into an unnamed file in the spool
 * directory.  Past limits.max_bundle_bytes (a chunked body, or one longer
 * than its Content-Length said) or after a failed write, the rest is read
 * and dropped, and the error is the answer once the body has ended. */
static enum MHD_Result upload(struct api *a, struct MHD_Connection *c,
                              struct req *rq, const char *data, size_t *size)
{
    struct submit_opts o = {0};
    struct err e = {0};
    json_t *j = NULL;
    bool replayed = false;
    char msg[160];
    int r;

    if (*size > 0) {
        /* Dropped bytes are counted too: a chunked body that goes on
         * and on is cut off. */
        if (rq->fd < 0 && (rq->bytes += *size) >
                              service_max_bundle_bytes(a->svc) +
                                  UPLOAD_DISCARD_MAX)
            return MHD_NO;
        if (rq->fd >= 0) {
            rq->bytes += *size;
            if (rq->bytes > service_max_bundle_bytes(a->svc))
                rq->over = true;
            if (rq->keyed && !rq->over)
                sha256_update(&rq->sha, data, *size);
            for (size_t off = 0; !rq->over && off < *size;) {
                ssize_t n = write(rq->fd, data + off, *size - off);
                if (n < 0) {
                    rq->spool_errno = errno;
                    break;
                }
                off += (size_t)n;
            }
            if (rq->over || rq->spool_errno) {
                close(rq->fd);
                rq->fd = -1;
            }
        }
        *size = 0;
        return MHD_YES;
    }
    rq->answered = true;
    if (rq->refused)
        return send_error(c, rq->refused, rq->refused_msg);
    if (rq->over) {
        bundle_too_big(a, msg, sizeof msg);
        return send_error(c, -EFBIG, msg);
    }
    if (rq->no_room) {
        json_t *detail = rq->no_room_detail;

        rq->no_room_detail = NULL;
        return send_error_detail(c, -ENOSPC, rq->no_room_msg, detail);
    }
    if (rq->spool_errno) {
        snprintf(msg, sizeof msg, "cannot spool the upload in %s: %s",
                 service_spool_dir(a->svc), strerror(rq->spool_errno));
        return send_error(c, -EIO, msg);
    }
    if (rq->keyed) {
        o.idempotency_key = rq->key;
        sha256_final_hex(&rq->sha, o.request_sha256);
    }
    r = service_submit(a->svc, &rq->caller, rq->fd, rq->bytes, &o, &j,
                       &replayed, &e);
    rq->fd = -1; /* the service took it over */
    /* The key is in the store now, or the request failed: either way the
     * next request with it may go on. */
    if (rq->claimed) {
        service_key_release(a->svc, &rq->caller, rq->key);
        rq->claimed = false;
    }
    if (r < 0)
        return send_error_detail(c, r, e.msg[0] ? e.msg : strerror(-r), j);
    return send_created(c, j, replayed);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
                               const char *url, const char *method,
                               const char *version, const char *data,
                               size_t *size, void **state)
{
    const struct endpoint *ep = cls;
    struct api *a = ep->a;
    bool unix_socket = ep->unix_socket;
    struct req *rq = *state;
    struct err e = {0};

    (void)version;
    if (rq == NULL) {
        if ((rq = calloc(1, sizeof *rq)) == NULL)
            return MHD_NO;
        rq->fd = -1;
        rq->unix_socket = unix_socket;
        *state = rq;
        if (strcmp(url, "/healthz") == 0) {
            rq->answered = true;
            return send_json(c, service_draining(a->svc) ? 503 : 200,
                             json_pack("{s:s}", "status",
                                       service_draining(a->svc) ? "draining"
                                                                : "ok"));
        }
        if (authenticate(a, c, rq, &e) < 0) {
            rq->answered = true;
            return send_error(c, e.code, e.msg);
        }
        rq->authed = true;
        /* The metrics token reads /metrics and nothing else: without a
         * tenant it must never reach a route that would take it for the
         * admin. */
        if (rq->caller.metrics &&
            (strcmp(url, "/metrics") != 0 || strcmp(method, "GET") != 0)) {
            rq->answered = true;
            return send_error(c, -EPERM, "the metrics token may only read "
                                         "GET /metrics");
        }
        if (strcmp(url, "/v1/jobs") == 0 && strcmp(method, "POST") == 0)
            return upload_begin(a, c, rq); /* the body follows */
    }
    if (rq->answered) {
        *size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/v1/jobs") == 0 && strcmp(method, "POST") == 0)
        return upload(a, c, rq, data, size);
    rq->answered = true;
    return route(a, c, rq, url, method);
}

static void request_done(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode toe)
{
    struct api *a = cls;
    struct req *rq = *state;

    (void)c;
    (void)toe;
    if (rq == NULL)
        return;
    if (rq->fd >= 0)
        close(rq->fd);
    json_decref(rq->no_room_detail);
    /* Answered before its end (too large, say), or cut off. */
    if (rq->claimed)
        service_key_release(a->svc, &rq->caller, rq->key);
    free(rq);
    *state = NULL;
}

/* ---- connections ------------------------------------------------------ */

/* Unix socket connections, counted per uid as they open and close: an
 * unprivileged user who opens more than api.max_connections_per_client is
 * told so and cut off at once, so that a flood of idle connections can
 * never fill the listener.  Root is not counted. */
static const char too_many_fmt[] =
    "HTTP/1.1 429 Too Many Requests\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: %d\r\n"
    "Connection: close\r\n\r\n%s";

static void refuse_connection(int fd, uid_t uid, unsigned most)
{
    char body[160], msg[320];
    int len, n;

    len = snprintf(body, sizeof body, "{\"error\":\"uid %u has %u connections "
                                      "open, its most "
                                      "(api.max_connections_per_client)\","
                                      "\"status\":429}",
                   (unsigned)uid, most);
    n = snprintf(msg, sizeof msg, too_many_fmt, len, body);
    /* Best effort: the socket is new and its buffer empty. */
    if (send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        (void)0;
    shutdown(fd, SHUT_RDWR);
}

static void connection_notify(void *cls, struct MHD_Connection *c,
                              void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    struct api *a = cls;
    const union MHD_ConnectionInfo *ci;
    struct ucred cred;
    socklen_t len = sizeof cred;
    struct uid_count *u = NULL;
    bool over = false;

    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        uid_t uid;

        if (*socket_context == NULL)
            return;
        uid = (uid_t)((uintptr_t)*socket_context - 1);
        pthread_mutex_lock(&a->mu);
        for (size_t i = 0; i < a->n_uids; i++)
            if (a->uids[i].uid == uid && a->uids[i].n > 0)
                a->uids[i].n--;
        pthread_mutex_unlock(&a->mu);
        *socket_context = NULL;
        return;
    }
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED,
                                 &cred, &len) < 0 || cred.uid == 0)
        return;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->n_uids && u == NULL; i++)
        if (a->uids[i].uid == cred.uid)
            u = &a->uids[i];
    for (size_t i = 0; i < a->n_uids && u == NULL; i++)
        if (a->uids[i].n == 0) {
            u = &a->uids[i];
            u->uid = cred.uid;
        }
    if (u == NULL) {
        struct uid_count *m = realloc(a->uids, (a->n_uids + 1) * sizeof *m);

        if (m != NULL) {
            a->uids = m;
            u = &a->uids[a->n_uids++];
            *u = (struct uid_count){cred.uid, 0};
        }
    }
    over = u == NULL || u->n >= a->per_client;
    if (!over) {
        u->n++;
        *socket_context = (void *)((uintptr_t)cred.uid + 1);
    }
    pthread_mutex_unlock(&a->mu);
    if (over)
        refuse_connection(ci->connect_fd, cred.uid, a->per_client);
}

/* ---- start and stop ----------------------------------------------------- */

/* The whole of a PEM file named by configuration key `key`. */
static char *slurp(const char *key, const char *path, struct err *e)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t len = 0;

    if (f == NULL) {
        err_set(e, -errno, "%s '%s': %s", key, path, strerror(errno));
        return NULL;
    }
    errno = 0;
    if (getdelim(&buf, &len, '\0', f) < 0) {
        err_set(e, -EINVAL, "%s '%s': %s", key, path,
                errno ? strerror(errno) : "empty file");
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* The checks that can name the file at fault; whether the key belongs to
 * the certificate only the TLS library can say (tcp_start). */
static int tls_load(struct api *a, const struct config *cf, struct err *e)
{
    struct stat st;

    if ((a->tls_cert = slurp("api.tls_cert", cf->api.tls_cert, e)) == NULL ||
        (a->tls_key = slurp("api.tls_key", cf->api.tls_key, e)) == NULL)
        return e->code;
    if (strstr(a->tls_cert, "-----BEGIN CERTIFICATE-----") == NULL)
        return err_set(e, -EINVAL, "api.tls_cert '%s': no PEM certificate "
                                   "in it (-----BEGIN CERTIFICATE-----)",
                       cf->api.tls_cert);
    if (strstr(a->tls_key, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
        strstr(a->tls_key, "Proc-Type: 4,ENCRYPTED"))
        return err_set(e, -EINVAL, "api.tls_key '%s': the key is encrypted; "
                                   "surplusd needs it unencrypted, protected "
                                   "by the file's owner and mode",
                       cf->api.tls_key);
    if (strstr(a->tls_key, "-----BEGIN ") == NULL ||
        strstr(a->tls_key, "PRIVATE KEY-----") == NULL)
        return err_set(e, -EINVAL, "api.tls_key '%s': no PEM private key in "
                                   "it (-----BEGIN PRIVATE KEY-----)",
                       cf->api.tls_key);
    if (stat(cf->api.tls_key, &st) == 0 && (st.st_mode & 0077))
        log_msg(SURPLUS_LOG_WARNING, "api.tls_key '%s' can be read by "
                                     "others (mode %04o); chmod 600 it",
                cf->api.tls_key, (unsigned)(st.st_mode & 07777));
    return 0;
}

static int unix_listen(struct api *a, const char *path, struct err *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char dir[sizeof sa.sun_path];
    char *slash;
    int fd, r;

    if (strlen(path) >= sizeof sa.sun_path)
        return err_set(e, -ENAMETOOLONG,
                       "api.socket '%s' is %zu bytes; a Unix socket path "
                       "must be shorter than %zu (set api.socket)",
                       path, strlen(path), sizeof sa.sun_path);
    snprintf(dir, sizeof dir, "%s", path);
    if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
        *slash = '\0';
        if ((r = node_mkdirs(dir, 0755)) < 0)
            return err_set(e, r, "%s: %s", dir, strerror(-r));
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return err_set(e, -errno, "socket: %s", strerror(errno));
    /* A socket left by a daemon that died is replaced; a live one is
     * not (connect succeeds). */
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        close(fd);
        return err_set(e, -EADDRINUSE, "%s: another surplusd is listening",
                       path);
    }
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        chmod(path, 0666) < 0 || listen(fd, 128) < 0) {
        r = -errno;
        close(fd);
        return err_set(e, r, "%s: %s", path, strerror(-r));
    }
    a->unix_fd = fd;
    a->socket_path = strdup(path);
    return 0;
}

/* Binds api.listen ("HOST:PORT", "[V6ADDR]:PORT") to the address it
 * names, and only there. */
static int tcp_listen(struct api *a, const char *listen_on, struct err *e)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    const char *colon = strrchr(listen_on, ':');
    char host[256];
    int r = -EINVAL, fd = -1, one = 1;
    size_t n = colon ? (size_t)(colon - listen_on) : 0;

    if (colon == NULL || n == 0 || n >= sizeof host || colon[1] == '\0')
        return err_set(e, -EINVAL, "api.listen '%s': not HOST:PORT",
                       listen_on);
    memcpy(host, listen_on, n);
    host[n] = '\0';
    if (host[0] == '[' && host[n - 1] == ']') {
        memmove(host, host + 1, n - 2);
        host[n - 2] = '\0';
    }
    if ((r = getaddrinfo(host, colon + 1, &hints, &res)) != 0)
        return err_set(e, -EINVAL, "api.listen '%s': %s", listen_on,
                       r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
    r = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            r = -errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
            listen(fd, 128) < 0) {
            r = -errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return err_set(e, r, "api.listen '%s': %s", listen_on, strerror(-r));
    a->tcp_fd = fd;
    return 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    log_vmsg(SURPLUS_LOG_WARNING, "http: ", fmt, ap);
}

static void mhd_log_tls(void *cls, const char *fmt, va_list ap)
{
    struct api *a = cls;
    bool kept = false;

    pthread_mutex_lock(&a->tls_mu);
    if (a->tls_starting) {
        kept = true;
        if (a->tls_msg[0] == '\0') {
            vsnprintf(a->tls_msg, sizeof a->tls_msg, fmt, ap);
            a->tls_msg[strcspn(a->tls_msg, "\n")] = '\0';
        }
    }
    pthread_mutex_unlock(&a->tls_mu);
    if (!kept)
        log_vmsg(SURPLUS_LOG_WARNING, "https: ", fmt, ap);
}

/* HTTPS on api.listen: no plaintext TCP, since requests there carry bearer
 * tokens (config.c refuses api.listen without tls_cert and tls_key). */
static int tcp_start(struct api *a, const struct config *cf, unsigned flags,
                     unsigned idle_s, unsigned limit, struct err *e)
{
    int r;

    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return err_set(e, -ENOTSUP, "api.listen '%s': this libmicrohttpd "
                                    "was built without TLS",
                       cf->api.listen);
    if ((r = tls_load(a, cf, e)) < 0 ||
        (r = tcp_listen(a, cf->api.listen, e)) < 0)
        return r;
    pthread_mutex_lock(&a->tls_mu);
    a->tls_starting = true;
    pthread_mutex_unlock(&a->tls_mu);
    a->tcp_d = MHD_start_daemon(
        flags | MHD_USE_TLS, 0, NULL, NULL, handler, &a->on_tcp,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log_tls, a, MHD_OPTION_LISTEN_SOCKET,
        a->tcp_fd, MHD_OPTION_HTTPS_MEM_CERT, a->tls_cert,
        MHD_OPTION_HTTPS_MEM_KEY, a->tls_key, MHD_OPTION_THREAD_POOL_SIZE,
        API_THREADS, MHD_OPTION_NOTIFY_COMPLETED, request_done, a,
        MHD_OPTION_CONNECTION_TIMEOUT, idle_s, MHD_OPTION_CONNECTION_LIMIT,
        limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT, a->per_client,
        MHD_OPTION_END);
    pthread_mutex_lock(&a->tls_mu);
    a->tls_starting = false;
    pthread_mutex_unlock(&a->tls_mu);
    if (a->tcp_d == NULL)
        return err_set(e, -EINVAL, "api.tls_key '%s' with api.tls_cert "
                                   "'%s': %s",
                       cf->api.tls_key, cf->api.tls_cert,
                       a->tls_msg[0] ? a->tls_msg
                                     : "refused by the TLS library");
    return 0;
}

unsigned api_connection_budget(const struct config *cf)
{
    struct rlimit rl;
    uint64_t most = 1024;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        most = rl.rlim_cur;
    else if (rl.rlim_cur == RLIM_INFINITY)
        most = 1u << 20;
    /* A connection may hold a second descriptor (a log, an output), so
     * connections at most a quarter of the limit leave half or more of
     * the descriptors to the runner, the plugins and the job store. */
    most /= 4;
    if (most < 8)
        most = 8;
    if (cf->api.max_connections != 0 && cf->api.max_connections < most)
        most = cf->api.max_connections;
    return (unsigned)most;
}

int api_start(struct service *s, const struct config *cf, struct api **ret,
              struct err *e)
{
    struct api *a = calloc(1, sizeof *a);
    /* ITC: the listening socket can be given up while the threads run
     * (api_quiesce, when a drain begins). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    bool tcp = cf->api.listen && cf->api.listen[0];
    unsigned idle_s = (unsigned)((cf->api.idle_timeout_ms + 999) / 1000);
    unsigned total = api_connection_budget(cf), unix_limit;
    int r;

    if (a == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    a->svc = s;
    a->unix_fd = -1;
    a->tcp_fd = -1;
    pthread_mutex_init(&a->tls_mu, NULL);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->per_client = cf->api.max_connections_per_client;
    a->max_followers = cf->api.max_followers_per_tenant;
    a->max_downloads = cf->api.max_downloads_per_tenant;
    /* Followers may take half of the connections, never all of them. */
    a->followers_total = total / 2;
    unix_limit = tcp ? total / 2 : total;
    a->on_unix = (struct endpoint){a, true};
    a->on_tcp = (struct endpoint){a, false};
    if ((r = unix_listen(a, cf->api.socket, e)) < 0)
        goto fail;
    a->unix_d = MHD_start_daemon(
        flags, 0, NULL, NULL, handler, &a->on_unix,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET,
        a->unix_fd, MHD_OPTION_THREAD_POOL_SIZE, API_THREADS,
        MHD_OPTION_NOTIFY_COMPLETED, request_done, a,
        MHD_OPTION_NOTIFY_CONNECTION, connection_notify, a,
        MHD_OPTION_CONNECTION_TIMEOUT, idle_s, MHD_OPTION_CONNECTION_LIMIT,
        unix_limit, MHD_OPTION_END);
    if (a->unix_d == NULL) {
        r = err_set(e, -EIO, "cannot serve HTTP on %s", cf->api.socket);
        goto fail;
    }
    if (tcp && (r = tcp_start(a, cf, flags, idle_s, total - unix_limit, e)) <
                   0)
        goto fail;
    if ((r = -pthread_create(&a->watcher, NULL, follow_watcher, a)) < 0) {
        err_set(e, r, "cannot start the log follower thread: %s",
                strerror(-r));
        goto fail;
    }
    a->watching = true;
    *ret = a;
    return 0;
fail:
    api_stop(a);
    return r;
}

void api_quiesce(struct api *a)
{
    if (a->unix_d)
        MHD_quiesce_daemon(a->unix_d);
    if (a->tcp_d)
        MHD_quiesce_daemon(a->tcp_d);
}

/* Followers suspended by the reader must be resumed before the daemons
 * stop (libmicrohttpd requires it); they then end at once. */
static void followers_stop(struct api *a)
{
    struct MHD_Connection **due = NULL;
    size_t n = 0, cap = 0;

    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (a->watching)
        pthread_join(a->watcher, NULL);
    a->watching = false;
    pthread_mutex_lock(&a->mu);
    for (struct log_stream *ls = a->streams; ls; ls = ls->next)
        if (ls->suspended)
            cap++;
    if (cap > 0 && (due = calloc(cap, sizeof *due)) != NULL)
        for (struct log_stream *ls = a->streams; ls; ls = ls->next)
            if (ls->suspended) {
                ls->suspended = false;
                due[n++] = ls->conn;
            }
    pthread_mutex_unlock(&a->mu);
    for (size_t i = 0; i < n; i++)
        MHD_resume_connection(due[i]);
    free(due);
}

void api_stop(struct api *a)
{
    if (a == NULL)
        return;
    followers_stop(a);
    if (a->unix_d)
        MHD_stop_daemon(a->unix_d);
    if (a->tcp_d)
        MHD_stop_daemon(a->tcp_d);
    if (a->unix_fd >= 0)
        close(a->unix_fd);
    if (a->tcp_fd >= 0)
        close(a->tcp_fd);
    if (a->socket_path) {
        unlink(a->socket_path);
        free(a->socket_path);
    }
    free(a->tls_cert);
    free(a->tls_key);
    while (a->tallies) {
        struct tally *t = a->tallies;

        a->tallies = t->next;
        free(t);
    }
    free(a->uids);
    pthread_mutex_destroy(&a->tls_mu);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
