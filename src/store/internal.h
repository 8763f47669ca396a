/*
 * internal.h - the store's private state, shared by the files of src/store
 * that implement store.h (src/store only; nothing outside includes it).
 *
 *   store.c     packs, the index, and the core put, get and flush
 *   external.c  objects kept as bytes of an engine's immutable files
 *   staging.c   staging packs: chunks received for one dot
 *
 * Invariants of struct dm_store (each file keeps those of its part):
 *   - Every object in `pending` has its record fully written to a pack at
 *     its location, or is an external object (its location's `pack` is the
 *     offset of its recorded path in ext_paths); pending holds exactly the
 *     objects put since the last flush.
 *   - Every staging pack the index knows is in `staged` (with its dot); one
 *     not yet `recorded` joins the index's staging records at the next
 *     flush. `stages` holds the staging pack being appended to per dot.
 *   - `mu` guards pending, ext_paths, the writers (cur and stages), the
 *     staged list, the dirty-pack list and the read-descriptor table.
 *     Hashing and compression happen outside it. `packs_rw` is held shared
 *     while a pack descriptor is read and exclusively while a dropped
 *     pack's descriptor is closed.
 */
#ifndef DM_STORE_INTERNAL_H
#define DM_STORE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/index.h"
#include "store/oidmap.h"
#include "store/pack.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/hash.h"

struct dm_err;

#define DM_STORE_FAILED_MAX 512

/* A pack open for appending: 0 / -1 when none. */
struct writer {
	uint32_t pack;
	int fd;
	uint64_t end;
};

struct stage {
	char dot[DM_INDEX_DOT_MAX + 1];
	struct writer w;
};

struct staged_pack {
	struct dm_index_staged rec;
	bool recorded; /* in the index's staging records */
};

/*
 * What garbage collection must not free while it runs (guard.c, gc.md):
 * phase OFF (no collection), TRACK (every id looked up or written is
 * `fresh`: kept whatever the mark says) and SWEEP (the mark is final: an id
 * neither marked nor fresh is condemned, and a lookup answers it absent, so
 * that a writer stores it again instead of relying on it). Holds count the
 * jobs that may rely on what they looked up before a collection began:
 * those of the epoch before the current one must end before the mark.
 * Pins are ids that a transfer session relies on across requests. All of
 * it is guarded by mu; `phase` is also read without it (atomically) by
 * lookups outside a collection.
 */
enum { DM_GC_OFF = 0, DM_GC_TRACK = 1, DM_GC_SWEEP = 2 };

struct dm_bloom;

struct gc_guard {
	int phase;
	bool running;                       /* one collection at a time */
	pthread_t thread;                   /* the collector: its own reads are not tracked */
	struct dm_oidmap fresh;             /* set */
	const struct dm_oidmap *live_meta;  /* SWEEP: files, trees, commits marked (exact) */
	const struct dm_bloom *live_chunks; /* SWEEP: chunks marked (may err towards live) */
	uint64_t epoch;
	uint64_t holds_cur, holds_old; /* holds taken in this epoch, in the one before */
	pthread_cond_t holds_cv;       /* signalled when holds_old reaches 0 */
	struct dm_oidmap pins;         /* id -> uint32_t count */
	struct dm_oidmap leases;       /* id -> int64_t monotonic ns it lasts until */
};

struct dm_store {
	char *dir;
	struct dm_store_opts opts;
	struct dm_index *idx;
	int lock_fd;

	pthread_mutex_t mu;
	struct dm_oidmap pending; /* id -> struct dm_loc */
	struct dm_buf ext_paths;  /* paths of pending external objects, each NUL-ended;
				   * their loc.pack is the offset of theirs */
	size_t ext_last;          /* offset of the last path added */
	uint32_t last_pack;       /* highest pack number in use; 0: none yet */
	struct writer cur;        /* the ordinary pack being appended to */
	bool staging;             /* received chunks go to staging packs */
	struct stage *stages;     /* one staging pack being appended to per dot */
	size_t nstages;
	struct staged_pack *staged; /* every staging pack */
	size_t nstaged;
	char *ext_root; /* absolute, no trailing '/'; NULL: none */
	size_t ext_root_len;
	pthread_rwlock_t packs_rw;
	struct dm_pack_len *dirty; /* packs appended to since the last flush */
	size_t ndirty;
	uint64_t unflushed;
	int *read_fds; /* by pack number; -1 when not open */
	size_t nread_fds;
	struct gc_guard gc;
	uint64_t commit_gen; /* changes of the commit index (atomic) */
	/* full disks and failed syncs (store.c; under mu) */
	char failed[DM_STORE_FAILED_MAX]; /* why writes stopped; "" while they may go on */
	uint64_t space_checked;           /* bytes appended since free space was looked up */
	uint64_t space_free;              /* free bytes then, minus what was appended since */
	uint64_t space_reserve;           /* the reserve, in bytes */
	bool space_known;
	/* held by whatever moves or forgets index entries in bulk: the
	 * collector's sweep and pack rewrites, dm_store_staging_end,
	 * dm_store_external_release; never while waiting for holds */
	pthread_mutex_t maint_mu;
};

/* ---- store.c ---- */

/* The path of pack number pack; -1 when it does not fit in size. */
int dm_store_pack_path(char *out, size_t size, const struct dm_store *s, uint32_t pack);
/* The entry of pack in lens (n of them), or NULL. */
const struct dm_pack_len *dm_store_find_len(const struct dm_pack_len *lens, size_t n,
					    uint32_t pack);
/* Where object id is (pending first, then the index); an external one's
 * recorded path is appended to path_out (may be NULL). DM_ENOTFOUND. */
int dm_store_lookup(struct dm_store *s, const dm_oid *id, struct dm_loc *out,
		    struct dm_buf *path_out, struct dm_err *err);
/* Appends a record unless its object is pending already (to dot
 * stage_dot's staging pack when not NULL, else the current pack), then
 * flushes when enough has been written since the last flush. */
int dm_store_append_record(struct dm_store *s, const struct dm_pack_rec *rec, const void *bytes,
			   const char *stage_dot, struct dm_err *err);
/* What dm_store_evacuate_pack copied. */
struct dm_evacuated {
	uint64_t records;
	uint64_t raw_bytes;    /* the objects' raw lengths */
	uint64_t stored_bytes; /* their records as stored, headers included */
};
/* Copies every record of pack (committed length len) that the index still
 * places there, at that offset, to the end of the current pack, as stored;
 * out (zeroed first) counts them. The caller flushes, and says which pack
 * failed. */
int dm_store_evacuate_pack(struct dm_store *s, uint32_t pack, uint64_t len,
			   struct dm_evacuated *out, struct dm_err *err);
/* Compresses (when that pays) and appends object id to the current pack;
 * its pending location then wins over any it had. */
int dm_store_write_record(struct dm_store *s, const dm_oid *id, enum dm_obj_kind kind,
			  const void *data, size_t len, struct dm_err *err);
/* dm_store_put_stored, into dot stage_dot's staging packs when not NULL. */
int dm_store_put_stored_to(struct dm_store *s, const struct dm_pack_rec *rec, const void *bytes,
			   const char *stage_dot, struct dm_err *err);

/* ---- external.c ---- */

/* The form in which the store records the path of an external file:
 * relative to ext_root when the file lies under it, else as given. */
const char *dm_store_record_path(const struct dm_store *s, const char *path);
/* Reads len bytes at off of path into out (replacing its contents) and
 * sets *same to whether they hash to id. */
int dm_store_read_and_hash(const char *path, uint64_t off, uint32_t len, const dm_oid *id,
			   struct dm_buf *out, bool *same, struct dm_err *err);
/* Makes loc (external, its path not yet set) object id's pending location,
 * with path as recorded; caller holds mu. */
int dm_store_pend_external(struct dm_store *s, const dm_oid *id, struct dm_loc *loc,
			   const char *path, struct dm_err *err);
/* DM_EINVAL unless kind, len and path (absolute) suit an external object. */
int dm_store_check_external(enum dm_obj_kind kind, const char *path, uint32_t len,
			    struct dm_err *err);
/* Appends the bytes of external object loc, whose recorded path is rec,
 * to out. */
int dm_store_read_external(const struct dm_store *s, const char *rec, const struct dm_loc *loc,
			   struct dm_buf *out, struct dm_err *err);

/* ---- guard.c ---- */

void dm_store_guard_init(struct dm_store *s);
void dm_store_guard_release(struct dm_store *s);
/* Whether the calling thread is a running collection's; caller holds mu. */
bool dm_store_guard_is_collector(const struct dm_store *s);
/* Notes that id was written (put, or recorded as external); caller holds mu. */
void dm_store_guard_wrote(struct dm_store *s, const dm_oid *id);
/* Notes that id is being looked up; caller holds mu. */
void dm_store_guard_looked(struct dm_store *s, const dm_oid *id);
/* Lookups of the calling thread do not make ids fresh while on: for a
 * reader that never builds on what it reads (dm_store_account). */
void dm_store_quiet_reads(bool on);
/* Whether the collector has condemned id found at loc (SWEEP only): a
 * lookup must answer it absent. Caller holds mu. */
bool dm_store_guard_condemned(struct dm_store *s, const dm_oid *id, const struct dm_loc *loc);

/* ---- staging.c ---- */

/* Loads the index's staging records into s->staged (at open). */
int dm_store_load_staged(struct dm_store *s, struct dm_err *err);
/* The staging pack numbered pack, or NULL; caller holds mu. */
struct staged_pack *dm_store_find_staged(struct dm_store *s, uint32_t pack);
/* The writer of dot's staging packs (made when missing); caller holds mu. */
struct writer *dm_store_stage_writer(struct dm_store *s, const char *dot);
/* Notes that new pack number pack is a staging pack of dot (not yet
 * recorded); caller holds mu. */
void dm_store_add_staged_pack(struct dm_store *s, uint32_t pack, const char *dot);

#endif
