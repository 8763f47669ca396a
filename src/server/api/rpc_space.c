/*
 * rpc_space.c - the space.* methods of the API (docs/api.md): garbage
 * collection of this node's store, and a summary of its space.
 *
 * Invariants: every method is for admins (the store is every user's);
 * the collection runs in the space actor's job (space/space.c), never on
 * the HTTP thread's own account, and its answer is its figures. Before a
 * collection (not a dry run), each dot forgets, in its own job, the
 * commits that neither a branch nor a recent reset keeps: the handler only
 * sends them requests.
 */
#include <jansson.h>

#include "server/api/api.h"
#include "server/api/rpc.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "engine/engine.h"
#include "server/space/space.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/names.h"

#include <unistd.h>

#include "util/banned.h"

#define GC_DEADLINE_MS (3600 * 1000)

/*
 * Asks every dot to forget the commits that no branch reaches and no reset
 * kept after before_ns (each dot does it in its own job); *forgotten gets
 * how many. A dot deleted meanwhile is skipped.
 */
static int expire_dots(const struct dm_rpc_ctx *ctx, int64_t before_ns, uint64_t *forgotten,
		       struct dm_err *err)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(ctx->env->registry);
	int rc = 0;

	*forgotten = 0;
	for (size_t i = 0; i < snap->n && !rc; i++) {
		struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_EXPIRE);
		json_t *res = NULL;

		req->expire_before_ns = before_ns;
		rc = dm_dot_call(&res, snap->e[i].dot, req, dm_rpc_deadline_ms(), err);
		if (rc == DM_ENOTFOUND)
			rc = 0;
		else if (!rc)
			*forgotten +=
				(uint64_t)json_integer_value(json_object_get(res, "forgotten"));
		else
			dm_err_prefix(err, "dot '%s/%s'", snap->e[i].name.ns, snap->e[i].name.name);
		json_decref(res);
	}
	dm_registry_snap_unref(snap);
	return rc;
}

static int space_gc(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		    struct dm_err *err)
{
	json_t *dry = json_object_get(params, "dry_run");
	json_t *expire = json_object_get(params, "expire_ms");
	int64_t keep_ms = DM_DOT_RESET_KEEP_MS_DEFAULT;
	struct dm_store_gc_stats st;
	uint64_t forgotten = 0;
	int rc;

	if (dry && !json_is_boolean(dry))
		return dm_err_set(err, DM_EINVAL, "'dry_run' must be true or false");
	if (expire && (!json_is_integer(expire) || json_integer_value(expire) < 0))
		return dm_err_set(err, DM_EINVAL, "'expire_ms' must be a number of ms, 0 or more");
	if (expire)
		keep_ms = json_integer_value(expire);
	/* a dry run forgets nothing: it counts what is garbage now */
	if (!json_is_true(dry)) {
		rc = expire_dots(ctx, dm_now_realtime_ns() - keep_ms * 1000000LL, &forgotten, err);
		if (rc)
			return rc;
	}
	rc = dm_space_gc(ctx->env->space, json_is_true(dry), dm_rpc_deadline_ms(), &st, err);
	if (rc)
		return rc;
	*result = json_pack("{s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			    "forgotten_commits", (json_int_t)forgotten, "dry_run",
			    json_is_true(dry), "objects", (json_int_t)st.objects, "freed_objects",
			    (json_int_t)st.freed, "freed_object_bytes", (json_int_t)st.freed_bytes,
			    "external_objects", (json_int_t)st.external_freed, "kept_fresh",
			    (json_int_t)st.kept_fresh, "packs", (json_int_t)st.packs,
			    "copied_bytes", (json_int_t)st.copied_bytes, "freed_disk_bytes",
			    (json_int_t)st.disk_freed, "mark_bytes", (json_int_t)st.mark_bytes,
			    "ms", (json_int_t)st.ms);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

/* The working copies' size: every branch's, as its dot last measured it. */
static uint64_t working_copies(const struct dm_rpc_ctx *ctx, size_t *ndots)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(ctx->env->registry);
	uint64_t total = 0;

	*ndots = snap->n;
	for (size_t i = 0; i < snap->n; i++) {
		struct dm_dot_view *v = dm_dot_handle_view(snap->e[i].dot);

		for (size_t j = 0; j < v->nbranches; j++)
			total += v->branches[j].size;
		dm_dot_view_unref(v);
	}
	dm_registry_snap_unref(snap);
	return total;
}

static int space_df(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		    struct dm_err *err)
{
	struct dm_store_space sp;
	struct dm_space_last last;
	size_t ndots = 0;
	uint64_t wc;
	json_t *reclaim = json_null();
	int rc = dm_store_space(ctx->env->store, &sp, err);

	if (!rc)
		rc = dm_space_last(ctx->env->space, &last, err);
	if (rc)
		return rc;
	wc = working_copies(ctx, &ndots);
	/* what the last collection or dry run left, or would have freed */
	if (last.when_ns)
		reclaim = json_pack(
			"{s:I, s:b, s:I}", "bytes",
			(json_int_t)(last.st.dead_kept + (last.dry_run ? last.st.disk_freed : 0)),
			"dry_run", last.dry_run, "time_ns", (json_int_t)last.when_ns);
	*result = json_pack("{s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I}, s:o, s:{s:I, s:I, s:I}, "
			    "s:{s:I, s:I, s:I}}",
			    "store", "bytes", (json_int_t)sp.pack_bytes, "packs",
			    (json_int_t)sp.packs, "received_bytes", (json_int_t)sp.staged_bytes,
			    "received_packs", (json_int_t)sp.staged_packs, "working_copies",
			    "bytes", (json_int_t)wc, "dots", (json_int_t)ndots, "reclaimable",
			    reclaim, "filesystem", "size", (json_int_t)sp.fs_size, "free",
			    (json_int_t)sp.fs_free, "reserve", (json_int_t)sp.reserve, "auto_gc",
			    "threshold", (json_int_t)last.auto_bytes, "garbage",
			    (json_int_t)last.garbage, "runs", (json_int_t)last.automatic);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

/* What dm fsck checks of the dots: each branch's head (and whether a
 * commit of the dot is still being indexed) and its working copy's path. */
static json_t *fsck_dots(const struct dm_rpc_ctx *ctx)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(ctx->env->registry);
	struct dm_engine *engine = dm_registry_env(ctx->env->registry)->engine;
	json_t *dots = json_array();

	for (size_t i = 0; i < snap->n; i++) {
		struct dm_dot_view *v = dm_dot_handle_view(snap->e[i].dot);
		char shown[DM_DOT_NAME_TEXT_MAX];
		json_t *branches = json_array();

		for (size_t b = 0; b < v->nbranches; b++) {
			struct dm_buf path = DM_BUF_INIT;
			json_t *bj = json_pack("{s:s, s:s, s:b}", "name", v->branches[b].name,
					       "head", v->branches[b].head, "pending",
					       v->indexing > 0);

			if (!dm_engine_path(engine, v->id, v->branches[b].name, &path, NULL))
				json_object_set_new(bj, "path",
						    json_string((const char *)path.data));
			dm_buf_release(&path);
			json_array_append_new(branches, bj);
		}
		json_array_append_new(dots, json_pack("{s:s, s:s, s:o}", "id", v->id, "name",
						      dm_dot_name_text(shown, &v->name),
						      "branches", branches));
		dm_dot_view_unref(v);
	}
	dm_registry_snap_unref(snap);
	return dots;
}

static const char *const fsck_phases[] = {"starting", "objects", "packs", "history", "repair"};

/*
 * space.fsck: {"repair"?} starts a check (or joins the one running);
 * {"run": N} asks about run N. Either waits up to wait_ms (default 2 s,
 * at most 20 s) for it to end: {"run","done":true,"report":{...}}, or
 * {"run","done":false,"progress":{"phase","done","total"}}.
 */
static int space_fsck(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		      struct dm_err *err)
{
	json_t *repair = json_object_get(params, "repair");
	json_t *jrun = json_object_get(params, "run");
	json_t *jwait = json_object_get(params, "wait_ms");
	int64_t wait_ms = 2000;
	uint64_t run = 0;
	int rc = 0;

	if (repair && !json_is_boolean(repair))
		return dm_err_set(err, DM_EINVAL, "'repair' must be true or false");
	if (jrun && (!json_is_integer(jrun) || json_integer_value(jrun) <= 0))
		return dm_err_set(err, DM_EINVAL, "'run' must be a run number");
	if (jwait && (!json_is_integer(jwait) || json_integer_value(jwait) < 0))
		return dm_err_set(err, DM_EINVAL, "'wait_ms' must be 0 or more");
	if (jwait)
		wait_ms = json_integer_value(jwait) > 20000 ? 20000 : json_integer_value(jwait);
	if (jrun)
		run = (uint64_t)json_integer_value(jrun);
	else
		rc = dm_space_fsck_start(ctx->env->space, json_is_true(repair), fsck_dots(ctx),
					 &run, err);
	for (int64_t waited = 0; !rc; waited += 100) {
		struct dm_fsck_progress p;
		json_t *report = NULL;

		rc = dm_space_fsck_poll(ctx->env->space, run, &report, &p, err);
		if (rc)
			break;
		if (report) {
			*result = json_pack("{s:I, s:b, s:o}", "run", (json_int_t)run, "done", true,
					    "report", report);
			break;
		}
		if (waited >= wait_ms) {
			*result = json_pack(
				"{s:I, s:b, s:{s:s, s:I, s:I}}", "run", (json_int_t)run, "done",
				false, "progress", "phase",
				fsck_phases[p.phase >= 0 && p.phase <= DM_FSCK_REPAIR ? p.phase : 0],
				"done", (json_int_t)p.done, "total", (json_int_t)p.total);
			break;
		}
		usleep(100 * 1000);
	}
	return rc;
}

const struct dm_rpc_method dm_rpc_space_methods[] = {
	{"space.gc", space_gc, true, GC_DEADLINE_MS},
	{"space.df", space_df, true, 0},
	{"space.fsck", space_fsck, true, 60 * 1000},
	{NULL, NULL, false, 0},
};
