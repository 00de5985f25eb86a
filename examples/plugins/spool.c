/*
 * accounting/spool - an example accounting plugin: one file per record.
 *
 * A small but complete plugin, meant to be copied.  It keeps the ledger in
 * a directory, one file <path>/<record_id>.rec per usage record, holding
 * key=value lines.  The file system provides what the accounting contract
 * asks for (see surplus/accounting.h):
 *
 *   idempotent  link() never replaces an existing name, so the first copy
 *               of a record wins and recording it again changes nothing;
 *   atomic      a record is written under a temporary name and linked into
 *               place only when complete, so a reader never sees half;
 *   durable     the file, then the directory, are fsync()ed before record()
 *               returns 0, so there is nothing for flush() to do.
 *
 * query() reads the whole directory: fine for an example and for a small
 * ledger; a real backend would keep an index by end time.
 *
 * Configuration:
 *     accounting = { plugin = "spool"; path = "/var/lib/surplus/spool"; };
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <surplus/accounting.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

#define ID_MAX 128
#define SUFFIX ".rec"
/* A record is a few hundred bytes; a much larger file is not one of ours. */
#define FILE_MAX (1 << 20)

/* The state of one instance.  The core may start several instances of a
 * plugin in one process, so nothing mutable may live in a global. */
struct spool {
    const struct surplus_host *host; /* kept for every later call */
    struct surplus_ctx *ctx;
    const char *path;                /* owned by the core until fini */
    int dir_fd;
    unsigned tmp_seq;                /* keeps temporary names unique */
};

/* The scalar fields of a record, described once and used both to write
 * and to read a file, so that the two can never disagree. */
enum type { T_STRING, T_INT, T_I64, T_U64, T_DOUBLE };
#define FIELD(name, type) \
    { #name, type, offsetof(struct surplus_usage_record, name) }
static const struct field {
    const char *key;
    enum type type;
    size_t offset;
} fields[] = {
    FIELD(record_id, T_STRING),      FIELD(job_id, T_STRING),
    FIELD(tenant, T_STRING),         FIELD(job_name, T_STRING),
    FIELD(node, T_STRING),           FIELD(start_us, T_I64),
    FIELD(end_us, T_I64),            FIELD(duration_us, T_U64),
    FIELD(device_seconds, T_DOUBLE), FIELD(cpu_seconds, T_DOUBLE),
    FIELD(max_rss_bytes, T_U64),     FIELD(exit_status, T_INT),
    FIELD(state, T_STRING),          FIELD(bytes_in, T_U64),
    FIELD(bytes_out, T_U64),         FIELD(cost_micros, T_I64),
    FIELD(currency, T_STRING),
};

/* A record read back from its file; the strings point into `buf`. */
struct entry {
    struct surplus_usage_record rec;
    struct surplus_usage_device *devices;
    char *buf;
};

/* Record ids become file names, so only a safe alphabet is accepted, and
 * never a leading '.', which would name a temporary file, "." or "..". */
static bool id_valid(const char *id)
{
    size_t n;

    if (id == NULL || id[0] == '.')
        return false;
    n = strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789._-");
    return n >= 1 && n <= ID_MAX && id[n] == '\0';
}

/* Records "cannot <what> '<path>/<name>': <reason>" for the call that just
 * failed, and returns its negative errno, as every plugin function must.
 * The name "." stands for the spool directory itself. */
static int sys_error(struct spool *s, const char *what, const char *name)
{
    int r = -errno;
    bool dir = strcmp(name, ".") == 0;

    return s->host->error(s->ctx, r, "cannot %s '%s%s%s': %s", what, s->path,
                          dir ? "" : "/", dir ? "" : name, strerror(-r));
}

static void spool_fini(void *state)
{
    struct spool *s = state;

    if (s == NULL) /* fini accepts whatever init returned, and NULL */
        return;
    if (s->dir_fd >= 0)
        close(s->dir_fd);
    free(s);
}

static int spool_init(const struct surplus_host *host, struct surplus_ctx *ctx,
                      void **ret_state)
{
    const char *path;
    struct spool *s;
    int r;

    /* Read every setting here: the core reports keys never read as
     * unknown, and a typo should fail at start, not at the first job. */
    r = host->config_string(ctx, "path", NULL, &path);
    if (r < 0)
        return r; /* the host has already said what is wrong */
    if (path == NULL || path[0] == '\0')
        return host->error(ctx, -EINVAL,
                           "setting 'path' (the spool directory) is required");

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return host->error(ctx, -ENOMEM, "out of memory");
    s->host = host;
    s->ctx = ctx;
    s->path = path;
    s->dir_fd = -1;
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        r = sys_error(s, "create", ".");
        spool_fini(s);
        return r;
    }
    s->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dir_fd < 0) {
        r = sys_error(s, "open", ".");
        spool_fini(s);
        return r;
    }
    *ret_state = s; /* only on success: outputs stay untouched on failure */
    return 0;
}

/* Escapes what would break the line format: backslash, newline, tab. */
static void put_escaped(FILE *f, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '\n' || *v == '\t') {
            fputc('\\', f);
            fputc(*v == '\n' ? 'n' : *v == '\t' ? 't' : '\\', f);
        } else {
            fputc(*v, f);
        }
    }
}

static void write_record(FILE *f, const struct surplus_usage_record *rec)
{
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const struct field *fl = &fields[i];
        const void *p = (const char *)rec + fl->offset;

        switch (fl->type) {
        case T_STRING:
            if (*(const char *const *)p == NULL)
                continue; /* absent key = NULL */
            fprintf(f, "%s=", fl->key);
            put_escaped(f, *(const char *const *)p);
            fputc('\n', f);
            break;
        case T_INT:
            fprintf(f, "%s=%d\n", fl->key, *(const int *)p);
            break;
        case T_I64:
            fprintf(f, "%s=%" PRId64 "\n", fl->key, *(const int64_t *)p);
            break;
        case T_U64:
            fprintf(f, "%s=%" PRIu64 "\n", fl->key, *(const uint64_t *)p);
            break;
        case T_DOUBLE: /* 17 digits read back as the same double */
            fprintf(f, "%s=%.17g\n", fl->key, *(const double *)p);
            break;
        }
    }
    for (size_t i = 0; i < rec->n_devices; i++) {
        fputs("device=", f);
        put_escaped(f, rec->devices[i].id ? rec->devices[i].id : "");
        fputc('\t', f); /* a raw tab separates: tabs inside are escaped */
        put_escaped(f, rec->devices[i].model ? rec->devices[i].model : "");
        fputc('\n', f);
    }
}

static int spool_record(void *state, const struct surplus_usage_record *rec)
{
    struct spool *s = state;
    char tmp[ID_MAX + 64], final[ID_MAX + sizeof(SUFFIX)];
    FILE *f;
    int fd, r;

    if (rec == NULL || !id_valid(rec->record_id))
        return s->host->error(s->ctx, -EINVAL,
                              "invalid record id '%s' (1-%d of [A-Za-z0-9._-], "
                              "not starting with '.')",
                              rec && rec->record_id ? rec->record_id : "(null)",
                              ID_MAX);
    if (rec->n_devices > 0 && rec->devices == NULL)
        return s->host->error(s->ctx, -EINVAL,
                              "record '%s' has %zu devices but no device list",
                              rec->record_id, rec->n_devices);
    snprintf(final, sizeof(final), "%s" SUFFIX, rec->record_id);

    /* A name no other writer uses: the leading '.' keeps it out of
     * query(), pid and sequence number keep writers apart. */
    do {
        snprintf(tmp, sizeof(tmp), ".%s.%ld.%u.tmp", rec->record_id,
                 (long)getpid(), s->tmp_seq++);
        fd = openat(s->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                    0600);
    } while (fd < 0 && errno == EEXIST);
    if (fd < 0)
        return sys_error(s, "create", tmp);
    f = fdopen(fd, "w");
    if (f == NULL) {
        r = sys_error(s, "write", tmp);
        close(fd);
        goto fail;
    }
    write_record(f, rec);
    /* stdio reports write errors late, at the flush; and the data must be
     * on disk before a name makes it visible. */
    r = fflush(f) == 0 && fsync(fd) == 0 ? 0 : sys_error(s, "write", tmp);
    if (fclose(f) != 0 && r == 0)
        r = sys_error(s, "write", tmp);
    if (r < 0)
        goto fail;

    /* The heart of idempotency: link() fails with EEXIST when the record
     * is already there, and then the first copy wins. */
    if (linkat(s->dir_fd, tmp, s->dir_fd, final, 0) < 0 && errno != EEXIST) {
        r = sys_error(s, "link to it", tmp);
        goto fail;
    }
    if (unlinkat(s->dir_fd, tmp, 0) < 0)
        s->host->log(s->ctx, SURPLUS_LOG_WARNING,
                     "cannot remove '%s/%s': %s", s->path, tmp,
                     strerror(errno));
    /* Also after EEXIST: the first copy may still be waiting for this. */
    if (fsync(s->dir_fd) < 0)
        return sys_error(s, "sync", ".");
    return 0;

fail:
    unlinkat(s->dir_fd, tmp, 0);
    return r;
}

/* Undoes put_escaped() in place (the result is never longer). */
static bool unescape(char *v)
{
    char *out = v;

    for (; *v != '\0'; v++) {
        if (*v == '\\') {
            v++;
            if (*v != '\\' && *v != 'n' && *v != 't')
                return false;
            *out++ = *v == 'n' ? '\n' : *v == 't' ? '\t' : '\\';
        } else {
            *out++ = *v;
        }
    }
    *out = '\0';
    return true;
}

/* Stores the text `v` into the field, converted to its type. */
static bool parse_field(const struct field *fl, char *v,
                        struct surplus_usage_record *rec)
{
    void *p = (char *)rec + fl->offset;
    char *end = v;
    long n;

    errno = 0;
    switch (fl->type) {
    case T_STRING:
        *(const char **)p = v;
        return unescape(v);
    case T_INT:
        n = strtol(v, &end, 10);
        if (n < INT_MIN || n > INT_MAX)
            return false;
        *(int *)p = (int)n;
        break;
    case T_I64:
        *(int64_t *)p = strtoll(v, &end, 10);
        break;
    case T_U64:
        if (v[0] == '-') /* strtoull would quietly wrap it around */
            return false;
        *(uint64_t *)p = strtoull(v, &end, 10);
        break;
    case T_DOUBLE:
        *(double *)p = strtod(v, &end);
        break;
    }
    return errno == 0 && end != v && *end == '\0';
}

static int parse_line(char *line, struct entry *e, size_t *cap)
{
    char *v = strchr(line, '='), *tab;
    struct surplus_usage_device *d;

    if (v == NULL)
        return -EBADMSG;
    *v++ = '\0';
    if (strcmp(line, "device") != 0) {
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
            if (strcmp(line, fields[i].key) == 0)
                return parse_field(&fields[i], v, &e->rec) ? 0 : -EBADMSG;
        return 0; /* a key from a newer version: ignored */
    }
    tab = strchr(v, '\t');
    if (tab == NULL)
        return -EBADMSG;
    *tab++ = '\0';
    if (e->rec.n_devices == *cap) {
        d = realloc(e->devices, (*cap + 4) * sizeof(*d));
        if (d == NULL)
            return -ENOMEM;
        e->devices = d;
        *cap += 4;
    }
    d = &e->devices[e->rec.n_devices++];
    d->id = v;
    d->model = tab;
    return unescape(v) && unescape(tab) ? 0 : -EBADMSG;
}

/* Reads the record in <name> into *e.  -EBADMSG: the file is not a valid
 * record, and the caller skips it. */
static int load(struct spool *s, const char *name, const char *id,
                struct entry *e)
{
    char *line, *next;
    struct stat st;
    size_t cap = 0;
    FILE *f;
    int fd, r;

    memset(e, 0, sizeof(*e));
    fd = openat(s->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return sys_error(s, "open", name);
    f = fdopen(fd, "r");
    if (f == NULL) {
        r = sys_error(s, "read", name);
        close(fd);
        return r;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
        fclose(f);
        return -EBADMSG;
    }
    e->buf = malloc((size_t)st.st_size + 1);
    if (e->buf == NULL) {
        fclose(f);
        return s->host->error(s->ctx, -ENOMEM, "out of memory");
    }
    r = fread(e->buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size
            ? 0 : sys_error(s, "read", name);
    fclose(f);
    if (r < 0)
        return r;
    e->buf[st.st_size] = '\0';

    for (line = e->buf; *line != '\0'; line = next) {
        next = line + strcspn(line, "\n");
        if (*next != '\0')
            *next++ = '\0';
        r = *line != '\0' ? parse_line(line, e, &cap) : 0;
        if (r == -ENOMEM)
            return s->host->error(s->ctx, r, "out of memory");
        if (r < 0)
            return r;
    }
    /* A file renamed by hand must not pass for another record. */
    if (e->rec.record_id == NULL || strcmp(e->rec.record_id, id) != 0)
        return -EBADMSG;
    e->rec.devices = e->devices;
    return 0;
}

static void entry_free(struct entry *e)
{
    free(e->devices);
    free(e->buf);
}

static int entry_cmp(const void *a, const void *b)
{
    const struct surplus_usage_record *x = &((const struct entry *)a)->rec;
    const struct surplus_usage_record *y = &((const struct entry *)b)->rec;

    if (x->end_us != y->end_us)
        return x->end_us < y->end_us ? -1 : 1;
    return strcmp(x->record_id, y->record_id);
}

static bool matches(const struct surplus_usage_query *q,
                    const struct surplus_usage_record *rec)
{
    if (q->tenant != NULL &&
        (rec->tenant == NULL || strcmp(rec->tenant, q->tenant) != 0))
        return false;
    return rec->end_us >= q->since_us && rec->end_us < q->until_us;
}

static int spool_query(void *state, const struct surplus_usage_query *q,
                       surplus_usage_fn fn, void *arg)
{
    struct spool *s = state;
    struct entry *v = NULL, *nv, e;
    size_t n = 0, cap = 0, len;
    char id[ID_MAX + 1];
    struct dirent *de;
    DIR *dir;
    int fd, r = 0;

    if (q == NULL || fn == NULL)
        return s->host->error(s->ctx, -EINVAL, "query without %s",
                              q == NULL ? "a query" : "a callback");
    /* A descriptor of its own: a DIR stream owns and moves the one it
     * reads. */
    fd = openat(s->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (dir == NULL) {
        r = sys_error(s, "read", ".");
        if (fd >= 0)
            close(fd);
        return r;
    }

    while (errno = 0, (de = readdir(dir)) != NULL) {
        /* Only <valid id>.rec: temporary files and strays are skipped. */
        len = strlen(de->d_name);
        if (len <= strlen(SUFFIX) || len - strlen(SUFFIX) > ID_MAX ||
            strcmp(de->d_name + len - strlen(SUFFIX), SUFFIX) != 0)
            continue;
        snprintf(id, sizeof(id), "%.*s", (int)(len - strlen(SUFFIX)),
                 de->d_name);
        if (!id_valid(id))
            continue;

        r = load(s, de->d_name, id, &e);
        if (r == 0 && !matches(q, &e.rec))
            r = 1; /* not wanted */
        if (r == 0 && n == cap) {
            nv = realloc(v, (cap + 64) * sizeof(*v));
            if (nv == NULL) {
                r = s->host->error(s->ctx, -ENOMEM, "out of memory");
            } else {
                v = nv;
                cap += 64;
            }
        }
        if (r == 0) {
            v[n++] = e;
            continue;
        }
        entry_free(&e);
        /* One damaged file should not hide the rest of the ledger; a file
         * gone since readdir() saw it was removed by hand. */
        if (r == -EBADMSG)
            s->host->log(s->ctx, SURPLUS_LOG_WARNING,
                         "'%s/%s' is not a valid record; skipped", s->path,
                         de->d_name);
        else if (r < 0 && r != -ENOENT)
            goto out;
        r = 0;
    }
    if (errno != 0) {
        r = sys_error(s, "read", ".");
        goto out;
    }

    /* The contract's order: end time, then record id. */
    qsort(v, n, sizeof(*v), entry_cmp);
    for (size_t i = 0; i < n && r == 0; i++)
        r = fn(arg, &v[i].rec); /* non-zero stops the walk, returned as is */

out:
    for (size_t i = 0; i < n; i++)
        entry_free(&v[i]);
    free(v);
    closedir(dir);
    return r;
}

static const struct surplus_accounting_ops spool_ops = {
    .record = spool_record,
    .flush = NULL, /* record() is durable by itself */
    .query = spool_query,
};

static const struct surplus_plugin spool_plugin = {
    SURPLUS_PLUGIN_HEADER(SURPLUS_KIND_ACCOUNTING),
    .name = "spool", /* must match the file name accounting_spool.so */
    .version = PACKAGE_VERSION,
    .description = "example ledger: one file per usage record in a directory",
    .init = spool_init,
    .fini = spool_fini,
    .ops = &spool_ops,
};

/* The one exported symbol.  No semicolon: the macro defines a function. */
SURPLUS_PLUGIN_EXPORT(spool_plugin)
