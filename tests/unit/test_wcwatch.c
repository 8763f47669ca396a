/*
 * test_wcwatch.c - the change signal of working copies (wcwatch.h): every
 * kind of change in a watched copy, at any depth and in directories made
 * or moved in after the watch began, makes the copy changed since the
 * token taken before it; reads do not; a copy replaced, events lost to the
 * kernel's queue, and entries going away are handled.
 *
 * Every test has its own mkdtemp directory under /tmp, removed at the end.
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

#include "server/dots/wcwatch.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

struct fixture {
	char dir[64];
	char wc[128];
	struct dm_wcwatch *w;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct dm_err err;

	snprintf(f->dir, sizeof(f->dir), "/tmp/dm-test-wcwatch-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->wc, sizeof(f->wc), "%s/wc", f->dir);
	if (mkdir(f->wc, 0755) || dm_wcwatch_new(&f->w, &err))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct dm_err err;

	dm_wcwatch_unref(f->w);
	dm_remove_tree(f->dir, &err);
	free(f);
	return 0;
}

static void path_in(char *out, size_t size, const char *dir, const char *rel)
{
	if (snprintf(out, size, "%s/%s", dir, rel) >= (int)size)
		fail_msg("path too long");
}

static void put(const char *dir, const char *rel, const char *text, bool append)
{
	char p[512];
	int fd;

	path_in(p, sizeof(p), dir, rel);
	fd = open(p, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
	assert_true(fd >= 0);
	assert_int_equal(dm_write_all(fd, text, strlen(text)), 0);
	close(fd);
}

static void mkdir_in(const char *dir, const char *rel)
{
	char p[512];

	path_in(p, sizeof(p), dir, rel);
	assert_int_equal(mkdir(p, 0755), 0);
}

/* A token for e's copy at f->wc (path: another copy). */
static uint64_t begin(struct dm_wcwatch_entry *e, const char *path)
{
	struct dm_err err;
	uint64_t t = 0;

	if (dm_wcwatch_begin(e, path, &t, &err))
		fail_msg("begin: %s", err.msg);
	assert_true(t != 0);
	return t;
}

/* The copy is unchanged, then changes by `what`; a new begin vouches again. */
#define EXPECT_CHANGE(e, t, path, ...)                                                             \
	do {                                                                                       \
		assert_true(dm_wcwatch_unchanged(e, t));                                           \
		__VA_ARGS__;                                                                       \
		assert_false(dm_wcwatch_unchanged(e, t));                                          \
		t = begin(e, path);                                                                \
		assert_true(dm_wcwatch_unchanged(e, t));                                           \
	} while (0)

static void test_changes_are_signalled(void **state)
{
	struct fixture *f = *state;
	struct dm_wcwatch_entry *e = dm_wcwatch_entry_new(f->w);
	char p[512], q[512];
	uint64_t t;

	put(f->wc, "a.txt", "hello", false);
	mkdir_in(f->wc, "sub");
	mkdir_in(f->wc, "sub/deep");
	put(f->wc, "sub/deep/b.txt", "world", false);
	/* nothing is vouched for before the first begin, nor for token 0 */
	assert_false(dm_wcwatch_unchanged(e, 1));
	assert_false(dm_wcwatch_unchanged(e, 0));
	t = begin(e, f->wc);

	/* reading, listing and stat change nothing */
	{
		char buf[16];
		struct stat st;
		int fd;

		path_in(p, sizeof(p), f->wc, "sub/deep/b.txt");
		fd = open(p, O_RDONLY);
		assert_true(fd >= 0);
		assert_true(read(fd, buf, sizeof(buf)) > 0);
		close(fd);
		assert_int_equal(stat(p, &st), 0);
		assert_true(dm_wcwatch_unchanged(e, t));
	}
	EXPECT_CHANGE(e, t, f->wc, put(f->wc, "a.txt", "!", true));
	EXPECT_CHANGE(e, t, f->wc, put(f->wc, "sub/deep/b.txt", "again", false));
	EXPECT_CHANGE(e, t, f->wc, put(f->wc, "sub/new.txt", "x", false));
	path_in(p, sizeof(p), f->wc, "a.txt");
	EXPECT_CHANGE(e, t, f->wc, assert_int_equal(chmod(p, 0600), 0));
	EXPECT_CHANGE(e, t, f->wc, assert_int_equal(truncate(p, 2), 0));
	path_in(q, sizeof(q), f->wc, "sub/a2.txt");
	EXPECT_CHANGE(e, t, f->wc, assert_int_equal(rename(p, q), 0));
	EXPECT_CHANGE(e, t, f->wc, assert_int_equal(unlink(q), 0));
	path_in(p, sizeof(p), f->wc, "link");
	EXPECT_CHANGE(e, t, f->wc, assert_int_equal(symlink("sub", p), 0));

	/* directories made after the watch began, files in them at once */
	EXPECT_CHANGE(e, t, f->wc, {
		mkdir_in(f->wc, "n");
		mkdir_in(f->wc, "n/a");
		mkdir_in(f->wc, "n/a/b");
		put(f->wc, "n/a/b/x", "1", false);
	});
	/* ...are watched from the next begin on */
	EXPECT_CHANGE(e, t, f->wc, put(f->wc, "n/a/b/x", "2", true));
	EXPECT_CHANGE(e, t, f->wc, put(f->wc, "n/a/b/y", "3", false));

	/* a directory moved in from outside the copy, and one moved within */
	mkdir_in(f->dir, "outside");
	mkdir_in(f->dir, "outside/in");
	put(f->dir, "outside/in/z", "z", false);
	path_in(p, sizeof(p), f->dir, "outside");
	path_in(q, sizeof(q), f->wc, "moved");
	EXPECT_CHANGE(e, t, f->wc, assert_int_equal(rename(p, q), 0));
	EXPECT_CHANGE(e, t, f->wc, put(f->wc, "moved/in/z", "z", true));
	path_in(p, sizeof(p), f->wc, "n/a");
	path_in(q, sizeof(q), f->wc, "sub/deep/a");
	EXPECT_CHANGE(e, t, f->wc, assert_int_equal(rename(p, q), 0));
	EXPECT_CHANGE(e, t, f->wc, put(f->wc, "sub/deep/a/b/x", "4", true));

	/* a directory removed; the copy is watched as before */
	{
		struct dm_err err;

		path_in(p, sizeof(p), f->wc, "moved");
		EXPECT_CHANGE(e, t, f->wc, assert_int_equal(dm_remove_tree(p, &err), 0));
	}
	EXPECT_CHANGE(e, t, f->wc, put(f->wc, "sub/deep/b.txt", "5", true));
	dm_wcwatch_entry_unref(e);
}

/* The copy's directory replaced by another (a reset may swap it): the next
 * begin watches the new one. */
static void test_copy_replaced(void **state)
{
	struct fixture *f = *state;
	struct dm_wcwatch_entry *e = dm_wcwatch_entry_new(f->w);
	char old[512];
	uint64_t t;

	mkdir_in(f->wc, "d");
	put(f->wc, "d/f", "1", false);
	t = begin(e, f->wc);
	path_in(old, sizeof(old), f->dir, "old");
	EXPECT_CHANGE(e, t, f->wc, {
		assert_int_equal(rename(f->wc, old), 0);
		assert_int_equal(mkdir(f->wc, 0755), 0);
		mkdir_in(f->wc, "d");
	});
	/* the new copy is watched, the old one no longer counts */
	EXPECT_CHANGE(e, t, f->wc, put(f->wc, "d/g", "2", false));
	put(old, "d/f", "3", true);
	assert_true(dm_wcwatch_unchanged(e, t));
	dm_wcwatch_entry_unref(e);
}

/* Two copies are signalled apart; an entry that goes takes its watches. */
static void test_two_copies(void **state)
{
	struct fixture *f = *state;
	struct dm_wcwatch_entry *e1 = dm_wcwatch_entry_new(f->w);
	struct dm_wcwatch_entry *e2 = dm_wcwatch_entry_new(f->w);
	char wc2[256];
	uint64_t t1, t2;

	path_in(wc2, sizeof(wc2), f->dir, "wc2");
	assert_int_equal(mkdir(wc2, 0755), 0);
	t1 = begin(e1, f->wc);
	t2 = begin(e2, wc2);
	put(wc2, "f", "1", false);
	assert_true(dm_wcwatch_unchanged(e1, t1));
	assert_false(dm_wcwatch_unchanged(e2, t2));
	dm_wcwatch_entry_ref(e2); /* a measure still holds it */
	dm_wcwatch_entry_unref(e2);
	t2 = begin(e2, wc2);
	dm_wcwatch_entry_unref(e2);
	put(wc2, "f", "2", true); /* nobody watches it now */
	put(f->wc, "g", "1", false);
	assert_false(dm_wcwatch_unchanged(e1, t1));
	dm_wcwatch_entry_unref(e1);
}

/* More events than the kernel queues (fs.inotify.max_queued_events,
 * 16384 by default) between two looks: every copy counts as changed, and
 * the next begin watches it again. */
static void test_queue_overflow(void **state)
{
	struct fixture *f = *state;
	struct dm_wcwatch_entry *e1 = dm_wcwatch_entry_new(f->w);
	struct dm_wcwatch_entry *e2 = dm_wcwatch_entry_new(f->w);
	char wc2[256], p[512];
	uint64_t t1, t2;
	long queued = 16384;
	FILE *q = fopen("/proc/sys/fs/inotify/max_queued_events", "re");
	int fd;

	if (q) {
		if (fscanf(q, "%ld", &queued) != 1)
			queued = 16384;
		fclose(q);
	}
	path_in(wc2, sizeof(wc2), f->dir, "wc2");
	assert_int_equal(mkdir(wc2, 0755), 0);
	t1 = begin(e1, f->wc);
	t2 = begin(e2, wc2);
	/* each write and attribute change alternate: none merges with the last */
	path_in(p, sizeof(p), f->wc, "f");
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	for (long i = 0; i < queued + 100; i++) {
		assert_int_equal(dm_write_all(fd, "x", 1), 0);
		assert_int_equal(fchmod(fd, i % 2 ? 0644 : 0600), 0);
	}
	close(fd);
	assert_false(dm_wcwatch_unchanged(e1, t1));
	assert_false(dm_wcwatch_unchanged(e2, t2)); /* events were lost: nothing vouched */
	t2 = begin(e2, wc2);
	assert_true(dm_wcwatch_unchanged(e2, t2));
	t1 = begin(e1, f->wc);
	EXPECT_CHANGE(e1, t1, f->wc, put(f->wc, "f", "y", true));
	dm_wcwatch_entry_unref(e1);
	dm_wcwatch_entry_unref(e2);
}

/* A copy that cannot be read is not vouched for. */
static void test_unwatchable(void **state)
{
	struct fixture *f = *state;
	struct dm_wcwatch_entry *e = dm_wcwatch_entry_new(f->w);
	struct dm_err err;
	char p[512];
	uint64_t t = 7;

	path_in(p, sizeof(p), f->dir, "nope");
	assert_int_not_equal(dm_wcwatch_begin(e, p, &t, &err), 0);
	assert_int_equal(t, 0);
	assert_false(dm_wcwatch_unchanged(e, 0));
	dm_wcwatch_entry_unref(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_changes_are_signalled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_copies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwatchable, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
