/*
 * test_err.c - the error table and the helpers that fill struct dm_err.
 *
 * The table is expanded here from the same DM_ERR_TABLE macro err.c uses, and
 * every row is checked through the public accessors: codes and JSON names are
 * unique, HTTP statuses are errors, exit statuses are usable and distinct.
 * Messages are always NUL-terminated and cut at DM_ERR_MSG_MAX - 1 bytes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/err.h"

#include "util/banned.h"

struct row {
	int code;
	const char *name;
	const char *json;
	int http;
	int exit_code;
};

static const struct row rows[] = {
#define ROW(name, value, json, http, exit_code) {value, #name, json, http, exit_code},
	DM_ERR_TABLE(ROW)
#undef ROW
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* A string of n copies of c, in a static buffer. */
static const char *repeat(char c, size_t n)
{
	static char s[8192];

	assert_true(n < sizeof(s));
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void table_rows_are_unique_and_sensible(void **state)
{
	(void)state;
	assert_true(NROWS >= 10);
	for (size_t i = 0; i < NROWS; i++) {
		const struct row *r = &rows[i];

		assert_true(r->code < 0);
		assert_string_equal(dm_err_name(r->code), r->name);
		assert_string_equal(dm_err_json_name(r->code), r->json);
		assert_int_equal(dm_err_http_status(r->code), r->http);
		assert_int_equal(dm_err_exit_status(r->code), r->exit_code);

		/* JSON names are snake_case identifiers. */
		assert_true(strlen(r->json) > 0);
		for (const char *p = r->json; *p; p++)
			assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
		/* An error is a 4xx or 5xx. */
		assert_true(r->http >= 400 && r->http <= 599);
		/* 1 is "some error", 126+ belong to the shell. */
		assert_true(r->exit_code >= 2 && r->exit_code <= 125);

		for (size_t j = i + 1; j < NROWS; j++) {
			assert_int_not_equal(r->code, rows[j].code);
			assert_string_not_equal(r->name, rows[j].name);
			assert_string_not_equal(r->json, rows[j].json);
			assert_int_not_equal(r->exit_code, rows[j].exit_code);
		}
	}
}

static void ok_and_unknown_codes(void **state)
{
	(void)state;
	assert_string_equal(dm_err_name(DM_OK), "DM_OK");
	assert_int_equal(dm_err_http_status(DM_OK), 200);
	assert_int_equal(dm_err_exit_status(DM_OK), 0);
	/* Unknown codes read as DM_EINTERNAL's row, never as success. */
	assert_string_equal(dm_err_name(-9999), "DM_EINTERNAL");
	assert_string_equal(dm_err_json_name(12345), "internal");
	assert_int_equal(dm_err_http_status(-9999), 500);
	assert_int_equal(dm_err_exit_status(-9999), dm_err_exit_status(DM_EINTERNAL));
	assert_int_not_equal(dm_err_exit_status(-9999), 0);
}

static void json_name_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < NROWS; i++)
		assert_int_equal(dm_err_from_json_name(dm_err_json_name(rows[i].code)),
				 rows[i].code);
	assert_int_equal(dm_err_from_json_name("not_found"), DM_ENOTFOUND);
	assert_int_equal(dm_err_from_json_name("no_such_name"), DM_EINTERNAL);
	assert_int_equal(dm_err_from_json_name(""), DM_EINTERNAL);
	assert_int_equal(dm_err_from_json_name("NOT_FOUND"), DM_EINTERNAL);
}

static void set_formats_and_returns_code(void **state)
{
	struct dm_err err;

	(void)state;
	dm_err_clear(&err);
	assert_int_equal(err.code, DM_OK);
	assert_string_equal(err.msg, "");

	assert_int_equal(dm_err_set(&err, DM_ENOTFOUND, "no such dot '%s' (%d)", "shop", 7),
			 DM_ENOTFOUND);
	assert_int_equal(err.code, DM_ENOTFOUND);
	assert_string_equal(err.msg, "no such dot 'shop' (7)");

	/* NULL err: still returns the code, touches nothing. */
	assert_int_equal(dm_err_set(NULL, DM_EIO, "x"), DM_EIO);
	dm_err_clear(NULL);

	dm_err_clear(&err);
	assert_int_equal(err.code, DM_OK);
	assert_string_equal(err.msg, "");
}

static void set_truncates_long_messages(void **state)
{
	struct dm_err err;
	const char *longs = repeat('a', 3 * DM_ERR_MSG_MAX);

	(void)state;
	memset(&err, 'Z', sizeof(err));
	assert_int_equal(dm_err_set(&err, DM_EINVAL, "bad '%s'", longs), DM_EINVAL);
	assert_int_equal(strlen(err.msg), DM_ERR_MSG_MAX - 1);
	assert_memory_equal(err.msg, "bad 'aaaa", 9);
	assert_int_equal(err.msg[DM_ERR_MSG_MAX - 2], 'a');
}

static void errno_maps_and_appends_strerror(void **state)
{
	static const struct {
		int errnum;
		int code;
	} map[] = {
		{ENOENT, DM_ENOTFOUND}, {EEXIST, DM_EEXISTS}, {ENOMEM, DM_ENOMEM},
		{EACCES, DM_EPERM},     {EPERM, DM_EPERM},    {EINVAL, DM_EINVAL},
		{EIO, DM_EIO},          {EDQUOT, DM_ENOSPC},  {ENOSPC, DM_ENOSPC},
	};
	struct dm_err err;
	char want[DM_ERR_MSG_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		assert_int_equal(dm_err_errno(&err, map[i].errnum, "cannot open '%s'", "x"),
				 map[i].code);
		assert_int_equal(err.code, map[i].code);
		snprintf(want, sizeof(want), "cannot open 'x': %s", strerror(map[i].errnum));
		assert_string_equal(err.msg, want);
	}
	assert_string_equal(err.msg + strlen(err.msg) - strlen(strerror(ENOSPC)),
			    strerror(ENOSPC));
	assert_int_equal(dm_err_errno(NULL, ENOENT, "x"), DM_ENOTFOUND);
}

static void errno_truncates_long_messages(void **state)
{
	struct dm_err err;

	(void)state;
	dm_err_errno(&err, ENOENT, "%s", repeat('b', DM_ERR_MSG_MAX - 3));
	assert_int_equal(strlen(err.msg), DM_ERR_MSG_MAX - 1);
	assert_memory_equal(err.msg + DM_ERR_MSG_MAX - 3, ": ", 2);

	dm_err_errno(&err, ENOENT, "%s", repeat('b', 2 * DM_ERR_MSG_MAX));
	assert_int_equal(err.code, DM_ENOTFOUND);
	assert_int_equal(strlen(err.msg), DM_ERR_MSG_MAX - 1);
}

static void prefix_adds_context(void **state)
{
	struct dm_err err;

	(void)state;
	dm_err_set(&err, DM_ENOTFOUND, "no such branch 'x'");
	assert_int_equal(dm_err_prefix(&err, "cannot push '%s'", "shop"), DM_ENOTFOUND);
	assert_string_equal(err.msg, "cannot push 'shop': no such branch 'x'");
	assert_int_equal(err.code, DM_ENOTFOUND);
	dm_err_prefix(&err, "rpc");
	assert_string_equal(err.msg, "rpc: cannot push 'shop': no such branch 'x'");
	assert_int_equal(dm_err_prefix(NULL, "x"), DM_EINTERNAL);
}

static void prefix_truncates_safely(void **state)
{
	struct dm_err err;
	char want[DM_ERR_MSG_MAX];

	(void)state;
	/* A long old message is cut at its end; the context stays whole. */
	dm_err_set(&err, DM_EIO, "%s", repeat('o', DM_ERR_MSG_MAX - 1));
	dm_err_prefix(&err, "ctx");
	assert_int_equal(strlen(err.msg), DM_ERR_MSG_MAX - 1);
	assert_memory_equal(err.msg, "ctx: ooo", 8);
	assert_int_equal(err.code, DM_EIO);

	/* A context longer than the whole message is cut too. */
	dm_err_set(&err, DM_EIO, "old");
	dm_err_prefix(&err, "%s", repeat('p', 2 * DM_ERR_MSG_MAX));
	assert_int_equal(strlen(err.msg), DM_ERR_MSG_MAX - 1);
	assert_int_equal(err.msg[0], 'p');

	/* A message that exactly fits is kept whole. */
	dm_err_set(&err, DM_EIO, "%s", repeat('q', DM_ERR_MSG_MAX - 1 - 5));
	dm_err_prefix(&err, "abc");
	memcpy(want, "abc: ", 5);
	memcpy(want + 5, repeat('q', DM_ERR_MSG_MAX - 1 - 5), DM_ERR_MSG_MAX - 5);
	assert_string_equal(err.msg, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table_rows_are_unique_and_sensible),
		cmocka_unit_test(ok_and_unknown_codes),
		cmocka_unit_test(json_name_round_trip),
		cmocka_unit_test(set_formats_and_returns_code),
		cmocka_unit_test(set_truncates_long_messages),
		cmocka_unit_test(errno_maps_and_appends_strerror),
		cmocka_unit_test(errno_truncates_long_messages),
		cmocka_unit_test(prefix_adds_context),
		cmocka_unit_test(prefix_truncates_safely),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
