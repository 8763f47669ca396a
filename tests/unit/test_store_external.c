/*
 * test_store_external.c - objects kept in immutable files outside the packs
 * (what the btrfs engine's snapshots hold): put_external is pending until a
 * flush like any put, keeps an object's existing place, survives a reopen;
 * dm_store_external_release copies what committed history still needs into
 * the packs, forgets the rest with everything that names it, and leaves a
 * store that verifies. Received chunks are staged in packs of their dot,
 * move into files that hold them and the packs go; files under the
 * store's external root are recorded relative to it, so the root can move.
 * Plain files in a mkdtemp directory stand in for snapshots; nothing here
 * needs btrfs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/object.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/hash.h"
#include "util/log.h"

#include "util/banned.h"

struct fixture {
	char dir[64];
	char store[96];
	char snap_a[96], snap_b[96];
	struct dm_store *s;
};

static void open_store(struct fixture *f)
{
	struct dm_store_opts o;
	struct dm_err err;

	dm_store_opts_default(&o);
	o.sync = false;
	if (dm_store_open(&f->s, f->store, &o, &err))
		fail_msg("%s", err.msg);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct dm_err err;

	snprintf(f->dir, sizeof(f->dir), "/tmp/dm-test-external-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
	snprintf(f->snap_a, sizeof(f->snap_a), "%s/snap-a", f->dir);
	snprintf(f->snap_b, sizeof(f->snap_b), "%s/snap-b", f->dir);
	if (dm_mkdir_p(f->snap_a, 0755, &err) || dm_mkdir_p(f->snap_b, 0755, &err))
		return -1;
	open_store(f);
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

/* Writes len pseudo-random bytes (seed) as dir/name; returns the path. */
static void put_bytes(char *path, size_t size, const char *dir, const char *name, size_t len,
		      unsigned seed)
{
	unsigned char *b = malloc(len);
	struct dm_err err;
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (unsigned char)x;
	}
	snprintf(path, size, "%s/%s", dir, name);
	assert_int_equal(dm_write_file_atomic(path, b, len, 0444, &err), 0);
	free(b);
}

/* Records the whole file at path as an external chunk; returns its id. */
static dm_oid put_chunk_ext(struct fixture *f, const char *path, bool hashed)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	dm_oid id;

	assert_int_equal(dm_read_file(&b, path, 1 << 24, &err), 0);
	dm_hash(&id, b.data, b.len);
	if (hashed)
		assert_int_equal(dm_store_put_external_hashed(f->s, &id, DM_OBJ_CHUNK, path, 0,
							      (uint32_t)b.len, &err),
				 0);
	else
		assert_int_equal(dm_store_put_external(f->s, &id, DM_OBJ_CHUNK, path, 0,
						       (uint32_t)b.len, &err),
				 0);
	dm_buf_release(&b);
	return id;
}

/* A file object of one chunk, a tree holding it as "name"; returns the tree. */
static dm_oid put_tree_of(struct fixture *f, const dm_oid *chunk, uint32_t len, const char *name)
{
	struct dm_extent ext = {0, len, *chunk};
	struct dm_file file = {len, 1, &ext};
	struct dm_tree_entry te;
	struct dm_tree t = {1, &te};
	struct dm_buf enc = DM_BUF_INIT;
	struct dm_err err;
	dm_oid fid, tid;

	assert_int_equal(dm_file_encode(&enc, &file, &err), 0);
	assert_int_equal(dm_store_put(f->s, &fid, DM_OBJ_FILE, enc.data, enc.len, &err), 0);
	memset(&te, 0, sizeof(te));
	te.name = (char *)(uintptr_t)name;
	te.type = DM_ENTRY_FILE;
	te.mode = 0644;
	te.size = len;
	te.id = fid;
	dm_buf_reset(&enc);
	assert_int_equal(dm_tree_encode(&enc, &t, &err), 0);
	assert_int_equal(dm_store_put(f->s, &tid, DM_OBJ_TREE, enc.data, enc.len, &err), 0);
	dm_buf_release(&enc);
	return tid;
}

static void put_commit(struct fixture *f, const char *dot, const char *id, const dm_oid *tree)
{
	struct dm_commit c;
	struct dm_buf enc = DM_BUF_INIT;
	struct dm_err err;
	char empty[] = "";
	dm_oid oid;

	memset(&c, 0, sizeof(c));
	c.dot_id = (char *)(uintptr_t)dot;
	c.commit_id = (char *)(uintptr_t)id;
	c.tree = *tree;
	c.author = empty;
	c.message = empty;
	assert_int_equal(dm_commit_encode(&enc, &c, &err), 0);
	assert_int_equal(dm_store_put(f->s, &oid, DM_OBJ_COMMIT, enc.data, enc.len, &err), 0);
	assert_int_equal(dm_store_commit_put(f->s, dot, id, &oid, &err), 0);
	dm_buf_release(&enc);
}

static struct dm_store_stats stats(struct fixture *f)
{
	struct dm_store_stats st;
	struct dm_err err;

	assert_int_equal(dm_store_stats(f->s, &st, &err), 0);
	return st;
}

static void verify_ok(struct fixture *f)
{
	struct dm_verify_report rep;
	struct dm_err err;

	if (dm_store_verify(f->s, &rep, &err))
		fail_msg("verify: %s", err.msg);
}

/* ---- tests ---- */

static void test_external_pending_until_flush(void **state)
{
	struct fixture *f = *state;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	char path[160];
	dm_oid id;
	int kind = 0;

	put_bytes(path, sizeof(path), f->snap_a, "x", 5000, 1);
	id = put_chunk_ext(f, path, true);
	assert_int_equal(dm_store_has(f->s, &id), 1);
	assert_int_equal(dm_store_get(f->s, &id, &b, &kind, &err), 0); /* visible at once */
	assert_int_equal(b.len, 5000);
	assert_int_equal(kind, DM_OBJ_CHUNK);
	assert_int_equal(stats(f).external, 1); /* stats flush */
	dm_store_free(f->s);
	open_store(f);
	assert_int_equal(dm_store_has(f->s, &id), 1);
	verify_ok(f);
	dm_buf_release(&b);
}

static void test_external_keeps_existing_place(void **state)
{
	struct fixture *f = *state;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	char path[160];
	dm_oid id, again;

	put_bytes(path, sizeof(path), f->snap_a, "x", 3000, 2);
	assert_int_equal(dm_read_file(&b, path, 1 << 20, &err), 0);
	assert_int_equal(dm_store_put(f->s, &id, DM_OBJ_CHUNK, b.data, b.len, &err), 0);
	again = put_chunk_ext(f, path, false);
	assert_memory_equal(&id, &again, sizeof(id));
	assert_int_equal(stats(f).external, 0); /* still in its pack */
	/* a wrong id is refused by the checking put */
	id.b[0] ^= 1;
	assert_int_equal(dm_store_put_external(f->s, &id, DM_OBJ_CHUNK, path, 0, 3000, &err),
			 DM_ECORRUPT);
	dm_buf_release(&b);
}

/* Chunk a is reached by a commit of another dot, chunk b by nothing sealed
 * (only a file and tree of a commit never made): a is copied, b forgotten
 * with the file and tree that name it. */
static void test_release_copies_reached_forgets_rest(void **state)
{
	struct fixture *f = *state;
	struct dm_store_release_stats rs;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	char pa[160], pb[160], prefix[128];
	dm_oid a, bid, ta, tb;
	struct dm_store_stats before, after;

	put_bytes(pa, sizeof(pa), f->snap_a, "a", 70000, 3);
	put_bytes(pb, sizeof(pb), f->snap_a, "b", 50000, 4);
	a = put_chunk_ext(f, pa, true);
	bid = put_chunk_ext(f, pb, true);
	ta = put_tree_of(f, &a, 70000, "a");
	tb = put_tree_of(f, &bid, 50000, "b");
	put_commit(f, "other-dot", "c1", &ta);
	before = stats(f);
	assert_int_equal(before.external, 2);
	snprintf(prefix, sizeof(prefix), "%s/", f->snap_a);
	assert_int_equal(dm_store_external_release(f->s, prefix, "this-dot", &rs, &err), 0);
	assert_int_equal(rs.copied, 1);
	assert_int_equal(rs.copied_bytes, 70000);
	assert_int_equal(rs.forgotten, 1);
	assert_int_equal(rs.dependents, 2); /* b's file and tree */
	after = stats(f);
	assert_int_equal(after.external, 0);
	assert_true(after.pack_bytes >= before.pack_bytes + 70000);
	assert_int_equal(dm_store_has(f->s, &bid), 0);
	assert_int_equal(dm_store_has(f->s, &tb), 0);
	assert_int_equal(dm_store_has(f->s, &ta), 1);
	/* the files may go: a reads from its pack */
	assert_int_equal(dm_remove_tree(f->snap_a, &err), 0);
	assert_int_equal(dm_store_get(f->s, &a, &b, NULL, &err), 0);
	assert_int_equal(b.len, 70000);
	verify_ok(f);
	dm_buf_release(&b);
}

/* A dot's own commits do not keep its data: with skip_dot, everything of
 * that dot goes, commits included; other prefixes are left alone. */
static void test_release_skips_the_dot(void **state)
{
	struct fixture *f = *state;
	struct dm_store_release_stats rs;
	struct dm_err err;
	char pa[160], pb[160], prefix[128];
	dm_oid a, bid, ta, tb;

	put_bytes(pa, sizeof(pa), f->snap_a, "a", 40000, 5);
	put_bytes(pb, sizeof(pb), f->snap_b, "b", 40000, 6);
	a = put_chunk_ext(f, pa, true);
	bid = put_chunk_ext(f, pb, true);
	ta = put_tree_of(f, &a, 40000, "a");
	tb = put_tree_of(f, &bid, 40000, "b");
	put_commit(f, "dot-a", "c1", &ta);
	put_commit(f, "dot-b", "c1", &tb);
	snprintf(prefix, sizeof(prefix), "%s/", f->snap_a);
	assert_int_equal(dm_store_external_release(f->s, prefix, "dot-a", &rs, &err), 0);
	assert_int_equal(rs.copied, 0);
	assert_int_equal(rs.forgotten, 1);
	assert_int_equal(rs.dependents, 3); /* file, tree, commit */
	assert_int_equal(dm_store_commit_delete_dot(f->s, "dot-a", &err), 0);
	assert_int_equal(stats(f).external, 1); /* b, under the other prefix */
	assert_int_equal(dm_store_has(f->s, &bid), 1);
	verify_ok(f);
	/* nothing under a prefix: nothing to do */
	assert_int_equal(dm_store_external_release(f->s, prefix, NULL, &rs, &err), 0);
	assert_int_equal(rs.forgotten + rs.copied, 0);
	assert_int_equal(dm_store_external_release(f->s, "relative/", NULL, &rs, &err), DM_EINVAL);
}

/* Stores len bytes of seed as a chunk received for dot; returns its id
 * and leaves the bytes in out (when not NULL). */
static dm_oid receive_chunk(struct fixture *f, const char *dot, size_t len, unsigned seed,
			    struct dm_buf *out)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_pack_rec rec;
	struct dm_err err;
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	assert_int_equal(dm_buf_grow(&b, len), 0);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b.data[i] = (unsigned char)x;
	}
	b.len = len;
	memset(&rec, 0, sizeof(rec));
	rec.kind = DM_OBJ_CHUNK;
	rec.raw_len = rec.stored_len = (uint32_t)len;
	dm_hash(&rec.id, b.data, len);
	assert_int_equal(dm_store_put_received(f->s, dot, &rec, b.data, &err), 0);
	if (out) {
		dm_buf_reset(out);
		assert_int_equal(dm_buf_add(out, b.data, len), 0);
	}
	dm_buf_release(&b);
	return rec.id;
}

static size_t count_packs(struct fixture *f)
{
	char path[160];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/packs", f->store);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)))
		n += strncmp(de->d_name, "pack-", 5) == 0;
	closedir(d);
	return n;
}

static void get_ok(struct fixture *f, const dm_oid *id, size_t len)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;

	if (dm_store_get(f->s, id, &b, NULL, &err))
		fail_msg("get: %s", err.msg);
	assert_int_equal(b.len, len);
	dm_buf_release(&b);
}

/* Received chunks go to a staging pack of their dot (other objects, and
 * everything while staging is off, to ordinary packs); unstaging records
 * a chunk as bytes of a file that holds it, and only then; ending the
 * staging copies what is left into ordinary packs and deletes the pack. */
static void test_staging_unstage_end(void **state)
{
	struct fixture *f = *state;
	struct dm_store_staging_stats es;
	struct dm_buf a = DM_BUF_INIT, b = DM_BUF_INIT, c = DM_BUF_INIT;
	struct dm_err err;
	char pa[160], pc[160];
	dm_oid ia, ib, ic, off_id, tree;
	struct dm_store_stats st;

	off_id = receive_chunk(f, "dot-a", 2000, 9, NULL);
	assert_int_equal(stats(f).staged_packs, 0); /* staging is off */
	dm_store_set_staging(f->s, true);
	ia = receive_chunk(f, "dot-a", 5000, 1, &a);
	ib = receive_chunk(f, "dot-a", 6000, 2, &b);
	ic = receive_chunk(f, "dot-a", 7000, 3, &c);
	tree = put_tree_of(f, &ia, 5000, "a");
	put_commit(f, "dot-a", "c1", &tree);
	st = stats(f);
	assert_int_equal(st.staged_packs, 1);
	assert_int_equal(count_packs(f), 2);
	/* the snapshot holds a and c, but c's bytes differ there */
	snprintf(pa, sizeof(pa), "%s/a", f->snap_a);
	assert_int_equal(dm_write_file_atomic(pa, a.data, a.len, 0444, &err), 0);
	c.data[10] ^= 1;
	snprintf(pc, sizeof(pc), "%s/c", f->snap_a);
	assert_int_equal(dm_write_file_atomic(pc, c.data, c.len, 0444, &err), 0);
	assert_int_equal(dm_store_unstage(f->s, "dot-b", &ia, pa, 0, 5000, &err), 0);
	assert_int_equal(dm_store_unstage(f->s, "dot-a", &ia, pa, 0, 5000, &err), 1);
	assert_int_equal(dm_store_unstage(f->s, "dot-a", &ic, pc, 0, 7000, &err), 0);
	assert_int_equal(dm_store_unstage(f->s, "dot-a", &off_id, pa, 0, 2000, &err), 0);
	assert_int_equal(stats(f).external, 1);
	assert_int_equal(dm_store_staging_end(f->s, "dot-a", &es, &err), 0);
	assert_int_equal(es.packs, 1);
	assert_int_equal(es.copied, 2); /* b and c */
	assert_int_equal(es.copied_bytes, 13000);
	st = stats(f);
	assert_int_equal(st.staged_packs, 0);
	assert_int_equal(count_packs(f), 1);
	get_ok(f, &ia, 5000);
	get_ok(f, &ib, 6000);
	get_ok(f, &ic, 7000);
	verify_ok(f);
	/* nothing left: a second end is a no-op */
	assert_int_equal(dm_store_staging_end(f->s, "dot-a", &es, &err), 0);
	assert_int_equal(es.packs, 0);
	dm_store_free(f->s);
	open_store(f);
	get_ok(f, &ia, 5000);
	get_ok(f, &ic, 7000);
	verify_ok(f);
	dm_buf_release(&a);
	dm_buf_release(&b);
	dm_buf_release(&c);
}

/* A staging pack outlives a restart (what a killed dmd leaves): its chunks
 * stay readable, ordinary objects never go into it, and the next end of
 * the dot's staging empties it; one never flushed is gone. */
static void test_staging_survives_reopen(void **state)
{
	struct fixture *f = *state;
	struct dm_store_staging_stats es;
	struct dm_store_stats st;
	struct dm_err err;
	dm_oid ia, ib, other;

	dm_store_set_staging(f->s, true);
	ia = receive_chunk(f, "dot-a", 5000, 1, NULL);
	assert_int_equal(dm_store_flush(f->s, &err), 0);
	ib = receive_chunk(f, "dot-b", 6000, 2, NULL); /* never flushed */
	(void)ib;
	dm_store_free(f->s); /* flushes: both staged packs recorded */
	open_store(f);
	st = stats(f);
	assert_int_equal(st.staged_packs, 2);
	get_ok(f, &ia, 5000);
	assert_int_equal(dm_store_put(f->s, &other, DM_OBJ_CHUNK, "plain", 5, &err), 0);
	assert_int_equal(stats(f).staged_bytes, st.staged_bytes);
	assert_int_equal(dm_store_staging_end(f->s, "dot-a", &es, &err), 0);
	assert_int_equal(es.copied, 1);
	st = stats(f);
	assert_int_equal(st.staged_packs, 1);
	get_ok(f, &ia, 5000);
	get_ok(f, &other, 5);
	verify_ok(f);
}

/* Files under the external root are recorded relative to it: the root
 * can move; a store not told its root says so; older absolute records
 * under the root are rewritten relative once the root is given. */
static void test_external_root_moves(void **state)
{
	struct fixture *f = *state;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	char root[128], moved[128], snap[160], path[200], old_path[200];
	dm_oid rel_id, abs_id;

	snprintf(root, sizeof(root), "%s/root", f->dir);
	snprintf(moved, sizeof(moved), "%s/moved", f->dir);
	snprintf(snap, sizeof(snap), "%s/dot/.snapshots/c1", root);
	assert_int_equal(dm_mkdir_p(snap, 0755, &err), 0);
	put_bytes(old_path, sizeof(old_path), snap, "old", 4000, 5);
	abs_id = put_chunk_ext(f, old_path, true); /* no root yet: absolute */
	dm_store_free(f->s);
	open_store(f);
	assert_int_equal(dm_store_set_external_root(f->s, "relative", &err), DM_EINVAL);
	assert_int_equal(dm_store_set_external_root(f->s, root, &err), 0);
	put_bytes(path, sizeof(path), snap, "new", 3000, 6);
	rel_id = put_chunk_ext(f, path, false);
	get_ok(f, &rel_id, 3000);
	dm_store_free(f->s);
	assert_int_equal(rename(root, moved), 0);
	open_store(f);
	assert_int_equal(dm_store_get(f->s, &rel_id, &b, NULL, &err), DM_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "external root"));
	assert_int_equal(dm_store_set_external_root(f->s, moved, &err), 0);
	get_ok(f, &rel_id, 3000);
	get_ok(f, &abs_id, 4000); /* migrated when the root was first given */
	verify_ok(f);
	dm_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_external_pending_until_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_external_keeps_existing_place, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_release_copies_reached_forgets_rest, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_release_skips_the_dot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_staging_unstage_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_staging_survives_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_external_root_moves, setup, teardown),
	};

	dm_log_setup(stderr, DM_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
