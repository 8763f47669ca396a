/*
 * engine.c - the engine table: dm_engine_open picks an engine by name, and
 * every dm_engine_* call dispatches through that engine's ops; also the
 * small helpers that go with diffs.
 *
 * Invariants: every struct dm_engine starts with a struct dm_engine_base
 * (engine/internal.h) whose ops point at the table it was opened with, so
 * dispatch never needs to know which engine it holds. The functions here add
 * nothing to what the engine does, except checking their arguments, and
 * the defaults of the optional ops: without .path and .set_current, an
 * engine's working copies are base.root/<dot>/<branch>/wc (wc.c).
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/internal.h"
#include "util/err.h"

#include "util/banned.h"

static const struct dm_engine_ops *const engines[] = {
    &dm_engine_dir,
    &dm_engine_btrfs,
};

static const struct dm_engine_base *base_of(const struct dm_engine *e)
{
	return (const struct dm_engine_base *)e;
}

static const struct dm_engine_ops *ops_of(const struct dm_engine *e)
{
	return base_of(e)->ops;
}

int dm_engine_open(struct dm_engine **out, const char *name, const char *root,
                   struct dm_store *store, struct dm_err *err)
{
	*out = NULL;
	if (!name || !root || !store)
		return dm_err_set(err, DM_EINVAL, "engine name, root and store are required");
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		if (!strcmp(engines[i]->name, name))
			return engines[i]->open(out, root, store, err);
	}
	return dm_err_set(err, DM_EINVAL, "unknown engine '%s'", name);
}

void dm_engine_free(struct dm_engine *e)
{
	if (e)
		ops_of(e)->free(e);
}

const char *dm_engine_name(const struct dm_engine *e)
{
	return ops_of(e)->name;
}

int dm_engine_create(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *tree,
                     const struct dm_engine_progress *p, struct dm_err *err)
{
	return ops_of(e)->create(e, dot, branch, tree, p, err);
}

int dm_engine_commit(struct dm_engine *e, const char *dot, const char *branch, dm_oid *tree_out,
                     const struct dm_engine_progress *p, struct dm_err *err)
{
	struct dm_engine_capture cap;

	memset(&cap, 0, sizeof(cap));
	return ops_of(e)->commit(e, dot, branch, NULL, tree_out, &cap, p, err);
}

int dm_engine_commit_instant(struct dm_engine *e, const char *dot, const char *branch,
                             const struct dm_engine_freezer *fz, dm_oid *tree_out,
                             struct dm_engine_capture *cap, const struct dm_engine_progress *p,
                             struct dm_err *err)
{
	memset(cap, 0, sizeof(*cap));
	return ops_of(e)->commit(e, dot, branch, fz, tree_out, cap, p, err);
}

const char *dm_capture_kind_name(int kind)
{
	switch (kind) {
	case DM_CAPTURE_SNAPSHOT:
		return "snapshot";
	case DM_CAPTURE_FROZEN:
		return "frozen";
	case DM_CAPTURE_QUIET:
		return "quiet";
	case DM_CAPTURE_NOT_INSTANT:
		return "not-instant";
	default:
		return NULL;
	}
}

int dm_engine_reset(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *tree,
                    const struct dm_engine_progress *p, struct dm_err *err)
{
	return ops_of(e)->reset(e, dot, branch, tree, p, err);
}

int dm_engine_dirty(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *head,
                    uint64_t *dirty_out, uint64_t *size_out, struct dm_err *err)
{
	return ops_of(e)->dirty(e, dot, branch, head, dirty_out, size_out, err);
}

int dm_engine_diff(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *from,
                   const dm_oid *to, struct dm_diff *out, struct dm_err *err)
{
	out->n = 0;
	out->changes = NULL;
	return ops_of(e)->diff(e, dot, branch, from, to, out, err);
}

int dm_engine_delete_branch(struct dm_engine *e, const char *dot, const char *branch,
                            struct dm_err *err)
{
	return ops_of(e)->delete_branch(e, dot, branch, err);
}

int dm_engine_delete_dot(struct dm_engine *e, const char *dot, struct dm_err *err)
{
	return ops_of(e)->delete_dot(e, dot, err);
}

int dm_engine_path(struct dm_engine *e, const char *dot, const char *branch, struct dm_buf *out,
                   struct dm_err *err)
{
	if (ops_of(e)->path)
		return ops_of(e)->path(e, dot, branch, out, err);
	return dm_wc_path(out, base_of(e)->root, dot, branch, err);
}

int dm_engine_set_current(struct dm_engine *e, const char *dot, const char *branch,
			  struct dm_err *err)
{
	if (ops_of(e)->set_current)
		return ops_of(e)->set_current(e, dot, branch, err);
	return dm_wc_set_current(base_of(e)->root, dot, branch, err);
}

bool dm_engine_can_limit(const struct dm_engine *e)
{
	return ops_of(e)->limit != NULL;
}

int dm_engine_limit(struct dm_engine *e, const char *dot, const char *branch, uint64_t bytes,
		    struct dm_err *err)
{
	if (!ops_of(e)->limit)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "the %s engine cannot limit the size of a working copy (the "
				  "btrfs engine can)",
				  ops_of(e)->name);
	return ops_of(e)->limit(e, dot, branch, bytes, err);
}

/* ---- diffs ---- */

void dm_diff_release(struct dm_diff *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->changes[i].path);
	free(d->changes);
	d->changes = NULL;
	d->n = 0;
}

const char *dm_change_status_name(int status)
{
	switch (status) {
	case DM_CHANGE_ADDED:
		return "added";
	case DM_CHANGE_MODIFIED:
		return "modified";
	case DM_CHANGE_DELETED:
		return "deleted";
	default:
		return "unknown";
	}
}

bool dm_engine_can_snapshot(const struct dm_engine *e)
{
	return ops_of(e)->snapshot != NULL;
}

int dm_engine_snapshot(struct dm_engine *e, const char *dot, const char *branch,
		       const char *commit_id, struct dm_err *err)
{
	if (!ops_of(e)->snapshot)
		return dm_err_set(err, DM_EUNSUPPORTED, "the %s engine has no snapshots",
				  ops_of(e)->name);
	return ops_of(e)->snapshot(e, dot, branch, commit_id, err);
}

int dm_engine_index(struct dm_engine *e, const char *dot, const char *commit_id,
		    const char *parent_id, const dm_oid *parent_tree, dm_oid *tree_out,
		    const struct dm_engine_progress *p, struct dm_err *err)
{
	if (!ops_of(e)->index)
		return dm_err_set(err, DM_EUNSUPPORTED, "the %s engine has no snapshots",
				  ops_of(e)->name);
	return ops_of(e)->index(e, dot, commit_id, parent_id, parent_tree, tree_out, p, err);
}

int dm_engine_drop_snapshot(struct dm_engine *e, const char *dot, const char *commit_id,
			    struct dm_err *err)
{
	if (!ops_of(e)->drop_snapshot)
		return 0;
	return ops_of(e)->drop_snapshot(e, dot, commit_id, err);
}

int dm_engine_sweep_snapshots(struct dm_engine *e, const char *dot,
			      bool (*keep)(const char *commit_id, void *ctx), void *ctx,
			      struct dm_err *err)
{
	if (!ops_of(e)->sweep_snapshots)
		return 0;
	return ops_of(e)->sweep_snapshots(e, dot, keep, ctx, err);
}

int dm_engine_receive(struct dm_engine *e, const char *dot, const char *branch, bool exists,
		      const char *from, const char *commit_id, const dm_oid *tree,
		      const struct dm_engine_progress *p, struct dm_err *err)
{
	if (ops_of(e)->receive)
		return ops_of(e)->receive(e, dot, branch, exists, from, commit_id, tree, p, err);
	return exists ? ops_of(e)->reset(e, dot, branch, tree, p, err)
		      : ops_of(e)->create(e, dot, branch, tree, p, err);
}
