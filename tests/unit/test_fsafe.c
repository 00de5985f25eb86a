/*
 * test_fsafe.c - removing a tree a job left, as the runner and recovery
 * do: at any depth (far past what a recursion on a job thread's stack, or
 * a path, could reach), with many entries, through directories the job
 * made unreadable and unwritable (mode 000, 0500), and never through a
 * symlink, whose target outside the tree stays.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsafe.h"
#include "tap.h"

static char top[] = "/tmp/surplus-fsafe.XXXXXX";
static char outside[4200], victim[4300];

/* A chain of `depth` directories "d" below `dir`, built with one
 * directory fd at a time (no path is ever that long), with a file at each
 * level, a symlink to `outside` every 50 levels and, where `locked` is
 * true, every 100th directory left mode 000 and every 70th mode 0500
 * once built. */
static int make_chain(const char *dir, int depth, bool locked)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int *fds = calloc((size_t)depth + 1, sizeof *fds);
    int r = 0;

    if (fd < 0 || fds == NULL)
        return -1;
    for (int i = 0; i < depth && r == 0; i++) {
        int f, sub;

        if ((f = openat(fd, "file", O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) <
            0)
            r = -1;
        else
            close(f);
        if (i % 50 == 0 && symlinkat(outside, fd, "escape") < 0)
            r = -1;
        if (mkdirat(fd, "d", 0700) < 0 ||
            (sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
            r = -1;
            break;
        }
        if (locked)
            fds[i] = fd;
        else
            close(fd);
        fd = sub;
    }
    /* Modes go on from the bottom up: a mode-000 directory could not be
     * entered to build below it. */
    for (int i = depth - 1; locked && i >= 0; i--) {
        if (i > 0 && i % 100 == 0)
            fchmod(fds[i], 0);
        else if (i > 0 && i % 70 == 0)
            fchmod(fds[i], 0500);
        if (fds[i] > 0)
            close(fds[i]);
    }
    close(fd);
    free(fds);
    return r;
}

static bool gone(const char *path)
{
    struct stat st;

    return lstat(path, &st) < 0 && errno == ENOENT;
}

static bool victim_intact(void)
{
    struct stat st;

    return stat(victim, &st) == 0 && S_ISREG(st.st_mode) &&
           (st.st_mode & 07777) == 0644;
}

/* Root passes any mode; a runner without CAP_DAC_OVERRIDE (or a test not
 * run as root) does not.  The child drops the capabilities that pass
 * modes, so that what the job's modes do is seen. */
static int drop_dac(void)
{
    struct __user_cap_header_struct h = {.version =
                                             _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2];

    if (syscall(SYS_capget, &h, d) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        d[i].effective &= ~((1u << CAP_DAC_OVERRIDE) |
                            (1u << CAP_DAC_READ_SEARCH));
    }
    return (int)syscall(SYS_capset, &h, d);
}

/* fsafe_remove_tree(path) in a child without CAP_DAC_OVERRIDE; its
 * result, or -1000 when the child did not report. */
static int remove_without_dac(const char *path)
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        int r;

        if (drop_dac() < 0)
            _exit(200);
        r = fsafe_remove_tree(path);
        _exit(r == 0 ? 0 : r > -199 ? -r : 199);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
        return -1000;
    return -WEXITSTATUS(status);
}

int main(void)
{
    char path[4300];
    int r, fd;

    if (mkdtemp(top) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    snprintf(outside, sizeof outside, "%s/outside", top);
    snprintf(victim, sizeof victim, "%s/outside/victim", top);
    mkdir(outside, 0755);
    if ((fd = open(victim, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) >= 0)
        close(fd);

    /* 300 levels: past the 258 the removal stopped at. */
    snprintf(path, sizeof path, "%s/deep", top);
    mkdir(path, 0700);
    tap_ok(make_chain(path, 300, false) == 0, "a tree 300 levels deep");
    r = fsafe_remove_tree(path);
    tap_ok(r == 0 && gone(path), "it is removed whole (%s)", strerror(-r));
    tap_ok(victim_intact(), "symlinks in it were removed, not followed");

    /* 20000 levels: no path reaches that far, nor does any stack. */
    snprintf(path, sizeof path, "%s/deeper", top);
    mkdir(path, 0700);
    tap_ok(make_chain(path, 20000, false) == 0,
           "a tree 20000 levels deep");
    r = fsafe_remove_tree(path);
    tap_ok(r == 0 && gone(path), "it is removed whole (%s)", strerror(-r));

    /* Many entries in one directory, and a subdirectory in each of many. */
    snprintf(path, sizeof path, "%s/wide", top);
    mkdir(path, 0700);
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    r = fd < 0 ? -1 : 0;
    for (int i = 0; r == 0 && i < 20000; i++) {
        char name[32];
        int f;

        snprintf(name, sizeof name, "f%d", i);
        if ((f = openat(fd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0)
            r = -1;
        else
            close(f);
        snprintf(name, sizeof name, "d%d", i % 2000);
        if (i < 2000 && (mkdirat(fd, name, 0700) < 0 ||
                         mkdirat(fd, (strcat(name, "/x"), name), 0) < 0))
            r = -1;
    }
    if (fd >= 0)
        close(fd);
    tap_ok(r == 0, "a directory with 22000 entries, 2000 of them "
                   "directories holding a mode-000 one");
    r = fsafe_remove_tree(path);
    tap_ok(r == 0 && gone(path), "it is removed whole (%s)", strerror(-r));

    /* Modes the job chose, for a runner whose modes count. */
    snprintf(path, sizeof path, "%s/locked", top);
    mkdir(path, 0700);
    tap_ok(make_chain(path, 320, true) == 0,
           "a tree 320 levels deep with mode-000 and mode-0500 directories");
    r = remove_without_dac(path);
    tap_ok(r != -200, "the runner's stand-in drops CAP_DAC_OVERRIDE");
    tap_ok(r == 0 && gone(path),
           "without CAP_DAC_OVERRIDE it is still removed whole (%s)",
           r == -1000 ? "no result" : strerror(-r));
    tap_ok(victim_intact(), "no symlink in it was followed, for a mode "
                            "either");

    /* A symlink given as the tree itself is not followed. */
    snprintf(path, sizeof path, "%s/link", top);
    if (symlink(outside, path) == 0) {
        r = fsafe_remove_tree(path);
        tap_ok(r < 0 && victim_intact(),
               "a symlink in place of the tree is refused (%s)",
               strerror(-r));
        unlink(path);
    }

    unlink(victim);
    rmdir(outside);
    tap_ok(rmdir(top) == 0, "nothing else was left behind");
    return tap_done();
}
