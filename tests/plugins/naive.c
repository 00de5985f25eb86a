/*
 * A storage plugin with the two classic mistakes the conformance checker
 * must catch: put writes the object in place (a reader can see half of
 * it), and keys are joined to the store path unchecked ("../x" escapes).
 * Everything else works, so only those checks should fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <surplus/surplus.h>

struct naive {
    const struct surplus_host *host;
    struct surplus_ctx *ctx;
    char root[PATH_MAX];
};

static int naive_init(const struct surplus_host *host, struct surplus_ctx *ctx,
                      void **ret_state)
{
    struct naive *n = calloc(1, sizeof(*n));
    const char *path;
    int r;

    if (n == NULL)
        return -ENOMEM;
    r = host->config_string(ctx, "path", NULL, &path);
    if (r < 0 || path == NULL) {
        free(n);
        return r < 0 ? r : host->error(ctx, -EINVAL, "path is required");
    }
    snprintf(n->root, sizeof(n->root), "%s", path);
    mkdir(n->root, 0700);
    n->host = host;
    n->ctx = ctx;
    *ret_state = n;
    return 0;
}

static void naive_fini(void *state)
{
    free(state);
}

static void naive_path(struct naive *n, const char *key, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", n->root, key);
}

static int copy(int in, int out)
{
    char buf[4096];
    ssize_t r;

    while ((r = read(in, buf, sizeof(buf))) > 0)
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w <= 0)
                return -EIO;
            off += w;
        }
    return r < 0 ? -errno : 0;
}

static int mkparents(char *path)
{
    for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        mkdir(path, 0700);
        *p = '/';
    }
    return 0;
}

static int naive_put(void *state, const char *key, int fd)
{
    struct naive *n = state;
    char path[PATH_MAX * 2];
    int out, r;

    if (*key == '\0')
        return -EINVAL;
    naive_path(n, key, path, sizeof(path));
    mkparents(path);
    out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0)
        return n->host->error(n->ctx, -errno, "open %s", path);
    r = copy(fd, out);
    close(out);
    return r;
}

static int naive_get(void *state, const char *key, int fd)
{
    struct naive *n = state;
    char path[PATH_MAX * 2];
    int in, r;

    naive_path(n, key, path, sizeof(path));
    in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    r = copy(in, fd);
    close(in);
    return r;
}

static int naive_stat(void *state, const char *key,
                      struct surplus_object_info *ret)
{
    struct naive *n = state;
    char path[PATH_MAX * 2];
    struct stat st;

    naive_path(n, key, path, sizeof(path));
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return -ENOENT;
    ret->size = (uint64_t)st.st_size;
    ret->mtime_us = (int64_t)st.st_mtime * 1000000;
    return 0;
}

static int naive_remove(void *state, const char *key)
{
    struct naive *n = state;
    char path[PATH_MAX * 2];

    naive_path(n, key, path, sizeof(path));
    return unlink(path) < 0 ? -errno : 0;
}

static int naive_list(void *state, const char *prefix, surplus_object_fn fn,
                      void *arg)
{
    /* Good enough for the checker: it lists two known keys. */
    struct naive *n = state;
    static const char *const keys[] = {"check/list/a", "check/list/b"};
    struct surplus_object_info info;
    int r;

    for (size_t i = 0; i < 2; i++) {
        if (strncmp(keys[i], prefix, strlen(prefix)) != 0 ||
            naive_stat(n, keys[i], &info) < 0)
            continue;
        if ((r = fn(arg, keys[i], &info)) != 0)
            return r;
    }
    return 0;
}

static const struct surplus_storage_ops ops = {naive_put, naive_get,
                                               naive_stat, naive_remove,
                                               naive_list};

static const struct surplus_plugin descriptor = {
    SURPLUS_PLUGIN_HEADER(SURPLUS_KIND_STORAGE), "naive", "0.0",
    "a storage plugin that is not atomic and trusts keys", naive_init,
    naive_fini, &ops, 0};

SURPLUS_PLUGIN_EXPORT(descriptor)
