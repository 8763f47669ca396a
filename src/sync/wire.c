/*
 * wire.c - record streams and id lists (see wire.h).
 *
 * Invariants of the parser (an error record always fails the parser, so
 * nothing after it is ever read):
 *   - hdr_len < DM_PACK_REC_LEN while !in_body; once in_body, rec is a
 *     header that passed dm_pack_rec_decode (or is a bounded error
 *     record), so body never grows past rec.stored_len, itself bounded.
 *   - A record whose bytes arrive in one piece is handed to the callback
 *     straight from the input; only a record split across feeds is copied
 *     into body.
 *   - After failed is set, nothing more is parsed.
 */
#include "sync/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

#include "util/banned.h"

_Static_assert(sizeof(dm_oid) == DM_OID_RAWSZ, "dm_oid must be 32 bytes with no padding");

void dm_wire_parser_init(struct dm_wire_parser *p)
{
	memset(p, 0, sizeof(*p));
	dm_buf_init(&p->body, 0);
}

void dm_wire_parser_release(struct dm_wire_parser *p)
{
	dm_buf_release(&p->body);
}

/* The error an error record carries: "JSON_NAME text". */
static int error_record(const unsigned char *msg, size_t len, struct dm_err *err)
{
	char text[DM_WIRE_ERROR_MAX + 1], name[32];
	const char *sp;
	int code;

	memcpy(text, msg, len);
	text[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] < 0x20)
			text[i] = ' '; /* one line, and no NUL inside */
	sp = strchr(text, ' ');
	if (sp && (size_t)(sp - text) < sizeof(name)) {
		memcpy(name, text, (size_t)(sp - text));
		name[sp - text] = '\0';
		code = dm_err_from_json_name(name);
		if (!strcmp(dm_err_json_name(code), name) && code != DM_OK)
			return dm_err_set(err, code, "%s", sp + 1);
	}
	return dm_err_set(err, DM_EPROTO, "the other side failed: %s", text);
}

/* Parses a complete header into p->rec. */
static int take_header(struct dm_wire_parser *p, struct dm_err *err)
{
	const unsigned char *h = p->hdr;

	if (h[0] == DM_WIRE_KIND_ERROR) {
		memset(&p->rec, 0, sizeof(p->rec));
		p->rec.raw_len = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 |
				 (uint32_t)h[7] << 24;
		p->rec.stored_len = (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 |
				    (uint32_t)h[11] << 24;
		if (h[1] || h[2] || h[3] || p->rec.raw_len != p->rec.stored_len ||
		    p->rec.stored_len > DM_WIRE_ERROR_MAX)
			return dm_err_set(err, DM_ECORRUPT,
					  "corrupt pack record: bad error record");
		return 0;
	}
	return dm_pack_rec_decode(&p->rec, h, err);
}

/* A whole record is here: hand it on (or end the stream for an error). */
static int deliver(struct dm_wire_parser *p, const unsigned char *bytes, dm_wire_rec_fn fn,
		   void *ctx, struct dm_err *err)
{
	p->in_body = false;
	p->hdr_len = 0;
	if (p->rec.kind == DM_WIRE_KIND_ERROR)
		return error_record(bytes, p->rec.stored_len, err);
	p->records++;
	return fn ? fn(ctx, &p->rec, bytes, err) : 0;
}

int dm_wire_parser_feed(struct dm_wire_parser *p, const void *data, size_t len, dm_wire_rec_fn fn,
			void *ctx, struct dm_err *err)
{
	const unsigned char *in = data;
	int rc = 0;

	if (p->failed)
		return dm_err_set(err, p->failed, "record stream already failed");
	p->bytes += len;
	while (len) {
		if (!p->in_body) {
			size_t take = DM_PACK_REC_LEN - p->hdr_len;

			if (take > len)
				take = len;
			memcpy(p->hdr + p->hdr_len, in, take);
			p->hdr_len += take;
			in += take;
			len -= take;
			if (p->hdr_len < DM_PACK_REC_LEN)
				break;
			rc = take_header(p, err);
			if (rc)
				goto done;
			p->in_body = true;
			dm_buf_reset(&p->body);
		}
		if (p->body.len == 0 && len >= p->rec.stored_len) {
			/* the whole body is in this piece: no copy */
			size_t n = p->rec.stored_len;

			rc = deliver(p, in, fn, ctx, err);
			in += n;
			len -= n;
			if (rc)
				goto done;
			continue;
		}
		{
			size_t need = p->rec.stored_len - p->body.len;
			size_t take = need < len ? need : len;

			if (dm_buf_add(&p->body, in, take)) {
				rc = dm_err_set(err, DM_ENOMEM, "out of memory reading a record");
				goto done;
			}
			in += take;
			len -= take;
			if (p->body.len == p->rec.stored_len) {
				rc = deliver(p, p->body.data, fn, ctx, err);
				dm_buf_reset(&p->body);
				if (rc)
					goto done;
			}
		}
	}
done:
	if (rc)
		p->failed = rc;
	return rc;
}

int dm_wire_parser_finish(struct dm_wire_parser *p, struct dm_err *err)
{
	if (p->failed)
		return dm_err_set(err, p->failed, "record stream already failed");
	if (p->hdr_len || p->in_body) {
		p->failed = DM_EPROTO;
		return dm_err_set(err, DM_EPROTO,
				  "record stream ends in the middle of a record (after %llu "
				  "records)",
				  (unsigned long long)p->records);
	}
	return 0;
}

int dm_wire_rec_add(struct dm_buf *out, const struct dm_pack_rec *rec, const void *bytes)
{
	unsigned char hdr[DM_PACK_REC_LEN];
	int rc;

	dm_pack_rec_encode(hdr, rec);
	rc = dm_buf_grow(out, sizeof(hdr) + rec->stored_len);
	if (rc)
		return rc;
	memcpy(out->data + out->len, hdr, sizeof(hdr));
	if (rec->stored_len)
		memcpy(out->data + out->len + sizeof(hdr), bytes, rec->stored_len);
	out->len += sizeof(hdr) + rec->stored_len;
	out->data[out->len] = '\0';
	return 0;
}

int dm_wire_error_add(struct dm_buf *out, int code, const char *message)
{
	char text[DM_WIRE_ERROR_MAX + 1];
	struct dm_pack_rec rec;
	unsigned char hdr[DM_PACK_REC_LEN];
	int n = snprintf(text, sizeof(text), "%s %s", dm_err_json_name(code), message);
	size_t len = n < 0 ? 0 : (size_t)n >= sizeof(text) ? sizeof(text) - 1 : (size_t)n;
	int rc;

	memset(&rec, 0, sizeof(rec));
	rec.raw_len = rec.stored_len = (uint32_t)len;
	dm_pack_rec_encode(hdr, &rec);
	hdr[0] = DM_WIRE_KIND_ERROR;
	rc = dm_buf_add(out, hdr, sizeof(hdr));
	return rc ? rc : dm_buf_add(out, text, len);
}

int dm_wire_ids_check(size_t len, size_t *n, struct dm_err *err)
{
	if (len % DM_OID_RAWSZ)
		return dm_err_set(err, DM_EPROTO, "an id list of %zu bytes is not a multiple of %d",
				  len, DM_OID_RAWSZ);
	if (len / DM_OID_RAWSZ > DM_WIRE_MAX_IDS)
		return dm_err_set(err, DM_ETOOBIG, "an id list of %zu ids is longer than %u",
				  len / DM_OID_RAWSZ, DM_WIRE_MAX_IDS);
	*n = len / DM_OID_RAWSZ;
	return 0;
}

const dm_oid *dm_wire_ids(const void *data)
{
	return data;
}

int dm_wire_ids_add(struct dm_buf *out, const dm_oid *ids, size_t n)
{
	return dm_buf_add(out, ids, n * sizeof(*ids));
}
