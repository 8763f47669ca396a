/*
 * answer.c - the S3 answers of answer.h, each a small state over the
 * events of one xml.h walk.
 *
 * Invariants: a member is taken only at its place in the document (a Key
 * only as a child of Contents under the root), so text elsewhere cannot
 * pose as one; a struct handed back is either whole or released.
 */
#include "s3/answer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "s3/xml.h"
#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

static int root_is(int depth, const char *name, const char *want, struct dm_err *err)
{
	if (depth == 1 && strcmp(name, want))
		return dm_err_set(err, DM_EPROTO, "S3 answer is a '%.64s', not a '%s'", name,
				  want);
	return 0;
}

static int copy_text(char *out, size_t size, const char *what, const char *text, size_t len,
		     struct dm_err *err)
{
	if (len >= size)
		return dm_err_set(err, DM_EPROTO, "S3 answer's %s is longer than %zu bytes", what,
				  size - 1);
	memcpy(out, text, len + 1);
	return 0;
}

/* ListObjectsV2 */

struct list_state {
	struct dm_s3_list *out;
	struct dm_s3_object *cur; /* inside a Contents */
	struct dm_err *err;
};

static int list_open(void *ctx, int depth, const char *name)
{
	struct list_state *st = ctx;
	struct dm_s3_list *l = st->out;
	int rc = root_is(depth, name, "ListBucketResult", st->err);

	if (rc || depth != 2 || strcmp(name, "Contents"))
		return rc;
	if (l->n == DM_S3_MAX_PAGE)
		return dm_err_set(st->err, DM_EPROTO, "S3 listing has more than %d keys in a page",
				  DM_S3_MAX_PAGE);
	if (!l->objects)
		l->objects = dm_xcalloc(DM_S3_MAX_PAGE, sizeof(*l->objects));
	st->cur = &l->objects[l->n++];
	return 0;
}

static int parse_size(uint64_t *out, const char *text, struct dm_err *err)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-')
		return dm_err_set(err, DM_EPROTO, "S3 listing has a bad Size '%.32s'", text);
	*out = v;
	return 0;
}

static int list_leaf(void *ctx, int depth, const char *name, const char *text, size_t len)
{
	struct list_state *st = ctx;
	struct dm_s3_list *l = st->out;

	if (depth == 2 && !strcmp(name, "IsTruncated")) {
		l->truncated = !strcmp(text, "true");
		return 0;
	}
	if (depth == 2 && !strcmp(name, "NextContinuationToken"))
		return copy_text(l->next_token, sizeof(l->next_token), "continuation token", text,
				 len, st->err);
	if (depth != 3 || !st->cur)
		return 0;
	if (!strcmp(name, "Key")) {
		if (st->cur->key)
			return dm_err_set(st->err, DM_EPROTO, "S3 listing has two Keys in one entry");
		if (!len || len > DM_S3_MAX_KEY)
			return dm_err_set(st->err, DM_EPROTO,
					  "S3 listing has a key of %zu bytes (1 to %d)", len,
					  DM_S3_MAX_KEY);
		st->cur->key = dm_xstrndup(text, len);
		return 0;
	}
	if (!strcmp(name, "ETag")) {
		if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
			text++;
			len -= 2;
		}
		if (len >= sizeof(st->cur->etag))
			return dm_err_set(st->err, DM_EPROTO, "S3 listing has an ETag too long");
		memcpy(st->cur->etag, text, len);
		st->cur->etag[len] = '\0';
		return 0;
	}
	if (!strcmp(name, "Size"))
		return parse_size(&st->cur->size, text, st->err);
	return 0;
}

static int list_close(void *ctx, int depth, const char *name)
{
	struct list_state *st = ctx;

	if (depth == 2 && !strcmp(name, "Contents")) {
		if (!st->cur->key)
			return dm_err_set(st->err, DM_EPROTO, "S3 listing has an entry with no Key");
		st->cur = NULL;
	}
	return 0;
}

int dm_s3_parse_list(struct dm_s3_list *out, const char *data, size_t len, struct dm_err *err)
{
	static const struct dm_xml_handler h = {list_open, list_leaf, list_close};
	struct list_state st = {out, NULL, err};
	int rc;

	memset(out, 0, sizeof(*out));
	rc = dm_xml_walk(data, len, &h, &st, err);
	if (!rc && out->truncated && !out->next_token[0])
		rc = dm_err_set(err, DM_EPROTO,
				"S3 listing is truncated but gives no continuation token");
	if (rc)
		dm_s3_list_release(out);
	return rc;
}

void dm_s3_list_release(struct dm_s3_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->objects[i].key);
	free(l->objects);
	memset(l, 0, sizeof(*l));
}

/* Errors */

struct error_state {
	struct dm_s3_error *out;
	struct dm_err *err;
};

static int error_open(void *ctx, int depth, const char *name)
{
	struct error_state *st = ctx;

	return root_is(depth, name, "Error", st->err);
}

static void copy_cut(char *out, size_t size, const char *text, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(out, text, len);
	out[len] = '\0';
}

static int error_leaf(void *ctx, int depth, const char *name, const char *text, size_t len)
{
	struct error_state *st = ctx;

	if (depth != 2)
		return 0;
	if (!strcmp(name, "Code"))
		copy_cut(st->out->code, sizeof(st->out->code), text, len);
	else if (!strcmp(name, "Message"))
		copy_cut(st->out->message, sizeof(st->out->message), text, len);
	return 0;
}

int dm_s3_parse_error(struct dm_s3_error *out, const char *data, size_t len,
		      struct dm_err *err)
{
	static const struct dm_xml_handler h = {error_open, error_leaf, NULL};
	struct error_state st = {out, err};

	memset(out, 0, sizeof(*out));
	return dm_xml_walk(data, len, &h, &st, err);
}

/* One member of the root: UploadId, ETag */

struct member_state {
	const char *root, *member;
	char *out;
	size_t size;
	struct dm_err *err;
};

static int member_open(void *ctx, int depth, const char *name)
{
	struct member_state *st = ctx;

	return st->root ? root_is(depth, name, st->root, st->err) : 0;
}

static int member_leaf(void *ctx, int depth, const char *name, const char *text, size_t len)
{
	struct member_state *st = ctx;

	if (depth != 2 || strcmp(name, st->member))
		return 0;
	return copy_text(st->out, st->size, st->member, text, len, st->err);
}

int dm_s3_parse_member(char *out, size_t size, const char *root, const char *member,
		       const char *data, size_t len, struct dm_err *err)
{
	static const struct dm_xml_handler h = {member_open, member_leaf, NULL};
	struct member_state st = {root, member, out, size, err};
	int rc;

	out[0] = '\0';
	rc = dm_xml_walk(data, len, &h, &st, err);
	if (!rc && !out[0])
		rc = dm_err_set(err, DM_EPROTO, "S3 answer gives no %s", member);
	return rc;
}
