/*
 * test_fsutil.c - atomic file replacement, bounded reads, mkdir -p,
 * remove_tree's promise never to follow a symlink out of the tree, and
 * directory streams that leave the caller's fd open.
 *
 * Every test works in its own mkdtemp directory under /tmp, made by the
 * group setup and removed (with rm -rf semantics, by nftw) by the teardown,
 * so a broken dm_remove_tree cannot leave the disk dirty.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"

#include "util/banned.h"

static char tmpdir[PATH_MAX];

/* Path of name inside the test's temp directory, in a rotating buffer. */
static const char *at(const char *name)
{
	static char paths[4][PATH_MAX];
	static int next;
	char *p = paths[next++ % 4];

	assert_true(snprintf(p, PATH_MAX, "%s/%s", tmpdir, name) < PATH_MAX);
	return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/dm-test-fsutil.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(dm_write_all(fd, text, strlen(text)), 0);
	assert_int_equal(close(fd), 0);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void atomic_write_replaces_whole_file(void **state)
{
	struct dm_err err;
	struct dm_buf b = DM_BUF_INIT;
	struct stat st;
	const char *path = at("atomic/config");

	(void)state;
	assert_int_equal(dm_mkdir_p(at("atomic"), 0755, &err), 0);
	assert_int_equal(dm_write_file_atomic(path, "first version", 13, 0600, &err), 0);
	assert_int_equal(dm_read_file(&b, path, 1024, &err), 0);
	assert_string_equal((char *)b.data, "first version");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* Shorter content and another mode: nothing of the old file remains. */
	assert_int_equal(dm_write_file_atomic(path, "v2", 2, 0640, &err), 0);
	dm_buf_reset(&b);
	assert_int_equal(dm_read_file(&b, path, 1024, &err), 0);
	assert_int_equal(b.len, 2);
	assert_string_equal((char *)b.data, "v2");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);

	/* An empty file is a file too. */
	assert_int_equal(dm_write_file_atomic(path, "", 0, 0600, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);

	/* No temporary file is left beside it. */
	assert_int_equal(count_entries(at("atomic")), 1);
	dm_buf_release(&b);
}

static void atomic_write_into_missing_dir_fails_cleanly(void **state)
{
	struct dm_err err;

	(void)state;
	dm_err_clear(&err);
	assert_int_equal(dm_write_file_atomic(at("nodir/file"), "x", 1, 0600, &err),
			 DM_ENOTFOUND);
	assert_int_equal(err.code, DM_ENOTFOUND);
	assert_non_null(strstr(err.msg, "nodir/file"));
	assert_non_null(strstr(err.msg, strerror(ENOENT)));
	assert_int_equal(access(at("nodir"), F_OK), -1);
}

static void read_file_is_bounded(void **state)
{
	struct dm_err err;
	struct dm_buf b = DM_BUF_INIT;
	const char *path = at("ten");

	(void)state;
	write_text(path, "0123456789");
	assert_int_equal(dm_read_file(&b, path, 10, &err), 0);
	assert_int_equal(b.len, 10);
	dm_buf_reset(&b);
	assert_int_equal(dm_read_file(&b, path, 9, &err), DM_ETOOBIG);
	assert_int_equal(err.code, DM_ETOOBIG);
	assert_non_null(strstr(err.msg, path));
	dm_buf_reset(&b);
	assert_int_equal(dm_read_file(&b, at("missing"), 9, &err), DM_ENOTFOUND);
	dm_buf_release(&b);
}

static void pread_all_reports_short_files(void **state)
{
	char got[8];
	int fd;

	(void)state;
	write_text(at("short"), "abcdef");
	fd = open(at("short"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(dm_pread_all(fd, got, 3, 2), 0);
	assert_memory_equal(got, "cde", 3);
	errno = 0;
	assert_int_equal(dm_pread_all(fd, got, 8, 0), -1);
	assert_int_equal(errno, EIO);
	close(fd);
}

static void mkdir_p_makes_parents(void **state)
{
	struct dm_err err;
	struct stat st;

	(void)state;
	assert_int_equal(dm_mkdir_p(at("a/b/c/d"), 0755, &err), 0);
	assert_int_equal(stat(at("a/b/c/d"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* Again: it exists, which is fine. */
	assert_int_equal(dm_mkdir_p(at("a/b/c/d"), 0755, &err), 0);
	assert_int_equal(dm_mkdir_p(at("a/b/c/d/"), 0755, &err), 0);
	assert_int_equal(dm_mkdir_p("", 0755, &err), DM_EINVAL);
}

static void remove_tree_removes_everything(void **state)
{
	struct dm_err err;

	(void)state;
	assert_int_equal(dm_mkdir_p(at("tree/x/y/z"), 0755, &err), 0);
	assert_int_equal(dm_mkdir_p(at("tree/empty"), 0755, &err), 0);
	write_text(at("tree/f"), "f");
	write_text(at("tree/x/y/g"), "g");
	assert_int_equal(mkfifo(at("tree/x/fifo"), 0600), 0);
	assert_int_equal(dm_remove_tree(at("tree"), &err), 0);
	assert_int_equal(access(at("tree"), F_OK), -1);
	assert_int_equal(errno, ENOENT);

	/* A missing tree is already removed. */
	assert_int_equal(dm_remove_tree(at("tree"), &err), 0);
}

static void remove_tree_does_not_follow_symlinks(void **state)
{
	struct dm_err err;
	struct stat st;

	(void)state;
	/* Outside the tree: a directory with a file, and a lone file. */
	assert_int_equal(dm_mkdir_p(at("outside/dir"), 0755, &err), 0);
	write_text(at("outside/dir/precious"), "keep me");
	write_text(at("outside/file"), "keep me too");

	assert_int_equal(dm_mkdir_p(at("victim/sub"), 0755, &err), 0);
	assert_int_equal(symlink(at("outside/dir"), at("victim/link-to-dir")), 0);
	assert_int_equal(symlink(at("outside/dir"), at("victim/sub/deep-link")), 0);
	assert_int_equal(symlink(at("outside/file"), at("victim/link-to-file")), 0);
	assert_int_equal(symlink("../..", at("victim/sub/up")), 0);
	assert_int_equal(symlink("/nonexistent/dm", at("victim/dangling")), 0);

	assert_int_equal(dm_remove_tree(at("victim"), &err), 0);
	assert_int_equal(lstat(at("victim"), &st), -1);
	assert_int_equal(stat(at("outside/dir/precious"), &st), 0);
	assert_int_equal(st.st_size, 7);
	assert_int_equal(stat(at("outside/file"), &st), 0);
	assert_int_equal(st.st_size, 11);

	/* The root itself a symlink: the link goes, its target stays. */
	assert_int_equal(symlink(at("outside/dir"), at("rootlink")), 0);
	assert_int_equal(dm_remove_tree(at("rootlink"), &err), 0);
	assert_int_equal(lstat(at("rootlink"), &st), -1);
	assert_int_equal(stat(at("outside/dir/precious"), &st), 0);
}

static void opendir_dup_leaves_the_fd_open(void **state)
{
	struct dm_err err;
	struct dirent *de;
	struct stat st;
	int fd, n = 0;
	DIR *d;

	(void)state;
	assert_int_equal(dm_mkdir_p(at("listed"), 0755, &err), 0);
	write_text(at("listed/a"), "a");
	write_text(at("listed/b"), "b");
	fd = open(at("listed"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	d = dm_opendir_dup(fd);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	assert_int_equal(n, 2);
	assert_int_equal(closedir(d), 0);
	/* the caller's fd is still open and can be listed again */
	assert_int_equal(fstat(fd, &st), 0);
	d = dm_opendir_dup(fd);
	assert_non_null(d);
	assert_int_equal(closedir(d), 0);
	assert_int_equal(close(fd), 0);

	/* a file is no directory: NULL with errno, and its fd stays open */
	fd = open(at("listed/a"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	errno = 0;
	assert_null(dm_opendir_dup(fd));
	assert_int_equal(errno, ENOTDIR);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(close(fd), 0);

	/* a closed fd: EBADF */
	errno = 0;
	assert_null(dm_opendir_dup(fd));
	assert_int_equal(errno, EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(atomic_write_replaces_whole_file),
		cmocka_unit_test(atomic_write_into_missing_dir_fails_cleanly),
		cmocka_unit_test(read_file_is_bounded),
		cmocka_unit_test(pread_all_reports_short_files),
		cmocka_unit_test(mkdir_p_makes_parents),
		cmocka_unit_test(remove_tree_removes_everything),
		cmocka_unit_test(remove_tree_does_not_follow_symlinks),
		cmocka_unit_test(opendir_dup_leaves_the_fd_open),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
