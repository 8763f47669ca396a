/*
 * sigv4.h - AWS Signature Version 4 as an S3 server checks it: the
 * Authorization header parsed, the canonical request and the string to
 * sign rebuilt from what arrived, and the signature compared with the one
 * the caller's secret gives (docs/internals/sigv4.md).
 *
 * Pure: no I/O and no clock (the caller passes the time), so that a fuzz
 * target links it alone. Every input is bounded before it is copied; a
 * refusal says what was wrong, never what the right signature was. Not
 * yet served: the standard S3 endpoint (`--s3-listen`) that will call it
 * is still to come.
 */
#ifndef DM_SERVER_API_SIGV4_H
#define DM_SERVER_API_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define DM_SIGV4_ALGORITHM    "AWS4-HMAC-SHA256"
#define DM_SIGV4_HEADER_MAX   4096 /* the Authorization header */
#define DM_SIGV4_KEY_ID_MAX   128
#define DM_SIGV4_SIGNED_MAX   1024 /* the SignedHeaders list */
#define DM_SIGV4_SKEW_S       (15 * 60)
#define DM_SIGV4_REQUEST_MAX  (64u * 1024) /* a canonical request */

/* What the Authorization header says. */
struct dm_sigv4_auth {
	char key_id[DM_SIGV4_KEY_ID_MAX + 1];
	char date[9];     /* YYYYMMDD, the credential's scope */
	char region[64];  /* "us-east-1" */
	char service[16]; /* "s3" */
	char signed_headers[DM_SIGV4_SIGNED_MAX + 1]; /* "host;x-amz-date", sorted, lowercase */
	char signature[65];                           /* 64 lowercase hex digits */
};

/*
 * Parses "AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request,
 * SignedHeaders=a;b, Signature=HEX" (the three in any order, spaces after
 * the commas optional): DM_EINVAL naming what is malformed.
 */
int dm_sigv4_parse_auth(struct dm_sigv4_auth *out, const char *header, struct dm_err *err);

struct dm_sigv4_header {
	const char *name; /* any case */
	const char *value;
};

/* A request as it arrived. */
struct dm_sigv4_request {
	const char *method;
	const char *path;  /* as sent: percent-encoded, from the root */
	const char *query; /* as sent, without the '?'; "" for none */
	const struct dm_sigv4_header *headers;
	size_t nheaders;
};

/*
 * The canonical request of r for the headers a signs, into out (appended;
 * bounded by DM_SIGV4_REQUEST_MAX): METHOD, the path and the query
 * decoded and encoded again as AWS does (so that any spelling of the same
 * request gives the same text), each signed header as "name:value" (its
 * values joined by ',', spaces trimmed and collapsed), the list, and the
 * payload's hash (header x-amz-content-sha256). DM_EINVAL when a signed
 * header is absent (host must be signed) or the path or query is
 * malformed.
 */
int dm_sigv4_canonical(struct dm_buf *out, const struct dm_sigv4_request *r,
		       const struct dm_sigv4_auth *a, struct dm_err *err);

/*
 * Checks r's signature (a, its parsed Authorization) against secret, at
 * time now (seconds since the epoch): the request's x-amz-date must be
 * within DM_SIGV4_SKEW_S of now and on the credential's date, and the
 * signature that the signing key of (secret, date, region, service) gives
 * the string to sign must equal a's (compared in constant time). 0, or
 * DM_EPERM "the request's signature does not match" (or naming the date
 * that is wrong), or DM_EINVAL for a malformed request.
 */
int dm_sigv4_verify(const struct dm_sigv4_request *r, const struct dm_sigv4_auth *a,
		    const char *secret, int64_t now, struct dm_err *err);

#endif
