#include "conform.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "calls.h"
#include "fsafe.h"
#include "loader.h"
#include "units.h"

#define BLOCK (64 * 1024)

/* ---- reporting ---------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static bool check(struct conform *c, bool cond, const char *fmt, ...)
{
    va_list ap;

    fprintf(c->out, "%s %d - ", cond ? "ok" : "not ok", ++c->n);
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
    fflush(c->out);
    if (cond)
        c->passed++;
    else
        c->failed++;
    return cond;
}

__attribute__((format(printf, 3, 4)))
static void skip(struct conform *c, const char *why, const char *fmt, ...)
{
    va_list ap;

    fprintf(c->out, "ok %d - ", ++c->n);
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fprintf(c->out, " # SKIP %s\n", why);
    fflush(c->out);
    c->skipped++;
}

__attribute__((format(printf, 2, 3)))
static void diag(struct conform *c, const char *fmt, ...)
{
    va_list ap;

    fputs("# ", c->out);
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
}

/* The plugin's own message for its last error, for "not ok" lines. */
/* The message of this thread's last plugin operation. */
static __thread struct err call_err;

static const char *why(struct plugin *p, int r)
{
    static __thread char buf[ERR_MSG_MAX + 64];

    (void)p;
    snprintf(buf, sizeof(buf), "%s (%s)", strerror(r < 0 ? -r : r),
             call_err.msg[0] ? call_err.msg : "no message");
    return buf;
}

/* ---- scratch directory ---------------------------------------------------- */

static void rm_rf(const char *path)
{
    (void)fsafe_remove_tree(path);
}

/* ---- instances ------------------------------------------------------------ */

static int inst_start(const char *path, const struct settings *base,
                      const char *scratch_path, struct plugin **ret,
                      struct err *e)
{
    struct settings s = {0};
    struct plugin *p;
    int r;

    r = plugin_open(path, &p, e);
    if (r < 0)
        return r;
    if (base != NULL ? settings_copy(base, &s) : 0) {
        plugin_close(p);
        return err_set(e, -ENOMEM, "out of memory");
    }
    if (s.name == NULL) {
        s.name = strdup(p->ctx.label);
        s.where = strdup("(surplus-plugin-check)");
    }
    if (scratch_path != NULL) {
        bool has_path = false;
        for (size_t i = 0; i < s.n; i++)
            has_path |= strcmp(s.v[i].key, "path") == 0;
        if (!has_path && settings_set_string(&s, "path", scratch_path,
                                             "(scratch)", true) < 0) {
            settings_free(&s);
            plugin_close(p);
            return err_set(e, -ENOMEM, "out of memory");
        }
    }
    r = plugin_start(p, &s, e);
    if (r < 0) {
        plugin_close(p);
        return r;
    }
    *ret = p;
    return 0;
}

/* ---- deterministic data streams ------------------------------------------- */

static void gen_block(uint8_t *buf, uint32_t seed, uint64_t block)
{
    uint64_t x = (seed * UINT64_C(0x9e3779b97f4a7c15)) ^ (block + 1) *
                                                             UINT64_C(0xbf58476d1ce4e5b9);

    for (size_t i = 0; i < BLOCK; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(buf + i, &x, 8);
    }
}

struct stream {
    int fd;
    uint64_t size;
    uint32_t seed;
    uint64_t done;   /* bytes written or verified */
    bool ok;         /* verifier: every byte matched and size was right */
};

static bool write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

static void *feed_thread(void *arg)
{
    struct stream *s = arg;
    uint8_t *buf = malloc(BLOCK);

    for (uint64_t off = 0; buf && off < s->size; off += BLOCK) {
        size_t len = s->size - off < BLOCK ? (size_t)(s->size - off) : BLOCK;
        gen_block(buf, s->seed, off / BLOCK);
        if (!write_all(s->fd, buf, len))
            break;
        s->done = off + len;
    }
    free(buf);
    close(s->fd);
    return NULL;
}

static void *verify_thread(void *arg)
{
    struct stream *s = arg;
    uint8_t *want = malloc(BLOCK), *got = malloc(BLOCK);
    uint64_t block = UINT64_MAX;

    s->ok = want != NULL && got != NULL;
    for (;;) {
        ssize_t n = read(s->fd, got, BLOCK - (size_t)(s->done % BLOCK));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (!s->ok)
            continue;
        if (s->done + (uint64_t)n > s->size) {
            s->ok = false;
            continue;
        }
        if (s->done / BLOCK != block) {
            block = s->done / BLOCK;
            gen_block(want, s->seed, block);
        }
        if (memcmp(want + s->done % BLOCK, got, (size_t)n) != 0)
            s->ok = false;
        s->done += (uint64_t)n;
    }
    if (s->done != s->size)
        s->ok = false;
    free(want);
    free(got);
    close(s->fd);
    return NULL;
}

/* put(key) of `size` generated bytes streamed through a pipe. */
static int stream_put(struct plugin *p, const char *key, uint64_t size,
                      uint32_t seed)
{
    struct stream s = {.size = size, .seed = seed};
    pthread_t t;
    int fds[2], r;

    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    s.fd = fds[1];
    if (pthread_create(&t, NULL, feed_thread, &s) != 0) {
        close(fds[0]);
        close(fds[1]);
        return -EAGAIN;
    }
    r = storage_put(p, key, fds[0], &call_err);
    close(fds[0]); /* a plugin that stopped early unblocks the feeder */
    pthread_join(t, NULL);
    return r;
}

/* get(key) into a pipe; *ret_ok says whether it matched (size, seed). */
static int stream_get(struct plugin *p, const char *key, uint64_t size,
                      uint32_t seed, bool *ret_ok)
{
    struct stream s = {.size = size, .seed = seed};
    pthread_t t;
    int fds[2], r;

    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    s.fd = fds[0];
    if (pthread_create(&t, NULL, verify_thread, &s) != 0) {
        close(fds[0]);
        close(fds[1]);
        return -EAGAIN;
    }
    r = storage_get(p, key, fds[1], &call_err);
    close(fds[1]);
    pthread_join(t, NULL);
    *ret_ok = s.ok;
    return r;
}

static long max_rss_kib(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* ---- storage ---------------------------------------------------------------- */

static int count_key(void *arg, const char *key,
                     const struct surplus_object_info *info)
{
    (void)info;
    if (strncmp(key, "check/list/", 11) == 0)
        (*(int *)arg)++;
    else
        (*(int *)arg) += 1000; /* a key outside the prefix */
    return 0;
}

static int stop_walk(void *arg, const char *key,
                     const struct surplus_object_info *info)
{
    (void)key;
    (void)info;
    (*(int *)arg)++;
    return 42;
}

/* A file of `size` bytes of `letter`, open for reading at offset 0. */
static int letter_file(const char *dir, char letter, size_t size)
{
    char path[4096];
    char *buf = malloc(size);
    int fd;

    if (buf == NULL)
        return -ENOMEM;
    memset(buf, letter, size);
    snprintf(path, sizeof(path), "%s/letter-%c", dir, letter);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0 && !write_all(fd, (uint8_t *)buf, size)) {
        close(fd);
        fd = -EIO;
    }
    free(buf);
    return fd;
}

struct atomic_run {
    struct plugin *reader;
    const char *dir;
    size_t size_a, size_b;
    int rounds;
    int torn, errors, seen_a, seen_b;
    volatile bool stop;
};

/* Reads the object over and over while another instance replaces it. */
static void *atomic_reader(void *arg)
{
    struct atomic_run *a = arg;
    char path[4096];
    char *buf = malloc(a->size_b > a->size_a ? a->size_b : a->size_a);
    int fd;

    snprintf(path, sizeof(path), "%s/reader", a->dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    while (!a->stop && fd >= 0 && buf != NULL) {
        struct stat st;
        ssize_t n;
        int r;

        if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
            break;
        r = storage_get(a->reader, "check/atomic",
                                           fd, &call_err);
        if (r < 0) {
            a->errors++;
            continue;
        }
        if (fstat(fd, &st) < 0)
            break;
        if ((size_t)st.st_size != a->size_a &&
            (size_t)st.st_size != a->size_b) {
            a->torn++;
            continue;
        }
        n = pread(fd, buf, (size_t)st.st_size, 0);
        if (n != st.st_size) {
            a->errors++;
            continue;
        }
        {
            char want = (size_t)st.st_size == a->size_a ? 'A' : 'B';
            bool same = true;
            for (ssize_t i = 0; i < n && same; i++)
                same = buf[i] == want;
            if (!same)
                a->torn++;
            else if (want == 'A')
                a->seen_a++;
            else
                a->seen_b++;
        }
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

static void storage_atomic(struct conform *c, struct plugin *w,
                           struct plugin *rd, const char *dir)
{
    struct atomic_run a = {.reader = rd, .dir = dir, .size_a = 1 << 20,
                           .size_b = 3 << 20, .rounds = 100};
    int fa = letter_file(dir, 'A', a.size_a), fb = letter_file(dir, 'B',
                                                               a.size_b);
    int put_errors = 0;
    pthread_t t;

    if (fa < 0 || fb < 0 || lseek(fa, 0, SEEK_SET) < 0 ||
        storage_put(w, "check/atomic", fa, &call_err) < 0 ||
        pthread_create(&t, NULL, atomic_reader, &a) != 0) {
        check(c, false, "storage: overwrite is atomic for a concurrent "
                        "reader (setup failed)");
        goto out;
    }
    for (int i = 0; i < a.rounds; i++) {
        int fd = i % 2 ? fa : fb;
        if (lseek(fd, 0, SEEK_SET) < 0 ||
            storage_put(w, "check/atomic", fd, &call_err) < 0)
            put_errors++;
    }
    a.stop = true;
    pthread_join(t, NULL);
    check(c, a.torn == 0 && a.errors == 0 && put_errors == 0 &&
                 a.seen_a + a.seen_b > 0,
          "storage: overwrite is atomic for a concurrent reader (%d puts, "
          "%d reads by a second instance: %d torn, %d errors)",
          a.rounds, a.seen_a + a.seen_b + a.torn + a.errors, a.torn,
          a.errors + put_errors);
out:
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
}

static void storage_hostile(struct conform *c, struct plugin *p,
                            const char *scratch)
{
    static const char *const keys[] = {
        "../escape", "/etc/passwd", "a/../../escape", "a//b", "", ".",
        "..", "a/./b", "a/", "/", "new\nline", "tab\tkey", "back\\slash",
        "sp ace", "a/..", "\xff\xfe", NULL};
    char path[4096];
    int refused = 0, total = 0;
    struct stat st;

    for (const char *const *k = keys; *k; k++) {
        char shown[64];
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int r = storage_put(p, *k, fd, &call_err);

        close(fd);
        total++;
        if (r == -EINVAL)
            refused++;
        else
            diag(c, "key \"%s\": put returned %d, want -EINVAL",
                 err_escape(*k, shown, sizeof(shown)), r);
    }
    {
        char longkey[SURPLUS_KEY_MAX + 2];
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        memset(longkey, 'k', sizeof(longkey) - 1);
        longkey[sizeof(longkey) - 1] = '\0';
        total++;
        if (storage_put(p, longkey, fd, &call_err) == -EINVAL)
            refused++;
        close(fd);
    }
    snprintf(path, sizeof(path), "%s/escape", scratch);
    check(c, refused == total && lstat(path, &st) < 0,
          "storage: hostile keys refused with -EINVAL (%d of %d), nothing "
          "written outside the store", refused, total);
}

static void storage_checks(struct conform *c, const char *path,
                           const struct settings *base, const char *scratch,
                           struct plugin *p)
{
    struct surplus_object_info info = {0};
    char store[4096], human[32];
    struct plugin *p2 = NULL;
    struct err e = {0};
    bool ok = false;
    long rss0, rss1;
    int r, n;

    snprintf(store, sizeof(store), "%s/store", scratch);

    r = stream_put(p, "check/round-trip", 3 * 1024 * 1024 + 7, 1);
    check(c, r == 0, "storage: put of a 3 MiB object from a pipe%s%s",
          r ? ": " : "", r ? why(p, r) : "");
    r = stream_get(p, "check/round-trip", 3 * 1024 * 1024 + 7, 1, &ok);
    check(c, r == 0 && ok, "storage: get returns exactly what was put%s%s",
          r ? ": " : "", r ? why(p, r) : "");
    r = storage_stat(p, "check/round-trip", &info, &call_err);
    check(c, r == 0 && info.size == 3 * 1024 * 1024 + 7 && info.mtime_us > 0,
          "storage: stat reports size %llu and a modification time",
          (unsigned long long)info.size);

    r = stream_put(p, "check/round-trip", 1000, 2);
    if (r == 0)
        r = stream_get(p, "check/round-trip", 1000, 2, &ok);
    check(c, r == 0 && ok, "storage: put over an existing object replaces "
                           "it");

    r = stream_put(p, "check/nested/dir/object.bin", 10, 3);
    check(c, r == 0, "storage: keys with several components work%s%s",
          r ? ": " : "", r ? why(p, r) : "");

    {
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        int g = storage_get(p, "check/missing", fd, &call_err);
        int s = storage_stat(p, "check/missing", &info, &call_err);
        int d = storage_remove(p, "check/missing", &call_err);
        close(fd);
        check(c, g == -ENOENT && s == -ENOENT && d == -ENOENT,
              "storage: a missing key is -ENOENT for get, stat and remove "
              "(got %d, %d, %d)", g, s, d);
    }

    n = 0;
    r = stream_put(p, "check/list/a", 1, 4);
    if (r == 0)
        r = stream_put(p, "check/list/b", 1, 4);
    if (r == 0)
        r = storage_list(p, "check/list/", count_key, &n, &call_err);
    check(c, r == 0 && n == 2, "storage: list by prefix finds exactly the "
                               "2 objects under it (found %d)", n);
    n = 0;
    r = storage_list(p, "", stop_walk, &n, &call_err);
    check(c, r == 42 && n == 1, "storage: list stops when the callback "
                                "returns non-zero, and returns its value");

    r = storage_remove(p, "check/list/a", &call_err);
    check(c, r == 0 && storage_stat(p, "check/list/a", &info, &call_err) == -ENOENT,
          "storage: remove deletes the object");

    storage_hostile(c, p, scratch);

    if (inst_start(path, base, store, &p2, &e) < 0) {
        check(c, false, "storage: a second instance starts: %s", e.msg);
    } else {
        r = stream_get(p2, "check/round-trip", 1000, 2, &ok);
        check(c, r == 0 && ok, "storage: a second instance reads what the "
                               "first stored");
        storage_atomic(c, p, p2, scratch);
        plugin_close(p2);
    }

    rss0 = max_rss_kib();
    r = stream_put(p, "check/large", c->large_bytes, 5);
    if (r == 0)
        r = stream_get(p, "check/large", c->large_bytes, 5, &ok);
    rss1 = max_rss_kib();
    units_format_size(c->large_bytes, human, sizeof(human));
    check(c, r == 0 && ok, "storage: a %s object streams through put and "
                           "get intact%s%s", human, r ? ": " : "",
          r ? why(p, r) : "");
    check(c, rss1 - rss0 < 64 * 1024,
          "storage: streaming %s raised peak memory by %ld KiB (limit 64 "
          "MiB)", human, rss1 - rss0);
    storage_remove(p, "check/large", &call_err);
}

/* ---- accounting ------------------------------------------------------------- */

struct collected {
    int n;
    char ids[16][64];
    char first_job[64];
    int devices_ok;
};

static int collect(void *arg, const struct surplus_usage_record *rec)
{
    struct collected *col = arg;

    if (col->n == 0) {
        snprintf(col->first_job, sizeof(col->first_job), "%s",
                 rec->job_id ? rec->job_id : "");
        col->devices_ok = rec->n_devices == 2 && rec->devices &&
                          strcmp(rec->devices[0].id, "dev-0") == 0 &&
                          strcmp(rec->devices[1].model, "Model \"B\"") == 0 &&
                          rec->duration_us == 61000000 &&
                          rec->exit_status == 3 && rec->bytes_out == 77 &&
                          rec->cost_micros == 1234567 &&
                          rec->currency && strcmp(rec->currency, "USD") == 0;
    }
    if (col->n < 16)
        snprintf(col->ids[col->n], sizeof(col->ids[0]), "%s",
                 rec->record_id);
    col->n++;
    return 0;
}

static int take_cpu_seconds(void *arg, const struct surplus_usage_record *rec)
{
    *(double *)arg = rec->cpu_seconds;
    return 0;
}

static int stop_after_one(void *arg, const struct surplus_usage_record *rec)
{
    (void)rec;
    (*(int *)arg)++;
    return 7;
}

static struct surplus_usage_record mkrec(const char *id, const char *tenant,
                                         int64_t end_us, const char *job)
{
    static const struct surplus_usage_device devs[] = {
        {"dev-0", "Model A"}, {"dev-1", "Model \"B\""}};
    struct surplus_usage_record r = {
        .record_id = id, .job_id = job, .tenant = tenant,
        .job_name = "conformance", .node = "node-1", .devices = devs,
        .n_devices = 2, .start_us = end_us - 61000000, .end_us = end_us,
        .duration_us = 61000000, .device_seconds = 122.0,
        .cpu_seconds = 1.5, .max_rss_bytes = 1 << 20, .exit_status = 3,
        .state = "failed", .bytes_in = 10, .bytes_out = 77,
        .cost_micros = 1234567, .currency = "USD"};
    return r;
}

static void accounting_checks(struct conform *c, const char *path,
                              const struct settings *base,
                              const char *scratch, struct plugin **pp)
{
    struct plugin *p = *pp;
    const int64_t t0 = INT64_C(1767225600000000); /* 2026-01-01 UTC */
    struct surplus_usage_query all = {NULL, 0, INT64_MAX};
    struct surplus_usage_record r1 = mkrec("check-r1", "tenant-a", t0, "j1");
    struct surplus_usage_record dup = mkrec("check-r1", "tenant-a", t0, "j2");
    struct collected col = {0};
    char dbpath[4096];
    struct err e = {0};
    int r, n;

    snprintf(dbpath, sizeof(dbpath), "%s/accounting", scratch);
    r = accounting_record(p, &r1, &call_err);
    check(c, r == 0, "accounting: record stores a usage record%s%s",
          r ? ": " : "", r ? why(p, r) : "");
    r = accounting_record(p, &dup, &call_err);
    check(c, r == 0, "accounting: recording the same record id again "
                     "succeeds%s%s", r ? ": " : "", r ? why(p, r) : "");
    r = accounting_query(p, &all, collect, &col, &call_err);
    check(c, r == 0 && col.n == 1 && strcmp(col.first_job, "j1") == 0,
          "accounting: a record id recorded twice counts once, first copy "
          "kept (found %d)", col.n);
    check(c, col.devices_ok, "accounting: every field, devices included, "
                             "reads back as recorded");
    if (accounting_has_flush(p)) {
        r = accounting_flush(p, &call_err);
        check(c, r == 0, "accounting: flush succeeds");
    }

    plugin_close(p);
    *pp = NULL;
    r = inst_start(path, base, dbpath, pp, &e);
    if (!check(c, r == 0, "accounting: restarts on the same ledger%s%s",
               r ? ": " : "", r ? e.msg : ""))
        return;
    p = *pp;
    memset(&col, 0, sizeof(col));
    r = accounting_query(p, &all, collect, &col, &call_err);
    check(c, r == 0 && col.n == 1,
          "accounting: the record survives close and reopen");

    {
        static const struct {
            const char *id, *tenant;
            int sec;
        } recs[] = {{"check-a1", "tenant-a", 10}, {"check-b1", "tenant-b", 15},
                    {"check-a2", "tenant-a", 20}, {"check-a3", "tenant-a", 30},
                    {"check-b2", "tenant-b", 25}, {"check-a4", "tenant-a", 40}};
        int bad = 0;
        for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
            struct surplus_usage_record rec =
                mkrec(recs[i].id, recs[i].tenant,
                      t0 + recs[i].sec * INT64_C(1000000), "j");
            bad += accounting_record(p, &rec, &call_err) != 0;
        }
        struct surplus_usage_query q = {"tenant-a", t0 + 20 * INT64_C(1000000),
                                        t0 + 40 * INT64_C(1000000)};
        memset(&col, 0, sizeof(col));
        r = accounting_query(p, &q, collect, &col, &call_err);
        check(c, bad == 0 && r == 0 && col.n == 2 &&
                     strcmp(col.ids[0], "check-a2") == 0 &&
                     strcmp(col.ids[1], "check-a3") == 0,
              "accounting: query by tenant and [since, until) returns "
              "exactly the matching records, in end-time order (got %d)",
              col.n);
        struct surplus_usage_query qb = {"tenant-b", 0, INT64_MAX};
        memset(&col, 0, sizeof(col));
        r = accounting_query(p, &qb, collect, &col, &call_err);
        check(c, r == 0 && col.n == 2 && strcmp(col.ids[0], "check-b1") == 0,
              "accounting: a tenant sees only its own records (got %d)",
              col.n);
        memset(&col, 0, sizeof(col));
        r = accounting_query(p, &all, collect, &col, &call_err);
        check(c, r == 0 && col.n == 7, "accounting: a query of every tenant "
                                       "returns all 7 records (got %d)",
              col.n);
    }
    n = 0;
    r = accounting_query(p, &all, stop_after_one, &n, &call_err);
    check(c, r == 7 && n == 1, "accounting: query stops when the callback "
                               "returns non-zero, and returns its value");
    {
        struct surplus_usage_record bad = mkrec("", "tenant-a", t0, "j");
        r = accounting_record(p, &bad, &call_err);
        check(c, r == -EINVAL, "accounting: a record without a record id "
                               "is refused with -EINVAL (got %d)", r);
    }
    {
        /* A value that is not known (a CPU time not measured) is NaN,
         * and must stay NaN: 0 would read as a measurement. */
        struct surplus_usage_record rec = mkrec("check-nan", "tenant-nan",
                                                t0, "j");
        struct surplus_usage_query q = {"tenant-nan", 0, INT64_MAX};
        double cpu = 0.0;

        rec.cpu_seconds = NAN;
        r = accounting_record(p, &rec, &call_err);
        if (r == 0)
            r = accounting_query(p, &q, take_cpu_seconds, &cpu, &call_err);
        check(c, r == 0 && isnan(cpu), "accounting: an unknown cpu_seconds "
                                       "(NaN) reads back as NaN (got %g)%s%s",
              cpu, r ? ": " : "", r ? why(p, r) : "");
    }
}

/* ---- accelerator ------------------------------------------------------------ */

#define MAX_DEVICES 64

struct inventory {
    int n;
    char id[MAX_DEVICES][128];
    char model[MAX_DEVICES][128];
    uint64_t memory[MAX_DEVICES];
    int healthy[MAX_DEVICES];
    char where[MAX_DEVICES][256]; /* pci bus id, node, detail: shown only */
    bool reasons_ok;
};

static int take_device(void *arg, const struct surplus_device *d)
{
    struct inventory *inv = arg;

    if (inv->n >= MAX_DEVICES)
        return 0;
    snprintf(inv->id[inv->n], sizeof(inv->id[0]), "%s", d->id ? d->id : "");
    snprintf(inv->model[inv->n], sizeof(inv->model[0]), "%s",
             d->model ? d->model : "");
    inv->memory[inv->n] = d->memory_bytes;
    inv->healthy[inv->n] = d->healthy;
    snprintf(inv->where[inv->n], sizeof(inv->where[0]), "%s%s%s%s%s%s",
             d->pci_bus_id ? ", pci " : "", d->pci_bus_id ? d->pci_bus_id : "",
             d->node ? ", node " : "", d->node ? d->node : "",
             d->detail ? ", " : "", d->detail ? d->detail : "");
    if (!d->healthy && (d->reason == NULL || *d->reason == '\0'))
        inv->reasons_ok = false;
    inv->n++;
    return 0;
}

static int lease_try(struct plugin *p, const char *lease_id,
                     const char *const *ids, size_t n,
                     struct surplus_lease_out *out)
{
    struct surplus_lease l = {lease_id, "check-job", "check-tenant", ids, n,
                              out};
    return accelerator_prepare(p, &l, &call_err);
}

static int lease_release(struct plugin *p, const char *lease_id,
                         const char *const *ids, size_t n,
                         struct surplus_scrub_report *rep)
{
    struct surplus_lease l = {lease_id, "check-job", "check-tenant", ids, n,
                              NULL};
    return accelerator_release(p, &l, rep, &call_err);
}

static void accelerator_checks(struct conform *c, struct plugin *p)
{
    struct inventory a = {.reasons_ok = true}, b = {.reasons_ok = true};
    struct surplus_lease_out out = {0};
    struct surplus_scrub_report rep = {0};
    const char *dev = NULL, *dev2 = NULL;
    bool unique = true, described = true, same;
    int r;

    r = accelerator_discover(p, take_device, &a, &call_err);
    if (r == -ENODEV) {
        check(c, call_err.msg[0] != '\0',
              "accelerator: no devices, and the plugin says why: %s",
              call_err.msg);
        skip(c, "no devices", "accelerator: lease checks");
        return;
    }
    if (!check(c, r == 0, "accelerator: discover succeeds (%d devices)%s%s",
               a.n, r ? ": " : "", r ? why(p, r) : ""))
        return;
    r = accelerator_discover(p, take_device, &b, &call_err);
    same = r == 0 && a.n == b.n;
    for (int i = 0; same && i < a.n; i++)
        same = strcmp(a.id[i], b.id[i]) == 0;
    check(c, same, "accelerator: device ids are stable across discover "
                   "calls");
    for (int i = 0; i < a.n; i++) {
        for (int j = i + 1; j < a.n; j++)
            unique &= strcmp(a.id[i], a.id[j]) != 0;
        described &= a.id[i][0] && a.model[i][0] && a.memory[i] > 0;
        if (a.healthy[i] && dev == NULL)
            dev = a.id[i];
        else if (a.healthy[i] && dev2 == NULL)
            dev2 = a.id[i];
        diag(c, "device %s: %s, %llu bytes, %s%s", a.id[i], a.model[i],
             (unsigned long long)a.memory[i],
             a.healthy[i] ? "healthy" : "unhealthy", a.where[i]);
    }
    check(c, unique && described && a.reasons_ok,
          "accelerator: every device has a unique id, a model, memory, and "
          "a reason when unhealthy");
    if (dev == NULL) {
        skip(c, "no healthy device", "accelerator: lease checks");
        return;
    }

    {
        const char *ids[] = {dev};
        const char *gpus;
        r = lease_try(p, "check-lease-1", ids, 1, &out);
        gpus = lease_out_getenv(&out, "SURPLUS_GPUS");
        check(c, r == 0 && gpus != NULL && strcmp(gpus, dev) == 0,
              "accelerator: prepare leases %s and sets SURPLUS_GPUS to its "
              "id (%zu variables, %zu device nodes)%s%s", dev, out.n_env,
              out.n_devices, r ? ": " : "", r ? why(p, r) : "");
        for (size_t i = 0; i < out.n_env; i++)
            diag(c, "lease environment: %s", out.env[i]);
        for (size_t i = 0; i < out.n_devices; i++)
            diag(c, "lease device node: %s", out.devices[i]);
        lease_out_free(&out);

        r = lease_try(p, "check-lease-2", ids, 1, &out);
        lease_out_free(&out);
        check(c, r == -EBUSY, "accelerator: a device held by another lease "
                              "is refused with -EBUSY (got %d)", r);
        if (r == 0)
            lease_release(p, "check-lease-2", ids, 1, &rep);

        r = lease_release(p, "check-lease-1", ids, 1, &rep);
        check(c, r == 0 && rep.bytes > 0,
              "accelerator: release scrubs the device (%llu bytes in %.3f "
              "ms)%s%s", (unsigned long long)rep.bytes,
              rep.duration_ns / 1e6, r ? ": " : "", r ? why(p, r) : "");
        memset(&rep, 0, sizeof(rep));
        r = lease_release(p, "check-lease-1", ids, 1, &rep);
        check(c, r == 0, "accelerator: releasing the same lease twice is "
                         "harmless%s%s", r ? ": " : "", r ? why(p, r) : "");

        r = lease_try(p, "check-lease-3", ids, 1, &out);
        lease_out_free(&out);
        check(c, r == 0, "accelerator: a released device can be leased "
                         "again%s%s", r ? ": " : "", r ? why(p, r) : "");
        if (r == 0)
            lease_release(p, "check-lease-3", ids, 1, &rep);
    }
    {
        const char *ids[] = {"surplus-check-no-such-device"};
        r = lease_try(p, "check-lease-4", ids, 1, &out);
        lease_out_free(&out);
        check(c, r == -ENODEV, "accelerator: a lease of a device that does "
                               "not exist is refused with -ENODEV (got %d)",
              r);
        if (r == 0)
            lease_release(p, "check-lease-4", ids, 1, &rep);
    }
    {
        const char *ids[] = {dev, dev};
        r = lease_try(p, "check-lease-5", ids, 2, &out);
        lease_out_free(&out);
        check(c, r == -EINVAL, "accelerator: a lease naming one device "
                               "twice is refused with -EINVAL (got %d)", r);
        if (r == 0)
            lease_release(p, "check-lease-5", ids, 1, &rep);
    }
    if (dev2 != NULL) {
        const char *ids[] = {dev, dev2};
        char want[300];
        const char *gpus;
        snprintf(want, sizeof(want), "%s,%s", dev, dev2);
        r = lease_try(p, "check-lease-6", ids, 2, &out);
        gpus = lease_out_getenv(&out, "SURPLUS_GPUS");
        check(c, r == 0 && gpus && strcmp(gpus, want) == 0,
              "accelerator: a lease of two devices names both in "
              "SURPLUS_GPUS");
        lease_out_free(&out);
        if (r == 0) {
            r = lease_release(p, "check-lease-6", ids, 2, &rep);
            check(c, r == 0, "accelerator: a two-device lease releases");
        }
    }
}

/* ---- several threads at once (SURPLUS_PLUGIN_THREAD_SAFE) ------------------ */

#define CHECK_THREADS 8
#define CHECK_THREAD_ROUNDS 16

struct thread_run {
    struct plugin *p;
    int n;              /* thread number */
    int devices;        /* accelerator: what a lone discover found */
    int calls, failures;
    char first[ERR_MSG_MAX + 160]; /* the first failure, for a diag line */
};

static void thread_failed(struct thread_run *t, const char *what, int r)
{
    if (t->failures++ == 0)
        snprintf(t->first, sizeof(t->first), "thread %d: %s: %s", t->n,
                 what, why(t->p, r));
}

static int count_device(void *arg, const struct surplus_device *d)
{
    (void)d;
    (*(int *)arg)++;
    return 0;
}

static int count_record(void *arg, const struct surplus_usage_record *rec)
{
    (void)rec;
    (*(int *)arg)++;
    return 0;
}

static void *storage_thread(void *arg)
{
    struct thread_run *t = arg;

    for (int i = 0; i < CHECK_THREAD_ROUNDS; i++) {
        struct surplus_object_info info;
        uint64_t size = 1000 + (uint64_t)(t->n * 97 + i);
        uint32_t seed = (uint32_t)(t->n * 1000 + i);
        char key[64], missing[64];
        bool ok = false;
        int r;

        snprintf(key, sizeof(key), "check/threads/t%d-%d", t->n, i);
        snprintf(missing, sizeof(missing), "check/threads/missing-t%d-%d",
                 t->n, i);
        t->calls += 4;
        if ((r = stream_put(t->p, key, size, seed)) != 0)
            thread_failed(t, "put", r);
        else if ((r = stream_get(t->p, key, size, seed, &ok)) != 0 || !ok)
            thread_failed(t, "get", r ? r : -EIO);
        if ((r = storage_stat(t->p, missing, &info, &call_err)) != -ENOENT)
            thread_failed(t, "stat of a missing key", r ? r : -EEXIST);
        if ((r = storage_remove(t->p, key, &call_err)) != 0)
            thread_failed(t, "remove", r);
    }
    return NULL;
}

static void *accounting_thread(void *arg)
{
    struct thread_run *t = arg;
    const int64_t t0 = INT64_C(1767225600000000);

    for (int i = 0; i < CHECK_THREAD_ROUNDS; i++) {
        char id[64];
        struct surplus_usage_record rec;
        int r;

        snprintf(id, sizeof(id), "check-threads-t%d-%d", t->n, i);
        rec = mkrec(id, "tenant-threads", t0 + t->n * 1000 + i, id);
        t->calls++;
        if ((r = accounting_record(t->p, &rec, &call_err)) != 0)
            thread_failed(t, "record", r);
    }
    return NULL;
}

static void *accelerator_thread(void *arg)
{
    struct thread_run *t = arg;

    for (int i = 0; i < CHECK_THREAD_ROUNDS; i++) {
        char id[64];
        const char *ids[] = {id};
        struct surplus_lease_out out = {0};
        int n = 0, r;

        t->calls += 2;
        r = accelerator_discover(t->p, count_device, &n, &call_err);
        if (r != 0 || n != t->devices)
            thread_failed(t, "discover", r ? r : -EIO);
        snprintf(id, sizeof(id), "surplus-check-thread-%d-%d", t->n, i);
        r = lease_try(t->p, id, ids, 1, &out);
        lease_out_free(&out);
        if (r != -ENODEV)
            thread_failed(t, "prepare of a device that does not exist",
                          r ? r : -EEXIST);
    }
    return NULL;
}

/* A plugin that declares itself thread-safe is called from several
 * threads at once, on one instance, doing what each kind does. */
static void thread_checks(struct conform *c, struct plugin *p)
{
    struct thread_run t[CHECK_THREADS];
    pthread_t tid[CHECK_THREADS];
    void *(*fn)(void *) = p->kind == SURPLUS_KIND_STORAGE ? storage_thread
                          : p->kind == SURPLUS_KIND_ACCOUNTING
                              ? accounting_thread
                              : accelerator_thread;
    int devices = 0, calls = 0, failures = 0, started = 0;
    const char *first = NULL;

    if (!p->thread_safe) {
        diag(c, "%s does not set SURPLUS_PLUGIN_THREAD_SAFE: the core calls "
             "an instance from one thread at a time", p->ctx.label);
        return;
    }
    if (p->kind == SURPLUS_KIND_ACCELERATOR &&
        accelerator_discover(p, count_device, &devices, &call_err) != 0) {
        skip(c, "no devices", "thread-safe: several threads at once");
        return;
    }
    memset(t, 0, sizeof(t));
    for (int i = 0; i < CHECK_THREADS; i++) {
        t[i].p = p;
        t[i].n = i;
        t[i].devices = devices;
        if (pthread_create(&tid[i], NULL, fn, &t[i]) != 0)
            break;
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        calls += t[i].calls;
        failures += t[i].failures;
        if (first == NULL && t[i].first[0])
            first = t[i].first;
    }
    if (p->kind == SURPLUS_KIND_ACCOUNTING && started == CHECK_THREADS) {
        struct surplus_usage_query q = {"tenant-threads", 0, INT64_MAX};
        int n = 0;

        if (accounting_flush(p, &call_err) != 0 ||
            accounting_query(p, &q, count_record, &n, &call_err) != 0 ||
            n != CHECK_THREADS * CHECK_THREAD_ROUNDS)
            failures++;
    }
    if (first != NULL)
        diag(c, "%s", first);
    check(c, started == CHECK_THREADS && failures == 0,
          "%s: thread-safe: %d threads at once on one instance, %d calls, "
          "%d failed", plugin_kind_name(p->kind), started, calls, failures);
}

/* ---- entry point -------------------------------------------------------------- */

int conform_plugin(struct conform *c, const char *path,
                   const struct settings *base, struct err *e)
{
    char scratch[2048], sub[4096];
    const char *tmp = getenv("TMPDIR");
    struct plugin *p = NULL;
    int r;

    signal(SIGPIPE, SIG_IGN);
    if (c->large_bytes == 0)
        c->large_bytes = UINT64_C(1) << 30;
    snprintf(scratch, sizeof(scratch), "%s/surplus-check.XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(scratch) == NULL)
        return err_set(e, -errno, "cannot create a scratch directory in %s: "
                                  "%s", tmp && *tmp ? tmp : "/tmp",
                       strerror(errno));

    r = plugin_open(path, &p, e);
    if (!check(c, r == 0, "%s: loads, ABI %s and kind and name match its "
                          "file name", path, r == 0 ? "1.x" : "refused")) {
        diag(c, "%s", e->msg);
        rm_rf(scratch);
        return 0;
    }
    diag(c, "%s %s (plugin ABI %u.%u, core ABI %d.%d): %s", p->ctx.label,
         p->desc->version, p->desc->abi_major, p->desc->abi_minor,
         SURPLUS_ABI_MAJOR, SURPLUS_ABI_MINOR,
         p->desc->description ? p->desc->description : "");
    snprintf(sub, sizeof(sub), "%s/%s", scratch,
             p->kind == SURPLUS_KIND_STORAGE      ? "store"
             : p->kind == SURPLUS_KIND_ACCOUNTING ? "accounting"
                                                  : "accelerator");
    plugin_close(p);
    p = NULL;
    r = inst_start(path, base, sub, &p, e);
    if (!check(c, r == 0, "%s: init succeeds%s%s", path, r ? ": " : "",
               r ? e->msg : "")) {
        rm_rf(scratch);
        return 0;
    }
    switch (p->kind) {
    case SURPLUS_KIND_STORAGE:
        storage_checks(c, path, base, scratch, p);
        break;
    case SURPLUS_KIND_ACCOUNTING:
        accounting_checks(c, path, base, scratch, &p);
        break;
    case SURPLUS_KIND_ACCELERATOR:
        accelerator_checks(c, p);
        break;
    }
    if (p != NULL)
        thread_checks(c, p);
    plugin_close(p);
    rm_rf(scratch);
    return 0;
}
