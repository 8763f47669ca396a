/*
 * certs.c - a data directory's TLS files (see certs.h).
 *
 * Invariants:
 *   - A key is written only with mode 0600, atomically; a certificate 0644.
 *   - dm_certs_load hands out NUL-terminated PEM, each at most
 *     DM_TLS_PEM_MAX bytes, or fails naming the file.
 *   - Key material read into memory is wiped when released.
 *   - A node's certificate names its node id (util/tls.h); a node that
 *     joined never writes the CA's key: its certificate comes from the
 *     node that holds it (cluster/nodecred.h), also when the CA rotates.
 *   - The CA that signs is the last certificate of DIR/ca.pem.
 */
#include "server/certs.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server/cluster/cluster.h"
#include "server/cluster/nodecred.h"
#include "server/cluster/rotation.h"
#include "server/datadir.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/tls.h"

#include "util/banned.h"

static int write_pem(const char *dir, const char *name, const struct dm_buf *pem, mode_t mode,
		     struct dm_err *err)
{
	char path[PATH_MAX];
	int rc = dm_datadir_path(path, sizeof(path), dir, name, err);

	return rc ? rc : dm_write_file_atomic(path, pem->data, pem->len, mode, err);
}

/* A PEM file, NUL-terminated, into out. */
static int read_pem(struct dm_buf *out, const char *path, struct dm_err *err)
{
	int rc = dm_read_file(out, path, DM_TLS_PEM_MAX, err);

	if (!rc && dm_buf_add(out, "", 1))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc && !strstr((const char *)out->data, "-----BEGIN "))
		rc = dm_err_set(err, DM_EINVAL, "'%s' holds no PEM text", path);
	return rc;
}

static int read_in(struct dm_buf *out, const char *dir, const char *name, struct dm_err *err)
{
	char path[PATH_MAX];
	int rc = dm_datadir_path(path, sizeof(path), dir, name, err);

	return rc ? rc : read_pem(out, path, err);
}

/* The names a node's certificate is for (without its node name). */
static size_t node_names(char names[][256], size_t max, const char *advertise)
{
	size_t n = 0;
	char host[256];
	int port;

	snprintf(names[n++], 256, "localhost");
	snprintf(names[n++], 256, "127.0.0.1");
	snprintf(names[n++], 256, "::1");
	if (gethostname(host, sizeof(host)) == 0 && host[0] && strcmp(host, "localhost")) {
		host[sizeof(host) - 1] = '\0';
		snprintf(names[n++], 256, "%s", host);
	}
	if (advertise && advertise[0] && n < max &&
	    !dm_cluster_address_parse(host, sizeof(host), &port, advertise)) {
		/* "[::1]" is "::1" in a certificate */
		size_t len = strlen(host);

		if (host[0] == '[' && len > 2 && host[len - 1] == ']') {
			memmove(host, host + 1, len - 2);
			host[len - 2] = '\0';
		}
		bool seen = false;

		for (size_t i = 0; i < n; i++)
			seen = seen || !strcmp(names[i], host);
		if (!seen)
			snprintf(names[n++], 256, "%s", host);
	}
	return n;
}

/* This node's certificate chain and key into dir. */
static int write_node(const char *dir, const struct dm_buf *chain, const struct dm_buf *key,
		      struct dm_err *err)
{
	int rc = write_pem(dir, DM_DATA_TLS_KEY, key, 0600, err);

	return rc ? rc : write_pem(dir, DM_DATA_TLS_CERT, chain, 0644, err);
}

/* Makes the CA (given_ca NULL) or keeps the given one, and a certificate
 * for this node (node_id) signed by it. */
static int init_self(const char *dir, const char *node_id, const char *advertise,
		     const char *given_ca, const char *given_key, struct dm_err *err)
{
	struct dm_buf ca = DM_BUF_INIT, ca_key = DM_BUF_INIT, chain = DM_BUF_INIT,
		      key = DM_BUF_INIT;
	char names[9][256], host[256] = "";
	const char *ptrs[9];
	size_t n = node_names(names, 8, advertise);
	int rc = 0;

	dm_tls_node_name(names[n++], 256, node_id);
	for (size_t i = 0; i < n; i++)
		ptrs[i] = names[i];
	gethostname(host, sizeof(host) - 1);
	if (given_ca) {
		if (dm_buf_add(&ca, given_ca, strlen(given_ca)) ||
		    dm_buf_add(&ca_key, given_key, strlen(given_key)))
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	} else {
		rc = dm_tls_make_ca(&ca, &ca_key, host[0] ? host : "node", err);
	}
	if (!rc)
		rc = write_pem(dir, DM_DATA_CA_KEY, &ca_key, 0600, err);
	if (!rc)
		rc = write_pem(dir, DM_DATA_CA, &ca, 0644, err);
	if (!rc && (dm_buf_add(&ca, "", 1) || dm_buf_add(&ca_key, "", 1)))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc)
		rc = dm_tls_make_server(&chain, &key, (const char *)ca.data,
					(const char *)ca_key.data, ptrs, n, err);
	if (!rc)
		rc = write_node(dir, &chain, &key, err);
	dm_buf_release(&ca);
	dm_buf_release_secret(&ca_key);
	dm_buf_release(&chain);
	dm_buf_release_secret(&key);
	return rc;
}

int dm_certs_init(const char *dir, const struct dm_datadir_config *c, const char *advertise,
		  struct dm_err *err)
{
	struct dm_certs probe;
	int rc;

	struct dm_buf ca = DM_BUF_INIT;

	if (!strcmp(c->tls, DM_TLS_SELF))
		return init_self(dir, c->node_id, advertise, NULL, NULL, err);
	if (strcmp(c->tls, DM_TLS_FILES))
		return 0;
	/* the operator's: they must be there and be PEM now; DIR/ca.pem is
	 * what clients pin: --tls-ca, else the last certificate of the chain */
	dm_buf_init(&probe.chain, 0);
	rc = read_pem(&probe.chain, c->tls_cert, err);
	if (!rc && c->tls_ca[0])
		rc = read_pem(&ca, c->tls_ca, err);
	else if (!rc)
		rc = dm_tls_chain_root(&ca, (const char *)probe.chain.data, err);
	if (!rc && ca.len && ((const char *)ca.data)[ca.len - 1] == '\0')
		ca.len--;
	if (!rc)
		rc = write_pem(dir, DM_DATA_CA, &ca, 0644, err);
	dm_buf_release(&probe.chain);
	dm_buf_release(&ca);
	if (!rc)
		rc = dm_certs_load(&probe, dir, c, err);
	if (!rc)
		dm_certs_release(&probe);
	if (rc)
		dm_err_prefix(err, "TLS");
	return rc;
}

int dm_certs_init_joined(const char *dir, const char *node_id, const char *advertise,
			 const struct dm_cluster_token *t, struct dm_err *err)
{
	struct dm_buf ca = DM_BUF_INIT, chain = DM_BUF_INIT, key = DM_BUF_INIT;
	char names[8][256];
	const char *ptrs[8];
	size_t n = node_names(names, 8, advertise);
	int rc;

	for (size_t i = 0; i < n; i++)
		ptrs[i] = names[i];
	struct dm_nodecred_ask ask = {t->signer, "/join", t->ca, t->secret, NULL};

	rc = dm_nodecred_request(&chain, &key, &ask, node_id, ptrs, n, err);
	if (!rc && dm_buf_add(&ca, t->ca, strlen(t->ca)))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc)
		rc = write_pem(dir, DM_DATA_CA, &ca, 0644, err);
	if (!rc)
		rc = write_node(dir, &chain, &key, err);
	dm_buf_release(&ca);
	dm_buf_release(&chain);
	dm_buf_release_secret(&key);
	return rc;
}

int dm_certs_renew(const char *dir, const struct dm_datadir_config *c, const char *advertise,
		   struct dm_err *err)
{
	struct dm_certs now;
	int rc;

	if (strcmp(c->tls, DM_TLS_SELF))
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "this node serves %s: renew its certificate where it comes from",
				  strcmp(c->tls, DM_TLS_FILES) ? "plain HTTP"
							       : "the operator's TLS files");
	rc = dm_certs_load(&now, dir, c, err);
	if (rc)
		return rc;
	if (!now.ca_key.len)
		rc = dm_err_set(err, DM_EUNSUPPORTED,
				"'%s' holds no %s: renew the certificate on a node that holds the "
				"CA's key, or with the CA's owner",
				dir, DM_DATA_CA_KEY);
	else
		rc = init_self(dir, c->node_id, advertise, (const char *)now.ca.data,
			       (const char *)now.ca_key.data, err);
	dm_certs_release(&now);
	return rc;
}

/* A certificate of the rotation's new CA for this node, asked of the node
 * that holds the CA's key with the certificate it has now. */
static int renew_from(const char *dir, const struct dm_datadir_config *c,
		      const struct dm_certs *now, const struct dm_rotation *r, struct dm_err *err)
{
	struct dm_buf chain = DM_BUF_INIT, key = DM_BUF_INIT;
	struct dm_curl_node cred = {(const char *)now->chain.data, (const char *)now->key.data, ""};
	struct dm_nodecred_ask ask = {r->address, "/renew", (const char *)r->trust.data, NULL,
				      &cred};
	char names[8][256];
	const char *ptrs[8];
	size_t n = node_names(names, 8, c->advertise);
	int rc;

	for (size_t i = 0; i < n; i++)
		ptrs[i] = names[i];
	dm_tls_node_name(cred.peer, sizeof(cred.peer), r->signer);
	rc = dm_nodecred_request(&chain, &key, &ask, c->node_id, ptrs, n, err);
	if (!rc)
		rc = write_node(dir, &chain, &key, err);
	dm_buf_release(&chain);
	dm_buf_release_secret(&key);
	return rc ? dm_err_prefix(err, "cannot renew this node's certificate (the CA's rotation)")
		  : 0;
}

/* Whether this node's certificate (chain) is signed by the last CA of
 * trust: the one a rotation renews certificates with. */
static bool issued_by_last(const char *chain, const char *trust)
{
	struct dm_buf last = DM_BUF_INIT;
	char want[DM_TLS_FINGERPRINT_LEN + 1], got[DM_TLS_FINGERPRINT_LEN + 1];
	struct dm_err err;
	bool same = !dm_tls_chain_root(&last, trust, &err) && !dm_buf_add(&last, "", 1) &&
		    !dm_tls_fingerprint(want, (const char *)last.data, &err) &&
		    !dm_tls_signer(got, chain, trust, &err) && !strcmp(want, got);

	dm_buf_release(&last);
	return same;
}

int dm_certs_rotation(struct dm_certs *certs, const char *dir, const struct dm_datadir_config *c,
		      struct dm_kv *kv, struct dm_err *err)
{
	struct dm_rotation r;
	bool changed = false;
	int rc;

	if (strcmp(c->tls, DM_TLS_SELF) || strcmp(c->kv, "etcd"))
		return 0;
	rc = dm_rotation_get(kv, &r, err);
	if (rc == DM_ENOTFOUND) {
		dm_err_clear(err);
		return dm_rotation_note(kv, c->node_id, (const char *)certs->ca.data,
					(const char *)certs->chain.data, err);
	}
	if (rc)
		return rc;
	if (strcmp((const char *)r.trust.data, (const char *)certs->ca.data)) {
		struct dm_buf trust = r.trust;

		trust.len--; /* the file without the NUL */
		rc = write_pem(dir, DM_DATA_CA, &trust, 0644, err);
		changed = true;
	}
	if (!rc && !strcmp(r.phase, "renew") &&
	    !issued_by_last((const char *)certs->chain.data, (const char *)r.trust.data)) {
		rc = certs->ca_key.len ? dm_certs_renew(dir, c, c->advertise, err)
				       : renew_from(dir, c, certs, &r, err);
		changed = true;
	}
	if (!rc && changed) {
		dm_certs_release(certs);
		rc = dm_certs_load(certs, dir, c, err);
	}
	if (!rc)
		rc = dm_rotation_note(kv, c->node_id, (const char *)certs->ca.data,
				      (const char *)certs->chain.data, err);
	if (!rc && changed)
		dm_info("the CA's rotation, phase '%s': this node's CA file%s renewed", r.phase,
			strcmp(r.phase, "renew") ? "" : " and its certificate");
	dm_rotation_release(&r);
	return rc;
}

int dm_certs_load(struct dm_certs *out, const char *dir, const struct dm_datadir_config *c,
		  struct dm_err *err)
{
	char path[PATH_MAX];
	int rc = 0;

	dm_buf_init(&out->chain, 0);
	dm_buf_init(&out->key, 0);
	dm_buf_init(&out->ca, 0);
	dm_buf_init(&out->ca_key, 0);
	if (!strcmp(c->tls, DM_TLS_SELF)) {
		rc = read_in(&out->chain, dir, DM_DATA_TLS_CERT, err);
		if (!rc)
			rc = read_in(&out->key, dir, DM_DATA_TLS_KEY, err);
		if (!rc)
			rc = read_in(&out->ca, dir, DM_DATA_CA, err);
		if (!rc)
			rc = dm_datadir_path(path, sizeof(path), dir, DM_DATA_CA_KEY, err);
		if (!rc && access(path, F_OK) == 0)
			rc = read_pem(&out->ca_key, path, err);
	} else if (!strcmp(c->tls, DM_TLS_FILES)) {
		rc = read_pem(&out->chain, c->tls_cert, err);
		if (!rc)
			rc = read_pem(&out->key, c->tls_key, err);
		if (!rc)
			rc = read_in(&out->ca, dir, DM_DATA_CA, err);
	}
	if (!rc && out->chain.len && !strstr((const char *)out->key.data, "PRIVATE KEY"))
		rc = dm_err_set(err, DM_EINVAL, "the TLS key holds no private key");
	if (rc) {
		dm_err_prefix(err, "TLS");
		dm_certs_release(out);
	}
	return rc;
}

void dm_certs_release(struct dm_certs *c)
{
	dm_buf_release_secret(&c->ca_key);
	dm_buf_release(&c->chain);
	dm_buf_release_secret(&c->key);
	dm_buf_release(&c->ca);
}

void dm_certs_ca_fingerprint(char *out, const char *dir, const struct dm_datadir_config *c)
{
	struct dm_certs certs;
	struct dm_err err;

	out[0] = '\0';
	if (dm_certs_load(&certs, dir, c, &err))
		return;
	if (certs.ca.len && dm_tls_fingerprint(out, (const char *)certs.ca.data, &err))
		out[0] = '\0';
	dm_certs_release(&certs);
}
