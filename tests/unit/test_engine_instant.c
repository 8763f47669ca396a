/*
 * test_engine_instant.c - commits as of one instant on the dir engine
 * (dm_engine_commit_instant): a commit with writers to freeze reads the
 * copies it made while they were frozen, whatever they write after the
 * thaw; a writer that is not frozen (a thread here, as a process on the
 * host would be) is found and the commit says it is not one instant; the
 * freeze's bound fails the commit and thaws; a failed freeze commits
 * nothing; what a frozen commit stores is exactly what a plain read of the
 * same files stores.
 *
 * Every test runs twice: in a directory under /tmp (whatever file system
 * that is; ext4 here, without reflinks, so the working copy is read before
 * the freeze and changed files are copied), and inside a btrfs loop pool
 * (reflinks: the freeze copies nothing). The second group is skipped
 * (with the reason) where loop devices cannot be made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/pool.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

#define DOT       "3f2a9c1e-0d4b-4b7e-9a51-6c2f8e1d0a77"
#define POOL_SIZE (1ull << 30)

static char tmp_base[64];  /* mkdtemp under /tmp */
static char pool_dir[128]; /* the btrfs pool's mount point, or "" */
static char pool_error[DM_ERR_MSG_MAX];
static int test_no;

struct fixture {
	char dir[200];
	char root[260];
	char wc[400];
	struct dm_store *s;
	struct dm_engine *e;
};

static int setup_in(void **state, const char *base)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct dm_store_opts o;
	struct dm_err err;
	char sdir[300];
	struct dm_buf b = DM_BUF_INIT;

	snprintf(f->dir, sizeof(f->dir), "%s/t%d", base, ++test_no);
	snprintf(sdir, sizeof(sdir), "%s/store", f->dir);
	snprintf(f->root, sizeof(f->root), "%s/engine", f->dir);
	if (mkdir(f->dir, 0700) < 0)
		return -1;
	dm_store_opts_default(&o);
	o.sync = false;
	if (dm_store_open(&f->s, sdir, &o, &err) ||
	    dm_engine_open(&f->e, "dir", f->root, f->s, &err))
		return -1;
	if (dm_engine_create(f->e, DOT, "master", NULL, NULL, &err) ||
	    dm_engine_path(f->e, DOT, "master", &b, &err))
		return -1;
	snprintf(f->wc, sizeof(f->wc), "%s", (const char *)b.data);
	dm_buf_release(&b);
	*state = f;
	return 0;
}

static int setup_tmp(void **state)
{
	return setup_in(state, tmp_base);
}

/* Without a pool (no root, no loop devices) the test is skipped with the
 * reason, except in CI, which has them: there it fails. */
static int setup_pool(void **state)
{
	if (!pool_dir[0]) {
		print_message("# no btrfs pool: %s\n", pool_error);
		if (getenv("CI"))
			return -1;
		skip();
	}
	return setup_in(state, pool_dir);
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

static void put_file(const char *dir, const char *rel, size_t len, unsigned seed)
{
	char p[1200];
	unsigned char *buf = malloc(len ? len : 1);
	int fd;

	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 131u + seed * 7919u) >> 3);
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(dm_write_all(fd, buf, len), 0);
	close(fd);
	free(buf);
}

static bool holds(const char *dir, const char *rel, size_t len, unsigned seed)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;
	char p[1200];
	bool ok;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	if (dm_read_file(&b, p, 64 << 20, &err))
		return false;
	ok = b.len == len;
	for (size_t i = 0; ok && i < len; i++)
		ok = b.data[i] == (unsigned char)((i * 131u + seed * 7919u) >> 3);
	dm_buf_release(&b);
	return ok;
}

static bool exists(const char *dir, const char *rel)
{
	char p[1200];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return lstat(p, &st) == 0;
}

/* Many small files, so that a walk takes a while. */
static void fill(struct fixture *f, int n)
{
	char d[500], name[64];

	snprintf(d, sizeof(d), "%s/many", f->wc);
	assert_int_equal(mkdir(d, 0755), 0);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "many/f%05d", i);
		put_file(f->wc, name, 100, (unsigned)i);
	}
}

/* A branch made from tree, and its working copy's path. */
static void checkout(struct fixture *f, const char *branch, const dm_oid *tree, char *out,
		     size_t size)
{
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;

	if (dm_engine_create(f->e, DOT, branch, tree, NULL, &err))
		fail_msg("create: %s", err.msg);
	assert_int_equal(dm_engine_path(f->e, DOT, branch, &b, &err), 0);
	snprintf(out, size, "%s", (const char *)b.data);
	dm_buf_release(&b);
}

/* A writer nobody freezes: makes a new file in dir every 50 us until told
 * to stop. */
struct writer {
	pthread_t th;
	char dir[500];
	atomic_bool stop;
	bool running;
	int made;
};

static void *write_loop(void *arg)
{
	struct writer *w = arg;
	struct timespec ts = {0, 50 * 1000};
	char name[64];

	while (!atomic_load(&w->stop)) {
		snprintf(name, sizeof(name), "w%06d", w->made++);
		put_file(w->dir, name, 10, 1);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void writer_start(struct writer *w, const char *wc)
{
	snprintf(w->dir, sizeof(w->dir), "%s/writer", wc);
	mkdir(w->dir, 0755);
	atomic_init(&w->stop, false);
	w->made = 0;
	assert_int_equal(pthread_create(&w->th, NULL, write_loop, w), 0);
	w->running = true;
}

static void writer_stop(struct writer *w)
{
	if (!w->running)
		return;
	atomic_store(&w->stop, true);
	pthread_join(w->th, NULL);
	w->running = false;
}

/* A freezer that records its calls and does what the test says at each. */
struct fake {
	struct fixture *f;
	int freezes, thaws;
	int fail_with;         /* freeze fails with this code (0: succeeds) */
	bool write_at_freeze;  /* "b" rewritten as the freeze begins */
	bool write_at_thaw;    /* "a" rewritten and "late" made at the thaw */
	struct writer *writer; /* started at the freeze, stopped at the thaw */
};

static int fake_freeze(void *ctx, struct dm_err *err)
{
	struct fake *k = ctx;

	k->freezes++;
	if (k->fail_with)
		return dm_err_set(err, k->fail_with, "the engine API is not there");
	if (k->write_at_freeze)
		put_file(k->f->wc, "b", 5000, 22);
	if (k->writer)
		writer_start(k->writer, k->f->wc);
	return 0;
}

static void fake_thaw(void *ctx)
{
	struct fake *k = ctx;

	k->thaws++;
	if (k->writer)
		writer_stop(k->writer);
	if (k->write_at_thaw) {
		put_file(k->f->wc, "a", 3 << 20, 11);
		put_file(k->f->wc, "late", 10, 1);
	}
}

static struct dm_engine_freezer freezer_of(struct fake *k, int64_t max_ns)
{
	struct dm_engine_freezer fz = {fake_freeze, fake_thaw, k, max_ns};

	return fz;
}

/* ---- tests ---- */

static void test_quiet_commit_is_one_read(void **state)
{
	struct fixture *f = *state;
	struct dm_engine_capture cap;
	struct dm_err err;
	dm_oid t;

	put_file(f->wc, "a", 1000, 1);
	assert_int_equal(dm_engine_commit_instant(f->e, DOT, "master", NULL, &t, &cap, NULL, &err),
			 0);
	assert_int_equal(cap.kind, DM_CAPTURE_QUIET);
	assert_int_equal(cap.reads, 1);
	assert_int_equal(cap.changed, 0);
	assert_string_equal(dm_capture_kind_name(cap.kind), "quiet");
}

static void test_writer_not_frozen_is_reported(void **state)
{
	struct fixture *f = *state;
	struct dm_engine_capture cap;
	struct writer w = {0};
	struct dm_err err;
	dm_oid t;
	int rc;

	fill(f, 3000);
	writer_start(&w, f->wc);
	rc = dm_engine_commit_instant(f->e, DOT, "master", NULL, &t, &cap, NULL, &err);
	writer_stop(&w);
	assert_int_equal(rc, 0);
	assert_int_equal(cap.kind, DM_CAPTURE_NOT_INSTANT);
	assert_int_equal(cap.reads, DM_ENGINE_READS_MAX);
	assert_true(cap.changed > 0);
	assert_true(!strncmp(cap.changed_path, "writer", 6));
}

static void test_frozen_commit_is_the_frozen_instant(void **state)
{
	struct fixture *f = *state;
	struct fake k = {.f = f, .write_at_freeze = true, .write_at_thaw = true};
	struct dm_engine_freezer fz = freezer_of(&k, 0);
	struct dm_engine_capture cap;
	struct dm_err err;
	char out[500], capdir[500];
	dm_oid t, t2;

	put_file(f->wc, "a", 3 << 20, 10);
	put_file(f->wc, "b", 5000, 21);
	assert_int_equal(dm_engine_commit_instant(f->e, DOT, "master", &fz, &t, &cap, NULL, &err),
			 0);
	assert_int_equal(k.freezes, 1);
	assert_int_equal(k.thaws, 1);
	assert_int_equal(cap.kind, DM_CAPTURE_FROZEN);
	assert_string_equal(dm_capture_kind_name(cap.kind), "frozen");
	assert_int_equal(cap.changed, 0);
	assert_true(cap.files_captured >= 1); /* b changed at the freeze at least */
	snprintf(capdir, sizeof(capdir), "%s/%s/master/capture", f->root, DOT);
	assert_false(exists(capdir, "."));

	/* the tree is what the files held while frozen: b as rewritten at the
	 * freeze, a as before the thaw, no "late" */
	checkout(f, "back", &t, out, sizeof(out));
	assert_true(holds(out, "a", 3 << 20, 10));
	assert_true(holds(out, "b", 5000, 22));
	assert_false(exists(out, "late"));

	/* what was written after the thaw is in the next commit (the cache
	 * knew a as it was frozen, not as it is) */
	k.write_at_freeze = k.write_at_thaw = false;
	assert_int_equal(dm_engine_commit_instant(f->e, DOT, "master", &fz, &t2, &cap, NULL, &err),
			 0);
	checkout(f, "next", &t2, out, sizeof(out));
	assert_true(holds(out, "a", 3 << 20, 11));
	assert_true(exists(out, "late"));
}

static void test_frozen_stores_what_a_read_stores(void **state)
{
	struct fixture *f = *state;
	struct fake k = {.f = f};
	struct dm_engine_freezer fz = freezer_of(&k, 0);
	struct dm_engine_capture cap;
	struct dm_err err;
	char p[1200];
	dm_oid frozen, read;
	int fd;

	/* a sparse file, a symlink, an empty directory, some files */
	snprintf(p, sizeof(p), "%s/sparse", f->wc);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8 << 20), 0);
	assert_int_equal(dm_pwrite_all(fd, "middle", 6, 4 << 20), 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/link", f->wc);
	assert_int_equal(symlink("sparse", p), 0);
	snprintf(p, sizeof(p), "%s/empty", f->wc);
	assert_int_equal(mkdir(p, 0750), 0);
	fill(f, 50);
	assert_int_equal(
		dm_engine_commit_instant(f->e, DOT, "master", &fz, &frozen, &cap, NULL, &err), 0);
	assert_int_equal(cap.kind, DM_CAPTURE_FROZEN);
	assert_true(cap.files_captured > 0);
	/* without the stat cache, a plain read of the same files */
	snprintf(p, sizeof(p), "%s/%s/master/statcache", f->root, DOT);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(
		dm_engine_commit_instant(f->e, DOT, "master", NULL, &read, &cap, NULL, &err), 0);
	assert_int_equal(cap.kind, DM_CAPTURE_QUIET);
	assert_memory_equal(&frozen, &read, sizeof(frozen));
}

static void test_writer_during_freeze_is_reported(void **state)
{
	struct fixture *f = *state;
	struct writer w = {0};
	struct fake k = {.f = f, .writer = &w};
	struct dm_engine_freezer fz = freezer_of(&k, 0);
	struct dm_engine_capture cap;
	struct dm_err err;
	dm_oid t;

	fill(f, 3000);
	assert_int_equal(dm_engine_commit_instant(f->e, DOT, "master", &fz, &t, &cap, NULL, &err),
			 0);
	assert_false(w.running);
	assert_int_equal(k.thaws, 1);
	assert_int_equal(cap.kind, DM_CAPTURE_NOT_INSTANT);
	assert_true(cap.changed > 0);
}

static void test_freeze_bound_fails_and_thaws(void **state)
{
	struct fixture *f = *state;
	struct fake k = {.f = f};
	struct dm_engine_freezer fz = freezer_of(&k, 1); /* 1 ns: always past */
	struct dm_engine_capture cap;
	struct dm_err err;
	char capdir[500];
	dm_oid t;

	fill(f, 100);
	assert_int_equal(dm_engine_commit_instant(f->e, DOT, "master", &fz, &t, &cap, NULL, &err),
			 DM_ETIMEOUT);
	assert_int_equal(k.freezes, 1);
	assert_int_equal(k.thaws, 1);
	assert_non_null(strstr(err.msg, "--max-freeze"));
	assert_non_null(strstr(err.msg, "nothing was committed"));
	snprintf(capdir, sizeof(capdir), "%s/%s/master/capture", f->root, DOT);
	assert_false(exists(capdir, "."));
	assert_true(holds(f->wc, "many/f00007", 100, 7)); /* the working copy is untouched */
}

/* Cancelled once the freeze has begun. */
static bool once_frozen(void *ctx)
{
	return ((struct fake *)ctx)->freezes > 0;
}

static void test_cancel_during_freeze_thaws(void **state)
{
	struct fixture *f = *state;
	struct fake k = {.f = f};
	struct dm_engine_freezer fz = freezer_of(&k, 0);
	struct dm_engine_progress p = {.cancelled = once_frozen, .ctx = &k};
	struct dm_engine_capture cap;
	struct dm_err err;
	dm_oid t;

	fill(f, 100);
	assert_int_equal(dm_engine_commit_instant(f->e, DOT, "master", &fz, &t, &cap, &p, &err),
			 DM_ECANCELED);
	assert_int_equal(k.freezes, 1);
	assert_int_equal(k.thaws, 1);
}

static void test_failed_freeze_commits_nothing(void **state)
{
	struct fixture *f = *state;
	struct fake k = {.f = f, .fail_with = DM_EUNAVAILABLE};
	struct dm_engine_freezer fz = freezer_of(&k, 0);
	struct dm_engine_capture cap;
	struct dm_err err;
	dm_oid t;

	put_file(f->wc, "a", 10, 1);
	assert_int_equal(dm_engine_commit_instant(f->e, DOT, "master", &fz, &t, &cap, NULL, &err),
			 DM_EUNAVAILABLE);
	assert_int_equal(k.freezes, 1);
	assert_int_equal(k.thaws, 0);
	assert_non_null(strstr(err.msg, "cannot freeze the containers"));
}

static int group_setup(void **state)
{
	struct dm_err err;
	char image[160];

	snprintf(tmp_base, sizeof(tmp_base), "/tmp/dm-test-instant-XXXXXX");
	if (!mkdtemp(tmp_base))
		return -1;
	snprintf(image, sizeof(image), "%s/pool.img", tmp_base);
	snprintf(pool_dir, sizeof(pool_dir), "%s/pool", tmp_base);
	if (dm_pool_can_loop(&err) || dm_pool_create(image, pool_dir, POOL_SIZE, &err)) {
		snprintf(pool_error, sizeof(pool_error), "%s", err.msg);
		pool_dir[0] = '\0';
	}
	return 0;
}

static int group_teardown(void **state)
{
	struct dm_err err;

	if (pool_dir[0] && dm_pool_unmount(pool_dir, &err))
		print_error("cannot unmount the pool: %s\n", err.msg);
	dm_remove_tree(tmp_base, &err);
	return 0;
}

#define BOTH(fn)                                                                                   \
	cmocka_unit_test_setup_teardown(fn, setup_tmp, teardown),                                  \
		cmocka_unit_test_setup_teardown(fn, setup_pool, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_quiet_commit_is_one_read),
		BOTH(test_writer_not_frozen_is_reported),
		BOTH(test_frozen_commit_is_the_frozen_instant),
		BOTH(test_frozen_stores_what_a_read_stores),
		BOTH(test_writer_during_freeze_is_reported),
		BOTH(test_freeze_bound_fails_and_thaws),
		BOTH(test_failed_freeze_commits_nothing),
		BOTH(test_cancel_during_freeze_thaws),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
