/*
 * bloom.h - a Bloom filter of object ids: the collector's mark set for
 * chunks, of a size fixed before the walk (gc.md, "Memory").
 *
 * It may answer "present" for an id never added (a false positive, at the
 * rate its size gives), never "absent" for one that was. Each filter has
 * its own seed, so two collections do not keep the same false positives.
 * Not thread-safe: the owner serialises access.
 */
#ifndef DM_STORE_BLOOM_H
#define DM_STORE_BLOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/hash.h"

struct dm_bloom {
	uint64_t *bits;
	uint64_t nbits; /* a power of two */
	uint64_t seed;
	unsigned k; /* probes per id */
};

/* Sizes b for n ids at about 10 bits each (a 1% false-positive rate), at
 * least 64 KiB and at most max_bytes (then the rate rises). */
void dm_bloom_init(struct dm_bloom *b, uint64_t n, size_t max_bytes, uint64_t seed);
void dm_bloom_release(struct dm_bloom *b);
void dm_bloom_add(struct dm_bloom *b, const dm_oid *id);
bool dm_bloom_has(const struct dm_bloom *b, const dm_oid *id);
/* Its memory, in bytes. */
size_t dm_bloom_bytes(const struct dm_bloom *b);

#endif
