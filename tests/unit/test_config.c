/* surplus.conf parsing: defaults, every key, and errors with file:line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "seccomp.h"
#include "tap.h"

#define TOKEN_A \
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static char dir[] = "/tmp/surplus-config.XXXXXX";
static char file[256];

static int load(const char *text, struct config **ret, struct err *e)
{
    FILE *f = fopen(file, "w");

    if (f == NULL)
        return -errno;
    fputs(text, f);
    fclose(f);
    *ret = NULL;
    return config_load(file, ret, e);
}

/* Expects a refusal naming file:line and `needle`. */
static void bad(const char *text, int line, const char *needle,
                const char *what)
{
    struct config *c = NULL;
    struct err e = {0};
    char where[300];
    int r = load(text, &c, &e);

    snprintf(where, sizeof(where), "%s:%d:", file, line);
    tap_ok(r == -EINVAL && c == NULL && strstr(e.msg, where) != NULL &&
               strstr(e.msg, needle) != NULL,
           "%s: %s", what, e.msg);
    config_free(c);
}

static const char *setting_str(const struct settings *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].key, key) == 0)
            return s->v[i].str;
    return NULL;
}

int main(void)
{
    struct config *c = NULL;
    struct err e = {0};
    int r;

    if (mkdtemp(dir) == NULL)
        return 99;
    snprintf(file, sizeof(file), "%s/surplus.conf", dir);

    /* the example from the architecture, every key */
    r = load("state_dir  = \"/srv/surplus\";\n"
             "plugin_dir = \"/opt/surplus/plugins\";\n"
             "storage    = { plugin = \"local\"; path = \"/srv/store\"; };\n"
             "accounting = { plugin = \"sqlite\"; path = \"/srv/ledger.db\"; };\n"
             "accelerators = ( { plugin = \"cuda\"; },\n"
             "  { plugin = \"sim\"; count = 2; model = \"SIM-80G\"; memory = \"80G\"; } );\n"
             "limits  = { max_bundle_bytes = \"2G\"; max_unpacked_bytes = \"16G\";\n"
             "            max_entries = 100000; max_walltime = \"24h\"; };\n"
             "sandbox = { network = \"none\"; uid_base = 200000; kill_grace = \"5s\"; };\n"
             "api     = { socket = \"/run/surplus/surplus.sock\"; listen = \"127.0.0.1:8443\";\n"
             "            tls_cert = \"cert.pem\"; tls_key = \"/etc/key.pem\"; };\n"
             "tenants = ( { name = \"acme\"; token_sha256 = \""
             "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\";"
             " max_gpus = 8; max_queued = 10000; } );\n"
             "pricing = { currency = \"USD\"; cpu_hour = 0.03;\n"
             "            gpu = ( { model = \"H100*\"; hour = 2.10; }, { model = \"*\"; hour = 3; } ); };\n",
             &c, &e);
    tap_ok(r == 0, "the full example configuration loads: %s", e.msg);
    if (r == 0) {
        tap_is_str(c->state_dir, "/srv/surplus", "state_dir");
        tap_is_str(c->plugin_dir, "/opt/surplus/plugins", "plugin_dir");
        tap_is_str(c->storage.plugin, "local", "storage.plugin");
        tap_is_str(setting_str(&c->storage.settings, "path"), "/srv/store",
                   "storage.path");
        tap_is_int(c->n_accelerators, 2, "two accelerator groups");
        tap_is_str(c->accelerators[1].plugin, "sim", "accelerators[1]");
        tap_is_str(setting_str(&c->accelerators[1].settings, "memory"), "80G",
                   "plugin settings are kept for the plugin");
        tap_ok(c->limits.max_bundle_bytes == (UINT64_C(2) << 30),
               "max_bundle_bytes 2G");
        tap_ok(c->limits.max_unpacked_bytes == (UINT64_C(16) << 30),
               "max_unpacked_bytes 16G");
        tap_is_int(c->limits.max_entries, 100000, "max_entries");
        tap_is_int(c->limits.max_walltime_ms, 24 * 3600 * 1000,
                   "max_walltime 24h");
        tap_ok(!c->sandbox.network_host, "network none");
        tap_ok(!c->sandbox.best_effort,
               "limits are enforced unless the file says otherwise");
        tap_is_int(c->sandbox.uid_base, 200000, "uid_base");
        tap_is_int(c->sandbox.kill_grace_ms, 5000, "kill_grace");
        tap_is_str(c->api.listen, "127.0.0.1:8443", "api.listen");
        tap_ok(strncmp(c->api.tls_cert, dir, strlen(dir)) == 0,
               "a relative tls_cert is relative to the file: %s",
               c->api.tls_cert);
        tap_is_int(c->n_tenants, 1, "one tenant");
        tap_is_str(c->tenants[0].name, "acme", "tenant name");
        tap_is_int(c->tenants[0].max_gpus, 8, "max_gpus");
        tap_is_str(c->pricing.currency, "USD", "currency");
        tap_ok(c->pricing.cpu_hour > 0.0299 && c->pricing.cpu_hour < 0.0301,
               "cpu_hour");
        tap_ok(c->pricing.n_gpu == 2 && c->pricing.gpu[1].hour == 3.0,
               "an integer price is accepted as a number");
    }
    config_free(c);

    /* defaults */
    r = load("# nothing\n", &c, &e);
    tap_ok(r == 0, "an empty file is valid");
    if (r == 0) {
        char want[512];
        snprintf(want, sizeof(want), "%s/store", c->state_dir);
        tap_is_str(setting_str(&c->storage.settings, "path"), want,
                   "storage path defaults to state_dir/store");
        tap_is_str(c->storage.plugin, "local", "storage defaults to local");
        tap_is_str(c->accounting.plugin, "sqlite",
                   "accounting defaults to sqlite");
        tap_is_int(c->n_accelerators, 0, "no accelerators by default");
        tap_is_int(c->limits.max_entries, 100000, "max_entries default");
        tap_is_int(c->sandbox.kill_grace_ms, 10000, "kill_grace default 10s");
        tap_is_int(c->sandbox.uid_base, 200000, "uid_base default");
        tap_ok(c->storage.settings.n == 1 && c->storage.settings.v[0].implicit,
               "the default path is implicit (a plugin may ignore it)");
    }
    config_free(c);

    r = load("state_dir = \"state\";\n", &c, &e);
    tap_ok(r == 0 && strncmp(c->state_dir, dir, strlen(dir)) == 0 &&
               strstr(setting_str(&c->accounting.settings, "path"),
                      "/state/ledger.db") != NULL,
           "a relative state_dir is relative to the file, and the ledger "
           "follows it");
    config_free(c);

    /* A switched plugin gets a default path of its own, never the old
     * plugin's files; an explicit path stays as written. */
    r = load("state_dir = \"/srv/s\";\n"
             "storage = { plugin = \"s3\"; };\n"
             "accounting = { plugin = \"postgres\"; };\n",
             &c, &e);
    tap_ok(r == 0, "other storage and accounting plugins load: %s", e.msg);
    if (r == 0) {
        tap_is_str(setting_str(&c->storage.settings, "path"),
                   "/srv/s/storage-s3", "storage/s3 defaults to "
                   "state_dir/storage-s3, not the local store");
        tap_is_str(setting_str(&c->accounting.settings, "path"),
                   "/srv/s/accounting-postgres", "accounting/postgres "
                   "defaults to state_dir/accounting-postgres, not "
                   "ledger.db");
        tap_ok(c->accounting.settings.n == 1 &&
                   c->accounting.settings.v[0].implicit,
               "and that default is implicit too");
    }
    config_free(c);
    r = load("state_dir = \"/srv/s\";\n"
             "storage = { plugin = \"local\"; };\n"
             "accounting = { plugin = \"sqlite\"; path = \"/db/l.db\"; };\n",
             &c, &e);
    tap_ok(r == 0 &&
               strcmp(setting_str(&c->storage.settings, "path"),
                      "/srv/s/store") == 0 &&
               strcmp(setting_str(&c->accounting.settings, "path"),
                      "/db/l.db") == 0,
           "storage/local keeps state_dir/store, an explicit path is kept");
    config_free(c);
    r = load("state_dir = \"/srv/s\";\n", &c, &e);
    tap_ok(r == 0 &&
               strcmp(setting_str(&c->accounting.settings, "path"),
                      "/srv/s/ledger.db") == 0,
           "accounting/sqlite keeps state_dir/ledger.db");
    config_free(c);

    /* errors, each with file:line */
    bad("state_dir = \"/x\";\n\nbogus = 1;\n", 3, "bogus: unknown key",
        "unknown top-level key");
    bad("limits = {\n  max_entries = 5;\n  max_entires = 6;\n};\n", 3,
        "limits.max_entires: unknown key", "unknown key in a group");
    bad("limits = { max_bundle_bytes = \"2X\"; };\n", 1,
        "limits.max_bundle_bytes: '2X' is not a size", "bad size");
    bad("limits = { max_unpacked_bytes = \"99999999999E\"; };\n", 1,
        "too large", "size overflow");
    bad("limits = {\n max_walltime = \"10 minutes\"; };\n", 2,
        "limits.max_walltime: '10 minutes' is not a duration",
        "bad duration");
    bad("limits = { max_entries = 0; };\n", 1, "out of range",
        "max_entries of 0");
    bad("limits = { max_entries = \"many\"; };\n", 1, "expected an integer",
        "max_entries of the wrong type");
    bad("sandbox = { network = \"bridge\"; };\n", 1,
        "sandbox.network: expected \"none\" or \"host\"", "bad network");
    bad("sandbox = {\n  limits = \"loose\"; };\n", 2,
        "sandbox.limits: expected \"enforce\" or \"best-effort\"",
        "bad sandbox.limits");
    bad("sandbox = { uid_base = 0; };\n", 1, "sandbox.uid_base",
        "uid_base 0 (root) refused");
    bad("sandbox = {\n seccomp = \"off\"; };\n", 2,
        "sandbox.seccomp: expected \"default\" or \"none\"",
        "bad seccomp mode");
    bad("sandbox = { seccomp_allow = [\"io_uring\",\n \"keyctl\"]; };\n", 2,
        "unknown group 'keyctl' (expected \"io_uring\" or "
        "\"perf_event_open\")",
        "seccomp_allow names an unknown group");
    bad("sandbox = { seccomp_allow = \"io_uring\"; };\n", 1,
        "sandbox.seccomp_allow: expected a list", "seccomp_allow not a list");
    bad("sandbox = { seccomp = \"none\";\n seccomp_allow = [\"io_uring\"]; };\n",
        2, "has no effect with seccomp = \"none\"",
        "seccomp_allow with seccomp = \"none\"");
    r = load("sandbox = { seccomp_allow = [\"io_uring\", \"perf_event_open\"]; };\n",
             &c, &e);
    tap_ok(r == 0 && !c->sandbox.seccomp_off &&
               c->sandbox.seccomp_allow ==
                   (SB_ALLOW_IO_URING | SB_ALLOW_PERF_EVENT_OPEN),
           "seccomp_allow gives back io_uring and perf_event_open");
    config_free(c);
    r = load("sandbox = { seccomp = \"none\"; };\n", &c, &e);
    tap_ok(r == 0 && c->sandbox.seccomp_off, "seccomp = \"none\" turns the "
                                           "filter off");
    config_free(c);
    r = load("sandbox = { pids = 100; };\n", &c, &e);
    tap_ok(r == 0 && !c->sandbox.seccomp_off && c->sandbox.seccomp_allow == 0,
           "the default filter by default");
    config_free(c);
    bad("accelerators = ( { plugin = \"sim\"; },\n { count = 2; } );\n", 2,
        "accelerators[1]: 'plugin' is required",
        "accelerator without a plugin");
    bad("accelerators = ( { plugin = \"../evil\"; } );\n", 1,
        "is not valid", "plugin name with a path");
    bad("storage = { plugin = \"local\";\n  opts = ( 1, 2 ); };\n", 2,
        "plugin settings must be strings, numbers or booleans",
        "list inside a plugin group");
    bad("tenants = ( { name = \"a\"; }, { name = \"a\"; } );\n", 1,
        "defined twice", "duplicate tenant");
    bad("tenants = ( { name = \"a\";\n token_sha256 = \"abc\"; } );\n", 2,
        "64 lower-case hex digits", "short token hash");
    bad("tenants = ( { name = \"Bad Name\"; } );\n", 1, "not valid",
        "bad tenant name");
    bad("tenants = ( { name = \"local\"; } );\n", 1, "is reserved",
        "the name the core gives root's own jobs is reserved");
    bad("tenants = ( { name = \"root\"; } );\n", 1, "is reserved",
        "tenant name root is reserved");
    bad("tenants = ( { name = \"a\"; token_sha256 = \"" TOKEN_A "\"; },\n"
        "  { name = \"b\"; token_sha256 = \"" TOKEN_A "\"; } );\n",
        2, "same token as tenant 'a'", "two tenants with one token");
    {
        char text[512];

        snprintf(text, sizeof text, "api = {\n socket = \"/%0200d\"; };\n", 0);
        bad(text, 2, "shorter than 108 bytes", "a socket path too long");
    }
    /* Left out, api.socket keeps its default, however long the
     * --runstatedir it came from (make distcheck's is): loading must not
     * depend on it, nor crash over the missing setting. */
    c = NULL;
    r = load("api = { listen = \"\"; };\n", &c, &e);
    tap_ok(r == 0 && c != NULL && c->api.socket[0] == '/',
           "an api group without socket loads with the default socket "
           "(%zu bytes): %s",
           c ? strlen(c->api.socket) : 0, e.msg);
    config_free(c);
    bad("api = { listen = \"0.0.0.0:8443\"; };\n", 1,
        "TCP listening requires tls_cert and tls_key",
        "TCP without TLS");
    bad("api = { listen = \"nope\"; tls_cert = \"a\"; tls_key = \"b\"; };\n",
        1, "HOST:PORT", "listen without a port");
    bad("pricing = { currency = \"dollars\"; };\n", 1, "ISO 4217",
        "bad currency");
    bad("pricing = { gpu = ( { model = \"H100*\"; } ); };\n", 1,
        "'hour' is required", "price without hour");
    bad("pricing = { cpu_hour = -1.0; };\n", 1, "expected a number from 0",
        "negative price");
    /* storage_quota: none by default, a size, tenants' own override it */
    r = load("# nothing\n", &c, &e);
    tap_ok(r == 0 && c->storage_quota == 0, "no storage_quota by default");
    config_free(c);
    r = load("storage_quota = \"50G\";\n"
             "tenants = ( { name = \"a\"; },\n"
             "  { name = \"b\"; storage_quota = \"1.5M\"; },\n"
             "  { name = \"c\"; storage_quota = 0; } );\n",
             &c, &e);
    tap_ok(r == 0 && c->storage_quota == (UINT64_C(50) << 30) &&
               !c->tenants[0].has_storage_quota &&
               c->tenants[1].has_storage_quota &&
               c->tenants[1].storage_quota == 3 * (UINT64_C(1) << 19) &&
               c->tenants[2].has_storage_quota &&
               c->tenants[2].storage_quota == 0,
           "storage_quota = \"50G\", a tenant's own 1.5M, another's 0 "
           "(none): %s",
           e.msg);
    config_free(c);
    bad("storage_quota = \"50 gigs\";\n", 1,
        "storage_quota: '50 gigs' is not a size", "bad storage_quota");
    bad("tenants = ( { name = \"a\";\n storage_quota = -1; } );\n", 2,
        "tenants[0].storage_quota: a size cannot be negative",
        "negative storage_quota of a tenant");
    bad("tenants = ( { name = \"a\";\n storage_quota = [1]; } );\n", 2,
        "storage_quota: expected a size", "storage_quota of the wrong type");
    bad("state_dir = \"/x\";\nlimits = { max_entries = ; };\n", 2, "syntax error",
        "syntax error is reported with file:line");
    bad("log_level = \"loud\";\n", 1, "expected error, warning",
        "bad log level");

    /* no file at all: the built-in defaults */
    if (access(config_default_path(), F_OK) == 0) {
        tap_ok(1, "built-in defaults # SKIP %s exists", config_default_path());
    } else {
        c = NULL;
        r = config_load(NULL, &c, &e);
        tap_ok(r == 0 && c != NULL && c->path == NULL &&
                   strcmp(c->storage.plugin, "local") == 0 &&
                   setting_str(&c->accounting.settings, "path") != NULL,
               "without a configuration file the built-in defaults load: %s",
               e.msg);
        config_free(c);
    }

    r = config_load("/nonexistent/surplus.conf", &c, &e);
    tap_ok(r == -ENOENT && strstr(e.msg, "/nonexistent/surplus.conf"),
           "a missing configuration file named explicitly is an error: %s",
           e.msg);

    unlink(file);
    rmdir(dir);
    return tap_done();
}
