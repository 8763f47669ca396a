/*
 * lmdb.c - the embedded KV backend: one LMDB environment in a directory,
 * a change log for watches, and leases with a reaper thread.
 *
 * Sub-databases:
 *     kv          enc(key)            -> kv record
 *     log         rev(8) sub(4)       -> log record (one per changed key)
 *     meta        "revision" "compact" "next_lease" "log_count"
 *                 "log_bytes" "format" -> int64 (big-endian)
 *     leases      id(8)               -> ttl(8)
 *     lease_keys  id(8) enc(key)      -> (empty)
 * Records (all integers big-endian):
 *     kv:  1 | create(8) mod(8) version(8) lease(8) | key_len(4) key value
 *     log: type | create(8) version(8) lease(8) | key_len(4) key value
 * LMDB keys are at most 511 bytes, so a key longer than INLINE_KEY_MAX is
 * stored under its first INLINE_KEY_MAX bytes followed by the SHA-256 of
 * the whole key. The prefix order is kept; only long keys that share
 * those first bytes come out of LMDB unsorted, so range sorts its result.
 *
 * Invariants:
 *  - Every write is one LMDB write transaction run by run_write, under
 *    write_mu; a write that changes keys bumps meta "revision" by exactly
 *    one and logs each changed key at (revision, 0), (revision, 1), ...
 *  - The log holds every change with a revision above meta "compact" and
 *    none at or below it. It is trimmed by whole revisions, never the
 *    newest, to log_keep changes and log_max_bytes bytes.
 *  - Every transaction holds txn_lock shared; the map is resized only
 *    with it held exclusively (LMDB requires no live transaction then).
 *    No thread takes txn_lock twice.
 *  - k->rev (under mu) is the last committed revision; watchers sleep on
 *    `changed` until it passes what they have read.
 *  - A key attached to lease L has an entry in lease_keys under L, and
 *    only such keys do; a put checks L inside its own write transaction,
 *    so no key is attached to a revoked lease.
 *  - Lease deadlines live in memory only (monotonic clock) and restart at
 *    open: a lease outlives a restart by its TTL, as in etcd.
 *  - Watch callbacks run with no lock and no transaction held.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "kv/backend.h"
#include "kv/kv.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/hash.h"
#include "util/log.h"

#include "util/banned.h"

#define FORMAT_VERSION 1
#define INLINE_KEY_MAX 448
#define ENC_KEY_MAX    (INLINE_KEY_MAX + DM_OID_RAWSZ)
#define KV_HDR         37
#define LOG_HDR        29
#define LOG_KEY        12
#define LOG_PUT        1
#define LOG_DELETE     2
#define KEY_QUOTE_MAX  200
/* A watcher copies at most this much per read transaction. */
#define WATCH_BATCH_EVENTS 256
#define WATCH_BATCH_SCAN   4096
#define WATCH_BATCH_BYTES  (4u << 20)
#define NS_PER_S           1000000000LL

struct lease {
	int64_t id;
	int64_t ttl;
	int64_t deadline_ns; /* monotonic */
};

struct lmdb_kv {
	struct dm_kv base; /* first: the handle callers hold */
	struct dm_kv_lmdb_opts opts;
	char *dir;
	int lock_fd;
	MDB_env *env;
	MDB_dbi db_kv, db_log, db_meta, db_leases, db_lease_keys;

	pthread_rwlock_t txn_lock;
	pthread_mutex_t write_mu;

	pthread_mutex_t mu; /* guards rev */
	pthread_cond_t changed;
	int64_t rev;

	pthread_mutex_t lease_mu; /* guards leases, closing */
	pthread_cond_t lease_cond;
	struct lease *leases;
	size_t nleases, aleases;
	bool closing;
	pthread_t reaper;

	/* what was set up, for lmdb_free */
	bool locks_ok, base_ok, reaper_ok;
};

/* A decoded kv or log record; pointers into LMDB's memory. */
struct rec {
	int type;
	int64_t create, mod, version, lease;
	const char *key;
	size_t key_len;
	const unsigned char *value;
	size_t value_len;
};

/* One write transaction in progress. */
struct wctx {
	struct lmdb_kv *k;
	MDB_txn *txn;
	struct dm_err *err;
	int mdb_rc;      /* the LMDB error that failed it, if any */
	int64_t rev;     /* revision before */
	int64_t new_rev; /* revision after: rev, or rev + 1 once something changed */
	uint32_t sub;    /* log entries written at new_rev */
	int64_t compact;
	int64_t log_count;
	int64_t log_bytes;
	bool log_dirty;
};

/* A change copied out for a watcher. */
struct wev {
	int type;
	int64_t rev, create, version, lease;
	char *key;
	size_t key_len;
	char *value;
	size_t value_len;
};

/* A watcher's position: the next log entry it needs. */
struct lwatch {
	int64_t next_rev;
	uint32_t next_sub;
};

static const struct dm_kv_ops lmdb_ops;

/* ---- encoding ---- */

static void put_be64(unsigned char *p, int64_t sv)
{
	uint64_t v = (uint64_t)sv;

	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static int64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return (int64_t)v;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* An MDB_val for bytes LMDB only reads (its struct has no const). */
static MDB_val mval(const void *p, size_t n)
{
	MDB_val v = {n, (void *)(uintptr_t)p};

	return v;
}

/* The LMDB key of key; out has room for ENC_KEY_MAX bytes. */
static size_t enc_key(unsigned char *out, const char *key, size_t len)
{
	dm_oid h;

	if (len <= INLINE_KEY_MAX) {
		memcpy(out, key, len);
		return len;
	}
	memcpy(out, key, INLINE_KEY_MAX);
	dm_hash(&h, key, len);
	memcpy(out + INLINE_KEY_MAX, h.b, DM_OID_RAWSZ);
	return ENC_KEY_MAX;
}

static int decode_kv(const MDB_val *v, struct rec *out, struct dm_err *err)
{
	const unsigned char *p = v->mv_data;
	size_t key_len;

	if (v->mv_size < KV_HDR || p[0] != 1)
		return dm_err_set(err, DM_ECORRUPT, "kv store has a bad record of %zu bytes",
		                  v->mv_size);
	key_len = get_be32(p + 33);
	if (key_len == 0 || key_len > DM_KV_KEY_MAX || KV_HDR + key_len > v->mv_size ||
	    v->mv_size - KV_HDR - key_len > DM_KV_VALUE_MAX)
		return dm_err_set(err, DM_ECORRUPT, "kv store has a bad record of %zu bytes",
		                  v->mv_size);
	out->type = LOG_PUT;
	out->create = get_be64(p + 1);
	out->mod = get_be64(p + 9);
	out->version = get_be64(p + 17);
	out->lease = get_be64(p + 25);
	out->key = (const char *)p + KV_HDR;
	out->key_len = key_len;
	out->value = p + KV_HDR + key_len;
	out->value_len = v->mv_size - KV_HDR - key_len;
	return 0;
}

static int decode_log(const MDB_val *key, const MDB_val *v, struct rec *out, uint32_t *sub,
                      struct dm_err *err)
{
	const unsigned char *p = v->mv_data;
	size_t key_len;

	if (key->mv_size != LOG_KEY || v->mv_size < LOG_HDR ||
	    (p[0] != LOG_PUT && p[0] != LOG_DELETE))
		return dm_err_set(err, DM_ECORRUPT, "kv store has a bad change log entry");
	key_len = get_be32(p + 25);
	if (key_len == 0 || key_len > DM_KV_KEY_MAX || LOG_HDR + key_len > v->mv_size ||
	    v->mv_size - LOG_HDR - key_len > DM_KV_VALUE_MAX)
		return dm_err_set(err, DM_ECORRUPT, "kv store has a bad change log entry");
	out->type = p[0];
	out->mod = get_be64(key->mv_data);
	*sub = get_be32((const unsigned char *)key->mv_data + 8);
	out->create = get_be64(p + 1);
	out->version = get_be64(p + 9);
	out->lease = get_be64(p + 17);
	out->key = (const char *)p + LOG_HDR;
	out->key_len = key_len;
	out->value = p + LOG_HDR + key_len;
	out->value_len = v->mv_size - LOG_HDR - key_len;
	return 0;
}

/* ---- LMDB plumbing ---- */

static int mdb_err(struct dm_err *err, int rc, const char *what)
{
	int code = DM_EIO;

	if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID ||
	    rc == MDB_VERSION_MISMATCH)
		code = DM_ECORRUPT;
	else if (rc == ENOMEM)
		code = DM_ENOMEM;
	else if (rc == MDB_MAP_FULL)
		code = DM_ETOOBIG;
	else if (rc == EACCES || rc == EROFS)
		code = DM_EPERM;
	return dm_err_set(err, code, "cannot %s in kv store: %s", what, mdb_strerror(rc));
}

/* Records an LMDB failure of a write transaction (MAP_FULL is retried). */
static int wfail(struct wctx *w, int rc, const char *what)
{
	w->mdb_rc = rc;
	return mdb_err(w->err, rc, what);
}

static int read_begin(struct lmdb_kv *k, MDB_txn **out, struct dm_err *err)
{
	int rc;

	for (;;) {
		pthread_rwlock_rdlock(&k->txn_lock);
		rc = mdb_txn_begin(k->env, NULL, MDB_RDONLY, out);
		if (rc == 0)
			return 0;
		pthread_rwlock_unlock(&k->txn_lock);
		if (rc != MDB_MAP_RESIZED)
			return mdb_err(err, rc, "begin a read");
		pthread_rwlock_wrlock(&k->txn_lock);
		rc = mdb_env_set_mapsize(k->env, 0);
		pthread_rwlock_unlock(&k->txn_lock);
		if (rc)
			return mdb_err(err, rc, "adopt a new map size");
	}
}

static void read_end(struct lmdb_kv *k, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&k->txn_lock);
}

/* Doubles the map, up to opts.map_size_max. Called with write_mu held
 * and no transaction open. */
static int grow_map(struct lmdb_kv *k, struct dm_err *err)
{
	MDB_envinfo info;
	size_t next;
	int rc;

	pthread_rwlock_wrlock(&k->txn_lock);
	mdb_env_info(k->env, &info);
	if (info.me_mapsize >= k->opts.map_size_max) {
		pthread_rwlock_unlock(&k->txn_lock);
		return dm_err_set(err, DM_ETOOBIG, "kv store '%s' is full (%zu bytes)", k->dir,
		                  info.me_mapsize);
	}
	next =
	    info.me_mapsize > k->opts.map_size_max / 2 ? k->opts.map_size_max : info.me_mapsize * 2;
	rc = mdb_env_set_mapsize(k->env, next);
	pthread_rwlock_unlock(&k->txn_lock);
	if (rc)
		return mdb_err(err, rc, "grow the map");
	dm_info("kv store '%s' map grown to %zu bytes", k->dir, next);
	return 0;
}

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name, int64_t *out, struct dm_err *err)
{
	MDB_val key = mval(name, strlen(name)), val;
	int rc = mdb_get(txn, dbi, &key, &val);

	*out = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return mdb_err(err, rc, "read metadata");
	if (val.mv_size != 8)
		return dm_err_set(err, DM_ECORRUPT, "kv store has a bad '%s'", name);
	*out = get_be64(val.mv_data);
	return 0;
}

static int meta_put(struct wctx *w, const char *name, int64_t v)
{
	unsigned char b[8];
	MDB_val key = mval(name, strlen(name)), val = mval(b, 8);
	int rc;

	put_be64(b, v);
	if ((rc = mdb_put(w->txn, w->k->db_meta, &key, &val, 0)))
		return wfail(w, rc, "write metadata");
	return 0;
}

/* Reads the record under an encoded key; *found false when absent. */
static int load_enc(MDB_txn *txn, struct lmdb_kv *k, const unsigned char *ek, size_t ek_len,
                    struct rec *out, bool *found, struct dm_err *err)
{
	MDB_val key = mval(ek, ek_len), val;
	int rc = mdb_get(txn, k->db_kv, &key, &val);

	*found = false;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return mdb_err(err, rc, "read a key");
	if ((rc = decode_kv(&val, out, err)) < 0)
		return rc;
	*found = true;
	return 0;
}

/* Reads key's record; *found false when absent. */
static int load_key(MDB_txn *txn, struct lmdb_kv *k, const char *key, size_t key_len,
                    struct rec *out, bool *found, struct dm_err *err)
{
	unsigned char ek[ENC_KEY_MAX];
	size_t ek_len = enc_key(ek, key, key_len);
	int rc = load_enc(txn, k, ek, ek_len, out, found, err);

	if (rc == 0 && *found && (out->key_len != key_len || memcmp(out->key, key, key_len) != 0))
		return dm_err_set(err, DM_ECORRUPT, "kv store holds another key under '%.*s'",
		                  KEY_QUOTE_MAX, key);
	return rc;
}

/*
 * Calls fn for every record whose key starts with prefix, in LMDB order
 * (see the top of the file). fn returns 0 to go on, 1 to stop, or an
 * error.
 */
typedef int (*scan_fn)(void *ctx, const MDB_val *ek, const struct rec *r);

static int scan_prefix(MDB_txn *txn, struct lmdb_kv *k, const char *prefix, size_t prefix_len,
                       scan_fn fn, void *ctx, struct dm_err *err)
{
	size_t seek_len = prefix_len < INLINE_KEY_MAX ? prefix_len : INLINE_KEY_MAX;
	MDB_val key = mval(prefix, seek_len), val;
	MDB_cursor *cur = NULL;
	struct rec r;
	int mrc, rc = 0;

	if ((mrc = mdb_cursor_open(txn, k->db_kv, &cur)))
		return mdb_err(err, mrc, "open a cursor");
	mrc = mdb_cursor_get(cur, &key, &val, seek_len ? MDB_SET_RANGE : MDB_FIRST);
	while (mrc == 0) {
		if (key.mv_size < seek_len || memcmp(key.mv_data, prefix, seek_len) != 0)
			break;
		if ((rc = decode_kv(&val, &r, err)) < 0)
			goto done;
		if (dm_kv_has_prefix(r.key, r.key_len, prefix, prefix_len)) {
			rc = fn(ctx, &key, &r);
			if (rc < 0)
				goto done;
			if (rc > 0) {
				rc = 0;
				goto done;
			}
		}
		mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		rc = mdb_err(err, mrc, "scan keys");
done:
	mdb_cursor_close(cur);
	return rc;
}

/*
 * Runs fn in a write transaction, growing the map and retrying when it is
 * full, then publishes the new revision to watchers. fn must be safe to
 * run again from the start.
 */
typedef int (*write_fn)(struct wctx *w, void *arg);

static int finish_revision(struct wctx *w);

static int run_write(struct lmdb_kv *k, write_fn fn, void *arg, int64_t *rev_out,
                     struct dm_err *err)
{
	struct wctx w;
	int rc;

	pthread_mutex_lock(&k->write_mu);
	for (;;) {
		memset(&w, 0, sizeof(w));
		w.k = k;
		w.err = err;
		pthread_rwlock_rdlock(&k->txn_lock);
		rc = mdb_txn_begin(k->env, NULL, 0, &w.txn);
		if (rc) {
			w.txn = NULL;
			rc = wfail(&w, rc, "begin a write");
		} else {
			if ((rc = meta_get(w.txn, k->db_meta, "revision", &w.rev, err)) == 0 &&
			    (rc = meta_get(w.txn, k->db_meta, "compact", &w.compact, err)) == 0 &&
			    (rc = meta_get(w.txn, k->db_meta, "log_count", &w.log_count, err)) ==
			        0 &&
			    (rc = meta_get(w.txn, k->db_meta, "log_bytes", &w.log_bytes, err)) ==
			        0) {
				w.new_rev = w.rev;
				rc = fn(&w, arg);
			}
			if (rc == 0)
				rc = finish_revision(&w);
			if (rc == 0) {
				int mrc = mdb_txn_commit(w.txn);

				w.txn = NULL;
				if (mrc)
					rc = wfail(&w, mrc, "commit");
			}
			if (w.txn)
				mdb_txn_abort(w.txn);
		}
		pthread_rwlock_unlock(&k->txn_lock);
		if (rc < 0 && w.mdb_rc == MDB_MAP_FULL) {
			if ((rc = grow_map(k, err)) < 0)
				break;
			continue;
		}
		break;
	}
	if (rc == 0 && w.new_rev != w.rev) {
		pthread_mutex_lock(&k->mu);
		k->rev = w.new_rev;
		pthread_cond_broadcast(&k->changed);
		pthread_mutex_unlock(&k->mu);
	}
	pthread_mutex_unlock(&k->write_mu);
	if (rc == 0 && rev_out)
		*rev_out = w.new_rev;
	return rc;
}

/* ---- the change log ---- */

static int log_append(struct wctx *w, int type, const char *key, size_t key_len, const void *value,
                      size_t value_len, int64_t create, int64_t version, int64_t lease)
{
	unsigned char lk[LOG_KEY];
	MDB_val mk = {LOG_KEY, lk}, mv = {LOG_HDR + key_len + value_len, NULL};
	unsigned char *p;
	int rc;

	w->new_rev = w->rev + 1;
	put_be64(lk, w->new_rev);
	put_be32(lk + 8, w->sub++);
	if ((rc = mdb_put(w->txn, w->k->db_log, &mk, &mv, MDB_RESERVE)))
		return wfail(w, rc, "log a change");
	p = mv.mv_data;
	p[0] = (unsigned char)type;
	put_be64(p + 1, create);
	put_be64(p + 9, version);
	put_be64(p + 17, lease);
	put_be32(p + 25, (uint32_t)key_len);
	memcpy(p + LOG_HDR, key, key_len);
	if (value_len)
		memcpy(p + LOG_HDR + key_len, value, value_len);
	w->log_count++;
	w->log_bytes += (int64_t)(LOG_KEY + mv.mv_size);
	w->log_dirty = true;
	return 0;
}

/* Deletes the log's entries up to revision upto (all of the oldest
 * revision when upto is -1), keeping the counters. */
static int log_trim(struct wctx *w, int64_t upto)
{
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	int64_t first = -1, r;
	int rc;

	if ((rc = mdb_cursor_open(w->txn, w->k->db_log, &cur)))
		return wfail(w, rc, "open a cursor");
	for (;;) {
		rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			break;
		}
		if (rc) {
			rc = wfail(w, rc, "read the change log");
			break;
		}
		if (key.mv_size != LOG_KEY) {
			rc = dm_err_set(w->err, DM_ECORRUPT, "kv store has a bad change log key");
			break;
		}
		r = get_be64(key.mv_data);
		if (first < 0)
			first = r;
		if (upto < 0 ? r != first : r > upto)
			break;
		w->log_count--;
		w->log_bytes -= (int64_t)(key.mv_size + val.mv_size);
		if ((rc = mdb_cursor_del(cur, 0))) {
			rc = wfail(w, rc, "trim the change log");
			break;
		}
		if (r > w->compact)
			w->compact = r;
	}
	mdb_cursor_close(cur);
	if (upto > w->compact)
		w->compact = upto;
	w->log_dirty = true;
	return rc;
}

/* Writes the new revision and trims the log to its bounds. */
static int finish_revision(struct wctx *w)
{
	const struct dm_kv_lmdb_opts *o = &w->k->opts;
	int rc;

	if (w->new_rev != w->rev) {
		if ((rc = meta_put(w, "revision", w->new_rev)) < 0)
			return rc;
		while ((w->log_count > o->log_keep || (uint64_t)w->log_bytes > o->log_max_bytes) &&
		       w->compact < w->new_rev - 1) {
			int64_t before = w->compact;

			if ((rc = log_trim(w, -1)) < 0)
				return rc;
			if (w->compact == before)
				break; /* nothing left to trim: counters are off */
		}
	}
	if (!w->log_dirty)
		return 0;
	if ((rc = meta_put(w, "compact", w->compact)) < 0 ||
	    (rc = meta_put(w, "log_count", w->log_count)) < 0 ||
	    (rc = meta_put(w, "log_bytes", w->log_bytes)) < 0)
		return rc;
	return 0;
}

/* ---- writes ---- */

static int lease_key_put(struct wctx *w, int64_t lease, const MDB_val *ek, bool add)
{
	unsigned char b[8 + ENC_KEY_MAX];
	MDB_val key = {8 + ek->mv_size, b}, val = {0, b};
	int rc;

	put_be64(b, lease);
	memcpy(b + 8, ek->mv_data, ek->mv_size);
	rc = add ? mdb_put(w->txn, w->k->db_lease_keys, &key, &val, 0)
	         : mdb_del(w->txn, w->k->db_lease_keys, &key, NULL);
	if (rc && !(rc == MDB_NOTFOUND && !add))
		return wfail(w, rc, "index a lease");
	return 0;
}

static int lease_exists(struct wctx *w, int64_t lease)
{
	unsigned char b[8];
	MDB_val key = {8, b}, val;
	int rc;

	put_be64(b, lease);
	rc = mdb_get(w->txn, w->k->db_leases, &key, &val);
	if (rc == MDB_NOTFOUND)
		return dm_err_set(w->err, DM_ENOTFOUND, "lease %lld not found", (long long)lease);
	if (rc)
		return wfail(w, rc, "read a lease");
	return 0;
}

static int apply_put(struct wctx *w, const struct dm_kv_op *op)
{
	size_t key_len = strlen(op->key);
	unsigned char ekb[ENC_KEY_MAX];
	MDB_val ek = {enc_key(ekb, op->key, key_len), ekb};
	MDB_val val = {KV_HDR + key_len + op->value_len, NULL};
	int64_t create, version, old_lease = 0, rev = w->rev + 1;
	unsigned char *p;
	struct rec old;
	bool found;
	int rc;

	if ((rc = load_key(w->txn, w->k, op->key, key_len, &old, &found, w->err)) < 0)
		return rc;
	if (op->lease && (rc = lease_exists(w, op->lease)) < 0)
		return rc;
	create = found ? old.create : rev;
	version = found ? old.version + 1 : 1;
	if (found)
		old_lease = old.lease;
	if ((rc = mdb_put(w->txn, w->k->db_kv, &ek, &val, MDB_RESERVE)))
		return wfail(w, rc, "write a key");
	p = val.mv_data;
	p[0] = 1;
	put_be64(p + 1, create);
	put_be64(p + 9, rev);
	put_be64(p + 17, version);
	put_be64(p + 25, op->lease);
	put_be32(p + 33, (uint32_t)key_len);
	memcpy(p + KV_HDR, op->key, key_len);
	if (op->value_len)
		memcpy(p + KV_HDR + key_len, op->value, op->value_len);
	if (old_lease != op->lease) {
		if (old_lease && (rc = lease_key_put(w, old_lease, &ek, false)) < 0)
			return rc;
		if (op->lease && (rc = lease_key_put(w, op->lease, &ek, true)) < 0)
			return rc;
	}
	return log_append(w, LOG_PUT, op->key, key_len, op->value, op->value_len, create, version,
	                  op->lease);
}

/* Deletes the key stored under ek, if any. */
static int apply_delete_enc(struct wctx *w, const unsigned char *ekb, size_t ek_len,
                            size_t *deleted)
{
	MDB_val ek = mval(ekb, ek_len);
	char key[DM_KV_KEY_MAX];
	size_t key_len;
	int64_t lease;
	struct rec old;
	bool found;
	int rc;

	if ((rc = load_enc(w->txn, w->k, ekb, ek_len, &old, &found, w->err)) < 0)
		return rc;
	if (!found)
		return 0;
	key_len = old.key_len;
	memcpy(key, old.key, key_len);
	lease = old.lease;
	if ((rc = mdb_del(w->txn, w->k->db_kv, &ek, NULL)))
		return wfail(w, rc, "delete a key");
	if (lease && (rc = lease_key_put(w, lease, &ek, false)) < 0)
		return rc;
	(*deleted)++;
	return log_append(w, LOG_DELETE, key, key_len, NULL, 0, 0, 0, 0);
}

/* A list of encoded keys, gathered before they are deleted. */
struct eklist {
	unsigned char (*keys)[ENC_KEY_MAX];
	size_t *lens;
	size_t n, alloc;
	struct dm_err *err;
};

static int eklist_add(struct eklist *l, const void *ek, size_t len)
{
	if (l->n == l->alloc) {
		size_t n = l->alloc ? l->alloc * 2 : 16;
		unsigned char(*keys)[ENC_KEY_MAX] = realloc(l->keys, n * sizeof(*keys));
		size_t *lens;

		if (!keys)
			return dm_err_set(l->err, DM_ENOMEM, "out of memory for %zu keys", n);
		l->keys = keys;
		lens = realloc(l->lens, n * sizeof(*lens));
		if (!lens)
			return dm_err_set(l->err, DM_ENOMEM, "out of memory for %zu keys", n);
		l->lens = lens;
		l->alloc = n;
	}
	memcpy(l->keys[l->n], ek, len);
	l->lens[l->n++] = len;
	return 0;
}

static void eklist_release(struct eklist *l)
{
	free(l->keys);
	free(l->lens);
}

static int collect_ek(void *ctx, const MDB_val *ek, const struct rec *r)
{
	(void)r;
	return eklist_add(ctx, ek->mv_data, ek->mv_size);
}

static int apply_delete_prefix(struct wctx *w, const char *prefix, size_t *deleted)
{
	struct eklist l = {NULL, NULL, 0, 0, w->err};
	int rc;

	rc = scan_prefix(w->txn, w->k, prefix, strlen(prefix), collect_ek, &l, w->err);
	for (size_t i = 0; rc == 0 && i < l.n; i++)
		rc = apply_delete_enc(w, l.keys[i], l.lens[i], deleted);
	eklist_release(&l);
	return rc;
}

struct txn_arg {
	const struct dm_kv_cmp *cmps;
	size_t ncmps;
	const struct dm_kv_op *ops;
	size_t nops;
	size_t deleted;
};

static int check_cmp(struct wctx *w, const struct dm_kv_cmp *c)
{
	size_t key_len = strlen(c->key);
	struct rec r;
	bool found;
	int rc;

	if ((rc = load_key(w->txn, w->k, c->key, key_len, &r, &found, w->err)) < 0)
		return rc;
	if (found && r.mod == c->mod_revision)
		return 0;
	if (!found && c->mod_revision == 0)
		return 0;
	if (c->mod_revision == 0)
		return dm_err_set(w->err, DM_ECONFLICT,
		                  "key '%.*s' already exists (mod_revision %lld)", KEY_QUOTE_MAX,
		                  c->key, (long long)r.mod);
	if (!found)
		return dm_err_set(w->err, DM_ECONFLICT,
		                  "key '%.*s' does not exist (expected mod_revision %lld)",
		                  KEY_QUOTE_MAX, c->key, (long long)c->mod_revision);
	return dm_err_set(w->err, DM_ECONFLICT, "key '%.*s' has mod_revision %lld, not %lld",
	                  KEY_QUOTE_MAX, c->key, (long long)r.mod, (long long)c->mod_revision);
}

static int txn_fn(struct wctx *w, void *arg)
{
	struct txn_arg *a = arg;
	unsigned char ek[ENC_KEY_MAX];
	int rc = 0;

	a->deleted = 0;
	for (size_t i = 0; i < a->ncmps; i++)
		if ((rc = check_cmp(w, &a->cmps[i])) < 0)
			return rc;
	for (size_t i = 0; rc == 0 && i < a->nops; i++) {
		const struct dm_kv_op *op = &a->ops[i];

		switch (op->type) {
		case DM_KV_OP_PUT:
			rc = apply_put(w, op);
			break;
		case DM_KV_OP_DELETE:
			rc = apply_delete_enc(w, ek, enc_key(ek, op->key, strlen(op->key)),
			                      &a->deleted);
			break;
		case DM_KV_OP_DELETE_PREFIX:
			rc = apply_delete_prefix(w, op->key, &a->deleted);
			break;
		default:
			rc = dm_err_set(w->err, DM_EINVAL, "unknown op %d", (int)op->type);
		}
	}
	return rc;
}

static int lmdb_txn(struct dm_kv *kv, struct dm_kv_txn_result *out, const struct dm_kv_cmp *cmps,
                    size_t ncmps, const struct dm_kv_op *ops, size_t nops, struct dm_err *err)
{
	struct txn_arg a = {cmps, ncmps, ops, nops, 0};
	int rc = run_write((struct lmdb_kv *)kv, txn_fn, &a, &out->revision, err);

	out->deleted = a.deleted;
	return rc;
}

static int compact_fn(struct wctx *w, void *arg)
{
	int64_t rev = *(const int64_t *)arg;

	if (rev > w->rev)
		return dm_err_set(w->err, DM_EINVAL,
		                  "cannot compact to revision %lld, past the current %lld",
		                  (long long)rev, (long long)w->rev);
	if (rev <= w->compact)
		return 0;
	return log_trim(w, rev);
}

static int lmdb_compact(struct dm_kv *kv, int64_t rev, struct dm_err *err)
{
	return run_write((struct lmdb_kv *)kv, compact_fn, &rev, NULL, err);
}

/* ---- reads ---- */

static int lmdb_revision(struct dm_kv *kv, int64_t *out, struct dm_err *err)
{
	struct lmdb_kv *k = (struct lmdb_kv *)kv;
	MDB_txn *txn;
	int rc;

	if ((rc = read_begin(k, &txn, err)) < 0)
		return rc;
	rc = meta_get(txn, k->db_meta, "revision", out, err);
	read_end(k, txn);
	return rc;
}

static void fill_meta(struct dm_kv_kv *item, const struct rec *r)
{
	item->create_revision = r->create;
	item->mod_revision = r->mod;
	item->version = r->version;
	item->lease = r->lease;
}

static int lmdb_get(struct dm_kv *kv, struct dm_kv_kv *out, const char *key, size_t key_len,
                    struct dm_err *err)
{
	struct lmdb_kv *k = (struct lmdb_kv *)kv;
	MDB_txn *txn;
	struct rec r;
	bool found;
	int rc;

	if ((rc = read_begin(k, &txn, err)) < 0)
		return rc;
	rc = load_key(txn, k, key, key_len, &r, &found, err);
	if (rc == 0 && !found)
		rc = dm_err_set(err, DM_ENOTFOUND, "key '%.*s' not found", KEY_QUOTE_MAX, key);
	if (rc == 0 && (rc = dm_kv_kv_set(out, r.key, r.key_len, r.value, r.value_len, err)) == 0)
		fill_meta(out, &r);
	read_end(k, txn);
	return rc;
}

struct range_ctx {
	struct dm_kv_kvs *out;
	size_t limit;
	struct dm_err *err;
};

/* Whether two keys are both long and share their stored head, so that
 * LMDB does not order them between themselves. */
static bool same_long_group(const char *a, size_t a_len, const char *b, size_t b_len)
{
	return a_len > INLINE_KEY_MAX && b_len > INLINE_KEY_MAX &&
	       memcmp(a, b, INLINE_KEY_MAX) == 0;
}

static int range_item(void *ctx, const MDB_val *ek, const struct rec *r)
{
	struct range_ctx *c = ctx;
	struct dm_kv_kv *item;

	(void)ek;
	if (c->limit && c->out->len >= c->limit) {
		const struct dm_kv_kv *last = &c->out->items[c->out->len - 1];

		if (!same_long_group(last->key, last->key_len, r->key, r->key_len)) {
			c->out->more = true;
			return 1;
		}
	}
	item = dm_kv_kvs_push(c->out, r->key, r->key_len, r->value, r->value_len, c->err);
	if (!item)
		return DM_ENOMEM;
	fill_meta(item, r);
	return 0;
}

static int lmdb_range(struct dm_kv *kv, struct dm_kv_kvs *out, const char *prefix,
                      size_t prefix_len, size_t limit, struct dm_err *err)
{
	struct lmdb_kv *k = (struct lmdb_kv *)kv;
	struct range_ctx c = {out, limit, err};
	MDB_txn *txn;
	int rc;

	if ((rc = read_begin(k, &txn, err)) < 0)
		return rc;
	if ((rc = meta_get(txn, k->db_meta, "revision", &out->revision, err)) == 0)
		rc = scan_prefix(txn, k, prefix, prefix_len, range_item, &c, err);
	read_end(k, txn);
	if (rc < 0)
		return rc;
	dm_kv_kvs_sort(out);
	if (limit && out->len > limit) {
		for (size_t i = limit; i < out->len; i++)
			dm_kv_kv_release(&out->items[i]);
		out->len = limit;
		out->more = true;
	}
	return 0;
}

/* ---- leases ---- */

static struct lease *lease_find(struct lmdb_kv *k, int64_t id)
{
	for (size_t i = 0; i < k->nleases; i++)
		if (k->leases[i].id == id)
			return &k->leases[i];
	return NULL;
}

/* Adds (or refreshes) a lease's deadline; lease_mu held. */
static int lease_track(struct lmdb_kv *k, int64_t id, int64_t ttl, int64_t deadline,
                       struct dm_err *err)
{
	struct lease *l = lease_find(k, id);

	if (!l) {
		if (k->nleases == k->aleases) {
			size_t n = k->aleases ? k->aleases * 2 : 16;
			struct lease *v = realloc(k->leases, n * sizeof(*v));

			if (!v)
				return dm_err_set(err, DM_ENOMEM, "out of memory for %zu leases",
				                  n);
			k->leases = v;
			k->aleases = n;
		}
		l = &k->leases[k->nleases++];
	}
	l->id = id;
	l->ttl = ttl;
	l->deadline_ns = deadline;
	pthread_cond_broadcast(&k->lease_cond);
	return 0;
}

static void lease_untrack(struct lmdb_kv *k, int64_t id)
{
	struct lease *l = lease_find(k, id);

	if (l)
		*l = k->leases[--k->nleases];
}

struct grant_arg {
	int64_t ttl;
	int64_t id;
};

static int grant_fn(struct wctx *w, void *arg)
{
	struct grant_arg *a = arg;
	unsigned char kb[8], vb[8];
	MDB_val key = {8, kb}, val = {8, vb};
	int64_t next;
	int rc;

	if ((rc = meta_get(w->txn, w->k->db_meta, "next_lease", &next, w->err)) < 0)
		return rc;
	a->id = next > 0 ? next : 1;
	put_be64(kb, a->id);
	put_be64(vb, a->ttl);
	if ((rc = mdb_put(w->txn, w->k->db_leases, &key, &val, MDB_NOOVERWRITE)))
		return wfail(w, rc, "record a lease");
	return meta_put(w, "next_lease", a->id + 1);
}

static int lmdb_lease_grant(struct dm_kv *kv, int64_t *out, int64_t ttl, struct dm_err *err)
{
	struct lmdb_kv *k = (struct lmdb_kv *)kv;
	struct grant_arg a = {ttl, 0};
	int rc;

	if ((rc = run_write(k, grant_fn, &a, NULL, err)) < 0)
		return rc;
	pthread_mutex_lock(&k->lease_mu);
	rc = lease_track(k, a.id, ttl, dm_now_monotonic_ns() + ttl * NS_PER_S, err);
	pthread_mutex_unlock(&k->lease_mu);
	if (rc < 0)
		return rc;
	*out = a.id;
	return 0;
}

static int lmdb_lease_keepalive(struct dm_kv *kv, int64_t *out, int64_t id, struct dm_err *err)
{
	struct lmdb_kv *k = (struct lmdb_kv *)kv;
	struct lease *l;
	int rc = 0;

	pthread_mutex_lock(&k->lease_mu);
	l = lease_find(k, id);
	if (l) {
		l->deadline_ns = dm_now_monotonic_ns() + l->ttl * NS_PER_S;
		*out = l->ttl;
	} else {
		rc = dm_err_set(err, DM_ENOTFOUND, "lease %lld not found", (long long)id);
	}
	pthread_mutex_unlock(&k->lease_mu);
	return rc;
}

static int revoke_fn(struct wctx *w, void *arg)
{
	int64_t id = *(const int64_t *)arg;
	struct eklist l = {NULL, NULL, 0, 0, w->err};
	unsigned char kb[8];
	MDB_val key = mval(kb, 8), val;
	MDB_cursor *cur = NULL;
	size_t deleted = 0;
	int mrc, rc = 0;

	put_be64(kb, id);
	mrc = mdb_del(w->txn, w->k->db_leases, &key, NULL);
	if (mrc == MDB_NOTFOUND)
		return dm_err_set(w->err, DM_ENOTFOUND, "lease %lld not found", (long long)id);
	if (mrc)
		return wfail(w, mrc, "delete a lease");
	if ((mrc = mdb_cursor_open(w->txn, w->k->db_lease_keys, &cur)))
		return wfail(w, mrc, "open a cursor");
	mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	while (mrc == 0 && key.mv_size > 8 && memcmp(key.mv_data, kb, 8) == 0) {
		if ((rc = eklist_add(&l, (unsigned char *)key.mv_data + 8, key.mv_size - 8)) < 0)
			goto done;
		mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (mrc != 0 && mrc != MDB_NOTFOUND) {
		rc = wfail(w, mrc, "read a lease's keys");
		goto done;
	}
	for (size_t i = 0; rc == 0 && i < l.n; i++)
		rc = apply_delete_enc(w, l.keys[i], l.lens[i], &deleted);
done:
	mdb_cursor_close(cur);
	eklist_release(&l);
	return rc;
}

static int end_lease(struct lmdb_kv *k, int64_t id, struct dm_err *err)
{
	return run_write(k, revoke_fn, &id, NULL, err);
}

static int lmdb_lease_revoke(struct dm_kv *kv, int64_t id, struct dm_err *err)
{
	struct lmdb_kv *k = (struct lmdb_kv *)kv;
	int rc = end_lease(k, id, err);

	pthread_mutex_lock(&k->lease_mu);
	lease_untrack(k, id);
	pthread_mutex_unlock(&k->lease_mu);
	return rc;
}

/* The reaper: revokes each lease once its deadline has passed. */
static void *reaper_main(void *arg)
{
	struct lmdb_kv *k = arg;
	struct dm_err e;

	pthread_mutex_lock(&k->lease_mu);
	while (!k->closing) {
		int64_t now = dm_now_monotonic_ns(), wake = now + NS_PER_S, id = 0, ttl = 0;
		struct timespec ts;

		for (size_t i = 0; i < k->nleases; i++) {
			if (k->leases[i].deadline_ns <= now) {
				id = k->leases[i].id;
				ttl = k->leases[i].ttl;
				k->leases[i] = k->leases[--k->nleases];
				break;
			}
			if (k->leases[i].deadline_ns < wake)
				wake = k->leases[i].deadline_ns;
		}
		if (id) {
			int rc;

			pthread_mutex_unlock(&k->lease_mu);
			dm_err_clear(&e);
			rc = end_lease(k, id, &e);
			pthread_mutex_lock(&k->lease_mu);
			if (rc < 0 && rc != DM_ENOTFOUND) {
				dm_warn("cannot expire lease %lld: %s", (long long)id, e.msg);
				if (!lease_find(k, id))
					lease_track(k, id, ttl, dm_now_monotonic_ns() + NS_PER_S,
					            NULL);
			}
			continue;
		}
		ts.tv_sec = (time_t)(wake / NS_PER_S);
		ts.tv_nsec = (long)(wake % NS_PER_S);
		pthread_cond_timedwait(&k->lease_cond, &k->lease_mu, &ts);
	}
	pthread_mutex_unlock(&k->lease_mu);
	return NULL;
}

/* ---- watches ---- */

static void wevs_release(struct wev *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].value);
	}
}

static int wev_copy(struct wev *e, const struct rec *r, struct dm_err *err)
{
	memset(e, 0, sizeof(*e));
	e->key = malloc(r->key_len + 1);
	e->value = malloc(r->value_len + 1);
	if (!e->key || !e->value) {
		free(e->key);
		free(e->value);
		e->key = e->value = NULL;
		return dm_err_set(err, DM_ENOMEM, "out of memory for a watch event");
	}
	memcpy(e->key, r->key, r->key_len);
	e->key[r->key_len] = '\0';
	if (r->value_len)
		memcpy(e->value, r->value, r->value_len);
	e->value[r->value_len] = '\0';
	e->key_len = r->key_len;
	e->value_len = r->value_len;
	e->type = r->type;
	e->rev = r->mod;
	e->create = r->create;
	e->version = r->version;
	e->lease = r->lease;
	return 0;
}

static int lmdb_watch_start(struct dm_kv *kv, struct dm_kv_watch *w, struct dm_err *err)
{
	struct lmdb_kv *k = (struct lmdb_kv *)kv;
	struct lwatch *lw;
	int64_t compact;
	MDB_txn *txn;
	int rc;

	if ((rc = read_begin(k, &txn, err)) < 0)
		return rc;
	rc = meta_get(txn, k->db_meta, "compact", &compact, err);
	read_end(k, txn);
	if (rc < 0)
		return rc;
	if (w->from < compact)
		return dm_err_set(err, DM_KV_ECOMPACTED,
		                  "revision %lld compacted: history starts after revision %lld",
		                  (long long)w->from, (long long)compact);
	lw = calloc(1, sizeof(*lw));
	if (!lw)
		return dm_err_set(err, DM_ENOMEM, "out of memory for a watch");
	lw->next_rev = w->from + 1;
	lw->next_sub = 0;
	w->impl = lw;
	return 0;
}

/* Copies the next changes under w's prefix into v (at most
 * WATCH_BATCH_EVENTS) and moves w's position past what it read. */
static int read_batch(struct lmdb_kv *k, struct dm_kv_watch *w, struct wev *v, size_t *n_out,
                      struct dm_err *err)
{
	struct lwatch *lw = w->impl;
	unsigned char lk[LOG_KEY];
	MDB_val key = {LOG_KEY, lk}, val;
	MDB_cursor *cur = NULL;
	int64_t compact, current;
	size_t n = 0, scanned = 0, bytes = 0;
	MDB_txn *txn;
	struct rec r = {0};
	uint32_t sub = 0;
	int mrc, rc;

	*n_out = 0;
	if ((rc = read_begin(k, &txn, err)) < 0)
		return rc;
	if ((rc = meta_get(txn, k->db_meta, "compact", &compact, err)) < 0 ||
	    (rc = meta_get(txn, k->db_meta, "revision", &current, err)) < 0)
		goto done;
	if (lw->next_rev <= compact) {
		rc = dm_err_set(err, DM_KV_ECOMPACTED,
		                "revision %lld compacted: history starts after revision %lld",
		                (long long)(lw->next_rev - 1), (long long)compact);
		goto done;
	}
	if ((mrc = mdb_cursor_open(txn, k->db_log, &cur))) {
		cur = NULL;
		rc = mdb_err(err, mrc, "open a cursor");
		goto done;
	}
	put_be64(lk, lw->next_rev);
	put_be32(lk + 8, lw->next_sub);
	mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	while (mrc == 0) {
		if ((rc = decode_log(&key, &val, &r, &sub, err)) < 0)
			goto done;
		if (n >= WATCH_BATCH_EVENTS || scanned >= WATCH_BATCH_SCAN ||
		    bytes >= WATCH_BATCH_BYTES) {
			lw->next_rev = r.mod;
			lw->next_sub = sub;
			break;
		}
		scanned++;
		if (dm_kv_has_prefix(r.key, r.key_len, w->prefix, w->prefix_len)) {
			if ((rc = wev_copy(&v[n], &r, err)) < 0)
				goto done;
			bytes += r.key_len + r.value_len;
			n++;
		}
		mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (mrc == MDB_NOTFOUND) {
		lw->next_rev = current + 1;
		lw->next_sub = 0;
	} else if (mrc != 0) {
		rc = mdb_err(err, mrc, "read the change log");
	}
done:
	if (cur)
		mdb_cursor_close(cur);
	read_end(k, txn);
	if (rc < 0) {
		wevs_release(v, n);
		return rc;
	}
	*n_out = n;
	return 0;
}

static void lmdb_watch_run(struct dm_kv_watch *w)
{
	struct lmdb_kv *k = (struct lmdb_kv *)w->kv;
	struct lwatch *lw = w->impl;
	struct wev *v = calloc(WATCH_BATCH_EVENTS, sizeof(*v));
	struct dm_kv_event ev;
	struct dm_err e;
	size_t n;

	dm_err_clear(&e);
	if (!v) {
		dm_err_set(&e, DM_ENOMEM, "out of memory for a watch");
		dm_kv_watch_fail(w, &e);
		return;
	}
	for (;;) {
		bool go_on = true;

		pthread_mutex_lock(&k->mu);
		while (!dm_kv_watch_stopping(w) && k->rev < lw->next_rev)
			pthread_cond_wait(&k->changed, &k->mu);
		pthread_mutex_unlock(&k->mu);
		if (dm_kv_watch_stopping(w))
			break;
		if (read_batch(k, w, v, &n, &e) < 0) {
			dm_kv_watch_fail(w, &e);
			break;
		}
		for (size_t i = 0; go_on && i < n; i++) {
			memset(&ev, 0, sizeof(ev));
			ev.type = v[i].type == LOG_PUT ? DM_KV_EVENT_PUT : DM_KV_EVENT_DELETE;
			ev.key = v[i].key;
			ev.key_len = v[i].key_len;
			ev.revision = v[i].rev;
			if (ev.type == DM_KV_EVENT_PUT) {
				ev.value = v[i].value;
				ev.value_len = v[i].value_len;
				ev.create_revision = v[i].create;
				ev.version = v[i].version;
				ev.lease = v[i].lease;
			}
			go_on = dm_kv_watch_deliver(w, &ev);
		}
		wevs_release(v, n);
		if (!go_on)
			break;
	}
	free(v);
}

static void lmdb_watch_wake(struct dm_kv_watch *w)
{
	struct lmdb_kv *k = (struct lmdb_kv *)w->kv;

	pthread_mutex_lock(&k->mu);
	pthread_cond_broadcast(&k->changed);
	pthread_mutex_unlock(&k->mu);
}

static void lmdb_watch_release(struct dm_kv_watch *w)
{
	free(w->impl);
	w->impl = NULL;
}

/* ---- open and close ---- */

void dm_kv_lmdb_opts_default(struct dm_kv_lmdb_opts *out)
{
	out->map_size = (size_t)1 << 30;
	out->map_size_max = sizeof(size_t) > 4 ? (size_t)64 << 30 : (size_t)2 << 30;
	out->log_keep = 100000;
	out->log_max_bytes = (uint64_t)256 << 20;
	out->sync = true;
}

static void lmdb_free(struct dm_kv *kv)
{
	struct lmdb_kv *k = (struct lmdb_kv *)kv;

	if (k->reaper_ok) {
		pthread_mutex_lock(&k->lease_mu);
		k->closing = true;
		pthread_cond_broadcast(&k->lease_cond);
		pthread_mutex_unlock(&k->lease_mu);
		pthread_join(k->reaper, NULL);
	}
	if (k->env)
		mdb_env_close(k->env);
	if (k->lock_fd >= 0)
		close(k->lock_fd);
	if (k->locks_ok) {
		pthread_rwlock_destroy(&k->txn_lock);
		pthread_mutex_destroy(&k->write_mu);
		pthread_mutex_destroy(&k->mu);
		pthread_cond_destroy(&k->changed);
		pthread_mutex_destroy(&k->lease_mu);
		pthread_cond_destroy(&k->lease_cond);
	}
	if (k->base_ok)
		dm_kv_base_release(&k->base);
	free(k->leases);
	free(k->dir);
	free(k);
}

static int init_locks(struct lmdb_kv *k, struct dm_err *err)
{
	pthread_rwlockattr_t ra;
	pthread_condattr_t ca;
	int rc;

	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_rwlock_init(&k->txn_lock, &ra);
	if (rc == 0 && (rc = pthread_mutex_init(&k->write_mu, NULL)) != 0)
		pthread_rwlock_destroy(&k->txn_lock);
	if (rc == 0 && (rc = pthread_mutex_init(&k->mu, NULL)) != 0) {
		pthread_mutex_destroy(&k->write_mu);
		pthread_rwlock_destroy(&k->txn_lock);
	}
	if (rc == 0 && (rc = pthread_cond_init(&k->changed, NULL)) != 0) {
		pthread_mutex_destroy(&k->mu);
		pthread_mutex_destroy(&k->write_mu);
		pthread_rwlock_destroy(&k->txn_lock);
	}
	if (rc == 0 && (rc = pthread_mutex_init(&k->lease_mu, NULL)) != 0) {
		pthread_cond_destroy(&k->changed);
		pthread_mutex_destroy(&k->mu);
		pthread_mutex_destroy(&k->write_mu);
		pthread_rwlock_destroy(&k->txn_lock);
	}
	if (rc == 0 && (rc = pthread_cond_init(&k->lease_cond, &ca)) != 0) {
		pthread_mutex_destroy(&k->lease_mu);
		pthread_cond_destroy(&k->changed);
		pthread_mutex_destroy(&k->mu);
		pthread_mutex_destroy(&k->write_mu);
		pthread_rwlock_destroy(&k->txn_lock);
	}
	pthread_condattr_destroy(&ca);
	pthread_rwlockattr_destroy(&ra);
	if (rc != 0)
		return dm_err_errno(err, rc, "cannot create the kv store's locks");
	k->locks_ok = true;
	return 0;
}

/* Takes the lock file, so that one process at a time opens the store. */
static int lock_dir(struct lmdb_kv *k, struct dm_err *err)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s/dm-kv.lock", k->dir) >= sizeof(path))
		return dm_err_set(err, DM_ETOOBIG, "path '%s' is too long", k->dir);
	k->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (k->lock_fd < 0)
		return dm_err_errno(err, errno, "cannot open '%s'", path);
	if (flock(k->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return dm_err_set(err, DM_EBUSY,
			                  "kv store '%s' is in use by another process", k->dir);
		return dm_err_errno(err, errno, "cannot lock '%s'", path);
	}
	return 0;
}

/* Opens the sub-databases, checks the format, loads revision and leases. */
static int open_dbs(struct lmdb_kv *k, struct dm_err *err)
{
	static const struct {
		const char *name;
		size_t off;
	} dbs[] = {
	    {"kv", offsetof(struct lmdb_kv, db_kv)},
	    {"log", offsetof(struct lmdb_kv, db_log)},
	    {"meta", offsetof(struct lmdb_kv, db_meta)},
	    {"leases", offsetof(struct lmdb_kv, db_leases)},
	    {"lease_keys", offsetof(struct lmdb_kv, db_lease_keys)},
	};
	int64_t format, now = dm_now_monotonic_ns();
	MDB_cursor *cur = NULL;
	MDB_txn *txn = NULL;
	MDB_val key, val;
	int rc;

	if ((rc = mdb_txn_begin(k->env, NULL, 0, &txn))) {
		txn = NULL;
		rc = mdb_err(err, rc, "begin a write");
		goto done;
	}
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)k + dbs[i].off);

		if ((rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbi))) {
			rc = mdb_err(err, rc, "open a table");
			goto done;
		}
	}
	if ((rc = meta_get(txn, k->db_meta, "format", &format, err)) < 0)
		goto done;
	if (format == 0) {
		unsigned char b[8];
		MDB_val fk = mval("format", 6), fv = mval(b, 8);

		put_be64(b, FORMAT_VERSION);
		if ((rc = mdb_put(txn, k->db_meta, &fk, &fv, 0))) {
			rc = mdb_err(err, rc, "write metadata");
			goto done;
		}
	} else if (format != FORMAT_VERSION) {
		rc = dm_err_set(err, DM_EUNSUPPORTED, "kv store '%s' has format %lld, not %d",
		                k->dir, (long long)format, FORMAT_VERSION);
		goto done;
	}
	if ((rc = meta_get(txn, k->db_meta, "revision", &k->rev, err)) < 0)
		goto done;
	if ((rc = mdb_cursor_open(txn, k->db_leases, &cur))) {
		cur = NULL;
		rc = mdb_err(err, rc, "open a cursor");
		goto done;
	}
	rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	while (rc == 0) {
		int64_t id, ttl;

		if (key.mv_size != 8 || val.mv_size != 8) {
			rc = dm_err_set(err, DM_ECORRUPT, "kv store '%s' has a bad lease", k->dir);
			goto done;
		}
		id = get_be64(key.mv_data);
		ttl = get_be64(val.mv_data);
		if ((rc = lease_track(k, id, ttl, now + ttl * NS_PER_S, err)) < 0)
			goto done;
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (rc != MDB_NOTFOUND) {
		rc = mdb_err(err, rc, "read leases");
		goto done;
	}
	mdb_cursor_close(cur);
	cur = NULL;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc)
		rc = mdb_err(err, rc, "commit");
done:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

int dm_kv_open_lmdb_opts(struct dm_kv **out, const char *dir, const struct dm_kv_lmdb_opts *opts,
                         struct dm_err *err)
{
	struct lmdb_kv *k = NULL;
	int dead, rc;

	if (!out || !dir || !*dir)
		return dm_err_set(err, DM_EINVAL, "kv store needs a directory");
	*out = NULL;
	k = calloc(1, sizeof(*k));
	if (!k || !(k->dir = strdup(dir))) {
		free(k);
		return dm_err_set(err, DM_ENOMEM, "out of memory for a kv store");
	}
	k->lock_fd = -1;
	if (opts)
		k->opts = *opts;
	else
		dm_kv_lmdb_opts_default(&k->opts);
	if (k->opts.map_size < ((size_t)1 << 20) || k->opts.map_size_max < k->opts.map_size ||
	    k->opts.log_keep < 1 || k->opts.log_max_bytes < 1) {
		rc = dm_err_set(err, DM_EINVAL, "bad options for kv store '%s'", dir);
		goto done;
	}
	if ((rc = init_locks(k, err)) < 0)
		goto done;
	if ((rc = dm_kv_base_init(&k->base, &lmdb_ops, err)) < 0)
		goto done;
	k->base_ok = true;
	if ((rc = dm_mkdir_p(dir, 0700, err)) < 0 || (rc = lock_dir(k, err)) < 0)
		goto done;
	if ((rc = mdb_env_create(&k->env))) {
		k->env = NULL;
		rc = mdb_err(err, rc, "create an environment");
		goto done;
	}
	if ((rc = mdb_env_set_maxdbs(k->env, 8)) || (rc = mdb_env_set_maxreaders(k->env, 1024)) ||
	    (rc = mdb_env_set_mapsize(k->env, k->opts.map_size))) {
		rc = mdb_err(err, rc, "configure the environment");
		goto done;
	}
	if ((rc = mdb_env_open(k->env, dir, MDB_NOTLS | (k->opts.sync ? 0 : MDB_NOSYNC), 0600))) {
		rc = dm_err_set(err, rc == ENOENT ? DM_ENOTFOUND : DM_EIO,
		                "cannot open kv store '%s': %s", dir, mdb_strerror(rc));
		goto done;
	}
	mdb_reader_check(k->env, &dead);
	if (mdb_env_get_maxkeysize(k->env) < 8 + ENC_KEY_MAX) {
		rc = dm_err_set(err, DM_EUNSUPPORTED, "LMDB keys are limited to %d bytes, need %d",
		                mdb_env_get_maxkeysize(k->env), 8 + ENC_KEY_MAX);
		goto done;
	}
	if ((rc = open_dbs(k, err)) < 0)
		goto done;
	if ((rc = pthread_create(&k->reaper, NULL, reaper_main, k)) != 0) {
		rc = dm_err_errno(err, rc, "cannot start the lease reaper");
		goto done;
	}
	k->reaper_ok = true;
	*out = &k->base;
	k = NULL;
	rc = 0;
done:
	if (k)
		lmdb_free(&k->base);
	return rc;
}

int dm_kv_open_lmdb(struct dm_kv **out, const char *dir, struct dm_err *err)
{
	return dm_kv_open_lmdb_opts(out, dir, NULL, err);
}

static const struct dm_kv_ops lmdb_ops = {
    .name = "lmdb",
    .free = lmdb_free,
    .revision = lmdb_revision,
    .get = lmdb_get,
    .range = lmdb_range,
    .txn = lmdb_txn,
    .compact = lmdb_compact,
    .lease_grant = lmdb_lease_grant,
    .lease_keepalive = lmdb_lease_keepalive,
    .lease_revoke = lmdb_lease_revoke,
    .watch_start = lmdb_watch_start,
    .watch_run = lmdb_watch_run,
    .watch_wake = lmdb_watch_wake,
    .watch_release = lmdb_watch_release,
};
