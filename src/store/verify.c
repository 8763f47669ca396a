/*
 * verify.c - proving a store sound: every object rehashed, every reference
 * checked.
 *
 * For each indexed object: its bytes are read back and must hash to its id
 * (dm_store_get checks that); a file, tree or commit must decode, be of the
 * kind the index says, and every object it names must be present and of the
 * right kind (a file's chunks also of the right length). Problems are
 * counted, and the first is described; the walk goes on past them so one
 * report shows the damage.
 */
#include "store/object.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"

#include <string.h>

#include "util/banned.h"

struct verify_ctx {
	struct dm_store *s;
	struct dm_verify_report *report;
	struct dm_err *err;   /* first problem */
	struct dm_buf buf;
	int hard;             /* an error that stops the walk (I/O, memory) */
};

static void problem(struct verify_ctx *v, const struct dm_err *e)
{
	if (v->report->bad++ == 0 && v->err)
		*v->err = *e;
	dm_warn("verify: %s", e->msg);
}

static void want(struct verify_ctx *v, const dm_oid *from, const dm_oid *id, int kind,
		 uint64_t len, bool check_len)
{
	struct dm_err e;
	char a[DM_OID_HEXSZ + 1], b[DM_OID_HEXSZ + 1];
	uint64_t got_len;
	int got_kind;
	int rc = dm_store_stat(v->s, id, &got_kind, &got_len, &e);

	if (rc == 0 && got_kind == kind && (!check_len || got_len == len))
		return;
	dm_oid_hex(a, from);
	dm_oid_hex(b, id);
	if (rc == DM_ENOTFOUND)
		dm_err_set(&e, DM_ECORRUPT, "%s %s refers to missing %s %s",
			   dm_obj_kind_name(dm_obj_peek_kind(v->buf.data, v->buf.len)), a,
			   dm_obj_kind_name(kind), b);
	else if (rc == 0)
		dm_err_set(&e, DM_ECORRUPT, "object %s refers to %s as a %s of %llu bytes, "
			   "but it is a %s of %llu bytes", a, b, dm_obj_kind_name(kind),
			   (unsigned long long)len, dm_obj_kind_name(got_kind),
			   (unsigned long long)got_len);
	problem(v, &e);
}

static void check_refs(struct verify_ctx *v, const dm_oid *id, int kind)
{
	struct dm_err e;
	int rc = 0;

	if (kind == DM_OBJ_FILE) {
		struct dm_file f;

		rc = dm_file_decode(&f, v->buf.data, v->buf.len, &e);
		for (size_t i = 0; !rc && i < f.n; i++)
			want(v, id, &f.ext[i].id, DM_OBJ_CHUNK, f.ext[i].len, true);
		if (!rc)
			dm_file_release(&f);
	} else if (kind == DM_OBJ_TREE) {
		struct dm_tree t;

		rc = dm_tree_decode(&t, v->buf.data, v->buf.len, &e);
		for (size_t i = 0; !rc && i < t.n; i++) {
			if (t.e[i].type == DM_ENTRY_FILE)
				want(v, id, &t.e[i].id, DM_OBJ_FILE, 0, false);
			else if (t.e[i].type == DM_ENTRY_DIR)
				want(v, id, &t.e[i].id, DM_OBJ_TREE, 0, false);
		}
		if (!rc)
			dm_tree_release(&t);
	} else if (kind == DM_OBJ_COMMIT) {
		struct dm_commit c;

		rc = dm_commit_decode(&c, v->buf.data, v->buf.len, &e);
		if (!rc) {
			want(v, id, &c.tree, DM_OBJ_TREE, 0, false);
			dm_commit_release(&c);
		}
	}
	if (rc) {
		char hex[DM_OID_HEXSZ + 1];

		dm_oid_hex(hex, id);
		dm_err_prefix(&e, "object %s", hex);
		problem(v, &e);
	}
}

static int verify_one(const dm_oid *id, int kind, uint64_t raw_len, void *ctx)
{
	struct verify_ctx *v = ctx;
	struct dm_err e;
	int got_kind = 0;
	int rc;

	dm_buf_reset(&v->buf);
	v->report->objects++;
	rc = dm_store_get(v->s, id, &v->buf, &got_kind, &e);
	if (rc == DM_ENOMEM) {
		v->hard = rc;
		if (v->err)
			*v->err = e;
		return rc;
	}
	if (rc) {
		problem(v, &e);
		return 0;
	}
	v->report->bytes += v->buf.len;
	if (kind != DM_OBJ_CHUNK && dm_obj_peek_kind(v->buf.data, v->buf.len) != kind) {
		char hex[DM_OID_HEXSZ + 1];

		dm_oid_hex(hex, id);
		dm_err_set(&e, DM_ECORRUPT, "object %s is indexed as a %s but is not one", hex,
			   dm_obj_kind_name(kind));
		problem(v, &e);
		return 0;
	}
	check_refs(v, id, kind);
	return 0;
}

int dm_store_verify(struct dm_store *s, struct dm_verify_report *out, struct dm_err *err)
{
	struct verify_ctx v = {s, out, err, DM_BUF_INIT, 0};
	int rc;

	memset(out, 0, sizeof(*out));
	dm_err_clear(err);
	rc = dm_store_foreach(s, verify_one, &v, err);
	dm_buf_release(&v.buf);
	if (rc)
		return rc;
	if (out->bad)
		return DM_ECORRUPT;
	return 0;
}
