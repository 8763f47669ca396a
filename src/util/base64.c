/*
 * base64.c - base64 and base64url (RFC 4648), strict on decode.
 *
 * Invariant: decode(encode(x)) == x, and decode accepts only the texts
 * encode produces (canonical: padding exactly as encode writes it, or
 * none for url; unused low bits zero), so a value has one spelling.
 */
#include "util/base64.h"

#include <string.h>

#include "util/banned.h"

static const char std_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int dm_base64_encode(struct dm_buf *out, const void *data, size_t len, bool url)
{
	const char *a = url ? url_alphabet : std_alphabet;
	const unsigned char *p = data;
	size_t i;
	int rc = dm_buf_grow(out, (len + 2) / 3 * 4);

	for (i = 0; !rc && i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		char q[4] = {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], a[v & 63]};

		rc = dm_buf_add(out, q, 4);
	}
	if (!rc && i < len) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
		char q[4] = {a[v >> 18], a[(v >> 12) & 63], i + 1 < len ? a[(v >> 6) & 63] : '=',
			     '='};

		rc = dm_buf_add(out, q, url ? (i + 1 < len ? 3 : 2) : 4);
	}
	return rc;
}

static int value_of(char c, bool url)
{
	const char *a = url ? url_alphabet : std_alphabet;
	const char *hit = c ? strchr(a, c) : NULL;

	return hit ? (int)(hit - a) : -1;
}

int dm_base64_decode(struct dm_buf *out, const char *text, size_t len, bool url,
		     struct dm_err *err)
{
	size_t pad = 0, data_len, i;
	uint32_t acc = 0;
	int bits = 0, rc = 0;

	if (!url) {
		if (len % 4)
			return dm_err_set(err, DM_EINVAL, "base64 text of %zu characters", len);
		while (pad < 2 && pad < len && text[len - 1 - pad] == '=')
			pad++;
	} else if (len % 4 == 1) {
		return dm_err_set(err, DM_EINVAL, "base64url text of %zu characters", len);
	}
	data_len = len - pad;
	for (i = 0; i < data_len && !rc; i++) {
		int v = value_of(text[i], url);

		if (v < 0)
			return dm_err_set(err, DM_EINVAL, "invalid base64 character at %zu", i);
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			rc = dm_buf_addc(out, (unsigned char)(acc >> bits));
			acc &= (1u << bits) - 1;
		}
	}
	if (rc)
		return dm_err_set(err, rc, "base64 text decodes to more than %zu bytes", out->max);
	if (acc != 0)
		return dm_err_set(err, DM_EINVAL, "base64 text with stray bits at its end");
	return 0;
}
