/*
 * test_engine_btrfs.c - the btrfs engine on a loop-mounted pool: snapshots
 * copy nothing (their extents are shared), indexing reuses the parent's files and points the store
 * into the snapshot instead of copying, reset and create are writable snapshots, dirty and diff see
 * changes since the last snapshot (dirty from the extents that changed), received commits land in a
 * snapshot the store points into (data on disk once, a changed file sharing its old blocks),
 * deletes remove subvolumes and leave no object pointing into them, a
 * size limit refuses writes past it (EDQUOT) through a reset; and the pool
 * helpers.
 *
 * The group setup makes one pool (a sparse file under a mkdtemp directory,
 * formatted and loop-mounted by dm_pool_create); every test has its own
 * store (outside the pool, as in a data directory) and engine root inside
 * it. Without root, btrfs or loop devices the whole file is skipped with
 * the reason (TAP "1..0 # SKIP").
 *
 * How many files an index read is what the engine logs at debug level
 * ("N hashed"): the tests capture the log around the call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <btrfsutil.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/pool.h"
#include "store/filedata.h"
#include "store/object.h"
#include "store/store.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define DOT       "3f2a9c1e-0d4b-4b7e-9a51-6c2f8e1d0a77"
#define DOT2      "9b1c7d2e-5f6a-4b3c-8d9e-0a1b2c3d4e5f"
#define POOL_SIZE (2ull << 30)

static char base_dir[64];
static char pool_dir[128];
static int test_no;

struct fixture {
	char store_dir[160];
	char root[160];
	struct dm_store *s;
	struct dm_engine *e;
};

static int group_setup(void **state)
{
	char image[128];
	struct dm_err err;

	(void)state;
	snprintf(base_dir, sizeof(base_dir), "/tmp/dm-test-btrfs-XXXXXX");
	if (!mkdtemp(base_dir))
		return -1;
	snprintf(image, sizeof(image), "%s/pool.img", base_dir);
	snprintf(pool_dir, sizeof(pool_dir), "%s/pool", base_dir);
	if (dm_pool_create(image, pool_dir, POOL_SIZE, &err)) {
		print_error("cannot make the test pool: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	struct dm_err err;

	(void)state;
	if (dm_pool_unmount(pool_dir, &err))
		print_error("%s\n", err.msg);
	dm_remove_tree(base_dir, &err);
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct dm_store_opts o;
	struct dm_err err;

	test_no++;
	snprintf(f->store_dir, sizeof(f->store_dir), "%s/store-%d", base_dir, test_no);
	snprintf(f->root, sizeof(f->root), "%s/root-%d", pool_dir, test_no);
	dm_store_opts_default(&o);
	o.sync = false;
	if (dm_store_open(&f->s, f->store_dir, &o, &err))
		return -1;
	if (dm_engine_open(&f->e, "btrfs", f->root, f->s, &err)) {
		print_error("%s\n", err.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;

	if (dm_engine_delete_dot(f->e, DOT, &err) || dm_engine_delete_dot(f->e, DOT2, &err))
		print_error("%s\n", err.msg);
	dm_engine_free(f->e);
	dm_store_free(f->s);
	dm_remove_tree(f->store_dir, &err);
	dm_remove_tree(f->root, &err);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static void join(char *out, size_t size, const char *a, const char *b)
{
	if (snprintf(out, size, "%s/%s", a, b) >= (int)size)
		fail_msg("path too long");
}

static void wc_path(struct fixture *f, const char *dot, const char *branch, char *out, size_t size)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;

	assert_int_equal(dm_engine_path(f->e, dot, branch, &b, &err), 0);
	assert_true(b.len < size);
	memcpy(out, b.data, b.len + 1);
	dm_buf_release(&b);
}

static void snap_dir(struct fixture *f, const char *dot, const char *id, char *out, size_t size)
{
	if (snprintf(out, size, "%s/%s/.snapshots/%s", f->root, dot, id) >= (int)size)
		fail_msg("path too long");
}

/* Byte i of the content put_file writes for seed: incompressible. */
static unsigned char byte_at(size_t i, unsigned seed)
{
	uint64_t x = (uint64_t)(i / 8) * 0x9e3779b97f4a7c15ull + seed * 0xbf58476d1ce4e5b9ull;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (unsigned char)(x >> (i % 8 * 8));
}

/* Writes len bytes derived from seed to dir/rel (mode 0644). */
static void put_file(const char *dir, const char *rel, size_t len, unsigned seed)
{
	size_t chunk = len < (4u << 20) ? len : (4u << 20);
	unsigned char *buf = malloc(chunk ? chunk : 1);
	char p[512];
	int fd;

	join(p, sizeof(p), dir, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;

		for (size_t i = 0; i < n; i++)
			buf[i] = byte_at(off + i, seed);
		assert_int_equal(dm_write_all(fd, buf, n), 0);
	}
	close(fd);
	free(buf);
}

static void put_dir(const char *dir, const char *rel)
{
	char p[512];

	join(p, sizeof(p), dir, rel);
	assert_int_equal(mkdir(p, 0755), 0);
}

static bool exists(const char *dir, const char *rel)
{
	char p[512];
	struct stat st;

	join(p, sizeof(p), dir, rel);
	return lstat(p, &st) == 0;
}

/* True when dir/rel holds exactly what put_file(len, seed) wrote. */
static bool holds(const char *dir, const char *rel, size_t len, unsigned seed)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	char p[512];
	bool ok;

	join(p, sizeof(p), dir, rel);
	if (dm_read_file(&b, p, 64u << 20, &err))
		return false;
	ok = b.len == len;
	for (size_t i = 0; ok && i < len; i++)
		ok = b.data[i] == byte_at(i, seed);
	dm_buf_release(&b);
	return ok;
}

static void age(void)
{
	struct timespec ts = {2, 200 * 1000 * 1000}; /* past the 2 s racy window */

	nanosleep(&ts, NULL);
}

static void create(struct fixture *f, const char *dot, const char *branch, const dm_oid *tree)
{
	struct dm_err err;

	if (dm_engine_create(f->e, dot, branch, tree, NULL, &err))
		fail_msg("create: %s", err.msg);
}

static void snapshot(struct fixture *f, const char *dot, const char *branch, const char *id)
{
	struct dm_err err;

	if (dm_engine_snapshot(f->e, dot, branch, id, &err))
		fail_msg("snapshot: %s", err.msg);
}

/* Indexes snapshot id (parent: parent or NULL) into *tree; returns how many
 * files the engine says it read, and puts how many bytes into *bytes. */
static uint64_t index_snap_bytes(struct fixture *f, const char *dot, const char *id,
				 const char *parent, dm_oid *tree, uint64_t *bytes)
{
	struct dm_err err;
	FILE *log = tmpfile();
	char line[1024];
	unsigned long long files = 0, hashed = ~0ull, nbytes = 0;
	int rc;

	assert_non_null(log);
	dm_log_setup(log, DM_LOG_DEBUG);
	rc = dm_engine_index(f->e, dot, id, parent, NULL, tree, NULL, &err);
	dm_log_setup(stderr, DM_LOG_WARN);
	if (rc)
		fail_msg("index: %s", err.msg);
	rewind(log);
	while (fgets(line, sizeof(line), log)) {
		const char *p = strstr(line, "index of snapshot");

		if (p && (p = strstr(p, ": ")))
			assert_int_equal(sscanf(p, ": %llu files, %llu hashed (%llu bytes)", &files,
						&hashed, &nbytes),
					 3);
	}
	fclose(log);
	assert_true(hashed != ~0ull);
	if (bytes)
		*bytes = nbytes;
	return hashed;
}

static uint64_t index_snap(struct fixture *f, const char *dot, const char *id, const char *parent,
			   dm_oid *tree)
{
	return index_snap_bytes(f, dot, id, parent, tree, NULL);
}

static void commit_one_step(struct fixture *f, const char *branch, dm_oid *out)
{
	struct dm_err err;

	if (dm_engine_commit(f->e, DOT, branch, out, NULL, &err))
		fail_msg("commit: %s", err.msg);
}

static uint64_t dirty(struct fixture *f, const char *branch, const dm_oid *head)
{
	struct dm_err err;
	uint64_t d = 99999999, t = 0;

	if (dm_engine_dirty(f->e, DOT, branch, head, &d, &t, &err))
		fail_msg("dirty: %s", err.msg);
	return d;
}

static void stats(struct fixture *f, struct dm_store_stats *st)
{
	struct dm_err err;

	assert_int_equal(dm_store_stats(f->s, st, &err), 0);
}

/* The uuid of the subvolume at path and that of the one it was snapshotted
 * from. */
static void subvol_uuids(const char *path, uint8_t uuid[16], uint8_t parent[16])
{
	struct btrfs_util_subvolume_info info;

	assert_int_equal(btrfs_util_subvolume_info(path, 0, &info), BTRFS_UTIL_OK);
	memcpy(uuid, info.uuid, 16);
	memcpy(parent, info.parent_uuid, 16);
}

/* Records a commit of dot with tree in the store's commit index. */
static void record_commit(struct fixture *f, const char *dot, const char *id, const dm_oid *tree)
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
	c.time_ns = 1;
	assert_int_equal(dm_commit_encode(&enc, &c, &err), 0);
	assert_int_equal(dm_store_put(f->s, &oid, DM_OBJ_COMMIT, enc.data, enc.len, &err), 0);
	assert_int_equal(dm_store_commit_put(f->s, dot, id, &oid, &err), 0);
	dm_buf_release(&enc);
}

/* ---- tests ---- */

static void test_pool_helpers(void **state)
{
	struct dm_err err;
	uint64_t v;

	(void)state;
	assert_int_equal(dm_pool_parse_size(&v, "2G", &err), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(dm_pool_parse_size(&v, "512MiB", &err), 0);
	assert_int_equal(v, 512ull << 20);
	assert_int_equal(dm_pool_parse_size(&v, "1t", &err), 0);
	assert_int_equal(v, 1ull << 40);
	assert_int_equal(dm_pool_parse_size(&v, "4096", &err), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(dm_pool_parse_size(&v, "1.5G", &err), DM_EINVAL);
	assert_int_equal(dm_pool_parse_size(&v, "-1G", &err), DM_EINVAL);
	assert_int_equal(dm_pool_parse_size(&v, "3X", &err), DM_EINVAL);
	assert_int_equal(dm_pool_parse_size(&v, "99999999999T", &err), DM_EINVAL);
	assert_int_equal(dm_pool_check_dir(pool_dir, &err), 0);
	assert_true(dm_pool_is_mounted(pool_dir));
	assert_int_equal(dm_pool_check_dir(base_dir, &err), DM_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "not on a btrfs file system"));
}

static void test_open_refuses_other_file_systems(void **state)
{
	struct fixture *f = *state;
	struct dm_engine *e = NULL;
	struct dm_err err;
	char root[200];

	snprintf(root, sizeof(root), "%s-plain", f->store_dir);
	assert_int_equal(dm_engine_open(&e, "btrfs", root, f->s, &err), DM_EUNSUPPORTED);
	assert_null(e);
	assert_non_null(strstr(err.msg, "not on a btrfs file system"));
	assert_string_equal(dm_engine_name(f->e), "btrfs");
	assert_true(dm_engine_can_snapshot(f->e));
	dm_remove_tree(root, &err);
}

/* Whether every data extent of the file at path is shared with another
 * file (FIEMAP_EXTENT_SHARED): none of its data was copied. */
static bool all_extents_shared(const char *path)
{
	enum { N = 256 };
	struct fiemap *fm = calloc(1, sizeof(*fm) + N * sizeof(struct fiemap_extent));
	bool shared = true;
	uint64_t start = 0;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0 && fm);
	for (;;) {
		fm->fm_start = start;
		fm->fm_length = FIEMAP_MAX_OFFSET;
		fm->fm_flags = FIEMAP_FLAG_SYNC;
		fm->fm_extent_count = N;
		assert_int_equal(ioctl(fd, FS_IOC_FIEMAP, fm), 0);
		if (!fm->fm_mapped_extents)
			break;
		for (uint32_t i = 0; i < fm->fm_mapped_extents; i++) {
			const struct fiemap_extent *x = &fm->fm_extents[i];

			shared = shared && (x->fe_flags & FIEMAP_EXTENT_SHARED);
			start = x->fe_logical + x->fe_length;
			if (x->fe_flags & FIEMAP_EXTENT_LAST)
				goto done;
		}
	}
done:
	close(fd);
	free(fm);
	return shared;
}

/* A snapshot of 200 MB copies none of it: every extent of its files is
 * shared with the working copy's. How long it takes is the benchmark's
 * (bench/commit_btrfs.sh), not a test's; the time is printed. */
static void test_snapshot_is_instant(void **state)
{
	struct fixture *f = *state;
	char wc[256], name[32], snap[512], file[600];
	int64_t t0, worst = 0;
	int fd;

	create(f, DOT, "master", NULL);
	wc_path(f, DOT, "master", wc, sizeof(wc));
	put_dir(wc, "data");
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "data/big-%d", i);
		put_file(wc, name, 50u << 20, (unsigned)i);
	}
	fd = open(wc, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(syncfs(fd), 0); /* the time of writing it out is not the snapshot's */
	close(fd);
	for (int i = 0; i < 3; i++) {
		int64_t d;

		snprintf(name, sizeof(name), "c%d", i);
		t0 = dm_now_monotonic_ns();
		snapshot(f, DOT, "master", name);
		d = dm_now_monotonic_ns() - t0;
		worst = d > worst ? d : worst;
	}
	print_message("# snapshot of a 200 MB working copy: worst of 3 took %.1f ms\n",
		      (double)worst / 1e6);
	snap_dir(f, DOT, "c2", snap, sizeof(snap));
	for (int i = 0; i < 4; i++) {
		snprintf(file, sizeof(file), "%s/data/big-%d", snap, i);
		assert_true(all_extents_shared(file));
	}
}

/* The second index reads only what changed; the rest comes from the
 * parent's stat cache. */
static void test_index_reuses_parent(void **state)
{
	struct fixture *f = *state;
	char wc[256], name[32];
	dm_oid t1, t2, t3;

	create(f, DOT, "master", NULL);
	wc_path(f, DOT, "master", wc, sizeof(wc));
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		put_file(wc, name, 10000 + (size_t)i * 997, (unsigned)i);
	}
	age();
	snapshot(f, DOT, "master", "c1");
	assert_int_equal(index_snap(f, DOT, "c1", NULL, &t1), 20);
	put_file(wc, "f03", 5000, 77);
	put_file(wc, "new", 123, 78);
	snapshot(f, DOT, "master", "c2");
	assert_int_equal(index_snap(f, DOT, "c2", "c1", &t2), 2);
	assert_true(dm_oid_cmp(&t1, &t2) != 0);
	/* nothing changed: nothing read, the same tree */
	age();
	snapshot(f, DOT, "master", "c3");
	assert_int_equal(index_snap(f, DOT, "c3", "c2", &t3), 2); /* c2's files were racy */
	snapshot(f, DOT, "master", "c4");
	assert_int_equal(index_snap(f, DOT, "c4", "c3", &t3), 0);
	assert_memory_equal(&t2, &t3, sizeof(t2));
}

/* Overwrites len bytes at off of dir/rel with bytes of seed. */
static void patch_file(const char *dir, const char *rel, size_t off, size_t len, unsigned seed)
{
	unsigned char *buf = malloc(len);
	char p[512];
	int fd;

	for (size_t i = 0; i < len; i++)
		buf[i] = byte_at(i, seed);
	join(p, sizeof(p), dir, rel);
	fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(dm_pwrite_all(fd, buf, len, (off_t)off), 0);
	close(fd);
	free(buf);
}

/* A file changed in place is read only where its blocks changed since the
 * parent snapshot, and gives the tree a full read of it gives. */
static void test_index_reads_only_changed_blocks(void **state)
{
	struct fixture *f = *state;
	struct dm_verify_report rep;
	struct dm_err err;
	char wc[256], snap[256];
	uint64_t bytes = 0;
	dm_oid t1, t2, full;

	create(f, DOT, "master", NULL);
	wc_path(f, DOT, "master", wc, sizeof(wc));
	put_file(wc, "big", 64u << 20, 1);
	put_file(wc, "grows", 8u << 20, 2);
	put_file(wc, "same", 1u << 20, 3);
	age();
	snapshot(f, DOT, "master", "c1");
	assert_int_equal(index_snap_bytes(f, DOT, "c1", NULL, &t1, &bytes), 3);
	assert_int_equal(bytes, (73u << 20));
	patch_file(wc, "big", 20u << 20, 1u << 20, 9); /* 1 MiB in the middle */
	patch_file(wc, "big", 0, 4096, 10);            /* and its first block */
	patch_file(wc, "grows", 8u << 20, 100000, 11); /* appended */
	snapshot(f, DOT, "master", "c2");
	assert_int_equal(index_snap_bytes(f, DOT, "c2", "c1", &t2, &bytes), 2);
	print_message("# index after changing 1.1 MiB of 72 MiB in 2 files read %llu KiB\n",
		      (unsigned long long)(bytes >> 10));
	assert_true(bytes < (4u << 20));
	/* the same tree as reading every byte of the snapshot */
	snap_dir(f, DOT, "c2", snap, sizeof(snap));
	assert_int_equal(dm_tree_build(f->s, &full, snap, NULL, NULL, &err), 0);
	assert_memory_equal(&full, &t2, sizeof(full));
	assert_true(dm_oid_cmp(&t1, &t2) != 0);
	/* right after: c2's entries for big are racy, its blocks still tell */
	patch_file(wc, "big", 40u << 20, 300000, 12);
	snapshot(f, DOT, "master", "c3");
	assert_int_equal(index_snap_bytes(f, DOT, "c3", "c2", &t2, &bytes), 2);
	assert_true(bytes < (4u << 20));
	snap_dir(f, DOT, "c3", snap, sizeof(snap));
	assert_int_equal(dm_tree_build(f->s, &full, snap, NULL, NULL, &err), 0);
	assert_memory_equal(&full, &t2, sizeof(full));
	assert_int_equal(dm_store_verify(f->s, &rep, &err), 0);
}

/* A commit's chunks stay in its snapshot: the store's index points there,
 * the packs hold only file and tree objects, and the content reads back. */
static void test_chunks_point_into_snapshot(void **state)
{
	struct fixture *f = *state;
	struct dm_store_stats st;
	struct dm_verify_report rep;
	struct dm_err err;
	char wc[256], snap[256];
	dm_oid tree;

	create(f, DOT, "master", NULL);
	wc_path(f, DOT, "master", wc, sizeof(wc));
	put_file(wc, "a", 16u << 20, 1);
	put_file(wc, "b", 8u << 20, 2);
	snapshot(f, DOT, "master", "c1");
	index_snap(f, DOT, "c1", NULL, &tree);
	stats(f, &st);
	assert_true(st.external >= 24 * 1024 / 256); /* at least one per max-sized chunk */
	assert_int_equal(st.external, st.objects[DM_OBJ_CHUNK]);
	assert_true(st.pack_bytes < 256 * 1024);
	assert_int_equal(dm_store_verify(f->s, &rep, &err), 0);
	/* the working copy changes; the snapshot and so the store do not */
	put_file(wc, "a", 16u << 20, 3);
	assert_int_equal(dm_store_verify(f->s, &rep, &err), 0);
	snap_dir(f, DOT, "c1", snap, sizeof(snap));
	assert_true(holds(snap, "a", 16u << 20, 1));
	/* a reset to the tree brings the old content back */
	assert_int_equal(dm_engine_reset(f->e, DOT, "master", &tree, NULL, &err), 0);
	assert_true(holds(wc, "a", 16u << 20, 1));
}

/* Reset swaps in a writable snapshot of the target's snapshot; a tree
 * without a snapshot is written file by file; NULL empties the wc. */
static void test_reset(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;
	char wc[256], snap[256], other[256];
	uint8_t u_wc[16], p_wc[16], u_snap[16], p_snap[16];
	dm_oid t1, t2, t3;

	create(f, DOT, "master", NULL);
	wc_path(f, DOT, "master", wc, sizeof(wc));
	put_file(wc, "keep", 3000, 1);
	put_file(wc, "gone", 3000, 2);
	snapshot(f, DOT, "master", "c1");
	index_snap(f, DOT, "c1", NULL, &t1);
	put_file(wc, "keep", 4000, 3);
	join(other, sizeof(other), wc, "gone");
	assert_int_equal(unlink(other), 0);
	put_file(wc, "added", 10, 4);
	snapshot(f, DOT, "master", "c2");
	index_snap(f, DOT, "c2", "c1", &t2);
	put_file(wc, "scratch", 10, 5);

	assert_int_equal(dm_engine_reset(f->e, DOT, "master", &t1, NULL, &err), 0);
	assert_true(holds(wc, "keep", 3000, 1));
	assert_true(holds(wc, "gone", 3000, 2));
	assert_false(exists(wc, "added"));
	assert_false(exists(wc, "scratch"));
	snap_dir(f, DOT, "c1", snap, sizeof(snap));
	subvol_uuids(wc, u_wc, p_wc);
	subvol_uuids(snap, u_snap, p_snap);
	assert_memory_equal(p_wc, u_snap, 16); /* a snapshot of c1, not a copy */
	assert_int_equal(dirty(f, "master", &t1), 0);
	put_file(wc, "writable", 10, 6);

	/* a tree no snapshot holds (data from elsewhere) is materialised */
	snprintf(other, sizeof(other), "%s-plain", f->store_dir);
	assert_int_equal(dm_mkdir_p(other, 0755, &err), 0);
	put_file(other, "from-elsewhere", 5000, 9);
	assert_int_equal(dm_tree_build(f->s, &t3, other, NULL, NULL, &err), 0);
	assert_int_equal(dm_engine_reset(f->e, DOT, "master", &t3, NULL, &err), 0);
	assert_true(holds(wc, "from-elsewhere", 5000, 9));
	assert_false(exists(wc, "keep"));
	assert_int_equal(dirty(f, "master", &t3), 0);
	dm_remove_tree(other, &err);

	assert_int_equal(dm_engine_reset(f->e, DOT, "master", NULL, NULL, &err), 0);
	assert_false(exists(wc, "from-elsewhere"));
	assert_int_equal(dirty(f, "master", NULL), 0);
	assert_int_equal(dm_engine_reset(f->e, DOT, "master", &t2, NULL, &err), 0);
	assert_true(holds(wc, "keep", 4000, 3));
	assert_true(holds(wc, "added", 10, 4));
}

/* A branch made from a tree with a snapshot is a writable snapshot of it,
 * independent of the source from then on. */
static void test_create_from_snapshot(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;
	char wc[256], wc2[256], snap[256];
	uint8_t u[16], p[16], us[16], ps[16];
	dm_oid t1;

	create(f, DOT, "master", NULL);
	wc_path(f, DOT, "master", wc, sizeof(wc));
	put_file(wc, "x", 100000, 1);
	snapshot(f, DOT, "master", "c1");
	index_snap(f, DOT, "c1", NULL, &t1);
	create(f, DOT, "feature", &t1);
	wc_path(f, DOT, "feature", wc2, sizeof(wc2));
	assert_true(holds(wc2, "x", 100000, 1));
	subvol_uuids(wc2, u, p);
	snap_dir(f, DOT, "c1", snap, sizeof(snap));
	subvol_uuids(snap, us, ps);
	assert_memory_equal(p, us, 16);
	put_file(wc2, "x", 10, 2);
	assert_true(holds(wc, "x", 100000, 1));
	assert_int_equal(dirty(f, "master", &t1), 0);
	assert_int_equal(dirty(f, "feature", &t1), 10);
	assert_int_equal(dm_engine_create(f->e, DOT, "feature", &t1, NULL, &err), DM_EEXISTS);
}

static void test_dirty_and_diff(void **state)
{
	struct fixture *f = *state;
	struct dm_diff d = {0, NULL};
	struct dm_err err;
	char wc[256], path[300];
	dm_oid t1;

	create(f, DOT, "master", NULL);
	wc_path(f, DOT, "master", wc, sizeof(wc));
	put_dir(wc, "dir");
	put_file(wc, "dir/a", 1000, 1);
	put_file(wc, "b", 2000, 2);
	put_file(wc, "c", 3000, 3);
	age();
	commit_one_step(f, "master", &t1);
	assert_int_equal(dirty(f, "master", &t1), 0);
	put_file(wc, "b", 2500, 4);
	join(path, sizeof(path), wc, "c");
	assert_int_equal(unlink(path), 0);
	put_file(wc, "dir/new", 40, 5);
	assert_int_equal(dirty(f, "master", &t1), 2500 + 3000 + 40);
	assert_int_equal(dm_engine_diff(f->e, DOT, "master", &t1, NULL, &d, &err), 0);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.changes[0].path, "b");
	assert_int_equal(d.changes[0].status, DM_CHANGE_MODIFIED);
	assert_string_equal(d.changes[1].path, "c");
	assert_int_equal(d.changes[1].status, DM_CHANGE_DELETED);
	assert_string_equal(d.changes[2].path, "dir/new");
	assert_int_equal(d.changes[2].status, DM_CHANGE_ADDED);
	dm_diff_release(&d);
}

/* One-step commits: unchanged files are not read again. */
static void test_commit_one_step(void **state)
{
	struct fixture *f = *state;
	char wc[256];
	dm_oid t1, t2;

	create(f, DOT, "master", NULL);
	wc_path(f, DOT, "master", wc, sizeof(wc));
	put_file(wc, "a", 70000, 1);
	age();
	commit_one_step(f, "master", &t1);
	commit_one_step(f, "master", &t2);
	assert_memory_equal(&t1, &t2, sizeof(t1));
	put_file(wc, "a", 70001, 2);
	commit_one_step(f, "master", &t2);
	assert_true(dm_oid_cmp(&t1, &t2) != 0);
	/* dirty is what changed since the last snapshot, whatever head says */
	assert_int_equal(dirty(f, "master", &t2), 0);
	assert_int_equal(dirty(f, "master", &t1), 0);
}

/* Dirty bytes come from the extents that changed since the last snapshot:
 * 1% of a file changed in place reports about 1% of it, before and after
 * the write-back; a touch reports nothing, a chmod one byte. */
static void test_dirty_from_extents(void **state)
{
	struct fixture *f = *state;
	const size_t big = 10u << 20, change = 100u << 10;
	unsigned char *buf = malloc(change);
	char wc[256], path[300];
	uint64_t d;
	dm_oid t1;
	int fd;

	create(f, DOT, "master", NULL);
	wc_path(f, DOT, "master", wc, sizeof(wc));
	put_file(wc, "big", big, 1);
	put_file(wc, "small", 100, 2);
	age();
	commit_one_step(f, "master", &t1);
	assert_int_equal(dirty(f, "master", &t1), 0);
	join(path, sizeof(path), wc, "big");
	assert_int_equal(utimensat(AT_FDCWD, path, NULL, 0), 0);
	assert_int_equal(dirty(f, "master", &t1), 0);
	for (size_t i = 0; i < change; i++)
		buf[i] = byte_at(i, 9);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(dm_pwrite_all(fd, buf, change, 4 << 20), 0);
	d = dirty(f, "master", &t1); /* not written back yet: delalloc */
	print_message("1%% changed in place: %llu dirty bytes of %zu\n", (unsigned long long)d,
		      big);
	assert_true(d >= change && d <= change + 8192);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	d = dirty(f, "master", &t1);
	assert_true(d >= change && d <= change + 8192);
	join(path, sizeof(path), wc, "small");
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(dirty(f, "master", &t1), d + 1);
	free(buf);
}

/* A second store standing in for the sender. */
struct sender {
	char dir[200], src[200];
	struct dm_store *s;
};

static void sender_open(struct sender *snd)
{
	struct dm_store_opts o;
	struct dm_err err;

	snprintf(snd->dir, sizeof(snd->dir), "%s/sender-%d", base_dir, test_no);
	snprintf(snd->src, sizeof(snd->src), "%s/sender-src-%d", base_dir, test_no);
	assert_int_equal(dm_mkdir_p(snd->src, 0755, &err), 0);
	dm_store_opts_default(&o);
	o.sync = false;
	assert_int_equal(dm_store_open(&snd->s, snd->dir, &o, &err), 0);
}

static void sender_close(struct sender *snd)
{
	struct dm_err err;

	dm_store_free(snd->s);
	dm_remove_tree(snd->dir, &err);
	dm_remove_tree(snd->src, &err);
}

struct copy_ctx {
	struct dm_store *from, *to;
	uint64_t n;
};

static int copy_one(const dm_oid *id, int kind, uint64_t raw_len, void *p)
{
	struct copy_ctx *c = p;
	struct dm_buf b = DM_BUF_INIT;
	struct dm_pack_rec rec;
	struct dm_err err;

	(void)kind;
	(void)raw_len;
	if (!dm_store_has(c->to, id)) {
		assert_int_equal(dm_store_get_stored(c->from, id, &rec, &b, &err), 0);
		assert_int_equal(dm_store_put_received(c->to, DOT, &rec, b.data, &err), 0);
		c->n++;
	}
	dm_buf_release(&b);
	return 0;
}

/* Commits the sender's source directory and sends every object the
 * receiver lacks, as a transfer would; records commit id with the tree. */
static void send(struct fixture *f, struct sender *snd, const char *id, dm_oid *tree)
{
	struct copy_ctx c = {snd->s, f->s, 0};
	struct dm_err err;

	assert_int_equal(dm_tree_build(snd->s, tree, snd->src, NULL, NULL, &err), 0);
	assert_int_equal(dm_store_foreach(snd->s, copy_one, &c, &err), 0);
	assert_int_equal(dm_store_flush(f->s, &err), 0);
	record_commit(f, DOT, id, tree);
}

/* The bytes of a file under a directory, read back whole. */
static void slurp(struct dm_buf *out, const char *dir, const char *rel)
{
	struct dm_err err;
	char p[512];

	join(p, sizeof(p), dir, rel);
	dm_buf_reset(out);
	assert_int_equal(dm_read_file(out, p, 64u << 20, &err), 0);
}

/* Bytes of dir_a/rel that do not share blocks with dir_b/rel. */
static uint64_t own_bytes(const char *dir_a, const char *dir_b, const char *rel, size_t size)
{
	char pa[300], pb[300];
	uint64_t changed = 0;
	int fa, fb;

	join(pa, sizeof(pa), dir_a, rel);
	join(pb, sizeof(pb), dir_b, rel);
	fa = open(pa, O_RDONLY);
	fb = open(pb, O_RDONLY);
	assert_true(fa >= 0 && fb >= 0);
	assert_int_equal(dm_filedata_changed_bytes(fa, size, fb, size, &changed), 0);
	close(fa);
	close(fb);
	return changed;
}

/* Data that arrives from elsewhere ends up on disk once: written into the
 * working copy, kept as the commit's read-only snapshot, and the store
 * points into it for the chunks that arrived, its staging packs deleted.
 * A second commit that changed a big file in place is written as a
 * reflinked copy of the first: the snapshots share all but the change; so
 * is a commit received into a new branch, from the commit it stands on. */
static void test_receive_into_snapshot(void **state)
{
	struct fixture *f = *state;
	struct sender snd;
	struct dm_store_stats st;
	struct dm_verify_report rep;
	struct dm_buf a = DM_BUF_INIT, b = DM_BUF_INIT;
	struct dm_err err;
	char wc[256], s1[256], s2[256], s3[256];
	const size_t big = 8u << 20;
	uint64_t changed;
	dm_oid t1, t2, t3;

	sender_open(&snd);
	put_file(snd.src, "big", big, 11);
	put_file(snd.src, "small", 3000, 12);
	send(f, &snd, "c1", &t1);
	stats(f, &st);
	assert_int_equal(st.staged_packs, 1);
	assert_int_equal(dm_engine_receive(f->e, DOT, "master", false, NULL, "c1", &t1, NULL, &err),
			 0);
	wc_path(f, DOT, "master", wc, sizeof(wc));
	assert_true(holds(wc, "big", big, 11));
	assert_true(holds(wc, "small", 3000, 12));
	snap_dir(f, DOT, "c1", s1, sizeof(s1));
	assert_true(holds(s1, "big", big, 11));
	stats(f, &st);
	assert_int_equal(st.staged_packs, 0);
	assert_true(st.external >= big / (256u << 10));
	assert_true(st.pack_bytes < big / 16); /* metadata only */
	assert_int_equal(dirty(f, "master", &t1), 0);
	assert_int_equal(dm_store_verify(f->s, &rep, &err), 0);

	/* a pull: 64 KiB of the big file changed in place, a new file */
	patch_file(snd.src, "big", 3 << 20, 65536, 13);
	put_file(snd.src, "new", 500000, 14);
	send(f, &snd, "c2", &t2);
	assert_int_equal(dm_engine_receive(f->e, DOT, "master", true, "c1", "c2", &t2, NULL, &err),
			 0);
	slurp(&a, snd.src, "big");
	slurp(&b, wc, "big");
	assert_true(a.len == b.len && !memcmp(a.data, b.data, a.len));
	assert_true(holds(wc, "new", 500000, 14));
	snap_dir(f, DOT, "c2", s2, sizeof(s2));
	changed = own_bytes(s2, s1, "big", big);
	print_message("the second snapshot's big file has %llu bytes of its own\n",
		      (unsigned long long)changed);
	assert_true(changed >= 65536 && changed <= (1u << 20));
	/* a push of a new branch standing on c2 */
	patch_file(snd.src, "big", 5 << 20, 65536, 15);
	send(f, &snd, "c3", &t3);
	assert_int_equal(
		dm_engine_receive(f->e, DOT, "feature", false, "c2", "c3", &t3, NULL, &err), 0);
	snap_dir(f, DOT, "c3", s3, sizeof(s3));
	changed = own_bytes(s3, s2, "big", big);
	assert_true(changed >= 65536 && changed <= (1u << 20));
	stats(f, &st);
	assert_int_equal(st.staged_packs, 0);
	assert_true(st.pack_bytes < big / 16);
	assert_int_equal(dm_store_verify(f->s, &rep, &err), 0);
	dm_buf_release(&a);
	dm_buf_release(&b);
	sender_close(&snd);
}

/* Deleting a branch deletes its subvolume; dropping a snapshot and
 * deleting a dot delete theirs and leave no object pointing into them,
 * while what another dot's history shares is copied into the packs. */
static void test_delete(void **state)
{
	struct fixture *f = *state;
	struct dm_store_stats st;
	struct dm_verify_report rep;
	struct dm_err err;
	struct dm_buf b = DM_BUF_INIT;
	char wc[256], wc2[256], snap[256], dotdir[256];
	dm_oid t1, t2, tb;

	create(f, DOT, "master", NULL);
	wc_path(f, DOT, "master", wc, sizeof(wc));
	put_file(wc, "shared", 300000, 1);
	put_file(wc, "own", 300000, 2);
	snapshot(f, DOT, "master", "c1");
	index_snap(f, DOT, "c1", NULL, &t1);
	record_commit(f, DOT, "c1", &t1);

	create(f, DOT, "side", &t1);
	wc_path(f, DOT, "side", wc2, sizeof(wc2));
	assert_int_equal(dm_engine_delete_branch(f->e, DOT, "side", &err), 0);
	assert_false(exists(wc2, ""));
	assert_int_not_equal(btrfs_util_is_subvolume(wc2), BTRFS_UTIL_OK);

	/* a snapshot that was never sealed */
	put_file(wc, "tmp", 100000, 3);
	snapshot(f, DOT, "master", "c2");
	index_snap(f, DOT, "c2", "c1", &tb);
	stats(f, &st);
	assert_int_equal(dm_engine_drop_snapshot(f->e, DOT, "c2", &err), 0);
	snap_dir(f, DOT, "c2", snap, sizeof(snap));
	assert_false(exists(snap, ""));
	assert_int_equal(dm_store_verify(f->s, &rep, &err), 0);
	{
		struct dm_store_stats after;

		stats(f, &after);
		assert_true(after.external < st.external); /* tmp's chunks are forgotten */
	}

	/* another dot shares "shared" (deduplicated into dot 1's snapshot) */
	create(f, DOT2, "master", NULL);
	wc_path(f, DOT2, "master", wc2, sizeof(wc2));
	put_file(wc2, "shared", 300000, 1);
	snapshot(f, DOT2, "master", "d1");
	index_snap(f, DOT2, "d1", NULL, &t2);
	record_commit(f, DOT2, "d1", &t2);
	stats(f, &st);
	assert_int_equal(dm_engine_delete_dot(f->e, DOT, &err), 0);
	assert_int_equal(dm_store_commit_delete_dot(f->s, DOT, &err), 0);
	snprintf(dotdir, sizeof(dotdir), "%s/%s", f->root, DOT);
	assert_false(exists(dotdir, ""));
	{
		struct dm_store_stats after;

		stats(f, &after);
		/* "shared" was copied into the packs, "own" forgotten */
		assert_true(after.pack_bytes >= st.pack_bytes + 300000);
		assert_int_equal(after.external, 0);
		assert_true(after.objects[DM_OBJ_CHUNK] < st.objects[DM_OBJ_CHUNK]);
	}
	assert_int_equal(dm_store_verify(f->s, &rep, &err), 0);
	/* dot 2's history is whole: its tree materialises elsewhere */
	assert_int_equal(dm_engine_delete_dot(f->e, DOT2, &err), 0);
	{
		char plain[200];

		snprintf(plain, sizeof(plain), "%s-plain", f->store_dir);
		assert_int_equal(dm_tree_materialize(f->s, &t2, plain, NULL, NULL, &err), 0);
		assert_true(holds(plain, "shared", 300000, 1));
		dm_remove_tree(plain, &err);
	}
	assert_int_equal(dm_engine_delete_dot(f->e, DOT, &err), 0); /* idempotent */
	dm_buf_release(&b);
}

static void test_bad_names_refused(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;
	dm_oid t;

	create(f, DOT, "master", NULL);
	assert_int_equal(dm_engine_snapshot(f->e, DOT, "master", "../x", &err), DM_EINVAL);
	assert_int_equal(dm_engine_snapshot(f->e, "../x", "master", "c1", &err), DM_EINVAL);
	assert_int_equal(dm_engine_snapshot(f->e, DOT, "no.dots", "c1", &err), DM_EINVAL);
	assert_int_equal(dm_engine_snapshot(f->e, DOT, "nobranch", "c1", &err), DM_ENOTFOUND);
	assert_int_equal(dm_engine_index(f->e, DOT, "missing", NULL, NULL, &t, NULL, &err),
			 DM_ENOTFOUND);
	snapshot(f, DOT, "master", "c1");
	assert_int_equal(dm_engine_snapshot(f->e, DOT, "master", "c1", &err), DM_EEXISTS);
}

/* Writes len bytes (as put_file) and fsyncs them: 0, or the errno of the
 * first write or fsync that failed. */
static int try_write(const char *dir, const char *rel, size_t len)
{
	enum { CHUNK = 1 << 20 };
	unsigned char *buf = malloc(CHUNK);
	char p[512];
	int fd, e = 0;

	join(p, sizeof(p), dir, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	for (size_t off = 0; !e && off < len; off += CHUNK) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;

		for (size_t i = 0; i < n; i++)
			buf[i] = byte_at(off + i, 7);
		if (dm_write_all(fd, buf, n) < 0)
			e = errno;
	}
	if (!e && fsync(fd) < 0)
		e = errno;
	close(fd);
	free(buf);
	return e;
}

/* dir/rel, in a static buffer (one at a time). */
static const char *wc_file(const char *dir, const char *rel)
{
	static char p[512];

	join(p, sizeof(p), dir, rel);
	return p;
}

/* A size limit: writing past it fails with EDQUOT, under it works; it
 * stays through a reset to a snapshot taken before it was set (a new
 * subvolume), a branch made from a snapshot of the limited one does not
 * get it (btrfs would copy it from the snapshot's qgroup), and 0 lifts it.
 * Quotas stay on in the pool afterwards: this test runs last. */
static void test_limit(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;
	char wc[256], wc2[256];
	dm_oid t1, t2;

	assert_true(dm_engine_can_limit(f->e));
	create(f, DOT, "master", NULL);
	wc_path(f, DOT, "master", wc, sizeof(wc));
	put_file(wc, "base", 1u << 20, 1);
	snapshot(f, DOT, "master", "c1");
	index_snap(f, DOT, "c1", NULL, &t1);
	assert_int_equal(dm_engine_limit(f->e, DOT, "nobranch", 8u << 20, &err), DM_ENOTFOUND);
	assert_int_equal(dm_engine_limit(f->e, DOT, "master", 8u << 20, &err), 0);
	assert_int_equal(try_write(wc, "past", 16u << 20), EDQUOT);
	assert_int_equal(unlink(wc_file(wc, "past")), 0);
	sync();
	assert_int_equal(try_write(wc, "under", 2u << 20), 0);
	snapshot(f, DOT, "master", "c2");
	index_snap(f, DOT, "c2", "c1", &t2);

	/* a reset swaps in a writable snapshot of c1, from before the limit */
	assert_int_equal(dm_engine_reset(f->e, DOT, "master", &t1, NULL, &err), 0);
	assert_false(exists(wc, "under"));
	assert_int_equal(try_write(wc, "past", 16u << 20), EDQUOT);
	assert_int_equal(unlink(wc_file(wc, "past")), 0);

	/* a branch from c2, taken under the limit, has none of its own */
	create(f, DOT, "other", &t2);
	wc_path(f, DOT, "other", wc2, sizeof(wc2));
	assert_true(exists(wc2, "under"));
	assert_int_equal(try_write(wc2, "big", 16u << 20), 0);

	assert_int_equal(dm_engine_limit(f->e, DOT, "master", 0, &err), 0);
	assert_int_equal(try_write(wc, "past", 16u << 20), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_helpers),
		cmocka_unit_test_setup_teardown(test_open_refuses_other_file_systems, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_is_instant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_reuses_parent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_reads_only_changed_blocks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_chunks_point_into_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_from_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_and_diff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_from_extents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receive_into_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_one_step, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names_refused, setup, teardown),
		/* last: it turns quotas on in the pool */
		cmocka_unit_test_setup_teardown(test_limit, setup, teardown),
	};
	struct dm_err err;

	dm_log_setup(stderr, DM_LOG_WARN);
	if (dm_pool_can_loop(&err)) {
		printf("1..0 # SKIP the btrfs engine needs a loop pool: %s\n", err.msg);
		return 0;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
