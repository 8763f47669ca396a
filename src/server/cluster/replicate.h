/*
 * replicate.h - keeps this node's copies of a cluster's dots in step with
 * the cluster (docs/internals/cluster.md, "How a commit reaches every node").
 *
 * The replicator is level-triggered: whatever woke it (a change under
 * /dm/ seen by its watch, a broken or compacted watch, a timer every few
 * seconds), it reads the whole of the cluster's state and makes this node
 * agree with it: copies deleted anywhere are deleted here; for every branch
 * another node masters, a missing copy is cloned and a copy that lacks the
 * master's head pulls it. A missed or repeated event therefore changes
 * nothing: the next pass sees the same state and does what is still left.
 *
 * It acts on dots only through the registry and the transfers actor, like
 * any client; it owns no dot state.
 */
#ifndef DM_SERVER_CLUSTER_REPLICATE_H
#define DM_SERVER_CLUSTER_REPLICATE_H

#include "util/err.h"

struct dm_cluster_env;
struct dm_replicator;

/* Seconds between passes when nothing wakes the replicator. */
#define DM_REPLICATE_PERIOD_S 5

/* Starts the replicator of env (a node of a cluster on etcd: its registry
 * and transfers must run). */
int dm_replicator_start(struct dm_replicator **out, const struct dm_cluster_env *env,
			struct dm_err *err);
/* Stops it (waiting for the pass in progress, whose transfer is left to
 * the transfers actor) and frees it; accepts NULL. */
void dm_replicator_free(struct dm_replicator *r);

#endif
