/*
 * auth.h - dmd's users and their API keys.
 *
 * A user is a KV key DM_KV_USERS<name> holding
 *     {"name":"admin","key_sha256":"<64 hex>","admin":true,
 *      "expires":1767225600,"lifetime":2592000}
 * dmd keeps only the SHA-256 of each API key and compares hashes in
 * constant time. A wrong key and an unknown user are refused with the same
 * words ("invalid user name or API key"), so that nobody can tell which
 * user names exist. "expires" (Unix seconds) is when the key stops
 * working, "lifetime" (seconds) how long each new key of the user lives;
 * both are absent for a key that never expires. Only a caller who gives
 * the right key learns that it expired.
 */
#ifndef DM_SERVER_API_AUTH_H
#define DM_SERVER_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "server/api/rpc.h"
#include "server/cluster/cluster.h"
#include "util/err.h"
#include "util/id.h"
#include "util/names.h"

struct dm_kv;

/* DM_KV_USERS: server/cluster/cluster.h, with the cluster's other keys */
#define DM_AUTH_DENIED_MSG "invalid user name or API key"

/* The longest lifetime a key may be given (10 years), in seconds. */
#define DM_AUTH_LIFETIME_MAX (10LL * 366 * 24 * 3600)

/* One user as the KV holds it (without its key). */
struct dm_auth_user {
	char name[DM_NAME_PART_MAX + 1];
	bool admin;
	int64_t expires;  /* Unix seconds when its key stops working; 0: never */
	int64_t lifetime; /* seconds each new key lives; 0: for ever */
};

/*
 * Creates user name (a valid name part, see util/names.h) with a fresh API
 * key, written into key_out (DM_API_KEY_LEN + 1 bytes), which lives
 * lifetime seconds (0: for ever). DM_EEXISTS when the user exists,
 * DM_EINVAL for a bad name. out (may be NULL): the new record.
 */
int dm_auth_user_create(struct dm_kv *kv, struct dm_auth_user *out, char *key_out, const char *name,
			bool admin, int64_t lifetime, struct dm_err *err);

/*
 * Checks (name, key). On success fills out with the user's name and admin
 * flag. DM_EPERM DM_AUTH_DENIED_MSG for an unknown user, a wrong key or a
 * malformed one (the same message, in about the same time); DM_EPERM "API
 * key of user 'bob' expired at TIME; ask an admin for a new one ..." for
 * the right key past its expiry; other codes only when the KV itself
 * fails.
 */
int dm_auth_verify(struct dm_kv *kv, struct dm_caller *out, const char *name, const char *key,
		   struct dm_err *err);

/* The user name as a caller (its admin flag from its record), for a
 * cluster node that calls on that user's behalf. DM_EPERM
 * DM_AUTH_DENIED_MSG when there is no such user. */
int dm_auth_lookup(struct dm_kv *kv, struct dm_caller *out, const char *name,
		   struct dm_err *err);

/* dm_auth_key_reset's lifetime that keeps the user's. */
#define DM_AUTH_KEEP_LIFETIME (-1)

/*
 * Gives user name a fresh API key (key_out as above); the old one stops
 * working. lifetime: seconds, 0 for ever, or DM_AUTH_KEEP_LIFETIME (the
 * user's, as its record says). Without may_lengthen (a user resetting its
 * own key) a user whose keys expire may not ask for a longer life, nor
 * none: DM_EPERM naming the limit. DM_ENOTFOUND "no such user 'NAME'".
 * out (may be NULL): the new record.
 */
int dm_auth_key_reset(struct dm_kv *kv, struct dm_auth_user *out, char *key_out, const char *name,
		      int64_t lifetime, bool may_lengthen, struct dm_err *err);

/* Removes user name: its key stops working at once. DM_ENOTFOUND "no such
 * user 'NAME'". */
int dm_auth_user_remove(struct dm_kv *kv, const char *name, struct dm_err *err);

/* "2026-05-01T10:00:00Z" for Unix seconds t, into out (at least 32 bytes). */
void dm_auth_time_text(char *out, size_t size, int64_t t);

/*
 * The users, sorted by name, into *out (malloc'ed, *n_out of them; free()
 * it). Records that are malformed are left out (and logged), so one bad
 * record does not hide the others.
 */
int dm_auth_user_list(struct dm_kv *kv, struct dm_auth_user **out, size_t *n_out,
		      struct dm_err *err);

#endif
