/*
 * gc.c - reachability: which objects committed history still reaches, and
 * which would be left naming an object about to be forgotten (gc.h).
 *
 * The walk starts from every indexed commit (except those of one dot),
 * reads its tree, every subtree and every file object, and marks each id
 * it meets that the caller asked about. Trees and files already walked are
 * remembered by id, so history that shares most of its trees costs what
 * its distinct trees and files cost, not commits x size.
 *
 * Dependents are the other direction, for what is about to be forgotten:
 * every file, tree and commit outside the walked set that names a
 * forgotten object is forgotten too, so nothing left names a missing
 * object (verify stays clean). Trees are decided depth first with a memo
 * (unknown, kept, gone), files and commits by one look at what they name.
 *
 * dm_store_dot_bytes walks one dot's commits the same way, to say about
 * how much deleting it frees.
 *
 * Invariants: the commit list is copied out of the index before any object
 * is read (no read transaction stays open during the walk); recursion is
 * bounded by DM_TREE_MAX_DEPTH; an object that is missing or of the wrong
 * kind is logged and skipped, never fatal: it reaches nothing we could
 * keep, and refusing would make the files it names impossible to delete.
 * What an object names comes from dm_object_refs (object.h), in both
 * directions.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/gc.h"
#include "store/object.h"
#include "store/store.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"

#include "util/banned.h"

struct walk {
	struct dm_store *s;
	struct dm_oidmap *want;
	struct dm_oidmap *seen; /* commits, trees and files walked */
	struct dm_buf obj;
	/* when set, chunks go here instead of want */
	void (*chunk)(void *ctx, const dm_oid *id);
	void *chunk_ctx;
};

struct roots {
	const char *skip;
	dm_oid *ids;
	bool *pruned; /* the commit keeps its record only: its tree is not walked */
	size_t n, alloc;
};

static int collect(const char *dot_id, const char *commit_id, const dm_oid *oid, unsigned flags,
		   void *ctx)
{
	struct roots *r = ctx;

	(void)commit_id;
	if (r->skip && strcmp(dot_id, r->skip) == 0)
		return 0;
	if (r->n == r->alloc) {
		r->alloc = r->alloc ? r->alloc * 2 : 64;
		r->ids = dm_xrealloc(r->ids, r->alloc * sizeof(*r->ids));
		r->pruned = dm_xrealloc(r->pruned, r->alloc * sizeof(*r->pruned));
	}
	r->pruned[r->n] = (flags & DM_COMMIT_PRUNED) != 0;
	r->ids[r->n++] = *oid;
	return 0;
}

static void mark(struct walk *w, const dm_oid *id)
{
	unsigned char *v = w->want ? dm_oidmap_get(w->want, id) : NULL;

	if (v)
		*v = 1;
}

/* Reads object id into w->obj; 1 when it is there with the expected kind,
 * 0 when it is not (logged), or an error. */
static int load(struct walk *w, const dm_oid *id, int want_kind, struct dm_err *err)
{
	char hex[DM_OID_HEXSZ + 1];
	struct dm_err gerr;
	int kind = 0, rc;

	dm_buf_reset(&w->obj);
	rc = dm_store_get(w->s, id, &w->obj, &kind, &gerr);
	if (rc == DM_ENOTFOUND || rc == DM_ECORRUPT || (!rc && kind != want_kind)) {
		dm_oid_hex(hex, id);
		dm_warn("history walk: skipping %s %s: %s", dm_obj_kind_name(want_kind), hex,
			rc ? gerr.msg : "wrong kind");
		return 0;
	}
	if (rc) {
		*err = gerr;
		return rc;
	}
	return 1;
}

/* The object whose references are being followed. */
struct visit {
	struct walk *w;
	int depth; /* of the tree being opened; a commit's is -1 */
	struct dm_err *err;
};

static int walk_obj(struct walk *w, const dm_oid *id, int kind, int depth, struct dm_err *err);

static int reach_ref(void *ctx, const struct dm_obj_ref *ref)
{
	struct visit *v = ctx;

	if (ref->kind == DM_OBJ_CHUNK) {
		if (v->w->chunk)
			v->w->chunk(v->w->chunk_ctx, ref->id);
		else
			mark(v->w, ref->id);
		return 0;
	}
	return walk_obj(v->w, ref->id, ref->kind, v->depth + 1, v->err);
}

/* Marks file or tree id and, the first time, what it names. */
static int walk_obj(struct walk *w, const dm_oid *id, int kind, int depth, struct dm_err *err)
{
	struct visit v = {w, depth, err};
	int rc;

	mark(w, id);
	if (dm_oidmap_get(w->seen, id))
		return 0;
	dm_oidmap_put(w->seen, id, NULL);
	if (kind == DM_OBJ_TREE && depth > DM_TREE_MAX_DEPTH)
		return dm_err_set(err, DM_ECORRUPT, "trees nest more than %d deep",
				  DM_TREE_MAX_DEPTH);
	rc = load(w, id, kind, err);
	if (rc <= 0)
		return rc;
	return dm_object_refs(kind, w->obj.data, w->obj.len, reach_ref, &v, err);
}

int dm_store_mark_reachable(struct dm_store *s, const char *skip_dot, struct dm_oidmap *want,
			    struct dm_oidmap *reached, struct dm_err *err)
{
	struct roots r = {skip_dot, NULL, NULL, 0, 0};
	struct dm_oidmap local;
	struct walk w;
	int rc;

	memset(&w, 0, sizeof(w));
	w.s = s;
	w.want = want;
	dm_oidmap_init(&local, 0);
	w.seen = reached ? reached : &local;
	dm_buf_init(&w.obj, DM_OBJ_MAX_SIZE);
	rc = dm_store_commit_foreach(s, collect, &r, err);
	for (size_t i = 0; !rc && i < r.n; i++) {
		struct visit v = {&w, -1, err};

		mark(&w, &r.ids[i]);
		dm_oidmap_put(w.seen, &r.ids[i], NULL);
		if (r.pruned[i])
			continue; /* its record stays, its tree goes */
		rc = load(&w, &r.ids[i], DM_OBJ_COMMIT, err);
		if (rc <= 0)
			continue;
		rc = dm_object_refs(DM_OBJ_COMMIT, w.obj.data, w.obj.len, reach_ref, &v, err);
	}
	free(r.ids);
	free(r.pruned);
	dm_oidmap_release(&local);
	dm_buf_release(&w.obj);
	return rc;
}

int dm_store_mark_live(struct dm_store *s, bool commits, const dm_oid *roots, size_t nroots,
		       struct dm_oidmap *seen, void (*chunk)(void *ctx, const dm_oid *id),
		       void *ctx, struct dm_err *err)
{
	struct roots r = {NULL, NULL, NULL, 0, 0};
	struct walk w;
	int rc = 0;

	memset(&w, 0, sizeof(w));
	w.s = s;
	w.seen = seen;
	w.chunk = chunk;
	w.chunk_ctx = ctx;
	dm_buf_init(&w.obj, DM_OBJ_MAX_SIZE);
	if (commits)
		rc = dm_store_commit_foreach(s, collect, &r, err);
	/* pruned commits first: in seen, a later walk (a pin, a fresh id) does
	 * not open them either */
	for (size_t i = 0; !rc && i < r.n; i++)
		if (r.pruned[i])
			dm_oidmap_put(seen, &r.ids[i], NULL);
	for (size_t i = 0; !rc && i < r.n; i++) {
		if (dm_oidmap_get(seen, &r.ids[i]))
			continue;
		rc = walk_obj(&w, &r.ids[i], DM_OBJ_COMMIT, -1, err);
	}
	for (size_t i = 0; !rc && i < nroots; i++) {
		int kind = 0;
		uint64_t len;

		if (dm_store_stat(s, &roots[i], &kind, &len, NULL))
			continue; /* not stored (any more): nothing to keep */
		if (kind == DM_OBJ_CHUNK)
			chunk(ctx, &roots[i]);
		else
			rc = walk_obj(&w, &roots[i], kind, kind == DM_OBJ_TREE ? 0 : -1, err);
	}
	free(r.ids);
	free(r.pruned);
	dm_buf_release(&w.obj);
	return rc;
}

/* ---- dependents ---- */

enum { UNKNOWN = 0, KEPT = 1, GONE = 2 };

struct deps {
	struct walk w;
	const struct dm_oidmap *reached;
	struct dm_oidmap *gone;
	struct dm_oidmap trees;  /* tree id -> UNKNOWN/KEPT/GONE */
	dm_oid *files, *commits; /* unreached ones */
	size_t nfiles, ncommits, afiles, acommits;
};

static int list_one(const dm_oid *id, int kind, uint64_t raw_len, void *ctx)
{
	struct deps *d = ctx;
	unsigned char unknown = UNKNOWN;

	(void)raw_len;
	if (dm_oidmap_get(d->reached, id))
		return 0;
	if (kind == DM_OBJ_TREE) {
		dm_oidmap_put(&d->trees, id, &unknown);
	} else if (kind == DM_OBJ_FILE) {
		if (d->nfiles == d->afiles) {
			d->afiles = d->afiles ? d->afiles * 2 : 64;
			d->files = dm_xrealloc(d->files, d->afiles * sizeof(*d->files));
		}
		d->files[d->nfiles++] = *id;
	} else if (kind == DM_OBJ_COMMIT) {
		if (d->ncommits == d->acommits) {
			d->acommits = d->acommits ? d->acommits * 2 : 64;
			d->commits = dm_xrealloc(d->commits, d->acommits * sizeof(*d->commits));
		}
		d->commits[d->ncommits++] = *id;
	}
	return 0;
}

/* 1 when the object named is gone. */
static int names_gone(void *ctx, const struct dm_obj_ref *ref)
{
	const struct deps *d = ctx;

	return dm_oidmap_get(d->gone, ref->id) != NULL;
}

static int tree_gone(struct deps *d, const dm_oid *id, int depth, bool *gone, struct dm_err *err);

/* The tree whose entries are being decided on. */
struct subtree {
	struct deps *d;
	int depth;
	bool *gone;
	struct dm_err *err;
};

/* 1 when the entry named is gone (a subtree: decided first). */
static int entry_gone(void *ctx, const struct dm_obj_ref *ref)
{
	struct subtree *t = ctx;
	int rc;

	if (ref->kind != DM_OBJ_TREE)
		return names_gone(t->d, ref);
	rc = tree_gone(t->d, ref->id, t->depth + 1, t->gone, t->err);
	return rc ? rc : *t->gone;
}

/* Whether unreached tree id (in d->trees) names something gone. */
static int tree_gone(struct deps *d, const dm_oid *id, int depth, bool *gone, struct dm_err *err)
{
	unsigned char *state = dm_oidmap_get(&d->trees, id), v;
	struct subtree t = {d, depth, gone, err};
	int rc;

	*gone = dm_oidmap_get(d->gone, id) != NULL;
	if (*gone || !state) /* gone already, or reached, or not in the store */
		return 0;
	if (*state != UNKNOWN) {
		*gone = *state == GONE;
		return 0;
	}
	if (depth > DM_TREE_MAX_DEPTH)
		return dm_err_set(err, DM_ECORRUPT, "trees nest more than %d deep",
				  DM_TREE_MAX_DEPTH);
	rc = load(&d->w, id, DM_OBJ_TREE, err);
	if (rc <= 0)
		return rc;
	rc = dm_object_refs(DM_OBJ_TREE, d->w.obj.data, d->w.obj.len, entry_gone, &t, err);
	if (rc < 0)
		return rc;
	*gone = rc == 1;
	v = *gone ? GONE : KEPT;
	dm_oidmap_put(&d->trees, id, &v); /* the earlier pointer may have moved */
	if (*gone)
		dm_oidmap_put(d->gone, id, NULL);
	return 0;
}

/* Adds the unreached file or commit id to gone when it names something
 * gone; 0 or an error. */
static int decide(struct deps *d, const dm_oid *id, int kind, struct dm_err *err)
{
	int rc = load(&d->w, id, kind, err);

	if (rc <= 0)
		return rc;
	rc = dm_object_refs(kind, d->w.obj.data, d->w.obj.len, names_gone, d, err);
	if (rc == 1) {
		dm_oidmap_put(d->gone, id, NULL);
		rc = 0;
	}
	return rc;
}

int dm_store_add_dependents(struct dm_store *s, const struct dm_oidmap *reached,
			    struct dm_oidmap *gone, struct dm_err *err)
{
	const dm_oid *id;
	void *val;
	dm_oid *tree_ids = NULL;
	size_t ntrees = 0, it = 0;
	struct deps d;
	int rc;

	memset(&d, 0, sizeof(d));
	d.w.s = s;
	d.reached = reached;
	d.gone = gone;
	dm_oidmap_init(&d.trees, 1);
	dm_buf_init(&d.w.obj, DM_OBJ_MAX_SIZE);
	rc = dm_store_foreach(s, list_one, &d, err);
	/* files first: trees decide on them */
	for (size_t i = 0; !rc && i < d.nfiles; i++)
		rc = decide(&d, &d.files[i], DM_OBJ_FILE, err);
	if (!rc) {
		tree_ids = dm_xmalloc((d.trees.count + 1) * sizeof(*tree_ids));
		while (dm_oidmap_next(&d.trees, &it, &id, &val))
			tree_ids[ntrees++] = *id;
	}
	for (size_t i = 0; !rc && i < ntrees; i++) {
		bool g;

		rc = tree_gone(&d, &tree_ids[i], 0, &g, err);
	}
	for (size_t i = 0; !rc && i < d.ncommits; i++)
		rc = decide(&d, &d.commits[i], DM_OBJ_COMMIT, err);
	free(tree_ids);
	free(d.files);
	free(d.commits);
	dm_oidmap_release(&d.trees);
	dm_buf_release(&d.w.obj);
	return rc;
}

/* ---- what a dot's history holds ---- */

static void note_chunk(void *ctx, const dm_oid *id)
{
	dm_oidmap_put(ctx, id, NULL);
}

int dm_store_dot_bytes(struct dm_store *s, const char *dot_id, uint64_t *out, struct dm_err *err)
{
	struct dm_oidmap seen, chunks;
	char **ids = NULL;
	dm_oid *roots = NULL;
	size_t n = 0, nroots = 0, it = 0;
	const dm_oid *id;
	void *val;
	int rc = dm_store_commit_find(s, dot_id, "", SIZE_MAX, &ids, &n, err);

	*out = 0;
	if (rc)
		return rc;
	roots = dm_xmalloc((n + 1) * sizeof(*roots));
	for (size_t i = 0; i < n; i++) {
		unsigned flags = 0;

		if (!dm_store_commit_info(s, dot_id, ids[i], &roots[nroots], &flags, NULL) &&
		    !(flags & DM_COMMIT_PRUNED))
			nroots++;
	}
	dm_oidmap_init(&seen, 0);
	dm_oidmap_init(&chunks, 0);
	rc = dm_store_mark_live(s, false, roots, nroots, &seen, note_chunk, &chunks, err);
	while (!rc && dm_oidmap_next(&chunks, &it, &id, &val)) {
		uint64_t len = 0;
		int kind;

		if (!dm_store_stat(s, id, &kind, &len, NULL))
			*out += len;
	}
	dm_oidmap_release(&seen);
	dm_oidmap_release(&chunks);
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	free(roots);
	return rc;
}
