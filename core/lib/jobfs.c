/*
 * jobfs.c - a job's own size-limited filesystem (jobfs.h).
 */
#include "jobfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef LOOP_CONFIGURE
#define LOOP_CONFIGURE 0x4C0A
struct loop_config {
    uint32_t fd;
    uint32_t block_size;
    struct loop_info64 info;
    uint64_t __reserved[8];
};
#endif

extern char **environ;

uint64_t jobfs_inodes(uint64_t bytes)
{
    uint64_t n = bytes / JOBFS_BYTES_PER_INODE;

    return n < JOBFS_MIN_INODES ? JOBFS_MIN_INODES : n;
}

/* Runs mke2fs on the image; its own words on failure. */
static int format(const char *image, uint64_t inodes, uid_t uid, gid_t gid,
                  struct err *e)
{
    static const char *const paths[] = {"/usr/sbin/mke2fs", "/sbin/mke2fs",
                                        NULL};
    char n_arg[32], e_arg[96], out[512];
    const char *prog = "mke2fs";
    posix_spawn_file_actions_t fa;
    int pfd[2], st, r;
    size_t len = 0;
    ssize_t k;
    pid_t pid;

    for (size_t i = 0; paths[i]; i++)
        if (access(paths[i], X_OK) == 0) {
            prog = paths[i];
            break;
        }
    snprintf(n_arg, sizeof n_arg, "%llu", (unsigned long long)inodes);
    /* Lazy inode tables (the image is sparse, so they read as zeroes), no
     * journal (nothing to recover: the filesystem dies with the job), no
     * reserved blocks, no room to grow. */
    snprintf(e_arg, sizeof e_arg,
             "lazy_itable_init=1,nodiscard,root_owner=%u:%u", (unsigned)uid,
             (unsigned)gid);
    char *argv[] = {"mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096",
                    "-m", "0", "-N", n_arg, "-O", "^has_journal,^resize_inode",
                    "-E", e_arg, (char *)image, NULL};

    if (pipe2(pfd, O_CLOEXEC) < 0)
        return err_set(e, -errno, "jobfs: pipe: %s", strerror(errno));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    r = prog[0] == '/' ? posix_spawn(&pid, prog, &fa, NULL, argv, environ)
                       : posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (r != 0) {
        close(pfd[0]);
        return err_set(e, r == ENOENT ? -ENODEV : -r,
                       "cannot run mke2fs (from e2fsprogs): %s",
                       strerror(r));
    }
    while (len + 1 < sizeof out &&
           ((k = read(pfd[0], out + len, sizeof out - 1 - len)) > 0 ||
            (k < 0 && errno == EINTR)))
        len += k > 0 ? (size_t)k : 0;
    out[len] = '\0';
    close(pfd[0]);
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return err_set(e, -errno, "mke2fs: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        out[strcspn(out, "\n")] = '\0';
        /* 127: the shell's "not found" from posix_spawnp's child. */
        return err_set(e, WIFEXITED(st) && WEXITSTATUS(st) == 127 ? -ENODEV
                                                                  : -EIO,
                       "mke2fs %s failed (status %d)%s%s", image,
                       WIFEXITED(st) ? WEXITSTATUS(st)
                                     : 128 + WTERMSIG(st),
                       out[0] ? ": " : "", out);
    }
    return 0;
}

/* Attaches `img` to a free loop device that detaches itself once nothing
 * holds it; returns the device's descriptor and name. */
static int loop_attach(int img, char *dev, size_t len, struct err *e)
{
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC), fd = -1;

    if (ctl < 0)
        return err_set(e, errno == ENOENT || errno == EACCES ? -ENODEV
                                                              : -errno,
                       "no loop devices: /dev/loop-control: %s",
                       strerror(errno));
    /* Another process may take the free device first: try again. */
    for (int tries = 0; tries < 32; tries++) {
        struct loop_config cfg = {.fd = (uint32_t)img};
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);

        if (n < 0) {
            int r = -errno;
            close(ctl);
            return err_set(e, -ENODEV, "no free loop device: %s",
                           strerror(-r));
        }
        snprintf(dev, len, "/dev/loop%d", n);
        if ((fd = open(dev, O_RDWR | O_CLOEXEC)) < 0) {
            int r = -errno;
            close(ctl);
            return err_set(e, r == -ENOENT ? -ENODEV : r, "%s: %s", dev,
                           strerror(-r));
        }
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0)
            break;
        if (errno == EINVAL || errno == ENOTTY) {
            /* Before Linux 5.8: two steps. */
            struct loop_info64 info = {.lo_flags = LO_FLAGS_AUTOCLEAR};

            if (ioctl(fd, LOOP_SET_FD, img) == 0) {
                if (ioctl(fd, LOOP_SET_STATUS64, &info) == 0)
                    break;
                ioctl(fd, LOOP_CLR_FD, 0);
            }
        }
        if (errno != EBUSY) {
            int r = -errno;
            close(fd);
            close(ctl);
            return err_set(e, r, "%s: attaching the job's image: %s", dev,
                           strerror(-r));
        }
        close(fd);
        fd = -1;
    }
    close(ctl);
    if (fd < 0)
        return err_set(e, -EBUSY, "no free loop device after 32 tries");
    return fd;
}

int jobfs_create(const char *dir, uint64_t bytes, uid_t uid, gid_t gid,
                 struct err *e)
{
    static const char *const sub[] = {"tmp", "var-tmp", "shm"};
    char image[PATH_MAX], mnt[PATH_MAX], path[PATH_MAX + 16], dev[64];
    uint64_t inodes = jobfs_inodes(bytes), size;
    int img = -1, loop = -1, r;

    if (getenv("SURPLUS_NO_JOBFS") != NULL)
        return err_set(e, -ENODEV, "turned off by SURPLUS_NO_JOBFS");
    if ((size_t)snprintf(image, sizeof image, "%s/" JOBFS_IMAGE, dir) >=
            sizeof image ||
        (size_t)snprintf(mnt, sizeof mnt, "%s/" JOBFS_MOUNT, dir) >=
            sizeof mnt)
        return err_set(e, -ENAMETOOLONG, "jobfs: %s: too long", dir);
    /* What ext4 keeps for itself (inode tables, bitmaps, descriptors)
     * comes on top, so that the job gets about `bytes` for its files. */
    size = bytes + inodes * 256 + bytes / 64 + (4u << 20);
    size = (size + 4095) & ~(uint64_t)4095;
    img = open(image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
               0600);
    if (img < 0)
        return err_set(e, -errno, "%s: %s", image, strerror(errno));
    if (ftruncate(img, (off_t)size) < 0) {
        r = err_set(e, -errno, "%s: %s", image, strerror(errno));
        goto fail;
    }
    if ((r = format(image, inodes, uid, gid, e)) < 0)
        goto fail;
    if ((r = loop_attach(img, dev, sizeof dev, e)) < 0)
        goto fail;
    loop = r;
    if (mkdir(mnt, 0700) < 0 && errno != EEXIST) {
        r = err_set(e, -errno, "%s: %s", mnt, strerror(errno));
        goto fail;
    }
    /* noinit_itable: the tables are zeroes already, the image is new. */
    if (mount(dev, mnt, "ext4", MS_NOSUID | MS_NODEV | MS_NOATIME,
              "noinit_itable") < 0) {
        r = err_set(e, -errno, "mount %s (%s) on %s: %s", dev, image, mnt,
                    strerror(errno));
        goto fail;
    }
    /* The mount holds the device now; it detaches when unmounted. */
    close(loop);
    loop = -1;
    close(img);
    img = -1;
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", mnt, sub[i]);
        if (mkdir(path, 01777) < 0 || chown(path, uid, gid) < 0 ||
            chmod(path, 01777) < 0) {
            r = err_set(e, -errno, "%s: %s", path, strerror(errno));
            jobfs_remove(dir, &(struct err){0});
            return r;
        }
    }
    return 0;
fail:
    if (loop >= 0)
        close(loop);
    if (img >= 0)
        close(img);
    unlink(image);
    return r;
}

int jobfs_remove(const char *dir, struct err *e)
{
    char path[PATH_MAX];
    int r = 0;

    snprintf(path, sizeof path, "%s/" JOBFS_MOUNT, dir);
    /* Lazily if something still holds it: the device detaches when the
     * last user lets go. */
    if (umount2(path, UMOUNT_NOFOLLOW) < 0 && errno == EBUSY &&
        umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
        r = err_set(e, -errno, "unmount %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/" JOBFS_IMAGE, dir);
    if (unlink(path) < 0 && errno != ENOENT && r == 0)
        r = err_set(e, -errno, "%s: %s", path, strerror(errno));
    return r;
}
