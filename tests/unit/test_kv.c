/*
 * test_kv.c - the KV interface on its embedded LMDB backend: revisions,
 * prefix ranges, compare-and-swap, transactions, watches (history, live
 * events from several threads, compaction, cancel), leases, reopening and
 * size limits.
 *
 * Every test opens its own store in a fresh directory under /tmp and
 * removes it at the end. Watch events are gathered by a collector that
 * copies them under a mutex, so tests can wait for a count and inspect
 * them in order.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kv/backend.h"
#include "kv/kv.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

/* ---- fixtures ---- */

struct fx {
	char dir[64];
	struct dm_kv *kv;
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

static struct dm_kv *open_kv(const char *dir, const struct dm_kv_lmdb_opts *opts)
{
	struct dm_kv *kv = NULL;
	struct dm_err err;

	dm_err_clear(&err);
	if (dm_kv_open_lmdb_opts(&kv, dir, opts, &err) < 0)
		fail_msg("open: %s", err.msg);
	return kv;
}

/* Every test gets a fresh directory; teardown removes it even when the
 * test failed. */
static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/dm-test-kv-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	struct dm_err err;
	int rc = dm_remove_tree(f->dir, &err);

	free(f);
	return rc;
}

static void fx_open(struct fx *f, const struct dm_kv_lmdb_opts *opts)
{
	f->kv = open_kv(f->dir, opts);
}

static void fx_close(struct fx *f)
{
	dm_kv_free(f->kv);
	f->kv = NULL;
}

/* Options for tests that write a lot: no fsync. */
static struct dm_kv_lmdb_opts fast_opts(void)
{
	struct dm_kv_lmdb_opts o;

	dm_kv_lmdb_opts_default(&o);
	o.sync = false;
	return o;
}

static int64_t put(struct dm_kv *kv, const char *key, const char *value, int64_t lease)
{
	struct dm_err err;
	int64_t rev = -1;

	if (dm_kv_put(kv, &rev, key, value, strlen(value), lease, &err) < 0)
		fail_msg("put '%s': %s", key, err.msg);
	return rev;
}

static int64_t revision(struct dm_kv *kv)
{
	struct dm_err err;
	int64_t rev = -1;

	assert_int_equal(dm_kv_revision(kv, &rev, &err), 0);
	return rev;
}

/* Asserts key has value; returns its mod_revision. */
static int64_t have_value(struct dm_kv *kv, const char *key, const char *value)
{
	struct dm_kv_kv item;
	struct dm_err err;
	int64_t mod;

	if (dm_kv_get(kv, &item, key, &err) < 0)
		fail_msg("get '%s': %s", key, err.msg);
	assert_int_equal(item.value_len, strlen(value));
	assert_string_equal(item.value, value);
	assert_string_equal(item.key, key);
	mod = item.mod_revision;
	dm_kv_kv_release(&item);
	return mod;
}

static void have_no(struct dm_kv *kv, const char *key)
{
	struct dm_kv_kv item;
	struct dm_err err;

	assert_int_equal(dm_kv_get(kv, &item, key, &err), DM_ENOTFOUND);
	assert_null(item.key);
}

/* ---- a watch collector ---- */

struct ev {
	int type;
	char *key;
	char *value;
	size_t value_len;
	int64_t rev, create, version, lease;
	int code;
	char msg[DM_ERR_MSG_MAX];
};

struct coll {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct ev *evs;
	size_t n, alloc;
	bool block; /* the first callback waits until released */
	bool entered;
	bool released;
	bool cancel_self; /* the first callback cancels its own watch */
	struct dm_kv_watch *w;
};

static void coll_init(struct coll *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cond, NULL);
}

static void coll_release(struct coll *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->evs[i].key);
		free(c->evs[i].value);
	}
	free(c->evs);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->mu);
}

static void coll_fn(const struct dm_kv_event *e, void *ctx)
{
	struct coll *c = ctx;
	struct ev *v;

	pthread_mutex_lock(&c->mu);
	if (c->n == c->alloc) {
		c->alloc = c->alloc ? c->alloc * 2 : 64;
		c->evs = realloc(c->evs, c->alloc * sizeof(*c->evs));
		assert_non_null(c->evs);
	}
	v = &c->evs[c->n];
	memset(v, 0, sizeof(*v));
	v->type = e->type;
	v->rev = e->revision;
	if (e->type == DM_KV_EVENT_FAILED) {
		assert_non_null(e->err);
		assert_null(e->key);
		v->code = e->err->code;
		snprintf(v->msg, sizeof(v->msg), "%s", e->err->msg);
	} else {
		v->key = strdup(e->key);
		assert_int_equal(strlen(e->key), e->key_len);
		if (e->type == DM_KV_EVENT_PUT) {
			v->value = malloc(e->value_len + 1);
			memcpy(v->value, e->value, e->value_len + 1);
			v->value_len = e->value_len;
			v->create = e->create_revision;
			v->version = e->version;
			v->lease = e->lease;
		} else {
			assert_null(e->value);
		}
	}
	c->n++;
	pthread_cond_broadcast(&c->cond);
	if (c->block && !c->entered) {
		c->entered = true;
		pthread_cond_broadcast(&c->cond);
		while (!c->released)
			pthread_cond_wait(&c->cond, &c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	if (c->cancel_self && c->n == 1)
		dm_kv_watch_cancel(c->w);
}

/* Waits up to ms for at least n events; returns how many there are. */
static size_t coll_wait(struct coll *c, size_t n, int ms)
{
	struct timespec ts;
	size_t got;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->mu);
	while (c->n < n && pthread_cond_timedwait(&c->cond, &c->mu, &ts) == 0)
		;
	got = c->n;
	pthread_mutex_unlock(&c->mu);
	return got;
}

static size_t coll_count(struct coll *c)
{
	size_t n;

	pthread_mutex_lock(&c->mu);
	n = c->n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

static void is_event(const struct ev *v, int type, const char *key, const char *value, int64_t rev)
{
	assert_int_equal(v->type, type);
	assert_string_equal(v->key, key);
	assert_int_equal(v->rev, rev);
	if (value)
		assert_string_equal(v->value, value);
}

/* ---- tests ---- */

static void test_put_get_delete_revisions_step_by_one(void **state)
{
	struct dm_kv_kv item;
	struct dm_err err;
	struct fx *f = *state;
	int64_t rev = -1;

	fx_open(f, NULL);
	assert_string_equal(dm_kv_backend(f->kv), "lmdb");
	assert_int_equal(revision(f->kv), 0);
	assert_int_equal(put(f->kv, "a", "1", 0), 1);

	assert_int_equal(dm_kv_get(f->kv, &item, "a", &err), 0);
	assert_string_equal(item.value, "1");
	assert_int_equal(item.create_revision, 1);
	assert_int_equal(item.mod_revision, 1);
	assert_int_equal(item.version, 1);
	assert_int_equal(item.lease, 0);
	dm_kv_kv_release(&item);

	assert_int_equal(put(f->kv, "a", "22", 0), 2);
	assert_int_equal(dm_kv_get(f->kv, &item, "a", &err), 0);
	assert_string_equal(item.value, "22");
	assert_int_equal(item.create_revision, 1);
	assert_int_equal(item.mod_revision, 2);
	assert_int_equal(item.version, 2);
	dm_kv_kv_release(&item);

	assert_int_equal(put(f->kv, "b", "x", 0), 3);
	assert_int_equal(dm_kv_delete(f->kv, &rev, "a", &err), 0);
	assert_int_equal(rev, 4);
	have_no(f->kv, "a");
	/* deleting what is not there is an error and changes nothing */
	assert_int_equal(dm_kv_delete(f->kv, &rev, "a", &err), DM_ENOTFOUND);
	assert_non_null(strstr(err.msg, "'a'"));
	assert_int_equal(revision(f->kv), 4);

	/* a key put again starts a new life */
	assert_int_equal(put(f->kv, "a", "3", 0), 5);
	assert_int_equal(dm_kv_get(f->kv, &item, "a", &err), 0);
	assert_int_equal(item.create_revision, 5);
	assert_int_equal(item.version, 1);
	dm_kv_kv_release(&item);

	/* values are bytes: NULs inside, and empty values */
	assert_int_equal(dm_kv_put(f->kv, &rev, "bin", "x\0y", 3, 0, &err), 0);
	assert_int_equal(rev, 6);
	assert_int_equal(dm_kv_get(f->kv, &item, "bin", &err), 0);
	assert_int_equal(item.value_len, 3);
	assert_memory_equal(item.value, "x\0y", 3);
	dm_kv_kv_release(&item);
	assert_int_equal(dm_kv_put(f->kv, &rev, "empty", NULL, 0, 0, &err), 0);
	have_value(f->kv, "empty", "");
	assert_int_equal(revision(f->kv), 7);
	fx_close(f);
}

static void have_keys(struct dm_kv *kv, const char *prefix, size_t limit, bool more,
                      const char *const *keys, size_t n)
{
	struct dm_kv_kvs l;
	struct dm_err err;

	assert_int_equal(dm_kv_range(kv, &l, prefix, limit, &err), 0);
	assert_int_equal(l.len, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l.items[i].key, keys[i]);
	assert_int_equal(l.more, more);
	assert_int_equal(l.revision, revision(kv));
	dm_kv_kvs_release(&l);
}

static void test_range_is_sorted_and_bounded_to_the_prefix(void **state)
{
	static const char *const inserted[] = {"ab", "a/b", "b", "a/", "a", "a0", "a/a", "a/b/c"};
	static const char *const under_slash[] = {"a/", "a/a", "a/b", "a/b/c"};
	static const char *const under_a[] = {"a", "a/", "a/a", "a/b", "a/b/c", "a0", "ab"};
	static const char *const all[] = {"a", "a/", "a/a", "a/b", "a/b/c", "a0", "ab", "b"};
	struct dm_kv_kvs l;
	struct dm_err err;
	struct fx *f = *state;

	fx_open(f, NULL);
	for (size_t i = 0; i < sizeof(inserted) / sizeof(inserted[0]); i++)
		put(f->kv, inserted[i], inserted[i], 0);
	have_keys(f->kv, "a/", 0, false, under_slash, 4);
	have_keys(f->kv, "a", 0, false, under_a, 7);
	have_keys(f->kv, "", 0, false, all, 8);
	have_keys(f->kv, "a/", 2, true, under_slash, 2);
	have_keys(f->kv, "a/", 4, false, under_slash, 4);
	have_keys(f->kv, "zzz", 0, false, NULL, 0);

	/* values and revisions come along */
	assert_int_equal(dm_kv_range(f->kv, &l, "a/b", 0, &err), 0);
	assert_int_equal(l.len, 2);
	assert_string_equal(l.items[1].value, "a/b/c");
	assert_int_equal(l.items[0].mod_revision, 2);
	assert_int_equal(l.items[1].mod_revision, 8);
	dm_kv_kvs_release(&l);
	fx_close(f);
}

static void test_long_keys_sort_and_range_like_short_ones(void **state)
{
	char head[449], base[461], k[4][470], shorter[450];
	const char *want[5];
	size_t deleted = 0;
	struct dm_err err;
	struct fx *f = *state;

	fx_open(f, NULL);
	/* keys past the 448 bytes LMDB can hold inline, sharing that much */
	memset(head, 'k', 448);
	head[448] = '\0';
	memset(base, 'k', 460);
	base[460] = '\0';
	snprintf(k[0], sizeof(k[0]), "%sc", base);
	snprintf(k[1], sizeof(k[1]), "%sa", base);
	snprintf(k[2], sizeof(k[2]), "%sb/x", base);
	snprintf(k[3], sizeof(k[3]), "%sb", base);
	memset(shorter, 'k', 447);
	shorter[447] = 'l';
	shorter[448] = '\0';
	for (int i = 0; i < 4; i++)
		put(f->kv, k[i], k[i], 0);
	put(f->kv, head, "head", 0);
	put(f->kv, shorter, "shorter", 0);

	want[0] = k[1];
	want[1] = k[3];
	want[2] = k[2];
	want[3] = k[0];
	have_keys(f->kv, base, 0, false, want, 4);
	have_keys(f->kv, base, 2, true, want, 2);
	have_keys(f->kv, base, 3, true, want, 3);
	have_value(f->kv, k[3], k[3]);

	/* the 448-byte key sorts before the longer ones it is a prefix of */
	{
		const char *w2[] = {head, k[1], k[3], k[2], k[0]};

		have_keys(f->kv, head, 0, false, w2, 5);
		have_keys(f->kv, head, 1, true, w2, 1);
	}
	assert_int_equal(dm_kv_delete_prefix(f->kv, NULL, k[3], &deleted, &err), 0);
	assert_int_equal(deleted, 2);
	have_no(f->kv, k[2]);
	have_value(f->kv, k[0], k[0]);
	have_value(f->kv, shorter, "shorter");
	fx_close(f);
}

static void test_cas_succeeds_only_on_the_expected_revision(void **state)
{
	struct dm_err err;
	int64_t r1 = 0, r2 = 0, rev;
	struct fx *f = *state;

	fx_open(f, NULL);
	/* create if absent */
	assert_int_equal(dm_kv_cas(f->kv, &r1, "c", 0, "v1", 2, 0, &err), 0);
	assert_int_equal(r1, 1);
	assert_int_equal(dm_kv_cas(f->kv, &rev, "c", 0, "v0", 2, 0, &err), DM_ECONFLICT);
	assert_non_null(strstr(err.msg, "already exists"));
	have_value(f->kv, "c", "v1");
	assert_int_equal(revision(f->kv), 1);

	assert_int_equal(dm_kv_cas(f->kv, &r2, "c", r1, "v2", 2, 0, &err), 0);
	assert_int_equal(r2, 2);
	/* r1 is stale now */
	assert_int_equal(dm_kv_cas(f->kv, &rev, "c", r1, "v3", 2, 0, &err), DM_ECONFLICT);
	assert_non_null(strstr(err.msg, "'c'"));
	assert_int_equal(have_value(f->kv, "c", "v2"), r2);
	/* a key that does not exist has no revision to match */
	assert_int_equal(dm_kv_cas(f->kv, &rev, "d", 1, "x", 1, 0, &err), DM_ECONFLICT);
	have_no(f->kv, "d");
	assert_int_equal(revision(f->kv), 2);
	fx_close(f);
}

static void test_txn_is_all_or_nothing(void **state)
{
	struct dm_kv_op ops[3] = {
	    {DM_KV_OP_PUT, "x", "2", 1, 0},
	    {DM_KV_OP_DELETE, "y", NULL, 0, 0},
	    {DM_KV_OP_PUT, "z", "3", 1, 0},
	};
	struct dm_kv_op many[DM_KV_TXN_MAX_OPS + 1];
	struct dm_kv_cmp cmps[3];
	struct dm_kv_kvs l;
	struct dm_err err;
	int64_t rx, ry, rev = 0, before;
	size_t deleted = 9;
	struct fx *f = *state;

	fx_open(f, NULL);
	rx = put(f->kv, "x", "1", 0);
	ry = put(f->kv, "y", "1", 0);
	before = revision(f->kv);

	cmps[0] = (struct dm_kv_cmp){"x", rx};
	cmps[1] = (struct dm_kv_cmp){"y", ry + 100};
	assert_int_equal(dm_kv_txn(f->kv, &rev, cmps, 2, ops, 3, &err), DM_ECONFLICT);
	assert_non_null(strstr(err.msg, "'y'"));
	have_value(f->kv, "x", "1");
	have_value(f->kv, "y", "1");
	have_no(f->kv, "z");
	assert_int_equal(revision(f->kv), before);

	cmps[1] = (struct dm_kv_cmp){"y", ry};
	cmps[2] = (struct dm_kv_cmp){"w", 0};
	assert_int_equal(dm_kv_txn(f->kv, &rev, cmps, 3, ops, 3, &err), 0);
	assert_int_equal(rev, before + 1);
	assert_int_equal(have_value(f->kv, "x", "2"), rev);
	assert_int_equal(have_value(f->kv, "z", "3"), rev);
	have_no(f->kv, "y");

	/* one op per key */
	ops[1] = (struct dm_kv_op){DM_KV_OP_DELETE, "x", NULL, 0, 0};
	assert_int_equal(dm_kv_txn(f->kv, &rev, NULL, 0, ops, 2, &err), DM_EINVAL);
	ops[1] = (struct dm_kv_op){DM_KV_OP_DELETE_PREFIX, "", NULL, 0, 0};
	assert_int_equal(dm_kv_txn(f->kv, &rev, NULL, 0, ops, 2, &err), DM_EINVAL);
	for (size_t i = 0; i < DM_KV_TXN_MAX_OPS + 1; i++)
		many[i] = (struct dm_kv_op){DM_KV_OP_DELETE, "x", NULL, 0, 0};
	assert_int_equal(dm_kv_txn(f->kv, &rev, NULL, 0, many, DM_KV_TXN_MAX_OPS + 1, &err),
	                 DM_ETOOBIG);
	assert_int_equal(revision(f->kv), before + 1);

	/* a txn that changes nothing keeps the revision */
	ops[0] = (struct dm_kv_op){DM_KV_OP_DELETE, "nothing", NULL, 0, 0};
	assert_int_equal(dm_kv_txn(f->kv, &rev, NULL, 0, ops, 1, &err), 0);
	assert_int_equal(rev, before + 1);

	/* a prefix delete is one revision however many keys it takes */
	put(f->kv, "p/1", "1", 0);
	put(f->kv, "p/2", "2", 0);
	put(f->kv, "q", "3", 0);
	before = revision(f->kv);
	assert_int_equal(dm_kv_delete_prefix(f->kv, &rev, "p/", &deleted, &err), 0);
	assert_int_equal(deleted, 2);
	assert_int_equal(rev, before + 1);
	assert_int_equal(dm_kv_range(f->kv, &l, "p", 0, &err), 0);
	assert_int_equal(l.len, 0);
	dm_kv_kvs_release(&l);
	have_value(f->kv, "q", "3");
	assert_int_equal(dm_kv_delete_prefix(f->kv, &rev, "p/", &deleted, &err), 0);
	assert_int_equal(deleted, 0);
	assert_int_equal(rev, before + 1);
	fx_close(f);
}

static void test_watch_from_zero_replays_history_in_order(void **state)
{
	struct dm_kv_op two[2] = {
	    {DM_KV_OP_PUT, "w/c", "3", 1, 0},
	    {DM_KV_OP_PUT, "w/d", "4", 1, 0},
	};
	struct dm_kv_watch *w0 = NULL, *w3 = NULL;
	struct coll c0, c3;
	struct dm_err err;
	struct fx *f = *state;

	fx_open(f, NULL);
	put(f->kv, "w/a", "1", 0);                                               /* 1 */
	put(f->kv, "other", "x", 0);                                             /* 2 */
	put(f->kv, "w/b", "2", 0);                                               /* 3 */
	assert_int_equal(dm_kv_delete(f->kv, NULL, "w/a", &err), 0);             /* 4 */
	assert_int_equal(dm_kv_txn(f->kv, NULL, NULL, 0, two, 2, &err), 0);      /* 5 */
	assert_int_equal(dm_kv_delete_prefix(f->kv, NULL, "w/", NULL, &err), 0); /* 6 */

	coll_init(&c0);
	coll_init(&c3);
	assert_int_equal(dm_kv_watch(f->kv, &w0, "w/", 0, coll_fn, &c0, &err), 0);
	assert_int_equal(dm_kv_watch(f->kv, &w3, "w/", 3, coll_fn, &c3, &err), 0);
	assert_int_equal(coll_wait(&c0, 8, 5000), 8);
	is_event(&c0.evs[0], DM_KV_EVENT_PUT, "w/a", "1", 1);
	assert_int_equal(c0.evs[0].version, 1);
	assert_int_equal(c0.evs[0].create, 1);
	is_event(&c0.evs[1], DM_KV_EVENT_PUT, "w/b", "2", 3);
	is_event(&c0.evs[2], DM_KV_EVENT_DELETE, "w/a", NULL, 4);
	is_event(&c0.evs[3], DM_KV_EVENT_PUT, "w/c", "3", 5);
	is_event(&c0.evs[4], DM_KV_EVENT_PUT, "w/d", "4", 5);
	is_event(&c0.evs[5], DM_KV_EVENT_DELETE, "w/b", NULL, 6);
	is_event(&c0.evs[6], DM_KV_EVENT_DELETE, "w/c", NULL, 6);
	is_event(&c0.evs[7], DM_KV_EVENT_DELETE, "w/d", NULL, 6);

	/* from revision 3: only what came after it */
	assert_int_equal(coll_wait(&c3, 6, 5000), 6);
	is_event(&c3.evs[0], DM_KV_EVENT_DELETE, "w/a", NULL, 4);
	is_event(&c3.evs[5], DM_KV_EVENT_DELETE, "w/d", NULL, 6);

	/* then live changes, after the history, and nothing twice */
	put(f->kv, "other", "y", 0);
	put(f->kv, "w/e", "5", 0);
	assert_int_equal(coll_wait(&c0, 9, 5000), 9);
	is_event(&c0.evs[8], DM_KV_EVENT_PUT, "w/e", "5", 8);
	sleep_ms(100);
	assert_int_equal(coll_count(&c0), 9);
	assert_int_equal(coll_count(&c3), 7);

	dm_kv_watch_cancel(w0);
	dm_kv_watch_cancel(w3);
	coll_release(&c0);
	coll_release(&c3);
	fx_close(f);
}

#define WRITERS         4
#define PUTS_PER_WRITER 250

struct writer {
	struct dm_kv *kv;
	int id;
	int failures;
};

static void *writer_main(void *arg)
{
	struct writer *wr = arg;
	char key[32], value[16];
	struct dm_err err;

	for (int i = 0; i < PUTS_PER_WRITER; i++) {
		snprintf(key, sizeof(key), "t/%d/%04d", wr->id, i);
		snprintf(value, sizeof(value), "%d", i);
		if (dm_kv_put(wr->kv, NULL, key, value, strlen(value), 0, &err) < 0)
			wr->failures++;
	}
	return NULL;
}

static void test_watch_sees_live_puts_from_4_threads_once_in_order(void **state)
{
	struct dm_kv_lmdb_opts o = fast_opts();
	static bool seen[WRITERS][PUTS_PER_WRITER];
	struct writer wr[WRITERS];
	pthread_t th[WRITERS];
	int last[WRITERS];
	struct dm_kv_watch *w = NULL;
	struct dm_err err;
	struct coll c;
	int64_t rev0;
	struct fx *f = *state;
	size_t total = WRITERS * PUTS_PER_WRITER;

	memset(seen, 0, sizeof(seen));
	fx_open(f, &o);
	put(f->kv, "t/before", "old", 0);
	put(f->kv, "u/unrelated", "x", 0);
	rev0 = revision(f->kv);
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "t/", rev0, coll_fn, &c, &err), 0);
	for (int i = 0; i < WRITERS; i++) {
		wr[i] = (struct writer){f->kv, i, 0};
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &wr[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(wr[i].failures, 0);
		last[i] = -1;
	}
	assert_int_equal(revision(f->kv), rev0 + (int64_t)total);
	assert_int_equal(coll_wait(&c, total, 30000), total);
	sleep_ms(200);
	assert_int_equal(coll_count(&c), total);
	for (size_t i = 0; i < total; i++) {
		int t, n;

		assert_int_equal(c.evs[i].type, DM_KV_EVENT_PUT);
		/* only these writes happened: revisions are consecutive */
		assert_int_equal(c.evs[i].rev, rev0 + 1 + (int64_t)i);
		assert_int_equal(sscanf(c.evs[i].key, "t/%d/%d", &t, &n), 2);
		assert_true(t >= 0 && t < WRITERS && n >= 0 && n < PUTS_PER_WRITER);
		assert_false(seen[t][n]);
		seen[t][n] = true;
		/* each writer's puts arrive in the order it made them */
		assert_int_equal(n, last[t] + 1);
		last[t] = n;
	}
	dm_kv_watch_cancel(w);
	coll_release(&c);
	fx_close(f);
}

static void test_watch_from_a_compacted_revision_fails(void **state)
{
	struct dm_kv_lmdb_opts o = fast_opts();
	struct dm_kv_watch *w = NULL;
	struct coll c, late;
	struct dm_err err;
	char key[16];
	struct fx *f = *state;
	int64_t cur;

	o.log_keep = 10;
	fx_open(f, &o);
	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "k/%d", i);
		put(f->kv, key, key, 0);
	}
	/* the log kept revisions 21..30 */
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", 0, coll_fn, &c, &err), DM_KV_ECOMPACTED);
	assert_null(w);
	assert_non_null(strstr(err.msg, "revision 0 compacted"));
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", 19, coll_fn, &c, &err), DM_KV_ECOMPACTED);
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", 20, coll_fn, &c, &err), 0);
	assert_int_equal(coll_wait(&c, 10, 5000), 10);
	is_event(&c.evs[0], DM_KV_EVENT_PUT, "k/20", "k/20", 21);
	is_event(&c.evs[9], DM_KV_EVENT_PUT, "k/29", "k/29", 30);
	dm_kv_watch_cancel(w);
	coll_release(&c);

	/* explicit compaction */
	assert_int_equal(dm_kv_compact(f->kv, 25, &err), 0);
	assert_int_equal(dm_kv_compact(f->kv, 3, &err), 0);
	assert_int_equal(dm_kv_compact(f->kv, 1000, &err), DM_EINVAL);
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "", 24, coll_fn, &c, &err), DM_KV_ECOMPACTED);
	assert_int_equal(dm_kv_watch(f->kv, &w, "", 25, coll_fn, &c, &err), 0);
	assert_int_equal(coll_wait(&c, 5, 5000), 5);
	is_event(&c.evs[0], DM_KV_EVENT_PUT, "k/25", "k/25", 26);
	dm_kv_watch_cancel(w);
	coll_release(&c);

	/* history compacted under a watch that lags: one FAILED, then nothing */
	coll_init(&late);
	late.block = true;
	cur = revision(f->kv);
	assert_int_equal(dm_kv_watch(f->kv, &w, "k/", cur, coll_fn, &late, &err), 0);
	put(f->kv, "k/a", "1", 0);
	pthread_mutex_lock(&late.mu);
	while (!late.entered)
		pthread_cond_wait(&late.cond, &late.mu);
	pthread_mutex_unlock(&late.mu);
	put(f->kv, "k/b", "2", 0);
	put(f->kv, "k/c", "3", 0);
	assert_int_equal(dm_kv_compact(f->kv, revision(f->kv), &err), 0);
	pthread_mutex_lock(&late.mu);
	late.released = true;
	pthread_cond_broadcast(&late.cond);
	pthread_mutex_unlock(&late.mu);
	assert_int_equal(coll_wait(&late, 2, 5000), 2);
	is_event(&late.evs[0], DM_KV_EVENT_PUT, "k/a", "1", cur + 1);
	assert_int_equal(late.evs[1].type, DM_KV_EVENT_FAILED);
	assert_int_equal(late.evs[1].code, DM_KV_ECOMPACTED);
	assert_non_null(strstr(late.evs[1].msg, "compacted"));
	put(f->kv, "k/d", "4", 0);
	sleep_ms(100);
	assert_int_equal(coll_count(&late), 2);
	dm_kv_watch_cancel(w);
	coll_release(&late);
	fx_close(f);
}

static void test_watch_cancel_stops_delivery(void **state)
{
	struct dm_kv_watch *w = NULL, *left = NULL;
	struct coll c, self, open_at_close;
	struct dm_err err;
	struct fx *f = *state;

	fx_open(f, NULL);
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "c/", 0, coll_fn, &c, &err), 0);
	put(f->kv, "c/1", "1", 0);
	assert_int_equal(coll_wait(&c, 1, 5000), 1);
	dm_kv_watch_cancel(w);
	put(f->kv, "c/2", "2", 0);
	sleep_ms(100);
	assert_int_equal(coll_count(&c), 1);

	/* a callback that cancels its own watch gets nothing more */
	coll_init(&self);
	self.cancel_self = true;
	assert_int_equal(dm_kv_watch(f->kv, &self.w, "c/", revision(f->kv), coll_fn, &self, &err),
	                 0);
	put(f->kv, "c/3", "3", 0);
	assert_int_equal(coll_wait(&self, 1, 5000), 1);
	put(f->kv, "c/4", "4", 0);
	sleep_ms(100);
	assert_int_equal(coll_count(&self), 1);

	/* a watch left open is ended by dm_kv_free */
	coll_init(&open_at_close);
	assert_int_equal(dm_kv_watch(f->kv, &left, "", 0, coll_fn, &open_at_close, &err), 0);
	assert_int_equal(coll_wait(&open_at_close, 4, 5000), 4);
	fx_close(f);
	coll_release(&c);
	coll_release(&self);
	coll_release(&open_at_close);
}

static void test_lease_expiry_deletes_keys_and_watch_sees_it(void **state)
{
	struct dm_kv_watch *w = NULL;
	struct dm_kv_kv item;
	struct dm_err err;
	struct coll c;
	int64_t lease = 0, start, cur, rev;
	struct fx *f = *state;
	bool gone = false;

	fx_open(f, NULL);
	assert_int_equal(dm_kv_lease_grant(f->kv, &lease, 1, &err), 0);
	assert_true(lease > 0);
	put(f->kv, "l/k", "v", lease);
	put(f->kv, "l/keep", "v", 0);
	assert_int_equal(dm_kv_get(f->kv, &item, "l/k", &err), 0);
	assert_int_equal(item.lease, lease);
	dm_kv_kv_release(&item);
	cur = revision(f->kv);
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "l/", cur, coll_fn, &c, &err), 0);

	start = dm_now_monotonic_ns();
	while (dm_now_monotonic_ns() - start < 5000000000LL) {
		int rc = dm_kv_get(f->kv, &item, "l/k", &err);

		dm_kv_kv_release(&item);
		if (rc == DM_ENOTFOUND) {
			gone = true;
			break;
		}
		assert_int_equal(rc, 0);
		sleep_ms(50);
	}
	assert_true(gone);
	/* not before its time: the TTL is 1 s from the grant */
	assert_true(dm_now_monotonic_ns() - start > 500000000LL);
	have_value(f->kv, "l/keep", "v");
	assert_int_equal(revision(f->kv), cur + 1);
	assert_int_equal(coll_wait(&c, 1, 5000), 1);
	is_event(&c.evs[0], DM_KV_EVENT_DELETE, "l/k", NULL, cur + 1);

	assert_int_equal(dm_kv_lease_keepalive(f->kv, NULL, lease, &err), DM_ENOTFOUND);
	assert_int_equal(dm_kv_put(f->kv, &rev, "l/x", "v", 1, lease, &err), DM_ENOTFOUND);
	have_no(f->kv, "l/x");
	dm_kv_watch_cancel(w);
	coll_release(&c);
	fx_close(f);
}

static void test_lease_keepalive_extends_and_revoke_deletes(void **state)
{
	struct dm_err err;
	int64_t lease = 0, ttl = 0, other = 0, before, start;
	struct fx *f = *state;
	bool gone = false;

	fx_open(f, NULL);
	assert_int_equal(dm_kv_lease_grant(f->kv, &lease, 1, &err), 0);
	put(f->kv, "ka/k", "v", lease);
	for (int i = 0; i < 10; i++) {
		sleep_ms(250);
		assert_int_equal(dm_kv_lease_keepalive(f->kv, &ttl, lease, &err), 0);
		assert_int_equal(ttl, 1);
	}
	/* 2.5 s after the grant, more than twice the TTL */
	have_value(f->kv, "ka/k", "v");
	start = dm_now_monotonic_ns();
	while (!gone && dm_now_monotonic_ns() - start < 5000000000LL) {
		struct dm_kv_kv item;

		gone = dm_kv_get(f->kv, &item, "ka/k", &err) == DM_ENOTFOUND;
		dm_kv_kv_release(&item);
		sleep_ms(50);
	}
	assert_true(gone);

	/* revoke: the lease's keys go at one revision; a key put again
	 * without the lease stays */
	assert_int_equal(dm_kv_lease_grant(f->kv, &other, 60, &err), 0);
	assert_int_not_equal(other, lease);
	put(f->kv, "r/1", "1", other);
	put(f->kv, "r/2", "2", other);
	put(f->kv, "r/3", "3", other);
	put(f->kv, "r/3", "3b", 0);
	before = revision(f->kv);
	assert_int_equal(dm_kv_lease_revoke(f->kv, other, &err), 0);
	assert_int_equal(revision(f->kv), before + 1);
	have_no(f->kv, "r/1");
	have_no(f->kv, "r/2");
	have_value(f->kv, "r/3", "3b");
	assert_int_equal(dm_kv_lease_revoke(f->kv, other, &err), DM_ENOTFOUND);
	assert_int_equal(dm_kv_lease_keepalive(f->kv, NULL, other, &err), DM_ENOTFOUND);
	assert_int_equal(dm_kv_put(f->kv, NULL, "r/4", "x", 1, 9999, &err), DM_ENOTFOUND);
	assert_int_equal(dm_kv_lease_grant(f->kv, &other, 0, &err), DM_EINVAL);
	fx_close(f);
}

static void test_reopen_keeps_data_revision_history_and_leases(void **state)
{
	struct dm_kv *second = NULL;
	struct dm_kv_watch *w = NULL;
	struct dm_kv_kv item;
	struct dm_err err;
	struct coll c;
	int64_t lease = 0, rev;
	struct fx *f = *state;

	fx_open(f, NULL);
	put(f->kv, "a", "1", 0);
	put(f->kv, "b", "2", 0);
	assert_int_equal(dm_kv_delete(f->kv, NULL, "b", &err), 0);
	assert_int_equal(dm_kv_lease_grant(f->kv, &lease, 60, &err), 0);
	put(f->kv, "l", "leased", lease);
	assert_int_equal(revision(f->kv), 4);

	/* one process at a time */
	assert_int_equal(dm_kv_open_lmdb(&second, f->dir, &err), DM_EBUSY);
	assert_null(second);

	dm_kv_free(f->kv);
	f->kv = open_kv(f->dir, NULL);
	assert_int_equal(revision(f->kv), 4);
	have_value(f->kv, "a", "1");
	have_no(f->kv, "b");
	assert_int_equal(dm_kv_get(f->kv, &item, "l", &err), 0);
	assert_int_equal(item.lease, lease);
	dm_kv_kv_release(&item);
	assert_int_equal(dm_kv_lease_keepalive(f->kv, NULL, lease, &err), 0);

	/* the change log survived too */
	coll_init(&c);
	assert_int_equal(dm_kv_watch(f->kv, &w, "", 0, coll_fn, &c, &err), 0);
	assert_int_equal(coll_wait(&c, 4, 5000), 4);
	is_event(&c.evs[2], DM_KV_EVENT_DELETE, "b", NULL, 3);
	dm_kv_watch_cancel(w);
	coll_release(&c);

	assert_int_equal(dm_kv_lease_revoke(f->kv, lease, &err), 0);
	have_no(f->kv, "l");
	assert_int_equal(dm_kv_put(f->kv, &rev, "c", "3", 1, 0, &err), 0);
	assert_int_equal(rev, 6);
	/* a new lease never reuses an old id */
	{
		int64_t again = 0;

		assert_int_equal(dm_kv_lease_grant(f->kv, &again, 60, &err), 0);
		assert_true(again > lease);
	}
	fx_close(f);
}

static void test_oversized_keys_and_values_are_rejected(void **state)
{
	char *key = malloc(DM_KV_KEY_MAX + 2);
	char *value = malloc(DM_KV_VALUE_MAX + 1);
	struct dm_kv_kvs l;
	struct dm_kv_kv item;
	struct dm_err err;
	int64_t rev;
	struct fx *f = *state;

	assert_non_null(key);
	assert_non_null(value);
	fx_open(f, NULL);
	memset(key, 'x', DM_KV_KEY_MAX + 1);
	key[DM_KV_KEY_MAX + 1] = '\0';
	memset(value, 'v', DM_KV_VALUE_MAX + 1);

	assert_int_equal(dm_kv_put(f->kv, &rev, key, "v", 1, 0, &err), DM_ETOOBIG);
	assert_int_equal(dm_kv_get(f->kv, &item, key, &err), DM_ETOOBIG);
	assert_int_equal(dm_kv_put(f->kv, &rev, "k", value, DM_KV_VALUE_MAX + 1, 0, &err),
	                 DM_ETOOBIG);
	assert_non_null(strstr(err.msg, "'k'"));
	assert_int_equal(dm_kv_put(f->kv, &rev, "", "v", 1, 0, &err), DM_EINVAL);
	assert_int_equal(dm_kv_put(f->kv, &rev, NULL, "v", 1, 0, &err), DM_EINVAL);
	assert_int_equal(revision(f->kv), 0);

	/* the limits themselves are fine */
	key[DM_KV_KEY_MAX] = '\0';
	assert_int_equal(dm_kv_put(f->kv, &rev, key, value, DM_KV_VALUE_MAX, 0, &err), 0);
	assert_int_equal(dm_kv_get(f->kv, &item, key, &err), 0);
	assert_int_equal(item.key_len, DM_KV_KEY_MAX);
	assert_int_equal(item.value_len, DM_KV_VALUE_MAX);
	assert_memory_equal(item.value, value, DM_KV_VALUE_MAX);
	dm_kv_kv_release(&item);
	key[1000] = '\0';
	assert_int_equal(dm_kv_range(f->kv, &l, key, 0, &err), 0);
	assert_int_equal(l.len, 1);
	assert_int_equal(l.items[0].key_len, DM_KV_KEY_MAX);
	dm_kv_kvs_release(&l);
	fx_close(f);
	free(key);
	free(value);
}

static void test_map_grows_past_its_initial_size(void **state)
{
	struct dm_kv_lmdb_opts o = fast_opts();
	size_t len = DM_KV_VALUE_MAX;
	unsigned char *value = malloc(len);
	struct dm_kv_kv item;
	struct dm_err err;
	char key[16];
	struct fx *f = *state;

	assert_non_null(value);
	o.map_size = (size_t)1 << 20;
	fx_open(f, &o);
	for (int i = 0; i < 8; i++) {
		memset(value, 'a' + i, len);
		snprintf(key, sizeof(key), "big/%d", i);
		if (dm_kv_put(f->kv, NULL, key, value, len, 0, &err) < 0)
			fail_msg("put %s: %s", key, err.msg);
	}
	dm_kv_free(f->kv);
	f->kv = open_kv(f->dir, &o);
	for (int i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "big/%d", i);
		assert_int_equal(dm_kv_get(f->kv, &item, key, &err), 0);
		assert_int_equal(item.value_len, len);
		assert_int_equal((unsigned char)item.value[0], 'a' + i);
		assert_int_equal((unsigned char)item.value[len - 1], 'a' + i);
		dm_kv_kv_release(&item);
	}
	put(f->kv, "after", "reopen", 0);
	fx_close(f);
	free(value);
}

static void test_prefix_end_matches_etcd(void **state)
{
	char out[8];

	(void)state;
	assert_int_equal(dm_kv_prefix_end(out, "a/", 2), 2);
	assert_memory_equal(out, "a0", 2);
	assert_int_equal(dm_kv_prefix_end(out, "a\xff", 2), 1);
	assert_memory_equal(out, "b", 1);
	assert_int_equal(dm_kv_prefix_end(out, "", 0), 1);
	assert_int_equal(out[0], '\0');
	assert_int_equal(dm_kv_prefix_end(out, "\xff\xff", 2), 1);
	assert_int_equal(out[0], '\0');
	assert_true(dm_kv_key_cmp("a", 1, "a/", 2) < 0);
	assert_true(dm_kv_key_cmp("a/", 2, "a0", 2) < 0);
	assert_true(dm_kv_key_cmp("b", 1, "a\xff", 2) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_put_get_delete_revisions_step_by_one, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_range_is_sorted_and_bounded_to_the_prefix,
	                                    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_long_keys_sort_and_range_like_short_ones, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_cas_succeeds_only_on_the_expected_revision,
	                                    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_txn_is_all_or_nothing, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_watch_from_zero_replays_history_in_order, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_watch_sees_live_puts_from_4_threads_once_in_order,
	                                    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_watch_from_a_compacted_revision_fails, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_watch_cancel_stops_delivery, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_lease_expiry_deletes_keys_and_watch_sees_it,
	                                    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_lease_keepalive_extends_and_revoke_deletes,
	                                    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_keeps_data_revision_history_and_leases,
	                                    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_oversized_keys_and_values_are_rejected, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_map_grows_past_its_initial_size, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_prefix_end_matches_etcd, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
