/*
 * answer.h - what an S3 server's XML answers say, read with xml.h into
 * plain structs: a page of ListObjectsV2, an error, one member of an
 * answer (a new multipart upload's id, a finished one's ETag).
 *
 * Pure parsing (no I/O), so that tests/fuzz/fuzz_s3xml.c links it alone.
 * Every string is bounded (a key by DM_S3_MAX_KEY, as S3's own limit) and a
 * page by DM_S3_MAX_PAGE entries; an answer past a bound, or not of the
 * expected root element, is DM_EPROTO.
 */
#ifndef DM_S3_ANSWER_H
#define DM_S3_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dm_err;

#define DM_S3_MAX_KEY    1024 /* bytes of UTF-8, as S3 */
#define DM_S3_MAX_ETAG   128
#define DM_S3_MAX_TOKEN  1024
#define DM_S3_MAX_PAGE   1000 /* keys in one ListObjectsV2 page, as S3 */
#define DM_S3_MAX_ANSWER (8u << 20) /* bytes of XML read from one answer */

struct dm_s3_object {
	char *key;
	char etag[DM_S3_MAX_ETAG + 1]; /* without its quotes */
	uint64_t size;
};

/* One page of ListObjectsV2. */
struct dm_s3_list {
	struct dm_s3_object *objects;
	size_t n;
	bool truncated;
	char next_token[DM_S3_MAX_TOKEN + 1]; /* "" when not truncated */
};

/* Reads a ListBucketResult page into out (which the caller releases). A
 * truncated page without a continuation token is refused. */
int dm_s3_parse_list(struct dm_s3_list *out, const char *data, size_t len, struct dm_err *err);
void dm_s3_list_release(struct dm_s3_list *l);

/* S3's error document: <Error><Code>…</Code><Message>…</Message></Error>.
 * Members not there are left "". */
struct dm_s3_error {
	char code[64];
	char message[256];
};
int dm_s3_parse_error(struct dm_s3_error *out, const char *data, size_t len,
		      struct dm_err *err);

/* The text of member, a child of the root element root (NULL: whatever
 * the root is called), into out[size]: InitiateMultipartUploadResult's
 * UploadId, the ETag of a completed multipart upload (whose root servers
 * name differently). Missing or empty is DM_EPROTO. */
int dm_s3_parse_member(char *out, size_t size, const char *root, const char *member,
		       const char *data, size_t len, struct dm_err *err);

#endif
