#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *log_ident = "surplus";
static int log_max = SURPLUS_LOG_NOTICE;
static int log_journal = -1; /* stderr is the journal: -1 not known yet */

static const struct {
    const char *name;
    int level;
} log_levels[] = {
    {"error", SURPLUS_LOG_ERR},   {"warning", SURPLUS_LOG_WARNING},
    {"notice", SURPLUS_LOG_NOTICE}, {"info", SURPLUS_LOG_INFO},
    {"debug", SURPLUS_LOG_DEBUG},
};

/* systemd sets JOURNAL_STREAM to the device and inode of the stream it
 * connected to standard error; it is the journal only if they still match
 * (a child whose stderr was redirected inherits the variable). */
static int journal_detect(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    char end;

    return v != NULL && sscanf(v, "%llu:%llu%c", &dev, &ino, &end) == 2 &&
           fstat(STDERR_FILENO, &st) == 0 &&
           (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

void log_setup(const char *ident, int max_level)
{
    log_ident = ident;
    log_max = max_level;
    log_journal = journal_detect();
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
    char line[4096], pri[8] = "";
    int n;

    if (level > log_max)
        return;
    if (log_journal < 0)
        log_journal = journal_detect();
    /* One write per line keeps lines whole when several processes share
     * stderr.  To the journal, a "<N>" prefix gives the line its syslog
     * priority (sd-daemon(3)); the level word stays for people reading
     * the text. */
    if (log_journal > 0)
        snprintf(pri, sizeof pri, "<%d>",
                 level < 0 ? 0 : level > 7 ? 7 : level);
    n = snprintf(line, sizeof(line), "%s%s: %s%s%s", pri, log_ident,
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
