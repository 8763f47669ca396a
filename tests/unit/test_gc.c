/*
 * test_gc.c - garbage collection of the store (dm_store_gc, collect.c and
 * guard.c): what no commit, pin or lease reaches is freed and its packs
 * are rewritten; a dry run predicts what the real run then frees and
 * changes nothing; packs still mostly live are left alone; pins and
 * leases keep what they name; a collection waits for the jobs that hold
 * the store and keeps what they made; commits racing collections lose
 * nothing (seeded rounds; DM_TEST_ROUNDS changes how many); a pruned
 * commit keeps only its record. Every test ends with a store that
 * verifies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/index.h"
#include "store/internal.h"
#include "store/object.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/hash.h"

#include "util/banned.h"

#define CHUNK (32 * 1024)

struct fixture {
	char dir[64];
	struct dm_store *s;
};

static void open_store(struct fixture *f, uint64_t pack_size)
{
	struct dm_store_opts o;
	struct dm_err err;

	dm_store_opts_default(&o);
	o.sync = false;
	if (pack_size)
		o.pack_size = pack_size;
	if (dm_store_open(&f->s, f->dir, &o, &err))
		fail_msg("%s", err.msg);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/dm-test-gc-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	open_store(f, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;

	dm_store_free(f->s);
	dm_remove_tree(f->dir, &err);
	free(f);
	return 0;
}

/* Fills b with CHUNK incompressible bytes from seed. */
static void noise(unsigned char *b, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < CHUNK; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (unsigned char)x;
	}
}

/* Stores chunk number seed; returns its id. */
static dm_oid put_chunk(struct dm_store *s, uint64_t seed)
{
	unsigned char *b = malloc(CHUNK);
	struct dm_err err;
	dm_oid id;

	noise(b, seed);
	if (dm_store_put(s, &id, DM_OBJ_CHUNK, b, CHUNK, &err))
		fail_msg("put chunk: %s", err.msg);
	free(b);
	return id;
}

/* A commit of dot whose one file holds chunks first..first+n-1; fills
 * chunks (may be NULL) with their ids. */
static void make_commit(struct dm_store *s, const char *dot, const char *cid, uint64_t first,
			size_t n, dm_oid *chunks)
{
	struct dm_extent *ext = calloc(n, sizeof(*ext));
	struct dm_file file = {(uint64_t)n * CHUNK, n, ext};
	struct dm_tree_entry te;
	struct dm_tree t = {1, &te};
	struct dm_commit c;
	struct dm_buf enc = DM_BUF_INIT;
	struct dm_err err;
	char empty[] = "";
	dm_oid fid, tid, oid;

	for (size_t i = 0; i < n; i++) {
		ext[i].offset = (uint64_t)i * CHUNK;
		ext[i].len = CHUNK;
		ext[i].id = put_chunk(s, first + i);
		if (chunks)
			chunks[i] = ext[i].id;
	}
	if (dm_file_encode(&enc, &file, &err) ||
	    dm_store_put(s, &fid, DM_OBJ_FILE, enc.data, enc.len, &err))
		fail_msg("file: %s", err.msg);
	memset(&te, 0, sizeof(te));
	te.name = (char *)(uintptr_t) "data";
	te.type = DM_ENTRY_FILE;
	te.mode = 0644;
	te.size = file.size;
	te.id = fid;
	dm_buf_reset(&enc);
	if (dm_tree_encode(&enc, &t, &err) ||
	    dm_store_put(s, &tid, DM_OBJ_TREE, enc.data, enc.len, &err))
		fail_msg("tree: %s", err.msg);
	memset(&c, 0, sizeof(c));
	c.dot_id = (char *)(uintptr_t)dot;
	c.commit_id = (char *)(uintptr_t)cid;
	c.tree = tid;
	c.author = empty;
	c.message = empty;
	dm_buf_reset(&enc);
	if (dm_commit_encode(&enc, &c, &err) ||
	    dm_store_put(s, &oid, DM_OBJ_COMMIT, enc.data, enc.len, &err) ||
	    dm_store_commit_put(s, dot, cid, &oid, &err))
		fail_msg("commit: %s", err.msg);
	dm_buf_release(&enc);
	free(ext);
}

static struct dm_store_stats stats(struct dm_store *s)
{
	struct dm_store_stats st;
	struct dm_err err;

	assert_int_equal(dm_store_stats(s, &st, &err), 0);
	return st;
}

static int commit_there(const char *dot, const char *cid, const dm_oid *oid, unsigned flags,
			void *ctx)
{
	struct dm_store *s = ctx;

	if (!dm_store_has(s, oid))
		fail_msg("commit %s of %s is indexed but its object is gone", cid, dot);
	return 0;
}

/* Every object names only objects present, and every indexed commit's
 * object is present. */
static void verify_ok(struct dm_store *s)
{
	struct dm_verify_report rep;
	struct dm_err err;

	if (dm_store_verify(s, &rep, &err))
		fail_msg("verify: %s", err.msg);
	assert_int_equal(dm_store_commit_foreach(s, commit_there, s, &err), 0);
}

static struct dm_store_gc_stats gc(struct dm_store *s, bool dry)
{
	struct dm_store_gc_opts o;
	struct dm_store_gc_stats st;
	struct dm_err err;

	dm_store_gc_opts_default(&o);
	o.dry_run = dry;
	if (dm_store_gc(s, &o, &st, &err))
		fail_msg("gc: %s", err.msg);
	return st;
}

/* ---- tests ---- */

static void test_gc_frees_deleted_dot(void **state)
{
	struct fixture *f = *state;
	dm_oid a[64], b[8];
	struct dm_store_stats before, after_dry, after;
	struct dm_store_gc_stats dry, real;
	struct dm_err err;

	make_commit(f->s, "dot-b", "c1", 100000, 8, b);
	make_commit(f->s, "dot-a", "c1", 0, 32, a);
	make_commit(f->s, "dot-a", "c2", 16, 32, a + 32); /* shares 16 chunks with c1 */
	assert_int_equal(dm_store_flush(f->s, &err), 0);

	/* nothing is garbage yet: nothing to free */
	real = gc(f->s, false);
	assert_int_equal(real.freed, 0);

	assert_int_equal(dm_store_commit_delete_dot(f->s, "dot-a", &err), 0);
	before = stats(f->s);
	dry = gc(f->s, true);
	after_dry = stats(f->s);
	/* a dry run changes nothing */
	assert_int_equal(after_dry.pack_bytes, before.pack_bytes);
	assert_int_equal(after_dry.objects[DM_OBJ_CHUNK], before.objects[DM_OBJ_CHUNK]);
	for (int i = 0; i < 48; i++)
		assert_true(dm_store_has(f->s, &a[i]));
	/* 48 distinct chunks, 2 files, 2 trees, 2 commits */
	assert_int_equal(dry.freed, 54);
	assert_true(dry.disk_freed > 48ull * CHUNK);

	real = gc(f->s, false);
	after = stats(f->s);
	assert_int_equal(real.freed, dry.freed);
	assert_int_equal(real.freed_bytes, dry.freed_bytes);
	/* the dry run predicted what was freed on disk within 5% */
	assert_true(real.disk_freed * 100 >= dry.disk_freed * 95);
	assert_true(real.disk_freed * 100 <= dry.disk_freed * 105);
	assert_true(before.pack_bytes - after.pack_bytes >= real.disk_freed * 95 / 100);
	/* at least 90% of the deleted dot's unique bytes left the disk */
	assert_true(before.pack_bytes - after.pack_bytes >= 48ull * CHUNK * 9 / 10);
	for (int i = 0; i < 48; i++)
		assert_false(dm_store_has(f->s, &a[i]));
	for (int i = 0; i < 8; i++)
		assert_true(dm_store_has(f->s, &b[i]));
	verify_ok(f->s);

	/* the rewrite is durable: a reopened store has the same */
	dm_store_free(f->s);
	open_store(f, 0);
	for (int i = 0; i < 8; i++)
		assert_true(dm_store_has(f->s, &b[i]));
	assert_false(dm_store_has(f->s, &a[0]));
	verify_ok(f->s);
}

/* A pruned commit keeps its record (its commit object, its index entry
 * with the flag) while what only its tree reached is freed, also when it is
 * pinned or looked up; the store still verifies. */
static void test_gc_frees_pruned_commit(void **state)
{
	struct fixture *f = *state;
	const char *victims[] = {"c1"};
	dm_oid c1[8], c2[8], oid;
	struct dm_store_gc_stats st;
	unsigned flags = 0;
	size_t changed = 0;
	struct dm_err err;

	make_commit(f->s, "d", "c1", 0, 8, c1);
	make_commit(f->s, "d", "c2", 4, 8, c2); /* shares chunks 4..7 with c1 */
	assert_int_equal(dm_store_flush(f->s, &err), 0);
	assert_int_equal(dm_store_commit_mark(f->s, "d", victims, 1, DM_COMMIT_PRUNED, &changed,
					      &err),
			 0);
	assert_int_equal(changed, 1);
	/* marking again changes nothing; flags are never taken away */
	assert_int_equal(dm_store_commit_mark(f->s, "d", victims, 1, DM_COMMIT_PRUNED, &changed,
					      &err),
			 0);
	assert_int_equal(changed, 0);
	assert_int_equal(dm_store_commit_info(f->s, "d", "c1", &oid, &flags, &err), 0);
	assert_int_equal(flags, DM_COMMIT_PRUNED);
	assert_int_equal(dm_store_commit_info(f->s, "d", "c2", NULL, &flags, &err), 0);
	assert_int_equal(flags, 0);
	dm_store_pin(f->s, &oid); /* a pin of a pruned commit keeps only the commit */
	st = gc(f->s, false);
	dm_store_unpin(f->s, &oid);
	assert_int_equal(st.freed, 6); /* 4 chunks, c1's file and tree */
	assert_true(dm_store_has(f->s, &oid));
	for (int i = 0; i < 4; i++)
		assert_false(dm_store_has(f->s, &c1[i]));
	for (int i = 0; i < 8; i++)
		assert_true(dm_store_has(f->s, &c2[i]));
	verify_ok(f->s);
	/* the flag is durable */
	dm_store_free(f->s);
	open_store(f, 0);
	assert_int_equal(dm_store_commit_info(f->s, "d", "c1", NULL, &flags, &err), 0);
	assert_int_equal(flags, DM_COMMIT_PRUNED);
	st = gc(f->s, false);
	assert_int_equal(st.freed, 0);
	verify_ok(f->s);
}

/* dm_store_account for one dot of one branch; fills *dot and *branch. */
static void account1(struct dm_store *s, const char *dot, const char *head,
		     struct dm_acct_figures *fig_dot, struct dm_acct_figures *fig_branch)
{
	const char *names[] = {"master"}, *heads[] = {head};
	struct dm_acct_dot in[2] = {{dot, "master", 1, names, heads},
				    {"other", "master", 1, names, heads}};
	struct dm_acct_figures br[2][1];
	struct dm_acct_result out[2] = {{{0}, br[0]}, {{0}, br[1]}};
	struct dm_err err;

	/* "other" has no commits of its own: its head is not indexed there */
	if (dm_store_account(s, in, 2, out, NULL, NULL, NULL, &err))
		fail_msg("account: %s", err.msg);
	*fig_dot = out[0].dot;
	*fig_branch = br[0][0];
}

/* What a dot and a branch "only hold" is what deleting them and a
 * collection then free, to the byte; referenced and written add up. */
static void test_account_matches_gc(void **state)
{
	struct fixture *f = *state;
	const char *c2[] = {"c2"};
	struct dm_acct_figures dot, br;
	struct dm_store_gc_stats st;
	struct dm_err err;

	make_commit(f->s, "a", "c1", 0, 8, NULL);
	make_commit(f->s, "a", "c2", 4, 8, NULL);  /* 4..11: 4..7 shared with c1 */
	make_commit(f->s, "b", "c1", 8, 4, NULL);  /* 8..11: shared with a's c2 */
	assert_int_equal(dm_store_flush(f->s, &err), 0);
	account1(f->s, "a", "c2", &dot, &br);
	assert_true(dot.known && br.known);
	/* the dot: 12 chunks, 2 files, 2 trees, 2 commits; unique: 8 chunks */
	assert_true(dot.referenced > 12ull * CHUNK && dot.referenced < 13ull * CHUNK);
	assert_true(dot.unique > 8ull * CHUNK && dot.unique < 9ull * CHUNK);
	/* master (head c2; c1 is no parent of it, a reset keeps it): 8 chunks,
	 * none its own (4..7 are c1's too, 8..11 b's): its file, tree, commit */
	assert_true(br.referenced > 8ull * CHUNK && br.referenced < 9ull * CHUNK);
	assert_true(br.unique > 0 && br.unique < CHUNK);
	/* written: no parent, so all of its tree */
	assert_true(br.written > 8ull * CHUNK && br.written < br.referenced);
	assert_int_equal(dot.written, br.written);

	/* forgetting the branch's commits frees exactly its unique bytes */
	assert_int_equal(dm_store_commit_forget(f->s, "a", c2, 1, &err), 0);
	st = gc(f->s, false);
	assert_int_equal(st.freed_bytes, br.unique);
	/* and deleting the dot frees exactly its unique bytes */
	account1(f->s, "a", "", &dot, &br);
	assert_true(dot.unique > 8ull * CHUNK && dot.unique < 9ull * CHUNK); /* c1: 0..7 */
	assert_int_equal(br.referenced, 0);
	assert_int_equal(dm_store_commit_delete_dot(f->s, "a", &err), 0);
	st = gc(f->s, false);
	assert_int_equal(st.freed_bytes, dot.unique);
	verify_ok(f->s);
}

static struct dm_store_fsck_report fsck(struct dm_store *s, bool repair)
{
	struct dm_store_fsck_report rep;
	struct dm_fsck_progress p = {0, 0, 0};
	struct dm_err err;

	if (dm_store_fsck(s, repair, &p, NULL, NULL, &rep, &err))
		fail_msg("fsck: %s", err.msg);
	return rep;
}

/* dm fsck: a clean store is clean; an index entry lost while its record
 * is still in a pack is restored by --repair; a chunk whose bytes are
 * wrong is dropped and the commits that need it are marked damaged, after
 * which fsck is clean again. */
static void test_fsck_repairs(void **state)
{
	struct fixture *f = *state;
	dm_oid c1[4], c2[4];
	struct dm_store_fsck_report rep;
	struct dm_index_entry e;
	struct dm_buf b = DM_BUF_INIT;
	unsigned flags = 0;
	struct dm_err err;
	char path[4096];
	int fd;

	make_commit(f->s, "d", "c1", 0, 4, c1);
	make_commit(f->s, "d", "c2", 100, 4, c2);
	assert_int_equal(dm_store_flush(f->s, &err), 0);
	rep = fsck(f->s, false);
	assert_int_equal(rep.problems, 0);
	assert_int_equal(rep.commits, 2);
	assert_int_equal(rep.objects, 14);

	/* the index loses c1's first chunk; its record is still in the pack */
	e.id = c1[0];
	e.path = NULL;
	assert_int_equal(dm_index_get(f->s->idx, &c1[0], &e.loc, NULL, &err), 0);
	assert_int_equal(dm_index_delete_if(f->s->idx, &e, 1, NULL, &err), 0);
	rep = fsck(f->s, false);
	assert_int_equal(rep.damaged, 1);
	assert_int_equal(rep.unmarked, 1);
	assert_int_equal(rep.problems, 1);
	rep = fsck(f->s, true);
	assert_int_equal(rep.restored, 1);
	assert_int_equal(rep.damaged, 0);
	assert_int_equal(rep.problems, 0);
	assert_true(dm_store_has(f->s, &c1[0]));
	verify_ok(f->s);

	/* c2's first chunk gets wrong bytes in its pack */
	assert_int_equal(dm_index_get(f->s->idx, &c2[0], &e.loc, NULL, &err), 0);
	assert_int_equal(e.loc.where, DM_LOC_PACK);
	dm_store_pack_path(path, sizeof(path), f->s, e.loc.pack);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "XXXX", 4, (off_t)(e.loc.offset + DM_PACK_REC_LEN + 100)), 4);
	close(fd);
	assert_int_not_equal(dm_store_get(f->s, &c2[0], &b, NULL, &err), 0);
	rep = fsck(f->s, false);
	assert_int_equal(rep.bad, 1);
	assert_int_equal(rep.damaged, 1);
	assert_int_equal(rep.problems, 2);
	assert_true(rep.nmsgs >= 1);
	rep = fsck(f->s, true);
	assert_int_equal(rep.dropped, 1);
	assert_int_equal(rep.restored, 0); /* the only copy is the bad one */
	assert_int_equal(rep.marked, 1);
	assert_int_equal(rep.problems, 0);
	assert_int_equal(dm_store_commit_info(f->s, "d", "c2", NULL, &flags, &err), 0);
	assert_int_equal(flags, DM_COMMIT_DAMAGED);
	assert_int_equal(dm_store_commit_info(f->s, "d", "c1", NULL, &flags, &err), 0);
	assert_int_equal(flags, 0);
	/* clean now: the damage is known */
	rep = fsck(f->s, false);
	assert_int_equal(rep.problems, 0);
	assert_int_equal(rep.damaged, 1);
	assert_int_equal(rep.unmarked, 0);
	dm_buf_release(&b);
}

static void test_gc_leaves_mostly_live_packs(void **state)
{
	struct fixture *f = *state;
	struct dm_store_stats before, after;
	struct dm_store_gc_stats st;
	struct dm_err err;
	dm_oid dead[2];

	/* one pack: 40 live chunks, 2 dead: 95% live, over the 80% threshold */
	make_commit(f->s, "live", "c1", 0, 40, NULL);
	dead[0] = put_chunk(f->s, 5000);
	dead[1] = put_chunk(f->s, 5001);
	assert_int_equal(dm_store_flush(f->s, &err), 0);
	before = stats(f->s);
	st = gc(f->s, false);
	after = stats(f->s);
	assert_int_equal(st.freed, 2);
	assert_int_equal(st.packs, 0);
	assert_int_equal(st.disk_freed, 0);
	/* the dead records stay on disk until the pack is rewritten */
	assert_int_equal(after.pack_bytes, before.pack_bytes);
	assert_false(dm_store_has(f->s, &dead[0]));
	assert_false(dm_store_has(f->s, &dead[1]));
	verify_ok(f->s);
}

static void test_gc_keeps_pins_and_leases(void **state)
{
	struct fixture *f = *state;
	struct dm_store_gc_stats st;
	dm_oid chunks[4], lone;

	/* a dot's commit that is not indexed: pinned by its commit object */
	make_commit(f->s, "d", "c1", 0, 4, chunks);
	{
		struct dm_err err;
		dm_oid oid;

		assert_int_equal(dm_store_commit_get(f->s, "d", "c1", &oid, &err), 0);
		assert_int_equal(dm_store_commit_delete_dot(f->s, "d", &err), 0);
		dm_store_pin(f->s, &oid);
		dm_store_pin(f->s, &oid);
		lone = put_chunk(f->s, 900);
		dm_store_lease(f->s, &lone, 60 * 1000);
		st = gc(f->s, false);
		assert_int_equal(st.freed, 0);
		for (int i = 0; i < 4; i++)
			assert_true(dm_store_has(f->s, &chunks[i]));
		assert_true(dm_store_has(f->s, &lone));
		/* pins count: one unpin is not enough */
		dm_store_unpin(f->s, &oid);
		st = gc(f->s, false);
		assert_int_equal(st.freed, 0);
		dm_store_unpin(f->s, &oid);
		st = gc(f->s, false);
		assert_int_equal(st.freed, 7); /* 4 chunks, a file, a tree, the commit */
		assert_false(dm_store_has(f->s, &chunks[0]));
		assert_true(dm_store_has(f->s, &lone));
		/* a lease that ended keeps nothing */
		dm_store_lease(f->s, &lone, -1);
	}
	verify_ok(f->s);
}

struct waiter {
	struct dm_store *s;
	struct dm_store_gc_stats st;
	int rc;
	volatile int done;
};

static void *run_gc(void *p)
{
	struct waiter *w = p;
	struct dm_store_gc_opts o;
	struct dm_err err;

	dm_store_gc_opts_default(&o);
	w->rc = dm_store_gc(w->s, &o, &w->st, &err);
	w->done = 1;
	return NULL;
}

static void test_gc_waits_for_holds(void **state)
{
	struct fixture *f = *state;
	struct waiter w = {f->s, {0}, 0, 0};
	struct dm_store_gc_opts o;
	struct dm_err err;
	pthread_t th;
	uint64_t hold;
	dm_oid chunk;

	/* garbage: a chunk nothing names */
	chunk = put_chunk(f->s, 77);
	assert_int_equal(dm_store_flush(f->s, &err), 0);
	/* a job begins and finds the chunk stored (it will not write it) */
	hold = dm_store_hold(f->s);
	assert_true(dm_store_has(f->s, &chunk));
	pthread_create(&th, NULL, run_gc, &w);
	usleep(200 * 1000);
	assert_false(w.done); /* the collection waits for the job */
	/* a second collection meanwhile is refused */
	dm_store_gc_opts_default(&o);
	assert_int_equal(dm_store_gc(f->s, &o, NULL, &err), DM_EBUSY);
	/* the job commits a file of that chunk, and ends */
	make_commit(f->s, "d", "c1", 77, 1, NULL);
	dm_store_unhold(f->s, hold);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.st.freed, 0);
	assert_true(dm_store_has(f->s, &chunk));
	verify_ok(f->s);
}

static void test_gc_keeps_what_is_touched_meanwhile(void **state)
{
	struct fixture *f = *state;
	struct waiter w = {f->s, {0}, 0, 0};
	struct dm_err err;
	pthread_t th;
	uint64_t hold;
	dm_oid old, fresh;

	old = put_chunk(f->s, 1);
	(void)put_chunk(f->s, 2); /* garbage nothing touches */
	assert_int_equal(dm_store_flush(f->s, &err), 0);
	hold = dm_store_hold(f->s);
	pthread_create(&th, NULL, run_gc, &w);
	usleep(100 * 1000);
	/* the collection has begun (it waits for the hold): a lookup of an old
	 * unreached chunk and the write of a new one are both kept, though no
	 * commit names them yet */
	assert_true(dm_store_has(f->s, &old));
	fresh = put_chunk(f->s, 3);
	dm_store_unhold(f->s, hold);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.st.freed, 1);
	assert_true(dm_store_has(f->s, &old));
	assert_true(dm_store_has(f->s, &fresh));
	/* the next collection frees them: nothing reached them meanwhile */
	assert_int_equal(gc(f->s, false).freed, 2);
	verify_ok(f->s);
}

struct racer {
	struct dm_store *s;
	int n;
	uint64_t seed;
	volatile int *stop;
};

/* Commits that reuse garbage chunks (of a deleted dot) and new ones,
 * each in a hold as a dot's job does, until told to stop. */
static void *write_commits(void *p)
{
	struct racer *w = p;
	char cid[32], nid[32];

	while (!*w->stop && w->n < 400) {
		uint64_t hold = dm_store_hold(w->s);
		uint64_t first = (w->seed + (uint64_t)w->n * 7) % 64;

		snprintf(cid, sizeof(cid), "c%d", w->n);
		snprintf(nid, sizeof(nid), "n%d", w->n);
		/* chunks first..first+3 of the dead dot, then two new ones */
		make_commit(w->s, "live", cid, first, 4, NULL);
		make_commit(w->s, "live", nid, 10000 + (uint64_t)w->n * 2, 2, NULL);
		dm_store_unhold(w->s, hold);
		w->n++;
	}
	return NULL;
}

static void test_gc_races_commits(void **state)
{
	struct fixture *f = *state;
	const char *env = getenv("DM_TEST_ROUNDS");
	int rounds = env ? (int)strtol(env, NULL, 10) : 20;

	for (int round = 0; round < rounds; round++) {
		volatile int stop = 0;
		struct racer w = {f->s, 0, (uint64_t)round * 13, &stop};
		struct dm_err err;
		pthread_t th;

		/* garbage that the writer will build on */
		make_commit(f->s, "dead", "c1", 0, 64, NULL);
		assert_int_equal(dm_store_commit_delete_dot(f->s, "dead", &err), 0);
		pthread_create(&th, NULL, write_commits, &w);
		for (int i = 0; i < 6; i++) {
			gc(f->s, false);
			usleep(2000);
		}
		stop = 1;
		pthread_join(th, NULL);
		/* every commit the writer indexed has all it names */
		if (dm_store_verify(f->s, &(struct dm_verify_report){0}, &err))
			fail_msg("round %d (%d commits): %s", round, w.n, err.msg);
		assert_int_equal(dm_store_commit_foreach(f->s, commit_there, f->s, &err), 0);
		assert_int_equal(dm_store_commit_delete_dot(f->s, "live", &err), 0);
		gc(f->s, false);
	}
	verify_ok(f->s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gc_frees_deleted_dot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_frees_pruned_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_account_matches_gc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_repairs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_leaves_mostly_live_packs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_keeps_pins_and_leases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_waits_for_holds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_keeps_what_is_touched_meanwhile, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_gc_races_commits, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
