/* The plugin loader against fixture plugins, each broken in one way. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader.h"
#include "tap.h"

static const char *dir;

static char *fixture(const char *file)
{
    static char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    return path;
}

/* Opens a fixture and expects a refusal whose message holds every needle. */
static void refused(const char *file, const char *what, const char *n1,
                    const char *n2)
{
    struct plugin *p = NULL;
    struct err e = {0};
    int r = plugin_open(fixture(file), &p, &e);

    tap_ok(r < 0 && p == NULL, "%s: refused", what);
    tap_ok(strstr(e.msg, file) != NULL && strstr(e.msg, n1) != NULL &&
               (n2 == NULL || strstr(e.msg, n2) != NULL) &&
               strchr(e.msg, '\n') == NULL,
           "%s: one line naming the file and why: %s", what, e.msg);
    plugin_close(p);
}

static struct settings with(const char *k1, const char *v1)
{
    struct settings s = {0};
    s.name = strdup("storage");
    s.where = strdup("test.conf:1");
    if (k1)
        settings_set_string(&s, k1, v1, "test.conf:7", false);
    return s;
}

int main(void)
{
    struct plugin *p = NULL;
    struct settings s;
    struct err e = {0};
    char *path = NULL;
    int r;

    dir = getenv("SURPLUS_FIXTURE_DIR");
    if (dir == NULL)
        tap_skip_all("SURPLUS_FIXTURE_DIR not set (run through make check)");

    /* a good plugin */
    r = plugin_open(fixture("storage_good.so"), &p, &e);
    tap_ok(r == 0, "good plugin loads: %s", r ? e.msg : "");
    if (r == 0) {
        tap_is_str(p->desc->name, "good", "descriptor name");
        tap_is_int(p->kind, SURPLUS_KIND_STORAGE, "kind");
        s = with("greeting", "hi");
        r = plugin_start(p, &s, &e);
        tap_ok(r == 0 && p->started, "good plugin starts: %s", e.msg);
        plugin_close(p);
    }

    /* settings are checked through the plugin */
    p = NULL;
    if (plugin_open(fixture("storage_good.so"), &p, &e) == 0) {
        s = with("colour", "blue");
        r = plugin_start(p, &s, &e);
        tap_ok(r == -EINVAL && strstr(e.msg, "unknown key 'colour'") &&
                   strstr(e.msg, "test.conf:7"),
               "a key the plugin never reads is an unknown key with "
               "file:line: %s", e.msg);
        s = with("count", "many");
        r = plugin_start(p, &s, &e);
        tap_ok(r == -EINVAL && strstr(e.msg, "count") &&
                   strstr(e.msg, "test.conf:7") &&
                   strstr(e.msg, "integer"),
               "a badly typed setting names key, file:line and the "
               "expected type: %s", e.msg);
        plugin_close(p);
    }

    refused("storage_wrongmajor.so", "wrong ABI major", "plugin ABI 2.0",
            "core ABI 1.1");
    refused("storage_newminor.so", "newer ABI minor", "plugin ABI 1.8",
            "core ABI 1.1");
    refused("accounting_wrongkind.so", "wrong kind",
            "declares kind 'storage' but its file name says 'accounting'",
            "core ABI 1.1");
    refused("storage_misnamed.so", "name/file mismatch",
            "declares name 'other' but its file name says 'misnamed'",
            "plugin ABI 1.1");
    refused("storage_nosymbol.so", "missing descriptor symbol",
            "no surplus_plugin_descriptor() symbol", "core ABI 1.1");
    refused("storage_shortdesc.so", "descriptor smaller than ABI 1.0",
            "descriptor size 12", "core ABI 1.1");
    refused("storage_shortflags.so", "1.1 descriptor without its flags",
            "smaller than ABI 1.1's", "plugin ABI 1.1");
    refused("storage_badflags.so", "unknown descriptor flags",
            "declares unknown flags 0x20", "core ABI 1.1");

    /* flags: read from a 1.1 descriptor, never from a 1.0 one */
    p = NULL;
    r = plugin_open(fixture("storage_threadsafe.so"), &p, &e);
    tap_ok(r == 0 && p->thread_safe,
           "a plugin that sets SURPLUS_PLUGIN_THREAD_SAFE is thread-safe: %s",
           r ? e.msg : "");
    plugin_close(p);
    p = NULL;
    r = plugin_open(fixture("storage_oldabi.so"), &p, &e);
    tap_ok(r == 0 && !p->thread_safe,
           "an ABI 1.0 plugin loads, and what lies past its descriptor is "
           "not read as flags: %s", r ? e.msg : "");
    plugin_close(p);

    /* init failure: loads, refuses to start, message from the plugin */
    p = NULL;
    r = plugin_open(fixture("storage_initfail.so"), &p, &e);
    tap_ok(r == 0, "a plugin whose init fails still loads");
    if (r == 0) {
        s = with(NULL, NULL);
        r = plugin_start(p, &s, &e);
        tap_ok(r == -EIO && strstr(e.msg, "storage/initfail") &&
                   strstr(e.msg, "backend unreachable (fixture)"),
               "init failure is reported with the plugin's message: %s",
               e.msg);
        tap_ok(!p->started, "a plugin whose init failed is not started");
        plugin_close(p);
    }
    p = NULL;
    if (plugin_open(fixture("storage_badsetting.so"), &p, &e) == 0) {
        s = with("count", "3");
        r = plugin_start(p, &s, &e);
        tap_ok(r == -EINVAL && strstr(e.msg, "count must not be positive"),
               "a plugin refusing a setting value is reported: %s", e.msg);
        plugin_close(p);
    }

    /* not an ELF file, and a file name that is not <kind>_<name>.so */
    {
        char tmpl[] = "/tmp/surplus-loader.XXXXXX";
        char file[256];
        FILE *f;
        if (mkdtemp(tmpl) != NULL) {
            snprintf(file, sizeof(file), "%s/storage_text.so", tmpl);
            f = fopen(file, "w");
            if (f) {
                fputs("INPUT(-lc)\n", f);
                fclose(f);
            }
            p = NULL;
            r = plugin_open(file, &p, &e);
            tap_ok(r < 0 && strstr(e.msg, "storage_text.so") &&
                       strstr(e.msg, "not an ELF shared object") &&
                       strstr(e.msg, "core ABI 1.1"),
                   "a text file is refused as not an ELF object: %s", e.msg);
            unlink(file);
            rmdir(tmpl);
        }
        r = plugin_open(fixture("libsomething.so"), &p, &e);
        tap_ok(r == -EINVAL && strstr(e.msg, "<kind>_<name>.so"),
               "a file name without kind and name is refused: %s", e.msg);
        r = plugin_open(fixture("storage_absent.so"), &p, &e);
        tap_ok(r == -ENOENT && strstr(e.msg, "storage_absent.so"),
               "a missing file is reported: %s", e.msg);
    }

    /* search path */
    setenv("SURPLUS_PLUGIN_PATH", "/nonexistent-dir", 1);
    r = plugin_find("storage", "good", dir, &path, &e);
    tap_ok(r == 0 && path && strstr(path, "storage_good.so"),
           "plugin_find falls back from SURPLUS_PLUGIN_PATH to plugin_dir");
    free(path);
    path = NULL;
    setenv("SURPLUS_PLUGIN_PATH", dir, 1);
    r = plugin_find("storage", "good", "/nonexistent-dir", &path, &e);
    tap_ok(r == 0 && path != NULL, "SURPLUS_PLUGIN_PATH is searched first");
    free(path);
    path = NULL;
    r = plugin_find("storage", "nothere", "/other-dir", &path, &e);
    tap_ok(r == -ENOENT && strstr(e.msg, "storage_nothere.so") &&
               strstr(e.msg, "/other-dir") && strstr(e.msg, dir),
           "a plugin found nowhere names every directory searched: %s",
           e.msg);
    r = plugin_find("storage", "../etc", "/x", &path, &e);
    tap_ok(r == -EINVAL, "a plugin name with a path in it is refused");
    r = plugin_find("gadget", "good", "/x", &path, &e);
    tap_ok(r == -EINVAL, "an unknown kind is refused");
    return tap_done();
}
