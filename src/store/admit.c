/*
 * admit.c - the rule an object from outside the store must pass before it
 * may be stored: dm_store_admit_check (store.h).
 *
 * Invariant kept: an object present in a store has everything below it
 * present. So an object is admitted only when its bytes hash to its id,
 * it decodes as its kind, and every object it names (dm_object_each_ref)
 * is already stored with the kind, and a chunk the length, it is named
 * with; a commit only when it belongs to the dot being received into.
 * One exception: a commit whose tree is not stored is admitted as a record
 * only (a commit pruned where it comes from: its data is gone there); the
 * dot that receives it indexes it pruned (dm_dot_job_receive), so nothing
 * reads its tree, and the collector does not open it. A tree that is
 * stored as another kind is still refused.
 * Checking references reads only the index (dm_store_stat), never object
 * contents; nothing here writes.
 */
#include <string.h>

#include "store/object.h"
#include "store/store.h"
#include "util/err.h"
#include "util/hash.h"

#include "util/banned.h"

/* The object being admitted, for the callback and the messages. */
struct admit {
	struct dm_store *s;
	int kind;
	const char *hex;
	struct dm_err *err;
};

/* err for the object being admitted naming something it lacks. */
static int lacks(const struct admit *a, const struct dm_obj_ref *ref, const char *why)
{
	char rhex[DM_OID_HEXSZ + 1];

	dm_oid_hex(rhex, ref->id);
	return dm_err_set(a->err, DM_ECORRUPT, "%s %s names %s %s, which %s",
			  dm_obj_kind_name(a->kind), a->hex, dm_obj_kind_name(ref->kind), rhex,
			  why);
}

/* Is ref stored, as an object of its kind (and a chunk of its length)? */
static int check_ref(void *ctx, const struct dm_obj_ref *ref)
{
	const struct admit *a = ctx;
	uint64_t got_len = 0;
	int got = 0;

	if (dm_store_stat(a->s, ref->id, &got, &got_len, NULL))
		return a->kind == DM_OBJ_COMMIT ? 0 : lacks(a, ref, "is not stored here");
	if (got != ref->kind)
		return lacks(a, ref, "is of another kind");
	if (ref->len && got_len != ref->len)
		return lacks(a, ref, "is stored with another length");
	return 0;
}

/* Replaces a decoder's message with one that names the object. */
static int undecodable(struct dm_err *err, int kind, const char *hex)
{
	char why[DM_ERR_MSG_MAX];

	if (!err)
		return DM_ECORRUPT;
	memcpy(why, err->msg, sizeof(why));
	return dm_err_set(err, DM_ECORRUPT, "%s %s: %s", dm_obj_kind_name(kind), hex, why);
}

int dm_store_admit_check(struct dm_store *s, const dm_oid *id, int kind, const void *raw,
			 size_t len, const char *dot_id, struct dm_err *err)
{
	char hex[DM_OID_HEXSZ + 1];
	struct admit a = {s, kind, hex, err};
	struct dm_object o;
	dm_oid got;
	int rc;

	dm_oid_hex(hex, id);
	dm_hash(&got, raw, len);
	if (dm_oid_cmp(&got, id))
		return dm_err_set(err, DM_ECORRUPT, "%s %s: content does not match its id",
				  dm_obj_kind_name(kind), hex);
	if (dm_object_decode(&o, kind, raw, len, err))
		return undecodable(err, kind, hex);
	if (kind == DM_OBJ_COMMIT && (!dot_id || strcmp(o.commit.dot_id, dot_id)))
		rc = dm_err_set(err, DM_ECORRUPT,
				"commit %s belongs to dot %.40s, not to the dot being transferred",
				hex, o.commit.dot_id);
	else
		rc = dm_object_each_ref(&o, check_ref, &a);
	dm_object_release(&o);
	return rc;
}
