/*
 * index.c - the store's LMDB index: object locations, pack lengths, meta.
 *
 * Invariants: the environment is opened with MDB_NOTLS, so read
 * transactions are not tied to threads and any thread may read; LMDB
 * serialises writers. A location value is decoded only after its length
 * and fields are checked: the index is on disk and not trusted.
 */
#include "store/index.h"
#include "store/object.h"
#include "store/pack.h"
#include "util/err.h"
#include "util/log.h"
#include "util/fsutil.h"

#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define LOC_LEN 28
#define INDEX_FORMAT 1 /* the meta entry "format" (check_format) */
#define MAP_SIZE (64ull << 30) /* address space only; the file grows as used */

struct dm_index {
	MDB_env *env;
	MDB_dbi objects, packs, meta, commits, staged;
};

/* LMDB takes keys through a non-const pointer it never writes through. */
static MDB_val mval(const void *data, size_t len)
{
	union {
		const void *c;
		void *m;
	} u = {data};
	MDB_val v = {len, u.m};

	return v;
}

static int lmdb_err(struct dm_err *err, int rc, const char *what)
{
	return dm_err_set(err, rc == MDB_MAP_FULL ? DM_ETOOBIG : DM_EIO, "store index: %s: %s",
			  what, mdb_strerror(rc));
}

/*
 * The index's format, meta entry "format" (one byte): INDEX_FORMAT for
 * an index this version made; an index made before formats were recorded
 * has none and is stamped now (its layout is format 1's; logged once); a
 * newer format is refused, so that an older dm never misreads it.
 */
static int check_format(struct dm_index *idx, MDB_txn *txn, const char *dir, struct dm_err *err)
{
	MDB_val k = mval("format", 6), v;
	unsigned char f = INDEX_FORMAT;
	int rc = mdb_get(txn, idx->meta, &k, &v);

	if (rc == MDB_NOTFOUND) {
		MDB_val objects_k, objects_v;
		MDB_cursor *cur = NULL;
		bool had_data = false;

		if (!mdb_cursor_open(txn, idx->objects, &cur)) {
			had_data = !mdb_cursor_get(cur, &objects_k, &objects_v, MDB_FIRST);
			mdb_cursor_close(cur);
		}
		v = mval(&f, 1);
		if ((rc = mdb_put(txn, idx->meta, &k, &v, 0)))
			return lmdb_err(err, rc, "cannot record the index's format");
		if (had_data)
			dm_info("store index '%s': recorded its format (%u), which it had not yet",
				dir, (unsigned)f);
		return 0;
	}
	if (rc)
		return lmdb_err(err, rc, "cannot read the index's format");
	if (v.mv_size != 1 || ((const unsigned char *)v.mv_data)[0] > INDEX_FORMAT)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "store index '%s' has format %u, newer than this dm reads (%u): "
				  "run a newer dm",
				  dir, v.mv_size == 1 ? ((const unsigned char *)v.mv_data)[0] : 0,
				  (unsigned)INDEX_FORMAT);
	return 0;
}

int dm_index_open(struct dm_index **out, const char *dir, bool sync, struct dm_err *err)
{
	struct dm_index *idx = dm_xcalloc(1, sizeof(*idx));
	MDB_txn *txn = NULL;
	int rc;

	rc = dm_mkdir_p(dir, 0755, err);
	if (rc)
		goto fail;
	if ((rc = mdb_env_create(&idx->env)) || (rc = mdb_env_set_maxdbs(idx->env, 8)) ||
	    (rc = mdb_env_set_mapsize(idx->env, MAP_SIZE)) ||
	    (rc = mdb_env_open(idx->env, dir, MDB_NOTLS | (sync ? 0 : MDB_NOSYNC), 0644))) {
		rc = lmdb_err(err, rc, "cannot open");
		goto fail;
	}
	if ((rc = mdb_txn_begin(idx->env, NULL, 0, &txn)) ||
	    (rc = mdb_dbi_open(txn, "objects", MDB_CREATE, &idx->objects)) ||
	    (rc = mdb_dbi_open(txn, "packs", MDB_CREATE, &idx->packs)) ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &idx->meta)) ||
	    (rc = mdb_dbi_open(txn, "commits", MDB_CREATE, &idx->commits)) ||
	    (rc = mdb_dbi_open(txn, "staged", MDB_CREATE, &idx->staged))) {
		if (txn)
			mdb_txn_abort(txn);
		rc = lmdb_err(err, rc, "cannot open databases");
		goto fail;
	}
	rc = check_format(idx, txn, dir, err);
	if (rc) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn))) {
		rc = lmdb_err(err, rc, "cannot open databases");
		goto fail;
	}
	*out = idx;
	return 0;
fail:
	dm_index_free(idx);
	return rc;
}

void dm_index_free(struct dm_index *idx)
{
	if (!idx)
		return;
	if (idx->env)
		mdb_env_close(idx->env);
	free(idx);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* kind, where, flags, zero, raw_len, stored_len, pack, offset: 28 bytes,
 * then for an external location the path. */
static void encode_loc(unsigned char out[LOC_LEN], const struct dm_loc *loc)
{
	out[0] = loc->kind;
	out[1] = loc->where;
	out[2] = loc->flags;
	out[3] = 0;
	put32(out + 4, loc->raw_len);
	put32(out + 8, loc->stored_len);
	put32(out + 12, loc->pack);
	put64(out + 16, loc->offset);
	put32(out + 24, 0);
}

static int decode_loc(struct dm_loc *out, const MDB_val *v, struct dm_err *err)
{
	const unsigned char *p = v->mv_data;

	if (v->mv_size < LOC_LEN)
		goto corrupt;
	out->kind = p[0];
	out->where = p[1];
	out->flags = p[2];
	out->raw_len = get32(p + 4);
	out->stored_len = get32(p + 8);
	out->pack = get32(p + 12);
	out->offset = get64(p + 16);
	if (out->kind < DM_OBJ_CHUNK || out->kind > DM_OBJ_COMMIT ||
	    out->raw_len > dm_pack_max_raw(out->kind))
		goto corrupt;
	if (out->where == DM_LOC_PACK && v->mv_size == LOC_LEN)
		return 0;
	if (out->where == DM_LOC_EXTERNAL && v->mv_size > LOC_LEN &&
	    !memchr(p + LOC_LEN, '\0', v->mv_size - LOC_LEN) && v->mv_size - LOC_LEN < 4096)
		return 0;
corrupt:
	return dm_err_set(err, DM_ECORRUPT, "store index: corrupt location entry");
}

int dm_index_get(struct dm_index *idx, const dm_oid *id, struct dm_loc *out,
		 struct dm_buf *path_out, struct dm_err *err)
{
	MDB_txn *txn = NULL;
	MDB_val k = mval(id->b, DM_OID_RAWSZ), v;
	int rc;

	rc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lmdb_err(err, rc, "cannot read");
	rc = mdb_get(txn, idx->objects, &k, &v);
	if (rc == MDB_NOTFOUND) {
		rc = DM_ENOTFOUND;
		goto done;
	}
	if (rc) {
		rc = lmdb_err(err, rc, "cannot read");
		goto done;
	}
	rc = decode_loc(out, &v, err);
	if (!rc && out->where == DM_LOC_EXTERNAL && path_out &&
	    dm_buf_add(path_out, (const char *)v.mv_data + LOC_LEN, v.mv_size - LOC_LEN))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
done:
	mdb_txn_abort(txn);
	return rc;
}

static void pack_key(unsigned char key[4], uint32_t pack)
{
	for (int b = 0; b < 4; b++)
		key[b] = (unsigned char)(pack >> (24 - 8 * b));
}

/* The start and end of a write transaction of several puts or deletes:
 * end_write commits txn when rc (an LMDB code) is 0, else aborts it and
 * reports rc as what failed. */
static int begin_write(struct dm_index *idx, MDB_txn **out, struct dm_err *err)
{
	int rc = mdb_txn_begin(idx->env, NULL, 0, out);

	return rc ? lmdb_err(err, rc, "cannot begin write") : 0;
}

static int end_write(MDB_txn *txn, int rc, const char *what, struct dm_err *err)
{
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_err(err, rc, what);
	}
	rc = mdb_txn_commit(txn);
	return rc ? lmdb_err(err, rc, "cannot commit") : 0;
}

int dm_index_commit(struct dm_index *idx, const struct dm_index_entry *entries, size_t n,
		    const struct dm_pack_len *lens, size_t nlens,
		    const struct dm_index_staged *staged, size_t nstaged, struct dm_err *err)
{
	MDB_txn *txn = NULL;
	int rc;

	rc = begin_write(idx, &txn, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		unsigned char val[LOC_LEN + 4096];
		const char *path = entries[i].path;
		size_t plen = path ? strlen(path) : 0;
		MDB_val k = mval(entries[i].id.b, DM_OID_RAWSZ), v = {LOC_LEN + plen, val};

		if (entries[i].loc.where == DM_LOC_EXTERNAL && (!plen || plen >= 4096 - 1)) {
			mdb_txn_abort(txn);
			return dm_err_set(err, DM_EINVAL, "bad external object path '%s'",
					  path ? path : "");
		}
		encode_loc(val, &entries[i].loc);
		if (entries[i].loc.where == DM_LOC_EXTERNAL)
			memcpy(val + LOC_LEN, path, plen);
		else
			v.mv_size = LOC_LEN;
		rc = mdb_put(txn, idx->objects, &k, &v, 0);
		if (rc)
			return end_write(txn, rc, "cannot write", err);
	}
	for (size_t i = 0; i < nlens; i++) {
		unsigned char key[4], val[8];
		MDB_val k = {4, key}, v = {8, val};

		pack_key(key, lens[i].pack);
		put64(val, lens[i].len);
		rc = mdb_put(txn, idx->packs, &k, &v, 0);
		if (rc)
			return end_write(txn, rc, "cannot write", err);
	}
	for (size_t i = 0; i < nstaged; i++) {
		unsigned char key[4];
		MDB_val k = {4, key}, v = mval(staged[i].dot, strlen(staged[i].dot));

		pack_key(key, staged[i].pack);
		rc = mdb_put(txn, idx->staged, &k, &v, 0);
		if (rc)
			return end_write(txn, rc, "cannot write", err);
	}
	return end_write(txn, 0, "cannot write", err);
}

/* Calls fn with each key and value of db in key order, all in one read
 * transaction; a non-zero return from fn stops the walk and is returned.
 * what is the message of an LMDB failure ("cannot read ..."). Every walk
 * of a whole database goes through here. */
typedef int (*entry_fn)(const MDB_val *k, const MDB_val *v, void *ctx, struct dm_err *err);

/* scan_db from the first key at or after start (NULL: from the first). */
static int scan_db_from(struct dm_index *idx, MDB_dbi dbi, const MDB_val *start, const char *what,
			entry_fn fn, void *ctx, struct dm_err *err)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc, op = start ? MDB_SET_RANGE : MDB_FIRST;

	if (start)
		k = *start;
	rc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &txn);
	if (!rc)
		rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc) {
		rc = lmdb_err(err, rc, what);
		goto done;
	}
	while ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) == 0) {
		op = MDB_NEXT;
		rc = fn(&k, &v, ctx, err);
		if (rc)
			goto done;
	}
	rc = rc == MDB_NOTFOUND ? 0 : lmdb_err(err, rc, what);
done:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

static int scan_db(struct dm_index *idx, MDB_dbi dbi, const char *what, entry_fn fn, void *ctx,
		   struct dm_err *err)
{
	return scan_db_from(idx, dbi, NULL, what, fn, ctx, err);
}

/* list (count items of size bytes in *cap slots) with room for one more:
 * the slots double, from first. */
static void *grow(void *list, size_t count, size_t *cap, size_t first, size_t size)
{
	if (count < *cap)
		return list;
	*cap = *cap ? *cap * 2 : first;
	return dm_xrealloc(list, *cap * size);
}

/* The pack number of a 4-byte packs or staged key (pack_key's inverse). */
static uint32_t pack_of_key(const MDB_val *k)
{
	const unsigned char *kp = k->mv_data;

	return (uint32_t)kp[0] << 24 | (uint32_t)kp[1] << 16 | (uint32_t)kp[2] << 8 | kp[3];
}

struct staged_ctx {
	struct dm_index_staged *list;
	size_t count, cap;
};

static int staged_one(const MDB_val *k, const MDB_val *v, void *p, struct dm_err *err)
{
	struct staged_ctx *c = p;

	if (k->mv_size != 4 || !v->mv_size || v->mv_size > DM_INDEX_DOT_MAX ||
	    memchr(v->mv_data, '\0', v->mv_size))
		return dm_err_set(err, DM_ECORRUPT, "store index: corrupt staging pack entry");
	c->list = grow(c->list, c->count, &c->cap, 16, sizeof(*c->list));
	c->list[c->count].pack = pack_of_key(k);
	memcpy(c->list[c->count].dot, v->mv_data, v->mv_size);
	c->list[c->count].dot[v->mv_size] = '\0';
	c->count++;
	return 0;
}

int dm_index_staged_list(struct dm_index *idx, struct dm_index_staged **out, size_t *n,
			 struct dm_err *err)
{
	struct staged_ctx c = {NULL, 0, 0};
	int rc;

	*out = NULL;
	*n = 0;
	rc = scan_db(idx, idx->staged, "cannot read the staging packs", staged_one, &c, err);
	if (rc) {
		free(c.list);
		return rc;
	}
	*out = c.list;
	*n = c.count;
	return 0;
}

int dm_index_drop_packs(struct dm_index *idx, const uint32_t *packs, size_t n, struct dm_err *err)
{
	MDB_txn *txn = NULL;
	int rc;

	if (!n)
		return 0;
	rc = begin_write(idx, &txn, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		unsigned char key[4];
		MDB_val k = {4, key};

		pack_key(key, packs[i]);
		rc = mdb_del(txn, idx->packs, &k, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return end_write(txn, rc, "cannot drop packs", err);
		rc = mdb_del(txn, idx->staged, &k, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return end_write(txn, rc, "cannot drop packs", err);
	}
	return end_write(txn, 0, "cannot drop packs", err);
}

struct lens_ctx {
	struct dm_pack_len *lens;
	size_t count, cap;
};

static int lens_one(const MDB_val *k, const MDB_val *v, void *p, struct dm_err *err)
{
	struct lens_ctx *c = p;

	if (k->mv_size != 4 || v->mv_size != 8)
		return dm_err_set(err, DM_ECORRUPT, "store index: corrupt pack list");
	c->lens = grow(c->lens, c->count, &c->cap, 16, sizeof(*c->lens));
	c->lens[c->count].pack = pack_of_key(k);
	c->lens[c->count].len = get64(v->mv_data);
	c->count++;
	return 0;
}

int dm_index_pack_lengths(struct dm_index *idx, struct dm_pack_len **out, size_t *n,
			  struct dm_err *err)
{
	struct lens_ctx c = {NULL, 0, 0};
	int rc = scan_db(idx, idx->packs, "cannot read pack list", lens_one, &c, err);

	if (rc) {
		free(c.lens);
		return rc;
	}
	*out = c.lens;
	*n = c.count;
	return 0;
}

int dm_index_meta_get(struct dm_index *idx, const char *name, struct dm_buf *out,
		      struct dm_err *err)
{
	MDB_txn *txn = NULL;
	MDB_val k = mval(name, strlen(name)), v;
	int rc;

	rc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lmdb_err(err, rc, "cannot read");
	rc = mdb_get(txn, idx->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		rc = DM_ENOTFOUND;
	else if (rc)
		rc = lmdb_err(err, rc, "cannot read");
	else if (v.mv_size > 4096 || dm_buf_add(out, v.mv_data, v.mv_size))
		rc = dm_err_set(err, DM_ECORRUPT, "store index: meta entry '%s' too large", name);
	mdb_txn_abort(txn);
	return rc;
}

int dm_index_meta_put(struct dm_index *idx, const char *name, const void *data, size_t len,
		      struct dm_err *err)
{
	MDB_txn *txn = NULL;
	MDB_val k = mval(name, strlen(name)), v = mval(data, len);
	int rc;

	rc = mdb_txn_begin(idx->env, NULL, 0, &txn);
	if (!rc)
		rc = mdb_put(txn, idx->meta, &k, &v, 0);
	if (!rc)
		rc = mdb_txn_commit(txn);
	else if (txn)
		mdb_txn_abort(txn);
	return rc ? lmdb_err(err, rc, "cannot write meta") : 0;
}

/* Calls fn for each object in id order with its location and, for an
 * external one, its path (not NUL-terminated; NULL otherwise). A non-zero
 * return from fn stops the walk and is returned. */
typedef int (*scan_fn)(const dm_oid *id, const struct dm_loc *loc, const char *path,
		       size_t path_len, void *ctx);

struct objects_ctx {
	scan_fn fn;
	void *ctx;
};

static int object_one(const MDB_val *k, const MDB_val *v, void *p, struct dm_err *err)
{
	struct objects_ctx *c = p;
	struct dm_loc loc;
	dm_oid id;
	int rc;

	if (k->mv_size != DM_OID_RAWSZ)
		return dm_err_set(err, DM_ECORRUPT, "store index: corrupt key");
	memcpy(id.b, k->mv_data, DM_OID_RAWSZ);
	rc = decode_loc(&loc, v, err);
	if (rc)
		return rc;
	if (loc.where == DM_LOC_EXTERNAL)
		return c->fn(&id, &loc, (const char *)v->mv_data + LOC_LEN, v->mv_size - LOC_LEN,
			     c->ctx);
	return c->fn(&id, &loc, NULL, 0, c->ctx);
}

static int scan_objects(struct dm_index *idx, scan_fn fn, void *ctx, struct dm_err *err)
{
	struct objects_ctx c = {fn, ctx};

	return scan_db(idx, idx->objects, "cannot read", object_one, &c, err);
}

struct each_ctx {
	dm_index_each_fn fn;
	void *ctx;
};

static int each_one(const dm_oid *id, const struct dm_loc *loc, const char *path,
		    size_t path_len, void *p)
{
	struct each_ctx *e = p;

	return e->fn(id, loc, e->ctx);
}

int dm_index_foreach(struct dm_index *idx, dm_index_each_fn fn, void *ctx, struct dm_err *err)
{
	struct each_ctx e = {fn, ctx};

	return scan_objects(idx, each_one, &e, err);
}

int dm_index_foreach_from(struct dm_index *idx, const dm_oid *start, dm_index_each_fn fn, void *ctx,
			  struct dm_err *err)
{
	struct each_ctx e = {fn, ctx};
	struct objects_ctx c = {each_one, &e};
	MDB_val k;

	if (start)
		k = mval(start->b, DM_OID_RAWSZ);
	return scan_db_from(idx, idx->objects, start ? &k : NULL, "cannot read", object_one, &c,
			    err);
}

int dm_index_count(struct dm_index *idx, uint64_t *out, struct dm_err *err)
{
	MDB_txn *txn = NULL;
	MDB_stat st;
	int rc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &txn);

	if (!rc)
		rc = mdb_stat(txn, idx->objects, &st);
	if (txn)
		mdb_txn_abort(txn);
	if (rc)
		return lmdb_err(err, rc, "cannot count objects");
	*out = st.ms_entries;
	return 0;
}

int dm_index_delete_if(struct dm_index *idx, const struct dm_index_entry *e, size_t n,
		       size_t *deleted, struct dm_err *err)
{
	MDB_txn *txn = NULL;
	size_t done = 0;
	int rc;

	if (deleted)
		*deleted = 0;
	if (!n)
		return 0;
	rc = begin_write(idx, &txn, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		MDB_val k = mval(e[i].id.b, DM_OID_RAWSZ), v;
		struct dm_loc loc;
		struct dm_err derr;

		rc = mdb_get(txn, idx->objects, &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc)
			return end_write(txn, rc, "cannot delete", err);
		if (decode_loc(&loc, &v, &derr) || loc.where != e[i].loc.where ||
		    loc.pack != e[i].loc.pack || loc.offset != e[i].loc.offset)
			continue; /* moved meanwhile: not the entry the caller saw */
		rc = mdb_del(txn, idx->objects, &k, NULL);
		if (rc)
			return end_write(txn, rc, "cannot delete", err);
		done++;
	}
	rc = end_write(txn, 0, "cannot delete", err);
	if (!rc && deleted)
		*deleted = done;
	return rc;
}

/* "dot\0commit" as an LMDB key; both parts are at most 128 bytes. */
static int commit_key(char *out, size_t size, size_t *len, const char *dot_id,
		      const char *commit_id, struct dm_err *err)
{
	size_t a = strlen(dot_id), b = strlen(commit_id);

	*len = 0;
	if (a == 0 || a > 128 || b > 128 || a + b + 1 > size)
		return dm_err_set(err, DM_EINVAL, "bad dot or commit id");
	memcpy(out, dot_id, a);
	out[a] = '\0';
	memcpy(out + a + 1, commit_id, b);
	*len = a + 1 + b;
	return 0;
}

/* A commit entry's value: the commit object's id, then (when any is set)
 * one byte of DM_INDEX_COMMIT_* flags. */
static int decode_commit(const MDB_val *v, dm_oid *oid, unsigned *flags, struct dm_err *err)
{
	if (v->mv_size != DM_OID_RAWSZ && v->mv_size != DM_OID_RAWSZ + 1)
		return dm_err_set(err, DM_ECORRUPT, "store index: corrupt commit entry");
	if (oid)
		memcpy(oid->b, v->mv_data, DM_OID_RAWSZ);
	if (flags)
		*flags = v->mv_size > DM_OID_RAWSZ ? ((const unsigned char *)v->mv_data)[DM_OID_RAWSZ]
						   : 0;
	return 0;
}

int dm_index_commit_put(struct dm_index *idx, const char *dot_id, const char *commit_id,
			const dm_oid *oid, struct dm_err *err)
{
	char key[260];
	size_t klen;
	MDB_txn *txn = NULL;
	MDB_val k, v = mval(oid->b, DM_OID_RAWSZ);
	int rc = commit_key(key, sizeof(key), &klen, dot_id, commit_id, err);

	if (rc)
		return rc;
	k = mval(key, klen);
	rc = mdb_txn_begin(idx->env, NULL, 0, &txn);
	if (!rc)
		rc = mdb_put(txn, idx->commits, &k, &v, 0);
	if (!rc)
		rc = mdb_txn_commit(txn);
	else if (txn)
		mdb_txn_abort(txn);
	return rc ? lmdb_err(err, rc, "cannot record commit") : 0;
}

int dm_index_commit_get(struct dm_index *idx, const char *dot_id, const char *commit_id,
			dm_oid *out, unsigned *flags, struct dm_err *err)
{
	char key[260];
	size_t klen;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	int rc = commit_key(key, sizeof(key), &klen, dot_id, commit_id, err);

	if (rc)
		return rc;
	k = mval(key, klen);
	rc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lmdb_err(err, rc, "cannot read");
	rc = mdb_get(txn, idx->commits, &k, &v);
	if (rc == MDB_NOTFOUND)
		rc = dm_err_set(err, DM_ENOTFOUND, "no commit '%s'", commit_id);
	else if (rc)
		rc = lmdb_err(err, rc, "cannot read");
	else
		rc = decode_commit(&v, out, flags, err);
	mdb_txn_abort(txn);
	return rc;
}

int dm_index_commit_set_flags(struct dm_index *idx, const char *dot_id,
			      const char *const *commits, size_t n, unsigned flags,
			      size_t *changed, struct dm_err *err)
{
	MDB_txn *txn = NULL;
	size_t done = 0;
	int rc;

	if (changed)
		*changed = 0;
	if (!n)
		return 0;
	rc = begin_write(idx, &txn, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		unsigned char val[DM_OID_RAWSZ + 1];
		char key[260];
		size_t klen;
		unsigned old = 0;
		MDB_val k, v;
		dm_oid oid;

		rc = commit_key(key, sizeof(key), &klen, dot_id, commits[i], err);
		if (rc) {
			mdb_txn_abort(txn);
			return rc;
		}
		k = mval(key, klen);
		rc = mdb_get(txn, idx->commits, &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc)
			return end_write(txn, rc, "cannot mark commits", err);
		rc = decode_commit(&v, &oid, &old, err);
		if (rc) {
			mdb_txn_abort(txn);
			return rc;
		}
		if ((old | flags) == old)
			continue;
		memcpy(val, oid.b, DM_OID_RAWSZ);
		val[DM_OID_RAWSZ] = (unsigned char)(old | flags);
		v = mval(val, sizeof(val));
		rc = mdb_put(txn, idx->commits, &k, &v, 0);
		if (rc)
			return end_write(txn, rc, "cannot mark commits", err);
		done++;
	}
	rc = end_write(txn, 0, "cannot mark commits", err);
	if (!rc && changed)
		*changed = done;
	return rc;
}

/* Walks the commit keys of dot_id starting with prefix; fn gets the commit
 * id part (not NUL-terminated) and its length, and returns 0 to go on, 1 to
 * stop, or an LMDB error code. */
static int commit_walk(struct dm_index *idx, MDB_txn *txn, const char *dot_id, const char *prefix,
		       int (*fn)(MDB_cursor *cur, const char *id, size_t len, void *ctx), void *ctx,
		       struct dm_err *err)
{
	char key[260];
	size_t klen, dlen = strlen(dot_id) + 1;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	MDB_cursor_op op = MDB_SET_RANGE;
	int rc = commit_key(key, sizeof(key), &klen, dot_id, prefix, err), mrc;

	if (rc)
		return rc;
	mrc = mdb_cursor_open(txn, idx->commits, &cur);
	if (mrc)
		return lmdb_err(err, mrc, "cannot read");
	k = mval(key, klen);
	while ((mrc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (k.mv_size < klen || memcmp(k.mv_data, key, klen) != 0)
			break;
		mrc = fn(cur, (const char *)k.mv_data + dlen, k.mv_size - dlen, ctx);
		if (mrc)
			break;
	}
	mdb_cursor_close(cur);
	if (mrc == 0 || mrc == 1 || mrc == MDB_NOTFOUND)
		return 0;
	return lmdb_err(err, mrc, "cannot walk commits");
}

struct find_ctx {
	char **ids;
	size_t n, max, cap;
};

static int find_one(MDB_cursor *cur, const char *id, size_t len, void *p)
{
	struct find_ctx *f = p;

	if (f->n == f->max)
		return 1; /* stop: enough */
	if (f->n + 1 >= f->cap) {
		f->cap *= 2;
		f->ids = dm_xrealloc(f->ids, f->cap * sizeof(char *));
	}
	f->ids[f->n++] = dm_xstrndup(id, len);
	f->ids[f->n] = NULL;
	return 0;
}

int dm_index_commit_find(struct dm_index *idx, const char *dot_id, const char *prefix,
			 size_t max, char ***out, size_t *n, struct dm_err *err)
{
	/* grown as found: max may be SIZE_MAX (all of them) */
	struct find_ctx f = {dm_xcalloc(16, sizeof(char *)), 0, max, 16};
	MDB_txn *txn = NULL;
	int rc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &txn);

	if (rc) {
		free(f.ids);
		return lmdb_err(err, rc, "cannot read");
	}
	rc = commit_walk(idx, txn, dot_id, prefix, find_one, &f, err);
	mdb_txn_abort(txn);
	if (rc) {
		for (size_t i = 0; i < f.n; i++)
			free(f.ids[i]);
		free(f.ids);
		return rc;
	}
	*out = f.ids;
	*n = f.n;
	return 0;
}

static int delete_one(MDB_cursor *cur, const char *id, size_t len, void *p)
{
	return mdb_cursor_del(cur, 0);
}

int dm_index_commit_delete_dot(struct dm_index *idx, const char *dot_id, struct dm_err *err)
{
	MDB_txn *txn = NULL;
	int rc = begin_write(idx, &txn, err);

	if (rc)
		return rc;
	rc = commit_walk(idx, txn, dot_id, "", delete_one, NULL, err);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	return rc ? lmdb_err(err, rc, "cannot commit") : 0;
}

int dm_index_commit_forget(struct dm_index *idx, const char *dot_id, const char *const *commits,
			   size_t n, struct dm_err *err)
{
	MDB_txn *txn = NULL;
	int rc;

	if (!n)
		return 0;
	rc = begin_write(idx, &txn, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		char key[260];
		size_t klen;
		MDB_val k;

		rc = commit_key(key, sizeof(key), &klen, dot_id, commits[i], err);
		if (rc) {
			mdb_txn_abort(txn);
			return rc;
		}
		k = mval(key, klen);
		rc = mdb_del(txn, idx->commits, &k, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return end_write(txn, rc, "cannot forget commits", err);
	}
	return end_write(txn, 0, "cannot forget commits", err);
}

struct under_ctx {
	const char *prefix;
	size_t plen;
	struct dm_index_entry *list;
	size_t count, cap;
};

static int collect_under(const dm_oid *id, const struct dm_loc *loc, const char *path,
			 size_t path_len, void *p)
{
	struct under_ctx *u = p;

	if (!path || path_len < u->plen || memcmp(path, u->prefix, u->plen) != 0)
		return 0;
	u->list = grow(u->list, u->count, &u->cap, 64, sizeof(*u->list));
	u->list[u->count].id = *id;
	u->list[u->count].loc = *loc;
	u->list[u->count].path = dm_xstrndup(path, path_len);
	u->count++;
	return 0;
}

int dm_index_external_under(struct dm_index *idx, const char *prefix,
			    struct dm_index_entry **out, size_t *n, struct dm_err *err)
{
	struct under_ctx u = {prefix, strlen(prefix), NULL, 0, 0};
	int rc = scan_objects(idx, collect_under, &u, err);

	*out = NULL;
	*n = 0;
	if (rc) {
		dm_index_entries_free(u.list, u.count);
		return rc;
	}
	*out = u.list;
	*n = u.count;
	return 0;
}

int dm_index_strip_external_prefix(struct dm_index *idx, const char *prefix, size_t *n_out,
				   struct dm_err *err)
{
	struct dm_index_entry *list = NULL;
	size_t n = 0, plen = strlen(prefix), done = 0;
	MDB_txn *txn = NULL;
	int rc;

	if (n_out)
		*n_out = 0;
	rc = dm_index_external_under(idx, prefix, &list, &n, err);
	if (rc || !n)
		goto out;
	rc = begin_write(idx, &txn, err);
	if (rc)
		goto out;
	for (size_t i = 0; i < n; i++) {
		unsigned char val[LOC_LEN + 4096];
		size_t rlen = strlen(list[i].path) - plen;
		MDB_val k = mval(list[i].id.b, DM_OID_RAWSZ), v = {LOC_LEN + rlen, val};

		if (!rlen || rlen >= 4096)
			continue; /* the root itself is no file */
		encode_loc(val, &list[i].loc);
		memcpy(val + LOC_LEN, list[i].path + plen, rlen);
		rc = mdb_put(txn, idx->objects, &k, &v, 0);
		if (rc)
			break;
		done++;
	}
	rc = end_write(txn, rc, "cannot write", err);
	if (!rc && n_out)
		*n_out = done;
out:
	dm_index_entries_free(list, n);
	return rc;
}

void dm_index_entries_free(struct dm_index_entry *e, size_t n)
{
	union {
		const char *c;
		char *m;
	} u;

	if (!e)
		return;
	for (size_t i = 0; i < n; i++) {
		u.c = e[i].path;
		free(u.m);
	}
	free(e);
}

int dm_index_delete_external(struct dm_index *idx, const dm_oid *ids, size_t n,
			     const char *prefix, struct dm_err *err)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	MDB_txn *txn = NULL;
	int rc;

	if (!n)
		return 0;
	rc = begin_write(idx, &txn, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		MDB_val k = mval(ids[i].b, DM_OID_RAWSZ), v;
		struct dm_loc loc;
		struct dm_err derr;

		rc = mdb_get(txn, idx->objects, &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc)
			return end_write(txn, rc, "cannot delete", err);
		if (prefix && (decode_loc(&loc, &v, &derr) || loc.where != DM_LOC_EXTERNAL ||
			       v.mv_size - LOC_LEN < plen ||
			       memcmp((const char *)v.mv_data + LOC_LEN, prefix, plen) != 0))
			continue; /* moved meanwhile: not ours to forget */
		rc = mdb_del(txn, idx->objects, &k, NULL);
		if (rc)
			return end_write(txn, rc, "cannot delete", err);
	}
	return end_write(txn, 0, "cannot delete", err);
}

struct commits_ctx {
	dm_index_commit_fn fn;
	void *ctx;
};

static int commit_one(const MDB_val *k, const MDB_val *v, void *p, struct dm_err *err)
{
	struct commits_ctx *c = p;
	char dot[260], commit[260];
	const char *key = k->mv_data;
	const char *nul = memchr(key, '\0', k->mv_size);
	unsigned flags = 0;
	size_t a, b;
	dm_oid oid;

	if (!nul || k->mv_size > 257 || decode_commit(v, &oid, &flags, err))
		return dm_err_set(err, DM_ECORRUPT, "store index: corrupt commit entry");
	a = (size_t)(nul - key);
	b = k->mv_size - a - 1;
	memcpy(dot, key, a);
	dot[a] = '\0';
	memcpy(commit, nul + 1, b);
	commit[b] = '\0';
	return c->fn(dot, commit, &oid, flags, c->ctx);
}

int dm_index_commit_foreach(struct dm_index *idx, dm_index_commit_fn fn, void *ctx,
			    struct dm_err *err)
{
	struct commits_ctx c = {fn, ctx};

	return scan_db(idx, idx->commits, "cannot read commits", commit_one, &c, err);
}
