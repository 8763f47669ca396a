/*
 * objects_update.c - reads the JSON body of an /objects update
 * (objects_update.h).
 *
 * Invariant: what dm_objects_update_parse accepts has every string within
 * its limit and free of NUL, a valid dot name, id and branch, and n >= 1
 * commits whose ids and objects were each checked.
 */
#include "server/api/objects_update.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/hash.h"

#include "util/banned.h"

static int str_field(const char **out, json_t *doc, const char *key, size_t max, bool empty_ok,
		     struct dm_err *err)
{
	json_t *v = json_object_get(doc, key);

	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v) ||
	    (!empty_ok && !json_string_length(v)))
		return dm_err_set(err, DM_EINVAL, "update: invalid or missing '%s'", key);
	*out = json_string_value(v);
	return 0;
}

int dm_objects_update_parse(struct dm_objects_update *u, json_t *doc, struct dm_err *err)
{
	json_t *commits = json_object_get(doc, "commits");
	json_t *objects = json_object_get(doc, "objects");
	json_t *stash = json_object_get(doc, "stash");
	const char *dot;
	int rc;

	memset(u, 0, sizeof(*u));
	rc = str_field(&dot, doc, "dot", DM_DOT_NAME_TEXT_MAX, false, err);
	if (!rc)
		rc = dm_dot_name_parse(&u->name, dot, err);
	if (!rc)
		rc = str_field(&u->id, doc, "id", DM_DOT_ID_MAX, false, err);
	if (!rc && !dm_name_part_valid(u->id, strlen(u->id)))
		rc = dm_err_set(err, DM_EINVAL, "update: invalid dot id");
	if (!rc)
		rc = str_field(&u->branch, doc, "branch", DM_NAME_PART_MAX, false, err);
	if (!rc)
		rc = dm_branch_name_check(u->branch, err);
	if (!rc)
		rc = str_field(&u->old_head, doc, "old_head", DM_COMMIT_ID_LEN_MAX, true, err);
	if (!rc)
		rc = str_field(&u->new_head, doc, "new_head", DM_COMMIT_ID_LEN_MAX, false, err);
	if (rc)
		return rc;
	if (stash && !json_is_boolean(stash))
		return dm_err_set(err, DM_EINVAL, "update: 'stash' must be true or false");
	u->stash = json_is_true(stash);
	if (!json_is_array(commits) || !json_is_array(objects) || !json_array_size(commits) ||
	    json_array_size(commits) != json_array_size(objects) ||
	    json_array_size(commits) > DM_OBJECTS_UPDATE_MAX)
		return dm_err_set(
			err, DM_EINVAL,
			"update: 'commits' and 'objects' must be two lists of one length");
	u->n = json_array_size(commits);
	u->commits = dm_xcalloc(u->n, sizeof(*u->commits));
	for (size_t i = 0; i < u->n; i++) {
		json_t *cid = json_array_get(commits, i), *oid = json_array_get(objects, i);

		if (!json_is_string(cid) || !json_string_length(cid) ||
		    json_string_length(cid) > DM_COMMIT_ID_LEN_MAX ||
		    strlen(json_string_value(cid)) != json_string_length(cid) ||
		    !json_is_string(oid) ||
		    dm_oid_from_hex(&u->commits[i].oid, json_string_value(oid),
				    json_string_length(oid)))
			return dm_err_set(err, DM_EINVAL, "update: invalid commit %zu", i);
		snprintf(u->commits[i].id, sizeof(u->commits[i].id), "%s", json_string_value(cid));
	}
	if (strcmp(u->commits[0].id, u->new_head))
		return dm_err_set(err, DM_EINVAL, "update: 'new_head' is not the first commit");
	return 0;
}
