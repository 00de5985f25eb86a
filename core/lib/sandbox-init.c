/*
 * surplus-sandbox-init - pid 1 of a job's pid namespace (see
 * sandbox-proto.h for how it is started).
 *
 * It starts the command in a session of its own, forwards SIGTERM and the
 * other polite signals to every process of the job, reaps whatever is
 * orphaned to it, and exits with the command's status as a shell reports
 * it (128+N for signal N).  Its exit makes the kernel kill everything left
 * in the namespace.
 *
 * It is executed once per job, so what its start costs is paid by every
 * job.  On x86-64 and AArch64 it is built without the C library
 * (SB_FREESTANDING): a static C library's start-up (CPU feature probing,
 * TLS, locale and stdio set-up, relocations) costs more than everything
 * this program does, and is dearer still in virtual machines, where each
 * CPUID instruction the probing executes traps to the hypervisor.  So it
 * talks to the kernel directly, through the few system calls below, and
 * the same code builds against the C library's syscall() elsewhere.
 */
#include <asm/unistd.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "sandbox-proto.h"

/* errno values the code looks at (the same on every Linux ABI). */
#define SB_ENOENT 2
#define SB_EINTR 4
#define SB_ENOTDIR 20
#define SB_EAGAIN 11

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif

/* ---- the system interface: sys() returns the result or -errno --------- */

#if defined(SB_FREESTANDING) && defined(__x86_64__)
static long sys(long n, long a, long b, long c, long d)
{
    register long r10 __asm__("r10") = d;
    long ret;

    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(SB_FREESTANDING) && defined(__aarch64__)
static long sys(long n, long a, long b, long c, long d)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;

    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3)
                     : "memory", "cc");
    return x0;
}
#elif defined(SB_FREESTANDING)
#error "SB_FREESTANDING is for x86-64 and AArch64 only"
#else
#include <errno.h>
#include <unistd.h>
static long sys(long n, long a, long b, long c, long d)
{
    long r = syscall(n, a, b, c, d);

    return r < 0 ? -errno : r;
}
#endif

static __attribute__((noreturn)) void sys_exit(int status)
{
    for (;;)
        sys(__NR_exit_group, status, 0, 0, 0);
}

static long sys_write(int fd, const void *buf, size_t len)
{
    return sys(__NR_write, fd, (long)buf, (long)len, 0);
}

/* The kernel's struct sigaction (rt_sigaction) and its 64-bit mask. */
struct ksigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};
#define KSIGSET_SIZE 8
#define SB_SA_RESTORER 0x04000000UL

#if defined(SB_FREESTANDING) && defined(__x86_64__)
/* x86-64 signal frames return through the restorer the process names. */
void sb_restore_rt(void);
__asm__(".text\n"
        ".type sb_restore_rt,@function\n"
        "sb_restore_rt:\n"
        "  mov $15, %rax\n" /* rt_sigreturn */
        "  syscall\n"
        "  hlt\n");
#endif

static long sys_sigaction(int sig, void (*handler)(int))
{
    struct ksigaction sa = {.handler = handler};

#if defined(SB_FREESTANDING) && defined(__x86_64__)
    sa.flags = SB_SA_RESTORER;
    sa.restorer = sb_restore_rt;
#elif !defined(SB_FREESTANDING)
    /* Through the C library the handler is never reached (every signal
     * stays blocked and is taken by sigtimedwait), but x86-64 needs a
     * restorer for any handler: libc's own sigaction() supplies it. */
    if (handler != SIG_DFL) {
        struct sigaction lsa;

        lsa.sa_handler = handler;
        lsa.sa_flags = 0;
        sigemptyset(&lsa.sa_mask);
        return sigaction(sig, &lsa, NULL) < 0 ? -errno : 0;
    }
#endif
    return sys(__NR_rt_sigaction, sig, (long)&sa, 0, KSIGSET_SIZE);
}

static long sys_sigmask(uint64_t mask)
{
    return sys(__NR_rt_sigprocmask, SIG_SETMASK, (long)&mask, 0,
               KSIGSET_SIZE);
}

static long sys_fork(void)
{
    /* clone(SIGCHLD): fork on every ABI (AArch64 has no fork call). */
    return sys(__NR_clone, SIGCHLD, 0, 0, 0);
}

/* ---- the C run-time this program needs, when it has no C library ------ */

#ifdef SB_FREESTANDING
/* Compilers may emit calls to these for aggregate copies and clears.  The
 * volatile accesses keep them from being turned back into such calls. */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);

void *memset(void *dst, int c, size_t n)
{
    volatile unsigned char *d = dst;

    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    volatile unsigned char *d = dst;
    const unsigned char *s = src;

    while (n--)
        *d++ = *s++;
    return dst;
}

/* Stack protection, for builds whose CFLAGS ask for it: x86-64 reads the
 * canary at %fs:0x28 (a thread control block set up below), AArch64 from
 * __stack_chk_guard.  Both are seeded from the kernel's AT_RANDOM bytes. */
uintptr_t __stack_chk_guard;
void __stack_chk_fail(void);
void __stack_chk_fail(void)
{
    sys_exit(SB_EXIT_SETUP);
}

#ifdef __x86_64__
/* [0] points to itself, as the ABI's thread pointer does; [5] is the
 * canary. */
uintptr_t sb_tcb[8] __attribute__((aligned(64)));
#endif

int sb_start(uintptr_t *sp);
static int init_main(int argc, char **argv, char **envp);

/* Entered from _start with the initial stack: argc, argv..., NULL,
 * envp..., NULL, auxv pairs. */
int sb_start(uintptr_t *sp)
{
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    uintptr_t *aux = (uintptr_t *)envp;

    while (*aux)
        aux++;
    for (aux++; aux[0] != 0; aux += 2)
        if (aux[0] == 25 /* AT_RANDOM */) {
            const unsigned char *r = (const unsigned char *)aux[1];
            uintptr_t v = 0;

            for (size_t i = 0; i < sizeof v; i++)
                v = (v << 8) | r[i];
            /* A zero byte first stops string overruns from copying it. */
            v &= ~(uintptr_t)0xff;
            __stack_chk_guard = v;
#ifdef __x86_64__
            sb_tcb[5] = v;
#endif
        }
    sys_exit(init_main(argc, argv, envp));
}

#ifdef __x86_64__
__asm__(".text\n"
        ".global _start\n"
        ".type _start,@function\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  lea sb_tcb(%rip), %rsi\n"
        "  mov %rsi, (%rsi)\n"
        "  mov $0x1002, %edi\n" /* ARCH_SET_FS */
        "  mov $158, %eax\n"    /* arch_prctl */
        "  syscall\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call sb_start\n"
        "  hlt\n");
#else
__asm__(".text\n"
        ".global _start\n"
        ".type _start,%function\n"
        "_start:\n"
        "  mov x29, #0\n"
        "  mov x30, #0\n"
        "  mov x0, sp\n"
        "  bl sb_start\n"
        "  brk #0\n");
#endif
#endif /* SB_FREESTANDING */

/* ---- init -------------------------------------------------------------- */

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1,
                                SIGUSR2};

static size_t slen(const char *s)
{
    size_t n = 0;

    while (s[n])
        n++;
    return n;
}

/* Appends at most n bytes of s to buf (of size SB_ERR_TEXT), cutting. */
static void put(char *buf, const char *s, size_t n)
{
    size_t have = slen(buf);

    while (n-- && *s && have + 1 < SB_ERR_TEXT)
        buf[have++] = *s++;
    buf[have] = '\0';
}

static void puts3(char *buf, const char *a, const char *b, const char *c)
{
    put(buf, a, (size_t)-1);
    put(buf, b, (size_t)-1);
    put(buf, c, (size_t)-1);
}

/* The report the runner reads (it adds the description of err). */
static __attribute__((noreturn)) void fail(int stage, int err,
                                           const char *text)
{
    struct sb_report rep;

    for (size_t i = 0; i < sizeof rep; i++)
        ((volatile char *)&rep)[i] = 0;
    rep.stage = stage;
    rep.err = err;
    put(rep.text, text, (size_t)-1);
    sys_write(SB_REPORT_FD, &rep, sizeof rep);
    sys_exit(stage == SB_SETUP       ? SB_EXIT_SETUP
             : err == SB_ENOENT      ? SB_EXIT_NOTFOUND
                                     : SB_EXIT_NOEXEC);
}

/* execvpe with the job's PATH, in fixed buffers. */
static __attribute__((noreturn)) void run(char **argv, char **envp)
{
    const char *cmd = argv[0], *path = "/usr/bin:/bin";
    char buf[4096], text[SB_ERR_TEXT] = "";
    size_t clen = slen(cmd);
    long last = -SB_ENOENT, r;

    for (const char *c = cmd; *c; c++)
        if (*c == '/') {
            r = sys(__NR_execve, (long)cmd, (long)argv, (long)envp, 0);
            puts3(text, "cannot execute '", cmd, "'");
            fail(SB_EXEC, (int)-r, text);
        }
    for (char **e = envp; *e; e++)
        if ((*e)[0] == 'P' && (*e)[1] == 'A' && (*e)[2] == 'T' &&
            (*e)[3] == 'H' && (*e)[4] == '=')
            path = *e + 5;
    for (const char *d = path;; d++) {
        size_t n = 0;

        while (d[n] && d[n] != ':')
            n++;
        if (n + 1 + clen < sizeof buf) {
            size_t k = 0;

            for (size_t i = 0; i < n; i++)
                buf[k++] = d[i];
            if (n > 0)
                buf[k++] = '/';
            for (size_t i = 0; i <= clen; i++)
                buf[k++] = cmd[i];
            r = sys(__NR_execve, (long)buf, (long)argv, (long)envp, 0);
            if (r != -SB_ENOENT && r != -SB_ENOTDIR)
                last = r;
        }
        if (d[n] == '\0')
            break;
        d += n;
    }
    puts3(text, "cannot execute '", cmd, "' (searched PATH ");
    puts3(text, path, ")", "");
    fail(SB_EXEC, (int)-last, text);
}

static void on_signal(int sig)
{
    (void)sig;
}

static uint64_t bit(int sig)
{
    return UINT64_C(1) << (sig - 1);
}

#ifdef SB_FREESTANDING
static int init_main(int argc, char **argv, char **envp)
#else
int main(int argc, char **argv, char **envp)
#endif
{
    static const char usage[] =
        "surplus-sandbox-init: started by the runner only, as pid 1 of a "
        "job's pid namespace\n";
    /* Every signal but SIGKILL and SIGSTOP, which cannot be blocked. */
    const uint64_t all = ~(bit(SIGKILL) | bit(SIGSTOP));
    long job;

    /* Only as pid 1 of its own namespace: anywhere else, forwarding a
     * signal to "every process" (kill -1) would reach the whole host. */
    if (argc < 3 || argv[1][0] != '-' || argv[1][1] != '-' ||
        argv[1][2] != '\0' || sys(__NR_getpid, 0, 0, 0, 0) != 1) {
        sys_write(2, usage, sizeof usage - 1);
        return 64;
    }
    sys_sigmask(all);
    /* pid 1 receives only the signals it has a handler for. */
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sys_sigaction(forwarded[i], on_signal);
    sys_sigaction(SIGCHLD, on_signal);
    /* The job runs as the same uid: it may signal, not trace, this one. */
    sys(__NR_prctl, PR_SET_DUMPABLE, 0, 0, 0);

    job = sys_fork();
    if (job < 0)
        fail(SB_SETUP, (int)-job, "fork the command");
    if (job == 0) {
        sys(__NR_setsid, 0, 0, 0, 0);
        /* Everything but the report pipe closes when the command runs;
         * the pipe closing is how the runner learns that it did. */
        sys(__NR_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC, 0);
        /* Handlers would survive until execve; a signal arriving in
         * between must act as it will on the command. */
        for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
            sys_sigaction(forwarded[i], SIG_DFL);
        sys_sigaction(SIGCHLD, SIG_DFL);
        sys_sigmask(0);
        run(argv + 2, envp);
    }
    sys(__NR_close, SB_REPORT_FD, 0, 0, 0);
    sys(__NR_close, 0, 0, 0, 0);
    sys(__NR_close, 1, 0, 0, 0);
    sys(__NR_close, 2, 0, 0, 0);
    for (;;) {
        unsigned char info[128]; /* siginfo_t; only the number is used */
        uint64_t set = all;
        long sig = sys(__NR_rt_sigtimedwait, (long)&set, (long)info, 0,
                       KSIGSET_SIZE);
        int st;
        long pid;

        if (sig == -SB_EINTR || sig == -SB_EAGAIN || sig < 0)
            continue;
        if (sig != SIGCHLD) {
            for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
                if (sig == forwarded[i])
                    sys(__NR_kill, -1, sig, 0, 0);
            continue;
        }
        while ((pid = sys(__NR_wait4, -1, (long)&st, WNOHANG, 0)) > 0)
            if (pid == job)
                /* The command is over: whatever it left dies with us. */
                sys_exit(WIFSIGNALED(st) ? 128 + WTERMSIG(st)
                                         : WEXITSTATUS(st));
    }
}
