/*
 * test_s3_path.c - dotmesh's S3 paths as dmd parses them (api/s3_path.h)
 * and the rule for their keys (dots/s3key.h): each of dotmesh's routes by
 * method, what each refuses and with which code, and keys normalised.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "server/api/s3_path.h"
#include "server/dots/s3key.h"

#include "util/banned.h"

static struct dm_s3_path p;
static struct dm_err err;

static int parse(const char *method, const char *url)
{
	return dm_s3_path_parse(&p, method, url, &err);
}

static void test_routes(void **state)
{
	(void)state;
	assert_int_equal(parse("PUT", "/s3/admin:shop/dir/file.txt"), 0);
	assert_int_equal(p.kind, DM_S3_WRITE);
	assert_string_equal(p.dot.ns, "admin");
	assert_string_equal(p.dot.name, "shop");
	assert_string_equal(p.branch, "");
	assert_string_equal(p.key, "dir/file.txt");

	assert_int_equal(parse("DELETE", "/s3/alice:db@feature-1/dir/"), 0);
	assert_int_equal(p.kind, DM_S3_WRITE);
	assert_string_equal(p.branch, "feature-1");
	assert_string_equal(p.key, "dir");

	/* a PUT's key may be snapshot/...: only reads have that route */
	assert_int_equal(parse("PUT", "/s3/admin:shop/snapshot/x"), 0);
	assert_string_equal(p.key, "snapshot/x");

	assert_int_equal(parse("GET", "/s3/admin:shop"), 0);
	assert_int_equal(p.kind, DM_S3_LIST);
	assert_string_equal(p.commit, "");
	assert_int_equal(parse("GET", "/s3/admin:shop/snapshot/abc-123"), 0);
	assert_int_equal(p.kind, DM_S3_LIST);
	assert_string_equal(p.commit, "abc-123");

	assert_int_equal(parse("HEAD", "/s3/admin:shop/snapshot/latest/a/b"), 0);
	assert_int_equal(p.kind, DM_S3_READ);
	assert_string_equal(p.commit, "latest");
	assert_string_equal(p.key, "a/b");
}

static void test_refusals(void **state)
{
	(void)state;
	assert_int_equal(parse("PUT", "/s3/admin:shop"), DM_EINVAL);      /* no key */
	assert_int_equal(parse("PUT", "/s3/adminshop/x"), DM_EINVAL);     /* no colon */
	assert_int_equal(parse("PUT", "/s3/ad.min:shop/x"), DM_EINVAL);   /* namespace */
	assert_int_equal(parse("PUT", "/s3/admin:sh op/x"), DM_EINVAL);   /* dot */
	assert_int_equal(parse("PUT", "/s3/admin:shop@/x"), DM_EINVAL);   /* branch */
	assert_int_equal(parse("POST", "/s3/admin:shop/x"), DM_EINVAL);   /* method */
	assert_int_equal(parse("GET", "/s3/admin:shop/x"), DM_ENOTFOUND); /* not snapshot/ */
	assert_int_equal(parse("GET", "/s3/admin:shop@b"), DM_ENOTFOUND); /* reads: no branch */
	assert_int_equal(parse("HEAD", "/s3/admin:shop"), DM_ENOTFOUND);  /* lists: GET */
	assert_int_equal(parse("GET", "/s3/admin:shop/snapshot/HEAD~1/x"), DM_EINVAL);
	assert_int_equal(parse("GET", "/s3/admin:shop/snapshot/"), DM_EINVAL);
	assert_int_equal(parse("GET", "/objects/v1/refs"), DM_ENOTFOUND);
	assert_true(err.msg[0] != '\0');
}

static void test_keys(void **state)
{
	char out[DM_S3_KEY_MAX + 1], big[DM_S3_KEY_MAX + 2];
	static const char *const bad[] = {"",      "/", "/etc/passwd", "..",    "../x", "a/../b",
					  "a/./b", ".", "a//b",        "a/b//", "a/..", "./a"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dm_s3_key_check(out, bad[i], &err), DM_EINVAL);
	assert_int_equal(dm_s3_key_check(out, "a/b/", &err), 0);
	assert_string_equal(out, "a/b");
	assert_int_equal(dm_s3_key_check(out, ".hidden/..x/x..", &err), 0);
	assert_string_equal(out, ".hidden/..x/x..");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(dm_s3_key_check(out, big, &err), DM_EINVAL);
	big[DM_S3_KEY_MAX] = '\0';
	for (size_t i = 200; i < DM_S3_KEY_MAX; i += 200)
		big[i] = '/'; /* names of at most 255 bytes */
	assert_int_equal(dm_s3_key_check(out, big, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
