/*
 * receive.c - the checks a receiver makes before storing an object
 * (see receive.h).
 *
 * Invariant: nothing is stored unless its bytes hash to its id and every
 * object it names is already in the store with the right kind (and, for a
 * file's chunks, the right length). Checking references reads only the
 * index (dm_store_stat), never object contents. What is stored goes in as
 * received for dot_id (dm_store_put_received: chunks into the dot's
 * staging packs when the engine keeps data in snapshots).
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

/* err for object `hex` (of kind `kind`) naming something it lacks. */
static int lacks(struct dm_err *err, const char *hex, int kind, const char *what, const dm_oid *ref,
		 const char *why)
{
	char rhex[DM_OID_HEXSZ + 1];

	dm_oid_hex(rhex, ref);
	return dm_err_set(err, DM_ECORRUPT, "%s %s names %s %s, which %s", dm_obj_kind_name(kind),
			  hex, what, rhex, why);
}

/* Is ref stored, as an object of kind `want` (and of length len, when len)? */
static int check_ref(struct dm_store *s, const dm_oid *ref, int want, uint64_t len, const char *hex,
		     int kind, struct dm_err *err)
{
	uint64_t got_len = 0;
	int got = 0;

	if (dm_store_stat(s, ref, &got, &got_len, NULL))
		return lacks(err, hex, kind, dm_obj_kind_name(want), ref, "is not stored here");
	if (got != want)
		return lacks(err, hex, kind, dm_obj_kind_name(want), ref, "is of another kind");
	if (len && got_len != len)
		return lacks(err, hex, kind, dm_obj_kind_name(want), ref,
			     "is stored with another length");
	return 0;
}

/* Replaces a decoder's message with one that names the object. */
static int undecodable(struct dm_err *err, const char *kind, const char *hex)
{
	char why[DM_ERR_MSG_MAX];

	if (!err)
		return DM_ECORRUPT;
	memcpy(why, err->msg, sizeof(why));
	return dm_err_set(err, DM_ECORRUPT, "%s %s: %s", kind, hex, why);
}

static int check_file(struct dm_store *s, const unsigned char *raw, size_t len, const char *hex,
		      struct dm_err *err)
{
	struct dm_file f;
	int rc = dm_file_decode(&f, raw, len, err);

	if (rc)
		return undecodable(err, "file", hex);
	for (size_t i = 0; i < f.n && !rc; i++)
		rc = check_ref(s, &f.ext[i].id, DM_OBJ_CHUNK, f.ext[i].len, hex, DM_OBJ_FILE, err);
	dm_file_release(&f);
	return rc;
}

static int check_tree(struct dm_store *s, const unsigned char *raw, size_t len, const char *hex,
		      struct dm_err *err)
{
	struct dm_tree t;
	int rc = dm_tree_decode(&t, raw, len, err);

	if (rc)
		return undecodable(err, "tree", hex);
	for (size_t i = 0; i < t.n && !rc; i++) {
		if (t.e[i].type == DM_ENTRY_FILE)
			rc = check_ref(s, &t.e[i].id, DM_OBJ_FILE, 0, hex, DM_OBJ_TREE, err);
		else if (t.e[i].type == DM_ENTRY_DIR)
			rc = check_ref(s, &t.e[i].id, DM_OBJ_TREE, 0, hex, DM_OBJ_TREE, err);
	}
	dm_tree_release(&t);
	return rc;
}

static int check_commit(struct dm_store *s, const unsigned char *raw, size_t len, const char *hex,
			const char *dot_id, struct dm_err *err)
{
	struct dm_commit c;
	int rc = dm_commit_decode(&c, raw, len, err);

	if (rc)
		return undecodable(err, "commit", hex);
	if (!dot_id || strcmp(c.dot_id, dot_id))
		rc = dm_err_set(err, DM_ECORRUPT,
				"commit %s belongs to dot %.40s, not to the dot being transferred",
				hex, c.dot_id);
	else
		rc = check_ref(s, &c.tree, DM_OBJ_TREE, 0, hex, DM_OBJ_COMMIT, err);
	dm_commit_release(&c);
	return rc;
}

int dm_sync_accept(struct dm_store *s, const struct dm_pack_rec *rec,
		       const unsigned char *bytes, const char *dot_id, bool *stored_out,
		       struct dm_err *err)
{
	unsigned char hdr[DM_PACK_REC_LEN];
	struct dm_pack_rec chk;
	char hex[DM_OID_HEXSZ + 1];
	unsigned char *raw = NULL;
	const unsigned char *data = bytes;
	dm_oid got;
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
		dm_oid_hex(hex, &rec->id);
		if (rec->flags & DM_PACK_F_ZSTD) {
			size_t z;

			raw = malloc(rec->raw_len ? rec->raw_len : 1);
			if (!raw)
				return dm_err_set(err, DM_ENOMEM, "out of memory");
			z = ZSTD_decompress(raw, rec->raw_len, bytes, rec->stored_len);
			if (ZSTD_isError(z) || z != rec->raw_len) {
				rc = dm_err_set(err, DM_ECORRUPT, "%s %s: cannot decompress: %s",
						dm_obj_kind_name(rec->kind), hex,
						ZSTD_isError(z) ? ZSTD_getErrorName(z)
								: "wrong size");
				goto done;
			}
			data = raw;
		}
		dm_hash(&got, data, rec->raw_len);
		if (dm_oid_cmp(&got, &rec->id)) {
			rc = dm_err_set(err, DM_ECORRUPT, "%s %s: content does not match its id",
					dm_obj_kind_name(rec->kind), hex);
			goto done;
		}
		if (rec->kind == DM_OBJ_FILE)
			rc = check_file(s, data, rec->raw_len, hex, err);
		else if (rec->kind == DM_OBJ_TREE)
			rc = check_tree(s, data, rec->raw_len, hex, err);
		else
			rc = check_commit(s, data, rec->raw_len, hex, dot_id, err);
		if (rc)
			goto done;
	}
	rc = dm_store_put_received(s, dot_id, rec, bytes, err);
	if (!rc && stored_out)
		*stored_out = true;
done:
	free(raw);
	return rc;
}
