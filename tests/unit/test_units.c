/*
 * test_units.c - size and duration parsing and formatting.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "units.h"

#define SENTINEL UINT64_C(0xdeadbeefcafef00d)

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)
#define PiB (UINT64_C(1) << 50)
#define EiB (UINT64_C(1) << 60)

#define SEC  UINT64_C(1000)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)
#define WEEK (7 * DAY)

typedef int (*parse_fn)(const char *, uint64_t *);

/* Inputs with control characters would break the one-line TAP report. */
static const char *show(const char *in)
{
    static char out[128];
    size_t n = 0;

    for (; *in != '\0' && n + 5 < sizeof(out); in++) {
        if (*in == '\n' || *in == '\t') {
            out[n++] = '\\';
            out[n++] = *in == '\n' ? 'n' : 't';
        } else {
            out[n++] = *in;
        }
    }
    out[n] = '\0';
    return out;
}

static void accepts(parse_fn fn, const char *fname, const char *in,
                    uint64_t want)
{
    uint64_t v = SENTINEL;
    int r = fn(in, &v);

    tap_ok(r == 0 && v == want,
           "%s(\"%s\") = %" PRIu64 " (rc %d, got %" PRIu64 ")", fname,
           show(in), want, r, v);
}

/* Also checks that the output variable is left alone on failure.  Values are
 * printed as unsigned: tap_is_int goes through long long, which would show
 * anything above INT64_MAX as negative. */
static void rejects(parse_fn fn, const char *fname, const char *in, int err)
{
    uint64_t v = SENTINEL;
    int r = fn(in, &v);

    tap_ok(r == err && v == SENTINEL,
           "%s(\"%s\") fails with %s (rc %d, out %s)", fname, show(in),
           err == -ERANGE ? "-ERANGE" : "-EINVAL", r,
           v == SENTINEL ? "untouched" : "CHANGED");
}

#define SIZE_OK(in, want)  accepts(units_parse_size, "size", (in), (want))
#define SIZE_BAD(in, err)  rejects(units_parse_size, "size", (in), (err))
#define DUR_OK(in, want)   accepts(units_parse_duration_ms, "dur", (in), (want))
#define DUR_BAD(in, err)   rejects(units_parse_duration_ms, "dur", (in), (err))

static void test_size_accepts(void)
{
    SIZE_OK("0", 0);
    SIZE_OK("512", 512);
    SIZE_OK("512B", 512);
    SIZE_OK("512b", 512);
    SIZE_OK("007", 7);
    SIZE_OK("16G", 16 * GiB);
    SIZE_OK("16g", 16 * GiB);
    SIZE_OK("16GiB", 16 * GiB);
    SIZE_OK("16gib", 16 * GiB);
    SIZE_OK("16GIB", 16 * GiB);
    SIZE_OK("16kI", 16 * KiB);
    SIZE_OK("16GB", 16 * GiB);
    SIZE_OK("16Gi", 16 * GiB);
    SIZE_OK("16Gb", 16 * GiB);
    SIZE_OK("1K", KiB);
    SIZE_OK("1k", KiB);
    SIZE_OK("3KiB", 3 * KiB);
    SIZE_OK("2M", 2 * MiB);
    SIZE_OK("2MB", 2 * MiB);
    SIZE_OK("5T", 5 * TiB);
    SIZE_OK("7P", 7 * PiB);
    SIZE_OK("1E", EiB);
    SIZE_OK("15E", 15 * EiB);
    SIZE_OK("15EiB", 15 * EiB);
    SIZE_OK("0G", 0);

    /* Fractions are exact and round down to a whole byte. */
    SIZE_OK("1.5G", GiB + GiB / 2);
    SIZE_OK("1.5K", 1536);
    SIZE_OK("0.5K", 512);
    SIZE_OK("1.0M", MiB);
    SIZE_OK("2.25MiB", 2 * MiB + MiB / 4);
    SIZE_OK("0.1K", 102);          /* 102.4 */
    SIZE_OK("0.001K", 1);          /* 1.024 */
    SIZE_OK("0.0001K", 0);         /* 0.1024 */
    SIZE_OK("0.999999999K", 1023); /* 1023.99999... */
    SIZE_OK("0.1E", EiB / 10);     /* 115292150460684697.6 */
    SIZE_OK("1.100G", 1181116006); /* 1181116006.4 */
    SIZE_OK("15.999999999E", 15 * EiB + UINT64_C(1152921503453925471));

    /* The largest value, both as bytes and in units. */
    SIZE_OK("18446744073709551615", UINT64_MAX);
    SIZE_OK("18446744073709551615B", UINT64_MAX);
    SIZE_OK("17179869183G", UINT64_MAX - GiB + 1);
    SIZE_OK("000000000000000000000000018446744073709551615", UINT64_MAX);
}

static void test_size_rejects(void)
{
    /* Overflow in the number itself and in the multiplication. */
    SIZE_BAD("18446744073709551616", -ERANGE);
    SIZE_BAD("18446744073709551616B", -ERANGE);
    SIZE_BAD("99999999999999999999999999", -ERANGE);
    SIZE_BAD("18446744073709551616K", -ERANGE);
    SIZE_BAD("16E", -ERANGE);
    SIZE_BAD("16.0E", -ERANGE);
    SIZE_BAD("16384P", -ERANGE);
    SIZE_BAD("17179869184G", -ERANGE);
    SIZE_BAD("18014398509481984K", -ERANGE);

    SIZE_BAD("", -EINVAL);
    SIZE_BAD(" 16G", -EINVAL);
    SIZE_BAD("16G ", -EINVAL);
    SIZE_BAD("16 G", -EINVAL);
    SIZE_BAD("\t1", -EINVAL);
    SIZE_BAD("1\n", -EINVAL);
    SIZE_BAD("-1", -EINVAL);
    SIZE_BAD("+1", -EINVAL);
    SIZE_BAD("-1G", -EINVAL);
    SIZE_BAD("0x10", -EINVAL);
    SIZE_BAD("0x10G", -EINVAL);
    SIZE_BAD("1.2.3G", -EINVAL);
    SIZE_BAD("1..5G", -EINVAL);
    SIZE_BAD("G", -EINVAL);
    SIZE_BAD("GiB", -EINVAL);
    SIZE_BAD("B", -EINVAL);
    SIZE_BAD("16GG", -EINVAL);
    SIZE_BAD("16X", -EINVAL);
    SIZE_BAD("16Z", -EINVAL);
    SIZE_BAD("16i", -EINVAL);
    SIZE_BAD("16iB", -EINVAL);
    SIZE_BAD("16BB", -EINVAL);
    SIZE_BAD("16Bi", -EINVAL);
    SIZE_BAD("16GiBB", -EINVAL);
    SIZE_BAD("16Gii", -EINVAL);
    SIZE_BAD("16GBi", -EINVAL);
    SIZE_BAD("1.5", -EINVAL);
    SIZE_BAD("1.5B", -EINVAL);
    SIZE_BAD("1.0", -EINVAL);
    SIZE_BAD(".5G", -EINVAL);
    SIZE_BAD("1.G", -EINVAL);
    SIZE_BAD("1.", -EINVAL);
    SIZE_BAD("1.1234567891G", -EINVAL); /* ten fractional digits */
    SIZE_BAD("1e3", -EINVAL);
    SIZE_BAD("1,5G", -EINVAL);
    SIZE_BAD("inf", -EINVAL);
    SIZE_BAD("nan", -EINVAL);
    /* Malformed wins over out of range, however long the number. */
    SIZE_BAD("99999999999999999999999X", -EINVAL);
    SIZE_BAD("99999999999999999999999.5", -EINVAL);
}

static void test_size_null(void)
{
    uint64_t v = SENTINEL;

    tap_is_int(units_parse_size(NULL, &v), -EINVAL, "size(NULL) is -EINVAL");
    tap_ok(v == SENTINEL, "size(NULL) leaves output untouched");
    tap_is_int(units_parse_size("1", NULL), -EINVAL,
               "size with NULL output is -EINVAL");
}

static void test_duration_accepts(void)
{
    DUR_OK("0", 0);
    DUR_OK("90", 90 * SEC);
    DUR_OK("007", 7 * SEC);
    DUR_OK("500ms", 500);
    DUR_OK("0ms", 0);
    DUR_OK("0s", 0);
    DUR_OK("90s", 90 * SEC);
    DUR_OK("10m", 10 * MIN);
    DUR_OK("2h", 2 * HOUR);
    DUR_OK("3d", 3 * DAY);
    DUR_OK("1w", WEEK);

    DUR_OK("1h30m", HOUR + 30 * MIN);
    DUR_OK("1d2h3m4s", DAY + 2 * HOUR + 3 * MIN + 4 * SEC);
    DUR_OK("2m30s500ms", 2 * MIN + 30 * SEC + 500);
    DUR_OK("1w1d1h1m1s1ms", WEEK + DAY + HOUR + MIN + SEC + 1);
    DUR_OK("1w1ms", WEEK + 1);
    DUR_OK("1d30s", DAY + 30 * SEC);
    DUR_OK("1h90m", HOUR + 90 * MIN); /* parts need not be normalised */
    DUR_OK("1s1ms", SEC + 1);

    DUR_OK("00:00", 0);
    DUR_OK("05:30", 5 * MIN + 30 * SEC);
    DUR_OK("5:3", 5 * MIN + 3 * SEC);
    DUR_OK("90:00", 90 * MIN); /* a leading field is not bounded */
    DUR_OK("0:59", 59 * SEC);
    DUR_OK("01:02:03", HOUR + 2 * MIN + 3 * SEC);
    DUR_OK("100:59:59", 100 * HOUR + 59 * MIN + 59 * SEC);
    DUR_OK("2-12", 2 * DAY + 12 * HOUR);
    DUR_OK("0-0", 0);
    DUR_OK("1-23", DAY + 23 * HOUR);
    DUR_OK("2-12:30", 2 * DAY + 12 * HOUR + 30 * MIN);
    DUR_OK("2-12:30:15", 2 * DAY + 12 * HOUR + 30 * MIN + 15 * SEC);
    DUR_OK("1-23:59:59", 2 * DAY - SEC);
    DUR_OK("400-00:00:00", 400 * DAY);

    /* Largest values that fit, in each form. */
    DUR_OK("18446744073709551615ms", UINT64_MAX);
    DUR_OK("18446744073709551", UINT64_MAX - 615);
    DUR_OK("18446744073709551s615ms", UINT64_MAX);
    DUR_OK("213503982334d14h25m51s615ms", UINT64_MAX);
    DUR_OK("30500568904w", 30500568904 * WEEK);
    DUR_OK("213503982334d", 213503982334 * DAY);
    DUR_OK("5124095576030h", 5124095576030 * HOUR);
    DUR_OK("307445734561825m", 307445734561825 * MIN);
    DUR_OK("213503982334-14:25:51", UINT64_MAX - 615);
    DUR_OK("5124095576030:00:00", 5124095576030 * HOUR);
    DUR_OK("307445734561825:00", 307445734561825 * MIN);
}

static void test_duration_rejects(void)
{
    /* Overflow in the number, in each multiplication and in the sum. */
    DUR_BAD("18446744073709551616ms", -ERANGE);
    DUR_BAD("18446744073709551616", -ERANGE);
    DUR_BAD("18446744073709552", -ERANGE);
    DUR_BAD("18446744073709552s", -ERANGE);
    DUR_BAD("307445734561826m", -ERANGE);
    DUR_BAD("5124095576031h", -ERANGE);
    DUR_BAD("213503982335d", -ERANGE);
    DUR_BAD("30500568905w", -ERANGE);
    DUR_BAD("18446744073709551s616ms", -ERANGE);
    DUR_BAD("213503982334d14h25m51s616ms", -ERANGE);
    DUR_BAD("213503982334d15h", -ERANGE);
    DUR_BAD("213503982335-00", -ERANGE);
    DUR_BAD("5124095576031:00:00", -ERANGE);
    DUR_BAD("307445734561826:00", -ERANGE);
    DUR_BAD("213503982334-14:25:52", -ERANGE);
    DUR_BAD("213503982334-15", -ERANGE);
    DUR_BAD("99999999999999999999999-00", -ERANGE);

    DUR_BAD("", -EINVAL);
    DUR_BAD(" 1h", -EINVAL);
    DUR_BAD("1h ", -EINVAL);
    DUR_BAD("1h 30m", -EINVAL);
    DUR_BAD("1 h", -EINVAL);
    DUR_BAD("-1", -EINVAL);
    DUR_BAD("+1", -EINVAL);
    DUR_BAD("-1h", -EINVAL);
    DUR_BAD("0x10", -EINVAL);
    DUR_BAD("1.5", -EINVAL);
    DUR_BAD("1.5h", -EINVAL);
    DUR_BAD("h", -EINVAL);
    DUR_BAD("ms", -EINVAL);
    DUR_BAD("1x", -EINVAL);
    DUR_BAD("1y", -EINVAL);
    DUR_BAD("1hh", -EINVAL);
    DUR_BAD("1msx", -EINVAL);
    DUR_BAD("1sec", -EINVAL);
    DUR_BAD("1H", -EINVAL);
    DUR_BAD("30m1h", -EINVAL);
    DUR_BAD("1h1h", -EINVAL);
    DUR_BAD("1s1m", -EINVAL);
    DUR_BAD("1ms1s", -EINVAL);
    DUR_BAD("1d1w", -EINVAL);
    DUR_BAD("1h30", -EINVAL);
    DUR_BAD("1h30m15", -EINVAL);
    DUR_BAD("1hm", -EINVAL);

    DUR_BAD(":30", -EINVAL);
    DUR_BAD("1:", -EINVAL);
    DUR_BAD("1::2", -EINVAL);
    DUR_BAD("05:60", -EINVAL);
    DUR_BAD("01:60:00", -EINVAL);
    DUR_BAD("01:00:60", -EINVAL);
    DUR_BAD("1:2:3:4", -EINVAL);
    DUR_BAD("1-", -EINVAL);
    DUR_BAD("-1-00", -EINVAL);
    DUR_BAD("1-24", -EINVAL);
    DUR_BAD("1-24:00:00", -EINVAL);
    DUR_BAD("1-00:60", -EINVAL);
    DUR_BAD("1-00:00:60", -EINVAL);
    DUR_BAD("1-00:00:00:00", -EINVAL);
    DUR_BAD("1-2-3", -EINVAL);
    DUR_BAD("1:2-3", -EINVAL);
    DUR_BAD("1-00:", -EINVAL);
    DUR_BAD("1:30s", -EINVAL);
    DUR_BAD("1h:30", -EINVAL);
    DUR_BAD("1:30 ", -EINVAL);
    /* A bounded field out of range is malformed, however long. */
    DUR_BAD("1:99999999999999999999999", -EINVAL);
    DUR_BAD("99999999999999999999999x", -EINVAL);
}

static void test_duration_null(void)
{
    uint64_t v = SENTINEL;

    tap_is_int(units_parse_duration_ms(NULL, &v), -EINVAL,
               "dur(NULL) is -EINVAL");
    tap_ok(v == SENTINEL, "dur(NULL) leaves output untouched");
    tap_is_int(units_parse_duration_ms("1", NULL), -EINVAL,
               "dur with NULL output is -EINVAL");
}

static void test_format_size(void)
{
    static const struct {
        uint64_t in;
        const char *want;
    } cases[] = {
        { 0, "0 B" },
        { 1, "1 B" },
        { 512, "512 B" },
        { 1023, "1023 B" },
        { 1024, "1.0 KiB" },
        { 1536, "1.5 KiB" },
        { 1075, "1.0 KiB" },          /* 1.0498 */
        { 1076, "1.1 KiB" },          /* 1.0508: half-up in the tenths */
        { MiB - 1, "1.0 MiB" },       /* 1023.999 KiB carries over */
        { MiB, "1.0 MiB" },
        { 16 * GiB, "16.0 GiB" },
        { GiB + GiB / 2, "1.5 GiB" },
        { 1023 * GiB, "1023.0 GiB" },
        { TiB, "1.0 TiB" },
        { 3 * PiB + PiB / 4, "3.3 PiB" }, /* 3.25 rounds half-up */
        { EiB, "1.0 EiB" },
        { 15 * EiB, "15.0 EiB" },
        { UINT64_MAX, "16.0 EiB" },
    };
    char buf[32];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char what[64];

        snprintf(what, sizeof(what), "format_size(%" PRIu64 ")", cases[i].in);
        tap_is_str(units_format_size(cases[i].in, buf, sizeof(buf)),
                   cases[i].want, what);
    }

    memcpy(buf, "xxxx", 5);
    tap_ok(units_format_size(16 * GiB, buf, 0) == buf &&
               strcmp(buf, "xxxx") == 0,
           "format_size with len 0 writes nothing and returns buf");
    tap_is_str(units_format_size(16 * GiB, buf, 4), "16.",
               "format_size truncates to len");
}

static void test_format_duration(void)
{
    static const struct {
        uint64_t in;
        const char *want;
    } cases[] = {
        { 0, "0s" },
        { 1, "1ms" },
        { 90, "90ms" },
        { 999, "999ms" },
        { SEC, "1s" },
        { 90 * SEC, "1m30s" },
        { 5400000, "1h30m" },
        { DAY, "1d" },
        { WEEK, "7d" },
        { DAY + SEC, "1d1s" },
        { 90061001, "1d1h1m1s1ms" },
        { 2 * MIN + 30 * SEC + 500, "2m30s500ms" },
        { UINT64_MAX, "213503982334d14h25m51s615ms" },
    };
    char buf[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char what[80];

        snprintf(what, sizeof(what), "format_duration(%" PRIu64 ")",
                 cases[i].in);
        tap_is_str(units_format_duration_ms(cases[i].in, buf, sizeof(buf)),
                   cases[i].want, what);
    }

    memcpy(buf, "xxxx", 5);
    tap_ok(units_format_duration_ms(DAY, buf, 0) == buf &&
               strcmp(buf, "xxxx") == 0,
           "format_duration with len 0 writes nothing and returns buf");
    tap_is_str(units_format_duration_ms(90061001, buf, 5), "1d1h",
               "format_duration truncates to len");
}

/* The size format puts a space before the unit, which the parser rejects by
 * design; drop it before parsing back. */
static void drop_space(char *s)
{
    char *sp = strchr(s, ' ');

    if (sp)
        memmove(sp, sp + 1, strlen(sp + 1) + 1);
}

static void test_round_trips(void)
{
    /* Values whose formatted form is exact. */
    static const uint64_t sizes[] = {
        0, 1, 1023, 1536, 16 * GiB, GiB + GiB / 2, 5 * TiB,
        7 * PiB + PiB / 2, 15 * EiB,
    };
    static const uint64_t durations[] = {
        0, 1, 999, SEC, 90 * SEC, 5400000, DAY, WEEK, 90061001,
        UINT64_MAX - 1, UINT64_MAX, 30500568904 * WEEK,
    };
    static const char *const dur_strings[] = {
        "0s", "90ms", "1h30m", "1d2h3m4s", "2m30s500ms", "1d1h1m1s1ms",
    };
    char buf[64];

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t v = SENTINEL;
        int r;

        units_format_size(sizes[i], buf, sizeof(buf));
        drop_space(buf);
        r = units_parse_size(buf, &v);
        tap_ok(r == 0 && v == sizes[i],
               "size %" PRIu64 " -> \"%s\" -> %" PRIu64 " (rc %d)", sizes[i],
               buf, v, r);
    }

    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        uint64_t v = SENTINEL;
        int r;

        units_format_duration_ms(durations[i], buf, sizeof(buf));
        r = units_parse_duration_ms(buf, &v);
        tap_ok(r == 0 && v == durations[i],
               "duration %" PRIu64 " -> \"%s\" -> %" PRIu64 " (rc %d)",
               durations[i], buf, v, r);
    }

    for (size_t i = 0; i < sizeof(dur_strings) / sizeof(dur_strings[0]); i++) {
        uint64_t v = SENTINEL;
        int r = units_parse_duration_ms(dur_strings[i], &v);

        tap_ok(r == 0, "parse \"%s\" (rc %d)", dur_strings[i], r);
        tap_is_str(units_format_duration_ms(v, buf, sizeof(buf)),
                   dur_strings[i], "formats back to itself");
    }

    {
        uint64_t v = SENTINEL;

        tap_ok(units_parse_size("1.5G", &v) == 0, "parse \"1.5G\"");
        tap_is_str(units_format_size(v, buf, sizeof(buf)), "1.5 GiB",
                   "\"1.5G\" formats as 1.5 GiB");
    }
}

int main(void)
{
    test_size_accepts();
    test_size_rejects();
    test_size_null();
    test_duration_accepts();
    test_duration_rejects();
    test_duration_null();
    test_format_size();
    test_format_duration();
    test_round_trips();
    return tap_done();
}
