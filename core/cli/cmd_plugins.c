/*
 * surplus plugins [--check] [--all]
 *
 * Loads every configured plugin the way the runner would, lists them (kind,
 * name, version, ABI, file) and what they report: devices, stored objects,
 * usage records.  A plugin that cannot be loaded (78) or whose query fails
 * (70) makes the command fail, naming it.  --check runs the conformance
 * checks of surplus-plugin-check on each, with scratch paths instead of the
 * configured ones.  --all also lists the plugins installed in the plugin
 * path that the configuration does not use.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "calls.h"
#include "conform.h"
#include "loader.h"
#include "units.h"

struct entry {
    const char *kind;
    struct plugin_conf *conf;
    char *path;
    struct plugin *p;
    char *error;
    bool query_failed;
};

static void entry_load(struct entry *en, const struct config *cf)
{
    struct settings s = {0};
    struct err e = {0};
    int r;

    r = plugin_find(en->kind, en->conf->plugin, cf->plugin_dir, &en->path,
                    &e);
    if (r == 0)
        r = plugin_open(en->path, &en->p, &e);
    if (r == 0 && (r = settings_copy(&en->conf->settings, &s)) < 0)
        err_set(&e, r, "out of memory");
    if (r == 0 && (r = plugin_start(en->p, &s, &e)) < 0) {
        plugin_close(en->p);
        en->p = NULL;
    }
    if (r < 0) {
        en->error = strdup(e.msg);
        cli_error("%s", e.msg);
    }
}

static size_t entries_load(const struct config *cf, struct entry **ret)
{
    size_t n = 2 + cf->n_accelerators;
    struct entry *en = calloc(n, sizeof(*en));

    if (en == NULL)
        return 0;
    en[0].kind = "storage";
    en[0].conf = (struct plugin_conf *)&cf->storage;
    en[1].kind = "accounting";
    en[1].conf = (struct plugin_conf *)&cf->accounting;
    for (size_t i = 0; i < cf->n_accelerators; i++) {
        en[2 + i].kind = "accelerator";
        en[2 + i].conf = &cf->accelerators[i];
    }
    for (size_t i = 0; i < n; i++)
        entry_load(&en[i], cf);
    *ret = en;
    return n;
}

/* ---- what each plugin reports ------------------------------------------- */

struct report {
    json_t *devices;   /* array */
    uint64_t objects, object_bytes;
    uint64_t records;
};

struct device_walk {
    struct report *rep;
    const char *plugin;
    const struct plugin_conf *conf; /* its accelerator group */
};

static int on_device(void *arg, const struct surplus_device *d)
{
    struct device_walk *w = arg;
    const char *pid = d->id ? d->id : "";
    char *id = NULL;

    /* The node's id, as surplusd, leases and the job store give it: a
     * second group of one plugin has its ids qualified by its name. */
    if (w->conf != NULL && w->conf->qualified &&
        asprintf(&id, "%s:%s", w->conf->name, pid) < 0)
        id = NULL;
    json_array_append_new(
        w->rep->devices,
        json_pack("{s:s, s:s, s:s?, s:s, s:I, s:b, s:s?, s:s?, s:s?, s:s?}",
                  "plugin", w->plugin, "id", id ? id : pid, "group",
                  w->conf ? w->conf->name : NULL, "model",
                  d->model ? d->model : "", "memory_bytes",
                  (json_int_t)d->memory_bytes, "healthy", d->healthy != 0,
                  "reason", d->reason, "pci_bus_id", d->pci_bus_id, "node",
                  d->node, "detail", d->detail));
    free(id);
    return 0;
}

static int on_object(void *arg, const char *key,
                     const struct surplus_object_info *info)
{
    struct report *rep = arg;

    (void)key;
    rep->objects++;
    rep->object_bytes += info->size;
    return 0;
}

static int on_record(void *arg, const struct surplus_usage_record *rec)
{
    (void)rec;
    ((struct report *)arg)->records++;
    return 0;
}

static json_t *entry_report(struct entry *en, struct report *rep)
{
    struct plugin *p = en->p;
    struct err e = {0};
    int r = 0;

    if (p == NULL)
        return NULL;
    if (p->kind == SURPLUS_KIND_ACCELERATOR) {
        struct device_walk w = {rep, p->ctx.label, en->conf};
        r = accelerator_discover(p, on_device, &w, &e);
        if (r == -ENODEV)
            return json_pack("{s:s, s:s}", "plugin", p->ctx.label,
                             "no_devices", e.msg);
    } else if (p->kind == SURPLUS_KIND_STORAGE) {
        r = storage_list(p, "", on_object, rep, &e);
    } else {
        struct surplus_usage_query q = {NULL, INT64_MIN, INT64_MAX};
        r = accounting_query(p, &q, on_record, rep, &e);
    }
    if (r < 0) {
        const char *msg = e.msg[0] ? e.msg : strerror(-r);

        en->query_failed = true;
        cli_error("%s: query failed: %s", p->ctx.label, msg);
        return json_pack("{s:s, s:s}", "plugin", p->ctx.label, "error", msg);
    }
    return NULL;
}

/* ---- installed but not configured (--all) ----------------------------------- */

static bool configured(const struct entry *en, size_t n, const char *kind,
                       const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(en[i].kind, kind) == 0 &&
            strcmp(en[i].conf->plugin, name) == 0)
            return true;
    return false;
}

/* One <kind>_<name>.so of `dir`, unless the configuration uses it or an
 * earlier directory of the search path holds the same plugin (the one
 * the loader would take). */
static json_t *installed_one(const struct config *cf, const struct entry *en,
                             size_t n, const char *dir, const char *file)
{
    char kind[32], name[128], *path = NULL, *found = NULL;
    const char *us = strchr(file, '_'), *dot = strrchr(file, '.');
    struct plugin *p = NULL;
    struct err e = {0};
    json_t *o = NULL;
    char abi[16];

    if (us == NULL || dot == NULL || dot < us || strcmp(dot, ".so") != 0 ||
        (size_t)(us - file) >= sizeof(kind) ||
        (size_t)(dot - us) > sizeof(name))
        return NULL;
    snprintf(kind, sizeof(kind), "%.*s", (int)(us - file), file);
    snprintf(name, sizeof(name), "%.*s", (int)(dot - us - 1), us + 1);
    if (plugin_kind_from_name(kind) < 0 || configured(en, n, kind, name) ||
        asprintf(&path, "%s/%s", dir, file) < 0)
        return NULL;
    if (plugin_find(kind, name, cf->plugin_dir, &found, &e) < 0 ||
        strcmp(found, path) != 0)
        goto out;
    if (plugin_open(path, &p, &e) == 0)
        snprintf(abi, sizeof(abi), "%u.%u", p->desc->abi_major,
                 p->desc->abi_minor);
    o = json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:s?}", "kind", kind, "name",
                  name, "version", p ? p->desc->version : NULL, "abi",
                  p ? abi : NULL, "file", path, "error", p ? NULL : e.msg);
    plugin_close(p);
out:
    free(found);
    free(path);
    return o;
}

/* Every plugin in the search path (SURPLUS_PLUGIN_PATH, then plugin_dir)
 * that the configuration does not use, in search order and by name. */
static json_t *installed_unconfigured(const struct config *cf,
                                      const struct entry *en, size_t n)
{
    const char *env = getenv("SURPLUS_PLUGIN_PATH");
    char *dirs = NULL, *save = NULL;
    json_t *list = json_array();

    if (list == NULL ||
        asprintf(&dirs, "%s%s%s", env && *env ? env : "",
                 env && *env ? ":" : "",
                 cf->plugin_dir ? cf->plugin_dir : "") < 0) {
        json_decref(list);
        return NULL;
    }
    for (char *d = strtok_r(dirs, ":", &save); d;
         d = strtok_r(NULL, ":", &save)) {
        struct dirent **names = NULL;
        int k = scandir(d, &names, NULL, alphasort);

        for (int i = 0; i < k; i++) {
            json_t *o = installed_one(cf, en, n, d, names[i]->d_name);

            if (o != NULL)
                json_array_append_new(list, o);
            free(names[i]);
        }
        free(names);
    }
    free(dirs);
    return list;
}

static void print_installed(json_t *list)
{
    size_t i;
    json_t *o;

    printf("\nINSTALLED, NOT CONFIGURED\n%-12s %-10s %-9s %-5s %s\n", "KIND",
           "NAME", "VERSION", "ABI", "FILE");
    json_array_foreach(list, i, o) {
        const char *v = json_string_value(json_object_get(o, "version"));
        const char *abi = json_string_value(json_object_get(o, "abi"));
        const char *err = json_string_value(json_object_get(o, "error"));

        printf("%-12s %-10s %-9s %-5s %s\n",
               json_string_value(json_object_get(o, "kind")),
               json_string_value(json_object_get(o, "name")), v ? v : "-",
               abi ? abi : "-",
               json_string_value(json_object_get(o, "file")));
        if (err != NULL)
            printf("  error: %s\n", err);
    }
    if (json_array_size(list) == 0)
        printf("(none)\n");
}

/* ---- output ---------------------------------------------------------------- */

static void print_table(struct entry *en, size_t n, struct report *rep,
                        json_t *notes)
{
    size_t i;
    json_t *d, *note;
    char mem[32], abi[16];

    printf("%-12s %-10s %-9s %-5s %s\n", "KIND", "NAME", "VERSION", "ABI",
           "FILE");
    for (i = 0; i < n; i++) {
        if (en[i].p != NULL)
            snprintf(abi, sizeof(abi), "%u.%u", en[i].p->desc->abi_major,
                     en[i].p->desc->abi_minor);
        printf("%-12s %-10s %-9s %-5s %s\n", en[i].kind, en[i].conf->plugin,
               en[i].p ? en[i].p->desc->version : "-",
               en[i].p ? abi : "-",
               en[i].path ? en[i].path : "(not found)");
        if (en[i].error)
            printf("  error: %s\n", en[i].error);
    }
    printf("\n%-24s %-22s %-10s %-9s %s\n", "DEVICE", "MODEL", "MEMORY",
           "HEALTH", "PLUGIN / DETAIL");
    json_array_foreach(rep->devices, i, d) {
        const char *reason = json_string_value(json_object_get(d, "reason"));
        const char *detail = json_string_value(json_object_get(d, "detail"));
        units_format_size((uint64_t)json_integer_value(
                              json_object_get(d, "memory_bytes")),
                          mem, sizeof(mem));
        printf("%-24s %-22s %-10s %-9s %s%s%s\n",
               json_string_value(json_object_get(d, "id")),
               json_string_value(json_object_get(d, "model")), mem,
               json_is_true(json_object_get(d, "healthy")) ? "healthy"
                                                           : "UNHEALTHY",
               json_string_value(json_object_get(d, "plugin")),
               detail ? ", " : "", detail ? detail : "");
        if (reason)
            printf("%-24s reason: %s\n", "", reason);
    }
    json_array_foreach(notes, i, note) {
        const char *nd = json_string_value(json_object_get(note,
                                                           "no_devices"));
        printf("%s: %s: %s\n",
               json_string_value(json_object_get(note, "plugin")),
               nd ? "no devices" : "error",
               nd ? nd : json_string_value(json_object_get(note, "error")));
    }
    if (json_array_size(rep->devices) == 0 && json_array_size(notes) == 0)
        printf("(no accelerator plugins configured)\n");
    for (i = 0; i < n; i++) {
        if (en[i].p == NULL || en[i].query_failed)
            continue;
        if (en[i].p->kind == SURPLUS_KIND_STORAGE)
            printf("\n%s: %llu objects, %s\n", en[i].p->ctx.label,
                   (unsigned long long)rep->objects,
                   units_format_size(rep->object_bytes, mem, sizeof(mem)));
        else if (en[i].p->kind == SURPLUS_KIND_ACCOUNTING)
            printf("%s: %llu usage records\n", en[i].p->ctx.label,
                   (unsigned long long)rep->records);
    }
}

static void print_json(struct entry *en, size_t n, struct report *rep,
                       json_t *notes, json_t *installed)
{
    json_t *plugins = json_array(), *o;

    for (size_t i = 0; i < n; i++) {
        char abi[16] = "";
        if (en[i].p)
            snprintf(abi, sizeof(abi), "%u.%u", en[i].p->desc->abi_major,
                     en[i].p->desc->abi_minor);
        json_array_append_new(
            plugins,
            json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?}", "kind",
                      en[i].kind, "name", en[i].conf->plugin, "version",
                      en[i].p ? en[i].p->desc->version : NULL, "abi",
                      en[i].p ? abi : NULL, "file", en[i].path, "error",
                      en[i].error));
    }
    o = json_pack("{s:o, s:O, s:O, s:{s:I, s:I}, s:{s:I}}", "plugins",
                  plugins, "devices", rep->devices, "notes", notes,
                  "storage", "objects", (json_int_t)rep->objects, "bytes",
                  (json_int_t)rep->object_bytes, "accounting", "records",
                  (json_int_t)rep->records);
    if (installed != NULL)
        json_object_set(o, "unconfigured", installed);
    json_dumpf(o, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(o);
}

static int run_checks(struct entry *en, size_t n)
{
    struct conform c = {.out = stdout};
    const char *large = getenv("SURPLUS_CHECK_LARGE_SIZE");

    if (large != NULL && units_parse_size(large, &c.large_bytes) < 0) {
        cli_error("SURPLUS_CHECK_LARGE_SIZE='%s' is not a size", large);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < n; i++) {
        struct settings base = {0};
        struct err e = {0};

        if (en[i].path == NULL) {
            printf("not ok %d - %s/%s: %s\n", ++c.n, en[i].kind,
                   en[i].conf->plugin, en[i].error);
            c.failed++;
            continue;
        }
        /* Configured paths are production data: check in scratch space. */
        if (settings_copy(&en[i].conf->settings, &base) < 0)
            return EXIT_INTERNAL;
        settings_remove(&base, "path");
        if (conform_plugin(&c, en[i].path, &base, &e) < 0) {
            cli_error("%s", e.msg);
            c.failed++;
        }
        settings_free(&base);
    }
    printf("1..%d\n# %d passed, %d failed, %d skipped\n", c.n, c.passed,
           c.failed, c.skipped);
    return c.failed ? 1 : 0;
}

int cmd_plugins(struct cli *cli, int argc, char **argv)
{
    struct report rep = {0};
    struct config *cf = NULL;
    struct entry *en = NULL;
    json_t *notes, *installed = NULL;
    bool check = false, all = false, failed = false, query_failed = false;
    size_t n;
    int r;

    (void)argc;
    (void)argv;
    check = cli_opt(cli, "check") != NULL;
    all = cli_opt(cli, "all") != NULL;
    if ((r = cli_load_config(cli, &cf)) != 0)
        return r;
    n = entries_load(cf, &en);
    if (n == 0) {
        config_free(cf);
        return EXIT_INTERNAL;
    }
    if (check) {
        /* The checks start their own instances. */
        for (size_t i = 0; i < n; i++) {
            plugin_close(en[i].p);
            en[i].p = NULL;
        }
        r = run_checks(en, n);
    } else {
        rep.devices = json_array();
        notes = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *note = entry_report(&en[i], &rep);
            if (note)
                json_array_append_new(notes, note);
            failed |= en[i].p == NULL;
            query_failed |= en[i].query_failed;
        }
        if (all && (installed = installed_unconfigured(cf, en, n)) == NULL) {
            cli_error("out of memory");
            query_failed = true;
        }
        if (cli->json) {
            print_json(en, n, &rep, notes, installed);
        } else {
            print_table(en, n, &rep, notes);
            if (installed != NULL)
                print_installed(installed);
        }
        json_decref(installed);
        json_decref(notes);
        json_decref(rep.devices);
        r = failed ? EXIT_CONFIG : query_failed ? EXIT_INTERNAL : 0;
    }
    for (size_t i = 0; i < n; i++) {
        plugin_close(en[i].p);
        free(en[i].path);
        free(en[i].error);
    }
    free(en);
    config_free(cf);
    return r;
}
