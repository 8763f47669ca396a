/*
 * backup.c - `dm cluster backup` and `dm cluster restore`: the cluster's
 * state out of the KV as one document (backup.h), and into another KV.
 *
 * Invariants: a backup is one dm_kv_range of /dm/, so it is the state at
 * one revision; it leaves out what lives only while a node runs (its
 * liveness, its record, its containers) and read-only copies of commits
 * (a node's own disk). A restore writes only into a KV no dmd uses and
 * that holds no dots, and writes a dot only when this node's store has
 * every head it names (else the dot could not start, and would stop the
 * node from starting); an existing user is never overwritten. Keys are
 * laid out as the server lays them out (docs/internals/kv.md,
 * cluster.md): on one node a dot's records are under /dm/, on etcd under
 * /dm/n/NODE/, with the cluster's name under /dm/names/ and its masters
 * under /dm/masters/.
 */
#include "server/cluster/backup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/kv.h"
#include "server/cluster/cluster.h"
#include "server/dots/dot.h"
#include "store/store.h"
#include "util/log.h"

#include "util/banned.h"

static void now_text(char *out, size_t size)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool prefixed(const char *key, const char *prefix, const char **rest)
{
	size_t n = strlen(prefix);

	if (strncmp(key, prefix, n))
		return false;
	*rest = key + n;
	return true;
}

/* ---- backup ---------------------------------------------------------- */

/*
 * One node's copies of the dots: ROOT dots/ID[/branches/B | /pending/C],
 * into copies {ID: {"record", "branches", "pending"}}.
 */
static void add_copy(json_t *copies, const char *rest, json_t *value)
{
	const char *slash = strchr(rest, '/');
	char id[DM_DOT_ID_MAX + 1];
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	json_t *c;

	if (!n || n > DM_DOT_ID_MAX) {
		json_decref(value);
		return;
	}
	memcpy(id, rest, n);
	id[n] = '\0';
	c = json_object_get(copies, id);
	if (!c) {
		c = json_pack("{s:n, s:{}, s:{}}", "record", "branches", "pending");
		json_object_set_new(copies, id, c);
	}
	if (!slash)
		json_object_set_new(c, "record", value);
	else if (!strncmp(slash, "/branches/", 10) && slash[10])
		json_object_set_new(json_object_get(c, "branches"), slash + 10, value);
	else if (!strncmp(slash, "/pending/", 9) && slash[9])
		json_object_set_new(json_object_get(c, "pending"), slash + 9, value);
	else
		json_decref(value);
}

/* The node's copies of a root ("/dm/" or "/dm/n/NODE/") in nodes. */
static json_t *copies_of(json_t *nodes, const char *node)
{
	json_t *c = json_object_get(nodes, node);

	if (!c) {
		c = json_object();
		json_object_set_new(nodes, node, c);
	}
	return c;
}

/* A record as the backup keeps it: what only a running node knows goes. */
static json_t *clean_record(json_t *rec)
{
	json_t *r = json_deep_copy(rec);

	json_object_del(r, "containers");
	json_object_del(r, "commit_mounts");
	return r;
}

/* The dots of nodes ({NODE: copies}), each from the copy of the node that
 * masters its master branch (else any), each branch from its master's. */
static json_t *pick_dots(json_t *nodes, json_t *masters)
{
	json_t *dots = json_array(), *seen = json_object(), *copies, *c;
	const char *node, *id;

	json_object_foreach(nodes, node, copies)
	{
		json_object_foreach(copies, id, c)
		{
			char key[DM_DOT_ID_MAX + 8];
			json_t *m = json_object_get(masters, id), *best = c, *rec, *branches, *b,
			       *d;
			const char *master = json_string_value(json_object_get(m, "master")), *bn;
			const char *state;

			if (json_object_get(seen, id))
				continue;
			json_object_set_new(seen, id, json_true());
			if (master && json_object_get(json_object_get(nodes, master), id))
				best = json_object_get(json_object_get(nodes, master), id);
			rec = json_object_get(best, "record");
			state = json_string_value(json_object_get(rec, "state"));
			if (!json_is_object(rec) || !state || strcmp(state, "ready"))
				continue; /* half made, or being deleted */
			branches = json_object();
			json_object_foreach(json_object_get(best, "branches"), bn, b)
			{
				const char *bm = json_string_value(json_object_get(m, bn));
				json_t *own = bm ? json_object_get(
							   json_object_get(
								   json_object_get(nodes, bm), id),
							   "branches")
						 : NULL;

				json_object_set(branches, bn,
						json_object_get(own, bn) ? json_object_get(own, bn)
									 : b);
			}
			snprintf(key, sizeof(key), "%s", id);
			d = json_pack("{s:s, s:O, s:O, s:o, s:O, s:O}", "id", key, "namespace",
				      json_object_get(rec, "namespace"), "name",
				      json_object_get(rec, "name"), "record", clean_record(rec),
				      "branches", branches, "pending",
				      json_object_get(best, "pending"));
			json_decref(branches);
			if (d && m)
				json_object_set(d, "masters", m);
			json_array_append_new(dots, d);
		}
	}
	json_decref(seen);
	return dots;
}

int dm_cluster_backup(json_t **out, struct dm_kv *kv, const char *kv_name, const char *cluster_id,
		      struct dm_err *err)
{
	struct dm_kv_kvs all;
	json_t *users = json_array(), *volumes = json_array(), *deleted = json_array();
	json_t *nodes = json_object(), *masters = json_object();
	char created[32];
	int rc;

	*out = NULL;
	dm_kv_kvs_init(&all);
	rc = dm_kv_range(kv, &all, DM_KV_ROOT, 0, err);
	for (size_t i = 0; !rc && i < all.len; i++) {
		const struct dm_kv_kv *k = &all.items[i];
		json_t *v = json_loadb(k->value, k->value_len, JSON_DECODE_ANY, NULL);
		const char *rest;

		if (!v) /* a bare id (a name's, a master's) */
			v = json_stringn(k->value, k->value_len);
		if (!v || k->lease) { /* what a node's lease holds lives with it */
			json_decref(v);
			continue;
		}
		if (prefixed(k->key, DM_KV_USERS, &rest)) {
			json_array_append_new(users,
					      json_pack("{s:s, s:o}", "name", rest, "record", v));
		} else if (prefixed(k->key, DM_KV_VOLUMES, &rest)) {
			json_array_append_new(volumes,
					      json_pack("{s:s, s:o}", "name", rest, "record", v));
		} else if (prefixed(k->key, DM_KV_DELETED, &rest)) {
			json_array_append_new(deleted,
					      json_pack("{s:s, s:o}", "id", rest, "record", v));
		} else if (prefixed(k->key, DM_KV_MASTERS, &rest) && strchr(rest, '/') &&
			   json_is_string(v)) {
			char id[DM_DOT_ID_MAX + 1];
			size_t n = (size_t)(strchr(rest, '/') - rest);

			if (n && n <= DM_DOT_ID_MAX) {
				json_t *m;

				memcpy(id, rest, n);
				id[n] = '\0';
				m = json_object_get(masters, id);
				if (!m) {
					m = json_object();
					json_object_set_new(masters, id, m);
				}
				json_object_set(m, rest + n + 1, v);
			}
			json_decref(v);
		} else if (prefixed(k->key, DM_KV_NODE_ROOT, &rest) && strchr(rest, '/')) {
			/* etcd: /dm/n/NODE/dots/... */
			char node[DM_UUID_LEN + 1];
			size_t n = (size_t)(strchr(rest, '/') - rest);
			const char *sub;

			if (n && n <= DM_UUID_LEN && prefixed(rest + n, "/dots/", &sub)) {
				memcpy(node, rest, n);
				node[n] = '\0';
				add_copy(copies_of(nodes, node), sub, v);
			} else {
				json_decref(v);
			}
		} else if (prefixed(k->key, DM_KV_DOTS, &rest)) {
			add_copy(copies_of(nodes, ""), rest, v); /* one node: its root is /dm/ */
		} else {
			json_decref(
				v); /* names (made again from the records), nodes, the cluster */
		}
	}
	if (!rc) {
		now_text(created, sizeof(created));
		*out = json_pack("{s:s, s:i, s:s, s:{s:s, s:s, s:I}, s:o, s:o, s:o, s:o}", "format",
				 DM_BACKUP_FORMAT, "version", DM_BACKUP_VERSION, "created", created,
				 "from", "cluster", cluster_id, "kv", kv_name, "revision",
				 (json_int_t)all.revision, "users", users, "volumes", volumes,
				 "deleted", deleted, "dots", pick_dots(nodes, masters));
		users = volumes = deleted = NULL;
		if (!*out)
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	json_decref(users);
	json_decref(volumes);
	json_decref(deleted);
	json_decref(nodes);
	json_decref(masters);
	dm_kv_kvs_release(&all);
	return rc;
}

/* ---- restore --------------------------------------------------------- */

/* Writes v (a string as its bytes, anything else as compact JSON) at key,
 * only when the key is absent (only_new) or whatever it holds. */
static int put_value(struct dm_kv *kv, const char *key, json_t *v, bool only_new, bool *written,
		     struct dm_err *err)
{
	char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	const char *bytes = json_is_string(v) ? json_string_value(v) : text;
	size_t len = json_is_string(v) ? json_string_length(v) : (text ? strlen(text) : 0);
	int rc;

	if (!bytes)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	rc = only_new ? dm_kv_cas(kv, NULL, key, 0, bytes, len, 0, err)
		      : dm_kv_put(kv, NULL, key, bytes, len, 0, err);
	free(text);
	if (written)
		*written = rc == 0;
	if (rc == DM_ECONFLICT && only_new)
		rc = 0;
	return rc;
}

/* Whether any key starts with prefix. */
static int any_key(bool *out, struct dm_kv *kv, const char *prefix, struct dm_err *err)
{
	struct dm_kv_kvs l;
	int rc;

	dm_kv_kvs_init(&l);
	rc = dm_kv_range(kv, &l, prefix, 1, err);
	*out = !rc && l.len > 0;
	dm_kv_kvs_release(&l);
	return rc;
}

/* Why dot d cannot be restored on this node, or NULL: a head it names
 * that neither the store nor its pending commits have. */
static const char *missing_head(struct dm_restore *r, json_t *d, char *buf, size_t size)
{
	const char *id = json_string_value(json_object_get(d, "id")), *bn;
	json_t *b, *pending = json_object_get(d, "pending");

	json_object_foreach(json_object_get(d, "branches"), bn, b)
	{
		const char *head = json_string_value(json_object_get(b, "head"));
		dm_oid oid;

		if (!head || !*head || json_object_get(pending, head) ||
		    !dm_store_commit_get(r->store, id, head, &oid, NULL))
			continue;
		snprintf(buf, size,
			 "the head of its branch '%s' (%s) is not in this node's store: push the "
			 "dot "
			 "here from a server that has it",
			 bn, head);
		return buf;
	}
	return NULL;
}

/* The record of dot id under root, parsed, or NULL. */
static json_t *record_at(struct dm_kv *kv, const char *root, const char *id)
{
	struct dm_kv_kv k;
	char key[512];
	json_t *rec = NULL;

	dm_kv_kv_init(&k);
	snprintf(key, sizeof(key), "%sdots/%s", root, id);
	if (!dm_kv_get(kv, &k, key, NULL))
		rec = json_loadb(k.value, k.value_len, 0, NULL);
	dm_kv_kv_release(&k);
	return rec;
}

/* The id the name points to under root, into out ("" none). */
static void name_at(char *out, size_t size, struct dm_kv *kv, const char *root,
		    const struct dm_dot_name *n)
{
	struct dm_kv_kv k;
	char key[512];

	out[0] = '\0';
	dm_kv_kv_init(&k);
	snprintf(key, sizeof(key), "%snames/%s/%s", root, n->ns, n->name);
	if (!dm_kv_get(kv, &k, key, NULL))
		snprintf(out, size, "%.*s", (int)k.value_len, k.value);
	dm_kv_kv_release(&k);
}

/* A dot the node has already (pushed here before the restore, as dotmesh's
 * backups were restored): what only the cluster state knew comes back
 * into its record (owner, collaborators, hooks, fork); its name, branches
 * and data stay. */
static int merge_dot(struct dm_restore *r, json_t *d, json_t *have, const char *root,
		     struct dm_err *err)
{
	static const char *const kept[] = {"owner",   "collaborators", "hooks",
					   "fork_of", "strip_setid",   NULL};
	json_t *rec = json_object_get(d, "record");
	char key[512];
	int rc;

	for (size_t i = 0; kept[i]; i++) {
		json_t *v = json_object_get(rec, kept[i]);

		if (v)
			json_object_set(have, kept[i], v);
	}
	snprintf(key, sizeof(key), "%sdots/%s", root, json_string_value(json_object_get(d, "id")));
	rc = put_value(r->kv, key, have, false, NULL, err);
	if (!rc)
		r->merged++;
	return rc;
}

static int restore_dot(struct dm_restore *r, json_t *d, const char *root, bool etcd,
		       struct dm_err *err)
{
	const char *id = json_string_value(json_object_get(d, "id"));
	const char *ns = json_string_value(json_object_get(d, "namespace"));
	const char *name = json_string_value(json_object_get(d, "name"));
	json_t *rec = json_object_get(d, "record"), *b, *clean;
	struct dm_dot_name dn;
	char key[1024], full[DM_DOT_NAME_TEXT_MAX], why[512];
	const char *k, *reason;
	int rc = 0;

	if (!id || !ns || !name || !json_is_object(rec) || strlen(id) > DM_DOT_ID_MAX ||
	    snprintf(full, sizeof(full), "%s/%s", ns, name) >= (int)sizeof(full) ||
	    dm_dot_name_parse(&dn, full, NULL)) {
		json_array_append_new(r->skipped,
				      json_pack("{s:s, s:s}", "dot", id ? id : "?", "why",
						"its entry in the backup is malformed"));
		return 0;
	}
	{
		json_t *have = record_at(r->kv, root, id);
		char other[DM_DOT_ID_MAX + 1];

		if (have) {
			rc = merge_dot(r, d, have, root, err);
			json_decref(have);
			return rc ? dm_err_prefix(err, "dot '%s'", full) : 0;
		}
		name_at(other, sizeof(other), r->kv, root, &dn);
		if (other[0]) {
			snprintf(why, sizeof(why), "its name is another dot's here (%s)", other);
			json_array_append_new(r->skipped,
					      json_pack("{s:s, s:s}", "dot", full, "why", why));
			return 0;
		}
	}
	reason = missing_head(r, d, why, sizeof(why));
	if (reason) {
		json_array_append_new(r->skipped,
				      json_pack("{s:s, s:s}", "dot", full, "why", reason));
		return 0;
	}
	clean = clean_record(rec);
	snprintf(key, sizeof(key), "%sdots/%s", root, id);
	rc = put_value(r->kv, key, clean, false, NULL, err);
	json_decref(clean);
	json_object_foreach(json_object_get(d, "branches"), k, b)
	{
		if (rc)
			break;
		snprintf(key, sizeof(key), "%sdots/%s/branches/%s", root, id, k);
		rc = put_value(r->kv, key, b, false, NULL, err);
		/* on etcd, this node masters what it restored, unless a node
		 * that restored before it does */
		if (!rc && etcd) {
			json_t *node = json_string(r->node_id);

			snprintf(key, sizeof(key), DM_KV_MASTERS "%s/%s", id, k);
			rc = put_value(r->kv, key, node, true, NULL, err);
			json_decref(node);
		}
	}
	json_object_foreach(json_object_get(d, "pending"), k, b)
	{
		if (rc)
			break;
		snprintf(key, sizeof(key), "%sdots/%s/pending/%s", root, id, k);
		rc = put_value(r->kv, key, b, false, NULL, err);
	}
	if (!rc) {
		json_t *v = json_string(id);

		snprintf(key, sizeof(key), "%snames/%s/%s", root, dn.ns, dn.name);
		rc = put_value(r->kv, key, v, false, NULL, err);
		if (!rc && etcd) {
			snprintf(key, sizeof(key), DM_KV_NAMES "%s/%s", dn.ns, dn.name);
			rc = put_value(r->kv, key, v, true, NULL, err);
		}
		json_decref(v);
	}
	if (!rc)
		r->dots++;
	return rc ? dm_err_prefix(err, "dot '%s'", full) : 0;
}

int dm_cluster_restore(struct dm_restore *r, json_t *backup, struct dm_err *err)
{
	bool etcd = !strcmp(r->kv_name, "etcd"), alive = false;
	char root[256], key[1024], have[DM_UUID_LEN + 1];
	const char *format = json_string_value(json_object_get(backup, "format"));
	json_t *e;
	size_t i;
	int rc;

	r->users = r->users_kept = r->dots = r->merged = r->volumes = 0;
	r->skipped = json_array();
	if (!format || strcmp(format, DM_BACKUP_FORMAT) ||
	    !json_is_integer(json_object_get(backup, "version")))
		return dm_err_set(err, DM_EINVAL, "this is not a backup of a dm cluster");
	if (json_integer_value(json_object_get(backup, "version")) > DM_BACKUP_VERSION)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "the backup is of version %lld; this dmd reads version %d: "
				  "restore it with a newer dmd",
				  (long long)json_integer_value(json_object_get(backup, "version")),
				  DM_BACKUP_VERSION);
	snprintf(root, sizeof(root), "%s", etcd ? "" : DM_KV_ROOT);
	if (etcd)
		snprintf(root, sizeof(root), DM_KV_NODE_ROOT "%s/", r->node_id);
	rc = any_key(&alive, r->kv, DM_KV_ALIVE, err);
	if (!rc && alive)
		return dm_err_set(err, DM_EBUSY,
				  "a node of the cluster is running: stop every node first "
				  "(dm cluster stop on each)");
	if (rc)
		return rc;
	/* a KV that lost everything lost the cluster's record too */
	if (r->cluster_id[0] && dm_cluster_id(r->kv, have, NULL) == DM_ENOTFOUND &&
	    (rc = dm_cluster_create_as(r->kv, r->cluster_id, err)))
		return rc;
	json_array_foreach(json_object_get(backup, "users"), i, e)
	{
		const char *name = json_string_value(json_object_get(e, "name"));
		bool written = false;

		if (!name || !dm_name_part_valid(name, strlen(name)) ||
		    !json_is_object(json_object_get(e, "record")))
			return dm_err_set(err, DM_ECORRUPT, "a user of the backup is malformed");
		snprintf(key, sizeof(key), DM_KV_USERS "%s", name);
		rc = put_value(r->kv, key, json_object_get(e, "record"), true, &written, err);
		if (rc)
			return rc;
		if (written)
			r->users++;
		else
			r->users_kept++;
	}
	json_array_foreach(json_object_get(backup, "volumes"), i, e)
	{
		const char *name = json_string_value(json_object_get(e, "name"));
		bool written = false;

		if (!name || strchr(name, '/') || !json_object_get(e, "record"))
			continue;
		snprintf(key, sizeof(key), DM_KV_VOLUMES "%s", name);
		rc = put_value(r->kv, key, json_object_get(e, "record"), true, &written, err);
		if (rc)
			return rc;
		r->volumes += written;
	}
	json_array_foreach(etcd ? json_object_get(backup, "deleted") : NULL, i, e)
	{
		const char *id = json_string_value(json_object_get(e, "id"));

		if (!id || strchr(id, '/') || !json_object_get(e, "record"))
			continue;
		snprintf(key, sizeof(key), DM_KV_DELETED "%s", id);
		rc = put_value(r->kv, key, json_object_get(e, "record"), true, NULL, err);
		if (rc)
			return rc;
	}
	json_array_foreach(json_object_get(backup, "dots"), i, e)
	{
		rc = restore_dot(r, e, root, etcd, err);
		if (rc)
			return rc;
	}
	dm_info("restored %zu users (%zu kept as they were), %zu dots (%zu more merged, %zu left "
		"out), %zu volume aliases",
		r->users, r->users_kept, r->dots, r->merged, json_array_size(r->skipped),
		r->volumes);
	return 0;
}
