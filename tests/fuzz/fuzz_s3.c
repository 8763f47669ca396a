/*
 * fuzz_s3.c - libFuzzer target for dotmesh's S3 paths as dmd reads them
 * (api/s3_path.h) and the one rule for their keys (dots/s3key.h), which
 * also checks the names of a tar's entries. The input's first byte picks
 * the method (GET, HEAD, PUT, DELETE, or another), the rest is the path
 * (a NUL ends it early, as MHD would hand it over).
 *
 * Whatever is accepted must hold its promises: a kind that the method
 * may ask for, valid dot and branch names, and a key that is 1 to
 * DM_S3_KEY_MAX bytes of names none of which is empty, "." or "..", that
 * does not start or end with '/', and that the key rule accepts again
 * unchanged; a refusal always has a message. An accepted Authorization
 * header has a key id, an 8-digit date, a 64-hex-digit signature and a
 * signed-headers list that is sorted; a canonical request is bounded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/s3_path.h"
#include "server/api/sigv4.h"
#include "server/dots/s3key.h"
#include "util/err.h"
#include "util/names.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const methods[] = {"GET", "HEAD", "PUT", "DELETE", "POST"};

static void check_key(const char *key)
{
	char again[DM_S3_KEY_MAX + 1];
	size_t len = strlen(key);
	struct dm_err err;
	const char *p = key;

	if (len == 0 || len > DM_S3_KEY_MAX || key[0] == '/' || key[len - 1] == '/')
		abort();
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			abort();
		p += n + (slash ? 1 : 0);
	}
	if (dm_s3_key_check(again, key, &err) || strcmp(again, key))
		abort();
}

/* The same bytes as SigV4's Authorization header, and as the path and
 * query of a request whose host is signed. */
static void fuzz_sigv4(const char *s)
{
	struct dm_sigv4_header h[] = {{"Host", "h"}, {"x-amz-content-sha256", "UNSIGNED-PAYLOAD"}};
	struct dm_sigv4_request r = {"GET", s, s, h, 2};
	struct dm_sigv4_auth a;
	struct dm_buf out;
	struct dm_err err;

	if (!dm_sigv4_parse_auth(&a, s, &err)) {
		if (!a.key_id[0] || strlen(a.date) != 8 || strlen(a.signature) != 64 ||
		    !a.signed_headers[0])
			abort();
	} else if (!err.msg[0]) {
		abort();
	}
	memset(&a, 0, sizeof(a));
	snprintf(a.signed_headers, sizeof(a.signed_headers), "host");
	dm_buf_init(&out, 0);
	if (dm_sigv4_canonical(&out, &r, &a, &err) == 0 && out.len > DM_SIGV4_REQUEST_MAX)
		abort();
	dm_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *method;
	struct dm_s3_path path;
	char key[DM_S3_KEY_MAX + 1];
	struct dm_err err;
	char *s;
	int rc;

	if (size == 0)
		return 0;
	method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	rc = dm_s3_path_parse(&path, method, s, &err);
	if (rc && !err.msg[0])
		abort();
	if (!rc) {
		bool reading = !strcmp(method, "GET") || !strcmp(method, "HEAD");

		if (!dm_name_part_valid(path.dot.ns, strlen(path.dot.ns)) ||
		    !dm_name_part_valid(path.dot.name, strlen(path.dot.name)))
			abort();
		if (path.branch[0] &&
		    (reading || !dm_name_part_valid(path.branch, strlen(path.branch))))
			abort();
		if ((path.kind == DM_S3_WRITE) == reading)
			abort();
		if (path.kind == DM_S3_LIST && (path.key[0] || strcmp(method, "GET")))
			abort();
		if (path.kind != DM_S3_LIST)
			check_key(path.key);
	}
	/* the same bytes as a key, as a tar's entry name would be */
	rc = dm_s3_key_check(key, s, &err);
	if (rc && !err.msg[0])
		abort();
	if (!rc)
		check_key(key);
	fuzz_sigv4(s);
	free(s);
	return 0;
}
