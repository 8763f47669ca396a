/*
 * fuzz_s3xml.c - libFuzzer target for the XML an S3 server answers
 * (s3/xml.h, s3/answer.h): the input is one answer, read as a walk of
 * events and as each answer dm reads (a ListObjectsV2 page, an error, a
 * new multipart upload's id).
 *
 * Whatever the reader accepts must hold its promises: events nest (an
 * open at depth d, a close at the same depth), depth within
 * DM_XML_MAX_DEPTH, names of 1..DM_XML_MAX_NAME bytes, leaf text within
 * DM_XML_MAX_TEXT bytes with no NUL in it; a listing of at most
 * DM_S3_MAX_PAGE entries, each with a key of 1..DM_S3_MAX_KEY bytes, and a
 * token whenever it is truncated; a refusal is DM_EPROTO with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3/answer.h"
#include "s3/xml.h"
#include "util/err.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct walk {
	int depth;
};

static void check_name(int depth, const char *name)
{
	size_t n = strlen(name);

	if (depth < 1 || depth > DM_XML_MAX_DEPTH || !n || n > DM_XML_MAX_NAME)
		abort();
}

static int on_open(void *ctx, int depth, const char *name)
{
	struct walk *w = ctx;

	check_name(depth, name);
	if (depth != ++w->depth)
		abort();
	return 0;
}

static int on_leaf(void *ctx, int depth, const char *name, const char *text, size_t len)
{
	struct walk *w = ctx;

	check_name(depth, name);
	if (depth != w->depth || len > DM_XML_MAX_TEXT || strlen(text) != len)
		abort();
	return 0;
}

static int on_close(void *ctx, int depth, const char *name)
{
	struct walk *w = ctx;

	check_name(depth, name);
	if (depth != w->depth--)
		abort();
	return 0;
}

static void check_refusal(int rc, const struct dm_err *err)
{
	if (rc && (rc != DM_EPROTO || err->code != DM_EPROTO || !err->msg[0]))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct dm_xml_handler h = {on_open, on_leaf, on_close};
	const char *s = (const char *)data;
	struct walk w = {0};
	struct dm_s3_list l;
	struct dm_s3_error e;
	char id[256];
	struct dm_err err;
	int rc;

	rc = dm_xml_walk(s, size, &h, &w, &err);
	check_refusal(rc, &err);
	if (!rc && w.depth)
		abort();
	rc = dm_s3_parse_list(&l, s, size, &err);
	check_refusal(rc, &err);
	if (!rc) {
		if (l.n > DM_S3_MAX_PAGE || (l.truncated && !l.next_token[0]))
			abort();
		for (size_t i = 0; i < l.n; i++) {
			size_t n = strlen(l.objects[i].key);

			if (!n || n > DM_S3_MAX_KEY)
				abort();
		}
		dm_s3_list_release(&l);
	}
	check_refusal(dm_s3_parse_error(&e, s, size, &err), &err);
	rc = dm_s3_parse_member(id, sizeof(id), "InitiateMultipartUploadResult", "UploadId", s,
				size, &err);
	check_refusal(rc, &err);
	if (!rc && (!id[0] || strlen(id) >= sizeof(id)))
		abort();
	return 0;
}
