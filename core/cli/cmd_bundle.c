/*
 * surplus bundle check BUNDLE
 * surplus bundle create DIR [-o OUT]
 *
 * check applies every rule of surplus-bundle(5) without writing anything
 * and prints one summary line; create packs a directory into a
 * reproducible tar.zst and checks the result the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "cli.h"
#include "manifest.h"
#include "units.h"

#define PROGRESS_MIN (UINT64_C(64) * 1024 * 1024)

/* Rule violations, limits and unreadable input are the bundle's fault;
 * anything else is ours. */
static int exit_code(int r)
{
    return r == -ENOMEM || r == -EIO || r == -ENOTSUP ? EXIT_INTERNAL
                                                      : EXIT_BUNDLE;
}

static void print_line(const char *name, const struct bundle_summary *s)
{
    const struct job_spec *j = s->spec;
    char esc[1024], unpacked[32], mem[32], wall[32];
    double ratio = s->bundle_bytes ? (double)s->unpacked_bytes /
                                         (double)s->bundle_bytes
                                   : 0;

    printf("%s: ok: %llu entries, %s unpacked, ratio %.1f:1 (%s); job '%s': "
           "%zu command arg(s), gpus %u, cpus %u, memory %s, walltime %s\n",
           err_escape(name, esc, sizeof(esc)),
           (unsigned long long)s->entries,
           units_format_size(s->unpacked_bytes, unpacked, sizeof(unpacked)),
           ratio, s->filter, j->name, j->argc, j->resources.gpus,
           j->resources.cpus,
           units_format_size(j->resources.memory, mem, sizeof(mem)),
           units_format_duration_ms(j->resources.walltime_ms, wall,
                                    sizeof(wall)));
}

static json_t *summary_json(const char *name, const struct bundle_summary *s)
{
    const struct job_spec *j = s->spec;
    json_t *argv = json_array();

    for (size_t i = 0; i < j->argc; i++)
        json_array_append_new(argv, json_string(j->argv[i]));
    return json_pack(
        "{s:s, s:b, s:I, s:I, s:I, s:f, s:s, s:{s:s, s:o, s:i, s:i, s:I, "
        "s:I}}",
        "bundle", name, "ok", 1, "entries", (json_int_t)s->entries,
        "unpacked_bytes", (json_int_t)s->unpacked_bytes, "bundle_bytes",
        (json_int_t)s->bundle_bytes, "ratio",
        s->bundle_bytes ? (double)s->unpacked_bytes / (double)s->bundle_bytes
                        : 0.0,
        "filter", s->filter, "job", "name", j->name, "command", argv, "gpus",
        (int)j->resources.gpus, "cpus", (int)j->resources.cpus,
        "memory_bytes", (json_int_t)j->resources.memory, "walltime_ms",
        (json_int_t)j->resources.walltime_ms);
}

static void print_json(json_t *o)
{
    json_dumpf(o, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(o);
}

static int check(struct cli *cli, const char *path, const char *shown_as)
{
    struct bundle_summary s = {0};
    struct config *cf = NULL;
    struct err e = {0};
    char esc[1024];
    int r;

    if ((r = cli_load_config(cli, &cf)) != 0)
        return r;
    r = bundle_check(path, cf, &s, &e);
    config_free(cf);
    if (r < 0) {
        cli_error("%s: %s", err_escape(path, esc, sizeof(esc)), e.msg);
        return exit_code(r);
    }
    if (cli->json) {
        json_t *o = summary_json(shown_as, &s);
        if (o == NULL) {
            bundle_summary_free(&s);
            cli_error("out of memory");
            return EXIT_INTERNAL;
        }
        print_json(o);
    } else {
        print_line(shown_as, &s);
    }
    bundle_summary_free(&s);
    return 0;
}

int cmd_bundle_check(struct cli *cli, int argc, char **argv)
{
    (void)argc;
    return check(cli, argv[0], argv[0]);
}

/* The job's name, for the default output "<name>.tar.zst". */
static int manifest_name(const char *dir, const struct config *cf,
                         char **ret)
{
    struct job_spec *spec = NULL;
    struct err e = {0};
    char *text = NULL, esc[1024];
    size_t len = 0;
    ssize_t n;
    int dfd, fd, r = 0;

    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fd = dfd < 0 ? -1
                 : openat(dfd, "job.conf", O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
                                               O_NONBLOCK);
    if (fd < 0 || (text = malloc(MANIFEST_MAX_BYTES + 1)) == NULL) {
        cli_error("%s%s: %s", err_escape(dir, esc, sizeof(esc)),
                  dfd < 0 ? "" : "/job.conf", strerror(errno));
        r = EXIT_BUNDLE;
        goto out;
    }
    while (len <= MANIFEST_MAX_BYTES &&
           (n = read(fd, text + len, MANIFEST_MAX_BYTES + 1 - len)) > 0)
        len += (size_t)n;
    if (manifest_parse(text, len, "job.conf", cf, &spec, &e) < 0) {
        cli_error("%s: %s", err_escape(dir, esc, sizeof(esc)), e.msg);
        r = EXIT_BUNDLE;
        goto out;
    }
    if (asprintf(ret, "%s.tar.zst", spec->name) < 0) {
        cli_error("out of memory");
        r = EXIT_INTERNAL;
    }
out:
    job_spec_free(spec);
    free(text);
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return r;
}

struct meter {
    int last;      /* percent shown, -1 before the first */
};

static void show_progress(uint64_t done, uint64_t total, void *arg)
{
    struct meter *m = arg;
    char a[32], b[32];
    int pct = total ? (int)(done * 100 / total) : 100;

    if (total <= PROGRESS_MIN || pct == m->last)
        return;
    m->last = pct;
    fprintf(stderr, "\rpacking: %3d%% (%s of %s)", pct,
            units_format_size(done, a, sizeof(a)),
            units_format_size(total, b, sizeof(b)));
}

static int create(struct cli *cli, const char *dir, const char *out_opt)
{
    struct meter m = {.last = -1};
    struct config *cf = NULL;
    struct stat st;
    struct err e = {0};
    char *out = NULL, esc[1024];
    int r, serr;

    if ((r = cli_load_config(cli, &cf)) != 0)
        return r;
    serr = stat(dir, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (serr != 0) {
        cli_error("%s: %s", err_escape(dir, esc, sizeof(esc)),
                  strerror(serr));
        r = EXIT_BUNDLE;
        goto done;
    }
    if (out_opt == NULL && (r = manifest_name(dir, cf, &out)) != 0)
        goto done;
    r = bundle_create(dir, out_opt ? out_opt : out, cf,
                      isatty(STDERR_FILENO) ? show_progress : NULL, &m, &e);
    if (m.last >= 0)
        fputc('\n', stderr);
    if (r < 0) {
        cli_error("%s: %s", err_escape(dir, esc, sizeof(esc)), e.msg);
        r = r == -EBADMSG || r == -EFBIG || r == -EINVAL ? EXIT_BUNDLE
                                                          : EXIT_INTERNAL;
        goto done;
    }
    if (!cli->json)
        printf("%s\n", err_escape(out_opt ? out_opt : out, esc, sizeof(esc)));
    r = check(cli, out_opt ? out_opt : out, out_opt ? out_opt : out);
done:
    free(out);
    config_free(cf);
    return r;
}

int cmd_bundle_create(struct cli *cli, int argc, char **argv)
{
    (void)argc;
    return create(cli, argv[0], cli_opt(cli, "output"));
}
