/* job.conf parsing: every field, the defaults, and every refusal with the
 * field and the line. */
#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "manifest.h"
#include "tap.h"

#define GIB (UINT64_C(1) << 30)
#define MIB (UINT64_C(1) << 20)

static char dir[] = "/tmp/surplus-manifest.XXXXXX";
static char include_file[300];
static struct config *cf;        /* max_walltime 24h, max_unpacked 16G */
static struct config *cf_small;  /* max_walltime 30m, max_unpacked 512M */

/* A value no parse may store: *ret must be left alone on failure. */
static struct job_spec untouched;

static int parse_len(const char *text, size_t len, const struct config *c,
                     struct job_spec **spec, struct err *e)
{
    *spec = &untouched;
    err_clear(e);
    return manifest_parse(text, len, "job.conf", c, spec, e);
}

static int parse(const char *text, struct job_spec **spec, struct err *e)
{
    return parse_len(text, strlen(text), cf, spec, e);
}

/* Expects a refusal that starts "job.conf:LINE: " (or "job.conf: " when
 * line is 0) and contains `needle`. */
static void bad_len(const char *text, size_t len, int line, const char *needle,
                    const char *what)
{
    struct job_spec *spec;
    struct err e;
    char prefix[64];
    int r = parse_len(text, len, cf, &spec, &e);

    if (line > 0)
        snprintf(prefix, sizeof(prefix), "job.conf:%d: ", line);
    else
        snprintf(prefix, sizeof(prefix), "job.conf: ");
    tap_ok(r == -EINVAL && e.code == -EINVAL && spec == &untouched &&
               strncmp(e.msg, prefix, strlen(prefix)) == 0 &&
               strstr(e.msg, needle) != NULL,
           "%s: %s", what, e.msg);
    if (r == 0)
        job_spec_free(spec);
}

static void bad(const char *text, int line, const char *needle,
                const char *what)
{
    bad_len(text, strlen(text), line, needle, what);
}

/* The smallest valid manifest followed by `extra`, which starts on line 4. */
static char *with(const char *extra)
{
    static char buf[1 << 20];

    snprintf(buf, sizeof(buf),
             "api = 1;\nname = \"t\";\ncommand = [\"./run\"];\n%s", extra);
    return buf;
}

static int load_config(const char *name, const char *text,
                       struct config **ret)
{
    char path[300];
    struct err e = {0};
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "w")) == NULL)
        return -errno;
    fputs(text, f);
    fclose(f);
    if (config_load(path, ret, &e) < 0) {
        tap_diag("%s", e.msg);
        return -1;
    }
    unlink(path);
    return 0;
}

static void test_example(void)
{
    struct job_spec *s;
    struct err e;
    int r = parse(
        "api = 1;\n"
        "name = \"saxpy\";\n"
        "command = [\"./saxpy\", \"--n\", \"1000000\"];   # argv, no shell\n"
        "env = { OMP_NUM_THREADS = \"4\"; };\n"
        "resources = { gpus = 1; model = \"H100*\"; gpu_memory = \"40G\";\n"
        "              cpus = 2; memory = \"8G\"; walltime = \"10m\"; "
        "disk = \"2G\"; };\n"
        "outputs = [\"out/\", \"metrics.json\"];          # collected after\n",
        &s, &e);

    if (!tap_ok(r == 0 && s != &untouched, "the example parses: %s", e.msg))
        return;
    tap_is_int(s->api, 1, "api");
    tap_is_str(s->name, "saxpy", "name");
    tap_is_int(s->argc, 3, "argc");
    tap_is_str(s->argv[0], "./saxpy", "argv[0]");
    tap_is_str(s->argv[1], "--n", "argv[1]");
    tap_is_str(s->argv[2], "1000000", "argv[2]");
    tap_ok(s->argv[3] == NULL, "argv is NULL-terminated");
    tap_is_int(s->n_env, 1, "n_env");
    tap_is_str(s->env[0], "OMP_NUM_THREADS=4", "env[0]");
    tap_ok(s->env[1] == NULL, "env is NULL-terminated");
    tap_is_int(s->resources.gpus, 1, "gpus");
    tap_is_str(s->resources.model, "H100*", "model");
    tap_is_int(s->resources.gpu_memory, 40 * GIB, "gpu_memory");
    tap_is_int(s->resources.cpus, 2, "cpus");
    tap_is_int(s->resources.memory, 8 * GIB, "memory");
    tap_is_int(s->resources.walltime_ms, 600000, "walltime");
    tap_is_int(s->resources.disk, 2 * GIB, "disk");
    tap_is_int(s->n_outputs, 2, "n_outputs");
    tap_is_str(s->outputs[0], "out/", "outputs[0]");
    tap_is_str(s->outputs[1], "metrics.json", "outputs[1]");
    job_spec_free(s);
}

static void test_defaults(void)
{
    const char *min = "api = 1; name = \"a\"; command = (\"./a\");";
    struct job_spec *s;
    struct err e;
    int r = parse(min, &s, &e);

    if (tap_ok(r == 0, "a minimal manifest (command as a list): %s",
               e.msg)) {
        tap_is_int(s->resources.gpus, 0, "default gpus");
        tap_is_str(s->resources.model, "*", "default model");
        tap_is_int(s->resources.gpu_memory, 0, "default gpu_memory");
        tap_is_int(s->resources.cpus, 1, "default cpus");
        tap_is_int(s->resources.memory, GIB, "default memory");
        tap_is_int(s->resources.walltime_ms, 3600000, "default walltime");
        tap_is_int(s->resources.disk, GIB, "default disk");
        tap_ok(s->n_env == 0 && s->env != NULL && s->env[0] == NULL,
               "no env: an empty NULL-terminated list");
        tap_ok(s->n_outputs == 0 && s->outputs != NULL &&
                   s->outputs[0] == NULL,
               "no outputs: an empty NULL-terminated list");
        tap_ok(!s->requeue, "default requeue: false (a restart fails it)");
        job_spec_free(s);
    }

    /* A node below the defaults lowers them rather than refusing. */
    r = parse_len(min, strlen(min), cf_small, &s, &e);
    if (tap_ok(r == 0, "the minimal manifest on a small node: %s", e.msg)) {
        tap_is_int(s->resources.walltime_ms, 30 * 60000,
                   "default walltime capped at max_walltime");
        tap_is_int(s->resources.disk, 512 * MIB,
                   "default disk capped at max_unpacked_bytes");
        job_spec_free(s);
    }

    /* Integers are bytes and seconds; L widens past 32 bits. */
    r = parse(with("resources = { memory = 5000000000L; walltime = 90; "
                   "gpu_memory = 1048576; disk = \"1.5G\"; };\n"
                   "env = { LD_LIBRARY_PATH = \"/opt/lib\"; "
                   "GREETING = \"h\xc3\xa9llo\\tx\"; };"),
              &s, &e);
    if (tap_ok(r == 0, "integer sizes and durations, UTF-8 values: %s",
               e.msg)) {
        tap_is_int(s->resources.memory, UINT64_C(5000000000),
                   "memory 5000000000L is exact");
        tap_is_int(s->resources.walltime_ms, 90000, "walltime 90 = 90 s");
        tap_is_int(s->resources.gpu_memory, MIB, "gpu_memory in bytes");
        tap_is_int(s->resources.disk, 3 * GIB / 2, "disk 1.5G");
        tap_is_str(s->env[0], "LD_LIBRARY_PATH=/opt/lib",
                   "LD_LIBRARY_PATH is the job's to set");
        tap_is_str(s->env[1], "GREETING=h\xc3\xa9llo\tx",
                   "UTF-8 and escapes in a value");
        job_spec_free(s);
    }

    /* Only `len` bytes are read: the text need not end in NUL. */
    {
        static const char t[] = "api = 1; name = \"a\"; command = [\"x\"];"
                                "@@@ not part of it";
        r = parse_len(t, strlen(t) - 18, cf, &s, &e);
        tap_ok(r == 0, "only len bytes are parsed: %s", e.msg);
        if (r == 0)
            job_spec_free(s);
    }

    r = parse("api = 1; name = \"a\"; command = [\"x\"]; # no newline", &s,
              &e);
    tap_ok(r == 0, "a comment on the last line needs no newline: %s", e.msg);
    if (r == 0)
        job_spec_free(s);
    job_spec_free(NULL);
}

static void test_api_name_command(void)
{
    char *big;
    size_t off;

    bad("name = \"a\";\napi = 2;\nfuture = 1;\n", 2,
        "api: api 2 is newer than this node supports (1)", "api 2");
    bad("api = 0;\n", 1, "api: 0 is out of range (1 to 1)", "api 0");
    bad("\napi = \"1\";\n", 2, "api: expected an integer", "api as a string");
    bad("name = \"a\";\ncommand = [\"x\"];\n", 0, "api: required",
        "api missing");
    bad("api = 1;\ncommand = [\"x\"];\n", 0, "name: required",
        "name missing");
    bad("api = 1;\n\nname = \".hidden\";\ncommand = [\"x\"];", 3,
        "name: '.hidden' is not a valid name", "name starting with '.'");
    bad("api = 1;\nname = \"-rf\";\n", 2, "name: '-rf' is not a valid name",
        "name starting with '-'");
    bad("api = 1;\nname = \"a b\";\n", 2, "name: 'a b' is not a valid name",
        "name with a space");
    bad("api = 1;\nname = \"\";\n", 2, "name: '' is not a valid name",
        "empty name");
    bad("api = 1;\nname = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaa\";\n", 2, "not a valid name",
        "name of 65 characters");
    bad("api = 1;\nname = 5;\n", 2, "name: expected a string",
        "name as a number");
    bad("api = 1;\nname = \"a\";\n", 0, "command: required",
        "command missing");
    bad("api = 1;\nname = \"a\";\ncommand = [];\n", 3,
        "command: must not be empty", "empty command");
    bad("api = 1;\nname = \"a\";\ncommand = \"./run --fast\";\n", 3,
        "command: expected an array of strings", "command as a string");
    bad("api = 1;\nname = \"a\";\ncommand = [\"\", \"x\"];\n", 3,
        "command[0]: the program must not be empty", "empty argv[0]");
    bad("api = 1;\nname = \"a\";\ncommand = (\"./x\",\n 1);\n", 4,
        "command[1]: expected a string", "a number in command");
    bad("api = 1;\nname = \"a\";\ncommand = [\"./x\", \"a\\nb\"];\n", 3,
        "command[1]: contains a control character", "newline in an argument");
    bad("api = 1;\nname = \"a\";\ncommand = [\"./x\", \"\\x7f\"];\n", 3,
        "command[1]: contains a control character", "DEL in an argument");
    bad("api = 1;\nname = \"a\";\ncommand = [\"./x\", \"\\xff\"];\n", 3,
        "command[1]: invalid UTF-8", "invalid UTF-8 through an escape");
    bad("api = 1;\nname = \"a\";\ncommand = [\"x\"];\npriority = 5;\n", 4,
        "priority: unknown key", "unknown top-level key");

    /* 4097 arguments; then one argument of 4097 bytes. */
    big = malloc(1 << 20);
    if (big == NULL)
        exit(99);
    off = (size_t)sprintf(big, "api = 1;\nname = \"a\";\ncommand = [\"x\"");
    for (int i = 1; i < 4097; i++)
        off += (size_t)sprintf(big + off, ",\"\"");
    sprintf(big + off, "];\n");
    bad(big, 3, "command: 4097 arguments, more than 4096",
        "too many arguments");
    off = (size_t)sprintf(big, "api = 1;\nname = \"a\";\ncommand = [\"x\",\n"
                               "\"");
    memset(big + off, 'a', 4097);
    sprintf(big + off + 4097, "\"];\n");
    bad(big, 4, "command[1]: 4097 bytes, more than 4096",
        "an argument over 4096 bytes");
    free(big);
}

static void test_env(void)
{
    char *big;
    size_t off;

    bad(with("env = {\n HOME = \"/root\"; };"), 5,
        "env.HOME: the runner sets HOME", "HOME is reserved");
    bad(with("env = { TMPDIR = \"/x\"; };"), 4, "env.TMPDIR: the runner sets",
        "TMPDIR is reserved");
    bad(with("env = { A = \"1\";\n LD_PRELOAD = \"/x.so\"; };"), 5,
        "env.LD_PRELOAD: the runner sets", "LD_PRELOAD is reserved");
    bad(with("env = { LD_AUDIT = \"/x.so\"; };"), 4,
        "env.LD_AUDIT: the runner sets", "LD_AUDIT is reserved");
    bad(with("env = { CUDA_VISIBLE_DEVICES = \"0,1,2,3\"; };"), 4,
        "env.CUDA_VISIBLE_DEVICES: the runner sets",
        "CUDA_VISIBLE_DEVICES is reserved");
    bad(with("env = { NVIDIA_VISIBLE_DEVICES = \"all\"; };"), 4,
        "env.NVIDIA_VISIBLE_DEVICES: the runner sets",
        "NVIDIA_VISIBLE_DEVICES is reserved");
    bad(with("env = { SURPLUS_JOB_ID = \"1\"; };"), 4,
        "env.SURPLUS_JOB_ID: the runner sets every SURPLUS_* variable",
        "SURPLUS_* is reserved");
    bad(with("env = { A-B = \"1\"; };"), 4,
        "env.A-B: not a valid variable name", "a name with '-'");
    bad(with("env = { N = 4; };"), 4, "env.N: expected a string",
        "an integer value");
    bad(with("env = [\"A=1\"];"), 4, "env: expected a group",
        "env as an array");

    big = malloc(1 << 20);
    if (big == NULL)
        exit(99);
    off = (size_t)sprintf(big, "env = {\n");
    for (int i = 0; i < 257; i++)
        off += (size_t)sprintf(big + off, "V%d = \"\";\n", i);
    sprintf(big + off, "};\n");
    bad(with(big), 4, "env: 257 variables, more than 256",
        "too many variables");
    off = (size_t)sprintf(big, "env = {\nBIG = \"");
    memset(big + off, 'v', 32 * 1024 + 1);
    sprintf(big + off + 32 * 1024 + 1, "\"; };\n");
    bad(with(big), 5, "env.BIG: 32769 bytes, more than 32768",
        "a value over 32 KiB");
    free(big);
}

static void test_requeue(void)
{
    static const struct {
        const char *text;
        bool want;
    } good[] = {{"requeue = true;", true},
                {"requeue = false;", false},
                {"requeue = TRUE;", true}};
    struct job_spec *s;
    struct err e;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int r = parse(with(good[i].text), &s, &e);

        if (tap_ok(r == 0, "%s parses: %s", good[i].text, e.msg)) {
            tap_ok(s->requeue == good[i].want, "%s: requeue is %s",
                   good[i].text, good[i].want ? "true" : "false");
            job_spec_free(s);
        }
    }
    bad(with("requeue = 1;"), 4, "requeue: expected true or false",
        "requeue as an integer");
    bad(with("\nrequeue = \"yes\";"), 5, "requeue: expected true or false",
        "requeue as a string");
    bad(with("requeue = [true];"), 4, "requeue: expected true or false",
        "requeue as an array");
    bad(with("resources = { requeue = true; };"), 4,
        "resources.requeue: unknown key", "requeue inside resources");
}

static void test_resources(void)
{
    bad(with("resources = { gpus = 1;\n  gpus = 2; };"), 5,
        "duplicate setting name", "a duplicate key (libconfig)");
    bad(with("resources = { gpus = 1;\n  gpu = 2; };"), 5,
        "resources.gpu: unknown key", "unknown key in resources");
    bad(with("resources = {\n gpus = 300; };"), 5,
        "resources.gpus: 300 is out of range (0 to 64)", "gpus 300");
    bad(with("resources = { gpus = -1; };"), 4,
        "resources.gpus: -1 is out of range (0 to 64)", "gpus -1");
    bad(with("resources = { gpus = 1.5; };"), 4,
        "resources.gpus: expected an integer", "gpus as a float");
    bad(with("resources = { cpus = 0; };"), 4,
        "resources.cpus: 0 is out of range (1 to 1024)", "cpus 0");
    bad(with("resources = { cpus = 1025; };"), 4,
        "resources.cpus: 1025 is out of range (1 to 1024)", "cpus 1025");
    bad(with("resources = { model = \"\"; };"), 4,
        "resources.model: 0 characters", "empty model");
    bad(with("resources = { model = \"H100\\tPCIe\"; };"), 4,
        "resources.model: only printable ASCII", "a tab in the model");
    bad(with("resources = { model = \"H100 \xe2\x80\x93 SXM\"; };"), 4,
        "resources.model: only printable ASCII", "non-ASCII in the model");
    bad(with("resources = { gpu_memory = \"lots\"; };"), 4,
        "resources.gpu_memory: 'lots' is not a size", "gpu_memory 'lots'");
    bad(with("resources = { gpu_memory = [1]; };"), 4,
        "resources.gpu_memory: expected a size", "gpu_memory as an array");
    bad(with("resources = { memory = \"512K\"; };"), 4,
        "resources.memory: 512.0 KiB is less than the minimum, 1.0 MiB",
        "memory below 1M");
    bad(with("resources = { memory = -1; };"), 4,
        "resources.memory: a size cannot be negative", "negative memory");
    bad(with("resources = { memory = \"99999999999E\"; };"), 4,
        "resources.memory: '99999999999E' is too large",
        "a size that overflows");
    bad(with("\nresources = { memory = 99999999999; };"), 5,
        "integer 99999999999 does not fit in 32 bits; append L (99999999999L)",
        "a 64-bit integer without L (libconfig 1.5 would truncate it)");
    bad(with("resources = { memory = 99999999999999999999L; };"), 4,
        "integer 99999999999999999999L does not fit in 64 bits",
        "an integer past 64 bits");
    bad(with("resources = { disk = 0x100000001; };"), 4,
        "integer 0x100000001 does not fit in 32 bits",
        "a hex integer past 32 bits");
    bad(with("resources = { walltime = \"25h\"; };"), 4,
        "resources.walltime: 1d1h is more than this node allows (1d, "
        "limits.max_walltime)", "walltime over the node's limit");
    bad(with("resources = { walltime = 0; };"), 4,
        "resources.walltime: must be more than 0", "walltime 0");
    bad(with("resources = { walltime = \"soon\"; };"), 4,
        "resources.walltime: 'soon' is not a duration", "walltime 'soon'");
    bad(with("resources = { disk = \"17G\"; };"), 4,
        "resources.disk: 17.0 GiB is more than this node allows (16.0 GiB, "
        "limits.max_unpacked_bytes)", "disk over max_unpacked_bytes");
    bad(with("resources = 4;"), 4, "resources: expected a group",
        "resources as an integer");
}

static void test_outputs(void)
{
    char *big;
    size_t off;

    bad(with("outputs = [\"out/\",\n \"../etc/\"];"), 5,
        "outputs[1]: '../etc/' has a \".\" or \"..\" component",
        "'..' in an output");
    bad(with("outputs = [\"a/../../b\"];"), 4, "outputs[0]: 'a/../../b' has a",
        "'..' inside an output");
    bad(with("outputs = [\"./a\"];"), 4, "'./a' has a \".\" or \"..\"",
        "'.' in an output");
    bad(with("outputs = [\"/etc/shadow\"];"), 4,
        "outputs[0]: '/etc/shadow' is an absolute path", "absolute output");
    bad(with("outputs = [\"out/\", \"m.json\",\n \"out\"];"), 5,
        "outputs[2]: 'out' is listed twice (also outputs[0])",
        "duplicate output");
    bad(with("outputs = [\"a//b\"];"), 4, "has an empty component",
        "'//' in an output");
    bad(with("outputs = [\"out//\"];"), 4, "has an empty component",
        "two trailing slashes");
    bad(with("outputs = [\"\"];"), 4, "outputs[0]: '' is empty",
        "empty output");
    bad(with("outputs = [\"a\\nb\"];"), 4, "contains a control character",
        "newline in an output");
    bad(with("outputs = \"out/\";"), 4, "outputs: expected an array",
        "outputs as a string");

    big = malloc(1 << 16);
    if (big == NULL)
        exit(99);
    off = (size_t)sprintf(big, "outputs = [\n");
    for (int i = 0; i < 257; i++)
        off += (size_t)sprintf(big + off, "\"o%d\",", i);
    sprintf(big + off - 1, "];\n");
    bad(with(big), 4, "outputs: 257 paths, more than 256",
        "too many outputs");
    off = (size_t)sprintf(big, "outputs = [\"");
    memset(big + off, 'a', 1025);
    sprintf(big + off + 1025, "\"];\n");
    bad(with(big), 4, "is longer than 1024 bytes",
        "an output over 1024 bytes");
    off = (size_t)sprintf(big, "outputs = [\"d/");
    memset(big + off, 'a', 256);
    sprintf(big + off + 256, "\"];\n");
    bad(with(big), 4, "has a component longer than 255 bytes",
        "an output component over 255 bytes");
    off = (size_t)sprintf(big, "outputs = [\"");
    for (int i = 0; i < 65; i++)
        off += (size_t)sprintf(big + off, "a/");
    sprintf(big + off, "\"];\n");
    bad(with(big), 4, "has more than 64 components",
        "an output of 65 components");
    free(big);
}

static void test_text(void)
{
    static const char nul[] = "api = 1;\nname = \"a\0b\";\ncommand = [\"x\"];";
    char text[600], *big;
    config_t lc;
    FILE *f;
    int read;

    /* Show that the refusal is what stands between a tenant and the host's
     * files: libconfig itself does read the included file. */
    f = fopen(include_file, "w");
    if (f == NULL)
        exit(99);
    fputs("name = \"pwned\";\n", f);
    fclose(f);
    snprintf(text, sizeof(text), "api = 1;\ncommand = [\"x\"];\n"
                                 "  @include \"%s\"\n", include_file);
    config_init(&lc);
    read = config_read_string(&lc, text) == CONFIG_TRUE &&
           config_lookup(&lc, "name") != NULL;
    config_destroy(&lc);
    tap_ok(read, "libconfig on its own reads the @include'd file");
    bad(text, 3, "@include is not allowed", "@include refused");
    snprintf(text, sizeof(text), "api = 1;\ncommand = [\"x\"];\n\n"
                                 "\t@INCLUDE \"%s\"\n", include_file);
    bad(text, 4, "@include is not allowed", "@INCLUDE after a tab refused");
    snprintf(text, sizeof(text), "@include \"%s\"\n", include_file);
    bad(text, 1, "@include is not allowed", "@include on the first line");
    {
        struct job_spec *s;
        struct err e;
        int r = parse(with("env = { A = \"@include \\\"/etc/passwd\\\"\"; };"),
                      &s, &e);

        tap_ok(r == 0 && strcmp(s->env[0], "A=@include \"/etc/passwd\"") == 0,
               "@include inside a string is only text: %s", e.msg);
        if (r == 0)
            job_spec_free(s);
    }

    bad_len(nul, sizeof(nul) - 1, 2, "contains a NUL byte", "a NUL byte");
    bad(with("\nenv = { A = \"\xff\"; };"), 5, "invalid UTF-8 (byte 0xff)",
        "invalid UTF-8");
    bad(with("env = { A = \"\xc0\xaf\"; };"), 4, "invalid UTF-8",
        "overlong UTF-8");
    bad(with("env = { A = \"\xed\xa0\x80\"; };"), 4, "invalid UTF-8",
        "a UTF-16 surrogate in UTF-8");
    bad(with("env = { A = \"\xe2\x82\"; };"), 4, "invalid UTF-8",
        "truncated UTF-8");
    bad("api = 1;\nname = \"x\";\ncommand = = [\"a\"];\n", 3, "syntax error",
        "a syntax error names its line");

    /* Thousands of nested lists would be thousands of stack frames when
     * libconfig frees them. */
    big = malloc(8192);
    if (big == NULL)
        exit(99);
    strcpy(big, "\nx = ");
    memset(big + 5, '(', 3000);
    big[3005] = '1';
    memset(big + 3006, ')', 3000);
    strcpy(big + 6006, ";\n");
    bad(with(big), 5, "nested more than 8 deep", "deep nesting");
    bad(with("x = ((((((((1))))))));"), 4, "x: unknown key",
        "eight levels are left to libconfig");
    free(big);

    /* A manifest of exactly MANIFEST_MAX_BYTES parses; one byte more
     * does not. */
    big = malloc(MANIFEST_MAX_BYTES + 2);
    if (big == NULL)
        exit(99);
    {
        const char *head = "api = 1; name = \"a\"; command = [\"x\"];\n#";
        struct job_spec *s;
        struct err e;
        size_t hl = strlen(head);
        int r;

        memcpy(big, head, hl);
        memset(big + hl, 'c', MANIFEST_MAX_BYTES + 1 - hl);
        r = parse_len(big, MANIFEST_MAX_BYTES, cf, &s, &e);
        tap_ok(r == 0, "a manifest of %d bytes parses: %s",
               MANIFEST_MAX_BYTES, e.msg);
        if (r == 0)
            job_spec_free(s);
        bad_len(big, MANIFEST_MAX_BYTES + 1, 0,
                "65537 bytes, more than the 65536", "an oversized manifest");
    }
    free(big);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 99;
    snprintf(include_file, sizeof(include_file), "%s/inc.conf", dir);
    if (load_config("big.conf", "limits = { max_walltime = \"24h\"; "
                                "max_unpacked_bytes = \"16G\"; };\n",
                    &cf) < 0 ||
        load_config("small.conf", "limits = { max_walltime = \"30m\"; "
                                  "max_unpacked_bytes = \"512M\"; };\n",
                    &cf_small) < 0)
        return 99;

    test_example();
    test_defaults();
    test_api_name_command();
    test_env();
    test_resources();
    test_requeue();
    test_outputs();
    test_text();

    config_free(cf);
    config_free(cf_small);
    unlink(include_file);
    rmdir(dir);
    return tap_done();
}
