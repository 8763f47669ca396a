/*
 * id.c - UUIDs and API keys from getrandom(2).
 *
 * Invariant: every random id is produced from fresh kernel randomness;
 * nothing is derived from a seeded generator, so ids never repeat across
 * processes. The one derived id (a branch's) is a hash, never random.
 */
#include "util/id.h"
#include "util/err.h"
#include "util/hash.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "util/banned.h"

int dm_random_bytes(void *buf, size_t len, struct dm_err *err)
{
	unsigned char *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return dm_err_errno(err, errno, "cannot get random bytes");
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void format_uuid(char *out, const unsigned char b[16])
{
	snprintf(out, DM_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
		 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
}

int dm_id_uuid4(char *out, struct dm_err *err)
{
	unsigned char b[16];
	int rc = dm_random_bytes(b, sizeof(b), err);

	if (rc)
		return rc;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	format_uuid(out, b);
	return 0;
}

int dm_id_uuid7(char *out, int64_t ms, struct dm_err *err)
{
	unsigned char b[16];
	int rc = dm_random_bytes(b, sizeof(b), err);

	if (rc)
		return rc;
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)((uint64_t)ms >> (40 - 8 * i));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	format_uuid(out, b);
	return 0;
}

int dm_id_api_key(char *out, struct dm_err *err)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char b[DM_API_KEY_LEN / 2];
	int rc = dm_random_bytes(b, sizeof(b), err);

	if (rc)
		return rc;
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[DM_API_KEY_LEN] = '\0';
	return 0;
}

void dm_id_branch(char *out, const char *dot_id, const char *branch)
{
	/* "dm branch id" NUL dot_id NUL branch: the NULs keep the parts apart */
	char in[16 + 2 * 256];
	int n;
	dm_oid oid;
	unsigned char b[16];

	if (!strcmp(branch, "master")) {
		snprintf(out, DM_UUID_LEN + 1, "%s", dot_id);
		return;
	}
	n = snprintf(in, sizeof(in), "dm branch id%c%.255s%c%.255s", 0, dot_id, 0, branch);
	dm_hash(&oid, in, n > 0 && (size_t)n < sizeof(in) ? (size_t)n : sizeof(in) - 1);
	memcpy(b, oid.b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x80);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	format_uuid(out, b);
}
