/*
 * storage/local - objects kept as files under a local directory.
 *
 * Layout under the configured root:
 *
 *   objects/<key>  one regular file per object; the components of the key
 *                  before the last are directories
 *   tmp/           files being written by put(), renamed into objects/
 *                  once complete and synced
 *
 * Every path is resolved one component at a time from directory fds opened
 * with O_NOFOLLOW, so neither a crafted key nor a symlink planted inside the
 * store can reach a file outside it.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <surplus/host.h>
#include <surplus/plugin.h>
#include <surplus/storage.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

/* Few system calls per gigabyte, and a footprint that does not depend on
 * the size of the object. */
#define COPY_BUFFER_SIZE (1024 * 1024)

#define TEMP_PREFIX "put-"
#define TEMP_NAME_MAX 32
#define TEMP_ATTEMPTS 16

/* Keys in messages are cut to this, escaped. */
#define KEY_DISPLAY_MAX 160

struct local {
    const struct surplus_host *host;
    struct surplus_ctx *ctx;
    const char *path;
    int root_fd;
    int objects_fd;
    int tmp_fd;
};

static void close_fd(int fd)
{
    if (fd >= 0)
        close(fd);
}

/*
 * Renders `key` for a message.  Invalid keys come from job definitions, so
 * they are escaped (\xHH for non-printable bytes) to keep them from forging
 * log lines, and cut when long.
 */
static const char *escape_key(const char *key, char *buf, size_t size)
{
    const unsigned char *p;
    size_t n = 0;

    if (!key)
        return "(null)";
    for (p = (const unsigned char *)key; *p; p++) {
        char e[5];
        size_t k;

        if (*p == '\\' || *p == '\'')
            k = (size_t)snprintf(e, sizeof e, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            k = (size_t)snprintf(e, sizeof e, "\\x%02x", *p);
        else {
            e[0] = (char)*p;
            k = 1;
        }
        /* Always keep room for "..." and the terminator. */
        if (n + k + 4 > size) {
            memcpy(buf + n, "...", 4);
            return buf;
        }
        memcpy(buf + n, e, k);
        n += k;
    }
    buf[n] = '\0';
    return buf;
}

static int key_error(struct local *l, int err, const char *key,
                     const char *fmt, ...) SURPLUS_PRINTF(4, 5);

/* host->error() with the key in front: "key 'a/b': ...". */
static int key_error(struct local *l, int err, const char *key,
                     const char *fmt, ...)
{
    char shown[KEY_DISPLAY_MAX], msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return l->host->error(l->ctx, err, "key '%s': %s",
                          escape_key(key, shown, sizeof shown), msg);
}

static int check_key(struct local *l, const char *key)
{
    if (surplus_key_valid(key))
        return 0;
    return key_error(l, -EINVAL, key, "not a valid storage key");
}

/* Returns the last component of `key`; *ret_parent_len is the length of
 * what precedes its slash (0 for a key of one component). */
static const char *key_basename(const char *key, size_t *ret_parent_len)
{
    const char *slash = strrchr(key, '/');

    *ret_parent_len = slash ? (size_t)(slash - key) : 0;
    return slash ? slash + 1 : key;
}

static int open_subdir_fd(int dfd, const char *name)
{
    return openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Opens `name` in `dfd` as a directory, never through a symlink,
 * creating it when asked to. */
static int open_subdir(int dfd, const char *name, bool create, int *ret_fd)
{
    int fd = open_subdir_fd(dfd, name);

    if (fd < 0 && errno == ENOENT && create) {
        if (mkdirat(dfd, name, 0700) == 0) {
            /* The new entry must be as durable as the object put into
             * it. */
            if (fsync(dfd) < 0)
                return -errno;
        } else if (errno != EEXIST) /* EEXIST: a concurrent put() */
            return -errno;
        fd = open_subdir_fd(dfd, name);
    }
    if (fd < 0)
        return -errno;
    *ret_fd = fd;
    return 0;
}

/*
 * put() opens (or creates) the directory of the object, then renames into
 * it; pruning after a remove() may find that directory empty in between
 * and delete it, and the rename would fail.  A lock on objects/ keeps them
 * apart, across instances and processes too: put() holds it shared from
 * opening the directory to the rename, pruning takes it exclusive or does
 * not prune.  Each holder locks its own open file description, since flock()
 * locks belong to those.
 */
static int lock_tree(struct local *l, int operation, int *ret_fd)
{
    int fd, r;

    fd = openat(l->objects_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    while (flock(fd, operation) < 0) {
        if (errno == EINTR)
            continue;
        r = -errno;
        close(fd);
        return r;
    }
    *ret_fd = fd;
    return 0;
}

/*
 * Opens the directory named by the first `len` bytes of `key` below
 * objects/ (objects/ itself when `len` is 0), one component at a time.
 * On failure *failed_len is the length of the prefix of `key` that could
 * not be opened or created, for the message.
 */
static int open_dir(struct local *l, const char *key, size_t len, bool create,
                    int *ret_fd, size_t *failed_len)
{
    const char *p = key, *end = key + len;
    int fd;

    /* A fresh open file description, not a dup: list() reads directories
     * through it, and a shared offset would mix concurrent walks. */
    fd = openat(l->objects_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        *failed_len = 0;
        return -errno;
    }
    while (p < end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *next = slash ? slash : end;
        char name[SURPLUS_KEY_COMPONENT_MAX + 1];
        int sub = -1, r;

        memcpy(name, p, (size_t)(next - p));
        name[next - p] = '\0';
        r = open_subdir(fd, name, create, &sub);
        close(fd);
        if (r < 0) {
            *failed_len = (size_t)(next - key);
            return r;
        }
        fd = sub;
        p = slash ? slash + 1 : end;
    }
    *ret_fd = fd;
    return 0;
}

/* Maps a failed lookup to -ENOENT when it only means that the object does
 * not exist: a missing component, or one that is not a directory (an
 * object, or a symlink, which is never followed). */
static int lookup_error(struct local *l, const char *key, int r,
                        const char *what)
{
    if (r == -ENOENT || r == -ENOTDIR || r == -ELOOP)
        return key_error(l, -ENOENT, key, "no such object");
    return key_error(l, r, key, "cannot open %s: %s", what, strerror(-r));
}

/* Opens the directory that holds (or would hold) the object. */
static int open_parent(struct local *l, const char *key, int *ret_fd,
                       const char **ret_name)
{
    size_t parent_len, failed_len;
    const char *name = key_basename(key, &parent_len);
    int r;

    r = open_dir(l, key, parent_len, false, ret_fd, &failed_len);
    if (r < 0)
        return lookup_error(l, key, r, "its directory");
    *ret_name = name;
    return 0;
}

/*
 * Opens the object for reading.  Only regular files are objects: a
 * directory, a symlink or anything else found in the tree reads as absent.
 * O_NONBLOCK keeps a planted FIFO from hanging the open; it has no effect
 * on reads from a regular file.
 */
static int open_object(struct local *l, const char *key, int *ret_fd)
{
    const char *name = NULL;
    struct stat st;
    int dfd = -1, fd, r;

    r = check_key(l, key);
    if (r < 0)
        return r;
    r = open_parent(l, key, &dfd, &name);
    if (r < 0)
        return r;
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    r = fd < 0 ? -errno : 0;
    close(dfd);
    if (r < 0)
        return lookup_error(l, key, r, "object");
    if (fstat(fd, &st) < 0) {
        r = -errno;
        close(fd);
        return key_error(l, r, key, "fstat: %s", strerror(-r));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return key_error(l, -ENOENT, key, "no such object");
    }
    *ret_fd = fd;
    return 0;
}

static int wait_fd(int fd, short events)
{
    struct pollfd p = { .fd = fd, .events = events };

    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

/* The descriptors handed to put() and get() belong to the caller and may
 * be non-blocking; both helpers below wait instead of failing. */
static ssize_t read_some(int fd, void *buf, size_t size)
{
    for (;;) {
        ssize_t n = read(fd, buf, size);
        int r;

        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        r = wait_fd(fd, POLLIN);
        if (r < 0)
            return r;
    }
}

static int write_all(int fd, const void *buf, size_t size)
{
    const char *p = buf;

    while (size > 0) {
        ssize_t n = write(fd, p, size);
        int r;

        if (n > 0) {
            p += n;
            size -= (size_t)n;
            continue;
        }
        /* No progress and no error: retrying would spin forever. */
        if (n == 0)
            return -EIO;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        r = wait_fd(fd, POLLOUT);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Copies `in` to `out` until end of file through one fixed buffer, so that
 * memory does not grow with the size of the object. */
static int copy_stream(struct local *l, const char *key, int in,
                       const char *in_name, int out, const char *out_name)
{
    char *buf;
    int r = 0;

    buf = malloc(COPY_BUFFER_SIZE);
    if (!buf)
        return key_error(l, -ENOMEM, key, "cannot allocate copy buffer");
    for (;;) {
        ssize_t n = read_some(in, buf, COPY_BUFFER_SIZE);

        if (n == 0)
            break;
        if (n < 0) {
            r = key_error(l, (int)n, key, "cannot read %s: %s", in_name,
                          strerror((int)-n));
            break;
        }
        r = write_all(out, buf, (size_t)n);
        if (r < 0) {
            r = key_error(l, r, key, "cannot write %s: %s", out_name,
                          strerror(-r));
            break;
        }
    }
    free(buf);
    return r;
}

/*
 * Writing to a pipe or socket whose reader has gone raises SIGPIPE, which
 * kills the whole process unless the core happens to ignore it.  get()
 * blocks it while writing and consumes the one it caused, so that the
 * caller sees -EPIPE instead.
 */
struct sigpipe_guard {
    sigset_t old_mask;
    bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
    sigset_t set, pending;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, &g->old_mask);
}

static void sigpipe_restore(struct sigpipe_guard *g, int r)
{
    if (r == -EPIPE && !g->was_pending) {
        struct timespec zero = { 0, 0 };
        sigset_t set;

        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old_mask, NULL);
}

static uint64_t temp_suffix(unsigned attempt)
{
    struct timespec ts;
    uint64_t v;

    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v)
        return v;
    /* No entropy yet (early boot).  O_EXCL guarantees uniqueness anyway;
     * this only has to make collisions rare. */
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)getpid() << 40) ^ ((uint64_t)ts.tv_sec << 20) ^
           (uint64_t)ts.tv_nsec ^ attempt;
}

/*
 * Creates a new file in tmp/ and locks it.  The lock, held until the file
 * is renamed into place, tells the tmp/ cleanup of an instance starting
 * meanwhile that the file is in use.  If that cleanup got to the file
 * between our open and our lock, it is unlinked (or about to be): take
 * another name.
 */
static int create_temp(struct local *l, const char *key, char *name,
                       int *ret_fd)
{
    unsigned attempt;

    for (attempt = 0; attempt < TEMP_ATTEMPTS; attempt++) {
        struct stat st;
        int fd;

        snprintf(name, TEMP_NAME_MAX, TEMP_PREFIX "%016" PRIx64,
                 temp_suffix(attempt));
        fd = openat(l->tmp_fd, name,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0600);
        if (fd < 0) {
            if (errno == EEXIST)
                continue;
            return key_error(l, -errno, key,
                             "cannot create temporary file 'tmp/%s': %s",
                             name, strerror(errno));
        }
        /* Locking is a courtesy to the cleanup: a file system without
         * flock() support only loses that courtesy. */
        if (flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
            close(fd);
            continue;
        }
        if (fstat(fd, &st) == 0 && st.st_nlink == 0) {
            close(fd);
            continue;
        }
        *ret_fd = fd;
        return 0;
    }
    return key_error(l, -EEXIST, key,
                     "cannot find a free temporary file name in tmp/");
}

/* Renames the temporary file to the object's name, creating the
 * directories on the way; returns that directory in *ret_dirfd. */
static int place(struct local *l, const char *key, const char *tmp,
                 int *ret_dirfd)
{
    size_t parent_len, failed_len;
    const char *name = key_basename(key, &parent_len);
    int dfd = -1, r;

    r = open_dir(l, key, parent_len, true, &dfd, &failed_len);
    if (r < 0)
        return key_error(l, r, key,
                         "cannot create directory 'objects/%.*s': %s",
                         (int)failed_len, key, strerror(-r));
    if (renameat(l->tmp_fd, tmp, dfd, name) < 0) {
        r = -errno;
        close(dfd);
        return key_error(l, r, key,
                         "cannot rename 'tmp/%s' to 'objects/%s': %s", tmp,
                         key, strerror(-r));
    }
    *ret_dirfd = dfd;
    return 0;
}

/* Moves the complete temporary file into place and syncs that directory:
 * the rename makes the replacement atomic for readers, the directory sync
 * makes it durable. */
static int install(struct local *l, const char *key, const char *tmp)
{
    int lock_fd = -1, dfd = -1, r;

    /* Without flock() support (some network file systems), go on
     * unlocked: pruning, which needs the lock, then never runs. */
    (void)lock_tree(l, LOCK_SH, &lock_fd);
    r = place(l, key, tmp, &dfd);
    close_fd(lock_fd);
    if (r < 0)
        return r;
    if (fsync(dfd) < 0)
        r = key_error(l, -errno, key, "cannot sync directory of '%s': %s",
                      key, strerror(errno));
    close(dfd);
    return r;
}

static int local_put(void *state, const char *key, int fd)
{
    struct local *l = state;
    char tmp[TEMP_NAME_MAX];
    int tmp_fd = -1, r;

    r = check_key(l, key);
    if (r < 0)
        return r;
    r = create_temp(l, key, tmp, &tmp_fd);
    if (r < 0)
        return r;
    r = copy_stream(l, key, fd, "input", tmp_fd, "temporary file");
    if (r >= 0 && fsync(tmp_fd) < 0)
        r = key_error(l, -errno, key, "cannot sync 'tmp/%s': %s", tmp,
                      strerror(errno));
    if (r >= 0)
        r = install(l, key, tmp);
    if (r < 0)
        unlinkat(l->tmp_fd, tmp, 0);
    /* Closed only now: closing drops the lock that protects the file from
     * a cleanup until it has left tmp/. */
    close(tmp_fd);
    return r;
}

static int local_get(void *state, const char *key, int fd)
{
    struct local *l = state;
    struct sigpipe_guard guard;
    int obj = -1, r;

    r = open_object(l, key, &obj);
    if (r < 0)
        return r;
    sigpipe_block(&guard);
    r = copy_stream(l, key, obj, "object", fd, "output");
    sigpipe_restore(&guard, r);
    close(obj);
    return r;
}

static void fill_info(const struct stat *st, struct surplus_object_info *ret)
{
    ret->size = (uint64_t)st->st_size;
    ret->mtime_us = (int64_t)st->st_mtim.tv_sec * 1000000 +
                    st->st_mtim.tv_nsec / 1000;
}

/* Looks the object up without opening it. */
static int stat_object(struct local *l, const char *key, int *ret_dirfd,
                       const char **ret_name, struct stat *ret_st)
{
    const char *name = NULL;
    struct stat st;
    int dfd = -1, r;

    r = check_key(l, key);
    if (r < 0)
        return r;
    r = open_parent(l, key, &dfd, &name);
    if (r < 0)
        return r;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        r = lookup_error(l, key, -errno, "object");
        close(dfd);
        return r;
    }
    if (!S_ISREG(st.st_mode)) {
        close(dfd);
        return key_error(l, -ENOENT, key, "no such object");
    }
    *ret_dirfd = dfd;
    *ret_name = name;
    *ret_st = st;
    return 0;
}

static int local_stat(void *state, const char *key,
                      struct surplus_object_info *ret)
{
    struct local *l = state;
    const char *name = NULL;
    struct stat st;
    int dfd = -1, r;

    r = stat_object(l, key, &dfd, &name, &st);
    if (r < 0)
        return r;
    close(dfd);
    fill_info(&st, ret);
    return 0;
}

/*
 * Removes the directories that the removal of `key` left empty, deepest
 * first, so that key prefixes used for a while (one per job, say) do not
 * pile up.  Best effort: a put() placing an object (see lock_tree()), or
 * the first directory that is not empty, ends it.  objects/ itself always
 * stays.
 */
static void prune_dirs(struct local *l, const char *key)
{
    int lock_fd = -1;
    size_t len;

    key_basename(key, &len);
    if (len == 0 || lock_tree(l, LOCK_EX | LOCK_NB, &lock_fd) < 0)
        return;
    while (len > 0) {
        char name[SURPLUS_KEY_COMPONENT_MAX + 1];
        size_t start = len, failed_len;
        int dfd = -1, r;

        while (start > 0 && key[start - 1] != '/')
            start--;
        memcpy(name, key + start, len - start);
        name[len - start] = '\0';
        len = start > 0 ? start - 1 : 0;
        if (open_dir(l, key, len, false, &dfd, &failed_len) < 0)
            break;
        r = unlinkat(dfd, name, AT_REMOVEDIR);
        close(dfd);
        if (r < 0)
            break;
    }
    close(lock_fd);
}

static int local_remove(void *state, const char *key)
{
    struct local *l = state;
    const char *name = NULL;
    struct stat st;
    int dfd = -1, r;

    r = stat_object(l, key, &dfd, &name, &st);
    if (r < 0)
        return r;
    if (unlinkat(dfd, name, 0) < 0)
        r = lookup_error(l, key, -errno, "object");
    close(dfd);
    if (r >= 0)
        prune_dirs(l, key);
    return r;
}

struct walk {
    struct local *l;
    const char *prefix;
    size_t prefix_len;
    surplus_object_fn fn;
    void *arg;
    char key[SURPLUS_KEY_MAX + 1];
};

/* Whether a key beginning with the `len` bytes in w->key may start with
 * the prefix: if not, a whole subtree is skipped. */
static bool walk_may_match(const struct walk *w, size_t len)
{
    size_t n = len < w->prefix_len ? len : w->prefix_len;

    return memcmp(w->key, w->prefix, n) == 0;
}

static int walk_dir(struct walk *w, int dfd, size_t len);

/* Visits the entry whose key, w->key, is `len` bytes long and whose last
 * `name_len` bytes name it in `dfd`. */
static int walk_entry(struct walk *w, int dfd, size_t len, size_t name_len)
{
    const char *name = w->key + len - name_len;
    struct surplus_object_info info;
    struct stat st;
    int fd;

    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        /* Removed while we walk. */
        if (errno == ENOENT)
            return 0;
        return key_error(w->l, -errno, w->key, "fstatat: %s",
                         strerror(errno));
    }
    if (S_ISREG(st.st_mode)) {
        if (len < w->prefix_len || !walk_may_match(w, len))
            return 0;
        fill_info(&st, &info);
        return w->fn(w->arg, w->key, &info);
    }
    /* A directory only holds objects if its keys can be one component
     * longer ("dir/x"). */
    if (!S_ISDIR(st.st_mode) || len + 2 > SURPLUS_KEY_MAX)
        return 0;
    w->key[len] = '/';
    w->key[len + 1] = '\0';
    if (!walk_may_match(w, len + 1))
        return 0;
    fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        /* Removed or replaced while we walk. */
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
            return 0;
        return key_error(w->l, -errno, w->key, "cannot open directory: %s",
                         strerror(errno));
    }
    return walk_dir(w, fd, len + 1);
}

/* Walks the directory `dfd` (taken over) whose keys begin with the `len`
 * bytes in w->key.  Depth is bounded by the key length limit. */
static int walk_dir(struct walk *w, int dfd, size_t len)
{
    DIR *d;
    int r = 0;

    d = fdopendir(dfd);
    if (!d) {
        r = -errno;
        close(dfd);
        return key_error(w->l, r, w->key, "fdopendir: %s", strerror(-r));
    }
    for (;;) {
        struct dirent *de;
        size_t n;

        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno != 0)
                r = key_error(w->l, -errno, w->key, "readdir: %s",
                              strerror(errno));
            break;
        }
        /* Skips ".", ".." and names that no key could produce. */
        if (!surplus_key_valid(de->d_name))
            continue;
        n = strlen(de->d_name);
        if (len + n > SURPLUS_KEY_MAX)
            continue;
        memcpy(w->key + len, de->d_name, n + 1);
        r = walk_entry(w, dirfd(d), len + n, n);
        if (r != 0)
            break;
    }
    closedir(d);
    return r;
}

static int local_list(void *state, const char *prefix, surplus_object_fn fn,
                      void *arg)
{
    struct local *l = state;
    struct walk *w;
    size_t failed_len;
    int fd = -1, r;

    if (!fn)
        return l->host->error(l->ctx, -EINVAL, "list: no callback");
    /* Too big for the stack of a caller's thread. */
    w = calloc(1, sizeof *w);
    if (!w)
        return l->host->error(l->ctx, -ENOMEM, "list: out of memory");
    w->l = l;
    w->prefix = prefix ? prefix : "";
    w->prefix_len = strlen(w->prefix);
    w->fn = fn;
    w->arg = arg;
    r = open_dir(l, "", 0, false, &fd, &failed_len);
    if (r < 0)
        r = l->host->error(l->ctx, r, "cannot open '%s/objects': %s",
                           l->path, strerror(-r));
    else
        r = walk_dir(w, fd, 0);
    free(w);
    return r;
}

/*
 * Files left in tmp/ by a put() that crashed.  A file still locked belongs
 * to a put() in progress in another instance sharing the store, and is
 * left alone.  Failing to remove one only wastes space, so it is logged,
 * not fatal.
 */
static void remove_stale(struct local *l, const char *name)
{
    struct stat st;
    int fd;

    fd = openat(l->tmp_fd, name,
                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        flock(fd, LOCK_EX | LOCK_NB) == 0 && unlinkat(l->tmp_fd, name, 0) < 0)
        l->host->log(l->ctx, SURPLUS_LOG_WARNING,
                     "cannot remove stale '%s/tmp/%s': %s", l->path, name,
                     strerror(errno));
    close(fd);
}

static int clean_tmp(struct local *l)
{
    DIR *d;
    int fd, r = 0;

    fd = openat(l->tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return l->host->error(l->ctx, -errno, "cannot open '%s/tmp': %s",
                              l->path, strerror(errno));
    d = fdopendir(fd);
    if (!d) {
        r = -errno;
        close(fd);
        return l->host->error(l->ctx, r, "fdopendir '%s/tmp': %s", l->path,
                              strerror(-r));
    }
    for (;;) {
        struct dirent *de;

        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno != 0)
                r = l->host->error(l->ctx, -errno, "readdir '%s/tmp': %s",
                                   l->path, strerror(errno));
            break;
        }
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            remove_stale(l, de->d_name);
    }
    closedir(d);
    return r;
}

/* mkdir() of one directory of the root's path.  mkdir() reports EACCES or
 * EROFS rather than EEXIST for some existing directories, hence the stat. */
static int make_dir(struct local *l, const char *path)
{
    struct stat st;
    int r;

    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    r = -errno;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    return l->host->error(l->ctx, r, "cannot create directory '%s': %s",
                          path, strerror(-r));
}

/* mkdir -p.  The root is chosen by the administrator, so unlike anything
 * below it, it may be reached through symlinks. */
static int make_root(struct local *l)
{
    char buf[PATH_MAX];
    size_t len = strlen(l->path), i;

    if (len >= sizeof buf)
        return l->host->error(l->ctx, -ENAMETOOLONG, "path '%s' is too long",
                              l->path);
    memcpy(buf, l->path, len + 1);
    for (i = 1; i <= len; i++) {
        int r;

        if ((buf[i] != '/' && buf[i] != '\0') || buf[i - 1] == '/')
            continue;
        buf[i] = '\0';
        r = make_dir(l, buf);
        buf[i] = l->path[i];
        if (r < 0)
            return r;
    }
    return 0;
}

/* Opens (creating it if needed) a directory of the root. */
static int open_area(struct local *l, const char *name, int *ret_fd)
{
    int fd;

    if (mkdirat(l->root_fd, name, 0700) == 0) {
        if (fsync(l->root_fd) < 0)
            return l->host->error(l->ctx, -errno, "cannot sync '%s': %s",
                                  l->path, strerror(errno));
    } else if (errno != EEXIST)
        return l->host->error(l->ctx, -errno,
                              "cannot create directory '%s/%s': %s", l->path,
                              name, strerror(errno));
    fd = openat(l->root_fd, name,
                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return l->host->error(l->ctx, -errno,
                              "cannot open directory '%s/%s': %s", l->path,
                              name, strerror(errno));
    *ret_fd = fd;
    return 0;
}

static int open_store(struct local *l)
{
    int r;

    r = make_root(l);
    if (r < 0)
        return r;
    l->root_fd = open(l->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (l->root_fd < 0)
        return l->host->error(l->ctx, -errno, "cannot open '%s': %s",
                              l->path, strerror(errno));
    r = open_area(l, "objects", &l->objects_fd);
    if (r < 0)
        return r;
    r = open_area(l, "tmp", &l->tmp_fd);
    if (r < 0)
        return r;
    return clean_tmp(l);
}

static void local_fini(void *state)
{
    struct local *l = state;

    if (!l)
        return;
    close_fd(l->tmp_fd);
    close_fd(l->objects_fd);
    close_fd(l->root_fd);
    free(l);
}

static int local_init(const struct surplus_host *host, struct surplus_ctx *ctx,
                      void **ret_state)
{
    struct local *l;
    const char *path;
    int r;

    r = host->config_string(ctx, "path", NULL, &path);
    if (r < 0)
        return r;
    if (!path || !*path)
        return host->error(ctx, -EINVAL, "path is required");

    l = calloc(1, sizeof *l);
    if (!l)
        return host->error(ctx, -ENOMEM, "out of memory");
    l->host = host;
    l->ctx = ctx;
    l->path = path;
    l->root_fd = l->objects_fd = l->tmp_fd = -1;

    r = open_store(l);
    if (r < 0) {
        local_fini(l);
        return r;
    }
    *ret_state = l;
    return 0;
}

static const struct surplus_storage_ops local_ops = {
    .put = local_put,
    .get = local_get,
    .stat = local_stat,
    .remove = local_remove,
    .list = local_list,
};

static const struct surplus_plugin local_plugin = {
    SURPLUS_PLUGIN_HEADER(SURPLUS_KIND_STORAGE),
    .name = "local",
    .version = PACKAGE_VERSION,
    .description = "objects as files in a local directory, put atomically "
                   "and durably",
    .init = local_init,
    .fini = local_fini,
    .ops = &local_ops,
};

SURPLUS_PLUGIN_EXPORT(local_plugin)
