/*
 * surplusd [-c FILE] [--foreground] [--drain-timeout DURATION]
 *
 * The node daemon: loads the configuration and plugins, inventories the
 * devices, serves the API on api.socket (and api.listen with TLS) and runs
 * jobs.  SIGTERM or SIGINT drain it (no new jobs; running ones get the
 * drain timeout, then are stopped and requeued); SIGHUP reloads tenants
 * and limits.  Logs go to stderr, one line each, with the syslog priority
 * as a "<N>" prefix when stderr is the journal.  See surplusd(8).
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "log.h"
#include "node.h"
#include "runner.h"
#include "service.h"
#include "units.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage: surplusd [-c FILE] [--foreground] "
               "[--drain-timeout DURATION] [--check-config]\n");
}

/* The soft open-file limit up to the hard one: the API's connections and
 * the runner's files share it (api_connection_budget keeps the API to a
 * quarter), and the usual soft limit of 1024 is small for both. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_msg(SURPLUS_LOG_WARNING, "cannot raise the open-file limit "
                                         "to %llu: %s",
                    (unsigned long long)rl.rlim_max, strerror(errno));
    }
}

/* Without --foreground: a child serves; the parent exits 0 once the
 * socket is ready, or with the child's status if it fails first. */
static int detach(int *ready_fd)
{
    int p[2];
    pid_t pid;
    char c;

    if (pipe(p) < 0)
        return -errno;
    if ((pid = fork()) < 0)
        return -errno;
    if (pid > 0) {
        int st;

        close(p[1]);
        if (read(p[0], &c, 1) == 1)
            _exit(0);
        /* The child closed the pipe without saying it is ready: it
         * failed, and its status (78 for a configuration error) is ours. */
        if (waitpid(pid, &st, 0) == pid && WIFEXITED(st))
            _exit(WEXITSTATUS(st));
        _exit(70);
    }
    close(p[0]);
    setsid();
    *ready_fd = p[1];
    return 0;
}

/* --check-config: the file as a start (or SIGHUP) would load it, and its
 * plugins loaded and started against scratch paths; no socket, no state.
 * Needs no root (the unit's ExecReload, an operator before a restart). */
static int check_config(const char *path)
{
    struct config *cf = NULL;
    struct err e = {0};
    size_t n_tokens = 0;

    if (config_load(path, &cf, &e) < 0 || node_check(cf, &e) < 0) {
        fprintf(stderr, "surplusd: %s\n", e.msg);
        config_free(cf);
        return e.code == -ENOMEM ? 70 : 78;
    }
    for (size_t i = 0; i < cf->n_tenants; i++)
        n_tokens += cf->tenants[i].token_sha256 != NULL;
    printf("%s: configuration OK: storage/%s, accounting/%s, %zu "
           "accelerator plugin(s), %zu tenant(s) (%zu with a token), "
           "socket %s%s%s\n",
           cf->path ? cf->path : "(built-in defaults)", cf->storage.plugin,
           cf->accounting.plugin, cf->n_accelerators, cf->n_tenants,
           n_tokens, cf->api.socket, cf->api.listen[0] ? ", https://" : "",
           cf->api.listen);
    config_free(cf);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"foreground", no_argument, NULL, 'f'},
        {"drain-timeout", required_argument, NULL, 'd'},
        {"check-config", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *path = NULL;
    bool foreground = false, check = false;
    uint64_t drain_ms = 30000;
    struct config *cf = NULL;
    struct service *s = NULL;
    struct api *a = NULL;
    struct err e = {0};
    sigset_t set;
    int opt, ready = -1, rc = 0;

    log_setup("surplusd", SURPLUS_LOG_INFO);
    /* One thread per running job: without a bound, glibc gives threads
     * arenas of their own (up to 8 per CPU), each keeping freed memory
     * resident.  Two arenas keep the daemon small; job threads spend their
     * time waiting on the job, not in malloc. */
    mallopt(M_ARENA_MAX, 2);
    while ((opt = getopt_long(argc, argv, "c:fh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'f':
            foreground = true;
            break;
        case 'd':
            if (units_parse_duration_ms(optarg, &drain_ms) < 0) {
                fprintf(stderr, "surplusd: --drain-timeout: '%s' is not a "
                                "duration\n",
                        optarg);
                return 64;
            }
            break;
        case 'k':
            check = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 64;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 64;
    }
    if (check)
        return check_config(path);
    if (geteuid() != 0) {
        log_msg(SURPLUS_LOG_ERR, "needs root: each job gets an "
                                 "unprivileged uid and namespaces of its own");
        return 77;
    }
    if (config_load(path, &cf, &e) < 0) {
        log_msg(SURPLUS_LOG_ERR, "%s", e.msg);
        return 78;
    }
    log_setup("surplusd", cf->log_level);
    if (!foreground && detach(&ready) < 0) {
        log_msg(SURPLUS_LOG_ERR, "cannot detach: %s", strerror(errno));
        return 70;
    }
    /* Signals are taken by this thread only; every other thread (HTTP,
     * scheduler, jobs) inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    umask(022);
    raise_nofile();

    if (service_open(cf, &s, &e) < 0 || service_start(s, &e) < 0 ||
        api_start(s, cf, &a, &e) < 0) {
        log_msg(SURPLUS_LOG_ERR, "%s", e.msg);
        rc = e.code == -ENOMEM ? 70 : 78;
        goto out;
    }
    log_msg(SURPLUS_LOG_INFO, "serving on %s%s%s (at most %u connections)",
            cf->api.socket, cf->api.listen[0] ? " and https://" : "",
            cf->api.listen, api_connection_budget(cf));
    {
        char lim[1600];

        runner_limits_describe(cf, lim, sizeof lim);
        log_msg(SURPLUS_LOG_INFO, "%s", lim);
    }
    if (ready >= 0) {
        ssize_t w = write(ready, "1", 1);
        (void)w;
        close(ready);
        ready = -1;
    }
    for (;;) {
        int sig;

        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            struct config *fresh = NULL;
            struct err re = {0};

            if (config_load(path, &fresh, &re) < 0) {
                log_msg(SURPLUS_LOG_ERR, "reload refused: %s", re.msg);
                continue;
            }
            /* Tenants and limits only; the old configuration stays
             * alive, since plugins and paths still use it. */
            if (service_reload(s, fresh, &re) < 0)
                log_msg(SURPLUS_LOG_ERR, "reload: %s", re.msg);
            config_free(fresh);
            continue;
        }
        log_msg(SURPLUS_LOG_INFO, "%s: draining",
                sig == SIGTERM ? "SIGTERM" : "SIGINT");
        /* The API keeps serving while running jobs finish: submissions
         * and /healthz answer 503 (draining), reads still work.  The
         * listeners go only once nothing runs any more. */
        service_drain(s, drain_ms);
        api_quiesce(a);
        break;
    }
out:
    api_stop(a);
    service_close(s);
    config_free(cf);
    log_msg(SURPLUS_LOG_INFO, "stopped");
    return rc;
}
