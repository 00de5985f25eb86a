/*
 * surplus - the command line for tenants and operators.  This file parses
 * the global options and hands over to one function per verb.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"

static const struct verb {
    const char *name;
    int (*fn)(struct cli *cli, int argc, char **argv);
    const char *help;
} verbs[] = {
    {"bundle", cmd_bundle, "check a job bundle, or create one from a "
                           "directory"},
    {"run", cmd_run, "run a job bundle here and now, without a daemon"},
    {"submit", cmd_submit, "send a bundle to surplusd [--wait] "
                           "[--idempotency-key KEY]"},
    {"list", cmd_list, "list jobs"},
    {"status", cmd_status, "show one job"},
    {"logs", cmd_logs, "show a job's log [-f]"},
    {"cancel", cmd_cancel, "cancel a job"},
    {"fetch", cmd_fetch, "download a job's outputs [-o DIR]"},
    {"devices", cmd_devices, "list the node's devices and their state"},
    {"quota", cmd_quota, "show the storage you hold and your quotas"},
    {"plugins", cmd_plugins, "list the configured plugins and what they "
                             "report [--check]"},
    {"usage", cmd_usage, "show usage records from the accounting ledger"},
    {"token", cmd_token, "make a tenant's bearer token: new [--tenant NAME]"},
    {"version", cmd_version, "show the version and plugin ABI"},
};

void cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs("surplus: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_term_width(void)
{
    struct winsize ws;
    const char *env = getenv("COLUMNS");
    char *end;
    long n;

    if (!isatty(STDOUT_FILENO))
        return 0;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    if (env != NULL && *env) {
        errno = 0;
        n = strtol(env, &end, 10);
        if (errno == 0 && *end == '\0' && n > 0 && n <= 10000)
            return (int)n;
    }
    return 80;
}

int cli_load_config(const struct cli *cli, struct config **ret)
{
    struct err e = {0};

    if (config_load(cli->config_path, ret, &e) < 0) {
        cli_error("%s", e.msg);
        return EXIT_CONFIG;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: surplus [--config FILE] [--socket PATH | --url URL "
               "--token-file FILE [--cacert FILE]] [--json] VERB "
               "[ARGS]\n\nVerbs:\n");
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].help);
    fprintf(f, "\nSee surplus(1).\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"socket", required_argument, NULL, 'S'},
        {"url", required_argument, NULL, 'U'},
        {"token-file", required_argument, NULL, 'T'},
        {"cacert", required_argument, NULL, 'A'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    struct cli cli = {0};
    int opt;

    log_setup("surplus", SURPLUS_LOG_WARNING);
    /* '+' stops at the verb, so each verb parses its own options. */
    while ((opt = getopt_long(argc, argv, "+c:jh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            cli.config_path = optarg;
            break;
        case 'S':
            cli.socket = optarg;
            break;
        case 'U':
            cli.url = optarg;
            break;
        case 'T':
            cli.token_file = optarg;
            break;
        case 'A':
            cli.cacert = optarg;
            break;
        case 'j':
            cli.json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            return cmd_version(&cli, 0, NULL);
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(argv[optind], verbs[i].name) == 0) {
            char **sub = argv + optind;
            int subc = argc - optind;
            optind = 0; /* restart getopt for the verb */
            return verbs[i].fn(&cli, subc, sub);
        }
    }
    cli_error("unknown verb '%s' (see surplus --help)", argv[optind]);
    return EXIT_USAGE;
}
