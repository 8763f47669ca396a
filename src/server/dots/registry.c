/*
 * registry.c - the registry actor: the map from dot id to dot.
 *
 * Invariants:
 *   - `dots` is touched only by the registry's handler (or by open and free,
 *     before and after the actor runs); readers use published snapshots.
 *   - A name maps to at most one dot: a create reserves /dm/names/NS/NAME
 *     with a compare-and-swap, and a name is released only by its dot's
 *     delete job, after its data is gone.
 *   - A dot stays in the map until it tells the registry it is gone, so a
 *     delete retried while it runs finds it and waits with the first.
 *
 * Messages: REG_CREATE (request; payload a struct dm_dot_name), REG_GONE
 * (plain; payload the dot id).
 */
#include "server/dots/registry.h"
#include "actor/actor.h"
#include "kv/kv.h"
#include "util/buf.h"
#include "util/id.h"
#include "util/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/banned.h"

#define GONE_KEEP 1024

enum { REG_CREATE = 1, REG_GONE = 2 };

struct dm_registry {
	struct dm_dot_env env;
	struct dm_actor *actor;
	/* owned by the actor */
	size_t n;
	struct dm_registry_entry *dots;
	size_t ngone;
	char (*gone)[DM_DOT_ID_MAX + 1];
	/* the published snapshot; mu guards only the pointer swap */
	pthread_mutex_t mu;
	struct dm_registry_snap *snap;
};

static int entry_cmp(const void *a, const void *b)
{
	const struct dm_registry_entry *x = a, *y = b;
	int c = strcmp(x->name.ns, y->name.ns);

	return c ? c : strcmp(x->name.name, y->name.name);
}

void dm_registry_snap_unref(struct dm_registry_snap *s)
{
	if (!s || atomic_fetch_sub((atomic_int *)&s->refs, 1) != 1)
		return;
	for (size_t i = 0; i < s->n; i++)
		dm_dot_handle_unref(s->e[i].dot);
	free(s->e);
	free(s->gone);
	free(s);
}

static void publish(struct dm_registry *r)
{
	struct dm_registry_snap *s = dm_xcalloc(1, sizeof(*s)), *old;

	atomic_init((atomic_int *)&s->refs, 1);
	s->n = r->n;
	s->e = dm_xcalloc(r->n ? r->n : 1, sizeof(*s->e));
	if (r->n)
		memcpy(s->e, r->dots, r->n * sizeof(*s->e));
	for (size_t i = 0; i < s->n; i++)
		dm_dot_handle_ref(s->e[i].dot);
	qsort(s->e, s->n, sizeof(*s->e), entry_cmp);
	s->ngone = r->ngone;
	s->gone = dm_xcalloc(r->ngone ? r->ngone : 1, sizeof(*s->gone));
	if (r->ngone)
		memcpy(s->gone, r->gone, r->ngone * sizeof(*s->gone));
	pthread_mutex_lock(&r->mu);
	old = r->snap;
	r->snap = s;
	pthread_mutex_unlock(&r->mu);
	dm_registry_snap_unref(old);
}

struct dm_registry_snap *dm_registry_snapshot(struct dm_registry *r)
{
	struct dm_registry_snap *s;

	pthread_mutex_lock(&r->mu);
	s = r->snap;
	atomic_fetch_add((atomic_int *)&s->refs, 1);
	pthread_mutex_unlock(&r->mu);
	return s;
}

const struct dm_registry_entry *dm_registry_find(const struct dm_registry_snap *s,
						 const struct dm_dot_name *name)
{
	struct dm_registry_entry key;

	memset(&key, 0, sizeof(key));
	key.name = *name;
	return bsearch(&key, s->e, s->n, sizeof(*s->e), entry_cmp);
}

const struct dm_registry_entry *dm_registry_find_id(const struct dm_registry_snap *s,
						    const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->e[i].id, id))
			return &s->e[i];
	return NULL;
}

struct dm_dot_handle *dm_registry_handle_of(struct dm_registry *r, const char *id)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(r);
	const struct dm_registry_entry *e = dm_registry_find_id(snap, id);
	struct dm_dot_handle *h = e ? e->dot : NULL;

	if (h)
		dm_dot_handle_ref(h);
	dm_registry_snap_unref(snap);
	return h;
}

bool dm_registry_was_deleted(const struct dm_registry_snap *s, const char *id)
{
	for (size_t i = 0; i < s->ngone; i++)
		if (!strcmp(s->gone[i], id))
			return true;
	return false;
}

const struct dm_dot_env *dm_registry_env(const struct dm_registry *r)
{
	return &r->env;
}

static void add_dot(struct dm_registry *r, struct dm_dot_handle *h, const char *id,
		    const struct dm_dot_name *name)
{
	struct dm_registry_entry *e;

	r->dots = dm_xrealloc(r->dots, (r->n + 1) * sizeof(*r->dots));
	e = &r->dots[r->n++];
	e->name = *name;
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->dot = h;
}

struct create_req {
	struct dm_dot_name name;
	char id[DM_DOT_ID_MAX + 1]; /* "" for a new id */
};

/*
 * In a cluster, a name is the cluster's: DM_KV_NAMES NS/NAME maps it to
 * one dot id for every node, beside each node's own name for its copy.
 * A new dot reserves it; a copy of a dot another node made (id given)
 * finds it reserved for that id, or — a clone from another cluster —
 * reserves it.
 */
static int reserve_cluster_name(struct dm_registry *r, const struct dm_dot_name *name,
				const char *id, bool *made, struct dm_err *err)
{
	char key[256], tomb[256], shown[DM_DOT_NAME_TEXT_MAX];
	struct dm_kv_cmp cmps[2];
	struct dm_kv_op op;
	struct dm_kv_kv kv;
	int rc;

	*made = false;
	if (!strcmp(dm_dot_kv_root(&r->env), DM_KV_ROOT))
		return 0; /* one node: its names are the cluster's */
	snprintf(key, sizeof(key), DM_KV_NAMES "%s/%s", name->ns, name->name);
	snprintf(tomb, sizeof(tomb), DM_KV_DELETED "%s", id);
	/* a dot deleted from the cluster never takes a name again (a copy
	 * being made from it as it is deleted) */
	cmps[0] = (struct dm_kv_cmp){key, 0};
	cmps[1] = (struct dm_kv_cmp){tomb, 0};
	op = (struct dm_kv_op){DM_KV_OP_PUT, key, id, strlen(id), 0};
	rc = dm_kv_txn(r->env.kv, NULL, cmps, 2, &op, 1, err);
	*made = rc == 0;
	if (rc != DM_ECONFLICT)
		return rc;
	rc = dm_registry_is_deleted(r->env.kv, id, err);
	if (rc)
		return rc == 1 ? dm_err_set(err, DM_ENOTFOUND, "dot '%s' (%s) was deleted",
					    dm_dot_name_text(shown, name), id)
			       : rc;
	dm_kv_kv_init(&kv);
	rc = dm_kv_get(r->env.kv, &kv, key, err);
	if (!rc && (kv.value_len != strlen(id) || memcmp(kv.value, id, kv.value_len)))
		rc = dm_err_set(err, DM_EEXISTS, "dot '%s' exists", dm_dot_name_text(shown, name));
	dm_kv_kv_release(&kv);
	return rc == DM_ENOTFOUND
		       ? dm_err_set(err, DM_EBUSY, "dot '%s' is being deleted; try again",
				    dm_dot_name_text(shown, name))
		       : rc;
}

/* Gives back the cluster's name a failed create reserved (reserve_cluster_name
 * said it made it), while it still names id. */
static void release_cluster_name(struct dm_registry *r, const struct dm_dot_name *name,
				 const char *id)
{
	char key[256];
	struct dm_kv_kv kv;

	if (!strcmp(dm_dot_kv_root(&r->env), DM_KV_ROOT))
		return;
	snprintf(key, sizeof(key), DM_KV_NAMES "%s/%s", name->ns, name->name);
	dm_kv_kv_init(&kv);
	if (dm_kv_get(r->env.kv, &kv, key, NULL) == 0 && kv.value_len == strlen(id) &&
	    !memcmp(kv.value, id, kv.value_len)) {
		struct dm_kv_cmp cmp = {key, kv.mod_revision};
		struct dm_kv_op op = {DM_KV_OP_DELETE, key, NULL, 0, 0};

		dm_kv_txn(r->env.kv, NULL, &cmp, 1, &op, 1, NULL);
	}
	dm_kv_kv_release(&kv);
}

/* REG_CREATE: reserve the name, start the dot, hand the request on. */
static int on_create(struct dm_registry *r, struct dm_msg *msg)
{
	const struct create_req *cr = msg->payload;
	const struct dm_dot_name *name = &cr->name;
	char key[256], id[DM_DOT_ID_MAX + 1], shown[DM_DOT_NAME_TEXT_MAX];
	struct dm_dot_handle *h = NULL;
	struct dm_err err;
	bool made_name = false;
	int rc;

	dm_dot_name_text(shown, name);
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->dots[i].name.ns, name->ns) ||
		    strcmp(r->dots[i].name.name, name->name))
			continue;
		struct dm_dot_view *v = dm_dot_handle_view(r->dots[i].dot);
		bool deleting = v->state == DM_DOT_DELETING;

		dm_dot_view_unref(v);
		if (deleting)
			dm_msg_reply_err(msg, DM_EBUSY,
					 "dot '%s' is being deleted; try again in a moment", shown);
		else
			dm_msg_reply_err(msg, DM_EEXISTS, "dot '%s' exists", shown);
		return 0;
	}
	if (cr->id[0]) {
		/* a dot that exists elsewhere (a clone, a push): it keeps its id */
		for (size_t i = 0; i < r->n; i++) {
			if (strcmp(r->dots[i].id, cr->id))
				continue;
			char other[DM_DOT_NAME_TEXT_MAX];

			dm_msg_reply_err(msg, DM_EEXISTS, "this dot already exists here as '%s'",
					 dm_dot_name_text(other, &r->dots[i].name));
			return 0;
		}
		snprintf(id, sizeof(id), "%s", cr->id);
		rc = 0;
	} else {
		rc = dm_id_uuid4(id, &err);
	}
	if (!rc)
		rc = reserve_cluster_name(r, name, id, &made_name, &err);
	if (!rc) {
		dm_dot_kv_key(key, sizeof(key), &r->env, "names/%s/%s", name->ns, name->name);
		rc = dm_kv_cas(r->env.kv, NULL, key, 0, id, strlen(id), 0, &err);
		if (rc == DM_ECONFLICT)
			rc = dm_err_set(&err, DM_EEXISTS, "dot '%s' exists", shown);
	}
	if (!rc)
		rc = dm_dot_start(&h, &r->env, id, name, DM_DOT_CREATING, "master", NULL, NULL,
				  NULL, &err);
	if (rc) {
		if (made_name)
			release_cluster_name(r, name, id);
		dm_msg_reply_err(msg, rc, "%s", err.msg);
		return 0;
	}
	add_dot(r, h, id, name);
	publish(r);
	/* the dot answers the creator once its working copy exists */
	if (msg->free_payload)
		msg->free_payload(msg->payload);
	msg->payload = dm_dot_req_new(DM_DOT_OP_CREATE);
	msg->free_payload = dm_dot_req_free;
	dm_actor_post(dm_dot_handle_actor(h), msg);
	return DM_ACTOR_KEEP;
}

static void on_gone(struct dm_registry *r, const char *id)
{
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->dots[i].id, id))
			continue;
		struct dm_dot_handle *h = r->dots[i].dot;

		r->dots[i] = r->dots[--r->n];
		if (r->ngone == GONE_KEEP) {
			memmove(r->gone, r->gone + 1, (GONE_KEEP - 1) * sizeof(*r->gone));
			r->ngone--;
		}
		r->gone = dm_xrealloc(r->gone, (r->ngone + 1) * sizeof(*r->gone));
		snprintf(r->gone[r->ngone++], sizeof(*r->gone), "%s", id);
		publish(r);
		dm_dot_handle_unref(h); /* the last reference stops the actor */
		return;
	}
}

static int handle(struct dm_actor *self, struct dm_msg *msg)
{
	struct dm_registry *r = dm_actor_user(self);

	switch (msg->type) {
	case REG_CREATE:
		return on_create(r, msg);
	case REG_GONE:
		on_gone(r, msg->payload);
		return 0;
	default:
		return 0;
	}
}

void dm_registry_dot_gone(struct dm_actor *registry, const char *id)
{
	if (registry)
		dm_actor_post(registry, dm_msg_new(REG_GONE, dm_xstrdup(id), free));
}

static struct dm_msg *create_msg(const struct dm_dot_name *name, const char *id)
{
	struct create_req *cr = dm_xcalloc(1, sizeof(*cr));

	cr->name = *name;
	if (id)
		snprintf(cr->id, sizeof(cr->id), "%s", id);
	return dm_msg_new(REG_CREATE, cr, free);
}

void dm_registry_create_send(struct dm_registry *r, struct dm_ticket **out,
			     const struct dm_dot_name *name, const char *id)
{
	dm_actor_send_request(out, r->actor, create_msg(name, id));
}

int dm_registry_create(struct dm_registry *r, json_t **result, const struct dm_dot_name *name,
		       const char *id, int timeout_ms, struct dm_err *err)
{
	struct dm_msg *reply = NULL;
	int rc;

	if (id && (strlen(id) > DM_DOT_ID_MAX || !dm_name_part_valid(id, strlen(id))))
		return dm_err_set(err, DM_EINVAL, "invalid dot id '%.40s'", id);
	rc = dm_actor_call(&reply, r->actor, create_msg(name, id), timeout_ms, err);
	if (rc == DM_ETIMEOUT)
		dm_err_set(err, rc, "timed out after %d ms creating dot '%s'", timeout_ms,
			   name->name);
	if (!rc) {
		*result = reply->payload ? reply->payload : json_object();
		reply->payload = NULL;
	}
	dm_msg_free(reply);
	return rc;
}

/* ---- loading ---- */

/* Groups the KV's /dm/dots/ keys by dot id: {id: {"dot": {...}, "branches": {...}}}. */
static int read_dots(json_t *out, const struct dm_dot_env *env, struct dm_err *err)
{
	struct dm_kv_kvs all;
	char prefix[256];
	size_t plen;
	int rc;

	dm_dot_kv_key(prefix, sizeof(prefix), env, "dots/");
	plen = strlen(prefix);
	dm_kv_kvs_init(&all);
	rc = dm_kv_range(env->kv, &all, prefix, 0, err);
	for (size_t i = 0; !rc && i < all.len; i++) {
		const char *rest = all.items[i].key + plen, *slash = strchr(rest, '/');
		char id[DM_DOT_ID_MAX + 1];
		size_t idlen = slash ? (size_t)(slash - rest) : strlen(rest);
		json_t *value = json_loadb(all.items[i].value, all.items[i].value_len, 0, NULL),
		       *dot;

		if (!value || idlen == 0 || idlen > DM_DOT_ID_MAX) {
			json_decref(value);
			rc = dm_err_set(err, DM_ECORRUPT, "corrupt dot record '%s' in the KV",
					all.items[i].key);
			break;
		}
		memcpy(id, rest, idlen);
		id[idlen] = '\0';
		dot = json_object_get(out, id);
		if (!dot) {
			dot = json_pack("{s:o, s:{}, s:{}}", "dot", json_null(), "branches",
					"pending");
			json_object_set_new(out, id, dot);
		}
		if (!slash)
			json_object_set_new(dot, "dot", value);
		else if (!strncmp(slash, "/branches/", 10))
			json_object_set_new(json_object_get(dot, "branches"), slash + 10, value);
		else if (!strncmp(slash, "/pending/", 9))
			json_object_set_new(json_object_get(dot, "pending"), slash + 9, value);
		else
			json_decref(value);
	}
	dm_kv_kvs_release(&all);
	return rc;
}

static int load_dots(struct dm_registry *r, struct dm_err *err)
{
	json_t *dots = json_object(), *v;
	const char *id;
	int rc = read_dots(dots, &r->env, err);

	json_object_foreach(dots, id, v)
	{
		json_t *rec = json_object_get(v, "dot");
		const char *ns = json_string_value(json_object_get(rec, "namespace"));
		const char *name = json_string_value(json_object_get(rec, "name"));
		const char *state = json_string_value(json_object_get(rec, "state"));
		const char *current = json_string_value(json_object_get(rec, "current"));
		struct dm_dot_name dn;
		struct dm_dot_handle *h = NULL;
		char full[2 * DM_NAME_PART_MAX + 2];
		int st;

		if (rc)
			break;
		if (!ns || !name || !state) {
			dm_warn("registry: ignoring dot %s without a record", id);
			continue;
		}
		snprintf(full, sizeof(full), "%s/%s", ns, name);
		if (dm_dot_name_parse(&dn, full, err)) {
			rc = dm_err_prefix(err, "dot %s in the KV", id);
			break;
		}
		/* a dot left half-made by a crash is cleaned up like a deleted one */
		st = !strcmp(state, "ready") ? DM_DOT_READY : DM_DOT_DELETING;
		rc = dm_dot_start(&h, &r->env, id, &dn, st, current, json_object_get(v, "branches"),
				  rec, json_object_get(v, "pending"), err);
		if (rc)
			break;
		add_dot(r, h, id, &dn);
	}
	json_decref(dots);
	return rc;
}

int dm_registry_open(struct dm_registry **out, const struct dm_dot_env *env, struct dm_err *err)
{
	struct dm_registry *r = dm_xcalloc(1, sizeof(*r));
	int rc;

	r->env = *env;
	pthread_mutex_init(&r->mu, NULL);
	rc = dm_actor_new(&r->actor, env->sched, "registry", handle, r, NULL, err);
	if (rc) {
		pthread_mutex_destroy(&r->mu);
		free(r);
		return rc;
	}
	r->env.registry = r->actor;
	rc = load_dots(r, err);
	publish(r);
	if (rc) {
		dm_registry_free(r);
		return rc;
	}
	dm_info("registry: %zu dots", r->n);
	*out = r;
	return 0;
}

int dm_registry_is_deleted(struct dm_kv *kv, const char *id, struct dm_err *err)
{
	char key[256];
	struct dm_kv_kv rec;
	int rc;

	snprintf(key, sizeof(key), DM_KV_DELETED "%s", id);
	dm_kv_kv_init(&rec);
	rc = dm_kv_get(kv, &rec, key, err);
	dm_kv_kv_release(&rec);
	return rc == DM_ENOTFOUND ? 0 : rc ? rc : 1;
}

void dm_registry_free(struct dm_registry *r)
{
	if (!r)
		return;
	dm_actor_stop(r->actor);
	for (size_t i = 0; i < r->n; i++) {
		dm_actor_stop(dm_dot_handle_actor(r->dots[i].dot));
		dm_dot_handle_unref(r->dots[i].dot);
	}
	free(r->dots);
	free(r->gone);
	dm_registry_snap_unref(r->snap);
	dm_actor_unref(r->actor);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
