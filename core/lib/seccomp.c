/*
 * seccomp.c - the jobs' system call filter (see seccomp.h).
 *
 * A classic BPF program over struct seccomp_data: check the ABI, load the
 * call number, then a binary search over the calls with a rule (denied,
 * or decided by their arguments: clone, unshare, personality).
 */
#include "seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define SB_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SB_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* Calls numbered from 403 on are numbered alike on every architecture;
 * older headers may lack them. */
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#define __NR_io_uring_enter 426
#define __NR_io_uring_register 427
#endif
#ifndef __NR_open_tree
#define __NR_open_tree 428
#define __NR_move_mount 429
#define __NR_fsopen 430
#define __NR_fsconfig 431
#define __NR_fsmount 432
#define __NR_fspick 433
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#ifndef __NR_open_tree_attr
#define __NR_open_tree_attr 467
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

/* Creating any namespace: a user namespace gives its creator every
 * capability over the namespaces it then creates, the usual way from an
 * unprivileged process to a kernel bug.  (CLONE_NEWTIME shares its bit with
 * clone's exit signal, so clone is checked without it.) */
#define SB_NS_FLAGS                                                         \
    (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |            \
     CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP)

/* The low 32 bits of argument `i`: the flags checked all live there. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SB_ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#else
#define SB_ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#endif

#define SB_DENY (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))

struct denied {
    int nr;
    unsigned allow; /* the SB_ALLOW_ bit that lifts it, or 0 */
};

static const struct denied denied[] = {
    /* Keyrings are kept per uid and per user namespace, and possessed
     * through the session keyring: secrets of one job for the next. */
    {__NR_add_key, 0},
    {__NR_request_key, 0},
    {__NR_keyctl, 0},
    /* A large, often-patched attack surface few batch jobs use. */
    {__NR_io_uring_setup, SB_ALLOW_IO_URING},
    {__NR_io_uring_enter, SB_ALLOW_IO_URING},
    {__NR_io_uring_register, SB_ALLOW_IO_URING},
    {__NR_perf_event_open, SB_ALLOW_PERF_EVENT_OPEN},
    {__NR_bpf, 0},
    {__NR_userfaultfd, 0},
    /* The kernel itself. */
    {__NR_kexec_load, 0},
#ifdef __NR_kexec_file_load
    {__NR_kexec_file_load, 0},
#endif
    {__NR_init_module, 0},
    {__NR_finit_module, 0},
    {__NR_delete_module, 0},
    {__NR_reboot, 0},
    {__NR_swapon, 0},
    {__NR_swapoff, 0},
    {__NR_acct, 0},
    {__NR_syslog, 0},
    /* The file system view the sandbox built. */
    {__NR_mount, 0},
    {__NR_umount2, 0},
#ifdef __NR_umount
    {__NR_umount, 0},
#endif
    {__NR_pivot_root, 0},
    {__NR_open_tree, 0},
    {__NR_open_tree_attr, 0},
    {__NR_move_mount, 0},
    {__NR_fsopen, 0},
    {__NR_fsconfig, 0},
    {__NR_fsmount, 0},
    {__NR_fspick, 0},
    {__NR_mount_setattr, 0},
    {__NR_setns, 0},
    /* Opening a file by handle skips every directory permission. */
    {__NR_open_by_handle_at, 0},
    /* The host's clock. */
    {__NR_settimeofday, 0},
    {__NR_clock_settime, 0},
    {__NR_adjtimex, 0},
    {__NR_clock_adjtime, 0},
#ifdef __NR_stime
    {__NR_stime, 0},
#endif
    /* Hardware and obsolete interfaces. */
#ifdef __NR_iopl
    {__NR_iopl, 0},
#endif
#ifdef __NR_ioperm
    {__NR_ioperm, 0},
#endif
#ifdef __NR_uselib
    {__NR_uselib, 0},
#endif
#ifdef __NR__sysctl
    {__NR__sysctl, 0},
#endif
#ifdef __NR_lookup_dcookie
    {__NR_lookup_dcookie, 0},
#endif
    {__NR_quotactl, 0},
    {__NR_vhangup, 0},
};

static const struct {
    const char *name;
    unsigned bit;
} allow_names[] = {
    {"io_uring", SB_ALLOW_IO_URING},
    {"perf_event_open", SB_ALLOW_PERF_EVENT_OPEN},
};

unsigned sandbox_seccomp_allow_bit(const char *name)
{
    for (size_t i = 0; i < sizeof allow_names / sizeof allow_names[0]; i++)
        if (strcmp(allow_names[i].name, name) == 0)
            return allow_names[i].bit;
    return 0;
}

const char *sandbox_seccomp_allow_names(void)
{
    return "\"io_uring\" or \"perf_event_open\"";
}

/* What the filter does with one call number. */
enum rule_kind { RULE_DENY, RULE_ENOSYS, RULE_FLAGS, RULE_PERSONALITY };

struct rule {
    uint32_t nr;
    enum rule_kind kind;
    uint32_t mask; /* RULE_FLAGS: the flags of argument 0 denied */
};

#define SB_MAX_RULES 80

struct prog {
    struct sandbox_seccomp *f;
    const struct rule *r;
    int bad;
};

static void emit(struct prog *p, unsigned short code, size_t jt, size_t jf,
                 uint32_t k)
{
    if (p->f->len >= SB_SECCOMP_MAX || jt > 255 || jf > 255) {
        p->bad = 1;
        return;
    }
    p->f->insn[p->f->len++] =
        (struct sock_filter)BPF_JUMP(code, k, (uint8_t)jt, (uint8_t)jf);
}

static void ret(struct prog *p, uint32_t action)
{
    emit(p, BPF_RET | BPF_K, 0, 0, action);
}

/* Instructions of a rule's action, once its number matched. */
static size_t action_len(const struct rule *r)
{
    return r->kind == RULE_FLAGS ? 4 : r->kind == RULE_PERSONALITY ? 6 : 1;
}

static void action(struct prog *p, const struct rule *r)
{
    switch (r->kind) {
    case RULE_DENY:
        ret(p, SB_DENY);
        break;
    case RULE_ENOSYS:
        ret(p, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
        break;
    case RULE_FLAGS:
        emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, SB_ARG_LO(0));
        emit(p, BPF_JMP | BPF_JSET | BPF_K, 0, 1, r->mask);
        ret(p, SB_DENY);
        ret(p, SECCOMP_RET_ALLOW);
        break;
    case RULE_PERSONALITY:
        /* The default, a query, and turning address space randomisation
         * off (gdb does, for the programs it starts). */
        emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, SB_ARG_LO(0));
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, 3, 0, PER_LINUX);
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, 2, 0,
             PER_LINUX | ADDR_NO_RANDOMIZE);
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 0xffffffffu);
        ret(p, SB_DENY);
        ret(p, SECCOMP_RET_ALLOW);
        break;
    }
}

/* A binary search over the sorted rules [lo, hi), the call number in the
 * accumulator, down to a few compares per leaf: a call passes a handful
 * of instructions, and the kernel's pass over every call number when it
 * installs the filter (to find the ones it can allow without running it)
 * stays short. */
#define LEAF 4

static size_t tree_len(const struct rule *r, size_t lo, size_t hi)
{
    size_t n = 1; /* the leaf's final allow */

    if (hi - lo > LEAF) {
        size_t mid = lo + (hi - lo) / 2;

        return 1 + tree_len(r, lo, mid) + tree_len(r, mid, hi);
    }
    for (size_t i = lo; i < hi; i++)
        n += 1 + action_len(&r[i]);
    return n;
}

static void tree(struct prog *p, size_t lo, size_t hi)
{
    if (hi - lo > LEAF) {
        size_t mid = lo + (hi - lo) / 2;

        emit(p, BPF_JMP | BPF_JGE | BPF_K, tree_len(p->r, lo, mid), 0,
             p->r[mid].nr);
        tree(p, lo, mid);
        tree(p, mid, hi);
        return;
    }
    for (size_t i = lo; i < hi; i++) {
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, action_len(&p->r[i]),
             p->r[i].nr);
        action(p, &p->r[i]);
    }
    ret(p, SECCOMP_RET_ALLOW);
}

static int rule_cmp(const void *a, const void *b)
{
    const struct rule *x = a, *y = b;

    return x->nr < y->nr ? -1 : x->nr > y->nr;
}

int sandbox_seccomp_build(unsigned allow, struct sandbox_seccomp *ret_f,
                          struct err *e)
{
#ifdef SB_AUDIT_ARCH
    struct rule rules[SB_MAX_RULES];
    struct prog p = {.f = ret_f, .r = rules};
    size_t n = 0;

    memset(ret_f, 0, sizeof *ret_f);
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++)
        if (!(denied[i].allow & allow) && n < SB_MAX_RULES)
            rules[n++] = (struct rule){(uint32_t)denied[i].nr, RULE_DENY, 0};
    if (n + 4 > SB_MAX_RULES)
        return err_set(e, -E2BIG, "sandbox: too many system call rules");
    /* clone3 passes its flags in memory, out of the filter's sight; C
     * libraries take ENOSYS to mean an older kernel and use clone. */
    rules[n++] = (struct rule){__NR_clone3, RULE_ENOSYS, 0};
    rules[n++] = (struct rule){__NR_clone, RULE_FLAGS, SB_NS_FLAGS};
    rules[n++] = (struct rule){__NR_unshare, RULE_FLAGS,
                               SB_NS_FLAGS | CLONE_NEWTIME};
    rules[n++] = (struct rule){__NR_personality, RULE_PERSONALITY, 0};
    qsort(rules, n, sizeof rules[0], rule_cmp);

    /* Another ABI has other call numbers: nothing below would mean what
     * it says.  Killing is the only answer a program cannot loop on. */
    emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0,
         offsetof(struct seccomp_data, arch));
    emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, SB_AUDIT_ARCH);
    ret(&p, SECCOMP_RET_KILL_PROCESS);
    emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0,
         offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    /* x32 shares the x86-64 audit arch and sets a bit in the number. */
    emit(&p, BPF_JMP | BPF_JGE | BPF_K, 0, 1, __X32_SYSCALL_BIT);
    ret(&p, SECCOMP_RET_KILL_PROCESS);
#endif
    tree(&p, 0, n);
    if (p.bad)
        return err_set(e, -E2BIG, "sandbox: the system call filter does not "
                                  "fit in %d instructions",
                       SB_SECCOMP_MAX);
    return 0;
#else
    (void)allow;
    memset(ret_f, 0, sizeof *ret_f);
    return err_set(e, -EOPNOTSUPP,
                   "sandbox: no system call filter for this architecture "
                   "(sandbox.seccomp = \"none\" runs jobs without one)");
#endif
}

int sandbox_seccomp_install(const struct sandbox_seccomp *f)
{
    struct sock_fprog prog = {.len = f->len,
                              .filter = (struct sock_filter *)f->insn};

    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0)
        return 0;
    /* Kernels before 3.17 have only the prctl. */
    if (errno == ENOSYS &&
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0)
        return 0;
    return -errno;
}
