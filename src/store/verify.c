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
#include "store/oidmap.h"
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
	struct dm_oidmap pruned; /* commit objects whose trees nothing keeps */
};

static void problem(struct verify_ctx *v, const struct dm_err *e)
{
	if (v->report->bad++ == 0 && v->err)
		*v->err = *e;
	dm_warn("verify: %s", e->msg);
}

/* The object being checked (its bytes in v->buf) and its id. */
struct from {
	struct verify_ctx *v;
	const dm_oid *id;
};

/* Each object named must be stored as the kind (and a chunk the length)
 * it is named with. */
static int want(void *ctx, const struct dm_obj_ref *ref)
{
	struct from *f = ctx;
	struct verify_ctx *v = f->v;
	struct dm_err e;
	char a[DM_OID_HEXSZ + 1], b[DM_OID_HEXSZ + 1];
	uint64_t got_len;
	int got_kind;
	int rc = dm_store_stat(v->s, ref->id, &got_kind, &got_len, &e);

	if (rc == 0 && got_kind == ref->kind && (ref->kind != DM_OBJ_CHUNK || got_len == ref->len))
		return 0;
	dm_oid_hex(a, f->id);
	dm_oid_hex(b, ref->id);
	if (rc == DM_ENOTFOUND)
		dm_err_set(&e, DM_ECORRUPT, "%s %s refers to missing %s %s",
			   dm_obj_kind_name(dm_obj_peek_kind(v->buf.data, v->buf.len)), a,
			   dm_obj_kind_name(ref->kind), b);
	else if (rc == 0)
		dm_err_set(&e, DM_ECORRUPT,
			   "object %s refers to %s as a %s of %llu bytes, "
			   "but it is a %s of %llu bytes",
			   a, b, dm_obj_kind_name(ref->kind), (unsigned long long)ref->len,
			   dm_obj_kind_name(got_kind), (unsigned long long)got_len);
	problem(v, &e);
	return 0;
}

static void check_refs(struct verify_ctx *v, const dm_oid *id, int kind)
{
	struct from f = {v, id};
	struct dm_err e;

	if (dm_object_refs(kind, v->buf.data, v->buf.len, want, &f, &e)) {
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
	/* a pruned commit keeps its record; its tree may be gone */
	if (kind != DM_OBJ_COMMIT || !dm_oidmap_get(&v->pruned, id))
		check_refs(v, id, kind);
	return 0;
}

static int note_pruned(const char *dot_id, const char *commit_id, const dm_oid *oid,
		       unsigned flags, void *ctx)
{
	struct verify_ctx *v = ctx;

	(void)dot_id;
	(void)commit_id;
	if (flags & DM_COMMIT_PRUNED)
		dm_oidmap_put(&v->pruned, oid, NULL);
	return 0;
}

int dm_store_verify(struct dm_store *s, struct dm_verify_report *out, struct dm_err *err)
{
	struct verify_ctx v = {s, out, err, DM_BUF_INIT, 0, {0}};
	int rc;

	memset(out, 0, sizeof(*out));
	dm_err_clear(err);
	dm_oidmap_init(&v.pruned, 0);
	rc = dm_store_commit_foreach(s, note_pruned, &v, err);
	if (!rc)
		rc = dm_store_foreach(s, verify_one, &v, err);
	dm_buf_release(&v.buf);
	dm_oidmap_release(&v.pruned);
	if (rc)
		return rc;
	if (out->bad)
		return DM_ECORRUPT;
	return 0;
}
