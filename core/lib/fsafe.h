/*
 * fsafe.h - file system access below a directory that someone else
 * controls (a bundle being unpacked, a job directory after the job): no
 * symlink is ever followed, on the way or at the end.
 */
#ifndef SURPLUS_FSAFE_H
#define SURPLUS_FSAFE_H

#include <sys/types.h>

#define FSAFE_MAX_COMPONENT 255
#define FSAFE_MAX_DEPTH 256

/* Opens `path` (relative, no "." or ".." components) below `dirfd` with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or one O_NOFOLLOW
 * component at a time on kernels without openat2.  Returns an fd or a
 * negative errno (-ELOOP for a symlink). */
int fsafe_open_beneath(int dirfd, const char *path, int flags, mode_t mode);

/* Removes everything below `dirfd` (not `dirfd` itself), at any depth and
 * with any number of entries, without recursion: each directory is entered
 * by name with O_NOFOLLOW and never across a mount, one at a time, and
 * left through "..".  Directories the job made unreadable or unwritable
 * are given mode 0700 first.  Returns 0 or the first negative errno (what
 * failed is then left in place). */
int fsafe_remove_below(int dirfd);

/* Removes the directory `path` and everything in it, as
 * fsafe_remove_below() does.  Returns 0 or a negative errno (0 if it does
 * not exist). */
int fsafe_remove_tree(const char *path);

#endif
