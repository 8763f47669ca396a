/*
 * chunker.h - FastCDC content-defined chunking.
 *
 * A cut point depends only on the bytes just before it (a rolling gear hash),
 * so inserting or deleting bytes moves only the chunks around the change; all
 * later boundaries stay put and their chunks deduplicate. Normalised chunking
 * (a stricter mask before the average size, a looser one after) keeps chunk
 * sizes close to the average. The chunker is stateless and thread-safe.
 */
#ifndef DM_STORE_CHUNKER_H
#define DM_STORE_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

struct dm_err;

#define DM_CHUNK_MIN_DEFAULT (16u * 1024)
#define DM_CHUNK_AVG_DEFAULT (64u * 1024)
#define DM_CHUNK_MAX_DEFAULT (256u * 1024)
/* Bounds on the tunables; a chunk is never larger than DM_CHUNK_MAX_LIMIT. */
#define DM_CHUNK_MIN_LIMIT   64u
#define DM_CHUNK_MAX_LIMIT   (4u * 1024 * 1024)

struct dm_chunker_params {
	uint32_t min;
	uint32_t avg; /* a power of two */
	uint32_t max;
};

void dm_chunker_params_default(struct dm_chunker_params *out);
/* Checks DM_CHUNK_MIN_LIMIT <= min < avg < max <= DM_CHUNK_MAX_LIMIT and that
 * avg is a power of two; DM_EINVAL with a message otherwise. */
int dm_chunker_params_check(const struct dm_chunker_params *p, struct dm_err *err);

/*
 * Returns the length of the next chunk of data[0..len): at most p->max, and
 * len itself when len <= p->min. The caller passes at least p->max bytes
 * unless it is at the end of the input, so that the cut does not depend on
 * how the input was read.
 */
size_t dm_chunker_cut(const struct dm_chunker_params *p, const uint8_t *data, size_t len);

#endif
