/*
 * hash.h - SHA-256 object ids (OpenSSL's EVP, which uses the CPU's SHA
 * instructions where it has them) and their hex form.
 *
 * An object id is the SHA-256 of the object's exact stored bytes.
 */
#ifndef DM_UTIL_HASH_H
#define DM_UTIL_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DM_OID_RAWSZ 32
#define DM_OID_HEXSZ 64

typedef struct dm_oid {
	unsigned char b[DM_OID_RAWSZ];
} dm_oid;

/* Streaming hash; one per thread (not shareable). */
struct dm_hasher;

struct dm_hasher *dm_hasher_new(void);
void dm_hasher_free(struct dm_hasher *h);
void dm_hasher_reset(struct dm_hasher *h);
void dm_hasher_update(struct dm_hasher *h, const void *data, size_t len);
void dm_hasher_final(struct dm_hasher *h, dm_oid *out);

/* One-shot hash of a buffer. */
void dm_hash(dm_oid *out, const void *data, size_t len);

/* Writes 64 lowercase hex digits and a NUL into out (DM_OID_HEXSZ + 1). */
void dm_oid_hex(char *out, const dm_oid *id);
/* The value of one hex digit (either case), or -1. */
int dm_hex_digit(char c);
/* Parses exactly 64 hex digits; -1 on anything else. */
int dm_oid_from_hex(dm_oid *out, const char *hex, size_t len);
int dm_oid_cmp(const dm_oid *a, const dm_oid *b);
bool dm_oid_is_zero(const dm_oid *id);

#endif
