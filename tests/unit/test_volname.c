/*
 * test_volname.c - the volume names containers use, [NS/]DOT[@BRANCH][.SUBDOT]:
 * every accepted form with its parts and shortest text, and malformed names
 * refused with a message that quotes the name and says what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "util/err.h"
#include "util/volname.h"

#include "util/banned.h"

struct good {
	const char *in;
	const char *ns, *dot, *branch, *subdot;
	const char *text; /* the shortest spelling */
};

static void test_forms(void **state)
{
	static const struct good cases[] = {
		{"shop", "admin", "shop", "", "__default__", "shop"},
		{"bob/shop", "bob", "shop", "", "__default__", "bob/shop"},
		{"admin/shop", "admin", "shop", "", "__default__", "shop"},
		{"shop@branch1", "admin", "shop", "branch1", "__default__", "shop@branch1"},
		{"shop.db", "admin", "shop", "", "db", "shop.db"},
		{"shop.__root__", "admin", "shop", "", "__root__", "shop.__root__"},
		{"shop.__default__", "admin", "shop", "", "__default__", "shop"},
		{"shop@b1.db", "admin", "shop", "b1", "db", "shop@b1.db"},
		{"bob/shop@b-1.cache_2", "bob", "shop", "b-1", "cache_2", "bob/shop@b-1.cache_2"},
		{"A_b-9/X@Y.Z", "A_b-9", "X", "Y", "Z", "A_b-9/X@Y.Z"},
	};
	char text[DM_VOLNAME_MAX + 1];
	struct dm_volname v;
	struct dm_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct good *c = &cases[i];

		dm_err_clear(&err);
		if (dm_volname_parse(&v, c->in, &err))
			fail_msg("'%s' refused: %s", c->in, err.msg);
		assert_string_equal(v.dot.ns, c->ns);
		assert_string_equal(v.dot.name, c->dot);
		assert_string_equal(v.branch, c->branch);
		assert_string_equal(v.subdot, c->subdot);
		assert_string_equal(dm_volname_text(text, sizeof(text), &v), c->text);
	}
}

static void test_longest_parts(void **state)
{
	char part[DM_NAME_PART_MAX + 2], name[4 * (DM_NAME_PART_MAX + 1) + 8];
	struct dm_volname v;
	struct dm_err err;

	(void)state;
	memset(part, 'a', DM_NAME_PART_MAX);
	part[DM_NAME_PART_MAX] = '\0';
	snprintf(name, sizeof(name), "%s/%s@%s.%s", part, part, part, part);
	assert_int_equal(strlen(name), DM_VOLNAME_MAX);
	assert_int_equal(dm_volname_parse(&v, name, &err), 0);
	assert_string_equal(v.subdot, part);
	/* 65 characters in the dot name */
	part[DM_NAME_PART_MAX] = 'a';
	part[DM_NAME_PART_MAX + 1] = '\0';
	dm_err_clear(&err);
	assert_int_equal(dm_volname_parse(&v, part, &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "the dot name is longer than 64 characters"));
	/* 65 in the branch, and in the subdot */
	snprintf(name, sizeof(name), "shop@%s", part);
	assert_int_equal(dm_volname_parse(&v, name, &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "the branch is longer than 64 characters"));
	snprintf(name, sizeof(name), "shop.%s", part);
	assert_int_equal(dm_volname_parse(&v, name, &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "the subdot is longer than 64 characters"));
}

struct bad {
	const char *in;
	const char *why; /* what the message must say after the quoted name */
};

static void test_malformed(void **state)
{
	static const struct bad cases[] = {
		{"", "use [NS/]DOT[@BRANCH][.SUBDOT]"},
		{"a@", "no branch after '@'"},
		{"a..b", "more than one '.'"},
		{"../x", "the namespace '..' may only have letters, digits, '-' and '_'"},
		{"a@b@c", "more than one '@'"},
		{".x", "no dot name before '.'"},
		{"a.", "no subdot after '.'"},
		{"@b", "no dot name before '@'"},
		{"/x", "no namespace before '/'"},
		{"ns/", "no dot name after '/'"},
		{"a/b/c", "more than one '/'"},
		{"a.b@c", "'@BRANCH' comes before '.SUBDOT'"},
		{"a@b/c", "the namespace 'a@b' may only have"},
		{"a b", "' ' is not allowed"},
		{"a:b", "':' is not allowed"},
		{"a@.x", "no branch after '@'"},
	};
	char want[256];
	struct dm_volname v;
	struct dm_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad *c = &cases[i];

		dm_err_clear(&err);
		if (dm_volname_parse(&v, c->in, &err) != DM_EINVAL)
			fail_msg("'%s' accepted", c->in);
		assert_int_equal(err.code, DM_EINVAL);
		snprintf(want, sizeof(want), "invalid volume name '%s': ", c->in);
		if (strncmp(err.msg, want, strlen(want)) || !strstr(err.msg, c->why))
			fail_msg("'%s': got \"%s\", want \"%s%s\"", c->in, err.msg, want, c->why);
	}
}

static void test_huge_name_is_quoted_short(void **state)
{
	char huge[1200];
	struct dm_volname v;
	struct dm_err err;

	(void)state;
	memset(huge, 'x', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	assert_int_equal(dm_volname_parse(&v, huge, &err), DM_EINVAL);
	assert_non_null(strstr(err.msg, "...': longer than"));
	assert_true(strlen(err.msg) < 300);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_longest_parts),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_huge_name_is_quoted_short),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
