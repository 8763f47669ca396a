/*
 * nodecred.h - each node's own credential: the certificate the cluster CA
 * signs for it, naming its node id (util/tls.h), with which it calls the
 * other nodes instead of any API key; who may get one (join secrets), who
 * signs it (the node that holds the CA's key), and who loses it (a node
 * removed from the cluster). docs/internals/security.md.
 */
#ifndef DM_SERVER_CLUSTER_NODECRED_H
#define DM_SERVER_CLUSTER_NODECRED_H

#include <stddef.h>
#include <stdint.h>

#include "server/cluster/cluster.h"
#include "util/buf.h"
#include "util/err.h"

/* How long a join secret lets nodes ask for a certificate (seconds), by
 * default and at most (0: for ever, as `--ttl never` asks). */
#define DM_JOIN_SECRET_TTL     (24 * 3600)
#define DM_JOIN_SECRET_TTL_MAX (10LL * 366 * 24 * 3600)
/* The largest request POST /join takes. */
#define DM_JOIN_BODY_MAX (16u * 1024)

/*
 * A new join secret (DM_API_KEY_LEN hex digits and the NUL, into out): its
 * SHA-256 goes into DM_KV_JOINS with its expiry, ttl seconds from now (0:
 * it never expires). Expired ones are removed on the way.
 */
int dm_nodecred_secret_new(struct dm_kv *kv, char *out, int64_t ttl, struct dm_err *err);

/*
 * POST /join (renew NULL) and POST /renew (renew: the node that called,
 * by its certificate) on the node that holds the CA's key: body is
 * {"secret","node","csr","names":[...]} ("secret" only to join); the
 * answer (*status, a JSON body malloc'ed) is {"cert"} (the chain of a
 * certificate for the request's key, naming the node and the names,
 * signed by the CA that signs: the last of env->ca) or {"error"}. Joining:
 * a node id removed or registered already and a secret unknown or expired
 * are refused; renewing: a node asking for another's. A node that does
 * not hold the CA's key refuses both.
 */
char *dm_nodecred_sign(const struct dm_cluster_env *env, const char *ca_key, const char *renew,
		       const char *body, size_t len, unsigned *status);

/* Where a node asks for its certificate, and how. */
struct dm_nodecred_ask {
	const char *signer; /* "https://HOST:PORT" */
	const char *path;   /* "/join" or "/renew" */
	const char *ca;     /* the CAs the signer is verified against (PEM) */
	const char *secret; /* the join token's, or NULL */
	/* a node renewing: its current certificate, and the signer's node
	 * name (util/curl.h), or NULL */
	const struct dm_curl_node *node;
};

/*
 * The asking node's half: a key, a request for node_id with names[0..n)
 * sent to a->signer, and the answer checked (signed by a CA of a->ca,
 * naming node_id). chain_out and key_out get PEM.
 */
int dm_nodecred_request(struct dm_buf *chain_out, struct dm_buf *key_out,
			const struct dm_nodecred_ask *a, const char *node_id,
			const char *const *names, size_t n, struct dm_err *err);

/*
 * Whether node id may call this node with its certificate: its record is
 * in DM_KV_NODES and it was not removed. DM_EPERM naming it otherwise.
 */
int dm_nodecred_admitted(struct dm_kv *kv, const char *id, struct dm_err *err);

/* DM_EPERM when node id was removed from the cluster (it may not register
 * again: a new node joins with a token). */
int dm_nodecred_check_not_removed(struct dm_kv *kv, const char *id, struct dm_err *err);

/*
 * Removes node id from the cluster: DM_KV_REMOVED ID, and its record,
 * liveness key and the records of its copies (DM_KV_NODE_ROOT ID/) are
 * deleted, in one transaction. From then on its certificate is refused by
 * every node. DM_ENOTFOUND for a node the cluster does not have.
 */
int dm_nodecred_remove(struct dm_kv *kv, const char *id, struct dm_err *err);

#endif
