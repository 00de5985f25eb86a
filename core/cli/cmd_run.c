/*
 * surplus run BUNDLE [-o DIR] [--id ID] [--no-wait]
 *
 * One job, here and now, without a daemon: the job's output is shown as
 * it runs (on stderr with --json, so stdout stays one JSON document), the
 * outputs and job.log land in DIR (default ./<name>-<id>/), and the exit
 * status is the job's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cli.h"
#include "node.h"
#include "runner.h"
#include "sandbox.h"
#include "units.h"

/* In state_dir: the host's jobs were told that limits are best-effort. */
#define NO_CGROUP_MARKER "no-cgroup-warned"

static int cancel_fd = -1;

static void on_interrupt(int sig)
{
    uint64_t one = 1;
    ssize_t n;

    (void)sig;
    n = write(cancel_fd, &one, sizeof one);
    (void)n;
}

static void on_note(void *arg, const char *fmt, ...)
{
    va_list ap;

    (void)arg;
    fputs("surplus: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Exit codes of surplus(1) for a job that could not run. */
static int exit_code(int r, enum runner_stage stage)
{
    switch (r) {
    case -ENODEV:
    case -EBUSY:
        return EXIT_NO_DEVICE;
    case -EPERM:
        return EXIT_NOT_PERMITTED;
    case -ECANCELED:
        return 128 + SIGINT;
    }
    if (stage == STAGE_EXTRACT && r != -ENOMEM && r != -EIO &&
        r != -ENOTSUP && r != -ENOSPC && r != -EACCES && r != -EROFS &&
        r != -EDQUOT && r != -EAGAIN)
        return EXIT_BUNDLE;
    return EXIT_INTERNAL;
}

static json_t *result_json(const struct runner_result *res)
{
    json_t *devs = json_array(), *outs = json_array(), *stages = json_object();

    for (size_t i = 0; i < res->n_devices; i++)
        json_array_append_new(devs, json_pack("{s:s, s:s, s:s}", "plugin",
                                              res->devices[i].plugin, "id",
                                              res->devices[i].id, "model",
                                              res->devices[i].model));
    for (size_t i = 0; i < res->n_outputs; i++)
        json_array_append_new(outs, json_string(res->outputs[i]));
    for (int s = 0; s < STAGE_COUNT; s++)
        json_object_set_new(stages, runner_stage_name(s),
                            json_real((double)res->stage_ns[s] / 1e9));
    return json_pack(
        "{s:s, s:s, s:s, s:i, s:s?, s:o, s:o, s:I, s:I, s:f, s:f, s:f, s:I, "
        "s:I, s:I, s:f, s:s, s:b, s:s?, s:o, s:s?}",
        "id", res->job_id, "name", res->name ? res->name : "", "state",
        res->state ? res->state : "", "exit_status", res->exit_status,
        "out_dir", res->out_dir, "outputs", outs, "devices", devs,
        "start_us", (json_int_t)res->start_us, "end_us",
        (json_int_t)res->end_us, "duration_s",
        (double)res->duration_us / 1e6, "device_seconds",
        res->device_seconds, "cpu_seconds", res->cpu_seconds,
        "max_rss_bytes", (json_int_t)res->max_rss_bytes, "bytes_in",
        (json_int_t)res->bytes_in, "bytes_out", (json_int_t)res->bytes_out,
        "cost", (double)res->cost_micros / 1e6, "currency", res->currency,
        "recorded", res->recorded, "notes", res->notes, "stage_seconds",
        stages, "reason", res->reason);
}

static void print_summary(const struct runner_result *res)
{
    char rss[32], in[32], outb[32];

    fprintf(stderr, "surplus: job %s '%s' %s (exit %d) after %.3f s\n",
            res->job_id, res->name, res->state, res->exit_status,
            (double)res->duration_us / 1e6);
    if (res->reason)
        fprintf(stderr, "surplus: reason: %s\n", res->reason);
    if (res->out_dir)
        fprintf(stderr, "surplus: outputs: %s/ (%zu output file(s) and "
                        "job.log)\n",
                res->out_dir, res->n_outputs);
    fprintf(stderr,
            "surplus: usage: record %s%s: %zu device(s), %.3f device-s, "
            "%.3f cpu-s, max RSS %s, in %s, out %s, cost %.6f %s\n",
            res->job_id, res->recorded ? "" : " (NOT recorded)",
            res->n_devices, res->device_seconds, res->cpu_seconds,
            units_format_size(res->max_rss_bytes, rss, sizeof rss),
            units_format_size(res->bytes_in, in, sizeof in),
            units_format_size(res->bytes_out, outb, sizeof outb),
            (double)res->cost_micros / 1e6, res->currency);
}

int cmd_run(struct cli *cli, int argc, char **argv)
{
    struct runner_opts ro = {.tenant = "local", .echo_fd = -1,
                             .cancel_fd = -1, .wait_for_devices = true,
                             .note = on_note};
    struct runner_result res;
    struct config *cf = NULL;
    struct node *node = NULL;
    struct err e = {0};
    struct sigaction sa = {.sa_handler = on_interrupt};
    char *marker = NULL;
    int r, rc;

    (void)argc;
    ro.out_dir = cli_opt(cli, "output");
    ro.wait_for_devices = cli_opt(cli, "no-wait") == NULL;
    if ((ro.job_id = cli_opt(cli, "id")) != NULL &&
        (strlen(ro.job_id) != RUNNER_ID_LEN ||
         strspn(ro.job_id, "0123456789abcdef") != RUNNER_ID_LEN)) {
        cli_error("run: --id '%s' is not %d lower-case hex digits",
                  ro.job_id, RUNNER_ID_LEN);
        return EXIT_USAGE;
    }
    ro.bundle = argv[0];
    if (geteuid() != 0) {
        cli_error("run: needs root: each job gets an unprivileged uid and "
                  "namespaces of its own (see SANDBOX in surplus(1))");
        return EXIT_NOT_PERMITTED;
    }
    if ((rc = cli_load_config(cli, &cf)) != 0)
        return rc;
    /* Best-effort limits on a host without cgroups: said on the first
     * job of the host (and with -v), not on every job. */
    if (!sandbox_host_probe()->cgroup &&
        asprintf(&marker, "%s/" NO_CGROUP_MARKER, cf->state_dir) >= 0) {
        ro.quiet_no_cgroup = cli->verbose == 0 &&
                             access(marker, F_OK) == 0;
    }
    if (node_open(cf, &node, &e) < 0) {
        cli_error("%s", e.msg);
        config_free(cf);
        return EXIT_CONFIG;
    }
    if ((cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) >= 0) {
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        ro.cancel_fd = cancel_fd;
    }
    /* A reader of the echo that goes away must not kill the runner. */
    signal(SIGPIPE, SIG_IGN);
    ro.echo_fd = cli->json ? 2 : 1;
    r = runner_run(node, &ro, &res, &e);
    if (r >= 0 && marker != NULL && !ro.quiet_no_cgroup &&
        cf->sandbox.best_effort) {
        int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                      0644);

        if (fd >= 0) {
            close(fd);
            if (cli->verbose == 0)
                fprintf(stderr, "surplus: (said once on this host; "
                                "surplus -v run says it again)\n");
        }
    }
    if (r < 0) {
        /* What is wrong with the bundle is said of the bundle, as bundle
         * check says it. */
        if (res.failed_stage == STAGE_EXTRACT)
            cli_error("%s: %s", ro.bundle, e.msg);
        else
            cli_error("%s", e.msg);
        rc = exit_code(r, res.failed_stage);
    } else {
        if (cli->json) {
            json_t *j = result_json(&res);
            json_dumpf(j, stdout, JSON_INDENT(2));
            putchar('\n');
            json_decref(j);
        } else {
            print_summary(&res);
        }
        rc = res.exit_status;
        /* The command succeeded but what it produced was not stored: a
         * script must not take that for success. */
        if (rc == 0 && res.reason != NULL)
            rc = EXIT_INTERNAL;
    }
    runner_result_free(&res);
    node_close(node);
    config_free(cf);
    free(marker);
    return rc;
}
