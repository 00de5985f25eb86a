/*
 * test_sha256.c - SHA-256 against the FIPS 180-4 examples, and the
 * incremental interface against the one-shot one however the data is cut.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "tap.h"

static void vector(const char *msg, const char *want)
{
    char got[65];

    sha256_hex(msg, strlen(msg), got);
    tap_is_str(got, want,
               msg[0] ? "a FIPS 180-4 example" : "the empty string");
}

int main(void)
{
    static const char abc56[] =
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    unsigned char data[300];
    char one[65], got[65];
    struct sha256_ctx c;
    int bad = 0;

    vector("", "e3b0c44298fc1c149afbf4c8996fb924"
               "27ae41e4649b934ca495991b7852b855");
    vector("abc", "ba7816bf8f01cfea414140de5dae2223"
                  "b00361a396177a9cb410ff61f20015ad");
    vector(abc56, "248d6a61d20638b8e5c026930c3e6039"
                  "a33ce45964ff2167f6ecedd419db06c1");

    /* A million 'a's, fed 1000 at a time. */
    memset(data, 'a', sizeof data);
    sha256_init(&c);
    for (int i = 0; i < 1000; i++) {
        sha256_update(&c, data, 250);
        sha256_update(&c, data, 7);
        sha256_update(&c, data, 243);
        sha256_update(&c, data, 300);
        sha256_update(&c, data, 200);
    }
    sha256_final_hex(&c, got);
    tap_is_str(got, "cdc76e5c9914fb9281a1c7e284d73e67"
                    "f1809a48a497200e046d39ccc7112cd0",
               "a million 'a's, in pieces");

    /* Every length up to 300 (one, two and three blocks, the padding's
     * edges), cut in two at every point and in bytes. */
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof data; len++) {
        sha256_hex(data, len, one);
        for (size_t cut = 0; cut <= len; cut++) {
            sha256_init(&c);
            sha256_update(&c, data, cut);
            sha256_update(&c, data + cut, len - cut);
            sha256_final_hex(&c, got);
            bad += strcmp(got, one) != 0;
        }
        sha256_init(&c);
        for (size_t i = 0; i < len; i++)
            sha256_update(&c, data + i, 1);
        sha256_final_hex(&c, got);
        bad += strcmp(got, one) != 0;
    }
    tap_is_int(bad, 0, "pieces of any size give the digest of the whole");
    return tap_done();
}
