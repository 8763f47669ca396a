/*
 * dot.h - a dot: its actor, its published view, and the requests it serves.
 *
 * All mutable state of a dot lives in one struct inside dot.c, touched only
 * by the dot's actor (DESIGN.md §3). Everyone else holds a struct
 * dm_dot_handle: a reference-counted pointer to the actor and to the latest
 * immutable view the actor published. RPC handlers read views without
 * locking the dot and send it requests for everything else.
 */
#ifndef DM_SERVER_DOTS_DOT_H
#define DM_SERVER_DOTS_DOT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/dots/retention.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/names.h"

struct dm_actor;
struct dm_docker;
struct dm_freezer;
struct dm_engine;
struct dm_kv;
struct dm_sched;
struct dm_store;
struct dm_wcwatch;

#define DM_DOT_ID_MAX        36
#define DM_COMMIT_ID_LEN_MAX 128

/* How long a caller waits by default for a dot's (or the registry's)
 * answer; the API's methods have this deadline unless they set one. */
#define DM_DOT_CALL_DEADLINE_MS 30000

/* What a dot needs from its node; borrowed, outlives every dot. */
struct dm_dot_env {
	struct dm_kv *kv;
	struct dm_store *store;
	struct dm_engine *engine;
	struct dm_sched *sched;
	const char *server;         /* "127.0.0.1:32607", shown in listings */
	struct dm_actor *registry;  /* told when a dot is gone */
	struct dm_docker *docker;   /* the container engine's API, or NULL */
	struct dm_freezer *freezer; /* pauses containers for a commit (with docker) */
	const char *volume_driver;  /* the plugin's name ("dm"), or NULL without one */
	/* where this node keeps its dots and names in the KV: NULL for
	 * DM_KV_ROOT (one node), "/dm/n/NODE/" in a cluster on etcd */
	const char *kv_root;
	const char *node_id; /* this node, or NULL (tests) */
	/* told, when a dot is deleted, about how many bytes of stored data
	 * that may have made garbage (space/space.h); NULL: nobody */
	void (*garbage)(void *ctx, uint64_t bytes);
	void *garbage_ctx;
	/* tells when a working copy changed (wcwatch.h), so that a dot
	 * measures its dirty bytes only then; NULL: measured when older than
	 * DM_DOT_UNWATCHED_MS */
	struct dm_wcwatch *wcwatch;
};

enum dm_dot_state { DM_DOT_CREATING, DM_DOT_READY, DM_DOT_DELETING, DM_DOT_GONE };

const char *dm_dot_state_name(int state);

struct dm_branch_view {
	char name[DM_NAME_PART_MAX + 1];
	char head[DM_COMMIT_ID_LEN_MAX + 1]; /* "" before the first commit */
	uint64_t commits;                    /* on the first-parent line to head */
	uint64_t dirty;                      /* as last measured */
	uint64_t size;
};

/* A container's use of the dot, through a volume of the Docker plugin. */
struct dm_mount_view {
	char mount_id[DM_COMMIT_ID_LEN_MAX + 1]; /* this record's id */
	char container_id[65];
	char container[256];               /* name, or the id when unknown */
	char volume[256];                  /* [ns/]dot[@branch][.subdot] */
	char branch[DM_NAME_PART_MAX + 1]; /* pinned branch, "" = follows current */
	char subdot[DM_NAME_PART_MAX + 1]; /* "__default__", "__root__" or a name */
	char of[DM_COMMIT_ID_LEN_MAX + 1]; /* the runtime mount it belongs to (its key) */
};

/* Longest path a mount of the dot answers (DM_ETOOBIG past it). */
#define DM_MOUNT_PATH_MAX 1024

/*
 * One Mount of the container runtime (the Docker plugin), from its Mount
 * to its Unmount: the dot is the one record of it. Every container record
 * (struct dm_mount_view) names the runtime mount it belongs to; they go
 * with it.
 */
struct dm_runtime_mount {
	char key[DM_COMMIT_ID_LEN_MAX + 1];
	char name[256];               /* the volume as the runtime names it */
	char path[DM_MOUNT_PATH_MAX]; /* the path the Mount was answered */
};

/* Where a fork (dm dot fork) came from: the dot it was made from, as it was
 * named then, and the head of that dot's master the fork started at. */
struct dm_fork_origin {
	char id[DM_DOT_ID_MAX + 1]; /* "" for a dot that is not a fork */
	char dot[DM_DOT_NAME_TEXT_MAX];
	char commit[DM_COMMIT_ID_LEN_MAX + 1]; /* "" for an origin without commits */
};

/* Who holds a read-only copy of a commit (engine.h's dm_engine_commit_copy:
 * `dm mount DOT@COMMIT --read-only`, the volume DOT@COMMIT); a copy no one
 * holds is removed. */
#define DM_HOLDER_MAX 1100
struct dm_commit_hold {
	char commit[DM_COMMIT_ID_LEN_MAX + 1];
	/* "link:PATH": the symlink dm mount made (held while it leads to the
	 * copy); "plugin:KEY": a runtime's mount, until its Unmount */
	char holder[DM_HOLDER_MAX];
	char path[DM_MOUNT_PATH_MAX]; /* the copy */
};

/* A user the dot's owner shares it with, and how (access.h's roles:
 * DM_ROLE_READ or DM_ROLE_WRITE). */
struct dm_collaborator {
	char user[DM_NAME_PART_MAX + 1];
	int role;
};

/* An immutable snapshot of a dot, published after every message. */
struct dm_dot_view {
	int refs; /* atomic */
	char id[DM_DOT_ID_MAX + 1];
	struct dm_dot_name name;
	int state;
	char current[DM_NAME_PART_MAX + 1]; /* the current branch */
	bool busy;                          /* a job is running */
	size_t indexing;                    /* commits taken but not yet indexed */
	/* who owns it: the user its namespace is named after, unless the dot
	 * was handed to another (dm user rm --force) */
	char owner[DM_NAME_PART_MAX + 1];
	size_t ncollaborators;
	struct dm_collaborator *collaborators; /* in the order they were added */
	size_t nmounts;
	struct dm_mount_view *mounts; /* the containers using the dot */
	size_t nruntime_mounts;
	struct dm_runtime_mount *runtime_mounts;
	size_t nbranches;
	struct dm_branch_view *branches;       /* sorted by name */
	size_t nsubdots;                       /* the current branch's subdots, as last measured: */
	char (*subdots)[DM_NAME_PART_MAX + 1]; /* its top-level directories, sorted */
	char *hooks;      /* JSON text {"pre-commit": HOOK, "post-commit": HOOK}, or NULL */
	bool strip_setid; /* its working copies never get setuid/setgid bits */
	struct dm_fork_origin fork_of; /* .id "" unless it is a fork */
	size_t nholds;
	struct dm_commit_hold *holds; /* read-only copies of commits, and who holds them */
};

void dm_dot_view_unref(struct dm_dot_view *v);
const struct dm_branch_view *dm_dot_view_branch(const struct dm_dot_view *v, const char *name);

struct dm_dot_handle;

/* The head of branch name in h's latest view into out ("" when the dot has
 * no such branch, or h is NULL). */
void dm_dot_handle_head(char *out, size_t size, struct dm_dot_handle *h, const char *name);

/* References on a handle; unref accepts NULL. */
void dm_dot_handle_ref(struct dm_dot_handle *h);
void dm_dot_handle_unref(struct dm_dot_handle *h);
/* The latest view (a new reference: dm_dot_view_unref it). Never NULL. */
struct dm_dot_view *dm_dot_handle_view(struct dm_dot_handle *h);
/* Borrowed, as long as the handle. */
struct dm_actor *dm_dot_handle_actor(struct dm_dot_handle *h);
const char *dm_dot_handle_id(const struct dm_dot_handle *h);

/* ---- requests ---- */

enum dm_dot_op {
	DM_DOT_OP_CREATE = 1, /* make the master working copy and persist the dot */
	DM_DOT_OP_COMMIT,
	DM_DOT_OP_BRANCH,   /* new branch `branch` from ref `from` */
	DM_DOT_OP_CHECKOUT, /* make `branch` current (create: from the current head) */
	DM_DOT_OP_RESET,    /* branch head and working copy := ref */
	DM_DOT_OP_DIFF,     /* from/to refs; no `to`: the working copy */
	DM_DOT_OP_REFRESH,  /* measure dirty and size of the current branch */
	DM_DOT_OP_PATH,     /* the working copy's path */
	DM_DOT_OP_DELETE,
	DM_DOT_OP_RECEIVE, /* take commits that arrived from elsewhere (a transfer) */
	DM_DOT_OP_ADD_COLLABORATOR,
	DM_DOT_OP_MOUNT,    /* the runtime mounts the dot, or names a container: record it */
	DM_DOT_OP_UNMOUNT,  /* ...and lets go of it, or of one container's record */
	DM_DOT_OP_SEALED,   /* answers once every commit is indexed (log, transfers wait) */
	DM_DOT_OP_INDEX,    /* internal: index the oldest pending commit */
	DM_DOT_OP_SET_HOOK, /* hook_name := hook (JSON text), or none when NULL */
	DM_DOT_OP_REMOVE_COLLABORATOR,
	DM_DOT_OP_SET_OWNER, /* user becomes the dot's owner (a user removed hands it over) */
	/* forget the commits no branch reaches and no reset kept after expire_before_ns */
	DM_DOT_OP_EXPIRE,
	DM_DOT_OP_DELETE_BRANCH, /* `branch` goes; with force also when no other has its commits */
	/* mark the commits `keep` does not keep pruned, on every branch */
	DM_DOT_OP_PRUNE,
	/* `branch`'s working copy may hold at most `limit` bytes (0: no
	 * limit): answers {"enforced": true} where the engine enforces it
	 * (btrfs), {"enforced": false} where it cannot (dir) */
	DM_DOT_OP_LIMIT,
	DM_DOT_OP_SET_ORIGIN,    /* a new fork records where it came from (origin) */
	/* a read-only copy of commit `from` (a ref), held by `holder`; answers
	 * {"path","commit"} */
	DM_DOT_OP_MOUNT_COMMIT,
	/* `holder` lets go of its copy (and holds whose link went are
	 * dropped); copies no one holds are removed */
	DM_DOT_OP_UNMOUNT_COMMIT,
	/* dotmesh's S3 PUT and DELETE (put_job.c): in `branch`'s __default__
	 * subdot, `key` becomes the file `src` (or, with extract, the
	 * directory the tar `src` holds), or goes when src is NULL; then the
	 * branch is committed with message, author and metadata, in one job.
	 * Answers the commit's {"id"}; DM_ENOTFOUND for a key to remove that
	 * is not there (nothing is committed then). */
	DM_DOT_OP_PUT_FILE,
};

/* How long `dm reset --hard` keeps the commits it drops (git's reflog),
 * and how many dropped heads a branch remembers (the oldest goes first). */
#define DM_DOT_RESET_KEEP_MS_DEFAULT (14LL * 24 * 3600 * 1000)
#define DM_DOT_DROPPED_MAX           32

/* One commit of a RECEIVE: its commit id and the id of its stored object. */
struct dm_dot_commit_ref {
	char id[DM_COMMIT_ID_LEN_MAX + 1];
	dm_oid oid;
};

/* One request to a dot; every string is owned (free with the request). */
struct dm_dot_req {
	int op;
	char *branch; /* NULL: the current branch */
	char *message;
	char *author;
	char *from; /* a ref */
	char *to;   /* a ref */
	bool create;
	/* RESET: the branch's reset count becomes this (a copy following its
	 * master's reset); 0: one more than it was */
	uint64_t resets;
	/* BRANCH: a copy of a branch another node of the cluster made (the
	 * replicator's), not a new branch of this node's */
	bool copy;
	size_t nmeta;
	char **meta_keys;
	char **meta_values;
	/* RECEIVE: `branch` goes from old_head ("" for none) to the first of
	 * `commits` (newest first, each the first parent of the one before;
	 * the last one's parent is a commit the dot has, or none). With stash,
	 * a diverged branch first keeps its commits on BRANCH-DIVERGED-<time>. */
	char *old_head;
	size_t ncommits;
	struct dm_dot_commit_ref *commits;
	bool stash;
	/* RECEIVE: the commits come from an admin (a push by one, or a pull an
	 * admin asked for from a dot that keeps its bits), who may put setuid
	 * and setgid files in a working copy. From anyone else, the dot strips
	 * those bits from its working copies from then on, for good. */
	bool trusted;
	/* ADD_COLLABORATOR (added, or its role changed), REMOVE_COLLABORATOR,
	 * SET_OWNER: the user; role: access.h's DM_ROLE_READ or DM_ROLE_WRITE */
	char *user;
	int role;
	/*
	 * MOUNT (branch: pinned, or NULL to follow the current one), either
	 *  - a new mount of the runtime: volume_name set, mount->of its key,
	 *    mount->mount_id the record of the container still unknown (the
	 *    same key). The same key again answers the path it has;
	 *  - or a container of the runtime mount mount->of (which must still
	 *    be there, DM_ENOTFOUND): its record mount->mount_id, added or
	 *    replaced.
	 * UNMOUNT: with mount->of empty, the runtime mount mount->mount_id
	 * ends, with every container record of it; with mount->of set, only
	 * the one record mount->mount_id goes. Unmounting twice is fine.
	 */
	struct dm_mount_view *mount;
	char *volume_name;
	/* COMMIT: the longest the containers may be frozen (0: the default,
	 * DM_DOT_MAX_FREEZE_MS_DEFAULT) */
	int64_t max_freeze_ms;
	/* SET_HOOK: "pre-commit" or "post-commit", and the hook as JSON
	 * (hooks.h) or NULL to remove it */
	char *hook_name;
	char *hook;
	/* EXPIRE: heads dropped by resets before this time (ns since the epoch)
	 * keep nothing any more */
	int64_t expire_before_ns;
	/* DELETE_BRANCH: also when no other branch has its commits */
	bool force;
	/* PRUNE: what each branch keeps (retention.h); dry_run: only say */
	struct dm_retention keep;
	bool dry_run;
	/* LIMIT: bytes, 0 for none */
	uint64_t limit;
	/* COMMIT: the id the caller chose (dotmesh's #commit-id, checked with
	 * dm_commit_id_check), or NULL for a new one */
	char *commit_id;
	/* SET_ORIGIN */
	struct dm_fork_origin *origin;
	/* MOUNT_COMMIT, UNMOUNT_COMMIT (struct dm_commit_hold's) */
	char *holder;
	/* MOUNT: a new runtime mount answers this path (a commit's read-only
	 * copy) instead of the working copy's */
	char *mount_path;
	/* PUT_FILE: the key (s3_path.h's rule), the file to place there (its
	 * path, read by the job; NULL: remove the key), whether it is a tar
	 * to extract */
	char *key;
	char *src;
	bool extract;
};

/* The hooks a dot may have (hooks.h runs one). */
#define DM_HOOK_PRE_COMMIT  "pre-commit"
#define DM_HOOK_POST_COMMIT "post-commit"

/* How long a commit may freeze the containers that use its branch unless
 * it says (dm commit --max-freeze), and the longest it may say. */
#define DM_DOT_MAX_FREEZE_MS_DEFAULT 5000
#define DM_DOT_MAX_FREEZE_MS_MAX     (600 * 1000)

/* A REFRESH measures a branch's dirty bytes again when its working copy
 * changed since the last measure (wcwatch.h), or when that measure is this
 * old (writes inotify does not see: a shared mmap, another machine); a
 * copy that is not watched (inotify's limit reached) is measured when its
 * figure is DM_DOT_UNWATCHED_MS old. */
#define DM_DOT_MEASURE_MAX_AGE_MS 10000
#define DM_DOT_UNWATCHED_MS       1000

struct dm_dot_req *dm_dot_req_new(int op);
void dm_dot_req_free(void *req);

/*
 * Creates the actor of a dot and returns the caller's handle. A dot loaded
 * from the KV (at start) is READY, or resumes its deletion when it was
 * DELETING; a new one is CREATING until its DM_DOT_OP_CREATE request is
 * served. branches, record (the dot's own record: its collaborators and
 * hooks) and pending (commits snapshotted but not yet indexed, by commit
 * id): as persisted (NULL for a new dot).
 */
int dm_dot_start(struct dm_dot_handle **out, const struct dm_dot_env *env, const char *id,
		 const struct dm_dot_name *name, int state, const char *current, json_t *branches,
		 json_t *record, json_t *pending, struct dm_err *err);

/* Sends req (taken) to the dot and waits up to timeout_ms; the result is a
 * JSON value (a new reference) on success. A dot that is gone answers
 * DM_ENOTFOUND "no such dot 'NAME'". */
int dm_dot_call(json_t **result, struct dm_dot_handle *h, struct dm_dot_req *req, int timeout_ms,
		struct dm_err *err);

/*
 * The first-parent line of commit ids from head back to the root (newest
 * first), read from the store; at most max ids (DM_ETOOBIG past it). *out
 * is a malloc'ed array of malloc'ed strings. Commits are immutable, so any
 * thread may call this.
 */
int dm_dot_chain(char ***out, size_t *n, struct dm_store *store, const char *dot_id,
		 const char *head, size_t max, struct dm_err *err);
void dm_dot_chain_free(char **ids, size_t n);

/*
 * Is subdot (one name) of the working copy at root a real directory? It is
 * opened from root's fd with O_NOFOLLOW | O_DIRECTORY, so the kernel, not
 * a string check, refuses a symbolic link, a file or anything else there:
 * DM_EPERM "subdot 'db' of dot 'alice/secret' is a symbolic link, not a
 * directory: dm will not mount it". make: a missing subdot is made (mkdirat
 * from root's fd); otherwise missing is DM_ENOTFOUND. dot names the dot in
 * messages. Every path dmd answers for a subdot passes this first.
 */
int dm_dot_subdot_check(const char *root, const char *subdot, const char *dot, bool make,
			struct dm_err *err);

/* Waits (up to timeout_ms) until every commit of the dot is indexed, so
 * its history can be read from the store; at once when none is pending. */
int dm_dot_wait_sealed(struct dm_dot_handle *h, int timeout_ms, struct dm_err *err);

/*
 * KV keys of a dot: ROOT "names/NS/NAME" and ROOT "dots/ID[/...]", where
 * ROOT is the env's kv_root. On one node that is DM_KV_ROOT, so the keys
 * are DM_KV_NAMES... and DM_KV_DOTS...; in a cluster each node has its own
 * root and its own copy of every dot (docs/internals/cluster.md).
 */
#define DM_KV_ROOT "/dm/"
/* Branch masters (DM_KV_MASTERS ID/BRANCH = node id) and deleted dots
 * (DM_KV_DELETED ID), shared by the nodes. */
#define DM_KV_MASTERS "/dm/masters/"
#define DM_KV_DELETED "/dm/deleted/"
#define DM_KV_NAMES   DM_KV_ROOT "names/"
#define DM_KV_DOTS    DM_KV_ROOT "dots/"
/* Writes ROOT + the formatted rest into out (size bytes). */
void dm_dot_kv_key(char *out, size_t size, const struct dm_dot_env *env, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
const char *dm_dot_kv_root(const struct dm_dot_env *env);

/* The JSON form of a view, as docs/api.md shows (a new reference). */
json_t *dm_dot_view_json(const struct dm_dot_view *v, const char *server);

#endif
