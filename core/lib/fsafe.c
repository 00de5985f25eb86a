/*
 * fsafe.c - opening and removing paths below a directory without ever
 * following a symlink (see fsafe.h).
 */
#include "fsafe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int open_walk(int dirfd, const char *path, int flags, mode_t mode)
{
    char comp[FSAFE_MAX_COMPONENT + 1];
    int cur = dirfd, fd;

    for (;;) {
        size_t len = strcspn(path, "/");

        if (len > FSAFE_MAX_COMPONENT) {
            fd = -ENAMETOOLONG;
            break;
        }
        memcpy(comp, path, len);
        comp[len] = '\0';
        if (path[len] == '\0') {
            fd = openat(cur, comp, flags, mode);
            fd = fd < 0 ? -errno : fd;
            break;
        }
        fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                   O_CLOEXEC);
        if (fd < 0) {
            fd = -errno;
            break;
        }
        if (cur != dirfd)
            close(cur);
        cur = fd;
        path += len + 1;
    }
    if (cur != dirfd)
        close(cur);
    return fd;
}

/*
 * Opens `path` (canonical, relative) below `dirfd` without following any
 * symlink, on the way or at the end.  Kernels without openat2 (before 5.6)
 * get a walk one component at a time with O_NOFOLLOW.  Returns an fd or a
 * negative errno.
 */
int fsafe_open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
#ifdef FSAFE_TEST_NO_OPENAT2
    static int have_openat2 = 0;   /* tests of the walk, built apart */
#else
    static int have_openat2 = 1;
#endif
    struct open_how how = {
        .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                   RESOLVE_NO_MAGICLINKS,
    };

    if (__atomic_load_n(&have_openat2, __ATOMIC_RELAXED)) {
        for (int tries = 0; tries < 16; tries++) {
            long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
            if (fd >= 0)
                return (int)fd;
            if (errno != EAGAIN && errno != EINTR)
                break;
        }
        if (errno != ENOSYS)
            return -errno;
        __atomic_store_n(&have_openat2, 0, __ATOMIC_RELAXED);
    }
    return open_walk(dirfd, path, flags | O_NOFOLLOW | O_CLOEXEC, mode);
}


/*
 * Removal of a tree that a job controls: any depth, any number of entries,
 * modes the job chose, and never a symlink followed.  The walk is a loop,
 * not a recursion, and holds one directory open at a time: it goes down by
 * name (O_NOFOLLOW, not across a mount) and back up through "..", checked
 * against the device and inode it came from.  What it remembers per level
 * is on the heap: that identity and the names of the subdirectories still
 * to empty.
 */
struct level {
    dev_t dev;
    ino_t ino;
    char *names;        /* NUL-terminated names, one after the other */
    size_t len, cap;    /* bytes used and allocated in names */
    size_t pos;         /* the name being emptied (or next) */
    int scans;          /* readings of the directory so far */
};

static void keep_error(int *first, int r)
{
    if (*first == 0 && r < 0)
        *first = r;
}

static int add_name(struct level *lv, const char *name)
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

/* Gives the directory `name` in `dirfd` mode 0700, never through a
 * symlink: it is held with O_PATH and changed through /proc, or with
 * AT_SYMLINK_NOFOLLOW where /proc is not mounted. */
static int chmod_dir_at(int dirfd, const char *name)
{
    char proc[64];
    int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int r = 0;

    if (fd < 0)
        return -errno;
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (chmod(proc, 0700) < 0) {
        r = -errno;
        if (r == -ENOENT &&
            fchmodat(dirfd, name, 0700, AT_SYMLINK_NOFOLLOW) == 0)
            r = 0;
    }
    close(fd);
    return r;
}

/* Opens the directory `name` in `dirfd` without following a symlink or
 * crossing a mount; one the job made unreadable is made readable first. */
static int open_subdir(int dirfd, const char *name)
{
    struct open_how how = {
        .flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                   RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };

    for (int tries = 0;; tries++) {
        long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));

        if (fd < 0 && errno == ENOSYS)
            fd = openat(dirfd, name, (int)how.flags);
        if (fd >= 0)
            return (int)fd;
        if ((errno != EACCES && errno != EAGAIN) || tries >= 2)
            return -errno;
        if (errno == EACCES && chmod_dir_at(dirfd, name) < 0)
            return -EACCES;
    }
}

/* unlinkat() that, when the job took write or search permission away
 * from `dirfd`, gives it back once and tries again. */
static int unlink_fixing(int dirfd, const char *name, int flags)
{
    if (unlinkat(dirfd, name, flags) == 0)
        return 0;
    if ((errno == EACCES || errno == EPERM) && fchmod(dirfd, 0700) == 0 &&
        unlinkat(dirfd, name, flags) == 0)
        return 0;
    return -errno;
}

/* One reading of the directory `dirfd`: files, symlinks and empty
 * directories go at once; the names of the other directories are kept in
 * `lv`.  Returns whether it found anything. */
static bool scan_dir(int dirfd, struct level *lv, int *first)
{
    bool found = false;
    struct dirent *de;
    DIR *d;
    int fd = dup(dirfd);

    lv->len = lv->pos = 0;
    lv->scans++;
    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        keep_error(first, -errno);
        if (fd >= 0)
            close(fd);
        return false;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        int r;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        found = true;
        r = de->d_type == DT_DIR ? -EISDIR
                                 : unlink_fixing(dirfd, de->d_name, 0);
        if (r == -EISDIR)
            r = unlink_fixing(dirfd, de->d_name, AT_REMOVEDIR);
        if (r == -ENOTEMPTY || r == -EEXIST)
            r = add_name(lv, de->d_name);
        if (r != -ENOENT) /* gone meanwhile */
            keep_error(first, r);
    }
    keep_error(first, -errno);
    closedir(d);
    return found;
}

static int push_level(struct level **lv, size_t *n, size_t *cap, int fd)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        struct level *p = realloc(*lv, c * sizeof *p);

        if (p == NULL)
            return -ENOMEM;
        *lv = p;
        *cap = c;
    }
    (*lv)[*n] = (struct level){.dev = st.st_dev, .ino = st.st_ino};
    ++*n;
    return 0;
}

/* Back from the directory at the top of `lv` to its parent, the way it
 * came: a ".." that is not the directory the walk came from (the tree was
 * moved meanwhile) stops the walk. */
static int go_up(int *cur, const struct level *parent)
{
    int up = openat(*cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;

    if (up < 0)
        return -errno;
    if (fstat(up, &st) < 0 || st.st_dev != parent->dev ||
        st.st_ino != parent->ino) {
        close(up);
        return -ESTALE;
    }
    close(*cur);
    *cur = up;
    return 0;
}

int fsafe_remove_below(int dirfd)
{
    struct level *lv = NULL;
    size_t n = 0, cap = 0;
    int cur, first = 0, r;

    cur = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0)
        return -errno;
    if ((r = push_level(&lv, &n, &cap, cur)) < 0) {
        close(cur);
        return r;
    }
    scan_dir(cur, &lv[0], &first);
    while (n > 0) {
        struct level *top = &lv[n - 1];

        if (top->pos < top->len) {
            const char *name = top->names + top->pos;
            int fd = open_subdir(cur, name);

            if (fd < 0) {
                if (fd != -ENOENT)
                    keep_error(&first, fd);
                top->pos += strlen(name) + 1;
                continue;
            }
            if ((r = push_level(&lv, &n, &cap, fd)) < 0) {
                close(fd);
                keep_error(&first, r);
                break;
            }
            /* Kernels without openat2: another file system is not entered
             * (what is mounted there is not the job's). */
            if (lv[n - 1].dev != lv[n - 2].dev) {
                n--;
                close(fd);
                keep_error(&first, -EXDEV);
                lv[n - 1].pos += strlen(lv[n - 1].names + lv[n - 1].pos) + 1;
                continue;
            }
            close(cur);
            cur = fd;
            scan_dir(cur, &lv[n - 1], &first);
            continue;
        }
        /* Entries a reading missed (the directory changed while it was
         * read) are found by one more; a directory that stays non-empty
         * is left to the error its parent's rmdir reports. */
        if (top->scans < 3 && top->len > 0 && scan_dir(cur, top, &first))
            continue;
        if (n == 1)
            break;
        if ((r = go_up(&cur, &lv[n - 2])) < 0) {
            keep_error(&first, r);
            break;
        }
        free(top->names);
        n--;
        top = &lv[n - 1];
        r = unlink_fixing(cur, top->names + top->pos, AT_REMOVEDIR);
        if (r < 0 && r != -ENOENT)
            keep_error(&first, r);
        top->pos += strlen(top->names + top->pos) + 1;
    }
    for (size_t i = 0; i < n; i++)
        free(lv[i].names);
    free(lv);
    close(cur);
    return first;
}

int fsafe_remove_tree(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int r;

    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    r = fsafe_remove_below(fd);
    close(fd);
    if (rmdir(path) < 0)
        return r < 0 ? r : -errno;
    return 0;
}
