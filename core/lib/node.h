/*
 * node.h - one node's configured plugins, started together: what the
 * runner (and the daemon) work with.
 */
#ifndef SURPLUS_NODE_H
#define SURPLUS_NODE_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "err.h"
#include "loader.h"

struct node {
    const struct config *cf;  /* not owned */
    struct plugin *storage;
    struct plugin *accounting;
    struct plugin **accelerators;  /* cf->n_accelerators, in config order */
    size_t n_accelerators;
    char hostname[256];
};

/* Creates the state directory and starts every configured plugin; the
 * first failure is returned (-ENOENT, -EPROTO, ... from the loader) with
 * its message in *e. */
int node_open(const struct config *cf, struct node **ret, struct err *e);
void node_close(struct node *n);

/* Checks what node_open would start, and leaves nothing behind: every
 * configured plugin is found, loaded (ABI, kind and name checks) and
 * started with its settings (the plugin's own checks, and unknown keys),
 * then stopped.  Each "path" setting points into a scratch directory under
 * $TMPDIR for the check, removed before returning, so that no store or
 * ledger is created or opened; state_dir is only looked at.  Returns 0 or
 * the first failure, with its message in *e. */
int node_check(const struct config *cf, struct err *e);

/* "accelerator/sim" for an accelerator instance. */
const char *node_plugin_label(const struct plugin *p);

/* The node's id of the device the plugin of accelerators[group] calls
 * `plugin_id`: that id, or "<group name>:<id>" for a qualified group
 * (config.h), so that ids are unique on the node.  NULL when out of
 * memory; free() it. */
char *node_device_id(const struct node *n, size_t group,
                     const char *plugin_id);

/* Creates `path` and missing parents with `mode` (existing ones are left
 * as they are).  Returns 0 or a negative errno. */
int node_mkdirs(const char *path, mode_t mode);

#endif
