/*
 * registry.h - the one map from dot id to dot (DESIGN.md §3), owned by the
 * registry's actor, and the immutable snapshots of it that readers use.
 *
 * Creating a dot is a request to the registry (it reserves the name with a
 * compare-and-swap in the KV, starts the dot's actor and hands the request
 * on to it); a dot tells the registry when it is gone. Readers take a
 * snapshot (reference-counted, never changed) and look dots up in it.
 */
#ifndef DM_SERVER_DOTS_REGISTRY_H
#define DM_SERVER_DOTS_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>

#include "server/dots/dot.h"
#include "util/err.h"
#include "util/names.h"

struct dm_actor;
struct dm_kv;
struct dm_registry;

struct dm_registry_entry {
	struct dm_dot_name name;
	char id[DM_DOT_ID_MAX + 1];
	struct dm_dot_handle *dot;
};

struct dm_registry_snap {
	int refs; /* atomic */
	size_t n;
	struct dm_registry_entry *e; /* sorted by namespace, then name */
	size_t ngone;
	char (*gone)[DM_DOT_ID_MAX + 1]; /* recently deleted ids, newest last */
};

/*
 * Loads every dot from the KV, starts their actors and the registry's own.
 * env is copied; env->registry is filled in here. Used by dm_registry_start.
 */
int dm_registry_open(struct dm_registry **out, const struct dm_dot_env *env, struct dm_err *err);
/* Whether dot id is deleted from the cluster: its tombstone
 * (DM_KV_DELETED ID, written by dm_cluster_mark_deleted) exists (1), not
 * (0), or an error. */
int dm_registry_is_deleted(struct dm_kv *kv, const char *id, struct dm_err *err);
/* Stops every dot and the registry; the scheduler must still run. */
void dm_registry_free(struct dm_registry *r);

/* The latest snapshot: a new reference, never NULL. */
struct dm_registry_snap *dm_registry_snapshot(struct dm_registry *r);
void dm_registry_snap_unref(struct dm_registry_snap *s);
const struct dm_registry_entry *dm_registry_find(const struct dm_registry_snap *s,
						 const struct dm_dot_name *name);
const struct dm_registry_entry *dm_registry_find_id(const struct dm_registry_snap *s,
						    const char *id);
bool dm_registry_was_deleted(const struct dm_registry_snap *s, const char *id);
/* The handle of dot id as the latest snapshot has it (a new reference), or
 * NULL when this node has no such dot. */
struct dm_dot_handle *dm_registry_handle_of(struct dm_registry *r, const char *id);

/* Sends the request that creates dot `name`; the ticket's reply carries the
 * dot's JSON (for callers that cannot block: deterministic tests). */
struct dm_ticket;
void dm_registry_create_send(struct dm_registry *r, struct dm_ticket **out,
			     const struct dm_dot_name *name, const char *id);
/* Creates dot `name` and waits for it to be ready; result: the dot's JSON.
 * id: NULL for a new dot, or the id the dot has elsewhere (a clone, or a
 * push that creates it), which must not exist here yet. */
int dm_registry_create(struct dm_registry *r, json_t **result, const struct dm_dot_name *name,
		       const char *id, int timeout_ms, struct dm_err *err);

/* From a dot's actor: dot `id` is gone (posts a message; never blocks). */
void dm_registry_dot_gone(struct dm_actor *registry, const char *id);

const struct dm_dot_env *dm_registry_env(const struct dm_registry *r);

#endif
