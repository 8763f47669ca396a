/*
 * replicate.c - the replicator: one thread that makes this node's copies
 * of the cluster's dots agree with the cluster (see replicate.h).
 *
 * Invariants: the replicator's state (the wake flags, its watch) is its
 * own, guarded by mu; dot state is read only from registry snapshots and
 * views, and changed only by requests to the dots and transfers it starts.
 * One pass runs at a time and starts at most one transfer at a time,
 * waiting for it to end, so two transfers of this node never race for one
 * dot. Every pass reads the cluster's state afresh (level-triggered).
 */
#include "server/cluster/replicate.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/kv.h"
#include "server/cluster/cluster.h"
#include "server/cluster/forward.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "server/transfers/transfer.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"

#include "util/banned.h"

/* How long a pass waits for one transfer before it goes on. */
#define TRANSFER_WAIT_MS (3600 * 1000)
/* How long a pass waits for a copy to be deleted. */
#define DELETE_WAIT_MS (10 * 60 * 1000)

struct dm_replicator {
	const struct dm_cluster_env *env;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu; /* guards the flags below */
	pthread_cond_t cond;
	bool stop, dirty, rewatch;
};

/* ---- waking ---- */

static void on_event(const struct dm_kv_event *ev, void *ctx)
{
	struct dm_replicator *r = ctx;

	pthread_mutex_lock(&r->mu);
	r->dirty = true;
	if (ev->type == DM_KV_EVENT_FAILED)
		r->rewatch = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

static bool stopping(struct dm_replicator *r)
{
	bool s;

	pthread_mutex_lock(&r->mu);
	s = r->stop;
	pthread_mutex_unlock(&r->mu);
	return s;
}

/* Waits for transfer id in slices, so that a stop is not held up by a
 * long transfer (the transfers actor cancels it when it stops). */
static int wait_transfer(struct dm_replicator *r, const char *id, struct dm_err *err)
{
	int rc = DM_ETIMEOUT;

	dm_err_set(err, DM_ECANCELED, "the replicator is stopping");
	for (int waited = 0; rc == DM_ETIMEOUT && waited < TRANSFER_WAIT_MS && !stopping(r);
	     waited += 1000)
		rc = dm_transfers_wait(r->env->transfers, id, 1000, err);
	return rc == DM_ETIMEOUT && stopping(r) ? DM_ECANCELED : rc;
}

/* ---- the cluster's state, as one pass reads it ---- */

/*
 * {"deleted": {ID: true}, "masters": {ID: {BRANCH: NODE}},
 *  "copies": {NODE: {ID: {"dot": RECORD, "branches": {BRANCH: {"head","resets"}}}}},
 *  "nodes": {NODE: {"address", "alive"}}}
 */
static int read_state(json_t *st, struct dm_kv *kv, struct dm_err *err)
{
	struct dm_kv_kvs l;
	struct dm_cluster_node *nodes;
	size_t n;
	int rc;

	json_object_set_new(st, "deleted", json_object());
	json_object_set_new(st, "masters", json_object());
	json_object_set_new(st, "copies", json_object());
	json_object_set_new(st, "nodes", json_object());
	dm_kv_kvs_init(&l);
	rc = dm_kv_range(kv, &l, DM_KV_DELETED, 0, err);
	for (size_t i = 0; !rc && i < l.len; i++) {
		/* the tombstone's record: {"namespace","name","deleted"} */
		json_t *v = json_loadb(l.items[i].value, l.items[i].value_len, 0, NULL);

		json_object_set_new(json_object_get(st, "deleted"),
				    l.items[i].key + strlen(DM_KV_DELETED), v ? v : json_object());
	}
	dm_kv_kvs_release(&l);
	if (!rc)
		rc = dm_kv_range(kv, &l, DM_KV_MASTERS, 0, err);
	for (size_t i = 0; !rc && i < l.len; i++) {
		char id[DM_DOT_ID_MAX + 1];
		const char *rest = l.items[i].key + strlen(DM_KV_MASTERS),
			   *slash = strchr(rest, '/');
		json_t *m;

		if (!slash || slash == rest || (size_t)(slash - rest) > DM_DOT_ID_MAX)
			continue;
		memcpy(id, rest, (size_t)(slash - rest));
		id[slash - rest] = '\0';
		m = json_object_get(json_object_get(st, "masters"), id);
		if (!m) {
			m = json_object();
			json_object_set_new(json_object_get(st, "masters"), id, m);
		}
		json_object_set_new(m, slash + 1,
				    json_stringn(l.items[i].value, l.items[i].value_len));
	}
	dm_kv_kvs_release(&l);
	if (!rc)
		rc = dm_kv_range(kv, &l, DM_KV_NODE_ROOT, 0, err);
	for (size_t i = 0; !rc && i < l.len; i++) {
		/* NODE/dots/ID or NODE/dots/ID/branches/B */
		char node[DM_UUID_LEN + 1], id[DM_DOT_ID_MAX + 1], branch[DM_NAME_PART_MAX + 1];
		const char *key = l.items[i].key + strlen(DM_KV_NODE_ROOT);
		json_t *copies, *copy, *v;
		int used = 0;

		branch[0] = '\0';
		if (sscanf(key, "%36[^/]/dots/%36[^/]%n", node, id, &used) != 2)
			continue;
		if (key[used] && sscanf(key + used, "/branches/%64[^/]", branch) != 1)
			continue;
		copies = json_object_get(json_object_get(st, "copies"), node);
		if (!copies) {
			copies = json_object();
			json_object_set_new(json_object_get(st, "copies"), node, copies);
		}
		copy = json_object_get(copies, id);
		if (!copy) {
			copy = json_pack("{s:n, s:{}}", "dot", "branches");
			json_object_set_new(copies, id, copy);
		}
		v = json_loadb(l.items[i].value, l.items[i].value_len, 0, NULL);
		if (!branch[0])
			json_object_set_new(copy, "dot", v ? v : json_null());
		else if (json_is_string(json_object_get(v, "head")) &&
			 dm_branch_name_check(branch, NULL) == 0)
			json_object_set(json_object_get(copy, "branches"), branch, v);
		if (branch[0])
			json_decref(v);
	}
	dm_kv_kvs_release(&l);
	if (!rc)
		rc = dm_cluster_nodes(kv, &nodes, &n, err);
	for (size_t i = 0; !rc && i < n; i++)
		json_object_set_new(json_object_get(st, "nodes"), nodes[i].id,
				    json_pack("{s:s, s:b}", "address", nodes[i].address, "alive",
					      nodes[i].alive));
	if (!rc)
		free(nodes);
	return rc;
}

/* ---- acting ---- */

/* Clones dot id (all branches) or pulls one branch from node. */
static void fetch(struct dm_replicator *r, json_t *node, const char *node_id, const char *id,
		  json_t *record, const char *branch)
{
	struct dm_dot_name name;
	char host[256], full[2 * DM_NAME_PART_MAX + 2], xid[DM_UUID_LEN + 1];
	const char *ns = json_string_value(json_object_get(record, "namespace"));
	const char *nm = json_string_value(json_object_get(record, "name"));
	const char *address = json_string_value(json_object_get(node, "address"));
	struct dm_err err;
	int port;

	if (!ns || !nm || !address ||
	    dm_cluster_address_parse(host, sizeof(host), &port, address) ||
	    snprintf(full, sizeof(full), "%s/%s", ns, nm) >= (int)sizeof(full) ||
	    dm_dot_name_parse(&name, full, &err))
		return;
	if (dm_forward_pull_begin(r->env, host, port, node_id, &name, branch, xid, &err) ||
	    wait_transfer(r, xid, &err)) {
		dm_warn("replicate: %s %s of dot %s from node %s: %s", branch ? "pull" : "clone",
			branch ? branch : "", id, node_id, err.msg);
		return;
	}
	dm_info("replicate: %s dot %s%s%s from node %s", branch ? "pulled" : "cloned", full,
		branch ? " branch " : "", branch ? branch : "", node_id);
}

/* Whether this node holds commit id of dot dot_id. */
static bool has_commit(struct dm_replicator *r, const char *dot_id, const char *id)
{
	dm_oid oid;

	return dm_store_commit_get(r->env->store, dot_id, id, &oid, NULL) == 0;
}

/* A copy whose master reset the branch follows it: the copy's branch is
 * reset to the master's head, and takes the master's reset count. */
static void reset_copy(struct dm_replicator *r, struct dm_dot_handle *h, const char *id,
		       const char *branch, const char *head, uint64_t resets)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_RESET);
	json_t *res = NULL;
	struct dm_err err;

	req->branch = dm_xstrdup(branch);
	req->from = dm_xstrdup(head);
	req->resets = resets;
	if (dm_dot_call(&res, h, req, TRANSFER_WAIT_MS, &err))
		dm_warn("replicate: cannot reset branch %s of this node's copy of dot %s to %s: %s",
			branch, id, head, err.msg);
	else
		dm_info("replicate: reset branch %s of dot %s to %s, as its master did", branch, id,
			head);
	json_decref(res);
}

static bool has_branch(struct dm_dot_handle *h, const char *branch)
{
	struct dm_dot_view *v = dm_dot_handle_view(h);
	bool has = dm_dot_view_branch(v, branch) != NULL;

	dm_dot_view_unref(v);
	return has;
}

/* A branch made on a dot with no commit yet: made here too, empty. */
static void make_empty_branch(struct dm_replicator *r, struct dm_dot_handle *h, const char *id,
			      const char *branch)
{
	struct dm_dot_req *req = dm_dot_req_new(DM_DOT_OP_BRANCH);
	json_t *res = NULL;
	struct dm_err err;

	req->branch = dm_xstrdup(branch);
	req->copy = true;
	if (dm_dot_call(&res, h, req, TRANSFER_WAIT_MS, &err) && err.code != DM_EEXISTS)
		dm_warn("replicate: cannot make empty branch %s of dot %s: %s", branch, id,
			err.msg);
	json_decref(res);
}

/* This node's copy of a dot that has no commit yet: made, not fetched. */
static void make_empty_copy(struct dm_replicator *r, const char *id, json_t *record)
{
	const char *ns = json_string_value(json_object_get(record, "namespace"));
	const char *nm = json_string_value(json_object_get(record, "name"));
	const char *state = json_string_value(json_object_get(record, "state"));
	char full[2 * DM_NAME_PART_MAX + 2];
	struct dm_dot_name name;
	json_t *res = NULL;
	struct dm_err err;

	if (!ns || !nm || !state || strcmp(state, "ready") ||
	    snprintf(full, sizeof(full), "%s/%s", ns, nm) >= (int)sizeof(full) ||
	    dm_dot_name_parse(&name, full, &err))
		return;
	if (dm_registry_create(r->env->registry, &res, &name, id, DM_DOT_CALL_DEADLINE_MS, &err))
		dm_warn("replicate: cannot make this node's copy of dot %s: %s", full, err.msg);
	else
		dm_info("replicate: made this node's (empty) copy of dot %s", full);
	json_decref(res);
}

/* Deletes this node's copy of a dot deleted elsewhere. */
static void delete_copy(struct dm_replicator *r, struct dm_dot_handle *h, const char *id)
{
	json_t *res = NULL;
	struct dm_err err;

	if (dm_dot_call(&res, h, dm_dot_req_new(DM_DOT_OP_DELETE), DELETE_WAIT_MS, &err) &&
	    err.code != DM_ENOTFOUND)
		dm_warn("replicate: cannot delete this node's copy of dot %s: %s", id, err.msg);
	else
		dm_info("replicate: deleted this node's copy of dot %s", id);
	json_decref(res);
}

/* The handle of this node's copy of id (a new reference), or NULL. */
static struct dm_dot_handle *local_copy(struct dm_replicator *r, const char *id)
{
	return dm_registry_handle_of(r->env->registry, id);
}

/* Branch `branch` of node's copy of dot id, as st holds it: {"head","resets"}. */
static json_t *branch_record(json_t *st, const char *node, const char *id, const char *branch)
{
	json_t *copy = json_object_get(json_object_get(json_object_get(st, "copies"), node), id);

	return json_object_get(json_object_get(copy, "branches"), branch);
}

/*
 * Brings this node's copy of one branch to its master's. Forward is a pull
 * (stashing this copy's own commits, should it have diverged); back is a
 * reset, and only when the master's reset count says the master went back
 * (otherwise this copy being ahead means the master will catch up: a
 * handoff under way, or an old master back after set-master, whose commits
 * a later pull keeps on a DIVERGED branch). Nothing is dropped silently.
 */
static void follow_branch(struct dm_replicator *r, json_t *st, const char *id, const char *branch,
			  const char *master)
{
	const char *self = r->env->node_id, *m = master ? master : "";
	json_t *node = json_object_get(json_object_get(st, "nodes"), m);
	json_t *copy = json_object_get(json_object_get(json_object_get(st, "copies"), m), id);
	json_t *theirs = branch_record(st, m, id, branch);
	const char *head = json_string_value(json_object_get(theirs, "head"));
	uint64_t their_resets = (uint64_t)json_integer_value(json_object_get(theirs, "resets"));
	uint64_t my_resets = (uint64_t)json_integer_value(
		json_object_get(branch_record(st, self, id, branch), "resets"));
	struct dm_dot_handle *h;
	char mine[DM_COMMIT_ID_LEN_MAX + 1];

	if (!master || !strcmp(master, self) || !node ||
	    !json_is_true(json_object_get(node, "alive")) || !head)
		return;
	h = local_copy(r, id);
	if (!h && !head[0]) {
		/* nothing to fetch: an empty copy, with the dot's id */
		make_empty_copy(r, id, json_object_get(copy, "dot"));
		return;
	}
	if (!h) {
		fetch(r, node, master, id, json_object_get(copy, "dot"), NULL);
		return;
	}
	dm_dot_handle_head(mine, sizeof(mine), h, branch);
	if (!head[0] && !has_branch(h, branch))
		make_empty_branch(r, h, id, branch);
	else if (their_resets > my_resets && has_commit(r, id, head))
		reset_copy(r, h, id, branch, head, their_resets); /* the master went back */
	else if (strcmp(mine, head) != 0)
		fetch(r, node, master, id, json_object_get(copy, "dot"), branch);
	dm_dot_handle_unref(h);
}

/*
 * A tombstone is removed once no node has a copy of its dot any more (no
 * node's records of one, a node that is down included, and none in this
 * node's registry, where a copy being deleted still is) and
 * $DM_TOMBSTONE_GRACE seconds (default an hour) after the delete, so that a
 * delete retried by id meanwhile still succeeds. Every node may remove it;
 * removing it twice is harmless.
 */
#define TOMBSTONE_GRACE_S_DEFAULT 3600

static int64_t tombstone_grace_s(void)
{
	const char *env = getenv("DM_TOMBSTONE_GRACE");
	char *end = NULL;
	long long v;

	if (!env || !env[0])
		return TOMBSTONE_GRACE_S_DEFAULT;
	v = strtoll(env, &end, 10);
	return end && !*end && v >= 0 ? v : TOMBSTONE_GRACE_S_DEFAULT;
}

static void drop_tombstones(struct dm_replicator *r, json_t *st)
{
	json_t *copies = json_object_get(st, "copies"), *rec, *mine;
	const char *id, *node;
	int64_t grace = tombstone_grace_s();
	time_t now = time(NULL);

	json_object_foreach(json_object_get(st, "deleted"), id, rec)
	{
		const char *when = json_string_value(json_object_get(rec, "deleted"));
		struct dm_dot_handle *h;
		struct tm tm;
		char key[256];
		bool held = false;
		struct dm_err err;

		memset(&tm, 0, sizeof(tm));
		if (!when || !strptime(when, "%Y-%m-%dT%H:%M:%SZ", &tm) ||
		    now - timegm(&tm) < grace)
			continue;
		json_object_foreach(copies, node, mine)
		{
			held = held || json_object_get(mine, id) != NULL;
		}
		h = local_copy(r, id);
		held = held || h != NULL;
		dm_dot_handle_unref(h);
		if (held)
			continue;
		snprintf(key, sizeof(key), DM_KV_DELETED "%s", id);
		if (dm_kv_delete(r->env->kv, NULL, key, &err) && err.code != DM_ENOTFOUND)
			dm_warn("replicate: cannot remove the tombstone of dot %s: %s", id,
				err.msg);
		else
			dm_info("replicate: every node dropped its copy of deleted dot %s: its "
				"tombstone is removed",
				id);
	}
}

static void reconcile(struct dm_replicator *r)
{
	const char *id, *branch;
	json_t *st = json_object(), *deleted, *masters, *m, *v;
	struct dm_err err;

	if (read_state(st, r->env->kv, &err)) {
		dm_warn("replicate: cannot read the cluster's state: %s", err.msg);
		json_decref(st);
		return;
	}
	deleted = json_object_get(st, "deleted");
	masters = json_object_get(st, "masters");
	json_object_foreach(deleted, id, v)
	{
		struct dm_dot_handle *h = local_copy(r, id);

		if (h)
			delete_copy(r, h, id);
		dm_dot_handle_unref(h);
	}
	drop_tombstones(r, st);
	json_object_foreach(masters, id, m)
	{
		if (json_object_get(deleted, id))
			continue;
		json_object_foreach(m, branch, v)
		{
			if (stopping(r))
				break;
			follow_branch(r, st, id, branch, json_string_value(v));
		}
	}
	json_decref(st);
}

/* ---- the thread ---- */

static int watch_from_now(struct dm_replicator *r, struct dm_kv_watch **w, struct dm_err *err)
{
	int64_t rev;
	int rc = dm_kv_revision(r->env->kv, &rev, err);

	return rc ? rc : dm_kv_watch(r->env->kv, w, "/dm/", rev, on_event, r, err);
}

static void *replicator_main(void *arg)
{
	struct dm_replicator *r = arg;
	struct dm_kv_watch *w = NULL;
	struct dm_err err;

	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		struct timespec ts;
		int rc;

		if (r->rewatch || !w) {
			/* read after watching: the pass below sees everything
			 * before the watch's start */
			pthread_mutex_unlock(&r->mu);
			dm_kv_watch_cancel(w);
			w = NULL;
			rc = watch_from_now(r, &w, &err);
			if (rc)
				dm_warn("replicate: cannot watch the cluster: %s", err.msg);
			pthread_mutex_lock(&r->mu);
			/* a failed watch is tried again after the wait, not at once */
			r->rewatch = false;
			r->dirty = rc == 0;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += DM_REPLICATE_PERIOD_S;
		while (!r->stop && !r->dirty && pthread_cond_timedwait(&r->cond, &r->mu, &ts) == 0)
			;
		if (r->stop)
			break;
		r->dirty = false;
		pthread_mutex_unlock(&r->mu);
		reconcile(r);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	dm_kv_watch_cancel(w);
	return NULL;
}

int dm_replicator_start(struct dm_replicator **out, const struct dm_cluster_env *env,
			struct dm_err *err)
{
	struct dm_replicator *r = dm_xcalloc(1, sizeof(*r));
	pthread_condattr_t ca;

	*out = NULL;
	r->env = env;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&r->thread, NULL, replicator_main, r) != 0) {
		dm_replicator_free(r);
		return dm_err_set(err, DM_ENOMEM, "cannot start the replicator");
	}
	r->started = true;
	*out = r;
	return 0;
}

void dm_replicator_free(struct dm_replicator *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
	if (r->started)
		pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
