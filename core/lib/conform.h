/*
 * conform.h - the plugin conformance checks behind surplus-plugin-check and
 * `surplus plugins --check`.  Output is TAP: one "ok N - ..." or
 * "not ok N - ..." line per check, so the results read well on a terminal
 * and plug straight into a test harness.
 */
#ifndef SURPLUS_CONFORM_H
#define SURPLUS_CONFORM_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "settings.h"

struct conform {
    FILE *out;
    uint64_t large_bytes;  /* size of the streamed storage object */
    int n, passed, failed, skipped;
};

/*
 * Checks the plugin at `path` against the contract of its kind.  The plugin
 * is started with `base` (may be NULL) plus, unless `base` sets it, a
 * `path` inside a scratch directory that is removed afterwards.  Returns 0
 * when every check ran (look at c->failed), or a negative errno when the
 * checks could not run at all.
 */
int conform_plugin(struct conform *c, const char *path,
                   const struct settings *base, struct err *e);

#endif
