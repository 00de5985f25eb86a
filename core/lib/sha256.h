/*
 * sha256.h - SHA-256 (FIPS 180-4), for checking tenants' bearer tokens
 * against token_sha256 without a crypto library.
 */
#ifndef SURPLUS_SHA256_H
#define SURPLUS_SHA256_H

#include <stddef.h>
#include <stdint.h>

void sha256(const void *data, size_t len, uint8_t out[32]);
/* Lower-case hex of the digest: 64 digits and a NUL. */
void sha256_hex(const void *data, size_t len, char out[65]);
/* Compares two equal-length strings in time independent of where they
 * differ. */
int const_time_eq(const char *a, const char *b, size_t len);

#endif
