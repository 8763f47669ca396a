/*
 * dm-sigv4-check - runs dmd's SigV4 verifier (server/api/sigv4.h) on
 * requests described one per line of standard input, as JSON:
 *   {"method","path","query","headers":[[NAME,VALUE],...],"secret","now",
 *    "expect": "ok" | "permission_denied" | "invalid_argument"}
 * (the Authorization header among the headers). Prints "ok" or the code
 * and message for each line; exits 1 when any line's outcome is not the
 * one it expects. For t1107, which signs the requests with botocore.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/api/sigv4.h"
#include "util/err.h"

#include "util/banned.h"

static int check(json_t *j, struct dm_err *err)
{
	json_t *hs = json_object_get(j, "headers"), *h;
	struct dm_sigv4_header headers[64];
	struct dm_sigv4_request r;
	struct dm_sigv4_auth a;
	const char *auth = NULL;
	size_t i, n = 0;
	int rc;

	json_array_foreach(hs, i, h)
	{
		if (n == 64)
			break;
		headers[n].name = json_string_value(json_array_get(h, 0));
		headers[n].value = json_string_value(json_array_get(h, 1));
		if (!strcasecmp(headers[n].name, "authorization"))
			auth = headers[n].value;
		n++;
	}
	if (!auth)
		return dm_err_set(err, DM_EINVAL, "no Authorization header");
	rc = dm_sigv4_parse_auth(&a, auth, err);
	if (rc)
		return rc;
	r.method = json_string_value(json_object_get(j, "method"));
	r.path = json_string_value(json_object_get(j, "path"));
	r.query = json_string_value(json_object_get(j, "query"));
	r.headers = headers;
	r.nheaders = n;
	return dm_sigv4_verify(&r, &a, json_string_value(json_object_get(j, "secret")),
			       (int64_t)json_integer_value(json_object_get(j, "now")), err);
}

int main(void)
{
	char line[65536];
	int bad = 0, lineno = 0;

	while (fgets(line, sizeof(line), stdin)) {
		json_t *j = json_loads(line, 0, NULL);
		const char *expect = json_string_value(json_object_get(j, "expect"));
		const char *got;
		struct dm_err err;
		int rc;

		lineno++;
		if (!j || !expect) {
			fprintf(stderr, "line %d: not a request\n", lineno);
			return 2;
		}
		dm_err_clear(&err);
		rc = check(j, &err);
		got = rc ? dm_err_json_name(rc) : "ok";
		printf("%d %s %s\n", lineno, got, rc ? err.msg : "");
		if (strcmp(got, expect)) {
			fprintf(stderr, "line %d: %s, expected %s (%s)\n", lineno, got, expect,
				err.msg);
			bad = 1;
		}
		json_decref(j);
	}
	return bad;
}
