/*
 * engine.h - working copies: the live, writable files of each branch of
 * each dot, and their conversion to and from trees in the store.
 *
 * An engine sits behind one function table (struct dm_engine_ops); dir.c is
 * the default engine (a plain directory per branch, any file system) and
 * btrfs.c keeps each working copy in a btrfs subvolume and each commit in a
 * read-only snapshot (root; its pool: engine/pool.h). Callers use the
 * dm_engine_* functions, which dispatch through the table.
 *
 * Threads: the dot's actor runs engine calls as jobs on worker threads, at
 * most one job per dot at a time, so an engine may assume that calls for
 * the same dot never overlap; calls for different dots do, and must not
 * share mutable state without their own synchronisation.
 *
 * Progress: long calls report through an optional callback; they poll
 * `cancelled` and stop with DM_ECANCELED when it returns true, leaving the
 * working copy usable (a reset stopped half-way may leave a mix of old and
 * new files, which the next reset repairs).
 */
#ifndef DM_ENGINE_ENGINE_H
#define DM_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/buf.h"
#include "util/hash.h"

struct dm_err;
struct dm_engine;

struct dm_engine_progress {
	/* done/total in bytes (total 0 when unknown); may be NULL */
	void (*report)(void *ctx, uint64_t done, uint64_t total);
	/* true when the job should stop; may be NULL */
	bool (*cancelled)(void *ctx);
	void *ctx;
};

enum dm_change_status { DM_CHANGE_ADDED = 1, DM_CHANGE_MODIFIED = 2, DM_CHANGE_DELETED = 3 };

struct dm_change {
	int status;   /* enum dm_change_status */
	char *path;   /* relative, '/'-separated; owned */
};

struct dm_diff {
	size_t n;
	struct dm_change *changes; /* sorted by path */
};

void dm_diff_release(struct dm_diff *d);
/* "added", "modified", "deleted" */
const char *dm_change_status_name(int status);

struct dm_engine_ops {
	const char *name;
	int (*open)(struct dm_engine **out, const char *root, struct dm_store *store,
		    struct dm_err *err);
	void (*free)(struct dm_engine *e);
	int (*create)(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *tree,
		      const struct dm_engine_progress *p, struct dm_err *err);
	int (*commit)(struct dm_engine *e, const char *dot, const char *branch, dm_oid *tree_out,
		      const struct dm_engine_progress *p, struct dm_err *err);
	int (*reset)(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *tree,
		     const struct dm_engine_progress *p, struct dm_err *err);
	int (*dirty)(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *head,
		     uint64_t *dirty_out, uint64_t *size_out, struct dm_err *err);
	int (*diff)(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *from,
		    const dm_oid *to, struct dm_diff *out, struct dm_err *err);
	int (*delete_branch)(struct dm_engine *e, const char *dot, const char *branch,
			     struct dm_err *err);
	int (*delete_dot)(struct dm_engine *e, const char *dot, struct dm_err *err);
	/* NULL (the default, engine.c): ROOT/<dot>/<branch>/wc, and
	 * ROOT/<dot>/.current leading to the current one. */
	int (*path)(struct dm_engine *e, const char *dot, const char *branch, struct dm_buf *out,
		    struct dm_err *err);
	int (*set_current)(struct dm_engine *e, const char *dot, const char *branch,
			   struct dm_err *err);
	/* Engines with snapshots (btrfs) commit in two steps; NULL otherwise. */
	int (*snapshot)(struct dm_engine *e, const char *dot, const char *branch,
			const char *commit_id, struct dm_err *err);
	int (*index)(struct dm_engine *e, const char *dot, const char *commit_id,
		     const char *parent_id, const dm_oid *parent_tree, dm_oid *tree_out,
		     const struct dm_engine_progress *p, struct dm_err *err);
	int (*drop_snapshot)(struct dm_engine *e, const char *dot, const char *commit_id,
			     struct dm_err *err);
	int (*sweep_snapshots)(struct dm_engine *e, const char *dot,
			       bool (*keep)(const char *commit_id, void *ctx), void *ctx,
			       struct dm_err *err);
	/* NULL: dm_engine_receive creates or resets */
	int (*receive)(struct dm_engine *e, const char *dot, const char *branch, bool exists,
		       const char *from, const char *commit_id, const dm_oid *tree,
		       const struct dm_engine_progress *p, struct dm_err *err);
};

extern const struct dm_engine_ops dm_engine_dir;
extern const struct dm_engine_ops dm_engine_btrfs;

/*
 * Opens the engine `name` ("dir" or "btrfs") with its working copies under
 * root and its history in store (borrowed; must outlive the engine). The
 * btrfs engine refuses a root that is not on btrfs (DM_EUNSUPPORTED).
 */
int dm_engine_open(struct dm_engine **out, const char *name, const char *root,
		   struct dm_store *store, struct dm_err *err);
void dm_engine_free(struct dm_engine *e);
const char *dm_engine_name(const struct dm_engine *e);

/* Makes the working copy of (dot, branch), holding tree (NULL: empty). */
int dm_engine_create(struct dm_engine *e, const char *dot, const char *branch,
		     const dm_oid *tree, const struct dm_engine_progress *p, struct dm_err *err);
/* Stores the working copy as a tree and returns its id (the stat cache makes
 * unchanged files cost one lstat). The store is flushed before returning. */
int dm_engine_commit(struct dm_engine *e, const char *dot, const char *branch, dm_oid *tree_out,
		     const struct dm_engine_progress *p, struct dm_err *err);
/* Makes the working copy equal to tree, writing only what differs. */
int dm_engine_reset(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *tree,
		    const struct dm_engine_progress *p, struct dm_err *err);
/* Bytes of the working copy that differ from head (NULL: empty tree), and
 * the working copy's total size. Writes nothing to the store. An engine
 * with snapshots measures what changed since the snapshot the working copy
 * was last equal to (its head's, as the dot keeps it) from extent maps,
 * and uses head only for a working copy that has no such snapshot. */
int dm_engine_dirty(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *head,
		    uint64_t *dirty_out, uint64_t *size_out, struct dm_err *err);
/* Changes from `from` (NULL: empty tree) to `to` (NULL: the working copy of
 * (dot, branch)). Writes nothing to the store. */
int dm_engine_diff(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *from,
		   const dm_oid *to, struct dm_diff *out, struct dm_err *err);
int dm_engine_delete_branch(struct dm_engine *e, const char *dot, const char *branch,
			    struct dm_err *err);
/* Removes every working copy of dot; idempotent. */
int dm_engine_delete_dot(struct dm_engine *e, const char *dot, struct dm_err *err);
/* The absolute path of the working copy of (dot, branch); with branch NULL,
 * the dot's stable path that always leads to its current branch's working
 * copy (what `dm mount` and containers use, so that a checkout switches
 * what they see). */
int dm_engine_path(struct dm_engine *e, const char *dot, const char *branch, struct dm_buf *out,
		   struct dm_err *err);
/*
 * Two-step commits, for engines with snapshots (dm_engine_can_snapshot):
 * dm_engine_snapshot freezes the working copy of (dot, branch) as a
 * read-only snapshot named by the commit id, at once, whatever its size;
 * dm_engine_index later turns that snapshot into a tree in the store
 * (reusing the tree of parent_id's snapshot, parent_tree, for every file
 * that did not change, and pointing the store's index into the snapshot
 * instead of copying data); dm_engine_drop_snapshot removes one (a commit
 * that could not be sealed, or a deleted dot's). Engines without snapshots
 * use dm_engine_commit.
 */
bool dm_engine_can_snapshot(const struct dm_engine *e);
int dm_engine_snapshot(struct dm_engine *e, const char *dot, const char *branch,
		       const char *commit_id, struct dm_err *err);
int dm_engine_index(struct dm_engine *e, const char *dot, const char *commit_id,
		    const char *parent_id, const dm_oid *parent_tree, dm_oid *tree_out,
		    const struct dm_engine_progress *p, struct dm_err *err);
int dm_engine_drop_snapshot(struct dm_engine *e, const char *dot, const char *commit_id,
			    struct dm_err *err);

/* Drops every snapshot of dot whose commit id keep() does not want: what a
 * crash between a snapshot and its record left behind. No-op for engines
 * without snapshots. */
int dm_engine_sweep_snapshots(struct dm_engine *e, const char *dot,
			      bool (*keep)(const char *commit_id, void *ctx), void *ctx,
			      struct dm_err *err);

/*
 * Brings the working copy of (dot, branch) to sealed commit commit_id, with
 * tree, that arrived from elsewhere (a transfer), whose parent is commit
 * `from` of this dot (NULL or "": none): creates it when !exists, resets it
 * otherwise. An engine with snapshots also keeps the commit as its own
 * commits are kept (btrfs: a read-only snapshot named commit_id, made from
 * what the working copy or `from` holds so that only what differs is
 * written, into which the store's index then points for the chunks that
 * arrived, so that they are on disk once; dm_store_staging_end follows).
 * Other engines create or reset.
 */
int dm_engine_receive(struct dm_engine *e, const char *dot, const char *branch, bool exists,
		      const char *from, const char *commit_id, const dm_oid *tree,
		      const struct dm_engine_progress *p, struct dm_err *err);

/* Makes the dot's stable path lead to branch's working copy, atomically. */
int dm_engine_set_current(struct dm_engine *e, const char *dot, const char *branch,
			  struct dm_err *err);

#endif
