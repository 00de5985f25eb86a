/*
 * surplus usage [--since T] [--until T] [--tenant NAME]
 *               [--format table|csv|json]
 *
 * Reads usage records back: those whose end time lies in [since, until),
 * in the order the accounting plugin returns them (end time, then record
 * id).  With --url, --socket or --token-file, or for a caller who is not
 * root, they come from surplusd (GET /v1/usage), which shows a tenant only
 * its own; only root without those reads the ledger through the configured
 * accounting plugin directly (on the node, with or without the daemon).
 * The table is for people; CSV and JSON carry every field, unrounded, for
 * scripts and spreadsheets.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "calls.h"
#include "loader.h"
#include "units.h"

#define US_PER_SEC INT64_C(1000000)

enum format { FORMAT_TABLE, FORMAT_CSV, FORMAT_JSON };

/* ---- time arguments -------------------------------------------------------- */

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * US_PER_SEC + ts.tv_nsec / 1000;
}

/* Exactly `n` decimal digits; strtol would also take signs and blanks. */
static bool take_digits(const char **p, int n, int *ret)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *ret = v;
    return true;
}

static bool take_char(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31};

    return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil): exact for every year, unlike timegm where time_t or
 * tm_year are narrow. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Local wall-clock time to seconds since the epoch, DST decided by the
 * zone's rules for that date. */
static int local_to_epoch(int y, int mo, int d, int h, int mi, int s,
                          int64_t *ret)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = s, .tm_isdst = -1};
    time_t t;

    /* -1 is also 1969-12-31T23:59:59 UTC; only errno tells them apart. */
    errno = 0;
    t = mktime(&tm);
    if (t == (time_t)-1 && errno != 0)
        return -ERANGE;
    *ret = (int64_t)t;
    return 0;
}

/*
 * RFC 3339 / ISO 8601: YYYY-MM-DD, optionally followed by 'T' (or 't' or a
 * space, as RFC 3339 allows) and HH:MM[:SS[.fraction]], then 'Z', +HH:MM,
 * +HHMM, +HH (or '-') or nothing for local time.  A date alone is local
 * midnight.  Fractions finer than a microsecond are dropped.
 */
static int parse_datetime(const char *p, int64_t *ret)
{
    int y, mo, d, h = 0, mi = 0, s = 0, oh = 0, om = 0, sign = 0;
    int64_t frac = 0, secs;
    bool local = true;

    if (!take_digits(&p, 4, &y) || !take_char(&p, '-') ||
        !take_digits(&p, 2, &mo) || !take_char(&p, '-') ||
        !take_digits(&p, 2, &d))
        return -EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return -EINVAL;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!take_digits(&p, 2, &h) || !take_char(&p, ':') ||
            !take_digits(&p, 2, &mi))
            return -EINVAL;
        if (take_char(&p, ':')) {
            if (!take_digits(&p, 2, &s))
                return -EINVAL;
            if (take_char(&p, '.') || take_char(&p, ',')) {
                int64_t scale = US_PER_SEC / 10;
                if (*p < '0' || *p > '9')
                    return -EINVAL;
                for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
                    frac += (*p - '0') * scale;
            }
        }
        /* 60 is a leap second, which POSIX time folds into the next. */
        if (h > 23 || mi > 59 || s > 60)
            return -EINVAL;
        if (*p == 'Z' || *p == 'z') {
            p++;
            local = false;
        } else if (*p == '+' || *p == '-') {
            sign = *p++ == '-' ? -1 : 1;
            if (!take_digits(&p, 2, &oh))
                return -EINVAL;
            /* +HH, +HHMM or +HH:MM */
            if (*p != '\0') {
                take_char(&p, ':');
                if (!take_digits(&p, 2, &om))
                    return -EINVAL;
            }
            if (oh > 23 || om > 59)
                return -EINVAL;
            local = false;
        }
    }
    if (*p != '\0')
        return -EINVAL;
    if (local) {
        int r = local_to_epoch(y, mo, d, h, mi, s, &secs);
        if (r < 0)
            return r;
    } else {
        secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s -
               sign * (oh * 3600 + om * 60);
    }
    /* Four-digit years keep this far inside int64_t microseconds. */
    *ret = secs * US_PER_SEC + frac;
    return 0;
}

/* @SECONDS[.fraction], possibly negative, as date(1) takes it. */
static int parse_epoch(const char *p, int64_t *ret)
{
    const int64_t max_secs = INT64_MAX / US_PER_SEC - 1;
    int64_t secs = 0, frac = 0, scale = US_PER_SEC / 10;
    bool neg = take_char(&p, '-');

    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        secs = secs * 10 + (*p - '0');
        if (secs > max_secs)
            return -ERANGE;
    }
    if (take_char(&p, '.')) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += (*p - '0') * scale;
    }
    if (*p != '\0')
        return -EINVAL;
    *ret = neg ? -(secs * US_PER_SEC + frac) : secs * US_PER_SEC + frac;
    return 0;
}

static int parse_time(const char *s, int64_t now, int64_t *ret)
{
    uint64_t ms;
    int r;

    if (strcmp(s, "now") == 0) {
        *ret = now;
        return 0;
    }
    if (s[0] == '@')
        return parse_epoch(s + 1, ret);
    if (s[0] == '-') {
        /* A duration back from now: "-2h", "-7d", "-1h30m". */
        r = units_parse_duration_ms(s + 1, &ms);
        if (r < 0)
            return r;
        if (ms > (uint64_t)(INT64_MAX / 1000) ||
            now < INT64_MIN + (int64_t)ms * 1000)
            return -ERANGE;
        *ret = now - (int64_t)ms * 1000;
        return 0;
    }
    return parse_datetime(s, ret);
}

/* ---- formatting ------------------------------------------------------------ */

#define TIME_MAX 48

/* RFC 3339 in UTC; microseconds only where `frac` and they are not zero, so
 * that whole seconds read as people write them and nothing is lost. */
static char *format_time(int64_t us, bool frac, char *buf, size_t len)
{
    int64_t secs = us / US_PER_SEC, rem = us % US_PER_SEC;
    time_t t;
    struct tm tm;

    if (rem < 0) {
        rem += US_PER_SEC;
        secs--;
    }
    t = (time_t)secs;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, len, "@%lld", (long long)secs);
        return buf;
    }
    if (frac && rem != 0)
        snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (long long)rem);
    else
        snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
    return buf;
}

/* The shortest decimal that reads back as the same double, without an
 * exponent where one is not needed ("600", not "6e+02"); "" for NaN and
 * infinities, which a ledger stores as "unknown". */
static char *format_double(double v, char *buf, size_t len)
{
    if (!isfinite(v)) {
        snprintf(buf, len, "%s", "");
        return buf;
    }
    if (v == floor(v) && fabs(v) < 0x1p53) {
        snprintf(buf, len, "%.0f", v);
        return buf;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

/* Millionths as a decimal with at least two places and no trailing zeros
 * beyond them: 2.10, 0.005833. */
static char *format_cost(int64_t micros, const char *currency, char *buf,
                         size_t len)
{
    uint64_t a = micros < 0 ? (uint64_t)0 - (uint64_t)micros
                            : (uint64_t)micros;
    char frac[8];
    int n = 6;
    char cur[64];

    snprintf(frac, sizeof(frac), "%06llu",
             (unsigned long long)(a % (uint64_t)US_PER_SEC));
    while (n > 2 && frac[n - 1] == '0')
        n--;
    frac[n] = '\0';
    snprintf(buf, len, "%s%llu.%s%s%s", micros < 0 ? "-" : "",
             (unsigned long long)(a / (uint64_t)US_PER_SEC), frac,
             currency && *currency ? " " : "",
             currency ? err_escape(currency, cur, sizeof(cur)) : "");
    return buf;
}

/* [D-]HH:MM:SS, as sacct shows elapsed time. */
static char *format_elapsed(uint64_t us, char *buf, size_t len)
{
    uint64_t s = us / (uint64_t)US_PER_SEC;

    if (s >= 86400)
        snprintf(buf, len, "%llu-%02u:%02u:%02u",
                 (unsigned long long)(s / 86400),
                 (unsigned)(s % 86400 / 3600), (unsigned)(s % 3600 / 60),
                 (unsigned)(s % 60));
    else
        snprintf(buf, len, "%02u:%02u:%02u", (unsigned)(s / 3600),
                 (unsigned)(s % 3600 / 60), (unsigned)(s % 60));
    return buf;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* ---- table ------------------------------------------------------------------ */

enum {
    COL_END,
    COL_JOB,
    COL_TENANT,
    COL_NAME,
    COL_STATE,
    COL_EXIT,
    COL_DURATION,
    COL_DEVICES,
    COL_DEVICE_S,
    COL_CPU_S,
    COL_MAXRSS,
    COL_COST,
    N_COLS
};

/* Free-text columns are cut, as sacct does, with a '+' marking the cut;
 * ids never are, since people copy them into other commands. */
static const struct column {
    const char *title;
    bool right;
    size_t max;  /* 0: as wide as the widest value */
} columns[N_COLS] = {
    [COL_END] = {"END", false, 0},
    [COL_JOB] = {"JOB", false, 0},
    [COL_TENANT] = {"TENANT", false, 12},
    [COL_NAME] = {"NAME", false, 16},
    [COL_STATE] = {"STATE", false, 10},
    [COL_EXIT] = {"EXIT", true, 0},
    [COL_DURATION] = {"DURATION", true, 0},
    [COL_DEVICES] = {"DEVICES", true, 0},
    [COL_DEVICE_S] = {"DEV-S", true, 0},
    [COL_CPU_S] = {"CPU-S", true, 0},
    [COL_MAXRSS] = {"MAXRSS", true, 0},
    [COL_COST] = {"COST", true, 0},
};

/* What a terminal too narrow for every column keeps, most wanted first:
 * the first FIT_KEEP are always shown; the others are left out from the
 * end of this list until the table fits.  CSV and JSON have them all. */
static const int fit_order[N_COLS] = {
    COL_JOB,  COL_TENANT,   COL_COST, COL_STATE,   COL_END,
    COL_NAME, COL_DURATION, COL_EXIT, COL_DEVICES, COL_DEVICE_S,
    COL_CPU_S, COL_MAXRSS,
};
#define FIT_KEEP 3
/* Before a column is left out, these are cut (with '+') down to: */
static const size_t fit_min[N_COLS] = {[COL_NAME] = 8, [COL_TENANT] = 6};

struct table {
    char **cells;  /* n_rows * N_COLS */
    size_t n_rows, cap_rows;
    size_t width[N_COLS];
    bool shown[N_COLS];
};

/* Control characters and other bytes a terminal could act on become \xNN,
 * so that a job name cannot rewrite the screen. */
static char *cell_text(const char *s, size_t max)
{
    char esc[1024];
    size_t n;

    err_escape(str_or_empty(s), esc, sizeof(esc));
    n = strlen(esc);
    if (max > 0 && n > max) {
        esc[max - 1] = '+';
        esc[max] = '\0';
    }
    return strdup(esc);
}

static char *cell_number(const char *fmt, double v)
{
    char buf[64];

    if (isnan(v))
        return strdup("-");
    snprintf(buf, sizeof(buf), fmt, v);
    return strdup(buf);
}

static int table_add(struct table *t, const struct surplus_usage_record *rec)
{
    char buf[128];
    char **row;

    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows ? 2 * t->cap_rows : 64;
        char **cells = realloc(t->cells, cap * N_COLS * sizeof(*cells));
        if (cells == NULL)
            return -ENOMEM;
        t->cells = cells;
        t->cap_rows = cap;
    }
    row = t->cells + t->n_rows * N_COLS;
    row[COL_END] = strdup(format_time(rec->end_us, false, buf, sizeof(buf)));
    row[COL_JOB] = cell_text(rec->job_id, columns[COL_JOB].max);
    row[COL_TENANT] = cell_text(rec->tenant, columns[COL_TENANT].max);
    row[COL_NAME] = cell_text(rec->job_name, columns[COL_NAME].max);
    row[COL_STATE] = cell_text(rec->state, columns[COL_STATE].max);
    snprintf(buf, sizeof(buf), "%d", rec->exit_status);
    row[COL_EXIT] = strdup(buf);
    row[COL_DURATION] = strdup(format_elapsed(rec->duration_us, buf,
                                              sizeof(buf)));
    snprintf(buf, sizeof(buf), "%zu", rec->n_devices);
    row[COL_DEVICES] = strdup(buf);
    row[COL_DEVICE_S] = cell_number("%.0f", rec->device_seconds);
    row[COL_CPU_S] = cell_number("%.0f", rec->cpu_seconds);
    row[COL_MAXRSS] = strdup(units_format_size(rec->max_rss_bytes, buf,
                                               sizeof(buf)));
    row[COL_COST] = strdup(format_cost(rec->cost_micros, rec->currency, buf,
                                       sizeof(buf)));
    t->n_rows++;
    for (int c = 0; c < N_COLS; c++) {
        if (row[c] == NULL)
            return -ENOMEM;
        if (strlen(row[c]) > t->width[c])
            t->width[c] = strlen(row[c]);
    }
    return 0;
}

static size_t table_width(const struct table *t)
{
    size_t w = 0, n = 0;

    for (int c = 0; c < N_COLS; c++)
        if (t->shown[c]) {
            w += t->width[c];
            n++;
        }
    return n ? w + n - 1 : 0;
}

/* Fits the table into `avail` columns (0: no limit): cuts the columns of
 * fit_min when that is enough, else leaves out the least wanted column and
 * tries again.  What the kept columns cannot fit in overflows. */
static void table_fit(struct table *t, size_t avail)
{
    for (int c = 0; c < N_COLS; c++)
        t->shown[c] = true;
    for (int k = N_COLS - 1; avail > 0; k--) {
        size_t w = table_width(t), slack = 0, excess;

        if (w <= avail)
            return;
        for (int c = 0; c < N_COLS; c++)
            if (t->shown[c] && fit_min[c] && t->width[c] > fit_min[c])
                slack += t->width[c] - fit_min[c];
        if (w - slack > avail && k >= FIT_KEEP) {
            t->shown[fit_order[k]] = false;
            continue;
        }
        /* The least wanted is cut first. */
        excess = w - avail;
        for (int i = N_COLS - 1; i >= 0 && excess > 0; i--) {
            int c = fit_order[i];
            size_t cut;

            if (!t->shown[c] || !fit_min[c] || t->width[c] <= fit_min[c])
                continue;
            cut = t->width[c] - fit_min[c];
            if (cut > excess)
                cut = excess;
            t->width[c] -= cut;
            excess -= cut;
        }
        return;
    }
}

static void table_print_row(const struct table *t, char *const *row)
{
    int last = -1;
    bool first = true;

    for (int c = 0; c < N_COLS; c++)
        if (t->shown[c])
            last = c;
    for (int c = 0; c < N_COLS; c++) {
        const char *sep = first ? "" : " ";
        int w = (int)t->width[c];

        if (!t->shown[c])
            continue;
        first = false;
        /* A column cut to fit marks the cut with '+', as cell_text does. */
        if (strlen(row[c]) > t->width[c])
            printf("%s%.*s+", sep, w - 1, row[c]);
        else if (columns[c].right)
            printf("%s%*s", sep, w, row[c]);
        else if (c == last) /* no trailing blanks */
            printf("%s%s", sep, row[c]);
        else
            printf("%s%-*s", sep, w, row[c]);
    }
    putchar('\n');
}

static void table_print(struct table *t, size_t avail)
{
    char *titles[N_COLS];

    for (int c = 0; c < N_COLS; c++) {
        titles[c] = (char *)columns[c].title;
        if (strlen(titles[c]) > t->width[c])
            t->width[c] = strlen(titles[c]);
    }
    table_fit(t, avail);
    table_print_row(t, titles);
    for (size_t i = 0; i < t->n_rows; i++)
        table_print_row(t, t->cells + i * N_COLS);
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->n_rows * N_COLS; i++)
        free(t->cells[i]);
    free(t->cells);
}

/* ---- CSV (RFC 4180) ---------------------------------------------------------- */

static const char csv_header[] =
    "record_id,job_id,tenant,job_name,node,devices,start,end,duration_us,"
    "device_seconds,cpu_seconds,max_rss_bytes,exit_status,state,bytes_in,"
    "bytes_out,cost_micros,currency";

/* Quoted when it holds a comma, a quote or a line break; quotes doubled.
 * Other bytes pass through: CSV is data, and a reader must get the name
 * as it was recorded. */
static void csv_field(const char *s, bool last)
{
    s = str_or_empty(s);
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, stdout);
    } else {
        putchar('"');
        for (; *s; s++) {
            if (*s == '"')
                putchar('"');
            putchar(*s);
        }
        putchar('"');
    }
    putchar(last ? '\n' : ',');
}

/* id=model;id=model */
static char *csv_devices(const struct surplus_usage_record *rec)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (f == NULL)
        return NULL;
    for (size_t i = 0; i < rec->n_devices; i++)
        fprintf(f, "%s%s=%s", i ? ";" : "", str_or_empty(rec->devices[i].id),
                str_or_empty(rec->devices[i].model));
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int csv_record(const struct surplus_usage_record *rec)
{
    char buf[TIME_MAX], *devices = csv_devices(rec);

    if (devices == NULL)
        return -ENOMEM;
    csv_field(rec->record_id, false);
    csv_field(rec->job_id, false);
    csv_field(rec->tenant, false);
    csv_field(rec->job_name, false);
    csv_field(rec->node, false);
    csv_field(devices, false);
    csv_field(format_time(rec->start_us, true, buf, sizeof(buf)), false);
    csv_field(format_time(rec->end_us, true, buf, sizeof(buf)), false);
    printf("%llu,", (unsigned long long)rec->duration_us);
    printf("%s,", format_double(rec->device_seconds, buf, sizeof(buf)));
    printf("%s,", format_double(rec->cpu_seconds, buf, sizeof(buf)));
    printf("%llu,%d,", (unsigned long long)rec->max_rss_bytes,
           rec->exit_status);
    csv_field(rec->state, false);
    printf("%llu,%llu,%lld,", (unsigned long long)rec->bytes_in,
           (unsigned long long)rec->bytes_out, (long long)rec->cost_micros);
    csv_field(rec->currency, true);
    free(devices);
    return 0;
}

/* ---- JSON ---------------------------------------------------------------------- */

/* JSON strings must be UTF-8; a ledger need not be.  Bytes that are not
 * become \xNN text rather than failing the whole report. */
static json_t *json_text(const char *s)
{
    char esc[1024];
    json_t *j;

    s = str_or_empty(s);
    j = json_string(s);
    return j ? j : json_string(err_escape(s, esc, sizeof(esc)));
}

/* NaN is "unknown" in the ledger and has no JSON spelling. */
static json_t *json_number(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *record_json(const struct surplus_usage_record *rec)
{
    char start[TIME_MAX], end[TIME_MAX];
    json_t *devices = json_array();

    if (devices == NULL)
        return NULL;
    for (size_t i = 0; i < rec->n_devices; i++)
        json_array_append_new(
            devices, json_pack("{s:o, s:o}", "id",
                               json_text(rec->devices[i].id), "model",
                               json_text(rec->devices[i].model)));
    if (json_array_size(devices) != rec->n_devices) {
        json_decref(devices);
        return NULL;
    }
    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:I, s:s, s:I, s:I, s:o, s:o, "
        "s:I, s:i, s:o, s:I, s:I, s:I, s:o}",
        "record_id", json_text(rec->record_id), "job_id",
        json_text(rec->job_id), "tenant", json_text(rec->tenant), "job_name",
        json_text(rec->job_name), "node", json_text(rec->node), "devices",
        devices, "start", format_time(rec->start_us, true, start,
                                      sizeof(start)),
        "start_us", (json_int_t)rec->start_us, "end",
        format_time(rec->end_us, true, end, sizeof(end)), "end_us",
        (json_int_t)rec->end_us, "duration_us",
        (json_int_t)rec->duration_us, "device_seconds",
        json_number(rec->device_seconds), "cpu_seconds",
        json_number(rec->cpu_seconds), "max_rss_bytes",
        (json_int_t)rec->max_rss_bytes, "exit_status", rec->exit_status,
        "state", json_text(rec->state), "bytes_in",
        (json_int_t)rec->bytes_in, "bytes_out", (json_int_t)rec->bytes_out,
        "cost_micros", (json_int_t)rec->cost_micros, "currency",
        json_text(rec->currency));
}

/* One object per line inside the array: streamed, so that a large ledger
 * is never held in memory, and still one JSON document. */
static int json_record(const struct surplus_usage_record *rec, size_t n)
{
    json_t *o = record_json(rec);
    int r;

    if (o == NULL)
        return -ENOMEM;
    fputs(n == 0 ? "[\n  " : ",\n  ", stdout);
    r = json_dumpf(o, stdout, 0);
    json_decref(o);
    return r < 0 ? -EIO : 0;
}

/* ---- the query ------------------------------------------------------------------ */

struct walk {
    enum format format;
    struct table table;
    size_t n;
    int error;  /* ours, as opposed to the plugin's */
};

static int on_record(void *arg, const struct surplus_usage_record *rec)
{
    struct walk *w = arg;
    int r;

    switch (w->format) {
    case FORMAT_TABLE:
        r = table_add(&w->table, rec);
        break;
    case FORMAT_CSV:
        r = csv_record(rec);
        break;
    default:
        r = json_record(rec, w->n);
        break;
    }
    if (r < 0) {
        w->error = r;
        return r;
    }
    w->n++;
    return 0;
}

/* The configured accounting plugin, loaded and started as the runner
 * would; a failure is a configuration problem (78), reported once here. */
static int load_accounting(const struct config *cf, struct plugin **ret)
{
    struct settings s = {0};
    struct plugin *p = NULL;
    struct err e = {0};
    char *path = NULL;
    int r;

    r = plugin_find("accounting", cf->accounting.plugin, cf->plugin_dir,
                    &path, &e);
    if (r == 0)
        r = plugin_open(path, &p, &e);
    if (r == 0 && settings_copy(&cf->accounting.settings, &s) < 0)
        r = err_set(&e, -ENOMEM, "out of memory");
    if (r == 0)
        r = plugin_start(p, &s, &e);
    free(path);
    if (r < 0) {
        plugin_close(p);
        cli_error("%s", e.msg);
        return r == -ENOMEM ? EXIT_INTERNAL : EXIT_CONFIG;
    }
    *ret = p;
    return 0;
}

/* ---- or through surplusd ------------------------------------------------------ */

/* Whether the records come from surplusd rather than the ledger: the
 * daemon decides who sees what; the ledger is for root on the node. */
static bool through_daemon(const struct cli *cli)
{
    return cli->url != NULL || cli->socket != NULL ||
           cli->token_file != NULL || geteuid() != 0;
}

static const char *json_str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int64_t json_int(json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

/* A record of GET /v1/usage, as the plugin would have handed it over;
 * null (no number) is unknown, as NaN is in the ledger. */
static int record_from_json(json_t *o, struct walk *w)
{
    json_t *devs = json_object_get(o, "devices"), *d, *v;
    size_t n = json_array_size(devs), i;
    struct surplus_usage_device *dv = calloc(n + 1, sizeof(*dv));
    struct surplus_usage_record rec = {0};
    int r;

    if (dv == NULL)
        return -ENOMEM;
    json_array_foreach(devs, i, d) {
        dv[i].id = json_str(d, "id");
        dv[i].model = json_str(d, "model");
    }
    rec.record_id = json_str(o, "record_id");
    rec.job_id = json_str(o, "job_id");
    rec.tenant = json_str(o, "tenant");
    rec.job_name = json_str(o, "job_name");
    rec.node = json_str(o, "node");
    rec.devices = dv;
    rec.n_devices = n;
    rec.start_us = json_int(o, "start_us");
    rec.end_us = json_int(o, "end_us");
    rec.duration_us = (uint64_t)json_int(o, "duration_us");
    v = json_object_get(o, "device_seconds");
    rec.device_seconds = json_is_number(v) ? json_number_value(v) : NAN;
    v = json_object_get(o, "cpu_seconds");
    rec.cpu_seconds = json_is_number(v) ? json_number_value(v) : NAN;
    rec.max_rss_bytes = (uint64_t)json_int(o, "max_rss_bytes");
    rec.exit_status = (int)json_int(o, "exit_status");
    rec.state = json_str(o, "state");
    rec.bytes_in = (uint64_t)json_int(o, "bytes_in");
    rec.bytes_out = (uint64_t)json_int(o, "bytes_out");
    rec.cost_micros = json_int(o, "cost_micros");
    rec.currency = json_str(o, "currency");
    r = on_record(w, &rec);
    free(dv);
    return r;
}

/* GET /v1/usage?since=&until= and each record, of --tenant only if given,
 * through on_record(); 0 or the exit code, with the reason printed. */
static int query_daemon(struct cli *cli, const struct surplus_usage_query *q,
                        struct walk *w)
{
    char path[128], since[32] = "";
    struct reply rep;
    json_t *arr, *o;
    size_t i;
    int r;

    if (q->since_us != INT64_MIN)
        snprintf(since, sizeof(since), "since=%lld&",
                 (long long)q->since_us);
    snprintf(path, sizeof(path), "/v1/usage?%suntil=%lld", since,
             (long long)q->until_us);
    if ((r = client_request(cli, "GET", path, -1, -1, &rep)) != 0)
        return r;
    if (rep.status != 200) {
        r = client_fail(&rep);
        reply_free(&rep);
        return r;
    }
    arr = client_json(&rep);
    reply_free(&rep);
    if (!json_is_array(arr)) {
        if (arr != NULL)
            cli_error("surplusd answered something that is not a list of "
                      "usage records");
        json_decref(arr);
        return EXIT_INTERNAL;
    }
    if (w->format == FORMAT_CSV)
        puts(csv_header);
    json_array_foreach(arr, i, o) {
        const char *t = json_str(o, "tenant");

        if (q->tenant != NULL && (t == NULL || strcmp(t, q->tenant) != 0))
            continue;
        if ((r = record_from_json(o, w)) < 0) {
            cli_error("usage: %s", strerror(-r));
            json_decref(arr);
            return EXIT_INTERNAL;
        }
    }
    json_decref(arr);
    return 0;
}

static int bad_time(const char *option, const char *value, int r)
{
    char esc[256];

    err_escape(value, esc, sizeof(esc));
    if (r == -ERANGE)
        cli_error("usage: %s '%s': out of range", option, esc);
    else
        cli_error("usage: %s '%s' is not a time: expected a date-time such "
                  "as 2026-11-23T12:00:00Z, 2026-11-23T13:00:00+01:00 or "
                  "2026-11-23T12:00:00 (local), a date 2026-11-23, now, a "
                  "duration back from now such as -2h or -7d, or "
                  "@UNIXSECONDS",
                  option, esc);
    return EXIT_USAGE;
}

static void print_empty(enum format format, const struct surplus_usage_query *q)
{
    char since[TIME_MAX], until[TIME_MAX], tenant[256];

    if (format == FORMAT_CSV) {
        return;
    } else if (format == FORMAT_JSON) {
        fputs("[]\n", stdout);
        return;
    }
    if (q->since_us == INT64_MIN)
        snprintf(since, sizeof(since), "the beginning");
    else
        format_time(q->since_us, true, since, sizeof(since));
    format_time(q->until_us, true, until, sizeof(until));
    if (q->tenant)
        printf("no usage records between %s and %s for tenant %s\n", since,
               until, err_escape(q->tenant, tenant, sizeof(tenant)));
    else
        printf("no usage records between %s and %s\n", since, until);
}

int cmd_usage(struct cli *cli, int argc, char **argv)
{
    const char *since = NULL, *until = NULL, *fmt;
    struct surplus_usage_query q = {NULL, INT64_MIN, 0};
    struct walk w = {.format = cli->json ? FORMAT_JSON : FORMAT_TABLE};
    struct config *cf = NULL;
    struct plugin *p = NULL;
    struct err e = {0};
    int64_t now = now_us();
    int r;

    (void)argc;
    (void)argv;
    since = cli_opt(cli, "since");
    until = cli_opt(cli, "until");
    q.tenant = cli_opt(cli, "tenant");
    if ((fmt = cli_opt(cli, "format")) != NULL) {
        /* An explicit --format wins over the global --json. */
        if (strcmp(fmt, "table") == 0) {
            w.format = FORMAT_TABLE;
        } else if (strcmp(fmt, "csv") == 0) {
            w.format = FORMAT_CSV;
        } else if (strcmp(fmt, "json") == 0) {
            w.format = FORMAT_JSON;
        } else {
            char esc[256];
            cli_error("usage: --format '%s': expected table, csv or json",
                      err_escape(fmt, esc, sizeof(esc)));
            return EXIT_USAGE;
        }
    }
    if (q.tenant != NULL && *q.tenant == '\0') {
        cli_error("usage: --tenant needs a tenant name");
        return EXIT_USAGE;
    }
    if (since != NULL && (r = parse_time(since, now, &q.since_us)) < 0)
        return bad_time("--since", since, r);
    /* Without --until, a second past now: a record written the moment
     * before still shows, whatever the clocks' granularity. */
    q.until_us = now + US_PER_SEC;
    if (until != NULL && (r = parse_time(until, now, &q.until_us)) < 0)
        return bad_time("--until", until, r);
    if (q.since_us > q.until_us) {
        char a[TIME_MAX], b[TIME_MAX];
        cli_error("usage: --since %s is after --until %s",
                  format_time(q.since_us, true, a, sizeof(a)),
                  format_time(q.until_us, true, b, sizeof(b)));
        return EXIT_USAGE;
    }

    if (through_daemon(cli)) {
        r = query_daemon(cli, &q, &w);
        if (r == 0 && w.n == 0)
            print_empty(w.format, &q);
        else if (r == 0 && w.format == FORMAT_TABLE)
            table_print(&w.table, (size_t)cli_term_width());
        else if (r == 0 && w.format == FORMAT_JSON)
            fputs("\n]\n", stdout);
        table_free(&w.table);
        goto flush;
    }
    if ((r = cli_load_config(cli, &cf)) != 0)
        return r;
    r = load_accounting(cf, &p);
    config_free(cf);
    if (r != 0)
        return r;

    if (w.format == FORMAT_CSV)
        puts(csv_header);
    /* CSV and JSON are streamed.  When the walk fails half-way, the JSON
     * array stays unclosed: a script that ignores the exit status then
     * fails to parse rather than bill from a partial report. */
    r = accounting_query(p, &q, on_record, &w, &e);
    if (r < 0 && w.error == 0) {
        plugin_error(p, r, &e, "query failed");
        cli_error("%s", e.msg);
        r = EXIT_INTERNAL;
    } else if (r < 0) {
        cli_error("usage: %s", strerror(-w.error));
        r = EXIT_INTERNAL;
    } else if (w.n == 0) {
        print_empty(w.format, &q);
    } else if (w.format == FORMAT_TABLE) {
        table_print(&w.table, (size_t)cli_term_width());
    } else if (w.format == FORMAT_JSON) {
        fputs("\n]\n", stdout);
    }
    table_free(&w.table);
    plugin_close(p);
flush:
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("usage: cannot write the report: %s", strerror(errno));
        return EXIT_INTERNAL;
    }
    return r;
}
