/*
 * access.c - who may do what to a dot (see access.h): the role of a caller
 * in a dot, and the refusal that names what is missing.
 *
 * Invariants: every check of a user's right to a dot, in the RPC methods
 * and in the /objects endpoints, comes here; a role is decided from a
 * published view (never from the dot's state), and every refusal is
 * DM_EPERM with one of the messages built in refuse().
 */
#include "server/dots/access.h"

#include <stdio.h>
#include <string.h>

#include "util/banned.h"

const char *dm_dot_role_name(int role)
{
	static const char *names[] = {"none", "read", "write", "owner"};

	return role >= DM_ROLE_NONE && role <= DM_ROLE_OWNER ? names[role] : "none";
}

int dm_dot_role_parse(int *out, const char *name, struct dm_err *err)
{
	if (name && !strcmp(name, "read"))
		*out = DM_ROLE_READ;
	else if (name && !strcmp(name, "write"))
		*out = DM_ROLE_WRITE;
	else
		return dm_err_set(err, DM_EINVAL, "invalid role '%.64s': use read or write",
				  name ? name : "");
	return 0;
}

int dm_dot_role_of(const struct dm_dot_view *v, const struct dm_caller *caller)
{
	if (caller->admin || !strcmp(v->owner, caller->user))
		return DM_ROLE_OWNER;
	for (size_t i = 0; i < v->ncollaborators; i++)
		if (!strcmp(v->collaborators[i].user, caller->user))
			return v->collaborators[i].role;
	return DM_ROLE_NONE;
}

bool dm_dot_allows(const struct dm_dot_view *v, const struct dm_caller *caller, int need)
{
	return dm_dot_role_of(v, caller) >= need;
}

/* The one wording of a refusal: who, what, which dot, and what is missing. */
static int refuse(const struct dm_dot_view *v, const struct dm_caller *caller, int role, int need,
		  const char *what, struct dm_err *err)
{
	char shown[DM_DOT_NAME_TEXT_MAX];
	const char *u = caller->user;

	dm_dot_name_text(shown, &v->name);
	if (need >= DM_ROLE_OWNER)
		return dm_err_set(err, DM_EPERM,
				  "user '%s' may not %s '%s': only its owner or an admin may", u,
				  what, shown);
	if (role == DM_ROLE_NONE)
		return dm_err_set(err, DM_EPERM,
				  "user '%s' may not %s '%s': only its owner, an admin or a "
				  "collaborator with role %s may (the owner adds one with 'dm dot "
				  "add-collaborator %s %s --role %s')",
				  u, what, shown, dm_dot_role_name(need), shown, u,
				  dm_dot_role_name(need));
	return dm_err_set(
		err, DM_EPERM,
		"user '%s' may not %s '%s': it needs role %s, and '%s' has role %s "
		"(the owner can change it with 'dm dot add-collaborator %s %s --role %s')",
		u, what, shown, dm_dot_role_name(need), u, dm_dot_role_name(role), shown, u,
		dm_dot_role_name(need));
}

int dm_dot_may(const struct dm_dot_view *v, const struct dm_caller *caller, int need,
	       const char *what, struct dm_err *err)
{
	int role = dm_dot_role_of(v, caller);

	return role >= need ? 0 : refuse(v, caller, role, need, what, err);
}

int dm_dot_may_create(const struct dm_dot_name *name, const struct dm_caller *caller,
		      struct dm_err *err)
{
	char shown[DM_DOT_NAME_TEXT_MAX];

	if (caller->admin || !strcmp(name->ns, caller->user))
		return 0;
	return dm_err_set(err, DM_EPERM,
			  "user '%s' may not create '%s': only user '%s' or an admin may create "
			  "dots in namespace '%s'",
			  caller->user, dm_dot_name_text(shown, name), name->ns, name->ns);
}
