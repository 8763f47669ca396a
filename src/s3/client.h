/*
 * client.h - an S3 client: path-style requests to one endpoint, signed with
 * AWS Signature Version 4 by libcurl (CURLOPT_AWS_SIGV4), each object
 * streamed between the network and a file descriptor through libcurl's
 * bounded buffers (never held whole in memory), large uploads as multipart
 * uploads of DM_S3_PART_SIZE parts.
 *
 * One struct dm_s3 talks to one endpoint as one access key, from one
 * thread at a time. Every call ends: connecting is bounded, a transfer
 * that moves nothing for DM_S3_STALL_SECONDS is cut, and a cancel
 * function, checked about once a second, aborts a call. Failures are one
 * message and a code from util/err.h:
 *   DM_EUNAVAILABLE  "cannot reach S3 endpoint 'URL': Connection refused"
 *   DM_EPERM         the endpoint refused the key id or its secret (403)
 *   DM_ENOTFOUND     no such bucket or key (404)
 *   DM_ECANCELED     the cancel function said so
 *   DM_EPROTO        an answer that is not what S3 answers
 *   DM_EIO           reading or writing the local file
 */
#ifndef DM_S3_CLIENT_H
#define DM_S3_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "s3/answer.h"

struct dm_err;
struct dm_s3;

#define DM_S3_DEFAULT_REGION  "us-east-1"
#define DM_S3_PART_SIZE       (16u << 20) /* bytes of one part of a multipart upload */
#define DM_S3_MULTIPART_ABOVE (64u << 20) /* larger files go up in parts */
#define DM_S3_STALL_SECONDS   60
#define DM_S3_CONNECT_SECONDS 10

/* Where the endpoint is and who we are there; strings are copied. */
struct dm_s3_creds {
	const char *endpoint; /* "https://s3.example.com" or "http://127.0.0.1:9000" */
	const char *region;   /* NULL: DM_S3_DEFAULT_REGION */
	const char *key_id;
	const char *secret;
};

int dm_s3_new(struct dm_s3 **out, const struct dm_s3_creds *creds, struct dm_err *err);
void dm_s3_free(struct dm_s3 *s);

/* cancelled(ctx) returning true aborts the call in progress (DM_ECANCELED). */
void dm_s3_set_cancel(struct dm_s3 *s, bool (*cancelled)(void *ctx), void *ctx);

/* Body bytes sent and received so far, by every call (for progress). */
uint64_t dm_s3_wire_bytes(const struct dm_s3 *s);

/* A signed ListBuckets (GET /): 0 when the endpoint accepts the key id and
 * secret; what `dm s3 remote add` checks before it saves a remote. */
int dm_s3_check(struct dm_s3 *s, struct dm_err *err);

/* One page of ListObjectsV2 of bucket under prefix (NULL or "": all), from
 * token (NULL or "": the first page); the caller releases out. */
int dm_s3_list(struct dm_s3 *s, const char *bucket, const char *prefix, const char *token,
	       struct dm_s3_list *out, struct dm_err *err);

/* Writes object key of bucket to fd from its current offset; *size_out
 * (may be NULL) the bytes written. */
int dm_s3_get(struct dm_s3 *s, const char *bucket, const char *key, int fd, uint64_t *size_out,
	      struct dm_err *err);

/* Uploads the size bytes of fd from offset 0 as key (in parts above
 * DM_S3_MULTIPART_ABOVE); etag_out[DM_S3_MAX_ETAG + 1] (may be NULL) gets
 * the new object's ETag, without quotes. */
int dm_s3_put(struct dm_s3 *s, const char *bucket, const char *key, int fd, uint64_t size,
	      char *etag_out, struct dm_err *err);

/* Deletes key (deleting a key that is not there succeeds, as in S3). */
int dm_s3_delete(struct dm_s3 *s, const char *bucket, const char *key, struct dm_err *err);

/* The request path of key in bucket, URI-encoded as SigV4 wants it
 * ("/bucket/a%20b/c"), appended to out; pure, for the tests. */
struct dm_buf;
int dm_s3_path(struct dm_buf *out, const char *bucket, const char *key);

#endif
