/*
 * rotation.h - rotating the cluster's CA and every node's certificate
 * while the cluster stays up (`dm cluster rotate-certs`,
 * docs/internals/security.md).
 *
 * The rotation is a record in the KV, DM_KV_CA, moved through three
 * phases by `dm cluster rotate-certs` on the node that holds the CA's key,
 * each followed by a restart of every node, one at a time:
 *
 *   phase   what every node does at its start        the step to it checks
 *   trust   trusts the old CA and the new one         -
 *   renew   gets a certificate of the new CA          every node trusts both
 *   done    trusts the new CA only                    every node's is the new CA's
 *
 * At every moment each node trusts the CA of every other node's
 * certificate, so nodes keep calling each other throughout. Each node
 * says at start what it trusts and who signed its certificate (its record
 * DM_KV_NODE_ROOT NODE/tls), which is what the steps check.
 */
#ifndef DM_SERVER_CLUSTER_ROTATION_H
#define DM_SERVER_CLUSTER_ROTATION_H

#include <jansson.h>

#include "server/cluster/cluster.h"
#include "util/buf.h"
#include "util/err.h"

/* {"phase","trust","signer","address"}: trust is the CAs every node
 * trusts (PEM, the new one last); signer the node that holds the CA's key,
 * at address */
#define DM_KV_CA "/dm/ca"

struct dm_rotation {
	char phase[8];                         /* "trust", "renew", "done" */
	struct dm_buf trust;                   /* PEM, NUL-terminated */
	char signer[DM_UUID_LEN + 1];          /* the node that holds the CA's key */
	char address[DM_CLUSTER_ADDRESS_MAX];  /* where it is */
};

/* The rotation the KV holds into out (release it); DM_ENOTFOUND when no
 * rotation ever ran. */
int dm_rotation_get(struct dm_kv *kv, struct dm_rotation *out, struct dm_err *err);
void dm_rotation_release(struct dm_rotation *r);

/* This node's record of what it trusts (ca, PEM) and which CA signed its
 * certificate (cert, PEM): what the steps check. */
int dm_rotation_note(struct dm_kv *kv, const char *node_id, const char *ca, const char *cert,
		     struct dm_err *err);

/*
 * The next step, on the node that holds the CA's key (its key file at
 * ca_key_path, which a new CA's key replaces): a new CA (phase trust),
 * then renew, then done; *result says the phase now. DM_EBUSY naming the
 * nodes that have not restarted since the last step.
 */
int dm_rotation_step(json_t **result, const struct dm_cluster_env *env, const char *address,
		     const char *ca_key_path, struct dm_err *err);

#endif
