/*
 * test_names.c - dot, branch and commit-ref names, commit ids users
 * choose, and branch ids: what is accepted, what is refused, and the words
 * of the refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "util/err.h"
#include "util/id.h"
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

/* dotmesh's #commit-id: ids every ref can name, and nothing else */
static void test_chosen_commit_ids(void **state)
{
	struct dm_err err;
	char long_id[130];
	const char *good[] = {"WEIRDCOMMIT", "abcd", "v1_2-3", "xHEAD", NULL};
	const char *bad[] = {"", "abc", "HEAD", "HEADS", "HEAD-1", "a b", "a/b", "a.b", "é1234", NULL};

	(void)state;
	for (int i = 0; good[i]; i++)
		assert_int_equal(dm_commit_id_check(good[i], &err), 0);
	for (int i = 0; bad[i]; i++) {
		dm_err_clear(&err);
		assert_int_equal(dm_commit_id_check(bad[i], &err), DM_EINVAL);
		assert_non_null(strstr(err.msg, "invalid commit id"));
	}
	memset(long_id, 'a', 128);
	long_id[128] = '\0';
	assert_int_equal(dm_commit_id_check(long_id, &err), 0);
	long_id[128] = 'a';
	long_id[129] = '\0';
	assert_int_equal(dm_commit_id_check(long_id, &err), DM_EINVAL);
}

/* a branch's id: master's is the dot's; the others' are fixed by dot and
 * branch, UUID-shaped (version 8), and differ from each other */
static void test_branch_ids(void **state)
{
	const char *dot = "4c1f2d3e-0000-4000-8000-000000000001";
	char a[DM_UUID_LEN + 1], b[DM_UUID_LEN + 1], c[DM_UUID_LEN + 1];

	(void)state;
	dm_id_branch(a, dot, "master");
	assert_string_equal(a, dot);
	dm_id_branch(a, dot, "b1");
	dm_id_branch(b, dot, "b1");
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), DM_UUID_LEN);
	assert_int_equal(a[14], '8');
	assert_true(strchr("89ab", a[19]) != NULL);
	dm_id_branch(c, dot, "b2");
	assert_string_not_equal(a, c);
	dm_id_branch(c, "4c1f2d3e-0000-4000-8000-000000000002", "b1");
	assert_string_not_equal(a, c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dot_names),
		cmocka_unit_test(test_branch_names),
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_chosen_commit_ids),
		cmocka_unit_test(test_branch_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
