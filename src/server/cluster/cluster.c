/*
 * cluster.c - the cluster record, join tokens, node records and the lease
 * that says a node is up (see cluster.h, docs/internals/cluster.md).
 *
 * cluster/ owns what makes several dmds one cluster: membership (this
 * file), the local etcd member (etcd_member.c), requests served by a
 * branch's master (forward.c), the replicator that keeps this node's
 * copies in step (replicate.c) and where each node's copy stands
 * (replicas.c). Its parts see the node through struct dm_cluster_env
 * (cluster.h); they sit above dots/ and transfers/, below api/.
 *
 * Invariants: /dm/cluster is written once, by a create-if-absent; a node
 * writes only its own /dm/nodes/ID and /dm/alive/ID; /dm/alive/ID is always
 * attached to a lease, so it disappears by itself when the node dies. The
 * keepalive thread touches only struct dm_cluster's lease id, under mu.
 */
#include "server/cluster/cluster.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/kv.h"
#include "server/dots/dot.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/names.h"

#include "util/banned.h"

#define CLUSTER_FORMAT 1

struct dm_cluster {
	struct dm_kv *kv;
	char node_id[DM_UUID_LEN + 1];
	char alive_key[sizeof(DM_KV_ALIVE) + DM_UUID_LEN];
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu; /* guards stop and lease */
	pthread_cond_t cond;
	bool stop;
	int64_t lease;
};

static void now_text(char *out, size_t size)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- the join token ---- */

int dm_cluster_token_encode(char **out, const struct dm_cluster_token *t, struct dm_err *err)
{
	json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s}", "cluster", t->cluster_id, "etcd",
				t->endpoints, "signer", t->signer, "secret", t->secret, "ca", t->ca);
	char *text;
	struct dm_buf b;
	int rc;

	if (doc && t->etcd_ca[0])
		json_object_set_new(doc, "etcd_ca", json_string(t->etcd_ca));
	if (doc && t->etcd_user[0] && t->etcd_password[0]) {
		json_object_set_new(doc, "etcd_user", json_string(t->etcd_user));
		json_object_set_new(doc, "etcd_password", json_string(t->etcd_password));
	}
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	json_decref(doc);
	if (!text)
		return dm_err_set(err, DM_ENOMEM, "cannot encode a join token");
	dm_buf_init(&b, DM_CLUSTER_TOKEN_MAX);
	rc = dm_buf_adds(&b, DM_CLUSTER_TOKEN_PREFIX);
	if (!rc)
		rc = dm_base64_encode(&b, text, strlen(text), true);
	free(text);
	if (rc) {
		dm_buf_release_secret(&b);
		return dm_err_set(err, DM_ETOOBIG, "the join token would be too long");
	}
	*out = dm_buf_detach(&b, NULL);
	return *out ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

static int copy_field(char *out, size_t size, json_t *doc, const char *name)
{
	json_t *v = json_object_get(doc, name);

	if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) >= size)
		return -1;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

/* An optional string member of doc into out, counted in *n when there;
 * -1 when there and not a string that fits. */
static int optional_field(char *out, size_t size, json_t *doc, const char *name, size_t *n)
{
	if (!json_object_get(doc, name))
		return 0;
	(*n)++;
	return copy_field(out, size, doc, name);
}

/* A decoded token's members into out; -1 when one is missing, extra,
 * malformed or alone without its pair. */
static int decode_fields(struct dm_cluster_token *out, json_t *doc)
{
	size_t n = 5;

	if (!json_is_object(doc) ||
	    copy_field(out->cluster_id, sizeof(out->cluster_id), doc, "cluster") ||
	    copy_field(out->endpoints, sizeof(out->endpoints), doc, "etcd") ||
	    copy_field(out->signer, sizeof(out->signer), doc, "signer") ||
	    copy_field(out->secret, sizeof(out->secret), doc, "secret") ||
	    copy_field(out->ca, sizeof(out->ca), doc, "ca") ||
	    strlen(out->cluster_id) != DM_UUID_LEN || strlen(out->secret) != DM_API_KEY_LEN)
		return -1;
	if (optional_field(out->etcd_ca, sizeof(out->etcd_ca), doc, "etcd_ca", &n) ||
	    optional_field(out->etcd_user, sizeof(out->etcd_user), doc, "etcd_user", &n) ||
	    optional_field(out->etcd_password, sizeof(out->etcd_password), doc, "etcd_password",
			   &n))
		return -1;
	if (json_object_size(doc) != n || !out->etcd_user[0] != !out->etcd_password[0])
		return -1;
	if (!strstr(out->ca, "-----BEGIN CERTIFICATE") ||
	    (out->etcd_ca[0] && !strstr(out->etcd_ca, "-----BEGIN CERTIFICATE")))
		return -1;
	return 0;
}

int dm_cluster_token_decode(struct dm_cluster_token *out, const char *text, struct dm_err *err)
{
	const size_t plen = strlen(DM_CLUSTER_TOKEN_PREFIX);
	struct dm_buf b;
	json_t *doc = NULL;
	bool old;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!text || strncmp(text, DM_CLUSTER_TOKEN_PREFIX, plen) != 0)
		return dm_err_set(err, DM_EINVAL,
				  "not a join token (it starts with '%s'); print one with "
				  "'dm cluster join-token' on a node of the cluster",
				  DM_CLUSTER_TOKEN_PREFIX);
	if (strlen(text) > DM_CLUSTER_TOKEN_MAX)
		return dm_err_set(err, DM_EINVAL, "the join token is too long");
	dm_buf_init(&b, DM_CLUSTER_TOKEN_MAX);
	rc = dm_base64_decode(&b, text + plen, strlen(text + plen), true, err);
	if (!rc) {
		doc = json_loadb((const char *)b.data, b.len, JSON_REJECT_DUPLICATES, NULL);
		rc = decode_fields(out, doc) ? DM_EINVAL : 0;
	}
	old = json_is_object(doc) && json_object_get(doc, "key");
	json_decref(doc);
	dm_buf_release_secret(&b);
	if (rc && old) {
		memset(out, 0, sizeof(*out));
		return dm_err_set(err, DM_EINVAL,
				  "this join token is of an older dm (it carries the admin key); "
				  "print a new one with 'dm cluster join-token' on the node that "
				  "made the cluster");
	}
	if (rc) {
		memset(out, 0, sizeof(*out));
		return dm_err_set(err, DM_EINVAL,
				  "the join token is damaged (copy it whole, as "
				  "'dm cluster join-token' prints it)");
	}
	return 0;
}

/* ---- the cluster record ---- */

int dm_cluster_id(struct dm_kv *kv, char *id_out, struct dm_err *err)
{
	struct dm_kv_kv rec;
	json_t *doc = NULL;
	int rc;

	dm_kv_kv_init(&rec);
	rc = dm_kv_get(kv, &rec, DM_KV_CLUSTER, err);
	if (rc == DM_ENOTFOUND)
		rc = dm_err_set(err, DM_ENOTFOUND, "the KV holds no dm cluster");
	if (!rc) {
		doc = json_loadb(rec.value, rec.value_len, 0, NULL);
		if (copy_field(id_out, DM_UUID_LEN + 1, doc, "id"))
			rc = dm_err_set(err, DM_ECORRUPT, "the cluster record '%s' is malformed",
					DM_KV_CLUSTER);
	}
	json_decref(doc);
	dm_kv_kv_release(&rec);
	return rc;
}

int dm_cluster_create(struct dm_kv *kv, char *id_out, struct dm_err *err)
{
	int rc = dm_id_uuid4(id_out, err);

	return rc ? rc : dm_cluster_create_as(kv, id_out, err);
}

int dm_cluster_create_as(struct dm_kv *kv, const char *id, struct dm_err *err)
{
	char created[32], other[DM_UUID_LEN + 1];
	json_t *doc;
	char *text;
	int rc;

	now_text(created, sizeof(created));
	doc = json_pack("{s:s, s:s, s:i}", "id", id, "created", created, "format",
			CLUSTER_FORMAT);
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	rc = dm_kv_cas(kv, NULL, DM_KV_CLUSTER, 0, text, strlen(text), 0, err);
	free(text);
	if (rc == DM_ECONFLICT) {
		if (dm_cluster_id(kv, other, err) == 0)
			return dm_err_set(
				err, DM_EEXISTS,
				"this KV holds dm cluster %s already; add this node to it "
				"with 'dm cluster join TOKEN' (a node prints the token with "
				"'dm cluster join-token')",
				other);
		return dm_err_set(err, DM_EEXISTS, "this KV holds a dm cluster already");
	}
	return rc;
}

/* ---- this node ---- */

static int put_alive(struct dm_cluster *c, struct dm_err *err)
{
	char since[32], text[64];
	int64_t lease;
	int rc = dm_kv_lease_grant(c->kv, &lease, DM_CLUSTER_LEASE_TTL, err);

	if (rc)
		return rc;
	now_text(since, sizeof(since));
	snprintf(text, sizeof(text), "{\"since\":\"%s\"}", since);
	rc = dm_kv_put(c->kv, NULL, c->alive_key, text, strlen(text), lease, err);
	if (rc) {
		dm_kv_lease_revoke(c->kv, lease, NULL);
		return rc;
	}
	pthread_mutex_lock(&c->mu);
	c->lease = lease;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* Keeps the lease alive; when it has expired (the KV was out of reach for
 * longer than its TTL), grants a new one and says so. */
static void *keepalive_main(void *arg)
{
	struct dm_cluster *c = arg;
	struct dm_err err;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		struct timespec ts;
		int64_t lease = c->lease;
		int rc;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += DM_CLUSTER_KEEPALIVE_MS / 1000;
		ts.tv_nsec += (long)(DM_CLUSTER_KEEPALIVE_MS % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!c->stop && pthread_cond_timedwait(&c->cond, &c->mu, &ts) == 0)
			;
		if (c->stop)
			break;
		pthread_mutex_unlock(&c->mu);
		rc = dm_kv_lease_keepalive(c->kv, NULL, lease, &err);
		if (rc == DM_ENOTFOUND) {
			dm_warn("node %s: its liveness lease expired; registering again",
				c->node_id);
			rc = put_alive(c, &err);
		}
		if (rc)
			dm_warn("node %s: cannot keep its liveness lease: %s", c->node_id, err.msg);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static int put_node(struct dm_kv *kv, const struct dm_cluster_self *self, struct dm_err *err)
{
	char key[sizeof(DM_KV_NODES) + DM_UUID_LEN], joined[32];
	struct dm_kv_kv old;
	json_t *doc, *prev = NULL;
	char *text;
	int rc;

	snprintf(key, sizeof(key), "%s%s", DM_KV_NODES, self->node_id);
	now_text(joined, sizeof(joined));
	/* a node keeps the time it first joined */
	dm_kv_kv_init(&old);
	if (dm_kv_get(kv, &old, key, NULL) == 0) {
		prev = json_loadb(old.value, old.value_len, 0, NULL);
		if (json_is_string(json_object_get(prev, "joined")) &&
		    json_string_length(json_object_get(prev, "joined")) < sizeof(joined))
			snprintf(joined, sizeof(joined), "%s",
				 json_string_value(json_object_get(prev, "joined")));
	}
	json_decref(prev);
	dm_kv_kv_release(&old);
	doc = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", self->node_id, "address", self->address,
			"version", self->version, "engine", self->engine, "joined", joined);
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	rc = dm_kv_put(kv, NULL, key, text, strlen(text), 0, err);
	free(text);
	return rc;
}

int dm_cluster_start(struct dm_cluster **out, struct dm_kv *kv, const struct dm_cluster_self *self,
		     struct dm_err *err)
{
	struct dm_cluster *c;
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	rc = put_node(kv, self, err);
	if (rc)
		return dm_err_prefix(err, "cannot register node %s", self->node_id);
	c = dm_xcalloc(1, sizeof(*c));
	c->kv = kv;
	snprintf(c->node_id, sizeof(c->node_id), "%s", self->node_id);
	snprintf(c->alive_key, sizeof(c->alive_key), "%s%s", DM_KV_ALIVE, self->node_id);
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = put_alive(c, err);
	if (!rc && pthread_create(&c->thread, NULL, keepalive_main, c) != 0)
		rc = dm_err_set(err, DM_ENOMEM, "cannot start the keepalive thread");
	if (rc) {
		dm_cluster_free(c);
		return dm_err_prefix(err, "cannot register node %s", self->node_id);
	}
	c->thread_started = true;
	*out = c;
	return 0;
}

void dm_cluster_free(struct dm_cluster *c)
{
	struct dm_err err;

	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	if (c->thread_started)
		pthread_join(c->thread, NULL);
	if (c->lease && dm_kv_lease_revoke(c->kv, c->lease, &err) && err.code != DM_ENOTFOUND)
		dm_warn("node %s: cannot end its liveness lease: %s", c->node_id, err.msg);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* ---- listing ---- */

static int parse_node(struct dm_cluster_node *n, const struct dm_kv_kv *kv)
{
	json_t *doc = json_loadb(kv->value, kv->value_len, 0, NULL);
	int bad;

	memset(n, 0, sizeof(*n));
	bad = !json_is_object(doc) || copy_field(n->id, sizeof(n->id), doc, "id") ||
	      copy_field(n->address, sizeof(n->address), doc, "address") ||
	      copy_field(n->version, sizeof(n->version), doc, "version") ||
	      copy_field(n->engine, sizeof(n->engine), doc, "engine") ||
	      copy_field(n->joined, sizeof(n->joined), doc, "joined") ||
	      strcmp(kv->key + strlen(DM_KV_NODES), n->id) != 0;
	json_decref(doc);
	return bad ? -1 : 0;
}

static int node_cmp(const void *a, const void *b)
{
	const struct dm_cluster_node *x = a, *y = b;
	int c = strcmp(x->joined, y->joined);

	return c ? c : strcmp(x->id, y->id);
}

int dm_cluster_nodes(struct dm_kv *kv, struct dm_cluster_node **out, size_t *n_out,
		     struct dm_err *err)
{
	struct dm_kv_kvs nodes, alive;
	struct dm_cluster_node *list = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	*n_out = 0;
	dm_kv_kvs_init(&nodes);
	dm_kv_kvs_init(&alive);
	rc = dm_kv_range(kv, &nodes, DM_KV_NODES, 0, err);
	if (!rc)
		rc = dm_kv_range(kv, &alive, DM_KV_ALIVE, 0, err);
	if (!rc && nodes.len)
		list = dm_xcalloc(nodes.len, sizeof(*list));
	for (size_t i = 0; !rc && i < nodes.len; i++) {
		if (parse_node(&list[n], &nodes.items[i])) {
			dm_error("node record '%s' is malformed; leaving it out",
				 nodes.items[i].key);
			continue;
		}
		for (size_t j = 0; j < alive.len; j++)
			if (!strcmp(alive.items[j].key + strlen(DM_KV_ALIVE), list[n].id))
				list[n].alive = true;
		n++;
	}
	dm_kv_kvs_release(&nodes);
	dm_kv_kvs_release(&alive);
	if (rc) {
		free(list);
		return rc;
	}
	if (n)
		qsort(list, n, sizeof(*list), node_cmp);
	*out = list;
	*n_out = n;
	return 0;
}

int dm_cluster_node(struct dm_kv *kv, struct dm_cluster_node *out, const char *id,
		    struct dm_err *err)
{
	struct dm_cluster_node *list;
	size_t n;
	int rc = dm_cluster_nodes(kv, &list, &n, err);

	if (rc)
		return rc;
	rc = dm_err_set(err, DM_ENOTFOUND, "no node '%s' in this cluster", id);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i].id, id)) {
			*out = list[i];
			rc = 0;
			dm_err_clear(err);
		}
	free(list);
	return rc;
}

int dm_cluster_address_parse(char *host, size_t size, int *port, const char *address)
{
	const char *h = address, *colon;
	char *end;
	long p;

	if (h && !strncmp(h, "https://", 8))
		h += 8;
	else if (h && !strncmp(h, "http://", 7))
		h += 7;
	else
		return -1;
	colon = strrchr(h, ':');
	if (!colon || colon == h || (size_t)(colon - h) >= size)
		return -1;
	p = strtol(colon + 1, &end, 10);
	if (*end || p < 1 || p > 65535)
		return -1;
	memcpy(host, h, (size_t)(colon - h));
	host[colon - h] = '\0';
	*port = (int)p;
	return 0;
}

/* ---- deleting a dot from every node ---- */

int dm_cluster_name_id(struct dm_kv *kv, char *out, size_t size, const char *ns, const char *name,
		       struct dm_err *err)
{
	char key[256];
	struct dm_kv_kv rec;
	int rc;

	snprintf(key, sizeof(key), "/dm/names/%s/%s", ns, name);
	dm_kv_kv_init(&rec);
	rc = dm_kv_get(kv, &rec, key, err);
	if (!rc && (rec.value_len == 0 || rec.value_len >= size ||
		    !dm_name_part_valid(rec.value, rec.value_len)))
		rc = dm_err_set(err, DM_ECORRUPT, "name record '%s' is malformed", key);
	if (!rc)
		memcpy(out, rec.value, rec.value_len + 1);
	dm_kv_kv_release(&rec);
	return rc;
}

int dm_cluster_check_unused(struct dm_kv *kv, const char *id, const char *self, struct dm_err *err)
{
	struct dm_cluster_node *nodes;
	size_t n;
	int rc = dm_cluster_nodes(kv, &nodes, &n, err);

	for (size_t i = 0; !rc && i < n; i++) {
		char key[256];
		struct dm_kv_kv rec;
		json_t *doc, *count;

		if (!nodes[i].alive || !strcmp(nodes[i].id, self))
			continue;
		snprintf(key, sizeof(key), DM_KV_NODE_ROOT "%s/dots/%s", nodes[i].id, id);
		dm_kv_kv_init(&rec);
		if (dm_kv_get(kv, &rec, key, NULL) == 0) {
			doc = json_loadb(rec.value, rec.value_len, 0, NULL);
			count = json_object_get(doc, "containers");
			if (json_is_integer(count) && json_integer_value(count) > 0)
				rc = dm_err_set(err, DM_EBUSY,
						"the dot is in use by %lld container%s on node %s; "
						"stop %s first",
						(long long)json_integer_value(count),
						json_integer_value(count) == 1 ? "" : "s",
						nodes[i].id,
						json_integer_value(count) == 1 ? "it" : "them");
			json_decref(doc);
		}
		dm_kv_kv_release(&rec);
	}
	free(nodes);
	return rc;
}

int dm_cluster_mark_deleted(struct dm_kv *kv, const char *id, const char *ns, const char *name,
			    struct dm_err *err)
{
	char tomb[256], masters[256], nkey[256], when[32], *text;
	struct dm_kv_cmp cmp[1];
	struct dm_kv_op ops[3];
	struct dm_kv_kv rec;
	size_t nops = 0, ncmp = 0;
	json_t *doc;
	int rc;

	now_text(when, sizeof(when));
	doc = json_pack("{s:s, s:s, s:s}", "namespace", ns, "name", name, "deleted", when);
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	snprintf(tomb, sizeof(tomb), DM_KV_DELETED "%s", id);
	snprintf(masters, sizeof(masters), DM_KV_MASTERS "%s/", id);
	snprintf(nkey, sizeof(nkey), "/dm/names/%s/%s", ns, name);
	for (int attempt = 0; attempt < 10; attempt++) {
		nops = ncmp = 0;
		ops[nops++] = (struct dm_kv_op){DM_KV_OP_PUT, tomb, text, strlen(text), 0};
		ops[nops++] = (struct dm_kv_op){DM_KV_OP_DELETE_PREFIX, masters, NULL, 0, 0};
		dm_kv_kv_init(&rec);
		rc = dm_kv_get(kv, &rec, nkey, err);
		if (!rc && rec.value_len == strlen(id) && !memcmp(rec.value, id, rec.value_len)) {
			cmp[ncmp++] = (struct dm_kv_cmp){nkey, rec.mod_revision};
			ops[nops++] = (struct dm_kv_op){DM_KV_OP_DELETE, nkey, NULL, 0, 0};
		}
		dm_kv_kv_release(&rec);
		if (rc && rc != DM_ENOTFOUND)
			break;
		rc = dm_kv_txn(kv, NULL, cmp, ncmp, ops, nops, err);
		if (rc != DM_ECONFLICT)
			break; /* the name changed under us: read it again */
	}
	free(text);
	return rc;
}
