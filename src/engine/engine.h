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
 * new files, which the next reset repairs; one that changed files in place
 * leaves the branch needing a reset, inplace.c, until one succeeds).
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

/* How one call runs: its progress, its cancel, and (for the calls that
 * write a working copy: create, reset, receive) what it may write. */
struct dm_engine_progress {
	/* done/total in bytes (total 0 when unknown); may be NULL */
	void (*report)(void *ctx, uint64_t done, uint64_t total);
	/* true when the job should stop; may be NULL */
	bool (*cancelled)(void *ctx);
	void *ctx;
	/* files get no setuid/setgid bits, whatever the tree says (a dot
	 * holding data pushed by a non-admin) */
	bool strip_setid;
	/* containers use the working copy while it is written (a receive
	 * does not stop them): no file they may hold open is changed in
	 * place, a changed one is replaced by a new file (a reset stops them
	 * first and writes in place) */
	bool shared;
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

/*
 * How a commit took the working copy, recorded in its metadata: the promise
 * it keeps (docs/consistency.md).
 */
enum dm_capture_kind {
	DM_CAPTURE_SNAPSHOT = 1, /* an atomic snapshot of the file system (btrfs) */
	DM_CAPTURE_FROZEN,       /* the writers were frozen for the final pass */
	DM_CAPTURE_QUIET,        /* nothing to freeze, and nothing moved while it was read */
	DM_CAPTURE_NOT_INSTANT,  /* it changed while it was read: not one instant */
};

/* "snapshot", "frozen", "quiet", "not-instant"; NULL for anything else. */
const char *dm_capture_kind_name(int kind);

/* The writers of a working copy that a commit may freeze (the containers
 * that use it). freeze pauses them all or none; thaw is called exactly once
 * after every freeze that returned 0, on every path. */
struct dm_engine_freezer {
	int (*freeze)(void *ctx, struct dm_err *err);
	void (*thaw)(void *ctx);
	void *ctx;
	int64_t max_freeze_ns; /* the longest a freeze may last; 0: no bound */
};

/* What a commit did to take the working copy as of one instant. */
struct dm_engine_capture {
	int kind;               /* enum dm_capture_kind */
	unsigned reads;         /* walks of the working copy that read it */
	uint64_t changed;       /* NOT_INSTANT: entries that moved while read */
	char changed_path[256]; /* the first of them */
	uint64_t files_captured; /* FROZEN: files copied aside while frozen */
	uint64_t bytes_copied;   /* of which copied, not reflinked */
};

/* How many times a commit with nothing to freeze reads a working copy that
 * keeps changing before it records the commit as not one instant. */
#define DM_ENGINE_READS_MAX 3

struct dm_engine_ops {
	const char *name;
	int (*open)(struct dm_engine **out, const char *root, struct dm_store *store,
		    struct dm_err *err);
	void (*free)(struct dm_engine *e);
	int (*create)(struct dm_engine *e, const char *dot, const char *branch, const dm_oid *tree,
		      const struct dm_engine_progress *p, struct dm_err *err);
	int (*commit)(struct dm_engine *e, const char *dot, const char *branch,
		      const struct dm_engine_freezer *fz, dm_oid *tree_out,
		      struct dm_engine_capture *cap, const struct dm_engine_progress *p,
		      struct dm_err *err);
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
	/* NULL: the engine cannot limit a working copy's size */
	int (*limit)(struct dm_engine *e, const char *dot, const char *branch, uint64_t bytes,
		     struct dm_err *err);
};

extern const struct dm_engine_ops dm_engine_dir;
extern const struct dm_engine_ops dm_engine_btrfs;

/*
 * For tests of a crash in the middle of an in-place write (t0382): with a
 * path set, every change of a working copy in place after the first waits
 * while that file exists, having created PATH.reached. Set once before
 * anything is served (dmd: $DM_TEST_STALL_IN_PLACE); never outside tests.
 */
void dm_engine_set_test_stall(const char *path);

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
/*
 * The same, as of one instant, and *cap says how (never NULL). With fz
 * (writers it can freeze): the working copy is read while they run, then
 * they are frozen for a last walk that copies aside only what changed since
 * (a reflink where the file system has them) and thawed before those copies
 * are read; a freeze that would outlast fz->max_freeze_ns fails the commit
 * with DM_ETIMEOUT, the writers thawed and nothing stored as a commit.
 * Without fz (or with no writers): read, then every entry checked again;
 * what moved is read again, up to DM_ENGINE_READS_MAX reads, after which the
 * commit is made of the last read and cap->kind says DM_CAPTURE_NOT_INSTANT.
 */
int dm_engine_commit_instant(struct dm_engine *e, const char *dot, const char *branch,
			     const struct dm_engine_freezer *fz, dm_oid *tree_out,
			     struct dm_engine_capture *cap, const struct dm_engine_progress *p,
			     struct dm_err *err);
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

/*
 * Limits the working copy of (dot, branch) to bytes (0: no limit), so that
 * writing past it fails with EDQUOT, for as long as the branch lives (a
 * reset or a receive keeps it). btrfs: a qgroup limit on the referenced
 * bytes of its subvolume, quotas turned on for the pool the first time
 * (engine/qgroup.h). DM_EUNSUPPORTED from an engine that cannot
 * (dm_engine_can_limit false: dir) or a kernel without quotas.
 */
bool dm_engine_can_limit(const struct dm_engine *e);
int dm_engine_limit(struct dm_engine *e, const char *dot, const char *branch, uint64_t bytes,
		    struct dm_err *err);

/*
 * A read-only copy of commit commit_id of dot, whose tree is tree (in
 * store), for `dm mount DOT@COMMIT --read-only` and the volume DOT@COMMIT;
 * its path into out. The first call materialises it (commitcopy.c: whole
 * or absent, then read-only: a read-only bind mount of itself when dmd
 * runs as root, else without write permissions); later calls answer the
 * same path at once. p->strip_setid is honoured.
 */
int dm_engine_commit_copy(struct dm_engine *e, struct dm_store *store, const char *dot,
			  const char *commit_id, const dm_oid *tree,
			  const struct dm_engine_progress *p, struct dm_buf *out, struct dm_err *err);
/* Removes every copy of dot but those of the nkeep commits in keep (none
 * kept: the copies' directory too). */
int dm_engine_commit_copy_sweep(struct dm_engine *e, const char *dot, const char (*keep)[129],
				size_t nkeep, struct dm_err *err);

/* Makes the dot's stable path lead to branch's working copy, atomically. */
int dm_engine_set_current(struct dm_engine *e, const char *dot, const char *branch,
			  struct dm_err *err);

#endif
