/*
 * log.h - the process's log sink.  Programs choose the level and the
 * identity; library code logs only through plugins' host->log, everything
 * else is returned as errors.
 */
#ifndef SURPLUS_LOG_H
#define SURPLUS_LOG_H

#include <stdarg.h>

#include <surplus/host.h>

void log_setup(const char *ident, int max_level);
int log_level_from_name(const char *name); /* -1 if unknown */
const char *log_level_name(int level);

__attribute__((format(printf, 2, 3)))
void log_msg(int level, const char *fmt, ...);
void log_vmsg(int level, const char *prefix, const char *fmt, va_list ap);

#endif
