/*
 * settings.h - one plugin instance's settings: the scalar keys of its
 * configuration group (or of `surplus-plugin-check --set`), each with where
 * it came from, read through the host's typed getters.
 */
#ifndef SURPLUS_SETTINGS_H
#define SURPLUS_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

#include <libconfig.h>

#include "err.h"

enum setting_type { SETTING_STRING, SETTING_INT, SETTING_FLOAT, SETTING_BOOL };

struct setting {
    char *key;
    enum setting_type type;
    char *str;       /* SETTING_STRING */
    int64_t i;       /* SETTING_INT, SETTING_BOOL */
    double f;        /* SETTING_FLOAT */
    char *where;     /* "file:line", or "--set" */
    bool implicit;   /* a default the core supplied, not the operator */
    bool used;       /* asked for by the plugin */
};

struct settings {
    char *name;      /* "storage", "accelerators[1]", for messages */
    char *where;     /* where the group starts */
    struct setting *v;
    size_t n;
};

/* Copies every scalar member of `group` except those named in `skip`
 * (NULL-terminated).  Lists, arrays and groups are refused: plugin settings
 * are flat. */
int settings_from_config(const config_setting_t *group, const char *name,
                         const char *const *skip, struct settings *ret,
                         struct err *e);

/* Adds or replaces a key.  `implicit` values are defaults the plugin may
 * ignore without an "unknown key" error. */
int settings_set_string(struct settings *s, const char *key,
                        const char *value, const char *where, bool implicit);

/* Parses "key=value" (a --set argument); the value stays a string and the
 * typed getters convert it. */
int settings_set_arg(struct settings *s, const char *arg, struct err *e);

/* Drops `key` if present. */
void settings_remove(struct settings *s, const char *key);

int settings_copy(const struct settings *from, struct settings *to);
void settings_free(struct settings *s);

/* Reports the first explicit key the plugin never read. */
int settings_check_used(const struct settings *s, struct err *e);

/* Typed getters behind struct surplus_host's config_* functions. */
int settings_get_string(struct settings *s, const char *key, const char *def,
                        const char **ret, struct err *e);
int settings_get_int(struct settings *s, const char *key, int64_t def,
                     int64_t *ret, struct err *e);
int settings_get_bool(struct settings *s, const char *key, int def, int *ret,
                      struct err *e);
int settings_get_size(struct settings *s, const char *key, uint64_t def,
                      uint64_t *ret, struct err *e);
int settings_get_duration(struct settings *s, const char *key, uint64_t def,
                          uint64_t *ret, struct err *e);

/* The dotted name of a libconfig setting, e.g. "limits.max_entries" or
 * "accelerators[1].plugin", into buf. */
const char *settings_path(const config_setting_t *st, char *buf, size_t len);

/* The first member of `group` not named in `allowed` (NULL-terminated), or
 * NULL when every member is allowed. */
const config_setting_t *settings_first_unknown(const config_setting_t *group,
                                               const char *const *allowed);

/* "file:line" of a libconfig setting, into buf. */
const char *settings_where(const config_setting_t *st, char *buf, size_t len);

#endif
