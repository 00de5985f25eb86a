/*
 * surplus token new [--tenant NAME]
 *
 * Makes a bearer token for a tenant: 32 bytes from getrandom(2), written
 * as 64 lower-case hex digits, and the token_sha256 line for surplus.conf
 * computed over exactly those 64 characters (no newline: the mistake an
 * operator makes with `echo TOKEN | sha256sum`).  Needs no daemon and no
 * configuration.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cli.h"
#include "sha256.h"

#define TOKEN_BYTES 32

/* Fills buf from the kernel's CSPRNG, blocking until it is seeded. */
static int fill_random(unsigned char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        got += (size_t)n;
    }
    return 0;
}

static int token_new(struct cli *cli, const char *tenant)
{
    static const char hexdig[] = "0123456789abcdef";
    unsigned char raw[TOKEN_BYTES];
    char token[2 * TOKEN_BYTES + 1], hash[65], *line = NULL;
    int r, rc = 0;

    if ((r = fill_random(raw, sizeof raw)) < 0) {
        cli_error("token new: getrandom: %s", strerror(-r));
        return EXIT_INTERNAL;
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        token[2 * i] = hexdig[raw[i] >> 4];
        token[2 * i + 1] = hexdig[raw[i] & 15];
    }
    token[sizeof token - 1] = '\0';
    explicit_bzero(raw, sizeof raw);
    sha256_hex(token, strlen(token), hash);
    if ((tenant != NULL
             ? asprintf(&line, "{ name = \"%s\"; token_sha256 = \"%s\"; }",
                        tenant, hash)
             : asprintf(&line, "token_sha256 = \"%s\";", hash)) < 0) {
        line = NULL;
        cli_error("token new: out of memory");
        rc = EXIT_INTERNAL;
        goto out;
    }
    if (cli->json) {
        json_t *o = json_pack("{s:s, s:s, s:s?, s:s}", "token", token,
                              "token_sha256", hash, "tenant", tenant,
                              "config", line);

        if (o == NULL || json_dumpf(o, stdout, JSON_INDENT(2)) < 0) {
            cli_error("token new: out of memory");
            rc = EXIT_INTERNAL;
        } else {
            putchar('\n');
        }
        json_decref(o);
    } else {
        printf("%s\n%s\n", token, line);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("token new: standard output: %s", strerror(errno));
        rc = EXIT_INTERNAL;
    }
out:
    explicit_bzero(token, sizeof token);
    free(line);
    return rc;
}

int cmd_token_new(struct cli *cli, int argc, char **argv)
{
    const char *tenant = cli_opt(cli, "tenant");
    struct err e = {0};

    (void)argc;
    (void)argv;
    /* The line printed must be one surplus.conf accepts. */
    if (tenant != NULL && config_tenant_name_check(tenant, &e) < 0) {
        cli_error("token new: --tenant: %s", e.msg);
        return EXIT_USAGE;
    }
    return token_new(cli, tenant);
}
