/*
 * test_cgroup.c - a job's cgroup v1 directories stay where the job that
 * made them can use them while other surplus processes on the host start
 * (each sweeps the shared hierarchy of cgroups a killed runner left), and
 * such leftovers are still swept.
 *
 * Needs root and the v1 controllers (skipped elsewhere).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "tap.h"

/* cg1_probe in another process, as a surplusd or `surplus run` starting
 * beside this one does. */
static int probe_elsewhere(void)
{
    pid_t pid = fork();
    int st;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        char why[256];

        _exit(cg1_probe(why, sizeof why) ? 0 : 1);
    }
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

int main(void)
{
    char why[256], id[64], left[4096];
    struct cg1_job cg = {0};
    struct cg1_limits lim = {.pids = 64};
    struct err e = {0};
    int joined;

    if (geteuid() != 0)
        tap_skip_all("needs root");
    if (!cg1_probe(why, sizeof why))
        tap_skip_all("no cgroup v1 controllers: %s", why);
    snprintf(id, sizeof id, "unit%ld", (long)getpid());

    tap_ok(cg1_create(id, &lim, &cg, &e) == 0, "a job's cgroups are made (%s)",
           e.msg);
    tap_ok(cg.path[CG1_PIDS] != NULL && exists(cg.path[CG1_PIDS]),
           "its pids cgroup is there");

    /* What a killed runner leaves: an empty cgroup nobody holds. */
    snprintf(left, sizeof left, "%s-left", cg.path[CG1_PIDS]);
    tap_ok(mkdir(left, 0755) == 0, "a cgroup a killed runner left is made");

    /* The job's first process has not joined yet: its cgroup is empty,
     * as is the leftover. */
    tap_ok(probe_elsewhere() == 0, "another process starts and sweeps");
    for (int i = 0; i < CG1_N; i++)
        tap_ok(cg.path[i] != NULL && exists(cg.path[i]),
               "the job's still empty cgroup %s survives the sweep",
               cg.path[i] ? cg.path[i] : "(none)");
    joined = write(cg.procs[CG1_PIDS], "0", 1) == 1;
    tap_ok(joined, "the job's process can still join it (%s)",
           joined ? "ok" : strerror(errno));

    tap_ok(!exists(left), "the left-over cgroup is swept");
    if (exists(left))
        rmdir(left);

    /* Out of the job's cgroup again, so that it can go. */
    {
        char root[4096];
        int fd;

        snprintf(root, sizeof root, "%s", cg.path[CG1_PIDS]);
        *strrchr(root, '/') = '\0';
        *strrchr(root, '/') = '\0';
        strcat(root, "/cgroup.procs");
        fd = open(root, O_WRONLY | O_CLOEXEC);
        tap_ok(fd >= 0 && write(fd, "0", 1) == 1,
               "the test leaves the job's cgroup (%s)", root);
        if (fd >= 0)
            close(fd);
    }
    {
        char keep[4096];

        snprintf(keep, sizeof keep, "%s", cg.path[CG1_PIDS]);
        cg1_free(&cg);
        tap_ok(!exists(keep), "the job's cgroups are removed at its end");
    }
    return tap_done();
}
