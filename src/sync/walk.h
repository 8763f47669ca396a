/*
 * walk.h - moving the objects of some commits between the local
 * store and a peer (docs/internals/transfer.md, "The initiator's work",
 * steps 3 and 4), without knowing how the peer is reached.
 *
 * Push: ask the peer top-down which objects it lacks (commits, then root
 * trees, subtrees level by level, files, chunks), never descending into a
 * tree it has; then send what it lacks bottom-up in phases (chunks, files,
 * trees by height, commits), waiting for every acknowledgement between
 * phases, so the peer always has everything below an object it takes.
 *
 * Pull: fetch top-down what the local store lacks (commits, trees level by
 * level, files, then chunks), keeping fetched commits, trees and files in
 * memory until everything below them is stored: chunks are stored as they
 * arrive, then files, trees in postorder, commits. Every object is checked
 * as a receiver checks it (sync/receive.h). So a pull killed at any point
 * leaves the local store with the same invariant, and a new run fetches
 * exactly what is still missing.
 */
#ifndef DM_SYNC_WALK_H
#define DM_SYNC_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/oidmap.h"
#include "sync/wire.h"
#include "util/buf.h"
#include "util/hash.h"

struct dm_err;
struct dm_store;

/* How the walk reaches the other side: the remote's endpoints, or (in
 * tests) another store. Each returns 0 or a DM_E* code with err filled. */
struct dm_sync_peer {
	void *ctx;
	/* push: appends to out the ids among ids[0..n) the peer lacks, in
	 * order; n <= DM_WIRE_MAX_IDS */
	int (*missing)(void *ctx, const dm_oid *ids, size_t n, struct dm_buf *out,
		       struct dm_err *err);
	/* push: sends one record (the peer may batch and pipeline) */
	int (*put)(void *ctx, const struct dm_pack_rec *rec, const void *bytes, struct dm_err *err);
	/* push: returns once every record sent is acknowledged (durable) */
	int (*put_sync)(void *ctx, struct dm_err *err);
	/* pull: the records of ids[0..n), in order, to fn; n <= DM_WIRE_MAX_IDS */
	int (*get)(void *ctx, const dm_oid *ids, size_t n, dm_wire_rec_fn fn, void *fnctx,
		   struct dm_err *err);
};

enum dm_sync_phase {
	DM_SYNC_NEGOTIATING, /* asking what is missing; totals not known yet */
	DM_SYNC_MOVING,      /* sending or receiving; totals known */
};

struct dm_sync_counts {
	int phase;
	uint64_t objects_done, objects_total;
	uint64_t bytes_done, bytes_total; /* object sizes (raw bytes) */
};

struct dm_sync_walk {
	struct dm_store *store; /* the local store */
	const char *dot_id;     /* the dot being transferred: its commits only */
	struct dm_sync_peer peer;
	/* called whenever counts change (often: throttle there); may be NULL */
	void (*progress)(void *ctx, const struct dm_sync_counts *counts);
	/* polled between requests and records; may be NULL */
	bool (*cancelled)(void *ctx);
	void *ctx;
	/* pull: bytes of fetched objects held in memory until they can be
	 * stored (the rest wait in a temporary file beside the store);
	 * 0: DM_SYNC_HOLD_MAX */
	size_t hold_max;
	/* commit object ids that move as records only, without what their
	 * trees reach (pruned commits: their data is gone); may be NULL */
	const struct dm_oidmap *records_only;
	struct dm_sync_counts counts; /* kept by the walk */
};

#define DM_SYNC_HOLD_MAX (64u << 20)

/* Makes the peer hold every object reachable from commits[0..n) (commit
 * object ids, all in the local store). Done counts grow as the peer
 * acknowledges: the peer reports acks through dm_sync_acked. */
int dm_sync_push(struct dm_sync_walk *w, const dm_oid *commits, size_t n,
			     struct dm_err *err);
/* For a peer's put: `objects` records of `bytes` raw bytes are durable there. */
void dm_sync_acked(struct dm_sync_walk *w, uint64_t objects, uint64_t bytes);

/* Fetches into the local store every object reachable from commits[0..n)
 * (commit object ids the peer has) that the local store lacks. */
int dm_sync_pull(struct dm_sync_walk *w, const dm_oid *commits, size_t n,
			     struct dm_err *err);

#endif
