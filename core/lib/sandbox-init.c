/*
 * surplus-sandbox-init - pid 1 of a job's pid namespace (see
 * sandbox-proto.h for how it is started).
 *
 * It starts the command in a session of its own, forwards SIGTERM and the
 * other polite signals to every process of the job, reaps whatever is
 * orphaned to it, and exits with the command's status as a shell reports
 * it (128+N for signal N).  Its exit makes the kernel kill everything left
 * in the namespace.  It is small and statically linked so that starting
 * it costs little.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox-proto.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1,
                                SIGUSR2};

static __attribute__((noreturn, format(printf, 3, 4))) void
fail(int stage, int err, const char *fmt, ...)
{
    struct sb_report rep = {.stage = stage, .err = err};
    size_t n;
    va_list ap;
    ssize_t w;

    va_start(ap, fmt);
    vsnprintf(rep.text, sizeof rep.text, fmt, ap);
    va_end(ap);
    n = strlen(rep.text);
    if (err != 0)
        snprintf(rep.text + n, sizeof rep.text - n, ": %s", strerror(err));
    w = write(SB_REPORT_FD, &rep, sizeof rep);
    (void)w;
    _exit(stage == SB_SETUP  ? SB_EXIT_SETUP
          : err == ENOENT    ? SB_EXIT_NOTFOUND
                             : SB_EXIT_NOEXEC);
}

/* execvpe with the job's PATH, in fixed buffers (this runs after vfork). */
static __attribute__((noreturn)) void run(char **argv, char **envp)
{
    const char *cmd = argv[0], *path = "/usr/bin:/bin";
    char buf[4096];
    int last = ENOENT;

    if (strchr(cmd, '/') != NULL) {
        execve(cmd, argv, envp);
        fail(SB_EXEC, errno, "cannot execute '%s'", cmd);
    }
    for (char **e = envp; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            path = *e + 5;
    for (const char *d = path;; d++) {
        const char *end = strchr(d, ':');
        size_t n = end ? (size_t)(end - d) : strlen(d);

        if (n + 1 + strlen(cmd) < sizeof buf) {
            if (n == 0)
                snprintf(buf, sizeof buf, "%s", cmd);
            else
                snprintf(buf, sizeof buf, "%.*s/%s", (int)n, d, cmd);
            execve(buf, argv, envp);
            if (errno != ENOENT && errno != ENOTDIR)
                last = errno;
        }
        if (end == NULL)
            break;
        d = end;
    }
    fail(SB_EXEC, last, "cannot execute '%s' (searched PATH %s)", cmd, path);
}

static void on_signal(int sig)
{
    (void)sig;
}

int main(int argc, char **argv, char **envp)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigset_t all, none;
    pid_t job;

    if (argc < 3 || strcmp(argv[1], "--") != 0) {
        fprintf(stderr, "surplus-sandbox-init: started by the runner only\n");
        return 64;
    }
    sigfillset(&all);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &all, NULL);
    /* pid 1 receives only the signals it has a handler for. */
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaction(forwarded[i], &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    /* The job runs as the same uid: it may signal, not trace, this one. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    job = vfork();
    if (job < 0)
        fail(SB_SETUP, errno, "fork the command");
    if (job == 0) {
        setsid();
        /* Everything but the report pipe closes when the command runs;
         * the pipe closing is how the runner learns that it did. */
        syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
        for (int sig = 1; sig < NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                signal(sig, SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        run(argv + 2, envp);
    }
    close(SB_REPORT_FD);
    close(0);
    close(1);
    close(2);
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si), st;
        pid_t pid;

        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
                if (sig == forwarded[i])
                    kill(-1, sig);
            continue;
        }
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
            if (pid == job)
                /* The command is over: whatever it left dies with us. */
                _exit(WIFSIGNALED(st) ? 128 + WTERMSIG(st)
                                      : WEXITSTATUS(st));
    }
}
