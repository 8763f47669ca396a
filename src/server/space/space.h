/*
 * space.h - the node's disk space: garbage collection of its store, run as
 * a job of one actor (docs/internals/gc.md). Later also what each dot
 * costs and the node's summary.
 *
 * The actor runs at most one collection at a time; a request that comes
 * while one runs is refused (`busy`). It also starts one by itself when
 * deleted dots have made about auto_bytes of garbage since the last. A collection never touches a
 * dot's state: what it must keep it learns from the store (indexed commits, holds, pins; store.h).
 */
#ifndef DM_SERVER_SPACE_SPACE_H
#define DM_SERVER_SPACE_SPACE_H

#include <jansson.h>
#include <stdbool.h>

#include "store/store.h"

struct dm_err;
struct dm_sched;
struct dm_space;
struct dm_ticket;

struct dm_space_env {
	struct dm_store *store;
	struct dm_sched *sched;
	/* a collection starts by itself once deletes have made about this many
	 * bytes of garbage since the last one (0: never) */
	uint64_t auto_bytes;
};

#define DM_SPACE_AUTO_BYTES_DEFAULT (1ull << 30)

/* env is copied; its store and scheduler must outlive the actor (the
 * scheduler stops it). */
int dm_space_open(struct dm_space **out, const struct dm_space_env *env, struct dm_err *err);
/* After the scheduler stopped; accepts NULL. */
void dm_space_free(struct dm_space *sp);

/* Asks for one collection without waiting: *t is answered as
 * dm_space_gc says (for a caller that steps a deterministic scheduler);
 * the result is dm_actor_send_request's. */
int dm_space_gc_send(struct dm_space *sp, bool dry_run, struct dm_ticket **t);

/* Runs one collection (dry_run: counts only) and waits up to timeout_ms for
 * it; out receives its figures. DM_EBUSY when one is running. */
int dm_space_gc(struct dm_space *sp, bool dry_run, int timeout_ms, struct dm_store_gc_stats *out,
		struct dm_err *err);

/* About bytes of stored data became garbage (a dot was deleted): counted
 * towards the automatic collection. Does not wait. Fits
 * dm_dot_env.garbage (ctx: the struct dm_space). */
void dm_space_note_garbage(void *sp, uint64_t bytes);

/* What the last collection (or dry run) found, answered at once even while
 * one runs: *when_ns 0 when none ran since dmd started. */
struct dm_space_last {
	int64_t when_ns; /* when it ended, ns since the epoch */
	bool dry_run;
	struct dm_store_gc_stats st;
	uint64_t garbage;    /* estimated since the last collection */
	uint64_t auto_bytes; /* the automatic collection's threshold (0: off) */
	uint64_t automatic;  /* collections started by the threshold since dmd started */
};
int dm_space_last(struct dm_space *sp, struct dm_space_last *out, struct dm_err *err);

/*
 * What the dots cost (dm_store_account), cached: the figures of the last
 * accounting, computed in a job of the actor, are answered at once; they
 * are current while the commit index, every dot's branches and heads (the
 * input, which the caller takes from the registry; key is its digest) and
 * the store's collections are unchanged. When they are not current, an
 * accounting of the given input starts (unless one runs), and the caller
 * gets the last figures, marked stale, or none. So a dm dot show never
 * walks the store itself, and no walk starts while nothing changed.
 */
struct dm_space_acct_in {
	size_t ndots;
	struct dm_acct_dot *dots; /* every string owned (dm_space_acct_in_free) */
	dm_oid key;
};
void dm_space_acct_in_free(struct dm_space_acct_in *in);
/* *out: the dot's figures ({"referenced","unique","written","branches":
 * {NAME:{...}}}, a new reference) or NULL when none were computed for it;
 * *fresh: whether they are those of the input given; *as_of_ns: when they
 * were computed. Takes in. */
int dm_space_account(struct dm_space *sp, struct dm_space_acct_in *in, const char *dot_id,
		     json_t **out, bool *fresh, int64_t *as_of_ns, struct dm_err *err);

/*
 * dm fsck, as a job of the actor: never while a collection runs (each
 * refuses the other, `busy`). dots: [{"id","name","branches":[{"name",
 * "head","pending","path"}]}] (taken): each branch's head must be in the
 * store unless pending, and its working copy (path) must be there. A run
 * already going is joined (*run gets its number).
 */
int dm_space_fsck_start(struct dm_space *sp, bool repair, json_t *dots, uint64_t *run,
			struct dm_err *err);
/* Where run `run` is: *report (a new reference) once it ended (NULL while
 * it runs, with *progress). DM_ENOTFOUND for a run that is not the
 * current or last one. */
int dm_space_fsck_poll(struct dm_space *sp, uint64_t run, json_t **report,
		       struct dm_fsck_progress *progress, struct dm_err *err);

#endif
