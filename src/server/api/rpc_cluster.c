/*
 * rpc_cluster.c - the cluster.* methods: the nodes of this dmd's cluster,
 * the token that adds a node to it, who masters a branch, and the old
 * master's half of a handoff (which asks the dot to commit, as any client
 * would: no dot state is touched here).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv.h"
#include "server/api/api.h"
#include "server/api/rpc.h"
#include "server/cluster/backup.h"
#include "server/cluster/cluster.h"
#include "server/cluster/etcd_access.h"
#include "server/cluster/forward.h"
#include "server/cluster/nodecred.h"
#include "server/cluster/rotation.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/names.h"

#include "util/banned.h"

static int cluster_status(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			  struct dm_err *err)
{
	const struct dm_api_env *env = ctx->env;
	struct dm_cluster_node *nodes;
	json_t *list;
	size_t n;
	int rc = dm_cluster_nodes(env->kv, &nodes, &n, err);

	if (rc)
		return rc;
	list = json_array();
	for (size_t i = 0; list && i < n; i++)
		json_array_append_new(list,
				      json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b}", "id",
						nodes[i].id, "address", nodes[i].address, "version",
						nodes[i].version, "engine", nodes[i].engine,
						"joined", nodes[i].joined, "alive", nodes[i].alive,
						"self", !strcmp(nodes[i].id, env->node_id)));
	free(nodes);
	*result = json_pack("{s:s, s:s, s:s, s:o}", "cluster", env->cluster_id, "kv", env->kv_name,
			    "node", env->node_id, "nodes", list);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

/* What a joining node needs to reach etcd as this one does: its CA, user
 * and password (a client certificate stays each node's own). */
static int etcd_part(struct dm_cluster_token *t, const struct dm_etcd_access *a, struct dm_err *err)
{
	const char *ca = a && a->ca_pem.len ? (const char *)a->ca_pem.data : "";

	if (strlen(ca) >= sizeof(t->etcd_ca))
		return dm_err_set(err, DM_ETOOBIG, "etcd's CA is too big for a token");
	snprintf(t->etcd_ca, sizeof(t->etcd_ca), "%s", ca);
	if (a && a->user[0]) {
		snprintf(t->etcd_user, sizeof(t->etcd_user), "%s", a->user);
		snprintf(t->etcd_password, sizeof(t->etcd_password), "%s", a->password);
	}
	return 0;
}

static int cluster_join_token(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			      struct dm_err *err)
{
	const struct dm_api_env *env = ctx->env;
	struct dm_cluster_token t;
	char *token = NULL;
	json_t *v = json_object_get(params, "ttl");
	int64_t ttl = DM_JOIN_SECRET_TTL;
	int rc;

	if (v && (!json_is_integer(v) || json_integer_value(v) < 0 ||
		  json_integer_value(v) > DM_JOIN_SECRET_TTL_MAX))
		return dm_err_set(err, DM_EINVAL,
				  "invalid parameter 'ttl': seconds from 0 (never expires) to %lld",
				  (long long)DM_JOIN_SECRET_TTL_MAX);
	if (v)
		ttl = (int64_t)json_integer_value(v);
	if (strcmp(env->kv_name, "etcd") != 0)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "this node keeps its state in the embedded KV; only a cluster on "
				  "etcd takes more nodes (dm cluster init --kv etcd)");
	if (!env->ca)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "this cluster speaks plain HTTP (--insecure-http); nodes call "
				  "each other with certificates of the cluster's CA: make the "
				  "cluster without --insecure-http to add nodes to it");
	/* the joining node asks this one to sign its certificate */
	if (!env->ca_key)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "this node does not hold the cluster CA's key, which signs a "
				  "joining node's certificate: print the token on the node that made "
				  "the cluster");
	memset(&t, 0, sizeof(t));
	snprintf(t.cluster_id, sizeof(t.cluster_id), "%s", env->cluster_id);
	snprintf(t.endpoints, sizeof(t.endpoints), "%s", env->etcd_endpoints);
	snprintf(t.signer, sizeof(t.signer), "%s", env->advertise);
	if (strlen(env->ca) >= sizeof(t.ca))
		return dm_err_set(err, DM_ETOOBIG, "the cluster's CA is too big for a token");
	snprintf(t.ca, sizeof(t.ca), "%s", env->ca);
	rc = dm_nodecred_secret_new(env->kv, t.secret, ttl, err);
	if (!rc)
		rc = etcd_part(&t, env->etcd_access, err);
	if (!rc)
		rc = dm_cluster_token_encode(&token, &t, err);
	explicit_bzero(&t, sizeof(t));
	if (rc)
		return rc;
	*result = json_pack("{s:s}", "token", token);
	explicit_bzero(token, strlen(token));
	free(token);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

/* The node a full id or a unique prefix of one (at least 4 characters)
 * names, into out. */
static int find_node(struct dm_kv *kv, struct dm_cluster_node *out, const char *given,
		     struct dm_err *err)
{
	struct dm_cluster_node *nodes;
	size_t n, hits = 0, len = strlen(given);
	int rc = dm_cluster_nodes(kv, &nodes, &n, err);

	if (rc)
		return rc;
	for (size_t i = 0; len >= 4 && i < n; i++)
		if (!strncmp(nodes[i].id, given, len)) {
			*out = nodes[i];
			hits++;
		}
	free(nodes);
	if (hits == 1)
		return 0;
	if (hits > 1)
		return dm_err_set(err, DM_EINVAL, "'%s' names several nodes; give more of the id",
				  given);
	return dm_err_set(err, DM_ENOTFOUND,
			  "no node '%.64s' in this cluster (see 'dm cluster status')", given);
}

/*
 * Makes node the master of a dot's branch, whatever it was: for a master
 * that is down. The new master's copy is what the branch holds from then
 * on: commits its old master made and had not replicated are not there.
 */
static int cluster_set_master(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			      struct dm_err *err)
{
	const struct dm_api_env *env = ctx->env;
	const char *dot, *branch, *node;
	struct dm_dot_name name;
	struct dm_cluster_node target;
	char id[DM_UUID_LEN + 1], key[256], old[DM_UUID_LEN + 1], shown[DM_DOT_NAME_TEXT_MAX];
	struct dm_kv_kv rec;
	int rc = dm_rpc_param_str(&dot, params, "dot", true, err);

	if (!rc)
		rc = dm_rpc_param_str(&branch, params, "branch", true, err);
	if (!rc)
		rc = dm_rpc_param_str(&node, params, "node", true, err);
	if (!rc)
		rc = dm_dot_name_parse(&name, dot, err);
	if (!rc)
		rc = dm_branch_name_check(branch, err);
	if (rc)
		return rc;
	if (!env->kv_root[0])
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "this node is not in a cluster on etcd: its branches have no "
				  "other node to move to");
	dm_dot_name_text(shown, &name);
	rc = dm_cluster_name_id(env->kv, id, sizeof(id), name.ns, name.name, err);
	if (rc == DM_ENOTFOUND)
		return dm_err_set(err, DM_ENOTFOUND, "no such dot '%s'", shown);
	if (!rc) {
		/* the branch first: "no branch" before anything about the node */
		snprintf(key, sizeof(key), DM_KV_MASTERS "%s/%s", id, branch);
		dm_kv_kv_init(&rec);
		rc = dm_kv_get(env->kv, &rec, key, err);
		dm_kv_kv_release(&rec);
		if (rc == DM_ENOTFOUND)
			rc = dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no branch '%s'", shown,
					branch);
	}
	if (!rc)
		rc = find_node(env->kv, &target, node, err);
	if (!rc && !target.alive)
		rc = dm_err_set(err, DM_EUNAVAILABLE,
				"node %s is down; make a live node the master", target.id);
	if (!rc) {
		/* the new master must hold the branch: it goes on from its copy */
		dm_kv_kv_init(&rec);
		snprintf(key, sizeof(key), DM_KV_NODE_ROOT "%s/dots/%s/branches/%s", target.id, id,
			 branch);
		rc = dm_kv_get(env->kv, &rec, key, err);
		dm_kv_kv_release(&rec);
		if (rc == DM_ENOTFOUND)
			rc = dm_err_set(
				err, DM_ENOTFOUND,
				"node %s has no copy of branch '%s' of '%s' yet; choose a node "
				"whose copy has it (dm dot show %s)",
				target.id, branch, shown, shown);
	}
	if (rc)
		return rc;
	snprintf(key, sizeof(key), DM_KV_MASTERS "%s/%s", id, branch);
	dm_kv_kv_init(&rec);
	rc = dm_kv_get(env->kv, &rec, key, err);
	if (rc == DM_ENOTFOUND)
		rc = dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no branch '%s'", shown, branch);
	if (!rc) {
		snprintf(old, sizeof(old), "%.*s", (int)rec.value_len, rec.value);
		rc = dm_kv_cas(env->kv, NULL, key, rec.mod_revision, target.id, strlen(target.id),
			       0, err);
		if (rc == DM_ECONFLICT)
			rc = dm_err_set(
				err, DM_ECONFLICT,
				"the master of '%s' branch '%s' moved meanwhile; look again", shown,
				branch);
	}
	dm_kv_kv_release(&rec);
	if (rc)
		return rc;
	*result = json_pack("{s:s, s:s, s:s, s:s}", "dot", shown, "branch", branch, "master",
			    target.id, "was", old);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

/* Whether a container of this node uses branch of the dot (v's current
 * one when it follows the current branch): its name into who. */
static bool branch_in_use(const struct dm_dot_view *v, const char *branch, char *who, size_t size)
{
	for (size_t i = 0; i < v->nmounts; i++) {
		const char *b = v->mounts[i].branch[0] ? v->mounts[i].branch : v->current;

		if (!strcmp(b, branch)) {
			snprintf(who, size, "%s", v->mounts[i].container);
			return true;
		}
	}
	return false;
}

/* A handoff of (id, branch) to node `to`: this node must master it, and
 * `to` must be another live node of the cluster. */
static int check_handoff(const struct dm_api_env *env, const char *id, const char *branch,
			 const char *dot, const char *to, struct dm_err *err)
{
	char master[DM_UUID_LEN + 1];
	struct dm_cluster_node node;
	int rc = dm_forward_master(env->cluster, master, id, branch, err);

	if (!rc && strcmp(master, env->node_id) != 0)
		rc = dm_err_set(err, DM_ECONFLICT,
				"node %s does not master branch '%s' of '%s' (any longer)",
				env->node_id, branch, dot);
	if (!rc)
		rc = dm_cluster_node(env->kv, &node, to, err);
	if (!rc && (!node.alive || !strcmp(to, env->node_id)))
		rc = dm_err_set(err, DM_EINVAL, "node %s cannot take the branch over (%s)", to,
				node.alive ? "it masters it already" : "it is down");
	return rc;
}

/*
 * The master's half of a handoff (dm_forward_take_master on the node that
 * takes over): commits what is uncommitted on the branch, then gives it to
 * node `to` by compare-and-swap; answers the branch's head, which `to`
 * pulls. Refused while a container here uses the branch.
 */
static int cluster_handoff(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			   struct dm_err *err)
{
	const struct dm_api_env *env = ctx->env;
	const char *dot, *branch, *to;
	struct dm_dot_name name;
	struct dm_registry_snap *snap;
	const struct dm_registry_entry *e;
	struct dm_dot_handle *h = NULL;
	struct dm_dot_view *v = NULL;
	const struct dm_branch_view *bv;
	struct dm_dot_req *req;
	struct dm_kv_kv rec;
	char key[256], who[256], head[DM_COMMIT_ID_LEN_MAX + 1], msg[128];
	json_t *res = NULL;
	int rc = dm_rpc_param_str(&dot, params, "dot", true, err);

	if (!rc)
		rc = dm_rpc_param_str(&branch, params, "branch", true, err);
	if (!rc)
		rc = dm_rpc_param_str(&to, params, "to", true, err);
	if (!rc)
		rc = dm_dot_name_parse(&name, dot, err);
	if (rc)
		return rc;
	snap = dm_registry_snapshot(env->registry);
	e = dm_registry_find(snap, &name);
	if (e) {
		h = e->dot;
		dm_dot_handle_ref(h);
	}
	dm_registry_snap_unref(snap);
	if (!h)
		return dm_err_set(err, DM_ENOTFOUND, "no such dot '%s' on node %s", dot,
				  env->node_id);
	v = dm_dot_handle_view(h);
	snprintf(key, sizeof(key), DM_KV_MASTERS "%s/%s", v->id, branch);
	rc = check_handoff(env, v->id, branch, dot, to, err);
	if (!rc && branch_in_use(v, branch, who, sizeof(who)))
		rc = dm_err_set(err, DM_EBUSY,
				"branch '%s' of '%s' is in use by container %s on node %s; stop it "
				"there first",
				branch, dot, who, env->node_id);
	dm_dot_view_unref(v);
	v = NULL;
	if (!rc) {
		req = dm_dot_req_new(DM_DOT_OP_REFRESH);
		req->branch = dm_xstrdup(branch);
		rc = dm_dot_call(&res, h, req, dm_rpc_deadline_ms(), err);
		json_decref(res);
		res = NULL;
	}
	if (!rc) {
		v = dm_dot_handle_view(h);
		bv = dm_dot_view_branch(v, branch);
		if (!bv)
			rc = dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no branch '%s'", dot,
					branch);
		else if (bv->dirty) {
			snprintf(msg, sizeof(msg), "handoff to node %s", to);
			req = dm_dot_req_new(DM_DOT_OP_COMMIT);
			req->branch = dm_xstrdup(branch);
			req->message = dm_xstrdup(msg);
			req->author = dm_xstrdup(DM_CLUSTER_ADMIN_USER);
			rc = dm_dot_call(&res, h, req, dm_rpc_deadline_ms(), err);
			json_decref(res);
		}
		dm_dot_view_unref(v);
	}
	if (!rc) {
		v = dm_dot_handle_view(h);
		bv = dm_dot_view_branch(v, branch);
		snprintf(head, sizeof(head), "%s", bv ? bv->head : "");
		dm_dot_view_unref(v);
		dm_kv_kv_init(&rec);
		rc = dm_kv_get(env->kv, &rec, key, err);
		if (!rc && (rec.value_len != strlen(env->node_id) ||
			    memcmp(rec.value, env->node_id, rec.value_len)))
			rc = dm_err_set(err, DM_ECONFLICT,
					"node %s does not master branch '%s' of '%s' (any longer)",
					env->node_id, branch, dot);
		if (!rc)
			rc = dm_kv_cas(env->kv, NULL, key, rec.mod_revision, to, strlen(to), 0,
				       err);
		dm_kv_kv_release(&rec);
	}
	dm_dot_handle_unref(h);
	if (rc)
		return rc;
	dm_info("handoff: node %s masters branch '%s' of '%s' now", to, branch, dot);
	*result = json_pack("{s:s}", "head", head);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

/*
 * cluster.remove {"node"}: the node leaves the cluster for good: its
 * record goes, and every node refuses its certificate from then on
 * (cluster/nodecred.h). Not this node, and not a node that is up: stop it
 * first, so that nothing it masters is lost unseen.
 */
static int cluster_remove(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			  struct dm_err *err)
{
	const struct dm_api_env *env = ctx->env;
	struct dm_cluster_node target;
	const char *node;
	int rc = dm_rpc_param_str(&node, params, "node", true, err);

	if (!rc && !env->kv_root[0])
		rc = dm_err_set(err, DM_EUNSUPPORTED,
				"this node is not in a cluster on etcd: it has no other node");
	if (!rc)
		rc = find_node(env->kv, &target, node, err);
	if (!rc && !strcmp(target.id, env->node_id))
		rc = dm_err_set(err, DM_EINVAL,
				"node %s is the node you are calling; remove it from another node",
				target.id);
	if (!rc && target.alive)
		rc = dm_err_set(err, DM_EBUSY,
				"node %s is up; stop it first (dm cluster stop on it), and move "
				"the branches it masters (dm dot set-master)",
				target.id);
	if (!rc)
		rc = dm_nodecred_remove(env->kv, target.id, err);
	if (rc)
		return rc;
	dm_info("removed node %s from the cluster: its certificate is refused from now on",
		target.id);
	*result = json_pack("{s:s}", "node", target.id);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

/* cluster.rotate_certs: the next step of the CA's rotation
 * (cluster/rotation.h), on the node that holds the CA's key. */
static int cluster_rotate_certs(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
				struct dm_err *err)
{
	const struct dm_api_env *env = ctx->env;

	(void)params;
	if (!env->kv_root[0] || !env->ca)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "only a cluster on etcd and HTTPS rotates its CA this way; a "
				  "node alone renews its certificate with 'dmd renew-cert'");
	if (!env->ca_key)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "this node does not hold the cluster CA's key: run this on the "
				  "node that made the cluster");
	return dm_rotation_step(result, env->cluster, env->advertise, env->ca_key_path, err);
}

/* cluster.backup: the cluster's state as one document (cluster/backup.h) */
static int cluster_backup(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			  struct dm_err *err)
{
	(void)params;
	return dm_cluster_backup(result, ctx->env->kv, ctx->env->kv_name, ctx->env->cluster_id,
				 err);
}

const struct dm_rpc_method dm_rpc_cluster_methods[] = {
	{"cluster.status", cluster_status, false, 0},
	{"cluster.join_token", cluster_join_token, true, 0},
	{"cluster.set_master", cluster_set_master, true, 0},
	{"cluster.handoff", cluster_handoff, true, 3600 * 1000},
	{"cluster.backup", cluster_backup, true, 0},
	{"cluster.remove", cluster_remove, true, 0},
	{"cluster.rotate_certs", cluster_rotate_certs, true, 0},
	{NULL, NULL, false, 0},
};
