/*
 * test_engine.c - the dir engine through the dm_engine_* dispatch: working
 * copies created, committed, reset, compared (dirty, diff) and deleted;
 * no size limits.
 *
 * Every test has its own mkdtemp directory under /tmp holding a store and
 * the engine root, removed at the end. Tests that need stat cache hits age
 * their files past the cache's racy window with one sleep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "store/object.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

#define DOT "3f2a9c1e-0d4b-4b7e-9a51-6c2f8e1d0a77"

struct fixture {
	char dir[64];
	char root[128];
	struct dm_store *s;
	struct dm_engine *e;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct dm_store_opts o;
	struct dm_err err;
	char sdir[128];

	snprintf(f->dir, sizeof(f->dir), "/tmp/dm-test-engine-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(sdir, sizeof(sdir), "%s/store", f->dir);
	snprintf(f->root, sizeof(f->root), "%s/engine", f->dir);
	dm_store_opts_default(&o);
	o.sync = false;
	if (dm_store_open(&f->s, sdir, &o, &err))
		return -1;
	if (dm_engine_open(&f->e, "dir", f->root, f->s, &err))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;

	dm_engine_free(f->e);
	dm_store_free(f->s);
	dm_remove_tree(f->dir, &err);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static void wc_path(struct fixture *f, const char *branch, char *out, size_t size)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;

	assert_int_equal(dm_engine_path(f->e, DOT, branch, &b, &err), 0);
	assert_true(b.len < size);
	memcpy(out, b.data, b.len + 1);
	dm_buf_release(&b);
}

static void join(char *out, size_t size, const char *a, const char *b)
{
	if (snprintf(out, size, "%s/%s", a, b) >= (int)size)
		fail_msg("path too long");
}

/* Writes len bytes derived from seed to dir/rel (mode 0644). */
static void put_file(const char *dir, const char *rel, size_t len, unsigned seed)
{
	char p[512];
	unsigned char *buf = malloc(len ? len : 1);
	int fd;

	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 131u + seed * 7919u) >> 3);
	join(p, sizeof(p), dir, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(dm_write_all(fd, buf, len), 0);
	close(fd);
	free(buf);
}

static void put_dir(const char *dir, const char *rel)
{
	char p[512];

	join(p, sizeof(p), dir, rel);
	assert_int_equal(mkdir(p, 0755), 0);
}

static void put_link(const char *dir, const char *rel, const char *target)
{
	char p[512];

	join(p, sizeof(p), dir, rel);
	assert_int_equal(symlink(target, p), 0);
}

static void rm(const char *dir, const char *rel)
{
	char p[512];

	join(p, sizeof(p), dir, rel);
	assert_int_equal(unlink(p), 0);
}

static bool exists(const char *dir, const char *rel)
{
	char p[512];
	struct stat st;

	join(p, sizeof(p), dir, rel);
	return lstat(p, &st) == 0;
}

static void stat_of(const char *dir, const char *rel, struct stat *st)
{
	char p[512];

	join(p, sizeof(p), dir, rel);
	assert_int_equal(lstat(p, st), 0);
}

/* True when dir/rel holds exactly what put_file(len, seed) wrote. */
static bool holds(const char *dir, const char *rel, size_t len, unsigned seed)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	char p[512];
	bool ok;

	join(p, sizeof(p), dir, rel);
	if (dm_read_file(&b, p, 1 << 20, &err))
		return false;
	ok = b.len == len;
	for (size_t i = 0; ok && i < len; i++)
		ok = b.data[i] == (unsigned char)((i * 131u + seed * 7919u) >> 3);
	dm_buf_release(&b);
	return ok;
}

static void age(void)
{
	struct timespec ts = {2, 200 * 1000 * 1000}; /* past the 2 s racy window */

	nanosleep(&ts, NULL);
}

static void commit(struct fixture *f, const char *branch, dm_oid *out)
{
	struct dm_err err;

	if (dm_engine_commit(f->e, DOT, branch, out, NULL, &err))
		fail_msg("commit: %s", err.msg);
}

static uint64_t dirty(struct fixture *f, const dm_oid *head, uint64_t *total)
{
	struct dm_err err;
	uint64_t d = 99999999, t = 99999999;

	if (dm_engine_dirty(f->e, DOT, "master", head, &d, &t, &err))
		fail_msg("dirty: %s", err.msg);
	if (total)
		*total = t;
	return d;
}

/* Checks a diff against "status path" lines, in order. */
static void expect_diff(const struct dm_diff *d, const char *const *want, size_t n)
{
	bool same = d->n == n;
	char line[600];

	for (size_t i = 0; same && i < n; i++) {
		snprintf(line, sizeof(line), "%s %s", dm_change_status_name(d->changes[i].status),
			 d->changes[i].path);
		same = !strcmp(line, want[i]);
	}
	if (same)
		return;
	for (size_t i = 0; i < d->n; i++)
		print_message("  got: %s %s\n", dm_change_status_name(d->changes[i].status),
			      d->changes[i].path);
	fail_msg("the diff differs from the %zu changes expected", n);
}

static void store_counts(struct fixture *f, uint64_t out[5])
{
	struct dm_store_stats st;
	struct dm_err err;

	assert_int_equal(dm_store_stats(f->s, &st, &err), 0);
	for (int i = 0; i < 5; i++)
		out[i] = st.objects[i];
}

/* ---- tests ---- */

static void test_open_by_name(void **state)
{
	struct fixture *f = *state;
	struct dm_engine *e = (struct dm_engine *)1;
	struct dm_err err;

	assert_string_equal(dm_engine_name(f->e), "dir");
	assert_int_equal(dm_engine_open(&e, "zfs", f->root, f->s, &err), DM_EINVAL);
	assert_null(e);
	assert_string_equal(err.msg, "unknown engine 'zfs'");
	assert_string_equal(dm_change_status_name(DM_CHANGE_ADDED), "added");
	assert_string_equal(dm_change_status_name(DM_CHANGE_MODIFIED), "modified");
	assert_string_equal(dm_change_status_name(DM_CHANGE_DELETED), "deleted");
}

/* The dir engine cannot limit a working copy's size, and says which can. */
static void test_limit_unsupported(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;

	assert_false(dm_engine_can_limit(f->e));
	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, NULL, &err), 0);
	assert_int_equal(dm_engine_limit(f->e, DOT, "master", 1u << 20, &err), DM_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "the btrfs engine can"));
}

static void test_empty_create_and_commit(void **state)
{
	struct fixture *f = *state;
	struct dm_tree t = {0, NULL};
	struct dm_buf enc = DM_BUF_INIT;
	struct dm_err err;
	char wc[256], want[256], cache[300];
	dm_oid empty, id;
	struct stat st;

	assert_int_equal(dm_tree_encode(&enc, &t, &err), 0);
	dm_hash(&empty, enc.data, enc.len);
	dm_buf_release(&enc);

	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, NULL, &err), 0);
	wc_path(f, "master", wc, sizeof(wc));
	assert_true(wc[0] == '/');
	snprintf(want, sizeof(want), "/" DOT "/master/wc");
	assert_string_equal(wc + strlen(wc) - strlen(want), want);
	assert_int_equal(stat(wc, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	commit(f, "master", &id);
	assert_memory_equal(&id, &empty, sizeof(id));
	assert_int_equal(dm_store_has(f->s, &empty), 1);
	/* the stat cache lives next to wc, not inside it */
	snprintf(cache, sizeof(cache), "%.*s/statcache", (int)(strlen(wc) - 3), wc);
	assert_int_equal(stat(cache, &st), 0);
	assert_false(exists(wc, "statcache"));
	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, NULL, &err), DM_EEXISTS);
	assert_int_equal(dm_engine_commit(f->e, DOT, "nope", &id, NULL, &err), DM_ENOTFOUND);
}

/* The files of the base fixture: sizes 100 + 200 + 300 + 400 = 1000. */
static void make_base(const char *wc)
{
	put_file(wc, "a.txt", 100, 1);
	put_dir(wc, "sub");
	put_file(wc, "sub/b.txt", 200, 2);
	put_dir(wc, "sub/deep");
	put_file(wc, "sub/deep/c.txt", 300, 3);
	put_file(wc, "keep.txt", 400, 4);
	put_link(wc, "link", "a.txt");
}

static void test_dirty_and_diff(void **state)
{
	struct fixture *f = *state;
	struct dm_diff d = {0, NULL}, d2 = {0, NULL};
	struct dm_err err;
	uint64_t before[5], after[5], total;
	char wc[256], p[512];
	dm_oid t1, t2;

	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, NULL, &err), 0);
	wc_path(f, "master", wc, sizeof(wc));
	make_base(wc);
	/* nothing committed yet: everything is dirty against the empty tree */
	assert_int_equal(dirty(f, NULL, &total), 1000 + 5);
	assert_int_equal(total, 1000);
	commit(f, "master", &t1);
	assert_int_equal(dirty(f, &t1, &total), 0);
	assert_int_equal(total, 1000);
	assert_int_equal(dm_engine_diff(f->e, DOT, "master", &t1, NULL, &d, &err), 0);
	assert_int_equal(d.n, 0);
	dm_diff_release(&d);

	/* one file changed in place, same size: found by content */
	put_file(wc, "sub/b.txt", 200, 22);
	assert_int_equal(dirty(f, &t1, NULL), 200);
	assert_int_equal(dm_engine_diff(f->e, DOT, "master", &t1, NULL, &d, &err), 0);
	{
		const char *const want[] = {"modified sub/b.txt"};

		expect_diff(&d, want, 1);
	}
	dm_diff_release(&d);

	/* rewritten with the same bytes: not a change */
	put_file(wc, "keep.txt", 400, 4);
	assert_int_equal(dirty(f, &t1, NULL), 200);

	/* added, deleted, nested, mode-only, symlink retargeted, type change */
	put_file(wc, "sub/new.txt", 50, 5);
	put_dir(wc, "newdir");
	put_file(wc, "newdir/x", 10, 6);
	put_dir(wc, "newdir/y");
	put_file(wc, "newdir/y/z", 20, 7);
	rm(wc, "a.txt");
	join(p, sizeof(p), wc, "sub/deep/c.txt");
	assert_int_equal(chmod(p, 0600), 0);
	rm(wc, "link");
	put_link(wc, "link", "keep.txt"); /* 8 bytes */
	rm(wc, "sub/deep/c.txt");
	put_link(wc, "sub/deep/c.txt", "../b.txt"); /* 8 bytes */

	store_counts(f, before);
	/* 200 b + 50 new + 10 x + 20 z + 100 deleted a + 8 link + 8 c */
	assert_int_equal(dirty(f, &t1, &total), 396);
	assert_int_equal(total, 200 + 400 + 50 + 10 + 20);
	assert_int_equal(dm_engine_diff(f->e, DOT, "master", &t1, NULL, &d, &err), 0);
	{
		const char *const want[] = {
			"deleted a.txt",     "modified link",      "added newdir/x",
			"added newdir/y/z",  "modified sub/b.txt", "modified sub/deep/c.txt",
			"added sub/new.txt",
		};

		expect_diff(&d, want, sizeof(want) / sizeof(want[0]));
	}
	store_counts(f, after);
	assert_memory_equal(before, after, sizeof(before));

	/* the same changes between two trees */
	commit(f, "master", &t2);
	assert_int_equal(dm_engine_diff(f->e, NULL, NULL, &t1, &t2, &d2, &err), 0);
	assert_int_equal(d2.n, d.n);
	for (size_t i = 0; i < d.n; i++) {
		assert_int_equal(d2.changes[i].status, d.changes[i].status);
		assert_string_equal(d2.changes[i].path, d.changes[i].path);
	}
	dm_diff_release(&d);
	dm_diff_release(&d2);
	assert_int_equal(dm_engine_diff(f->e, NULL, NULL, &t2, &t2, &d, &err), 0);
	assert_int_equal(d.n, 0);
	dm_diff_release(&d);

	/* from the empty tree: every file and symlink added, no directories */
	assert_int_equal(dm_engine_diff(f->e, NULL, NULL, NULL, &t1, &d, &err), 0);
	{
		const char *const want[] = {
			"added a.txt",     "added keep.txt",       "added link",
			"added sub/b.txt", "added sub/deep/c.txt",
		};

		expect_diff(&d, want, sizeof(want) / sizeof(want[0]));
	}
	dm_diff_release(&d);

	/* a directory replaced by a file, and a file by a directory */
	join(p, sizeof(p), wc, "sub");
	assert_int_equal(dm_remove_tree(p, &err), 0);
	put_file(wc, "sub", 7, 8);
	rm(wc, "keep.txt");
	put_dir(wc, "keep.txt");
	put_file(wc, "keep.txt/inner", 3, 9);
	assert_int_equal(dm_engine_diff(f->e, DOT, "master", &t1, NULL, &d, &err), 0);
	{
		const char *const want[] = {
			"deleted a.txt", "deleted keep.txt",  "added keep.txt/inner",
			"modified link", "added newdir/x",    "added newdir/y/z",
			"added sub",     "deleted sub/b.txt", "deleted sub/deep/c.txt",
		};

		expect_diff(&d, want, sizeof(want) / sizeof(want[0]));
	}
	dm_diff_release(&d);
	store_counts(f, after);
	{
		uint64_t again[5];

		/* sub 7 added; b 200, c 8, new 50, keep 400 deleted; inner 3 added */
		assert_int_equal(dirty(f, &t2, NULL), 7 + 200 + 8 + 50 + 400 + 3);
		store_counts(f, again);
		assert_memory_equal(after, again, sizeof(after));
	}
}

/* Reads "N hashed" from the last "commit of" line of the log. */
static long hashed_in_log(FILE *log)
{
	char line[2048];
	long last = -1;

	fflush(log);
	rewind(log);
	while (fgets(line, sizeof(line), log)) {
		const char *p = strstr(line, "commit of '");
		unsigned long long files, hashed;

		if (!p || !(p = strstr(p, "': ")))
			continue;
		if (sscanf(p, "': %llu files, %llu hashed", &files, &hashed) == 2)
			last = (long)hashed;
	}
	fseek(log, 0, SEEK_END);
	return last;
}

static void test_commit_unchanged_hashes_nothing(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;
	char wc[256];
	FILE *log = tmpfile();
	uint64_t before[5], after[5];
	dm_oid t1, t2, t3;

	assert_non_null(log);
	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, NULL, &err), 0);
	wc_path(f, "master", wc, sizeof(wc));
	make_base(wc);
	age();
	dm_log_setup(log, DM_LOG_DEBUG);
	commit(f, "master", &t1);
	assert_int_equal(hashed_in_log(log), 4);
	store_counts(f, before);
	commit(f, "master", &t2);
	assert_int_equal(hashed_in_log(log), 0);
	store_counts(f, after);
	assert_memory_equal(&t1, &t2, sizeof(t1));
	assert_memory_equal(before, after, sizeof(before));
	/* one changed file is the only one read again */
	put_file(wc, "sub/b.txt", 200, 22);
	commit(f, "master", &t3);
	assert_int_equal(hashed_in_log(log), 1);
	assert_memory_not_equal(&t1, &t3, sizeof(t1));
	dm_log_setup(NULL, DM_LOG_INFO);
	fclose(log);
	/* the clean state agrees: dirty is 0 without reading anything */
	assert_int_equal(dirty(f, &t3, NULL), 0);
}

/* The files "settled" in the log lines written since *pos (then moved
 * past them). */
static long settled_since(FILE *log, long *pos)
{
	char line[2048];
	long n = 0;

	fflush(log);
	fseek(log, *pos, SEEK_SET);
	while (fgets(line, sizeof(line), log)) {
		const char *p = strstr(line, "dirty of '");
		unsigned long long k;

		if (p && (p = strstr(p, "': ")) && sscanf(p, "': %llu files settled", &k) == 1)
			n += (long)k;
	}
	*pos = ftell(log);
	return n;
}

/* Files written just before a commit cannot be trusted by their stat
 * (the racy window): the first dirty measure past the window reads them
 * and settles them in the stat cache, so that later measures do not read
 * them again, and a change after that is still found. */
static void test_dirty_settles_racy_files(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;
	FILE *log = tmpfile();
	long pos = 0;
	char wc[256];
	dm_oid t1;

	assert_non_null(log);
	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, NULL, &err), 0);
	wc_path(f, "master", wc, sizeof(wc));
	make_base(wc);
	dm_log_setup(log, DM_LOG_DEBUG);
	commit(f, "master", &t1); /* right after the writes: every file racy */
	/* within the window: read, found the same, but not settled */
	assert_int_equal(dirty(f, &t1, NULL), 0);
	assert_int_equal(settled_since(log, &pos), 0);
	age();
	assert_int_equal(dirty(f, &t1, NULL), 0);
	assert_int_equal(settled_since(log, &pos), 4);
	assert_int_equal(dirty(f, &t1, NULL), 0);
	assert_int_equal(settled_since(log, &pos), 0);
	/* a settled file changed in place, same size: still found */
	put_file(wc, "sub/b.txt", 200, 22);
	assert_int_equal(dirty(f, &t1, NULL), 200);
	assert_int_equal(settled_since(log, &pos), 0);
	/* and changed back: the same content again, racy, not settled */
	put_file(wc, "sub/b.txt", 200, 2);
	assert_int_equal(dirty(f, &t1, NULL), 0);
	assert_int_equal(settled_since(log, &pos), 0);
	dm_log_setup(NULL, DM_LOG_INFO);
	fclose(log);
}

static void test_reset(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;
	struct stat keep0, keep1, wc0, wc1;
	char wc[256], p[512];
	dm_oid t1, t2;

	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, NULL, &err), 0);
	wc_path(f, "master", wc, sizeof(wc));
	make_base(wc);
	commit(f, "master", &t1);
	stat_of(wc, "keep.txt", &keep0);
	stat_of(wc, ".", &wc0);

	put_file(wc, "sub/b.txt", 200, 22);
	put_file(wc, "later.txt", 10, 10);
	put_dir(wc, "later");
	put_file(wc, "later/x", 10, 11);
	rm(wc, "a.txt");
	join(p, sizeof(p), wc, "sub/deep/c.txt");
	assert_int_equal(chmod(p, 0600), 0);
	commit(f, "master", &t2);
	assert_memory_not_equal(&t1, &t2, sizeof(t1));

	assert_int_equal(dm_engine_reset(f->e, DOT, "master", &t1, NULL, &err), 0);
	assert_true(holds(wc, "a.txt", 100, 1));
	assert_true(holds(wc, "sub/b.txt", 200, 2));
	assert_true(holds(wc, "sub/deep/c.txt", 300, 3));
	assert_false(exists(wc, "later.txt"));
	assert_false(exists(wc, "later"));
	stat_of(wc, "sub/deep/c.txt", &keep1);
	assert_int_equal(keep1.st_mode & 07777, 0644);
	stat_of(wc, "keep.txt", &keep1);
	assert_int_equal(keep1.st_ino, keep0.st_ino);
	assert_int_equal(keep1.st_mtim.tv_sec, keep0.st_mtim.tv_sec);
	assert_int_equal(keep1.st_mtim.tv_nsec, keep0.st_mtim.tv_nsec);
	assert_int_equal(dirty(f, &t1, NULL), 0);

	/* forward again, then to the empty tree: wc itself stays the same dir */
	assert_int_equal(dm_engine_reset(f->e, DOT, "master", &t2, NULL, &err), 0);
	assert_true(holds(wc, "later/x", 10, 11));
	assert_int_equal(dirty(f, &t2, NULL), 0);
	assert_int_equal(dm_engine_reset(f->e, DOT, "master", NULL, NULL, &err), 0);
	assert_false(exists(wc, "keep.txt"));
	assert_false(exists(wc, "sub"));
	stat_of(wc, ".", &wc1);
	assert_int_equal(wc1.st_ino, wc0.st_ino);
	assert_int_equal(dirty(f, NULL, NULL), 0);
	assert_int_equal(dm_engine_reset(f->e, DOT, "gone", &t1, NULL, &err), DM_ENOTFOUND);
}

static void test_branch_from_tree(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;
	char wc[256], wc2[256];
	dm_oid t1, t2;
	uint64_t total = 0;

	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, NULL, &err), 0);
	wc_path(f, "master", wc, sizeof(wc));
	make_base(wc);
	commit(f, "master", &t1);
	assert_int_equal(dm_engine_create(f->e, DOT, "feature", &t1, NULL, &err), 0);
	wc_path(f, "feature", wc2, sizeof(wc2));
	assert_string_not_equal(wc, wc2);
	assert_true(holds(wc2, "a.txt", 100, 1));
	assert_true(holds(wc2, "sub/deep/c.txt", 300, 3));
	assert_true(holds(wc2, "keep.txt", 400, 4));
	assert_int_equal(dm_engine_dirty(f->e, DOT, "feature", &t1, &(uint64_t){0}, &total, &err),
			 0);
	assert_int_equal(total, 1000);
	assert_int_equal(dm_engine_commit(f->e, DOT, "feature", &t2, NULL, &err), 0);
	assert_memory_equal(&t1, &t2, sizeof(t1));
	/* the branches are independent */
	put_file(wc2, "only-feature", 5, 12);
	assert_false(exists(wc, "only-feature"));
	/* a create from a missing tree fails and leaves nothing behind */
	{
		dm_oid bogus;
		char p[512];

		memset(&bogus, 0xab, sizeof(bogus));
		assert_int_equal(dm_engine_create(f->e, DOT, "broken", &bogus, NULL, &err),
				 DM_ENOTFOUND);
		snprintf(p, sizeof(p), "%s/" DOT "/broken", f->root);
		assert_int_equal(access(p, F_OK), -1);
		assert_int_equal(dm_engine_create(f->e, DOT, "broken", NULL, NULL, &err), 0);
	}
}

static void test_delete(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;
	char wc[256], p[512];
	dm_oid t1;

	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, NULL, &err), 0);
	wc_path(f, "master", wc, sizeof(wc));
	make_base(wc);
	commit(f, "master", &t1);
	assert_int_equal(dm_engine_create(f->e, DOT, "b2", &t1, NULL, &err), 0);
	assert_int_equal(dm_engine_create(f->e, "other", "master", &t1, NULL, &err), 0);

	assert_int_equal(dm_engine_delete_branch(f->e, DOT, "b2", &err), 0);
	snprintf(p, sizeof(p), "%s/" DOT "/b2", f->root);
	assert_int_equal(access(p, F_OK), -1);
	assert_true(holds(wc, "a.txt", 100, 1));
	assert_int_equal(dm_engine_delete_branch(f->e, DOT, "b2", &err), 0);

	assert_int_equal(dm_engine_delete_dot(f->e, DOT, &err), 0);
	snprintf(p, sizeof(p), "%s/" DOT, f->root);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(dm_engine_delete_dot(f->e, DOT, &err), 0);
	assert_int_equal(dm_engine_delete_branch(f->e, DOT, "master", &err), 0);
	/* the other dot is untouched */
	snprintf(p, sizeof(p), "%s/other/master/wc", f->root);
	assert_true(holds(p, "keep.txt", 400, 4));
	assert_int_equal(
		dm_engine_dirty(f->e, DOT, "master", NULL, &(uint64_t){0}, &(uint64_t){0}, &err),
		DM_ENOTFOUND);
}

static void test_bad_names_refused(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = {"..", ".", "", "a/b", "../x", "x y", NULL};
	struct dm_buf b = DM_BUF_INIT;
	struct dm_diff d = {0, NULL};
	struct dm_err err;
	uint64_t u;
	dm_oid id;
	char p[256];

	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, NULL, &err), 0);
	for (size_t i = 0; bad[i]; i++) {
		const char *n = bad[i];

		assert_int_equal(dm_engine_create(f->e, n, "master", NULL, NULL, &err), DM_EINVAL);
		assert_int_equal(dm_engine_create(f->e, DOT, n, NULL, NULL, &err), DM_EINVAL);
		assert_int_equal(dm_engine_commit(f->e, DOT, n, &id, NULL, &err), DM_EINVAL);
		assert_int_equal(dm_engine_commit(f->e, n, "master", &id, NULL, &err), DM_EINVAL);
		assert_int_equal(dm_engine_reset(f->e, n, "master", NULL, NULL, &err), DM_EINVAL);
		assert_int_equal(dm_engine_dirty(f->e, DOT, n, NULL, &u, &u, &err), DM_EINVAL);
		assert_int_equal(dm_engine_diff(f->e, n, "master", NULL, NULL, &d, &err),
				 DM_EINVAL);
		assert_int_equal(dm_engine_delete_branch(f->e, DOT, n, &err), DM_EINVAL);
		assert_int_equal(dm_engine_delete_dot(f->e, n, &err), DM_EINVAL);
		assert_int_equal(dm_engine_path(f->e, n, "master", &b, &err), DM_EINVAL);
	}
	assert_int_equal(dm_engine_create(f->e, NULL, "master", NULL, NULL, &err), DM_EINVAL);
	assert_int_equal(dm_engine_create(f->e, DOT, NULL, NULL, NULL, &err), DM_EINVAL);
	assert_int_equal(dm_engine_create(f->e, DOT, "a.b", NULL, NULL, &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "'a.b'"));
	/* delete of ".." must not have removed the engine root or the store */
	assert_int_equal(access(f->root, F_OK), 0);
	snprintf(p, sizeof(p), "%s/store", f->dir);
	assert_int_equal(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/" DOT "/master/wc", f->root);
	assert_int_equal(access(p, F_OK), 0);
	dm_buf_release(&b);
}

/* Owners count when dmd runs as root (checkouts restore them then). */
static void test_owner_change_is_modified(void **state)
{
	struct fixture *f = *state;
	struct dm_diff d = {0, NULL};
	struct dm_err err;
	char wc[256], p[512];
	dm_oid t1;

	if (geteuid() != 0) {
		skip();
		return;
	}
	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, NULL, &err), 0);
	wc_path(f, "master", wc, sizeof(wc));
	make_base(wc);
	commit(f, "master", &t1);
	join(p, sizeof(p), wc, "keep.txt");
	assert_int_equal(lchown(p, 1234, 1234), 0);
	join(p, sizeof(p), wc, "link");
	assert_int_equal(lchown(p, 1234, 1234), 0);
	assert_int_equal(dirty(f, &t1, NULL), 400 + 5);
	assert_int_equal(dm_engine_diff(f->e, DOT, "master", &t1, NULL, &d, &err), 0);
	{
		const char *const want[] = {"modified keep.txt", "modified link"};

		expect_diff(&d, want, 2);
	}
	dm_diff_release(&d);
	/* reset gives them back */
	assert_int_equal(dm_engine_reset(f->e, DOT, "master", &t1, NULL, &err), 0);
	assert_int_equal(dirty(f, &t1, NULL), 0);
}

struct prog {
	int reports;
	uint64_t last_done, last_total;
	bool cancel;
};

static void on_report(void *ctx, uint64_t done, uint64_t total)
{
	struct prog *p = ctx;

	p->reports++;
	p->last_done = done;
	p->last_total = total;
}

static bool on_cancelled(void *ctx)
{
	return ((struct prog *)ctx)->cancel;
}

/* The dot's stable path leads to the current branch, and moves atomically. */
static void test_current_follows_set_current(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;
	char cur[256], master[256], other[256], p[512];
	struct stat st;

	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, NULL, &err), 0);
	assert_int_equal(dm_engine_create(f->e, DOT, "other", NULL, NULL, &err), 0);
	wc_path(f, NULL, cur, sizeof(cur));
	wc_path(f, "master", master, sizeof(master));
	wc_path(f, "other", other, sizeof(other));
	put_file(master, "m", 3, 1);
	put_file(other, "o", 3, 2);
	assert_int_equal(dm_engine_set_current(f->e, DOT, "master", &err), 0);
	join(p, sizeof(p), cur, "m");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(dm_engine_set_current(f->e, DOT, "other", &err), 0);
	assert_int_not_equal(stat(p, &st), 0);
	join(p, sizeof(p), cur, "o");
	assert_int_equal(stat(p, &st), 0);
	/* a branch named like the link cannot exist: names have no '.' */
	assert_int_equal(dm_engine_set_current(f->e, DOT, "../x", &err), DM_EINVAL);
	assert_int_equal(stat(p, &st), 0);
}

static void test_progress_and_cancel(void **state)
{
	struct fixture *f = *state;
	struct prog pr = {0, 0, 0, false};
	struct dm_engine_progress p = {.report = on_report, .cancelled = on_cancelled, .ctx = &pr};
	struct dm_err err;
	char wc[256];
	dm_oid t1;

	assert_int_equal(dm_engine_create(f->e, DOT, "master", NULL, &p, &err), 0);
	wc_path(f, "master", wc, sizeof(wc));
	make_base(wc);
	pr.reports = 0;
	assert_int_equal(dm_engine_commit(f->e, DOT, "master", &t1, &p, &err), 0);
	assert_true(pr.reports >= 2);
	assert_int_equal(pr.last_done, 1000);
	assert_int_equal(pr.last_total, 1000);
	pr.cancel = true;
	pr.reports = 0;
	assert_int_equal(dm_engine_commit(f->e, DOT, "master", &t1, &p, &err), DM_ECANCELED);
	assert_int_equal(dm_engine_reset(f->e, DOT, "master", NULL, &p, &err), DM_ECANCELED);
	assert_int_equal(dm_engine_create(f->e, DOT, "b", NULL, &p, &err), DM_ECANCELED);
	assert_int_equal(pr.reports, 0);
	assert_true(holds(wc, "a.txt", 100, 1)); /* the cancelled reset touched nothing */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_by_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limit_unsupported, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_create_and_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dirty_and_diff, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_unchanged_hashes_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dirty_settles_racy_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_branch_from_tree, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_names_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_owner_change_is_modified, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_progress_and_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_current_follows_set_current, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
