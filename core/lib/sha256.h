/*
 * sha256.h - SHA-256 (FIPS 180-4), for checking tenants' bearer tokens
 * against token_sha256 and fingerprinting uploads without a crypto
 * library.
 */
#ifndef SURPLUS_SHA256_H
#define SURPLUS_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* Incremental: init, update with the data in as many pieces as it comes,
 * final.  The digest is that of the pieces joined. */
struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;           /* bytes so far */
    uint8_t buf[64];        /* the last block, while incomplete */
};

void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
void sha256_final(struct sha256_ctx *c, uint8_t out[32]);
/* final, as 64 lower-case hex digits and a NUL. */
void sha256_final_hex(struct sha256_ctx *c, char out[65]);

void sha256(const void *data, size_t len, uint8_t out[32]);
/* Lower-case hex of the digest: 64 digits and a NUL. */
void sha256_hex(const void *data, size_t len, char out[65]);
/* Compares two equal-length strings in time independent of where they
 * differ. */
int const_time_eq(const char *a, const char *b, size_t len);

#endif
