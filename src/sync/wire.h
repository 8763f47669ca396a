/*
 * wire.h - the bytes that travel between two dmds
 * (docs/internals/transfer.md): record streams and id lists.
 *
 * A record stream is pack records (store/pack.h) back to back: a 44-byte
 * header `kind | flags | 0 | raw_len | stored_len | id[32]` and stored_len
 * bytes each. A record of kind 0 is an error record: its bytes (at most
 * DM_WIRE_ERROR_MAX, flags 0, raw_len == stored_len) are a message
 * "JSON_NAME text" (the error's name in util/err.h's table, a space, and
 * one line for people), and the stream ends with it.
 *
 * An id list is N raw 32-byte object ids, N <= DM_WIRE_MAX_IDS.
 *
 * The parser takes bytes as they arrive, in pieces of any size, and hands
 * each complete record to a callback. Nothing is allocated before a header
 * is bounds-checked: a record is at most its kind's limit
 * (dm_pack_max_raw, or its compressed bound), an error record at most
 * DM_WIRE_ERROR_MAX bytes.
 */
#ifndef DM_SYNC_WIRE_H
#define DM_SYNC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/pack.h"
#include "util/buf.h"
#include "util/hash.h"

struct dm_err;

#define DM_WIRE_KIND_ERROR 0
#define DM_WIRE_ERROR_MAX  4096u
#define DM_WIRE_MAX_IDS    65536u

/* The transfer session (docs/internals/transfer.md, "Who may see an
 * object"): `refs` answers it in this header, and every later request of
 * the transfer sends it back. At most DM_WIRE_SESSION_MAX characters. */
#define DM_WIRE_SESSION_HEADER "Dm-Transfer-Session"
#define DM_WIRE_SESSION_MAX    64u

/*
 * Called for each complete record. bytes (rec->stored_len of them) are
 * borrowed for the call only. An error record never reaches the callback.
 * A non-zero return stops the parser; feed returns it.
 */
typedef int (*dm_wire_rec_fn)(void *ctx, const struct dm_pack_rec *rec, const unsigned char *bytes,
			      struct dm_err *err);

struct dm_wire_parser {
	unsigned char hdr[DM_PACK_REC_LEN];
	size_t hdr_len; /* header bytes gathered so far */
	bool in_body;   /* hdr is complete and rec holds it */
	struct dm_pack_rec rec;
	struct dm_buf body; /* a body that arrived in pieces */
	int failed;         /* 0, or the code that stopped the parser */
	uint64_t records;   /* records handed to the callback */
	uint64_t bytes;     /* bytes fed */
};

void dm_wire_parser_init(struct dm_wire_parser *p);
void dm_wire_parser_release(struct dm_wire_parser *p);

/*
 * Feeds len more bytes of a stream. Returns 0, or: DM_ECORRUPT for a
 * record header out of bounds ("corrupt pack record: ..."), the code and
 * message of an error record (the stream ends there: whatever follows is
 * never read), or what the callback returned. Once it failed, the parser stays failed
 * and returns the same code.
 */
int dm_wire_parser_feed(struct dm_wire_parser *p, const void *data, size_t len, dm_wire_rec_fn fn,
			void *ctx, struct dm_err *err);
/* At the end of the stream: DM_EPROTO when it stops inside a record. */
int dm_wire_parser_finish(struct dm_wire_parser *p, struct dm_err *err);

/* Appends one record (header and rec->stored_len bytes). */
int dm_wire_rec_add(struct dm_buf *out, const struct dm_pack_rec *rec, const void *bytes);
/* Appends the error record for code and message (cut at DM_WIRE_ERROR_MAX). */
int dm_wire_error_add(struct dm_buf *out, int code, const char *message);

/* Checks that a body of len bytes is an id list: a multiple of 32 bytes,
 * at most DM_WIRE_MAX_IDS ids (DM_EPROTO, DM_ETOOBIG); *n gets the count. */
int dm_wire_ids_check(size_t len, size_t *n, struct dm_err *err);
/* The ids of a checked list, in place (dm_oid is 32 bytes, no alignment). */
const dm_oid *dm_wire_ids(const void *data);
int dm_wire_ids_add(struct dm_buf *out, const dm_oid *ids, size_t n);

#endif
