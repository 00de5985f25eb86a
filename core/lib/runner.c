/*
 * runner.c - one job, end to end (see runner.h).
 *
 * Layout under state_dir, all owned by root and closed to others:
 *   jobs/<id>/work   the unpacked bundle, owned by the job's uid
 *   jobs/<id>/root   mount point of the job's root inside its namespace
 *   jobs/<id>/log    the job's stdout and stderr, written by the runner
 *   run/devices/<d>  lock held while device d is leased
 *   drained/<d>      a device that failed its scrub or its pre-lease
 *                    health check; never leased again
 *                    until an operator removes the file
 *
 * and, host-wide, whatever the state_dir (see slot_take):
 *   /run/surplus/uids/locks     byte <uid> locked while uid runs a job
 *   /run/surplus/uids/next-<b>  where the next search from uid_base b starts
 */
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <surplus/surplus.h>

#include "bundle.h"
#include "calls.h"
#include "fsafe.h"
#include "host.h"
#include "jobfs.h"
#include "log.h"
#include "sandbox.h"
#include "units.h"

#define UID_SLOTS 65536
#define OUTPUT_MAX_ENTRIES 100000
#define JOB_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const char *const stage_names[STAGE_COUNT] = {
    "extract", "lease", "start", "run", "collect", "release", "record",
    "cleanup"};

const char *runner_stage_name(enum runner_stage s)
{
    return s < STAGE_COUNT ? stage_names[s] : "?";
}

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void runner_new_id(char buf[RUNNER_ID_LEN + 1])
{
    unsigned char r[RUNNER_ID_LEN / 2];
    size_t got = 0;

    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (errno != EINTR)
            break;
    }
    if (got < sizeof r) { /* no entropy source: time and pid still differ */
        uint64_t v = mono_ns() ^ ((uint64_t)getpid() << 40);
        memcpy(r, &v, sizeof r);
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(buf + 2 * i, 3, "%02x", r[i]);
}

/* ---- the job in progress --------------------------------------------- */

struct dev {
    struct plugin *p;
    char *id;         /* the node's (node_device_id): locks, drain, store */
    char *plugin_id;  /* the plugin's: what prepare and release are given */
    char *model;
    uint64_t memory;
    int healthy;
    char *reason;
    int lock_fd;
};

struct run {
    struct node *node;
    const struct config *cf;
    const struct runner_opts *o;
    struct runner_result *res;
    struct err *e;
    char dir[4096], work[4200], root[4200], log[4200];
    char scratch[4200];          /* the job's own filesystem, when jobfs */
    bool jobfs;
    uint64_t disk;               /* the job's disk limit, bytes */
    int slot_fd;
    unsigned slot;
    struct bundle_summary sum;
    /* lease */
    struct plugin *acc;          /* the accelerator plugin leased from */
    struct dev *devs;            /* all discovered */
    size_t n_devs;
    size_t *picked;              /* indexes into devs */
    size_t n_picked;
    const char **lease_ids;
    struct surplus_lease_out lease_out;
    bool prepared;
    /* running */
    int log_fd;
    uint64_t log_bytes;
    bool log_truncated;
    char *notes;
    size_t notes_len;
    char *store_error;  /* the first log or output that was not stored */
};

__attribute__((format(printf, 2, 3))) static void note(struct run *j,
                                                       const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    size_t n;
    char *p;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    n = strlen(line);
    if ((p = realloc(j->notes, j->notes_len + n + 2)) != NULL) {
        j->notes = p;
        memcpy(p + j->notes_len, line, n);
        p[j->notes_len + n] = '\n';
        p[j->notes_len + n + 1] = '\0';
        j->notes_len += n + 1;
    }
    if (j->o->note)
        j->o->note(j->o->note_arg, "%s", line);
}

static void say(struct run *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(struct run *j, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (j->o->note == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    j->o->note(j->o->note_arg, "%s", line);
}

/* A name usable in a file name: [A-Za-z0-9._-], others as '_'. */
static void file_safe(char *dst, size_t len, const char *label, const char *id)
{
    size_t k = 0;

    for (const char *s = label; *s && k + 1 < len; s++)
        dst[k++] = (*s == '/') ? '_' : *s;
    if (k + 1 < len)
        dst[k++] = '-';
    for (const char *s = id; *s && k + 1 < len; s++)
        dst[k++] = ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                    (*s >= '0' && *s <= '9') || *s == '.' || *s == '-')
                       ? *s
                       : '_';
    dst[k] = '\0';
}

/* ---- uid slots ---------------------------------------------------------- */

/*
 * A job's uid is its own on the host, not only among the jobs of one
 * state_dir: every surplusd locks byte <uid> of one file under /run (a
 * fixed place, whatever the build's prefix), with open file description
 * locks, which threads of one process do not share the way they share
 * POSIX record locks.  The search starts after the uid handed out last, so
 * a uid comes back only once the whole range has been used: what the
 * kernel keeps per uid after a job has ended (keyrings live on for
 * minutes) is not met by the next job.  /run empties at boot, when no uid
 * can be running a job.
 */
#define UID_LOCK_DIR "/run/surplus/uids"

static int slot_take(struct run *j)
{
    uint32_t base = j->cf->sandbox.uid_base;
    char path[128], buf[32];
    unsigned start = 0;
    int fd, cur, r;
    ssize_t n;

    if ((r = node_mkdirs(UID_LOCK_DIR, 0700)) < 0)
        return err_set(j->e, r, "%s: %s", UID_LOCK_DIR, strerror(-r));
    fd = open(UID_LOCK_DIR "/locks", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
              0600);
    if (fd < 0)
        return err_set(j->e, -errno, "%s/locks: %s", UID_LOCK_DIR,
                       strerror(errno));
    snprintf(path, sizeof path, UID_LOCK_DIR "/next-%u", (unsigned)base);
    cur = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (cur < 0 || flock(cur, LOCK_EX) < 0) {
        r = err_set(j->e, -errno, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if ((n = pread(cur, buf, sizeof buf - 1, 0)) > 0) {
        buf[n] = '\0';
        start = (unsigned)(strtoul(buf, NULL, 10) % UID_SLOTS);
    }
    for (unsigned i = 0; i < UID_SLOTS; i++) {
        unsigned slot = (start + i) % UID_SLOTS;
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
                           .l_start = (off_t)base + slot, .l_len = 1};

        if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
            if (errno == EAGAIN || errno == EACCES)
                continue;
            r = err_set(j->e, -errno, "%s/locks: locking uid %u: %s",
                        UID_LOCK_DIR, (unsigned)(base + slot),
                        strerror(errno));
            goto fail;
        }
        /* Best effort: a lost cursor only makes the next search start
         * lower. */
        n = snprintf(buf, sizeof buf, "%u\n", (slot + 1) % UID_SLOTS);
        if (pwrite(cur, buf, (size_t)n, 0) == n)
            (void)!ftruncate(cur, n);
        close(cur);
        j->slot_fd = fd;
        j->slot = slot;
        return 0;
    }
    r = err_set(j->e, -EAGAIN, "all %d job uids from %u are in use",
                UID_SLOTS, (unsigned)base);
fail:
    if (cur >= 0)
        close(cur);
    close(fd);
    return r;
}

/* ---- devices ------------------------------------------------------------ */

struct disc {
    struct run *j;
    struct plugin *p;
    size_t group;     /* its index in node->accelerators */
};

static int on_device(void *arg, const struct surplus_device *d)
{
    struct disc *w = arg;
    struct run *j = w->j;
    struct dev *n = realloc(j->devs, (j->n_devs + 1) * sizeof(*n));

    if (n == NULL)
        return -ENOMEM;
    j->devs = n;
    n = &j->devs[j->n_devs];
    memset(n, 0, sizeof *n);
    n->p = w->p;
    n->lock_fd = -1;
    n->plugin_id = strdup(d->id ? d->id : "?");
    n->id = node_device_id(j->node, w->group, d->id ? d->id : "?");
    n->model = strdup(d->model ? d->model : "?");
    n->memory = d->memory_bytes;
    n->healthy = d->healthy;
    n->reason = d->reason ? strdup(d->reason) : NULL;
    j->n_devs++;
    return n->id && n->plugin_id && n->model ? 0 : -ENOMEM;
}

bool runner_device_drained(const struct config *cf, const char *plugin,
                           const char *id, char *why, size_t len)
{
    char name[512], path[4800];
    int fd;
    ssize_t n;

    file_safe(name, sizeof name, plugin, id);
    snprintf(path, sizeof path, "%s/drained/%s", cf->state_dir, name);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return false;
    n = read(fd, why, len - 1);
    close(fd);
    why[n > 0 ? n : 0] = '\0';
    why[strcspn(why, "\n")] = '\0';
    return true;
}

static bool drained(struct run *j, const struct dev *d, char *why, size_t len)
{
    return runner_device_drained(j->cf, node_plugin_label(d->p), d->id, why,
                                 len);
}

static void drain(struct run *j, const struct dev *d, const char *why)
{
    char name[512], path[4800];
    int fd;

    snprintf(path, sizeof path, "%s/drained", j->cf->state_dir);
    node_mkdirs(path, 0700);
    file_safe(name, sizeof name, node_plugin_label(d->p), d->id);
    snprintf(path, sizeof path, "%s/drained/%s", j->cf->state_dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
              0600);
    if (fd >= 0) {
        dprintf(fd, "%s\n", why);
        fsync(fd);
        close(fd);
    }
    log_msg(SURPLUS_LOG_ERR, "%s %s drained: %s", node_plugin_label(d->p),
            d->id, why);
}

static int dev_lock(struct run *j, struct dev *d)
{
    char dir[4200], name[512], path[4800];
    int fd, r;

    snprintf(dir, sizeof dir, "%s/run/devices", j->cf->state_dir);
    if ((r = node_mkdirs(dir, 0700)) < 0)
        return r;
    file_safe(name, sizeof name, node_plugin_label(d->p), d->id);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        return -EBUSY;
    }
    d->lock_fd = fd;
    return 0;
}

static void devs_unlock(struct run *j)
{
    for (size_t i = 0; i < j->n_devs; i++)
        if (j->devs[i].lock_fd >= 0) {
            close(j->devs[i].lock_fd);
            j->devs[i].lock_fd = -1;
        }
}

static void devs_free(struct run *j)
{
    devs_unlock(j);
    for (size_t i = 0; i < j->n_devs; i++) {
        free(j->devs[i].id);
        free(j->devs[i].plugin_id);
        free(j->devs[i].model);
        free(j->devs[i].reason);
    }
    free(j->devs);
    j->devs = NULL;
    j->n_devs = 0;
    free(j->picked);
    j->picked = NULL;
    j->n_picked = 0;
}

/* Why `d` cannot serve the job, or NULL if it can. */
static const char *unfit(struct run *j, const struct dev *d, char *buf,
                         size_t len)
{
    const struct job_resources *res = &j->sum.spec->resources;
    char a[32], b[32], why[256];

    if (!d->healthy)
        snprintf(buf, len, "unhealthy (%s)", d->reason ? d->reason : "?");
    else if (drained(j, d, why, sizeof why))
        snprintf(buf, len, "drained (%s)", why);
    else if (fnmatch(res->model, d->model, 0) != 0)
        snprintf(buf, len, "model '%s' does not match '%s'", d->model,
                 res->model);
    else if (res->gpu_memory && d->memory < res->gpu_memory)
        snprintf(buf, len, "%s of memory, under %s",
                 units_format_size(d->memory, a, sizeof a),
                 units_format_size(res->gpu_memory, b, sizeof b));
    else
        return NULL;
    return buf;
}

/* snprintf at *len, keeping *len within the buffer. */
__attribute__((format(printf, 4, 5))) static void
appendf(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*len + 1 >= size)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < size ? *len + (size_t)n : size - 1;
}

/* Picks `gpus` fitting devices of one plugin and locks them.  -ENODEV:
 * no plugin has enough that fit (the message says why for each);
 * -EBUSY: enough fit but some are leased to another job. */
static int lease_pick(struct run *j)
{
    const struct job_resources *res = &j->sum.spec->resources;
    char why[4096] = "", buf[512];
    size_t wl = 0;
    bool busy = false;
    int r;

    devs_free(j);
    for (size_t i = 0; i < j->node->n_accelerators; i++) {
        struct plugin *p = j->node->accelerators[i];
        struct disc w = {j, p, i};
        size_t first = j->n_devs;
        struct err pe = {0};

        r = accelerator_discover(p, on_device, &w, &pe);
        if (r < 0) {
            plugin_error(p, r, &pe, "discover");
            appendf(why, sizeof why, &wl, "; %s",
                                   pe.msg);
            continue;
        }
        if (j->n_devs == first) {
            appendf(why, sizeof why, &wl, "; %s: no devices", node_plugin_label(p));
            continue;
        }
        free(j->picked);
        j->picked = calloc(res->gpus, sizeof(*j->picked));
        if (j->picked == NULL)
            return err_set(j->e, -ENOMEM, "out of memory");
        j->n_picked = 0;
        size_t fits = 0;
        for (size_t k = first; k < j->n_devs && j->n_picked < res->gpus;
             k++) {
            const char *u = unfit(j, &j->devs[k], buf, sizeof buf);

            if (u != NULL) {
                appendf(why, sizeof why, &wl, "; %s %s: %s",
                                           node_plugin_label(p),
                                           j->devs[k].id, u);
                continue;
            }
            fits++;
            if (dev_lock(j, &j->devs[k]) == 0)
                j->picked[j->n_picked++] = k;
        }
        if (j->n_picked == res->gpus) {
            j->acc = p;
            return 0;
        }
        devs_unlock(j);
        if (fits >= res->gpus)
            busy = true; /* enough exist; some are leased to others */
        else if (j->n_devs - first < res->gpus)
            appendf(why, sizeof why, &wl, "; %s: this node has %zu device%s",
                    node_plugin_label(p), j->n_devs - first,
                    j->n_devs - first == 1 ? "" : "s");
        else appendf(why, sizeof why, &wl, "; %s: %zu of %zu device(s) fit",
                                   node_plugin_label(p), fits,
                                   j->n_devs - first);
    }
    if (j->node->n_accelerators == 0)
        snprintf(why, sizeof why, "; no accelerator plugins are configured");
    if (busy)
        return err_set(j->e, -EBUSY, "job '%s': the devices that fit are "
                                     "leased to other jobs",
                       j->sum.spec->name);
    return err_set(j->e, -ENODEV,
                   "job '%s' needs %u GPU(s) of model '%s'%s%s; none can "
                   "serve it%s",
                   j->sum.spec->name, res->gpus, res->model,
                   res->gpu_memory ? " with at least " : "",
                   res->gpu_memory ? units_format_size(res->gpu_memory, buf,
                                                       sizeof buf)
                                   : "",
                   why);
}

/* Leases the devices a scheduler chose, after checking they still fit. */
static int lease_given(struct run *j)
{
    const struct job_resources *res = &j->sum.spec->resources;
    struct plugin *p = j->o->accelerator;
    struct disc w = {j, p, 0};
    char buf[512];
    int r;

    devs_free(j);
    while (w.group < j->node->n_accelerators &&
           j->node->accelerators[w.group] != p)
        w.group++;
    if (p == NULL || j->o->n_device_ids != res->gpus)
        return err_set(j->e, -EINVAL, "job '%s' needs %u GPU(s); %zu were "
                                      "assigned",
                       j->sum.spec->name, res->gpus, j->o->n_device_ids);
    struct err pe = {0};
    if ((r = accelerator_discover(p, on_device, &w, &pe)) < 0) {
        plugin_error(p, r, &pe, "discover");
        return err_set(j->e, -ENODEV, "%s", pe.msg);
    }
    if ((j->picked = calloc(res->gpus, sizeof(*j->picked))) == NULL)
        return err_set(j->e, -ENOMEM, "out of memory");
    for (size_t i = 0; i < j->o->n_device_ids; i++) {
        size_t k;
        const char *u;

        for (k = 0; k < j->n_devs; k++)
            if (strcmp(j->devs[k].id, j->o->device_ids[i]) == 0)
                break;
        if (k == j->n_devs)
            return err_set(j->e, -ENODEV, "%s: no device '%s'",
                           node_plugin_label(p), j->o->device_ids[i]);
        if ((u = unfit(j, &j->devs[k], buf, sizeof buf)) != NULL)
            return err_set(j->e, -ENODEV, "%s %s: %s", node_plugin_label(p),
                           j->devs[k].id, u);
        /* Another job's sandbox, while it is being set up, holds copies of
         * this process's descriptors, lock files included: a lock just
         * released can look taken for a moment. */
        for (int tries = 0;
             (r = dev_lock(j, &j->devs[k])) == -EBUSY && tries < 400; tries++)
            usleep(5000);
        if (r < 0)
            return err_set(j->e, r, "%s %s: %s", node_plugin_label(p),
                           j->devs[k].id,
                           r == -EBUSY ? "leased to another job"
                                       : strerror(-r));
        j->picked[j->n_picked++] = k;
    }
    j->acc = p;
    return 0;
}

static bool cancelled(const struct run *j)
{
    struct pollfd pfd = {.fd = j->o->cancel_fd, .events = POLLIN};

    return j->o->cancel_fd >= 0 && poll(&pfd, 1, 0) > 0;
}

/* After a failed prepare or release: which of the lease's devices the
 * plugin now reports unhealthy. */
struct unhealthy {
    struct run *j;
    bool *bad;
    size_t n_bad;
};

static int on_unhealthy(void *arg, const struct surplus_device *d)
{
    struct unhealthy *u = arg;

    if (d->healthy)
        return 0;
    for (size_t i = 0; i < u->j->n_picked; i++)
        if (!u->bad[i] && d->id != NULL &&
            strcmp(u->j->lease_ids[i], d->id) == 0) {
            u->bad[i] = true;
            u->n_bad++;
        }
    return 0;
}

/* After prepare failed: drains the leased devices its health check found
 * unhealthy, so that no later job is given them.  Returns how many. */
static size_t drain_unhealthy(struct run *j, const char *msg, char *names,
                              size_t size)
{
    bool *bad = calloc(j->n_picked + 1, sizeof *bad);
    struct unhealthy u = {.j = j, .bad = bad};
    size_t len = 0;

    names[0] = '\0';
    struct err de = {0};
    if (bad == NULL || accelerator_discover(j->acc, on_unhealthy, &u, &de) < 0)
        u.n_bad = 0;
    for (size_t i = 0; u.n_bad > 0 && i < j->n_picked; i++)
        if (bad[i]) {
            char why[ERR_MSG_MAX + 64];

            snprintf(why, sizeof why, "failed its health check: %s", msg);
            drain(j, &j->devs[j->picked[i]], why);
            appendf(names, size, &len, "%s%s", len ? ", " : "",
                    j->devs[j->picked[i]].id);
        }
    free(bad);
    return u.n_bad;
}

static int lease(struct run *j)
{
    const struct job_resources *res = &j->sum.spec->resources;
    struct surplus_lease l = {0};
    bool waited = false;
    struct err pe = {0};
    int r;

    if (res->gpus == 0)
        return 0;
    if (j->o->device_ids != NULL)
        r = lease_given(j);
    else
        while ((r = lease_pick(j)) == -EBUSY && j->o->wait_for_devices) {
            if (!waited)
                say(j, "waiting for devices: %s", j->e->msg);
            waited = true;
            if (cancelled(j))
                return err_set(j->e, -ECANCELED, "cancelled while waiting "
                                                 "for devices");
            usleep(100 * 1000);
        }
    if (r < 0)
        return r;
    j->lease_ids = calloc(j->n_picked, sizeof(*j->lease_ids));
    if (j->lease_ids == NULL)
        return err_set(j->e, -ENOMEM, "out of memory");
    for (size_t i = 0; i < j->n_picked; i++)
        j->lease_ids[i] = j->devs[j->picked[i]].plugin_id;
    l.lease_id = j->res->job_id;
    l.job_id = j->res->job_id;
    l.tenant = j->o->tenant;
    l.device_ids = j->lease_ids;
    l.n_devices = j->n_picked;
    l.out = &j->lease_out;
    r = accelerator_prepare(j->acc, &l, &pe);
    if (r < 0) {
        if (j->lease_out.err.code)
            err_set(&pe, r, "%s prepare: %s", node_plugin_label(j->acc),
                    j->lease_out.err.msg);
        else
            plugin_error(j->acc, r, &pe, "prepare");
        char names[256];

        if (drain_unhealthy(j, pe.msg, names, sizeof names) > 0)
            return err_set(j->e, -ENODEV, "cannot lease devices: %s failed "
                                          "its health check and is drained "
                                          "(%s)", names, pe.msg);
        return err_set(j->e, -ENODEV, "cannot lease devices: %s", pe.msg);
    }
    j->prepared = true;
    return 0;
}

static void release(struct run *j)
{
    struct surplus_lease l = {0};
    struct surplus_scrub_report rep = {0};
    struct err pe = {0};
    int r;

    if (!j->prepared)
        return;
    l.lease_id = j->res->job_id;
    l.job_id = j->res->job_id;
    l.tenant = j->o->tenant;
    l.device_ids = j->lease_ids;
    l.n_devices = j->n_picked;
    r = accelerator_release(j->acc, &l, &rep, &pe);
    if (r < 0) {
        bool *bad = calloc(j->n_picked + 1, sizeof *bad);
        struct unhealthy u = {.j = j, .bad = bad};

        plugin_error(j->acc, r, &pe, "release");
        /* Drain the devices that failed; if the plugin cannot say which,
         * every device of the lease, since none is known to be clean. */
        struct err de = {0};
        if (bad != NULL &&
            accelerator_discover(j->acc, on_unhealthy, &u, &de) < 0)
            u.n_bad = 0;
        char names[512] = "";
        size_t len = 0;

        for (size_t i = 0; i < j->n_picked; i++)
            if (u.n_bad == 0 || bad[i]) {
                drain(j, &j->devs[j->picked[i]], pe.msg);
                if (len < sizeof names)
                    len += (size_t)snprintf(names + len, sizeof names - len,
                                            "%s%s", len ? ", " : "",
                                            j->devs[j->picked[i]].id);
            }
        free(bad);
        note(j, "drained after a failed scrub: %s (%s)", names, pe.msg);
    } else {
        char b[32];
        double s = (double)rep.duration_ns / 1e9;

        j->res->scrub_bytes = rep.bytes;
        j->res->scrub_ns = rep.duration_ns;

        say(j, "released %zu device(s): %s scrubbed in %.3f s%s", j->n_picked,
            units_format_size(rep.bytes, b, sizeof b), s,
            s > 0 ? "" : "");
    }
    j->prepared = false;
}

/* ---- environment -------------------------------------------------------- */

static int env_set(char ***env, size_t *n, const char *kv)
{
    size_t len = strcspn(kv, "=");
    char **p;

    for (size_t i = 0; i < *n; i++)
        if (strncmp((*env)[i], kv, len) == 0 && (*env)[i][len] == '=') {
            char *d = strdup(kv);
            if (d == NULL)
                return -ENOMEM;
            free((*env)[i]);
            (*env)[i] = d;
            return 0;
        }
    if ((p = realloc(*env, (*n + 2) * sizeof(*p))) == NULL)
        return -ENOMEM;
    *env = p;
    if ((p[*n] = strdup(kv)) == NULL)
        return -ENOMEM;
    p[++*n] = NULL;
    return 0;
}

static void env_free(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

static int env_build(struct run *j, char ***ret)
{
    const struct job_spec *s = j->sum.spec;
    char **env = calloc(1, sizeof(*env)), buf[4400];
    size_t n = 0;
    int r = env ? 0 : -ENOMEM;

    if (r == 0)
        r = env_set(&env, &n, "PATH=" JOB_PATH);
    snprintf(buf, sizeof buf, "HOME=%s", j->work);
    if (r == 0)
        r = env_set(&env, &n, buf);
    if (r == 0)
        r = env_set(&env, &n, "TMPDIR=/tmp");
    if (r == 0)
        r = env_set(&env, &n, "LANG=C.UTF-8");
    for (size_t i = 0; r == 0 && i < s->n_env; i++)
        r = env_set(&env, &n, s->env[i]);
    /* What the node sets comes last: a manifest cannot override it. */
    for (size_t i = 0; r == 0 && i < j->lease_out.n_env; i++)
        r = env_set(&env, &n, j->lease_out.env[i]);
    snprintf(buf, sizeof buf, "SURPLUS_JOB_ID=%s", j->res->job_id);
    if (r == 0)
        r = env_set(&env, &n, buf);
    snprintf(buf, sizeof buf, "SURPLUS_JOB_NAME=%s", s->name);
    if (r == 0)
        r = env_set(&env, &n, buf);
    if (r == 0 && j->sum.spec->resources.gpus == 0)
        r = env_set(&env, &n, "SURPLUS_GPUS=");
    if (r < 0) {
        env_free(env);
        return err_set(j->e, r, "out of memory");
    }
    *ret = env;
    return 0;
}

/* ---- the log ------------------------------------------------------------ */

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Moves what the job wrote from the pipe into the log (and the echo), up
 * to limits.max_log_bytes.  Returns 1 at end of file, 0 when drained. */
static int log_pump(struct run *j, int pfd)
{
    char buf[65536];

    for (;;) {
        ssize_t n = read(pfd, buf, sizeof buf);
        size_t keep;

        if (n == 0)
            return 1;
        if (n < 0)
            return errno == EINTR ? 0 : (errno == EAGAIN ? 0 : 1);
        keep = (size_t)n;
        if (j->log_bytes + keep > j->cf->limits.max_log_bytes) {
            keep = (size_t)(j->cf->limits.max_log_bytes - j->log_bytes);
            j->log_truncated = true;
        }
        if (keep && write_all(j->log_fd, buf, keep) == 0)
            j->log_bytes += keep;
        /* A closed terminal does not stop the job. */
        if (j->o->echo_fd >= 0)
            (void)write_all(j->o->echo_fd, buf, (size_t)n);
    }
}

/* ---- what the job must not see ------------------------------------------ */

#define HIDE_MAX 32

struct hide {
    char *v[HIDE_MAX + 1];  /* v[0]: the state directory */
    size_t n;
    bool warned;
};

static bool path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    return strncmp(path, dir, n) == 0 &&
           (path[n] == '/' || path[n] == '\0' || (n == 1 && dir[0] == '/'));
}

static void hide_add(struct hide *h, char *path)
{
    for (size_t i = 0; i < h->n; i++)
        if (path_under(path, h->v[i])) {
            free(path);
            return;
        }
    /* A directory added later covers what was added below it. */
    for (size_t i = 0; i < h->n;)
        if (path_under(h->v[i], path)) {
            free(h->v[i]);
            h->v[i] = h->v[--h->n];
        } else {
            i++;
        }
    if (h->n < HIDE_MAX)
        h->v[h->n++] = path;
    else
        free(path);
}

/* Hides `path` (resolved, if it exists) and, with `with_dir`, the
 * directory it is in: surplus's own directory, unless that is a top-level
 * one or holds the state directory, where an empty tmpfs would take the
 * job's view of the system away. */
static void hide_path(struct hide *h, const char *path, bool with_dir)
{
    static const char *const private_dirs[] = {"/tmp", "/var/tmp", "/run",
                                               "/dev", "/proc", NULL};
    const char *sd = h->v[0];
    char *real, *slash;
    struct stat st;

    if (path == NULL || *path == '\0' || (real = realpath(path, NULL)) == NULL)
        return;
    /* Below the state directory it is hidden already; the job has its own
     * of the private directories, the host's are out of its sight. */
    if (path_under(real, sd)) {
        free(real);
        return;
    }
    for (const char *const *own = private_dirs; *own; own++)
        if (path_under(real, *own)) {
            free(real);
            return;
        }
    /* A directory is hidden whole; a file with its directory. */
    if (with_dir && !(stat(real, &st) == 0 && S_ISDIR(st.st_mode)) &&
        (slash = strrchr(real, '/')) != NULL) {
        char *dir = slash == real ? strdup("/")
                                  : strndup(real, (size_t)(slash - real));

        if (dir != NULL && path_under(dir, sd)) {
            free(dir); /* the state directory: hidden already */
            dir = NULL;
        } else if (dir != NULL &&
                   (strchr(dir + 1, '/') == NULL || path_under(sd, dir))) {
            if (!h->warned)
                log_msg(SURPLUS_LOG_WARNING,
                        "%s is shown to jobs (only %s is hidden): it is %s",
                        dir, real,
                        path_under(sd, dir)
                            ? "the state directory's parent, which holds "
                              "the job directories"
                            : "a top-level directory");
            h->warned = true;
        } else if (dir != NULL) {
            hide_add(h, dir);
            dir = NULL;
        }
        free(dir);
    }
    if (path_under(sd, real)) { /* "/" included */
        if (!h->warned)
            log_msg(SURPLUS_LOG_WARNING,
                    "%s is shown to jobs: it holds the state directory",
                    real);
        h->warned = true;
        free(real);
        return;
    }
    hide_add(h, real);
}

static void hide_plugin(struct hide *h, const struct plugin_conf *pc)
{
    for (size_t i = 0; i < pc->settings.n; i++)
        if (strcmp(pc->settings.v[i].key, "path") == 0 &&
            pc->settings.v[i].type == SETTING_STRING)
            hide_path(h, pc->settings.v[i].str, true);
}

/* Everything surplus itself uses, hidden from the job's view of the host:
 * the state directory, the configuration and its directory, the TLS
 * certificate and key, the API socket, and every plugin's path (the
 * storage, the ledger) with its directory. */
static int hide_build(const struct config *cf, struct hide *h)
{
    static bool warned;

    /* The state directory holds the job's own directory, which the
     * sandbox mounts again on top. */
    if ((h->v[0] = realpath(cf->state_dir, NULL)) == NULL &&
        (h->v[0] = strdup(cf->state_dir)) == NULL)
        return -ENOMEM;
    h->n = 1;
    h->warned = __atomic_load_n(&warned, __ATOMIC_RELAXED);
    hide_path(h, cf->path, true);
    hide_path(h, cf->api.tls_cert, false);
    hide_path(h, cf->api.tls_key, false);
    hide_path(h, cf->api.socket, false);
    hide_plugin(h, &cf->storage);
    hide_plugin(h, &cf->accounting);
    for (size_t i = 0; i < cf->n_accelerators; i++)
        hide_plugin(h, &cf->accelerators[i]);
    if (h->warned)
        __atomic_store_n(&warned, true, __ATOMIC_RELAXED);
    h->v[h->n] = NULL;
    return 0;
}

static void hide_free(struct hide *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->v[i]);
}

/* ---- running ------------------------------------------------------------ */

struct outcome {
    int status;
    bool timed_out, cancelled;
    struct rusage ru;
    uint64_t peak;
};

static int run_command(struct run *j, char **env, struct outcome *out)
{
    const struct job_spec *s = j->sum.spec;
    const char **devices = NULL;
    struct hide hide = {0};
    struct sandbox sb;
    struct sandbox_spec sp = {0};
    int pipefd[2], r;
    uint64_t t0, deadline, kill_at = 0;
    bool eof = false, exited = false;

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return err_set(j->e, -errno, "pipe: %s", strerror(errno));
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    devices = calloc(j->lease_out.n_devices + 1, sizeof(*devices));
    if (devices == NULL) {
        close(pipefd[0]);
        close(pipefd[1]);
        return err_set(j->e, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < j->lease_out.n_devices; i++)
        devices[i] = j->lease_out.devices[i];
    sp.job_id = j->res->job_id;
    sp.root_dir = j->root;
    sp.job_dir = j->work;
    if (hide_build(j->cf, &hide) < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        free(devices);
        hide_free(&hide);
        return err_set(j->e, -ENOMEM, "out of memory");
    }
    sp.hide = (const char *const *)hide.v;
    sp.argv = s->argv;
    sp.envp = env;
    sp.uid = j->cf->sandbox.uid_base + j->slot;
    sp.gid = j->cf->sandbox.uid_base + j->slot;
    sp.network_host = j->cf->sandbox.network_host;
    sp.devices = devices;
    sp.log_fd = pipefd[1];
    sp.cpus = s->resources.cpus;
    sp.cpu_offset = j->slot * s->resources.cpus;
    sp.memory = s->resources.memory;
    sp.pids = j->cf->sandbox.pids;
    sp.disk = s->resources.disk;
    sp.seccomp_off = j->cf->sandbox.seccomp_off;
    sp.seccomp_allow = j->cf->sandbox.seccomp_allow;

    sp.scratch_dir = j->jobfs ? j->scratch : NULL;

    const struct sandbox_host *h = sandbox_host_probe();
    static int warned;
    if (!h->cgroup && !j->cf->sandbox.best_effort) {
        close(pipefd[0]);
        close(pipefd[1]);
        free(devices);
        return err_set(j->e, -ENOTSUP,
                       "memory and cpus cannot be enforced on this host: "
                       "no cgroups (%s); set sandbox.limits = "
                       "\"best-effort\" to run jobs under rlimits instead",
                       h->why);
    }
    if (!h->cgroup && !j->o->quiet_no_cgroup &&
        !__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        log_msg(SURPLUS_LOG_WARNING,
                "no cgroups: %s; limits are best-effort (sandbox.limits): "
                "rlimits (memory as RLIMIT_DATA, only for jobs without "
                "devices; processes as RLIMIT_NPROC; file size) and CPU "
                "affinity",
                h->why);
    {
        char b[32];

        say(j, "limits: memory, processes and cpus held by %s; disk (%s) "
               "by %s",
            h->cgroup_v1 ? "cgroup v1" : h->cgroup ? "cgroup v2" : "rlimits",
            units_format_size(j->disk, b, sizeof b),
            j->jobfs ? "the job's own filesystem"
                     : "nothing but a per-file size limit");
    }

    uint64_t t_start = mono_ns();
    r = sandbox_start(&sp, &sb, j->e);
    close(pipefd[1]);
    free(devices);
    hide_free(&hide);
    j->res->stage_ns[STAGE_START] = mono_ns() - t_start;
    if (r < 0) {
        close(pipefd[0]);
        sandbox_free(&sb);
        return r;
    }
    if (sb.exec_error[0])
        note(j, "%s", sb.exec_error);
    j->res->start_us = wall_us();
    t0 = mono_ns();
    deadline = t0 + s->resources.walltime_ms * 1000000u;
    say(j, "job %s '%s' running", j->res->job_id, s->name);
    while (!exited) {
        struct pollfd pfd[3] = {{.fd = sb.pidfd, .events = POLLIN},
                                {.fd = eof ? -1 : pipefd[0], .events = POLLIN},
                                {.fd = out->cancelled ? -1 : j->o->cancel_fd,
                                 .events = POLLIN}};
        uint64_t now = mono_ns(), until = kill_at ? kill_at : deadline;
        int timeout = until == UINT64_MAX ? -1
                      : until > now      ? (int)((until - now) / 1000000u) + 1
                                         : 0;
        int n = poll(pfd, 3, timeout);

        if (n < 0 && errno != EINTR)
            break;
        if (pfd[1].revents && log_pump(j, pipefd[0]))
            eof = true;
        if (pfd[0].revents)
            exited = true;
        if (pfd[2].revents && !out->cancelled && !out->timed_out) {
            out->cancelled = true;
            sandbox_signal(&sb, SIGTERM);
            kill_at = mono_ns() + j->cf->sandbox.kill_grace_ms * 1000000u;
            note(j, "cancelled: SIGTERM sent, SIGKILL in %llu ms",
                 (unsigned long long)j->cf->sandbox.kill_grace_ms);
        }
        now = mono_ns();
        if (!exited && !kill_at && now >= deadline) {
            out->timed_out = true;
            sandbox_signal(&sb, SIGTERM);
            kill_at = now + j->cf->sandbox.kill_grace_ms * 1000000u;
            note(j, "walltime of %llu ms exceeded: SIGTERM sent, SIGKILL in "
                    "%llu ms",
                 (unsigned long long)s->resources.walltime_ms,
                 (unsigned long long)j->cf->sandbox.kill_grace_ms);
        } else if (!exited && kill_at && now >= kill_at) {
            sandbox_kill(&sb);
            note(j, "SIGKILL sent to every process of the job");
            kill_at = UINT64_MAX; /* wait for the kill to land */
        }
    }
    sandbox_wait(&sb, &out->status, &out->ru, &out->peak);
    if (sb.oom) {
        char b[32];

        note(j, "out of memory: the kernel killed a process of the job at "
                "its memory limit of %s",
             units_format_size(s->resources.memory, b, sizeof b));
    }
    j->res->duration_us = (mono_ns() - t0) / 1000u;
    j->res->end_us = wall_us();
    /* Every process of the job is gone: read what is left in the pipe
     * (but do not wait for an end of file that a descriptor passed
     * outside the job could hold back). */
    log_pump(j, pipefd[0]);
    close(pipefd[0]);
    sandbox_free(&sb);
    return 0;
}

/* ---- outputs ------------------------------------------------------------ */

/*
 * Collection walks a tree the job left, which may be as deep and as wide
 * as the job liked: it is a loop over a stack on the heap (never a
 * recursion on a job thread's small stack), holds one directory open at a
 * time, and stops at the limits below, saying which in the job's log.
 * The depth limit is a bundle's: what a job can be given, it can give
 * back.
 */
#define OUTPUT_MAX_DEPTH BUNDLE_MAX_DEPTH /* components of an output's path */

/* A directory being collected: where its path ends in the walk's path,
 * and the names in it still to visit (NUL-terminated, one after another). */
struct out_level {
    size_t path_len;
    int depth;
    char *names;
    size_t len, cap, pos;
};

struct collect {
    struct run *j;
    int work;            /* the job's directory */
    int out_fd;          /* the output directory, or -1 */
    uint64_t bytes;
    uint64_t entries;    /* visited */
    uint64_t pending;    /* read from a directory, not yet visited */
    bool over;
    bool no_room;        /* the tenant's storage quota said no */
    bool too_many, too_deep, too_long;  /* each limit is noted once */
    char path[4096];     /* of the entry being visited, below work */
    struct out_level *lv;
    size_t n_lv, cap_lv;
};

/* A failure of the node, not of the job, to store what the job produced:
 * noted, and the first one is why the job fails. */
__attribute__((format(printf, 2, 3))) static void store_failed(struct run *j,
                                                               const char *fmt,
                                                               ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    note(j, "%s", line);
    if (j->store_error == NULL)
        j->store_error = strdup(line);
}

/* Whether an error opening or reading something the job left is the job's
 * own doing (gone, a symlink, a mode it chose, a name too long) rather
 * than the node's (out of descriptors, memory, an I/O error). */
static bool job_caused(int r)
{
    return r == -ENOENT || r == -ELOOP || r == -EXDEV || r == -ENOTDIR ||
           r == -EACCES || r == -EPERM || r == -ENAMETOOLONG ||
           r == -ENXIO || r == -ESTALE;
}

static int mkdirs_at(int dfd, const char *rel)
{
    char buf[4096];
    size_t n = strlen(rel);

    if (n >= sizeof buf)
        return -ENAMETOOLONG;
    memcpy(buf, rel, n + 1);
    for (char *s = buf;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;

            *s = '\0';
            if (buf[0] && mkdirat(dfd, buf, 0755) < 0 && errno != EEXIST)
                return -errno;
            *s = c;
            if (c == '\0')
                break;
        }
    }
    return 0;
}

static int copy_fd(int from, int to, uint64_t size)
{
    off_t off = 0;

    while ((uint64_t)off < size) {
        ssize_t n = sendfile(to, from, &off, (size_t)(size - (uint64_t)off) >
                                                 (1u << 30)
                                             ? (1u << 30)
                                             : (size_t)(size - (uint64_t)off));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : 0; /* shrank: the job is gone, keep */
    }
    return 0;
}

/* Stores one regular file: storage key jobs/<id>/outputs/<rel> and
 * <out dir>/<rel>. */
static void collect_file(struct collect *c, int fd, const char *rel,
                         const struct stat *st)
{
    struct run *j = c->j;
    char key[SURPLUS_KEY_MAX + 64];
    int r;

    if (c->over || c->bytes + (uint64_t)st->st_size >
                       j->cf->limits.max_output_bytes) {
        c->over = true;
        note(j, "output '%s' not collected: the outputs exceed "
                "limits.max_output_bytes",
             rel);
        return;
    }
    snprintf(key, sizeof key, "jobs/%s/outputs/%s", j->res->job_id, rel);
    if (!surplus_key_valid(key)) {
        note(j, "output '%s' not collected: names of outputs may use only "
                "[A-Za-z0-9._-]",
             rel);
        return;
    }
    if (c->no_room) {
        note(j, "output '%s' not stored: the storage quota is reached", rel);
        return;
    }
    if (j->o->store_admit != NULL) {
        char why[768];

        if (j->o->store_admit(j->o->store_arg, (uint64_t)st->st_size, false,
                              why, sizeof why) < 0) {
            c->no_room = true;
            store_failed(j, "%s: output '%s' (%llu bytes) not stored", why,
                         rel, (unsigned long long)st->st_size);
            return;
        }
    }
    c->bytes += (uint64_t)st->st_size;
    struct err pe = {0};
    r = storage_put(j->node->storage, key, fd, &pe);
    if (r < 0) {
        plugin_error(j->node->storage, r, &pe, "put");
        store_failed(j, "output '%s' not stored: %s", rel, pe.msg);
    } else {
        j->res->bytes_out += (uint64_t)st->st_size;
    }
    if (c->out_fd >= 0) {
        const char *slash = strrchr(rel, '/');
        int ofd;

        if (slash) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - rel), rel);
            mkdirs_at(c->out_fd, dir);
        }
        ofd = fsafe_open_beneath(c->out_fd, rel,
                                 O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (ofd < 0) {
            store_failed(j, "output '%s' not copied: %s", rel,
                         strerror(-ofd));
        } else {
            if ((r = copy_fd(fd, ofd, (uint64_t)st->st_size)) < 0)
                store_failed(j, "output '%s' not copied: %s", rel,
                             strerror(-r));
            close(ofd);
        }
    }
    char **p = realloc(j->res->outputs,
                       (j->res->n_outputs + 1) * sizeof(*p));
    if (p != NULL) {
        j->res->outputs = p;
        if ((p[j->res->n_outputs] = strdup(rel)) != NULL)
            j->res->n_outputs++;
    }
}

static int level_add(struct out_level *lv, const char *name)
{
    size_t n = strlen(name) + 1;

    if (lv->len + n > lv->cap) {
        size_t cap = lv->cap ? lv->cap * 2 : 256;
        char *p;

        while (cap < lv->len + n)
            cap *= 2;
        if ((p = realloc(lv->names, cap)) == NULL)
            return -ENOMEM;
        lv->names = p;
        lv->cap = cap;
    }
    memcpy(lv->names + lv->len, name, n);
    lv->len += n;
    return 0;
}

/* Reads the names in the directory `fd` (c->path, `depth` components)
 * onto the stack, as many as the entry limit leaves room for. */
static void collect_dir(struct collect *c, int fd, int depth)
{
    struct run *j = c->j;
    struct out_level *lv;
    struct dirent *de;
    /* Names waiting on the stack count too: memory stays within the
     * limit however the tree is shaped. */
    uint64_t room = c->entries + c->pending < OUTPUT_MAX_ENTRIES
                        ? OUTPUT_MAX_ENTRIES - c->entries - c->pending
                        : 0;
    DIR *d;
    int dfd;

    if (c->n_lv == c->cap_lv) {
        size_t cap = c->cap_lv ? c->cap_lv * 2 : 16;
        struct out_level *p = realloc(c->lv, cap * sizeof *p);

        if (p == NULL) {
            store_failed(j, "output '%s' not collected: out of memory",
                         c->path);
            return;
        }
        c->lv = p;
        c->cap_lv = cap;
    }
    if ((dfd = dup(fd)) < 0 || (d = fdopendir(dfd)) == NULL) {
        int r = -errno;

        if (dfd >= 0)
            close(dfd);
        store_failed(j, "output '%s' not collected: %s", c->path,
                     strerror(-r));
        return;
    }
    lv = &c->lv[c->n_lv++];
    *lv = (struct out_level){.path_len = strlen(c->path), .depth = depth};
    while ((errno = 0, de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (room == 0) {
            if (!c->too_many)
                note(j, "outputs: collection stopped at '%s/%s': more than "
                        "%d entries (the limit for a job's outputs)",
                     c->path, de->d_name, OUTPUT_MAX_ENTRIES);
            c->too_many = true;
            break;
        }
        if (level_add(lv, de->d_name) < 0) {
            store_failed(j, "output '%s' not collected: out of memory",
                         c->path);
            break;
        }
        room--;
        c->pending++;
    }
    if (errno != 0 && !c->too_many)
        store_failed(j, "output '%s' not collected: %s", c->path,
                     strerror(errno));
    closedir(d);
}

/* Visits c->path, `depth` components long: a file is stored, a directory
 * put on the stack, anything else noted. */
static void collect_entry(struct collect *c, int depth)
{
    struct run *j = c->j;
    struct stat st;
    int fd;

    if (c->entries >= OUTPUT_MAX_ENTRIES) {
        if (!c->too_many)
            note(j, "outputs: collection stopped at '%s': more than %d "
                    "entries (the limit for a job's outputs)",
                 c->path, OUTPUT_MAX_ENTRIES);
        c->too_many = true;
        return;
    }
    c->entries++;
    if (depth > OUTPUT_MAX_DEPTH) {
        if (!c->too_deep)
            note(j, "outputs: '%s' and what lies below it not collected: "
                    "deeper than %d path components (the limit for "
                    "outputs, as for bundles)",
                 c->path, OUTPUT_MAX_DEPTH);
        c->too_deep = true;
        return;
    }
    /* The job is over, but what it left may point anywhere: nothing is
     * opened through a symlink, and nothing but files and directories is
     * opened at all. */
    fd = fsafe_open_beneath(c->work, c->path, O_RDONLY | O_NONBLOCK, 0);
    if (fd < 0) {
        if (fd == -ENOENT)
            note(j, "output '%s' not found", c->path);
        else if (fd == -ELOOP || fd == -EXDEV)
            note(j, "output '%s' not collected: a symlink is never followed",
                 c->path);
        else if (job_caused(fd))
            note(j, "output '%s' not collected: %s", c->path, strerror(-fd));
        else
            store_failed(j, "output '%s' not collected: %s", c->path,
                         strerror(-fd));
        return;
    }
    if (fstat(fd, &st) < 0)
        store_failed(j, "output '%s' not collected: %s", c->path,
                     strerror(errno));
    else if (S_ISREG(st.st_mode))
        collect_file(c, fd, c->path, &st);
    else if (S_ISDIR(st.st_mode))
        collect_dir(c, fd, depth);
    else
        note(j, "output '%s' not collected: not a file or directory",
             c->path);
    close(fd);
}

/* One declared output, `rel` (canonical, relative), and all below it. */
static void collect_output(struct collect *c, const char *rel)
{
    struct run *j = c->j;
    int depth = 1;

    snprintf(c->path, sizeof c->path, "%s", rel);
    for (const char *s = rel; *s; s++)
        depth += *s == '/';
    collect_entry(c, depth);
    while (c->n_lv > 0) {
        struct out_level *lv = &c->lv[c->n_lv - 1];
        const char *name;
        size_t n;

        if (lv->pos >= lv->len) {
            free(lv->names);
            c->n_lv--;
            continue;
        }
        name = lv->names + lv->pos;
        n = strlen(name);
        lv->pos += n + 1;
        c->pending--;
        /* A path no storage key can hold is not visited at all. */
        if (lv->path_len + 1 + n + sizeof "jobs//outputs/" + RUNNER_ID_LEN >
            SURPLUS_KEY_MAX + 1) {
            if (!c->too_long)
                note(j, "outputs: '%.*s/%s' and what lies below it not "
                        "collected: a path longer than storage keys allow "
                        "(%d bytes with jobs/ID/outputs/)",
                     (int)lv->path_len, c->path, name, SURPLUS_KEY_MAX);
            c->too_long = true;
            continue;
        }
        c->path[lv->path_len] = '/';
        memcpy(c->path + lv->path_len + 1, name, n + 1);
        collect_entry(c, lv->depth + 1);
        /* collect_entry may have grown the stack: lv is stale now. */
    }
}

static int out_dir_open(struct run *j, int *ret)
{
    const char *want = j->o->out_dir;
    char buf[4200];
    int r;

    *ret = -1;
    if (want != NULL && want[0] == '\0')
        return 0;
    if (want == NULL) {
        snprintf(buf, sizeof buf, "%s-%s", j->sum.spec->name, j->res->job_id);
        if (mkdir(buf, 0755) < 0)
            return err_set(j->e, -errno, "output directory %s: %s", buf,
                           strerror(errno));
        want = buf;
    } else if ((r = node_mkdirs(want, 0755)) < 0) {
        return err_set(j->e, r, "output directory %s: %s", want,
                       strerror(-r));
    }
    *ret = open(want, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*ret < 0)
        return err_set(j->e, -errno, "output directory %s: %s", want,
                       strerror(errno));
    if ((j->res->out_dir = realpath(want, NULL)) == NULL)
        j->res->out_dir = strdup(want);
    return 0;
}

static void collect(struct run *j, int out_fd)
{
    struct collect *c = calloc(1, sizeof *c);

    if (c == NULL) {
        store_failed(j, "outputs not collected: out of memory");
        return;
    }
    c->j = j;
    c->out_fd = out_fd;
    c->work = open(j->work, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (c->work < 0) {
        store_failed(j, "outputs not collected: job directory: %s",
                     strerror(errno));
        free(c);
        return;
    }
    for (size_t i = 0; i < j->sum.spec->n_outputs; i++) {
        char rel[4096];
        size_t n;

        snprintf(rel, sizeof rel, "%s", j->sum.spec->outputs[i]);
        n = strlen(rel);
        while (n > 1 && rel[n - 1] == '/')
            rel[--n] = '\0';
        collect_output(c, rel);
    }
    free(c->lv);
    close(c->work);
    free(c);
}

static void store_log(struct run *j, int out_fd)
{
    char key[128];
    struct stat st;
    int fd, r;

    if (j->log_truncated)
        dprintf(j->log_fd,
                "\nsurplus: log cut at limits.max_log_bytes (%llu bytes)\n",
                (unsigned long long)j->cf->limits.max_log_bytes);
    if (j->notes)
        dprintf(j->log_fd, "%s%s", j->log_bytes ? "\n" : "", j->notes);
    fd = open(j->log, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) < 0) {
        store_failed(j, "log not stored: cannot read it back: %s",
                     strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    snprintf(key, sizeof key, "jobs/%s/log", j->res->job_id);
    if (j->o->store_admit != NULL) {
        char why[8];

        j->o->store_admit(j->o->store_arg, (uint64_t)st.st_size, true, why,
                          sizeof why);
    }
    struct err pe = {0};
    r = storage_put(j->node->storage, key, fd, &pe);
    if (r < 0) {
        plugin_error(j->node->storage, r, &pe, "put");
        store_failed(j, "log not stored: %s", pe.msg);
    } else {
        j->res->bytes_out += (uint64_t)st.st_size;
    }
    if (out_fd >= 0) {
        int ofd = fsafe_open_beneath(out_fd, "job.log",
                                     O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (ofd < 0 || (r = copy_fd(fd, ofd, (uint64_t)st.st_size)) < 0)
            store_failed(j, "job.log not copied: %s",
                         strerror(ofd < 0 ? -ofd : -r));
        if (ofd >= 0)
            close(ofd);
    }
    close(fd);
}

/* ---- the usage record --------------------------------------------------- */

int64_t runner_cost_micros(const struct config *cf, double cpu_seconds,
                           uint64_t duration_us, const char *const *models,
                           size_t n)
{
    double hours = (double)duration_us / 3600e6;
    double cost = cf->pricing.cpu_hour * cpu_seconds / 3600.0;

    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < cf->pricing.n_gpu; k++)
            if (models[i] != NULL &&
                fnmatch(cf->pricing.gpu[k].model, models[i], 0) == 0) {
                cost += cf->pricing.gpu[k].hour * hours;
                break;
            }
    return (int64_t)llround(cost * 1e6);
}

static void price(struct run *j)
{
    const struct config *cf = j->cf;
    const char **models = calloc(j->res->n_devices + 1, sizeof *models);

    for (size_t i = 0; models != NULL && i < j->res->n_devices; i++)
        models[i] = j->res->devices[i].model;
    j->res->cost_micros = runner_cost_micros(
        cf, j->res->cpu_seconds, j->res->duration_us, models,
        models != NULL ? j->res->n_devices : 0);
    free(models);
    snprintf(j->res->currency, sizeof j->res->currency, "%s",
             cf->pricing.currency ? cf->pricing.currency : "USD");
}

static void record(struct run *j)
{
    struct runner_result *res = j->res;
    struct surplus_usage_device *devs = NULL;
    struct surplus_usage_record rec = {0};
    struct plugin *a = j->node->accounting;
    struct err pe = {0};
    int r;

    if (res->n_devices &&
        (devs = calloc(res->n_devices, sizeof(*devs))) == NULL)
        return;
    for (size_t i = 0; i < res->n_devices; i++) {
        devs[i].id = res->devices[i].id;
        devs[i].model = res->devices[i].model;
    }
    rec.record_id = j->o->record_id ? j->o->record_id : res->job_id;
    rec.job_id = res->job_id;
    rec.tenant = j->o->tenant;
    rec.job_name = res->name;
    rec.node = j->node->hostname;
    rec.devices = devs;
    rec.n_devices = res->n_devices;
    rec.start_us = res->start_us;
    rec.end_us = res->end_us;
    rec.duration_us = res->duration_us;
    rec.device_seconds = res->device_seconds;
    rec.cpu_seconds = res->cpu_seconds;
    rec.max_rss_bytes = res->max_rss_bytes;
    rec.exit_status = res->exit_status;
    rec.state = res->state;
    rec.bytes_in = res->bytes_in;
    rec.bytes_out = res->bytes_out;
    rec.cost_micros = res->cost_micros;
    rec.currency = res->currency;
    r = accounting_record(a, &rec, &pe);
    if (r == 0)
        r = accounting_flush(a, &pe);
    if (r < 0) {
        plugin_error(a, r, &pe, "record");
        note(j, "usage record not written: %s", pe.msg);
    } else {
        res->recorded = true;
    }
    free(devs);
}

/* ---- the job's filesystem ---------------------------------------------- */

void runner_limits_describe(const struct config *cf, char *buf, size_t len)
{
    const struct sandbox_host *h = sandbox_host_probe();

    if (h->cgroup)
        snprintf(buf, len, "limits: memory, processes and cpus held by %s; "
                           "disk by a filesystem of its own per job",
                 h->cgroup_v1 ? "cgroup v1 (memory, pids, cpu, cpuacct, "
                                "cpuset)"
                              : "cgroup v2");
    else
        snprintf(buf, len, "limits: no cgroups (%s): %s", h->why,
                 cf->sandbox.best_effort
                     ? "best-effort rlimits and CPU affinity "
                       "(sandbox.limits)"
                     : "jobs are refused (sandbox.limits = \"enforce\")");
}

/* The job's disk: a filesystem of its own holding the job directory and
 * its /tmp, /var/tmp and /dev/shm.  Its size comes from the manifest,
 * read before anything is unpacked. */
static int stage_fs(struct run *j)
{
    struct bundle_summary sum = {0};
    struct err fe = {0};
    uid_t uid = j->cf->sandbox.uid_base + j->slot;
    char b[32];
    int r;

    if ((r = bundle_check(j->o->bundle, j->cf, &sum, j->e)) < 0)
        return r;
    /* 0 asks for no particular size: the node's largest bundle. */
    j->disk = sum.spec->resources.disk ? sum.spec->resources.disk
                                       : j->cf->limits.max_unpacked_bytes;
    bundle_summary_free(&sum);
    r = jobfs_create(j->dir, j->disk, uid, uid, &fe);
    if (r == 0) {
        j->jobfs = true;
        snprintf(j->scratch, sizeof j->scratch, "%s/" JOBFS_MOUNT, j->dir);
        snprintf(j->work, sizeof j->work, "%s/" JOBFS_MOUNT "/work", j->dir);
        return 0;
    }
    if (r != -ENODEV)
        return err_set(j->e, r, "the job's filesystem: %s", fe.msg);
    if (!j->cf->sandbox.best_effort)
        return err_set(j->e, -ENOTSUP,
                       "disk = %s cannot be enforced on this host: %s; set "
                       "sandbox.limits = \"best-effort\" to run jobs "
                       "without a disk limit",
                       units_format_size(j->disk, b, sizeof b), fe.msg);
    note(j, "disk of %s not enforced (sandbox.limits = best-effort): %s",
         units_format_size(j->disk, b, sizeof b), fe.msg);
    return 0;
}

/* ---- the whole job ------------------------------------------------------ */

static int stage_end(struct run *j, enum runner_stage s, uint64_t *t)
{
    uint64_t now = mono_ns();

    j->res->stage_ns[s] += now - *t;
    *t = now;
    return 0;
}

int runner_run(struct node *node, const struct runner_opts *o,
               struct runner_result *res, struct err *e)
{
    struct run j = {.node = node, .cf = node->cf, .o = o, .res = res, .e = e,
                    .slot_fd = -1, .log_fd = -1};
    struct outcome out = {0};
    char **env = NULL;
    uint64_t t = mono_ns();
    int r, out_fd = -1;
    bool unbilled = false;

    memset(res, 0, sizeof *res);
    res->failed_stage = STAGE_START;
    if (o->job_id)
        snprintf(res->job_id, sizeof res->job_id, "%s", o->job_id);
    else
        runner_new_id(res->job_id);
    if (geteuid() != 0)
        return err_set(e, -EPERM, "running a job needs root: each job gets "
                                  "its own uid and namespaces");
    snprintf(j.dir, sizeof j.dir, "%s/jobs/%s", j.cf->state_dir, res->job_id);
    snprintf(j.work, sizeof j.work, "%s/work", j.dir);
    snprintf(j.root, sizeof j.root, "%s/root", j.dir);
    snprintf(j.log, sizeof j.log, "%s/log", j.dir);
    if ((r = node_mkdirs(j.dir, 0700)) < 0 || mkdir(j.root, 0700) < 0) {
        r = r < 0 ? r : -errno;
        err_set(e, r, "job directory %s: %s", j.dir, strerror(-r));
        goto done;
    }
    if ((r = slot_take(&j)) < 0)
        goto done;

    /* extract */
    res->failed_stage = STAGE_EXTRACT;
    if ((r = stage_fs(&j)) < 0)
        goto done;
    r = bundle_extract(o->bundle, j.work, j.cf, j.cf->sandbox.uid_base + j.slot,
                       j.cf->sandbox.uid_base + j.slot, &j.sum, e);
    if (r < 0)
        goto done;
    res->bytes_in = j.sum.bundle_bytes;
    if ((res->name = strdup(j.sum.spec->name)) == NULL) {
        r = err_set(e, -ENOMEM, "out of memory");
        goto done;
    }
    stage_end(&j, STAGE_EXTRACT, &t);

    /* lease */
    res->failed_stage = STAGE_LEASE;
    if ((r = lease(&j)) < 0)
        goto done;
    if (j.n_picked) {
        res->devices = calloc(j.n_picked, sizeof(*res->devices));
        if (res->devices == NULL) {
            r = err_set(e, -ENOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < j.n_picked; i++) {
            struct dev *d = &j.devs[j.picked[i]];
            res->devices[i].plugin = strdup(node_plugin_label(d->p));
            res->devices[i].id = strdup(d->id);
            res->devices[i].model = strdup(d->model);
            res->n_devices++;
        }
        say(&j, "leased %zu device(s) from %s", j.n_picked,
            node_plugin_label(j.acc));
    }
    stage_end(&j, STAGE_LEASE, &t);
    if (cancelled(&j)) {
        r = err_set(e, -ECANCELED, "cancelled before it started");
        goto done;
    }

    /* run */
    res->failed_stage = STAGE_START;
    if ((r = env_build(&j, &env)) < 0)
        goto done;
    j.log_fd = open(j.log, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_APPEND,
                    0600);
    if (j.log_fd < 0) {
        r = err_set(e, -errno, "%s: %s", j.log, strerror(errno));
        goto done;
    }
    t = mono_ns();
    if ((r = run_command(&j, env, &out)) < 0)
        goto done;
    stage_end(&j, STAGE_RUN, &t);
    res->stage_ns[STAGE_RUN] -= res->stage_ns[STAGE_START];

    res->exit_status = out.timed_out ? 124 : out.status;
    res->state = strdup(out.timed_out   ? "timeout"
                        : out.cancelled ? "cancelled"
                        : out.status == 0 ? "succeeded"
                                          : "failed");
    res->cpu_seconds = (double)out.ru.ru_utime.tv_sec +
                       (double)out.ru.ru_utime.tv_usec / 1e6 +
                       (double)out.ru.ru_stime.tv_sec +
                       (double)out.ru.ru_stime.tv_usec / 1e6;
    res->max_rss_bytes = out.peak;
    res->device_seconds =
        (double)res->n_devices * (double)res->duration_us / 1e6;
    if (o->ended && (r = o->ended(o->ended_arg, res)) < 0) {
        note(&j, "usage record not written: the job's end was not "
                 "persisted: %s", strerror(-r));
        unbilled = true;
    }

    /* collect */
    if (out_dir_open(&j, &out_fd) < 0) {
        note(&j, "%s", e->msg);
        err_clear(e);
    }
    collect(&j, out_fd);
    stage_end(&j, STAGE_COLLECT, &t);

    /* release */
    release(&j);
    devs_unlock(&j);
    stage_end(&j, STAGE_RELEASE, &t);

    /* The log goes last so that it carries every note. */
    t = mono_ns();
    store_log(&j, out_fd);
    stage_end(&j, STAGE_COLLECT, &t);
    /* What the job produced is lost: whatever its status, it did not
     * succeed.  Its exit status stays, and it is billed (it ran). */
    if (j.store_error != NULL) {
        res->reason = j.store_error;
        j.store_error = NULL;
        if (res->state == NULL || strcmp(res->state, "succeeded") == 0) {
            free(res->state);
            res->state = strdup("failed");
        }
    }

    price(&j);
    if (!unbilled)
        record(&j);
    stage_end(&j, STAGE_RECORD, &t);
    r = 0;
done:
    if (j.prepared)
        release(&j);
    if (out_fd >= 0)
        close(out_fd);
    if (j.log_fd >= 0)
        close(j.log_fd);
    env_free(env);
    t = mono_ns();
    if (j.jobfs) {
        struct err fe = {0};

        if (jobfs_remove(j.dir, &fe) < 0)
            log_msg(SURPLUS_LOG_WARNING, "%s", fe.msg);
    }
    if (j.dir[0]) {
        int rr = fsafe_remove_tree(j.dir);
        if (rr < 0)
            log_msg(SURPLUS_LOG_WARNING, "%s: not removed: %s", j.dir,
                    strerror(-rr));
    }
    stage_end(&j, STAGE_CLEANUP, &t);
    if (j.slot_fd >= 0)
        close(j.slot_fd);
    devs_free(&j);
    free(j.lease_ids);
    lease_out_free(&j.lease_out);
    bundle_summary_free(&j.sum);
    free(j.store_error);
    res->notes = j.notes;
    return r;
}

void runner_result_free(struct runner_result *res)
{
    if (res == NULL)
        return;
    free(res->name);
    free(res->state);
    free(res->out_dir);
    for (size_t i = 0; i < res->n_outputs; i++)
        free(res->outputs[i]);
    free(res->outputs);
    for (size_t i = 0; i < res->n_devices; i++) {
        free(res->devices[i].plugin);
        free(res->devices[i].id);
        free(res->devices[i].model);
    }
    free(res->devices);
    free(res->notes);
    free(res->reason);
    memset(res, 0, sizeof *res);
}
