/*
 * auth.h - dmd's users and their API keys.
 *
 * A user is a KV key DM_KV_USERS<name> holding
 *     {"name":"admin","key_sha256":"<64 hex>","admin":true}
 * dmd keeps only the SHA-256 of each API key and compares hashes in
 * constant time. A wrong key and an unknown user are refused with the same
 * words ("invalid user name or API key"), so that nobody can tell which
 * user names exist.
 */
#ifndef DM_SERVER_API_AUTH_H
#define DM_SERVER_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "server/api/rpc.h"
#include "util/err.h"
#include "util/id.h"
#include "util/names.h"

struct dm_kv;

#define DM_KV_USERS "/dm/users/"
#define DM_AUTH_DENIED_MSG "invalid user name or API key"

/*
 * Creates user name (a valid name part, see util/names.h) with a fresh API
 * key, written into key_out (DM_API_KEY_LEN + 1 bytes). DM_EEXISTS when the
 * user exists, DM_EINVAL for a bad name.
 */
int dm_auth_user_create(struct dm_kv *kv, char *key_out, const char *name, bool admin,
			struct dm_err *err);

/*
 * Checks (name, key). On success fills out with the user's name and admin
 * flag. DM_EPERM DM_AUTH_DENIED_MSG for an unknown user, a wrong key or a
 * malformed one (the same message, in about the same time); other codes
 * only when the KV itself fails.
 */
int dm_auth_verify(struct dm_kv *kv, struct dm_caller *out, const char *name, const char *key,
		   struct dm_err *err);

/* The user name as a caller (its admin flag from its record), for a
 * cluster node that calls on that user's behalf. DM_EPERM
 * DM_AUTH_DENIED_MSG when there is no such user. */
int dm_auth_lookup(struct dm_kv *kv, struct dm_caller *out, const char *name,
		   struct dm_err *err);

/* Gives user name a fresh API key (key_out as above); the old one stops
 * working. DM_ENOTFOUND "no such user 'NAME'". */
int dm_auth_key_reset(struct dm_kv *kv, char *key_out, const char *name, struct dm_err *err);

/* One user as dm_auth_user_list gives it. */
struct dm_auth_user {
	char name[DM_NAME_PART_MAX + 1];
	bool admin;
};

/*
 * The users, sorted by name, into *out (malloc'ed, *n_out of them; free()
 * it). Records that are malformed are left out (and logged), so one bad
 * record does not hide the others.
 */
int dm_auth_user_list(struct dm_kv *kv, struct dm_auth_user **out, size_t *n_out,
		      struct dm_err *err);

#endif
