/*
 * holders.c - which processes hold a device node open (see holders.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "holders.h"

struct scan {
    const char *const *nodes;
    size_t n;
    dev_t *rdev;               /* of each node */
    const char **base;         /* each node's name, after the last '/' */
    const struct holders_ignore *ig;
    struct stat self_ns;
    bool have_self_ns;
    pid_t self;
};

static bool all_digits(const char *s)
{
    return s[0] != '\0' && strspn(s, "0123456789") == strlen(s);
}

/* Worth a stat(): a path under /dev, or one ending in the name of a node
 * looked for (a job's /dev is its own, elsewhere).  Everything else a
 * descriptor can point to (sockets, pipes, files on a network filesystem
 * whose server may hang) is left alone. */
static bool may_be_node(const char *link, const struct scan *s)
{
    const char *base = strrchr(link, '/');

    if (link[0] != '/' || base == NULL)
        return false;
    if (strncmp(link, "/dev/", 5) == 0)
        return true;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(base + 1, s->base[i]) == 0)
            return true;
    return false;
}

/* Which of the nodes the descriptor `name` in /proc/<pid>/fd is open on,
 * or -1. */
static int fd_node(int fd_dir, const char *name, const struct scan *s)
{
    char link[PATH_MAX];
    struct stat st;
    ssize_t n;

    n = readlinkat(fd_dir, name, link, sizeof(link) - 1);
    if (n < 0)
        return -1;
    link[n] = '\0';
    if (!may_be_node(link, s))
        return -1;
    /* Follows the descriptor to what it was opened on, in whatever mount
     * namespace that was: a bind mount of a node is the same node. */
    if (fstatat(fd_dir, name, &st, 0) < 0 || !S_ISCHR(st.st_mode))
        return -1;
    for (size_t i = 0; i < s->n; i++)
        if (st.st_rdev == s->rdev[i])
            return (int)i;
    return -1;
}

/* PPid and the real Uid from /proc/<pid>/status. */
static int read_status(int pid_dir, pid_t *ppid, uid_t *uid)
{
    char *line = NULL;
    size_t cap = 0;
    int fd, found = 0;
    FILE *f;

    fd = openat(pid_dir, "status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    f = fdopen(fd, "r");
    if (f == NULL) {
        close(fd);
        return -ENOMEM;
    }
    while (found < 2 && getline(&line, &cap, f) > 0) {
        long v;

        if (sscanf(line, "PPid: %ld", &v) == 1) {
            *ppid = (pid_t)v;
            found++;
        } else if (sscanf(line, "Uid: %ld", &v) == 1) {
            *uid = (uid_t)v;
            found++;
        }
    }
    free(line);
    fclose(f);
    return found == 2 ? 0 : -EIO;
}

static void exe_name(int pid_dir, char *buf, size_t len)
{
    char link[PATH_MAX], *base, *del;
    ssize_t n;

    n = readlinkat(pid_dir, "exe", link, sizeof(link) - 1);
    if (n <= 0) {
        snprintf(buf, len, "?");
        return;
    }
    link[n] = '\0';
    /* An executable replaced on disk since it started. */
    del = strstr(link, " (deleted)");
    if (del != NULL && del[10] == '\0')
        *del = '\0';
    base = strrchr(link, '/');
    base = base ? base + 1 : link;
    n = (ssize_t)strlen(base);
    if ((size_t)n >= len)
        n = (ssize_t)len - 1;
    memcpy(buf, base, (size_t)n);
    buf[n] = '\0';
}

static bool same_pid_ns(int pid_dir, const struct scan *s)
{
    struct stat st;

    if (!s->have_self_ns || fstatat(pid_dir, "ns/pid", &st, 0) < 0)
        return false;
    return st.st_dev == s->self_ns.st_dev && st.st_ino == s->self_ns.st_ino;
}

static bool ignored(int pid_dir, const struct scan *s, const struct holder *h,
                    pid_t ppid)
{
    if (!same_pid_ns(pid_dir, s))
        return false;
    if (ppid == s->self)
        return true;
    for (size_t i = 0; s->ig != NULL && i < s->ig->n; i++)
        if (strcmp(h->exe, s->ig->names[i]) == 0)
            return true;
    return false;
}

/* Looks at every descriptor of one process. */
static size_t scan_process(int proc_dir, const char *pid_name,
                           const struct scan *s, bool *seen,
                           struct holder *ret, size_t max, size_t found)
{
    struct dirent *fe;
    int pid_dir, fd_dir;
    DIR *fds;

    pid_dir = openat(proc_dir, pid_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pid_dir < 0)
        return found; /* gone already */
    fd_dir = openat(pid_dir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_dir < 0 || (fds = fdopendir(fd_dir)) == NULL) {
        /* Gone, a kernel thread, or not ours to look at. */
        if (fd_dir >= 0)
            close(fd_dir);
        close(pid_dir);
        return found;
    }
    memset(seen, 0, s->n * sizeof(*seen));
    while ((fe = readdir(fds)) != NULL) {
        struct holder h;
        pid_t ppid = 0;
        int k;

        if (!all_digits(fe->d_name))
            continue;
        k = fd_node(dirfd(fds), fe->d_name, s);
        if (k < 0 || seen[k])
            continue;
        seen[k] = true;
        memset(&h, 0, sizeof(h));
        h.node = (size_t)k;
        h.pid = (pid_t)strtol(pid_name, NULL, 10);
        h.uid = (uid_t)-1;
        exe_name(pid_dir, h.exe, sizeof(h.exe));
        if (read_status(pid_dir, &ppid, &h.uid) < 0)
            ppid = 0;
        if (ignored(pid_dir, s, &h, ppid))
            continue;
        if (found < max)
            ret[found] = h;
        found++;
    }
    closedir(fds);
    close(pid_dir);
    return found;
}

int holders_scan(const char *const *nodes, size_t n,
                 const struct holders_ignore *ig, struct holder *ret,
                 size_t max, size_t *ret_n)
{
    struct scan s = {nodes, n, NULL, NULL, ig, {0}, false, getpid()};
    struct dirent *de;
    size_t found = 0;
    bool *seen;
    DIR *proc;
    int r = 0;

    *ret_n = 0;
    s.rdev = calloc(n ? n : 1, sizeof(*s.rdev));
    s.base = calloc(n ? n : 1, sizeof(*s.base));
    seen = calloc(n ? n : 1, sizeof(*seen));
    if (s.rdev == NULL || s.base == NULL || seen == NULL) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        const char *b = strrchr(nodes[i], '/');

        if (stat(nodes[i], &st) < 0) {
            r = -errno;
            goto out;
        }
        if (!S_ISCHR(st.st_mode)) {
            r = -ENOTTY;
            goto out;
        }
        s.rdev[i] = st.st_rdev;
        s.base[i] = b ? b + 1 : nodes[i];
    }
    s.have_self_ns = stat("/proc/self/ns/pid", &s.self_ns) == 0;
    proc = opendir("/proc");
    if (proc == NULL) {
        r = -errno;
        goto out;
    }
    while ((de = readdir(proc)) != NULL)
        if (all_digits(de->d_name))
            found = scan_process(dirfd(proc), de->d_name, &s, seen, ret, max,
                                 found);
    closedir(proc);
    *ret_n = found;
out:
    free(s.rdev);
    free(s.base);
    free(seen);
    return r;
}
