/*
 * codec.c - varints, byte strings and ids for dm's binary encodings.
 *
 * Invariants: a reader never reads outside [p, p + left); once failed it
 * stays failed; a varint is at most 10 bytes and its canonical (shortest)
 * form is the only one accepted, so every object has exactly one encoding
 * and thus one id.
 */
#include "store/codec.h"
#include "util/err.h"

#include <string.h>

#include "util/banned.h"

void dm_reader_init(struct dm_reader *r, const void *data, size_t len)
{
	r->p = data;
	r->left = len;
	r->failed = false;
}

static int fail(struct dm_reader *r)
{
	r->failed = true;
	r->left = 0;
	return DM_ECORRUPT;
}

int dm_read_u8(struct dm_reader *r, uint8_t *out)
{
	if (r->failed || r->left < 1)
		return fail(r);
	*out = *r->p++;
	r->left--;
	return 0;
}

int dm_read_uvarint(struct dm_reader *r, uint64_t *out)
{
	uint64_t v = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		uint8_t byte;

		if (dm_read_u8(r, &byte))
			return DM_ECORRUPT;
		if (shift == 63 && byte > 1)
			return fail(r);
		v |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80)) {
			/* a trailing zero byte means a longer form than needed */
			if (byte == 0 && shift > 0)
				return fail(r);
			*out = v;
			return 0;
		}
	}
	return fail(r);
}

int dm_read_svarint(struct dm_reader *r, int64_t *out)
{
	uint64_t u;

	if (dm_read_uvarint(r, &u))
		return DM_ECORRUPT;
	*out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
	return 0;
}

int dm_read_raw(struct dm_reader *r, void *out, size_t len)
{
	if (r->failed || r->left < len)
		return fail(r);
	memcpy(out, r->p, len);
	r->p += len;
	r->left -= len;
	return 0;
}

int dm_read_bytes(struct dm_reader *r, const unsigned char **out, size_t *len, size_t max)
{
	uint64_t n;

	if (dm_read_uvarint(r, &n))
		return DM_ECORRUPT;
	if (n > max || n > r->left)
		return fail(r);
	*out = r->p;
	*len = (size_t)n;
	r->p += n;
	r->left -= (size_t)n;
	return 0;
}

int dm_read_oid(struct dm_reader *r, dm_oid *out)
{
	return dm_read_raw(r, out->b, DM_OID_RAWSZ);
}

int dm_write_u8(struct dm_buf *b, uint8_t v)
{
	return dm_buf_addc(b, v);
}

int dm_write_uvarint(struct dm_buf *b, uint64_t v)
{
	unsigned char tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	return dm_buf_add(b, tmp, n);
}

int dm_write_svarint(struct dm_buf *b, int64_t v)
{
	return dm_write_uvarint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

int dm_write_bytes(struct dm_buf *b, const void *data, size_t len)
{
	int rc = dm_write_uvarint(b, len);

	return rc ? rc : dm_buf_add(b, data, len);
}

int dm_write_oid(struct dm_buf *b, const dm_oid *id)
{
	return dm_buf_add(b, id->b, DM_OID_RAWSZ);
}
