/*
 * holders.h - which processes hold a device node open.
 *
 * Before a device is scrubbed and handed to the next tenant, no process
 * may still have it open: a straggler of the last job (stuck in the
 * driver, say) keeps its context and its memory, and would share the
 * device with the next tenant.  A process holds a GPU exactly when it has
 * a descriptor on the GPU's node, so the check reads /proc/<pid>/fd.
 */
#ifndef SURPLUS_CUDA_HOLDERS_H
#define SURPLUS_CUDA_HOLDERS_H

#include <stddef.h>
#include <sys/types.h>

struct holder {
    size_t node; /* index into the nodes asked about */
    pid_t pid;
    uid_t uid;
    char exe[64]; /* base name of its executable, or "?" */
};

/* Processes that may hold a node without being a tenant's: in this
 * process's own pid namespace (a job runs in a pid namespace of its own,
 * so none of its processes qualifies) and either a child of this process
 * (a CUDA helper) or running an executable whose base name is listed in
 * `ignore` (monitoring daemons such as nvidia-persistenced). */
struct holders_ignore {
    const char *const *names;
    size_t n;
};

/*
 * Finds the processes with a descriptor open on any of the character
 * device nodes `nodes[0..n)` (paths such as "/dev/nvidia0"), other than
 * those `ig` lets off.  Fills up to `max` entries of `ret`, one per
 * process and node, and sets *ret_n to how many there are (possibly more
 * than max).  Processes this one may not inspect (other users', when not
 * root) are not seen.  Returns 0; -errno when a node cannot be looked at
 * or /proc cannot be read.
 */
int holders_scan(const char *const *nodes, size_t n,
                 const struct holders_ignore *ig, struct holder *ret,
                 size_t max, size_t *ret_n);

#endif /* SURPLUS_CUDA_HOLDERS_H */
