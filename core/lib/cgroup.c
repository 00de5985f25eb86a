/*
 * cgroup.c - per-job cgroups on a cgroup v1 host (cgroup.h).
 */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif

static const char *const names[CG1_N] = {"memory", "pids", "cpu", "cpuacct",
                                         "cpuset"};
/* The "surplus" cgroup in each hierarchy, set by cg1_probe. */
static char base[CG1_N][PATH_MAX];

static int read_text(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

static int write_text(int dfd, const char *file, const char *val)
{
    int fd = openat(dfd, file, O_WRONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = write(fd, val, strlen(val));
    n = n < 0 ? -errno : 0;
    close(fd);
    return (int)n;
}

static bool in_list(const char *list, size_t len, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = list; p < list + len;) {
        size_t k = strcspn(p, ",");

        if (k > (size_t)(list + len - p))
            k = (size_t)(list + len - p);
        if (k == n && strncmp(p, word, n) == 0)
            return true;
        p += k + 1;
    }
    return false;
}

/* A new cpuset has no CPUs and no memory nodes: it takes its parent's. */
static int cpuset_inherit(const char *dir)
{
    char parent[PATH_MAX], path[PATH_MAX + 32], val[1024];
    static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
    int dfd, r = 0;

    snprintf(parent, sizeof parent, "%s", dir);
    *strrchr(parent, '/') = '\0';
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    for (size_t i = 0; r == 0 && i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if ((r = read_text(path, val, sizeof val)) < 0 || val[0])
            continue;
        snprintf(path, sizeof path, "%s/%s", parent, files[i]);
        if ((r = read_text(path, val, sizeof val)) == 0)
            r = write_text(dfd, files[i], val);
    }
    close(dfd);
    return r;
}

/* rmdir, retried briefly while the kernel finishes tearing the last
 * tasks down. */
static int rmdir_settled(const char *path)
{
    for (int k = 0; k < 100; k++) {
        if (rmdir(path) == 0)
            return 0;
        if (errno != EBUSY)
            return -errno;
        usleep(1000);
    }
    return -EBUSY;
}

/*
 * Removes the empty job cgroups a killed runner left.  The hierarchy is
 * shared by every surplusd and `surplus run` on the host, each sweeping it
 * when it starts, so a cgroup that is still empty because its job's first
 * process has not joined yet must stay: its creator holds an flock on the
 * directory for as long as it uses it (cg1_create), and a sweep takes the
 * lock before it removes anything.  Those of running jobs are busy.
 */
static void sweep(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        int fd;

        if (strncmp(de->d_name, "job-", 4) != 0)
            continue;
        fd = openat(dirfd(d), de->d_name,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
        close(fd);
    }
    closedir(d);
}

/*
 * Makes the job's cgroup `path` in one hierarchy and opens it, locked
 * against other processes' sweeps (see sweep); one left by a runner that
 * was killed (v1 cgroups outlive their tasks) is taken over, since a
 * requeued job comes back with its id.  Returns the directory or -errno.
 */
static int make_locked(const char *path)
{
    for (int tries = 0; tries < 8; tries++) {
        int fd;

        if (mkdir(path, 0755) < 0) {
            int r;

            if (errno != EEXIST)
                return -errno;
            if ((r = rmdir_settled(path)) < 0 && r != -ENOENT)
                return r;
            if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return -errno;
        }
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT)
                continue; /* swept between the two */
            return -errno;
        }
        if (flock(fd, LOCK_EX) < 0) {
            int err = errno;

            close(fd);
            return -err;
        }
        /* A sweep that held the lock before us removed it meanwhile: the
         * directory is then dead, its files gone. */
        if (faccessat(fd, "cgroup.procs", F_OK, 0) == 0)
            return fd;
        close(fd);
    }
    return -EAGAIN;
}

bool cg1_probe(char *why, size_t len)
{
    char buf[8192], *line, *save = NULL;
    bool found[CG1_N] = {false};

    {
        int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);

        if (fd >= 0)
            close(fd);
        if (n < 0) {
            snprintf(why, len, "cannot read /proc/self/cgroup");
            return false;
        }
        buf[n] = '\0';
    }
    /* Lines are "id:controller,controller:/path". */
    for (line = strtok_r(buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *list = strchr(line, ':'), *rel;
        size_t n;

        if (list == NULL || (rel = strchr(++list, ':')) == NULL)
            continue;
        n = (size_t)(rel - list);
        rel++;
        for (int i = 0; i < CG1_N; i++) {
            char mnt[PATH_MAX];
            struct statfs sf;

            if (found[i] || n == 0 || !in_list(list, n, names[i]))
                continue;
            snprintf(mnt, sizeof mnt, "/sys/fs/cgroup/%.*s", (int)n, list);
            if (statfs(mnt, &sf) < 0 ||
                (unsigned long)sf.f_type != CGROUP_SUPER_MAGIC)
                continue;
            if ((size_t)snprintf(base[i], sizeof base[i], "%s%s/surplus",
                                 mnt, strcmp(rel, "/") == 0 ? "" : rel) >=
                sizeof base[i])
                continue;
            found[i] = true;
        }
    }
    for (int i = 0; i < CG1_N; i++) {
        if (!found[i]) {
            snprintf(why, len, "no cgroup v1 %s controller mounted under "
                               "/sys/fs/cgroup",
                     names[i]);
            return false;
        }
        if (mkdir(base[i], 0755) < 0 && errno != EEXIST) {
            snprintf(why, len, "cannot create %.300s: %s", base[i],
                     strerror(errno));
            return false;
        }
        sweep(base[i]);
    }
    if (cpuset_inherit(base[CG1_CPUSET]) < 0) {
        snprintf(why, len, "cannot set up %.300s: %s", base[CG1_CPUSET],
                 strerror(errno));
        return false;
    }
    return true;
}

/* The `cpus` CPUs from `offset` on, wrapping, of a list such as "0-3,8";
 * the whole list when it has no more than that. */
static void cpus_pick(const char *list, uint32_t cpus, unsigned offset,
                      char *out, size_t len)
{
    unsigned ids[1024];
    size_t n = 0, used = 0;
    const char *p = list;

    while (*p && n < sizeof ids / sizeof ids[0]) {
        char *end;
        unsigned long a = strtoul(p, &end, 10), b = a;

        if (end == p)
            break;
        if (*end == '-')
            b = strtoul(end + 1, &end, 10);
        for (unsigned long c = a; c <= b && n < sizeof ids / sizeof ids[0];
             c++)
            ids[n++] = (unsigned)c;
        p = *end == ',' ? end + 1 : end;
        if (*end != ',')
            break;
    }
    if (n == 0 || cpus >= n) {
        snprintf(out, len, "%s", list);
        return;
    }
    out[0] = '\0';
    for (uint32_t i = 0; i < cpus && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%u",
                                 i ? "," : "", ids[(offset + i) % n]);
}

int cg1_create(const char *job_id, const struct cg1_limits *lim,
               struct cg1_job *cg, struct err *e)
{
    char val[1100], list[1024], path[PATH_MAX + 32];
    int r = 0, i;

    for (i = 0; i < CG1_N; i++)
        cg->dir[i] = cg->procs[i] = -1;
    for (i = 0; i < CG1_N; i++) {
        int k;

        /* cpu and cpuacct often share one hierarchy. */
        for (k = 0; k < i && strcmp(base[k], base[i]) != 0; k++)
            ;
        if (k < i) {
            if ((cg->dir[i] = fcntl(cg->dir[k], F_DUPFD_CLOEXEC, 0)) < 0)
                return err_set(e, -errno, "sandbox: %s", strerror(errno));
            continue;
        }
        if ((size_t)snprintf(path, sizeof path, "%s/job-%s", base[i],
                             job_id) >= sizeof path)
            return err_set(e, -ENAMETOOLONG, "sandbox: cgroup path too long");
        if ((cg->dir[i] = make_locked(path)) < 0)
            return err_set(e, cg->dir[i], "sandbox: mkdir %s: %s", path,
                           strerror(-cg->dir[i]));
        if ((cg->path[i] = strdup(path)) == NULL)
            return err_set(e, -ENOMEM, "out of memory");
        if ((cg->procs[i] = openat(cg->dir[i], "cgroup.procs",
                                   O_WRONLY | O_CLOEXEC)) < 0)
            return err_set(e, -errno, "sandbox: %s: %s", path,
                           strerror(errno));
    }
    if (lim->memory) {
        snprintf(val, sizeof val, "%llu", (unsigned long long)lim->memory);
        r = write_text(cg->dir[CG1_MEMORY], "memory.limit_in_bytes", val);
        /* memory plus swap: the same, so that none of it is swap.  Only
         * where the kernel accounts swap. */
        if (r == 0 && (r = write_text(cg->dir[CG1_MEMORY],
                                      "memory.memsw.limit_in_bytes", val)) ==
                          -ENOENT) {
            (void)write_text(cg->dir[CG1_MEMORY], "memory.swappiness", "0");
            r = 0;
        }
        if (r < 0)
            return err_set(e, r, "sandbox: %s/memory.limit_in_bytes: %s",
                           cg->path[CG1_MEMORY], strerror(-r));
    }
    if (lim->pids) {
        snprintf(val, sizeof val, "%llu", (unsigned long long)lim->pids);
        if ((r = write_text(cg->dir[CG1_PIDS], "pids.max", val)) < 0)
            return err_set(e, r, "sandbox: %s/pids.max: %s",
                           cg->path[CG1_PIDS], strerror(-r));
    }
    if (lim->cpus) {
        snprintf(val, sizeof val, "%llu",
                 (unsigned long long)lim->cpus * 100000ULL);
        if ((r = write_text(cg->dir[CG1_CPU], "cpu.cfs_period_us",
                            "100000")) < 0 ||
            (r = write_text(cg->dir[CG1_CPU], "cpu.cfs_quota_us", val)) < 0)
            return err_set(e, r, "sandbox: cpu.cfs_quota_us in %s: %s",
                           base[CG1_CPU], strerror(-r));
    }
    /* Always a cpuset: an empty one cannot run anything. */
    snprintf(path, sizeof path, "%s/cpuset.cpus", base[CG1_CPUSET]);
    if ((r = read_text(path, list, sizeof list)) == 0) {
        if (lim->cpus)
            cpus_pick(list, lim->cpus, lim->cpu_offset, val, sizeof val);
        else
            snprintf(val, sizeof val, "%s", list);
        r = write_text(cg->dir[CG1_CPUSET], "cpuset.cpus", val);
    }
    snprintf(path, sizeof path, "%s/cpuset.mems", base[CG1_CPUSET]);
    if (r == 0 && (r = read_text(path, list, sizeof list)) == 0)
        r = write_text(cg->dir[CG1_CPUSET], "cpuset.mems", list);
    if (r < 0)
        return err_set(e, r, "sandbox: cpuset of %s: %s",
                       cg->path[CG1_CPUSET], strerror(-r));
    return 0;
}

uint64_t cg_read_u64(int dfd, const char *file, const char *key)
{
    char buf[2048], *p;
    int fd = dfd < 0 ? -1 : openat(dfd, file, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (key == NULL)
        return strtoull(buf, NULL, 10);
    for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, key, strlen(key)) == 0 && p[strlen(key)] == ' ')
            return strtoull(p + strlen(key) + 1, NULL, 10);
    return 0;
}

void cg1_usage(const struct cg1_job *cg, uint64_t *cpu_ns, uint64_t *peak,
               bool *oom)
{
    *cpu_ns = cg_read_u64(cg->dir[CG1_CPUACCT], "cpuacct.usage", NULL);
    *peak = cg_read_u64(cg->dir[CG1_MEMORY], "memory.max_usage_in_bytes",
                        NULL);
    *oom = cg_read_u64(cg->dir[CG1_MEMORY], "memory.oom_control", "oom_kill") >
           0;
}

void cg1_free(struct cg1_job *cg)
{
    for (int i = 0; i < CG1_N; i++) {
        if (cg->procs[i] >= 0)
            close(cg->procs[i]);
        if (cg->dir[i] >= 0)
            close(cg->dir[i]);
        cg->procs[i] = cg->dir[i] = -1;
        if (cg->path[i] == NULL)
            continue;
        /* Empty once init is reaped. */
        rmdir_settled(cg->path[i]);
        free(cg->path[i]);
        cg->path[i] = NULL;
    }
}
