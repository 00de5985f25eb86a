/*
 * libFuzzer target: bundle extraction, after libarchive's write-disk
 * fuzzer.  Every input is extracted into a fresh directory beside a
 * sentinel directory; the sentinel must never change, a refused bundle
 * must leave nothing behind, and an accepted one must hold only regular
 * files, directories and symlinks (which may point anywhere: extraction
 * never follows one, and the sentinel shows whether it did).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config *cf;
static char root[PATH_MAX], sentinel[PATH_MAX + 16], dest[PATH_MAX + 16];
static struct stat sentinel_st, sentinel_file_st;

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path);
    return unlink(path);
}

/* Everything inside `dest` must be a plain file, dir or link. */
static int check_entry(const char *path, const struct stat *st, int flag,
                       struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_SL || flag == FTW_SLN)
        return 0;
    if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
        abort();
    if (st->st_mode & (S_ISUID | S_ISGID | S_ISVTX))
        abort();
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char conf[PATH_MAX + 16], file[PATH_MAX + 32];
    struct err e = {0};
    FILE *f;

    (void)argc;
    (void)argv;
    snprintf(root, sizeof(root), "/tmp/surplus-fuzz.XXXXXX");
    if (mkdtemp(root) == NULL)
        abort();
    snprintf(sentinel, sizeof(sentinel), "%s/sentinel", root);
    snprintf(dest, sizeof(dest), "%s/job", root);
    snprintf(file, sizeof(file), "%s/keep", sentinel);
    snprintf(conf, sizeof(conf), "%s/surplus.conf", root);
    if (mkdir(sentinel, 0700) < 0 || (f = fopen(file, "w")) == NULL)
        abort();
    fputs("sentinel\n", f);
    fclose(f);
    if ((f = fopen(conf, "w")) == NULL)
        abort();
    fputs("limits = { max_bundle_bytes = \"4M\"; max_unpacked_bytes = "
          "\"16M\"; max_entries = 200; };\n", f);
    fclose(f);
    if (config_load(conf, &cf, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        abort();
    }
    if (stat(sentinel, &sentinel_st) < 0 || stat(file, &sentinel_file_st) < 0)
        abort();
    return 0;
}

static void check_sentinel(void)
{
    char file[PATH_MAX + 32];
    struct stat a, b;
    DIR *d;
    struct dirent *de;
    int n = 0;

    snprintf(file, sizeof(file), "%s/keep", sentinel);
    if (lstat(sentinel, &a) < 0 || lstat(file, &b) < 0 ||
        a.st_mtim.tv_sec != sentinel_st.st_mtim.tv_sec ||
        a.st_mtim.tv_nsec != sentinel_st.st_mtim.tv_nsec ||
        b.st_size != sentinel_file_st.st_size ||
        b.st_mtim.tv_nsec != sentinel_file_st.st_mtim.tv_nsec ||
        !S_ISDIR(a.st_mode) || !S_ISREG(b.st_mode))
        abort();
    if ((d = opendir(root)) == NULL)
        abort();
    while ((de = readdir(d)) != NULL)
        n++;
    closedir(d);
    /* ., .., sentinel, surplus.conf, and job only while it exists */
    if (n > 5)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bundle_summary sum = {0};
    struct err e = {0};
    char path[64];
    struct stat st;
    int fd = memfd_create("bundle", MFD_CLOEXEC), r;

    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    r = bundle_extract(path, dest, cf, (uid_t)-1, (gid_t)-1, &sum, &e);
    close(fd);
    check_sentinel();
    if (r < 0) {
        if (lstat(dest, &st) == 0 || e.msg[0] == '\0')
            abort(); /* a refusal leaves nothing and says why */
    } else {
        nftw(dest, check_entry, 16, FTW_PHYS);
        nftw(dest, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        bundle_summary_free(&sum);
    }
    return 0;
}
