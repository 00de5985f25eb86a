/*
 * node.c - starting and stopping a node's plugins.
 */
#include "node.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsafe.h"

int node_mkdirs(const char *path, mode_t mode)
{
    char buf[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof buf)
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *s = buf + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;

            *s = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
            *s = c;
            if (c == '\0')
                break;
        }
    }
    return 0;
}

static int start(const struct config *cf, const char *kind,
                 const struct plugin_conf *pc, struct plugin **ret,
                 struct err *e)
{
    struct settings s = {0};
    char *path = NULL;
    int r;

    *ret = NULL;
    if ((r = plugin_find(kind, pc->plugin, cf->plugin_dir, &path, e)) < 0)
        return r;
    r = plugin_open(path, ret, e);
    free(path);
    if (r < 0)
        return r;
    if ((r = settings_copy(&pc->settings, &s)) < 0)
        err_set(e, r, "out of memory");
    else
        r = plugin_start(*ret, &s, e);
    if (r < 0) {
        plugin_close(*ret);
        *ret = NULL;
    }
    return r;
}

int node_open(const struct config *cf, struct node **ret, struct err *e)
{
    struct node *n = calloc(1, sizeof *n);
    int r;

    *ret = NULL;
    if (n == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    n->cf = cf;
    if (gethostname(n->hostname, sizeof n->hostname - 1) < 0)
        snprintf(n->hostname, sizeof n->hostname, "localhost");
    /* The state directory holds other tenants' jobs: no one else may
     * look in. */
    if ((r = node_mkdirs(cf->state_dir, 0700)) < 0) {
        err_set(e, r, "state_dir %s: %s", cf->state_dir, strerror(-r));
        goto fail;
    }
    if ((r = start(cf, "storage", &cf->storage, &n->storage, e)) < 0 ||
        (r = start(cf, "accounting", &cf->accounting, &n->accounting, e)) <
            0)
        goto fail;
    n->accelerators = calloc(cf->n_accelerators + 1, sizeof(*n->accelerators));
    if (n->accelerators == NULL) {
        r = err_set(e, -ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cf->n_accelerators; i++) {
        if ((r = start(cf, "accelerator", &cf->accelerators[i],
                       &n->accelerators[i], e)) < 0)
            goto fail;
        n->n_accelerators++;
    }
    *ret = n;
    return 0;
fail:
    node_close(n);
    return r;
}

/* Starts one plugin as `pc` says, but with its "path" in `scratch`. */
static int check_one(const struct config *cf, const char *kind,
                     const struct plugin_conf *pc, const char *scratch,
                     size_t idx, struct err *e)
{
    struct plugin_conf tmp = {.plugin = pc->plugin};
    struct plugin *p = NULL;
    char *file = NULL;
    int r;

    /* Where the plugin was asked for, when it is not there. */
    if ((r = plugin_find(kind, pc->plugin, cf->plugin_dir, &file, e)) < 0)
        return err_prefix(e, "%s (%s): ", pc->settings.name,
                          pc->settings.where);
    free(file);
    if (settings_copy(&pc->settings, &tmp.settings) < 0)
        return err_set(e, -ENOMEM, "out of memory");
    for (size_t i = 0; i < tmp.settings.n; i++) {
        struct setting *st = &tmp.settings.v[i];
        char *alt;

        /* An empty path stays, for the plugin to refuse. */
        if (strcmp(st->key, "path") != 0 || st->type != SETTING_STRING ||
            st->str == NULL || st->str[0] == '\0')
            continue;
        if (asprintf(&alt, "%s/%s-%zu", scratch, kind, idx) < 0) {
            settings_free(&tmp.settings);
            return err_set(e, -ENOMEM, "out of memory");
        }
        free(st->str);
        st->str = alt;
    }
    r = start(cf, kind, &tmp, &p, e);
    settings_free(&tmp.settings);
    plugin_close(p);
    return r;
}

int node_check(const struct config *cf, struct err *e)
{
    const char *tmpdir = getenv("TMPDIR");
    char scratch[4096];
    struct stat st;
    int r;

    if (stat(cf->state_dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return err_set(e, -ENOTDIR, "state_dir %s: not a directory",
                       cf->state_dir);
    if (tmpdir == NULL || *tmpdir == '\0')
        tmpdir = "/tmp";
    if ((size_t)snprintf(scratch, sizeof scratch, "%s/surplusd-check.XXXXXX",
                         tmpdir) >= sizeof scratch)
        return err_set(e, -ENAMETOOLONG, "TMPDIR is too long");
    if (mkdtemp(scratch) == NULL)
        return err_set(e, -errno, "cannot create a scratch directory in "
                                  "%s: %s",
                       tmpdir, strerror(errno));
    r = check_one(cf, "storage", &cf->storage, scratch, 0, e);
    if (r == 0)
        r = check_one(cf, "accounting", &cf->accounting, scratch, 0, e);
    for (size_t i = 0; r == 0 && i < cf->n_accelerators; i++)
        r = check_one(cf, "accelerator", &cf->accelerators[i], scratch, i, e);
    (void)fsafe_remove_tree(scratch);
    return r;
}

void node_close(struct node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n_accelerators; i++)
        plugin_close(n->accelerators[i]);
    free(n->accelerators);
    plugin_close(n->accounting);
    plugin_close(n->storage);
    free(n);
}

char *node_device_id(const struct node *n, size_t group,
                     const char *plugin_id)
{
    const struct plugin_conf *pc =
        group < n->cf->n_accelerators ? &n->cf->accelerators[group] : NULL;
    char *id;

    if (pc == NULL || !pc->qualified || pc->name == NULL)
        return strdup(plugin_id);
    if (asprintf(&id, "%s:%s", pc->name, plugin_id) < 0)
        return NULL;
    return id;
}

const char *node_plugin_label(const struct plugin *p)
{
    return p->ctx.label;
}
