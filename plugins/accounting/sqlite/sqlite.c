/*
 * accounting/sqlite - the usage ledger in an SQLite database.
 *
 * One row per record in table `usage`, keyed by record_id.  The database
 * runs in WAL mode with synchronous=FULL and every record() is its own
 * transaction, so a record is on disk when record() returns, and readers
 * never block the writer.
 *
 * The devices of a record are stored as a JSON array of
 * {"id":"...","model":"..."} objects, readable by SQLite's json functions.
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include <surplus/accounting.h>
#include <surplus/host.h>
#include <surplus/plugin.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

/* PRAGMA user_version of the schema below.  A database with a higher one
 * was written by a newer plugin and is refused rather than misread. */
#define SCHEMA_VERSION 1

#define DEFAULT_BUSY_TIMEOUT_MS 5000

struct ledger {
    const struct surplus_host *host;
    struct surplus_ctx *ctx;
    const char *path;
    sqlite3 *db;
    sqlite3_stmt *insert;
};

/* REAL columns may be NULL: SQLite stores a NaN as NULL. */
static const char schema_sql[] =
    "CREATE TABLE usage ("
    "record_id TEXT PRIMARY KEY NOT NULL, "
    "job_id TEXT NOT NULL, "
    "tenant TEXT NOT NULL, "
    "job_name TEXT NOT NULL, "
    "node TEXT NOT NULL, "
    "devices TEXT NOT NULL, "
    "start_us INTEGER NOT NULL, "
    "end_us INTEGER NOT NULL, "
    "duration_us INTEGER NOT NULL, "
    "device_seconds REAL, "
    "cpu_seconds REAL, "
    "max_rss_bytes INTEGER NOT NULL, "
    "exit_status INTEGER NOT NULL, "
    "state TEXT NOT NULL, "
    "bytes_in INTEGER NOT NULL, "
    "bytes_out INTEGER NOT NULL, "
    "cost_micros INTEGER NOT NULL, "
    "currency TEXT NOT NULL);\n"
    "CREATE INDEX usage_tenant_end ON usage (tenant, end_us);\n"
    "CREATE INDEX usage_end ON usage (end_us);\n"
    "PRAGMA user_version = 1;";

#define COLUMNS                                                              \
    "record_id, job_id, tenant, job_name, node, devices, start_us, end_us, " \
    "duration_us, device_seconds, cpu_seconds, max_rss_bytes, "              \
    "exit_status, state, bytes_in, bytes_out, cost_micros, currency"

/* Positions in COLUMNS, from 0 (columns) or 1 (parameters). */
enum {
    COL_RECORD_ID,
    COL_JOB_ID,
    COL_TENANT,
    COL_JOB_NAME,
    COL_NODE,
    COL_DEVICES,
    COL_START_US,
    COL_END_US,
    COL_DURATION_US,
    COL_DEVICE_SECONDS,
    COL_CPU_SECONDS,
    COL_MAX_RSS_BYTES,
    COL_EXIT_STATUS,
    COL_STATE,
    COL_BYTES_IN,
    COL_BYTES_OUT,
    COL_COST_MICROS,
    COL_CURRENCY,
};

static const char insert_sql[] =
    "INSERT INTO usage (" COLUMNS ") VALUES "
    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
    "?16, ?17, ?18) ON CONFLICT (record_id) DO NOTHING";

static const char query_sql[] =
    "SELECT " COLUMNS " FROM usage WHERE end_us >= ?1 AND end_us < ?2 "
    "ORDER BY end_us, record_id";

static const char query_tenant_sql[] =
    "SELECT " COLUMNS " FROM usage WHERE end_us >= ?1 AND end_us < ?2 "
    "AND tenant = ?3 ORDER BY end_us, record_id";

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
    default:
        return -EIO;
    }
}

static int db_error(struct ledger *l, int rc, const char *fmt, ...)
    SURPLUS_PRINTF(3, 4);

/*
 * host->error() for a failed SQLite call, with SQLite's message.  Called
 * with the connection's mutex held (or before the instance is shared), so
 * that the message is the one of this call and not of another thread's.
 */
static int db_error(struct ledger *l, int rc, const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return l->host->error(l->ctx, sqlite_errno(rc), "%s: %s", what,
                          l->db ? sqlite3_errmsg(l->db) : sqlite3_errstr(rc));
}

static int exec_sql(struct ledger *l, const char *sql, const char *what)
{
    int rc = sqlite3_exec(l->db, sql, NULL, NULL, NULL);

    if (rc != SQLITE_OK)
        return db_error(l, rc, "%s '%s'", what, l->path);
    return 0;
}

static int prepare(struct ledger *l, const char *sql, unsigned flags,
                   sqlite3_stmt **ret_stmt)
{
    int rc = sqlite3_prepare_v3(l->db, sql, -1, flags, ret_stmt, NULL);

    if (rc != SQLITE_OK)
        return db_error(l, rc, "cannot prepare statement on '%s'", l->path);
    return 0;
}

/* Runs a statement that returns one row, such as a PRAGMA, and hands it
 * back positioned on that row. */
static int query_row(struct ledger *l, const char *sql,
                     sqlite3_stmt **ret_stmt)
{
    sqlite3_stmt *stmt;
    int r, rc;

    r = prepare(l, sql, 0, &stmt);
    if (r < 0)
        return r;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *ret_stmt = stmt;
        return 0;
    }
    if (rc == SQLITE_DONE)
        r = l->host->error(l->ctx, -EIO, "'%s' on '%s' returned no row", sql,
                           l->path);
    else
        r = db_error(l, rc, "'%s' on '%s'", sql, l->path);
    sqlite3_finalize(stmt);
    return r;
}

static int open_db(struct ledger *l)
{
    int rc, err;

    rc = sqlite3_open_v2(l->path, &l->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                             SQLITE_OPEN_FULLMUTEX,
                         NULL);
    if (rc == SQLITE_OK)
        return 0;
    if (!l->db)
        return l->host->error(l->ctx, -ENOMEM,
                              "cannot open database '%s': %s", l->path,
                              sqlite3_errstr(rc));
    /* "unable to open database file" alone does not say that, for
     * instance, the directory is missing. */
    err = sqlite3_system_errno(l->db);
    if (err > 0)
        return l->host->error(l->ctx, -err,
                              "cannot open database '%s': %s (%s)", l->path,
                              sqlite3_errmsg(l->db), strerror(err));
    return db_error(l, rc, "cannot open database '%s'", l->path);
}

static int set_wal(struct ledger *l)
{
    sqlite3_stmt *stmt;
    const char *mode;
    int r;

    r = query_row(l, "PRAGMA journal_mode=WAL", &stmt);
    if (r < 0)
        return r;
    /* SQLite answers with the mode in effect, which is not WAL where WAL
     * is impossible (an in-memory database, say). */
    mode = (const char *)sqlite3_column_text(stmt, 0);
    if (!mode || sqlite3_stricmp(mode, "wal") != 0)
        r = l->host->error(l->ctx, -ENOTSUP,
                           "cannot use WAL on '%s': journal mode is '%s'",
                           l->path, mode ? mode : "(none)");
    sqlite3_finalize(stmt);
    return r;
}

static int configure(struct ledger *l, uint64_t busy_timeout_ms)
{
    int r, rc;

    sqlite3_extended_result_codes(l->db, 1);
    /* Before anything that may need a lock, the journal mode change
     * included. */
    rc = sqlite3_busy_timeout(l->db, (int)busy_timeout_ms);
    if (rc != SQLITE_OK)
        return db_error(l, rc, "cannot set busy timeout on '%s'", l->path);
    r = set_wal(l);
    if (r < 0)
        return r;
    return exec_sql(l, "PRAGMA synchronous=FULL",
                    "cannot set synchronous=FULL on");
}

static int read_schema_version(struct ledger *l, int *ret)
{
    sqlite3_stmt *stmt;
    int r;

    r = query_row(l, "PRAGMA user_version", &stmt);
    if (r < 0)
        return r;
    *ret = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    return 0;
}

static int check_schema_version(struct ledger *l, int version)
{
    if (version >= 0 && version <= SCHEMA_VERSION)
        return 0;
    return l->host->error(l->ctx, -ENOTSUP,
                          "database '%s' has schema version %d, which this "
                          "plugin does not know (it knows up to %d): written "
                          "by a newer version?",
                          l->path, version, SCHEMA_VERSION);
}

/*
 * Creates the schema in an empty database.  The transaction takes the write
 * lock from the start (IMMEDIATE), so that of two instances starting
 * together, one creates the schema and the other, once it gets the lock,
 * finds it there.
 */
static int create_schema(struct ledger *l)
{
    int r, version;

    r = exec_sql(l, "BEGIN IMMEDIATE", "cannot begin transaction on");
    if (r < 0)
        return r;
    r = read_schema_version(l, &version);
    if (r >= 0)
        r = check_schema_version(l, version);
    if (r >= 0 && version == 0)
        r = exec_sql(l, schema_sql, "cannot create schema in");
    if (r >= 0)
        r = exec_sql(l, "COMMIT", "cannot commit schema in");
    if (r < 0)
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

static int ensure_schema(struct ledger *l)
{
    int r, version;

    r = read_schema_version(l, &version);
    if (r < 0)
        return r;
    r = check_schema_version(l, version);
    if (r < 0 || version == SCHEMA_VERSION)
        return r;
    return create_schema(l);
}

static void ledger_fini(void *state)
{
    struct ledger *l = state;

    if (!l)
        return;
    sqlite3_finalize(l->insert);
    sqlite3_close_v2(l->db);
    free(l);
}

static int ledger_init(const struct surplus_host *host,
                       struct surplus_ctx *ctx, void **ret_state)
{
    uint64_t busy_timeout_ms;
    struct ledger *l;
    const char *path;
    int r;

    r = host->config_string(ctx, "path", NULL, &path);
    if (r < 0)
        return r;
    r = host->config_duration(ctx, "busy_timeout", DEFAULT_BUSY_TIMEOUT_MS,
                              &busy_timeout_ms);
    if (r < 0)
        return r;
    if (!path || !*path)
        return host->error(ctx, -EINVAL, "path is required");
    if (busy_timeout_ms > INT_MAX)
        return host->error(ctx, -EINVAL,
                           "busy_timeout: %" PRIu64 " ms is too long (at "
                           "most %d ms)",
                           busy_timeout_ms, INT_MAX);

    l = calloc(1, sizeof *l);
    if (!l)
        return host->error(ctx, -ENOMEM, "out of memory");
    l->host = host;
    l->ctx = ctx;
    l->path = path;

    r = open_db(l);
    if (r >= 0)
        r = configure(l, busy_timeout_ms);
    if (r >= 0)
        r = ensure_schema(l);
    if (r >= 0)
        r = prepare(l, insert_sql, SQLITE_PREPARE_PERSISTENT, &l->insert);
    if (r < 0) {
        ledger_fini(l);
        return r;
    }
    *ret_state = l;
    return 0;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* [{"id":"...","model":"..."},...] */
static int devices_to_json(struct ledger *l,
                           const struct surplus_usage_record *rec,
                           char **ret_json)
{
    json_error_t err;
    json_t *array;
    char *json;
    size_t i;

    array = json_array();
    if (!array)
        return l->host->error(l->ctx, -ENOMEM,
                              "record '%s': out of memory", rec->record_id);
    for (i = 0; i < rec->n_devices; i++) {
        const struct surplus_usage_device *d = &rec->devices[i];
        json_t *dev;

        dev = json_pack_ex(&err, 0, "{s:s, s:s}", "id", str_or_empty(d->id),
                           "model", str_or_empty(d->model));
        if (!dev) {
            json_decref(array);
            return l->host->error(
                l->ctx,
                json_error_code(&err) == json_error_out_of_memory ? -ENOMEM
                                                                   : -EINVAL,
                "record '%s': device %zu: %s", rec->record_id, i, err.text);
        }
        if (json_array_append_new(array, dev) < 0) {
            json_decref(array);
            return l->host->error(l->ctx, -ENOMEM,
                                  "record '%s': out of memory",
                                  rec->record_id);
        }
    }
    json = json_dumps(array, JSON_COMPACT);
    json_decref(array);
    if (!json)
        return l->host->error(l->ctx, -ENOMEM,
                              "record '%s': out of memory", rec->record_id);
    *ret_json = json;
    return 0;
}

static int malformed_devices(struct ledger *l, const char *record_id,
                             const char *why)
{
    return l->host->error(l->ctx, -EBADMSG,
                          "record '%s' in '%s': malformed devices column: %s",
                          record_id, l->path, why);
}

/*
 * Turns the devices column (`len` bytes at `json`) back into an array.
 * The strings of the devices point into the parsed document, returned in
 * *ret_root; the caller frees the array and drops the document once done
 * with the devices.
 */
static int parse_devices(struct ledger *l, const char *record_id,
                         const char *json, size_t len,
                         struct surplus_usage_device **ret_devices,
                         size_t *ret_n, json_t **ret_root)
{
    struct surplus_usage_device *devs = NULL;
    json_error_t err;
    json_t *root, *dev;
    size_t n, i;
    int r;

    /* A NUL byte inside the column would otherwise end the text early. */
    if (strlen(json) != len)
        return malformed_devices(l, record_id, "NUL byte in text");
    root = json_loads(json, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        if (json_error_code(&err) == json_error_out_of_memory)
            return l->host->error(l->ctx, -ENOMEM,
                                  "record '%s': out of memory", record_id);
        return malformed_devices(l, record_id, err.text);
    }
    if (!json_is_array(root)) {
        r = malformed_devices(l, record_id, "not an array");
        goto fail;
    }
    n = json_array_size(root);
    if (n > 0) {
        devs = calloc(n, sizeof *devs);
        if (!devs) {
            r = l->host->error(l->ctx, -ENOMEM,
                               "record '%s': out of memory", record_id);
            goto fail;
        }
    }
    json_array_foreach(root, i, dev) {
        if (json_unpack_ex(dev, &err, 0, "{s:s, s:s!}", "id", &devs[i].id,
                           "model", &devs[i].model) < 0) {
            char why[sizeof err.text + 32];

            snprintf(why, sizeof why, "device %zu: %s", i, err.text);
            r = malformed_devices(l, record_id, why);
            goto fail;
        }
    }
    *ret_devices = devs;
    *ret_n = n;
    *ret_root = root;
    return 0;

fail:
    free(devs);
    json_decref(root);
    return r;
}

/* Returns the name of a required field that is missing, or NULL. */
static const char *missing_field(const struct surplus_usage_record *rec)
{
    if (!rec->record_id || !*rec->record_id)
        return "record_id";
    if (!rec->job_id || !*rec->job_id)
        return "job_id";
    if (!rec->tenant || !*rec->tenant)
        return "tenant";
    if (!rec->state || !*rec->state)
        return "state";
    return NULL;
}

/* SQLite integers are signed: larger unsigned values would come back
 * negative, and in SQL they would compare wrongly. */
static const char *
unsigned_out_of_range(const struct surplus_usage_record *rec)
{
    if (rec->duration_us > INT64_MAX)
        return "duration_us";
    if (rec->max_rss_bytes > INT64_MAX)
        return "max_rss_bytes";
    if (rec->bytes_in > INT64_MAX)
        return "bytes_in";
    if (rec->bytes_out > INT64_MAX)
        return "bytes_out";
    return NULL;
}

static int check_record(struct ledger *l,
                        const struct surplus_usage_record *rec)
{
    const char *field;

    if (!rec)
        return l->host->error(l->ctx, -EINVAL, "record: no record");
    field = missing_field(rec);
    if (field && rec->record_id && *rec->record_id)
        return l->host->error(l->ctx, -EINVAL, "record '%s': %s is required",
                              rec->record_id, field);
    if (field)
        return l->host->error(l->ctx, -EINVAL, "record: %s is required",
                              field);
    field = unsigned_out_of_range(rec);
    if (field)
        return l->host->error(l->ctx, -ERANGE,
                              "record '%s': %s is too large",
                              rec->record_id, field);
    if (rec->n_devices > 0 && !rec->devices)
        return l->host->error(l->ctx, -EINVAL,
                              "record '%s': %zu devices but no array",
                              rec->record_id, rec->n_devices);
    return 0;
}

static int bind_text(sqlite3_stmt *s, int col, const char *v)
{
    return sqlite3_bind_text(s, col + 1, str_or_empty(v), -1, SQLITE_STATIC);
}

static int bind_int(sqlite3_stmt *s, int col, int64_t v)
{
    return sqlite3_bind_int64(s, col + 1, v);
}

/* The strings are bound SQLITE_STATIC: the caller clears the bindings
 * before they go away. */
static int bind_record(sqlite3_stmt *s, const struct surplus_usage_record *rec,
                       const char *devices)
{
    int rc;

    if ((rc = bind_text(s, COL_RECORD_ID, rec->record_id)) != SQLITE_OK ||
        (rc = bind_text(s, COL_JOB_ID, rec->job_id)) != SQLITE_OK ||
        (rc = bind_text(s, COL_TENANT, rec->tenant)) != SQLITE_OK ||
        (rc = bind_text(s, COL_JOB_NAME, rec->job_name)) != SQLITE_OK ||
        (rc = bind_text(s, COL_NODE, rec->node)) != SQLITE_OK ||
        (rc = bind_text(s, COL_DEVICES, devices)) != SQLITE_OK ||
        (rc = bind_int(s, COL_START_US, rec->start_us)) != SQLITE_OK ||
        (rc = bind_int(s, COL_END_US, rec->end_us)) != SQLITE_OK ||
        (rc = bind_int(s, COL_DURATION_US, (int64_t)rec->duration_us)) !=
            SQLITE_OK ||
        (rc = sqlite3_bind_double(s, COL_DEVICE_SECONDS + 1,
                                  rec->device_seconds)) != SQLITE_OK ||
        (rc = sqlite3_bind_double(s, COL_CPU_SECONDS + 1,
                                  rec->cpu_seconds)) != SQLITE_OK ||
        (rc = bind_int(s, COL_MAX_RSS_BYTES, (int64_t)rec->max_rss_bytes)) !=
            SQLITE_OK ||
        (rc = bind_int(s, COL_EXIT_STATUS, rec->exit_status)) != SQLITE_OK ||
        (rc = bind_text(s, COL_STATE, rec->state)) != SQLITE_OK ||
        (rc = bind_int(s, COL_BYTES_IN, (int64_t)rec->bytes_in)) !=
            SQLITE_OK ||
        (rc = bind_int(s, COL_BYTES_OUT, (int64_t)rec->bytes_out)) !=
            SQLITE_OK ||
        (rc = bind_int(s, COL_COST_MICROS, rec->cost_micros)) != SQLITE_OK)
        return rc;
    return bind_text(s, COL_CURRENCY, rec->currency);
}

static int ledger_record(void *state, const struct surplus_usage_record *rec)
{
    struct ledger *l = state;
    sqlite3_mutex *mutex;
    char *devices = NULL;
    int r, rc;

    r = check_record(l, rec);
    if (r < 0)
        return r;
    r = devices_to_json(l, rec, &devices);
    if (r < 0)
        return r;

    /* The statement is shared by every caller of this instance. */
    mutex = sqlite3_db_mutex(l->db);
    sqlite3_mutex_enter(mutex);
    rc = bind_record(l->insert, rec, devices);
    if (rc != SQLITE_OK)
        r = db_error(l, rc, "record '%s': cannot bind values",
                     rec->record_id);
    else {
        /* An id already stored is SQLITE_DONE as well, changing nothing. */
        rc = sqlite3_step(l->insert);
        if (rc != SQLITE_DONE)
            r = db_error(l, rc, "record '%s': cannot insert into '%s'",
                         rec->record_id, l->path);
    }
    sqlite3_reset(l->insert);
    sqlite3_clear_bindings(l->insert);
    sqlite3_mutex_leave(mutex);
    free(devices);
    return r;
}

/* Each record is durable when record() returns (WAL, synchronous=FULL), so
 * there is nothing to flush; SQLite's automatic checkpoint keeps the WAL
 * short without costing every caller of flush a checkpoint's fsyncs. */
static int ledger_flush(void *state)
{
    (void)state;
    return 0;
}

static const char *column_str(sqlite3_stmt *s, int col)
{
    return str_or_empty((const char *)sqlite3_column_text(s, col));
}

static double column_real(sqlite3_stmt *s, int col)
{
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return NAN;
    return sqlite3_column_double(s, col);
}

/* Fills *rec from the current row; its strings point into the row, its
 * devices are *ret_devices, with strings in *ret_root: both to be freed
 * once the callback has returned. */
static int row_to_record(struct ledger *l, sqlite3_stmt *s,
                         struct surplus_usage_record *rec,
                         struct surplus_usage_device **ret_devices,
                         json_t **ret_root)
{
    const char *devices;
    int r;

    memset(rec, 0, sizeof *rec);
    rec->record_id = column_str(s, COL_RECORD_ID);
    rec->job_id = column_str(s, COL_JOB_ID);
    rec->tenant = column_str(s, COL_TENANT);
    rec->job_name = column_str(s, COL_JOB_NAME);
    rec->node = column_str(s, COL_NODE);
    rec->start_us = sqlite3_column_int64(s, COL_START_US);
    rec->end_us = sqlite3_column_int64(s, COL_END_US);
    rec->duration_us = (uint64_t)sqlite3_column_int64(s, COL_DURATION_US);
    rec->device_seconds = column_real(s, COL_DEVICE_SECONDS);
    rec->cpu_seconds = column_real(s, COL_CPU_SECONDS);
    rec->max_rss_bytes = (uint64_t)sqlite3_column_int64(s, COL_MAX_RSS_BYTES);
    rec->exit_status = sqlite3_column_int(s, COL_EXIT_STATUS);
    rec->state = column_str(s, COL_STATE);
    rec->bytes_in = (uint64_t)sqlite3_column_int64(s, COL_BYTES_IN);
    rec->bytes_out = (uint64_t)sqlite3_column_int64(s, COL_BYTES_OUT);
    rec->cost_micros = sqlite3_column_int64(s, COL_COST_MICROS);
    rec->currency = column_str(s, COL_CURRENCY);
    devices = column_str(s, COL_DEVICES);
    r = parse_devices(l, rec->record_id, devices,
                      (size_t)sqlite3_column_bytes(s, COL_DEVICES),
                      ret_devices, &rec->n_devices, ret_root);
    rec->devices = *ret_devices;
    return r;
}

/* Steps the statement; 1 for a row, 0 at the end. */
static int step_row(struct ledger *l, sqlite3_stmt *s)
{
    sqlite3_mutex *mutex = sqlite3_db_mutex(l->db);
    int r, rc;

    sqlite3_mutex_enter(mutex);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        r = 1;
    else if (rc == SQLITE_DONE)
        r = 0;
    else
        r = db_error(l, rc, "cannot query '%s'", l->path);
    sqlite3_mutex_leave(mutex);
    return r;
}

static int run_query(struct ledger *l, sqlite3_stmt *s, surplus_usage_fn fn,
                     void *arg)
{
    for (;;) {
        struct surplus_usage_record rec;
        struct surplus_usage_device *devices = NULL;
        json_t *root = NULL;
        int r;

        /* The connection's mutex is not held while fn runs: a slow
         * consumer of a report must not hold up record(). */
        r = step_row(l, s);
        if (r <= 0)
            return r;
        r = row_to_record(l, s, &rec, &devices, &root);
        if (r < 0)
            return r;
        r = fn(arg, &rec);
        free(devices);
        json_decref(root);
        if (r != 0)
            return r;
    }
}

/*
 * The statement is prepared per call, not once: fn may itself call query()
 * on this instance, and a statement cannot serve two walks at once.
 */
static int ledger_query(void *state, const struct surplus_usage_query *q,
                        surplus_usage_fn fn, void *arg)
{
    struct ledger *l = state;
    sqlite3_mutex *mutex = sqlite3_db_mutex(l->db);
    sqlite3_stmt *s;
    int r, rc;

    if (!q || !fn)
        return l->host->error(l->ctx, -EINVAL, "query: %s is missing",
                              q ? "callback" : "query");
    sqlite3_mutex_enter(mutex);
    r = prepare(l, q->tenant ? query_tenant_sql : query_sql, 0, &s);
    if (r >= 0) {
        rc = sqlite3_bind_int64(s, 1, q->since_us);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(s, 2, q->until_us);
        if (rc == SQLITE_OK && q->tenant)
            rc = sqlite3_bind_text(s, 3, q->tenant, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK) {
            r = db_error(l, rc, "query: cannot bind values");
            sqlite3_finalize(s);
        }
    }
    sqlite3_mutex_leave(mutex);
    if (r < 0)
        return r;
    r = run_query(l, s, fn, arg);
    sqlite3_finalize(s);
    return r;
}

static const struct surplus_accounting_ops ledger_ops = {
    .record = ledger_record,
    .flush = ledger_flush,
    .query = ledger_query,
};

static const struct surplus_plugin ledger_plugin = {
    SURPLUS_PLUGIN_HEADER(SURPLUS_KIND_ACCOUNTING),
    .name = "sqlite",
    .version = PACKAGE_VERSION,
    .description = "usage ledger in an SQLite database, durable per record",
    .init = ledger_init,
    .fini = ledger_fini,
    .ops = &ledger_ops,
};

SURPLUS_PLUGIN_EXPORT(ledger_plugin)
