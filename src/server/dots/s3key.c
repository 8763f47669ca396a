/*
 * s3key.c - the rule for the keys of dotmesh's S3 paths (see s3key.h).
 */
#include "server/dots/s3key.h"

#include <string.h>

#include "store/object.h"

#include "util/banned.h"

int dm_s3_key_check(char *out, const char *key, struct dm_err *err)
{
	size_t len = strlen(key), i = 0;

	if (len == 0)
		return dm_err_set(err, DM_EINVAL, "the path names no key");
	if (len > DM_S3_KEY_MAX)
		return dm_err_set(err, DM_EINVAL, "key is longer than %d bytes", DM_S3_KEY_MAX);
	if (key[0] == '/')
		return dm_err_set(err, DM_EINVAL,
				  "key '%s' is absolute: keys are relative to the dot", key);
	if (key[len - 1] == '/')
		len--; /* "dir/": the directory */
	if (len == 0)
		return dm_err_set(err, DM_EINVAL, "the path names no key");
	for (;;) {
		const char *name = key + i, *slash = memchr(name, '/', len - i);
		size_t n = slash ? (size_t)(slash - name) : len - i;

		if (n == 0 || (n == 1 && name[0] == '.') || (n == 2 && !memcmp(name, "..", 2)))
			return dm_err_set(err, DM_EINVAL,
					  "key '%s' has an empty, '.' or '..' name in it: keys "
					  "name files inside the dot",
					  key);
		if (dm_tree_name_check(name, n, err))
			return dm_err_prefix(err, "invalid key");
		if (!slash)
			break;
		i += n + 1;
	}
	memcpy(out, key, len);
	out[len] = '\0';
	return 0;
}
