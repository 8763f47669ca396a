/*
 * test_transfer.c - the transfer walks between two real stores, with a
 * peer that is another store in the same process (no HTTP): a push sends
 * exactly what the receiver lacks, bottom-up, so the receiver verifies at
 * every moment; an incremental push sends only new chunks; a pull fetches
 * what is missing; a transfer killed mid-way leaves a consistent store
 * and a re-run sends only the rest; a corrupt object is refused. And what
 * a transfer session may see (sync/reach.h): exactly what its commits
 * reach, plus what it was given, found no further than asked, bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/object.h"
#include "store/store.h"
#include "store/tree.h"
#include "sync/reach.h"
#include "sync/receive.h"
#include "sync/spill.h"
#include "sync/walk.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define DOT_ID "5e0b1c1e-0000-4000-8000-000000000001"

struct fixture {
	char dir[64];
	char src[128];
	struct dm_store *a, *b, *c;
};

static struct dm_store *open_in(struct fixture *fx, const char *name)
{
	struct dm_store_opts o;
	struct dm_store *s = NULL;
	struct dm_err err;
	char path[128];

	dm_store_opts_default(&o);
	o.sync = false;
	snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
	if (dm_store_open(&s, path, &o, &err))
		fail_msg("open %s: %s", name, err.msg);
	return s;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/dm-test-transfer-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->src, sizeof(fx->src), "%s/src", fx->dir);
	mkdir(fx->src, 0755);
	fx->a = open_in(fx, "a");
	fx->b = open_in(fx, "b");
	fx->c = open_in(fx, "c");
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	dm_store_free(fx->a);
	dm_store_free(fx->b);
	dm_store_free(fx->c);
	dm_remove_tree(fx->dir, NULL);
	free(fx);
	return 0;
}

/* Writes len pseudo-random bytes (seeded) to src/rel. */
static void write_file(struct fixture *fx, const char *rel, size_t len, uint64_t seed)
{
	char path[256];
	unsigned char *p = malloc(len ? len : 1);
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
	snprintf(path, sizeof(path), "%s/%s", fx->src, rel);
	assert_int_equal(dm_write_file_atomic(path, p, len, 0644, NULL), 0);
	free(p);
}

/* Commits src into store a: the commit object's id. */
static dm_oid commit_src(struct fixture *fx, const char *id, const char *parent)
{
	struct dm_commit c;
	struct dm_buf enc = DM_BUF_INIT;
	struct dm_err err;
	char *parents[1] = {(char *)(uintptr_t)parent};
	dm_oid tree, oid;

	if (dm_tree_build(fx->a, &tree, fx->src, NULL, NULL, &err))
		fail_msg("build: %s", err.msg);
	memset(&c, 0, sizeof(c));
	c.dot_id = (char *)(uintptr_t)DOT_ID;
	c.commit_id = (char *)(uintptr_t)id;
	c.nparents = parent ? 1 : 0;
	c.parents = parents;
	c.tree = tree;
	c.author = (char *)(uintptr_t) "test";
	c.message = (char *)(uintptr_t) "m";
	assert_int_equal(dm_commit_encode(&enc, &c, &err), 0);
	assert_int_equal(dm_store_put(fx->a, &oid, DM_OBJ_COMMIT, enc.data, enc.len, &err), 0);
	dm_buf_release(&enc);
	return oid;
}

/* The initial tree: a few files in nested directories, one large. */
static void make_src(struct fixture *fx)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/d1/d2/d3", fx->src);
	assert_int_equal(dm_mkdir_p(path, 0755, NULL), 0);
	snprintf(path, sizeof(path), "%s/empty", fx->src);
	assert_int_equal(dm_mkdir_p(path, 0755, NULL), 0);
	write_file(fx, "big", 3u << 20, 1);
	write_file(fx, "small", 100, 2);
	write_file(fx, "d1/a", 70000, 3);
	write_file(fx, "d1/d2/b", 200000, 4);
	write_file(fx, "d1/d2/d3/c", 5000, 5);
	write_file(fx, "d1/d2/d3/same-as-c", 5000, 5);
}

/* ---- a peer that is another store ---- */

struct local_peer {
	struct dm_store *other;
	struct dm_sync_walk *w;
	int put_kinds[5]; /* records put, by kind */
	int puts;
	int fail_after;  /* a put after this many fails ("the link died"); 0: never */
	int corrupt_get; /* flip a byte of the get record with this number (1-based) */
	int gets;
	bool put_then_check; /* verify the receiving store after every sync */
};

static int lp_missing(void *ctx, const dm_oid *ids, size_t n, struct dm_buf *out,
		      struct dm_err *err)
{
	struct local_peer *lp = ctx;

	for (size_t i = 0; i < n; i++)
		if (!dm_store_has_whole(lp->other, &ids[i]) &&
		    dm_buf_add(out, &ids[i], sizeof(ids[i])))
			return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

static int lp_put(void *ctx, const struct dm_pack_rec *rec, const void *bytes, struct dm_err *err)
{
	struct local_peer *lp = ctx;
	int rc;

	if (lp->fail_after && lp->puts >= lp->fail_after)
		return dm_err_set(err, DM_EUNAVAILABLE, "lost the connection");
	rc = dm_sync_accept(lp->other, rec, bytes, DOT_ID, NULL, err);
	if (rc)
		return rc;
	lp->puts++;
	lp->put_kinds[rec->kind]++;
	dm_sync_acked(lp->w, 1, rec->raw_len);
	return 0;
}

static int lp_sync(void *ctx, struct dm_err *err)
{
	struct local_peer *lp = ctx;
	struct dm_verify_report rep;
	int rc = dm_store_flush(lp->other, err);

	if (!rc && lp->put_then_check)
		rc = dm_store_verify(lp->other, &rep, err);
	return rc;
}

static int lp_get(void *ctx, const dm_oid *ids, size_t n, dm_wire_rec_fn fn, void *fnctx,
		  struct dm_err *err)
{
	struct local_peer *lp = ctx;
	struct dm_buf b = DM_BUF_INIT;
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		struct dm_pack_rec rec;

		dm_buf_reset(&b);
		rc = dm_store_get_stored(lp->other, &ids[i], &rec, &b, err);
		if (rc)
			break;
		if (++lp->gets == lp->corrupt_get && b.len)
			b.data[b.len / 2] ^= 0x01;
		rc = fn(fnctx, &rec, b.data, err);
	}
	dm_buf_release(&b);
	return rc;
}

static void walk_init(struct dm_sync_walk *w, struct local_peer *lp, struct dm_store *local,
		      struct dm_store *other)
{
	memset(w, 0, sizeof(*w));
	memset(lp, 0, sizeof(*lp));
	lp->other = other;
	lp->w = w;
	w->store = local;
	w->dot_id = DOT_ID;
	w->peer = (struct dm_sync_peer){lp, lp_missing, lp_put, lp_sync, lp_get};
}

static void expect_verifies(struct dm_store *s, uint64_t *objects)
{
	struct dm_verify_report rep;
	struct dm_err err;

	if (dm_store_verify(s, &rep, &err))
		fail_msg("verify: %s", err.msg);
	if (objects)
		*objects = rep.objects;
}

/* ---- tests ---- */

static void test_push_sends_everything_bottom_up(void **state)
{
	struct fixture *fx = *state;
	struct dm_sync_walk w;
	struct local_peer lp;
	struct dm_err err;
	uint64_t na = 0, nb = 0;
	dm_oid c1;

	make_src(fx);
	c1 = commit_src(fx, "c1", NULL);
	walk_init(&w, &lp, fx->a, fx->b);
	lp.put_then_check = true;
	if (dm_sync_push(&w, &c1, 1, &err))
		fail_msg("push: %s", err.msg);
	expect_verifies(fx->a, &na);
	expect_verifies(fx->b, &nb);
	assert_int_equal(na, nb);
	assert_int_equal(dm_store_has(fx->b, &c1), 1);
	/* every object once: root, empty, d1, d2, d3 trees; c and same-as-c
	 * are one file object */
	assert_int_equal(lp.put_kinds[DM_OBJ_COMMIT], 1);
	assert_int_equal(lp.put_kinds[DM_OBJ_TREE], 5);
	assert_int_equal(lp.put_kinds[DM_OBJ_FILE], 5);
	assert_int_equal((uint64_t)lp.puts, nb);
	assert_int_equal(w.counts.objects_done, w.counts.objects_total);
	assert_int_equal(w.counts.bytes_done, w.counts.bytes_total);
	assert_true(w.counts.bytes_total > (3u << 20));

	/* nothing to do the second time */
	walk_init(&w, &lp, fx->a, fx->b);
	assert_int_equal(dm_sync_push(&w, &c1, 1, &err), 0);
	assert_int_equal(lp.puts, 0);
	assert_int_equal(w.counts.objects_total, 0);
}

static void test_incremental_push_sends_only_new_chunks(void **state)
{
	struct fixture *fx = *state;
	struct dm_sync_walk w;
	struct local_peer lp;
	struct dm_err err;
	dm_oid c1, c2;

	make_src(fx);
	c1 = commit_src(fx, "c1", NULL);
	walk_init(&w, &lp, fx->a, fx->b);
	assert_int_equal(dm_sync_push(&w, &c1, 1, &err), 0);
	/* change one small file deep down */
	write_file(fx, "d1/d2/d3/c", 5000, 99);
	c2 = commit_src(fx, "c2", "c1");
	walk_init(&w, &lp, fx->a, fx->b);
	lp.put_then_check = true;
	assert_int_equal(dm_sync_push(&w, &c2, 1, &err), 0);
	/* one chunk, one file, the four trees on its path, one commit */
	assert_int_equal(lp.put_kinds[DM_OBJ_CHUNK], 1);
	assert_int_equal(lp.put_kinds[DM_OBJ_FILE], 1);
	assert_int_equal(lp.put_kinds[DM_OBJ_TREE], 4);
	assert_int_equal(lp.put_kinds[DM_OBJ_COMMIT], 1);
	assert_true(w.counts.bytes_total < 5000 + 4096);
	expect_verifies(fx->b, NULL);
}

static void test_pull_fetches_what_is_missing(void **state)
{
	struct fixture *fx = *state;
	struct dm_sync_walk w;
	struct local_peer lp;
	struct dm_err err;
	uint64_t na = 0, nc = 0;
	dm_oid c1, c2;

	make_src(fx);
	c1 = commit_src(fx, "c1", NULL);
	/* c (the pulling side) starts empty and takes everything from a */
	walk_init(&w, &lp, fx->c, fx->a);
	if (dm_sync_pull(&w, &c1, 1, &err))
		fail_msg("pull: %s", err.msg);
	expect_verifies(fx->a, &na);
	expect_verifies(fx->c, &nc);
	assert_int_equal(na, nc);
	assert_int_equal(w.counts.objects_done, w.counts.objects_total);
	assert_int_equal(w.counts.objects_total, nc);
	/* again: only the new commit's path */
	write_file(fx, "d1/a", 70000, 1234);
	c2 = commit_src(fx, "c2", "c1");
	walk_init(&w, &lp, fx->c, fx->a);
	assert_int_equal(dm_sync_pull(&w, &c2, 1, &err), 0);
	/* commit, root, d1, file a, and a's chunks (70000 bytes: 1 or 2) */
	assert_true(lp.gets >= 5 && lp.gets <= 6);
	expect_verifies(fx->c, &nc);
	expect_verifies(fx->a, &na);
	assert_int_equal(na, nc);
}

/* A pull whose held objects pass its budget keeps them in a file: the
 * same store results, with at most the budget in memory. */
static void test_pull_spills_past_its_budget(void **state)
{
	struct fixture *fx = *state;
	struct dm_sync_walk w;
	struct local_peer lp;
	struct dm_err err;
	uint64_t na = 0, nc = 0;
	dm_oid c1;

	make_src(fx);
	c1 = commit_src(fx, "c1", NULL);
	walk_init(&w, &lp, fx->c, fx->a);
	w.hold_max = 64; /* smaller than one tree: everything goes to the file */
	if (dm_sync_pull(&w, &c1, 1, &err))
		fail_msg("pull: %s", err.msg);
	expect_verifies(fx->a, &na);
	expect_verifies(fx->c, &nc);
	assert_int_equal(na, nc);
}

static void test_spill_keeps_its_budget(void **state)
{
	struct fixture *fx = *state;
	unsigned char in[3000], back_ok = 1;
	struct dm_buf scratch = DM_BUF_INIT;
	const unsigned char *out;
	struct dm_spill sp;
	struct dm_err err;
	uint64_t offs[40];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7);
	dm_spill_init(&sp, 10000, fx->dir);
	for (size_t i = 0; i < 40; i++) {
		assert_int_equal(dm_spill_add(&sp, in + i, 2000, &offs[i], &err), 0);
		assert_true(dm_spill_in_memory(&sp) <= 10000);
	}
	for (size_t i = 0; i < 40; i++) {
		assert_int_equal(dm_spill_get(&sp, offs[i], 2000, &scratch, &out, &err), 0);
		back_ok &= memcmp(out, in + i, 2000) == 0;
	}
	assert_true(back_ok);
	dm_spill_release(&sp);
	dm_buf_release(&scratch);
}

static void test_killed_push_resumes(void **state)
{
	struct fixture *fx = *state;
	struct dm_sync_walk w;
	struct local_peer lp;
	struct dm_err err;
	uint64_t na = 0, nb = 0;
	int first;
	dm_oid c1;

	make_src(fx);
	c1 = commit_src(fx, "c1", NULL);
	/* the link dies after 20 records, in the middle of the chunks */
	walk_init(&w, &lp, fx->a, fx->b);
	lp.fail_after = 20;
	assert_int_equal(dm_sync_push(&w, &c1, 1, &err), DM_EUNAVAILABLE);
	first = lp.puts;
	assert_int_equal(first, 20);
	/* the receiver is consistent: what it holds is complete below */
	assert_int_equal(dm_store_flush(fx->b, &err), 0);
	expect_verifies(fx->b, NULL);
	assert_int_equal(dm_store_has(fx->b, &c1), 0);
	/* a new run sends exactly the rest */
	walk_init(&w, &lp, fx->a, fx->b);
	assert_int_equal(dm_sync_push(&w, &c1, 1, &err), 0);
	expect_verifies(fx->a, &na);
	expect_verifies(fx->b, &nb);
	assert_int_equal(na, nb);
	assert_int_equal((uint64_t)(first + lp.puts), nb);
}

static void test_killed_pull_resumes(void **state)
{
	struct fixture *fx = *state;
	struct dm_sync_walk w;
	struct local_peer lp;
	struct dm_err err;
	uint64_t na = 0, nc = 0;
	dm_oid c1;

	make_src(fx);
	c1 = commit_src(fx, "c1", NULL);
	/* a corrupt chunk half way: the pull stops there, nothing above it
	 * is stored, and the local store verifies */
	walk_init(&w, &lp, fx->c, fx->a);
	lp.corrupt_get = 30;
	assert_int_equal(dm_sync_pull(&w, &c1, 1, &err), DM_ECORRUPT);
	assert_non_null(strstr(err.msg, "does not match its id"));
	assert_int_equal(dm_store_flush(fx->c, &err), 0);
	expect_verifies(fx->c, &nc);
	assert_true(nc > 0);
	assert_int_equal(dm_store_has(fx->c, &c1), 0);
	/* the next run fetches the rest only */
	walk_init(&w, &lp, fx->c, fx->a);
	assert_int_equal(dm_sync_pull(&w, &c1, 1, &err), 0);
	expect_verifies(fx->c, &nc);
	expect_verifies(fx->a, &na);
	assert_int_equal(na, nc);
	assert_true(w.counts.objects_total < na);
}

static void test_corrupt_tree_refused_by_pull(void **state)
{
	struct fixture *fx = *state;
	struct dm_sync_walk w;
	struct local_peer lp;
	struct dm_err err;
	uint64_t nc = 0;
	dm_oid c1;

	make_src(fx);
	c1 = commit_src(fx, "c1", NULL);
	walk_init(&w, &lp, fx->c, fx->a);
	lp.corrupt_get = 2; /* the root tree */
	assert_int_equal(dm_sync_pull(&w, &c1, 1, &err), DM_ECORRUPT);
	assert_non_null(strstr(err.msg, "tree"));
	expect_verifies(fx->c, &nc);
	assert_int_equal(nc, 0);
}

/* A receiver refuses objects whose children it lacks, and foreign commits. */
static void test_receiver_rules(void **state)
{
	struct fixture *fx = *state;
	struct dm_buf b = DM_BUF_INIT, raw = DM_BUF_INIT;
	struct dm_pack_rec rec;
	struct dm_commit c;
	struct dm_tree t;
	struct dm_err err;
	bool stored = true;
	dm_oid c1;

	make_src(fx);
	c1 = commit_src(fx, "c1", NULL);
	/* a commit before its tree is a record only (one pruned where it comes
	 * from): admitted, but a transfer still asks for its data */
	assert_int_equal(dm_store_get_stored(fx->a, &c1, &rec, &b, &err), 0);
	assert_int_equal(dm_sync_accept(fx->b, &rec, b.data, DOT_ID, &stored, &err), 0);
	assert_true(stored);
	assert_int_equal(dm_store_has(fx->b, &c1), 1);
	assert_int_equal(dm_store_has_whole(fx->b, &c1), 0);
	/* the root tree before its children */
	assert_int_equal(dm_store_get(fx->a, &c1, &raw, NULL, &err), 0);
	assert_int_equal(dm_commit_decode(&c, raw.data, raw.len, &err), 0);
	dm_buf_reset(&b);
	assert_int_equal(dm_store_get_stored(fx->a, &c.tree, &rec, &b, &err), 0);
	assert_int_equal(dm_sync_accept(fx->b, &rec, b.data, DOT_ID, NULL, &err), DM_ECORRUPT);
	assert_non_null(strstr(err.msg, "is not stored here"));
	/* a file before its chunks */
	dm_buf_reset(&raw);
	assert_int_equal(dm_store_get(fx->a, &c.tree, &raw, NULL, &err), 0);
	assert_int_equal(dm_tree_decode(&t, raw.data, raw.len, &err), 0);
	assert_non_null(dm_tree_find(&t, "big"));
	dm_buf_reset(&b);
	assert_int_equal(dm_store_get_stored(fx->a, &dm_tree_find(&t, "big")->id, &rec, &b, &err),
			 0);
	assert_int_equal(rec.kind, DM_OBJ_FILE);
	assert_int_equal(dm_sync_accept(fx->b, &rec, b.data, DOT_ID, NULL, &err), DM_ECORRUPT);
	assert_non_null(strstr(err.msg, "names chunk"));
	/* with everything below present, a commit of another dot is refused */
	{
		struct dm_sync_walk w;
		struct local_peer lp;

		walk_init(&w, &lp, fx->a, fx->b);
		assert_int_equal(dm_sync_push(&w, &c1, 1, &err), 0);
		assert_int_equal(dm_store_has_whole(fx->b, &c1), 1);
	}
	dm_store_free(fx->c);
	fx->c = open_in(fx, "c2");
	{
		struct dm_sync_walk w;
		struct local_peer lp;

		walk_init(&w, &lp, fx->c, fx->a);
		w.dot_id = "another-dot";
		assert_int_equal(dm_sync_pull(&w, &c1, 1, &err), DM_ECORRUPT);
		assert_non_null(strstr(err.msg, "belongs to dot"));
		assert_int_equal(dm_store_has(fx->c, &c1), 0);
		assert_int_equal(dm_store_has(fx->c, &c.tree), 1);
	}
	dm_tree_release(&t);
	dm_commit_release(&c);
	dm_buf_release(&b);
	dm_buf_release(&raw);
}

/* ---- what a session sees ---- */

struct collect {
	struct dm_store *s;
	dm_oid ids[64];
	size_t n;
};

static int collect_ref(void *ctx, const struct dm_obj_ref *ref)
{
	struct collect *c = ctx;

	if (c->n < 64)
		c->ids[c->n++] = *ref->id;
	return 0;
}

/* Every id reachable from commit (at most 64), depth first. */
static void reachable(struct collect *c, const dm_oid *id, int kind)
{
	struct dm_buf raw = DM_BUF_INIT;
	struct dm_err err;
	size_t from = c->n, to;

	if (kind == DM_OBJ_CHUNK)
		return;
	assert_int_equal(dm_store_get(c->s, id, &raw, NULL, &err), 0);
	assert_int_equal(dm_object_refs(kind, raw.data, raw.len, collect_ref, c, &err), 0);
	to = c->n;
	dm_buf_release(&raw);
	for (size_t i = from; i < to; i++) {
		int k = 0;
		uint64_t len;

		assert_int_equal(dm_store_stat(c->s, &c->ids[i], &k, &len, &err), 0);
		reachable(c, &c->ids[i], k);
	}
}

static void test_reach_sees_what_its_commits_reach(void **state)
{
	struct fixture *fx = *state;
	struct collect first = {.s = fx->a}, second = {.s = fx->a};
	struct dm_err err;
	struct dm_reach *r;
	dm_oid c1, c2, made_up;

	make_src(fx);
	c1 = commit_src(fx, "c1", NULL);
	reachable(&first, &c1, DM_OBJ_COMMIT);
	assert_true(first.n > 8);
	write_file(fx, "only-in-c2", 123456, 99);
	c2 = commit_src(fx, "c2", "c1");
	reachable(&second, &c2, DM_OBJ_COMMIT);

	/* seeded with c1: everything under c1 is visible, c2 and what only c2
	 * names is not, and an id the store never held is not */
	r = dm_reach_new(fx->a, &c1, 1, 0);
	assert_int_equal(dm_reach_allows(r, &c1, &err), 1);
	for (size_t i = 0; i < first.n; i++)
		assert_int_equal(dm_reach_allows(r, &first.ids[i], &err), 1);
	assert_int_equal(dm_reach_allows(r, &c2, &err), 0);
	assert_int_equal(dm_reach_allows(r, &second.ids[0], &err), 0); /* c2's root tree */
	memset(&made_up, 0x5a, sizeof(made_up));
	assert_int_equal(dm_reach_allows(r, &made_up, &err), 0);
	/* given: visible from then on, and nothing it names becomes so */
	assert_int_equal(dm_reach_give(r, &second.ids[0], &err), 0);
	assert_int_equal(dm_reach_allows(r, &second.ids[0], &err), 1);
	assert_int_equal(dm_reach_allows(r, &c2, &err), 0);
	dm_reach_free(r);
}

static void test_reach_walks_only_as_far_as_asked(void **state)
{
	struct fixture *fx = *state;
	struct dm_err err;
	struct dm_reach *r;
	dm_oid c1;

	make_src(fx);
	c1 = commit_src(fx, "c1", NULL);
	r = dm_reach_new(fx->a, &c1, 1, 0);
	assert_int_equal(dm_reach_count(r), 1);
	assert_int_equal(dm_reach_allows(r, &c1, &err), 1);
	assert_int_equal(dm_reach_count(r), 1); /* the seed needs no read */
	{
		struct collect top = {.s = fx->a};
		struct dm_buf raw = DM_BUF_INIT;

		assert_int_equal(dm_store_get(fx->a, &c1, &raw, NULL, &err), 0);
		assert_int_equal(
			dm_object_refs(DM_OBJ_COMMIT, raw.data, raw.len, collect_ref, &top, &err),
			0);
		dm_buf_release(&raw);
		assert_int_equal(dm_reach_allows(r, &top.ids[0], &err), 1);
		assert_int_equal(dm_reach_count(r), 2); /* one read: the commit */
	}
	dm_reach_free(r);
}

static void test_reach_is_bounded(void **state)
{
	struct fixture *fx = *state;
	struct dm_err err;
	struct dm_reach *r;
	dm_oid c1, made_up;

	make_src(fx);
	c1 = commit_src(fx, "c1", NULL);
	r = dm_reach_new(fx->a, &c1, 1, 4);
	memset(&made_up, 0x5a, sizeof(made_up));
	assert_int_equal(dm_reach_allows(r, &made_up, &err), DM_ETOOBIG);
	assert_non_null(strstr(err.msg, "at most 4 objects"));
	dm_reach_free(r);
	r = dm_reach_new(fx->a, &c1, 1, 2);
	assert_int_equal(dm_reach_give(r, &made_up, &err), 0);
	memset(&made_up, 0x5b, sizeof(made_up));
	assert_int_equal(dm_reach_give(r, &made_up, &err), DM_ETOOBIG);
	dm_reach_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_push_sends_everything_bottom_up, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_incremental_push_sends_only_new_chunks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pull_spills_past_its_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spill_keeps_its_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pull_fetches_what_is_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_push_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_pull_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_tree_refused_by_pull, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receiver_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reach_sees_what_its_commits_reach, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reach_walks_only_as_far_as_asked, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reach_is_bounded, setup, teardown),
	};

	dm_log_setup(NULL, DM_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
