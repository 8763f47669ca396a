/*
 * codec.h - the primitives of dm's binary object encoding: LEB128 varints,
 * zigzag signed varints, length-prefixed byte strings and raw object ids.
 *
 * A reader never reads past its end and never trusts a length: every
 * length is checked against what remains and against the caller's limit
 * before it is used. After the first failure a reader stays failed and every
 * later read returns an error, so decoders may check once at the end.
 */
#ifndef DM_STORE_CODEC_H
#define DM_STORE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/hash.h"

struct dm_reader {
	const unsigned char *p;
	size_t left;
	bool failed;
};

void dm_reader_init(struct dm_reader *r, const void *data, size_t len);
int dm_read_u8(struct dm_reader *r, uint8_t *out);
int dm_read_uvarint(struct dm_reader *r, uint64_t *out);
int dm_read_svarint(struct dm_reader *r, int64_t *out);
/* A length-prefixed string of at most max bytes; *out points into the input
 * (borrowed for as long as the input lives) and is NOT NUL-terminated. */
int dm_read_bytes(struct dm_reader *r, const unsigned char **out, size_t *len, size_t max);
int dm_read_oid(struct dm_reader *r, dm_oid *out);
int dm_read_raw(struct dm_reader *r, void *out, size_t len);

int dm_write_u8(struct dm_buf *b, uint8_t v);
int dm_write_uvarint(struct dm_buf *b, uint64_t v);
int dm_write_svarint(struct dm_buf *b, int64_t v);
int dm_write_bytes(struct dm_buf *b, const void *data, size_t len);
int dm_write_oid(struct dm_buf *b, const dm_oid *id);

#endif
