/*
 * tests/tap.h - a minimal TAP producer for C unit tests, read by automake's
 * tap-driver.sh.  Each check prints "ok N - what" or "not ok N - what".
 */
#ifndef SURPLUS_TESTS_TAP_H
#define SURPLUS_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n;
static int tap_failed;

static inline void tap_plan_done(void)
{
    printf("1..%d\n", tap_n);
    fflush(stdout);
}

__attribute__((format(printf, 2, 3))) static inline int
tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;

    printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!cond)
        tap_failed++;
    return cond;
}

__attribute__((format(printf, 1, 2))) static inline void
tap_diag(const char *fmt, ...)
{
    va_list ap;

    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

__attribute__((format(printf, 1, 2))) static inline void
tap_skip_all(const char *fmt, ...)
{
    va_list ap;

    printf("1..0 # SKIP ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    exit(0);
}

#define tap_is_int(got, want, what)                                          \
    tap_ok((long long)(got) == (long long)(want), "%s (got %lld, want %lld)", \
           (what), (long long)(got), (long long)(want))

static inline int tap_is_str(const char *got, const char *want,
                             const char *what)
{
    return tap_ok(got != NULL && want != NULL && strcmp(got, want) == 0,
                  "%s (got \"%s\", want \"%s\")", what,
                  got ? got : "(null)", want ? want : "(null)");
}

static inline int tap_done(void)
{
    tap_plan_done();
    return tap_failed ? 1 : 0;
}

#endif
