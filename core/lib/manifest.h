/*
 * manifest.h - job.conf, the manifest at the root of a bundle
 * (surplus-bundle(5)): parsed with libconfig into a validated job spec.
 * Every error names the field and the line ("job.conf:4: resources.gpus:
 * ...").  The text is tenant input: hostile until this returns 0.
 */
#ifndef SURPLUS_MANIFEST_H
#define SURPLUS_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

#define MANIFEST_API 1            /* the newest api this core reads */
#define MANIFEST_MAX_BYTES 65536  /* job.conf larger than this is refused */

struct job_resources {
    uint32_t gpus;          /* default 0 */
    char *model;            /* glob, default "*" */
    uint64_t gpu_memory;    /* bytes per GPU, default 0 = any */
    uint32_t cpus;          /* default 1 */
    uint64_t memory;        /* bytes, default 1G */
    uint64_t walltime_ms;   /* default 1h, at most limits.max_walltime */
    uint64_t disk;          /* bytes, default 1G, at most max_unpacked_bytes */
};

struct job_spec {
    int api;
    char *name;             /* [A-Za-z0-9._-], 1-64 */
    char **argv;            /* argc entries + NULL */
    size_t argc;
    char **env;             /* "NAME=value", n_env entries + NULL */
    size_t n_env;
    struct job_resources resources;
    char **outputs;         /* relative paths; "dir/" means a directory */
    size_t n_outputs;
    bool requeue;           /* a node restart may run it again from the
                               start (default false: it fails) */
};

/* Parses `len` bytes of job.conf.  `origin` names it in messages
 * ("job.conf").  Limits come from cf->limits.  Returns 0, or -EINVAL
 * (or -ENOMEM) with the message in *e. */
int manifest_parse(const char *text, size_t len, const char *origin,
                   const struct config *cf, struct job_spec **ret,
                   struct err *e);
void job_spec_free(struct job_spec *spec);

#endif
