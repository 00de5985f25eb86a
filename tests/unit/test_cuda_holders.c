/*
 * The cuda plugin's check that no process still holds a device before it
 * is scrubbed (plugins/accelerator/cuda/holders.c), on /dev/full, which
 * needs no GPU: a process holding the node is found, with its pid,
 * program and uid; ignore_holders lets a named program off only in the
 * plugin's own pid namespace, so a job's process cannot pass for one by
 * its name; the plugin's own helpers (its children) are let off; and a
 * node that cannot be looked at is an error, not "nobody holds it".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "holders.h"
#include "tap.h"

static const char *const node[] = {"/dev/full"};

/* Starts `sleep` with /dev/full open on descriptor 3, returns its pid.
 * With `orphan`, it is a grandchild (not a child of this process); with
 * `own_ns` as well, it is pid 1 of a new pid namespace. */
static pid_t start_holder(bool orphan, bool own_ns)
{
    int pfd[2];
    pid_t pid, holder = -1;

    if (pipe(pfd) < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        pid_t k;

        close(pfd[0]);
        if (own_ns && unshare(CLONE_NEWPID) < 0)
            _exit(2);
        k = orphan ? fork() : 0;
        if (k < 0)
            _exit(3);
        if (k > 0) {
            (void)!write(pfd[1], &k, sizeof(k));
            _exit(0);
        }
        if (!orphan) {
            k = getpid();
            (void)!write(pfd[1], &k, sizeof(k));
        }
        close(pfd[1]);
        if (dup2(open("/dev/full", O_RDONLY), 3) < 0)
            _exit(4);
        execlp("sleep", "sleep", "30", (char *)NULL);
        _exit(5);
    }
    close(pfd[1]);
    if (read(pfd[0], &holder, sizeof(holder)) != (ssize_t)sizeof(holder))
        holder = -1;
    close(pfd[0]);
    if (orphan)
        waitpid(pid, NULL, 0);
    return holder;
}

static void stop_holder(pid_t pid, bool child)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    if (child)
        waitpid(pid, NULL, 0);
}

/* Scans once `pid` runs sleep (it may not have exec'd yet).  Returns 1
 * when the scan finds it, 0 when not, -1 when it never ran sleep. */
static int found(pid_t pid, const struct holders_ignore *ig,
                 struct holder *ret)
{
    const struct timespec tick = {0, 20 * 1000 * 1000};

    for (int tries = 0; tries < 50; tries++) {
        struct holder hs[256];
        size_t n = 0;
        bool exe_seen = false;
        char path[64], exe[256];
        ssize_t k;

        snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
        k = readlink(path, exe, sizeof(exe) - 1);
        if (k > 0) {
            exe[k] = '\0';
            exe_seen = strstr(exe, "sleep") != NULL;
        }
        if (!exe_seen) {
            nanosleep(&tick, NULL);
            continue;
        }
        if (holders_scan(node, 1, ig, hs, 256, &n) < 0)
            return -1;
        for (size_t i = 0; i < n && i < 256; i++)
            if (hs[i].pid == pid) {
                if (ret != NULL)
                    *ret = hs[i];
                return 1;
            }
        return 0;
    }
    return -1;
}

int main(void)
{
    const char *const sleep_name[] = {"sleep"};
    const struct holders_ignore none = {NULL, 0};
    const struct holders_ignore ig_sleep = {sleep_name, 1};
    struct holder h;
    pid_t pid;
    size_t n;
    int r;

    pid = start_holder(true, false);
    if (!tap_ok(pid > 0, "a process holding /dev/full is started"))
        goto done;
    memset(&h, 0, sizeof(h));
    r = found(pid, &none, &h);
    tap_ok(r == 1 && h.node == 0 &&
               strcmp(h.exe, "sleep") == 0 && h.uid == getuid(),
           "it is found, as 'sleep' with uid %ld (got pid %d, '%s', uid "
           "%ld)", (long)getuid(), (int)h.pid, h.exe, (long)h.uid);
    tap_ok(found(pid, &ig_sleep, NULL) == 0,
           "with ignore_holders naming 'sleep', it is let off");
    stop_holder(pid, false);

    pid = start_holder(false, false);
    tap_ok(pid > 0 && found(pid, &none, NULL) == 0,
           "a child of the scanning process (a helper) is let off");
    stop_holder(pid, true);

    if (geteuid() != 0) {
        tap_ok(1, "a process in another pid namespace is never let off by "
                  "its name # SKIP needs root");
    } else {
        pid = start_holder(true, true);
        if (pid <= 0)
            tap_ok(1, "a process in another pid namespace is never let off "
                      "by its name # SKIP cannot unshare a pid namespace");
        else
            tap_ok(found(pid, &ig_sleep, NULL) == 1,
                   "a process in another pid namespace (a job's) is found "
                   "even when its program is in ignore_holders");
        stop_holder(pid, false);
    }

    {
        const char *const missing[] = {"/dev/surplus-no-such-node"};
        r = holders_scan(missing, 1, &none, &h, 1, &n);
        tap_ok(r == -ENOENT, "a node that does not exist is -ENOENT (got "
                             "%d)", r);
    }
    {
        const char *const dir[] = {"/dev"};
        r = holders_scan(dir, 1, &none, &h, 1, &n);
        tap_ok(r == -ENOTTY, "a path that is not a character device is "
                             "-ENOTTY (got %d)", r);
    }
done:
    tap_plan_done();
    return tap_failed ? 1 : 0;
}
