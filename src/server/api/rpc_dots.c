/*
 * rpc_dots.c - the dots.* methods of the API (docs/api.md).
 *
 * Invariants: no handler here touches a dot's state. Reads come from the
 * registry's snapshot and the dots' published views (and from immutable
 * commit objects in the store); every change is a request to the dot's
 * actor, answered within the method's deadline. Every method that names
 * a dot asks access.h whether the caller's role allows it (find_dot, with
 * the role the method needs: docs/api.md's table of roles) before it
 * reads or sends anything; creating a dot asks dm_dot_may_create.
 */
#include "actor/actor.h"
#include "server/api/api.h"
#include "server/api/auth.h"
#include "server/api/rpc.h"
#include "server/cluster/cluster.h"
#include "server/cluster/forward.h"
#include "server/cluster/replicas.h"
#include "server/dots/access.h"
#include "server/dots/dot.h"
#include "server/dots/fork.h"
#include "server/dots/hooks.h"
#include "server/dots/registry.h"
#include "server/space/space.h"
#include "store/object.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/banned.h"

#define REFRESH_WAIT_MS  5000
#define LONG_DEADLINE_MS (3600 * 1000)

static int parse_dot_param(struct dm_dot_name *out, json_t *params, struct dm_err *err)
{
	const char *s;
	int rc = dm_rpc_param_str(&s, params, "dot", true, err);

	return rc ? rc : dm_dot_name_parse(out, s, err);
}

/*
 * The dot named by params.dot, if the caller may do `what` to it, which
 * needs role `need` (access.h; the table of methods and roles is in
 * docs/api.md): a new handle reference. A refusal names what is missing.
 */
static int find_dot(struct dm_dot_handle **out, const struct dm_rpc_ctx *ctx, json_t *params,
		    int need, const char *what, struct dm_err *err)
{
	struct dm_registry_snap *snap;
	const struct dm_registry_entry *e;
	struct dm_dot_name name;
	int rc = parse_dot_param(&name, params, err);

	if (rc)
		return rc;
	snap = dm_registry_snapshot(ctx->env->registry);
	e = dm_registry_find(snap, &name);
	if (e) {
		struct dm_dot_view *v = dm_dot_handle_view(e->dot);

		rc = dm_dot_may(v, ctx->caller, need, what, err);
		dm_dot_view_unref(v);
		if (!rc) {
			*out = e->dot;
			dm_dot_handle_ref(e->dot);
		}
	}
	dm_registry_snap_unref(snap);
	if (!e) {
		char shown[DM_DOT_NAME_TEXT_MAX];

		return dm_err_set(err, DM_ENOTFOUND, "no such dot '%s'",
				  dm_dot_name_text(shown, &name));
	}
	return rc;
}

/* Fills req->branch from params.branch (optional), checking the name. */
static int branch_param(struct dm_dot_req *req, json_t *params, const char *key, bool required,
			struct dm_err *err)
{
	const char *s = NULL;
	int rc = dm_rpc_param_str(&s, params, key, required, err);

	if (rc || !s)
		return rc;
	rc = dm_branch_name_check(s, err);
	if (!rc)
		req->branch = dm_xstrdup(s);
	return rc;
}

static int ref_param(char **out, json_t *params, const char *key, bool required, struct dm_err *err)
{
	const char *s = NULL;
	struct dm_ref ref;
	int rc = dm_rpc_param_str(&s, params, key, required, err);

	if (rc || !s)
		return rc;
	rc = dm_ref_parse(&ref, s, err);
	if (!rc)
		*out = dm_xstrdup(s);
	return rc;
}

/* Sends req to the dot named in params, if the caller may (find_dot), and
 * returns its answer. */
static int call_dot(const struct dm_rpc_ctx *ctx, json_t *params, int need, const char *what,
		    struct dm_dot_req *req, json_t **result, struct dm_err *err)
{
	struct dm_dot_handle *h = NULL;
	int rc = find_dot(&h, ctx, params, need, what, err);

	if (rc) {
		dm_dot_req_free(req);
		return rc;
	}
	rc = dm_dot_call(result, h, req, dm_rpc_deadline_ms(), err);
	dm_dot_handle_unref(h);
	return rc;
}

/*
 * Calls the dot unless another node of the cluster masters the branch the
 * request names (or this node's current one): then that node serves it.
 */
static int call_master(const struct dm_rpc_ctx *ctx, const char *method, json_t *params, int need,
		       const char *what, struct dm_dot_req *req, json_t **result,
		       struct dm_err *err)
{
	struct dm_dot_handle *h = NULL;
	struct dm_dot_view *v;
	char branch[DM_NAME_PART_MAX + 1], shown[DM_DOT_NAME_TEXT_MAX];
	bool forwarded = false;
	int rc = find_dot(&h, ctx, params, need, what, err);

	if (rc) {
		dm_dot_req_free(req);
		return rc;
	}
	v = dm_dot_handle_view(h);
	snprintf(branch, sizeof(branch), "%s", req->branch ? req->branch : v->current);
	dm_dot_name_text(shown, &v->name);
	rc = dm_forward_to_master(ctx->env->cluster, ctx->caller, dm_rpc_deadline_ms(), method,
				  params, v->id, shown, branch, result, &forwarded, err);
	dm_dot_view_unref(v);
	if (!rc && !forwarded)
		rc = dm_dot_call(result, h, req, dm_rpc_deadline_ms(), err);
	else
		dm_dot_req_free(req);
	dm_dot_handle_unref(h);
	return rc;
}

static int m_create(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		    struct dm_err *err)
{
	struct dm_dot_name name;
	int rc = parse_dot_param(&name, params, err);

	if (!rc)
		rc = dm_dot_may_create(&name, ctx->caller, err);
	if (rc)
		return rc;
	return dm_registry_create(ctx->env->registry, result, &name, NULL, dm_rpc_deadline_ms(),
				  err);
}

/* May the caller read the dot (see it in a listing)? */
static bool visible(const struct dm_rpc_ctx *ctx, struct dm_dot_handle *h)
{
	struct dm_dot_view *v = dm_dot_handle_view(h);
	bool ok = dm_dot_allows(v, ctx->caller, DM_ROLE_READ);

	dm_dot_view_unref(v);
	return ok;
}

static int m_list(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(ctx->env->registry);
	struct dm_ticket **tickets = dm_xcalloc(snap->n ? snap->n : 1, sizeof(*tickets));
	const char *server = ctx->env->address;
	json_t *dots = json_array(), *refresh = json_object_get(params, "refresh");
	bool measure = !refresh || json_is_true(refresh);

	if (refresh && !json_is_boolean(refresh)) {
		free(tickets);
		dm_registry_snap_unref(snap);
		json_decref(dots);
		return dm_err_set(err, DM_EINVAL, "parameter 'refresh' must be true or false");
	}
	/* ask every dot to measure itself at once, then collect the answers;
	 * without refresh, the views as they are */
	for (size_t i = 0; i < snap->n; i++) {
		if (!visible(ctx, snap->e[i].dot))
			continue;
		if (!measure) {
			struct dm_dot_view *v = dm_dot_handle_view(snap->e[i].dot);

			if (v->state == DM_DOT_READY)
				json_array_append_new(dots, dm_dot_view_json(v, server));
			dm_dot_view_unref(v);
			continue;
		}
		dm_actor_send_request(
			&tickets[i], dm_dot_handle_actor(snap->e[i].dot),
			dm_msg_new(0, dm_dot_req_new(DM_DOT_OP_REFRESH), dm_dot_req_free));
	}
	for (size_t i = 0; i < snap->n; i++) {
		struct dm_msg *reply = NULL;
		struct dm_err e;
		json_t *dot = NULL;

		if (!tickets[i])
			continue;
		if (dm_ticket_wait(&reply, tickets[i], REFRESH_WAIT_MS, &e) == 0 &&
		    reply->payload) {
			dot = reply->payload;
			reply->payload = NULL;
		} else {
			struct dm_dot_view *v = dm_dot_handle_view(snap->e[i].dot);

			if (v->state == DM_DOT_READY || v->state == DM_DOT_CREATING)
				dot = dm_dot_view_json(v, server);
			dm_dot_view_unref(v);
		}
		dm_msg_free(reply);
		dm_ticket_free(tickets[i]);
		if (dot && !strcmp(json_string_value(json_object_get(dot, "state")), "ready"))
			json_array_append_new(dots, dot);
		else
			json_decref(dot);
	}
	free(tickets);
	dm_registry_snap_unref(snap);
	*result = json_pack("{s:o}", "dots", dots);
	return 0;
}

static json_t *capture_json(const struct dm_commit *c);

/* Each branch of a dot's show gets how its head was taken ("capture"). A
 * head still being indexed has no commit object yet: it gets none. */
static void add_head_captures(const struct dm_rpc_ctx *ctx, const char *dot_id, json_t *branches)
{
	struct dm_store *store = dm_registry_env(ctx->env->registry)->store;
	struct dm_buf buf = DM_BUF_INIT;
	size_t i;
	json_t *b;

	json_array_foreach(branches, i, b)
	{
		const char *head = json_string_value(json_object_get(b, "head"));
		struct dm_commit c;
		struct dm_err err;
		dm_oid oid;

		dm_buf_reset(&buf);
		if (!head || !head[0] || dm_store_commit_get(store, dot_id, head, &oid, &err) ||
		    dm_store_get(store, &oid, &buf, NULL, &err) ||
		    dm_commit_decode(&c, buf.data, buf.len, &err))
			continue;
		json_object_set_new(b, "capture", capture_json(&c));
		dm_commit_release(&c);
	}
	dm_buf_release(&buf);
}

/*
 * The accounting's input: every dot of the node with its current branch
 * and its branches' heads, and its digest (with the commit index's
 * generation): figures computed for the same digest are current.
 */
static void acct_input(const struct dm_rpc_ctx *ctx, struct dm_space_acct_in *in)
{
	struct dm_store *store = dm_registry_env(ctx->env->registry)->store;
	struct dm_registry_snap *snap = dm_registry_snapshot(ctx->env->registry);
	struct dm_buf digest = DM_BUF_INIT;
	uint64_t gen = dm_store_commit_generation(store);

	memset(in, 0, sizeof(*in));
	dm_buf_add(&digest, &gen, sizeof(gen));
	in->dots = dm_xcalloc(snap->n + 1, sizeof(*in->dots));
	for (size_t i = 0; i < snap->n; i++) {
		struct dm_dot_view *v = dm_dot_handle_view(snap->e[i].dot);
		struct dm_acct_dot *d = &in->dots[in->ndots++];
		const char **names = dm_xcalloc(v->nbranches + 1, sizeof(*names));
		const char **heads = dm_xcalloc(v->nbranches + 1, sizeof(*heads));

		d->id = dm_xstrdup(v->id);
		d->current = dm_xstrdup(v->current);
		d->nbranches = v->nbranches;
		dm_buf_addf(&digest, "%s%c%s%c", v->id, 0, v->current, 0);
		for (size_t b = 0; b < v->nbranches; b++) {
			names[b] = dm_xstrdup(v->branches[b].name);
			heads[b] = dm_xstrdup(v->branches[b].head);
			dm_buf_addf(&digest, "%s%c%s%c", names[b], 0, heads[b], 0);
		}
		d->names = names;
		d->heads = heads;
		dm_dot_view_unref(v);
	}
	dm_hash(&in->key, digest.data, digest.len);
	dm_buf_release(&digest);
	dm_registry_snap_unref(snap);
}

/*
 * What the dot costs (its "space", and each branch's): the space actor's
 * cached figures, waiting up to ACCT_WAIT_MS for an accounting that this
 * or an earlier change started, then the last figures, marked stale.
 */
#define ACCT_WAIT_MS 3000
static void add_space(const struct dm_rpc_ctx *ctx, const char *dot_id, json_t *result)
{
	json_t *fig = NULL, *b, *bfig;
	bool fresh = false;
	int64_t as_of = 0;
	size_t i;

	if (!ctx->env->space)
		return;
	for (int waited = 0;; waited += 50) {
		struct dm_space_acct_in in;
		struct dm_err err;

		json_decref(fig);
		fig = NULL;
		acct_input(ctx, &in);
		if (dm_space_account(ctx->env->space, &in, dot_id, &fig, &fresh, &as_of, &err)) {
			dm_space_acct_in_free(&in);
			return;
		}
		if (fresh || waited >= ACCT_WAIT_MS)
			break;
		usleep(50 * 1000);
	}
	if (!fig) {
		json_object_set_new(result, "space", json_pack("{s:b}", "stale", true));
		return;
	}
	json_array_foreach(json_object_get(result, "branches"), i, b)
	{
		bfig = json_object_get(json_object_get(fig, "branches"),
				       json_string_value(json_object_get(b, "name")));
		if (bfig)
			json_object_set(b, "space", bfig);
	}
	json_object_del(fig, "branches");
	json_object_set_new(fig, "stale", json_boolean(!fresh));
	json_object_set_new(fig, "as_of_ns", json_integer((json_int_t)as_of));
	json_object_set_new(result, "space", fig);
}

static int m_show(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	json_t *replicas = NULL;
	const char *id;
	int rc = call_dot(ctx, params, DM_ROLE_READ, "read", dm_dot_req_new(DM_DOT_OP_REFRESH),
			  result, err);

	id = rc ? NULL : json_string_value(json_object_get(*result, "id"));
	if (id)
		add_head_captures(ctx, id, json_object_get(*result, "branches"));
	if (id)
		add_space(ctx, id, *result);
	if (id && dm_replicas_json(&replicas, ctx->env->cluster, id, err) == 0 && replicas)
		json_object_set_new(*result, "nodes", replicas);
	if (id && ctx->env->mount_warning && ctx->env->mount_warning[0])
		json_object_set_new(*result, "warnings",
				    json_pack("[s]", ctx->env->mount_warning));
	return rc;
}

/*
 * In a cluster, a delete ends the dot on every node: it is marked deleted
 * in the KV (tombstone, name and masters: dm_cluster_mark_deleted), then
 * this node's copy goes as on one node, and every other node's replicator
 * deletes its own. The dot may have no copy here yet: the cluster's name
 * finds it. Only *handled says whether the caller should go on with the
 * local delete.
 */
static int delete_in_cluster(const struct dm_rpc_ctx *ctx, json_t *params, const char *id,
			     json_t **result, bool *handled, struct dm_err *err)
{
	struct dm_kv *kv = ctx->env->kv;
	struct dm_registry_snap *snap = dm_registry_snapshot(ctx->env->registry);
	const struct dm_registry_entry *e = NULL;
	struct dm_dot_name name;
	char found[DM_DOT_ID_MAX + 1], shown[DM_DOT_NAME_TEXT_MAX];
	size_t nmounts = 0;
	int rc = 0;

	*handled = false;
	if (id) {
		e = dm_registry_find_id(snap, id);
	} else {
		/* the cluster's name says which dot: a copy here of an older dot
		 * of that name (deleted, not yet gone here) is not it */
		rc = parse_dot_param(&name, params, err);
		if (!rc)
			rc = dm_cluster_name_id(kv, found, sizeof(found), name.ns, name.name, err);
		if (!rc)
			e = dm_registry_find_id(snap, found);
		else if (rc == DM_ENOTFOUND)
			rc = dm_err_set(err, DM_ENOTFOUND, "no such dot '%s'",
					dm_dot_name_text(shown, &name));
	}
	if (!rc && e) {
		struct dm_dot_view *v = dm_dot_handle_view(e->dot);

		name = v->name;
		snprintf(found, sizeof(found), "%s", v->id);
		nmounts = v->nmounts;
		rc = dm_dot_may(v, ctx->caller, DM_ROLE_OWNER, "delete", err);
		dm_dot_view_unref(v);
	}
	dm_registry_snap_unref(snap);
	if (rc)
		return rc;
	if (!e) {
		/* no copy here: by id, a retry; by name, the cluster's name */
		*handled = true;
		if (id) {
			rc = dm_registry_is_deleted(kv, id, err);
			if (rc == 1)
				*result = json_object();
			return rc == 1 ? 0
			       : rc    ? rc
				       : dm_err_set(err, DM_ENOTFOUND, "no such dot id '%s'", id);
		}
		/* no copy here, so no record of it: its owner is its namespace's */
		struct dm_dot_view nocopy = {.name = name};

		snprintf(nocopy.owner, sizeof(nocopy.owner), "%s", name.ns);
		rc = dm_dot_may(&nocopy, ctx->caller, DM_ROLE_OWNER, "delete", err);
		if (rc)
			return rc;
		rc = dm_cluster_check_unused(kv, found, ctx->env->node_id, err);
		if (rc)
			return dm_err_prefix(err, "cannot delete dot '%s'",
					     dm_dot_name_text(shown, &name));
		rc = dm_cluster_mark_deleted(kv, found, name.ns, name.name, err);
		if (!rc)
			*result = json_object();
		return rc;
	}
	if (nmounts)
		return 0; /* the dot refuses: in use */
	rc = dm_cluster_check_unused(kv, found, ctx->env->node_id, err);
	if (rc)
		return dm_err_prefix(err, "cannot delete dot '%s'", dm_dot_name_text(shown, &name));
	return dm_cluster_mark_deleted(kv, found, name.ns, name.name, err);
}

static int m_delete(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		    struct dm_err *err)
{
	const char *id = NULL;
	bool handled = false;
	int rc = dm_rpc_param_str(&id, params, "id", false, err);

	if (!rc && ctx->env->kv_root[0])
		rc = delete_in_cluster(ctx, params, id, result, &handled, err);
	if (rc || handled)
		return rc;
	if (id) {
		/* by id: a retry after the dot is gone succeeds */
		struct dm_registry_snap *snap = dm_registry_snapshot(ctx->env->registry);
		const struct dm_registry_entry *e = dm_registry_find_id(snap, id);
		struct dm_dot_handle *h = e ? e->dot : NULL;
		bool gone = dm_registry_was_deleted(snap, id);

		if (h)
			dm_dot_handle_ref(h);
		dm_registry_snap_unref(snap);
		if (!h) {
			if (!gone)
				return dm_err_set(err, DM_ENOTFOUND, "no such dot id '%s'", id);
			*result = json_object();
			return 0;
		}
		{
			struct dm_dot_view *v = dm_dot_handle_view(h);

			rc = dm_dot_may(v, ctx->caller, DM_ROLE_OWNER, "delete", err);
			dm_dot_view_unref(v);
		}
		if (rc) {
			dm_dot_handle_unref(h);
			return rc;
		}
		rc = dm_dot_call(result, h, dm_dot_req_new(DM_DOT_OP_DELETE), dm_rpc_deadline_ms(),
				 err);
		dm_dot_handle_unref(h);
		return rc;
	}
	return call_dot(ctx, params, DM_ROLE_OWNER, "delete", dm_dot_req_new(DM_DOT_OP_DELETE),
			result, err);
}

static int m_commit(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		    struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_COMMIT);
	json_t *meta = json_object_get(params, "metadata");
	json_t *max_freeze = json_object_get(params, "max_freeze_ms");
	const char *message = NULL, *author = NULL, *id = NULL, *key;
	json_t *value;
	int rc = branch_param(req, params, "branch", false, err);

	if (!rc)
		rc = dm_rpc_param_str(&message, params, "message", true, err);
	if (!rc && !message[0])
		rc = dm_err_set(err, DM_EINVAL, "a commit needs a message");
	if (!rc)
		rc = dm_rpc_param_str(&author, params, "author", false, err);
	if (!rc)
		rc = dm_rpc_param_str(&id, params, "id", false, err);
	if (!rc && id && !(rc = dm_commit_id_check(id, err)))
		req->commit_id = dm_xstrdup(id);
	/* the author is who called; a forwarded call is the original caller's */
	if (!rc && author && strcmp(author, ctx->caller->user) != 0 && !ctx->caller->admin)
		rc = dm_err_set(err, DM_EPERM,
				"user '%s' may not commit as '%s': only an admin may commit as "
				"another author",
				ctx->caller->user, author);
	if (!rc && meta && !json_is_object(meta))
		rc = dm_err_set(err, DM_EINVAL, "metadata must be an object of strings");
	if (!rc && max_freeze &&
	    (!json_is_integer(max_freeze) || json_integer_value(max_freeze) < 1 ||
	     json_integer_value(max_freeze) > DM_DOT_MAX_FREEZE_MS_MAX))
		rc = dm_err_set(err, DM_EINVAL, "max_freeze_ms must be an integer from 1 to %d",
				DM_DOT_MAX_FREEZE_MS_MAX);
	if (rc)
		goto fail;
	if (max_freeze)
		req->max_freeze_ms = (int64_t)json_integer_value(max_freeze);
	req->message = dm_xstrdup(message);
	req->author = dm_xstrdup(author ? author : ctx->caller->user);
	if (meta) {
		size_t n = json_object_size(meta), i = 0;

		if (n > DM_COMMIT_MAX_META) {
			rc = dm_err_set(err, DM_EINVAL, "at most %u metadata entries",
					DM_COMMIT_MAX_META);
			goto fail;
		}
		req->meta_keys = dm_xcalloc(n ? n : 1, sizeof(char *));
		req->meta_values = dm_xcalloc(n ? n : 1, sizeof(char *));
		json_object_foreach(meta, key, value)
		{
			rc = dm_meta_key_check(key, err);
			if (!rc)
				rc = dm_meta_key_not_reserved(key, err);
			if (!rc && (!json_is_string(value) ||
				    strlen(json_string_value(value)) > DM_META_VALUE_MAX))
				rc = dm_err_set(
					err, DM_EINVAL,
					"metadata value of '%s' must be a string of at most "
					"%u bytes",
					key, DM_META_VALUE_MAX);
			if (rc)
				goto fail;
			req->meta_keys[i] = dm_xstrdup(key);
			req->meta_values[i] = dm_xstrdup(json_string_value(value));
			req->nmeta = ++i;
		}
	}
	return call_master(ctx, "dots.commit", params, DM_ROLE_WRITE, "commit to", req, result,
			   err);
fail:
	dm_dot_req_free(req);
	return rc;
}

static void format_time(char *out, size_t size, int64_t ns)
{
	time_t secs = (time_t)(ns / 1000000000);
	struct tm tm;
	size_t n;

	gmtime_r(&secs, &tm);
	n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, size - n, ".%09lldZ", (long long)(ns % 1000000000));
}

/*
 * Text of a commit as a JSON string. A commit received from another server
 * may hold bytes that are not UTF-8, which jansson refuses: they are sent
 * escaped as \xNN (docs/api.md), so a commit is never dropped from an
 * answer.
 */
static json_t *text_json(const char *s)
{
	struct dm_buf b = DM_BUF_INIT;
	json_t *j = json_string(s);

	if (!j && !dm_buf_add_utf8(&b, s))
		j = json_string((const char *)b.data);
	dm_buf_release(&b);
	return j ? j : json_string("");
}

/*
 * How commit c was taken, from dm's own metadata (DM_META_*): {"how":
 * "frozen", "freeze_ms": 37, "frozen": "db", "changed": "...", "hooks":
 * "..."}, with only what it recorded; {} for a commit that recorded
 * nothing (made before dm recorded it).
 */
static json_t *capture_json(const struct dm_commit *c)
{
	json_t *j = json_object();

	for (size_t i = 0; i < c->nmeta; i++) {
		const char *k = c->meta[i].key, *v = c->meta[i].value;

		if (!strcmp(k, DM_META_CAPTURE))
			json_object_set_new(j, "how", text_json(v));
		else if (!strcmp(k, DM_META_FREEZE_MS))
			json_object_set_new(j, "freeze_ms", json_integer(strtoll(v, NULL, 10)));
		else if (!strcmp(k, DM_META_FROZEN))
			json_object_set_new(j, "frozen", text_json(v));
		else if (!strcmp(k, DM_META_CHANGED))
			json_object_set_new(j, "changed", text_json(v));
		else if (!strcmp(k, DM_META_HOOKS))
			json_object_set_new(j, "hooks", text_json(v));
	}
	return j;
}

static json_t *commit_json(const struct dm_commit *c)
{
	char tree[DM_OID_HEXSZ + 1], when[64];
	json_t *parents = json_array(), *meta = json_object();

	json_t *capture = capture_json(c);

	for (size_t i = 0; i < c->nparents; i++)
		json_array_append_new(parents, text_json(c->parents[i]));
	for (size_t i = 0; i < c->nmeta; i++)
		if (strncmp(c->meta[i].key, DM_META_RESERVED_PREFIX,
			    strlen(DM_META_RESERVED_PREFIX))) {
			json_t *key = text_json(c->meta[i].key);

			json_object_set_new(meta, json_string_value(key),
					    text_json(c->meta[i].value));
			json_decref(key);
		}
	dm_oid_hex(tree, &c->tree);
	format_time(when, sizeof(when), c->time_ns);
	return json_pack("{s:o, s:o, s:o, s:s, s:I, s:o, s:o, s:s, s:o}", "id",
			 text_json(c->commit_id), "parents", parents, "author",
			 text_json(c->author), "time", when, "time_ns", (json_int_t)c->time_ns,
			 "message", text_json(c->message), "metadata", meta, "tree", tree,
			 "capture", capture);
}

/* c: the dot's commit `id`, decoded from buf, and its flags (DM_COMMIT_*);
 * DM_ENOTFOUND when the dot has no such commit */
static int read_commit(struct dm_store *store, const char *dot_id, const char *id,
		       struct dm_commit *c, unsigned *flags, struct dm_buf *buf, struct dm_err *err)
{
	dm_oid oid;
	int rc = dm_store_commit_info(store, dot_id, id, &oid, flags, err);

	dm_buf_reset(buf);
	if (!rc)
		rc = dm_store_get(store, &oid, buf, NULL, err);
	if (!rc)
		rc = dm_commit_decode(c, buf->data, buf->len, err);
	return rc;
}

/* dots.log's page: LOG_LIMIT_DEFAULT commits unless `limit` asks for up to
 * LOG_LIMIT_MAX (docs/api.md) */
#define LOG_LIMIT_DEFAULT 100
#define LOG_LIMIT_MAX     1000

/* A page of a branch's first-parent history, newest first: from its head, or
 * from the first parent of commit `before` (the `next` of the page before),
 * which stays the same page while commits are added at the head. Commits
 * are immutable: the log is read from the store on this thread, starting
 * at the head the dot's latest view names. */
static int m_log(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	struct dm_store *store = dm_registry_env(ctx->env->registry)->store;
	struct dm_dot_handle *h = NULL;
	struct dm_dot_view *v = NULL;
	const struct dm_branch_view *b;
	const char *branch = NULL, *before = NULL;
	json_t *jlimit = json_object_get(params, "limit");
	json_int_t limit = LOG_LIMIT_DEFAULT, n = 0;
	char cur[DM_COMMIT_ID_LEN_MAX + 1];
	json_t *commits = json_array();
	struct dm_buf buf = DM_BUF_INIT;
	int rc = dm_rpc_param_str(&branch, params, "branch", false, err);

	if (!rc)
		rc = dm_rpc_param_str(&before, params, "before", false, err);
	if (!rc && jlimit &&
	    (!json_is_integer(jlimit) || json_integer_value(jlimit) < 1 ||
	     json_integer_value(jlimit) > LOG_LIMIT_MAX))
		rc = dm_err_set(err, DM_EINVAL,
				"limit must be an integer from 1 to %d; page on with `before`",
				LOG_LIMIT_MAX);
	if (!rc && jlimit)
		limit = json_integer_value(jlimit);
	if (!rc && before && (!*before || strlen(before) > DM_COMMIT_ID_LEN_MAX))
		rc = dm_err_set(err, DM_EINVAL,
				"before must be a commit id (the `next` of the page before)");
	if (!rc)
		rc = find_dot(&h, ctx, params, DM_ROLE_READ, "read", err);
	if (!rc)
		rc = dm_dot_wait_sealed(h, dm_rpc_deadline_ms(), err);
	if (rc)
		goto done;
	v = dm_dot_handle_view(h);
	b = dm_dot_view_branch(v, branch ? branch : v->current);
	if (!b) {
		char shown[DM_DOT_NAME_TEXT_MAX];

		rc = dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no branch '%s'",
				dm_dot_name_text(shown, &v->name), branch);
		goto done;
	}
	snprintf(cur, sizeof(cur), "%s", b->head);
	if (before) {
		struct dm_commit c;
		unsigned flags = 0;

		rc = read_commit(store, v->id, before, &c, &flags, &buf, err);
		if (rc)
			goto done;
		snprintf(cur, sizeof(cur), "%s", c.nparents ? c.parents[0] : "");
		dm_commit_release(&c);
	}
	while (cur[0] && n < limit) {
		struct dm_commit c;
		unsigned flags = 0;
		json_t *cj;

		rc = read_commit(store, v->id, cur, &c, &flags, &buf, err);
		if (rc)
			goto done;
		cj = commit_json(&c);
		/* its record stays, its data is gone (dm dot prune, dm fsck) */
		if (flags & DM_COMMIT_PRUNED)
			json_object_set_new(cj, "pruned", json_true());
		if (flags & DM_COMMIT_DAMAGED)
			json_object_set_new(cj, "damaged", json_true());
		json_array_append_new(commits, cj);
		n++;
		snprintf(cur, sizeof(cur), "%s", c.nparents ? c.parents[0] : "");
		dm_commit_release(&c);
	}
	*result = json_pack("{s:O, s:b}", "commits", commits, "more", cur[0] != 0);
	if (cur[0] && n)
		json_object_set(*result, "next",
				json_object_get(json_array_get(commits, (size_t)n - 1), "id"));
done:
	json_decref(commits);
	dm_buf_release(&buf);
	dm_dot_view_unref(v);
	dm_dot_handle_unref(h);
	return rc;
}

static int m_branches(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		      struct dm_err *err)
{
	struct dm_dot_handle *h = NULL;
	struct dm_dot_view *v;
	json_t *names;
	int rc = find_dot(&h, ctx, params, DM_ROLE_READ, "read", err);

	if (rc)
		return rc;
	v = dm_dot_handle_view(h);
	names = json_array();
	for (size_t i = 0; i < v->nbranches; i++)
		json_array_append_new(names, json_string(v->branches[i].name));
	*result = json_pack("{s:o, s:s}", "branches", names, "current", v->current);
	dm_dot_view_unref(v);
	dm_dot_handle_unref(h);
	return 0;
}

static int m_branch(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		    struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_BRANCH);
	int rc = branch_param(req, params, "branch", true, err);

	if (!rc)
		rc = ref_param(&req->from, params, "from", false, err);
	if (rc) {
		dm_dot_req_free(req);
		return rc;
	}
	return call_dot(ctx, params, DM_ROLE_WRITE, "make a branch of", req, result, err);
}

static int m_checkout(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		      struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_CHECKOUT);
	json_t *create = json_object_get(params, "create");
	int rc = branch_param(req, params, "branch", true, err);

	if (!rc && create && !json_is_boolean(create))
		rc = dm_err_set(err, DM_EINVAL, "parameter 'create' must be true or false");
	if (rc) {
		dm_dot_req_free(req);
		return rc;
	}
	req->create = json_is_true(create);
	return call_dot(ctx, params, DM_ROLE_OWNER, "check out a branch of", req, result, err);
}

static int m_reset(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		   struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_RESET);
	int rc = branch_param(req, params, "branch", false, err);

	if (!rc)
		rc = ref_param(&req->from, params, "ref", true, err);
	if (rc) {
		dm_dot_req_free(req);
		return rc;
	}
	return call_master(ctx, "dots.reset", params, DM_ROLE_OWNER, "reset", req, result, err);
}

static int m_delete_branch(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			   struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_DELETE_BRANCH);
	json_t *force = json_object_get(params, "force");
	int rc = branch_param(req, params, "branch", true, err);

	if (!rc && force && !json_is_boolean(force))
		rc = dm_err_set(err, DM_EINVAL, "parameter 'force' must be true or false");
	if (rc) {
		dm_dot_req_free(req);
		return rc;
	}
	req->force = json_is_true(force);
	return call_dot(ctx, params, DM_ROLE_OWNER, "delete a branch of", req, result, err);
}

/*
 * dots.prune: restic's forget rules per branch (retention.h): "keep_last",
 * "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
 * "keep_yearly" (a count, -1 for no limit), "keep_within_ms", "dry_run".
 * The dot's owner or an admin, as for reset.
 */
static int m_prune(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		   struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_PRUNE);
	json_t *dry = json_object_get(params, "dry_run");
	json_t *within = json_object_get(params, "keep_within_ms");
	int rc = 0;

	for (int r = 0; r < DM_KEEP_NRULES && !rc; r++) {
		char key[32];
		json_t *v;

		snprintf(key, sizeof(key), "keep_%s", dm_keep_rule_name(r));
		v = json_object_get(params, key);
		if (!v)
			continue;
		if (!json_is_integer(v) || json_integer_value(v) < -1)
			rc = dm_err_set(err, DM_EINVAL,
					"parameter '%s' must be a count (-1: no limit)", key);
		else
			req->keep.n[r] = json_integer_value(v);
	}
	if (!rc && within && (!json_is_integer(within) || json_integer_value(within) < 0))
		rc = dm_err_set(err, DM_EINVAL, "parameter 'keep_within_ms' must be 0 or more");
	if (!rc && within)
		req->keep.within_ms = json_integer_value(within);
	if (!rc && dry && !json_is_boolean(dry))
		rc = dm_err_set(err, DM_EINVAL, "parameter 'dry_run' must be true or false");
	if (rc) {
		dm_dot_req_free(req);
		return rc;
	}
	req->dry_run = json_is_true(dry);
	return call_dot(ctx, params, DM_ROLE_OWNER, "prune", req, result, err);
}

static int m_diff(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_DIFF);
	int rc = branch_param(req, params, "branch", false, err);

	if (!rc)
		rc = ref_param(&req->from, params, "from", false, err);
	if (!rc)
		rc = ref_param(&req->to, params, "to", false, err);
	if (!rc && req->to && !req->from)
		rc = dm_err_set(err, DM_EINVAL, "'to' needs 'from'");
	if (rc) {
		dm_dot_req_free(req);
		return rc;
	}
	/* a diff that reads the working copy is the master's */
	if (!req->to)
		return call_master(ctx, "dots.diff", params, DM_ROLE_READ, "read", req, result,
				   err);
	return call_dot(ctx, params, DM_ROLE_READ, "read", req, result, err);
}

static int m_path(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_PATH);
	int rc = branch_param(req, params, "branch", false, err);

	if (rc) {
		dm_dot_req_free(req);
		return rc;
	}
	/* the working copy is where a user writes: dm mount links to it */
	return call_dot(ctx, params, DM_ROLE_WRITE, "use the working copy of", req, result, err);
}

/* params.user: a user that exists (a name granted before its user exists
 * would give the dot to whoever is made with that name later). */
static int user_param(const char **out, const struct dm_rpc_ctx *ctx, json_t *params,
		      struct dm_err *err)
{
	struct dm_caller who;
	int rc = dm_rpc_param_str(out, params, "user", true, err);

	if (!rc && !dm_name_part_valid(*out, strlen(*out)))
		rc = dm_err_set(err, DM_EINVAL, "invalid user name '%s'", *out);
	if (!rc && dm_auth_lookup(ctx->env->kv, &who, *out, NULL))
		rc = dm_err_set(err, DM_ENOTFOUND,
				"no such user '%s'; an admin adds it with 'dm user add %s'", *out,
				*out);
	return rc;
}

/* Adds a collaborator, or changes its role: role "read" or "write"
 * (default write). Only the dot's owner or an admin. */
static int m_add_collaborator(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			      struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_ADD_COLLABORATOR);
	struct dm_dot_handle *h = NULL;
	const char *user = NULL, *role = NULL;
	int rc = find_dot(&h, ctx, params, DM_ROLE_OWNER, "manage the collaborators of", err);

	req->role = DM_ROLE_WRITE;
	if (!rc)
		rc = dm_rpc_param_str(&role, params, "role", false, err);
	if (!rc && role)
		rc = dm_dot_role_parse(&req->role, role, err);
	if (!rc)
		rc = user_param(&user, ctx, params, err);
	if (rc) {
		dm_dot_req_free(req);
		dm_dot_handle_unref(h);
		return rc;
	}
	req->user = dm_xstrdup(user);
	rc = dm_dot_call(result, h, req, dm_rpc_deadline_ms(), err);
	dm_dot_handle_unref(h);
	return rc;
}

static int m_remove_collaborator(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
				 struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_REMOVE_COLLABORATOR);
	const char *user = NULL;
	int rc = dm_rpc_param_str(&user, params, "user", true, err);

	if (rc) {
		dm_dot_req_free(req);
		return rc;
	}
	req->user = dm_xstrdup(user);
	return call_dot(ctx, params, DM_ROLE_OWNER, "manage the collaborators of", req, result,
			err);
}

/*
 * A hook runs a command for each commit: only the dot's owner or an admin
 * sets one (find_dot refuses everyone else), and only an admin one that
 * runs on the host, as dmd's own user. "hook": the hook (hooks.h's JSON)
 * or null to remove it.
 */
static int m_set_hook(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		      struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_SET_HOOK);
	struct dm_dot_handle *d = NULL;
	const char *which = NULL;
	json_t *hook = json_object_get(params, "hook");
	struct dm_hook h;
	int rc = find_dot(&d, ctx, params, DM_ROLE_OWNER, "set the hooks of", err);

	if (!rc)
		rc = dm_rpc_param_str(&which, params, "name", true, err);
	if (!rc && !json_is_null(hook) && hook) {
		rc = dm_hook_from_json(&h, hook, err);
		if (!rc) {
			json_t *full = dm_hook_to_json(&h); /* as it runs: defaults filled */

			if ((!h.container || !h.container[0]) && !ctx->caller->admin)
				rc = dm_err_set(err, DM_EPERM,
						"only an admin may set a hook that runs on the host; "
						"give a container that uses the dot (--container)");
			else if (!full ||
				 !(req->hook = json_dumps(full, JSON_COMPACT | JSON_SORT_KEYS)))
				rc = dm_err_set(err, DM_ENOMEM, "out of memory");
			json_decref(full);
			dm_hook_release(&h);
		}
	} else if (!rc && !hook) {
		rc = dm_err_set(err, DM_EINVAL, "missing parameter 'hook' (null removes it)");
	}
	if (rc) {
		dm_dot_req_free(req);
		dm_dot_handle_unref(d);
		return rc;
	}
	req->hook_name = dm_xstrdup(which);
	rc = dm_dot_call(result, d, req, dm_rpc_deadline_ms(), err);
	dm_dot_handle_unref(d);
	return rc;
}

/* dots.fork: a new dot `fork` made from `dot` (read), in a namespace the
 * caller may create dots in. */
static int m_fork(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	struct dm_dot_handle *h = NULL;
	struct dm_dot_name name;
	const char *fork;
	int rc = dm_rpc_param_str(&fork, params, "fork", true, err);

	if (!rc)
		rc = dm_dot_name_parse(&name, fork, err);
	if (!rc)
		rc = dm_dot_may_create(&name, ctx->caller, err);
	if (!rc)
		rc = find_dot(&h, ctx, params, DM_ROLE_READ, "fork", err);
	if (rc)
		return rc;
	rc = dm_dot_fork(result, ctx->env->registry, h, &name, dm_rpc_deadline_ms(), err);
	dm_dot_handle_unref(h);
	return rc;
}

/* A holder of a read-only copy, as the caller gives it (dot.h). */
static int holder_param(char **out, json_t *params, struct dm_err *err)
{
	const char *h;
	int rc = dm_rpc_param_str(&h, params, "holder", true, err);

	if (rc)
		return rc;
	if (!*h || strlen(h) >= DM_HOLDER_MAX)
		return dm_err_set(err, DM_EINVAL, "parameter 'holder' must be 1 to %d bytes",
				  DM_HOLDER_MAX - 1);
	*out = dm_xstrdup(h);
	return 0;
}

/* dots.mount_commit: a read-only copy of a commit (dotmesh's MountCommit) */
static int m_mount_commit(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			  struct dm_err *err)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_MOUNT_COMMIT);
	int rc = ref_param(&req->from, params, "commit", true, err);

	if (!rc)
		rc = holder_param(&req->holder, params, err);
	if (rc) {
		dm_dot_req_free(req);
		return rc;
	}
	return call_dot(ctx, params, DM_ROLE_READ, "read", req, result, err);
}

/* dots.unmount_commit: holder lets go of its copy, of dot or (no dot) of
 * every dot the caller may read that it holds one of */
static int m_unmount_commit(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			    struct dm_err *err)
{
	struct dm_registry_snap *snap;
	char *holder = NULL;
	int rc = holder_param(&holder, params, err), released = 0;

	if (rc)
		return rc;
	if (json_object_get(params, "dot")) {
		struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_UNMOUNT_COMMIT);

		req->holder = holder;
		return call_dot(ctx, params, DM_ROLE_READ, "read", req, result, err);
	}
	snap = dm_registry_snapshot(ctx->env->registry);
	for (size_t i = 0; i < snap->n && !rc; i++) {
		struct dm_dot_view *v = dm_dot_handle_view(snap->e[i].dot);
		bool holds = false;

		for (size_t k = 0; k < v->nholds; k++)
			holds = holds || !strcmp(v->holds[k].holder, holder);
		if (holds && dm_dot_allows(v, ctx->caller, DM_ROLE_READ)) {
			struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_UNMOUNT_COMMIT);
			json_t *res = NULL;

			req->holder = dm_xstrdup(holder);
			rc = dm_dot_call(&res, snap->e[i].dot, req, dm_rpc_deadline_ms(), err);
			json_decref(res);
			released++;
		}
		dm_dot_view_unref(v);
	}
	dm_registry_snap_unref(snap);
	free(holder);
	if (!rc)
		*result = json_pack("{s:i}", "released", released);
	return rc;
}

const struct dm_rpc_method dm_rpc_dot_methods[] = {
	{"dots.create", m_create, false, 0},
	{"dots.list", m_list, false, 0},
	{"dots.show", m_show, false, 0},
	{"dots.delete", m_delete, false, 0},
	{"dots.commit", m_commit, false, LONG_DEADLINE_MS},
	{"dots.log", m_log, false, 0},
	{"dots.branches", m_branches, false, 0},
	{"dots.branch", m_branch, false, LONG_DEADLINE_MS},
	{"dots.checkout", m_checkout, false, LONG_DEADLINE_MS},
	{"dots.reset", m_reset, false, LONG_DEADLINE_MS},
	{"dots.delete_branch", m_delete_branch, false, LONG_DEADLINE_MS},
	{"dots.prune", m_prune, false, LONG_DEADLINE_MS},
	{"dots.diff", m_diff, false, 0},
	{"dots.path", m_path, false, 0},
	{"dots.add_collaborator", m_add_collaborator, false, 0},
	{"dots.remove_collaborator", m_remove_collaborator, false, 0},
	{"dots.set_hook", m_set_hook, false, 0},
	{"dots.fork", m_fork, false, LONG_DEADLINE_MS},
	{"dots.mount_commit", m_mount_commit, false, LONG_DEADLINE_MS},
	{"dots.unmount_commit", m_unmount_commit, false, LONG_DEADLINE_MS},
	{NULL, NULL, false, 0},
};
