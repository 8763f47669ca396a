/*
 * access.h - who may do what to a dot: the one rule, and the one way a
 * refusal is worded (docs/api.md, "Roles").
 *
 * A caller's role in a dot comes from the dot's view only: an admin and
 * the dot's owner (its record's owner; by default the user its namespace
 * is named after) may do everything; a collaborator has the role the
 * owner gave it (read or write); anyone else has none. Every action on a
 * dot needs one of three levels, each including the ones below it:
 *
 *   need   what it allows
 *   -----  ------------------------------------------------------------
 *   read   show, list, log, branches, diff, pull and clone from it
 *   write  also commit, make a branch, push to it, pull into it, path
 *   owner  also delete, reset, checkout, set hooks, manage collaborators
 *
 * Creating a dot is the namespace's user's or an admin's.
 */
#ifndef DM_SERVER_DOTS_ACCESS_H
#define DM_SERVER_DOTS_ACCESS_H

#include <stdbool.h>

#include "server/dots/caller.h"
#include "server/dots/dot.h"
#include "util/err.h"
#include "util/names.h"

/* Roles, ordered: a role may do what every lower one may. */
enum dm_dot_role {
	DM_ROLE_NONE = 0,
	DM_ROLE_READ,
	DM_ROLE_WRITE,
	DM_ROLE_OWNER, /* the owner, or an admin */
};

/* "none", "read", "write", "owner". */
const char *dm_dot_role_name(int role);

/* A collaborator's role from its name: "read" or "write" (DM_EINVAL
 * naming the choices otherwise). */
int dm_dot_role_parse(int *out, const char *name, struct dm_err *err);

/* The role of caller in the dot v shows. */
int dm_dot_role_of(const struct dm_dot_view *v, const struct dm_caller *caller);

/*
 * May caller do `what` (a verb phrase for the message: "delete", "commit
 * to") to the dot v shows, which needs role `need`? 0, or DM_EPERM with a
 * message that names what is missing:
 *   user 'bob' may not delete 'alice/shop': only its owner or an admin may
 */
int dm_dot_may(const struct dm_dot_view *v, const struct dm_caller *caller, int need,
	       const char *what, struct dm_err *err);

/* dm_dot_may without the message, for filtering (listings). */
bool dm_dot_allows(const struct dm_dot_view *v, const struct dm_caller *caller, int need);

/*
 * May caller create a dot named name? Its namespace's user and admins may:
 * 0, or DM_EPERM "user 'carol' may not create 'alice/x': only user 'alice'
 * or an admin may create dots in namespace 'alice'".
 */
int dm_dot_may_create(const struct dm_dot_name *name, const struct dm_caller *caller,
		      struct dm_err *err);

#endif
