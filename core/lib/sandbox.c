/*
 * sandbox.c - one job's namespaces, filesystem view, identity and limits.
 *
 * The child is created with clone(CLONE_VM | CLONE_VFORK) straight into
 * the new namespaces, like posix_spawn: it shares the runner's memory
 * while the runner's thread waits, so nothing of a large (or threaded)
 * runner is copied, and it must not take any lock another thread could
 * hold: everything it needs (paths, the environment, the command) is
 * prepared by the parent, and it makes system calls only.  It sets up the
 * mounts, limits and identity, enters the job's user namespace, installs
 * the system call filter, then executes surplus-sandbox-init, which
 * becomes the pid namespace's init (sandbox-init.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cgroup.h"
#include "sandbox.h"
#include "sandbox-proto.h"
#include "seccomp.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
/* 32-bit ABIs keep the 16-bit-id calls under the plain names. */
#ifdef SYS_setresuid32
#define SB_SYS_SETGROUPS SYS_setgroups32
#define SB_SYS_SETRESGID SYS_setresgid32
#define SB_SYS_SETRESUID SYS_setresuid32
#else
#define SB_SYS_SETGROUPS SYS_setgroups
#define SB_SYS_SETRESGID SYS_setresgid
#define SB_SYS_SETRESUID SYS_setresuid
#endif

#ifndef SYS_pivot_root
#define SYS_pivot_root 155
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLONE_NEWUSER
#define CLONE_NEWUSER 0x10000000
#endif
#define SB_KEYCTL_JOIN_SESSION_KEYRING 1


struct sb_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* Standard device nodes every job gets. */
static const char *const std_devices[] = {"null", "zero", "full", "random",
                                          "urandom", "tty", NULL};

#define SB_MAX_DEVICES 64
#define SB_INIT_PATH "/run/surplus-sandbox-init"
#define SB_STACK (256 * 1024)
#define SB_MAX_HIDE 32
#define SB_MI_BUF (1 << 16)
#define SB_MI_LINE (2 * PATH_MAX)
/* Everything the child uses, prepared by the parent. */
struct plan {
    const struct sandbox_spec *spec;
    char root[PATH_MAX];
    char job_in_root[PATH_MAX];
    /* Only as large as needed: every page the child touches after the
     * clone costs a fault. */
    char *hide_in_root[SB_MAX_HIDE];
    bool hide_dir[SB_MAX_HIDE];  /* a directory (else masked by a file) */
    size_t n_hide;
    char *dev_src[SB_MAX_DEVICES];
    char *dev_dst[SB_MAX_DEVICES];
    size_t n_dev;
    char tmp_opts[64];
    char *mi_buf;         /* SB_MI_BUF + SB_MI_LINE for mountinfo */
    char *scratch_src[3]; /* /tmp, /var/tmp, /dev/shm from the job's own
                             filesystem, or NULL for a tmpfs each */
    char hostname[64];
    int err_fd;
    int cg_join;      /* cgroup to join first thing, or -1 */
    int cg1_procs[CG1_N]; /* v1 groups' cgroup.procs to join, or -1 */
    int init_fd;      /* surplus-sandbox-init, checked to be there */
    char init_path[PATH_MAX]; /* and bound at SB_INIT_PATH */
    char **init_argv; /* "surplus-sandbox-init", "--", the command */
    int use_rlimits;
    unsigned long ncpu;
    char uid_map[32];  /* the user namespace's one uid and gid */
    char gid_map[32];
    bool seccomp;      /* install `filter` */
    struct sandbox_seccomp filter;
};

/* ---------------------------------------------------------------- host */

static int read_small(const char *path, char *buf, size_t len)
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
    return (int)n;
}

static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') &&
            (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
            return true;
    return false;
}

static void probe(struct sandbox_host *h)
{
    char buf[4096], *line, *save = NULL, path[4096];
    struct statfs sf;
    const char *rel = NULL;

    if (statfs("/sys/fs/cgroup", &sf) < 0 ||
        (unsigned long)sf.f_type != CGROUP2_SUPER_MAGIC) {
        snprintf(h->why, sizeof h->why,
                 "/sys/fs/cgroup is not a cgroup v2 (unified) hierarchy");
        return;
    }
    if (read_small("/proc/self/cgroup", buf, sizeof buf) < 0) {
        snprintf(h->why, sizeof h->why, "cannot read /proc/self/cgroup");
        return;
    }
    for (line = strtok_r(buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        if (strncmp(line, "0::", 3) == 0)
            rel = line + 3;
    if (rel == NULL) {
        snprintf(h->why, sizeof h->why, "no cgroup v2 entry in "
                                        "/proc/self/cgroup");
        return;
    }
    snprintf(h->cgroup_base, sizeof h->cgroup_base, "/sys/fs/cgroup%s",
             strcmp(rel, "/") == 0 ? "" : rel);
    /* Only a subtree handed to us (systemd's Delegate=yes marks it) may be
     * reorganised; changing someone else's cgroup would fight its
     * manager. */
    if (getxattr(h->cgroup_base, "trusted.delegate", buf, sizeof buf) < 0 &&
        getxattr(h->cgroup_base, "user.delegate", buf, sizeof buf) < 0) {
        snprintf(h->why, sizeof h->why,
                 "%.300s is not a delegated cgroup (run surplusd with "
                 "systemd's Delegate=yes)",
                 h->cgroup_base);
        return;
    }
    if (snprintf(path, sizeof path, "%s/cgroup.controllers",
                 h->cgroup_base) >= (int)sizeof path ||
        read_small(path, buf, sizeof buf) < 0 || !has_word(buf, "memory") ||
        !has_word(buf, "pids") || !has_word(buf, "cpu")) {
        snprintf(h->why, sizeof h->why,
                 "%.300s lacks the memory, pids or cpu controller",
                 h->cgroup_base);
        return;
    }
    /* Controllers can be enabled for children only in a cgroup without
     * processes: move this process into a leaf of its own first. */
    if (snprintf(path, sizeof path, "%s/cgroup.subtree_control",
                 h->cgroup_base) >= (int)sizeof path ||
        read_small(path, buf, sizeof buf) < 0 || !has_word(buf, "memory") ||
        !has_word(buf, "pids") || !has_word(buf, "cpu")) {
        char leaf[4200], pid[32];
        int fd;

        snprintf(leaf, sizeof leaf, "%s/supervisor", h->cgroup_base);
        if (mkdir(leaf, 0755) < 0 && errno != EEXIST)
            goto fail;
        snprintf(leaf, sizeof leaf, "%s/supervisor/cgroup.procs",
                 h->cgroup_base);
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        if ((fd = open(leaf, O_WRONLY | O_CLOEXEC)) < 0)
            goto fail;
        if (write(fd, pid, strlen(pid)) < 0) {
            close(fd);
            goto fail;
        }
        close(fd);
        if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
            goto fail;
        if (write(fd, "+memory +pids +cpu", 18) < 0) {
            close(fd);
            goto fail;
        }
        close(fd);
    }
    h->cgroup = true;
    return;
fail:
    snprintf(h->why, sizeof h->why, "cannot enable controllers in %.300s: %s",
             h->cgroup_base, strerror(errno));
}

static struct sandbox_host host_state;

static void probe_once(void)
{
    char why1[512];

    if (getenv("SURPLUS_NO_CGROUP") != NULL) {
        snprintf(host_state.why, sizeof host_state.why,
                 "cgroups turned off by SURPLUS_NO_CGROUP");
        return;
    }
    probe(&host_state);
    if (host_state.cgroup)
        return;
    if (cg1_probe(why1, sizeof why1)) {
        host_state.cgroup = host_state.cgroup_v1 = true;
        host_state.why[0] = '\0';
        return;
    }
    snprintf(host_state.why + strlen(host_state.why),
             sizeof host_state.why - strlen(host_state.why), ", and %s",
             why1);
}

const char *sandbox_init_path(void)
{
    const char *env = getenv("SURPLUS_SANDBOX_INIT");

    return env && *env ? env : SURPLUS_LIBEXEC_DIR "/surplus-sandbox-init";
}

const struct sandbox_host *sandbox_host_probe(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, probe_once);
    return &host_state;
}

/*
 * Stacks for the sandbox's first process, kept for reuse: mapping and
 * unmapping one per job costs page faults and, in a threaded daemon, a TLB
 * shootdown on every CPU.  The child is done with its stack once clone()
 * returns (CLONE_VFORK: it has executed the init or exited by then).
 */
#define SB_STACKS_KEPT 16
static pthread_mutex_t stacks_mu = PTHREAD_MUTEX_INITIALIZER;

/*
 * Held by the parent across clone(), which returns once its child has
 * executed the init or exited (CLONE_VFORK): one child at a time shares
 * the runner's memory.  Their identity changes would otherwise race on
 * the dumpable flag, which is the memory's, not the process's: a child
 * leaving root clears it while another is opening its user namespace's
 * map files, and that one fails 'setgroups: Permission denied'.  The
 * window is the child's set-up, a few milliseconds.
 */
static pthread_mutex_t clone_mu = PTHREAD_MUTEX_INITIALIZER;
static void *stacks[SB_STACKS_KEPT];
static size_t n_stacks;

static void *stack_get(void)
{
    void *st = NULL;

    pthread_mutex_lock(&stacks_mu);
    if (n_stacks > 0)
        st = stacks[--n_stacks];
    pthread_mutex_unlock(&stacks_mu);
    if (st == NULL) {
        st = mmap(NULL, SB_STACK, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (st == MAP_FAILED)
            st = NULL;
    }
    return st;
}

static void stack_put(void *st)
{
    pthread_mutex_lock(&stacks_mu);
    if (n_stacks < SB_STACKS_KEPT) {
        stacks[n_stacks++] = st;
        st = NULL;
    }
    pthread_mutex_unlock(&stacks_mu);
    if (st != NULL)
        munmap(st, SB_STACK);
}

/* --------------------------------------------------------------- child */

/* Reports why setup failed and ends the child; runs in the child only. */
static __attribute__((noreturn, format(printf, 4, 5))) void
child_fail(const struct plan *p, int stage, int err, const char *fmt, ...)
{
    struct sb_report rep = {.stage = stage, .err = err};
    va_list ap;
    ssize_t w;

    va_start(ap, fmt);
    vsnprintf(rep.text, sizeof rep.text, fmt, ap);
    va_end(ap);
    w = write(p->err_fd, &rep, sizeof rep);
    (void)w;
    _exit(SB_EXIT_SETUP);
}

/* snprintf for paths: a cut path would name the wrong place. */
__attribute__((format(printf, 4, 5))) static void
child_path(const struct plan *p, char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len)
        child_fail(p, SB_SETUP, ENAMETOOLONG, "path %s...", buf);
}

static void child_mount(const struct plan *p, const char *src,
                        const char *dst, const char *type,
                        unsigned long flags, const char *data)
{
    /* "none" rather than NULL where the kernel ignores the argument. */
    if (mount(src ? src : "none", dst, type ? type : "none", flags, data) < 0)
        child_fail(p, SB_SETUP, errno, "mount %s on %s", type ? type : src,
                   dst);
}

/* Creates `path` and its missing parents; existing ones may be read-only. */
static void child_mkdirs(const struct plan *p, const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);

    if (n >= sizeof buf)
        child_fail(p, SB_SETUP, ENAMETOOLONG, "%s", path);
    memcpy(buf, path, n + 1);
    for (char *s = buf + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            struct stat st;

            *s = '\0';
            if (stat(buf, &st) < 0 && mkdir(buf, mode) < 0 && errno != EEXIST)
                child_fail(p, SB_SETUP, errno, "mkdir %s", buf);
            *s = c;
            if (c == '\0')
                break;
        }
    }
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
    char *w = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
            s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            *w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *w++ = *s;
        }
    }
    *w = '\0';
}

/* mount_setattr(AT_RECURSIVE) for kernels (and tools such as valgrind)
 * without it: remounts every mount at or below `path` one by one, as
 * /proc/self/mountinfo lists them. */
static void child_each_below(const struct plan *p, const char *path,
                             unsigned long flags, bool detach)
{
    /* The plan's, not static: children of other threads read at once. */
    char *buf = p->mi_buf, *line = p->mi_buf + SB_MI_BUF;
    size_t used = 0, plen = strlen(path);
    int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        child_fail(p, SB_SETUP, errno, "/proc/self/mountinfo");
    while ((n = read(fd, buf, SB_MI_BUF)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            char *f, *mp = NULL, *save = NULL;
            int k = 0;

            if (buf[i] != '\n') {
                if (used + 1 < SB_MI_LINE)
                    line[used++] = buf[i];
                continue;
            }
            line[used] = '\0';
            used = 0;
            for (f = strtok_r(line, " ", &save); f && k < 4;
                 f = strtok_r(NULL, " ", &save))
                if (++k == 4)
                    mp = strtok_r(NULL, " ", &save);
            if (mp == NULL)
                continue;
            unescape(mp);
            if (strncmp(mp, path, plen) != 0 ||
                (mp[plen] != '\0' && mp[plen] != '/'))
                continue;
            if (detach) {
                /* A parent detached first takes its children along. */
                if (mp[plen] == '/' && umount2(mp, MNT_DETACH) < 0 &&
                    errno != EINVAL && errno != ENOENT)
                    child_fail(p, SB_SETUP, errno, "unmount %s", mp);
                continue;
            }
            if (mount("none", mp, "none", MS_BIND | MS_REMOUNT | flags,
                      NULL) < 0 &&
                errno != EACCES && errno != ENOENT)
                child_fail(p, SB_SETUP, errno, "remount %s read-only", mp);
        }
    }
    close(fd);
}

static void child_remount_below(const struct plan *p, const char *path,
                                unsigned long flags)
{
    child_each_below(p, path, flags, false);
}

/* Unmounts every mount strictly below `path`. */
static void child_detach_below(const struct plan *p, const char *path)
{
    child_each_below(p, path, 0, true);
}

static void child_setattr(const struct plan *p, const char *path,
                          uint64_t set, unsigned flags)
{
    struct sb_mount_attr a = {.attr_set = set};
    unsigned long mflags = 0;

    if (syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &a, sizeof a) == 0)
        return;
    if (errno != ENOSYS)
        child_fail(p, SB_SETUP, errno, "mount_setattr %s", path);
    if (set & MOUNT_ATTR_RDONLY)
        mflags |= MS_RDONLY;
    if (set & MOUNT_ATTR_NOSUID)
        mflags |= MS_NOSUID;
    if (set & MOUNT_ATTR_NODEV)
        mflags |= MS_NODEV;
    if (flags & AT_RECURSIVE)
        child_remount_below(p, path, mflags);
    else if (mount("none", path, "none", MS_BIND | MS_REMOUNT | mflags,
                   NULL) < 0)
        child_fail(p, SB_SETUP, errno, "remount %s", path);
}

static void child_dev(const struct plan *p)
{
    char dev[PATH_MAX], node[PATH_MAX], src[64];
    static const char *const links[][2] = {
        {"fd", "/proc/self/fd"},      {"stdin", "/proc/self/fd/0"},
        {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
        {"ptmx", "pts/ptmx"}};
    int fd;

    child_path(p, dev, sizeof dev, "%s/dev", p->root);
    child_mount(p, "tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC,
                "mode=0755,size=1m,nr_inodes=256");
    /* Nodes are bind mounts of the host's: creating nodes would need
     * CAP_MKNOD and could name any device. */
    for (size_t i = 0; std_devices[i]; i++) {
        child_path(p, node, sizeof node, "%s/%s", dev, std_devices[i]);
        child_path(p, src, sizeof src, "/dev/%s", std_devices[i]);
        if ((fd = open(node, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666)) <
            0)
            child_fail(p, SB_SETUP, errno, "create %s", node);
        close(fd);
        child_mount(p, src, node, NULL, MS_BIND, NULL);
    }
    for (size_t i = 0; i < p->n_dev; i++) {
        if ((fd = open(p->dev_dst[i], O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
                       0666)) < 0)
            child_fail(p, SB_SETUP, errno, "create %s", p->dev_dst[i]);
        close(fd);
        child_mount(p, p->dev_src[i], p->dev_dst[i], NULL, MS_BIND, NULL);
    }
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        child_path(p, node, sizeof node, "%s/%s", dev, links[i][0]);
        if (symlink(links[i][1], node) < 0)
            child_fail(p, SB_SETUP, errno, "symlink %s", node);
    }
    child_path(p, node, sizeof node, "%s/pts", dev);
    if (mkdir(node, 0755) < 0)
        child_fail(p, SB_SETUP, errno, "mkdir %s", node);
    child_mount(p, "devpts", node, "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620");
    child_path(p, node, sizeof node, "%s/shm", dev);
    if (mkdir(node, 01777) < 0)
        child_fail(p, SB_SETUP, errno, "mkdir %s", node);
    if (p->scratch_src[2])
        child_mount(p, p->scratch_src[2], node, NULL, MS_BIND, NULL);
    else
        child_mount(p, "tmpfs", node, "tmpfs", MS_NOSUID | MS_NODEV,
                    p->tmp_opts);
    /* The job may write to its nodes, never add or replace one. */
    child_mount(p, NULL, dev, NULL,
                MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL);
}

static void child_loopback(const struct plan *p)
{
    struct ifreq ifr = {0};
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (s < 0)
        child_fail(p, SB_SETUP, errno, "socket for loopback");
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        child_fail(p, SB_SETUP, errno, "loopback flags");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        child_fail(p, SB_SETUP, errno, "loopback up");
    close(s);
}

static void child_filesystem(const struct plan *p)
{
    const struct sandbox_spec *s = p->spec;
    char path[PATH_MAX];

    child_mount(p, NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    child_mount(p, "/", p->root, NULL, MS_BIND | MS_REC, NULL);
    child_setattr(p, p->root, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                                  MOUNT_ATTR_NODEV, AT_RECURSIVE);

    static const char *const scratch[] = {"tmp", "var/tmp", NULL};
    for (size_t i = 0; scratch[i]; i++) {
        struct stat st;

        child_path(p, path, sizeof path, "%s/%s", p->root, scratch[i]);
        if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (p->scratch_src[i])
            child_mount(p, p->scratch_src[i], path, NULL, MS_BIND, NULL);
        else
            child_mount(p, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV,
                        p->tmp_opts);
    }
    /* The host's mounts below the hidden paths (other jobs' filesystems
     * under the state directory) are let go rather than only covered:
     * a copy held here would keep them busy after their jobs end. */
    for (size_t i = 0; i < p->n_hide; i++)
        child_detach_below(p, p->hide_in_root[i]);
    child_path(p, path, sizeof path, "%s/run", p->root);
    child_mount(p, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "mode=0755,size=1m,nr_inodes=1024");
    /* surplus-sandbox-init, bound read-only where the new root shows it
     * (its own path may be hidden, under /tmp for a build tree). */
    {
        int fd;

        child_path(p, path, sizeof path, "%s" SB_INIT_PATH, p->root);
        if ((fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
                       0755)) < 0)
            child_fail(p, SB_SETUP, errno, "create %s", path);
        close(fd);
        /* By path: the descriptor's mount belongs to the runner's
         * namespace, which a bind mount here may not take from. */
        child_mount(p, p->init_path, path, NULL, MS_BIND, NULL);
        child_setattr(p, path, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                                   MOUNT_ATTR_NODEV, 0);
    }
    child_dev(p);
    child_path(p, path, sizeof path, "%s/proc", p->root);
    child_mount(p, "proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                NULL);
    for (size_t i = 0; i < p->n_hide; i++) {
        struct stat st;

        if (!p->hide_dir[i]) {
            /* A file below a fresh /tmp or /run is not there to hide. */
            if (lstat(p->hide_in_root[i], &st) < 0 || S_ISDIR(st.st_mode))
                continue;
            child_mount(p, "/dev/null", p->hide_in_root[i], NULL, MS_BIND,
                        NULL);
            child_setattr(p, p->hide_in_root[i],
                          MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                              MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                          0);
            continue;
        }
        /* Below a fresh /tmp the path does not exist yet. */
        child_mkdirs(p, p->hide_in_root[i], 0755);
        child_mount(p, "tmpfs", p->hide_in_root[i], "tmpfs",
                    MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "mode=0755,size=1m,nr_inodes=1024");
    }
    child_mkdirs(p, p->job_in_root, 0755);
    child_mount(p, s->job_dir, p->job_in_root, NULL, MS_BIND, NULL);
    child_setattr(p, p->job_in_root, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0);

    if (chdir(p->root) < 0)
        child_fail(p, SB_SETUP, errno, "chdir %s", p->root);
    /* pivot_root(".", ".") stacks the old root under the new one, where a
     * lazy unmount removes it without needing a directory for it. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        child_fail(p, SB_SETUP, errno, "pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        child_fail(p, SB_SETUP, errno, "unmount the host root");
    if (chdir(s->job_dir) < 0)
        child_fail(p, SB_SETUP, errno, "chdir %s", s->job_dir);
}

static void child_limits(const struct plan *p)
{
    const struct sandbox_spec *s = p->spec;
    struct rlimit rl;

    rl = (struct rlimit){0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    /* Without a filesystem of its own, a file's size is all that can be
     * held of `disk`, whatever holds the rest. */
    if (s->disk && p->scratch_src[0] == NULL) {
        rl.rlim_cur = rl.rlim_max = s->disk;
        if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
            child_fail(p, SB_SETUP, errno, "RLIMIT_FSIZE");
    }
    if (!p->use_rlimits)
        return;
    /* RLIMIT_NPROC counts the processes of a real uid: the job's uid is
     * its own, so this is the job's process count. */
    if (s->pids) {
        rl.rlim_cur = rl.rlim_max = s->pids;
        if (setrlimit(RLIMIT_NPROC, &rl) < 0)
            child_fail(p, SB_SETUP, errno, "RLIMIT_NPROC");
    }
    /* RLIMIT_DATA (private writable memory) rather than RLIMIT_AS: GPU
     * runtimes reserve address space far beyond what they use, and a
     * job with a device gets no memory rlimit at all for the same
     * reason. */
    if (s->memory && (s->devices == NULL || s->devices[0] == NULL)) {
        rl.rlim_cur = rl.rlim_max = s->memory;
        if (setrlimit(RLIMIT_DATA, &rl) < 0)
            child_fail(p, SB_SETUP, errno, "RLIMIT_DATA");
    }
    if (s->cpus && s->cpus < p->ncpu) {
        cpu_set_t set;

        CPU_ZERO(&set);
        for (unsigned i = 0; i < s->cpus; i++)
            CPU_SET((s->cpu_offset + i) % p->ncpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0)
            child_fail(p, SB_SETUP, errno, "CPU affinity");
    }
}

#define SB_USERNS_HINT                                                      \
    " (user.max_user_namespaces, or a security module such as AppArmor's " \
    "restrict_unprivileged_userns without a profile for surplus that "     \
    "allows userns, may forbid them)"

/* Writes `text` to a file of /proc/self; runs in the child only. */
static void child_write(const struct plan *p, const char *file,
                        const char *text)
{
    size_t n = strlen(text);
    int fd = open(file, O_WRONLY | O_CLOEXEC);

    if (fd < 0 || write(fd, text, n) != (ssize_t)n)
        child_fail(p, SB_SETUP, errno, "user namespace: %s%s", file,
                   errno == EPERM ? SB_USERNS_HINT : "");
    close(fd);
}

/*
 * The job's own user namespace, mapping only its uid and gid to the same
 * ids outside: keyrings and the other kernel objects kept per user
 * namespace are then the job's alone, whatever ran as this uid before, and
 * other owners' files show as the overflow id (nobody).  Entered after the
 * mounts, as the job's uid, so the namespace belongs to that uid: the
 * kernel lets an owner map its own ids without privilege.  The
 * capabilities the namespace grants end at the execve of init, whose uid
 * is not 0 in it.
 */
static void child_userns(const struct plan *p)
{
    if (unshare(CLONE_NEWUSER) < 0)
        child_fail(p, SB_SETUP, errno, "user namespace%s",
                   errno == EPERM || errno == ENOSPC ? SB_USERNS_HINT : "");
    /* Leaving root made the process (and the runner, whose memory it
     * shares) non-dumpable, which gives its /proc files to root; the maps
     * can only be written while they are its own.  Dumpable belongs to
     * the memory, so another child in that memory changing identity
     * would clear it again: sandbox_start lets one child at a time run
     * between clone and exec (clone_mu).  Nothing else runs as this uid
     * (its uids are the job's alone on the host) to take the moment. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    child_write(p, "/proc/self/setgroups", "deny");
    child_write(p, "/proc/self/uid_map", p->uid_map);
    child_write(p, "/proc/self/gid_map", p->gid_map);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* The session keyring is inherited from the runner, and possessing a
     * keyring is enough to use it: start a new, empty one. */
    if (syscall(SYS_keyctl, SB_KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 &&
        errno != ENOSYS)
        child_fail(p, SB_SETUP, errno, "session keyring");
    /* A new user namespace comes with a full bounding set; empty it while
     * the namespace's capabilities still allow it. */
    for (int cap = 0; cap < 64; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno == EINVAL)
            break;
}

static void child_identity(const struct plan *p)
{
    const struct sandbox_spec *s = p->spec;

    /* The system calls themselves, not the C library's functions: in a
     * threaded program those apply the change to every thread they know
     * of (glibc signals each one), and this child shares the runner's
     * memory, so the library would take the runner's threads for its
     * own.  Only this process is to change identity. */
    if (syscall(SB_SYS_SETGROUPS, 0, NULL) < 0)
        child_fail(p, SB_SETUP, errno, "setgroups");
    if (syscall(SB_SYS_SETRESGID, s->gid, s->gid, s->gid) < 0)
        child_fail(p, SB_SETUP, errno, "setresgid %u", (unsigned)s->gid);
    /* From root to a non-root uid without SECBIT_KEEP_CAPS clears the
     * permitted, effective and ambient sets. */
    if (syscall(SB_SYS_SETRESUID, s->uid, s->uid, s->uid) < 0)
        child_fail(p, SB_SETUP, errno, "setresuid %u", (unsigned)s->uid);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(p, SB_SETUP, errno, "no_new_privs");
    child_userns(p);
    /* A changed identity cleared it: set it again. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
}

/* Moves `fd` to `to` without the close-on-exec flag. */
static void child_fd(const struct plan *p, int fd, int to)
{
    if (fd == to ? fcntl(fd, F_SETFD, 0) < 0 : dup2(fd, to) < 0)
        child_fail(p, SB_SETUP, errno, "descriptor %d", to);
}

/*
 * The child, started with CLONE_VM|CLONE_VFORK: it shares the runner's
 * memory (no page tables copied, no copy-on-write faults for either side)
 * while the runner's thread waits, and ends by executing
 * surplus-sandbox-init.  System calls only, on its own stack.
 */
static int child_fn(void *arg)
{
    const struct plan *p = arg;
    const struct sandbox_spec *s = p->spec;
    int fds[3], err;

    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (p->cg_join >= 0) {
        int fd = openat(p->cg_join, "cgroup.procs", O_WRONLY | O_CLOEXEC);

        if (fd < 0 || write(fd, "0", 1) != 1)
            child_fail(p, SB_SETUP, errno, "join the job's cgroup");
        close(fd);
    }
    for (int i = 0; i < CG1_N; i++)
        if (p->cg1_procs[i] >= 0 && write(p->cg1_procs[i], "0", 1) != 1)
            child_fail(p, SB_SETUP, errno, "join the job's cgroups");
    if (sethostname(p->hostname, strlen(p->hostname)) < 0)
        child_fail(p, SB_SETUP, errno, "sethostname");
    if (!s->network_host)
        child_loopback(p);
    child_filesystem(p);
    child_limits(p);

    /* Above 3 first, so that no descriptor overwrites another. */
    fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fds[0] < 0 || (fds[0] = fcntl(fds[0], F_DUPFD_CLOEXEC, 10)) < 0 ||
        (fds[1] = fcntl(s->log_fd, F_DUPFD_CLOEXEC, 10)) < 0 ||
        (fds[2] = fcntl(p->err_fd, F_DUPFD_CLOEXEC, 10)) < 0)
        child_fail(p, SB_SETUP, errno, "descriptors");
    child_fd(p, fds[0], 0);
    child_fd(p, fds[1], 1);
    child_fd(p, fds[1], 2);
    child_fd(p, fds[2], SB_REPORT_FD);
    syscall(SYS_close_range, SB_REPORT_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC);

    child_identity(p);
    /* Last: from here on the filter applies to this process too. */
    if (p->seccomp && (err = sandbox_seccomp_install(&p->filter)) < 0)
        child_fail(p, SB_SETUP, -err, "system call filter");
    execve(SB_INIT_PATH, p->init_argv, s->envp);
    child_fail(p, SB_SETUP, errno, "execute %s", SB_INIT_PATH);
}

/* -------------------------------------------------------------- parent */

static int plan_path(char *buf, size_t len, const char *root,
                     const char *path, struct err *e)
{
    if (path[0] != '/')
        return err_set(e, -EINVAL, "sandbox: '%s' is not absolute", path);
    if ((size_t)snprintf(buf, len, "%s%s", root, path) >= len)
        return err_set(e, -ENAMETOOLONG, "sandbox: '%s' is too long", path);
    return 0;
}

static int plan_strdup(char **ret, struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int plan_strdup(char **ret, struct err *e, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(ret, fmt, ap);
    va_end(ap);
    if (n < 0) {
        *ret = NULL;
        return err_set(e, -ENOMEM, "out of memory");
    }
    if (n >= PATH_MAX)
        return err_set(e, -ENAMETOOLONG, "sandbox: '%s' is too long", *ret);
    return 0;
}

static void plan_free(struct plan *p)
{
    if (p->init_fd >= 0)
        close(p->init_fd);
    free(p->init_argv);
    for (size_t i = 0; i < SB_MAX_HIDE; i++)
        free(p->hide_in_root[i]);
    for (size_t i = 0; i < 3; i++)
        free(p->scratch_src[i]);
    free(p->mi_buf);
    for (size_t i = 0; i < SB_MAX_DEVICES; i++) {
        free(p->dev_src[i]);
        free(p->dev_dst[i]);
    }
    free(p);
}

static int plan_make(struct plan *p, const struct sandbox_spec *s,
                     bool use_rlimits, struct err *e)
{
    size_t i;
    int r;
    long n;

    p->spec = s;
    p->use_rlimits = use_rlimits;
    if ((p->mi_buf = malloc(SB_MI_BUF + SB_MI_LINE)) == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    {
        const char *init = sandbox_init_path();
        size_t argc = 0;

        while (s->argv[argc])
            argc++;
        if ((p->init_argv = calloc(argc + 3, sizeof(char *))) == NULL)
            return err_set(e, -ENOMEM, "out of memory");
        p->init_argv[0] = (char *)"surplus-sandbox-init";
        p->init_argv[1] = (char *)"--";
        memcpy(p->init_argv + 2, s->argv, argc * sizeof(char *));
        if ((p->init_fd = open(init, O_RDONLY | O_CLOEXEC)) < 0 ||
            realpath(init, p->init_path) == NULL)
            return err_set(e, -errno, "sandbox: %s: %s", init,
                           strerror(errno));
    }
    n = sysconf(_SC_NPROCESSORS_ONLN);
    p->ncpu = n > 0 ? (unsigned long)n : 1;
    if (realpath(s->root_dir, p->root) == NULL)
        return err_set(e, -errno, "sandbox: %s: %s", s->root_dir,
                       strerror(errno));
    if ((r = plan_path(p->job_in_root, sizeof p->job_in_root, p->root,
                       s->job_dir, e)) < 0)
        return r;
    for (i = 0; s->hide && s->hide[i]; i++) {
        struct stat st;

        if (i >= SB_MAX_HIDE)
            return err_set(e, -E2BIG, "sandbox: too many hidden paths");
        if (stat(s->hide[i], &st) < 0)
            continue;
        if (s->hide[i][0] != '/')
            return err_set(e, -EINVAL, "sandbox: '%s' is not absolute",
                           s->hide[i]);
        /* Masking the root would leave the job nothing to run. */
        if (s->hide[i][strspn(s->hide[i], "/")] == '\0')
            return err_set(e, -EINVAL, "sandbox: refusing to hide '/'");
        p->hide_dir[p->n_hide] = S_ISDIR(st.st_mode);
        if ((r = plan_strdup(&p->hide_in_root[p->n_hide++], e, "%s%s",
                             p->root, s->hide[i])) < 0)
            return r;
    }
    for (i = 0; s->devices && s->devices[i]; i++) {
        const char *d = s->devices[i], *base;
        struct stat st;

        if (i >= SB_MAX_DEVICES)
            return err_set(e, -E2BIG, "sandbox: more than %d device nodes",
                           SB_MAX_DEVICES);
        if (strncmp(d, "/dev/", 5) != 0 || strstr(d, "/..") != NULL ||
            strchr(d + 5, '/') != NULL)
            return err_set(e, -EINVAL,
                           "sandbox: device '%s' is not a node directly "
                           "under /dev",
                           d);
        if (stat(d, &st) < 0)
            return err_set(e, -errno, "sandbox: device '%s': %s", d,
                           strerror(errno));
        if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
            return err_set(e, -ENODEV,
                           "sandbox: device '%s' is not a device node", d);
        base = d + 5;
        for (const char *const *sd = std_devices; *sd; sd++)
            if (strcmp(*sd, base) == 0)
                goto next;
        if ((r = plan_strdup(&p->dev_src[p->n_dev], e, "%s", d)) < 0 ||
            (r = plan_strdup(&p->dev_dst[p->n_dev++], e, "%s/dev/%s",
                             p->root, base)) < 0)
            return r;
    next:;
    }
    if (s->scratch_dir) {
        static const char *const sub[] = {"tmp", "var-tmp", "shm"};

        for (i = 0; i < 3; i++)
            if ((r = plan_strdup(&p->scratch_src[i], e, "%s/%s",
                                 s->scratch_dir, sub[i])) < 0)
                return r;
    }
    if (s->disk)
        snprintf(p->tmp_opts, sizeof p->tmp_opts, "mode=1777,size=%llu",
                 (unsigned long long)s->disk);
    else
        snprintf(p->tmp_opts, sizeof p->tmp_opts, "mode=1777");
    snprintf(p->hostname, sizeof p->hostname, "surplus-%.40s", s->job_id);
    snprintf(p->uid_map, sizeof p->uid_map, "%u %u 1", (unsigned)s->uid,
             (unsigned)s->uid);
    snprintf(p->gid_map, sizeof p->gid_map, "%u %u 1", (unsigned)s->gid,
             (unsigned)s->gid);
    if (!s->seccomp_off) {
        if ((r = sandbox_seccomp_build(s->seccomp_allow, &p->filter, e)) < 0)
            return r;
        p->seccomp = true;
    }
    return 0;
}

static int cg_write(int dfd, const char *file, const char *val)
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

static int cg_create(const struct sandbox_host *h,
                     const struct sandbox_spec *s, struct sandbox *sb,
                     struct err *e)
{
    char path[PATH_MAX], val[64];
    int r;

    if ((size_t)snprintf(path, sizeof path, "%s/job-%s", h->cgroup_base,
                         s->job_id) >= sizeof path)
        return err_set(e, -ENAMETOOLONG, "sandbox: cgroup path too long");
    if (mkdir(path, 0755) < 0)
        return err_set(e, -errno, "sandbox: mkdir %s: %s", path,
                       strerror(errno));
    if ((sb->cgroup_path = strdup(path)) == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    sb->cgroup_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sb->cgroup_fd < 0)
        return err_set(e, -errno, "sandbox: %s: %s", path, strerror(errno));
    r = 0;
    if (s->memory) {
        snprintf(val, sizeof val, "%llu", (unsigned long long)s->memory);
        if ((r = cg_write(sb->cgroup_fd, "memory.max", val)) == 0)
            r = cg_write(sb->cgroup_fd, "memory.swap.max", "0");
        if (r == -ENOENT) /* no swap accounting on this host */
            r = 0;
    }
    if (r == 0 && s->pids) {
        snprintf(val, sizeof val, "%llu", (unsigned long long)s->pids);
        r = cg_write(sb->cgroup_fd, "pids.max", val);
    }
    if (r == 0 && s->cpus) {
        snprintf(val, sizeof val, "%llu 100000",
                 (unsigned long long)s->cpus * 100000ULL);
        r = cg_write(sb->cgroup_fd, "cpu.max", val);
    }
    if (r < 0)
        return err_set(e, r, "sandbox: setting limits in %s: %s", path,
                       strerror(-r));
    return 0;
}

int sandbox_start(const struct sandbox_spec *spec, struct sandbox *sb,
                  struct err *e)
{
    const struct sandbox_host *h = sandbox_host_probe();
    struct plan *p;
    struct sb_report rep;
    int pipefd[2] = {-1, -1}, pidfd = -1, r;
    sigset_t all, old;
    void *stack;
    int flags, err;
    pid_t pid;
    ssize_t n;

    memset(sb, 0, sizeof *sb);
    sb->pid = -1;
    sb->pidfd = -1;
    sb->cgroup_fd = -1;
    if (spec->uid == 0 || spec->gid == 0)
        return err_set(e, -EPERM, "sandbox: refusing to run a job as root");
    /* The plan is large; the heap keeps it off a thread's stack. */
    if ((p = calloc(1, sizeof *p)) == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    if ((r = plan_make(p, spec, !h->cgroup, e)) < 0)
        goto out;
    for (int i = 0; i < CG1_N; i++)
        p->cg1_procs[i] = -1;
    if (h->cgroup_v1) {
        struct cg1_limits lim = {.memory = spec->memory, .pids = spec->pids,
                                 .cpus = spec->cpus,
                                 .cpu_offset = spec->cpu_offset};

        if ((sb->cg1 = calloc(1, sizeof *sb->cg1)) == NULL) {
            r = err_set(e, -ENOMEM, "out of memory");
            goto out;
        }
        r = cg1_create(spec->job_id, &lim, sb->cg1, e);
        for (int i = 0; i < CG1_N; i++)
            p->cg1_procs[i] = sb->cg1->procs[i];
        if (r < 0)
            goto out;
    } else if (h->cgroup && (r = cg_create(h, spec, sb, e)) < 0) {
        goto out;
    }
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        r = err_set(e, -errno, "sandbox: pipe: %s", strerror(errno));
        goto out;
    }
    p->err_fd = pipefd[1];
    p->cg_join = sb->cgroup_fd;
    flags = CLONE_VM | CLONE_VFORK | CLONE_NEWNS | CLONE_NEWPID |
            CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD |
            (spec->network_host ? 0 : CLONE_NEWNET);
    if ((stack = stack_get()) == NULL) {
        r = err_set(e, -errno, "sandbox: stack: %s", strerror(errno));
        goto out;
    }
    /* The child must not run this process's handlers on its memory. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_mutex_lock(&clone_mu);
    pid = clone(child_fn, (char *)stack + SB_STACK, flags | SIGCHLD, p,
                &pidfd, NULL, NULL);
    err = errno;
    pthread_mutex_unlock(&clone_mu);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    stack_put(stack);
    errno = err;
    if (pid < 0) {
        r = -errno;
        err_set(e, r, "sandbox: cannot create the job's namespaces: %s%s",
                strerror(-r),
                r == -EPERM ? " (the runner needs root, or CAP_SYS_ADMIN)"
                            : "");
        goto out;
    }
    sb->pid = pid;
    /* Some clone(2) emulations (valgrind) ignore CLONE_PIDFD; the child
     * is ours and not reaped, so its pid cannot have been reused. */
    if (pidfd < 0)
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    sb->pidfd = pidfd;
    if (pidfd < 0) {
        r = err_set(e, -errno, "sandbox: pidfd for the job: %s",
                    strerror(errno));
        kill(pid, SIGKILL);
        sandbox_wait(sb, &(int){0}, NULL, NULL);
        goto out;
    }
    close(pipefd[1]);
    pipefd[1] = -1;
    /* EOF: the command was executed.  A report: it was not. */
    do
        n = read(pipefd[0], &rep, sizeof rep);
    while (n < 0 && errno == EINTR);
    r = 0;
    if (n == (ssize_t)sizeof rep) {
        rep.text[sizeof rep.text - 1] = '\0';
        if (rep.stage == SB_EXEC) {
            snprintf(sb->exec_error, sizeof sb->exec_error, "%s%s%s",
                     rep.text, rep.err ? ": " : "",
                     rep.err ? strerror(rep.err) : "");
        } else {
            r = err_set(e, rep.err ? -rep.err : -EIO,
                        "sandbox setup failed: %s%s%s", rep.text,
                        rep.err ? ": " : "",
                        rep.err ? strerror(rep.err) : "");
            sandbox_wait(sb, &(int){0}, NULL, NULL);
        }
    } else if (n != 0) {
        r = err_set(e, -EIO, "sandbox: short report from the job's init");
        sandbox_kill(sb);
        sandbox_wait(sb, &(int){0}, NULL, NULL);
    }
out:
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    plan_free(p);
    return r;
}

int sandbox_signal(struct sandbox *sb, int sig)
{
    if (sb->pidfd < 0 || sb->reaped)
        return -ESRCH;
    if (syscall(SYS_pidfd_send_signal, sb->pidfd, sig, NULL, 0) == 0)
        return 0;
    /* Without pidfd_send_signal (valgrind) the pid is just as safe: the
     * process is our unreaped child. */
    if (errno == ENOSYS && kill(sb->pid, sig) == 0)
        return 0;
    return -errno;
}

int sandbox_kill(struct sandbox *sb)
{
    if (sb->cgroup_fd >= 0)
        cg_write(sb->cgroup_fd, "cgroup.kill", "1");
    /* Killing the namespace's init kills every process in it. */
    return sandbox_signal(sb, SIGKILL);
}

int sandbox_wait(struct sandbox *sb, int *status, struct rusage *ru,
                 uint64_t *peak_memory)
{
    struct rusage local;
    int st;
    pid_t r;

    if (sb->reaped || sb->pid <= 0)
        return -ECHILD;
    do
        r = wait4(sb->pid, &st, __WALL, &local);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    sb->reaped = true;
    *status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
    if (peak_memory)
        *peak_memory = (uint64_t)local.ru_maxrss * 1024;
    if (sb->cgroup_fd >= 0) {
        uint64_t usec = cg_read_u64(sb->cgroup_fd, "cpu.stat", "usage_usec");
        uint64_t peak = cg_read_u64(sb->cgroup_fd, "memory.peak", NULL);

        if (usec) {
            local.ru_utime.tv_sec = (time_t)(usec / 1000000);
            local.ru_utime.tv_usec = (suseconds_t)(usec % 1000000);
            local.ru_stime.tv_sec = 0;
            local.ru_stime.tv_usec = 0;
        }
        if (peak && peak_memory)
            *peak_memory = peak;
        sb->oom = cg_read_u64(sb->cgroup_fd, "memory.events", "oom_kill") > 0;
    }
    if (sb->cg1) {
        uint64_t ns, peak;

        cg1_usage(sb->cg1, &ns, &peak, &sb->oom);
        if (ns) {
            local.ru_utime.tv_sec = (time_t)(ns / 1000000000);
            local.ru_utime.tv_usec = (suseconds_t)(ns % 1000000000 / 1000);
            local.ru_stime.tv_sec = 0;
            local.ru_stime.tv_usec = 0;
        }
        if (peak && peak_memory)
            *peak_memory = peak;
    }
    if (ru)
        *ru = local;
    return 0;
}

void sandbox_free(struct sandbox *sb)
{
    if (sb->pid > 0 && !sb->reaped) {
        int st;

        sandbox_kill(sb);
        sandbox_wait(sb, &st, NULL, NULL);
    }
    if (sb->pidfd >= 0)
        close(sb->pidfd);
    if (sb->cgroup_fd >= 0)
        close(sb->cgroup_fd);
    if (sb->cgroup_path) {
        /* Empty once init is reaped; retried briefly as the kernel
         * finishes tearing the tasks down. */
        for (int i = 0; i < 100 && rmdir(sb->cgroup_path) < 0 &&
                        errno == EBUSY;
             i++)
            usleep(1000);
        free(sb->cgroup_path);
    }
    if (sb->cg1) {
        cg1_free(sb->cg1);
        free(sb->cg1);
    }
    memset(sb, 0, sizeof *sb);
    sb->pid = -1;
    sb->pidfd = -1;
    sb->cgroup_fd = -1;
}
