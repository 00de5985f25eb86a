/*
 * bundle.h - job bundles (surplus-bundle(5)): a tar archive (ustar, pax or
 * gnu; uncompressed or gzip, zstd, xz or bzip2) with job.conf at its root.
 *
 * Bundles are tenant input and the most attacked surface of the product.
 * Every rule is checked while streaming, the first violation stops the
 * read, and the message names the entry and the rule.
 */
#ifndef SURPLUS_BUNDLE_H
#define SURPLUS_BUNDLE_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "err.h"
#include "manifest.h"

/* Limits beyond surplus.conf's `limits` group; fixed by the format. */
#define BUNDLE_MAX_PATH 1024        /* bytes of an entry's path */
#define BUNDLE_MAX_COMPONENT 255    /* bytes of one path component */
#define BUNDLE_MAX_DEPTH 64         /* components of an entry's path */
#define BUNDLE_MAX_RATIO 200        /* unpacked bytes / bundle bytes, once
                                       past 16 MiB unpacked */

struct bundle_summary {
    uint64_t entries;          /* archive entries */
    uint64_t unpacked_bytes;   /* declared sizes, sparse files in full */
    uint64_t bundle_bytes;     /* bytes of the bundle file as read */
    char filter[16];           /* "none", "gzip", "zstd", "xz", "bzip2" */
    struct job_spec *spec;     /* the parsed job.conf; owned */
};

/*
 * Reads the bundle at `path` once, writes nothing, and applies every rule
 * of surplus-bundle(5).  Returns 0 with *ret filled, -EBADMSG for a bundle
 * that breaks a rule (the message names the entry and the rule), -EFBIG
 * for one over a size limit, or another negative errno (the message says
 * what failed).
 */
int bundle_check(const char *path, const struct config *cf,
                 struct bundle_summary *ret, struct err *e);

/*
 * Extracts the bundle at `path` into `dest`, a directory that must not
 * exist yet and is created with mode 0700 (owned by uid:gid when they are
 * not -1).  Same rules and errors as bundle_check; on any failure nothing
 * is left at `dest`.
 */
int bundle_extract(const char *path, const char *dest, const struct config *cf,
                   uid_t uid, gid_t gid, struct bundle_summary *ret,
                   struct err *e);

/*
 * Packs directory `dir` (whose job.conf must parse) into a reproducible
 * tar.zst at `out`: entries sorted by name, owner 0:0 with no names, mode
 * 0755 or 0644 (directories and executables 0755), times set to 0.
 * `progress`, when not NULL, is called now and then with bytes done and
 * total.
 */
int bundle_create(const char *dir, const char *out, const struct config *cf,
                  void (*progress)(uint64_t done, uint64_t total, void *arg),
                  void *arg, struct err *e);

void bundle_summary_free(struct bundle_summary *s);

#endif
