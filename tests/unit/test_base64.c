/*
 * test_base64.c - base64 and base64url: RFC 4648's test vectors, round
 * trips of every length and byte, and the texts a strict decoder refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/base64.h"

#include "util/banned.h"

static void check_encode(const char *in, const char *want, bool url)
{
	struct dm_buf b = DM_BUF_INIT;

	assert_int_equal(dm_base64_encode(&b, in, strlen(in), url), 0);
	assert_string_equal(b.data ? (char *)b.data : "", want);
	dm_buf_release(&b);
}

static void rfc4648_vectors(void **state)
{
	static const char *const v[][3] = {
		{"", "", ""},           {"f", "Zg==", "Zg"},         {"fo", "Zm8=", "Zm8"},
		{"foo", "Zm9v", "Zm9v"}, {"foob", "Zm9vYg==", "Zm9vYg"},
		{"fooba", "Zm9vYmE=", "Zm9vYmE"}, {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		check_encode(v[i][0], v[i][1], false);
		check_encode(v[i][0], v[i][2], true);
	}
}

static void round_trips(void **state)
{
	unsigned char data[300];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7 + 3);
	for (size_t len = 0; len <= sizeof(data); len++) {
		for (int url = 0; url < 2; url++) {
			struct dm_buf text = DM_BUF_INIT, back = DM_BUF_INIT;
			struct dm_err err;

			assert_int_equal(dm_base64_encode(&text, data, len, url), 0);
			assert_int_equal(dm_base64_decode(&back, text.data ? (char *)text.data : "",
							  text.len, url, &err),
					 0);
			assert_int_equal(back.len, len);
			if (len)
				assert_memory_equal(back.data, data, len);
			dm_buf_release(&text);
			dm_buf_release(&back);
		}
	}
}

static void url_alphabet(void **state)
{
	const unsigned char in[] = {0xfb, 0xff, 0xbf};

	struct dm_buf b = DM_BUF_INIT;

	assert_int_equal(dm_base64_encode(&b, in, 3, true), 0);
	assert_string_equal((char *)b.data, "-_-_");
	dm_buf_reset(&b);
	assert_int_equal(dm_base64_encode(&b, in, 3, false), 0);
	assert_string_equal((char *)b.data, "+/+/");
	dm_buf_release(&b);
}

static void refuses_bad_text(void **state)
{
	static const char *const bad_std[] = {"Zg=", "Zg", "Z===", "Zh==", "Zm9v!", "Zm-v",
					      "Zg==Zg==", "=Zg="};
	static const char *const bad_url[] = {"Z", "Zh", "Zg==", "Zm+v", "Zm9vY"};
	struct dm_buf b = DM_BUF_INIT;
	struct dm_err err;

	for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++) {
		dm_buf_reset(&b);
		assert_int_equal(dm_base64_decode(&b, bad_std[i], strlen(bad_std[i]), false, &err),
				 DM_EINVAL);
	}
	for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++) {
		dm_buf_reset(&b);
		assert_int_equal(dm_base64_decode(&b, bad_url[i], strlen(bad_url[i]), true, &err),
				 DM_EINVAL);
	}
	dm_buf_release(&b);
}

static void bounded_by_the_buffer(void **state)
{
	struct dm_buf b;
	struct dm_err err;

	dm_buf_init(&b, 4);
	assert_int_equal(dm_base64_decode(&b, "Zm9vYmFy", 8, false, &err), DM_ETOOBIG);
	dm_buf_release(&b);
	dm_buf_init(&b, 4);
	assert_int_equal(dm_base64_encode(&b, "foobar", 6, false), DM_ETOOBIG);
	dm_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rfc4648_vectors),  cmocka_unit_test(round_trips),
		cmocka_unit_test(url_alphabet),     cmocka_unit_test(refuses_bad_text),
		cmocka_unit_test(bounded_by_the_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
