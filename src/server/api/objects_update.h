/*
 * objects_update.h - the JSON body of POST /objects/v1/update, which the
 * sending dmd of a push ends with (docs/internals/transfer.md): the dot
 * (its name and id), the branch, the head the sender saw here and its new
 * one, and the commits that move it, newest first, each with its object:
 *
 *   {"dot":"bob/shop","id":"...","branch":"master","old_head":"",
 *    "new_head":"C2","commits":["C2","C1"],"objects":["<hex>","<hex>"],
 *    "stash":false}
 *
 * Pure parsing, apart from objects_http.c so that it can be fuzzed alone
 * (tests/fuzz/fuzz_transfer.c).
 */
#ifndef DM_SERVER_API_OBJECTS_UPDATE_H
#define DM_SERVER_API_OBJECTS_UPDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/dots/dot.h"
#include "util/err.h"
#include "util/names.h"

/* Most commits one update may carry. */
#define DM_OBJECTS_UPDATE_MAX (1u << 20)

struct dm_objects_update {
	struct dm_dot_name name;
	const char *id, *branch, *old_head, *new_head; /* borrowed from the JSON */
	size_t n;                                      /* 1..DM_OBJECTS_UPDATE_MAX */
	struct dm_dot_commit_ref *commits;             /* n, newest first; malloc'ed */
	bool stash;
};

/*
 * Reads and checks doc (a JSON object) into u: valid names, sizes within
 * their limits, no NUL inside a string, commits and objects two lists of
 * one length whose first commit is new_head. DM_EINVAL says what is wrong.
 * u->commits must be freed whatever the result (NULL when nothing was
 * allocated).
 */
int dm_objects_update_parse(struct dm_objects_update *u, json_t *doc, struct dm_err *err);

#endif
