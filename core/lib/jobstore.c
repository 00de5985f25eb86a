/*
 * jobstore.c - the job store in SQLite.
 *
 * Two tables: `jobs`, one row per job, and `transitions`, the history of
 * every job (its submission included).  A job's row and its history row are
 * always written in the same transaction, so after a crash the state of a
 * job is the `to` of its last history row: no transition is ever half
 * applied.  The database runs in WAL mode with synchronous=FULL, which
 * makes each commit durable (an fsync of the WAL) before the call returns,
 * and lets readers go on while a writer commits.
 *
 * The seq of a job is its rowid, declared AUTOINCREMENT: SQLite then hands
 * out strictly increasing values that are never reused, even after the
 * newest job is deleted, and since inserts are serialised, seq order is
 * submission order whatever the clock says.
 *
 * States are stored by name, so that the file reads well in the sqlite3
 * shell and the enum may be renumbered.
 *
 * A third table, `idempotency_keys`, holds the tenants' idempotency keys,
 * each written in the transaction that inserts its job; UNIQUE (tenant,
 * key) makes a second job for one key impossible, whatever the daemon
 * does.
 */
#include "jobstore.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

static const char *const state_names[JOB_STATE_COUNT] = {
    [JOB_QUEUED] = "queued",
    [JOB_RUNNING] = "running",
    [JOB_COMPLETING] = "completing",
    [JOB_SUCCEEDED] = "succeeded",
    [JOB_FAILED] = "failed",
    [JOB_TIMEOUT] = "timeout",
    [JOB_CANCELLED] = "cancelled",
    [JOB_REJECTED] = "rejected",
};

/* allowed[from] is the set of states `from` may go to. */
static const unsigned allowed[JOB_STATE_COUNT] = {
    [JOB_QUEUED] = JOB_STATE_BIT(JOB_RUNNING) | JOB_STATE_BIT(JOB_CANCELLED) |
                   JOB_STATE_BIT(JOB_FAILED) | JOB_STATE_BIT(JOB_REJECTED),
    [JOB_RUNNING] = JOB_STATE_BIT(JOB_COMPLETING) | JOB_STATE_BIT(JOB_QUEUED) |
                    JOB_STATE_BIT(JOB_FAILED) | JOB_STATE_BIT(JOB_CANCELLED),
    [JOB_COMPLETING] = JOB_STATE_BIT(JOB_SUCCEEDED) |
                       JOB_STATE_BIT(JOB_FAILED) |
                       JOB_STATE_BIT(JOB_TIMEOUT) |
                       JOB_STATE_BIT(JOB_CANCELLED),
};

static bool state_valid(enum job_state s)
{
    return (int)s >= 0 && s < JOB_STATE_COUNT;
}

const char *job_state_name(enum job_state s)
{
    if (s == JOB_STATE_NONE)
        return "none";
    if (!state_valid(s))
        return "invalid";
    return state_names[s];
}

int job_state_parse(const char *name, enum job_state *ret)
{
    int i;

    if (!name)
        return -EINVAL;
    for (i = 0; i < JOB_STATE_COUNT; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *ret = (enum job_state)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool job_state_terminal(enum job_state s)
{
    return state_valid(s) && (JOB_STATES_TERMINAL & JOB_STATE_BIT(s)) != 0;
}

bool job_transition_allowed(enum job_state from, enum job_state to)
{
    return state_valid(from) && state_valid(to) &&
           (allowed[from] & JOB_STATE_BIT(to)) != 0;
}

bool jobstore_id_valid(const char *id)
{
    size_t i;

    if (!id)
        return false;
    for (i = 0; i < JOBSTORE_ID_LEN; i++) {
        char c = id[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return id[JOBSTORE_ID_LEN] == '\0';
}

bool jobstore_key_valid(const char *key)
{
    size_t n;

    if (!key)
        return false;
    for (n = 0; key[n]; n++)
        if (n >= JOBSTORE_KEY_MAX || key[n] < 0x20 || key[n] > 0x7e)
            return false;
    return n > 0;
}

void job_row_free(struct job_row *row)
{
    if (!row)
        return;
    free(row->tenant);
    free(row->name);
    free(row->devices);
    free(row->reason);
    free(row->bundle_key);
    free(row->model);
    free(row->record_id);
    memset(row, 0, sizeof *row);
}

/* --- schema ----------------------------------------------------------- */

#define STATE_LIST                                                         \
    "('queued', 'running', 'completing', 'succeeded', 'failed', "          \
    "'timeout', 'cancelled', 'rejected')"

/* The CHECKs keep a hand-edited file from holding what the code would
 * misread.  The indexes serve the scheduler (queued jobs in seq order),
 * per-tenant lists and quota counts, and a job's history. */
static const char schema_sql[] =
    "CREATE TABLE jobs ("
    "seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "id TEXT NOT NULL UNIQUE CHECK (length(id) = 16), "
    "tenant TEXT NOT NULL, "
    "name TEXT NOT NULL, "
    "state TEXT NOT NULL CHECK (state IN " STATE_LIST "), "
    "exit_status INTEGER NOT NULL, "
    "submitted_us INTEGER NOT NULL, "
    "started_us INTEGER NOT NULL, "
    "ended_us INTEGER NOT NULL, "
    "devices TEXT NOT NULL, "
    "reason TEXT, "
    "bundle_key TEXT, "
    "bundle_bytes INTEGER NOT NULL CHECK (bundle_bytes >= 0), "
    "gpus INTEGER NOT NULL, "
    "model TEXT NOT NULL, "
    "gpu_memory INTEGER NOT NULL, "
    "cpus INTEGER NOT NULL, "
    "memory INTEGER NOT NULL, "
    "walltime_ms INTEGER NOT NULL, "
    "requeue INTEGER NOT NULL CHECK (requeue IN (0, 1)), "
    "recorded INTEGER NOT NULL CHECK (recorded IN (0, 1)), "
    "cancel_requested INTEGER NOT NULL CHECK (cancel_requested IN (0, 1)));\n"
    "CREATE INDEX jobs_state_seq ON jobs (state, seq);\n"
    "CREATE INDEX jobs_tenant_state_seq ON jobs (tenant, state, seq);\n"
    "CREATE TABLE transitions ("
    "n INTEGER PRIMARY KEY, "
    "job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, "
    "from_state TEXT CHECK (from_state IS NULL OR from_state IN "
    STATE_LIST "), "
    "to_state TEXT NOT NULL CHECK (to_state IN " STATE_LIST "), "
    "time_us INTEGER NOT NULL, "
    "reason TEXT);\n"
    "CREATE INDEX transitions_job ON transitions (job_id, n);\n"
    "PRAGMA user_version = 1;";

/* Version 2: what a job ends as, persisted when it enters completing
 * (before its usage record is written), so that a restart finishes it
 * from there rather than running or failing it again. */
static const char migrate_v2_sql[] =
    "ALTER TABLE jobs ADD COLUMN outcome TEXT CHECK (outcome IS NULL OR "
    "outcome IN " STATE_LIST ");\n"
    "ALTER TABLE jobs ADD COLUMN record_id TEXT;\n"
    "PRAGMA user_version = 2;";

/* Version 3: the bytes each job holds in storage, which its tenant's
 * storage_quota counts.  Jobs from before are not known (NULL) and are
 * counted from storage by the daemon's next start.  The partial index
 * holds only jobs with files in storage, so that a tenant's sum reads
 * those and not its whole history. */
static const char migrate_v3_sql[] =
    "ALTER TABLE jobs ADD COLUMN stored_bytes INTEGER CHECK (stored_bytes "
    "IS NULL OR stored_bytes >= 0);\n"
    "CREATE INDEX jobs_tenant_stored ON jobs (tenant, stored_bytes) "
    "WHERE stored_bytes > 0;\n"
    "PRAGMA user_version = 3;";

/* Version 4: idempotency keys.  A key names its job by id, and goes with
 * it (ON DELETE CASCADE); the CHECKs are jobstore_key_valid's rule (the
 * GLOB: no byte outside space to '~'). */
static const char migrate_v4_sql[] =
    "CREATE TABLE idempotency_keys ("
    "tenant TEXT NOT NULL, "
    "idempotency_key TEXT NOT NULL CHECK ("
    "length(CAST(idempotency_key AS BLOB)) BETWEEN 1 AND 255 AND "
    "idempotency_key NOT GLOB '*[^ -~]*'), "
    "request_sha256 TEXT NOT NULL CHECK (length(request_sha256) = 64), "
    "job_id TEXT NOT NULL UNIQUE REFERENCES jobs (id) ON DELETE CASCADE, "
    "created_us INTEGER NOT NULL, "
    "UNIQUE (tenant, idempotency_key));\n"
    "PRAGMA user_version = 4;";

_Static_assert(JOBSTORE_SCHEMA_VERSION == 4,
               "migrate_v4_sql writes the last user_version, 4");
_Static_assert(JOBSTORE_KEY_MAX == 255,
               "migrate_v4_sql checks keys of 255 bytes at most");

#define COLUMNS                                                              \
    "seq, id, tenant, name, state, exit_status, submitted_us, started_us, " \
    "ended_us, devices, reason, bundle_key, bundle_bytes, gpus, model, "    \
    "gpu_memory, cpus, memory, walltime_ms, requeue, recorded, "            \
    "cancel_requested, outcome, record_id, stored_bytes"

/* Positions in COLUMNS. */
enum {
    COL_SEQ,
    COL_ID,
    COL_TENANT,
    COL_NAME,
    COL_STATE,
    COL_EXIT_STATUS,
    COL_SUBMITTED_US,
    COL_STARTED_US,
    COL_ENDED_US,
    COL_DEVICES,
    COL_REASON,
    COL_BUNDLE_KEY,
    COL_BUNDLE_BYTES,
    COL_GPUS,
    COL_MODEL,
    COL_GPU_MEMORY,
    COL_CPUS,
    COL_MEMORY,
    COL_WALLTIME_MS,
    COL_REQUEUE,
    COL_RECORDED,
    COL_CANCEL_REQUESTED,
    COL_OUTCOME,
    COL_RECORD_ID,
    COL_STORED_BYTES,
};

/* The eight parameters of "state IN (...)" are bound to the names of the
 * states in a mask, NULL for the others (which then match nothing), so
 * that one prepared statement serves every mask and still uses the
 * indexes on state. */
#define STATES_IN_1 "state IN (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
#define STATES_IN_2 "state IN (?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_INSERT,
    ST_HISTORY,
    ST_STATE,
    ST_UPDATE,
    ST_SET_CANCEL,
    ST_SET_RECORDED,
    ST_GET,
    ST_LIST,
    ST_LIST_TENANT,
    ST_COUNT,
    ST_COUNT_TENANT,
    ST_TRANSITIONS,
    ST_ACTIVE,
    ST_DEVICES_OK,
    ST_STORED_SUM,
    ST_STORED_BY_TENANT,
    ST_BUNDLE_REMOVED,
    ST_BUNDLE_MISSING,
    ST_ALL_REMOVED,
    ST_STORED_UNKNOWN,
    ST_STORED_SET,
    ST_KEY_INSERT,
    ST_KEY_FIND,
    ST_KEY_FORGET,
    ST_N
};

static const char *const stmt_sql[ST_N] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_INSERT] =
        "INSERT INTO jobs (id, tenant, name, state, exit_status, "
        "submitted_us, started_us, ended_us, devices, reason, bundle_key, "
        "bundle_bytes, gpus, model, gpu_memory, cpus, memory, walltime_ms, "
        "requeue, recorded, cancel_requested, stored_bytes) VALUES "
        "(?1, ?2, ?3, 'queued', -1, ?4, 0, 0, ?5, NULL, ?6, ?7, ?8, ?9, ?10, "
        "?11, ?12, ?13, ?14, 0, 0, CASE WHEN ?6 IS NULL THEN 0 ELSE ?7 END)",
    [ST_HISTORY] = "INSERT INTO transitions (job_id, from_state, to_state, "
                   "time_us, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_STATE] = "SELECT state FROM jobs WHERE id = ?1",
    /* ?4, ?6, ... say whether the value after each applies.  The state
     * in the WHERE clause makes the update itself the compare-and-set. */
    [ST_UPDATE] =
        "UPDATE jobs SET state = ?3, "
        "exit_status = CASE WHEN ?4 THEN ?5 ELSE exit_status END, "
        "started_us = CASE WHEN ?6 THEN ?7 ELSE started_us END, "
        "ended_us = CASE WHEN ?8 THEN ?9 ELSE ended_us END, "
        "devices = CASE WHEN ?10 THEN ?11 ELSE devices END, "
        "reason = CASE WHEN ?12 THEN ?13 ELSE reason END, "
        "recorded = CASE WHEN ?14 THEN ?15 ELSE recorded END, "
        "outcome = CASE WHEN ?16 THEN ?17 ELSE outcome END, "
        "record_id = CASE WHEN ?18 THEN ?19 ELSE record_id END, "
        "stored_bytes = CASE WHEN ?20 THEN ?21 ELSE stored_bytes END "
        "WHERE id = ?1 AND state = ?2",
    [ST_SET_CANCEL] = "UPDATE jobs SET cancel_requested = ?2 WHERE id = ?1",
    [ST_SET_RECORDED] = "UPDATE jobs SET recorded = ?2 WHERE id = ?1",
    [ST_GET] = "SELECT " COLUMNS " FROM jobs WHERE id = ?1",
    [ST_LIST] = "SELECT " COLUMNS " FROM jobs WHERE seq > ?1 AND "
                STATES_IN_2 " ORDER BY seq LIMIT ?10",
    [ST_LIST_TENANT] = "SELECT " COLUMNS " FROM jobs WHERE seq > ?1 AND "
                       STATES_IN_2 " AND tenant = ?11 ORDER BY seq "
                       "LIMIT ?10",
    [ST_COUNT] = "SELECT count(*) FROM jobs WHERE " STATES_IN_1,
    [ST_COUNT_TENANT] = "SELECT count(*) FROM jobs WHERE " STATES_IN_1
                        " AND tenant = ?9",
    [ST_TRANSITIONS] = "SELECT n, job_id, from_state, to_state, time_us, "
                       "reason FROM transitions WHERE job_id = ?1 "
                       "ORDER BY n",
    [ST_ACTIVE] = "SELECT id, state, requeue, recorded, cancel_requested, "
                  "outcome FROM jobs WHERE state IN ('running', 'completing') "
                  "ORDER BY seq",
    /* An array of objects; the json functions are built into SQLite since
     * 3.38 and enabled by distributions before that. */
    [ST_DEVICES_OK] =
        "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) = 'array' AND "
        "NOT EXISTS (SELECT 1 FROM json_each(?1) WHERE type <> 'object') "
        "ELSE 0 END",
    /* "stored_bytes > 0" lets both use the partial index. */
    [ST_STORED_SUM] = "SELECT total(stored_bytes) FROM jobs WHERE "
                      "tenant = ?1 AND stored_bytes > 0",
    [ST_STORED_BY_TENANT] = "SELECT tenant, total(stored_bytes) FROM jobs "
                            "WHERE stored_bytes > 0 GROUP BY tenant "
                            "ORDER BY tenant",
    [ST_BUNDLE_REMOVED] = "UPDATE jobs SET bundle_key = NULL, stored_bytes "
                          "= max(stored_bytes - bundle_bytes, 0) WHERE id = "
                          "?1 AND bundle_key IS NOT NULL",
    [ST_BUNDLE_MISSING] = "UPDATE jobs SET bundle_key = NULL WHERE id = ?1",
    [ST_ALL_REMOVED] = "UPDATE jobs SET bundle_key = NULL, stored_bytes = 0 "
                       "WHERE id = ?1",
    [ST_STORED_UNKNOWN] = "SELECT id FROM jobs WHERE stored_bytes IS NULL "
                          "ORDER BY seq",
    [ST_STORED_SET] = "UPDATE jobs SET stored_bytes = ?2 WHERE id = ?1",
    [ST_KEY_INSERT] = "INSERT INTO idempotency_keys (tenant, idempotency_key, "
                      "request_sha256, job_id, created_us) VALUES "
                      "(?1, ?2, ?3, ?4, ?5)",
    [ST_KEY_FIND] = "SELECT job_id, request_sha256 FROM idempotency_keys "
                    "WHERE tenant = ?1 AND idempotency_key = ?2",
    [ST_KEY_FORGET] = "DELETE FROM idempotency_keys WHERE job_id = ?1",
};

struct jobstore {
    char *path;
    sqlite3 *db;
    sqlite3_stmt *st[ST_N];
};

/* --- errors and helpers ------------------------------------------------ */

static int sqlite_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return -EINVAL;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EBADMSG;
    default:
        return -EIO;
    }
}

static int db_error(struct jobstore *js, struct err *e, int rc,
                    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Sets *e for a failed SQLite call, with SQLite's message.  Called with the
 * connection's mutex held, so that the message is that of this call and
 * not of another thread's.
 */
static int db_error(struct jobstore *js, struct err *e, int rc,
                    const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return err_set(e, sqlite_errno(rc), "%s: %s (job store '%s')", what,
                   js->db ? sqlite3_errmsg(js->db) : sqlite3_errstr(rc),
                   js->path);
}

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void lock(struct jobstore *js)
{
    sqlite3_mutex_enter(sqlite3_db_mutex(js->db));
}

static void unlock(struct jobstore *js)
{
    sqlite3_mutex_leave(sqlite3_db_mutex(js->db));
}

/* Statements are shared by every call: each use ends here, so that the
 * next one finds it fresh and no string bound SQLITE_STATIC outlives the
 * call that bound it. */
static void done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* Runs a statement that returns no row. */
static int exec_st(struct jobstore *js, enum stmt_id id, struct err *e,
                   const char *what)
{
    sqlite3_stmt *s = js->st[id];
    int rc = sqlite3_step(s);
    int r = 0;

    if (rc != SQLITE_DONE)
        r = db_error(js, e, rc, "%s", what);
    done(s);
    return r;
}

static int begin(struct jobstore *js, struct err *e)
{
    return exec_st(js, ST_BEGIN, e, "cannot begin a transaction");
}

/* A failed COMMIT may leave the transaction open (SQLITE_BUSY) or have
 * rolled it back already: either way, what follows is a ROLLBACK. */
static int commit(struct jobstore *js, struct err *e)
{
    return exec_st(js, ST_COMMIT, e, "cannot commit");
}

static void rollback(struct jobstore *js)
{
    if (!sqlite3_get_autocommit(js->db)) {
        sqlite3_step(js->st[ST_ROLLBACK]);
        done(js->st[ST_ROLLBACK]);
    }
}

static const char *esc(const char *s, char *buf, size_t len)
{
    return err_escape(s, buf, len);
}

static int bad_id(struct err *e, const char *id)
{
    char buf[64];

    return err_set(e, -EINVAL, "job id '%s' is not %d lowercase hex digits",
                   esc(id, buf, sizeof buf), JOBSTORE_ID_LEN);
}

static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (!v)
        return sqlite3_bind_null(s, i);
    return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static int bind_state(sqlite3_stmt *s, int i, enum job_state st)
{
    if (st == JOB_STATE_NONE)
        return sqlite3_bind_null(s, i);
    return sqlite3_bind_text(s, i, state_names[st], -1, SQLITE_STATIC);
}

/* Binds parameters first .. first+7 of STATES_IN_1 or STATES_IN_2. */
static int bind_states(sqlite3_stmt *s, int first, unsigned mask)
{
    int i, rc = SQLITE_OK;

    if (mask == 0)
        mask = JOB_STATES_ALL;
    for (i = 0; i < JOB_STATE_COUNT && rc == SQLITE_OK; i++) {
        if (mask & JOB_STATE_BIT(i))
            rc = sqlite3_bind_text(s, first + i, state_names[i], -1,
                                   SQLITE_STATIC);
        else
            rc = sqlite3_bind_null(s, first + i);
    }
    return rc;
}

static int check_states_mask(struct err *e, unsigned mask)
{
    if (mask & ~JOB_STATES_ALL)
        return err_set(e, -EINVAL, "state mask 0x%x names no state (bits "
                       "above 0x%x)", mask, JOB_STATES_ALL);
    return 0;
}

/* Reads a state column: the CHECK constraints keep anything else out, but
 * a file is not to be trusted blindly. */
static int column_state(struct jobstore *js, sqlite3_stmt *s, int col,
                        const char *id, enum job_state *ret, struct err *e)
{
    const char *name = (const char *)sqlite3_column_text(s, col);
    char buf[64];

    if (sqlite3_column_type(s, col) == SQLITE_NULL) {
        *ret = JOB_STATE_NONE;
        return 0;
    }
    if (name && job_state_parse(name, ret) == 0)
        return 0;
    return err_set(e, -EBADMSG, "job %s: unknown state '%s' in job store "
                   "'%s'", id, esc(name, buf, sizeof buf), js->path);
}

/* --- open and close ------------------------------------------------------ */

/* Runs a statement that returns one row, such as a PRAGMA, and hands it
 * back positioned on that row. */
static int query_row(struct jobstore *js, const char *sql,
                     sqlite3_stmt **ret_stmt, struct err *e)
{
    sqlite3_stmt *s;
    int r, rc;

    rc = sqlite3_prepare_v2(js->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return db_error(js, e, rc, "cannot prepare '%s'", sql);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_stmt = s;
        return 0;
    }
    if (rc == SQLITE_DONE)
        r = err_set(e, -EIO, "'%s' on job store '%s' returned no row", sql,
                    js->path);
    else
        r = db_error(js, e, rc, "'%s'", sql);
    sqlite3_finalize(s);
    return r;
}

static int exec_sql(struct jobstore *js, const char *sql, struct err *e,
                    const char *what)
{
    int rc = sqlite3_exec(js->db, sql, NULL, NULL, NULL);

    if (rc != SQLITE_OK)
        return db_error(js, e, rc, "%s", what);
    return 0;
}

static int open_db(struct jobstore *js, struct err *e)
{
    int rc, syserr;

    rc = sqlite3_open_v2(js->path, &js->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                             SQLITE_OPEN_FULLMUTEX,
                         NULL);
    if (rc == SQLITE_OK)
        return 0;
    if (!js->db)
        return err_set(e, -ENOMEM, "cannot open job store '%s': %s",
                       js->path, sqlite3_errstr(rc));
    /* "unable to open database file" alone does not say that, for
     * instance, the directory is missing. */
    syserr = sqlite3_system_errno(js->db);
    if (syserr > 0)
        return err_set(e, -syserr, "cannot open job store '%s': %s (%s)",
                       js->path, sqlite3_errmsg(js->db), strerror(syserr));
    return db_error(js, e, rc, "cannot open");
}

static int set_wal(struct jobstore *js, struct err *e)
{
    sqlite3_stmt *s;
    const char *mode;
    int r;

    r = query_row(js, "PRAGMA journal_mode=WAL", &s, e);
    if (r < 0)
        return r;
    /* SQLite answers with the mode in effect, which is not WAL where WAL
     * is impossible (an in-memory database, say). */
    mode = (const char *)sqlite3_column_text(s, 0);
    if (!mode || sqlite3_stricmp(mode, "wal") != 0)
        r = err_set(e, -ENOTSUP, "cannot use WAL on job store '%s': journal "
                    "mode is '%s'", js->path, mode ? mode : "(none)");
    sqlite3_finalize(s);
    return r;
}

static int configure(struct jobstore *js, struct err *e)
{
    int r, rc;

    sqlite3_extended_result_codes(js->db, 1);
    /* Before anything that may need a lock, the journal mode change
     * included. */
    rc = sqlite3_busy_timeout(js->db, JOBSTORE_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK)
        return db_error(js, e, rc, "cannot set the busy timeout");
    r = set_wal(js, e);
    if (r >= 0)
        r = exec_sql(js, "PRAGMA synchronous=FULL", e,
                     "cannot set synchronous=FULL");
    /* Per connection, and off by default: without it the history could
     * name jobs that do not exist. */
    if (r >= 0)
        r = exec_sql(js, "PRAGMA foreign_keys=ON", e,
                     "cannot enable foreign keys");
    return r;
}

static int read_schema_version(struct jobstore *js, int *ret, struct err *e)
{
    sqlite3_stmt *s;
    int r;

    r = query_row(js, "PRAGMA user_version", &s, e);
    if (r < 0)
        return r;
    *ret = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return 0;
}

static int check_schema_version(struct jobstore *js, int version,
                                struct err *e)
{
    if (version >= 0 && version <= JOBSTORE_SCHEMA_VERSION)
        return 0;
    return err_set(e, -ENOTSUP, "job store '%s' has schema version %d, which "
                   "this surplusd does not know (it knows up to %d): written "
                   "by a newer version?",
                   js->path, version, JOBSTORE_SCHEMA_VERSION);
}

/*
 * Creates the schema in an empty database, or brings an older one up to
 * JOBSTORE_SCHEMA_VERSION.  The transaction takes the write
 * lock from the start (IMMEDIATE), so that of two processes opening a new
 * file together, one creates the schema and the other, once it gets the
 * lock, finds it there.
 */
static int create_schema(struct jobstore *js, struct err *e)
{
    int r, version;

    r = exec_sql(js, "BEGIN IMMEDIATE", e, "cannot begin a transaction");
    if (r < 0)
        return r;
    r = read_schema_version(js, &version, e);
    if (r >= 0)
        r = check_schema_version(js, version, e);
    if (r >= 0 && version == 0) {
        r = exec_sql(js, schema_sql, e, "cannot create the schema");
        version = 1;
    }
    if (r >= 0 && version == 1) {
        r = exec_sql(js, migrate_v2_sql, e,
                     "cannot migrate the schema to version 2");
        version = 2;
    }
    if (r >= 0 && version == 2) {
        r = exec_sql(js, migrate_v3_sql, e,
                     "cannot migrate the schema to version 3");
        version = 3;
    }
    if (r >= 0 && version == 3)
        r = exec_sql(js, migrate_v4_sql, e,
                     "cannot migrate the schema to version 4");
    if (r >= 0)
        r = exec_sql(js, "COMMIT", e, "cannot commit the schema");
    if (r < 0)
        sqlite3_exec(js->db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

static int ensure_schema(struct jobstore *js, struct err *e)
{
    int r, version;

    r = read_schema_version(js, &version, e);
    if (r < 0)
        return r;
    r = check_schema_version(js, version, e);
    if (r < 0 || version == JOBSTORE_SCHEMA_VERSION)
        return r;
    return create_schema(js, e);
}

static int prepare_all(struct jobstore *js, struct err *e)
{
    int i, rc;

    for (i = 0; i < ST_N; i++) {
        rc = sqlite3_prepare_v3(js->db, stmt_sql[i], -1,
                                SQLITE_PREPARE_PERSISTENT, &js->st[i], NULL);
        if (rc != SQLITE_OK)
            return db_error(js, e, rc, "cannot prepare '%s'", stmt_sql[i]);
    }
    return 0;
}

void jobstore_close(struct jobstore *js)
{
    int i;

    if (!js)
        return;
    for (i = 0; i < ST_N; i++)
        sqlite3_finalize(js->st[i]);
    sqlite3_close_v2(js->db);
    free(js->path);
    free(js);
}

int jobstore_open(const char *path, struct jobstore **ret, struct err *e)
{
    struct jobstore *js;
    int r;

    if (!path || !*path)
        return err_set(e, -EINVAL, "job store: no path");
    /* A library built without mutexes would make FULLMUTEX and the
     * per-call locking below no-ops, and the daemon's threads would
     * corrupt each other's transactions. */
    if (!sqlite3_threadsafe())
        return err_set(e, -ENOTSUP, "job store '%s': SQLite %s was built "
                       "without thread safety", path, sqlite3_libversion());
    js = calloc(1, sizeof *js);
    if (!js || !(js->path = strdup(path))) {
        free(js);
        return err_set(e, -ENOMEM, "job store '%s': out of memory", path);
    }
    r = open_db(js, e);
    if (r >= 0)
        r = configure(js, e);
    if (r >= 0)
        r = ensure_schema(js, e);
    if (r >= 0)
        r = prepare_all(js, e);
    if (r < 0) {
        jobstore_close(js);
        return r;
    }
    *ret = js;
    return 0;
}

/* --- writing ----------------------------------------------------------- */

/* Must be called with the mutex held. */
static int check_devices(struct jobstore *js, const char *id,
                         const char *devices, struct err *e)
{
    sqlite3_stmt *s = js->st[ST_DEVICES_OK];
    char buf[128];
    int r = 0, rc;

    rc = bind_text(s, 1, devices);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc != SQLITE_ROW)
        r = db_error(js, e, rc, "job %s: cannot check devices", id);
    else if (!sqlite3_column_int(s, 0))
        r = err_set(e, -EINVAL, "job %s: devices is not a JSON array of "
                    "objects: '%s'", id, esc(devices, buf, sizeof buf));
    done(s);
    return r;
}

/* SQLite integers are signed: larger unsigned values would come back
 * negative. */
static const char *unsigned_out_of_range(const struct job_row *row)
{
    if (row->bundle_bytes > INT64_MAX)
        return "bundle_bytes";
    if (row->gpu_memory > INT64_MAX)
        return "gpu_memory";
    if (row->memory > INT64_MAX)
        return "memory";
    if (row->walltime_ms > INT64_MAX)
        return "walltime_ms";
    return NULL;
}

static int check_row(const struct job_row *row, struct err *e)
{
    const char *field;

    if (!row)
        return err_set(e, -EINVAL, "insert: no job");
    if (!jobstore_id_valid(row->id))
        return bad_id(e, row->id);
    if (!row->tenant || !*row->tenant)
        return err_set(e, -EINVAL, "job %s: no tenant", row->id);
    if (row->submitted_us < 0)
        return err_set(e, -EINVAL, "job %s: submitted_us %" PRId64
                       " is before the epoch", row->id, row->submitted_us);
    field = unsigned_out_of_range(row);
    if (field)
        return err_set(e, -ERANGE, "job %s: %s is too large", row->id,
                       field);
    return 0;
}

/* Appends the history row; the caller holds the transaction. */
static int add_history(struct jobstore *js, const char *id,
                       enum job_state from, enum job_state to, int64_t t,
                       const char *reason, struct err *e)
{
    sqlite3_stmt *s = js->st[ST_HISTORY];
    int r = 0, rc;

    if ((rc = bind_text(s, 1, id)) != SQLITE_OK ||
        (rc = bind_state(s, 2, from)) != SQLITE_OK ||
        (rc = bind_state(s, 3, to)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(s, 4, t)) != SQLITE_OK ||
        (rc = bind_text(s, 5, reason)) != SQLITE_OK ||
        (rc = sqlite3_step(s)) != SQLITE_DONE)
        r = db_error(js, e, rc, "job %s: cannot record %s -> %s", id,
                     job_state_name(from), job_state_name(to));
    done(s);
    return r;
}

static int bind_insert(sqlite3_stmt *s, const struct job_row *row,
                       int64_t submitted)
{
    int rc;

    if ((rc = bind_text(s, 1, row->id)) != SQLITE_OK ||
        (rc = bind_text(s, 2, row->tenant)) != SQLITE_OK ||
        (rc = bind_text(s, 3, row->name ? row->name : "")) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(s, 4, submitted)) != SQLITE_OK ||
        (rc = bind_text(s, 5, row->devices ? row->devices : "[]")) !=
            SQLITE_OK ||
        (rc = bind_text(s, 6, row->bundle_key)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(s, 7, (int64_t)row->bundle_bytes)) !=
            SQLITE_OK ||
        (rc = sqlite3_bind_int64(s, 8, row->gpus)) != SQLITE_OK ||
        (rc = bind_text(s, 9, row->model ? row->model : "*")) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(s, 10, (int64_t)row->gpu_memory)) !=
            SQLITE_OK ||
        (rc = sqlite3_bind_int64(s, 11, row->cpus)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(s, 12, (int64_t)row->memory)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(s, 13, (int64_t)row->walltime_ms)) !=
            SQLITE_OK)
        return rc;
    return sqlite3_bind_int(s, 14, row->requeue);
}

static bool sha256_hex_valid(const char *h)
{
    return h && strlen(h) == 64 && strspn(h, "0123456789abcdef") == 64;
}

/* Records `key` for the job just inserted; the caller holds the
 * transaction. */
static int add_key(struct jobstore *js, const struct job_row *row,
                   const char *key, const char *request_sha256,
                   int64_t submitted, struct err *e)
{
    sqlite3_stmt *s = js->st[ST_KEY_INSERT];
    char buf[64], tbuf[64];
    int r = 0, rc;

    if ((rc = bind_text(s, 1, row->tenant)) != SQLITE_OK ||
        (rc = bind_text(s, 2, key)) != SQLITE_OK ||
        (rc = bind_text(s, 3, request_sha256)) != SQLITE_OK ||
        (rc = bind_text(s, 4, row->id)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(s, 5, submitted)) != SQLITE_OK)
        r = db_error(js, e, rc, "job %s: cannot bind its idempotency key",
                     row->id);
    else if ((rc = sqlite3_step(s)) == SQLITE_CONSTRAINT_UNIQUE)
        r = err_set(e, -EEXIST, "tenant '%s' already has idempotency key "
                    "'%s'", esc(row->tenant, tbuf, sizeof tbuf),
                    esc(key, buf, sizeof buf));
    else if (rc != SQLITE_DONE)
        r = db_error(js, e, rc, "job %s: cannot record its idempotency key",
                     row->id);
    done(s);
    return r;
}

int jobstore_insert_keyed(struct jobstore *js, const struct job_row *row,
                          const char *key, const char *request_sha256,
                          struct err *e)
{
    sqlite3_stmt *s = js->st[ST_INSERT];
    int64_t submitted;
    int r, rc;

    r = check_row(row, e);
    if (r < 0)
        return r;
    if (key && !jobstore_key_valid(key))
        return err_set(e, -EINVAL, "job %s: an idempotency key is 1 to %d "
                       "bytes of printable ASCII", row->id,
                       JOBSTORE_KEY_MAX);
    if (key && !sha256_hex_valid(request_sha256))
        return err_set(e, -EINVAL, "job %s: the request's SHA-256 is not 64 "
                       "lowercase hex digits", row->id);
    submitted = row->submitted_us ? row->submitted_us : now_us();

    lock(js);
    if (row->devices) {
        r = check_devices(js, row->id, row->devices, e);
        if (r < 0)
            goto out;
    }
    r = begin(js, e);
    if (r < 0)
        goto out;
    rc = bind_insert(s, row, submitted);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        r = err_set(e, -EEXIST, "job %s already exists", row->id);
    else if (rc != SQLITE_DONE)
        r = db_error(js, e, rc, "job %s: cannot insert", row->id);
    done(s);
    if (r >= 0)
        r = add_history(js, row->id, JOB_STATE_NONE, JOB_QUEUED, submitted,
                        NULL, e);
    if (r >= 0 && key)
        r = add_key(js, row, key, request_sha256, submitted, e);
    if (r >= 0)
        r = commit(js, e);
    if (r < 0)
        rollback(js);
out:
    unlock(js);
    return r;
}

int jobstore_insert(struct jobstore *js, const struct job_row *row,
                    struct err *e)
{
    return jobstore_insert_keyed(js, row, NULL, NULL, e);
}

int jobstore_key_find(struct jobstore *js, const char *tenant,
                      const char *key,
                      char ret_job_id[JOBSTORE_ID_LEN + 1],
                      char ret_request_sha256[65], struct err *e)
{
    sqlite3_stmt *s = js->st[ST_KEY_FIND];
    const char *id, *sha;
    char buf[64];
    int r = 0, rc;

    if (!tenant || !*tenant)
        return err_set(e, -EINVAL, "idempotency key: no tenant");
    if (!jobstore_key_valid(key))
        return err_set(e, -EINVAL, "an idempotency key is 1 to %d bytes of "
                       "printable ASCII", JOBSTORE_KEY_MAX);
    lock(js);
    rc = bind_text(s, 1, tenant);
    if (rc == SQLITE_OK)
        rc = bind_text(s, 2, key);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        r = err_set(e, -ENOENT, "tenant '%s' has no idempotency key '%s'",
                    esc(tenant, buf, sizeof buf), key);
    } else if (rc != SQLITE_ROW) {
        r = db_error(js, e, rc, "cannot look up an idempotency key");
    } else {
        id = (const char *)sqlite3_column_text(s, 0);
        sha = (const char *)sqlite3_column_text(s, 1);
        if (!jobstore_id_valid(id) || !sha256_hex_valid(sha)) {
            r = err_set(e, -EBADMSG, "job store '%s': idempotency key of "
                        "job '%s' is damaged", js->path,
                        esc(id, buf, sizeof buf));
        } else {
            memcpy(ret_job_id, id, JOBSTORE_ID_LEN + 1);
            memcpy(ret_request_sha256, sha, 65);
        }
    }
    done(s);
    unlock(js);
    return r;
}

int jobstore_key_forget(struct jobstore *js, const char *id, struct err *e)
{
    sqlite3_stmt *s = js->st[ST_KEY_FORGET];
    int r = 0, rc;

    if (!jobstore_id_valid(id))
        return bad_id(e, id);
    /* One statement in autocommit mode is a transaction of its own; with
     * nothing to delete, it writes nothing. */
    lock(js);
    rc = bind_text(s, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        r = db_error(js, e, rc, "job %s: cannot forget its idempotency key",
                     id);
    done(s);
    unlock(js);
    return r;
}

/* The state of job `id` now; -ENOENT if there is none.  Mutex held. */
static int current_state(struct jobstore *js, const char *id,
                         enum job_state *ret, struct err *e)
{
    sqlite3_stmt *s = js->st[ST_STATE];
    int r, rc;

    rc = bind_text(s, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        r = column_state(js, s, 0, id, ret, e);
    else if (rc == SQLITE_DONE)
        r = err_set(e, -ENOENT, "no job %s", id);
    else
        r = db_error(js, e, rc, "job %s: cannot read its state", id);
    done(s);
    return r;
}

static int bind_update(sqlite3_stmt *s, const char *id, enum job_state from,
                       enum job_state to, const struct job_update *u)
{
    unsigned set = u->set;
    int rc;

    if ((rc = bind_text(s, 1, id)) != SQLITE_OK ||
        (rc = bind_state(s, 2, from)) != SQLITE_OK ||
        (rc = bind_state(s, 3, to)) != SQLITE_OK ||
        (rc = sqlite3_bind_int(s, 4, !!(set & JOB_UPDATE_EXIT_STATUS))) !=
            SQLITE_OK ||
        (rc = sqlite3_bind_int(s, 5, u->exit_status)) != SQLITE_OK ||
        (rc = sqlite3_bind_int(s, 6, !!(set & JOB_UPDATE_STARTED_US))) !=
            SQLITE_OK ||
        (rc = sqlite3_bind_int64(s, 7, u->started_us)) != SQLITE_OK ||
        (rc = sqlite3_bind_int(s, 8, !!(set & JOB_UPDATE_ENDED_US))) !=
            SQLITE_OK ||
        (rc = sqlite3_bind_int64(s, 9, u->ended_us)) != SQLITE_OK ||
        (rc = sqlite3_bind_int(s, 10, !!(set & JOB_UPDATE_DEVICES))) !=
            SQLITE_OK ||
        (rc = bind_text(s, 11, u->devices ? u->devices : "[]")) !=
            SQLITE_OK ||
        (rc = sqlite3_bind_int(s, 12, !!(set & JOB_UPDATE_REASON))) !=
            SQLITE_OK ||
        (rc = bind_text(s, 13, u->reason)) != SQLITE_OK ||
        (rc = sqlite3_bind_int(s, 14, !!(set & JOB_UPDATE_RECORDED))) !=
            SQLITE_OK ||
        (rc = sqlite3_bind_int(s, 15, u->recorded)) != SQLITE_OK ||
        (rc = sqlite3_bind_int(s, 16, !!(set & JOB_UPDATE_OUTCOME))) !=
            SQLITE_OK ||
        (rc = (set & JOB_UPDATE_OUTCOME) ? bind_state(s, 17, u->outcome)
                                         : sqlite3_bind_null(s, 17)) !=
            SQLITE_OK ||
        (rc = sqlite3_bind_int(s, 18, !!(set & JOB_UPDATE_RECORD_ID))) !=
            SQLITE_OK ||
        (rc = bind_text(s, 19, u->record_id)) != SQLITE_OK ||
        (rc = sqlite3_bind_int(s, 20, !!(set & JOB_UPDATE_STORED_BYTES))) !=
            SQLITE_OK)
        return rc;
    return sqlite3_bind_int64(s, 21, (int64_t)u->stored_bytes);
}

/*
 * The body of a transition, inside a transaction the caller holds: the
 * compare, the update and the history row.
 */
static int apply(struct jobstore *js, const char *id, enum job_state from,
                 enum job_state to, const struct job_update *u,
                 struct err *e)
{
    sqlite3_stmt *s = js->st[ST_UPDATE];
    enum job_state cur;
    int r, rc;

    r = current_state(js, id, &cur, e);
    if (r < 0)
        return r;
    if (cur != from)
        return err_set(e, -ESTALE, "job %s is %s, not %s: %s -> %s not "
                       "applied", id, job_state_name(cur),
                       job_state_name(from), job_state_name(from),
                       job_state_name(to));
    rc = bind_update(s, id, from, to, u);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        r = db_error(js, e, rc, "job %s: cannot apply %s -> %s", id,
                     job_state_name(from), job_state_name(to));
    else if (sqlite3_changes(js->db) != 1)
        /* The write lock is held since the read above: cannot happen,
         * unless the file is shared with a writer that ignores locks. */
        r = err_set(e, -ESTALE, "job %s changed under a held write lock",
                    id);
    done(s);
    if (r < 0)
        return r;
    return add_history(js, id, from, to, u->time_us ? u->time_us : now_us(),
                       (u->set & JOB_UPDATE_REASON) ? u->reason : NULL, e);
}

static int check_update(const char *id, const struct job_update *u,
                        struct err *e)
{
    const unsigned known = JOB_UPDATE_EXIT_STATUS | JOB_UPDATE_STARTED_US |
                           JOB_UPDATE_ENDED_US | JOB_UPDATE_DEVICES |
                           JOB_UPDATE_REASON | JOB_UPDATE_RECORDED |
                           JOB_UPDATE_OUTCOME | JOB_UPDATE_RECORD_ID |
                           JOB_UPDATE_STORED_BYTES;

    if (u->set & ~known)
        return err_set(e, -EINVAL, "job %s: unknown update fields 0x%x", id,
                       u->set & ~known);
    if (((u->set & JOB_UPDATE_STARTED_US) && u->started_us < 0) ||
        ((u->set & JOB_UPDATE_ENDED_US) && u->ended_us < 0) ||
        u->time_us < 0)
        return err_set(e, -EINVAL, "job %s: a time before the epoch", id);
    if ((u->set & JOB_UPDATE_STORED_BYTES) && u->stored_bytes > INT64_MAX)
        return err_set(e, -ERANGE, "job %s: stored_bytes is too large", id);
    if ((u->set & JOB_UPDATE_OUTCOME) && !job_state_terminal(u->outcome))
        return err_set(e, -EINVAL, "job %s: outcome %s is not a final state",
                       id, job_state_name(u->outcome));
    return 0;
}

/* What jobstore_transition checks before touching the database. */
static int check_transition(const char *id, enum job_state from,
                            enum job_state to, const struct job_update *u,
                            struct err *e)
{
    if (!jobstore_id_valid(id))
        return bad_id(e, id);
    if (!state_valid(from) || !state_valid(to))
        return err_set(e, -EINVAL, "job %s: %d -> %d: not a state", id,
                       (int)from, (int)to);
    if (job_state_terminal(from))
        return err_set(e, -EINVAL, "job %s: %s -> %s refused: %s is final",
                       id, job_state_name(from), job_state_name(to),
                       job_state_name(from));
    if (!job_transition_allowed(from, to))
        return err_set(e, -EINVAL, "job %s: %s -> %s is not an allowed "
                       "transition", id, job_state_name(from),
                       job_state_name(to));
    return check_update(id, u, e);
}

int jobstore_transition(struct jobstore *js, const char *id,
                        enum job_state from, enum job_state to,
                        const struct job_update *u, struct err *e)
{
    static const struct job_update none;
    int r;

    if (!u)
        u = &none;
    r = check_transition(id, from, to, u, e);
    if (r < 0)
        return r;

    lock(js);
    if ((u->set & JOB_UPDATE_DEVICES) && u->devices) {
        r = check_devices(js, id, u->devices, e);
        if (r < 0)
            goto out;
    }
    r = begin(js, e);
    if (r >= 0)
        r = apply(js, id, from, to, u, e);
    if (r >= 0)
        r = commit(js, e);
    if (r < 0)
        rollback(js);
out:
    unlock(js);
    return r;
}

/* A step's message, cut to fit. */
static void step_msg(struct job_step *st, const char *m)
{
    size_t n = strnlen(m, sizeof st->msg - 1);

    memcpy(st->msg, m, n);
    st->msg[n] = '\0';
}

int jobstore_transitions_apply(struct jobstore *js, struct job_step *steps,
                               size_t n, struct err *e)
{
    static const struct job_update none;
    size_t applied = 0;
    int r = 0;

    for (size_t i = 0; i < n; i++) {
        struct err se = {0};

        steps[i].result = check_transition(steps[i].id, steps[i].from,
                                           steps[i].to,
                                           steps[i].u ? steps[i].u : &none,
                                           &se);
        if (steps[i].result < 0)
            step_msg(&steps[i], se.msg);
    }
    lock(js);
    r = begin(js, e);
    for (size_t i = 0; r >= 0 && i < n; i++) {
        const struct job_update *u = steps[i].u ? steps[i].u : &none;
        struct err se = {0};
        int sr;

        if (steps[i].result < 0)
            continue;
        /* A step whose job is not where it was expected (cancelled
         * meanwhile) is skipped; it changed nothing.  Any other failure
         * undoes the whole batch. */
        if ((u->set & JOB_UPDATE_DEVICES) && u->devices &&
            (sr = check_devices(js, steps[i].id, u->devices, &se)) < 0) {
            steps[i].result = sr;
            step_msg(&steps[i], se.msg);
            continue;
        }
        sr = apply(js, steps[i].id, steps[i].from, steps[i].to, u, &se);
        steps[i].result = sr;
        if (sr == -ESTALE || sr == -ENOENT) {
            step_msg(&steps[i], se.msg);
            continue;
        }
        if (sr < 0) {
            step_msg(&steps[i], se.msg);
            err_set(e, sr, "%s", se.msg);
            r = sr;
        } else {
            applied++;
        }
    }
    if (r >= 0 && applied > 0)
        r = commit(js, e);
    if (r < 0 || applied == 0)
        rollback(js);
    unlock(js);
    if (r < 0)
        for (size_t i = 0; i < n; i++)
            if (steps[i].result == 0) {
                steps[i].result = r;
                step_msg(&steps[i], e ? e->msg : "the batch was rolled back");
            }
    return r < 0 ? r : (int)applied;
}

int jobstore_set_flag(struct jobstore *js, const char *id, const char *flag,
                      bool value, struct err *e)
{
    sqlite3_stmt *s;
    char buf[64];
    int r, rc;

    if (!jobstore_id_valid(id))
        return bad_id(e, id);
    if (flag && strcmp(flag, "cancel_requested") == 0)
        s = js->st[ST_SET_CANCEL];
    else if (flag && strcmp(flag, "recorded") == 0)
        s = js->st[ST_SET_RECORDED];
    else
        return err_set(e, -EINVAL, "job %s: no flag '%s' (cancel_requested "
                       "or recorded)", id, esc(flag, buf, sizeof buf));

    lock(js);
    r = begin(js, e);
    if (r < 0)
        goto out;
    rc = bind_text(s, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(s, 2, value);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        r = db_error(js, e, rc, "job %s: cannot set %s", id, flag);
    else if (sqlite3_changes(js->db) == 0)
        r = err_set(e, -ENOENT, "no job %s", id);
    done(s);
    if (r >= 0)
        r = commit(js, e);
    if (r < 0)
        rollback(js);
out:
    unlock(js);
    return r;
}

/* --- reading ----------------------------------------------------------- */

/* Copies a text column.  A NULL column gives NULL where allowed; a NULL
 * from sqlite3_column_text() for a column that is not NULL means that
 * SQLite ran out of memory converting it. */
static int column_dup(sqlite3_stmt *s, int col, bool required, char **ret)
{
    bool is_null = sqlite3_column_type(s, col) == SQLITE_NULL;
    const char *v = (const char *)sqlite3_column_text(s, col);

    *ret = NULL;
    if (!v)
        return is_null && !required ? 0 : -ENOMEM;
    *ret = strdup(v);
    return *ret ? 0 : -ENOMEM;
}

/* Fills *row from the current row of a statement over COLUMNS. */
static int read_row(struct jobstore *js, sqlite3_stmt *s,
                    struct job_row *row, struct err *e)
{
    const char *id = (const char *)sqlite3_column_text(s, COL_ID);
    char buf[64];
    int r;

    memset(row, 0, sizeof *row);
    if (!id || !jobstore_id_valid(id))
        return err_set(e, -EBADMSG, "job store '%s': bad job id '%s'",
                       js->path, esc(id, buf, sizeof buf));
    memcpy(row->id, id, JOBSTORE_ID_LEN + 1);
    row->seq = sqlite3_column_int64(s, COL_SEQ);
    r = column_state(js, s, COL_STATE, row->id, &row->state, e);
    if (r < 0)
        return r;
    row->exit_status = sqlite3_column_int(s, COL_EXIT_STATUS);
    row->submitted_us = sqlite3_column_int64(s, COL_SUBMITTED_US);
    row->started_us = sqlite3_column_int64(s, COL_STARTED_US);
    row->ended_us = sqlite3_column_int64(s, COL_ENDED_US);
    row->bundle_bytes = (uint64_t)sqlite3_column_int64(s, COL_BUNDLE_BYTES);
    row->gpus = (uint32_t)sqlite3_column_int64(s, COL_GPUS);
    row->gpu_memory = (uint64_t)sqlite3_column_int64(s, COL_GPU_MEMORY);
    row->cpus = (uint32_t)sqlite3_column_int64(s, COL_CPUS);
    row->memory = (uint64_t)sqlite3_column_int64(s, COL_MEMORY);
    row->walltime_ms = (uint64_t)sqlite3_column_int64(s, COL_WALLTIME_MS);
    row->requeue = sqlite3_column_int(s, COL_REQUEUE) != 0;
    row->recorded = sqlite3_column_int(s, COL_RECORDED) != 0;
    row->cancel_requested = sqlite3_column_int(s, COL_CANCEL_REQUESTED) != 0;
    row->stored_bytes = sqlite3_column_type(s, COL_STORED_BYTES) == SQLITE_NULL
                            ? -1
                            : sqlite3_column_int64(s, COL_STORED_BYTES);
    row->outcome = JOB_STATE_NONE;
    if (sqlite3_column_type(s, COL_OUTCOME) != SQLITE_NULL &&
        (r = column_state(js, s, COL_OUTCOME, row->id, &row->outcome, e)) < 0)
        return r;
    if (column_dup(s, COL_TENANT, true, &row->tenant) < 0 ||
        column_dup(s, COL_NAME, true, &row->name) < 0 ||
        column_dup(s, COL_DEVICES, true, &row->devices) < 0 ||
        column_dup(s, COL_REASON, false, &row->reason) < 0 ||
        column_dup(s, COL_BUNDLE_KEY, false, &row->bundle_key) < 0 ||
        column_dup(s, COL_MODEL, true, &row->model) < 0 ||
        column_dup(s, COL_RECORD_ID, false, &row->record_id) < 0) {
        job_row_free(row);
        return err_set(e, -ENOMEM, "job %s: out of memory", id);
    }
    return 0;
}

int jobstore_get(struct jobstore *js, const char *id, struct job_row *out,
                 struct err *e)
{
    sqlite3_stmt *s = js->st[ST_GET];
    struct job_row row;
    int r = 0, rc;

    if (!jobstore_id_valid(id))
        return bad_id(e, id);
    lock(js);
    rc = bind_text(s, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        r = read_row(js, s, &row, e);
    else if (rc == SQLITE_DONE)
        r = err_set(e, -ENOENT, "no job %s", id);
    else
        r = db_error(js, e, rc, "job %s: cannot read", id);
    done(s);
    unlock(js);
    if (r >= 0)
        *out = row;
    return r;
}

struct rows {
    struct job_row *v;
    size_t n, cap;
};

static void rows_free(struct rows *rows)
{
    size_t i;

    for (i = 0; i < rows->n; i++)
        job_row_free(&rows->v[i]);
    free(rows->v);
}

static struct job_row *rows_add(struct rows *rows)
{
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? 2 * rows->cap : 16;
        struct job_row *v = realloc(rows->v, cap * sizeof *v);

        if (!v)
            return NULL;
        rows->v = v;
        rows->cap = cap;
    }
    return &rows->v[rows->n++];
}

/* Reads every row of a bound statement over COLUMNS.  Mutex held. */
static int read_rows(struct jobstore *js, sqlite3_stmt *s, struct rows *rows,
                     struct err *e)
{
    for (;;) {
        struct job_row *row;
        int r, rc = sqlite3_step(s);

        if (rc == SQLITE_DONE)
            return 0;
        if (rc != SQLITE_ROW)
            return db_error(js, e, rc, "cannot list jobs");
        row = rows_add(rows);
        if (!row)
            return err_set(e, -ENOMEM, "listing jobs: out of memory");
        r = read_row(js, s, row, e);
        if (r < 0) {
            rows->n--;
            return r;
        }
    }
}

int jobstore_list(struct jobstore *js, const struct job_filter *f,
                  job_row_fn fn, void *arg, struct err *e)
{
    static const struct job_filter all;
    struct rows rows = { 0 };
    sqlite3_stmt *s;
    int64_t limit;
    size_t i;
    int r, rc;

    if (!f)
        f = &all;
    if (!fn)
        return err_set(e, -EINVAL, "listing jobs: no callback");
    r = check_states_mask(e, f->states);
    if (r < 0)
        return r;
    /* LIMIT -1 is no limit in SQLite. */
    limit = f->limit == 0 || f->limit > INT64_MAX ? -1 : (int64_t)f->limit;
    s = js->st[f->tenant ? ST_LIST_TENANT : ST_LIST];

    /* Read first, call after: a callback then holds no lock and may call
     * back into the store, and the rows are one snapshot. */
    lock(js);
    rc = sqlite3_bind_int64(s, 1, f->after_seq);
    if (rc == SQLITE_OK)
        rc = bind_states(s, 2, f->states);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(s, 10, limit);
    if (rc == SQLITE_OK && f->tenant)
        rc = bind_text(s, 11, f->tenant);
    if (rc != SQLITE_OK)
        r = db_error(js, e, rc, "listing jobs: cannot bind values");
    else
        r = read_rows(js, s, &rows, e);
    done(s);
    unlock(js);

    for (i = 0; r == 0 && i < rows.n; i++)
        r = fn(arg, &rows.v[i]);
    rows_free(&rows);
    return r;
}

int jobstore_count(struct jobstore *js, const char *tenant, unsigned states,
                   uint64_t *ret_n, struct err *e)
{
    sqlite3_stmt *s = js->st[tenant ? ST_COUNT_TENANT : ST_COUNT];
    int r, rc;

    r = check_states_mask(e, states);
    if (r < 0)
        return r;
    lock(js);
    rc = bind_states(s, 1, states);
    if (rc == SQLITE_OK && tenant)
        rc = bind_text(s, 9, tenant);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *ret_n = (uint64_t)sqlite3_column_int64(s, 0);
    else
        r = db_error(js, e, rc, "cannot count jobs");
    done(s);
    unlock(js);
    return r;
}

struct history {
    struct job_transition *v;
    size_t n, cap;
};

static void history_free(struct history *h)
{
    size_t i;

    for (i = 0; i < h->n; i++)
        free((char *)h->v[i].reason);
    free(h->v);
}

static int read_history(struct jobstore *js, const char *id,
                        struct history *h, struct err *e)
{
    sqlite3_stmt *s = js->st[ST_TRANSITIONS];
    int rc;

    rc = bind_text(s, 1, id);
    if (rc != SQLITE_OK)
        return db_error(js, e, rc, "job %s: cannot bind values", id);
    for (;;) {
        struct job_transition *t;
        char *reason;
        int r;

        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW)
            return db_error(js, e, rc, "job %s: cannot read its history",
                            id);
        if (h->n == h->cap) {
            size_t cap = h->cap ? 2 * h->cap : 8;
            struct job_transition *v = realloc(h->v, cap * sizeof *v);

            if (!v)
                return err_set(e, -ENOMEM, "job %s: out of memory", id);
            h->v = v;
            h->cap = cap;
        }
        t = &h->v[h->n];
        memset(t, 0, sizeof *t);
        t->n = sqlite3_column_int64(s, 0);
        t->time_us = sqlite3_column_int64(s, 4);
        r = column_state(js, s, 2, id, &t->from, e);
        if (r >= 0)
            r = column_state(js, s, 3, id, &t->to, e);
        if (r >= 0 && t->to == JOB_STATE_NONE)
            r = err_set(e, -EBADMSG, "job %s: history row %" PRId64
                        " leads nowhere", id, t->n);
        if (r < 0)
            return r;
        if (column_dup(s, 5, false, &reason) < 0)
            return err_set(e, -ENOMEM, "job %s: out of memory", id);
        t->reason = reason;
        h->n++;
    }
    /* Every job has its submission row: none means no job. */
    if (h->n == 0)
        return err_set(e, -ENOENT, "no job %s", id);
    return 0;
}

int jobstore_transitions(struct jobstore *js, const char *id,
                         job_transition_fn fn, void *arg, struct err *e)
{
    struct history h = { 0 };
    size_t i;
    int r;

    if (!jobstore_id_valid(id))
        return bad_id(e, id);
    if (!fn)
        return err_set(e, -EINVAL, "job %s: no callback", id);
    lock(js);
    r = read_history(js, id, &h, e);
    done(js->st[ST_TRANSITIONS]);
    unlock(js);
    /* The id is the caller's, checked equal by the WHERE clause: rows can
     * point at it rather than at copies. */
    for (i = 0; r == 0 && i < h.n; i++) {
        h.v[i].job_id = id;
        r = fn(arg, &h.v[i]);
    }
    history_free(&h);
    return r;
}

/* --- storage held by jobs ---------------------------------------------- */

int jobstore_stored_bytes(struct jobstore *js, const char *tenant,
                          uint64_t *ret, struct err *e)
{
    sqlite3_stmt *s = js->st[ST_STORED_SUM];
    int r = 0, rc;

    if (!tenant)
        return err_set(e, -EINVAL, "stored bytes: no tenant");
    lock(js);
    rc = bind_text(s, 1, tenant);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        /* total() is a float, exact up to 2^53 bytes (8 PiB). */
        *ret = (uint64_t)sqlite3_column_double(s, 0);
    else
        r = db_error(js, e, rc, "cannot sum the storage of tenant '%s'",
                     tenant);
    done(s);
    unlock(js);
    return r;
}

struct tenant_bytes {
    char *tenant;
    uint64_t bytes;
};

int jobstore_stored_by_tenant(struct jobstore *js,
                              jobstore_tenant_bytes_fn fn, void *arg,
                              struct err *e)
{
    sqlite3_stmt *s = js->st[ST_STORED_BY_TENANT];
    struct tenant_bytes *v = NULL;
    size_t n = 0, cap = 0;
    int r = 0, rc;

    if (!fn)
        return err_set(e, -EINVAL, "stored bytes: no callback");
    lock(js);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            size_t c = cap ? 2 * cap : 16;
            struct tenant_bytes *nv = realloc(v, c * sizeof *nv);

            if (!nv) {
                r = err_set(e, -ENOMEM, "out of memory");
                break;
            }
            v = nv;
            cap = c;
        }
        if (column_dup(s, 0, true, &v[n].tenant) < 0) {
            r = err_set(e, -ENOMEM, "out of memory");
            break;
        }
        v[n++].bytes = (uint64_t)sqlite3_column_double(s, 1);
    }
    if (r >= 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
        r = db_error(js, e, rc, "cannot sum the storage of tenants");
    done(s);
    unlock(js);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = fn(arg, v[i].tenant, v[i].bytes);
    for (size_t i = 0; i < n; i++)
        free(v[i].tenant);
    free(v);
    return r;
}

/* Runs one UPDATE of the job `id` (bound as ?1) in a transaction of its
 * own; the statement's further parameters are bound by the caller. */
static int update_one(struct jobstore *js, sqlite3_stmt *s, const char *id,
                      const char *what, struct err *e)
{
    int r, rc;

    r = begin(js, e);
    if (r < 0)
        goto out;
    rc = bind_text(s, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        r = db_error(js, e, rc, "job %s: cannot %s", id, what);
    if (r >= 0)
        r = commit(js, e);
    if (r < 0)
        rollback(js);
out:
    done(s);
    return r;
}

int jobstore_files_removed(struct jobstore *js, const char *id,
                           enum jobstore_removed what, struct err *e)
{
    enum stmt_id st = what == JOBSTORE_ALL_REMOVED       ? ST_ALL_REMOVED
                      : what == JOBSTORE_BUNDLE_MISSING ? ST_BUNDLE_MISSING
                                                        : ST_BUNDLE_REMOVED;
    enum job_state cur;
    int r;

    if (!jobstore_id_valid(id))
        return bad_id(e, id);
    lock(js);
    r = current_state(js, id, &cur, e);
    if (r >= 0)
        r = update_one(js, js->st[st], id, "record what retention removed",
                       e);
    unlock(js);
    return r;
}

int jobstore_stored_forget(struct jobstore *js, unsigned states,
                           struct err *e)
{
    sqlite3_stmt *s;
    char sql[160];
    int r, rc;

    if (states == 0)
        return err_set(e, -EINVAL, "stored bytes: no state named");
    r = check_states_mask(e, states);
    if (r < 0)
        return r;
    /* Rare (once a start): prepared here rather than kept. */
    snprintf(sql, sizeof sql, "UPDATE jobs SET stored_bytes = NULL WHERE "
             STATES_IN_1);
    lock(js);
    rc = sqlite3_prepare_v2(js->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK) {
        r = db_error(js, e, rc, "cannot prepare '%s'", sql);
        goto out;
    }
    r = begin(js, e);
    rc = bind_states(s, 1, states);
    if (r >= 0 && rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (r >= 0 && rc != SQLITE_DONE)
        r = db_error(js, e, rc, "cannot forget stored bytes");
    sqlite3_finalize(s);
    if (r >= 0)
        r = commit(js, e);
    if (r < 0)
        rollback(js);
out:
    unlock(js);
    return r;
}

int jobstore_stored_unknown(struct jobstore *js, jobstore_id_fn fn, void *arg,
                            struct err *e)
{
    sqlite3_stmt *s = js->st[ST_STORED_UNKNOWN];
    char (*v)[JOBSTORE_ID_LEN + 1] = NULL;
    size_t n = 0, cap = 0;
    int r = 0, rc;

    if (!fn)
        return err_set(e, -EINVAL, "stored bytes: no callback");
    lock(js);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(s, 0);
        char buf[64];

        if (!id || !jobstore_id_valid(id)) {
            r = err_set(e, -EBADMSG, "job store '%s': bad job id '%s'",
                        js->path, esc(id, buf, sizeof buf));
            break;
        }
        if (n == cap) {
            size_t c = cap ? 2 * cap : 64;
            char (*nv)[JOBSTORE_ID_LEN + 1] = realloc(v, c * sizeof *nv);

            if (!nv) {
                r = err_set(e, -ENOMEM, "out of memory");
                break;
            }
            v = nv;
            cap = c;
        }
        memcpy(v[n++], id, JOBSTORE_ID_LEN + 1);
    }
    if (r >= 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
        r = db_error(js, e, rc, "cannot list jobs whose storage is not "
                     "counted");
    done(s);
    unlock(js);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = fn(arg, v[i]);
    free(v);
    return r;
}

int jobstore_stored_set(struct jobstore *js, const char *const *ids,
                        const uint64_t *bytes, size_t n, struct err *e)
{
    sqlite3_stmt *s = js->st[ST_STORED_SET];
    int r = 0, rc;

    for (size_t i = 0; i < n; i++) {
        if (!jobstore_id_valid(ids[i]))
            return bad_id(e, ids[i]);
        if (bytes[i] > INT64_MAX)
            return err_set(e, -ERANGE, "job %s: stored_bytes is too large",
                           ids[i]);
    }
    if (n == 0)
        return 0;
    lock(js);
    r = begin(js, e);
    for (size_t i = 0; r >= 0 && i < n; i++) {
        rc = bind_text(s, 1, ids[i]);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(s, 2, (int64_t)bytes[i]);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(s);
        if (rc != SQLITE_DONE)
            r = db_error(js, e, rc, "job %s: cannot set stored bytes",
                         ids[i]);
        done(s);
    }
    if (r >= 0)
        r = commit(js, e);
    if (r < 0)
        rollback(js);
    unlock(js);
    return r;
}

/* --- recovery ---------------------------------------------------------- */

struct active {
    char id[JOBSTORE_ID_LEN + 1];
    enum job_state state;
    bool requeue, recorded, cancel_requested;
    bool outcome;           /* what it ends as is persisted */
};

/* The running and completing jobs, read inside the reconcile transaction
 * before any is changed.  Mutex held. */
static int read_active(struct jobstore *js, struct active **ret, size_t *ret_n,
                       struct err *e)
{
    sqlite3_stmt *s = js->st[ST_ACTIVE];
    struct active *v = NULL;
    size_t n = 0, cap = 0;
    int r = 0, rc;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(s, 0);
        char buf[64];

        if (!id || !jobstore_id_valid(id)) {
            r = err_set(e, -EBADMSG, "job store '%s': bad job id '%s'",
                        js->path, esc(id, buf, sizeof buf));
            break;
        }
        if (n == cap) {
            size_t c = cap ? 2 * cap : 16;
            struct active *nv = realloc(v, c * sizeof *nv);

            if (!nv) {
                r = err_set(e, -ENOMEM, "out of memory");
                break;
            }
            v = nv;
            cap = c;
        }
        memcpy(v[n].id, id, JOBSTORE_ID_LEN + 1);
        r = column_state(js, s, 1, v[n].id, &v[n].state, e);
        if (r < 0)
            break;
        v[n].requeue = sqlite3_column_int(s, 2) != 0;
        v[n].recorded = sqlite3_column_int(s, 3) != 0;
        v[n].cancel_requested = sqlite3_column_int(s, 4) != 0;
        v[n].outcome = sqlite3_column_type(s, 5) != SQLITE_NULL;
        n++;
    }
    if (r >= 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
        r = db_error(js, e, rc, "cannot list active jobs");
    done(s);
    if (r < 0) {
        free(v);
        return r;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

int jobstore_reconcile(struct jobstore *js, int64_t now,
                       uint64_t *ret_requeued, uint64_t *ret_failed,
                       struct err *e)
{
    struct active *v = NULL;
    uint64_t requeued = 0, failed = 0;
    size_t n = 0, i;
    int r;

    if (now < 0)
        return err_set(e, -EINVAL, "reconcile: a time before the epoch");
    if (now == 0)
        now = now_us();

    /* One transaction: a crash during recovery leaves it undone, to be
     * done again at the next start, never half done. */
    lock(js);
    r = begin(js, e);
    if (r >= 0)
        r = read_active(js, &v, &n, e);
    for (i = 0; r >= 0 && i < n; i++) {
        struct job_update u = { .time_us = now };
        enum job_state to;

        if (v[i].state == JOB_RUNNING && v[i].requeue &&
            !v[i].cancel_requested) {
            /* A requeued job runs again from the start, on whatever
             * devices it is given then. */
            to = JOB_QUEUED;
            u.set = JOB_UPDATE_STARTED_US | JOB_UPDATE_DEVICES |
                    JOB_UPDATE_REASON;
            u.started_us = 0;
            u.devices = "[]";
            u.reason = "node restarted; requeued";
        } else if (v[i].state == JOB_COMPLETING &&
                   (v[i].recorded || v[i].outcome)) {
            continue;
        } else {
            to = JOB_FAILED;
            u.set = JOB_UPDATE_ENDED_US | JOB_UPDATE_REASON;
            u.ended_us = now;
            u.reason = "node restarted";
        }
        r = apply(js, v[i].id, v[i].state, to, &u, e);
        if (r >= 0 && to == JOB_QUEUED)
            requeued++;
        else if (r >= 0)
            failed++;
    }
    if (r >= 0)
        r = commit(js, e);
    if (r < 0) {
        rollback(js);
        err_prefix(e, "reconcile: ");
    }
    unlock(js);
    free(v);
    if (r < 0)
        return r;
    if (ret_requeued)
        *ret_requeued = requeued;
    if (ret_failed)
        *ret_failed = failed;
    return 0;
}
