/*
 * s3_read.h - what dotmesh's S3 reads answer, read from the store at a
 * commit (docs/api.md, "dotmesh's S3 paths"): a listing of the commit's
 * __default__ subdot, a file's bytes, a directory as a tar. Commits are
 * immutable and sealed, so any thread reads them without asking the dot.
 *
 * A read holds a pin on the object it streams (store.h) from open to free,
 * so garbage collection keeps it however slowly the client reads; nothing
 * bigger than one chunk (and one tree per directory level of a tar) is in
 * memory at once.
 */
#ifndef DM_SERVER_API_S3_READ_H
#define DM_SERVER_API_S3_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/object.h"
#include "util/buf.h"
#include "util/err.h"

struct dm_store;
struct dm_s3_read;

/* Listing: at most this many keys a page (MaxKeys); 100 unless asked. */
#define DM_S3_LIST_MAX     1000
#define DM_S3_LIST_DEFAULT 100

/* What a listing asks (dotmesh's query parameters). */
struct dm_s3_list_opts {
	const char *bucket; /* "NS-DOT", as dotmesh named it */
	const char *prefix; /* a directory key to list under, or "" */
	uint64_t max_keys;  /* 1..DM_S3_LIST_MAX */
	uint64_t page;      /* pages of max_keys skipped */
	bool recursive;     /* into subdirectories (not NonRecursive) */
	bool directories;   /* IncludeDirectories */
	bool json;          /* Format=json; XML otherwise */
};

/*
 * The tree of commit `commit` of dot dot_id (sealed) into out; DM_ENOTFOUND
 * "dot 'SHOWN' has no commit 'ID'" (shown names it) when it has none.
 */
int dm_s3_commit_tree(dm_oid *out, struct dm_store *store, const char *dot_id, const char *shown,
		      const char *commit, struct dm_err *err);

/*
 * Lists the __default__ subdot of tree as dotmesh did, into body (XML
 * ListBucketResult, or JSON): a directory's entries (names starting with
 * '.' left out), its directories first when asked, then its files, then
 * each directory's in turn when recursive; the page asked of them, and
 * how many there are in all.
 */
int dm_s3_list(struct dm_buf *body, struct dm_store *store, const dm_oid *tree,
	       const struct dm_s3_list_opts *o, struct dm_err *err);

/*
 * Opens key (checked: s3key.h) under the __default__ subdot of tree for
 * reading: a file, or a directory (read as a tar). DM_ENOTFOUND when the
 * commit has no such key; DM_EPERM for a key through or at a symbolic
 * link (never followed). *size gets the file's size, or -1 for a tar
 * (its length is known only at its end); *dir whether it is a tar.
 */
int dm_s3_read_open(struct dm_s3_read **out, struct dm_store *store, const dm_oid *tree,
		    const char *key, int64_t *size, bool *dir, struct dm_err *err);
/*
 * Up to max bytes of what the read holds, from where the last call ended,
 * into buf: the count (0 at its end), or -1 when reading failed (the
 * store lost an object: logged, and the answer is cut short).
 */
ssize_t dm_s3_read_next(struct dm_s3_read *r, char *buf, size_t max);
/* Accepts NULL. */
void dm_s3_read_free(struct dm_s3_read *r);

#endif
