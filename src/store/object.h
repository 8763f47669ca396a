/*
 * object.h - the four kinds of object in dm's history and their encoding.
 *
 *   chunk   raw bytes of a piece of file content (no header)
 *   file    size plus extents (offset, length, chunk id); gaps are holes
 *   tree    one directory: entries sorted by name (bytewise)
 *   commit  dot id, commit id, parents, tree id, author, time, message,
 *           metadata (key=value)
 *
 * The id of every object is the SHA-256 of its encoded bytes. File, tree and
 * commit encodings start with a 4-byte header: 'd' 'm', the kind, and the
 * format version (DM_OBJ_VERSION); docs/internals/store.md defines the rest.
 *
 * Decoders take bytes from disk or the network and trust none of them:
 * every count and length is bounded, names are checked, extents must be in
 * order and inside the file, entries sorted and unique. A decoded object
 * owns its memory; _release frees it.
 *
 * What an object names is said once, here (dm_object_each_ref): a file
 * names its chunks, a tree the files and subtrees of its entries, a commit
 * its tree (its parents are commit ids, not object ids). Every walk over
 * the history (verify, admission, reachability, transfers, unstaging)
 * goes through it, so a new kind of object or reference is added here.
 */
#ifndef DM_STORE_OBJECT_H
#define DM_STORE_OBJECT_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/hash.h"

struct dm_err;

enum dm_obj_kind {
	DM_OBJ_CHUNK = 1,
	DM_OBJ_FILE = 2,
	DM_OBJ_TREE = 3,
	DM_OBJ_COMMIT = 4,
};

#define DM_OBJ_VERSION 1

/* Limits on what a decoder accepts. */
#define DM_OBJ_MAX_SIZE      (64u * 1024 * 1024) /* any encoded file/tree/commit */
#define DM_FILE_MAX_SIZE     (1ull << 50)        /* 1 PiB */
#define DM_TREE_MAX_ENTRIES  (1u << 20)
#define DM_NAME_MAX          255u
#define DM_SYMLINK_MAX       4095u
#define DM_COMMIT_MAX_PARENTS 16u
#define DM_COMMIT_ID_MAX     128u
#define DM_COMMIT_AUTHOR_MAX 1024u
#define DM_COMMIT_MSG_MAX    (64u * 1024)
#define DM_COMMIT_MAX_META   256u
#define DM_META_KEY_MAX      128u
#define DM_META_VALUE_MAX    (4u * 1024)

/* "chunk", "file", "tree", "commit", or "unknown". */
const char *dm_obj_kind_name(int kind);
/* The kind of an encoded object from its header: DM_OBJ_FILE, _TREE or
 * _COMMIT, or 0 when data does not start with a valid header. */
int dm_obj_peek_kind(const void *data, size_t len);

/* ---- file ---- */

struct dm_extent {
	uint64_t offset;
	uint32_t len;
	dm_oid id;
};

struct dm_file {
	uint64_t size;
	size_t n;
	struct dm_extent *ext; /* sorted by offset, non-overlapping, inside size */
};

int dm_file_encode(struct dm_buf *out, const struct dm_file *f, struct dm_err *err);
int dm_file_decode(struct dm_file *out, const void *data, size_t len, struct dm_err *err);
void dm_file_release(struct dm_file *f);

/* ---- tree ---- */

enum dm_entry_type {
	DM_ENTRY_FILE = 1,
	DM_ENTRY_DIR = 2,
	DM_ENTRY_SYMLINK = 3,
};

struct dm_tree_entry {
	char *name;          /* NUL-terminated; no '/', not "." or ".." */
	uint8_t type;        /* enum dm_entry_type */
	uint32_t mode;       /* permission bits, 07777 */
	uint32_t uid, gid;
	int64_t mtime_ns;
	uint64_t size;       /* file: content size; symlink: target length; dir: 0 */
	dm_oid id;           /* file: file object; dir: tree object; symlink: zero */
	char *target;        /* symlink only, NUL-terminated; NULL otherwise */
};

struct dm_tree {
	size_t n;
	struct dm_tree_entry *e; /* sorted by name, bytewise, unique */
};

/* Checks a single path component: 1..DM_NAME_MAX bytes, no '/' or NUL,
 * not "." or "..". DM_EINVAL with a message naming it otherwise. */
int dm_tree_name_check(const char *name, size_t len, struct dm_err *err);
/* Sorts entries by name (the encoder requires sorted, unique names). */
void dm_tree_sort(struct dm_tree *t);
int dm_tree_encode(struct dm_buf *out, const struct dm_tree *t, struct dm_err *err);
int dm_tree_decode(struct dm_tree *out, const void *data, size_t len, struct dm_err *err);
void dm_tree_release(struct dm_tree *t);
/* Binary search by name; NULL when absent. */
const struct dm_tree_entry *dm_tree_find(const struct dm_tree *t, const char *name);

/* ---- commit ---- */

struct dm_meta {
	char *key;   /* starts with a lowercase letter: [a-z][A-Za-z0-9_.-]* */
	char *value;
};

struct dm_commit {
	char *dot_id;
	char *commit_id;
	size_t nparents;
	char **parents;      /* commit ids */
	dm_oid tree;
	char *author;
	int64_t time_ns;     /* since the epoch, UTC */
	char *message;
	size_t nmeta;
	struct dm_meta *meta; /* sorted by key, unique */
};

/* Checks a metadata key; DM_EINVAL with a message otherwise. */
int dm_meta_key_check(const char *key, struct dm_err *err);
int dm_commit_encode(struct dm_buf *out, const struct dm_commit *c, struct dm_err *err);
int dm_commit_decode(struct dm_commit *out, const void *data, size_t len, struct dm_err *err);
void dm_commit_release(struct dm_commit *c);

/* ---- any object, and what it names ---- */

/* A decoded object of any kind; a chunk has no fields. */
struct dm_object {
	int kind; /* enum dm_obj_kind */
	union {
		struct dm_file file;
		struct dm_tree tree;
		struct dm_commit commit;
	};
};

/* One object that another names, as the naming object says it is. */
struct dm_obj_ref {
	const dm_oid *id;
	int kind;                          /* DM_OBJ_CHUNK, DM_OBJ_FILE or DM_OBJ_TREE */
	uint32_t len;                      /* a chunk: its extent's length; else 0 */
	const struct dm_extent *ext;       /* named by a file: the extent; else NULL */
	const struct dm_tree_entry *entry; /* named by a tree: the entry; else NULL */
};

/* Called once per reference; a non-zero return stops the walk and is
 * returned by it. ref and what it points to live until the call returns
 * (the decoded object's, not the encoded bytes'). */
typedef int (*dm_obj_ref_fn)(void *ctx, const struct dm_obj_ref *ref);

/* Decodes data as an object of the given kind (a chunk always decodes: its
 * bytes are not interpreted); the decoders' errors, DM_EINVAL for an
 * unknown kind. out is safe to release either way. */
int dm_object_decode(struct dm_object *out, int kind, const void *data, size_t len,
		     struct dm_err *err);
void dm_object_release(struct dm_object *o);
/* Calls fn for every object o names, in the order o names them: a file's
 * chunks (one call per extent, so a chunk used twice is named twice), a
 * tree's files and subtrees (symlinks name nothing), a commit's tree. */
int dm_object_each_ref(const struct dm_object *o, dm_obj_ref_fn fn, void *ctx);
/* dm_object_decode, dm_object_each_ref and dm_object_release in one: a
 * decoder's error, or what fn returned, or 0. */
int dm_object_refs(int kind, const void *data, size_t len, dm_obj_ref_fn fn, void *ctx,
		   struct dm_err *err);

#endif
