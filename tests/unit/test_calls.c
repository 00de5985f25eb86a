/* The plugin call layer, driving the real storage/local and accelerator/sim
 * plugins: one instance of each is called from 8 threads at once, and
 * every failure must come back with the message of its own call. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calls.h"
#include "loader.h"
#include "tap.h"

#define THREADS 8
#define ROUNDS 400

static struct plugin *store, *sim;

struct worker {
    int n;
    int calls;        /* operations made */
    int wrong_code;   /* a failure with the wrong errno, or a success */
    int wrong_msg;    /* a message that does not name this call's key/id */
    char example[ERR_MSG_MAX + 128]; /* the first wrong message */
};

static void wrong(struct worker *w, const char *want, const struct err *e)
{
    w->wrong_msg++;
    if (w->example[0] == '\0')
        snprintf(w->example, sizeof w->example, "want '%s' in '%s'", want,
                 e->msg);
}

static int count_device(void *arg, const struct surplus_device *dev)
{
    (void)dev;
    (*(int *)arg)++;
    return 0;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    int devices = 0;
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

    for (int i = 0; i < ROUNDS; i++) {
        char key[64], id[64];
        const char *ids[1] = {id};
        struct surplus_lease_out out = {0};
        struct surplus_lease l = {"lease", "job", "tenant", ids, 1, &out};
        struct err e;
        int r;

        /* storage: get of a key no other call names */
        snprintf(key, sizeof key, "missing/t%d-r%d", w->n, i);
        memset(&e, 0, sizeof e);
        r = storage_get(store, key, null, &e);
        w->calls++;
        if (r != -ENOENT || e.code != -ENOENT)
            w->wrong_code++;
        else if (strstr(e.msg, key) == NULL)
            wrong(w, key, &e);

        /* accelerator: prepare of a device id no other call names */
        snprintf(id, sizeof id, "nodev-t%d-r%d", w->n, i);
        memset(&e, 0, sizeof e);
        r = accelerator_prepare(sim, &l, &e);
        lease_out_free(&out);
        w->calls++;
        if (r != -ENODEV || e.code != -ENODEV)
            w->wrong_code++;
        else if (strstr(e.msg, id) == NULL)
            wrong(w, id, &e);

        /* a success clears what the caller's err held */
        memset(&e, 0, sizeof e);
        e.code = -EIO;
        strcpy(e.msg, "stale");
        r = accelerator_discover(sim, count_device, &devices, &e);
        w->calls++;
        if (r == 0 && (e.code != 0 || e.msg[0] != '\0'))
            wrong(w, "(nothing)", &e);
    }
    close(null);
    return NULL;
}

static int list_back_in(void *arg, const char *key,
                        const struct surplus_object_info *info)
{
    struct err *e = arg;
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int r;

    (void)info;
    r = storage_get(store, key, null, e);
    close(null);
    return r < 0 ? r : 1;
}

static struct plugin *start(const char *kind, const char *name,
                            struct settings *s)
{
    struct plugin *p = NULL;
    struct err e = {0};
    char *path = NULL;

    if (plugin_find(kind, name, NULL, &path, &e) < 0 ||
        plugin_open(path, &p, &e) < 0 || plugin_start(p, s, &e) < 0) {
        tap_ok(0, "%s/%s starts: %s", kind, name, e.msg);
        settings_free(s);
        plugin_close(p);
        p = NULL;
    }
    free(path);
    return p;
}

static struct settings group(const char *name);

struct prober {
    struct plugin *p;
    int n;
    int wrong; /* a message not naming this call's key */
};

static void *probe(void *arg)
{
    struct prober *pr = arg;

    for (int i = 0; i < 50; i++) {
        struct surplus_object_info info;
        char key[64];
        struct err e = {0};

        snprintf(key, sizeof key, "missing/t%d-r%d", pr->n, i);
        if (storage_stat(pr->p, key, &info, &e) != -ENOENT ||
            strstr(e.msg, key) == NULL)
            pr->wrong++;
    }
    return NULL;
}

/* A fixture counts the calls of stat in progress at once: 1 unless it
 * declares itself thread-safe. */
static void concurrency(const char *file, bool thread_safe)
{
    struct prober pr[THREADS] = {{0}};
    pthread_t t[THREADS];
    struct surplus_object_info info = {0};
    struct settings s = group("storage");
    struct plugin *p = NULL;
    struct err e = {0};
    char path[4096];
    int wrong = 0;

    snprintf(path, sizeof path, "%s/%s", getenv("SURPLUS_FIXTURE_DIR"),
             file);
    if (plugin_open(path, &p, &e) < 0 || plugin_start(p, &s, &e) < 0) {
        tap_ok(0, "%s starts: %s", file, e.msg);
        plugin_close(p);
        return;
    }
    for (int i = 0; i < THREADS; i++) {
        pr[i].p = p;
        pr[i].n = i;
        pthread_create(&t[i], NULL, probe, &pr[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        wrong += pr[i].wrong;
    }
    storage_stat(p, "fixture/max-concurrency", &info, &e);
    if (thread_safe)
        tap_ok(info.size > 1 && wrong == 0,
               "%s, thread-safe, is called from several threads at once "
               "(%llu at most), each message its own (%d wrong)", file,
               (unsigned long long)info.size, wrong);
    else
        tap_ok(info.size == 1 && wrong == 0,
               "%s is called from one thread at a time (%llu at most), "
               "each message its own (%d wrong)", file,
               (unsigned long long)info.size, wrong);
    plugin_close(p);
}

static struct settings group(const char *name)
{
    struct settings s = {0};
    s.name = strdup(name);
    s.where = strdup("test.conf:1");
    return s;
}

int main(void)
{
    char dir[] = "/tmp/test_calls.XXXXXX", cmd[128];
    struct worker w[THREADS] = {{0}};
    pthread_t t[THREADS];
    struct settings s;
    struct err e = {0};
    int calls = 0, codes = 0, msgs = 0, r;

    if (getenv("SURPLUS_PLUGIN_PATH") == NULL)
        tap_skip_all("SURPLUS_PLUGIN_PATH not set (run through make check)");
    if (mkdtemp(dir) == NULL)
        tap_skip_all("mkdtemp: %s", strerror(errno));

    s = group("storage");
    settings_set_string(&s, "path", dir, "test.conf:2", false);
    store = start("storage", "local", &s);
    s = group("accelerator");
    sim = start("accelerator", "sim", &s);
    if (store == NULL || sim == NULL)
        return tap_done();

    for (int i = 0; i < THREADS; i++) {
        w[i].n = i;
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        calls += w[i].calls;
        codes += w[i].wrong_code;
        msgs += w[i].wrong_msg;
        if (w[i].example[0])
            tap_diag("thread %d: %s", i, w[i].example);
    }
    tap_ok(calls == THREADS * ROUNDS * 3 && codes == 0,
           "%d calls from %d threads on one storage/local and one "
           "accelerator/sim instance: each failure has its own errno (%d "
           "wrong)", calls, THREADS, codes);
    tap_ok(msgs == 0,
           "every error message names its own call's key or device id, "
           "and a success leaves none (%d of %d wrong)", msgs, calls);

    /* One message per call, whatever the instance said before. */
    r = storage_get(store, "missing/first", STDOUT_FILENO, &e);
    r = storage_remove(store, "missing/second", &e);
    tap_ok(r == -ENOENT && strstr(e.msg, "missing/second") &&
               !strstr(e.msg, "missing/first"),
           "a failure reports its own message, not an earlier one: %s",
           e.msg);

    /* A callback calling back into its own instance: refused, not hung. */
    {
        struct err inner = {0};
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        r = storage_put(store, "present", fd, &e);
        close(fd);
        if (r == 0)
            r = storage_list(store, "", list_back_in, &inner, &e);
        tap_ok(r == -EDEADLK && inner.code == -EDEADLK &&
                   strstr(inner.msg, "storage/local get") &&
                   strstr(inner.msg, "its own callbacks"),
               "a list callback calling its own instance gets -EDEADLK: %s",
               inner.msg);
    }

    /* The layer refuses what the instance cannot do, naming it. */
    r = storage_put(sim, "key", STDIN_FILENO, &e);
    tap_ok(r == -EINVAL && strstr(e.msg, "accelerator/sim has no put"),
           "a storage operation on an accelerator is refused: %s", e.msg);
    r = accounting_flush(sim, &e);
    tap_ok(r == -EINVAL && strstr(e.msg, "accelerator/sim has no flush"),
           "so is an accounting one: %s", e.msg);
    plugin_stop(store);
    r = storage_get(store, "missing/x", STDOUT_FILENO, &e);
    tap_ok(r == -ESRCH && strstr(e.msg, "storage/local get") &&
               strstr(e.msg, "not started"),
           "an operation on a stopped instance is refused: %s", e.msg);

    concurrency("storage_good.so", false);
    concurrency("storage_threadsafe.so", true);

    plugin_close(store);
    plugin_close(sim);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", dir);
    return tap_done();
}
