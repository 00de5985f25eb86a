#include "log.h"

#include <stdio.h>
#include <string.h>

static const char *log_ident = "surplus";
static int log_max = SURPLUS_LOG_NOTICE;

static const struct {
    const char *name;
    int level;
} log_levels[] = {
    {"error", SURPLUS_LOG_ERR},   {"warning", SURPLUS_LOG_WARNING},
    {"notice", SURPLUS_LOG_NOTICE}, {"info", SURPLUS_LOG_INFO},
    {"debug", SURPLUS_LOG_DEBUG},
};

void log_setup(const char *ident, int max_level)
{
    log_ident = ident;
    log_max = max_level;
}

int log_level_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
        if (strcmp(name, log_levels[i].name) == 0)
            return log_levels[i].level;
    return -1;
}

const char *log_level_name(int level)
{
    for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
        if (log_levels[i].level == level)
            return log_levels[i].name;
    return level < SURPLUS_LOG_ERR ? "error" : "debug";
}

void log_vmsg(int level, const char *prefix, const char *fmt, va_list ap)
{
    char line[4096];
    int n;

    if (level > log_max)
        return;
    /* One write per line keeps lines whole when several processes share
     * stderr (journald reads the <N> prefix as the priority). */
    n = snprintf(line, sizeof(line), "%s: %s%s%s", log_ident,
                 level <= SURPLUS_LOG_WARNING ? log_level_name(level) : "",
                 level <= SURPLUS_LOG_WARNING ? ": " : "",
                 prefix ? prefix : "");
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    fprintf(stderr, "%s\n", line);
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(level, NULL, fmt, ap);
    va_end(ap);
}
