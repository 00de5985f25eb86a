/*
 * libFuzzer target: job.conf parsing.  Any input must either parse into a
 * spec that satisfies the documented limits or be refused with a message;
 * never crash, leak or read a host file (an @include must not get through).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "manifest.h"

static struct config *cf;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct err e = {0};
    char path[] = "/tmp/surplus-fuzz-conf.XXXXXX";
    int fd = mkstemp(path);

    (void)argc;
    (void)argv;
    if (fd < 0)
        abort();
    static const char text[] =
        "limits = { max_walltime = \"2h\"; max_unpacked_bytes = \"1G\"; };\n";

    if (write(fd, text, sizeof(text) - 1) != (ssize_t)sizeof(text) - 1)
        abort();
    close(fd);
    if (config_load(path, &cf, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        abort();
    }
    unlink(path);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct job_spec *spec = NULL;
    struct err e = {0};
    int r = manifest_parse((const char *)data, size, "job.conf", cf, &spec,
                           &e);

    if (r == 0) {
        /* What the runner relies on after a successful parse. */
        if (spec == NULL || spec->argc == 0 || spec->argv[0] == NULL ||
            spec->argv[spec->argc] != NULL || spec->name == NULL ||
            spec->resources.walltime_ms == 0 ||
            spec->resources.walltime_ms > cf->limits.max_walltime_ms ||
            spec->resources.disk > cf->limits.max_unpacked_bytes ||
            strcmp(spec->name, "pwned-by-include") == 0)
            abort();
        for (size_t i = 0; i < spec->n_env; i++)
            if (strchr(spec->env[i], '=') == NULL)
                abort();
        job_spec_free(spec);
    } else if (e.msg[0] == '\0' || spec != NULL) {
        abort(); /* every refusal says why, and leaves nothing behind */
    }
    return 0;
}
