/*
 * seccomp.h - the system call filter every job runs under (see
 * surplus(1), SANDBOX).
 *
 * The policy is a deny list over the native ABI: the calls that reach
 * kernel state shared with other tenants or the host (keyrings, mounts,
 * namespaces, modules, BPF, the clock, ...) fail with EPERM, clone3 with
 * ENOSYS (so that the C library falls back to clone, whose flags the filter
 * can check), and a process using another ABI (i386 or x32 on x86-64,
 * AArch32 on AArch64) is killed.  Everything else is allowed.
 *
 * The parent builds the program (sandbox_seccomp_build); the sandbox's
 * child installs it last before it executes the job's init
 * (sandbox_seccomp_install), after no_new_privs.
 */
#ifndef SURPLUS_SECCOMP_H
#define SURPLUS_SECCOMP_H

#include <linux/filter.h>

#include "err.h"

/* Groups of calls the operator may give back (sandbox.seccomp_allow). */
enum {
    SB_ALLOW_IO_URING = 1u << 0,        /* "io_uring" */
    SB_ALLOW_PERF_EVENT_OPEN = 1u << 1, /* "perf_event_open" */
};

#define SB_SECCOMP_MAX 192

struct sandbox_seccomp {
    struct sock_filter insn[SB_SECCOMP_MAX];
    unsigned short len;
};

/* The SB_ALLOW_ bit named `name`, or 0 for an unknown name. */
unsigned sandbox_seccomp_allow_bit(const char *name);

/* The names sandbox_seccomp_allow_bit() knows, for messages. */
const char *sandbox_seccomp_allow_names(void);

/* Builds the default policy less the groups in `allow`.  Fails with
 * -EOPNOTSUPP on an architecture the policy does not know. */
int sandbox_seccomp_build(unsigned allow, struct sandbox_seccomp *ret,
                          struct err *e);

/* Installs the filter on the calling thread; returns 0 or a negative errno.
 * A system call only: safe in the sandbox's vfork-like child. */
int sandbox_seccomp_install(const struct sandbox_seccomp *f);

#endif
