/*
 * tls.h - the certificates dm makes and checks (OpenSSL): a node's private
 * CA, a server certificate it signs for the node's names and addresses,
 * and the SHA-256 fingerprints that users compare and clients pin
 * (docs/internals/security.md).
 *
 * Keys are EC P-256. Every PEM here is text in memory: the callers decide
 * where it is kept (a key file always with mode 0600).
 */
#ifndef DM_UTIL_TLS_H
#define DM_UTIL_TLS_H

#include <stddef.h>

struct dm_buf;
struct dm_err;

/* "SHA256:" and 64 lowercase hex digits, and the NUL */
#define DM_TLS_FINGERPRINT_LEN (7 + 64)
#define DM_TLS_PEM_MAX         (64u * 1024) /* a certificate or chain we accept */
#define DM_TLS_NAMES_MAX       16           /* names and addresses of one server */

/* A new CA: its certificate (cert_pem) and key (key_pem), valid for ten
 * years, named "dm CA <label>". */
int dm_tls_make_ca(struct dm_buf *cert_pem, struct dm_buf *key_pem, const char *label,
		   struct dm_err *err);

/*
 * A server certificate signed by the CA (ca_cert_pem, ca_key_pem; the last
 * certificate of ca_cert_pem, when it holds several: the CA that signs
 * while the CA is rotated), valid
 * for two years, for names[0..n): each an IP address (v4 or v6) or a DNS
 * name, all in its subjectAltName. cert_pem gets the certificate followed
 * by the CA's (the chain a server sends), key_pem its new key.
 */
int dm_tls_make_server(struct dm_buf *cert_pem, struct dm_buf *key_pem, const char *ca_cert_pem,
		       const char *ca_key_pem, const char *const *names, size_t n,
		       struct dm_err *err);

/* A new key (key_pem) and a request (PKCS#10) for a certificate of it
 * (csr_pem), CN=cn: what a node joining a cluster sends the node that
 * holds the cluster CA's key, which never leaves that node. */
int dm_tls_make_csr(struct dm_buf *csr_pem, struct dm_buf *key_pem, const char *cn,
		    struct dm_err *err);

/* A certificate as dm_tls_make_server makes, but for the key of csr_pem
 * (whose signature is checked: DM_EINVAL), into cert_pem (then the CA's).
 * The names are the signer's to choose, not the request's. */
int dm_tls_sign_csr(struct dm_buf *cert_pem, const char *csr_pem, const char *ca_cert_pem,
		    const char *ca_key_pem, const char *const *names, size_t n,
		    struct dm_err *err);

/* A node's name in its certificate: ID DM_TLS_NODE_SUFFIX (.invalid: no
 * real host has it). A node calling another checks that name, so that a
 * node record pointed elsewhere reaches no other node of the cluster. */
#define DM_TLS_NODE_SUFFIX   ".node.dm.invalid"
#define DM_TLS_NODE_NAME_MAX 96
void dm_tls_node_name(char *out, size_t size, const char *node_id);

/*
 * The node a TLS client's certificate names: der[0..n) is the chain it
 * sent (DER, its own first), which must verify against one of the CAs in
 * ca_pem (PEM, one or more certificates) for a client, and name exactly
 * one node (dm_tls_node_name); its id into out (size bytes). DM_EPERM
 * saying why not.
 */
int dm_tls_peer_node(char *out, size_t size, const unsigned char *const *der, const size_t *lens,
		     size_t n, const char *ca_pem, struct dm_err *err);

/* 0 when the first certificate of pem names node node_id. */
int dm_tls_names_node(const char *pem, const char *node_id);

/* The fingerprint of the first certificate in pem (the SHA-256 of its
 * DER form) into out (DM_TLS_FINGERPRINT_LEN + 1 bytes). DM_EINVAL when
 * pem holds no certificate. */
int dm_tls_fingerprint(char *out, const char *pem, struct dm_err *err);

/* The last certificate of a chain (the CA a server sends last), as PEM,
 * into out. DM_EINVAL when pem holds none. */
int dm_tls_chain_root(struct dm_buf *out, const char *pem, struct dm_err *err);

/* 0 when the first certificate of pem is signed by a CA of ca_pem (one
 * or more certificates). */
int dm_tls_check_signed(const char *pem, const char *ca_pem, struct dm_err *err);
/* The same, and the fingerprint of the CA of ca_pem that signed it into
 * out (DM_TLS_FINGERPRINT_LEN + 1). */
int dm_tls_signer(char *out, const char *pem, const char *ca_pem, struct dm_err *err);

/* Accepts "SHA256:HEX", "sha256:HEX" or HEX, with or without colons
 * between bytes; writes the canonical form into out. DM_EINVAL else. */
int dm_tls_fingerprint_parse(char *out, const char *text, struct dm_err *err);

#endif
