/*
 * names.c - checking and parsing the names of dots, branches and commits.
 *
 * Invariant: a name accepted here is safe as a path component and as a KV
 * key segment: no '/', no '.', no NUL, nothing but [A-Za-z0-9_-].
 */
#include "util/names.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

bool dm_name_part_valid(const char *s, size_t len)
{
	if (len == 0 || len > DM_NAME_PART_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char(s[i]))
			return false;
	return true;
}

int dm_dot_name_parse(struct dm_dot_name *out, const char *s, struct dm_err *err)
{
	const char *slash = strchr(s, '/');
	const char *name = slash ? slash + 1 : s;
	size_t ns_len = slash ? (size_t)(slash - s) : strlen(DM_DEFAULT_NAMESPACE);
	const char *ns = slash ? s : DM_DEFAULT_NAMESPACE;

	if (!dm_name_part_valid(ns, ns_len) || !dm_name_part_valid(name, strlen(name)))
		return dm_err_set(err, DM_EINVAL,
				  "invalid dot name '%s': use [namespace/]name with 1 to 64 "
				  "letters, digits, '-' or '_' in each part",
				  s);
	memcpy(out->ns, ns, ns_len);
	out->ns[ns_len] = '\0';
	memcpy(out->name, name, strlen(name) + 1);
	return 0;
}

const char *dm_dot_name_text(char out[DM_DOT_NAME_TEXT_MAX], const struct dm_dot_name *n)
{
	if (!strcmp(n->ns, DM_DEFAULT_NAMESPACE))
		snprintf(out, DM_DOT_NAME_TEXT_MAX, "%s", n->name);
	else
		snprintf(out, DM_DOT_NAME_TEXT_MAX, "%s/%s", n->ns, n->name);
	return out;
}

int dm_branch_name_check(const char *s, struct dm_err *err)
{
	if (!dm_name_part_valid(s, strlen(s)))
		return dm_err_set(err, DM_EINVAL,
				  "invalid branch name '%s': use 1 to 64 letters, digits, '-' or "
				  "'_'",
				  s);
	return 0;
}

int dm_ref_parse(struct dm_ref *out, const char *s, struct dm_err *err)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(s, "HEAD", 4) == 0) {
		const char *p = s + 4;

		out->relative = true;
		if (*p == '~') {
			char *end;
			unsigned long n;

			errno = 0;
			n = strtoul(p + 1, &end, 10);
			if (p[1] < '0' || p[1] > '9' || *end || errno || n > 1000000)
				goto bad;
			out->back = (unsigned)n;
			return 0;
		}
		for (; *p == '^'; p++)
			out->back++;
		if (*p)
			goto bad;
		return 0;
	}
	if (!*s || strlen(s) > 128)
		goto bad;
	for (const char *p = s; *p; p++)
		if (!name_char(*p))
			goto bad;
	out->id = s;
	return 0;
bad:
	return dm_err_set(err, DM_EINVAL,
			  "invalid commit reference '%s': use a commit id, HEAD, HEAD^ or HEAD~N",
			  s);
}

int dm_commit_id_check(const char *id, struct dm_err *err)
{
	size_t len = strlen(id);
	bool ok = len >= 4 && len <= 128 && strncmp(id, "HEAD", 4) != 0;

	for (const char *p = id; ok && *p; p++)
		ok = name_char(*p);
	if (!ok)
		return dm_err_set(err, DM_EINVAL,
				  "invalid commit id '%s': use 4 to 128 letters, digits, '-' or "
				  "'_', not starting with HEAD",
				  id);
	return 0;
}

int dm_meta_key_not_reserved(const char *key, struct dm_err *err)
{
	if (!strncmp(key, DM_META_RESERVED_PREFIX, strlen(DM_META_RESERVED_PREFIX)))
		return dm_err_set(err, DM_EINVAL,
				  "metadata key '%s' is reserved: dm records how each commit was "
				  "taken under '" DM_META_RESERVED_PREFIX "'",
				  key);
	return 0;
}
