/*
 * replicas.h - where a dot's branches stand on each node of a cluster, for
 * `dm dot show`: each node's head of each branch, against its master's.
 */
#ifndef DM_SERVER_CLUSTER_REPLICAS_H
#define DM_SERVER_CLUSTER_REPLICAS_H

#include <jansson.h>

#include "util/err.h"

struct dm_cluster_env;

/*
 * [{"node","alive","self","branches":[{"name","head","master":bool,
 *   "state":"master"|"up to date"|"behind"|"missing","behind":N}]}] for dot
 * dot_id, read from the KV; "behind" counts the commits the node lacks when
 * this node's copy knows them. NULL on one node. A new reference in *out.
 */
int dm_replicas_json(json_t **out, const struct dm_cluster_env *env, const char *dot_id,
		     struct dm_err *err);

#endif
