/*
 * dot_internal.h - what the three files of a dot share: dot.c (the actor
 * and its transitions), dot_jobs.c (the slow work, on the worker pool) and
 * dot_handle.c (handles, published views, requests). Not for other modules.
 */
#ifndef DM_SERVER_DOTS_DOT_INTERNAL_H
#define DM_SERVER_DOTS_DOT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "server/dots/dot.h"
#include "store/object.h"

struct dm_engine_progress;
struct dm_job;
struct dm_dot_job_in;
struct dm_dot_job_out;
struct dm_wcwatch_entry;

/* Where a dot publishes its views: shared by the dot and its handle, so
 * that neither keeps the other alive. mu guards only the pointer swap. */
struct dm_dot_slot {
	atomic_int refs;
	pthread_mutex_t mu;
	struct dm_dot_view *view;
};

/* The last reference to a handle stops the actor: a gone dot keeps
 * answering "no such dot" for as long as anyone can still send to it. */
struct dm_dot_handle {
	atomic_int refs;
	char id[DM_DOT_ID_MAX + 1];
	struct dm_actor *actor;
	struct dm_dot_slot *slot;
};

struct dm_dot_slot *dm_dot_slot_new(void);
void dm_dot_slot_unref(struct dm_dot_slot *s);
/* Replaces the published view with v (taken). */
void dm_dot_slot_publish(struct dm_dot_slot *s, struct dm_dot_view *v);
/* The published view, borrowed: only for the dot's own actor, the one writer. */
struct dm_dot_view *dm_dot_slot_peek(struct dm_dot_slot *s);

/*
 * The slow work of one operation, on a worker (dot_jobs.c): reads only in,
 * fills out, returns 0 or an error code with detail in err. The table of
 * operations in dot.c names the one each operation runs.
 */
typedef int dm_dot_job_fn(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
			  struct dm_engine_progress *p, struct dm_err *err);

dm_dot_job_fn dm_dot_job_create;        /* CREATE: the master working copy */
dm_dot_job_fn dm_dot_job_commit;        /* COMMIT: seal, or snapshot (out->pending) */
dm_dot_job_fn dm_dot_job_index;         /* INDEX: seal pending commit in->head */
dm_dot_job_fn dm_dot_job_reset;         /* RESET: branch and working copy := in->from */
dm_dot_job_fn dm_dot_job_branch;        /* BRANCH: new_branch from in->from */
dm_dot_job_fn dm_dot_job_checkout;      /* CHECKOUT: switch_only, or -b (as BRANCH) */
dm_dot_job_fn dm_dot_job_diff;          /* DIFF: in->from..in->to */
dm_dot_job_fn dm_dot_job_refresh;       /* REFRESH: dirty, size, subdots */
dm_dot_job_fn dm_dot_job_receive;       /* RECEIVE: take in->received */
dm_dot_job_fn dm_dot_job_delete;        /* DELETE: the dot's data and records */
dm_dot_job_fn dm_dot_job_expire;        /* EXPIRE: forget commits in->roots do not reach */
dm_dot_job_fn dm_dot_job_delete_branch; /* DELETE_BRANCH: its working copy (merged, or force) */
dm_dot_job_fn dm_dot_job_prune;         /* PRUNE: mark what in->keep does not keep pruned */
dm_dot_job_fn dm_dot_job_limit;    /* LIMIT: the working copy's size limit := in->limit */
/* MOUNT_COMMIT: a read-only copy of in->from; the copies of other commits
 * than it and in->roots go */
dm_dot_job_fn dm_dot_job_mount_commit;
dm_dot_job_fn dm_dot_job_sweep_copies; /* UNMOUNT_COMMIT: copies of commits not in in->roots go */
dm_dot_job_fn dm_dot_job_put_file;     /* PUT_FILE: in->key := in->src (or gone), then COMMIT */

/* A job's input: copies of all it reads, so the dot may change meanwhile. */
struct dm_dot_job_in {
	int op;
	dm_dot_job_fn *run; /* the operation's job, from the table in dot.c */
	const char *kind;   /* and its kind (dm_job_set_kind) */
	struct dm_dot_env env;
	char dot_id[DM_DOT_ID_MAX + 1];
	struct dm_dot_name name;
	char branch[DM_NAME_PART_MAX + 1];     /* the branch acted on */
	char new_branch[DM_NAME_PART_MAX + 1]; /* BRANCH, CHECKOUT -b */
	char head[DM_COMMIT_ID_LEN_MAX + 1];   /* the branch's head ("" none) */
	bool has_tree;
	dm_oid tree;
	uint64_t commits;
	char *message, *author, *from, *to;
	bool to_working_copy;
	size_t nmeta;
	char **meta_keys, **meta_values;
	/* RECEIVE */
	bool branch_exists;
	char *old_head;
	size_t nreceived;
	struct dm_dot_commit_ref *received;
	bool stash;
	bool wc_shared; /* RECEIVE: containers may use the working copy meanwhile */
	bool strip_setid;                      /* the working copy gets no setuid/setgid bits */
	char stash_name[DM_NAME_PART_MAX + 1]; /* chosen by the actor */
	/* RESET, CHECKOUT: containers to stop before and start after; COMMIT:
	 * to freeze (their names beside) */
	size_t ncontainers;
	char (*containers)[65];
	char (*container_names)[256];
	/* COMMIT: the dot's hooks (JSON text, or NULL), the freeze's bound, and
	 * whether the branch is the current one (containers that mount the dot
	 * without a branch use it) */
	char *hooks;
	int64_t max_freeze_ms;
	bool is_current;
	bool switch_only; /* CHECKOUT of an existing branch: only switch */
	/* INDEX: seal commit `head` (parent old_head) taken at time_ns */
	int64_t time_ns;
	/* EXPIRE: the commits whose history stays; DELETE_BRANCH: the heads of
	 * the other branches */
	size_t nroots;
	char (*roots)[DM_COMMIT_ID_LEN_MAX + 1];
	bool force; /* DELETE_BRANCH */
	/* PRUNE: roots are the branches' heads, root_names their names */
	char (*root_names)[DM_NAME_PART_MAX + 1];
	struct dm_retention keep;
	bool dry_run;
	uint64_t limit; /* LIMIT */
	/* COMMIT: the id chosen by the caller, "" for a new one */
	char commit_id[DM_COMMIT_ID_LEN_MAX + 1];
	/* REFRESH: the change signal of the branch's working copy (a
	 * reference), or NULL */
	struct dm_wcwatch_entry *watch;
	/* PUT_FILE: the request's key, src and extract */
	char *key, *src;
	bool extract;
};

struct dm_dot_job_out {
	char head[DM_COMMIT_ID_LEN_MAX + 1];
	bool has_tree;
	dm_oid tree;
	uint64_t commits;
	uint64_t dirty, size;
	bool sized; /* size was measured (a refresh); otherwise keep the old one */
	/* RECEIVE with stash: the branch that now holds the receiver's commits */
	bool switched; /* CHECKOUT of an existing branch: the stable path moved */
	bool pending;  /* COMMIT: a snapshot was taken; the commit is sealed later */
	json_t *meta;  /* COMMIT: dm's own metadata (how it was taken), for a pending one */
	int64_t time_ns;
	bool stashed;
	char stash_name[DM_NAME_PART_MAX + 1];
	char stash_head[DM_COMMIT_ID_LEN_MAX + 1];
	dm_oid stash_tree;
	bool stash_has_tree;
	uint64_t stash_commits;
	size_t nsubdots; /* REFRESH: the branch's top-level directories, sorted */
	char (*subdots)[DM_NAME_PART_MAX + 1];
	/* REFRESH: what the measure stands for: the head it was against (in
	 * head, has_tree), when it began (monotonic) and the watch's token
	 * then (0: none; wcwatch.h) */
	int64_t measured_ns;
	uint64_t token;
	json_t *json;     /* result for the requester, when the op has one */
	json_t *warnings; /* what went wrong after the change was made, or NULL */
	char errmsg[DM_ERR_MSG_MAX];
};

/*
 * Writes the commit object of commit `id` (parent: `parent` or none) with
 * tree, in's message, author and metadata, and the entries of extra (an
 * object of strings, dm's own keys; may be NULL), and indexes it: the
 * commit is sealed.
 */
int dm_dot_seal_commit(struct dm_dot_job_in *in, const char *id, const char *parent,
		       const dm_oid *tree, int64_t time_ns, json_t *extra, struct dm_err *err);

void dm_dot_job_in_free(void *in);
void dm_dot_job_out_free(void *out);
/* What a worker runs for every job: in->run; result: a struct dm_dot_job_out. */
void dm_dot_run_job(struct dm_job *job);
/* Reads commit `id` of dot `dot_id` from the store. */
int dm_dot_load_commit(struct dm_commit *out, struct dm_store *store, const char *dot_id,
		       const char *id, struct dm_err *err);

#endif
