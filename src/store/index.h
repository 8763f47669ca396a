/*
 * index.h - the store's LMDB index (internal to the store).
 *
 * Sub-databases of the environment DIR/index:
 *     objects  id[32] -> location (struct dm_loc, encoded)
 *     packs    pack number (u32, big-endian) -> committed length (u64 LE)
 *     meta     name -> value ("chunker": min, avg, max as u32 LE)
 *     commits  dot id NUL commit id -> commit object id[32], then one byte
 *              of DM_INDEX_COMMIT_* flags when any is set
 *     staged   pack number (u32, big-endian) -> dot id: a staging pack, which
 *              holds only chunks received for that dot (store.h)
 *
 * A location is either in a pack (pack number, record offset, lengths) or in
 * an immutable external file (its path, offset, length). The path is as the
 * store recorded it: relative to the store's external root, or absolute
 * (outside that root, or written before roots existed); the index does not
 * interpret it.
 */
#ifndef DM_STORE_INDEX_H
#define DM_STORE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/hash.h"

struct dm_err;
struct dm_index;

enum dm_loc_where { DM_LOC_PACK = 1, DM_LOC_EXTERNAL = 2 };

struct dm_loc {
	uint8_t kind;
	uint8_t where;
	uint8_t flags;       /* pack record flags (DM_PACK_F_ZSTD) */
	uint32_t raw_len;
	uint32_t stored_len; /* pack: bytes after the record header */
	uint32_t pack;
	uint64_t offset;     /* pack: record start; external: data start */
};

struct dm_index_entry {
	dm_oid id;
	struct dm_loc loc;
	const char *path; /* external: the file's recorded path; NULL in a pack */
};

/* A staging pack and the dot whose received chunks it holds. */
#define DM_INDEX_DOT_MAX 128
struct dm_index_staged {
	uint32_t pack;
	char dot[DM_INDEX_DOT_MAX + 1];
};

struct dm_pack_len {
	uint32_t pack;
	uint64_t len;
};

int dm_index_open(struct dm_index **out, const char *dir, bool sync, struct dm_err *err);
void dm_index_free(struct dm_index *idx);

/* DM_ENOTFOUND when absent. For an external location the file's path is
 * appended to path_out (which may be NULL). */
int dm_index_get(struct dm_index *idx, const dm_oid *id, struct dm_loc *out,
		 struct dm_buf *path_out, struct dm_err *err);
/* Writes entries (pack or external), pack lengths and new staging packs in
 * one transaction. */
int dm_index_commit(struct dm_index *idx, const struct dm_index_entry *entries, size_t n,
		    const struct dm_pack_len *lens, size_t nlens,
		    const struct dm_index_staged *staged, size_t nstaged, struct dm_err *err);

/* All staging packs, ascending by pack number; *out is malloc'ed. */
int dm_index_staged_list(struct dm_index *idx, struct dm_index_staged **out, size_t *n,
			 struct dm_err *err);
/* Forgets packs (their lengths and staging records) in one transaction;
 * no object may point into them any more. */
int dm_index_drop_packs(struct dm_index *idx, const uint32_t *packs, size_t n, struct dm_err *err);
/* Rewrites every external path that starts with prefix (absolute, ending
 * in '/') without it, in one transaction; *n_out (may be NULL) gets how
 * many. */
int dm_index_strip_external_prefix(struct dm_index *idx, const char *prefix, size_t *n_out,
				   struct dm_err *err);

/* All committed pack lengths, ascending by pack number; *out is malloc'ed. */
int dm_index_pack_lengths(struct dm_index *idx, struct dm_pack_len **out, size_t *n,
			  struct dm_err *err);

int dm_index_meta_get(struct dm_index *idx, const char *name, struct dm_buf *out,
		      struct dm_err *err);
int dm_index_meta_put(struct dm_index *idx, const char *name, const void *data, size_t len,
		      struct dm_err *err);

/* The commit index: (dot id, commit id) -> commit object, and flags:
 * DM_INDEX_COMMIT_PRUNED (dm dot prune: the commit's record stays, its
 * tree is no longer kept) and DM_INDEX_COMMIT_DAMAGED (dm fsck --repair
 * found its data missing). Same values as store.h's DM_COMMIT_*. */
#define DM_INDEX_COMMIT_PRUNED  1u
#define DM_INDEX_COMMIT_DAMAGED 2u
int dm_index_commit_put(struct dm_index *idx, const char *dot_id, const char *commit_id,
			const dm_oid *oid, struct dm_err *err);
/* flags (may be NULL) gets the entry's DM_INDEX_COMMIT_* flags. */
int dm_index_commit_get(struct dm_index *idx, const char *dot_id, const char *commit_id,
			dm_oid *out, unsigned *flags, struct dm_err *err);
/* Sets flags on commits[0..n) of dot_id (absent ones are skipped), in one
 * transaction; *changed (may be NULL) gets how many had to change. */
int dm_index_commit_set_flags(struct dm_index *idx, const char *dot_id,
			      const char *const *commits, size_t n, unsigned flags,
			      size_t *changed, struct dm_err *err);
/* Commit ids of dot_id that start with prefix, up to max of them; *out is
 * a malloc'ed array of malloc'ed strings. */
int dm_index_commit_find(struct dm_index *idx, const char *dot_id, const char *prefix,
			 size_t max, char ***out, size_t *n, struct dm_err *err);
int dm_index_commit_delete_dot(struct dm_index *idx, const char *dot_id, struct dm_err *err);
/* Forgets commits[0..n) of dot_id (absent ones are fine), in one transaction. */
int dm_index_commit_forget(struct dm_index *idx, const char *dot_id, const char *const *commits,
			   size_t n, struct dm_err *err);

/* Calls fn for each entry in id order; a non-zero return stops the walk. */
typedef int (*dm_index_each_fn)(const dm_oid *id, const struct dm_loc *loc, void *ctx);
int dm_index_foreach(struct dm_index *idx, dm_index_each_fn fn, void *ctx, struct dm_err *err);
/* As dm_index_foreach, from the first id at or after start (NULL: the
 * first), so that a long walk can be done in pieces without holding one
 * read transaction open. */
int dm_index_foreach_from(struct dm_index *idx, const dm_oid *start, dm_index_each_fn fn, void *ctx,
			  struct dm_err *err);
/* How many objects the index holds. */
int dm_index_count(struct dm_index *idx, uint64_t *out, struct dm_err *err);
/* Deletes each entry e[i].id whose location is still e[i].loc (same where,
 * pack and offset; an entry that moved meanwhile is left alone), in one
 * transaction; *deleted (may be NULL) gets how many. */
int dm_index_delete_if(struct dm_index *idx, const struct dm_index_entry *e, size_t n,
		       size_t *deleted, struct dm_err *err);

/* The external entries whose recorded path starts with prefix: *out is a malloc'ed
 * array of *n entries whose paths are malloc'ed too (dm_index_entries_free). */
int dm_index_external_under(struct dm_index *idx, const char *prefix,
			    struct dm_index_entry **out, size_t *n, struct dm_err *err);
void dm_index_entries_free(struct dm_index_entry *e, size_t n);
/* Deletes the entries of ids, in one transaction; with prefix, only those
 * still external under prefix (others are left alone). */
int dm_index_delete_external(struct dm_index *idx, const dm_oid *ids, size_t n,
			     const char *prefix, struct dm_err *err);

/* Calls fn for every (dot id, commit id, commit object) of the commit
 * index; a non-zero return stops the walk and is returned. */
typedef int (*dm_index_commit_fn)(const char *dot_id, const char *commit_id, const dm_oid *oid,
				  unsigned flags, void *ctx);
int dm_index_commit_foreach(struct dm_index *idx, dm_index_commit_fn fn, void *ctx,
			    struct dm_err *err);

#endif
