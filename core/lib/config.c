#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "seccomp.h"
#include "units.h"

#ifndef SURPLUS_SYSCONF_DIR
#define SURPLUS_SYSCONF_DIR "/etc/surplus"
#endif
#ifndef SURPLUS_STATE_DIR
#define SURPLUS_STATE_DIR "/var/lib/surplus"
#endif
#ifndef SURPLUS_RUN_DIR
#define SURPLUS_RUN_DIR "/run/surplus"
#endif
#ifndef SURPLUS_PLUGIN_DIR
#define SURPLUS_PLUGIN_DIR "/usr/lib/surplus"
#endif

#define GIB (UINT64_C(1) << 30)

/* Parsing context: the file (for settings left at their defaults), its
 * directory for relative paths, and the error. */
struct cfg {
    const char *path;
    char *dir;
    struct err *e;
};

const char *config_default_path(void)
{
    return SURPLUS_SYSCONF_DIR "/surplus.conf";
}

static int cfg_bad(struct cfg *c, const config_setting_t *st,
                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int cfg_bad(struct cfg *c, const config_setting_t *st,
                   const char *fmt, ...)
{
    char where[512], msg[1024], path[200] = "";
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* A setting left out has no place of its own: the file is named. */
    if (st == NULL)
        return err_set(c->e, -EINVAL, "%s: %s",
                       c->path ? c->path : "(built-in defaults)", msg);
    settings_path(st, path, sizeof(path));
    return err_set(c->e, -EINVAL, "%s: %s: %s",
                   settings_where(st, where, sizeof(where)),
                   path, msg);
}

/* Refuses members of `group` not named in `allowed`. */
static int cfg_known(struct cfg *c, const config_setting_t *group,
                     const char *const *allowed)
{
    const config_setting_t *m = settings_first_unknown(group, allowed);

    return m != NULL ? cfg_bad(c, m, "unknown key") : 0;
}

static int cfg_group(struct cfg *c, const config_setting_t *parent,
                     const char *key, const config_setting_t **ret)
{
    const config_setting_t *st;

    *ret = NULL;
    if (parent == NULL || (st = config_setting_get_member(parent, key)) == NULL)
        return 0;
    if (!config_setting_is_group(st))
        return cfg_bad(c, st, "expected a group { ... }");
    *ret = st;
    return 0;
}

static int cfg_str(struct cfg *c, const config_setting_t *parent,
                   const char *key, char **dst)
{
    const config_setting_t *st;
    char *v;

    if (parent == NULL || (st = config_setting_get_member(parent, key)) == NULL)
        return 0;
    if (config_setting_type(st) != CONFIG_TYPE_STRING)
        return cfg_bad(c, st, "expected a string");
    v = strdup(config_setting_get_string(st));
    if (v == NULL)
        return err_set(c->e, -ENOMEM, "out of memory");
    free(*dst);
    *dst = v;
    return 0;
}

/* Makes a path from the file absolute, relative to the file's directory. */
static int cfg_path(struct cfg *c, const config_setting_t *parent,
                    const char *key, char **dst)
{
    const config_setting_t *st;
    char *abs;
    int r = cfg_str(c, parent, key, dst);

    if (r < 0 || parent == NULL ||
        (st = config_setting_get_member(parent, key)) == NULL)
        return r;
    if (**dst == '\0')
        return cfg_bad(c, st, "expected a path, not an empty string");
    if (**dst == '/' || c->dir == NULL)
        return 0;
    if (asprintf(&abs, "%s/%s", c->dir, *dst) < 0)
        return err_set(c->e, -ENOMEM, "out of memory");
    free(*dst);
    *dst = abs;
    return 0;
}

static int cfg_int(struct cfg *c, const config_setting_t *parent,
                   const char *key, int64_t min, int64_t max, int64_t *dst)
{
    const config_setting_t *st;
    int64_t v;

    if (parent == NULL || (st = config_setting_get_member(parent, key)) == NULL)
        return 0;
    if (config_setting_type(st) != CONFIG_TYPE_INT &&
        config_setting_type(st) != CONFIG_TYPE_INT64)
        return cfg_bad(c, st, "expected an integer");
    v = config_setting_get_int64(st);
    if (v < min || v > max)
        return cfg_bad(c, st, "%lld is out of range (%lld to %lld)",
                       (long long)v, (long long)min, (long long)max);
    *dst = v;
    return 0;
}

static int cfg_number(struct cfg *c, const config_setting_t *parent,
                      const char *key, double *dst)
{
    const config_setting_t *st;
    double v;

    if (parent == NULL || (st = config_setting_get_member(parent, key)) == NULL)
        return 0;
    switch (config_setting_type(st)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        v = (double)config_setting_get_int64(st);
        break;
    case CONFIG_TYPE_FLOAT:
        v = config_setting_get_float(st);
        break;
    default:
        return cfg_bad(c, st, "expected a number");
    }
    if (!(v >= 0 && v < 1e9))
        return cfg_bad(c, st, "expected a number from 0 to 1e9");
    *dst = v;
    return 0;
}

static int cfg_size(struct cfg *c, const config_setting_t *parent,
                    const char *key, uint64_t min, uint64_t *dst)
{
    const config_setting_t *st;
    uint64_t v;
    int r;

    if (parent == NULL || (st = config_setting_get_member(parent, key)) == NULL)
        return 0;
    switch (config_setting_type(st)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        if (config_setting_get_int64(st) < 0)
            return cfg_bad(c, st, "a size cannot be negative");
        v = (uint64_t)config_setting_get_int64(st);
        break;
    case CONFIG_TYPE_STRING:
        r = units_parse_size(config_setting_get_string(st), &v);
        if (r == -ERANGE)
            return cfg_bad(c, st, "'%s' is too large",
                           config_setting_get_string(st));
        if (r < 0)
            return cfg_bad(c, st, "'%s' is not a size (such as 512M or 16G)",
                           config_setting_get_string(st));
        break;
    default:
        return cfg_bad(c, st, "expected a size (such as \"16G\")");
    }
    if (v < min)
        return cfg_bad(c, st, "must be at least %llu",
                       (unsigned long long)min);
    *dst = v;
    return 0;
}

static int cfg_duration(struct cfg *c, const config_setting_t *parent,
                        const char *key, uint64_t min_ms, uint64_t *dst)
{
    const config_setting_t *st;
    uint64_t v;
    int r;

    if (parent == NULL || (st = config_setting_get_member(parent, key)) == NULL)
        return 0;
    switch (config_setting_type(st)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        if (config_setting_get_int64(st) < 0 ||
            config_setting_get_int64(st) > INT64_MAX / 1000)
            return cfg_bad(c, st, "seconds out of range");
        v = (uint64_t)config_setting_get_int64(st) * 1000;
        break;
    case CONFIG_TYPE_STRING:
        r = units_parse_duration_ms(config_setting_get_string(st), &v);
        if (r < 0)
            return cfg_bad(c, st,
                           "'%s' is not a duration (such as 90s, 10m, 1h30m "
                           "or HH:MM:SS)", config_setting_get_string(st));
        break;
    default:
        return cfg_bad(c, st, "expected a duration (such as \"10m\")");
    }
    if (v < min_ms)
        return cfg_bad(c, st, "must be at least %llu ms",
                       (unsigned long long)min_ms);
    *dst = v;
    return 0;
}

/*
 * The `path` the core passes a storage or accounting plugin whose group
 * sets none: its own, named after its kind and name, so that switching
 * plugins never hands a new one the old one's files.  The two plugins
 * that shipped with a shared default keep it, for installations that rely
 * on it: storage/local state_dir/store, accounting/sqlite
 * state_dir/ledger.db.
 */
static char *plugin_default_path(const char *state_dir, const char *kind,
                                 const char *plugin)
{
    char *p = NULL;
    int r;

    if (strcmp(kind, "storage") == 0 && strcmp(plugin, "local") == 0)
        r = asprintf(&p, "%s/store", state_dir);
    else if (strcmp(kind, "accounting") == 0 && strcmp(plugin, "sqlite") == 0)
        r = asprintf(&p, "%s/ledger.db", state_dir);
    else
        r = asprintf(&p, "%s/%s-%s", state_dir, kind, plugin);
    return r < 0 ? NULL : p;
}

static const char *const plugin_skip[] = {"plugin", NULL};
/* An accelerator group's `name` is the core's, not the plugin's. */
static const char *const accelerator_skip[] = {"plugin", "name", NULL};

/* `state_dir` non-NULL: a group without `path` is given its default.
 * `skip`: the group's keys that are not the plugin's settings. */
static int cfg_plugin(struct cfg *c, const config_setting_t *group,
                      const char *name, struct plugin_conf *pc,
                      const char *default_plugin, const char *state_dir,
                      const char *const *skip)
{
    char *path_default = NULL;
    const config_setting_t *st;
    int r;

    pc->plugin = strdup(default_plugin ? default_plugin : "");
    if (pc->plugin == NULL)
        return err_set(c->e, -ENOMEM, "out of memory");
    if (group != NULL) {
        st = config_setting_get_member(group, "plugin");
        if (st == NULL && default_plugin == NULL)
            return cfg_bad(c, group, "'plugin' is required");
        r = cfg_str(c, group, "plugin", &pc->plugin);
        if (r < 0)
            return r;
        if (*pc->plugin == '\0' || strspn(pc->plugin,
                                          "abcdefghijklmnopqrstuvwxyz"
                                          "0123456789-") != strlen(pc->plugin))
            return cfg_bad(c, st, "plugin name '%s' is not valid "
                                  "(lower-case letters, digits and '-')",
                           pc->plugin);
        r = settings_from_config(group, name, skip, &pc->settings, c->e);
        if (r < 0)
            return r;
    } else {
        pc->settings.name = strdup(name);
        pc->settings.where = strdup("(default)");
        if (pc->settings.name == NULL || pc->settings.where == NULL)
            return err_set(c->e, -ENOMEM, "out of memory");
    }
    /* Paths below state_dir follow state_dir, relative paths the file. */
    for (size_t i = 0; i < pc->settings.n; i++) {
        struct setting *s = &pc->settings.v[i];
        char *abs;

        if (strcmp(s->key, "path") != 0 || s->type != SETTING_STRING ||
            s->str[0] == '/' || s->str[0] == '\0' || c->dir == NULL)
            continue;
        if (asprintf(&abs, "%s/%s", c->dir, s->str) < 0)
            return err_set(c->e, -ENOMEM, "out of memory");
        free(s->str);
        s->str = abs;
    }
    if (state_dir == NULL ||
        (group != NULL && config_setting_get_member(group, "path") != NULL))
        return 0;
    if ((path_default = plugin_default_path(state_dir, name,
                                            pc->plugin)) == NULL ||
        settings_set_string(&pc->settings, "path", path_default, "(default)",
                            true) < 0) {
        free(path_default);
        return err_set(c->e, -ENOMEM, "out of memory");
    }
    free(path_default);
    return 0;
}

static int cfg_storage_accounting(struct cfg *c, const config_setting_t *root,
                                  struct config *cf)
{
    const config_setting_t *g;
    int r;

    r = cfg_group(c, root, "storage", &g);
    if (r < 0)
        return r;
    r = cfg_plugin(c, g, "storage", &cf->storage, "local", cf->state_dir,
                   plugin_skip);
    if (r < 0)
        return r;
    r = cfg_group(c, root, "accounting", &g);
    if (r < 0)
        return r;
    return cfg_plugin(c, g, "accounting", &cf->accounting, "sqlite",
                      cf->state_dir, plugin_skip);
}

/*
 * accelerators[i]'s name, which qualifies the node's ids of its devices:
 * two groups of one plugin (two models of simulated devices, say) each
 * have a "sim-0", and a lease, its lock and drain files and the job
 * store's devices need one id per device on the node.  The first group of
 * a plugin without a `name` keeps the plugin's ids, so that a node with
 * one group of each plugin keeps the ids it had.
 */
static int cfg_accelerator_name(struct cfg *c, const config_setting_t *g,
                                struct config *cf, size_t i)
{
    struct plugin_conf *pc = &cf->accelerators[i];
    const config_setting_t *st = config_setting_get_member(g, "name");
    size_t k = 1;
    int r;

    for (size_t j = 0; j < i; j++)
        k += strcmp(cf->accelerators[j].plugin, pc->plugin) == 0;
    if (st != NULL) {
        if ((r = cfg_str(c, g, "name", &pc->name)) < 0)
            return r;
        if (*pc->name == '\0' || strlen(pc->name) > 32 ||
            strspn(pc->name, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
                strlen(pc->name))
            return cfg_bad(c, st, "accelerator group name '%s' is not valid "
                                  "(1 to 32 lower-case letters, digits and "
                                  "'-')",
                           pc->name);
        pc->qualified = true;
    } else {
        if (k == 1)
            pc->name = strdup(pc->plugin);
        else if (asprintf(&pc->name, "%s%zu", pc->plugin, k) < 0)
            pc->name = NULL;
        if (pc->name == NULL)
            return err_set(c->e, -ENOMEM, "out of memory");
        pc->qualified = k > 1;
    }
    for (size_t j = 0; j < i; j++)
        if (strcmp(cf->accelerators[j].name, pc->name) == 0)
            return cfg_bad(c, st != NULL ? st : g,
                           "accelerators[%zu] and accelerators[%zu] are both "
                           "named '%s'; device ids must be unique on the node "
                           "(give one a different 'name')",
                           j, i, pc->name);
    return 0;
}

static int cfg_accelerators(struct cfg *c, const config_setting_t *root,
                            struct config *cf)
{
    const config_setting_t *list = config_setting_get_member(root,
                                                             "accelerators");
    int n;

    if (list == NULL)
        return 0;
    if (!config_setting_is_list(list) && !config_setting_is_array(list))
        return cfg_bad(c, list, "expected a list ( { plugin = \"...\"; } )");
    n = config_setting_length(list);
    cf->accelerators = calloc((size_t)n + 1, sizeof(*cf->accelerators));
    if (cf->accelerators == NULL)
        return err_set(c->e, -ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        char name[64];
        int r;

        if (!config_setting_is_group(g))
            return cfg_bad(c, g, "expected a group { plugin = \"...\"; }");
        snprintf(name, sizeof(name), "accelerators[%d]", i);
        cf->n_accelerators++;
        r = cfg_plugin(c, g, name, &cf->accelerators[i], NULL, NULL,
                       accelerator_skip);
        if (r < 0 || (r = cfg_accelerator_name(c, g, cf, (size_t)i)) < 0)
            return r;
    }
    return 0;
}

static int cfg_limits(struct cfg *c, const config_setting_t *root,
                      struct config *cf)
{
    static const char *const keys[] = {"max_bundle_bytes",
                                       "max_unpacked_bytes", "max_entries",
                                       "max_walltime", "max_output_bytes",
                                       "max_log_bytes", NULL};
    const config_setting_t *g;
    int64_t entries = (int64_t)cf->limits.max_entries;
    int r;

    if ((r = cfg_group(c, root, "limits", &g)) < 0 || g == NULL)
        return r;
    if ((r = cfg_known(c, g, keys)) < 0 ||
        (r = cfg_size(c, g, "max_bundle_bytes", 1024,
                      &cf->limits.max_bundle_bytes)) < 0 ||
        (r = cfg_size(c, g, "max_unpacked_bytes", 1024,
                      &cf->limits.max_unpacked_bytes)) < 0 ||
        (r = cfg_int(c, g, "max_entries", 1, INT32_MAX, &entries)) < 0 ||
        (r = cfg_duration(c, g, "max_walltime", 1000,
                          &cf->limits.max_walltime_ms)) < 0 ||
        (r = cfg_size(c, g, "max_output_bytes", 0,
                      &cf->limits.max_output_bytes)) < 0 ||
        (r = cfg_size(c, g, "max_log_bytes", 4096,
                      &cf->limits.max_log_bytes)) < 0)
        return r;
    cf->limits.max_entries = (uint64_t)entries;
    return 0;
}

/* sandbox.seccomp and sandbox.seccomp_allow: the jobs' system call
 * filter, or none, and the groups of calls it gives back. */
static int cfg_seccomp(struct cfg *c, const config_setting_t *g,
                       struct config *cf)
{
    const config_setting_t *list = config_setting_get_member(g,
                                                             "seccomp_allow");
    char *mode = NULL;
    int r;

    if ((r = cfg_str(c, g, "seccomp", &mode)) < 0)
        return r;
    if (mode != NULL) {
        bool none = strcmp(mode, "none") == 0;

        if (!none && strcmp(mode, "default") != 0) {
            free(mode);
            return cfg_bad(c, config_setting_get_member(g, "seccomp"),
                           "expected \"default\" or \"none\"");
        }
        cf->sandbox.seccomp_off = none;
        free(mode);
    }
    if (list == NULL)
        return 0;
    if (!config_setting_is_array(list) && !config_setting_is_list(list))
        return cfg_bad(c, list, "expected a list of names, such as "
                                "[\"io_uring\"]");
    for (int i = 0; i < config_setting_length(list); i++) {
        const config_setting_t *st = config_setting_get_elem(list,
                                                             (unsigned)i);
        unsigned bit;

        if (config_setting_type(st) != CONFIG_TYPE_STRING)
            return cfg_bad(c, st, "expected a string");
        bit = sandbox_seccomp_allow_bit(config_setting_get_string(st));
        if (bit == 0)
            return cfg_bad(c, st, "unknown group '%s' (expected %s)",
                           config_setting_get_string(st),
                           sandbox_seccomp_allow_names());
        cf->sandbox.seccomp_allow |= bit;
    }
    if (cf->sandbox.seccomp_off && cf->sandbox.seccomp_allow)
        return cfg_bad(c, list, "has no effect with seccomp = \"none\"");
    return 0;
}

static int cfg_sandbox(struct cfg *c, const config_setting_t *root,
                       struct config *cf)
{
    static const char *const keys[] = {"network", "uid_base", "kill_grace",
                                       "pids", "seccomp", "seccomp_allow",
                                       "limits", NULL};
    const config_setting_t *g;
    char *network = NULL, *limits = NULL;
    int64_t uid_base = cf->sandbox.uid_base;
    int64_t pids = (int64_t)cf->sandbox.pids;
    int r;

    if ((r = cfg_group(c, root, "sandbox", &g)) < 0 || g == NULL)
        return r;
    if ((r = cfg_known(c, g, keys)) < 0 ||
        (r = cfg_str(c, g, "network", &network)) < 0)
        return r;
    if (network != NULL) {
        if (strcmp(network, "none") != 0 && strcmp(network, "host") != 0) {
            free(network);
            return cfg_bad(c, config_setting_get_member(g, "network"),
                           "expected \"none\" or \"host\"");
        }
        cf->sandbox.network_host = strcmp(network, "host") == 0;
        free(network);
    }
    if ((r = cfg_str(c, g, "limits", &limits)) < 0)
        return r;
    if (limits != NULL) {
        if (strcmp(limits, "enforce") != 0 &&
            strcmp(limits, "best-effort") != 0) {
            free(limits);
            return cfg_bad(c, config_setting_get_member(g, "limits"),
                           "expected \"enforce\" or \"best-effort\"");
        }
        cf->sandbox.best_effort = strcmp(limits, "best-effort") == 0;
        free(limits);
    }
    /* Each job gets uid_base + slot; keep the whole range clear of system
     * accounts and of the top of the uid space (65534 is nobody). */
    if ((r = cfg_int(c, g, "uid_base", 65536, UINT32_MAX - 65536 - 1,
                     &uid_base)) < 0 ||
        (r = cfg_duration(c, g, "kill_grace", 0,
                          &cf->sandbox.kill_grace_ms)) < 0 ||
        (r = cfg_int(c, g, "pids", 16, INT32_MAX, &pids)) < 0 ||
        (r = cfg_seccomp(c, g, cf)) < 0)
        return r;
    cf->sandbox.uid_base = (uint32_t)uid_base;
    cf->sandbox.pids = (uint64_t)pids;
    return 0;
}

static int cfg_listen_valid(const char *s)
{
    const char *colon = strrchr(s, ':');
    char *end;
    long port;

    if (*s == '\0')
        return 1;
    if (colon == NULL || colon == s)
        return 0;
    if (s[0] == '[' && colon[-1] != ']')
        return 0;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    return errno == 0 && *end == '\0' && colon[1] != '\0' && port > 0 &&
           port <= 65535;
}

/* The form of a token's sha256 in the file: sha256sum's output. */
static bool sha256_hex_valid(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static int cfg_api(struct cfg *c, const config_setting_t *root,
                   struct config *cf)
{
    static const char *const keys[] = {
        "socket", "listen", "tls_cert", "tls_key",
        "max_connections_per_client", "max_connections", "idle_timeout",
        "max_followers_per_tenant", "max_downloads_per_tenant",
        "metrics_token_sha256", NULL};
    int64_t per_client = cf->api.max_connections_per_client,
            total = cf->api.max_connections,
            followers = cf->api.max_followers_per_tenant,
            downloads = cf->api.max_downloads_per_tenant;
    const config_setting_t *g;
    int r;

    if ((r = cfg_group(c, root, "api", &g)) < 0 || g == NULL)
        return r;
    if ((r = cfg_known(c, g, keys)) < 0 ||
        (r = cfg_path(c, g, "socket", &cf->api.socket)) < 0 ||
        (r = cfg_str(c, g, "listen", &cf->api.listen)) < 0 ||
        (r = cfg_str(c, g, "tls_cert", &cf->api.tls_cert)) < 0 ||
        (r = cfg_str(c, g, "tls_key", &cf->api.tls_key)) < 0 ||
        (r = cfg_int(c, g, "max_connections_per_client", 1, 65536,
                     &per_client)) < 0 ||
        (r = cfg_int(c, g, "max_connections", 0, 1 << 20, &total)) < 0 ||
        (r = cfg_duration(c, g, "idle_timeout", 1000,
                          &cf->api.idle_timeout_ms)) < 0 ||
        (r = cfg_int(c, g, "max_followers_per_tenant", 1, 65536,
                     &followers)) < 0 ||
        (r = cfg_int(c, g, "max_downloads_per_tenant", 1, 65536,
                     &downloads)) < 0 ||
        (r = cfg_str(c, g, "metrics_token_sha256",
                     &cf->api.metrics_token_sha256)) < 0)
        return r;
    if (cf->api.metrics_token_sha256 != NULL &&
        !sha256_hex_valid(cf->api.metrics_token_sha256))
        return cfg_bad(c, config_setting_get_member(g, "metrics_token_sha256"),
                       "expected 64 lower-case hex digits (sha256sum of "
                       "the token)");
    /* libmicrohttpd counts its timeout in whole seconds. */
    if (cf->api.idle_timeout_ms > UINT64_C(86400) * 1000)
        return cfg_bad(c, config_setting_get_member(g, "idle_timeout"),
                       "must be at most 1 day");
    /* Each connection may hold a second descriptor (a log, an output);
     * fewer than 8 would leave no room for root beside one client. */
    if (total != 0 && total < 8)
        return cfg_bad(c, config_setting_get_member(g, "max_connections"),
                       "must be 0 (from the open-file limit) or at least 8");
    cf->api.max_connections_per_client = (uint32_t)per_client;
    cf->api.max_connections = (uint32_t)total;
    cf->api.max_followers_per_tenant = (uint32_t)followers;
    cf->api.max_downloads_per_tenant = (uint32_t)downloads;
    /* Checked where it is set.  The default (from --runstatedir) is
     * checked by surplusd when it listens, so that a long build or
     * install prefix does not stop the CLI from loading this file. */
    if (config_setting_get_member(g, "socket") != NULL &&
        strlen(cf->api.socket) >= 108)
        return cfg_bad(c, config_setting_get_member(g, "socket"),
                       "'%s' is %zu bytes; a Unix socket path must be "
                       "shorter than 108 bytes",
                       cf->api.socket, strlen(cf->api.socket));
    if (!cfg_listen_valid(cf->api.listen))
        return cfg_bad(c, config_setting_get_member(g, "listen"),
                       "expected \"HOST:PORT\" or \"[V6ADDR]:PORT\"");
    if (*cf->api.listen && (!*cf->api.tls_cert || !*cf->api.tls_key))
        return cfg_bad(c, config_setting_get_member(g, "listen"),
                       "TCP listening requires tls_cert and tls_key");
    for (int i = 0; i < 2; i++) {
        const char *key = i ? "tls_key" : "tls_cert";
        char **dst = i ? &cf->api.tls_key : &cf->api.tls_cert;
        if (**dst && (r = cfg_path(c, g, key, dst)) < 0)
            return r;
    }
    return 0;
}

static bool tenant_name_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64 || !(islower((unsigned char)s[0]) ||
                              isdigit((unsigned char)s[0])))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* Names the core gives callers of its own: a tenant with one of them
 * would see root's jobs and usage. */
static const char *const tenant_reserved[] = {"local", "root", "admin",
                                              "surplus", "system", NULL};

int config_tenant_name_check(const char *name, struct err *e)
{
    char esc[96];

    if (!tenant_name_valid(name))
        return err_set(e, -EINVAL,
                       "tenant name '%s' is not valid (1-64 of a-z, 0-9, "
                       "'_' and '-', starting with a letter or digit)",
                       err_escape(name, esc, sizeof esc));
    for (const char *const *rn = tenant_reserved; *rn; rn++)
        if (strcmp(*rn, name) == 0)
            return err_set(e, -EINVAL,
                           "tenant name '%s' is reserved (surplus uses it "
                           "for %s)",
                           name,
                           strcmp(name, "local") == 0
                               ? "root's own jobs: the socket and surplus run"
                               : "itself");
    return 0;
}

static int cfg_tenant(struct cfg *c, const config_setting_t *g,
                      struct config *cf, struct tenant_conf *t)
{
    static const char *const keys[] = {"name", "token_sha256", "max_gpus",
                                       "max_queued", "max_running",
                                       "retention", "storage_quota", NULL};
    int r;

    t->max_gpus = INT32_MAX;
    t->max_queued = 10000;
    if (!config_setting_is_group(g))
        return cfg_bad(c, g, "expected a group { name = \"...\"; ... }");
    if ((r = cfg_known(c, g, keys)) < 0 ||
        (r = cfg_str(c, g, "name", &t->name)) < 0 ||
        (r = cfg_str(c, g, "token_sha256", &t->token_sha256)) < 0 ||
        (r = cfg_int(c, g, "max_gpus", 0, INT32_MAX, &t->max_gpus)) < 0 ||
        (r = cfg_int(c, g, "max_queued", 0, INT32_MAX, &t->max_queued)) < 0 ||
        (r = cfg_int(c, g, "max_running", 0, INT32_MAX, &t->max_running)) < 0 ||
        (r = cfg_duration(c, g, "retention", 0, &t->retention_ms)) < 0 ||
        (r = cfg_size(c, g, "storage_quota", 0, &t->storage_quota)) < 0)
        return r;
    t->has_retention = config_setting_get_member(g, "retention") != NULL;
    t->has_storage_quota =
        config_setting_get_member(g, "storage_quota") != NULL;
    if (t->name == NULL)
        return cfg_bad(c, g, "'name' is required");
    {
        struct err ne = {0};

        if (config_tenant_name_check(t->name, &ne) < 0)
            return cfg_bad(c, config_setting_get_member(g, "name"), "%s",
                           ne.msg);
    }
    for (size_t i = 0; i + 1 < cf->n_tenants; i++)
        if (strcmp(cf->tenants[i].name, t->name) == 0)
            return cfg_bad(c, config_setting_get_member(g, "name"),
                           "tenant '%s' is defined twice", t->name);
    if (t->token_sha256 != NULL && !sha256_hex_valid(t->token_sha256))
        return cfg_bad(c, config_setting_get_member(g, "token_sha256"),
                       "expected 64 lower-case hex digits (the output "
                       "of: printf %%s TOKEN | sha256sum; or use "
                       "surplus token new)");
    /* A token names one tenant: with two, the last would silently win
     * and bill the first tenant's jobs to the other. */
    for (size_t i = 0; t->token_sha256 && i + 1 < cf->n_tenants; i++)
        if (cf->tenants[i].token_sha256 &&
            strcmp(cf->tenants[i].token_sha256, t->token_sha256) == 0)
            return cfg_bad(c, config_setting_get_member(g, "token_sha256"),
                           "tenant '%s' has the same token as tenant '%s'; "
                           "each tenant needs a token of its own",
                           t->name, cf->tenants[i].name);
    /* The metrics token reads /metrics only: a tenant's would be both. */
    if (t->token_sha256 && cf->api.metrics_token_sha256 &&
        strcmp(t->token_sha256, cf->api.metrics_token_sha256) == 0)
        return cfg_bad(c, config_setting_get_member(g, "token_sha256"),
                       "tenant '%s' has the same token as "
                       "api.metrics_token_sha256; the metrics token must be "
                       "one of its own",
                       t->name);
    return 0;
}

static int cfg_tenants(struct cfg *c, const config_setting_t *root,
                       struct config *cf)
{
    const config_setting_t *list = config_setting_get_member(root, "tenants");
    int n, r;

    if (list == NULL)
        return 0;
    if (!config_setting_is_list(list))
        return cfg_bad(c, list, "expected a list ( { name = \"...\"; } )");
    n = config_setting_length(list);
    cf->tenants = calloc((size_t)n + 1, sizeof(*cf->tenants));
    if (cf->tenants == NULL)
        return err_set(c->e, -ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        cf->n_tenants++;
        r = cfg_tenant(c, config_setting_get_elem(list, (unsigned)i), cf,
                       &cf->tenants[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

static int cfg_pricing(struct cfg *c, const config_setting_t *root,
                       struct config *cf)
{
    static const char *const keys[] = {"currency", "cpu_hour", "gpu", NULL};
    static const char *const gpu_keys[] = {"model", "hour", NULL};
    const config_setting_t *g, *list;
    int n, r;

    if ((r = cfg_group(c, root, "pricing", &g)) < 0 || g == NULL)
        return r;
    if ((r = cfg_known(c, g, keys)) < 0 ||
        (r = cfg_str(c, g, "currency", &cf->pricing.currency)) < 0 ||
        (r = cfg_number(c, g, "cpu_hour", &cf->pricing.cpu_hour)) < 0)
        return r;
    if (strlen(cf->pricing.currency) != 3 ||
        strspn(cf->pricing.currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
        return cfg_bad(c, config_setting_get_member(g, "currency"),
                       "expected an ISO 4217 code such as \"USD\"");
    list = config_setting_get_member(g, "gpu");
    if (list == NULL)
        return 0;
    if (!config_setting_is_list(list))
        return cfg_bad(c, list, "expected a list ( { model = \"H100*\"; "
                                "hour = 2.10; } )");
    n = config_setting_length(list);
    cf->pricing.gpu = calloc((size_t)n + 1, sizeof(*cf->pricing.gpu));
    if (cf->pricing.gpu == NULL)
        return err_set(c->e, -ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        struct gpu_price *gp = &cf->pricing.gpu[i];

        cf->pricing.n_gpu++;
        if (!config_setting_is_group(e))
            return cfg_bad(c, e, "expected a group { model = ...; hour = "
                                 "...; }");
        if ((r = cfg_known(c, e, gpu_keys)) < 0 ||
            (r = cfg_str(c, e, "model", &gp->model)) < 0 ||
            (r = cfg_number(c, e, "hour", &gp->hour)) < 0)
            return r;
        if (gp->model == NULL || *gp->model == '\0')
            return cfg_bad(c, e, "'model' is required (a glob, \"*\" for "
                                 "any)");
        if (config_setting_get_member(e, "hour") == NULL)
            return cfg_bad(c, e, "'hour' is required");
    }
    return 0;
}

static int cfg_top(struct cfg *c, const config_setting_t *root,
                   struct config *cf)
{
    static const char *const keys[] = {
        "state_dir", "plugin_dir", "log_level", "storage", "accounting",
        "accelerators", "limits", "sandbox", "api", "tenants", "pricing",
        "retention", "storage_quota", NULL};
    char *level = NULL;
    int r;

    if ((r = cfg_known(c, root, keys)) < 0 ||
        (r = cfg_path(c, root, "state_dir", &cf->state_dir)) < 0 ||
        (r = cfg_path(c, root, "plugin_dir", &cf->plugin_dir)) < 0 ||
        (r = cfg_str(c, root, "log_level", &level)) < 0 ||
        (r = cfg_duration(c, root, "retention", 0, &cf->retention_ms)) < 0 ||
        (r = cfg_size(c, root, "storage_quota", 0, &cf->storage_quota)) < 0)
        return r;
    if (level != NULL) {
        cf->log_level = log_level_from_name(level);
        free(level);
        if (cf->log_level < 0)
            return cfg_bad(c, config_setting_get_member(root, "log_level"),
                           "expected error, warning, notice, info or debug");
    }
    if ((r = cfg_storage_accounting(c, root, cf)) < 0 ||
        (r = cfg_accelerators(c, root, cf)) < 0 ||
        (r = cfg_limits(c, root, cf)) < 0 ||
        (r = cfg_sandbox(c, root, cf)) < 0 ||
        (r = cfg_api(c, root, cf)) < 0 ||
        (r = cfg_tenants(c, root, cf)) < 0 ||
        (r = cfg_pricing(c, root, cf)) < 0)
        return r;
    if (cf->limits.max_bundle_bytes > cf->limits.max_unpacked_bytes)
        log_msg(SURPLUS_LOG_DEBUG, "max_bundle_bytes exceeds "
                                   "max_unpacked_bytes");
    return 0;
}

static struct config *config_defaults(void)
{
    struct config *cf = calloc(1, sizeof(*cf));

    if (cf == NULL)
        return NULL;
    cf->state_dir = strdup(SURPLUS_STATE_DIR);
    cf->plugin_dir = strdup(SURPLUS_PLUGIN_DIR);
    cf->log_level = SURPLUS_LOG_INFO;
    cf->retention_ms = UINT64_C(30) * 24 * 3600 * 1000;
    cf->limits.max_bundle_bytes = 2 * GIB;
    cf->limits.max_unpacked_bytes = 16 * GIB;
    cf->limits.max_entries = 100000;
    cf->limits.max_walltime_ms = UINT64_C(24) * 3600 * 1000;
    cf->sandbox.uid_base = 200000;
    cf->sandbox.kill_grace_ms = 10000;
    cf->sandbox.pids = 4096;
    cf->limits.max_output_bytes = UINT64_C(16) << 30;
    cf->limits.max_log_bytes = UINT64_C(64) << 20;
    cf->api.socket = strdup(SURPLUS_RUN_DIR "/surplus.sock");
    cf->api.listen = strdup("");
    cf->api.tls_cert = strdup("");
    cf->api.tls_key = strdup("");
    cf->api.max_connections_per_client = 32;
    cf->api.max_connections = 0;
    cf->api.idle_timeout_ms = 30000;
    cf->api.max_followers_per_tenant = 16;
    cf->api.max_downloads_per_tenant = 8;
    cf->pricing.currency = strdup("USD");
    if (!cf->state_dir || !cf->plugin_dir || !cf->api.socket ||
        !cf->api.listen || !cf->api.tls_cert || !cf->api.tls_key ||
        !cf->pricing.currency) {
        config_free(cf);
        return NULL;
    }
    return cf;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char cwd[PATH_MAX], *d;

    if (slash == path)
        return strdup("/");
    if (slash != NULL && path[0] == '/')
        return strndup(path, (size_t)(slash - path));
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    if (slash == NULL)
        return strdup(cwd);
    if (asprintf(&d, "%s/%.*s", cwd, (int)(slash - path), path) < 0)
        return NULL;
    return d;
}

int config_load(const char *path, struct config **ret, struct err *e)
{
    struct config *cf = config_defaults();
    struct cfg c = {.e = e};
    config_t lc;
    int r;

    if (cf == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    if (path == NULL && access(config_default_path(), F_OK) == 0)
        path = config_default_path();
    if (path == NULL) {
        /* No file at all: built-in defaults, with implicit plugin paths. */
        r = cfg_storage_accounting(&c, NULL, cf);
        if (r < 0) {
            config_free(cf);
            return r;
        }
        *ret = cf;
        return 0;
    }
    if (access(path, R_OK) < 0) {
        r = -errno;
        config_free(cf);
        return err_set(e, r, "%s: cannot read configuration: %s", path,
                       strerror(-r));
    }
    cf->path = strdup(path);
    c.path = path;
    c.dir = dir_of(path);
    if (cf->path == NULL || c.dir == NULL) {
        free(c.dir);
        config_free(cf);
        return err_set(e, -ENOMEM, "out of memory");
    }
    config_init(&lc);
    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        r = err_set(e, -EINVAL, "%s:%d: %s",
                    config_error_file(&lc) ? config_error_file(&lc) : path,
                    config_error_line(&lc), config_error_text(&lc));
    } else {
        r = cfg_top(&c, config_root_setting(&lc), cf);
    }
    config_destroy(&lc);
    free(c.dir);
    if (r < 0) {
        config_free(cf);
        return r;
    }
    *ret = cf;
    return 0;
}

static void plugin_conf_free(struct plugin_conf *pc)
{
    free(pc->plugin);
    free(pc->name);
    settings_free(&pc->settings);
}

void config_free(struct config *cf)
{
    if (cf == NULL)
        return;
    free(cf->path);
    free(cf->state_dir);
    free(cf->plugin_dir);
    plugin_conf_free(&cf->storage);
    plugin_conf_free(&cf->accounting);
    for (size_t i = 0; i < cf->n_accelerators; i++)
        plugin_conf_free(&cf->accelerators[i]);
    free(cf->accelerators);
    free(cf->api.socket);
    free(cf->api.listen);
    free(cf->api.tls_cert);
    free(cf->api.tls_key);
    free(cf->api.metrics_token_sha256);
    for (size_t i = 0; i < cf->n_tenants; i++) {
        free(cf->tenants[i].name);
        free(cf->tenants[i].token_sha256);
    }
    free(cf->tenants);
    free(cf->pricing.currency);
    for (size_t i = 0; i < cf->pricing.n_gpu; i++)
        free(cf->pricing.gpu[i].model);
    free(cf->pricing.gpu);
    free(cf);
}
