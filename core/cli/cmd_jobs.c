/*
 * The verbs that talk to surplusd:
 *   surplus submit BUNDLE [--wait] [--idempotency-key KEY]
 *   surplus list                     surplus status ID
 *   surplus logs ID [-f]             surplus cancel ID  surplus devices
 *   surplus fetch ID [-o DIR]        surplus quota
 * Tables on stdout (--json for the API's JSON as is), errors on stderr,
 * exit codes as in surplus(1).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <surplus/storage.h>

#include "client.h"
#include "fsafe.h"
#include "jobstore.h"
#include "node.h"
#include "units.h"

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

/* One request whose answer must be `want` with a JSON body: 0 and *ret,
 * or the exit code with the reason printed. */
static int request_json(struct cli *cli, const char *method, const char *path,
                        long want, json_t **ret)
{
    struct reply rep;
    int r = client_request(cli, method, path, -1, -1, &rep);

    if (r != 0)
        return r;
    if (rep.status != want) {
        r = client_fail(&rep);
        reply_free(&rep);
        return r;
    }
    *ret = client_json(&rep);
    reply_free(&rep);
    return *ret ? 0 : EXIT_INTERNAL;
}

/* GET path, then print JSON or hand it to `table`. */
static int get_and_show(struct cli *cli, const char *path,
                        void (*table)(json_t *))
{
    json_t *j;
    int r = request_json(cli, "GET", path, 200, &j);

    if (r != 0)
        return r;
    if (cli->json) {
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        table(j);
    }
    json_decref(j);
    return 0;
}

static bool is_hex(const char *s, size_t n)
{
    return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

int cli_job_id(struct cli *cli, const char *arg, char ret[17])
{
    size_t n = strlen(arg), i, found = 0;
    json_t *a, *j;
    char esc[64];
    int r;

    if (is_hex(arg, 16)) {
        memcpy(ret, arg, 17);
        return 0;
    }
    if (n == 0 || n > 16 || !is_hex(arg, n)) {
        cli_error("'%s' is not a job id (16 hex digits, or the first of "
                  "them)", err_escape(arg, esc, sizeof esc));
        return EXIT_USAGE;
    }
    /* A prefix: the one job of the caller's whose id starts with it. */
    if ((r = request_json(cli, "GET", "/v1/jobs", 200, &a)) != 0)
        return r;
    json_array_foreach(a, i, j) {
        if (strncmp(str(j, "id"), arg, n) == 0 && found++ == 0)
            snprintf(ret, 17, "%s", str(j, "id"));
    }
    if (found == 1) {
        json_decref(a);
        return 0;
    }
    if (found == 0) {
        cli_error("no job of yours has an id starting with '%s'", arg);
    } else {
        size_t shown = 0;

        fprintf(stderr, "surplus: job id prefix '%s' is ambiguous: %zu "
                        "jobs match:", arg, found);
        json_array_foreach(a, i, j) {
            if (strncmp(str(j, "id"), arg, n) != 0)
                continue;
            if (shown++ == 10) {
                fprintf(stderr, " ...");
                break;
            }
            fprintf(stderr, " %s", str(j, "id"));
        }
        fputc('\n', stderr);
    }
    json_decref(a);
    return EXIT_USAGE;
}

static int term_width(void)
{
    int w = cli_term_width();

    return w > 20 ? w : 100;
}

/* Column widths of `surplus list`: wide (a 90-column terminal or more,
 * or not a terminal) and compact (fits 80: shorter tenant and name, and
 * the submission time without its year). */
struct list_layout {
    int tenantw, namew, whenw;
};

static struct list_layout list_layout(void)
{
    int w = term_width();

    if (w >= 90)
        return (struct list_layout){10, 20, 19};
    return (struct list_layout){8, 10, 14};
}

static void job_line(json_t *j, const struct list_layout *l)
{
    json_t *ex = json_object_get(j, "exit_status");
    char exit_s[16] = "-", when[32];
    const char *t = str(j, "submitted_at");

    if (json_is_integer(ex))
        snprintf(exit_s, sizeof exit_s, "%d", (int)json_integer_value(ex));
    if (l->whenw == 19 || strlen(t) < 19)
        snprintf(when, sizeof when, "%.19s", t);
    else /* "2026-11-23T16:02:48" -> "11-23 16:02:48" */
        snprintf(when, sizeof when, "%.5s %.8s", t + 5, t + 11);
    printf("%-16s  %-*.*s  %-*.*s  %-10s  %4s  %-*s  %zu\n", str(j, "id"),
           l->tenantw, l->tenantw, str(j, "tenant"), l->namew, l->namew,
           str(j, "name"), str(j, "state"), exit_s, l->whenw, when,
           json_array_size(json_object_get(j, "devices")));
}

static void jobs_table(json_t *a)
{
    struct list_layout l = list_layout();
    size_t i;
    json_t *j;

    printf("%-16s  %-*s  %-*s  %-10s  %4s  %-*s  %s\n", "JOB", l.tenantw,
           "TENANT", l.namew, "NAME", "STATE", "EXIT", l.whenw,
           l.whenw == 19 ? "SUBMITTED (UTC)" : "SUBMITTED", "GPUS");
    json_array_foreach(a, i, j) job_line(j, &l);
}

/* A size member of `o`, or "-" when it is null (no quota). */
static const char *size_of(json_t *o, const char *k, char *buf, size_t len)
{
    json_t *v = json_object_get(o, k);

    if (!json_is_integer(v))
        return "-";
    return units_format_size((uint64_t)json_integer_value(v), buf, len);
}

static void job_detail(json_t *j)
{
    json_t *ex = json_object_get(j, "exit_status"), *d;
    size_t i;

    printf("job:        %s\nname:       %s\ntenant:     %s\nstate:      %s\n",
           str(j, "id"), str(j, "name"), str(j, "tenant"), str(j, "state"));
    if (json_is_integer(ex))
        printf("exit:       %d\n", (int)json_integer_value(ex));
    printf("submitted:  %s\nstarted:    %s\nended:      %s\n",
           str(j, "submitted_at"), str(j, "started_at"), str(j, "ended_at"));
    json_array_foreach(json_object_get(j, "devices"), i, d)
        printf("device:     %s (%s, %s)\n", str(d, "id"), str(d, "model"),
               str(d, "plugin"));
    /* A queued job says why it waits, with squeue's kind of code. */
    if (json_is_string(json_object_get(j, "reason")) &&
        strcmp(str(j, "state"), "queued") == 0 &&
        json_is_string(json_object_get(j, "reason_code")))
        printf("reason:     %s [%s]\n", str(j, "reason"),
               str(j, "reason_code"));
    else if (json_is_string(json_object_get(j, "reason")))
        printf("reason:     %s\n", str(j, "reason"));
    if (json_is_integer(json_object_get(j, "stored_bytes"))) {
        char size[32];

        printf("stored:     %s (bundle, log and outputs in storage)\n",
               size_of(j, "stored_bytes", size, sizeof size));
    }
    if (json_is_integer(json_object_get(j, "attempts")))
        printf("attempts:   %d%s\n",
               (int)json_integer_value(json_object_get(j, "attempts")),
               json_is_true(json_object_get(j, "requeue"))
                   ? " (requeued if the node restarts)"
                   : "");
    json_array_foreach(json_object_get(j, "history"), i, d) {
        printf("%s%.19sZ  %s", i ? "            " : "history:    ",
               str(d, "at"), str(d, "state"));
        if (json_is_string(json_object_get(d, "reason")))
            printf(" (%s)", str(d, "reason"));
        putchar('\n');
    }
}

static void devices_table(json_t *a)
{
    size_t i;
    json_t *d;

    printf("%-24s  %-18s  %-20s  %10s  %-9s  %s\n", "DEVICE", "PLUGIN",
           "MODEL", "MEMORY", "STATE", "JOB / REASON");
    json_array_foreach(a, i, d) {
        double gib = (double)json_integer_value(json_object_get(d,
                                                                "memory_bytes")) /
                     (1024.0 * 1024 * 1024);
        const char *extra = json_is_string(json_object_get(d, "job"))
                                ? str(d, "job")
                                : json_is_string(json_object_get(d, "reason"))
                                      ? str(d, "reason")
                                      : "";
        printf("%-24.24s  %-18.18s  %-20.20s  %7.1f GiB  %-9s  %s\n",
               str(d, "id"), str(d, "plugin"), str(d, "model"), gib,
               str(d, "state"), extra);
    }
}

static void quota_table(json_t *a)
{
    size_t i;
    json_t *t;

    printf("%-16s  %12s  %12s  %12s  %6s  %10s\n", "TENANT", "STORAGE",
           "QUOTA", "AVAILABLE", "QUEUED", "MAX QUEUED");
    json_array_foreach(a, i, t) {
        char used[32], most[32], left[32], maxq[24] = "-";
        json_t *mq = json_object_get(t, "max_queued");

        if (json_is_integer(mq))
            snprintf(maxq, sizeof maxq, "%lld",
                     (long long)json_integer_value(mq));
        printf("%-16.16s  %12s  %12s  %12s  %6lld  %10s\n",
               str(t, "tenant"),
               size_of(t, "storage_bytes", used, sizeof used),
               size_of(t, "storage_quota_bytes", most, sizeof most),
               size_of(t, "storage_available_bytes", left, sizeof left),
               (long long)json_integer_value(json_object_get(t,
                                                             "jobs_queued")),
               maxq);
    }
}

int cmd_quota(struct cli *cli, int argc, char **argv)
{
    int r = cli_output_format(cli);

    (void)argc;
    (void)argv;
    return r ? r : get_and_show(cli, "/v1/quota", quota_table);
}

/* Appends "&name=value" (the first with '?'), the value percent-encoded
 * as it is: the server says what it makes of it. */
static int query_add(char **q, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = *q ? strlen(*q) : 0, vl = strlen(value);
    char *p = realloc(*q, n + strlen(name) + 3 * vl + 3);

    if (p == NULL)
        return -ENOMEM;
    *q = p;
    p += n;
    p += sprintf(p, "%c%s=", n ? '&' : '?', name);
    for (const unsigned char *v = (const unsigned char *)value; *v; v++) {
        if ((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
            (*v >= '0' && *v <= '9') || strchr("-._~,", *v)) {
            *p++ = (char)*v;
        } else {
            *p++ = '%';
            *p++ = hex[*v >> 4];
            *p++ = hex[*v & 15];
        }
    }
    *p = '\0';
    return 0;
}

int cmd_list(struct cli *cli, int argc, char **argv)
{
    static const char *const filters[] = {"state", "since", "tenant"};
    char *q = NULL, *path = NULL;
    int r = cli_output_format(cli);

    (void)argc;
    (void)argv;
    if (r)
        return r;
    /* --state may repeat: each goes as its own state=. */
    for (size_t i = 0; i < cli->n_given; i++)
        for (size_t f = 0; f < sizeof filters / sizeof filters[0]; f++)
            if (strcmp(cli->given[i].name, filters[f]) == 0 &&
                query_add(&q, filters[f], cli->given[i].value) < 0) {
                free(q);
                cli_error("out of memory");
                return EXIT_INTERNAL;
            }
    if (asprintf(&path, "/v1/jobs%s", q ? q : "") < 0) {
        free(q);
        cli_error("out of memory");
        return EXIT_INTERNAL;
    }
    r = get_and_show(cli, path, jobs_table);
    free(path);
    free(q);
    return r;
}

int cmd_devices(struct cli *cli, int argc, char **argv)
{
    int r = cli_output_format(cli);

    (void)argc;
    (void)argv;
    return r ? r : get_and_show(cli, "/v1/devices", devices_table);
}

int cmd_status(struct cli *cli, int argc, char **argv)
{
    char id[17], path[64];
    int r = cli_output_format(cli);

    (void)argc;
    if (r || (r = cli_job_id(cli, argv[0], id)) != 0)
        return r;
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    return get_and_show(cli, path, job_detail);
}

/* The job's exit code for `submit --wait`: its own status, 124 after its
 * walltime, 69 when it never ran because no device here can serve it
 * (or more than its tenant's max_gpus), 70
 * when it exited 0 but failed (its log or outputs were not stored). */
static int job_exit(json_t *j)
{
    json_t *ex = json_object_get(j, "exit_status");
    const char *st = str(j, "state");

    if (strcmp(st, "timeout") == 0)
        return 124;
    if (strcmp(str(j, "reason_code"), "no_device") == 0 ||
        strcmp(str(j, "reason_code"), "exceeds_max_gpus") == 0)
        return EXIT_NO_DEVICE;
    /* Failed with status 0: its log or outputs could not be stored. */
    if (json_is_integer(ex) &&
        (json_integer_value(ex) != 0 || strcmp(st, "failed") != 0))
        return (int)json_integer_value(ex);
    return strcmp(st, "succeeded") == 0 ? 0 : EXIT_INTERNAL;
}

static int fetch_job(struct cli *cli, const char *id, json_t **ret)
{
    char path[64];

    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    return request_json(cli, "GET", path, 200, ret);
}

static bool terminal(const char *state)
{
    return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "timeout") == 0 || strcmp(state, "cancelled") == 0 ||
           strcmp(state, "rejected") == 0;
}

static void default_dir(json_t *job, const char *id, char *buf,
                        size_t len);

/* The end of `submit --wait`, on stderr: how the job ended, why, and
 * where its outputs are. */
static void wait_summary(json_t *j)
{
    json_t *ex = json_object_get(j, "exit_status");
    const char *id = str(j, "id"), *st = str(j, "state");
    char dir[200];

    if (json_is_integer(ex))
        fprintf(stderr, "surplus: job %s '%s' %s (exit %d)\n", id,
                str(j, "name"), st, (int)json_integer_value(ex));
    else
        fprintf(stderr, "surplus: job %s '%s' %s (it did not run)\n", id,
                str(j, "name"), st);
    if (json_is_string(json_object_get(j, "reason")))
        fprintf(stderr, "surplus: reason: %s\n", str(j, "reason"));
    if (strcmp(st, "rejected") != 0) {
        default_dir(j, id, dir, sizeof dir);
        fprintf(stderr, "surplus: outputs: kept by surplusd; surplus fetch "
                        "%s writes them and job.log to ./%s/\n", id, dir);
    }
}

/* Tries of a submission whose answer did not come, and the wait before
 * the second and third. */
#define SUBMIT_TRIES 3
static const unsigned submit_backoff_ms[SUBMIT_TRIES - 1] = {1000, 2000};

/* A fresh idempotency key: 128 random bits in hex.  0, or -errno. */
static int new_key(char out[33])
{
    unsigned char r[16];
    size_t got = 0;

    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);

        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0)
            got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

/* POST /v1/jobs with the key, tried again (same bundle, same key) while
 * no answer comes, or while surplusd says that an earlier try with the
 * key is still under way (409): the daemon makes one job of them all. */
static int post_bundle(struct cli *cli, int fd, const char *key,
                       struct reply *rep)
{
    char header[sizeof "Idempotency-Key: " + JOBSTORE_KEY_MAX];
    const char *headers[] = {header, NULL};
    int r;

    snprintf(header, sizeof header, "Idempotency-Key: %s", key);
    for (int try = 1;; try++) {
        bool again;

        if (lseek(fd, 0, SEEK_SET) < 0) {
            cli_error("cannot read the bundle again: %s", strerror(errno));
            return EXIT_BUNDLE;
        }
        r = client_request_with(cli, "POST", "/v1/jobs", headers, fd, -1,
                                rep);
        again = (r == EXIT_TEMPFAIL && rep->status == 0) ||
                (r == 0 && rep->status == 409);
        if (!again || try == SUBMIT_TRIES)
            return r;
        reply_free(rep);
        fprintf(stderr, "surplus: trying again in %u s with the same "
                        "Idempotency-Key (try %d of %d)\n",
                submit_backoff_ms[try - 1] / 1000, try + 1, SUBMIT_TRIES);
        usleep((useconds_t)submit_backoff_ms[try - 1] * 1000);
    }
}

int cmd_submit(struct cli *cli, int argc, char **argv)
{
    bool wait = false;
    struct reply rep;
    struct stat st = {0};
    json_t *j = NULL;
    const char *key = NULL;
    char id[17], fresh[33];
    int fd, r;

    (void)argc;
    wait = cli_opt(cli, "wait") != NULL;
    key = cli_opt(cli, "idempotency-key");
    if (key != NULL && !jobstore_key_valid(key)) {
        cli_error("--idempotency-key: expected 1 to %d printable ASCII "
                  "characters", JOBSTORE_KEY_MAX);
        return EXIT_USAGE;
    }
    if (key == NULL) {
        if ((r = new_key(fresh)) < 0) {
            cli_error("cannot make an idempotency key: %s", strerror(-r));
            return EXIT_INTERNAL;
        }
        key = fresh;
    }
    /* O_NONBLOCK: a fifo must not keep the open waiting for a writer. */
    if ((fd = open(argv[0], O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
        cli_error("%s: %s", argv[0], strerror(errno));
        return EXIT_BUNDLE;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        cli_error("%s: is a %s, not a bundle (a bundle is a regular file)",
                  argv[0],
                  S_ISDIR(st.st_mode)    ? "directory"
                  : S_ISFIFO(st.st_mode) ? "fifo"
                  : S_ISSOCK(st.st_mode) ? "socket"
                  : S_ISCHR(st.st_mode)  ? "character device"
                  : S_ISBLK(st.st_mode)  ? "block device"
                                         : "special file");
        close(fd);
        return EXIT_BUNDLE;
    }
    fcntl(fd, F_SETFL, 0);
    r = post_bundle(cli, fd, key, &rep);
    close(fd);
    if (r != 0)
        return r;
    if (rep.status != 201) {
        r = client_fail(&rep);
        /* Still in progress after the last try: later, it is answered. */
        if (rep.status == 409)
            r = EXIT_TEMPFAIL;
        reply_free(&rep);
        return r;
    }
    j = client_json(&rep);
    if (j != NULL && rep.replayed)
        fprintf(stderr, "surplus: job %s was made by an earlier request "
                        "with this Idempotency-Key; not submitted again\n",
                str(j, "id"));
    reply_free(&rep);
    if (j == NULL)
        return EXIT_INTERNAL;
    snprintf(id, sizeof id, "%s", str(j, "id"));
    if (!wait) {
        if (cli->json) {
            json_dumpf(j, stdout, JSON_INDENT(2));
            putchar('\n');
        } else {
            printf("%s\n", id);
        }
        json_decref(j);
        return 0;
    }
    /* The id first, as without --wait, so a script has it either way. */
    if (!cli->json) {
        printf("%s\n", id);
        fflush(stdout);
    }
    fprintf(stderr, "surplus: job %s submitted, waiting\n", id);
    for (int delay = 20;; delay = delay < 500 ? delay * 2 : 500) {
        json_decref(j);
        j = NULL;
        if ((r = fetch_job(cli, id, &j)) != 0)
            return r;
        if (terminal(str(j, "state")))
            break;
        usleep((useconds_t)delay * 1000);
    }
    if (cli->json) {
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        wait_summary(j);
    }
    r = job_exit(j);
    json_decref(j);
    return r;
}

/* Waits (at most `ms`) for a job to end; *ret holds its last state. */
static int wait_end(struct cli *cli, const char *id, int ms, json_t **ret)
{
    int r;

    for (int delay = 20, waited = 0;; waited += delay,
             delay = delay < 500 ? delay * 2 : 500) {
        if ((r = fetch_job(cli, id, ret)) != 0)
            return r;
        if (terminal(str(*ret, "state")) || waited >= ms)
            return 0;
        json_decref(*ret);
        *ret = NULL;
        usleep((useconds_t)delay * 1000);
    }
}

/* How long `cancel` waits for a running job to be gone (its processes get
 * SIGTERM, then SIGKILL after sandbox.kill_grace). */
#define CANCEL_WAIT_MS 30000

int cmd_cancel(struct cli *cli, int argc, char **argv)
{
    char id[17], path[64];
    json_t *j;
    int r;

    (void)argc;
    if ((r = cli_job_id(cli, argv[0], id)) != 0)
        return r;
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    if ((r = request_json(cli, "DELETE", path, 200, &j)) != 0)
        return r;
    /* A queued job is cancelled at once; a running one once its processes
     * are gone: the state shown is the one after. */
    if (!terminal(str(j, "state"))) {
        json_decref(j);
        j = NULL;
        if ((r = wait_end(cli, id, CANCEL_WAIT_MS, &j)) != 0)
            return r;
    }
    if (cli->json) {
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
    } else if (terminal(str(j, "state"))) {
        printf("%s %s\n", id, str(j, "state"));
    } else {
        printf("%s %s (cancel requested; not ended after %d s)\n", id,
               str(j, "state"), CANCEL_WAIT_MS / 1000);
    }
    json_decref(j);
    return 0;
}

int cmd_logs(struct cli *cli, int argc, char **argv)
{
    bool follow = cli_opt(cli, "follow") != NULL;
    char id[17];
    struct reply rep;
    char path[80];
    int r;

    (void)argc;
    if ((r = cli_job_id(cli, argv[0], id)) != 0)
        return r;
    /* -f: the daemon keeps the answer open while the job runs and sends
     * what it writes as it writes it (?follow=1); it ends with the job. */
    snprintf(path, sizeof path, "/v1/jobs/%s/log%s", id,
             follow ? "?follow=1" : "");
    fflush(stdout);
    if ((r = client_request(cli, "GET", path, -1, STDOUT_FILENO, &rep)) != 0)
        return r;
    if (rep.status != 200) {
        r = client_fail(&rep);
        reply_free(&rep);
        return r;
    }
    reply_free(&rep);
    if (follow) {
        /* A stream cut short (the daemon stopped, the connection
         * dropped) ends before the job does. */
        json_t *j = NULL;
        bool over;

        if ((r = fetch_job(cli, id, &j)) != 0)
            return r;
        over = terminal(str(j, "state"));
        json_decref(j);
        if (!over) {
            cli_error("the log of job %s stopped before the job ended; "
                      "run surplus logs -f %s again", id, id);
            return EXIT_TEMPFAIL;
        }
    }
    return 0;
}

/* Downloads GET `path` into dfd/rel (never through a symlink): 0, or the
 * exit code with the reason printed. */
static int download(struct cli *cli, const char *path, int dfd,
                    const char *dir, const char *rel, json_t *files,
                    json_int_t *total)
{
    struct reply rep;
    struct stat st;
    int fd, r = 0;

    fd = fsafe_open_beneath(dfd, rel, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        cli_error("%s/%s: %s", dir, rel, strerror(-fd));
        return EXIT_INTERNAL;
    }
    if ((r = client_request(cli, "GET", path, -1, fd, &rep)) == 0 &&
        rep.status != 200)
        r = client_fail(&rep);
    if (r == 0 && fstat(fd, &st) == 0) {
        if (files != NULL)
            json_array_append_new(files,
                                  json_pack("{s:s, s:I}", "path", rel,
                                            "bytes", (json_int_t)st.st_size));
        *total += (json_int_t)st.st_size;
    }
    reply_free(&rep);
    close(fd);
    return r;
}

/* ./NAME-ID, as `surplus run` names it; the name comes from the server,
 * so one that is not a plain file name leaves just the id. */
static void default_dir(json_t *job, const char *id, char *buf, size_t len)
{
    const char *name = str(job, "name");
    bool plain = *name && strcmp(name, "-") != 0 && name[0] != '.' &&
                 strlen(name) <= 128;

    for (const char *c = name; plain && *c; c++)
        plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                (*c >= '0' && *c <= '9') || strchr("-_.+", *c);
    if (plain)
        snprintf(buf, len, "%s-%s", name, id);
    else
        snprintf(buf, len, "%s", id);
}

int cmd_fetch(struct cli *cli, int argc, char **argv)
{
    const char *dir = cli_opt(cli, "output");
    char id[17], path[4200], def[200];
    json_t *job = NULL, *list = NULL, *o, *files = NULL;
    json_int_t total = 0;
    size_t i, n = 0;
    int r, dfd;

    (void)argc;
    if ((r = cli_job_id(cli, argv[0], id)) != 0)
        return r;
    if ((r = fetch_job(cli, id, &job)) != 0)
        return r;
    /* Outputs are collected when the job ends: before that there is
     * nothing (or only part) to fetch. */
    if (!terminal(str(job, "state"))) {
        cli_error("job %s is %s: its outputs and log are collected when it "
                  "ends; fetch it then (surplus logs -f %s waits for it)",
                  id, str(job, "state"), id);
        json_decref(job);
        return EXIT_TEMPFAIL;
    }
    if (dir == NULL) {
        default_dir(job, id, def, sizeof def);
        dir = def;
    }
    snprintf(path, sizeof path, "/v1/jobs/%s/outputs", id);
    if ((r = request_json(cli, "GET", path, 200, &list)) != 0) {
        json_decref(job);
        return r;
    }
    /* --json: what was written where, sizes as they landed on disk. */
    if (cli->json && (files = json_array()) == NULL) {
        cli_error("out of memory");
        r = EXIT_INTERNAL;
        goto out;
    }
    if ((r = node_mkdirs(dir, 0755)) < 0 ||
        (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        cli_error("%s: %s", dir, strerror(r < 0 ? -r : errno));
        r = EXIT_INTERNAL;
        goto out;
    }
    r = 0;
    json_array_foreach(list, i, o) {
        const char *rel = str(o, "path");
        char sub[4200];
        int rr;

        /* Names come from the server: only storage-key names (no "..",
         * no absolute path) are written, parents first, then the file,
         * never through a symlink.  job.log is the log's. */
        if (!surplus_key_valid(rel)) {
            cli_error("output '%.200s': not a valid output name; skipped",
                      rel);
            r = EXIT_INTERNAL;
            continue;
        }
        if (strcmp(rel, "job.log") == 0) {
            cli_error("output 'job.log' not fetched: the job's log is "
                      "written there");
            continue;
        }
        snprintf(sub, sizeof sub, "%s", rel);
        for (char *s = sub; (s = strchr(s, '/')) != NULL; s++) {
            *s = '\0';
            mkdirat(dfd, sub, 0755);
            *s = '/';
        }
        snprintf(path, sizeof path, "/v1/jobs/%s/outputs/%s", id, rel);
        if ((rr = download(cli, path, dfd, dir, rel, files, &total)) != 0)
            r = rr;
        else
            n++;
    }
    /* The log beside the outputs, as `surplus run` leaves it. */
    snprintf(path, sizeof path, "/v1/jobs/%s/log", id);
    {
        int rr = download(cli, path, dfd, dir, "job.log", files, &total);

        if (rr != 0)
            r = rr;
    }
    close(dfd);
    if (r == 0 && files != NULL) {
        json_t *out = json_pack("{s:s, s:s, s:O, s:I}", "job", id,
                                "directory", dir, "files", files,
                                "total_bytes", total);

        if (out == NULL || json_dumpf(out, stdout, JSON_INDENT(2)) < 0) {
            cli_error("cannot write the report");
            r = EXIT_INTERNAL;
        } else {
            putchar('\n');
        }
        json_decref(out);
    } else if (r == 0) {
        fprintf(stderr, "surplus: %zu output file(s) and job.log in %s/\n",
                n, dir);
    }
out:
    json_decref(files);
    json_decref(list);
    json_decref(job);
    return r;
}
