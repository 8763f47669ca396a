/*
 * nodecred.c - nodes' own certificates: join secrets, signing a joining
 * node's request, asking for it, admitting a node's calls, removing a node
 * (see nodecred.h).
 *
 * Invariants:
 *   - The CA's key is read only by dm_nodecred_sign, on the node that made
 *     it, and never leaves that node: a joining node sends a request
 *     (PKCS#10) for its own key and gets back a certificate.
 *   - A certificate this file signs names exactly one node
 *     (dm_tls_node_name), the id the request gave, which the KV neither
 *     has a record of nor has removed.
 *   - The KV holds only the SHA-256 of a join secret.
 *   - Every input of POST /join is bounded before it is used: the body
 *     (DM_JOIN_BODY_MAX), each name, their count, the request's size.
 */
#include "server/cluster/nodecred.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/kv.h"
#include "util/curl.h"
#include "util/hash.h"
#include "util/id.h"
#include "util/log.h"
#include "util/names.h"
#include "util/tls.h"

#include "util/banned.h"

/* The names a joining node may ask for, besides its node name. */
#define JOIN_NAMES_MAX 8
/* An answer of the signer we read. */
#define JOIN_ANSWER_MAX (64u * 1024)
/* How long asking the signer may take, in seconds. */
#define JOIN_TIMEOUT_S 30

int dm_cluster_node_cred(const struct dm_cluster_env *env, struct dm_curl_node *out,
			 const char *peer_id, struct dm_err *err)
{
	memset(out, 0, sizeof(*out));
	if (!env->ca || !env->node_cert || !env->node_key)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "this node has no certificate of the cluster to call node %s with "
				  "(a cluster on plain HTTP)",
				  peer_id);
	out->cert_pem = env->node_cert;
	out->key_pem = env->node_key;
	dm_tls_node_name(out->peer, sizeof(out->peer), peer_id);
	return 0;
}

static void secret_key(char *out, size_t size, const char *secret)
{
	char hex[DM_OID_HEXSZ + 1];
	dm_oid id;

	dm_hash(&id, secret, strlen(secret));
	dm_oid_hex(hex, &id);
	snprintf(out, size, DM_KV_JOINS "%s", hex);
}

/* Whether a DM_KV_JOINS record is past its expiry ({"expires":0}: never
 * is), or malformed. */
static bool expired(const struct dm_kv_kv *rec, int64_t now)
{
	json_t *doc = json_loadb(rec->value, rec->value_len, 0, NULL);
	json_t *v = json_object_get(doc, "expires");
	int64_t t = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;

	json_decref(doc);
	return t < 0 || (t && t <= now);
}

int dm_nodecred_secret_new(struct dm_kv *kv, char *out, int64_t ttl, struct dm_err *err)
{
	char key[sizeof(DM_KV_JOINS) + DM_OID_HEXSZ], value[64];
	int64_t now = (int64_t)time(NULL);
	struct dm_kv_kvs old;
	int rc;

	dm_kv_kvs_init(&old);
	if (dm_kv_range(kv, &old, DM_KV_JOINS, 0, NULL) == 0)
		for (size_t i = 0; i < old.len; i++)
			if (expired(&old.items[i], now))
				dm_kv_delete(kv, NULL, old.items[i].key, NULL);
	dm_kv_kvs_release(&old);
	rc = dm_id_api_key(out, err);
	if (rc)
		return rc;
	secret_key(key, sizeof(key), out);
	snprintf(value, sizeof(value), "{\"expires\":%lld}", ttl ? (long long)(now + ttl) : 0LL);
	return dm_kv_put(kv, NULL, key, value, strlen(value), 0, err);
}

static int check_secret(struct dm_kv *kv, const char *secret, struct dm_err *err)
{
	char key[sizeof(DM_KV_JOINS) + DM_OID_HEXSZ];
	struct dm_kv_kv rec;
	int rc;

	secret_key(key, sizeof(key), secret);
	dm_kv_kv_init(&rec);
	rc = dm_kv_get(kv, &rec, key, err);
	if (!rc && expired(&rec, (int64_t)time(NULL)))
		rc = DM_ENOTFOUND;
	dm_kv_kv_release(&rec);
	if (rc == DM_ENOTFOUND)
		return dm_err_set(err, DM_EPERM,
				  "the join token is unknown or expired (a token works for %d "
				  "hours, unless 'dm cluster join-token --ttl' said otherwise); print "
				  "a new one with 'dm cluster join-token'",
				  DM_JOIN_SECRET_TTL / 3600);
	return rc;
}

int dm_nodecred_check_not_removed(struct dm_kv *kv, const char *id, struct dm_err *err)
{
	char key[sizeof(DM_KV_REMOVED) + DM_UUID_LEN];
	struct dm_kv_kv rec;
	int rc;

	snprintf(key, sizeof(key), DM_KV_REMOVED "%s", id);
	dm_kv_kv_init(&rec);
	rc = dm_kv_get(kv, &rec, key, err);
	dm_kv_kv_release(&rec);
	if (rc == DM_ENOTFOUND) {
		dm_err_clear(err);
		return 0;
	}
	if (!rc)
		return dm_err_set(err, DM_EPERM,
				  "node %s was removed from the cluster; a machine comes back "
				  "as a new node, with 'dm cluster join' and a new data directory",
				  id);
	return rc;
}

int dm_nodecred_admitted(struct dm_kv *kv, const char *id, struct dm_err *err)
{
	char key[sizeof(DM_KV_NODES) + DM_UUID_LEN];
	struct dm_kv_kv rec;
	int rc = dm_nodecred_check_not_removed(kv, id, err);

	if (rc)
		return rc;
	snprintf(key, sizeof(key), DM_KV_NODES "%s", id);
	dm_kv_kv_init(&rec);
	rc = dm_kv_get(kv, &rec, key, err);
	dm_kv_kv_release(&rec);
	if (rc == DM_ENOTFOUND)
		return dm_err_set(err, DM_EPERM, "node %s is not a node of this cluster", id);
	return rc;
}

int dm_nodecred_remove(struct dm_kv *kv, const char *id, struct dm_err *err)
{
	char removed[sizeof(DM_KV_REMOVED) + DM_UUID_LEN], node[sizeof(DM_KV_NODES) + DM_UUID_LEN];
	char alive[sizeof(DM_KV_ALIVE) + DM_UUID_LEN], value[64];
	char own[sizeof(DM_KV_NODE_ROOT) + DM_UUID_LEN + 1];
	struct dm_kv_op ops[4];
	struct dm_kv_kv rec;
	int rc;

	snprintf(node, sizeof(node), DM_KV_NODES "%s", id);
	snprintf(removed, sizeof(removed), DM_KV_REMOVED "%s", id);
	snprintf(alive, sizeof(alive), DM_KV_ALIVE "%s", id);
	snprintf(own, sizeof(own), DM_KV_NODE_ROOT "%s/", id);
	dm_kv_kv_init(&rec);
	rc = dm_kv_get(kv, &rec, node, err);
	dm_kv_kv_release(&rec);
	if (rc == DM_ENOTFOUND)
		return dm_err_set(err, DM_ENOTFOUND, "no node '%s' in this cluster", id);
	if (rc)
		return rc;
	snprintf(value, sizeof(value), "{\"removed\":%lld}", (long long)time(NULL));
	ops[0] = (struct dm_kv_op){DM_KV_OP_PUT, removed, value, strlen(value), 0};
	ops[1] = (struct dm_kv_op){DM_KV_OP_DELETE, node, NULL, 0, 0};
	ops[2] = (struct dm_kv_op){DM_KV_OP_DELETE, alive, NULL, 0, 0};
	/* the records of its copies: no tombstone waits for them any longer */
	ops[3] = (struct dm_kv_op){DM_KV_OP_DELETE_PREFIX, own, NULL, 0, 0};
	return dm_kv_txn(kv, NULL, NULL, 0, ops, 4, err);
}

/* ---- the signer ---- */

struct join_req {
	const char *secret, *node, *csr;
	const char *names[JOIN_NAMES_MAX + 1];
	size_t n;
};

/* body's members into r (borrowed from doc); DM_EINVAL saying what. */
static int parse_join(struct join_req *r, json_t *doc, struct dm_err *err)
{
	json_t *names = json_object_get(doc, "names"), *v;
	size_t i;

	memset(r, 0, sizeof(*r));
	r->secret = json_string_value(json_object_get(doc, "secret"));
	r->node = json_string_value(json_object_get(doc, "node"));
	r->csr = json_string_value(json_object_get(doc, "csr"));
	if (!r->node || !r->csr || !json_is_array(names))
		return dm_err_set(err, DM_EINVAL,
				  "a join request is {\"secret\",\"node\",\"csr\",\"names\"}");
	if (strlen(r->node) != DM_UUID_LEN || !dm_name_part_valid(r->node, DM_UUID_LEN))
		return dm_err_set(err, DM_EINVAL, "a join request's node is a node id");
	if (json_array_size(names) > JOIN_NAMES_MAX)
		return dm_err_set(err, DM_EINVAL, "a join request names at most %d hosts",
				  JOIN_NAMES_MAX);
	json_array_foreach(names, i, v)
	{
		if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > 253)
			return dm_err_set(err, DM_EINVAL, "a join request's names are host names");
		r->names[r->n++] = json_string_value(v);
	}
	return 0;
}

static char *answer(unsigned *status, unsigned code, const char *member, const char *text)
{
	json_t *doc = json_pack("{s:s}", member, text);
	char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	json_decref(doc);
	*status = code;
	return body;
}

/* A node that joins: the secret is good, and its id is new. */
static int check_joining(struct dm_kv *kv, const struct join_req *r, struct dm_err *err)
{
	char key[sizeof(DM_KV_NODES) + DM_UUID_LEN];
	struct dm_kv_kv rec;
	int rc = r->secret ? check_secret(kv, r->secret, err)
			   : dm_err_set(err, DM_EINVAL, "a join request has a secret");

	if (!rc)
		rc = dm_nodecred_check_not_removed(kv, r->node, err);
	if (rc)
		return rc;
	snprintf(key, sizeof(key), DM_KV_NODES "%s", r->node);
	dm_kv_kv_init(&rec);
	if (dm_kv_get(kv, &rec, key, NULL) == 0)
		rc = dm_err_set(err, DM_EEXISTS,
				"node %s is in the cluster already: a joining node has an id of "
				"its own",
				r->node);
	dm_kv_kv_release(&rec);
	return rc;
}

char *dm_nodecred_sign(const struct dm_cluster_env *env, const char *ca_key, const char *renew,
		       const char *body, size_t len, unsigned *status)
{
	char node_name[DM_TLS_NODE_NAME_MAX];
	struct dm_buf chain = DM_BUF_INIT;
	struct join_req r;
	struct dm_err err;
	json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	char *out;
	int rc = 0;

	dm_err_clear(&err);
	if (!env->ca || !ca_key)
		rc = dm_err_set(&err, DM_EUNSUPPORTED,
				"node %s does not hold the cluster CA's key; ask the node that "
				"made the cluster for a join token",
				env->node_id);
	if (!rc)
		rc = parse_join(&r, doc, &err);
	if (!rc && !renew)
		rc = check_joining(env->kv, &r, &err);
	else if (!rc && strcmp(r.node, renew))
		rc = dm_err_set(&err, DM_EPERM, "node %s asks for a certificate of node %s", renew,
				r.node);
	if (!rc) {
		dm_tls_node_name(node_name, sizeof(node_name), r.node);
		r.names[r.n++] = node_name;
		rc = dm_tls_sign_csr(&chain, r.csr, env->ca, ca_key, r.names, r.n, &err);
	}
	if (!rc && dm_buf_add(&chain, "", 1))
		rc = dm_err_set(&err, DM_ENOMEM, "out of memory");
	if (rc) {
		dm_warn("refused a request for a node's certificate: %s", err.msg);
		out = answer(status, (unsigned)dm_err_http_status(rc), "error", err.msg);
	} else {
		dm_info("signed a certificate for node %s (%s)", r.node,
			renew ? "a new one, the CA's rotation" : "which joins the cluster");
		out = answer(status, 200, "cert", (const char *)chain.data);
	}
	json_decref(doc);
	dm_buf_release(&chain);
	return out;
}

/* ---- the joining node ---- */

static size_t on_data(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct dm_buf *b = ctx;

	return dm_buf_add(b, data, size * nmemb) ? 0 : size * nmemb;
}

/* POSTs body to the signer (a->path); its answer into out. */
static int post_join(struct dm_buf *out, long *status, const struct dm_nodecred_ask *a,
		     const char *body, struct dm_err *err)
{
	char errbuf[CURL_ERROR_SIZE], *url = dm_asprintf("%s%s", a->signer, a->path);
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
	CURL *e = NULL;
	CURLcode cc = CURLE_OK;
	int rc = dm_curl_global_init(err);

	if (!rc && (!url || !headers || !(e = curl_easy_init())))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc) {
		dm_curl_setup(e, &(const struct dm_curl_request){
					 .url = url,
					 .headers = headers,
					 .agent = "dmd/" DM_VERSION,
					 .connect_timeout = 5,
					 .errbuf = errbuf,
					 .ca_pem = a->ca,
					 .node = a->node,
				 });
		curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)JOIN_TIMEOUT_S);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
		cc = curl_easy_perform(e);
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	}
	if (!rc && cc != CURLE_OK)
		rc = dm_err_set(err, DM_EUNAVAILABLE,
				"cannot reach the node that signs certificates at %s: %s%s%s", a->signer,
				errbuf[0] ? errbuf : curl_easy_strerror(cc),
				dm_curl_is_tls_failure(cc) ? " (its certificate is not the token's CA's)"
							   : "",
				"; is it running?");
	curl_easy_cleanup(e);
	curl_slist_free_all(headers);
	free(url);
	return rc;
}

int dm_nodecred_request(struct dm_buf *chain_out, struct dm_buf *key_out,
			const struct dm_nodecred_ask *a, const char *node_id,
			const char *const *names, size_t n, struct dm_err *err)
{
	struct dm_buf csr = DM_BUF_INIT, ans = DM_BUF_INIT;
	json_t *req = NULL, *doc = NULL, *list = json_array();
	const char *cert, *msg;
	char *body = NULL;
	long status = 0;
	int rc;

	dm_buf_init(&ans, JOIN_ANSWER_MAX);
	rc = dm_tls_make_csr(&csr, key_out, node_id, err);
	if (!rc && dm_buf_add(&csr, "", 1))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	for (size_t i = 0; !rc && list && i < n; i++)
		json_array_append_new(list, json_string(names[i]));
	if (!rc) {
		req = json_pack("{s:s, s:s, s:O}", "node", node_id, "csr", (const char *)csr.data,
				"names", list);
		if (req && a->secret)
			json_object_set_new(req, "secret", json_string(a->secret));
		body = req ? json_dumps(req, JSON_COMPACT) : NULL;
		if (!body)
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	if (!rc)
		rc = post_join(&ans, &status, a, body, err);
	if (!rc)
		doc = json_loadb((const char *)ans.data, ans.len, 0, NULL);
	cert = json_string_value(json_object_get(doc, "cert"));
	msg = json_string_value(json_object_get(doc, "error"));
	if (!rc && status != 200)
		rc = dm_err_set(err, status == 403 ? DM_EPERM : DM_EPROTO,
				"the node at %s refused to sign this node's certificate: %s",
				a->signer, msg ? msg : "no reason given (is it a dmd?)");
	else if (!rc && (!cert || dm_tls_check_signed(cert, a->ca, err) ||
			 dm_tls_names_node(cert, node_id)))
		rc = dm_err_set(err, DM_EPROTO,
				"the node at %s answered with no certificate of the cluster's CA "
				"for this node",
				a->signer);
	if (!rc && dm_buf_add(chain_out, cert, strlen(cert)))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (body) {
		explicit_bzero(body, strlen(body));
		free(body);
	}
	json_decref(req);
	json_decref(list);
	json_decref(doc);
	dm_buf_release(&csr);
	dm_buf_release(&ans);
	return rc;
}
