/*
 * certs.h - the TLS files of a data directory (datadir.h's layout): made
 * by `dmd init`, read by `dmd start` (docs/internals/security.md).
 *
 * A node made with its own CA (DM_TLS_SELF) holds DIR/ca.pem and
 * DIR/ca-key.pem (a node that joined a cluster holds no CA key), and
 * DIR/tls.pem (its certificate, naming its node id, then the CA's) with
 * DIR/tls-key.pem; the operator's files (DM_TLS_FILES) stay where they are
 * and config.json names them. Keys are mode 0600.
 */
#ifndef DM_SERVER_CERTS_H
#define DM_SERVER_CERTS_H

#include <stdbool.h>

#include "util/buf.h"

struct dm_cluster_token;
struct dm_kv;
struct dm_datadir_config;
struct dm_err;

/* What the TCP port serves: the certificate chain and key, and the CA that
 * clients pin (DIR/ca.pem: dm's own, the operator's --tls-ca, or else the
 * last certificate of the operator's chain). NUL-terminated PEM. */
struct dm_certs {
	struct dm_buf chain, key, ca;
	struct dm_buf ca_key; /* DIR/ca-key.pem when this node holds it, or empty */
};

/*
 * At init: DM_TLS_SELF makes the CA and a certificate for the names this
 * node is reached by (localhost, 127.0.0.1, ::1, the host name, and the
 * host of advertise when given); DM_TLS_FILES checks that the files are
 * readable PEM; DM_TLS_OFF makes nothing. Into dir, as c says.
 */
int dm_certs_init(const char *dir, const struct dm_datadir_config *c, const char *advertise,
		  struct dm_err *err);
/* The same for node node_id joining a cluster: it makes its key and asks
 * the token's signer for its certificate (cluster/nodecred.h); it keeps
 * the cluster's CA (DIR/ca.pem) but never the CA's key. */
int dm_certs_init_joined(const char *dir, const char *node_id, const char *advertise,
			 const struct dm_cluster_token *t, struct dm_err *err);

/* A new certificate for this node, for the same names (and advertise's
 * host), signed by the CA it holds (DIR/ca.pem, DIR/ca-key.pem): what
 * `dmd renew-cert` does while dmd is stopped. Clients pin the CA, not the
 * certificate, so they go on trusting the node. DM_EUNSUPPORTED for a node
 * without the CA's key (the operator's files, or plain HTTP). */
int dm_certs_renew(const char *dir, const struct dm_datadir_config *c, const char *advertise,
		   struct dm_err *err);

/*
 * At start, on a node of a cluster on etcd with dm's own CA, once the KV
 * is open: the CA's rotation (cluster/rotation.h) as its record says:
 * DIR/ca.pem becomes the CAs it trusts, and in its phase "renew" a
 * certificate not yet of the new CA is renewed (by the CA's key here, or
 * asked of the node that holds it); certs are loaded again when anything
 * changed. Then this node's record says what it trusts and who signed it.
 */
int dm_certs_rotation(struct dm_certs *certs, const char *dir, const struct dm_datadir_config *c,
		      struct dm_kv *kv, struct dm_err *err);

/* At start: the files as c says (nothing for DM_TLS_OFF). */
int dm_certs_load(struct dm_certs *out, const char *dir, const struct dm_datadir_config *c,
		  struct dm_err *err);
void dm_certs_release(struct dm_certs *c);

/* DIR/ca.pem's fingerprint into out (DM_TLS_FINGERPRINT_LEN + 1), or "". */
void dm_certs_ca_fingerprint(char *out, const char *dir, const struct dm_datadir_config *c);

#endif
