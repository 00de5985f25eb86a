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


/* Removes everything below `dirfd` without following a symlink: each
 * directory is entered with O_NOFOLLOW by its name in its parent. */
void fsafe_remove_below(int dirfd, int depth)
{
    bool removed = true;
    DIR *d;
    int fd = dup(dirfd);

    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while (removed) {
        struct dirent *de;

        removed = false;
        rewinddir(d);
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (unlinkat(dirfd, de->d_name, 0) == 0) {
                removed = true;
                continue;
            }
            if (depth > FSAFE_MAX_DEPTH + 1)
                continue;
            fd = openat(dirfd, de->d_name,
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0)
                continue;
            fsafe_remove_below(fd, depth + 1);
            close(fd);
            if (unlinkat(dirfd, de->d_name, AT_REMOVEDIR) == 0)
                removed = true;
        }
    }
    closedir(d);
}

int fsafe_remove_tree(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    fsafe_remove_below(fd, 0);
    close(fd);
    if (rmdir(path) < 0)
        return -errno;
    return 0;
}
