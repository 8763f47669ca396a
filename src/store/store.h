/*
 * store.h - the content-addressed object store of one node.
 *
 * Objects (see object.h) are addressed by the SHA-256 of their bytes and
 * stored once. Their bytes live in append-only pack files (about 64 MiB
 * each; a chunk is zstd-compressed when that makes it smaller) or, for an
 * engine with read-only snapshots, in an immutable file the engine keeps (a
 * path and an offset). An LMDB index maps object id to that place.
 *
 * Layout of a store directory:
 *     DIR/packs/pack-00000001.pack ...   append-only object records
 *     DIR/index/                          LMDB environment (data.mdb)
 *
 * External files are recorded relative to the store's external root (the
 * engine's directory, dm_store_set_external_root) when they lie under it,
 * so that the data directory can move as a whole.
 *
 * Staging: an engine that keeps data in snapshots turns staging on; chunks
 * received for a dot (dm_store_put_received) then go to packs of their own,
 * which dm_store_staging_end empties and deletes once the engine has
 * recorded what it could as bytes of its snapshot (dm_store_tree_unstage).
 *
 * Durability: dm_store_put makes an object visible to readers of this
 * store at once, and durable at the next dm_store_flush, which fsyncs the
 * packs and then commits the index in one LMDB transaction. A crash at any
 * point leaves the store as of the last flush: pack bytes past the index's
 * recorded end of a pack are truncated at open.
 *
 * Threads: every function here may be called from several threads at once
 * on one store; writes to the pack are serialised inside.
 *
 * Where it is done: store.c (packs, index, put/get/flush, the commit
 * index), external.c (external objects and roots), staging.c (staging
 * packs), unstage.c (dm_store_tree_unstage), admit.c (admission), verify.c,
 * gc.c (reachability, for dm_store_external_release and the collector),
 * collect.c (garbage collection), guard.c (holds, pins, leases).
 */
#ifndef DM_STORE_STORE_H
#define DM_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/chunker.h"
#include "store/object.h"
#include "store/pack.h"
#include "util/buf.h"
#include "util/hash.h"

struct dm_err;
struct dm_store;

struct dm_store_opts {
	struct dm_chunker_params chunk; /* fixed at creation; later opens use the stored ones */
	uint64_t pack_size;             /* start a new pack past this size */
	int zstd_level;                 /* 1..19 */
	bool sync;                      /* fsync at flush (default true; off only for tests) */
	/* free space writes must leave on the store's file system (see "Full
	 * disks" below): 0 for 2% of the file system, between 16 MiB and 1 GiB;
	 * < 0 for none */
	int64_t reserve;
	/* how packs are synced: NULL for fdatasync(2) (tests inject failures) */
	int (*sync_fn)(int fd);
};

void dm_store_opts_default(struct dm_store_opts *out);

/* Opens the store in dir, creating it when missing. opts may be NULL. */
int dm_store_open(struct dm_store **out, const char *dir, const struct dm_store_opts *opts,
		  struct dm_err *err);
/* The directory the store was opened on (for files that belong beside it,
 * such as a transfer's temporary ones). */
const char *dm_store_dir(const struct dm_store *s);
/* Flushes and closes; accepts NULL. Errors of the final flush are logged. */
void dm_store_free(struct dm_store *s);
/* The chunking parameters this store was created with. */
const struct dm_chunker_params *dm_store_chunker(const struct dm_store *s);

/* Stores data as an object of the given kind; out receives its id (may be
 * NULL). An object already present is not written again. */
int dm_store_put(struct dm_store *s, dm_oid *out, enum dm_obj_kind kind, const void *data,
		 size_t len, struct dm_err *err);
/* As dm_store_put when the caller has already hashed data into id. */
int dm_store_put_hashed(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
			const void *data, size_t len, struct dm_err *err);
/*
 * Tells the store the directory its engine keeps files in (absolute): from
 * now on external files under it are recorded relative to it, and relative
 * records are read under it. Records that older versions wrote with
 * absolute paths under root are rewritten as relative ones now. Call it
 * once, before anything else uses the store. A store that was not given
 * its root reads absolute records only (relative ones fail with
 * DM_EUNSUPPORTED).
 */
int dm_store_set_external_root(struct dm_store *s, const char *root, struct dm_err *err);

/* Records that object id is the len bytes at offset off of the immutable
 * file at path (absolute). The bytes are hashed to check id first. Like a
 * put, the record is visible at once and durable at the next flush; an
 * object already present keeps the place it has. */
int dm_store_put_external(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
			  const char *path, uint64_t off, uint32_t len, struct dm_err *err);
/* As dm_store_put_external when the caller has just read those bytes from
 * that file and hashed them into id itself (not read again). */
int dm_store_put_external_hashed(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
				 const char *path, uint64_t off, uint32_t len,
				 struct dm_err *err);

/*
 * Before the files under prefix (an absolute path ending in '/') go away:
 * every external object kept there that a commit of a dot other than
 * skip_dot (NULL: any commit) still reaches is copied into a pack, and the
 * others are forgotten, with every object no such commit reaches that
 * names one of them (files, trees, commits: so nothing left names a
 * missing object). Flushes. Objects that only something not yet committed
 * reaches (a commit being built, a transfer) are forgotten too: call it
 * when nothing can be building on them.
 */
struct dm_store_release_stats {
	uint64_t copied;       /* objects copied into packs */
	uint64_t copied_bytes;
	uint64_t forgotten;    /* external objects no commit needed */
	uint64_t dependents;   /* objects forgotten because they named those */
};
int dm_store_external_release(struct dm_store *s, const char *prefix, const char *skip_dot,
			      struct dm_store_release_stats *out, struct dm_err *err);

/* 1 when present, 0 when not. */
int dm_store_has(struct dm_store *s, const dm_oid *id);
/* As dm_store_has, but a commit whose tree is not stored (a record only:
 * one that came pruned, admit.c) counts as absent: what a transfer asks,
 * so that a sender that has the commit's data sends it. */
int dm_store_has_whole(struct dm_store *s, const dm_oid *id);
/* Kind and size of a stored object without reading it; DM_ENOTFOUND. */
int dm_store_stat(struct dm_store *s, const dm_oid *id, int *kind_out, uint64_t *len_out,
		  struct dm_err *err);
/* Reads object id into out (appending), checking its hash; DM_ENOTFOUND,
 * DM_ECORRUPT when the stored bytes do not hash to id. kind_out may be NULL. */
int dm_store_get(struct dm_store *s, const dm_oid *id, struct dm_buf *out, int *kind_out,
		 struct dm_err *err);

/*
 * Objects in their stored form, for transfers between stores (the wire
 * format is the pack record format, see pack.h): nothing is decompressed
 * on the way out or recompressed on the way in.
 *
 * dm_store_get_stored appends object id's stored bytes to out exactly as
 * its pack holds them (a zstd frame when rec->flags has DM_PACK_F_ZSTD)
 * and fills rec with its record header (kind, flags, raw_len, stored_len,
 * id). An external object comes back raw, flags 0. The bytes are not
 * rehashed here: the receiver does that. DM_ENOTFOUND, DM_ECORRUPT when
 * the pack's record does not match the index.
 *
 * dm_store_put_stored takes a record as it arrived from outside: checks
 * the header as a pack record is checked (kind, flags, lengths against the
 * kind's limit), decompresses a flagged frame into exactly raw_len bytes,
 * hashes them and compares with rec->id. Any mismatch is DM_ECORRUPT and
 * nothing is stored. Otherwise the given bytes are stored as they are (no
 * recompression); an object already present is not written again.
 * bytes holds rec->stored_len bytes.
 */
int dm_store_get_stored(struct dm_store *s, const dm_oid *id, struct dm_pack_rec *rec,
			struct dm_buf *out, struct dm_err *err);
int dm_store_put_stored(struct dm_store *s, const struct dm_pack_rec *rec, const void *bytes,
			struct dm_err *err);

/*
 * Admission (admit.c), the rule for an object that comes from outside the
 * store: 0 when raw (the object's raw bytes, len of them) hashes to id,
 * decodes as kind, and every object it names is stored here with the kind
 * it is named with (a file's chunks with their extents' lengths); a commit
 * must also belong to dot dot_id (NULL: no commit is admitted). Otherwise
 * DM_ECORRUPT with a message naming the object. Stores nothing: the caller
 * stores the object once it is admitted (dm_store_put_received), so that
 * an object present in the store has everything below it present.
 */
int dm_store_admit_check(struct dm_store *s, const dm_oid *id, int kind, const void *raw,
			 size_t len, const char *dot_id, struct dm_err *err);

/*
 * Staging received data (an engine that keeps data in snapshots turns it on
 * when it opens): dm_store_put_received is dm_store_put_stored for an
 * object that arrived for dot dot_id (NULL: none known); with staging on,
 * a chunk goes to a staging pack of that dot, which holds nothing else.
 * Files, trees and commits always go to ordinary packs. A staged chunk is
 * an object like any other: readable at once, durable at the next flush.
 *
 * dm_store_unstage: when chunk id lies in a staging pack of dot_id and the
 * len bytes at off of the immutable file at path (absolute) hash to it,
 * records it as those bytes instead (pending until the next flush, like a
 * put) and returns 1; 0 when it is not staged there or the bytes differ.
 * dm_store_tree_unstage does that for every chunk of every file of tree,
 * whose files are under dir (a frozen copy of the tree: a snapshot), and
 * flushes.
 *
 * dm_store_staging_end: ends the dot's staging: its chunks that arrive
 * from now on start new packs; what still lies in its staging packs is
 * copied into ordinary packs as stored; then the packs are forgotten and
 * deleted. Calls for one dot must not overlap (the dot's actor serialises
 * them); a transfer into the dot running meanwhile is safe (what it staged
 * before is copied, what it stages after waits for the next end).
 */
void dm_store_set_staging(struct dm_store *s, bool on);
int dm_store_put_received(struct dm_store *s, const char *dot_id, const struct dm_pack_rec *rec,
			  const void *bytes, struct dm_err *err);
int dm_store_unstage(struct dm_store *s, const char *dot_id, const dm_oid *id, const char *path,
		     uint64_t off, uint32_t len, struct dm_err *err);
struct dm_store_unstage_stats {
	uint64_t files;  /* regular files walked */
	uint64_t chunks; /* chunks recorded as bytes of dir's files */
	uint64_t bytes;
};
int dm_store_tree_unstage(struct dm_store *s, const char *dot_id, const dm_oid *tree,
			  const char *dir, struct dm_store_unstage_stats *out, struct dm_err *err);
struct dm_store_staging_stats {
	uint64_t copied; /* objects copied into ordinary packs */
	uint64_t copied_bytes;
	uint64_t packs;       /* staging packs deleted */
	uint64_t freed_bytes; /* their size */
};
int dm_store_staging_end(struct dm_store *s, const char *dot_id, struct dm_store_staging_stats *out,
			 struct dm_err *err);

/*
 * The commit index: which commit object is commit `commit_id` of dot
 * `dot_id` (commits are named by their commit ids, not object ids).
 * dm_store_commit_put flushes the store first, so an indexed commit's
 * object and everything it reaches is durable.
 */
int dm_store_commit_put(struct dm_store *s, const char *dot_id, const char *commit_id,
			const dm_oid *oid, struct dm_err *err);
/* DM_ENOTFOUND "no commit 'ID'". A pruned commit is found too. */
int dm_store_commit_get(struct dm_store *s, const char *dot_id, const char *commit_id,
			dm_oid *out, struct dm_err *err);
/*
 * Flags of an indexed commit. A PRUNED commit (dm dot prune) keeps its
 * entry and its commit object (its record: id, parents, author, time,
 * message), but nothing keeps its tree any more: garbage collection frees
 * what only it reached, and the commit cannot be read out (reset, branch,
 * diff); transfers carry its record only. A DAMAGED one (dm fsck --repair)
 * names data that is gone.
 */
#define DM_COMMIT_PRUNED  1u
#define DM_COMMIT_DAMAGED 2u
/* As dm_store_commit_get, with the entry's flags (out, flags may be NULL). */
int dm_store_commit_info(struct dm_store *s, const char *dot_id, const char *commit_id,
			 dm_oid *out, unsigned *flags, struct dm_err *err);
/* Adds flags to commits[0..n) of dot_id (absent ones are skipped; flags are
 * never taken away), in one transaction; *changed (may be NULL) gets how
 * many changed. */
int dm_store_commit_mark(struct dm_store *s, const char *dot_id, const char *const *commits,
			 size_t n, unsigned flags, size_t *changed, struct dm_err *err);
/* Up to max commit ids of dot_id starting with prefix (sorted); *out is a
 * malloc'ed array of malloc'ed strings, *n its length. */
int dm_store_commit_find(struct dm_store *s, const char *dot_id, const char *prefix, size_t max,
			 char ***out, size_t *n, struct dm_err *err);
/* Forgets every commit of dot_id (its objects stay until collected). */
int dm_store_commit_delete_dot(struct dm_store *s, const char *dot_id, struct dm_err *err);
/* The raw bytes of the distinct chunks that the indexed commits of dot_id
 * reach: about what deleting the dot frees, at most (chunks other dots
 * share are counted too). Walks the dot's history once. */
int dm_store_dot_bytes(struct dm_store *s, const char *dot_id, uint64_t *out, struct dm_err *err);
/* Forgets commits[0..n) of dot_id (absent ones are fine; their objects stay
 * until collected), in one transaction. */
int dm_store_commit_forget(struct dm_store *s, const char *dot_id, const char *const *commits,
			   size_t n, struct dm_err *err);
/* Calls fn for every indexed commit of every dot; a non-zero return stops
 * the walk and is returned. fn must not write to the commit index. */
typedef int (*dm_store_commit_fn)(const char *dot_id, const char *commit_id, const dm_oid *oid,
				  unsigned flags, void *ctx);
int dm_store_commit_foreach(struct dm_store *s, dm_store_commit_fn fn, void *ctx,
			    struct dm_err *err);

/*
 * Holds and pins: what garbage collection must not free (guard.c, gc.c;
 * docs/internals/gc.md).
 *
 * A job that puts objects, or relies on objects it looked up, until it
 * records something that reaches them (a commit in the commit index) takes
 * a hold for its whole run: dm_store_hold returns it, dm_store_unhold
 * gives it back (from any thread). A collection marks only after every
 * hold taken before it began was given back; what is looked up or written
 * after it began is kept by the collection itself.
 *
 * A pin keeps an object and everything it reaches alive across requests
 * (a transfer session's commits and what its caller sent): pins count, an
 * id pinned twice needs two unpins.
 *
 * A lease is a pin that ends by itself after ms milliseconds (for a
 * transfer whose end the server does not see: a caller without a session).
 */
uint64_t dm_store_hold(struct dm_store *s);
void dm_store_unhold(struct dm_store *s, uint64_t hold);
void dm_store_pin(struct dm_store *s, const dm_oid *id);
void dm_store_unpin(struct dm_store *s, const dm_oid *id);
void dm_store_lease(struct dm_store *s, const dm_oid *id, int64_t ms);

/*
 * Garbage collection (gc.c): frees every object that no indexed commit, no
 * pin and no staging pack reaches, online (see above), then rewrites each
 * pack whose live records fill less than live_min_pct percent of it and
 * deletes it. With dry_run it changes nothing and reports what it would
 * free. Memory: the files, trees and commits reached, exactly (about 50
 * bytes each), a Bloom filter for the chunks (10 bits each, at most
 * DM_GC_MARK_MAX_BYTES), and the ids touched while it runs. DM_EBUSY when
 * a collection is running already, or when the jobs that were running when
 * it began do not end within hold_wait_ms.
 */
#define DM_GC_MARK_MAX_BYTES (64u << 20)
#define DM_GC_LIVE_MIN_PCT   80

struct dm_store_gc_opts {
	bool dry_run;
	unsigned live_min_pct; /* 0: DM_GC_LIVE_MIN_PCT; 100 rewrites every pack with a dead record
				*/
	int hold_wait_ms;      /* <= 0: 10 minutes */
	/* When set, called where the collection may let others run: while it
	 * waits for older holds, and during the mark (never while it holds a
	 * lock of the store). It returns 1 when others ran (a deterministic
	 * scheduler's job, dm_job_yield), and then the wait for holds polls
	 * instead of sleeping; 0 when they run anyway (threads). */
	int (*yield)(void *ctx);
	void *yield_ctx;
};

struct dm_store_gc_stats {
	uint64_t objects;        /* in the index when the sweep began */
	uint64_t marked;         /* files, trees and commits walked */
	uint64_t freed;          /* objects forgotten (or that would be) */
	uint64_t freed_bytes;    /* their stored bytes (records in packs) */
	uint64_t external_freed; /* of which kept in an engine's files */
	uint64_t kept_fresh;     /* unmarked but touched while the collection ran */
	uint64_t packs;          /* packs rewritten or deleted */
	uint64_t copied_bytes;   /* live records copied out of them */
	uint64_t disk_freed;     /* bytes of pack files freed on disk, net of the copies */
	uint64_t mark_bytes;     /* memory of the mark sets */
	uint64_t ms;             /* how long it took */
	uint64_t dead_kept;      /* dead bytes left in packs still live enough to keep */
};

void dm_store_gc_opts_default(struct dm_store_gc_opts *out);
int dm_store_gc(struct dm_store *s, const struct dm_store_gc_opts *opts,
		struct dm_store_gc_stats *out, struct dm_err *err);

/*
 * Full disks. A write that would leave the store's file system with less
 * free space than the reserve is refused with DM_ENOSPC ("no space", naming
 * the file system, what is free and the reserve), as is one the file system
 * itself refuses; nothing of it is indexed, so the store stays as it was.
 * The collector's own writes may use the reserve, so that dm gc (and
 * deletes, which write nothing to packs) can always run. Free space is
 * looked up at most every 8 MiB written.
 *
 * A failed sync is never retried as if the data were safe (the kernel may
 * have dropped the dirty pages): the store then refuses every write and
 * flush (DM_EIO, saying why) until it is opened again, which cuts every
 * pack back to what the index recorded.
 */

/* The space the store takes and has, cheaply (its packs' recorded lengths
 * and one statvfs, not a walk of the index). */
struct dm_store_space {
	uint64_t packs, pack_bytes;
	uint64_t staged_packs, staged_bytes; /* received, not yet settled */
	uint64_t fs_size, fs_free;           /* its file system's size and free space */
	uint64_t fs_id;                      /* statvfs's f_fsid: which file system */
	uint64_t reserve;                    /* what writes must leave free */
};
int dm_store_space(struct dm_store *s, struct dm_store_space *out, struct dm_err *err);

/*
 * What dots cost (account.c): for each of dots[0..ndots) and each of its
 * branches, ZFS's figures over the store's commit index:
 *   referenced  bytes of the objects its commits reach (a branch: the
 *               commits its history holds, from its head through every
 *               parent; the dot: all its indexed commits);
 *   unique      of those, the bytes no other dot reaches (for a branch:
 *               no other branch of the dot either, nor a commit that only
 *               a reset keeps): what deleting it (dm dot delete, dm branch
 *               -D) and the next dm gc free;
 *   written     bytes a branch's head reaches that its nearest unpruned
 *               first-parent ancestor does not (the dot: its current
 *               branch's).
 * Bytes are as stored: a pack record's size, header included, or an
 * external object's length. A pruned commit counts only its record. The
 * walk reads every object some commit reaches, once or a few times, and
 * does not make them fresh for a running collection; cache (may be NULL;
 * a map of 8-byte values the caller keeps between calls) remembers each
 * head's written bytes. Branches past DM_ACCT_BRANCHES_MAX - 1 of a dot
 * are not known (their figures count towards the dot's only).
 * DM_ECANCELED when cancelled(ctx) says so.
 */
#define DM_ACCT_BRANCHES_MAX 64

struct dm_oidmap;

struct dm_acct_dot {
	const char *id;
	const char *current;       /* its current branch (for its written bytes) */
	size_t nbranches;
	const char *const *names;  /* each branch's name */
	const char *const *heads;  /* each branch's head ("" none) */
};

struct dm_acct_figures {
	bool known;
	uint64_t referenced, unique, written;
};

struct dm_acct_result {
	struct dm_acct_figures dot;
	struct dm_acct_figures *branches; /* the caller's, one per branch of the dot */
};

int dm_store_account(struct dm_store *s, const struct dm_acct_dot *dots, size_t ndots,
		     struct dm_acct_result *out, struct dm_oidmap *cache,
		     bool (*cancelled)(void *ctx), void *ctx, struct dm_err *err);

/* How many times the commit index changed since the store was opened (a
 * commit indexed, forgotten or marked): what dm_store_account's figures
 * depend on, with the branches' heads. */
uint64_t dm_store_commit_generation(struct dm_store *s);

/*
 * dm fsck (fsck.c): checks every object (its bytes hash to its id, it lies
 * inside its pack, it decodes as its kind, what it names is indexed), the
 * pack files against the index, and every indexed commit (its object, and
 * unless pruned, everything its tree reaches). With repair it does only
 * what is safe: drops the entries whose bytes are gone or wrong (and the
 * packs whose files are gone), stores again every object a commit needs
 * whose record is still in a pack file, and marks the commits still
 * missing data DM_COMMIT_DAMAGED. p (may be NULL) is updated as it goes
 * (atomically: another thread may read it). The store must not be collected
 * meanwhile.
 */
enum { DM_FSCK_OBJECTS = 1, DM_FSCK_PACKS, DM_FSCK_HISTORY, DM_FSCK_REPAIR };

struct dm_fsck_progress {
	int phase;
	uint64_t done, total;
};

#define DM_FSCK_MSGS    16
#define DM_FSCK_MSG_LEN 256

struct dm_store_fsck_report {
	uint64_t objects, bytes;       /* checked */
	uint64_t bad;                  /* entries whose bytes are gone or wrong */
	uint64_t missing_refs;         /* references to objects not indexed */
	uint64_t dangling;             /* objects naming missing ones, no commit reaches them */
	uint64_t packs, pack_problems; /* packs the index knows; missing or short ones */
	uint64_t packs_missing, short_packs;
	uint64_t unknown_packs;        /* pack files it does not know (the next open removes them) */
	uint64_t commits;
	uint64_t lost_commits;         /* indexed, but no commit object to show */
	uint64_t damaged;              /* commits missing data (marked or not) */
	uint64_t unmarked;             /* of which not marked DM_COMMIT_DAMAGED yet */
	uint64_t dropped, restored, marked; /* what a repair did */
	uint64_t problems;             /* what is still wrong: 0 is clean */
	size_t nmsgs;
	char msgs[DM_FSCK_MSGS][DM_FSCK_MSG_LEN]; /* the first problems found */
};

int dm_store_fsck(struct dm_store *s, bool repair, struct dm_fsck_progress *p,
		  bool (*cancelled)(void *ctx), void *ctx, struct dm_store_fsck_report *out,
		  struct dm_err *err);

/* Makes every put so far durable. */
int dm_store_flush(struct dm_store *s, struct dm_err *err);

struct dm_store_stats {
	uint64_t objects[5];   /* by kind, index 1..4 */
	uint64_t raw_bytes;    /* sum of object sizes */
	uint64_t stored_bytes; /* bytes they take in packs (external: 0) */
	uint64_t external;     /* objects kept in engine files */
	uint64_t packs;
	uint64_t pack_bytes;   /* size of all pack files */
	uint64_t staged_packs; /* of which staging packs (received, not yet settled) */
	uint64_t staged_bytes;
};

int dm_store_stats(struct dm_store *s, struct dm_store_stats *out, struct dm_err *err);

/* Calls fn for every object in the index, in id order; a non-zero return
 * from fn stops the walk and is returned. */
typedef int (*dm_store_each_fn)(const dm_oid *id, int kind, uint64_t raw_len, void *ctx);
int dm_store_foreach(struct dm_store *s, dm_store_each_fn fn, void *ctx, struct dm_err *err);

/* Rehashes every object and checks every reference (file -> chunks,
 * tree -> files, trees; commit -> tree). Counts problems into *bad_out and
 * describes the first in err; returns DM_ECORRUPT when any. */
struct dm_verify_report {
	uint64_t objects;
	uint64_t bytes;
	uint64_t bad;
};
int dm_store_verify(struct dm_store *s, struct dm_verify_report *out, struct dm_err *err);

#endif
