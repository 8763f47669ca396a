/*
 * fuzz_records.c - libFuzzer target for the records dmd reads back from
 * its KV (which on etcd other nodes write, and a crash may leave half
 * done): the dots, their branches and pending commits, which the registry
 * loads at start (server/dots/registry.c, dot.c), users and their keys
 * (api/auth.c), the cluster's record, node records and names
 * (cluster/cluster.c), deleted dots, removed nodes and the CA's rotation
 * (cluster/nodecred.c, rotation.c), and the volume plugin's aliases
 * (api/plugin.c).
 *
 * The input is the KV's content, one record a line: KEY, one space, the
 * value (a line without a space is a key with an empty value). A
 * read-only KV backend serves it (get and range; anything that writes is
 * refused), and every reader runs over it: a registry opened over it on a
 * real store, engine and scheduler (tests/fuzz/fuzz_node.h) and freed
 * again, user lookups and the user list, the cluster id, node list and
 * name lookups, and the plugin's Remove of each alias. A reader may refuse
 * a record; it must not crash or leak on it.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_node.h"
#include "kv/backend.h"
#include "kv/kv.h"
#include "server/api/auth.h"
#include "server/api/plugin.h"
#include "server/cluster/nodecred.h"
#include "server/cluster/rotation.h"
#include "server/cluster/cluster.h"
#include "server/dots/registry.h"
#include "util/err.h"

#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RECORDS 64

/* ---- a read-only KV over the input ---- */

struct fake_kv {
	struct dm_kv base; /* first: the handle */
	struct dm_kv_kvs all;
};

static void fake_free(struct dm_kv *kv)
{
	(void)kv;
}

static int fake_revision(struct dm_kv *kv, int64_t *out, struct dm_err *err)
{
	*out = 1;
	return 0;
}

static int fake_get(struct dm_kv *kv, struct dm_kv_kv *out, const char *key, size_t key_len,
		    struct dm_err *err)
{
	const struct fake_kv *f = (const struct fake_kv *)kv;

	for (size_t i = 0; i < f->all.len; i++) {
		const struct dm_kv_kv *it = &f->all.items[i];

		if (it->key_len == key_len && !memcmp(it->key, key, key_len)) {
			int rc = dm_kv_kv_set(out, it->key, it->key_len, it->value, it->value_len,
					      err);

			out->create_revision = out->mod_revision = out->version = 1;
			return rc;
		}
	}
	return dm_err_set(err, DM_ENOTFOUND, "no key");
}

static int fake_range(struct dm_kv *kv, struct dm_kv_kvs *out, const char *prefix,
		      size_t prefix_len, size_t limit, struct dm_err *err)
{
	const struct fake_kv *f = (const struct fake_kv *)kv;

	out->revision = 1;
	for (size_t i = 0; i < f->all.len; i++) {
		const struct dm_kv_kv *it = &f->all.items[i];
		struct dm_kv_kv *o;

		if (!dm_kv_has_prefix(it->key, it->key_len, prefix, prefix_len))
			continue;
		if (limit && out->len == limit) {
			out->more = true;
			break;
		}
		o = dm_kv_kvs_push(out, it->key, it->key_len, it->value, it->value_len, err);
		if (!o)
			return DM_ENOMEM;
		o->create_revision = o->mod_revision = o->version = 1;
	}
	return 0;
}

static int refuse(struct dm_err *err)
{
	return dm_err_set(err, DM_EUNSUPPORTED, "the fuzz KV is read-only");
}

static int fake_txn(struct dm_kv *kv, struct dm_kv_txn_result *out, const struct dm_kv_cmp *cmps,
		    size_t ncmps, const struct dm_kv_op *ops, size_t nops, struct dm_err *err)
{
	return refuse(err);
}

static int fake_compact(struct dm_kv *kv, int64_t rev, struct dm_err *err)
{
	return refuse(err);
}

static int fake_grant(struct dm_kv *kv, int64_t *out, int64_t ttl, struct dm_err *err)
{
	return refuse(err);
}

static int fake_keepalive(struct dm_kv *kv, int64_t *out, int64_t id, struct dm_err *err)
{
	return refuse(err);
}

static int fake_revoke(struct dm_kv *kv, int64_t id, struct dm_err *err)
{
	return refuse(err);
}

static int fake_watch_start(struct dm_kv *kv, struct dm_kv_watch *w, struct dm_err *err)
{
	return refuse(err);
}

static void fake_watch_run(struct dm_kv_watch *w)
{
}

static void fake_watch_wake(struct dm_kv_watch *w)
{
}

static void fake_watch_release(struct dm_kv_watch *w)
{
}

static const struct dm_kv_ops fake_ops = {
	.name = "fuzz",
	.free = fake_free,
	.revision = fake_revision,
	.get = fake_get,
	.range = fake_range,
	.txn = fake_txn,
	.compact = fake_compact,
	.lease_grant = fake_grant,
	.lease_keepalive = fake_keepalive,
	.lease_revoke = fake_revoke,
	.watch_start = fake_watch_start,
	.watch_run = fake_watch_run,
	.watch_wake = fake_watch_wake,
	.watch_release = fake_watch_release,
};

/* The input's records into f->all, sorted; duplicate keys: the first. */
static void load(struct fake_kv *f, const char *p, size_t n)
{
	struct dm_err err;

	dm_kv_kvs_init(&f->all);
	while (n && f->all.len < MAX_RECORDS) {
		const char *nl = memchr(p, '\n', n), *sp;
		size_t line = nl ? (size_t)(nl - p) : n, klen;
		bool dup = false;

		sp = memchr(p, ' ', line);
		klen = sp ? (size_t)(sp - p) : line;
		for (size_t i = 0; i < f->all.len && !dup; i++)
			dup = f->all.items[i].key_len == klen &&
			      !memcmp(f->all.items[i].key, p, klen);
		if (klen && klen <= DM_KV_KEY_MAX && !memchr(p, '\0', klen) && !dup &&
		    !dm_kv_kvs_push(&f->all, p, klen, sp ? sp + 1 : "", sp ? line - klen - 1 : 0,
				    &err))
			abort();
		p += line + (nl != NULL);
		n -= line + (nl != NULL);
	}
	dm_kv_kvs_sort(&f->all);
}

/* ---- the readers ---- */

/* The last part of each key under prefix, as a name to look up. */
static void each_name(struct fake_kv *f, const char *prefix,
		      void (*fn)(struct dm_kv *, const char *))
{
	size_t plen = strlen(prefix);

	for (size_t i = 0; i < f->all.len; i++) {
		const char *key = f->all.items[i].key;

		if (dm_kv_has_prefix(key, f->all.items[i].key_len, prefix, plen))
			fn(&f->base, key + plen);
	}
}

static void read_user(struct dm_kv *kv, const char *name)
{
	struct dm_caller who;
	struct dm_err err;

	if (dm_auth_lookup(kv, &who, name, &err) == 0 &&
	    (strcmp(who.user, name) || strnlen(who.user, sizeof(who.user)) == sizeof(who.user)))
		abort();
}

static void read_node(struct dm_kv *kv, const char *id)
{
	struct dm_cluster_node node;
	struct dm_err err;

	(void)dm_cluster_node(kv, &node, id, &err);
}

static void read_deleted(struct dm_kv *kv, const char *id)
{
	struct dm_err err;

	(void)dm_registry_is_deleted(kv, id, &err);
}

static struct dm_plugin *plugin;

static void read_removed(struct dm_kv *kv, const char *id)
{
	struct dm_err err;

	(void)dm_nodecred_admitted(kv, id, &err);
}

static void read_alias(struct dm_kv *kv, const char *name)
{
	json_t *body = json_pack("{s:s}", "Name", name);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	unsigned status;

	json_decref(body);
	if (text)
		free(dm_plugin_handle(plugin, "/VolumeDriver.Remove", text, strlen(text), &status));
	free(text);
}

static void read_names(struct dm_kv *kv, const char *rest)
{
	char ns[DM_NAME_PART_MAX + 1], name[DM_NAME_PART_MAX + 1], id[256];
	const char *slash = strchr(rest, '/');
	struct dm_err err;

	if (!slash || (size_t)(slash - rest) > DM_NAME_PART_MAX ||
	    strlen(slash + 1) > DM_NAME_PART_MAX)
		return;
	memcpy(ns, rest, (size_t)(slash - rest));
	ns[slash - rest] = '\0';
	memcpy(name, slash + 1, strlen(slash + 1) + 1);
	if (dm_cluster_name_id(kv, id, sizeof(id), ns, name, &err) == 0 &&
	    strnlen(id, sizeof(id)) == sizeof(id))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct test_node *n = fuzz_node();
	struct fake_kv f;
	struct dm_dot_env env;
	struct dm_registry *reg = NULL;
	struct dm_auth_user *users = NULL;
	struct dm_cluster_node *nodes = NULL;
	char id[DM_UUID_LEN + 1];
	size_t count = 0;
	struct dm_err err;

	memset(&f, 0, sizeof(f));
	if (dm_kv_base_init(&f.base, &fake_ops, &err))
		abort();
	load(&f, (const char *)data, size);
	memset(&env, 0, sizeof(env));
	env.kv = &f.base;
	env.store = n->store;
	env.engine = n->engine;
	env.sched = n->sched;
	env.server = "fuzz";
	if (dm_registry_open(&reg, &env, &err) == 0)
		dm_registry_free(reg);
	if (dm_auth_user_list(&f.base, &users, &count, &err) == 0)
		free(users);
	each_name(&f, DM_KV_USERS, read_user);
	read_user(&f.base, "admin");
	(void)dm_cluster_id(&f.base, id, &err);
	if (dm_cluster_nodes(&f.base, &nodes, &count, &err) == 0)
		free(nodes);
	each_name(&f, DM_KV_NODES, read_node);
	each_name(&f, DM_KV_DELETED, read_deleted);
	each_name(&f, DM_KV_REMOVED, read_removed);
	{
		/* the CA's rotation: a record read is NUL-terminated PEM */
		struct dm_rotation r;

		if (dm_rotation_get(&f.base, &r, &err) == 0 &&
		    (!r.trust.len || r.trust.data[r.trust.len - 1] != '\0' || !r.phase[0]))
			abort();
		dm_rotation_release(&r);
	}
	each_name(&f, DM_KV_NAMES, read_names);
	{
		struct dm_plugin_opts po;

		memset(&po, 0, sizeof(po));
		po.registry = n->reg;
		po.kv = &f.base;
		if (dm_plugin_new(&plugin, &po, &err))
			abort();
		each_name(&f, DM_KV_VOLUMES, read_alias);
		dm_plugin_free(plugin, 1000);
		plugin = NULL;
	}
	dm_kv_kvs_release(&f.all);
	dm_kv_base_release(&f.base);
	return 0;
}
