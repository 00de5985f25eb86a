#include "loader.h"

#include <dlfcn.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The size of the descriptor as ABI 1.0 defined it: the least a plugin of
 * this major version may declare; 1.1 appended `flags`. */
#define DESC_SIZE_1_0 offsetof(struct surplus_plugin, flags)
#define DESC_SIZE_1_1 sizeof(struct surplus_plugin)

static const char *const kind_names[] = {
    [SURPLUS_KIND_STORAGE] = "storage",
    [SURPLUS_KIND_ACCOUNTING] = "accounting",
    [SURPLUS_KIND_ACCELERATOR] = "accelerator",
};

const char *plugin_kind_name(enum surplus_plugin_kind kind)
{
    if (kind >= SURPLUS_KIND_STORAGE && kind <= SURPLUS_KIND_ACCELERATOR)
        return kind_names[kind];
    return NULL;
}

int plugin_kind_from_name(const char *name)
{
    for (int k = SURPLUS_KIND_STORAGE; k <= SURPLUS_KIND_ACCELERATOR; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    return -EINVAL;
}

static bool plugin_name_valid(const char *name)
{
    size_t n = 0;

    if (name == NULL || !((*name >= 'a' && *name <= 'z') ||
                          (*name >= '0' && *name <= '9')))
        return false;
    for (const char *p = name; *p; p++, n++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-'))
            return false;
    return n <= 64;
}

int plugin_find(const char *kind, const char *name, const char *plugin_dir,
                char **ret_path, struct err *e)
{
    const char *env = getenv("SURPLUS_PLUGIN_PATH");
    char looked[1024] = "";
    char *dirs = NULL, *save = NULL, *path;
    size_t used = 0;

    if (plugin_kind_from_name(kind) < 0 || !plugin_name_valid(name))
        return err_set(e, -EINVAL,
                       "plugin name '%s' is not valid (lower-case letters, "
                       "digits and '-')", name);
    if (asprintf(&dirs, "%s%s%s", env && *env ? env : "",
                 env && *env ? ":" : "", plugin_dir ? plugin_dir : "") < 0)
        return err_set(e, -ENOMEM, "out of memory");
    for (char *d = strtok_r(dirs, ":", &save); d;
         d = strtok_r(NULL, ":", &save)) {
        if (asprintf(&path, "%s/%s_%s.so", d, kind, name) < 0) {
            free(dirs);
            return err_set(e, -ENOMEM, "out of memory");
        }
        if (access(path, F_OK) == 0) {
            free(dirs);
            *ret_path = path;
            return 0;
        }
        free(path);
        used += (size_t)snprintf(looked + used,
                                 used < sizeof(looked) ? sizeof(looked) - used
                                                       : 0,
                                 "%s%s", used ? ", " : "", d);
        if (used >= sizeof(looked))
            used = sizeof(looked) - 1;
    }
    free(dirs);
    return err_set(e, -ENOENT, "no plugin %s_%s.so in %s", kind, name,
                   *looked ? looked : "(no plugin directory)");
}

/* Derives kind and name from ".../<kind>_<name>.so". */
static int plugin_parse_filename(const char *path, int *ret_kind,
                                 char *name, size_t len)
{
    const char *base = strrchr(path, '/');
    const char *us, *dot;
    char kind[32];

    base = base ? base + 1 : path;
    us = strchr(base, '_');
    dot = strrchr(base, '.');
    if (us == NULL || dot == NULL || strcmp(dot, ".so") != 0 || dot < us ||
        (size_t)(us - base) >= sizeof(kind) || (size_t)(dot - us) > len)
        return -EINVAL;
    memcpy(kind, base, (size_t)(us - base));
    kind[us - base] = '\0';
    memcpy(name, us + 1, (size_t)(dot - us - 1));
    name[dot - us - 1] = '\0';
    *ret_kind = plugin_kind_from_name(kind);
    if (*ret_kind < 0 || !plugin_name_valid(name))
        return -EINVAL;
    return 0;
}

/* dlopen's message for a text file is obscure ("invalid ELF header" or a
 * linker-script complaint); check the magic ourselves first. */
static int plugin_check_elf(const char *path, struct err *e)
{
    unsigned char magic[4];
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return err_set(e, -errno, "plugin '%s': cannot open: %s", path,
                       strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(e, -EINVAL, "plugin '%s': refused: not a regular "
                                   "file", path);
    }
    n = read(fd, magic, sizeof(magic));
    close(fd);
    if (n != 4 || memcmp(magic, "\177ELF", 4) != 0)
        return err_set(e, -ENOEXEC,
                       "plugin '%s': refused: not an ELF shared object "
                       "(plugin ABI unknown, core ABI %d.%d)", path,
                       SURPLUS_ABI_MAJOR, SURPLUS_ABI_MINOR);
    return 0;
}

static int plugin_refuse(struct err *e, const char *path,
                         const struct surplus_plugin *d, const char *fmt,
                         const char *a, const char *b)
{
    char why[512];

    snprintf(why, sizeof(why), fmt, a, b);
    return err_set(e, -EPROTO,
                   "plugin '%s': refused: %s (plugin ABI %u.%u, core ABI "
                   "%d.%d)", path, why, d->abi_major, d->abi_minor,
                   SURPLUS_ABI_MAJOR, SURPLUS_ABI_MINOR);
}

static int plugin_check_ops(const struct surplus_plugin *d)
{
    switch (d->kind) {
    case SURPLUS_KIND_STORAGE: {
        const struct surplus_storage_ops *o = d->ops;
        return o->put && o->get && o->stat && o->remove && o->list;
    }
    case SURPLUS_KIND_ACCOUNTING: {
        const struct surplus_accounting_ops *o = d->ops;
        return o->record && o->query; /* flush is optional */
    }
    case SURPLUS_KIND_ACCELERATOR: {
        const struct surplus_accelerator_ops *o = d->ops;
        return o->discover && o->prepare && o->release;
    }
    }
    return 0;
}

static int plugin_check_desc(const char *path, const struct surplus_plugin *d,
                             int file_kind, const char *file_name,
                             struct err *e)
{
    char num[32];

    if (d->abi_major != SURPLUS_ABI_MAJOR)
        return plugin_refuse(e, path, d,
                             "built for a different ABI major version%s%s",
                             "", " (the major version must match)");
    if (d->abi_minor > SURPLUS_ABI_MINOR)
        return plugin_refuse(e, path, d,
                             "built for a newer ABI minor version than this "
                             "core supports%s%s", "",
                             " (upgrade surplus or rebuild the plugin)");
    if (d->size < DESC_SIZE_1_0) {
        snprintf(num, sizeof(num), "%u", d->size);
        return plugin_refuse(e, path, d,
                             "descriptor size %s is smaller than ABI 1.0's%s",
                             num, "");
    }
    if (d->abi_minor >= 1 && d->size < DESC_SIZE_1_1) {
        snprintf(num, sizeof(num), "%u", d->size);
        return plugin_refuse(e, path, d,
                             "descriptor size %s is smaller than ABI 1.1's%s",
                             num, "");
    }
    if (d->abi_minor >= 1 && (d->flags & ~SURPLUS_PLUGIN_FLAGS_1_1) != 0) {
        snprintf(num, sizeof(num), "%#llx",
                 (unsigned long long)(d->flags & ~SURPLUS_PLUGIN_FLAGS_1_1));
        return plugin_refuse(e, path, d, "declares unknown flags %s%s", num,
                             "");
    }
    if (plugin_kind_name((enum surplus_plugin_kind)d->kind) == NULL) {
        snprintf(num, sizeof(num), "%u", d->kind);
        return plugin_refuse(e, path, d, "unknown kind %s%s", num, "");
    }
    if ((int)d->kind != file_kind)
        return plugin_refuse(e, path, d,
                             "declares kind '%s' but its file name says '%s'",
                             plugin_kind_name(d->kind),
                             plugin_kind_name(file_kind));
    if (!plugin_name_valid(d->name))
        return plugin_refuse(e, path, d, "declares an invalid name%s%s", "",
                             "");
    if (strcmp(d->name, file_name) != 0)
        return plugin_refuse(e, path, d,
                             "declares name '%s' but its file name says '%s'",
                             d->name, file_name);
    if (d->version == NULL || d->init == NULL || d->fini == NULL ||
        d->ops == NULL || !plugin_check_ops(d))
        return plugin_refuse(e, path, d,
                             "descriptor lacks a version, init, fini or a "
                             "required operation%s%s", "", "");
    return 0;
}

int plugin_open(const char *path, struct plugin **ret, struct err *e)
{
    char file_name[128];
    const struct surplus_plugin *d;
    surplus_plugin_fn fn;
    struct plugin *p;
    int file_kind, r;
    void *dl;

    if (plugin_parse_filename(path, &file_kind, file_name,
                              sizeof(file_name)) < 0)
        return err_set(e, -EINVAL,
                       "plugin '%s': refused: file name is not "
                       "<kind>_<name>.so with kind storage, accounting or "
                       "accelerator (plugin ABI unknown, core ABI %d.%d)",
                       path, SURPLUS_ABI_MAJOR, SURPLUS_ABI_MINOR);
    r = plugin_check_elf(path, e);
    if (r < 0)
        return r;
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL)
        return err_set(e, -ENOEXEC,
                       "plugin '%s': refused: %s (plugin ABI unknown, core "
                       "ABI %d.%d)", path, dlerror(), SURPLUS_ABI_MAJOR,
                       SURPLUS_ABI_MINOR);
    *(void **)&fn = dlsym(dl, SURPLUS_PLUGIN_SYMBOL);
    if (fn == NULL) {
        dlclose(dl);
        return err_set(e, -ENOEXEC,
                       "plugin '%s': refused: no %s() symbol, not a surplus "
                       "plugin (plugin ABI unknown, core ABI %d.%d)", path,
                       SURPLUS_PLUGIN_SYMBOL, SURPLUS_ABI_MAJOR,
                       SURPLUS_ABI_MINOR);
    }
    d = fn();
    if (d == NULL) {
        dlclose(dl);
        return err_set(e, -ENOEXEC,
                       "plugin '%s': refused: %s() returned no descriptor "
                       "(plugin ABI unknown, core ABI %d.%d)", path,
                       SURPLUS_PLUGIN_SYMBOL, SURPLUS_ABI_MAJOR,
                       SURPLUS_ABI_MINOR);
    }
    r = plugin_check_desc(path, d, file_kind, file_name, e);
    if (r < 0) {
        dlclose(dl);
        return r;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->path = strdup(path)) == NULL) {
        free(p);
        dlclose(dl);
        return err_set(e, -ENOMEM, "out of memory");
    }
    pthread_rwlock_init(&p->lock, NULL);
    p->dl = dl;
    p->desc = d;
    p->thread_safe = d->abi_minor >= 1 &&
                     (d->flags & SURPLUS_PLUGIN_THREAD_SAFE) != 0;
    p->kind = (enum surplus_plugin_kind)d->kind;
    snprintf(p->ctx.label, sizeof(p->ctx.label), "%s/%s",
             plugin_kind_name(p->kind), d->name);
    *ret = p;
    return 0;
}

int plugin_error(struct plugin *p, int r, struct err *e, const char *what)
{
    char msg[ERR_MSG_MAX];

    snprintf(msg, sizeof(msg), "%s",
             e->code != 0 && e->msg[0] ? e->msg : strerror(-r));
    return err_set(e, r, "%s %s: %s", p->ctx.label, what, msg);
}

int plugin_start(struct plugin *p, struct settings *settings, struct err *e)
{
    struct err cfg = {0};
    void *state = NULL;
    int r;

    settings_free(&p->ctx.settings);
    p->ctx.settings = *settings;
    memset(settings, 0, sizeof(*settings));
    err_clear(&p->ctx.last);
    p->ctx.config_err = &cfg;
    r = p->desc->init(host_services(), &p->ctx, &state);
    p->ctx.config_err = NULL;
    if (r >= 0 && r != 0)
        r = -EPROTO; /* a positive return breaks the contract */
    if (r < 0) {
        if (cfg.code != 0)
            return err_set(e, r, "%s: %s", p->ctx.label, cfg.msg);
        *e = p->ctx.last;
        return plugin_error(p, r, e, "failed to start");
    }
    p->state = state;
    p->started = true;
    r = settings_check_used(&p->ctx.settings, e);
    if (r < 0) {
        plugin_stop(p);
        return r;
    }
    return 0;
}

void plugin_stop(struct plugin *p)
{
    bool locked;

    if (p == NULL || !p->started)
        return;
    /* Not while another thread is in one of its operations. */
    locked = pthread_rwlock_wrlock(&p->lock) == 0;
    p->desc->fini(p->state);
    p->state = NULL;
    p->started = false;
    if (locked)
        pthread_rwlock_unlock(&p->lock);
}

void plugin_close(struct plugin *p)
{
    if (p == NULL)
        return;
    plugin_stop(p);
    settings_free(&p->ctx.settings);
    /* Under valgrind, keep the object mapped so leak reports can name the
     * plugin's functions. */
    if (getenv("SURPLUS_NO_DLCLOSE") == NULL)
        dlclose(p->dl);
    pthread_rwlock_destroy(&p->lock);
    free(p->path);
    free(p);
}
