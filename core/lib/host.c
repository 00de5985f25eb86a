#include "host.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <surplus/plugin.h>

#include "log.h"

static void host_log(struct surplus_ctx *ctx, int level, const char *fmt, ...)
{
    char prefix[160];
    va_list ap;

    snprintf(prefix, sizeof(prefix), "%s: ", ctx->label);
    va_start(ap, fmt);
    log_vmsg(level, prefix, fmt, ap);
    va_end(ap);
}

static __thread struct host_capture *capture;

void host_capture_begin(struct host_capture *c, const struct surplus_ctx *ctx,
                        struct err *into)
{
    c->ctx = ctx;
    c->err = into;
    c->outer = capture;
    capture = c;
}

void host_capture_end(struct host_capture *c)
{
    capture = c->outer;
}

bool host_capture_active(const struct surplus_ctx *ctx)
{
    for (struct host_capture *c = capture; c != NULL; c = c->outer)
        if (c->ctx == ctx)
            return true;
    return false;
}

/* The message store of the call this thread is making into `ctx`, or the
 * instance's own outside any call (init and fini run on one thread). */
static struct err *host_message(struct surplus_ctx *ctx)
{
    for (struct host_capture *c = capture; c != NULL; c = c->outer)
        if (c->ctx == ctx)
            return c->err;
    return &ctx->last;
}

static int host_error(struct surplus_ctx *ctx, int err, const char *fmt, ...)
{
    struct err *m = host_message(ctx);
    va_list ap;

    m->code = err;
    va_start(ap, fmt);
    vsnprintf(m->msg, sizeof(m->msg), fmt, ap);
    va_end(ap);
    return err;
}

/* A bad setting is reported both to the plugin (as its error message, so
 * that a plugin returning the getter's error gets a useful line) and to the
 * core, which prefers it because it names file:line. */
static int host_config_failed(struct surplus_ctx *ctx, int r, struct err *e)
{
    *host_message(ctx) = *e;
    if (ctx->config_err != NULL && ctx->config_err->code == 0)
        *ctx->config_err = *e;
    return r;
}

static int host_config_string(struct surplus_ctx *ctx, const char *key,
                              const char *def, const char **ret)
{
    struct err e = {0};
    int r = settings_get_string(&ctx->settings, key, def, ret, &e);
    return r < 0 ? host_config_failed(ctx, r, &e) : 0;
}

static int host_config_int(struct surplus_ctx *ctx, const char *key,
                           int64_t def, int64_t *ret)
{
    struct err e = {0};
    int r = settings_get_int(&ctx->settings, key, def, ret, &e);
    return r < 0 ? host_config_failed(ctx, r, &e) : 0;
}

static int host_config_bool(struct surplus_ctx *ctx, const char *key, int def,
                            int *ret)
{
    struct err e = {0};
    int r = settings_get_bool(&ctx->settings, key, def, ret, &e);
    return r < 0 ? host_config_failed(ctx, r, &e) : 0;
}

static int host_config_size(struct surplus_ctx *ctx, const char *key,
                            uint64_t def, uint64_t *ret)
{
    struct err e = {0};
    int r = settings_get_size(&ctx->settings, key, def, ret, &e);
    return r < 0 ? host_config_failed(ctx, r, &e) : 0;
}

static int host_config_duration(struct surplus_ctx *ctx, const char *key,
                                uint64_t def, uint64_t *ret)
{
    struct err e = {0};
    int r = settings_get_duration(&ctx->settings, key, def, ret, &e);
    return r < 0 ? host_config_failed(ctx, r, &e) : 0;
}

static int env_name_valid(const char *name)
{
    if (name == NULL || !((*name >= 'A' && *name <= 'Z') ||
                          (*name >= 'a' && *name <= 'z') || *name == '_'))
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
              (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return strlen(name) <= 128;
}

static int push(char ***v, size_t *n, char *s)
{
    char **nv;

    if (s == NULL)
        return -ENOMEM;
    nv = realloc(*v, (*n + 1) * sizeof(*nv));
    if (nv == NULL) {
        free(s);
        return -ENOMEM;
    }
    nv[(*n)++] = s;
    *v = nv;
    return 0;
}

static int host_lease_setenv(struct surplus_lease_out *out, const char *name,
                             const char *value)
{
    char *kv;
    size_t len;

    if (!env_name_valid(name) || value == NULL)
        return err_set(&out->err, -EINVAL,
                       "lease environment variable name is not valid");
    len = strlen(name);
    for (size_t i = 0; i < out->n_env; i++) {
        if (strncmp(out->env[i], name, len) == 0 && out->env[i][len] == '=') {
            free(out->env[i]);
            if (asprintf(&out->env[i], "%s=%s", name, value) < 0) {
                out->env[i] = strdup("");
                return -ENOMEM;
            }
            return 0;
        }
    }
    if (asprintf(&kv, "%s=%s", name, value) < 0)
        return -ENOMEM;
    return push(&out->env, &out->n_env, kv);
}

static int host_lease_add_device(struct surplus_lease_out *out,
                                 const char *path)
{
    if (path == NULL || strncmp(path, "/dev/", 5) != 0 ||
        strstr(path, "/../") != NULL || strstr(path, "/./") != NULL ||
        strlen(path) > 255)
        return err_set(&out->err, -EINVAL,
                       "lease device '%s' is not a path under /dev",
                       path ? path : "(null)");
    for (size_t i = 0; i < out->n_devices; i++)
        if (strcmp(out->devices[i], path) == 0)
            return 0;
    return push(&out->devices, &out->n_devices, strdup(path));
}

static const struct surplus_host host_table = {
    .abi_major = SURPLUS_ABI_MAJOR,
    .abi_minor = SURPLUS_ABI_MINOR,
    .size = sizeof(struct surplus_host),
    .log = host_log,
    .error = host_error,
    .config_string = host_config_string,
    .config_int = host_config_int,
    .config_bool = host_config_bool,
    .config_size = host_config_size,
    .config_duration = host_config_duration,
    .lease_setenv = host_lease_setenv,
    .lease_add_device = host_lease_add_device,
};

const struct surplus_host *host_services(void)
{
    return &host_table;
}

void lease_out_free(struct surplus_lease_out *out)
{
    if (out == NULL)
        return;
    for (size_t i = 0; i < out->n_env; i++)
        free(out->env[i]);
    for (size_t i = 0; i < out->n_devices; i++)
        free(out->devices[i]);
    free(out->env);
    free(out->devices);
    memset(out, 0, sizeof(*out));
}

const char *lease_out_getenv(const struct surplus_lease_out *out,
                             const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < out->n_env; i++)
        if (strncmp(out->env[i], name, len) == 0 && out->env[i][len] == '=')
            return out->env[i] + len + 1;
    return NULL;
}
