/*
 * sigv4.c - AWS Signature Version 4, the server's side (see sigv4.h).
 *
 * Invariants: nothing is copied before its length is checked against its
 * field; the path and query are rebuilt from their decoded bytes with
 * AWS's encoding (unreserved characters as they are, every other byte as
 * %XX in upper case, '/' kept in the path only), so the canonical request
 * depends on what was asked, not on how the client spelled it; secrets
 * and derived keys live on the stack and are wiped before returning.
 */
#include "server/api/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/hash.h"

#include "util/banned.h"

#define QUERY_PARAMS_MAX 256

/* ---- the Authorization header ---- */

/* Copies the n bytes at s into out (size bytes) when they fit and n > 0. */
static bool field(char *out, size_t size, const char *s, size_t n)
{
	if (n == 0 || n >= size)
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

/* KEY/DATE/REGION/SERVICE/aws4_request, n bytes at s. */
static bool parse_credential(struct dm_sigv4_auth *out, const char *s, size_t n)
{
	char *parts[4] = {out->key_id, out->date, out->region, out->service};
	size_t sizes[4] = {sizeof(out->key_id), sizeof(out->date), sizeof(out->region),
			   sizeof(out->service)};
	const char *end = s + n;

	for (size_t i = 0; i < 4; i++) {
		const char *slash = memchr(s, '/', (size_t)(end - s));

		if (!slash || !field(parts[i], sizes[i], s, (size_t)(slash - s)))
			return false;
		s = slash + 1;
	}
	if ((size_t)(end - s) != strlen("aws4_request") || memcmp(s, "aws4_request", 12))
		return false;
	if (strlen(out->date) != 8 || strspn(out->date, "0123456789") != 8)
		return false;
	return true;
}

/* Lowercase names of [a-z0-9-], sorted, unique, ';'-separated. */
static bool signed_list_ok(const char *s)
{
	const char *prev = NULL;
	size_t prev_len = 0;

	while (*s) {
		size_t n = strcspn(s, ";");

		if (n == 0 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
			return false;
		if (prev) {
			int c = memcmp(prev, s, prev_len < n ? prev_len : n);

			if (c > 0 || (c == 0 && prev_len >= n))
				return false;
		}
		prev = s;
		prev_len = n;
		s += n;
		if (*s == ';' && !*++s)
			return false;
	}
	return prev != NULL;
}

int dm_sigv4_parse_auth(struct dm_sigv4_auth *out, const char *header, struct dm_err *err)
{
	size_t alg = strlen(DM_SIGV4_ALGORITHM);
	bool cred = false, list = false, sig = false;
	const char *p;

	memset(out, 0, sizeof(*out));
	if (strnlen(header, DM_SIGV4_HEADER_MAX + 1) > DM_SIGV4_HEADER_MAX)
		return dm_err_set(err, DM_EINVAL, "the Authorization header is too long");
	if (strncmp(header, DM_SIGV4_ALGORITHM, alg) || header[alg] != ' ')
		return dm_err_set(err, DM_EINVAL,
				  "the Authorization header is not AWS Signature Version 4 (%s)",
				  DM_SIGV4_ALGORITHM);
	p = header + alg;
	while (*p) {
		const char *eq, *end;
		size_t n;

		p += strspn(p, " ");
		end = p + strcspn(p, ",");
		eq = memchr(p, '=', (size_t)(end - p));
		if (!eq)
			return dm_err_set(err, DM_EINVAL, "the Authorization header is malformed");
		n = (size_t)(end - eq - 1);
		if ((size_t)(eq - p) == 10 && !memcmp(p, "Credential", 10) && !cred)
			cred = parse_credential(out, eq + 1, n);
		else if ((size_t)(eq - p) == 13 && !memcmp(p, "SignedHeaders", 13) && !list)
			list = field(out->signed_headers, sizeof(out->signed_headers), eq + 1, n) &&
			       signed_list_ok(out->signed_headers);
		else if ((size_t)(eq - p) == 9 && !memcmp(p, "Signature", 9) && !sig)
			sig = n == 64 && field(out->signature, sizeof(out->signature), eq + 1, n) &&
			      strspn(out->signature, "0123456789abcdef") == 64;
		else
			return dm_err_set(err, DM_EINVAL,
					  "the Authorization header has an unknown or repeated part");
		p = *end ? end + 1 : end;
	}
	if (!cred)
		return dm_err_set(err, DM_EINVAL,
				  "the Authorization header's Credential is not "
				  "KEY/YYYYMMDD/REGION/SERVICE/aws4_request");
	if (!list)
		return dm_err_set(err, DM_EINVAL,
				  "the Authorization header's SignedHeaders is not a sorted list "
				  "of lowercase names");
	if (!sig)
		return dm_err_set(err, DM_EINVAL,
				  "the Authorization header's Signature is not 64 hex digits");
	return 0;
}

/* ---- the canonical request ---- */

/* Appends the n bytes at s, decoded (%XX; '+' stays '+'), then encoded as
 * AWS does; keep_slash for a path. */
static int add_encoded(struct dm_buf *out, const char *s, size_t n, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int rc;

		if (c == '%') {
			int hi = i + 2 < n ? dm_hex_digit(s[i + 1]) : -1;
			int lo = i + 2 < n ? dm_hex_digit(s[i + 2]) : -1;

			if (hi < 0 || lo < 0)
				return DM_EINVAL;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/'))
			rc = dm_buf_addc(out, c);
		else
			rc = dm_buf_addf(out, "%%%c%c", hex[c >> 4], hex[c & 15]);
		if (rc)
			return rc;
	}
	return 0;
}

/* One parameter of the query: its canonical "key=value" text. */
struct param {
	char *text;
	size_t key_len; /* of the canonical key, before the '=' */
};

static int param_cmp(const void *a, const void *b)
{
	const struct param *x = a, *y = b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->text, y->text, n);

	if (c)
		return c;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	return strcmp(x->text + x->key_len, y->text + y->key_len);
}

/* The query's parameters, each encoded, sorted by key then value, joined
 * by '&' (a parameter without '=' has an empty value). */
static int add_query(struct dm_buf *out, const char *q, struct dm_err *err)
{
	struct param params[QUERY_PARAMS_MAX];
	size_t n = 0;
	int rc = 0;

	while (*q && !rc) {
		size_t len = strcspn(q, "&");
		const char *eq = memchr(q, '=', len);
		size_t klen = eq ? (size_t)(eq - q) : len;
		struct dm_buf b;

		if (len == 0) {
			q++;
			continue;
		}
		if (n == QUERY_PARAMS_MAX) {
			rc = dm_err_set(err, DM_EINVAL, "the query has more than %d parameters",
					QUERY_PARAMS_MAX);
			break;
		}
		dm_buf_init(&b, DM_SIGV4_REQUEST_MAX);
		rc = add_encoded(&b, q, klen, false);
		params[n].key_len = b.len;
		if (!rc)
			rc = dm_buf_addc(&b, '=');
		if (!rc && eq)
			rc = add_encoded(&b, eq + 1, len - klen - 1, false);
		if (!rc)
			rc = dm_buf_addc(&b, '\0');
		if (rc) {
			dm_buf_release(&b);
			rc = dm_err_set(err, DM_EINVAL, "the query is malformed (a bad %% escape)");
			break;
		}
		params[n++].text = (char *)b.data;
		q += len;
	}
	if (!rc) {
		qsort(params, n, sizeof(params[0]), param_cmp);
		for (size_t i = 0; i < n && !rc; i++)
			rc = dm_buf_addf(out, "%s%s", i ? "&" : "", params[i].text);
		if (rc)
			rc = dm_err_set(err, DM_ETOOBIG, "the request is too large to check");
	}
	for (size_t i = 0; i < n; i++)
		free(params[i].text);
	return rc;
}

/* Appends value trimmed, its runs of spaces as one. */
static int add_trimmed(struct dm_buf *out, const char *v)
{
	bool space = false, any = false;
	int rc = 0;

	for (; *v && !rc; v++) {
		if (*v == ' ' || *v == '\t') {
			space = any;
			continue;
		}
		if (space)
			rc = dm_buf_addc(out, ' ');
		if (!rc)
			rc = dm_buf_addc(out, (unsigned char)*v);
		space = false;
		any = true;
	}
	return rc;
}

/* "name:v1,v2\n" for every header of r called name (lowercase); DM_EINVAL
 * when there is none. */
static int add_header(struct dm_buf *out, const struct dm_sigv4_request *r, const char *name,
		      struct dm_err *err)
{
	size_t found = 0;
	int rc = dm_buf_addf(out, "%s:", name);

	for (size_t i = 0; i < r->nheaders && !rc; i++) {
		if (strcasecmp(r->headers[i].name, name))
			continue;
		if (found++)
			rc = dm_buf_addc(out, ',');
		if (!rc)
			rc = add_trimmed(out, r->headers[i].value);
	}
	if (!rc)
		rc = dm_buf_addc(out, '\n');
	if (rc)
		return dm_err_set(err, DM_ETOOBIG, "the request is too large to check");
	if (!found)
		return dm_err_set(err, DM_EINVAL, "signed header '%s' is not in the request", name);
	return 0;
}

/* The value of r's header name, or NULL. */
static const char *header_of(const struct dm_sigv4_request *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (!strcasecmp(r->headers[i].name, name))
			return r->headers[i].value;
	return NULL;
}

/* Whether the ';'-separated list names name. */
static bool signs(const char *list, const char *name)
{
	size_t len = strlen(name);

	while (*list) {
		size_t n = strcspn(list, ";");

		if (n == len && !memcmp(list, name, n))
			return true;
		list += n + (list[n] ? 1 : 0);
	}
	return false;
}

int dm_sigv4_canonical(struct dm_buf *out, const struct dm_sigv4_request *r,
		       const struct dm_sigv4_auth *a, struct dm_err *err)
{
	const char *payload = header_of(r, "x-amz-content-sha256");
	char name[DM_SIGV4_SIGNED_MAX + 1];
	const char *p = a->signed_headers;
	int rc;

	if (out->max == 0 || out->max > DM_SIGV4_REQUEST_MAX)
		out->max = DM_SIGV4_REQUEST_MAX;
	if (!payload)
		return dm_err_set(err, DM_EINVAL,
				  "the request has no x-amz-content-sha256 header (the payload's "
				  "hash, or UNSIGNED-PAYLOAD)");
	if (!signs(a->signed_headers, "host"))
		return dm_err_set(err, DM_EINVAL, "the signature does not cover the host header");
	if (r->path[0] != '/')
		return dm_err_set(err, DM_EINVAL, "the request's path does not start with '/'");
	rc = dm_buf_addf(out, "%s\n", r->method);
	if (!rc && add_encoded(out, r->path, strlen(r->path), true))
		return dm_err_set(err, DM_EINVAL, "the request's path is malformed (a bad %% escape)");
	if (!rc)
		rc = dm_buf_addc(out, '\n');
	if (!rc && (rc = add_query(out, r->query, err)))
		return rc;
	if (!rc)
		rc = dm_buf_addc(out, '\n');
	while (!rc && *p) {
		size_t n = strcspn(p, ";");

		memcpy(name, p, n);
		name[n] = '\0';
		if ((rc = add_header(out, r, name, err)))
			return rc;
		p += n + (p[n] ? 1 : 0);
	}
	if (!rc)
		rc = dm_buf_addf(out, "\n%s\n%s", a->signed_headers, payload);
	if (rc)
		return dm_err_set(err, DM_ETOOBIG, "the request is too large to check");
	return 0;
}

/* ---- the signature ---- */

static void hmac(unsigned char out[32], const void *key, size_t klen, const char *data)
{
	unsigned int len = 32;

	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)data, strlen(data), out, &len);
}

/* x-amz-date (YYYYMMDDTHHMMSSZ) as seconds since the epoch; -1 when
 * malformed. */
static int64_t amz_time(const char *s)
{
	struct tm tm;
	char *end;

	if (!s || strlen(s) != 16)
		return -1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y%m%dT%H%M%SZ", &tm);
	if (!end || *end)
		return -1;
	return (int64_t)timegm(&tm);
}

int dm_sigv4_verify(const struct dm_sigv4_request *r, const struct dm_sigv4_auth *a,
		    const char *secret, int64_t now, struct dm_err *err)
{
	const char *when = header_of(r, "x-amz-date");
	unsigned char key[32], sig[32];
	char scope[128], hashed[DM_OID_HEXSZ + 1], mine[65], *secret4 = NULL;
	struct dm_buf canon = DM_BUF_INIT, sts = DM_BUF_INIT;
	int64_t t = amz_time(when);
	dm_oid h;
	int rc;

	if (t < 0)
		return dm_err_set(err, DM_EINVAL,
				  "the request has no valid x-amz-date header (YYYYMMDDTHHMMSSZ)");
	if (strncmp(when, a->date, 8))
		return dm_err_set(err, DM_EPERM,
				  "the request's x-amz-date is not on its credential's date %s",
				  a->date);
	if (t > now + DM_SIGV4_SKEW_S || t < now - DM_SIGV4_SKEW_S)
		return dm_err_set(err, DM_EPERM,
				  "the request's time %s is more than %d minutes from the server's: "
				  "check the client's clock",
				  when, DM_SIGV4_SKEW_S / 60);
	rc = dm_sigv4_canonical(&canon, r, a, err);
	if (rc)
		goto done;
	dm_hash(&h, canon.data, canon.len);
	dm_oid_hex(hashed, &h);
	snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", a->date, a->region, a->service);
	if (dm_buf_addf(&sts, "%s\n%s\n%s\n%s", DM_SIGV4_ALGORITHM, when, scope, hashed)) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory to check a signature");
		goto done;
	}
	if (asprintf(&secret4, "AWS4%s", secret) < 0) {
		secret4 = NULL;
		rc = dm_err_set(err, DM_ENOMEM, "out of memory to check a signature");
		goto done;
	}
	hmac(key, secret4, strlen(secret4), a->date);
	hmac(key, key, sizeof(key), a->region);
	hmac(key, key, sizeof(key), a->service);
	hmac(key, key, sizeof(key), "aws4_request");
	hmac(sig, key, sizeof(key), (const char *)sts.data);
	for (size_t i = 0; i < 32; i++)
		snprintf(mine + 2 * i, 3, "%02x", sig[i]);
	if (CRYPTO_memcmp(mine, a->signature, 64))
		rc = dm_err_set(err, DM_EPERM,
				"the request's signature does not match: check the secret key");
done:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(sig, sizeof(sig));
	OPENSSL_cleanse(mine, sizeof(mine));
	if (secret4) {
		OPENSSL_cleanse(secret4, strlen(secret4));
		free(secret4);
	}
	dm_buf_release(&canon);
	dm_buf_release(&sts);
	return rc;
}
