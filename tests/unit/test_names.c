/*
 * test_names.c - dot, branch and commit-ref names: what is accepted, what
 * is refused, and the words of the refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "util/err.h"
#include "util/names.h"

#include "util/banned.h"

static void test_dot_names(void **state)
{
	struct dm_dot_name n;
	struct dm_err err;
	char long_name[80], shown[DM_DOT_NAME_TEXT_MAX];
	const char *bad[] = {"", "@", "../x", "a/b/c", "/x", "x/", "a b", "a.b", "é", "ns/", NULL};

	(void)state;
	assert_int_equal(dm_dot_name_parse(&n, "shop", &err), 0);
	assert_string_equal(n.ns, "admin");
	assert_string_equal(n.name, "shop");
	assert_string_equal(dm_dot_name_text(shown, &n), "shop");
	assert_int_equal(dm_dot_name_parse(&n, "bob/Shop_1-x", &err), 0);
	assert_string_equal(n.ns, "bob");
	assert_string_equal(n.name, "Shop_1-x");
	assert_string_equal(dm_dot_name_text(shown, &n), "bob/Shop_1-x");
	for (int i = 0; bad[i]; i++) {
		dm_err_clear(&err);
		assert_int_equal(dm_dot_name_parse(&n, bad[i], &err), DM_EINVAL);
		assert_non_null(strstr(err.msg, "invalid dot name"));
	}
	memset(long_name, 'a', 64);
	long_name[64] = '\0';
	assert_int_equal(dm_dot_name_parse(&n, long_name, &err), 0);
	long_name[64] = 'a';
	long_name[65] = '\0';
	assert_int_equal(dm_dot_name_parse(&n, long_name, &err), DM_EINVAL);
}

static void test_branch_names(void **state)
{
	struct dm_err err;

	(void)state;
	assert_int_equal(dm_branch_name_check("master", &err), 0);
	assert_int_equal(dm_branch_name_check("feature-1_x", &err), 0);
	assert_int_equal(dm_branch_name_check(".current", &err), DM_EINVAL);
	assert_int_equal(dm_branch_name_check("a/b", &err), DM_EINVAL);
	assert_int_equal(dm_branch_name_check("", &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "invalid branch name"));
}

static void test_refs(void **state)
{
	struct dm_ref r;
	struct dm_err err;
	const char *bad[] = {"", "HEAD~", "HEAD~x", "HEAD^~1", "HEADS", "HEAD~-1", "a b", "x/y", NULL};

	(void)state;
	assert_int_equal(dm_ref_parse(&r, "HEAD", &err), 0);
	assert_true(r.relative);
	assert_int_equal(r.back, 0);
	assert_int_equal(dm_ref_parse(&r, "HEAD^^", &err), 0);
	assert_int_equal(r.back, 2);
	assert_int_equal(dm_ref_parse(&r, "HEAD~12", &err), 0);
	assert_int_equal(r.back, 12);
	assert_int_equal(dm_ref_parse(&r, "0192f0c1-7b3a", &err), 0);
	assert_false(r.relative);
	assert_string_equal(r.id, "0192f0c1-7b3a");
	for (int i = 0; bad[i]; i++) {
		dm_err_clear(&err);
		assert_int_equal(dm_ref_parse(&r, bad[i], &err), DM_EINVAL);
		assert_non_null(strstr(err.msg, "invalid commit reference"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dot_names),
		cmocka_unit_test(test_branch_names),
		cmocka_unit_test(test_refs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
