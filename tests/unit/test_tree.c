/*
 * test_tree.c - directories into trees and back: dm_tree_build,
 * dm_tree_materialize and the stat cache.
 *
 * Every test works in its own mkdtemp directory under /tmp with a store of
 * its own, removed at the end. Owner checks need root and are skipped
 * otherwise. The fixture "old" tree is made once and then aged past the
 * stat cache's racy window (one sleep for the whole file), so cache tests
 * can expect hits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "store/statcache.h"
#include "store/store.h"
#include "store/tree.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define UNI_NAME "\xc3\xa9t\xc3\xa9 \xe2\x98\x83" /* "été ☃" */
#define NL_NAME "line\nbreak"

struct fixture {
	char dir[64];
	char src[128], dst[128], store_dir[128];
	struct dm_store *s;
};

static char aged_dir[64]; /* made once, older than the racy window */

static bool is_root(void)
{
	return geteuid() == 0;
}

static void path_join(char *out, size_t size, const char *a, const char *b)
{
	if (snprintf(out, size, "%s/%s", a, b) >= (int)size)
		fail_msg("path too long");
}

static void fill(unsigned char *p, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

static void write_file(const char *dir, const char *name, size_t len, uint64_t seed,
		       mode_t mode)
{
	char p[512];
	unsigned char *buf = malloc(len ? len : 1);
	int fd;

	path_join(p, sizeof(p), dir, name);
	fill(buf, len, seed);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(dm_write_all(fd, buf, len), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	free(buf);
}

static void make_dir(const char *dir, const char *name, mode_t mode)
{
	char p[512];

	path_join(p, sizeof(p), dir, name);
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(chmod(p, mode), 0);
}

static void make_link(const char *dir, const char *name, const char *target)
{
	char p[512];

	path_join(p, sizeof(p), dir, name);
	assert_int_equal(symlink(target, p), 0);
}

static struct dm_store *open_store(const char *dir)
{
	struct dm_store_opts o;
	struct dm_store *s = NULL;
	struct dm_err err;

	dm_store_opts_default(&o);
	o.sync = false;
	if (dm_store_open(&s, dir, &o, &err))
		fail_msg("open: %s", err.msg);
	return s;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/dm-test-tree-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	path_join(fx->src, sizeof(fx->src), fx->dir, "src");
	path_join(fx->dst, sizeof(fx->dst), fx->dir, "dst");
	path_join(fx->store_dir, sizeof(fx->store_dir), fx->dir, "store");
	if (mkdir(fx->src, 0755) < 0)
		return -1;
	fx->s = open_store(fx->store_dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	dm_store_free(fx->s);
	assert_int_equal(dm_remove_tree(fx->dir, NULL), 0);
	free(fx);
	return 0;
}

static void build_ok(struct fixture *fx, const char *dir, struct dm_statcache *cache,
		     int threads, dm_oid *out, struct dm_build_stats *st)
{
	struct dm_build_opts o = {.threads = threads, .cache = cache};
	struct dm_err err = {0, ""};
	int rc = dm_tree_build(fx->s, out, dir, &o, st, &err);

	if (rc)
		fail_msg("build '%s': %s", dir, err.msg);
}

static void materialize_ok(struct fixture *fx, const dm_oid *tree, const char *dir,
			   struct dm_statcache *cache, struct dm_materialize_stats *st)
{
	struct dm_materialize_opts o = {.cache = cache, .restore_owner = is_root()};
	struct dm_err err = {0, ""};
	int rc = dm_tree_materialize(fx->s, tree, dir, &o, st, &err);

	if (rc)
		fail_msg("materialize into '%s': %s", dir, err.msg);
}

/* ---- comparing two directories ---- */

static mode_t mode_at(const char *dir, const char *name)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(lstat(p, &st), 0);
	return st.st_mode & 07777;
}

static bool files_equal(const char *a, const char *b)
{
	struct dm_buf x, y;
	bool eq;

	dm_buf_init(&x, 0);
	dm_buf_init(&y, 0);
	if (dm_read_file(&x, a, 1u << 30, NULL) || dm_read_file(&y, b, 1u << 30, NULL))
		fail_msg("cannot read '%s' or '%s'", a, b);
	eq = x.len == y.len && (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
	dm_buf_release(&x);
	dm_buf_release(&y);
	return eq;
}

/* Compares a and b recursively: types, modes, owners, mtimes, sizes,
 * content, link targets; returns the number of entries compared. */
static int compare_trees(const char *a, const char *b, bool owners)
{
	DIR *d = opendir(a);
	struct dirent *de;
	int count = 0, nb = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char pa[1024], pb[1024];
		struct stat sa, sb;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		path_join(pa, sizeof(pa), a, de->d_name);
		path_join(pb, sizeof(pb), b, de->d_name);
		assert_int_equal(lstat(pa, &sa), 0);
		if (lstat(pb, &sb) != 0)
			fail_msg("'%s' is missing", pb);
		count++;
		assert_int_equal(sa.st_mode, sb.st_mode);
		if (owners) {
			assert_int_equal(sa.st_uid, sb.st_uid);
			assert_int_equal(sa.st_gid, sb.st_gid);
		}
		if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec ||
		    sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec)
			fail_msg("mtime of '%s' differs", pb);
		if (S_ISREG(sa.st_mode)) {
			assert_int_equal(sa.st_size, sb.st_size);
			if (!files_equal(pa, pb))
				fail_msg("content of '%s' differs", pb);
			/* Holes stay holes: no more blocks than the original. */
			assert_true(sb.st_blocks <= sa.st_blocks + 8);
		} else if (S_ISLNK(sa.st_mode)) {
			char ta[4096], tb[4096];
			ssize_t na = readlink(pa, ta, sizeof(ta)), nb2 = readlink(pb, tb, sizeof(tb));

			assert_true(na >= 0);
			assert_int_equal(na, nb2);
			assert_memory_equal(ta, tb, (size_t)na);
		} else if (S_ISDIR(sa.st_mode)) {
			count += compare_trees(pa, pb, owners);
		}
	}
	closedir(d);
	d = opendir(b);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			nb++;
	closedir(d);
	{
		DIR *d2 = opendir(a);
		int na = 0;

		while ((de = readdir(d2)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				na++;
		closedir(d2);
		assert_int_equal(na, nb);
	}
	return count;
}

/* ---- the sample directory ---- */

static void make_sample(const char *src)
{
	char p[512];
	int fd;

	write_file(src, "empty", 0, 1, 0644);
	write_file(src, "one", 1, 2, 0644);
	write_file(src, "small", 4095, 3, 0600);
	write_file(src, "chunky", 700 * 1024, 4, 0640);
	write_file(src, "zero-mode", 100, 5, 0000);
	write_file(src, "setuid", 200, 6, 04755);
	write_file(src, "name with spaces", 10, 7, 0644);
	write_file(src, UNI_NAME, 11, 8, 0644);
	write_file(src, NL_NAME, 12, 9, 0644);
	make_dir(src, "nested", 0755);
	make_dir(src, "nested/deeper", 0700);
	make_dir(src, "nested/deeper/deepest", 0755);
	write_file(src, "nested/deeper/deepest/leaf", 3000, 10, 0644);
	make_dir(src, "emptydir", 0755);
	make_dir(src, "sticky", 01777);
	make_dir(src, "closed", 0500);
	make_link(src, "link", "nested/deeper/deepest/leaf");
	make_link(src, "dangling", "../../nowhere/at all");
	make_link(src, "nested/up", "..");
	/* A sparse file: 64 MiB with two data islands. */
	path_join(p, sizeof(p), src, "sparse");
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "island one", 10, 8 << 20), 10);
	assert_int_equal(pwrite(fd, "island two", 10, 40 << 20), 10);
	assert_int_equal(ftruncate(fd, 64 << 20), 0);
	close(fd);
	/* A hard link. */
	{
		char q[512];

		path_join(p, sizeof(p), src, "small");
		path_join(q, sizeof(q), src, "hardlink");
		assert_int_equal(link(p, q), 0);
	}
	if (is_root()) {
		path_join(p, sizeof(p), src, "chunky");
		assert_int_equal(chown(p, 12345, 54321), 0);
		path_join(p, sizeof(p), src, "setuid");
		assert_int_equal(chown(p, 1001, 1002), 0);
		assert_int_equal(chmod(p, 04755), 0); /* chown cleared it */
		path_join(p, sizeof(p), src, "link");
		assert_int_equal(lchown(p, 777, 888), 0);
		path_join(p, sizeof(p), src, "nested");
		assert_int_equal(chown(p, 4242, 4343), 0);
	}
	/* Fixed, distinct mtimes (with nanoseconds) for everything. */
	{
		const char *names[] = {"empty", "one", "small", "chunky", "zero-mode", "setuid",
				       "nested/deeper/deepest/leaf", "link", "sparse",
				       "nested/deeper/deepest", "nested/deeper", "nested",
				       "emptydir", "sticky", "closed"};

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			struct timespec t[2] = {{1000000000 + (time_t)i * 1000, 123456789},
						{1500000000 + (time_t)i * 1000, (long)(i * 1111)}};

			path_join(p, sizeof(p), src, names[i]);
			assert_int_equal(utimensat(AT_FDCWD, p, t, AT_SYMLINK_NOFOLLOW), 0);
		}
	}
}

/* ---- tests ---- */

static void test_roundtrip(void **state)
{
	struct fixture *fx = *state;
	struct dm_build_stats bs;
	struct dm_materialize_stats ms;
	dm_oid id, id2;
	char p[512], q[512];
	struct stat a, b;
	int fd;

	make_sample(fx->src);
	build_ok(fx, fx->src, NULL, 0, &id, &bs);
	assert_int_equal(bs.files, 12);
	assert_int_equal(bs.files_hashed, 12);
	assert_int_equal(bs.symlinks, 4 - 1); /* link, dangling, nested/up */
	assert_int_equal(bs.dirs, 1 + 6);
	/* The sparse file's 64 MiB are not read: only its data blocks. */
	assert_true(bs.bytes_hashed < 2 * 1024 * 1024);
	assert_true(bs.bytes_total > 64 * 1024 * 1024);

	materialize_ok(fx, &id, fx->dst, NULL, &ms);
	assert_int_equal(ms.files_written, 12);
	assert_int_equal(ms.removed, 0);
	assert_true(compare_trees(fx->src, fx->dst, is_root()) >= 20);

	/* The sparse file has holes: few blocks, and a hole at offset 0. */
	path_join(p, sizeof(p), fx->dst, "sparse");
	assert_int_equal(lstat(p, &a), 0);
	assert_int_equal(a.st_size, 64 << 20);
	assert_true(a.st_blocks * 512 < 1024 * 1024);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 0, SEEK_HOLE), 0);
	assert_true(lseek(fd, 0, SEEK_DATA) >= (8 << 20) - 65536);
	close(fd);

	/* Hard links come back as separate files. */
	path_join(p, sizeof(p), fx->dst, "small");
	path_join(q, sizeof(q), fx->dst, "hardlink");
	assert_int_equal(lstat(p, &a), 0);
	assert_int_equal(lstat(q, &b), 0);
	assert_int_equal(a.st_nlink, 1);
	assert_true(a.st_ino != b.st_ino);

	/* Modes exactly, setuid included (chmod after chown). */
	path_join(p, sizeof(p), fx->dst, "setuid");
	assert_int_equal(lstat(p, &a), 0);
	assert_int_equal(a.st_mode & 07777, 04755);
	if (is_root()) {
		assert_int_equal(a.st_uid, 1001);
		assert_int_equal(a.st_gid, 1002);
		path_join(p, sizeof(p), fx->dst, "link");
		assert_int_equal(lstat(p, &a), 0);
		assert_int_equal(a.st_uid, 777);
	}

	/* Building the copy gives the same tree: nothing was lost. */
	build_ok(fx, fx->dst, NULL, 1, &id2, &bs);
	assert_memory_equal(id.b, id2.b, DM_OID_RAWSZ);
}

static void test_threads_agree(void **state)
{
	struct fixture *fx = *state;
	dm_oid a, b;

	make_sample(fx->src);
	build_ok(fx, fx->src, NULL, 1, &a, NULL);
	build_ok(fx, fx->src, NULL, 7, &b, NULL);
	assert_memory_equal(a.b, b.b, DM_OID_RAWSZ);
}

static void test_cache_hits(void **state)
{
	struct fixture *fx = *state;
	struct dm_statcache *c = dm_statcache_new(), *c2 = NULL;
	struct dm_build_stats bs;
	struct dm_err err;
	char cpath[256], p[512];
	struct stat old;
	dm_oid a, b, d;

	build_ok(fx, aged_dir, c, 0, &a, &bs);
	assert_int_equal(bs.files_hashed, bs.files);
	assert_true(bs.files >= 100);
	assert_int_equal(dm_statcache_count(c), bs.files);

	build_ok(fx, aged_dir, c, 0, &b, &bs);
	assert_int_equal(bs.files_hashed, 0);
	assert_memory_equal(a.b, b.b, DM_OID_RAWSZ);

	/* Through the file too. */
	path_join(cpath, sizeof(cpath), fx->dir, "cache");
	assert_int_equal(dm_statcache_save(c, cpath, &err), 0);
	assert_int_equal(dm_statcache_load(&c2, cpath, &err), 0);
	assert_int_equal(dm_statcache_count(c2), dm_statcache_count(c));
	build_ok(fx, aged_dir, c2, 0, &b, &bs);
	assert_int_equal(bs.files_hashed, 0);
	assert_memory_equal(a.b, b.b, DM_OID_RAWSZ);

	/* Touching one file (new content) hashes exactly that one. */
	path_join(p, sizeof(p), aged_dir, "d3/f7");
	assert_int_equal(lstat(p, &old), 0);
	path_join(p, sizeof(p), aged_dir, "d3");
	write_file(p, "f7", 50, 999, 0644);
	build_ok(fx, aged_dir, c2, 0, &d, &bs);
	assert_int_equal(bs.files_hashed, 1);
	assert_memory_not_equal(a.b, d.b, DM_OID_RAWSZ);
	/* Putting the old content and mtime back gives the old tree again. */
	write_file(p, "f7", 7 * 37, 3 * 1000 + 7, 0644);
	{
		struct timespec ts[2] = {{0, UTIME_OMIT}, old.st_mtim};

		path_join(p, sizeof(p), aged_dir, "d3/f7");
		assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	}
	build_ok(fx, aged_dir, c2, 0, &d, &bs);
	assert_int_equal(bs.files_hashed, 1);
	assert_memory_equal(a.b, d.b, DM_OID_RAWSZ);

	/* A removed file leaves the cache. */
	path_join(p, sizeof(p), aged_dir, "d3/f7");
	{
		char q[512];

		path_join(q, sizeof(q), fx->dir, "f7.saved");
		assert_int_equal(rename(p, q), 0);
		build_ok(fx, aged_dir, c2, 0, &d, &bs);
		assert_int_equal(dm_statcache_count(c2), bs.files);
		assert_int_equal(rename(q, p), 0);
	}
	dm_statcache_free(c);
	dm_statcache_free(c2);
}

static void test_racy_entries(void **state)
{
	struct fixture *fx = *state;
	struct dm_statcache *c = dm_statcache_new();
	struct dm_statcache_stat cs;
	struct dm_build_stats bs;
	struct dm_err err;
	struct stat st;
	char p[512];
	dm_oid id, got, a, b;
	int64_t t;

	/* The rule itself: timestamps within the window before "seen" miss. */
	memset(&id, 7, sizeof(id));
	memset(&cs, 0, sizeof(cs));
	cs.size = 10;
	cs.ino = 99;
	cs.mode = S_IFREG | 0644;
	t = 1700000000LL * 1000000000;
	cs.mtime_ns = t;
	cs.ctime_ns = t - 5LL * 1000000000;
	assert_int_equal(dm_statcache_put(c, "x", 1, &cs, &id, t + 1000000000, &err), 0);
	assert_int_equal(dm_statcache_lookup(c, "x", 1, &cs, &got), 0); /* mtime racy */
	cs.mtime_ns = t - 5LL * 1000000000;
	cs.ctime_ns = t;
	assert_int_equal(dm_statcache_put(c, "x", 1, &cs, &id, t + 1000000000, &err), 0);
	assert_int_equal(dm_statcache_lookup(c, "x", 1, &cs, &got), 0); /* ctime racy */
	assert_int_equal(dm_statcache_put(c, "x", 1, &cs, &id, t + 3LL * 1000000000, &err), 0);
	assert_int_equal(dm_statcache_lookup(c, "x", 1, &cs, &got), 1); /* old enough */
	assert_memory_equal(got.b, id.b, DM_OID_RAWSZ);
	cs.size = 11; /* any stat difference misses */
	assert_int_equal(dm_statcache_lookup(c, "x", 1, &cs, &got), 0);
	dm_statcache_clear(c);

	/* A file written just now is read again by every build until it is old
	 * enough, even when its stat does not change. */
	write_file(fx->src, "fresh", 100, 1, 0644);
	build_ok(fx, fx->src, c, 0, &a, &bs);
	assert_int_equal(bs.files_hashed, 1);
	build_ok(fx, fx->src, c, 0, &b, &bs);
	assert_int_equal(bs.files_hashed, 1);
	/* Same size, same mtime, new content: found, because it was racy. */
	path_join(p, sizeof(p), fx->src, "fresh");
	assert_int_equal(lstat(p, &st), 0);
	write_file(fx->src, "fresh", 100, 2, 0644);
	{
		struct timespec ts[2] = {{0, UTIME_OMIT}, st.st_mtim};

		assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	}
	build_ok(fx, fx->src, c, 0, &b, &bs);
	assert_int_equal(bs.files_hashed, 1);
	assert_memory_not_equal(a.b, b.b, DM_OID_RAWSZ);
	dm_statcache_free(c);
}

static void test_statcache_file(void **state)
{
	struct fixture *fx = *state;
	struct dm_statcache *c = dm_statcache_new(), *l = NULL;
	struct dm_statcache_stat cs;
	struct dm_err err;
	char path[256], name[64];
	struct dm_buf raw;
	dm_oid id, got;
	int64_t t0, t_save, t_load;
	int fd;

	memset(&cs, 0, sizeof(cs));
	for (int i = 0; i < 100000; i++) {
		int n = snprintf(name, sizeof(name), "dir%d/sub %d/file-%d.dat", i % 97, i % 13, i);

		cs.size = (uint64_t)i;
		cs.ino = (uint64_t)i * 3;
		cs.mtime_ns = 1000000000LL * i;
		cs.ctime_ns = 1000000000LL * i + 1;
		cs.mode = S_IFREG | 0644;
		memset(&id, i & 0xff, sizeof(id));
		assert_int_equal(dm_statcache_put(c, name, (size_t)n, &cs, &id,
						  1000000000LL * i + 10LL * 1000000000, &err),
				 0);
	}
	assert_int_equal(dm_statcache_count(c), 100000);
	path_join(path, sizeof(path), fx->dir, "cache");
	t0 = dm_now_monotonic_ns();
	assert_int_equal(dm_statcache_save(c, path, &err), 0);
	t_save = dm_now_monotonic_ns() - t0;
	t0 = dm_now_monotonic_ns();
	assert_int_equal(dm_statcache_load(&l, path, &err), 0);
	t_load = dm_now_monotonic_ns() - t0;
	print_message("# stat cache, 100k entries: save %.1f ms, load %.1f ms\n",
		      (double)t_save / 1e6, (double)t_load / 1e6);
	assert_int_equal(dm_statcache_count(l), 100000);
	/* Entries survive exactly. */
	{
		int i = 4242;
		int n = snprintf(name, sizeof(name), "dir%d/sub %d/file-%d.dat", i % 97, i % 13, i);

		cs.size = (uint64_t)i;
		cs.ino = (uint64_t)i * 3;
		cs.mtime_ns = 1000000000LL * i;
		cs.ctime_ns = 1000000000LL * i + 1;
		assert_int_equal(dm_statcache_lookup(l, name, (size_t)n, &cs, &got), 1);
		memset(&id, i & 0xff, sizeof(id));
		assert_memory_equal(got.b, id.b, DM_OID_RAWSZ);
	}
	dm_statcache_free(l);

	/* A flipped byte anywhere: the cache is discarded, not trusted. */
	dm_buf_init(&raw, 0);
	assert_int_equal(dm_read_file(&raw, path, 1u << 30, &err), 0);
	raw.data[raw.len / 2] ^= 0x20;
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(dm_write_all(fd, raw.data, raw.len), 0);
	close(fd);
	dm_log_setup(stderr, DM_LOG_ERROR);
	assert_int_equal(dm_statcache_load(&l, path, &err), 0);
	assert_int_equal(dm_statcache_count(l), 0);
	dm_statcache_free(l);
	/* Truncated, and garbage with a huge count. */
	raw.data[raw.len / 2] ^= 0x20;
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(dm_write_all(fd, raw.data, raw.len - 40), 0);
	close(fd);
	assert_int_equal(dm_statcache_load(&l, path, &err), 0);
	assert_int_equal(dm_statcache_count(l), 0);
	dm_statcache_free(l);
	memset(raw.data + 8, 0xff, 8);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(dm_write_all(fd, raw.data, 200), 0);
	close(fd);
	assert_int_equal(dm_statcache_load(&l, path, &err), 0);
	assert_int_equal(dm_statcache_count(l), 0);
	dm_statcache_free(l);
	dm_log_setup(stderr, DM_LOG_INFO);
	/* Missing: empty, no error. */
	unlink(path);
	assert_int_equal(dm_statcache_load(&l, path, &err), 0);
	assert_int_equal(dm_statcache_count(l), 0);
	dm_statcache_free(l);
	dm_buf_release(&raw);
	dm_statcache_free(c);
}

static void test_special_files_refused(void **state)
{
	struct fixture *fx = *state;
	struct dm_err err = {0, ""};
	char p[512];
	dm_oid id;
	int rc;

	make_dir(fx->src, "sub", 0755);
	write_file(fx->src, "sub/ok", 10, 1, 0644);
	path_join(p, sizeof(p), fx->src, "sub/pipe");
	assert_int_equal(mkfifo(p, 0644), 0);
	rc = dm_tree_build(fx->s, &id, fx->src, NULL, NULL, &err);
	assert_int_equal(rc, DM_EUNSUPPORTED);
	assert_string_equal(err.msg, "cannot commit 'sub/pipe': fifos are not supported");
	unlink(p);

	{
		struct sockaddr_un sa;
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		path_join(sa.sun_path, sizeof(sa.sun_path), fx->src, "sock");
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		rc = dm_tree_build(fx->s, &id, fx->src, NULL, NULL, &err);
		assert_int_equal(rc, DM_EUNSUPPORTED);
		assert_string_equal(err.msg, "cannot commit 'sock': sockets are not supported");
		close(fd);
		unlink(sa.sun_path);
	}
	assert_int_equal(dm_tree_build(fx->s, &id, fx->src, NULL, NULL, &err), 0);
}

/* Lists dir recursively with inode, ctime, mtime and content hash. */
static void snapshot(const char *dir, struct dm_buf *out)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char p[1024];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		path_join(p, sizeof(p), dir, de->d_name);
		assert_int_equal(lstat(p, &st), 0);
		dm_buf_addf(out, "%s %o %lu %ld.%09ld %ld.%09ld %lld\n", p, st.st_mode,
			    (unsigned long)st.st_ino, (long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec,
			    (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_size);
		if (S_ISREG(st.st_mode)) {
			struct dm_buf c;
			dm_oid h;
			char hex[DM_OID_HEXSZ + 1];

			dm_buf_init(&c, 0);
			assert_int_equal(dm_read_file(&c, p, 1u << 30, NULL), 0);
			dm_hash(&h, c.data, c.len);
			dm_oid_hex(hex, &h);
			dm_buf_addf(out, "  %s\n", hex);
			dm_buf_release(&c);
		} else if (S_ISDIR(st.st_mode)) {
			snapshot(p, out);
		}
	}
	closedir(d);
}

static void test_materialize_cleans_up(void **state)
{
	struct fixture *fx = *state;
	struct dm_materialize_stats ms;
	struct dm_buf before, after;
	char p[512], outside[256], target[512];
	struct stat st;
	dm_oid id;

	make_dir(fx->src, "sub", 0755);
	write_file(fx->src, "sub/f", 100, 1, 0644);
	write_file(fx->src, "sub/g", 100, 2, 0644);
	make_dir(fx->src, "wasfile", 0755);
	write_file(fx->src, "wasdir", 10, 3, 0644);
	build_ok(fx, fx->src, NULL, 0, &id, NULL);

	/* Outside the destination: a directory a symlink points at. */
	path_join(outside, sizeof(outside), fx->dir, "outside");
	assert_int_equal(mkdir(outside, 0755), 0);
	write_file(outside, "f", 5, 9, 0644);
	write_file(outside, "keep", 5, 10, 0644);

	assert_int_equal(mkdir(fx->dst, 0755), 0);
	path_join(p, sizeof(p), fx->dst, "sub");
	assert_int_equal(symlink(outside, p), 0);
	write_file(fx->dst, "extra", 5, 11, 0644);
	make_dir(fx->dst, "extradir", 0755);
	make_dir(fx->dst, "extradir/inner", 0500);
	write_file(fx->dst, "extradir/inner/x", 5, 12, 0444);
	path_join(p, sizeof(p), fx->dst, "extralink");
	path_join(target, sizeof(target), outside, "keep");
	assert_int_equal(symlink(target, p), 0);
	write_file(fx->dst, "wasfile", 5, 13, 0644);
	make_dir(fx->dst, "wasdir", 0755);
	write_file(fx->dst, "wasdir/y", 5, 14, 0644);

	dm_buf_init(&before, 0);
	dm_buf_init(&after, 0);
	snapshot(outside, &before);
	materialize_ok(fx, &id, fx->dst, NULL, &ms);
	snapshot(outside, &after);
	/* Nothing outside changed: not a byte, not an inode, not a ctime. */
	assert_int_equal(before.len, after.len);
	assert_memory_equal(before.data, after.data, before.len);

	assert_int_equal(ms.removed, 6); /* sub, extra, extradir, extralink, wasfile, wasdir */
	path_join(p, sizeof(p), fx->dst, "sub");
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	compare_trees(fx->src, fx->dst, is_root());
	dm_buf_release(&before);
	dm_buf_release(&after);
}

/* A dot that strips setuid/setgid: its files never get them, whatever the
 * tree says, also when the file is kept; directories keep setgid. */
static void test_strip_setid(void **state)
{
	struct fixture *fx = *state;
	struct dm_materialize_opts o = {.restore_owner = is_root(), .strip_setid = true};
	struct dm_err err = {0, ""};
	char p[512];
	dm_oid id;

	write_file(fx->src, "su", 100, 1, 04755);
	write_file(fx->src, "sg", 100, 2, 02711);
	snprintf(p, sizeof(p), "%s/d", fx->src);
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(chmod(p, 02775), 0);
	assert_int_equal(chmod(fx->src, 0755), 0);
	build_ok(fx, fx->src, NULL, 0, &id, NULL);

	assert_int_equal(dm_tree_materialize(fx->s, &id, fx->dst, &o, NULL, &err), 0);
	assert_int_equal(mode_at(fx->dst, "su"), 0755);
	assert_int_equal(mode_at(fx->dst, "sg"), 0711);
	assert_int_equal(mode_at(fx->dst, "d"), 02775);
	/* kept files are fixed too: a copy that has the bits loses them */
	snprintf(p, sizeof(p), "%s/su", fx->dst);
	assert_int_equal(chmod(p, 04755), 0);
	assert_int_equal(dm_tree_materialize(fx->s, &id, fx->dst, &o, NULL, &err), 0);
	assert_int_equal(mode_at(fx->dst, "su"), 0755);
	/* without the option the tree's modes are restored whole */
	materialize_ok(fx, &id, fx->dst, NULL, NULL);
	assert_int_equal(mode_at(fx->dst, "su"), 04755);
	assert_int_equal(mode_at(fx->dst, "sg"), 02711);
}

static void test_identical_not_rewritten(void **state)
{
	struct fixture *fx = *state;
	struct dm_statcache *c = dm_statcache_new();
	struct dm_materialize_stats ms;
	struct dm_buf before, after;
	char p[512];
	dm_oid id;

	make_sample(fx->src);
	build_ok(fx, fx->src, NULL, 0, &id, NULL);
	materialize_ok(fx, &id, fx->dst, NULL, &ms);
	assert_int_equal(ms.files_written, 12);

	/* Without a cache: compared by content, kept, untouched. */
	dm_buf_init(&before, 0);
	dm_buf_init(&after, 0);
	snapshot(fx->dst, &before);
	materialize_ok(fx, &id, fx->dst, NULL, &ms);
	assert_int_equal(ms.files_written, 0);
	assert_int_equal(ms.files_kept, 12);
	assert_int_equal(ms.removed, 0);
	snapshot(fx->dst, &after);
	assert_int_equal(before.len, after.len);
	assert_memory_equal(before.data, after.data, before.len);

	/* With a cache too. */
	materialize_ok(fx, &id, fx->dst, c, &ms);
	assert_int_equal(ms.files_kept, 12);
	dm_buf_reset(&after);
	snapshot(fx->dst, &after);
	assert_memory_equal(before.data, after.data, before.len);

	/* One changed file (same size) is rewritten, and only it. */
	write_file(fx->dst, "small", 4095, 77, 0600);
	materialize_ok(fx, &id, fx->dst, NULL, &ms);
	assert_int_equal(ms.files_written, 1);
	assert_int_equal(ms.files_kept, 11);
	compare_trees(fx->src, fx->dst, is_root());
	/* A changed mode alone is fixed without rewriting. */
	path_join(p, sizeof(p), fx->dst, "one");
	assert_int_equal(chmod(p, 0666), 0);
	materialize_ok(fx, &id, fx->dst, NULL, &ms);
	assert_int_equal(ms.files_written, 0);
	compare_trees(fx->src, fx->dst, is_root());
	dm_buf_release(&before);
	dm_buf_release(&after);
	dm_statcache_free(c);
}

/* Stores a tree whose only entry is called name, which need not be valid:
 * a valid name of the same length is encoded and its bytes replaced. */
static void put_tree_named(struct fixture *fx, const char *name, dm_oid *out)
{
	struct dm_tree_entry e;
	struct dm_tree t = {1, &e};
	struct dm_file empty = {0, 0, NULL};
	struct dm_buf enc;
	struct dm_err err;
	char placeholder[300];
	size_t len = strlen(name);
	unsigned char *at;
	dm_oid file;

	dm_buf_init(&enc, 0);
	assert_int_equal(dm_file_encode(&enc, &empty, &err), 0);
	assert_int_equal(dm_store_put(fx->s, &file, DM_OBJ_FILE, enc.data, enc.len, &err), 0);
	dm_buf_release(&enc);
	memset(placeholder, 'Q', len);
	placeholder[len] = '\0';
	memset(&e, 0, sizeof(e));
	e.name = placeholder;
	e.type = DM_ENTRY_FILE;
	e.mode = 0644;
	e.id = file;
	dm_buf_init(&enc, 0);
	assert_int_equal(dm_tree_encode(&enc, &t, &err), 0);
	at = memmem(enc.data, enc.len, placeholder, len);
	assert_non_null(at);
	memcpy(at, name, len);
	assert_int_equal(dm_store_put(fx->s, out, DM_OBJ_TREE, enc.data, enc.len, &err), 0);
	dm_buf_release(&enc);
}

static void test_bad_names_refused(void **state)
{
	struct fixture *fx = *state;
	const char *bad[] = {"..", ".", "a/b", "../x"};
	struct dm_err err;
	struct dm_buf after;
	dm_oid id;

	dm_buf_init(&after, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_tree_named(fx, bad[i], &id);
		err.msg[0] = '\0';
		assert_true(dm_tree_materialize(fx->s, &id, fx->src, NULL, NULL, &err) < 0);
		assert_true(err.msg[0] != '\0');
	}
	/* A sane name through the same path works, so the refusals were real. */
	put_tree_named(fx, "ok", &id);
	assert_int_equal(dm_tree_materialize(fx->s, &id, fx->dst, NULL, NULL, &err), 0);
	{
		char p[512];
		struct stat st;

		path_join(p, sizeof(p), fx->dst, "ok");
		assert_int_equal(lstat(p, &st), 0);
		assert_int_equal(st.st_size, 0);
	}
	/* Nothing else appeared anywhere (the store only grew in its own dir). */
	snapshot(fx->src, &after);
	assert_int_equal(after.len, 0);
	dm_buf_release(&after);
}

static void test_no_cross_mount_follow(void **state)
{
	struct fixture *fx = *state;
	struct dm_err err;
	char p[512];
	dm_oid id;

	/* A symlinked directory in the source is stored as a symlink. */
	path_join(p, sizeof(p), fx->src, "etc");
	assert_int_equal(symlink("/etc", p), 0);
	assert_int_equal(dm_tree_build(fx->s, &id, fx->src, NULL, NULL, &err), 0);
	{
		struct dm_buf obj;
		struct dm_tree t;
		int kind;

		dm_buf_init(&obj, 0);
		assert_int_equal(dm_store_get(fx->s, &id, &obj, &kind, &err), 0);
		assert_int_equal(dm_tree_decode(&t, obj.data, obj.len, &err), 0);
		assert_int_equal(t.n, 1);
		assert_int_equal(t.e[0].type, DM_ENTRY_SYMLINK);
		assert_string_equal(t.e[0].target, "/etc");
		dm_tree_release(&t);
		dm_buf_release(&obj);
	}
	/* A mount point inside is refused, with its path. */
	if (is_root()) {
		char q[512];
		int rc;

		path_join(q, sizeof(q), fx->src, "mnt");
		assert_int_equal(mkdir(q, 0755), 0);
		if (mount("tmpfs", q, "tmpfs", 0, "size=1m") < 0) {
			print_message("# cannot mount a tmpfs (%s): mount point check skipped\n",
				      strerror(errno));
			return;
		}
		rc = dm_tree_build(fx->s, &id, fx->src, NULL, NULL, &err);
		umount(q);
		assert_int_equal(rc, DM_EUNSUPPORTED);
		assert_string_equal(err.msg,
				    "cannot commit 'mnt': it is a mount point of another file system");
	}
}

static int make_aged(void)
{
	char p[256];

	snprintf(aged_dir, sizeof(aged_dir), "/tmp/dm-test-aged-XXXXXX");
	if (!mkdtemp(aged_dir))
		return -1;
	for (int d = 0; d < 10; d++) {
		snprintf(p, sizeof(p), "%s/d%d", aged_dir, d);
		if (mkdir(p, 0755) < 0)
			return -1;
		for (int f = 0; f < 12; f++) {
			char name[32];

			snprintf(name, sizeof(name), "f%d", f);
			write_file(p, name, (size_t)(f * 37), (uint64_t)(d * 1000 + f), 0644);
		}
	}
	/* Older than the racy window, ctime included. */
	usleep((useconds_t)(DM_STATCACHE_RACY_NS / 1000) + 200000);
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	return make_aged();
}

static int group_teardown(void **state)
{
	(void)state;
	return dm_remove_tree(aged_dir, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_agree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_hits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_racy_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_statcache_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_special_files_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_materialize_cleans_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identical_not_rewritten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_strip_setid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_cross_mount_follow, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
