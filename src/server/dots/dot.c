/*
 * dots/ — the dot actor, its jobs, handles/views, and the registry.
 * dot.c (this file) is the actor: all mutable state of one dot (struct
 * dot), every change to it, and what it keeps in the KV. dot_jobs.c is its
 * slow work, run on the worker pool; dot_handle.c the handles, published
 * views and requests through which everyone else reaches it; registry.c
 * the one map from dot id to dot; docker.c the container engine's API that
 * jobs stop and start containers with; wcwatch.c the signal that a working
 * copy changed, so that dirty bytes are measured only then. dot_internal.h
 * is what the dot's three files share.
 *
 * Invariants:
 *   - struct dot is touched only by its actor's handler (one thread at a
 *     time); everything else sees immutable views published through the
 *     handle, and sends requests.
 *   - At most one job runs per dot, plus the INDEX job that seals pending
 *     commits. Requests that need a job while one runs wait in `queue`, in
 *     arrival order. A job owns copies of everything it reads (job_input
 *     makes them); it reports back with its DONE message and nothing else.
 *   - Every request is answered exactly once: directly, when its job is
 *     done, or "no such dot" when the dot is deleted before it ran.
 *   - Deletion cancels the running jobs and waits for their DONE messages
 *     before removing any data; only then is the dot GONE.
 *   - A head without a tree is a pending commit; the KV records the two
 *     together (persist_pending, one transaction).
 *
 * With an engine that snapshots (btrfs), a commit is two steps: its job
 * takes the snapshot and the branch head moves at once to the new commit,
 * recorded as pending (in the KV too); the INDEX job, one at a time beside
 * the other jobs, seals pending commits oldest first (tree, commit object).
 * PENDING below is READY with commits pending (npending > 0, the view's
 * `indexing`); the KV and views say READY. Every READY row holds in it too,
 * except where a PENDING row says otherwise.
 *
 * States and transitions (each row is a function below; the first row that
 * matches is taken; the table `operations` below says which requests are
 * SEALED, AT_ONCE or LAST_VIEW, and how READY serves each):
 *
 *   state     event                                transition         next
 *   --------  -----------------------------------  -----------------  --------
 *   CREATING  DELETE request                       begin_delete       DELETING
 *   CREATING  CREATE request, no job running       on_create          CREATING
 *   CREATING  other request                        enqueue            CREATING
 *   CREATING  create job done, ok                  created            READY [1]
 *   CREATING  create job done, failed              create_failed      DELETING
 *   READY     DELETE request, containers use it    refuse_busy        READY
 *   READY     DELETE request                       begin_delete       DELETING
 *   READY     AT_ONCE request, with its mount      its prepare        READY
 *   READY     CREATE request                       refuse_exists      READY
 *   READY     LAST_VIEW request, a job running     answer_view        READY
 *   READY     request, a job running               enqueue            READY
 *   READY     request, no job running              start_op           READY
 *   READY     commit job done, snapshot taken      take_pending       PENDING
 *   READY     job done, ok                         finish_op          READY
 *   READY     job done, failed                     finish_op          READY
 *   PENDING   LAST_VIEW request                    answer_view        PENDING
 *   PENDING   SEALED request                       enqueue            PENDING
 *   PENDING   INDEX message (dmd restarted)        maybe_start_index  PENDING
 *   PENDING   index job done, more pending         on_index_done      PENDING
 *   PENDING   index job done, the last one         on_index_done      READY
 *   PENDING   index job done, failed               on_index_done      PENDING [2]
 *   DELETING  DELETE request                       join_delete        DELETING
 *   DELETING  other request                        refuse_gone        DELETING
 *   DELETING  DELETE message (dmd restarted)       start_delete_job   DELETING
 *   DELETING  cancelled job or index job done      cancelled_done     DELETING [3]
 *   DELETING  delete job done, ok                  deleted            GONE
 *   DELETING  delete job done, failed              deleted            DELETING [4]
 *   GONE      DELETE request                       confirm_deleted    GONE
 *   GONE      other request                        refuse_gone        GONE
 *
 *   [1] DELETING when the new dot cannot be recorded.
 *   [2] The commit stays pending; the next commit, or the next start,
 *       tries again.
 *   [3] The delete job starts once neither job runs.
 *   [4] A later DELETE, or the next start, tries again.
 *
 * After a job or an index job is done, queued requests are served in order
 * (drain_queue) until one starts a job, or a SEALED one meets a pending
 * commit; then the INDEX job starts if a commit is pending.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actor/actor.h"
#include "engine/engine.h"
#include "kv/kv.h"
#include "server/dots/access.h"
#include "server/dots/dot_internal.h"
#include "server/dots/hooks.h"
#include "server/dots/registry.h"
#include "server/dots/wcwatch.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

/* ---- the operations ---- */

struct dot;

/*
 * prepare: serves request r (of req) at once, answering it, and returns
 * NULL; or returns the input of the job that serves it (job_input's, with
 * what only the dot knows added). finish: applies the job's result to the
 * dot and answers req; only after a job that succeeded (finish_op answers
 * a failure).
 */
typedef struct dm_dot_job_in *prepare_fn(struct dot *d, struct dm_msg *req,
					 const struct dm_dot_req *r);
typedef void finish_fn(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r,
		       struct dm_dot_job_out *out);

static prepare_fn prepare_on_branch, prepare_refresh, prepare_reset, prepare_branch,
	prepare_checkout, prepare_path, prepare_receive, prepare_collaborator,
	prepare_uncollaborator, prepare_set_owner, prepare_mount, prepare_unmount, prepare_sealed,
	prepare_set_hook, prepare_commit, prepare_expire, prepare_delete_branch, prepare_prune,
	prepare_limit, prepare_set_origin, prepare_mount_commit, prepare_unmount_commit,
	prepare_put_file;
static finish_fn finish_commit, finish_reset, finish_branch, finish_checkout, finish_answer,
	finish_refresh, finish_receive, finish_expire, finish_delete_branch, finish_mount_commit;

enum {
	SEALED = 1 << 0,    /* reads history: waits while a commit is pending */
	AT_ONCE = 1 << 1,   /* served even while a job runs: a reset's job waits for it */
	LAST_VIEW = 1 << 2, /* while a job runs or a commit is pending: the last view */
};

/*
 * Every operation of a dot, by its request's op: its flags, and the steps
 * that serve it. The job column says whether it runs a job (CHECKOUT of an
 * existing branch does only when containers follow the current one: its
 * prepare decides). CREATE, DELETE and INDEX have no prepare or finish:
 * they are the state table's rows, and take only their job from here.
 * An op that is not here, or has no prepare, is answered "unknown request".
 */
static const struct op {
	unsigned flags;
	prepare_fn *prepare;
	dm_dot_job_fn *job;
	finish_fn *finish;
	const char *kind; /* its job's, in dm_job_duration_seconds */
} operations[] = {
	[DM_DOT_OP_CREATE] = {0, NULL, dm_dot_job_create, NULL, "dot_create"},
	[DM_DOT_OP_COMMIT] = {0, prepare_commit, dm_dot_job_commit, finish_commit, "dot_commit"},
	[DM_DOT_OP_BRANCH] = {SEALED, prepare_branch, dm_dot_job_branch, finish_branch,
			      "dot_branch"},
	/* -b makes a branch from history */
	[DM_DOT_OP_CHECKOUT] = {SEALED, prepare_checkout, dm_dot_job_checkout, finish_checkout,
				"dot_checkout"},
	[DM_DOT_OP_RESET] = {SEALED, prepare_reset, dm_dot_job_reset, finish_reset, "dot_reset"},
	[DM_DOT_OP_DIFF] = {SEALED, prepare_on_branch, dm_dot_job_diff, finish_answer, "dot_diff"},
	[DM_DOT_OP_REFRESH] = {LAST_VIEW, prepare_refresh, dm_dot_job_refresh, finish_refresh,
			       "dot_refresh"},
	[DM_DOT_OP_PATH] = {0, prepare_path, NULL, NULL, NULL},
	[DM_DOT_OP_DELETE] = {0, NULL, dm_dot_job_delete, NULL, "dot_delete"},
	[DM_DOT_OP_RECEIVE] = {SEALED, prepare_receive, dm_dot_job_receive, finish_receive,
			       "dot_receive"},
	[DM_DOT_OP_ADD_COLLABORATOR] = {0, prepare_collaborator, NULL, NULL, NULL},
	[DM_DOT_OP_MOUNT] = {AT_ONCE, prepare_mount, NULL, NULL, NULL},
	[DM_DOT_OP_UNMOUNT] = {AT_ONCE, prepare_unmount, NULL, NULL, NULL},
	/* answers once nothing is pending (log and transfers wait for it) */
	[DM_DOT_OP_SEALED] = {SEALED, prepare_sealed, NULL, NULL, NULL},
	[DM_DOT_OP_INDEX] = {0, NULL, dm_dot_job_index, NULL, "dot_index"},
	[DM_DOT_OP_SET_HOOK] = {0, prepare_set_hook, NULL, NULL, NULL},
	[DM_DOT_OP_REMOVE_COLLABORATOR] = {0, prepare_uncollaborator, NULL, NULL, NULL},
	[DM_DOT_OP_SET_OWNER] = {0, prepare_set_owner, NULL, NULL, NULL},
	/* walks history: waits until every commit is sealed */
	[DM_DOT_OP_EXPIRE] = {SEALED, prepare_expire, dm_dot_job_expire, finish_expire,
			      "dot_expire"},
	[DM_DOT_OP_DELETE_BRANCH] = {SEALED, prepare_delete_branch, dm_dot_job_delete_branch,
				     finish_delete_branch, "dot_delete_branch"},
	/* walks history: waits until every commit is sealed */
	[DM_DOT_OP_PRUNE] = {SEALED, prepare_prune, dm_dot_job_prune, finish_answer, "dot_prune"},
	[DM_DOT_OP_LIMIT] = {0, prepare_limit, dm_dot_job_limit, finish_answer, "dot_limit"},
	[DM_DOT_OP_SET_ORIGIN] = {0, prepare_set_origin, NULL, NULL, NULL},
	/* a copy of a commit: its history must be sealed */
	[DM_DOT_OP_MOUNT_COMMIT] = {SEALED, prepare_mount_commit, dm_dot_job_mount_commit,
				    finish_mount_commit, "dot_mount_commit"},
	[DM_DOT_OP_UNMOUNT_COMMIT] = {0, prepare_unmount_commit, dm_dot_job_sweep_copies,
				      finish_answer, "dot_unmount_commit"},
	/* dotmesh's S3 PUT and DELETE: the change and its commit, one job */
	[DM_DOT_OP_PUT_FILE] = {0, prepare_put_file, dm_dot_job_put_file, finish_commit,
				"dot_put_file"},
};

/* The row of op; an unknown op's is all empty. */
static const struct op *op_of(int op)
{
	size_t n = sizeof(operations) / sizeof(operations[0]);

	return op > 0 && (size_t)op < n ? &operations[op] : &operations[0];
}

static void json_free(void *p)
{
	json_decref(p);
}

/* ---- the dot's state ---- */

struct branch {
	char name[DM_NAME_PART_MAX + 1];
	char head[DM_COMMIT_ID_LEN_MAX + 1];
	bool has_tree;
	dm_oid tree; /* the head's tree */
	uint64_t commits;
	uint64_t dirty, size;
	/* what dirty and size stand for (see measure_fresh): measured against
	 * measured_head (with or without its tree), begun at measured_ns
	 * (monotonic), with the watch's token then (0: none) */
	bool measured;
	char measured_head[DM_COMMIT_ID_LEN_MAX + 1];
	bool measured_has_tree;
	int64_t measured_ns;
	uint64_t token;
	struct dm_wcwatch_entry *watch; /* its working copy's change signal, or NULL */
	uint64_t resets; /* resets --hard of the branch so far (its copies follow them) */
	/* heads that resets left behind, oldest first: their history is kept
	 * until EXPIRE is told a time after theirs (git's reflog) */
	size_t ndropped;
	struct dropped {
		char head[DM_COMMIT_ID_LEN_MAX + 1];
		int64_t time_ns;
	} dropped[DM_DOT_DROPPED_MAX];
};

/* A commit whose snapshot is taken and whose tree is not yet indexed. */
struct pending {
	char id[DM_COMMIT_ID_LEN_MAX + 1];
	char parent[DM_COMMIT_ID_LEN_MAX + 1];
	int64_t time_ns;
	char *message, *author;
	size_t nmeta;
	char **keys, **values;
};

static void pending_release(struct pending *p)
{
	free(p->message);
	free(p->author);
	for (size_t i = 0; i < p->nmeta; i++) {
		free(p->keys[i]);
		free(p->values[i]);
	}
	free(p->keys);
	free(p->values);
}

struct dot {
	struct dm_dot_env env;
	struct dm_dot_slot *slot; /* where views are published */
	struct dm_actor *self;    /* borrowed: the actor runs us */
	char id[DM_DOT_ID_MAX + 1];
	struct dm_dot_name name;
	char shown[DM_DOT_NAME_TEXT_MAX]; /* the name as messages give it */
	int state;
	char current[DM_NAME_PART_MAX + 1];
	size_t nbranches;
	struct branch *branches;
	char owner[DM_NAME_PART_MAX + 1]; /* the namespace's user unless handed over */
	size_t ncollaborators;
	struct dm_collaborator *collaborators;
	size_t nmounts;
	struct dm_mount_view *mounts; /* containers using the dot (not persisted) */
	/* the container runtime's mounts, each owning the container records
	 * whose `of` is its key (not persisted: the runtime mounts again) */
	size_t nruntime_mounts;
	struct dm_runtime_mount *runtime_mounts;
	size_t nsubdots; /* the current branch's, as last measured */
	char (*subdots)[DM_NAME_PART_MAX + 1];
	char subdots_of[DM_NAME_PART_MAX + 1]; /* the branch they were measured on */
	json_t *hooks;    /* {"pre-commit": HOOK, "post-commit": HOOK} (hooks.h), checked */
	bool strip_setid; /* set by a RECEIVE from a non-admin, never cleared */
	struct dm_fork_origin fork_of; /* where a fork came from (.id "" otherwise) */
	size_t nholds;
	struct dm_commit_hold *holds; /* read-only copies of commits and their holders */

	struct dm_job *index_job; /* sealing pending[0], or NULL */
	size_t npending;
	struct pending *pending;          /* commits taken, not yet sealed; oldest first */
	char index_error[DM_ERR_MSG_MAX]; /* why the last index failed, or "" */

	struct dm_job *job;     /* the running job, or NULL */
	struct dm_msg *job_req; /* the request it serves (kept), or NULL */
	struct dm_msg **queue;  /* requests waiting for the job to end */
	size_t nqueue;
	struct dm_msg **deleters; /* DELETE requests answered when GONE */
	size_t ndeleters;
};

static struct branch *find_branch(struct dot *d, const char *name)
{
	for (size_t i = 0; i < d->nbranches; i++)
		if (!strcmp(d->branches[i].name, name))
			return &d->branches[i];
	return NULL;
}

static int branch_cmp(const void *a, const void *b)
{
	return strcmp(((const struct branch *)a)->name, ((const struct branch *)b)->name);
}

static void free_branches(struct dot *d)
{
	for (size_t i = 0; i < d->nbranches; i++)
		dm_wcwatch_entry_unref(d->branches[i].watch);
	free(d->branches);
}

static struct branch *add_branch(struct dot *d, const char *name)
{
	struct branch *b;

	d->branches = dm_xrealloc(d->branches, (d->nbranches + 1) * sizeof(*d->branches));
	b = &d->branches[d->nbranches++];
	memset(b, 0, sizeof(*b));
	snprintf(b->name, sizeof(b->name), "%s", name);
	qsort(d->branches, d->nbranches, sizeof(*d->branches), branch_cmp);
	return find_branch(d, name);
}

/* Publishes an immutable view of d; called after every change. */
static void publish(struct dot *d)
{
	struct dm_dot_view *v = dm_xcalloc(1, sizeof(*v));

	atomic_init((atomic_int *)&v->refs, 1);
	memcpy(v->id, d->id, sizeof(v->id));
	v->name = d->name;
	v->state = d->state;
	memcpy(v->current, d->current, sizeof(v->current));
	v->busy = d->job != NULL;
	v->indexing = d->npending;
	v->nmounts = d->nmounts;
	v->mounts = dm_xcalloc(d->nmounts ? d->nmounts : 1, sizeof(*v->mounts));
	if (d->nmounts)
		memcpy(v->mounts, d->mounts, d->nmounts * sizeof(*d->mounts));
	v->nruntime_mounts = d->nruntime_mounts;
	v->runtime_mounts =
		dm_xcalloc(d->nruntime_mounts ? d->nruntime_mounts : 1, sizeof(*v->runtime_mounts));
	if (d->nruntime_mounts)
		memcpy(v->runtime_mounts, d->runtime_mounts,
		       d->nruntime_mounts * sizeof(*d->runtime_mounts));
	v->nsubdots = d->nsubdots;
	v->subdots = dm_xcalloc(d->nsubdots ? d->nsubdots : 1, sizeof(*v->subdots));
	if (d->nsubdots)
		memcpy(v->subdots, d->subdots, d->nsubdots * sizeof(*d->subdots));
	v->strip_setid = d->strip_setid;
	v->fork_of = d->fork_of;
	v->nholds = d->nholds;
	v->holds = dm_xcalloc(d->nholds ? d->nholds : 1, sizeof(*v->holds));
	if (d->nholds)
		memcpy(v->holds, d->holds, d->nholds * sizeof(*d->holds));
	memcpy(v->owner, d->owner, sizeof(v->owner));
	v->ncollaborators = d->ncollaborators;
	v->collaborators =
		dm_xcalloc(d->ncollaborators ? d->ncollaborators : 1, sizeof(*v->collaborators));
	if (d->ncollaborators)
		memcpy(v->collaborators, d->collaborators,
		       d->ncollaborators * sizeof(*d->collaborators));
	v->nbranches = d->nbranches;
	v->branches = dm_xcalloc(d->nbranches, sizeof(*v->branches));
	for (size_t i = 0; i < d->nbranches; i++) {
		struct dm_branch_view *bv = &v->branches[i];

		memcpy(bv->name, d->branches[i].name, sizeof(bv->name));
		memcpy(bv->head, d->branches[i].head, sizeof(bv->head));
		bv->commits = d->branches[i].commits;
		bv->dirty = d->branches[i].dirty;
		bv->size = d->branches[i].size;
	}
	v->hooks = json_object_size(d->hooks) ? json_dumps(d->hooks, JSON_COMPACT | JSON_SORT_KEYS)
					      : NULL;
	dm_dot_slot_publish(d->slot, v);
}

/* ---- persistence (the KV) ---- */

const char *dm_dot_kv_root(const struct dm_dot_env *env)
{
	return env->kv_root ? env->kv_root : DM_KV_ROOT;
}

void dm_dot_kv_key(char *out, size_t size, const struct dm_dot_env *env, const char *fmt, ...)
{
	int n = snprintf(out, size, "%s", dm_dot_kv_root(env));
	va_list ap;

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < size)
		vsnprintf(out + n, size - (size_t)n, fmt, ap);
	va_end(ap);
}

static void dot_key(char *out, size_t size, const struct dot *d)
{
	dm_dot_kv_key(out, size, &d->env, "dots/%s", d->id);
}

static int persist_dot(struct dot *d, struct dm_err *err)
{
	char key[128];
	json_t *collaborators = json_array();
	json_t *j;
	char *s;
	int rc;

	for (size_t i = 0; i < d->ncollaborators; i++)
		json_array_append_new(collaborators,
				      json_pack("{s:s, s:s}", "user", d->collaborators[i].user,
						"role",
						dm_dot_role_name(d->collaborators[i].role)));
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "id", d->id, "namespace", d->name.ns,
		      "name", d->name.name, "current", d->current, "state",
		      dm_dot_state_name(d->state), "collaborators", collaborators);
	if (d->strip_setid)
		json_object_set_new(j, "strip_setid", json_true());
	if (d->fork_of.id[0])
		json_object_set_new(j, "fork_of",
				    json_pack("{s:s, s:s, s:s}", "id", d->fork_of.id, "dot",
					      d->fork_of.dot, "commit", d->fork_of.commit));
	if (d->nholds) {
		json_t *holds = json_array();

		for (size_t i = 0; i < d->nholds; i++)
			json_array_append_new(holds, json_pack("{s:s, s:s, s:s}", "commit",
							       d->holds[i].commit, "holder",
							       d->holds[i].holder, "path",
							       d->holds[i].path));
		json_object_set_new(j, "commit_mounts", holds);
	}
	if (json_object_size(d->hooks))
		json_object_set(j, "hooks", d->hooks);
	if (strcmp(d->owner, d->name.ns))
		json_object_set_new(j, "owner", json_string(d->owner));
	/* in a cluster, a delete on another node must know containers use it */
	if (d->env.kv_root && d->nmounts)
		json_object_set_new(j, "containers", json_integer((json_int_t)d->nmounts));
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	dot_key(key, sizeof(key), d);
	rc = dm_kv_put(d->env.kv, NULL, key, s, strlen(s), 0, err);
	free(s);
	json_decref(j);
	return rc;
}

/*
 * In a cluster, the node that makes a branch masters it: its record in
 * DM_KV_MASTERS is created once, before the branch's first record, and
 * moves only by set-master or a handoff. A copy that receives the branch
 * from its master finds the record there already.
 */
static int claim_master(struct dot *d, const struct branch *b, struct dm_err *err)
{
	char key[256], tomb[256];
	struct dm_kv_cmp cmps[2];
	struct dm_kv_op op;
	int rc;

	if (!d->env.kv_root || !d->env.node_id)
		return 0;
	snprintf(key, sizeof(key), DM_KV_MASTERS "%s/%s", d->id, b->name);
	snprintf(tomb, sizeof(tomb), DM_KV_DELETED "%s", d->id);
	/* never for a dot deleted from the cluster: its masters are gone for good */
	cmps[0] = (struct dm_kv_cmp){key, 0};
	cmps[1] = (struct dm_kv_cmp){tomb, 0};
	op = (struct dm_kv_op){DM_KV_OP_PUT, key, d->env.node_id, strlen(d->env.node_id), 0};
	rc = dm_kv_txn(d->env.kv, NULL, cmps, 2, &op, 1, err);
	return rc == DM_ECONFLICT ? 0 : rc;
}

/* A branch's KV record: {"head","commits","resets","dropped"?}. */
static json_t *branch_json(const struct branch *b)
{
	json_t *j = json_pack("{s:s, s:I, s:I}", "head", b->head, "commits", (json_int_t)b->commits,
			      "resets", (json_int_t)b->resets);

	if (j && b->ndropped) {
		json_t *a = json_array();

		for (size_t i = 0; i < b->ndropped; i++)
			json_array_append_new(a, json_pack("{s:s, s:I}", "head", b->dropped[i].head,
							   "time_ns",
							   (json_int_t)b->dropped[i].time_ns));
		json_object_set_new(j, "dropped", a);
	}
	return j;
}

static int persist_branch(struct dot *d, const struct branch *b, struct dm_err *err)
{
	char key[256];
	json_t *j = branch_json(b);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	int rc;

	dm_dot_kv_key(key, sizeof(key), &d->env, "dots/%s/branches/%s", d->id, b->name);
	rc = claim_master(d, b, err);
	if (!rc)
		rc = dm_kv_put(d->env.kv, NULL, key, s, strlen(s), 0, err);
	free(s);
	json_decref(j);
	return rc;
}

/* The branch's new head and its pending commit, in one transaction. */
static int persist_pending(struct dot *d, const struct branch *b, const struct pending *pc,
			   struct dm_err *err)
{
	char bkey[256], pkey[256];
	json_t *meta = json_object(), *bj, *pj;
	char *bs, *ps;
	struct dm_kv_op ops[2];
	int rc;

	for (size_t i = 0; i < pc->nmeta; i++)
		json_object_set_new(meta, pc->keys[i], json_string(pc->values[i]));
	bj = branch_json(b);
	pj = json_pack("{s:s, s:s, s:I, s:s, s:s, s:o}", "branch", b->name, "parent", pc->parent,
		       "time_ns", (json_int_t)pc->time_ns, "message", pc->message, "author",
		       pc->author, "metadata", meta);
	bs = json_dumps(bj, JSON_COMPACT | JSON_SORT_KEYS);
	ps = json_dumps(pj, JSON_COMPACT | JSON_SORT_KEYS);
	dm_dot_kv_key(bkey, sizeof(bkey), &d->env, "dots/%s/branches/%s", d->id, b->name);
	dm_dot_kv_key(pkey, sizeof(pkey), &d->env, "dots/%s/pending/%s", d->id, pc->id);
	ops[0] = (struct dm_kv_op){DM_KV_OP_PUT, bkey, bs, strlen(bs), 0};
	ops[1] = (struct dm_kv_op){DM_KV_OP_PUT, pkey, ps, strlen(ps), 0};
	rc = dm_kv_txn(d->env.kv, NULL, NULL, 0, ops, 2, err);
	free(bs);
	free(ps);
	json_decref(bj);
	json_decref(pj);
	return rc;
}

/*
 * In a cluster, a new branch of this node's must not be one another node
 * made already (and masters) that has not reached this copy yet: answers
 * req and returns true then.
 */
static bool refuse_mastered_elsewhere(struct dot *d, struct dm_msg *req, const char *branch)
{
	char key[256];
	struct dm_kv_kv kv;
	bool other = false;

	if (!d->env.kv_root || !d->env.node_id)
		return false;
	snprintf(key, sizeof(key), DM_KV_MASTERS "%s/%s", d->id, branch);
	dm_kv_kv_init(&kv);
	if (dm_kv_get(d->env.kv, &kv, key, NULL) == 0 &&
	    (kv.value_len != strlen(d->env.node_id) ||
	     memcmp(kv.value, d->env.node_id, kv.value_len))) {
		other = true;
		dm_msg_reply_err(req, DM_EEXISTS,
				 "branch '%s' exists: node %.*s made it, and this node has no copy "
				 "of it yet; try again in a moment",
				 branch, (int)(kv.value_len > 64 ? 64 : kv.value_len), kv.value);
	}
	dm_kv_kv_release(&kv);
	return other;
}

/* ---- transitions ---- */

static int reply_json(struct dm_msg *req, json_t *result)
{
	return dm_msg_reply(req, 0, result, json_free);
}

static void refuse_gone(struct dot *d, struct dm_msg *req)
{
	dm_msg_reply_err(req, DM_ENOTFOUND, "no such dot '%s'", d->shown);
}

/* GONE, DELETE: deleting is idempotent by id. */
static void confirm_deleted(struct dot *d, struct dm_msg *req)
{
	reply_json(req, json_object());
}

static void refuse_exists(struct dot *d, struct dm_msg *req)
{
	dm_msg_reply_err(req, DM_EEXISTS, "dot '%s' exists", d->shown);
}

static void refuse_busy(struct dot *d, struct dm_msg *req)
{
	dm_msg_reply_err(req, DM_EBUSY, "dot '%s' is in use by container %s; stop it first",
			 d->shown, d->mounts[0].container);
}

/* Answers the last published view (REFRESH does not wait behind a long
 * job or indexing: it answers what is known). */
static void answer_view(struct dot *d, struct dm_msg *req)
{
	reply_json(req, dm_dot_view_json(dm_dot_slot_peek(d->slot), d->env.server));
}

static char *dup_or_null(const char *s)
{
	return s ? dm_xstrdup(s) : NULL;
}

/*
 * The one place a job's input is made, for operation op: copies of the
 * dot's identity, of branch b (the one acted on: its name, head and tree;
 * NULL for none, or for r's branch when it does not exist yet, which a
 * RECEIVE makes) and of all that request r gives a job (NULL: nothing; the
 * dot's own jobs, CREATE's and CHECKOUT's, which take only names). The job
 * to run is the one `operations` names.
 */
static struct dm_dot_job_in *job_input(struct dot *d, int op, const struct dm_dot_req *r,
				       const struct branch *b)
{
	struct dm_dot_job_in *in = dm_xcalloc(1, sizeof(*in));

	in->op = op;
	in->run = op_of(op)->job;
	in->kind = op_of(op)->kind;
	in->env = d->env;
	in->strip_setid = d->strip_setid;
	memcpy(in->dot_id, d->id, sizeof(in->dot_id));
	in->name = d->name;
	if (b) {
		memcpy(in->branch, b->name, sizeof(in->branch));
		memcpy(in->head, b->head, sizeof(in->head));
		in->has_tree = b->has_tree;
		in->tree = b->tree;
		in->commits = b->commits;
	} else if (r && r->branch) {
		snprintf(in->branch, sizeof(in->branch), "%s", r->branch);
	}
	if (!r)
		return in;
	in->message = dup_or_null(r->message);
	in->author = dup_or_null(r->author);
	in->from = dup_or_null(r->from);
	in->to = dup_or_null(r->to);
	if (r->nmeta) {
		in->nmeta = r->nmeta;
		in->meta_keys = dm_xcalloc(r->nmeta, sizeof(char *));
		in->meta_values = dm_xcalloc(r->nmeta, sizeof(char *));
		for (size_t i = 0; i < r->nmeta; i++) {
			in->meta_keys[i] = dm_xstrdup(r->meta_keys[i]);
			in->meta_values[i] = dm_xstrdup(r->meta_values[i]);
		}
	}
	in->old_head = dup_or_null(r->old_head);
	if (r->ncommits) {
		in->nreceived = r->ncommits;
		in->received = dm_xcalloc(r->ncommits, sizeof(*in->received));
		memcpy(in->received, r->commits, r->ncommits * sizeof(*r->commits));
	}
	in->stash = r->stash;
	in->limit = r->limit;
	return in;
}

/* Starts the job that serves req (kept in job_req). On a failure to start,
 * answers req and returns its code. */
static int start_job(struct dot *d, struct dm_msg *req, struct dm_dot_job_in *in)
{
	struct dm_err err;
	int rc = dm_job_start(&d->job, d->self, dm_dot_run_job, in, dm_dot_job_in_free, &err);

	if (rc) {
		d->job = NULL;
		if (req)
			dm_msg_reply_err(req, rc, "%s", err.msg);
		dm_msg_free(req);
		return rc;
	}
	d->job_req = req;
	publish(d);
	return 0;
}

/* The branch a request names, or the current one; answers when missing. */
static struct branch *req_branch(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r)
{
	const char *name = r->branch ? r->branch : d->current;
	struct branch *b = find_branch(d, name);

	if (!b)
		dm_msg_reply_err(req, DM_ENOTFOUND, "dot '%s' has no branch '%s'", d->shown, name);
	return b;
}

/* Persists d after a change to its collaborators or owner and answers
 * req; on a failure, d takes back `undo` (its collaborators as they were)
 * and owner. Takes undo. */
static void share_done(struct dot *d, struct dm_msg *req, struct dm_collaborator *undo,
		       size_t nundo, const char *owner)
{
	struct dm_err err;

	if (persist_dot(d, &err)) {
		free(d->collaborators);
		d->collaborators = undo;
		d->ncollaborators = nundo;
		snprintf(d->owner, sizeof(d->owner), "%s", owner);
		dm_msg_reply_err(req, err.code, "%s", err.msg);
		return;
	}
	free(undo);
	publish(d);
	reply_json(req, json_object());
}

/* A copy of d's collaborators, to undo a change with (share_done). */
static struct dm_collaborator *collaborators_copy(const struct dot *d)
{
	struct dm_collaborator *c = dm_xcalloc(d->ncollaborators + 1, sizeof(*c));

	if (d->ncollaborators)
		memcpy(c, d->collaborators, d->ncollaborators * sizeof(*c));
	return c;
}

static struct dm_collaborator *find_collaborator(struct dot *d, const char *user)
{
	for (size_t i = 0; i < d->ncollaborators; i++)
		if (!strcmp(d->collaborators[i].user, user))
			return &d->collaborators[i];
	return NULL;
}

/* ADD_COLLABORATOR: at once; a collaborator already there gets the role.
 * The RPC checked who may. */
static struct dm_dot_job_in *prepare_collaborator(struct dot *d, struct dm_msg *req,
						  const struct dm_dot_req *r)
{
	const char *user = r->user;
	struct dm_collaborator *undo, *c;
	char owner[sizeof(d->owner)];
	size_t n;

	if (!user || !dm_name_part_valid(user, strlen(user))) {
		dm_msg_reply_err(req, DM_EINVAL, "invalid user name '%s'", user ? user : "");
		return NULL;
	}
	if (r->role != DM_ROLE_READ && r->role != DM_ROLE_WRITE) {
		dm_msg_reply_err(req, DM_EINVAL, "a collaborator's role is read or write");
		return NULL;
	}
	if (!strcmp(user, d->owner)) {
		dm_msg_reply_err(req, DM_EINVAL,
				 "user '%s' owns '%s': an owner is not a collaborator", user,
				 d->shown);
		return NULL;
	}
	memcpy(owner, d->owner, sizeof(owner));
	n = d->ncollaborators;
	undo = collaborators_copy(d);
	c = find_collaborator(d, user);
	if (!c) {
		d->collaborators = dm_xrealloc(d->collaborators,
					       (d->ncollaborators + 1) * sizeof(*d->collaborators));
		c = &d->collaborators[d->ncollaborators++];
		snprintf(c->user, sizeof(c->user), "%s", user);
	}
	c->role = r->role;
	share_done(d, req, undo, n, owner);
	return NULL;
}

/* REMOVE_COLLABORATOR: at once; DM_ENOTFOUND for a user that is not one. */
static struct dm_dot_job_in *prepare_uncollaborator(struct dot *d, struct dm_msg *req,
						    const struct dm_dot_req *r)
{
	struct dm_collaborator *c = r->user ? find_collaborator(d, r->user) : NULL;
	struct dm_collaborator *undo;
	char owner[sizeof(d->owner)];
	size_t n = d->ncollaborators, at;

	if (!c) {
		dm_msg_reply_err(req, DM_ENOTFOUND, "user '%s' is not a collaborator of '%s'",
				 r->user ? r->user : "", d->shown);
		return NULL;
	}
	memcpy(owner, d->owner, sizeof(owner));
	undo = collaborators_copy(d);
	at = (size_t)(c - d->collaborators);
	memmove(c, c + 1, (n - at - 1) * sizeof(*c));
	d->ncollaborators--;
	share_done(d, req, undo, n, owner);
	return NULL;
}

/* SET_OWNER: at once. The new owner stops being a collaborator (an owner
 * has every right already). */
static struct dm_dot_job_in *prepare_set_owner(struct dot *d, struct dm_msg *req,
					       const struct dm_dot_req *r)
{
	struct dm_collaborator *undo, *c;
	char owner[sizeof(d->owner)];
	size_t n = d->ncollaborators;

	if (!r->user || !dm_name_part_valid(r->user, strlen(r->user))) {
		dm_msg_reply_err(req, DM_EINVAL, "invalid user name '%s'", r->user ? r->user : "");
		return NULL;
	}
	memcpy(owner, d->owner, sizeof(owner));
	undo = collaborators_copy(d);
	c = find_collaborator(d, r->user);
	if (c) {
		memmove(c, c + 1, (n - (size_t)(c - d->collaborators) - 1) * sizeof(*c));
		d->ncollaborators--;
	}
	snprintf(d->owner, sizeof(d->owner), "%s", r->user);
	share_done(d, req, undo, n, owner);
	return NULL;
}

/* SET_HOOK: at once. The RPC checked who may; the hook is checked here,
 * where it is kept. */
static struct dm_dot_job_in *prepare_set_hook(struct dot *d, struct dm_msg *req,
					      const struct dm_dot_req *r)
{
	json_t *hooks = d->hooks ? json_deep_copy(d->hooks) : json_object(), *old = d->hooks;
	struct dm_hook h;
	struct dm_err err;

	if (!r->hook_name || (strcmp(r->hook_name, DM_HOOK_PRE_COMMIT) &&
			      strcmp(r->hook_name, DM_HOOK_POST_COMMIT))) {
		json_decref(hooks);
		dm_msg_reply_err(req, DM_EINVAL,
				 "no hook '%s': use " DM_HOOK_PRE_COMMIT " or " DM_HOOK_POST_COMMIT,
				 r->hook_name ? r->hook_name : "");
		return NULL;
	}
	if (r->hook) {
		json_t *j = json_loads(r->hook, 0, NULL);
		int rc = dm_hook_from_json(&h, j, &err);

		if (rc) {
			json_decref(j);
			json_decref(hooks);
			dm_msg_reply_err(req, rc, "%s", err.msg);
			return NULL;
		}
		dm_hook_release(&h);
		json_object_set_new(hooks, r->hook_name, j);
	} else {
		json_object_del(hooks, r->hook_name);
	}
	d->hooks = hooks;
	if (persist_dot(d, &err)) {
		d->hooks = old;
		json_decref(hooks);
		dm_msg_reply_err(req, err.code, "%s", err.msg);
		return NULL;
	}
	json_decref(old);
	publish(d);
	reply_json(req, json_object());
	return NULL;
}

static bool subdot_valid(const char *s)
{
	return !strcmp(s, "__default__") || !strcmp(s, "__root__") ||
	       dm_name_part_valid(s, strlen(s));
}

/* In a cluster, the dot's record says whether containers of this node use
 * it (persist_dot), for a delete asked of another node. */
static void record_mounts(struct dot *d)
{
	struct dm_err err;

	if (d->env.kv_root && persist_dot(d, &err))
		dm_warn("dot %s: cannot record its containers: %s", d->id, err.msg);
}

/* MOUNT and UNMOUNT name the mount; answers one that does not. */
static struct dm_dot_job_in *refuse_no_mount(struct dm_msg *req)
{
	dm_msg_reply_err(req, DM_EINVAL, "mount request without a mount");
	return NULL;
}

static struct dm_runtime_mount *find_runtime_mount(struct dot *d, const char *key)
{
	for (size_t i = 0; i < d->nruntime_mounts; i++)
		if (!strcmp(d->runtime_mounts[i].key, key))
			return &d->runtime_mounts[i];
	return NULL;
}

/* Adds container record m, or replaces the one with its mount_id. */
static void put_container(struct dot *d, const struct dm_mount_view *m)
{
	size_t i;

	for (i = 0; i < d->nmounts; i++)
		if (!strcmp(d->mounts[i].mount_id, m->mount_id))
			break;
	if (i == d->nmounts) {
		d->mounts = dm_xrealloc(d->mounts, (d->nmounts + 1) * sizeof(*d->mounts));
		d->nmounts++;
	}
	d->mounts[i] = *m;
}

/* Drops the container records for which drop(record, arg) says so; true
 * when any went. */
static bool drop_containers(struct dot *d, bool (*drop)(const struct dm_mount_view *, const char *),
			    const char *arg)
{
	bool dropped = false;

	for (size_t i = 0; i < d->nmounts;) {
		if (!drop(&d->mounts[i], arg)) {
			i++;
			continue;
		}
		d->mounts[i] = d->mounts[--d->nmounts];
		dropped = true;
	}
	return dropped;
}

static bool record_is(const struct dm_mount_view *m, const char *mount_id)
{
	return !strcmp(m->mount_id, mount_id);
}

static bool record_of(const struct dm_mount_view *m, const char *key)
{
	return !strcmp(m->of, key);
}

/* dot.h. The root is dmd's own path (the stable one may be a link dmd
 * made); the subdot, one name, is opened from the root's fd with
 * O_NOFOLLOW | O_DIRECTORY, so the kernel refuses a link or a file there.
 * A subdot that is neither a directory nor missing is described by its
 * lstat type in the refusal. */
int dm_dot_subdot_check(const char *root, const char *subdot, const char *dot, bool make,
			struct dm_err *err)
{
	struct stat st;
	const char *what;
	int rootfd = -1, fd = -1;
	int rc = 0;

	if (!dm_name_part_valid(subdot, strlen(subdot)) && strcmp(subdot, "__default__"))
		return dm_err_set(err, DM_EINVAL, "invalid subdot name '%s'", subdot);
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		rc = dm_err_set(err, DM_EIO, "cannot open the working copy of dot '%s': %s", dot,
				strerror(errno));
		goto done;
	}
	if (make && mkdirat(rootfd, subdot, 0755) < 0 && errno != EEXIST) {
		rc = dm_err_set(err, DM_EIO, "cannot make subdot '%s' of dot '%s': %s", subdot, dot,
				strerror(errno));
		goto done;
	}
	fd = openat(rootfd, subdot, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		goto done;
	if (errno == ENOENT) {
		rc = dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no subdot '%s'", dot, subdot);
		goto done;
	}
	if (errno != ELOOP && errno != ENOTDIR) {
		rc = dm_err_set(err, DM_EIO, "cannot open subdot '%s' of dot '%s': %s", subdot, dot,
				strerror(errno));
		goto done;
	}
	what = "not a directory";
	if (fstatat(rootfd, subdot, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(st.st_mode))
			what = "a symbolic link, not a directory";
		else if (S_ISREG(st.st_mode))
			what = "a file, not a directory";
	}
	rc = dm_err_set(err, DM_EPERM, "subdot '%s' of dot '%s' is %s: dm will not mount it",
			subdot, dot, what);
done:
	if (fd >= 0)
		close(fd);
	if (rootfd >= 0)
		close(rootfd);
	return rc;
}

/* The path a new runtime mount answers: the pinned branch's working copy
 * or the dot's stable path (which follows checkouts), plus the subdot's
 * directory, made when missing and refused when it is a link or not a
 * directory (dm_dot_subdot_check). 0, or a code with err filled. */
static int mount_path(struct dot *d, const struct dm_mount_view *m, struct dm_buf *path,
		      struct dm_err *err)
{
	const char *branch = m->branch[0] ? m->branch : NULL;
	int rc;

	if (branch && !find_branch(d, branch))
		return dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no branch '%s'", d->shown,
				  branch);
	if (!subdot_valid(m->subdot))
		return dm_err_set(err, DM_EINVAL, "invalid subdot name '%s'", m->subdot);
	rc = dm_engine_path(d->env.engine, d->id, branch, path, err);
	if (rc)
		return rc;
	if (strcmp(m->subdot, "__root__")) {
		rc = dm_dot_subdot_check((const char *)path->data, m->subdot, d->shown, true, err);
		if (rc)
			return rc;
		dm_buf_addf(path, "/%s", m->subdot);
	}
	if (path->len >= DM_MOUNT_PATH_MAX)
		return dm_err_set(err, DM_ETOOBIG, "the path of dot '%s' is too long to mount",
				  d->shown);
	return 0;
}

/*
 * MOUNT (dot.h): a new runtime mount is recorded, with its container
 * record, and answered its path; the same mount again is answered the
 * path it has. A container record for a runtime mount is added only while
 * that mount lasts, so no record can outlive the Unmount that ended its
 * mount. Answered at once even while a job runs: a reset stops
 * containers, which unmount (queued only while the dot is being created).
 */
static struct dm_dot_job_in *prepare_mount(struct dot *d, struct dm_msg *req,
					   const struct dm_dot_req *r)
{
	const struct dm_mount_view *m = r->mount;
	struct dm_runtime_mount *rm;
	struct dm_buf path = DM_BUF_INIT;
	struct dm_err err;

	if (!m)
		return refuse_no_mount(req);
	rm = find_runtime_mount(d, m->of);
	if (!r->volume_name) {
		/* a container of a runtime mount */
		if (!rm) {
			dm_msg_reply_err(req, DM_ENOTFOUND,
					 "dot '%s' has no mount '%s' (unmounted)", d->shown, m->of);
			return NULL;
		}
		put_container(d, m);
	} else if (!rm) {
		if (r->mount_path && (strlen(r->mount_path) >= sizeof(rm->path) ||
				      dm_buf_addf(&path, "%s", r->mount_path))) {
			dm_msg_reply_err(req, DM_ETOOBIG, "the path of dot '%s' is too long to mount",
					 d->shown);
			dm_buf_release(&path);
			return NULL;
		}
		if (!r->mount_path && mount_path(d, m, &path, &err)) {
			dm_msg_reply_err(req, err.code, "%s", err.msg);
			dm_buf_release(&path);
			return NULL;
		}
		d->runtime_mounts = dm_xrealloc(
			d->runtime_mounts, (d->nruntime_mounts + 1) * sizeof(*d->runtime_mounts));
		rm = &d->runtime_mounts[d->nruntime_mounts++];
		memset(rm, 0, sizeof(*rm));
		snprintf(rm->key, sizeof(rm->key), "%s", m->of);
		snprintf(rm->name, sizeof(rm->name), "%s", r->volume_name);
		snprintf(rm->path, sizeof(rm->path), "%s", (const char *)path.data);
		dm_buf_release(&path);
		put_container(d, m);
	} else {
		/* mounted again before its unmount: the same mount */
		reply_json(req, json_pack("{s:s}", "path", rm->path));
		return NULL;
	}
	publish(d);
	record_mounts(d);
	reply_json(req, json_pack("{s:s}", "path", rm->path));
	return NULL;
}

/* UNMOUNT (dot.h): at once, as MOUNT. */
static struct dm_dot_job_in *prepare_unmount(struct dot *d, struct dm_msg *req,
					     const struct dm_dot_req *r)
{
	const struct dm_mount_view *m = r->mount;
	struct dm_runtime_mount *rm;
	bool changed;

	if (!m)
		return refuse_no_mount(req);
	if (m->of[0]) {
		changed = drop_containers(d, record_is, m->mount_id);
	} else {
		rm = find_runtime_mount(d, m->mount_id);
		changed = drop_containers(d, record_of, m->mount_id);
		if (rm) {
			*rm = d->runtime_mounts[--d->nruntime_mounts];
			changed = true;
		}
	}
	if (changed) {
		publish(d);
		record_mounts(d);
	}
	reply_json(req, json_object()); /* unmounting twice is fine */
	return NULL;
}

/* The containers to stop and start around a change to `branch`'s working
 * copy (switching: a change of the current branch), copied into the job. */
static void affected_containers(struct dot *d, struct dm_dot_job_in *in, const char *branch,
				bool switching)
{
	in->containers = dm_xcalloc(d->nmounts ? d->nmounts : 1, sizeof(*in->containers));
	in->container_names = dm_xcalloc(d->nmounts ? d->nmounts : 1, sizeof(*in->container_names));
	for (size_t i = 0; i < d->nmounts; i++) {
		const struct dm_mount_view *m = &d->mounts[i];
		bool follows = !m->branch[0];
		bool hit = switching ? follows
				     : (!strcmp(m->branch, branch) ||
					(follows && !strcmp(branch, d->current)));
		bool seen = false;

		if (!hit || !m->container_id[0])
			continue;
		for (size_t j = 0; j < in->ncontainers; j++)
			seen = seen || !strcmp(in->containers[j], m->container_id);
		if (!seen) {
			snprintf(in->container_names[in->ncontainers], sizeof(*in->container_names),
				 "%s", m->container);
			snprintf(in->containers[in->ncontainers++], sizeof(*in->containers), "%s",
				 m->container_id);
		}
	}
}

/* BRANCH-DIVERGED-<UTC time>, made unique among the dot's branches. */
static void stash_name(struct dot *d, const char *branch, char *out, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;
	char stamp[17]; /* 20261124T213311Z */

	gmtime_r(&now, &tm);
	if (!strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm))
		stamp[0] = '\0';
	snprintf(out, size, "%.38s-DIVERGED-%.16s", branch, stamp);
	for (int i = 2; find_branch(d, out) && i < 1000; i++)
		snprintf(out, size, "%.32s-DIVERGED-%.16s-%d", branch, stamp, i);
}

static void maybe_start_index(struct dot *d);

/* ---- serving an operation: its prepare step ---- */

/* COMMIT, DIFF, LIMIT (and REFRESH when it measures): a job on the branch
 * the request names, or on the current one. */
static struct dm_dot_job_in *prepare_on_branch(struct dot *d, struct dm_msg *req,
					       const struct dm_dot_req *r)
{
	struct branch *b = req_branch(d, req, r);

	return b ? job_input(d, r->op, r, b) : NULL;
}

/*
 * Whether b's dirty and size (and, for the current branch, the subdots)
 * still hold, so that a REFRESH answers them without measuring: measured
 * against b's head as it is, less than DM_DOT_MEASURE_MAX_AGE_MS ago
 * (inotify misses writes through a shared mmap), and nothing changed in
 * the working copy since (its watch), or, with no watch, less than
 * DM_DOT_UNWATCHED_MS ago.
 */
static bool measure_fresh(const struct dot *d, const struct branch *b)
{
	int64_t age_ms;

	if (!b->measured || strcmp(b->measured_head, b->head) ||
	    b->measured_has_tree != b->has_tree)
		return false;
	if (!strcmp(b->name, d->current) && strcmp(d->subdots_of, b->name))
		return false;
	age_ms = (dm_now_monotonic_ns() - b->measured_ns) / 1000000;
	if (age_ms >= DM_DOT_MEASURE_MAX_AGE_MS)
		return false;
	if (!b->token)
		return age_ms < DM_DOT_UNWATCHED_MS;
	return dm_wcwatch_unchanged(b->watch, b->token);
}

/* REFRESH: the last measures when they still hold (measure_fresh), else a
 * job that measures, watching the working copy from then on. */
static struct dm_dot_job_in *prepare_refresh(struct dot *d, struct dm_msg *req,
					     const struct dm_dot_req *r)
{
	struct branch *b = req_branch(d, req, r);
	struct dm_dot_job_in *in;

	if (!b)
		return NULL;
	if (measure_fresh(d, b)) {
		answer_view(d, req);
		return NULL;
	}
	if (!b->watch && d->env.wcwatch)
		b->watch = dm_wcwatch_entry_new(d->env.wcwatch);
	in = job_input(d, r->op, r, b);
	if (b->watch) {
		dm_wcwatch_entry_ref(b->watch);
		in->watch = b->watch;
	}
	return in;
}

/* COMMIT: the same, with the containers that use the branch (frozen for
 * the commit's last pass), the dot's hooks and the freeze's bound. */
static struct dm_dot_job_in *prepare_commit(struct dot *d, struct dm_msg *req,
					    const struct dm_dot_req *r)
{
	struct dm_dot_job_in *in = prepare_on_branch(d, req, r);

	if (!in)
		return NULL;
	if (d->env.docker)
		affected_containers(d, in, in->branch, false);
	if (json_object_size(d->hooks))
		in->hooks = json_dumps(d->hooks, JSON_COMPACT);
	in->max_freeze_ms = r->max_freeze_ms ? r->max_freeze_ms : DM_DOT_MAX_FREEZE_MS_DEFAULT;
	in->is_current = !strcmp(in->branch, d->current);
	if (r->commit_id) {
		/* the job checks the store; a pending commit is only here */
		for (size_t i = 0; i < d->npending; i++) {
			if (!strcmp(d->pending[i].id, r->commit_id)) {
				dm_msg_reply_err(req, DM_EEXISTS,
						 "dot '%s' has a commit '%s' already", d->shown,
						 r->commit_id);
				dm_dot_job_in_free(in);
				return NULL;
			}
		}
		snprintf(in->commit_id, sizeof(in->commit_id), "%s", r->commit_id);
	}
	return in;
}

/* PUT_FILE: a commit (as prepare_commit) that first changes one key. */
static struct dm_dot_job_in *prepare_put_file(struct dot *d, struct dm_msg *req,
					      const struct dm_dot_req *r)
{
	struct dm_dot_job_in *in;

	if (!r->key || !r->message) {
		dm_msg_reply_err(req, DM_EINVAL, "a put names a key and a message");
		return NULL;
	}
	in = prepare_commit(d, req, r);
	if (!in)
		return NULL;
	in->key = dm_xstrdup(r->key);
	in->src = dup_or_null(r->src);
	in->extract = r->extract;
	return in;
}

/* RESET: the same, stopping the containers that use the branch around it. */
static struct dm_dot_job_in *prepare_reset(struct dot *d, struct dm_msg *req,
					   const struct dm_dot_req *r)
{
	struct dm_dot_job_in *in = prepare_on_branch(d, req, r);

	if (in && d->env.docker)
		affected_containers(d, in, in->branch, false);
	return in;
}

/* Remembers that a reset of b left head behind (dropping the oldest such
 * head when DM_DOT_DROPPED_MAX are kept already). */
static void keep_dropped(struct branch *b, const char *head)
{
	if (b->ndropped == DM_DOT_DROPPED_MAX) {
		memmove(b->dropped, b->dropped + 1, (b->ndropped - 1) * sizeof(b->dropped[0]));
		b->ndropped--;
	}
	snprintf(b->dropped[b->ndropped].head, sizeof(b->dropped[0].head), "%s", head);
	b->dropped[b->ndropped++].time_ns = dm_now_realtime_ns();
}

/* Adds commit id to in's roots. */
static void add_root(struct dm_dot_job_in *in, const char *id)
{
	in->roots = dm_xrealloc(in->roots, (in->nroots + 1) * sizeof(*in->roots));
	snprintf(in->roots[in->nroots++], sizeof(*in->roots), "%s", id);
}

/* EXPIRE: history stays as far as every branch's head and every head a
 * reset dropped at or after expire_before_ns reach. */
static struct dm_dot_job_in *prepare_expire(struct dot *d, struct dm_msg *req,
					    const struct dm_dot_req *r)
{
	struct dm_dot_job_in *in = job_input(d, DM_DOT_OP_EXPIRE, r, NULL);

	(void)req;
	for (size_t i = 0; i < d->nbranches; i++) {
		const struct branch *b = &d->branches[i];

		if (b->head[0])
			add_root(in, b->head);
		for (size_t j = 0; j < b->ndropped; j++)
			if (b->dropped[j].time_ns >= r->expire_before_ns)
				add_root(in, b->dropped[j].head);
	}
	return in;
}

/* DELETE_BRANCH: never the current branch, nor one that containers use or
 * that another node masters; the job checks that another branch has its
 * commits unless forced. */
static struct dm_dot_job_in *prepare_delete_branch(struct dot *d, struct dm_msg *req,
						   const struct dm_dot_req *r)
{
	struct branch *b = r->branch ? find_branch(d, r->branch) : NULL;
	struct dm_dot_job_in *in;

	if (!b) {
		dm_msg_reply_err(req, DM_ENOTFOUND, "no branch '%s'", r->branch ? r->branch : "");
		return NULL;
	}
	if (!strcmp(b->name, d->current)) {
		dm_msg_reply_err(req, DM_ECONFLICT,
				 "cannot delete branch '%s': it is the current branch (check "
				 "out another first)",
				 b->name);
		return NULL;
	}
	for (size_t i = 0; i < d->nmounts; i++) {
		if (!strcmp(d->mounts[i].branch, b->name)) {
			dm_msg_reply_err(req, DM_EBUSY,
					 "cannot delete branch '%s': container '%s' uses it",
					 b->name,
					 d->mounts[i].container[0] ? d->mounts[i].container
								   : d->mounts[i].volume);
			return NULL;
		}
	}
	if (d->env.kv_root) {
		dm_msg_reply_err(req, DM_EUNSUPPORTED,
				 "deleting a branch of a dot in a cluster is not supported yet");
		return NULL;
	}
	in = job_input(d, DM_DOT_OP_DELETE_BRANCH, r, b);
	in->force = r->force;
	for (size_t i = 0; i < d->nbranches; i++)
		if (&d->branches[i] != b && d->branches[i].head[0])
			add_root(in, d->branches[i].head);
	return in;
}

/* PRUNE: each branch's first-parent history, from its head; refused in a
 * cluster (the other nodes' copies would still hold what is pruned here). */
static struct dm_dot_job_in *prepare_prune(struct dot *d, struct dm_msg *req,
					   const struct dm_dot_req *r)
{
	struct dm_dot_job_in *in;

	if (!dm_retention_any(&r->keep)) {
		dm_msg_reply_err(req, DM_EINVAL,
				 "no --keep-* rule: say what to keep (--keep-last 5, "
				 "--keep-daily 7...)");
		return NULL;
	}
	if (d->env.kv_root) {
		dm_msg_reply_err(req, DM_EUNSUPPORTED,
				 "pruning a dot in a cluster is not supported yet");
		return NULL;
	}
	in = job_input(d, DM_DOT_OP_PRUNE, r, NULL);
	in->keep = r->keep;
	in->dry_run = r->dry_run;
	in->root_names = dm_xcalloc(d->nbranches + 1, sizeof(*in->root_names));
	for (size_t i = 0; i < d->nbranches; i++) {
		if (!d->branches[i].head[0])
			continue;
		snprintf(in->root_names[in->nroots], sizeof(*in->root_names), "%s",
			 d->branches[i].name);
		add_root(in, d->branches[i].head);
	}
	return in;
}

/* BRANCH: a new branch, from ref `from` of the current one. */
static struct dm_dot_job_in *prepare_branch(struct dot *d, struct dm_msg *req,
					    const struct dm_dot_req *r)
{
	struct dm_dot_job_in *in;

	if (find_branch(d, r->branch)) {
		dm_msg_reply_err(req, DM_EEXISTS, "branch '%s' exists", r->branch);
		return NULL;
	}
	if (!r->copy && refuse_mastered_elsewhere(d, req, r->branch))
		return NULL;
	/* a copy of a branch its master made empty is empty too, whatever
	 * this node's current branch holds (the replicator fetches a branch
	 * that has commits instead of making it) */
	in = job_input(d, DM_DOT_OP_BRANCH, r, r->copy ? NULL : find_branch(d, d->current));
	snprintf(in->new_branch, sizeof(in->new_branch), "%s", r->branch);
	return in;
}

/* Makes branch name the current one, in the engine and in the KV. */
static int make_current(struct dot *d, const char *name, struct dm_err *err)
{
	int rc = dm_engine_set_current(d->env.engine, d->id, name, err);

	if (rc)
		return rc;
	snprintf(d->current, sizeof(d->current), "%s", name);
	return persist_dot(d, err);
}

/*
 * CHECKOUT of an existing branch: at once, unless containers follow the
 * current branch (a job stops, switches and starts them). With create
 * (-b): a job makes the branch from the current head and switches to it.
 */
static struct dm_dot_job_in *prepare_checkout(struct dot *d, struct dm_msg *req,
					      const struct dm_dot_req *r)
{
	struct branch *b = find_branch(d, r->branch);
	struct dm_dot_job_in *in;
	struct dm_err err;

	if (b) {
		if (r->create) {
			dm_msg_reply_err(req, DM_EEXISTS, "branch '%s' exists", r->branch);
			return NULL;
		}
		if (strcmp(r->branch, d->current) && d->env.docker) {
			/* containers follow the current branch: stop, switch, start */
			in = job_input(d, DM_DOT_OP_CHECKOUT, NULL, b);
			in->switch_only = true;
			affected_containers(d, in, r->branch, true);
			if (in->ncontainers)
				return in;
			dm_dot_job_in_free(in);
		}
		if (make_current(d, r->branch, &err)) {
			dm_msg_reply_err(req, err.code, "%s", err.msg);
			return NULL;
		}
		publish(d);
		reply_json(req, json_object());
		return NULL;
	}
	if (!r->create) {
		dm_msg_reply_err(req, DM_ENOTFOUND,
				 "dot '%s' has no branch '%s'; use 'dm checkout -b %s' to "
				 "create it",
				 d->shown, r->branch, r->branch);
		return NULL;
	}
	if (refuse_mastered_elsewhere(d, req, r->branch))
		return NULL;
	in = job_input(d, DM_DOT_OP_CHECKOUT, NULL, find_branch(d, d->current));
	snprintf(in->new_branch, sizeof(in->new_branch), "%s", r->branch);
	if (d->env.docker)
		affected_containers(d, in, d->current, true);
	return in;
}

/* PATH: at once; no branch: the stable path that follows checkouts. */
static struct dm_dot_job_in *prepare_path(struct dot *d, struct dm_msg *req,
					  const struct dm_dot_req *r)
{
	struct dm_buf path = DM_BUF_INIT;
	struct dm_err err;

	if (r->branch && !find_branch(d, r->branch)) {
		dm_msg_reply_err(req, DM_ENOTFOUND, "dot '%s' has no branch '%s'", d->shown,
				 r->branch);
		return NULL;
	}
	if (dm_engine_path(d->env.engine, d->id, r->branch, &path, &err))
		dm_msg_reply_err(req, err.code, "%s", err.msg);
	else
		reply_json(req, json_pack("{s:s}", "path", (const char *)path.data));
	dm_buf_release(&path);
	return NULL;
}

/* RECEIVE: a job on the branch, made by it when missing. */
static struct dm_dot_job_in *prepare_receive(struct dot *d, struct dm_msg *req,
					     const struct dm_dot_req *r)
{
	struct branch *b = find_branch(d, r->branch);
	struct dm_dot_job_in *in;

	if (!r->trusted && !d->strip_setid) {
		struct dm_err err;

		/* before any of it reaches a working copy, and for good */
		d->strip_setid = true;
		if (persist_dot(d, &err)) {
			dm_msg_reply_err(req, err.code, "%s", err.msg);
			return NULL;
		}
		publish(d);
	}
	in = job_input(d, DM_DOT_OP_RECEIVE, r, b);
	in->branch_exists = b != NULL;
	/* a receive does not stop containers: while any of the dot's mounts
	 * may be of this branch, no file it holds open changes in place */
	in->wc_shared = d->nruntime_mounts > 0 || d->nmounts > 0;
	stash_name(d, r->branch, in->stash_name, sizeof(in->stash_name));
	return in;
}

/* LIMIT: a job on the branch where the engine can limit it; answered at
 * once where it cannot (the size is then only what the caller records). */
static struct dm_dot_job_in *prepare_limit(struct dot *d, struct dm_msg *req,
					   const struct dm_dot_req *r)
{
	if (!dm_engine_can_limit(d->env.engine)) {
		if (req_branch(d, req, r))
			reply_json(req, json_pack("{s:b}", "enforced", 0));
		return NULL;
	}
	return prepare_on_branch(d, req, r);
}

/* SEALED: reached only once nothing is pending (its flag). */
static struct dm_dot_job_in *prepare_sealed(struct dot *d, struct dm_msg *req,
					    const struct dm_dot_req *r)
{
	reply_json(req, json_object());
	return NULL;
}

/*
 * READY, no job running: serves one request by its prepare step. Returns
 * DM_ACTOR_KEEP when a job now holds the request, 0 when it was answered
 * here.
 */
static int start_op(struct dot *d, struct dm_msg *req)
{
	const struct dm_dot_req *r = req->payload;
	const struct op *op = op_of(r->op);
	struct dm_dot_job_in *in;

	if (!op->prepare) {
		dm_msg_reply_err(req, DM_EINVAL, "unknown request %d", r->op);
		return 0;
	}
	in = op->prepare(d, req, r);
	if (!in)
		return 0;
	start_job(d, req, in);
	return DM_ACTOR_KEEP;
}

static void enqueue(struct dot *d, struct dm_msg *req)
{
	d->queue = dm_xrealloc(d->queue, (d->nqueue + 1) * sizeof(*d->queue));
	d->queue[d->nqueue++] = req;
}

/* Serves queued requests until one starts a job or the queue is empty. */
static void drain_queue(struct dot *d)
{
	while (!d->job && d->nqueue) {
		struct dm_msg *req = d->queue[0];
		const struct dm_dot_req *r = req->payload;

		if (d->npending && r && (op_of(r->op)->flags & SEALED))
			break; /* after the INDEX job */
		memmove(d->queue, d->queue + 1, (d->nqueue - 1) * sizeof(*d->queue));
		d->nqueue--;
		if (start_op(d, req) != DM_ACTOR_KEEP)
			dm_msg_free(req);
	}
}

static void start_delete_job(struct dot *d)
{
	start_job(d, NULL, job_input(d, DM_DOT_OP_DELETE, NULL, NULL));
}

static void begin_delete(struct dot *d, struct dm_msg *req)
{
	struct dm_err err;

	d->state = DM_DOT_DELETING;
	if (persist_dot(d, &err))
		dm_warn("dot %s: cannot record its deletion: %s", d->id, err.msg);
	if (req) {
		d->deleters = dm_xrealloc(d->deleters, (d->ndeleters + 1) * sizeof(*d->deleters));
		d->deleters[d->ndeleters++] = req;
	}
	for (size_t i = 0; i < d->nqueue; i++) {
		refuse_gone(d, d->queue[i]);
		dm_msg_free(d->queue[i]);
	}
	d->nqueue = 0;
	/* the DONE messages of running jobs start the delete job */
	if (d->job)
		dm_job_cancel(d->job);
	if (d->index_job)
		dm_job_cancel(d->index_job);
	if (!d->job && !d->index_job)
		start_delete_job(d);
	publish(d);
}

static void join_delete(struct dot *d, struct dm_msg *req)
{
	d->deleters = dm_xrealloc(d->deleters, (d->ndeleters + 1) * sizeof(*d->deleters));
	d->deleters[d->ndeleters++] = req;
}

/* DELETING: a job that ran when the delete began is done (req: the request
 * it served, or NULL); the delete job starts once neither job runs. */
static void cancelled_done(struct dot *d, struct dm_msg *req)
{
	if (req)
		refuse_gone(d, req);
	dm_msg_free(req);
	if (!d->job && !d->index_job)
		start_delete_job(d);
}

static void deleted(struct dot *d, int status, const char *errmsg, uint64_t garbage)
{
	if (status) {
		/* The data could not all be removed: stay DELETING; a later delete
		 * (or the next start) tries again. */
		dm_error("dot %s: delete failed: %s", d->id, errmsg);
		for (size_t i = 0; i < d->ndeleters; i++) {
			dm_msg_reply_err(d->deleters[i], status, "cannot delete dot '%s': %s",
					 d->shown, errmsg);
			dm_msg_free(d->deleters[i]);
		}
		d->ndeleters = 0;
		publish(d);
		return;
	}
	d->state = DM_DOT_GONE;
	publish(d);
	for (size_t i = 0; i < d->ndeleters; i++) {
		reply_json(d->deleters[i], json_object());
		dm_msg_free(d->deleters[i]);
	}
	d->ndeleters = 0;
	dm_registry_dot_gone(d->env.registry, d->id);
	dm_info("dot %s (%s/%s) deleted", d->id, d->name.ns, d->name.name);
	if (d->env.garbage && garbage)
		d->env.garbage(d->env.garbage_ctx, garbage);
}

static void created(struct dot *d, struct dm_msg *req)
{
	struct dm_err err;
	struct branch *b = find_branch(d, "master");

	d->state = DM_DOT_READY;
	if (dm_engine_set_current(d->env.engine, d->id, d->current, &err) || persist_dot(d, &err) ||
	    persist_branch(d, b, &err)) {
		if (req)
			dm_msg_reply_err(req, err.code, "%s", err.msg);
		begin_delete(d, NULL);
		return;
	}
	publish(d);
	if (req)
		answer_view(d, req);
}

/* CREATING, the CREATE request: the job that makes the master working copy. */
static void on_create(struct dot *d, struct dm_msg *req)
{
	start_job(d, req, job_input(d, DM_DOT_OP_CREATE, NULL, find_branch(d, "master")));
}

static void create_failed(struct dot *d, struct dm_msg *req, int status, const char *detail)
{
	if (req)
		dm_msg_reply_err(req, status, "cannot create dot '%s': %s", d->shown, detail);
	dm_msg_free(req);
	begin_delete(d, NULL);
}

/* A two-step commit's snapshot is taken: the head moves now, the commit is
 * pending until its INDEX job seals it. */
/* The job's answer for the requester, with what went wrong after the
 * change was made ("warnings"), which the client shows. */
static json_t *with_warnings(const struct dm_dot_job_out *out)
{
	json_t *res = out->json ? json_incref(out->json) : json_object();

	if (out->warnings)
		json_object_set(res, "warnings", out->warnings);
	return res;
}

static void take_pending(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r,
			 const struct dm_dot_job_out *out)
{
	struct branch *b = find_branch(d, r->branch ? r->branch : d->current);
	struct branch before;
	struct pending pc;
	struct dm_err err;
	const char *key;
	json_t *v;

	if (!b) {
		dm_msg_reply_err(req, DM_ENOTFOUND, "the branch went away");
		return;
	}
	memset(&pc, 0, sizeof(pc));
	snprintf(pc.id, sizeof(pc.id), "%s", out->head);
	snprintf(pc.parent, sizeof(pc.parent), "%s", b->head);
	pc.time_ns = out->time_ns;
	pc.message = dm_xstrdup(r->message ? r->message : "");
	pc.author = dm_xstrdup(r->author ? r->author : "");
	pc.keys = dm_xcalloc(r->nmeta + json_object_size(out->meta) + 1, sizeof(char *));
	pc.values = dm_xcalloc(r->nmeta + json_object_size(out->meta) + 1, sizeof(char *));
	for (size_t i = 0; i < r->nmeta; i++) {
		pc.keys[pc.nmeta] = dm_xstrdup(r->meta_keys[i]);
		pc.values[pc.nmeta++] = dm_xstrdup(r->meta_values[i]);
	}
	json_object_foreach(out->meta, key, v)
	{
		pc.keys[pc.nmeta] = dm_xstrdup(key);
		pc.values[pc.nmeta++] = dm_xstrdup(json_string_value(v));
	}
	before = *b;
	memcpy(b->head, out->head, sizeof(b->head));
	b->has_tree = false;
	b->commits = out->commits;
	b->dirty = 0;
	b->measured = false;
	if (persist_pending(d, b, &pc, &err)) {
		*b = before;
		pending_release(&pc);
		dm_engine_drop_snapshot(d->env.engine, d->id, out->head, NULL);
		dm_msg_reply_err(req, err.code, "%s", err.msg);
		return;
	}
	d->pending = dm_xrealloc(d->pending, (d->npending + 1) * sizeof(*d->pending));
	d->pending[d->npending++] = pc;
	publish(d);
	reply_json(req, with_warnings(out));
	maybe_start_index(d);
}

/* ---- finishing an operation: its finish step ---- */

/* Moves branch b to where the job left it, and records it. */
static int land_branch(struct dot *d, struct branch *b, const struct dm_dot_job_out *out,
		       struct dm_err *err)
{
	memcpy(b->head, out->head, sizeof(b->head));
	b->has_tree = out->has_tree;
	b->tree = out->tree;
	b->commits = out->commits;
	b->dirty = out->dirty;
	b->measured = false;
	if (out->sized)
		b->size = out->size;
	return persist_branch(d, b, err);
}

/* Publishes the change, and answers the job's result (rc 0) or what
 * failed after the job (rc, with err). */
static void answer_job(struct dot *d, struct dm_msg *req, int rc, const struct dm_err *err,
		       const struct dm_dot_job_out *out)
{
	publish(d);
	if (rc) {
		dm_msg_reply_err(req, rc, "%s", err->msg);
		return;
	}
	reply_json(req, with_warnings(out));
}

/* DIFF: nothing changes. */
static void finish_answer(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r,
			  struct dm_dot_job_out *out)
{
	answer_job(d, req, 0, NULL, out);
}

/* COMMIT: sealed, the head moves; a snapshot taken, the commit is pending. */
static void finish_commit(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r,
			  struct dm_dot_job_out *out)
{
	struct branch *b;
	struct dm_err err;
	int rc = 0;

	if (out->pending) {
		take_pending(d, req, r, out);
		return;
	}
	b = find_branch(d, r->branch ? r->branch : d->current);
	if (b)
		rc = land_branch(d, b, out, &err);
	answer_job(d, req, rc, &err, out);
}

/* RESET: the head moves, and the reset count with it. */
static void finish_reset(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r,
			 struct dm_dot_job_out *out)
{
	struct branch *b = find_branch(d, r->branch ? r->branch : d->current);
	struct dm_err err;
	int rc = 0;

	if (b) {
		b->resets = r->resets ? r->resets : b->resets + 1;
		if (b->head[0] && strcmp(b->head, out->head))
			keep_dropped(b, b->head);
		rc = land_branch(d, b, out, &err);
	}
	answer_job(d, req, rc, &err, out);
}

/* EXPIRE: the heads dropped before the time asked no longer keep history. */
static void finish_expire(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r,
			  struct dm_dot_job_out *out)
{
	struct dm_err err;
	int rc = 0;

	for (size_t i = 0; i < d->nbranches && !rc; i++) {
		struct branch *b = &d->branches[i];
		size_t keep = 0;

		for (size_t j = 0; j < b->ndropped; j++)
			if (b->dropped[j].time_ns >= r->expire_before_ns)
				b->dropped[keep++] = b->dropped[j];
		if (keep == b->ndropped)
			continue;
		b->ndropped = keep;
		rc = persist_branch(d, b, &err);
	}
	answer_job(d, req, rc, &err, out);
}

/* SET_ORIGIN: at once; a fork records where it came from (once). */
static struct dm_dot_job_in *prepare_set_origin(struct dot *d, struct dm_msg *req,
						const struct dm_dot_req *r)
{
	struct dm_fork_origin old = d->fork_of;
	struct dm_err err;

	if (!r->origin || !r->origin->id[0]) {
		dm_msg_reply_err(req, DM_EINVAL, "no origin to record");
		return NULL;
	}
	d->fork_of = *r->origin;
	if (persist_dot(d, &err)) {
		d->fork_of = old;
		dm_msg_reply_err(req, err.code, "%s", err.msg);
		return NULL;
	}
	publish(d);
	reply_json(req, json_object());
	return NULL;
}

/* Whether hold h is a symlink (dm mount's) that no longer leads to its
 * copy: removed, or made to lead elsewhere. */
static bool hold_gone(const struct dm_commit_hold *h)
{
	char target[DM_MOUNT_PATH_MAX];
	ssize_t n;

	if (strncmp(h->holder, "link:", 5))
		return false;
	n = readlink(h->holder + 5, target, sizeof(target) - 1);
	if (n < 0)
		return errno == ENOENT || errno == EINVAL || errno == ENOTDIR;
	target[n] = '\0';
	return strcmp(target, h->path) != 0;
}

/* Drops the holds whose link went, and those of holder (NULL: none)
 * unless it is a link that still leads to its copy (dm mount replaced it
 * by one to this very copy); returns whether any went. */
static bool drop_holds(struct dot *d, const char *holder)
{
	size_t keep = 0;

	for (size_t i = 0; i < d->nholds; i++) {
		const struct dm_commit_hold *h = &d->holds[i];
		bool mine = holder && !strcmp(h->holder, holder) && strncmp(holder, "link:", 5);

		if (!mine && !hold_gone(h))
			d->holds[keep++] = *h;
	}
	if (keep == d->nholds)
		return false;
	d->nholds = keep;
	return true;
}

/* The commits still held, as the job's roots: the copies to keep. */
static void held_roots(struct dot *d, struct dm_dot_job_in *in)
{
	for (size_t i = 0; i < d->nholds; i++)
		add_root(in, d->holds[i].commit);
}

static bool holder_valid(const char *h)
{
	size_t len = h ? strlen(h) : 0;

	if (!len || len >= DM_HOLDER_MAX)
		return false;
	for (const char *p = h; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* MOUNT_COMMIT: a job makes the copy (and removes the copies nobody holds
 * any more); the hold is recorded when it is done. */
static struct dm_dot_job_in *prepare_mount_commit(struct dot *d, struct dm_msg *req,
						  const struct dm_dot_req *r)
{
	struct dm_dot_job_in *in;
	struct dm_err err;

	if (!holder_valid(r->holder) || !r->from) {
		dm_msg_reply_err(req, DM_EINVAL, "a commit mount needs a commit and a holder");
		return NULL;
	}
	if (drop_holds(d, NULL) && persist_dot(d, &err))
		dm_warn("dot %s: %s", d->id, err.msg);
	in = job_input(d, DM_DOT_OP_MOUNT_COMMIT, r, find_branch(d, d->current));
	for (size_t i = 0; i < d->nholds; i++)
		if (strcmp(d->holds[i].holder, r->holder))
			add_root(in, d->holds[i].commit);
	return in;
}

/* MOUNT_COMMIT done: holder holds the copy (instead of what it held). */
static void finish_mount_commit(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r,
				struct dm_dot_job_out *out)
{
	const char *commit = json_string_value(json_object_get(out->json, "commit"));
	const char *path = json_string_value(json_object_get(out->json, "path"));
	struct dm_commit_hold *h = NULL;
	struct dm_err err;
	int rc = 0;

	if (!commit || !path || strlen(path) >= sizeof(h->path)) {
		answer_job(d, req, dm_err_set(&err, DM_EINTERNAL, "the copy has no path"), &err,
			   out);
		return;
	}
	for (size_t i = 0; i < d->nholds && !h; i++)
		if (!strcmp(d->holds[i].holder, r->holder))
			h = &d->holds[i];
	if (!h) {
		d->holds = dm_xrealloc(d->holds, (d->nholds + 1) * sizeof(*d->holds));
		h = &d->holds[d->nholds++];
		memset(h, 0, sizeof(*h));
		snprintf(h->holder, sizeof(h->holder), "%s", r->holder);
	}
	snprintf(h->commit, sizeof(h->commit), "%s", commit);
	snprintf(h->path, sizeof(h->path), "%s", path);
	rc = persist_dot(d, &err);
	answer_job(d, req, rc, &err, out);
}

/* UNMOUNT_COMMIT: the holds go at once; a job removes the copies no one
 * holds any more. */
static struct dm_dot_job_in *prepare_unmount_commit(struct dot *d, struct dm_msg *req,
						    const struct dm_dot_req *r)
{
	struct dm_dot_job_in *in;
	struct dm_err err;

	if (drop_holds(d, r->holder)) {
		if (persist_dot(d, &err)) {
			dm_msg_reply_err(req, err.code, "%s", err.msg);
			return NULL;
		}
		publish(d);
	}
	in = job_input(d, DM_DOT_OP_UNMOUNT_COMMIT, r, NULL);
	held_roots(d, in);
	return in;
}

/* DELETE_BRANCH: the branch and its record go. */
static void finish_delete_branch(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r,
				 struct dm_dot_job_out *out)
{
	struct branch *b = find_branch(d, r->branch);
	struct dm_err err;
	char key[256];
	int rc = 0;

	if (b) {
		dm_dot_kv_key(key, sizeof(key), &d->env, "dots/%s/branches/%s", d->id, b->name);
		rc = dm_kv_delete(d->env.kv, NULL, key, &err);
		if (rc == DM_ENOTFOUND)
			rc = 0;
		if (!rc) {
			size_t i = (size_t)(b - d->branches);

			dm_wcwatch_entry_unref(b->watch);
			memmove(b, b + 1, (d->nbranches - i - 1) * sizeof(*b));
			d->nbranches--;
		}
	}
	answer_job(d, req, rc, &err, out);
}

static void finish_branch(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r,
			  struct dm_dot_job_out *out)
{
	struct dm_err err;
	int rc = land_branch(d, add_branch(d, r->branch), out, &err);

	answer_job(d, req, rc, &err, out);
}

/* CHECKOUT: switched (the job moved the stable path), or -b: the branch
 * exists now; then it becomes the current one. */
static void finish_checkout(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r,
			    struct dm_dot_job_out *out)
{
	struct dm_err err;
	int rc;

	if (out->switched) {
		snprintf(d->current, sizeof(d->current), "%s", r->branch);
		rc = persist_dot(d, &err);
		answer_job(d, req, rc, &err, out);
		return;
	}
	rc = land_branch(d, add_branch(d, r->branch), out, &err);
	if (!rc)
		rc = make_current(d, r->branch, &err);
	answer_job(d, req, rc, &err, out);
}

/* RECEIVE: the branch (made when missing) moves; a stashed one is added. */
static void finish_receive(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r,
			   struct dm_dot_job_out *out)
{
	struct branch *b;
	struct dm_err err;
	int rc = 0;

	if (out->stashed) {
		struct branch *sb = add_branch(d, out->stash_name);

		memcpy(sb->head, out->stash_head, sizeof(sb->head));
		sb->has_tree = out->stash_has_tree;
		sb->tree = out->stash_tree;
		sb->commits = out->stash_commits;
		/* a failure here goes unanswered: the branch's own record below
		 * sets rc (as it always has) */
		rc = persist_branch(d, sb, &err);
	}
	b = find_branch(d, r->branch);
	if (!b)
		b = add_branch(d, r->branch);
	rc = land_branch(d, b, out, &err);
	answer_job(d, req, rc, &err, out);
}

/* REFRESH: the measures of the branch, and the current one's subdots; the
 * answer is the view. */
static void finish_refresh(struct dot *d, struct dm_msg *req, const struct dm_dot_req *r,
			   struct dm_dot_job_out *out)
{
	struct branch *b = find_branch(d, r->branch ? r->branch : d->current);

	if (b) {
		b->dirty = out->dirty;
		b->size = out->size;
		b->measured = true;
		memcpy(b->measured_head, out->head, sizeof(b->measured_head));
		b->measured_has_tree = out->has_tree;
		b->measured_ns = out->measured_ns;
		b->token = out->token;
	}
	if (b && !strcmp(b->name, d->current)) {
		free(d->subdots);
		d->subdots = out->subdots;
		d->nsubdots = out->nsubdots;
		out->subdots = NULL;
		out->nsubdots = 0;
		memcpy(d->subdots_of, b->name, sizeof(d->subdots_of));
	}
	publish(d);
	answer_view(d, req);
}

/* READY, a job done: a failure is answered here, a success by the
 * operation's finish step. */
static void finish_op(struct dot *d, struct dm_msg *req, int status, struct dm_dot_job_out *out,
		      const char *detail)
{
	const struct dm_dot_req *r = req ? req->payload : NULL;

	if (!r)
		return;
	if (status) {
		dm_msg_reply_err(req, status, "%s", detail[0] ? detail : "operation failed");
		return;
	}
	op_of(r->op)->finish(d, req, r, out);
}

static void on_job_done(struct dot *d, struct dm_msg *msg)
{
	struct dm_msg *req = d->job_req;
	struct dm_dot_job_out *out = msg->payload;
	struct dm_dot_job_in *in = dm_job_arg(msg->job);
	const char *detail = out ? out->errmsg : "";

	d->job = NULL;
	d->job_req = NULL;
	switch (d->state) {
	case DM_DOT_CREATING:
		if (msg->status) {
			create_failed(d, req, msg->status, detail);
			return;
		}
		created(d, req);
		dm_msg_free(req);
		drain_queue(d);
		return;
	case DM_DOT_DELETING:
		if (in->op == DM_DOT_OP_DELETE) {
			deleted(d, msg->status, detail, out ? out->size : 0);
			return;
		}
		cancelled_done(d, req);
		return;
	default:
		finish_op(d, req, msg->status, out, detail);
		dm_msg_free(req);
		publish(d);
		drain_queue(d);
		maybe_start_index(d);
	}
}

/* ---- indexing (two-step commits) ---- */

static void maybe_start_index(struct dot *d)
{
	struct dm_dot_job_in *in;
	const struct pending *pc;
	struct dm_err err;

	if (d->state != DM_DOT_READY || d->index_job || !d->npending)
		return;
	pc = &d->pending[0];
	in = job_input(d, DM_DOT_OP_INDEX, NULL, NULL);
	snprintf(in->head, sizeof(in->head), "%s", pc->id);
	in->old_head = dm_xstrdup(pc->parent);
	in->time_ns = pc->time_ns;
	in->message = dm_xstrdup(pc->message);
	in->author = dm_xstrdup(pc->author);
	in->nmeta = pc->nmeta;
	in->meta_keys = dm_xcalloc(pc->nmeta ? pc->nmeta : 1, sizeof(char *));
	in->meta_values = dm_xcalloc(pc->nmeta ? pc->nmeta : 1, sizeof(char *));
	for (size_t i = 0; i < pc->nmeta; i++) {
		in->meta_keys[i] = dm_xstrdup(pc->keys[i]);
		in->meta_values[i] = dm_xstrdup(pc->values[i]);
	}
	if (dm_job_start(&d->index_job, d->self, dm_dot_run_job, in, dm_dot_job_in_free, &err)) {
		d->index_job = NULL;
		snprintf(d->index_error, sizeof(d->index_error), "%s", err.msg);
	}
}

/* The oldest pending commit is sealed (or failed to be). */
static void on_index_done(struct dot *d, struct dm_msg *msg)
{
	const struct dm_dot_job_out *out = msg->payload;
	struct dm_err err;
	char key[256];

	d->index_job = NULL;
	if (d->state == DM_DOT_DELETING) {
		cancelled_done(d, NULL);
		return;
	}
	if (msg->status || !out) {
		/* stays pending; the next commit or start tries again */
		snprintf(d->index_error, sizeof(d->index_error), "%s",
			 out ? out->errmsg : "indexing failed");
		dm_error("dot %s: cannot index commit %s: %s", d->id, d->pending[0].id,
			 d->index_error);
		publish(d);
		return;
	}
	d->index_error[0] = '\0';
	for (size_t i = 0; i < d->nbranches; i++) {
		if (strcmp(d->branches[i].head, out->head))
			continue;
		d->branches[i].has_tree = true;
		d->branches[i].tree = out->tree;
	}
	dm_dot_kv_key(key, sizeof(key), &d->env, "dots/%s/pending/%s", d->id, out->head);
	if (dm_kv_delete(d->env.kv, NULL, key, &err) && err.code != DM_ENOTFOUND)
		dm_warn("dot %s: %s", d->id, err.msg);
	pending_release(&d->pending[0]);
	memmove(d->pending, d->pending + 1, (d->npending - 1) * sizeof(*d->pending));
	d->npending--;
	publish(d);
	drain_queue(d);
	maybe_start_index(d);
}

/* A request: by the state table's rows, in their order. */
static int on_request(struct dot *d, struct dm_msg *msg)
{
	struct dm_dot_req *r = msg->payload;
	const struct op *op;

	if (!r) {
		dm_msg_reply_err(msg, DM_EINVAL, "empty request");
		return 0;
	}
	if (d->state == DM_DOT_GONE) {
		if (r->op == DM_DOT_OP_DELETE)
			confirm_deleted(d, msg);
		else
			refuse_gone(d, msg);
		return 0;
	}
	if (d->state == DM_DOT_DELETING) {
		if (r->op != DM_DOT_OP_DELETE) {
			refuse_gone(d, msg);
			return 0;
		}
		join_delete(d, msg);
		return DM_ACTOR_KEEP;
	}
	if (r->op == DM_DOT_OP_DELETE) {
		if (d->nmounts && d->state == DM_DOT_READY) {
			refuse_busy(d, msg);
			return 0;
		}
		begin_delete(d, msg);
		return DM_ACTOR_KEEP;
	}
	op = op_of(r->op);
	/* MOUNT, UNMOUNT (one without a mount waits its turn to be refused) */
	if (d->state == DM_DOT_READY && (op->flags & AT_ONCE) && r->mount) {
		op->prepare(d, msg, r);
		return 0;
	}
	if (d->state == DM_DOT_CREATING) {
		if (r->op == DM_DOT_OP_CREATE && !d->job) {
			on_create(d, msg);
			return DM_ACTOR_KEEP;
		}
		enqueue(d, msg);
		return DM_ACTOR_KEEP;
	}
	if (r->op == DM_DOT_OP_CREATE) {
		refuse_exists(d, msg);
		return 0;
	}
	if ((d->job || d->npending) && (op->flags & LAST_VIEW)) {
		answer_view(d, msg);
		return 0;
	}
	if (d->job || (d->npending && (op->flags & SEALED))) {
		enqueue(d, msg);
		return DM_ACTOR_KEEP;
	}
	return start_op(d, msg);
}

static int handle(struct dm_actor *self, struct dm_msg *msg)
{
	struct dot *d = dm_actor_user(self);

	switch (msg->type) {
	case DM_MSG_JOB_DONE:
		if (msg->job == d->index_job)
			on_index_done(d, msg);
		else
			on_job_done(d, msg);
		return 0;
	case DM_MSG_JOB_PROGRESS:
		return 0;
	default:
		if (!dm_msg_is_request(msg)) {
			/* a plain DELETE resumes an interrupted deletion */
			struct dm_dot_req *r = msg->payload;

			if (r && r->op == DM_DOT_OP_DELETE && d->state == DM_DOT_DELETING &&
			    !d->job)
				start_delete_job(d);
			if (r && r->op == DM_DOT_OP_INDEX)
				maybe_start_index(d);
			return 0;
		}
		return on_request(d, msg);
	}
}

static void free_dot(void *p)
{
	struct dot *d = p;

	/* the runtime answers every request still held here */
	dm_msg_free(d->job_req);
	for (size_t i = 0; i < d->nqueue; i++)
		dm_msg_free(d->queue[i]);
	for (size_t i = 0; i < d->ndeleters; i++)
		dm_msg_free(d->deleters[i]);
	free(d->queue);
	free(d->deleters);
	free_branches(d);
	free(d->collaborators);
	free(d->mounts);
	free(d->runtime_mounts);
	free(d->subdots);
	free(d->holds);
	json_decref(d->hooks);
	for (size_t i = 0; i < d->npending; i++)
		pending_release(&d->pending[i]);
	free(d->pending);
	dm_actor_unref(d->env.registry);
	dm_dot_slot_unref(d->slot);
	free(d);
}

/* Loads the persisted branches: {"master":{"head":"…","commits":3},…}. */
/* The heads a branch's resets left behind, as persisted (a malformed
 * entry is skipped: it only kept history longer). */
static void load_dropped(struct branch *b, json_t *a)
{
	json_t *e;
	size_t i;

	json_array_foreach(a, i, e)
	{
		const char *head = json_string_value(json_object_get(e, "head"));
		json_t *t = json_object_get(e, "time_ns");

		if (b->ndropped == DM_DOT_DROPPED_MAX || !head || !head[0] ||
		    strlen(head) > DM_COMMIT_ID_LEN_MAX || !json_is_integer(t))
			continue;
		snprintf(b->dropped[b->ndropped].head, sizeof(b->dropped[0].head), "%s", head);
		b->dropped[b->ndropped++].time_ns = json_integer_value(t);
	}
}

static int load_branches(struct dot *d, json_t *branches, struct dm_err *err)
{
	const char *name;
	json_t *v;

	json_object_foreach(branches, name, v)
	{
		const char *head = json_string_value(json_object_get(v, "head"));
		struct branch *b;

		if (!dm_name_part_valid(name, strlen(name)) || !head ||
		    strlen(head) > DM_COMMIT_ID_LEN_MAX)
			return dm_err_set(err, DM_ECORRUPT, "dot %s: corrupt branch '%s' in the KV",
					  d->id, name);
		b = add_branch(d, name);
		snprintf(b->head, sizeof(b->head), "%s", head);
		b->commits = (uint64_t)json_integer_value(json_object_get(v, "commits"));
		b->resets = (uint64_t)json_integer_value(json_object_get(v, "resets"));
		load_dropped(b, json_object_get(v, "dropped"));
		if (head[0]) {
			struct dm_commit c;
			int rc = dm_dot_load_commit(&c, d->env.store, d->id, head, err);

			/* a head not indexed yet must be pending: checked after
			 * load_pending by check_heads */
			if (rc == DM_ENOTFOUND)
				continue;
			if (rc)
				return dm_err_prefix(err, "dot %s branch '%s'", d->id, name);
			b->has_tree = true;
			b->tree = c.tree;
			dm_commit_release(&c);
		}
	}
	return 0;
}

/* Every head without a tree is a commit still pending. */
static int check_heads(struct dot *d, struct dm_err *err)
{
	for (size_t i = 0; i < d->nbranches; i++) {
		const struct branch *b = &d->branches[i];
		bool pending = false;

		if (!b->head[0] || b->has_tree)
			continue;
		for (size_t j = 0; j < d->npending && !pending; j++)
			pending = !strcmp(d->pending[j].id, b->head);
		if (!pending)
			return dm_err_set(
				err, DM_ECORRUPT,
				"dot %s branch '%s': head %s is neither stored nor pending", d->id,
				b->name, b->head);
	}
	return 0;
}

/* Snapshots to keep after a restart: those of sealed or pending commits
 * (not of pruned ones: a crash after the prune, before their drop). */
static bool keep_snapshot(const char *commit_id, void *ctx)
{
	struct dot *d = ctx;
	unsigned flags = 0;

	for (size_t i = 0; i < d->npending; i++)
		if (!strcmp(d->pending[i].id, commit_id))
			return true;
	return dm_store_commit_info(d->env.store, d->id, commit_id, NULL, &flags, NULL) == 0 &&
	       !(flags & DM_COMMIT_PRUNED);
}

static int pending_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pending *)a)->id, ((const struct pending *)b)->id);
}

/* {"<commit id>": {"branch","parent","time_ns","message","author","metadata"}};
 * commit ids are time-ordered, so sorting them gives the order to seal. */
static int load_pending(struct dot *d, json_t *all, struct dm_err *err)
{
	const char *id;
	json_t *v;

	if (!json_is_object(all))
		return dm_err_set(err, DM_ECORRUPT, "dot %s: corrupt pending commits", d->id);
	d->pending = dm_xcalloc(json_object_size(all) + 1, sizeof(*d->pending));
	json_object_foreach(all, id, v)
	{
		struct pending *pc = &d->pending[d->npending];
		const char *parent = json_string_value(json_object_get(v, "parent"));
		const char *message = json_string_value(json_object_get(v, "message"));
		const char *author = json_string_value(json_object_get(v, "author"));
		json_t *meta = json_object_get(v, "metadata"), *mv;
		const char *k;

		if (!parent || !message || !author || strlen(id) > DM_COMMIT_ID_LEN_MAX ||
		    strlen(parent) > DM_COMMIT_ID_LEN_MAX || (meta && !json_is_object(meta)))
			return dm_err_set(err, DM_ECORRUPT,
					  "dot %s: corrupt pending commit '%.40s'", d->id, id);
		memset(pc, 0, sizeof(*pc));
		snprintf(pc->id, sizeof(pc->id), "%s", id);
		snprintf(pc->parent, sizeof(pc->parent), "%s", parent);
		pc->time_ns = json_integer_value(json_object_get(v, "time_ns"));
		pc->message = dm_xstrdup(message);
		pc->author = dm_xstrdup(author);
		pc->keys = dm_xcalloc(json_object_size(meta) + 1, sizeof(char *));
		pc->values = dm_xcalloc(json_object_size(meta) + 1, sizeof(char *));
		json_object_foreach(meta, k, mv)
		{
			pc->keys[pc->nmeta] = dm_xstrdup(k);
			const char *val = json_string_value(mv);

			pc->values[pc->nmeta++] = dm_xstrdup(val ? val : "");
		}
		d->npending++;
	}
	qsort(d->pending, d->npending, sizeof(*d->pending), pending_cmp);
	return 0;
}

/* The persisted collaborators: [{"user":"bob","role":"read"},…]; a plain
 * name (a record from before roles) is a collaborator with role write,
 * which is what every collaborator could do then. */
static int load_collaborators(struct dot *d, json_t *list, struct dm_err *err)
{
	size_t i;
	json_t *v;

	if (!json_is_array(list))
		return dm_err_set(err, DM_ECORRUPT, "dot %s: corrupt collaborators in the KV",
				  d->id);
	d->collaborators = dm_xcalloc(json_array_size(list) + 1, sizeof(*d->collaborators));
	json_array_foreach(list, i, v)
	{
		struct dm_collaborator *c = &d->collaborators[d->ncollaborators];
		const char *u = json_is_string(v) ? json_string_value(v)
						  : json_string_value(json_object_get(v, "user"));
		int role = DM_ROLE_WRITE;

		if (!u || !dm_name_part_valid(u, strlen(u)) ||
		    (!json_is_string(v) &&
		     dm_dot_role_parse(&role, json_string_value(json_object_get(v, "role")), NULL)))
			return dm_err_set(err, DM_ECORRUPT,
					  "dot %s: corrupt collaborator in the KV", d->id);
		snprintf(c->user, sizeof(c->user), "%s", u);
		c->role = role;
		d->ncollaborators++;
	}
	return 0;
}

/* The persisted hooks (NULL: none), each checked as when it was set. */
static int load_hooks(struct dot *d, json_t *hooks, struct dm_err *err)
{
	const char *name;
	json_t *v;

	if (!hooks)
		return 0;
	if (!json_is_object(hooks))
		return dm_err_set(err, DM_ECORRUPT, "dot %s: corrupt hooks in the KV", d->id);
	json_object_foreach(hooks, name, v)
	{
		struct dm_hook h;

		if ((strcmp(name, DM_HOOK_PRE_COMMIT) && strcmp(name, DM_HOOK_POST_COMMIT)) ||
		    dm_hook_from_json(&h, v, err))
			return dm_err_set(err, DM_ECORRUPT, "dot %s: corrupt hook '%s' in the KV",
					  d->id, name);
		dm_hook_release(&h);
	}
	d->hooks = json_deep_copy(hooks);
	return 0;
}

/* A fork's origin and the holds on read-only copies, from the record. */
static int load_fork_and_holds(struct dot *d, json_t *record, struct dm_err *err)
{
	json_t *f = json_object_get(record, "fork_of"), *holds = json_object_get(record,
										   "commit_mounts");
	json_t *h;
	size_t i;

	if (f) {
		const char *id = json_string_value(json_object_get(f, "id"));
		const char *dot = json_string_value(json_object_get(f, "dot"));
		const char *commit = json_string_value(json_object_get(f, "commit"));

		if (!id || !dot || !commit || strlen(id) > DM_DOT_ID_MAX ||
		    strlen(dot) >= sizeof(d->fork_of.dot) || strlen(commit) > DM_COMMIT_ID_LEN_MAX)
			return dm_err_set(err, DM_ECORRUPT, "dot %s: corrupt fork origin in the KV",
					  d->id);
		snprintf(d->fork_of.id, sizeof(d->fork_of.id), "%s", id);
		snprintf(d->fork_of.dot, sizeof(d->fork_of.dot), "%s", dot);
		snprintf(d->fork_of.commit, sizeof(d->fork_of.commit), "%s", commit);
	}
	if (holds && !json_is_array(holds))
		return dm_err_set(err, DM_ECORRUPT, "dot %s: corrupt commit mounts in the KV", d->id);
	d->holds = dm_xcalloc(json_array_size(holds) + 1, sizeof(*d->holds));
	json_array_foreach(holds, i, h)
	{
		struct dm_commit_hold *c = &d->holds[d->nholds];
		const char *commit = json_string_value(json_object_get(h, "commit"));
		const char *holder = json_string_value(json_object_get(h, "holder"));
		const char *path = json_string_value(json_object_get(h, "path"));

		if (!commit || !holder || !path || strlen(commit) >= sizeof(c->commit) ||
		    strlen(holder) >= sizeof(c->holder) || strlen(path) >= sizeof(c->path))
			return dm_err_set(err, DM_ECORRUPT, "dot %s: corrupt commit mount in the KV",
					  d->id);
		snprintf(c->commit, sizeof(c->commit), "%s", commit);
		snprintf(c->holder, sizeof(c->holder), "%s", holder);
		snprintf(c->path, sizeof(c->path), "%s", path);
		d->nholds++;
	}
	return 0;
}

/* Frees a dot that never started (no actor, nothing published). */
static void abandon(struct dot *d)
{
	free_branches(d);
	free(d->collaborators);
	free(d->holds);
	json_decref(d->hooks);
	for (size_t i = 0; i < d->npending; i++)
		pending_release(&d->pending[i]);
	free(d->pending);
	dm_dot_slot_unref(d->slot);
	free(d);
}

int dm_dot_start(struct dm_dot_handle **out, const struct dm_dot_env *env, const char *id,
		 const struct dm_dot_name *name, int state, const char *current, json_t *branches,
		 json_t *record, json_t *pending, struct dm_err *err)
{
	json_t *collaborators = json_object_get(record, "collaborators");
	const char *owner = json_string_value(json_object_get(record, "owner"));
	struct dm_dot_handle *h = NULL;
	struct dot *d = dm_xcalloc(1, sizeof(*d));
	char actor_name[2 * DM_NAME_PART_MAX + 8];
	int rc;

	d->env = *env;
	d->slot = dm_dot_slot_new();
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->name = *name;
	dm_dot_name_text(d->shown, name);
	snprintf(d->owner, sizeof(d->owner), "%s", owner ? owner : name->ns);
	d->state = state;
	snprintf(d->current, sizeof(d->current), "%s", current ? current : "master");
	if (branches)
		rc = load_branches(d, branches, err);
	else
		rc = (add_branch(d, "master"), 0);
	if (!rc && owner && !dm_name_part_valid(owner, strlen(owner)))
		rc = dm_err_set(err, DM_ECORRUPT, "dot %s: corrupt owner in the KV", id);
	if (!rc && collaborators)
		rc = load_collaborators(d, collaborators, err);
	if (!rc)
		rc = load_hooks(d, json_object_get(record, "hooks"), err);
	d->strip_setid = json_is_true(json_object_get(record, "strip_setid"));
	if (!rc)
		rc = load_fork_and_holds(d, record, err);
	if (!rc && pending)
		rc = load_pending(d, pending, err);
	if (!rc)
		rc = check_heads(d, err);
	/* a crash between a snapshot and its record leaves one nobody knows */
	if (!rc && branches && state == DM_DOT_READY &&
	    dm_engine_sweep_snapshots(env->engine, id, keep_snapshot, d, err))
		dm_warn("dot %s: %s", id, err->msg);
	if (!rc && !find_branch(d, d->current))
		rc = dm_err_set(err, DM_ECORRUPT, "dot %s: current branch '%s' is missing", id,
				d->current);
	if (rc) {
		abandon(d);
		return rc;
	}
	publish(d);
	h = dm_xcalloc(1, sizeof(*h));
	atomic_init(&h->refs, 1);
	snprintf(h->id, sizeof(h->id), "%s", id);
	h->slot = d->slot;
	atomic_fetch_add(&d->slot->refs, 1);
	snprintf(actor_name, sizeof(actor_name), "dot %s/%s", name->ns, name->name);
	rc = dm_actor_new(&h->actor, env->sched, actor_name, handle, d, free_dot, err);
	if (rc) {
		abandon(d);
		dm_dot_slot_unref(h->slot);
		free(h);
		return rc;
	}
	d->self = h->actor;
	/* held until the dot is freed: it tells the registry when it is gone */
	if (d->env.registry)
		dm_actor_ref(d->env.registry);
	if (state == DM_DOT_DELETING)
		dm_actor_post(h->actor,
			      dm_msg_new(0, dm_dot_req_new(DM_DOT_OP_DELETE), dm_dot_req_free));
	else if (d->npending) /* dmd stopped before sealing them: go on */
		dm_actor_post(h->actor,
			      dm_msg_new(0, dm_dot_req_new(DM_DOT_OP_INDEX), dm_dot_req_free));
	*out = h;
	return 0;
}

int dm_dot_call(json_t **result, struct dm_dot_handle *h, struct dm_dot_req *req, int timeout_ms,
		struct dm_err *err)
{
	struct dm_msg *reply = NULL;
	int rc = dm_actor_call(&reply, h->actor, dm_msg_new(0, req, dm_dot_req_free), timeout_ms,
			       err);

	if (rc == DM_ECANCELED) {
		struct dm_dot_view *v = dm_dot_handle_view(h);

		char shown[DM_DOT_NAME_TEXT_MAX];

		rc = dm_err_set(err, DM_ENOTFOUND, "no such dot '%s'",
				dm_dot_name_text(shown, &v->name));
		dm_dot_view_unref(v);
	} else if (rc == DM_ETIMEOUT && !reply) { /* not the dot's own answer */
		dm_err_set(err, rc, "timed out after %d ms waiting for the dot", timeout_ms);
	}
	if (!rc) {
		*result = reply->payload;
		reply->payload = NULL;
		if (!*result)
			*result = json_object();
	}
	dm_msg_free(reply);
	return rc;
}
