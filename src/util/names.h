/*
 * names.h - the names users give things: dots ([namespace/]name), branches,
 * and the refs that name commits (HEAD, HEAD^, HEAD~N, ids and prefixes).
 *
 * Shared by dmd and dm so that both refuse a bad name with the same words.
 * Also the commit metadata keys that dm writes itself.
 */
#ifndef DM_UTIL_NAMES_H
#define DM_UTIL_NAMES_H

#include <stdbool.h>
#include <stddef.h>

struct dm_err;

#define DM_NAME_PART_MAX 64
#define DM_DEFAULT_NAMESPACE "admin"

/* true when s matches ^[A-Za-z0-9_-]{1,64}$ */
bool dm_name_part_valid(const char *s, size_t len);

/* A dot name split into its parts (NUL-terminated, valid). */
struct dm_dot_name {
	char ns[DM_NAME_PART_MAX + 1];
	char name[DM_NAME_PART_MAX + 1];
};

#define DM_DOT_NAME_TEXT_MAX (2 * DM_NAME_PART_MAX + 2)

/* How messages name a dot: "name" in the default namespace, "ns/name"
 * elsewhere. Writes into out and returns it. */
const char *dm_dot_name_text(char out[DM_DOT_NAME_TEXT_MAX], const struct dm_dot_name *n);

/* Parses "[ns/]name"; DM_EINVAL "invalid dot name 'S'" otherwise. The
 * namespace defaults to DM_DEFAULT_NAMESPACE. */
int dm_dot_name_parse(struct dm_dot_name *out, const char *s, struct dm_err *err);
/* DM_EINVAL "invalid branch name 'S'" unless s is a valid name part. */
int dm_branch_name_check(const char *s, struct dm_err *err);

/* A commit ref relative to a head: HEAD (back 0), HEAD^^ (2), HEAD~5 (5);
 * anything else is a commit id or a prefix of one. */
struct dm_ref {
	bool relative;
	unsigned back;    /* relative: how many first-parents back */
	const char *id;   /* not relative: the id or prefix (borrowed from s) */
};

/* DM_EINVAL "invalid commit reference 'S'" for an empty ref, a malformed
 * HEAD form or characters outside [0-9A-Za-z_-]. */
int dm_ref_parse(struct dm_ref *out, const char *s, struct dm_err *err);

/*
 * Commit metadata under "dm." is dm's own record of how the commit was
 * taken (docs/consistency.md); a user's metadata may not use the prefix.
 *   dm.capture    snapshot | frozen | quiet | not-instant
 *   dm.freeze-ms  how long the containers were frozen (frozen)
 *   dm.frozen     the containers frozen, by name, comma-separated
 *   dm.changed    what changed while it was read (not-instant)
 *   dm.hooks      the hooks that ran and how each ended
 */
#define DM_META_RESERVED_PREFIX "dm."
#define DM_META_CAPTURE         "dm.capture"
#define DM_META_FREEZE_MS       "dm.freeze-ms"
#define DM_META_FROZEN          "dm.frozen"
#define DM_META_CHANGED         "dm.changed"
#define DM_META_HOOKS           "dm.hooks"

/* DM_EINVAL when key is one of dm's own (DM_META_RESERVED_PREFIX). */
int dm_meta_key_not_reserved(const char *key, struct dm_err *err);

/*
 * dotmesh's way to choose a commit's id: the metadata entry
 * "#commit-id=ID" of `dm commit -d` (and of DotmeshRPC.Commit), which is
 * not metadata but the id (dots.commit's `id`).
 */
#define DM_COMMIT_ID_META "#commit-id"
/* A commit id a user chooses: 4 to 128 letters, digits, '-' or '_', not
 * starting with "HEAD" (so that every ref can name it); DM_EINVAL saying
 * so otherwise. */
int dm_commit_id_check(const char *id, struct dm_err *err);

#endif
