/*
 * extract-test CONFIG BUNDLE DEST [UID GID]
 *
 * Runs bundle_extract for tests/bundle-hostile.sh, which has no CLI verb to
 * call: exits 0 when extracted, 65 when the bundle is refused (-EBADMSG or
 * -EFBIG), 70 on any other failure, with the message on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "bundle.h"
#include "config.h"

int main(int argc, char **argv)
{
    struct bundle_summary s = {0};
    struct config *cf = NULL;
    struct err e = {0};
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    int r;

    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: extract-test CONFIG BUNDLE DEST [UID GID]\n");
        return 64;
    }
    if (argc == 6) {
        uid = (uid_t)strtoul(argv[4], NULL, 10);
        gid = (gid_t)strtoul(argv[5], NULL, 10);
    }
    if (config_load(argv[1], &cf, &e) < 0) {
        fprintf(stderr, "extract-test: %s\n", e.msg);
        return 78;
    }
    r = bundle_extract(argv[2], argv[3], cf, uid, gid, &s, &e);
    config_free(cf);
    if (r < 0) {
        fprintf(stderr, "extract-test: %s\n", e.msg);
        return r == -EBADMSG || r == -EFBIG ? 65 : 70;
    }
    printf("%llu entries, %llu bytes unpacked, %s\n",
           (unsigned long long)s.entries,
           (unsigned long long)s.unpacked_bytes, s.filter);
    bundle_summary_free(&s);
    return 0;
}
