/*
 * bundle.c - job bundles (surplus-bundle(5)): check, extract, create.
 *
 * Check and extract are one streaming pass: every entry goes through the
 * same rules (name, type, links, limits) before anything is written, and
 * the first violation stops the read.  Entry names are kept in a tree of
 * components, which answers "is this a duplicate" and "does this path go
 * through a symlink" from the archive alone, never from the file system.
 * The type rule starts before libarchive: each tar header's type byte is
 * checked in the decompressed stream on its way to the tar reader (see
 * "tar headers" below).
 *
 * Extraction does not use archive_write_disk: it calls umask() for the
 * whole process, creates device nodes as root and never checks symlink
 * targets.  Every entry is created here with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) and O_EXCL|O_NOFOLLOW below a directory made for
 * this bundle, so no entry (and no concurrent writer) can redirect a write
 * outside it.
 */
#include "bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsafe.h"
#include "units.h"

#define IO_BLOCK (1024 * 1024)
#define RATIO_FLOOR (UINT64_C(16) * 1024 * 1024)
#define NAME_SHOWN 160        /* bytes of a hostile name put in a message */
#define NO_NODE UINT32_MAX
#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- messages ------------------------------------------------------------ */

/* Hostile names are escaped and cut, so that a message stays one readable
 * line whatever the archive holds. */
static char *shown(const char *s, char *buf, size_t len)
{
    char cut[NAME_SHOWN + 1];
    size_t n = strnlen(s, NAME_SHOWN + 1);

    if (n <= NAME_SHOWN)
        return err_escape(s, buf, len);
    memcpy(cut, s, NAME_SHOWN);
    cut[NAME_SHOWN] = '\0';
    err_escape(cut, buf, len - 4);
    strcat(buf, "...");
    return buf;
}

__attribute__((format(printf, 4, 5)))
static int entry_fail(struct err *e, int code, const char *name,
                      const char *fmt, ...)
{
    char esc[4 * NAME_SHOWN + 8], msg[ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_set(e, code, "entry '%s': %s", shown(name, esc, sizeof(esc)),
                   msg);
}

/* ---- the tree of names seen so far -------------------------------------- */

enum kind { K_IMPLIED, K_DIR, K_FILE, K_SYMLINK };

struct node {
    uint32_t parent;
    uint32_t next;       /* hash chain, NO_NODE at the end */
    enum kind kind;
    char *name;
};

struct tree {
    struct node *v;
    size_t n, cap;
    uint32_t *buckets;   /* first node of each chain, NO_NODE when empty */
    size_t nbuckets;     /* a power of two */
};

static uint32_t name_hash(uint32_t parent, const char *name, size_t len)
{
    uint32_t h = 2166136261u ^ parent;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    return h;
}

static uint32_t tree_find(const struct tree *t, uint32_t parent,
                          const char *name, size_t len)
{
    uint32_t i = t->buckets[name_hash(parent, name, len) & (t->nbuckets - 1)];

    for (; i != NO_NODE; i = t->v[i].next)
        if (t->v[i].parent == parent && strncmp(t->v[i].name, name, len) == 0 &&
            t->v[i].name[len] == '\0')
            return i;
    return NO_NODE;
}

static int tree_rehash(struct tree *t, size_t nbuckets)
{
    uint32_t *b = malloc(nbuckets * sizeof(*b));

    if (b == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < nbuckets; i++)
        b[i] = NO_NODE;
    for (size_t i = 1; i < t->n; i++) {
        struct node *nd = &t->v[i];
        uint32_t h = name_hash(nd->parent, nd->name, strlen(nd->name)) &
                     (nbuckets - 1);
        nd->next = b[h];
        b[h] = (uint32_t)i;
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nbuckets;
    return 0;
}

static int tree_init(struct tree *t)
{
    *t = (struct tree){0};
    t->cap = 64;
    t->v = calloc(t->cap, sizeof(*t->v));
    if (t->v == NULL)
        return -ENOMEM;
    t->v[0] = (struct node){.parent = 0, .next = NO_NODE, .kind = K_DIR,
                            .name = NULL};
    t->n = 1;
    return tree_rehash(t, 64);
}

static void tree_free(struct tree *t)
{
    for (size_t i = 1; i < t->n; i++)
        free(t->v[i].name);
    free(t->v);
    free(t->buckets);
    *t = (struct tree){0};
}

/* Returns the new node, or NO_NODE when out of memory. */
static uint32_t tree_add(struct tree *t, uint32_t parent, const char *name,
                         size_t len, enum kind kind)
{
    struct node *nd;
    uint32_t h;

    if (t->n >= NO_NODE - 1)
        return NO_NODE;
    if (t->n == t->cap) {
        struct node *v = reallocarray(t->v, t->cap * 2, sizeof(*v));
        if (v == NULL)
            return NO_NODE;
        t->v = v;
        t->cap *= 2;
    }
    if (t->n >= t->nbuckets && tree_rehash(t, t->nbuckets * 2) < 0)
        return NO_NODE;
    nd = &t->v[t->n];
    *nd = (struct node){.parent = parent, .kind = kind};
    if ((nd->name = strndup(name, len)) == NULL)
        return NO_NODE;
    h = name_hash(parent, name, len) & (t->nbuckets - 1);
    nd->next = t->buckets[h];
    t->buckets[h] = (uint32_t)t->n;
    return (uint32_t)t->n++;
}

/* ---- names ---------------------------------------------------------------- */

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp, min;

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            n = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            n = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            n = 3, cp = c & 0x07, min = 0x10000;
        else
            return false;
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* What every name and link target must be, byte by byte.  Returns the
 * broken rule or NULL. */
static const char *bytes_rule(const char *s)
{
    size_t len = strnlen(s, BUNDLE_MAX_PATH + 1);

    if (len == 0)
        return "empty name";
    if (len > BUNDLE_MAX_PATH)
        return "longer than " STR(BUNDLE_MAX_PATH) " bytes";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return "control character in the name";
    if (!utf8_valid((const unsigned char *)s, len))
        return "not valid UTF-8";
    return NULL;
}

/*
 * An entry's path (or a hard link's target) made canonical: "./a//b/" is
 * "a/b".  Refuses absolute paths, ".." anywhere, and what is too long or too
 * deep.  Returns the broken rule or NULL; `norm` holds BUNDLE_MAX_PATH + 1.
 */
static const char *path_rule(const char *raw, char *norm, size_t *ret_depth)
{
    const char *rule = bytes_rule(raw), *p = raw;
    size_t o = 0, depth = 0;

    if (rule != NULL)
        return rule;
    if (raw[0] == '/')
        return "absolute path";
    for (;;) {
        size_t len = strcspn(p, "/");

        if (len == 2 && p[0] == '.' && p[1] == '.')
            return "'..' in the path";
        if (len > BUNDLE_MAX_COMPONENT)
            return "a path component longer than "
                   STR(BUNDLE_MAX_COMPONENT) " bytes";
        if (len > 0 && !(len == 1 && p[0] == '.')) {
            if (++depth > BUNDLE_MAX_DEPTH)
                return "path deeper than " STR(BUNDLE_MAX_DEPTH)
                       " components";
            if (o > 0)
                norm[o++] = '/';
            memcpy(norm + o, p, len);
            o += len;
        }
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    norm[o] = '\0';
    *ret_depth = depth;
    return NULL;
}

/* ---- the rules -------------------------------------------------------------- */

enum etype { E_DIR, E_FILE, E_SYMLINK, E_HARDLINK };

/* One entry, as the rules see it, whether it comes from an archive or from
 * a directory being packed. */
struct ent {
    const char *raw;             /* the name as archived */
    enum etype type;
    uint64_t size;               /* declared; sparse files in full */
    mode_t mode;                 /* 0755 or 0644 */
    const char *link;            /* symlink or hard link target as archived */
    char path[BUNDLE_MAX_PATH + 1];   /* canonical; "" is the root */
    char link_path[BUNDLE_MAX_PATH + 1]; /* hard links: canonical target */
    size_t depth;
    size_t new_dirs;             /* parent directories this entry implies */
    bool exists;                 /* a directory already implied */
    bool is_conf;                /* job.conf */
};

struct rules {
    const struct config *cf;
    struct tree tree;
    uint64_t entries;     /* archive entries */
    uint64_t nodes;       /* entries plus implied directories */
    uint64_t unpacked;
    bool have_conf;
    char nested_conf[BUNDLE_MAX_PATH + 1]; /* the first DIR/job.conf, for
                                              the commonest packing mistake */
};

static const char *type_name(enum kind k)
{
    switch (k) {
    case K_IMPLIED:
    case K_DIR:
        return "directory";
    case K_FILE:
        return "regular file";
    default:
        return "symlink";
    }
}

/* Step into `name` below `cur` for an entry's parent, refusing what would
 * make the write land somewhere else. */
static int step_parent(struct rules *r, struct ent *en, uint32_t *cur,
                       const char *name, size_t len, struct err *e)
{
    uint32_t child = tree_find(&r->tree, *cur, name, len);
    size_t upto = (size_t)(name + len - en->path);
    char prefix[BUNDLE_MAX_PATH + 1], esc[4 * NAME_SHOWN + 8];

    if (child == NO_NODE) {
        if (++r->nodes > r->cf->limits.max_entries)
            return entry_fail(e, -EFBIG, en->raw, "more than %llu entries "
                              "with the directories its path implies "
                              "(limits.max_entries)",
                              (unsigned long long)r->cf->limits.max_entries);
        child = tree_add(&r->tree, *cur, name, len, K_IMPLIED);
        if (child == NO_NODE)
            return err_set(e, -ENOMEM, "out of memory");
        en->new_dirs++;
    } else if (r->tree.v[child].kind == K_SYMLINK ||
               r->tree.v[child].kind == K_FILE) {
        memcpy(prefix, en->path, upto);
        prefix[upto] = '\0';
        return entry_fail(e, -EBADMSG, en->raw, "path goes through %s '%s', "
                          "an earlier entry",
                          type_name(r->tree.v[child].kind),
                          shown(prefix, esc, sizeof(esc)));
    }
    *cur = child;
    return 0;
}

/*
 * A symlink's target is kept as archived, whatever it names: an absolute
 * path, a ".." out of the bundle, a loop.  Nothing on the host ever
 * follows a link in a bundle or a job directory (extraction refuses any
 * path through one, and everything after it opens with RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS or O_NOFOLLOW), so a target matters only in the
 * job's own view, where it resolves as the job could make it resolve
 * itself: a venv's bin/python3 -> /usr/bin/python3 finds the node's
 * python.  The target is a name like any other, byte by byte.
 */
static int symlink_rule(const struct ent *en, struct err *e)
{
    const char *rule = bytes_rule(en->link);

    if (rule != NULL)
        return entry_fail(e, -EBADMSG, en->raw, "symlink target: %s", rule);
    return 0;
}

/* A hard link names an earlier regular file by its path, with no symlink
 * on the way. */
static int hardlink_rule(struct rules *r, struct ent *en, struct err *e)
{
    char esc[4 * NAME_SHOWN + 8];
    const char *rule = path_rule(en->link, en->link_path, &(size_t){0});
    const char *p = en->link_path;
    uint32_t cur = 0;

    if (rule != NULL)
        return entry_fail(e, -EBADMSG, en->raw, "hard link target '%s': %s",
                          shown(en->link, esc, sizeof(esc)), rule);
    for (;;) {
        size_t len = strcspn(p, "/");

        cur = len ? tree_find(&r->tree, cur, p, len) : NO_NODE;
        if (cur == NO_NODE)
            return entry_fail(e, -EBADMSG, en->raw, "hard link target '%s' "
                              "is not an earlier entry",
                              shown(en->link, esc, sizeof(esc)));
        if (p[len] == '\0')
            break;
        if (r->tree.v[cur].kind == K_SYMLINK || r->tree.v[cur].kind == K_FILE)
            return entry_fail(e, -EBADMSG, en->raw, "hard link target '%s' "
                              "goes through a %s",
                              shown(en->link, esc, sizeof(esc)),
                              type_name(r->tree.v[cur].kind));
        p += len + 1;
    }
    if (r->tree.v[cur].kind != K_FILE)
        return entry_fail(e, -EBADMSG, en->raw, "hard link target '%s' is a "
                          "%s, not a regular file",
                          shown(en->link, esc, sizeof(esc)),
                          type_name(r->tree.v[cur].kind));
    return 0;
}

/* Places the entry in the tree: its parents must be directories (or
 * implied ones), its own name new. */
static int place(struct rules *r, struct ent *en, struct err *e)
{
    static const enum kind kinds[] = {[E_DIR] = K_DIR, [E_FILE] = K_FILE,
                                      [E_SYMLINK] = K_SYMLINK,
                                      [E_HARDLINK] = K_FILE};
    const char *p = en->path, *last;
    uint32_t cur = 0, node;
    size_t len;
    int ret;

    for (;;) {
        len = strcspn(p, "/");
        if (p[len] == '\0')
            break;
        if ((ret = step_parent(r, en, &cur, p, len, e)) < 0)
            return ret;
        p += len + 1;
    }
    last = p;
    node = tree_find(&r->tree, cur, last, len);
    if (node != NO_NODE) {
        if (en->type == E_DIR && r->tree.v[node].kind == K_IMPLIED) {
            r->tree.v[node].kind = K_DIR;
            en->exists = true;
            return 0;
        }
        return entry_fail(e, -EBADMSG, en->raw, "duplicate entry (an earlier "
                          "%s has the same path)",
                          type_name(r->tree.v[node].kind));
    }
    if (en->type == E_SYMLINK && (ret = symlink_rule(en, e)) < 0)
        return ret;
    if (en->type == E_HARDLINK && (ret = hardlink_rule(r, en, e)) < 0)
        return ret;
    if (tree_add(&r->tree, cur, last, len, kinds[en->type]) == NO_NODE)
        return err_set(e, -ENOMEM, "out of memory");
    return 0;
}

static int limits_rule(struct rules *r, struct ent *en, struct err *e)
{
    char lim[32];

    if (++r->entries > r->cf->limits.max_entries ||
        ++r->nodes > r->cf->limits.max_entries)
        return entry_fail(e, -EFBIG, en->raw, "more than %llu entries "
                          "(limits.max_entries)",
                          (unsigned long long)r->cf->limits.max_entries);
    if (en->size > r->cf->limits.max_unpacked_bytes - r->unpacked)
        return entry_fail(e, -EFBIG, en->raw, "unpacked size over %s "
                          "(limits.max_unpacked_bytes)",
                          units_format_size(r->cf->limits.max_unpacked_bytes,
                                            lim, sizeof(lim)));
    r->unpacked += en->size;
    return 0;
}

/* Every rule an entry must pass before anything is done with it. */
static int rules_entry(struct rules *r, struct ent *en, struct err *e)
{
    const char *rule;
    int ret;

    if ((ret = limits_rule(r, en, e)) < 0)
        return ret;
    if ((rule = path_rule(en->raw, en->path, &en->depth)) != NULL)
        return entry_fail(e, -EBADMSG, en->raw, "%s", rule);
    if (en->depth == 0) {
        /* "./": the bundle root itself, which extraction creates. */
        if (en->type != E_DIR)
            return entry_fail(e, -EBADMSG, en->raw, "names the bundle root "
                              "but is not a directory");
        en->exists = true;
        return 0;
    }
    en->is_conf = strcmp(en->path, "job.conf") == 0;
    if (en->is_conf && en->type != E_FILE)
        return entry_fail(e, -EBADMSG, en->raw, "job.conf must be a regular "
                          "file at the bundle root, not a %s",
                          en->type == E_DIR       ? "directory"
                          : en->type == E_SYMLINK ? "symlink"
                                                  : "hard link");
    if ((ret = place(r, en, e)) < 0)
        return ret;
    r->have_conf |= en->is_conf;
    if (en->depth == 2 && en->type == E_FILE && r->nested_conf[0] == '\0' &&
        strcmp(strchr(en->path, '/'), "/job.conf") == 0)
        memcpy(r->nested_conf, en->path, strlen(en->path) + 1);
    return 0;
}

/*
 * No job.conf at the root.  `tar czf job.tgz myjob/` packs the directory
 * instead of its contents, and the manifest arrives as myjob/job.conf:
 * when that is what the bundle holds, say so and how to pack it.
 */
static int no_conf_fail(const struct rules *r, struct err *e)
{
    char dir[BUNDLE_MAX_PATH + 1], esc[4 * NAME_SHOWN + 8];
    char esc_dir[4 * NAME_SHOWN + 8];
    size_t top = 0;

    if (r->nested_conf[0] == '\0')
        return err_set(e, -EBADMSG, "no job.conf at the root of the bundle");
    for (size_t i = 1; i < r->tree.n; i++)
        top += r->tree.v[i].parent == 0;
    shown(r->nested_conf, esc, sizeof(esc));
    if (top != 1)
        return err_set(e, -EBADMSG, "no job.conf at the root of the bundle "
                       "(found %s, one level down: the manifest must be at "
                       "the root)", esc);
    snprintf(dir, sizeof(dir), "%.*s",
             (int)(strchr(r->nested_conf, '/') - r->nested_conf),
             r->nested_conf);
    return err_set(e, -EBADMSG, "no job.conf at the root of the bundle: "
                   "found %s: pack the directory's contents, e.g. "
                   "`surplus bundle create %s`", esc,
                   shown(dir, esc_dir, sizeof(esc_dir)));
}

static int rules_init(struct rules *r, const struct config *cf, struct err *e)
{
    *r = (struct rules){.cf = cf};
    if (tree_init(&r->tree) < 0)
        return err_set(e, -ENOMEM, "out of memory");
    return 0;
}

/* ---- writing entries (extract) ------------------------------------------ */

struct out {
    int root;                         /* the destination directory */
    uid_t uid;
    gid_t gid;
    int pfd;                          /* the last parent directory opened */
    char ppath[BUNDLE_MAX_PATH + 1];  /* its path below root */
};

static void out_forget_parent(struct out *o)
{
    if (o->pfd >= 0 && o->pfd != o->root)
        close(o->pfd);
    o->pfd = -1;
}

/* The directory holding `path`'s last component; entries of one directory
 * usually come together, so the last one is kept open. */
static int out_parent(struct out *o, const char *path, const char **ret_base)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;
    int fd;

    *ret_base = slash ? slash + 1 : path;
    if (o->pfd >= 0 && strlen(o->ppath) == len &&
        memcmp(o->ppath, path, len) == 0)
        return o->pfd;
    out_forget_parent(o);
    memcpy(o->ppath, path, len);
    o->ppath[len] = '\0';
    if (len == 0)
        return o->pfd = o->root;
    fd = fsafe_open_beneath(o->root, o->ppath, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    return o->pfd = fd;
}

static int out_owner_mode(const struct out *o, int fd, mode_t mode)
{
    if ((o->uid != (uid_t)-1 || o->gid != (gid_t)-1) &&
        fchown(fd, o->uid, o->gid) < 0)
        return -errno;
    return fchmod(fd, mode) < 0 ? -errno : 0;
}

static int out_mkdir(struct out *o, int pfd, const char *name)
{
    int fd, r;

    if (mkdirat(pfd, name, 0700) < 0)
        return -errno;
    fd = fsafe_open_beneath(pfd, name, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    r = out_owner_mode(o, fd, 0755);
    close(fd);
    return r;
}

/* Creates the directories an entry's path implies, deepest last. */
static int out_implied(struct out *o, const struct ent *en)
{
    char path[BUNDLE_MAX_PATH + 1];
    size_t comps = en->depth - 1 - en->new_dirs;
    const char *base;
    char *p = path;
    int pfd, r;

    memcpy(path, en->path, sizeof(path));
    for (size_t k = 0; k < en->depth - 1; k++) {
        p += strcspn(p, "/");
        if (k >= comps) {
            *p = '\0';
            if ((pfd = out_parent(o, path, &base)) < 0)
                return pfd;
            if ((r = out_mkdir(o, pfd, base)) < 0)
                return r;
            *p = '/';
        }
        p++;
    }
    return 0;
}

/* Creates the entry; regular files are left open for their data. */
static int out_create(struct out *o, const struct ent *en, int *ret_fd)
{
    const char *base;
    int pfd, fd, r;

    *ret_fd = -1;
    if (en->depth == 0 || en->exists)
        return 0;
    if (en->new_dirs > 0 && (r = out_implied(o, en)) < 0)
        return r;
    if ((pfd = out_parent(o, en->path, &base)) < 0)
        return pfd;
    switch (en->type) {
    case E_DIR:
        return out_mkdir(o, pfd, base);
    case E_FILE:
        fd = fsafe_open_beneath(pfd, base, O_CREAT | O_EXCL | O_WRONLY, 0600);
        if (fd < 0)
            return fd;
        *ret_fd = fd;
        return 0;
    case E_SYMLINK:
        if (symlinkat(en->link, pfd, base) < 0)
            return -errno;
        if ((o->uid != (uid_t)-1 || o->gid != (gid_t)-1) &&
            fchownat(pfd, base, o->uid, o->gid, AT_SYMLINK_NOFOLLOW) < 0)
            return -errno;
        return 0;
    case E_HARDLINK: {
        char dir[BUNDLE_MAX_PATH + 1];
        const char *slash = strrchr(en->link_path, '/');
        int tfd = o->root;

        if (slash != NULL) {
            memcpy(dir, en->link_path, (size_t)(slash - en->link_path));
            dir[slash - en->link_path] = '\0';
            tfd = fsafe_open_beneath(o->root, dir, O_RDONLY | O_DIRECTORY, 0);
            if (tfd < 0)
                return tfd;
        }
        /* No AT_SYMLINK_FOLLOW: the name itself is linked, never what a
         * symlink there would point to. */
        r = linkat(tfd, slash ? slash + 1 : en->link_path, pfd, base, 0);
        r = r < 0 ? -errno : 0;
        if (tfd != o->root)
            close(tfd);
        return r;
    }
    }
    return -EINVAL;
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

static int out_finish_file(struct out *o, int fd, const struct ent *en,
                           struct archive_entry *ae)
{
    struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {0}};
    int r;

    /* Trailing holes of sparse files are not in the data. */
    if (ftruncate(fd, (off_t)en->size) < 0)
        return -errno;
    if ((r = out_owner_mode(o, fd, en->mode)) < 0)
        return r;
    if (archive_entry_mtime_is_set(ae)) {
        long ns = archive_entry_mtime_nsec(ae);
        ts[1].tv_sec = archive_entry_mtime(ae);
        ts[1].tv_nsec = ns >= 0 && ns < 1000000000 ? ns : 0;
        /* A time the file system cannot store is not worth failing for. */
        (void)futimens(fd, ts);
    }
    return 0;
}

/* ---- tar headers, as libarchive's tar reader finds them ------------------ */

/*
 * libarchive reads a tar header whose type byte it does not know as a
 * regular file, as POSIX asks of tar readers, and some it does know it
 * handles silently (a GNU volume header is skipped, a Solaris 'X' header
 * is read as pax attributes); nothing in what archive_read_next_header()
 * returns tells which type byte an entry had.  So the decompressed stream
 * reaches the tar reader through this walker, which finds the headers in
 * it and checks each type byte before the reader sees that header.
 *
 * The walker must find the headers where libarchive does, which takes
 * libarchive's rules for the data that follows a header rather than the
 * size field alone: no data for symlinks, directories, devices and fifos,
 * none for a hard link in a GNU or old archive (or in a ustar one whose
 * own header bids as ustar), a pax 'size' record over all of these, GNU
 * sparse map blocks before the data, and no data for a "regular file"
 * whose name ends in '/'.  These are the rules of libarchive 3.6.  An
 * archive that another version reads differently, or one built to make
 * tar readers disagree, is caught anyway: every entry libarchive returns
 * must start where the walker found the start of a chain of headers that
 * it checked whole, and the archive must end where the walker found its
 * end (layout_rule); otherwise the bundle is refused as ambiguous.
 *
 * Memory is fixed apart from the queue of entries found but not yet
 * returned by libarchive, which holds at most the entries of one block
 * handed to it (libarchive asks for more only once it has used those).
 */

#define TAR_BLOCK 512
#define TAR_BODY_MAX 1048576     /* libarchive's limit on an extension body */
#define TAR_PAX_LINE_MAX 999999  /* and on a pax record */
#define PAX_KEY_MAX 15           /* the longest key that matters here */
#define TW_END_MARK (UINT64_C(1) << 63)   /* a queued end of archive */

/* Offsets in a header: ustar, and GNU where it differs. */
#define H_NAME 0
#define H_MODE 100
#define H_UID 108
#define H_GID 116
#define H_SIZE 124
#define H_MTIME 136
#define H_CHKSUM 148
#define H_TYPE 156
#define H_MAGIC 257
#define H_DEVMAJOR 329
#define H_DEVMINOR 337
#define H_PREFIX 345
#define H_GNU_SPARSE 386         /* the first sparse entry's offset */
#define H_GNU_EXTENDED 482       /* more sparse entries in the next block */
#define X_GNU_EXTENDED 504       /* the same, in such a block */

enum tw_state {
    TW_HEADER,    /* reading a header */
    TW_BODY,      /* the body of an 'x', 'g', 'L' or 'K' header */
    TW_SPARSE,    /* GNU sparse map blocks after a header */
    TW_SKIP,      /* data and padding */
    TW_END,       /* past the end-of-archive block: libarchive stops too */
    TW_LOST,      /* past something libarchive refuses: not followed */
};

/* libarchive's archive_format as its tar reader updates it, header by
 * header: it decides whether a hard link has data. */
enum tw_format { TF_NONE, TF_OLD, TF_USTAR, TF_PAX, TF_GNU };

/* A name as it streams by: its first bytes, for messages, its length up
 * to the first NUL, and its last byte. */
struct tw_name {
    char shown[NAME_SHOWN + 2];
    size_t len;
    unsigned char last;
    bool ended;          /* a NUL was seen: the rest is not the name */
};

/* libarchive's tar_atol10 on a value, a byte at a time. */
struct tw_num {
    enum { NUM_BLANKS, NUM_SIGN, NUM_DIGITS, NUM_DONE } st;
    bool neg, over;
    int64_t v;
};

/* One 'x' body, parsed record by record as libarchive's pax_header does;
 * only size, path and GNU.sparse.name matter here. */
struct tw_pax {
    enum { PAX_LEN, PAX_KEY, PAX_VALUE, PAX_STOP } st;
    uint64_t avail;      /* body bytes from the record's first one on */
    uint64_t len;        /* the record's length, as it says */
    uint64_t at;         /* bytes of the record read */
    char key[PAX_KEY_MAX + 1];
    size_t klen;         /* the key's length, up to PAX_KEY_MAX + 1 */
    enum { PV_NONE, PV_SIZE, PV_PATH, PV_SPARSE_NAME } kind;
    bool vnul;           /* a NUL in the value, where strlen() stops */
    struct tw_num num;
    struct tw_name val;
    bool size_set;
    int64_t size;
    struct tw_name path, sparse_name;
};

/* All zero: at the start of a stream. */
struct tarwalk {
    enum tw_state state;
    enum tw_format fmt;
    uint64_t pos;        /* stream offset of the next byte */
    unsigned char blk[TAR_BLOCK];   /* a header split between blocks */
    size_t fill;         /* bytes of blk read */
    uint64_t left;       /* TW_BODY, TW_SKIP: bytes still to pass */
    uint64_t body_pad;   /* TW_BODY: padding after the body */
    unsigned char body;  /* TW_BODY: the type of its header */
    /* the chain of headers of one entry */
    bool in_chain;
    uint64_t chain;      /* offset of its first header */
    unsigned char name_by;    /* 'L' or 'x' when one names the entry */
    struct tw_name longname;  /* the last 'L' body */
    struct tw_name paxname;   /* what the 'x' body names */
    bool pax_size_set;
    int64_t pax_size;
    struct tw_pax pax;
    /* offsets of the entries found, oldest first; TW_END_MARK marks the
     * end of the archive */
    uint64_t *found;
    size_t head, n, cap;
    bool oom;
    /* the header that breaks the type rule */
    bool bad;
    uint64_t bad_at;
    unsigned char bad_type;
    struct tw_name bad_name;
};

static void name_clear(struct tw_name *n)
{
    n->shown[0] = '\0';
    n->len = 0;
    n->last = 0;
    n->ended = false;
}

static void name_add(struct tw_name *n, const unsigned char *p, size_t k)
{
    const unsigned char *nul;

    if (n->ended || k == 0)
        return;
    if ((nul = memchr(p, '\0', k)) != NULL) {
        n->ended = true;
        k = (size_t)(nul - p);
        if (k == 0)
            return;
    }
    if (n->len < NAME_SHOWN + 1) {
        size_t c = NAME_SHOWN + 1 - n->len < k ? NAME_SHOWN + 1 - n->len : k;
        memcpy(n->shown + n->len, p, c);
        n->shown[n->len + c] = '\0';
    }
    n->len += k;
    n->last = p[k - 1];
}

/* libarchive's tar_atol_base_n: blanks, an optional '-', digits; INT64_MAX
 * on overflow.  Negative values are all -1 here: each one makes libarchive
 * refuse the archive (or treat its entry as empty, for -0). */
static int64_t tar_atol_base(const unsigned char *p, size_t n, unsigned base)
{
    bool neg = false;
    int64_t v = 0;

    while (n > 0 && (*p == ' ' || *p == '\t'))
        p++, n--;
    if (n > 0 && *p == '-')
        neg = true, p++, n--;
    for (; n > 0 && *p >= '0' && *p < '0' + base; p++, n--) {
        unsigned d = *p - '0';
        if (v > (INT64_MAX - (int64_t)d) / (int64_t)base)
            return neg ? -1 : INT64_MAX;
        v = v * (int64_t)base + (int64_t)d;
    }
    return neg && v != 0 ? -1 : v;
}

/* libarchive's tar_atol: base-256 when the first byte's high bit is set,
 * octal otherwise. */
static int64_t tar_number(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], neg = 0;
    uint64_t v = 0;

    if (!(c & 0x80))
        return tar_atol_base(p, n, 8);
    if (c & 0x40) {
        neg = 0xff;
        v = ~UINT64_C(0);
    } else {
        c &= 0x7f;
    }
    for (; n > sizeof(int64_t); n--) {
        if (c != neg)
            return neg ? -1 : INT64_MAX;
        c = *++p;
    }
    if ((c ^ neg) & 0x80)
        return neg ? -1 : INT64_MAX;
    for (; n > 1; n--) {
        v = (v << 8) | c;
        c = *++p;
    }
    v = (v << 8) | c;
    return neg ? -1 : (int64_t)v;
}

/* The sum of a block's bytes, unsigned.  This runs for every header of
 * every bundle, so 8 bytes at a time, in four 16-bit lanes: 64 words add
 * at most 64 * 2 * 255 to a lane, which fits. */
static long block_sum(const unsigned char *h)
{
    const uint64_t even = UINT64_C(0x00ff00ff00ff00ff);
    uint64_t lanes = 0, w;

    for (size_t i = 0; i < TAR_BLOCK; i += 8) {
        memcpy(&w, h + i, 8);
        lanes += (w & even) + ((w >> 8) & even);
    }
    return (long)((lanes & 0xffff) + ((lanes >> 16) & 0xffff) +
                  ((lanes >> 32) & 0xffff) + (lanes >> 48));
}

/* Checksummed as POSIX says (unsigned bytes) or as some old tars did
 * (signed), which libarchive accepts too.  The checksum field counts as
 * blanks. */
static bool tar_checksum_ok(const unsigned char *h)
{
    long sum, u = 8 * ' ', s = 8 * ' ';

    for (size_t i = H_CHKSUM; i < H_CHKSUM + 8; i++)
        if (h[i] != ' ' && h[i] != '\0' && (h[i] < '0' || h[i] > '7'))
            return false;
    sum = (long)tar_atol_base(h + H_CHKSUM, 8, 8);
    u += block_sum(h);
    for (size_t i = H_CHKSUM; i < H_CHKSUM + 8; i++)
        u -= h[i];
    if (sum == u)
        return true;
    for (size_t i = 0; i < TAR_BLOCK; i++)
        s += (signed char)h[i];
    for (size_t i = H_CHKSUM; i < H_CHKSUM + 8; i++)
        s -= (signed char)h[i];
    return sum == s;
}

static bool tar_block_zero(const unsigned char *h)
{
    for (size_t i = 0; i < TAR_BLOCK; i++)
        if (h[i] != 0)
            return false;
    return true;
}

/* libarchive's validate_number_field. */
static bool tar_field_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;

    if (p[0] == 0 || p[0] == 0x80 || p[0] == 0xff)
        return true;
    while (i < n && p[i] == ' ')
        i++;
    while (i < n && p[i] >= '0' && p[i] <= '7')
        i++;
    for (; i < n; i++)
        if (p[i] != ' ' && p[i] != '\0')
            return false;
    return true;
}

/* Whether libarchive's tar bid for this (checksummed) header is over 50:
 * for a hard link in a ustar archive, it bids on the link's own header
 * and takes a high bid to mean that no data follows. */
static bool tar_bid_high(const unsigned char *h)
{
    unsigned char t = h[H_TYPE];

    if (memcmp(h + H_MAGIC, "ustar\0" "00", 8) != 0 &&
        memcmp(h + H_MAGIC, "ustar  \0", 8) != 0)
        return false;
    if (t != 0 && !(t >= '0' && t <= '9') && !(t >= 'A' && t <= 'Z') &&
        !(t >= 'a' && t <= 'z'))
        return false;
    return tar_field_ok(h + H_MODE, 8) && tar_field_ok(h + H_UID, 8) &&
           tar_field_ok(h + H_GID, 8) && tar_field_ok(h + H_MTIME, 12) &&
           tar_field_ok(h + H_SIZE, 12) && tar_field_ok(h + H_DEVMAJOR, 8) &&
           tar_field_ok(h + H_DEVMINOR, 8);
}

static void tw_free(struct tarwalk *w)
{
    free(w->found);
    w->found = NULL;
}

static void tw_push(struct tarwalk *w, uint64_t v)
{
    if (w->head + w->n == w->cap) {
        if (w->head > 0) {
            memmove(w->found, w->found + w->head, w->n * sizeof(*w->found));
            w->head = 0;
        } else {
            size_t cap = w->cap ? w->cap * 2 : 64;
            uint64_t *f = reallocarray(w->found, cap, sizeof(*f));
            if (f == NULL) {
                w->oom = true;
                return;
            }
            w->found = f;
            w->cap = cap;
        }
    }
    w->found[w->head + w->n++] = v;
}

static bool tw_pop(struct tarwalk *w, uint64_t *ret)
{
    if (w->n == 0)
        return false;
    *ret = w->found[w->head++];
    if (--w->n == 0)
        w->head = 0;
    return true;
}

/* The name a header gives its entry: a ustar prefix and name, or just the
 * name. */
static void header_name(const unsigned char *h, struct tw_name *n)
{
    bool ustar = memcmp(h + H_MAGIC, "ustar", 5) == 0 &&
                 memcmp(h + H_MAGIC, "ustar  \0", 8) != 0;

    name_clear(n);
    if (ustar && h[H_PREFIX] != 0) {
        size_t plen = strnlen((const char *)h + H_PREFIX, 155);
        name_add(n, h + H_PREFIX, plen);
        if (h[H_PREFIX + plen - 1] != '/')
            name_add(n, (const unsigned char *)"/", 1);
    }
    name_add(n, h + H_NAME, strnlen((const char *)h + H_NAME, 100));
}

/* The entry's name as libarchive ends up with it: the outermost of the
 * extension headers that name it wins ('L' bodies share one buffer, so
 * the last one's text), else the header's own. */
static void entry_name(const struct tarwalk *w, const unsigned char *h,
                       struct tw_name *n)
{
    if (w->name_by == 'L')
        *n = w->longname;
    else if (w->name_by == 'x')
        *n = w->paxname;
    else
        header_name(h, n);
}

/* Whether that name ends in '/', without building it. */
static bool entry_name_slash(const struct tarwalk *w, const unsigned char *h)
{
    const struct tw_name *n = w->name_by == 'L'   ? &w->longname
                              : w->name_by == 'x' ? &w->paxname
                                                  : NULL;
    size_t len;

    if (n != NULL)
        return n->len > 0 && n->last == '/';
    if ((len = strnlen((const char *)h + H_NAME, 100)) > 0)
        return h[H_NAME + len - 1] == '/';
    /* An empty name after a ustar prefix: "prefix/". */
    return h[H_PREFIX] != 0 && memcmp(h + H_MAGIC, "ustar", 5) == 0 &&
           memcmp(h + H_MAGIC, "ustar  \0", 8) != 0;
}

static int64_t num_value(const struct tw_num *x)
{
    if (x->over)
        return x->neg ? -1 : INT64_MAX;
    return x->neg && x->v != 0 ? -1 : x->v;
}

static void num_add(struct tw_num *x, unsigned char c)
{
    switch (x->st) {
    case NUM_BLANKS:
        if (c == ' ' || c == '\t')
            return;
        x->st = NUM_SIGN;
        /* fall through */
    case NUM_SIGN:
        x->st = NUM_DIGITS;
        if (c == '-') {
            x->neg = true;
            return;
        }
        /* fall through */
    case NUM_DIGITS:
        if (c < '0' || c > '9' || x->v > (INT64_MAX - (c - '0')) / 10) {
            x->over = c >= '0' && c <= '9';
            x->st = NUM_DONE;
            return;
        }
        x->v = x->v * 10 + (c - '0');
        return;
    case NUM_DONE:
        return;
    }
}

static void pax_begin(struct tw_pax *x)
{
    *x = (struct tw_pax){.st = PAX_LEN};
    name_clear(&x->path);
    name_clear(&x->sparse_name);
}

/* One byte of an 'x' body; `avail` counts the body's bytes from this one
 * on.  A malformed record stops libarchive's parse (and makes it warn,
 * which refuses the bundle); the walker stops there too. */
static void pax_byte(struct tw_pax *x, unsigned char c, uint64_t avail)
{
    switch (x->st) {
    case PAX_STOP:
        return;
    case PAX_LEN:
        if (x->at++ == 0)
            x->avail = avail;
        if (c == ' ') {
            x->st = x->len > x->at && x->len <= x->avail ? PAX_KEY : PAX_STOP;
            x->klen = 0;
            return;
        }
        if (c < '0' || c > '9' ||
            (x->len = x->len * 10 + (c - '0')) > TAR_PAX_LINE_MAX)
            x->st = PAX_STOP;
        return;
    case PAX_KEY:
    case PAX_VALUE:
        break;
    }
    if (++x->at == x->len) {
        /* The record's last byte: a newline, after a key and '='. */
        if (c != '\n' || x->st != PAX_VALUE) {
            x->st = PAX_STOP;
            return;
        }
        if (x->kind == PV_SIZE) {
            x->size_set = true;
            x->size = num_value(&x->num);
        } else if (x->kind == PV_PATH) {
            x->path = x->val;
        } else if (x->kind == PV_SPARSE_NAME) {
            x->sparse_name = x->val;
        }
        x->st = PAX_LEN;
        x->len = x->at = 0;
        return;
    }
    if (x->st == PAX_KEY) {
        if (c == '\0' || (c == '=' && x->klen == 0)) {
            x->st = PAX_STOP;
        } else if (c == '=') {
            /* A key longer than PAX_KEY_MAX is none that matters. */
            x->key[x->klen <= PAX_KEY_MAX ? x->klen : 0] = '\0';
            x->kind = strcmp(x->key, "size") == 0              ? PV_SIZE
                      : strcmp(x->key, "path") == 0            ? PV_PATH
                      : strcmp(x->key, "GNU.sparse.name") == 0 ? PV_SPARSE_NAME
                                                               : PV_NONE;
            x->vnul = false;
            x->num = (struct tw_num){.st = NUM_BLANKS};
            name_clear(&x->val);
            x->st = PAX_VALUE;
        } else {
            if (x->klen < PAX_KEY_MAX)
                x->key[x->klen] = (char)c;
            if (x->klen <= PAX_KEY_MAX)
                x->klen++;
        }
        return;
    }
    if (x->vnul || (x->vnul = c == '\0'))
        return;
    if (x->kind == PV_SIZE)
        num_add(&x->num, c);
    else if (x->kind != PV_NONE)
        name_add(&x->val, &c, 1);
}

static void tw_body_end(struct tarwalk *w)
{
    if (w->body == 'L') {
        if (w->name_by == 0)
            w->name_by = 'L';
    } else if (w->body == 'x') {
        /* libarchive prefers GNU.sparse.name to path; an empty one names
         * nothing. */
        const struct tw_name *n = w->pax.sparse_name.len > 0
                                      ? &w->pax.sparse_name
                                      : &w->pax.path;
        if (w->pax.size_set) {
            w->pax_size_set = true;
            w->pax_size = w->pax.size;
        }
        if (n->len > 0) {
            w->paxname = *n;
            if (w->name_by == 0)
                w->name_by = 'x';
        }
    }
    w->left = w->body_pad;
    w->state = w->left > 0 ? TW_SKIP : TW_HEADER;
}

/* The header that ends a chain: how much follows it, as libarchive's
 * header_common, header_gnutar and pax handling work it out. */
static void tw_final(struct tarwalk *w, const unsigned char *h)
{
    bool gnu = memcmp(h + H_MAGIC, "ustar  \0", 8) == 0;
    bool ustar = !gnu && memcmp(h + H_MAGIC, "ustar", 5) == 0;
    int64_t size = tar_number(h + H_SIZE, 12);
    bool reg = true;

    w->fmt = gnu ? TF_GNU : !ustar ? TF_OLD : w->fmt == TF_PAX ? TF_PAX
                                                                : TF_USTAR;
    if (size < 0 || size == INT64_MAX) {
        w->state = TW_LOST;
        return;
    }
    switch (h[H_TYPE]) {
    case '1':
        /* Read as a regular file only when it has a size (or a mode that
         * says so); data only in a pax archive, or when its own header
         * does not bid high as ustar. */
        reg = size > 0 || (tar_number(h + H_MODE, 8) & 0170000) == 0100000;
        if (size > 0 && w->fmt != TF_PAX &&
            (w->fmt == TF_OLD || w->fmt == TF_GNU || tar_bid_high(h)))
            size = 0;
        break;
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
        /* No data, whatever the size field says. */
        reg = false;
        size = 0;
        break;
    }
    /* A pax 'size' record comes last, over all of the above. */
    if (w->pax_size_set) {
        if (w->pax_size < 0) {
            w->state = TW_LOST;
            return;
        }
        size = w->pax_size;
    }
    /* A "regular file" named with a trailing '/' is read as a directory,
     * with no data.  (Not when libarchive warned about the entry, over a
     * name it could not convert; layout_rule catches that case.) */
    if (reg && size > 0 && entry_name_slash(w, h))
        size = 0;
    tw_push(w, w->chain);
    w->in_chain = false;
    w->left = (uint64_t)size + (0x1ff & -(uint64_t)size);
    /* A GNU header's sparse map goes on in blocks before the data. */
    if (gnu && h[H_GNU_SPARSE] != 0 && h[H_GNU_EXTENDED] != 0)
        w->state = TW_SPARSE;
    else
        w->state = w->left > 0 ? TW_SKIP : TW_HEADER;
}

/* A whole header block, at stream offset `at`. */
static void tw_header(struct tarwalk *w, const unsigned char *h, uint64_t at)
{
    int64_t size;

    if (tar_block_zero(h)) {
        tw_push(w, (w->in_chain ? w->chain : at) | TW_END_MARK);
        w->state = TW_END;
        return;
    }
    /* A header with a wrong checksum is followed like any other: libarchive
     * refuses it as damaged when it gets there, before any later entry. */
    if (!w->in_chain) {
        w->in_chain = true;
        w->chain = at;
        w->name_by = 0;
        w->pax_size_set = false;
    }
    switch (h[H_TYPE]) {
    /* Headers whose body describes the entry after them. */
    case 'x':
    case 'g':
    case 'L':
    case 'K':
        if (h[H_TYPE] == 'x' || h[H_TYPE] == 'g')
            w->fmt = TF_PAX;
        size = tar_number(h + H_SIZE, 12);
        if (size < 0 || size > TAR_BODY_MAX) {
            w->state = TW_LOST;
            return;
        }
        w->body = h[H_TYPE];
        w->left = (uint64_t)size;
        w->body_pad = 0x1ff & -(uint64_t)size;
        if (w->body == 'L')
            name_clear(&w->longname);
        else if (w->body == 'x')
            pax_begin(&w->pax);
        w->state = TW_BODY;
        if (size == 0)
            tw_body_end(w);
        return;
    case '0':
    case '\0':
    case '7':
    case 'S':
    case '1':
    case '2':
    case '5':
    /* Devices and fifos are refused later, by entry_from_archive, with
     * their own message. */
    case '3':
    case '4':
    case '6':
        tw_final(w, h);
        return;
    default:
        /* Refused as damaged by libarchive, and said so, not as a type. */
        if (!tar_checksum_ok(h)) {
            w->state = TW_LOST;
            return;
        }
        w->bad = true;
        w->bad_at = at;
        w->bad_type = h[H_TYPE];
        entry_name(w, h, &w->bad_name);
        return;
    }
}

/*
 * Walks the next `len` bytes of the stream.  Returns how many of them may
 * go to the tar reader: all, or those before a header that breaks the
 * type rule (0 once past one), so that libarchive never reads it and the
 * entries before it are judged first.
 */
static size_t tw_walk(struct tarwalk *w, const unsigned char *p, size_t len)
{
    const unsigned char *h;
    uint64_t start = w->pos;
    size_t i = 0;

    if (w->bad)
        return 0;
    while (i < len && !w->bad) {
        size_t k = len - i;

        switch (w->state) {
        case TW_HEADER:
        case TW_SPARSE:
            if (w->fill == 0 && k >= TAR_BLOCK) {
                /* A whole block here: looked at where it is. */
                h = p + i;
                i += TAR_BLOCK;
            } else {
                k = k < TAR_BLOCK - w->fill ? k : TAR_BLOCK - w->fill;
                memcpy(w->blk + w->fill, p + i, k);
                w->fill += k;
                i += k;
                if (w->fill < TAR_BLOCK)
                    break;
                w->fill = 0;
                h = w->blk;
            }
            if (w->state == TW_HEADER)
                tw_header(w, h, start + i - TAR_BLOCK);
            else if (h[X_GNU_EXTENDED] == 0)
                w->state = w->left > 0 ? TW_SKIP : TW_HEADER;
            break;
        case TW_BODY:
            k = w->left < k ? (size_t)w->left : k;
            if (w->body == 'L') {
                name_add(&w->longname, p + i, k);
            } else if (w->body == 'x') {
                for (size_t b = 0; b < k; b++)
                    pax_byte(&w->pax, p[i + b], w->left - b);
            }
            i += k;
            if ((w->left -= k) == 0)
                tw_body_end(w);
            break;
        case TW_SKIP:
            k = w->left < k ? (size_t)w->left : k;
            i += k;
            if ((w->left -= k) == 0)
                w->state = TW_HEADER;
            break;
        case TW_END:
        case TW_LOST:
            i = len;
            break;
        }
    }
    w->pos = start + i;
    if (w->bad)
        return w->bad_at > start ? (size_t)(w->bad_at - start) : 0;
    return len;
}

/* The stream ended: at a header boundary, that is where the archive ends
 * (libarchive accepts an archive without end-of-archive blocks). */
static void tw_end(struct tarwalk *w)
{
    if (w->state == TW_HEADER && w->fill == 0)
        tw_push(w, (w->in_chain ? w->chain : w->pos) | TW_END_MARK);
}

/* ---- reading the bundle --------------------------------------------------- */

/* The bundle file, read in large blocks and counted: the count is what
 * limits.max_bundle_bytes and the ratio are measured against. */
struct src {
    int fd;
    unsigned char *buf;
    uint64_t read;
    uint64_t max;
    unsigned char magic[8];
    size_t nmagic;
    int err;           /* errno of a failed read */
    bool over;         /* past max_bundle_bytes */
};

static la_ssize_t src_read(struct archive *a, void *arg, const void **ret)
{
    struct src *s = arg;
    size_t want = IO_BLOCK;
    ssize_t n;

    /* Never read more than one byte past the limit. */
    if (s->max - s->read < want)
        want = (size_t)(s->max - s->read) + 1;
    do
        n = read(s->fd, s->buf, want);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        s->err = errno;
        archive_set_error(a, errno, "read: %s", strerror(errno));
        return -1;
    }
    if (s->nmagic < sizeof(s->magic)) {
        size_t k = sizeof(s->magic) - s->nmagic;
        k = k < (size_t)n ? k : (size_t)n;
        memcpy(s->magic + s->nmagic, s->buf, k);
        s->nmagic += k;
    }
    s->read += (uint64_t)n;
    if (s->read > s->max) {
        s->over = true;
        archive_set_error(a, EFBIG, "bundle larger than max_bundle_bytes");
        return -1;
    }
    *ret = s->buf;
    return n;
}

struct job {
    const struct config *cf;
    struct err *e;
    struct archive *raw;             /* the bundle, decompressed */
    struct archive *a;               /* the tar reader, fed from raw */
    const unsigned char *next;       /* what raw's last block has left */
    size_t left;
    bool raw_eof;
    bool cut;                        /* the tar reader reached a header that
                                        breaks the type rule */
    struct tarwalk tw;
    struct src src;
    struct rules rules;
    struct out *out;                 /* NULL to check only */
    struct bundle_summary sum;
    char *conf;                      /* job.conf's bytes */
    char last[BUNDLE_MAX_PATH + 1];  /* the last entry read, for damage
                                        found between entries */
};

static int src_open(struct job *j, const char *path)
{
    struct stat st;
    char lim[32];

    /* O_NONBLOCK: opening a fifo must not wait for a writer. */
    j->src.fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (j->src.fd < 0)
        return err_set(j->e, -errno, "%s", strerror(errno));
    if (fstat(j->src.fd, &st) < 0)
        return err_set(j->e, -errno, "%s", strerror(errno));
    if (S_ISDIR(st.st_mode))
        return err_set(j->e, -EISDIR, "is a directory, not a bundle");
    if (!S_ISREG(st.st_mode))
        return err_set(j->e, -EINVAL, "is a %s, not a bundle (a bundle is "
                       "a regular file)",
                       S_ISFIFO(st.st_mode)   ? "fifo"
                       : S_ISSOCK(st.st_mode) ? "socket"
                       : S_ISCHR(st.st_mode)  ? "character device"
                       : S_ISBLK(st.st_mode)  ? "block device"
                                              : "special file");
    fcntl(j->src.fd, F_SETFL, 0);
    j->src.max = j->cf->limits.max_bundle_bytes;
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > j->src.max)
        return err_set(j->e, -EFBIG, "bundle of %s is larger than %s "
                       "(limits.max_bundle_bytes)",
                       units_format_size((uint64_t)st.st_size, lim, 16),
                       units_format_size(j->src.max, lim + 16, 16));
    (void)posix_fadvise(j->src.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    if ((j->src.buf = malloc(IO_BLOCK)) == NULL)
        return err_set(j->e, -ENOMEM, "out of memory");
    return 0;
}

/* Names what a non-tar file is, for a clearer refusal than libarchive's. */
static const char *sniff(const struct src *s)
{
    static const struct {
        const char *magic;
        size_t len;
        const char *name;
    } known[] = {
        {"PK\003\004", 4, "a zip archive"},
        {"PK\005\006", 4, "a zip archive"},
        {"Rar!\032\007", 6, "a RAR archive"},
        {"7z\274\257\047\034", 6, "a 7z archive"},
        {"LRZI", 4, "an lrzip file"},
        {"LZIP", 4, "an lzip file"},
        {"\211LZO", 4, "an lzop file"},
        {"\004\042\115\030", 4, "an lz4 file"},
        {"070707", 6, "a cpio archive"},
        {"070701", 6, "a cpio archive"},
        {"!<arch>", 7, "an ar archive"},
        {"MSCF", 4, "a cab archive"},
    };

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (s->nmagic >= known[i].len &&
            memcmp(s->magic, known[i].magic, known[i].len) == 0)
            return known[i].name;
    return NULL;
}

/* A header whose type byte the rules do not allow. */
static int type_fail(struct job *j)
{
    unsigned char t = j->tw.bad_type;
    char type[8];

    if (t > 0x20 && t < 0x7f)
        snprintf(type, sizeof(type), "'%c'", t);
    else
        snprintf(type, sizeof(type), "0x%02x", t);
    return entry_fail(j->e, -EBADMSG, j->tw.bad_name.shown, "unknown tar "
                      "entry type %s (a bundle holds only regular files, "
                      "directories, symlinks and hard links)", type);
}

/* The error of a failed libarchive call, as this interface reports it. */
static int archive_fail(struct job *j, const char *entry)
{
    const char *msg = archive_error_string(j->a);
    char lim[32];

    if (j->cut)
        return type_fail(j);
    if (j->src.over)
        return err_set(j->e, -EFBIG, "bundle larger than %s "
                       "(limits.max_bundle_bytes)",
                       units_format_size(j->src.max, lim, sizeof(lim)));
    if (j->src.err != 0)
        return err_set(j->e, -j->src.err, "read: %s", strerror(j->src.err));
    if (archive_errno(j->a) == ENOMEM)
        return err_set(j->e, -ENOMEM, "out of memory");
    if (msg == NULL)
        msg = "unreadable archive";
    if (entry != NULL)
        return entry_fail(j->e, -EBADMSG, entry, "%s", msg);
    return err_set(j->e, -EBADMSG, "%s", msg);
}

/*
 * The tar reader's input: raw's blocks, each walked before it is handed
 * over, and nothing from a header that breaks the type rule on.  The
 * blocks are passed as they are, without a copy.
 */
static la_ssize_t tar_read(struct archive *a, void *arg, const void **ret)
{
    struct job *j = arg;
    const void *buf;
    size_t len, n;
    la_int64_t off;
    int r;

    while (j->left == 0 && !j->raw_eof && !j->tw.bad) {
        r = archive_read_data_block(j->raw, &buf, &len, &off);
        if (r == ARCHIVE_EOF) {
            j->raw_eof = true;
            tw_end(&j->tw);
        } else if (r != ARCHIVE_OK) {
            archive_set_error(a, archive_errno(j->raw), "%s",
                              archive_error_string(j->raw)
                                  ? archive_error_string(j->raw)
                                  : "unreadable data");
            return -1;
        } else {
            j->next = buf;
            j->left = len;
        }
    }
    n = j->left > 0 ? tw_walk(&j->tw, j->next, j->left) : 0;
    if (j->tw.oom) {
        archive_set_error(a, ENOMEM, "out of memory");
        return -1;
    }
    if (j->tw.bad && n == 0) {
        j->cut = true;
        archive_set_error(a, EBADMSG, "unknown tar entry type");
        return -1;
    }
    *ret = j->next;
    j->next += n;
    j->left -= n;
    return (la_ssize_t)n;
}

/*
 * Two readers: `raw` takes the bundle through its decompression (libarchive
 * finds which) and yields the tar stream, and `a` reads that stream as tar
 * through tar_read, which walks the headers on the way.
 */
static int reader_open(struct job *j)
{
    static const struct {
        int (*enable)(struct archive *);
        const char *name;
    } filters[] = {
        {archive_read_support_filter_none, "none"},
        {archive_read_support_filter_gzip, "gzip"},
        {archive_read_support_filter_zstd, "zstd"},
        {archive_read_support_filter_xz, "xz"},
        {archive_read_support_filter_bzip2, "bzip2"},
    };
    struct archive_entry *ae;
    const char *what;
    int code;

    if ((j->raw = archive_read_new()) == NULL ||
        (j->a = archive_read_new()) == NULL)
        return err_set(j->e, -ENOMEM, "out of memory");
    if (archive_read_support_format_raw(j->raw) != ARCHIVE_OK ||
        archive_read_support_format_tar(j->a) != ARCHIVE_OK)
        return err_set(j->e, -ENOTSUP, "libarchive cannot read tar");
    /* ARCHIVE_WARN means "through an external program": never that. */
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
        if (filters[i].enable(j->raw) != ARCHIVE_OK)
            return err_set(j->e, -ENOTSUP, "this libarchive has no built-in "
                           "%s support", filters[i].name);
    if (archive_read_open(j->raw, &j->src, NULL, src_read, NULL) !=
            ARCHIVE_OK ||
        archive_read_next_header(j->raw, &ae) != ARCHIVE_OK ||
        archive_read_open(j->a, j, NULL, tar_read, NULL) != ARCHIVE_OK) {
        if (j->cut || j->tw.oom || j->src.over || j->src.err != 0)
            return archive_fail(j, NULL);
        what = sniff(&j->src);
        return err_set(j->e, -EBADMSG, "not a tar archive%s%s (a bundle is "
                       "a tar archive, uncompressed or compressed with gzip, "
                       "zstd, xz or bzip2)",
                       what ? ": this is " : "", what ? what : "");
    }
    if (archive_filter_count(j->raw) > 2)
        return err_set(j->e, -EBADMSG, "compressed more than once (a bundle "
                       "is a tar archive compressed at most once)");
    code = archive_filter_count(j->raw) == 2 ? archive_filter_code(j->raw, 0)
                                              : ARCHIVE_FILTER_NONE;
    snprintf(j->sum.filter, sizeof(j->sum.filter), "%s",
             code == ARCHIVE_FILTER_GZIP    ? "gzip"
             : code == ARCHIVE_FILTER_ZSTD  ? "zstd"
             : code == ARCHIVE_FILTER_XZ    ? "xz"
             : code == ARCHIVE_FILTER_BZIP2 ? "bzip2"
                                            : "none");
    return 0;
}

/* Once past 16 MiB, output may not outgrow input by more than the ratio:
 * a bomb is stopped while it inflates, not after. */
static int ratio_rule(struct job *j, const char *entry)
{
    uint64_t out = (uint64_t)archive_filter_bytes(j->a, 0);
    uint64_t in = j->src.read;
    char a[32], b[32];

    if (out <= RATIO_FLOOR || in > UINT64_MAX / BUNDLE_MAX_RATIO ||
        out <= in * BUNDLE_MAX_RATIO)
        return 0;
    return entry_fail(j->e, -EFBIG, entry, "compression ratio over %d:1 (%s "
                      "unpacked from %s): refusing a decompression bomb",
                      BUNDLE_MAX_RATIO, units_format_size(out, a, sizeof(a)),
                      units_format_size(in, b, sizeof(b)));
}

/* Converts libarchive's view of an entry into the rules' one. */
static int entry_from_archive(struct job *j, struct archive_entry *ae,
                              struct ent *en)
{
    const char *raw = archive_entry_pathname(ae);
    mode_t type = archive_entry_filetype(ae);

    if (raw == NULL)
        return err_set(j->e, -EBADMSG, "entry %llu has no readable name",
                       (unsigned long long)j->rules.entries + 1);
    en->raw = raw;
    en->size = archive_entry_size_is_set(ae) && archive_entry_size(ae) > 0
                   ? (uint64_t)archive_entry_size(ae)
                   : 0;
    en->mode = (archive_entry_perm(ae) & 0100) ? 0755 : 0644;
    if (archive_entry_hardlink(ae) != NULL) {
        if (archive_entry_symlink(ae) != NULL)
            return entry_fail(j->e, -EBADMSG, raw, "both a hard link and a "
                              "symlink");
        en->type = E_HARDLINK;
        en->link = archive_entry_hardlink(ae);
        return 0;
    }
    switch (type) {
    case AE_IFREG:
        en->type = E_FILE;
        return 0;
    case AE_IFDIR:
        en->type = E_DIR;
        en->mode = 0755;
        return 0;
    case AE_IFLNK:
        en->type = E_SYMLINK;
        if ((en->link = archive_entry_symlink(ae)) == NULL)
            return entry_fail(j->e, -EBADMSG, raw, "symlink without a "
                              "readable target");
        return 0;
    case AE_IFCHR:
        return entry_fail(j->e, -EBADMSG, raw, "character devices are not "
                          "allowed");
    case AE_IFBLK:
        return entry_fail(j->e, -EBADMSG, raw, "block devices are not "
                          "allowed");
    case AE_IFIFO:
        return entry_fail(j->e, -EBADMSG, raw, "fifos are not allowed");
    case AE_IFSOCK:
        return entry_fail(j->e, -EBADMSG, raw, "sockets are not allowed");
    default:
        return entry_fail(j->e, -EBADMSG, raw, "unknown entry type (mode "
                          "0%o)", (unsigned)archive_entry_mode(ae));
    }
}

/* Streams one file's data: into the file being extracted, into the
 * manifest buffer for job.conf, or nowhere when only checking. */
static int entry_data(struct job *j, const struct ent *en, int fd)
{
    const void *buf;
    size_t len;
    la_int64_t off;
    int r;

    for (;;) {
        r = archive_read_data_block(j->a, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            return ratio_rule(j, en->raw);
        if (r != ARCHIVE_OK)
            return archive_fail(j, en->raw);
        if (off < 0 || (uint64_t)off > en->size ||
            len > en->size - (uint64_t)off)
            return entry_fail(j->e, -EBADMSG, en->raw, "data past its "
                              "declared size");
        if ((r = ratio_rule(j, en->raw)) < 0)
            return r;
        if (en->is_conf)
            memcpy(j->conf + off, buf, len);
        if (fd >= 0 && len > 0 && (r = pwrite_all(fd, buf, len, off)) < 0)
            return entry_fail(j->e, r, en->raw, "write: %s", strerror(-r));
    }
}

static int conf_begin(struct job *j, const struct ent *en)
{
    if (en->size > MANIFEST_MAX_BYTES)
        return entry_fail(j->e, -EFBIG, en->raw, "larger than %d bytes",
                          MANIFEST_MAX_BYTES);
    if ((j->conf = calloc(1, en->size + 1)) == NULL)
        return err_set(j->e, -ENOMEM, "out of memory");
    return 0;
}

/* A manifest that does not parse is a bundle that breaks a rule; the
 * message already names job.conf:LINE and the field. */
static int manifest_rule(int r, struct err *e)
{
    if (r != -EINVAL)
        return r;
    if (e != NULL)
        e->code = -EBADMSG;
    return -EBADMSG;
}

static int conf_parse(struct job *j, size_t len)
{
    return manifest_rule(manifest_parse(j->conf, len, "job.conf", j->cf,
                                        &j->sum.spec, j->e),
                         j->e);
}

static int entry_write(struct job *j, struct ent *en,
                       struct archive_entry *ae)
{
    int fd = -1, r;

    if (j->out != NULL && (r = out_create(j->out, en, &fd)) < 0)
        return entry_fail(j->e, r, en->raw, "%s", strerror(-r));
    if (en->type == E_FILE) {
        if (en->is_conf && (r = conf_begin(j, en)) < 0)
            goto out;
        if ((r = entry_data(j, en, fd)) < 0)
            goto out;
        if (fd >= 0 && (r = out_finish_file(j->out, fd, en, ae)) < 0) {
            entry_fail(j->e, r, en->raw, "%s", strerror(-r));
            goto out;
        }
        if (en->is_conf && (r = conf_parse(j, en->size)) < 0)
            goto out;
    }
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    return r;
}

/* Damage between entries is reported after the last good one. */
static int header_fail(struct job *j)
{
    char esc[4 * NAME_SHOWN + 8];
    int r = archive_fail(j, NULL);

    if (r == -EBADMSG && j->last[0] != '\0' && !j->cut)
        err_prefix(j->e, "after entry '%s': ",
                   shown(j->last, esc, sizeof(esc)));
    return r;
}

/*
 * libarchive must have found this entry (or, with `entry` NULL, the end of
 * the archive) where the header walker did: at a chain of headers whose
 * types were checked.  Anywhere else, the archive reads differently to
 * different tar readers, and the type rule could not vouch for it.
 */
static int layout_rule(struct job *j, const char *entry)
{
    la_int64_t at = archive_read_header_position(j->a);
    char esc[4 * NAME_SHOWN + 8];
    uint64_t want;
    int r;

    if (tw_pop(&j->tw, &want) && at >= 0 &&
        (want & ~TW_END_MARK) == (uint64_t)at &&
        ((want & TW_END_MARK) != 0) == (entry == NULL))
        return 0;
    if (entry != NULL)
        return entry_fail(j->e, -EBADMSG, entry, "ambiguous tar archive: "
                          "tar readers disagree on where this entry's "
                          "header is (byte %lld)", (long long)at);
    r = err_set(j->e, -EBADMSG, "ambiguous tar archive: tar readers "
                "disagree on where it ends (byte %lld)", (long long)at);
    if (j->last[0] != '\0')
        err_prefix(j->e, "after entry '%s': ",
                   shown(j->last, esc, sizeof(esc)));
    return r;
}

static int read_entries(struct job *j)
{
    struct archive_entry *ae;
    int r;

    for (;;) {
        struct ent en = {0};

        r = archive_read_next_header(j->a, &ae);
        if (r == ARCHIVE_EOF) {
            if ((r = layout_rule(j, NULL)) < 0)
                return r;
            break;
        }
        /* A name libarchive could not convert to the locale's charset is
         * kept as raw bytes, which the rules judge themselves. */
        if (r == ARCHIVE_WARN && archive_error_string(j->a) != NULL &&
            strstr(archive_error_string(j->a), "can't be converted"))
            r = ARCHIVE_OK;
        if (r != ARCHIVE_OK)
            return header_fail(j);
        if ((r = layout_rule(j, archive_entry_pathname(ae) ?: "?")) < 0 ||
            (r = ratio_rule(j, archive_entry_pathname(ae) ?: "?")) < 0 ||
            (r = entry_from_archive(j, ae, &en)) < 0 ||
            (r = rules_entry(&j->rules, &en, j->e)) < 0 ||
            (r = entry_write(j, &en, ae)) < 0)
            return r;
        snprintf(j->last, sizeof(j->last), "%s", en.raw);
    }
    if (!j->rules.have_conf)
        return no_conf_fail(&j->rules, j->e);
    j->sum.entries = j->rules.entries;
    j->sum.unpacked_bytes = j->rules.unpacked;
    j->sum.bundle_bytes = j->src.read;
    return 0;
}

static void job_close(struct job *j)
{
    if (j->a != NULL)
        archive_read_free(j->a);
    if (j->raw != NULL)
        archive_read_free(j->raw);
    tw_free(&j->tw);
    if (j->src.fd >= 0)
        close(j->src.fd);
    free(j->src.buf);
    free(j->conf);
    tree_free(&j->rules.tree);
}

static int job_run(struct job *j, const char *path, const char *dest,
                   int (*make_dest)(struct job *, const char *))
{
    int r;

    if ((r = rules_init(&j->rules, j->cf, j->e)) < 0 ||
        (r = src_open(j, path)) < 0 ||
        (r = reader_open(j)) < 0 ||
        (make_dest != NULL && (r = make_dest(j, dest)) < 0))
        return r;
    return read_entries(j);
}

int bundle_check(const char *path, const struct config *cf,
                 struct bundle_summary *ret, struct err *e)
{
    struct job j = {.cf = cf, .e = e, .src = {.fd = -1}};
    int r = job_run(&j, path, NULL, NULL);

    if (r == 0) {
        *ret = j.sum;
        j.sum.spec = NULL;
    }
    job_spec_free(j.sum.spec);
    job_close(&j);
    return r;
}

static int dest_make(struct job *j, const char *dest)
{
    struct out *o = j->out;
    int r;

    if (mkdir(dest, 0700) < 0)
        return err_set(j->e, -errno, "%s: %s", dest,
                       errno == EEXIST ? "already exists" : strerror(errno));
    o->root = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (o->root < 0) {
        r = -errno;
        rmdir(dest);
        return err_set(j->e, r, "%s: %s", dest, strerror(-r));
    }
    if ((r = out_owner_mode(o, o->root, 0700)) < 0)
        return err_set(j->e, r, "%s: %s", dest, strerror(-r));
    return 0;
}

int bundle_extract(const char *path, const char *dest, const struct config *cf,
                   uid_t uid, gid_t gid, struct bundle_summary *ret,
                   struct err *e)
{
    struct out o = {.root = -1, .uid = uid, .gid = gid, .pfd = -1};
    struct job j = {.cf = cf, .e = e, .src = {.fd = -1}, .out = &o};
    int r = job_run(&j, path, dest, dest_make);

    out_forget_parent(&o);
    if (r == 0) {
        *ret = j.sum;
        j.sum.spec = NULL;
    } else if (o.root >= 0) {
        fsafe_remove_below(o.root);
        if (rmdir(dest) < 0 && e != NULL)
            err_prefix(e, "%s: left behind (%s) after: ", dest,
                       strerror(errno));
    }
    if (o.root >= 0)
        close(o.root);
    job_spec_free(j.sum.spec);
    job_close(&j);
    return r;
}

void bundle_summary_free(struct bundle_summary *s)
{
    if (s == NULL)
        return;
    job_spec_free(s->spec);
    s->spec = NULL;
}

/* ---- create ---------------------------------------------------------------- */

struct item {
    char *path;
    enum etype type;
    uint64_t size;
    mode_t mode;
    char *link;
};

struct pack {
    const struct config *cf;
    struct err *e;
    int root;
    struct item *v;
    size_t n, cap;
    uint64_t total;     /* bytes of regular files */
};

static void pack_free(struct pack *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].path);
        free(p->v[i].link);
    }
    free(p->v);
    if (p->root >= 0)
        close(p->root);
}

static int pack_add(struct pack *p, struct item *it)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        struct item *v = reallocarray(p->v, cap, sizeof(*v));
        if (v == NULL)
            return err_set(p->e, -ENOMEM, "out of memory");
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = *it;
    return 0;
}

static int pack_dir(struct pack *p, int dirfd, const char *prefix,
                    size_t depth);

/* One name found in the directory being packed, never followed. */
static int pack_name(struct pack *p, int dirfd, const char *prefix,
                     const char *name, size_t depth)
{
    char path[BUNDLE_MAX_PATH + 2], target[BUNDLE_MAX_PATH + 2];
    struct item it = {0};
    struct stat st;
    ssize_t n;
    int fd, r;

    if ((size_t)snprintf(path, sizeof(path), "%s%s%s", prefix,
                         prefix[0] ? "/" : "", name) > BUNDLE_MAX_PATH)
        return entry_fail(p->e, -EBADMSG, path, "longer than "
                          STR(BUNDLE_MAX_PATH) " bytes");
    if (p->n >= p->cf->limits.max_entries)
        return entry_fail(p->e, -EFBIG, path, "more than %llu entries "
                          "(limits.max_entries)",
                          (unsigned long long)p->cf->limits.max_entries);
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_fail(p->e, -errno, path, "%s", strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        it.type = E_DIR;
        it.mode = 0755;
    } else if (S_ISREG(st.st_mode)) {
        it.type = E_FILE;
        it.size = (uint64_t)st.st_size;
        it.mode = (st.st_mode & 0100) ? 0755 : 0644;
        p->total += it.size;
    } else if (S_ISLNK(st.st_mode)) {
        it.type = E_SYMLINK;
        it.mode = 0777;
        if ((n = readlinkat(dirfd, name, target, sizeof(target) - 1)) < 0)
            return entry_fail(p->e, -errno, path, "%s", strerror(errno));
        if ((size_t)n > BUNDLE_MAX_PATH)
            return entry_fail(p->e, -EBADMSG, path, "symlink target longer "
                              "than " STR(BUNDLE_MAX_PATH) " bytes");
        target[n] = '\0';
        if ((it.link = strdup(target)) == NULL)
            return err_set(p->e, -ENOMEM, "out of memory");
    } else {
        return entry_fail(p->e, -EBADMSG, path, "%s are not allowed in a "
                          "bundle",
                          S_ISCHR(st.st_mode)    ? "character devices"
                          : S_ISBLK(st.st_mode)  ? "block devices"
                          : S_ISFIFO(st.st_mode) ? "fifos"
                          : S_ISSOCK(st.st_mode) ? "sockets"
                                                 : "special files");
    }
    if ((it.path = strdup(path)) == NULL) {
        free(it.link);
        return err_set(p->e, -ENOMEM, "out of memory");
    }
    if ((r = pack_add(p, &it)) < 0) {
        free(it.path);
        free(it.link);
        return r;
    }
    if (it.type != E_DIR)
        return 0;
    if (depth + 1 >= BUNDLE_MAX_DEPTH)
        return entry_fail(p->e, -EBADMSG, path, "holds paths deeper than "
                          STR(BUNDLE_MAX_DEPTH) " components");
    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return entry_fail(p->e, -errno, path, "%s", strerror(errno));
    return pack_dir(p, fd, path, depth + 1);
}

/* Takes over `dirfd`. */
static int pack_dir(struct pack *p, int dirfd, const char *prefix,
                    size_t depth)
{
    struct dirent *de;
    DIR *d = fdopendir(dirfd);
    int r = 0;

    if (d == NULL) {
        r = -errno;
        close(dirfd);
        return err_set(p->e, r, "%s: %s", prefix[0] ? prefix : ".",
                       strerror(-r));
    }
    while (r == 0) {
        errno = 0;
        if ((de = readdir(d)) == NULL) {
            if (errno != 0)
                r = err_set(p->e, -errno, "%s: %s", prefix[0] ? prefix : ".",
                            strerror(errno));
            break;
        }
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            r = pack_name(p, dirfd, prefix, de->d_name, depth);
    }
    closedir(d);
    return r;
}

static int item_cmp(const void *a, const void *b)
{
    return strcmp(((const struct item *)a)->path,
                  ((const struct item *)b)->path);
}

/* The one subdirectory of the directory being packed that holds a
 * job.conf, written into `sub`; false when none or several do.  For the
 * hint when the directory itself has none: the tenant named the parent
 * of the job's directory. */
static bool pack_find_below(const struct pack *p, char *sub, size_t len)
{
    int fd = openat(p->root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *de;
    int found = 0;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    while ((de = readdir(d)) != NULL && found < 2) {
        char path[NAME_MAX + 16];
        struct stat st;

        if (de->d_name[0] == '.' &&
            (de->d_name[1] == '\0' ||
             (de->d_name[1] == '.' && de->d_name[2] == '\0')))
            continue;
        snprintf(path, sizeof path, "%s/job.conf", de->d_name);
        if (fstatat(p->root, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && found++ == 0)
            snprintf(sub, len, "%s", de->d_name);
    }
    closedir(d);
    return found == 1;
}

/* job.conf is checked before anything else, so that a bad manifest is
 * what the tenant hears about first. */
static int pack_manifest(struct pack *p)
{
    struct job_spec *spec = NULL;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    ssize_t n;
    int fd, r;

    fd = fsafe_open_beneath(p->root, "job.conf", O_RDONLY | O_NONBLOCK, 0);
    if (fd == -ELOOP)
        return err_set(p->e, -EBADMSG, "job.conf must be a regular file, "
                       "not a symlink");
    if (fd == -ENOENT) {
        char sub[NAME_MAX + 1], esc[3 * NAME_MAX + 8];

        if (pack_find_below(p, sub, sizeof sub))
            return err_set(p->e, -EBADMSG,
                           "no job.conf in the directory: found %s/job.conf: "
                           "create the bundle from that directory",
                           err_escape(sub, esc, sizeof esc));
        return err_set(p->e, -EBADMSG, "no job.conf in the directory");
    }
    if (fd < 0)
        return err_set(p->e, fd, "job.conf: %s", strerror(-fd));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(p->e, -EBADMSG, "job.conf must be a regular file");
    }
    if (st.st_size > MANIFEST_MAX_BYTES ||
        (buf = malloc(MANIFEST_MAX_BYTES + 1)) == NULL) {
        close(fd);
        return buf ? err_set(p->e, -EFBIG, "job.conf: larger than %d bytes",
                             MANIFEST_MAX_BYTES)
                   : err_set(p->e, -ENOMEM, "out of memory");
    }
    while (len <= MANIFEST_MAX_BYTES &&
           (n = read(fd, buf + len, MANIFEST_MAX_BYTES + 1 - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = err_set(p->e, -errno, "job.conf: %s", strerror(errno));
            goto out;
        }
        len += (size_t)n;
    }
    r = len > MANIFEST_MAX_BYTES
            ? err_set(p->e, -EFBIG, "job.conf: larger than %d bytes",
                      MANIFEST_MAX_BYTES)
            : manifest_rule(manifest_parse(buf, len, "job.conf", p->cf, &spec,
                                           p->e),
                            p->e);
out:
    job_spec_free(spec);
    free(buf);
    close(fd);
    return r;
}

/* What a reader would refuse is refused here too, in the order it would
 * see the entries. */
static int pack_rules(struct pack *p)
{
    struct rules r;
    int ret = rules_init(&r, p->cf, p->e);

    for (size_t i = 0; ret == 0 && i < p->n; i++) {
        struct ent en = {.raw = p->v[i].path, .type = p->v[i].type,
                         .size = p->v[i].size, .mode = p->v[i].mode,
                         .link = p->v[i].link};
        ret = rules_entry(&r, &en, p->e);
    }
    tree_free(&r.tree);
    return ret;
}

struct progress {
    void (*fn)(uint64_t done, uint64_t total, void *arg);
    void *arg;
    uint64_t done, total;
};

static int write_fail(struct archive *a, struct err *e, const char *what)
{
    int code = archive_errno(a) > 0 ? archive_errno(a) : EIO;

    return err_set(e, -code, "%s: %s", what,
                   archive_error_string(a) ? archive_error_string(a)
                                           : strerror(code));
}

static int pack_file(struct pack *p, struct archive *a, const struct item *it,
                     char *buf, struct progress *pr)
{
    uint64_t left = it->size;
    struct stat st;
    int fd = fsafe_open_beneath(p->root, it->path, O_RDONLY | O_NONBLOCK, 0);
    int r = 0;

    if (fd < 0)
        return entry_fail(p->e, fd, it->path, "%s", strerror(-fd));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size != it->size) {
        close(fd);
        return entry_fail(p->e, -EBADMSG, it->path, "changed while being "
                          "packed");
    }
    while (left > 0 && r == 0) {
        ssize_t n = read(fd, buf, left < IO_BLOCK ? (size_t)left : IO_BLOCK);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            r = n < 0 ? entry_fail(p->e, -errno, it->path, "%s",
                                   strerror(errno))
                      : entry_fail(p->e, -EBADMSG, it->path,
                                   "changed while being packed");
        else if (archive_write_data(a, buf, (size_t)n) != n)
            r = write_fail(a, p->e, it->path);
        else {
            left -= (uint64_t)n;
            pr->done += (uint64_t)n;
            if (pr->fn != NULL)
                pr->fn(pr->done, pr->total, pr->arg);
        }
    }
    close(fd);
    return r;
}

static int pack_entries(struct pack *p, struct archive *a,
                        struct progress *pr)
{
    struct archive_entry *ae = archive_entry_new();
    char *buf = malloc(IO_BLOCK);
    int r = 0;

    if (ae == NULL || buf == NULL)
        r = err_set(p->e, -ENOMEM, "out of memory");
    for (size_t i = 0; r == 0 && i < p->n; i++) {
        const struct item *it = &p->v[i];
        static const mode_t types[] = {[E_DIR] = AE_IFDIR,
                                       [E_FILE] = AE_IFREG,
                                       [E_SYMLINK] = AE_IFLNK,
                                       [E_HARDLINK] = AE_IFREG};

        /* Nothing that varies between machines or runs: no owner names,
         * ids 0, times 0. */
        archive_entry_clear(ae);
        archive_entry_set_pathname(ae, it->path);
        archive_entry_set_filetype(ae, types[it->type]);
        archive_entry_set_perm(ae, it->mode);
        archive_entry_set_size(ae, (la_int64_t)it->size);
        archive_entry_set_uid(ae, 0);
        archive_entry_set_gid(ae, 0);
        archive_entry_set_mtime(ae, 0, 0);
        if (it->link != NULL)
            archive_entry_set_symlink(ae, it->link);
        if (archive_write_header(a, ae) < ARCHIVE_WARN)
            r = write_fail(a, p->e, it->path);
        else if (it->type == E_FILE)
            r = pack_file(p, a, it, buf, pr);
    }
    archive_entry_free(ae);
    free(buf);
    return r;
}

static int pack_write(struct pack *p, int fd, struct progress *pr)
{
    struct archive *a = archive_write_new();
    int r;

    if (a == NULL)
        return err_set(p->e, -ENOMEM, "out of memory");
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(a, IO_BLOCK) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open_fd(a, fd) != ARCHIVE_OK) {
        r = write_fail(a, p->e, "zstd tar");
        archive_write_free(a);
        return r;
    }
    r = pack_entries(p, a, pr);
    if (archive_write_close(a) != ARCHIVE_OK && r == 0)
        r = write_fail(a, p->e, "writing");
    archive_write_free(a);
    return r;
}

/*
 * Names are written as UTF-8 (the rules have checked that they are) in
 * this thread's locale only, so that the caller's locale changes neither
 * the process nor the bytes of the bundle.  Without a C.UTF-8 locale,
 * libarchive writes non-ASCII names as raw bytes (hdrcharset=BINARY).
 */
static int pack_write_utf8(struct pack *p, int fd, struct progress *pr)
{
    locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    locale_t old = utf8 != (locale_t)0 ? uselocale(utf8) : (locale_t)0;
    int r = pack_write(p, fd, pr);

    if (utf8 != (locale_t)0) {
        uselocale(old);
        freelocale(utf8);
    }
    return r;
}

/* Creates a new file next to `out`, named `out`.tmp-<random>, that
 * nobody else has: a file of that name already there (someone else's, or a
 * symlink put there for us to write through) is never opened. */
static int pack_temp(const char *out, char *tmp, size_t len)
{
    for (int tries = 0; tries < 100; tries++) {
        unsigned char rnd[4];
        int fd;

        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
            return -errno;
        snprintf(tmp, len, "%s.tmp-%02x%02x%02x%02x", out, rnd[0], rnd[1],
                 rnd[2], rnd[3]);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  0644);
        if (fd >= 0 || errno != EEXIST)
            return fd >= 0 ? fd : -errno;
    }
    return -EEXIST;
}

static int pack_output(struct pack *p, const char *out, struct progress *pr)
{
    size_t len = strlen(out) + sizeof(".tmp-12345678");
    char *tmp = malloc(len);
    int fd, r;

    if (tmp == NULL)
        return err_set(p->e, -ENOMEM, "out of memory");
    if ((fd = pack_temp(out, tmp, len)) < 0) {
        r = err_set(p->e, fd, "%s: cannot create a temporary file next to "
                    "it: %s", out, strerror(-fd));
        free(tmp);
        return r;
    }
    r = pack_write_utf8(p, fd, pr);
    /* One fsync for the whole bundle, so that the rename publishes
     * complete data. */
    if (r == 0 && fsync(fd) < 0)
        r = err_set(p->e, -errno, "%s: %s", tmp, strerror(errno));
    if (close(fd) < 0 && r == 0)
        r = err_set(p->e, -errno, "%s: %s", tmp, strerror(errno));
    if (r == 0 && rename(tmp, out) < 0)
        r = err_set(p->e, -errno, "%s: %s", out, strerror(errno));
    if (r < 0)
        unlink(tmp);
    free(tmp);
    return r;
}

int bundle_create(const char *dir, const char *out, const struct config *cf,
                  void (*progress)(uint64_t done, uint64_t total, void *arg),
                  void *arg, struct err *e)
{
    struct pack p = {.cf = cf, .e = e};
    struct progress pr = {.fn = progress, .arg = arg};
    int fd, r;

    p.root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (p.root < 0)
        return err_set(e, -errno, "%s: %s", dir, strerror(errno));
    if ((r = pack_manifest(&p)) < 0)
        goto out;
    if ((fd = dup(p.root)) < 0) {
        r = err_set(e, -errno, "%s: %s", dir, strerror(errno));
        goto out;
    }
    if ((r = pack_dir(&p, fd, "", 0)) < 0)
        goto out;
    qsort(p.v, p.n, sizeof(*p.v), item_cmp);
    if ((r = pack_rules(&p)) < 0)
        goto out;
    pr.total = p.total;
    r = pack_output(&p, out, &pr);
out:
    pack_free(&p);
    return r;
}
