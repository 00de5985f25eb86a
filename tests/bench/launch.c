/*
 * launch - the cost of one trivial job end to end through runner_run():
 * extract, sandbox, run the command, collect, record.  Prints the median,
 * the 90th percentile and the mean of the whole, then the median of each
 * stage; the timing half of tests/bench/launch.sh.
 *   launch CONFIG BUNDLE RUNS
 *   launch --spawn RUNS COMMAND...   (the median of posix_spawn + wait of
 *                                    COMMAND, for comparisons)
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "config.h"
#include "node.h"
#include "runner.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp);
    return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

extern char **environ;

static double ru_ms(int who)
{
    struct rusage ru;

    getrusage(who, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* Prints the median, the CPU time per run (this process and the commands)
 * and the runs per second of wall time. */
static int spawn_mode(long runs, char **cmd)
{
    double *t = calloc((size_t)runs, sizeof *t);
    double cpu0 = ru_ms(RUSAGE_SELF) + ru_ms(RUSAGE_CHILDREN);
    double wall0 = now_ms();

    for (long i = 0; i < runs; i++) {
        double t0 = now_ms();
        pid_t pid;
        int st;

        if (posix_spawnp(&pid, cmd[0], NULL, NULL, cmd, environ) != 0 ||
            waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
            WEXITSTATUS(st) != 0) {
            fprintf(stderr, "launch: %s failed\n", cmd[0]);
            return 70;
        }
        t[i] = now_ms() - t0;
    }
    printf("median_ms %.3f cpu_ms_per_run %.3f runs_per_s %.1f\n",
           pct(t, (size_t)runs, 0.5),
           (ru_ms(RUSAGE_SELF) + ru_ms(RUSAGE_CHILDREN) - cpu0) /
               (double)runs,
           (double)runs * 1e3 / (now_ms() - wall0));
    free(t);
    return 0;
}

static double tv_ms(const struct timeval *tv)
{
    return (double)tv->tv_sec * 1e3 + (double)tv->tv_usec / 1e3;
}

int main(int argc, char **argv)
{
    struct runner_opts o = {.tenant = "bench", .out_dir = "", .echo_fd = -1,
                            .cancel_fd = -1};
    struct config *cf = NULL;
    struct node *node = NULL;
    struct err e = {0};
    double *total, *stage[STAGE_COUNT], sum = 0;
    struct rusage ru0[2], ru1[2];
    long runs;

    if (argc > 3 && strcmp(argv[1], "--spawn") == 0 &&
        (runs = strtol(argv[2], NULL, 10)) > 0)
        return spawn_mode(runs, argv + 3);
    if (argc != 4 || (runs = strtol(argv[3], NULL, 10)) < 1) {
        fprintf(stderr, "usage: launch CONFIG BUNDLE RUNS\n");
        return 64;
    }
    if (config_load(argv[1], &cf, &e) < 0 || node_open(cf, &node, &e) < 0) {
        fprintf(stderr, "launch: %s\n", e.msg);
        return 78;
    }
    o.bundle = argv[2];
    getrusage(RUSAGE_SELF, &ru0[0]);
    getrusage(RUSAGE_CHILDREN, &ru0[1]);
    total = calloc((size_t)runs, sizeof *total);
    for (int s = 0; s < STAGE_COUNT; s++)
        stage[s] = calloc((size_t)runs, sizeof *stage[s]);
    for (long i = 0; i < runs; i++) {
        struct runner_result res;
        double t0 = now_ms();
        int r = runner_run(node, &o, &res, &e);

        total[i] = now_ms() - t0;
        if (r < 0 || res.exit_status != 0) {
            fprintf(stderr, "launch: run %ld: %s (exit %d)\n", i,
                    r < 0 ? e.msg : "the job failed", res.exit_status);
            return 70;
        }
        for (int s = 0; s < STAGE_COUNT; s++)
            stage[s][i] = (double)res.stage_ns[s] / 1e6;
        sum += total[i];
        runner_result_free(&res);
    }
    getrusage(RUSAGE_SELF, &ru1[0]);
    getrusage(RUSAGE_CHILDREN, &ru1[1]);
    printf("runs %ld\nmedian_ms %.3f\np90_ms %.3f\nmean_ms %.3f\nmin_ms %.3f\n",
           runs, pct(total, (size_t)runs, 0.5), pct(total, (size_t)runs, 0.9),
           sum / (double)runs, pct(total, (size_t)runs, 0.0));
    /* CPU time of the runner and of everything it reaped (the sandbox's
     * init and the job), per run: what bounds throughput on a busy node. */
    printf("cpu_ms_per_run %.3f (user %.3f, system %.3f)\n",
           (tv_ms(&ru1[0].ru_utime) - tv_ms(&ru0[0].ru_utime) +
            tv_ms(&ru1[1].ru_utime) - tv_ms(&ru0[1].ru_utime) +
            tv_ms(&ru1[0].ru_stime) - tv_ms(&ru0[0].ru_stime) +
            tv_ms(&ru1[1].ru_stime) - tv_ms(&ru0[1].ru_stime)) /
               (double)runs,
           (tv_ms(&ru1[0].ru_utime) - tv_ms(&ru0[0].ru_utime) +
            tv_ms(&ru1[1].ru_utime) - tv_ms(&ru0[1].ru_utime)) /
               (double)runs,
           (tv_ms(&ru1[0].ru_stime) - tv_ms(&ru0[0].ru_stime) +
            tv_ms(&ru1[1].ru_stime) - tv_ms(&ru0[1].ru_stime)) /
               (double)runs);
    for (int s = 0; s < STAGE_COUNT; s++)
        printf("stage %s %.3f\n", runner_stage_name(s),
               pct(stage[s], (size_t)runs, 0.5));
    for (int s = 0; s < STAGE_COUNT; s++)
        free(stage[s]);
    free(total);
    node_close(node);
    config_free(cf);
    return 0;
}
