/*
 * unpack - extracts one bundle with bundle_extract() and prints the wall
 * time in seconds; the timing half of tests/bench/unpack.sh.
 *   unpack CONFIG BUNDLE DEST
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bundle.h"
#include "config.h"

int main(int argc, char **argv)
{
    struct bundle_summary sum = {0};
    struct config *cf = NULL;
    struct err e = {0};
    struct timespec t0, t1;

    if (argc != 4) {
        fprintf(stderr, "usage: unpack CONFIG BUNDLE DEST\n");
        return 64;
    }
    if (config_load(argv[1], &cf, &e) < 0) {
        fprintf(stderr, "unpack: %s\n", e.msg);
        return 78;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (bundle_extract(argv[2], argv[3], cf, (uid_t)-1, (gid_t)-1, &sum,
                       &e) < 0) {
        fprintf(stderr, "unpack: %s: %s\n", argv[2], e.msg);
        config_free(cf);
        return 65;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.3f %llu %llu\n",
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
           (unsigned long long)sum.entries,
           (unsigned long long)sum.unpacked_bytes);
    bundle_summary_free(&sum);
    config_free(cf);
    return 0;
}
