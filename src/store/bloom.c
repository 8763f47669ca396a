/*
 * bloom.c - a Bloom filter of object ids (bloom.h).
 *
 * An id is a SHA-256, so its bytes are already uniform: the two hashes of
 * double hashing are two of its 64-bit words mixed with the seed, and probe
 * i sets bit h1 + i * h2 (h2 odd, so the probes differ). Invariant: nbits
 * is a power of two and bits holds nbits / 64 words.
 */
#include <stdlib.h>
#include <string.h>

#include "store/bloom.h"
#include "util/buf.h"

#include "util/banned.h"

#define MIN_BYTES   (64u * 1024)
#define BITS_PER_ID 10

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

void dm_bloom_init(struct dm_bloom *b, uint64_t n, size_t max_bytes, uint64_t seed)
{
	uint64_t want = n * BITS_PER_ID, nbits = MIN_BYTES * 8ull;

	if (max_bytes < MIN_BYTES)
		max_bytes = MIN_BYTES;
	while (nbits < want && nbits * 2 <= (uint64_t)max_bytes * 8)
		nbits *= 2;
	b->nbits = nbits;
	b->bits = dm_xcalloc(nbits / 64, sizeof(uint64_t));
	b->seed = seed;
	b->k = 7;
}

void dm_bloom_release(struct dm_bloom *b)
{
	free(b->bits);
	memset(b, 0, sizeof(*b));
}

static void hashes(const struct dm_bloom *b, const dm_oid *id, uint64_t *h1, uint64_t *h2)
{
	uint64_t w[2];

	memcpy(w, id->b, sizeof(w));
	*h1 = mix(w[0] ^ b->seed);
	*h2 = mix(w[1] + b->seed) | 1;
}

void dm_bloom_add(struct dm_bloom *b, const dm_oid *id)
{
	uint64_t h1, h2;

	hashes(b, id, &h1, &h2);
	for (unsigned i = 0; i < b->k; i++) {
		uint64_t bit = (h1 + i * h2) & (b->nbits - 1);

		b->bits[bit / 64] |= 1ull << (bit % 64);
	}
}

bool dm_bloom_has(const struct dm_bloom *b, const dm_oid *id)
{
	uint64_t h1, h2;

	hashes(b, id, &h1, &h2);
	for (unsigned i = 0; i < b->k; i++) {
		uint64_t bit = (h1 + i * h2) & (b->nbits - 1);

		if (!(b->bits[bit / 64] & (1ull << (bit % 64))))
			return false;
	}
	return true;
}

size_t dm_bloom_bytes(const struct dm_bloom *b)
{
	return (size_t)(b->nbits / 8);
}
