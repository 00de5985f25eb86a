/*
 * cgroup.h - per-job cgroups on a cgroup v1 host (sandbox.c's second
 * backend, beside the delegated cgroup v2 one).
 *
 * A job gets one cgroup in each of the memory, pids, cpu, cpuacct and
 * cpuset hierarchies, below a "surplus" cgroup under the one this process
 * is in: memory.limit_in_bytes (and memory.memsw.limit_in_bytes, no swap,
 * where swap is accounted), pids.max, cpu.cfs_quota_us, and cpuset.cpus
 * for the job's CPUs, which the job cannot widen (sched_setaffinity is
 * masked by its cpuset).
 */
#ifndef SURPLUS_CGROUP_H
#define SURPLUS_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum { CG1_MEMORY, CG1_PIDS, CG1_CPU, CG1_CPUACCT, CG1_CPUSET, CG1_N };

struct cg1_limits {
    uint64_t memory;      /* bytes; 0: none */
    uint64_t pids;        /* 0: none */
    uint32_t cpus;        /* 0: none */
    unsigned cpu_offset;  /* the job's first CPU */
};

struct cg1_job {
    int dir[CG1_N];       /* the job's cgroup in each hierarchy, or -1 */
    int procs[CG1_N];     /* its cgroup.procs, open for the child to join */
    char *path[CG1_N];    /* removed by cg1_free */
};

/* Whether the v1 controllers are mounted and writable here; when not,
 * the reason, for the host's warning. */
bool cg1_probe(char *why, size_t len);

/* Creates and configures the job's cgroups (cg1_probe said yes). */
int cg1_create(const char *job_id, const struct cg1_limits *lim,
               struct cg1_job *cg, struct err *e);

/* CPU time in ns, peak memory in bytes, and whether the memory limit's
 * OOM killer ended a process of the job; 0 or false where unknown. */
void cg1_usage(const struct cg1_job *cg, uint64_t *cpu_ns, uint64_t *peak,
               bool *oom);

/* Closes and removes the job's cgroups, once its processes are gone;
 * accepts a zeroed one. */
void cg1_free(struct cg1_job *cg);

/* A number from a cgroup file under the directory `dfd`: the whole file,
 * or the value after `key` on its "key value" line; 0 when the file (or
 * the key) is missing or dfd < 0.  For cgroup v1 and v2 files alike. */
uint64_t cg_read_u64(int dfd, const char *file, const char *key);

#endif
