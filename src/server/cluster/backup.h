/*
 * backup.h - the cluster's state (users, dots' names and records,
 * branches, masters, volume aliases) as one JSON document, and back
 * (backup.c; `dm cluster backup FILE`, `dm cluster restore FILE`).
 *
 * The document says what the state means, not which keys held it, so a
 * backup of a cluster on the embedded KV restores into one on etcd and
 * back:
 *
 *   {"format": "dm-cluster-backup", "version": 1, "created": TIME,
 *    "from": {"cluster": ID, "kv": "lmdb"|"etcd", "revision": N},
 *    "users":   [{"name": NAME, "record": USER_RECORD}],
 *    "volumes": [{"name": ALIAS, "record": {"volume": ...}}],
 *    "deleted": [{"id": ID, "record": TOMBSTONE}],
 *    "dots":    [{"id", "namespace", "name", "record": DOT_RECORD,
 *                 "branches": {NAME: BRANCH_RECORD}, "pending": {ID: REC},
 *                 "masters": {BRANCH: NODE}}]}
 *
 * Records are the KV's own (docs/internals/kv.md, dots.md), as JSON. It
 * holds the users' key hashes: keep it as secret as the data directory.
 */
#ifndef DM_SERVER_CLUSTER_BACKUP_H
#define DM_SERVER_CLUSTER_BACKUP_H

#include <jansson.h>

#include "util/err.h"

struct dm_kv;
struct dm_store;

#define DM_BACKUP_FORMAT  "dm-cluster-backup"
#define DM_BACKUP_VERSION 1

/*
 * The state of the cluster whose KV is kv ("lmdb" or "etcd", cluster
 * cluster_id), read in one range at one revision, so the document is one
 * moment of it. In a cluster on etcd, where each node keeps its own copy
 * of each dot, a branch's record is its master's copy's.
 */
int dm_cluster_backup(json_t **out, struct dm_kv *kv, const char *kv_name, const char *cluster_id,
		      struct dm_err *err);

/* What a restore is told, and what it did. */
struct dm_restore {
	struct dm_kv *kv;
	struct dm_store *store; /* this node's: a dot is restored only when its heads are here */
	const char *kv_name;    /* "lmdb" or "etcd" */
	const char *cluster_id; /* this node's cluster (its config's) */
	const char *node_id;    /* this node */
	/* out: counts (merged: dots the node had, whose records got back their
	 * owner, collaborators, hooks and fork), and the dots left out with
	 * why ([{"dot","why"}]) */
	size_t users, users_kept, dots, merged, volumes;
	json_t *skipped;
};

/*
 * Writes backup into r->kv, whose dmds must all be stopped (on etcd: no
 * node alive; DM_EBUSY otherwise): a new cluster, one whose KV lost its
 * state, or one the dots were pushed to first. Users that exist already
 * (the new cluster's admin) are kept. A dot the node has (by id: pushed
 * here) gets back what its record held (owner, collaborators, hooks,
 * fork); one it lacks is restored whole when this node's store has every
 * branch head it names, else left out (r->skipped), as is one whose name
 * another dot has here. The cluster's record is made again when missing.
 * Restored dots become this node's: on etcd it masters each of their
 * branches, and the other nodes copy them from it.
 */
int dm_cluster_restore(struct dm_restore *r, json_t *backup, struct dm_err *err);

#endif
