/*
 * staging.c - dm_store_tree_unstage: the chunks of a tree that were
 * received into a dot's staging packs become bytes of the frozen copy of
 * that tree the engine made (a read-only snapshot), so that the packs can
 * go (store.h, "Staging").
 *
 * Invariants: a chunk moves only when the file at its path under dir holds
 * its exact bytes (dm_store_unstage hashes them), so a copy that differs
 * from the tree costs only the move; names from a tree are checked before
 * they go into a path; nothing outside the store's index is written.
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

static int unstage_file(struct walk *w, const dm_oid *id, struct dm_err *err)
{
	struct dm_file f;
	int rc = load(w, id, DM_OBJ_FILE, err);

	if (!rc)
		rc = dm_file_decode(&f, w->obj.data, w->obj.len, err);
	if (rc)
		return rc;
	w->st->files++;
	for (size_t i = 0; i < f.n && rc >= 0; i++) {
		rc = dm_store_unstage(w->s, w->dot, &f.ext[i].id, (const char *)w->path.data,
				      f.ext[i].offset, f.ext[i].len, err);
		if (rc == 1) {
			w->st->chunks++;
			w->st->bytes += f.ext[i].len;
		}
	}
	dm_file_release(&f);
	return rc < 0 ? rc : 0;
}

static int unstage_tree(struct walk *w, const dm_oid *id, int depth, struct dm_err *err)
{
	struct dm_tree t;
	int rc;

	if (depth >= DM_TREE_MAX_DEPTH)
		return dm_err_set(err, DM_EUNSUPPORTED, "'%s' nests more than %d deep",
				  (const char *)w->path.data, DM_TREE_MAX_DEPTH);
	rc = load(w, id, DM_OBJ_TREE, err);
	if (!rc)
		rc = dm_tree_decode(&t, w->obj.data, w->obj.len, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < t.n && !rc; i++) {
		const struct dm_tree_entry *e = &t.e[i];
		size_t old = w->path.len;

		if (e->type == DM_ENTRY_SYMLINK)
			continue;
		rc = dm_tree_name_check(e->name, strlen(e->name), err);
		if (rc)
			break;
		if (dm_buf_addc(&w->path, '/') || dm_buf_adds(&w->path, e->name)) {
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
			break;
		}
		if (e->type == DM_ENTRY_FILE)
			rc = unstage_file(w, &e->id, err);
		else if (e->type == DM_ENTRY_DIR)
			rc = unstage_tree(w, &e->id, depth + 1, err);
		w->path.len = old;
		w->path.data[old] = '\0';
	}
	dm_tree_release(&t);
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
