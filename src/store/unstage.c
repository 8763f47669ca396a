/*
 * unstage.c - dm_store_tree_unstage: the chunks of a tree that were
 * received into a dot's staging packs (staging.c) become bytes of the
 * frozen copy of that tree the engine made (a read-only snapshot), so that
 * the packs can go (store.h, "Staging").
 *
 * Invariants: a chunk moves only when the file at its path under dir holds
 * its exact bytes (dm_store_unstage hashes them), so a copy that differs
 * from the tree costs only the move; names from a tree are checked before
 * they go into a path; nothing outside the store's index is written.
 * What a tree and a file name comes from dm_object_each_ref (object.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/object.h"
#include "store/store.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

struct walk {
	struct dm_store *s;
	const char *dot;
	struct dm_buf path; /* dir/... of the current entry */
	struct dm_buf obj;
	struct dm_store_unstage_stats *st;
};

/* The object whose references are being followed. */
struct visit {
	struct walk *w;
	int depth; /* a tree's */
	struct dm_err *err;
};

static int load(struct walk *w, const dm_oid *id, int want, struct dm_err *err)
{
	char hex[DM_OID_HEXSZ + 1];
	int kind = 0, rc;

	dm_buf_reset(&w->obj);
	rc = dm_store_get(w->s, id, &w->obj, &kind, err);
	if (!rc && kind != want) {
		dm_oid_hex(hex, id);
		rc = dm_err_set(err, DM_ECORRUPT, "object %s is a %s, not a %s", hex,
				dm_obj_kind_name(kind), dm_obj_kind_name(want));
	}
	return rc;
}

/* One chunk of the file at w->path: its bytes there become its home. */
static int unstage_chunk(void *ctx, const struct dm_obj_ref *ref)
{
	struct visit *v = ctx;
	struct walk *w = v->w;
	int rc = dm_store_unstage(w->s, w->dot, ref->id, (const char *)w->path.data,
				  ref->ext->offset, ref->len, v->err);

	if (rc == 1) {
		w->st->chunks++;
		w->st->bytes += ref->len;
	}
	return rc < 0 ? rc : 0;
}

static int unstage_file(struct walk *w, const dm_oid *id, struct dm_err *err)
{
	struct visit v = {w, 0, err};
	struct dm_object f;
	int rc = load(w, id, DM_OBJ_FILE, err);

	if (!rc)
		rc = dm_object_decode(&f, DM_OBJ_FILE, w->obj.data, w->obj.len, err);
	if (rc)
		return rc;
	w->st->files++;
	rc = dm_object_each_ref(&f, unstage_chunk, &v);
	dm_object_release(&f);
	return rc;
}

static int unstage_tree(struct walk *w, const dm_oid *id, int depth, struct dm_err *err);

/* One file or subtree of the tree at w->path, at w->path/name. */
static int unstage_entry(void *ctx, const struct dm_obj_ref *ref)
{
	struct visit *v = ctx;
	struct walk *w = v->w;
	const char *name = ref->entry->name;
	size_t old = w->path.len;
	int rc = dm_tree_name_check(name, strlen(name), v->err);

	if (rc)
		return rc;
	if (dm_buf_addc(&w->path, '/') || dm_buf_adds(&w->path, name))
		return dm_err_set(v->err, DM_ENOMEM, "out of memory");
	if (ref->kind == DM_OBJ_FILE)
		rc = unstage_file(w, ref->id, v->err);
	else
		rc = unstage_tree(w, ref->id, v->depth + 1, v->err);
	w->path.len = old;
	w->path.data[old] = '\0';
	return rc;
}

static int unstage_tree(struct walk *w, const dm_oid *id, int depth, struct dm_err *err)
{
	struct visit v = {w, depth, err};
	int rc;

	if (depth >= DM_TREE_MAX_DEPTH)
		return dm_err_set(err, DM_EUNSUPPORTED, "'%s' nests more than %d deep",
				  (const char *)w->path.data, DM_TREE_MAX_DEPTH);
	rc = load(w, id, DM_OBJ_TREE, err);
	if (!rc)
		rc = dm_object_refs(DM_OBJ_TREE, w->obj.data, w->obj.len, unstage_entry, &v, err);
	return rc;
}

int dm_store_tree_unstage(struct dm_store *s, const char *dot_id, const dm_oid *tree,
			  const char *dir, struct dm_store_unstage_stats *out, struct dm_err *err)
{
	struct dm_store_unstage_stats local;
	struct walk w;
	int rc;

	if (!out)
		out = &local;
	memset(out, 0, sizeof(*out));
	if (!dir || dir[0] != '/')
		return dm_err_set(err, DM_EINVAL, "unstage needs an absolute directory, not '%s'",
				  dir ? dir : "");
	memset(&w, 0, sizeof(w));
	w.s = s;
	w.dot = dot_id;
	w.st = out;
	dm_buf_init(&w.path, 0);
	dm_buf_init(&w.obj, DM_OBJ_MAX_SIZE);
	rc = dm_buf_adds(&w.path, dir) ? dm_err_set(err, DM_ENOMEM, "out of memory") : 0;
	while (!rc && w.path.len > 1 && w.path.data[w.path.len - 1] == '/')
		w.path.data[--w.path.len] = '\0';
	if (!rc)
		rc = unstage_tree(&w, tree, 0, err);
	if (!rc)
		rc = dm_store_flush(s, err);
	dm_buf_release(&w.path);
	dm_buf_release(&w.obj);
	return rc;
}
