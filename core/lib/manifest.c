/*
 * manifest.c - job.conf: tenant text in, a validated struct job_spec out.
 *
 * The text is checked as bytes before libconfig sees it, because libconfig
 * itself is not safe on hostile input: it follows @include directives to
 * files on the host, and libconfig 1.5 silently truncates integer literals
 * that do not fit its int type (memory = 5000000000 would become 705032704).
 */
#include "manifest.h"

#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "units.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

#define NAME_MAX_LEN 64
#define ARGS_MAX 4096
#define ARG_MAX_LEN 4096
#define ARGV_MAX_BYTES (128 * 1024)   /* every argument with its NUL */
#define ENV_MAX 256
#define ENV_VALUE_MAX_LEN (32 * 1024)
#define ENV_MAX_BYTES (256 * 1024)    /* every "NAME=value" with its NUL */
#define MODEL_MAX_LEN 128
#define GPUS_MAX 64
#define CPUS_MAX 1024
#define MEMORY_MIN MIB
#define OUTPUTS_MAX 256
#define OUTPUT_MAX_LEN 1024
#define OUTPUT_MAX_COMPONENT 255      /* NAME_MAX: no longer name can exist */
#define OUTPUT_MAX_DEPTH 64
#define NESTING_MAX 8

#define DEFAULT_MEMORY GIB
#define DEFAULT_DISK GIB
#define DEFAULT_WALLTIME_MS (UINT64_C(3600) * 1000)

/* Names the runner sets for every job; a job that could override them
 * could escape its device assignment, preload code into the runner's
 * helpers, or write outside its sandbox. */
static const char *const reserved_env[] = {
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_PRELOAD",
    "LD_AUDIT", "HOME", "TMPDIR", NULL};
#define RESERVED_ENV_PREFIX "SURPLUS_"

struct mf {
    const char *origin;
    const struct config *cf;
    struct err *e;
};

/* --- messages ---------------------------------------------------------------
 * Tenant strings appear in messages only through err_escape(), escaped and
 * shortened, so that they cannot forge log lines or flood the message. */

static int mf_nomem(struct mf *m)
{
    return err_set(m->e, -ENOMEM, "out of memory");
}

static int mf_bad(struct mf *m, const config_setting_t *st, const char *fmt,
                  ...) __attribute__((format(printf, 3, 4)));

static int mf_bad(struct mf *m, const config_setting_t *st, const char *fmt,
                  ...)
{
    char msg[1024], path[200] = "";
    va_list ap;

    settings_path(st, path, sizeof(path));
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_set(m->e, -EINVAL, "%s:%u: %s: %s", m->origin,
                   config_setting_source_line(st),
                   path, msg);
}

/* A required field that is absent has no line of its own to name. */
static int mf_missing(struct mf *m, const char *field, const char *what)
{
    return err_set(m->e, -EINVAL, "%s: %s: required (%s)", m->origin, field,
                   what);
}

/* --- the text as bytes ------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (n bytes left), or 0:
 * overlong forms, surrogates and code points past U+10FFFF are refused. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp, min;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);

    while (n > 0) {
        size_t l = utf8_seq(p, n);

        if (l == 0)
            return false;
        p += l;
        n -= l;
    }
    return true;
}

/* Control characters would let a tenant forge lines in logs and listings;
 * a tab is ordinary text in an argument. */
static bool has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return true;
    return false;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* libconfig honours "@include" at the start of a line (its scanner is
 * case-sensitive; refusing any case costs nothing and does not depend on
 * the libconfig version). */
static bool is_include(const char *t, size_t len, size_t i)
{
    while (i < len && is_blank(t[i]))
        i++;
    return len - i >= 8 && strncasecmp(t + i, "@include", 8) == 0;
}

static int mf_bytes(struct mf *m, const char *text, size_t len)
{
    const unsigned char *t = (const unsigned char *)text;
    unsigned line = 1;

    if (len > MANIFEST_MAX_BYTES)
        return err_set(m->e, -EINVAL, "%s: %zu bytes, more than the %d a "
                                      "manifest may have", m->origin, len,
                       MANIFEST_MAX_BYTES);
    for (size_t i = 0; i < len;) {
        size_t l;

        if (i == 0 || t[i - 1] == '\n') {
            if (is_include(text, len, i))
                return err_set(m->e, -EINVAL, "%s:%u: @include is not "
                                              "allowed in a manifest",
                               m->origin, line);
        }
        if (t[i] == '\0')
            return err_set(m->e, -EINVAL, "%s:%u: contains a NUL byte",
                           m->origin, line);
        if ((l = utf8_seq(t + i, len - i)) == 0)
            return err_set(m->e, -EINVAL, "%s:%u: invalid UTF-8 (byte "
                                          "0x%02x)", m->origin, line, t[i]);
        if (t[i] == '\n')
            line++;
        i += l;
    }
    return 0;
}

/* --- numbers and nesting ----------------------------------------------------
 * A pass over the text with libconfig's token rules, only as far as needed
 * to find numbers and brackets outside strings and comments.  An integer
 * without an L suffix must fit in 32 bits, one with it in 64: libconfig 1.5
 * truncates anything larger without a word, later versions widen it, and
 * the same manifest must mean the same thing on every node.  Nesting is
 * capped because libconfig frees a setting tree recursively, and thousands
 * of nested lists would otherwise be thousands of stack frames on whatever
 * thread parses the manifest; a valid one nests two deep. */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hex_value(char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool is_number_char(char c)
{
    return is_digit(c) || is_alpha(c) || c == '.' || c == '_';
}

/* The width (32 or 64) that the integer literal tok[0..n) overflows in
 * libconfig, or 0 when it fits; floats and malformed tokens give 0
 * (libconfig judges those). */
static int literal_overflow(const char *tok, size_t n)
{
    bool neg = false, wide = false, hex = false;
    uint64_t v = 0, max;
    size_t i = 0;

    if (tok[0] == '+' || tok[0] == '-')
        neg = tok[i++] == '-';
    if (n >= i + 2 && tok[i] == '0' &&
        (tok[i + 1] == 'x' || tok[i + 1] == 'X'))
        hex = true, i += 2;
    if (n > i && tok[n - 1] == 'L')
        wide = true, n -= (n > i + 1 && tok[n - 2] == 'L') ? 2 : 1;
    if (i >= n)
        return 0;
    for (size_t j = i; j < n; j++)
        if (hex ? hex_value(tok[j]) < 0 : !is_digit(tok[j]))
            return 0;   /* a float, or not a number at all */
    max = wide ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX;
    if (neg && !hex)
        max++;   /* two's complement: -2147483648 fits */
    for (; i < n; i++) {
        unsigned d = (unsigned)hex_value(tok[i]), base = hex ? 16 : 10;

        if (v > (UINT64_MAX - d) / base)
            return wide ? 64 : 32;
        v = v * base + d;
    }
    return v > max ? (wide ? 64 : 32) : 0;
}

/* Skips a string, a comment or a name at t[*i]; returns false when t[*i]
 * starts none of them. */
static bool skip_token(const char *t, size_t len, size_t *i, unsigned *line)
{
    size_t j = *i;

    if (t[j] == '"') {
        for (j++; j < len && t[j] != '"'; j++) {
            if (t[j] == '\\' && j + 1 < len)
                j++;
            if (t[j] == '\n')
                (*line)++;
        }
        *i = j + 1;
        return true;
    }
    if (t[j] == '#' || (t[j] == '/' && j + 1 < len && t[j + 1] == '/')) {
        while (j < len && t[j] != '\n')
            j++;
        *i = j;
        return true;
    }
    if (t[j] == '/' && j + 1 < len && t[j + 1] == '*') {
        for (j += 2; j < len && !(t[j] == '*' && j + 1 < len &&
                                  t[j + 1] == '/'); j++)
            if (t[j] == '\n')
                (*line)++;
        *i = j + 2;
        return true;
    }
    if (is_alpha(t[j]) || t[j] == '*') {
        while (j < len && (is_alpha(t[j]) || is_digit(t[j]) || t[j] == '_' ||
                           t[j] == '-' || t[j] == '*'))
            j++;
        *i = j;
        return true;
    }
    return false;
}

static int mf_literal(struct mf *m, const char *tok, size_t n,
                      unsigned line)
{
    int w = literal_overflow(tok, n), shown = n > 40 ? 40 : (int)n;

    if (w == 64)
        return err_set(m->e, -EINVAL, "%s:%u: integer %.*s does not fit in "
                                      "64 bits", m->origin, line, shown, tok);
    if (w == 32)
        return err_set(m->e, -EINVAL, "%s:%u: integer %.*s does not fit in "
                                      "32 bits; append L (%.*sL), or write "
                                      "a size as a string such as \"8G\"",
                       m->origin, line, shown, tok, shown, tok);
    return 0;
}

static int mf_scan(struct mf *m, const char *t, size_t len)
{
    unsigned line = 1, depth = 0;
    size_t i = 0;
    int r;

    while (i < len) {
        size_t start = i;

        if (t[i] == '\n') {
            line++;
            i++;
        } else if (t[i] == '(' || t[i] == '[' || t[i] == '{') {
            if (++depth > NESTING_MAX)
                return err_set(m->e, -EINVAL, "%s:%u: nested more than %d "
                                              "deep", m->origin, line,
                               NESTING_MAX);
            i++;
        } else if (t[i] == ')' || t[i] == ']' || t[i] == '}') {
            depth -= depth > 0;   /* unbalanced: libconfig says where */
            i++;
        } else if (skip_token(t, len, &i, &line)) {
            continue;
        } else if (is_digit(t[i]) || t[i] == '.' ||
                   ((t[i] == '+' || t[i] == '-') && i + 1 < len &&
                    (is_digit(t[i + 1]) || t[i + 1] == '.'))) {
            for (i++; i < len && (is_number_char(t[i]) ||
                                  ((t[i] == '+' || t[i] == '-') &&
                                   (t[i - 1] == 'e' || t[i - 1] == 'E')));
                 i++)
                ;
            if ((r = mf_literal(m, t + start, i - start, line)) < 0)
                return r;
        } else {
            i++;
        }
    }
    return 0;
}

/* --- typed fields -------------------------------------------------------- */

static bool is_int(const config_setting_t *st)
{
    return config_setting_type(st) == CONFIG_TYPE_INT ||
           config_setting_type(st) == CONFIG_TYPE_INT64;
}

static bool is_string_list(const config_setting_t *st)
{
    return config_setting_is_array(st) || config_setting_is_list(st);
}

/* Refuses members of `group` not named in `allowed`. */
static int mf_known(struct mf *m, const config_setting_t *group,
                    const char *const *allowed)
{
    const config_setting_t *st = settings_first_unknown(group, allowed);

    return st != NULL ? mf_bad(m, st, "unknown key") : 0;
}

static int mf_int(struct mf *m, const config_setting_t *g, const char *key,
                  int64_t min, int64_t max, uint32_t *dst)
{
    const config_setting_t *st = config_setting_get_member(g, key);
    int64_t v;

    if (st == NULL)
        return 0;
    if (!is_int(st))
        return mf_bad(m, st, "expected an integer");
    v = config_setting_get_int64(st);
    if (v < min || v > max)
        return mf_bad(m, st, "%lld is out of range (%lld to %lld)",
                      (long long)v, (long long)min, (long long)max);
    *dst = (uint32_t)v;
    return 0;
}

/* `limit` names the setting behind `max` for the message, or is NULL. */
static int mf_size(struct mf *m, const config_setting_t *g, const char *key,
                   uint64_t min, uint64_t max, const char *limit,
                   uint64_t *dst)
{
    const config_setting_t *st = config_setting_get_member(g, key);
    char q[80], a[32], b[32];
    uint64_t v;
    int r;

    if (st == NULL)
        return 0;
    if (is_int(st)) {
        if (config_setting_get_int64(st) < 0)
            return mf_bad(m, st, "a size cannot be negative");
        v = (uint64_t)config_setting_get_int64(st);
    } else if (config_setting_type(st) == CONFIG_TYPE_STRING) {
        const char *s = config_setting_get_string(st);

        r = units_parse_size(s, &v);
        if (r == -ERANGE)
            return mf_bad(m, st, "'%s' is too large",
                          err_escape(s, q, sizeof(q)));
        if (r < 0)
            return mf_bad(m, st, "'%s' is not a size (such as 512M or 16G)",
                          err_escape(s, q, sizeof(q)));
    } else {
        return mf_bad(m, st, "expected a size (bytes, or a string such as "
                             "\"16G\")");
    }
    if (v < min)
        return mf_bad(m, st, "%s is less than the minimum, %s",
                      units_format_size(v, a, sizeof(a)),
                      units_format_size(min, b, sizeof(b)));
    if (v > max)
        return mf_bad(m, st, "%s is more than this node allows (%s, "
                             "limits.%s)",
                      units_format_size(v, a, sizeof(a)),
                      units_format_size(max, b, sizeof(b)),
                      limit ? limit : "?");
    *dst = v;
    return 0;
}

static int mf_walltime(struct mf *m, const config_setting_t *g,
                       uint64_t *dst)
{
    const config_setting_t *st = config_setting_get_member(g, "walltime");
    uint64_t max = m->cf->limits.max_walltime_ms, v;
    char q[80], a[64], b[64];
    int r;

    if (st == NULL)
        return 0;
    if (is_int(st)) {
        int64_t s = config_setting_get_int64(st);

        if (s < 0 || (uint64_t)s > UINT64_MAX / 1000)
            return mf_bad(m, st, "%lld seconds is out of range",
                          (long long)s);
        v = (uint64_t)s * 1000;
    } else if (config_setting_type(st) == CONFIG_TYPE_STRING) {
        const char *s = config_setting_get_string(st);

        r = units_parse_duration_ms(s, &v);
        if (r == -ERANGE)
            return mf_bad(m, st, "'%s' is too long",
                          err_escape(s, q, sizeof(q)));
        if (r < 0)
            return mf_bad(m, st, "'%s' is not a duration (such as 90s, 10m, "
                                 "1h30m or HH:MM:SS)",
                          err_escape(s, q, sizeof(q)));
    } else {
        return mf_bad(m, st, "expected a duration (seconds, or a string such "
                             "as \"10m\")");
    }
    if (v == 0)
        return mf_bad(m, st, "must be more than 0");
    if (v > max)
        return mf_bad(m, st, "%s is more than this node allows (%s, "
                             "limits.max_walltime)",
                      units_format_duration_ms(v, a, sizeof(a)),
                      units_format_duration_ms(max, b, sizeof(b)));
    *dst = v;
    return 0;
}

/* A string member, or NULL (with 0) when absent. */
static int mf_str(struct mf *m, const config_setting_t *g, const char *key,
                  const config_setting_t **st_ret, const char **ret)
{
    const config_setting_t *st = config_setting_get_member(g, key);

    *st_ret = st;
    *ret = NULL;
    if (st == NULL)
        return 0;
    if (config_setting_type(st) != CONFIG_TYPE_STRING)
        return mf_bad(m, st, "expected a string");
    *ret = config_setting_get_string(st);
    return 0;
}

/* --- the fields ---------------------------------------------------------- */

static int mf_api(struct mf *m, const config_setting_t *root,
                  struct job_spec *spec)
{
    const config_setting_t *st = config_setting_get_member(root, "api");
    int64_t v;

    if (st == NULL)
        return err_set(m->e, -EINVAL, "%s: api: required (the version of "
                                      "the manifest format; this node reads "
                                      "api = %d)", m->origin, MANIFEST_API);
    if (!is_int(st))
        return mf_bad(m, st, "expected an integer");
    v = config_setting_get_int64(st);
    if (v > MANIFEST_API)
        return mf_bad(m, st, "api %lld is newer than this node supports (%d)",
                      (long long)v, MANIFEST_API);
    if (v < 1)
        return mf_bad(m, st, "%lld is out of range (1 to %d)", (long long)v,
                      MANIFEST_API);
    spec->api = (int)v;
    return 0;
}

static int mf_name(struct mf *m, const config_setting_t *root,
                   struct job_spec *spec)
{
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "abcdefghijklmnopqrstuvwxyz0123456789._-";
    const config_setting_t *st;
    const char *s;
    char q[80];
    size_t n;
    int r;

    if ((r = mf_str(m, root, "name", &st, &s)) < 0)
        return r;
    if (st == NULL)
        return mf_missing(m, "name", "a job name such as \"saxpy\"");
    n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN || strspn(s, ok) != n || s[0] == '.' ||
        s[0] == '-')
        return mf_bad(m, st, "'%s' is not a valid name (1 to %d of "
                             "A-Z a-z 0-9 . _ -, not starting with . or -)",
                      err_escape(s, q, sizeof(q)), NAME_MAX_LEN);
    spec->name = strdup(s);
    return spec->name ? 0 : mf_nomem(m);
}

static int mf_command(struct mf *m, const config_setting_t *root,
                      struct job_spec *spec)
{
    const config_setting_t *st = config_setting_get_member(root, "command");
    size_t total = 0;
    int n;

    if (st == NULL)
        return mf_missing(m, "command", "the program and its arguments, "
                                        "such as [\"./run\", \"--fast\"]");
    if (!is_string_list(st))
        return mf_bad(m, st, "expected an array of strings, such as "
                             "[\"./run\", \"--fast\"]");
    n = config_setting_length(st);
    if (n == 0)
        return mf_bad(m, st, "must not be empty");
    if (n > ARGS_MAX)
        return mf_bad(m, st, "%d arguments, more than %d", n, ARGS_MAX);
    spec->argv = calloc((size_t)n + 1, sizeof(*spec->argv));
    if (spec->argv == NULL)
        return mf_nomem(m);
    for (int i = 0; i < n; i++) {
        const config_setting_t *a = config_setting_get_elem(st, (unsigned)i);
        const char *s;
        size_t len;

        if (config_setting_type(a) != CONFIG_TYPE_STRING)
            return mf_bad(m, a, "expected a string");
        s = config_setting_get_string(a);
        len = strlen(s);
        if (i == 0 && len == 0)
            return mf_bad(m, a, "the program must not be empty");
        if (len > ARG_MAX_LEN)
            return mf_bad(m, a, "%zu bytes, more than %d", len, ARG_MAX_LEN);
        total += len + 1;
        if (total > ARGV_MAX_BYTES)
            return mf_bad(m, a, "the arguments come to more than %d bytes",
                          ARGV_MAX_BYTES);
        if (has_control(s))
            return mf_bad(m, a, "contains a control character");
        if (!utf8_valid(s))
            return mf_bad(m, a, "invalid UTF-8");
        if ((spec->argv[i] = strdup(s)) == NULL)
            return mf_nomem(m);
        spec->argc++;
    }
    return 0;
}

static bool env_name_valid(const char *s)
{
    if (!is_alpha(*s) && *s != '_')
        return false;
    for (s++; *s; s++)
        if (!is_alpha(*s) && !is_digit(*s) && *s != '_')
            return false;
    return true;
}

static bool env_reserved(const char *name)
{
    if (strncmp(name, RESERVED_ENV_PREFIX, strlen(RESERVED_ENV_PREFIX)) == 0)
        return true;
    for (const char *const *r = reserved_env; *r; r++)
        if (strcmp(*r, name) == 0)
            return true;
    return false;
}

static int mf_env(struct mf *m, const config_setting_t *root,
                  struct job_spec *spec)
{
    const config_setting_t *g = config_setting_get_member(root, "env");
    size_t total = 0;
    int n = 0;

    if (g != NULL && !config_setting_is_group(g))
        return mf_bad(m, g, "expected a group, such as { NAME = \"value\"; }");
    if (g != NULL)
        n = config_setting_length(g);
    if (n > ENV_MAX)
        return mf_bad(m, g, "%d variables, more than %d", n, ENV_MAX);
    spec->env = calloc((size_t)n + 1, sizeof(*spec->env));
    if (spec->env == NULL)
        return mf_nomem(m);
    for (int i = 0; i < n; i++) {
        const config_setting_t *st = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(st), *v;
        size_t len;

        if (!env_name_valid(name))
            return mf_bad(m, st, "not a valid variable name "
                                 "([A-Za-z_][A-Za-z0-9_]*)");
        if (env_reserved(name))
            return mf_bad(m, st, "the runner sets %s; a job cannot",
                          strncmp(name, RESERVED_ENV_PREFIX,
                                  strlen(RESERVED_ENV_PREFIX)) == 0
                              ? "every " RESERVED_ENV_PREFIX "* variable"
                              : name);
        if (config_setting_type(st) != CONFIG_TYPE_STRING)
            return mf_bad(m, st, "expected a string");
        v = config_setting_get_string(st);
        len = strlen(v);
        if (len > ENV_VALUE_MAX_LEN)
            return mf_bad(m, st, "%zu bytes, more than %d", len,
                          ENV_VALUE_MAX_LEN);
        total += strlen(name) + 1 + len + 1;
        if (total > ENV_MAX_BYTES)
            return mf_bad(m, st, "the environment comes to more than %d "
                                 "bytes", ENV_MAX_BYTES);
        if (!utf8_valid(v))
            return mf_bad(m, st, "invalid UTF-8");
        if (asprintf(&spec->env[i], "%s=%s", name, v) < 0) {
            spec->env[i] = NULL;
            return mf_nomem(m);
        }
        spec->n_env++;
    }
    return 0;
}

static int mf_model(struct mf *m, const config_setting_t *g,
                    struct job_resources *res)
{
    const config_setting_t *st;
    const char *s;
    char *copy;
    size_t n;
    int r;

    if ((r = mf_str(m, g, "model", &st, &s)) < 0 || st == NULL)
        return r;
    n = strlen(s);
    if (n == 0 || n > MODEL_MAX_LEN)
        return mf_bad(m, st, "%zu characters; a model glob has 1 to %d", n,
                      MODEL_MAX_LEN);
    for (const char *p = s; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return mf_bad(m, st, "only printable ASCII is allowed in a "
                                 "model glob");
    if ((copy = strdup(s)) == NULL)
        return mf_nomem(m);
    free(res->model);
    res->model = copy;
    return 0;
}

static int mf_resources(struct mf *m, const config_setting_t *root,
                        struct job_spec *spec)
{
    static const char *const keys[] = {"gpus", "model", "gpu_memory", "cpus",
                                       "memory", "walltime", "disk", NULL};
    const struct config *cf = m->cf;
    struct job_resources *res = &spec->resources;
    const config_setting_t *g = config_setting_get_member(root, "resources");
    int r;

    /* A node whose limits are below a default lowers the default, so that
     * a manifest that asks for nothing runs anywhere. */
    res->gpus = 0;
    res->gpu_memory = 0;
    res->cpus = 1;
    res->memory = DEFAULT_MEMORY;
    res->walltime_ms = DEFAULT_WALLTIME_MS < cf->limits.max_walltime_ms
                           ? DEFAULT_WALLTIME_MS
                           : cf->limits.max_walltime_ms;
    res->disk = DEFAULT_DISK < cf->limits.max_unpacked_bytes
                    ? DEFAULT_DISK
                    : cf->limits.max_unpacked_bytes;
    if ((res->model = strdup("*")) == NULL)
        return mf_nomem(m);
    if (g == NULL)
        return 0;
    if (!config_setting_is_group(g))
        return mf_bad(m, g, "expected a group, such as { gpus = 1; }");
    if ((r = mf_known(m, g, keys)) < 0 ||
        (r = mf_int(m, g, "gpus", 0, GPUS_MAX, &res->gpus)) < 0 ||
        (r = mf_model(m, g, res)) < 0 ||
        (r = mf_size(m, g, "gpu_memory", 0, UINT64_MAX, NULL,
                     &res->gpu_memory)) < 0 ||
        (r = mf_int(m, g, "cpus", 1, CPUS_MAX, &res->cpus)) < 0 ||
        (r = mf_size(m, g, "memory", MEMORY_MIN, UINT64_MAX, NULL,
                     &res->memory)) < 0 ||
        (r = mf_walltime(m, g, &res->walltime_ms)) < 0 ||
        (r = mf_size(m, g, "disk", 0, cf->limits.max_unpacked_bytes,
                     "max_unpacked_bytes", &res->disk)) < 0)
        return r;
    return 0;
}

/* Checks one output path; returns NULL or what is wrong with it. */
static const char *output_problem(const char *s)
{
    size_t n = strlen(s), depth = 0;
    const char *p, *end;

    if (n == 0)
        return "is empty";
    if (n > OUTPUT_MAX_LEN)
        return "is longer than 1024 bytes";
    if (s[0] == '/')
        return "is an absolute path; outputs are relative to the bundle "
               "root";
    if (has_control(s) || strchr(s, '\t') != NULL)
        return "contains a control character";
    if (!utf8_valid(s))
        return "is not valid UTF-8";
    end = s + n;
    if (n > 1 && s[n - 1] == '/')
        end--;   /* "dir/" names a directory */
    for (p = s; p <= end; p++) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t len = slash ? (size_t)(slash - p) : (size_t)(end - p);

        if (len == 0)
            return "has an empty component (\"//\")";
        if ((len == 1 && p[0] == '.') ||
            (len == 2 && p[0] == '.' && p[1] == '.'))
            return "has a \".\" or \"..\" component";
        if (len > OUTPUT_MAX_COMPONENT)
            return "has a component longer than 255 bytes";
        if (++depth > OUTPUT_MAX_DEPTH)
            return "has more than 64 components";
        p += len;
    }
    return NULL;
}

/* The same path with or without the directory mark. */
static bool output_same(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la > 1 && a[la - 1] == '/')
        la--;
    if (lb > 1 && b[lb - 1] == '/')
        lb--;
    return la == lb && memcmp(a, b, la) == 0;
}

static int mf_outputs(struct mf *m, const config_setting_t *root,
                      struct job_spec *spec)
{
    const config_setting_t *st = config_setting_get_member(root, "outputs");
    int n = 0;

    if (st != NULL && !is_string_list(st))
        return mf_bad(m, st, "expected an array of strings, such as "
                             "[\"out/\", \"metrics.json\"]");
    if (st != NULL)
        n = config_setting_length(st);
    if (n > OUTPUTS_MAX)
        return mf_bad(m, st, "%d paths, more than %d", n, OUTPUTS_MAX);
    spec->outputs = calloc((size_t)n + 1, sizeof(*spec->outputs));
    if (spec->outputs == NULL)
        return mf_nomem(m);
    for (int i = 0; i < n; i++) {
        const config_setting_t *o = config_setting_get_elem(st, (unsigned)i);
        const char *s, *why;
        char q[80];

        if (config_setting_type(o) != CONFIG_TYPE_STRING)
            return mf_bad(m, o, "expected a string");
        s = config_setting_get_string(o);
        if ((why = output_problem(s)) != NULL)
            return mf_bad(m, o, "'%s' %s", err_escape(s, q, sizeof(q)), why);
        for (size_t j = 0; j < spec->n_outputs; j++)
            if (output_same(spec->outputs[j], s))
                return mf_bad(m, o, "'%s' is listed twice (also outputs[%zu])",
                              err_escape(s, q, sizeof(q)), j);
        if ((spec->outputs[i] = strdup(s)) == NULL)
            return mf_nomem(m);
        spec->n_outputs++;
    }
    return 0;
}

/* Only true or false: 1, "yes" and the like are refused rather than
 * guessed at. */
static int mf_bool(struct mf *m, const config_setting_t *g, const char *key,
                   bool *dst)
{
    const config_setting_t *st = config_setting_get_member(g, key);

    if (st == NULL)
        return 0;
    if (config_setting_type(st) != CONFIG_TYPE_BOOL)
        return mf_bad(m, st, "expected true or false");
    *dst = config_setting_get_bool(st) != 0;
    return 0;
}

static int mf_top(struct mf *m, const config_setting_t *root,
                  struct job_spec *spec)
{
    static const char *const keys[] = {"api", "name", "command", "env",
                                       "resources", "outputs", "requeue",
                                       NULL};
    int r;

    /* api first: a manifest for a newer format is reported as that, not as
     * a field this node does not know. */
    if ((r = mf_api(m, root, spec)) < 0 ||
        (r = mf_known(m, root, keys)) < 0 ||
        (r = mf_name(m, root, spec)) < 0 ||
        (r = mf_command(m, root, spec)) < 0 ||
        (r = mf_env(m, root, spec)) < 0 ||
        (r = mf_resources(m, root, spec)) < 0 ||
        (r = mf_outputs(m, root, spec)) < 0 ||
        (r = mf_bool(m, root, "requeue", &spec->requeue)) < 0)
        return r;
    return 0;
}

int manifest_parse(const char *text, size_t len, const char *origin,
                   const struct config *cf, struct job_spec **ret,
                   struct err *e)
{
    struct mf m = {origin ? origin : "job.conf", cf, e};
    struct job_spec *spec;
    config_t lc;
    char *buf;
    int r;

    if ((text == NULL && len > 0) || cf == NULL || ret == NULL)
        return err_set(e, -EINVAL, "%s: manifest_parse: invalid arguments",
                       m.origin);
    if ((r = mf_bytes(&m, text, len)) < 0 ||
        (r = mf_scan(&m, text, len)) < 0)
        return r;
    /* libconfig wants a C string, which `text` need not be, and 1.5 takes
     * a comment on the last line for a syntax error unless a newline ends
     * it. */
    buf = malloc(len + 2);
    spec = calloc(1, sizeof(*spec));
    if (buf == NULL || spec == NULL) {
        free(buf);
        free(spec);
        return mf_nomem(&m);
    }
    if (len > 0)
        memcpy(buf, text, len);
    buf[len] = '\n';
    buf[len + 1] = '\0';
    config_init(&lc);
    if (config_read_string(&lc, buf) != CONFIG_TRUE)
        r = err_set(e, -EINVAL, "%s:%d: %s", m.origin, config_error_line(&lc),
                    config_error_text(&lc));
    else
        r = mf_top(&m, config_root_setting(&lc), spec);
    config_destroy(&lc);
    free(buf);
    if (r < 0) {
        job_spec_free(spec);
        return r;
    }
    *ret = spec;
    return 0;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void job_spec_free(struct job_spec *spec)
{
    if (spec == NULL)
        return;
    free(spec->name);
    free_strv(spec->argv, spec->argc);
    free_strv(spec->env, spec->n_env);
    free(spec->resources.model);
    free_strv(spec->outputs, spec->n_outputs);
    free(spec);
}
