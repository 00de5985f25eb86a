/*
 * surplus-plugin-check - tells a plugin vendor whether a plugin meets the
 * contract of its kind.  Prints TAP: one line per check, a plan at the end;
 * exits 0 when every check passed, 1 when one failed, 64 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conform.h"
#include "log.h"
#include "units.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: surplus-plugin-check [OPTION]... PLUGIN.so...\n"
            "Check surplus plugins against the contract of their kind.\n"
            "\n"
            "  -s, --set KEY=VALUE   a setting for the plugins (repeatable);\n"
            "                        without --set path=..., storage and\n"
            "                        accounting plugins get a scratch path\n"
            "      --large-size SIZE size of the streamed storage object\n"
            "                        (default 1G)\n"
            "  -v, --verbose         show the plugins' log lines\n"
            "  -h, --help            show this help\n"
            "\n"
            "Exit status: 0 all checks passed, 1 a check failed, 64 usage.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"set", required_argument, NULL, 's'},
        {"large-size", required_argument, NULL, 'L'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct conform c = {.out = stdout};
    struct settings base = {0};
    struct err e = {0};
    int opt, verbose = 0;

    while ((opt = getopt_long(argc, argv, "s:vh", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            if (settings_set_arg(&base, optarg, &e) < 0) {
                fprintf(stderr, "surplus-plugin-check: %s\n", e.msg);
                return 64;
            }
            break;
        case 'L':
            if (units_parse_size(optarg, &c.large_bytes) < 0 ||
                c.large_bytes == 0) {
                fprintf(stderr, "surplus-plugin-check: --large-size '%s' is "
                                "not a size such as 64M or 1G\n", optarg);
                return 64;
            }
            break;
        case 'v':
            verbose = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 64;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 64;
    }
    log_setup("surplus-plugin-check",
              verbose ? SURPLUS_LOG_DEBUG : SURPLUS_LOG_WARNING);
    base.name = strdup("--set");
    base.where = strdup("(command line)");
    for (int i = optind; i < argc; i++) {
        if (conform_plugin(&c, argv[i], &base, &e) < 0) {
            fprintf(stderr, "surplus-plugin-check: %s\n", e.msg);
            c.failed++;
        }
    }
    settings_free(&base);
    printf("1..%d\n", c.n);
    printf("# %d passed, %d failed, %d skipped\n", c.passed, c.failed,
           c.skipped);
    return c.failed ? 1 : 0;
}
