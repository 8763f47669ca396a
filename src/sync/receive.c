/*
 * receive.c - storing an object that came over the wire (see receive.h).
 *
 * Invariant: nothing is stored unless the store admits it
 * (dm_store_admit_check: its bytes hash to its id and every object it
 * names is already in the store with the right kind and length). This file
 * keeps the wire's part: the record header's bounds and decompressing a
 * flagged file, tree or commit into exactly raw_len bytes for that check
 * (a chunk names nothing; dm_store_put_received hashes it). What is stored
 * goes in as received for dot_id (dm_store_put_received: chunks into the
 * dot's staging packs when the engine keeps data in snapshots).
 */
#include "sync/receive.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "store/object.h"
#include "store/store.h"
#include "util/err.h"
#include "util/hash.h"

#include "util/banned.h"

int dm_sync_accept(struct dm_store *s, const struct dm_pack_rec *rec,
		       const unsigned char *bytes, const char *dot_id, bool *stored_out,
		       struct dm_err *err)
{
	unsigned char hdr[DM_PACK_REC_LEN];
	struct dm_pack_rec chk;
	struct dm_buf scratch = DM_BUF_INIT;
	const unsigned char *data;
	int rc;

	if (stored_out)
		*stored_out = false;
	dm_pack_rec_encode(hdr, rec);
	rc = dm_pack_rec_decode(&chk, hdr, err);
	if (rc)
		return rc;
	if (dm_store_has(s, &rec->id))
		return 0;
	if (rec->kind != DM_OBJ_CHUNK) {
		rc = dm_sync_rec_raw(&data, &scratch, rec, bytes, err);
		if (!rc)
			rc = dm_store_admit_check(s, &rec->id, rec->kind, data, rec->raw_len, dot_id,
						  err);
		if (rc)
			goto done;
	}
	rc = dm_store_put_received(s, dot_id, rec, bytes, err);
	if (!rc && stored_out)
		*stored_out = true;
done:
	dm_buf_release(&scratch);
	return rc;
}

int dm_sync_rec_raw(const unsigned char **out, struct dm_buf *scratch,
		    const struct dm_pack_rec *rec, const unsigned char *bytes, struct dm_err *err)
{
	char hex[DM_OID_HEXSZ + 1];
	size_t z;

	*out = bytes;
	if (!(rec->flags & DM_PACK_F_ZSTD))
		return 0;
	dm_buf_reset(scratch);
	if (dm_buf_grow(scratch, rec->raw_len ? rec->raw_len : 1))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	z = ZSTD_decompress(scratch->data, rec->raw_len, bytes, rec->stored_len);
	if (ZSTD_isError(z) || z != rec->raw_len) {
		dm_oid_hex(hex, &rec->id);
		return dm_err_set(err, DM_ECORRUPT, "%s %s: cannot decompress: %s",
				  dm_obj_kind_name(rec->kind), hex,
				  ZSTD_isError(z) ? ZSTD_getErrorName(z) : "wrong size");
	}
	scratch->len = rec->raw_len;
	*out = scratch->data;
	return 0;
}
