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

/* One option of a verb (or of every verb): its long name, its short
 * letter (0 for none), the name of its argument (NULL for a flag) and one
 * line of help.  The same table parses the command line, prints `surplus
 * help VERB` and feeds the shell completions. */
struct cli_option {
    const char *name;
    int key;
    const char *arg;
    const char *help;
};

/* What a verb's operands are, for completion. */
enum cli_operand { CLI_NONE, CLI_JOB, CLI_FILE, CLI_DIR };

struct cli;

struct cli_verb {
    const char *name;        /* "list", or two words: "bundle check" */
    int (*fn)(struct cli *cli, int argc, char **argv); /* the operands */
    const char *operands;    /* as the usage line shows them */
    int min_operands;
    int max_operands;        /* -1: any number */
    enum cli_operand operand;
    bool remote;             /* talks to surplusd: client settings apply */
    const char *summary;
    const struct cli_option *options; /* ends with {NULL} */
};

struct cli_given {
    const char *name;        /* the option's long name */
    const char *value;       /* its argument, "" for a flag */
};

struct cli {
    const char *config_path; /* --config, or NULL for the default */
    const char *socket;      /* --socket */
    const char *url;         /* --url */
    const char *token_file;  /* --token-file */
    const char *cacert;      /* --cacert: CAs to trust for --url, instead
                                of the system's */
    const char *profile;     /* --profile */
    bool json;               /* --json, or -o json */
    int verbose;             /* -v, once per -v */
    char *owned[3];          /* profile strings the fields above point to */
    const struct cli_verb *verb;
    struct cli_given *given; /* the verb's options, in command-line order */
    size_t n_given;
};

/* The last value given to the verb's option `name` ("" for a flag), or
 * NULL when it was not given. */
const char *cli_opt(const struct cli *cli, const char *name);

/* Sets cli->json from the verb's -o/--output FORMAT (table or json):
 * 0, or EXIT_USAGE with the reason printed. */
int cli_output_format(struct cli *cli);

/* URL, token file, CA file and socket from the environment and the client
 * profile file, where the command line did not give them: 0, or
 * EXIT_CONFIG with the reason (file:line) printed. */
int cli_client_settings(struct cli *cli);
void cli_client_settings_free(struct cli *cli);

/* The client profile file: $XDG_CONFIG_HOME/surplus/client.conf or
 * ~/.config/surplus/client.conf; NULL when neither can be named. */
char *cli_profile_path(void);

/* A job id given in full, or as a unique prefix of one of the caller's
 * jobs: 0 with the full id in ret (17 bytes), or the exit code with the
 * reason printed (64 for no match or several). */
int cli_job_id(struct cli *cli, const char *arg, char ret[17]);

/* The verb table and the options every verb takes. */
extern const struct cli_verb cli_verbs[];
extern const size_t cli_n_verbs;
extern const struct cli_option cli_global_options[];

/* `surplus __complete WORD... CURRENT`: candidates for the shells. */
int cli_complete(int argc, char **argv);

/* Loads the configuration or reports why not; returns 0 or EXIT_CONFIG. */
int cli_load_config(const struct cli *cli, struct config **ret);

__attribute__((format(printf, 1, 2)))
void cli_error(const char *fmt, ...);

/* The width tables on stdout must fit: 0 when stdout is not a terminal
 * (a pipe or a file gets every column, the same whatever the terminal),
 * else the terminal's width, $COLUMNS when the terminal does not say, or
 * 80. */
int cli_term_width(void);

int cmd_bundle_check(struct cli *cli, int argc, char **argv);
int cmd_bundle_create(struct cli *cli, int argc, char **argv);
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
int cmd_token_new(struct cli *cli, int argc, char **argv);
int cmd_version(struct cli *cli, int argc, char **argv);
int cmd_help(struct cli *cli, int argc, char **argv);

#endif
