/*
 * fork.c - `dm dot fork` (dotmesh's Fork): a new dot, with an id of its
 * own and another name (another namespace, say), whose branches start
 * where the origin's are, sharing the origin's history in the store.
 *
 * How: the origin is sealed (every commit indexed), the fork is created
 * empty through the registry and told its origin (SET_ORIGIN); then, for
 * each of the origin's branches, master first, each commit object of its
 * first-parent line is written again with the fork's dot id (a few hundred
 * bytes each: trees and file data are the origin's, shared by id) and the
 * line goes to the fork as a RECEIVE, which indexes it and makes the
 * branch's working copy, as a clone's would be made.
 *
 * Invariants: nothing of the origin changes; the rewritten commit objects
 * are pinned in the store from their put until the fork has indexed them,
 * so a garbage collection running meanwhile cannot take them; a fork that
 * fails half-way is deleted again, so a fork either has every branch of
 * its origin or does not exist.
 */
#include "server/dots/fork.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/dots/registry.h"
#include "store/object.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"

#include "util/banned.h"

#define FORK_CHAIN_MAX (1u << 20) /* commits on one branch */
#define APPLY_MS       (3600 * 1000)

/* What the fork copies of one branch of the origin, as its view had it. */
struct origin_branch {
	char name[DM_NAME_PART_MAX + 1];
	char head[DM_COMMIT_ID_LEN_MAX + 1];
};

/* The commit object of id in dot `from`, again with dot id `to`; its new
 * object id into *oid (pinned). */
static int copy_commit(struct dm_store *s, const char *from, const char *to, const char *id,
		       dm_oid *oid, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT, enc = DM_BUF_INIT;
	struct dm_commit c;
	char *own_id, new_id[DM_DOT_ID_MAX + 1];
	dm_oid old;
	int rc = dm_store_commit_get(s, from, id, &old, err);

	if (!rc)
		rc = dm_store_get(s, &old, &b, NULL, err);
	if (!rc)
		rc = dm_commit_decode(&c, b.data, b.len, err);
	dm_buf_release(&b);
	if (rc)
		return rc;
	snprintf(new_id, sizeof(new_id), "%s", to);
	own_id = c.dot_id;
	c.dot_id = new_id; /* encoded only; given back before the release */
	rc = dm_commit_encode(&enc, &c, err);
	c.dot_id = own_id;
	dm_commit_release(&c);
	if (!rc)
		rc = dm_store_put(s, oid, DM_OBJ_COMMIT, enc.data, enc.len, err);
	if (!rc)
		dm_store_pin(s, oid);
	dm_buf_release(&enc);
	return rc;
}

/* One branch: its line rewritten for the fork, received by the fork. */
static int fork_branch(struct dm_dot_handle *fork, struct dm_store *s, const char *from,
		       const char *to, const struct origin_branch *b, bool trusted,
		       struct dm_err *err)
{
	struct dm_dot_commit_ref *refs = NULL;
	struct dm_dot_req *req;
	json_t *answer = NULL;
	char **ids = NULL;
	size_t n = 0, pinned = 0;
	int rc = dm_dot_chain(&ids, &n, s, from, b->head, FORK_CHAIN_MAX, err);

	if (rc)
		return rc;
	refs = dm_xcalloc(n ? n : 1, sizeof(*refs));
	for (size_t i = 0; i < n && !rc; i++) {
		snprintf(refs[i].id, sizeof(refs[i].id), "%s", ids[i]);
		rc = copy_commit(s, from, to, ids[i], &refs[i].oid, err);
		pinned += !rc;
	}
	if (!rc && n) {
		req = dm_dot_req_new(DM_DOT_OP_RECEIVE);
		req->branch = dm_xstrdup(b->name);
		req->old_head = dm_xstrdup("");
		req->ncommits = n;
		req->commits = dm_xcalloc(n, sizeof(*req->commits));
		memcpy(req->commits, refs, n * sizeof(*refs));
		req->trusted = trusted;
		rc = dm_dot_call(&answer, fork, req, APPLY_MS, err);
		json_decref(answer);
	}
	for (size_t i = 0; i < pinned; i++)
		dm_store_unpin(s, &refs[i].oid);
	free(refs);
	dm_dot_chain_free(ids, n);
	if (rc)
		dm_err_prefix(err, "branch '%s'", b->name);
	return rc;
}

/* The fork's handle, once the registry has it. */
static struct dm_dot_handle *find_new(struct dm_registry *r, const char *id)
{
	return dm_registry_handle_of(r, id);
}

int dm_dot_fork(json_t **result, struct dm_registry *r, struct dm_dot_handle *origin,
		const struct dm_dot_name *name, int timeout_ms, struct dm_err *err)
{
	const struct dm_dot_env *env = dm_registry_env(r);
	struct origin_branch *branches = NULL;
	struct dm_fork_origin *o;
	struct dm_dot_handle *fork = NULL;
	struct dm_dot_view *v;
	struct dm_dot_req *req;
	char from[DM_DOT_ID_MAX + 1], to[DM_DOT_ID_MAX + 1], shown[DM_DOT_NAME_TEXT_MAX];
	size_t nbranches;
	json_t *made = NULL, *answer = NULL;
	bool trusted;
	int rc;

	*result = NULL;
	/* its history as of now, every commit indexed */
	rc = dm_dot_wait_sealed(origin, timeout_ms, err);
	if (rc)
		return rc;
	v = dm_dot_handle_view(origin);
	snprintf(from, sizeof(from), "%s", v->id);
	trusted = !v->strip_setid; /* what it holds was vetted when it arrived */
	nbranches = v->nbranches;
	branches = dm_xcalloc(nbranches ? nbranches : 1, sizeof(*branches));
	for (size_t i = 0, k = 1; i < nbranches; i++) {
		/* master first: the fork has it from the start */
		struct origin_branch *b =
			!strcmp(v->branches[i].name, "master") ? &branches[0] : &branches[k++];

		snprintf(b->name, sizeof(b->name), "%s", v->branches[i].name);
		snprintf(b->head, sizeof(b->head), "%s", v->branches[i].head);
	}
	o = dm_xcalloc(1, sizeof(*o));
	snprintf(o->id, sizeof(o->id), "%s", from);
	snprintf(o->dot, sizeof(o->dot), "%s/%s", v->name.ns, v->name.name);
	snprintf(o->commit, sizeof(o->commit), "%s", branches[0].head);
	dm_dot_view_unref(v);

	rc = dm_registry_create(r, &made, name, NULL, timeout_ms, err);
	if (rc) {
		free(o);
		free(branches);
		return rc;
	}
	snprintf(to, sizeof(to), "%s", json_string_value(json_object_get(made, "id")));
	json_decref(made);
	fork = find_new(r, to);
	if (!fork) {
		free(o);
		free(branches);
		return dm_err_set(err, DM_ENOTFOUND, "the fork '%s' went away as it was made",
				  dm_dot_name_text(shown, name));
	}
	req = dm_dot_req_new(DM_DOT_OP_SET_ORIGIN);
	req->origin = o;
	rc = dm_dot_call(&answer, fork, req, timeout_ms, err);
	json_decref(answer);
	for (size_t i = 0; i < nbranches && !rc; i++)
		if (branches[i].head[0])
			rc = fork_branch(fork, env->store, from, to, &branches[i], trusted, err);
	if (rc) {
		struct dm_err derr;

		dm_err_prefix(err, "cannot fork into '%s'", dm_dot_name_text(shown, name));
		answer = NULL;
		if (dm_dot_call(&answer, fork, dm_dot_req_new(DM_DOT_OP_DELETE), timeout_ms, &derr))
			dm_warn("cannot delete the unfinished fork %s: %s", to, derr.msg);
		json_decref(answer);
	} else {
		v = dm_dot_handle_view(fork);
		*result = dm_dot_view_json(v, env->server);
		dm_dot_view_unref(v);
		dm_info("dot %s forked into %s (%s): %zu branches", from,
			dm_dot_name_text(shown, name), to, nbranches);
	}
	dm_dot_handle_unref(fork);
	free(branches);
	return rc;
}
