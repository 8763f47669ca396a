/*
 * s3_path.c - dotmesh's S3 paths parsed, and the one rule for keys (see
 * s3_path.h). Pure functions of their input; every length is bounded
 * before anything is copied.
 */
#include "server/api/s3_path.h"

#include <stdio.h>
#include <string.h>

#include "util/banned.h"

#define SNAPSHOT "snapshot"

bool dm_s3_path_is(const char *url)
{
	return !strncmp(url, DM_S3_PREFIX, strlen(DM_S3_PREFIX));
}

/* Copies the n bytes at s into out (size bytes) when they fit. */
static bool part(char *out, size_t size, const char *s, size_t n)
{
	if (n >= size)
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

/* "NS:DOT[@BRANCH]", n bytes at s, into out. */
static int parse_bucket(struct dm_s3_path *out, const char *s, size_t n, struct dm_err *err)
{
	char ns[DM_NAME_PART_MAX + 1], name[DM_NAME_PART_MAX + 1];
	const char *colon = memchr(s, ':', n), *at;

	if (!colon)
		return dm_err_set(err, DM_EINVAL,
				  "'%.*s' is not NAMESPACE:DOT (dotmesh's form, as in admin:shop)",
				  (int)(n > 200 ? 200 : n), s);
	at = memchr(colon, '@', n - (size_t)(colon - s));
	if (!part(ns, sizeof(ns), s, (size_t)(colon - s)) || !dm_name_part_valid(ns, strlen(ns)))
		return dm_err_set(err, DM_EINVAL, "invalid namespace '%.*s'",
				  (int)((colon - s) > 200 ? 200 : colon - s), s);
	{
		const char *end = at ? at : s + n;

		if (!part(name, sizeof(name), colon + 1, (size_t)(end - colon - 1)) ||
		    !dm_name_part_valid(name, strlen(name)))
			return dm_err_set(err, DM_EINVAL, "invalid dot name '%.*s'",
					  (int)((end - colon - 1) > 200 ? 200 : end - colon - 1),
					  colon + 1);
	}
	if (at) {
		size_t bn = n - (size_t)(at + 1 - s);

		if (!part(out->branch, sizeof(out->branch), at + 1, bn) ||
		    !dm_name_part_valid(out->branch, bn))
			return dm_err_set(err, DM_EINVAL, "invalid branch name '%.*s'",
					  (int)(bn > 200 ? 200 : bn), at + 1);
	}
	memcpy(out->dot.ns, ns, sizeof(ns));
	memcpy(out->dot.name, name, sizeof(name));
	return 0;
}

/* "COMMIT[/KEY]" after snapshot/, for a read. */
static int parse_snapshot(struct dm_s3_path *out, const char *rest, struct dm_err *err)
{
	const char *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);

	if (!part(out->commit, sizeof(out->commit), rest, n) || n == 0)
		return dm_err_set(err, DM_EINVAL, "the path names no commit after snapshot/");
	if (strcmp(out->commit, "latest")) {
		struct dm_ref ref;

		if (dm_ref_parse(&ref, out->commit, err))
			return err->code;
		if (ref.relative)
			return dm_err_set(err, DM_EINVAL,
					  "snapshot/ takes a commit id or 'latest', not '%s'",
					  out->commit);
	}
	if (!slash || !slash[1]) {
		out->kind = DM_S3_LIST;
		return 0;
	}
	out->kind = DM_S3_READ;
	return dm_s3_key_check(out->key, slash + 1, err);
}

int dm_s3_path_parse(struct dm_s3_path *out, const char *method, const char *url,
		     struct dm_err *err)
{
	bool reading = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	bool writing = !strcmp(method, "PUT") || !strcmp(method, "DELETE");
	const char *bucket, *slash;
	size_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!dm_s3_path_is(url))
		return dm_err_set(err, DM_ENOTFOUND, "not an S3 path");
	if (!reading && !writing)
		return dm_err_set(err, DM_EINVAL,
				  "method %.16s is not served on S3 paths (GET, HEAD, PUT, DELETE)",
				  method);
	bucket = url + strlen(DM_S3_PREFIX);
	slash = strchr(bucket, '/');
	n = slash ? (size_t)(slash - bucket) : strlen(bucket);
	rc = parse_bucket(out, bucket, n, err);
	if (rc)
		return rc;
	if (writing) {
		if (!slash || !slash[1])
			return dm_err_set(err, DM_EINVAL,
					  "%s needs a key: /s3/NAMESPACE:DOT[@BRANCH]/KEY", method);
		out->kind = DM_S3_WRITE;
		return dm_s3_key_check(out->key, slash + 1, err);
	}
	if (out->branch[0])
		return dm_err_set(
			err, DM_ENOTFOUND,
			"reads name no branch: /s3/NAMESPACE:DOT/snapshot/COMMIT/KEY reads "
			"a commit of any branch");
	if (!slash || !slash[1]) {
		if (strcmp(method, "GET"))
			return dm_err_set(err, DM_ENOTFOUND, "a dot is listed with GET");
		out->kind = DM_S3_LIST;
		return 0;
	}
	if (strncmp(slash + 1, SNAPSHOT "/", strlen(SNAPSHOT) + 1))
		return dm_err_set(err, DM_ENOTFOUND,
				  "reads go through /s3/NAMESPACE:DOT/snapshot/COMMIT/KEY (COMMIT "
				  "an id or 'latest')");
	rc = parse_snapshot(out, slash + 1 + strlen(SNAPSHOT) + 1, err);
	if (!rc && out->kind == DM_S3_LIST && strcmp(method, "GET"))
		return dm_err_set(err, DM_ENOTFOUND, "a commit is listed with GET");
	return rc;
}
