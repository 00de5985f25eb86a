/*
 * sandbox.h - running one job's command isolated from the host.
 *
 * sandbox_start() clones a process into fresh mount, pid, ipc, uts and (by
 * default) network namespaces.  It builds the job's view of the filesystem
 * (the host read-only, private /tmp, /run, /dev and /proc, the job
 * directory read-write), drops to the job's unprivileged uid with no
 * capabilities and no_new_privs, enters a user namespace of its own that
 * maps only that uid and gid, installs the system call filter (seccomp.h)
 * and executes surplus-sandbox-init, the
 * namespace's init, which starts the command and reaps everything until
 * the command exits.  When init exits the
 * kernel kills whatever else is left in the pid namespace, so nothing a job
 * starts outlives it, whatever it does with setsid or signal masks.
 *
 * Resource limits use a delegated cgroup v2 hierarchy where the host has
 * one, else the cgroup v1 memory, pids, cpu, cpuacct and cpuset
 * controllers (cgroup.h), and rlimits plus CPU affinity otherwise
 * (sandbox_host_probe says which).
 */
#ifndef SURPLUS_SANDBOX_H
#define SURPLUS_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "cgroup.h"
#include "err.h"

struct sandbox_spec {
    const char *job_id;
    const char *root_dir;        /* empty directory: the new root's mount
                                    point, owned by the runner */
    const char *job_dir;         /* host path; read-write, and the cwd */
    const char *const *hide;     /* host paths masked: a directory by an
                                    empty tmpfs, anything else by /dev/null;
                                    NULL-ended */
    char *const *argv;           /* the command; argv[0] without '/' is
                                    searched in the job's PATH */
    char *const *envp;           /* the job's whole environment */
    uid_t uid;
    gid_t gid;
    bool network_host;           /* share the host's network namespace */
    const char *const *devices;  /* device nodes to expose besides the
                                    standard ones; NULL-ended */
    int log_fd;                  /* the job's stdout and stderr */
    uint32_t cpus;               /* 0: no limit */
    unsigned cpu_offset;         /* first CPU when pinning without cgroups */
    uint64_t memory;             /* bytes; 0: no limit */
    uint64_t pids;               /* processes; 0: no limit */
    uint64_t disk;               /* bytes; held by scratch_dir's filesystem,
                                    else per file and per tmpfs; 0: none */
    const char *scratch_dir;     /* holds tmp, var-tmp and shm, bound at
                                    /tmp, /var/tmp and /dev/shm (the job's
                                    own filesystem); NULL: tmpfs of `disk`
                                    bytes each */
    bool seccomp_off;            /* no system call filter */
    unsigned seccomp_allow;      /* SB_ALLOW_ groups given back */
};

struct sandbox {
    pid_t pid;          /* the namespace's init, as the host sees it */
    int pidfd;          /* polls readable when init has exited */
    int cgroup_fd;      /* the job's cgroup, or -1 under rlimits */
    char *cgroup_path;  /* removed by sandbox_free */
    struct cg1_job *cg1; /* the job's cgroup v1 groups, or NULL */
    bool reaped;
    bool oom;           /* the memory limit's OOM killer ended a process */
    char exec_error[512];  /* why the command could not be executed; the
                              job then exits 127 (not found) or 126 */
};

/* What the host offers, probed once per process.  *warning is set (static
 * text) when limits fall back to rlimits, to be shown once. */
struct sandbox_host {
    bool cgroup;             /* cgroups with memory, pids, cpu: delegated
                                cgroup v2, or the v1 controllers */
    bool cgroup_v1;          /* the v1 controllers (cgroup.h) */
    char cgroup_base[4096];  /* where job cgroups are created (v2) */
    char why[1024];          /* why no cgroups, when !cgroup */
};
const struct sandbox_host *sandbox_host_probe(void);

/* surplus-sandbox-init: $SURPLUS_SANDBOX_INIT (build trees), else the
 * installed one in pkglibexecdir. */
const char *sandbox_init_path(void);

/* Starts the job.  Returns 0 once the command has been executed, or a
 * negative errno with the reason in *e when the sandbox could not be set up
 * (the step is named).  A command that cannot be executed still returns 0:
 * the job ran and exits 127 or 126, as in a shell, with sb->exec_error
 * saying why. */
int sandbox_start(const struct sandbox_spec *spec, struct sandbox *sb,
                  struct err *e);

/* Sends `sig` to every process of the job (SIGTERM for the polite stop). */
int sandbox_signal(struct sandbox *sb, int sig);

/* Kills every process of the job at once. */
int sandbox_kill(struct sandbox *sb);

/* Reaps init: *status is the job's exit status as a shell shows it (0-255,
 * 128+N for signal N) and *ru the resources of every process reaped in the
 * job.  Blocks unless `sb->pidfd` polled readable. */
int sandbox_wait(struct sandbox *sb, int *status, struct rusage *ru,
                 uint64_t *peak_memory);

/* Kills anything left, reaps, removes the cgroup; accepts a zeroed one. */
void sandbox_free(struct sandbox *sb);

#endif
