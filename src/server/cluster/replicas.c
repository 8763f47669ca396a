/*
 * replicas.c - each node's copy of a dot against its branches' masters
 * (see replicas.h). Reads only: the KV's records and this node's commit
 * chains, which are immutable.
 */
#include "server/cluster/replicas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv.h"
#include "server/cluster/cluster.h"
#include "server/dots/dot.h"

#include "util/banned.h"

#define CHAIN_LOOK_MAX 100000

/* {BRANCH: HEAD} of node's copy of dot_id (a new reference). */
static int node_heads(json_t **out, struct dm_kv *kv, const char *node, const char *dot_id,
		      struct dm_err *err)
{
	char prefix[256];
	struct dm_kv_kvs l;
	size_t plen;
	int rc;

	*out = json_object();
	plen = (size_t)snprintf(prefix, sizeof(prefix), DM_KV_NODE_ROOT "%s/dots/%s/branches/",
				node, dot_id);
	dm_kv_kvs_init(&l);
	rc = dm_kv_range(kv, &l, prefix, 0, err);
	for (size_t i = 0; !rc && i < l.len; i++) {
		json_t *v = json_loadb(l.items[i].value, l.items[i].value_len, 0, NULL);
		json_t *head = json_object_get(v, "head");

		if (json_is_string(head))
			json_object_set(*out, l.items[i].key + plen, head);
		json_decref(v);
	}
	dm_kv_kvs_release(&l);
	return rc;
}

/* How many commits head lacks of master_head's line, or -1 when unknown. */
static long commits_behind(const struct dm_cluster_env *env, const char *dot_id,
			   const char *master_head, const char *head)
{
	char **ids = NULL;
	size_t n = 0;
	long behind = -1;
	struct dm_err err;

	if (dm_dot_chain(&ids, &n, env->store, dot_id, master_head, CHAIN_LOOK_MAX, &err))
		return -1;
	for (size_t i = 0; i < n && behind < 0; i++)
		if (!strcmp(ids[i], head))
			behind = (long)i;
	if (behind < 0 && !head[0])
		behind = (long)n;
	dm_dot_chain_free(ids, n);
	return behind;
}

int dm_replicas_json(json_t **out, const struct dm_cluster_env *env, const char *dot_id,
		     struct dm_err *err)
{
	char prefix[256];
	struct dm_cluster_node *nodes = NULL;
	struct dm_kv_kvs masters;
	json_t *list, *heads;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (!env->kv_root[0])
		return 0;
	heads = json_object(); /* not before: one node has no replicas (it leaked) */
	snprintf(prefix, sizeof(prefix), DM_KV_MASTERS "%s/", dot_id);
	dm_kv_kvs_init(&masters);
	rc = dm_kv_range(env->kv, &masters, prefix, 0, err);
	if (!rc)
		rc = dm_cluster_nodes(env->kv, &nodes, &n, err);
	for (size_t i = 0; !rc && i < n; i++) {
		json_t *h = NULL;

		rc = node_heads(&h, env->kv, nodes[i].id, dot_id, err);
		json_object_set_new(heads, nodes[i].id, h);
	}
	list = json_array();
	for (size_t i = 0; !rc && i < n; i++) {
		json_t *mine = json_object_get(heads, nodes[i].id), *branches = json_array();

		for (size_t j = 0; j < masters.len; j++) {
			const char *branch = masters.items[j].key + strlen(prefix);
			const char *master = masters.items[j].value;
			const char *head = json_string_value(json_object_get(mine, branch));
			const char *mhead = json_string_value(
				json_object_get(json_object_get(heads, master), branch));
			bool is_master = !strcmp(master, nodes[i].id);
			const char *state = is_master                       ? "master"
					    : !head                         ? "missing"
					    : mhead && !strcmp(head, mhead) ? "up to date"
									    : "behind";
			json_t *b =
				json_pack("{s:s, s:s, s:b, s:s}", "name", branch, "head",
					  head ? head : "", "master", is_master, "state", state);

			if (!strcmp(state, "behind") && mhead) {
				long k = commits_behind(env, dot_id, mhead, head);

				if (k >= 0)
					json_object_set_new(b, "behind", json_integer(k));
			}
			json_array_append_new(branches, b);
		}
		json_array_append_new(list, json_pack("{s:s, s:b, s:b, s:o}", "node", nodes[i].id,
						      "alive", nodes[i].alive, "self",
						      !strcmp(nodes[i].id, env->node_id),
						      "branches", branches));
	}
	free(nodes);
	dm_kv_kvs_release(&masters);
	json_decref(heads);
	if (rc) {
		json_decref(list);
		return rc;
	}
	*out = list;
	return 0;
}
