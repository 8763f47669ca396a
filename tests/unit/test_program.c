/*
 * test_program.c - finding a program by name: PATH first, then the extra
 * directories, and only executable regular files.
 *
 * Every test works in one mkdtemp directory under /tmp, removed by the
 * group teardown; PATH is set by the tests that need it and restored.
 */
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

#include "util/fsutil.h"
#include "util/program.h"

#include "util/banned.h"

static char tmpdir[64];
static char *saved_path;
/* in tmpdir: an executable file, a file that is not, a directory */
static char prog[PATH_MAX], noexec[PATH_MAX], dir[PATH_MAX];

/* A file at path with mode. */
static int make_file(const char *path, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs("#!/bin/sh\n", f);
	return fclose(f) == 0 && chmod(path, mode) == 0 ? 0 : -1;
}

static int setup(void **state)
{
	const char *path = getenv("PATH");

	(void)state;
	saved_path = path ? strdup(path) : NULL;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/dm-test-program.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(prog, sizeof(prog), "%s/prog", tmpdir);
	snprintf(noexec, sizeof(noexec), "%s/noexec", tmpdir);
	snprintf(dir, sizeof(dir), "%s/dir", tmpdir);
	if (make_file(prog, 0755) || make_file(noexec, 0644))
		return -1;
	return mkdir(dir, 0755);
}

static int teardown(void **state)
{
	(void)state;
	if (saved_path)
		setenv("PATH", saved_path, 1);
	free(saved_path);
	return dm_remove_tree(tmpdir, NULL);
}

static void restore_path(void)
{
	if (saved_path)
		setenv("PATH", saved_path, 1);
	else
		unsetenv("PATH");
}

static void test_finds_in_path(void **state)
{
	char out[PATH_MAX];

	(void)state;
	assert_int_equal(dm_program_find(out, sizeof(out), "sh", NULL), 0);
	assert_true(dm_program_executable(out));
	assert_string_equal(strrchr(out, '/'), "/sh");
	assert_int_equal(dm_program_find(out, sizeof(out), "no-such-program-dm", NULL), -1);
}

static void test_path_before_extra(void **state)
{
	char out[PATH_MAX], path[PATH_MAX + 32];

	(void)state;
	snprintf(path, sizeof(path), "/nonexistent::%s", tmpdir);
	setenv("PATH", path, 1);
	assert_int_equal(dm_program_find(out, sizeof(out), "prog", "/usr/bin"), 0);
	assert_string_equal(out, prog);
	setenv("PATH", "/nonexistent", 1);
	assert_int_equal(dm_program_find(out, sizeof(out), "prog", NULL), -1);
	assert_int_equal(dm_program_find(out, sizeof(out), "prog", "/nonexistent:"), -1);
	assert_int_equal(dm_program_find(out, sizeof(out), "prog", tmpdir), 0);
	assert_string_equal(out, prog);
	unsetenv("PATH");
	assert_int_equal(dm_program_find(out, sizeof(out), "prog", tmpdir), 0);
	restore_path();
}

static void test_only_executable_files(void **state)
{
	char out[PATH_MAX];

	(void)state;
	assert_true(dm_program_executable(prog));
	assert_false(dm_program_executable(noexec));
	assert_false(dm_program_executable(dir));
	assert_false(dm_program_executable("/nonexistent/prog"));
	setenv("PATH", tmpdir, 1);
	assert_int_equal(dm_program_find(out, sizeof(out), "noexec", NULL), -1);
	assert_int_equal(dm_program_find(out, sizeof(out), "dir", NULL), -1);
	restore_path();
}

static void test_too_long_is_skipped(void **state)
{
	char out[8];

	(void)state;
	assert_int_equal(dm_program_find(out, sizeof(out), "prog", tmpdir), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_finds_in_path),
		cmocka_unit_test(test_path_before_extra),
		cmocka_unit_test(test_only_executable_files),
		cmocka_unit_test(test_too_long_is_skipped),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
