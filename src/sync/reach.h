/*
 * reach.h - what one transfer session may see of a shared store: the
 * objects reachable from some commits (the heads of the dot the session
 * reads), plus the objects the session's caller sent itself.
 *
 * The store is shared by every dot and user (cross-dot dedup), so an id
 * alone proves nothing: a dmd serves an object, or admits that it holds
 * one, only when the object is reachable from a dot the caller may read
 * (docs/internals/transfer.md, "Who may see an object"). The set is found
 * lazily: a breadth-first walk from the commits, through dm_object_refs,
 * goes only as far as the questions asked need, and never reads an object
 * twice. The seeds and what the caller sent are pinned in the store
 * (dm_store_pin) while the set lives, so garbage collection keeps them.
 * Not thread-safe: one owner at a time (the sessions table hands a
 * session to one request at a time).
 */
#ifndef DM_SYNC_REACH_H
#define DM_SYNC_REACH_H

#include <stddef.h>

#include "util/hash.h"

struct dm_err;
struct dm_store;
struct dm_reach;

/* At most this many ids in one set: a walk that would pass it stops with
 * DM_ETOOBIG (about 64 bytes of memory each). */
#define DM_REACH_IDS_MAX (16u * 1024 * 1024)

/* A set seeded with commit objects commits[0..n) (copied); store is
 * borrowed and must outlive the set. max_ids 0 means DM_REACH_IDS_MAX. */
struct dm_reach *dm_reach_new(struct dm_store *store, const dm_oid *commits, size_t n,
			      size_t max_ids);
void dm_reach_free(struct dm_reach *r);

/*
 * 1 when id is reachable from the commits or was given; 0 when it is not
 * (the walk is then complete, so later misses cost a lookup). Walks on as
 * far as needed; an object the walk must read that is missing or corrupt
 * is an error (DM_ENOTFOUND, DM_ECORRUPT), and so is passing the bound
 * (DM_ETOOBIG). Errors are negative DM_E* codes.
 */
int dm_reach_allows(struct dm_reach *r, const dm_oid *id, struct dm_err *err);

/* The caller sent id's content itself: it is visible from now on. What id
 * names is not (the caller must have sent, or be allowed, each of those). */
int dm_reach_give(struct dm_reach *r, const dm_oid *id, struct dm_err *err);

/* Ids known so far (reachable ones found, and given ones). */
size_t dm_reach_count(const struct dm_reach *r);

#endif
