/*
 * complete.c - `surplus __complete WORD... CURRENT`, what the bash and zsh
 * completions ask: the candidates for CURRENT after the words before it,
 * one a line, from the verb table (verbs, options) and from surplusd (the
 * caller's job ids).  A first line ":files" or ":dirs" asks the shell to
 * complete file names instead.  Nothing is printed on stderr: a shell is
 * listening.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

static const struct cli_option *lookup(const struct cli_verb *v,
                                       const char *word)
{
    const struct cli_option *lists[2] = {cli_global_options,
                                         v ? v->options : NULL};

    for (int l = 0; l < 2; l++)
        for (const struct cli_option *o = lists[l]; o && o->name; o++) {
            if (word[1] == '-' && strcmp(word + 2, o->name) == 0)
                return o;
            if (word[1] != '-' && o->key && word[1] == o->key &&
                word[2] == '\0')
                return o;
        }
    return NULL;
}

static void options(const struct cli_verb *v)
{
    for (const struct cli_option *o = cli_global_options; o->name; o++)
        printf("--%s\n", o->name);
    for (const struct cli_option *o = v ? v->options : NULL; o && o->name;
         o++)
        printf("--%s\n", o->name);
}

static void first_words(void)
{
    for (size_t i = 0; i < cli_n_verbs; i++) {
        const char *n = cli_verbs[i].name, *sp = strchr(n, ' ');
        int len = sp ? (int)(sp - n) : (int)strlen(n);

        if (i > 0 && strncmp(cli_verbs[i - 1].name, n, (size_t)len) == 0 &&
            (cli_verbs[i - 1].name[len] == ' ' ||
             cli_verbs[i - 1].name[len] == '\0'))
            continue;
        printf("%.*s\n", len, n);
    }
}

static void job_ids(struct cli *cli)
{
    struct reply rep;
    json_t *a, *j;
    size_t i;
    int err = dup(2), null = open("/dev/null", O_WRONLY | O_CLOEXEC);

    /* The caller's jobs, quietly: no daemon, no candidates. */
    if (null >= 0)
        dup2(null, 2);
    if (cli_client_settings(cli) == 0 &&
        client_request(cli, "GET", "/v1/jobs", -1, -1, &rep) == 0) {
        if (rep.status == 200 &&
            (a = json_loads(rep.body ? rep.body : "", 0, NULL)) != NULL) {
            json_array_foreach(a, i, j) {
                const char *id = json_string_value(json_object_get(j, "id"));

                if (id != NULL)
                    printf("%s\n", id);
            }
            json_decref(a);
        }
        reply_free(&rep);
    }
    cli_client_settings_free(cli);
    if (err >= 0) {
        dup2(err, 2);
        close(err);
    }
    if (null >= 0)
        close(null);
}

int cli_complete(int argc, char **argv)
{
    const char *cur = argc > 0 ? argv[argc - 1] : "";
    const char *group = NULL;
    const struct cli_verb *v = NULL;
    const struct cli_option *pending = NULL;
    struct cli cli = {0};
    int operands = 0;
    bool dashdash = false;

    for (int i = 0; i < argc - 1; i++) {
        const char *w = argv[i];
        const struct cli_option *o;

        if (pending != NULL) {
            if (strcmp(pending->name, "config") == 0)
                cli.config_path = w;
            else if (strcmp(pending->name, "socket") == 0)
                cli.socket = w;
            else if (strcmp(pending->name, "url") == 0)
                cli.url = w;
            else if (strcmp(pending->name, "token-file") == 0)
                cli.token_file = w;
            else if (strcmp(pending->name, "cacert") == 0)
                cli.cacert = w;
            else if (strcmp(pending->name, "profile") == 0)
                cli.profile = w;
            pending = NULL;
            continue;
        }
        if (!dashdash && strcmp(w, "--") == 0) {
            dashdash = true;
            continue;
        }
        if (!dashdash && w[0] == '-' && w[1] != '\0') {
            if ((o = lookup(v, w)) != NULL && o->arg != NULL)
                pending = o;
            continue;
        }
        if (v == NULL) {
            /* A verb, or the first word of a two-word one. */
            for (size_t k = 0; k < cli_n_verbs; k++) {
                const char *n = cli_verbs[k].name;
                size_t gl = group ? strlen(group) : 0;

                if (group == NULL && strcmp(n, w) == 0)
                    v = &cli_verbs[k];
                else if (group == NULL && strncmp(n, w, strlen(w)) == 0 &&
                         n[strlen(w)] == ' ')
                    group = w;
                else if (group != NULL && strncmp(n, group, gl) == 0 &&
                         n[gl] == ' ' && strcmp(n + gl + 1, w) == 0)
                    v = &cli_verbs[k];
            }
            if (v == NULL && group == NULL)
                return 0;
            continue;
        }
        operands++;
    }
    if (pending != NULL) {
        /* The argument of an option. */
        if (strcmp(pending->arg, "FILE") == 0 ||
            strcmp(pending->arg, "PATH") == 0 ||
            strcmp(pending->arg, "OUT") == 0)
            printf(":files\n");
        else if (strcmp(pending->arg, "DIR") == 0)
            printf(":dirs\n");
        else if (strcmp(pending->arg, "FORMAT") == 0)
            printf("table\njson\n");
        else if (strcmp(pending->name, "state") == 0)
            printf("queued\nrunning\nsucceeded\nfailed\ntimeout\n"
                   "cancelled\nrejected\n");
        return 0;
    }
    if (!dashdash && cur[0] == '-') {
        options(v);
        return 0;
    }
    if (v == NULL && group != NULL) {
        size_t gl = strlen(group);

        for (size_t k = 0; k < cli_n_verbs; k++)
            if (strncmp(cli_verbs[k].name, group, gl) == 0 &&
                cli_verbs[k].name[gl] == ' ')
                printf("%s\n", cli_verbs[k].name + gl + 1);
        return 0;
    }
    if (v == NULL || v->fn == cmd_help) {
        if (v == NULL || operands == 0)
            first_words();
        return 0;
    }
    if (v->max_operands >= 0 && operands >= v->max_operands)
        return 0;
    switch (v->operand) {
    case CLI_JOB:
        job_ids(&cli);
        break;
    case CLI_FILE:
        printf(":files\n");
        break;
    case CLI_DIR:
        printf(":dirs\n");
        break;
    case CLI_NONE:
        break;
    }
    return 0;
}
