/*
 * test_jobstore.c - the job store: the state machine, compare-and-set
 * under races, lists and counts, idempotency keys, the schema's
 * migrations, recovery after a crash, and writers killed with SIGKILL at
 * random points, after which every job they were told about must be there
 * with a state its history explains (and, if it was inserted with an
 * idempotency key, with its key).
 *
 * SURPLUS_TEST_SEED=N repeats the random kill points of a run (the seed is
 * printed as a diagnostic); SURPLUS_JOBSTORE_BENCH_JOBS=N sets the size of
 * the timing run (2000 jobs, 200 under valgrind).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobstore.h"
#include "tap.h"

static char dir[512];
static bool under_valgrind;

/* --- helpers ------------------------------------------------------------ */

static void db_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s.db", dir, name);
}

static void make_id(char id[JOBSTORE_ID_LEN + 1], uint64_t n)
{
    snprintf(id, JOBSTORE_ID_LEN + 1, "%016" PRIx64, n);
}

/* A row as the daemon would insert it: only the fields insert reads, the
 * others set to what insert must ignore. */
static struct job_row mkrow(uint64_t n, const char *tenant)
{
    struct job_row row;

    memset(&row, 0, sizeof row);
    make_id(row.id, n);
    row.tenant = (char *)tenant;
    row.name = (char *)"job";
    row.model = (char *)"H100*";
    row.gpus = 1;
    row.cpus = 2;
    row.memory = UINT64_C(8) << 30;
    row.walltime_ms = 600000;
    row.bundle_key = (char *)"bundles/x";
    row.bundle_bytes = 1234;
    /* Ignored by insert: the store sets these. */
    row.seq = 999;
    row.state = JOB_SUCCEEDED;
    row.exit_status = 7;
    row.started_us = 5;
    row.ended_us = 6;
    row.reason = (char *)"ignored";
    row.recorded = true;
    row.cancel_requested = true;
    return row;
}

static int insert_n(struct jobstore *js, uint64_t n, const char *tenant,
                    struct err *e)
{
    struct job_row row = mkrow(n, tenant);

    return jobstore_insert(js, &row, e);
}

static struct jobstore *open_or_bail(const char *path)
{
    struct jobstore *js = NULL;
    struct err e = { 0, "" };

    err_clear(&e);
    if (jobstore_open(path, &js, &e) != 0) {
        tap_ok(0, "open %s: %s", path, e.msg);
        tap_done();
        exit(1);
    }
    return js;
}

static enum job_state state_of(struct jobstore *js, const char *id)
{
    struct job_row row;
    struct err e = { 0, "" };
    enum job_state st;

    if (jobstore_get(js, id, &row, &e) != 0)
        return JOB_STATE_NONE;
    st = row.state;
    job_row_free(&row);
    return st;
}

#define MAX_HISTORY 32

struct hist {
    size_t n;
    struct job_transition t[MAX_HISTORY];
    char reason[MAX_HISTORY][64];
};

static int hist_add(void *arg, const struct job_transition *t)
{
    struct hist *h = arg;

    if (h->n == MAX_HISTORY)
        return -E2BIG;
    h->t[h->n] = *t;
    snprintf(h->reason[h->n], sizeof h->reason[0], "%s",
             t->reason ? t->reason : "(null)");
    h->t[h->n].reason = NULL;
    h->t[h->n].job_id = NULL;
    h->n++;
    return 0;
}

static int history(struct jobstore *js, const char *id, struct hist *h)
{
    struct err e = { 0, "" };

    memset(h, 0, sizeof *h);
    return jobstore_transitions(js, id, hist_add, h, &e);
}

/* The history is a chain of allowed transitions from the submission that
 * ends in the job's state. */
static bool history_consistent(const struct hist *h, enum job_state state)
{
    size_t i;

    if (h->n == 0 || h->t[0].from != JOB_STATE_NONE ||
        h->t[0].to != JOB_QUEUED)
        return false;
    for (i = 1; i < h->n; i++) {
        if (h->t[i].from != h->t[i - 1].to ||
            !job_transition_allowed(h->t[i].from, h->t[i].to) ||
            h->t[i].n <= h->t[i - 1].n)
            return false;
    }
    return h->t[h->n - 1].to == state;
}

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Paths from queued to each state. */
static const enum job_state path_running[] = { JOB_RUNNING };
static const enum job_state path_completing[] = { JOB_RUNNING,
                                                  JOB_COMPLETING };
static const enum job_state path_succeeded[] = { JOB_RUNNING, JOB_COMPLETING,
                                                 JOB_SUCCEEDED };
static const enum job_state path_failed[] = { JOB_FAILED };
static const enum job_state path_timeout[] = { JOB_RUNNING, JOB_COMPLETING,
                                               JOB_TIMEOUT };
static const enum job_state path_cancelled[] = { JOB_CANCELLED };
static const enum job_state path_rejected[] = { JOB_REJECTED };

struct path {
    const enum job_state *s;
    size_t n;
};

#define PATH(a) { (a), sizeof(a) / sizeof((a)[0]) }
static const struct path paths[JOB_STATE_COUNT] = {
    [JOB_QUEUED] = { NULL, 0 },
    [JOB_RUNNING] = PATH(path_running),
    [JOB_COMPLETING] = PATH(path_completing),
    [JOB_SUCCEEDED] = PATH(path_succeeded),
    [JOB_FAILED] = PATH(path_failed),
    [JOB_TIMEOUT] = PATH(path_timeout),
    [JOB_CANCELLED] = PATH(path_cancelled),
    [JOB_REJECTED] = PATH(path_rejected),
};

/* Inserts job n and walks it to `target`; 0 or the first failure. */
static int make_job_in(struct jobstore *js, uint64_t n, const char *tenant,
                       enum job_state target, struct err *e)
{
    enum job_state cur = JOB_QUEUED;
    char id[JOBSTORE_ID_LEN + 1];
    size_t i;
    int r;

    make_id(id, n);
    r = insert_n(js, n, tenant, e);
    for (i = 0; r == 0 && i < paths[target].n; i++) {
        r = jobstore_transition(js, id, cur, paths[target].s[i], NULL, e);
        cur = paths[target].s[i];
    }
    return r;
}

/* --- states ------------------------------------------------------------- */

static void test_states(void)
{
    enum job_state s, got;
    int i;

    for (i = 0; i < JOB_STATE_COUNT; i++) {
        s = (enum job_state)i;
        got = JOB_STATE_NONE;
        tap_ok(job_state_parse(job_state_name(s), &got) == 0 && got == s,
               "state %d: \"%s\" parses back", i, job_state_name(s));
    }
    tap_is_str(job_state_name(JOB_STATE_NONE), "none", "name of NONE");
    tap_is_str(job_state_name((enum job_state)42), "invalid",
               "name of a bad value");
    got = JOB_RUNNING;
    tap_ok(job_state_parse("QUEUED", &got) == -EINVAL &&
               job_state_parse("none", &got) == -EINVAL &&
               job_state_parse("", &got) == -EINVAL &&
               job_state_parse("queued ", &got) == -EINVAL &&
               job_state_parse(NULL, &got) == -EINVAL && got == JOB_RUNNING,
           "parse refuses other spellings and leaves *ret alone");
    tap_ok(!job_state_terminal(JOB_QUEUED) &&
               !job_state_terminal(JOB_RUNNING) &&
               !job_state_terminal(JOB_COMPLETING) &&
               job_state_terminal(JOB_SUCCEEDED) &&
               job_state_terminal(JOB_FAILED) &&
               job_state_terminal(JOB_TIMEOUT) &&
               job_state_terminal(JOB_CANCELLED) &&
               job_state_terminal(JOB_REJECTED) &&
               !job_state_terminal(JOB_STATE_NONE),
           "terminal states: succeeded failed timeout cancelled rejected");
    tap_ok(jobstore_id_valid("0123456789abcdef") &&
               !jobstore_id_valid("0123456789ABCDEF") &&
               !jobstore_id_valid("0123456789abcde") &&
               !jobstore_id_valid("0123456789abcdef0") &&
               !jobstore_id_valid("0123456789abcdeg") &&
               !jobstore_id_valid("../../etc/passwd") &&
               !jobstore_id_valid(""), "ids: 16 lowercase hex digits");
}

/* --- open, schema ------------------------------------------------------ */

static int sql_int(const char *path, const char *sql, int *ret)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    int rc;

    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        *ret = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
        sqlite3_finalize(s);
        rc = SQLITE_OK;
    }
    sqlite3_close(db);
    return rc;
}

static int sql_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    int rc;

    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

static void test_open(void)
{
    char path[600], bad[600];
    struct jobstore *js = NULL;
    struct err e = { 0, "" };
    int v = -1, r, fd;

    db_path(path, sizeof path, "open");
    js = open_or_bail(path);
    jobstore_close(js);
    jobstore_close(NULL);

    tap_ok(sql_int(path, "PRAGMA user_version", &v) == SQLITE_OK &&
               v == JOBSTORE_SCHEMA_VERSION,
           "user_version is %d (got %d)", JOBSTORE_SCHEMA_VERSION, v);
    v = -1;
    sql_int(path,
            "SELECT count(*) FROM pragma_foreign_key_list('transitions')",
            &v);
    tap_is_int(v, 1, "the history refers to jobs by a foreign key");
    {
        sqlite3 *db;
        sqlite3_stmt *s;
        const char *mode = NULL;
        char got[16] = "";

        sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
        if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL) ==
            SQLITE_OK) {
            if (sqlite3_step(s) == SQLITE_ROW)
                mode = (const char *)sqlite3_column_text(s, 0);
            snprintf(got, sizeof got, "%s", mode ? mode : "");
            sqlite3_finalize(s);
        }
        sqlite3_close(db);
        tap_is_str(got, "wal", "the file is in WAL mode");
    }

    /* Reopening finds the schema there. */
    err_clear(&e);
    r = jobstore_open(path, &js, &e);
    tap_ok(r == 0, "reopen (%s)", e.msg);
    if (r == 0)
        jobstore_close(js);

    snprintf(bad, sizeof bad, "%s/no/such/dir/x.db", dir);
    err_clear(&e);
    js = NULL;
    r = jobstore_open(bad, &js, &e);
    tap_ok(r < 0 && js == NULL && strstr(e.msg, bad) != NULL,
           "a missing directory is an error naming the file (%d: %s)", r,
           e.msg);

    snprintf(bad, sizeof bad, "%s/not-a-db", dir);
    fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        static const char junk[] = "this is not an SQLite database, not "
                                   "even close; it is a text file.\n";
        int i;

        for (i = 0; i < 64; i++)
            if (write(fd, junk, sizeof junk - 1) < 0)
                break;
        close(fd);
    }
    err_clear(&e);
    r = jobstore_open(bad, &js, &e);
    tap_ok(r == -EBADMSG && strstr(e.msg, "not a database") != NULL,
           "a file that is not a database is refused (%d: %s)", r, e.msg);

    err_clear(&e);
    r = jobstore_open("", &js, &e);
    tap_ok(r == -EINVAL, "an empty path is refused (%s)", e.msg);
}

static void test_version(void)
{
    char path[600];
    struct jobstore *js = NULL;
    struct err e = { 0, "" };
    int r;

    char sql[64], newer[64], known[64];

    db_path(path, sizeof path, "version");
    js = open_or_bail(path);
    jobstore_close(js);
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d",
             JOBSTORE_SCHEMA_VERSION + 1);
    snprintf(newer, sizeof newer, "schema version %d",
             JOBSTORE_SCHEMA_VERSION + 1);
    snprintf(known, sizeof known, "up to %d", JOBSTORE_SCHEMA_VERSION);
    tap_ok(sql_exec(path, sql) == SQLITE_OK,
           "schema version set to %d behind the store's back",
           JOBSTORE_SCHEMA_VERSION + 1);
    js = NULL;
    err_clear(&e);
    r = jobstore_open(path, &js, &e);
    tap_ok(r == -ENOTSUP && js == NULL && strstr(e.msg, newer) != NULL &&
               strstr(e.msg, known) != NULL &&
               strstr(e.msg, "newer") != NULL,
           "a newer schema is refused (%d: %s)", r, e.msg);
    if (r == 0)
        jobstore_close(js);
}

/* A store of schema version 3 (before idempotency keys), with a job in
 * it, is brought up to the current version on open: the job is still
 * there, and keys work. */
static void test_migrate_keys(void)
{
    static const char sha[] = "00112233445566778899aabbccddeeff"
                              "00112233445566778899aabbccddeeff";
    char path[600], id[JOBSTORE_ID_LEN + 1], kid[JOBSTORE_ID_LEN + 1];
    char ksha[65];
    struct jobstore *js;
    struct job_row row;
    struct err e = { 0, "" };
    int v = -1, r;

    db_path(path, sizeof path, "migrate");
    js = open_or_bail(path);
    r = insert_n(js, 0x3001, "acme", &e);
    jobstore_close(js);
    tap_ok(r == 0 && sql_exec(path, "DROP TABLE idempotency_keys; "
                                    "PRAGMA user_version = 3") == SQLITE_OK,
           "a store with a job, made version 3 behind its back (%s)", e.msg);

    js = open_or_bail(path);
    sql_int(path, "PRAGMA user_version", &v);
    tap_ok(v == JOBSTORE_SCHEMA_VERSION, "open migrates it to version %d "
           "(got %d)", JOBSTORE_SCHEMA_VERSION, v);
    make_id(id, 0x3001);
    tap_is_int(state_of(js, id), JOB_QUEUED, "its job is still there");
    row = mkrow(0x3002, "acme");
    err_clear(&e);
    r = jobstore_insert_keyed(js, &row, "k", sha, &e);
    tap_ok(r == 0 && jobstore_key_find(js, "acme", "k", kid, ksha, &e) == 0 &&
               strcmp(kid, row.id) == 0,
           "and a job with an idempotency key goes in (%s)", e.msg);
    jobstore_close(js);
}

/* --- insert, get --------------------------------------------------------- */

static void test_insert_get(struct jobstore *js)
{
    struct job_row row, got, untouched;
    struct hist h;
    struct err e = { 0, "" };
    int r;

    row = mkrow(0x1001, "acme");
    row.name = (char *)"saxpy";
    row.devices = (char *)"[{\"id\":\"sim-0\",\"model\":\"SIM-80G\","
                          "\"plugin\":\"accelerator/sim\"}]";
    row.gpus = 2;
    row.gpu_memory = UINT64_C(40) << 30;
    row.cpus = 3;
    row.memory = (uint64_t)INT64_MAX;
    row.walltime_ms = 3600000;
    row.submitted_us = 1700000000000000;
    row.requeue = true;
    err_clear(&e);
    r = jobstore_insert(js, &row, &e);
    tap_ok(r == 0, "insert (%s)", e.msg);

    memset(&got, 0, sizeof got);
    r = jobstore_get(js, row.id, &got, &e);
    tap_ok(r == 0, "get (%s)", e.msg);
    tap_is_str(got.id, row.id, "id");
    tap_ok(got.seq >= 1, "seq assigned (%" PRId64 ")", got.seq);
    tap_is_str(got.tenant, "acme", "tenant");
    tap_is_str(got.name, "saxpy", "name");
    tap_is_int(got.state, JOB_QUEUED, "state queued whatever the row said");
    tap_is_int(got.exit_status, -1, "exit_status -1 until known");
    tap_is_int(got.submitted_us, 1700000000000000, "submitted_us");
    tap_ok(got.started_us == 0 && got.ended_us == 0,
           "started_us and ended_us 0");
    tap_is_str(got.devices, row.devices, "devices");
    tap_ok(got.reason == NULL, "no reason");
    tap_is_str(got.bundle_key, "bundles/x", "bundle_key");
    tap_is_int(got.bundle_bytes, 1234, "bundle_bytes");
    tap_ok(got.gpus == 2 && got.cpus == 3 &&
               got.gpu_memory == UINT64_C(40) << 30 &&
               got.memory == (uint64_t)INT64_MAX &&
               got.walltime_ms == 3600000,
           "resources");
    tap_is_str(got.model, "H100*", "model");
    tap_ok(got.requeue && !got.recorded && !got.cancel_requested,
           "requeue kept; recorded and cancel_requested false");
    job_row_free(&got);
    tap_ok(got.tenant == NULL && got.model == NULL, "job_row_free clears");

    r = history(js, row.id, &h);
    tap_ok(r == 0 && h.n == 1 && h.t[0].from == JOB_STATE_NONE &&
               h.t[0].to == JOB_QUEUED &&
               h.t[0].time_us == 1700000000000000,
           "the submission is the first history row (%d rows)", (int)h.n);

    /* Defaults: no devices, no model, no name, submitted now. */
    row = mkrow(0x1002, "acme");
    row.name = NULL;
    row.model = NULL;
    row.devices = NULL;
    row.bundle_key = NULL;
    row.submitted_us = 0;
    r = jobstore_insert(js, &row, &e);
    r = r ? r : jobstore_get(js, row.id, &got, &e);
    tap_ok(r == 0 && strcmp(got.devices, "[]") == 0 &&
               strcmp(got.model, "*") == 0 && strcmp(got.name, "") == 0 &&
               got.bundle_key == NULL && got.submitted_us > 1600000000000000,
           "defaults: devices [], model *, name \"\", now (%s)", e.msg);
    if (r == 0)
        job_row_free(&got);

    err_clear(&e);
    r = insert_n(js, 0x1001, "other", &e);
    tap_ok(r == -EEXIST && strstr(e.msg, "0000000000001001") != NULL,
           "a duplicate id is -EEXIST (%s)", e.msg);
    r = jobstore_get(js, "0000000000001001", &got, &e);
    tap_ok(r == 0 && strcmp(got.tenant, "acme") == 0,
           "and the first job is unchanged");
    if (r == 0)
        job_row_free(&got);

    row = mkrow(0, "acme");
    snprintf(row.id, sizeof row.id, "%s", "ABCDEF0123456789");
    r = jobstore_insert(js, &row, &e);
    tap_ok(r == -EINVAL && strstr(e.msg, "hex") != NULL,
           "an uppercase id is refused (%s)", e.msg);
    snprintf(row.id, sizeof row.id, "%s", "../../x");
    r = jobstore_insert(js, &row, &e);
    tap_ok(r == -EINVAL, "a path as id is refused (%s)", e.msg);

    row = mkrow(0x1003, "");
    r = jobstore_insert(js, &row, &e);
    tap_ok(r == -EINVAL && strstr(e.msg, "tenant") != NULL,
           "no tenant is refused (%s)", e.msg);
    row = mkrow(0x1003, "acme");
    row.walltime_ms = (uint64_t)INT64_MAX + 1;
    r = jobstore_insert(js, &row, &e);
    tap_ok(r == -ERANGE && strstr(e.msg, "walltime_ms") != NULL,
           "a value SQLite cannot hold is -ERANGE (%s)", e.msg);
    row = mkrow(0x1003, "acme");
    row.devices = (char *)"{\"id\":\"x\"}";
    r = jobstore_insert(js, &row, &e);
    tap_ok(r == -EINVAL && strstr(e.msg, "JSON array") != NULL,
           "devices that are an object are refused (%s)", e.msg);
    row.devices = (char *)"[\"x\", 1]";
    r = jobstore_insert(js, &row, &e);
    tap_ok(r == -EINVAL, "devices that are not objects are refused (%s)",
           e.msg);
    row.devices = (char *)"[{\"id\":";
    r = jobstore_insert(js, &row, &e);
    tap_ok(r == -EINVAL, "devices that are not JSON are refused (%s)",
           e.msg);
    r = jobstore_get(js, "0000000000001003", &got, &e);
    tap_ok(r == -ENOENT, "and none of them was stored (%s)", e.msg);
    r = jobstore_insert(js, NULL, &e);
    tap_ok(r == -EINVAL, "no row is refused (%s)", e.msg);

    memset(&untouched, 0x5a, sizeof untouched);
    got = untouched;
    err_clear(&e);
    r = jobstore_get(js, "00000000000fffff", &got, &e);
    tap_ok(r == -ENOENT && memcmp(&got, &untouched, sizeof got) == 0 &&
               strstr(e.msg, "00000000000fffff") != NULL,
           "get of an unknown job is -ENOENT, *out untouched (%s)", e.msg);
    r = jobstore_get(js, "nope", &got, &e);
    tap_ok(r == -EINVAL, "get of a malformed id is -EINVAL (%s)", e.msg);
    r = history(js, "00000000000fffff", &h);
    tap_is_int(r, -ENOENT, "no history for an unknown job");
}

/* Quotes, SQL, control characters and non-ASCII text come back as given. */
static void test_strings(struct jobstore *js)
{
    static const char *const odd[] = {
        "it's \"quoted\" \\ and 'doubled''",
        "'); DROP TABLE jobs; --",
        "Zürich – 東京 – 🚀 – ﷽",
        "line\nbreak\ttab\x01",
        "%s%n%x",
    };
    struct job_update u = { .set = JOB_UPDATE_REASON | JOB_UPDATE_DEVICES };
    char devices[512];
    struct job_row row, got;
    struct hist h;
    struct err e = { 0, "" };
    size_t i;
    int r;

    for (i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        row = mkrow(0x2000 + i, odd[i]);
        row.name = (char *)odd[i];
        row.model = (char *)odd[i];
        row.bundle_key = (char *)odd[i];
        err_clear(&e);
        r = jobstore_insert(js, &row, &e);
        snprintf(devices, sizeof devices,
                 "[{\"id\":\"GPU-ü\",\"model\":\"H100 \\\"SXM\\\" 🚀\","
                 "\"plugin\":\"accelerator/cuda\"}]");
        u.devices = devices;
        u.reason = odd[i];
        if (r == 0)
            r = jobstore_transition(js, row.id, JOB_QUEUED, JOB_RUNNING, &u,
                                    &e);
        memset(&got, 0, sizeof got);
        if (r == 0)
            r = jobstore_get(js, row.id, &got, &e);
        tap_ok(r == 0 && strcmp(got.tenant, odd[i]) == 0 &&
                   strcmp(got.name, odd[i]) == 0 &&
                   strcmp(got.model, odd[i]) == 0 &&
                   strcmp(got.bundle_key, odd[i]) == 0 &&
                   strcmp(got.reason, odd[i]) == 0 &&
                   strcmp(got.devices, devices) == 0,
               "string %zu round-trips in every text field (%s)", i, e.msg);
        if (r == 0)
            job_row_free(&got);
        r = history(js, row.id, &h);
        tap_ok(r == 0 && h.n == 2 && strcmp(h.reason[1], odd[i]) == 0,
               "and in the history's reason");
    }
}

/* --- transitions -------------------------------------------------------- */

static void test_every_transition(struct jobstore *js)
{
    uint64_t n = 0x3000;
    int from, to, r;
    struct err e = { 0, "" };
    struct hist h;
    char id[JOBSTORE_ID_LEN + 1];
    int n_allowed = 0, n_refused = 0;

    for (from = 0; from < JOB_STATE_COUNT; from++) {
        for (to = 0; to < JOB_STATE_COUNT; to++) {
            bool allowed = job_transition_allowed(from, to);
            size_t before;

            make_id(id, ++n);
            err_clear(&e);
            r = make_job_in(js, n, "acme", (enum job_state)from, &e);
            if (!tap_ok(r == 0, "job in %s (%s)",
                        job_state_name((enum job_state)from), e.msg))
                continue;
            history(js, id, &h);
            before = h.n;
            err_clear(&e);
            r = jobstore_transition(js, id, (enum job_state)from,
                                    (enum job_state)to, NULL, &e);
            history(js, id, &h);
            if (allowed) {
                n_allowed++;
                tap_ok(r == 0 && state_of(js, id) == (enum job_state)to &&
                           h.n == before + 1 &&
                           h.t[h.n - 1].from == (enum job_state)from &&
                           h.t[h.n - 1].to == (enum job_state)to,
                       "%s -> %s allowed, recorded (%s)",
                       job_state_name((enum job_state)from),
                       job_state_name((enum job_state)to), e.msg);
            } else {
                n_refused++;
                tap_ok(r == -EINVAL &&
                           strstr(e.msg, job_state_name((enum job_state)from))
                               != NULL &&
                           state_of(js, id) == (enum job_state)from &&
                           h.n == before,
                       "%s -> %s refused, nothing changed (%s)",
                       job_state_name((enum job_state)from),
                       job_state_name((enum job_state)to), e.msg);
            }
        }
    }
    /* 4 from queued, 4 from running, 4 from completing. */
    tap_is_int(n_allowed, 12, "allowed transitions");
    tap_is_int(n_refused, 52, "refused transitions");

    make_id(id, 0x3000 + 1); /* queued -> queued: still queued */
    r = jobstore_transition(js, id, JOB_QUEUED, (enum job_state)8, NULL, &e);
    tap_ok(r == -EINVAL, "a state out of range is refused (%s)", e.msg);
    r = jobstore_transition(js, id, JOB_STATE_NONE, JOB_QUEUED, NULL, &e);
    tap_ok(r == -EINVAL, "NONE as from is refused (%s)", e.msg);
    r = jobstore_transition(js, id, JOB_QUEUED, JOB_STATE_NONE, NULL, &e);
    tap_ok(r == -EINVAL, "NONE as to is refused (%s)", e.msg);
    r = jobstore_transition(js, "xyz", JOB_QUEUED, JOB_RUNNING, NULL, &e);
    tap_ok(r == -EINVAL, "a malformed id is refused (%s)", e.msg);
}

static void test_update_fields(struct jobstore *js)
{
    char id[JOBSTORE_ID_LEN + 1];
    static const char devs[] =
        "[{\"id\":\"sim-1\",\"model\":\"SIM-80G\","
        "\"plugin\":\"accelerator/sim\"}]";
    struct job_update u;
    struct job_row got;
    struct hist h;
    struct err e = { 0, "" };
    int r;

    make_id(id, 0x4001);
    insert_n(js, 0x4001, "acme", &e);

    u = (struct job_update){ .set = JOB_UPDATE_STARTED_US |
                                    JOB_UPDATE_DEVICES,
                             .started_us = 111,
                             .devices = devs,
                             .exit_status = 99, /* not in set: ignored */
                             .time_us = 110 };
    r = jobstore_transition(js, id, JOB_QUEUED, JOB_RUNNING, &u, &e);
    r = r ? r : jobstore_get(js, id, &got, &e);
    tap_ok(r == 0 && got.started_us == 111 && strcmp(got.devices, devs) == 0 &&
               got.exit_status == -1 && got.reason == NULL,
           "running: started_us and devices set, the rest alone (%s)", e.msg);
    if (r == 0)
        job_row_free(&got);

    u = (struct job_update){ .set = JOB_UPDATE_EXIT_STATUS |
                                    JOB_UPDATE_RECORDED,
                             .exit_status = 0,
                             .recorded = true };
    r = jobstore_transition(js, id, JOB_RUNNING, JOB_COMPLETING, &u, &e);
    r = r ? r : jobstore_get(js, id, &got, &e);
    tap_ok(r == 0 && got.exit_status == 0 && got.recorded &&
               got.started_us == 111,
           "completing: exit_status and recorded set (%s)", e.msg);
    if (r == 0)
        job_row_free(&got);

    u = (struct job_update){ .set = JOB_UPDATE_ENDED_US | JOB_UPDATE_REASON,
                             .ended_us = 333,
                             .reason = "outputs collected",
                             .time_us = 334 };
    r = jobstore_transition(js, id, JOB_COMPLETING, JOB_SUCCEEDED, &u, &e);
    r = r ? r : jobstore_get(js, id, &got, &e);
    tap_ok(r == 0 && got.ended_us == 333 &&
               strcmp(got.reason, "outputs collected") == 0 &&
               got.exit_status == 0 && strcmp(got.devices, devs) == 0,
           "succeeded: ended_us and reason set (%s)", e.msg);
    if (r == 0)
        job_row_free(&got);
    r = history(js, id, &h);
    tap_ok(r == 0 && h.n == 4 && h.t[1].time_us == 110 &&
               h.t[3].time_us == 334 && h.t[2].time_us > 1600000000000000 &&
               strcmp(h.reason[3], "outputs collected") == 0 &&
               strcmp(h.reason[1], "(null)") == 0,
           "history: given times, now otherwise, and the reason");

    /* Refusals change nothing. */
    make_id(id, 0x4002);
    insert_n(js, 0x4002, "acme", &e);
    u = (struct job_update){ .set = 1u << 20 };
    r = jobstore_transition(js, id, JOB_QUEUED, JOB_RUNNING, &u, &e);
    tap_ok(r == -EINVAL && state_of(js, id) == JOB_QUEUED,
           "unknown update bits are refused (%s)", e.msg);
    u = (struct job_update){ .set = JOB_UPDATE_DEVICES, .devices = "nope" };
    r = jobstore_transition(js, id, JOB_QUEUED, JOB_RUNNING, &u, &e);
    tap_ok(r == -EINVAL && state_of(js, id) == JOB_QUEUED,
           "bad devices are refused, the job stays queued (%s)", e.msg);
    u = (struct job_update){ .set = JOB_UPDATE_ENDED_US, .ended_us = -5 };
    r = jobstore_transition(js, id, JOB_QUEUED, JOB_FAILED, &u, &e);
    tap_ok(r == -EINVAL && state_of(js, id) == JOB_QUEUED,
           "a negative time is refused (%s)", e.msg);
    history(js, id, &h);
    tap_is_int(h.n, 1, "and no history row was added");

    /* A reason set, then cleared by a later transition. */
    u = (struct job_update){ .set = JOB_UPDATE_REASON, .reason = "r1" };
    jobstore_transition(js, id, JOB_QUEUED, JOB_RUNNING, &u, &e);
    u = (struct job_update){ .set = JOB_UPDATE_REASON, .reason = NULL };
    r = jobstore_transition(js, id, JOB_RUNNING, JOB_QUEUED, &u, &e);
    r = r ? r : jobstore_get(js, id, &got, &e);
    tap_ok(r == 0 && got.reason == NULL, "a NULL reason clears it (%s)",
           e.msg);
    if (r == 0)
        job_row_free(&got);
}

static void test_stale(struct jobstore *js)
{
    char id[JOBSTORE_ID_LEN + 1];
    struct hist h;
    struct err e = { 0, "" };
    int r;

    make_id(id, 0x5001);
    make_job_in(js, 0x5001, "acme", JOB_RUNNING, &e);
    err_clear(&e);
    r = jobstore_transition(js, id, JOB_QUEUED, JOB_CANCELLED, NULL, &e);
    tap_ok(r == -ESTALE && strstr(e.msg, "is running") != NULL &&
               state_of(js, id) == JOB_RUNNING,
           "a wrong `from` is -ESTALE naming the state (%s)", e.msg);
    history(js, id, &h);
    tap_is_int(h.n, 2, "and adds no history row");
    r = jobstore_transition(js, "00000000deadbeef", JOB_QUEUED, JOB_RUNNING,
                            NULL, &e);
    tap_ok(r == -ENOENT && strstr(e.msg, "00000000deadbeef") != NULL,
           "an unknown job is -ENOENT (%s)", e.msg);
}

/* Several transitions in one commit: a stale step is skipped, the others
 * land together; a bad step (not allowed) leaves the rest alone too; and
 * a dependent pair (running -> completing -> succeeded) works in order. */
static void test_batch(struct jobstore *js)
{
    char a[JOBSTORE_ID_LEN + 1], b[JOBSTORE_ID_LEN + 1],
        c[JOBSTORE_ID_LEN + 1];
    struct job_update u = {.set = JOB_UPDATE_STARTED_US, .started_us = 42};
    struct job_update fin = {.set = JOB_UPDATE_EXIT_STATUS |
                                    JOB_UPDATE_ENDED_US,
                             .exit_status = 0, .ended_us = 43};
    struct job_step steps[4];
    struct job_row row;
    struct hist h;
    struct err e = { 0, "" };
    int r;

    make_id(a, 0xc101);
    make_id(b, 0xc102);
    make_id(c, 0xc103);
    make_job_in(js, 0xc101, "acme", JOB_QUEUED, &e);
    make_job_in(js, 0xc102, "acme", JOB_CANCELLED, &e);
    make_job_in(js, 0xc103, "beta", JOB_QUEUED, &e);
    memset(steps, 0, sizeof steps);
    steps[0] = (struct job_step){.id = a, .from = JOB_QUEUED,
                                 .to = JOB_RUNNING, .u = &u};
    steps[1] = (struct job_step){.id = b, .from = JOB_QUEUED,
                                 .to = JOB_RUNNING, .u = &u};
    steps[2] = (struct job_step){.id = c, .from = JOB_QUEUED,
                                 .to = JOB_RUNNING, .u = &u};
    steps[3] = (struct job_step){.id = "00000000deadbeef",
                                 .from = JOB_QUEUED, .to = JOB_RUNNING};
    r = jobstore_transitions_apply(js, steps, 4, &e);
    tap_is_int(r, 2, "a batch of starts applies the two that are queued");
    tap_ok(steps[0].result == 0 && steps[2].result == 0 &&
               state_of(js, a) == JOB_RUNNING &&
               state_of(js, c) == JOB_RUNNING,
           "both are running");
    tap_ok(steps[1].result == -ESTALE &&
               strstr(steps[1].msg, "is cancelled") != NULL &&
               state_of(js, b) == JOB_CANCELLED,
           "the cancelled one is -ESTALE and untouched (%s)", steps[1].msg);
    tap_ok(steps[3].result == -ENOENT &&
               strstr(steps[3].msg, "deadbeef") != NULL,
           "an unknown job is -ENOENT (%s)", steps[3].msg);
    memset(&row, 0, sizeof row);
    r = jobstore_get(js, c, &row, &e);
    tap_ok(r == 0 && row.started_us == 42, "each step's update is applied");
    job_row_free(&row);
    history(js, b, &h);
    tap_ok(history_consistent(&h, JOB_CANCELLED),
           "the skipped job's history is unchanged");

    memset(steps, 0, sizeof steps);
    steps[0] = (struct job_step){.id = a, .from = JOB_RUNNING,
                                 .to = JOB_COMPLETING};
    steps[1] = (struct job_step){.id = a, .from = JOB_COMPLETING,
                                 .to = JOB_SUCCEEDED, .u = &fin};
    steps[2] = (struct job_step){.id = c, .from = JOB_RUNNING,
                                 .to = JOB_QUEUED + 100};
    r = jobstore_transitions_apply(js, steps, 3, &e);
    tap_ok(r == 2 && state_of(js, a) == JOB_SUCCEEDED,
           "running -> completing -> succeeded in one batch");
    history(js, a, &h);
    tap_ok(history_consistent(&h, JOB_SUCCEEDED) && h.n == 4,
           "with a history row for each step (%zu rows)", (size_t)h.n);
    tap_ok(steps[2].result == -EINVAL && state_of(js, c) == JOB_RUNNING,
           "a step to no state is refused and changes nothing (%s)",
           steps[2].msg);
    steps[0] = (struct job_step){.id = c, .from = JOB_RUNNING,
                                 .to = JOB_QUEUED};
    steps[0].u = &(struct job_update){.set = JOB_UPDATE_DEVICES,
                                       .devices = "not json"};
    r = jobstore_transitions_apply(js, steps, 1, &e);
    tap_ok(r == 0 && steps[0].result < 0 && state_of(js, c) == JOB_RUNNING,
           "a step with bad devices is refused alone (%s)", steps[0].msg);
}

/* Two connections, two threads, released together: one CAS wins. */
struct racer {
    struct jobstore *js;
    pthread_barrier_t *barrier;
    const char *id;
    enum job_state to;
    int r;
    struct err e;
};

static void *race(void *arg)
{
    struct racer *rc = arg;

    pthread_barrier_wait(rc->barrier);
    rc->r = jobstore_transition(rc->js, rc->id, JOB_QUEUED, rc->to, NULL,
                                &rc->e);
    return NULL;
}

static void test_cas_race(const char *path)
{
    struct jobstore *a = open_or_bail(path), *b = open_or_bail(path);
    pthread_barrier_t barrier;
    int rounds = under_valgrind ? 10 : 50, i, good = 0, a_won = 0;
    char id[JOBSTORE_ID_LEN + 1];
    char msg[ERR_MSG_MAX] = "";
    struct err e = { 0, "" };

    pthread_barrier_init(&barrier, NULL, 2);
    for (i = 0; i < rounds; i++) {
        struct racer ra = { a, &barrier, id, JOB_RUNNING, 1, { 0, "" } };
        struct racer rb = { b, &barrier, id, JOB_CANCELLED, 1, { 0, "" } };
        pthread_t ta, tb;
        enum job_state st;

        make_id(id, 0x6000 + (uint64_t)i);
        if (insert_n(a, 0x6000 + (uint64_t)i, "acme", &e) != 0)
            break;
        pthread_create(&ta, NULL, race, &ra);
        pthread_create(&tb, NULL, race, &rb);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        st = state_of(b, id);
        if ((ra.r == 0 && rb.r == -ESTALE && st == JOB_RUNNING &&
             strstr(rb.e.msg, "is running") != NULL) ||
            (rb.r == 0 && ra.r == -ESTALE && st == JOB_CANCELLED &&
             strstr(ra.e.msg, "is cancelled") != NULL))
            good++;
        else if (!msg[0])
            snprintf(msg, sizeof msg, "round %d: a=%d (%s) b=%d (%s)", i,
                     ra.r, ra.e.msg, rb.r, rb.e.msg);
        a_won += ra.r == 0;
    }
    pthread_barrier_destroy(&barrier);
    tap_ok(good == rounds,
           "CAS race on two connections: one wins, the other -ESTALE, %d "
           "of %d rounds %s",
           good, rounds, msg);
    tap_diag("connection a won %d of %d races", a_won, rounds);
    jobstore_close(a);
    jobstore_close(b);
}

/* Threads sharing one handle: transactions must not interleave. */
struct worker {
    struct jobstore *js;
    uint64_t base;
    int n;
    int failures;
    struct err e;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    int i;

    for (i = 0; i < w->n; i++) {
        char id[JOBSTORE_ID_LEN + 1];
        struct job_update done = { .set = JOB_UPDATE_EXIT_STATUS,
                                   .exit_status = 0 };
        uint64_t n = w->base + (uint64_t)i;

        make_id(id, n);
        if (insert_n(w->js, n, "shared", &w->e) != 0 ||
            jobstore_transition(w->js, id, JOB_QUEUED, JOB_RUNNING, NULL,
                                &w->e) != 0 ||
            jobstore_transition(w->js, id, JOB_RUNNING, JOB_COMPLETING,
                                &done, &w->e) != 0 ||
            jobstore_set_flag(w->js, id, "recorded", true, &w->e) != 0 ||
            jobstore_transition(w->js, id, JOB_COMPLETING, JOB_SUCCEEDED,
                                NULL, &w->e) != 0)
            w->failures++;
    }
    return NULL;
}

static int check_shared(void *arg, const struct job_row *row)
{
    int *bad = arg;

    if (row->state != JOB_SUCCEEDED || !row->recorded ||
        row->exit_status != 0)
        (*bad)++;
    return 0;
}

static void test_threads(struct jobstore *js)
{
    enum { THREADS = 4 };
    struct worker w[THREADS];
    pthread_t t[THREADS];
    int per = under_valgrind ? 10 : 50, i, failures = 0, bad = 0;
    struct job_filter f = { .tenant = "shared" };
    uint64_t n = 0;
    struct err e = { 0, "" };

    for (i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ js, 0x7000 + 0x100 * (uint64_t)i, per, 0,
                                { 0, "" } };
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        failures += w[i].failures;
        if (w[i].failures)
            tap_diag("thread %d: %s", i, w[i].e.msg);
    }
    tap_is_int(failures, 0, "threads sharing a handle: no call failed");
    jobstore_count(js, "shared", JOB_STATE_BIT(JOB_SUCCEEDED), &n, &e);
    tap_is_int(n, THREADS * per, "every job of every thread succeeded");
    jobstore_list(js, &f, check_shared, &bad, &e);
    tap_is_int(bad, 0, "and each has its exit status and recorded flag");
}

static void test_flags(struct jobstore *js)
{
    char id[JOBSTORE_ID_LEN + 1];
    struct job_row got;
    struct hist h;
    struct err e = { 0, "" };
    int r;

    make_id(id, 0x8001);
    make_job_in(js, 0x8001, "acme", JOB_RUNNING, &e);
    r = jobstore_set_flag(js, id, "cancel_requested", true, &e);
    r = r ? r : jobstore_get(js, id, &got, &e);
    tap_ok(r == 0 && got.cancel_requested && !got.recorded &&
               got.state == JOB_RUNNING,
           "cancel_requested set, nothing else (%s)", e.msg);
    if (r == 0)
        job_row_free(&got);
    r = jobstore_set_flag(js, id, "recorded", true, &e);
    r = r ? r : jobstore_set_flag(js, id, "cancel_requested", false, &e);
    r = r ? r : jobstore_get(js, id, &got, &e);
    tap_ok(r == 0 && !got.cancel_requested && got.recorded,
           "recorded set, cancel_requested cleared (%s)", e.msg);
    if (r == 0)
        job_row_free(&got);
    history(js, id, &h);
    tap_is_int(h.n, 2, "flags add no history row");
    r = jobstore_set_flag(js, id, "state", true, &e);
    tap_ok(r == -EINVAL && strstr(e.msg, "state") != NULL,
           "another column is not a flag (%s)", e.msg);
    r = jobstore_set_flag(js, id, NULL, true, &e);
    tap_ok(r == -EINVAL, "no flag name (%s)", e.msg);
    r = jobstore_set_flag(js, "0000000000badbad", "recorded", true, &e);
    tap_ok(r == -ENOENT, "unknown job (%s)", e.msg);
}

/* --- lists and counts ------------------------------------------------ */

#define MAX_LISTED 256

struct listed {
    size_t n;
    char id[MAX_LISTED][JOBSTORE_ID_LEN + 1];
    int64_t seq[MAX_LISTED];
    int stop_after;   /* return 42 after this many; 0: never */
    struct jobstore *js;
    int reentry_failures;
};

static int collect(void *arg, const struct job_row *row)
{
    struct listed *l = arg;

    if (l->n == MAX_LISTED)
        return -E2BIG;
    memcpy(l->id[l->n], row->id, sizeof l->id[0]);
    l->seq[l->n] = row->seq;
    l->n++;
    /* The store may be called from a callback. */
    if (l->js) {
        struct job_row again;
        struct err e = { 0, "" };

        if (jobstore_get(l->js, row->id, &again, &e) != 0 ||
            jobstore_set_flag(l->js, row->id, "cancel_requested",
                              row->cancel_requested, &e) != 0)
            l->reentry_failures++;
        else
            job_row_free(&again);
    }
    if (l->stop_after && (int)l->n == l->stop_after)
        return 42;
    return 0;
}

static bool ascending(const struct listed *l)
{
    size_t i;

    for (i = 1; i < l->n; i++)
        if (l->seq[i] <= l->seq[i - 1])
            return false;
    return true;
}

/* --- storage held by jobs -------------------------------------------- */

static int64_t stored_of(struct jobstore *js, const char *id)
{
    struct job_row row;
    struct err e = { 0, "" };
    int64_t n;

    if (jobstore_get(js, id, &row, &e) != 0)
        return -2;
    n = row.stored_bytes;
    job_row_free(&row);
    return n;
}

static uint64_t sum_of(struct jobstore *js, const char *tenant)
{
    struct err e = { 0, "" };
    uint64_t n = UINT64_MAX;

    jobstore_stored_bytes(js, tenant, &n, &e);
    return n;
}

struct by_tenant {
    size_t n;
    char tenant[8][16];
    uint64_t bytes[8];
};

static int on_tenant_bytes(void *arg, const char *tenant, uint64_t bytes)
{
    struct by_tenant *b = arg;

    if (b->n == 8)
        return -E2BIG;
    snprintf(b->tenant[b->n], sizeof b->tenant[0], "%s", tenant);
    b->bytes[b->n++] = bytes;
    return 0;
}

static int on_unknown_id(void *arg, const char *id)
{
    struct listed *l = arg;

    if (l->n == MAX_LISTED)
        return -E2BIG;
    memcpy(l->id[l->n++], id, JOBSTORE_ID_LEN + 1);
    return 0;
}

static void test_stored(const char *path)
{
    struct jobstore *js = open_or_bail(path);
    char a[JOBSTORE_ID_LEN + 1], b[JOBSTORE_ID_LEN + 1],
        c[JOBSTORE_ID_LEN + 1], d[JOBSTORE_ID_LEN + 1];
    struct job_update u = { .set = JOB_UPDATE_STORED_BYTES |
                                   JOB_UPDATE_ENDED_US,
                            .stored_bytes = 5000, .ended_us = 10 };
    struct job_row row;
    struct by_tenant bt = { 0 };
    struct listed l = { 0 };
    struct err e = { 0, "" };
    const char *ids[2];
    uint64_t bytes[2];
    int r;

    make_id(a, 0x9001);
    make_id(b, 0x9002);
    make_id(c, 0x9003);
    make_id(d, 0x9004);
    insert_n(js, 0x9001, "acme", &e);
    insert_n(js, 0x9002, "acme", &e);
    insert_n(js, 0x9003, "beta", &e);
    row = mkrow(0x9004, "acme");
    row.bundle_key = NULL;
    jobstore_insert(js, &row, &e);
    tap_ok(stored_of(js, a) == 1234 && stored_of(js, d) == 0,
           "a job holds its bundle_bytes from submission, none without a "
           "bundle (%s)", e.msg);
    tap_ok(sum_of(js, "acme") == 2468 && sum_of(js, "beta") == 1234 &&
               sum_of(js, "nobody") == 0,
           "the sum is per tenant (acme %" PRIu64 ")", sum_of(js, "acme"));

    r = jobstore_transition(js, a, JOB_QUEUED, JOB_RUNNING, NULL, &e);
    r = r ? r : jobstore_transition(js, a, JOB_RUNNING, JOB_FAILED, &u, &e);
    tap_ok(r == 0 && stored_of(js, a) == 5000 && sum_of(js, "acme") == 6234,
           "a transition sets what the job holds, its outputs and log "
           "counted (%s)", e.msg);
    u.stored_bytes = (uint64_t)INT64_MAX + 1;
    r = jobstore_transition(js, b, JOB_QUEUED, JOB_CANCELLED, &u, &e);
    tap_ok(r == -ERANGE && state_of(js, b) == JOB_QUEUED,
           "stored_bytes past INT64_MAX is refused (%s)", e.msg);

    r = jobstore_files_removed(js, a, JOBSTORE_BUNDLE_REMOVED, &e);
    tap_ok(r == 0 && stored_of(js, a) == 5000 - 1234 &&
               jobstore_get(js, a, &row, &e) == 0 && row.bundle_key == NULL,
           "its bundle removed: bundle_key cleared, bundle_bytes no longer "
           "counted (%" PRId64 ")", stored_of(js, a));
    if (r == 0)
        job_row_free(&row);
    r = jobstore_files_removed(js, a, JOBSTORE_BUNDLE_REMOVED, &e);
    tap_ok(r == 0 && stored_of(js, a) == 5000 - 1234,
           "removing it twice counts it off once");
    r = jobstore_files_removed(js, b, JOBSTORE_BUNDLE_MISSING, &e);
    tap_ok(r == 0 && stored_of(js, b) == 1234 &&
               jobstore_get(js, b, &row, &e) == 0 && row.bundle_key == NULL,
           "a bundle found missing is not counted off again");
    if (r == 0)
        job_row_free(&row);
    r = jobstore_files_removed(js, a, JOBSTORE_ALL_REMOVED, &e);
    tap_ok(r == 0 && stored_of(js, a) == 0 && sum_of(js, "acme") == 1234,
           "its log and outputs removed: it holds nothing");
    r = jobstore_files_removed(js, "00000000000bad00", JOBSTORE_ALL_REMOVED,
                               &e);
    tap_ok(r == -ENOENT, "an unknown job (%s)", e.msg);

    jobstore_stored_by_tenant(js, on_tenant_bytes, &bt, &e);
    tap_ok(bt.n == 2 && strcmp(bt.tenant[0], "acme") == 0 &&
               bt.bytes[0] == 1234 && strcmp(bt.tenant[1], "beta") == 0 &&
               bt.bytes[1] == 1234,
           "every tenant's sum, in name order (%zu)", bt.n);

    r = jobstore_transition(js, c, JOB_QUEUED, JOB_RUNNING, NULL, &e);
    r = r ? r : jobstore_stored_forget(js, JOB_STATE_BIT(JOB_RUNNING), &e);
    tap_ok(r == 0 && stored_of(js, c) == -1 && stored_of(js, b) == 1234 &&
               sum_of(js, "beta") == 0,
           "running jobs forgotten: not known, counting nothing (%s)",
           e.msg);
    r = jobstore_stored_unknown(js, on_unknown_id, &l, &e);
    tap_ok(r == 0 && l.n == 1 && strcmp(l.id[0], c) == 0,
           "the jobs not known are listed (%zu)", l.n);
    ids[0] = c;
    bytes[0] = 777;
    ids[1] = "0000000000000bad";
    bytes[1] = 1;
    r = jobstore_stored_set(js, ids, bytes, 2, &e);
    tap_ok(r == 0 && stored_of(js, c) == 777 && sum_of(js, "beta") == 777,
           "... and set in one go, an unknown id skipped (%s)", e.msg);
    tap_ok(jobstore_stored_forget(js, 0, &e) == -EINVAL,
           "forgetting no state is refused");
    jobstore_close(js);
}

/* A store of schema version 2, from before jobs' storage was counted:
 * opened, its jobs are there and not known, to be counted. */
static void test_migrate_v2(const char *path)
{
    struct jobstore *js = open_or_bail(path);
    char id[JOBSTORE_ID_LEN + 1];
    struct listed l = { 0 };
    struct err e = { 0, "" };
    int v = -1, r;

    make_id(id, 0xa001);
    insert_n(js, 0xa001, "acme", &e);
    jobstore_close(js);
    r = sql_exec(path, "DROP TABLE idempotency_keys; "
                       "DROP INDEX jobs_tenant_stored; "
                       "ALTER TABLE jobs DROP COLUMN stored_bytes; "
                       "PRAGMA user_version = 2");
    tap_ok(r == SQLITE_OK, "the store taken back to version 2 (%d)", r);
    js = open_or_bail(path);
    sql_int(path, "PRAGMA user_version", &v);
    tap_is_int(v, JOBSTORE_SCHEMA_VERSION, "opened, it is migrated");
    tap_ok(stored_of(js, id) == -1 && sum_of(js, "acme") == 0 &&
               jobstore_stored_unknown(js, on_unknown_id, &l, &e) == 0 &&
               l.n == 1,
           "its job's storage is not known, and listed to be counted");
    r = insert_n(js, 0xa002, "acme", &e);
    tap_ok(r == 0 && sum_of(js, "acme") == 1234,
           "a new job is counted (%s)", e.msg);
    jobstore_close(js);
}

static void test_list_count(const char *path)
{
    static const char *const tenants[] = { "t-a", "t-b", "t-c" };
    static const enum job_state states[] = {
        JOB_QUEUED, JOB_RUNNING, JOB_QUEUED, JOB_SUCCEEDED, JOB_FAILED,
        JOB_QUEUED, JOB_COMPLETING, JOB_CANCELLED, JOB_REJECTED, JOB_TIMEOUT,
    };
    struct jobstore *js = open_or_bail(path);
    struct job_filter f;
    struct listed l, page, all;
    uint64_t n, want;
    struct err e = { 0, "" };
    int i, r, pages = 0, made = 0;

    /* 30 jobs: tenant i % 3, state states[i % 10]. */
    for (i = 0; i < 30; i++)
        made += make_job_in(js, 0x9000 + (uint64_t)i, tenants[i % 3],
                            states[i % 10], &e) == 0;
    tap_is_int(made, 30, "30 jobs in assorted states");

    memset(&all, 0, sizeof all);
    r = jobstore_list(js, NULL, collect, &all, &e);
    tap_ok(r == 0 && all.n == 30 && ascending(&all),
           "list all: 30 in seq order (%s)", e.msg);
    {
        char first[JOBSTORE_ID_LEN + 1], last[JOBSTORE_ID_LEN + 1];

        make_id(first, 0x9000);
        make_id(last, 0x9000 + 29);
        tap_ok(all.n == 30 && strcmp(all.id[0], first) == 0 &&
                   strcmp(all.id[29], last) == 0,
               "in submission order");
    }

    memset(&l, 0, sizeof l);
    f = (struct job_filter){ .tenant = "t-b" };
    r = jobstore_list(js, &f, collect, &l, &e);
    tap_ok(r == 0 && l.n == 10 && ascending(&l),
           "tenant filter: 10 (%zu)", l.n);

    memset(&l, 0, sizeof l);
    f = (struct job_filter){ .states = JOB_STATE_BIT(JOB_QUEUED) };
    r = jobstore_list(js, &f, collect, &l, &e);
    tap_ok(r == 0 && l.n == 9 && ascending(&l), "queued: 9 (%zu)", l.n);

    memset(&l, 0, sizeof l);
    f = (struct job_filter){ .states = JOB_STATES_TERMINAL, .tenant = "t-a" };
    r = jobstore_list(js, &f, collect, &l, &e);
    /* t-a has i = 0, 3, ..., 27: states[i % 10] for those i. */
    want = 0;
    for (i = 0; i < 30; i += 3)
        want += job_state_terminal(states[i % 10]);
    tap_ok(r == 0 && l.n == want && ascending(&l),
           "terminal jobs of t-a: %" PRIu64 " (%zu)", want, l.n);

    memset(&l, 0, sizeof l);
    f = (struct job_filter){ .tenant = "nobody" };
    r = jobstore_list(js, &f, collect, &l, &e);
    tap_ok(r == 0 && l.n == 0, "an unknown tenant lists nothing");

    /* Paging: pages of 7 after the last seq seen cover the list once. */
    memset(&page, 0, sizeof page);
    f = (struct job_filter){ .limit = 7 };
    for (;;) {
        size_t before = page.n;

        r = jobstore_list(js, &f, collect, &page, &e);
        if (r != 0 || page.n == before)
            break;
        pages++;
        f.after_seq = page.seq[page.n - 1];
        if (page.n - before > 7)
            break;
    }
    tap_ok(r == 0 && pages == 5 && page.n == 30 &&
               memcmp(page.id, all.id, sizeof all.id[0] * 30) == 0,
           "pages of 7: 5 pages, the whole list once (%d pages, %zu jobs)",
           pages, page.n);

    memset(&l, 0, sizeof l);
    f = (struct job_filter){ .states = JOB_STATE_BIT(JOB_QUEUED),
                             .after_seq = all.seq[4], .limit = 2 };
    r = jobstore_list(js, &f, collect, &l, &e);
    tap_ok(r == 0 && l.n == 2 && l.seq[0] > all.seq[4],
           "filter, after and limit together");

    memset(&l, 0, sizeof l);
    l.stop_after = 3;
    r = jobstore_list(js, NULL, collect, &l, &e);
    tap_ok(r == 42 && l.n == 3, "a callback's nonzero return stops the walk "
           "and is returned (%d)", r);

    memset(&l, 0, sizeof l);
    l.js = js;
    r = jobstore_list(js, NULL, collect, &l, &e);
    tap_ok(r == 0 && l.n == 30 && l.reentry_failures == 0,
           "a callback may read and write the store (%d failures)",
           l.reentry_failures);

    f = (struct job_filter){ .states = 1u << 12 };
    r = jobstore_list(js, &f, collect, &l, &e);
    tap_ok(r == -EINVAL, "a mask with no state is refused (%s)", e.msg);
    r = jobstore_list(js, NULL, NULL, NULL, &e);
    tap_ok(r == -EINVAL, "no callback is refused (%s)", e.msg);

    /* Counts. */
    r = jobstore_count(js, NULL, 0, &n, &e);
    tap_ok(r == 0 && n == 30, "count all: 30 (%" PRIu64 ")", n);
    r = jobstore_count(js, NULL, JOB_STATES_ALL, &n, &e);
    tap_ok(r == 0 && n == 30, "count, every state: 30 (%" PRIu64 ")", n);
    for (i = 0; i < 3; i++) {
        int j;

        want = 0;
        for (j = i; j < 30; j += 3)
            want += states[j % 10] == JOB_QUEUED;
        r = jobstore_count(js, tenants[i], JOB_STATE_BIT(JOB_QUEUED), &n, &e);
        tap_ok(r == 0 && n == want,
               "queued of %s: %" PRIu64 " (got %" PRIu64 ")", tenants[i], want,
               n);
    }
    r = jobstore_count(js, NULL,
                       JOB_STATE_BIT(JOB_RUNNING) |
                           JOB_STATE_BIT(JOB_COMPLETING),
                       &n, &e);
    tap_ok(r == 0 && n == 6, "running or completing: 6 (%" PRIu64 ")", n);
    r = jobstore_count(js, "nobody", 0, &n, &e);
    tap_ok(r == 0 && n == 0, "an unknown tenant counts 0");
    r = jobstore_count(js, NULL, 1u << 31, &n, &e);
    tap_ok(r == -EINVAL, "count: a bad mask is refused (%s)", e.msg);
    jobstore_close(js);
}

/* Seq is the order of insertion, not of the clock, and not of the ids. */
static void test_fifo(const char *path)
{
    struct jobstore *js = open_or_bail(path);
    struct listed l;
    int i, n = 100, ok = 1;
    struct err e = { 0, "" };

    for (i = 0; i < n; i++) {
        /* Ids descending, all submitted in the same microsecond. */
        struct job_row row = mkrow(0xa000 + (uint64_t)(n - i), "fifo");

        row.submitted_us = 1700000000000000;
        if (jobstore_insert(js, &row, &e) != 0)
            ok = 0;
    }
    memset(&l, 0, sizeof l);
    jobstore_list(js, &(struct job_filter){ .tenant = "fifo" }, collect, &l,
                  &e);
    for (i = 0; ok && i < n && (size_t)i < l.n; i++) {
        char want[JOBSTORE_ID_LEN + 1];

        make_id(want, 0xa000 + (uint64_t)(n - i));
        if (strcmp(l.id[i], want) != 0 ||
            (i > 0 && l.seq[i] != l.seq[i - 1] + 1))
            ok = 0;
    }
    tap_ok(ok && l.n == (size_t)n,
           "%d jobs in one microsecond list in insertion order, seq +1 each",
           n);
    jobstore_close(js);
}

/* --- reconcile --------------------------------------------------------- */

static void test_reconcile(const char *path)
{
    struct jobstore *js = open_or_bail(path);
    const int64_t now = 1800000000000000;
    char id[9][JOBSTORE_ID_LEN + 1];
    struct job_row got;
    uint64_t requeued = 99, failed = 99, n;
    struct hist h;
    struct err e = { 0, "" };
    int i, r;

    for (i = 0; i < 9; i++)
        make_id(id[i], 0xb000 + (uint64_t)i);
    /* 0 queued; 1 running, requeue; 2 running; 3 running, requeue,
     * cancel requested; 4 completing; 5 completing, recorded; 6 succeeded;
     * 7 completing, requeue (requeue applies to running only); 8 queued,
     * requeue. */
    for (i = 0; i < 9; i++) {
        struct job_row row = mkrow(0xb000 + (uint64_t)i, "rec");
        static const enum job_state target[9] = {
            JOB_QUEUED, JOB_RUNNING, JOB_RUNNING, JOB_RUNNING, JOB_COMPLETING,
            JOB_COMPLETING, JOB_SUCCEEDED, JOB_COMPLETING, JOB_QUEUED,
        };
        enum job_state cur = JOB_QUEUED;
        size_t k;

        row.requeue = i == 1 || i == 3 || i == 7 || i == 8;
        jobstore_insert(js, &row, &e);
        for (k = 0; k < paths[target[i]].n; k++) {
            struct job_update u = {
                .set = JOB_UPDATE_STARTED_US | JOB_UPDATE_DEVICES,
                .started_us = 500,
                .devices = "[{\"id\":\"sim-0\",\"model\":\"SIM\","
                           "\"plugin\":\"accelerator/sim\"}]",
            };

            jobstore_transition(js, id[i], cur, paths[target[i]].s[k],
                                paths[target[i]].s[k] == JOB_RUNNING ? &u
                                                                     : NULL,
                                &e);
            cur = paths[target[i]].s[k];
        }
    }
    jobstore_set_flag(js, id[3], "cancel_requested", true, &e);
    jobstore_set_flag(js, id[5], "recorded", true, &e);

    err_clear(&e);
    r = jobstore_reconcile(js, now, &requeued, &failed, &e);
    tap_ok(r == 0 && requeued == 1 && failed == 4,
           "reconcile: 1 requeued, 4 failed (%d: %" PRIu64 ", %" PRIu64
           "; %s)", r, requeued, failed, e.msg);

    tap_is_int(state_of(js, id[0]), JOB_QUEUED, "queued stays queued");
    r = jobstore_get(js, id[1], &got, &e);
    tap_ok(r == 0 && got.state == JOB_QUEUED && got.started_us == 0 &&
               strcmp(got.devices, "[]") == 0 && got.ended_us == 0 &&
               strcmp(got.reason, "node restarted; requeued") == 0,
           "running with requeue: queued again, started_us 0, no devices");
    if (r == 0)
        job_row_free(&got);
    r = history(js, id[1], &h);
    tap_ok(r == 0 && history_consistent(&h, JOB_QUEUED) && h.n == 3 &&
               h.t[2].from == JOB_RUNNING && h.t[2].time_us == now,
           "with its history row at now");
    for (i = 2; i <= 4; i++) {
        r = jobstore_get(js, id[i], &got, &e);
        tap_ok(r == 0 && got.state == JOB_FAILED && got.ended_us == now &&
                   strcmp(got.reason, "node restarted") == 0,
               "job %d (%s) failed \"node restarted\" at now", i,
               i == 2   ? "running"
               : i == 3 ? "running, requeue, cancel requested"
                        : "completing");
        if (r == 0)
            job_row_free(&got);
        r = history(js, id[i], &h);
        tap_ok(r == 0 && history_consistent(&h, JOB_FAILED) &&
                   h.t[h.n - 1].time_us == now &&
                   strcmp(h.reason[h.n - 1], "node restarted") == 0,
               "with its history row");
    }
    tap_is_int(state_of(js, id[5]), JOB_COMPLETING,
               "completing and recorded: left for the daemon to finish");
    tap_is_int(state_of(js, id[6]), JOB_SUCCEEDED, "succeeded untouched");
    tap_is_int(state_of(js, id[7]), JOB_FAILED,
               "completing with requeue: failed (only running requeues)");
    tap_is_int(state_of(js, id[8]), JOB_QUEUED, "queued with requeue stays");

    jobstore_count(js, NULL, JOB_STATE_BIT(JOB_RUNNING), &n, &e);
    tap_is_int(n, 0, "nothing is running after reconcile");
    r = jobstore_reconcile(js, now + 1, &requeued, &failed, &e);
    tap_ok(r == 0 && requeued == 0 && failed == 0,
           "a second reconcile changes nothing");
    r = jobstore_reconcile(js, 0, NULL, NULL, &e);
    tap_ok(r == 0, "counts may be NULL, now may be 0 (%s)", e.msg);
    jobstore_close(js);
}

/* --- idempotency keys ---------------------------------------------------- */

static void test_keys(struct jobstore *js)
{
    static const char sha_a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    static const char sha_b[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
                                "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    char id[JOBSTORE_ID_LEN + 1], sha[65], long_key[300];
    struct job_row row, other, beta, again;
    struct err e = { 0, "" };
    int r;

    memset(long_key, 'k', 255);
    long_key[255] = '\0';
    tap_ok(jobstore_key_valid("a") && jobstore_key_valid(long_key) &&
               jobstore_key_valid(" ~ x"),
           "keys of 1 and 255 printable ASCII bytes are valid");
    long_key[255] = 'k';
    long_key[256] = '\0';
    tap_ok(!jobstore_key_valid(NULL) && !jobstore_key_valid("") &&
               !jobstore_key_valid(long_key) &&
               !jobstore_key_valid("a\tb") && !jobstore_key_valid("a\x7f") &&
               !jobstore_key_valid("caf\xc3\xa9"),
           "empty, 256 bytes, a control byte, DEL and UTF-8 are not");

    row = mkrow(0x2a01, "acme");
    err_clear(&e);
    r = jobstore_insert_keyed(js, &row, "order-1", sha_a, &e);
    tap_ok(r == 0, "insert with a key (%s)", e.msg);
    r = jobstore_key_find(js, "acme", "order-1", id, sha, &e);
    tap_ok(r == 0 && strcmp(id, row.id) == 0 && strcmp(sha, sha_a) == 0,
           "the key finds the job and its request's SHA-256 (%s)", e.msg);

    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    r = jobstore_key_find(js, "beta", "order-1", id, sha, &e);
    tap_ok(r == -ENOENT && id[0] == 'x',
           "another tenant does not have it (%d: %s)", r, e.msg);
    r = jobstore_key_find(js, "acme", "ORDER-1", id, sha, &e);
    tap_is_int(r, -ENOENT, "keys are compared byte for byte");

    other = mkrow(0x2a02, "acme");
    err_clear(&e);
    r = jobstore_insert_keyed(js, &other, "order-1", sha_b, &e);
    tap_ok(r == -EEXIST && strstr(e.msg, "order-1") != NULL,
           "a second job with the tenant's key is refused (%d: %s)", r,
           e.msg);
    tap_is_int(state_of(js, other.id), JOB_STATE_NONE,
               "... and is not in the store, nor its history");

    beta = mkrow(0x2a03, "beta");
    err_clear(&e);
    r = jobstore_insert_keyed(js, &beta, "order-1", sha_a, &e);
    tap_ok(r == 0 && jobstore_key_find(js, "beta", "order-1", id, sha,
                                       &e) == 0 &&
               strcmp(id, beta.id) == 0,
           "another tenant's equal key is its own (%s)", e.msg);

    again = mkrow(0x2a01, "acme");
    err_clear(&e);
    r = jobstore_insert_keyed(js, &again, "order-2", sha_a, &e);
    tap_ok(r == -EEXIST &&
               jobstore_key_find(js, "acme", "order-2", id, sha, &e) ==
                   -ENOENT,
           "a taken job id stores no key either (%s)", e.msg);

    other = mkrow(0x2a04, "acme");
    r = jobstore_insert_keyed(js, &other, "a\nb", sha_a, &e);
    tap_ok(r == -EINVAL && state_of(js, other.id) == JOB_STATE_NONE,
           "an invalid key is refused, and no job made (%s)", e.msg);
    r = jobstore_insert_keyed(js, &other, "ok", "not-a-sha", &e);
    tap_ok(r == -EINVAL && state_of(js, other.id) == JOB_STATE_NONE,
           "so is a request hash that is not 64 hex digits (%s)", e.msg);

    err_clear(&e);
    r = jobstore_key_forget(js, row.id, &e);
    tap_ok(r == 0 && jobstore_key_find(js, "acme", "order-1", id, sha, &e) ==
                         -ENOENT &&
               state_of(js, row.id) == JOB_QUEUED,
           "forgetting the key leaves the job (%s)", e.msg);
    tap_is_int(jobstore_key_forget(js, row.id, &e), 0,
               "forgetting it again, or a job without a key, is no error");
    err_clear(&e);
    r = jobstore_insert_keyed(js, &other, "order-1", sha_b, &e);
    tap_ok(r == 0 && jobstore_key_find(js, "acme", "order-1", id, sha, &e) ==
                         0 &&
               strcmp(id, other.id) == 0 && strcmp(sha, sha_b) == 0,
           "then the key may stand for a new job (%s)", e.msg);
}

/* --- durability under SIGKILL ------------------------------------------- */

/* What the child does to job k: a path through the state machine. */
static const enum job_state kill_plan[5][6] = {
    { JOB_RUNNING, JOB_COMPLETING, JOB_SUCCEEDED },
    { JOB_RUNNING, JOB_QUEUED, JOB_RUNNING, JOB_COMPLETING, JOB_FAILED },
    { JOB_CANCELLED },
    { JOB_RUNNING, JOB_COMPLETING, JOB_TIMEOUT },
    { JOB_REJECTED },
};
static const size_t kill_plan_len[5] = { 3, 5, 1, 3, 1 };

#define KILL_JOBS_MAX 4096

static uint64_t kill_job_n(int iter, int k)
{
    return ((uint64_t)0xc0 << 40) | ((uint64_t)iter << 20) | (uint64_t)k;
}

/* Odd jobs are inserted with an idempotency key. */
static const char kill_sha[] = "0123456789abcdef0123456789abcdef"
                               "0123456789abcdef0123456789abcdef";

static void kill_key(char *buf, size_t len, int iter, int k)
{
    snprintf(buf, len, "retry-%d-%d", iter, k);
}

/* The child: inserts and walks jobs, reporting each success as it
 * returns, until killed. */
static void kill_child(const char *path, int iter, int fd)
{
    struct jobstore *js = NULL;
    struct err e = { 0, "" };
    int k;

    if (jobstore_open(path, &js, &e) != 0) {
        dprintf(fd, "E open: %s\n", e.msg);
        _exit(2);
    }
    for (k = 0; k < KILL_JOBS_MAX; k++) {
        char id[JOBSTORE_ID_LEN + 1];
        enum job_state cur = JOB_QUEUED;
        const enum job_state *plan = kill_plan[k % 5];
        size_t i;

        struct job_row row = mkrow(kill_job_n(iter, k), "crash");
        char key[64];

        make_id(id, kill_job_n(iter, k));
        kill_key(key, sizeof key, iter, k);
        if ((k % 2 ? jobstore_insert_keyed(js, &row, key, kill_sha, &e)
                   : jobstore_insert(js, &row, &e)) != 0) {
            dprintf(fd, "E insert %s: %s\n", id, e.msg);
            _exit(3);
        }
        dprintf(fd, "I %d\n", k);
        for (i = 0; i < kill_plan_len[k % 5]; i++) {
            if (jobstore_transition(js, id, cur, plan[i], NULL, &e) != 0) {
                dprintf(fd, "E transition %s: %s\n", id, e.msg);
                _exit(3);
            }
            cur = plan[i];
            dprintf(fd, "T %d %zu\n", k, i + 1);
        }
    }
    jobstore_close(js);
    _exit(0);
}

struct reported {
    bool inserted;
    size_t steps; /* transitions reported done */
};

static int check_job(void *arg, const struct job_row *row)
{
    struct jobstore *js = ((void **)arg)[0];
    int *bad = ((void **)arg)[1];
    struct hist h;

    if (history(js, row->id, &h) != 0 || !history_consistent(&h, row->state))
        (*bad)++;
    return 0;
}

static void test_sigkill(unsigned seed)
{
    int iters = under_valgrind ? 12 : 40, iter;
    int lost = 0, inconsistent = 0, early = 0, errors = 0, killed = 0;
    int keyless = 0, keyed = 0;
    long total_jobs = 0, total_steps = 0;
    static struct reported rep[KILL_JOBS_MAX];
    char path[600], msg[ERR_MSG_MAX + 256] = "";
    struct err e = { 0, "" };

    db_path(path, sizeof path, "sigkill");
    srand(seed);
    for (iter = 0; iter < iters; iter++) {
        int fds[2], status, target, lines, k;
        int64_t deadline, extra_us;
        bool dead;
        char *buf = NULL;
        size_t len = 0, cap = 0;
        struct jobstore *js;
        pid_t pid;

        if (pipe(fds) != 0)
            break;
        fflush(stdout);
        pid = fork();
        if (pid < 0)
            break;
        if (pid == 0) {
            close(fds[0]);
            kill_child(path, iter, fds[1]);
        }
        close(fds[1]);
        /*
         * The kill point is counted in reports, not in time, so that it
         * falls anywhere in the child's work however loaded the machine
         * is: after `target` lines, plus up to 2 ms.  A target of 0 kills
         * during open (the first time, while the schema is created).
         */
        target = rand() % 64;
        extra_us = rand() % 2000;
        deadline = target == 0 ? mono_us() + extra_us : INT64_MAX;
        lines = 0;
        dead = false;
        for (;;) {
            struct pollfd p = { fds[0], POLLIN, 0 };
            int64_t left = deadline - mono_us();
            ssize_t got, i;

            if (!dead && left <= 0) {
                if (kill(pid, SIGKILL) == 0)
                    killed++;
                dead = true;
            }
            if (poll(&p, 1, dead || deadline == INT64_MAX
                                ? -1
                                : (int)((left + 999) / 1000)) <= 0)
                continue;
            if (cap - len < 4096) {
                cap = cap ? 2 * cap : 65536;
                buf = realloc(buf, cap);
                if (!buf)
                    abort();
            }
            got = read(fds[0], buf + len, cap - len - 1);
            if (got <= 0)
                break; /* EOF: the child is gone */
            for (i = 0; i < got; i++)
                lines += buf[len + (size_t)i] == '\n';
            len += (size_t)got;
            if (deadline == INT64_MAX && lines >= target)
                deadline = mono_us() + extra_us;
        }
        close(fds[0]);
        waitpid(pid, &status, 0);
        if (!buf)
            buf = calloc(1, 1);
        buf[len] = '\0';

        memset(rep, 0, sizeof rep);
        {
            char *line = buf, *nl;

            /* A last line without its newline was cut by the kill. */
            while ((nl = strchr(line, '\n')) != NULL) {
                size_t step;

                *nl = '\0';
                if (sscanf(line, "I %d", &k) == 1 && k >= 0 &&
                    k < KILL_JOBS_MAX)
                    rep[k].inserted = true;
                else if (sscanf(line, "T %d %zu", &k, &step) == 2 && k >= 0 &&
                         k < KILL_JOBS_MAX)
                    rep[k].steps = step;
                else if (line[0] == 'E') {
                    errors++;
                    if (!msg[0])
                        snprintf(msg, sizeof msg, "child: %s", line);
                }
                line = nl + 1;
            }
        }
        free(buf);

        /* The daemon's restart: open, check, reconcile. */
        err_clear(&e);
        js = NULL;
        if (jobstore_open(path, &js, &e) != 0) {
            errors++;
            if (!msg[0])
                snprintf(msg, sizeof msg, "reopen: %s", e.msg);
            continue;
        }
        for (k = 0; k < KILL_JOBS_MAX; k++) {
            char id[JOBSTORE_ID_LEN + 1];
            const enum job_state *plan = kill_plan[k % 5];
            struct job_row row;
            struct hist h;
            size_t i;
            bool ok;

            make_id(id, kill_job_n(iter, k));
            if (k % 2) {
                char key[64], kid[JOBSTORE_ID_LEN + 1], ksha[65];
                bool job = jobstore_get(js, id, &row, &e) == 0;
                int kr;

                if (job)
                    job_row_free(&row);
                kill_key(key, sizeof key, iter, k);
                kr = jobstore_key_find(js, "crash", key, kid, ksha, &e);
                keyed += job;
                if (job != (kr == 0) ||
                    (kr == 0 && strcmp(kid, id) != 0)) {
                    keyless++;
                    if (!msg[0])
                        snprintf(msg, sizeof msg, "iteration %d: job %s "
                                 "%s, its key %s", iter, id,
                                 job ? "is there" : "is not",
                                 kr == 0 ? "is" : "is not");
                }
            }
            if (!rep[k].inserted) {
                /* Its insert may have committed just before the kill, but
                 * then it has nothing after its submission. */
                if (jobstore_get(js, id, &row, &e) == 0) {
                    if (history(js, id, &h) != 0 ||
                        !history_consistent(&h, row.state) || h.n > 2)
                        inconsistent++;
                    job_row_free(&row);
                }
                continue;
            }
            total_jobs++;
            total_steps += (long)rep[k].steps;
            if (jobstore_get(js, id, &row, &e) != 0) {
                lost++;
                if (!msg[0])
                    snprintf(msg, sizeof msg, "iteration %d: job %s lost: %s",
                             iter, id, e.msg);
                continue;
            }
            ok = history(js, id, &h) == 0 &&
                 history_consistent(&h, row.state);
            /* Every reported step is there, at most one more (the one in
             * flight), and they follow the plan. */
            ok = ok && h.n >= rep[k].steps + 1 && h.n <= rep[k].steps + 2 &&
                 h.n - 1 <= kill_plan_len[k % 5];
            for (i = 1; ok && i < h.n; i++)
                ok = h.t[i].to == plan[i - 1];
            if (!ok) {
                inconsistent++;
                if (!msg[0])
                    snprintf(msg, sizeof msg, "iteration %d: job %s is %s "
                             "with %zu history rows, %zu steps reported",
                             iter, id, job_state_name(row.state), h.n,
                             rep[k].steps);
            }
            if (h.n > rep[k].steps + 1)
                early++;
            job_row_free(&row);
        }
        {
            void *arg[2] = { js, &inconsistent };

            jobstore_list(js, NULL, check_job, arg, &e);
        }
        if (jobstore_reconcile(js, 0, NULL, NULL, &e) != 0) {
            errors++;
            if (!msg[0])
                snprintf(msg, sizeof msg, "reconcile: %s", e.msg);
        }
        jobstore_close(js);
    }
    tap_ok(iters == iter && errors == 0,
           "%d writers killed at random points, no errors %s", killed, msg);
    tap_ok(lost == 0, "no job whose insert returned 0 was lost (%ld jobs) %s",
           total_jobs, lost ? msg : "");
    tap_ok(inconsistent == 0, "every job's state is the end of its history, "
           "which holds every reported transition (%ld) %s",
           total_steps, inconsistent ? msg : "");
    tap_ok(keyless == 0, "a job inserted with a key is there with its key, "
           "or neither is (%d keyed jobs) %s", keyed, keyless ? msg : "");
    tap_diag("%d transitions had committed but were not yet reported when "
             "the writer died", early);
}

/* --- performance -------------------------------------------------------- */

static void test_bench(void)
{
    const char *env = getenv("SURPLUS_JOBSTORE_BENCH_JOBS");
    int jobs = env && atoi(env) > 0 ? atoi(env) : under_valgrind ? 200 : 2000;
    int i, failures = 0;
    struct jobstore *js;
    char path[600];
    int64_t t0, t1;
    struct err e = { 0, "" };

    db_path(path, sizeof path, "bench");
    js = open_or_bail(path);
    t0 = mono_us();
    for (i = 0; i < jobs; i++) {
        char id[JOBSTORE_ID_LEN + 1];
        uint64_t n = 0xd00000 + (uint64_t)i;

        make_id(id, n);
        if (insert_n(js, n, "bench", &e) != 0 ||
            jobstore_transition(js, id, JOB_QUEUED, JOB_RUNNING, NULL, &e) ||
            jobstore_transition(js, id, JOB_RUNNING, JOB_COMPLETING, NULL,
                                &e) ||
            jobstore_transition(js, id, JOB_COMPLETING, JOB_SUCCEEDED, NULL,
                                &e))
            failures++;
    }
    t1 = mono_us();
    tap_is_int(failures, 0, "bench: every insert and transition succeeded");
    tap_diag("%d jobs, insert + 3 transitions each (%d durable commits): "
             "%.3f s, %.1f us per commit, %.0f jobs/s%s",
             jobs, 4 * jobs, (double)(t1 - t0) / 1e6,
             (double)(t1 - t0) / (4.0 * jobs),
             jobs / ((double)(t1 - t0) / 1e6),
             under_valgrind ? " (under valgrind)" : "");
    jobstore_close(js);
}

/* --- main ----------------------------------------------------------- */

static void rm_rf(const char *path)
{
    char cmd[700];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", path);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    const char *seed_env = getenv("SURPLUS_TEST_SEED");
    const char *vg = getenv("SURPLUS_VALGRIND");
    struct jobstore *js;
    char path[600];
    unsigned seed;

    under_valgrind = vg && *vg;
    seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10)
                    : (unsigned)time(NULL) ^ (unsigned)getpid();
    snprintf(dir, sizeof dir, "%s/surplus-jobstore.XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        tap_skip_all("cannot create a directory under %s", dir);
    tap_diag("seed %u (SURPLUS_TEST_SEED=%u repeats it)", seed, seed);

    test_states();
    test_open();
    test_version();
    test_migrate_keys();

    db_path(path, sizeof path, "main");
    js = open_or_bail(path);
    test_insert_get(js);
    test_strings(js);
    test_every_transition(js);
    test_update_fields(js);
    test_stale(js);
    test_batch(js);
    test_flags(js);
    test_keys(js);
    test_threads(js);
    jobstore_close(js);
    test_cas_race(path);

    db_path(path, sizeof path, "list");
    test_list_count(path);
    db_path(path, sizeof path, "fifo");
    test_fifo(path);
    db_path(path, sizeof path, "stored");
    test_stored(path);
    db_path(path, sizeof path, "v2");
    test_migrate_v2(path);
    db_path(path, sizeof path, "reconcile");
    test_reconcile(path);
    test_sigkill(seed);
    test_bench();

    rm_rf(dir);
    return tap_done();
}
