/*
 * rotation.c - the CA's rotation as a record in the KV, its steps, and
 * what each node says of its certificates (see rotation.h).
 *
 * Invariants:
 *   - A step moves the record one phase on, and only when every node of
 *     the cluster has said (its DM_KV_NODE_ROOT NODE/tls record) that it
 *     did what the phase before asks: nodes that are down block it.
 *   - The new CA's key is written (0600) only after the record that makes
 *     every node trust the new CA; the old key is gone from then on.
 *   - Every record read here is bounded (the KV's values, DM_TLS_PEM_MAX).
 */
#include "server/cluster/rotation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/tls.h"

#include "util/banned.h"

static int copy_str(char *out, size_t size, json_t *doc, const char *name)
{
	const char *v = json_string_value(json_object_get(doc, name));

	if (!v || strlen(v) >= size)
		return -1;
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

int dm_rotation_get(struct dm_kv *kv, struct dm_rotation *out, struct dm_err *err)
{
	struct dm_kv_kv rec;
	json_t *doc = NULL;
	const char *trust;
	int rc;

	memset(out, 0, sizeof(*out));
	dm_buf_init(&out->trust, DM_TLS_PEM_MAX);
	dm_kv_kv_init(&rec);
	rc = dm_kv_get(kv, &rec, DM_KV_CA, err);
	if (!rc) {
		doc = json_loadb(rec.value, rec.value_len, 0, NULL);
		trust = json_string_value(json_object_get(doc, "trust"));
		if (copy_str(out->phase, sizeof(out->phase), doc, "phase") ||
		    copy_str(out->signer, sizeof(out->signer), doc, "signer") ||
		    copy_str(out->address, sizeof(out->address), doc, "address") ||
		    (strcmp(out->phase, "trust") && strcmp(out->phase, "renew") &&
		     strcmp(out->phase, "done")) ||
		    !trust ||
		    !strstr(trust, "-----BEGIN CERTIFICATE") ||
		    dm_buf_add(&out->trust, trust, strlen(trust) + 1))
			rc = dm_err_set(err, DM_ECORRUPT, "the CA's rotation record '%s' is malformed",
					DM_KV_CA);
	}
	json_decref(doc);
	dm_kv_kv_release(&rec);
	if (rc)
		dm_rotation_release(out);
	return rc;
}

void dm_rotation_release(struct dm_rotation *r)
{
	dm_buf_release(&r->trust);
}

static int put_rotation(struct dm_kv *kv, const char *phase, const char *trust,
			const char *signer, const char *address, struct dm_err *err)
{
	json_t *doc = json_pack("{s:s, s:s, s:s, s:s}", "phase", phase, "trust", trust, "signer",
				signer, "address", address);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	int rc;

	json_decref(doc);
	if (!text)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	rc = dm_kv_put(kv, NULL, DM_KV_CA, text, strlen(text), 0, err);
	free(text);
	return rc;
}

static void tls_key(char *out, size_t size, const char *node_id)
{
	snprintf(out, size, DM_KV_NODE_ROOT "%s/tls", node_id);
}

int dm_rotation_note(struct dm_kv *kv, const char *node_id, const char *ca, const char *cert,
		     struct dm_err *err)
{
	char key[sizeof(DM_KV_NODE_ROOT) + DM_UUID_LEN + 8], issuer[DM_TLS_FINGERPRINT_LEN + 1];
	json_t *doc;
	char *text;
	int rc;

	if (dm_tls_signer(issuer, cert, ca, err))
		issuer[0] = '\0';
	doc = json_pack("{s:s, s:s}", "trust", ca, "issuer", issuer);
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	tls_key(key, sizeof(key), node_id);
	rc = dm_kv_put(kv, NULL, key, text, strlen(text), 0, err);
	free(text);
	return rc;
}

/* The nodes whose record does not show what the phase before asked: that
 * they trust new_ca (PEM), or (issued) that new_fp signed their
 * certificate. Their ids into *late (", "-separated, malloc'ed), or NULL. */
static int late_nodes(char **late, struct dm_kv *kv, const char *new_ca, const char *new_fp,
		      bool issued, struct dm_err *err)
{
	struct dm_cluster_node *nodes;
	struct dm_buf b = DM_BUF_INIT;
	size_t n;
	int rc = dm_cluster_nodes(kv, &nodes, &n, err);

	*late = NULL;
	for (size_t i = 0; !rc && i < n; i++) {
		char key[sizeof(DM_KV_NODE_ROOT) + DM_UUID_LEN + 8];
		struct dm_kv_kv rec;
		json_t *doc = NULL;
		const char *trust, *issuer;
		bool ok = false;

		tls_key(key, sizeof(key), nodes[i].id);
		dm_kv_kv_init(&rec);
		if (dm_kv_get(kv, &rec, key, NULL) == 0) {
			doc = json_loadb(rec.value, rec.value_len, 0, NULL);
			trust = json_string_value(json_object_get(doc, "trust"));
			issuer = json_string_value(json_object_get(doc, "issuer"));
			ok = issued ? issuer && !strcmp(issuer, new_fp)
				    : trust && strstr(trust, new_ca) != NULL;
		}
		json_decref(doc);
		dm_kv_kv_release(&rec);
		if (!ok && ((b.len && dm_buf_adds(&b, ", ")) || dm_buf_adds(&b, nodes[i].id)))
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	free(nodes);
	if (!rc && b.len && dm_buf_add(&b, "", 1))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc && b.len)
		*late = dm_buf_detach(&b, NULL);
	dm_buf_release(&b);
	return rc;
}

/* The first step: a new CA, trusted beside the old one (old: the CA the
 * last rotation ended with, or this node's), its key replacing the old
 * one's. */
static int begin(const struct dm_cluster_env *env, const char *old, const char *address,
		 const char *ca_key_path, struct dm_err *err)
{
	struct dm_buf cert = DM_BUF_INIT, key = DM_BUF_INIT, trust = DM_BUF_INIT;
	int rc = dm_tls_make_ca(&cert, &key, "rotated", err);

	if (!rc && (dm_buf_adds(&trust, old) || dm_buf_add(&trust, cert.data, cert.len) ||
		    dm_buf_add(&trust, "", 1)))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc)
		rc = put_rotation(env->kv, "trust", (const char *)trust.data, env->node_id, address,
				  err);
	if (!rc) {
		rc = dm_write_file_atomic(ca_key_path, key.data, key.len, 0600, err);
		if (rc) /* no node may trust a CA whose key is lost */
			dm_kv_delete(env->kv, NULL, DM_KV_CA, NULL);
	}
	dm_buf_release(&cert);
	dm_buf_release_secret(&key);
	dm_buf_release(&trust);
	return rc;
}

int dm_rotation_step(json_t **result, const struct dm_cluster_env *env, const char *address,
		     const char *ca_key_path, struct dm_err *err)
{
	struct dm_rotation r;
	struct dm_buf last = DM_BUF_INIT;
	char fp[DM_TLS_FINGERPRINT_LEN + 1], *late = NULL;
	const char *next = NULL;
	int rc = dm_rotation_get(env->kv, &r, err);

	if (rc == DM_ENOTFOUND || (!rc && !strcmp(r.phase, "done"))) {
		rc = begin(env, rc ? env->ca : (const char *)r.trust.data, address, ca_key_path,
			   err);
		dm_rotation_release(&r);
		if (rc)
			return rc;
		dm_info("rotating the CA: a new CA, trusted beside the old one");
		*result = json_pack("{s:s}", "phase", "trust");
		return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	if (!rc && strcmp(r.signer, env->node_id))
		rc = dm_err_set(err, DM_EUNSUPPORTED,
				"node %s rotates the CA (it holds the CA's key): run this there",
				r.signer);
	if (!rc)
		rc = dm_tls_chain_root(&last, (const char *)r.trust.data, err);
	if (!rc && dm_buf_add(&last, "", 1))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc)
		rc = dm_tls_fingerprint(fp, (const char *)last.data, err);
	if (!rc)
		rc = late_nodes(&late, env->kv, (const char *)last.data, fp,
				!strcmp(r.phase, "renew"), err);
	if (!rc && late)
		rc = dm_err_set(err, DM_EBUSY,
				"node%s %s %s not restarted since the last step (phase '%s'): "
				"restart %s (dm cluster stop, then dm cluster start), one at a "
				"time, then run this again",
				strchr(late, ',') ? "s" : "", late, strchr(late, ',') ? "have" : "has",
				r.phase, strchr(late, ',') ? "them" : "it");
	if (!rc && !strcmp(r.phase, "trust")) {
		next = "renew";
		rc = put_rotation(env->kv, next, (const char *)r.trust.data, r.signer, r.address,
				  err);
	} else if (!rc) {
		next = "done";
		rc = put_rotation(env->kv, next, (const char *)last.data, r.signer, r.address, err);
	}
	if (!rc) {
		dm_info("rotating the CA: phase '%s'", next);
		*result = json_pack("{s:s}", "phase", next);
		if (!*result)
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	free(late);
	dm_buf_release(&last);
	dm_rotation_release(&r);
	return rc;
}
