/*
 * units.c - parsing and formatting of sizes and durations.
 *
 * Only integer arithmetic on plain ASCII is used: floating point would turn
 * "1.1G" into a value that depends on binary rounding, and <ctype.h> and the
 * strto* family follow the locale.
 */
#include "units.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/*
 * Fractional digits accepted in a size.  Keeping the denominator at or below
 * 10^9 lets frac_scale() work in 64 bits, and more digits than that cannot
 * change the result by a meaningful amount anyway.
 */
#define SIZE_FRAC_DIGITS_MAX 9

#define MS_PER_SEC  UINT64_C(1000)
#define MS_PER_MIN  (60 * MS_PER_SEC)
#define MS_PER_HOUR (60 * MS_PER_MIN)
#define MS_PER_DAY  (24 * MS_PER_HOUR)
#define MS_PER_WEEK (7 * MS_PER_DAY)

/*
 * Largest unit first: the parser relies on this order to insist that the
 * parts of "1h30m" come in decreasing size, the formatter to emit them so.
 */
static const struct duration_unit {
    const char *name;
    uint64_t ms;
} duration_units[] = {
    { "w", MS_PER_WEEK }, { "d", MS_PER_DAY }, { "h", MS_PER_HOUR },
    { "m", MS_PER_MIN },  { "s", MS_PER_SEC }, { "ms", 1 },
};

#define N_DURATION_UNITS (sizeof(duration_units) / sizeof(duration_units[0]))

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char to_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/*
 * Reads a run of decimal digits.  On overflow the value saturates and *ovf is
 * set, but scanning goes on: the caller finishes checking the syntax first, so
 * a malformed string is -EINVAL whatever the size of its numbers.
 */
static const char *scan_uint(const char *p, uint64_t *val, bool *ovf)
{
    uint64_t v = 0;

    for (; is_digit(*p); p++) {
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v)) {
            v = UINT64_MAX;
            *ovf = true;
        }
    }
    *val = v;
    return p;
}

/* *acc += n * factor; saturates and flags overflow instead of wrapping. */
static void acc_mul_add(uint64_t *acc, uint64_t n, uint64_t factor, bool *ovf)
{
    uint64_t prod;

    if (__builtin_mul_overflow(n, factor, &prod) ||
        __builtin_add_overflow(*acc, prod, acc)) {
        *acc = UINT64_MAX;
        *ovf = true;
    }
}

/* log2 of the multiplier for a size suffix letter, or -1. */
static int size_shift(char c)
{
    switch (to_lower(c)) {
    case 'k': return 10;
    case 'm': return 20;
    case 'g': return 30;
    case 't': return 40;
    case 'p': return 50;
    case 'e': return 60;
    default: return -1;
    }
}

/*
 * floor(num * 2^shift / den) for num < den <= 10^9.  Binary long division
 * keeps every intermediate below 2 * den, where the direct product would need
 * up to 90 bits.
 */
static uint64_t frac_scale(uint64_t num, uint64_t den, int shift)
{
    uint64_t q = 0, r = num;

    for (int i = 0; i < shift; i++) {
        r <<= 1;
        q <<= 1;
        if (r >= den) {
            r -= den;
            q |= 1;
        }
    }
    return q;
}

int units_parse_size(const char *s, uint64_t *ret)
{
    const char *p = s;
    uint64_t whole, num = 0, den = 1, total;
    int ndigits = 0, shift = 0;
    bool ovf = false, has_frac = false;

    if (!s || !ret || !is_digit(*p))
        return -EINVAL;
    p = scan_uint(p, &whole, &ovf);

    if (*p == '.') {
        has_frac = true;
        for (p++; is_digit(*p); p++) {
            if (++ndigits > SIZE_FRAC_DIGITS_MAX)
                return -EINVAL;
            num = num * 10 + (uint64_t)(*p - '0');
            den *= 10;
        }
        if (ndigits == 0)
            return -EINVAL;
    }

    if (*p != '\0' && to_lower(*p) != 'b') {
        shift = size_shift(*p);
        if (shift < 0)
            return -EINVAL;
        p++;
        if (to_lower(*p) == 'i')
            p++;
    }
    if (to_lower(*p) == 'b')
        p++;
    if (*p != '\0')
        return -EINVAL;
    /* A fraction of a single byte has no meaning. */
    if (has_frac && shift == 0)
        return -EINVAL;
    if (ovf)
        return -ERANGE;

    if (__builtin_mul_overflow(whole, UINT64_C(1) << shift, &total))
        return -ERANGE;
    /* Cannot overflow when the product fits (the fraction is below one
     * unit), but the check costs nothing and keeps the invariant local. */
    if (__builtin_add_overflow(total, frac_scale(num, den, shift), &total))
        return -ERANGE;
    *ret = total;
    return 0;
}

/*
 * "1h30m", "2m30s500ms": each part a number and a unit, units strictly
 * decreasing, which also rules out repeating one.
 */
static int parse_compound(const char *p, uint64_t *total, bool *ovf)
{
    size_t next = 0; /* index of the largest unit still allowed */

    while (*p != '\0') {
        const char *unit;
        uint64_t n;
        size_t len, i;

        if (!is_digit(*p))
            return -EINVAL;
        p = scan_uint(p, &n, ovf);
        /* Take the whole run of letters so that "1msx" or "1hh" cannot match
         * a unit by its prefix. */
        for (unit = p; is_alpha(*p); p++)
            ;
        len = (size_t)(p - unit);
        for (i = next; i < N_DURATION_UNITS; i++) {
            if (strlen(duration_units[i].name) == len &&
                memcmp(duration_units[i].name, unit, len) == 0)
                break;
        }
        if (i == N_DURATION_UNITS)
            return -EINVAL;
        acc_mul_add(total, n, duration_units[i].ms, ovf);
        next = i + 1;
    }
    return 0;
}

/* "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS". */
static int parse_clock(const char *p, uint64_t *total, bool *ovf)
{
    uint64_t first, days = 0, f[3], h, m, sec;
    size_t nf = 0;
    bool has_days;

    p = scan_uint(p, &first, ovf);
    has_days = (*p == '-');
    if (has_days)
        days = first;
    else
        f[nf++] = first;
    p++; /* the '-' or ':' that brought us here */

    for (;;) {
        if (!is_digit(*p) || nf == 3)
            return -EINVAL;
        p = scan_uint(p, &f[nf++], ovf);
        if (*p == '\0')
            break;
        if (*p != ':')
            return -EINVAL;
        p++;
    }

    if (has_days) {
        h = f[0];
        m = nf > 1 ? f[1] : 0;
        sec = nf > 2 ? f[2] : 0;
        if (h >= 24)
            return -EINVAL;
    } else if (nf == 2) {
        h = 0;
        m = f[0];
        sec = f[1];
    } else {
        h = f[0];
        m = f[1];
        sec = f[2];
    }
    /* Only the leading field may exceed its natural range; nf == 2 without
     * days has m leading, so it is the only case exempt from this check. */
    if ((has_days || nf == 3) && m >= 60)
        return -EINVAL;
    if (sec >= 60)
        return -EINVAL;

    acc_mul_add(total, days, MS_PER_DAY, ovf);
    acc_mul_add(total, h, MS_PER_HOUR, ovf);
    acc_mul_add(total, m, MS_PER_MIN, ovf);
    acc_mul_add(total, sec, MS_PER_SEC, ovf);
    return 0;
}

int units_parse_duration_ms(const char *s, uint64_t *ret)
{
    const char *p;
    uint64_t n, total = 0;
    bool ovf = false;
    int r = 0;

    if (!s || !ret || !is_digit(*s))
        return -EINVAL;

    /* The character after the first number decides the form. */
    p = scan_uint(s, &n, &ovf);
    if (*p == '\0')
        acc_mul_add(&total, n, MS_PER_SEC, &ovf);
    else if (*p == ':' || *p == '-')
        r = parse_clock(s, &total, &ovf);
    else
        r = parse_compound(s, &total, &ovf);

    if (r < 0)
        return r;
    if (ovf)
        return -ERANGE;
    *ret = total;
    return 0;
}

char *units_format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *const names[] = {
        "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB",
    };
    uint64_t whole, rem, tenths;
    unsigned k = 0, shift;

    if (!buf || len == 0)
        return buf;

    while (k < 6 && (bytes >> (10 * (k + 1))) != 0)
        k++;
    if (k == 0) {
        snprintf(buf, len, "%" PRIu64 " B", bytes);
        return buf;
    }

    shift = 10 * k;
    whole = bytes >> shift;
    rem = bytes & ((UINT64_C(1) << shift) - 1);
    /* rem < 2^60, so rem * 10 + 2^59 stays below 2^64. */
    tenths = (rem * 10 + (UINT64_C(1) << (shift - 1))) >> shift;
    if (tenths == 10) {
        whole++;
        tenths = 0;
        /* 1023.95 KiB rounds to 1 MiB, which reads better as such. */
        if (whole == 1024 && k < 6) {
            whole = 1;
            k++;
        }
    }
    snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " %s", whole, tenths, names[k]);
    return buf;
}

char *units_format_duration_ms(uint64_t ms, char *buf, size_t len)
{
    /* UINT64_MAX ms is "213503982334d14h25m51s615ms": 27 characters. */
    char tmp[64];
    size_t used = 0;

    if (!buf || len == 0)
        return buf;
    if (ms == 0) {
        snprintf(buf, len, "0s");
        return buf;
    }

    /* Weeks are skipped: "1w2d" is less readable than "9d". */
    for (size_t i = 1; i < N_DURATION_UNITS; i++) {
        const struct duration_unit *u = &duration_units[i];

        if (ms < u->ms)
            continue;
        used += (size_t)snprintf(tmp + used, sizeof(tmp) - used,
                                 "%" PRIu64 "%s", ms / u->ms, u->name);
        ms %= u->ms;
    }
    snprintf(buf, len, "%s", tmp);
    return buf;
}
