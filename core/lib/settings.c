#include "settings.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"

const char *settings_where(const config_setting_t *st, char *buf, size_t len)
{
    const char *file = config_setting_source_file(st);

    snprintf(buf, len, "%s:%u", file ? file : "(config)",
             config_setting_source_line(st));
    return buf;
}

const char *settings_path(const config_setting_t *st, char *buf, size_t len)
{
    char path[200] = "";

    for (const config_setting_t *p = st;
         p != NULL && config_setting_parent(p) != NULL;
         p = config_setting_parent(p)) {
        char part[512];
        const char *name = config_setting_name(p);

        if (name != NULL)
            snprintf(part, sizeof(part), "%s%s%s", name, *path ? "." : "",
                     path);
        else
            snprintf(part, sizeof(part), "[%d]%s%s",
                     config_setting_index(p), *path ? "." : "", path);
        snprintf(path, sizeof(path), "%.199s", part);
    }
    /* "accelerators.[0].plugin" reads better as "accelerators[0].plugin" */
    for (char *q = strstr(path, ".["); q; q = strstr(q, ".["))
        memmove(q, q + 1, strlen(q));
    snprintf(buf, len, "%s", *path ? path : "(top level)");
    return buf;
}

const config_setting_t *settings_first_unknown(const config_setting_t *group,
                                               const char *const *allowed)
{
    int n = config_setting_length(group);

    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(m);
        bool ok = false;

        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, name) == 0;
        if (!ok)
            return m;
    }
    return NULL;
}

static struct setting *settings_find(struct settings *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].key, key) == 0)
            return &s->v[i];
    return NULL;
}

static struct setting *settings_slot(struct settings *s, const char *key)
{
    struct setting *st = settings_find(s, key), *v;

    if (st != NULL) {
        free(st->str);
        free(st->where);
        st->str = st->where = NULL;
        return st;
    }
    v = realloc(s->v, (s->n + 1) * sizeof(*v));
    if (v == NULL)
        return NULL;
    s->v = v;
    st = &v[s->n];
    memset(st, 0, sizeof(*st));
    st->key = strdup(key);
    if (st->key == NULL)
        return NULL;
    s->n++;
    return st;
}

int settings_from_config(const config_setting_t *group, const char *name,
                         const char *const *skip, struct settings *ret,
                         struct err *e)
{
    struct settings s = {0};
    char where[512];
    int n = config_setting_length(group);

    s.name = strdup(name);
    s.where = strdup(settings_where(group, where, sizeof(where)));
    if (s.name == NULL || s.where == NULL)
        goto nomem;
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const char *key = config_setting_name(m);
        struct setting *st;
        bool skipped = false;

        for (const char *const *k = skip; k && *k; k++)
            skipped |= strcmp(*k, key) == 0;
        if (skipped)
            continue;
        settings_where(m, where, sizeof(where));
        st = settings_slot(&s, key);
        if (st == NULL)
            goto nomem;
        st->where = strdup(where);
        if (st->where == NULL)
            goto nomem;
        switch (config_setting_type(m)) {
        case CONFIG_TYPE_STRING:
            st->type = SETTING_STRING;
            st->str = strdup(config_setting_get_string(m));
            if (st->str == NULL)
                goto nomem;
            break;
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
            st->type = SETTING_INT;
            st->i = config_setting_get_int64(m);
            break;
        case CONFIG_TYPE_FLOAT:
            st->type = SETTING_FLOAT;
            st->f = config_setting_get_float(m);
            break;
        case CONFIG_TYPE_BOOL:
            st->type = SETTING_BOOL;
            st->i = config_setting_get_bool(m);
            break;
        default:
            settings_free(&s);
            return err_set(e, -EINVAL,
                           "%s: %s.%s: plugin settings must be strings, "
                           "numbers or booleans, not lists or groups",
                           where, name, key);
        }
    }
    *ret = s;
    return 0;
nomem:
    settings_free(&s);
    return err_set(e, -ENOMEM, "out of memory reading %s", name);
}

int settings_set_string(struct settings *s, const char *key,
                        const char *value, const char *where, bool implicit)
{
    struct setting *st = settings_slot(s, key);

    if (st == NULL)
        return -ENOMEM;
    st->type = SETTING_STRING;
    st->str = strdup(value);
    st->where = strdup(where);
    st->implicit = implicit;
    st->used = false;
    if (st->str == NULL || st->where == NULL)
        return -ENOMEM;
    return 0;
}

int settings_set_arg(struct settings *s, const char *arg, struct err *e)
{
    const char *eq = strchr(arg, '=');
    char *key;
    int r;

    if (eq == NULL || eq == arg)
        return err_set(e, -EINVAL, "--set '%s': expected KEY=VALUE", arg);
    key = strndup(arg, (size_t)(eq - arg));
    if (key == NULL)
        return err_set(e, -ENOMEM, "out of memory");
    r = settings_set_string(s, key, eq + 1, "--set", false);
    free(key);
    if (r < 0)
        return err_set(e, r, "out of memory");
    return 0;
}

int settings_copy(const struct settings *from, struct settings *to)
{
    struct settings s = {0};

    s.name = strdup(from->name ? from->name : "plugin");
    s.where = strdup(from->where ? from->where : "");
    if (s.name == NULL || s.where == NULL)
        goto nomem;
    for (size_t i = 0; i < from->n; i++) {
        const struct setting *f = &from->v[i];
        struct setting *st = settings_slot(&s, f->key);

        if (st == NULL)
            goto nomem;
        st->type = f->type;
        st->i = f->i;
        st->f = f->f;
        st->implicit = f->implicit;
        st->where = strdup(f->where);
        if (st->where == NULL)
            goto nomem;
        if (f->str != NULL && (st->str = strdup(f->str)) == NULL)
            goto nomem;
    }
    *to = s;
    return 0;
nomem:
    settings_free(&s);
    return -ENOMEM;
}

void settings_remove(struct settings *s, const char *key)
{
    struct setting *st = settings_find(s, key);

    if (st == NULL)
        return;
    free(st->key);
    free(st->str);
    free(st->where);
    *st = s->v[--s->n];
}

void settings_free(struct settings *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].key);
        free(s->v[i].str);
        free(s->v[i].where);
    }
    free(s->v);
    free(s->name);
    free(s->where);
    memset(s, 0, sizeof(*s));
}

int settings_check_used(const struct settings *s, struct err *e)
{
    for (size_t i = 0; i < s->n; i++)
        if (!s->v[i].used && !s->v[i].implicit)
            return err_set(e, -EINVAL,
                           "%s: unknown key '%s' in %s (the plugin does not "
                           "use it)",
                           s->v[i].where, s->v[i].key, s->name);
    return 0;
}

static int settings_bad(const struct settings *s, const struct setting *st,
                        const char *want, struct err *e)
{
    return err_set(e, -EINVAL, "%s: %s.%s: expected %s", st->where, s->name,
                   st->key, want);
}

static struct setting *settings_use(struct settings *s, const char *key)
{
    struct setting *st = settings_find(s, key);

    if (st != NULL)
        st->used = true;
    return st;
}

int settings_get_string(struct settings *s, const char *key, const char *def,
                        const char **ret, struct err *e)
{
    struct setting *st = settings_use(s, key);

    if (st == NULL) {
        *ret = def;
        return 0;
    }
    if (st->type != SETTING_STRING)
        return settings_bad(s, st, "a string", e);
    *ret = st->str;
    return 0;
}

static int settings_parse_int(const char *str, int64_t *ret)
{
    char *end;
    long long v;

    errno = 0;
    if (*str == '\0' || *str == ' ')
        return -EINVAL;
    v = strtoll(str, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    if (*end != '\0')
        return -EINVAL;
    *ret = v;
    return 0;
}

int settings_get_int(struct settings *s, const char *key, int64_t def,
                     int64_t *ret, struct err *e)
{
    struct setting *st = settings_use(s, key);

    if (st == NULL) {
        *ret = def;
        return 0;
    }
    if (st->type == SETTING_INT) {
        *ret = st->i;
        return 0;
    }
    if (st->type == SETTING_STRING && settings_parse_int(st->str, ret) == 0)
        return 0;
    return settings_bad(s, st, "an integer", e);
}

int settings_get_bool(struct settings *s, const char *key, int def, int *ret,
                      struct err *e)
{
    struct setting *st = settings_use(s, key);

    if (st == NULL) {
        *ret = def;
        return 0;
    }
    if (st->type == SETTING_BOOL) {
        *ret = st->i != 0;
        return 0;
    }
    if (st->type == SETTING_STRING) {
        if (strcmp(st->str, "true") == 0 || strcmp(st->str, "yes") == 0 ||
            strcmp(st->str, "1") == 0) {
            *ret = 1;
            return 0;
        }
        if (strcmp(st->str, "false") == 0 || strcmp(st->str, "no") == 0 ||
            strcmp(st->str, "0") == 0) {
            *ret = 0;
            return 0;
        }
    }
    return settings_bad(s, st, "a boolean (true or false)", e);
}

int settings_get_size(struct settings *s, const char *key, uint64_t def,
                      uint64_t *ret, struct err *e)
{
    struct setting *st = settings_use(s, key);
    int r;

    if (st == NULL) {
        *ret = def;
        return 0;
    }
    if (st->type == SETTING_INT && st->i >= 0) {
        *ret = (uint64_t)st->i;
        return 0;
    }
    if (st->type == SETTING_STRING) {
        r = units_parse_size(st->str, ret);
        if (r == -ERANGE)
            return settings_bad(s, st, "a size below 16 EiB", e);
        if (r == 0)
            return 0;
    }
    return settings_bad(s, st, "a size such as 512M or 16G", e);
}

int settings_get_duration(struct settings *s, const char *key, uint64_t def,
                          uint64_t *ret, struct err *e)
{
    struct setting *st = settings_use(s, key);
    int r;

    if (st == NULL) {
        *ret = def;
        return 0;
    }
    if (st->type == SETTING_INT && st->i >= 0 &&
        (uint64_t)st->i <= UINT64_MAX / 1000) {
        *ret = (uint64_t)st->i * 1000;
        return 0;
    }
    if (st->type == SETTING_STRING) {
        r = units_parse_duration_ms(st->str, ret);
        if (r == -ERANGE)
            return settings_bad(s, st, "a shorter duration", e);
        if (r == 0)
            return 0;
    }
    return settings_bad(s, st, "a duration such as 90s, 10m, 1h30m or "
                               "HH:MM:SS", e);
}
