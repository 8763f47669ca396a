/*
 * pack.h - the append-only pack file format (internal to the store).
 *
 * A pack starts with a 16-byte header: the magic "DMPACK\r\n", a
 * little-endian u32 format version (1) and four zero bytes. Records follow,
 * each a 44-byte header and the stored bytes:
 *
 *     u8 kind | u8 flags | u16 zero | u32 raw_len | u32 stored_len | id[32]
 *
 * all little-endian; flags bit 0 means the stored bytes are a zstd frame of
 * the raw bytes. The id repeats the index's key so that a misplaced offset
 * is caught, and so that a pack can be re-indexed from its records alone.
 */
#ifndef DM_STORE_PACK_H
#define DM_STORE_PACK_H

#include <stdint.h>

#include "util/buf.h"
#include "util/hash.h"

struct dm_err;

#define DM_PACK_HDR_LEN   16
#define DM_PACK_REC_LEN   44
#define DM_PACK_F_ZSTD    0x01
#define DM_PACK_VERSION   1

struct dm_pack_rec {
	uint8_t kind;
	uint8_t flags;
	uint32_t raw_len;
	uint32_t stored_len;
	dm_oid id;
};

/* The largest raw_len a record of this kind may have. */
uint32_t dm_pack_max_raw(int kind);

/* Creates a new pack at path (which must not exist) with its header. */
int dm_pack_create(int *out, const char *path, struct dm_err *err);
/* Opens an existing pack and checks its header. */
int dm_pack_open(int *out, const char *path, int flags, struct dm_err *err);

void dm_pack_rec_encode(unsigned char out[DM_PACK_REC_LEN], const struct dm_pack_rec *rec);
/* Parses and bounds-checks a record header; DM_ECORRUPT with a message. */
int dm_pack_rec_decode(struct dm_pack_rec *out, const unsigned char hdr[DM_PACK_REC_LEN],
		       struct dm_err *err);

/* Reads only the header of the record at off of pack fd into rec. */
int dm_pack_read_header(int fd, uint64_t off, struct dm_pack_rec *rec, struct dm_err *err);
/* Reads the record at off of pack fd: its header into rec and its stored
 * bytes into stored (replacing its contents). */
int dm_pack_read(int fd, uint64_t off, struct dm_pack_rec *rec, struct dm_buf *stored,
		 struct dm_err *err);

#endif
