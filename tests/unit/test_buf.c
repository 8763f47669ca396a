/*
 * test_buf.c - struct dm_buf and the x-allocators.
 *
 * Checks the invariants buf.h promises after every operation: data[len] is
 * NUL, len never passes max, and a failed operation leaves the buffer exactly
 * as it was (same len, same bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

/* The invariants of buf.h, checked in one place. */
static void check_invariants(const struct dm_buf *b)
{
	if (!b->data) {
		assert_int_equal(b->alloc, 0);
		assert_int_equal(b->len, 0);
		return;
	}
	assert_true(b->len < b->alloc);
	assert_int_equal(b->data[b->len], '\0');
	if (b->max)
		assert_true(b->len <= b->max);
}

static void add_appends_and_terminates(void **state)
{
	struct dm_buf b;

	(void)state;
	dm_buf_init(&b, 0);
	check_invariants(&b);
	assert_int_equal(dm_buf_add(&b, "abc", 3), 0);
	check_invariants(&b);
	assert_int_equal(dm_buf_adds(&b, "def"), 0);
	assert_int_equal(dm_buf_addc(&b, 'g'), 0);
	assert_int_equal(dm_buf_add(&b, "", 0), 0);
	check_invariants(&b);
	assert_int_equal(b.len, 7);
	assert_string_equal((char *)b.data, "abcdefg");

	/* Binary data, and growth well past the first allocation. */
	for (int i = 0; i < 10000; i++)
		assert_int_equal(dm_buf_addc(&b, (unsigned char)(i & 0xff)), 0);
	check_invariants(&b);
	assert_int_equal(b.len, 10007);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(b.data[7 + i], (unsigned char)(i & 0xff));
	dm_buf_release(&b);
	check_invariants(&b);
	assert_null(b.data);
}

static void addf_formats(void **state)
{
	struct dm_buf b = DM_BUF_INIT;
	char big[5000];

	(void)state;
	assert_int_equal(dm_buf_addf(&b, "%s=%d", "n", 42), 0);
	assert_int_equal(dm_buf_addf(&b, ", %05.1f", 3.14159), 0);
	assert_int_equal(dm_buf_addf(&b, "%s", ""), 0);
	check_invariants(&b);
	assert_string_equal((char *)b.data, "n=42, 003.1");
	assert_int_equal(b.len, strlen("n=42, 003.1"));

	/* Longer than any first guess: needs the grow path. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(dm_buf_addf(&b, "[%s]", big), 0);
	check_invariants(&b);
	assert_int_equal(b.len, 11 + 2 + sizeof(big) - 1);
	assert_int_equal(b.data[11], '[');
	assert_int_equal(b.data[b.len - 1], ']');
	dm_buf_release(&b);
}

static void max_is_enforced_and_failure_changes_nothing(void **state)
{
	struct dm_buf b;
	size_t alloc;

	(void)state;
	dm_buf_init(&b, 10);
	assert_int_equal(dm_buf_add(&b, "12345678", 8), 0);

	assert_int_equal(dm_buf_add(&b, "abc", 3), DM_ETOOBIG);
	assert_int_equal(b.len, 8);
	assert_string_equal((char *)b.data, "12345678");

	assert_int_equal(dm_buf_addf(&b, "%d", 123), DM_ETOOBIG);
	assert_int_equal(dm_buf_adds(&b, "xyz"), DM_ETOOBIG);
	assert_int_equal(dm_buf_grow(&b, 3), DM_ETOOBIG);
	assert_int_equal(b.len, 8);
	assert_string_equal((char *)b.data, "12345678");
	check_invariants(&b);

	/* Exactly up to max is fine, one more byte is not. */
	assert_int_equal(dm_buf_addc(&b, '9'), 0);
	assert_int_equal(dm_buf_addf(&b, "%c", '0'), 0);
	assert_int_equal(b.len, 10);
	alloc = b.alloc;
	assert_int_equal(dm_buf_addc(&b, 'X'), DM_ETOOBIG);
	assert_int_equal(b.len, 10);
	assert_int_equal(b.alloc, alloc);
	assert_string_equal((char *)b.data, "1234567890");
	check_invariants(&b);

	/* release keeps the maximum. */
	dm_buf_release(&b);
	assert_int_equal(b.max, 10);
	assert_int_equal(dm_buf_add(&b, "12345678901", 11), DM_ETOOBIG);
	assert_null(b.data);
	dm_buf_release(&b);
}

static void grow_refuses_overflow(void **state)
{
	struct dm_buf b = DM_BUF_INIT;

	(void)state;
	assert_int_equal(dm_buf_add(&b, "ab", 2), 0);
	assert_int_equal(dm_buf_grow(&b, SIZE_MAX), DM_ETOOBIG);
	assert_int_equal(dm_buf_grow(&b, SIZE_MAX - 2), DM_ETOOBIG);
	assert_int_equal(b.len, 2);
	assert_string_equal((char *)b.data, "ab");
	dm_buf_release(&b);
}

static void reset_keeps_memory(void **state)
{
	struct dm_buf b = DM_BUF_INIT;
	unsigned char *data;
	size_t alloc;

	(void)state;
	dm_buf_reset(&b); /* on an empty buffer: nothing to do */
	check_invariants(&b);
	assert_int_equal(dm_buf_adds(&b, "hello"), 0);
	data = b.data;
	alloc = b.alloc;
	dm_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_ptr_equal(b.data, data);
	assert_int_equal(b.alloc, alloc);
	assert_string_equal((char *)b.data, "");
	check_invariants(&b);
	dm_buf_release(&b);
}

static void detach_hands_over_the_bytes(void **state)
{
	struct dm_buf b = DM_BUF_INIT;
	size_t len = 99;
	char *s;

	(void)state;
	assert_int_equal(dm_buf_adds(&b, "payload"), 0);
	s = dm_buf_detach(&b, &len);
	assert_non_null(s);
	assert_string_equal(s, "payload");
	assert_int_equal(len, 7);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.alloc, 0);
	free(s);

	/* The buffer is usable again, and an empty detach gives "", not NULL. */
	s = dm_buf_detach(&b, &len);
	assert_non_null(s);
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	free(s);
	s = dm_buf_detach(&b, NULL);
	assert_non_null(s);
	free(s);
	assert_int_equal(dm_buf_adds(&b, "again"), 0);
	assert_string_equal((char *)b.data, "again");
	dm_buf_release(&b);
}

static void add_utf8_escapes_only_bad_bytes(void **state)
{
	static const char good[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xa9 \x1b[31m";
	static const char bad[] = "a\x80"
				  "b\xc3 \xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xff";
	static const char too_long[] = "c\xff"
				       "d";
	struct dm_buf b = DM_BUF_INIT;

	(void)state;
	/* valid text, control characters included, is kept as it is */
	assert_int_equal(dm_buf_add_utf8(&b, good), 0);
	assert_string_equal((char *)b.data, good);
	dm_buf_reset(&b);
	/* a stray continuation, a cut sequence, an overlong '/', a surrogate,
	 * past U+10FFFF, and bytes never in UTF-8 */
	assert_int_equal(dm_buf_add_utf8(&b, bad), 0);
	assert_string_equal((char *)b.data, "a\\x80b\\xc3 \\xc0\\xaf\\xed\\xa0\\x80"
					    "\\xf4\\x90\\x80\\x80\\xff");
	dm_buf_reset(&b);
	/* a sequence cut by the end of the string reads no further */
	assert_int_equal(dm_buf_add_utf8(&b, "\xe2\x82"), 0);
	assert_string_equal((char *)b.data, "\\xe2\\x82");
	dm_buf_release(&b);
	/* past the maximum, nothing is appended */
	dm_buf_init(&b, 6);
	assert_int_equal(dm_buf_adds(&b, "ab"), 0);
	assert_int_equal(dm_buf_add_utf8(&b, too_long), DM_ETOOBIG);
	assert_int_equal(b.len, 2);
	assert_string_equal((char *)b.data, "ab");
	dm_buf_release(&b);
}

static void x_allocators(void **state)
{
	char *s;
	unsigned char *z;

	(void)state;
	s = dm_xstrdup("dot");
	assert_string_equal(s, "dot");
	free(s);
	s = dm_xstrndup("branch", 3);
	assert_string_equal(s, "bra");
	free(s);
	z = dm_xcalloc(16, 4);
	for (int i = 0; i < 64; i++)
		assert_int_equal(z[i], 0);
	z = dm_xrealloc(z, 128);
	z[127] = 1;
	free(z);
	free(dm_xmalloc(0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(add_appends_and_terminates),
		cmocka_unit_test(addf_formats),
		cmocka_unit_test(max_is_enforced_and_failure_changes_nothing),
		cmocka_unit_test(grow_refuses_overflow),
		cmocka_unit_test(reset_keeps_memory),
		cmocka_unit_test(detach_hands_over_the_bytes),
		cmocka_unit_test(add_utf8_escapes_only_bad_bytes),
		cmocka_unit_test(x_allocators),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
