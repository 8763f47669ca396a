/*
 * dot_jobs.c - the slow work of a dot, run on the worker pool: commit,
 * reset, branch, diff, measuring, and deleting a dot's data. One
 * dm_dot_job_fn per operation; the table of operations in dot.c says which
 * operation runs which, and puts it in the job's input.
 *
 * Invariants: a job reads only its struct dm_dot_job_in (copies made by the
 * actor) and immutable objects in the store, writes only the working copy
 * it was given and content-addressed objects, and reports only through its
 * DONE message: it never touches the dot's state.
 */
#include "server/dots/dot_internal.h"
#include "actor/actor.h"
#include "server/dots/docker.h"
#include "server/dots/wcwatch.h"
#include "util/log.h"
#include "engine/engine.h"
#include "kv/kv.h"
#include "store/oidmap.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/hash.h"
#include "util/id.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/banned.h"

static void dot_key(char *out, size_t size, const struct dm_dot_job_in *in)
{
	dm_dot_kv_key(out, size, &in->env, "dots/%s", in->dot_id);
}

void dm_dot_job_in_free(void *p)
{
	struct dm_dot_job_in *in = p;

	free(in->message);
	free(in->author);
	free(in->from);
	free(in->to);
	for (size_t i = 0; i < in->nmeta; i++) {
		free(in->meta_keys[i]);
		free(in->meta_values[i]);
	}
	free(in->meta_keys);
	free(in->meta_values);
	free(in->old_head);
	free(in->received);
	free(in->containers);
	free(in->container_names);
	free(in->hooks);
	free(in->roots);
	free(in->root_names);
	free(in->key);
	free(in->src);
	dm_wcwatch_entry_unref(in->watch);
	free(in);
}

void dm_dot_job_out_free(void *p)
{
	struct dm_dot_job_out *out = p;

	if (out) {
		free(out->subdots);
		json_decref(out->meta);
		json_decref(out->json);
		json_decref(out->warnings);
	}
	free(out);
}

/* The engine's cancel poll. It is also where a deterministic scheduler
 * may run others in the middle of the job (dm_job_yield; a no-op with
 * threads): a garbage collection between a commit's writes and its seal
 * is one of the interleavings test_dot tries. */
static bool job_cancelled(void *ctx)
{
	(void)dm_job_yield(ctx);
	return dm_job_cancelled(ctx) != 0;
}

int dm_dot_load_commit(struct dm_commit *out, struct dm_store *store, const char *dot_id,
		       const char *id, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	dm_oid oid;
	int rc = dm_store_commit_get(store, dot_id, id, &oid, err);

	if (!rc)
		rc = dm_store_get(store, &oid, &b, NULL, err);
	if (!rc)
		rc = dm_commit_decode(out, b.data, b.len, err);
	dm_buf_release(&b);
	return rc;
}

static int load_commit(struct dm_commit *out, const struct dm_dot_job_in *in, const char *id,
		       struct dm_err *err)
{
	return dm_dot_load_commit(out, in->env.store, in->dot_id, id, err);
}

/* How many commits are on the first-parent line up to and including id. */
static int count_commits(uint64_t *out, const struct dm_dot_job_in *in, const char *id,
			 struct dm_err *err)
{
	char cur[DM_COMMIT_ID_LEN_MAX + 1];
	uint64_t n = 0;

	snprintf(cur, sizeof(cur), "%s", id);
	while (cur[0]) {
		struct dm_commit c;
		int rc = load_commit(&c, in, cur, err);

		if (rc)
			return rc;
		n++;
		snprintf(cur, sizeof(cur), "%s", c.nparents ? c.parents[0] : "");
		dm_commit_release(&c);
	}
	*out = n;
	return 0;
}

/* A commit whose data is gone cannot be read out: DM_ENOTFOUND saying
 * why (its record stays in dm log). */
static int refuse_pruned(const struct dm_dot_job_in *in, const char *id, struct dm_err *err)
{
	unsigned flags = 0;
	int rc = dm_store_commit_info(in->env.store, in->dot_id, id, NULL, &flags, err);

	if (rc)
		return rc;
	if (flags & DM_COMMIT_PRUNED)
		return dm_err_set(err, DM_ENOTFOUND,
				  "commit %s was pruned (dm dot prune): its record stays in dm "
				  "log, its data is gone",
				  id);
	if (flags & DM_COMMIT_DAMAGED)
		return dm_err_set(err, DM_ENOTFOUND,
				  "commit %s is damaged: dm fsck found its data missing", id);
	return 0;
}

/*
 * Resolves ref (HEAD, HEAD^, HEAD~N, an id or a unique prefix) against the
 * job's head into a commit id and its tree; a pruned or damaged commit is
 * refused.
 */
static int resolve(const struct dm_dot_job_in *in, const char *ref, char *id_out, dm_oid *tree_out,
		   struct dm_err *err)
{
	struct dm_ref r;
	char cur[DM_COMMIT_ID_LEN_MAX + 1];
	struct dm_commit c;
	dm_oid exact;
	int rc = dm_ref_parse(&r, ref, err);

	if (rc)
		return rc;
	if (r.relative) {
		if (!in->head[0])
			return dm_err_set(err, DM_ENOTFOUND, "branch '%s' has no commits yet",
					  in->branch);
		snprintf(cur, sizeof(cur), "%s", in->head);
		for (unsigned i = 0; i < r.back; i++) {
			rc = load_commit(&c, in, cur, err);
			if (rc)
				return rc;
			if (!c.nparents) {
				dm_commit_release(&c);
				return dm_err_set(err, DM_ENOTFOUND,
						  "'%s' goes back past the first commit of '%s'",
						  ref, in->branch);
			}
			snprintf(cur, sizeof(cur), "%s", c.parents[0]);
			dm_commit_release(&c);
		}
	} else if (!dm_store_commit_get(in->env.store, in->dot_id, r.id, &exact, NULL)) {
		/* a whole id, even one that is the prefix of another (ids a user
		 * chose with #commit-id may be) */
		snprintf(cur, sizeof(cur), "%s", r.id);
	} else {
		char **ids = NULL;
		size_t n = 0;

		if (strlen(r.id) < 4)
			return dm_err_set(
				err, DM_EINVAL,
				"commit prefix '%s' is too short; give at least 4 characters",
				r.id);
		rc = dm_store_commit_find(in->env.store, in->dot_id, r.id, 2, &ids, &n, err);
		if (rc)
			return rc;
		if (n == 1)
			snprintf(cur, sizeof(cur), "%s", ids[0]);
		for (size_t i = 0; i < n; i++)
			free(ids[i]);
		free(ids);
		if (n == 0)
			return dm_err_set(err, DM_ENOTFOUND, "no commit '%s'", r.id);
		if (n > 1)
			return dm_err_set(err, DM_EINVAL, "commit prefix '%s' is ambiguous", r.id);
	}
	rc = refuse_pruned(in, cur, err);
	if (!rc)
		rc = load_commit(&c, in, cur, err);
	if (rc)
		return rc;
	*tree_out = c.tree;
	dm_commit_release(&c);
	snprintf(id_out, DM_COMMIT_ID_LEN_MAX + 1, "%s", cur);
	return 0;
}

static int meta_index_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dm_meta *)a)->key, ((const struct dm_meta *)b)->key);
}

int dm_dot_seal_commit(struct dm_dot_job_in *in, const char *id, const char *parent,
		       const dm_oid *tree, int64_t time_ns, json_t *extra, struct dm_err *err)
{
	static char empty[] = "";
	struct dm_commit c = {0};
	struct dm_buf enc = DM_BUF_INIT;
	char idbuf[DM_COMMIT_ID_LEN_MAX + 1], parent_buf[DM_COMMIT_ID_LEN_MAX + 1];
	char *parents[1] = {parent_buf};
	const char *key;
	json_t *v;
	dm_oid oid;
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%s", id);
	snprintf(parent_buf, sizeof(parent_buf), "%s", parent ? parent : "");
	c.dot_id = in->dot_id;
	c.commit_id = idbuf;
	c.nparents = parent_buf[0] ? 1 : 0;
	c.parents = parents;
	c.tree = *tree;
	c.author = in->author ? in->author : empty;
	c.time_ns = time_ns;
	c.message = in->message ? in->message : empty;
	c.meta = dm_xcalloc(in->nmeta + json_object_size(extra) + 1, sizeof(*c.meta));
	for (size_t i = 0; i < in->nmeta; i++) {
		c.meta[c.nmeta].key = in->meta_keys[i];
		c.meta[c.nmeta++].value = in->meta_values[i];
	}
	json_object_foreach(extra, key, v)
	{
		c.meta[c.nmeta].key = dm_xstrdup(key);
		c.meta[c.nmeta++].value = dm_xstrdup(json_string_value(v));
	}
	qsort(c.meta, c.nmeta, sizeof(*c.meta), meta_index_cmp);
	rc = dm_commit_encode(&enc, &c, err);
	if (!rc)
		rc = dm_store_put(in->env.store, &oid, DM_OBJ_COMMIT, enc.data, enc.len, err);
	if (!rc)
		rc = dm_store_commit_put(in->env.store, in->dot_id, id, &oid, err);
	for (size_t i = 0; i < c.nmeta; i++) { /* the copies of extra's entries */
		bool copied = true;

		for (size_t k = 0; k < in->nmeta; k++)
			copied = copied && c.meta[i].key != in->meta_keys[k];
		if (copied) {
			free(c.meta[i].key);
			free(c.meta[i].value);
		}
	}
	free(c.meta);
	dm_buf_release(&enc);
	return rc;
}

int dm_dot_job_create(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
		      struct dm_engine_progress *p, struct dm_err *err)
{
	return dm_engine_create(in->env.engine, in->dot_id, in->branch, NULL, p, err);
}

/* INDEX: the tree of pending commit in->head's snapshot (reusing its
 * parent's, sealed before it), then its commit object. */
int dm_dot_job_index(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
		     struct dm_engine_progress *p, struct dm_err *err)
{
	const char *parent = in->old_head && in->old_head[0] ? in->old_head : NULL;
	dm_oid parent_tree, tree;
	int rc = 0;

	if (parent) {
		struct dm_commit c;

		rc = load_commit(&c, in, parent, err);
		if (rc)
			return dm_err_prefix(err, "cannot index commit '%s'", in->head);
		parent_tree = c.tree;
		dm_commit_release(&c);
	}
	rc = dm_engine_index(in->env.engine, in->dot_id, in->head, parent,
			     parent ? &parent_tree : NULL, &tree, p, err);
	if (!rc)
		rc = dm_dot_seal_commit(in, in->head, parent, &tree, in->time_ns, NULL, err);
	if (rc)
		return rc;
	snprintf(out->head, sizeof(out->head), "%s", in->head);
	out->has_tree = true;
	out->tree = tree;
	return 0;
}

/* Points out at commit `ref` (or at the job's head when ref is NULL). */
static int resolve_into(struct dm_dot_job_in *in, struct dm_dot_job_out *out, const char *ref,
			struct dm_err *err)
{
	int rc;

	if (!ref) {
		snprintf(out->head, sizeof(out->head), "%s", in->head);
		out->has_tree = in->has_tree;
		out->tree = in->tree;
		out->commits = in->commits;
		return 0;
	}
	rc = resolve(in, ref, out->head, &out->tree, err);
	if (rc)
		return rc;
	out->has_tree = true;
	return count_commits(&out->commits, in, out->head, err);
}

/* Stops the containers a change affects; the ones already stopped stay so.
 * On a failure the ones stopped so far are started again. */
static int stop_containers(struct dm_dot_job_in *in, struct dm_err *err)
{
	for (size_t i = 0; in->env.docker && i < in->ncontainers; i++) {
		int rc = dm_docker_stop(in->env.docker, in->containers[i], 10, err);

		if (rc) {
			while (i-- > 0)
				dm_docker_start(in->env.docker, in->containers[i], NULL);
			return dm_err_prefix(err, "cannot stop the containers using the dot");
		}
	}
	return 0;
}

/* Starts them again; a failure is logged and left in the answer, the change
 * itself is done. */
static void start_containers(struct dm_dot_job_in *in, struct dm_dot_job_out *out)
{
	for (size_t i = 0; in->env.docker && i < in->ncontainers; i++) {
		struct dm_err err;

		if (dm_docker_start(in->env.docker, in->containers[i], &err)) {
			dm_warn("dot %s: %s", in->dot_id, err.msg);
			if (!out->warnings)
				out->warnings = json_array();
			json_array_append_new(out->warnings, json_string(err.msg));
		}
	}
}

/*
 * A checkout that ran out of space half way (the engine's check before it
 * found room, the file system then did not: other writers) is undone as
 * far as it can be: the working copy goes back to the branch's head, whose
 * files the failed one replaced, so that what fills it now mostly frees.
 * A checkout refused before anything changed ("nothing was changed") is
 * left alone: the working copy may hold uncommitted work.
 */
static void put_back(const struct dm_dot_job_in *in, struct dm_engine_progress *p,
		     struct dm_err *err)
{
	struct dm_err berr;
	size_t len;

	if (err->code != DM_ENOSPC || strstr(err->msg, "nothing was changed") || !in->has_tree)
		return;
	len = strlen(err->msg);
	if (dm_engine_reset(in->env.engine, in->dot_id, in->branch, &in->tree, p, &berr))
		snprintf(err->msg + len, sizeof(err->msg) - len,
			 "; the working copy could not be put back to the branch's head: %s",
			 berr.msg);
	else
		snprintf(err->msg + len, sizeof(err->msg) - len,
			 "; the working copy was put back to the branch's head");
}

int dm_dot_job_reset(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
		     struct dm_engine_progress *p, struct dm_err *err)
{
	int rc = resolve_into(in, out, in->from, err);

	if (!rc)
		rc = stop_containers(in, err);
	if (rc)
		return rc;
	rc = dm_engine_reset(in->env.engine, in->dot_id, in->branch, &out->tree, p, err);
	if (rc)
		put_back(in, p, err);
	start_containers(in, out);
	if (!rc)
		out->json = json_pack("{s:s}", "id", out->head);
	return rc;
}

/* CHECKOUT of an existing branch with containers following the current
 * one: they bind-mounted the old branch, so stop, switch, start. */
static int job_switch(struct dm_dot_job_in *in, struct dm_dot_job_out *out, struct dm_err *err)
{
	int rc = stop_containers(in, err);

	if (rc)
		return rc;
	rc = dm_engine_set_current(in->env.engine, in->dot_id, in->branch, err);
	start_containers(in, out);
	out->switched = true;
	if (!rc)
		out->json = json_object();
	return rc;
}

int dm_dot_job_branch(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
		      struct dm_engine_progress *p, struct dm_err *err)
{
	int rc = resolve_into(in, out, in->from, err);

	if (!rc)
		rc = dm_engine_create(in->env.engine, in->dot_id, in->new_branch,
				      out->has_tree ? &out->tree : NULL, p, err);
	if (rc || in->op != DM_DOT_OP_CHECKOUT) {
		if (!rc)
			out->json = json_object();
		return rc;
	}
	/* checkout -b: the new branch becomes current; containers follow it */
	rc = stop_containers(in, err);
	if (rc)
		return rc;
	rc = dm_engine_set_current(in->env.engine, in->dot_id, in->new_branch, err);
	start_containers(in, out);
	if (!rc)
		out->json = json_object();
	return rc;
}

int dm_dot_job_checkout(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
			struct dm_engine_progress *p, struct dm_err *err)
{
	return in->switch_only ? job_switch(in, out, err) : dm_dot_job_branch(in, out, p, err);
}

void dm_dot_chain_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

int dm_dot_chain(char ***out, size_t *n, struct dm_store *store, const char *dot_id,
		 const char *head, size_t max, struct dm_err *err)
{
	char **ids = NULL, cur[DM_COMMIT_ID_LEN_MAX + 1];
	size_t count = 0, cap = 0;
	int rc = 0;

	snprintf(cur, sizeof(cur), "%s", head);
	while (cur[0]) {
		struct dm_commit c;

		if (count == max) {
			rc = dm_err_set(err, DM_ETOOBIG, "history of more than %zu commits", max);
			break;
		}
		rc = dm_dot_load_commit(&c, store, dot_id, cur, err);
		if (rc)
			break;
		if (count == cap) {
			cap = cap ? 2 * cap : 64;
			ids = dm_xrealloc(ids, cap * sizeof(*ids));
		}
		ids[count++] = dm_xstrdup(cur);
		snprintf(cur, sizeof(cur), "%s", c.nparents ? c.parents[0] : "");
		dm_commit_release(&c);
	}
	if (rc) {
		dm_dot_chain_free(ids, count);
		return rc;
	}
	*out = ids;
	*n = count;
	return 0;
}

/* Reads a received commit by its object id and checks it belongs here. */
static int load_received(struct dm_commit *out, const struct dm_dot_job_in *in,
			 const struct dm_dot_commit_ref *ref, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	int kind = 0;
	int rc = dm_store_get(in->env.store, &ref->oid, &b, &kind, err);

	if (!rc && kind != DM_OBJ_COMMIT)
		rc = dm_err_set(err, DM_ECORRUPT, "object for commit '%s' is not a commit",
				ref->id);
	if (!rc)
		rc = dm_commit_decode(out, b.data, b.len, err);
	dm_buf_release(&b);
	if (rc)
		return rc;
	if (strcmp(out->dot_id, in->dot_id) || strcmp(out->commit_id, ref->id)) {
		dm_commit_release(out);
		return dm_err_set(err, DM_ECORRUPT, "commit '%s' does not belong to this dot",
				  ref->id);
	}
	return 0;
}

/*
 * RECEIVE: checks the working copy is clean and the branch has not moved,
 * that the received commits form one line onto a commit this dot has,
 * stashes a diverged branch when asked, then indexes the commits and
 * brings the working copy to the new head (dm_engine_receive: the engine
 * keeps the head as it keeps its own commits).
 */
int dm_dot_job_receive(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
		       struct dm_engine_progress *p, struct dm_err *err)
{
	char ancestor[DM_COMMIT_ID_LEN_MAX + 1] = "";
	const char *old = in->old_head ? in->old_head : "";
	dm_oid tree;
	int rc = 0;

	if (in->branch_exists) {
		uint64_t dirty = 0, size = 0;

		rc = dm_engine_dirty(in->env.engine, in->dot_id, in->branch,
				     in->has_tree ? &in->tree : NULL, &dirty, &size, err);
		if (rc)
			return rc;
		if (dirty)
			return dm_err_set(
				err, DM_EUNCOMMITTED,
				"branch '%s' has uncommitted changes (%llu bytes); commit "
				"or reset them first",
				in->branch, (unsigned long long)dirty);
	}
	if (strcmp(in->head, old))
		return dm_err_set(err, DM_ECONFLICT,
				  "branch '%s' moved while the transfer ran (now at %s); run it "
				  "again",
				  in->branch, in->head[0] ? in->head : "no commit");
	if (!in->nreceived)
		return dm_err_set(err, DM_EINVAL, "nothing to receive");
	/* the commits form one first-parent line, newest first; one that
	 * came without its tree (pruned where it comes from) is a record only,
	 * but never the head */
	for (size_t i = 0; i < in->nreceived; i++) {
		struct dm_commit c;
		const char *parent;

		rc = load_received(&c, in, &in->received[i], err);
		if (rc)
			return rc;
		parent = c.nparents ? c.parents[0] : "";
		if (i == 0)
			tree = c.tree;
		if (i == 0 && !dm_store_has(in->env.store, &c.tree)) {
			dm_commit_release(&c);
			return dm_err_set(err, DM_ECORRUPT,
					  "the data of commit '%s', the head received, did not "
					  "arrive",
					  in->received[i].id);
		}
		if (i + 1 < in->nreceived && strcmp(parent, in->received[i + 1].id)) {
			dm_commit_release(&c);
			return dm_err_set(err, DM_EINVAL,
					  "received commits do not form one line at '%s'",
					  in->received[i].id);
		}
		if (i + 1 == in->nreceived)
			snprintf(ancestor, sizeof(ancestor), "%s", parent);
		dm_commit_release(&c);
	}
	if (ancestor[0]) {
		dm_oid oid;

		rc = dm_store_commit_get(in->env.store, in->dot_id, ancestor, &oid, err);
		if (rc)
			return dm_err_set(err, DM_EINVAL,
					  "received commits stand on '%s', which this dot lacks",
					  ancestor);
	}
	if (strcmp(ancestor, old)) {
		/* the receiver has commits the sender does not: diverged */
		if (!in->stash)
			return dm_err_set(
				err, DM_EDIVERGED,
				"branch '%s' has diverged: both sides committed since %s; "
				"use --stash-on-divergence to keep this side's commits on "
				"a branch of their own",
				in->branch, ancestor[0] ? ancestor : "the start");
		rc = dm_engine_create(in->env.engine, in->dot_id, in->stash_name,
				      in->has_tree ? &in->tree : NULL, p, err);
		if (rc)
			return rc;
		out->stashed = true;
		memcpy(out->stash_name, in->stash_name, sizeof(out->stash_name));
		memcpy(out->stash_head, in->head, sizeof(out->stash_head));
		out->stash_tree = in->tree;
		out->stash_has_tree = in->has_tree;
		out->stash_commits = in->commits;
	}
	for (size_t i = in->nreceived; i-- > 0;) {
		struct dm_commit c;
		bool record_only = false;

		if (i > 0 && !load_received(&c, in, &in->received[i], NULL)) {
			record_only = !dm_store_has(in->env.store, &c.tree);
			dm_commit_release(&c);
		}
		rc = dm_store_commit_put(in->env.store, in->dot_id, in->received[i].id,
					 &in->received[i].oid, err);
		/* it came without its data (pruned where it comes from): so here */
		if (!rc && record_only) {
			const char *one[1] = {in->received[i].id};

			rc = dm_store_commit_mark(in->env.store, in->dot_id, one, 1,
						  DM_COMMIT_PRUNED, NULL, err);
		}
		if (rc)
			return rc;
	}
	/* the head's parent: what a new branch's working copy can start from */
	rc = dm_engine_receive(in->env.engine, in->dot_id, in->branch, in->branch_exists,
			       in->nreceived > 1 ? in->received[1].id : ancestor,
			       in->received[0].id, &tree, p, err);
	if (rc && in->branch_exists)
		put_back(in, p, err);
	if (rc)
		return rc;
	snprintf(out->head, sizeof(out->head), "%s", in->received[0].id);
	out->has_tree = true;
	out->tree = tree;
	rc = count_commits(&out->commits, in, out->head, err);
	if (!rc)
		out->json = json_pack("{s:s, s:s?}", "head", out->head, "stashed",
				      out->stashed ? in->stash_name : NULL);
	return rc;
}

int dm_dot_job_diff(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
		    struct dm_engine_progress *p, struct dm_err *err)
{
	struct dm_diff diff = {0};
	char from_id[DM_COMMIT_ID_LEN_MAX + 1], to_id[DM_COMMIT_ID_LEN_MAX + 1];
	dm_oid from, to;
	const dm_oid *fromp = in->has_tree ? &in->tree : NULL;
	json_t *list;
	int rc = 0;

	if (in->from) {
		rc = resolve(in, in->from, from_id, &from, err);
		fromp = &from;
	}
	if (!rc && in->to)
		rc = resolve(in, in->to, to_id, &to, err);
	if (!rc)
		rc = dm_engine_diff(in->env.engine, in->dot_id, in->branch, fromp,
				    in->to ? &to : NULL, &diff, err);
	if (rc)
		return rc;
	list = json_array();
	for (size_t i = 0; i < diff.n; i++)
		json_array_append_new(list, json_pack("{s:s, s:s}", "status",
						      dm_change_status_name(diff.changes[i].status),
						      "path", diff.changes[i].path));
	dm_diff_release(&diff);
	out->json = json_pack("{s:o}", "changes", list);
	return 0;
}

/* Removes the dot's data, history index and KV records; the name last, and
 * only while it still names this dot. */
int dm_dot_job_delete(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
		      struct dm_engine_progress *p, struct dm_err *err)
{
	char key[256];
	struct dm_kv_kv kv;
	struct dm_err eerr;
	int rc;

	/* about what the delete makes garbage, for automatic collection */
	if (in->env.garbage && dm_store_dot_bytes(in->env.store, in->dot_id, &out->size, &eerr))
		dm_warn("dot %s: cannot estimate its stored bytes: %s", in->dot_id, eerr.msg);
	/* read-only copies of commits first: they may be mounts */
	rc = dm_engine_commit_copy_sweep(in->env.engine, in->dot_id, NULL, 0, err);
	if (!rc)
		rc = dm_engine_delete_dot(in->env.engine, in->dot_id, err);
	if (!rc)
		rc = dm_store_commit_delete_dot(in->env.store, in->dot_id, err);
	if (!rc) {
		dm_dot_kv_key(key, sizeof(key), &in->env, "dots/%s/", in->dot_id);
		rc = dm_kv_delete_prefix(in->env.kv, NULL, key, NULL, err);
	}
	if (!rc) {
		dot_key(key, sizeof(key), in);
		rc = dm_kv_delete(in->env.kv, NULL, key, err);
	}
	if (rc)
		return rc;
	dm_dot_kv_key(key, sizeof(key), &in->env, "names/%s/%s", in->name.ns, in->name.name);
	dm_kv_kv_init(&kv);
	rc = dm_kv_get(in->env.kv, &kv, key, err);
	if (rc == DM_ENOTFOUND)
		return 0;
	if (!rc && kv.value_len == strlen(in->dot_id) &&
	    !memcmp(kv.value, in->dot_id, kv.value_len)) {
		struct dm_kv_cmp cmp = {key, kv.mod_revision};
		struct dm_kv_op op = {DM_KV_OP_DELETE, key, NULL, 0, 0};

		rc = dm_kv_txn(in->env.kv, NULL, &cmp, 1, &op, 1, err);
		if (rc == DM_ECONFLICT) /* renamed or re-created meanwhile: not ours */
			rc = 0;
	}
	dm_kv_kv_release(&kv);
	return rc;
}

/* ---- history: what the branches reach ---- */

/* A set of commit ids: each is kept as the hash of its text. */
static void id_key(dm_oid *out, const char *id)
{
	dm_hash(out, id, strlen(id));
}

/*
 * Adds to reached every commit of the dot that roots[0..n) reach through
 * their parents (all of them, not only the first); a root or parent that
 * is not indexed (never sealed, or forgotten) reaches nothing. stop (may
 * be NULL): the walk ends as soon as it reaches that commit, *found = true.
 */
static int walk_history(const struct dm_dot_job_in *in, char (*roots)[DM_COMMIT_ID_LEN_MAX + 1],
			size_t n, struct dm_oidmap *reached, const char *stop, bool *found,
			struct dm_err *err)
{
	char **stack = NULL;
	size_t depth = 0, cap = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		if (depth == cap) {
			cap = cap ? 2 * cap : 64;
			stack = dm_xrealloc(stack, cap * sizeof(*stack));
		}
		stack[depth++] = dm_xstrdup(roots[i]);
	}
	while (depth && !rc) {
		char *id = stack[--depth];
		struct dm_commit c;
		dm_oid key;

		id_key(&key, id);
		if (!id[0] || dm_oidmap_get(reached, &key)) {
			free(id);
			continue;
		}
		dm_oidmap_put(reached, &key, NULL);
		if (stop && !strcmp(id, stop)) {
			*found = true;
			free(id);
			break;
		}
		rc = load_commit(&c, in, id, err);
		free(id);
		if (rc == DM_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc)
			break;
		for (size_t i = 0; i < c.nparents; i++) {
			if (depth == cap) {
				cap = cap ? 2 * cap : 64;
				stack = dm_xrealloc(stack, cap * sizeof(*stack));
			}
			stack[depth++] = dm_xstrdup(c.parents[i]);
		}
		dm_commit_release(&c);
	}
	while (depth)
		free(stack[--depth]);
	free(stack);
	return rc;
}

/* Keeps the snapshots of the commits in reached (ctx). */
static bool keep_reached(const char *commit_id, void *ctx)
{
	dm_oid key;

	id_key(&key, commit_id);
	return dm_oidmap_get(ctx, &key) != NULL;
}

/* Forgets every indexed commit of the dot that in->roots do not reach
 * (their snapshots too, on an engine that keeps them); garbage collection
 * then frees their data. */
int dm_dot_job_expire(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
		      struct dm_engine_progress *p, struct dm_err *err)
{
	struct dm_oidmap reached;
	char **ids = NULL;
	const char **gone = NULL;
	size_t n = 0, ngone = 0;
	int rc;

	(void)p;
	dm_oidmap_init(&reached, 0);
	rc = walk_history(in, in->roots, in->nroots, &reached, NULL, NULL, err);
	if (!rc)
		rc = dm_store_commit_find(in->env.store, in->dot_id, "", SIZE_MAX, &ids, &n, err);
	if (!rc) {
		gone = dm_xcalloc(n + 1, sizeof(*gone));
		for (size_t i = 0; i < n; i++)
			if (!keep_reached(ids[i], &reached))
				gone[ngone++] = ids[i];
		rc = dm_store_commit_forget(in->env.store, in->dot_id, gone, ngone, err);
	}
	if (!rc && ngone)
		rc = dm_engine_sweep_snapshots(in->env.engine, in->dot_id, keep_reached, &reached,
					       err);
	if (!rc) {
		out->json = json_pack("{s:I}", "forgotten", (json_int_t)ngone);
		if (ngone)
			dm_info("dot %s: forgot %zu commits no branch reaches any more", in->dot_id,
				ngone);
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	free(gone);
	dm_oidmap_release(&reached);
	return rc;
}

/* Deletes branch in->branch's working copy; without force, only when one of
 * the other branches (in->roots) reaches its head. */
int dm_dot_job_delete_branch(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
			     struct dm_engine_progress *p, struct dm_err *err)
{
	int rc = 0;

	(void)p;
	if (!in->force && in->head[0]) {
		struct dm_oidmap reached;
		bool found = false;

		dm_oidmap_init(&reached, 0);
		rc = walk_history(in, in->roots, in->nroots, &reached, in->head, &found, err);
		dm_oidmap_release(&reached);
		if (!rc && !found)
			rc = dm_err_set(err, DM_ECONFLICT,
					"branch '%s' has commits that no other branch has; 'dm "
					"branch -D %s' deletes it with them",
					in->branch, in->branch);
	}
	if (!rc)
		rc = dm_engine_delete_branch(in->env.engine, in->dot_id, in->branch, err);
	if (!rc)
		out->json = json_pack("{s:s}", "deleted", in->branch);
	return rc;
}

/* ---- prune: restic's forget rules per branch ---- */

/* A message as JSON text even when it is not UTF-8 (escaped as \xNN). */
static json_t *text_json(const char *s)
{
	struct dm_buf b = DM_BUF_INIT;
	json_t *j = json_string(s);

	if (!j && !dm_buf_add_utf8(&b, s))
		j = json_string((const char *)b.data);
	dm_buf_release(&b);
	return j ? j : json_string("");
}

/* One commit of a branch's first-parent history. */
struct line_commit {
	char *id;
	char *message;
	int64_t time_ns;
	bool pruned; /* already */
	unsigned reasons;
};

static void line_free(struct line_commit *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(l[i].id);
		free(l[i].message);
	}
	free(l);
}

/* The first-parent history of head, newest first, with each commit's time,
 * message and whether it is pruned already. */
static int read_line(const struct dm_dot_job_in *in, const char *head, struct line_commit **out,
		     size_t *n, struct dm_err *err)
{
	char cur[DM_COMMIT_ID_LEN_MAX + 1];
	struct line_commit *l = NULL;
	size_t count = 0, cap = 0;
	int rc = 0;

	snprintf(cur, sizeof(cur), "%s", head);
	while (cur[0]) {
		struct dm_commit c;
		unsigned flags = 0;

		rc = dm_store_commit_info(in->env.store, in->dot_id, cur, NULL, &flags, err);
		if (!rc)
			rc = load_commit(&c, in, cur, err);
		if (rc)
			break;
		if (count == cap) {
			cap = cap ? 2 * cap : 64;
			l = dm_xrealloc(l, cap * sizeof(*l));
		}
		l[count].id = dm_xstrdup(cur);
		l[count].message = dm_xstrdup(c.message);
		l[count].time_ns = c.time_ns;
		l[count].pruned = (flags & DM_COMMIT_PRUNED) != 0;
		l[count].reasons = 0;
		count++;
		snprintf(cur, sizeof(cur), "%s", c.nparents ? c.parents[0] : "");
		dm_commit_release(&c);
	}
	if (rc) {
		line_free(l, count);
		return rc;
	}
	*out = l;
	*n = count;
	return 0;
}

/* Applies in->keep to the commits of l not pruned yet (the head always
 * stays: a branch keeps its working copy's commit). */
static void apply_keep(const struct dm_dot_job_in *in, struct line_commit *l, size_t n)
{
	int64_t *times = dm_xcalloc(n + 1, sizeof(*times));
	unsigned *reasons = dm_xcalloc(n + 1, sizeof(*reasons));
	size_t *at = dm_xcalloc(n + 1, sizeof(*at)), m = 0;

	for (size_t i = 0; i < n; i++) {
		if (l[i].pruned)
			continue;
		times[m] = l[i].time_ns;
		at[m++] = i;
	}
	dm_retention_apply(&in->keep, times, m, reasons);
	for (size_t j = 0; j < m; j++)
		l[at[j]].reasons = reasons[j];
	if (n && !l[0].reasons)
		l[0].reasons = 1u << DM_KEEP_NRULES << 1; /* the head */
	free(times);
	free(reasons);
	free(at);
}

/*
 * PRUNE: each branch's first-parent history, newest first, goes through
 * in->keep; a commit that no branch keeps (the heads always stay) is
 * marked pruned in the commit index: its record stays, garbage collection
 * frees what only its tree reached. On an engine with snapshots its
 * snapshot goes now. Commits only a reset keeps (not on a branch) are left
 * to the reset's retention. The answer lists, per branch, what is kept
 * (and why) and what is pruned.
 */
int dm_dot_job_prune(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
		     struct dm_engine_progress *p, struct dm_err *err)
{
	struct line_commit **lines = dm_xcalloc(in->nroots + 1, sizeof(*lines));
	size_t *nlines = dm_xcalloc(in->nroots + 1, sizeof(*nlines));
	struct dm_oidmap kept, gone;
	const char **victims = NULL;
	size_t nvictims = 0, already = 0, changed = 0;
	json_t *branches = json_array();
	int rc = 0;

	(void)p;
	dm_oidmap_init(&kept, 0);
	dm_oidmap_init(&gone, 0);
	for (size_t b = 0; b < in->nroots && !rc; b++) {
		rc = read_line(in, in->roots[b], &lines[b], &nlines[b], err);
		if (rc)
			break;
		apply_keep(in, lines[b], nlines[b]);
		for (size_t i = 0; i < nlines[b]; i++) {
			dm_oid key;

			id_key(&key, lines[b][i].id);
			if (lines[b][i].reasons)
				dm_oidmap_put(&kept, &key, NULL);
		}
	}
	/* pruned: on some branch's history, not pruned yet, kept by none */
	for (size_t b = 0; b < in->nroots && !rc; b++) {
		json_t *keep = json_array(), *prune = json_array();

		for (size_t i = 0; i < nlines[b]; i++) {
			struct line_commit *c = &lines[b][i];
			dm_oid key;

			id_key(&key, c->id);
			if (c->pruned) {
				if (!dm_oidmap_get(&gone, &key)) {
					dm_oidmap_put(&gone, &key, NULL);
					already++;
				}
				continue;
			}
			if (c->reasons) {
				char why[96];

				if (c->reasons >> (DM_KEEP_NRULES + 1))
					snprintf(why, sizeof(why), "head");
				else
					dm_retention_reasons_text(why, sizeof(why), c->reasons);
				json_array_append_new(keep,
						      json_pack("{s:s, s:I, s:o, s:s}", "id", c->id,
								"time_ns", (json_int_t)c->time_ns,
								"message", text_json(c->message),
								"reasons", why));
				continue;
			}
			if (dm_oidmap_get(&kept, &key))
				continue; /* another branch keeps it */
			json_array_append_new(prune, json_pack("{s:s, s:I, s:o}", "id", c->id,
							       "time_ns", (json_int_t)c->time_ns,
							       "message", text_json(c->message)));
			if (dm_oidmap_get(&gone, &key))
				continue;
			dm_oidmap_put(&gone, &key, NULL);
			victims = dm_xrealloc(victims, (nvictims + 1) * sizeof(*victims));
			victims[nvictims++] = c->id;
		}
		json_array_append_new(branches, json_pack("{s:s, s:o, s:o}", "name",
							  in->root_names[b], "keep", keep,
							  "prune", prune));
	}
	if (!rc && !in->dry_run && nvictims) {
		rc = dm_store_commit_mark(in->env.store, in->dot_id, victims, nvictims,
					  DM_COMMIT_PRUNED, &changed, err);
		/* their snapshots go with them: what they held is released
		 * (copied into packs when a kept commit still needs it) */
		for (size_t i = 0; !rc && i < nvictims; i++)
			rc = dm_engine_drop_snapshot(in->env.engine, in->dot_id, victims[i], err);
		if (!rc)
			dm_info("dot %s: pruned %zu commits", in->dot_id, nvictims);
	}
	if (!rc)
		out->json = json_pack("{s:b, s:I, s:I, s:O}", "dry_run", in->dry_run, "pruned",
				      (json_int_t)nvictims, "pruned_before", (json_int_t)already,
				      "branches", branches);
	json_decref(branches);
	free(victims);
	for (size_t b = 0; b < in->nroots; b++)
		line_free(lines[b], nlines[b]);
	free(lines);
	free(nlines);
	dm_oidmap_release(&kept);
	dm_oidmap_release(&gone);
	return rc;
}

int dm_dot_job_limit(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
		     struct dm_engine_progress *p, struct dm_err *err)
{
	int rc = dm_engine_limit(in->env.engine, in->dot_id, in->branch, in->limit, err);

	(void)p;
	if (!rc)
		out->json = json_pack("{s:b}", "enforced", 1);
	return rc;
}

static int subdot_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* REFRESH: the subdots of the branch, its top-level directories with
 * valid names (at most SUBDOTS_MAX of them). */
static int measure_subdots(struct dm_dot_job_in *in, struct dm_dot_job_out *out, struct dm_err *err)
{
	enum { SUBDOTS_MAX = 1024 };
	struct dm_buf path = DM_BUF_INIT;
	struct dirent *e;
	DIR *dir = NULL;
	int rc = dm_engine_path(in->env.engine, in->dot_id, in->branch, &path, err);

	if (rc)
		goto done;
	dir = opendir((const char *)path.data);
	if (!dir) {
		rc = dm_err_errno(err, errno, "cannot read '%s'", (const char *)path.data);
		goto done;
	}
	out->subdots = dm_xcalloc(SUBDOTS_MAX, sizeof(*out->subdots));
	while ((e = readdir(dir)) != NULL && out->nsubdots < SUBDOTS_MAX) {
		struct stat st;

		if (!dm_name_part_valid(e->d_name, strlen(e->d_name)) ||
		    fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		snprintf(out->subdots[out->nsubdots++], sizeof(*out->subdots), "%s", e->d_name);
	}
	qsort(out->subdots, out->nsubdots, sizeof(*out->subdots), subdot_cmp);
done:
	if (dir)
		closedir(dir);
	dm_buf_release(&path);
	return rc;
}

/* REFRESH: the watch of the branch's working copy is made complete (its
 * token taken) before the copy is read, so that every change the measure
 * may miss bumps the watch past the token (wcwatch.h). */
static void begin_watch(struct dm_dot_job_in *in, struct dm_dot_job_out *out)
{
	struct dm_buf path = DM_BUF_INIT;
	struct dm_err err;

	if (!in->watch)
		return;
	dm_err_clear(&err);
	if (dm_engine_path(in->env.engine, in->dot_id, in->branch, &path, &err) ||
	    dm_wcwatch_begin(in->watch, (const char *)path.data, &out->token, &err))
		dm_debug("dot %s branch '%s': its working copy is not watched for changes "
			 "(dirty bytes are measured when older than %d ms): %s",
			 in->dot_id, in->branch, DM_DOT_UNWATCHED_MS, err.msg);
	dm_buf_release(&path);
}

int dm_dot_job_refresh(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
		       struct dm_engine_progress *p, struct dm_err *err)
{
	int rc;

	out->measured_ns = dm_now_monotonic_ns();
	begin_watch(in, out);
	memcpy(out->head, in->head, sizeof(out->head));
	out->has_tree = in->has_tree;
	rc = dm_engine_dirty(in->env.engine, in->dot_id, in->branch,
			     in->has_tree ? &in->tree : NULL, &out->dirty, &out->size, err);
	out->sized = true;
	if (!rc)
		rc = measure_subdots(in, out, err);
	if (!rc)
		dm_debug("measured dot %s branch '%s': %llu dirty bytes of %llu in %lld ms (%s)",
			 in->dot_id, in->branch, (unsigned long long)out->dirty,
			 (unsigned long long)out->size,
			 (long long)((dm_now_monotonic_ns() - out->measured_ns) / 1000000),
			 out->token ? "watched" : "not watched");
	return rc;
}

void dm_dot_run_job(struct dm_job *job)
{
	struct dm_dot_job_in *in = dm_job_arg(job);
	struct dm_dot_job_out *out = dm_xcalloc(1, sizeof(*out));
	struct dm_engine_progress p = {NULL, job_cancelled, job, in->strip_setid, in->wc_shared};
	struct dm_err err;
	uint64_t hold;
	int rc;

	dm_err_clear(&err);
	if (in->kind)
		dm_job_set_kind(job, in->kind);
	/* what the job looks up or writes is kept by garbage collection until
	 * it ends (store.h, "Holds and pins") */
	hold = dm_store_hold(in->env.store);
	if (in->run)
		rc = in->run(in, out, &p, &err);
	else
		rc = dm_err_set(&err, DM_EINTERNAL, "unknown dot operation %d", in->op);
	dm_store_unhold(in->env.store, hold);
	if (rc)
		snprintf(out->errmsg, sizeof(out->errmsg), "%s", err.msg);
	if (!rc && out->warnings && json_is_object(out->json))
		json_object_set(out->json, "warnings", out->warnings);
	dm_job_set_result(job, rc, out, dm_dot_job_out_free);
}

int dm_dot_job_mount_commit(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
			    struct dm_engine_progress *p, struct dm_err *err)
{
	char id[DM_COMMIT_ID_LEN_MAX + 1];
	struct dm_buf path = DM_BUF_INIT;
	dm_oid tree;
	int rc = resolve(in, in->from, id, &tree, err);

	if (!rc)
		rc = dm_engine_commit_copy(in->env.engine, in->env.store, in->dot_id, id, &tree, p,
					   &path, err);
	if (!rc) {
		in->roots = dm_xrealloc(in->roots, (in->nroots + 1) * sizeof(*in->roots));
		snprintf(in->roots[in->nroots++], sizeof(*in->roots), "%s", id);
		rc = dm_engine_commit_copy_sweep(in->env.engine, in->dot_id,
						 (const char(*)[129])in->roots, in->nroots, err);
	}
	if (!rc)
		out->json = json_pack("{s:s, s:s}", "path", (const char *)path.data, "commit", id);
	dm_buf_release(&path);
	return rc;
}

int dm_dot_job_sweep_copies(struct dm_dot_job_in *in, struct dm_dot_job_out *out,
			    struct dm_engine_progress *p, struct dm_err *err)
{
	(void)p;
	out->json = json_object();
	return dm_engine_commit_copy_sweep(in->env.engine, in->dot_id,
					   (const char(*)[129])in->roots, in->nroots, err);
}
