/*
 * profile.c - a tenant's client settings: --url, --token-file, --cacert
 * and --socket from the command line, else from the environment
 * (SURPLUS_URL, SURPLUS_TOKEN_FILE, SURPLUS_CACERT, SURPLUS_SOCKET), else
 * from a named profile of the client profile file (libconfig):
 *
 *   current = "prod";
 *   profiles = ( { name = "prod"; url = "https://gpu-1:8443";
 *                  token_file = "prod.token"; cacert = "ca.pem"; },
 *                { name = "local"; socket = "/run/surplus/surplus.sock"; } );
 *
 * The profile is --profile, else SURPLUS_PROFILE, else `current`.  Relative
 * files in a profile are relative to the profile file's directory.
 */
#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

char *cli_profile_path(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    char *p = NULL;

    if (xdg != NULL && xdg[0] == '/') {
        if (asprintf(&p, "%s/surplus/client.conf", xdg) < 0)
            p = NULL;
    } else if (home != NULL && home[0] == '/') {
        if (asprintf(&p, "%s/.config/surplus/client.conf", home) < 0)
            p = NULL;
    }
    return p;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && *v ? v : NULL;
}

/* file:line: message, and EXIT_CONFIG. */
static int bad(const char *file, const config_setting_t *s, const char *fmt,
               const char *a, const char *b)
{
    fprintf(stderr, "surplus: %s:%d: ", file,
            s ? config_setting_source_line(s) : 0);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return EXIT_CONFIG;
}

/* A string member of a profile, a relative file made relative to `dir`:
 * 0 with *ret (allocated, NULL when absent), or EXIT_CONFIG. */
static int member(const char *file, const char *dir, config_setting_t *p,
                  const char *key, bool is_file, char **ret)
{
    config_setting_t *m = config_setting_get_member(p, key);
    const char *v;

    *ret = NULL;
    if (m == NULL)
        return 0;
    if ((v = config_setting_get_string(m)) == NULL || *v == '\0')
        return bad(file, m, "%s%s: expected a non-empty string", key, "");
    if (is_file && v[0] != '/') {
        if (asprintf(ret, "%s/%s", dir, v) < 0)
            *ret = NULL;
    } else {
        *ret = strdup(v);
    }
    return *ret ? 0 : EXIT_INTERNAL;
}

/* Checks every profile's keys; the one named `want` in *ret (NULL if
 * none is). */
static int find_profile(const char *file, config_setting_t *list,
                        const char *want, config_setting_t **ret)
{
    static const char *const keys[] = {"name", "url", "token_file", "cacert",
                                       "socket"};

    *ret = NULL;
    if (!config_setting_is_list(list) && !config_setting_is_array(list))
        return bad(file, list, "profiles: expected a list ( { name = ...; "
                               "}, ... )%s%s", "", "");
    for (int i = 0; i < config_setting_length(list); i++) {
        config_setting_t *p = config_setting_get_elem(list, (unsigned)i);
        const char *name = NULL;

        if (!config_setting_is_group(p))
            return bad(file, p, "profiles: each entry is a group { name = "
                                "...; }%s%s", "", "");
        for (int k = 0; k < config_setting_length(p); k++) {
            config_setting_t *m = config_setting_get_elem(p, (unsigned)k);
            bool known = false;

            for (size_t j = 0; j < sizeof keys / sizeof keys[0]; j++)
                known |= strcmp(config_setting_name(m), keys[j]) == 0;
            if (!known)
                return bad(file, m, "unknown key '%s' in a profile (known: "
                                    "%s)", config_setting_name(m),
                           "name, url, token_file, cacert, socket");
        }
        if (!config_setting_lookup_string(p, "name", &name) || !*name)
            return bad(file, p, "a profile without a name%s%s", "", "");
        if (want != NULL && strcmp(name, want) == 0 && *ret == NULL)
            *ret = p;
    }
    return 0;
}

int cli_client_settings(struct cli *cli)
{
    const char *want = cli->profile ? cli->profile : env("SURPLUS_PROFILE");
    bool named = want != NULL;
    char *file = NULL, *dir = NULL, *url = NULL, *tok = NULL, *ca = NULL,
         *sock = NULL;
    config_setting_t *list, *p = NULL;
    config_t c;
    int r = 0;

    /* The command line first; the environment next. */
    if (cli->socket == NULL && cli->url == NULL) {
        cli->url = env("SURPLUS_URL");
        if (cli->url == NULL)
            cli->socket = env("SURPLUS_SOCKET");
    }
    if (cli->token_file == NULL)
        cli->token_file = env("SURPLUS_TOKEN_FILE");
    if (cli->cacert == NULL)
        cli->cacert = env("SURPLUS_CACERT");

    if ((file = cli_profile_path()) == NULL || access(file, F_OK) < 0) {
        if (named) {
            fprintf(stderr, "surplus: profile '%s': no client profile file "
                            "%s\n", want, file ? file : "(no $HOME)");
            r = EXIT_CONFIG;
        }
        free(file);
        return r;
    }
    config_init(&c);
    if (config_read_file(&c, file) != CONFIG_TRUE) {
        if (config_error_type(&c) == CONFIG_ERR_FILE_IO)
            fprintf(stderr, "surplus: %s: %s\n", file, strerror(errno));
        else
            fprintf(stderr, "surplus: %s:%d: %s\n", file,
                    config_error_line(&c), config_error_text(&c));
        r = EXIT_CONFIG;
        goto out;
    }
    for (int k = 0; k < config_setting_length(config_root_setting(&c)); k++) {
        config_setting_t *m =
            config_setting_get_elem(config_root_setting(&c), (unsigned)k);

        if (strcmp(config_setting_name(m), "current") != 0 &&
            strcmp(config_setting_name(m), "profiles") != 0) {
            r = bad(file, m, "unknown key '%s' (known: %s)",
                    config_setting_name(m), "current, profiles");
            goto out;
        }
    }
    if (want == NULL &&
        config_lookup(&c, "current") != NULL &&
        !config_lookup_string(&c, "current", &want)) {
        r = bad(file, config_lookup(&c, "current"),
                "current: expected the name of a profile%s%s", "", "");
        goto out;
    }
    if ((list = config_lookup(&c, "profiles")) == NULL) {
        if (want != NULL)
            r = bad(file, NULL, "profile '%s': there is no profiles list%s",
                    want, "");
        goto out;
    }
    if ((r = find_profile(file, list, want, &p)) != 0)
        goto out;
    if (want == NULL)
        goto out;
    if (p == NULL) {
        r = bad(file, named ? list : config_lookup(&c, "current"),
                "no profile named '%s'%s", want,
                named ? "" : " (the current one)");
        goto out;
    }
    dir = strdup(file);
    if (dir == NULL) {
        r = EXIT_INTERNAL;
        goto out;
    }
    *strrchr(dir, '/') = '\0';
    if ((r = member(file, dir, p, "url", false, &url)) != 0 ||
        (r = member(file, dir, p, "token_file", true, &tok)) != 0 ||
        (r = member(file, dir, p, "cacert", true, &ca)) != 0 ||
        (r = member(file, dir, p, "socket", true, &sock)) != 0)
        goto out;
    /* Below the command line and the environment. */
    if (cli->url == NULL && cli->socket == NULL) {
        if (url != NULL)
            cli->url = cli->owned[0] = url, url = NULL;
        else if (sock != NULL)
            cli->socket = cli->owned[0] = sock, sock = NULL;
    }
    if (cli->token_file == NULL && tok != NULL)
        cli->token_file = cli->owned[1] = tok, tok = NULL;
    if (cli->cacert == NULL && ca != NULL)
        cli->cacert = cli->owned[2] = ca, ca = NULL;
out:
    config_destroy(&c);
    free(url);
    free(tok);
    free(ca);
    free(sock);
    free(dir);
    free(file);
    return r;
}

void cli_client_settings_free(struct cli *cli)
{
    for (size_t i = 0; i < sizeof cli->owned / sizeof cli->owned[0]; i++) {
        free(cli->owned[i]);
        cli->owned[i] = NULL;
    }
}
