/*
 * rpc_space.c - the space.* methods of the API (docs/api.md): garbage
 * collection of this node's store.
 *
 * Invariants: every method is for admins (the store is every user's);
 * the collection runs in the space actor's job (space/space.c), never on
 * the HTTP thread's own account, and its answer is its figures.
 */
#include <jansson.h>

#include "server/api/api.h"
#include "server/api/rpc.h"
#include "server/space/space.h"

#include "util/banned.h"

#define GC_DEADLINE_MS (3600 * 1000)

static int space_gc(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		    struct dm_err *err)
{
	json_t *dry = json_object_get(params, "dry_run");
	struct dm_store_gc_stats st;
	int rc;

	if (dry && !json_is_boolean(dry))
		return dm_err_set(err, DM_EINVAL, "'dry_run' must be true or false");
	rc = dm_space_gc(ctx->env->space, json_is_true(dry), dm_rpc_deadline_ms(), &st, err);
	if (rc)
		return rc;
	*result = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "dry_run",
			    json_is_true(dry), "objects", (json_int_t)st.objects, "freed_objects",
			    (json_int_t)st.freed, "freed_object_bytes", (json_int_t)st.freed_bytes,
			    "external_objects", (json_int_t)st.external_freed, "kept_fresh",
			    (json_int_t)st.kept_fresh, "packs", (json_int_t)st.packs,
			    "copied_bytes", (json_int_t)st.copied_bytes, "freed_disk_bytes",
			    (json_int_t)st.disk_freed, "mark_bytes", (json_int_t)st.mark_bytes,
			    "ms", (json_int_t)st.ms);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

const struct dm_rpc_method dm_rpc_space_methods[] = {
	{"space.gc", space_gc, true, GC_DEADLINE_MS},
	{NULL, NULL, false, 0},
};
