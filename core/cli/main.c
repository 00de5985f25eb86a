/*
 * surplus - the command line for tenants and operators.  This file holds
 * the table of verbs and their options, and parses the command line with
 * it: options are taken anywhere on the line (before the verb, after it,
 * after operands; "--" ends them), and every usage error says what was
 * wrong.  Each verb gets its operands and looks its options up by name.
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

/* ---- the table ----------------------------------------------------------- */

const struct cli_option cli_global_options[] = {
    {"config", 'c', "FILE", "surplus.conf(5) to read (for the socket, "
                            "local verbs)"},
    {"socket", 0, "PATH", "surplusd's Unix socket (default: api.socket)"},
    {"url", 0, "URL", "surplusd over HTTPS: https://HOST:PORT"},
    {"token-file", 0, "FILE", "the file holding your bearer token"},
    {"cacert", 0, "FILE", "CA certificates to verify --url with"},
    {"profile", 0, "NAME", "the client profile to use (client.conf)"},
    {"json", 0, NULL, "print JSON instead of tables"},
    {"verbose", 'v', NULL, "say more (repeat for more)"},
    {"help", 'h', NULL, "show help (of the verb, after one)"},
    {"version", 0, NULL, "show the version and plugin ABI"},
    {NULL, 0, NULL, NULL}};

#define OUTPUT_FORMAT                                                       \
    {"output", 'o', "FORMAT", "table (the default) or json (as --json)"}

static const struct cli_option none[] = {{NULL, 0, NULL, NULL}};
static const struct cli_option formatted[] = {OUTPUT_FORMAT,
                                              {NULL, 0, NULL, NULL}};
static const struct cli_option create_opts[] = {
    {"output", 'o', "OUT", "the bundle to write (default NAME.tar.zst)"},
    {NULL, 0, NULL, NULL}};
static const struct cli_option run_opts[] = {
    {"output", 'o', "DIR", "where outputs and job.log land (default "
                           "./NAME-ID/)"},
    {"id", 0, "ID", "the job id (16 hex digits) instead of a new one"},
    {"no-wait", 0, NULL, "fail at once when the devices are leased"},
    {NULL, 0, NULL, NULL}};
static const struct cli_option submit_opts[] = {
    {"wait", 'w', NULL, "wait for the job to end; exit with its status"},
    {"idempotency-key", 0, "KEY", "the submission's key (default: a new "
                                  "random one)"},
    {NULL, 0, NULL, NULL}};
static const struct cli_option list_opts[] = {
    OUTPUT_FORMAT,
    {"state", 0, "STATE", "only jobs in STATE (repeat, or STATE,STATE)"},
    {"since", 0, "TIME", "only jobs submitted at or after TIME (RFC 3339 "
                         "or unix seconds)"},
    {"tenant", 0, "NAME", "only the jobs of tenant NAME (root)"},
    {NULL, 0, NULL, NULL}};
static const struct cli_option logs_opts[] = {
    {"follow", 'f', NULL, "keep showing the log until the job ends"},
    {NULL, 0, NULL, NULL}};
static const struct cli_option fetch_opts[] = {
    {"output", 'o', "DIR", "where outputs and job.log land (default "
                           "./NAME-ID/)"},
    {NULL, 0, NULL, NULL}};
static const struct cli_option plugins_opts[] = {
    {"check", 0, NULL, "run the conformance checks on each plugin"},
    {"all", 0, NULL, "also list installed plugins the configuration does "
                     "not use"},
    {NULL, 0, NULL, NULL}};
static const struct cli_option usage_opts[] = {
    {"since", 0, "TIME", "records that ended at or after TIME: "
                         "2026-11-23T12:00:00Z, 2026-11-23 (local), now, "
                         "-2h, -7d, @UNIXSECONDS"},
    {"until", 0, "TIME", "records that ended before TIME (default: now)"},
    {"tenant", 0, "NAME", "only the records of tenant NAME"},
    {"format", 0, "FORMAT", "table, csv or json"},
    {NULL, 0, NULL, NULL}};

static const struct cli_option token_opts[] = {
    {"tenant", 0, "NAME", "also print the tenant's entry for surplus.conf"},
    {NULL, 0, NULL, NULL}};

/* One entry per verb; `surplus help` lists them in this order. */
const struct cli_verb cli_verbs[] = {
    {"bundle check", cmd_bundle_check, "BUNDLE", 1, 1, CLI_FILE, false,
     "check a job bundle against every rule of surplus-bundle(5)", none},
    {"bundle create", cmd_bundle_create, "DIR", 1, 1, CLI_DIR, false,
     "pack a directory into a checked tar.zst bundle", create_opts},
    {"run", cmd_run, "BUNDLE", 1, 1, CLI_FILE, false,
     "run a job bundle here and now, without a daemon", run_opts},
    {"submit", cmd_submit, "BUNDLE", 1, 1, CLI_FILE, true,
     "send a bundle to surplusd", submit_opts},
    {"list", cmd_list, "", 0, 0, CLI_NONE, true, "list jobs", list_opts},
    {"status", cmd_status, "ID", 1, 1, CLI_JOB, true, "show one job",
     formatted},
    {"logs", cmd_logs, "ID", 1, 1, CLI_JOB, true, "show a job's log",
     logs_opts},
    {"cancel", cmd_cancel, "ID", 1, 1, CLI_JOB, true, "cancel a job", none},
    {"fetch", cmd_fetch, "ID", 1, 1, CLI_JOB, true,
     "download a job's outputs and log", fetch_opts},
    {"devices", cmd_devices, "", 0, 0, CLI_NONE, true,
     "list the node's devices and their state", formatted},
    {"quota", cmd_quota, "", 0, 0, CLI_NONE, true,
     "show the storage you hold and your quotas", formatted},
    {"plugins", cmd_plugins, "", 0, 0, CLI_NONE, false,
     "list the configured plugins and what they report", plugins_opts},
    {"usage", cmd_usage, "", 0, 0, CLI_NONE, true,
     "show usage records from the accounting ledger", usage_opts},
    {"token new", cmd_token_new, "", 0, 0, CLI_NONE, false,
     "make a tenant's bearer token and its surplus.conf line", token_opts},
    {"help", cmd_help, "[VERB]", 0, 2, CLI_NONE, false,
     "show the options of a verb", none},
    {"version", cmd_version, "", 0, 0, CLI_NONE, false,
     "show the version and plugin ABI", none},
};
const size_t cli_n_verbs = sizeof cli_verbs / sizeof cli_verbs[0];

/* ---- shared helpers ------------------------------------------------------- */

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

const char *cli_opt(const struct cli *cli, const char *name)
{
    const char *v = NULL;

    for (size_t i = 0; i < cli->n_given; i++)
        if (strcmp(cli->given[i].name, name) == 0)
            v = cli->given[i].value;
    return v;
}

int cli_output_format(struct cli *cli)
{
    const char *f = cli_opt(cli, "output");

    if (f == NULL || strcmp(f, "table") == 0)
        return 0;
    if (strcmp(f, "json") == 0) {
        cli->json = true;
        return 0;
    }
    cli_error("%s: -o/--output '%s': expected table or json",
              cli->verb->name, f);
    return EXIT_USAGE;
}

/* ---- help ------------------------------------------------------------------ */

static void options_help(FILE *f, const struct cli_option *o)
{
    for (; o->name != NULL; o++) {
        char left[64];

        char key[8] = "    ";

        if (o->key)
            snprintf(key, sizeof key, "-%c, ", o->key);
        snprintf(left, sizeof left, "%s--%s%s%s", key, o->name,
                 o->arg ? " " : "", o->arg ? o->arg : "");
        if (strlen(left) > 26)
            fprintf(f, "  %s\n  %-26s  %s\n", left, "", o->help);
        else
            fprintf(f, "  %-26s  %s\n", left, o->help);
    }
}

static void verb_usage(FILE *f, const struct cli_verb *v)
{
    fprintf(f, "Usage: surplus %s%s%s%s\n", v->name,
            v->options[0].name ? " [OPTION]..." : "", v->operands[0] ? " " : "",
            v->operands);
}

static void verb_help(FILE *f, const struct cli_verb *v)
{
    verb_usage(f, v);
    fprintf(f, "%c%s.\n", v->summary[0] - 'a' + 'A', v->summary + 1);
    if (v->options[0].name) {
        fprintf(f, "\nOptions:\n");
        options_help(f, v->options);
    }
    fprintf(f, "\nGlobal options (before or after the verb): see surplus "
               "--help.  See surplus(1).\n");
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: surplus [OPTION]... VERB [ARG]...\n\nVerbs:\n");
    for (size_t i = 0; i < cli_n_verbs; i++)
        fprintf(f, "  %-14s %s\n", cli_verbs[i].name, cli_verbs[i].summary);
    fprintf(f, "\nOptions (anywhere on the line):\n");
    options_help(f, cli_global_options);
    fprintf(f, "\nsurplus help VERB shows the options of VERB.  "
               "See surplus(1).\n");
}

/* The verb named by words[0] (and words[1] for a two-word verb): the
 * number of words it took, 0 if none matches (*ret = NULL), or -1 when
 * words[0] starts two-word verbs and words[1] is none of them. */
static int find_verb(int n, char **words, const struct cli_verb **ret)
{
    bool group = false;

    *ret = NULL;
    if (n < 1)
        return 0;
    for (size_t i = 0; i < cli_n_verbs; i++) {
        const char *name = cli_verbs[i].name, *sp = strchr(name, ' ');
        size_t first = sp ? (size_t)(sp - name) : strlen(name);

        if (strlen(words[0]) != first || strncmp(words[0], name, first) != 0)
            continue;
        if (sp == NULL) {
            *ret = &cli_verbs[i];
            return 1;
        }
        group = true;
        if (n >= 2 && strcmp(words[1], sp + 1) == 0) {
            *ret = &cli_verbs[i];
            return 2;
        }
    }
    return group ? -1 : 0;
}

/* "check, create": the second words of the verbs starting with `first`. */
static void group_words(FILE *f, const char *first)
{
    size_t k = strlen(first);
    const char *sep = "";

    for (size_t i = 0; i < cli_n_verbs; i++)
        if (strncmp(cli_verbs[i].name, first, k) == 0 &&
            cli_verbs[i].name[k] == ' ') {
            fprintf(f, "%s%s", sep, cli_verbs[i].name + k + 1);
            sep = " or ";
        }
}

int cmd_help(struct cli *cli, int argc, char **argv)
{
    const struct cli_verb *v;
    int n = find_verb(argc, argv, &v);

    (void)cli;
    if (argc == 0) {
        usage(stdout);
        return 0;
    }
    if (n == -1 && argc == 1) {
        /* "help bundle": every verb of the group. */
        for (size_t i = 0; i < cli_n_verbs; i++)
            if (strncmp(cli_verbs[i].name, argv[0], strlen(argv[0])) == 0 &&
                cli_verbs[i].name[strlen(argv[0])] == ' ') {
                verb_help(stdout, &cli_verbs[i]);
                putchar('\n');
            }
        return 0;
    }
    if (n <= 0 || n != argc) {
        cli_error("help: unknown verb '%s%s%s' (surplus help lists them)",
                  argv[0], argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
        return EXIT_USAGE;
    }
    verb_help(stdout, v);
    return 0;
}

/* ---- parsing ----------------------------------------------------------------- */

/* Every option any verb or the line as a whole knows, once by name; a
 * short letter means the same (with or without an argument) wherever it
 * appears. */
struct known {
    const struct cli_option *o[64];
    size_t n;
};

static int known_add(struct known *k, const struct cli_option *o)
{
    for (; o->name != NULL; o++) {
        bool dup = false;

        for (size_t i = 0; i < k->n; i++) {
            if (strcmp(k->o[i]->name, o->name) == 0)
                dup = true;
            if ((strcmp(k->o[i]->name, o->name) == 0 ||
                 (o->key && k->o[i]->key == o->key)) &&
                (k->o[i]->arg != NULL) != (o->arg != NULL)) {
                cli_error("internal: option '%s' takes an argument in one "
                          "verb and not in another", o->name);
                return -1;
            }
        }
        if (dup)
            continue;
        if (k->n == sizeof k->o / sizeof k->o[0]) {
            cli_error("internal: more than %zu options",
                      sizeof k->o / sizeof k->o[0]);
            return -1;
        }
        k->o[k->n++] = o;
    }
    return 0;
}

/* The verb's (or the global) option with long name `name`, or the one
 * with short letter `key`; NULL when the verb has none such. */
static const struct cli_option *verb_option(const struct cli_verb *v,
                                            const char *name, int key)
{
    const struct cli_option *lists[2] = {cli_global_options,
                                         v ? v->options : none};

    for (int l = 0; l < 2; l++)
        for (const struct cli_option *o = lists[l]; o->name; o++)
            if (name ? strcmp(o->name, name) == 0 : o->key == key)
                return o;
    return NULL;
}

struct hit {
    const char *name;  /* long name, or NULL for a short letter */
    int key;
    const char *value;
};

struct parsed {
    struct hit *hits;
    size_t n_hits;
    char **words;      /* verb words and operands, in order */
    int n_words;
};

static void parsed_free(struct parsed *p)
{
    free(p->hits);
    free(p->words);
}

/* One pass of GNU getopt with every known option, permuting: 0, or
 * EXIT_USAGE with the reason printed. */
static int parse_line(int argc, char **argv, struct parsed *p)
{
    struct known k = {.n = 0};
    struct option *longs = NULL;
    char shorts[128] = "-:";
    size_t ns = 2;
    int opt, idx, r = 0;

    memset(p, 0, sizeof *p);
    if (known_add(&k, cli_global_options) < 0)
        return EXIT_INTERNAL;
    for (size_t i = 0; i < cli_n_verbs; i++)
        if (known_add(&k, cli_verbs[i].options) < 0)
            return EXIT_INTERNAL;
    longs = calloc(k.n + 1, sizeof *longs);
    p->hits = calloc((size_t)argc, sizeof *p->hits);
    p->words = calloc((size_t)argc, sizeof *p->words);
    if (longs == NULL || p->hits == NULL || p->words == NULL) {
        free(longs);
        cli_error("out of memory");
        return EXIT_INTERNAL;
    }
    for (size_t i = 0; i < k.n; i++) {
        longs[i].name = k.o[i]->name;
        longs[i].has_arg = k.o[i]->arg ? required_argument : no_argument;
        longs[i].val = 256 + (int)i;
        if (k.o[i]->key && strchr(shorts + 2, k.o[i]->key) == NULL &&
            ns + 2 < sizeof shorts) {
            shorts[ns++] = (char)k.o[i]->key;
            if (k.o[i]->arg)
                shorts[ns++] = ':';
        }
    }
    shorts[ns] = '\0';
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, shorts, longs, &idx)) != -1) {
        const char *typed = argv[optind - 1];

        if (opt == 1) {
            p->words[p->n_words++] = optarg;
        } else if (opt == '?') {
            if (optopt && optopt < 256)
                cli_error("unknown option '-%c'", optopt);
            else
                cli_error("unknown or ambiguous option '%s'", typed);
            r = EXIT_USAGE;
            break;
        } else if (opt == ':') {
            if (optopt && optopt < 256)
                cli_error("option '-%c' needs an argument", optopt);
            else
                cli_error("option '%s' needs an argument", typed);
            r = EXIT_USAGE;
            break;
        } else {
            struct hit *h = &p->hits[p->n_hits++];

            h->name = opt >= 256 ? k.o[opt - 256]->name : NULL;
            h->key = opt < 256 ? opt : 0;
            h->value = optarg ? optarg : "";
        }
    }
    /* After "--": operands all. */
    while (r == 0 && optind < argc)
        p->words[p->n_words++] = argv[optind++];
    free(longs);
    return r;
}

/* Applies a global option; false when `o` is not one. */
static bool global(struct cli *cli, const struct cli_option *o,
                   const char *value)
{
    const char *n = o->name;

    if (strcmp(n, "config") == 0)
        cli->config_path = value;
    else if (strcmp(n, "socket") == 0)
        cli->socket = value;
    else if (strcmp(n, "url") == 0)
        cli->url = value;
    else if (strcmp(n, "token-file") == 0)
        cli->token_file = value;
    else if (strcmp(n, "cacert") == 0)
        cli->cacert = value;
    else if (strcmp(n, "profile") == 0)
        cli->profile = value;
    else if (strcmp(n, "json") == 0)
        cli->json = true;
    else if (strcmp(n, "verbose") == 0)
        cli->verbose++;
    else
        return strcmp(n, "help") == 0 || strcmp(n, "version") == 0;
    return true;
}

static int usage_error(const struct cli_verb *v)
{
    if (v != NULL)
        verb_usage(stderr, v);
    fprintf(stderr, "Try 'surplus help%s%s' for more.\n", v ? " " : "",
            v ? v->name : "");
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    struct parsed p;
    const struct cli_verb *v = NULL;
    bool help = false, version = false;
    int nw, r;

    log_setup("surplus", SURPLUS_LOG_WARNING);
    if (argc >= 2 && strcmp(argv[1], "__complete") == 0)
        return cli_complete(argc - 2, argv + 2);
    if ((r = parse_line(argc, argv, &p)) != 0) {
        parsed_free(&p);
        return r == EXIT_USAGE ? usage_error(NULL) : r;
    }
    nw = find_verb(p.n_words, p.words, &v);
    for (size_t i = 0; nw == -1 && i < p.n_hits; i++)
        if (p.hits[i].key == 'h' ||
            (p.hits[i].name && strcmp(p.hits[i].name, "help") == 0)) {
            /* "bundle --help": every command of the group. */
            r = cmd_help(&cli, 1, p.words);
            parsed_free(&p);
            return r;
        }
    if (nw == -1) {
        fprintf(stderr, "surplus: %s: expected ", p.words[0]);
        group_words(stderr, p.words[0]);
        if (p.n_words >= 2)
            fprintf(stderr, ", not '%s'", p.words[1]);
        fprintf(stderr, "\nTry 'surplus help %s' for more.\n", p.words[0]);
        parsed_free(&p);
        return EXIT_USAGE;
    }
    if (nw == 0 && p.n_words > 0) {
        cli_error("unknown verb '%s' (surplus help lists them)", p.words[0]);
        parsed_free(&p);
        return EXIT_USAGE;
    }
    cli.verb = v;
    cli.given = calloc(p.n_hits + 1, sizeof *cli.given);
    if (cli.given == NULL) {
        parsed_free(&p);
        return EXIT_INTERNAL;
    }
    for (size_t i = 0; i < p.n_hits; i++) {
        const struct cli_option *o =
            verb_option(v, p.hits[i].name, p.hits[i].key);

        if (o == NULL) {
            if (p.hits[i].name)
                cli_error("unknown option '--%s' for '%s'", p.hits[i].name,
                          v ? v->name : "surplus");
            else
                cli_error("unknown option '-%c' for '%s'", p.hits[i].key,
                          v ? v->name : "surplus");
            r = usage_error(v);
            goto out;
        }
        if (strcmp(o->name, "help") == 0)
            help = true;
        else if (strcmp(o->name, "version") == 0)
            version = true;
        if (!global(&cli, o, p.hits[i].value))
            cli.given[cli.n_given++] =
                (struct cli_given){o->name, p.hits[i].value};
    }
    if (help) {
        if (v != NULL && v->fn != cmd_help)
            verb_help(stdout, v);
        else if (v != NULL)
            r = cmd_help(&cli, p.n_words - nw, p.words + nw);
        else
            usage(stdout);
        goto out;
    }
    if (version || (v != NULL && v->fn == cmd_version)) {
        if (v != NULL && v->fn == cmd_version && p.n_words > nw) {
            cli_error("version: extra operand '%s'", p.words[nw]);
            r = usage_error(v);
            goto out;
        }
        r = cmd_version(&cli, 0, NULL);
        goto out;
    }
    if (v == NULL) {
        cli_error("missing verb");
        usage(stderr);
        r = EXIT_USAGE;
        goto out;
    }
    if (p.n_words - nw < v->min_operands) {
        cli_error("%s: missing operand %s", v->name, v->operands);
        r = usage_error(v);
        goto out;
    }
    if (v->max_operands >= 0 && p.n_words - nw > v->max_operands) {
        cli_error("%s: extra operand '%s'", v->name,
                  p.words[nw + v->max_operands]);
        r = usage_error(v);
        goto out;
    }
    if (v->remote && (r = cli_client_settings(&cli)) != 0)
        goto out;
    r = v->fn(&cli, p.n_words - nw, p.words + nw);
out:
    cli_client_settings_free(&cli);
    free(cli.given);
    parsed_free(&p);
    return r;
}
