/*
 * cli.h - shared state of the surplus command line: global options, exit
 * codes (surplus(1)), and one entry point per verb.
 */
#ifndef SURPLUS_CLI_H
#define SURPLUS_CLI_H

#include <stdbool.h>

#include <surplus/plugin.h>

#include "config.h"

/* Exit codes scripts rely on (sysexits.h values where one fits). */
enum {
    EXIT_USAGE = 64,
    EXIT_BUNDLE = 65,
    EXIT_NO_DEVICE = 69,    /* the job can never be placed on this node */
    EXIT_TEMPFAIL = 75,     /* quota reached (429, or 507 for the
                               storage_quota), node draining, or surplusd
                               not reachable: try later */
    EXIT_INTERNAL = 70,
    EXIT_NOT_PERMITTED = 77,
    EXIT_CONFIG = 78,
};

#define CLI_STR_(x) #x
#define CLI_STR(x) CLI_STR_(x)
#define SURPLUS_ABI_STRING CLI_STR(SURPLUS_ABI_MAJOR) "." CLI_STR(SURPLUS_ABI_MINOR)

struct cli {
    const char *config_path; /* --config, or NULL for the default */
    const char *socket;      /* --socket */
    const char *url;         /* --url */
    const char *token_file;  /* --token-file */
    const char *cacert;      /* --cacert: CAs to trust for --url, instead
                                of the system's */
    bool json;               /* --json */
};

/* Loads the configuration or reports why not; returns 0 or EXIT_CONFIG. */
int cli_load_config(const struct cli *cli, struct config **ret);

__attribute__((format(printf, 1, 2)))
void cli_error(const char *fmt, ...);

/* The width tables on stdout must fit: 0 when stdout is not a terminal
 * (a pipe or a file gets every column, the same whatever the terminal),
 * else the terminal's width, $COLUMNS when the terminal does not say, or
 * 80. */
int cli_term_width(void);

int cmd_bundle(struct cli *cli, int argc, char **argv);
int cmd_run(struct cli *cli, int argc, char **argv);
int cmd_submit(struct cli *cli, int argc, char **argv);
int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_logs(struct cli *cli, int argc, char **argv);
int cmd_cancel(struct cli *cli, int argc, char **argv);
int cmd_fetch(struct cli *cli, int argc, char **argv);
int cmd_devices(struct cli *cli, int argc, char **argv);
int cmd_quota(struct cli *cli, int argc, char **argv);
int cmd_plugins(struct cli *cli, int argc, char **argv);
int cmd_usage(struct cli *cli, int argc, char **argv);
int cmd_token(struct cli *cli, int argc, char **argv);
int cmd_version(struct cli *cli, int argc, char **argv);

#endif
