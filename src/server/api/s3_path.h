/*
 * s3_path.h - dotmesh's S3 paths on dmd's API port, parsed (pure: no I/O,
 * so that a fuzz target links it alone; docs/api.md, "dotmesh's S3 paths"):
 *
 *   PUT|DELETE  /s3/NS:DOT[@BRANCH]/KEY          write or remove, then commit
 *   GET         /s3/NS:DOT                        list the latest commit
 *   GET         /s3/NS:DOT/snapshot/COMMIT        list commit COMMIT ("latest")
 *   GET|HEAD    /s3/NS:DOT/snapshot/COMMIT/KEY    read KEY at COMMIT
 *
 * A key names something inside the dot's __default__ subdot, by the one
 * rule of dots/s3key.h.
 */
#ifndef DM_SERVER_API_S3_PATH_H
#define DM_SERVER_API_S3_PATH_H

#include <stdbool.h>

#include "server/dots/dot.h"
#include "server/dots/s3key.h"
#include "util/err.h"
#include "util/names.h"

#define DM_S3_PREFIX "/s3/"

/* What a path asks for. */
enum dm_s3_kind {
	DM_S3_LIST = 1, /* GET /s3/NS:DOT[/snapshot/COMMIT] */
	DM_S3_READ,     /* GET|HEAD .../snapshot/COMMIT/KEY */
	DM_S3_WRITE,    /* PUT|DELETE /s3/NS:DOT[@BRANCH]/KEY */
};

struct dm_s3_path {
	int kind;
	struct dm_dot_name dot;
	char branch[DM_NAME_PART_MAX + 1];     /* "" when the path names none */
	char commit[DM_COMMIT_ID_LEN_MAX + 1]; /* a commit id or "latest"; "" for the head */
	char key[DM_S3_KEY_MAX + 1];           /* normalised: no trailing '/'; "" for LIST */
};

/* True for the paths this view serves (any under DM_S3_PREFIX). */
bool dm_s3_path_is(const char *url);

/*
 * Parses url (already percent-decoded) for a request of method "GET",
 * "HEAD", "PUT" or "DELETE": DM_EINVAL naming what is wrong (a bad dot,
 * branch or commit name, a key that is empty, absolute, too long or has
 * "." or ".." in it), DM_ENOTFOUND for a path dotmesh did not serve with
 * that method (GET of a key outside snapshot/, a branch on a read).
 */
int dm_s3_path_parse(struct dm_s3_path *out, const char *method, const char *url,
		     struct dm_err *err);

#endif
