/*
 * jobfs.h - a job's own size-limited filesystem.
 *
 * Everything a job can write on the host goes to one ext4 filesystem of
 * its own: a sparse image file of the job's `disk` (plus the file
 * system's overhead) in the job's directory, attached to a loop device
 * that detaches itself when unmounted, and mounted nosuid,nodev at
 * <job dir>/disk.  It holds the job directory (work, where the bundle is
 * unpacked) and the job's /tmp, /var/tmp and /dev/shm (tmp, var-tmp,
 * shm), so one limit covers all four, in bytes and in files.
 */
#ifndef SURPLUS_JOBFS_H
#define SURPLUS_JOBFS_H

#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define JOBFS_MOUNT "disk"       /* below the job's directory */
#define JOBFS_IMAGE "disk.img"
#define JOBFS_BYTES_PER_INODE 16384
#define JOBFS_MIN_INODES 1024

/* Files a filesystem of `bytes` holds. */
uint64_t jobfs_inodes(uint64_t bytes);

/*
 * Makes, mounts and prepares the filesystem below `dir` (the job's
 * directory, which exists).  Returns 0; -ENODEV when this host cannot make
 * one (no loop devices, no mke2fs; the message says which), for the
 * caller to decide; or another negative errno.  Nothing is left mounted
 * on failure.
 */
int jobfs_create(const char *dir, uint64_t bytes, uid_t uid, gid_t gid,
                 struct err *e);

/* Unmounts <dir>/disk if mounted there and removes the image: at a job's
 * end, and for the jobs a killed daemon left behind.  0 when there was
 * none. */
int jobfs_remove(const char *dir, struct err *e);

#endif
