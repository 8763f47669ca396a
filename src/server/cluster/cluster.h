/*
 * cluster.h - the nodes of a dm cluster: the cluster's record in the KV,
 * the join token, each node's record and liveness lease, and the status
 * listing (docs/internals/cluster.md).
 *
 * A single dmd is a cluster of one on the embedded KV; several share etcd.
 * Either way the node writes its record at start and keeps a lease alive
 * that holds /dm/alive/NODE, so every node can tell which others are up.
 */
#ifndef DM_SERVER_CLUSTER_CLUSTER_H
#define DM_SERVER_CLUSTER_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/cluster/etcd_access.h"
#include "util/curl.h"
#include "util/err.h"
#include "util/id.h"

struct dm_kv;
struct dm_cluster;
struct dm_registry;
struct dm_store;
struct dm_transfers;

/*
 * What the cluster's parts (forward.c, replicate.c, replicas.c) may touch:
 * this node's KV, store, dots and transfers, and who it is. Set once by the
 * process before anything is served, then constant.
 */
struct dm_cluster_env {
	struct dm_kv *kv;
	struct dm_store *store;
	struct dm_registry *registry;
	struct dm_transfers *transfers;
	const char *node_id;
	const char *kv_root;   /* "/dm/n/NODE/" on etcd; "" on one node (dots/dot.h) */
	/* the cluster's CA (PEM; during a rotation of the CA, the old one and
	 * the new): every node's certificate chains to it, and a node verifies
	 * every other it calls against it; NULL: plain HTTP (one node on
	 * loopback, which calls no other) */
	const char *ca;
	/* this node's certificate chain and key (PEM), which name it
	 * (util/tls.h): how it calls the other nodes; NULL with ca NULL */
	const char *node_cert, *node_key;
};

/* The user a cluster is made with (datadir.c), and whom a node's calls
 * act as on another node: a node may do what an admin may. */
#define DM_CLUSTER_ADMIN_USER "admin"

/* How this node calls node peer_id (out: its certificate, and the name
 * the peer's must carry); DM_EUNSUPPORTED when this node has none (a
 * cluster on plain HTTP). */
int dm_cluster_node_cred(const struct dm_cluster_env *env, struct dm_curl_node *out,
			 const char *peer_id, struct dm_err *err);

#define DM_KV_CLUSTER "/dm/cluster"
/* users and their key hashes (api/auth.h), and the Docker plugin's volume
 * aliases (api/plugin.h): here, with the cluster's other shared keys, so
 * that a backup (backup.c) knows them too */
#define DM_KV_USERS   "/dm/users/"
#define DM_KV_VOLUMES "/dm/volumes/"
#define DM_KV_NODES   "/dm/nodes/"
#define DM_KV_ALIVE   "/dm/alive/"
/* nodes removed from the cluster (dm cluster remove): their certificates
 * are refused, and they may not register again (nodecred.c) */
#define DM_KV_REMOVED "/dm/removed/"
/* join secrets, by their SHA-256: {"expires"} (nodecred.c) */
#define DM_KV_JOINS "/dm/joins/"
/* Each node's own dots and names: DM_KV_NODE_ROOT NODE/dots/..., .../names/... */
#define DM_KV_NODE_ROOT "/dm/n/"
/* Branch masters and deleted dots: DM_KV_MASTERS, DM_KV_DELETED (dots/dot.h). */

/* Seconds a node stays "up" after its last keepalive, and how often it
 * sends one. */
#define DM_CLUSTER_LEASE_TTL    10
#define DM_CLUSTER_KEEPALIVE_MS 2000

#define DM_CLUSTER_ENDPOINTS_MAX 1024
#define DM_CLUSTER_ADDRESS_MAX   256
#define DM_CLUSTER_TOKEN_MAX     8192
#define DM_CLUSTER_TOKEN_PEM_MAX 2048
#define DM_CLUSTER_TOKEN_PREFIX  "dmj1."

/* What a join token carries. */
struct dm_cluster_token {
	char cluster_id[DM_UUID_LEN + 1];
	char endpoints[DM_CLUSTER_ENDPOINTS_MAX]; /* "http://h:p,http://h:p" */
	/* the node that signs the joining node's certificate (it holds the
	 * cluster CA's key, which never leaves it): its address, and the
	 * secret that lets a node ask it once (DM_KV_JOINS; a day) */
	char signer[DM_CLUSTER_ADDRESS_MAX];
	char secret[DM_API_KEY_LEN + 1];
	/* the cluster's CA (PEM): how the joining node knows the signer */
	char ca[DM_CLUSTER_TOKEN_PEM_MAX];
	/* how the cluster's nodes reach etcd: the CA of its certificates and
	 * its user and password; "" each when unused (client certificates are
	 * each node's own, never in a token) */
	char etcd_ca[DM_CLUSTER_TOKEN_PEM_MAX];
	char etcd_user[DM_ETCD_USER_MAX + 1];
	char etcd_password[DM_ETCD_PASSWORD_MAX + 1];
};

/* token text: "dmj1." + base64url of {"cluster","etcd","signer","secret",
 * "ca"} (and "etcd_ca" for an etcd on TLS, "etcd_user", "etcd_password"
 * for one with authentication); *out is malloc'ed. No API key and no CA
 * key are ever in a token. */
int dm_cluster_token_encode(char **out, const struct dm_cluster_token *t, struct dm_err *err);
/* Parses and checks a token (form, sizes, a UUID, the secret's length);
 * DM_EINVAL says what is wrong with it (a token of an older dm, which
 * carried the admin key, included). */
int dm_cluster_token_decode(struct dm_cluster_token *out, const char *text, struct dm_err *err);

/* Makes kv a new cluster's: writes /dm/cluster if absent, with a fresh id
 * (id_out, DM_UUID_LEN + 1). DM_EEXISTS when the KV holds a cluster
 * already (its id in the message). */
int dm_cluster_create(struct dm_kv *kv, char *id_out, struct dm_err *err);
/* The same with the id given (a restore into a KV that lost its record). */
int dm_cluster_create_as(struct dm_kv *kv, const char *id, struct dm_err *err);
/* Reads the id of kv's cluster into id_out; DM_ENOTFOUND when none. */
int dm_cluster_id(struct dm_kv *kv, char *id_out, struct dm_err *err);

/* This node, as it registers itself. */
struct dm_cluster_self {
	const char *node_id;
	const char *address; /* "http://127.0.0.1:32607" */
	const char *engine;
	const char *version;
};

/*
 * Registers this node (its record, then a lease of DM_CLUSTER_LEASE_TTL s
 * holding /dm/alive/NODE) and starts the thread that keeps the lease alive,
 * granting a new one should it have expired (a KV out of reach for longer
 * than the TTL). dm_cluster_free revokes it: the node is down at once.
 */
int dm_cluster_start(struct dm_cluster **out, struct dm_kv *kv, const struct dm_cluster_self *self,
		     struct dm_err *err);
/* Stops the keepalive thread and revokes the lease; accepts NULL. */
void dm_cluster_free(struct dm_cluster *c);

/*
 * Deletes dot id (named ns/name) from the cluster: in one transaction,
 * its tombstone DM_KV_DELETED ID, the end of its cluster name (when it
 * still names id) and of its masters. Every node's replicator then deletes
 * its copy, now or when it next runs; a new dot may take the name at
 * once (it gets a new id). Deleting a dot deleted already is no error.
 */
int dm_cluster_mark_deleted(struct dm_kv *kv, const char *id, const char *ns, const char *name,
			    struct dm_err *err);
/* DM_EBUSY naming the node when containers on a live node other than
 * self use dot id (as the nodes' records of their copies say). */
int dm_cluster_check_unused(struct dm_kv *kv, const char *id, const char *self, struct dm_err *err);
/* The dot id the cluster's name ns/name maps to (out: DM_UUID_LEN + 1 or
 * more); DM_ENOTFOUND. */
int dm_cluster_name_id(struct dm_kv *kv, char *out, size_t size, const char *ns, const char *name,
		       struct dm_err *err);

/* "https://HOST:PORT" or "http://HOST:PORT" (a node's address) into host
 * (size bytes) and port; -1 when it is not one. */
int dm_cluster_address_parse(char *host, size_t size, int *port, const char *address);

/* One node as the KV tells. */
struct dm_cluster_node {
	char id[DM_UUID_LEN + 1];
	char address[DM_CLUSTER_ADDRESS_MAX];
	char version[32];
	char engine[16];
	char joined[32];
	bool alive;
};

/* The nodes, sorted by join time then id, into *out (malloc'ed, *n_out;
 * free()). Malformed records are skipped (and logged). */
int dm_cluster_nodes(struct dm_kv *kv, struct dm_cluster_node **out, size_t *n_out,
		     struct dm_err *err);
/* One node; DM_ENOTFOUND "no node 'ID' in this cluster". */
int dm_cluster_node(struct dm_kv *kv, struct dm_cluster_node *out, const char *id,
		    struct dm_err *err);

#endif
